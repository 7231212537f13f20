/*
 * bench_scale - SCALE-1/2 measured in one run, every baseline beside the
 * thing it is compared with (docs/SCALE.md, docs/BENCHMARKS.md):
 *
 *   1. in-process lookup cost per thread at 1, 2, ... threads: the
 *      seqlock table (rt_lookup) vs the same table behind a
 *      pthread_rwlock (read lock) and behind a mutex, while a writer
 *      changes it 1,000 times a second;
 *   2. a writer's update: how long until a spinning reader sees it;
 *   3. counter increment: per-thread slot (thoth/percpu.h) vs an atomic
 *      add on one shared cache line, 1..N threads;
 *   4. thothd resolves/s with 1..N client processes: Registry.resolve
 *      round trips (the old path) vs thoth_rtable_resolve (the table,
 *      round trip only on a miss); a list and thothd's status, by round
 *      trip vs from the table, in client and thothd CPU;
 *   5. channel round trip (64 B) with NUMA placement forced on vs off,
 *      alternating blocks in one run (this VM has one node: this is the
 *      cost of the placement logic, not its benefit);
 *   6. cross-node channel round trip, client on the first node and
 *      service on the last: placed (THOTH_NUMA=auto) vs NUMA-oblivious
 *      (off: first touch decides) vs hand-pinned (off, and every range
 *      bound and moved by hand to its reader's node), with where the
 *      pages of each read range are.  Needs two nodes: skipped on one
 *      (scripts/qemu-numa.sh runs it in a 2-node guest).
 *   7. thothd's resolve round trips (per second, p50/p99/p99.9/max)
 *      while a trace session drains N busy traced processes: no session
 *      (baseline), the session drained on thothd's loop thread
 *      (--trace-collector loop, the old path) and by its collector thread
 *      (the default), each on a fresh thothd, alternating, in one run; and
 *      thothd's CPU per collection pass.
 *   8. thothd's loop thread while a large trace session is stopped and
 *      dumped: the longest resolve round trip (another connection,
 *      back to back) during `stop` + `dump` against the longest in an
 *      equally long window just before, with the session running (the
 *      collector thread draining): the ratio is the stall the last drain
 *      and the JSON/CTF encoding put on the loop thread, which answers
 *      them within the handler.
 *   9. thothd's loop thread while the dashboard drains a busy traced
 *      process (one big ring, --live-rate records a second: 1M by default)
 *      with a page on /events and a scraper reading /metrics every second:
 *      another connection's resolve round trips (longest, p99.9, median),
 *      the drain on the loop thread (THOTHD_DEFER=off, the old placement)
 *      vs handed to a worker (the default), a fresh thothd per run,
 *      alternating, in one run.
 *  10. a trace session's start beside the dashboard and the end of its
 *      collection, each with 800k records waiting: the start's round trip,
 *      the loop thread's CPU across it, another connection's longest
 *      resolve (THOTHD_DEFER=off drains there, the old path, vs cuts).
 *  11. beside the dashboard: an active session's write and its stop, each
 *      with 250k records waiting, and a traced process's exit with 800k:
 *      the loop thread's CPU across each, another connection's longest
 *      resolve (THOTHD_DEFER=off drains on the loop thread; the code
 *      before drained there by default: THOTH_BENCH_THOTHD=old thothd).
 *      Sections 10-11 share tests/thothd/live_harness.h with the tests.
 *  12. the dashboard's inline limit: small backlogs (0 to 1,536 records)
 *      scraped from /metrics, drained on the loop thread up to the limit
 *      (THOTHD_TEST_LIVE_INLINE: 2,048, the old limit; 512, the default; 0,
 *      every drain with a record waiting handed to the task thread): the
 *      loop thread's CPU per scrape, the scrape's round trip (a small
 *      collection's latency: /metrics waits for the drain), and another
 *      connection's resolves meanwhile (p99, longest) in a second pass.
 *  13. window exports beside the dashboard: a full window (the 65,536
 *      events kept) exported again and again from /trace.json while
 *      another connection resolves back to back: its longest and median
 *      round trip during the exports and in 300 quiet ms before, the
 *      loop thread's CPU per export (resolver paused), the export's round
 *      trip; a fresh thothd per run (THOTH_BENCH_THOTHD=<thothd before>
 *      for the code before: run the section with each, alternating).
 *
 *   bench_scale [--quick] [--section N]... [--threads N] [--clients N] [--trace-procs N]
 *               [--trace-burst N]  (section 7: N events per 10 ms per traced process)
 *               [--live-rate N]    (section 9: records a second, in bursts every 10 ms)
 *               [--cold-reports]   (section 9: a profiled process appears every 1.3 s)
 *      (N = 1..13 above; default all; --threads: lookups and counters at
 *      1, 2, 4.. up to N threads even above the CPU count (oversubscribed);
 *      --clients: thothd resolves with 1, 2, 4.. up to N client processes)
 *   bench_scale --instr N      N calls of each lookup kind, for callgrind
 *                              (bench/scale/instr.sh prints instructions/call)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.thoth.h"
#include "trace.thoth.h"
#include "chan_shm.h"
#include "harness.h"
#include "live_harness.h"
#include "numa.h"
#include "rtable_shm.h"
#include "thoth/channel.h"
#include "thoth/percpu.h"
#include "thoth/rtable.h"
#include "thoth/trace.h"

static double run_s = 0.5;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This thread's CPU time: per-operation costs are CPU time / operations,
 * so that time the shared, loaded VM gave to other processes is not
 * counted as ours (wall time would be, and varies 10x with the load). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_scale: %s: %s\n", what, thoth_strerror(r));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- 1. in-process lookups ---------------------------------------------- */

enum { MODE_SEQLOCK, MODE_RWLOCK, MODE_MUTEX, MODE_NAME, MODE_NAME_RWLOCK, MODE_COUNT };
static const char *mode_name[] = { "full lookup, seqlock", "full lookup, pthread_rwlock", "full lookup, pthread_mutex",
				   "name handle, seqlock", "name handle, pthread_rwlock" };

typedef struct lk {
	rt_writer_t w;
	rt_view_t v;
	pthread_rwlock_t rw;
	pthread_mutex_t mx;
	int mode;
	int done;                       /* atomic: readers finished */
	uint64_t per_thread;            /* lookups each reader makes */
	pthread_barrier_t start;
} lk_t;

typedef struct lk_thread {
	lk_t *l;
	pthread_t t;
	int cpu;
	double ns_per_lookup;
	uint64_t found;
} lk_thread_t;

static const char *names16[16] = { "echo", "kv", "codex", "pm", "trace", "timer", "auth", "fs",
				   "net", "disk", "gpu", "log", "metrics", "sched", "store", "dash" };

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static void *lk_reader(void *arg)
{
	lk_thread_t *me = arg;
	lk_t *l = me->l;
	pin(me->cpu);
	rt_key_t keys[16];
	rt_name_t *nm = malloc(16 * sizeof *nm);
	for (int i = 0; i < 16; i++) {
		rt_key_init(&keys[i], names16[i], NULL);
		rt_name_init(&nm[i], &keys[i]);
	}
	pthread_barrier_wait(&l->start);
	uint64_t n = 0, found = 0, t0 = cpu_ns();
	/* A fixed amount of work (never "until told": on a loaded machine a
	 * thread may not run at all in a short window). */
	while (n < l->per_thread) {
		for (int i = 0; i < 64; i++) {
			rt_result_t r;
			const rt_key_t *k = &keys[i & 15];
			int got;
			switch (l->mode) {
			case MODE_RWLOCK:
				pthread_rwlock_rdlock(&l->rw);
				got = rt_lookup(&l->v, k, 0, &r, NULL);
				pthread_rwlock_unlock(&l->rw);
				break;
			case MODE_MUTEX:
				pthread_mutex_lock(&l->mx);
				got = rt_lookup(&l->v, k, 0, &r, NULL);
				pthread_mutex_unlock(&l->mx);
				break;
			case MODE_NAME: {
				/* What thoth_rtable_name_resolve runs: the kept
				 * answer while the sequence is unchanged. */
				rt_name_t *h = &nm[i & 15];
				int at = rt_name_pick(h, &l->v, 0);
				if (__builtin_expect(at < 0, 0))
					at = rt_name_refresh(h, &l->v, 0);
				got = at < 0 ? at : 0;
				__asm__ volatile("" : : "r"(at >= 0 ? &h->ans[at] : NULL) : "memory");
				break;
			}
			case MODE_NAME_RWLOCK: {
				/* The same kept answers, checked under the lock
				 * instead of against the sequence. */
				rt_name_t *h = &nm[i & 15];
				pthread_rwlock_rdlock(&l->rw);
				int at = rt_name_pick(h, &l->v, 0);
				if (__builtin_expect(at < 0, 0))
					at = rt_name_refresh(h, &l->v, 0);
				pthread_rwlock_unlock(&l->rw);
				got = at < 0 ? at : 0;
				__asm__ volatile("" : : "r"(at >= 0 ? &h->ans[at] : NULL) : "memory");
				break;
			}
			default:
				got = rt_lookup(&l->v, k, 0, &r, NULL);
			}
			found += got == 0;
		}
		n += 64;
	}
	me->ns_per_lookup = (double)(cpu_ns() - t0) / (double)n;
	me->found = found;
	free(nm);
	__atomic_fetch_add(&l->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Writes 1,000 times a second (re-registers one instance), under the
 * mode's lock for the locked baselines. */
static void lk_write(lk_t *l, uint64_t *lease)
{
	bool rw = l->mode == MODE_RWLOCK || l->mode == MODE_NAME_RWLOCK;
	if (rw)
		pthread_rwlock_wrlock(&l->rw);
	else if (l->mode == MODE_MUTEX)
		pthread_mutex_lock(&l->mx);
	rt_writer_remove(&l->w, "churn", 5, *lease);
	++*lease;
	rt_instance_t in = { .name = "churn", .name_len = 5, .addr = "/run/churn.sock", .addr_len = 15,
			     .major = 1, .lease = *lease, .expires_at_ns = UINT64_MAX };
	rt_writer_add(&l->w, &in);
	if (rw)
		pthread_rwlock_unlock(&l->rw);
	else if (l->mode == MODE_MUTEX)
		pthread_mutex_unlock(&l->mx);
}

static void fill_table(lk_t *l)
{
	/* 16 names, 2 instances each, plus 1,000 other names (a busy table). */
	uint64_t lease = 1;
	for (int i = 0; i < 16; i++)
		for (int k = 0; k < 2; k++) {
			char addr[64];
			snprintf(addr, sizeof addr, "/run/%s-%d.sock", names16[i], k);
			rt_instance_t in = { .name = names16[i], .name_len = strlen(names16[i]), .addr = addr,
					     .addr_len = strlen(addr), .major = 1, .lease = lease++,
					     .expires_at_ns = UINT64_MAX };
			rt_writer_add(&l->w, &in);
		}
	for (int i = 0; i < 1000; i++) {
		char name[32];
		snprintf(name, sizeof name, "other%d", i);
		rt_instance_t in = { .name = name, .name_len = strlen(name), .addr = "/run/o.sock", .addr_len = 11,
				     .major = 1, .lease = lease++, .expires_at_ns = UINT64_MAX };
		rt_writer_add(&l->w, &in);
	}
}

static double lookup_run(lk_t *l, int mode, int threads)
{
	l->mode = mode;
	__atomic_store_n(&l->done, 0, __ATOMIC_RELAXED);
	/* ~0.5 s of lookups at 25 ns, of handle resolves at 3 ns. */
	l->per_thread = (uint64_t)(run_s * 20e6) * (mode >= MODE_NAME ? 6 : 1);
	lk_thread_t th[16];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_barrier_init(&l->start, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		th[i] = (lk_thread_t){ .l = l, .cpu = (int)(i % ncpu) };
		pthread_create(&th[i].t, NULL, lk_reader, &th[i]);
	}
	pthread_barrier_wait(&l->start);
	uint64_t lease = 1000;
	while (__atomic_load_n(&l->done, __ATOMIC_ACQUIRE) < threads) {
		lk_write(l, &lease);
		usleep(1000);
	}
	double sum = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i].t, NULL);
		sum += th[i].ns_per_lookup;
	}
	pthread_barrier_destroy(&l->start);
	return sum / threads;
}

static void bench_lookups(int max_threads, int reps)
{
	lk_t *l = calloc(1, sizeof *l);
	if (rt_writer_init(&l->w, 4096, NULL, 0))
		die("table", THOTH_E_IO);
	char why[100];
	rt_view_init(&l->v, l->w.base, l->w.size, why, sizeof why);
	pthread_rwlock_init(&l->rw, NULL);
	pthread_mutex_init(&l->mx, NULL);
	fill_table(l);
	printf("1. in-process lookup, ns of thread CPU time per lookup per thread (median of %d runs of %.1f s;\n"
	       "   a writer changes the table 1,000 times/s; 16 names x 2 instances among 1,032 entries;\n"
	       "   a full lookup hashes nothing (key prepared) but probes, compares and copies the address out;\n"
	       "   a name handle (thoth_rtable_name_t's core) returns its kept answer while the table's sequence\n"
	       "   is unchanged and reads the table again after each change)\n", reps, run_s);
	printf("   %-28s", "threads");
	for (int t = 1; t <= max_threads; t *= 2)
		printf(" %9d", t);
	printf("   flatness (max/min)\n");
	double m[MODE_COUNT][8] = { { 0 } };
	int cols = 0;
	for (int mode = 0; mode < MODE_COUNT; mode++) {
		printf("   %-28s", mode_name[mode]);
		double lo = 1e30, hi = 0;
		int col = 0;
		for (int t = 1; t <= max_threads; t *= 2, col++) {
			double v[9];
			for (int r = 0; r < reps; r++)
				v[r] = lookup_run(l, mode, t);
			m[mode][col] = median(v, reps);
			lo = m[mode][col] < lo ? m[mode][col] : lo;
			hi = m[mode][col] > hi ? m[mode][col] : hi;
			printf(" %9.1f", m[mode][col]);
		}
		cols = col;
		printf("   %.2f\n", hi / lo);
	}
	static const struct { int a, b; const char *what; } ratio[] = {
		{ MODE_RWLOCK, MODE_SEQLOCK, "full: rwlock / seqlock" },
		{ MODE_MUTEX, MODE_SEQLOCK, "full: mutex / seqlock" },
		{ MODE_NAME_RWLOCK, MODE_NAME, "handle: rwlock / seqlock" },
		{ MODE_RWLOCK, MODE_NAME, "full rwlock / handle seqlock" },
	};
	for (size_t q = 0; q < sizeof ratio / sizeof ratio[0]; q++) {
		printf("   %-28s", ratio[q].what);
		for (int col = 0; col < cols; col++)
			printf(" %8.1fx", m[ratio[q].a][col] / m[ratio[q].b][col]);
		printf("\n");
	}
	/* The public call a client makes: key preparation (hash) included. */
	rt_result_t r;
	uint64_t t0 = cpu_ns(), n = 0;
	while (cpu_ns() - t0 < (uint64_t)(run_s * 1e9)) {
		for (int i = 0; i < 64; i++) {
			rt_key_t k;
			rt_key_init(&k, names16[i & 15], "1.0.0");
			rt_lookup(&l->v, &k, 0, &r, NULL);
		}
		n += 64;
	}
	printf("   with the name hashed on every call (rt_key_init + rt_lookup, 1 thread): %.1f ns\n",
	       (double)(cpu_ns() - t0) / (double)n);
	rt_writer_free(&l->w);
	free(l);
}

