/* ns_workload.c - a known number of acquisitions in two processes, run in a
 * pid namespace of its own under thothlock (test_locks_pid_namespace:
 * `thothlock -- unshare -pf --mount-proc ns_workload`).
 *
 *   ns_workload N
 *
 * Takes `ns_lock` N times, forks a child that takes `ns_child_lock` 2N
 * times and exits (ns_workload_b: `nsb_lock`, `nsb_child_lock`), waits for it and prints "pid P child C": the pids as
 * the namespace sees them (1 and 2 when it is the namespace's first
 * process), not the ones thothlock's kernel names.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ns_workload_b (NS_WORKLOAD_B): the same with other names and another
 * layout, so that a lock symbolized against the other binary's maps is
 * misnamed (test_locks_pid_namespace's two namespaces). */
#ifdef NS_WORKLOAD_B
#define ns_lock nsb_lock
#define ns_child_lock nsb_child_lock
char nsb_padding[65536] = { 1 };
#endif
pthread_mutex_t ns_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t ns_child_lock = PTHREAD_MUTEX_INITIALIZER;

static void take(pthread_mutex_t *m, long n)
{
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
}

int main(int argc, char **argv)
{
	long n = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
	if (n <= 0) {
		fprintf(stderr, "usage: ns_workload N (N > 0 acquisitions)\n");
		return 2;
	}
	take(&ns_lock, n);
	pid_t child = fork();
	if (child < 0) {
		perror("ns_workload: fork");
		return 1;
	}
	if (child == 0) {
		take(&ns_child_lock, 2 * n);
		_exit(0);
	}
	int st;
	if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "ns_workload: the child failed\n");
		return 1;
	}
	printf("pid %d child %d\n", (int)getpid(), (int)child);
	return 0;
}
