/* cputime.c - run a command and write the CPU time it used (user + system,
 * its whole process tree that it waited for), for bench_locks.
 *
 *   cputime [-f] OUTFILE CMD ARGS...
 *
 * -f: also its minor page faults, on the same line ("CPU FAULTS"): on this
 * VM the first touch of a page costs ~25 us, so what a profiler's tables
 * touch is part of its cost (bench_locks_misses).
 *
 * On a machine shared with other work, wall time says how much of the CPUs
 * the command got; CPU time says what its work cost, which is what a
 * profiler's overhead adds to.  SIGTERM and SIGINT are passed on to CMD
 * (bench_locks stops memcached this way).  Exit status: CMD's (128 + its
 * signal), 127 if it could not be started.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

int main(int argc, char **argv)
{
	int faults = argc > 1 && strcmp(argv[1], "-f") == 0;
	argc -= faults;
	argv += faults;
	if (argc < 3) {
		fprintf(stderr, "usage: cputime [-f] OUTFILE CMD [ARGS...]\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = forward };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 127;
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	child = pid;
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0)
		;
	FILE *f = fopen(argv[1], "w");
	if (f) {
		fprintf(f, "%.6f", (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
				   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
		if (faults)
			fprintf(f, " %ld", ru.ru_minflt);
		fputc('\n', f);
		fclose(f);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
