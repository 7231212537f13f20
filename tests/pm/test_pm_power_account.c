/*
 * test_pm_power_account.c - a governed service's PM trace points
 * (pm_freq_change, pm_work) priced with the published CPU models
 * (kernel/pm/power_account.h), against figures computed by hand from the
 * tables in kernel/pm/energy.c: busy power = core + cluster mW,
 *   HiKey A53 (trace id 1): 85 / 153 / 271 / 442 / 782
 *   Juno A57  (trace id 2): 192 / 283 / 402 / 528 / 680
 *   Juno A53  (trace id 3): 59 / 76 / 100 / 123 / 150
 * mW x ns = pJ; pJ / ns = mW.
 * And a machine's own energy model (trace id THOTH_PM_TRACE_SYSFS | CPU),
 * read from the fixture tree tests/fixtures/sysfs/arm64-juno as the
 * service reads it (perf_domain.c): the EM's power files are uW, so
 *   domain of cpu1 (cpus 1 2, A57):     168 / 251 / 359 / 479 / 616 mW
 *   domain of cpu0 (cpus 0 3 4 5, A53):  33 /  46 /  61 /  76 /  93 mW
 * at 450..1100 and 450..850 MHz, no cluster share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend.h"
#include "power_account.h"
#include "thoth/error.h"
#include "trace_model.h"

#define FREQ(reason, model, opp) ((uint64_t)(reason) << 32 | thoth_pm_trace_model_opp(model, opp))

static void assert_close(double got, double want)
{
	double tol = want ? (want > 0 ? want : -want) * 1e-9 : 1e-15;
	if (got < want - tol || got > want + tol)
		fail_msg("got %.12g, want %.12g", got, want);
}

static void test_trace_ids_name_the_published_tables_and_nothing_else(void **state)
{
	(void)state;
	assert_string_equal(thoth_pm_cpu_model_by_trace_id(1)->name, "hikey-a53");
	assert_string_equal(thoth_pm_cpu_model_by_trace_id(2)->name, "juno-a57");
	assert_string_equal(thoth_pm_cpu_model_by_trace_id(3)->name, "juno-a53");
	assert_null(thoth_pm_cpu_model_by_trace_id(0));
	assert_null(thoth_pm_cpu_model_by_trace_id(4));
	assert_int_equal(thoth_pm_cpu_model_find("juno-a57")->trace_id, 2);
	/* the packing governed.c writes: model in bits 16..31, OPP in 0..15 */
	assert_int_equal(thoth_pm_trace_model_opp(1, 4), 0x10004);
	assert_int_equal(FREQ(3, 1, 1), (3ull << 32) | 0x10001);
}

/* A scripted sequence of what governed_echo writes, three intervals. */
static void test_a_scripted_sequence_prices_each_request_at_its_opps_busy_power(void **state)
{
	(void)state;
	thoth_pm_power_account_t a;
	thoth_pm_power_account_init(&a);
	thoth_pm_power_interval_t iv;
	assert_null(thoth_pm_power_account_model(&a));
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 0);

	/* interval 1 (1 s): a raise to HiKey 1200 MHz at an arrival ... */
	assert_int_equal(thoth_pm_power_account_freq(&a, 1200000, FREQ(1, 1, 4)), 0);
	assert_string_equal(thoth_pm_power_account_model(&a)->name, "hikey-a53");
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 670 + 112);
	/* ... two requests of 600 us there: 2 x 600000 x 782 = 938,400,000 pJ */
	assert_int_equal(thoth_pm_power_account_work(&a, 600000, FREQ(0, 1, 4)), 0);
	assert_int_equal(thoth_pm_power_account_work(&a, 600000, FREQ(0, 1, 4)), 0);
	/* a request raised while it ran (governed.h): 100 us at 432 MHz marked
	 * partial (15,300,000 pJ, no request counted), then 50 us at 1200 MHz
	 * (39,100,000 pJ): one request */
	assert_int_equal(thoth_pm_power_account_work(&a, 100000, FREQ(0, 1, 1) | THOTH_PM_WORK_PARTIAL), 0);
	assert_int_equal(thoth_pm_power_account_work(&a, 50000, FREQ(0, 1, 4)), 0);
	/* the lowering timer to 432 MHz, one request of 300 us: 300000 x 153 = 45,900,000 pJ */
	assert_int_equal(thoth_pm_power_account_freq(&a, 432000, FREQ(3, 1, 1)), 0);
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 153);
	assert_int_equal(thoth_pm_power_account_work(&a, 300000, FREQ(0, 1, 1)), 0);
	/* not priced: a model with no published table (0), an unknown id, an
	 * OPP HiKey has not, reserved bits */
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 0, 1)), THOTH_E_NOT_FOUND);
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 9, 1)), THOTH_E_NOT_FOUND);
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 1, 5)), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(2, 1, 1)), THOTH_E_INVAL);   /* bit 32 is THOTH_PM_WORK_PARTIAL */
	assert_int_equal(a.unpriced, 4);
	/* a change naming an OPP the model has not is refused and changes nothing */
	assert_int_equal(thoth_pm_power_account_freq(&a, 432000, FREQ(1, 1, 7)), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 153);
	thoth_pm_power_account_interval(&a, 1000000000ull, &iv);
	/* 1,038,700,000 pJ over 1e9 ns = 1.0387 mW; 1.0387e-3 J / 4 = 2.59675e-4 J */
	assert_close(iv.power_mw, 1.0387);
	assert_close(iv.energy_j, 1.0387e-3);
	assert_int_equal(iv.requests, 4);
	assert_close(iv.j_per_request, 2.59675e-4);
	assert_close(iv.cpu_share, 1.65e-3);

	/* interval 2 (500 ms): a Juno A53 request at 700 MHz for 2 ms
	 * (2e6 x 100 = 2e8 pJ) and a Juno A57 one at 450 MHz for 1 ms
	 * (1e6 x 192 = 1.92e8 pJ): 3.92e8 pJ / 5e8 ns = 0.784 mW */
	assert_int_equal(thoth_pm_power_account_work(&a, 2000000, FREQ(0, 3, 2)), 0);
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 2, 0)), 0);
	assert_string_equal(thoth_pm_power_account_model(&a)->name, "juno-a57");
	thoth_pm_power_account_interval(&a, 500000000ull, &iv);
	assert_close(iv.power_mw, 0.784);
	assert_close(iv.energy_j, 3.92e-4);
	assert_int_equal(iv.requests, 2);
	assert_close(iv.j_per_request, 1.96e-4);

	/* interval 3: nothing ran: 0 mW, no request to divide by */
	thoth_pm_power_account_interval(&a, 1000000000ull, &iv);
	assert_close(iv.power_mw, 0);
	assert_int_equal(iv.requests, 0);
	assert_close(iv.j_per_request, 0);

	/* since the start: 6 priced requests (the partial segment counts none),
	 * 1.0387e-3 + 3.92e-4 J */
	assert_int_equal(a.requests, 6);
	assert_int_equal(a.cpu_ns, 4650000);
	assert_close(a.energy_pj * 1e-12, 1.4307e-3);
	assert_int_equal(a.unpriced, 4);
}

