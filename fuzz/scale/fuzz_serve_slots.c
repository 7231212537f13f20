/*
 * fuzz_serve_slots.c - a serving process's counter slots as thothd reads
 * them (SCALE-2, docs/SCALE.md "A per-CPU service's counters in
 * thothctl"): the input bytes replace the serve header in the control page
 * (the first 216 bytes) and the slots after the rings (the rest) of an
 * otherwise valid trace buffer image, whose peer may write anything there.
 * thoth__trace_reader_serve must answer or refuse without reading outside
 * the image, and an answer must be self-consistent.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve_slots.h"
#include "trace_layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { RECORDS = 8, SLOTS = 4, REGION = 16384, IMAGE = REGION + 4096 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t image[IMAGE];
	memset(image, 0, sizeof image);
	thoth_trace_control_t *c = (thoth_trace_control_t *)image;
	c->magic = THOTH_TRACE_MAGIC;
	c->version = THOTH_TRACE_VERSION;
	c->record_size = THOTH_TRACE_RECORD_SIZE;
	c->ring_count = 1;
	c->ring_records = RECORDS;
	c->total_size = IMAGE;
	thoth_trace_serve_t *sv = (thoth_trace_serve_t *)(image + THOTH_TRACE_SERVE_OFFSET);
	*sv = (thoth_trace_serve_t){ .magic = THOTH_TRACE_SERVE_MAGIC, .slot_size = THOTH_TRACE_SERVE_SLOT,
				     .slot_count = SLOTS, .region_offset = REGION };
	size_t head = size < sizeof *sv ? size : sizeof *sv;
	memcpy(sv, data, head);
	size_t rest = size - head;
	if (rest > IMAGE - REGION)
		rest = IMAGE - REGION;
	memcpy(image + REGION, data + head, rest);

	thoth_trace_reader_t *r;
	if (thoth_trace_reader_open_image(image, sizeof image, &r) != 0)
		abort();        /* the control page is valid: only the serve parts vary */
	thoth_trace_serve_view_t v;
	char why[160];
	int e = thoth__trace_reader_serve(r, &v, why, sizeof why);
	if (!e) {
		if (v.workers > v.slot_count || v.slot_count > THOTH_TRACE_SERVE_MAX_SLOTS ||
		    strnlen(v.iface, sizeof v.iface) == sizeof v.iface ||
		    strnlen(v.path, sizeof v.path) == sizeof v.path)
			abort();
		for (const char *p = v.iface; *p; p++)
			if (*p < 0x20 || *p > 0x7e)
				abort();
		uint64_t sum = 0;
		uint32_t n = v.workers < THOTH_TRACE_SERVE_VIEW_WORKERS ? v.workers
									: THOTH_TRACE_SERVE_VIEW_WORKERS;
		for (uint32_t i = 0; i < n; i++)
			sum = sum + v.worker_calls[i] < sum ? UINT64_MAX : sum + v.worker_calls[i];
		if (v.workers <= THOTH_TRACE_SERVE_VIEW_WORKERS && sum != v.total.calls)
			abort();        /* the per-worker calls add up to the fold */
	} else if (!why[0]) {
		abort();        /* a refusal says why */
	}
	thoth_trace_reader_close(r);
	return 0;
}
