/*
 * test_pool.c - SCALE-3's instance pool against a real thothd and real
 * pool_service processes (tests/thothd's harness, a temp runtime dir):
 *   - calls spread over every instance, each answered exactly once;
 *   - kill -9 of an instance under load: it leaves the pool at once
 *     (hang-up, registry push: measured), idempotent calls in flight are
 *     answered by another instance, none is lost or answered twice;
 *   - calls of a method that is not @idempotent fail with PEER_GONE and say so;
 *   - an instance that stops answering is ejected after 5 timeouts, for the
 *     base time, then 2x on the next ejection; at most one of two bad
 *     instances is ejected at once; application errors are not failures;
 *   - load reports reach the pool and make the slow instance cost more;
 *   - round robin and pick-first do what they say; bad configs are refused;
 *   - an instance that accepts a TCP connection and then stays silent,
 *     trickles, answers garbage or closes mid-hello, or a local one that
 *     accepts and never answers the channel handshake, fails by name and
 *     never holds up the calls on a healthy instance (the connection is
 *     opened on the loop, not waited for);
 *   - an instance SIGSTOPped with its channel open (P2C without a call
 *     timeout; round robin with one: ejected) or before its channel was
 *     opened: the others answer 2000 calls meanwhile, none fails, and
 *     after SIGCONT every call ends exactly once (a guard: it passed on
 *     the code before it, disk44);
 *   - an instance registered under a host name that resolves slowly
 *     (this file's getaddrinfo hook: no DNS) does not stall the loop
 *     either: calls complete while the lookup runs; a lookup slower than
 *     the opening deadline, or one that fails, fails by the host's name.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "pooltest.thoth.h"
#include "slowdown.h"
#include "testutil.h"
#include "thoth/error.h"
#include "thoth/loop.h"
#include "thoth/pool.h"
#include "thoth/tcp.h"

#define MAX_IDS 65536

/*
 * getaddrinfo as this process (and so the pool in it) sees it: a name
 * "slowMS.thoth-test" resolves to 127.0.0.1 after MS ms asleep on the
 * calling thread, "nowhere.thoth-test" resolves to nothing; everything
 * else, and every AI_NUMERICHOST lookup, goes to the real one.  RESOLVING
 * counts the slow lookups under way on any thread.
 */
static atomic_int resolving;
static atomic_uint slow_lookups;

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
		(int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
			dlsym(RTLD_NEXT, "getaddrinfo");
	unsigned ms;
	char rest[32];
	bool numeric = hints && (hints->ai_flags & AI_NUMERICHOST);
	if (node && !numeric && sscanf(node, "slow%u%31s", &ms, rest) == 2 && !strcmp(rest, ".thoth-test")) {
		atomic_fetch_add(&resolving, 1);
		atomic_fetch_add(&slow_lookups, 1);
		struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts))
			;
		int g = real("127.0.0.1", service, hints, res);
		atomic_fetch_sub(&resolving, 1);
		return g;
	}
	if (node && !numeric && !strcmp(node, "nowhere.thoth-test"))
		return EAI_NONAME;
	return real(node, service, hints, res);
}

typedef struct fixture {
	harness_t h;
	thoth_loop_t *loop;
	thoth_pool_t *pool;
	thoth_timer_t *tick;
	/* the load driver */
	uint32_t answered[MAX_IDS];     /* completions per id */
	int errs[MAX_IDS];
	uint32_t pid_of[MAX_IDS];
	char why[MAX_IDS][8];           /* first bytes of the failure reason */
	uint32_t next_id, done, target, window, spin_us;
	bool once;                      /* use the non-idempotent method */
	uint32_t peer_gone_not_idempotent;
	/* Each instance's ejections and readmissions, timed in the pool's
	 * on_change as they happen (thoth_clock_now), not when the test's loop
	 * next looks. */
	struct track {
		uint32_t pid, ejections, readmissions;
		bool ejected;
		uint64_t eject_ns[8], readmit_ns[8];
		uint64_t eject_ms[8];   /* the length the pool chose for each ejection */
	} track[8];
	size_t ntrack;
} fixture_t;

static fixture_t *F;

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)timer;
	fixture_t *f = arg;
	thoth_loop_add_timer_in(loop, 2000000, 0, tick, f, &f->tick);
}

/* DEADLINE_MS bounds a hang; it is scaled in sanitizer builds
 * (tests/common/slowdown.h), where 10 s was too short at load 20. */
static bool run_until(fixture_t *f, bool (*cond)(fixture_t *), int deadline_ms)
{
	uint64_t end = harness_now_ms() + (uint64_t)THOTH_TEST_DEADLINE_MS(deadline_ms);
	while (!cond(f)) {
		if (harness_now_ms() >= end)
			return false;
		thoth_loop_run_once(f->loop, true);
	}
	return true;
}

static int setup(void **state)
{
	static fixture_t f;
	memset(&f, 0, sizeof f);
	F = &f;
	if (harness_setup(&f.h) || harness_start_thothd(&f.h, NULL) <= 0 || thoth_loop_new(&f.loop))
		return -1;
	thoth_loop_add_timer_in(f.loop, 2000000, 0, tick, &f, &f.tick);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	thoth_pool_free(f->pool);
	f->pool = NULL;
	if (f->tick)
		thoth_timer_cancel(f->loop, f->tick);
	thoth_loop_free(f->loop);
	harness_teardown(&f->h);
	return 0;
}

static pid_t start_instance(fixture_t *f, const char *extra1, const char *extra2)
{
	const char *argv[] = { POOL_SERVICE_PATH, "--runtime-dir", f->h.dir, extra1, extra2, NULL };
	return harness_spawn(&f->h, "pool_service", argv);
}

static struct track *track_of(fixture_t *f, uint32_t pid)
{
	for (size_t i = 0; i < f->ntrack; i++)
		if (f->track[i].pid == pid)
			return &f->track[i];
	if (f->ntrack == 8)
		return NULL;
	f->track[f->ntrack].pid = pid;
	return &f->track[f->ntrack++];
}

/* Called by the pool in the iteration that ejects or readmits: the
 * moments recorded here are the pool's own. */
static void pool_changed(void *arg)
{
	fixture_t *f = arg;
	if (!f->pool)
		return;         /* still in thoth_pool_new: nothing ejected yet */
	thoth_pool_instance_t in[8];
	size_t n = thoth_pool_instances(f->pool, in, 8);
	uint64_t now = thoth_clock_now();
	for (size_t i = 0; i < n && i < 8; i++) {
		struct track *t = track_of(f, in[i].pid);
		if (!t)
			continue;
		if (in[i].ejections > t->ejections) {
			if (t->ejections < 8) {
				t->eject_ns[t->ejections] = now;
				t->eject_ms[t->ejections] = in[i].eject_ms;
			}
			t->ejections = in[i].ejections;
			t->ejected = true;
		} else if (t->ejected && !in[i].ejected) {
			if (t->readmissions < 8)
				t->readmit_ns[t->readmissions] = now;
			t->readmissions++;
			t->ejected = false;
		}
	}
}

static void new_pool(fixture_t *f, thoth_pool_policy_t policy, uint32_t timeout_ms, uint32_t eject_base_ms)
{
	thoth_pool_config_t cfg = {
		.runtime_dir = f->h.dir, .name = "pooltest", .iface = &thoth_pooltest_Work_info,
		.policy = policy, .call_timeout_ms = timeout_ms, .eject_base_ms = eject_base_ms,
		.seed = 12345, .on_change = pool_changed, .arg = f,
	};
	char why[200];
	int r = thoth_pool_new(f->loop, &cfg, &f->pool, why, sizeof why);
	if (r)
		fail_msg("thoth_pool_new: %s", why);
}

static size_t want_usable;
static bool usable_reached(fixture_t *f) { return thoth_pool_usable(f->pool) == want_usable; }

