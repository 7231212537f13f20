/*
 * bench_channel - round trips between two processes pinned to two CPUs:
 * thoth channels (spin-then-sleep and always-sleep) against pipe, Unix
 * stream, Unix seqpacket and eventfd + shared-memory copy, all in one run.
 *
 * A round trip: the client sends a PAYLOAD-byte message; the service reads
 * its first and last byte and answers with a 64-byte ack.  The payload is
 * produced once, outside the timed loop, in every transport: the baselines
 * send a prefilled buffer (the kernel copies it), the thoth client builds
 * the message in a shared pool buffer and writes only its first and last
 * byte (the service reads it where it lies).  See docs/BENCHMARKS.md.
 *
 * Then the placement matrix of issue 13 section 5: {one CPU, two CPUs,
 * unpinned, unpinned with a busy hog on the last CPU} x {thoth default,
 * thoth with a 1 ms spin budget, thoth always-sleep, pipe, Unix stream,
 * seqpacket, eventfd + shm, futex + shm, busy-polled shm, epoll + shm} at 64 B and
 * 64 KiB, with the targets checked at the end.
 *
 *   bench_channel [--quick] [--sizes 64,4096,...] [--runs N] [--cpus C,S] [--send-stamps]
 *                 [--matrix [--placement ROW,...] [--only KIND,...] [--iters N]]
 *                 [--placement-long SECONDS [--runs N]]
 * --placement-long: placement's rule 6 over seconds (unpinned pair, placement
 * on / off, unix-stream, then a hog on the CPU the service was moved to).
 * --send-stamps: every thoth service asks its clients for send stamps (one
 * clock read per request on the client: docs/IPC.md "Send stamps").
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_baseline.h"
#include "bench.thoth.h"
#include "bench_sink.h"
#include "thoth/channel.h"
#include "thoth/trace.h"

static int on_cpu(void *self, const thoth_bench_Bench_cpu_req_t *req,
		  thoth_bench_Bench_cpu_resp_t *resp, thoth_arena_t *arena)
{
	resp->ns = bench_cpu_ns();
	return 0;
}

static const thoth_bench_Bench_handlers_t handlers = { .sink = on_sink, .cpu = on_cpu };

/* --send-stamps: the service asks its clients for send stamps (the cost of
 * the channel's stamp, docs/IPC.md "Send stamps"). */
static bool send_stamps;

static pid_t start_service(const char *path, thoth_chan_wait_t wait, uint32_t spin_ns, int cpu)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	bench_pin_cpu(cpu);
	thoth_chan_server_config_t cfg = {
		.path = path, .iface = &thoth_bench_Bench_info, .invoke = thoth_bench_Bench_invoke,
		.handlers = &handlers, .wait = wait, .spin_ns = spin_ns, .send_stamps = send_stamps,
	};
	_exit(thoth_serve(&cfg) ? 1 : 0);   /* until the SIGTERM of thoth_rt */
}

/* SPIN_NS: the adaptive spin's upper bound (0 = THOTH_CHAN_DEFAULT_SPIN_NS). */
static int thoth_rt_spin(thoth_chan_wait_t wait, uint32_t spin_ns, size_t payload, unsigned warmup,
			 unsigned iters, int cpu_client, int cpu_server, bench_rt_result_t *out)
{
	char path[128];
	snprintf(path, sizeof path, "/tmp/thoth-bench-%d.sock", (int)getpid());
	unlink(path);
	pid_t pid = start_service(path, wait, spin_ns, cpu_server);
	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	bench_pin_cpu(cpu_client);
	thoth_chan_t *ch = NULL;
	thoth_chan_config_t cfg = { .iface = &thoth_bench_Bench_info, .wait = wait, .spin_ns = spin_ns };
	char why[300];
	int r = -1;
	for (int i = 0; i < 200; i++) {
		if (!thoth_chan_connect(path, &cfg, &ch, why, sizeof why))
			break;
		usleep(5000);
	}
	double *lat = calloc(iters, sizeof *lat);
	if (!ch || !lat) {
		fprintf(stderr, "bench_channel: cannot open a channel: %s\n", why);
		goto out;
	}
	thoth_client_t *c = thoth_chan_client(ch);
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_bench_Bench_cpu_resp_t c0, c1;
	thoth_bench_Bench_cpu_req_t creq = { 0 };
	uint64_t t_start = 0, cpu_start = 0;
	for (unsigned i = 0; i < warmup + iters; i++) {
		if (i == warmup) {
			thoth_arena_init(&a, ab, sizeof ab);
			if (thoth_bench_Bench_cpu(c, &creq, &c0, &a))
				goto out;
			cpu_start = bench_cpu_ns();
			t_start = bench_now_ns();
		}
		uint64_t t0 = bench_now_ns();
		uint8_t *where;
		thoth_bench_Bench_sink_req_t rq = {
			.data = { .len = (uint32_t)payload, .reserve = &where, .uninit = true },
		};
		thoth_call_t call;
		thoth_bench_Bench_sink_resp_t rs;
		thoth_arena_init(&a, ab, sizeof ab);
		if ((r = thoth_client_begin(c, &thoth_bench_Bench_sink_info, &rq, &call)))
			goto out;
		where[0] = (uint8_t)i;
		where[payload - 1] = (uint8_t)(i >> 8);
		if ((r = thoth_client_commit(c, &call, &rs, &a)) || rs.ack.ptr[0] != (uint8_t)i) {
			fprintf(stderr, "bench_channel: call failed: %s\n", thoth_strerror(r));
			r = -1;
			goto out;
		}
		if (i >= warmup)
			lat[i - warmup] = (double)(bench_now_ns() - t0);
	}
	uint64_t elapsed = bench_now_ns() - t_start;
	uint64_t client_cpu = bench_cpu_ns() - cpu_start;
	thoth_arena_init(&a, ab, sizeof ab);
	if (thoth_bench_Bench_cpu(c, &creq, &c1, &a))
		goto out;
	out->p50_ns = bench_percentile(lat, iters, 50);
	out->p99_ns = bench_percentile(lat, iters, 99);
	out->msgs_per_s = iters / (elapsed / 1e9);
	out->client_cpu_ns = (double)client_cpu / iters;
	out->server_cpu_ns = (double)(c1.ns - c0.ns) / iters;
	r = 0;
out:
	free(lat);
	thoth_chan_close(ch);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
	sched_setaffinity(0, sizeof saved, &saved);
	return r;
}

