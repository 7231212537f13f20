/*
 * timerq.c - two index-tracking binary min-heaps (timerq.h).
 *
 * Each entry stores its position in both heaps so that removal from the
 * middle (cancel) is O(log n) without searching.
 */
#include <stdlib.h>

#include "thoth/error.h"
#include "timerq.h"


static uint64_t key(const timerq_entry_t *e, int which)
{
	return which ? e->latest : e->deadline;
}

static size_t *pos(timerq_entry_t *e, int which)
{
	return which ? &e->by_latest : &e->by_deadline;
}

static void place(timerq_entry_t **h, size_t i, timerq_entry_t *e, int which)
{
	h[i] = e;
	*pos(e, which) = i;
}

static void sift_up(timerq_entry_t **h, size_t i, int which)
{
	timerq_entry_t *e = h[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (key(h[parent], which) <= key(e, which))
			break;
		place(h, i, h[parent], which);
		i = parent;
	}
	place(h, i, e, which);
}

static void sift_down(timerq_entry_t **h, size_t n, size_t i, int which)
{
	timerq_entry_t *e = h[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= n)
			break;
		if (child + 1 < n && key(h[child + 1], which) < key(h[child], which))
			child++;
		if (key(e, which) <= key(h[child], which))
			break;
		place(h, i, h[child], which);
		i = child;
	}
	place(h, i, e, which);
}

static void heap_remove(timerq_entry_t **h, size_t n, size_t i, int which)
{
	/* n is the size before removal; the last element fills the hole */
	timerq_entry_t *last = h[n - 1];
	if (i == n - 1)
		return;
	place(h, i, last, which);
	if (i > 0 && key(h[(i - 1) / 2], which) > key(last, which))
		sift_up(h, i, which);
	else
		sift_down(h, n - 1, i, which);
}

void timerq_init(timerq_t *q)
{
	q->deadline_heap = NULL;
	q->latest_heap = NULL;
	q->n = q->cap = 0;
	q->gen = 0;
}

void timerq_free(timerq_t *q)
{
	free(q->deadline_heap);
	free(q->latest_heap);
	timerq_init(q);
}

int timerq_insert(timerq_t *q, timerq_entry_t *e, uint64_t deadline, uint64_t slack)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		timerq_entry_t **a = realloc(q->deadline_heap, cap * sizeof *a);
		if (!a)
			return THOTH_E_NOMEM;
		q->deadline_heap = a;
		timerq_entry_t **b = realloc(q->latest_heap, cap * sizeof *b);
		if (!b)
			return THOTH_E_NOMEM;
		q->latest_heap = b;
		q->cap = cap;
	}
	e->deadline = deadline;
	e->latest = deadline + slack < deadline ? UINT64_MAX : deadline + slack;
	size_t i = q->n++;
	place(q->deadline_heap, i, e, 0);
	place(q->latest_heap, i, e, 1);
	sift_up(q->deadline_heap, i, 0);
	sift_up(q->latest_heap, i, 1);
	q->gen++;
	return 0;
}

void timerq_remove(timerq_t *q, timerq_entry_t *e)
{
	if (!timerq_queued(e))
		return;
	heap_remove(q->deadline_heap, q->n, e->by_deadline, 0);
	heap_remove(q->latest_heap, q->n, e->by_latest, 1);
	q->n--;
	e->by_deadline = e->by_latest = TIMERQ_NONE;
	q->gen++;
}

timerq_entry_t *timerq_pop_due(timerq_t *q, uint64_t now)
{
	if (q->n == 0 || q->deadline_heap[0]->deadline > now)
		return NULL;
	timerq_entry_t *e = q->deadline_heap[0];
	timerq_remove(q, e);
	return e;
}

/* Depth-first over the deadline heap: a node past LIMIT hides its subtree. */
static void max_due(const timerq_t *q, size_t i, uint64_t limit, uint64_t *best, unsigned *budget)
{
	if (i >= q->n || q->deadline_heap[i]->deadline > limit)
		return;
	if (!*budget) {
		*best = limit;          /* too many due together: today's rule */
		return;
	}
	--*budget;
	if (q->deadline_heap[i]->deadline > *best)
		*best = q->deadline_heap[i]->deadline;
	max_due(q, 2 * i + 1, limit, best, budget);
	max_due(q, 2 * i + 2, limit, best, budget);
}

uint64_t timerq_max_due(const timerq_t *q, uint64_t limit)
{
	uint64_t best = 0;
	unsigned budget = 64;
	max_due(q, 0, limit, &best, &budget);
	return best;
}