static void wait_usable(fixture_t *f, size_t n)
{
	want_usable = n;
	if (!run_until(f, usable_reached, 10000)) {
		thoth_pool_stats_t st;
		thoth_pool_stats(f->pool, &st);
		fail_msg("pool has %zu usable instances, want %zu (connect failures %llu, ejections %llu)",
			 thoth_pool_usable(f->pool), n, (unsigned long long)st.connect_failures,
			 (unsigned long long)st.ejections);
	}
}

/* ---- a closed-loop load: WINDOW calls in flight until TARGET answered ---- */

static void send_more(fixture_t *f);

static void done_cb(void *arg, int err, const void *resp, const thoth_pool_result_t *res)
{
	fixture_t *f = F;
	uint32_t id = (uint32_t)(uintptr_t)arg;
	f->answered[id]++;
	f->errs[id] = err;
	snprintf(f->why[id], sizeof f->why[id], "%s", res->why);
	if (!err) {
		const thoth_pooltest_Work_work_resp_t *w = resp;  /* work and once answer alike */
		assert_int_equal(w->id, id);
		f->pid_of[id] = w->pid;
		assert_int_equal(w->pid, res->pid);
	} else if (err == THOTH_E_PEER_GONE && strstr(res->why, "not @idempotent")) {
		f->peer_gone_not_idempotent++;
	}
	f->done++;
	send_more(f);
}

static void send_more(fixture_t *f)
{
	while (f->next_id < f->target && f->next_id - f->done < f->window) {
		uint32_t id = f->next_id;
		int r;
		if (f->once) {
			thoth_pooltest_Work_once_req_t req = { .id = id, .spin_us = f->spin_us };
			r = thoth_pool_start(f->pool, &thoth_pooltest_Work_once_info, &req, done_cb,
					     (void *)(uintptr_t)id);
		} else {
			thoth_pooltest_Work_work_req_t req = { .id = id, .spin_us = f->spin_us };
			r = thoth_pool_start(f->pool, &thoth_pooltest_Work_work_info, &req, done_cb,
					     (void *)(uintptr_t)id);
		}
		if (r)
			return;         /* no instance with room now: a completion sends again */
		f->next_id++;
	}
}

static bool all_done(fixture_t *f) { return f->done >= f->target; }
static uint32_t done_mark;
static bool done_past_mark(fixture_t *f) { return f->done >= done_mark; }

