/*
 * thothctl locks - live lock contention of running processes (OBS-4).
 *
 *   thothctl [--runtime-dir DIR] [--json] locks [--pid PID] [--top N] [--verbose]
 *
 * A process profiled with libthothlock.so (LD_PRELOAD, no THOTHLOCK_DIR)
 * publishes its statistics table in RUNTIME_DIR/locks/PID.table, a file it
 * keeps mapped and updates in place (docs/LOCKS.md).  This command reads
 * the tables of the processes alive now and prints the report thothlock
 * prints at exit, symbolized against each process's live /proc/PID/maps.
 * thothd is not involved: the file is the interface (as the trace buffer's
 * memfd is), and reading it costs the profiled process nothing.
 *
 * --json prints the same document as `thothlock --json` (one object, a
 * `locks` array sorted by total wait): the dashboard's view.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockprof_report.h"
#include "thoth/service.h"
#include "thothctl.h"

static int locks_usage(FILE *out, int status)
{
	fprintf(out,
		"usage: thothctl [--runtime-dir DIR] [--json] locks [--pid PID] [--top N] [--verbose]\n"
		"\n"
		"Lock contention of the running processes profiled with libthothlock.so\n"
		"(LD_PRELOAD), per lock and call site, sorted by total wait.\n"
		"  --pid PID   only this process\n"
		"  --top N     the N locks with the most total wait\n"
		"  --verbose   text: list locks that never waited too\n");
	return status;
}

/* The process maps its own table: a dead pid, or a reused one that is
 * another program, does not (the file is left behind by a crash). */
static bool maps_table(int pid, const char *table_path)
{
	char path[64], line[PATH_MAX + 256];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		size_t l = strlen(line), t = strlen(table_path);
		found = l >= t && strcmp(line + l - t, table_path) == 0;
	}
	fclose(f);
	return found;
}

static bool parse_positive(const char *s, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || !*s || v <= 0 || v > max)
		return false;
	*out = v;
	return true;
}

int thothctl_locks(int argc, char **argv, const thothctl_opts_t *opts)
{
	static const struct option options[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "top", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	thothlock_report_opts_t ropts = { .json = opts->json };
	long pid = 0, top = 0;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (!parse_positive(optarg, INT_MAX, &pid)) {
				fprintf(stderr, "thothctl: locks: --pid wants a process id, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (!parse_positive(optarg, 1000000, &top)) {
				fprintf(stderr, "thothctl: locks: --top wants a count from 1 to 1000000, not '%s'\n",
				        optarg);
				return 2;
			}
			ropts.top = (unsigned)top;
			break;
		case 'j': ropts.json = true; break;
		case 'v': ropts.show_uncontended = true; break;
		case 'h': return locks_usage(stdout, 0);
		default:
			fprintf(stderr, "thothctl: locks: %s %s\n",
			        opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return locks_usage(stderr, 2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "thothctl: locks: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	char rt[PATH_MAX], dir[PATH_MAX + 8];
	if (thoth_runtime_dir(opts->runtime_dir, rt, sizeof rt) != 0) {
		fprintf(stderr, "thothctl: locks: no runtime directory (set THOTH_RUNTIME_DIR)\n");
		return 1;
	}
	snprintf(dir, sizeof dir, "%s/locks", rt);

	thothlock_table_t *tables[256];
	size_t n = 0;
	int status = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d)) && n < sizeof tables / sizeof tables[0]) {
		char *end;
		long p = strtol(e->d_name, &end, 10);
		if (p <= 0 || strcmp(end, ".table") != 0 || (pid && p != pid))
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (!maps_table((int)p, path))
			continue;
		char why[PATH_MAX + 400];
		thothlock_table_t *t;
		if (thothlock_table_load(path, &t, why, sizeof why) != 0) {
			fprintf(stderr, "thothctl: locks: %s\n", why);
			status = 1;
			continue;
		}
		if (thothlock_table_pid(t) != (int)p) {
			thothlock_table_free(t);
			continue;
		}
		(void)thothlock_table_set_live_pid(t, (int)p);   /* gone meanwhile: raw addresses */
		tables[n++] = t;
	}
	if (d)
		closedir(d);
	if (n == 0) {
		if (pid)
			fprintf(stderr, "thothctl: locks: process %ld publishes no lock statistics in %s "
			        "(run it with LD_PRELOAD=libthothlock.so; docs/LOCKS.md)\n", pid, dir);
		else
			fprintf(stderr, "thothctl: locks: no running process publishes lock statistics in %s "
			        "(run one with LD_PRELOAD=libthothlock.so; docs/LOCKS.md)\n", dir);
		return 1;
	}
	if (thothlock_report_write(stdout, tables, n, &ropts) != 0) {
		fprintf(stderr, "thothctl: locks: cannot write the report\n");
		status = 1;
	}
	for (size_t i = 0; i < n; i++)
		thothlock_table_free(tables[i]);
	return status;
}
