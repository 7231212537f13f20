// expect: accept
// A per-thread counter (PERCPU_ARRAY: one slot per thread here).
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} per_thread SEC(".maps");

SEC("thoth/msg_recv")
int tick(struct thoth_probe_ctx *ctx)
{
	__u32 k = ctx->cpu & 3;
	__u64 *v = bpf_map_lookup_elem(&per_thread, &k);
	if (v)
		*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
