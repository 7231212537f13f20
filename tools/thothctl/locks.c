/*
 * thothctl locks - live lock contention of running processes (OBS-4).
 *
 *   thothctl [--runtime-dir DIR] [--json] locks [--pid PID] [--top N] [--verbose]
 *
 * A process profiled with libthothlock.so (LD_PRELOAD, no THOTHLOCK_DIR)
 * keeps its statistics table in a sealed memfd, "thothlock:PID", that it
 * updates in place, announced by the marker RUNTIME_DIR/locks/PID.table
 * (docs/LOCKS.md, "Where the tables are").  thothd reads the
 * tables of the processes alive now and answers with the report thothlock
 * prints at exit (LockReports, idl/locks.tidl), symbolized against each
 * process's live /proc/PID/maps; a report larger than a page comes in
 * pages of one snapshot.  Tables thothd refused (not a regular file, bad
 * header...) are listed on stderr with thothd's reason.
 *
 * When no thothd runs, thothctl says so on stderr and reads the tables
 * itself with the same code (kernel/thothd/locks_scan.c); the text report
 * then starts with a line saying so.  Reading costs the profiled process
 * nothing either way.
 *
 * --json prints the same document as `thothlock --json` (one object, a
 * `locks` array sorted by total wait): the dashboard's view.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockprof_find.h"
#include "locks.h"
#include "locks.thoth.h"
#include "thoth/error.h"
#include "thoth/service.h"
#include "thothctl.h"

static int locks_usage(FILE *out, int status)
{
	fprintf(out,
		"usage: thothctl [--runtime-dir DIR] [--json] locks [--pid PID] [--top N] [--verbose]\n"
		"\n"
		"Lock contention of the running processes profiled with libthothlock.so\n"
		"(LD_PRELOAD), per lock and call site, sorted by total wait, as thothd\n"
		"reads it (without thothd: read here, and said so).\n"
		"  --pid PID   only this process\n"
		"  --top N     the N locks with the most total wait\n"
		"  --verbose   text: list locks that never waited too\n");
	return status;
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

static void no_tables(long pid, const char *where)
{
	/* First thothlock, the supported way to profile a run: a program
	 * under it is listed in this live view while it runs (its preload
	 * publishes the table's marker here too) and reported at its exit,
	 * kept through a kill -9 of PROGRAM.  Where no launcher is found, the
	 * bare preload of the library by its full path (LD_PRELOAD=
	 * libthothlock.so is not found by ld.so: it lives in LIBDIR/thoth,
	 * off the loader's path, and says "cannot be preloaded: ignored"),
	 * seen here only.  thothd's dashboard and its NoTables reason say the
	 * same. */
	char lib[THOTHLOCK_HINT_MAX], launcher[PATH_MAX], what[64];
	if (pid)
		snprintf(what, sizeof what, "process %ld publishes no", pid);
	else
		snprintf(what, sizeof what, "no running process publishes");
	const char *run = pid ? "restart it" : "start it";
	if (thothd_lock_launcher(launcher, sizeof launcher))
		fprintf(stderr, "thothctl: locks: %s lock statistics in %s (to see %s here, %s with "
			"%s -- PROGRAM: listed here while it runs and reported at its exit, kept through a "
			"kill -9; docs/LOCKS.md)\n", what, where, pid ? "it" : "one", run, launcher);
	else
		fprintf(stderr, "thothctl: locks: %s lock statistics in %s (to see %s here, %s with "
			"LD_PRELOAD=%s PROGRAM; no thothlock launcher found; docs/LOCKS.md)\n", what, where,
			pid ? "it" : "one", run, thothd_lock_preload_hint(lib, sizeof lib));
}

/* No thothd: the same scan and report, here. */
static int locks_direct(const char *rt, long pid, const thothlock_report_opts_t *ropts)
{
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof dir, "%s/locks", rt);
	thothd_lock_scan_t *scan = malloc(sizeof *scan);
	if (!scan || thothd_lock_scan(dir, (int)pid, scan) != 0) {
		fprintf(stderr, "thothctl: locks: cannot read %s: %s\n", dir,
			scan ? strerror(errno) : "out of memory");
		free(scan);
		return 1;
	}
	int status = 0;
	for (size_t i = 0; i < scan->n_refused; i++) {
		if (scan->refused[i].file[0])
			fprintf(stderr, "thothctl: locks: %s/%s refused: %s\n", dir,
				peertext_textz(scan->refused[i].file), peertext_textz(scan->refused[i].why));
		else
			fprintf(stderr, "thothctl: locks: %s\n", peertext_textz(scan->refused[i].why));
		status = 1;
	}
	if (scan->n == 0) {
		if (!scan->n_refused)
			no_tables(pid, dir);
		free(scan);
		return 1;
	}
	if (!ropts->json)
		printf("(read directly from %s: thothd is not running)\n", dir);
	if (thothlock_report_write(stdout, scan->tables, scan->n, ropts) != 0) {
		fprintf(stderr, "thothctl: locks: cannot write the report\n");
		status = 1;
	}
	thothd_lock_scan_free(scan);
	free(scan);
	return status;
}

enum { LOCKS_CALL_MS = 120000 };


/* thothd's report on stdout.  JSON (--json) as it comes: JSON escapes its
 * strings.  Text: its lines as they are, the lock and file names in them
 * (chosen by the profiled processes) shown, never obeyed -- a control byte
 * other than tab and newline is \xNN (peertext_fput).  A UTF-8
 * sequence cut by a page's end is held for the next page (else its bytes
 * were each shown as \xNN).  Returns non-zero when stdout failed. */
typedef struct report_carry {
	bool json;
	unsigned char held[4];
	size_t n;
} report_carry_t;

