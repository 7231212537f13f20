// expect: accept
// Every scalar helper: ktime, printk, cpu, pid/tid; stored in an ARRAY.
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct out { __u64 t, cpu, pid_tgid, printed; };
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct out);
} last SEC(".maps");

SEC("thoth/*")
int helpers(struct thoth_probe_ctx *ctx)
{
	__u32 k = 0;
	struct out *o = bpf_map_lookup_elem(&last, &k);
	if (!o)
		return 0;
	o->t = bpf_ktime_get_ns();
	o->cpu = bpf_get_smp_processor_id();
	o->pid_tgid = bpf_get_current_pid_tgid();
	char fmt[] = "probe saw %llu\n";
	o->printed = bpf_trace_printk(fmt, sizeof fmt, ctx->arg0);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
