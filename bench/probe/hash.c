/* bench/probe: a hash aggregation - @bytes[service_id] = sum(size). */
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

SEC("thoth/msg_send")
int agg(struct thoth_probe_ctx *ctx)
{
	__u32 k = ctx->service_id;
	__u64 *v = bpf_map_lookup_elem(&bytes, &k);
	if (v) {
		__sync_fetch_and_add(v, ctx->size);
	} else {
		__u64 init = ctx->size;
		bpf_map_update_elem(&bytes, &k, &init, BPF_NOEXIST);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
