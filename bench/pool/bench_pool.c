/*
 * bench_pool - SCALE-3 measured, every baseline in the same run
 * (docs/SCALE.md "SCALE-3", docs/BENCHMARKS.md):
 *
 *   1. selection cost: thoth_pool_select over 8 instances for P2C, round
 *      robin and pick-first, against drawing one random index (the floor
 *      of any randomised choice); target <= 50 ns;
 *   2. a simulation of 10^6 requests (Poisson arrivals at 90% of capacity,
 *      exponential service) over 16 equal instances: per-instance load
 *      (time-averaged calls outstanding) max/average, and mean/p99
 *      latency, for P2C, round robin and uniform random; target: P2C
 *      max/average <= 1.10;
 *   3. real processes: thothd and 8 pool_service instances of a CPU-bound
 *      echo (a calibrated busy loop of SPIN us of thread CPU time per call)
 *      reporting their load every 100 ms; a closed-loop client keeps
 *      WINDOW calls in flight through a pool.  p99 latency all healthy vs
 *      one instance made 10x slower, for P2C (weighted by the load
 *      reports), P2C without the reports (weights expire at once) and round
 *      robin.  Target: P2C's p99 with the slow instance <= 1.2x its
 *      all-healthy p99.  Medians of RUNS runs.
 *
 *   4. (--first-call N, alone) a pool's first call: thoth_pool_new until its
 *      first call is answered, N times alternating between a pool_service
 *      serving TCP (connect, hello, answer) and one serving a channel (the
 *      channel handshake: the baseline in the same run), with thothd and
 *      both instances up throughout.  Median and p90 in us.  Both openings
 *      run on the pool's loop since pool37: compare binaries run by run.
 *
 *   5. (--keyed, alone) SCALE-4's routing by key: thothd and 4 pool_service
 *      shards of the @sharded(maglev) Shard interface, a closed-loop client
 *      keeping WINDOW keyed calls (SPIN us of CPU each) in flight with a
 *      Zipf(1.1) key stream over 1000 keys; the plain pool (strict
 *      affinity: the baseline) and one with bounded loads, alternated, the
 *      same keys for both in a run: max/avg calls served per shard, p50 and
 *      p99 latency, and the share of calls served away from their key's
 *      home.  Both with WINDOW calls in flight at all times (continuous)
 *      and in waves (WINDOW sent, all answered, again: no load released
 *      while a wave is placed, so the bound on calls in flight per shard
 *      is also one on calls served).  Medians of RUNS runs.
 *
 *   bench_pool [--runs R] [--calls N] [--spin US] [--window W] [--no-real] [--first-call N] [--keyed]
 */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pooltest.thoth.h"
#include "thoth/error.h"
#include "thoth/loop.h"
#include "thoth/pool.h"
#include "thoth/shard.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof *v, cmp_d);
	size_t i = (size_t)(p * (double)(n - 1));
	return v[i];
}

/* ---- 1. selection cost ------------------------------------------------------- */

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static volatile uint32_t sink;

