/*
 * engine.h - the PM policy engine (PM-2): which power state an element
 * should enter when it goes idle, under a latency QoS.
 *
 * An element (a device, a CPU's idle states) is described by its states:
 * state 0 is "on, idle" (the state it serves requests from), deeper states
 * draw less power but cost time and energy to enter and leave.  For each
 * idle period the engine
 *   1. keeps the states whose worst-case wake latency (entry + exit: a
 *      request may arrive just as the entry starts) fits the QoS, and whose
 *      entry + exit fits before a known next event (an armed timer),
 *   2. with no history yet, enters the kept state cheapest for the known
 *      next event's idle length (none known: the break-even ladder),
 *   3. otherwise prices plans "stay on for TAU, then enter S, then S's
 *      ladder" (TAU 0 or just past a length seen; past S's break-even
 *      only with a margin, THOTH_PM_PAST_BREAK_EVEN_MARGIN)
 *      on the element's history of idle lengths (idle_hist.h;
 *      lengths past a known next event count as ending at it, and the
 *      plan is pre-woken for it) and takes the one with the least expected
 *      energy plus a price on going too deep that holds too-deep periods
 *      to THOTH_PM_TOO_DEEP_TARGET,
 *   4. in every case hands back a ladder: deeper states to enter if the idle period lasts
 *      past the points where their energy lines cross (Irani, Shukla and
 *      Gupta's lower-envelope algorithm), so that a mis-prediction costs at
 *      most what the break-even timeout policy costs, which is within 2x of
 *      an oracle that knows the future (Karlin et al.'s bound).
 * docs/PM.md "The engine" states the rules and the evidence.
 *
 * Everything here is pure computation on the description and the history:
 * no clock, no I/O, so the same engine serves the broker in thothd, CPU
 * idle hints, and the simulator, and tests check it on hand-computed cases.
 *
 * Energy model of a state s (what break-even means here): staying idle for
 * a time t in s costs
 *     E_s(t) = transition_mw * (entry + exit) + power_mw * (t - entry - exit)
 * for t >= entry + exit, and E_0(t) = power_0 * t.  The break-even time of
 * s is the idle length at which E_s = E_0 (never less than entry + exit).
 */
#ifndef THOTH_PM_ENGINE_H
#define THOTH_PM_ENGINE_H

#include <stdint.h>

#define THOTH_PM_MAX_STATES 8
/* No latency bound / no known next event. */
#define THOTH_PM_NONE UINT64_MAX
/* Going too deep (entering a state whose break-even the idle period then
 * does not reach) is priced so that at most this share of an element's idle
 * periods do (issue 14's target; cpuidle's menu governor exceeds 24%), and
 * the price moves by this gain per period (docs/PM.md "Why the engine plans
 * over a distribution"). */
#define THOTH_PM_TOO_DEEP_TARGET 0.10
#define THOTH_PM_TOO_DEEP_GAIN 0.01
/* A plan that stays on past its first state's break-even is taken only if
 * its expected cost x (1 + this) still beats every other plan: such a plan
 * gives up the break-even bound in a period that ends just after it
 * enters, so it must win clearly on the history (an estimate).  0.2 is
 * the smallest of the margins tried (0.02, 0.05, 0.1, 0.15, 0.2, 0.3) with
 * which no trace of bench_pm got worse (docs/PM.md "Waiting past the
 * break-even"). */
#define THOTH_PM_PAST_BREAK_EVEN_MARGIN 0.2
/* Latencies above this are refused as absurd (a typo, not a device). */
#define THOTH_PM_MAX_LATENCY_NS (60ull * 1000000000ull)

typedef struct thoth_pm_state_desc {
	const char *name;
	uint32_t power_mw;         /* drawn while resident in the state */
	uint64_t entry_latency_ns; /* time to enter (0 for state 0) */
	uint64_t exit_latency_ns;  /* time to be back in state 0 (0 for state 0) */
	uint32_t transition_mw;    /* drawn during entry and exit; 0 = states[0].power_mw */
} thoth_pm_state_desc_t;

typedef struct thoth_pm_element_desc {
	const char *name;
	uint32_t state_count; /* 1..THOTH_PM_MAX_STATES; states[0] is on-idle */
	thoth_pm_state_desc_t states[THOTH_PM_MAX_STATES];
} thoth_pm_element_desc_t;

/* Check a description at the boundary: state count, state 0 without
 * latencies, every deeper state below state 0's power, latencies under
 * THOTH_PM_MAX_LATENCY_NS.  Returns 0 or THOTH_E_INVAL with *WHY naming
 * the field ("states[2].exit_latency_ns: above 60 s"). */
