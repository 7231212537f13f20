/*
 * ipc_trace.h - how every transport in kernel/ipc reports a message to the
 * tracer (OBS-1): the same fields, read from the wire header, whichever
 * transport carried it.  Internal to kernel/ipc.
 */
#ifndef THOTH_IPC_TRACE_H
#define THOTH_IPC_TRACE_H

#include "thoth/trace.h"
#include "thoth/wire.h"

/* The message at MSG (at least a header) as an IPC trace event and USDT
 * probe NAME; SVC is the pid of the process serving the call (0 unknown). */
#define THOTH_TRACE_WIRE_MSG(name, dir, svc, msg, transport)                               \
	THOTH_TRACE_MSG(IPC, name, dir, svc, thoth_le32((msg) + 8), thoth_le32((msg) + 12), \
			thoth_le32((msg) + 32), thoth_le32((msg) + 36), transport,           \
			thoth_le64((msg) + 24))

/* The same with the service instance (pid), the event's trace-clock time TS
 * (0 = now) and the queueing delay in trace-clock ticks (0 = unknown). */
#define THOTH_TRACE_WIRE_MSG_Q(name, dir, svc, msg, transport, ts, queue_ticks)           \
	THOTH_TRACE_MSG_Q(IPC, name, dir, svc, thoth_le32((msg) + 8), thoth_le32((msg) + 12), \
			  thoth_le32((msg) + 32), thoth_le32((msg) + 36), transport,           \
			  thoth_le64((msg) + 24), ts, queue_ticks)

/* A request about to be sent gets a trace id when tracing wants one, so
 * the exporters can link its send to its receive in the other process. */
static inline void thoth_trace_stamp_request(uint8_t *msg)
{
	if (THOTH_TRACE_IS_ON(IPC) && thoth_le64(msg + 24) == 0 &&
	    (thoth_le16(msg + 6) & THOTH_MSG_REQUEST))
		thoth_st64(msg + 24, thoth_trace_new_id());
}

#endif
