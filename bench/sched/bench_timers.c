/*
 * bench_timers.c - timer wake-ups shared across processes (issue 13
 * section 3, SCHED-3).
 *
 * SIMULATED, in virtual time, with the loop's own code: each process is a
 * timer queue (kernel/sched/timerq.c) with periodic timers re-armed at
 * deadline + period (phases and periods random: 10 Hz to 0.1 Hz, log
 * uniform), slack = S% of the period.  Each process sleeps until the
 * instant its loop would arm the timerfd for and then fires every timer
 * whose deadline has passed, exactly as loop.c does:
 *   alone  today's rule: wake at the earliest window end (min latest);
 *   grid   the same window, but the instant is timergrid_pick() on the
 *          per-boot grid (what thoth_loop does by default now).
 * Counted over the whole run: CPU wake-ups = distinct wake-up instants of
 * all processes together (processes that wake at the same instant share
 * the CPU's wake-up; per-process wake-ups are printed too), against
 *   timerfd  one timerfd per timer: one wake-up per expiry;
 *   optimum  the offline optimum over the same windows: the fewest
 *            instants that stab every window (greedy over windows sorted
 *            by their end, which is exact for intervals).
 * Every fire is checked to lie inside its window; lateness is histogrammed
 * as a fraction of the slack.  The real-process check of the same rule is
 * bench_timers --real (forked processes with real thoth_loops; early = fired
 * before the deadline, must be 0; late = run more than 5 ms after the
 * window's end, which is the host's scheduling latency under load).
 *
 *   bench_timers [--seconds N] [--timers-per-process K] [--seed S] [--real]
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "timergrid.h"
#include "timerq.h"

#define MS 1000000ull
#define SEC 1000000000ull

typedef struct ptimer {
	timerq_entry_t q;           /* first */
	uint64_t period, slack;
} ptimer_t;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double)(rng_state >> 11) / 9007199254740992.0;
}

