/*
 * bench_pm_peek - what seeing the rings (kernel/pm/governed.h "Seeing the
 * rings") adds to each request a governed service dispatches.
 *
 * A governed echo service (HiKey A53 model, simulated backend: its
 * THOTH_SYSFS_ROOT is an empty directory) runs on a thread of this
 * process; the main thread opens CHANNELS channels to it and, ROUNDS
 * times, publishes DEPTH requests (no work) on every channel before it
 * reads the answers, so that at each dispatch up to CHANNELS x DEPTH - 1
 * requests wait in the rings.  Printed: requests, the serving thread's CPU
 * time per request, wall time per request, and what the shim saw
 * (ring_looks, requests seen waiting per look).  By default both modes run
 * in the same process, alternated over PAIRS pairs of phases (order flipped
 * each pair): with the look, and without it (the baseline: the shim counts
 * the non-empty rings instead, thoth_pm_governed_set_peek false); printed:
 * each mode's median CPU per request and the ratio.  --peek / --no-peek:
 * one mode only (for callgrind, below).  --idle
 * N: N more channels are open and never send (a server with many idle
 * clients: a look must not cost more for them, docs/PM.md).
 *
 * For a stable figure count instructions instead of time (this VM is
 * shared and noisy): everything the shim does per request is inside its
 * invoke function, so
 *   valgrind --tool=callgrind --toggle-collect=governed_invoke \
 *            --callgrind-out-file=/dev/null bench_pm_peek --peek|--no-peek ...
 * prints the instructions it ran ("Collected"); divided by the requests
 * printed, with and without --no-peek, that is the cost per request
 * (docs/BENCHMARKS.md).
 *
 *   bench_pm_peek [--channels N] [--depth D] [--rounds R] [--idle N] [--peek | --no-peek]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "governed.h"
#include "pm_clock.h"
#include "thoth/channel.h"
#include "thoth/loop.h"

#define MAX_CHANNELS 64
#define MAX_IDLE 4096

static char sock[128];
static bool peek = true;
static int only = -1;           /* -1: both modes, compared; 0/1: --no-peek / --peek */
static unsigned idle_n;         /* printed */
enum { PAIRS = 3 };
static _Atomic int ready;       /* 1: serving; -1: failed */
static thoth_pm_governed_t *gov;
static clockid_t serve_clock;

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req, thoth_echo_Echo_stats_resp_t *resp,
		    thoth_arena_t *arena)
{
	return 0;
}

static void *serve(void *arg)
{
	(void)arg;
	thoth_loop_t *loop;
	thoth_pm_dvfs_t *dvfs;
	pthread_getcpuclockid(pthread_self(), &serve_clock);
	if (thoth_loop_new(&loop) ||
	    thoth_pm_dvfs_new(0, thoth_pm_cpu_model_find("hikey-a53"), thoth_pm_clock_monotonic_ns(), &dvfs) ||
	    thoth_pm_governed_new(loop, dvfs, 10000000ull, &gov)) {
		atomic_store(&ready, -1);
		return NULL;
	}
	thoth_pm_governed_set_peek(gov, peek);
	static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };
	thoth_chan_server_config_t cfg = {
		.path = sock, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .wait = THOTH_CHAN_SLEEP, .max_clients = MAX_CHANNELS + MAX_IDLE,
	};
	thoth_pm_governed_wrap(gov, &cfg);
	thoth_chan_server_t *srv;
	char why[256];
	if (thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why)) {
		fprintf(stderr, "bench_pm_peek: %s\n", why);
		atomic_store(&ready, -1);
		return NULL;
	}
	atomic_store(&ready, 1);
	thoth_loop_run(loop);   /* never stops: main _exits */
	return NULL;
}

static uint64_t clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ROUNDS rounds on CH in the current mode: its figures printed when
 * VERBOSE, its serving CPU per request in *CPU_PER_REQ when given.  0, or
 * 1 on a failed call. */
