/*
 * bench_sched.c - I/O completions in batches (issue 13 section 4).
 *
 * Workload: 4 KiB reads at random 4 KiB-aligned offsets of a 16 MiB file
 * that is in the page cache (written first), keeping DEPTH reads in flight,
 * for a fixed number of reads per configuration.  Per configuration:
 * completions per wake-up, system calls per read (epoll_wait /
 * io_uring_enter / pread), CPU ns per read (CLOCK_PROCESS_CPUTIME_ID) and
 * reads per second, each the median of RUNS runs.
 *
 *   thoth-uring    thoth_loop_read on the io_uring backend: each callback
 *                  queues the next read; the loop submits and waits in one
 *                  io_uring_enter per wake-up
 *   thoth-epoll    the same program on the default epoll backend (reads run
 *                  inline as pread, callbacks on the next iteration): the
 *                  issue's "epoll + read/write"
 *   plain-uring    the issue's "plain liburing loop": liburing used as its
 *                  manual pages and examples show, io_uring_submit after
 *                  each io_uring_get_sqe/prep, io_uring_wait_cqe +
 *                  io_uring_cqe_seen per completion, default ring; DEPTH
 *                  reads kept in flight.  (Before stop 23 this row was
 *                  called naive-uring.)
 *   batched-uring  a hand-batched bare ring, no loop at all: prep DEPTH
 *                  reads, io_uring_submit_and_wait(1), reap every CQE,
 *                  re-prep; SINGLE_ISSUER|DEFER_TASKRUN like thoth's ring.
 *                  The floor for any program issuing these requests: it
 *                  makes the same system calls as thoth-uring and nothing
 *                  else.  (Before stop 23 this row was called plain-uring
 *                  and the 0.7 target was read against it.)
 *   batched-fixed  the same with the file registered (IOSQE_FIXED_FILE)
 *   plain-pread    one pread per read, no loop at all
 *
 * Baselines are in the same run; ratios at the end: thoth-uring CPU per
 * read / plain-uring's (issue 13: target <= 0.7), completions per wake-up
 * at depth >= 16 (target >= 8); thoth-uring / batched-uring is the loop's
 * own overhead, and the user-space share of batched-uring's CPU bounds it:
 * a loop making the same io_uring_enter calls cannot spend less than
 * batched-uring's kernel part.  Page-cache reads complete inline at
 * submission, so this measures the loop's own cost per I/O, not the disk.
 *
 *   bench_sched [--quick] [--runs N] [--only KIND --depth D --reads N]
 *
 * --only runs one kind once at one depth (for callgrind: instructions per
 * read = (Ir at --reads N - Ir at --reads 0) / N, see docs/SCHED.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "thoth/loop.h"

#define FILE_SIZE (16u << 20)
#define BLOCK 4096u
#define MAXDEPTH 128

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_off(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng % (FILE_SIZE / BLOCK)) * BLOCK;
}

typedef struct result {
	double per_wake, syscalls_per_op, cpu_ns_per_op, ops_per_s;
	double user_ns_per_op;      /* the user-space part of cpu_ns_per_op (getrusage, tick-sampled) */
} result_t;

static _Alignas(4096) char bufs[MAXDEPTH][BLOCK];

/* ---- thoth_loop --------------------------------------------------------- */

typedef struct tctx {
	int fd;
	unsigned issued, done, total, bad;
} tctx_t;

static void on_read(thoth_loop_t *loop, int64_t result, int err, void *arg);

static void issue(thoth_loop_t *loop, tctx_t *t, unsigned slot)
{
	if (t->issued == t->total)
		return;
	t->issued++;
	if (thoth_loop_read(loop, t->fd, bufs[slot], BLOCK, next_off(), on_read,
			    (void *)(((uintptr_t)t << 8) | slot)))
		t->bad++;
}

static void on_read(thoth_loop_t *loop, int64_t result, int err, void *arg)
{
	tctx_t *t = (tctx_t *)((uintptr_t)arg >> 8);
	unsigned slot = (unsigned)((uintptr_t)arg & 0xff);
	if (result != BLOCK)
		t->bad++;
	t->done++;
	issue(loop, t, slot);
}

