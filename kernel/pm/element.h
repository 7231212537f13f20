/*
 * element.h - power elements as drivers declare them (PM-1, docs/PM.md).
 *
 * A power element is one thing with power states: a disk, a bus, a NIC's
 * PHY.  Its levels are ordered: level 0 is the deepest (least power, slowest
 * to leave), the last level is fully on.  Per level a driver declares the
 * power drawn there (mW), how long entering it takes and how long leaving it
 * takes (exit latency: the time until the element works again).
 *
 * Dependencies are per level: "disk at level >= 2 (ACTIVE) needs bus at
 * level >= 1 (ON)".  An ASSERTIVE dependency raises the required element
 * when the dependent is raised; an OPPORTUNISTIC one never raises it: the
 * dependent may reach that level only while the required element is up for
 * another reason (Fuchsia's power broker makes the same distinction).
 *
 * Declarations arrive from other processes (idl/pm.tidl), so everything
 * here is checked once, at the broker's boundary, by
 * thoth_pm_element_validate(); the broker trusts what passed.
 */
#ifndef THOTH_PM_ELEMENT_H
#define THOTH_PM_ELEMENT_H

#include <stddef.h>
#include <stdint.h>

#define THOTH_PM_MAX_LEVELS 16
#define THOTH_PM_MAX_DEPS 16
#define THOTH_PM_NAME_MAX 63            /* element names: [a-z0-9_.-], starts with a letter */
#define THOTH_PM_LEVEL_NAME_MAX 31
/* Latencies above this are refused as absurd: no device takes 10 s to wake,
 * and a typo in µs vs ns should be caught, not obeyed. */
#define THOTH_PM_MAX_LATENCY_US 10000000
/* 1 kW: anything above is a unit error (W given as mW twice over). */
#define THOTH_PM_MAX_POWER_MW 1000000.0

typedef enum thoth_pm_dep_kind {
	THOTH_PM_ASSERTIVE = 0,         /* raising the dependent raises the required element */
	THOTH_PM_OPPORTUNISTIC = 1,     /* usable only while it is up anyway; never raised */
} thoth_pm_dep_kind_t;

typedef struct thoth_pm_level_decl {
	char name[THOTH_PM_LEVEL_NAME_MAX + 1];  /* "OFF", "ACTIVE" */
	double power_mw;                /* drawn while at this level (modelled unless measured) */
	int64_t entry_latency_us;       /* signed: a negative declaration is seen and refused */
	int64_t exit_latency_us;        /* time from this level back to working */
} thoth_pm_level_decl_t;

typedef struct thoth_pm_dep_decl {
	uint32_t level;                 /* this element at >= level ... */
	char required[THOTH_PM_NAME_MAX + 1];    /* ... needs this element ... */
	uint32_t required_level;        /* ... at >= required_level */
	thoth_pm_dep_kind_t kind;
} thoth_pm_dep_decl_t;

typedef struct thoth_pm_element_decl {
	char name[THOTH_PM_NAME_MAX + 1];
	uint32_t n_levels;              /* 2 .. THOTH_PM_MAX_LEVELS */
	thoth_pm_level_decl_t levels[THOTH_PM_MAX_LEVELS];
	uint32_t initial_level;         /* where the device is when declared */
	uint32_t n_deps;
	thoth_pm_dep_decl_t deps[THOTH_PM_MAX_DEPS];
} thoth_pm_element_decl_t;

/*
 * Check one declaration on its own (names, level table, dependency fields
 * that need no other element).  Returns 0, or THOTH_E_INVAL with WHY naming
 * the field at fault ("levels[2].exit_latency_us: -5 is negative").
 * Rules: levels ordered by power (non-decreasing) and exit latency
 * (non-increasing) from level 0 up; the top level's exit latency is 0;
 * latencies in 0..THOTH_PM_MAX_LATENCY_US; level names unique.
 */
int thoth_pm_element_validate(const thoth_pm_element_decl_t *decl, char *why, size_t cap);

/* Is NAME a valid element name? */
int thoth_pm_name_valid(const char *name);

#endif
