/*
 * rt_baseline.h - what bench_channel adds to the round-trip baselines of
 * baselines.h: clock helpers and the iceoryx ping-pong (iox_baseline.c).
 */
#ifndef THOTH_BENCH_RT_BASELINE_H
#define THOTH_BENCH_RT_BASELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "baselines.h"

static inline uint64_t bench_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
/* Wall time (CLOCK_MONOTONIC) and this process's CPU time, in ns. */
static inline uint64_t bench_now_ns(void) { return bench_clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t bench_cpu_ns(void) { return bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID); }
/* Sorts SAMPLES in place; P in [0, 100]. */
double bench_percentile(double *samples, size_t n, double p);

/* iceoryx ping-pong (iox_baseline.c, built when Debian's iceoryx is
 * installed): start/stop iox-roudi, then round trips of PAYLOAD bytes with
 * the receiver polling (WAIT false) or sleeping in a waitset (WAIT true). */
int bench_iox_start(void);
void bench_iox_stop(void);
int bench_iox_rt(size_t payload, bool wait, unsigned warmup, unsigned iters, int cpu_client,
		 int cpu_server, bench_rt_result_t *out);

#endif
