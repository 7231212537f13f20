/*
 * test_pm_live_feasible.c - bench_pm_live's feasibility check
 * (bench/pm/live_feasible.h) on cases computed by hand, the case that
 * made the live Juno A53 figures meaningless (the chain cell's work
 * unscaled on a cluster of capacity 447), and the work scaling that fixes it;
 * and what the --diag replay's look at the rings sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "live_feasible.h"
#include "sim.h"

#define US 1000ull
#define MS 1000000ull

/* A trace of N jobs (arrival, work at 1024, relative deadline, sender). */
typedef struct spec_job {
	uint64_t at, work, rel;
	uint32_t sender;
} spec_job_t;

static thoth_pm_trace_t trace_of(thoth_pm_job_t *jobs, const spec_job_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jobs[i] = (thoth_pm_job_t){ .arrival_ns = s[i].at, .work_ns = s[i].work,
					    .deadline_ns = s[i].at + s[i].rel, .client = s[i].sender };
	thoth_pm_trace_t t = { .count = n, .jobs = jobs, .end_ns = 1000 * MS };
	return t;
}

static thoth_pm_live_feasibility_t check(const char *model, const thoth_pm_trace_t *t, uint32_t senders)
{
	thoth_pm_live_feasibility_t f;
	const char *why = NULL;
	assert_int_equal(thoth_pm_live_feasibility(thoth_pm_cpu_model_find(model), t, senders, &f, &why), 0);
	return f;
}

/* Two senders send 6 ms of work at once, 10 ms deadlines, HiKey (top
 * 1024): the second is answered at 12 ms, 2 ms late, even at the top OPP. */
static void test_two_requests_that_queue_past_their_deadline_are_infeasible(void **state)
{
	thoth_pm_job_t jobs[2];
	spec_job_t s[] = { { 0, 6 * MS, 10 * MS, 1 }, { 0, 6 * MS, 10 * MS, 2 } };
	thoth_pm_trace_t t = trace_of(jobs, s, 2);
	thoth_pm_live_feasibility_t f = check("hikey-a53", &t, 2);
	assert_int_equal(f.top_capacity, 1024);
	assert_int_equal(f.requests, 2);
	assert_int_equal(f.misses, 1);
	assert_int_equal(f.worst_ns, 12 * MS);
	assert_int_equal(f.longest_burn_ns, 6 * MS);
	/* with 12 ms deadlines the second is answered exactly on time */
	s[0].rel = s[1].rel = 12 * MS;
	t = trace_of(jobs, s, 2);
	assert_int_equal(check("hikey-a53", &t, 2).misses, 0);
}

/* One sender's chain: the second step is sent when the first is answered
 * (6 ms), not at its trace time (1 ms), and its deadline counts from that
 * send: answered 6 ms after it, on time (from the trace time it would be
 * 11 ms: late). */
static void test_a_senders_next_request_is_sent_when_its_previous_is_answered(void **state)
{
	thoth_pm_job_t jobs[2];
	spec_job_t s[] = { { 0, 6 * MS, 10 * MS, 1 }, { 1 * MS, 6 * MS, 10 * MS, 1 } };
	thoth_pm_trace_t t = trace_of(jobs, s, 2);
	thoth_pm_live_feasibility_t f = check("hikey-a53", &t, 1);
	assert_int_equal(f.misses, 0);
	assert_int_equal(f.worst_ns, 6 * MS);
}

/* Work is at capacity 1024: Juno's A53 (top 447) burns 447 us of it in
 * 1024 us; 5 ms of it (11.45 ms) misses a 10 ms deadline alone. */
static void test_work_is_burnt_at_the_models_top_capacity(void **state)
{
	thoth_pm_job_t jobs[1];
	spec_job_t s[] = { { 0, 447 * US, 10 * MS, 1 } };
	thoth_pm_trace_t t = trace_of(jobs, s, 1);
	thoth_pm_live_feasibility_t f = check("juno-a53", &t, 1);
	assert_int_equal(f.top_capacity, 447);
	assert_int_equal(f.longest_burn_ns, 1024 * US);
	assert_int_equal(f.misses, 0);
	s[0].work = 5 * MS;
	t = trace_of(jobs, s, 1);
	assert_int_equal(check("juno-a53", &t, 1).misses, 1);
	assert_int_equal(check("hikey-a53", &t, 1).misses, 0);
}

/* Requests of senders the bench runs no client for are neither sent nor
 * counted. */
static void test_only_the_senders_the_bench_runs_count(void **state)
{
	thoth_pm_job_t jobs[2];
	spec_job_t s[] = { { 0, 6 * MS, 10 * MS, 1 }, { 0, 6 * MS, 10 * MS, 2 } };
	thoth_pm_trace_t t = trace_of(jobs, s, 2);
	thoth_pm_live_feasibility_t f = check("hikey-a53", &t, 1);
	assert_int_equal(f.requests, 1);
	assert_int_equal(f.misses, 0);
}

/* bench_pm's chain cell with its work unscaled, as bench_pm_live offered
 * it before: on Juno's A53 each step is 4.6 ms at the top OPP and some
 * answers queue past 10 ms whatever the governor does; scaled to the
 * cluster (x 447/1024, as bench_pm) every model's top OPP meets it. */
