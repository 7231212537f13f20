/* locks_scan.c - which lock tables thothd (and thothctl's fallback) reads,
 * and the contention rings followed as trace events (locks.h).
 *
 * A profiled process keeps its table in a sealed memfd named
 * "thothlock:PID" and says so by an empty marker, locks/PID.table (docs/
 * LOCKS.md, "Where the tables are").  The marker only names a pid: the
 * table is found among that process's own descriptors (/proc/PID/fd,
 * thothlock_open_live), with PID pinned, and is anybody's to have written
 * into, so the reader (lockprof_report.c) checks its kind (a memfd whose
 * size is sealed, as large as its header says), every offset, and that
 * it holds at most MAX_DATA_BYTES of data (the reader copies the data
 * extents).  A marker that is not a regular file is refused by its kind
 * without being opened; one whose pid holds no such memfd is a leftover,
 * skipped.  Symbolization opens the files a process maps (libdw, by the
 * paths in /proc/PID/maps): a path that is no longer a regular file or a
 * character device (a FIFO put where a mapped library was) means no
 * symbols for that process, not a blocked thothd.
 */
#define _GNU_SOURCE
#include "locks.h"
#include "pidpin.h"
#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thoth/error.h"

/* A table holds ~95 MiB (format 3) of address space, mostly holes (lockprof_layout.h);
 * more data than this is not one the preload wrote. */
#define MAX_DATA_BYTES ((off_t)128 << 20)

const char *thothd_lock_preload_hint(char *out, size_t cap)
{
	/* A build's thothd (kernel/thothd) and thothctl (tools/thothctl) are
	 * both two folders below tools/thothlock, where the library is built;
	 * an installed tree's is found by THOTHLOCK_RELATIVE_LIB (sbin/ and
	 * bin/ are both beside lib/). */
	static const char *const built[] = { "../../tools/thothlock/libthothlock.so", NULL };
	return thothlock_preload_hint(built, out, cap);
}

const char *thothd_lock_launcher(char *out, size_t cap)
{
	/* the build's tools/thothlock/thothlock, as for the library */
	static const char *const built[] = { "../../tools/thothlock/thothlock", NULL };
	return thothlock_find_launcher(built, out, cap) == 0 ? out : NULL;
}

/* "PID.table" -> PID, else 0. */
static int table_name_pid(const char *name)
{
	char *end;
	errno = 0;
	long p = strtol(name, &end, 10);
	if (errno || name[0] < '1' || name[0] > '9' || p <= 0 || p > INT_MAX ||
	    strcmp(end, ".table") != 0)
		return 0;
	return (int)p;
}

static void refuse(thothd_lock_scan_t *s, int pid, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void refuse(thothd_lock_scan_t *s, int pid, const char *file, const char *fmt, ...)
{
	s->refused_total++;
	if (s->n_refused == THOTHD_LOCKS_MAX_REFUSED)
		return;
	thothd_lock_refusal_t *r = &s->refused[s->n_refused++];
	r->pid = pid;
	snprintf(r->file, sizeof r->file, "%s", file);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof r->why, fmt, ap);
	va_end(ap);
}

/* What one pass over /proc/PID/maps says: the first path symbolization
 * must not open (not a regular file or a character device now), in BAD;
 * and the identity of the code it maps (a hash of the executable file
 * mappings' lines: range, offset, device, inode, path). */
typedef struct {
	bool unsafe;
	uint64_t code_id;
} maps_view_t;

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static bool read_maps(int pid, maps_view_t *v, char *bad, size_t cap)
{
	char path[64], line[PATH_MAX + 256], last[PATH_MAX] = "";
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	*v = (maps_view_t){ .code_id = 0xcbf29ce484222325ull };
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		size_t l = strlen(line);
		char *p = strchr(line, '/');
		if (!p)
			continue;       /* anonymous */
		/* "start-end perms ...": the third character of perms is x. */
		char *perms = strchr(line, ' ');
		if (perms && perms < p && perms[1] && perms[2] && perms[3] == 'x')
			v->code_id = fnv1a(v->code_id, line, l) * 31 + 1;
		if (v->unsafe || strstr(p, " (deleted)") || strcmp(p, last) == 0)
			continue;       /* read from /proc/PID/mem by libdw, or checked just now */
		snprintf(last, sizeof last, "%s", p);
		struct stat st;
		if (stat(p, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
			snprintf(bad, cap, "%s", p);
			v->unsafe = true;
		}
	}
	fclose(f);
	return true;
}

