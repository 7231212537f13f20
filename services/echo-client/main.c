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
 * An instance that is alive but does not answer (SIGSTOP, a debugger, a
 * wedged loop) stays registered: thothd cannot tell it from a busy one, so
 * the resolver lists it again right after thoth_resolver_forget().  Each
 * channel opening to it blocks this loop for the whole handshake deadline,
 * and retrying it on every tick took the calls to the healthy instances
 * down to a tenth (ops44).  So an address whose call or handshake failed is
 * avoided for a while (2 s, doubling to 8 s while it keeps failing, reset
 * by an answered call), and every failure is said on stderr with the
 * instance's pid, address and the error.
 *
 * An instance whose address is `tcp:HOST:PORT` (another host's, in a
 * federation: docs/FEDERATION.md, or this host's own TCP listener) is
 * called over TCP with the runtime dir's cluster token; every other one
 * over a channel.  It opened channels only, so in `make run-cluster` every
 * other pick failed ("opening a channel to ... tcp:...") and another
 * host's echo could not be called at all (fed45).
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
#include "peertext.h"
#include "registry.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/tcp.h"
#include "thoth/trace.h"

#define MAX_INSTANCES 8
#define TICK_NS (100ull * 1000000ull)
#define AVOID_FIRST_NS (2000ull * 1000000ull)
#define AVOID_MAX_NS (8000ull * 1000000ull)
/* A local service answers a handshake in microseconds; the default (2 s)
 * is what one stopped instance cost every other call of this loop; 1 s
 * leaves room for a loaded (ASan) machine. */
#define HANDSHAKE_TIMEOUT_MS 1000
#define CALL_TIMEOUT_MS 1000

typedef struct instance {
	char addr[108];
	uint32_t pid;
	thoth_chan_t *ch;               /* a channel, or ... */
	thoth_tcp_conn_t *tcp;          /* ... a TCP connection (a tcp: address); both NULL until connected */
	uint64_t calls;
	uint64_t last_used;             /* tick number: the least recently used slot is reused */
} instance_t;

/* An address that failed: not picked before until_ns. */
typedef struct avoided {
	char addr[108];
	uint64_t until_ns, backoff_ns;
} avoided_t;

typedef struct client_state {
	const char *runtime_dir;
	thoth_resolver_t *resolver;
	instance_t inst[MAX_INSTANCES];
	avoided_t avoid[MAX_INSTANCES];
	uint32_t rate;
	uint64_t report_ns, last_report_ns, calls, failures, skipped, ticks;
	thoth_timer_t *tick, *report;
} client_state_t;

static void forget(instance_t *x)
{
	thoth_chan_close(x->ch);        /* NULL-safe */
	thoth_tcp_close(x->tcp);        /* NULL-safe */
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

static avoided_t *avoided_entry(client_state_t *s, const char *addr)
{
	for (int i = 0; i < MAX_INSTANCES; i++)
		if (s->avoid[i].addr[0] && strcmp(s->avoid[i].addr, addr) == 0)
			return &s->avoid[i];
	return NULL;
}

static bool is_avoided(client_state_t *s, const char *addr, uint64_t now)
{
	avoided_t *a = avoided_entry(s, addr);
	return a && now < a->until_ns;
}

/* X failed (WHAT, WHY): said on stderr, dropped from the resolver and
 * avoided for a backoff that doubles while it keeps failing. */
static void instance_failed(client_state_t *s, instance_t *x, const char *what, const char *why)
{
	avoided_t *a = avoided_entry(s, x->addr);
	if (!a) {
		a = &s->avoid[0];       /* a free slot, else the one ending first */
		for (int i = 0; i < MAX_INSTANCES; i++) {
			if (!s->avoid[i].addr[0]) {
				a = &s->avoid[i];
				break;
			}
			if (s->avoid[i].until_ns < a->until_ns)
				a = &s->avoid[i];
		}
		memset(a, 0, sizeof *a);
		snprintf(a->addr, sizeof a->addr, "%s", x->addr);
	}
	a->backoff_ns = a->backoff_ns ? a->backoff_ns * 2 : AVOID_FIRST_NS;
	if (a->backoff_ns > AVOID_MAX_NS)
		a->backoff_ns = AVOID_MAX_NS;
	a->until_ns = thoth_clock_now() + a->backoff_ns;
	fprintf(stderr, "echo-client: %s echo pid %u at %s failed: %s; not calling it for %llu ms\n",
		what, x->pid, peertext_textz(x->addr), peertext_textz(why),
		(unsigned long long)(a->backoff_ns / 1000000ull));
	s->failures++;
	thoth_resolver_forget(s->resolver, x->addr);
	forget(x);
}

/* Open X: over TCP for a tcp: address (another host's, or this host's
 * own TCP listener), else a channel.  False (said, X avoided) on failure. */
static bool connect_instance(client_state_t *s, instance_t *x)
{
	char why[300];
	if (thoth_tcp_is_addr(x->addr)) {
		char token_file[4096];
		if (thoth_tcp_token_path(s->runtime_dir, token_file, sizeof token_file)) {
			instance_failed(s, x, "opening a TCP connection to", "runtime dir path too long");
			return false;
		}
		thoth_tcp_config_t cfg = { .iface = &thoth_echo_Echo_info, .token_file = token_file,
					   .call_timeout_ms = CALL_TIMEOUT_MS };
		if (thoth_tcp_connect_with(x->addr, &cfg, HANDSHAKE_TIMEOUT_MS, &x->tcp, why, sizeof why)) {
			instance_failed(s, x, "opening a TCP connection to", why);
			return false;
		}
		return true;
	}
	thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .timeout_ms = CALL_TIMEOUT_MS,
				    .handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS };
	if (thoth_chan_connect(x->addr, &cfg, &x->ch, why, sizeof why)) {
		instance_failed(s, x, "opening a channel to", why);
		return false;
	}
	return true;
}

/* The next instance to call, from the resolver's cache (no thothd call),
 * passing over the addresses being avoided; NULL when there is none. */
static instance_t *next_instance(client_state_t *s)
{
	thoth_resolved_t e;
	uint64_t now = thoth_clock_now();
	bool found = false;
	/* pick is round robin: MAX_INSTANCES + 1 picks see every instance */
	for (int tries = 0; tries <= MAX_INSTANCES && !found; tries++) {
		if (thoth_resolver_pick(s->resolver, &e))
			return NULL;
		found = !is_avoided(s, e.addr, now);
	}
	if (!found)
		return NULL;
	instance_t *x = instance_for(s, &e);
	if (!x->ch && !x->tcp && !connect_instance(s, x))
		return NULL;
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
			s->skipped++;   /* none to call now (or the opening failed: counted there) */
			break;
		}
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)payload, .len = sizeof payload } };
		thoth_echo_Echo_echo_resp_t resp;
		thoth_client_t *c = x->ch ? thoth_chan_client(x->ch) : thoth_tcp_client(x->tcp);
		int r = thoth_echo_Echo_echo(c, &req, &resp, NULL);
		if (r || resp.data.len != sizeof payload) {
			char why[200];
			if (r)
				thoth_strerror_r(r, why, sizeof why);
			else
				snprintf(why, sizeof why, "the answer has %zu bytes, not the %zu sent",
					 (size_t)resp.data.len, sizeof payload);
			instance_failed(s, x, "a call to", why);
			continue;
		}
		avoided_t *a = avoided_entry(s, x->addr);
		if (a)
			memset(a, 0, sizeof *a);        /* it answers again */
		x->calls++;
		s->calls++;
	}
	/* After a stall (a call that waited its deadline) the next tick is
	 * due from now: catching up the missed ticks at once made a burst of
	 * calls that the report showed as ten times the rate. */
	uint64_t next = thoth_timer_deadline(timer) + TICK_NS, now = thoth_clock_now();
	thoth_timer_rearm(loop, timer, next > now ? next : now + TICK_NS, TICK_NS / 10);
}

