/*
 * test_client_restart.c - issue 11 item 13: thothd restarts cost the demo
 * nothing.  Real processes: thothd, two echo services and echo-client
 * calling them (reporting calls/s every second).  thothd is killed (-9)
 * and restarted three times:
 *   - echo-client never drops to zero: thothd stays away 1.5 s each time,
 *     so at least one whole one-second report falls inside its absence,
 *     and every report after the baseline keeps a tenth of the baseline
 *     rate (it picks instances from its resolver's cache and calls over
 *     channels thothd is not part of; a call that waited for thothd would
 *     empty that report);
 *   - both services are registered again within a second of the new
 *     thothd answering (re-registration latency printed);
 *   - no descriptor leaks: each echo's and echo-client's /proc/PID/fd
 *     count is the same after the third restart as before the first.
 * And a stopped (hung) thothd never stalls a service: a service started
 * while thothd is SIGSTOPped serves its channel clients at once.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_proc.h"
#include "echo.thoth.h"
#include "harness.h"
#include "slowdown.h"
#include "thoth/channel.h"

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

/* The calls/s figures echo-client printed so far. */
static int read_rates(const char *log, double *rates, int cap)
{
	FILE *f = fopen(log, "r");
	int n = 0;
	char line[512];
	while (f && n < cap && fgets(line, sizeof line, f)) {
		double r;
		if (sscanf(line, "echo-client: %lf calls/s", &r) == 1)
			rates[n++] = r;
	}
	if (f)
		fclose(f);
	return n;
}

typedef struct {
	const char *log;
	int want;
} rates_arg_t;

static bool has_reports(void *p)
{
	rates_arg_t *a = p;
	double r[256];
	return read_rates(a->log, r, 256) >= a->want;
}

typedef struct {
	pid_t pid;
	int want;
} fds_arg_t;

/* At most as many as before: the count before the restarts can itself
 * hold a descriptor that was open for a moment (a stop-27 CI run counted
 * 17 where the list read next showed 16), and fewer after is no leak. */
static bool fds_are(void *p)
{
	fds_arg_t *a = p;
	return client_proc_fds(a->pid) <= a->want;
}

/* PID holds no more descriptors than before the restarts.  A leak stays;
 * what a restart opens for a moment goes (see the header), so the count
 * is waited for with a deadline, and what differed is printed. */