static int run_thoth(thoth_loop_backend_kind_t kind, int fd, unsigned depth, unsigned total, result_t *out)
{
	thoth_loop_t *loop;
	thoth_loop_options_t o = { .backend = kind };
	if (thoth_loop_new_with(&o, &loop))
		return -1;
	_Static_assert(_Alignof(tctx_t) >= 4, "tag bits");
	static _Alignas(256) tctx_t t;
	t = (tctx_t){ .fd = fd, .total = total };
	thoth_loop_stats_t s0, s1;
	thoth_loop_stats(loop, &s0);
	uint64_t c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < depth; i++)
		issue(loop, &t, i);
	while (t.done < total && !t.bad)
		if (thoth_loop_run_once(loop, true) < 0)
			break;
	uint64_t c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = now_ns(CLOCK_MONOTONIC);
	thoth_loop_stats(loop, &s1);
	thoth_loop_free(loop);
	if (t.bad || t.done < total)
		return -1;
	uint64_t wakes = s1.wakeups - s0.wakeups;
	/* epoll backend: pread per read plus the loop's own waits */
	uint64_t sys = s1.backend_syscalls - s0.backend_syscalls + (kind == THOTH_LOOP_BACKEND_EPOLL ? total : 0);
	out->per_wake = wakes ? (double)total / (double)wakes : 0;
	out->syscalls_per_op = (double)sys / total;
	out->cpu_ns_per_op = (double)(c1 - c0) / total;
	out->ops_per_s = total / ((double)(w1 - w0) / 1e9);
	return 0;
}

/* ---- bare liburing loops --------------------------------------------------------- */

static int run_batched_uring(int fd, unsigned depth, unsigned total, bool fixed, result_t *out)
{
	struct io_uring ring;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	if (io_uring_queue_init_params(256, &ring, &p)) {
		memset(&p, 0, sizeof p);
		if (io_uring_queue_init_params(256, &ring, &p))
			return -1;
	}
	unsigned issued = 0, done = 0, enters = 0, waits = 0, bad = 0;
	/* fixed: the file registered (IOSQE_FIXED_FILE: no fget/fput per read). */
	int rfd = fd, sflags = 0;
	if (fixed) {
		if (io_uring_register_files(&ring, &fd, 1)) {
			io_uring_queue_exit(&ring);
			return -1;
		}
		rfd = 0;
		sflags = IOSQE_FIXED_FILE;
	}
	uint64_t c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < depth && issued < total; i++, issued++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, rfd, bufs[i], BLOCK, next_off());
		sqe->flags |= sflags;
		io_uring_sqe_set_data64(sqe, i);
	}
	while (done < total) {
		if (io_uring_submit_and_wait(&ring, 1) < 0) {
			bad++;
			break;
		}
		enters++;
		waits++;
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			n++;
			done++;
			if (cqe->res != BLOCK)
				bad++;
			unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
			if (issued < total) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
				io_uring_prep_read(sqe, rfd, bufs[slot], BLOCK, next_off());
				sqe->flags |= sflags;
				io_uring_sqe_set_data64(sqe, slot);
				issued++;
			}
		}
		io_uring_cq_advance(&ring, n);
	}
	uint64_t c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = now_ns(CLOCK_MONOTONIC);
	io_uring_queue_exit(&ring);
	if (bad)
		return -1;
	out->per_wake = waits ? (double)total / waits : 0;
	out->syscalls_per_op = (double)enters / total;
	out->cpu_ns_per_op = (double)(c1 - c0) / total;
	out->ops_per_s = total / ((double)(w1 - w0) / 1e9);
	return 0;
}

/* The shape of liburing's own examples: one io_uring_submit per read,
 * io_uring_wait_cqe / io_uring_cqe_seen per completion, default ring. */
static int run_plain_uring(int fd, unsigned depth, unsigned total, result_t *out)
{
	struct io_uring ring;
	if (io_uring_queue_init(256, &ring, 0))
		return -1;
	unsigned issued = 0, done = 0, bad = 0;
	uint64_t enters = 0;
	uint64_t c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < depth && issued < total; i++, issued++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, bufs[i], BLOCK, next_off());
		io_uring_sqe_set_data64(sqe, i);
		io_uring_submit(&ring);
		enters++;
	}
	while (done < total) {
		struct io_uring_cqe *cqe;
		bool ready = io_uring_cq_ready(&ring) > 0;
		if (io_uring_wait_cqe(&ring, &cqe) < 0) {
			bad++;
			break;
		}
		enters += !ready;
		done++;
		bad += cqe->res != BLOCK;
		unsigned slot = (unsigned)io_uring_cqe_get_data64(cqe);
		io_uring_cqe_seen(&ring, cqe);
		if (issued < total) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read(sqe, fd, bufs[slot], BLOCK, next_off());
			io_uring_sqe_set_data64(sqe, slot);
			io_uring_submit(&ring);
			enters++;
			issued++;
		}
	}
	uint64_t c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = now_ns(CLOCK_MONOTONIC);
	io_uring_queue_exit(&ring);
	if (bad)
		return -1;
	out->per_wake = 1;
	out->syscalls_per_op = (double)enters / total;
	out->cpu_ns_per_op = (double)(c1 - c0) / total;
	out->ops_per_s = total / ((double)(w1 - w0) / 1e9);
	return 0;
}

