/*
 * backend.h - the Linux power interfaces behind small internal calls
 * (PM-1; docs/PM.md "Backends").  Policies (the broker, the engine) never
 * touch sysfs themselves; tests point every backend at a fixture tree.
 *
 * Root override: every path is looked up under $THOTH_SYSFS_ROOT when it is
 * set ("/sys/devices/..." becomes "$THOTH_SYSFS_ROOT/sys/devices/...", and
 * "/dev/cpu_dma_latency" likewise), so tests never write the host's knobs.
 * Trees for an x86 laptop, an arm64 big.LITTLE board, an NVMe SSD and this
 * VM live under tests/fixtures/sysfs/.
 */
#ifndef THOTH_PM_BACKEND_H
#define THOTH_PM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "energy.h"
#include "../ipc/why.h"

/* "$THOTH_SYSFS_ROOT" or "" (the real root). */
const char *thoth_pm_root(void);
/* ROOT + PATH into OUT; THOTH_E_INVAL if it does not fit. */
int thoth_pm_path(char *out, size_t cap, const char *path);

/* Writes the reason into why (when given) and returns err: the one error
 * exit of the backends, policies and parsers in kernel/pm. */
#define thoth__pm_fail thoth__why_err

/* ---- PM QoS: /dev/cpu_dma_latency (backend_qos.c) ------------------------------ */

typedef struct thoth_pm_qos thoth_pm_qos_t;
int thoth_pm_qos_open(thoth_pm_qos_t **out);        /* opens nothing yet */
/* Bound CPU wake-up latency to US (0: no bound: the file is closed, which is
 * how the kernel learns the request ended). */
int thoth_pm_qos_set(thoth_pm_qos_t *q, uint32_t us);
/* The value in force now, read back through the held file: on the device,
 * the tightest request of every holder in the system (so <= ours); on a
 * fixture, what we wrote.  THOTH_E_NOT_FOUND when nothing is held. */
int thoth_pm_qos_read(thoth_pm_qos_t *q, int32_t *out);
const char *thoth_pm_qos_error(const thoth_pm_qos_t *q);
void thoth_pm_qos_close(thoth_pm_qos_t *q);

/* ---- Linux runtime PM of one device (backend_runtime.c) ------------------------- */

typedef struct thoth_pm_runtime_state {
	char status[16];                /* runtime_status: active, suspended, unsupported, ... */
	char control[8];                /* power/control: auto or on */
	int64_t autosuspend_delay_ms;   /* -1 when the file is absent */
	uint64_t active_ms, suspended_ms; /* runtime_active_time, runtime_suspended_time */
} thoth_pm_runtime_state_t;

/* DEVICE: a path under /sys/devices ("/sys/devices/pci0000:00/0000:00:01.0"). */
int thoth_pm_runtime_read(const char *device, thoth_pm_runtime_state_t *st);
/* Write power/control ("on": keep resumed; "auto": let the kernel suspend). */
int thoth_pm_runtime_set_control(const char *device, const char *control);
int thoth_pm_runtime_set_autosuspend(const char *device, int64_t delay_ms);
/* Devices under /sys/devices whose runtime_status is active or suspended
 * (not "unsupported"), up to MAX paths of CAP bytes each; the count. */
int thoth_pm_runtime_scan(char (*paths)[256], uint32_t max, uint32_t *n);

/* ---- cpuidle (backend_cpuidle.c) ---------------------------------------------- */

#define THOTH_PM_MAX_IDLE_STATES 10
typedef struct thoth_pm_idle_state {
	char name[32];
	uint64_t latency_us;            /* exit latency */
	uint64_t residency_us;          /* target residency */
	uint64_t usage, time_us;        /* entries, total residency */
	bool disabled;
} thoth_pm_idle_state_t;

typedef struct thoth_pm_cpuidle {
	char driver[32], governor[32];  /* "none" when no driver is bound */
	uint32_t n_states;
	thoth_pm_idle_state_t states[THOTH_PM_MAX_IDLE_STATES];
} thoth_pm_cpuidle_t;

int thoth_pm_cpuidle_read(uint32_t cpu, thoth_pm_cpuidle_t *out);

/* ---- cpufreq (backend_cpufreq.c) ---------------------------------------------- */

#define THOTH_PM_MAX_OPPS 32
#define THOTH_PM_MAX_DOMAIN_CPUS 64
typedef struct thoth_pm_cpufreq {
	bool present;                   /* false: no cpufreq driver (this VM) */
	char driver[32], governor[32];
	uint32_t cur_khz, min_khz, max_khz, hw_min_khz, hw_max_khz;
	uint32_t n_opps;                /* scaling_available_frequencies (0: a range, intel_pstate) */
	uint32_t opp_khz[THOTH_PM_MAX_OPPS];
	char epp[32];                   /* energy_performance_preference ("" if absent) */
	char epp_available[160];
	bool has_setspeed;              /* scaling_setspeed writable (userspace governor) */
	/* Energy model (arm64 EAS, /sys/kernel/debug/energy_model): per OPP power in mW. */
	uint32_t n_em;
	uint32_t em_khz[THOTH_PM_MAX_OPPS], em_power_mw[THOTH_PM_MAX_OPPS], em_cost[THOTH_PM_MAX_OPPS];
	uint32_t capacity;              /* cpu_capacity (arm64), 0 if absent */
	/* related_cpus: every CPU of this CPU's performance domain (one
	 * frequency for all), this CPU alone when the file is absent. */
	uint32_t n_related;
	uint32_t related[THOTH_PM_MAX_DOMAIN_CPUS];
} thoth_pm_cpufreq_t;

