/*
 * bench_registry - thothd's registry measured through its real control
 * socket (IPC-4) and its idle behaviour (SCHED-2).
 *
 *   1. resolve round trip (p50/p99), one client, small registry, next to a
 *      raw Unix-socket ping-pong of the same size (the floor);
 *   2. resolves/s with 1, 2 and 4 client processes;
 *   3. 100,000 registrations: thothd RSS delta per registration, and resolve
 *      latency at that size (random names);
 *   4. idle wake-ups per minute of thothd with 3 services registered, next
 *      to a naive loop ticking every 10 ms.
 * Targets: resolve p99 < 20 us at 100k; thothd RSS < 64 MiB at 100k; 0 idle
 * wake-ups.  Default run < 60 s; BENCH_IDLE_SECONDS, BENCH_N change sizes.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void percentiles(uint64_t *v, size_t n, double *p50, double *p99)
{
	qsort(v, n, sizeof *v, cmp_u64);
	*p50 = (double)v[n / 2] / 1000.0;
	*p99 = (double)v[n * 99 / 100] / 1000.0;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static long voluntary_switches(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_registry: %s: %s\n", what, thoth_strerror(r));
	exit(1);
}

/* ---- 1. latency ------------------------------------------------------------------ */

static void resolve_latency(harness_t *h, const char *const *names, size_t n_names, size_t iters,
			    double *p50, double *p99)
{
	thoth_control_t ctl;
	int r = harness_connect(h, &ctl);
	if (r)
		die("connect", r);
	uint64_t *lat = malloc(iters * sizeof *lat);
	uint64_t seed = 88172645463325252ull;
	for (size_t i = 0; i < iters + 1000; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		const char *name = names[seed % n_names];
		uint64_t t0 = now_ns();
		r = harness_resolve(&ctl, name, NULL);
		uint64_t t1 = now_ns();
		if (r)
			die("resolve", r);
		if (i >= 1000)          /* warm-up */
			lat[i - 1000] = t1 - t0;
	}
	percentiles(lat, iters, p50, p99);
	free(lat);
	thoth_control_close(&ctl);
}

/* The floor: a request/response of similar size over a Unix stream socket
 * between two processes, with no thothd in between. */