static int thoth_rt(thoth_chan_wait_t wait, size_t payload, unsigned warmup, unsigned iters,
		    int cpu_client, int cpu_server, bench_rt_result_t *out)
{
	return thoth_rt_spin(wait, 0, payload, warmup, iters, cpu_client, cpu_server, out);
}

typedef struct row {
	const char *name;
	bench_rt_result_t res;
	bool ok;
} row_t;

static unsigned iters_for(size_t size, bool quick)
{
	unsigned n = size <= 4096 ? 20000 : size <= 65536 ? 5000 : size <= (1u << 20) ? 500 : 60;
	return quick ? (n / 10 ? n / 10 : 10) : n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Round trips per cell of the placement matrix at 64 B (a quarter at 64
 * KiB); 0 = iters_for(). */
static unsigned matrix_iters;

/* Median of RUNS runs of one configuration, field by field. */
static bool measure(const char *kind, size_t size, unsigned runs, bool quick, int cc, int cs,
		    bench_rt_result_t *out)
{
	enum { MAXR = 9 };
	double v[5][MAXR];
	unsigned n = 0;
	uint64_t refused = 0;
	for (unsigned k = 0; k < runs && k < MAXR; k++) {
		bench_rt_result_t r = { 0 };
		unsigned it = iters_for(size, quick);
		if (matrix_iters)
			it = size <= 4096 ? matrix_iters : matrix_iters / 4 + 1;
		int rc = !strcmp(kind, "thoth-spin-1ms") ? thoth_rt_spin(THOTH_CHAN_SPIN, 1000000, size, it / 10 + 5, it, cc, cs, &r)
			 : !strcmp(kind, "thoth-default") || !strcmp(kind, "thoth-spin")
						? thoth_rt(THOTH_CHAN_SPIN, size, it / 10 + 5, it, cc, cs, &r)
			 : !strcmp(kind, "thoth-sleep") ? thoth_rt(THOTH_CHAN_SLEEP, size, it / 10 + 5, it, cc, cs, &r)
							: bench_baseline_rt(kind, size, it / 10 + 5, it, cc, cs, &r);
		if (rc)
			return false;
		v[0][n] = r.p50_ns;
		v[1][n] = r.p99_ns;
		v[2][n] = r.msgs_per_s;
		v[3][n] = r.client_cpu_ns;
		v[4][n] = r.server_cpu_ns;
		refused += r.refused_bells;
		n++;
	}
	for (int f = 0; f < 5; f++)
		qsort(v[f], n, sizeof v[f][0], cmp_double);
	out->p50_ns = v[0][n / 2];
	out->p99_ns = v[1][n / 2];
	out->msgs_per_s = v[2][n / 2];
	out->client_cpu_ns = v[3][n / 2];
	out->server_cpu_ns = v[4][n / 2];
	out->refused_bells = refused;   /* a count: summed over the runs */
	return true;
}

/* ---- the placement matrix (issue 13 section 5) --------------------------- */

typedef struct placement {
	const char *name;
	int cc, cs;     /* client, service CPU (BENCH_CPU_ANY: unpinned) */
	bool hog;       /* a busy process pinned to the last CPU */
} placement_t;

static const char *const mx_kinds[] = {
	"thoth-default", "thoth-spin-1ms", "thoth-sleep", "pipe", "unix-stream",
	"unix-seqpacket", "eventfd-shm", "futex-shm", "spin-shm", "epoll-shm",
};
enum { MX_K = sizeof mx_kinds / sizeof mx_kinds[0], MX_THOTH = 3, MX_P = 4, MX_S = 2, MX_EPOLL = 9 };

/* --placement NAME[,NAME] / --only KIND[,KIND]: only these rows and
 * transports of the matrix (NULL = all). */
static const char *mx_only, *mx_kinds_only;

/* --iters N: round trips per 64 B cell (N / 4 + 1 at 64 KiB) instead of
 * 5000 (1000 with --quick); --sizes with --matrix: only the listed ones of
 * its two sizes (64 and 65536). For instruction counts under valgrind: two
 * runs that differ only in N, subtracted, give one round trip's work. */
static unsigned mx_iters_arg;
static bool mx_size_only[2] = { true, true };

static bool in_list(const char *list, const char *name)
{
	if (!list)
		return true;
	size_t n = strlen(name);
	for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
			return true;
	return false;
}

static bool mx_wanted(const char *name)
{
	return in_list(mx_only, name);
}

static int matrix(unsigned runs, bool quick)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const placement_t pl[MX_P] = {
		{ "one-cpu", 0, 0, false },
		{ "two-cpus", 0, 1, false },
		{ "unpinned", BENCH_CPU_ANY, BENCH_CPU_ANY, false },
		{ "unpinned+hog", BENCH_CPU_ANY, BENCH_CPU_ANY, true },
	};
	const size_t sizes[MX_S] = { 64, 65536 };
	static bench_rt_result_t res[MX_P][MX_S][MX_K];
	static bool ok[MX_P][MX_S][MX_K];
	matrix_iters = mx_iters_arg ? mx_iters_arg : quick ? 1000 : 5000;
	printf("\n# placement matrix: %u round trips per cell at 64 B, %u at 64 KiB, median of %u run(s);\n"
	       "# cpu = CPU ns per round trip, client + service; hog = a busy loop pinned to CPU %ld\n",
	       matrix_iters, matrix_iters / 4 + 1, runs, ncpu - 1);
	printf("%-13s %-15s %7s %9s %10s %9s\n", "placement", "transport", "payload", "p50_ns", "p99_ns",
	       "cpu_ns");
	for (unsigned p = 0; p < MX_P; p++) {
		if (!mx_wanted(pl[p].name))
			continue;
		if (ncpu < 2 && (pl[p].cs == 1 || pl[p].hog)) {
			printf("%-13s (needs 2 CPUs)\n", pl[p].name);
			continue;
		}
		pid_t hog = pl[p].hog ? bench_start_hog((int)ncpu - 1) : -1;
		for (unsigned s = 0; s < MX_S; s++)
			for (unsigned k = 0; k < MX_K; k++) {
				bench_rt_result_t *r = &res[p][s][k];
				if (!in_list(mx_kinds_only, mx_kinds[k]) || !mx_size_only[s]) {
					ok[p][s][k] = false;
					continue;
				}
				ok[p][s][k] = measure(mx_kinds[k], sizes[s], runs, quick, pl[p].cc, pl[p].cs, r);
				if (!ok[p][s][k]) {
					printf("%-13s %-15s %7zu    failed\n", pl[p].name, mx_kinds[k], sizes[s]);
					continue;
				}
				printf("%-13s %-15s %7zu %9.0f %10.0f %9.0f\n", pl[p].name, mx_kinds[k], sizes[s],
				       r->p50_ns, r->p99_ns, r->client_cpu_ns + r->server_cpu_ns);
				fflush(stdout);
			}
		if (hog > 0) {
			kill(hog, SIGKILL);
			waitpid(hog, NULL, 0);
		}
	}
	matrix_iters = 0;

	printf("\n# per cell: thoth-default p50 / best baseline p50 (target <= 1.10), and which baseline\n");
	unsigned cells = 0, met = 0;
	for (unsigned p = 0; p < MX_P; p++)
		for (unsigned s = 0; s < MX_S; s++) {
			if (!ok[p][s][0])
				continue;
			int best = -1;
			for (unsigned k = MX_THOTH; k < MX_K; k++)
				if (ok[p][s][k] && (best < 0 || res[p][s][k].p50_ns < res[p][s][best].p50_ns))
					best = (int)k;
			if (best < 0)
				continue;
			double ratio = res[p][s][0].p50_ns / res[p][s][best].p50_ns;
			cells++;
			met += ratio <= 1.10;
			printf("%-13s %7zu  %6.2fx  (best: %s %.0f ns; thoth-default %.0f ns)%s\n", pl[p].name,
			       sizes[s], ratio, mx_kinds[best], res[p][s][best].p50_ns, res[p][s][0].p50_ns,
			       ratio <= 1.10 ? "" : "  NOT MET");
		}
	printf("cells within 10%% of the best baseline: %u of %u\n", met, cells);

	/* The bound of each kind of cell (docs/SCHED.md "Placement matrix"):
	 * a service that sleeps on an event loop cannot beat epoll-shm (the
	 * same wake-up path with no protocol at all), and a thoth waiter that
	 * spins only while its peer runs elsewhere cannot beat spin-shm. */
	printf("\n# bounds: thoth-default / epoll-shm (an event-loop service's wake-up path with no protocol:\n"
	       "# what a service waiting on many channels and fds pays; futex-shm waits on ONE word)\n");
	for (unsigned p = 0; p < MX_P; p++)
		for (unsigned s = 0; s < MX_S; s++)
			if (ok[p][s][0] && ok[p][s][MX_EPOLL] && ok[p][s][7])
				printf("%-13s %7zu  thoth-default / epoll-shm %.2fx; epoll-shm / futex-shm %.2fx"
				       " (epoll-shm bells refused, all runs: %llu)\n",
				       pl[p].name, sizes[s], res[p][s][0].p50_ns / res[p][s][MX_EPOLL].p50_ns,
				       res[p][s][MX_EPOLL].p50_ns / res[p][s][7].p50_ns,
				       (unsigned long long)res[p][s][MX_EPOLL].refused_bells);

	printf("\n# the other targets of issue 13 section 5\n");
	for (unsigned s = 0; s < MX_S; s++) {
		if (ok[0][s][0] && ok[0][s][2]) {
			double q = res[0][s][0].p50_ns / res[0][s][2].p50_ns;
			printf("one CPU, %zu B: thoth-default / thoth-sleep p50 = %.2fx (no spin pathology: target <= 1.2) %s\n",
			       sizes[s], q, q <= 1.2 ? "met" : "NOT MET");
		}
		if (ok[2][s][2] && ok[2][s][4]) {
			double q = res[2][s][4].p50_ns / res[2][s][2].p50_ns;
			printf("unpinned, %zu B: unix-stream / thoth-sleep p50 = %.2fx (target >= 10) %s\n",
			       sizes[s], q, q >= 10 ? "met" : "NOT MET");
		}
		/* What placement can do at best when unpinned: co-locate the
		 * sleeping pair (the service follows its client: the one-CPU
		 * row), against a Unix socket wherever the kernel put it. */
		if (ok[2][s][4] && ok[0][s][2]) {
			double q = res[2][s][4].p50_ns / res[0][s][2].p50_ns;
			printf("unpinned, %zu B: unix-stream unpinned / thoth-sleep co-located (one CPU: what placement's "
			       "move gives) = %.2fx: placement's ceiling here\n", sizes[s], q);
		}
		if (ok[1][s][1] && ok[1][s][8]) {
			double q = res[1][s][1].p50_ns / res[1][s][8].p50_ns;
			printf("two CPUs, %zu B: thoth-spin-1ms / spin-shm p50 = %.2fx (target <= 2.5) %s\n",
			       sizes[s], q, q <= 2.5 ? "met" : "NOT MET");
		}
	}
	return 0;
}


