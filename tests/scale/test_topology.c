/*
 * test_topology.c - SCALE-1's topology reader and placement rules on
 * synthetic machines (hwloc synthetic descriptions) and an XML export with
 * an asymmetric distance matrix (tests/fixtures/topology/), plus this
 * machine as hwloc sees it.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/error.h"
#include "topology.h"

static thoth_topo_t *load_synth(const char *desc)
{
	thoth_topo_t *t = NULL;
	char why[200] = "";
	thoth_topo_source_t src = { .synthetic = desc };
	int r = thoth_topo_load(&src, &t, why, sizeof why);
	if (r)
		fail_msg("%s: %s", desc, why);
	return t;
}

static thoth_topo_t *load_xml(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", TOPOLOGY_FIXTURES, name);
	thoth_topo_t *t = NULL;
	char why[600] = "";
	thoth_topo_source_t src = { .xml_path = path };
	if (thoth_topo_load(&src, &t, why, sizeof why))
		fail_msg("%s: %s", path, why);
	return t;
}

static int set_first(const cpu_set_t *s)
{
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, s))
			return i;
	return -1;
}

static void test_one_node_machine_places_everything_on_node_0(void **state)
{
	thoth_topo_t *t = load_synth("node:1 core:4 pu:1");
	assert_int_equal(thoth_topo_nodes(t), 1);
	assert_int_equal(thoth_topo_cpus(t), 4);
	assert_int_equal(thoth_topo_cores(t), 4);
	for (int c = 0; c < 4; c++)
		assert_int_equal(thoth_topo_cpu_node(t, c), 0);
	assert_int_equal(thoth_topo_cpu_node(t, 4), -1);
	assert_int_equal(thoth_topo_nearest_node(t, 0, 0), 0);
	assert_int_equal(thoth_topo_distance(t, 0, 0), 10);
	assert_false(thoth_topo_has_distances(t));
	cpu_set_t s;
	assert_int_equal(thoth_topo_node_cpus(t, 0, &s), 0);
	assert_int_equal(CPU_COUNT(&s), 4);
	assert_int_equal(thoth_topo_node_cpus(t, 1, &s), THOTH_E_INVAL);
	thoth_topo_free(t);
}

static void test_two_nodes_one_package_each_split_cpus_by_node(void **state)
{
	thoth_topo_t *t = load_synth("node:2 pack:1 core:2 pu:1");
	assert_int_equal(thoth_topo_nodes(t), 2);
	assert_int_equal(thoth_topo_packages(t), 2);
	assert_int_equal(thoth_topo_cpus(t), 4);
	cpu_set_t s0, s1;
	assert_int_equal(thoth_topo_node_cpus(t, 0, &s0), 0);
	assert_int_equal(thoth_topo_node_cpus(t, 1, &s1), 0);
	assert_int_equal(CPU_COUNT(&s0), 2);
	assert_int_equal(CPU_COUNT(&s1), 2);
	assert_true(CPU_ISSET(0, &s0) && CPU_ISSET(1, &s0));
	assert_true(CPU_ISSET(2, &s1) && CPU_ISSET(3, &s1));
	assert_int_equal(thoth_topo_cpu_node(t, 3), 1);
	assert_int_equal(thoth_topo_cpu_package(t, 3), 1);
	assert_int_equal(thoth_topo_cpu_package(t, 0), 0);
	/* No SLIT: the default remote distance, and the caller's own node
	 * first; restricted to node 1 the only candidate is node 1. */
	assert_int_equal(thoth_topo_distance(t, 0, 1), 20);
	assert_int_equal(thoth_topo_nearest_node(t, 1, 0), 1);
	assert_int_equal(thoth_topo_nearest_node(t, 0, 1u << 1), 1);
	assert_int_equal(thoth_topo_nearest_node(t, 0, 1u << 5), -1);
	assert_int_equal(thoth_topo_node_os(t, 1), 1);
	assert_int_equal(thoth_topo_node_from_os(t, 1), 1);
	assert_int_equal(thoth_topo_node_from_os(t, 7), -1);
	thoth_topo_free(t);
}