/* ---- instructions per lookup (bench/scale/instr.sh runs this under
 * callgrind, which counts each instr_* function's instructions) -------- */

static __attribute__((noinline)) void instr_full_seqlock(lk_t *l, const rt_key_t *k, long iters)
{
	for (long i = 0; i < iters; i++) {
		rt_result_t r;
		rt_lookup(&l->v, &k[i & 15], 0, &r, NULL);
		__asm__ volatile("" : : "r"(&r) : "memory");
	}
}

static __attribute__((noinline)) void instr_full_rwlock(lk_t *l, const rt_key_t *k, long iters)
{
	for (long i = 0; i < iters; i++) {
		rt_result_t r;
		pthread_rwlock_rdlock(&l->rw);
		rt_lookup(&l->v, &k[i & 15], 0, &r, NULL);
		pthread_rwlock_unlock(&l->rw);
		__asm__ volatile("" : : "r"(&r) : "memory");
	}
}

static __attribute__((noinline)) void instr_handle_seqlock(lk_t *l, rt_name_t *nm, long iters)
{
	for (long i = 0; i < iters; i++) {
		rt_name_t *n = &nm[i & 15];
		int at = rt_name_pick(n, &l->v, 0);
		if (at < 0)
			at = rt_name_refresh(n, &l->v, 0);
		__asm__ volatile("" : : "r"(at) : "memory");
	}
}

static __attribute__((noinline)) void instr_handle_rwlock(lk_t *l, rt_name_t *nm, long iters)
{
	for (long i = 0; i < iters; i++) {
		rt_name_t *n = &nm[i & 15];
		pthread_rwlock_rdlock(&l->rw);
		int at = rt_name_pick(n, &l->v, 0);
		if (at < 0)
			at = rt_name_refresh(n, &l->v, 0);
		pthread_rwlock_unlock(&l->rw);
		__asm__ volatile("" : : "r"(at) : "memory");
	}
}

static __attribute__((noinline)) void instr_public_handle(thoth_rtable_name_t *n, long iters)
{
	for (long i = 0; i < iters; i++) {
		const thoth_resolved_t *w;
		thoth_rtable_name_resolve(n, &w);
		__asm__ volatile("" : : "r"(w) : "memory");
	}
}

static __attribute__((noinline)) void instr_public_resolve(thoth_rtable_t *t, long iters)
{
	for (long i = 0; i < iters; i++) {
		thoth_resolved_t w;
		thoth_rtable_resolve(t, "echo", NULL, &w);
		__asm__ volatile("" : : "r"(&w) : "memory");
	}
}

static void bench_instr(long iters)
{
	lk_t *l = calloc(1, sizeof *l);
	if (rt_writer_init(&l->w, 4096, NULL, 0))
		die("table", THOTH_E_IO);
	char why[200];
	rt_view_init(&l->v, l->w.base, l->w.size, why, sizeof why);
	pthread_rwlock_init(&l->rw, NULL);
	fill_table(l);
	rt_key_t keys[16];
	rt_name_t *nm = malloc(16 * sizeof *nm);
	for (int i = 0; i < 16; i++) {
		rt_key_init(&keys[i], names16[i], NULL);
		rt_name_init(&nm[i], &keys[i]);
	}
	instr_full_seqlock(l, keys, iters);
	instr_full_rwlock(l, keys, iters);
	instr_handle_seqlock(l, nm, iters);
	instr_handle_rwlock(l, nm, iters);
	/* The public calls, on a real thothd's table. */
	harness_t h;
	thoth_control_t svc;
	thoth_rtable_t *t = NULL;
	thoth_rtable_name_t *n = NULL;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0 || harness_connect(&h, &svc) ||
	    harness_register(&svc, "echo", 0, NULL) || harness_register(&svc, "echo", 0, NULL) ||
	    thoth_rtable_open(h.dir, &t, why, sizeof why) || thoth_rtable_name_open(t, "echo", NULL, &n))
		die("thothd for the public calls", THOTH_E_IO);
	instr_public_handle(n, iters);
	instr_public_resolve(t, iters);
	printf("bench_scale --instr: %ld calls of each instr_* function (count them with callgrind: "
	       "bench/scale/instr.sh)\n", iters);
	thoth_rtable_name_close(n);
	thoth_rtable_close(t);
	thoth_control_close(&svc);
	harness_teardown(&h);
	free(nm);
	rt_writer_free(&l->w);
	free(l);
}

/* ---- 2. visibility -------------------------------------------------------- */

/*
 * Two questions, kept apart because they have different answers:
 *
 *   a. Is an update visible?  Every lookup that begins after the writer
 *      finished must see it.  The reader loads the writer's "committed"
 *      lease before each lookup and counts lookups that answered an older
 *      one: no clock, no scheduling in it.
 *   b. How soon does a reader that waits for a change learn of it?  That
 *      is scheduling: a reader spinning on the table competes with every
 *      other runnable thread for its CPU and, under load, waits out their
 *      time slices; a reader sleeping in rt_wait (the futex the writer
 *      wakes) is a waking sleeper, which the scheduler runs promptly.
 *      Both are measured idle and under a synthetic load (CPU-bound
 *      processes, 2 per CPU) in the same run.
 */

enum { VIS_UPDATES = 300 };

typedef struct vis {
	rt_view_t v;
	uint64_t committed;             /* atomic: lease whose write finished */
	int stop, waiting;              /* atomic */
	int sleeper;                    /* 1: rt_wait, 0: spin */
	int fifo;                       /* the reader runs SCHED_FIFO (needs CAP_SYS_NICE) */
	int fifo_ok;
	uint64_t lookups, stale;
	/* Per update (index = lease): when the writer began and finished it
	 * (writer), when the reader first had it (reader; 0 = never). */
	uint64_t t_begin[VIS_UPDATES + 1], t_done[VIS_UPDATES + 1], t_seen[VIS_UPDATES + 1];
} vis_t;

static void vis_record(vis_t *x, uint64_t lease)
{
	if (lease >= 1 && lease <= VIS_UPDATES && !x->t_seen[lease])
		x->t_seen[lease] = now_ns();
}

static void *vis_reader(void *arg)
{
	vis_t *x = arg;
	/* The privileged remedy, for comparison: a real-time watcher
	 * preempts CPU-bound SCHED_OTHER work at once (systemd's
	 * CPUSchedulingPolicy= can give it to a service without root). */
	if (x->fifo) {
		struct sched_param sp = { .sched_priority = 1 };
		x->fifo_ok = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	}
	rt_key_t k;
	rt_key_init(&k, "watched", NULL);
	uint64_t last = 0;
	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		if (x->sleeper) {
			uint32_t gen = rt_generation(&x->v);
			rt_result_t r;
			if (rt_lookup(&x->v, &k, 0, &r, NULL) == 0 && r.lease != last) {
				last = r.lease;
				vis_record(x, r.lease);
			}
			__atomic_store_n(&x->waiting, 1, __ATOMIC_RELEASE);
			rt_wait(&x->v, gen, 100);
			continue;
		}
		uint64_t committed = __atomic_load_n(&x->committed, __ATOMIC_ACQUIRE);
		rt_result_t r;
		int got = rt_lookup(&x->v, &k, 0, &r, NULL);
		x->lookups++;
		/* Not found is the moment between a removal and the next add:
		 * a newer state, not a stale one. */
		if (committed && !got && r.lease < committed)
			x->stale++;
		if (!got && r.lease != last) {
			last = r.lease;
			vis_record(x, r.lease);
		}
	}
	return NULL;
}

/* p50/p99 of when the reader had each update, counted from the writer's
 * finish (FROM_BEGIN: from its start, the writer's own delays included). */
static void vis_percentiles(const vis_t *x, bool from_begin, double *p50, double *p99)
{
	double lat[VIS_UPDATES];
	int n = 0;
	for (int i = 1; i <= VIS_UPDATES; i++) {
		if (!x->t_seen[i])
			continue;
		uint64_t t0 = from_begin ? x->t_begin[i] : x->t_done[i];
		/* Seen before the writer noted its finish: at once. */
		lat[n++] = x->t_seen[i] > t0 ? (double)(x->t_seen[i] - t0) / 1e3 : 0;
	}
	qsort(lat, (size_t)n, sizeof lat[0], cmp_double);
	*p50 = n ? lat[n / 2] : 0;
	*p99 = n ? lat[n * 99 / 100] : 0;
}

/* P: p50, p99 from the finish, p99 from the start. */
static void vis_run(int kind, double p[3], uint64_t *lookups, uint64_t *stale)
{
	rt_writer_t w;
	if (rt_writer_init(&w, 64, NULL, 0))
		die("table", THOTH_E_IO);
	vis_t *x = calloc(1, sizeof *x);
	char why[100];
	rt_view_init(&x->v, w.base, w.size, why, sizeof why);
	x->sleeper = kind > 0;
	x->fifo = kind > 1;
	pthread_t t;
	pthread_create(&t, NULL, vis_reader, x);
	uint64_t prev = 0;
	for (uint64_t lease = 1; lease <= VIS_UPDATES; lease++) {
		/* A sleeping reader must be asleep again before the next update,
		 * or it would see it without being woken. */
		while (x->sleeper && !__atomic_exchange_n(&x->waiting, 0, __ATOMIC_ACQ_REL))
			usleep(100);
		usleep(1000);
		x->t_begin[lease] = now_ns();
		if (prev)
			rt_writer_remove(&w, "watched", 7, prev);
		rt_instance_t in = { .name = "watched", .name_len = 7, .addr = "/run/w.sock", .addr_len = 11,
				     .major = 1, .lease = lease, .expires_at_ns = UINT64_MAX };
		rt_writer_add(&w, &in);         /* its FUTEX_WAKE included */
		x->t_done[lease] = now_ns();
		__atomic_store_n(&x->committed, lease, __ATOMIC_RELEASE);
		prev = lease;
	}
	usleep(20000);
	__atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	vis_percentiles(x, false, &p[0], &p[1]);
	double dummy;
	vis_percentiles(x, true, &dummy, &p[2]);
	*lookups = x->lookups;
	*stale = x->stale;
	if (x->fifo && !x->fifo_ok)
		p[0] = p[1] = p[2] = -1;        /* not allowed here */
	free(x);
	rt_writer_free(&w);
}

static pid_t hogs[64];
static int n_hogs;

static void load_start(int n)
{
	for (int i = 0; i < n && n_hogs < 64; i++) {
		pid_t p = fork();
		if (p == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);       /* never outlive the benchmark */
			volatile uint64_t spin = 0;
			for (;;)
				spin++;
		}
		if (p > 0)
			hogs[n_hogs++] = p;
	}
}

static void load_stop(void)
{
	for (int i = 0; i < n_hogs; i++) {
		kill(hogs[i], SIGKILL);
		waitpid(hogs[i], NULL, 0);
	}
	n_hogs = 0;
}

static void bench_visibility(int reps)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	static const char *kind[3] = { "spinning on lookups", "sleeping in rt_wait (futex)",
				       "rt_wait, SCHED_FIFO 1 (privileged)" };
	printf("\n2. a writer's update and its readers (%d updates 1 ms apart, medians of %d runs;\n"
	       "   load = %ld CPU-bound processes started by this benchmark, on top of whatever else runs)\n"
	       "   how soon a waiting reader has the new answer, us after the writer finished (its FUTEX_WAKE\n"
	       "   made); last column: from the writer's start, its own delays under load included\n",
	       VIS_UPDATES, reps, 2 * ncpu);
	printf("   %-38s %9s %9s %9s %9s %12s\n", "", "idle p50", "idle p99", "load p50", "load p99",
	       "load p99/start");
	double cell[3][2][3];
	uint64_t stale_total = 0, lookups_total = 0;
	for (int loaded = 0; loaded < 2; loaded++) {
		if (loaded)
			load_start((int)(2 * ncpu));
		for (int k = 0; k < 3; k++) {
			double v[3][9];
			for (int r = 0; r < reps; r++) {
				uint64_t lookups, stale;
				double p[3];
				vis_run(k, p, &lookups, &stale);
				for (int q = 0; q < 3; q++)
					v[q][r] = p[q];
				lookups_total += lookups;
				stale_total += stale;
			}
			for (int q = 0; q < 3; q++)
				cell[k][loaded][q] = median(v[q], reps);
		}
		if (loaded)
			load_stop();
	}
	for (int k = 0; k < 3; k++) {
		printf("   %-38s", kind[k]);
		double shown[5] = { cell[k][0][0], cell[k][0][1], cell[k][1][0], cell[k][1][1], cell[k][1][2] };
		for (int q = 0; q < 5; q++)
			if (shown[q] < 0)
				printf(" %*s", q == 4 ? 12 : 9, "n/a");
			else
				printf(" %*.1f", q == 4 ? 12 : 9, shown[q]);
		printf("\n");
	}
	printf("   is it visible: lookups begun after the writer finished that still saw the old answer:\n"
	       "   %llu of %llu (target: 0; a lookup never misses a finished update)\n",
	       (unsigned long long)stale_total, (unsigned long long)lookups_total);
}

/* ---- 3. counters ----------------------------------------------------------- */

static thoth_pcounter_t pc = THOTH_PCOUNTER_INIT("bench");
static _Alignas(64) uint64_t shared_counter;

typedef struct ctr_thread {
	pthread_t t;
	int cpu, mode;
	double ns;
} ctr_thread_t;

static void *ctr_run(void *arg)
{
	ctr_thread_t *me = arg;
	pin(me->cpu);
	uint64_t n = 0, t0 = cpu_ns();
	while (n < (uint64_t)(run_s * 100e6)) {     /* fixed work, as for the lookups */
		if (me->mode == 0)
			for (int i = 0; i < 256; i++)
				thoth_pcounter_inc(&pc);
		else
			for (int i = 0; i < 256; i++)
				__atomic_fetch_add(&shared_counter, 1, __ATOMIC_RELAXED);
		n += 256;
	}
	me->ns = (double)(cpu_ns() - t0) / (double)n;
	return NULL;
}

static double ctr_once(int mode, int threads)
{
	ctr_thread_t th[16];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	for (int i = 0; i < threads; i++) {
		th[i] = (ctr_thread_t){ .cpu = (int)(i % ncpu), .mode = mode };
		pthread_create(&th[i].t, NULL, ctr_run, &th[i]);
	}
	double sum = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i].t, NULL);
		sum += th[i].ns;
	}
	return sum / threads;
}