static void selection(int runs)
{
	enum { N = 8, ITER = 4000000 };
	thoth_pool_slot_t slots[N];
	for (int i = 0; i < N; i++)
		slots[i] = (thoth_pool_slot_t){ .outstanding = (uint32_t)(i * 3 % 5), .cost = 1.0f + (float)i / 8 };
	double v[4][31];
	for (int r = 0; r < runs; r++) {
		for (int k = 0; k < 4; k++) {
			uint64_t rng = 88172645463325252ull;
			uint32_t rr = 0, acc = 0;
			uint64_t t0 = cpu_ns();
			for (uint32_t i = 0; i < ITER; i++) {
				if (k == 0) {
					rng ^= rng >> 12;
					rng ^= rng << 25;
					rng ^= rng >> 27;
					acc += (uint32_t)((((rng * 0x2545f4914f6cdd1dull) >> 32) * N) >> 32);
				} else {
					uint32_t s = thoth_pool_select(k == 1 ? THOTH_POOL_P2C
								       : k == 2 ? THOTH_POOL_ROUND_ROBIN
										: THOTH_POOL_PICK_FIRST,
								       slots, N, &rng, &rr);
					slots[s].outstanding ^= 1;      /* the pool updates what it picked */
					acc += s;
				}
			}
			sink = acc;
			v[k][r] = (double)(cpu_ns() - t0) / ITER;
		}
	}
	static const char *const names[] = { "one random index (baseline)", "p2c", "round robin",
					     "pick first" };
	double base = median(v[0], runs);
	printf("1. selection among 8 instances, ns of thread CPU, median of %d runs (target <= 50 ns):\n", runs);
	for (int k = 0; k < 4; k++) {
		double m = median(v[k], runs);
		printf("   %-30s %6.2f ns  %5.2fx baseline%s\n", names[k], m, m / base,
		       k == 1 ? (m <= 50 ? "  target met" : "  target NOT met") : "");
	}
}

/* ---- 2. simulation ---------------------------------------------------------- */

typedef struct sim_server {
	uint32_t q;                     /* outstanding */
	double area;                    /* integral of q dt */
	double last;
	uint64_t served;
	/* FIFO of arrival times */
	double *fifo;
	uint32_t head, tail, cap;
	double busy_until;
} sim_server_t;

static uint64_t srng = 0x123456789abcdefull;

static double urand(void)
{
	srng ^= srng >> 12;
	srng ^= srng << 25;
	srng ^= srng >> 27;
	return ((double)((srng * 0x2545f4914f6cdd1dull) >> 11) + 0.5) * 0x1p-53;
}

static double expo(double rate)
{
	return -log(urand()) / rate;
}

/* Event-driven M/M/1 servers fed by one Poisson stream routed by POLICY
 * (3 = uniform random).  Departures are processed lazily: before each
 * arrival, every server completes what finished by then. */
static void simulate(int policy, uint32_t n, uint32_t requests, double rho, double *maxavg,
		     double *mean_lat, double *p99_lat)
{
	sim_server_t *s = calloc(n, sizeof *s);
	double *lat = malloc(requests * sizeof *lat);
	thoth_pool_slot_t *slots = calloc(n, sizeof *slots);
	for (uint32_t i = 0; i < n; i++) {
		s[i].cap = 1u << 16;
		s[i].fifo = malloc(s[i].cap * sizeof(double));
		slots[i].cost = 1.0f;
	}
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	uint32_t rr = 0;
	double t = 0, lambda = rho * n;
	size_t nl = 0;
	for (uint32_t k = 0; k < requests; k++) {
		t += expo(lambda);
		for (uint32_t i = 0; i < n; i++) {
			sim_server_t *v = &s[i];
			/* complete everything that ended by t (service starts when the
			 * previous one ends: FIFO, one at a time) */
			while (v->q && v->busy_until <= t) {
				v->area += v->q * (v->busy_until - v->last);
				v->last = v->busy_until;
				double arrived = v->fifo[v->head++ & (v->cap - 1)];
				lat[nl++] = v->busy_until - arrived;
				v->q--;
				v->served++;
				if (v->q)
					v->busy_until += expo(1.0);
			}
			slots[i].outstanding = v->q;
		}
		uint32_t pick;
		if (policy == 3) {
			pick = (uint32_t)(urand() * n);
		} else {
			pick = thoth_pool_select((thoth_pool_policy_t)policy, slots, n, &rng, &rr);
		}
		sim_server_t *v = &s[pick];
		v->area += v->q * (t - v->last);
		v->last = t;
		if (v->q == v->cap)
			abort();        /* 65536 outstanding: not a stable system */
		v->fifo[v->tail++ & (v->cap - 1)] = t;
		if (v->q++ == 0)
			v->busy_until = t + expo(1.0);
	}
	double sum = 0, max = 0;
	for (uint32_t i = 0; i < n; i++) {
		s[i].area += s[i].q * (t - s[i].last);
		double avg_q = s[i].area / t;
		sum += avg_q;
		max = avg_q > max ? avg_q : max;
	}
	*maxavg = max / (sum / n);
	double ls = 0;
	for (size_t i = 0; i < nl; i++)
		ls += lat[i];
	*mean_lat = ls / (double)nl;
	*p99_lat = pct(lat, nl, 0.99);
	for (uint32_t i = 0; i < n; i++)
		free(s[i].fifo);
	free(s);
	free(lat);
	free(slots);
}

