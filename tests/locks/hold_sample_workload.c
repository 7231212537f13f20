/* hold_sample_workload.c - a workload whose holds and waits are known, for
 * all mode's hold sampling (THOTHLOCK_HOLD_SAMPLE, docs/LOCKS.md).
 *
 *   hold_sample_workload ROUNDS HOLDS CONTENTIONS
 *
 * Holds: ROUNDS rounds, each on three fresh locks (round r uses
 * fixed_a[r], fixed_b[r], varied[r]), one thread taking them in turn
 * HOLDS times each: fixed_a held 12 us every time, fixed_b 4 us, varied
 * 4, 12, 4, 20 us in a cycle.  A hold is a spin between the program's
 * own clock reads, right after the lock and right before the unlock: the
 * TSC on x86-64, converted with a rate calibrated here (a clock_gettime
 * read costs 50-250 ns on this VM, which the profiler's hold would count
 * and the program's not: +7 % on a 4 us hold), else CLOCK_MONOTONIC.  The
 * program prints each lock's address, its holds
 * and the sum of its own timings ("hold LOCK ROUND ADDRESS HOLDS NS
 * CLEAN"), CLEAN 0 when one of its holds ran 2 ms over the script (the
 * thread was preempted inside it: a hold that long, scaled by the
 * sampling, swamps the sum, so the checker skips such locks) and the
 * sum of the squared holds (ns^2: the checker's sampling error).
 *
 * Waits: CONTENTIONS forced contentions on `contended`: the main thread
 * holds it, a second thread calls pthread_mutex_lock and is seen asleep
 * in the kernel (/proc/self/task/TID/stat state 'S') before the main
 * thread sleeps 1 ms more and unlocks.  So contentions = CONTENTIONS and
 * acquisitions = 2 x CONTENTIONS exactly; the waiter times its own wait
 * around the call ("wait contended ADDRESS COUNT NS").
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#include "../../kernel/sched/procstat.h"
#endif

#define MAX_ROUNDS 16
#define SLACK_NS 2000000u

static pthread_mutex_t fixed_a[MAX_ROUNDS], fixed_b[MAX_ROUNDS], varied[MAX_ROUNDS];
static pthread_mutex_t contended = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The hold clock: TSC ticks (x86-64) or ns; ticks_per_us after calibrate(). */
static double ticks_per_us = 1000.0;

static inline uint64_t hold_clock(void)
{
#if defined(__x86_64__)
	return __rdtsc();
#else
	return now_ns();
#endif
}

static void calibrate(void)
{
#if defined(__x86_64__)
	uint64_t t0 = __rdtsc(), n0 = now_ns();
	struct timespec ms = { 0, 20000000 };
	nanosleep(&ms, NULL);
	uint64_t t1 = __rdtsc(), n1 = now_ns();
	ticks_per_us = (double)(t1 - t0) * 1000.0 / (double)(n1 - n0);
#endif
}

typedef struct {
	uint64_t holds, ticks;
	double sq;                  /* sum of squared holds, in ticks^2 */
	bool clean;
} tally_t;

/* One hold of M scripted to last US, timed by the program. */
static void hold(pthread_mutex_t *m, uint64_t us, tally_t *t)
{
	uint64_t d = (uint64_t)(us * ticks_per_us), slack = (uint64_t)(SLACK_NS / 1000 * ticks_per_us);
	pthread_mutex_lock(m);
	uint64_t t0 = hold_clock(), t1;
	while ((t1 = hold_clock()) - t0 < d)
		;
	pthread_mutex_unlock(m);
	t->holds++;
	t->ticks += t1 - t0;
	t->sq += (double)(t1 - t0) * (double)(t1 - t0);
	if (t1 - t0 > d + slack)
		t->clean = false;
}

static void print_hold(const char *name, int round, pthread_mutex_t *m, const tally_t *t)
{
	double ns_per_tick = 1000.0 / ticks_per_us;
	printf("hold %s %d %p %llu %llu %d %.0f\n", name, round, (void *)m,
	       (unsigned long long)t->holds, (unsigned long long)((double)t->ticks * ns_per_tick),
	       t->clean ? 1 : 0, t->sq * ns_per_tick * ns_per_tick);
}

static _Atomic int waiter_tid, go, attempting, done;
static uint64_t wait_ref;

/* Thread TID of this process is asleep (state S: blocked on the lock). */
static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	return state && state[0] == 'S';
}

static void *waiter(void *arg)
{
	int n = *(int *)arg;
	atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
	for (int i = 1; i <= n; i++) {
		while (atomic_load(&go) != i)
			sched_yield();
		atomic_store(&attempting, i);
		uint64_t t0 = now_ns();
		pthread_mutex_lock(&contended);
		wait_ref += now_ns() - t0;
		pthread_mutex_unlock(&contended);
		atomic_store(&done, i);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: hold_sample_workload ROUNDS HOLDS CONTENTIONS\n");
		return 2;
	}
	int rounds = atoi(argv[1]), holds = atoi(argv[2]), contentions = atoi(argv[3]);
	if (rounds < 0 || rounds > MAX_ROUNDS || holds < 0 || contentions < 0) {
		fprintf(stderr, "hold_sample_workload: ROUNDS 0..%d, HOLDS and CONTENTIONS >= 0\n",
		        MAX_ROUNDS);
		return 2;
	}
	static const uint64_t varied_us[] = { 4, 12, 4, 20 };
	calibrate();
	for (int r = 0; r < rounds; r++) {
		pthread_mutex_init(&fixed_a[r], NULL);
		pthread_mutex_init(&fixed_b[r], NULL);
		pthread_mutex_init(&varied[r], NULL);
		tally_t a = { .clean = true }, b = { .clean = true }, v = { .clean = true };
		for (int i = 0; i < holds; i++) {
			hold(&fixed_a[r], 12, &a);
			hold(&fixed_b[r], 4, &b);
			hold(&varied[r], varied_us[i % 4], &v);
		}
		print_hold("fixed_a", r, &fixed_a[r], &a);
		print_hold("fixed_b", r, &fixed_b[r], &b);
		print_hold("varied", r, &varied[r], &v);
	}

	pthread_t th;
	if (contentions && pthread_create(&th, NULL, waiter, &contentions) != 0) {
		perror("pthread_create");
		return 1;
	}
	for (int i = 1; i <= contentions; i++) {
		pthread_mutex_lock(&contended);
		atomic_store(&go, i);
		while (atomic_load(&attempting) != i || !sleeping(atomic_load(&waiter_tid)))
			sched_yield();
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
		pthread_mutex_unlock(&contended);
		while (atomic_load(&done) != i)
			sched_yield();
	}
	if (contentions)
		pthread_join(th, NULL);
	printf("wait contended %p %d %llu\n", (void *)&contended, contentions,
	       (unsigned long long)wait_ref);
	return 0;
}
