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
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "timergrid.h"
#include "timerpage.h"
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

typedef enum policy { POL_ALONE, POL_GRID, POL_JOIN, POL_PAGE } policy_t;

typedef struct sproc {
	timerq_t q;
	ptimer_t *t;
	uint64_t next;              /* the instant its timerfd is armed for */
	bool rung;                  /* next was set by another loop's doorbell */
} sproc_t;

typedef struct ringctx {
	sproc_t *sp;
	uint64_t now;
} ringctx_t;

static void sim_ring(int slot, void *arg)
{
	ringctx_t *c = arg;
	c->sp[slot].next = c->now;
	c->sp[slot].rung = true;
}

static void record_inst(uint64_t **inst, size_t *n, size_t *cap, uint64_t at)
{
	if (*n == *cap)
		*inst = realloc(*inst, (*cap *= 2) * sizeof **inst);
	(*inst)[(*n)++] = at;
}

/* Where process P's loop arms its timerfd now (loop.c rearm()). */
static uint64_t plan(sproc_t *sp, unsigned p, policy_t pol, uint64_t pert, timerpage_t *pg)
{
	uint64_t hi = timerq_min_latest(&sp->q);
	bool joined;
	switch (pol) {
	case POL_ALONE: return hi;
	case POL_GRID: return timergrid_pick(max_due(&sp->q, 0, hi, 0), hi, pert);
	case POL_JOIN: {
		uint64_t at = timerpage_pick(pg, (int)p, max_due(&sp->q, 0, hi, 0), hi, &joined);
		timerpage_post(pg, (int)p, at, timerq_min_deadline(&sp->q));
		return at;
	}
	case POL_PAGE:
		timerpage_post(pg, (int)p, hi, timerq_min_deadline(&sp->q));
		return hi;
	}
	return hi;
}

/*
 * All processes in one virtual timeline: the process whose instant comes
 * first wakes, fires what is due, re-arms its periodic timers and plans its
 * next instant, as its loop would (with the window page, it sees what the
 * others posted at that moment, no more).
 */
static void simulate(unsigned procs, unsigned per_proc, double slack_frac, uint64_t span, policy_t pol,
		     uint64_t seed, outcome_t *o)
{
	memset(o, 0, sizeof *o);
	rng_state = seed;
	uint64_t pert = timergrid_perturbation_of("bench-timers-boot");
	size_t cap = 1 << 16, n_inst = 0, n_win = 0, cap_win = 1 << 16;
	uint64_t *inst = malloc(cap * sizeof *inst);
	win_t *wins = malloc(cap_win * sizeof *wins);
	sproc_t *sp = calloc(procs, sizeof *sp);
	timerpage_t *pg = calloc(1, sizeof *pg);
	timerpage_init(pg);
	for (unsigned p = 0; p < procs; p++)
		timerpage_claim(pg, p + 1, false);      /* slot p */
	for (unsigned p = 0; p < procs; p++) {
		timerq_init(&sp[p].q);
		sp[p].t = calloc(per_proc, sizeof *sp[p].t);
		for (unsigned k = 0; k < per_proc; k++) {
			ptimer_t *t = &sp[p].t[k];
			/* 10 Hz .. 0.1 Hz, log uniform; random phase */
			t->period = (uint64_t)(100 * MS * pow(100.0, urand()));
			t->slack = (uint64_t)((double)t->period * slack_frac);
			uint64_t first = SEC + (uint64_t)(urand() * (double)t->period);
			timerq_insert(&sp[p].q, &t->q, first, t->slack);
		}
	}
	for (unsigned p = 0; p < procs; p++)
		sp[p].next = plan(&sp[p], p, pol, pert, pg);
	uint64_t end = SEC + span;
	for (;;) {
		unsigned p = 0;
		for (unsigned i = 1; i < procs; i++)
			if (sp[i].next < sp[p].next)
				p = i;
		uint64_t at = sp[p].next;
		if (at >= end)
			break;
		o->proc_wakeups++;
		record_inst(&inst, &n_inst, &cap, at);
		if (pol == POL_PAGE && !sp[p].rung) {
			/* woken by its own timer: ring the due sleepers (loop.c) */
			ringctx_t c = { sp, at };
			timerpage_due_sleepers(pg, (int)p, at, 0, sim_ring, &c);
		}
		sp[p].rung = false;
		timerq_entry_t *e;
		while ((e = timerq_pop_due(&sp[p].q, at))) {
			ptimer_t *x = (ptimer_t *)e;
			o->fires++;
			if (at < x->q.deadline || at > x->q.latest)
				o->outside++;
			unsigned b = x->slack ? (unsigned)((at - x->q.deadline) * 10 / x->slack) : 10;
			o->late_hist[b > 10 ? 10 : b]++;
			if (n_win == cap_win)
				wins = realloc(wins, (cap_win *= 2) * sizeof *wins);
			wins[n_win++] = (win_t){ x->q.deadline, x->q.latest };
			timerq_insert(&sp[p].q, &x->q, x->q.deadline + x->period, x->slack);
		}
		sp[p].next = plan(&sp[p], p, pol, pert, pg);
	}
	for (unsigned p = 0; p < procs; p++) {
		while (sp[p].q.n)
			timerq_remove(&sp[p].q, sp[p].q.deadline_heap[0]);
		timerq_free(&sp[p].q);
		free(sp[p].t);
	}
	free(sp);
	free(pg);
	qsort(inst, n_inst, sizeof *inst, cmp_u64);
	for (size_t i = 0; i < n_inst; i++)
		o->cpu_wakeups += i == 0 || inst[i] != inst[i - 1];
	o->optimum = optimum(wins, n_win);
	free(inst);
	free(wins);
}

