/*
 * governor.h - CPU frequency selection (SCHED-1): PELT utilisation, the
 * classic Linux governors as baselines, and ThothOS's own governor, which
 * adds what only this system knows: requests queued on a service's
 * channels are demand known before the thread runs, each with a deadline
 * (its client's latency QoS).
 *
 * The governors are state machines fed with what a real backend sees
 * (per-thread running time, request arrivals and completions, the clock);
 * they answer "which OPP now".  The simulator (sim.h) and the live backend
 * (cpufreq.c) drive the same code.
 *
 *   performance  the highest OPP
 *   powersave    the lowest OPP (on HiKey an inefficient one)
 *   ondemand     every 10 ms: busy share > 80% -> highest, else
 *                f_min + load * (f_max - f_min) (drivers/cpufreq/cpufreq_ondemand.c)
 *   schedutil    next_freq = 1.25 * f_max * util / max_capacity from PELT
 *                (32 ms half-life, frequency-invariant), lowest OPP at or
 *                above it, at most one change per 2 ms rate limit
 *                (kernel/sched/cpufreq_schedutil.c; no util_est, no iowait
 *                boost)
 *   thoth        at each arrival and every 0.5 ms while requests are
 *                queued: the slowest *efficient* OPP from which every
 *                queued request still meets its deadline, given its
 *                estimated work (the largest of the service's last 32
 *                requests' work, x 1.01, their mean the expected work;
 *                before 8 have completed, the mean plus 2 mean deviations,
 *                as TCP's RTO estimator; K queued requests share one
 *                margin x sqrt(K), and the running request's margin shrinks
 *                as it runs past the mean),
 *                if the CPU moves to the next efficient OPP after this
 *                interval: the two-OPP time-sharing the optimum uses (a
 *                raise, and a lowering taken at once, planned with the
 *                old OPP running during the switch latency).  With
 *                nothing queued, what PELT says the thread uses.  Raises at
 *                once; lowers at once when the lower OPP alone carries all
 *                that is queued, otherwise only after lower targets held for
 *                2 ms (docs/PM.md justifies the rate limit).  Options
 *                (below, both on by default)
 *                plan for the steps of request/response chains that have
 *                not arrived yet.
 */
#ifndef THOTH_PM_GOVERNOR_H
#define THOTH_PM_GOVERNOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "energy.h"

/* PELT: utilisation 0..1024 with a 32 ms half-life.  Frequency-invariant:
 * running at capacity c for a time t counts as c/1024 of t, so the signal
 * measures work, not time. */
#define THOTH_PM_PELT_HALF_LIFE_NS (32ull * 1000000ull)

typedef struct thoth_pm_pelt {
	double util;         /* 0..1024 */
	uint64_t last_ns;
} thoth_pm_pelt_t;

/* Advance to NOW_NS: over the elapsed time the thread ran RUNNING_NS at
 * capacity CAPACITY (0..1024).  Returns the new utilisation. */
double thoth_pm_pelt_update(thoth_pm_pelt_t *p, uint64_t now_ns, uint64_t running_ns,
			    uint32_t capacity);

typedef enum thoth_pm_governor_kind {
	THOTH_PM_GOV_PERFORMANCE,
	THOTH_PM_GOV_POWERSAVE,
	THOTH_PM_GOV_ONDEMAND,
	THOTH_PM_GOV_SCHEDUTIL,
	THOTH_PM_GOV_THOTH,
	THOTH_PM_GOV_COUNT
} thoth_pm_governor_kind_t;

const char *thoth_pm_governor_name(thoth_pm_governor_kind_t k);
/* 0 and *OUT, or THOTH_E_NOT_FOUND. */
int thoth_pm_governor_parse(const char *name, thoth_pm_governor_kind_t *out);

#define THOTH_PM_SCHEDUTIL_RATE_LIMIT_NS (2ull * 1000000ull)
#define THOTH_PM_ONDEMAND_SAMPLING_NS (10ull * 1000000ull)
#define THOTH_PM_THOTH_DOWN_HOLD_NS (2ull * 1000000ull)
/* How often the thoth governor is asked again while requests are queued
 * (the backend arms a timer for it): it may stay one interval at a lower
 * OPP before it must have moved up. */
#define THOTH_PM_THOTH_DECISION_NS (500ull * 1000ull)

/* A queued request as the governor sees it: its deadline and how much of
 * it already ran (capacity-ns: ns at capacity 1024). */
typedef struct thoth_pm_pending {
	uint64_t deadline_ns;
	double done_work;
} thoth_pm_pending_t;

