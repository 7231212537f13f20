/*
 * test_moderation.c - the moderation policies (kernel/pm/moderation.c) on
 * scripted rate steps, in simulated time: a Poisson-free, exact stream of
 * events, each carrying the messages that arrived since the previous one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "moderation.h"
#include "thoth/error.h"

/* Drives a policy with a steady producer RATE (msg/s) for DURATION_NS of
 * simulated time: the consumer wakes when its profile says (max_msgs
 * messages or max_us after it slept, whichever first) or, unmoderated, at
 * every message.  Returns the simulated time at which the profile first
 * satisfied PRED (or UINT64_MAX). */
typedef struct sim {
	thoth_mod_t m;
	thoth_mod_sample_t s;
} sim_t;

typedef bool (*pred_fn)(thoth_mod_profile_t p);

static uint64_t run(sim_t *x, uint64_t rate, uint64_t duration_ns, pred_fn pred)
{
	uint64_t gap = 1000000000u / rate, end = x->s.time_ns + duration_ns, hit = UINT64_MAX;
	while (x->s.time_ns < end) {
		thoth_mod_profile_t p = thoth_mod_profile(&x->m);
		uint64_t n = 1, dt = gap;
		if (thoth_mod_profile_defers(p)) {
			uint64_t by_time = (uint64_t)p.max_us * 1000u / gap;
			n = by_time < p.max_msgs ? (by_time ? by_time : 1) : p.max_msgs;
			dt = n * gap;
		}
		x->s.time_ns += dt;
		x->s.events++;
		x->s.msgs += n;
		x->s.bytes += n * 64;
		thoth_mod_update(&x->m, &x->s);
		if (hit == UINT64_MAX && pred && pred(thoth_mod_profile(&x->m)))
			hit = x->s.time_ns;
	}
	return hit;
}

static bool defers(thoth_mod_profile_t p) { return thoth_mod_profile_defers(p); }
static bool no_defer(thoth_mod_profile_t p) { return !thoth_mod_profile_defers(p); }

static void sim_init(sim_t *x, thoth_mod_kind_t kind)
{
	memset(x, 0, sizeof *x);
	thoth_mod_config_t cfg = { .kind = kind };
	assert_int_equal(thoth_mod_init(&x->m, &cfg), 0);
	x->s.time_ns = 1000000000u;
}

static void test_adaptive_never_waits_at_low_rates(void **state)
{
	sim_t x;
	sim_init(&x, THOTH_MOD_ADAPTIVE);
	/* 1k and 10k msg/s: one wake-up per message, every window. */
	assert_int_equal(run(&x, 1000, 200000000u, defers), UINT64_MAX);
	assert_int_equal(run(&x, 10000, 100000000u, defers), UINT64_MAX);
	assert_int_equal(x.m.cur.max_msgs, 1);
	assert_int_equal(x.m.cur.max_us, 0);
}

static void test_adaptive_follows_rate_steps_within_10ms(void **state)
{
	sim_t x;
	sim_init(&x, THOTH_MOD_ADAPTIVE);
	run(&x, 1000, 50000000u, NULL);
	/* Step up to 1M msg/s: moderated within 10 ms, ~24 messages a wake-up. */
	uint64_t t0 = x.s.time_ns;
	uint64_t hit = run(&x, 1000000, 20000000u, defers);
	assert_true(hit != UINT64_MAX);
	assert_true(hit - t0 <= 10000000u);
	thoth_mod_profile_t p = thoth_mod_profile(&x.m);
	assert_int_equal(p.max_us, 256);        /* the default latency budget, spent */
	assert_int_equal(p.max_msgs, 256);
	/* At 100k msg/s a wake-up carries at least 16 messages. */
	run(&x, 100000, 20000000u, NULL);
	p = thoth_mod_profile(&x.m);
	assert_true((uint64_t)p.max_us * 100000u / 1000000u >= 16);
	/* Step down to 1k msg/s: unmoderated within 10 ms. */
	t0 = x.s.time_ns;
	hit = run(&x, 1000, 50000000u, no_defer);
	assert_true(hit != UINT64_MAX);
	assert_true(hit - t0 <= 10000000u);
}

