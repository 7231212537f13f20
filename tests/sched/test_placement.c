/*
 * test_placement.c - the SCHED-4 placement policy on scripted scenarios
 * (kernel/sched/placement.c): the pure decision function is fed synthetic
 * observations of one client/service pair, and the one function that moves
 * a thread is run on a real thread of this process.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "placement.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* A synchronous low-rate pair on two CPUs: 1000 calls/s, every call a
 * doorbell each way, 10% of a CPU together, 50 us per round trip. */
static place_obs_t lazy_pair(void)
{
	return (place_obs_t){
		.client_cpu = 0, .server_cpu = 1,
		.window_ns = SEC, .calls = 1000, .peer_wakeups = 2000,
		.client_busy = 0.05, .server_busy = 0.05,
		.rtt_ns = 50000, .since_last_move_ns = UINT64_MAX,
	};
}

static place_decision_t run(const place_obs_t *o)
{
	place_decision_t d;
	memset(&d, 0x55, sizeof d);
	place_decide(NULL, o, &d);
	print_message("  -> %s: %s\n", d.action == PLACE_COLOCATE ? "colocate" : d.action == PLACE_SPREAD ? "spread" : "stay",
		      d.why);
	assert_non_null(memchr(d.why, 0, sizeof d.why));
	return d;
}

static void test_sleeping_low_rate_pair_is_colocated_on_the_clients_cpu(void **state)
{
	place_obs_t o = lazy_pair();
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_COLOCATE);
	assert_int_equal(d.cpu, 0);          /* the service follows its client */
	assert_non_null(strstr(d.why, "synchronous"));
}

static void test_explicit_user_affinity_is_never_overridden(void **state)
{
	place_obs_t o = lazy_pair();
	o.server_pinned = true;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "user"));
	/* A client pinned by the user is a fixed CPU to follow: only the
	 * service thread moves, the client's affinity is never touched. */
	o = lazy_pair();
	o.client_pinned = true;
	d = run(&o);
	assert_int_equal(d.action, PLACE_COLOCATE);
	assert_int_equal(d.cpu, o.client_cpu);
	/* Also when co-located and slower: a pinned thread is not spread. */
	o = lazy_pair();
	o.colocated = true;
	o.server_pinned = true;
	o.rtt_before_ns = 10000;
	o.rtt_ns = 90000;
	assert_int_equal(run(&o).action, PLACE_STAY);
}

static void test_busy_or_fast_or_spinning_pairs_stay_apart(void **state)
{
	place_obs_t o = lazy_pair();
	o.calls = 100000;                    /* 100k calls/s */
	o.peer_wakeups = 200000;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.client_busy = 0.4;                 /* 80% of a CPU together */
	o.server_busy = 0.4;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.peer_wakeups = 10;                 /* both spin: no doorbells, already fast */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.server_cpu = 0;                    /* already together */
	assert_int_equal(run(&o).action, PLACE_STAY);
}

static void test_colocated_pair_is_spread_again_when_slower(void **state)
{
	place_obs_t o = lazy_pair();
	o.colocated = true;
	o.client_cpu = o.server_cpu = 0;
	o.rtt_before_ns = 50000;
	o.rtt_ns = 3000;                     /* 16x faster together: stay */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o.rtt_ns = 70000;                    /* 1.4x slower than before the move */
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_SPREAD);
	assert_non_null(strstr(d.why, "1.40x"));
	o.rtt_ns = 3000;                     /* fast, but the CPU is full */
	o.client_busy = 0.6;
	o.server_busy = 0.5;
	assert_int_equal(run(&o).action, PLACE_SPREAD);
}

static void test_no_move_within_the_dwell_time(void **state)
{
	place_obs_t o = lazy_pair();
	o.since_last_move_ns = 500 * MS;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "ago"));
	o.since_last_move_ns = 3 * SEC;
	assert_int_equal(run(&o).action, PLACE_COLOCATE);
}

static void test_bad_observations_leave_things_alone(void **state)
{
	place_obs_t o = lazy_pair();
	o.client_cpu = -1;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.window_ns = 0;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.server_busy = NAN;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.client_busy = -3;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.rtt_ns = INFINITY;
	assert_int_equal(run(&o).action, PLACE_STAY);
}

/* place_apply on a real thread: the move happens, is logged with its
 * reason, and the thread then counts as pinned; SPREAD undoes it. */
typedef struct worker {
	pthread_t t;
	pid_t tid;
	volatile int stop, ready;
} worker_t;

static void *work(void *arg)
{
	worker_t *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	w->ready = 1;
	while (!w->stop)
		usleep(1000);
	return NULL;
}

static void collect(void *ctx, const char *line)
{
	snprintf(ctx, 320, "%s", line);
}

static void test_apply_moves_a_real_thread_and_logs_why(void **state)
{
	worker_t w = { 0 };
	assert_int_equal(pthread_create(&w.t, NULL, work, &w), 0);
	while (!w.ready)
		usleep(1000);
	int was_pinned = place_thread_pinned(w.tid);
	assert_true(was_pinned == 0 || was_pinned == 1);
	place_obs_t o = lazy_pair();
	int here = sched_getcpu();           /* a CPU this process may use */
	assert_true(here >= 0);
	o.client_cpu = here;
	o.server_cpu = here + 1;
	place_decision_t d;
	place_decide(NULL, &o, &d);
	assert_int_equal(d.action, PLACE_COLOCATE);
	char log[320] = "";
	assert_int_equal(place_apply(w.tid, &d, collect, log), 0);
	print_message("  log: %s\n", log);
	char want[32];
	snprintf(want, sizeof want, "moved to CPU %d", here);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, "synchronous"));
	cpu_set_t set;
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_true(CPU_ISSET(here, &set) && CPU_COUNT(&set) == 1);
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		assert_int_equal(place_thread_pinned(w.tid), 1);
	place_decision_t back = { .action = PLACE_SPREAD, .cpu = -1, .why = "test" };
	assert_int_equal(place_apply(w.tid, &back, collect, log), 0);
	assert_non_null(strstr(log, "spread"));
	assert_int_equal(place_thread_pinned(w.tid), was_pinned);   /* as it was (a cpuset may restrict us) */
	w.stop = 1;
	pthread_join(w.t, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleeping_low_rate_pair_is_colocated_on_the_clients_cpu),
		cmocka_unit_test(test_explicit_user_affinity_is_never_overridden),
		cmocka_unit_test(test_busy_or_fast_or_spinning_pairs_stay_apart),
		cmocka_unit_test(test_colocated_pair_is_spread_again_when_slower),
		cmocka_unit_test(test_no_move_within_the_dwell_time),
		cmocka_unit_test(test_bad_observations_leave_things_alone),
		cmocka_unit_test(test_apply_moves_a_real_thread_and_logs_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
