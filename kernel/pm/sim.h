/*
 * sim.h - the trace-driven simulator of kernel/pm: replays a trace of
 * requests against a device (power states) or a CPU performance domain
 * (OPPs) under each policy, and reports *modelled* energy (energy.h's
 * published tables), QoS violations, too-deep decisions, deadline misses,
 * residency at inefficient OPPs and the time to reach the right speed.
 * All policies of one comparison run on the same trace in the same call, so
 * ratios compare like with like.  docs/PM.md "The simulator".
 *
 * A trace is a list of requests ("jobs"): arrival time, work (for a CPU:
 * running time at capacity 1024; for a device: service time), deadline.
 * Sources (sim_trace.c):
 *   - synthetic, from a one-line rt-app-like description (below),
 *   - recorded: Chrome trace JSON written by `thothctl trace dump --json`
 *     (a service's request receive -> response send on one thread is a job),
 *     or the CTF directory of `thothctl trace dump --ctf` (the same events),
 *   - a plain text list: "# thoth-pm-trace v1" then "arrival_us work_us
 *     [deadline_us]" per line.
 */
#ifndef THOTH_PM_SIM_H
#define THOTH_PM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "energy.h"
#include "governor.h"

typedef struct thoth_pm_job {
	uint64_t arrival_ns;
	uint64_t work_ns;     /* CPU: ns at capacity 1024; device: service time */
	uint64_t deadline_ns; /* absolute */
	bool timer;           /* its arrival is an armed loop timer (known in advance,
			       * as the window page tells); timer_driven marks all */
	uint32_t client;      /* who sent it (1..); 0: unknown (recorded traces).
			       * Synthetic: each group (a burst, a chain, a single
			       * request) comes from one of `clients=` clients in turn */
} thoth_pm_job_t;

typedef struct thoth_pm_trace {
	char name[64];
	char origin[160];  /* "synthetic: ..." or "recorded: FILE (pid N)" */
	bool timer_driven; /* arrivals are armed timers, known in advance */
	uint64_t end_ns;   /* the trace covers [0, end_ns) */
	size_t count;
	thoth_pm_job_t *jobs; /* by arrival; deadlines in the same order */
} thoth_pm_trace_t;

/* Limits on input (validated where a trace enters). */
#define THOTH_PM_TRACE_MAX_JOBS 1000000u
#define THOTH_PM_TRACE_MAX_NS (3600ull * 1000000000ull) /* an hour */

/*
 * Synthetic traces.  SPEC is "KIND key=value ...":
 *   periodic period_us=P work_us=W [jitter_us=J]        timer-driven
 *   poisson  mean_gap_us=G work_us=W
 *   bursty   burst=N gap_us=G burst_gap_us=B work_us=W  (N requests G apart,
 *                                                        bursts B apart)
 *   pareto   xmin_us=X alpha=A work_us=W                (idle gaps, heavy tail)
 *   chain    depth=D mean_gap_us=G work_us=W            (request/response:
 *                                                        D dependent steps)
 * common: duration_ms=T (default 10000), deadline_us=D (default 10000),
 * seed=S (default 1), work_jitter=F (0..1, default 0.2: work uniform in
 * W*(1-F)..W*(1+F)), clients=C (default 8: each group - a burst, a
 * chain, a single request - is sent by client 1..C in turn; the chain
 * predictor keys on it).  *WHY names the bad field and the value written
 * (a buffer of the calling thread's, valid until its next call).
 */
int thoth_pm_trace_generate(const char *spec, const char *name, thoth_pm_trace_t *out,
			    const char **why);

/* Load a recorded trace (Chrome JSON or the text list, told apart by the
 * first non-blank byte).  DEADLINE_NS is given to jobs that carry none.
 * PID selects the serving process in a JSON trace (0 = the one with the
 * most requests).  On error, WHY (WHY_LEN bytes) says what and where. */
int thoth_pm_trace_parse(const char *buf, size_t len, uint64_t deadline_ns, uint32_t pid,
			 thoth_pm_trace_t *out, char *why, size_t why_len);
int thoth_pm_trace_load(const char *path, uint64_t deadline_ns, uint32_t pid,
			thoth_pm_trace_t *out, char *why, size_t why_len);

/* A CTF trace as `thothctl trace dump --ctf DIR` writes it: the metadata
 * text and the stream files' bytes (thoth_pm_trace_load reads DIR when
 * PATH is a directory).  Same pairing and errors as the JSON form. */
int thoth_pm_trace_parse_ctf(const char *meta, size_t meta_len, const uint8_t *const *streams,
			     const size_t *lens, size_t n_streams, uint64_t deadline_ns, uint32_t pid,
			     thoth_pm_trace_t *out, char *why, size_t why_len);

