/*
 * export_ctf.c - a CTF 1.8 trace that babeltrace2 reads: DIR/metadata (TSDL
 * text) and one binary stream file per thread, DIR/stream_<pid>_<tid>, each
 * holding a single packet.  Event ids are assigned per collection (a name
 * seen in several processes is one event class).  Everything is
 * little-endian and byte-aligned, so the binary below is exactly the TSDL.
 *
 * Timestamps are CLOCK_MONOTONIC; the clock's offset is CLOCK_REALTIME -
 * CLOCK_MONOTONIC measured at export, so viewers show wall-clock times (a
 * trace exported in the boot it was recorded in, which is how thothd does
 * it; a clock step between recording and export shifts the dates by it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collection.h"

#define CTF_MAGIC            0xC1FC1FC1u
#define CTF_PACKET_HEAD_SIZE (8u + 40u)  /* packet.header + packet.context */

static const char metadata_prologue[] =
	"/* CTF 1.8 */\n"
	"\n"
	"typealias integer { size = 8; align = 8; signed = false; } := uint8_t;\n"
	"typealias integer { size = 16; align = 8; signed = false; } := uint16_t;\n"
	"typealias integer { size = 32; align = 8; signed = false; } := uint32_t;\n"
	"typealias integer { size = 64; align = 8; signed = false; } := uint64_t;\n"
	"typealias integer { size = 64; align = 8; signed = false; base = hex; } := uint64_hex_t;\n"
	"\n"
	"trace {\n"
	"\tmajor = 1;\n"
	"\tminor = 8;\n"
	"\tbyte_order = le;\n"
	"\tpacket.header := struct {\n"
	"\t\tuint32_t magic;\n"
	"\t\tuint32_t stream_id;\n"
	"\t};\n"
	"};\n"
	"\n"
	"env {\n"
	"\tdomain = \"thoth\";\n"
	"\ttracer_name = \"thoth\";\n"
	"};\n"
	"\n"
	;

/* Then the clock (written with its offset), then this. */
static const char metadata_streams[] =
	"typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := uint64_clock_t;\n"
	"\n"
	"stream {\n"
	"\tid = 0;\n"
	"\tpacket.context := struct {\n"
	"\t\tuint64_clock_t timestamp_begin;\n"
	"\t\tuint64_clock_t timestamp_end;\n"
	"\t\tuint64_t content_size;\n"
	"\t\tuint64_t packet_size;\n"
	"\t\tuint32_t pid;\n"
	"\t\tuint32_t tid;\n"
	"\t};\n"
	"\tevent.header := struct {\n"
	"\t\tuint32_t id;\n"
	"\t\tuint64_clock_t timestamp;\n"
	"\t};\n"
	"};\n";

/* Field list of every event class; put_event writes exactly these bytes. */
static const char event_fields[] =
	"\tfields := struct {\n"
	"\t\tuint16_t cpu;\n"
	"\t\tuint8_t category;\n"
	"\t\tuint8_t flags;\n"
	"\t\tuint32_t service_id;\n"
	"\t\tuint32_t interface_id;\n"
	"\t\tuint16_t method;\n"
	"\t\tuint32_t request_id;\n"
	"\t\tuint32_t payload_size;\n"
	"\t\tuint64_hex_t trace_id;\n"
	"\t\tuint64_t arg0;\n"
	"\t\tuint64_t arg1;\n"
	"\t};\n";
#define CTF_EVENT_SIZE (12u + 2u + 1u + 1u + 4u + 4u + 2u + 4u + 4u + 8u + 8u + 8u)

static void put_bytes(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}
#define PUT(p, v) put_bytes(p, &(v), sizeof(v))

