/*
 * bench_baselines_main.c - round trips over pipe, Unix stream, Unix
 * seqpacket and eventfd + shared memory (baselines.c), one line per
 * transport and payload size.
 *
 * usage: bench_baselines [--iters N] [--sizes 64,4096,65536,1048576,16777216]
 *
 * Timed round trips per size: 20000 up to 4 KiB, 2000 up to 64 KiB, 200 up
 * to 1 MiB, 30 above.  --iters N sets the count for sizes up to 4 KiB and
 * scales the larger ones by the same ratios (N/10, N/100, 3N/2000, at least
 * 1).  Warm-up: a tenth of the timed count, between 3 and 1000.  The client
 * runs on the first CPU this process may use, the server on the second (both
 * on the first when there is only one).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"

#define MAX_SIZES 32

static const char *const kinds[] = { "pipe", "unix-stream", "unix-seqpacket", "eventfd-shm" };

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--iters N] [--sizes 64,4096,65536,1048576,16777216]\n", argv0);
}

static int parse_ulong(const char *s, unsigned long long max, unsigned long long *v)
{
	char *end;
	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return -1;
	*v = strtoull(s, &end, 0);
	return errno || *end || *v == 0 || *v > max ? -1 : 0;
}

static int parse_sizes(const char *s, size_t *sizes, size_t *n)
{
	char tmp[512];
	if (!s || strlen(s) >= sizeof tmp)
		return -1;
	strcpy(tmp, s);
	*n = 0;
	for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned long long v;
		if (*n == MAX_SIZES || parse_ulong(t, (size_t)1 << 30, &v))
			return -1;
		sizes[(*n)++] = (size_t)v;
	}
	return *n ? 0 : -1;
}

static unsigned iters_for(size_t size, unsigned long long base)
{
	unsigned long long n;
	if (size <= 4096)
		n = base;
	else if (size <= 65536)
		n = base / 10;
	else if (size <= 1048576)
		n = base / 100;
	else
		n = base * 3 / 2000;
	return n ? (unsigned)n : 1;
}

int main(int argc, char **argv)
{
	size_t sizes[MAX_SIZES] = { 64, 4096, 65536, 1048576, 16777216 };
	size_t nsizes = 5;
	unsigned long long base = 20000;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
			if (parse_ulong(argv[++i], 100000000, &base)) {
				usage(argv[0]);
				return 2;
			}
		} else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			if (parse_sizes(argv[++i], sizes, &nsizes)) {
				usage(argv[0]);
				return 2;
			}
		} else {
			usage(argv[0]);
			return 2;
		}
	}

	cpu_set_t set;
	int cpus[2] = { 0, 0 }, found = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
			if (CPU_ISSET(c, &set))
				cpus[found++] = c;
	if (found == 1)
		cpus[1] = cpus[0];

	printf("# client on CPU %d, server on CPU %d; one round trip = payload out, 64 B back\n",
	       cpus[0], cpus[1]);
	printf("%-15s %10s %7s %12s %12s %12s %14s %14s\n", "kind", "size", "iters", "p50_ns",
	       "p99_ns", "rt_per_s", "client_cpu_ns", "server_cpu_ns");
	fflush(stdout);

	int failures = 0;
	for (size_t s = 0; s < nsizes; s++) {
		unsigned iters = iters_for(sizes[s], base);
		unsigned warmup = iters / 10;
		warmup = warmup < 3 ? 3 : warmup > 1000 ? 1000 : warmup;
		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
			bench_rt_result_t r;
			if (bench_baseline_rt(kinds[k], sizes[s], warmup, iters, cpus[0], cpus[1], &r)) {
				printf("%-15s %10zu %7u %12s\n", kinds[k], sizes[s], iters, "FAILED");
				failures++;
			} else {
				printf("%-15s %10zu %7u %12.0f %12.0f %12.0f %14.0f %14.0f\n", kinds[k],
				       sizes[s], iters, r.p50_ns, r.p99_ns, r.msgs_per_s, r.client_cpu_ns,
				       r.server_cpu_ns);
			}
			fflush(stdout);
		}
	}
	return failures ? 1 : 0;
}