/* The CPU time is the traced process's word: an absurd one is counted, not
 * priced, and moves no sum. */
static void test_an_absurd_cpu_time_is_not_priced(void **state)
{
	(void)state;
	thoth_pm_power_account_t a;
	thoth_pm_power_account_init(&a);
	assert_int_equal(thoth_pm_power_account_work(&a, UINT64_MAX, FREQ(0, 1, 4)), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_power_account_work(&a, THOTH_PM_WORK_MAX_NS + 1, FREQ(0, 1, 4)), THOTH_E_INVAL);
	assert_int_equal(a.unpriced, 2);
	assert_int_equal(a.requests, 0);
	assert_int_equal(a.cpu_ns, 0);
	assert_int_equal(thoth_pm_power_account_work(&a, THOTH_PM_WORK_MAX_NS, FREQ(0, 1, 4)), 0);
	assert_int_equal(a.requests, 1);
}

static void test_a_domain_without_a_published_model_is_shown_but_not_priced(void **state)
{
	(void)state;
	thoth_pm_power_account_t a;
	thoth_pm_power_account_init(&a);
	/* a model without a trace id (0: a test's; a machine's own energy model
	 * has one since trace_model.h, tested below) */
	assert_int_equal(thoth_pm_power_account_freq(&a, 1800000, FREQ(1, 0, 3)), 0);
	assert_true(a.seen);
	assert_null(thoth_pm_power_account_model(&a));
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 0);
	assert_int_equal(thoth_pm_power_account_work(&a, 500000, FREQ(0, 0, 3)), THOTH_E_NOT_FOUND);
	thoth_pm_power_interval_t iv;
	thoth_pm_power_account_interval(&a, 1000000000ull, &iv);
	assert_int_equal(iv.requests, 0);
	assert_close(iv.power_mw, 0);
	assert_int_equal(a.unpriced, 1);
}

static void use_tree(const char *name)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", FIXTURES, name);
	setenv("THOTH_SYSFS_ROOT", p, 1);
	thoth_pm_trace_models_reset();
}

/* The model a governed service on the Juno board builds for the domain
 * read at CPU (dvfs_domains.c does the same). */
static thoth_pm_cpu_model_t service_model(uint32_t cpu)
{
	thoth_pm_perf_domain_t pds[THOTH_PM_MAX_DOMAINS];
	uint32_t n = 0;
	assert_int_equal(thoth_pm_perf_domains(pds, THOTH_PM_MAX_DOMAINS, &n), 0);
	for (uint32_t i = 0; i < n; i++) {
		if (pds[i].cpus[0] != cpu)
			continue;
		thoth_pm_cpu_model_t m;
		const char *why = NULL;
		assert_int_equal(thoth_pm_cpu_model_from_domain(&pds[i], &m, &why), 0);
		return m;
	}
	fail_msg("no domain read at cpu%u", cpu);
	return (thoth_pm_cpu_model_t){ 0 };
}