static void test_two_nodes_with_smt_know_each_cpus_sibling(void **state)
{
	thoth_topo_t *t = load_synth("node:2 pack:1 l3:1 core:2 pu:2");
	assert_int_equal(thoth_topo_nodes(t), 2);
	assert_int_equal(thoth_topo_cores(t), 4);
	assert_int_equal(thoth_topo_cpus(t), 8);
	assert_true(thoth_topo_cache_size(t, 3) > 0);
	for (int c = 0; c < 8; c++) {
		cpu_set_t sib;
		assert_int_equal(thoth_topo_smt_siblings(t, c, &sib), 0);
		assert_int_equal(CPU_COUNT(&sib), 2);
		assert_true(CPU_ISSET(c, &sib));
		/* Siblings share a core and therefore a node. */
		int other = set_first(&sib) == c ? c + 1 : set_first(&sib);
		assert_int_equal(thoth_topo_cpu_core(t, other), thoth_topo_cpu_core(t, c));
		assert_int_equal(thoth_topo_cpu_node(t, other), thoth_topo_cpu_node(t, c));
	}
	assert_int_equal(thoth_topo_cpu_node(t, 5), 1);
	cpu_set_t s;
	assert_int_equal(thoth_topo_smt_siblings(t, 9, &s), THOTH_E_INVAL);
	thoth_topo_free(t);
}

/* Matrix of the fixture (rows access, columns hold the memory):
 *      0   1   2   3
 *  0  10  20  12  30
 *  1  20  10  30  20
 *  2  12  30  10  20
 *  3  30  30  20  10     (d(1,3) = 20 but d(3,1) = 30) */
static void test_four_asymmetric_nodes_choose_by_distance_not_index(void **state)
{
	thoth_topo_t *t = load_xml("4node-asym.xml");
	assert_int_equal(thoth_topo_nodes(t), 4);
	assert_true(thoth_topo_has_distances(t));
	assert_int_equal(thoth_topo_distance(t, 1, 3), 20);
	assert_int_equal(thoth_topo_distance(t, 3, 1), 30);
	/* Nearest other node of 0 is 2 (12), not its index neighbour 1. */
	assert_int_equal(thoth_topo_nearest_node(t, 0, 0xEu), 2);
	/* From 1, nodes 0 and 3 tie at 20: the lower index. */
	assert_int_equal(thoth_topo_nearest_node(t, 1, (1u << 0) | (1u << 3)), 0);
	/* From 3, 0 and 1 tie at 30 but 2 is nearer. */
	assert_int_equal(thoth_topo_nearest_node(t, 3, 0x7u), 2);
	/* Asymmetry: from 1 only {3} or {2}: 3 at 20 beats 2 at 30. */
	assert_int_equal(thoth_topo_nearest_node(t, 1, (1u << 2) | (1u << 3)), 3);
	assert_int_equal(thoth_topo_nearest_node(t, 3, (1u << 1) | (1u << 0)), 0);
	unsigned order[4];
	assert_int_equal(thoth_topo_nodes_by_distance(t, 0, order, 4), 4);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 2);
	assert_int_equal(order[2], 1);
	assert_int_equal(order[3], 3);
	assert_int_equal(thoth_topo_nodes_by_distance(t, 3, order, 2), 2);
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 2);
	/* CPU sets per node: 2 CPUs each, in order. */
	for (unsigned n = 0; n < 4; n++) {
		cpu_set_t s;
		assert_int_equal(thoth_topo_node_cpus(t, n, &s), 0);
		assert_int_equal(CPU_COUNT(&s), 2);
		assert_true(CPU_ISSET((int)(2 * n), &s) && CPU_ISSET((int)(2 * n + 1), &s));
		assert_int_equal(thoth_topo_cpu_node(t, (int)(2 * n + 1)), (int)n);
	}
	char text[1024];
	size_t len = thoth_topo_describe(t, text, sizeof text);
	assert_true(len > 0 && len < sizeof text);
	assert_non_null(strstr(text, "node 3 (os 3): cpus 6-7, distances 30 30 20 10"));
	assert_non_null(strstr(text, "from the firmware table"));
	thoth_topo_free(t);
}

