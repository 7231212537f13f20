/*
 * probe_runtime.h - what the trace point path (emit.c) calls into the probe
 * runtime (runtime.c).  Not installed.
 */
#ifndef THOTH_PROBE_RUNTIME_H
#define THOTH_PROBE_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "thoth/trace.h"

/* Run the programs attached to this event (its probe bit was set). */
void thoth__probe_fire(unsigned category, uint16_t event_id, const char *name,
                       const thoth_trace_fields_t *f, uint32_t tid);
/* Trace-clock ticks of this process to CLOCK_MONOTONIC ns. */
uint64_t thoth__trace_ticks_to_ns(uint64_t ticks);

/* Take thothd's command from the probe mailbox, if one is waiting. */
void thoth__probe_poll(void);
/* The last mailbox command this process took (mailbox.c). */
extern uint64_t thoth__probe_taken_seq;
/* Set (ANY) or clear the probe bits of every category in the enabled word. */
void thoth__probe_bits(bool any);
/* Whether any program is attached in this process. */
bool thoth__probe_any(void);

#endif
