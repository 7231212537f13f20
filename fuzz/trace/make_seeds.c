/*
 * make_seeds.c - writes the seed corpus of fuzz_trace_reader: real buffer
 * images taken from a small live buffer (events of every shape, a wrapped
 * ring, a half-written record).  Run: fuzz_trace_make_seeds OUTDIR
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thoth/trace.h"
#include "trace_internal.h"

static int save(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f)
		return 1;
	size_t n = fwrite(thoth_trace_buffer.base, 1, thoth_trace_buffer.size, f);
	return fclose(f) != 0 || n != thoth_trace_buffer.size;
}

static int one(const char *dir, const char *name, uint32_t policy, int events, int torn)
{
	thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = 8, .full_policy = policy,
	                             .enabled = THOTH_TRACE_ALL_CATEGORIES, .process_name = "seed" };
	if (thoth_trace_init(&cfg) != 0)
		return 1;
	for (int i = 0; i < events; i++) {
		THOTH_TRACE(USER, seed_event, i, ~(uint64_t)i);
		THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, 7, 0x1234, 2, i, 64,
		                THOTH_TRACE_INLINE, 0x100 + i);
	}
	if (torn) {
		thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
		thoth_trace_ring_records(ring)[ring->head & 7].word0 = THOTH_TRACE_COMMIT_BUSY;
	}
	int err = save(dir, name);
	thoth_trace_shutdown();
	return err;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	return one(argv[1], "empty", THOTH_TRACE_DROP_NEWEST, 0, 0) |
	       one(argv[1], "few_events", THOTH_TRACE_DROP_NEWEST, 2, 0) |
	       one(argv[1], "dropped", THOTH_TRACE_DROP_NEWEST, 10, 0) |
	       one(argv[1], "wrapped", THOTH_TRACE_OVERWRITE_OLDEST, 13, 0) |
	       one(argv[1], "torn", THOTH_TRACE_DROP_NEWEST, 3, 1);
}