static void load(fixture_t *f, uint32_t target, uint32_t window, uint32_t spin_us)
{
	f->target = target < MAX_IDS ? target : MAX_IDS;
	f->window = window;
	f->spin_us = spin_us;
	send_more(f);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_calls_spread_over_every_instance_and_are_answered_once(void **state)
{
	fixture_t *f = *state;
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = start_instance(f, NULL, NULL);
	new_pool(f, THOTH_POOL_P2C, 0, 0);
	wait_usable(f, 3);
	/* 3000 calls, each instance at least 150 (5%; a fair share is 1000).
	 * With 600 calls and 10% a run lasted less than one instance can wait
	 * for a CPU on a loaded 2-vCPU box (ASan, load 20: 285/18/297), and p2c
	 * rightly avoids an instance while it is away: 3000 at 10% still
	 * failed once there (1325/1393/282).  An instance p2c never or seldom
	 * picks gets well under 150. */
	enum { SPREAD_CALLS = 3000 };
	load(f, SPREAD_CALLS, 8, 20);
	assert_true(run_until(f, all_done, 30000));
	uint32_t per[3] = { 0 };
	for (uint32_t id = 0; id < SPREAD_CALLS; id++) {
		assert_int_equal(f->answered[id], 1);
		assert_int_equal(f->errs[id], 0);
		for (int i = 0; i < 3; i++)
			per[i] += f->pid_of[id] == (uint32_t)pids[i];
	}
	fprintf(stderr, "# p2c over 3 instances: %u %u %u calls\n", per[0], per[1], per[2]);
	for (int i = 0; i < 3; i++)
		assert_true(per[i] >= SPREAD_CALLS / 20);
	assert_int_equal(thoth_pool_in_flight(f->pool), 0);
	/* The blocking form, on the same pool. */
	thoth_pooltest_Work_work_req_t req = { .id = 7, .spin_us = 0 };
	thoth_pooltest_Work_work_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pool_result_t res;
	assert_int_equal(thoth_pool_call(f->pool, &thoth_pooltest_Work_work_info, &req, &resp, &arena,
					 1000, &res), 0);
	assert_int_equal(resp.id, 7);
	assert_int_equal(resp.pid, res.pid);
	/* An application error is an answer: THOTH_E_REMOTE with its code. */
	thoth_pooltest_Work_fail_req_t freq = { .id = 1 };
	thoth_pooltest_Work_fail_resp_t fresp;
	for (int i = 0; i < 12; i++)
		assert_int_equal(thoth_pool_call(f->pool, &thoth_pooltest_Work_fail_info, &freq, &fresp,
						 &arena, 1000, &res), THOTH_E_REMOTE);
	assert_int_equal(res.remote_code, THOTH_POOLTEST_ERR_REFUSED);
	assert_int_equal(thoth_pool_usable(f->pool), 3);    /* 12 errors, nobody ejected */
	/* A method of a newer schema, which these (older) instances lack:
	 * THOTH_E_UNKNOWN_METHOD, so the caller can fall back (it was
	 * THOTH_E_REMOTE, an application error), counted failed, not
	 * completed, and still an answer: nobody ejected. */
	thoth_method_info_t newer = thoth_pooltest_Work_work_info;
	newer.ordinal = 99;
	newer.revision = 0;                     /* no fast paths: the generic encoder */
	thoth_pool_stats_t before, after;
	thoth_pool_stats(f->pool, &before);
	for (int i = 0; i < 6; i++)
		assert_int_equal(thoth_pool_call(f->pool, &newer, &req, &resp, &arena, 1000, &res),
				 THOTH_E_UNKNOWN_METHOD);
	thoth_pool_stats(f->pool, &after);
	assert_int_equal(after.failed - before.failed, 6);
	assert_int_equal(after.completed, before.completed);
	assert_int_equal(thoth_pool_usable(f->pool), 3);
}

static bool usable_dropped(fixture_t *f) { return thoth_pool_usable(f->pool) < want_usable; }

static void test_killed_instance_leaves_at_once_and_no_call_is_lost_or_answered_twice(void **state)
{
	fixture_t *f = *state;
	pid_t pids[4];
	for (int i = 0; i < 4; i++)
		pids[i] = start_instance(f, NULL, NULL);
	new_pool(f, THOTH_POOL_P2C, 0, 0);
	wait_usable(f, 4);
	load(f, 3000, 16, 100);
	done_mark = 500;
	assert_true(run_until(f, done_past_mark, 30000));
	want_usable = 4;
	uint64_t t0 = thoth_clock_now();
	harness_kill(&f->h, pids[1], SIGKILL);        /* returns once it is reaped */
	uint64_t reaped = thoth_clock_now();
	assert_true(run_until(f, usable_dropped, 5000));
	uint64_t seen = thoth_clock_now();
	fprintf(stderr, "# killed instance left the pool %.2f ms after kill(), %.2f ms after it was reaped "
		"(target 10 ms)\n", (double)(seen - t0) / 1e6, (double)(seen - reaped) / 1e6);
	assert_true(seen - reaped < 2000000000ull);     /* generous: a loaded 2-CPU box */
	assert_true(run_until(f, all_done, 60000));
	thoth_pool_stats_t st;
	thoth_pool_stats(f->pool, &st);
	uint32_t on_dead = 0;
	for (uint32_t id = 0; id < 3000; id++) {
		if (f->answered[id] != 1 || f->errs[id] != 0)
			fail_msg("call %u answered %u times, last error %d (%s)", id, f->answered[id],
				 f->errs[id], f->why[id]);
		on_dead += f->pid_of[id] == (uint32_t)pids[1];
	}
	fprintf(stderr, "# 3000 calls, 16 in flight: all answered once; %u by the killed instance before "
		"it died, %llu retried elsewhere\n", on_dead, (unsigned long long)st.retried);
	assert_true(on_dead > 0);
	assert_int_equal(st.failed, 0);
	assert_int_equal(thoth_pool_usable(f->pool), 3);
}

static void test_calls_in_flight_on_a_dead_instance_fail_clearly_unless_idempotent(void **state)
{
	fixture_t *f = *state;
	pid_t a = start_instance(f, NULL, NULL);
	start_instance(f, NULL, NULL);
	new_pool(f, THOTH_POOL_ROUND_ROBIN, 0, 0);
	wait_usable(f, 2);
	f->once = true;
	load(f, 400, 16, 2000);         /* 2 ms each: calls wait in both rings */
	done_mark = 20;
	assert_true(run_until(f, done_past_mark, 30000));
	want_usable = 2;
	harness_kill(&f->h, a, SIGKILL);
	assert_true(run_until(f, usable_dropped, 5000));
	assert_true(run_until(f, all_done, 60000));
	uint32_t failed = 0;
	for (uint32_t id = 0; id < 400; id++) {
		assert_int_equal(f->answered[id], 1);   /* exactly once, failed or not */
		if (f->errs[id]) {
			assert_int_equal(f->errs[id], THOTH_E_PEER_GONE);
			failed++;
		}
	}
	fprintf(stderr, "# %u not-idempotent calls in flight on the killed instance failed with PEER_GONE\n",
		failed);
	assert_true(failed > 0);
	assert_int_equal(failed, f->peer_gone_not_idempotent);    /* and said why */
}

static bool one_ejected(fixture_t *f)
{
	thoth_pool_instance_t in[4];
	size_t n = thoth_pool_instances(f->pool, in, 4);
	for (size_t i = 0; i < n && i < 4; i++)
		if (in[i].ejected)
			return true;
	return false;
}

static uint32_t ejections_seen(fixture_t *f)
{
	thoth_pool_stats_t st;
	thoth_pool_stats(f->pool, &st);
	return (uint32_t)st.ejections;
}

static uint32_t hung_pid;
static bool hung_readmitted_twice(fixture_t *f)
{
	struct track *t = track_of(f, hung_pid);
	return t && t->readmissions >= 2;
}

static void test_hung_instance_is_ejected_then_readmitted_with_backoff(void **state)
{
	fixture_t *f = *state;
	pid_t well = start_instance(f, NULL, NULL);
	hung_pid = (uint32_t)start_instance(f, "--stall-ms", "400");
	new_pool(f, THOTH_POOL_ROUND_ROBIN, 60, 300);
	wait_usable(f, 2);
	load(f, MAX_IDS, 4, 500);
	uint64_t t0 = thoth_clock_now();
	assert_true(run_until(f, one_ejected, 10000));
	assert_int_equal(thoth_pool_usable(f->pool), 1);
	/* Readmitted after the base time, ejected again, for twice as long. */
	if (!run_until(f, hung_readmitted_twice, 10000)) {
		thoth_pool_instance_t in[2];
		thoth_pool_instances(f->pool, in, 2);
		thoth_pool_stats_t st;
		thoth_pool_stats(f->pool, &st);
		fail_msg("hung instance not ejected and readmitted twice: usable %zu started %llu next %u done %u; ejections %llu readmissions %llu; instances: ejected %d/%d "
			 "outstanding %u/%u failures %llu/%llu calls %llu/%llu", thoth_pool_usable(f->pool),
			 (unsigned long long)st.started, f->next_id, f->done, (unsigned long long)st.ejections,
			 (unsigned long long)st.readmissions, in[0].ejected, in[1].ejected, in[0].outstanding,
			 in[1].outstanding, (unsigned long long)in[0].failures, (unsigned long long)in[1].failures,
			 (unsigned long long)in[0].calls, (unsigned long long)in[1].calls);
	}
	/* The durations from the pool's own moments (pool_changed), for the
	 * hung instance.  The moments at which this loop saw them come late by
	 * up to an iteration of a loop serving the load, which under ASan at
	 * load 20 made 600 ms read as 568 ms; and under such load the healthy
	 * instance may miss 5 deadlines of 60 ms too and take its turn, which
	 * a count of the pool's ejections would mix in.  The timers never fire
	 * early (thoth_loop_add_timer), so the lower bounds are exact; but they
	 * may fire late by however long this process waits for a CPU (under
	 * ASan at load 12-18 the first 300 ms read as more than 400 ms), so
	 * the doubling is checked on the lengths the pool chose (eject_ms),
	 * not on a ratio of wall-clock durations. */
	struct track *h = track_of(f, hung_pid), *w = track_of(f, (uint32_t)well);
	assert_non_null(h);
	fprintf(stderr, "# hung instance ejected %.0f ms after load began (5 timeouts of 60 ms); "
		"the healthy one %u times\n", (double)(h->eject_ns[0] - t0) / 1e6, w ? w->ejections : 0);
	double first = (double)(h->readmit_ns[0] - h->eject_ns[0]) / 1e6;
	double second = (double)(h->readmit_ns[1] - h->eject_ns[1]) / 1e6;
	fprintf(stderr, "# ejected for %.0f ms, then %.0f ms (the pool chose %llu ms, then %llu ms: base 300 ms, "
		"doubling)\n", first, second, (unsigned long long)h->eject_ms[0],
		(unsigned long long)h->eject_ms[1]);
	assert_true(h->ejections >= 2 && h->eject_ns[1] > h->readmit_ns[0]);
	assert_int_equal(h->eject_ms[0], 300);
	assert_int_equal(h->eject_ms[1], 2 * h->eject_ms[0]);
	assert_true(first >= 290 && second >= 590);
	/* Every call ended exactly once: timed-out ones with TIMEDOUT. */
	f->target = f->next_id;
	assert_true(run_until(f, all_done, 10000));
	uint32_t timeouts = 0;
	for (uint32_t id = 0; id < f->next_id; id++) {
		assert_int_equal(f->answered[id], 1);
		timeouts += f->errs[id] == THOTH_E_TIMEDOUT;
	}
	assert_true(timeouts >= 10);
}

static void test_at_most_one_of_two_failing_instances_is_ejected(void **state)
{
	fixture_t *f = *state;
	start_instance(f, "--stall-ms", "300");
	start_instance(f, "--stall-ms", "300");
	new_pool(f, THOTH_POOL_ROUND_ROBIN, 40, 5000);
	wait_usable(f, 2);
	load(f, MAX_IDS, 4, 0);
	assert_true(run_until(f, one_ejected, 10000));
	/* Keep failing on the other one: 10% of 2 rounds to the floor of one. */
	uint32_t mark = f->done + 20;
	done_mark = mark;
	assert_true(run_until(f, done_past_mark, 20000));
	assert_int_equal(thoth_pool_usable(f->pool), 1);
	assert_int_equal(ejections_seen(f), 1);
	f->target = f->next_id;
	assert_true(run_until(f, all_done, 20000));
}

static bool costs_apart(fixture_t *f)
{
	thoth_pool_instance_t in[2];
	if (thoth_pool_instances(f->pool, in, 2) != 2)
		return false;
	double hi = in[0].cost > in[1].cost ? in[0].cost : in[1].cost;
	double lo = in[0].cost > in[1].cost ? in[1].cost : in[0].cost;
	return lo > 0 && hi / lo > 3.0;
}

static void test_load_reports_make_the_slow_instance_cost_more(void **state)
{
	fixture_t *f = *state;
	start_instance(f, "--report-ms", "50");
	pid_t slow;
	{
		const char *argv[] = { POOL_SERVICE_PATH, "--runtime-dir", f->h.dir, "--report-ms", "50",
				       "--slow", "10", NULL };
		slow = harness_spawn(&f->h, "pool_service", argv);
	}
	new_pool(f, THOTH_POOL_ROUND_ROBIN, 0, 0);
	wait_usable(f, 2);
	load(f, MAX_IDS, 4, 200);
	assert_true(run_until(f, costs_apart, 10000));
	thoth_pool_instance_t in[2];
	assert_int_equal(thoth_pool_instances(f->pool, in, 2), 2);
	int s = in[0].pid == (uint32_t)slow ? 0 : 1;
	fprintf(stderr, "# reported: slow %u permille %u qps cost %.2f; fast %u permille %u qps cost %.2f\n",
		in[s].utilization_permille, in[s].qps, in[s].cost, in[1 - s].utilization_permille,
		in[1 - s].qps, in[1 - s].cost);
	assert_true(in[s].cost > in[1 - s].cost);
	f->target = f->next_id;
	assert_true(run_until(f, all_done, 20000));
}

static void test_round_robin_alternates_and_pick_first_sticks(void **state)
{
	fixture_t *f = *state;
	start_instance(f, NULL, NULL);
	start_instance(f, NULL, NULL);
	for (int pol = THOTH_POOL_ROUND_ROBIN; pol <= THOTH_POOL_PICK_FIRST; pol++) {
		thoth_pool_free(f->pool);
		f->pool = NULL;
		new_pool(f, (thoth_pool_policy_t)pol, 0, 0);
		wait_usable(f, 2);
		uint32_t last = 0, changes = 0;
		for (int i = 0; i < 20; i++) {
			thoth_pooltest_Work_work_req_t req = { .id = (uint64_t)i };
			thoth_pooltest_Work_work_resp_t resp;
			uint64_t scratch[64];
			thoth_arena_t arena;
			thoth_arena_init(&arena, scratch, sizeof scratch);
			assert_int_equal(thoth_pool_call(f->pool, &thoth_pooltest_Work_work_info, &req, &resp,
							 &arena, 1000, NULL), 0);
			changes += i > 0 && resp.pid != last;
			last = resp.pid;
		}
		assert_int_equal(changes, pol == THOTH_POOL_ROUND_ROBIN ? 19 : 0);
	}
}

/* ---- SCALE-4: keyed calls ---- */

typedef struct keyed {
	uint32_t pid[256];
	int err[256];
	uint32_t done;
} keyed_t;

static keyed_t K;

static void key_done(void *arg, int err, const void *resp, const thoth_pool_result_t *res)
{
	(void)res;
	uint32_t k = (uint32_t)(uintptr_t)arg;
	K.err[k] = err;
	K.pid[k] = err ? 0 : ((const thoth_pooltest_Shard_get_resp_t *)resp)->pid;
	K.done++;
}

static bool keys_done(fixture_t *f) { (void)f; return K.done == 256; }

/* Fewer calls in flight in the whole pool than one instance may hold
 * (max_in_flight, 64 by default): a replica at its limit is passed over
 * for its shard's other replica (thoth_shard_pick_replica), so with the
 * services answering slowly (ctest -j4 at load 3) keys of shard 1 moved
 * between its replicas and the case failed on placement it does not
 * judge.  With the window no instance is ever full: where a key goes is
 * the shard table's and the replica hash's choice alone. */
enum { KEYED_WINDOW = 32 };

static void route_all(fixture_t *f)
{
	memset(&K, 0, sizeof K);
	for (uint32_t k = 0; k < 256; k++) {
		thoth_pooltest_Shard_get_req_t req = { .key = k };
		while (thoth_pool_in_flight(f->pool) >= KEYED_WINDOW)
			thoth_loop_run_once(f->loop, true);
		assert_int_equal(thoth_pool_start_key(f->pool, &thoth_pooltest_Shard_get_info, &req,
						      thoth_shard_key(&k, sizeof k), key_done,
						      (void *)(uintptr_t)k), 0);
	}
	assert_true(run_until(f, keys_done, 10000));
}

static void test_keyed_calls_stick_to_their_shard_and_only_a_lost_shard_moves(void **state)
{
	fixture_t *f = *state;
	pid_t s[4];
	const char *ids[4] = { "0", "1", "2", "1" };     /* shard 1 has two replicas */
	for (int i = 0; i < 4; i++) {
		const char *argv[] = { POOL_SERVICE_PATH, "--runtime-dir", f->h.dir, "--shard-id", ids[i], NULL };
		s[i] = harness_spawn(&f->h, "pool_service", argv);
	}
	thoth_pool_config_t cfg = { .runtime_dir = f->h.dir, .name = "pooltest-shard",
				    .iface = &thoth_pooltest_Shard_info, .seed = 1 };
	char why[200];
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &f->pool, why, sizeof why), 0);
	wait_usable(f, 4);
	/* Not sharded: refused. */
	thoth_pooltest_Shard_get_req_t req = { 0 };
	route_all(f);
	uint32_t first[256];
	memcpy(first, K.pid, sizeof first);
	route_all(f);                                   /* the same keys, the same instances */
	for (int k = 0; k < 256; k++) {
		assert_int_equal(K.err[k], 0);
		assert_int_equal(K.pid[k], first[k]);
	}
	uint32_t per[4] = { 0 };
	for (int k = 0; k < 256; k++)
		for (int i = 0; i < 4; i++)
			per[i] += first[k] == (uint32_t)s[i];
	fprintf(stderr, "# keys per instance: shard0 %u, shard1 %u+%u (replicas), shard2 %u\n", per[0], per[1],
		per[3], per[2]);
	assert_true(per[0] > 30 && per[2] > 30 && per[1] + per[3] > 30);
	/* Replicas: a key of shard 1 goes to one of its two replicas, the
	 * same one every time, and both get some. */
	assert_true(per[1] > 0 && per[3] > 0);
	/* Shard 2 dies: only its keys move. */
	want_usable = 4;
	harness_kill(&f->h, s[2], SIGKILL);
	assert_true(run_until(f, usable_dropped, 5000));
	route_all(f);
	uint32_t strays = 0;
	for (int k = 0; k < 256; k++) {
		assert_int_equal(K.err[k], 0);
		if (first[k] == (uint32_t)s[2])
			assert_int_not_equal(K.pid[k], first[k]);
		else
			strays += K.pid[k] != first[k];
	}
	/* Maglev keeps the other shards' keys in place, up to its small
	 * extra disruption (test_shard: < 1% of keys). */
	fprintf(stderr, "# shard 2 lost: its %u keys moved, %u of the others did\n", per[2], strays);
	assert_true(strays <= 256 / 50);
	(void)req;
}

