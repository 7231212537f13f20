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
 *      round trip only on a miss);
 *   5. channel round trip (64 B) with NUMA placement forced on vs off,
 *      alternating blocks in one run (this VM has one node: this is the
 *      cost of the placement logic, not its benefit).
 *
 *   bench_scale [--quick]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.thoth.h"
#include "harness.h"
#include "numa.h"
#include "rtable_shm.h"
#include "thoth/channel.h"
#include "thoth/percpu.h"
#include "thoth/rtable.h"

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

enum { MODE_SEQLOCK, MODE_RWLOCK, MODE_MUTEX };
static const char *mode_name[] = { "seqlock table (lock-free)", "pthread_rwlock (read)", "pthread_mutex" };

typedef struct lk {
	rt_writer_t w;
	rt_view_t v;
	pthread_rwlock_t rw;
	pthread_mutex_t mx;
	int mode;
	int go, stop;                   /* atomic */
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
	for (int i = 0; i < 16; i++)
		rt_key_init(&keys[i], names16[i], NULL);
	pthread_barrier_wait(&l->start);
	uint64_t n = 0, found = 0, t0 = cpu_ns();
	while (!__atomic_load_n(&l->stop, __ATOMIC_RELAXED)) {
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
			default:
				got = rt_lookup(&l->v, k, 0, &r, NULL);
			}
			found += got == 0;
		}
		n += 64;
	}
	me->ns_per_lookup = (double)(cpu_ns() - t0) / (double)n;
	me->found = found;
	return NULL;
}

/* Writes 1,000 times a second (re-registers one instance), under the
 * mode's lock for the locked baselines. */
static void lk_write(lk_t *l, uint64_t *lease)
{
	if (l->mode == MODE_RWLOCK)
		pthread_rwlock_wrlock(&l->rw);
	else if (l->mode == MODE_MUTEX)
		pthread_mutex_lock(&l->mx);
	rt_writer_remove(&l->w, "churn", 5, *lease);
	++*lease;
	rt_instance_t in = { .name = "churn", .name_len = 5, .addr = "/run/churn.sock", .addr_len = 15,
			     .major = 1, .lease = *lease, .expires_at_ns = UINT64_MAX };
	rt_writer_add(&l->w, &in);
	if (l->mode == MODE_RWLOCK)
		pthread_rwlock_unlock(&l->rw);
	else if (l->mode == MODE_MUTEX)
		pthread_mutex_unlock(&l->mx);
}

