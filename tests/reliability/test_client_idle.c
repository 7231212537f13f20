/*
 * test_client_idle.c - issue 13 section 0: an idle registered service costs
 * nothing.  thothd, 10 registered echo services (default: registration
 * held by the connection, no TTL) and an idle resolving client are left
 * alone for THOTH_IDLE_SECONDS (default 15); every one of the 12 processes
 * must not wake up (voluntary context switches from /proc).  With lease
 * renewals at TTL 3 s each service would wake ~1.3 times a second and
 * thothd ~13 times.  Then peer death is still noticed at once: kill -9 of
 * one service reaches the idle client's cache through thothd.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "client_proc.h"
#include "harness.h"
#include "slowdown.h"

enum { N_SERVICES = 10 };

typedef struct {
	harness_t *h;
	unsigned want;
} count_arg_t;

static bool registrations_are(void *p)
{
	count_arg_t *a = p;
	thoth_control_t ctl;
	if (harness_connect(a->h, &ctl))
		return false;
	thoth_daemon_Daemon_status_resp_t st;
	bool ok = harness_status(&ctl, &st) == 0 && st.registrations == a->want;
	thoth_control_close(&ctl);
	return ok;
}

typedef struct {
	const char *log;
	const char *needle;
} log_arg_t;

static bool log_says(void *p)
{
	log_arg_t *a = p;
	return harness_file_contains(a->log, a->needle);
}

static void test_idle_services_and_client_do_not_wake_up(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	pid_t pids[N_SERVICES + 2];
	int n = 0;
	pids[n++] = h.thothd;
	for (int i = 0; i < N_SERVICES; i++) {
		char log[32];
		snprintf(log, sizeof log, "echo%d", i);
		const char *argv[] = { ECHO_PATH, "--runtime-dir", h.dir, NULL };
		pids[n] = harness_spawn(&h, log, argv);
		assert_true(pids[n++] > 0);
	}
	const char *argv[] = { CLIENT_HELPER_PATH, h.dir, "echo", NULL };
	pid_t client = harness_spawn(&h, "client", argv);
	assert_true(client > 0);
	pids[n++] = client;
	count_arg_t all = { &h, N_SERVICES };
	assert_true(harness_wait_until(registrations_are, &all, 10000));
	char log[400];
	snprintf(log, sizeof log, "%s/client.log", h.dir);
	log_arg_t ten = { log, "count 10\n" };
	assert_true(harness_wait_until(log_says, &ten, 10000));

	long before[N_SERVICES + 2], after[N_SERVICES + 2];
	for (int i = 0; i < n; i++)
		before[i] = client_proc_wakeups(pids[i]);
	int seconds = getenv("THOTH_IDLE_SECONDS") ? atoi(getenv("THOTH_IDLE_SECONDS")) : 15;
	/* The measurement window itself (not a synchronization). */
	struct timespec idle = { seconds, 0 };
	nanosleep(&idle, NULL);
	for (int i = 0; i < n; i++)
		after[i] = client_proc_wakeups(pids[i]);
	long total = 0, worst = 0;
	for (int i = 0; i < n; i++) {
		assert_true(before[i] >= 0 && after[i] >= 0);
		long d = after[i] - before[i];
		total += d;
		if (d > worst)
			worst = d;
	}
	fprintf(stderr, "# idle %d s: thothd %ld, services", seconds, after[0] - before[0]);
	for (int i = 1; i <= N_SERVICES; i++)
		fprintf(stderr, " %ld", after[i] - before[i]);
	fprintf(stderr, ", client %ld voluntary context switches (total %ld)\n",
		after[n - 1] - before[n - 1], total);
	/* At most one per process: going back to sleep after the last status
	 * call or cache print may land just after the first reading. */
	assert_true(worst <= 1);

	/* Peer death is still noticed at once, without any lease: the client's
	 * cache loses the killed service through thothd's push. */
	uint64_t t0 = harness_now_ms();
	harness_kill(&h, pids[1], SIGKILL);
	log_arg_t nine = { log, "count 9\n" };
	/* Without the push the cache would keep it for ever (there is no
	 * lease): the deadline bounds a hang, the time is printed. */
	assert_true(harness_wait_until(log_says, &nine, THOTH_TEST_DEADLINE_MS(2000)));
	fprintf(stderr, "# kill -9 of a service reached the client's cache in %llu ms\n",
		(unsigned long long)(harness_now_ms() - t0));
	count_arg_t rest = { &h, N_SERVICES - 1 };
	assert_true(harness_wait_until(registrations_are, &rest, THOTH_TEST_DEADLINE_MS(1000)));
	harness_teardown(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_services_and_client_do_not_wake_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
