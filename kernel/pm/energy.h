/*
 * energy.h - published energy models for the policies of kernel/pm: CPU
 * performance domains (operating points with capacity and power) and device
 * power-state tables (NVMe APST).  Every figure computed from these tables is
 * *modelled* energy: this VM has no RAPL and no cpufreq, so nothing here was
 * measured on it.  Sources are named beside each table in energy.c and in
 * docs/PM.md.
 *
 * Units: power in milliwatts, capacity in the scheduler's 0..1024 scale
 * (1024 = the fastest CPU of the platform at its highest OPP), work in
 * "capacity-microseconds" (1 us of running at capacity 1024), time in ns.
 */
#ifndef THOTH_PM_ENERGY_H
#define THOTH_PM_ENERGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define THOTH_PM_MODEL_MAX_OPPS 16

/* One operating point of a performance domain.  Power while one CPU of the
 * domain runs at this OPP = core_mw + cluster_mw (the EAS models split it). */
typedef struct thoth_pm_opp {
	uint32_t freq_khz;
	uint32_t capacity;   /* 0..1024 */
	uint32_t core_mw;    /* one busy core */
	uint32_t cluster_mw; /* the cluster's share while any core is busy */
} thoth_pm_opp_t;

/* A performance domain (one frequency for all its CPUs). */
typedef struct thoth_pm_cpu_model {
	const char *name;   /* "hikey-a53", "juno-a57", "juno-a53" */
	const char *source; /* where the numbers come from */
	uint32_t opp_count; /* opps[] in increasing frequency */
	thoth_pm_opp_t opps[THOTH_PM_MODEL_MAX_OPPS];
	/* Power when every core of the domain is idle and the cluster is
	 * powered down (EAS "cluster-sleep"): the floor a finished burst
	 * returns to.  The simulator charges it for idle time. */
	uint32_t sleep_mw;
	/* Time a frequency change takes (the cpufreq transition latency).
	 * Not in the published EAS tables: an assumption, documented. */
	uint64_t switch_latency_ns;
	/* The model's id in trace points (pm_freq_change, pm_work;
	 * power_account.h): 1.. for the built-in published tables, fixed
	 * forever (1 hikey-a53, 2 juno-a57, 3 juno-a53); THOTH_PM_TRACE_SYSFS
	 * | CPU for this machine's own energy model of the performance domain
	 * read at CPU (thoth_pm_cpu_model_from_domain: a reader reads the same
	 * table from the same sysfs source, trace_model.h); 0 for any other
	 * model (a test's), which readers do not price.  A copy of a model
	 * keeps its id. */
	uint16_t trace_id;
} thoth_pm_cpu_model_t;

/* Trace ids of this machine's own energy models: the bit, and the
 * domain's first CPU (its cpus[0]) in the 15 bits below; 0 past them. */
#define THOTH_PM_TRACE_SYSFS 0x8000u
static inline uint16_t thoth_pm_trace_id_sysfs(uint32_t cpu)
{
	return cpu < THOTH_PM_TRACE_SYSFS ? (uint16_t)(THOTH_PM_TRACE_SYSFS | cpu) : 0;
}

/* The built-in CPU models; NULL if NAME is unknown. */
const thoth_pm_cpu_model_t *thoth_pm_cpu_model_find(const char *name);
/* The I-th built-in model (NULL past the end): for listing. */
const thoth_pm_cpu_model_t *thoth_pm_cpu_model_at(size_t i);
/* The built-in model whose trace_id is ID; NULL for 0 or an unknown id. */
const thoth_pm_cpu_model_t *thoth_pm_cpu_model_by_trace_id(uint32_t id);

/* Power of one busy CPU at OPP I (core + cluster), mW. */
uint32_t thoth_pm_opp_power_mw(const thoth_pm_cpu_model_t *m, uint32_t i);

/* Energy per unit of work at OPP I, in mW per capacity unit (= nJ per
 * capacity-microsecond... up to a constant): power / capacity.  Lower is
 * better. */
double thoth_pm_opp_energy_per_work(const thoth_pm_cpu_model_t *m, uint32_t i);

/* An OPP is inefficient when a faster OPP does the same work for no more
 * energy (energy per work <= this one's): running there is never right,
 * because the faster OPP also finishes sooner.  This is the rule of Linux's
 * energy model (EM_PERF_STATE_INEFFICIENT, kernel/power/energy_model.c),
 * applied to core + cluster power of one busy CPU.  HiKey's 208 MHz is the
 * textbook case: 85 mW / 178 = 0.478 vs 432 MHz's 153 / 369 = 0.415. */
bool thoth_pm_opp_inefficient(const thoth_pm_cpu_model_t *m, uint32_t i);

/* The OPP a governor should use to provide at least CAPACITY: the slowest
 * *efficient* OPP whose capacity is >= CAPACITY (the fastest OPP if none
 * is).  Never returns an inefficient OPP. */
uint32_t thoth_pm_opp_for_capacity(const thoth_pm_cpu_model_t *m, uint32_t capacity);

/* Like thoth_pm_opp_for_capacity, but also for a capacity no OPP meets:
 * the slowest OPP that can be chosen at all (for policies that pick
 * frequencies naively, the raw lowest OPP >= capacity, inefficient or
 * not).  Used by the baselines that do not know about efficiency. */
uint32_t thoth_pm_opp_ceil_raw(const thoth_pm_cpu_model_t *m, uint32_t capacity);

/* A device with power states (NVMe APST tables and one labelled synthetic
 * element): a ready element description for the engine (state 0 is on and
 * idle), the power while serving, and a default latency QoS. */
typedef struct thoth_pm_device_model {
	const char *source;  /* where the numbers come from */
	uint32_t busy_mw;    /* while a request is served */
	uint64_t qos_ns;     /* default latency QoS of its clients */
	thoth_pm_element_desc_t desc;
} thoth_pm_device_model_t;

/* NULL if NAME (desc.name) is unknown / I is past the end. */
const thoth_pm_device_model_t *thoth_pm_device_model_find(const char *name);
const thoth_pm_device_model_t *thoth_pm_device_model_at(size_t i);

#endif