typedef struct win {
	uint64_t lo, hi;
} win_t;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_hi(const void *a, const void *b)
{
	const win_t *x = a, *y = b;
	return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* Fewest points stabbing every window: take windows by end; a window not
 * stabbed yet gets a point at its end. */
static uint64_t optimum(win_t *w, size_t n)
{
	qsort(w, n, sizeof *w, cmp_hi);
	uint64_t pts = 0, last = 0;
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (!any || w[i].lo > last) {
			last = w[i].hi;
			any = true;
			pts++;
		}
	return pts;
}

/* Largest deadline <= LIMIT in the deadline heap (DFS; the heap order
 * prunes), as loop.c computes the lower end of its wake-up window. */
static uint64_t max_due(const timerq_t *q, size_t i, uint64_t limit, uint64_t best)
{
	if (i >= q->n || q->deadline_heap[i]->deadline > limit)
		return best;
	if (q->deadline_heap[i]->deadline > best)
		best = q->deadline_heap[i]->deadline;
	best = max_due(q, 2 * i + 1, limit, best);
	return max_due(q, 2 * i + 2, limit, best);
}

typedef struct outcome {
	uint64_t cpu_wakeups, proc_wakeups, fires, optimum, outside;
	uint64_t late_hist[11];     /* lateness / slack in tenths; [10] = exactly at the end */
} outcome_t;

static void simulate(unsigned procs, unsigned per_proc, double slack_frac, uint64_t span, bool grid,
		     uint64_t seed, outcome_t *o)
{
	memset(o, 0, sizeof *o);
	rng_state = seed;
	uint64_t pert = timergrid_perturbation_of("bench-timers-boot");
	size_t cap = 1 << 16, n_inst = 0, n_win = 0, cap_win = 1 << 16;
	uint64_t *inst = malloc(cap * sizeof *inst);
	win_t *wins = malloc(cap_win * sizeof *wins);
	for (unsigned p = 0; p < procs; p++) {
		timerq_t q;
		timerq_init(&q);
		ptimer_t *t = calloc(per_proc, sizeof *t);
		for (unsigned k = 0; k < per_proc; k++) {
			/* 10 Hz .. 0.1 Hz, log uniform; random phase */
			t[k].period = (uint64_t)(100 * MS * pow(100.0, urand()));
			t[k].slack = (uint64_t)((double)t[k].period * slack_frac);
			uint64_t first = SEC + (uint64_t)(urand() * (double)t[k].period);
			timerq_insert(&q, &t[k].q, first, t[k].slack);
		}
		uint64_t end = SEC + span;
		for (;;) {
			uint64_t hi = timerq_min_latest(&q);
			uint64_t at = hi;
			if (grid)
				at = timergrid_pick(max_due(&q, 0, hi, 0), hi, pert);
			if (at >= end)
				break;
			o->proc_wakeups++;
			if (n_inst == cap)
				inst = realloc(inst, (cap *= 2) * sizeof *inst);
			inst[n_inst++] = at;
			timerq_entry_t *e;
			while ((e = timerq_pop_due(&q, at))) {
				ptimer_t *x = (ptimer_t *)e;
				o->fires++;
				if (at < x->q.deadline || at > x->q.latest)
					o->outside++;
				unsigned b = x->slack ? (unsigned)((at - x->q.deadline) * 10 / x->slack) : 10;
				o->late_hist[b > 10 ? 10 : b]++;
				if (n_win == cap_win)
					wins = realloc(wins, (cap_win *= 2) * sizeof *wins);
				wins[n_win++] = (win_t){ x->q.deadline, x->q.latest };
				timerq_insert(&q, &x->q, x->q.deadline + x->period, x->slack);
			}
		}
		while (q.n)
			timerq_remove(&q, q.deadline_heap[0]);
		timerq_free(&q);
		free(t);
	}
	qsort(inst, n_inst, sizeof *inst, cmp_u64);
	for (size_t i = 0; i < n_inst; i++)
		o->cpu_wakeups += i == 0 || inst[i] != inst[i - 1];
	o->optimum = optimum(wins, n_win);
	free(inst);
	free(wins);
}

/* ---- real processes ------------------------------------------------------- */

typedef struct rshared {
	_Atomic uint64_t n;
	uint64_t at[];
} rshared_t;

typedef struct rtimer {
	uint64_t period, slack;
	thoth_timer_t *t;
	rshared_t *sh;
	uint64_t cap, *early, *late, *fires;
} rtimer_t;

static void rfire(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	rtimer_t *r = arg;
	uint64_t now = thoth_loop_now(loop), d = thoth_timer_deadline(t);
	/* The wake-up instant is what the CPU sees: thoth_loop_now() is read
	 * once per wake-up, so timers of one batch log the same value. */
	uint64_t i = atomic_fetch_add(&r->sh->n, 1);
	if (i < r->cap)
		r->sh->at[i] = now;
	(*r->fires)++;
	if (now < d)
		(*r->early)++;          /* the loop's rule broken: must never happen */
	else if (now > d + r->slack + 5 * MS)
		(*r->late)++;           /* the host ran us > 5 ms after the window: load, not the rule */
	thoth_timer_rearm(loop, t, d + r->period, r->slack);
}

static int real_run(unsigned procs, unsigned per_proc, double slack_frac, uint64_t span, bool grid,
		    uint64_t *cpu_wakeups, uint64_t *fires_out, uint64_t *early_out, uint64_t *late_out)
{
	size_t cap = 1 << 20;
	rshared_t *sh = mmap(NULL, sizeof *sh + cap * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *counts = mmap(NULL, 3 * procs * sizeof(uint64_t), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED || counts == MAP_FAILED)
		return -1;
	uint64_t start = thoth_clock_now() + 200 * MS;
	pid_t pids[256];
	for (unsigned p = 0; p < procs && p < 256; p++) {
		double seeds[64][2];
		for (unsigned k = 0; k < per_proc && k < 64; k++)
			seeds[k][0] = urand(), seeds[k][1] = urand();
		fflush(NULL);
		pids[p] = fork();
		if (pids[p] == 0) {
			thoth_loop_t *loop;
			thoth_loop_options_t o = { .no_timer_grid = !grid };
			if (thoth_loop_new_with(&o, &loop))
				_exit(1);
			rtimer_t r[64];
			for (unsigned k = 0; k < per_proc && k < 64; k++) {
				r[k] = (rtimer_t){ .period = (uint64_t)(100 * MS * pow(100.0, seeds[k][0])), .sh = sh,
						   .cap = cap, .fires = &counts[3 * p], .early = &counts[3 * p + 1],
						   .late = &counts[3 * p + 2] };
				r[k].slack = (uint64_t)((double)r[k].period * slack_frac);
				uint64_t first = start + (uint64_t)(seeds[k][1] * (double)r[k].period);
				thoth_loop_add_timer(loop, first, r[k].slack, rfire, &r[k], &r[k].t);
			}
			uint64_t end = start + span;
			while (thoth_clock_now() < end)
				thoth_loop_run_once(loop, true);
			_exit(0);
		}
	}
	for (unsigned p = 0; p < procs && p < 256; p++)
		waitpid(pids[p], NULL, 0);
	uint64_t n = atomic_load(&sh->n);
	if (n > cap)
		n = cap;
	qsort(sh->at, n, sizeof sh->at[0], cmp_u64);
	/* Distinct CPU wake-ups: instants closer than 200 us are one wake-up
	 * (the host fires expiries due together in one timer interrupt; the
	 * processes then read their clocks a little apart). */
	uint64_t w = 0;
	for (uint64_t i = 0; i < n; i++)
		w += i == 0 || sh->at[i] - sh->at[i - 1] > 200000u;
	*cpu_wakeups = w;
	*fires_out = *early_out = *late_out = 0;
	for (unsigned p = 0; p < procs; p++)
		*fires_out += counts[3 * p], *early_out += counts[3 * p + 1], *late_out += counts[3 * p + 2];
	munmap(sh, sizeof *sh + cap * sizeof(uint64_t));
	munmap(counts, 3 * procs * sizeof(uint64_t));
	return 0;
}

int main(int argc, char **argv)
{
	unsigned seconds = 60, per_proc = 4;
	uint64_t seed = 42;
	bool real = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timers-per-process") && i + 1 < argc)
			per_proc = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--real"))
			real = true;
		else {
			fprintf(stderr, "usage: bench_timers [--seconds N] [--timers-per-process K] [--seed S] [--real]\n");
			return 2;
		}
	}
	if (!seconds || !per_proc || per_proc > 64) {
		fprintf(stderr, "bench_timers: --seconds >= 1, --timers-per-process 1..64\n");
		return 2;
	}
	static const unsigned procs[] = { 1, 10, 50 };
	static const double slacks[] = { 0, 0.01, 0.10 };
	if (!real) {
		printf("# bench_timers (SIMULATED in virtual time with the loop's timerq + timergrid code):\n"
		       "# %u periodic timers per process (10 Hz..0.1 Hz log-uniform, random phase), %u s, seed %llu\n",
		       per_proc, seconds, (unsigned long long)seed);
		printf("%5s %6s %9s %9s %9s %9s %9s %8s %8s %8s\n", "procs", "slack", "timerfd", "alone", "grid",
		       "optimum", "proc_wk", "tfd/grid", "grid/opt", "outside");
		for (unsigned p = 0; p < 3; p++)
			for (unsigned s = 0; s < 3; s++) {
				outcome_t a, g;
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, false, seed + p, &a);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, true, seed + p, &g);
				printf("%5u %5.0f%% %9llu %9llu %9llu %9llu %9llu %7.1fx %7.2fx %8llu\n", procs[p],
				       slacks[s] * 100, (unsigned long long)g.fires, (unsigned long long)a.cpu_wakeups,
				       (unsigned long long)g.cpu_wakeups, (unsigned long long)g.optimum,
				       (unsigned long long)g.proc_wakeups, (double)g.fires / (double)g.cpu_wakeups,
				       (double)g.cpu_wakeups / (double)g.optimum,
				       (unsigned long long)(a.outside + g.outside));
				if (p == 2 && s == 2) {
					printf("# lateness (fire - deadline) / slack, grid, 50 procs at 10%%: ");
					for (int b = 0; b <= 10; b++)
						printf("%s%d%%:%llu", b ? " " : "", b * 10, (unsigned long long)g.late_hist[b]);
					printf("\n");
				}
			}
		printf("# timerfd = one timerfd per timer (wake-ups = expiries); alone = each process coalescing\n"
		       "# only its own timers (the loop before SCHED-3); grid = thoth_loop now; optimum = fewest\n"
		       "# instants stabbing every window; proc_wk = per-process wake-ups summed (grid);\n"
		       "# outside = fires outside their window (must be 0)\n");
		return 0;
	}
	printf("# bench_timers --real: forked processes with real thoth_loops, %u timers each, %u s per row;\n"
	       "# CPU wake-ups = distinct wake-up instants (closer than 200 us = one)\n", per_proc, seconds);
	printf("%5s %6s %9s %9s %9s %8s %8s\n", "procs", "slack", "fires", "alone", "grid", "early", "late>5ms");
	for (unsigned p = 1; p < 3; p++)
		for (unsigned s = 1; s < 3; s++) {
			uint64_t wa, wg, fa, fg, ea, eg, la, lg;
			uint64_t st = rng_state;
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, false, &wa, &fa, &ea, &la))
				return 1;
			rng_state = st;     /* the same timers for both rows */
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, true, &wg, &fg, &eg, &lg))
				return 1;
			printf("%5u %5.0f%% %9llu %9llu %9llu %8llu %8llu\n", procs[p], slacks[s] * 100,
			       (unsigned long long)fg, (unsigned long long)wa, (unsigned long long)wg,
			       (unsigned long long)(ea + eg), (unsigned long long)(la + lg));
			fflush(stdout);
		}
	return 0;
}
