/*
 * broker_ops.h - a byte-driven interpreter of power broker operations
 * (declare, lease, drop, kill holder, kill driver, request, serve, finish a
 * transition, policy level) that checks the broker's invariants after each
 * one.  The libFuzzer target feeds it arbitrary bytes; the 10^5-operation
 * run in `make test` feeds it a seeded pseudo-random stream.
 */
#ifndef THOTH_FUZZ_PM_BROKER_OPS_H
#define THOTH_FUZZ_PM_BROKER_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pm_ops_stats {
	uint64_t ops, declared, refused_declarations, leases, requests, served, failed, withdrawn,
		transitions, kills;
	uint64_t refused_leases;        /* THOTH_E_LIMIT: the total, a group's cap or a share */
	uint64_t refused_requests;      /* the same for requests */
} pm_ops_stats_t;

/*
 * Run the operations DATA encodes, then drain (finish every transition, serve
 * every ready request), kill every driver and check that each request got
 * exactly one outcome.  0, or -1 with the violated invariant in WHY.
 */
int pm_ops_run(const uint8_t *data, size_t len, pm_ops_stats_t *stats, char *why, size_t cap);

#endif
