/* sealed_workload.c - a profiled process whose table a hostile process of
 * the same user tries to cut short or grow (test_locks_sealed).
 *
 *   sealed_workload THREADS
 *
 * Prints "ready PID", then for each line "run N" on stdin: THREADS threads
 * each take `sealed_lock` N times (contended: they share it), joined, and
 * it prints "done". Ends at the end of stdin.  With the table a plain file
 * mapped shared (before the sealed memfd), a truncation made between two
 * runs made the next run's first lock fault: SIGBUS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pthread_mutex_t sealed_lock = PTHREAD_MUTEX_INITIALIZER;
static long rounds;
static long counter;

static void *run(void *arg)
{
	(void)arg;
	for (long i = 0; i < rounds; i++) {
		pthread_mutex_lock(&sealed_lock);
		counter++;
		pthread_mutex_unlock(&sealed_lock);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc == 2 ? atoi(argv[1]) : 0;
	if (threads < 1 || threads > 64) {
		fprintf(stderr, "usage: sealed_workload THREADS (1 to 64)\n");
		return 2;
	}
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (sscanf(line, "run %ld", &rounds) != 1 || rounds < 0) {
			fprintf(stderr, "sealed_workload: not \"run N\": %s", line);
			return 2;
		}
		pthread_t t[64];
		for (int i = 0; i < threads; i++)
			if (pthread_create(&t[i], NULL, run, NULL) != 0)
				return 1;
		for (int i = 0; i < threads; i++)
			pthread_join(t[i], NULL);
		printf("done %ld\n", counter);
		fflush(stdout);
	}
	return 0;
}
