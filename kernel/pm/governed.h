/*
 * governed.h - SCHED-1 on a live service: the requests a service's channel
 * server dispatches drive the frequency of its performance domain
 * (dvfs.h), with no change to the service's handlers.
 *
 * thoth_pm_governed_wrap() puts a shim in front of the server's invoke
 * function (thoth_chan_server_config_t's invoke / handlers / self).  For
 * every request it dispatches:
 *   1. arrival: the request is known demand, due QOS_NS after its send
 *      (its client's latency bound; below); the governor decides at once, so a burst
 *      raises the frequency at its first request, before the handler runs.
 *      The channel server names the request's channel (the chain
 *      predictor's client) and the requests known to wait behind it
 *      (queued demand too, so faster-first sees a queue):
 *      thoth_chan_server_caller(), include/thoth/caller.h;
 *   2. completion: the CPU time the handler took (CLOCK_THREAD_CPUTIME_ID)
 *      is the request's work, and the governor decides again;
 *   3. while the frequency is above the domain's floor (its slowest
 *      efficient OPP) a loop timer asks the governor again every hold time
 *      (THOTH_PM_THOTH_DOWN_HOLD_NS), so the frequency falls when the
 *      service goes idle; once at the floor no timer is armed: an idle
 *      service is back to 0 wake-ups.
 * Requests are seen when dispatched and, before that, while they wait in
 * the rings ("Seeing the rings" below): each counts as demand from the
 * first look that finds it.
 * A request's deadline is QOS_NS after its client sent it, so that a
 * request that queued behind another is not planned as if its wait were
 * slack (docs/PM.md "Why the live governor missed more than the model":
 * dated from the dispatch, nearly every live miss was a request answered
 * within QOS_NS of its dispatch).  The send time is the channel's send
 * stamp (the wrap sets the config's send_stamps, so every client stamps
 * each request when it publishes it: thoth_chan_server_sent), or where
 * the service says its requests carry one of their own
 * (thoth_pm_governed_on_sent), that one first.  A request with neither (a
 * client that predates stamps, a service that cleared send_stamps) is due
 * QOS_NS after its dispatch.
 */
#ifndef THOTH_PM_GOVERNED_H
#define THOTH_PM_GOVERNED_H

#include <stdbool.h>
#include <stdint.h>

#include "dvfs.h"
#include "thoth/channel.h"
#include "thoth/loop.h"

typedef struct thoth_pm_governed thoth_pm_governed_t;

/* Deciding while a handler runs: a request's handler that is still running
 * is planned again every THOTH_PM_GOVERNED_MID_NS (the governor's own
 * decision interval, THOTH_PM_THOTH_DECISION_NS), and a raise applies to
 * the rest of it.  The loop thread is inside the handler then, so a watcher
 * thread (one per governed service, created by thoth_pm_governed_new)
 * asks; a mutex keeps the governor's state to one thread at a time.  The
 * watcher sleeps on a futex: while a handler runs, until its next check;
 * between requests, until a hold time (THOTH_PM_THOTH_DOWN_HOLD_NS) after
 * the last completion; then until a dispatch wakes it (one FUTEX_WAKE, only
 * at a burst's first request).  An idle service has no wake-up from it.
 * Why (docs/PM.md "Deciding while a handler runs"): the governor picks
 * the slowest OPP from which every request meets its deadline *if the CPU
 * moves to the next OPP after one decision interval*; decided at dispatch
 * alone, that later move never came.
 * One serving thread: the thread that calls thoth_pm_governed_new runs the
 * loop whose dispatch is wrapped (its CPU clock is what the watcher reads);
 * a server with handlers on several threads (thoth_serve_per_cpu) needs a
 * governed shim per thread.  A forked child has no watcher (decisions at
 * dispatch and completion only). */
#define THOTH_PM_GOVERNED_MID_NS THOTH_PM_THOTH_DECISION_NS

/* Seeing the rings: at each dispatch and at each check while a handler
 * runs, the shim looks at the requests published in every channel of the
 * dispatching server and not yet taken (thoth_chan_server_waiting,
 * thoth/caller.h: read only, by the slots' tags, PEEK_MAX = 64 at most)
 * and plans for them as queued demand, each due when the running request
 * is due, or earlier where its send stamp says so (QOS_NS after it,
 * clamped as a dispatched one's: thoth_pm_governed_deadline).  So a
 * request sent while a long handler runs can raise the frequency before
 * its dispatch.  The watcher reads the server only while the loop thread
 * is held inside the dispatch (the mutex, at the handler's end).  Off
 * (thoth_pm_governed_set_peek false, bench_pm_live --no-peek): the
 * dispatcher's count (thoth_chan_caller_t.waiting, one per non-empty
 * ring), due as the dispatched request, refreshed at dispatches only, as
 * before 2026-12-01's peek.  Cost: a look per dispatch and per check,
 * O(channels + requests seen) (bench_pm_peek).  docs/PM.md "Seeing the
 * rings". */
void thoth_pm_governed_set_peek(thoth_pm_governed_t *g, bool on);

/* Govern with DVFS (not owned) on LOOP; requests are due QOS_NS after they
 * are sent (> 0; after their dispatch where they carry no send stamp). */
int thoth_pm_governed_new(thoth_loop_t *loop, thoth_pm_dvfs_t *dvfs, uint64_t qos_ns,
			  thoth_pm_governed_t **out);
