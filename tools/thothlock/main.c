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
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockprof_find.h"
#include "lockprof_layout.h"
#include "lockprof_live.h"
#include "lockprof_report.h"
#include "pidpin.h"
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

/* The tables handed over by the profiled processes (each sends its sealed
 * memfd through the socket at THOTHLOCK_FD once its header is written),
 * one per sending pid: a process that execs another profiled program
 * hands over a second table, which replaces its first (the later start
 * time), as the rename of a file of the same name did.
 *
 * The socket is open in PROGRAM and everything it runs, so what arrives
 * is anybody's: a message is kept only if it brings exactly one
 * descriptor, a memfd whose size is sealed (checked by its seals before
 * anything else: nothing else is read, so nothing blocks), with a lock
 * table's header, from a sender the kernel names (SO_PASSCRED).  It is
 * kept under that pid, not its header's: a process in a pid namespace of
 * its own writes its pid there (1, say), and anything can write any pid
 * into a table it makes.  So a sender can only replace its own place
 * (whose table it writes anyway), never take another process's, and 256
 * senders' worth is the most that is kept.  The header's pid, where it
 * differs, is reported as the pid in the sender's namespace.  Everything
 * else is closed and counted. */
#define MAX_TABLES 256
/* Messages taken per call: a sender that never stops does not keep
 * thothlock from its child's end, nor from its report. */
#define MAX_RECEIVE 4096

typedef struct {
	int fd[MAX_TABLES];
	int pid[MAX_TABLES];     /* the sender's, as the kernel said */
	int own_pid[MAX_TABLES]; /* its header's: the sender's pid in its own namespace */
	unsigned long long dev[MAX_TABLES], ino[MAX_TABLES]; /* the memfd's: its maps' name */
	uint64_t start[MAX_TABLES];
	size_t n;
	size_t dropped;         /* tables of processes beyond MAX_TABLES */
	size_t refused;         /* messages that brought no acceptable table */
	char why[160];          /* the last refusal's reason */
} handed_t;

static void refuse_message(handed_t *h, const char *why)
{
	h->refused++;
	snprintf(h->why, sizeof h->why, "%s", why);
}

/* FD, sent by process SENDER (0: unknown), kept or closed. */
static void keep_table(handed_t *h, int fd, pid_t sender)
{
	char kind[64];
	thothlock_header_t hdr;
	struct stat st;
	int bad = thothlock_table_check_sealed(fd, kind, sizeof kind);
	if (!bad && fstat(fd, &st) != 0) {
		/* KIND is the check's word only where the check failed */
		snprintf(kind, sizeof kind, "fstat of the memfd: %s", strerror(errno));
		bad = -1;
	}
	if (bad) {
		refuse_message(h, kind);
		close(fd);
		return;
	}
	/* A sealed memfd: pread reads memory, never waits. */
	if (pread(fd, &hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr || hdr.magic != THOTHLOCK_MAGIC) {
		refuse_message(h, "a memfd without a lock table's header");
		close(fd);
		return;
	}
	if (sender <= 0) {
		refuse_message(h, "a table without its sender's credentials");
		close(fd);
		return;
	}
	/* An exec'd program's table starts later than its predecessor's; one
	 * of the same start (a copy) does not displace the first. */
	for (size_t i = 0; i < h->n; i++)
		if (h->pid[i] == sender) {
			if (hdr.start_ns > h->start[i]) {
				close(h->fd[i]);
				h->fd[i] = fd;
				h->own_pid[i] = hdr.pid;
				h->start[i] = hdr.start_ns;
				h->dev[i] = st.st_dev;
				h->ino[i] = st.st_ino;
			} else {
				close(fd);
			}
			return;
		}
	if (h->n == MAX_TABLES) {
		h->dropped++;
		close(fd);
		return;
	}
	h->fd[h->n] = fd;
	h->pid[h->n] = sender;
	h->own_pid[h->n] = hdr.pid;
	h->dev[h->n] = st.st_dev;
	h->ino[h->n] = st.st_ino;
	h->start[h->n++] = hdr.start_ns;
}

/* Take the tables waiting in SOCK (non-blocking), at most MAX_RECEIVE
 * messages. */
static void receive_tables(int sock, handed_t *h)
{
	for (int taken = 0; taken < MAX_RECEIVE; taken++) {
		char byte;
		struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
		/* Room for the sender's credentials and one descriptor: the
		 * kernel closes any more a message brings (MSG_CTRUNC). */
		union {
			struct cmsghdr c;
			char room[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
		} u;
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.room,
				    .msg_controllen = sizeof u.room };
		ssize_t r = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;
		pid_t sender = 0;
		int fds[2], got = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
				struct ucred cr;
				memcpy(&cr, CMSG_DATA(c), sizeof cr);
				sender = cr.pid;
			} else if (c->cmsg_type == SCM_RIGHTS) {
				size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < k; i++) {
					int fd;
					memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
					if (got < 2)
						fds[got++] = fd;
					else
						close(fd);
				}
			}
		}
		if (got == 1 && !(m.msg_flags & MSG_CTRUNC)) {
			keep_table(h, fds[0], sender);
			continue;
		}
		for (int i = 0; i < got; i++)
			close(fds[i]);
		refuse_message(h, got ? "a message with more than one descriptor"
				      : "a message without a descriptor");
	}
}

