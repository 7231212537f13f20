/*
 * pm_clock.h - the two clocks SCHED-1's live path reads (internal to
 * kernel/pm and its benchmarks, not installed): CLOCK_MONOTONIC for when
 * things happen, and the calling thread's CPU time for how much work a
 * request cost.  One definition, so the governed server (governed.c) and
 * the benchmark that measures it (bench/pm/bench_pm_live.c) read time the
 * same way.
 */
#ifndef THOTH_PM_CLOCK_H
#define THOTH_PM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t thoth_pm_clock_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID); see
 * thoth_pm_thread_cpu_ns (dvfs.h) for another thread's, or a fixture's. */
static inline uint64_t thoth_pm_clock_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
