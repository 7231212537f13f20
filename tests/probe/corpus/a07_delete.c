// expect: accept
// Insert on send, delete on receive: a HASH map keyed by trace id.
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u64);
} inflight SEC(".maps");

SEC("thoth/msg_send")
int start(struct thoth_probe_ctx *ctx)
{
	__u64 id = ctx->trace_id, ts = ctx->ts_ns;
	bpf_map_update_elem(&inflight, &id, &ts, BPF_ANY);
	return 0;
}

SEC("thoth/msg_recv")
int end(struct thoth_probe_ctx *ctx)
{
	__u64 id = ctx->trace_id;
	bpf_map_delete_elem(&inflight, &id);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
