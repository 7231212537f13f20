/*
 * test_trace_e2e.c - OBS-1 end to end with real processes: thothd, the echo
 * service and the echo client in a temp runtime dir, traced by
 * `thothctl trace --duration`; the JSON is checked by python3's json module
 * (check_trace_e2e.py: a track per process, flows send->recv across
 * processes by trace id) and the CTF by babeltrace2.  Also thothctl trace's
 * errors: no thothd, bad arguments, an unwritable path, a full disk; and
 * that stopping a session disarms thothd's drain timer (--trace-collector
 * loop), and that by default a session is collected off the loop thread.
 *
 * Every process is killed and the temp dir removed in teardown (harness.c),
 * also when an assertion fails.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fixture {
	harness_t h;
	char out[1 << 16];
	int status;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_int_equal(harness_setup(&f->h), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	harness_teardown(&f->h);
	free(f);
	return 0;
}

/* thothctl --runtime-dir DIR trace ARGS... (NULL-terminated); exit code. */
static int trace_cmd(fixture_t *f, ...)
{
	const char *argv[16] = { THOTHCTL_PATH, "--runtime-dir", f->h.dir, "trace" };
	int n = 4;
	va_list ap;
	va_start(ap, f);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(harness_run(&f->h, argv, f->out, sizeof f->out, &f->status), 0);
	assert_true(WIFEXITED(f->status));
	return WEXITSTATUS(f->status);
}

typedef struct file_has {
	const char *file;
	const char *needle;
} file_has_t;

static bool file_has(void *arg)
{
	file_has_t *w = arg;
	return harness_file_contains(w->file, w->needle);
}

static void print_file(const char *what, const char *path)
{
	fprintf(stderr, "%s; %s:\n", what, path);
	FILE *in = fopen(path, "r");
	char line[512];
	while (in && fgets(line, sizeof line, in))
		fputs(line, stderr);
	if (in)
		fclose(in);
}

typedef struct child_exit {
	pid_t pid;
	int status;
	bool done;
} child_exit_t;

