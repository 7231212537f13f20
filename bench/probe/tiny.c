/* bench/probe: the tiny program - read a context field, bump a per-thread counter. */
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

SEC("thoth/msg_send")
int tiny(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&bytes, &k);
	if (v)
		*v += ctx->size;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