/* The process's start time (clock ticks since boot, /proc/PID/stat field
 * 22): with the pid, which process it is.  0: gone. */
static uint64_t start_time(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	const char *f = thoth__proc_stat_field(path, 22, buf, sizeof buf);
	return f ? strtoull(f, NULL, 10) : 0;
}

/* ---- dead markers ------------------------------------------------------------------------
 * A profiled process removes its marker at exit; one killed (kill -9, a
 * crash) or ended by _exit cannot, and its marker stayed for ever (21 in
 * /tmp/thoth-0/locks after stop 44's test runs).  thothd removes them
 * (thothd_lock_prune, locks.h), never a live process's:
 *
 * - PID gone (ESRCH): the marker is a dead process's.
 * - PID runs, started (boot-relative start time, /proc/PID/stat field 22,
 *   as wall-clock time) more than PRUNE_SLACK_S after the marker was made
 *   (its mtime; the maker made it after it started) AND holds no
 *   thothlock:PID memfd: the pid is reused.  Both: a wall clock stepped
 *   forward makes a live process look started late, but a live maker
 *   keeps its memfd open (close-on-exec: an exec'd image without the
 *   preload keeps the marker too, as its start time is the maker's).
 *   Anything else (the pid's /proc unreadable, another user's) is kept.
 * - Removal: the marker is renamed to a private name first and removed
 *   only if it is the file that was judged (same inode); a new marker
 *   renamed in by a new process of that pid meanwhile is put back.
 * - Not a regular file (a symlink, a FIFO, a directory under a marker's
 *   name): never followed, never removed: named.
 */
#define PRUNE_SLACK_S 2

static _Atomic uint64_t markers_pruned;
static const char *file_kind(mode_t m);

uint64_t thothd_lock_markers_pruned(void)
{
	return atomic_load(&markers_pruned);
}

/* "PID.table" or "PID.table.new" (a process killed between making its
 * marker and renaming it) -> PID, else 0. */
static int marker_name_pid(const char *name)
{
	char buf[64];
	size_t n = strlen(name);
	if (n > 4 && n < sizeof buf && strcmp(name + n - 4, ".new") == 0) {
		memcpy(buf, name, n - 4);
		buf[n - 4] = 0;
		return table_name_pid(buf);
	}
	return table_name_pid(name);
}