static int run_pread(int fd, unsigned total, result_t *out)
{
	uint64_t c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w0 = now_ns(CLOCK_MONOTONIC);
	for (unsigned i = 0; i < total; i++)
		if (pread(fd, bufs[0], BLOCK, (off_t)next_off()) != BLOCK)
			return -1;
	uint64_t c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID), w1 = now_ns(CLOCK_MONOTONIC);
	out->per_wake = 0;
	out->syscalls_per_op = 1;
	out->cpu_ns_per_op = (double)(c1 - c0) / total;
	out->ops_per_s = total / ((double)(w1 - w0) / 1e9);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

enum { K_TU, K_TE, K_BU, K_BF, K_PL, K_PR, NK };
static const char *const names[NK] = { "thoth-uring", "thoth-epoll", "batched-uring", "batched-fixed",
					"plain-uring", "plain-pread" };

static uint64_t user_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000000ull + (uint64_t)ru.ru_utime.tv_usec * 1000ull;
}

static int run_kind(int k, int fd, unsigned depth, unsigned total, result_t *x)
{
	return k == K_TU ? run_thoth(THOTH_LOOP_BACKEND_URING, fd, depth, total, x)
	     : k == K_TE ? run_thoth(THOTH_LOOP_BACKEND_EPOLL, fd, depth, total, x)
	     : k == K_BU ? run_batched_uring(fd, depth, total, false, x)
	     : k == K_BF ? run_batched_uring(fd, depth, total, true, x)
	     : k == K_PL ? run_plain_uring(fd, depth, total, x)
			 : run_pread(fd, total, x);
}

static int run_one(int k, int fd, unsigned depth, unsigned total, result_t *x)
{
	uint64_t u0 = user_ns();
	int r = run_kind(k, fd, depth, total, x);
	x->user_ns_per_op = (double)(user_ns() - u0) / total;
	return r;
}

/* Runs of the kinds in WANT interleaved (one run of each, RUNS times over),
 * so that a load that comes and goes on a shared machine hits every kind
 * alike; the median of each field per kind.  OK[k] says which worked. */
static void measure_all(const bool *want, int fd, unsigned depth, unsigned total, unsigned runs,
			result_t *out, bool *ok)
{
	double v[NK][5][9];
	unsigned n[NK] = { 0 };
	for (int k = 0; k < NK; k++)
		ok[k] = want[k];
	for (unsigned r = 0; r < runs && r < 9; r++)
		for (int k = 0; k < NK; k++) {
			result_t x;
			if (!ok[k])
				continue;
			if (run_one(k, fd, depth, total, &x)) {
				ok[k] = false;
				continue;
			}
			v[k][0][n[k]] = x.per_wake, v[k][1][n[k]] = x.syscalls_per_op;
			v[k][2][n[k]] = x.cpu_ns_per_op, v[k][3][n[k]] = x.ops_per_s;
			v[k][4][n[k]] = x.user_ns_per_op;
			n[k]++;
		}
	for (int k = 0; k < NK; k++) {
		if (!ok[k])
			continue;
		for (int f = 0; f < 5; f++)
			qsort(v[k][f], n[k], sizeof v[k][f][0], cmp_d);
		unsigned m = n[k] / 2;
		out[k] = (result_t){ v[k][0][m], v[k][1][m], v[k][2][m], v[k][3][m], v[k][4][m] };
	}
}