static int phase(thoth_chan_t **ch, unsigned channels, unsigned depth, unsigned rounds, bool verbose,
		 double *cpu_per_req)
{
	uint8_t payload[8] = { 0 };
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = sizeof payload } };
	uint64_t cpu0 = clock_ns(serve_clock), wall0 = thoth_pm_clock_monotonic_ns(), n = 0;
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned c = 0; c < channels; c++)
			for (unsigned d = 0; d < depth; d++) {
				thoth_msg_header_t meta = { .request_id = d + 1 };
				uint8_t *buf;
				size_t len = 0;
				if (thoth_chan_alloc(ch[c], 200, &buf, 10000) ||
				    thoth_echo_Echo_echo_req_encode_msg(buf, 200, &meta, &req, &len) ||
				    thoth_chan_send(ch[c], buf, len, 10000))
					return 1;
			}
		for (unsigned c = 0; c < channels; c++)
			for (unsigned d = 0; d < depth; d++) {
				thoth_msg_t m;
				if (thoth_chan_recv(ch[c], &m, 10000))
					return 1;
				thoth_chan_release(ch[c], &m);
				n++;
			}
	}
	uint64_t cpu1 = clock_ns(serve_clock), wall1 = thoth_pm_clock_monotonic_ns();
	thoth_pm_governed_stats_t st;
	thoth_pm_governed_stats(gov, &st);
	if (verbose)
		printf("peek %s channels %u idle %u depth %u requests %llu serve_cpu_ns/req %.0f wall_ns/req %.0f "
		       "ring_looks %llu seen/look %.2f\n", peek ? "on" : "off", channels, idle_n, depth,
		       (unsigned long long)n, (double)(cpu1 - cpu0) / (double)n, (double)(wall1 - wall0) / (double)n,
		       (unsigned long long)st.ring_looks,
		       st.ring_looks ? (double)st.ring_seen / (double)st.ring_looks : 0.0);
	if (cpu_per_req)
		*cpu_per_req = (double)(cpu1 - cpu0) / (double)n;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned channels = 8, depth = 4, rounds = 20000, idle = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--channels") && i + 1 < argc)
			channels = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
			depth = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--idle") && i + 1 < argc)
			idle = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--no-peek"))
			only = 0;
		else if (!strcmp(argv[i], "--peek"))
			only = 1;
		else {
			fprintf(stderr, "usage: bench_pm_peek [--channels N] [--depth D] [--rounds R] [--idle N] "
				"[--peek | --no-peek]\n");
			return 2;
		}
	}
	if (!channels || channels > MAX_CHANNELS || !depth || depth > 128 || !rounds || idle > MAX_IDLE) {
		fprintf(stderr, "bench_pm_peek: channels 1..%d, depth 1..128, rounds > 0, idle 0..%d\n",
			MAX_CHANNELS, MAX_IDLE);
		return 2;
	}
	/* both ends of every channel live in this process: a few fds each */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < 8 * (rlim_t)(channels + idle) + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char dir[] = "/tmp/thoth-pm-peek-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	setenv("THOTH_SYSFS_ROOT", dir, 1);     /* no cpufreq there: simulated, never the host's */
	snprintf(sock, sizeof sock, "%s/echo.sock", dir);
	pthread_t t;
	if (pthread_create(&t, NULL, serve, NULL))
		return 1;
	while (!atomic_load(&ready))
		usleep(1000);
	if (atomic_load(&ready) < 0)
		return 1;
	thoth_chan_t *ch[MAX_CHANNELS];
	thoth_chan_config_t ccfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP, .timeout_ms = 10000 };
	for (unsigned c = 0; c < channels; c++) {
		char why[256];
		if (thoth_chan_connect(sock, &ccfg, &ch[c], why, sizeof why)) {
			fprintf(stderr, "bench_pm_peek: connect: %s\n", why);
			return 1;
		}
	}
	static thoth_chan_t *idle_ch[MAX_IDLE];
	for (unsigned c = 0; c < idle; c++) {
		char why[256];
		if (thoth_chan_connect(sock, &ccfg, &idle_ch[c], why, sizeof why)) {
			fprintf(stderr, "bench_pm_peek: connect idle %u: %s\n", c, why);
			return 1;
		}
	}
	idle_n = idle;
	if (only >= 0) {
		peek = only;
		thoth_pm_governed_set_peek(gov, peek);
		if (phase(ch, channels, depth, rounds, true, NULL))
			return 1;
	} else {
		/* the baseline in the same run: the two modes alternated */
		double per[2][PAIRS];
		for (int k = 0; k < PAIRS; k++)
			for (int o = 0; o < 2; o++) {
				int mode = (o + k) & 1;
				peek = mode;
				thoth_pm_governed_set_peek(gov, peek);
				if (phase(ch, channels, depth, rounds / PAIRS + 1, false, &per[mode][k]))
					return 1;
			}
		double med[2];
		for (int mode = 0; mode < 2; mode++) {
			double *v = per[mode];
			for (int a = 1; a < PAIRS; a++)     /* insertion sort */
				for (int b = a; b > 0 && v[b] < v[b - 1]; b--) {
					double tmp = v[b];
					v[b] = v[b - 1];
					v[b - 1] = tmp;
				}
			med[mode] = v[PAIRS / 2];
		}
		printf("channels %u idle %u depth %u: serving CPU per request, median of %d phases: "
		       "look %.0f ns, no look %.0f ns; look / no look %.3fx\n", channels, idle, depth, PAIRS,
		       med[1], med[0], med[0] > 0 ? med[1] / med[0] : 0.0);
	}
	fflush(stdout);
	char rm[128];
	snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
	if (system(rm))
		return 1;
	_exit(0);
}
