/* counted_workload.c - contention mode counts an acquisition before it is
 * attempted, never inside the hold, and takes back attempts that acquire
 * nothing.
 *
 * main takes held_lock; a thread's trylock of it (EBUSY) and timedlock
 * (10 ms, ETIMEDOUT) acquire nothing; a second thread's lock of it
 * blocks.  Once that waiter sleeps, the program prints "paused" and reads
 * a line: the live table must already count the waiter's acquisition (2,
 * one trylock_busy, one timeout), since it is counted before the attempt;
 * a library that counts after the lock returns shows 1.  Then main
 * releases, the waiter takes and releases it: 2 at exit.  Every thread is
 * within its first 4,096 acquisitions: each one counted.
 *
 * `counted_workload misses`: one thread takes 2,048 mutexes in turn, 3,072
 * acquisitions: past 1,024 misses of its 512-way cache (its misses are
 * sampled from then on), within its first 4,096 acquisitions (none of them
 * sampled).  The report must say that cache misses were sampled, not
 * acquisitions.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "../../kernel/sched/procstat.h"

pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int waiter_tid;

static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	return state && state[0] == 'S';
}

static void *failing(void *arg)
{
	(void)arg;
	intptr_t bad = 0;
	if (pthread_mutex_trylock(&held_lock) != EBUSY)
		bad = 1;
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_nsec += 10 * 1000 * 1000;
	if (limit.tv_nsec >= 1000000000) {
		limit.tv_sec++;
		limit.tv_nsec -= 1000000000;
	}
	if (pthread_mutex_timedlock(&held_lock, &limit) != ETIMEDOUT)
		bad = 1;
	return (void *)bad;
}

static void *waiter(void *arg)
{
	(void)arg;
	atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
	if (pthread_mutex_lock(&held_lock) != 0)
		return (void *)1;
	pthread_mutex_unlock(&held_lock);
	return NULL;
}

static pthread_mutex_t many[2048];

static int misses(void)
{
	for (int i = 0; i < 2048; i++)
		pthread_mutex_init(&many[i], NULL);
	for (int i = 0; i < 3072; i++) {
		pthread_mutex_lock(&many[i % 2048]);
		pthread_mutex_unlock(&many[i % 2048]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "misses") == 0)
		return misses();
	pthread_t f, w;
	void *ret;
	pthread_mutex_lock(&held_lock);
	pthread_create(&f, NULL, failing, NULL);
	pthread_join(f, &ret);
	if (ret)
		return 1;
	pthread_create(&w, NULL, waiter, NULL);
	for (int i = 0; i < 10000 && !(atomic_load(&waiter_tid) && sleeping(atomic_load(&waiter_tid)));
	     i++)
		usleep(1000);
	usleep(2000);
	printf("paused\n");
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	pthread_mutex_unlock(&held_lock);
	pthread_join(w, &ret);
	return ret ? 1 : 0;
}