static void bench_counters(int max_threads, int reps)
{
	printf("\n3. counter increment, ns of thread CPU time per increment per thread (median of %d)\n", reps);
	printf("   %-34s", "threads");
	for (int t = 1; t <= max_threads; t *= 2)
		printf(" %9d", t);
	printf("\n");
	double per[8];
	for (int mode = 0; mode < 2; mode++) {
		printf("   %-34s", mode ? "atomic add on one cache line" : "per-thread slot (thoth_pcounter)");
		int col = 0;
		for (int t = 1; t <= max_threads; t *= 2, col++) {
			double v[9];
			for (int r = 0; r < reps; r++)
				v[r] = ctr_once(mode, t);
			double m = median(v, reps);
			if (!mode)
				per[col] = m;
			printf(mode ? " %9.2f" : " %9.2f", m);
			if (mode && t == max_threads)
				printf("   (%.1fx the per-thread slot at %d threads)", m / per[col], t);
		}
		printf("\n");
	}
}

/* ---- 4. thothd resolves/s ------------------------------------------------ */

/* CPU time (user + system) a process has used, from /proc/PID/stat, ns. */
static double proc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	/* After ") ": state, then 10 fields, then utime (14th) and stime (15th). */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) * 1e9 / (double)sysconf(_SC_CLK_TCK);
}

static double last_client_cpu_ns, last_thothd_cpu_ns;   /* per resolve, of the last run */

enum { RS_ROUND_TRIP, RS_TABLE, RS_HANDLE, RS_MODES };
static const char *rs_name[RS_MODES] = { "round trip (Registry.resolve)", "shared table (thoth_rtable_resolve)",
					 "name handle (thoth_rtable_name_resolve)" };

static double resolves_per_second(harness_t *h, int clients, int mode)
{
	double thothd0 = proc_cpu_ns(h->thothd), client_cpu = 0;
	int fds[16][2];
	pid_t pids[16];
	for (int c = 0; c < clients; c++) {
		if (pipe(fds[c]))
			die("pipe", THOTH_E_IO);
		pids[c] = fork();
		if (pids[c] == 0) {
			uint64_t n = 0;
			thoth_control_t ctl;
			thoth_rtable_t *t = NULL;
			thoth_rtable_name_t *nm = NULL;
			char why[200];
			if (mode == RS_ROUND_TRIP ? harness_connect(h, &ctl)
						  : thoth_rtable_open(h->dir, &t, why, sizeof why))
				_exit(1);
			if (mode == RS_HANDLE && thoth_rtable_name_open(t, "echo", NULL, &nm))
				_exit(1);
			uint64_t end = now_ns() + (uint64_t)(run_s * 2e9);
			thoth_resolved_t where;
			const thoth_resolved_t *kept;
			while (now_ns() < end) {
				for (int k = 0; k < 64; k++)
					if (mode == RS_HANDLE ? thoth_rtable_name_resolve(nm, &kept) == 0
					    : mode == RS_TABLE ? thoth_rtable_resolve(t, "echo", NULL, &where) == 0
							       : harness_resolve(&ctl, "echo", NULL) == 0)
						n++;
			}
			struct timespec ts;
			clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
			uint64_t out[2] = { n, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec };
			if (write(fds[c][1], out, sizeof out) != sizeof out)
				_exit(1);
			_exit(0);
		}
		close(fds[c][1]);
	}
	uint64_t total = 0;
	for (int c = 0; c < clients; c++) {
		uint64_t in[2] = { 0, 0 };
		if (read(fds[c][0], in, sizeof in) == sizeof in) {
			total += in[0];
			client_cpu += (double)in[1];
		}
		close(fds[c][0]);
		waitpid(pids[c], NULL, 0);
	}
	last_client_cpu_ns = total ? client_cpu / (double)total : 0;
	last_thothd_cpu_ns = total ? (proc_cpu_ns(h->thothd) - thothd0) / (double)total : 0;
	return (double)total / (run_s * 2);
}

static void bench_list(harness_t *h, int reps);
static void bench_status(harness_t *h, int reps);

static void bench_thothd(int max_clients, int reps)
{
	harness_t h;
	if (harness_setup(&h))
		die("runtime dir", THOTH_E_IO);
	if (harness_start_thothd(&h, NULL) <= 0)
		die("start thothd", THOTH_E_IO);
	thoth_control_t svc;
	if (harness_connect(&h, &svc))
		die("connect", THOTH_E_IO);
	for (int i = 0; i < 4; i++)
		if (harness_register(&svc, "echo", 0, NULL))
			die("register", THOTH_E_IO);
	printf("\n4. resolves/s of \"echo\" (4 instances) with N client processes, median of %d runs of %.1f s\n",
	       reps, run_s * 2);
	printf("   %-40s", "clients");
	for (int c = 1; c <= max_clients; c *= 2)
		printf(" %12d", c);
	printf("\n");
	double rt1 = 0, tb[8] = { 0 }, rt[8] = { 0 }, hd[8] = { 0 }, ccpu[RS_MODES] = { 0 }, dcpu[RS_MODES] = { 0 };
	for (int mode = 0; mode < RS_MODES; mode++) {
		printf("   %-40s", rs_name[mode]);
		int col = 0;
		for (int c = 1; c <= max_clients; c *= 2, col++) {
			double v[9], cc[9], dc[9];
			for (int r = 0; r < reps; r++) {
				v[r] = resolves_per_second(&h, c, mode);
				cc[r] = last_client_cpu_ns;
				dc[r] = last_thothd_cpu_ns;
			}
			double m = median(v, reps);
			if (c == 1) {
				ccpu[mode] = median(cc, reps);
				dcpu[mode] = median(dc, reps);
			}
			(mode == RS_HANDLE ? hd : mode == RS_TABLE ? tb : rt)[col] = m;
			if (!mode && c == 1)
				rt1 = m;
			printf(" %12.0f", m);
		}
		printf("\n");
	}
	printf("   %-40s", "handle / round trip");
	int hc = 0;
	for (int c = 1; c <= max_clients; c *= 2, hc++)
		printf(" %11.0fx", hd[hc] / rt[hc]);
	printf("\n");
	printf("   %-40s", "table / round trip");
	int col = 0;
	for (int c = 1; c <= max_clients; c *= 2, col++)
		printf(" %11.0fx", tb[col] / rt[col]);
	printf("\n   round trip at %d clients / at 1: %.2fx; table at %d clients / at 1: %.2fx\n", max_clients,
	       rt[col - 1] / rt1, max_clients, tb[col - 1] / tb[0]);
	/* CPU per resolve does not depend on how busy the machine is: it says
	 * what serialises.  thothd's share runs on its one loop thread. */
	printf("   CPU per resolve (1 client): round trip: client %.2f us + thothd %.2f us -> thothd alone caps it\n"
	       "   at %.0f/s whatever the clients; table: client %.3f us + thothd %.3f us -> %.0f/s per client CPU,\n"
	       "   nothing shared to cap it (%ld CPUs here: %.0f/s)\n",
	       ccpu[0] / 1e3, dcpu[0] / 1e3, dcpu[0] > 0 ? 1e9 / dcpu[0] : 0, ccpu[1] / 1e3, dcpu[1] / 1e3,
	       ccpu[1] > 0 ? 1e9 / ccpu[1] : 0, sysconf(_SC_NPROCESSORS_ONLN),
	       ccpu[1] > 0 ? 1e9 / ccpu[1] * (double)sysconf(_SC_NPROCESSORS_ONLN) : 0);
	printf("   name handle: client %.4f us per resolve (%.1fx the table's full lookup); at %d clients / at 1: %.2fx\n",
	       ccpu[RS_HANDLE] / 1e3, ccpu[RS_HANDLE] > 0 ? ccpu[RS_TABLE] / ccpu[RS_HANDLE] : 0, max_clients,
	       hd[0] > 0 ? hd[col - 1] / hd[0] : 0);
	bench_list(&h, reps);
	bench_status(&h, reps);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

/* A list of "echo" from one client: Registry.list by round trip (thothd's
 * one thread builds it) vs thoth_rtable_list (a pass over the table in
 * the client).  Wall and CPU time per list, and thothd's CPU per list. */
static void bench_list(harness_t *h, int reps)
{
	thoth_control_t ctl;
	thoth_rtable_t *t = NULL;
	char why[200];
	if (harness_connect(h, &ctl) || thoth_rtable_open(h->dir, &t, why, sizeof why))
		die("list client", THOTH_E_IO);
	static thoth_rtable_instance_t out[64];
	double per[2][9], dper[2][9];
	int iters = (int)(run_s * 40000);
	for (int r = 0; r < reps; r++)
		for (int mode = 0; mode < 2; mode++) {
			double d0 = proc_cpu_ns(h->thothd);
			uint64_t c0 = cpu_ns();
			for (int i = 0; i < iters; i++) {
				if (mode == 0) {
					thoth_registry_Registry_list_req_t req = { .prefix = thoth_str("echo"),
										   .locality = THOTH_COMMON_LOCALITY_ANY };
					thoth_registry_Registry_list_resp_t resp;
					uint64_t scratch[4096];
					thoth_arena_t arena;
					thoth_arena_init(&arena, scratch, sizeof scratch);
					if (thoth_registry_Registry_list(&ctl.client, &req, &resp, &arena))
						die("Registry.list", THOTH_E_IO);
				} else {
					size_t total;
					if (thoth_rtable_list(t, "echo", out, 64, &total) || total != 4)
						die("thoth_rtable_list", THOTH_E_IO);
				}
			}
			per[mode][r] = (double)(cpu_ns() - c0) / iters / 1e3;
			dper[mode][r] = (proc_cpu_ns(h->thothd) - d0) / iters / 1e3;
		}
	double rl = median(per[0], reps), tl = median(per[1], reps);
	double rd = median(dper[0], reps), td = median(dper[1], reps);
	printf("   list of \"echo\" (4 of 4 entries, table of 4,096 buckets), CPU us per list, median of %d:\n"
	       "     Registry.list round trip: client %.1f + thothd %.1f (thothd's one thread: %.0f lists/s at most)\n"
	       "     thoth_rtable_list:        client %.1f + thothd %.1f (a pass over the 1 MiB table; scales with clients)\n",
	       reps, rl, rd, rd > 0 ? 1e6 / rd : 0, tl, td);
	thoth_rtable_close(t);
	thoth_control_close(&ctl);
}

/* thothd's status from one client: Daemon.status by round trip (thothd's
 * one thread answers each) vs thoth_rtable_status (the status block thothd
 * publishes in the table).  CPU per status, the client's and thothd's;
 * and what publishing costs thothd per request it handles. */
static void bench_status(harness_t *h, int reps)
{
	thoth_control_t ctl;
	thoth_rtable_t *t = NULL;
	char why[200];
	if (harness_connect(h, &ctl) || thoth_rtable_open(h->dir, &t, why, sizeof why))
		die("status client", THOTH_E_IO);
	double per[2][9], dper[2][9];
	int iters = (int)(run_s * 40000);
	for (int r = 0; r < reps; r++)
		for (int mode = 0; mode < 2; mode++) {
			double d0 = proc_cpu_ns(h->thothd);
			uint64_t c0 = cpu_ns();
			for (int i = 0; i < iters; i++) {
				if (mode == 0) {
					thoth_daemon_Daemon_status_resp_t st;
					if (harness_status(&ctl, &st))
						die("Daemon.status", THOTH_E_IO);
				} else {
					thoth_rtable_status_t st;
					if (thoth_rtable_status(t, &st))
						die("thoth_rtable_status", THOTH_E_IO);
				}
			}
			per[mode][r] = (double)(cpu_ns() - c0) / iters / 1e3;
			dper[mode][r] = (proc_cpu_ns(h->thothd) - d0) / iters / 1e3;
		}
	/* The publish itself, in this process on a table of our own: what
	 * thothd adds to every request it answers and every loop iteration. */
	rt_writer_t w;
	if (rt_writer_init(&w, 64, NULL, 0))
		die("rt_writer_init", THOTH_E_IO);
	rt_status_t st = { .pid = 1, .version = "0.1.0", .runtime_dir = "/run/user/0/thoth" };
	double pub[9];
	long pubs = (long)(run_s * 4e6);
	for (int r = 0; r < reps; r++) {
		uint64_t c0 = cpu_ns();
		for (long i = 0; i < pubs; i++) {
			st.wakeups = (uint64_t)i;
			st.messages = (uint64_t)i;
			st.publishes = (uint64_t)i;
			rt_writer_status(&w, &st);
		}
		pub[r] = (double)(cpu_ns() - c0) / (double)pubs;
	}
	rt_writer_free(&w);
	double rc = median(per[0], reps), tc = median(per[1], reps);
	double rd = median(dper[0], reps), td = median(dper[1], reps);
	printf("   thothd's status, CPU us per status, median of %d:\n"
	       "     Daemon.status round trip: client %.2f + thothd %.2f (thothd's one thread: %.0f statuses/s at most)\n"
	       "     thoth_rtable_status:      client %.3f + thothd %.2f (read from the table; no message, no wake-up)\n"
	       "     thothd's cost of publishing it: %.0f ns per request answered and per loop iteration\n",
	       reps, rc, rd, rd > 0 ? 1e6 / rd : 0, tc, td, median(pub, reps));
	thoth_rtable_close(t);
	thoth_control_close(&ctl);
}

/* ---- 5. NUMA placement on vs off on a channel ------------------------------ */

static int on_sink(void *self, const thoth_bench_Bench_sink_req_t *req, thoth_bench_Bench_sink_resp_t *resp,
		   thoth_arena_t *arena)
{
	static uint8_t ack[64];
	resp->ack.ptr = ack;
	resp->ack.len = sizeof ack;
	return 0;
}

static int on_cpu(void *self, const thoth_bench_Bench_cpu_req_t *req, thoth_bench_Bench_cpu_resp_t *resp,
		  thoth_arena_t *arena)
{
	resp->ns = 0;
	return 0;
}

static pid_t start_service(const char *path, const char *numa, int cpu)
{
	unlink(path);
	pid_t pid = fork();
	if (pid == 0) {
		if (cpu >= 0)
			pin(cpu);
		setenv("THOTH_NUMA", numa, 1);
		static const thoth_bench_Bench_handlers_t handlers = { .sink = on_sink, .cpu = on_cpu };
		thoth_chan_server_config_t cfg = {
			.path = path, .iface = &thoth_bench_Bench_info, .invoke = thoth_bench_Bench_invoke,
			.handlers = &handlers,
		};
		_exit(thoth_serve(&cfg) ? 1 : 0);
	}
	for (int i = 0; i < 2000 && access(path, F_OK); i++)
		usleep(1000);
	return pid;
}

/* Round trips of 64 B for ITERS calls on a fresh channel: ns per call,
 * plus the open's cost in *OPEN_NS. */
static double chan_block(const char *path, int iters, double *open_ns)
{
	uint64_t t0 = now_ns();
	thoth_chan_t *ch;
	thoth_chan_config_t cfg = { .iface = &thoth_bench_Bench_info };
	char why[200];
	int r = thoth_chan_connect(path, &cfg, &ch, why, sizeof why);
	if (r) {
		fprintf(stderr, "bench_scale: connect: %s\n", why);
		exit(1);
	}
	*open_ns = (double)(now_ns() - t0);
	static uint8_t payload[64];
	thoth_bench_Bench_sink_req_t rq = { .data = { .ptr = payload, .len = sizeof payload } };
	thoth_bench_Bench_sink_resp_t rs;
	uint64_t ab[64];
	for (int i = 0; i < 200; i++) {         /* warm up */
		thoth_arena_t a;
		thoth_arena_init(&a, ab, sizeof ab);
		thoth_bench_Bench_sink(thoth_chan_client(ch), &rq, &rs, &a);
	}
	uint64_t t1 = now_ns();
	for (int i = 0; i < iters; i++) {
		thoth_arena_t a;
		thoth_arena_init(&a, ab, sizeof ab);
		if (thoth_bench_Bench_sink(thoth_chan_client(ch), &rq, &rs, &a))
			die("call", THOTH_E_IO);
	}
	double per = (double)(now_ns() - t1) / iters;
	thoth_chan_close(ch);
	return per;
}

static void bench_numa_channel(int blocks, int iters)
{
	char dir[] = "/tmp/thoth-bench-scale-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", THOTH_E_IO);
	char path[2][128];
	pid_t pid[2];
	const char *mode[2] = { "on", "off" };
	for (int m = 0; m < 2; m++) {
		snprintf(path[m], sizeof path[m], "%s/%s.sock", dir, mode[m]);
		pid[m] = start_service(path[m], mode[m], -1);
	}
	double rt[2][64], op[2][64];
	for (int b = 0; b < blocks; b++)
		for (int m = 0; m < 2; m++) {
			int mm = b % 2 ? 1 - m : m;     /* ABBA: neither side always goes first */
			setenv("THOTH_NUMA", mode[mm], 1);
			thoth__numa_reset();
			rt[mm][b] = chan_block(path[mm], iters, &op[mm][b]);
		}
	/* What the placement itself costs: the three mbind calls of one side,
	 * on a fresh channel-sized mapping, in CPU time. */
	setenv("THOTH_NUMA", "on", 1);
	thoth__numa_reset();
	thoth_chan_limits_t lim = { 0 };
	thoth_chan_limits_resolve(&lim, NULL, 0);
	chan_layout_t lay;
	chan_layout_compute(&lim, &lay);
	double place_us[64];
	for (int i = 0; i < blocks; i++) {
		int fd = memfd_create("bench-place", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)lay.size))
			die("memfd", THOTH_E_IO);
		uint8_t *base = chan_shm_map(fd, lay.size);
		close(fd);
		if (!base)
			die("map", THOTH_E_NOMEM);
		uint64_t c0 = cpu_ns();
		thoth__chan_place(base, &lay, CHAN_CLIENT);
		place_us[i] = (double)(cpu_ns() - c0) / 1e3;
		chan_shm_unmap(base, lay.size);
	}
	double place = median(place_us, blocks);
	thoth_numa_stats_t st;
	thoth__numa_stats(&st);
	double on = median(rt[0], blocks), off = median(rt[1], blocks);
	double oon = median(op[0], blocks), ooff = median(op[1], blocks);
	printf("\n5. channel round trip, 64 B, spin-then-sleep, NUMA placement forced on vs off (%d alternating\n"
	       "   blocks of %d calls, a fresh channel per block; %u node%s online)\n", blocks, iters,
	       thoth__numa_nodes_online(), thoth__numa_nodes_online() == 1 ? "" : "s");
	printf("   %-28s %12s %12s\n", "", "round trip", "open");
	printf("   %-28s %9.0f ns %9.1f us\n", "placement on (mbind x3/side)", on, oon / 1e3);
	printf("   %-28s %9.0f ns %9.1f us\n", "placement off", off, ooff / 1e3);
	printf("   on / off: round trip %.3fx, open %.3fx (target: round trip <= 1.01x); %llu ranges placed here\n",
	       on / off, oon / ooff, (unsigned long long)st.placed);
	printf("   the placement itself: %.1f us of CPU per side per channel open (3 mbind calls), %.2f%% of the\n"
	       "   open; per message: no code at all (nothing on the send/receive path changed)\n",
	       place, 100.0 * place / (ooff / 1e3));
	for (int m = 0; m < 2; m++) {
		kill(pid[m], SIGTERM);
		waitpid(pid[m], NULL, 0);
		unlink(path[m]);
	}
	rmdir(dir);
	unsetenv("THOTH_NUMA");
}