static bool child_exited(void *arg)
{
	child_exit_t *c = arg;
	if (!c->done && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->done = true;
	return c->done;
}

/* The main scenario: thothctl trace --duration while echo registers and
 * serves the client; both outputs read back by their real consumers. */
static void test_duration_traces_thothd_echo_and_client_with_flows(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	pid_t thothd = harness_start_thothd(h, NULL);
	assert_true(thothd > 0);

	char json[200], ctf[200], trace_log[200], client_log[200];
	snprintf(json, sizeof json, "%s/trace.json", h->dir);
	snprintf(ctf, sizeof ctf, "%s/ctf", h->dir);
	snprintf(trace_log, sizeof trace_log, "%s/trace.log", h->dir);
	snprintf(client_log, sizeof client_log, "%s/client.log", h->dir);

	/* The session starts first, so echo's registration is in it (processes
	 * that attach during a session join it).  It ends when what the checks
	 * read has happened, not after a fixed time: Ctrl-C (SIGINT) stops it
	 * early and writes, once the client has reported calls to echo (below).
	 * A fixed 2 s once ended before echo and its client had even started
	 * (ASan, load 15): the JSON held thothd alone.  60 s bounds a hang. */
	const char *trace_argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace",
				     "--duration", "60", "--json", json, "--ctf", ctf, NULL };
	child_exit_t ctl = { .pid = harness_spawn(h, "trace", trace_argv) };
	assert_true(ctl.pid > 0);
	file_has_t started = { trace_log, "trace session" };
	assert_true(harness_wait_until(file_has, &started, 5000));

	/* The demo's client resolves from its cache (thoth_resolver), not per
	 * call: one resolve during the session keeps registry_resolve covered.
	 * It goes first, before echo and its client start: issued after them
	 * it came after the 2 s session's end once under ASan at load 15 and
	 * the CTF had no registry_resolve.  A miss is traced like a hit
	 * (lease 0 and the status), which is all the check below reads. */
	const char *resolve_argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "resolve", "echo", NULL };
	int resolve_status;
	assert_int_equal(harness_run(h, resolve_argv, f->out, sizeof f->out, &resolve_status), 0);

	/* echo with a short lease: renew timers fire during the session. */
	const char *echo_argv[] = { ECHO_PATH, "--runtime-dir", h->dir, "--ttl-ms", "300", NULL };
	pid_t echo = harness_spawn(h, "echo", echo_argv);
	assert_true(echo > 0);
	const char *client_argv[] = { ECHO_CLIENT_PATH, "--runtime-dir", h->dir, "--rate", "200",
				      "--report", "1", NULL };
	pid_t client = harness_spawn(h, "client", client_argv);
	assert_true(client > 0);

	/* The client's first report that names echo's instance: it resolved
	 * echo (a flow to thothd), called it over a channel, and echo's renew
	 * timers (300 ms lease) and the client's ticks have fired.  Then the
	 * session is stopped early, as Ctrl-C would. */
	file_has_t reported = { client_log, "[pid " };
	if (!harness_wait_until(file_has, &reported, 60000))
		print_file("the client reported no calls to echo", client_log);
	assert_true(harness_file_contains(client_log, "[pid "));
	assert_int_equal(kill(ctl.pid, SIGINT), 0);
	assert_true(harness_wait_until(child_exited, &ctl, 60000));
	for (int i = 0; i < h->n_children; i++)
		if (h->children[i] == ctl.pid)
			h->children[i] = 0;     /* reaped here */
	assert_true(WIFEXITED(ctl.status));
	if (WEXITSTATUS(ctl.status) != 0)
		print_file("thothctl trace failed", trace_log);
	assert_int_equal(WEXITSTATUS(ctl.status), 0);
	assert_true(harness_file_contains(trace_log, "wrote "));

	/* JSON: python3's json module, tracks, flows, event names. */
	char pids[3][64];
	snprintf(pids[0], sizeof pids[0], "%d=thothd", (int)thothd);
	snprintf(pids[1], sizeof pids[1], "%d=echo", (int)echo);
	snprintf(pids[2], sizeof pids[2], "%d=echo-client", (int)client);
	const char *check_argv[] = { THOTH_PYTHON3, THOTH_TEST_DIR "/check_trace_e2e.py", json,
				     pids[0], pids[1], pids[2], NULL };
	assert_int_equal(harness_run(h, check_argv, f->out, sizeof f->out, &f->status), 0);
	if (!WIFEXITED(f->status) || WEXITSTATUS(f->status) != 0)
		fprintf(stderr, "%s", f->out);
	assert_true(WIFEXITED(f->status));
	assert_int_equal(WEXITSTATUS(f->status), 0);

	/* CTF: babeltrace2 prints the events of every process. */
	const char *bt_argv[] = { THOTH_BABELTRACE2, ctf, NULL };
	assert_int_equal(harness_run(h, bt_argv, f->out, sizeof f->out, &f->status), 0);
	assert_true(WIFEXITED(f->status));
	assert_int_equal(WEXITSTATUS(f->status), 0);
	const char *wanted[] = { "msg_send: ", "msg_recv: ", "registry_register: ",
				 "registry_resolve: ", "loop_wakeup: ", "timer_fire: " };
	for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
		if (!strstr(f->out, wanted[i]))
			fprintf(stderr, "babeltrace2 printed no %s\n", wanted[i]);
		assert_non_null(strstr(f->out, wanted[i]));
	}
	char pid_field[3][40];
	snprintf(pid_field[0], sizeof pid_field[0], "pid = %d,", (int)thothd);
	snprintf(pid_field[1], sizeof pid_field[1], "pid = %d,", (int)echo);
	snprintf(pid_field[2], sizeof pid_field[2], "pid = %d,", (int)client);
	for (int i = 0; i < 3; i++)
		assert_non_null(strstr(f->out, pid_field[i]));

	/* Without Ctrl-C, --duration stops, writes and exits on its own. */
	char json2[200];
	snprintf(json2, sizeof json2, "%s/trace2.json", h->dir);
	const char *short_argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace",
				     "--duration", "0.2", "--json", json2, NULL };
	assert_int_equal(harness_run(h, short_argv, f->out, sizeof f->out, &f->status), 0);
	if (!WIFEXITED(f->status) || WEXITSTATUS(f->status) != 0)
		fprintf(stderr, "%s", f->out);
	assert_true(WIFEXITED(f->status));
	assert_int_equal(WEXITSTATUS(f->status), 0);
	assert_non_null(strstr(f->out, "wrote "));
	assert_int_equal(access(json2, R_OK), 0);
}