static void test_bad_sources_are_refused_with_the_reason(void **state)
{
	thoth_topo_t *t = (thoth_topo_t *)1;
	char why[300] = "";
	thoth_topo_source_t bad = { .synthetic = "node:2 banana:3" };
	assert_int_equal(thoth_topo_load(&bad, &t, why, sizeof why), THOTH_E_INVAL);
	assert_null(t);
	assert_non_null(strstr(why, "banana"));
	thoth_topo_source_t missing = { .xml_path = "/nonexistent/topo.xml" };
	assert_true(thoth_topo_load(&missing, &t, why, sizeof why) < 0);
	assert_null(t);
	assert_non_null(strstr(why, "/nonexistent/topo.xml"));
	char path[512];
	snprintf(path, sizeof path, "%s/garbage.xml", TOPOLOGY_FIXTURES);
	thoth_topo_source_t garbage = { .xml_path = path };
	assert_true(thoth_topo_load(&garbage, &t, why, sizeof why) < 0);
	assert_null(t);
	/* 65 nodes: beyond the fixed arrays, refused instead of truncated. */
	thoth_topo_source_t huge = { .synthetic = "node:65 core:1 pu:1" };
	assert_int_equal(thoth_topo_load(&huge, &t, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "65 NUMA nodes"));
	/* More CPUs than a cpu_set_t holds: refused before hwloc builds it
	 * (hwloc_topology_load of this one ran for minutes). */
	thoth_topo_source_t wide = { .synthetic = "node:2 core:1 pu:50000" };
	t = (thoth_topo_t *)1;
	assert_int_equal(thoth_topo_load(&wide, &t, why, sizeof why), THOTH_E_INVAL);
	assert_null(t);
	assert_non_null(strstr(why, "has 100000 CPUs: more than the 1024"));
	/* the count multiplies levels, ignoring attributes and memory levels */
	thoth_topo_source_t attrs = { .synthetic = "pack:2 [numa(memory=1000000)] core:4(indexes=0,1,2,3) pu:2" };
	assert_int_equal(thoth_topo_load(&attrs, &t, why, sizeof why), 0);
	assert_int_equal(thoth_topo_cpus(t), 16);
	thoth_topo_free(t);
}

static void test_this_machine_and_the_environment_override(void **state)
{
	thoth_topo_t *t = NULL;
	char why[300] = "";
	assert_int_equal(thoth_topo_load(NULL, &t, why, sizeof why), 0);
	assert_true(thoth_topo_nodes(t) >= 1);
	assert_true(thoth_topo_cpus(t) >= 1);
	int cpu = sched_getcpu();
	assert_true(thoth_topo_cpu_node(t, cpu) >= 0);
	thoth_topo_free(t);
	setenv("THOTH_TOPOLOGY_SYNTHETIC", "node:3 core:1 pu:1", 1);
	assert_int_equal(thoth_topo_load(NULL, &t, why, sizeof why), 0);
	assert_int_equal(thoth_topo_nodes(t), 3);
	thoth_topo_free(t);
	unsetenv("THOTH_TOPOLOGY_SYNTHETIC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_node_machine_places_everything_on_node_0),
		cmocka_unit_test(test_two_nodes_one_package_each_split_cpus_by_node),
		cmocka_unit_test(test_two_nodes_with_smt_know_each_cpus_sibling),
		cmocka_unit_test(test_four_asymmetric_nodes_choose_by_distance_not_index),
		cmocka_unit_test(test_bad_sources_are_refused_with_the_reason),
		cmocka_unit_test(test_this_machine_and_the_environment_override),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
