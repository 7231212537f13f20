/*
 * serve_slots.h - where a serving process keeps its workers' counters so
 * that thothd can fold them (SCALE-2; layout: trace_layout.h,
 * thoth_trace_serve_t; defined in serve_slots.c).  The writer's side is
 * kernel/ipc/chan_server.c's; the reader's is thothd's (serve_stats.c).
 */
#ifndef THOTH_SERVE_SLOTS_H
#define THOTH_SERVE_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "thoth/channel.h"
#include "thoth/trace.h"

/* N zeroed slots of this process's trace buffer for a service's workers
 * (slot i at the returned address + i * thoth__trace_serve_slot_size()),
 * described as IFACE served at PATH.  NULL, and the counters stay private,
 * when the process has no trace buffer, another service holds the slots,
 * or N or STATS_SIZE does not fit.  Released by thoth__trace_serve_release
 * once no worker writes any more. */
void *thoth__trace_serve_claim(uint32_t n, uint32_t stats_size, const char *iface, const char *path);
void thoth__trace_serve_release(void);
uint32_t thoth__trace_serve_slot_size(void);

/* What a reader made of a process's serve counters: the workers' slots
 * folded (saturating), each worker's calls (the first
 * THOTH_TRACE_SERVE_VIEW_WORKERS), what is served, strings made printable. */
#define THOTH_TRACE_SERVE_VIEW_WORKERS 64u
typedef struct thoth_trace_serve_view {
	uint32_t workers;               /* 0: the process does not serve now */
	uint32_t slot_count;
	uint32_t runs;
	char iface[64];
	char path[112];
	thoth_chan_server_stats_t total;
	uint64_t worker_calls[THOTH_TRACE_SERVE_VIEW_WORKERS];
} thoth_trace_serve_view_t;

/* Read the serve counters of the buffer R maps, trusting none of it:
 * geometry against the mapping, workers against the slots, strings
 * bounded, the header settled (bounded retries).  0; THOTH_E_NOT_FOUND (no
 * serve block: an older writer); THOTH_E_PROTOCOL (a lie: WHY says which);
 * THOTH_E_BUSY (the header never settled). */
int thoth__trace_reader_serve(thoth_trace_reader_t *r, thoth_trace_serve_view_t *out, char *why,
			      size_t why_len);

/* The process's oneway calls dropped (thoth_rpc_oneways_dropped), as it
 * last wrote them into its control page (trace_layout.h; reader.c): a
 * peer's figure, shown, never trusted for anything else.  0 without a
 * mapping or from a library older than the field. */
uint64_t thoth__trace_reader_oneways_dropped(const thoth_trace_reader_t *r);

#endif