static void test_bad_pool_configs_are_refused(void **state)
{
	fixture_t *f = *state;
	thoth_pool_t *p = (thoth_pool_t *)f;
	char why[200];
	thoth_pool_config_t cfg = { .name = "x", .iface = &thoth_pooltest_Work_info };
	assert_int_equal(thoth_pool_new(NULL, &cfg, &p, why, sizeof why), THOTH_E_INVAL);
	assert_null(p);
	cfg.iface = NULL;
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &p, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "interface"));
	cfg.iface = &thoth_pooltest_Work_info;
	cfg.max_ejected_percent = 101;
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &p, why, sizeof why), THOTH_E_INVAL);
	cfg.max_ejected_percent = 0;
	/* An interface info whose shard_algo is no algorithm (hand-built or
	 * edited): refused by name, not failed at every keyed call. */
	thoth_interface_info_t bad_algo = thoth_pooltest_Shard_info;
	bad_algo.shard_algo = 9;
	cfg.iface = &bad_algo;
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &p, why, sizeof why), THOTH_E_INVAL);
	assert_null(p);
	if (!strstr(why, "shard_algo 9"))
		fail_msg("a bad shard_algo refused with: %s", why);
	cfg.iface = &thoth_pooltest_Work_info;
	cfg.min_version = "banana";
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &p, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "banana"));
	/* No instance: NOT_FOUND at once; a method of another interface: INVAL. */
	cfg.min_version = NULL;
	cfg.runtime_dir = f->h.dir;
	assert_int_equal(thoth_pool_new(f->loop, &cfg, &p, why, sizeof why), 0);
	thoth_pooltest_Work_work_req_t req = { 0 };
	assert_int_equal(thoth_pool_start(p, &thoth_pooltest_Work_work_info, &req, done_cb, NULL),
			 THOTH_E_NOT_FOUND);
	thoth_pooltest_Shard_get_req_t g = { 0 };
	assert_int_equal(thoth_pool_start(p, &thoth_pooltest_Shard_get_info, &g, done_cb, NULL),
			 THOTH_E_INVAL);
	/* Work is not @sharded: no keyed calls. */
	assert_int_equal(thoth_pool_start_key(p, &thoth_pooltest_Work_work_info, &req, 1, done_cb, NULL),
			 THOTH_E_INVAL);
	/* thoth_pool_instance_t keeps the size it had at stop 36 (LP64): callers
	 * pass arrays of it, and a larger one would be written past an older
	 * program's array; the connection state is thoth_pool_instance_state. */
	if (sizeof(void *) == 8)
		assert_int_equal(sizeof(thoth_pool_instance_t), 184);
	/* An instance's connection state: none past the pool's instances. */
	bool connecting = true;
	assert_int_equal(thoth_pool_instance_state(NULL, 0, &connecting, why, sizeof why), THOTH_E_INVAL);
	assert_int_equal(thoth_pool_instance_state(p, thoth_pool_instances(p, NULL, 0), &connecting, why,
						   sizeof why), THOTH_E_INVAL);
	thoth_pool_free(p);
}

