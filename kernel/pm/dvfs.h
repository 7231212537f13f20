/*
 * dvfs.h - SCHED-1 on a live system: the thoth governor (governor.h) fed
 * with what a ThothOS service knows, writing the frequency where the host
 * lets it.
 *
 *   - Utilisation per service thread: PELT over the thread's CPU time, read
 *     from /proc/self/task/TID/schedstat (the first field: ns on a CPU).
 *   - Known demand: the service reports each request arriving on its
 *     channels (with its deadline: the client's QoS) and each completion
 *     (with the CPU time it took); queued requests raise the frequency
 *     before the thread has run, as iowait boost does for I/O.
 *   - Backends, detected under $THOTH_SYSFS_ROOT (tests use fixture trees):
 *       setspeed   cpufreq's userspace governor: write scaling_setspeed
 *       uclamp     schedutil governs and the kernel has uclamp (probed,
 *                  never assumed: backend_uclamp.c): the governed threads
 *                  (thoth_pm_dvfs_add_thread) get sched_setattr util
 *                  clamps min = max = the chosen OPP's capacity, so
 *                  schedutil runs them at that OPP without pinning the
 *                  domain for every other task
 *       limits     any other cpufreq governor: pin scaling_min_freq and
 *                  scaling_max_freq to the chosen OPP
 *       simulated  no cpufreq (this VM): the choice is recorded and
 *                  reported as simulated, nothing is written
 *     (this file keeps a minimal cpufreq writer of its own; the uclamp
 *     write is PM-1's backend_uclamp.c.)
 * Frequencies written are the model's OPPs mapped to the host's available
 * frequencies (the nearest at or above).
 */
#ifndef THOTH_PM_DVFS_H
#define THOTH_PM_DVFS_H

#include <stdint.h>

#include "governor.h"

typedef enum thoth_pm_dvfs_backend {
	THOTH_PM_DVFS_SIMULATED,
	THOTH_PM_DVFS_SETSPEED,
	THOTH_PM_DVFS_LIMITS,
	THOTH_PM_DVFS_UCLAMP,
} thoth_pm_dvfs_backend_t;

const char *thoth_pm_dvfs_backend_name(thoth_pm_dvfs_backend_t b);

typedef struct thoth_pm_dvfs thoth_pm_dvfs_t;

/* Govern CPU (the performance domain it belongs to) with MODEL's OPPs.
 * Detects the backend; never fails for lack of cpufreq (simulated). */
int thoth_pm_dvfs_new(uint32_t cpu, const thoth_pm_cpu_model_t *model, uint64_t now_ns,
		      thoth_pm_dvfs_t **out);
void thoth_pm_dvfs_free(thoth_pm_dvfs_t *d);
thoth_pm_dvfs_backend_t thoth_pm_dvfs_backend(const thoth_pm_dvfs_t *d);

/* A request was queued (DEADLINE_NS absolute) / the oldest one finished
 * after costing CPU_NS of CPU time at the current OPP. */
int thoth_pm_dvfs_arrived(thoth_pm_dvfs_t *d, uint64_t deadline_ns);
void thoth_pm_dvfs_completed(thoth_pm_dvfs_t *d, uint64_t cpu_ns);
/*
 * A dispatcher's view (governed.c): a request from CLIENT (0: unknown) is
 * dispatched at NOW_NS, due at DEADLINE_NS, and WAITING more are known to
 * wait behind it (thoth_chan_server_caller).  The waiting ones are queued
 * as demand until they are dispatched in turn (each then takes one's place)
 * or no longer seen; CLIENT feeds the chain predictor.  With this the
 * governor's options (THOTH_PM_GOV_*) act on live requests.
 */
int thoth_pm_dvfs_dispatched(thoth_pm_dvfs_t *d, uint64_t now_ns, uint32_t client,
			     uint64_t deadline_ns, uint32_t waiting);
/* Requests queued as demand now: dispatched and not completed, plus the
 * ones announced as waiting. */
uint32_t thoth_pm_dvfs_queued(const thoth_pm_dvfs_t *d);
/* Drop the requests announced as waiting (none was dispatched for a while:
 * they went away with their channel). */
void thoth_pm_dvfs_forget_waiting(thoth_pm_dvfs_t *d);
/* Between dispatches (a check while a handler runs): WAITING requests are
 * known to wait now, the new ones due DEADLINE_NS; announcements beyond
 * WAITING are dropped. */
