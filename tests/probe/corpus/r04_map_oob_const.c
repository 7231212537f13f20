// expect: reject: is out of bounds (value is 64 bytes)
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct slots { __u64 v[8]; };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slots);
} m SEC(".maps");

SEC("thoth/msg_send")
int off_by_one(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	struct slots *s = bpf_map_lookup_elem(&m, &k);
	if (s && ctx->arg0 <= 8)
		s->v[ctx->arg0] += 1;    /* index 8 is one past the end */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
