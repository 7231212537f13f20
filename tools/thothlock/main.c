/*
 * thothlock - run a program under the lock contention profiler and report.
 *
 *   thothlock [--json] [--all [--hold-sample N]] [--top N] [--output FILE] [--verbose] -- PROGRAM [ARGS...]
 *
 * Runs PROGRAM with libthothlock.so preloaded (LD_PRELOAD) and the table
 * directory THOTHLOCK_DIR set to a private temporary directory; when
 * PROGRAM exits, reads each process's table (a forking program leaves one
 * per process) and its saved maps, and writes the report to stderr (or
 * --output FILE): text sorted by total wait, or JSON (docs/LOCKS.md).
 * SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to PROGRAM.
 *
 * Exit status: PROGRAM's (128 + signal if a signal ended it); 2 bad
 * arguments; 127 PROGRAM could not be run; 1 the report failed.
 *
 * The library: $THOTHLOCK_LIB, else libthothlock.so next to this program
 * (the build tree), else the installed tree's (thothlock_find_library).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockprof_find.h"
#include "lockprof_report.h"
#include "thoth/version.h"

static volatile sig_atomic_t child_pid;

static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

#define SEE_HELP "(thothlock --help lists the options)"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: thothlock [--json] [--all [--hold-sample N]] [--top N] [--output FILE] [--verbose]\n"
		"                 -- PROGRAM [ARGS...]\n"
		"\n"
		"Run PROGRAM with the lock profiler (libthothlock.so) preloaded and report\n"
		"pthread mutex / rwlock contention per lock and call site when it exits.\n"
		"\n"
		"  --json         the report as JSON (a `locks` array; docs/LOCKS.md)\n"
		"  --all          time every acquisition and hold (default: only contended ones)\n"
		"  --hold-sample N  with --all: time one hold in N (1 to 65536; default 1); hold\n"
		"                 totals become estimates, counts and waits stay exact\n"
		"  -t, --top N    the N locks with the most total wait\n"
		"  -o, --output FILE  write the report to FILE (default: stderr)\n"
		"  --verbose      text: list locks that never waited too\n"
		"  -h, --help     this text\n"
		"  --version      print the version\n"
		"\n"
		"Contention-only mode counts a thread's acquisitions one in 64 past its first\n"
		"4096 (marked estimated); THOTHLOCK_ACQ_SAMPLE=1 counts every one.\n");
}

static int find_library(char *out, size_t cap)
{
	const char *env = getenv("THOTHLOCK_LIB");
	if (env && *env) {
		if (access(env, R_OK) != 0) {
			fprintf(stderr, "thothlock: THOTHLOCK_LIB=%s: %s\n", env, strerror(errno));
			return -1;
		}
		snprintf(out, cap, "%s", env);
		return 0;
	}
	/* next to this program (the build tree), then its installed tree's */
	static const char *const beside[] = { "libthothlock.so", NULL };
	if (thothlock_find_library(beside, out, cap) == 0)
		return 0;
	fprintf(stderr, "thothlock: libthothlock.so not found (next to thothlock, at %s from it, "
	        "at %s, or in $THOTHLOCK_LIB)\n", THOTHLOCK_RELATIVE_LIB, THOTHLOCK_INSTALLED_LIB);
	return -1;
}

static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	size_t len = strlen(lib) + (old ? strlen(old) + 1 : 0) + 1;
	char *v = malloc(len);
	if (!v)
		return -1;
	snprintf(v, len, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "");
	int rc = setenv("LD_PRELOAD", v, 1);
	free(v);
	return rc;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Report every table the run left in `dir`, then remove the directory.
 * CHILD ended with WSTATUS at REAPED_NS: its table, if its exit path never
 * ran, is reported killed by that signal; every other process's (a forked
 * one) by what /proc says of it now (running, or died without its exit
 * path).  Both were reported "running", a SIGKILL's victims too. */