void thoth_pm_trace_free(thoth_pm_trace_t *t);

/* Write T as the text list (what thoth_pm_trace_parse reads back), with its
 * origin as a comment: how recorded traces are kept small in the tree. */
int thoth_pm_trace_write(const thoth_pm_trace_t *t, FILE *out);

/* ---- devices ------------------------------------------------------------------------ */

typedef enum thoth_pm_device_policy {
	THOTH_PM_DEV_ALWAYS_ON,
	THOTH_PM_DEV_FIXED_2S,     /* Linux runtime PM autosuspend_delay_ms = 2000:
				    * the deepest state, blind to the QoS */
	THOTH_PM_DEV_FIXED_2S_QOS, /* the same, to the deepest state the QoS allows */
	THOTH_PM_DEV_APST,         /* NVMe APST: 50 x (entry + exit) per state, as Linux */
	THOTH_PM_DEV_BREAK_EVEN,   /* lower-envelope timeouts (2-competitive) */
	THOTH_PM_DEV_EXP_AVERAGE,  /* Hwang & Wu: exponential average predictor */
	THOTH_PM_DEV_ENGINE,       /* engine.h */
	THOTH_PM_DEV_ORACLE,       /* knows each idle length in advance */
	THOTH_PM_DEV_COUNT
} thoth_pm_device_policy_t;

const char *thoth_pm_device_policy_name(thoth_pm_device_policy_t p);
int thoth_pm_device_policy_parse(const char *name, thoth_pm_device_policy_t *out);

typedef struct thoth_pm_device_result {
	double energy_mj;          /* modelled */
	uint64_t requests;
	uint64_t qos_violations;   /* wake delay > QoS */
	uint64_t idle_periods;
	uint64_t too_deep;         /* deepest state entered had break-even > idle */
	uint64_t sleeps;           /* idle periods that left state 0 */
	uint64_t max_wake_delay_ns;
	uint64_t residency_ns[THOTH_PM_MAX_STATES];
	uint64_t wake_delay_sum_ns;  /* over all requests (mean = / requests) */
} thoth_pm_device_result_t;

/* Replay T on device M under policy P with latency QoS QOS_NS.  Every
 * policy but fixed-2s keeps to the states whose entry + exit fit the QoS,
 * the oracle included (it is the best any QoS-keeping policy can do). */
int thoth_pm_sim_device(const thoth_pm_device_model_t *m, uint64_t qos_ns,
			const thoth_pm_trace_t *t, thoth_pm_device_policy_t p,
			thoth_pm_device_result_t *out);

/* The same, saying whether the engine is told the next armed timer: at the
 * start of each idle period, the time to the next job whose arrival is a
 * loop timer (timer_driven traces: every job; else jobs with .timer), as
 * the loops post it on the window page (kernel/sched/timerpage.h) and
 * thothd reads it.  USE_TIMERS false is the same run without that input
 * (bench_pm's comparison); thoth_pm_sim_device uses it. */
int thoth_pm_sim_device_timers(const thoth_pm_device_model_t *m, uint64_t qos_ns,
			       const thoth_pm_trace_t *t, thoth_pm_device_policy_t p,
			       bool use_timers, thoth_pm_device_result_t *out);

/* ---- CPUs --------------------------------------------------------------------------- */

/* Governors plus the offline optimum. */
#define THOTH_PM_CPU_OPTIMUM THOTH_PM_GOV_COUNT
#define THOTH_PM_SIM_STEP_NS (50ull * 1000ull)
/* SCHED-1: "at the right speed within 2 ms of a request arriving". */
#define THOTH_PM_RAMP_TARGET_NS (2ull * 1000000ull)

/*
 * The thoth governor's energy gap to the optimum, booked per decision
 * (pm35, docs/PM.md "pm35").  Energy is the integral over the work of the
 * energy per unit of work it ran at (both serve the same requests first
 * come first served, so the same unit of work is the same request's), so
 * the gap is a sum over each step's work of (the governor's OPP's active
 * energy per unit of work - the optimum's for that same work), booked to
 * what set the step's OPP: the governor's reason (thoth_pm_gov_why_t, the
 * first kinds, same order); a step faster than the optimum's speed whose
 * OPP the queued requests' exact remaining work needed at a constant speed
 * from then on is a CATCH_UP (it pays for slower work before, or for a
 * request that arrived unannounced), not the reason's; a HOLD or CATCH_UP
 * with another sender's request queued behind the running one is counted
 * apart (_OVERLAP: two chains at once); a step inside a switch runs the
 * old OPP (SWITCH_UP: the slower one while raising, SWITCH_DOWN: the
 * faster one while lowering).
 */
