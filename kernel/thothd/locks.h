/* locks.h - the lock profiler's live tables as thothd reads them (OBS-4,
 * docs/LOCKS.md "Live reports through thothd").
 *
 * Processes run with LD_PRELOAD=libthothlock.so publish RUNTIME_DIR/locks/
 * PID.table.  Any process of the user can write a file there, so each one is
 * untrusted input: read only through the reader API (lockprof_report.h),
 * after checks that keep thothd from blocking or reading without bound.
 *
 *   locks_scan.c  which tables to read (scan), and the contention rings
 *                 followed as `lock_wait` trace events (rings): shared by
 *                 LockReports, the dashboard, trace sessions and thothctl's
 *                 fallback when thothd is not running.
 *   locks.c       LockReports (idl/locks.tidl) and the trace sessions' lock
 *                 source: thothd's executable only (libdw is not libthoth's).
 */
#ifndef THOTHD_LOCKS_H
#define THOTHD_LOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lockprof_find.h"
#include "lockprof_report.h"
#include "thoth/trace.h"

enum {
	/* Tables in one report: a process's first report costs thothd tens of
	 * ms of symbolizing (docs/LOCKS.md "Cost"), during which its loop serves
	 * no one; later ones reuse its symbols. */
	THOTHD_LOCKS_MAX_TABLES = 16,
	THOTHD_LOCKS_MAX_REFUSED = 16,  /* refusals kept (all are counted) */
	THOTHD_LOCKS_MAX_RINGS = 64,    /* processes whose rings are followed */
	/* Descriptors the ring polls keep between polls, all followers of the
	 * process together, at most: a table memfd and a pidfd per followed
	 * ring.  thothd counts them in its descriptor budget (server.c) and
	 * may lower them (thothd_lock_rings_fd_budget). */
	THOTHD_LOCKS_KEPT_FDS_MAX = 2 * THOTHD_LOCKS_MAX_RINGS,
	/* Waits a poll reads from one ring at most: a ring as large as the
	 * preload writes (THOTHLOCK_EVENT_CAPACITY).  A header claiming a
	 * larger ring (up to 1 Mi slots) gets its newest this many read and
	 * the rest counted lost, so one ring is one short step of a poll. */
	THOTHD_LOCKS_RING_READ_MAX = 4096,
};

/* A table thothd did not read, or read without symbols, and why. */
typedef struct thothd_lock_refusal {
	int pid;                        /* from the file's name; 0: none */
	char file[64];                  /* the name in RUNTIME_DIR/locks */
	char why[224];
} thothd_lock_refusal_t;

typedef struct thothd_lock_scan {
	thothlock_table_t *tables[THOTHD_LOCKS_MAX_TABLES];
	size_t n;
	thothd_lock_refusal_t refused[THOTHD_LOCKS_MAX_REFUSED];
	size_t n_refused;               /* kept in refused[] */
	size_t refused_total;
	size_t over;                    /* live tables beyond THOTHD_LOCKS_MAX_TABLES */
} thothd_lock_scan_t;

/* What thothd's and thothctl's "nothing profiled" messages (LockReports'
 * NoTables, the dashboard's lock panel, `thothctl locks`) tell a person to
 * put in LD_PRELOAD: the library by its full path (thothlock_preload_hint,
 * lockprof_find.h), the bare name with a note only when none is found.
 * OUT: at least THOTHLOCK_HINT_MAX.  Returns OUT. */
const char *thothd_lock_preload_hint(char *out, size_t cap);

/* ... and the launcher they name first (`thothlock -- PROGRAM`, the
 * supported way: thothlock_find_launcher, lockprof_find.h): OUT (at least
 * PATH_MAX) with its path, or NULL when none is found (the messages then
 * give the LD_PRELOAD form alone and say so). */
const char *thothd_lock_launcher(char *out, size_t cap);

/* The tables of the live processes that publish one in LOCKS_DIR (only
 * PID's when PID > 0), loaded and set up for symbolization against each
 * process's /proc/PID/maps.  A table whose process is gone (a crash left
 * it, or the pid was reused) is skipped; a hostile one is refused with its
 * reason in S->refused; live tables beyond THOTHD_LOCKS_MAX_TABLES are
 * counted in S->over and named by one refusal (file "").  Returns 0 (S filled, maybe empty) or a negative
 * THOTH_E_* code (the directory cannot be read: S empty). */
