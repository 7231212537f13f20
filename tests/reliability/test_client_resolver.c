/*
 * test_client_resolver.c - the resolver's cache (thoth_resolver_*) against
 * a real thothd and echo service: it learns instances from thothd's
 * pushes, keeps them while thothd is away, keeps an instance thothd does
 * not list again only for the grace period, and a forgotten instance that
 * is still registered comes back from the re-list.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"
#include "thoth/loop.h"
#include "thoth/service.h"

typedef struct fixture {
	harness_t h;
	thoth_loop_t *loop;
	thoth_resolver_t *r;
	int changes;
} fixture_t;

static void on_change(void *arg)
{
	((fixture_t *)arg)->changes++;
}

static int setup(void **state)
{
	static fixture_t f;
	memset(&f, 0, sizeof f);
	if (harness_setup(&f.h) || harness_start_thothd(&f.h, NULL) <= 0 || thoth_loop_new(&f.loop))
		return -1;
	thoth_resolver_config_t cfg = { .runtime_dir = f.h.dir, .name = "echo",
					.min_version = "1.0.0", .grace_ms = 300,
					.on_change = on_change, .arg = &f };
	if (thoth_resolver_new(f.loop, &cfg, &f.r))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	thoth_resolver_free(f->r);
	thoth_loop_free(f->loop);
	harness_teardown(&f->h);
	return 0;
}

/* Run the loop until COND holds or DEADLINE_MS passes. */
static bool run_until(fixture_t *f, bool (*cond)(fixture_t *), int deadline_ms)
{
	uint64_t end = harness_now_ms() + (uint64_t)deadline_ms;
	while (!cond(f)) {
		if (harness_now_ms() >= end)
			return false;
		thoth_loop_run_once(f->loop, false);
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return true;
}

static bool has_one(fixture_t *f) { return thoth_resolver_connected(f->r) && thoth_resolver_count(f->r) == 1; }
static bool has_none(fixture_t *f) { return thoth_resolver_count(f->r) == 0; }
static bool disconnected(fixture_t *f) { return !thoth_resolver_connected(f->r); }
static bool connected(fixture_t *f) { return thoth_resolver_connected(f->r); }

static pid_t start_echo(fixture_t *f)
{
	const char *argv[] = { ECHO_PATH, "--runtime-dir", f->h.dir, NULL };
	return harness_spawn(&f->h, "echo", argv);
}

static void test_resolver_learns_and_drops_instances_from_pushes(void **state)
{
	fixture_t *f = *state;
	thoth_resolved_t got;
	assert_true(run_until(f, connected, 5000));
	assert_int_equal(thoth_resolver_pick(f->r, &got), THOTH_E_NOT_FOUND);
	pid_t echo = start_echo(f);
	assert_true(run_until(f, has_one, 5000));
	assert_int_equal(thoth_resolver_pick(f->r, &got), 0);
	assert_int_equal(got.pid, (uint32_t)echo);
	assert_true(got.confirmed);
	harness_kill(&f->h, echo, SIGKILL);
	assert_true(run_until(f, has_none, 2000));
}

static void test_cache_survives_thothd_and_stale_entries_end_after_grace(void **state)
{
	fixture_t *f = *state;
	pid_t echo = start_echo(f);
	assert_true(run_until(f, has_one, 5000));
	harness_kill(&f->h, f->h.thothd, SIGKILL);
	assert_true(run_until(f, disconnected, 2000));
	thoth_resolved_t got;
	assert_int_equal(thoth_resolver_pick(f->r, &got), 0);   /* still there without thothd */
	assert_int_equal(got.pid, (uint32_t)echo);
	/* The service dies while thothd is away: nobody can tell the cache. */
	harness_kill(&f->h, echo, SIGKILL);
	assert_true(harness_start_thothd(&f->h, NULL) > 0);
	assert_true(run_until(f, connected, 5000));
	/* The new thothd does not list it: kept, unconfirmed, for the grace. */
	if (thoth_resolver_count(f->r) == 1) {
		assert_int_equal(thoth_resolver_pick(f->r, &got), 0);
		assert_false(got.confirmed);
	}
	uint64_t t0 = harness_now_ms();
	assert_true(run_until(f, has_none, 3000));
	fprintf(stderr, "# stale entry dropped %llu ms after reconnecting (grace 300 ms)\n",
		(unsigned long long)(harness_now_ms() - t0));
}

static void test_forgotten_live_instance_comes_back(void **state)
{
	fixture_t *f = *state;
	start_echo(f);
	assert_true(run_until(f, has_one, 5000));
	thoth_resolved_t got;
	assert_int_equal(thoth_resolver_pick(f->r, &got), 0);
	thoth_resolver_forget(f->r, got.addr);
	assert_int_equal(thoth_resolver_count(f->r), 0);
	assert_true(run_until(f, has_one, 2000));       /* thothd still lists it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resolver_learns_and_drops_instances_from_pushes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_survives_thothd_and_stale_entries_end_after_grace,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_forgotten_live_instance_comes_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
