/*
 * bench_pm_lease - what one lease call costs the broker against how many
 * leases it already holds (docs/PM.md, "Cost of a lease call").
 *
 * A bus and 8 disks that need it; N background leases spread over the
 * disks (assertive and opportunistic, levels 1-2, one in four with a
 * latency bound), every transition answered.  Then ITERS times: lease
 * disk0 at a level it is already held at, drop it: no transition, so the
 * figure is the broker's own bookkeeping.  Prints ns per lease + drop
 * pair; for instructions run it under
 *   valgrind --tool=callgrind --toggle-collect=churn bench_pm_lease N ITERS
 * and divide by ITERS.
 *
 * Usage: bench_pm_lease [N [ITERS]]   (default: 10 100 1000 10000, 20000)
 * With no N the 10-lease run comes first, the baseline: every other count
 * prints its ratio to it.  With N, that count alone (for callgrind).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"

#define DISKS 8
#define BASE_LEASES 10        /* the baseline: a call with few leases held */

typedef struct pending {
	uint32_t element, to;
} pending_t;

static pending_t pend[64];
static unsigned n_pend;

static void on_transition(void *arg, uint64_t driver, uint32_t element, uint32_t from, uint32_t to)
{
	(void)arg, (void)driver, (void)from;
	if (n_pend < 64)
		pend[n_pend++] = (pending_t){ element, to };
}

static void settle(thoth_pm_broker_t *b)
{
	while (n_pend) {
		pending_t p = pend[--n_pend];
		thoth_pm_broker_level_reached(b, p.element, p.to, 0);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static thoth_pm_broker_t *make(unsigned n, uint32_t *disk0)
{
	thoth_pm_broker_ops_t ops = { .transition = on_transition };
	thoth_pm_broker_t *b;
	if (thoth_pm_broker_new(&ops, NULL, 0, &b))
		exit(1);
	thoth_pm_element_decl_t d[1 + DISKS];
	memset(d, 0, sizeof d);
	snprintf(d[0].name, sizeof d[0].name, "bus");
	d[0].n_levels = 2;
	d[0].levels[0] = (thoth_pm_level_decl_t){ "OFF", 0.0, 100, 2000 };
	d[0].levels[1] = (thoth_pm_level_decl_t){ "ON", 50.0, 0, 0 };
	for (int i = 1; i <= DISKS; i++) {
		snprintf(d[i].name, sizeof d[i].name, "disk%d", i - 1);
		d[i].n_levels = 3;
		d[i].levels[0] = (thoth_pm_level_decl_t){ "OFF", 0.0, 1000, 50000 };
		d[i].levels[1] = (thoth_pm_level_decl_t){ "IDLE", 100.0, 100, 500 };
		d[i].levels[2] = (thoth_pm_level_decl_t){ "ACTIVE", 2000.0, 0, 0 };
		d[i].n_deps = 1;
		d[i].deps[0] = (thoth_pm_dep_decl_t){ 1, "bus", 1, THOTH_PM_ASSERTIVE };
	}
	uint32_t ids[1 + DISKS];
	if (thoth_pm_broker_declare(b, 1, d, 1 + DISKS, 0, ids))
		exit(1);
	settle(b);
	for (unsigned i = 0; i < n; i++) {
		uint32_t e = ids[1 + i % DISKS];
		thoth_pm_lease_kind_t k = i % 3 ? THOTH_PM_LEASE_ASSERTIVE : THOTH_PM_LEASE_OPPORTUNISTIC;
		uint32_t qos = i % 4 == 0 ? 1000 + i % 7 : 0;
		if (thoth_pm_broker_lease(b, 100 + i % 50, e, 1 + i % 2, k, qos, 0, NULL))
			exit(1);
		settle(b);
	}
	*disk0 = ids[1];
	return b;
}

__attribute__((noinline)) void churn(thoth_pm_broker_t *b, uint32_t e, unsigned iters);
__attribute__((noinline)) void churn(thoth_pm_broker_t *b, uint32_t e, unsigned iters)
{
	for (unsigned i = 0; i < iters; i++) {
		uint64_t l;
		if (thoth_pm_broker_lease(b, 7, e, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l) ||
		    thoth_pm_broker_drop(b, 7, l, 0))
			exit(2);
		settle(b);
	}
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double one(unsigned n, unsigned iters, double base)
{
	uint32_t e;
	thoth_pm_broker_t *b = make(n, &e);
	double ns[5];
	for (int r = 0; r < 5; r++) {
		uint64_t t = now_ns();
		churn(b, e, iters);
		ns[r] = (double)(now_ns() - t) / iters;
	}
	qsort(ns, 5, sizeof ns[0], cmp);
	printf("%6u leases: %9.1f ns per lease + drop (median of 5 x %u)", n, ns[2], iters);
	if (base > 0)
		printf(", %.2fx the %u-lease baseline", ns[2] / base, BASE_LEASES);
	printf("\n");
	thoth_pm_broker_free(b);
	return ns[2];
}

int main(int argc, char **argv)
{
	unsigned iters = argc > 2 ? (unsigned)atoi(argv[2]) : 20000;
	if (argc > 1) {                 /* one count, alone: for callgrind's churn */
		one((unsigned)atoi(argv[1]), iters, 0);
		return 0;
	}
	/* The baseline first, in this run: each count's cost is printed as a
	 * ratio to a call with BASE_LEASES held (1.0x: flat in the count). */
	double base = one(BASE_LEASES, iters, 0);
	const unsigned ns[] = { 100, 1000, 10000 };
	for (unsigned i = 0; i < 3; i++)
		one(ns[i], ns[i] >= 10000 ? iters / 20 : iters, base);
	return 0;
}
