/*
 * test_trace_usdt.c - every trace point is also a USDT probe (provider
 * "thoth") that perf and bpftrace can attach to: readelf -n on this very
 * binary must list the stapsdt notes the macros emitted.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/trace.h"

/* The probes under test; called so they are not optimised away. */
static void trace_points(uint64_t v)
{
	THOTH_TRACE(USER, usdt_generic, v, v + 1);
	THOTH_TRACE_MSG(IPC, usdt_message, THOTH_TRACE_RECV, 1, 2, 3, 4, 5,
	                THOTH_TRACE_INLINE, v);
}

/* The stapsdt notes of this executable, as readelf prints them. */
static char *read_notes(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "readelf -n '%s'", exe);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	static char out[1 << 20];
	size_t len = fread(out, 1, sizeof out - 1, p);
	out[len] = '\0';
	assert_int_equal(pclose(p), 0);
	return out;
}

/* The line after "Name: NAME" in the note for provider thoth. */
static const char *find_probe(const char *notes, const char *name)
{
	char want[128];
	snprintf(want, sizeof want, "Provider: thoth\n    Name: %s\n", name);
	return strstr(notes, want);
}

static void test_trace_points_are_usdt_probes_of_provider_thoth(void **state)
{
	trace_points(7);
	const char *notes = read_notes();
	assert_non_null(strstr(notes, "stapsdt"));
	assert_non_null(find_probe(notes, "usdt_generic"));
	assert_non_null(find_probe(notes, "usdt_message"));
	assert_null(find_probe(notes, "no_such_probe"));
}

static void test_usdt_probes_carry_their_arguments(void **state)
{
	const char *notes = read_notes();
	const char *generic = find_probe(notes, "usdt_generic");
	const char *message = find_probe(notes, "usdt_message");
	assert_non_null(generic);
	assert_non_null(message);
	/* "Arguments: 8@%rax 8@%rdx": count the size@location pairs. */
	int counts[2] = { 0, 0 };
	const char *probes[2] = { generic, message };
	for (int i = 0; i < 2; i++) {
		const char *args = strstr(probes[i], "Arguments:");
		assert_non_null(args);
		const char *eol = strchr(args, '\n');
		for (const char *c = args; c < eol; c++)
			counts[i] += *c == '@';
	}
	assert_int_equal(counts[0], 2);  /* arg0, arg1 */
	assert_int_equal(counts[1], 7);  /* service .. trace_id */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_points_are_usdt_probes_of_provider_thoth),
		cmocka_unit_test(test_usdt_probes_carry_their_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
