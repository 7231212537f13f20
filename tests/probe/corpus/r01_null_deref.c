// expect: reject: dereference without a NULL check
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m SEC(".maps");

SEC("thoth/msg_send")
int no_check(struct thoth_probe_ctx *ctx)
{
	__u32 k = ctx->service_id;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
