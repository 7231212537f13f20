/*
 * governed.c - a channel server's dispatch drives its domain's frequency
 * (governed.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "governed.h"
#include "pm_clock.h"
#include "power_account.h"
#include "thoth/caller.h"
#include "thoth/error.h"
#include "thoth/trace.h"

struct thoth_pm_governed {
	thoth_loop_t *loop;
	thoth_pm_dvfs_t *dvfs;
	uint64_t qos_ns;
	thoth_invoke_fn inner;
	const void *inner_handlers;
	void *inner_self;
	thoth_timer_t *timer;      /* armed only while above the floor */
	uint64_t cpu_seen_ns;      /* thread CPU time at the last decision */
	uint32_t opp;
	uint32_t model_id;         /* the domain model's trace_id (energy.h; 0: not a published table) */
	thoth_pm_governed_stats_t stats;
	thoth_pm_governed_change_fn on_change;
	void *change_arg;
	thoth_pm_governed_sent_fn sent_fn;
	void *sent_arg;
	/* Requests waiting in the rings (governed.h "Seeing the rings"):
	 * looked at, at dispatch and at each check while a handler runs, in
	 * the server dispatching it (set at the dispatch, cleared at its
	 * completion: the watcher may read the server only while the loop
	 * thread is held inside that dispatch). */
	bool peek;
	thoth_chan_server_t *srv;
	uint64_t cur_deadline;     /* the running request's (unstamped waiting ones are due no later) */
	/* Deciding while a handler runs (governed.h): the watcher thread asks
	 * the governor every mid_ns while one handler runs.  mu guards
	 * everything above and the work segments below (the loop thread at
	 * dispatch, completion and the hold timer; the watcher at its checks);
	 * the words below it are the two threads' handshake. */
	pthread_mutex_t mu;
	pthread_t watcher;
	bool watcher_on;
	pid_t pid;                 /* the process that started the watcher (a forked child has none) */
	clockid_t serve_clock;     /* the serving thread's CPU clock */
	uint64_t mid_ns;           /* 0: no checks */
	uint64_t seg_cpu;          /* serving thread's CPU time where the running handler's segment began */
	uint32_t seg_opp;          /* ...and the OPP it runs at */
	double seg_work;           /* work of the handler's earlier segments (ns at capacity 1024) */
	_Atomic uint32_t gen;      /* odd while a handler runs; the watcher's futex word */
	_Atomic uint64_t check_at; /* the watcher's next check (CLOCK_MONOTONIC ns) */
	_Atomic uint64_t idle_since; /* last completion */
	_Atomic uint32_t parked;   /* the watcher sleeps untimed: a dispatch wakes it */
	_Atomic uint32_t opp_now;  /* g->opp, for handlers (thoth_pm_governed_opp) */
	_Atomic bool stop;
};