int main(int argc, char **argv)
{
	unsigned runs = 5, total = 200000, only_depth = 16;
	int only = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			runs = 1;
			total = 20000;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--reads") && i + 1 < argc) {
			total = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--depth") && i + 1 < argc) {
			only_depth = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			i++;
			for (int k = 0; k < NK; k++)
				if (!strcmp(argv[i], names[k]))
					only = k;
			if (only < 0) {
				fprintf(stderr, "bench_sched: --only: unknown kind '%s'\n", argv[i]);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: bench_sched [--quick] [--runs N] [--only KIND --depth D --reads N]\n");
			return 2;
		}
	}
	if (only_depth < 1 || only_depth > MAXDEPTH) {
		fprintf(stderr, "bench_sched: --depth 1..%u\n", MAXDEPTH);
		return 2;
	}
	if (runs < 1)
		runs = 1;
	char path[] = "/tmp/thoth-bench-sched-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("bench_sched: mkstemp");
		return 1;
	}
	unlink(path);
	static char chunk[1 << 20];
	memset(chunk, 0x5a, sizeof chunk);
	for (unsigned off = 0; off < FILE_SIZE; off += sizeof chunk)
		if (pwrite(fd, chunk, sizeof chunk, off) != (ssize_t)sizeof chunk) {
			perror("bench_sched: writing the file");
			return 1;
		}
	thoth_loop_t *probe;
	thoth_loop_options_t o = { .backend = THOTH_LOOP_BACKEND_URING };
	bool have_uring = thoth_loop_new_with(&o, &probe) == 0;
	if (have_uring)
		thoth_loop_free(probe);
	else
		printf("# io_uring unavailable here (%s): uring rows not measured\n", strerror(errno));

	if (only >= 0) {
		result_t x = { 0 };
		int r = total ? run_one(only, fd, only_depth, total, &x) : 0;
		printf("%-12s %5u %10.1f %10.3f %10.0f %12.0f%s\n", names[only], only_depth, x.per_wake,
		       x.syscalls_per_op, x.cpu_ns_per_op, x.ops_per_s, r ? " failed" : "");
		close(fd);
		return r ? 1 : 0;
	}
	printf("# bench_sched: %u random 4 KiB reads of a 16 MiB page-cached file per cell, median of %u run(s)\n",
	       total, runs);
	printf("%-13s %5s %10s %10s %10s %10s %12s\n", "loop", "depth", "per_wake", "sys/op", "cpu_ns/op", "usr_ns/op",
	       "ops/s");
	static const unsigned depths[] = { 1, 16, 128 };
	result_t res[3][NK];
	bool ok[3][NK];
	for (unsigned d = 0; d < 3; d++) {
		bool want[NK];
		for (int k = 0; k < NK; k++)
			want[k] = !(k != K_TE && k != K_PR && !have_uring) &&
				  !(k == K_PR && d > 0);        /* no depth: one pread at a time */
		measure_all(want, fd, depths[d], total, runs, res[d], ok[d]);
		for (int k = 0; k < NK; k++) {
			if (!want[k])
				continue;
			if (!ok[d][k]) {
				printf("%-13s %5u    failed\n", names[k], depths[d]);
				continue;
			}
			result_t *r = &res[d][k];
			printf("%-13s %5u %10.1f %10.3f %10.0f %10.0f %12.0f\n", names[k], depths[d], r->per_wake,
			       r->syscalls_per_op, r->cpu_ns_per_op, r->user_ns_per_op, r->ops_per_s);
			fflush(stdout);
		}
	}
	printf("\n# CPU per read, ratios in this run.  Issue 13's target: thoth-uring <= 0.70x the plain\n"
	       "# liburing loop (plain-uring), and >= 8 completions per wake-up at depth >= 16.  Not targets:\n"
	       "# / thoth-epoll; / batched-uring = the loop's own overhead over a hand-batched bare ring, whose\n"
	       "# kernel share (1 - usr/cpu) is the least any loop making the same system calls can spend;\n"
	       "# batched-fixed / batched-uring = what a registered file saves.\n");
	for (unsigned d = 0; d < 3; d++) {
		if (!ok[d][K_TU])
			continue;
		double tu = res[d][K_TU].cpu_ns_per_op;
		double vs_plain = ok[d][K_PL] ? tu / res[d][K_PL].cpu_ns_per_op : 0;
		printf("depth %3u: vs plain-uring %.2fx (<= 0.70: %s), %.1f per wake-up%s; vs thoth-epoll %.2fx; "
		       "vs batched-uring %.2fx (its kernel share %.0f%%); batched-fixed/batched-uring %.2fx\n",
		       depths[d], vs_plain,
		       !ok[d][K_PL] ? "not measured" : vs_plain <= 0.7 ? "met"
		       : d == 0 ? "NOT MET: one read in flight, nothing to batch" : "NOT MET",
		       res[d][K_TU].per_wake,
		       depths[d] >= 16 ? (res[d][K_TU].per_wake >= 8 ? " (>= 8: met)" : " (>= 8: NOT MET)") : "",
		       ok[d][K_TE] ? tu / res[d][K_TE].cpu_ns_per_op : 0,
		       ok[d][K_BU] ? tu / res[d][K_BU].cpu_ns_per_op : 0,
		       ok[d][K_BU] ? 100.0 * (1.0 - res[d][K_BU].user_ns_per_op / res[d][K_BU].cpu_ns_per_op) : 0,
		       ok[d][K_BF] && ok[d][K_BU] ? res[d][K_BF].cpu_ns_per_op / res[d][K_BU].cpu_ns_per_op : 0);
	}
	close(fd);
	return 0;
}