/* ---- an instance that accepts and misbehaves, beside a healthy one ---- */

/* A closed loop of one call at a time on the pool, each call's latency
 * measured from its start to its completion (on the loop). */
static struct {
	uint32_t calls, failed;
	uint32_t while_opening;         /* calls completed while the hostile one was being opened */
	uint32_t while_resolving;       /* calls completed while a slow name was being looked up */
	uint64_t started_ns, worst_ns;
	bool stop, in_flight;
} S;

static void stall_send(fixture_t *f);

static bool is_hostile(const char *addr) { return !strncmp(addr, "tcp:", 4) || strstr(addr, "-hostile-"); }

/* Whether the hostile instance's connection is being opened now. */
static bool hostile_opening(fixture_t *f)
{
	thoth_pool_instance_t in[8];
	size_t n = thoth_pool_instances(f->pool, in, 8);
	for (size_t i = 0; i < n && i < 8; i++) {
		bool connecting = false;
		if (is_hostile(in[i].addr) && thoth_pool_instance_state(f->pool, i, &connecting, NULL, 0) == 0 &&
		    connecting)
			return true;
	}
	return false;
}

static void stall_done(void *arg, int err, const void *resp, const thoth_pool_result_t *res)
{
	(void)arg;
	(void)resp;
	(void)res;
	uint64_t lat = thoth_clock_now() - S.started_ns;
	S.in_flight = false;
	S.calls++;
	S.failed += err != 0;
	S.while_opening += hostile_opening(F);
	S.while_resolving += atomic_load(&resolving) > 0;
	if (lat > S.worst_ns)
		S.worst_ns = lat;
	if (!S.stop)
		stall_send(F);
}

static void stall_send(fixture_t *f)
{
	thoth_pooltest_Work_work_req_t req = { .id = S.calls };
	S.started_ns = thoth_clock_now();
	if (thoth_pool_start(f->pool, &thoth_pooltest_Work_work_info, &req, stall_done, NULL) == 0)
		S.in_flight = true;
}

static thoth_pool_instance_t hostile;
static char hostile_error[512];
static bool hostile_failed(fixture_t *f)
{
	thoth_pool_instance_t in[8];
	size_t n = thoth_pool_instances(f->pool, in, 8);
	for (size_t i = 0; i < n && i < 8; i++)
		if (is_hostile(in[i].addr) && thoth_pool_instance_state(f->pool, i, NULL, hostile_error, sizeof hostile_error) == 0 &&
		    hostile_error[0]) {
			hostile = in[i];
			return true;
		}
	return false;
}

static bool stall_idle(fixture_t *f) { (void)f; return !S.in_flight; }

/*
 * A healthy instance (a channel) serves a closed loop of calls; then an
 * instance registers a TCP address where it accepts and behaves as MODE
 * says.  Its connection attempt must end with a reason naming its
 * address and containing EXPECT, and calls on the healthy instance must
 * complete while it is being opened: the old pool opened the connection
 * on its loop thread and blocked there up to 500 ms (a silent or
 * trickling peer held every call that long), so no call could complete
 * while an attempt was under way.  Counted, not timed (the latencies are
 * printed only; garbage and close end the attempt too soon to count).
 */
static void hostile_beside_healthy(fixture_t *f, const char *mode, const char *expect)
{
	/* Those whose attempt lasts (silent: 500 ms; trickle: a byte every
	 * 30 ms): garbage and close end it within a call or two. */
	bool lasts = !strcmp(mode, "silent") || !strcmp(mode, "unix-silent") || !strcmp(mode, "trickle");
	/* The cluster token a "tcp:" instance is opened with (0600). */
	char token[4200];
	snprintf(token, sizeof token, "%s/cluster.token", f->h.dir);
	FILE *t = fopen(token, "w");
	assert_non_null(t);
	fputs("0123456789abcdef0123456789abcdef\n", t);
	fclose(t);
	assert_int_equal(chmod(token, 0600), 0);
	start_instance(f, NULL, NULL);
	new_pool(f, THOTH_POOL_P2C, 5000, 0);
	wait_usable(f, 1);
	memset(&S, 0, sizeof S);
	stall_send(f);
	for (int i = 0; i < 200 && S.calls < 50; i++)      /* warm: its normal latency */
		thoth_loop_run_once(f->loop, true);
	uint64_t normal = S.worst_ns;
	S.worst_ns = 0;
	S.while_opening = 0;
	uint32_t before = S.calls;
	uint64_t t0 = thoth_clock_now();
	assert_true(start_instance(f, "--hostile", mode) > 0);
	if (!run_until(f, hostile_failed, 10000)) {
		thoth_pool_instance_t in[8];
		size_t n = thoth_pool_instances(f->pool, in, 8);
		for (size_t i = 0; i < n && i < 8; i++) {
			bool connecting = false;
			char why[512] = "";
			thoth_pool_instance_state(f->pool, i, &connecting, why, sizeof why);
			fprintf(stderr, "# instance %s: connecting %d, last error \"%s\"\n", in[i].addr,
				connecting, why);
		}
		fail_msg("the %s instance's connection attempt did not end within 10 s", mode);
	}
	uint64_t ended = thoth_clock_now();
	S.stop = true;
	assert_true(run_until(f, stall_idle, 5000));
	fprintf(stderr, "# %s instance: its attempt ended %.1f ms after it was started (registration "
		"included): \"%s\"; meanwhile %u calls on the healthy instance, the slowest %.2f ms "
		"(%.2f ms before it came); %u of them completed while it was being opened\n", mode,
		(double)(ended - t0) / 1e6, hostile_error, S.calls - before, (double)S.worst_ns / 1e6,
		(double)normal / 1e6, S.while_opening);
	assert_int_equal(S.failed, 0);
	assert_non_null(strstr(hostile_error, hostile.addr));
	/* EXPECT: one message, or alternatives split by '|'. */
	bool matched = false;
	for (const char *e = expect; !matched && *e;) {
		size_t n = strcspn(e, "|");
		char one[200];
		snprintf(one, sizeof one, "%.*s", (int)n, e);
		matched = strstr(hostile_error, one) != NULL;
		e += n + (e[n] == '|');
	}
	if (!matched)
		fail_msg("the %s instance failed with \"%s\", not \"%s\"", mode, hostile_error, expect);
	/* The old pool held the loop for the whole attempt: none could. */
	if (lasts)
		assert_true(S.while_opening > 0);
	assert_int_equal(thoth_pool_usable(f->pool), 1);
}

