// expect: reject: pointer leak: R6 (ctx) stored into map 'm'
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} m SEC(".maps");

SEC("thoth/msg_send")
int leak(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	if (v)
		*v = (__u64)(long)ctx;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
