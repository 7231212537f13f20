// expect: reject: context access ctx+64 size 8 is out of bounds
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

SEC("thoth/msg_send")
int past_end(struct thoth_probe_ctx *ctx)
{
	return (int)((__u64 *)ctx)[8];
}

char LICENSE[] SEC("license") = "GPL";
