/*
 * bench_loop.c - what an idle event loop costs, and what timers cost.
 *
 * 1. Wake-ups per minute of an idle thoth_loop (fd sources registered, one
 *    timer an hour away) next to a naive loop that polls with a 10 ms
 *    epoll timeout, each run for SECONDS in its own thread; wake-ups are the
 *    thread's voluntary context switches (/proc/self/task/TID/status).
 * 2. Timer add+cancel cost with 1k and 100k timers pending (median of 7).
 *
 * usage: bench_loop [seconds]   (default 5)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "thoth/loop.h"

static long voluntary_switches(pid_t tid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	long v = -1;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

typedef struct run {
	int stop_pipe[2];
	volatile int ready;
	pid_t tid;
	long switches;
	double seconds;
} run_t;

static void on_stop(thoth_loop_t *loop, thoth_source_t *s, int fd, uint32_t ev, void *arg)
{
	thoth_loop_stop(loop);
}

static void on_nothing(thoth_loop_t *loop, thoth_source_t *s, int fd, uint32_t ev, void *arg)
{
}

static void on_hour(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
}

static void *thoth_idle(void *arg)
{
	run_t *r = arg;
	thoth_loop_t *loop;
	int quiet[2];
	if (thoth_loop_new(&loop) || pipe(quiet))
		abort();
	thoth_loop_add_fd(loop, r->stop_pipe[0], THOTH_LOOP_READ, on_stop, NULL, NULL);
	thoth_loop_add_fd(loop, quiet[0], THOTH_LOOP_READ, on_nothing, NULL, NULL);
	thoth_loop_add_timer_in(loop, 3600ull * 1000000000ull, 1000000000ull, on_hour, NULL, NULL);
	r->tid = (pid_t)syscall(SYS_gettid);
	long before = voluntary_switches(r->tid);
	__atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
	thoth_loop_run(loop);
	r->switches = voluntary_switches(r->tid) - before - 1;   /* minus the stop wake-up */
	thoth_loop_free(loop);
	close(quiet[0]);
	close(quiet[1]);
	return NULL;
}

static void *naive_tick(void *arg)
{
	run_t *r = arg;
	int ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN }, out[8];
	epoll_ctl(ep, EPOLL_CTL_ADD, r->stop_pipe[0], &ev);
	r->tid = (pid_t)syscall(SYS_gettid);
	long before = voluntary_switches(r->tid);
	__atomic_store_n(&r->ready, 1, __ATOMIC_RELEASE);
	for (;;) {
		int n = epoll_wait(ep, out, 8, 10);     /* the 10 ms tick */
		if (n > 0)
			break;
	}
	r->switches = voluntary_switches(r->tid) - before - 1;
	close(ep);
	return NULL;
}

static double idle_run(void *(*fn)(void *), double seconds)
{
	run_t r = { 0 };
	if (pipe(r.stop_pipe))
		abort();
	pthread_t t;
	pthread_create(&t, NULL, fn, &r);
	while (!__atomic_load_n(&r.ready, __ATOMIC_ACQUIRE))
		usleep(1000);
	usleep((useconds_t)(seconds * 1e6));
	if (write(r.stop_pipe[1], "q", 1) != 1)
		abort();
	pthread_join(t, NULL);
	close(r.stop_pipe[0]);
	close(r.stop_pipe[1]);
	return (double)r.switches * 60.0 / seconds;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void on_never(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
}

/* ns per (add + cancel) with PENDING other timers in the queue */
static double timer_cost(int pending)
{
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		abort();
	uint64_t base = thoth_clock_now() + 3600ull * 1000000000ull;
	for (int i = 0; i < pending; i++)
		thoth_loop_add_timer(loop, base + (uint64_t)rand() % 1000000000ull, 1000000, on_never, NULL, NULL);
	double t[7];
	enum { N = 20000 };
	static thoth_timer_t *h[N];
	for (int r = 0; r < 7; r++) {
		uint64_t t0 = thoth_clock_now();
		for (int i = 0; i < N; i++)
			thoth_loop_add_timer(loop, base + (uint64_t)rand() % 1000000000ull, 1000000, on_never, NULL, &h[i]);
		for (int i = 0; i < N; i++)
			thoth_timer_cancel(loop, h[i]);
		t[r] = (double)(thoth_clock_now() - t0) / N;
	}
	qsort(t, 7, sizeof t[0], cmp_double);
	thoth_loop_free(loop);
	return t[3];
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 5;
	if (seconds <= 0 || seconds > 3600) {
		fprintf(stderr, "usage: bench_loop [seconds]\n");
		return 2;
	}
	printf("bench_loop: idle wake-ups per minute over %.0f s each\n", seconds);
	double naive = idle_run(naive_tick, seconds);
	double thoth = idle_run(thoth_idle, seconds);
	printf("%-36s %12.0f\n", "naive loop, 10 ms epoll tick", naive);
	printf("%-36s %12.0f\n", "thoth_loop (2 fds, 1 timer in 1 h)", thoth);
	if (thoth > 0)
		printf("ratio (naive / thoth): %.1fx\n", naive / thoth);
	else
		printf("ratio: thoth_loop did not wake at all (naive/thoth undefined)\n");
	printf("\ntimer add+cancel, ns/pair (median of 7 x 20000)\n");
	printf("%-36s %12.1f\n", "with 1,000 timers pending", timer_cost(1000));
	printf("%-36s %12.1f\n", "with 100,000 timers pending", timer_cost(100000));
	return 0;
}