static void simulation(void)
{
	enum { N = 16, REQ = 1000000 };
	static const char *const names[] = { "p2c", "round robin", "", "uniform random" };
	static const int pols[] = { 0, 1, 3 };
	printf("2. simulation: 10^6 requests, %d equal instances, load 0.9, exponential service (mean 1):\n", N);
	for (int k = 0; k < 3; k++) {
		double ma, ml, p99;
		simulate(pols[k], N, REQ, 0.9, &ma, &ml, &p99);
		printf("   %-15s load max/avg %.3f  latency mean %6.2f p99 %6.2f%s\n", names[pols[k]], ma, ml,
		       p99, k == 0 ? (ma <= 1.10 ? "  target met (<= 1.10)" : "  target NOT met (<= 1.10)") : "");
	}
}

/* ---- 3. real processes --------------------------------------------------------- */

typedef struct driver {
	thoth_loop_t *loop;
	thoth_pool_t *pool;
	uint32_t window, spin, target, sent, done, errors;
	uint64_t *start;
	double *lat;
	bool measuring;
	uint32_t slow_pid, on_slow;
} driver_t;

static void drive(driver_t *d);

typedef struct slot_ctx {
	driver_t *d;
	uint32_t id;
} slot_ctx_t;

static void done2(void *arg, int err, const void *resp, const thoth_pool_result_t *res)
{
	(void)resp;
	slot_ctx_t *c = arg;
	driver_t *d = c->d;
	if (err)
		d->errors++;
	if (d->measuring && c->id < d->target) {
		d->lat[c->id] = (double)(now_ns() - d->start[c->id]) / 1000.0;
		d->on_slow += res->pid == d->slow_pid;
	}
	d->done++;
	free(c);
	drive(d);
}

static void drive(driver_t *d)
{
	while (d->sent - d->done < d->window && d->sent < d->target) {
		slot_ctx_t *c = malloc(sizeof *c);
		c->d = d;
		c->id = d->sent;
		d->start[c->id] = now_ns();
		thoth_pooltest_Work_work_req_t req = { .id = c->id, .spin_us = d->spin };
		if (thoth_pool_start(d->pool, &thoth_pooltest_Work_work_info, &req, done2, c)) {
			free(c);
			return;
		}
		d->sent++;
	}
}

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)timer;
	thoth_loop_add_timer_in(loop, 5000000, 0, tick, arg, NULL);
}

static void run_until_done(driver_t *d)
{
	while (d->done < d->target)
		thoth_loop_run_once(d->loop, true);
}

