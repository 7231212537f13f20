/*
 * trace_internal.h - the writer side's process-wide state, shared by the
 * buffer lifecycle (buffer.c) and the hot path (emit.c).  Not installed.
 */
#ifndef THOTH_TRACE_INTERNAL_H
#define THOTH_TRACE_INTERNAL_H

#include <pthread.h>

#include "trace_layout.h"

/*
 * The process's trace buffer.  Written by init/shutdown only (callers keep
 * those apart from trace points); read by every enabled trace point.
 * generation changes at each init so that per-thread ring pointers and
 * per-call-site event ids cached under an older buffer are refreshed.
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
	pthread_mutex_t names_lock;  /* serialises name-table appends */
} thoth_trace_buffer_t;

extern thoth_trace_buffer_t thoth_trace_buffer;

/* Writer-side test hooks (tests/observability only). */
thoth_trace_ring_header_t *thoth_trace_thread_ring(void);

#endif