static void check_fds(const char *who, pid_t pid, int want, const char *before)
{
	char now[4096];
	int first = client_proc_fds(pid);
	client_proc_fd_list(pid, now, sizeof now);
	fds_arg_t a = { pid, want };
	uint64_t t0 = harness_now_ms();
	bool ok = harness_wait_until(fds_are, &a, THOTH_TEST_DEADLINE_MS(5000));
	if (first > want)
		fprintf(stderr, "# %s: %d fds, %s after %llu ms\n#   before: %s\n#   then:   %s\n", who, first,
			ok ? "back to the count before the restarts" : "and still not back",
			(unsigned long long)(harness_now_ms() - t0), before, now);
	if (!ok) {
		client_proc_fd_list(pid, now, sizeof now);
		fail_msg("%s has %d fds after the restarts, %d before: a leak\nbefore: %s\nnow: %s", who,
			 client_proc_fds(pid), want, before, now);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void test_thothd_restarts_do_not_stop_calls_or_leak(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	const char *echo_argv[] = { ECHO_PATH, "--runtime-dir", h.dir, NULL };
	pid_t e1 = harness_spawn(&h, "echo1", echo_argv);
	pid_t e2 = harness_spawn(&h, "echo2", echo_argv);
	assert_true(e1 > 0 && e2 > 0);
	count_arg_t two = { &h, 2 };
	assert_true(harness_wait_until(registrations_are, &two, 10000));
	const char *client_argv[] = { ECHO_CLIENT_PATH, "--runtime-dir", h.dir, "--rate", "1000",
				      "--report", "1", NULL };
	pid_t client = harness_spawn(&h, "client", client_argv);
	assert_true(client > 0);
	char log[400];
	snprintf(log, sizeof log, "%s/client.log", h.dir);
	rates_arg_t baseline = { log, 3 };
	assert_true(harness_wait_until(has_reports, &baseline, 15000));
	int fds_e1 = client_proc_fds(e1), fds_e2 = client_proc_fds(e2);
	int fds_client = client_proc_fds(client);
	static char list_e1[4096], list_e2[4096], list_client[4096];
	client_proc_fd_list(e1, list_e1, sizeof list_e1);
	client_proc_fd_list(e2, list_e2, sizeof list_e2);
	client_proc_fd_list(client, list_client, sizeof list_client);

	uint64_t worst_ms = 0;
	for (int i = 0; i < 3; i++) {
		harness_kill(&h, h.thothd, SIGKILL);
		/* thothd away for longer than a report while the client keeps
		 * calling (the measurement window, not a synchronization) */
		struct timespec away = { 1, 500 * 1000 * 1000 };
		nanosleep(&away, NULL);
		assert_true(harness_start_thothd(&h, NULL) > 0);
		uint64_t t0 = harness_now_ms();
		assert_true(harness_wait_until(registrations_are, &two, 5000));
		uint64_t took = harness_now_ms() - t0;
		fprintf(stderr, "# restart %d: both services registered again %llu ms after thothd "
			"answered\n", i + 1, (unsigned long long)took);
		if (took > worst_ms)
			worst_ms = took;
	}
	assert_true(worst_ms < 1000);
	/* Two more reports cover the last restart. */
	double rates[256];
	int before = read_rates(log, rates, 256);
	rates_arg_t more = { log, before + 2 };
	assert_true(harness_wait_until(has_reports, &more, 10000));
	int n = read_rates(log, rates, 256);
	double base[3] = { rates[0], rates[1], rates[2] };
	qsort(base, 3, sizeof base[0], cmp_double);
	double lowest = rates[3];
	for (int i = 3; i < n; i++)
		lowest = rates[i] < lowest ? rates[i] : lowest;
	fprintf(stderr, "# echo-client: baseline median %.0f calls/s, lowest during restarts %.0f "
		"calls/s (%.2f of it; bound 0.10, %d reports)\n", base[1], lowest, lowest / base[1], n);
	/* A tenth, not a third: a report that thothd's absence filled would
	 * be near zero, while the load of a restarting (ASan) thothd on a
	 * loaded 2-CPU box took a report to 0.43 of the baseline with calls
	 * that never waited for it (the old bound of a third, with thothd
	 * away only 0.3 s, could not tell a 0.5 s stall from that). */
	assert_true(lowest >= base[1] / 10);

	fprintf(stderr, "# fds: echo %d->%d, echo %d->%d, echo-client %d->%d\n", fds_e1,
		client_proc_fds(e1), fds_e2, client_proc_fds(e2), fds_client,
		client_proc_fds(client));
	check_fds("echo 1", e1, fds_e1, list_e1);
	check_fds("echo 2", e2, fds_e2, list_e2);
	check_fds("echo-client", client, fds_client, list_client);
	harness_teardown(&h);
}

typedef struct {
	char path[300];
} exists_arg_t;

static bool socket_exists(void *p)
{
	exists_arg_t *a = p;
	struct stat st;
	return stat(a->path, &st) == 0;
}

static void test_stopped_thothd_does_not_stall_a_service(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	kill(h.thothd, SIGSTOP);        /* hung: accepts nothing, answers nothing */
	const char *echo_argv[] = { ECHO_PATH, "--runtime-dir", h.dir, NULL };
	pid_t echo = harness_spawn(&h, "echo", echo_argv);
	assert_true(echo > 0);
	exists_arg_t sock;
	snprintf(sock.path, sizeof sock.path, "%s/echo-%d.sock", h.dir, (int)echo);
	assert_true(harness_wait_until(socket_exists, &sock, 5000));

	/* Channel calls for 3 s (longer than the service's answer deadline):
	 * none may wait for thothd. */
	uint64_t t0 = harness_now_ms(), worst = 0;
	thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .timeout_ms = 5000 };
	thoth_chan_t *ch;
	char why[300];
	assert_int_equal(thoth_chan_connect(sock.path, &cfg, &ch, why, sizeof why), 0);
	uint64_t connect_ms = harness_now_ms() - t0;
	int calls = 0;
	while (harness_now_ms() - t0 < 3000) {
		uint64_t c0 = harness_now_ms();
		static const char payload[] = "ping";
		thoth_echo_Echo_echo_req_t req = {
			.data = { .ptr = (const uint8_t *)payload, .len = sizeof payload } };
		thoth_echo_Echo_echo_resp_t resp;
		assert_int_equal(thoth_echo_Echo_echo(thoth_chan_client(ch), &req, &resp, NULL), 0);
		uint64_t took = harness_now_ms() - c0;
		worst = took > worst ? took : worst;
		calls++;
		struct timespec gap = { 0, 1000 * 1000 };       /* pacing, not synchronization */
		nanosleep(&gap, NULL);
	}
	fprintf(stderr, "# thothd stopped: channel connect %llu ms, %d calls, slowest %llu ms\n",
		(unsigned long long)connect_ms, calls, (unsigned long long)worst);
	/* A call that waited for thothd would wait out the service's answer
	 * deadline (2 s, kernel/ipc/service.c) or forever: half of it tells
	 * that from a loaded machine (500 ms was exceeded under ASan at load
	 * 22 by scheduling alone). */
	assert_true(connect_ms < 1000);
	assert_true(worst < 1000);
	thoth_chan_close(ch);

	/* Once thothd runs again the service registers. */
	kill(h.thothd, SIGCONT);
	count_arg_t one = { &h, 1 };
	assert_true(harness_wait_until(registrations_are, &one, 10000));
	harness_teardown(&h);
}

/* An explicit ttl_ms is a watchdog lease: the service keeps renewing it
 * (here ~10 renewals at TTL/3) and stays registered, and renewing never
 * touches a timer the loop already freed (ASan caught that once).  A
 * renewal late under heavy load may let the lease expire; the service then
 * registers again, so the end state is the same: registered, alive. */
static void test_explicit_ttl_is_renewed_for_as_long_as_the_service_runs(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	const char *echo_argv[] = { ECHO_PATH, "--runtime-dir", h.dir, "--ttl-ms", "600", NULL };
	pid_t echo = harness_spawn(&h, "echo", echo_argv);
	assert_true(echo > 0);
	count_arg_t one = { &h, 1 };
	assert_true(harness_wait_until(registrations_are, &one, 10000));
	struct timespec window = { 2, 0 };     /* ~10 renewals: the measurement window */
	nanosleep(&window, NULL);
	assert_int_equal(kill(echo, 0), 0);     /* it did not crash renewing */
	assert_true(harness_wait_until(registrations_are, &one, 2000));
	harness_teardown(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thothd_restarts_do_not_stop_calls_or_leak),
		cmocka_unit_test(test_stopped_thothd_does_not_stall_a_service),
		cmocka_unit_test(test_explicit_ttl_is_renewed_for_as_long_as_the_service_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
