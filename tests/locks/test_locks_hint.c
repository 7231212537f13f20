/*
 * test_locks_hint.c - with nothing profiled, a real thothd's LockReports
 * answers NoTables with the thothlock launcher by its full path (the
 * build's tools/thothlock/thothlock, found from thothd's own place as
 * thothctl finds it): a program run under it is seen in thothd's live
 * view while it runs and reported at its exit.  (It named the bare
 * LD_PRELOAD form while thothlock runs were not seen live.)  Where no
 * launcher is found, the library to preload by its full path: a bare
 * LD_PRELOAD=libthothlock.so is not found by ld.so in LIBDIR/thoth
 * ("cannot be preloaded: ignored"), and with no library found either, the
 * bare name comes with a note that says so.  The launcher's own lookup
 * (beside the program, else on PATH) is checked here too.
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
#include "../common/skip.h"

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

	char launcher[PATH_MAX], want[PATH_MAX + 128];
	assert_non_null(realpath(THOTHLOCK_BUILT_LAUNCHER, launcher));
	snprintf(want, sizeof want, "%s; run %s as %s -- PROGRAM (docs/LOCKS.md)", want_start,
		 pid ? "it" : "one", launcher);
	fprintf(stderr, "# thothd: %s\n", ctl.client.remote_message);
	/* A client keeps 127 bytes of a reason (remote_message): the whole
	 * reason when it fits; past that (a deep build dir) the path's head
	 * gave way to "...", its tail and the docs' pointer whole (it ended
	 * mid-path, unmarked). */
	if (strlen(want) < sizeof ctl.client.remote_message) {
		assert_string_equal(ctl.client.remote_message, want);
	} else {
		static const char end[] = " -- PROGRAM (docs/LOCKS.md)";
		const char *m = ctl.client.remote_message, *dots = strstr(m, " as ...");
		assert_non_null(dots);
		assert_int_equal(strncmp(m, want, (size_t)(dots - m)), 0);
		assert_non_null(strstr(m, "/thothlock -- PROGRAM (docs/LOCKS.md)"));
		size_t tail = strlen(dots + 7) - strlen(end);
		assert_int_equal(strncmp(dots + 7, launcher + strlen(launcher) - tail, tail), 0);
	}
	thoth_control_close(&ctl);
	harness_teardown(&h);
}

static void test_no_tables_names_the_launcher_by_its_path(void **state)
{
	(void)state;
	report_no_tables(0, "no process publishes lock statistics");
}

static void test_no_tables_of_one_pid_names_the_launcher_by_its_path(void **state)
{
	(void)state;
	report_no_tables(1, "process 1 publishes no lock statistics");
}

/* The reason for a deep path (a CI workspace's build dir): at most 127
 * bytes, the path's head given way to "..." from a folder's boundary;
 * the launcher's path, or the library's where no launcher was found. */
static void test_no_tables_reason_of_a_deep_path_fits(void **state)
{
	(void)state;
	char deep[1024] = "", deep_bin[1024] = "", out[128];
	for (int i = 0; i < 12; i++)
		strcat(deep, "/workspace-segment");
	strcpy(deep_bin, deep);
	strcat(deep, "/build/tools/thothlock/libthothlock.so");
	strcat(deep_bin, "/build/tools/thothlock/thothlock");
	static const unsigned pids[] = { 0, 4000000000u };
	for (size_t i = 0; i < 2; i++) {
		unsigned pid = pids[i];
		thothlock_no_tables_reason(out, sizeof out, pid, deep, NULL);
		fprintf(stderr, "# %s\n", out);
		assert_true(strlen(out) <= 127);
		assert_non_null(strstr(out, "LD_PRELOAD=.../"));
		assert_non_null(strstr(out, "/thothlock/libthothlock.so (docs/LOCKS.md)"));
		assert_non_null(strstr(out, pid ? "process 4000000000 publishes" : "no process publishes"));
		thothlock_no_tables_reason(out, sizeof out, pid, deep, deep_bin);
		fprintf(stderr, "# %s\n", out);
		assert_true(strlen(out) <= 127);
		assert_non_null(strstr(out, " as .../"));
		assert_non_null(strstr(out, "/tools/thothlock/thothlock -- PROGRAM (docs/LOCKS.md)"));
		assert_null(strstr(out, "LD_PRELOAD"));
		assert_non_null(strstr(out, pid ? "process 4000000000 publishes" : "no process publishes"));
	}
	/* short ones whole */
	thothlock_no_tables_reason(out, sizeof out, 0, "/usr/lib/thoth/libthothlock.so", NULL);
	assert_string_equal(out, "no process publishes lock statistics; run one with "
			    "LD_PRELOAD=/usr/lib/thoth/libthothlock.so (docs/LOCKS.md)");
	thothlock_no_tables_reason(out, sizeof out, 0, "/usr/lib/thoth/libthothlock.so", "/usr/bin/thothlock");
	assert_string_equal(out, "no process publishes lock statistics; run one as "
			    "/usr/bin/thothlock -- PROGRAM (docs/LOCKS.md)");
}

/* The launcher: beside the running program (here the build's, by REL),
 * else on PATH; none anywhere: -1. */
static void test_launcher_is_found_beside_or_on_path(void **state)
{
	(void)state;
	char want[PATH_MAX], got[PATH_MAX], dir[PATH_MAX];
	assert_non_null(realpath(THOTHLOCK_BUILT_LAUNCHER, want));
	static const char *const built[] = { "../../tools/thothlock/thothlock", NULL };
	assert_int_equal(thothlock_find_launcher(built, got, sizeof got), 0);
	assert_string_equal(got, want);
	if (access(THOTHLOCK_INSTALLED_BIN, X_OK) == 0)
		skip_because("an install is there (%s): it is what is found next", THOTHLOCK_INSTALLED_BIN);
	static const char *const nowhere[] = { "no/such/thothlock", NULL };
	const char *old = getenv("PATH");
	char *saved = old ? strdup(old) : NULL;
	snprintf(dir, sizeof dir, "%s", want);
	*strrchr(dir, '/') = '\0';
	char path[PATH_MAX + 32];
	snprintf(path, sizeof path, "/nonexistent:%s", dir);
	setenv("PATH", path, 1);
	int found = thothlock_find_launcher(nowhere, got, sizeof got);
	setenv("PATH", "/nonexistent", 1);
	int none = thothlock_find_launcher(nowhere, got + 0, sizeof got);
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
	assert_int_equal(found, 0);
	assert_int_equal(none, -1);
	/* (the last lookup wrote nothing over the first's answer) */
	assert_string_equal(got, want);
}

static void test_no_library_found_says_so(void **state)
{
	(void)state;
	if (access(THOTHLOCK_INSTALLED_LIB, R_OK) == 0)
		skip_because("an install is there (%s): it is what is found", THOTHLOCK_INSTALLED_LIB);
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
		cmocka_unit_test(test_no_tables_names_the_launcher_by_its_path),
		cmocka_unit_test(test_no_tables_of_one_pid_names_the_launcher_by_its_path),
		cmocka_unit_test(test_no_tables_reason_of_a_deep_path_fits),
		cmocka_unit_test(test_no_library_found_says_so),
		cmocka_unit_test(test_launcher_is_found_beside_or_on_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