/* ---- 6. cross-node IPC: placed vs oblivious vs hand-pinned ----------------- */

/* The first number of a sysfs list ("2-3" -> 2, "0,2" -> 0) or, LAST, the
 * last one; -1 when unreadable. */
static int sysfs_list_end(const char *path, bool last)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char buf[256] = "";
	int v = -1;
	if (fgets(buf, sizeof buf, f)) {
		for (char *p = buf; *p;) {
			char *end;
			long n = strtol(p, &end, 10);
			if (end == p)
				break;
			v = (int)n;
			if (!last)
				break;
			p = end + (*end == '-' || *end == ',');
		}
	}
	fclose(f);
	return v;
}

static int node_first_cpu(int node)
{
	char path[96];
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
	return sysfs_list_end(path, false);
}

enum { XN_PLACED, XN_OBLIVIOUS, XN_HAND, XN_MODES };
static const char *xn_name[XN_MODES] = { "placed (THOTH_NUMA=auto)", "oblivious (THOTH_NUMA=off)",
					 "hand-pinned (mbind by hand)" };

/* Hand-pinned: what an operator does without the placement logic: bind
 * each range to its reader's node by hand and move what is already
 * there (MPOL_BIND, MPOL_MF_MOVE_ALL; as root).  A memfd's policy is the
 * file's, so binding through the client's mapping covers the service's
 * ranges too. */
static void hand_pin(uint8_t *base, const chan_layout_t *l, int cnode, int snode)
{
	thoth_numa_range_t r[6];
	thoth__chan_place_plan(l, CHAN_CLIENT, (unsigned)cnode, r);
	thoth__chan_place_plan(l, CHAN_SERVER, (unsigned)snode, r + 3);
	for (int i = 0; i < 6; i++) {
		unsigned long mask[16] = { 0 };
		mask[r[i].node / 64] |= 1ul << (r[i].node % 64);
		if (syscall(SYS_mbind, base + r[i].off, (r[i].len + 4095) & ~(size_t)4095, 2 /* MPOL_BIND */, mask,
			    16ul * 64 + 1, 1u << 2 /* MPOL_MF_MOVE_ALL */))
			die("mbind by hand", THOTH_E_IO);
	}
}

/* Pages of the six read ranges on their reader's node / allocated. */
static void reader_local_pages(uint8_t *base, const chan_layout_t *l, int cnode, int snode, unsigned *local,
			       unsigned *total)
{
	thoth_numa_range_t r[6];
	thoth__chan_place_plan(l, CHAN_CLIENT, (unsigned)cnode, r);
	thoth__chan_place_plan(l, CHAN_SERVER, (unsigned)snode, r + 3);
	*local = *total = 0;
	for (int i = 0; i < 6; i++)
		for (size_t o = 0; o < r[i].len; o += 4096) {
			int n = thoth__numa_page_node(base + r[i].off + o);
			if (n >= 0) {
				(*total)++;
				*local += n == (int)r[i].node;
			}
		}
}

/* ITERS round trips (64 B; every 16th call carries a pool-sized payload
 * so the pools and release rings carry traffic too) on a fresh channel:
 * ns per call. */
static double xnode_block(const char *path, int mode, int iters, int cnode, int snode, unsigned *local,
			  unsigned *total)
{
	setenv("THOTH_NUMA", mode == XN_PLACED ? "auto" : "off", 1);
	thoth__numa_reset();
	thoth_chan_t *ch;
	thoth_chan_config_t cfg = { .iface = &thoth_bench_Bench_info };
	char why[200];
	if (thoth_chan_connect(path, &cfg, &ch, why, sizeof why)) {
		fprintf(stderr, "bench_scale: connect: %s\n", why);
		exit(1);
	}
	/* A thoth_chan_t begins with its chan_end_t (chan_client.c). */
	const chan_end_t *e = (const chan_end_t *)(const void *)ch;
	if (mode == XN_HAND)
		hand_pin(e->base, &e->lay, cnode, snode);
	static uint8_t payload[32 << 10];
	uint64_t ab[64];
	thoth_bench_Bench_sink_resp_t rs;
	for (int i = 0; i < 64; i++) {          /* warm up: touch what the calls touch */
		thoth_bench_Bench_sink_req_t rq = { .data = { .ptr = payload, .len = i % 16 ? 64 : sizeof payload } };
		thoth_arena_t a;
		thoth_arena_init(&a, ab, sizeof ab);
		thoth_bench_Bench_sink(thoth_chan_client(ch), &rq, &rs, &a);
	}
	uint64_t t0 = now_ns();
	for (int i = 0; i < iters; i++) {
		thoth_bench_Bench_sink_req_t rq = { .data = { .ptr = payload, .len = i % 16 ? 64 : sizeof payload } };
		thoth_arena_t a;
		thoth_arena_init(&a, ab, sizeof ab);
		if (thoth_bench_Bench_sink(thoth_chan_client(ch), &rq, &rs, &a))
			die("call", THOTH_E_IO);
	}
	double per = (double)(now_ns() - t0) / iters;
	reader_local_pages(e->base, &e->lay, cnode, snode, local, total);
	thoth_chan_close(ch);
	return per;
}

static void bench_cross_node(int blocks, int iters)
{
	int snode = sysfs_list_end("/sys/devices/system/node/online", true);
	printf("\n6. cross-node channel round trip: placed vs NUMA-oblivious vs hand-pinned\n");
	if (snode < 1) {
		printf("   skipped: one NUMA node online (scripts/qemu-numa.sh runs this in a 2-node guest)\n");
		return;
	}
	int ccpu = node_first_cpu(0), scpu = node_first_cpu(snode);
	if (ccpu < 0 || scpu < 0) {
		printf("   skipped: no CPU on node 0 or node %d\n", snode);
		return;
	}
	int balancing = sysfs_list_end("/proc/sys/kernel/numa_balancing", false);
	char dir[] = "/tmp/thoth-bench-xnode-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", THOTH_E_IO);
	char path[XN_MODES][128];
	pid_t pid[XN_MODES];
	for (int m = 0; m < XN_MODES; m++) {
		snprintf(path[m], sizeof path[m], "%s/%d.sock", dir, m);
		pid[m] = start_service(path[m], m == XN_PLACED ? "auto" : "off", scpu);
	}
	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	pin(ccpu);
	double rt[XN_MODES][64];
	unsigned local[XN_MODES] = { 0 }, total[XN_MODES] = { 0 };
	for (int b = 0; b < blocks; b++)
		for (int k = 0; k < XN_MODES; k++) {
			int m = (k + b) % XN_MODES;     /* rotate: no mode always first */
			unsigned lo, to;
			rt[m][b] = xnode_block(path[m], m, iters, 0, snode, &lo, &to);
			local[m] += lo;
			total[m] += to;
		}
	sched_setaffinity(0, sizeof saved, &saved);
	printf("   client pinned to CPU %d (node 0), service to CPU %d (node %d); %d rotating blocks of %d calls\n"
	       "   (64 B, every 16th 32 KiB through the pools), a fresh channel per block; AutoNUMA (numa_balancing) %d\n",
	       ccpu, scpu, snode, blocks, iters, balancing);
	printf("   %-30s %12s %14s %s\n", "", "round trip", "calls/s", "pages of the read ranges on the reader's node");
	double med[XN_MODES];
	for (int m = 0; m < XN_MODES; m++) {
		med[m] = median(rt[m], blocks);
		printf("   %-30s %9.0f ns %14.0f %u of %u\n", xn_name[m], med[m], 1e9 / med[m], local[m], total[m]);
	}
	printf("   placed: %.1f%% of hand-pinned throughput (target >= 97%%), %.3fx the oblivious run (target >= 1.3x\n"
	       "   where remote memory is slower: an emulated guest (QEMU TCG) gives every node the same memory, so\n"
	       "   only the page locations above are a result there, not these ratios)\n",
	       100.0 * med[XN_HAND] / med[XN_PLACED], med[XN_OBLIVIOUS] / med[XN_PLACED]);
	for (int m = 0; m < XN_MODES; m++) {
		kill(pid[m], SIGTERM);
		waitpid(pid[m], NULL, 0);
		unlink(path[m]);
	}
	rmdir(dir);
	unsetenv("THOTH_NUMA");
	thoth__numa_reset();
}

/* ---- 7. resolves while a trace session drains busy processes ----------- */

enum { TC_PERIOD_US = 10000 };
static int tc_burst = 200;      /* events per 10 ms per traced process (--trace-burst) */

/* A traced process: TC_BURST events every 10 ms, whether or not the
 * session's categories are on (off, a trace point is one load and a
 * branch: the baseline carries the same processes). */
static void tc_busy(harness_t *h, int idx)
{
	thoth_control_t ctl;
	char name[32];
	snprintf(name, sizeof name, "busy-%d", idx);
	if (thoth_trace_init_process(name) || harness_connect(h, &ctl))
		_exit(1);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (uint64_t k = 0;; k++) {
		for (int i = 0; i < tc_burst; i++)
			THOTH_TRACE(USER, bench_busy, k, (uint64_t)i);
		usleep(TC_PERIOD_US);
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

typedef struct tc_result {
	double rps, p50, p99, p999, max;        /* resolves/s; latencies in us */
	double pass_us;                         /* thothd CPU per collection pass */
	double passes;
	double loop_share;                      /* of the loop thread's time, drains took */
	double events, lost;                    /* collected; lost (stop's dropped) */
} tc_result_t;

/* Back-to-back Registry.resolve round trips for SECONDS, each timed. */
static void tc_resolves(thoth_control_t *ctl, double seconds, tc_result_t *out)
{
	size_t cap = 4u << 20, n = 0;
	uint32_t *lat = malloc(cap * sizeof *lat);
	if (!lat)
		die("latencies", THOTH_E_NOMEM);
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), t = t0;
	while (t < end && n < cap) {
		if (harness_resolve(ctl, "echo", NULL))
			die("resolve", THOTH_E_IO);
		uint64_t t1 = now_ns();
		lat[n++] = (uint32_t)((t1 - t) / 10);   /* 10 ns units */
		t = t1;
	}
	qsort(lat, n, sizeof *lat, cmp_u32);
	out->rps = (double)n / ((double)(t - t0) / 1e9);
	out->p50 = lat[n / 2] / 100.0;
	out->p99 = lat[(size_t)((double)n * 0.99)] / 100.0;
	out->p999 = lat[(size_t)((double)n * 0.999)] / 100.0;
	out->max = lat[n - 1] / 100.0;
	free(lat);
}

/* The last "N collection passes on the X thread, Y us CPU each" thothd logged. */
static void tc_pass_cpu(const char *log, tc_result_t *out)
{
	FILE *f = fopen(log, "re");
	char line[1024];
	out->pass_us = out->passes = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, ": ");
		unsigned long long passes;
		double us;
		char where[32];
		if (p && (p = strstr(line, " collection passes on the ")) && (p = strrchr(line, ':')) &&
		    sscanf(p + 2, "%llu collection passes on the %31s thread, %lf us CPU each", &passes, where,
			   &us) == 3) {
			out->passes = (double)passes;
			out->pass_us = us;
		}
	}
	if (f)
		fclose(f);
}

