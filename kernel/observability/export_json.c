/*
 * export_json.c - Chrome Trace Event JSON, as loaded by Perfetto UI and
 * chrome://tracing.
 *
 *   - one track per process and thread: "M" process_name / thread_name
 *   - a trace point is an instant event "i" (thread scope): it has no
 *     duration;
 *   - a message with a trace id is an "X" slice of 1 ns instead, because a
 *     flow binds to an enclosing slice: SEND gets a flow start "s", RECV a
 *     flow end "f", both with id = the trace id and "bp":"e", so the viewer
 *     draws an arrow from the sender's slice to the receiver's, across
 *     processes.
 *   - a lock wait (`lock_wait`, category lock: thoth/mutex.h) is an "X"
 *     slice from the wait's start (the record's timestamp) lasting arg0 ns,
 *     so contention shows as bars on the waiting thread's track.
 * Timestamps are microseconds with nanosecond decimals, as the format wants.
 * JSON numbers are doubles in every viewer: a u64 argument above 2^53 would
 * be rounded, so such a value is written as a decimal string (smaller ones
 * stay numbers).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "collection.h"

/* JSON string body (names are sanitised ASCII; escape what JSON needs). */
static void put_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20 || ch > 0x7e)
			fprintf(out, "\\u%04x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

static void put_common(FILE *out, const char *ph, const thoth_trace_event_t *ev)
{
	fprintf(out, "{\"ph\":\"%s\",\"ts\":%" PRIu64 ".%03" PRIu64 ",\"pid\":%" PRIu32
	             ",\"tid\":%" PRIu32,
	        ph, ev->timestamp_ns / 1000, ev->timestamp_ns % 1000, ev->pid, ev->tid);
}

/* A u64 as a JSON value no viewer rounds: a number up to 2^53, else a string. */
static void put_u64(FILE *out, const char *key, uint64_t v)
{
	if (v <= (UINT64_C(1) << 53))
		fprintf(out, ",\"%s\":%" PRIu64, key, v);
	else
		fprintf(out, ",\"%s\":\"%" PRIu64 "\"", key, v);
}

static void put_event(FILE *out, const thoth_trace_collection_t *c, const collected_event_t *e)
{
	const thoth_trace_event_t *ev = &e->ev;
	bool flow = ev->trace_id && (ev->flags & (THOTH_TRACE_SEND | THOTH_TRACE_RECV));
	bool lock_wait = ev->category == THOTH_TRACE_CAT_LOCK &&
	                 strcmp(c->names[e->name_index], "lock_wait") == 0;
	fputs(",\n", out);
	put_common(out, flow || lock_wait ? "X" : "i", ev);
	if (lock_wait)
		fprintf(out, ",\"dur\":%" PRIu64 ".%03" PRIu64 ",\"name\":", ev->arg0 / 1000,
		        ev->arg0 % 1000);
	else
		fputs(flow ? ",\"dur\":0.001,\"name\":" : ",\"s\":\"t\",\"name\":", out);
	put_string(out, c->names[e->name_index]);
	fprintf(out, ",\"cat\":\"%s\",\"args\":{\"cpu\":%u,\"service_id\":%" PRIu32
	             ",\"interface_id\":%" PRIu32 ",\"method\":%u,\"request_id\":%" PRIu32
	             ",\"payload_size\":%" PRIu32 ",\"transport\":\"%s\",\"trace_id\":\"0x%" PRIx64 "\"",
	        thoth_trace_category_name(ev->category), ev->cpu, ev->service_id,
	        ev->interface_id, ev->method, ev->request_id, ev->payload_size,
	        thoth_trace_transport_name(ev->flags), ev->trace_id);
	put_u64(out, "arg0", ev->arg0);
	put_u64(out, "arg1", ev->arg1);
	fputs("}}", out);
	if (!flow)
		return;
	fputs(",\n", out);
	put_common(out, (ev->flags & THOTH_TRACE_SEND) ? "s" : "f", ev);
	fprintf(out, ",\"name\":\"message\",\"cat\":\"flow\",\"id\":\"0x%" PRIx64 "\",\"bp\":\"e\"}",
	        ev->trace_id);
}

int thoth_trace_export_chrome_json(const thoth_trace_collection_t *c, FILE *out)
{
	if (!c || !out)
		return THOTH_E_INVAL;
	const collected_event_t **sorted;
	int err = thoth_trace_collection_sorted(c, &sorted);
	if (err)
		return err;
	fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", out);
	fputs("{\"ph\":\"M\",\"name\":\"trace_source\",\"pid\":0,\"tid\":0,"
	      "\"args\":{\"name\":\"thoth\"}}", out);
	for (size_t i = 0; i < c->process_count; i++) {
		fprintf(out, ",\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%" PRIu32
		             ",\"tid\":0,\"args\":{\"name\":",
		        c->processes[i].pid);
		put_string(out, c->processes[i].name);
		fputs("}}", out);
	}
	for (size_t i = 0; i < c->thread_count; i++) {
		fprintf(out, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%" PRIu32
		             ",\"tid\":%" PRIu32 ",\"args\":{\"name\":",
		        c->threads[i].pid, c->threads[i].tid);
		put_string(out, c->threads[i].name);
		fputs("}}", out);
	}
	for (size_t i = 0; i < c->count; i++)
		put_event(out, c, sorted[i]);
	fputs("\n]}\n", out);
	free(sorted);
	return ferror(out) ? thoth_error_io(errno, "write the trace JSON") : 0;
}