/* p99 (us) of CALLS calls with POLICY; expiry 1 ms = the reports unused. */
static double measure(harness_t *h, thoth_loop_t *loop, thoth_pool_policy_t policy, uint32_t expiry_ms,
		      uint32_t calls, uint32_t spin, uint32_t window, uint32_t slow_pid, double *p50,
		      double *p90, double *share)
{
	thoth_pool_config_t cfg = { .runtime_dir = h->dir, .name = "pooltest", .iface = &thoth_pooltest_Work_info,
				    .policy = policy, .weight_expiry_ms = expiry_ms };
	driver_t d = { .loop = loop, .window = window, .spin = spin, .slow_pid = slow_pid };
	char why[200];
	if (thoth_pool_new(loop, &cfg, &d.pool, why, sizeof why)) {
		fprintf(stderr, "bench_pool: %s\n", why);
		exit(1);
	}
	uint64_t end = now_ns() + 10000000000ull;
	while (thoth_pool_usable(d.pool) < 8 && now_ns() < end)
		thoth_loop_run_once(loop, true);
	if (thoth_pool_usable(d.pool) < 8) {
		fprintf(stderr, "bench_pool: only %zu instances usable\n", thoth_pool_usable(d.pool));
		exit(1);
	}
	d.start = calloc(calls, sizeof *d.start);
	d.lat = calloc(calls, sizeof *d.lat);
	/* Warm-up: long enough for two load reports of every instance. */
	d.target = calls / 4 > 500 ? calls / 4 : 500;
	uint64_t w0 = now_ns();
	drive(&d);
	run_until_done(&d);
	while (now_ns() - w0 < 400000000ull) {
		d.target += 100;
		drive(&d);
		run_until_done(&d);
	}
	d.sent = d.done = 0;
	d.target = calls;
	d.measuring = true;
	drive(&d);
	run_until_done(&d);
	double p99 = pct(d.lat, calls, 0.99);
	*p50 = pct(d.lat, calls, 0.50);
	*p90 = pct(d.lat, calls, 0.90);
	*share = 100.0 * d.on_slow / calls;
	thoth_pool_free(d.pool);
	free(d.start);
	free(d.lat);
	return p99;
}

static pid_t spawn_instance(harness_t *h, bool slow)
{
	const char *argv[] = { POOL_SERVICE_PATH, "--runtime-dir", h->dir, "--report-ms", "100",
			       slow ? "--slow" : NULL, "10", NULL };
	return harness_spawn(h, "pool_service", argv);
}

static void real(int runs, uint32_t calls, uint32_t spin, uint32_t window)
{
	harness_t h;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0) {
		fprintf(stderr, "bench_pool: cannot start thothd\n");
		exit(1);
	}
	thoth_loop_t *loop;
	thoth_loop_new(&loop);
	thoth_loop_add_timer_in(loop, 5000000, 0, tick, NULL, NULL);
	pid_t pids[8];
	for (int i = 0; i < 8; i++)
		pids[i] = spawn_instance(&h, false);
	enum { CONFIGS = 6 };
	static const char *const names[CONFIGS] = {
		"healthy, p2c", "healthy, round robin", "healthy, p2c without reports",
		"one 10x slower, p2c", "one 10x slower, round robin", "one 10x slower, p2c without reports",
	};
	static const thoth_pool_policy_t pol[3] = { THOTH_POOL_P2C, THOTH_POOL_ROUND_ROBIN, THOTH_POOL_P2C };
	static const uint32_t expiry[3] = { 0, 0, 1 };
	double p99[CONFIGS][31], p50[CONFIGS][31], p90[CONFIGS][31], share[CONFIGS][31];
	for (int phase = 0; phase < 2; phase++) {
		if (phase == 1) {
			harness_kill(&h, pids[7], SIGTERM);
			pids[7] = spawn_instance(&h, true);
		}
		for (int r = 0; r < runs; r++)
			for (int k = 0; k < 3; k++)
				p99[phase * 3 + k][r] = measure(&h, loop, pol[k], expiry[k], calls, spin, window,
								phase ? (uint32_t)pids[7] : 0, &p50[phase * 3 + k][r],
								&p90[phase * 3 + k][r], &share[phase * 3 + k][r]);
	}
	printf("3. real processes: 8 instances, %u us of CPU per call, %u calls in flight, %u calls per run,\n"
	       "   latency in us, median of %d runs (machine: %ld CPUs shared by thothd, the client and 8 instances)\n",
	       spin, window, calls, runs, sysconf(_SC_NPROCESSORS_ONLN));
	double healthy = median(p99[0], runs);
	for (int k = 0; k < CONFIGS; k++) {
		double m = median(p99[k], runs), m50 = median(p50[k], runs), m90 = median(p90[k], runs);
		printf("   %-38s p50 %8.1f  p90 %8.1f  p99 %8.1f  %5.2fx healthy p2c p99", names[k], m50, m90, m,
		       m / healthy);
		if (k >= 3)
			printf("  %4.1f%% of calls on the slow one", median(share[k], runs));
		printf("%s\n", k == 3 ? (m / healthy <= 1.2 ? "  target met (<= 1.2x)" : "  target NOT met (<= 1.2x)") : "");
	}
	thoth_loop_free(loop);
	harness_teardown(&h);
}

