/*
 * test_pm_engine.c - the PM-2 engine's rules on hand-computed cases:
 * break-even times, the lower-envelope ladder, QoS and known events,
 * the prediction's reaction to history, CPU idle hints, bad descriptions.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "energy.h"
#include "engine.h"
#include "idle_hist.h"
#include "predict.h"
#include "thoth/error.h"

#define US 1000ull
#define MS 1000000ull

static const thoth_pm_element_desc_t *nvme950(void)
{
	return &thoth_pm_device_model_find("nvme-samsung-950")->desc;
}

static const thoth_pm_element_desc_t *nic(void)
{
	return &thoth_pm_device_model_find("nic-sim")->desc;
}

static const thoth_pm_constraints_t no_bounds = { THOTH_PM_NONE, THOTH_PM_NONE };

/* |a - b| <= tol */
static void assert_near(uint64_t a, uint64_t b, uint64_t tol)
{
	assert_true(a > b ? a - b <= tol : b - a <= tol);
}

static void test_break_even_is_transition_time_when_transitions_cost_on_power(void **state)
{
	/* nic-sim charges transitions at on-idle power: E_s(t) = E_0(t) exactly
	 * when t = entry + exit. */
	assert_int_equal(thoth_pm_break_even_ns(nic(), 0), 0);
	assert_int_equal(thoth_pm_break_even_ns(nic(), 1), 70 * US);
	assert_int_equal(thoth_pm_break_even_ns(nic(), 2), 7 * MS);
}

static void test_break_even_grows_when_transitions_cost_more_than_idle(void **state)
{
	/* 950 PRO PS3: 5.5 ms of transition at 6500 mW instead of 3600 mW idle:
	 * t = 5.5 ms * (6500 - 70) / (3600 - 70) = 10.0184 ms.
	 * PS4: 24 ms * (6500 - 5) / (3600 - 5) = 43.360 ms. */
	assert_near(thoth_pm_break_even_ns(nvme950(), 1), 10018414, 2);
	assert_near(thoth_pm_break_even_ns(nvme950(), 2), 43360223, 2);
}

static void test_ladder_follows_the_lower_envelope(void **state)
{
	thoth_pm_decision_t d;
	thoth_pm_ladder(nvme950(), &no_bounds, 0, &d);
	assert_int_equal(d.state, 0);
	assert_int_equal(d.ladder_count, 2);
	assert_int_equal(d.ladder[0].state, 1);
	assert_near(d.ladder[0].at_ns, 10018414, 2);
	/* PS3 -> PS4 where their lines cross:
	 * (24 * 6495 - 5.5 * 6430) mW*ms / (70 - 5) mW = 1854.08 ms */
	assert_int_equal(d.ladder[1].state, 2);
	assert_near(d.ladder[1].at_ns, 1854076923, 2);
	assert_int_equal(d.prewake_ns, 0);
}

static void test_qos_excludes_states_that_wake_too_slowly(void **state)
{
	thoth_pm_decision_t d;
	/* 200 us: D3 (2 + 5 ms) is out, L1 (20 + 50 us) is in */
	thoth_pm_constraints_t c = { 200 * US, THOTH_PM_NONE };
	thoth_pm_choose(nic(), &c, 10ull * 1000 * MS, &d);
	assert_int_equal(d.state, 1);
	assert_int_equal(d.ladder_count, 0);
	/* 69 us: not even L1 */
	c.latency_ns = 69 * US;
	thoth_pm_choose(nic(), &c, 10ull * 1000 * MS, &d);
	assert_int_equal(d.state, 0);
	assert_int_equal(d.ladder_count, 0);
}

static void test_choice_is_the_deepest_state_worth_the_predicted_idle(void **state)
{
	thoth_pm_decision_t d;
	thoth_pm_choose(nvme950(), &no_bounds, 5 * MS, &d);   /* below PS3's 10.02 ms */
	assert_int_equal(d.state, 0);
	assert_int_equal(d.ladder[0].state, 1);              /* the fallback */
	thoth_pm_choose(nvme950(), &no_bounds, 20 * MS, &d);  /* PS3 pays, PS4 (43 ms) not */
	assert_int_equal(d.state, 1);
	assert_int_equal(d.ladder_count, 1);
	assert_int_equal(d.ladder[0].state, 2);
	/* At 1 s PS4 is past its break-even but PS3 is still cheaper:
	 * PS3: 35365 + 70 * 1000 = 105365 uJ; PS4: 155880 + 5 * 1000 = 160880 uJ */
	thoth_pm_choose(nvme950(), &no_bounds, 1000 * MS, &d);
	assert_int_equal(d.state, 1);
	/* At 5 s PS4 wins: 155880 + 25000 < 35365 + 350000 */
	thoth_pm_choose(nvme950(), &no_bounds, 5000 * MS, &d);
	assert_int_equal(d.state, 2);
	assert_int_equal(d.ladder_count, 0);
}