/* T with its saved maps MAPS (DIR/MAPS; none: raw addresses) and what
 * became of its process: CHILD's by its wait status, a forked one's by
 * /proc.  A handed-over table's maps are named by its memfd
 * (THOTHLOCK_MEMFD_MAPS_FMT), a copy's by its header's pid. */
static thothlock_table_t *what_became(thothlock_table_t *t, const char *maps, const char *dir,
				      pid_t child, int wstatus, uint64_t reaped_ns)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, maps);
	(void)thothlock_table_set_maps_file(t, path);
	if (thothlock_table_pid(t) == child)
		thothlock_table_set_reaped(t, wstatus, reaped_ns);
	else
		thothlock_table_check_alive(t);
	return t;
}

/* Report every table handed over, then remove DIR (the maps the
 * processes saved).  CHILD ended with WSTATUS at REAPED_NS: its table, if
 * its exit path never ran, is reported killed by that signal; every other
 * process's (a forked one) by what /proc says of it now (running, or died
 * without its exit path).  Both were reported "running", a SIGKILL's
 * victims too. */
static int report(const char *dir, handed_t *h, FILE *out, const thothlock_report_opts_t *opts,
		  pid_t child, int wstatus, uint64_t reaped_ns)
{
	int status = 0;
	thothlock_table_t *tables[MAX_TABLES];
	size_t n = 0;
	char path[PATH_MAX];
	if (h->dropped)
		fprintf(stderr, "thothlock: more than %d processes: %zu more tables not reported "
			"(one per program a process ran)\n", MAX_TABLES, h->dropped);
	if (h->refused)
		fprintf(stderr, "thothlock: %zu messages on thothlock's socket refused (the last: "
			"%s)\n", h->refused, h->why);
	for (size_t i = 0; i < h->n; i++) {
		char name[64], why[PATH_MAX + 64];
		snprintf(name, sizeof name, "the table handed over by pid %d", h->pid[i]);
		thothlock_table_t *t;
		int rc = thothlock_table_load_fd(h->fd[i], name, NULL, &t, why, sizeof why);
		close(h->fd[i]);
		if (rc != 0) {
			fprintf(stderr, "thothlock: %s\n", why);
			status = 1;
			continue;
		}
		thothlock_table_set_sender(t, h->pid[i]);
		char maps[96];
		snprintf(maps, sizeof maps, THOTHLOCK_MEMFD_MAPS_FMT, h->dev[i], h->ino[i]);
		tables[n++] = what_became(t, maps, dir, child, wstatus, reaped_ns);
	}
	/* Copies at exit (save_table in the preload) of the processes whose
	 * table did not reach the socket: one that closed THOTHLOCK_FD, say. */
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t unreported = 0;
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid <= 0 || strcmp(end, ".table") != 0)
			continue;
		bool have = false;
		for (size_t i = 0; i < h->n && !have; i++)
			have = h->pid[i] == pid;
		if (have)
			continue;
		if (n == MAX_TABLES) {
			unreported++;
			continue;
		}
		char why[PATH_MAX + 64];
		thothlock_table_t *t;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (thothlock_table_load(path, &t, why, sizeof why) != 0) {
			fprintf(stderr, "thothlock: %s\n", why);
			status = 1;
			continue;
		}
		char maps[32];
		snprintf(maps, sizeof maps, "%d.maps", thothlock_table_pid(t));
		tables[n++] = what_became(t, maps, dir, child, wstatus, reaped_ns);
	}
	if (d)
		closedir(d);
	if (unreported)
		fprintf(stderr, "thothlock: more than %d processes: %zu more tables (copies at exit) "
			"not reported\n", MAX_TABLES, unreported);
	h->n = 0;
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
	/* Remove what the run left: maps and copies. */
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