static bool tc_attached(void *arg)
{
	void **a = arg;
	thoth_control_t *ctl = a[0];
	int want = *(int *)a[1];
	thoth_daemon_Daemon_status_resp_t st;
	return harness_status(ctl, &st) == 0 && (int)st.clients >= want;
}

/* A fresh thothd started with ARGS in H, "echo" registered on SVC, CTL a
 * control connection whose calls wait up to CTL_TIMEOUT_MS, and PROCS busy
 * traced processes (tc_busy) connected to it: both sections' set-up. */
static void tc_start(harness_t *h, const char *const *args, int procs, int ctl_timeout_ms,
		     thoth_control_t *svc, thoth_control_t *ctl)
{
	if (harness_setup(h))
		die("runtime dir", THOTH_E_IO);
	if (harness_start_thothd(h, args) <= 0)
		die("start thothd", THOTH_E_IO);
	if (harness_connect(h, svc) || harness_register(svc, "echo", 0, NULL) ||
	    thoth_control_connect(ctl, h->dir, ctl_timeout_ms))
		die("register", THOTH_E_IO);
	for (int i = 0; i < procs && h->n_children < HARNESS_MAX_CHILDREN; i++) {
		pid_t p = fork();
		if (p == 0)
			tc_busy(h, i);
		h->children[h->n_children++] = p;
	}
	int want = 2 + procs;
	void *arg[2] = { ctl, &want };
	if (!harness_wait_until(tc_attached, arg, 10000))
		die("traced processes did not connect", THOTH_E_TIMEDOUT);
}

/* One fresh thothd (--trace-collector MODE) with PROCS busy traced
 * processes: resolves without a session (BASE), then with one (SESS). */
static void tc_run(const char *mode, int procs, double seconds, tc_result_t *base, tc_result_t *sess)
{
	harness_t h;
	const char *const args[] = { "--trace-collector", mode, "--log-level", "info", NULL };
	thoth_control_t svc, ctl;
	tc_start(&h, args, procs, 2000, &svc, &ctl);
	tc_resolves(&ctl, seconds, base);
	thoth_trace_TraceControl_start_pid_req_t sreq = { .categories = THOTH_TRACE_MASK(USER) };
	thoth_trace_TraceControl_start_pid_resp_t sresp;
	if (thoth_trace_TraceControl_start_pid(&ctl.client, &sreq, &sresp, NULL))
		die("trace start", THOTH_E_IO);
	tc_resolves(&ctl, seconds, sess);
	thoth_trace_TraceControl_stop_req_t preq = { 0 };
	thoth_trace_TraceControl_stop_resp_t presp;
	if (thoth_trace_TraceControl_stop(&ctl.client, &preq, &presp, NULL))
		die("trace stop", THOTH_E_IO);
	tc_pass_cpu(h.log, sess);
	sess->events = (double)presp.events;
	sess->lost = (double)presp.dropped;
	/* The session lasted from start to stop: about SECONDS. */
	sess->loop_share = strcmp(mode, "loop") ? 0 : sess->passes * sess->pass_us / (seconds * 1e6);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

static double tc_median(tc_result_t *r, int n, size_t off)
{
	double v[9];
	for (int i = 0; i < n; i++)
		v[i] = *(double *)((char *)&r[i] + off);
	return median(v, n);
}

static void bench_trace_collection(int procs, int reps)
{
	double seconds = run_s * 4;
	printf("\n7. thothd resolve round trips (1 client) while a trace session drains %d traced processes\n"
	       "   (%d events per 10 ms each: %d events/s in all; a fresh thothd per run; median of %d runs of\n"
	       "   %.1f s; latencies in us)\n", procs, tc_burst, procs * tc_burst * 100, reps, seconds);
	tc_result_t r[2][2][9];         /* [loop, thread][base, session][rep] */
	static const char *modes[2] = { "loop", "thread" };
	for (int k = 0; k < reps; k++)
		for (int m = 0; m < 2; m++)         /* alternating: drift hits both */
			tc_run(modes[m], procs, seconds, &r[m][0][k], &r[m][1][k]);
	printf("   %-44s %10s %8s %8s %8s %9s %14s\n", "", "resolves/s", "p50", "p99", "p99.9", "max",
	       "CPU per pass");
	static const char *rows[2][2] = { { "no session (thothd --trace-collector loop)", "session drained on the loop thread" },
					 { "no session (thothd, default)", "session drained by the collector thread" } };
	double rps[2][2], p999[2][2], mx[2][2];
	for (int m = 0; m < 2; m++)
		for (int b = 0; b < 2; b++) {
			tc_result_t *x = r[m][b];
			rps[m][b] = tc_median(x, reps, offsetof(tc_result_t, rps));
			p999[m][b] = tc_median(x, reps, offsetof(tc_result_t, p999));
			mx[m][b] = tc_median(x, reps, offsetof(tc_result_t, max));
			printf("   %-44s %10.0f %8.1f %8.1f %8.1f %9.1f", rows[m][b], rps[m][b],
			       tc_median(x, reps, offsetof(tc_result_t, p50)), tc_median(x, reps, offsetof(tc_result_t, p99)),
			       p999[m][b], mx[m][b]);
			if (b)
				printf(" %8.0f us x%.0f", tc_median(x, reps, offsetof(tc_result_t, pass_us)),
				       tc_median(x, reps, offsetof(tc_result_t, passes)));
			printf("\n");
		}
	for (int m = 0; m < 2; m++)
		printf("   %s: events collected %.0f, lost %.0f (overwritten before a pass took them, or beyond the\n"
		       "   session's 524,288-event limit); share of the loop thread's time spent draining: %.1f%%\n",
		       m ? "collector thread" : "loop thread", tc_median(r[m][1], reps, offsetof(tc_result_t, events)),
		       tc_median(r[m][1], reps, offsetof(tc_result_t, lost)),
		       100 * tc_median(r[m][1], reps, offsetof(tc_result_t, loop_share)));
	printf("   session / no session, resolves/s: loop thread %.2fx, collector thread %.2fx\n",
	       rps[0][1] / rps[0][0], rps[1][1] / rps[1][0]);
	printf("   session / no session, p99.9: loop thread %.2fx, collector thread %.2fx; max: %.2fx, %.2fx\n",
	       p999[0][1] / p999[0][0], p999[1][1] / p999[1][0], mx[0][1] / mx[0][0], mx[1][1] / mx[1][0]);
}

/* ---- 8. the loop thread while a large session is stopped and dumped -------- */

typedef struct sd_lat {
	uint64_t end_ns;        /* when the resolve's answer arrived */
	uint32_t us;            /* its round trip */
} sd_lat_t;

typedef struct sd_resolver {
	harness_t *h;
	int stop;               /* atomic */
	sd_lat_t *lat;
	size_t n, cap;
} sd_resolver_t;

static void *sd_resolve(void *arg)
{
	sd_resolver_t *r = arg;
	thoth_control_t ctl;
	/* A long answer deadline: the stall measured can exceed the default 2 s. */
	if (thoth_control_connect(&ctl, r->h->dir, 120000))
		die("resolver connect", THOTH_E_IO);
	uint64_t t = now_ns();
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) && r->n < r->cap) {
		if (harness_resolve(&ctl, "echo", NULL))
			die("resolve", THOTH_E_IO);
		uint64_t t1 = now_ns();
		r->lat[r->n++] = (sd_lat_t){ t1, (uint32_t)((t1 - t) / 1000) };
		t = t1;
	}
	thoth_control_close(&ctl);
	return NULL;
}

/* The longest round trip that overlapped [FROM, TO], in us. */
static double sd_max(const sd_resolver_t *r, uint64_t from, uint64_t to)
{
	uint32_t mx = 0;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t begin = r->lat[i].end_ns - (uint64_t)r->lat[i].us * 1000;
		if (r->lat[i].end_ns >= from && begin <= to && r->lat[i].us > mx)
			mx = r->lat[i].us;
	}
	return mx;
}

/* One fresh thothd, a session of PROCS busy processes for SECONDS, then
 * stop + dump while another connection resolves back to back.  DEFER_OFF:
 * thothd answers stop and dump on its loop thread (THOTHD_DEFER=off, the
 * baseline); else deferred (kernel/thothd/defer.c). */
typedef struct sd_run_result {
	double before, during, during_p50, before_p50, stop_ms, dump_ms, events;
	double dump_cpu_ms;     /* the export's own CPU time (thothd's log) */
} sd_run_result_t;

/* The CPU time of the last export thothd logged ("trace: wrote ... (X ms CPU)"). */
static double sd_dump_cpu_ms(const char *log)
{
	FILE *f = fopen(log, "re");
	char line[2048];
	double ms = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, "trace: wrote ");
		char *q = p ? strstr(p, " ms (") : NULL;
		if (q)
			sscanf(q, " ms (%lf ms CPU)", &ms);
	}
	if (f)
		fclose(f);
	return ms;
}

/* The median round trip among those that overlapped [FROM, TO], in us. */
static double sd_p50(const sd_resolver_t *r, uint64_t from, uint64_t to)
{
	uint32_t *v = malloc((r->n ? r->n : 1) * sizeof *v);
	size_t n = 0;
	for (size_t i = 0; v && i < r->n; i++) {
		uint64_t begin = r->lat[i].end_ns - (uint64_t)r->lat[i].us * 1000;
		if (r->lat[i].end_ns >= from && begin <= to)
			v[n++] = r->lat[i].us;
	}
	qsort(v, n, sizeof *v, cmp_u32);
	double m = n ? v[n / 2] : 0;
	free(v);
	return m;
}

static void sd_run(bool defer_off, int procs, double seconds, sd_run_result_t *out)
{
	if (defer_off)
		setenv("THOTHD_DEFER", "off", 1);       /* thothd inherits it */
	else
		unsetenv("THOTHD_DEFER");
	harness_t h;
	const char *const args[] = { "--log-level", "info", NULL };
	thoth_control_t svc, ctl;
	tc_start(&h, args, procs, 120000, &svc, &ctl);
	unsetenv("THOTHD_DEFER");
	thoth_trace_TraceControl_start_pid_req_t sreq = { .categories = THOTH_TRACE_MASK(USER) };
	thoth_trace_TraceControl_start_pid_resp_t sresp;
	if (thoth_trace_TraceControl_start_pid(&ctl.client, &sreq, &sresp, NULL))
		die("trace start", THOTH_E_IO);
	usleep((useconds_t)(seconds * 1e6));    /* the session collects: the size of the stop */
	sd_resolver_t r = { .h = &h, .cap = 8u << 20 };
	r.lat = malloc(r.cap * sizeof *r.lat);
	pthread_t th;
	if (!r.lat || pthread_create(&th, NULL, sd_resolve, &r))
		die("resolver", THOTH_E_NOMEM);
	/* The window before is as long as stop + dump turn out to be:
	 * measured afterwards, so the resolver runs long enough before. */
	usleep(3000000);
	uint64_t t0 = now_ns();
	thoth_trace_TraceControl_stop_req_t preq = { 0 };
	thoth_trace_TraceControl_stop_resp_t presp;
	if (thoth_trace_TraceControl_stop(&ctl.client, &preq, &presp, NULL))
		die("trace stop", THOTH_E_IO);
	uint64_t t1 = now_ns();
	char dir[400];
	snprintf(dir, sizeof dir, "%s/dump", h.dir);
	thoth_trace_TraceControl_dump_req_t dreq = { .dir = thoth_str(dir) };
	thoth_trace_TraceControl_dump_resp_t dresp;
	uint64_t ab[512];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	if (thoth_trace_TraceControl_dump(&ctl.client, &dreq, &dresp, &a))
		die("trace dump", THOTH_E_IO);
	uint64_t t2 = now_ns();
	usleep(100000);
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	uint64_t len = t2 - t0;
	uint64_t from = t0 > len + 200000000ull ? t0 - len - 200000000ull : 0;
	out->before = sd_max(&r, from, t0 - 200000000ull);
	out->before_p50 = sd_p50(&r, from, t0 - 200000000ull);
	out->during = sd_max(&r, t0, t2);
	out->during_p50 = sd_p50(&r, t0, t2);
	out->stop_ms = (double)(t1 - t0) / 1e6;
	out->dump_ms = (double)(t2 - t1) / 1e6;
	out->events = (double)presp.events;
	out->dump_cpu_ms = sd_dump_cpu_ms(h.log);
	free(r.lat);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

static void bench_stop_dump(int procs, int reps)
{
	double seconds = run_s * 8;
	printf("\n8. thothd's loop thread while a trace session of %d traced processes (%d events per 10 ms\n"
	       "   each, collected for %.1f s) is stopped and dumped (JSON + CTF): the longest resolve round trip\n"
	       "   of another connection during stop + dump vs during an equally long window just before (the\n"
	       "   session running, the collector thread draining); a fresh thothd per run, median of %d;\n"
	       "   baseline in the same run: thothd answering stop and dump on its loop thread (THOTHD_DEFER=off)\n",
	       procs, tc_burst, seconds, reps);
	sd_run_result_t res[2][9];
	for (int k = 0; k < reps; k++)
		for (int mode = 0; mode < 2; mode++)    /* alternated: the same machine state for both */
			sd_run(mode == 0, procs, seconds, &res[mode][k]);
	for (int mode = 0; mode < 2; mode++) {
		double before[9], during[9], bp50[9], dp50[9], stop_ms[9], dump_ms[9], events[9], cpu[9];
		for (int k = 0; k < reps; k++) {
			before[k] = res[mode][k].before;
			during[k] = res[mode][k].during;
			bp50[k] = res[mode][k].before_p50;
			dp50[k] = res[mode][k].during_p50;
			stop_ms[k] = res[mode][k].stop_ms;
			dump_ms[k] = res[mode][k].dump_ms;
			events[k] = res[mode][k].events;
			cpu[k] = res[mode][k].dump_cpu_ms;
		}
		double b = median(before, reps), d = median(during, reps);
		printf("   %s:\n", mode == 0 ? "answered on the loop thread (THOTHD_DEFER=off)"
					 : "deferred answers (worker threads, the default)");
		printf("     events collected %.0f; stop answered in %.1f ms, dump in %.1f ms, the export's own "
		       "CPU %.1f ms (medians)\n", median(events, reps), median(stop_ms, reps),
		       median(dump_ms, reps), median(cpu, reps));
		printf("     longest resolve round trip: before %.1f ms, during stop + dump %.1f ms: %.1fx; "
		       "median %.0f us before, %.0f us during\n",
		       b / 1e3, d / 1e3, b > 0 ? d / b : 0.0, median(bp50, reps), median(dp50, reps));
	}
}

/* ---- 9. the loop thread while the dashboard drains a busy process -------- */

static int ld_rate = 1000000;   /* records a second (--live-rate) */
static bool ld_cold;            /* --cold-reports: profiled processes appear meanwhile */
enum { LD_RING = 1 << 20 };

/* The busy traced process: one ring of LD_RING records; once the
 * dashboard switched LOOP on, LD_RATE / 100 loop_wakeup records every
 * 10 ms (what a busy service's loop would write, condensed). */
static void ld_busy(harness_t *h)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = LD_RING,
				     .full_policy = THOTH_TRACE_OVERWRITE_OLDEST, .process_name = "busy-live" };
	thoth_control_t ctl;
	if (thoth_trace_init(&cfg) || harness_connect(h, &ctl))
		_exit(1);
	int per = ld_rate / 100;
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (uint64_t k = 0;; k++) {
		if (THOTH_TRACE_IS_ON(LOOP))
			for (int i = 0; i < per; i++)
				THOTH_TRACE(LOOP, loop_wakeup, 2u /* THOTH_LOOP_WAKE_TIMER */, k);
		next.tv_nsec += 10000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_sec++;
			next.tv_nsec -= 1000000000;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
}

