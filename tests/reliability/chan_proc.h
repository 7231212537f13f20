/*
 * chan_proc.h - helpers shared by the channel reliability tests: a
 * chan_service process in a private temporary directory, waiting on
 * conditions with deadlines, and what /proc says about a process.
 * Header-only (each test is one executable); only pids started here are
 * ever signalled.
 */
#ifndef THOTH_CHAN_PROC_H
#define THOTH_CHAN_PROC_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../common/tmpdir.h"

typedef struct chan_proc_env {
	char dir[256];
	char sock[300];
	char log[300];          /* the service's stderr */
	pid_t service;
} chan_proc_env_t;

static inline uint64_t chan_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void chan_nap_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static inline int chan_env_init(chan_proc_env_t *env)
{
	memset(env, 0, sizeof *env);
	if (!test_sock_template(env->dir, TEST_SOCK_DIR_CAP("/svc.sock"), "thoth-relchan"))
		return -1;
	if (!mkdtemp(env->dir)) {
		fprintf(stderr, "chan_env_init: mkdtemp %s: %s\n", env->dir, strerror(errno));
		return -1;
	}
	snprintf(env->sock, sizeof env->sock, "%s/svc.sock", env->dir);
	snprintf(env->log, sizeof env->log, "%s/svc.log", env->dir);
	return 0;
}

/* Start chan_service on env->sock with extra arguments (NULL-terminated);
 * wait (deadline 5 s) until the socket exists.  0 or -1. */
static inline int chan_service_start(chan_proc_env_t *env, const char *service_bin, ...)
{
	const char *argv[32] = { service_bin, env->sock };
	int n = 2;
	va_list ap;
	va_start(ap, service_bin);
	for (const char *a = va_arg(ap, const char *); a && n < 31; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	unlink(env->sock);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(env->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execv(service_bin, (char *const *)argv);
		_exit(127);
	}
	env->service = pid;
	for (uint64_t end = chan_now_ns() + 5000000000ull; chan_now_ns() < end;) {
		if (access(env->sock, F_OK) == 0)
			return 0;
		chan_nap_ms(5);
	}
	return -1;
}

/* Wait for PID to exit, at most TIMEOUT_MS.  Its wait status, or -1 if it
 * is still running then (it is left running: the caller decides). */
static inline int chan_wait_exit(pid_t pid, unsigned timeout_ms)
{
	for (uint64_t end = chan_now_ns() + (uint64_t)timeout_ms * 1000000u;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0 || chan_now_ns() >= end)
			return -1;
		chan_nap_ms(2);
	}
}

/* SIGTERM the service; SIGKILL if it has not stopped within 5 s.  Returns
 * how many ms it took to stop on SIGTERM, or -1 if it had to be killed. */
static inline int chan_service_stop(chan_proc_env_t *env)
{
	if (env->service <= 0)
		return 0;
	uint64_t t0 = chan_now_ns();
	kill(env->service, SIGTERM);
	int st = chan_wait_exit(env->service, 5000);
	int ms = (int)((chan_now_ns() - t0) / 1000000u);
	if (st < 0) {
		kill(env->service, SIGKILL);
		waitpid(env->service, NULL, 0);
		ms = -1;
	}
	env->service = 0;
	return ms;
}

/* Remove the temporary directory and everything in it. */
static inline void chan_env_fini(chan_proc_env_t *env)
{
	chan_service_stop(env);
	DIR *d = opendir(env->dir);
	if (d) {
		struct dirent *e;
		char p[600];
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(p, sizeof p, "%s/%s", env->dir, e->d_name);
				unlink(p);
			}
		closedir(d);
	}
	rmdir(env->dir);
}

/* utime + stime of PID in clock ticks (/proc/PID/stat), or -1. */
static inline long chan_cpu_ticks(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	if (!s)
		return -1;
	/* Fields after the name: state(3) ... utime(14) stime(15). */
	unsigned long ut = 0, st = 0;
	if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (long)(ut + st);
}

/* Times PID's main thread went to sleep and woke (voluntary context
 * switches): constant while it is idle with nothing to wake it. */
static inline long chan_wakeups(pid_t pid)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/task/%d/status", (int)pid, (int)pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

static inline int chan_count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* A plain connection to a Unix socket (nothing sent): fd or -1. */
static inline int chan_raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

#endif