/* ---- --placement-long: placement's rule 6 over seconds (docs/SCHED.md "Apart") ---- */

/*
 * The matrix's cells last 15-90 ms and placement judges one-second
 * windows, so the matrix never sees a move.  Here an unpinned
 * thoth-default pair calls back to back for SECONDS with placement on and
 * with THOTH_PLACEMENT=off, and a Unix stream pair for the same time, in
 * one run; the round trips are cut into phases wherever the service's
 * affinity changes (a move, read every 20 ms) or a hog starts.
 */
enum { LH_BUCKET_NS = 10, LH_BUCKETS = 100000, LH_PHASES = 8 };     /* 10 ns bins to 1 ms */

typedef struct lphase {
	char what[80];                  /* "service on CPU 1 + hog there", ... */
	char aff[48];                   /* the service's affinity alone: "service on CPU 1" */
	uint64_t t0, t1;                /* wall clock */
	uint64_t calls, cpu_ns;         /* round trips, client + service CPU */
	uint32_t *hist;                 /* LH_BUCKETS + 1 (the last: 1 ms or more) */
} lphase_t;

static double lh_p50(const lphase_t *ph)
{
	uint64_t want = (ph->calls + 1) / 2, seen = 0;
	for (unsigned b = 0; b <= LH_BUCKETS; b++)
		if ((seen += ph->hist[b]) >= want && want)
			return (b + 0.5) * LH_BUCKET_NS;
	return 0;
}