static int put_report(report_carry_t *c, const uint8_t *p, size_t len, bool last)
{
	if (c->json)
		return fwrite(p, 1, len, stdout) != len;
	unsigned char *buf = malloc(c->n + len + 1);
	if (!buf)
		return 1;
	memcpy(buf, c->held, c->n);
	if (len)
		memcpy(buf + c->n, p, len);
	size_t all = c->n + len, cut = all;
	c->n = 0;
	if (!last) {
		c->n = peertext_cut_tail((const char *)buf, all);
		cut = all - c->n;
		memcpy(c->held, buf + cut, c->n);
	}
	peertext_fput(stdout, (const char *)buf, cut, PEERTEXT_TAB | PEERTEXT_LINES);
	free(buf);
	return ferror(stdout) != 0;
}
static int locks_thothd(thoth_control_t *ctl, long pid, const thothlock_report_opts_t *ropts)
{
	size_t cap = 2u << 20;
	void *scratch = malloc(cap);
	if (!scratch)
		return thothctl_call_failed(ctl, "locks", THOTH_E_NOMEM);
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, cap);
	thoth_locks_LockReports_report_req_t req = {
		.pid = (uint32_t)pid, .top = ropts->top, .json = ropts->json,
		.verbose = ropts->show_uncontended,
	};
	thoth_locks_LockReports_report_resp_t resp;
	/* A report takes thothd as long as the symbols it reads: a process's
	 * first is ~100 ms of CPU, a 201-lock one several times that, and a
	 * loaded machine stretched one past the connection's 5 s per call
	 * (test_locks_thothd: "locks: timed out" while thothd worked on).  A
	 * thothd that dies ends the call at once (its socket closes). */
	ctl->sock.timeout_ms = LOCKS_CALL_MS;
	int r = thoth_locks_LockReports_report(&ctl->client, &req, &resp, &arena);
	/* thothd's NoTables: said here, with the library's path (the branch
	 * compared the code with r itself, which is THOTH_E_REMOTE, and never
	 * ran: thothd's own words, a bare LD_PRELOAD=libthothlock.so, came) */
	if (r == THOTH_E_REMOTE && ctl->client.remote_code == THOTH_LOCKS_ERR_NO_TABLES) {
		no_tables(pid, "thothd's runtime directory");
		free(scratch);
		return 1;
	}
	if (r == THOTH_E_TIMEDOUT) {
		/* Alive but wedged or starved: say what is known, not a
		 * bare "timed out". */
		free(scratch);
		fprintf(stderr, "thothctl: locks: thothd did not answer in %d s; it may still be at it\n",
			LOCKS_CALL_MS / 1000);
		return 1;
	}
	if (r) {
		free(scratch);
		return thothctl_call_failed(ctl, "locks", r);
	}
	int status = 0;
	for (uint32_t i = 0; i < resp.refused.count; i++) {
		const thoth_locks_Refusal_t *x = &resp.refused.items[i];
		if (x->file.len)
			fprintf(stderr, "thothctl: locks: thothd refused locks/%s: %s\n",
				peertext_text(x->file.ptr, x->file.len), peertext_text(x->why.ptr, x->why.len));
		else
			fprintf(stderr, "thothctl: locks: %s\n", peertext_text(x->why.ptr, x->why.len));
		status = 1;
	}
	if (resp.processes == 0) {
		free(scratch);
		return 1;       /* only refused tables: said above */
	}
	uint64_t got = resp.text.len;
	report_carry_t carry = { .json = ropts->json };
	if (put_report(&carry, resp.text.ptr, resp.text.len, got >= resp.size))
		status = 1;
	while (got < resp.size && status == 0) {
		thoth_arena_init(&arena, scratch, cap);
		thoth_locks_LockReports_page_req_t preq = { .snapshot = resp.snapshot, .offset = got };
		thoth_locks_LockReports_page_resp_t page;
		r = thoth_locks_LockReports_page(&ctl->client, &preq, &page, &arena);
		if (r || page.text.len == 0) {
			status = thothctl_call_failed(ctl, "locks (next page)", r ? r : THOTH_E_PROTOCOL);
			break;
		}
		got += page.text.len;
		if (put_report(&carry, page.text.ptr, page.text.len, got >= resp.size))
			status = 1;
	}
	free(scratch);
	return status;
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
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value("locks", empty, NULL);
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
			return thothctl_usage_error("locks", opt == ':' ? "missing value for" : "unknown option",
						    thothctl_refused_word(argc, argv));
		}
	}
	if (optind < argc)
		return thothctl_usage_error("locks", "unexpected argument", argv[optind]);
	thoth_control_t ctl;
	int r = thoth_control_connect(&ctl, opts->runtime_dir, 5000);
	if (r == THOTH_E_NOT_RUNNING) {
		char rt[PATH_MAX];
		if (thoth_runtime_dir(opts->runtime_dir, rt, sizeof rt) != 0) {
			fprintf(stderr, "thothctl: locks: no runtime directory (set THOTH_RUNTIME_DIR)\n");
			return 1;
		}
		fprintf(stderr, "thothctl: locks: thothd is not running (no listener at %s): reading "
			"the tables directly\n", ctl.path);
		return locks_direct(rt, pid, &ropts);
	}
	if (r) {
		fprintf(stderr, "thothctl: locks: cannot reach thothd at %s: %s\n",
			ctl.path[0] ? ctl.path : "(runtime dir path too long)",
			ctl.why[0] ? ctl.why : thoth_strerror(r));
		return 1;
	}
	int status = locks_thothd(&ctl, pid, &ropts);
	thoth_control_close(&ctl);
	return status;
}
