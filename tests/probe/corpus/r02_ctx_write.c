// expect: reject: the context is read-only
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

SEC("thoth/msg_send")
int scribble(struct thoth_probe_ctx *ctx)
{
	ctx->size = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