static void on_check(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

/* Why the governor was asked (pm_freq_change's reason, docs/OBSERVABILITY.md).
 * Both PM points name the domain's model and the OPP (power_account.h), so
 * a reader can price OPP time with the published table (thothd's dashboard). */
enum { FREQ_AT_ARRIVAL = 1, FREQ_AT_COMPLETION = 2, FREQ_BY_TIMER = 3, FREQ_MID_HANDLER = 4 };

/* The requests waiting that one look at the rings plans for (the rest,
 * if any, are seen as they come up). */
#define PEEK_MAX 64

/* A[0..N) in ascending order: a natural merge sort, since each ring's
 * requests come in send order (their deadlines ascend, the clamp keeps
 * that), so the rings' runs only need merging: O(N log runs), one pass
 * when already sorted.  (An insertion sort cost ~70 instructions per
 * request with 8 rings, the runs in the wrong order: bench_pm_peek.) */
static void sort_due(uint64_t *a, uint32_t n)
{
	uint64_t tmp[PEEK_MAX];
	for (;;) {
		uint32_t i = 0, o = 0;
		while (i < n) {
			uint32_t m = i + 1, e;
			while (m < n && a[m - 1] <= a[m])
				m++;
			if (i == 0 && m == n)
				return;         /* one run: sorted */
			for (e = m < n ? m + 1 : m; e < n && a[e - 1] <= a[e]; e++)
				;
			uint32_t x = i, y = m;  /* merge [i, m) and [m, e) */
			while (x < m && y < e)
				tmp[o++] = a[y] < a[x] ? a[y++] : a[x++];
			while (x < m)
				tmp[o++] = a[x++];
			while (y < e)
				tmp[o++] = a[y++];
			i = e;
		}
		if (!n)
			return;
		memcpy(a, tmp, (size_t)n * sizeof *a);
	}
}

/* Announce the requests waiting in the rings now as demand (dvfs.h
 * thoth_pm_dvfs_waiting_due), each due when the running request is due,
 * or earlier where its own send stamp says so (QOS after it, clamped as a
 * dispatched request's is: a peer's word, thoth_pm_governed_deadline),
 * earliest first.  Not each at its own deadline: planned that way, the
 * live misses did not fall (bench_pm_live, docs/PM.md "Seeing the
 * rings"): the plan then runs to the waiting requests' deadlines exactly,
 * and the live service's own delays (its wake-ups, dispatch, a CPU shared
 * with others) come out of nothing; due with the running one, as the
 * dispatcher's count always was, they leave that headroom.  Under g->mu,
 * with g->srv's loop thread inside its dispatch. */
static void announce_waiting(thoth_pm_governed_t *g, uint64_t now)
{
	uint64_t due[PEEK_MAX];
	uint32_t visited = 0;
	uint32_t n = thoth_chan_server_waiting(g->srv, now, due, PEEK_MAX, &visited);
	for (uint32_t i = 0; i < n; i++) {
		bool clamped = false;
		uint64_t own = due[i] ? thoth_pm_governed_deadline(now, g->qos_ns, true, due[i], &clamped)
				      : g->cur_deadline;
		due[i] = own < g->cur_deadline ? own : g->cur_deadline;
		g->stats.ring_clamped += clamped;
	}
	sort_due(due, n);
	g->stats.ring_looks++;
	g->stats.ring_seen += n;
	g->stats.ring_visited += visited;
	g->stats.ring_last = n;
	thoth_pm_dvfs_waiting_due(g->dvfs, due, n);
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	if (clock_gettime(c, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void arm_timer(thoth_pm_governed_t *g);

/* Ask the governor at NOW, the serving thread's CPU time being CPU; write
 * what it chose.  Under g->mu. */
static void decide_at(thoth_pm_governed_t *g, uint64_t now, uint64_t cpu, uint64_t dispatch_ns, unsigned why)
{
	uint64_t ran = cpu > g->cpu_seen_ns ? cpu - g->cpu_seen_ns : 0;
	g->cpu_seen_ns = cpu;
	uint32_t opp = g->opp;
	if (thoth_pm_dvfs_update(g->dvfs, now, ran, &opp))
		g->stats.write_errors++;
	if (opp != g->opp) {
		g->stats.changes++;
		g->stats.last_change_ns = now;
		if (opp > g->opp) {
			g->stats.last_raise_ns = now;
			g->stats.last_raise_dispatch_ns = dispatch_ns;
			g->stats.last_raise_opp = opp;
			if (dispatch_ns)
				g->stats.last_dispatch_raise_ns = now;
		}
		g->opp = opp;
		atomic_store_explicit(&g->opp_now, opp, memory_order_relaxed);
		THOTH_TRACE(PM, pm_freq_change, thoth_pm_dvfs_current_khz(g->dvfs),
			    (uint64_t)why << 32 | thoth_pm_trace_model_opp(g->model_id, opp));
		if (g->on_change)
			g->on_change(g->change_arg, now, opp);
	}
}

/* decide_at on the loop thread (its own CPU time), then keep the lowering
 * timer armed exactly while the domain is above its floor.  Under g->mu. */
static void decide(thoth_pm_governed_t *g, uint64_t now, uint64_t dispatch_ns, unsigned why)
{
	decide_at(g, now, thoth_pm_clock_thread_cpu_ns(), dispatch_ns, why);
	arm_timer(g);
}

static void arm_timer(thoth_pm_governed_t *g)
{
	if (g->opp > g->stats.floor_opp && !g->timer) {
		/* the governor lowers only after lower targets held for the
		 * hold time: look again just after it (slack: a quarter) */
		uint64_t hold = THOTH_PM_THOTH_DOWN_HOLD_NS;
		if (thoth_loop_add_timer_in(g->loop, hold + hold / 8, hold / 4, on_check, g, &g->timer))
			g->timer = NULL;
	} else if (g->opp <= g->stats.floor_opp && g->timer) {
		thoth_timer_cancel(g->loop, g->timer);
		g->timer = NULL;
	}
}

static void on_check(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_pm_governed_t *g = arg;
	thoth_timer_cancel(loop, timer); /* one-shot: decide() arms the next if needed */
	pthread_mutex_lock(&g->mu);
	g->timer = NULL;
	g->stats.timer_checks++;
	/* No dispatch for a hold time: requests seen waiting went away with
	 * their channels; they must not hold the frequency up. */
	thoth_pm_dvfs_forget_waiting(g->dvfs);
	decide(g, thoth_pm_clock_monotonic_ns(), 0, FREQ_BY_TIMER);
	pthread_mutex_unlock(&g->mu);
}

/* ---- the watcher: decisions while a handler runs -------------------------------- */

static void futex_wait_ns(_Atomic uint32_t *w, uint32_t val, uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ns ? &ts : NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* The model capacity of OPP. */
static double capacity(const thoth_pm_governed_t *g, uint32_t opp)
{
	return thoth_pm_dvfs_model(g->dvfs)->opps[opp].capacity;
}

/* Close the running handler's segment at the serving thread's CPU time CPU
 * (its work at the segment's OPP is counted, and traced: pm_work per OPP
 * the handler ran at, all but the LAST marked partial, so that a reader
 * counts the request once).  Under g->mu. */
static void segment_end(thoth_pm_governed_t *g, uint64_t cpu, bool last)
{
	uint64_t ran = cpu > g->seg_cpu ? cpu - g->seg_cpu : 0;
	g->seg_work += (double)ran * capacity(g, g->seg_opp) / 1024.0;
	THOTH_TRACE(PM, pm_work, ran,
		    thoth_pm_trace_model_opp(g->model_id, g->seg_opp) | (last ? 0 : THOTH_PM_WORK_PARTIAL));
	g->seg_cpu = cpu;
	g->seg_opp = g->opp;
}

/* One check (the watcher's thread): if handler GEN still runs, ask the
 * governor; a change applies to the rest of it. */
static void mid_check(thoth_pm_governed_t *g, uint32_t gen)
{
	pthread_mutex_lock(&g->mu);
	if (atomic_load_explicit(&g->gen, memory_order_relaxed) == gen) {
		uint64_t now = thoth_pm_clock_monotonic_ns(), cpu = clock_ns(g->serve_clock);
		uint32_t before = g->opp;
		g->stats.mid_checks++;
		/* the requests sent since the dispatch are demand now, not
		 * only once they are dispatched in turn */
		if (g->srv)
			announce_waiting(g, now);
		decide_at(g, now, cpu, 0, FREQ_MID_HANDLER);
		if (g->opp != before) {
			g->stats.mid_changes++;
			segment_end(g, cpu, false);     /* what ran at the old OPP; the rest runs at the new */
		}
		atomic_store_explicit(&g->check_at, now + g->mid_ns, memory_order_relaxed);
	}
	pthread_mutex_unlock(&g->mu);
}

/* While a handler runs: wake at its next check.  Idle: wake once a hold
 * time after the last completion (a burst's next request needs no system
 * call to reach us), then sleep until a dispatch wakes us: an idle service
 * has no wake-up from its watcher. */
static void *watcher_main(void *arg)
{
	thoth_pm_governed_t *g = arg;
	pthread_setname_np(pthread_self(), "pm-watcher");
	while (!atomic_load(&g->stop)) {
		uint32_t gen = atomic_load(&g->gen);
		uint64_t now = thoth_pm_clock_monotonic_ns();
		if (gen & 1) {
			uint64_t at = atomic_load_explicit(&g->check_at, memory_order_relaxed);
			if (now >= at)
				mid_check(g, gen);
			else
				futex_wait_ns(&g->gen, gen, at - now);
			continue;
		}
		uint64_t park_at = atomic_load_explicit(&g->idle_since, memory_order_relaxed) + THOTH_PM_THOTH_DOWN_HOLD_NS;
		if (now < park_at) {
			futex_wait_ns(&g->gen, gen, park_at - now);
			continue;
		}
		atomic_store(&g->parked, 1);    /* seq_cst: a dispatch after this sees it */
		if (atomic_load(&g->gen) == gen && !atomic_load(&g->stop))
			futex_wait_ns(&g->gen, gen, 0);
		atomic_store(&g->parked, 0);
	}
	return NULL;
}

/* Loop thread, the handler about to run / just returned. */
static void handler_begins(thoth_pm_governed_t *g, uint64_t now)
{
	if (!g->watcher_on)
		return;
	atomic_store_explicit(&g->check_at, now + g->mid_ns, memory_order_relaxed);
	atomic_fetch_add(&g->gen, 1);           /* odd; seq_cst, then read parked */
	if (atomic_load(&g->parked))
		futex_wake(&g->gen);
}

static void handler_ends(thoth_pm_governed_t *g, uint64_t now)
{
	if (!g->watcher_on)
		return;
	atomic_store_explicit(&g->idle_since, now, memory_order_relaxed);
	atomic_fetch_add(&g->gen, 1);           /* even: a check under way finds it changed */
}

static int governed_invoke(const void *handlers, void *self, const thoth_method_info_t *m,
			   const void *req, void *resp, thoth_arena_t *arena)
{
	thoth_pm_governed_t *g = self;
	(void)handlers;
	uint64_t now = thoth_pm_clock_monotonic_ns();
	pthread_mutex_lock(&g->mu);
	g->stats.requests++;
	/* Who sent it (the chain predictor keys on the channel) and what
	 * waits behind it (faster-first sees a queue): the channel server
	 * says, when it is the dispatcher. */
	thoth_chan_caller_t who;
	uint32_t client = 0, waiting = 0;
	if (!thoth_chan_server_caller(&who)) {
		client = (uint32_t)who.channel ? (uint32_t)who.channel : 1;
		waiting = who.waiting;
		g->stats.identified++;
	}
	/* Due QOS after its send where the request says when that was (a
	 * request that waited in the ring has that much less time left),
	 * else after now. */
	uint64_t sent = 0;
	bool stamped = g->sent_fn && g->sent_fn(g->sent_arg, m, req, &sent) == 0, clamped = false;
	/* else the channel's own stamp (thoth_chan_server_sent: the wrap
	 * asked every client for one) */
	if (!stamped && thoth_chan_server_sent(now, &sent) == 0) {
		stamped = true;
		g->stats.chan_stamped++;
	}
	uint64_t deadline = thoth_pm_governed_deadline(now, g->qos_ns, stamped, sent, &clamped);
	g->stats.stamped += stamped;
	g->stats.stamps_clamped += clamped;
	/* What waits behind it: seen one by one in the rings, each with its
	 * own deadline, or (not peeking) counted, due as this one. */
	g->srv = g->peek ? thoth_chan_server_dispatcher() : NULL;
	g->cur_deadline = deadline;
	if (thoth_pm_dvfs_dispatched(g->dvfs, now, client, deadline, g->srv ? 0 : waiting) == 0) {
		if (g->srv)
			announce_waiting(g, now);
		decide(g, now, now, FREQ_AT_ARRIVAL);
	}
	/* the handler runs at what arrival chose, until a check while it
	 * runs changes it (a segment per OPP) */
	uint64_t cpu0 = thoth_pm_clock_thread_cpu_ns();
	g->seg_cpu = cpu0;
	g->seg_opp = g->opp;
	g->seg_work = 0;
	pthread_mutex_unlock(&g->mu);
	handler_begins(g, now);
	int r = g->inner(g->inner_handlers, g->inner_self, m, req, resp, arena);
	uint64_t cpu1 = thoth_pm_clock_thread_cpu_ns(), done = thoth_pm_clock_monotonic_ns();
	handler_ends(g, done);
	pthread_mutex_lock(&g->mu);
	g->srv = NULL;          /* the loop thread goes back to the server */
	/* One pm_work record per OPP the handler ran at while category PM is
	 * on (thothd's dashboard prices it: power_account.h); a load and a
	 * branch while it is off. */
	segment_end(g, cpu1, true);
	/* its work, frequency-invariant across the OPPs it ran at: as CPU
	 * time at the OPP now in effect */
	thoth_pm_dvfs_completed(g->dvfs, (uint64_t)(g->seg_work * 1024.0 / capacity(g, g->opp)));
	decide(g, done, 0, FREQ_AT_COMPLETION);
	pthread_mutex_unlock(&g->mu);
	return r;
}

int thoth_pm_governed_new(thoth_loop_t *loop, thoth_pm_dvfs_t *dvfs, uint64_t qos_ns,
			  thoth_pm_governed_t **out)
{
	if (!loop || !dvfs || !qos_ns || !out)
		return THOTH_E_INVAL;
	thoth_pm_governed_t *g = calloc(1, sizeof *g);
	if (!g)
		return THOTH_E_NOMEM;
	g->loop = loop;
	g->dvfs = dvfs;
	g->qos_ns = qos_ns;
	pthread_mutex_init(&g->mu, NULL);
	g->mid_ns = THOTH_PM_GOVERNED_MID_NS;
	g->peek = true;
	/* the serving thread is this one (as for the uclamp clamps below) */
	if (pthread_getcpuclockid(pthread_self(), &g->serve_clock))
		g->serve_clock = CLOCK_THREAD_CPUTIME_ID;
	g->model_id = thoth_pm_dvfs_model(dvfs)->trace_id;
	g->cpu_seen_ns = thoth_pm_clock_thread_cpu_ns();
	/* This thread serves the requests: with the uclamp backend its clamps
	 * carry the governor's choice (dvfs.h). */
	int r = thoth_pm_dvfs_add_thread(dvfs, 0);
	if (r && r != THOTH_E_LIMIT) {
		free(g);
		return r;
	}
	/* where the governor starts and an idle domain rests */
	uint32_t opp = 0;
	thoth_pm_dvfs_update(dvfs, thoth_pm_clock_monotonic_ns(), 0, &opp);
	g->opp = g->stats.floor_opp = opp;
	atomic_store(&g->opp_now, opp);
	/* The watcher: without it (no thread to be had), decisions at
	 * dispatch and completion only, as before (stats.watcher says). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals stay the loop's */
	g->pid = getpid();
	g->watcher_on = pthread_create(&g->watcher, NULL, watcher_main, g) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	g->stats.watcher = g->watcher_on;
	*out = g;
	return 0;
}

void thoth_pm_governed_set_mid_ns(thoth_pm_governed_t *g, uint64_t mid_ns)
{
	pthread_mutex_lock(&g->mu);
	g->mid_ns = mid_ns;
	pthread_mutex_unlock(&g->mu);
	if (!mid_ns && g->watcher_on && g->pid != getpid()) {
		g->watcher_on = false;  /* a forked child: the thread stayed with the parent */
		g->stats.watcher = false;
	} else if (!mid_ns && g->watcher_on) {
		atomic_store(&g->stop, true);
		atomic_fetch_add(&g->gen, 2);
		futex_wake(&g->gen);
		pthread_join(g->watcher, NULL);
		g->watcher_on = false;
		g->stats.watcher = false;
	}
}

void thoth_pm_governed_set_peek(thoth_pm_governed_t *g, bool on)
{
	pthread_mutex_lock(&g->mu);
	g->peek = on;
	pthread_mutex_unlock(&g->mu);
}

uint32_t thoth_pm_governed_opp(const thoth_pm_governed_t *g)
{
	return atomic_load_explicit(&((thoth_pm_governed_t *)g)->opp_now, memory_order_relaxed);
}

void thoth_pm_governed_wrap(thoth_pm_governed_t *g, thoth_chan_server_config_t *cfg)
{
	g->inner = cfg->invoke;
	g->inner_handlers = cfg->handlers;
	g->inner_self = cfg->self;
	cfg->invoke = governed_invoke;
	cfg->handlers = g; /* not read by the shim; never NULL for the server */
	cfg->self = g;
	/* every client stamps its requests with their send time: each is
	 * due QOS after it (a service may clear it again after the wrap) */
	cfg->send_stamps = true;
}

void thoth_pm_governed_set_options(thoth_pm_governed_t *g, unsigned options)
{
	thoth_pm_dvfs_set_options(g->dvfs, options);
}

uint64_t thoth_pm_governed_deadline(uint64_t now_ns, uint64_t qos_ns, bool stamped, uint64_t sent_ns,
				    bool *clamped)
{
	bool out = false;
	if (stamped) {
		uint64_t oldest = now_ns > qos_ns ? now_ns - qos_ns : 0;
		if (sent_ns > now_ns) {
			sent_ns = now_ns;
			out = true;
		} else if (sent_ns < oldest) {
			sent_ns = oldest;
			out = true;
		}
	} else {
		sent_ns = now_ns;
	}
	if (clamped)
		*clamped = out;
	return sent_ns + qos_ns;
}

void thoth_pm_governed_on_sent(thoth_pm_governed_t *g, thoth_pm_governed_sent_fn fn, void *arg)
{
	g->sent_fn = fn;
	g->sent_arg = arg;
}

void thoth_pm_governed_on_change(thoth_pm_governed_t *g, thoth_pm_governed_change_fn fn, void *arg)
{
	g->on_change = fn;
	g->change_arg = arg;
}

void thoth_pm_governed_free(thoth_pm_governed_t *g)
{
	if (!g)
		return;
	if (g->watcher_on)
		thoth_pm_governed_set_mid_ns(g, 0);     /* stops and joins it */
	if (g->timer)
		thoth_timer_cancel(g->loop, g->timer);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

void thoth_pm_governed_stats(const thoth_pm_governed_t *g, thoth_pm_governed_stats_t *out)
{
	thoth_pm_governed_t *w = (thoth_pm_governed_t *)g;   /* the lock only */
	pthread_mutex_lock(&w->mu);
	*out = g->stats;
	out->opp = g->opp;
	out->khz = thoth_pm_dvfs_current_khz(g->dvfs);
	pthread_mutex_unlock(&w->mu);
}