static void test_the_chain_cell_is_infeasible_on_juno_a53_unless_scaled_to_it(void **state)
{
	const char *cell = "chain depth=3 mean_gap_us=50000 work_us=2000 deadline_us=10000 duration_ms=5000 seed=1";
	for (size_t mi = 0; thoth_pm_cpu_model_at(mi); mi++) {
		const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_at(mi);
		for (int scale = 0; scale < 2; scale++) {
			char spec[256];
			assert_int_equal(thoth_pm_live_spec(m, cell, scale, spec, sizeof spec), 0);
			thoth_pm_trace_t t;
			const char *why;
			assert_int_equal(thoth_pm_trace_generate(spec, "chain", &t, &why), 0);
			thoth_pm_live_feasibility_t f = check(m->name, &t, 8);
			assert_int_equal(f.requests, t.count);
			if (!scale && !strcmp(m->name, "juno-a53")) {
				assert_true(f.misses > 0);
				assert_true(f.longest_burn_ns > 4 * MS);
			} else {
				assert_int_equal(f.misses, 0);
			}
			thoth_pm_trace_free(&t);
		}
	}
}

static void test_the_scaled_spec_keeps_every_other_key(void **state)
{
	char out[128];
	const thoth_pm_cpu_model_t *a53 = thoth_pm_cpu_model_find("juno-a53");
	assert_int_equal(thoth_pm_live_spec(a53, "chain depth=3 work_us=2000 deadline_us=10000", true, out,
					    sizeof out), 0);
	assert_string_equal(out, "chain depth=3 work_us=873.0 deadline_us=10000");
	assert_int_equal(thoth_pm_live_spec(a53, "poisson mean_gap_us=10 work_us=1024", true, out, sizeof out), 0);
	assert_string_equal(out, "poisson mean_gap_us=10 work_us=447.0");
	assert_int_equal(thoth_pm_live_spec(a53, "poisson mean_gap_us=10 work_us=1024", false, out, sizeof out), 0);
	assert_string_equal(out, "poisson mean_gap_us=10 work_us=1024");
	assert_int_equal(thoth_pm_live_spec(a53, "poisson mean_gap_us=10", true, out, sizeof out), -1);
	assert_int_equal(thoth_pm_live_spec(a53, "chain depth=3 work_us=2000 deadline_us=10000", true, out, 10), -1);
}

/*
 * The --diag replay's look at the rings (governed.c announce_waiting):
 * request 0 dispatched late, due at 10 ms (its send + 10 ms); at 4 ms
 * requests 1 (sent at 1 ms, 10 ms bound: own 11 ms) and 3 (sent at 3 ms, a
 * 5 ms bound: own 8 ms) have been sent, request 2 (at 2 ms) too, and
 * request 4 (at 5 ms) not yet.  Each is due with the running request or
 * earlier by its own: 8, 10, 10 ms, earliest first.  Without stamps a
 * request is dated from the look (4 ms): 9, 10, 10.  At most MAX.
 */
static void test_the_replays_look_sees_the_requests_sent_each_due_with_the_running_one_or_earlier(void **state)
{
	static const spec_job_t s[] = {
		{ 0, 1 * MS, 10 * MS, 1 }, { 1 * MS, 1 * MS, 10 * MS, 2 }, { 2 * MS, 1 * MS, 10 * MS, 3 },
		{ 3 * MS, 1 * MS, 5 * MS, 4 }, { 5 * MS, 1 * MS, 10 * MS, 5 },
	};
	thoth_pm_job_t jobs[5];
	thoth_pm_trace_t t = trace_of(jobs, s, 5);
	uint64_t due[8];
	assert_int_equal(thoth_pm_live_replay_look(&t, 0, 4 * MS, true, 10 * MS, due, 8), 3);
	assert_int_equal(due[0], 8 * MS);
	assert_int_equal(due[1], 10 * MS);
	assert_int_equal(due[2], 10 * MS);
	assert_int_equal(thoth_pm_live_replay_look(&t, 0, 4 * MS, false, 10 * MS, due, 8), 3);
	assert_int_equal(due[0], 9 * MS);
	assert_int_equal(due[1], 10 * MS);
	assert_int_equal(thoth_pm_live_replay_look(&t, 0, 4 * MS, true, 10 * MS, due, 2), 2);
	/* the one dispatched is not waiting, nor what came before it */
	assert_int_equal(thoth_pm_live_replay_look(&t, 3, 5 * MS, true, 8 * MS, due, 8), 1);
	assert_int_equal(due[0], 8 * MS);
	assert_int_equal(thoth_pm_live_replay_look(&t, 4, 9 * MS, true, 15 * MS, due, 8), 0);
}

static void test_bad_input_is_refused_with_a_reason(void **state)
{
	thoth_pm_job_t jobs[1];
	spec_job_t s[] = { { 0, 1 * MS, 10 * MS, 1 } };
	thoth_pm_trace_t t = trace_of(jobs, s, 1), empty = { 0 };
	thoth_pm_live_feasibility_t f;
	const char *why = NULL;
	const thoth_pm_cpu_model_t *m = thoth_pm_cpu_model_find("hikey-a53");
	assert_int_equal(thoth_pm_live_feasibility(m, &t, 0, &f, &why), -1);
	assert_string_equal(why, "senders: 0");
	why = NULL;
	assert_int_equal(thoth_pm_live_feasibility(m, &empty, 1, &f, &why), -1);
	assert_non_null(why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_requests_that_queue_past_their_deadline_are_infeasible),
		cmocka_unit_test(test_a_senders_next_request_is_sent_when_its_previous_is_answered),
		cmocka_unit_test(test_work_is_burnt_at_the_models_top_capacity),
		cmocka_unit_test(test_only_the_senders_the_bench_runs_count),
		cmocka_unit_test(test_the_chain_cell_is_infeasible_on_juno_a53_unless_scaled_to_it),
		cmocka_unit_test(test_the_scaled_spec_keeps_every_other_key),
		cmocka_unit_test(test_bad_input_is_refused_with_a_reason),
		cmocka_unit_test(test_the_replays_look_sees_the_requests_sent_each_due_with_the_running_one_or_earlier),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