/* ---- 4. a pool's first call ------------------------------------------------ */

static double first_call(harness_t *h, thoth_loop_t *loop, const char *name)
{
	thoth_pool_config_t cfg = { .runtime_dir = h->dir, .name = name, .iface = &thoth_pooltest_Work_info,
				    .seed = 1 };
	thoth_pool_t *p;
	char why[200];
	uint64_t t0 = now_ns();
	if (thoth_pool_new(loop, &cfg, &p, why, sizeof why)) {
		fprintf(stderr, "bench_pool: %s\n", why);
		exit(1);
	}
	thoth_pooltest_Work_work_req_t req = { .id = 1 };
	thoth_pooltest_Work_work_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_pool_call(p, &thoth_pooltest_Work_work_info, &req, &resp, &arena, 5000, NULL);
	uint64_t t1 = now_ns();
	if (r) {
		fprintf(stderr, "bench_pool: first call to %s: %s\n", name, thoth_strerror(r));
		exit(1);
	}
	thoth_pool_free(p);
	return (double)(t1 - t0) / 1e3;
}

static void first_calls(int n)
{
	harness_t h;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0) {
		fprintf(stderr, "bench_pool: cannot start thothd\n");
		exit(1);
	}
	char token[4200];
	snprintf(token, sizeof token, "%s/cluster.token", h.dir);
	FILE *t = fopen(token, "w");
	if (!t || fputs("0123456789abcdef0123456789abcdef\n", t) < 0 || fclose(t) || chmod(token, 0600)) {
		fprintf(stderr, "bench_pool: cannot write %s\n", token);
		exit(1);
	}
	const char *tcp_argv[] = { POOL_SERVICE_PATH, "--runtime-dir", h.dir, "--name", "first-tcp", "--tcp", NULL };
	const char *chan_argv[] = { POOL_SERVICE_PATH, "--runtime-dir", h.dir, "--name", "first-chan", NULL };
	if (harness_spawn(&h, "pool_service_tcp", tcp_argv) <= 0 ||
	    harness_spawn(&h, "pool_service_chan", chan_argv) <= 0) {
		fprintf(stderr, "bench_pool: cannot start pool_service (see %s)\n", h.dir);
		exit(1);
	}
	thoth_loop_t *loop;
	thoth_loop_new(&loop);
	thoth_loop_add_timer_in(loop, 5000000, 0, tick, NULL, NULL);
	first_call(&h, loop, "first-tcp");     /* both up and answering before timing */
	first_call(&h, loop, "first-chan");
	double *tcp = calloc((size_t)n, sizeof *tcp), *chan = calloc((size_t)n, sizeof *chan);
	if (!tcp || !chan)
		exit(1);
	for (int i = 0; i < n; i++) {
		tcp[i] = first_call(&h, loop, "first-tcp");
		chan[i] = first_call(&h, loop, "first-chan");
	}
	double mt = median(tcp, n), mc = median(chan, n);
	printf("4. a pool's first call (thoth_pool_new to the answer), %d of each, alternated\n", n);
	printf("   channel instance   median %8.1f us  p90 %8.1f us   (baseline)\n", mc, pct(chan, (size_t)n, 0.9));
	printf("   TCP instance       median %8.1f us  p90 %8.1f us   %.2fx channel\n", mt, pct(tcp, (size_t)n, 0.9),
	       mt / mc);
	free(tcp);
	free(chan);
	thoth_loop_free(loop);
	harness_teardown(&h);
}

