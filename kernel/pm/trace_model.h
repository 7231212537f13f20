/*
 * trace_model.h - the CPU model a PM trace point names (pm_freq_change,
 * pm_work: power_account.h), for a reader that prices them (thothd's
 * dashboard).  The model field of the trace (16 bits, energy.h):
 *   1 .. 0x7fff    a built-in published table (energy.c: 1 hikey-a53,
 *                  2 juno-a57, 3 juno-a53);
 *   0x8000 | CPU   this machine's own energy model of the performance
 *                  domain read at CPU (its first CPU, cpus[0]), which the
 *                  service built with thoth_pm_cpu_model_from_domain from
 *                  sysfs (cpufreq related_cpus, cpu_capacity,
 *                  /sys/kernel/debug/energy_model): the reader builds the
 *                  same table from the same source, under $THOTH_SYSFS_ROOT
 *                  when set (backend.h), so both index the same OPPs;
 *   0              a model with no trace id (a test's): never priced.
 * The machine's tables are read once, at the first id that needs them, and
 * kept (an energy model does not change while the machine runs); a table
 * that could not be read is not priced, with the reason (debugfs is
 * root's: a thothd that is not root may not read what a root service did).
 * Thread-safe.
 */
#ifndef THOTH_PM_TRACE_MODEL_H
#define THOTH_PM_TRACE_MODEL_H

#include <stdint.h>

#include "energy.h"

/* The model trace id ID names; NULL when none is known, and *WHY (when
 * WHY is given) a static sentence saying why. */
const thoth_pm_cpu_model_t *thoth_pm_trace_model(uint32_t id, const char **why);

/* Forget the machine's tables read so far (tests that change
 * THOTH_SYSFS_ROOT): models returned before are no longer valid. */
void thoth_pm_trace_models_reset(void);

#endif
