/*
 * test_pm_energy.c - the published energy models and the OPP efficiency
 * rule, checked against figures computed by hand from the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "energy.h"

static void test_hikey_208mhz_is_inefficient_and_432mhz_is_not(void **state)
{
	const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_find("hikey-a53");
	assert_non_null(m);
	/* (69 + 16) / 178 = 0.4775 > (124 + 29) / 369 = 0.4146 */
	assert_true(thoth_pm_opp_energy_per_work(m, 0) > 0.477 &&
		    thoth_pm_opp_energy_per_work(m, 0) < 0.478);
	assert_true(thoth_pm_opp_energy_per_work(m, 1) > 0.414 &&
		    thoth_pm_opp_energy_per_work(m, 1) < 0.415);
	assert_true(thoth_pm_opp_inefficient(m, 0));
	for (uint32_t i = 1; i < m->opp_count; i++)
		assert_false(thoth_pm_opp_inefficient(m, i));
}

static void test_juno_tables_have_no_inefficient_opp(void **state)
{
	/* A53 450 vs 575 MHz is the closest call: 59/235 = 0.25106 < 76/302 = 0.25166 */
	const char *names[] = { "juno-a57", "juno-a53" };
	for (int k = 0; k < 2; k++) {
		const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_find(names[k]);
		assert_non_null(m);
		assert_int_equal(m->opp_count, 5);
		for (uint32_t i = 0; i < m->opp_count; i++)
			assert_false(thoth_pm_opp_inefficient(m, i));
	}
}

static void test_equal_efficiency_counts_as_inefficient(void **state)
{
	/* A faster OPP at the same energy per work makes the slower one
	 * pointless: it finishes sooner for the same energy. */
	thoth_pm_cpu_model_t m = { .name = "t", .opp_count = 2,
				   .opps = { { 100, 100, 50, 0 }, { 200, 200, 100, 0 } } };
	assert_true(thoth_pm_opp_inefficient(&m, 0));
	assert_false(thoth_pm_opp_inefficient(&m, 1));
}

static void test_opp_for_capacity_skips_inefficient_opps(void **state)
{
	const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_find("hikey-a53");
	assert_int_equal(thoth_pm_opp_for_capacity(m, 0), 1);    /* not 208 MHz */
	assert_int_equal(thoth_pm_opp_for_capacity(m, 100), 1);
	assert_int_equal(thoth_pm_opp_for_capacity(m, 369), 1);
	assert_int_equal(thoth_pm_opp_for_capacity(m, 370), 2);
	assert_int_equal(thoth_pm_opp_for_capacity(m, 1024), 4);
	assert_int_equal(thoth_pm_opp_for_capacity(m, 5000), 4); /* saturates */
	assert_int_equal(thoth_pm_opp_ceil_raw(m, 100), 0);      /* the naive choice */
}

static void test_unknown_models_are_not_found(void **state)
{
	assert_null(thoth_pm_cpu_model_find("pentium"));
	assert_null(thoth_pm_cpu_model_find(NULL));
	assert_null(thoth_pm_device_model_find("floppy"));
	assert_non_null(thoth_pm_cpu_model_at(2));
	assert_null(thoth_pm_cpu_model_at(3));
}

static void test_device_tables_pass_the_element_check(void **state)
{
	for (size_t i = 0; thoth_pm_device_model_at(i); i++) {
		const thoth_pm_device_model_t *d = thoth_pm_device_model_at(i);
		const char *why = NULL;
		assert_int_equal(thoth_pm_element_check(&d->desc, &why), 0);
		assert_non_null(d->source);
		assert_true(d->busy_mw >= d->desc.states[0].power_mw);
	}
	const thoth_pm_device_model_t *s950 = thoth_pm_device_model_find("nvme-samsung-950");
	assert_non_null(s950);
	/* PS3: 70 mW, enlat 500 us, exlat 5000 us (nvme id-ctrl) */
	assert_int_equal(s950->desc.states[1].power_mw, 70);
	assert_int_equal(s950->desc.states[1].entry_latency_ns, 500000);
	assert_int_equal(s950->desc.states[1].exit_latency_ns, 5000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hikey_208mhz_is_inefficient_and_432mhz_is_not),
		cmocka_unit_test(test_juno_tables_have_no_inefficient_opp),
		cmocka_unit_test(test_equal_efficiency_counts_as_inefficient),
		cmocka_unit_test(test_opp_for_capacity_skips_inefficient_opps),
		cmocka_unit_test(test_unknown_models_are_not_found),
		cmocka_unit_test(test_device_tables_pass_the_element_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
