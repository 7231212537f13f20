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
 * Every fire is checked to lie inside its window.  The real-process check
 * of the same rule is bench_timers --real: forked processes with real
 * thoth_loops (early = fired before the deadline, must be 0; late = run
 * more than 5 ms after the window's end, which is the host's scheduling
 * latency under load), and the same timers as one real timerfd each.
 * Lateness (fire - deadline) there comes from the loop's own timer_fire
 * trace point (arg0 = lateness, arg1 = slack), read back from each
 * process's trace buffer, beside the lateness the timerfd processes
 * measure after each expiry; the simulation prints no lateness.
 *
 *   bench_timers [--seconds N] [--timers-per-process K] [--procs N] [--seed S] [--real]
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "thoth/trace.h"
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
} outcome_t;

typedef enum policy { POL_ALONE, POL_GRID, POL_JOIN, POL_PAGE, POL_TIMERFD } policy_t;

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
	case POL_TIMERFD:
		break;              /* real runs only */
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

/* Shared with the forked processes: four arrays of CAP words after the
 * header (instants fired at; windows, two words each; armed instants that
 * fired; lateness in ns) and the lateness histogram. */
typedef struct rshared {
	_Atomic uint64_t n, n_armed, n_late, lost;
	_Atomic uint64_t hist[12];  /* lateness / slack in tenths: [0..9], [10] = 100% .. +5 ms, [11] later */
	uint64_t at[];
} rshared_t;

#define R_CAP (1u << 20)
#define R_WORDS (5u * R_CAP)    /* at, windows (2), armed, late */

static uint64_t *r_wins(rshared_t *sh) { return sh->at + R_CAP; }
static uint64_t *r_armed(rshared_t *sh) { return sh->at + 3 * R_CAP; }
static uint64_t *r_late(rshared_t *sh) { return sh->at + 4 * R_CAP; }

typedef struct rtimer {
	uint64_t period, slack;
	thoth_timer_t *t;
	rshared_t *sh;
	uint64_t *early, *late, *fires;
} rtimer_t;

/* One fire (a thoth timer's callback, or a timerfd expiry read after
 * epoll_wait) at NOW of the window [D, D + SLACK]. */
static void record_fire(rshared_t *sh, uint64_t now, uint64_t d, uint64_t slack, uint64_t *fires, uint64_t *early,
			uint64_t *late)
{
	uint64_t i = atomic_fetch_add(&sh->n, 1);
	if (i < R_CAP) {
		sh->at[i] = now;
		r_wins(sh)[2 * i] = d;
		r_wins(sh)[2 * i + 1] = d + slack;
	}
	(*fires)++;
	if (now < d)
		(*early)++;             /* the loop's rule broken: must never happen */
	else if (now > d + slack + 5 * MS)
		(*late)++;              /* the host ran us > 5 ms after the window: load, not the rule */
}

/* Lateness of one fire into the shared samples and histogram. */
static void record_lateness(rshared_t *sh, uint64_t late, uint64_t slack)
{
	uint64_t i = atomic_fetch_add(&sh->n_late, 1);
	if (i < R_CAP)
		r_late(sh)[i] = late;
	unsigned b = late <= slack ? (slack ? (unsigned)(late * 10 / slack) : 10)
		   : late <= slack + 5 * MS ? 10 : 11;
	atomic_fetch_add(&sh->hist[b > 11 ? 11 : b], 1);
}

static void rfire(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	rtimer_t *r = arg;
	/* thoth_loop_now() is read once per wake-up, so timers of one batch
	 * log the same value.  Since stop 34 that read is lazy: the batch's
	 * first caller, after the fd callbacks run before the timers, so the
	 * value (and timer_fire's lateness) includes their time; figures
	 * before and after stop 34 are not directly comparable
	 * (docs/BENCHMARKS.md).  The lateness is NOT taken here: the
	 * timer_fire trace point records it. */
	uint64_t now = thoth_loop_now(loop), d = thoth_timer_deadline(t);
	record_fire(r->sh, now, d, r->slack, r->fires, r->early, r->late);
	thoth_timer_rearm(loop, t, d + r->period, r->slack);
}

/* The loop's timer_fire events (arg0 = lateness, arg1 = slack). */
static int on_trace_event(const thoth_trace_event_t *ev, void *arg)
{
	if (ev->category == THOTH_TRACE_CAT_TIMER && !strcmp(ev->name, "timer_fire"))
		record_lateness(arg, ev->arg0, ev->arg1);
	return 0;
}