static bool hostile_connecting(fixture_t *f)
{
	thoth_pool_instance_t in[8];
	size_t n = thoth_pool_instances(f->pool, in, 8);
	for (size_t i = 0; i < n && i < 8; i++) {
		bool connecting = false;
		if (!strncmp(in[i].addr, "tcp:", 4) &&
		    thoth_pool_instance_state(f->pool, i, &connecting, NULL, 0) == 0 && connecting)
			return true;
	}
	return false;
}

/* A pool closed while an instance's connection is being opened lets go of
 * the attempt (its fd, its loop source, its deadline) exactly once: the
 * source was removed twice before (ASan: a use of a freed loop slot). */
static void test_a_pool_freed_while_an_instance_is_opening_lets_go_of_it(void **state)
{
	fixture_t *f = *state;
	char token[4200];
	snprintf(token, sizeof token, "%s/cluster.token", f->h.dir);
	FILE *t = fopen(token, "w");
	assert_non_null(t);
	fputs("0123456789abcdef0123456789abcdef\n", t);
	fclose(t);
	assert_int_equal(chmod(token, 0600), 0);
	new_pool(f, THOTH_POOL_P2C, 5000, 0);
	assert_true(start_instance(f, "--hostile", "silent") > 0);
	assert_true(run_until(f, hostile_connecting, 10000));
	thoth_pool_free(f->pool);
	f->pool = NULL;
	/* The loop runs on without the pool's source or timer. */
	for (int i = 0; i < 20; i++)
		thoth_loop_run_once(f->loop, false);
}

/* ---- an instance stopped (SIGSTOP) beside healthy ones ------------------- */

/* PID is stopped (state T in /proc/PID/stat): kill(SIGSTOP) returns before
 * the signal is taken. */
static bool is_stopped(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *st = fopen(path, "r");
	if (!st)
		return false;
	size_t n = fread(buf, 1, sizeof buf - 1, st);
	fclose(st);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && (p[2] == 'T' || p[2] == 't');
}

static void stop_and_wait(pid_t pid)
{
	assert_int_equal(kill(pid, SIGSTOP), 0);
	for (int i = 0; i < 5000 && !is_stopped(pid); i++)
		usleep(1000);
	assert_true(is_stopped(pid));
}

static uint32_t stopped_pid;

/* Calls since MARK answered by an instance other than the stopped one. */
static uint32_t answered_by_others_since(fixture_t *f, uint32_t mark)
{
	uint32_t n = 0;
	for (uint32_t id = mark; id < f->next_id; id++)
		n += f->answered[id] && !f->errs[id] && f->pid_of[id] != stopped_pid;
	return n;
}

static bool stopped_one_served(fixture_t *f)
{
	for (uint32_t id = 0; id < f->next_id; id++)
		if (f->answered[id] && f->pid_of[id] == stopped_pid)
			return true;
	return false;
}

static uint32_t others_mark, others_want;
static bool others_answered(fixture_t *f) { return answered_by_others_since(f, others_mark) >= others_want; }

/*
 * Three instances under a closed loop of WINDOW calls; one is SIGSTOPped
 * with its channel open (the drill's `kill -STOP`: it stays registered,
 * its socket open, thothd cannot tell it from a busy one).  The other two
 * must answer 2000 more calls while it stays stopped: the pool never
 * waits for it on its loop, and only the calls it had been sent (at most
 * WINDOW in flight on it) wait for it.  With CALL_TIMEOUT_MS those fail
 * with TIMEDOUT and it is ejected; without (the default) they wait until
 * SIGCONT, when each is answered exactly once like every other call.
 * Counted, not timed.
 */
static void stopped_beside_healthy(fixture_t *f, thoth_pool_policy_t policy, uint32_t call_timeout_ms)
{
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = start_instance(f, NULL, NULL);
	new_pool(f, policy, call_timeout_ms, 60000);
	wait_usable(f, 3);
	const uint32_t window = 8;
	load(f, MAX_IDS, window, 0);
	done_mark = 300;
	assert_true(run_until(f, done_past_mark, 20000));
	stopped_pid = (uint32_t)pids[0];
	/* it served before it was stopped: power of two choices may pass it
	 * over in the first 300 calls (a loaded start), so wait for its first */
	assert_true(run_until(f, stopped_one_served, 20000));
	stop_and_wait(pids[0]);
	others_mark = f->next_id;
	others_want = 2000;
	if (!run_until(f, others_answered, 30000)) {
		thoth_pool_stats_t st;
		thoth_pool_stats(f->pool, &st);
		fail_msg("with one instance stopped the other two answered %u calls, not %u (sent %u, done %u, "
			 "usable %zu, ejections %llu)", answered_by_others_since(f, others_mark), others_want,
			 f->next_id - others_mark, f->done, thoth_pool_usable(f->pool),
			 (unsigned long long)st.ejections);
	}
	assert_true(is_stopped(pids[0]));
	/* Which calls waited for the stopped one: those in flight on it. */
	uint32_t waiting = 0, timedout = 0, other_err = 0;
	thoth_pool_instance_t in[3];
	size_t n = thoth_pool_instances(f->pool, in, 3);
	for (size_t i = 0; i < n && i < 3; i++)
		if (in[i].pid == stopped_pid)
			waiting = in[i].outstanding;
	for (uint32_t id = 0; id < f->next_id; id++) {
		if (f->errs[id] == THOTH_E_TIMEDOUT)
			timedout++;
		else if (f->errs[id])
			other_err++;
	}
	fprintf(stderr, "# %s, call timeout %u ms: with pid %d stopped the others answered %u calls; %u calls "
		"were outstanding on it, %u had timed out, %u failed otherwise; usable %zu\n",
		policy == THOTH_POOL_P2C ? "p2c" : "round robin", call_timeout_ms, (int)pids[0],
		answered_by_others_since(f, others_mark), waiting, timedout, other_err, thoth_pool_usable(f->pool));
	assert_int_equal(other_err, 0);
	/* With a timeout, it cost one window of calls before it was ejected
	 * (5 failures in a row), not a share of every call since: the window
	 * stuck on it, and at most one call more for each of the 4 slots its
	 * first timeouts freed before the 5th ejected it (those time out a
	 * call timeout later: counted here when the 2000 calls took longer,
	 * 9 and 11 seen, which "<= window" failed). */
	assert_true(timedout <= window + 5 - 1);
	if (call_timeout_ms) {
		assert_true(timedout > 0 || waiting > 0);
		assert_int_equal(thoth_pool_usable(f->pool), 2);   /* ejected */
	}
	/* SIGCONT: every call ends exactly once, the stuck ones answered. */
	f->target = f->next_id;
	assert_int_equal(kill(pids[0], SIGCONT), 0);
	assert_true(run_until(f, all_done, 20000));
	for (uint32_t id = 0; id < f->next_id; id++)
		assert_int_equal(f->answered[id], 1);
}

static void test_a_stopped_instance_does_not_hold_up_calls_to_the_others(void **state)
{
	stopped_beside_healthy(*state, THOTH_POOL_P2C, 0);
}