static int write_metadata(const thoth_trace_collection_t *c, const char *dir)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof path, "%s/metadata", dir) >= sizeof path)
		return THOTH_E_INVAL;
	FILE *f = fopen(path, "w");
	if (!f)
		return thoth_error_io(errno, "open %s", path);
	/* where CLOCK_MONOTONIC's zero lies in CLOCK_REALTIME */
	struct timespec mono, real;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	int64_t off_ns = ((int64_t)real.tv_sec - (int64_t)mono.tv_sec) * 1000000000 +
			 ((int64_t)real.tv_nsec - (int64_t)mono.tv_nsec);
	long long off_s = (long long)(off_ns / 1000000000), off_rest = (long long)(off_ns % 1000000000);
	if (off_rest < 0) {
		off_rest += 1000000000;
		off_s--;
	}
	fputs(metadata_prologue, f);
	fprintf(f, "clock {\n\tname = \"monotonic\";\n\tdescription = \"CLOCK_MONOTONIC\";\n"
		   "\tfreq = 1000000000;\n"
		   "\toffset_s = %lld;\n\toffset = %lld;\n"   /* CLOCK_REALTIME - CLOCK_MONOTONIC */
		   "\tabsolute = false;\n};\n\n", off_s, off_rest);
	fputs(metadata_streams, f);
	for (size_t i = 0; i < c->name_count; i++)
		fprintf(f, "\nevent {\n\tname = \"%s\";\n\tid = %zu;\n\tstream_id = 0;\n%s};\n",
		        c->names[i], i, event_fields);
	int err = ferror(f) ? thoth_error_io(errno, "write %s", path) : 0;
	if (fclose(f) != 0 && !err)
		err = thoth_error_io(errno, "close %s", path);
	return err;
}

/* One thread's stream: the SORTED events whose (pid, tid) match. */
static int write_stream(const thoth_trace_collection_t *c, const collected_thread_t *t,
                        const collected_event_t **sorted, const char *dir)
{
	size_t n = 0;
	for (size_t i = 0; i < c->count; i++)
		if (sorted[i]->ev.pid == t->pid && sorted[i]->ev.tid == t->tid)
			n++;
	if (!n)
		return 0;
	size_t size = CTF_PACKET_HEAD_SIZE + n * CTF_EVENT_SIZE;
	uint8_t *buf = malloc(size), *p = buf;
	if (!buf)
		return THOTH_E_NOMEM;
	uint64_t first = 0, last = 0;
	bool seen = false;
	for (size_t i = 0; i < c->count; i++) {
		const thoth_trace_event_t *ev = &sorted[i]->ev;
		if (ev->pid != t->pid || ev->tid != t->tid)
			continue;
		if (!seen)
			first = ev->timestamp_ns;
		seen = true;
		last = ev->timestamp_ns;
	}
	uint32_t magic = CTF_MAGIC, stream_id = 0;
	uint64_t bits = (uint64_t)size * 8;
	PUT(&p, magic);
	PUT(&p, stream_id);
	PUT(&p, first);
	PUT(&p, last);
	PUT(&p, bits);  /* content_size */
	PUT(&p, bits);  /* packet_size */
	PUT(&p, t->pid);
	PUT(&p, t->tid);
	for (size_t i = 0; i < c->count; i++) {
		const thoth_trace_event_t *ev = &sorted[i]->ev;
		if (ev->pid != t->pid || ev->tid != t->tid)
			continue;
		uint32_t id = sorted[i]->name_index;
		PUT(&p, id);
		PUT(&p, ev->timestamp_ns);
		PUT(&p, ev->cpu);
		PUT(&p, ev->category);
		PUT(&p, ev->flags);
		PUT(&p, ev->service_id);
		PUT(&p, ev->interface_id);
		PUT(&p, ev->method);
		PUT(&p, ev->request_id);
		PUT(&p, ev->payload_size);
		PUT(&p, ev->trace_id);
		PUT(&p, ev->arg0);
		PUT(&p, ev->arg1);
	}
	char path[4096];
	int err = THOTH_E_INVAL;
	if ((size_t)snprintf(path, sizeof path, "%s/stream_%" PRIu32 "_%" PRIu32, dir, t->pid,
	                     t->tid) >= sizeof path)
		goto out;
	FILE *f = fopen(path, "wb");
	if (!f) {
		err = thoth_error_io(errno, "open %s", path);
		goto out;
	}
	err = fwrite(buf, 1, size, f) == size ? 0 : thoth_error_io(errno, "write %s", path);
	if (fclose(f) != 0 && !err)
		err = thoth_error_io(errno, "close %s", path);
out:
	free(buf);
	return err;
}

int thoth_trace_export_ctf(const thoth_trace_collection_t *c, const char *dir)
{
	if (!c || !dir)
		return THOTH_E_INVAL;
	int err = write_metadata(c, dir);
	if (err)
		return err;
	const collected_event_t **sorted;
	if ((err = thoth_trace_collection_sorted(c, &sorted)))
		return err;
	for (size_t i = 0; i < c->thread_count && !err; i++)
		err = write_stream(c, &c->threads[i], sorted, dir);
	free(sorted);
	return err;
}