/* This process's own trace buffer, read back after its run. */
static void drain_own_trace(rshared_t *sh)
{
	int fd;
	thoth_trace_reader_t *rd;
	if (thoth_trace_export_fd(&fd) || thoth_trace_reader_open(fd, &rd)) {
		atomic_fetch_add(&sh->lost, 1ull << 32);        /* marks "no trace": printed as lost */
		return;
	}
	thoth_trace_reader_poll(rd, on_trace_event, sh);
	thoth_trace_stats_t st;
	if (thoth_trace_reader_stats(rd, &st) == 0)
		atomic_fetch_add(&sh->lost, st.dropped + st.overwritten + st.torn + st.invalid + st.no_ring);
	thoth_trace_reader_close(rd);
}

static void tfd_arm(int fd, uint64_t at)
{
	struct itimerspec its = { .it_value = { (time_t)(at / SEC), (long)(at % SEC) } };
	timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* The same timers as one timerfd each (the baseline the issue compares
 * against): epoll on all of them; an expiry is read, its lateness taken
 * from CLOCK_MONOTONIC right after epoll_wait returned, and the timerfd
 * re-armed (absolute) at deadline + period.  The process keeps the
 * default 50 us timer slack, as any timerfd user does. */
static void timerfd_child(rshared_t *sh, rtimer_t *r, const uint64_t *first, unsigned n, uint64_t end)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), fds[64];
	uint64_t dl[64];
	if (ep < 0)
		_exit(1);
	for (unsigned k = 0; k < n; k++) {
		fds[k] = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		struct epoll_event e = { .events = EPOLLIN, .data.u32 = k };
		if (fds[k] < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fds[k], &e))
			_exit(1);
		dl[k] = first[k];
		tfd_arm(fds[k], dl[k]);
	}
	for (uint64_t t; (t = thoth_clock_now()) < end;) {
		struct epoll_event ev[64];
		int m = epoll_wait(ep, ev, 64, (int)((end - t) / MS) + 1);
		uint64_t now = thoth_clock_now();
		for (int i = 0; i < m; i++) {
			unsigned k = ev[i].data.u32;
			uint64_t x;
			if (k >= n || read(fds[k], &x, sizeof x) != sizeof x)
				continue;
			uint64_t ia = atomic_fetch_add(&sh->n_armed, 1);
			if (ia < R_CAP)
				r_armed(sh)[ia] = dl[k];
			record_fire(sh, now, dl[k], r[k].slack, r[k].fires, r[k].early, r[k].late);
			record_lateness(sh, now - dl[k], r[k].slack);
			dl[k] += r[k].period;
			tfd_arm(fds[k], dl[k]);
		}
	}
	_exit(0);
}

typedef struct routcome {
	uint64_t cpu_wakeups, fires, early, late, nvcsw, rung, optimum, expiries, lost;
	uint64_t late_p50, late_p99, late_max, n_late;
	uint64_t hist[12];
} routcome_t;

