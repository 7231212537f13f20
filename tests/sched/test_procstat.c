/*
 * test_procstat: the one /proc/PID/stat field reader (kernel/sched/procstat.h)
 * on real files and on hand-written ones whose command name holds spaces
 * and parentheses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "procstat.h"
#include "../common/tmpdir.h"

static char dir[256];

static const char *write_stat(const char *text)
{
	static char path[sizeof dir + 8];
	snprintf(path, sizeof path, "%s/stat", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_our_own_state_is_running_and_start_time_is_a_number(void **state)
{
	(void)state;
	char buf[1024];
	const char *st = thoth__proc_stat_field("/proc/self/stat", 3, buf, sizeof buf);
	assert_non_null(st);
	assert_string_equal(st, "R");           /* we are reading it */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)getpid());
	const char *start = thoth__proc_stat_field(path, 22, buf, sizeof buf);
	assert_non_null(start);
	assert_true(strtoull(start, NULL, 10) > 0);
	const char *cpu = thoth__proc_stat_field(path, 39, buf, sizeof buf);
	assert_non_null(cpu);
	assert_true(atoi(cpu) >= 0 && atoi(cpu) < 4096);
}

static void test_fields_are_counted_from_the_last_parenthesis(void **state)
{
	(void)state;
	char buf[512];
	const char *p = write_stat("4242 (a) b) S 1 (c) 7 8 9\n");
	/* The name is "a) b) S 1 (c": its last ')' ends it. */
	assert_string_equal(thoth__proc_stat_field(p, 3, buf, sizeof buf), "7");
	assert_string_equal(thoth__proc_stat_field(p, 5, buf, sizeof buf), "9");   /* no newline */
	assert_null(thoth__proc_stat_field(p, 6, buf, sizeof buf));                /* past the end */
}

static void test_what_cannot_be_read_is_unknown(void **state)
{
	(void)state;
	char buf[512];
	assert_null(thoth__proc_stat_field("/proc/0/stat", 3, buf, sizeof buf));   /* no such process */
	assert_null(thoth__proc_stat_field(write_stat(""), 3, buf, sizeof buf));
	assert_null(thoth__proc_stat_field(write_stat("12 no parenthesis R\n"), 3, buf, sizeof buf));
	assert_null(thoth__proc_stat_field(write_stat("12 (x)R 1\n"), 3, buf, sizeof buf));
	assert_null(thoth__proc_stat_field(write_stat("12 (x) R  1\n"), 4, buf, sizeof buf));  /* empty field */
	assert_null(thoth__proc_stat_field(write_stat("12 (x) R 1\n"), 2, buf, sizeof buf));   /* not after the name */
	/* A buffer too small for the whole line cuts it: never past CAP. */
	char tiny[8];
	assert_null(thoth__proc_stat_field(write_stat("12 (longname) R 1\n"), 3, tiny, sizeof tiny));
}

int main(void)
{
	test_tmp_template(dir, sizeof dir, "thoth-procstat");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_our_own_state_is_running_and_start_time_is_a_number),
		cmocka_unit_test(test_fields_are_counted_from_the_last_parenthesis),
		cmocka_unit_test(test_what_cannot_be_read_is_unknown),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	char path[300];
	snprintf(path, sizeof path, "%s/stat", dir);
	unlink(path);
	rmdir(dir);
	return r;
}
