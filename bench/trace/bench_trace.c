/*
 * bench_trace.c - what a trace point costs, next to its baselines.
 *
 *   disabled   THOTH_TRACE_MSG with its category off (predicted branch + USDT nop)
 *   enabled    THOTH_TRACE_MSG recording into an overwrite-oldest ring
 *   mutex      the same 64-byte record, same clock, into a mutex-protected
 *              buffer (the baseline the issue names when LTTng cannot run)
 *   lttng-*    an LTTng-UST tracepoint with the same fields: with no session
 *              (compiled in, not enabled), and, when an lttng-sessiond can be
 *              reached, inside a live session (enabled, recording)
 *   sustained  events/s one thread writes into a drop-newest ring while a
 *              reader thread drains it, with the drop count (0 = no loss)
 *
 * Every figure is the median of RUNS runs of N events.  The machine is shared
 * and noisy: compare ratios from the same run, not absolute numbers.
 * Usage: bench_trace [events-per-run]   (THOTH_BENCH_NO_LTTNG=1 skips the
 * live LTTng session).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/trace.h"
#include "trace_clock.h"

#ifdef THOTH_HAVE_LTTNG_UST
#include "lttng_bench_tp.h"
#endif

#define RUNS 7

static uint64_t events_per_run = 5000000;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

/* Keeps the loop variable alive so the compiler cannot fold the loop. */
static inline void keep(uint64_t v)
{
	__asm__ volatile("" : : "r"(v) : "memory");
}

typedef void (*loop_fn)(uint64_t n);

/* ns per event, median of RUNS. */
static double measure(loop_fn fn)
{
	double per[RUNS];
	fn(events_per_run / 10);  /* warm caches, claim the ring, register names */
	for (int r = 0; r < RUNS; r++) {
		uint64_t t0 = thoth_trace_clock_monotonic_ns();
		fn(events_per_run);
		uint64_t t1 = thoth_trace_clock_monotonic_ns();
		per[r] = (double)(t1 - t0) / (double)events_per_run;
	}
	return median(per, RUNS);
}

static void loop_empty(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		keep(i);
}

static void loop_thoth(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		THOTH_TRACE_MSG(IPC, bench_msg, THOTH_TRACE_SEND, 7, 0x1234, 3, (uint32_t)i, 256,
		                THOTH_TRACE_INLINE, i);
		keep(i);
	}
}

/* ---- the mutex baseline: same record, same clock, one lock ---------------- */

#define MUTEX_RING 4096
static struct {
	pthread_mutex_t lock;
	uint64_t head;
	struct { uint64_t w[8]; } slot[MUTEX_RING];
} mutex_ring = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void mutex_record(uint32_t svc, uint32_t iface, uint32_t method, uint32_t req,
                         uint32_t size, uint32_t flags, uint64_t trace_id)
{
	uint64_t now = thoth_trace_now();
	int cpu = sched_getcpu();
	pthread_mutex_lock(&mutex_ring.lock);
	uint64_t *w = mutex_ring.slot[mutex_ring.head++ % MUTEX_RING].w;
	w[0] = (uint64_t)flags << 56 | 1;
	w[1] = now;
	w[2] = trace_id;
	w[3] = 0;
	w[4] = 0;
	w[5] = (uint64_t)iface << 32 | svc;
	w[6] = (uint64_t)size << 32 | req;
	w[7] = (uint64_t)(uint16_t)cpu << 48 | (uint64_t)method << 32 | 1;
	pthread_mutex_unlock(&mutex_ring.lock);
}

static void loop_mutex(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		mutex_record(7, 0x1234, 3, (uint32_t)i, 256, THOTH_TRACE_SEND | THOTH_TRACE_INLINE, i);
		keep(i);
	}
}

#ifdef THOTH_HAVE_LTTNG_UST
static void loop_lttng(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		lttng_ust_tracepoint(thoth_bench, msg, 7, 0x1234, 3, (uint32_t)i, 256,
		                     THOTH_TRACE_SEND | THOTH_TRACE_INLINE, i);
		keep(i);
	}
}

/* Start a session recording thoth_bench:* and wait (deadline, no sleep as
 * synchronisation) until this process's tracepoint is switched on. */
static int lttng_session_start(void)
{
	if (getenv("THOTH_BENCH_NO_LTTNG"))
		return -1;
	if (system("lttng-sessiond --daemonize >/dev/null 2>&1; "
	           "lttng destroy thoth-bench >/dev/null 2>&1; "
	           "lttng create thoth-bench --output=/tmp/thoth-bench-lttng >/dev/null 2>&1 && "
	           "lttng enable-event -u 'thoth_bench:*' >/dev/null 2>&1 && "
	           "lttng start >/dev/null 2>&1") != 0)
		return -1;
	uint64_t deadline = thoth_trace_clock_monotonic_ns() + 5000000000ull;
	while (!lttng_ust_tracepoint_enabled(thoth_bench, msg)) {
		if (thoth_trace_clock_monotonic_ns() > deadline)
			return -1;
		sched_yield();
	}
	return 0;
}

static void lttng_session_stop(void)
{
	if (system("lttng stop thoth-bench >/dev/null 2>&1; "
	           "lttng destroy thoth-bench >/dev/null 2>&1; rm -rf /tmp/thoth-bench-lttng") != 0)
		fprintf(stderr, "bench_trace: could not destroy the lttng session\n");
}
#endif

