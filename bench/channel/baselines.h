/*
 * baselines.h - round-trip baselines over kernel-copy transports (pipe, Unix
 * stream, Unix seqpacket) and over eventfd doorbells + a shared-memory copy,
 * for comparing thoth channels with what Linux already offers.
 * bench_channel (bench_channel.c) runs them beside thoth channels.
 */
#ifndef THOTH_BENCH_BASELINES_H
#define THOTH_BENCH_BASELINES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct bench_rt_result {
	double p50_ns, p99_ns;  /* round-trip latency percentiles */
	double msgs_per_s;      /* round trips per second over the timed loop */
	double client_cpu_ns;   /* client process CPU time per round trip (CLOCK_PROCESS_CPUTIME_ID) */
	double server_cpu_ns;   /* server process CPU time per round trip (measured in the server,
	                         * sent back at the end) */
	uint64_t refused_bells; /* epoll-shm: doorbell sends a full socket refused (warm-up
	                         * and timed loop; bells pending, not errors); else 0 */
} bench_rt_result_t;

/*
 * kind: "pipe", "unix-stream", "unix-seqpacket", "eventfd-shm", "futex-shm"
 * (shared memory + FUTEX_WAIT/FUTEX_WAKE), "spin-shm" (shared memory,
 * busy-polled), "epoll-shm" (a service sleeping in epoll_wait on a socket
 * doorbell, a client on a futex: thoth's wake-up path alone; see
 * baselines.c).
 *
 * A round trip: the client sends PAYLOAD bytes (from a buffer filled once),
 * the server receives all of them into its own buffer, reads the first and
 * last byte and answers with a 64-byte reply, which the client receives
 * whole.  The server is a fork()ed child pinned to CPU_SERVER; the client is
 * the calling process (the calling thread) pinned to CPU_CLIENT, its
 * affinity restored afterwards.  WARMUP untimed round trips, then ITERS timed
 * ones, each timed with CLOCK_MONOTONIC.
 *
 * client_cpu_ns is CLOCK_PROCESS_CPUTIME_ID of the calling process, so other
 * busy threads of the caller inflate it.  PAYLOAD must be at least 1 byte,
 * ITERS at least 1.  Returns 0, or -1 with a message on stderr; the child
 * is always reaped and no fd is left open.
 */
int bench_baseline_rt(const char *kind, size_t payload, unsigned warmup, unsigned iters,
		      int cpu_client, int cpu_server, bench_rt_result_t *out);

static inline uint64_t bench_clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
/* Wall time (CLOCK_MONOTONIC) and this process's CPU time, in ns. */
static inline uint64_t bench_now_ns(void) { return bench_clock_ns(CLOCK_MONOTONIC); }
static inline uint64_t bench_cpu_ns(void) { return bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID); }

/* Pins the calling thread to CPU (BENCH_CPU_ANY: lets it run on every
 * online CPU): 0, or -1 (errno set). */
#define BENCH_CPU_ANY (-1)
int bench_pin_cpu(int cpu);

/* A busy process pinned to CPU (the "hog" of the unpinned + hog placement),
 * killed with its parent: its pid (kill and reap it), or -1. */
pid_t bench_start_hog(int cpu);

/* The P-th percentile (P in [0, 100], nearest rank on the sorted samples) of
 * N samples; sorts SAMPLES in place.  0 when N is 0. */
double bench_percentile(double *samples, size_t n, double p);

#endif