static void socket_pingpong(size_t iters, double *p50, double *p99)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pid_t pid = fork();
	char buf[256];
	if (pid == 0) {
		close(sv[0]);
		for (;;) {
			ssize_t n = read(sv[1], buf, 96);
			if (n <= 0 || write(sv[1], buf, 232) != 232)
				_exit(0);
		}
	}
	close(sv[1]);
	memset(buf, 1, sizeof buf);
	uint64_t *lat = malloc(iters * sizeof *lat);
	for (size_t i = 0; i < iters + 1000; i++) {
		uint64_t t0 = now_ns();
		if (write(sv[0], buf, 96) != 96)
			break;
		size_t got = 0;
		while (got < 232) {
			ssize_t n = read(sv[0], buf, 232 - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (i >= 1000)
			lat[i - 1000] = now_ns() - t0;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	percentiles(lat, iters, p50, p99);
	free(lat);
}

/* ---- 2. throughput ------------------------------------------------------------------ */

static double resolves_per_second(harness_t *h, int clients, double seconds)
{
	int fds[8][2];
	pid_t pids[8];
	for (int c = 0; c < clients; c++) {
		if (pipe(fds[c]))
			die("pipe", THOTH_E_IO);
		pids[c] = fork();
		if (pids[c] == 0) {
			thoth_control_t ctl;
			if (harness_connect(h, &ctl))
				_exit(1);
			uint64_t end = now_ns() + (uint64_t)(seconds * 1e9), n = 0;
			while (now_ns() < end) {
				for (int k = 0; k < 64; k++)
					if (harness_resolve(&ctl, "echo", NULL) == 0)
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
	return (double)total / seconds;
}

/* ---- 3. 100k registrations ------------------------------------------------------------ */

static void register_many(harness_t *h, thoth_control_t *ctl, size_t n)
{
	char name[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof name, "svc%zu", i);
		int r = harness_register(ctl, name, 600000, NULL);
		if (r)
			die("register", r);
	}
}

/* ---- 4. idle ---------------------------------------------------------------------------- */

/* A loop that wakes every 10 ms whether or not there is work: the baseline. */
static void naive_tick_loop(double seconds, uint64_t *wakeups, long *switches)
{
	int p[2];
	if (pipe(p))
		return;
	pid_t pid = fork();
	if (pid == 0) {
		int ep = epoll_create1(0);
		struct epoll_event ev;
		uint64_t n = 0, end = now_ns() + (uint64_t)(seconds * 1e9);
		while (now_ns() < end) {
			epoll_wait(ep, &ev, 1, 10);
			n++;
		}
		if (write(p[1], &n, sizeof n) != sizeof n)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	long s0 = voluntary_switches(pid);
	if (read(p[0], wakeups, sizeof *wakeups) != sizeof *wakeups)
		*wakeups = 0;
	*switches = voluntary_switches(pid) - s0;
	close(p[0]);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc > 1) {         /* it takes none: junk is not "run everything" */
		fprintf(stderr, "usage: bench_registry   (no arguments; %s?)\n", argv[1]);
		return 2;
	}
	size_t big = getenv("BENCH_N") ? strtoul(getenv("BENCH_N"), NULL, 10) : 100000;
	double idle_s = getenv("BENCH_IDLE_SECONDS") ? atof(getenv("BENCH_IDLE_SECONDS")) : 10.0;
	const size_t iters = 50000;
	harness_t h;
	if (harness_setup(&h))
		die("temp dir", THOTH_E_IO);
	char max[32];
	snprintf(max, sizeof max, "%zu", big + 16);
	const char *args[] = { "--max-per-client", max, "--log-level", "error", NULL };
	if (harness_start_thothd(&h, args) <= 0)
		die("start thothd", THOTH_E_IO);

	/* Small registry: 3 services, 2 instances of echo. */
	thoth_control_t owner;
	int r = harness_connect(&h, &owner);
	if (r)
		die("connect", r);
	const char *small[] = { "echo", "codex", "power" };
	for (int i = 0; i < 3; i++)
		if ((r = harness_register(&owner, small[i], 600000, NULL)) ||
		    (i == 0 && (r = harness_register(&owner, small[i], 600000, NULL))))
			die("register", r);

	printf("1. resolve round trip through thothd (1 client, %zu calls)\n", iters);
	double p50, p99, b50, b99;
	socket_pingpong(iters, &b50, &b99);
	resolve_latency(&h, small, 1, iters, &p50, &p99);
	printf("   %-34s %9s %9s\n", "", "p50 us", "p99 us");
	printf("   %-34s %9.1f %9.1f\n", "thothd resolve (4 registrations)", p50, p99);
	printf("   %-34s %9.1f %9.1f   ratio %.1fx p50\n", "baseline: raw socket ping-pong", b50,
	       b99, p50 / b50);

	printf("\n2. resolves/s (each client: blocking round trips, 2 s)\n");
	double one = 0;
	for (int c = 1; c <= 4; c *= 2) {
		double rate = resolves_per_second(&h, c, 2.0);
		if (c == 1)
			one = rate;
		printf("   %d client%s %10.0f resolves/s   (%.2fx of 1 client)\n", c, c > 1 ? "s" : " ",
		       rate, rate / one);
	}

	printf("\n3. registry at %zu registrations\n", big);
	long rss0 = rss_kib(h.thothd);
	uint64_t t0 = now_ns();
	register_many(&h, &owner, big);
	double reg_s = (double)(now_ns() - t0) / 1e9;
	long rss1 = rss_kib(h.thothd);
	printf("   registered %zu in %.2f s (%.1f us each, round trips from one client)\n", big, reg_s,
	       reg_s * 1e6 / (double)big);
	printf("   thothd RSS %ld KiB -> %ld KiB: %.0f bytes per registration (target: < 64 MiB total)\n",
	       rss0, rss1, (double)(rss1 - rss0) * 1024.0 / (double)big);
	char **names = malloc(big * sizeof *names);
	for (size_t i = 0; i < big; i++) {
		names[i] = malloc(32);
		snprintf(names[i], 32, "svc%zu", i);
	}
	resolve_latency(&h, (const char *const *)names, big, iters, &p50, &p99);
	printf("   resolve of random names: p50 %.1f us, p99 %.1f us (target p99 < 20 us)\n", p50, p99);
	for (size_t i = 0; i < big; i++)
		free(names[i]);
	free(names);
	thoth_control_close(&owner);    /* peer death: 100k removed at once */

	printf("\n4. idle wake-ups (%.0f s window, 3 services registered, scaled to per minute)\n",
	       idle_s);
	thoth_control_t svc, probe;
	if ((r = harness_connect(&h, &svc)) || (r = harness_connect(&h, &probe)))
		die("connect", r);
	for (int i = 0; i < 3; i++)
		if ((r = harness_register(&svc, small[i], 600000, NULL)))
			die("register", r);
	thoth_daemon_Daemon_status_resp_t st0, st1;
	harness_status(&probe, &st0);
	long s0 = voluntary_switches(h.thothd);
	uint64_t naive_wakeups = 0;
	long naive_switches = 0;
	naive_tick_loop(idle_s, &naive_wakeups, &naive_switches);   /* runs during the window */
	long s1 = voluntary_switches(h.thothd);
	harness_status(&probe, &st1);
	double per_min = 60.0 / idle_s;
	uint64_t thothd_wakeups = st1.wakeups - st0.wakeups - 1;    /* minus our status call */
	printf("   %-32s %12s %14s\n", "", "wake-ups/min", "ctx switches/min");
	printf("   %-32s %12.0f %14.0f\n", "thothd (tickless)", (double)thothd_wakeups * per_min,
	       (double)(s1 - s0) * per_min);
	printf("   %-32s %12.0f %14.0f\n", "baseline: naive 10 ms tick loop",
	       (double)naive_wakeups * per_min, (double)naive_switches * per_min);
	thoth_control_close(&svc);
	thoth_control_close(&probe);
	harness_teardown(&h);
	return 0;
}