/* PID's marker in the live view, RUNTIME_DIR/locks/PID.table (the
 * preload makes it beside the hand-over, docs/LOCKS.md), removed while PID
 * is an unreaped zombie: no other process can have that pid yet, so the
 * marker is PROGRAM's (or an image's it exec'd).  One that ended without
 * its exit path (kill -9, or _exit: dash's way out) left it behind. */
static void remove_live_marker(pid_t pid)
{
	char rt[PATH_MAX], dir[PATH_MAX + 8], path[PATH_MAX + 32], why[PATH_MAX + 96];
	if (!thothlock_runtime_dir(rt, sizeof rt))
		return;
	/* Only in a directory the preload would have used: never unlink in
	 * another user's /tmp/thoth-UID (or through its locks/ symlink). */
	snprintf(dir, sizeof dir, "%s/locks", rt);
	if (!thothlock_dir_ours(rt, true, why, sizeof why) || !thothlock_dir_ours(dir, false, why, sizeof why))
		return;
	snprintf(path, sizeof path, "%s/%d.table", dir, (int)pid);
	(void)unlink(path);     /* ENOENT: its exit path removed it, or none was made */
}

/* The live markers PROGRAM's descendants left: one that ended by _exit
 * (dash's subshells, pipelines and $(...) all do) or was killed never ran
 * its exit path, and each thothlock run of a shell script left such files
 * in RUNTIME_DIR/locks for good.  Every process that handed a table over
 * and is gone now (ESRCH): its pid's marker is a leftover, removed.  One
 * alive (a daemon PROGRAM left running) keeps its own, removed at its
 * exit.  A pid reused between the check and the unlink by a new profiled
 * process would lose its marker (not listed live): a window of a syscall,
 * where thothd would otherwise keep skipping leftovers forever. */
static void remove_leftover_markers(const handed_t *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->pid[i] > 0 && kill(h->pid[i], 0) != 0 && errno == ESRCH)
			remove_live_marker(h->pid[i]);
}

/* Wait for PID, taking the tables handed over meanwhile: a program that
 * forks more processes than the socket queues (a few hundred) would see
 * its later hand-overs refused.  Woken by the pidfd; without pidfds,
 * every 50 ms. */
static int wait_child(pid_t pid, int sock, handed_t *h)
{
	int pidfd = thoth__pid_pin((uint32_t)pid);
	int wstatus = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
		(void)poll(p, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 50);
		receive_tables(sock, h);
		/* Ended: its live marker goes before it is reaped (WNOWAIT). */
		siginfo_t si = { .si_pid = 0 };
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
			remove_live_marker(pid);
		pid_t w = waitpid(pid, &wstatus, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			fprintf(stderr, "thothlock: waitpid: %s\n", strerror(errno));
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return wstatus;
}

/* Private folders are BASE/thothlock-XXXXXX, each flock()ed by its
 * thothlock for as long as it runs (the lock goes with its last
 * descriptor, also at a SIGKILL, which runs no exit path).  A folder
 * whose lock can be taken is a dead thothlock's: its maps and copies are
 * removed and so is it.  Only this uid's, only directories (never
 * followed), only this name (the old thothlock.XXXXXX, which held no
 * lock, may be a running old thothlock's: left alone). */
#define DIR_PREFIX "thothlock-"
static void reclaim_dead_dirs(const char *base)
{
	DIR *d = opendir(base);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, DIR_PREFIX, strlen(DIR_PREFIX)) != 0 ||
		    strlen(e->d_name) != strlen(DIR_PREFIX) + 6)
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		struct stat st;
		if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || flock(fd, LOCK_EX | LOCK_NB) != 0) {
			close(fd);
			continue;
		}
		DIR *in = fdopendir(dup(fd));
		if (in) {
			struct dirent *f;
			while ((f = readdir(in)))
				if (strcmp(f->d_name, ".") != 0 && strcmp(f->d_name, ".."))
					(void)unlinkat(fd, f->d_name, 0);
			closedir(in);
		}
		(void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		close(fd);
	}
	closedir(d);
}

/* BASE/thothlock-XXXXXX, made and locked before it has that name (a
 * hidden name first, renamed): no other thothlock's reclaim_dead_dirs can
 * take it for a dead one's between the mkdir and the lock.  The lock's
 * descriptor stays open (close-on-exec: PROGRAM has none) to the end. */