/* Route CFG's dispatch through G (CFG's invoke, handlers and self are kept
 * and called by the shim) and set CFG's send_stamps (clients stamp their
 * requests).  Call before thoth_chan_server_new(CFG). */
void thoth_pm_governed_wrap(thoth_pm_governed_t *g, thoth_chan_server_config_t *cfg);
void thoth_pm_governed_free(thoth_pm_governed_t *g);

/* Checks while a handler runs every MID_NS (default THOTH_PM_GOVERNED_MID_NS);
 * 0 stops the watcher for good (decisions at dispatch and completion
 * only: bench_pm_live --no-mid).  From the serving thread. */
void thoth_pm_governed_set_mid_ns(thoth_pm_governed_t *g, uint64_t mid_ns);

/* The OPP in effect now (any thread; a handler that models its speed reads
 * it while it runs: bench_pm_live). */
uint32_t thoth_pm_governed_opp(const thoth_pm_governed_t *g);

/* The governor's options (THOTH_PM_GOV_*, governor.h; default
 * THOTH_PM_GOV_DEFAULT_OPTIONS).  They act live because the shim learns,
 * per request, its channel (the chain predictor's client) and how many
 * requests wait behind it (faster-first's queue) from
 * thoth_chan_server_caller(). */
void thoth_pm_governed_set_options(thoth_pm_governed_t *g, unsigned options);

/* FN(ARG, NOW_NS, OPP) after every OPP change (bench_pm_live records the
 * timeline); NULL: none. */
typedef void (*thoth_pm_governed_change_fn)(void *arg, uint64_t now_ns, uint32_t opp);
void thoth_pm_governed_on_change(thoth_pm_governed_t *g, thoth_pm_governed_change_fn fn, void *arg);

/* Where a service's requests carry the CLOCK_MONOTONIC time their client
 * sent them: FN(ARG, M, REQ, &SENT_NS) is called at each dispatch, before
 * the handler, with the decoded request; 0 and *SENT_NS if REQ carries a
 * stamp, nonzero if not (its deadline then counts from the channel's send
 * stamp, thoth_chan_server_sent, or where there is none from the dispatch).
 * NULL: none (the default).  A stamp is the client's word: hostile values
 * are clamped by thoth_pm_governed_deadline. */
typedef int (*thoth_pm_governed_sent_fn)(void *arg, const thoth_method_info_t *m, const void *req,
					 uint64_t *sent_ns);
void thoth_pm_governed_on_sent(thoth_pm_governed_t *g, thoth_pm_governed_sent_fn fn, void *arg);

/* The deadline of a request dispatched at NOW_NS with latency bound QOS_NS:
 * NOW_NS + QOS_NS unstamped (STAMPED false); stamped, SENT_NS + QOS_NS with
 * SENT_NS clamped to [NOW_NS - QOS_NS, NOW_NS]: a stamp from the future
 * counts as sent now, and one older than the whole bound as due now (the
 * most urgent a client can claim: what a request with a bound of 0 asks,
 * so a lying client gets no more than a flood of requests would get it).
 * *CLAMPED (may be NULL): whether the stamp was out of that range. */
uint64_t thoth_pm_governed_deadline(uint64_t now_ns, uint64_t qos_ns, bool stamped, uint64_t sent_ns,
				    bool *clamped);

/* What the shim did (for tests and `thothctl`-style reports). */
typedef struct thoth_pm_governed_stats {
	uint64_t requests;
	uint64_t identified;       /* of which the dispatcher named the client */
	uint64_t stamped;          /* of which carried a send stamp (the service's or the channel's) */
	uint64_t chan_stamped;     /* of those, the channel's (thoth_chan_server_sent) */
	uint64_t stamps_clamped;   /* of those, stamps out of [now - qos, now] */
	uint64_t changes;          /* OPP changes written (or simulated) */
	uint64_t timer_checks;     /* lowering checks run by the timer */
	uint64_t mid_checks;       /* checks while a handler ran (the watcher) */
	uint64_t mid_changes;      /* ...that changed the OPP */
	bool watcher;              /* the watcher thread runs */
	uint64_t ring_looks;       /* looks at the rings (dispatches and checks, peeking) */
	uint64_t ring_seen;        /* requests seen waiting, summed over the looks */
	uint64_t ring_visited;     /* channels looked at, summed over the looks (<= 16 a look) */
	uint32_t ring_last;        /* ...at the last look */
	uint64_t ring_clamped;     /* their stamps out of [now - qos, now] (hostile, or waited a whole bound) */
	uint64_t write_errors;
	uint32_t opp, floor_opp;   /* now, and where an idle domain rests */
	uint32_t khz;
	uint64_t last_change_ns;   /* CLOCK_MONOTONIC of the last change */
	/* the last raise, and the dispatch it was decided at (0: decided at a
	 * completion or by the timer) */
	uint64_t last_raise_ns, last_raise_dispatch_ns;
	uint32_t last_raise_opp;   /* the OPP that raise went to */
	/* the last raise decided at a dispatch (a check while the handler
	 * runs may raise again after it, and is then the last raise) */
	uint64_t last_dispatch_raise_ns;
} thoth_pm_governed_stats_t;
void thoth_pm_governed_stats(const thoth_pm_governed_t *g, thoth_pm_governed_stats_t *out);

#endif