/* When PID started, as CLOCK_REALTIME seconds; false: gone or unreadable. */
static bool started_at(int pid, double *out)
{
	uint64_t ticks = start_time(pid);
	long hz = sysconf(_SC_CLK_TCK);
	struct timespec real, boot;
	if (!ticks || hz <= 0 || clock_gettime(CLOCK_REALTIME, &real) != 0 ||
	    clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
		return false;
	*out = (double)real.tv_sec + real.tv_nsec / 1e9 - ((double)boot.tv_sec + boot.tv_nsec / 1e9) +
	       (double)ticks / (double)hz;
	return true;
}

/* Whether the marker (ST) of PID is a dead process's; WHY says how. */
static bool marker_dead(int pid, const struct stat *st, char *why, size_t cap)
{
	int pidfd = thoth__pid_pin((uint32_t)pid);
	/* no pidfds (ENOSYS): kill(0) says whether PID exists */
	if (pidfd < 0 && (errno == ESRCH || (kill(pid, 0) != 0 && errno == ESRCH))) {
		snprintf(why, cap, "process %d is gone", pid);
		return true;
	}
	bool dead = false;
	double start;
	if (started_at(pid, &start) &&
	    start > (double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9 + PRUNE_SLACK_S) {
		char w[PATH_MAX + 200];
		int fd = thothlock_open_live(pid, w, sizeof w);
		if (fd >= 0)
			close(fd);
		if (fd == THOTH_E_NOT_FOUND && thoth__pid_lived_through((uint32_t)pid, pidfd)) {
			snprintf(why, cap, "pid %d is now another process's (started %.0f s after the "
				 "marker was made, no table)", pid,
				 start - ((double)st->st_mtim.tv_sec + st->st_mtim.tv_nsec / 1e9));
			dead = true;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return dead;
}

int thothd_lock_prune(const char *locks_dir, thothd_lock_prune_say_fn say, void *ctx)
{
	DIR *d = opendir(locks_dir);
	if (!d)
		return errno == ENOENT ? 0 : THOTH_E_IO;
	int pruned = 0;
	struct dirent *e;
	char line[PATH_MAX + 600], why[400];
	while ((e = readdir(d))) {
		int pid = marker_name_pid(e->d_name);
		if (!pid)
			continue;
		struct stat st, now;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;       /* removed meanwhile */
		if (!S_ISREG(st.st_mode)) {
			if (say) {
				snprintf(line, sizeof line, "%s/%s: %s, not a marker: not followed, not removed",
					 locks_dir, e->d_name, file_kind(st.st_mode));
				say(ctx, true, line);
			}
			continue;
		}
		if (!marker_dead(pid, &st, why, sizeof why))
			continue;
		/* Taken aside, then removed only if it is the file judged. */
		char aside[96];
		snprintf(aside, sizeof aside, ".pruning.%d.%d", (int)getpid(), pid);
		if (renameat(dirfd(d), e->d_name, dirfd(d), aside) != 0)
			continue;       /* gone meanwhile (its process's exit, thothlock) */
		if (fstatat(dirfd(d), aside, &now, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
			/* A new marker of that pid came in meanwhile: put it back,
			 * unless an even newer one is there (which wins, as a later
			 * marker of a pid always replaces the earlier). */
			if (renameat2(dirfd(d), aside, dirfd(d), e->d_name, RENAME_NOREPLACE) != 0)
				(void)unlinkat(dirfd(d), aside, 0);
			continue;
		}
		if (unlinkat(dirfd(d), aside, 0) != 0)
			continue;
		pruned++;
		atomic_fetch_add(&markers_pruned, 1);
		if (say) {
			snprintf(line, sizeof line, "%s/%s: %s", locks_dir, e->d_name, why);
			say(ctx, false, line);
		}
	}
	closedir(d);
	return pruned;
}

/* ---- the symbol cache ------------------------------------------------------------------ */

typedef struct {
	int pid;                        /* 0 = free */
	uint64_t start;                 /* start_time(pid) when built */
	uint64_t code_id;               /* maps_view_t.code_id when built */
	uint64_t used;                  /* the scan that last lent it */
	thothlock_symbols_t *syms;
	void *watch;
} symproc_t;

struct thothd_lock_symcache {
	symproc_t procs[THOTHD_LOCKS_SYMCACHE_PROCS];
	uint64_t scans;
	thothd_lock_watch_fn watch;
	thothd_lock_unwatch_fn unwatch;
	void *ctx;
	thothd_lock_symcache_stats_t st;
	uint64_t hits_gone, misses_gone;        /* of dropped processes, for the stats */
	thothd_lock_symcache_limits_t lim;
};

int thothd_lock_symcache_new(const thothd_lock_symcache_limits_t *limits, thothd_lock_watch_fn watch,
			     thothd_lock_unwatch_fn unwatch, void *ctx, thothd_lock_symcache_t **out)
{
	thothd_lock_symcache_t *c = calloc(1, sizeof *c);
	if (!c)
		return THOTH_E_NOMEM;
	if (limits)
		c->lim = *limits;
	if (!c->lim.processes || c->lim.processes > THOTHD_LOCKS_SYMCACHE_PROCS)
		c->lim.processes = THOTHD_LOCKS_SYMCACHE_PROCS;
	if (!c->lim.entries)
		c->lim.entries = THOTHD_LOCKS_SYM_ENTRIES;
	if (!c->lim.bytes)
		c->lim.bytes = THOTHD_LOCKS_SYM_BYTES;
	if (!c->lim.total_bytes)
		c->lim.total_bytes = THOTHD_LOCKS_SYMCACHE_BYTES;
	c->watch = watch;
	c->unwatch = unwatch;
	c->ctx = ctx;
	*out = c;
	return 0;
}

static void proc_drop(thothd_lock_symcache_t *c, symproc_t *p)
{
	if (!p->pid)
		return;
	thothlock_symbols_stats_t ss;
	thothlock_symbols_get_stats(p->syms, &ss);
	c->hits_gone += ss.hits;
	c->misses_gone += ss.misses;
	if (p->watch && c->unwatch)
		c->unwatch(p->watch, c->ctx);
	thothlock_symbols_free(p->syms);
	*p = (symproc_t){ 0 };
	c->st.dropped++;
}

void thothd_lock_symcache_free(thothd_lock_symcache_t *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->lim.processes; i++)
		proc_drop(c, &c->procs[i]);
	free(c);
}

void thothd_lock_symcache_exited(thothd_lock_symcache_t *c, int pid)
{
	for (size_t i = 0; i < c->lim.processes; i++)
		if (c->procs[i].pid == pid)
			proc_drop(c, &c->procs[i]);
}

void thothd_lock_symcache_trim(thothd_lock_symcache_t *c)
{
	for (;;) {
		size_t total = 0;
		symproc_t *lru = NULL;
		for (size_t i = 0; i < c->lim.processes; i++) {
			symproc_t *p = &c->procs[i];
			if (!p->pid)
				continue;
			total += thothlock_symbols_bytes(p->syms);
			if (!lru || p->used < lru->used)
				lru = p;
		}
		if (total <= c->lim.total_bytes || !lru)
			return;
		proc_drop(c, lru);
	}
}

void thothd_lock_symcache_stats(const thothd_lock_symcache_t *c, thothd_lock_symcache_stats_t *out)
{
	*out = c->st;
	out->hits = c->hits_gone;
	out->misses = c->misses_gone;
	for (size_t i = 0; i < c->lim.processes; i++) {
		const symproc_t *p = &c->procs[i];
		if (!p->pid)
			continue;
		thothlock_symbols_stats_t ss;
		thothlock_symbols_get_stats(p->syms, &ss);
		out->processes++;
		out->bytes += ss.bytes;
		out->hits += ss.hits;
		out->misses += ss.misses;
	}
}

/* PID's symbols for this scan: the cached ones while the process and its
 * code are the same, else a new libdw session in the least recently used
 * slot (never one lent earlier in this scan).  NULL: none (gone, or no
 * memory): the table prints raw addresses. */
static thothlock_symbols_t *symcache_get(thothd_lock_symcache_t *c, int pid, uint64_t code_id,
					 bool build)
{
	uint64_t start = start_time(pid);
	if (!start)
		return NULL;
	symproc_t *slot = NULL;
	for (size_t i = 0; i < c->lim.processes; i++) {
		symproc_t *p = &c->procs[i];
		if (p->pid != pid)
			continue;
		if (p->start == start && p->code_id == code_id) {
			p->used = c->scans;
			c->st.reused++;
			return p->syms;
		}
		proc_drop(c, p);        /* the pid is another process now, or it execs/dlopened */
		c->st.stale++;
		slot = p;
	}
	if (!build)
		return NULL;
	for (size_t i = 0; i < c->lim.processes && !slot; i++)
		if (!c->procs[i].pid)
			slot = &c->procs[i];
	for (size_t i = 0; i < c->lim.processes && !slot; i++) {
		symproc_t *p = &c->procs[i];
		if (p->used != c->scans && (!slot || p->used < slot->used))
			slot = p;
	}
	if (!slot)
		return NULL;
	proc_drop(c, slot);
	thothlock_symbols_t *syms;
	if (thothlock_symbols_live(pid, c->lim.entries, c->lim.bytes, &syms))
		return NULL;
	c->st.built++;
	*slot = (symproc_t){ .pid = pid, .start = start, .code_id = code_id, .used = c->scans,
			     .syms = syms, .watch = c->watch ? c->watch(pid, c->ctx) : NULL };
	return syms;
}

/* Entries whose process is gone or is another one now (no watch, or it
 * has not fired yet). */
static void symcache_prune(thothd_lock_symcache_t *c)
{
	for (size_t i = 0; i < c->lim.processes; i++) {
		symproc_t *p = &c->procs[i];
		if (p->pid && start_time(p->pid) != p->start)
			proc_drop(c, p);
	}
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a directory"
	       : S_ISLNK(m) ? "a symbolic link" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
								  : "not a regular file";
}

int thothd_lock_scan(const char *locks_dir, int want_pid, thothd_lock_scan_t *s)
{
	return thothd_lock_scan_cached(locks_dir, want_pid, NULL, s);
}

int thothd_lock_scan_cached(const char *locks_dir, int want_pid, thothd_lock_symcache_t *c,
			    thothd_lock_scan_t *s)
{
	memset(s, 0, sizeof *s);
	if (c) {
		c->scans++;
		symcache_prune(c);
	}
	DIR *d = opendir(locks_dir);
	if (!d)
		return errno == ENOENT ? 0 : THOTH_E_IO;        /* nobody profiled yet: none */
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid = table_name_pid(e->d_name);
		if (!pid || (want_pid > 0 && pid != want_pid))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;       /* removed meanwhile: its process exited */
		if (!S_ISREG(st.st_mode)) {
			refuse(s, pid, e->d_name, "%s, not a lock table", file_kind(st.st_mode));
			continue;
		}
		/* PID (the marker's name) pinned from its descriptors and maps
		 * to its symbols (pidpin.h): a process that exits meanwhile may
		 * leave its number to another program, whose maps and code
		 * would be taken for the table's.  Gone already: its marker is
		 * a leftover.  No pidfds here: unpinned (the start time still
		 * tells a reuse). */
		int pidfd = thoth__pid_pin((uint32_t)pid);
		if (pidfd < 0 && errno == ESRCH)
			continue;
		char why[PATH_MAX + 400];
		int fd = thothlock_open_live(pid, why, sizeof why);
		if (fd == THOTH_E_NOT_FOUND)
			goto next;      /* no table in that process: a leftover marker */
		if (fd < 0) {
			refuse(s, pid, e->d_name, "%s", why);
			goto next;
		}
		struct stat fst;
		if (fstat(fd, &fst) == 0 && (off_t)fst.st_blocks * 512 > MAX_DATA_BYTES) {
			refuse(s, pid, e->d_name, "holds %lld MiB of data, over the %lld MiB a table may",
			       (long long)fst.st_blocks / 2048, (long long)(MAX_DATA_BYTES >> 20));
			goto next;
		}
		maps_view_t mv;
		char bad[PATH_MAX];
		if (!read_maps(pid, &mv, bad, sizeof bad))
			goto next;
		if (s->n == THOTHD_LOCKS_MAX_TABLES) {
			s->over++;
			goto next;
		}
		thothlock_table_t *t;
		/* With the cache: this process's symbols, and the copy of its table
		 * from the last report to read into (new ones are set up below, once
		 * the table passed the reader's checks). */
		thothlock_symbols_t *syms = c && !mv.unsafe ? symcache_get(c, pid, mv.code_id, false)
							    : NULL;
		if (thothlock_table_load_fd(fd, e->d_name, syms, &t, why, sizeof why) != 0) {
			/* The reader's reason starts with the name: keep what follows. */
			size_t nl = strlen(e->d_name);
			const char *w = strncmp(why, e->d_name, nl) == 0 ? why + nl : why;
			refuse(s, pid, e->d_name, "%s", w[0] == ':' ? w + 2 : w);
			goto next;
		}
		if (thothlock_table_pid(t) != pid) {
			refuse(s, pid, e->d_name, "the table says it is process %d's",
			       thothlock_table_pid(t));
			thothlock_table_free(t);
			goto next;
		}
		if (thothlock_table_exited(t)) {
			thothlock_table_free(t);
			goto next;
		}
		if (mv.unsafe)
			refuse(s, pid, e->d_name, "not symbolized: the process maps %s, now not a "
			       "regular file", bad);
		else if (c && !syms)
			thothlock_table_use_symbols(t, symcache_get(c, pid, mv.code_id, true));
		else if (!c)
			(void)thothlock_table_set_live_pid(t, pid);   /* gone meanwhile: raw addresses */
		if (!thoth__pid_lived_through((uint32_t)pid, pidfd)) {
			/* Exited during the scan: like a table whose process has
			 * exited, not reported (its symbols may be another
			 * program's, and so may the cached ones). */
			if (c)
				thothd_lock_symcache_exited(c, pid);
			thothlock_table_free(t);
			goto next;
		}
		s->tables[s->n++] = t;
next:
		if (fd >= 0)
			close(fd);
		if (pidfd >= 0)
			close(pidfd);
	}
	closedir(d);
	if (s->over) {
		if (s->n_refused == THOTHD_LOCKS_MAX_REFUSED)
			s->n_refused--;         /* this one is kept: it says the report is partial */
		refuse(s, 0, "", "%zu more profiled process%s not read: at most %d per report "
		       "(ask for one with its pid)", s->over, s->over == 1 ? "" : "es",
		       THOTHD_LOCKS_MAX_TABLES);
	}
	return 0;
}

void thothd_lock_scan_free(thothd_lock_scan_t *s)
{
	for (size_t i = 0; i < s->n; i++)
		thothlock_table_free(s->tables[i]);
	s->n = 0;
}

/* ---- contention rings ------------------------------------------------------------------ */

typedef struct ring_pos {
	int pid;                        /* 0 = free */
	uint64_t table_start_ns;        /* with pid, the process's identity */
	uint64_t next;                  /* the next event number to read */
	uint64_t seen;                  /* the poll that last saw it */
	char name[32];                  /* /proc/PID/comm: most are not thoth programs */
	/* The table's memfd, kept from poll to poll with the pidfd that
	 * pinned PID when it was found, and the marker's inode then: listing
	 * /proc/PID/fd and reading its links for every process at every poll
	 * was ~75 % of a poll's CPU (bench/locks/locks_scan_cost: 40 us per
	 * process).  Dropped when the pidfd says the process ended (its
	 * number may be another's now), when the marker was made anew (an
	 * exec'd program's table), or when a poll no longer sees the marker.
	 * Nothing else is re-checked that can't change: the size is sealed and
	 * seals cannot be removed; the header is read at every poll anyway. */
	bool kept;                      /* fd and pidfd below are open */
	int fd, pidfd;
	uint64_t marker_ino;
} ring_pos_t;

struct thothd_lock_rings {
	ring_pos_t pos[THOTHD_LOCKS_MAX_RINGS];
	uint64_t polls;
	uint32_t last_files;            /* the last poll's: rings read */
	uint64_t last_waits;            /* and waits handed out */
	uint64_t unfollowed;            /* rings seen beyond THOTHD_LOCKS_MAX_RINGS, every poll */
	uint64_t unkept;                /* followed rings read afresh: no descriptors left to keep */
	uint32_t kept_fds;              /* descriptors this follower keeps now */
};

/* The kept descriptors of every follower of the process (thothd has two:
 * the trace sessions' and the dashboard's, on different threads), and
 * their budget (locks.h). */
static _Atomic uint32_t kept_budget = THOTHD_LOCKS_KEPT_FDS_MAX, kept_all;

void thothd_lock_rings_fd_budget(uint32_t fds)
{
	atomic_store(&kept_budget, fds < THOTHD_LOCKS_KEPT_FDS_MAX ? fds : THOTHD_LOCKS_KEPT_FDS_MAX);
}

/* Two more kept descriptors (a memfd and its pidfd), if the budget has them. */
static bool kept_take(thothd_lock_rings_t *r)
{
	uint32_t cur = atomic_load(&kept_all);
	do {
		if (cur + 2 > atomic_load(&kept_budget))
			return false;
	} while (!atomic_compare_exchange_weak(&kept_all, &cur, cur + 2));
	r->kept_fds += 2;
	return true;
}

int thothd_lock_rings_new(thothd_lock_rings_t **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : THOTH_E_NOMEM;
}

static void pos_drop(thothd_lock_rings_t *r, ring_pos_t *pos)
{
	if (!pos->kept)
		return;
	close(pos->fd);
	close(pos->pidfd);
	pos->kept = false;
	r->kept_fds -= 2;
	atomic_fetch_sub(&kept_all, 2);
}

void thothd_lock_rings_free(thothd_lock_rings_t *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++)
		pos_drop(r, &r->pos[i]);
	free(r);
}

void thothd_lock_rings_reset(thothd_lock_rings_t *r)
{
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++)
		pos_drop(r, &r->pos[i]);
	memset(r, 0, sizeof *r);
}

/* PID's table memfd for this poll: the one kept since an earlier poll if
 * it still stands for PID's table (process alive, marker MARKER_INO the
 * same), else found afresh through /proc/PID/fd with PID pinned first
 * (*PIDFD then the pin; -1 without pidfds, or when the process ended
 * meanwhile: its table is read this once, as before, its header naming
 * pid and start, and not kept).  -1: none.  *KEPT: the slot it came from
 * (the caller must not close it), else NULL. */
static int ring_fd(thothd_lock_rings_t *r, int pid, uint64_t marker_ino, ring_pos_t **kept,
		   int *pidfd)
{
	*kept = NULL;
	*pidfd = -1;
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++) {
		ring_pos_t *pos = &r->pos[i];
		if (!pos->kept || pos->pid != pid)
			continue;
		if (pos->marker_ino == marker_ino && !thoth__pid_exited(pos->pidfd)) {
			*kept = pos;
			return pos->fd;
		}
		pos_drop(r, pos);          /* ended, or a new table under that pid */
	}
	int pin = thoth__pid_pin((uint32_t)pid);
	if (pin < 0 && errno != ENOSYS)
		return -1;              /* gone */
	int fd = thothlock_open_live(pid, NULL, 0);
	if (fd >= 0 && pin >= 0 && !thoth__pid_exited(pin))
		*pidfd = pin;
	else if (pin >= 0)
		close(pin);
	return fd;
}

