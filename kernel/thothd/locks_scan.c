/* locks_scan.c - which lock tables thothd (and thothctl's fallback) reads,
 * and the contention rings followed as trace events (locks.h).
 *
 * A table file is written by whichever process owns the name, so before
 * the reader (lockprof_report.c, which itself opens O_NONBLOCK|O_NOFOLLOW
 * and checks every offset) is handed one, this file checks what can be
 * checked without opening it: a regular file (a FIFO would block an
 * open, a device could be anything), at most MAX_DATA_BYTES of data (the
 * reader copies the data extents), and a live process that maps it.
 * Symbolization opens the files a process maps (libdw, by the paths in
 * /proc/PID/maps): a path that is no longer a regular file or a character
 * device (a FIFO put where a mapped library was) means no symbols for that
 * process, not a blocked thothd.
 */
#define _GNU_SOURCE
#include "locks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thoth/error.h"

/* A table holds ~95 MiB (format 3) of address space, mostly holes (lockprof_layout.h);
 * more data than this is not one the preload wrote. */
#define MAX_DATA_BYTES ((off_t)128 << 20)

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

/* Does PID map TABLE_PATH (its own table)?  A dead pid, or a reused one
 * that is another program, does not: the file is a crash's leftover. */
static bool maps_table(int pid, const char *table_path)
{
	char path[64], line[PATH_MAX + 256];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool found = false;
	size_t t = strlen(table_path);
	while (!found && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		size_t l = strlen(line);
		found = l >= t && strcmp(line + l - t, table_path) == 0;
	}
	fclose(f);
	return found;
}

/* The first path PID maps that symbolization must not open (not a regular
 * file or a character device now), copied to BAD; false when none. */
static bool unsafe_mapping(int pid, char *bad, size_t cap)
{
	char path[64], line[PATH_MAX + 256];
	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool unsafe = false;
	while (!unsafe && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *p = strchr(line, '/');
		if (!p || strstr(p, " (deleted)"))
			continue;       /* anonymous, or read from /proc/PID/mem by libdw */
		struct stat st;
		if (stat(p, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
			snprintf(bad, cap, "%s", p);
			unsafe = true;
		}
	}
	fclose(f);
	return unsafe;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : S_ISDIR(m) ? "a directory"
	       : S_ISLNK(m) ? "a symbolic link" : S_ISCHR(m) || S_ISBLK(m) ? "a device"
								  : "not a regular file";
}

int thothd_lock_scan(const char *locks_dir, int want_pid, thothd_lock_scan_t *s)
{
	memset(s, 0, sizeof *s);
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
		if ((off_t)st.st_blocks * 512 > MAX_DATA_BYTES) {
			refuse(s, pid, e->d_name, "holds %lld MiB of data, over the %lld MiB a table may",
			       (long long)st.st_blocks / 2048, (long long)(MAX_DATA_BYTES >> 20));
			continue;
		}
		char path[PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", locks_dir, e->d_name);
		if (!maps_table(pid, path))
			continue;
		if (s->n == THOTHD_LOCKS_MAX_TABLES) {
			s->over++;
			continue;
		}
		char why[PATH_MAX + 400];
		thothlock_table_t *t;
		if (thothlock_table_load(path, &t, why, sizeof why) != 0) {
			/* The reader's reason starts with the path: keep what follows. */
			const char *w = strncmp(why, path, strlen(path)) == 0 ? why + strlen(path) : why;
			refuse(s, pid, e->d_name, "%s", w[0] == ':' ? w + 2 : w);
			continue;
		}
		if (thothlock_table_pid(t) != pid) {
			refuse(s, pid, e->d_name, "the table says it is process %d's",
			       thothlock_table_pid(t));
			thothlock_table_free(t);
			continue;
		}
		if (thothlock_table_exited(t)) {
			thothlock_table_free(t);
			continue;
		}
		char bad[PATH_MAX];
		if (unsafe_mapping(pid, bad, sizeof bad))
			refuse(s, pid, e->d_name, "not symbolized: the process maps %s, now not a "
			       "regular file", bad);
		else
			(void)thothlock_table_set_live_pid(t, pid);   /* gone meanwhile: raw addresses */
		s->tables[s->n++] = t;
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
} ring_pos_t;

struct thothd_lock_rings {
	ring_pos_t pos[THOTHD_LOCKS_MAX_RINGS];
	uint64_t polls;
};

int thothd_lock_rings_new(thothd_lock_rings_t **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : THOTH_E_NOMEM;
}

void thothd_lock_rings_free(thothd_lock_rings_t *r)
{
	free(r);
}

void thothd_lock_rings_reset(thothd_lock_rings_t *r)
{
	memset(r, 0, sizeof *r);
}

typedef struct {
	thothd_lock_wait_fn fn;
	void *ctx;
	int pid;
	const char *process;
	uint64_t since_ns;
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
	c->fn(&ev, c->process, c->ctx);
}

uint64_t thothd_lock_rings_poll(thothd_lock_rings_t *r, const char *locks_dir, uint64_t since_ns,
				thothd_lock_wait_fn fn, void *ctx, uint64_t *lost)
{
	DIR *dp = opendir(locks_dir);
	if (!dp)
		return 0;
	r->polls++;
	uint64_t set = 0;
	struct dirent *de;
	while ((de = readdir(dp))) {
		if (!table_name_pid(de->d_name))
			continue;
		char path[PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", locks_dir, de->d_name);
		thothlock_ring_t *ring;
		if (thothlock_ring_open(path, &ring, NULL, 0))
			continue;       /* refused (FIFO, bad header...): no slices from it */
		int pid;
		uint64_t start;
		bool exited;
		thothlock_ring_identity(ring, &pid, &start, &exited);
		/* Order-free: the sum of a mix of each identity. */
		set += ((uint64_t)(uint32_t)pid * 0x9e3779b97f4a7c15ull) ^ start ^ (exited ? 1u : 0u);
		ring_pos_t *pos = NULL, *oldest = &r->pos[0];
		for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS && !pos; i++) {
			if (r->pos[i].pid == pid && r->pos[i].table_start_ns == start)
				pos = &r->pos[i];
			else if (r->pos[i].seen < oldest->seen)
				oldest = &r->pos[i];
		}
		if (!pos) {             /* a process not followed yet (or the least recent one's slot) */
			pos = oldest;
			*pos = (ring_pos_t){ .pid = pid, .table_start_ns = start };
			char cpath[64];
			snprintf(cpath, sizeof cpath, "/proc/%d/comm", pid);
			FILE *cf = fopen(cpath, "re");
			if (cf) {
				if (fgets(pos->name, sizeof pos->name, cf))
					pos->name[strcspn(pos->name, "\n")] = 0;
				fclose(cf);
			}
		}
		pos->seen = r->polls;
		wait_ctx_t c = { .fn = fn, .ctx = ctx, .pid = pid, .process = pos->name,
				 .since_ns = since_ns };
		uint64_t l = thothlock_ring_read(ring, &pos->next, on_wait, &c);
		if (lost)
			*lost += l;
		thothlock_ring_free(ring);
	}
	closedir(dp);
	return set;
}

const char *thothd_lock_rings_name(const thothd_lock_rings_t *r, uint32_t pid)
{
	for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++)
		if (r->pos[i].pid && (uint32_t)r->pos[i].pid == pid && r->pos[i].name[0])
			return r->pos[i].name;
	return NULL;
}