typedef struct ld_scraper {
	int port, page, stop;   /* stop: atomic */
	double scrape_max_ms;
} ld_scraper_t;

/* The page reads its stream; the scraper reads /metrics every second. */
static void *ld_scrape(void *arg)
{
	ld_scraper_t *x = arg;
	uint64_t next = now_ns();
	char sink[65536];
	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		struct pollfd pfd = { .fd = x->page, .events = POLLIN };
		if (poll(&pfd, 1, 20) == 1 && read(x->page, sink, sizeof sink) <= 0)
			die("event stream closed", THOTH_E_IO);
		if (now_ns() >= next) {
			uint64_t t = now_ns();
			free(live_metrics(x->port));
			double ms = (double)(now_ns() - t) / 1e6;
			x->scrape_max_ms = ms > x->scrape_max_ms ? ms : x->scrape_max_ms;
			next += 1000000000ull;
		}
	}
	return NULL;
}

typedef struct ld_result {
	double p50, p99, p999, max;     /* resolve round trips, us */
	double rps;
	double drains, drain_ms_max, drain_ms_med, read, lost, scrape_max_ms;
	double waits, wait_ms_max, reports, report_ms_max;      /* --cold-reports */
} ld_result_t;

/* The drains thothd logged: how many, the longest and the median (ms). */
static void ld_drains(const char *log, ld_result_t *out)
{
	FILE *f = fopen(log, "re");
	char line[1024];
	double ms[4096];
	int n = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, "dashboard: drained ");
		char *q = p ? strstr(p, " records in ") : NULL;
		if (q && n < 4096 && sscanf(q, " records in %lf ms", &ms[n]) == 1)
			n++;
	}
	if (f)
		fclose(f);
	/* Tasks that waited for the task thread, and the lock reports made. */
	f = fopen(log, "re");
	while (f && fgets(line, sizeof line, f)) {
		double v;
		char *p = strstr(line, "defer: a task waited ");
		if (p && strstr(p, "the task thread") && sscanf(p, "defer: a task waited %lf ms", &v) == 1) {
			out->waits++;
			out->wait_ms_max = v > out->wait_ms_max ? v : out->wait_ms_max;
		}
		p = strstr(line, "dashboard: lock report in ");
		if (p && sscanf(p, "dashboard: lock report in %lf ms", &v) == 1) {
			out->reports++;
			out->report_ms_max = v > out->report_ms_max ? v : out->report_ms_max;
		}
	}
	if (f)
		fclose(f);
	out->drains = n;
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	out->drain_ms_max = n ? ms[n - 1] : 0;
	out->drain_ms_med = n ? ms[n / 2] : 0;
}

static void ld_run(bool defer_off, double seconds, ld_result_t *out)
{
	if (defer_off)
		setenv("THOTHD_DEFER", "off", 1);       /* thothd inherits it */
	else
		unsetenv("THOTHD_DEFER");
	harness_t h;
	const char *const args[] = { "--http-port", "0", "--log-level", "debug", NULL };
	thoth_control_t svc, ctl;
	tc_start(&h, args, 0, 120000, &svc, &ctl);
	unsetenv("THOTHD_DEFER");
	thoth_daemon_Daemon_status_resp_t st;
	if (harness_status(&ctl, &st))
		die("status", THOTH_E_IO);
	int port = live_dashboard_port(&ctl);
	if (port <= 0)
		die("no dashboard port", THOTH_E_IO);
	pid_t busy = fork();
	if (busy == 0)
		ld_busy(&h);
	h.children[h.n_children++] = busy;
	int want = 3;
	void *arg[2] = { &ctl, &want };
	if (!harness_wait_until(tc_attached, arg, 10000))
		die("the busy process did not connect", THOTH_E_TIMEDOUT);
	ld_scraper_t x = { .port = port, .page = live_page_open(port) };
	if (x.page < 0)
		die("event stream", THOTH_E_IO);
	pthread_t th;
	if (pthread_create(&th, NULL, ld_scrape, &x))
		die("scraper", THOTH_E_NOMEM);
	usleep(1500000);                /* collecting: the busy process writes */
	pid_t cold[16];
	int n_cold = 0;
#ifdef LOCK_WORKLOAD
	if (ld_cold) {
		/* A profiled process (60 heap locks: a cold report of ~90 ms of
		 * CPU) appears every ~1.3 s while the resolver runs. */
		pid_t spawner = fork();
		if (spawner == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			setenv("THOTH_RUNTIME_DIR", h.dir, 1);
			setenv("LD_PRELOAD", THOTHLOCK_PRELOAD, 1);
			for (int k = 0; k < (int)(seconds / 1.3) + 1 && k < 16; k++) {
				usleep(1300000);
				int hold[2];    /* its stdin: it lives until the spawner ends */
				if (pipe(hold))
					_exit(1);
				pid_t w = fork();
				if (w == 0) {
					prctl(PR_SET_PDEATHSIG, SIGKILL);
					int devnull = open("/dev/null", O_RDWR);
					dup2(devnull, 1);
					dup2(hold[0], 0);
					close(hold[1]);
					execl(LOCK_WORKLOAD, LOCK_WORKLOAD, "10", "60", (char *)NULL);
					_exit(127);
				}
				close(hold[0]);
			}
			pause();
			_exit(0);
		}
		cold[n_cold++] = spawner;
		h.children[h.n_children++] = spawner;
	}
#endif
	(void)cold;
	(void)n_cold;
	tc_result_t r;
	tc_resolves(&ctl, seconds, &r);
	__atomic_store_n(&x.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	char *m = live_metrics(port);
	if (!m)
		die("metrics", THOTH_E_IO);
	out->p50 = r.p50;
	out->p99 = r.p99;
	out->p999 = r.p999;
	out->max = r.max;
	out->rps = r.rps;
	out->read = (double)live_metric_sum(m, "thoth_trace_events_read_total", busy, NULL);
	out->lost = (double)live_metric_sum(m, "thoth_trace_events_lost_total", busy, NULL);
	out->scrape_max_ms = x.scrape_max_ms;
	free(m);
	close(x.page);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	ld_drains(h.log, out);
	harness_teardown(&h);
}

static void bench_live_drain(int reps)
{
	double seconds = run_s * 8;
	printf("\n9. thothd's loop thread while the dashboard drains a busy traced process (%d records a second\n"
	       "   in one ring, bursts every 10 ms) with a page on /events and a scraper reading /metrics every\n"
	       "   second: another connection's resolve round trips for %.1f s (us); a fresh thothd per run,\n"
	       "   median of %d; baseline in the same run: the drain on the loop thread (THOTHD_DEFER=off)\n",
	       ld_rate, seconds, reps);
	ld_result_t res[2][9];
	for (int k = 0; k < reps; k++)
		for (int mode = 0; mode < 2; mode++)    /* alternated: the same machine state for both */
			ld_run(mode == 0, seconds, &res[mode][k]);
	printf("   %-44s %10s %8s %8s %8s %9s %7s %9s %9s\n", "", "resolves/s", "p50", "p99", "p99.9", "max",
	       "drains", "drain ms", "max ms");
	double mx[2], p50[2];
	for (int mode = 0; mode < 2; mode++) {
		double v[9][11];
		for (int k = 0; k < reps; k++) {
			ld_result_t *x = &res[mode][k];
			double row[11] = { x->rps, x->p50, x->p99, x->p999, x->max, x->drains, x->drain_ms_med,
					   x->drain_ms_max, x->read, x->lost, x->scrape_max_ms };
			memcpy(v[k], row, sizeof row);
		}
		double m[11];
		for (int c = 0; c < 11; c++) {
			double col[9];
			for (int k = 0; k < reps; k++)
				col[k] = v[k][c];
			m[c] = median(col, reps);
		}
		mx[mode] = m[4];
		p50[mode] = m[1];
		printf("   %-44s %10.0f %8.1f %8.1f %8.1f %9.1f %7.0f %9.1f %9.1f\n",
		       mode == 0 ? "drain on the loop thread (THOTHD_DEFER=off)" : "drain on a worker (default)",
		       m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]);
		printf("   %-44s busy process: %.0f records read, %.0f lost; longest /metrics scrape %.1f ms\n", "",
		       m[8], m[9], m[10]);
		if (ld_cold) {
			double w[9], wm[9], rp[9], rm[9];
			for (int k = 0; k < reps; k++) {
				w[k] = res[mode][k].waits;
				wm[k] = res[mode][k].wait_ms_max;
				rp[k] = res[mode][k].reports;
				rm[k] = res[mode][k].report_ms_max;
			}
			double wsum = 0, wmax = 0, rsum = 0, rmax = 0;
			for (int k = 0; k < reps; k++) {
				wsum += w[k];
				rsum += rp[k];
				wmax = wm[k] > wmax ? wm[k] : wmax;
				rmax = rm[k] > rmax ? rm[k] : rmax;
			}
			(void)median;
			printf("   %-44s over the %d runs: %.0f lock reports (longest %.1f ms); %.0f tasks waited for "
			       "the task thread, the longest %.1f ms\n", "", reps, rsum, rmax, wsum, wmax);
		}
	}
	printf("   worker / loop thread: longest resolve %.2fx, median %.2fx\n", mx[1] / mx[0], p50[1] / p50[0]);
}

/* ---- 10. a session's start and collection's end beside a busy backlog ---- */

enum { CS_BURST = 800000 };

/* live_harness.h's calls, or die. */
static void cs_burst(const live_traced_t *p, uint32_t n)
{
	if (live_traced_burst(p, n))
		die("burst", THOTH_E_IO);
}

static void cs_tick(int page)
{
	if (live_page_tick(page, 10000))
		die("event stream", THOTH_E_IO);
}

static double cs_loop_cpu_ms(pid_t thothd)
{
	uint64_t ns = live_loop_cpu_ns(thothd);
	if (!ns)
		die("schedstat", THOTH_E_IO);
	return (double)ns / 1e6;
}

static int cs_offs(const char *log)
{
	return live_log_count(log, "live collection off");
}

/* Another connection resolving back to back; the longest round trip that
 * began inside [from, to) (ns). */
typedef struct cs_resolver {
	harness_t *h;
	int stop;                       /* atomic */
	int pause, idle;                /* atomics: asked to pause; paused, no resolve in flight */
	uint64_t *t0, *lat;
	size_t n, cap;
} cs_resolver_t;

static void *cs_resolve(void *arg)
{
	cs_resolver_t *r = arg;
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, r->h->dir, 120000))
		die("resolver connect", THOTH_E_IO);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) && r->n < r->cap) {
		if (__atomic_load_n(&r->pause, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&r->idle, 1, __ATOMIC_RELEASE);
			usleep(1000);
			continue;
		}
		__atomic_store_n(&r->idle, 0, __ATOMIC_RELEASE);
		uint64_t t = now_ns();
		if (harness_resolve(&ctl, "echo", NULL))
			die("resolve", THOTH_E_IO);
		r->t0[r->n] = t;
		r->lat[r->n++] = now_ns() - t;
	}
	thoth_control_close(&ctl);
	return NULL;
}

static double cs_max_ms(const cs_resolver_t *r, uint64_t from, uint64_t to)
{
	uint64_t mx = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->t0[i] + r->lat[i] >= from && r->t0[i] < to && r->lat[i] > mx)
			mx = r->lat[i];
	return (double)mx / 1e6;
}

/* thothd for sections 10 and 11: its dashboard on a free port, a debug
 * log (the drains' figures), answers waited for up to 120 s, with
 * THOTHD_DEFER=off when DEFER_OFF and KNOB=VALUE while it starts.  Its
 * dashboard's port. */
static int cs_thothd(harness_t *h, bool defer_off, const char *knob, const char *value, thoth_control_t *svc,
		     thoth_control_t *ctl)
{
	if (defer_off)
		setenv("THOTHD_DEFER", "off", 1);
	else
		unsetenv("THOTHD_DEFER");
	setenv(knob, value, 1);
	const char *const args[] = { "--http-port", "0", "--log-level", "debug", NULL };
	tc_start(h, args, 0, 120000, svc, ctl);
	unsetenv("THOTHD_DEFER");
	unsetenv(knob);
	return live_dashboard_port(ctl);
}

/* Wait until thothd holds WANT trace buffers (its own, the connections'
 * and the traced processes'). */
static void cs_attached(thoth_control_t *ctl, int want)
{
	void *arg[2] = { ctl, &want };
	if (!harness_wait_until(tc_attached, arg, 10000))
		die("set-up", THOTH_E_TIMEDOUT);
}

/* R resolving back to back on a thread of its own (TH) from now on. */
static void cs_resolver_start(cs_resolver_t *r, harness_t *h, pthread_t *th)
{
	*r = (cs_resolver_t){ .h = h, .cap = 1u << 22 };
	r->t0 = calloc(r->cap, sizeof *r->t0);
	r->lat = calloc(r->cap, sizeof *r->lat);
	if (!r->t0 || !r->lat || pthread_create(th, NULL, cs_resolve, r))
		die("resolver", THOTH_E_NOMEM);
}

static void cs_resolver_stop(cs_resolver_t *r, pthread_t th)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	free(r->t0);
	free(r->lat);
}

/* A page on /events, collection on for two ticks; then R's longest
 * resolve over 300 quiet ms (*QUIET_MS).  The page's fd. */
static int cs_page_quiet(int port, const cs_resolver_t *r, double *quiet_ms)
{
	int page = live_page_open(port);
	if (page < 0)
		die("event stream", THOTH_E_IO);
	cs_tick(page);
	cs_tick(page);
	uint64_t q0 = now_ns();
	usleep(300000);
	*quiet_ms = cs_max_ms(r, q0, now_ns());
	return page;
}

/* A trace session of PID's LOOP records. */
static void cs_session_start(thoth_control_t *ctl, pid_t pid)
{
	thoth_trace_TraceControl_start_pid_req_t sreq = { .categories = THOTH_TRACE_MASK(LOOP),
							   .pid = (uint32_t)pid };
	thoth_trace_TraceControl_start_pid_resp_t sresp;
	if (thoth_trace_TraceControl_start_pid(&ctl->client, &sreq, &sresp, NULL))
		die("session start", THOTH_E_IO);
}

typedef struct cs_result {
	double start_rt_ms, start_loop_ms, start_resolve_ms;     /* a session's start */
	double stop_loop_ms, stop_resolve_ms;                   /* collection's end */
	double quiet_resolve_ms;                                /* 300 ms before, nothing special */
} cs_result_t;