static void test_adaptive_ignores_changes_under_ten_percent(void **state)
{
	sim_t x;
	memset(&x, 0, sizeof x);
	/* A 1 ms budget, so T follows the rate (256 messages' worth). */
	thoth_mod_config_t cfg = { .kind = THOTH_MOD_ADAPTIVE, .fixed = { 0, 1000 } };
	assert_int_equal(thoth_mod_init(&x.m, &cfg), 0);
	x.s.time_ns = 1000000000u;
	run(&x, 500000, 10000000u, NULL);
	uint64_t changes = x.m.changes;
	thoth_mod_profile_t p = thoth_mod_profile(&x.m);
	run(&x, 520000, 10000000u, NULL);       /* 4% faster: T (512 us) would move < 10% */
	assert_int_equal(x.m.changes, changes);
	assert_int_equal(thoth_mod_profile(&x.m).max_us, p.max_us);
	run(&x, 250000, 10000000u, NULL);       /* half the rate: twice the T (1000 us, the budget) */
	assert_true(x.m.changes > changes);
	assert_true(thoth_mod_profile(&x.m).max_us > p.max_us);
}

static void test_adaptive_survives_counters_going_backwards(void **state)
{
	sim_t x;
	sim_init(&x, THOTH_MOD_ADAPTIVE);
	run(&x, 1000, 10000000u, NULL);
	x.s.msgs = 0;                            /* a reset counter is not a huge rate */
	x.s.events = 0;
	x.s.time_ns += 2000000u;
	thoth_mod_update(&x.m, &x.s);
	x.s.time_ns += 2000000u;
	x.s.events += 2;
	x.s.msgs += 2;
	thoth_mod_update(&x.m, &x.s);
	assert_false(thoth_mod_profile_defers(thoth_mod_profile(&x.m)));
}

static void test_fixed_and_none_are_constant(void **state)
{
	thoth_mod_t m;
	thoth_mod_config_t cfg = { .kind = THOTH_MOD_FIXED, .fixed = { 64, 50 } };
	assert_int_equal(thoth_mod_init(&m, &cfg), 0);
	thoth_mod_sample_t s = { .time_ns = 1 };
	for (int i = 0; i < 1000; i++) {
		s.time_ns += 1000;
		s.events++;
		s.msgs += 10;
		assert_false(thoth_mod_update(&m, &s));
	}
	assert_int_equal(m.cur.max_msgs, 64);
	assert_int_equal(m.cur.max_us, 50);
	cfg = (thoth_mod_config_t){ .kind = THOTH_MOD_NONE };
	assert_int_equal(thoth_mod_init(&m, &cfg), 0);
	assert_false(thoth_mod_profile_defers(m.cur));
	/* Beyond the caps, or an unknown kind: refused. */
	cfg = (thoth_mod_config_t){ .kind = THOTH_MOD_FIXED, .fixed = { 257, 50 } };
	assert_int_equal(thoth_mod_init(&m, &cfg), THOTH_E_INVAL);
	cfg = (thoth_mod_config_t){ .kind = THOTH_MOD_FIXED, .fixed = { 8, 1001 } };
	assert_int_equal(thoth_mod_init(&m, &cfg), THOTH_E_INVAL);
	cfg = (thoth_mod_config_t){ .kind = THOTH_MOD_ADAPTIVE, .fixed = { 0, 5 } };   /* budget under 10 us */
	assert_int_equal(thoth_mod_init(&m, &cfg), THOTH_E_INVAL);
	cfg = (thoth_mod_config_t){ .kind = (thoth_mod_kind_t)7 };
	assert_int_equal(thoth_mod_init(&m, &cfg), THOTH_E_INVAL);
	thoth_mod_profile_t p = thoth_mod_clamp((thoth_mod_profile_t){ 100000, 100000 });
	assert_int_equal(p.max_msgs, THOTH_MOD_MAX_MSGS);
	assert_int_equal(p.max_us, THOTH_MOD_MAX_US);
	thoth_mod_kind_t k;
	assert_int_equal(thoth_mod_kind_parse("dim", &k), 0);
	assert_int_equal(k, THOTH_MOD_DIM);
	assert_int_equal(thoth_mod_kind_parse("bogus", &k), THOTH_E_INVAL);
}

