// expect: accept
// A bounded loop over a map value (16 slots): the verifier walks each
// iteration and every index stays in bounds.
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct slots { __u64 v[16]; };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct slots);
} hist SEC(".maps");

SEC("thoth/timer_fire")
int spread(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	struct slots *s = bpf_map_lookup_elem(&hist, &k);
	if (!s)
		return 0;
	__u64 lateness = ctx->arg0;
#pragma clang loop unroll(disable)
	for (int i = 0; i < 16; i++) {
		if (lateness < (1ull << i)) {
			__sync_fetch_and_add(&s->v[i], 1);
			break;
		}
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
