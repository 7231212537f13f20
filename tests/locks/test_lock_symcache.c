/*
 * test_lock_symcache.c - the symbols thothd keeps across lock reports
 * (kernel/thothd/locks_scan.c thothd_lock_scan_cached, lockprof_report.c
 * thothlock_symbols_t; docs/LOCKS.md "Cost").
 *
 * A real process profiled with LD_PRELOAD=libthothlock.so in all mode
 * (live_workload: 3 contentions of live_lock, one on each of 20 heap
 * locks, then idle): a report through the cache is byte for byte the
 * report of a scan without it; a repeated report sets up no new libdw
 * session and looks no address up again (only cache hits), and is again
 * the same bytes (the reused copy of the table holds nothing of the last
 * read: all mode adds per-thread counters into it); new code mapped by
 * the process (dlopen) makes its entry stale and rebuilt; an entry limited
 * to 16 answers or 256 bytes of strings evicts and still gives the same report;
 * the entry is dropped once the process has exited.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../common/testutil.h"
#include "locks.h"
#include "pidpin.h"
#include "scan_report.h"
#include "../common/tmpdir.h"

static char dir[256];
static char locks_dir[256];
static pid_t child = -1;
static FILE *to_child, *from_child;

static void start_workload(void)
{
	int in[2], out[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		setenv("THOTH_RUNTIME_DIR", dir, 1);
		setenv("LD_PRELOAD", PRELOAD_LIB, 1);
		setenv("THOTHLOCK_MODE", "all", 1);
		unsetenv("THOTHLOCK_DIR");
		execl(WORKLOAD, WORKLOAD, "3", "20", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	to_child = fdopen(in[1], "w");
	from_child = fdopen(out[0], "r");
	char line[128];
	assert_non_null(fgets(line, sizeof line, from_child));
	assert_int_equal(strncmp(line, "ready ", 6), 0);
	assert_int_equal(atoi(line + 6), (int)child);
}

static void end_workload(void)
{
	fclose(to_child);
	int st;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	fclose(from_child);
	child = -1;
}

/* The JSON report of the workload's table through C (NULL: no cache). */
static char *report(thothd_lock_symcache_t *c)
{
	return scan_report_json(locks_dir, (int)child, c);
}

static thothd_lock_symcache_stats_t stats_of(const thothd_lock_symcache_t *c)
{
	thothd_lock_symcache_stats_t st;
	thothd_lock_symcache_stats(c, &st);
	return st;
}

static void assert_symbolized(const char *r)
{
	if (!strstr(r, "\"name\":\"live_lock\"") || !strstr(r, "\"function\":\"waiter\"") ||
	    !strstr(r, "live_workload.c:"))
		fail_msg("not symbolized: %.600s", r);
}

static void test_repeated_reports_reuse_symbols_and_match_a_fresh_scan(void **state)
{
	(void)state;
	start_workload();
	char *fresh = report(NULL);
	assert_symbolized(fresh);
	thothd_lock_symcache_t *c;
	assert_int_equal(thothd_lock_symcache_new(NULL, NULL, NULL, NULL, &c), 0);

	char *r1 = report(c);
	thothd_lock_symcache_stats_t s1 = stats_of(c);
	assert_string_equal(r1, fresh);
	assert_int_equal(s1.built, 1);
	assert_int_equal(s1.reused, 0);
	assert_int_equal(s1.processes, 1);
	assert_true(s1.misses > 20);            /* every site, frame and lock looked up once */

	char *r2 = report(c);
	thothd_lock_symcache_stats_t s2 = stats_of(c);
	assert_string_equal(r2, r1);            /* the reused copy: nothing of the last read left */
	assert_int_equal(s2.built, 1);
	assert_int_equal(s2.reused, 1);
	assert_int_equal(s2.misses, s1.misses); /* nothing looked up again */
	assert_true(s2.hits >= s1.misses);

	/* New code in the process: its symbols are rebuilt, the report still right. */
	fprintf(to_child, "dlopen %s\n", PLUGIN_LIB);
	fflush(to_child);
	char line[64];
	assert_non_null(fgets(line, sizeof line, from_child));
	assert_string_equal(line, "opened\n");
	char *r3 = report(c);
	thothd_lock_symcache_stats_t s3 = stats_of(c);
	assert_symbolized(r3);
	assert_int_equal(s3.stale, 1);
	assert_int_equal(s3.built, 2);
	assert_int_equal(s3.processes, 1);
	assert_true(s3.misses > s2.misses);

	end_workload();
	/* The process is gone: the next scan finds nothing and drops its entry. */
	thothd_lock_scan_t *s = malloc(sizeof *s);
	assert_int_equal(thothd_lock_scan_cached(locks_dir, 0, c, s), 0);
	assert_int_equal(s->n, 0);
	thothd_lock_scan_free(s);
	free(s);
	thothd_lock_symcache_stats_t s4 = stats_of(c);
	assert_int_equal(s4.processes, 0);
	assert_int_equal(s4.bytes, 0);
	thothd_lock_symcache_free(c);
	free(fresh);
	free(r1);
	free(r2);
	free(r3);
}