static double lookup_run(lk_t *l, int mode, int threads)
{
	l->mode = mode;
	__atomic_store_n(&l->stop, 0, __ATOMIC_RELAXED);
	lk_thread_t th[16];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_barrier_init(&l->start, NULL, (unsigned)threads + 1);
	for (int i = 0; i < threads; i++) {
		th[i] = (lk_thread_t){ .l = l, .cpu = (int)(i % ncpu) };
		pthread_create(&th[i].t, NULL, lk_reader, &th[i]);
	}
	pthread_barrier_wait(&l->start);
	uint64_t end = now_ns() + (uint64_t)(run_s * 1e9), lease = 1000;
	while (now_ns() < end) {
		lk_write(l, &lease);
		usleep(1000);
	}
	__atomic_store_n(&l->stop, 1, __ATOMIC_RELAXED);
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
	printf("1. in-process lookup, ns of thread CPU time per lookup per thread (median of %d runs of %.1f s;\n"
	       "   a writer changes the table 1,000 times/s; 16 names x 2 instances among 1,032 entries;\n"
	       "   a lookup returns the chosen instance with its address copied out)\n", reps, run_s);
	printf("   %-28s", "threads");
	for (int t = 1; t <= max_threads; t *= 2)
		printf(" %9d", t);
	printf("   flatness (max/min)\n");
	double m[3][8] = { { 0 } };
	int cols = 0;
	for (int mode = 0; mode < 3; mode++) {
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
	for (int mode = 1; mode < 3; mode++) {
		printf("   %-28s", mode == 1 ? "rwlock / table" : "mutex / table");
		for (int col = 0; col < cols; col++)
			printf(" %8.1fx", m[mode][col] / m[0][col]);
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

/* ---- 2. visibility -------------------------------------------------------- */

typedef struct vis {
	rt_view_t v;
	uint64_t published;             /* atomic: lease the writer just added */
	uint64_t t_pub;                 /* atomic: when (before the write began) */
	int stop;
	double lat[1000];
	int n;
} vis_t;

static void *vis_reader(void *arg)
{
	vis_t *x = arg;
	pin(1 % (int)sysconf(_SC_NPROCESSORS_ONLN));
	rt_key_t k;
	rt_key_init(&k, "watched", NULL);
	uint64_t last = 0;
	while (!__atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)) {
		rt_result_t r;
		if (rt_lookup(&x->v, &k, 0, &r, NULL) == 0 && r.lease != last) {
			uint64_t t = now_ns();
			last = r.lease;
			if (__atomic_load_n(&x->published, __ATOMIC_ACQUIRE) == r.lease && x->n < 1000)
				x->lat[x->n++] = (double)(t - __atomic_load_n(&x->t_pub, __ATOMIC_ACQUIRE)) / 1e3;
		}
	}
	return NULL;
}

static void bench_visibility(void)
{
	rt_writer_t w;
	if (rt_writer_init(&w, 64, NULL, 0))
		die("table", THOTH_E_IO);
	vis_t *x = calloc(1, sizeof *x);
	char why[100];
	rt_view_init(&x->v, w.base, w.size, why, sizeof why);
	pthread_t t;
	pthread_create(&t, NULL, vis_reader, x);
	pin(0);
	uint64_t prev = 0;
	for (uint64_t lease = 1; lease <= 500; lease++) {
		__atomic_store_n(&x->t_pub, now_ns(), __ATOMIC_RELEASE);
		__atomic_store_n(&x->published, lease, __ATOMIC_RELEASE);
		if (prev)
			rt_writer_remove(&w, "watched", 7, prev);
		rt_instance_t in = { .name = "watched", .name_len = 7, .addr = "/run/w.sock", .addr_len = 11,
				     .major = 1, .lease = lease, .expires_at_ns = UINT64_MAX };
		rt_writer_add(&w, &in);
		prev = lease;
		usleep(2000);
	}
	__atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < sysconf(_SC_NPROCESSORS_ONLN); i++)
		CPU_SET(i, &all);
	sched_setaffinity(0, sizeof all, &all);
	int n = x->n;
	qsort(x->lat, (size_t)n, sizeof x->lat[0], cmp_double);
	printf("\n2. a writer's update seen by a spinning reader on the other CPU (%d updates): p50 %.2f us, "
	       "p99 %.2f us, max %.1f us (target: < 1 ms)\n", n, n ? x->lat[n / 2] : 0, n ? x->lat[n * 99 / 100] : 0,
	       n ? x->lat[n - 1] : 0);
	free(x);
	rt_writer_free(&w);
}

/* ---- 3. counters ----------------------------------------------------------- */

static thoth_pcounter_t pc = THOTH_PCOUNTER_INIT("bench");
static _Alignas(64) uint64_t shared_counter;
static int ctr_stop;

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
	while (!__atomic_load_n(&ctr_stop, __ATOMIC_RELAXED)) {
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
	__atomic_store_n(&ctr_stop, 0, __ATOMIC_RELAXED);
	for (int i = 0; i < threads; i++) {
		th[i] = (ctr_thread_t){ .cpu = (int)(i % ncpu), .mode = mode };
		pthread_create(&th[i].t, NULL, ctr_run, &th[i]);
	}
	usleep((useconds_t)(run_s * 1e6));
	__atomic_store_n(&ctr_stop, 1, __ATOMIC_RELAXED);
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

static double resolves_per_second(harness_t *h, int clients, bool table)
{
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
			char why[200];
			if (table ? thoth_rtable_open(h->dir, &t, why, sizeof why) : harness_connect(h, &ctl))
				_exit(1);
			uint64_t end = now_ns() + (uint64_t)(run_s * 2e9);
			thoth_resolved_t where;
			while (now_ns() < end) {
				for (int k = 0; k < 64; k++)
					if (table ? thoth_rtable_resolve(t, "echo", NULL, &where) == 0
						  : harness_resolve(&ctl, "echo", NULL) == 0)
						n++;
			}
			if (write(fds[c][1], &n, sizeof n) != sizeof n)
				_exit(1);
			_exit(0);
		}
		close(fds[c][1]);
	}
	uint64_t total = 0;
	for (int c = 0; c < clients; c++) {
		uint64_t n = 0;
		if (read(fds[c][0], &n, sizeof n) == sizeof n)
			total += n;
		close(fds[c][0]);
		waitpid(pids[c], NULL, 0);
	}
	return (double)total / (run_s * 2);
}

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
	printf("   %-36s", "clients");
	for (int c = 1; c <= max_clients; c *= 2)
		printf(" %12d", c);
	printf("\n");
	double rt1 = 0, tb[8] = { 0 }, rt[8] = { 0 };
	for (int mode = 0; mode < 2; mode++) {
		printf("   %-36s", mode ? "shared table (thoth_rtable_resolve)" : "round trip (Registry.resolve)");
		int col = 0;
		for (int c = 1; c <= max_clients; c *= 2, col++) {
			double v[9];
			for (int r = 0; r < reps; r++)
				v[r] = resolves_per_second(&h, c, mode == 1);
			double m = median(v, reps);
			(mode ? tb : rt)[col] = m;
			if (!mode && c == 1)
				rt1 = m;
			printf(" %12.0f", m);
		}
		printf("\n");
	}
	printf("   %-36s", "table / round trip");
	int col = 0;
	for (int c = 1; c <= max_clients; c *= 2, col++)
		printf(" %11.0fx", tb[col] / rt[col]);
	printf("\n   round trip at %d clients / at 1: %.2fx; table at %d clients / at 1: %.2fx\n", max_clients,
	       rt[col - 1] / rt1, max_clients, tb[col - 1] / tb[0]);
	thoth_control_close(&svc);
	harness_teardown(&h);
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

