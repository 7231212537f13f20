/*
 * test_pm_broker_counts.c - thoth_pm_broker_check against counts that
 * drifted (PM-1).  White-box: the broker's source is included so the test
 * can change a holder's or a group's stored count behind its back, as a
 * bug in add_lease / unlink_lease would.  A check of the counts' sum alone
 * passed a drift that kept the total (one holder's lease counted as
 * another's): each key's count is recounted from the leases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker.c"

static thoth_pm_broker_t *broker_with_leases(uint32_t *element)
{
	thoth_pm_broker_ops_t ops = { 0 };
	thoth_pm_broker_limits_t lim = { .max_leases = 64 };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	thoth_pm_element_decl_t d = { .name = "bus", .n_levels = 2 };
	d.levels[0] = (thoth_pm_level_decl_t){ "OFF", 0.0, 100, 2000 };
	d.levels[1] = (thoth_pm_level_decl_t){ "ON", 50.0, 0, 0 };
	assert_int_equal(thoth_pm_broker_declare(b, 1, &d, 1, 0, element), 0);
	uint64_t l;
	for (int i = 0; i < 3; i++)     /* holder 9 of group 5: 3 leases */
		assert_int_equal(thoth_pm_broker_lease_in(b, 9, 5, *element, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1,
							  &l), 0);
	/* holder 10 of group 6: 1 */
	assert_int_equal(thoth_pm_broker_lease_in(b, 10, 6, *element, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &l), 0);
	char why[256];
	if (thoth_pm_broker_check(b, why, sizeof why))
		fail_msg("%s", why);
	return b;
}

static void set_count(count_table_t *t, uint64_t key, uint32_t n)
{
	key_count_t *h = &t->e[count_slot(t, key)];
	assert_true(h->key == key);
	h->n = n;
}

static void test_a_holders_count_that_drifts_keeping_the_total_is_found(void **state)
{
	uint32_t e;
	thoth_pm_broker_t *b = broker_with_leases(&e);
	set_count(&b->per_holder, 9, 2);        /* the truth: 3 and 1 */
	set_count(&b->per_holder, 10, 2);
	char why[256];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), THOTH_E_CORRUPT);
	if (!strstr(why, "holder"))
		fail_msg("\"%s\" does not name the holder", why);
	set_count(&b->per_holder, 9, 3);
	set_count(&b->per_holder, 10, 1);
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	thoth_pm_broker_free(b);
}

static void test_a_groups_count_that_drifts_keeping_the_total_is_found(void **state)
{
	uint32_t e;
	thoth_pm_broker_t *b = broker_with_leases(&e);
	set_count(&b->per_group, 5, 1);         /* the truth: 3 and 1 */
	set_count(&b->per_group, 6, 3);
	char why[256];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), THOTH_E_CORRUPT);
	if (!strstr(why, "group"))
		fail_msg("\"%s\" does not name the group", why);
	thoth_pm_broker_free(b);
}

/* The host's own leases (thoth_pm_broker_lease_internal) are in no count:
 * the recount skips them too. */
static void test_internal_leases_are_in_no_count_and_the_check_agrees(void **state)
{
	uint32_t e;
	thoth_pm_broker_t *b = broker_with_leases(&e);
	uint64_t l;
	assert_int_equal(thoth_pm_broker_lease_internal(b, 9, e, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 500, 1, &l), 0);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 9), 3);
	assert_int_equal(thoth_pm_broker_lease_count(b), 5);
	char why[256];
	if (thoth_pm_broker_check(b, why, sizeof why))
		fail_msg("%s", why);
	assert_int_equal(thoth_pm_broker_drop(b, 9, l, 2), 0);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 9), 3);
	if (thoth_pm_broker_check(b, why, sizeof why))
		fail_msg("%s", why);
	thoth_pm_broker_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_holders_count_that_drifts_keeping_the_total_is_found),
		cmocka_unit_test(test_a_groups_count_that_drifts_keeping_the_total_is_found),
		cmocka_unit_test(test_internal_leases_are_in_no_count_and_the_check_agrees),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
