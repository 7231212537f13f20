/*
 * k02_kernel_rejects: a kernel program the Linux verifier must refuse (a
 * hash map value dereferenced without a NULL check; an array lookup with a
 * constant key is known non-NULL to recent kernels): thothctl probe kernel
 * exits 1 and shows the kernel verifier's own log.
 */
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} m SEC(".maps");

SEC("tracepoint/sched/sched_switch")
int no_check(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
