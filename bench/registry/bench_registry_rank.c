/*
 * bench_registry_rank - one resolve, and the federation's conflict count
 * (thoth_registry_remote_conflicts), on ONE name with N local + N remote
 * instances, N = 1 ... 5000: the per-call claim index against the original
 * walk per candidate (config.rank_by_walk), both in this run, with the
 * ratio walk / index (docs/BENCHMARKS.md).  Every answer is checked equal.
 *
 * Half the remote instances claim another major than the local ones (a
 * rolling upgrade), so the conflict count is (N+1)/2 and resolve's rank has
 * both kinds to order.
 *
 * Then N registrations of one name, N = 1000, 5000, 20000, from empty: each
 * new local instance's claims checked against the name's local instances by
 * register's index of local claims against the original walk over them
 * (config.register_by_walk), both in this run, with the ratio walk / index:
 * the walk is O(N^2) in all, the index O(N).  Every answer is checked (all
 * accepted, then one conflicting registration refused in the same words).
 *
 * Usage: bench_registry_rank [max_n [max_registrations]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return v[n / 2];
}

static thoth_registry_t *fill(size_t n, bool walk, thoth_registry_owner_t *owners[2])
{
	thoth_registry_config_t cfg = { .seed = 1, .max_per_owner = 100000, .rank_by_walk = walk };
	thoth_registry_t *reg;
	thoth_registry_owner_t *local, *peer;
	if (thoth_registry_new(&cfg, &reg) || thoth_registry_owner_new(reg, 1000, 1, NULL, &local) ||
	    thoth_registry_owner_new(reg, 1000, 2, NULL, &peer)) {
		fprintf(stderr, "bench_registry_rank: out of memory\n");
		exit(1);
	}
	thoth_registry_owner_set_federated(peer);
	owners[0] = local;
	owners[1] = peer;
	for (size_t i = 0; i < 2 * n; i++) {
		bool remote = i % 2;
		char addr[64];
		snprintf(addr, sizeof addr, remote ? "tcp:10.0.0.1:%zu" : "/run/echo-%zu.sock", i);
		thoth_common_InterfaceClaim_t c = {
			.package = thoth_str("thoth.echo"), .interface = thoth_str("Echo"),
			.interface_id = thoth_wire_fnv1a32("thoth.echo.Echo"),
			.major = (uint8_t)(remote && i % 4 == 1 ? 2 : 1), .minor = 0, .schema_hash = 0x1111,
		};
		thoth_registry_Registration_t r = {
			.name = thoth_str("echo"), .version = thoth_str(c.major == 2 ? "2.0.0" : "1.0.0"),
			.endpoint = { .addr = thoth_str(addr),
				      .locality = remote ? THOTH_COMMON_LOCALITY_REMOTE
							 : THOTH_COMMON_LOCALITY_HOST,
				      .pid = 1 },
			.ttl_ms = remote ? 0 : 3600000,
			.claims = { &c, 1 },
		};
		uint64_t lease;
		int rc = thoth_registry_register(reg, remote ? peer : local, &r, 0, &lease);
		if (rc) {
			fprintf(stderr, "bench_registry_rank: register %zu: %d %s\n", i, rc,
				thoth_registry_refusal(reg));
			exit(1);
		}
	}
	return reg;
}

/* N registrations of "echo" (one compatible claim each: minors 0..9, so the
 * walk compares every pair) into a fresh registry; the time of all of them,
 * and the refusal of one 2.0 claim after them into REFUSAL. */
static uint64_t register_n(size_t n, bool walk, char *refusal, size_t refusal_len)
{
	thoth_registry_config_t cfg = { .seed = 1, .max_per_owner = 100000, .register_by_walk = walk };
	thoth_registry_t *reg;
	thoth_registry_owner_t *local;
	if (thoth_registry_new(&cfg, &reg) || thoth_registry_owner_new(reg, 1000, 1, NULL, &local)) {
		fprintf(stderr, "bench_registry_rank: out of memory\n");
		exit(1);
	}
	uint64_t took = 0;
	for (size_t i = 0; i <= n; i++) {
		char addr[64];
		snprintf(addr, sizeof addr, "/run/echo-%zu.sock", i);
		bool last = i == n;     /* the one that must be refused, not timed */
		thoth_common_InterfaceClaim_t c = {
			.package = thoth_str("thoth.echo"), .interface = thoth_str("Echo"),
			.interface_id = thoth_wire_fnv1a32("thoth.echo.Echo"),
			.major = last ? 2 : 1, .minor = (uint8_t)(i % 10), .schema_hash = 0x1000u + i % 10,
		};
		thoth_registry_Registration_t r = {
			.name = thoth_str("echo"), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(addr), .locality = THOTH_COMMON_LOCALITY_HOST, .pid = 1 },
			.claims = { &c, 1 },
		};
		uint64_t lease;
		uint64_t t0 = now_ns();
		int rc = thoth_registry_register(reg, local, &r, 0, &lease);
		if (!last)
			took += now_ns() - t0;
		if (rc != (last ? (int)THOTH_REGISTRY_ERR_CONTRACT_REFUSED : 0)) {
			fprintf(stderr, "bench_registry_rank: register %zu of %zu (%s): %d %s\n", i, n,
				walk ? "walk" : "index", rc, thoth_registry_refusal(reg));
			exit(1);
		}
	}
	snprintf(refusal, refusal_len, "%s", thoth_registry_refusal(reg));
	thoth_registry_owner_drop(reg, local);
	thoth_registry_free(reg);
	return took;
}

