// expect: reject: a ringbuf only takes bpf_ringbuf_output
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

SEC("thoth/msg_send")
int wrong_map(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	return bpf_map_lookup_elem(&rb, &k) ? 1 : 0;
}

char LICENSE[] SEC("license") = "GPL";