int thothd_lock_scan(const char *locks_dir, int pid, thothd_lock_scan_t *s);
void thothd_lock_scan_free(thothd_lock_scan_t *s);

/* Removes the markers in LOCKS_DIR of processes that are gone (docs/
 * LOCKS.md "Dead markers"): PID.table (and PID.table.new) whose PID runs
 * no more, or runs a process started after the marker was made that holds
 * no table.  A live process's marker is never removed; a marker name that
 * is not a regular file is neither followed nor removed.  SAY (if set) is
 * called with each line to log: REFUSED false, a marker removed and why;
 * true, a name refused.  Returns the markers removed, or a negative
 * THOTH_E_* (the directory cannot be read; a missing one is 0).  Those
 * removed are counted in thothd_lock_markers_pruned (thothd's /metrics). */
typedef void (*thothd_lock_prune_say_fn)(void *ctx, bool refused, const char *line);
int thothd_lock_prune(const char *locks_dir, thothd_lock_prune_say_fn say, void *ctx);
uint64_t thothd_lock_markers_pruned(void);

/* ---- symbols kept across reports (thothd) ----------------------------------------------
 * Setting up libdw for a process and looking its addresses up is what a
 * report costs (70-80 ms for a small program).  The cache keeps, per
 * profiled process, the libdw session and its answers
 * (thothlock_symbols_t), reused while the process is the same one mapping
 * the same code: keyed by pid, the process's start time (a reused pid is
 * another process) and a hash of its executable file mappings in
 * /proc/PID/maps (range, offset, device, inode, path: an exec, a dlopen or
 * a dlclose changes it).  Bounded: at most THOTHD_LOCKS_SYMCACHE_PROCS
 * processes (the least recently used pushed out), per process at most
 * THOTHD_LOCKS_SYM_ENTRIES answers in THOTHD_LOCKS_SYM_BYTES (the oldest
 * evicted), and after each report at most THOTHD_LOCKS_SYMCACHE_BYTES in
 * all (least recently used processes dropped).  A process's entry goes
 * when it exits (the owner's watch, or the next scan finding its start
 * time changed). */
enum {
	THOTHD_LOCKS_SYMCACHE_PROCS = 32,
	THOTHD_LOCKS_SYM_ENTRIES = 16384,
	THOTHD_LOCKS_SYM_BYTES = 2 << 20,
	THOTHD_LOCKS_SYMCACHE_BYTES = 8 << 20,
};

typedef struct thothd_lock_symcache thothd_lock_symcache_t;

typedef struct {
	uint64_t reused;        /* a table given a cached process's symbols */
	uint64_t built;         /* a libdw session set up (first report, or stale) */
	uint64_t stale;         /* of those, replacing one whose process changed */
	uint64_t dropped;       /* processes dropped: exited, pushed out, over the byte limit */
	size_t processes;       /* held now */
	size_t bytes;           /* the caches' memory now (not libdw's own) */
	uint64_t hits, misses;  /* address lookups, summed over the processes held */
} thothd_lock_symcache_stats_t;

/* WATCH (may be NULL) is called when a process enters the cache and
 * returns a token (NULL: not watched); UNWATCH gets it back when the entry
 * goes.  thothd watches with a pidfd on its loop and calls
 * thothd_lock_symcache_exited when it fires. */
typedef void *(*thothd_lock_watch_fn)(int pid, void *ctx);
typedef void (*thothd_lock_unwatch_fn)(void *token, void *ctx);

/* The bounds; a zero field takes the THOTHD_LOCKS_SYM* default above. */
typedef struct {
	size_t processes;       /* at most THOTHD_LOCKS_SYMCACHE_PROCS */
	size_t entries;         /* answers per process */
	size_t bytes;           /* strings per process */
	size_t total_bytes;     /* every process's cache after a report */
} thothd_lock_symcache_limits_t;

int thothd_lock_symcache_new(const thothd_lock_symcache_limits_t *limits, thothd_lock_watch_fn watch,
			     thothd_lock_unwatch_fn unwatch, void *ctx, thothd_lock_symcache_t **out);
