/* lockprof_report.h - read lock-profiler tables and write the report.
 *
 * Used by `thothlock` (after the profiled program exited: tables and saved
 * maps in its private directory) and `thothctl locks` (live: the tables in
 * the runtime dir's locks/, symbolized against /proc/PID/maps).  The table
 * format is lockprof_layout.h; the report formats are docs/LOCKS.md.
 */
#ifndef THOTH_LOCKPROF_REPORT_H
#define THOTH_LOCKPROF_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct thothlock_table thothlock_table_t;

/* Read the table at `path` into private memory and check it: magic,
 * version, sizes against the file.  `why` (may be NULL) receives the
 * reason of a refusal.  Returns 0 or a negative THOTH_E_* code. */
int thothlock_table_load(const char *path, thothlock_table_t **out, char *why, size_t why_len);
void thothlock_table_free(thothlock_table_t *table);
int thothlock_table_pid(const thothlock_table_t *table);
bool thothlock_table_exited(const thothlock_table_t *table);

/* How addresses become names: a saved /proc/PID/maps copy (the process is
 * gone) or a live pid's own maps.  Neither: raw addresses. */
int thothlock_table_set_maps_file(thothlock_table_t *table, const char *maps_path);
int thothlock_table_set_live_pid(thothlock_table_t *table, int pid);

typedef struct {
	bool json;
	unsigned top;          /* locks per report, 0 = all */
	bool show_uncontended; /* text: list locks that never waited too */
} thothlock_report_opts_t;

/* One report over several processes' tables (a forking program has one
 * table per process).  Text sorted by total wait, or the JSON document. */
int thothlock_report_write(FILE *out, thothlock_table_t *const *tables, size_t n,
                           const thothlock_report_opts_t *opts);

#endif
