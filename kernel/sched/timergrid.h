/*
 * timergrid.h - where inside its window a loop wakes (SCHED-3: timers
 * shared across processes).
 *
 * Every thoth process on a machine uses the same per-boot grid: points at
 * k * g + p(g) for granularities g of 60 s, 10 s, 1 s, 250 ms, 50 ms,
 * 10 ms and 1 ms, with one perturbation p per boot derived from
 * /proc/sys/kernel/random/boot_id (so two machines do not beat in step, but
 * two processes on one machine do).  A loop about to sleep picks, inside
 * the window [lo, hi] it may wake in, the latest point of the coarsest
 * granularity that has one; two processes whose windows share a grid point
 * therefore tend to pick the same instant and the CPU wakes once for both,
 * with no shared state and nothing a hostile process could write.
 * docs/SCHED.md has the argument and the measurements.  Pure functions,
 * internal to kernel/sched (the benchmark links them too).
 */
#ifndef THOTH_SCHED_TIMERGRID_H
#define THOTH_SCHED_TIMERGRID_H

#include <stdint.h>

/* The instant in [LO, HI] (LO <= HI, ns) to wake at for perturbation PERT
 * (ns, < 60 s): the latest point of the coarsest granularity inside, else
 * HI.  Never outside [LO, HI]. */
uint64_t timergrid_pick(uint64_t lo, uint64_t hi, uint64_t pert);

/* This boot's perturbation (read once; 0 when boot_id cannot be read). */
uint64_t timergrid_perturbation(void);

/* The perturbation for a boot_id string (tests; any bytes are fine). */
uint64_t timergrid_perturbation_of(const char *boot_id);

#endif
