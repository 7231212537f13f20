/*
 * test_thothctl.c - thothctl against a real thothd: table and JSON output,
 * exit codes, and the one-line "not running" error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "harness.h"

typedef struct fixture {
	harness_t h;
	thoth_control_t svc;            /* holds two registrations */
	char out[16384];
	int status;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_int_equal(harness_setup(&f->h), 0);
	assert_true(harness_start_thothd(&f->h, NULL) > 0);
	assert_int_equal(harness_connect(&f->h, &f->svc), 0);
	assert_int_equal(harness_register(&f->svc, "echo", 60000, NULL), 0);
	assert_int_equal(harness_register(&f->svc, "codex.store", 60000, NULL), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	thoth_control_close(&f->svc);
	harness_teardown(&f->h);
	free(f);
	return 0;
}

/* Run thothctl --runtime-dir DIR ARGS...; exit code. */
static int ctl(fixture_t *f, const char *a1, const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", f->h.dir, a1, a2, a3, a4, NULL };
	assert_int_equal(harness_run(&f->h, argv, f->out, sizeof f->out, &f->status), 0);
	assert_true(WIFEXITED(f->status));
	return WEXITSTATUS(f->status);
}

static void test_status_reports_registrations(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(ctl(f, "status", NULL, NULL, NULL), 0);
	assert_non_null(strstr(f->out, "registrations   2"));
	assert_int_equal(ctl(f, "--json", "status", NULL, NULL), 0);
	assert_non_null(strstr(f->out, "\"registrations\":2"));
	assert_non_null(strstr(f->out, "\"wakeups\":"));
}

static void test_services_prints_an_aligned_table(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(ctl(f, "services", NULL, NULL, NULL), 0);
	char *header = f->out;
	char *row1 = strchr(header, '\n') + 1;
	char *row2 = strchr(row1, '\n') + 1;
	assert_true(strncmp(header, "NAME", 4) == 0);
	assert_true(strncmp(row1, "codex.store", 11) == 0);        /* sorted by name */
	assert_true(strncmp(row2, "echo ", 5) == 0);
	/* Columns line up: VERSION starts at the same offset in every line. */
	size_t col = (size_t)(strstr(header, "VERSION") - header);
	assert_true(strncmp(row1 + col, "1.0.0", 5) == 0);
	assert_true(strncmp(row2 + col, "1.0.0", 5) == 0);
}

static void test_services_prefix_and_json(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(ctl(f, "--json", "services", "codex", NULL), 0);
	assert_non_null(strstr(f->out, "{\"name\":\"codex.store\""));
	assert_null(strstr(f->out, "\"echo\""));
	assert_int_equal(strchr(f->out, '\n')[1], 0);              /* exactly one line */
}

static void test_resolve_found_and_not_found(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(ctl(f, "resolve", "echo", "--min-version", "1.0.0"), 0);
	assert_non_null(strstr(f->out, "echo"));
	assert_int_equal(ctl(f, "resolve", "echo", "--min-version", "1.1.0"), 1);
	assert_non_null(strstr(f->out, "no live instance of 'echo' compatible with 1.1.0"));
	assert_int_equal(ctl(f, "resolve", "nothing", NULL, NULL), 1);
}

static void test_bad_arguments_exit_2_in_one_line(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(ctl(f, "frobnicate", NULL, NULL, NULL), 2);
	assert_non_null(strstr(f->out, "unknown command: frobnicate"));
	/* One line naming the problem and where the usage is (thothctl(1)),
	 * not the whole usage. */
	assert_non_null(strstr(f->out, "thothctl --help lists the commands"));
	assert_null(strstr(f->out, "usage: thothctl"));
	assert_int_equal(ctl(f, "resolve", NULL, NULL, NULL), 2);
	assert_int_equal(ctl(f, "status", "extra", NULL, NULL), 2);
	assert_int_equal(ctl(f, "--bogus", "status", NULL, NULL), 2);
	/* Every command's, not only thothctl's own: trace, pm sim, moderation
	 * and probe printed their whole usage after the line (ops40). */
	assert_int_equal(ctl(f, "trace", "start", "--bogus", NULL), 2);
	assert_string_equal(f->out, "thothctl: trace: unknown option --bogus (thothctl trace --help lists its "
				    "options)\n");
	assert_int_equal(ctl(f, "pm", "sim", "--bogus", NULL), 2);
	assert_string_equal(f->out, "thothctl: pm sim: unknown option --bogus (thothctl pm sim --help lists "
				    "its options)\n");
	assert_int_equal(ctl(f, "moderation", "--policy", "dim", NULL), 2);
	assert_string_equal(f->out, "thothctl: moderation: --policy needs --rate 1..100000000 messages/s "
				    "(thothctl moderation --help lists its options)\n");
	assert_int_equal(ctl(f, "probe", "attach", "x.o", NULL), 2);
	assert_string_equal(f->out, "thothctl: probe attach: whose? give --pid PID or --service NAME "
				    "(thothctl probe attach --help lists its options)\n");
}

static void test_not_running_is_one_clear_line(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(harness_stop_thothd(&f->h), 0);
	assert_int_equal(ctl(f, "status", NULL, NULL, NULL), 1);
	char expect[400];
	snprintf(expect, sizeof expect, "thothctl: thothd is not running (no socket at %s/thothd.sock): "
		 "start it, or give the runtime dir it runs in (--runtime-dir DIR or THOTH_RUNTIME_DIR)\n",
		 f->h.dir);
	assert_string_equal(f->out, expect);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_reports_registrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_services_prints_an_aligned_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_services_prefix_and_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve_found_and_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments_exit_2_in_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_running_is_one_clear_line, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