static bool make_private_dir(const char *base, char *dir, size_t cap)
{
	char hidden[64], name[64];
	snprintf(hidden, sizeof hidden, "%s/.%sXXXXXX", base, DIR_PREFIX);
	if (!mkdtemp(hidden))
		return false;
	int fd = open(hidden, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (fd >= 0)
			close(fd);
		rmdir(hidden);
		return false;
	}
	for (int tries = 0; tries < 100; tries++) {
		/* the name mkdtemp picks; the empty folder it makes is replaced */
		snprintf(name, sizeof name, "%s/%sXXXXXX", base, DIR_PREFIX);
		if (!mkdtemp(name))
			break;
		if (rename(hidden, name) == 0 && strlen(name) < cap) {
			snprintf(dir, cap, "%s", name);
			return true;            /* fd kept open: the lock */
		}
		rmdir(name);
	}
	close(fd);
	rmdir(hidden);
	return false;
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
	/* A thothlock killed by SIGKILL left its folder: the next one removes
	 * it (reclaim_dead_dirs). */
	reclaim_dead_dirs("/dev/shm");
	reclaim_dead_dirs("/tmp");
	char dir[64];
	bool made = make_private_dir("/dev/shm", dir, sizeof dir);
	if (!made)
		made = make_private_dir("/tmp", dir, sizeof dir);
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
	/* SIGCHLD ignored, inherited from whoever started us (exec keeps
	 * SIG_IGN): the kernel reaps PROGRAM itself, and waitpid() said "No
	 * child processes", PROGRAM's exit status lost (reported 0) and its
	 * live marker not removed.  Default here; PROGRAM gets it as given. */
	struct sigaction chld_dfl = { .sa_handler = SIG_DFL }, chld_given;
	sigemptyset(&chld_dfl.sa_mask);
	sigaction(SIGCHLD, &chld_dfl, &chld_given);

	/* A close-on-exec pipe tells an exec that failed (the child writes its
	 * errno) from a program that ran and exited 127: after a failed exec
	 * there is no table to look for, and no "left no lock table" to say. */
	int exec_pipe[2];
	if (pipe2(exec_pipe, O_CLOEXEC) < 0)
		exec_pipe[0] = exec_pipe[1] = -1;
	/* The socket the profiled processes hand their tables over by: its
	 * sending end is left open in PROGRAM (and whatever it forks or
	 * execs) at THOTHLOCK_FD. */
	int sv[2];
	char fdnum[48];
	struct stat sst;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) != 0) {
		fprintf(stderr, "thothlock: socketpair: %s\n", strerror(errno));
		rmdir(dir);
		return 1;
	}
	/* Who sent each message, said by the kernel (keep_table); FD:INODE:
	 * the preload sends only to this very socket (hand_over). */
	const char *failed = NULL;
	int on = 1;
	if (setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
		failed = "SO_PASSCRED";
	else if (fstat(sv[1], &sst) != 0)
		failed = "fstat of its socket";
	else {
		snprintf(fdnum, sizeof fdnum, "%d:%llu", sv[1], (unsigned long long)sst.st_ino);
		if (setenv("THOTHLOCK_FD", fdnum, 1) != 0)
			failed = "setenv THOTHLOCK_FD";
	}
	if (failed) {
		fprintf(stderr, "thothlock: %s: %s\n", failed, strerror(errno));
		close(sv[0]);
		close(sv[1]);
		rmdir(dir);
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "thothlock: fork: %s\n", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		rmdir(dir);
		return 1;
	}
	if (pid == 0) {
		if (exec_pipe[0] >= 0)
			close(exec_pipe[0]);
		close(sv[0]);
		(void)fcntl(sv[1], F_SETFD, 0);         /* inherited across the exec */
		sigaction(SIGCHLD, &chld_given, NULL);
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
	close(sv[1]);
	child_pid = pid;
	static handed_t handed;
	int wstatus = wait_child(pid, sv[0], &handed);
	uint64_t reaped_ns = monotonic_ns();
	receive_tables(sv[0], &handed);         /* the last ones, sent before it ended */
	close(sv[0]);
	remove_leftover_markers(&handed);
	int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
	           : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 1;
	int exec_errno = 0;
	bool exec_failed = exec_pipe[0] >= 0 &&
			   read(exec_pipe[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno;
	if (exec_pipe[0] >= 0)
		close(exec_pipe[0]);
	if (exec_failed) {              /* said by the child; nothing ran, nothing to report */
		for (size_t i = 0; i < handed.n; i++)
			close(handed.fd[i]);
		rmdir(dir);
		if (out != stderr)
			fclose(out);
		return 127;
	}
	int rc = report(dir, &handed, out, &opts, pid, wstatus, reaped_ns);
	if (out != stderr && fclose(out) != 0) {
		fprintf(stderr, "thothlock: %s: %s\n", output, strerror(errno));
		rc = 1;
	}
	return code ? code : rc;
}