void thothd_lock_symcache_free(thothd_lock_symcache_t *c);
/* thothd_lock_scan, its tables symbolized through C (NULL: each table its
 * own libdw session, thothctl's fallback).  The tables borrow C's symbols:
 * free the scan (thothd_lock_scan_free) before the next call on C, then
 * call thothd_lock_symcache_trim. */
int thothd_lock_scan_cached(const char *locks_dir, int pid, thothd_lock_symcache_t *c,
			    thothd_lock_scan_t *s);
/* Enforce THOTHD_LOCKS_SYMCACHE_BYTES (after a report's tables are freed). */
void thothd_lock_symcache_trim(thothd_lock_symcache_t *c);
/* PID exited: drop what is held for it. */
void thothd_lock_symcache_exited(thothd_lock_symcache_t *c, int pid);
void thothd_lock_symcache_stats(const thothd_lock_symcache_t *c, thothd_lock_symcache_stats_t *out);

/* ---- contention rings as trace events --------------------------------------------------
 * Each table's ring of its last contended acquisitions, followed from where
 * the previous poll stopped, handed out as the trace event thoth_mutex
 * emits: category LOCK, name "lock_wait", stamped at the wait's start,
 * arg0 = wait ns, arg1 = the lock's address, on the waiting thread. */
typedef struct thothd_lock_rings thothd_lock_rings_t;
typedef void (*thothd_lock_wait_fn)(const thoth_trace_event_t *ev, const char *process, void *ctx);

int thothd_lock_rings_new(thothd_lock_rings_t **out);
void thothd_lock_rings_free(thothd_lock_rings_t *r);
/* Forget every position (a new collection starts). */
void thothd_lock_rings_reset(thothd_lock_rings_t *r);
/* Hand FN each wait that began at or after SINCE_NS and was not handed out
 * before.  *LOST (may be NULL) grows by the events overwritten or torn
 * before they were read.  Returns a hash of the set of tables seen: it
 * changes when a profiled process starts or ends. */
uint64_t thothd_lock_rings_poll(thothd_lock_rings_t *r, const char *locks_dir, uint64_t since_ns,
				thothd_lock_wait_fn fn, void *ctx, uint64_t *lost);
/* The same, calling STEP(STEP_CTX) after each ring file read: false stops
 * the poll at once (it touches R no more; the rings not read yet are read
 * from where they were at the next poll, nothing lost).  Returns whether it
 * went through the directory, with the hash in *SET. */
bool thothd_lock_rings_poll_steps(thothd_lock_rings_t *r, const char *locks_dir, uint64_t since_ns,
				  thothd_lock_wait_fn fn, void *ctx, uint64_t *lost,
				  bool (*step)(void *step_ctx), void *step_ctx, uint64_t *set);
/* Ring files the last poll read (their headers and rings), and the waits
 * it handed out. */
void thothd_lock_rings_last(const thothd_lock_rings_t *r, uint32_t *files, uint64_t *waits);
/* Rings not followed, summed over the polls: at most THOTHD_LOCKS_MAX_RINGS
 * are (the first seen keep their slots while their files stay). */
uint64_t thothd_lock_rings_unfollowed(const thothd_lock_rings_t *r);
/* The descriptors every ring follower of this process may keep open from
 * poll to poll, together (default and most: THOTHD_LOCKS_KEPT_FDS_MAX).
 * A ring found when they are all taken is still followed: its memfd is
 * found and read afresh at each poll (~40 us more per process) and its
 * two descriptors closed at once, which the caller's headroom covers. */
void thothd_lock_rings_fd_budget(uint32_t fds);
/* Followed rings read without keeping their descriptors (the budget above
 * was taken), summed over the polls; and the descriptors R keeps now. */
uint64_t thothd_lock_rings_unkept(const thothd_lock_rings_t *r);
uint32_t thothd_lock_rings_kept_fds(const thothd_lock_rings_t *r);
/* The name (/proc/PID/comm when first seen) of a followed process, or NULL. */
const char *thothd_lock_rings_name(const thothd_lock_rings_t *r, uint32_t pid);
/* The pid of the process whose ring is followed in slot I (0: none), its
 * name in *NAME (possibly ""): a window export's copy of the names. */
uint32_t thothd_lock_rings_at(const thothd_lock_rings_t *r, uint32_t i, const char **name);

#endif