static void test_known_next_event_bounds_the_choice_and_prewakes(void **state)
{
	thoth_pm_decision_t d;
	/* A timer in 3 ms: D3 needs 7 ms to go and come back, so L1, woken
	 * 50 us (its exit latency) before the timer. */
	thoth_pm_constraints_t c = { THOTH_PM_NONE, 3 * MS };
	thoth_pm_choose(nic(), &c, 1000 * MS, &d);
	assert_int_equal(d.state, 1);
	assert_int_equal(d.ladder_count, 0);
	assert_int_equal(d.prewake_ns, 50 * US);
	/* A timer in 1 s: D3 at once, woken 5 ms early. */
	c.next_event_ns = 1000 * MS;
	thoth_pm_choose(nic(), &c, 0, &d);
	assert_int_equal(d.state, 0); /* history says 0... */
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nic(), &e, NULL), 0);
	thoth_pm_engine_decide(e, &c, &d); /* ...but a fresh engine trusts the timer */
	assert_int_equal(d.state, 2);
	assert_int_equal(d.prewake_ns, 5 * MS);
	thoth_pm_engine_free(e);
}

static void test_fresh_engine_starts_shallow_with_the_break_even_ladder(void **state)
{
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nvme950(), &e, NULL), 0);
	thoth_pm_decision_t d;
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 0);
	assert_int_equal(d.ladder_count, 2);
	thoth_pm_engine_free(e);
}

static void test_long_idle_history_goes_deep_at_once(void **state)
{
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nic(), &e, NULL), 0);
	thoth_pm_decision_t d;
	for (int i = 0; i < 4; i++) {
		thoth_pm_engine_decide(e, &no_bounds, &d);
		thoth_pm_engine_observe(e, 50 * MS, THOTH_PM_NONE);
	}
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 2);
	assert_int_equal(d.predicted_idle_ns, 50 * MS);
	thoth_pm_engine_free(e);
}

static void test_short_idles_among_long_ones_make_the_engine_wait_past_them(void **state)
{
	/* The echo service's pattern: long idles, then short ones.  Entering
	 * D3 at once would cost 7 ms of transitions on every short idle; the
	 * plan that waits just past the short lengths (their bin ends at
	 * 128 us: two bins per octave, 2^7 us) and then goes straight to D3
	 * costs the short idles nothing and the long ones 0.128 ms on. */
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nic(), &e, NULL), 0);
	thoth_pm_decision_t d;
	for (int i = 0; i < 20; i++)
		thoth_pm_engine_observe(e, 50 * MS, THOTH_PM_NONE);
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 2);
	thoth_pm_engine_observe(e, 100 * US, THOTH_PM_NONE);
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 0);
	assert_int_equal(d.ladder[0].state, 2);
	assert_int_equal(d.ladder[0].at_ns, 128 * US);
	assert_int_equal(thoth_pm_idle_hist_upper_ns(thoth_pm_idle_hist_bin(100 * US)), 128 * US);
	/* The first short idle (D3 entered at once) was too deep; one under
	 * the waiting plan is not: it ended before D3 was entered. */
	thoth_pm_engine_observe(e, 100 * US, THOTH_PM_NONE);
	thoth_pm_engine_stats_t st;
	thoth_pm_engine_stats(e, &st);
	assert_int_equal(st.too_deep, 1);
	/* Once the long idles have decayed away (1/64 per period: below 1e-6
	 * of a period after ~1100), D3 is not worth entering early: L1 at once
	 * (100 us idles pass its 70 us break-even), D3 only by L1's ladder,
	 * where their lines cross (39.2 ms). */
	for (int i = 0; i < 1200; i++)
		thoth_pm_engine_observe(e, 100 * US, THOTH_PM_NONE);
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 1);
	assert_int_equal(d.ladder_count, 1);
	assert_int_equal(d.ladder[0].state, 2);
	assert_true(d.ladder[0].at_ns > 39 * MS && d.ladder[0].at_ns < 40 * MS);
	thoth_pm_engine_free(e);
}

static void test_the_price_of_going_too_deep_holds_the_rate_to_the_target(void **state)
{
	/* Exponential idles with a mean of 3x the 950's PS3 break-even (10 ms):
	 * 28% of them are shorter than it, so sleeping at once (the cheapest
	 * plan on energy alone) goes too deep on 28%.  The price rises until
	 * at most THOTH_PM_TOO_DEEP_TARGET (10%) of the periods do. */
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nvme950(), &e, NULL), 0);
	thoth_pm_decision_t d;
	uint64_t x = 88172645463325252ull, deep_at_half = 0;
	const int n = 20000;
	for (int i = 0; i < n; i++) {
		if (i == n / 2) {
			thoth_pm_engine_stats_t st;
			thoth_pm_engine_stats(e, &st);
			deep_at_half = st.too_deep;
		}
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		double u = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
		thoth_pm_engine_decide(e, &no_bounds, &d);
		thoth_pm_engine_observe(e, (uint64_t)(-log(u) * 30.0 * MS), THOTH_PM_NONE);
	}
	thoth_pm_engine_stats_t st;
	thoth_pm_engine_stats(e, &st);
	double second_half = (double)(st.too_deep - deep_at_half) / (n / 2);
	assert_true(second_half <= THOTH_PM_TOO_DEEP_TARGET + 0.01);
	assert_true(second_half >= 0.05); /* it does go deep at once: not the ladder alone */
	thoth_pm_engine_free(e);
}