static void test_trace_without_thothd_says_it_is_not_running(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(trace_cmd(f, "start", NULL), 1);
	assert_non_null(strstr(f->out, "thothd is not running (no socket at "));
	assert_non_null(strstr(f->out, f->h.dir));
}

static void test_trace_bad_arguments_print_usage_and_exit_2(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(trace_cmd(f, NULL), 2);
	/* one line naming what is missing and where the usage is, not the
	 * 18-line usage after it (ops40) */
	assert_non_null(strstr(f->out, "thothctl: trace: start, stop, dump or --duration SECONDS? "
				       "(thothctl trace --help lists its options)\n"));
	assert_null(strstr(f->out, "usage: thothctl"));
	assert_int_equal(trace_cmd(f, "bogus", NULL), 2);
	assert_non_null(strstr(f->out, "unknown trace command: bogus"));
	assert_int_equal(trace_cmd(f, "start", "--categories", "ipc,nonsense", NULL), 2);
	assert_non_null(strstr(f->out, "unknown category"));
	assert_int_equal(trace_cmd(f, "--duration", "-1", "--json", "x.json", NULL), 2);
	assert_int_equal(trace_cmd(f, "--duration", "1", NULL), 2);
	assert_non_null(strstr(f->out, "--json FILE and/or --ctf DIR"));
	assert_int_equal(trace_cmd(f, "dump", NULL), 2);
	assert_int_equal(trace_cmd(f, "stop", "--json", "x.json", NULL), 2);
	assert_int_equal(trace_cmd(f, "start", "--pid", "abc", NULL), 2);
}

static void test_trace_unwritable_output_names_the_path_and_why(void **state)
{
	fixture_t *f = *state;
	assert_true(harness_start_thothd(&f->h, NULL) > 0);
	assert_int_equal(trace_cmd(f, "start", NULL), 0);
	assert_int_equal(trace_cmd(f, "stop", NULL), 0);
	/* No such directory. */
	assert_int_equal(trace_cmd(f, "dump", "--json", "/nonexistent-thoth/t.json", NULL), 1);
	assert_non_null(strstr(f->out, "cannot write the JSON trace to /nonexistent-thoth/t.json: "
					"No such file or directory"));
	/* No permission: sysfs refuses new files even to root. */
	assert_int_equal(trace_cmd(f, "dump", "--json", "/sys/thoth-trace.json", NULL), 1);
	assert_non_null(strstr(f->out, "/sys/thoth-trace.json: Permission denied"));
	assert_int_equal(trace_cmd(f, "dump", "--ctf", "/sys/thoth-ctf", NULL), 1);
	assert_non_null(strstr(f->out, "/sys/thoth-ctf"));
}

static void test_trace_full_disk_is_reported_by_thothd(void **state)
{
	fixture_t *f = *state;
	assert_true(harness_start_thothd(&f->h, NULL) > 0);
	assert_int_equal(trace_cmd(f, "start", NULL), 0);
	assert_int_equal(trace_cmd(f, "stop", NULL), 0);
	/* /dev/full: opening works (thothctl's check passes), writing fails
	 * with ENOSPC inside thothd, which says so. */
	assert_int_equal(trace_cmd(f, "dump", "--json", "/dev/full", NULL), 1);
	assert_non_null(strstr(f->out, "/dev/full: No space left on device"));
	assert_non_null(strstr(f->out, "(no space left on the device)"));
}

static void test_trace_stop_without_session_and_double_start_are_refused(void **state)
{
	fixture_t *f = *state;
	assert_true(harness_start_thothd(&f->h, NULL) > 0);
	assert_int_equal(trace_cmd(f, "stop", NULL), 1);
	assert_non_null(strstr(f->out, "no trace session is running"));
	assert_int_equal(trace_cmd(f, "dump", "--json", "/dev/null", NULL), 1);
	assert_non_null(strstr(f->out, "nothing collected"));
	assert_int_equal(trace_cmd(f, "start", "--categories", "ipc", NULL), 0);
	assert_int_equal(trace_cmd(f, "start", NULL), 1);
	assert_non_null(strstr(f->out, "already running"));
	assert_int_equal(trace_cmd(f, "stop", NULL), 0);
	/* nothing lost is said so, not "0 lost (see thothd's log)" */
	assert_non_null(strstr(f->out, "none lost"));
	assert_null(strstr(f->out, "thothd's log"));
}

