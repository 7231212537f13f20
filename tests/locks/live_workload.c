/* live_workload.c - a process with known contention that stays alive.
 *
 *   live_workload CONTENTIONS [EXTRA_LOCKS]
 *
 * Forces CONTENTIONS contended acquisitions of `live_lock` (a global):
 * the main thread holds it until a second thread is blocked in
 * pthread_mutex_lock (asleep in the kernel, /proc/self/task/TID/stat 'S'),
 * then releases.  Prints "ready PID" and waits for its stdin to close, so a
 * test can read its statistics live (`thothctl locks`) and then end it.
 * EXTRA_LOCKS > 0: then one forced contention on each of that many heap
 * mutexes too (a long report: test_locks_thothd's pages).
 * A line "dlopen PATH" on stdin loads PATH (new code mapped: what makes
 * thothd's cached symbols of this process stale, test_lock_symcache) and
 * answers "opened" or "failed".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "../../kernel/sched/procstat.h"

pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t *_Atomic current = &live_lock;   /* the lock of this round */
static _Atomic int waiter_tid;
static _Atomic int go;          /* rounds the waiter may start */
static _Atomic int done;        /* rounds the waiter finished */

/* Thread TID of this process is asleep (state S: blocked on the lock). */
static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	return state && state[0] == 'S';
}

static int rounds;

static void *waiter(void *arg)
{
	(void)arg;
	atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
	for (int r = 1; r <= rounds; r++) {
		while (atomic_load(&go) < r)
			sched_yield();
		pthread_mutex_t *m = atomic_load(&current);
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
		atomic_store(&done, r);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int live_rounds = argc > 1 ? atoi(argv[1]) : 10;
	int extra = argc > 2 ? atoi(argv[2]) : 0;
	rounds = live_rounds + (extra > 0 ? extra : 0);
	pthread_mutex_t *heap = extra > 0 ? calloc((size_t)extra, sizeof *heap) : NULL;
	for (int i = 0; i < extra && heap; i++)
		pthread_mutex_init(&heap[i], NULL);
	pthread_t th;
	if (live_rounds < 1 || extra < 0 || (extra && !heap) ||
	    pthread_create(&th, NULL, waiter, NULL) != 0)
		return 2;
	while (!atomic_load(&waiter_tid))
		sched_yield();
	for (int r = 1; r <= rounds; r++) {
		pthread_mutex_t *m = r <= live_rounds ? &live_lock : &heap[r - live_rounds - 1];
		atomic_store(&current, m);
		pthread_mutex_lock(m);
		atomic_store(&go, r);
		/* Blocked in the lock: asleep, and it has not finished round r. */
		while (!sleeping(atomic_load(&waiter_tid)) || atomic_load(&done) >= r)
			sched_yield();
		pthread_mutex_unlock(m);
		while (atomic_load(&done) < r)
			sched_yield();
	}
	pthread_join(th, NULL);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	char line[4200];
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "dlopen ", 7) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		printf("%s\n", dlopen(line + 7, RTLD_NOW | RTLD_LOCAL) ? "opened" : "failed");
		fflush(stdout);
	}
	return 0;
}