static void test_too_deep_counts_decisions_whose_break_even_was_not_reached(void **state)
{
	thoth_pm_engine_t *e;
	assert_int_equal(thoth_pm_engine_new(nic(), &e, NULL), 0);
	thoth_pm_decision_t d;
	for (int i = 0; i < 8; i++)
		thoth_pm_engine_observe(e, 50 * MS, THOTH_PM_NONE);
	thoth_pm_engine_decide(e, &no_bounds, &d);
	assert_int_equal(d.state, 2);
	thoth_pm_engine_observe(e, 1 * MS, THOTH_PM_NONE); /* D3 needed 7 ms */
	thoth_pm_engine_stats_t st;
	thoth_pm_engine_stats(e, &st);
	assert_int_equal(st.too_deep, 1);
	thoth_pm_engine_free(e);
}

static void test_cpu_hint_is_the_chosen_states_exit_latency(void **state)
{
	/* This VM's cpuidle: POLL and haltpoll (exit latency 1 us) */
	thoth_pm_element_desc_t cpu = { .name = "cpu", .state_count = 2, .states = {
		{ .name = "POLL", .power_mw = 100 },
		{ .name = "haltpoll", .power_mw = 20, .entry_latency_ns = 1 * US,
		  .exit_latency_ns = 1 * US },
	} };
	thoth_pm_decision_t d;
	thoth_pm_constraints_t c = { THOTH_PM_NONE, 1 * US }; /* a timer in 1 us */
	thoth_pm_choose(&cpu, &c, 0, &d);
	assert_int_equal(thoth_pm_cpu_latency_hint_us(&cpu, &d), 0); /* poll */
	c.next_event_ns = 1 * MS;
	thoth_pm_choose(&cpu, &c, 1 * MS, &d);
	assert_int_equal(d.state, 1);
	assert_int_equal(thoth_pm_cpu_latency_hint_us(&cpu, &d), 1);
}

static void test_bad_descriptions_are_refused_naming_the_field(void **state)
{
	thoth_pm_element_desc_t d = *nic();
	const char *why = NULL;
	thoth_pm_engine_t *e = NULL;
	d.states[2].exit_latency_ns = 61ull * 1000 * MS;
	assert_int_equal(thoth_pm_engine_new(&d, &e, &why), THOTH_E_INVAL);
	assert_null(e);
	assert_string_equal(why, "states[i].exit_latency_ns: above 60 s");
	d = *nic();
	d.states[1].power_mw = 900;
	assert_int_equal(thoth_pm_element_check(&d, &why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "power_mw"));
	d = *nic();
	d.state_count = 0;
	assert_int_equal(thoth_pm_element_check(&d, &why), THOTH_E_INVAL);
	d.state_count = THOTH_PM_MAX_STATES + 1;
	assert_int_equal(thoth_pm_element_check(&d, &why), THOTH_E_INVAL);
	d = *nic();
	d.states[0].exit_latency_ns = 1;
	assert_int_equal(thoth_pm_element_check(&d, &why), THOTH_E_INVAL);
	d = *nic();
	d.states[1].entry_latency_ns = d.states[1].exit_latency_ns = 0;
	assert_int_equal(thoth_pm_element_check(&d, &why), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_element_check(NULL, &why), THOTH_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_break_even_is_transition_time_when_transitions_cost_on_power),
		cmocka_unit_test(test_break_even_grows_when_transitions_cost_more_than_idle),
		cmocka_unit_test(test_ladder_follows_the_lower_envelope),
		cmocka_unit_test(test_qos_excludes_states_that_wake_too_slowly),
		cmocka_unit_test(test_choice_is_the_deepest_state_worth_the_predicted_idle),
		cmocka_unit_test(test_known_next_event_bounds_the_choice_and_prewakes),
		cmocka_unit_test(test_fresh_engine_starts_shallow_with_the_break_even_ladder),
		cmocka_unit_test(test_long_idle_history_goes_deep_at_once),
		cmocka_unit_test(test_short_idles_among_long_ones_make_the_engine_wait_past_them),
		cmocka_unit_test(test_the_price_of_going_too_deep_holds_the_rate_to_the_target),
		cmocka_unit_test(test_too_deep_counts_decisions_whose_break_even_was_not_reached),
		cmocka_unit_test(test_cpu_hint_is_the_chosen_states_exit_latency),
		cmocka_unit_test(test_bad_descriptions_are_refused_naming_the_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
