/*
 * trace_internal.h - the writer side's process-wide state, shared by the
 * buffer lifecycle (buffer.c) and the hot path (emit.c).  Not installed.
 */
#ifndef THOTH_TRACE_INTERNAL_H
#define THOTH_TRACE_INTERNAL_H

#include <pthread.h>

#include "thoth/mutex.h"
#include "trace_layout.h"

/*
 * The process's trace buffer.  Written by init/shutdown only (callers keep
 * those apart from trace points); read by every enabled trace point.
 * generation changes at each init so that per-thread ring pointers and
 * per-call-site event ids cached under an older buffer are refreshed.
 *
 * Once the memfd is handed out, whoever holds it can write any byte of the
 * buffer (thothd must: it sets `enabled` and the ring tails).  So the writer
 * keeps the truth of everything it reads back in private memory here - the
 * name table and its count, the ring claim counter - and only publishes it
 * to the shared copy for readers.  The shared bytes the hot path still reads
 * (`enabled`, a DROP_NEWEST ring's `tail`) are harmless at any value: a
 * mask of categories to record, and how far the reader got.
 */
typedef struct thoth_trace_buffer {
	void *base;
	size_t size;
	int fd;
	thoth_trace_control_t *control;
	uint32_t generation;      /* 0 = no buffer; low 16 bits never 0 */
	uint32_t ring_count;
	uint32_t ring_records;
	uint32_t ring_mask;
	uint32_t full_policy;
	uint32_t pid;                /* the creating process (trace ids) */
	uint32_t rings_claimed;      /* private truth of control.rings_claimed */
	thoth_mutex_t names_lock;    /* serialises name-table appends (contention counted: thoth/mutex.h) */
	uint32_t names_count;        /* private truth of control.names_count (under names_lock) */
	thoth_trace_name_t names[THOTH_TRACE_MAX_NAMES];  /* private copy of the name table */
} thoth_trace_buffer_t;

extern thoth_trace_buffer_t thoth_trace_buffer;

/* Writer-side test hooks (tests/observability only). */
thoth_trace_ring_header_t *thoth_trace_thread_ring(void);

#endif
