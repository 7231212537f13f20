/* locks_hot.c - one hot mutex under heavy contention, the shape of
 * `sysbench mutex --mutex-num=1` (sysbench is a bench-profile package, not
 * always installed): THREADS threads each take the one mutex LOCKS times,
 * increment a shared counter inside it and spin LOOPS empty iterations
 * outside it.  For bench_locks_ab's "--" form (docs/LOCKS.md): run under
 * `cputime`, unprofiled and under libthothlock.so, the CPU-time ratio is
 * what the profiler costs on one hot lock.
 *
 *   locks_hot [--threads T] [--locks N] [--loops L]     (default 4, 300000, 100)
 *
 * Prints the counter (T x N: a check that every increment was locked).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t hot = PTHREAD_MUTEX_INITIALIZER;
static unsigned long counter;
static unsigned long locks = 300000, loops = 100;

static void *worker(void *arg)
{
	(void)arg;
	for (unsigned long i = 0; i < locks; i++) {
		for (volatile unsigned long k = 0; k < loops; k++)
			;
		pthread_mutex_lock(&hot);
		counter++;
		pthread_mutex_unlock(&hot);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long threads = 4;
	for (int i = 1; i < argc; i++) {
		char *end = NULL;
		unsigned long *v = strcmp(argv[i], "--threads") == 0 ? &threads
		                   : strcmp(argv[i], "--locks") == 0  ? &locks
		                   : strcmp(argv[i], "--loops") == 0  ? &loops
		                                                      : NULL;
		if (!v || i + 1 >= argc || (*v = strtoul(argv[++i], &end, 10), *end) ||
		    (v == &threads && (threads == 0 || threads > 256))) {
			fprintf(stderr, "usage: locks_hot [--threads 1..256] [--locks N] [--loops L]\n");
			return 2;
		}
	}
	pthread_t tids[256];
	for (unsigned long t = 0; t < threads; t++)
		if (pthread_create(&tids[t], NULL, worker, NULL)) {
			fprintf(stderr, "locks_hot: pthread_create failed\n");
			return 1;
		}
	for (unsigned long t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	printf("counter %lu\n", counter);
	return counter == threads * locks ? 0 : 1;
}
