/*
 * test_rtable_thothd.c - the shared resolve table with a real thothd
 * (SCALE-2): handed over on a control connection as a sealed read-only
 * memfd, answers without a round trip once a service registers, loses the
 * instance the moment its owner's connection closes (watchers woken), and
 * sends what it cannot hold (a name longer than the table's slots, a name
 * it never saw) to thothd by round trip.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "thoth/rtable.h"

static harness_t h;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	return 0;
}

static int teardown(void **state)
{
	harness_teardown(&h);
	return 0;
}

static void test_registered_service_resolves_from_the_table_without_a_round_trip(void **state)
{
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	thoth_rtable_stats_t st;
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	uint32_t gen = thoth_rtable_generation(t);

	thoth_control_t svc;
	assert_int_equal(harness_connect(&h, &svc), 0);
	uint64_t lease;
	assert_int_equal(harness_register(&svc, "alpha", 0, &lease), 0);
	/* thothd wrote the table before it answered the registration. */
	assert_true(thoth_rtable_generation(t) != gen);
	thoth_resolved_t where;
	assert_int_equal(thoth_rtable_lookup(t, "alpha", "1.0.0", 0, &where), 0);
	assert_string_equal(where.addr, "/nowhere.sock");
	assert_int_equal(where.pid, (uint32_t)getpid());        /* SO_PEERCRED: this process registered */
	for (int i = 0; i < 100; i++)
		assert_int_equal(thoth_rtable_resolve(t, "alpha", NULL, &where), 0);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.hits, 100);
	assert_int_equal(st.misses, 0);
	assert_int_equal(st.entries, 1);
	assert_false(st.incomplete);

	/* Unknown: the table misses, thothd is asked and says so. */
	assert_int_equal(thoth_rtable_resolve(t, "nobody", NULL, &where), THOTH_E_NOT_FOUND);
	/* Too long for the table's slots (valid for the registry): found by
	 * round trip, and the table says it is incomplete meanwhile. */
	char longname[101];
	memset(longname, 'b', 100);
	longname[100] = 0;
	assert_int_equal(harness_register(&svc, longname, 0, NULL), 0);
	assert_int_equal(thoth_rtable_resolve(t, longname, NULL, &where), 0);
	assert_string_equal(where.addr, "/nowhere.sock");
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.misses, 2);
	assert_true(st.incomplete);

	/* Peer death: the registering connection closes; thothd removes its
	 * instances from the table and wakes watchers. */
	gen = thoth_rtable_generation(t);
	thoth_control_close(&svc);
	assert_int_equal(thoth_rtable_wait(t, gen, 5000), 0);
	uint64_t deadline = harness_now_ms() + 5000;
	while (thoth_rtable_lookup(t, "alpha", NULL, 0, &where) == 0 && harness_now_ms() < deadline)
		thoth_rtable_wait(t, thoth_rtable_generation(t), 100);
	assert_int_equal(thoth_rtable_lookup(t, "alpha", NULL, 0, &where), THOTH_E_NOT_FOUND);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_false(st.incomplete);    /* the long one went too */
	thoth_rtable_close(t);
}

static void test_without_thothd_open_says_so(void **state)
{
	assert_int_equal(harness_stop_thothd(&h), 0);
	thoth_rtable_t *t = (thoth_rtable_t *)1;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	assert_int_equal(r, THOTH_E_NOT_RUNNING);
	assert_null(t);
	assert_true(why[0] != 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registered_service_resolves_from_the_table_without_a_round_trip,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_thothd_open_says_so, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