/* One table, symbolized through S; S's state before and after. */
static char *report_with(thothlock_symbols_t *s, thothlock_symbols_stats_t *during)
{
	thothlock_table_t *t;
	char why[512] = "";
	int fd = thothlock_open_live((int)child, why, sizeof why);
	if (fd < 0)
		fail_msg("no live table in %d: %s", (int)child, why);
	if (thothlock_table_load_fd(fd, "the child's table", s, &t, why, sizeof why) != 0)
		fail_msg("%s", why);
	close(fd);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	thothlock_report_opts_t opts = { .json = true };
	thothlock_table_t *const tables[1] = { t };
	assert_int_equal(thothlock_report_write(f, tables, 1, &opts), 0);
	fclose(f);
	thothlock_symbols_get_stats(s, during);
	thothlock_table_free(t);
	return buf;
}

static void test_a_small_entry_evicts_and_still_symbolizes(void **state)
{
	(void)state;
	start_workload();
	char *fresh = report(NULL);

	thothlock_symbols_t *few;
	assert_int_equal(thothlock_symbols_live((int)child, 16, 0, &few), 0);
	thothlock_symbols_stats_t st;
	char *r = report_with(few, &st);
	assert_string_equal(r, fresh);
	assert_true(st.entries <= 16);
	assert_true(st.evictions > 0);
	assert_true(st.misses > 16);
	free(r);
	thothlock_symbols_free(few);

	thothlock_symbols_t *small;
	assert_int_equal(thothlock_symbols_live((int)child, 4096, 256, &small), 0);
	thothlock_symbols_stats_t empty;
	thothlock_symbols_get_stats(small, &empty);
	r = report_with(small, &st);
	assert_string_equal(r, fresh);
	assert_true(st.bytes - empty.bytes <= 256);     /* the strings held */
	assert_true(st.evictions > 0);
	free(r);
	thothlock_symbols_free(small);

	end_workload();
	free(fresh);
}

static int setup(void **state)
{
	(void)state;
	test_tmp_template(dir, sizeof dir, "thoth-symcache");
	if (!mkdtemp(dir))
		return -1;
	snprintf(locks_dir, sizeof locks_dir, "%s/locks", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The process read by a scan exits after its maps were read and its code
 * symbolized, before the scan checks its pidfd (the hook: the race made
 * deterministic).  Its number may be another program's by then, whose
 * maps and code would have been taken for the table's: the table is not
 * reported, its symbols are not kept, and no pidfd is left open. */
static pid_t hooked;

static void end_during_scan(uint32_t pid)
{
	if ((pid_t)pid == child) {
		hooked = child;
		end_workload();
	}
}

static void test_a_process_that_exits_during_the_scan_is_not_reported(void **state)
{
	(void)state;
	thoth__pidpin_after_read = NULL;
	start_workload();
	thothd_lock_symcache_t *c;
	assert_int_equal(thothd_lock_symcache_new(NULL, NULL, NULL, NULL, &c), 0);
	thothd_lock_scan_t *s = malloc(sizeof *s);
	assert_non_null(s);
	int before = test_count_fds();
	int pid = (int)child;
	hooked = -1;
	thoth__pidpin_after_read = end_during_scan;
	int r = thothd_lock_scan_cached(locks_dir, pid, c, s);
	thoth__pidpin_after_read = NULL;
	assert_int_equal(r, 0);
	assert_int_equal(hooked, pid);
	assert_int_equal(s->n, 0);
	assert_int_equal(stats_of(c).processes, 0);
	assert_int_equal(test_count_fds(), before - 2);      /* the workload's two pipes, closed by the hook */
	thothd_lock_scan_free(s);
	free(s);
	thothd_lock_symcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeated_reports_reuse_symbols_and_match_a_fresh_scan),
		cmocka_unit_test(test_a_small_entry_evicts_and_still_symbolizes),
		cmocka_unit_test(test_a_process_that_exits_during_the_scan_is_not_reported),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
