/*
 * cpu_hint.h - the engine's CPU idle hint, applied through PM QoS (PM-2 with
 * SCHED-1; docs/PM.md "CPU idle hints").
 *
 * A CPU's cpuidle states (backend.h, read from sysfs or a fixture tree)
 * become an engine element (engine.h): enabled states in the kernel's order,
 * state 0 the shallowest, exit latency = the state's `latency`, and the
 * kernel's target residency as its break-even time (cpuidle defines the
 * target residency as the shortest stay that saves energy, which is what a
 * break-even time is).  The powers are **modelled** (evenly spaced from
 * 1000 mW at the shallowest state to 0 at the deepest; a transition power
 * puts each state's break-even exactly on its target residency): the engine
 * only needs their order and the break-even times, and sysfs publishes no
 * power for idle states.
 *
 * What thothd knows that a request for depth can use: the next wake-up any
 * loop has posted on the window page (kernel/sched/timerpage.h) and the
 * tightest latency bound of the PowerBroker's leases.  With a next wake-up
 * known, the engine chooses the cheapest state that fits both (its
 * residency before the wake-up, its latency within the bound); if that is
 * shallower than the deepest enabled state, the hint is that state's exit
 * latency, which, held in /dev/cpu_dma_latency, keeps the kernel's cpuidle
 * governor from going deeper.  With no wake-up known the engine has nothing
 * the kernel's governor lacks (it sees its own timers and history): no hint.
 * The request held is the tighter of the hint and the lease bound.
 *
 * Pure: no clock, no I/O.
 */
#ifndef THOTH_PM_CPU_HINT_H
#define THOTH_PM_CPU_HINT_H

#include <stdint.h>

#include "backend.h"
#include "engine.h"

typedef struct thoth_pm_cpu_hint thoth_pm_cpu_hint_t;

/* Why a request is held (thoth_pm_cpu_request_t.why). */
enum {
	THOTH_PM_CPU_NONE = 0,  /* nothing held */
	THOTH_PM_CPU_LEASE = 1, /* a lease's latency bound */
	THOTH_PM_CPU_TIMER = 2, /* the engine's hint before a known wake-up */
};

typedef struct thoth_pm_cpu_request {
	uint32_t request_us;  /* to hold in /dev/cpu_dma_latency; 0 = none (close it) */
	uint32_t hint_us;     /* the engine's part; 0 = no hint */
	uint32_t why;         /* THOTH_PM_CPU_* bits of what set request_us */
	int32_t state;        /* the cpuidle state index the engine chose; -1 = none */
	const char *state_name; /* its name ("" when none) */
} thoth_pm_cpu_request_t;

/* An engine over IDLE's enabled states.  THOTH_E_NOT_FOUND when fewer than
 * two states are enabled (no driver bound, as on this VM: nothing to
 * choose), THOTH_E_INVAL when the table does not fit the engine; *WHY says
 * which. */
int thoth_pm_cpu_hint_new(const thoth_pm_cpuidle_t *idle, thoth_pm_cpu_hint_t **out,
			  const char **why);
void thoth_pm_cpu_hint_free(thoth_pm_cpu_hint_t *h);
/* The engine's element (for tests and `thothctl pm`). */
const thoth_pm_element_desc_t *thoth_pm_cpu_hint_desc(const thoth_pm_cpu_hint_t *h);

/* The request to hold, given the tightest lease bound LEASE_US (0: none)
 * and the time to the next known wake-up NEXT_WAKE_NS (THOTH_PM_NONE:
 * none known).  H may be NULL (no cpuidle states): the lease bound alone. */
void thoth_pm_cpu_hint_decide(thoth_pm_cpu_hint_t *h, uint32_t lease_us, uint64_t next_wake_ns,
			      thoth_pm_cpu_request_t *out);

#endif
