/*
 * test_pool_registry.c - load reports in thothd's registry core (SCALE-3):
 * a report is stored in the instance and pushed to watchers as a LOAD
 * change (only when it changed, never to on_change users such as the
 * shared resolve table); a report for someone else's lease or an expired
 * one is refused; absurd values from a hostile service are refused and
 * the last good report kept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "registry.h"
#include "thoth/error.h"

typedef struct fixture {
	thoth_registry_t *reg;
	thoth_registry_owner_t *alice, *bob;
	int loads, others, changes;
	uint32_t last_util, last_qps;
} fixture_t;

static void on_event(void *arg, const thoth_registry_event_t *ev)
{
	fixture_t *f = arg;
	if (ev->kind == THOTH_REGISTRY_CHANGE_KIND_LOAD) {
		f->loads++;
		f->last_util = ev->instance->utilization_permille;
		f->last_qps = ev->instance->qps;
	} else {
		f->others++;
	}
}

static void on_change(void *arg, int kind, const thoth_registry_Instance_t *inst)
{
	(void)inst;
	fixture_t *f = arg;
	assert_int_not_equal(kind, THOTH_REGISTRY_CHANGE_KIND_LOAD);
	f->changes++;
}

static void test_load_reports_are_stored_pushed_once_and_checked(void **state)
{
	(void)state;
	fixture_t f = { 0 };
	thoth_registry_config_t cfg = { .seed = 1, .on_event = on_event, .event_arg = &f,
					.on_change = on_change, .change_arg = &f };
	assert_int_equal(thoth_registry_new(&cfg, &f.reg), 0);
	assert_int_equal(thoth_registry_owner_new(f.reg, 1000, 11, "alice", &f.alice), 0);
	assert_int_equal(thoth_registry_owner_new(f.reg, 1000, 22, "bob", &f.bob), 0);
	uint64_t wid;
	assert_int_equal(thoth_registry_watch(f.reg, f.bob, thoth_str("work"), &wid), 0);
	thoth_registry_Registration_t r = {
		.name = thoth_str("work"), .version = thoth_str("1.0.0"),
		.endpoint = { .addr = thoth_str("/run/w.sock"), .instance_id = 1, .pid = 1 },
	};
	uint64_t lease;
	assert_int_equal(thoth_registry_register(f.reg, f.alice, &r, 0, &lease), 0);
	int changes_after_add = f.changes;

	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease, 750, 1200), 0);
	assert_int_equal(f.loads, 1);
	assert_int_equal(f.last_util, 750);
	assert_int_equal(f.last_qps, 1200);
	/* The same report again: nothing new to push. */
	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease, 750, 1200), 0);
	assert_int_equal(f.loads, 1);
	/* Stored: a resolve returns it. */
	const thoth_registry_Instance_t *in;
	assert_int_equal(thoth_registry_resolve(f.reg, thoth_str("work"), thoth_str(""),
						THOTH_COMMON_LOCALITY_ANY, 0, 0, &in), 0);
	assert_int_equal(in->utilization_permille, 750);
	/* Hostile values: refused, the last good one kept, nobody told. */
	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease, UINT32_MAX, 5), THOTH_E_INVAL);
	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease, 64001, 5), THOTH_E_INVAL);
	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease, 10, UINT32_MAX), THOTH_E_INVAL);
	assert_int_equal(f.loads, 1);
	assert_int_equal(in->utilization_permille, 750);
	/* Not the owner; no such lease. */
	assert_int_equal(thoth_registry_report_load(f.reg, f.bob, lease, 5, 5), THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_int_equal(thoth_registry_report_load(f.reg, f.alice, lease + 1, 5, 5), THOTH_REGISTRY_ERR_EXPIRED);
	assert_int_equal(f.loads, 1);
	assert_int_equal(f.changes, changes_after_add);  /* LOAD never reaches on_change */
	assert_int_equal(f.others, 1);                   /* the ADDED */

	thoth_registry_owner_drop(f.reg, f.alice);
	thoth_registry_owner_drop(f.reg, f.bob);
	thoth_registry_free(f.reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_reports_are_stored_pushed_once_and_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
