// expect: reject: R0 is a pointer (ctx) at exit
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

SEC("thoth/msg_send")
long give_away(struct thoth_probe_ctx *ctx)
{
	return (long)ctx;
}

char LICENSE[] SEC("license") = "GPL";
