/*
 * bench_trace_torn.c - what a reader's poll pays when it meets a ring
 * whose head slot is mid-write (BUSY) and its writer alive (OBS-1, the
 * torn check: reader.c check_torn).  The reader cannot tell a writer in
 * the middle of a record from one that died in it without asking: a
 * tgkill(pid, tid, 0), then, the thread being there, a read of
 * /proc/PID/task/TID/stat (a zombie is dead too).  Every poll that meets
 * the BUSY head of a live writer asks again.
 *
 *   bench_trace_torn [--rounds N]
 *
 * One process, one ring, its head slot marked BUSY by this (live) thread
 * after one record: each timed round polls the ring N times (nothing to
 * read), first with the head committed (two loads), then BUSY (the two
 * system calls and the /proc read); alternated 5 times, the medians of the
 * time a poll and their difference are printed: the check's cost.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "thoth/trace.h"
#include "trace_internal.h"
#include "trace_layout.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int skip(const thoth_trace_event_t *ev, void *ctx)
{
	(void)ev;
	(void)ctx;
	return 0;
}

/* ns a poll, N polls */
static double polls(thoth_trace_reader_t *r, unsigned n)
{
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < n; i++)
		thoth_trace_reader_poll(r, skip, NULL);
	return (double)(now_ns() - t0) / n;
}

/* The helper: claims its ring with one record, hands it over, waits. */
typedef struct helper {
	int ready[2], go[2];
	thoth_trace_ring_header_t *ring;
} helper_t;

static void *helper_thread(void *arg)
{
	helper_t *h = arg;
	THOTH_TRACE(USER, helper, 1, 0);
	h->ring = thoth_trace_thread_ring();
	char b;
	if (write(h->ready[1], "r", 1) != 1 || read(h->go[0], &b, 1) != 1)
		return (void *)1;
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	unsigned rounds = 20000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			rounds = (unsigned)strtoul(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_trace_torn [--rounds N]\n");
			return 2;
		}
	}
	if (!rounds)
		return 2;
	thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = 64,
				     .enabled = THOTH_TRACE_ALL_CATEGORIES,
				     .process_name = "bench-torn" };
	int fd;
	thoth_trace_reader_t *r = NULL;
	if (thoth_trace_init(&cfg) || thoth_trace_export_fd(&fd) || thoth_trace_reader_open(fd, &r)) {
		fprintf(stderr, "bench_trace_torn: no trace buffer\n");
		return 1;
	}
	THOTH_TRACE(USER, one, 1, 0);           /* claims ring 0 */
	helper_t h = { .ring = NULL };
	pthread_t th;
	char b;
	if (pipe(h.ready) || pipe(h.go) || pthread_create(&th, NULL, helper_thread, &h) ||
	    read(h.ready[0], &b, 1) != 1 || !h.ring) {
		fprintf(stderr, "bench_trace_torn: no helper thread\n");
		return 1;
	}
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	thoth_trace_record_t *slot = &thoth_trace_ring_records(ring)[ring->head & 63];
	thoth_trace_record_t *slot2 = &thoth_trace_ring_records(h.ring)[h.ring->head & 63];
	uint64_t committed = __atomic_load_n(&slot->word0, __ATOMIC_RELAXED);
	uint64_t committed2 = __atomic_load_n(&slot2->word0, __ATOMIC_RELAXED);
	thoth_trace_reader_poll(r, skip, NULL);         /* reads both records */
	enum { RUNS = 5 };
	double quiet[RUNS], busy[RUNS], busy2[RUNS], diff[RUNS], diff2[RUNS];
	for (int k = 0; k < RUNS; k++) {
		__atomic_store_n(&slot->word0, committed, __ATOMIC_RELAXED);
		__atomic_store_n(&slot2->word0, committed2, __ATOMIC_RELAXED);
		quiet[k] = polls(r, rounds);
		__atomic_store_n(&slot->word0, (uint64_t)THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
		busy[k] = polls(r, rounds);
		__atomic_store_n(&slot2->word0, (uint64_t)THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
		busy2[k] = polls(r, rounds);
		diff[k] = busy[k] - quiet[k];
		diff2[k] = busy2[k] - quiet[k];
	}
	__atomic_store_n(&slot->word0, committed, __ATOMIC_RELAXED);
	__atomic_store_n(&slot2->word0, committed2, __ATOMIC_RELAXED);
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	qsort(quiet, RUNS, sizeof quiet[0], cmp);
	qsort(busy, RUNS, sizeof busy[0], cmp);
	qsort(busy2, RUNS, sizeof busy2[0], cmp);
	qsort(diff, RUNS, sizeof diff[0], cmp);
	qsort(diff2, RUNS, sizeof diff2[0], cmp);
	printf("poll of two rings with nothing to read, %u polls a run, medians of %d runs:\n"
	       "  heads committed %.1f ns; one head BUSY, its writer alive %.1f ns: the check %.1f ns "
	       "(runs %.1f..%.1f); both BUSY %.1f ns: two checks %.1f ns (runs %.1f..%.1f); "
	       "torn counted %llu (want 0)\n",
	       rounds, RUNS, quiet[RUNS / 2], busy[RUNS / 2], diff[RUNS / 2], diff[0], diff[RUNS - 1],
	       busy2[RUNS / 2], diff2[RUNS / 2], diff2[0], diff2[RUNS - 1],
	       (unsigned long long)st.torn);
	thoth_trace_reader_close(r);
	if (write(h.go[1], "g", 1) != 1 || pthread_join(th, NULL))
		return 1;
	thoth_trace_shutdown();
	return st.torn ? 1 : 0;
}
