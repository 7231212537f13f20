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
#include <stdint.h>
#include <stdio.h>

typedef struct thothlock_table thothlock_table_t;
typedef struct thothlock_symbols thothlock_symbols_t;

/* Read the table at `path` into private memory and check it: magic,
 * version, sizes against the file.  `why` (may be NULL) receives the
 * reason of a refusal.  Returns 0 or a negative THOTH_E_* code. */
int thothlock_table_load(const char *path, thothlock_table_t **out, char *why, size_t why_len);
/*
 * The table another process hands over or shows in /proc/PID/fd (FD, left
 * open; NAME names it in refusals): the same checks, and first its kind:
 * it must be the writer's memfd sealed against shrinking and growing
 * (thothlock_table_check_sealed) and exactly as large as its header says.
 * Never blocks: FD is read with pread only.
 */
int thothlock_table_load_fd(int fd, const char *name, thothlock_symbols_t *syms,
			    thothlock_table_t **out, char *why, size_t why_len);
/* 0 when FD is a memfd whose size no one can change (F_SEAL_SHRINK and
 * F_SEAL_GROW), else THOTH_E_INVAL with the reason in REASON. */
int thothlock_table_check_sealed(int fd, char *reason, size_t cap);
/*
 * Open process PID's live table: the memfd named "thothlock:PID" among its
 * descriptors (/proc/PID/fd), opened read-only and non-blocking through
 * that link.  The fd, or THOTH_E_NOT_FOUND (none: not profiled, gone, or
 * its table in a process that closed it), or another THOTH_E_* with
 * the reason in WHY.  What it opens is anybody's: the loaders check it.
 */
int thothlock_open_live(int pid, char *why, size_t why_len);
void thothlock_table_free(thothlock_table_t *table);
/* The pid the table is reported under: the sender's, once set, else its
 * header's. */
int thothlock_table_pid(const thothlock_table_t *table);
/* PID is the one the kernel said sent the table (thothlock's SO_PASSCRED):
 * the report names it, and the header's pid only where that differs (the
 * sender's pid in a pid namespace of its own: "pid 1 in its namespace"). */
void thothlock_table_set_sender(thothlock_table_t *table, int pid);
bool thothlock_table_exited(const thothlock_table_t *table);

/*
 * What became of the table's process, for a report made after the fact
 * (thothlock): a table whose exit path never ran (killed by SIGKILL,
 * crashed, or still running) said "running" whatever the truth.
 *   set_reaped: the caller reaped it (thothlock's own child): its wait
 *     status (killed by a signal, or exited by _exit without the exit
 *     path) and CLOCK_MONOTONIC when it was reaped (0: unknown).
 *   check_alive: /proc says: the pid alive and the same process (started
 *     no later than the table, so not a reused pid), not a zombie, is
 *     still running; otherwise the process died without its exit path.
 * Neither called (thothd's live reports, whose tables are of processes
 * mapping them now): a table not marked exited is reported running.
 */
void thothlock_table_set_reaped(thothlock_table_t *table, int wait_status, uint64_t reaped_ns);
void thothlock_table_check_alive(thothlock_table_t *table);

/* How addresses become names: a saved /proc/PID/maps copy (the process is
 * gone) or a live pid's own maps.  Neither: raw addresses. */
int thothlock_table_set_maps_file(thothlock_table_t *table, const char *maps_path);
int thothlock_table_set_live_pid(thothlock_table_t *table, int pid);

/* ---- symbols that outlive one report ---------------------------------------
 * A libdw session over one live process's modules plus the answers it gave
 * (function, file:line, module for a return address; a lock's data symbol
 * and section), at most MAX_ENTRIES answers in MAX_BYTES of strings (0: no
 * byte limit), the oldest evicted first.  A table normally makes its own
 * (set_live_pid, set_maps_file) and drops it with itself; thothd keeps one
 * per process across reports and lends it (use_symbols), so a repeated
 * report looks nothing up again.  Valid only while the process maps the
 * same files: the owner decides when it is stale. */