/* ---- 5. routing by key with bounded loads (SCALE-4) ------------------------- */

enum { KEYED_N = 4, ZIPF_KEYS = 1000 };

typedef struct keyed_driver keyed_driver_t;
static keyed_driver_t *g_keyed;

struct keyed_driver {
	thoth_loop_t *loop;
	thoth_pool_t *pool;
	thoth_shard_table_t *home;      /* the plain table over shards 0..3: a key's home */
	const uint64_t *keys;
	const pid_t *pid;               /* shard k's instance */
	uint32_t window, spin, target, sent, done, errors, away, warm;
	bool waves;                     /* send WINDOW, wait for all of them, again */
	uint32_t served[KEYED_N];
	uint64_t *start;
	double *lat;
};

static void keyed_drive(keyed_driver_t *d);

static void keyed_done(void *arg, int err, const void *resp, const thoth_pool_result_t *res)
{
	(void)resp;
	keyed_driver_t *d = g_keyed;
	uint32_t id = (uint32_t)(uintptr_t)arg;
	if (err) {
		d->errors++;
	} else if (id >= d->warm) {
		d->lat[id - d->warm] = (double)(now_ns() - d->start[id]) / 1000.0;
		int s = -1;
		for (int k = 0; k < KEYED_N; k++)
			if ((uint32_t)d->pid[k] == res->pid)
				s = k;
		if (s >= 0) {
			d->served[s]++;
			d->away += (uint32_t)s != thoth_shard_lookup(d->home, d->keys[id]);
		}
	}
	d->done++;
	keyed_drive(d);
}

static void keyed_drive(keyed_driver_t *d)
{
	if (d->waves && d->sent != d->done)
		return;
	while (d->sent - d->done < d->window && d->sent < d->target) {
		uint32_t id = d->sent;
		d->start[id] = now_ns();
		thoth_pooltest_Shard_spin_req_t req = { .key = d->keys[id], .spin_us = d->spin };
		int r = thoth_pool_start_key(d->pool, &thoth_pooltest_Shard_spin_info, &req, d->keys[id], keyed_done,
					     (void *)(uintptr_t)id);
		if (r) {
			/* Nothing would send it again: the run would wait forever. */
			fprintf(stderr, "bench_pool: keyed call %u not started: %s\n", id, thoth_strerror(r));
			exit(1);
		}
		d->sent++;
	}
}

/* One run: CALLS keyed calls (after WARM of warm-up) through a fresh pool,
 * WINDOW in flight (continuously, or in WAVES), bounded or plain.  OUT:
 * max/avg served, p50 and p99 us, % of calls served away from their key's
 * home, min/avg served. */
