/*
 * test_client_squatter.c - issue 11 item 4: every client of thothd (the
 * control connection, a registering service, thothctl) checks the runtime
 * dir and the listener's uid before sending anything, so a squatting user
 * at the socket path gets nothing: no trace buffer, no registration, no
 * resolve.  The squatter is a real process listening as uid 65534
 * (client_squatter.h); the tests run as root, which can play that uid.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_squatter.h"
#include "echo.thoth.h"
#include "thoth/error.h"
#include "thoth/service.h"
#include "thoth/trace.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

typedef struct fixture {
	char dir[64];
	char sock[128];
	squatter_t sq;
} fixture_t;

static int setup(void **state)
{
	if (!squatter_can_setuid())
		return 0;
	fixture_t *f = calloc(1, sizeof *f);
	/* dir's 64 bytes leave its sockets' names room (tmpdir.h) */
	if (!test_sock_template(f->dir, sizeof f->dir, "thoth-squat"))
		return -1;
	if (!mkdtemp(f->dir)) {
		fprintf(stderr, "setup: mkdtemp %s: %s\n", f->dir, strerror(errno));
		return -1;
	}
	snprintf(f->sock, sizeof f->sock, "%s/thothd.sock", f->dir);
	if (squatter_start(&f->sq, f->sock, 65534))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	if (!f)
		return 0;
	squatter_stop(&f->sq);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

#define NEED_ROOT(f)                                                                                 \
	do {                                                                                         \
		if (!(f))                                                                            \
			skip_because("needs root: %s", #f);                                          \
	} while (0)

static void test_control_connect_sends_nothing_to_a_foreign_listener(void **state)
{
	fixture_t *f = *state;
	NEED_ROOT(f);
	thoth_control_t ctl;
	assert_int_equal(thoth_control_connect(&ctl, f->dir, 1000), THOTH_E_PERM);
	assert_non_null(strstr(ctl.why, "uid 65534"));
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&f->sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(conns, 1);
	assert_int_equal(bytes, 0);     /* not even TraceControl.attach */
	assert_int_equal(fds, 0);       /* and no trace buffer */
}

typedef struct seen {
	int calls;
	int last_err;
	char reason[300];
} seen_t;

static void on_state(void *arg, thoth_service_state_t state, int err, const char *reason)
{
	seen_t *s = arg;
	s->calls++;
	s->last_err = err;
	snprintf(s->reason, sizeof s->reason, "%s", reason);
}

static void test_service_registers_nothing_with_a_foreign_listener(void **state)
{
	fixture_t *f = *state;
	NEED_ROOT(f);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	const thoth_interface_info_t *ifaces[] = { &thoth_echo_Echo_info };
	seen_t seen = { 0 };
	thoth_service_config_t cfg = {
		.runtime_dir = f->dir, .name = "echo", .version = "1.0.0",
		.endpoint = "/nonexistent/echo.sock", .interfaces = ifaces, .n_interfaces = 1,
		.on_state = on_state, .arg = &seen,
	};
	thoth_service_t *svc;
	char why[200];
	assert_int_equal(thoth_service_register(loop, &cfg, &svc, why, sizeof why), 0);
	/* Let it try at least twice (first attempt and one retry). */
	int attempts = 0;
	uint64_t end = thoth_clock_now() + 10ull * 1000000000ull;
	while (attempts < 2 && thoth_clock_now() < end) {
		thoth_loop_run_once(loop, false);
		squatter_report_t rep;
		int n = squatter_next(&f->sq, 5, &rep);
		assert_true(n >= 0);
		if (n == 1) {
			assert_int_equal(rep.bytes, 0);
			assert_int_equal(rep.fds, 0);
			attempts++;
		}
	}
	assert_int_equal(attempts, 2);
	assert_int_equal(thoth_service_state(svc), THOTH_SERVICE_CONNECTING);
	assert_int_equal(thoth_service_registrations(svc), 0);
	thoth_service_withdraw(svc);
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&f->sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(bytes, 0);
	assert_int_equal(fds, 0);
	thoth_loop_free(loop);
}

static void test_thothctl_refuses_a_foreign_listener(void **state)
{
	fixture_t *f = *state;
	NEED_ROOT(f);
	char cmd[300], out[2000] = "";
	snprintf(cmd, sizeof cmd, "%s --runtime-dir %s status 2>&1", THOTHCTL_PATH, f->dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int status = pclose(p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	assert_non_null(strstr(out, "uid 65534"));
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&f->sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(conns, 1);
	assert_int_equal(bytes, 0);
	assert_int_equal(fds, 0);
}

static void test_thothctl_refuses_a_world_writable_runtime_dir(void **state)
{
	fixture_t *f = *state;
	NEED_ROOT(f);
	assert_int_equal(chmod(f->dir, 0777), 0);
	char cmd[300], out[2000] = "";
	snprintf(cmd, sizeof cmd, "%s --runtime-dir %s resolve echo 2>&1", THOTHCTL_PATH, f->dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, sizeof out - 1, p);
	out[n] = 0;
	int status = pclose(p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	assert_non_null(strstr(out, "mode 777"));
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&f->sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(conns, 0);
}

int main(void)
{
	/* A trace buffer, as every demo process has: the thing a squatter wanted. */
	thoth_trace_init_process("test_client_squatter");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_control_connect_sends_nothing_to_a_foreign_listener,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_registers_nothing_with_a_foreign_listener,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_thothctl_refuses_a_foreign_listener, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_thothctl_refuses_a_world_writable_runtime_dir,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