/* This thread's CPU time plus the service's (its main thread serves). */
static uint64_t pair_cpu(pid_t svc)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/schedstat", (int)svc);
	unsigned long long v = 0;
	FILE *f = fopen(p, "re");
	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) + v;
}

static void aff_name(pid_t pid, char *out, size_t cap, int *one)
{
	cpu_set_t set;
	*one = -1;
	if (sched_getaffinity(pid, sizeof set, &set)) {
		snprintf(out, cap, "?");
		return;
	}
	if (CPU_COUNT(&set) == 1)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set)) {
				*one = c;
				snprintf(out, cap, "service on CPU %d", c);
				return;
			}
	snprintf(out, cap, "service on every CPU");
}

typedef struct long_res {
	lphase_t ph[LH_PHASES];
	unsigned nph;
	double p50, cpu_per_rt;          /* the whole run */
	uint64_t calls;
} long_res_t;

/* One thoth-default pair, both unpinned, back to back for SECONDS;
 * placement as THOTH_PLACEMENT says (PLACEMENT false: "off").  HOG: once
 * the service is moved to one CPU, a busy process is pinned there.
 * BY_HAND: at a third of SECONDS the bench itself pins the service to a
 * CPU other than the client's (what rule 6's move gives, whatever the
 * machine's load; placement then counts it as the user's pin). */
static int long_thoth(bool placement, bool hog, bool by_hand, double seconds, long_res_t *out)
{
	char path[128];
	snprintf(path, sizeof path, "/tmp/thoth-bench-long-%d.sock", (int)getpid());
	unlink(path);
	if (placement)
		unsetenv("THOTH_PLACEMENT");
	else
		setenv("THOTH_PLACEMENT", "off", 1);
	pid_t pid = start_service(path, THOTH_CHAN_SPIN, 0, BENCH_CPU_ANY);
	unsetenv("THOTH_PLACEMENT");
	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	bench_pin_cpu(BENCH_CPU_ANY);
	thoth_chan_t *ch = NULL;
	thoth_chan_config_t cfg = { .iface = &thoth_bench_Bench_info, .wait = THOTH_CHAN_SPIN };
	char why[300];
	int r = -1;
	pid_t hog_pid = -1;
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < LH_PHASES; i++)
		if (!(out->ph[i].hist = calloc(LH_BUCKETS + 1, sizeof *out->ph[i].hist)))
			goto out;
	for (int i = 0; i < 200; i++) {
		if (!thoth_chan_connect(path, &cfg, &ch, why, sizeof why))
			break;
		usleep(5000);
	}
	if (!ch) {
		fprintf(stderr, "bench_channel: cannot open a channel: %s\n", why);
		goto out;
	}
	thoth_client_t *c = thoth_chan_client(ch);
	uint64_t ab[64];
	thoth_arena_t a;
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(seconds * 1e9), next_look = 0;
	uint64_t cpu0 = pair_cpu(pid);
	int one = -1;
	lphase_t *ph = &out->ph[0];
	aff_name(pid, ph->aff, sizeof ph->aff, &one);
	snprintf(ph->what, sizeof ph->what, "%s", ph->aff);
	ph->t0 = start;
	uint64_t ph_cpu0 = cpu0;
	for (uint64_t i = 0;; i++) {
		uint64_t t0 = bench_now_ns();
		if (t0 >= end)
			break;
		if (by_hand && t0 >= start + (uint64_t)(seconds * 1e9 / 3)) {
			by_hand = false;
			cpu_set_t away;
			CPU_ZERO(&away);
			int here = sched_getcpu();
			CPU_SET(here == 0 ? 1 : 0, &away);
			if (sched_setaffinity(pid, sizeof away, &away))
				perror("bench_channel: moving the service by hand");
			next_look = 0;
		}
		if (t0 >= next_look) {
			next_look = t0 + 20000000;
			char now_what[48];
			int now_one;
			aff_name(pid, now_what, sizeof now_what, &now_one);
			bool start_hog = hog && hog_pid < 0 && now_one >= 0;
			if ((strcmp(now_what, ph->aff) || start_hog) && out->nph + 1 < LH_PHASES) {
				uint64_t cpu = pair_cpu(pid);
				ph->t1 = t0;
				ph->cpu_ns = cpu - ph_cpu0;
				ph_cpu0 = cpu;
				ph = &out->ph[++out->nph];
				ph->t0 = t0;
				snprintf(ph->aff, sizeof ph->aff, "%s", now_what);
				if (start_hog) {
					hog_pid = bench_start_hog(now_one);
					snprintf(ph->what, sizeof ph->what, "%s + hog there", now_what);
				} else {
					snprintf(ph->what, sizeof ph->what, "%s%s", now_what, hog_pid > 0 ? " (hog on)" : "");
				if (!placement && now_one >= 0)
					snprintf(ph->what, sizeof ph->what, "%s, by hand", now_what);
				}
			}
		}
		uint8_t *where;
		thoth_bench_Bench_sink_req_t rq = { .data = { .len = 64, .reserve = &where, .uninit = true } };
		thoth_call_t call;
		thoth_bench_Bench_sink_resp_t rs;
		thoth_arena_init(&a, ab, sizeof ab);
		if ((r = thoth_client_begin(c, &thoth_bench_Bench_sink_info, &rq, &call)))
			goto out;
		where[0] = (uint8_t)i;
		where[63] = (uint8_t)(i >> 8);
		if ((r = thoth_client_commit(c, &call, &rs, &a)) || rs.ack.ptr[0] != (uint8_t)i) {
			fprintf(stderr, "bench_channel: call failed: %s\n", thoth_strerror(r));
			r = -1;
			goto out;
		}
		uint64_t ns = bench_now_ns() - t0, b = ns / LH_BUCKET_NS;
		ph->hist[b < LH_BUCKETS ? b : LH_BUCKETS]++;
		ph->calls++;
	}
	uint64_t cpu1 = pair_cpu(pid);
	ph->t1 = bench_now_ns();
	ph->cpu_ns = cpu1 - ph_cpu0;
	out->nph++;
	/* The whole run: every phase's histogram summed into the first. */
	lphase_t all = { .hist = calloc(LH_BUCKETS + 1, sizeof *all.hist) };
	if (!all.hist)
		goto out;
	for (unsigned p = 0; p < out->nph; p++) {
		all.calls += out->ph[p].calls;
		for (unsigned b = 0; b <= LH_BUCKETS; b++)
			all.hist[b] += out->ph[p].hist[b];
	}
	out->calls = all.calls;
	out->p50 = lh_p50(&all);
	out->cpu_per_rt = all.calls ? (double)(cpu1 - cpu0) / (double)all.calls : 0;
	free(all.hist);
	r = 0;