/* 1 s: a healthy instance's call timed out too on a loaded machine is
 * counted with the stopped one's (200 ms left little room under ASan). */
static void test_a_stopped_instance_is_ejected_and_does_not_hold_up_round_robin(void **state)
{
	stopped_beside_healthy(*state, THOTH_POOL_ROUND_ROBIN, 1000);
}

static pid_t stopped_fresh;
static bool stopped_fresh_failed(fixture_t *f)
{
	thoth_pool_instance_t in[8];
	size_t n = thoth_pool_instances(f->pool, in, 8);
	for (size_t i = 0; i < n && i < 8; i++)
		if (in[i].pid == (uint32_t)stopped_fresh &&
		    thoth_pool_instance_state(f->pool, i, NULL, hostile_error, sizeof hostile_error) == 0 &&
		    hostile_error[0])
			return true;
	return false;
}

/*
 * An instance SIGSTOPped before the pool opened its channel (registered,
 * listening, then stopped): its handshake is never answered.  The pool
 * opens it beside a healthy instance whose calls go on meanwhile; the
 * opening fails by name; after SIGCONT it is opened again and serves.
 */
static void test_an_instance_stopped_before_its_channel_opened_does_not_hold_up_the_others(void **state)
{
	fixture_t *f = *state;
	pid_t well = start_instance(f, NULL, NULL);
	stopped_fresh = start_instance(f, NULL, NULL);
	/* Both registered (a first pool sees both), then one stopped and a
	 * new pool made: its channel to the stopped one is opened now. */
	new_pool(f, THOTH_POOL_P2C, 5000, 0);
	wait_usable(f, 2);
	thoth_pool_free(f->pool);
	f->pool = NULL;
	stop_and_wait(stopped_fresh);
	new_pool(f, THOTH_POOL_P2C, 5000, 0);
	memset(&S, 0, sizeof S);
	wait_usable(f, 1);
	stall_send(f);
	hostile_error[0] = '\0';
	if (!run_until(f, stopped_fresh_failed, 10000))
		fail_msg("the opening of the stopped instance (pid %d) did not end within 10 s; %u calls meanwhile",
			 (int)stopped_fresh, S.calls);
	uint32_t during = S.calls;
	fprintf(stderr, "# the stopped instance's opening: \"%s\"; %u calls answered by pid %d meanwhile\n",
		hostile_error, during, (int)well);
	assert_int_equal(S.failed, 0);
	assert_non_null(strstr(hostile_error, "did not answer the channel handshake"));
	assert_int_equal(thoth_pool_usable(f->pool), 1);
	/* Calls go on (counted): 200 more, none failed. */
	uint32_t mark = S.calls;
	for (int i = 0; i < 100000 && S.calls < mark + 200; i++)
		thoth_loop_run_once(f->loop, true);
	assert_true(S.calls >= mark + 200);
	assert_int_equal(S.failed, 0);
	assert_true(is_stopped(stopped_fresh));
	/* SIGCONT: opened again, and serves. */
	assert_int_equal(kill(stopped_fresh, SIGCONT), 0);
	S.stop = true;
	assert_true(run_until(f, stall_idle, 5000));
	wait_usable(f, 2);
}

static void test_a_silent_instance_does_not_stall_calls_to_a_healthy_one(void **state)
{
	hostile_beside_healthy(*state, "silent", "did not answer the hello within 500 ms");
}

static void test_a_silent_local_instance_does_not_stall_calls_to_a_healthy_one(void **state)
{
	hostile_beside_healthy(*state, "unix-silent", "did not answer the channel handshake within 500 ms");
}

/* A local instance refusing with THOTH_E_AGAIN: the refusal, named at
 * once (the opening's step returned it as "no reply yet", so the pool
 * waited out its 500 ms and then said the instance never answered). */
static void test_a_local_instance_refusing_with_again_fails_by_name(void **state)
{
	hostile_beside_healthy(*state, "unix-again", "no refusal code: hostile instance: come back later");
}

/* A TCP instance refusing the hello with THOTH_E_AGAIN: the same rule
 * (thoth__tcp_open_step returned it unchanged, so the pool waited out its
 * 500 ms and then said the instance did not answer the hello). */
static void test_an_instance_refusing_the_hello_with_again_fails_by_name(void **state)
{
	hostile_beside_healthy(*state, "again", "no refusal code: hostile instance: come back later");
}

/* A local instance whose reply carries a pipe as the channel memory. */
static void test_a_local_instance_sending_a_pipe_fails_by_name(void **state)
{
	hostile_beside_healthy(*state, "unix-pipe", "not a sealed memfd");
}

static void test_a_trickling_instance_does_not_stall_calls_to_a_healthy_one(void **state)
{
	hostile_beside_healthy(*state, "trickle", "bytes of an answer came");
}

static void test_an_instance_answering_the_hello_with_garbage_fails_by_name(void **state)
{
	hostile_beside_healthy(*state, "garbage", "answered the hello with nonsense");
}

static void test_an_instance_closing_mid_hello_fails_by_name(void **state)
{
	hostile_beside_healthy(*state, "close", "closed the connection");
}

/*
 * The hostile instance registers a host name, not a numeric address.  The
 * old pool resolved it with getaddrinfo on its loop thread: a slow DNS
 * server held every call of the pool for the whole lookup, so no call
 * completed while one was under way (counted by the hook, not timed).
 */
static void test_a_host_name_resolving_slowly_does_not_stall_calls_to_a_healthy_one(void **state)
{
	atomic_store(&slow_lookups, 0);
	setenv("POOL_HOSTILE_HOST", "slow300.thoth-test", 1);
	/* 300 ms of lookup, then a silent peer: it fails at the hello, or, on
	 * a loaded machine where the lookup's thread ran late, still looking
	 * the name up at the 500 ms deadline: either shows the loop went on. */
	hostile_beside_healthy(*state, "silent",
			       "did not answer the hello within 500 ms|"
			       "cannot resolve host slow300.thoth-test within 500 ms");
	unsetenv("POOL_HOSTILE_HOST");
	fprintf(stderr, "# %u calls completed during the slow lookups (%u of them)\n", S.while_resolving,
		atomic_load(&slow_lookups));
	assert_true(atomic_load(&slow_lookups) >= 1);
	assert_true(S.while_resolving > 0);
}

/* A lookup slower than the opening's deadline fails with it, by name. */
static void test_a_host_name_resolving_past_the_deadline_fails_naming_the_host(void **state)
{
	setenv("POOL_HOSTILE_HOST", "slow3000.thoth-test", 1);
	hostile_beside_healthy(*state, "silent", "cannot resolve host slow3000.thoth-test within 500 ms");
	unsetenv("POOL_HOSTILE_HOST");
}

/* A name that resolves to nothing fails at once, naming the host. */
static void test_a_host_name_that_does_not_resolve_fails_naming_the_host(void **state)
{
	setenv("POOL_HOSTILE_HOST", "nowhere.thoth-test", 1);
	hostile_beside_healthy(*state, "garbage", "cannot resolve host nowhere.thoth-test: ");
	unsetenv("POOL_HOSTILE_HOST");
}

/*
 * A pool's loop never blocks on a name: with every host name lookup slot
 * of the process held (32 lookups abandoned at a 20 ms deadline, each
 * asleep for 6 s), an instance registered under a host name fails its
 * opening at once with THOTH_E_LIMIT, its reason naming the limit (not a
 * lookup on the loop thread, not THOTH_E_BUSY), while calls on the
 * healthy instance go on; the pool retries it with its backoff.
 */
