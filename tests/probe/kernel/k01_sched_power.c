/*
 * k01_sched_power: one probe source, two worlds.  The counting body is
 * shared: SEC("thoth/msg_send") runs it in-process at a ThothOS trace
 * point (thothctl probe attach), the tracepoint/ sections run it in the
 * Linux kernel (thothctl probe kernel, through libbpf) at the scheduler,
 * idle, frequency and interrupt tracepoints OBS-2 names.  Key = which
 * event (0 msg_send, 1 sched_switch, 2 sched_wakeup, 3 cpu_idle,
 * 4 cpu_frequency, 5 irq_handler_entry).
 */
#include <thoth/probe.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} events SEC(".maps");

static __always_inline int count(__u32 k)
{
	__u64 *v = bpf_map_lookup_elem(&events, &k);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&events, &k, &one, BPF_NOEXIST);
	}
	return 0;
}

SEC("thoth/msg_send")
int on_msg_send(struct thoth_probe_ctx *ctx) { return count(0); }

SEC("tracepoint/sched/sched_switch")
int on_sched_switch(void *ctx) { return count(1); }

SEC("tracepoint/sched/sched_wakeup")
int on_sched_wakeup(void *ctx) { return count(2); }

SEC("tracepoint/power/cpu_idle")
int on_cpu_idle(void *ctx) { return count(3); }

SEC("tracepoint/power/cpu_frequency")
int on_cpu_frequency(void *ctx) { return count(4); }

SEC("tracepoint/irq/irq_handler_entry")
int on_irq(void *ctx) { return count(5); }

char LICENSE[] SEC("license") = "GPL";