static pid_t start_service(const char *path, const char *numa)
{
	unlink(path);
	pid_t pid = fork();
	if (pid == 0) {
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
		pid[m] = start_service(path[m], mode[m]);
	}
	double rt[2][64], op[2][64];
	for (int b = 0; b < blocks; b++)
		for (int m = 0; m < 2; m++) {
			int mm = b % 2 ? 1 - m : m;     /* ABBA: neither side always goes first */
			setenv("THOTH_NUMA", mode[mm], 1);
			thoth__numa_reset();
			rt[mm][b] = chan_block(path[mm], iters, &op[mm][b]);
		}
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
	for (int m = 0; m < 2; m++) {
		kill(pid[m], SIGTERM);
		waitpid(pid[m], NULL, 0);
		unlink(path[m]);
	}
	rmdir(dir);
	unsetenv("THOTH_NUMA");
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	if (quick)
		run_s = 0.2;
	signal(SIGPIPE, SIG_IGN);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int max_threads = 1;
	while (max_threads * 2 <= ncpu && max_threads < 8)
		max_threads *= 2;
	if (max_threads < 2)
		max_threads = 2;
	int reps = quick ? 1 : 3;
	printf("bench_scale: %ld CPUs, %u NUMA node(s)%s\n", ncpu, thoth__numa_nodes_online(),
	       quick ? " (--quick: short runs, one repetition)" : "");
	bench_lookups(max_threads, reps);
	bench_visibility();
	bench_counters(max_threads, reps);
	bench_thothd(max_threads * 2, reps);
	bench_numa_channel(quick ? 4 : 10, quick ? 5000 : 20000);
	return 0;
}
