// expect: accept
// Twenty independent branches: 2^20 paths, verified thanks to pruning.
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

#define B(n) if (x & (1ull << n)) acc += n * 3 + 1;

SEC("thoth/msg_send")
int branchy(struct thoth_probe_ctx *ctx)
{
	volatile __u64 acc = 0;
	__u64 x = ctx->arg0;
	B(0) B(1) B(2) B(3) B(4) B(5) B(6) B(7) B(8) B(9)
	B(10) B(11) B(12) B(13) B(14) B(15) B(16) B(17) B(18) B(19)
	return acc & 1;
}

char LICENSE[] SEC("license") = "GPL";
