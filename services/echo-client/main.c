/*
 * echo-client - load for the `make run` demo.
 *
 * Every tick (a loop timer re-armed from its own callback, with slack) it
 * resolves "echo" through thothd - the registry round-robins between the
 * instances on the nearest NUMA node - and makes a batch of Echo.echo calls
 * to the instance it was given, over a shared-memory channel to it (opened
 * once per instance through the socket the registry names).  Every few
 * seconds it prints calls/s and how the calls spread over the instances.
 *
 *   echo-client [--runtime-dir DIR] [--rate CALLS_PER_S] [--report SECONDS]
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.thoth.h"
#include "registry.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/trace.h"

#define MAX_INSTANCES 8
#define TICK_NS (100ull * 1000000ull)

typedef struct instance {
	char addr[108];
	uint32_t pid;
	thoth_chan_t *ch;               /* NULL until connected */
	uint64_t calls;
} instance_t;

typedef struct client_state {
	const char *runtime_dir;
	thoth_control_t ctl;
	bool ctl_up;
	instance_t inst[MAX_INSTANCES];
	uint32_t rate;
	uint64_t report_ns, last_report_ns, calls, failures;
	thoth_timer_t *tick, *report;
} client_state_t;

static instance_t *instance_for(client_state_t *s, const thoth_registry_Instance_t *in)
{
	const thoth_str_t *addr = &in->registration.endpoint.addr;
	instance_t *free_slot = NULL;
	for (int i = 0; i < MAX_INSTANCES; i++) {
		instance_t *x = &s->inst[i];
		if (x->addr[0] && strlen(x->addr) == addr->len && memcmp(x->addr, addr->ptr, addr->len) == 0)
			return x;
		if (!x->addr[0] && !free_slot)
			free_slot = x;
	}
	if (!free_slot || addr->len >= sizeof free_slot->addr)
		return NULL;
	memcpy(free_slot->addr, addr->ptr, addr->len);
	free_slot->addr[addr->len] = 0;
	free_slot->pid = in->registration.endpoint.pid;
	return free_slot;
}

static void forget(instance_t *x)
{
	thoth_chan_close(x->ch);        /* NULL-safe */
	memset(x, 0, sizeof *x);
}

static instance_t *resolve(client_state_t *s)
{
	if (!s->ctl_up) {
		if (thoth_control_connect(&s->ctl, s->runtime_dir, 1000))
			return NULL;
		s->ctl_up = true;
	}
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str("echo"), .min_version = thoth_str("1.0.0"),
		.prefer = THOTH_COMMON_LOCALITY_NUMA,
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_registry_Registry_resolve(&s->ctl.client, &req, &resp, &arena);
	if (r) {
		if (r != THOTH_E_REMOTE) {      /* thothd went away: reconnect next tick */
			thoth_control_close(&s->ctl);
			s->ctl_up = false;
		}
		return NULL;
	}
	instance_t *x = instance_for(s, &resp.instance);
	if (x && !x->ch) {
		thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .timeout_ms = 1000 };
		char why[300];
		if (thoth_chan_connect(x->addr, &cfg, &x->ch, why, sizeof why)) {
			fprintf(stderr, "echo-client: %s\n", why);
			forget(x);
			return NULL;
		}
	}
	return x;
}

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	client_state_t *s = arg;
	uint32_t batch = s->rate / 10 ? s->rate / 10 : 1;
	static const char payload[] = "hello from echo-client";
	for (uint32_t i = 0; i < batch; i++) {
		instance_t *x = resolve(s);
		if (!x) {
			s->failures++;
			break;
		}
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)payload, .len = sizeof payload } };
		thoth_echo_Echo_echo_resp_t resp;
		int r = thoth_echo_Echo_echo(thoth_chan_client(x->ch), &req, &resp, NULL);
		if (r || resp.data.len != sizeof payload) {
			s->failures++;
			forget(x);              /* the instance died: resolve again */
			continue;
		}
		x->calls++;
		s->calls++;
	}
	thoth_timer_rearm(loop, timer, thoth_timer_deadline(timer) + TICK_NS, TICK_NS / 10);
}

static void report(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	client_state_t *s = arg;
	uint64_t now = thoth_clock_now();
	double secs = (double)(now - s->last_report_ns) / 1e9;
	printf("echo-client: %.0f calls/s", (double)s->calls / secs);
	for (int i = 0; i < MAX_INSTANCES; i++)
		if (s->inst[i].addr[0])
			printf("  [pid %u: %llu]", s->inst[i].pid, (unsigned long long)s->inst[i].calls);
	if (s->failures)
		printf("  (%llu failed: re-resolving)", (unsigned long long)s->failures);
	printf("\n");
	fflush(stdout);
	s->calls = s->failures = 0;
	for (int i = 0; i < MAX_INSTANCES; i++)
		s->inst[i].calls = 0;
	s->last_report_ns = now;
	thoth_timer_rearm(loop, timer, now + s->report_ns, s->report_ns / 10);
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "rate", required_argument, NULL, 'n' },
		{ "report", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	client_state_t s = { .rate = 200, .report_ns = 3000000000ull };
	int opt;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': s.runtime_dir = optarg; break;
		case 'n': s.rate = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'p': s.report_ns = strtoull(optarg, NULL, 10) * 1000000000ull; break;
		case 'h':
			printf("usage: echo-client [--runtime-dir DIR] [--rate N] [--report SECONDS]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (!s.report_ns)
		s.report_ns = 1000000000ull;
	signal(SIGPIPE, SIG_IGN);
	/* A trace buffer, all categories off: thothd switches them on when
	 * someone runs `thothctl trace` (handed over when we connect). */
	thoth_trace_init_process("echo-client");
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	s.last_report_ns = thoth_clock_now();
	thoth_loop_add_timer_in(loop, TICK_NS, TICK_NS / 10, tick, &s, &s.tick);
	thoth_loop_add_timer_in(loop, s.report_ns, s.report_ns / 10, report, &s, &s.report);
	thoth_loop_run(loop);
	for (int i = 0; i < MAX_INSTANCES; i++)
		forget(&s.inst[i]);
	if (s.ctl_up)
		thoth_control_close(&s.ctl);
	thoth_timer_cancel(loop, s.tick);
	thoth_timer_cancel(loop, s.report);
	thoth_loop_free(loop);
	return 0;
}