int thoth_pm_cpufreq_read(uint32_t cpu, thoth_pm_cpufreq_t *out);
int thoth_pm_cpufreq_set_limits(uint32_t cpu, uint32_t min_khz, uint32_t max_khz);
int thoth_pm_cpufreq_set_speed(uint32_t cpu, uint32_t khz);
int thoth_pm_cpufreq_set_epp(uint32_t cpu, const char *epp);

/* ---- performance domains (perf_domain.c) ---------------------------------------- */

/* A performance domain: CPUs that share one frequency (cpufreq's policy),
 * as related_cpus groups them; big.LITTLE boards have one per cluster. */
#define THOTH_PM_MAX_DOMAINS 8
typedef struct thoth_pm_perf_domain {
	uint32_t n_cpus;
	uint32_t cpus[THOTH_PM_MAX_DOMAIN_CPUS]; /* cpus[0] is where it is read and written */
	thoth_pm_cpufreq_t freq;                  /* read from cpus[0] */
} thoth_pm_perf_domain_t;

/* The machine's performance domains: CPUs cpu0, cpu1, ... (until one is
 * missing, at most 1024) with a cpufreq driver, grouped by related_cpus.
 * *N = 0 when there is no cpufreq (this VM).  THOTH_E_LIMIT past MAX. */
int thoth_pm_perf_domains(thoth_pm_perf_domain_t *out, uint32_t max, uint32_t *n);

/* An energy.h CPU model from a domain's energy model (arm64 EAS,
 * /sys/kernel/debug/energy_model): per OPP the EM's per-CPU power as core
 * power (the Linux EM has no separate cluster share: cluster_mw 0, sleep
 * 0), capacity = cpu_capacity x f / f_max (frequency-invariant, as the
 * kernel scales it); name "sysfs", trace id THOTH_PM_TRACE_SYSFS | cpus[0]
 * (energy.h).  THOTH_E_NOT_FOUND without an energy model or cpu_capacity; *WHY says
 * which. */
int thoth_pm_cpu_model_from_domain(const thoth_pm_perf_domain_t *d, thoth_pm_cpu_model_t *out,
				   const char **why);

/* ---- NVMe APST power states (backend_nvme.c) ------------------------------------ */

#define THOTH_PM_MAX_NVME_PS 32
typedef struct thoth_pm_nvme_ps {
	double max_power_mw;
	uint32_t entry_latency_us, exit_latency_us;
	bool non_operational;
} thoth_pm_nvme_ps_t;

/* The power-state table of nvme controller NAME ("nvme0"), from the fixture
 * file the id-ctrl power states are recorded in (see docs/PM.md). */
int thoth_pm_nvme_read(const char *name, thoth_pm_nvme_ps_t *ps, uint32_t max, uint32_t *n,
		       int64_t *apst_latency_tolerance_us);

/* ---- uclamp (backend_uclamp.c) -------------------------------------------------- */

/* struct sched_attr with the clamp fields (include/uapi/linux/sched/types.h,
 * SCHED_ATTR_SIZE_VER1: 56 bytes). */
typedef struct thoth_pm_sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
} thoth_pm_sched_attr_t;

#define THOTH_PM_SCHED_FLAG_KEEP_POLICY    0x08
#define THOTH_PM_SCHED_FLAG_KEEP_PARAMS    0x10
#define THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MIN 0x20
#define THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MAX 0x40

/* The two system calls, replaceable (a seam for tests: this machine's
 * kernel has no uclamp, so what is written can only be checked there).
 * OP GETATTR: sched_getattr(TID, ATTR, SIZE, FLAGS); OP SETATTR:
 * sched_setattr(TID, ATTR, FLAGS).  Returns 0 or -errno. */
#define THOTH_PM_SCHED_GETATTR 0
#define THOTH_PM_SCHED_SETATTR 1
typedef int (*thoth_pm_sched_attr_fn)(int op, int tid, thoth_pm_sched_attr_t *attr, uint32_t size,
				      uint32_t flags);
/* FN replaces the system calls for the whole process; NULL restores them. */
void thoth_pm_uclamp_set_syscall(thoth_pm_sched_attr_fn fn);

/* Does this kernel accept sched_setattr with SCHED_FLAG_UTIL_CLAMP?  Probed
 * on the calling thread by re-applying its current clamps (no change).  If
 * not and WHY is given, WHY says why (the call and the kernel's answer). */
bool thoth_pm_uclamp_probe(char *why, size_t cap);
bool thoth_pm_uclamp_supported(void);
/* Clamp thread TID's (0: the caller's) utilisation to [MIN, MAX] of 1024,
 * keeping its policy.  THOTH_E_INVAL for bad bounds; THOTH_E_IO with errno
 * kept (thoth_last_error) when the kernel refuses, as one without uclamp does. */
int thoth_pm_uclamp_set(int tid, uint32_t min, uint32_t max);

#endif