/* ---- sustained rate with a concurrent reader ------------------------------ */

static int sustained_writer_done;

static int count_event(const thoth_trace_event_t *ev, void *ctx)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

static void *drain_thread(void *arg)
{
	thoth_trace_reader_t *r = arg;
	uint64_t seen = 0;
	while (!__atomic_load_n(&sustained_writer_done, __ATOMIC_ACQUIRE))
		thoth_trace_reader_poll(r, count_event, &seen);
	thoth_trace_reader_poll(r, count_event, &seen);
	return NULL;
}

/* Events/s of one writer whose ring a reader drains; *dropped gets the loss. */
static double sustained_rate(uint64_t n, uint64_t *dropped)
{
	thoth_trace_config_t cfg = { .ring_records = 1u << 16, .full_policy = THOTH_TRACE_DROP_NEWEST,
	                             .enabled = THOTH_TRACE_ALL_CATEGORIES, .process_name = "bench" };
	if (thoth_trace_init(&cfg) != 0)
		return 0;
	int fd;
	thoth_trace_reader_t *r;
	thoth_trace_export_fd(&fd);
	if (thoth_trace_reader_open(fd, &r) != 0) {
		thoth_trace_shutdown();
		return 0;
	}
	__atomic_store_n(&sustained_writer_done, 0, __ATOMIC_RELAXED);
	pthread_t t;
	pthread_create(&t, NULL, drain_thread, r);
	uint64_t t0 = thoth_trace_clock_monotonic_ns();
	loop_thoth(n);
	uint64_t t1 = thoth_trace_clock_monotonic_ns();
	__atomic_store_n(&sustained_writer_done, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	*dropped = st.dropped;
	thoth_trace_reader_close(r);
	thoth_trace_shutdown();
	return (double)n / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		/* checked whole: junk (--help) is not 0 events, silently 1000 */
		char *end;
		errno = 0;
		events_per_run = strtoull(argv[1], &end, 0);
		if (argc > 2 || !*argv[1] || *end || errno || argv[1][0] == '-') {
			fprintf(stderr, "usage: bench_trace [events-per-run]   (a number, not '%s')\n", argv[1]);
			return 2;
		}
	}
	if (events_per_run < 1000)
		events_per_run = 1000;

	/* Trace points before init are disabled; then a buffer with tracing off. */
	thoth_trace_config_t cfg = { .ring_records = 4096, .process_name = "bench" };
	if (thoth_trace_init(&cfg) != 0) {
		fprintf(stderr, "bench_trace: thoth_trace_init failed\n");
		return 1;
	}
	printf("bench_trace: %" PRIu64 " events per run, median of %d runs, clock %s\n",
	       events_per_run, RUNS,
	       thoth_trace_clock_kind == THOTH_TRACE_CLOCK_TSC ? "TSC (rdtsc)" : "CLOCK_MONOTONIC");
	double empty = measure(loop_empty);
	double disabled = measure(loop_thoth);
	thoth_trace_set_enabled(THOTH_TRACE_ALL_CATEGORIES);
	double enabled = measure(loop_thoth);
	thoth_trace_shutdown();
	double mutex = measure(loop_mutex);
	printf("  empty loop                         %7.2f ns/iter\n", empty);
	printf("  thoth trace point, disabled        %7.2f ns/event (%.2f over the empty loop)\n",
	       disabled, disabled - empty);
	printf("  thoth trace point, enabled         %7.2f ns/event\n", enabled);
	printf("  baseline: mutex-protected buffer   %7.2f ns/event  -> thoth is %.2fx cheaper\n",
	       mutex, mutex / enabled);
#ifdef THOTH_HAVE_LTTNG_UST
	double lttng_off = measure(loop_lttng);
	printf("  baseline: LTTng-UST, no session    %7.2f ns/event  (tracepoint compiled in, "
	       "not enabled; compare with thoth disabled: %.2fx)\n",
	       lttng_off, lttng_off / disabled);
	if (lttng_session_start() == 0) {
		double lttng_on = measure(loop_lttng);
		lttng_session_stop();
		printf("  baseline: LTTng-UST, live session  %7.2f ns/event  -> thoth is %.2fx cheaper "
		       "(default channel, discard mode, consumerd writing to /tmp)\n",
		       lttng_on, lttng_on / enabled);
	} else {
		printf("  baseline: LTTng-UST, live session  not measured: no lttng-sessiond could "
		       "be started or the session did not enable the tracepoint\n");
	}
#else
	printf("  baseline: LTTng-UST                not built (liblttng-ust-dev missing)\n");
#endif
	double rates[RUNS], best_lossless = 0;
	int lossless = 0;
	uint64_t worst_drop = 0;
	for (int i = 0; i < RUNS; i++) {
		uint64_t dropped = 0;
		rates[i] = sustained_rate(events_per_run / 5, &dropped);
		if (dropped > worst_drop)
			worst_drop = dropped;
		if (dropped == 0) {
			lossless++;
			if (rates[i] > best_lossless)
				best_lossless = rates[i];
		}
	}
	printf("  sustained, 1 writer + 1 reader     %7.2f M events/s (median of %d runs of %" PRIu64
	       "); %d/%d runs lost nothing, best lossless %.2f M/s, worst run dropped %" PRIu64 "\n",
	       median(rates, RUNS) / 1e6, RUNS, events_per_run / 5, lossless, RUNS,
	       best_lossless / 1e6, worst_drop);
	return 0;
}
