/*
 * power_account.h - modelled CPU power and energy per request of a governed
 * service (SCHED-1, governed.h), from its trace points alone, priced with
 * the published CPU models of energy.c.  thothd's dashboard keeps one per
 * governed process (kernel/thothd/http_live.c, docs/DASHBOARD.md).
 *
 * What a governed service writes (category PM, docs/OBSERVABILITY.md):
 *   pm_freq_change  arg0 = kHz, arg1 = reason << 32 | model << 16 | OPP
 *   pm_work         arg0 = CPU ns its handler took for one request,
 *                   arg1 = model << 16 | OPP the request ran at
 * "model" is the domain's model's trace_id (energy.h, trace_model.h): 1..
 * a built-in published table, THOTH_PM_TRACE_SYSFS | CPU this machine's
 * own energy model of the domain read at CPU (read again here from the
 * same sysfs source), 0 another model (a test's), which is not priced.
 *
 * The price of one request = its handler's CPU time x the busy power of
 * one CPU of the domain at that OPP (core + cluster, the EAS busy cost):
 * mW x ns = pJ.  This is how the governor itself reads a request's CPU time
 * (dvfs.h: "costing CPU_NS of CPU time at the current OPP"), so on a host
 * without cpufreq (this VM) it is CPU time measured here priced as if run
 * at the modelled OPP.  Idle power (the domain's cluster-sleep floor) and
 * the service's own work outside its handlers (its loop, its channel
 * receives) are not in it.  Nothing here is measured power: every figure
 * is *modelled*.
 */
#ifndef THOTH_PM_POWER_ACCOUNT_H
#define THOTH_PM_POWER_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "energy.h"

/* pm_work's arg1 bit 32: this record is a segment of a request's handler
 * that ran on at another OPP (a change while it ran, governed.h); its CPU
 * time is priced, and the request is counted once, by its last segment
 * (the record without the bit). */
#define THOTH_PM_WORK_PARTIAL (1ull << 32)

/* arg1's model and OPP fields (pm_work; pm_freq_change adds reason << 32). */
static inline uint64_t thoth_pm_trace_model_opp(uint32_t model_trace_id, uint32_t opp)
{
	return (uint64_t)(model_trace_id & 0xffff) << 16 | (opp & 0xffff);
}

typedef struct thoth_pm_power_account {
	/* the model and OPP of the last event (pm_freq_change or pm_work) */
	uint32_t model_id;
	uint32_t opp;
	bool seen;
	/* since the account was made */
	uint64_t requests;      /* priced pm_work events, less the partial ones (THOTH_PM_WORK_PARTIAL) */
	uint64_t cpu_ns;        /* their handlers' CPU time */
	double energy_pj;       /* their modelled energy (mW x ns) */
	uint64_t unpriced;      /* pm_work with model 0, an unknown model, a bad OPP or reserved bits */
	const char *unpriced_why; /* the last one's reason (static) */
	/* since the last interval was taken */
	uint64_t iv_requests, iv_cpu_ns;
	double iv_energy_pj;
} thoth_pm_power_account_t;

/* One interval's figures. */
typedef struct thoth_pm_power_interval {
	double power_mw;        /* modelled energy / the interval's length */
	double energy_j;        /* modelled energy in the interval */
	uint64_t requests;      /* priced in the interval */
	double cpu_share;       /* handler CPU time / the interval's length */
	double j_per_request;   /* energy_j / requests; 0 when requests is 0 */
} thoth_pm_power_interval_t;

void thoth_pm_power_account_init(thoth_pm_power_account_t *a);

/* A pm_freq_change's args: the model and OPP now (the price shown beside
 * the P-state).  THOTH_E_INVAL if arg1's bits 16..31/0..15 hold no OPP of
 * the model named (nothing kept); 0 otherwise, a model not built in too. */
int thoth_pm_power_account_freq(thoth_pm_power_account_t *a, uint64_t arg0, uint64_t arg1);

/* The most handler CPU time one pm_work may claim: the event is the traced
 * process's word, and a larger value (up to 2^64 ns) would wrap the sums
 * and show an absurd power; no request is served for a minute. */
#define THOTH_PM_WORK_MAX_NS (60ull * 1000000000ull)

/* A pm_work's args: priced and added (0), or counted in `unpriced` with
 * the reason in `unpriced_why`: THOTH_E_NOT_FOUND (model 0, an unknown
 * id, or a machine model that cannot be read here), THOTH_E_INVAL (an
 * OPP the model has not, bits 32..63 of arg1 set, or a CPU time arg0 over
 * THOTH_PM_WORK_MAX_NS). */
int thoth_pm_power_account_work(thoth_pm_power_account_t *a, uint64_t arg0, uint64_t arg1);

/* The interval of INTERVAL_NS (> 0) that ends now: its figures into *OUT,
 * and the next interval starts empty. */
void thoth_pm_power_account_interval(thoth_pm_power_account_t *a, uint64_t interval_ns,
				     thoth_pm_power_interval_t *out);

/* The model of the last event: a published table or this machine's
 * energy model (NULL: none seen, or not known here). */
const thoth_pm_cpu_model_t *thoth_pm_power_account_model(const thoth_pm_power_account_t *a);

/* Why the last event's model is not priced, or the last unpriced
 * pm_work's reason; NULL when everything seen was priced.  Static text. */
const char *thoth_pm_power_account_unpriced_why(const thoth_pm_power_account_t *a);

/* Busy power (core + cluster) of one CPU at the last event's OPP, mW; 0
 * without a published model. */
uint32_t thoth_pm_power_account_opp_mw(const thoth_pm_power_account_t *a);

#endif