static int report(const char *dir, FILE *out, const thothlock_report_opts_t *opts, pid_t child,
		  int wstatus, uint64_t reaped_ns)
{
	int status = 0;
	thothlock_table_t *tables[256];
	size_t n = 0;
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "thothlock: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	struct dirent *e;
	char path[PATH_MAX];
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 7 || strcmp(e->d_name + l - 6, ".table") != 0)
			continue;
		if (n == sizeof tables / sizeof tables[0]) {
			fprintf(stderr, "thothlock: more than %zu processes: the rest are not reported\n", n);
			break;
		}
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		char why[PATH_MAX + 64];
		thothlock_table_t *t;
		if (thothlock_table_load(path, &t, why, sizeof why) != 0) {
			fprintf(stderr, "thothlock: %s\n", why);
			status = 1;
			continue;
		}
		snprintf(path, sizeof path, "%s/%.*s.maps", dir, (int)(l - 6), e->d_name);
		(void)thothlock_table_set_maps_file(t, path);   /* none: raw addresses */
		if (thothlock_table_pid(t) == child)
			thothlock_table_set_reaped(t, wstatus, reaped_ns);
		else
			thothlock_table_check_alive(t);
		tables[n++] = t;
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "thothlock: the program left no lock table (not dynamically linked, "
		        "or LD_PRELOAD was dropped)\n");
		status = 1;
	} else if (thothlock_report_write(out, tables, n, opts) != 0) {
		fprintf(stderr, "thothlock: cannot write the report\n");
		status = 1;
	}
	for (size_t i = 0; i < n; i++)
		thothlock_table_free(tables[i]);
	/* Remove what the run left: tables and maps. */
	d = opendir(dir);
	if (d) {
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(dir);
	return status;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "all", no_argument, NULL, 'a' },
		{ "hold-sample", required_argument, NULL, 's' },
		{ "top", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	thothlock_report_opts_t opts = { 0 };
	bool all = false;
	const char *output = NULL, *hold_sample = NULL;
	int opt;
	opterr = 0;
	/* '+': stop at the first non-option, PROGRAM's options are its own. */
	while ((opt = getopt_long(argc, argv, "+:o:t:h", options, NULL)) != -1) {
		switch (opt) {
		case 'j': opts.json = true; break;
		case 'a': all = true; break;
		case 'v': opts.show_uncontended = true; break;
		case 'o': output = optarg; break;
		case 's': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] < '0' || optarg[0] > '9' || v == 0 || v > 65536) {
				fprintf(stderr,
				        "thothlock: --hold-sample wants a count from 1 to 65536, not '%s'\n",
				        optarg);
				return 2;
			}
			hold_sample = optarg;
			break;
		}
		case 't': {
			char *end;
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno || *end || !*optarg || v == 0 || v > 1000000) {
				fprintf(stderr, "thothlock: --top wants a count from 1 to 1000000, not '%s'\n",
				        optarg);
				return 2;
			}
			opts.top = (unsigned)v;
			break;
		}
		case 'h': usage(stdout); return 0;
		case 'V': printf("thothlock %s\n", THOTH_VERSION_STRING); return 0;
		/* one line naming it and where the usage is, as thothd's and
		 * thothctl's (ops40): the 19-line usage followed it */
		default: {
			/* The refused option: argv[optind - 1] is its word for a
			 * long one, but getopt leaves optind on a word of short
			 * options until its last letter (`thothlock -xv` named
			 * thothlock itself); optopt is the letter then. */
			const char *w = argv[optind - 1];
			char letter[3] = { '-', (char)optopt, 0 };
			const char *at = optind < argc ? argv[optind] : "";
			if (optopt > 0 && (strncmp(w, "--", 2) != 0 ||
					   (at[0] == '-' && at[1] != '-' && strchr(at, optopt))))
				w = letter;
			fprintf(stderr, "thothlock: %s '%s' %s\n", opt == ':' ? "missing value for" : "unknown option",
				w, SEE_HELP);
			return 2;
		}
		}
	}
	if (hold_sample && !all) {
		fprintf(stderr, "thothlock: --hold-sample needs --all (contention-only mode times only "
		        "the holds that followed a wait)\n");
		return 2;
	}
	if (optind >= argc) {
		fprintf(stderr, "thothlock: no program to run %s\n", SEE_HELP);
		return 2;
	}
	FILE *out = stderr;
	if (output) {
		out = fopen(output, "we");
		if (!out) {
			fprintf(stderr, "thothlock: %s: %s\n", output, strerror(errno));
			return 1;
		}
	}
	char lib[PATH_MAX];
	if (find_library(lib, sizeof lib) != 0)
		return 1;
	/* tmpfs when there is one: the table is written all the time, and a
	 * disk-backed file would add writeback to the profiled run. */
	char dir[32] = "/dev/shm/thothlock.XXXXXX";
	bool made = mkdtemp(dir) != NULL;
	if (!made) {
		snprintf(dir, sizeof dir, "/tmp/thothlock.XXXXXX");
		made = mkdtemp(dir) != NULL;
	}
	if (!made) {
		fprintf(stderr, "thothlock: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (set_preload(lib) != 0 || setenv("THOTHLOCK_DIR", dir, 1) != 0 ||
	    setenv("THOTHLOCK_MODE", all ? "all" : "contention", 1) != 0 ||
	    (hold_sample && setenv("THOTHLOCK_HOLD_SAMPLE", hold_sample, 1) != 0)) {
		fprintf(stderr, "thothlock: setenv: %s\n", strerror(errno));
		rmdir(dir);
		return 1;
	}

	struct sigaction sa = { .sa_handler = forward };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaction(sigs[i], &sa, NULL);

	/* A close-on-exec pipe tells an exec that failed (the child writes its
	 * errno) from a program that ran and exited 127: after a failed exec
	 * there is no table to look for, and no "left no lock table" to say. */
	int exec_pipe[2];
	if (pipe2(exec_pipe, O_CLOEXEC) < 0)
		exec_pipe[0] = exec_pipe[1] = -1;
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "thothlock: fork: %s\n", strerror(errno));
		rmdir(dir);
		return 1;
	}
	if (pid == 0) {
		if (exec_pipe[0] >= 0)
			close(exec_pipe[0]);
		execvp(argv[optind], argv + optind);
		int e = errno;
		fprintf(stderr, "thothlock: %s: %s\n", argv[optind], strerror(e));
		if (exec_pipe[1] >= 0) {
			ssize_t w = write(exec_pipe[1], &e, sizeof e);
			(void)w;        /* unread: the parent reports anyway */
		}
		_exit(127);
	}
	if (exec_pipe[1] >= 0)
		close(exec_pipe[1]);
	child_pid = pid;
	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "thothlock: waitpid: %s\n", strerror(errno));
			break;
		}
	}
	uint64_t reaped_ns = monotonic_ns();
	int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
	           : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 1;
	int exec_errno = 0;
	bool exec_failed = exec_pipe[0] >= 0 &&
			   read(exec_pipe[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno;
	if (exec_pipe[0] >= 0)
		close(exec_pipe[0]);
	if (exec_failed) {              /* said by the child; nothing ran, nothing to report */
		rmdir(dir);
		if (out != stderr)
			fclose(out);
		return 127;
	}
	int rc = report(dir, out, &opts, pid, wstatus, reaped_ns);
	if (out != stderr && fclose(out) != 0) {
		fprintf(stderr, "thothlock: %s: %s\n", output, strerror(errno));
		rc = 1;
	}
	return code ? code : rc;
}