typedef struct timer_wakeups {
	harness_t *h;
	uint64_t above;
} timer_wakeups_t;

static uint64_t thothd_timer_wakeups(harness_t *h)
{
	thoth_control_t ctl;
	assert_int_equal(harness_connect(h, &ctl), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&ctl, &st), 0);
	thoth_control_close(&ctl);
	return st.wakeups_timer;
}

static bool timer_woke(void *arg)
{
	timer_wakeups_t *w = arg;
	return thothd_timer_wakeups(w->h) > w->above;
}

/* With the loop thread as the collector (--trace-collector loop, the old
 * path) a session's drain timer wakes thothd; after stop nothing does (no
 * registrations: no expiry timer either). */
static void test_stop_disarms_the_drain_timer(void **state)
{
	fixture_t *f = *state;
	const char *const loop_collects[] = { "--trace-collector", "loop", NULL };
	assert_true(harness_start_thothd(&f->h, loop_collects) > 0);
	timer_wakeups_t w = { &f->h, thothd_timer_wakeups(&f->h) };
	assert_int_equal(w.above, 0);
	assert_int_equal(trace_cmd(f, "start", NULL), 0);
	assert_true(harness_wait_until(timer_woke, &w, 3000));
	assert_int_equal(trace_cmd(f, "stop", NULL), 0);
	uint64_t after_stop = thothd_timer_wakeups(&f->h);
	usleep(400 * 1000);             /* > 2 drain periods: measuring an absence */
	assert_int_equal(thothd_timer_wakeups(&f->h), after_stop);
}

/* Threads of thothd named NAME (/proc/PID/task/<tid>/comm). */
static int threads_named(pid_t pid, const char *name)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		char comm[400], buf[32] = "";
		snprintf(comm, sizeof comm, "%s/%s/comm", path, e->d_name);
		FILE *f = fopen(comm, "re");
		if (f) {
			if (fgets(buf, sizeof buf, f))
				buf[strcspn(buf, "\n")] = 0;
			fclose(f);
		}
		n += strcmp(buf, name) == 0;
	}
	closedir(dir);
	return n;
}

static bool collector_named(void *arg)
{
	return threads_named(*(pid_t *)arg, "thothd-trace") > 0;
}

static bool collector_gone(void *arg)
{
	return threads_named(*(pid_t *)arg, "thothd-trace") == 0;
}

/* By default a session is drained by a collector thread: thothd's loop
 * thread (the one answering resolve, list and status) is never woken for
 * it, and the thread exists only while the session does. */
static void test_session_is_collected_off_the_loop_thread(void **state)
{
	fixture_t *f = *state;
	pid_t d = harness_start_thothd(&f->h, NULL);
	assert_true(d > 0);
	assert_int_equal(threads_named(d, "thothd-trace"), 0);
	uint64_t before = thothd_timer_wakeups(&f->h);
	assert_int_equal(trace_cmd(f, "start", NULL), 0);
	/* The collector names itself when it first runs: on a loaded machine
	 * that can be after "start" was answered (seen: 0 threads named). */
	assert_true(harness_wait_until(collector_named, &d, 10000));
	assert_int_equal(threads_named(d, "thothd-trace"), 1);
	usleep(400 * 1000);             /* > 2 drain periods: measuring an absence */
	assert_int_equal(thothd_timer_wakeups(&f->h), before);
	assert_int_equal(trace_cmd(f, "stop", NULL), 0);
	assert_true(harness_wait_until(collector_gone, &d, 3000));
	assert_true(harness_file_contains(f->h.log, "collection passes on the collector thread"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_duration_traces_thothd_echo_and_client_with_flows,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_without_thothd_says_it_is_not_running,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_bad_arguments_print_usage_and_exit_2, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_trace_unwritable_output_names_the_path_and_why,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_full_disk_is_reported_by_thothd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_trace_stop_without_session_and_double_start_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_disarms_the_drain_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_is_collected_off_the_loop_thread, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
