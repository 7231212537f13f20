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

/* The table alone, never a round trip: 0, THOTH_E_NOT_FOUND (a miss; the
 * caller may ask thothd), THOTH_E_BUSY (the table never settled). */
int thoth_rtable_lookup(thoth_rtable_t *t, const char *name, const char *min_version, uint16_t numa_node,
			thoth_resolved_t *out);

/* The table's generation (changes after every registry change) and a wait
 * for it to move past SEEN: 0 moved, THOTH_E_TIMEDOUT (TIMEOUT_MS < 0:
 * forever). */
uint32_t thoth_rtable_generation(const thoth_rtable_t *t);
int thoth_rtable_wait(const thoth_rtable_t *t, uint32_t seen, int timeout_ms);

typedef struct thoth_rtable_stats {
	uint64_t hits;          /* answered from the table */
	uint64_t misses;        /* asked thothd */
	uint64_t busy;          /* table never settled: asked thothd */
	uint32_t entries;       /* live instances in the table now */
	bool incomplete;        /* thothd says some instance did not fit */
} thoth_rtable_stats_t;
void thoth_rtable_stats(const thoth_rtable_t *t, thoth_rtable_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