/*
 * Options of the thoth governor (thoth_pm_governor_set_options; the others
 * ignore them).  Both answer the one case the base rule is late on:
 * request/response chains, whose next step's demand has not arrived when
 * the first step is planned (docs/PM.md "What the governor cannot know").
 *
 *   FASTER_ON_QUEUE  when a request arrives and finds another queued and
 *                    the queued demand lies between two efficient OPPs
 *                    (it needs the faster one after the decision
 *                    interval), run the faster one at once instead of
 *                    after the interval.
 *   CHAIN_PREDICT    per client (thoth_pm_governor_arrived): a request
 *                    sent before its client's previous one was due is that
 *                    client's next chain step; the client's chains' depth
 *                    (the most frequent one: two chains that overlap and
 *                    look like one deeper chain do not move it) and step
 *                    spacing (average, gain 1/4) are learned,
 *                    and the steps a running chain has still to send are
 *                    planned for as demand (the estimated work each, due
 *                    the client's relative deadline after their expected
 *                    arrival).  And a reserve against another chain
 *                    overlapping this one, in expectation: the time
 *                    between chain starts (any client) is learned, and
 *                    while requests are queued the governor runs the next
 *                    efficient OPP above its choice when that costs less
 *                    active energy in expectation: the known work run at
 *                    each until done, and a typical chain (the clients'
 *                    learned depth x the mean work, due within their
 *                    spacing x (depth - 1) + their deadline) starting at a
 *                    Poisson time, what is then left of the known work
 *                    sharing its speed (the hull's, as the optimum would
 *                    time-share).  On HiKey (729 -> 960 MHz +24% per unit
 *                    of work, 960 -> 1200 +41%) it runs the bench's
 *                    chains, 50 ms apart, ahead at 729 MHz; on the flatter
 *                    Juno tables it rarely acts.  With steps predicted,
 *                    FASTER_ON_QUEUE stays silent: the plan already holds
 *                    the chain's next steps.
 */
#define THOTH_PM_GOV_FASTER_ON_QUEUE 0x1u
#define THOTH_PM_GOV_CHAIN_PREDICT 0x2u
#define THOTH_PM_GOV_OPTIONS_ALL 0x3u
/* What thoth_pm_governor_init sets (docs/PM.md gives the evidence). */
#define THOTH_PM_GOV_DEFAULT_OPTIONS (THOTH_PM_GOV_FASTER_ON_QUEUE | THOTH_PM_GOV_CHAIN_PREDICT)

/* The clients whose chains the predictor follows (a request's client maps
 * to one slot; a newcomer takes a slot over). */
#define THOTH_PM_GOV_CLIENTS 16
/* Chain depths told apart (deeper ones count as this deep). */
#define THOTH_PM_GOV_CHAIN_DEPTHS 16

typedef struct thoth_pm_chain_client {
	uint32_t id;               /* 0: slot unused */
	uint32_t steps;            /* steps of its current chain so far */
	uint64_t last_arrival_ns;
	uint64_t rel_deadline_ns;  /* its requests' deadline - arrival */
	uint32_t depth;            /* the most frequent depth of its finished chains
				    * (0: none finished yet) */
	uint8_t depths[THOTH_PM_GOV_CHAIN_DEPTHS]; /* finished chains by depth */
	double gap_ns;             /* learned spacing of a chain's steps */
} thoth_pm_chain_client_t;

/* The thoth governor's work estimate (thoth_pm_governor_completed): once
 * THOTH_PM_GOV_WORK_MIN requests have completed, a request is planned on
 * the largest work of the last THOTH_PM_GOV_WORK_WINDOW x
 * THOTH_PM_GOV_WORK_HEADROOM, their mean the expected work; before that on
 * the mean + 2 mean deviations (docs/PM.md "The work estimate"). */
#define THOTH_PM_GOV_WORK_WINDOW 32
#define THOTH_PM_GOV_WORK_MIN 8
#define THOTH_PM_GOV_WORK_HEADROOM 1.01
/* A work alone above this x the window's next largest is an outlier, left
 * out of the estimate until a second as large comes (docs/PM.md "The work
 * estimate"). */
#define THOTH_PM_GOV_WORK_OUTLIER 2.0

/*
 * Why the thoth governor chose its latest OPP (thoth_pm_governor_t.why):
 * an observation only, which no decision reads.  The simulator books each
 * step's energy against the offline optimum to it (sim.h, "the gap by
 * decision"; docs/PM.md "pm35").
 */