typedef struct {
	uint64_t hits, misses;  /* lookups answered from the cache, and not */
	uint64_t evictions;     /* answers dropped to stay within the limits */
	size_t entries;         /* answers held now */
	size_t bytes;           /* the cache's memory (arrays and strings; not libdw's) */
} thothlock_symbols_stats_t;

int thothlock_symbols_live(int pid, size_t max_entries, size_t max_bytes, thothlock_symbols_t **out);
void thothlock_symbols_free(thothlock_symbols_t *s);
size_t thothlock_symbols_bytes(const thothlock_symbols_t *s);
void thothlock_symbols_get_stats(const thothlock_symbols_t *s, thothlock_symbols_stats_t *out);
/* TABLE looks addresses up through S, which it does not own: S must outlive
 * the table's reports (or be replaced first). */
void thothlock_table_use_symbols(thothlock_table_t *table, thothlock_symbols_t *s);
/* thothlock_table_load, the table borrowing S (as use_symbols) and reading
 * into the private copy S kept from the same process's previous table, if
 * any (freeing a table that borrows S gives its copy back to S, up to 16
 * MiB of it resident): a repeated report maps and faults in nothing new.
 * S counts the copy in thothlock_symbols_bytes. */
int thothlock_table_load_with(const char *path, thothlock_symbols_t *s, thothlock_table_t **out,
                              char *why, size_t why_len);

typedef struct {
	bool json;
	unsigned top;          /* locks per report, 0 = all */
	bool show_uncontended; /* text: list locks that never waited too */
} thothlock_report_opts_t;

/* One report over several processes' tables (a forking program has one
 * table per process).  Text sorted by total wait, or the JSON document. */
int thothlock_report_write(FILE *out, thothlock_table_t *const *tables, size_t n,
                           const thothlock_report_opts_t *opts);

/* ---- contention slices ----------------------------------------------------
 * Each table keeps its last contended acquisitions in a ring
 * (lockprof_layout.h); thothd turns them into `lock_wait` trace slices.
 * Reading it copies the header and the ring only (~160 KiB), not the
 * table. */
typedef struct thothlock_ring thothlock_ring_t;

typedef struct {
	uint64_t start_ns;     /* CLOCK_MONOTONIC when the wait began */
	uint64_t wait_ns;
	uint64_t lock;         /* the lock's address */
	int tid;               /* the thread that waited */
	bool timeout;          /* a timed acquisition that gave up */
} thothlock_wait_t;

typedef void (*thothlock_wait_fn)(const thothlock_wait_t *wait, void *ctx);

int thothlock_ring_open(const char *path, thothlock_ring_t **out, char *why, size_t why_len);
/* The ring of the table open at FD (a dup is kept; FD stays the caller's),
 * checked as thothlock_table_load_fd checks a table. */
int thothlock_ring_open_fd(int fd, const char *name, thothlock_ring_t **out, char *why,
			   size_t why_len);
void thothlock_ring_free(thothlock_ring_t *ring);
/* The process (pid, its table's start time: together its identity) and
 * whether it has exited. */
void thothlock_ring_identity(const thothlock_ring_t *ring, int *pid, uint64_t *start_ns,
                             bool *exited);
/* Events ever written to the ring (its header's head when opened). */
uint64_t thothlock_ring_head(const thothlock_ring_t *ring);
/* Calls fn for each event numbered >= *next still in the ring, oldest
 * first, and sets *next past the last one read.  Only those slots are
 * read from the file (thothlock_ring_open reads the header alone): a
 * quiet ring costs its header page, not its 160 KiB.  A file cut short
 * since it was opened gives nothing (0, *next unchanged).  An event claimed but not
 * yet committed stops the read there (it is read next time) while the
 * process lives.  Returns how many were lost (overwritten before this
 * read, or never committed by a process that has exited). */
uint64_t thothlock_ring_read(thothlock_ring_t *ring, uint64_t *next, thothlock_wait_fn fn,
                             void *ctx);

#endif
