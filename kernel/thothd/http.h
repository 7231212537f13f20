/*
 * http.h - thothd's dashboard (OBS-3, docs/DASHBOARD.md): an HTTP server on
 * thothd's own loop (http.c) and the live model it serves (http_live.c).
 *
 * Built into the thothd executable only (library thothd_http), never into
 * libthoth: services do not link libmicrohttpd.
 *
 * Cost rule: with no HTTP client connected the dashboard arms no timer and
 * collects nothing (libmicrohttpd's epoll fd sits in the loop; its timeout
 * is asked for only while connections exist).  A connected page (or a
 * Prometheus scrape within the last LIVE_HOLD) switches the LOOP and IPC
 * trace categories on and drains them once a second.
 */
#ifndef THOTHD_HTTP_H
#define THOTHD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thothd.h"

#define THOTHD_HTTP_DEFAULT_PORT 9180   /* docs/DASHBOARD.md */

typedef struct thothd_http_config {
	const char *addr;               /* numeric IPv4/IPv6 address; NULL: 127.0.0.1 */
	int port;                       /* 0: any free port (tests read the URL back) */
	const char *token;              /* NULL or "": none; else required on every request */
	uint32_t max_connections;       /* 0: 1024 (capped by RLIMIT_NOFILE / 4) */
	uint32_t timeout_s;             /* idle connection timeout (0: 10 s) */
	size_t events_memory;           /* event streams' buffers in all, bytes (0: 16 MiB) */
} thothd_http_config_t;

typedef struct thothd_http thothd_http_t;

/* ADDR a numeric IPv4 or IPv6 address (--http-addr): 0, or THOTH_E_INVAL
 * with WHY saying so.  main() checks it with the command line (exit 2). */
int thothd_http_addr_check(const char *addr, char *why, size_t why_len);

/* Serve the dashboard on D's loop; D->dashboard_url is set.  On failure WHY
 * says what (e.g. "127.0.0.1:9180: address already in use"). */
int thothd_http_start(thothd_t *d, const thothd_http_config_t *cfg, thothd_http_t **out,
		      char *why, size_t why_len);
void thothd_http_stop(thothd_http_t *h);

/* ---- http_live.c: what the dashboard shows ---------------------------------------- */

typedef struct thothd_live thothd_live_t;

int thothd_live_new(thothd_t *d, thothd_live_t **out);
void thothd_live_free(thothd_live_t *l);
/* Switch collection on (trace categories LOOP and IPC in every process) or
 * off.  Counters restart at each start. */
int thothd_live_start(thothd_live_t *l);
void thothd_live_stop(thothd_live_t *l);
bool thothd_live_collecting(const thothd_live_t *l);
/* Drain the trace buffers while collecting: here, or handed to a worker
 * when the backlog is big (thothd_tracer_live_drain). */
void thothd_live_drain(thothd_live_t *l);
/* Is a worker draining them?  Then the tick, /metrics and /trace.json wait
 * for it (http.c): their figures include what it drains, and the loop
 * thread does not wait for the tracer's mutex meanwhile. */
bool thothd_live_busy(const thothd_live_t *l);
/* The last interval's rates from what was drained: one JSON object (the
 * SSE `data:`), malloc'ed, NUL-terminated. */
int thothd_live_tick(thothd_live_t *l, char **json, size_t *len);
/* The Prometheus text exposition (format 0.0.4), malloc'ed. */
int thothd_live_metrics(thothd_live_t *l, char **text, size_t *len);
/* A window export's view of the events kept (the last 65,536 routed), as
 * they are now: taken on the loop thread under the tracer's mutex, in time
 * bounded by the segments, names and processes (references to the kept
 * segments, no event copied); read later on a worker without the mutex,
 * the routing path leaving the segments it holds alone. */
typedef struct thothd_live_window thothd_live_window_t;
int thothd_live_window(thothd_live_t *l, thothd_live_window_t **out);
void thothd_live_window_free(thothd_live_window_t *w);
/* Worker: the window's events between FROM_NS and TO_NS (CLOCK_MONOTONIC)
 * in a collection of their own; the caller frees *OUT. */
int thothd_live_window_collect(thothd_live_window_t *w, uint64_t from_ns, uint64_t to_ns,
			       thoth_trace_collection_t **out);
/* Chrome JSON of such a collection, malloc'ed.  Touches nothing else, so it
 * runs on a worker: 65,536 kept events are ~22 MB of JSON and ~0.3 s of
 * CPU, which on the loop thread kept every other client waiting. */
int thothd_live_window_json(const thoth_trace_collection_t *c, char **json, size_t *len);

/* ---- the embedded web/ files (generated from web/ by web/embed.cmake) ---------- */

typedef struct thothd_web_file {
	const char *path;               /* "/index.html" */
	const char *content_type;
	const unsigned char *data;
	size_t size;
} thothd_web_file_t;

extern const thothd_web_file_t thothd_web_files[];
extern const size_t thothd_web_file_count;

#endif
