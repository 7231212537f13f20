/* thoth/mutex.h - a mutex with contention statistics cheap enough to leave
 * on (OBS-4, docs/LOCKS.md "Native").
 *
 *   static thoth_mutex_t table_lock = THOTH_MUTEX_INITIALIZER("table");
 *   thoth_mutex_lock(&table_lock);
 *   ...
 *   thoth_mutex_unlock(&table_lock);
 *
 * A thoth_mutex_t is a pthread mutex plus four counters. The uncontended
 * path is a trylock and one increment of a counter in the mutex's own
 * cache line, which the holder owns at that moment anyway (no clock
 * read, no other shared write). Only a failed trylock reads the clock,
 * around the blocking lock. The counters are written only by the holder,
 * so plain adds need no atomic instruction: that handful of stores into
 * the line the holder already owns is the one piece of bookkeeping done
 * inside the critical section (the profiler for other programs,
 * libthothlock.so, does none there; here it would cost more outside, an
 * atomic add on a line another thread now owns).  thoth_mutex_stats()
 * reads them racily (relaxed).
 *
 * Every mutex that was initialised with thoth_mutex_init, or that
 * waited once, is listed by thoth_mutex_stats_foreach; the JSON
 * writer prints them in thothlock's report format (a `locks` array).
 *
 * The struct is public so a mutex can be embedded and statically
 * initialised (as pthread_mutex_t is); its fields are private.
 */
#ifndef THOTH_MUTEX_H
#define THOTH_MUTEX_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_mutex {
	pthread_mutex_t lock;
	/* Private.  Written by the holder only. */
	uint64_t acquisitions;
	uint64_t contentions;
	uint64_t wait_ns_total;
	uint64_t wait_ns_max;
	const char *name;              /* static string; NULL: unnamed */
	struct thoth_mutex *next;      /* the process's list (thoth_mutex_stats_foreach) */
	int listed;                    /* on the list (set under the list's lock) */
} thoth_mutex_t;

#define THOTH_MUTEX_INITIALIZER(name_) \
	{ PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, (name_), NULL, 0 }

typedef struct thoth_lock_stats {
	const char *name;              /* as given, or NULL */
	const void *address;
	uint64_t acquisitions;
	uint64_t contentions;
	uint64_t wait_ns_total;
	uint64_t wait_ns_max;
} thoth_lock_stats_t;

/* Initialise (name: a static string, may be NULL) and list the mutex.
 * 0 or a negative THOTH_E_* code. */
int thoth_mutex_init(thoth_mutex_t *m, const char *name);
/* Unlist and destroy; the mutex must be unlocked.  0 or THOTH_E_BUSY. */
int thoth_mutex_destroy(thoth_mutex_t *m);

void thoth_mutex_lock(thoth_mutex_t *m);
/* 0 when taken, THOTH_E_BUSY when another thread holds it. */
int thoth_mutex_trylock(thoth_mutex_t *m);
void thoth_mutex_unlock(thoth_mutex_t *m);

/* A snapshot of one mutex's counters (racy by design: may lag). */
void thoth_mutex_stats(const thoth_mutex_t *m, thoth_lock_stats_t *out);

/* Call fn for every listed mutex; stops at fn's first non-zero return,
 * which it returns. */
int thoth_mutex_stats_foreach(int (*fn)(const thoth_lock_stats_t *st, void *ctx), void *ctx);

/* Every listed mutex as thothlock's JSON report (docs/LOCKS.md): one
 * object with a `locks` array sorted by total wait, kind "thoth_mutex".
 * 0 or THOTH_E_IO / THOTH_E_NOMEM. */
int thoth_mutex_stats_write_json(FILE *out);

#ifdef __cplusplus
}
#endif

#endif