static void keyed_run(harness_t *h, thoth_loop_t *loop, bool bounded, bool waves, const uint64_t *keys,
		      uint32_t warm, uint32_t calls, uint32_t spin, uint32_t window, const pid_t *pid,
		      thoth_shard_table_t *home, double out[5])
{
	thoth_pool_config_t cfg = { .runtime_dir = h->dir, .name = "pooltest-shard",
				    .iface = &thoth_pooltest_Shard_info, .seed = 1, .shard_bounded = bounded };
	keyed_driver_t d = { .loop = loop, .home = home, .keys = keys, .pid = pid, .window = window, .spin = spin,
			     .target = warm + calls, .warm = warm, .waves = waves };
	char why[200];
	if (thoth_pool_new(loop, &cfg, &d.pool, why, sizeof why)) {
		fprintf(stderr, "bench_pool: %s\n", why);
		exit(1);
	}
	uint64_t end = now_ns() + 10000000000ull;
	while (thoth_pool_usable(d.pool) < KEYED_N && now_ns() < end)
		thoth_loop_run_once(loop, true);
	if (thoth_pool_usable(d.pool) < KEYED_N) {
		fprintf(stderr, "bench_pool: only %zu shards usable\n", thoth_pool_usable(d.pool));
		exit(1);
	}
	d.start = calloc(warm + calls, sizeof *d.start);
	d.lat = calloc(calls, sizeof *d.lat);
	if (!d.start || !d.lat)
		exit(1);
	g_keyed = &d;
	keyed_drive(&d);
	while (d.done < d.target)
		thoth_loop_run_once(loop, true);
	if (d.errors) {
		fprintf(stderr, "bench_pool: %u keyed calls failed\n", d.errors);
		exit(1);
	}
	uint32_t max = 0, sum = 0;
	for (int k = 0; k < KEYED_N; k++) {
		sum += d.served[k];
		max = d.served[k] > max ? d.served[k] : max;
	}
	out[0] = (double)max * KEYED_N / (double)sum;
	out[4] = (double)d.served[0];
	for (int k = 1; k < KEYED_N; k++)
		out[4] = d.served[k] < out[4] ? d.served[k] : out[4];
	out[4] = out[4] * KEYED_N / (double)sum;
	out[1] = pct(d.lat, calls, 0.50);
	out[2] = pct(d.lat, calls, 0.99);
	out[3] = 100.0 * d.away / calls;
	g_keyed = NULL;
	thoth_pool_free(d.pool);
	free(d.start);
	free(d.lat);
}