/* ---- real processes ------------------------------------------------------- */

typedef struct rshared {
	_Atomic uint64_t n, n_armed;
	uint64_t at[];              /* cap instants, cap windows (win_t), cap armed instants that fired */
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
	if (i < r->cap) {
		r->sh->at[i] = now;
		((win_t *)(r->sh->at + r->cap))[i] = (win_t){ d, d + r->slack };
	}
	(*r->fires)++;
	if (now < d)
		(*r->early)++;          /* the loop's rule broken: must never happen */
	else if (now > d + r->slack + 5 * MS)
		(*r->late)++;           /* the host ran us > 5 ms after the window: load, not the rule */
	thoth_timer_rearm(loop, t, d + r->period, r->slack);
}

typedef struct routcome {
	uint64_t cpu_wakeups, fires, early, late, nvcsw, rung, optimum, expiries;
} routcome_t;

static int real_run(unsigned procs, unsigned per_proc, double slack_frac, uint64_t span, policy_t pol,
		    routcome_t *o)
{
	size_t cap = 1 << 20;
	rshared_t *sh = mmap(NULL, sizeof *sh + 4 * cap * sizeof(uint64_t), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *counts = mmap(NULL, 4 * procs * sizeof(uint64_t), PROT_READ | PROT_WRITE,
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
			thoth_loop_options_t lo = { .no_timer_grid = pol == POL_ALONE,
						    .no_timer_page = pol != POL_PAGE };
			if (thoth_loop_new_with(&lo, &loop))
				_exit(1);
			rtimer_t r[64];
			for (unsigned k = 0; k < per_proc && k < 64; k++) {
				r[k] = (rtimer_t){ .period = (uint64_t)(100 * MS * pow(100.0, seeds[k][0])), .sh = sh,
						   .cap = cap, .fires = &counts[4 * p], .early = &counts[4 * p + 1],
						   .late = &counts[4 * p + 2] };
				r[k].slack = (uint64_t)((double)r[k].period * slack_frac);
				uint64_t first = start + (uint64_t)(seeds[k][1] * (double)r[k].period);
				thoth_loop_add_timer(loop, first, r[k].slack, rfire, &r[k], &r[k].t);
			}
			uint64_t end = start + span;
			while (thoth_clock_now() < end) {
				thoth_loop_stats_t b, a;
				thoth_loop_stats(loop, &b);
				uint64_t armed = thoth_loop_armed_at(loop);
				thoth_loop_run_once(loop, true);
				thoth_loop_stats(loop, &a);
				if (armed && a.wakeups_timer > b.wakeups_timer && a.wakeups_rung == b.wakeups_rung) {
					uint64_t i = atomic_fetch_add(&sh->n_armed, 1);
					if (i < cap)
						sh->at[3 * cap + i] = armed;
				}
			}
			thoth_loop_stats_t st;
			thoth_loop_stats(loop, &st);
			counts[4 * p + 3] = st.wakeups_rung;
			thoth_loop_free(loop);          /* gives the page slot back */
			_exit(0);
		}
	}
	o->nvcsw = 0;
	for (unsigned p = 0; p < procs && p < 256; p++) {
		struct rusage ru;
		if (wait4(pids[p], NULL, 0, &ru) == pids[p])
			o->nvcsw += (uint64_t)ru.ru_nvcsw;
	}
	uint64_t n = atomic_load(&sh->n);
	if (n > cap)
		n = cap;
	qsort(sh->at, n, sizeof sh->at[0], cmp_u64);
	/* Distinct CPU wake-ups: instants closer than 200 us are one wake-up
	 * (the host fires expiries due together in one timer interrupt; the
	 * processes then read their clocks a little apart, and a rung loop
	 * runs a few tens of us after the loop that rang it). */
	uint64_t w = 0;
	for (uint64_t i = 0; i < n; i++)
		w += i == 0 || sh->at[i] - sh->at[i - 1] > 200000u;
	o->cpu_wakeups = w;
	o->fires = o->early = o->late = o->rung = 0;
	for (unsigned p = 0; p < procs; p++) {
		o->fires += counts[4 * p];
		o->early += counts[4 * p + 1];
		o->late += counts[4 * p + 2];
		o->rung += counts[4 * p + 3];
	}
	o->optimum = optimum((win_t *)(sh->at + cap), n);
	/* Timer interrupts: the distinct instants a timerfd was armed for and
	 * fired at (own wake-ups; a rung loop rides another's).  Independent
	 * of how late the host runs the processes. */
	uint64_t na = atomic_load(&sh->n_armed), *armed = sh->at + 3 * cap;
	if (na > cap)
		na = cap;
	qsort(armed, na, sizeof *armed, cmp_u64);
	o->expiries = 0;
	for (uint64_t i = 0; i < na; i++)
		o->expiries += i == 0 || armed[i] - armed[i - 1] > 50000u;   /* the kernel's timer slack */
	munmap(sh, sizeof *sh + 4 * cap * sizeof(uint64_t));
	munmap(counts, 4 * procs * sizeof(uint64_t));
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
		printf("%5s %6s %9s %9s %9s %9s %9s %9s %9s %9s %8s %8s %8s\n", "procs", "slack", "timerfd",
		       "alone", "grid", "join", "page", "optimum", "proc_wk", "alone_wk", "tfd/page", "page/opt",
		       "outside");
		for (unsigned p = 0; p < 3; p++)
			for (unsigned s = 0; s < 3; s++) {
				outcome_t a, g, j, w;
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_ALONE, seed + p, &a);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_GRID, seed + p, &g);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_JOIN, seed + p, &j);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_PAGE, seed + p, &w);
				printf("%5u %5.0f%% %9llu %9llu %9llu %9llu %9llu %9llu %9llu %9llu %7.1fx %7.2fx %8llu\n",
				       procs[p], slacks[s] * 100, (unsigned long long)w.fires,
				       (unsigned long long)a.cpu_wakeups, (unsigned long long)g.cpu_wakeups,
				       (unsigned long long)j.cpu_wakeups, (unsigned long long)w.cpu_wakeups,
				       (unsigned long long)w.optimum, (unsigned long long)w.proc_wakeups,
				       (unsigned long long)a.proc_wakeups,
				       (double)w.fires / (double)w.cpu_wakeups,
				       (double)w.cpu_wakeups / (double)w.optimum,
				       (unsigned long long)(a.outside + g.outside + j.outside + w.outside));
				if (p == 2 && s == 2) {
					printf("# lateness (fire - deadline) / slack, page, 50 procs at 10%%: ");
					for (int b = 0; b <= 10; b++)
						printf("%s%d%%:%llu", b ? " " : "", b * 10, (unsigned long long)w.late_hist[b]);
					printf("\n");
				}
			}
		printf("# CPU wake-ups (distinct instants of all processes): timerfd = one timerfd per timer\n"
		       "# (= expiries); alone = each process coalescing only its own timers (the loop before\n"
		       "# SCHED-3); grid = the per-boot grid (no thothd); join = join an instant another process\n"
		       "# posted on the page, else the window's end (no doorbells); page = thoth_loop with\n"
		       "# thothd's window page: sleep to the window's end, a loop woken by its timer rings the\n"
		       "# loops with a deadline passed; optimum = fewest instants stabbing every window;\n"
		       "# proc_wk / alone_wk = process wake-ups summed (page / alone); outside = fires outside\n"
		       "# their window, all four policies (must be 0)\n");
		return 0;
	}
	/* The window page as thothd makes it, in a private runtime dir; the
	 * forked processes inherit the mapping, as connected services map it. */
	char dir[] = "/tmp/bench-timers-XXXXXX";
	if (!mkdtemp(dir) || thoth__timerpage_create(dir)) {
		fprintf(stderr, "bench_timers: cannot create the window page in %s\n", dir);
		return 1;
	}
	printf("# bench_timers --real: forked processes with real thoth_loops, %u timers each, %u s per row\n"
	       "# (alone = end of window, gr = per-boot grid, pg = thothd's window page + doorbells);\n"
	       "# fires: timer callbacks (= wake-ups with one timerfd per timer);\n"
	       "# tmr_*: timer interrupts = distinct instants a timerfd was armed for and fired at (50 us apart\n"
	       "#   = one: the kernel's timer slack), load-independent;\n"
	       "# obs_*: distinct instants the processes actually ran their timers (200 us apart = one): grows\n"
	       "#   with the host's scheduling latency; optimum = fewest instants stabbing the page run's windows;\n"
	       "# vcsw: voluntary context switches of all processes; rung: wake-ups rung by another loop\n",
	       per_proc, seconds);
	printf("%5s %6s %7s | %7s %7s %7s %7s | %7s %7s %7s %8s | %8s %8s %8s %7s %8s\n", "procs", "slack",
	       "fires", "tmr_al", "tmr_gr", "tmr_pg", "tfd/pg", "obs_al", "obs_gr", "obs_pg", "optimum", "vcsw_al",
	       "vcsw_pg", "rung", "early", "late>5ms");
	int status = 0;
	for (unsigned p = 1; p < 3; p++)
		for (unsigned s = 1; s < 3; s++) {
			routcome_t a, g, w;
			uint64_t st = rng_state;
			rng_state = st;     /* the same timers for every policy */
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, POL_ALONE, &a))
				status = 1;
			rng_state = st;
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, POL_GRID, &g))
				status = 1;
			rng_state = st;
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, POL_PAGE, &w))
				status = 1;
			printf("%5u %5.0f%% %7llu | %7llu %7llu %7llu %6.1fx | %7llu %7llu %7llu %8llu | %8llu %8llu %8llu "
			       "%7llu %8llu\n",
			       procs[p], slacks[s] * 100, (unsigned long long)w.fires, (unsigned long long)a.expiries,
			       (unsigned long long)g.expiries, (unsigned long long)w.expiries,
			       (double)w.fires / (double)(w.expiries + !w.expiries), (unsigned long long)a.cpu_wakeups,
			       (unsigned long long)g.cpu_wakeups, (unsigned long long)w.cpu_wakeups,
			       (unsigned long long)w.optimum, (unsigned long long)a.nvcsw, (unsigned long long)w.nvcsw,
			       (unsigned long long)w.rung, (unsigned long long)(a.early + g.early + w.early),
			       (unsigned long long)(a.late + g.late + w.late));
			fflush(stdout);
		}
	thoth__timerpage_sweep(dir);    /* doorbells of loops that did not free themselves */
	rmdir(dir);
	return status;
	return 0;
}
