/* exact_workload.c - a known number of acquisitions per lock and call
 * site, across thread exits, thread-slot reuse and fork(), for the exact
 * count check of all-acquisitions mode (check_exact_counts.py).
 *
 *   exact_workload THREADS ITERATIONS FORK_ITERATIONS
 *
 * Three waves of THREADS threads.  Thread k's iteration i takes
 * exact_lock[(i + k) % 3] at the call site given by i % 4: 0 site_a, 1
 * site_b, 2 site_try (trylock until it succeeds), or 3 exact_rwlock (as a
 * writer at site_wr when i % 8 == 3, else as a reader at site_rd).
 * ITERATIONS is a multiple of 24, so per thread each mutex is taken
 * ITERATIONS / 12 times at each of its three sites, and the rwlock
 * ITERATIONS / 8 times at each of its two.  Threads contend (three mutexes
 * for THREADS threads): contended acquisitions count the same.
 *
 * After wave 2 has finished its iterations its threads stay alive
 * (a barrier), the program prints "paused" and reads a line: a reader then
 * sees wave 1 (exited) and wave 2 (alive, counts in their own entries).
 * Wave 3 then runs in the slots the first two left.  Then main takes
 * exact_lock[0] FORK_ITERATIONS times, exact_lock[1] and exact_rwlock (as a
 * reader) as many times through pthread_mutex_clocklock and
 * pthread_rwlock_clockrdlock (site_clock, site_clock_rd), and times out
 * once in pthread_mutex_clocklock on exact_lock[2], which it holds (taken
 * at site_a); then it forks; the child takes exact_lock[0]
 * FORK_ITERATIONS times itself and in a thread of its own, and exits; the
 * parent takes it FORK_ITERATIONS times more and prints "child PID".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

pthread_mutex_t exact_lock_0 = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t exact_lock_1 = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t exact_lock_2 = PTHREAD_MUTEX_INITIALIZER;
pthread_rwlock_t exact_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t *const exact_lock[3] = { &exact_lock_0, &exact_lock_1, &exact_lock_2 };

static long iterations;
static pthread_barrier_t wave_done, wave_go;
static volatile unsigned long shared_counter;

__attribute__((noinline)) static void site_a(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	shared_counter++;
	pthread_mutex_unlock(m);
}

__attribute__((noinline)) static void site_b(pthread_mutex_t *m)
{
	pthread_mutex_lock(m);
	shared_counter += 2;
	pthread_mutex_unlock(m);
}

__attribute__((noinline)) static void site_try(pthread_mutex_t *m)
{
	while (pthread_mutex_trylock(m) != 0)
		sched_yield();
	shared_counter += 3;
	pthread_mutex_unlock(m);
}

__attribute__((noinline)) static void site_wr(void)
{
	pthread_rwlock_wrlock(&exact_rwlock);
	shared_counter += 4;
	pthread_rwlock_unlock(&exact_rwlock);
}

__attribute__((noinline)) static void site_rd(void)
{
	pthread_rwlock_rdlock(&exact_rwlock);
	(void)shared_counter;
	pthread_rwlock_unlock(&exact_rwlock);
}

__attribute__((noinline)) static void site_clock(pthread_mutex_t *m)
{
	struct timespec far = { .tv_sec = INT32_MAX };
	if (pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &far) != 0)
		exit(3);
	shared_counter += 5;
	pthread_mutex_unlock(m);
}

__attribute__((noinline)) static void site_clock_rd(void)
{
	struct timespec far = { .tv_sec = INT32_MAX };
	if (pthread_rwlock_clockrdlock(&exact_rwlock, CLOCK_REALTIME, &far) != 0)
		exit(3);
	(void)shared_counter;
	pthread_rwlock_unlock(&exact_rwlock);
}

/* Holds m (its own call site) and times out taking it again with a
 * deadline already past. */
__attribute__((noinline)) static void clock_timeout(pthread_mutex_t *m)
{
	struct timespec past = { .tv_sec = 0, .tv_nsec = 0 };
	pthread_mutex_lock(m);
	int rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &past);
	pthread_mutex_unlock(m);
	if (rc != ETIMEDOUT)
		exit(4);
}

static void *worker(void *arg)
{
	long k = (long)arg % 1000;
	int hold = (long)arg >= 1000;
	for (long i = 0; i < iterations; i++) {
		pthread_mutex_t *m = exact_lock[(i + k) % 3];
		switch (i % 4) {
		case 0: site_a(m); break;
		case 1: site_b(m); break;
		case 2: site_try(m); break;
		default:
			if (i % 8 == 3)
				site_wr();
			else
				site_rd();
		}
	}
	if (hold) {
		pthread_barrier_wait(&wave_done);
		pthread_barrier_wait(&wave_go);
	}
	return NULL;
}

/* A wave: its threads are numbered 0..n-1; with `hold` they wait alive
 * after their iterations until main lets them go. */
static int wave(pthread_t *th, int n, int hold)
{
	for (int k = 0; k < n; k++)
		if (pthread_create(&th[k], NULL, worker, (void *)(long)(hold ? 1000 + k : k)) != 0)
			return 1;
	return 0;
}

static void *fork_thread(void *arg)
{
	long n = (long)arg;
	for (long i = 0; i < n; i++)
		site_a(&exact_lock_0);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int threads = atoi(argv[1]);
	iterations = atol(argv[2]);
	long fork_n = atol(argv[3]);
	if (threads < 1 || threads > 64 || iterations <= 0 || iterations % 24 || fork_n < 0)
		return 2;
	pthread_t th[64];
	/* Wave 1: runs and exits. */
	if (wave(th, threads, 0))
		return 1;
	for (int k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	/* Wave 2: runs, then waits alive while the reader looks. */
	pthread_barrier_init(&wave_done, NULL, (unsigned)threads + 1);
	pthread_barrier_init(&wave_go, NULL, (unsigned)threads + 1);
	if (wave(th, threads, 1))
		return 1;
	pthread_barrier_wait(&wave_done);
	printf("paused\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	pthread_barrier_wait(&wave_go);
	for (int k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	/* Wave 3: the slots the others left. */
	if (wave(th, threads, 0))
		return 1;
	for (int k = 0; k < threads; k++)
		pthread_join(th[k], NULL);
	for (long i = 0; i < fork_n; i++) {
		site_a(&exact_lock_0);
		site_clock(&exact_lock_1);
		site_clock_rd();
	}
	clock_timeout(&exact_lock_2);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		pthread_t t;
		for (long i = 0; i < fork_n; i++)
			site_a(&exact_lock_0);
		if (pthread_create(&t, NULL, fork_thread, (void *)fork_n) != 0 || pthread_join(t, NULL))
			exit(1);
		exit(0);
	}
	for (long i = 0; i < fork_n; i++)
		site_a(&exact_lock_0);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	printf("child %d\n", (int)pid);
	return 0;
}
