/*
 * bench_nvme_loop - what the NVMe coalescing loop
 * (kernel/pm/moderation_nvme.c) costs and how fast it follows I/O, on a
 * fixture sysfs/procfs tree with a recording fake controller (this VM has
 * no NVMe controller: every figure here is the loop's own cost, not a
 * controller's).
 *
 *   bench_nvme_loop [--runs N (5)] [--idle-ms N (1000)]
 *
 * Per run:
 *   - idle: the loop's wake-ups over --idle-ms with no I/O, against the
 *     baseline in the same run: a periodic sampler reading the same
 *     counters every 10 ms (what a loop without a wake-up on I/O must do);
 *   - reaction: a thread starts rewriting the fixture's counters at 500k
 *     completions/s; time from its first write to the loop waking, and to
 *     the moderated Set Features 0x08 read back; then it stops, and the
 *     time to the unmoderated setting (idle again);
 *   - decision cost (thread CPU time per sample): reading the counters
 *     (the fixture's stat + interrupts, and separately this machine's real
 *     /proc/interrupts, the part that grows with the machine) plus the
 *     policy and the encoding, against the baseline of the policy update
 *     alone.
 * Medians over the runs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "moderation_nvme.h"
#include "thoth/loop.h"

enum { MAX_RUNS = 15, COST_ITERS = 2000 };

static char root[PATH_MAX];

static void put_file(const char *rel, const char *text)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror(p);
		exit(1);
	}
	close(fd);
}

static void put_counters(uint64_t ios, uint64_t irqs)
{
	char b[512];
	snprintf(b, sizeof b, "%llu 0 %llu 0 %llu 0 %llu 0 0 0 0 0 0 0 0 0 0\n", (unsigned long long)(ios / 2),
		 (unsigned long long)(ios / 2 * 8), (unsigned long long)(ios - ios / 2),
		 (unsigned long long)((ios - ios / 2) * 8));
	put_file("sys/block/nvme0n1/stat", b);
	snprintf(b, sizeof b,
		 "            CPU0       CPU1\n"
		 "  24:         10          0  PCI-MSIX-0000:00:04.0    0-edge      nvme0q0\n"
		 "  25: %10llu          0  PCI-MSIX-0000:00:04.0    1-edge      nvme0q1\n"
		 "  26:          0 %10llu  PCI-MSIX-0000:00:04.0    2-edge      nvme0q2\n",
		 (unsigned long long)(irqs / 2), (unsigned long long)(irqs - irqs / 2));
	put_file("proc/interrupts", b);
}

static uint64_t thread_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the I/O generator thread --------------------------------------------- */

typedef struct gen {
	atomic_bool run, stop;
	_Atomic uint64_t first_ns, last_ns;
	uint64_t ios;
} gen_t;

static void *gen_main(void *arg)
{
	gen_t *g = arg;
	uint64_t prev = thoth_clock_now();
	while (!atomic_load(&g->stop)) {
		if (!atomic_load(&g->run)) {
			usleep(1000);
			prev = thoth_clock_now();
			continue;
		}
		uint64_t now = thoth_clock_now();
		g->ios += 500000u * (now - prev) / 1000000000u + 1;
		prev = now;
		uint64_t zero = 0, before = thoth_clock_now();
		put_counters(g->ios, g->ios / 8);
		atomic_compare_exchange_strong(&g->first_ns, &zero, before);
		atomic_store(&g->last_ns, thoth_clock_now());
		usleep(1000);
	}
	return NULL;
}

/* ---- the loop side ------------------------------------------------------------- */

typedef struct obs {
	uint64_t moderated_ns, unmoderated_ns;
	bool stopping;              /* the generator has stopped: the next 0 counts */
} obs_t;

static void on_change(void *arg, const thoth_nvmemod_change_t *c)
{
	obs_t *o = arg;
	if (c->asked && c->read_ok && c->readback == c->asked && !o->moderated_ns)
		o->moderated_ns = c->time_ns;
	if (!c->asked && o->stopping && !o->unmoderated_ns)
		o->unmoderated_ns = c->time_ns;
}

static void tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)loop;
	(void)t;
	*(bool *)arg = true;
}

static void run_for(thoth_loop_t *loop, uint64_t ns)
{
	bool fired = false;
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, ns, 0, tick, &fired, &t);
	while (!fired)
		thoth_loop_run_once(loop, true);
}

static void sampler_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	thoth_nvme_counters_t c;
	thoth_nvme_read_counters("nvme0", &c, NULL, 0);
	(void)arg;
	thoth_timer_rearm(loop, t, thoth_clock_now() + 10000000u, 0);
}