static void cs_run(bool defer_off, cs_result_t *out)
{
	harness_t h;
	thoth_control_t svc, ctl;
	int port = cs_thothd(&h, defer_off, "THOTHD_LIVE_HOLD_MS", "500", &svc, &ctl);
	live_traced_t busy;
	if (live_traced_spawn(&h, LD_RING, &busy))
		die("traced process", THOTH_E_IO);
	if (port <= 0)
		die("set-up", THOTH_E_TIMEDOUT);
	cs_attached(&ctl, 3);
	cs_resolver_t r;
	pthread_t th;
	cs_resolver_start(&r, &h, &th);

	/* A session's start: a page connected, a burst just after a tick. */
	int page = cs_page_quiet(port, &r, &out->quiet_resolve_ms);
	cs_tick(page);
	cs_burst(&busy, CS_BURST);
	double cpu0 = cs_loop_cpu_ms(h.thothd);
	uint64_t t0 = now_ns();
	cs_session_start(&ctl, busy.pid);
	uint64_t t1 = now_ns();
	out->start_loop_ms = cs_loop_cpu_ms(h.thothd) - cpu0;
	out->start_rt_ms = (double)(t1 - t0) / 1e6;
	usleep(20000);
	out->start_resolve_ms = cs_max_ms(&r, t0, t1);
	thoth_trace_TraceControl_stop_req_t preq = { 0 };
	thoth_trace_TraceControl_stop_resp_t presp;
	if (thoth_trace_TraceControl_stop(&ctl.client, &preq, &presp, NULL))
		die("session stop", THOTH_E_IO);
	close(page);
	uint64_t deadline = now_ns() + 15000000000ull;
	while (cs_offs(h.log) < 1 && now_ns() < deadline)
		usleep(5000);

	/* Collection's end: a scrape (hold 500 ms), a burst, the next tick. */
	free(live_metrics(port));
	cs_burst(&busy, CS_BURST);
	cpu0 = cs_loop_cpu_ms(h.thothd);
	t0 = now_ns();
	while (cs_offs(h.log) < 2 && now_ns() < deadline)
		usleep(2000);
	t1 = now_ns();
	out->stop_loop_ms = cs_loop_cpu_ms(h.thothd) - cpu0;
	usleep(20000);
	out->stop_resolve_ms = cs_max_ms(&r, t0, t1);
	if (cs_offs(h.log) < 2)
		die("collection did not stop", THOTH_E_TIMEDOUT);
	cs_resolver_stop(&r, th);
	live_traced_close(&busy);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

static void bench_session_cuts(int reps)
{
	printf("\n10. a trace session's start and the dashboard's end of collection with %d records waiting\n"
	       "   (one traced process, a 1 Mi-record ring; a page on /events for the start, a scraper's\n"
	       "   500 ms hold running out for the end): the start's round trip and the loop thread's CPU\n"
	       "   across it, another connection's longest resolve during the start, from the burst to the\n"
	       "   end, and in 300 ms before (ms); a fresh thothd per run, median of %d;\n"
	       "   baseline in the same run: the drains on the loop thread (THOTHD_DEFER=off)\n",
	       CS_BURST, reps);
	cs_result_t res[2][9];
	for (int k = 0; k < reps; k++)
		for (int mode = 0; mode < 2; mode++)
			cs_run(mode == 0, &res[mode][k]);
	printf("   %-40s %9s %9s %9s %9s %9s\n", "", "start rt", "start cpu", "start res", "end res",
	       "quiet res");
	for (int mode = 0; mode < 2; mode++) {
		double c[6][9], m[6];
		for (int k = 0; k < reps; k++) {
			cs_result_t *x = &res[mode][k];
			double row[6] = { x->start_rt_ms, x->start_loop_ms, x->start_resolve_ms, x->stop_loop_ms,
					  x->stop_resolve_ms, x->quiet_resolve_ms };
			for (int i = 0; i < 6; i++)
				c[i][k] = row[i];
		}
		for (int i = 0; i < 6; i++)
			m[i] = median(c[i], reps);
		printf("   %-40s %9.2f %9.2f %9.2f %9.2f %9.2f\n",
		       mode == 0 ? "drained on the loop thread (DEFER=off)" : "cuts, no drain (default)",
		       m[0], m[1], m[2], m[4], m[5]);
	}
}

/* ---- 11. a session's write and stop, and a process's exit, beside the dashboard ---- */

enum { SW_BURST = 170000 };     /* three fit a session's 524,288 events */

typedef struct sw_result {
	double write_loop_ms, write_resolve_ms, write_rt_ms;    /* an active session's write */
	double stop_loop_ms, stop_resolve_ms, stop_rt_ms;       /* its stop */
	double gone_loop_ms, gone_resolve_ms;                   /* a process's exit */
	double quiet_resolve_ms;
} sw_result_t;

/* What thothd logged last for a drain beside the dashboard of WHAT ("a stop",
 * "a write") or a gone process ("a gone process"): its CPU ms, or 0. */
static double sw_drain_cpu_ms(const char *log, const char *what)
{
	FILE *f = fopen(log, "re");
	char line[1024];
	double cpu = 0;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, what);
		char *q = p ? strstr(line, " ms (") : NULL;
		double c;
		if (q && sscanf(q, " ms (%lf ms CPU", &c) == 1)
			cpu = c;
	}
	if (f)
		fclose(f);
	return cpu;
}

/* Pause the resolver (ON) until it has no resolve in flight, or let it go
 * on: the loop thread's CPU is measured with nobody else to serve (the
 * resolves it serves meanwhile would count, and fewer of them when a
 * drain holds it), the resolves' latency in a second go. */
static void sw_pause(cs_resolver_t *r, bool on)
{
	__atomic_store_n(&r->pause, on, __ATOMIC_RELEASE);
	while (on && !__atomic_load_n(&r->idle, __ATOMIC_ACQUIRE))
		usleep(500);
}

static void sw_counted(int port, pid_t pid, uint64_t want)
{
	if (live_wait_wakeups(port, pid, want, 60000) != want)
		die("dashboard count", THOTH_E_IO);
}

static uint64_t sw_stop(thoth_control_t *ctl)
{
	thoth_trace_TraceControl_stop_req_t preq = { 0 };
	thoth_trace_TraceControl_stop_resp_t presp;
	if (thoth_trace_TraceControl_stop(&ctl->client, &preq, &presp, NULL))
		die("session stop", THOTH_E_IO);
	return presp.events;
}

static void sw_write(thoth_control_t *ctl, const char *json, uint64_t want)
{
	thoth_trace_TraceControl_write_req_t wreq = { .json_path = thoth_str(json) };
	thoth_trace_TraceControl_write_resp_t wresp;
	if (thoth_trace_TraceControl_write(&ctl->client, &wreq, &wresp, NULL) || wresp.events != want)
		die("write", THOTH_E_IO);
}