typedef struct {
	thothd_lock_wait_fn fn;
	void *ctx;
	int pid;
	const char *process;
	uint64_t since_ns;
	uint64_t *handed;
} wait_ctx_t;

static void on_wait(const thothlock_wait_t *w, void *arg)
{
	wait_ctx_t *c = arg;
	if (w->start_ns < c->since_ns)
		return;
	thoth_trace_event_t ev = {
		.timestamp_ns = w->start_ns, .arg0 = w->wait_ns, .arg1 = w->lock,
		.pid = (uint32_t)c->pid, .tid = (uint32_t)w->tid,
		.category = THOTH_TRACE_CAT_LOCK, .name = "lock_wait",
	};
	(*c->handed)++;
	c->fn(&ev, c->process, c->ctx);
}

uint64_t thothd_lock_rings_poll(thothd_lock_rings_t *r, const char *locks_dir, uint64_t since_ns,
				thothd_lock_wait_fn fn, void *ctx, uint64_t *lost)
{
	uint64_t set = 0;
	(void)thothd_lock_rings_poll_steps(r, locks_dir, since_ns, fn, ctx, lost, NULL, NULL, &set);
	return set;
}

/* POS named after PID's /proc/PID/comm, read pinned: named only if the
 * process lived through the read (its number may be another program's by
 * then).  No pidfds here: read unpinned. */
