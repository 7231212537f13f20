/*
 * test_locks_hint.c - with nothing profiled, a real thothd's LockReports
 * answers NoTables with the library to preload by its full path (the
 * build's tools/thothlock/libthothlock.so, found from thothd's own place
 * as thothctl finds it).  It said LD_PRELOAD=libthothlock.so, which ld.so
 * does not find in LIBDIR/thoth ("cannot be preloaded: ignored"): a client
 * that showed thothd's words sent the user to a profile that never ran.
 * With no library found, the bare name comes with a note that says so.
 */
#define _GNU_SOURCE    /* program_invocation_short_name */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "lockprof_find.h"
#include "locks.thoth.h"
#include "thoth/error.h"

static void report_no_tables(uint32_t pid, const char *want_start)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	static uint64_t scratch[8192];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_locks_LockReports_report_req_t req = { .pid = pid, .top = 8 };
	thoth_locks_LockReports_report_resp_t resp;
	int r = thoth_locks_LockReports_report(&ctl.client, &req, &resp, &arena);
	assert_int_equal(r, THOTH_E_REMOTE);
	assert_int_equal(ctl.client.remote_code, THOTH_LOCKS_ERR_NO_TABLES);

	char lib[PATH_MAX], want[PATH_MAX + 128];
	assert_non_null(realpath(THOTHLOCK_BUILT_LIB, lib));
	snprintf(want, sizeof want, "%s; run %s with LD_PRELOAD=%s (docs/LOCKS.md)", want_start,
		 pid ? "it" : "one", lib);
	fprintf(stderr, "# thothd: %s\n", ctl.client.remote_message);
	/* A client keeps the first 127 bytes of a reason (remote_message):
	 * the path comes early so that a build's or an install's fits. */
	want[sizeof ctl.client.remote_message - 1] = '\0';
	assert_string_equal(ctl.client.remote_message, want);
	assert_non_null(strstr(ctl.client.remote_message, lib));
	thoth_control_close(&ctl);
	harness_teardown(&h);
}

static void test_no_tables_names_the_library_by_its_path(void **state)
{
	(void)state;
	report_no_tables(0, "no process publishes lock statistics");
}

static void test_no_tables_of_one_pid_names_the_library_by_its_path(void **state)
{
	(void)state;
	report_no_tables(1, "process 1 publishes no lock statistics");
}

static void test_no_library_found_says_so(void **state)
{
	(void)state;
	if (access(THOTHLOCK_INSTALLED_LIB, R_OK) == 0)
		skip();         /* an install is there: it is what is found */
	static const char *const nowhere[] = { "no/such/libthothlock.so", NULL };
	char hint[THOTHLOCK_HINT_MAX], want[THOTHLOCK_HINT_MAX];
	snprintf(want, sizeof want, "libthothlock.so (not found beside %s nor at %s: give its full path)",
		 program_invocation_short_name, THOTHLOCK_INSTALLED_LIB);
	assert_string_equal(thothlock_preload_hint(nowhere, hint, sizeof hint), want);
	/* ... and the path when one is there */
	static const char *const built[] = { "../../tools/thothlock/libthothlock.so", NULL };
	char lib[PATH_MAX];
	assert_non_null(realpath(THOTHLOCK_BUILT_LIB, lib));
	assert_string_equal(thothlock_preload_hint(built, hint, sizeof hint), lib);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_tables_names_the_library_by_its_path),
		cmocka_unit_test(test_no_tables_of_one_pid_names_the_library_by_its_path),
		cmocka_unit_test(test_no_library_found_says_so),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