static void sw_run(bool defer_off, sw_result_t *out, double drains[3])
{
	harness_t h;
	thoth_control_t svc, ctl;
	/* The session's own 100 ms drain would take the records first: the
	 * stop and the write then meet a burst written after the last tick. */
	int port = cs_thothd(&h, defer_off, "THOTHD_TRACE_DRAIN_MS", "5000", &svc, &ctl);
	live_traced_t busy, other;      /* OTHER: the second exit */
	if (port <= 0 || live_traced_spawn(&h, LD_RING, &busy) || live_traced_spawn(&h, LD_RING, &other))
		die("set-up", THOTH_E_IO);
	cs_attached(&ctl, 4);
	cs_resolver_t r;
	pthread_t th;
	cs_resolver_start(&r, &h, &th);
	int page = cs_page_quiet(port, &r, &out->quiet_resolve_ms);
	char json[400];
	snprintf(json, sizeof json, "%s/session.json", h.dir);
	uint64_t total = 0;

	/* An active session's write, a burst just after a tick: its loop CPU
	 * (resolver paused), then its effect on the resolver. */
	cs_session_start(&ctl, busy.pid);
	cs_tick(page);
	cs_burst(&busy, SW_BURST);
	sw_pause(&r, true);
	double cpu0 = cs_loop_cpu_ms(h.thothd);
	sw_write(&ctl, json, SW_BURST);
	out->write_loop_ms = cs_loop_cpu_ms(h.thothd) - cpu0;
	sw_pause(&r, false);
	drains[0] = sw_drain_cpu_ms(h.log, "trace: a write drained");
	sw_counted(port, busy.pid, total += SW_BURST);
	cs_tick(page);
	cs_burst(&busy, SW_BURST);
	uint64_t t0 = now_ns();
	sw_write(&ctl, json, 2 * SW_BURST);
	uint64_t t1 = now_ns();
	out->write_rt_ms = (double)(t1 - t0) / 1e6;
	usleep(20000);
	out->write_resolve_ms = cs_max_ms(&r, t0, t1);
	sw_counted(port, busy.pid, total += SW_BURST);

	/* Its stop: the resolver's side; then a second session's stop for the
	 * loop CPU. */
	cs_tick(page);
	cs_burst(&busy, SW_BURST);
	t0 = now_ns();
	if (sw_stop(&ctl) != 3 * SW_BURST)
		die("session stop: events", THOTH_E_IO);
	t1 = now_ns();
	out->stop_rt_ms = (double)(t1 - t0) / 1e6;
	usleep(20000);
	out->stop_resolve_ms = cs_max_ms(&r, t0, t1);
	sw_counted(port, busy.pid, total += SW_BURST);
	cs_session_start(&ctl, busy.pid);
	cs_tick(page);
	cs_burst(&busy, SW_BURST);
	sw_pause(&r, true);
	cpu0 = cs_loop_cpu_ms(h.thothd);
	if (sw_stop(&ctl) != SW_BURST)
		die("session stop: events", THOTH_E_IO);
	out->stop_loop_ms = cs_loop_cpu_ms(h.thothd) - cpu0;
	sw_pause(&r, false);
	drains[1] = sw_drain_cpu_ms(h.log, "trace: a stop drained");
	sw_counted(port, busy.pid, total += SW_BURST);

	/* A traced process exits with a burst waiting (its connection closes
	 * with it; the next tick is ~0.5 s away): the loop CPU in the 300 ms
	 * after (resolver paused); then the other process, for the resolver. */
	cs_tick(page);
	cs_burst(&busy, CS_BURST);
	sw_pause(&r, true);
	cpu0 = cs_loop_cpu_ms(h.thothd);
	if (live_traced_exit(&busy))
		die("traced process exit", THOTH_E_TIMEDOUT);
	usleep(300000);
	out->gone_loop_ms = cs_loop_cpu_ms(h.thothd) - cpu0;
	sw_pause(&r, false);
	sw_counted(port, busy.pid, total += CS_BURST);
	drains[2] = sw_drain_cpu_ms(h.log, "a gone process's last records");
	cs_tick(page);
	cs_burst(&other, CS_BURST);
	t0 = now_ns();
	if (live_traced_exit(&other))
		die("traced process exit", THOTH_E_TIMEDOUT);
	usleep(300000);
	t1 = now_ns();
	usleep(20000);
	out->gone_resolve_ms = cs_max_ms(&r, t0, t1);
	sw_counted(port, other.pid, CS_BURST);
	cs_resolver_stop(&r, th);
	close(page);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

static void bench_stop_beside_dashboard(int reps)
{
	printf("\n11. beside the dashboard (a page on /events), %d records written just after a tick: an\n"
	       "   active session's write, its stop, then a traced process's exit with %d records\n"
	       "   waiting (a 1 Mi-record ring, the session's drain every 5 s): the loop thread's CPU\n"
	       "   across each (the exit: in the 300 ms after it; the resolver paused), another\n"
	       "   connection's longest resolve during a second one (ms); the write's and stop's round\n"
	       "   trips; in 300 ms before, nothing special; a fresh thothd per run, median of %d;\n"
	       "   baseline in the same run: THOTHD_DEFER=off (the drains, and the write's export, on\n"
	       "   the loop thread; THOTH_BENCH_THOTHD=<thothd before> for the code before)\n",
	       SW_BURST, CS_BURST, reps);
	sw_result_t res[2][9];
	double drains[2][9][3];
	for (int k = 0; k < reps; k++)
		for (int mode = 0; mode < 2; mode++)
			sw_run(mode == 0, &res[mode][k], drains[mode][k]);
	printf("   %-32s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n", "", "wr cpu", "wr res", "wr rt",
	       "stop cpu", "stop res", "stop rt", "exit cpu", "exit res", "quiet");
	for (int mode = 0; mode < 2; mode++) {
		double c[9][9], m[9];
		for (int k = 0; k < reps; k++) {
			sw_result_t *x = &res[mode][k];
			double row[9] = { x->write_loop_ms, x->write_resolve_ms, x->write_rt_ms,
					  x->stop_loop_ms, x->stop_resolve_ms, x->stop_rt_ms,
					  x->gone_loop_ms, x->gone_resolve_ms, x->quiet_resolve_ms };
			for (int i = 0; i < 9; i++)
				c[i][k] = row[i];
		}
		for (int i = 0; i < 9; i++)
			m[i] = median(c[i], reps);
		printf("   %-32s %8.2f %8.2f %8.1f %8.2f %8.2f %8.1f %8.2f %8.2f %8.2f\n",
		       mode == 0 ? "on the loop thread (DEFER=off)" : "off it (default)", m[0], m[1], m[2],
		       m[3], m[4], m[5], m[6], m[7], m[8]);
	}
	for (int k = 0; k < reps; k++)
		printf("   run %d: drains logged (CPU ms): write %.1f / %.1f, stop %.1f / %.1f, exit %.1f / %.1f "
		       "(DEFER=off / default)\n", k + 1, drains[0][k][0], drains[1][k][0], drains[0][k][1],
		       drains[1][k][1], drains[0][k][2], drains[1][k][2]);
}
/* ---- 12. the dashboard's inline limit: small backlogs, either thread ---- */

enum { IL_SIZES = 5, IL_SCRAPES = 60 };
/* Below the limit with room for thothd's own records (its loop's wake-ups
 * while LOOP is on: they wait in its own buffer too). */
static const uint32_t il_sizes[IL_SIZES] = { 0, 256, 512, 1024, 1536 };

typedef struct il_result {
	double loop_us[IL_SIZES], rt_us[IL_SIZES];      /* medians over the scrapes */
	double res_p99_us[IL_SIZES], res_max_us[IL_SIZES], quiet_p99_us, quiet_max_us;
} il_result_t;

static int cmp_u64_il(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* R's resolves that ended inside [from, to): their p99 and longest (us). */
static void il_resolves(const cs_resolver_t *r, size_t i0, size_t i1, double *p99, double *mx)
{
	size_t n = i1 > i0 ? i1 - i0 : 0;
	uint64_t *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		die("resolves", THOTH_E_NOMEM);
	memcpy(v, r->lat + i0, n * sizeof *v);
	qsort(v, n, sizeof *v, cmp_u64_il);
	*p99 = n ? (double)v[n - n / 100 - 1] / 1e3 : 0;
	*mx = n ? (double)v[n - 1] / 1e3 : 0;
	free(v);
}

/* One thothd with its inline limit LIMIT ("": the default), a traced
 * process and a page on /events (collection on all along). */
typedef struct il_inst {
	harness_t h;
	thoth_control_t svc, ctl;
	live_traced_t busy;
	int port, page;
} il_inst_t;

static void il_up(il_inst_t *x, const char *limit)
{
	x->port = cs_thothd(&x->h, false, "THOTHD_TEST_LIVE_INLINE", limit, &x->svc, &x->ctl);
	if (x->port <= 0 || live_traced_spawn(&x->h, LD_RING, &x->busy))
		die("set-up", THOTH_E_IO);
	cs_attached(&x->ctl, 3);
	x->page = live_page_open(x->port);
	if (x->page < 0)
		die("event stream", THOTH_E_IO);
	cs_tick(x->page);
	cs_burst(&x->busy, 1);                  /* LOOP on in the traced process */
	free(live_metrics(x->port));
}

static void il_down(il_inst_t *x)
{
	close(x->page);
	live_traced_close(&x->busy);
	thoth_control_close(&x->ctl);
	thoth_control_close(&x->svc);
	harness_teardown(&x->h);
}

/* A burst of N records into X's traced process, then a scrape: the loop
 * thread's CPU across the scrape and its round trip (us). */
static void il_scrape(il_inst_t *x, uint32_t n, double *loop_us, double *rt_us)
{
	if (n)
		cs_burst(&x->busy, n);
	double cpu0 = cs_loop_cpu_ms(x->h.thothd);
	uint64_t t0 = now_ns();
	char *m = live_metrics(x->port);
	uint64_t t1 = now_ns();
	*loop_us = (cs_loop_cpu_ms(x->h.thothd) - cpu0) * 1e3;
	*rt_us = (double)(t1 - t0) / 1e3;
	if (!m)
		die("scrape", THOTH_E_IO);
	free(m);
}

/* The placements side by side, each its own thothd: the old limit (2,048
 * records inline), the default (THOTHD_LIVE_INLINE_MAX) and none (every
 * drain with a record waiting on the task thread).  The scrapes rotate
 * between them (the same moment's load for all), then, size by size, a
 * resolver on each in turn during its scrapes. */
enum { IL_MODES = 3 };
static const char *const il_limit[IL_MODES] = { "2048", "", "0" };
static const char *const il_name[IL_MODES] = { "inline up to 2,048 (the old limit)",
					       "inline up to 512 (the default)",
					       "all on the task thread (=0)" };

static void il_run(il_result_t out[IL_MODES])
{
	static il_inst_t x[IL_MODES];
	for (int m = 0; m < IL_MODES; m++)
		il_up(&x[m], il_limit[m]);
	for (int k = 0; k < IL_SIZES; k++) {
		double loop[IL_MODES][IL_SCRAPES], rt[IL_MODES][IL_SCRAPES];
		for (int i = 0; i < IL_SCRAPES; i++)
			for (int j = 0; j < IL_MODES; j++) {
				int m = (i + j) % IL_MODES;
				il_scrape(&x[m], il_sizes[k], &loop[m][i], &rt[m][i]);
			}
		for (int m = 0; m < IL_MODES; m++) {
			out[m].loop_us[k] = median(loop[m], IL_SCRAPES);
			out[m].rt_us[k] = median(rt[m], IL_SCRAPES);
		}
	}
	for (int m = 0; m < IL_MODES; m++) {
		cs_resolver_t r;
		pthread_t th;
		cs_resolver_start(&r, &x[m].h, &th);
		usleep(300000);
		il_resolves(&r, 0, __atomic_load_n(&r.n, __ATOMIC_ACQUIRE), &out[m].quiet_p99_us,
			    &out[m].quiet_max_us);
		for (int k = 0; k < IL_SIZES; k++) {
			size_t i0 = __atomic_load_n(&r.n, __ATOMIC_ACQUIRE);
			for (int i = 0; i < IL_SCRAPES; i++) {
				double l, t;
				il_scrape(&x[m], il_sizes[k], &l, &t);
			}
			il_resolves(&r, i0, __atomic_load_n(&r.n, __ATOMIC_ACQUIRE), &out[m].res_p99_us[k],
				    &out[m].res_max_us[k]);
		}
		cs_resolver_stop(&r, th);
	}
	for (int m = 0; m < IL_MODES; m++)
		il_down(&x[m]);
}

static void bench_inline_limit(int reps)
{
	printf("\n12. the dashboard's inline limit: a scrape of /metrics after a burst of N records (%d scrapes\n"
	       "   each), the drain on the loop thread up to the limit, above it on the task thread\n"
	       "   (THOTHD_TEST_LIVE_INLINE: 2,048 the old limit, 512 the default, 0 every drain with a record\n"
	       "   waiting); the loop thread's CPU a scrape and the scrape's round trip (us, medians of the\n"
	       "   scrapes), then another connection's resolves during the scrapes (p99, longest; us); three\n"
	       "   thothds side by side, the scrapes rotating between them; fresh ones per run, median of %d\n"
	       "   runs\n", IL_SCRAPES, reps);
	il_result_t res[IL_MODES][9], run[IL_MODES];
	for (int k = 0; k < reps; k++) {
		il_run(run);
		for (int m = 0; m < IL_MODES; m++)
			res[m][k] = run[m];
	}
	printf("   %-34s %6s %9s %9s %9s %9s\n", "", "N", "loop cpu", "scrape rt", "res p99", "res max");
	for (int mode = 0; mode < IL_MODES; mode++) {
		for (int n = 0; n < IL_SIZES; n++) {
			double c[4][9];
			for (int k = 0; k < reps; k++) {
				c[0][k] = res[mode][k].loop_us[n];
				c[1][k] = res[mode][k].rt_us[n];
				c[2][k] = res[mode][k].res_p99_us[n];
				c[3][k] = res[mode][k].res_max_us[n];
			}
			printf("   %-34s %6u %9.1f %9.1f %9.1f %9.1f\n", n ? "" : il_name[mode],
			       il_sizes[n], median(c[0], reps), median(c[1], reps), median(c[2], reps),
			       median(c[3], reps));
		}
		double q[2][9];
		for (int k = 0; k < reps; k++) {
			q[0][k] = res[mode][k].quiet_p99_us;
			q[1][k] = res[mode][k].quiet_max_us;
		}
		printf("   %-34s %6s %9s %9s %9.1f %9.1f\n", "", "quiet", "", "", median(q[0], reps),
		       median(q[1], reps));
	}
}

/* ---- 13. window exports beside the dashboard ---- */

enum { WX_BURST = 70000, WX_EXPORTS = 8 };

typedef struct wx_result {
	double res_max_ms, res_p50_us, quiet_max_ms, loop_ms, rt_ms;
} wx_result_t;

static double wx_export(int port)
{
	uint64_t t = now_ns();
	char path[128];
	snprintf(path, sizeof path, "/trace.json?from_ns=%llu&to_ns=%llu",
		 (unsigned long long)(t - 60000000000ull), (unsigned long long)(t + 50000000000ull));
	size_t len = 0;
	char *a = live_http_get(port, path, &len);
	if (!a || !strstr(a, " 200 ") || len < (10u << 20))
		die("window export", THOTH_E_IO);
	free(a);
	return (double)(now_ns() - t) / 1e6;
}

static int cmp_u64_wx(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void wx_run(wx_result_t *out)
{
	harness_t h;
	thoth_control_t svc, ctl;
	int port = cs_thothd(&h, false, "THOTHD_LIVE_HOLD_MS", "120000", &svc, &ctl);
	live_traced_t busy;
	if (port <= 0 || live_traced_spawn(&h, 1 << 18, &busy))
		die("set-up", THOTH_E_IO);
	cs_attached(&ctl, 3);
	cs_resolver_t r;
	pthread_t th;
	cs_resolver_start(&r, &h, &th);
	int page = cs_page_quiet(port, &r, &out->quiet_max_ms);
	cs_burst(&busy, WX_BURST);
	sw_counted(port, busy.pid, WX_BURST);   /* the kept ring: full */
	cs_tick(page);

	/* The loop thread's CPU per export, nobody else to serve. */
	sw_pause(&r, true);
	double cpu0 = cs_loop_cpu_ms(h.thothd);
	for (int i = 0; i < 3; i++)
		wx_export(port);
	out->loop_ms = (cs_loop_cpu_ms(h.thothd) - cpu0) / 3;
	sw_pause(&r, false);

	/* Exports back to back; the resolver's round trips meanwhile. */
	double rts[WX_EXPORTS];
	size_t n0 = r.n;
	uint64_t t0 = now_ns();
	for (int i = 0; i < WX_EXPORTS; i++)
		rts[i] = wx_export(port);
	uint64_t t1 = now_ns();
	usleep(20000);
	out->res_max_ms = cs_max_ms(&r, t0, t1);
	size_t n1 = r.n, m = 0;
	uint64_t *lat = malloc((n1 - n0 + 1) * sizeof *lat);
	for (size_t i = n0; lat && i < n1; i++)
		if (r.t0[i] >= t0 && r.t0[i] < t1)
			lat[m++] = r.lat[i];
	qsort(lat, m, sizeof *lat, cmp_u64_wx);
	out->res_p50_us = m ? (double)lat[m / 2] / 1e3 : 0;
	free(lat);
	out->rt_ms = median(rts, WX_EXPORTS);
	cs_resolver_stop(&r, th);
	close(page);
	live_traced_close(&busy);
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
	harness_teardown(&h);
}

static void bench_window_exports(int reps)
{
	const char *which = getenv("THOTH_BENCH_THOTHD");
	printf("\n13. window exports beside the dashboard (a page on /events, the 65,536 kept events of a\n"
	       "   %d-record burst): %d full-window exports from /trace.json back to back while another\n"
	       "   connection resolves: its longest and median resolve during them, its longest in 300\n"
	       "   quiet ms before; the loop thread's CPU per export (3, resolver paused; sending the\n"
	       "   ~22 MB answer included) and the export's round trip; a fresh thothd per run, median\n"
	       "   of %d; thothd: %s\n", WX_BURST, WX_EXPORTS, reps, which ? which : "this build's");
	wx_result_t res[9];
	for (int k = 0; k < reps; k++)
		wx_run(&res[k]);
	double c[5][9];
	for (int k = 0; k < reps; k++) {
		c[0][k] = res[k].res_max_ms;
		c[1][k] = res[k].res_p50_us;
		c[2][k] = res[k].quiet_max_ms;
		c[3][k] = res[k].loop_ms;
		c[4][k] = res[k].rt_ms;
		printf("   run %d: resolve longest %.2f ms, median %.1f us, quiet longest %.2f ms; loop CPU "
		       "%.2f ms an export; export %.1f ms\n", k + 1, c[0][k], c[1][k], c[2][k], c[3][k],
		       c[4][k]);
	}
	printf("   median: resolve longest %.2f ms, median %.1f us, quiet longest %.2f ms; loop CPU %.2f ms "
	       "an export; export %.1f ms\n", median(c[0], reps), median(c[1], reps), median(c[2], reps),
	       median(c[3], reps), median(c[4], reps));
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "--instr")) {
		signal(SIGPIPE, SIG_IGN);
		bench_instr(atol(argv[2]));
		return 0;
	}
	bool quick = false;
	unsigned only = 0;              /* bit N-1: run section N; 0: all */
	int want_threads = 0, want_clients = 0, trace_procs = 8;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--section") && i + 1 < argc) {
			int n = atoi(argv[++i]);
			if (n < 1 || n > 13) {
				fprintf(stderr, "bench_scale: --section takes 1..13\n");
				return 2;
			}
			only |= 1u << (n - 1);
		} else if (!strcmp(argv[i], "--cold-reports")) {
#ifndef LOCK_WORKLOAD
			fprintf(stderr, "bench_scale: --cold-reports needs libthothlock.so (this build has none)\n");
			return 2;
#endif
			ld_cold = true;
		} else if (!strcmp(argv[i], "--live-rate") && i + 1 < argc) {
			ld_rate = atoi(argv[++i]);
			if (ld_rate < 100 || ld_rate > 5000000) {
				fprintf(stderr, "bench_scale: --live-rate takes 100..5000000\n");
				return 2;
			}
		} else if ((!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--clients") ||
			    !strcmp(argv[i], "--trace-procs") || !strcmp(argv[i], "--trace-burst")) && i + 1 < argc) {
			int n = atoi(argv[i + 1]);
			int lim = !strcmp(argv[i], "--threads") ? 16 : !strcmp(argv[i], "--clients") ? 16
				  : !strcmp(argv[i], "--trace-burst") ? 100000 : 12;
			if (n < 1 || n > lim) {
				fprintf(stderr, "bench_scale: %s takes 1..%d\n", argv[i], lim);
				return 2;
			}
			*(!strcmp(argv[i], "--threads") ? &want_threads
			  : !strcmp(argv[i], "--clients") ? &want_clients
			  : !strcmp(argv[i], "--trace-burst") ? &tc_burst : &trace_procs) = n;
			i++;
		} else {
			fprintf(stderr, "usage: bench_scale [--quick] [--section N]... [--threads N] [--clients N] "
					"[--trace-procs N] [--trace-burst N] [--live-rate N] [--cold-reports] | --instr CALLS\n");
			return 2;
		}
	}
	if (!only)
		only = 0x1fff;
	if (quick)
		run_s = 0.2;
	signal(SIGPIPE, SIG_IGN);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int max_threads = 1;
	while (max_threads * 2 <= ncpu && max_threads < 8)
		max_threads *= 2;
	if (max_threads < 2)
		max_threads = 2;
	if (want_threads)
		max_threads = want_threads;
	int max_clients = want_clients ? want_clients : max_threads * 2;
	if (max_threads > ncpu)
		printf("bench_scale: up to %d threads on %ld CPUs: above %ld threads they take turns on the CPUs\n"
		       "(oversubscribed; costs are CPU time per operation, see docs/SCALE.md)\n", max_threads, ncpu, ncpu);
	int reps = quick ? 1 : 3;
	printf("bench_scale: %ld CPUs, %u NUMA node(s)%s\n", ncpu, thoth__numa_nodes_online(),
	       quick ? " (--quick: short runs, one repetition)" : "");
	if (only & 1)
		bench_lookups(max_threads, reps);
	if (only & 2)
		bench_visibility(reps);
	if (only & 4)
		bench_counters(max_threads, reps);
	if (only & 8)
		bench_thothd(max_clients, reps);
	if (only & 16)
		bench_numa_channel(quick ? 4 : 10, quick ? 5000 : 20000);
	if (only & 32)
		bench_cross_node(quick ? 3 : 9, quick ? 2000 : 20000);
	if (only & 64)
		bench_trace_collection(trace_procs, reps);
	if (only & 128)
		bench_stop_dump(trace_procs, reps);
	if (only & 256)
		bench_live_drain(reps);
	if (only & 512)
		bench_session_cuts(reps);
	if (only & 1024)
		bench_stop_beside_dashboard(reps);
	if (only & 2048)
		bench_inline_limit(reps);
	if (only & 4096)
		bench_window_exports(reps);
	return 0;
}