/* One DIM sample: 64 events over DT_US carrying PKTS packets of 64 bytes. */
static bool dim_sample(thoth_mod_t *m, thoth_mod_sample_t *s, uint64_t dt_us, uint64_t pkts)
{
	bool changed = false;
	for (int i = 0; i < 64; i++) {
		s->time_ns += dt_us * 1000u / 64;
		s->events++;
		s->msgs += pkts / 64;
		s->bytes += pkts / 64 * 64;
		changed |= thoth_mod_update(m, s);
	}
	return changed;
}

/* The walk of Linux net_dim, step by step against the kernel's rules. */
static void test_dim_port_walks_like_net_dim(void **state)
{
	thoth_mod_t m;
	thoth_mod_config_t cfg = { .kind = THOTH_MOD_DIM };
	assert_int_equal(thoth_mod_init(&m, &cfg), 0);
	/* NET_DIM_DEF_PROFILE_EQE: profile 1 of the RX EQE table. */
	assert_int_equal(m.cur.max_us, 8);
	assert_int_equal(m.cur.max_msgs, 256);
	thoth_mod_sample_t s = { .time_ns = 1000000000u };
	thoth_mod_update(&m, &s);                /* DIM_START_MEASURE: the first sample begins */
	/* 63 more events: no decision yet (DIM_NEVENTS = 64). */
	for (int i = 0; i < 63; i++) {
		s.time_ns += 100000;
		s.events++;
		s.msgs += 100;
		s.bytes += 6400;
		assert_false(thoth_mod_update(&m, &s));
	}
	/* The 64th: previous stats are zero, so "better": leave parking
	 * towards profile 0 (profile_ix != 0 -> going left). */
	s.time_ns += 100000;
	s.events++;
	s.msgs += 100;
	s.bytes += 6400;
	assert_true(thoth_mod_update(&m, &s));
	assert_int_equal(m.cur.max_us, 1);
	assert_int_equal(m.dim.profile_ix, 0);
	/* The profile applies, then a new measurement starts at the next event. */
	thoth_mod_update(&m, &s);
	/* Same traffic, within 10%: "same" is not "better", so DIM turns
	 * right and steps: profile 1. */
	assert_true(dim_sample(&m, &s, 6400, 6400));
	assert_int_equal(m.dim.profile_ix, 1);
	/* 20% more bytes per ms is "better": keep going right. */
	thoth_mod_update(&m, &s);
	assert_true(dim_sample(&m, &s, 6400, 7680));
	assert_int_equal(m.dim.profile_ix, 2);
	assert_int_equal(m.cur.max_us, 64);
	/* 20% fewer is "worse": turn left. */
	thoth_mod_update(&m, &s);
	assert_true(dim_sample(&m, &s, 6400, 6144));
	assert_int_equal(m.dim.profile_ix, 1);
}

static void test_dim_parks_and_stays_with_steady_traffic(void **state)
{
	thoth_mod_t m;
	thoth_mod_config_t cfg = { .kind = THOTH_MOD_DIM };
	assert_int_equal(thoth_mod_init(&m, &cfg), 0);
	thoth_mod_sample_t s = { .time_ns = 1000000000u };
	thoth_mod_update(&m, &s);
	/* Steady traffic: DIM oscillates, gets tired after 10 steps, parks,
	 * and the profile then stays put for at least 10 samples. */
	for (int i = 0; i < 40; i++) {
		dim_sample(&m, &s, 6400, 6400);
		thoth_mod_update(&m, &s);
	}
	assert_true(m.dim.profile_ix < 5);
	assert_true(m.changes >= 2);
	assert_true(m.changes <= 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_adaptive_never_waits_at_low_rates),
		cmocka_unit_test(test_adaptive_follows_rate_steps_within_10ms),
		cmocka_unit_test(test_adaptive_ignores_changes_under_ten_percent),
		cmocka_unit_test(test_adaptive_survives_counters_going_backwards),
		cmocka_unit_test(test_fixed_and_none_are_constant),
		cmocka_unit_test(test_dim_port_walks_like_net_dim),
		cmocka_unit_test(test_dim_parks_and_stays_with_steady_traffic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
