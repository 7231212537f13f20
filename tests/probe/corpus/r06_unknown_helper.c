// expect: reject: helper 7 (bpf_get_prandom_u32) is not available
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

SEC("thoth/msg_send")
int random(struct thoth_probe_ctx *ctx)
{
	return bpf_get_prandom_u32() & 1;
}

char LICENSE[] SEC("license") = "GPL";
