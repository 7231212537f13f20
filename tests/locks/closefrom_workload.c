/* closefrom_workload.c - a daemon's start-up: close every descriptor it did
 * not open, then take locks (test_locks_closefrom).
 *
 *   closefrom_workload MODE N
 *
 * MODE: close_range (close_range(3, ~0U, 0)), closefrom (closefrom(3)),
 * loop (close() over every number from 3 to the descriptor limit), dup2
 * (dup2(2, fd) onto every descriptor open at start, which takes
 * libthothlock's numbers, then closefrom(3)), vfork (the same dup2s in a
 * vfork child, which shares this memory but not these descriptors, then
 * closefrom(3) here).  First the odd calls: a
 * range with first > last and unknown flags must still fail with EINVAL,
 * CLOSE_RANGE_CLOEXEC over everything must succeed, and dup3 with an
 * unknown flag (EINVAL) or dup2 of a bad descriptor (EBADF) onto each
 * descriptor open at start must fail as the kernel says; after the close,
 * each of those closed again must fail with EBADF.
 * Then takes `cf_parent_lock` N times, forks a worker that takes `cf_lock`
 * N times, prints "ready WORKER PARENT" and waits for its stdin to close
 * (or a kill -9); the parent waits for it and says how it ended.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

pthread_mutex_t cf_parent_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t cf_lock = PTHREAD_MUTEX_INITIALIZER;

static void take(pthread_mutex_t *m, long n)
{
	for (long i = 0; i < n; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
}

static int bad(const char *what)
{
	fprintf(stderr, "closefrom_workload: %s (errno %s)\n", what, strerror(errno));
	return 3;
}

/* The descriptors from 3 open now, at most 64, into NUMS: their count. */
static int open_fds(int nums[64])
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) && n < 64) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd >= 3 && fd != dirfd(d))
			nums[n++] = fd;
	}
	closedir(d);
	return n;
}

/* Fd 2 dup2'd onto each of NUMS[N] in a vfork child: its own
 * descriptors, this process's memory.  Its own frame: nothing here lives
 * across the vfork in a register the child could clobber. */
static __attribute__((noinline)) int dup_in_vfork_child(const int *nums, int n)
{
	pid_t child = vfork();
	if (child == 0) {
		for (int i = 0; i < n; i++)
			if (dup2(2, nums[i]) != nums[i])
				_exit(1);
		_exit(0);
	}
	int st;
	return child > 0 && waitpid(child, &st, 0) == child && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Fd 2 dup2'd onto every descriptor open now (IN_VFORK_CHILD: in a vfork
 * child).  -1 if one failed. */
static int dup_onto_all(bool in_vfork_child)
{
	int nums[64], n = open_fds(nums);
	if (n < 0)
		return -1;
	if (in_vfork_child)
		return dup_in_vfork_child(nums, n);
	for (int i = 0; i < n; i++)
		if (dup2(2, nums[i]) != nums[i])
			return -1;
	return n;
}

int main(int argc, char **argv)
{
	long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
	const char *mode = argc == 3 ? argv[1] : "";
	if (n <= 0) {
		fprintf(stderr, "usage: closefrom_workload close_range|closefrom|loop|dup2|vfork N\n");
		return 2;
	}
	if (close_range(5, 3, 0) != -1 || errno != EINVAL)
		return bad("close_range(5, 3, 0) did not fail with EINVAL");
	if (close_range(3, ~0U, 1 << 30) != -1 || errno != EINVAL)
		return bad("close_range with an unknown flag did not fail with EINVAL");
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
		return bad("close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) failed");
	/* Onto libthothlock's numbers, calls the kernel refuses fail as it
	 * says (bad flags before a bad descriptor) and move nothing. */
	int nums[64], k = open_fds(nums);
	for (int i = 0; i < k; i++) {
		if (dup3(-1, nums[i], 1 << 30) != -1 || errno != EINVAL)
			return bad("dup3 with an unknown flag onto a descriptor open at start did not fail with EINVAL");
		if (dup2(-1, nums[i]) != -1 || errno != EBADF)
			return bad("dup2 of a bad descriptor onto one open at start did not fail with EBADF");
	}
	if (strcmp(mode, "close_range") == 0) {
		if (close_range(3, ~0U, 0) != 0)
			return bad("close_range(3, ~0U, 0) failed");
	} else if (strcmp(mode, "closefrom") == 0) {
		closefrom(3);
	} else if (strcmp(mode, "loop") == 0) {
		struct rlimit rl;
		long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024;
		if (max > 1 << 20)
			max = 1 << 20;
		for (long fd = 3; fd < max; fd++)
			(void)close((int)fd);
	} else if (strcmp(mode, "dup2") == 0 || strcmp(mode, "vfork") == 0) {
		if (dup_onto_all(mode[0] == 'v') < 0)
			return bad("dup2 onto a descriptor open at start failed");
		closefrom(3);
	} else {
		fprintf(stderr, "closefrom_workload: unknown mode '%s'\n", mode);
		return 2;
	}
	/* Every number open at start is closed now, in this program's view:
	 * closing one again fails with EBADF, as the kernel says without the
	 * profiler (it answered 0 for libthothlock's own, lock44). */
	for (int i = 0; i < k; i++)
		if (close(nums[i]) != -1 || errno != EBADF)
			return bad("a second close of a descriptor open at start did not fail with EBADF");
	take(&cf_parent_lock, n);
	pid_t worker = fork();
	if (worker < 0)
		return bad("fork");
	if (worker == 0) {
		take(&cf_lock, n);
		printf("ready %d %d\n", (int)getpid(), (int)getppid());
		fflush(stdout);
		char buf[64];
		while (read(0, buf, sizeof buf) > 0)
			;
		_exit(0);
	}
	int st;
	if (waitpid(worker, &st, 0) != worker)
		return bad("waitpid");
	if (WIFSIGNALED(st))
		printf("worker killed by %d\n", WTERMSIG(st));
	else
		printf("worker exited %d\n", WEXITSTATUS(st));
	return 0;
}