static void test_a_machines_own_energy_model_is_priced_from_the_same_sysfs(void **state)
{
	(void)state;
	use_tree("arm64-juno");
	/* what the service's trace points carry: its domain's first CPU */
	thoth_pm_cpu_model_t big = service_model(1), little = service_model(0);
	assert_int_equal(big.trace_id, 0x8001);
	assert_int_equal(little.trace_id, 0x8000);
	assert_int_equal(big.opp_count, 5);
	assert_int_equal(big.opps[3].freq_khz, 950000);

	thoth_pm_power_account_t a;
	thoth_pm_power_account_init(&a);
	/* the big domain raised to 950 MHz (OPP 3): 479 mW */
	assert_int_equal(thoth_pm_power_account_freq(&a, 950000, FREQ(1, big.trace_id, 3)), 0);
	const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&a);
	assert_non_null(m);
	assert_string_equal(m->name, "sysfs-cpu1");
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 479);
	assert_null(thoth_pm_power_account_unpriced_why(&a));
	/* 1 ms there: 1e6 x 479 = 4.79e8 pJ; 2 ms on the little domain at
	 * 850 MHz (OPP 4, 93 mW): 1.86e8 pJ; 3 ms at the big 450 MHz (168 mW):
	 * 5.04e8 pJ */
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, big.trace_id, 3)), 0);
	assert_int_equal(thoth_pm_power_account_work(&a, 2000000, FREQ(0, little.trace_id, 4)), 0);
	assert_int_equal(thoth_pm_power_account_opp_mw(&a), 93);
	assert_int_equal(thoth_pm_power_account_work(&a, 3000000, FREQ(0, big.trace_id, 0)), 0);
	thoth_pm_power_interval_t iv;
	thoth_pm_power_account_interval(&a, 1000000000ull, &iv);
	/* 1.169e9 pJ over 1e9 ns = 1.169 mW; 1.169e-3 J / 3 requests */
	assert_close(iv.power_mw, 1.169);
	assert_close(iv.energy_j, 1.169e-3);
	assert_int_equal(iv.requests, 3);
	assert_close(iv.j_per_request, 1.169e-3 / 3);
	assert_int_equal(a.unpriced, 0);

	/* an OPP the machine's model has not (5 states), and a CPU that heads
	 * no domain (cpu3 is in cpu0's): counted, not priced, with reasons */
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, big.trace_id, 5)), THOTH_E_INVAL);
	assert_string_equal(a.unpriced_why, "an OPP the model has not");
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 0x8003, 0)), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(a.unpriced_why, "no performance domain read at that CPU"));
	assert_int_equal(a.unpriced, 2);
	assert_int_equal(a.requests, 3);
	unsetenv("THOTH_SYSFS_ROOT");
	thoth_pm_trace_models_reset();
}

/* What thothd cannot know is said: no cpufreq in its view of sysfs (this
 * VM's tree), or a domain without an energy model (the x86 laptop's). */
static void test_a_machine_model_thothd_cannot_read_is_unpriced_with_the_reason(void **state)
{
	(void)state;
	thoth_pm_power_account_t a;
	const char *why = NULL;
	use_tree("vm");
	thoth_pm_power_account_init(&a);
	assert_int_equal(thoth_pm_power_account_freq(&a, 950000, FREQ(1, 0x8001, 3)), 0);
	assert_null(thoth_pm_power_account_model(&a));
	assert_non_null(strstr(thoth_pm_power_account_unpriced_why(&a), "no cpufreq performance domain"));
	assert_int_equal(thoth_pm_power_account_work(&a, 1000000, FREQ(0, 0x8001, 3)), THOTH_E_NOT_FOUND);
	assert_int_equal(a.unpriced, 1);
	assert_int_equal(a.requests, 0);

	use_tree("x86-laptop");
	assert_null(thoth_pm_trace_model(0x8000, &why));
	assert_non_null(why);
	assert_non_null(strstr(why, "energy model"));
	/* model 0 stays unpriced, with its reason */
	assert_null(thoth_pm_trace_model(0, &why));
	assert_non_null(strstr(why, "trace id 0"));
	unsetenv("THOTH_SYSFS_ROOT");
	thoth_pm_trace_models_reset();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_ids_name_the_published_tables_and_nothing_else),
		cmocka_unit_test(test_a_scripted_sequence_prices_each_request_at_its_opps_busy_power),
		cmocka_unit_test(test_an_absurd_cpu_time_is_not_priced),
		cmocka_unit_test(test_a_domain_without_a_published_model_is_shown_but_not_priced),
		cmocka_unit_test(test_a_machines_own_energy_model_is_priced_from_the_same_sysfs),
		cmocka_unit_test(test_a_machine_model_thothd_cannot_read_is_unpriced_with_the_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