static uint64_t pct(const uint64_t *v, uint64_t n, double q)
{
	if (!n)
		return 0;
	uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int real_run(unsigned procs, unsigned per_proc, double slack_frac, uint64_t span, policy_t pol,
		    routcome_t *o)
{
	size_t bytes = sizeof(rshared_t) + R_WORDS * sizeof(uint64_t);
	rshared_t *sh = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
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
		if (pids[p] != 0)
			continue;
		rtimer_t r[64];
		uint64_t first[64];
		for (unsigned k = 0; k < per_proc && k < 64; k++) {
			r[k] = (rtimer_t){ .period = (uint64_t)(100 * MS * pow(100.0, seeds[k][0])), .sh = sh,
					   .fires = &counts[4 * p], .early = &counts[4 * p + 1],
					   .late = &counts[4 * p + 2] };
			r[k].slack = (uint64_t)((double)r[k].period * slack_frac);
			first[k] = start + (uint64_t)(seeds[k][1] * (double)r[k].period);
		}
		uint64_t end = start + span;
		if (pol == POL_TIMERFD)
			timerfd_child(sh, r, first, per_proc, end);      /* does not return */
		/* The thoth policies: the loop's timer_fire points go to this
		 * process's own trace buffer (TIMER category on, nothing else),
		 * read back when the run ends. */
		thoth_trace_config_t tc = { .ring_count = 2, .ring_records = 16384,
					    .full_policy = THOTH_TRACE_DROP_NEWEST,
					    .enabled = THOTH_TRACE_MASK(TIMER), .process_name = "bench-timers" };
		bool traced = thoth_trace_init(&tc) == 0;
		thoth_loop_t *loop;
		thoth_loop_options_t lo = { .no_timer_grid = pol == POL_ALONE, .no_timer_page = pol != POL_PAGE };
		if (thoth_loop_new_with(&lo, &loop))
			_exit(1);
		for (unsigned k = 0; k < per_proc && k < 64; k++)
			thoth_loop_add_timer(loop, first[k], r[k].slack, rfire, &r[k], &r[k].t);
		while (thoth_clock_now() < end) {
			thoth_loop_stats_t b, a;
			thoth_loop_stats(loop, &b);
			uint64_t armed = thoth_loop_armed_at(loop);
			thoth_loop_run_once(loop, true);
			thoth_loop_stats(loop, &a);
			if (armed && a.wakeups_timer > b.wakeups_timer && a.wakeups_rung == b.wakeups_rung) {
				uint64_t i = atomic_fetch_add(&sh->n_armed, 1);
				if (i < R_CAP)
					r_armed(sh)[i] = armed;
			}
		}
		thoth_loop_stats_t st;
		thoth_loop_stats(loop, &st);
		counts[4 * p + 3] = st.wakeups_rung;
		thoth_loop_free(loop);          /* gives the page slot back */
		if (traced)
			drain_own_trace(sh);
		else
			atomic_fetch_add(&sh->lost, 1ull << 32);
		_exit(0);
	}
	o->nvcsw = 0;
	for (unsigned p = 0; p < procs && p < 256; p++) {
		struct rusage ru;
		if (wait4(pids[p], NULL, 0, &ru) == pids[p])
			o->nvcsw += (uint64_t)ru.ru_nvcsw;
	}
	uint64_t n = atomic_load(&sh->n);
	if (n > R_CAP)
		n = R_CAP;
	/* The optimum from the windows this run fired (before at[] is sorted:
	 * the windows are indexed like the instants). */
	win_t *wins = malloc(n * sizeof *wins);
	for (uint64_t i = 0; wins && i < n; i++)
		wins[i] = (win_t){ r_wins(sh)[2 * i], r_wins(sh)[2 * i + 1] };
	o->optimum = wins ? optimum(wins, n) : 0;
	free(wins);
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
	/* Timer interrupts: the distinct instants a timerfd was armed for and
	 * fired at (own wake-ups; a rung loop rides another's).  Independent
	 * of how late the host runs the processes. */
	uint64_t na = atomic_load(&sh->n_armed), *armed = r_armed(sh);
	if (na > R_CAP)
		na = R_CAP;
	qsort(armed, na, sizeof *armed, cmp_u64);
	o->expiries = 0;
	for (uint64_t i = 0; i < na; i++)
		o->expiries += i == 0 || armed[i] - armed[i - 1] > 50000u;   /* the kernel's timer slack */
	/* Lateness: the timer_fire trace events (thoth) or the timerfd
	 * processes' own measurements. */
	uint64_t nl = atomic_load(&sh->n_late), *late = r_late(sh);
	if (nl > R_CAP)
		nl = R_CAP;
	qsort(late, nl, sizeof *late, cmp_u64);
	o->n_late = nl;
	o->late_p50 = pct(late, nl, 0.50);
	o->late_p99 = pct(late, nl, 0.99);
	o->late_max = nl ? late[nl - 1] : 0;
	for (int b = 0; b < 12; b++)
		o->hist[b] = atomic_load(&sh->hist[b]);
	o->lost = atomic_load(&sh->lost);
	munmap(sh, bytes);
	munmap(counts, 4 * procs * sizeof(uint64_t));
	return 0;
}

