/* locks_uncontended.c - the uncontended lock/unlock pair, timed.
 *
 *   locks_uncontended PAIRS
 *
 * One thread, one mutex: PAIRS pthread_mutex_lock/unlock pairs, after a
 * warm-up of PAIRS/10; prints "ns_per_pair X".  bench_locks runs it plain
 * and with libthothlock.so preloaded (and under callgrind, where the
 * instruction count per pair is the difference of two PAIRS values).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void pairs(long n)
{
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(&lock);
		__asm__ volatile("" ::: "memory");
		pthread_mutex_unlock(&lock);
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000;
	if (n < 1)
		return 2;
	pairs(n / 10);
	double t0 = now_ns();
	pairs(n);
	double t1 = now_ns();
	printf("ns_per_pair %.3f\n", (t1 - t0) / (double)n);
	return 0;
}