static void keyed(int runs, uint32_t calls, uint32_t spin, uint32_t window)
{
	harness_t h;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0) {
		fprintf(stderr, "bench_pool: cannot start thothd\n");
		exit(1);
	}
	pid_t pid[KEYED_N];
	uint64_t ids[KEYED_N];
	for (int k = 0; k < KEYED_N; k++) {
		char id[8];
		snprintf(id, sizeof id, "%d", k);
		const char *argv[] = { POOL_SERVICE_PATH, "--runtime-dir", h.dir, "--shard-id", id, NULL };
		pid[k] = harness_spawn(&h, "pool_service", argv);
		if (pid[k] <= 0) {
			fprintf(stderr, "bench_pool: cannot start pool_service shard %d\n", k);
			harness_teardown(&h);
			exit(1);
		}
		ids[k] = THOTH_POOL_SHARD_ID(k);
	}
	thoth_shard_config_t sc = { .algo = THOTH_SHARD_MAGLEV, .balance = -1 };
	thoth_shard_table_t *home;
	char why[160];
	if (thoth_shard_table_new(&sc, ids, KEYED_N, &home, why, sizeof why)) {
		fprintf(stderr, "bench_pool: %s\n", why);
		exit(1);
	}
	/* Zipf(1.1) over ZIPF_KEYS ranks, the same stream for both pools of a run. */
	static double cdf[ZIPF_KEYS];
	double sum = 0, acc = 0;
	for (int r = 0; r < ZIPF_KEYS; r++)
		sum += 1.0 / pow(r + 1, 1.1);
	for (int r = 0; r < ZIPF_KEYS; r++) {
		acc += 1.0 / pow(r + 1, 1.1) / sum;
		cdf[r] = acc;
	}
	cdf[ZIPF_KEYS - 1] = 1.0;
	uint32_t warm = calls / 4;
	uint64_t *keys = calloc(warm + calls, sizeof *keys);
	if (!keys)
		exit(1);
	thoth_loop_t *loop;
	thoth_loop_new(&loop);
	thoth_loop_add_timer_in(loop, 5000000, 0, tick, NULL, NULL);
	double res[4][5][31];           /* [waves * 2 + bounded][figure][run] */
	for (int r = 0; r < runs; r++) {
		uint64_t rng = 0x9e3779b97f4a7c15ull + (uint64_t)r;
		for (uint32_t i = 0; i < warm + calls; i++) {
			rng ^= rng >> 12;
			rng ^= rng << 25;
			rng ^= rng >> 27;
			double u = (double)((rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
			int lo = 0, hi = ZIPF_KEYS - 1;
			while (lo < hi) {
				int mid = (lo + hi) / 2;
				if (cdf[mid] < u)
					lo = mid + 1;
				else
					hi = mid;
			}
			uint64_t rank = (uint64_t)lo;
			keys[i] = thoth_shard_key(&rank, sizeof rank);
		}
		double o[5];
		for (int k = 0; k < 4; k++) {
			int c = (r + k) % 4;            /* rotate which goes first */
			keyed_run(&h, loop, c & 1, c >> 1, keys, warm, calls, spin, window, pid, home, o);
			for (int q = 0; q < 5; q++)
				res[c][q][r] = o[q];
		}
	}
	printf("5. routing by key: %d real shards (Maglev), Zipf(1.1) over %d keys, %u us of CPU per call,\n"
	       "   %u calls in flight, %u calls per run after %u of warm-up, median of %d runs\n"
	       "   (machine: %ld CPUs shared by thothd, the client and %d instances)\n",
	       KEYED_N, ZIPF_KEYS, spin, window, calls, warm, runs, sysconf(_SC_NPROCESSORS_ONLN), KEYED_N);
	static const char *const names[4] = { "continuous, plain", "continuous, bounded 1.25",
					      "waves, plain", "waves, bounded 1.25" };
	for (int c = 0; c < 4; c++) {
		double base_p99 = median(res[c & 2][2], runs);
		double mx = median(res[c][0], runs), p50 = median(res[c][1], runs), p99 = median(res[c][2], runs),
		       away = median(res[c][3], runs), mn = median(res[c][4], runs);
		double lo = res[c][0][0], hi = lo;
		for (int r = 1; r < runs; r++) {
			lo = res[c][0][r] < lo ? res[c][0][r] : lo;
			hi = res[c][0][r] > hi ? res[c][0][r] : hi;
		}
		printf("   %-25s served max/avg %5.3f (runs %5.3f-%5.3f) min/avg %5.3f  p50 %8.1f us  p99 %8.1f us "
		       "(%4.2fx plain)  %5.1f%% away from home\n",
		       names[c], mx, lo, hi, mn, p50, p99, p99 / base_p99, away);
	}
	free(keys);
	thoth_shard_table_free(home);
	thoth_loop_free(loop);
	harness_teardown(&h);
}

int main(int argc, char **argv)
{
	int runs = 3;
	uint32_t calls = 4000, spin = 200, window = 4;
	bool do_real = true;
	int first = 0;
	bool do_keyed = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--spin") && i + 1 < argc)
			spin = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--window") && i + 1 < argc)
			window = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-real"))
			do_real = false;
		else if (!strcmp(argv[i], "--first-call") && i + 1 < argc)
			first = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--keyed"))
			do_keyed = true;
		else {
			fprintf(stderr, "usage: bench_pool [--runs R] [--calls N] [--spin US] [--window W] [--no-real] "
				"[--first-call N] [--keyed]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 31 || calls < 100 || window < 1 || window > 64) {
		fprintf(stderr, "bench_pool: --runs 1..31, --calls >= 100, --window 1..64\n");
		return 2;
	}
	if (first) {
		if (first < 3 || first > 100000) {
			fprintf(stderr, "bench_pool: --first-call 3..100000\n");
			return 2;
		}
		first_calls(first);
		return 0;
	}
	if (do_keyed) {
		keyed(runs, calls, spin, window);
		return 0;
	}
	selection(runs < 5 ? 5 : runs);
	simulation();
	if (do_real)
		real(runs, calls, spin, window);
	return 0;
}