int thoth_pm_element_check(const thoth_pm_element_desc_t *d, const char **why);

/* Break-even time of state S against staying in state 0, ns (0 for S=0). */
uint64_t thoth_pm_break_even_ns(const thoth_pm_element_desc_t *d, uint32_t s);

/* Worst-case wake latency of state S: entry + exit, ns. */
uint64_t thoth_pm_wake_latency_ns(const thoth_pm_element_desc_t *d, uint32_t s);

/* Energy (nJ) of an idle period of length IDLE_NS spent in S from its
 * start (the line E_s above; the oracle's cost of S). */
double thoth_pm_idle_energy_nj(const thoth_pm_element_desc_t *d, uint32_t s, uint64_t idle_ns);

/* What is known when an idle period starts. */
typedef struct thoth_pm_constraints {
	uint64_t latency_ns;    /* QoS: a request must be served within this; NONE = no bound */
	uint64_t next_event_ns; /* time to the next known wake-up (armed timer); NONE = unknown */
} thoth_pm_constraints_t;

typedef struct thoth_pm_step {
	uint32_t state;
	uint64_t at_ns; /* from the start of the idle period */
} thoth_pm_step_t;

typedef struct thoth_pm_decision {
	uint32_t state;             /* enter now */
	uint64_t predicted_idle_ns; /* what the choice was based on */
	uint32_t ladder_count;      /* then, while still idle: ladder[0], ladder[1], ... */
	thoth_pm_step_t ladder[THOTH_PM_MAX_STATES];
	/* With a known next event: begin the exit this long before it, so the
	 * element is on when the event comes (0 = no pre-wake). */
	uint64_t prewake_ns;
} thoth_pm_decision_t;

/* The pure rule (steps 1, 2 and 4 above) for a given prediction: the
 * deepest allowed state whose break-even <= PREDICTED_IDLE_NS, and its
 * ladder.  Never fails on a checked description. */
void thoth_pm_choose(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
		     uint64_t predicted_idle_ns, thoth_pm_decision_t *out);

/* The break-even timeout ladder alone (the 2-competitive baseline): state 0
 * now, deeper allowed states where their energy lines cross. */
void thoth_pm_ladder(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
		     uint32_t from_state, thoth_pm_decision_t *out);

/* The engine for one element: its description plus its idle history. */
typedef struct thoth_pm_engine thoth_pm_engine_t;

/* Copies D (after thoth_pm_element_check; *WHY on THOTH_E_INVAL). */
int thoth_pm_engine_new(const thoth_pm_element_desc_t *d, thoth_pm_engine_t **out,
			const char **why);
void thoth_pm_engine_free(thoth_pm_engine_t *e);
const thoth_pm_element_desc_t *thoth_pm_engine_desc(const thoth_pm_engine_t *e);

/* An idle period starts: steps 1-4. */
void thoth_pm_engine_decide(thoth_pm_engine_t *e, const thoth_pm_constraints_t *c,
			    thoth_pm_decision_t *out);

/* An idle period ended after IDLE_NS; NEXT_EVENT_NS is what
 * thoth_pm_engine_decide was told (a hit when the idle ended in the same
 * bin as the known event, an intercept when something came earlier). */
void thoth_pm_engine_observe(thoth_pm_engine_t *e, uint64_t idle_ns, uint64_t next_event_ns);

/* Counters for `thothctl pm` and tests. */
typedef struct thoth_pm_engine_stats {
	uint64_t decisions;
	uint64_t hits;       /* idle ended in the bin the known next event predicted */
	uint64_t intercepts; /* idle ended earlier than that bin */
	uint64_t too_deep;   /* the state entered at once had break-even > the idle */
} thoth_pm_engine_stats_t;
void thoth_pm_engine_stats(const thoth_pm_engine_t *e, thoth_pm_engine_stats_t *out);

/* CPU idle hint: the value to hold open in /dev/cpu_dma_latency (PM QoS,
 * microseconds) so that the kernel's cpuidle governor goes no deeper than
 * the state chosen for a CPU described by D (its cpuidle states):
 * the chosen state's exit latency, rounded down to whole us (so the next
 * deeper state, whose latency is higher, is excluded). */
int32_t thoth_pm_cpu_latency_hint_us(const thoth_pm_element_desc_t *d,
				     const thoth_pm_decision_t *decision);

#endif
