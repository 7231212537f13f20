/*
 * bench_drain.c - service-side drain per wake-up (issue 13 section 4,
 * SCHED-3): a service with many clients serves every ready channel per
 * wake-up (chan_server.c: channels that rang are served in rounds of up to
 * 16 messages each before the loop sleeps again), so the busier it gets
 * the more messages one wake-up carries.
 *
 * A real service process (thoth_chan_server on a thoth_loop) and C client
 * processes, each making synchronous 64 B calls paced to offered/C per
 * second (absolute deadlines; "max" = back to back), all sleeping waiters.
 * Per offered rate: calls served, the service loop's wake-ups, messages
 * per wake-up and per turn (a channel served once), and, as the baseline
 * of the same run, what one wake-up per message would cost (the ratio).
 *
 *   bench_drain [--clients C] [--seconds S]
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"

typedef struct shared {
	_Atomic uint64_t calls, turns, wakeups, wakeups_fd;
	_Atomic int stop;
} shared_t;

static shared_t *sh;

static int on_sink(void *self, const thoth_bench_Bench_sink_req_t *req,
		   thoth_bench_Bench_sink_resp_t *resp, thoth_arena_t *arena)
{
	resp->ack.ptr = req->data.ptr;
	resp->ack.len = req->data.len < 8 ? req->data.len : 8;
	return 0;
}

static int on_cpu(void *self, const thoth_bench_Bench_cpu_req_t *req, thoth_bench_Bench_cpu_resp_t *resp,
		  thoth_arena_t *arena)
{
	resp->ns = 0;
	return 0;
}

static const thoth_bench_Bench_handlers_t handlers = { .sink = on_sink, .cpu = on_cpu };

static pid_t start_service(const char *path)
{
	pid_t pid = fork();
	if (pid)
		return pid;
	thoth_loop_t *loop;
	thoth_chan_server_t *srv;
	char why[300];
	thoth_chan_server_config_t cfg = { .path = path, .iface = &thoth_bench_Bench_info,
					   .invoke = thoth_bench_Bench_invoke, .handlers = &handlers };
	if (thoth_loop_new(&loop) || thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why)) {
		fprintf(stderr, "bench_drain: service: %s\n", why);
		_exit(1);
	}
	/* Published after every iteration: one relaxed store each, off the
	 * measured path's critical section (the loop is about to sleep). */
	while (!atomic_load(&sh->stop)) {
		if (thoth_loop_run_once(loop, true) < 0)
			_exit(2);
		thoth_loop_stats_t ls;
		thoth_chan_server_stats_t ss;
		thoth_loop_stats(loop, &ls);
		thoth_chan_server_stats(srv, &ss);
		atomic_store_explicit(&sh->calls, ss.calls, memory_order_relaxed);
		atomic_store_explicit(&sh->turns, ss.turns, memory_order_relaxed);
		atomic_store_explicit(&sh->wakeups, ls.wakeups, memory_order_relaxed);
		atomic_store_explicit(&sh->wakeups_fd, ls.wakeups_fd, memory_order_relaxed);
	}
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	_exit(0);
}

static void run_client(const char *path, double rate, double seconds)
{
	thoth_chan_config_t cc = { .iface = &thoth_bench_Bench_info, .wait = THOTH_CHAN_SLEEP };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(path, &cc, &ch, why, sizeof why)) {
		fprintf(stderr, "bench_drain: client: %s\n", why);
		_exit(1);
	}
	uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
	uint64_t start = thoth_clock_now(), end = start + (uint64_t)(seconds * 1e9);
	/* Random phase: clients must not call in lock step. */
	uint64_t next = start + (period ? (uint64_t)getpid() * 7919u % period : 0);
	uint8_t data[64] = { 0 };
	while (thoth_clock_now() < end) {
		if (period) {
			struct timespec ts = { (time_t)(next / 1000000000ull), (long)(next % 1000000000ull) };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);   /* the offered load */
			next += period;
		}
		thoth_bench_Bench_sink_req_t rq = { .data = { .ptr = data, .len = sizeof data } };
		thoth_bench_Bench_sink_resp_t rs;
		uint64_t ab[64];
		thoth_arena_t a;
		thoth_arena_init(&a, ab, sizeof ab);
		if (thoth_bench_Bench_sink(thoth_chan_client(ch), &rq, &rs, &a))
			_exit(3);
	}
	thoth_chan_close(ch);
	_exit(0);
}

int main(int argc, char **argv)
{
	unsigned clients = 16;
	double seconds = 2;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--clients") && i + 1 < argc)
			clients = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_drain [--clients C] [--seconds S]\n");
			return 2;
		}
	}
	if (clients < 1 || clients > 256 || !(seconds > 0)) {
		fprintf(stderr, "bench_drain: --clients 1..256, --seconds > 0\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 1;
	char dir[] = "/tmp/bench-drain-XXXXXX", path[128];
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/s.sock", dir);
	pid_t svc = start_service(path);
	for (int i = 0; i < 400 && access(path, F_OK) != 0; i++)
		usleep(5000);
	printf("# bench_drain: one service, %u clients (processes, synchronous 64 B calls, sleeping\n"
	       "# waiters), %.1f s per row; per wake-up = calls / service loop wake-ups (baseline: one\n"
	       "# wake-up per message = 1.0)\n", clients, seconds);
	printf("%10s %10s %10s %10s %12s %10s\n", "offered/s", "served/s", "wakeups/s", "msg/wake", "msg/turn",
	       "vs 1/msg");
	static const double rates[] = { 1000, 5000, 20000, 50000, 0 };
	int status = 0;
	for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
		uint64_t c0 = atomic_load(&sh->calls), t0 = atomic_load(&sh->turns), w0 = atomic_load(&sh->wakeups);
		pid_t kids[256];
		for (unsigned i = 0; i < clients; i++) {
			fflush(NULL);
			kids[i] = fork();
			if (kids[i] == 0)
				run_client(path, rates[r] / clients, seconds);
		}
		for (unsigned i = 0; i < clients; i++) {
			int st;
			if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st))
				status = 1;
		}
		uint64_t c = atomic_load(&sh->calls) - c0, t = atomic_load(&sh->turns) - t0,
			 w = atomic_load(&sh->wakeups) - w0;
		char offered[16];
		if (rates[r] > 0)
			snprintf(offered, sizeof offered, "%.0f", rates[r]);
		else
			snprintf(offered, sizeof offered, "max");
		double per_wake = w ? (double)c / (double)w : 0;
		printf("%10s %10.0f %10.0f %10.2f %12.2f %9.2fx\n", offered, (double)c / seconds, (double)w / seconds,
		       per_wake, t ? (double)c / (double)t : 0, per_wake);
		fflush(stdout);
	}
	atomic_store(&sh->stop, 1);
	/* The service sleeps in its loop: a connection wakes it to see stop. */
	thoth_chan_config_t cc = { .iface = &thoth_bench_Bench_info };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(path, &cc, &ch, why, sizeof why) == 0)
		thoth_chan_close(ch);
	int st;
	waitpid(svc, &st, 0);
	unlink(path);
	rmdir(dir);
	return status;
}
