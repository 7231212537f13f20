/*
 * probe_target.c - a traced process for test_probe_live: it hands thothd
 * its trace buffer (a control connection, as every thoth program does) and
 * fires msg_send about every 200 us until SIGTERM; then it prints how many
 * it fired.  It knows nothing of probes: they are attached into it live.
 *   probe_target RUNTIME_DIR [HOSTILE]
 * With HOSTILE (test_probe_maps_ctl_hostile) it lies about its maps: once
 * a probe's maps memfd is in its fd table, it puts there instead a FIFO
 * (HOSTILE "fifo") or the file HOSTILE opened read-only with a read
 * lease taken on it, and says "swapped N"; at exit it says "lease broken"
 * when someone opened that file for writing (the lease's signal).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "thoth/service.h"
#include "thoth/trace.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static volatile sig_atomic_t lease_broken;

static void on_lease(int sig)
{
	(void)sig;
	lease_broken = 1;
}

/* The fd number of a probe's maps memfd in this process, or -1. */
static int maps_fd_number(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	int found = -1;
	struct dirent *e;
	while (found < 0 && (e = readdir(dir)) != NULL) {
		char target[128];
		ssize_t n = readlinkat(dirfd(dir), e->d_name, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strstr(target, "memfd:thoth-probe-maps"))
			found = atoi(e->d_name);
	}
	closedir(dir);
	return found;
}

/* The maps descriptor N replaced by what HOSTILE names: 0, or -1. */
static int swap_maps(int n, const char *hostile)
{
	int fd;
	if (strcmp(hostile, "fifo") == 0) {
		int p[2];
		if (pipe(p) != 0)
			return -1;
		close(p[1]);
		fd = p[0];
	} else {
		fd = open(hostile, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		signal(SIGIO, on_lease);
		if (fcntl(fd, F_SETLEASE, F_RDLCK) != 0)
			return -1;
	}
	if (dup2(fd, n) < 0)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3)
		return 2;
	const char *hostile = argc == 3 ? argv[2] : NULL;
	signal(SIGTERM, on_term);
	if (thoth_trace_init_process("probe_target"))
		return 1;
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, argv[1], 5000))
		return 1;
	printf("ready %d\n", getpid());
	fflush(stdout);
	unsigned long long n = 0;
	while (!stop) {
		THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, 7, 1, 2, (uint32_t)n, 2000,
		                THOTH_TRACE_INLINE, 0);
		n++;
		if (hostile && n % 64 == 0) {
			int m = maps_fd_number();
			if (m >= 0) {
				if (swap_maps(m, hostile) != 0) {
					perror("probe_target: swap maps");
					return 1;
				}
				printf("swapped %d\n", m);
				fflush(stdout);
				hostile = NULL;
			}
		}
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);    /* pacing, not synchronisation */
	}
	printf("fired %llu\n", n);
	if (lease_broken)
		printf("lease broken\n");
	thoth_control_close(&ctl);
	return 0;
}
