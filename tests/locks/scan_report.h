/*
 * scan_report.h - the JSON report of one process's lock table as thothd
 * reads it (a cached scan, then thothlock_report_write), which
 * test_lock_symcache and test_lock_scan_hostile each wrote again.
 */
#ifndef THOTH_TESTS_LOCKS_SCAN_REPORT_H
#define THOTH_TESTS_LOCKS_SCAN_REPORT_H

#include <stdio.h>
#include <stdlib.h>

#include "locks.h"

/* Scan DIR for PID's table through cache C (NULL: none), fail the test
 * unless exactly that one table was read, and return its JSON report
 * (free it); the scan is freed and the cache trimmed, as thothd does
 * after a report. */
static inline char *scan_report_json(const char *dir, int pid, thothd_lock_symcache_t *c)
{
	thothd_lock_scan_t *s = malloc(sizeof *s);
	assert_non_null(s);
	assert_int_equal(thothd_lock_scan_cached(dir, pid, c, s), 0);
	if (s->n != 1)
		fail_msg("%zu tables read, %zu refused (%s)", s->n, s->refused_total,
			 s->n_refused ? s->refused[0].why : "");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	thothlock_report_opts_t opts = { .json = true };
	assert_int_equal(thothlock_report_write(f, s->tables, s->n, &opts), 0);
	fclose(f);
	thothd_lock_scan_free(s);
	free(s);
	if (c)
		thothd_lock_symcache_trim(c);
	return buf;
}

#endif
