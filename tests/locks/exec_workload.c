/* exec_workload.c - a profiled program that execs (test_locks_exec).
 *
 *   exec_workload bare      takes exec_lock 100 times, then execs `ls -l
 *                           /proc/self/fd` without LD_PRELOAD (execlp: the
 *                           environment): the listing must show neither
 *                           the table's memfd nor thothlock's socket
 *   exec_workload bare-env  the same through execve with an environment
 *                           of its own (no LD_PRELOAD)
 *   exec_workload again     a failed exec without the preload first (the
 *                           socket is marked close-on-exec for it, then
 *                           must be unmarked; errno ENOENT kept), a
 *                           posix_spawnp of `ls -l /proc/self/fd` without it
 *                           (neither descriptor listed; the socket unmarked
 *                           after), then execs itself with the preload:
 *                           `exec_workload child`, which takes
 *                           exec_child_lock 100 times: its table must reach
 *                           thothlock through the socket, nothing said
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

pthread_mutex_t exec_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t exec_child_lock = PTHREAD_MUTEX_INITIALIZER;

static void take(pthread_mutex_t *m)
{
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
}

int main(int argc, char **argv)
{
	const char *mode = argc == 2 ? argv[1] : "";
	if (strcmp(mode, "child") == 0) {
		take(&exec_child_lock);
		return 0;
	}
	take(&exec_lock);
	fflush(stdout);
	if (strcmp(mode, "bare") == 0) {
		unsetenv("LD_PRELOAD");
		execlp("ls", "ls", "-l", "/proc/self/fd", (char *)NULL);
	} else if (strcmp(mode, "bare-env") == 0) {
		char *const env[] = { "PATH=/usr/bin:/bin", NULL };
		char *const args[] = { "ls", "-l", "/proc/self/fd", NULL };
		execve("/bin/ls", args, env);
	} else if (strcmp(mode, "again") == 0) {
		char *const env[] = { "PATH=/usr/bin:/bin", NULL };
		char *const args[] = { "nonexistent", NULL };
		if (execve("/nonexistent/exec_workload", args, env) == 0)
			return 3;
		if (errno != ENOENT) {          /* the failed exec's errno, as the kernel said */
			fprintf(stderr, "exec_workload: a failed execve left errno %d, not ENOENT\n", errno);
			return 4;
		}
		/* posix_spawnp without the preload: ls lists its descriptors
		 * (on stdout), then the socket must be unmarked again */
		char *const ls[] = { "ls", "-l", "/proc/self/fd", NULL };
		pid_t pid;
		int st;
		if (posix_spawnp(&pid, "ls", NULL, NULL, ls, env) != 0 || waitpid(pid, &st, 0) != pid ||
		    !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "exec_workload: posix_spawnp ls failed\n");
			return 5;
		}
		execl("/proc/self/exe", "exec_workload", "child", (char *)NULL);
	} else {
		fprintf(stderr, "usage: exec_workload bare|bare-env|again\n");
		return 2;
	}
	perror("exec_workload: exec");
	return 1;
}