/* Median of the values >= 0 (a run where a phase could not be measured
 * stores -1); *USED (may be NULL) = how many there were. */
static double median_valid(const double *in, int n, int *used)
{
	double v[MAX_RUNS];
	int k = 0;
	for (int i = 0; i < n; i++)
		if (in[i] >= 0)
			v[k++] = in[i];
	if (used)
		*used = k;
	if (!k)
		return -1;
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static double median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	int runs = 5;
	unsigned idle_ms = 1000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--idle-ms") && i + 1 < argc)
			idle_ms = (unsigned)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_nvme_loop [--runs N] [--idle-ms N]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || idle_ms < 100 || idle_ms > 60000) {
		fprintf(stderr, "bench_nvme_loop: --runs 1..%d, --idle-ms 100..60000\n", MAX_RUNS);
		return 2;
	}
	snprintf(root, sizeof root, "%s/thoth-bench-nvme-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	const char *dirs[] = { "sys", "sys/block", "sys/block/nvme0n1", "proc" };
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	put_file("sys/block/nvme0n1/dev", "259:0\n");
	put_counters(1000, 125);
	setenv("THOTH_SYSFS_ROOT", root, 1);

	double idle_loop[MAX_RUNS], idle_base[MAX_RUNS], wake_ms[MAX_RUNS], mod_ms[MAX_RUNS], down_ms[MAX_RUNS];
	double cost_full[MAX_RUNS], cost_policy[MAX_RUNS], cost_proc[MAX_RUNS];
	gen_t g = { .ios = 1000 };
	pthread_t th;
	pthread_create(&th, NULL, gen_main, &g);
	for (int r = 0; r < runs; r++) {
		thoth_loop_t *loop;
		if (thoth_loop_new(&loop))
			return 1;
		thoth_nvme_fake_t fake;
		thoth_nvme_fake_init(&fake, 0);
		obs_t o = { 0 };
		thoth_nvmemod_config_t cfg = { .ctrl = "nvme0", .policy = { .kind = THOTH_MOD_ADAPTIVE, .fixed.max_us = 1000 },
					       .wake = THOTH_NVMEMOD_WAKE_FILES, .admin = thoth_nvme_fake_admin(&fake),
					       .on_change = on_change, .arg = &o };
		thoth_nvmemod_t *m;
		char why[300];
		if (thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why)) {
			fprintf(stderr, "bench_nvme_loop: %s\n", why);
			return 1;
		}
		/* Idle: the loop's wake-ups (less the one that ends the wait). */
		thoth_loop_stats_t a, b;
		thoth_loop_stats(loop, &a);
		run_for(loop, (uint64_t)idle_ms * 1000000u);
		thoth_loop_stats(loop, &b);
		idle_loop[r] = (double)(b.wakeups - a.wakeups - 1) * 1000.0 / idle_ms;
		/* The periodic sampler on a loop of its own. */
		thoth_loop_t *pl;
		thoth_loop_new(&pl);
		thoth_timer_t *st;
		thoth_loop_add_timer_in(pl, 10000000u, 0, sampler_tick, NULL, &st);
		thoth_loop_stats(pl, &a);
		run_for(pl, (uint64_t)idle_ms * 1000000u);
		thoth_loop_stats(pl, &b);
		idle_base[r] = (double)(b.wakeups - a.wakeups - 1) * 1000.0 / idle_ms;
		thoth_loop_free(pl);

		/* Reaction. */
		atomic_store(&g.first_ns, 0);
		atomic_store(&g.run, true);
		thoth_nvmemod_stats_t s;
		uint64_t deadline = thoth_clock_now() + 3000000000u, woke = 0;
		/* Block in the loop (1 ms ticks): a spinning main thread would
		 * starve the generator on a 2-CPU machine. */
		while (!o.moderated_ns && thoth_clock_now() < deadline) {
			run_for(loop, 1000000u);
			thoth_nvmemod_stats(m, &s);
			if (s.busy && !woke)
				woke = s.woke_ns;
		}
		run_for(loop, 50000000u);
		atomic_store(&g.run, false);
		usleep(3000);
		uint64_t stop_ns = atomic_load(&g.last_ns);
		o.stopping = true;
		deadline = thoth_clock_now() + 3000000000u;
		while (!o.unmoderated_ns && thoth_clock_now() < deadline)
			run_for(loop, 1000000u);
		uint64_t first = atomic_load(&g.first_ns);
		wake_ms[r] = woke >= first && first ? (double)(woke - first) / 1e6 : -1;
		mod_ms[r] = o.moderated_ns > first ? (double)(o.moderated_ns - first) / 1e6 : -1;
		down_ms[r] = o.unmoderated_ns > stop_ns ? (double)(o.unmoderated_ns - stop_ns) / 1e6 : -1;
		thoth_nvmemod_stop(m);
		thoth_loop_free(loop);

		/* Decision cost, thread CPU time. */
		thoth_mod_t pol;
		thoth_mod_config_t pc = { .kind = THOTH_MOD_ADAPTIVE, .fixed.max_us = 1000 };
		thoth_mod_init(&pol, &pc);
		thoth_nvme_admin_t adm = thoth_nvme_fake_admin(&fake);
		uint64_t t0 = thread_ns();
		for (int i = 0; i < COST_ITERS; i++) {
			thoth_nvme_counters_t c;
			thoth_nvme_read_counters("nvme0", &c, NULL, 0);
			thoth_mod_sample_t sm = { 1000000000ull + (uint64_t)i * 10000000u, c.irqs + (uint64_t)i * 100,
						  c.ios + (uint64_t)i * 5000u * (1 + (i & 1)), c.sectors * 512u };
			if (thoth_mod_update(&pol, &sm))
				thoth_nvme_feature08_set(&adm, "/dev/nvme0", thoth_nvme_coalesce_encode(thoth_mod_profile(&pol)),
							 NULL, 0);
		}
		cost_full[r] = (double)(thread_ns() - t0) / COST_ITERS / 1000.0;
		thoth_mod_init(&pol, &pc);
		t0 = thread_ns();
		for (int i = 0; i < COST_ITERS; i++) {
			thoth_mod_sample_t sm = { 1000000000ull + (uint64_t)i * 10000000u, (uint64_t)i * 100,
						  (uint64_t)i * 5000u * (1 + (i & 1)), 0 };
			thoth_mod_update(&pol, &sm);
		}
		cost_policy[r] = (double)(thread_ns() - t0) / COST_ITERS / 1000.0;
		/* This machine's real /proc/interrupts, parsed. */
		unsetenv("THOTH_SYSFS_ROOT");
		t0 = thread_ns();
		for (int i = 0; i < COST_ITERS / 10; i++) {
			FILE *f = fopen("/proc/interrupts", "re");
			static char buf[1 << 20];
			size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
			if (f)
				fclose(f);
			uint64_t irqs;
			uint32_t q;
			thoth_nvme_parse_interrupts(buf, n, "nvme0", &irqs, &q, NULL, 0);
		}
		cost_proc[r] = (double)(thread_ns() - t0) / (COST_ITERS / 10) / 1000.0;
		setenv("THOTH_SYSFS_ROOT", root, 1);
	}
	atomic_store(&g.stop, true);
	pthread_join(th, NULL);

	printf("bench_nvme_loop: NVMe coalescing loop on a fixture tree with a fake controller (no NVMe here); "
	       "%d runs, medians\n", runs);
	double il = median(idle_loop, runs), ib = median(idle_base, runs);
	printf("  idle wake-ups/s:  loop %.1f   periodic 10 ms sampler (baseline) %.1f   ratio %.3f\n", il, ib,
	       ib > 0 ? il / ib : 0);
	int nw, nm, nd;
	double mw = median_valid(wake_ms, runs, &nw), mm = median_valid(mod_ms, runs, &nm),
	       md = median_valid(down_ms, runs, &nd);
	printf("  reaction at 500k completions/s (10 ms samples): woken %.3f ms after the first write began (%d runs), "
	       "moderated setting read back after %.1f ms (%d runs); unmoderated %.1f ms after the last write (%d runs: "
	       "a run whose loop had gone idle in a gap of the writer, as on a loaded machine, has nothing to time)\n",
	       mw, nw, mm, nm, md, nd);
	printf("  per run (ms): ");
	for (int r = 0; r < runs; r++)
		printf("%s%.1f/%.1f", r ? ", " : "", mod_ms[r], down_ms[r]);
	printf("  (moderated/unmoderated; -1: not measurable)\n");
	double cf = median(cost_full, runs), cp = median(cost_policy, runs);
	printf("  decision cost per sample (thread CPU): counters + policy + encode + fake set %.2f us; "
	       "policy alone (baseline) %.3f us; ratio %.0fx\n", cf, cp, cp > 0 ? cf / cp : 0);
	printf("  this machine's /proc/interrupts read + parsed: %.2f us per sample\n", median(cost_proc, runs));
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) ? 1 : 0;
}