int main(int argc, char **argv)
{
	size_t max_n = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000;
	size_t max_reg = argc > 2 ? strtoul(argv[2], NULL, 10) : 20000;
	static const size_t sizes[] = { 1, 10, 100, 1000, 2500, 5000 };
	printf("%-12s %12s %12s %8s %12s %12s %8s %9s\n", "local+remote", "resolve_walk", "resolve_idx",
	       "ratio", "count_walk", "count_idx", "ratio", "conflicts");
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0] && sizes[k] <= max_n; k++) {
		size_t n = sizes[k];
		thoth_registry_owner_t *owners[2][2];
		thoth_registry_t *regs[2] = { fill(n, false, owners[0]), fill(n, true, owners[1]) };
		int reps = n >= 1000 ? 5 : 21;
		uint64_t res[2][21], cnt[2][21];
		size_t conflicts[2] = { 0, 0 };
		for (int r = 0; r < reps; r++)
			for (int w = 0; w < 2; w++) {
				const thoth_registry_Instance_t *got = NULL;
				uint64_t t0 = now_ns();
				int rc = thoth_registry_resolve(regs[w], thoth_str("echo"), thoth_str(""),
								THOTH_COMMON_LOCALITY_ANY, 0, 1, &got);
				uint64_t t1 = now_ns();
				conflicts[w] = thoth_registry_remote_conflicts(regs[w], 1);
				uint64_t t2 = now_ns();
				if (rc || (got->registration.endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE &&
					   got->registration.claims.items[0].major == 2)) {
					fprintf(stderr, "bench_registry_rank: resolve gave %d or a conflicting instance\n",
						rc);
					return 1;
				}
				res[w][r] = t1 - t0;
				cnt[w][r] = t2 - t1;
			}
		if (conflicts[0] != conflicts[1] || conflicts[0] != (n + 1) / 2) {
			fprintf(stderr, "bench_registry_rank: conflicts %zu (index) vs %zu (walk), want %zu\n",
				conflicts[0], conflicts[1], (n + 1) / 2);
			return 1;
		}
		uint64_t ri = median(res[0], reps), rw = median(res[1], reps);
		uint64_t ci = median(cnt[0], reps), cw = median(cnt[1], reps);
		char label[32];
		snprintf(label, sizeof label, "%zu+%zu", n, n);
		printf("%-12s %10.3fms %10.3fms %7.1fx %10.3fms %10.3fms %7.1fx %9zu\n", label, rw / 1e6,
		       ri / 1e6, (double)rw / (double)(ri ? ri : 1), cw / 1e6, ci / 1e6,
		       (double)cw / (double)(ci ? ci : 1), conflicts[0]);
		fflush(stdout);
		for (int w = 0; w < 2; w++) {
			thoth_registry_owner_drop(regs[w], owners[w][0]);
			thoth_registry_owner_drop(regs[w], owners[w][1]);
			thoth_registry_free(regs[w]);
		}
	}
	static const size_t reg_sizes[] = { 1000, 5000, 20000 };
	printf("\n%-13s %12s %12s %8s %14s %14s\n", "registrations", "all_walk", "all_idx", "ratio",
	       "per_reg_walk", "per_reg_idx");
	for (size_t k = 0; k < sizeof reg_sizes / sizeof reg_sizes[0] && reg_sizes[k] <= max_reg; k++) {
		size_t n = reg_sizes[k];
		char said[2][256];
		uint64_t walk = register_n(n, true, said[1], sizeof said[1]);
		uint64_t idx = register_n(n, false, said[0], sizeof said[0]);
		if (strcmp(said[0], said[1])) {
			fprintf(stderr, "bench_registry_rank: refusals differ:\n  index: %s\n  walk:  %s\n", said[0],
				said[1]);
			return 1;
		}
		printf("%-13zu %10.3fms %10.3fms %7.1fx %12.3fus %12.3fus\n", n, walk / 1e6, idx / 1e6,
		       (double)walk / (double)(idx ? idx : 1), walk / 1e3 / (double)n, idx / 1e3 / (double)n);
		fflush(stdout);
	}
	return 0;
}
