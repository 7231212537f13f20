/*
 * rt_baseline.h - the kernel-copy transports bench_channel compares thoth
 * channels with, measured the same way in the same run.
 */
#ifndef THOTH_BENCH_RT_BASELINE_H
#define THOTH_BENCH_RT_BASELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct bench_rt_result {
	double p50_ns, p99_ns;      /* round-trip latency percentiles */
	double msgs_per_s;          /* round trips per second over the timed loop */
	double client_cpu_ns;       /* client process CPU time per round trip */
	double server_cpu_ns;       /* server process CPU time per round trip */
} bench_rt_result_t;

/*
 * kind: "pipe", "unix-stream", "unix-seqpacket", "eventfd-shm".  A round
 * trip: the client sends PAYLOAD bytes from a buffer filled once; the server
 * (a forked child pinned to CPU_SERVER) receives all of them into its own
 * buffer, reads the first and last byte, and answers with 64 bytes.  The
 * client runs pinned to CPU_CLIENT (its affinity is restored afterwards).
 * 0, or -1 with a message on stderr.
 */
int bench_baseline_rt(const char *kind, size_t payload, unsigned warmup, unsigned iters,
		      int cpu_client, int cpu_server, bench_rt_result_t *out);

int bench_pin_cpu(int cpu);

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
