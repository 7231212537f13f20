/*
 * testutil.h - the small helpers several tests wrote again line for line:
 * the monotonic clock in ns and ms, a qsort comparator for latency samples,
 * reading a child's output until a line says something, counting this
 * process's descriptors (a hostile peer's must all be closed), and putting
 * the calling thread on one CPU before it connects.
 */
#ifndef THOTH_TESTS_COMMON_TESTUTIL_H
#define THOTH_TESTS_COMMON_TESTUTIL_H

#include <dirent.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* CLOCK_MONOTONIC, the clock every deadline and latency of the tests is on. */
static inline uint64_t test_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t test_now_ms(void)
{
	return test_now_ns() / 1000000u;
}

/* Entries of directory PATH (not . and ..); -1 if it cannot be opened. */
static inline int test_count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* This process's open descriptors (not the one counting them). */
static inline int test_count_fds(void)
{
	int n = test_count_dir("/proc/self/fd");
	return n < 0 ? -1 : n - 1;
}

/* qsort order of uint64_t samples (medians, percentiles). */
static inline int test_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Read lines of F (a child's output) into LINE until one contains NEEDLE
 * (true) or TIMEOUT_MS passes or F ends (false). */
static inline bool test_read_line_until(FILE *f, const char *needle, char *line, size_t cap,
					unsigned timeout_ms)
{
	uint64_t end = test_now_ms() + timeout_ms;
	while (test_now_ms() < end) {
		struct pollfd p = { .fd = fileno(f), .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		if (!fgets(line, (int)cap, f))
			return false;
		if (strstr(line, needle))
			return true;
	}
	return false;
}

#ifdef _GNU_SOURCE              /* sched_setaffinity, sched_getcpu */
#include <sched.h>

/* Pin the calling thread to CPU and return once it runs there: a service
 * that hands a channel to the worker on the CPU its client last ran on
 * reads that CPU when the client connects.  false: it may not use CPU. */
static inline bool test_run_on_cpu(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof one, &one))
		return false;
	while (sched_getcpu() != cpu)
		sched_yield();
	return true;
}
#endif

#endif