static void report(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	client_state_t *s = arg;
	uint64_t now = thoth_clock_now();
	double secs = (double)(now - s->last_report_ns) / 1e9;
	/* An instance that left the registry (it died: thothd's push dropped
	 * it from the resolver before any call of ours failed) kept its slot,
	 * and the report went on naming it, "[pid N: 0]", as if it were still
	 * one of the instances (ops44).  Its slot is freed once idle. */
	thoth_resolved_t live[2 * MAX_INSTANCES];
	size_t n_live = thoth_resolver_snapshot(s->resolver, live, NULL, 2 * MAX_INSTANCES);
	if (n_live > 2 * MAX_INSTANCES)
		n_live = 2 * MAX_INSTANCES;
	for (int i = 0; i < MAX_INSTANCES; i++) {
		instance_t *x = &s->inst[i];
		bool listed = false;
		for (size_t j = 0; j < n_live && !listed; j++)
			listed = strcmp(live[j].addr, x->addr) == 0;
		if (x->addr[0] && !listed && x->calls == 0)
			forget(x);
	}
	printf("echo-client: %.0f calls/s", (double)s->calls / secs);
	for (int i = 0; i < MAX_INSTANCES; i++)
		if (s->inst[i].addr[0])
			printf("  [pid %u: %llu]", s->inst[i].pid, (unsigned long long)s->inst[i].calls);
	if (s->failures)
		printf("  (%llu failed)", (unsigned long long)s->failures);
	if (s->skipped)
		printf("  (%llu ticks with no instance to call)", (unsigned long long)s->skipped);
	printf("\n");
	fflush(stdout);
	s->calls = s->failures = s->skipped = 0;
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
