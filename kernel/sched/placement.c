/*
 * placement.c - the SCHED-4 placement policy (placement.h, docs/SCHED.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "placement.h"
#include "thoth/trace.h"

void place_policy_default(place_policy_t *p)
{
	*p = (place_policy_t){
		.max_rate_hz = 5000,
		.max_busy = 0.5,
		.spread_slowdown = 1.2,
		.spread_busy = 0.9,
		.min_dwell_ns = 2000000000ull,
	};
}

static bool finite_frac(double v) { return isfinite(v) && v >= 0 && v <= 1.5; }

static void decide(place_decision_t *d, place_action_t a, int cpu, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void decide(place_decision_t *d, place_action_t a, int cpu, const char *fmt, ...)
{
	d->action = a;
	d->reason = PLACE_WHY_NONE;
	d->cpu = cpu;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->why, sizeof d->why, fmt, ap);
	va_end(ap);
}

void place_decide(const place_policy_t *pol, const place_obs_t *o, place_decision_t *d)
{
	place_policy_t def;
	if (!pol) {
		place_policy_default(&def);
		pol = &def;
	}
	/* Rule 0: the user's word is final.  Only the service thread is ever
	 * moved: a client pinned by the user is a CPU it may follow (its
	 * affinity is untouched), a pinned service thread is never moved. */
	if (o->server_pinned) {
		decide(d, PLACE_STAY, -1, "the service thread has an affinity set by the user: never overridden");
		return;
	}
	if (!o->window_ns || !finite_frac(o->client_busy) || !finite_frac(o->server_busy) ||
	    !isfinite(o->rtt_ns) || o->rtt_ns < 0 || !isfinite(o->rtt_before_ns)) {
		decide(d, PLACE_STAY, -1, "observation incomplete or out of range");
		return;
	}
	if (o->since_last_move_ns < pol->min_dwell_ns) {
		decide(d, PLACE_STAY, -1, "moved %.1f s ago (dwell %.1f s)", o->since_last_move_ns / 1e9,
		       pol->min_dwell_ns / 1e9);
		return;
	}
	double rate = (double)o->calls * 1e9 / (double)o->window_ns;
	double busy = o->client_busy + o->server_busy;
	if (o->colocated) {
		/* Rule 3: spread again when sharing a CPU hurts either side. */
		if (o->rtt_before_ns > 0 && o->rtt_ns > pol->spread_slowdown * o->rtt_before_ns) {
			decide(d, PLACE_SPREAD, -1, "co-located round trip %.1f us is %.2fx the %.1f us before the move",
			       o->rtt_ns / 1e3, o->rtt_ns / o->rtt_before_ns, o->rtt_before_ns / 1e3);
			d->reason = PLACE_WHY_SLOWER;
			return;
		}
		if (busy > pol->spread_busy) {
			decide(d, PLACE_SPREAD, -1, "the pair needs %.0f%% of the shared CPU (limit %.0f%%)",
			       busy * 100, pol->spread_busy * 100);
			d->reason = PLACE_WHY_BUSY;
			return;
		}
		decide(d, PLACE_STAY, -1, "co-located and not slower (%.1f us)", o->rtt_ns / 1e3);
		return;
	}
	if (o->client_cpu < 0 || o->server_cpu < 0) {
		decide(d, PLACE_STAY, -1, "CPU of %s unknown", o->client_cpu < 0 ? "client" : "service");
		return;
	}
	if (o->client_cpu == o->server_cpu) {
		decide(d, PLACE_STAY, -1, "already on one CPU (%d)", o->client_cpu);
		return;
	}
	/* Rule 1: only synchronous pairs: most calls cost a doorbell, i.e. the
	 * waiting side sleeps (a spinning pair on two CPUs is already fast). */
	if (o->calls == 0 || o->peer_wakeups < o->calls) {
		decide(d, PLACE_STAY, -1, "not a sleeping synchronous pair (%llu wake-ups for %llu calls)",
		       (unsigned long long)o->peer_wakeups, (unsigned long long)o->calls);
		return;
	}
	/* Rule 2: low rate and little CPU: both fit on one CPU. */
	if (rate > pol->max_rate_hz) {
		decide(d, PLACE_STAY, -1, "%.0f calls/s is above the %.0f/s co-location limit", rate, pol->max_rate_hz);
		return;
	}
	if (busy > pol->max_busy) {
		decide(d, PLACE_STAY, -1, "the pair uses %.0f%% of a CPU (co-locate below %.0f%%)", busy * 100,
		       pol->max_busy * 100);
		return;
	}
	decide(d, PLACE_COLOCATE, o->client_cpu,
	       "synchronous pair, %.0f calls/s, %.0f%% busy, %.1f us per round trip across CPUs %d/%d: "
	       "service follows its client to CPU %d", rate, busy * 100, o->rtt_ns / 1e3, o->client_cpu,
	       o->server_cpu, o->client_cpu);
	d->reason = PLACE_WHY_SYNC_PAIR;
}

int place_thread_pinned(pid_t tid)
{
	cpu_set_t set;
	if (sched_getaffinity(tid, sizeof set, &set))
		return -1;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	return CPU_COUNT(&set) < online;
}

int place_apply(pid_t tid, const place_decision_t *d, place_log_fn log, void *ctx)
{
	if (d->action == PLACE_STAY)
		return 0;
	cpu_set_t set;
	CPU_ZERO(&set);
	if (d->action == PLACE_COLOCATE) {
		if (d->cpu < 0 || d->cpu >= CPU_SETSIZE) {
			errno = EINVAL;
			return -1;
		}
		CPU_SET(d->cpu, &set);
	} else {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		for (long i = 0; i < n && i < CPU_SETSIZE; i++)
			CPU_SET((int)i, &set);
	}
	int r = sched_setaffinity(tid, sizeof set, &set);
	int err = errno;
	THOTH_TRACE(LOOP, place_move, (uint64_t)(tid ? tid : gettid()),
		    (uint64_t)d->action | (uint64_t)d->reason << 8 | (uint64_t)(uint32_t)(d->cpu + 1) << 16 |
			    (uint64_t)(r != 0) << 32);
	if (log) {
		char where[40], line[320];
		if (d->action == PLACE_COLOCATE)
			snprintf(where, sizeof where, "moved to CPU %d", d->cpu);
		else
			snprintf(where, sizeof where, "spread over every CPU");
		snprintf(line, sizeof line, "placement: thread %d %s: %s%s%s%s", (int)tid, where, d->why,
			 r ? " (failed: " : "", r ? strerror(err) : "", r ? ")" : "");
		log(ctx, line);
	}
	errno = err;
	return r;
}