typedef enum thoth_pm_gov_why {
	THOTH_PM_WHY_PELT,         /* nothing queued: utilisation (or the floor) */
	THOTH_PM_WHY_PLAN,         /* the slowest OPP whose plan carries the queued demand */
	THOTH_PM_WHY_PREDICTED,    /* ... raised by the chain predictor's steps to come */
	THOTH_PM_WHY_FASTER_FIRST, /* raised by faster-first (an arrival found a queue) */
	THOTH_PM_WHY_RESERVE,      /* raised by the overlap reserve */
	THOTH_PM_WHY_LOWER,        /* lowered (at once, or the hold ran out) */
	THOTH_PM_WHY_HOLD,         /* kept above the plan's OPP by the 2 ms hold */
	THOTH_PM_WHY_COUNT
} thoth_pm_gov_why_t;

typedef struct thoth_pm_governor {
	thoth_pm_governor_kind_t kind;
	thoth_pm_gov_why_t why;  /* thoth: why the latest OPP (observation only) */
	unsigned options;        /* THOTH_PM_GOV_* options (thoth only) */
	size_t last_count;       /* queued requests at the previous update */
	bool arrived;            /* thoth_pm_governor_arrived since the previous update */
	thoth_pm_chain_client_t clients[THOTH_PM_GOV_CLIENTS];
	bool started;            /* CHAIN_PREDICT: a chain has started (last_start_ns is set) */
	uint64_t last_start_ns;  /* the latest chain's first step (any client) */
	double start_gap_ns;     /* learned time between chain starts (average, gain 1/8) */
	const thoth_pm_cpu_model_t *model;
	uint32_t opp;            /* current target */
	thoth_pm_pelt_t pelt;
	uint64_t last_change_ns; /* schedutil rate limit */
	uint64_t window_start_ns, window_busy_ns; /* ondemand */
	double est_mean, est_dev; /* thoth: per-request work estimate */
	uint64_t completions;
	double works[THOTH_PM_GOV_WORK_WINDOW]; /* the last completed works (a ring) */
	uint32_t works_n;        /* how many of WORKS hold one (saturates) */
	double win_mean, win_max; /* WORKS' mean and largest */
	bool holding_down;       /* thoth: targets below opp since down_since_ns */
	uint64_t down_since_ns;
	/* Cached, so that a decision does not redo them (governor.c): from
	 * the model at init, the next efficient OPP above each and, for
	 * CHAIN_PREDICT's overlap reserve (overlap_reserve), the efficient
	 * OPPs' lower hull; the clients' typical learned chain (sums over the
	 * clients with a learned chain), redone in thoth_pm_governor_arrived,
	 * the only place a client's learned chain changes. */
	uint8_t next_eff[THOTH_PM_MODEL_MAX_OPPS]; /* the next efficient OPP above each */
	uint32_t hull_n;
	double hull_x[THOTH_PM_MODEL_MAX_OPPS + 1], hull_y[THOTH_PM_MODEL_MAX_OPPS + 1];
	double chain_depth_sum, chain_span_sum;
	int chain_clients;
} thoth_pm_governor_t;

void thoth_pm_governor_init(thoth_pm_governor_t *g, thoth_pm_governor_kind_t kind,
			    const thoth_pm_cpu_model_t *model, uint64_t now_ns);

/* "none", "ff", "chain" or "ff+chain" (also "default") -> *OUT: 0, or
 * THOTH_E_NOT_FOUND. */
int thoth_pm_governor_options_parse(const char *name, unsigned *out);
const char *thoth_pm_governor_options_name(unsigned options);

/* OPTIONS: THOTH_PM_GOV_* bits (THOTH_PM_GOV_OPTIONS_ALL at most). */
void thoth_pm_governor_set_options(thoth_pm_governor_t *g, unsigned options);

/* A request from CLIENT (0: unknown, ignored) arrived at NOW_NS, due at
 * DEADLINE_NS: what CHAIN_PREDICT learns from.  Call it before the
 * update that first sees the request queued. */
void thoth_pm_governor_arrived(thoth_pm_governor_t *g, uint64_t now_ns, uint32_t client,
			       uint64_t deadline_ns);

/* A request finished; WORK is what it cost (capacity-ns: measured CPU time
 * scaled by the capacity it ran at). */
void thoth_pm_governor_completed(thoth_pm_governor_t *g, double work);

/* The OPP to run at from NOW_NS.  RUNNING_NS: how long the CPU ran since
 * the previous call (at the previous OPP); PENDING/COUNT: the queued
 * requests in service order (the thoth governor's known demand; the others
 * ignore them). */
uint32_t thoth_pm_governor_update(thoth_pm_governor_t *g, uint64_t now_ns, uint64_t running_ns,
				  const thoth_pm_pending_t *pending, size_t count);

#endif