out:
	if (hog_pid > 0) {
		kill(hog_pid, SIGKILL);
		waitpid(hog_pid, NULL, 0);
	}
	thoth_chan_close(ch);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(path);
	sched_setaffinity(0, sizeof saved, &saved);
	return r;
}

static void long_free(long_res_t *r)
{
	for (unsigned i = 0; i < LH_PHASES; i++)
		free(r->ph[i].hist);
}

static void long_print(const char *name, const long_res_t *r)
{
	printf("%-26s %10llu %9.0f %9.0f\n", name, (unsigned long long)r->calls, r->p50, r->cpu_per_rt);
	for (unsigned p = 0; p < r->nph; p++) {
		const lphase_t *ph = &r->ph[p];
		printf("    %6.2f-%6.2f s %-32s %10llu rt  p50 %9.0f ns  cpu/rt %9.0f ns\n",
		       (ph->t0 - r->ph[0].t0) / 1e9, (ph->t1 - r->ph[0].t0) / 1e9, ph->what,
		       (unsigned long long)ph->calls, lh_p50(ph), ph->calls ? (double)ph->cpu_ns / ph->calls : 0);
	}
	fflush(stdout);
}

/* p50 of the phase that ran longest with the service on one CPU (apart),
 * and of the first phase (before any move); 0 when there was none. */
static void long_apart(const long_res_t *r, double *before, double *apart)
{
	*before = r->nph ? lh_p50(&r->ph[0]) : 0;
	*apart = 0;
	uint64_t longest = 0;
	for (unsigned p = 1; p < r->nph; p++)
		if (strstr(r->ph[p].what, "on CPU") && !strstr(r->ph[p].what, "hog") &&
		    r->ph[p].t1 - r->ph[p].t0 > longest) {
			longest = r->ph[p].t1 - r->ph[p].t0;
			*apart = lh_p50(&r->ph[p]);
		}
}

