/*
 * collection.h - the collection's layout, shared by collection.c and the
 * exporters.  Events keep an index into an interned name table so the table
 * can grow without invalidating them.
 */
#ifndef THOTH_TRACE_COLLECTION_H
#define THOTH_TRACE_COLLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "thoth/trace.h"

typedef struct collected_event {
	thoth_trace_event_t ev;   /* ev.name is NULL here: use name_index */
	uint32_t name_index;      /* into collection->names */
} collected_event_t;

typedef struct collected_thread {
	uint32_t pid, tid;
	char name[16];
} collected_thread_t;

typedef struct collected_process {
	uint32_t pid;
	char name[32];
} collected_process_t;

struct thoth_trace_collection {
	collected_event_t *events;
	size_t count, cap;
	char (*names)[THOTH_TRACE_NAME_MAX + 1];
	size_t name_count, name_cap;
	collected_thread_t *threads;
	size_t thread_count, thread_cap;
	collected_process_t *processes;
	size_t process_count, process_cap;
};

/* The events in (timestamp, pid, tid, seq) order; caller frees the array. */
int thoth_trace_collection_sorted(const thoth_trace_collection_t *c,
                                  const collected_event_t ***out);
/* A copy of C (thothd writes an active session's events from a copy while
 * the session goes on adding to C). */
int thoth__trace_collection_clone(const thoth_trace_collection_t *c,
                                  thoth_trace_collection_t **out);
/* Exporters' names for a category and a transport. */
const char *thoth_trace_category_name(unsigned category);
const char *thoth_trace_transport_name(unsigned flags);

#endif
