/*
 * pm_broker_soak: the fuzz target's checker on a seeded pseudo-random
 * operation stream (deterministic: same seed, same run).  `make test` runs
 * 10^5 operations; usage: pm_broker_soak [OPS [SEED]].  Prints ops/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "broker_ops.h"

int main(int argc, char **argv)
{
	unsigned long ops = argc > 1 ? strtoul(argv[1], NULL, 0) : 100000;
	unsigned long long x = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9e3779b97f4a7c15ull;
	/* About 2.5 bytes per operation (a burst of leases one more); 5 per
	 * op leaves room for operands. */
	size_t len = ops * 5;
	uint8_t *buf = malloc(len);
	if (!buf)
		return 2;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;           /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
	char why[512];
	pm_ops_stats_t st;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int r = pm_ops_run(buf, len, &st, why, sizeof why);
	clock_gettime(CLOCK_MONOTONIC, &b);
	free(buf);
	if (r) {
		fprintf(stderr, "pm_broker_soak: invariant broken: %s\n", why);
		return 1;
	}
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	printf("ops %llu (declared %llu, refused %llu, leases %llu (%llu refused at a limit), requests %llu (%llu refused at a limit): served %llu failed %llu withdrawn %llu; transitions %llu, kills %llu) in %.3f s: %.0f ops/s\n",
	       (unsigned long long)st.ops, (unsigned long long)st.declared,
	       (unsigned long long)st.refused_declarations, (unsigned long long)st.leases,
	       (unsigned long long)st.refused_leases,
	       (unsigned long long)st.requests, (unsigned long long)st.refused_requests,
	       (unsigned long long)st.served,
	       (unsigned long long)st.failed, (unsigned long long)st.withdrawn,
	       (unsigned long long)st.transitions, (unsigned long long)st.kills, s, (double)st.ops / s);
	/* the shares' checks ran, not only the grants' (a model that took
	 * any refusal had nothing to find) */
	if (ops >= 100000 && (!st.refused_leases || !st.refused_requests)) {
		fprintf(stderr, "pm_broker_soak: no lease or no request reached a limit: the shares went unchecked\n");
		return 1;
	}
	if (st.ops < ops) {
		fprintf(stderr, "pm_broker_soak: only %llu of %lu operations ran\n",
			(unsigned long long)st.ops, ops);
		return 1;
	}
	return 0;
}
