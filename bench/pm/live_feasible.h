/*
 * live_feasible - can a phase of bench_pm_live be met at all?
 *
 * bench_pm_live replays a trace live: one client per sender (1..SENDERS),
 * each sending its requests in trace order, a request at its trace time or
 * when the sender's previous one is answered, if later; one service thread
 * answers them, burning each request's work (ns at capacity 1024) divided
 * by the OPP's capacity; a request misses when its answer comes more than
 * its relative deadline (deadline - arrival) after its send.
 *
 * This replays exactly that with the model's top OPP held throughout, no
 * switch latency and nothing else on the CPU, serving requests in the
 * order they are sent (every deadline is the same distance from its send
 * in the bench's traces, so this is earliest-deadline-first).  A miss here
 * is a miss no governor can avoid: a phase with any is infeasible, and its
 * ramps and misses would measure the offered work, not the governor.
 */
#ifndef THOTH_BENCH_PM_LIVE_FEASIBLE_H
#define THOTH_BENCH_PM_LIVE_FEASIBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"

typedef struct thoth_pm_live_feasibility {
	uint32_t top_capacity;   /* the model's fastest OPP */
	uint64_t requests;       /* the requests the bench sends (senders 1..SENDERS) */
	uint64_t misses;         /* of those, answered after their deadline at the top OPP */
	uint64_t worst_ns;       /* the longest send-to-answer at the top OPP */
	uint64_t longest_burn_ns; /* the longest single request at the top OPP */
} thoth_pm_live_feasibility_t;

/* Fill OUT for trace T on model M, the bench sending the requests of
 * senders 1..SENDERS (others are not sent and not counted).  0, or -1 with
 * *WHY set (SENDERS 0, a trace with no request, out of memory). */
int thoth_pm_live_feasibility(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, uint32_t senders,
			      thoth_pm_live_feasibility_t *out, const char **why);

/* SPEC (a sim.h synthetic trace) for model M into OUT (LEN bytes): with
 * SCALE, its work_us (at capacity 1024) scaled to M's top capacity
 * (x capacity / 1024, printed to 0.1 us), as bench_pm scales its CPU
 * traces, so that M's top OPP burns each request in the time capacity 1024
 * takes; without, unchanged.  0, or -1 if SPEC has no work_us= or OUT is
 * too short. */
int thoth_pm_live_spec(const thoth_pm_cpu_model_t *m, const char *spec, bool scale, char *out, size_t len);

/* What bench_pm_live --diag's replay of the live shim sees when it looks
 * at the rings (governed.c announce_waiting) at T while request K of LIVE
 * (sends in order) is the one dispatched, due RUNNING_DUE: every later
 * request sent by T, each due when the running one is due or earlier where
 * its own deadline (its relative deadline after its send; after T without
 * WITH_STAMPS, as a request with no send stamp is dated) is earlier, into
 * DUE[MAX], earliest first; their count.  MAX bounds what one look
 * announces, as the shim's PEEK_MAX does. */
uint32_t thoth_pm_live_replay_look(const thoth_pm_trace_t *live, size_t k, uint64_t t, bool with_stamps,
				   uint64_t running_due, uint64_t *due, uint32_t max);

#endif
