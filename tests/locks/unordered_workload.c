/* unordered_workload.c - releases out of order and trylocks, with a
 * known number of acquisitions per lock, for check_unordered.py
 * (contention mode's fast paths for both: preload.c, release_unordered
 * and pthread_mutex_trylock).
 *
 *   unordered_workload THREADS ITERATIONS
 *
 * Each of THREADS threads, ITERATIONS times:
 *   lock a, trylock b (until it succeeds), unlock a, unlock b  (memcached's
 *       item lock then LRU lock, the item lock released first);
 *   lock a, lock b, lock c, unlock a, unlock c, unlock b  (an entry in the
 *       middle of three: two move down);
 *   lock b, trylock rec (a recursive mutex: glibc's trylock), lock c,
 *       unlock b, unlock c, unlock rec  (the bottom entry of three).
 * The threads contend, so some entries released out of order carry a
 * wait (they take the generic path).  Per thread and iteration: uo_a 2,
 * uo_b 3, uo_c 2, uo_rec 1 acquisitions.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

pthread_mutex_t uo_a = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t uo_b = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t uo_c = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t uo_rec;
static long iterations;
static volatile unsigned long shared_counter;

static void *worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < iterations; i++) {
		pthread_mutex_lock(&uo_a);
		while (pthread_mutex_trylock(&uo_b) != 0)
			sched_yield();
		shared_counter++;
		pthread_mutex_unlock(&uo_a);
		pthread_mutex_unlock(&uo_b);

		pthread_mutex_lock(&uo_a);
		pthread_mutex_lock(&uo_b);
		pthread_mutex_lock(&uo_c);
		shared_counter++;
		pthread_mutex_unlock(&uo_a);
		pthread_mutex_unlock(&uo_c);
		pthread_mutex_unlock(&uo_b);

		pthread_mutex_lock(&uo_b);
		while (pthread_mutex_trylock(&uo_rec) != 0)
			sched_yield();
		pthread_mutex_lock(&uo_c);
		shared_counter++;
		pthread_mutex_unlock(&uo_b);
		pthread_mutex_unlock(&uo_c);
		pthread_mutex_unlock(&uo_rec);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int threads = atoi(argv[1]);
	iterations = atol(argv[2]);
	if (threads < 1 || threads > 64 || iterations < 1)
		return 2;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&uo_rec, &attr);
	pthread_t th[64];
	for (int k = 0; k < threads; k++)
		if (pthread_create(&th[k], NULL, worker, NULL) != 0)
			return 1;
	for (int k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	printf("done\n");
	return 0;
}
