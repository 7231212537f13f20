/* fuzz_lock_table.c - hostile lock-profiler tables through the reader.
 *
 * A real table is ~100 MiB of mostly holes, too large for a fuzzer input,
 * so the input fills a small table of the same format (8 locks, 8 sites,
 * 1 thread, 8 per-thread entries: the regions the reader checks, in their
 * places): byte 0 chooses what the input overwrites, the rest is copied
 * over the per-thread entries (format 4's new decoder), the keys, the
 * sites and the lock statistics, in that order, and with bit 0 set over
 * the header from byte 8 on (its geometry: mostly refusals, which must
 * name a reason and leak nothing).  The table is written to a temporary
 * file and loaded with thothlock_table_load, as thothd does; a table it
 * accepts is reported as JSON.  Nothing may crash, hang or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lockprof_layout.h"
#include "lockprof_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { LOCKS = 8, SITES = 8, TSTATS = 8 };

static size_t template_table(uint8_t **out)
{
	thothlock_header_t h = { 0 };
	h.magic = THOTHLOCK_MAGIC;
	h.version = THOTHLOCK_VERSION;
	h.header_size = THOTHLOCK_HEADER_SIZE;
	h.stack_depth = THOTHLOCK_STACK_DEPTH;
	h.mode = THOTHLOCK_MODE_ALL;
	h.pid = 1;
	h.lock_capacity = LOCKS;
	h.site_capacity = SITES;
	h.thread_capacity = 1;
	h.keys_offset = THOTHLOCK_HEADER_SIZE;
	h.locks_offset = h.keys_offset + LOCKS * sizeof(thothlock_key_t);
	h.sites_offset = h.locks_offset + LOCKS * sizeof(thothlock_lock_t);
	h.caches_offset = h.sites_offset + SITES * sizeof(thothlock_site_t);
	h.events_offset = h.caches_offset + sizeof(thothlock_cache_t);
	h.event_capacity = 1;
	while ((h.events_offset + h.event_capacity * sizeof(thothlock_event_t)) % 64)
		h.event_capacity *= 2;
	h.tstats_offset = h.events_offset + h.event_capacity * sizeof(thothlock_event_t);
	h.tstat_capacity = TSTATS;
	h.tstats_used = TSTATS;
	h.sites_used = SITES;
	h.site_slots_offset = h.tstats_offset + TSTATS * sizeof(thothlock_tstat_t);
	h.file_size = h.site_slots_offset + 2 * SITES * sizeof(thothlock_site_slot_t);
	uint8_t *t = calloc(1, h.file_size);
	if (!t)
		abort();
	memcpy(t, &h, sizeof h);
	*out = t;
	return h.file_size;
}

/* Copies input bytes over [off, off + len) of the table; returns how many
 * it used. */
static size_t overlay(uint8_t *t, uint64_t off, size_t len, const uint8_t *data, size_t size)
{
	size_t n = size < len ? size : len;
	memcpy(t + off, data, n);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t *t;
	size_t total = template_table(&t);
	const thothlock_header_t h = *(const thothlock_header_t *)t;
	uint8_t flags = data[0];
	data++;
	size--;
	size_t used;
	used = overlay(t, h.tstats_offset, TSTATS * sizeof(thothlock_tstat_t), data, size);
	data += used, size -= used;
	used = overlay(t, h.keys_offset, LOCKS * sizeof(thothlock_key_t), data, size);
	data += used, size -= used;
	used = overlay(t, h.sites_offset, SITES * sizeof(thothlock_site_t), data, size);
	data += used, size -= used;
	used = overlay(t, h.locks_offset, LOCKS * sizeof(thothlock_lock_t), data, size);
	data += used, size -= used;
	if (flags & 1)
		(void)overlay(t, 8, sizeof(thothlock_header_t) - 8, data, size);

	char path[4096];
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/fuzz_lock_table.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	size_t off = 0;
	while (off < total) {
		ssize_t w = write(fd, t + off, total - off);
		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	close(fd);
	free(t);

	thothlock_table_t *table = NULL;
	char why[256] = "";
	if (thothlock_table_load(path, &table, why, sizeof why) == 0) {
		FILE *out = fopen("/dev/null", "w");
		if (!out)
			abort();
		thothlock_report_opts_t opts = { .json = true, .show_uncontended = true };
		thothlock_table_t *const tables[1] = { table };
		(void)thothlock_report_write(out, tables, 1, &opts);
		fclose(out);
		thothlock_table_free(table);
	} else if (!why[0]) {
		abort();   /* a refusal must say why */
	}
	unlink(path);
	return 0;
}
