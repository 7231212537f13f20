/* lock_report_dump.c - one table through the reader API (lockprof_report.h)
 * as the JSON report, for tests that read a table while its process runs
 * without going through thothctl or thothd.
 *
 *   lock_report_dump [--top N] TABLE [PID | MAPS]
 *
 * TABLE: a table file (what a process profiled with THOTHLOCK_DIR alone
 * copies there at exit), or live:PID, the live table of process PID (its
 * sealed memfd, found in /proc/PID/fd as thothd finds it).
 * PID: symbolize against the live process; MAPS: against the maps file the
 * preload saved for a process that is gone.  --top N: the N locks of
 * most wait only (as thothd's reports are asked for).
 *
 * Exit 0 with the report on stdout, 1 with the reader's refusal on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lockprof_report.h"

int main(int argc, char **argv)
{
	unsigned top = 0;
	if (argc >= 3 && strcmp(argv[1], "--top") == 0) {
		top = (unsigned)strtoul(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: lock_report_dump [--top N] TABLE [PID | MAPS]\n");
		return 2;
	}
	char why[512] = "";
	thothlock_table_t *t = NULL;
	int rc;
	if (strncmp(argv[1], "live:", 5) == 0) {
		int fd = thothlock_open_live(atoi(argv[1] + 5), why, sizeof why);
		if (fd < 0 && !why[0])
			snprintf(why, sizeof why, "%s: no table in that process", argv[1]);
		rc = fd < 0 ? fd : thothlock_table_load_fd(fd, argv[1], NULL, &t, why, sizeof why);
		if (fd >= 0)
			close(fd);
	} else {
		rc = thothlock_table_load(argv[1], &t, why, sizeof why);
	}
	if (rc != 0) {
		fprintf(stderr, "lock_report_dump: %s\n", why);
		return 1;
	}
	if (argc == 3 && argv[2][0] >= '0' && argv[2][0] <= '9')
		thothlock_table_set_live_pid(t, atoi(argv[2]));
	else if (argc == 3)
		thothlock_table_set_maps_file(t, argv[2]);
	thothlock_report_opts_t opts = { .json = true, .top = top, .show_uncontended = true };
	thothlock_table_t *const tables[1] = { t };
	rc = thothlock_report_write(stdout, tables, 1, &opts);
	thothlock_table_free(t);
	return rc == 0 ? 0 : 1;
}
