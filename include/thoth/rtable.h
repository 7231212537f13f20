/*
 * thoth/rtable.h - resolve without a round trip (SCALE-2, docs/SCALE.md).
 *
 * thothd keeps a lock-free copy of its registry in a memfd and hands it,
 * sealed read-only, to any client that asks (Daemon.resolve_table, the
 * descriptor rides on the answer).  thoth_rtable_resolve() then reads it in
 * the caller's process: no system call, no lock, no message.  Only a miss
 * (a name the table does not hold, or a table that says it is incomplete)
 * costs a Registry.resolve round trip on the same connection.
 *
 *   thoth_rtable_t *t;
 *   thoth_rtable_open(NULL, &t, why, sizeof why);
 *   thoth_resolved_t where;
 *   thoth_rtable_resolve(t, "echo", "1.0.0", &where);   // where.addr -> thoth_chan_connect
 *
 * Trust: the table is written by thothd, but the client treats it as
 * hostile memory: geometry is checked once against the file's real size,
 * every length is bounds-checked, probe chains and retries are bounded, and
 * an answer is only a hint: the channel handshake (contract check, peer
 * credentials) decides whether the endpoint is the service asked for.
 *
 * Staleness: thothd updates the table in the same loop iteration as its
 * registry (before it answers the register/withdraw that changed it, and
 * the moment it sees a dead service's connection close); a reader sees the
 * change as soon as its next lookup starts (a seqlock: no cache to expire).
 * An answer can therefore be older than the registry only by the lookup's
 * own duration.  While thothd is gone the table keeps its last contents
 * (callers' channels to dead services fail at connect and they resolve
 * again); a new thothd hands out a new table (open again after
 * THOTH_E_PEER_GONE).  Watchers: thoth_rtable_wait() sleeps on the table's
 * generation word (a futex thothd wakes after every change).
 *
 * Threads: one handle may be used by any number of threads for lookups
 * (they only read); the miss path serialises on the handle's connection.
 */
#ifndef THOTH_RTABLE_H
#define THOTH_RTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/service.h"      /* thoth_resolved_t */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_rtable thoth_rtable_t;

/* Connect to thothd (RUNTIME_DIR NULL: the default rule), take the table
 * and map it read-only.  0, or THOTH_E_NOT_RUNNING / THOTH_E_PERM (the
 * runtime-dir and peer checks of every control client), THOTH_E_PROTOCOL
 * (no descriptor came, or not a sealed memfd), THOTH_E_CORRUPT (geometry
 * does not check), THOTH_E_UNKNOWN_METHOD (a thothd without the table);
 * WHY says which. */
int thoth_rtable_open(const char *runtime_dir, thoth_rtable_t **out, char *why, size_t why_len);
void thoth_rtable_close(thoth_rtable_t *t);

/*
 * The instance of NAME (version >= MIN_VERSION with the same major;
 * NULL/"" any) a caller on this thread's NUMA node should use: same node,
 * then the nearest by distance, then remote; round robin among equals.
 * From the table when it has an answer, else a round trip to thothd.
 * 0; THOTH_E_NOT_FOUND; THOTH_E_INVAL (bad name or version);
 * THOTH_E_PEER_GONE (a miss and thothd is gone).
 */
int thoth_rtable_resolve(thoth_rtable_t *t, const char *name, const char *min_version,
			 thoth_resolved_t *out);

/*
 * A name resolved once, then resolved again for a few nanoseconds: the
 * hot path of a client that calls the same service over and over (open a
 * channel per request, pick an instance per call).
 *
 * thoth_rtable_name_open() prepares NAME once (its hash, a padded copy,
 * the parsed version).  The first resolve reads every equally good
 * instance for this thread's node into the handle, with the table's
 * sequence number; each later resolve loads that one word: while it is
 * unchanged no writer has begun since, so the kept answers are exactly
 * what the table would answer, and one of them is returned (round robin)
 * without touching an entry, hashing or comparing a string.  When the
 * table changed (any registration anywhere), the handle reads it again.
 * Answers with a TTL deadline also cost a clock read per resolve; a node
 * change costs one getcpu on machines with more than one node.  A miss
 * goes to thothd like thoth_rtable_resolve() and is not kept.
 *
 * Staleness is the table's: a registry change invalidates every handle
 * the moment thothd writes it.  One thread at a time per handle (it keeps
 * answers and a round-robin position); a thread-per-core service opens
 * one per thread.  T must outlive its handles.
 */