int main(int argc, char **argv)
{
	unsigned seconds = 60, per_proc = 4, max_procs = 50;
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
		else if (!strcmp(argv[i], "--procs") && i + 1 < argc)
			max_procs = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_timers [--seconds N] [--timers-per-process K] [--procs N] [--seed S] [--real]\n");
			return 2;
		}
	}
	if (!seconds || !per_proc || per_proc > 64 || max_procs < 11 || max_procs > THOTH_TIMERPAGE_SLOTS) {
		fprintf(stderr, "bench_timers: --seconds >= 1, --timers-per-process 1..64, --procs 11..%u (the page's slots)\n",
			THOTH_TIMERPAGE_SLOTS);
		return 2;
	}
	/* --procs N: the largest row (and the "targets" line) has N processes */
	const unsigned procs[] = { 1, 10, max_procs };
	static const double slacks[] = { 0, 0.01, 0.10 };
	if (!real) {
		printf("# bench_timers (SIMULATED in virtual time with the loop's timerq + timergrid code):\n"
		       "# %u periodic timers per process (10 Hz..0.1 Hz log-uniform, random phase), %u s, seed %llu\n",
		       per_proc, seconds, (unsigned long long)seed);
		printf("%5s %6s %9s %9s %9s %9s %9s %9s %9s %9s %8s %8s %8s %8s\n", "procs", "slack", "timerfd",
		       "alone", "grid", "join", "page", "optimum", "proc_wk", "alone_wk", "tfd/page", "tfd/opt",
		       "page/opt", "outside");
		double tfd_page_10 = 0, tfd_opt_10 = 0, page_opt_10 = 0;
		for (unsigned p = 0; p < 3; p++)
			for (unsigned s = 0; s < 3; s++) {
				outcome_t a, g, j, w;
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_ALONE, seed + p, &a);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_GRID, seed + p, &g);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_JOIN, seed + p, &j);
				simulate(procs[p], per_proc, slacks[s], seconds * SEC, POL_PAGE, seed + p, &w);
				printf("%5u %5.0f%% %9llu %9llu %9llu %9llu %9llu %9llu %9llu %9llu %7.1fx %7.1fx %7.2fx %8llu\n",
				       procs[p], slacks[s] * 100, (unsigned long long)w.fires,
				       (unsigned long long)a.cpu_wakeups, (unsigned long long)g.cpu_wakeups,
				       (unsigned long long)j.cpu_wakeups, (unsigned long long)w.cpu_wakeups,
				       (unsigned long long)w.optimum, (unsigned long long)w.proc_wakeups,
				       (unsigned long long)a.proc_wakeups,
				       (double)w.fires / (double)w.cpu_wakeups,
				       (double)w.fires / (double)w.optimum,
				       (double)w.cpu_wakeups / (double)w.optimum,
				       (unsigned long long)(a.outside + g.outside + j.outside + w.outside));
				if (p == 2 && s == 2) {
					tfd_page_10 = (double)w.fires / (double)w.cpu_wakeups;
					tfd_opt_10 = (double)w.fires / (double)w.optimum;
					page_opt_10 = (double)w.cpu_wakeups / (double)w.optimum;
				}
			}
		printf("# CPU wake-ups (distinct instants of all processes): timerfd = one timerfd per timer\n"
		       "# (= expiries); alone = each process coalescing only its own timers (the loop before\n"
		       "# SCHED-3); grid = the per-boot grid (no thothd); join = join an instant another process\n"
		       "# posted on the page, else the window's end (no doorbells); page = thoth_loop with\n"
		       "# thothd's window page: sleep to the window's end, a loop woken by its timer rings the\n"
		       "# loops with a deadline passed; optimum = fewest instants stabbing every window;\n"
		       "# proc_wk / alone_wk = process wake-ups summed (page / alone); outside = fires outside\n"
		       "# their window, all four policies (must be 0); lateness: --real (from the timer_fire\n"
		       "# trace point of real loops, beside real timerfds)\n");
		/* Issue 13's targets at 50 processes and 10% slack: the achieved
		 * ratio next to the one the offline optimum itself allows (no
		 * policy can beat the optimum, so tfd/opt bounds tfd/page). */
		printf("\n# targets, %u processes at 10%% slack, %u timers per process:\n", max_procs, per_proc);
		printf("fewer wake-ups than one timerfd per timer: achieved %.1fx, offline optimum %.1fx, target 10x: %s\n",
		       tfd_page_10, tfd_opt_10,
		       tfd_page_10 >= 10 ? "met" : tfd_opt_10 < 10 ? "NOT MET (the optimum itself is below 10x on this workload)"
								  : "NOT MET");
		printf("page / offline optimum: %.2fx, target <= 1.1x: %s\n", page_opt_10,
		       page_opt_10 <= 1.1 ? "met" : "NOT MET");
		return 0;
	}
	/* The window page as thothd makes it, in a private runtime dir; the
	 * forked processes inherit the mapping, as connected services map it. */
	char dir[] = "/tmp/bench-timers-XXXXXX";
	if (!mkdtemp(dir) || thoth__timerpage_create(dir)) {
		fprintf(stderr, "bench_timers: cannot create the window page in %s\n", dir);
		return 1;
	}
	printf("# bench_timers --real: forked processes with real thoth_loops, %u timers each, %u s per row and\n"
	       "# policy (alone = end of window, gr = per-boot grid, pg = thothd's window page + doorbells), and the\n"
	       "# same timers as one real timerfd each (tfd);\n"
	       "# fires: timer callbacks of the page run;\n"
	       "# tmr_*: timer interrupts = distinct instants a timerfd was armed for and fired at (50 us apart\n"
	       "#   = one: the kernel's timer slack), load-independent; tmr_tfd is measured, not assumed;\n"
	       "# obs_pg: distinct instants the page run's processes actually ran their timers (200 us apart\n"
	       "#   = one): grows with the host's scheduling latency; optimum = fewest instants stabbing the\n"
	       "#   page run's windows;\n"
	       "# late_*: lateness (fire - deadline) p50 / p99 / max in us: pg from the loop's timer_fire trace\n"
	       "#   point (every fire of the page run), tfd measured by the timerfd processes after each expiry;\n"
	       "# vcsw: voluntary context switches of all processes; rung: wake-ups rung by another loop;\n"
	       "# early: fires before the deadline (must be 0); late>5ms: fires run > 5 ms after the window's end\n",
	       per_proc, seconds);
	printf("%5s %6s %6s | %6s %6s %6s %6s %6s %6s | %6s %6s | %21s | %21s | %7s %7s %6s %5s %8s\n", "procs",
	       "slack", "fires", "tmr_al", "tmr_gr", "tmr_pg", "tmrtfd", "tfd/pg", "tfd/op", "obs_pg", "optim",
	       "late_pg p50/p99/max", "late_tfd p50/p99/max", "vcsw_al", "vcsw_pg", "rung", "early", "late>5ms");
	int status = 0;
	for (unsigned p = 1; p < 3; p++)
		for (unsigned s = 1; s < 3; s++) {
			routcome_t a, g, w, t;
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
			rng_state = st;
			if (real_run(procs[p], per_proc, slacks[s], seconds * SEC, POL_TIMERFD, &t))
				status = 1;
			char lp[64], lt[64];
			snprintf(lp, sizeof lp, "%llu/%llu/%llu", (unsigned long long)(w.late_p50 / 1000),
				 (unsigned long long)(w.late_p99 / 1000), (unsigned long long)(w.late_max / 1000));
			snprintf(lt, sizeof lt, "%llu/%llu/%llu", (unsigned long long)(t.late_p50 / 1000),
				 (unsigned long long)(t.late_p99 / 1000), (unsigned long long)(t.late_max / 1000));
			printf("%5u %5.0f%% %6llu | %6llu %6llu %6llu %6llu %5.1fx %5.1fx | %6llu %6llu | %21s | %21s | %7llu "
			       "%7llu %6llu %5llu %8llu\n",
			       procs[p], slacks[s] * 100, (unsigned long long)w.fires, (unsigned long long)a.expiries,
			       (unsigned long long)g.expiries, (unsigned long long)w.expiries,
			       (unsigned long long)t.expiries, (double)t.expiries / (double)(w.expiries + !w.expiries),
			       (double)t.expiries / (double)(w.optimum + !w.optimum), (unsigned long long)w.cpu_wakeups,
			       (unsigned long long)w.optimum, lp, lt, (unsigned long long)a.nvcsw,
			       (unsigned long long)w.nvcsw, (unsigned long long)w.rung,
			       (unsigned long long)(a.early + g.early + w.early + t.early),
			       (unsigned long long)(a.late + g.late + w.late + t.late));
			/* The histogram the issue asks for, from the trace point. */
			printf("#   lateness / slack, page (timer_fire trace, %llu fires%s): ", (unsigned long long)w.n_late,
			       w.lost ? ", SOME LOST" : "");
			for (int b = 0; b < 10; b++)
				printf("%d-%d%%:%llu ", b * 10, b * 10 + 10, (unsigned long long)w.hist[b]);
			printf("end..+5ms:%llu later:%llu\n", (unsigned long long)w.hist[10], (unsigned long long)w.hist[11]);
			printf("#   lateness / slack, timerfd (%llu fires): ", (unsigned long long)t.n_late);
			for (int b = 0; b < 10; b++)
				printf("%d-%d%%:%llu ", b * 10, b * 10 + 10, (unsigned long long)t.hist[b]);
			printf("end..+5ms:%llu later:%llu\n", (unsigned long long)t.hist[10], (unsigned long long)t.hist[11]);
			if (w.lost || w.n_late != w.fires) {
				printf("#   trace: %llu timer_fire events for %llu fires, %llu lost\n",
				       (unsigned long long)w.n_late, (unsigned long long)w.fires,
				       (unsigned long long)w.lost);
				status = 1;
			}
			fflush(stdout);
		}
	thoth__timerpage_sweep(dir);    /* doorbells of loops that did not free themselves */
	rmdir(dir);
	return status;
	return 0;
}
