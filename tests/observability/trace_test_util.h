/*
 * trace_test_util.h - helpers shared by the tracing tests: drain a reader
 * into an array, and wait on a condition with a deadline (never a sleep).
 */
#ifndef THOTH_TRACE_TEST_UTIL_H
#define THOTH_TRACE_TEST_UTIL_H

#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/testutil.h"        /* test_now_ns */
#include "thoth/trace.h"

typedef struct event_list {
	thoth_trace_event_t *events;
	char (*names)[32];
	size_t count, cap;
} event_list_t;

static inline int event_list_add(const thoth_trace_event_t *ev, void *arg)
{
	event_list_t *l = arg;
	if (l->count == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 256;
		thoth_trace_event_t *e = realloc(l->events, ncap * sizeof *e);
		if (!e)
			return THOTH_E_NOMEM;
		l->events = e;
		char (*n)[32] = realloc(l->names, ncap * sizeof *n);
		if (!n)
			return THOTH_E_NOMEM;
		l->names = n;
		l->cap = ncap;
	}
	l->events[l->count] = *ev;
	snprintf(l->names[l->count], sizeof l->names[0], "%s", ev->name);
	l->events[l->count].name = l->names[l->count];
	l->count++;
	return 0;
}

static inline void event_list_free(event_list_t *l)
{
	free(l->events);
	free(l->names);
	memset(l, 0, sizeof *l);
}

/* A deadline for waits on conditions: generous, since CI machines stall. */
static inline uint64_t test_deadline(void)
{
	return test_now_ns() + 30ull * 1000000000u;
}

#endif
