/*
 * timerq.h - the loop's timer queue: timers with a deadline and a slack.
 *
 * Two binary min-heaps over the same timers: one keyed by deadline (which
 * timers are due), one keyed by latest = deadline + slack (when the loop
 * must wake at the latest).  Insert, remove and re-key are O(log n); the
 * arming instant is read in O(1).  Internal to kernel/sched.
 */
#ifndef THOTH_SCHED_TIMERQ_H
#define THOTH_SCHED_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct timerq_entry {
	uint64_t deadline;
	uint64_t latest;            /* deadline + slack, saturating */
	size_t by_deadline;         /* index in the deadline heap, or TIMERQ_NONE */
	size_t by_latest;           /* index in the latest heap */
} timerq_entry_t;

#define TIMERQ_NONE ((size_t)-1)

typedef struct timerq {
	timerq_entry_t **deadline_heap;
	timerq_entry_t **latest_heap;
	size_t n, cap;
	/* Bumped by every insert and every remove of a queued entry (pop
	 * included): equal generations, the same set of (deadline, latest). */
	uint64_t gen;
} timerq_t;

void timerq_init(timerq_t *q);
void timerq_free(timerq_t *q);
/* 0 or THOTH_E_NOMEM.  E must not be queued already. */
int timerq_insert(timerq_t *q, timerq_entry_t *e, uint64_t deadline, uint64_t slack);
void timerq_remove(timerq_t *q, timerq_entry_t *e);
static inline int timerq_queued(const timerq_entry_t *e) { return e->by_deadline != TIMERQ_NONE; }
/* Earliest deadline / earliest latest; undefined when empty. */
static inline uint64_t timerq_min_deadline(const timerq_t *q) { return q->deadline_heap[0]->deadline; }
static inline uint64_t timerq_min_latest(const timerq_t *q) { return q->latest_heap[0]->latest; }
/* The largest deadline <= LIMIT (0 if none), visiting at most 64 entries
 * (the heap order prunes the rest); LIMIT when there are more. */
uint64_t timerq_max_due(const timerq_t *q, uint64_t limit);
/* Remove and return the entry with the earliest deadline if it is <= NOW. */
timerq_entry_t *timerq_pop_due(timerq_t *q, uint64_t now);

#endif
