/*
 * echo-client - load for the `make run` demo.
 *
 * Every tick (a loop timer re-armed from its own callback, with slack) it
 * makes a batch of Echo.echo calls over shared-memory channels to the
 * "echo" instances (opened once per instance through the socket the
 * registry names).  Where the instances are comes from a resolver
 * (thoth_resolver_*: a cache kept true by thothd's pushes in the
 * background), so calls never wait for thothd and keep flowing while
 * thothd restarts; an instance whose channel fails is forgotten at once.
 * Instances are picked round robin, nearest NUMA node first.  Every few
 * seconds it prints calls/s and how the calls spread over the instances.
 *
 *   echo-client [--runtime-dir DIR] [--rate CALLS_PER_S] [--report SECONDS]
 */
#include <errno.h>
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
	uint64_t last_used;             /* tick number: the least recently used slot is reused */
} instance_t;

typedef struct client_state {
	const char *runtime_dir;
	thoth_resolver_t *resolver;
	instance_t inst[MAX_INSTANCES];
	uint32_t rate;
	uint64_t report_ns, last_report_ns, calls, failures, ticks;
	thoth_timer_t *tick, *report;
} client_state_t;

static void forget(instance_t *x)
{
	thoth_chan_close(x->ch);        /* NULL-safe */
	memset(x, 0, sizeof *x);
}

/* The slot for ADDR: its own, a free one, or the least recently used. */
static instance_t *instance_for(client_state_t *s, const thoth_resolved_t *e)
{
	instance_t *spare = NULL;
	for (int i = 0; i < MAX_INSTANCES; i++) {
		instance_t *x = &s->inst[i];
		if (x->addr[0] && strcmp(x->addr, e->addr) == 0)
			return x;
		if (!spare || (spare->addr[0] && (!x->addr[0] || x->last_used < spare->last_used)))
			spare = x;
	}
	forget(spare);
	snprintf(spare->addr, sizeof spare->addr, "%s", e->addr);
	spare->pid = e->pid;
	return spare;
}

/* The next instance to call, from the resolver's cache (no thothd call). */
static instance_t *next_instance(client_state_t *s)
{
	thoth_resolved_t e;
	if (thoth_resolver_pick(s->resolver, &e))
		return NULL;
	instance_t *x = instance_for(s, &e);
	if (!x->ch) {
		thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .timeout_ms = 1000 };
		char why[300];
		if (thoth_chan_connect(x->addr, &cfg, &x->ch, why, sizeof why)) {
			fprintf(stderr, "echo-client: %s\n", why);
			thoth_resolver_forget(s->resolver, x->addr);
			forget(x);
			return NULL;
		}
	}
	x->last_used = s->ticks;
	return x;
}

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	client_state_t *s = arg;
	uint32_t batch = s->rate / 10 ? s->rate / 10 : 1;
	static const char payload[] = "hello from echo-client";
	s->ticks++;
	for (uint32_t i = 0; i < batch; i++) {
		instance_t *x = next_instance(s);
		if (!x) {
			s->failures++;
			break;
		}
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)payload, .len = sizeof payload } };
		thoth_echo_Echo_echo_resp_t resp;
		int r = thoth_echo_Echo_echo(thoth_chan_client(x->ch), &req, &resp, NULL);
		if (r || resp.data.len != sizeof payload) {
			s->failures++;
			thoth_resolver_forget(s->resolver, x->addr);   /* the instance died */
			forget(x);
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
		printf("  (%llu failed)", (unsigned long long)s->failures);
	printf("\n");
	fflush(stdout);
	s->calls = s->failures = 0;
	for (int i = 0; i < MAX_INSTANCES; i++)
		s->inst[i].calls = 0;
	s->last_report_ns = now;
	thoth_timer_rearm(loop, timer, now + s->report_ns, s->report_ns / 10);
}

/* OPT's value S as a whole number in 1..MAX (strtoul took "abc" as 0 and
 * "-1" as 4294967295 calls/s, and --report's seconds overflowed). */
static bool parse_count(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || v < 1 || v > max) {
		fprintf(stderr, "echo-client: %s wants a number 1..%lu, not '%s'\n", opt, max, s);
		return false;
	}
	*out = v;
	return true;
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
	unsigned long v;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': s.runtime_dir = optarg; break;
		case 'n':
			if (!parse_count("--rate", optarg, 1000000, &v))
				return 2;
			s.rate = (uint32_t)v;
			break;
		case 'p':
			if (!parse_count("--report", optarg, 86400, &v))
				return 2;
			s.report_ns = v * 1000000000ull;
			break;
		case 'h':
			printf("usage: echo-client [--runtime-dir DIR] [--rate N] [--report SECONDS]\n");
			return 0;
		default:
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	/* A trace buffer, all categories off: thothd switches them on when
	 * someone runs `thothctl trace` (handed over when we connect). */
	thoth_trace_init_process("echo-client");
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	thoth_resolver_config_t rcfg = { .runtime_dir = s.runtime_dir, .name = "echo",
					 .min_version = "1.0.0" };
	if (thoth_resolver_new(loop, &rcfg, &s.resolver)) {
		fprintf(stderr, "echo-client: runtime dir path too long\n");
		return 1;
	}
	s.last_report_ns = thoth_clock_now();
	thoth_loop_add_timer_in(loop, TICK_NS, TICK_NS / 10, tick, &s, &s.tick);
	thoth_loop_add_timer_in(loop, s.report_ns, s.report_ns / 10, report, &s, &s.report);
	thoth_loop_run(loop);
	for (int i = 0; i < MAX_INSTANCES; i++)
		forget(&s.inst[i]);
	thoth_resolver_free(s.resolver);
	thoth_timer_cancel(loop, s.tick);
	thoth_timer_cancel(loop, s.report);
	thoth_loop_free(loop);
	return 0;
}
