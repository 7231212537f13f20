/*
 * fuzz_trace_reader.c - the input bytes are a trace buffer image (the shared
 * memory a hostile or crashed writer left behind); the reader and both
 * exporters must handle any of them without crashing or reading outside it.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "thoth/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count(const thoth_trace_event_t *ev, void *ctx)
{
	(*(size_t *)ctx)++;
	return 0;
}

/* The CTF exporter's folder: one per process, under TMPDIR, removed at
 * exit (the seed replays of make test made one per run and left it). */
static char dir[4096];
static int have_dir;

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void remove_dir(void)
{
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!have_dir) {
		const char *tmp = getenv("TMPDIR");
		snprintf(dir, sizeof dir, "%s/fuzz-trace-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		have_dir = mkdtemp(dir) != NULL;
		if (have_dir)
			atexit(remove_dir);
	}

	thoth_trace_reader_t *r;
	if (thoth_trace_reader_open_image(data, size, &r) != 0)
		return 0;
	/* Poll twice: the second poll must find nothing new. */
	size_t n = 0;
	thoth_trace_reader_poll(r, count, &n);
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	if (st.read != n)
		abort();
	n = 0;
	thoth_trace_reader_poll(r, count, &n);
	if (n != 0)
		abort();
	thoth_trace_reader_close(r);

	/* And the exporters over a fresh reader of the same image. */
	if (thoth_trace_reader_open_image(data, size, &r) != 0)
		abort();
	thoth_trace_collection_t *c;
	if (thoth_trace_collection_new(&c) == 0) {
		if (thoth_trace_collection_add(c, r) == 0) {
			FILE *null = fopen("/dev/null", "w");
			if (null) {
				thoth_trace_export_chrome_json(c, null);
				fclose(null);
			}
			if (have_dir)
				thoth_trace_export_ctf(c, dir);
		}
		thoth_trace_collection_free(c);
	}
	thoth_trace_reader_close(r);
	return 0;
}
