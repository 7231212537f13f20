// expect: reject: is not initialised
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct key { __u32 a; __u32 pad; __u64 b; };
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct key);
	__type(value, __u64);
} m SEC(".maps");

SEC("thoth/msg_send")
int half_key(struct thoth_probe_ctx *ctx)
{
	struct key k;
	k.b = ctx->trace_id;    /* a and pad never written */
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	return v ? 1 : 0;
}

char LICENSE[] SEC("license") = "GPL";
