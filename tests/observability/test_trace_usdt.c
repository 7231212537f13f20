/*
 * test_trace_usdt.c - every trace point is also a USDT probe (provider
 * "thoth") that perf and bpftrace can attach to: readelf -n on this very
 * binary must list the stapsdt notes the macros emitted, and on thothd and
 * the echo service the probes of the integration (docs/OBSERVABILITY.md).
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

/* The stapsdt notes of the executable EXE (NULL: this one), as readelf
 * prints them. */
static char *read_notes_of(const char *path)
{
	char exe[PATH_MAX];
	if (path) {
		snprintf(exe, sizeof exe, "%s", path);
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
		assert_true(n > 0);
		exe[n] = '\0';
	}
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

static char *read_notes(void)
{
	return read_notes_of(NULL);
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

/* Arguments of the first note of NAME (count of size@location pairs). */
static int probe_arguments(const char *notes, const char *name)
{
	const char *p = find_probe(notes, name);
	if (!p)
		return -1;
	const char *args = strstr(p, "Arguments:");
	assert_non_null(args);
	int count = 0;
	for (const char *c = args; *c && *c != '\n'; c++)
		count += *c == '@';
	return count;
}

static void test_usdt_probes_carry_their_arguments(void **state)
{
	const char *notes = read_notes();
	assert_int_equal(probe_arguments(notes, "usdt_generic"), 2);  /* arg0, arg1 */
	assert_int_equal(probe_arguments(notes, "usdt_message"), 7);  /* service .. trace_id */
}

#ifdef THOTHD_PATH
/* The integration's probes (OBS-1) in the programs that run them. */
static void test_thothd_and_echo_carry_the_integration_probes(void **state)
{
	static const struct { const char *name; int args; } thothd_probes[] = {
		{ "msg_send", 7 }, { "msg_recv", 7 }, { "thothd_dispatch", 2 },
		{ "registry_register", 2 }, { "registry_resolve", 2 },
		{ "registry_withdraw", 2 }, { "registry_expire", 2 }, { "registry_drop", 2 },
		{ "loop_wakeup", 2 }, { "timer_fire", 2 },
	};
	const char *notes = read_notes_of(THOTHD_PATH);
	for (size_t i = 0; i < sizeof thothd_probes / sizeof thothd_probes[0]; i++) {
		int n = probe_arguments(notes, thothd_probes[i].name);
		if (n != thothd_probes[i].args)
			fprintf(stderr, "thothd: probe %s has %d arguments, want %d\n",
				thothd_probes[i].name, n, thothd_probes[i].args);
		assert_int_equal(n, thothd_probes[i].args);
	}
	/* A service gets the socket transport's and the loop's from libthoth. */
	notes = read_notes_of(ECHO_PATH);
	assert_int_equal(probe_arguments(notes, "msg_send"), 7);
	assert_int_equal(probe_arguments(notes, "msg_recv"), 7);
	assert_int_equal(probe_arguments(notes, "loop_wakeup"), 2);
	assert_int_equal(probe_arguments(notes, "timer_fire"), 2);
	assert_int_equal(probe_arguments(notes, "thothd_dispatch"), -1);
	/* echo serves on shared-memory channels: their probes carry the
	 * queueing delay as an eighth argument. */
	assert_int_equal(probe_arguments(notes, "chan_send"), 8);
	assert_int_equal(probe_arguments(notes, "chan_recv"), 8);
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_points_are_usdt_probes_of_provider_thoth),
		cmocka_unit_test(test_usdt_probes_carry_their_arguments),
#ifdef THOTHD_PATH
		cmocka_unit_test(test_thothd_and_echo_carry_the_integration_probes),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
