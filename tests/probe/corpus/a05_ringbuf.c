// expect: accept
// Send a record per large message to thothctl through a RINGBUF.
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct event { __u64 ts; __u32 service; __u32 size; };

SEC("thoth/msg_send")
int big(struct thoth_probe_ctx *ctx)
{
	struct event e = { .ts = ctx->ts_ns, .service = ctx->service_id, .size = ctx->size };
	bpf_ringbuf_output(&events, &e, sizeof e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
