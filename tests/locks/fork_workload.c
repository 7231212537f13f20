/* fork_workload.c - contention before and after fork().
 *
 * The parent holds `fork_lock` across fork() (both processes release
 * it afterwards), then the child forces 3 contended acquisitions and the
 * parent 5 (a second thread asleep in pthread_mutex_lock while the
 * holder still holds it).  Under thothlock each process has its own table:
 * 3 in the child's, 5 in the parent's, none counted twice.
 *
 * `fork_workload warm`: the parent's main thread takes warm_lock 5,000
 * times (past contention mode's 4,096 exact acquisitions: it samples one
 * in 64), then forks; the child takes child_lock 100 times.  The child's
 * thread starts afresh: 100 exact, nothing sampled (it inherited the
 * parent's sampling state: 136, the first count carrying the parent's
 * weight).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../kernel/sched/procstat.h"

pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int waiter_tid, go, done;
static int rounds;

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
	(void)arg;
	atomic_store(&waiter_tid, (int)syscall(SYS_gettid));
	for (int r = 1; r <= rounds; r++) {
		while (atomic_load(&go) < r)
			sched_yield();
		pthread_mutex_lock(&fork_lock);
		pthread_mutex_unlock(&fork_lock);
		atomic_store(&done, r);
	}
	return NULL;
}

static int contend(int n)
{
	rounds = n;
	atomic_store(&waiter_tid, 0);
	atomic_store(&go, 0);
	atomic_store(&done, 0);
	pthread_t th;
	if (pthread_create(&th, NULL, waiter, NULL) != 0)
		return 1;
	while (!atomic_load(&waiter_tid))
		sched_yield();
	for (int r = 1; r <= n; r++) {
		pthread_mutex_lock(&fork_lock);
		atomic_store(&go, r);
		while (!sleeping(atomic_load(&waiter_tid)) || atomic_load(&done) >= r)
			sched_yield();
		pthread_mutex_unlock(&fork_lock);
		while (atomic_load(&done) < r)
			sched_yield();
	}
	return pthread_join(th, NULL) != 0;
}

pthread_mutex_t warm_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;

static int warm(void)
{
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&warm_lock);
		pthread_mutex_unlock(&warm_lock);
	}
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		for (int i = 0; i < 100; i++) {
			pthread_mutex_lock(&child_lock);
			pthread_mutex_unlock(&child_lock);
		}
		_exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	printf("child %d\n", (int)pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "warm") == 0)
		return warm();
	pthread_mutex_lock(&fork_lock);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	pthread_mutex_unlock(&fork_lock);
	if (pid == 0)
		_exit(contend(3));
	int rc = contend(5);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 1;
	printf("child %d\n", (int)pid);
	return rc;
}
