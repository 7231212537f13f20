/* site_race_workload.c - many threads meeting the same new call sites at
 * once, for check_site_race.py: the writer must make exactly one site
 * entry per (lock, call site) however the inserting threads interleave
 * (docs/LOCKS.md, "Call sites"; preload.c, site_entry).
 *
 *   site_race_workload THREADS LOCKS ROUNDS
 *
 * THREADS threads wait at a barrier, then each takes lock 0, 1, ..
 * LOCKS-1 in the same order at site_x and again at site_y, ROUNDS times:
 * every thread's first acquisitions of a lock at a site race the others'
 * (THREADS - 1 of them wait, so contention mode makes sites too).
 * Per lock: THREADS x ROUNDS acquisitions at each of the two sites.
 *
 *   site_race_workload fork
 *
 * A thread meets a new site (held inside the addition by
 * THOTHLOCK_TEST_SITE_DELAY_US) while the main thread calls _Fork(), which
 * runs no atfork handler: the child inherits the addition lock held by a
 * thread it does not have.  The child then takes a lock at a new site; it
 * must get it (the site given up as not kept), not hang.  Prints
 * "child ok" when it did.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOCKS 64
#define MAX_THREADS 64

pthread_mutex_t race_locks[MAX_LOCKS];
static int nlocks;
static long rounds;
static pthread_barrier_t go;
static volatile unsigned long shared_counter;

__attribute__((noinline)) static void site_x(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	shared_counter++;
	pthread_mutex_unlock(m);
}

__attribute__((noinline)) static void site_y(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	shared_counter += 2;
	pthread_mutex_unlock(m);
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&go);
	for (long r = 0; r < rounds; r++)
		for (int j = 0; j < nlocks; j++) {
			site_x(&race_locks[j]);
			site_y(&race_locks[j]);
		}
	return NULL;
}

static pthread_mutex_t fork_a = PTHREAD_MUTEX_INITIALIZER, fork_b = PTHREAD_MUTEX_INITIALIZER;

static void *fork_adder(void *arg)
{
	(void)arg;
	site_x(&fork_a);                /* a new site: held inside its addition */
	return NULL;
}

static int fork_case(void)
{
	pthread_t th;
	if (pthread_create(&th, NULL, fork_adder, NULL) != 0)
		return 1;
	struct timespec d = { 0, 200 * 1000 * 1000 };
	nanosleep(&d, NULL);            /* the adder is inside its addition now */
	pid_t pid = _Fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		site_y(&fork_b);        /* a new site in a child with the lock held */
		printf("child ok\n");
		fflush(stdout);
		_exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	pthread_join(th, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "fork") == 0)
		return fork_case();
	if (argc != 4)
		return 2;
	int threads = atoi(argv[1]);
	nlocks = atoi(argv[2]);
	rounds = atol(argv[3]);
	if (threads < 1 || threads > MAX_THREADS || nlocks < 1 || nlocks > MAX_LOCKS || rounds < 1)
		return 2;
	for (int j = 0; j < nlocks; j++)
		pthread_mutex_init(&race_locks[j], NULL);
	pthread_barrier_init(&go, NULL, (unsigned)threads);
	pthread_t th[MAX_THREADS];
	for (int k = 0; k < threads; k++)
		if (pthread_create(&th[k], NULL, worker, NULL) != 0)
			return 1;
	for (int k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	printf("done\n");
	return 0;
}