static void test_a_pool_past_the_lookup_limit_fails_the_opening_naming_the_limit(void **state)
{
	for (int i = 0; i < 1000 && atomic_load(&resolving) > 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&resolving), 0);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	thoth_tcp_config_t tc = { .token = (const uint8_t *)"0123456789abcdef0123", .token_len = 20 };
	char addr[80], why[400];
	thoth_tcp_conn_t *c = NULL;
	snprintf(addr, sizeof addr, "tcp:slow6000.thoth-test:%u", (unsigned)ntohs(sa.sin_port));
	for (unsigned i = 0; i < 32; i++)
		assert_int_equal(thoth_tcp_connect_with(addr, &tc, 20, &c, why, sizeof why), THOTH_E_TIMEDOUT);
	setenv("POOL_HOSTILE_HOST", "slow1.thoth-test", 1);
	hostile_beside_healthy(*state, "garbage",
			       "cannot resolve host slow1.thoth-test now: this process has 32 host name lookups "
			       "under way already (its limit");
	unsetenv("POOL_HOSTILE_HOST");
	close(s);
	/* The next test's lookups need the slots back. */
	for (int i = 0; i < 1000 && atomic_load(&resolving) > 0; i++)
		usleep(10000);
}

/*
 * thoth_tcp_connect waits for its opening anyway: with every lookup slot
 * held (32 lookups abandoned at a 20 ms deadline, each asleep for 3 s) it
 * looks the 33rd name up on its own thread and gets as far as the port
 * (refused: nothing listens).  The old code failed it at once with
 * THOTH_E_BUSY, a server "at its connection limit".
 */
static void test_a_blocking_connect_past_the_lookup_limit_looks_the_name_up_itself(void **state)
{
	(void)state;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);  /* bound, not listening */
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	thoth_tcp_config_t tc = { .token = (const uint8_t *)"0123456789abcdef0123", .token_len = 20 };
	char addr[80], why[400];
	thoth_tcp_conn_t *c = NULL;
	/* The deadline test's abandoned lookup would hold a slot still. */
	for (int i = 0; i < 1000 && atomic_load(&resolving) > 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&resolving), 0);
	snprintf(addr, sizeof addr, "tcp:slow3000.thoth-test:%u", (unsigned)ntohs(sa.sin_port));
	for (unsigned i = 0; i < 32; i++)
		assert_int_equal(thoth_tcp_connect_with(addr, &tc, 20, &c, why, sizeof why), THOTH_E_TIMEDOUT);
	snprintf(addr, sizeof addr, "tcp:slow1.thoth-test:%u", (unsigned)ntohs(sa.sin_port));
	int r = thoth_tcp_connect_with(addr, &tc, 2000, &c, why, sizeof why);
	fprintf(stderr, "# the 33rd: %s: %s\n", thoth_errname(r), why);
	assert_int_equal(r, THOTH_E_NOT_RUNNING);
	assert_null(c);
	close(s);
}

/*
 * thoth_tcp_server_new at a service's start: a host name in its listen
 * address is looked up for at most 2 s (THOTH__TCP_LISTEN_LOOKUP_MS),
 * then the start fails naming the host, instead of waiting as long as the
 * resolver takes (the old code called getaddrinfo on the caller's thread:
 * here 5 s, with unreachable name servers 30 s and more).  A quick name
 * and a numeric address still listen.
 */
static const thoth_pooltest_Work_handlers_t no_handlers;

static void test_a_listen_address_resolving_slowly_fails_the_start_in_bounded_time(void **state)
{
	(void)state;
	for (int i = 0; i < 1000 && atomic_load(&resolving) > 0; i++)
		usleep(10000);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	int before = test_count_fds();
	thoth_tcp_server_config_t cfg = {
		.addr = "tcp:slow5000.thoth-test:0", .iface = &thoth_pooltest_Work_info,
		.invoke = thoth_pooltest_Work_invoke, .handlers = &no_handlers,
		.token = (const uint8_t *)"0123456789abcdef0123", .token_len = 20,
	};
	thoth_tcp_server_t *srv = NULL;
	char why[300] = "";
	uint64_t t0 = test_now_ms();
	int r = thoth_tcp_server_new(loop, &cfg, &srv, why, sizeof why);
	uint64_t took = test_now_ms() - t0;
	fprintf(stderr, "# %s after %llu ms: %s\n", thoth_errname(r), (unsigned long long)took, why);
	assert_int_equal(r, THOTH_E_TIMEDOUT);
	assert_null(srv);
	assert_non_null(strstr(why, "listen tcp:slow5000.thoth-test:0: cannot resolve host slow5000.thoth-test "
				    "within 2000 ms"));
	assert_true(took >= 1900 && took < 4500);
	/* The abandoned lookup's eventfd goes with its thread, once the
	 * resolver answers (3 s on). */
	for (int i = 0; i < 1000 && test_count_fds() != before; i++)
		usleep(10000);
	assert_int_equal(test_count_fds(), before);
	cfg.addr = "tcp:slow50.thoth-test:0";
	assert_int_equal(thoth_tcp_server_new(loop, &cfg, &srv, why, sizeof why), 0);
	assert_true(thoth_tcp_server_port(srv) > 0);
	thoth_tcp_server_free(srv);
	cfg.addr = "tcp:127.0.0.1:0";
	assert_int_equal(thoth_tcp_server_new(loop, &cfg, &srv, why, sizeof why), 0);
	thoth_tcp_server_free(srv);
	/* slow50's lookup thread may still hold its record (and eventfd) a
	 * moment after the answer was read: whichever lets go last closes it
	 * (tcp_addr.c).  Seen at ctest -j4, load 13: 7 descriptors for 6.  A
	 * leak never comes back, so 10 s of waiting still fails on one. */
	for (int i = 0; i < 1000 && test_count_fds() != before; i++)
		usleep(10000);
	assert_int_equal(test_count_fds(), before);
	thoth_loop_free(loop);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_calls_spread_over_every_instance_and_are_answered_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_killed_instance_leaves_at_once_and_no_call_is_lost_or_answered_twice, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_calls_in_flight_on_a_dead_instance_fail_clearly_unless_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hung_instance_is_ejected_then_readmitted_with_backoff,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_at_most_one_of_two_failing_instances_is_ejected, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_reports_make_the_slow_instance_cost_more, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_round_robin_alternates_and_pick_first_sticks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_keyed_calls_stick_to_their_shard_and_only_a_lost_shard_moves,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_pool_configs_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_stopped_instance_does_not_hold_up_calls_to_the_others,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_stopped_instance_is_ejected_and_does_not_hold_up_round_robin,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_an_instance_stopped_before_its_channel_opened_does_not_hold_up_the_others, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_a_silent_instance_does_not_stall_calls_to_a_healthy_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_silent_local_instance_does_not_stall_calls_to_a_healthy_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_local_instance_refusing_with_again_fails_by_name,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_instance_refusing_the_hello_with_again_fails_by_name,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_local_instance_sending_a_pipe_fails_by_name,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_trickling_instance_does_not_stall_calls_to_a_healthy_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_instance_answering_the_hello_with_garbage_fails_by_name,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_instance_closing_mid_hello_fails_by_name, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_a_host_name_resolving_slowly_does_not_stall_calls_to_a_healthy_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_host_name_that_does_not_resolve_fails_naming_the_host, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_pool_past_the_lookup_limit_fails_the_opening_naming_the_limit,
						setup, teardown),
		/* its lookup outlives it by 2.5 s, holding one lookup slot:
		 * the last test waits for it */
		cmocka_unit_test_setup_teardown(test_a_host_name_resolving_past_the_deadline_fails_naming_the_host,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_pool_freed_while_an_instance_is_opening_lets_go_of_it, setup,
						teardown),
		/* last: it holds every lookup slot for 3 s */
		cmocka_unit_test(test_a_blocking_connect_past_the_lookup_limit_looks_the_name_up_itself),
		cmocka_unit_test(test_a_listen_address_resolving_slowly_fails_the_start_in_bounded_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