typedef enum thoth_pm_gap_kind {
	THOTH_PM_GAP_HOLD_OVERLAP = THOTH_PM_WHY_COUNT,
	THOTH_PM_GAP_CATCH_UP,
	THOTH_PM_GAP_CATCH_UP_OVERLAP,
	THOTH_PM_GAP_SWITCH_UP,
	THOTH_PM_GAP_SWITCH_DOWN,
	THOTH_PM_GAP_KINDS
} thoth_pm_gap_kind_t;
const char *thoth_pm_gap_kind_name(int kind);

typedef struct thoth_pm_cpu_result {
	double energy_mj;            /* modelled */
	uint64_t jobs;
	uint64_t deadline_misses;
	uint64_t busy_ns;
	uint64_t inefficient_busy_ns; /* busy at an inefficient OPP */
	uint64_t switches;
	/* time from a request's arrival until the CPU runs at least at the
	 * speed the optimum gives it (its completion if never), ns */
	uint64_t ramp_p50_ns, ramp_p95_ns, ramp_max_ns;
	/* Requests whose ramp exceeded THOTH_PM_RAMP_TARGET_NS, and of those
	 * how many had a right speed that the requests arrived by then already
	 * imply (the optimum over them alone gives as much): the others were
	 * late only because of requests that had not arrived yet.  Of those
	 * others, ramp_late_chain: implied once the request's own chain's later
	 * steps are added (its sender's next requests, each sent before the
	 * previous one was due: what a perfect predictor of that sender's
	 * chains would know); the rest needed another sender's requests (an
	 * overlap no prediction of the sender's own chain foresees). */
	uint64_t ramp_late, ramp_late_knowable, ramp_late_chain;
	bool optimum_exact;          /* false if the optimum had to split a busy period */
	/* The work run at each OPP (ns at capacity 1024): where the governor
	 * ran it, or for THOTH_PM_CPU_OPTIMUM where the optimum's
	 * time-sharing of the hull's two OPPs runs it (a segment infeasible at
	 * any OPP: at the top).  What tells a governor's energy gap apart by
	 * OPP (docs/PM.md "pm34"). */
	double opp_work_ns[THOTH_PM_MODEL_MAX_OPPS];
	/* The thoth governor with THOTH_PM_SIM_BOOK_GAP only (zero otherwise): the gap by decision
	 * (thoth_pm_gap_kind_t above): modelled energy above the optimum's
	 * (mJ, negative where the work ran cheaper than the optimum ran it)
	 * and the work (ns at capacity 1024), [0] of the steps faster than the
	 * optimum's speed for their work, [1] the others; GAP_REST_MJ is what
	 * no step holds (idle at the sleep power over different spans), so
	 * energy_mj - the optimum's = the sum + gap_rest_mj.  LATE_BY: the
	 * requests still below their right speed THOTH_PM_RAMP_TARGET_NS after
	 * arriving, by the kind of that step; LATE_BY_OVERLAP of them, those
	 * with another sender's request queued then. */
	double gap_mj[THOTH_PM_GAP_KINDS][2], gap_work_ns[THOTH_PM_GAP_KINDS][2], gap_rest_mj;
	uint64_t late_by[THOTH_PM_GAP_KINDS], late_by_overlap[THOTH_PM_GAP_KINDS];
} thoth_pm_cpu_result_t;

/* Replay T on CPU model M under governor KIND (a thoth_pm_governor_kind_t
 * or THOTH_PM_CPU_OPTIMUM). */
int thoth_pm_sim_cpu(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, int kind,
		     thoth_pm_cpu_result_t *out);
/* The same with the thoth governor's OPTIONS (THOTH_PM_GOV_* bits) in
 * place of THOTH_PM_GOV_DEFAULT_OPTIONS, plus the simulator's own bits
 * below (never passed to the governor). */
/* Book the thoth governor's gap by decision (gap_mj, gap_work_ns,
 * gap_rest_mj, late_by*): opt-in, it costs about a tenth of a run, so
 * only bench_pm --gap and the tests ask for it. */
#define THOTH_PM_SIM_BOOK_GAP 0x80000000u
_Static_assert((THOTH_PM_SIM_BOOK_GAP & THOTH_PM_GOV_OPTIONS_ALL) == 0,
	       "the simulator's option bits stay clear of the governor's");
int thoth_pm_sim_cpu_options(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, int kind,
			     unsigned options, thoth_pm_cpu_result_t *out);

/* The optimum's speed (capacity units) for each job (YDS: Yao, Demers and
 * Shenker 1995, on the lower convex hull of the OPPs), in SPEED[count], and
 * its energy; returns false if a busy period had to be split. */
bool thoth_pm_cpu_optimum(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t,
			  double *speed, double *energy_mj);

#endif
