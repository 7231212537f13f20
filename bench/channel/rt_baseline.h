/*
 * rt_baseline.h - what bench_channel adds to the round-trip baselines of
 * baselines.h: the iceoryx ping-pong (iox_baseline.c).
 */
#ifndef THOTH_BENCH_RT_BASELINE_H
#define THOTH_BENCH_RT_BASELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "baselines.h"

/* iceoryx ping-pong (iox_baseline.c, built when Debian's iceoryx is
 * installed): start/stop iox-roudi, then round trips of PAYLOAD bytes with
 * the receiver polling (WAIT false) or sleeping in a waitset (WAIT true). */
int bench_iox_start(void);
void bench_iox_stop(void);
int bench_iox_rt(size_t payload, bool wait, unsigned warmup, unsigned iters, int cpu_client,
		 int cpu_server, bench_rt_result_t *out);

#endif
