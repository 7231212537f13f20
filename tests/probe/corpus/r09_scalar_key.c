// expect: reject: R2 (key) must point to the stack or a map value, not scalar
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} m SEC(".maps");

SEC("thoth/msg_send")
int bad_arg(struct thoth_probe_ctx *ctx)
{
	__u64 *v = bpf_map_lookup_elem(&m, (void *)(long)ctx->size);
	return v ? 1 : 0;
}

char LICENSE[] SEC("license") = "GPL";
