/*
 * cmocka_skips_probe.c - two cmocka cases that skip, linked as every
 * thoth_add_test is (tests/common/cmocka_skips.c): test_stage_skips runs
 * it with every case skipped (exit 77: ctest's Skipped), one passing
 * (PROBE_PASS_ONE: 0) and one failing (PROBE_FAIL_ONE: 1, never 77).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../common/skip.h"

static void test_skips_unless_told_to_pass(void **state)
{
	(void)state;
	if (getenv("PROBE_PASS_ONE"))
		return;
	skip_because("the probe's first case has nothing to run");
}

static void test_skips_unless_told_to_fail(void **state)
{
	(void)state;
	if (getenv("PROBE_FAIL_ONE"))
		fail_msg("the probe's second case was told to fail");
	skip_because("the probe's second case has nothing to run");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skips_unless_told_to_pass),
		cmocka_unit_test(test_skips_unless_told_to_fail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