static void ring_name(ring_pos_t *pos, int pid)
{
	int pidfd = thoth__pid_pin((uint32_t)pid);
	if ((pidfd >= 0 || errno == ENOSYS) &&
	    thoth__proc_read_pinned((uint32_t)pid, pidfd, "comm", pos->name, sizeof pos->name) > 0) {
		pos->name[strcspn(pos->name, "\n")] = 0;
		/* the process chose it (PR_SET_NAME): printable ASCII only,
		 * for the dashboard's JSON and labels */
		for (char *p = pos->name; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
	}
	if (pidfd >= 0)
		close(pidfd);
}

bool thothd_lock_rings_poll_steps(thothd_lock_rings_t *r, const char *locks_dir, uint64_t since_ns,
				  thothd_lock_wait_fn fn, void *ctx, uint64_t *lost,
				  bool (*step)(void *step_ctx), void *step_ctx, uint64_t *set_out)
{
	*set_out = 0;
	DIR *dp = opendir(locks_dir);
	if (!dp)
		return true;
	r->polls++;
	r->last_files = 0;
	r->last_waits = 0;
	uint64_t set = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		int mpid = table_name_pid(de->d_name);
		if (!mpid)
			continue;
		/* The marker names the pid; the ring is in that process's
		 * memfd (none: a leftover, or not a profiled process). */
		ring_pos_t *kept;
		int pidfd;
		int fd = ring_fd(r, mpid, (uint64_t)de->d_ino, &kept, &pidfd);
		if (fd < 0)
			continue;
		thothlock_ring_t *ring;
		r->last_files++;
		int rc = thothlock_ring_open_fd(fd, de->d_name, &ring, NULL, 0);
		int pid = 0;
		uint64_t start = 0;
		bool exited = false;
		if (rc == 0)
			thothlock_ring_identity(ring, &pid, &start, &exited);
		if (rc || pid != mpid) {
			/* refused (not sealed, bad header...), or a table claiming
			 * another process's waits: no slices from it, nothing kept */
			if (rc == 0)
				thothlock_ring_free(ring);
			if (kept)
				pos_drop(r, kept);
			else
				close(fd);
			if (pidfd >= 0)
				close(pidfd);
			continue;
		}
		/* Order-free: the sum of a mix of each identity. */
		set += ((uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ull) ^ start ^ (exited ? 1u : 0u);
		ring_pos_t *pos = NULL, *oldest = &r->pos[0];
		for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS && !pos; i++) {
			if (r->pos[i].pid == pid && r->pos[i].table_start_ns == start)
				pos = &r->pos[i];
			else if (r->pos[i].seen < oldest->seen)
				oldest = &r->pos[i];
		}
		if (!pos && oldest->pid && oldest->seen == r->polls) {
			/* Every slot followed a ring in this very poll: this one is
			 * not followed (yet).  Taking a slot from one seen now would
			 * make the two (and every ring beyond THOTHD_LOCKS_MAX_RINGS)
			 * take turns, each read again from its start at every poll:
			 * its waits handed out again, and all of each ring read. */
			r->unfollowed++;
			thothlock_ring_free(ring);
			if (!kept)
				close(fd);
			if (pidfd >= 0)
				close(pidfd);
			continue;
		}
		if (!pos) {             /* a process not followed yet (or the least recent one's slot) */
			pos = oldest;
			if (pos == kept) {
				/* the kept table's start changed under the same
				 * marker (a forged header): its slot starts over,
				 * nothing kept (the ring holds its own copy) */
				fd = -1;
				kept = NULL;
			}
			pos_drop(r, pos);
			*pos = (ring_pos_t){ .pid = pid, .table_start_ns = start };
			/* The ring's pid is the table's word: a process that has
			 * exited (its table says so) is not named at all. */
			if (!exited && pid > 0)
				ring_name(pos, pid);
		}
		pos->seen = r->polls;
		if (!kept && fd >= 0 && pidfd >= 0)
			pos_drop(r, pos);
		if (!kept && fd >= 0 && pidfd >= 0 && kept_take(r)) {
			/* found afresh and pinned: kept for the next polls */
			pos->kept = true;
			pos->fd = fd;
			pos->pidfd = pidfd;
			pos->marker_ino = (uint64_t)de->d_ino;
		} else if (!kept) {
			/* not pinned (no pidfds), or the budget is taken:
			 * followed all the same, found afresh next time
			 * (atomic: /metrics reads it on the loop, the trace
			 * sessions' follower polls on the collector too) */
			if (fd >= 0 && pidfd >= 0)
				__atomic_fetch_add(&r->unkept, 1, __ATOMIC_RELAXED);
			if (fd >= 0)
				close(fd);
			if (pidfd >= 0)
				close(pidfd);
		} else if (kept != pos) {
			/* the kept descriptor's table under another slot (a start
			 * that changed with the same marker: a forged header) */
			pos_drop(r, kept);
		}
		wait_ctx_t c = { .fn = fn, .ctx = ctx, .pid = pid, .process = pos->name,
				 .since_ns = since_ns, .handed = &r->last_waits };
		uint64_t head = thothlock_ring_head(ring), l = 0;
		if (head > pos->next && head - pos->next > THOTHD_LOCKS_RING_READ_MAX) {
			l = head - pos->next - THOTHD_LOCKS_RING_READ_MAX;
			pos->next = head - THOTHD_LOCKS_RING_READ_MAX;
		}
		l += thothlock_ring_read(ring, &pos->next, on_wait, &c);
		if (lost)
			*lost += l;
		thothlock_ring_free(ring);
		if (step && !step(step_ctx)) {
			closedir(dp);
			return false;
		}
	}
	closedir(dp);
	/* Processes whose markers are gone (exited, most of them): their
	 * memfds are not held a poll longer. */
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++)
		if (r->pos[i].seen != r->polls)
			pos_drop(r, &r->pos[i]);
	*set_out = set;
	return true;
}

uint64_t thothd_lock_rings_unfollowed(const thothd_lock_rings_t *r)
{
	return r->unfollowed;
}

uint64_t thothd_lock_rings_unkept(const thothd_lock_rings_t *r)
{
	return __atomic_load_n(&r->unkept, __ATOMIC_RELAXED);
}

uint32_t thothd_lock_rings_kept_fds(const thothd_lock_rings_t *r)
{
	return r->kept_fds;
}

void thothd_lock_rings_last(const thothd_lock_rings_t *r, uint32_t *files, uint64_t *waits)
{
	*files = r->last_files;
	*waits = r->last_waits;
}

uint32_t thothd_lock_rings_at(const thothd_lock_rings_t *r, uint32_t i, const char **name)
{
	if (i >= THOTHD_LOCKS_MAX_RINGS || !r->pos[i].pid || !r->pos[i].name[0])
		return 0;
	*name = r->pos[i].name;
	return (uint32_t)r->pos[i].pid;
}

const char *thothd_lock_rings_name(const thothd_lock_rings_t *r, uint32_t pid)
{
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++)
		if (r->pos[i].pid && (uint32_t)r->pos[i].pid == pid && r->pos[i].name[0])
			return r->pos[i].name;
	return NULL;
}
