/*
 * bench_trace_chan.c - what tracing adds to a shared-memory channel round
 * trip, with the cross-CPU wake-ups taken out: both ends of one channel in
 * this process, one thread, the client sends a 64-byte request, the service
 * end receives it and answers, the client receives the answer (4 trace
 * events, 2 send stamps).  Untraced and traced runs alternate; the figure is
 * the median difference in ns per round trip.  The two-process round trip
 * (bench_channel's "traced vs untraced" table) is this plus two CPUs'
 * cache-line transfers, which tracing does not change.
 *
 *   bench_trace_chan [--count N] [--runs R] [--traced|--untraced]
 *
 * --traced / --untraced run one mode once (for valgrind --tool=callgrind:
 * instructions per round trip = Ir / N).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "chan_shm.h"
#include "thoth/trace.h"
#include "thoth/wire.h"

#define MAX_RUNS 31

typedef struct pair {
	int fd;
	uint8_t *base;
	chan_layout_t lay;
	chan_end_t cli, srv;
} pair_t;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int pair_open(pair_t *p)
{
	thoth_chan_limits_t lim = { 0 };
	char why[200];
	if (thoth_chan_limits_resolve(&lim, why, sizeof why) || chan_layout_compute(&lim, &p->lay))
		return -1;
	p->fd = memfd_create("bench-trace-chan", MFD_CLOEXEC);
	if (p->fd < 0 || ftruncate(p->fd, (off_t)p->lay.size))
		return -1;
	p->base = chan_shm_map(p->fd, p->lay.size);
	if (!p->base)
		return -1;
	chan_shm_format(p->base, &p->lay);
	if (chan_end_init(&p->srv, p->base, &p->lay, CHAN_SERVER) ||
	    chan_end_init(&p->cli, p->base, &p->lay, CHAN_CLIENT))
		return -1;
	p->srv.service_pid = p->cli.service_pid = (uint32_t)getpid();
	return 0;
}

static void pair_close(pair_t *p)
{
	chan_end_fini(&p->cli);
	chan_end_fini(&p->srv);
	chan_shm_unmap(p->base, p->lay.size);
	close(p->fd);
}

/* One message of LEN bytes (header + zero body) from END, inline. */
static int send_one(chan_end_t *end, size_t len, uint16_t flags, uint32_t id)
{
	uint8_t *buf;
	int r = chan_try_alloc(end, len, &buf);
	if (r)
		return r;
	memset(buf, 0, len);
	thoth_msg_header_t h = { .flags = flags, .request_id = id, .interface_id = 0x1234,
				 .method = 1, .body_len = (uint32_t)(len - THOTH_WIRE_HEADER_SIZE) };
	thoth_wire_header_encode(buf, &h);
	return chan_try_send(end, buf, len);
}

static int recv_one(chan_end_t *end)
{
	thoth_msg_t m;
	int r = chan_try_recv(end, &m);
	return r ? r : chan_release(end, &m);
}

static int round_trips(pair_t *p, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		int r = send_one(&p->cli, 64, THOTH_MSG_REQUEST, (uint32_t)i);
		if (!r)
			r = recv_one(&p->srv);
		if (!r)
			r = send_one(&p->srv, 64, THOTH_MSG_RESPONSE, (uint32_t)i);
		if (!r)
			r = recv_one(&p->cli);
		if (r) {
			fprintf(stderr, "bench_trace_chan: round trip %llu: %s\n",
				(unsigned long long)i, thoth_strerror(r));
			return r;
		}
	}
	return 0;
}

static double timed(pair_t *p, uint64_t n, int traced)
{
	thoth_trace_set_enabled(traced ? THOTH_TRACE_MASK(IPC) : 0);
	uint64_t t0 = now_ns();
	if (round_trips(p, n))
		exit(1);
	return (double)(now_ns() - t0) / (double)n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	uint64_t count = 1000000;
	int runs = 9, only = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--count") && i + 1 < argc) {
			count = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--traced")) {
			only = 1;
		} else if (!strcmp(argv[i], "--untraced")) {
			only = 0;
		} else {
			fprintf(stderr, "usage: bench_trace_chan [--count N] [--runs R] [--traced|--untraced]\n");
			return 2;
		}
	}
	if (count == 0 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_trace_chan: --count must be > 0 and --runs 1..%d\n", MAX_RUNS);
		return 2;
	}
	/* Rings large enough that a run never overwrites into the reader's way;
	 * overwrite-oldest is what thoth processes use. */
	thoth_trace_config_t cfg = { .ring_count = 4, .ring_records = 1u << 16,
				     .full_policy = THOTH_TRACE_OVERWRITE_OLDEST };
	pair_t p;
	if (thoth_trace_init(&cfg) || pair_open(&p)) {
		fprintf(stderr, "bench_trace_chan: cannot set up the trace buffer or the channel\n");
		return 1;
	}
	if (only >= 0) {
		timed(&p, count, only);
		printf("%s: %llu round trips (%d trace events each)\n", only ? "traced" : "untraced",
		       (unsigned long long)count, only ? 4 : 0);
	} else {
		double off[MAX_RUNS], on[MAX_RUNS], diff[MAX_RUNS];
		timed(&p, count / 10, 1);  /* warm: claim the ring, register the names */
		for (int r = 0; r < runs; r++) {
			off[r] = timed(&p, count, 0);
			on[r] = timed(&p, count, 1);
			diff[r] = on[r] - off[r];
		}
		double d = median(diff, runs);
		printf("# bench_trace_chan: one-thread channel round trip (64 B request + 64 B answer,\n"
		       "# 4 trace events and 2 send stamps when traced); median of %d alternating runs of %llu\n",
		       runs, (unsigned long long)count);
		printf("untraced %.1f ns   traced %.1f ns   tracing adds %.1f ns per round trip (%.1f ns per event)\n",
		       median(off, runs), median(on, runs), d, d / 4);
	}
	pair_close(&p);
	thoth_trace_shutdown();
	return 0;
}