static int placement_long(double seconds, unsigned runs)
{
	enum { MAXR = 15 };
	if (runs > MAXR)
		runs = MAXR;
	double on_p50[MAXR], on_cpu[MAXR], off_p50[MAXR], off_cpu[MAXR], ux_p50[MAXR], ux_cpu[MAXR];
	double before[MAXR], apart[MAXR];
	double r_off[MAXR], r_offc[MAXR], r_ux[MAXR], r_uxc[MAXR];
	double by_hand_before[MAXR] = { 0 }, by_hand_apart[MAXR] = { 0 }, by_hand_cpu[MAXR] = { 0 }, by_hand_cpu0[MAXR] = { 0 };
	unsigned moved = 0, nb = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("# placement-long: 64 B round trips back to back, client and service unpinned, %.1f s a cell,\n"
	       "# %u run(s), cell order reversed every other run; cpu/rt = client + service CPU per round trip;\n"
	       "# phases cut where the service's affinity changed (read every 20 ms); %ld CPUs\n",
	       seconds, runs, ncpu);
	for (unsigned k = 0; k < runs; k++) {
		char la[64] = "";
		FILE *f = fopen("/proc/loadavg", "re");
		if (f) {
			if (!fgets(la, sizeof la, f))
				la[0] = 0;
			fclose(f);
			la[strcspn(la, "\n")] = 0;
		}
		printf("\n# run %u (load %s)\n%-26s %10s %9s %9s\n", k + 1, la, "cell", "calls", "p50_ns", "cpu/rt");
		long_res_t on, off;
		bench_rt_result_t ux = { 0 };
		for (unsigned step = 0; step < 3; step++) {
			unsigned which = k % 2 ? 2 - step : step;
			if (which == 0) {
				if (long_thoth(true, false, false, seconds, &on))
					return 1;
				long_print("thoth-default placement", &on);
			} else if (which == 1) {
				if (long_thoth(false, false, false, seconds, &off))
					return 1;
				long_print("thoth-default THOTH_PLACEMENT=off", &off);
			} else {
				/* ~25 us a round trip unpinned here: about SECONDS long. */
				unsigned it = (unsigned)(seconds * 40000);
				if (bench_baseline_rt("unix-stream", 64, it / 20 + 5, it, BENCH_CPU_ANY, BENCH_CPU_ANY, &ux))
					return 1;
				printf("%-26s %10u %9.0f %9.0f\n", "unix-stream", it, ux.p50_ns,
				       ux.client_cpu_ns + ux.server_cpu_ns);
			}
		}
		on_p50[k] = on.p50;
		on_cpu[k] = on.cpu_per_rt;
		off_p50[k] = off.p50;
		off_cpu[k] = off.cpu_per_rt;
		ux_p50[k] = ux.p50_ns;
		ux_cpu[k] = ux.client_cpu_ns + ux.server_cpu_ns;
		r_off[k] = off.p50 / on.p50;
		r_offc[k] = off.cpu_per_rt / on.cpu_per_rt;
		r_ux[k] = ux.p50_ns / on.p50;
		r_uxc[k] = ux_cpu[k] / on.cpu_per_rt;
		double b, ap;
		long_apart(&on, &b, &ap);
		if (ap > 0) {
			before[nb] = b;
			apart[nb++] = ap;
			moved++;
		}
		printf("run %u: off / on p50 %.2fx, cpu/rt %.2fx; unix-stream / on p50 %.2fx, cpu/rt %.2fx; %s\n", k + 1,
		       off.p50 / on.p50, off.cpu_per_rt / on.cpu_per_rt, ux.p50_ns / on.p50,
		       ux_cpu[k] / on.cpu_per_rt, ap > 0 ? "the service was moved apart" : "no move apart");
		long_free(&on);
		long_free(&off);
		if (ncpu >= 2) {
			long_res_t h;
			if (long_thoth(true, true, false, seconds, &h))
				return 1;
			long_print("placement, hog once apart", &h);
			long_free(&h);
			if (long_thoth(false, false, true, seconds, &h))
				return 1;
			long_print("off, moved apart by hand", &h);
			double b2, a2;
			long_apart(&h, &b2, &a2);
			by_hand_before[k] = b2;
			by_hand_apart[k] = a2;
			by_hand_cpu[k] = h.nph > 1 && h.ph[1].calls ? (double)h.ph[1].cpu_ns / h.ph[1].calls : 0;
			by_hand_cpu0[k] = h.ph[0].calls ? (double)h.ph[0].cpu_ns / h.ph[0].calls : 0;
			long_free(&h);
		}
	}
	qsort(on_p50, runs, sizeof(double), cmp_double);
	qsort(on_cpu, runs, sizeof(double), cmp_double);
	qsort(off_p50, runs, sizeof(double), cmp_double);
	qsort(off_cpu, runs, sizeof(double), cmp_double);
	qsort(ux_p50, runs, sizeof(double), cmp_double);
	qsort(ux_cpu, runs, sizeof(double), cmp_double);
	printf("\n# medians of %u run(s)\n", runs);
	printf("thoth-default placement on:  p50 %8.0f ns  cpu/rt %8.0f ns\n", on_p50[runs / 2], on_cpu[runs / 2]);
	printf("thoth-default placement off: p50 %8.0f ns  cpu/rt %8.0f ns\n", off_p50[runs / 2], off_cpu[runs / 2]);
	printf("unix-stream:                 p50 %8.0f ns  cpu/rt %8.0f ns\n", ux_p50[runs / 2], ux_cpu[runs / 2]);
	qsort(r_off, runs, sizeof(double), cmp_double);
	qsort(r_offc, runs, sizeof(double), cmp_double);
	qsort(r_ux, runs, sizeof(double), cmp_double);
	qsort(r_uxc, runs, sizeof(double), cmp_double);
	printf("per-run ratios, median (range): off / on p50 %.2fx (%.2f-%.2f), cpu/rt %.2fx; "
	       "unix-stream / on p50 %.2fx (%.2f-%.2f), cpu/rt %.2fx\n",
	       r_off[runs / 2], r_off[0], r_off[runs - 1], r_offc[runs / 2], r_ux[runs / 2], r_ux[0],
	       r_ux[runs - 1], r_uxc[runs / 2]);
	if (ncpu >= 2) {
		qsort(by_hand_before, runs, sizeof(double), cmp_double);
		qsort(by_hand_apart, runs, sizeof(double), cmp_double);
		qsort(by_hand_cpu0, runs, sizeof(double), cmp_double);
		qsort(by_hand_cpu, runs, sizeof(double), cmp_double);
		printf("moved apart by hand (placement off): p50 before %.0f ns, apart %.0f ns (%.2fx); cpu/rt %.0f -> %.0f ns\n",
		       by_hand_before[runs / 2], by_hand_apart[runs / 2],
		       by_hand_apart[runs / 2] > 0 ? by_hand_before[runs / 2] / by_hand_apart[runs / 2] : 0,
		       by_hand_cpu0[runs / 2], by_hand_cpu[runs / 2]);
	}
	if (nb) {
		qsort(before, nb, sizeof(double), cmp_double);
		qsort(apart, nb, sizeof(double), cmp_double);
		printf("moved apart in %u of %u runs: p50 before the move %.0f ns, apart %.0f ns (median of those runs)\n",
		       moved, runs, before[nb / 2], apart[nb / 2]);
	} else {
		printf("moved apart in 0 of %u runs\n", runs);
	}
	return 0;
}

