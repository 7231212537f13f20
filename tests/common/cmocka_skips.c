/*
 * cmocka_skips.c - a cmocka test whose every case skipped exits 77, which
 * ctest (SKIP_RETURN_CODE 77, thoth_add_test) shows as "Skipped" instead
 * of "Passed" (docs/TESTING.md "Honest stages (stop 43)").
 *
 * Linked into every thoth_add_test executable with -Wl,--wrap= on main,
 * _skip (what cmocka's skip() calls) and _cmocka_run_group_tests: the
 * wrappers count the cases run, skipped and failed; main's 0 becomes 77
 * only when cases ran, none failed and every one skipped.  Any other
 * status, a failure above all, is main's own: the rule never hides one.
 * (ctest's SKIP_REGULAR_EXPRESSION on cmocka's summary would: it wins
 * over a failing exit status, checked with CMake 3.25.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

int __real_main(int argc, char **argv, char **envp);
void __real__skip(const char *const file, const int line);
int __real__cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *const tests,
				   const size_t num_tests, CMFixtureFunction group_setup,
				   CMFixtureFunction group_teardown);

int __wrap_main(int argc, char **argv, char **envp);
void __wrap__skip(const char *const file, const int line);
int __wrap__cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *const tests,
				   const size_t num_tests, CMFixtureFunction group_setup,
				   CMFixtureFunction group_teardown);

static size_t cases_run, cases_skipped;
static long groups_failed;

void __wrap__skip(const char *const file, const int line)
{
	cases_skipped++;
	__real__skip(file, line);
}

int __wrap__cmocka_run_group_tests(const char *group_name, const struct CMUnitTest *const tests,
				   const size_t num_tests, CMFixtureFunction group_setup,
				   CMFixtureFunction group_teardown)
{
	int r = __real__cmocka_run_group_tests(group_name, tests, num_tests, group_setup, group_teardown);
	cases_run += num_tests;
	if (r != 0)
		groups_failed++;
	return r;
}

int __wrap_main(int argc, char **argv, char **envp)
{
	int r = __real_main(argc, argv, envp);
	if (r == 0 && groups_failed == 0 && cases_run > 0 && cases_skipped >= cases_run) {
		printf("[  SKIPPED ] every case of this test skipped (%zu): exit 77\n", cases_run);
		fflush(stdout);
		return 77;
	}
	return r;
}