typedef struct thoth_rtable_name thoth_rtable_name_t;

/* 0, THOTH_E_INVAL (no name, bad version), THOTH_E_NOMEM.  A name longer
 * than the table holds is accepted: its resolves go to thothd. */
int thoth_rtable_name_open(thoth_rtable_t *t, const char *name, const char *min_version,
			   thoth_rtable_name_t **out);
void thoth_rtable_name_close(thoth_rtable_name_t *n);
/* *OUT points into the handle, valid until its next resolve or close.
 * 0, THOTH_E_NOT_FOUND, THOTH_E_PEER_GONE (a miss and thothd is gone). */
int thoth_rtable_name_resolve(thoth_rtable_name_t *n, const thoth_resolved_t **out);

/* The table alone, never a round trip: 0, THOTH_E_NOT_FOUND (a miss; the
 * caller may ask thothd), THOTH_E_BUSY (the table never settled). */
int thoth_rtable_lookup(thoth_rtable_t *t, const char *name, const char *min_version, uint16_t numa_node,
			thoth_resolved_t *out);

/*
 * List from the table, no round trip (thothd's one thread is not asked):
 * every live instance whose name starts with PREFIX (NULL/"": all), in one
 * consistent read of the whole table.  Up to MAX into OUT; *TOTAL says
 * how many matched (more than MAX: call again with room).  0;
 * THOTH_E_LIMIT: the table says some instance did not fit (a name longer
 * than 80 bytes, a full table), so the list may lack some: ask thothd
 * (Registry.list); THOTH_E_BUSY: the table never settled for a whole pass.
 * Costs a pass over the whole 1 MiB table (~0.1 ms), not a lookup.
 */
typedef struct thoth_rtable_instance {
	char name[81];
	char addr[108];
	uint32_t major, minor, patch;
	uint32_t pid;
	uint16_t numa_node;
	bool remote;
	uint64_t lease, instance_id;
	uint64_t expires_at_ns;         /* CLOCK_MONOTONIC; UINT64_MAX: held by its connection */
} thoth_rtable_instance_t;

int thoth_rtable_list(thoth_rtable_t *t, const char *prefix, thoth_rtable_instance_t *out, size_t max,
		      size_t *total);

/*
 * thothd's status (what `thothctl status` shows, Daemon.status's fields)
 * from the same memory, no round trip: thothd publishes it after every
 * iteration of its loop and before every answer it sends, so it is never
 * older than the last answer this process got from thothd, and while thothd
 * sleeps it is the present.  AGE_NS says how long ago thothd published it
 * (large while thothd is idle: nothing changed; a thothd that is gone
 * leaves its last status).  0; THOTH_E_NOT_FOUND (this thothd publishes
 * none: ask it with Daemon.status); THOTH_E_BUSY (never settled).
 */
typedef struct thoth_rtable_status {
	uint32_t pid, clients, registrations, watches;
	uint64_t uptime_ns, age_ns;
	uint64_t wakeups, wakeups_fd, wakeups_timer, timers_fired;
	uint64_t next_expiry_ns;        /* CLOCK_MONOTONIC; 0: no timer armed */
	uint64_t messages;              /* requests thothd has handled */
	uint64_t publishes;             /* times thothd wrote it */
	char version[32];
	char runtime_dir[128];
	char dashboard_url[128];        /* "" when no dashboard serves */
} thoth_rtable_status_t;
int thoth_rtable_status(const thoth_rtable_t *t, thoth_rtable_status_t *out);

/* The table's generation (changes after every registry change) and a wait
 * for it to move past SEEN: 0 moved, THOTH_E_TIMEDOUT (TIMEOUT_MS < 0:
 * forever). */
uint32_t thoth_rtable_generation(const thoth_rtable_t *t);
int thoth_rtable_wait(const thoth_rtable_t *t, uint32_t seen, int timeout_ms);

typedef struct thoth_rtable_stats {
	uint64_t hits;          /* answered from the table (or a handle's kept answers) */
	uint64_t misses;        /* asked thothd */
	uint64_t busy;          /* table never settled: asked thothd */
	uint64_t refreshes;     /* name handles that read the table again after a change */
	uint32_t entries;       /* live instances in the table now */
	bool incomplete;        /* thothd says some instance did not fit */
} thoth_rtable_stats_t;
void thoth_rtable_stats(const thoth_rtable_t *t, thoth_rtable_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