int main(int argc, char **argv)
{
	size_t sizes[8] = { 64, 4096, 65536, 1u << 20, 16u << 20 };
	unsigned nsizes = 5, runs = 3;
	bool quick = false, only_matrix = false, sizes_given = false, runs_given = false;
	double long_s = 0;
	const char *only = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int cc = 0, cs = ncpu > 1 ? 1 : 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
			runs = 1;
		} else if (!strcmp(argv[i], "--cpus") && i + 1 < argc) {
			if (sscanf(argv[++i], "%d,%d", &cc, &cs) != 2 || cc < -1 || cs < -1 || cc >= ncpu || cs >= ncpu) {
				fprintf(stderr, "bench_channel: --cpus CLIENT,SERVICE: two CPU numbers below %ld (-1 = unpinned)\n", ncpu);
				return 2;
			}
		} else if (!strcmp(argv[i], "--matrix")) {
			only_matrix = true;
		} else if (!strcmp(argv[i], "--placement-long") && i + 1 < argc) {
			char *end;
			long_s = strtod(argv[++i], &end);
			if (*end || end == argv[i] || !(long_s >= 1 && long_s <= 600)) {
				fprintf(stderr, "bench_channel: --placement-long SECONDS: 1 to 600 seconds a cell "
						"(got \"%s\")\n", argv[i]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--send-stamps")) {
			send_stamps = true;
		} else if (!strcmp(argv[i], "--placement") && i + 1 < argc) {
			mx_only = argv[++i];
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			/* Refused, not wrapped: atoi's -1 was ~4e9 round trips. */
			char *end;
			long n = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || n < 1 || n > 100000000) {
				fprintf(stderr, "bench_channel: --iters N: round trips per cell, 1 to 100000000 "
						"(got \"%s\")\n", argv[i]);
				return 2;
			}
			mx_iters_arg = (unsigned)n;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = (unsigned)atoi(argv[++i]);
			runs_given = true;
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			nsizes = 0;
			sizes_given = true;
			for (char *s = strtok(argv[++i], ","); s && nsizes < 8; s = strtok(NULL, ","))
				sizes[nsizes++] = strtoull(s, NULL, 0);
		} else {
			fprintf(stderr, "usage: bench_channel [--quick] [--runs N] [--sizes 64,4096,...] [--only TRANSPORT]\n"
					"                     [--cpus CLIENT,SERVICE] [--send-stamps]\n"
					"                     [--matrix [--placement ROW,...] [--only KIND,...] [--iters N]]\n"
					"                     [--placement-long SECONDS [--runs N]]\n");
			return 2;
		}
	}
	if (runs < 1)
		runs = 1;
	if (mx_iters_arg && !only_matrix) {
		fprintf(stderr, "bench_channel: --iters is for --matrix only (the table sizes its runs by payload)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (long_s > 0) {
		if (only_matrix) {
			fprintf(stderr, "bench_channel: --placement-long and --matrix are two benchmarks: one at a time\n");
			return 2;
		}
		return placement_long(long_s, runs_given ? runs : 1);
	}
	if (only_matrix) {
		mx_kinds_only = only;
		if (sizes_given) {
			mx_size_only[0] = mx_size_only[1] = false;
			for (unsigned s = 0; s < nsizes; s++)
				mx_size_only[0] |= sizes[s] == 64, mx_size_only[1] |= sizes[s] == 65536;
			if (!mx_size_only[0] && !mx_size_only[1]) {
				fprintf(stderr, "bench_channel: --matrix --sizes: the matrix has 64 and 65536 only, "
						"and the list names neither\n");
				return 2;
			}
		}
		return matrix(runs, quick);
	}
	static const char *kinds[] = { "thoth-spin", "thoth-sleep", "pipe", "unix-stream",
				       "unix-seqpacket", "eventfd-shm" };
	enum { NK = sizeof kinds / sizeof kinds[0] };
	printf("# bench_channel: round trip = PAYLOAD bytes to the service, 64-byte ack back\n");
	printf("# client on CPU %d, service on CPU %d; median of %u run(s) per cell; "
	       "cpu = CPU ns per round trip (client + service)\n", cc, cs, runs);
	printf("%-15s %9s %10s %10s %12s %10s %10s\n", "transport", "payload", "p50_ns", "p99_ns",
	       "rt_per_s", "cli_cpu", "srv_cpu");
	bench_rt_result_t res[8][NK];
	bool ok[8][NK];
	for (unsigned s = 0; s < nsizes; s++) {
		for (unsigned k = 0; k < NK; k++) {
			if (only && strcmp(only, kinds[k])) {
				ok[s][k] = false;
				continue;
			}
			ok[s][k] = measure(kinds[k], sizes[s], runs, quick, cc, cs, &res[s][k]);
			if (!ok[s][k]) {
				printf("%-15s %9zu    failed\n", kinds[k], sizes[s]);
				continue;
			}
			bench_rt_result_t *r = &res[s][k];
			printf("%-15s %9zu %10.0f %10.0f %12.0f %10.0f %10.0f\n", kinds[k], sizes[s],
			       r->p50_ns, r->p99_ns, r->msgs_per_s, r->client_cpu_ns, r->server_cpu_ns);
			fflush(stdout);
		}
	}
	printf("\n# ratios (p50 latency of the baseline / thoth's; > 1 means thoth is faster)\n");
	printf("%-9s %-12s %10s %10s %10s %10s\n", "payload", "thoth mode", "pipe", "unix-strm",
	       "seqpacket", "efd+shm");
	for (unsigned s = 0; s < nsizes; s++)
		for (unsigned m = 0; m < 2; m++) {
			if (!ok[s][m])
				continue;
			printf("%-9zu %-12s", sizes[s], m ? "sleep" : "spin");
			for (unsigned k = 2; k < NK; k++)
				if (ok[s][k])
					printf(" %9.2fx", res[s][k].p50_ns / res[s][m].p50_ns);
				else
					printf(" %10s", "-");
			printf("\n");
		}
	if (nsizes > 1 && sizes[0] == 64) {
		printf("\n# size independence (thoth p50 at SIZE / p50 at 64 B; target <= 2)\n");
		for (unsigned s = 1; s < nsizes; s++)
			for (unsigned m = 0; m < 2; m++)
				if (ok[s][m] && ok[0][m])
					printf("%-9zu %-6s %6.2f\n", sizes[s], m ? "sleep" : "spin",
					       res[s][m].p50_ns / res[0][m].p50_ns);
	}
	/* OBS-1: the same channel round trip with every IPC trace point on in
	 * both processes (the forked service shares this process's trace
	 * buffer; each thread writes its own ring), alternating off and on. */
	if (!only || !strncmp(only, "thoth", 5)) {
		thoth_trace_config_t tc = { .process_name = "bench_channel" };  /* default rings: 4096 records */
		if (thoth_trace_init(&tc) == 0) {
			printf("\n# traced vs untraced channel round trip (p50 ns; 4 trace events per round trip)\n");
			printf("%-9s %-6s %10s %10s %9s\n", "payload", "mode", "untraced", "traced", "slowdown (median of back-to-back pairs)");
			size_t tsizes[] = { 64, 65536 };
			for (unsigned s = 0; s < 2; s++)
				for (unsigned m = 0; m < 2; m++) {
					double off[5], on[5], ratio[5];
					unsigned reps = quick ? 1 : 5, got = 0;
					for (unsigned k = 0; k < reps; k++) {
						bench_rt_result_t r0, r1;
						unsigned it = iters_for(tsizes[s], quick);
						thoth_trace_set_enabled(0);
						int a = thoth_rt(m ? THOTH_CHAN_SLEEP : THOTH_CHAN_SPIN, tsizes[s], it / 10 + 5, it, cc, cs, &r0);
						thoth_trace_set_enabled(THOTH_TRACE_MASK(IPC));
						int b = thoth_rt(m ? THOTH_CHAN_SLEEP : THOTH_CHAN_SPIN, tsizes[s], it / 10 + 5, it, cc, cs, &r1);
						if (a || b)
							continue;
						off[got] = r0.p50_ns;
						on[got] = r1.p50_ns;
						ratio[got] = r1.p50_ns / r0.p50_ns;   /* each pair back to back */
						got++;
					}
					thoth_trace_set_enabled(0);
					if (!got)
						continue;
					qsort(off, got, sizeof off[0], cmp_double);
					qsort(on, got, sizeof on[0], cmp_double);
					qsort(ratio, got, sizeof ratio[0], cmp_double);
					printf("%-9zu %-6s %10.0f %10.0f %8.3fx  (pairs: %.3f..%.3f)\n", tsizes[s],
					       m ? "sleep" : "spin", off[got / 2], on[got / 2], ratio[got / 2],
					       ratio[0], ratio[got - 1]);
				}
			thoth_trace_shutdown();
		}
	}
#ifdef THOTH_BENCH_HAVE_IOX
	/* One-way latency at 64 B against iceoryx (half a ping-pong round trip,
	 * as iceoryx's own benchmark reports it). */
	if ((!only || !strcmp(only, "iceoryx")) && sizes[0] == 64) {
		for (unsigned m = 0; m < 2; m++)   /* --only iceoryx: thoth's own figures first */
			if (!ok[0][m])
				ok[0][m] = measure(kinds[m], 64, runs, quick, cc, cs, &res[0][m]);
	}
	if ((!only || !strcmp(only, "iceoryx")) && sizes[0] == 64 && ok[0][0] && ok[0][1]) {
		if (bench_iox_start() == 0) {
			unsigned it = iters_for(64, quick);
			double poll[5], wait[5];
			unsigned reps = quick ? 1 : 3, got = 0;
			bench_rt_result_t rp, rw;
			for (unsigned k = 0; k < reps; k++) {
				if (bench_iox_rt(64, false, it / 10 + 5, it, cc, cs, &rp) ||
				    bench_iox_rt(64, true, it / 10 + 5, it, cc, cs, &rw))
					continue;
				poll[got] = rp.p50_ns / 2;
				wait[got] = rw.p50_ns / 2;
				got++;
			}
			bench_iox_stop();
			if (got) {
				qsort(poll, got, sizeof poll[0], cmp_double);
				qsort(wait, got, sizeof wait[0], cmp_double);
				double ts = res[0][0].p50_ns / 2, tw = res[0][1].p50_ns / 2;
				printf("\n# one-way latency at 64 B (p50 / 2 of a round trip), thoth channel vs iceoryx %s\n",
				       "2.0 pub/sub");
				printf("thoth spin    %8.0f ns   iceoryx polling %8.0f ns   ratio %.2fx\n",
				       ts, poll[got / 2], poll[got / 2] / ts);
				printf("thoth sleep   %8.0f ns   iceoryx waitset %8.0f ns   ratio %.2fx\n",
				       tw, wait[got / 2], wait[got / 2] / tw);
				printf("iceoryx cpu ns per round trip: polling %.0f + %.0f, waitset %.0f + %.0f\n",
				       rp.client_cpu_ns, rp.server_cpu_ns, rw.client_cpu_ns, rw.server_cpu_ns);
			} else {
				printf("\n# iceoryx: ping-pong failed\n");
			}
		} else {
			printf("\n# iceoryx: iox-roudi could not be started: not measured\n");
		}
	}
#else
	printf("\n# iceoryx: not built (install iceoryx and libiceoryx-binding-c-dev): not measured\n");
#endif
	if (!only)
		matrix(runs, quick);
	return 0;
}
