/*
 * test_registry_numa.c - SCALE-1 in thothd's registry: resolve prefers the
 * caller's node, then the nearest other node by the topology's distance
 * matrix (the 4-node asymmetric fixture read by hwloc, as thothd's main.c
 * does it), round-robins only among equally near instances, and keeps
 * remote instances last.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "registry.h"
#include "topology.h"

typedef struct fx {
	thoth_registry_t *reg;
	thoth_registry_owner_t *owner;
	uint64_t lease_on[8];           /* node -> lease of the instance there */
} fx_t;

/* The fixture's matrix, by kernel node number (os == logical here). */
static uint32_t *fixture_matrix(uint16_t *n)
{
	thoth_topo_t *t = NULL;
	char why[600];
	thoth_topo_source_t src = { .xml_path = TOPOLOGY_FIXTURES "/4node-asym.xml" };
	if (thoth_topo_load(&src, &t, why, sizeof why))
		fail_msg("%s", why);
	*n = (uint16_t)thoth_topo_nodes(t);
	uint32_t *m = malloc(sizeof *m * *n * *n);
	for (unsigned a = 0; a < *n; a++)
		for (unsigned b = 0; b < *n; b++)
			m[a * *n + b] = thoth_topo_distance(t, a, b);
	thoth_topo_free(t);
	return m;
}

static void add(fx_t *f, uint16_t node, thoth_common_Locality_t where, const char *addr)
{
	thoth_registry_Registration_t r = {
		.name = thoth_str("kv"), .version = thoth_str("1.0.0"),
		.endpoint = { .addr = thoth_str(addr), .numa_node = node, .locality = where, .pid = 1 },
	};
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f->reg, f->owner, &r, 1, &lease), 0);
	if (where != THOTH_COMMON_LOCALITY_REMOTE)
		f->lease_on[node] = lease;
}

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof *f);
	uint16_t n;
	uint32_t *m = fixture_matrix(&n);
	thoth_registry_config_t cfg = { .seed = 7, .node_distance = m, .n_nodes = n };
	assert_int_equal(thoth_registry_new(&cfg, &f->reg), 0);
	free(m);                /* the registry keeps its own copy */
	assert_int_equal(thoth_registry_owner_new(f->reg, 1000, 11, NULL, &f->owner), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_t *f = *state;
	thoth_registry_owner_drop(f->reg, f->owner);
	thoth_registry_free(f->reg);
	free(f);
	return 0;
}

static uint64_t resolve_from(fx_t *f, uint16_t node)
{
	const thoth_registry_Instance_t *inst;
	assert_int_equal(thoth_registry_resolve(f->reg, thoth_str("kv"), thoth_str(""), THOTH_COMMON_LOCALITY_NUMA,
						node, 2, &inst), 0);
	return inst->lease;
}

static void test_nearest_node_wins_when_the_callers_node_has_none(void **state)
{
	fx_t *f = *state;
	add(f, 1, THOTH_COMMON_LOCALITY_HOST, "/run/kv-1.sock");
	add(f, 2, THOTH_COMMON_LOCALITY_HOST, "/run/kv-2.sock");
	add(f, 3, THOTH_COMMON_LOCALITY_HOST, "/run/kv-3.sock");
	add(f, 0, THOTH_COMMON_LOCALITY_REMOTE, "tcp://far:1");
	/* From 0: node 2 is at 12, node 1 at 20, node 3 at 30: always node 2. */
	for (int i = 0; i < 6; i++)
		assert_int_equal(resolve_from(f, 0), f->lease_on[2]);
	/* From 1 (asymmetric row): 3 at 20 beats 2 at 30, own node first. */
	assert_int_equal(resolve_from(f, 1), f->lease_on[1]);
	thoth_registry_withdraw(f->reg, f->owner, f->lease_on[1]);
	for (int i = 0; i < 4; i++)
		assert_int_equal(resolve_from(f, 1), f->lease_on[3]);
	/* From 3: 2 at 20 is nearest (3's row: 30 30 20 10). */
	thoth_registry_withdraw(f->reg, f->owner, f->lease_on[3]);
	assert_int_equal(resolve_from(f, 3), f->lease_on[2]);
	assert_int_equal(thoth_registry_node_distance(f->reg, 1, 3), 20);
	assert_int_equal(thoth_registry_node_distance(f->reg, 3, 1), 30);
	assert_int_equal(thoth_registry_node_distance(f->reg, 9, 9), 10);
	assert_int_equal(thoth_registry_node_distance(f->reg, 9, 1), 20);
}

static void test_equally_near_nodes_share_the_round_robin_and_remote_comes_last(void **state)
{
	fx_t *f = *state;
	/* From 1, nodes 0 and 3 are both at 20. */
	add(f, 0, THOTH_COMMON_LOCALITY_HOST, "/run/kv-0.sock");
	add(f, 3, THOTH_COMMON_LOCALITY_HOST, "/run/kv-3.sock");
	add(f, 2, THOTH_COMMON_LOCALITY_HOST, "/run/kv-2.sock");
	add(f, 1, THOTH_COMMON_LOCALITY_REMOTE, "tcp://far:1");
	int seen0 = 0, seen3 = 0;
	for (int i = 0; i < 10; i++) {
		uint64_t l = resolve_from(f, 1);
		seen0 += l == f->lease_on[0];
		seen3 += l == f->lease_on[3];
	}
	assert_int_equal(seen0, 5);
	assert_int_equal(seen3, 5);
	/* Only the remote one left: it is still found (last, not never). */
	thoth_registry_withdraw(f->reg, f->owner, f->lease_on[0]);
	thoth_registry_withdraw(f->reg, f->owner, f->lease_on[2]);
	thoth_registry_withdraw(f->reg, f->owner, f->lease_on[3]);
	const thoth_registry_Instance_t *inst;
	assert_int_equal(thoth_registry_resolve(f->reg, thoth_str("kv"), thoth_str(""), THOTH_COMMON_LOCALITY_NUMA,
						1, 2, &inst), 0);
	assert_int_equal(inst->registration.endpoint.locality, THOTH_COMMON_LOCALITY_REMOTE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_nearest_node_wins_when_the_callers_node_has_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equally_near_nodes_share_the_round_robin_and_remote_comes_last,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