void thoth_pm_dvfs_waiting(thoth_pm_dvfs_t *d, uint32_t waiting, uint64_t deadline_ns);
/* Between dispatches or at one, where the requests waiting are seen one by
 * one (governed.c peeks the rings: thoth_chan_server_waiting): the
 * announcements become exactly N requests due DEADLINES_NS[0..N-1] (in
 * service order; governed.c orders them earliest first), beyond
 * MAX_QUEUED dropped. */
void thoth_pm_dvfs_waiting_due(thoth_pm_dvfs_t *d, const uint64_t *deadlines_ns, uint32_t n);
/* The thoth governor's options (THOTH_PM_GOV_*; default
 * THOTH_PM_GOV_DEFAULT_OPTIONS). */
void thoth_pm_dvfs_set_options(thoth_pm_dvfs_t *d, unsigned options);

/* Re-decide at NOW_NS given RUNNING_NS of CPU time since the last call
 * (thoth_pm_thread_cpu_ns differences); writes the backend when the OPP
 * changes.  *OPP_OUT: the OPP index chosen.  THOTH_E_IO (with errno kept
 * in thoth_pm_dvfs_error) if the write failed.  The first call after
 * thoth_pm_dvfs_completed or thoth_pm_dvfs_dispatched credits RUNNING_NS
 * to no request (it is the finished handler's tail, or the loop's time
 * before the dispatch): call it right after either, or the new head's own
 * time until then is not counted as done (a cautious plan until its
 * completion). */
int thoth_pm_dvfs_update(thoth_pm_dvfs_t *d, uint64_t now_ns, uint64_t running_ns,
			 uint32_t *opp_out);

/* Thread TID (0: the caller) runs the governed work: with the uclamp
 * backend its clamps carry the choice (at most 16 threads; THOTH_E_LIMIT).
 * Other backends govern the whole domain and only record it. */
int thoth_pm_dvfs_add_thread(thoth_pm_dvfs_t *d, int tid);
/* Why the uclamp backend is not used ("" when it is): the governor, or the
 * kernel's answer to the probe. */
const char *thoth_pm_dvfs_uclamp_why(const thoth_pm_dvfs_t *d);

/* The frequency last written (or, simulated, chosen), kHz; and why the
 * last write failed ("" if none). */
uint32_t thoth_pm_dvfs_current_khz(const thoth_pm_dvfs_t *d);
/* The model whose OPPs D chooses among (the one given to thoth_pm_dvfs_new). */
const thoth_pm_cpu_model_t *thoth_pm_dvfs_model(const thoth_pm_dvfs_t *d);
const char *thoth_pm_dvfs_error(const thoth_pm_dvfs_t *d);

/* ---- one governor per performance domain (dvfs_domains.c) --------------------- */

/* The governors of a whole machine: one thoth_pm_dvfs_t per performance
 * domain (backend.h: CPUs grouped by related_cpus), each with the domain's
 * own model (from its energy model when the machine publishes one, else
 * FALLBACK), so a big.LITTLE board's clusters get their frequencies
 * chosen apart: demand on a LITTLE CPU never raises the big cluster.
 * Without cpufreq (this VM) one simulated domain holds every CPU, with
 * FALLBACK's OPPs. */
typedef struct thoth_pm_dvfs_set thoth_pm_dvfs_set_t;

int thoth_pm_dvfs_set_new(const thoth_pm_cpu_model_t *fallback, uint64_t now_ns,
			  thoth_pm_dvfs_set_t **out);
void thoth_pm_dvfs_set_free(thoth_pm_dvfs_set_t *s);
uint32_t thoth_pm_dvfs_set_count(const thoth_pm_dvfs_set_t *s);
/* Domain I's governor, its model, and its CPUs (N_CPUS of them). */
thoth_pm_dvfs_t *thoth_pm_dvfs_set_at(thoth_pm_dvfs_set_t *s, uint32_t i);
const thoth_pm_cpu_model_t *thoth_pm_dvfs_set_model(const thoth_pm_dvfs_set_t *s, uint32_t i);
const uint32_t *thoth_pm_dvfs_set_cpus(const thoth_pm_dvfs_set_t *s, uint32_t i, uint32_t *n_cpus);
/* The governor of the domain CPU belongs to (the simulated one holds all
 * CPUs); NULL if CPU is in none. */
thoth_pm_dvfs_t *thoth_pm_dvfs_set_for_cpu(thoth_pm_dvfs_set_t *s, uint32_t cpu);

/* CPU time of thread TID (0: the caller) in ns, from
 * $THOTH_SYSFS_ROOT/proc/self/task/TID/schedstat (or the calling thread's
 * CLOCK_THREAD_CPUTIME_ID when TID is 0 and no root override is set). */
int thoth_pm_thread_cpu_ns(int tid, uint64_t *out);

#endif
