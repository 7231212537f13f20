/*
 * http.c - the dashboard's HTTP server: libmicrohttpd driven by thothd's
 * thoth_loop, with no thread of its own (docs/DASHBOARD.md).
 *
 * libmicrohttpd runs in "external epoll" mode: its epoll fd (listening
 * socket, connections, the suspend/resume eventfd) is one fd source of the
 * loop, and MHD_run() is called when it is readable.  Its timeout
 * (connection idle limits) is asked for after every run and becomes one
 * loop timer, which exists only while connections do: with no client the
 * dashboard costs no wake-up.
 *
 * Routes (GET/HEAD only; everything else 405):
 *   /, /index.html, /dashboard.js, /dashboard.css   embedded web/ files
 *   /metrics      Prometheus text exposition (http_live.c)
 *   /lifecycle.json  recent lifecycle events (lifecycle.c, OBS-3)
 *   /federation.json the federation (SCALE-3), as thothctl status --json's "federation"
 *   /services.json   the registered instances with their last load reports (SCALE-3)
 *   /events       Server-Sent Events, one `data:` object a second
 *   /trace.json?from_ns=A&to_ns=B   Chrome JSON of that window (Perfetto),
 *                 made on a worker thread, at most EXPORTS_MAX at once
 * Any other path is 404: files are served from the table compiled in, never
 * from the file system, so no path can reach outside it.
 *
 * Server-Sent Events: the response is produced by a content-reader
 * callback; when it has nothing to send it suspends its connection, and the
 * 1 Hz tick appends the next object to every client and resumes them.  The
 * tick exists only while a page is connected, or for LIVE_HOLD after a
 * Prometheus scrape (so rates are continuous between scrapes).
 *
 * The tick and the requests that read the dashboard's figures (/metrics,
 * /trace.json) drain the trace buffers first.  A busy backlog is drained
 * by thothd's task thread (trace.c, thothd_tracer_live_drain); while it
 * drains, they wait for it -- the tick is postponed, the requests'
 * connections suspended -- and go on when it is done (live_drained), with
 * what it drained: their figures are complete, and the loop thread does
 * not wait for the tracer's mutex the drain holds in the meantime.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "jsonbuf.h"
#include "http.h"
#include "log.h"

#define MS_NS 1000000ull
#define S_NS 1000000000ull

static const uint64_t TICK_NS = S_NS;           /* SSE objects: 1 Hz */
static const uint64_t TICK_SLACK_NS = 100 * MS_NS;
static const uint64_t LIVE_HOLD_NS = 120 * S_NS;        /* after a scrape */
enum {
	SSE_MAX_BACKLOG = 256 << 10,    /* a page that does not read is closed beyond this */
	/* The streams' unsent objects together (--http-events-memory-kib).
	 * Each object is shared by every stream it goes to, so what they hold
	 * runs from the oldest object a stream has not taken to the newest
	 * (copied per stream, 1,024 pages that do not read had held up to 256
	 * MiB).  Beyond it the streams with the largest backlog are closed,
	 * the largest first. */
	EVENTS_MEMORY_DEFAULT = 16 << 20,
	MEMORY_LIMIT = 16 << 10,        /* per connection: request line + headers must fit */
	SSE_SNDBUF = 16 << 10,          /* an event stream's socket send buffer (doubled by Linux) */
	MAX_WINDOW_S = 120,
	/* Window exports made or being sent at once: each is up to ~22 MB
	 * (65,536 kept events), and 30 clients that asked and did not read
	 * grew thothd by 400 MB in 8 s.  Beyond: 503 with Retry-After. */
	EXPORTS_MAX = 4,
};

/*
 * A /trace.json answer.  The loop thread takes a view of the kept events
 * (thothd_live_window: references to their segments, no event copied);
 * a worker copies the window's events out of it and writes the JSON
 * (~0.3 s for a full window: on the loop thread it held every other client
 * that long, 30 requests 10 s) while the connection is suspended; the loop
 * thread then resumes it and MHD asks again (on_request) for the answer.
 * It lives until MHD has sent the body (export_sent).
 */
typedef struct export_job {
	struct thothd_http *h;          /* NULL: orphaned (connection or dashboard gone) */
	struct MHD_Connection *conn;
	thothd_live_window_t *w;        /* the worker's, until it is done */
	uint64_t from, to;
	char *json;
	size_t len;
	int status;
	char *gate;                     /* THOTHD_TEST_EXPORT_GATE, the job's own copy */
	bool done;                      /* the worker finished (loop thread's view) */
	bool linked;
	struct export_job *prev, *next; /* h->exports: made, not yet answered */
} export_job_t;

/* One object of the stream (the greeting, a tick), shared by the streams
 * it was given to; freed when the last has sent it. */
typedef struct sse_obj {
	uint32_t refs;
	size_t len;
	char data[];
} sse_obj_t;

typedef struct sse_ref {
	sse_obj_t *obj;
	struct sse_ref *next;
} sse_ref_t;
/* What a reference is counted at: glibc's smallest chunk, 32 bytes, which
 * a 16-byte sse_ref_t takes (its 8-byte header and 16-byte alignment). */
#define SSE_REF_BYTES ((size_t)32)
_Static_assert(sizeof(sse_ref_t) <= 24, "sse_ref_t outgrows the chunk it is counted at");

typedef struct sse_client {
	struct thothd_http *h;
	struct MHD_Connection *conn;
	sse_ref_t *head, *tail;         /* objects not yet sent, oldest first */
	size_t off;                     /* sent of head's object */
	size_t unsent;                  /* bytes in all */
	bool suspended;
	bool closing;                   /* backlog exceeded or shutting down */
	bool dropped;                   /* closed for its backlog: buffer freed, socket shut */
	struct sse_client *prev, *next;
} sse_client_t;

/*
 * A connection whose request head (request line and headers) is awaited.
 * MHD's timeout is an idle timeout, reset by every byte: a client sending
 * one header byte every few seconds (slowloris) would hold its connection
 * for ever, and a few hundred such clients every connection the dashboard
 * has.  So the whole head must arrive within the timeout of the
 * connection's start (or of the end of its previous request): connections
 * waiting for a head are kept in deadline order (every deadline is now +
 * the same limit, so appending keeps the order), and one past its deadline
 * is shut down, which MHD then sees as the peer's close.
 */
typedef struct head_wait {
	int fd;
	bool linked;
	uint64_t deadline_ns;
	struct head_wait *prev, *next;
} head_wait_t;

struct thothd_http {
	thothd_t *d;
	thoth_loop_t *loop;
	struct MHD_Daemon *mhd;
	thoth_source_t *source;
	thoth_timer_t *mhd_timer;       /* MHD's timeout: only while connections exist */
	head_wait_t *heads, *heads_tail;        /* awaiting a request head, by deadline */
	uint64_t head_limit_ns;         /* the connection timeout */
	bool run_deferred;
	char token[256];
	thothd_live_t *live;
	sse_client_t *sse;
	uint32_t n_sse;
	size_t sse_bytes;               /* the streams' unsent objects and their references */
	size_t events_memory;           /* ...at most this */
	uint64_t sse_closed_backlog;    /* streams closed at SSE_MAX_BACKLOG of their own */
	uint64_t sse_closed_memory;     /* ...or for the bound in all */
	uint64_t sse_closed_alloc;      /* ...or malloc failed for a tick's reference */
	uint64_t sse_refused;           /* new streams refused: no room, nothing to close */
	uint64_t sse_refused_alloc;     /* ...or no memory from malloc */
	size_t sse_tick_bytes;          /* the newest tick object, left out of the bound */
	bool sse_tick_warned;           /* a tick near the bound was logged */
	thoth_timer_t *tick;            /* only while collecting */
	bool tick_waits;                /* a tick came while a worker drained: run at its end */
	struct MHD_Connection **waiting;        /* requests suspended until the drain ends */
	export_job_t *exports;          /* window exports not yet answered */
	uint32_t n_exports;             /* ...and those being sent (EXPORTS_MAX) */
	char *export_gate;              /* THOTHD_TEST_EXPORT_GATE: a FIFO (tests) */
	size_t n_waiting, cap_waiting;
	uint64_t hold_until_ns;         /* collect until then after a scrape */
	uint64_t hold_ns;               /* LIVE_HOLD_NS, or THOTHD_LIVE_HOLD_MS (tests) */
	size_t tick_pad;                /* THOTHD_TEST_TICK_PAD: spaces after each tick (tests) */
	int64_t ref_allocs_left;        /* THOTHD_TEST_SSE_REF_ALLOCS: then malloc "fails" (tests); -1 */
	uint16_t port;
	uint32_t connections, max_connections;
	bool rerun;                     /* a connection closed at the limit: run MHD again */
	bool stopping;
};

static void http_run(thothd_http_t *h);
static enum MHD_Result reply_with(struct MHD_Connection *conn, unsigned status, const char *type,
				  void *body, size_t len, enum MHD_ResponseMemoryMode mode,
				  const char *header, const char *value);

/* ---- the loop side ----------------------------------------------------------------- */

static void mhd_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_http_t *h = arg;
	h->mhd_timer = NULL;            /* fired: freed by the loop unless re-armed below */
	http_run(h);
}

static void deferred_run(thoth_loop_t *loop, void *arg)
{
	thothd_http_t *h = arg;
	h->run_deferred = false;
	http_run(h);
}

/* Run MHD on a later loop iteration, not from inside the caller. */
static void http_run_soon(thothd_http_t *h)
{
	if (h->run_deferred)
		return;
	if (thoth_loop_defer(h->loop, deferred_run, h) == 0) {
		h->run_deferred = true;
		return;
	}
	/* No memory for the deferral: the timer, due now, does it instead. */
	uint64_t now = thoth_loop_now(h->loop);
	int r = h->mhd_timer ? thoth_timer_rearm(h->loop, h->mhd_timer, now, 0)
			     : thoth_loop_add_timer(h->loop, now, 0, mhd_timer_fired, h, &h->mhd_timer);
	if (r) {
		h->mhd_timer = NULL;
		thothd_error("dashboard: cannot schedule an HTTP run: %s", thoth_strerror(r));
	}
}

static void head_unlink(thothd_http_t *h, head_wait_t *w)
{
	if (!w || !w->linked)
		return;
	*(w->prev ? &w->prev->next : &h->heads) = w->next;
	*(w->next ? &w->next->prev : &h->heads_tail) = w->prev;
	w->prev = w->next = NULL;
	w->linked = false;
}

/* A request head is awaited on W from now on. */
static void head_link(thothd_http_t *h, head_wait_t *w)
{
	head_unlink(h, w);
	w->deadline_ns = thoth_loop_now(h->loop) + h->head_limit_ns;
	w->prev = h->heads_tail;
	*(h->heads_tail ? &h->heads_tail->next : &h->heads) = w;
	h->heads_tail = w;
	w->linked = true;
}

/* Shut down the connections whose request head is late; MHD closes them
 * when it next runs (the shutdown wakes its epoll set). */
static void heads_expire(thothd_http_t *h, uint64_t now)
{
	while (h->heads && h->heads->deadline_ns <= now) {
		head_wait_t *w = h->heads;
		head_unlink(h, w);
		thothd_debug("dashboard: closing a connection whose request head took more than %llu s",
			     (unsigned long long)(h->head_limit_ns / S_NS));
		shutdown(w->fd, SHUT_RDWR);
	}
}

/* Let MHD do its work, then arm (or drop) the one timer its timeout and
 * the request-head deadlines need. */
static void http_run(thothd_http_t *h)
{
	heads_expire(h, thoth_loop_now(h->loop));
	/* At its connection limit MHD takes the listening socket out of its
	 * epoll set, and puts it back at the start of a run: when a run closes
	 * a connection at the limit, run once more or the connections waiting
	 * in the backlog would wait for an event that never comes. */
	for (int i = 0; i < 2; i++) {
		h->rerun = false;
		MHD_run(h->mhd);
		if (!h->rerun)
			break;
	}
	MHD_UNSIGNED_LONG_LONG ms = 0;
	bool mhd_deadline = MHD_get_timeout(h->mhd, &ms) == MHD_YES;
	if (!mhd_deadline && !h->heads) {
		/* No connection with a deadline: nothing to wake up for. */
		if (h->mhd_timer) {
			thoth_timer_cancel(h->loop, h->mhd_timer);
			h->mhd_timer = NULL;
		}
		return;
	}
	if (mhd_deadline && ms == 0) {
		/* Work already pending inside MHD (buffered data, resumed
		 * connections): run again before the loop sleeps. */
		if (!h->run_deferred && thoth_loop_defer(h->loop, deferred_run, h) == 0)
			h->run_deferred = true;
		return;
	}
	uint64_t now = thoth_loop_now(h->loop);
	uint64_t at = mhd_deadline ? now + ms * MS_NS : UINT64_MAX;
	if (h->heads && h->heads->deadline_ns < at)
		at = h->heads->deadline_ns;
	uint64_t slack = at > now ? (at - now) / 10 : 0;
	int r = h->mhd_timer ? thoth_timer_rearm(h->loop, h->mhd_timer, at, slack)
			     : thoth_loop_add_timer(h->loop, at, slack, mhd_timer_fired, h, &h->mhd_timer);
	if (r) {
		h->mhd_timer = NULL;
		thothd_error("dashboard: cannot arm the HTTP timeout timer: %s", thoth_strerror(r));
	}
}

static void on_mhd_ready(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			 void *arg)
{
	http_run(arg);
}

/* ---- live collection: on while a page is connected or a scraper is recent ---------- */

static void tick_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static bool want_live(const thothd_http_t *h)
{
	return !h->stopping && (h->n_sse > 0 || thoth_loop_now(h->loop) < h->hold_until_ns);
}

static void live_update(thothd_http_t *h)
{
	bool on = thothd_live_collecting(h->live);
	if (want_live(h) && !on) {
		int r = thothd_live_start(h->live);
		if (r) {
			thothd_warn("dashboard: cannot collect live data: %s", thoth_strerror(r));
			return;
		}
		uint64_t at = thoth_loop_now(h->loop) + TICK_NS;
		r = thoth_loop_add_timer(h->loop, at, TICK_SLACK_NS, tick_fired, h, &h->tick);
		if (r) {
			h->tick = NULL;
			thothd_live_stop(h->live);
			thothd_error("dashboard: cannot arm the 1 Hz tick: %s", thoth_strerror(r));
			return;
		}
		thothd_info("dashboard: live collection on (%u page%s connected)", h->n_sse,
			    h->n_sse == 1 ? "" : "s");
	} else if (!want_live(h) && on) {
		if (h->tick) {
			thoth_timer_cancel(h->loop, h->tick);
			h->tick = NULL;
		}
		thothd_live_stop(h->live);
		thothd_info("dashboard: live collection off (no client)");
	}
}

static void sse_wake(sse_client_t *c)
{
	if (c->suspended) {
		c->suspended = false;
		MHD_resume_connection(c->conn);
	}
}

static sse_obj_t *sse_obj_new(thothd_http_t *h, const char *a, size_t na, const char *b,
			      size_t nb, const char *c, size_t nc)
{
	sse_obj_t *o = malloc(sizeof *o + na + nb + nc);
	if (!o)
		return NULL;
	o->refs = 0;
	o->len = na + nb + nc;
	memcpy(o->data, a, na);
	memcpy(o->data + na, b, nb);
	memcpy(o->data + na + nb, c, nc);
	h->sse_bytes += sizeof *o + o->len;
	return o;
}

static void sse_obj_put(thothd_http_t *h, sse_obj_t *o)
{
	if (o && o->refs-- <= 1) {
		h->sse_bytes -= sizeof *o + o->len;
		free(o);
	}
}

/* Drop C's unsent objects. */
static void sse_clear(thothd_http_t *h, sse_client_t *c)
{
	while (c->head) {
		sse_ref_t *r = c->head;
		c->head = r->next;
		sse_obj_put(h, r->obj);
		free(r);
		h->sse_bytes -= SSE_REF_BYTES;
	}
	c->tail = NULL;
	c->off = c->unsent = 0;
}

enum sse_close_reason { SSE_CLOSE_BACKLOG, SSE_CLOSE_MEMORY, SSE_CLOSE_ALLOC };

/* Close C's stream now (WHY: its backlog at SSE_MAX_BACKLOG of its own;
 * MEMORY: the largest when all of them reach events_memory; ALLOC: no
 * memory for the reference to a tick, counted apart so that /metrics does
 * not blame a page that reads for thothd's malloc failing): its unsent
 * objects let go, its socket shut down, which MHD sees at its next run as
 * the peer's close (sse_free follows).  A page that does not read would
 * never take the rest; a browser reconnects after 2 s and starts afresh.
 * Were the data sent out first, as before, a page that does not read
 * would hold it until the idle timeout. */
static void sse_drop(sse_client_t *c, enum sse_close_reason why)
{
	thothd_http_t *h = c->h;
	if (c->dropped)
		return;
	if (why == SSE_CLOSE_ALLOC)
		thothd_warn("dashboard: closing an event stream: out of memory for its next tick "
			    "(%zu bytes unsent)", c->unsent);
	else
		thothd_info("dashboard: closing an event stream that does not read (%zu bytes unsent%s)",
			    c->unsent, why == SSE_CLOSE_MEMORY ? "; event streams at their memory bound" : "");
	sse_clear(h, c);
	c->closing = c->dropped = true;
	*(why == SSE_CLOSE_ALLOC ? &h->sse_closed_alloc :
	  why == SSE_CLOSE_MEMORY ? &h->sse_closed_memory : &h->sse_closed_backlog) += 1;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		shutdown(ci->connect_fd, SHUT_RDWR);
	sse_wake(c);
}

/* Within the bound in all, with NEED bytes more to come: close the streams
 * with the largest backlog (pages that do not read), the largest first,
 * until it fits.  False if it does not: no stream is more than one object
 * behind.  Two rules keep a page that reads from being closed when a tick
 * is large beside the bound (a 192-CPU host's tick is ~69 KiB): the newest
 * tick object is left out of the sum (every page gets it, reading or not),
 * and a stream holding a single object (the previous tick, a page one tick
 * behind, or nothing at all) is never closed for room.  The bound can thus
 * be passed by those two ticks' objects; it is a backstop, not a quota. */
static bool sse_room(thothd_http_t *h, size_t need)
{
	for (;;) {
		size_t held = h->sse_bytes - (h->sse_tick_bytes < h->sse_bytes ? h->sse_tick_bytes
						: h->sse_bytes);
		if (held + need <= h->events_memory)
			break;
		sse_client_t *big = NULL;
		for (sse_client_t *c = h->sse; c; c = c->next)
			if (!c->dropped && c->head && c->head != c->tail &&
			    (!big || c->unsent > big->unsent))
				big = c;
		if (!big)
			return false;
		sse_drop(big, SSE_CLOSE_MEMORY);
	}
	return true;
}

enum { SSE_OK, SSE_FULL, SSE_NO_ROOM };

/* Give O to C: SSE_FULL at its own backlog limit, SSE_NO_ROOM without
 * memory. */
static int sse_push(thothd_http_t *h, sse_client_t *c, sse_obj_t *o)
{
	if (c->dropped || c->unsent + o->len > SSE_MAX_BACKLOG)
		return SSE_FULL;
	sse_ref_t *r = NULL;
	if (h->ref_allocs_left != 0) {
		r = malloc(sizeof *r);
		if (h->ref_allocs_left > 0)
			h->ref_allocs_left--;
	}
	if (!r)
		return SSE_NO_ROOM;
	h->sse_bytes += SSE_REF_BYTES;
	o->refs++;
	*r = (sse_ref_t){ .obj = o };
	*(c->tail ? &c->tail->next : &c->head) = r;
	c->tail = r;
	c->unsent += o->len;
	return SSE_OK;
}

/* The tick's object to every page, from what was drained: one object,
 * shared by them all. */
static void tick_run(thothd_http_t *h)
{
	char *json = NULL;
	size_t len = 0;
	int r = thothd_live_tick(h->live, &json, &len);
	if (r)
		thothd_warn("dashboard: cannot compute the live data: %s", thoth_strerror(r));
	if (json && h->tick_pad) {
		char *p = realloc(json, len + h->tick_pad);
		if (p) {
			memset(p + len, ' ', h->tick_pad);
			json = p;
			len += h->tick_pad;
		}
	}
	sse_obj_t *o = json ? sse_obj_new(h, "event: tick\ndata: ", 18, json, len, "\n\n", 2) : NULL;
	free(json);
	if (!o)
		return;
	o->refs++;              /* ours while it is handed out */
	h->sse_tick_bytes = sizeof *o + o->len;
	if (!h->sse_tick_warned && h->sse_tick_bytes > h->events_memory / 4) {
		h->sse_tick_warned = true;
		thothd_warn("dashboard: a tick takes %zu bytes, more than a quarter of the event "
			    "streams' bound of %zu: raise --http-events-memory-kib (streams more "
			    "than a tick behind are closed early)",
			    h->sse_tick_bytes, h->events_memory);
	}
	/* Close what is more than a tick behind; what is not gets the tick
	 * even past the bound (see sse_room). */
	sse_room(h, h->n_sse * SSE_REF_BYTES);
	for (sse_client_t *c = h->sse; c; c = c->next) {
		if (c->closing)
			continue;
		int e = sse_push(h, c, o);
		if (e)
			sse_drop(c, e == SSE_NO_ROOM ? SSE_CLOSE_ALLOC : SSE_CLOSE_BACKLOG);
		sse_wake(c);
	}
	sse_obj_put(h, o);
}

static void tick_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_http_t *h = arg;
	if (!want_live(h)) {
		h->tick = NULL;         /* not re-armed: freed by the loop */
		live_update(h);
		return;
	}
	if (!thothd_live_busy(h->live))
		thothd_live_drain(h->live);     /* here, or on the task thread */
	if (thothd_live_busy(h->live))
		h->tick_waits = true;   /* live_drained runs it */
	else
		tick_run(h);
	if (thoth_timer_rearm(loop, timer, thoth_loop_now(loop) + TICK_NS, TICK_SLACK_NS)) {
		h->tick = NULL;
		thothd_error("dashboard: cannot re-arm the 1 Hz tick");
	}
	http_run(h);
}

/* The task thread's drain ended (loop thread): the postponed tick, then the
 * suspended requests (MHD calls on_request again for each). */
static void live_drained(void *ctx)
{
	thothd_http_t *h = ctx;
	if (h->stopping)
		return;
	if (h->tick_waits && thothd_live_collecting(h->live))
		tick_run(h);
	h->tick_waits = false;
	for (size_t i = 0; i < h->n_waiting; i++)
		MHD_resume_connection(h->waiting[i]);
	h->n_waiting = 0;
	http_run(h);
}

/* Marks a request that waited for a drain (*con_cls): it does not drain
 * again when it is resumed. */
static char waited_mark;

/* A request that reads the figures: drain (unless it waited already),
 * then, while a worker drains, suspend it until the drain ends (true); or
 * serve it now (false). */
static bool wait_for_drain(thothd_http_t *h, struct MHD_Connection *conn, void **con_cls)
{
	if (*con_cls != &waited_mark && !thothd_live_busy(h->live))
		thothd_live_drain(h->live);
	if (h->stopping || !thothd_live_busy(h->live))
		return false;
	if (h->n_waiting == h->cap_waiting) {
		size_t cap = h->cap_waiting ? 2 * h->cap_waiting : 8;
		struct MHD_Connection **w = realloc(h->waiting, cap * sizeof *w);
		if (!w)
			return false;   /* served now: waits for the mutex instead */
		h->waiting = w;
		h->cap_waiting = cap;
	}
	h->waiting[h->n_waiting++] = conn;
	*con_cls = &waited_mark;
	MHD_suspend_connection(conn);
	return true;
}

/* ---- Server-Sent Events ------------------------------------------------------------- */

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	sse_client_t *c = cls;
	if (c->dropped)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	size_t n = 0;
	while (c->head && n < max) {
		sse_obj_t *o = c->head->obj;
		size_t k = o->len - c->off < max - n ? o->len - c->off : max - n;
		memcpy(buf + n, o->data + c->off, k);
		n += k;
		c->off += k;
		c->unsent -= k;
		if (c->off == o->len) {         /* sent: let go of it */
			sse_ref_t *r = c->head;
			c->head = r->next;
			if (!c->head)
				c->tail = NULL;
			c->off = 0;
			sse_obj_put(c->h, o);
			free(r);
			c->h->sse_bytes -= SSE_REF_BYTES;
		}
	}
	if (n)
		return (ssize_t)n;
	if (c->closing || c->h->stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing to send: sleep until the tick has something (no busy loop). */
	c->suspended = true;
	MHD_suspend_connection(c->conn);
	return 0;
}

static void sse_free(void *cls)
{
	sse_client_t *c = cls;
	thothd_http_t *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->sse = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->n_sse--;
	sse_clear(h, c);
	free(c);
	thothd_debug("dashboard: event stream closed (%u left)", h->n_sse);
	live_update(h);
}

static enum MHD_Result serve_events(thothd_http_t *h, struct MHD_Connection *conn)
{
	sse_client_t *c = calloc(1, sizeof *c);
	if (!c)
		return MHD_NO;
	c->h = h;
	c->conn = conn;
	/* The browser reconnects after 2 s if the stream breaks. */
	static const char hello[] = "retry: 2000\n: thothd dashboard, one event a second\n\n";
	sse_obj_t *o = NULL;
	bool room = sse_room(h, sizeof *o + sizeof hello + SSE_REF_BYTES);
	if (!room || !(o = sse_obj_new(h, hello, sizeof hello - 1, "", 0, "", 0)) ||
	    sse_push(h, c, o)) {
		/* No room and no stream more than a tick behind to close for
		 * it (a bound too small for the objects of the pages that
		 * read), or malloc failed. */
		if (o && !o->refs)
			sse_obj_put(h, o);
		sse_clear(h, c);
		free(c);
		*(room ? &h->sse_refused_alloc : &h->sse_refused) += 1;
		static const char busy[] = "event streams at their memory bound: retry\n";
		static const char oom[] = "out of memory for an event stream: retry\n";
		return reply_with(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
				  (void *)(room ? oom : busy), room ? sizeof oom - 1 : sizeof busy - 1,
				  MHD_RESPMEM_PERSISTENT, "Retry-After", "2");
	}
	struct MHD_Response *resp =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, c, sse_free);
	if (!resp) {
		sse_clear(h, c);
		free(c);
		return MHD_NO;
	}
	c->next = h->sse;
	if (h->sse)
		h->sse->prev = c;
	h->sse = c;
	h->n_sse++;
	/* A stream sends a few KiB a second: a small send buffer, so that the
	 * kernel does not hold megabytes for a page that does not read (it
	 * grows one up to tcp_wmem's maximum, 4 MiB by default, per
	 * connection) and its backlog shows here, bounded (above). */
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int sndbuf = SSE_SNDBUF;
	if (ci)
		(void)setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);     /* sse_free runs when the connection ends */
	live_update(h);
	return ret;
}

/* ---- other routes ------------------------------------------------------------------- */

/* A response with the usual headers, and HEADER: VALUE if HEADER is set. */
static enum MHD_Result reply_with(struct MHD_Connection *conn, unsigned status, const char *type,
				  void *body, size_t len, enum MHD_ResponseMemoryMode mode,
				  const char *header, const char *value)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
	if (!resp) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (header)
		MHD_add_response_header(resp, header, value);
	enum MHD_Result ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
			     void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	return reply_with(conn, status, type, body, len, mode, NULL, NULL);
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	return reply(conn, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
		     MHD_RESPMEM_PERSISTENT);
}

/* Appends ADD (N bytes from snprintf into a buffer of CAP) to the
 * malloc'ed metrics text; frees the text on failure. */
static int metrics_put(char **text, size_t *len, const char *add, size_t cap, int n)
{
	if (n < 0 || (size_t)n >= cap)
		return THOTH_E_INVAL;
	char *p = realloc(*text, *len + (size_t)n + 1);
	if (!p) {
		free(*text);
		return THOTH_E_NOMEM;
	}
	memcpy(p + *len, add, (size_t)n + 1);
	*text = p;
	*len += (size_t)n;
	return 0;
}

/* The event streams' own figures, after http_live's: their memory against
 * the bound in all, and the streams closed or refused for it. */
static int metrics_streams(thothd_http_t *h, char **text, size_t *len)
{
	char add[2048];
	int n = snprintf(add, sizeof add,
		"# HELP thoth_dashboard_event_streams Event streams (/events) connected.\n"
		"# TYPE thoth_dashboard_event_streams gauge\n"
		"thoth_dashboard_event_streams %u\n"
		"# HELP thoth_dashboard_event_stream_bytes Memory of the event streams' unsent data, in all.\n"
		"# TYPE thoth_dashboard_event_stream_bytes gauge\n"
		"thoth_dashboard_event_stream_bytes %zu\n"
		"# HELP thoth_dashboard_event_stream_bytes_limit Its bound (--http-events-memory-kib).\n"
		"# TYPE thoth_dashboard_event_stream_bytes_limit gauge\n"
		"thoth_dashboard_event_stream_bytes_limit %zu\n"
		"# HELP thoth_dashboard_event_streams_closed_total Event streams closed for their unsent "
		"data: backlog, 256 KiB of their own; memory, the largest backlog (more than one tick "
		"behind) when all reached the bound; alloc, malloc failed for a tick.\n"
		"# TYPE thoth_dashboard_event_streams_closed_total counter\n"
		"thoth_dashboard_event_streams_closed_total{reason=\"backlog\"} %llu\n"
		"thoth_dashboard_event_streams_closed_total{reason=\"memory\"} %llu\n"
		"thoth_dashboard_event_streams_closed_total{reason=\"alloc\"} %llu\n"
		"# HELP thoth_dashboard_event_streams_refused_total New event streams answered 503: "
		"memory, the bound reached with no stream more than a tick behind to close (a bound "
		"too small for the ticks); alloc, malloc failed.\n"
		"# TYPE thoth_dashboard_event_streams_refused_total counter\n"
		"thoth_dashboard_event_streams_refused_total{reason=\"memory\"} %llu\n"
		"thoth_dashboard_event_streams_refused_total{reason=\"alloc\"} %llu\n",
		h->n_sse, h->sse_bytes, h->events_memory, (unsigned long long)h->sse_closed_backlog,
		(unsigned long long)h->sse_closed_memory, (unsigned long long)h->sse_closed_alloc,
		(unsigned long long)h->sse_refused,
		(unsigned long long)h->sse_refused_alloc);
	return metrics_put(text, len, add, sizeof add, n);
}

/* thothd's control clients' output (server.c's output budget): unsent
 * bytes against max_output, the capacity drained queues keep against its
 * own bound, and the clients closed for the budget. */
static int metrics_output(thothd_http_t *h, char **text, size_t *len)
{
	const thothd_t *d = h->d;
	char add[1200];
	int n = snprintf(add, sizeof add,
		"# HELP thoth_thothd_output_unsent_bytes Control clients' unsent output, in all.\n"
		"# TYPE thoth_thothd_output_unsent_bytes gauge\n"
		"thoth_thothd_output_unsent_bytes %zu\n"
		"# HELP thoth_thothd_output_unsent_bytes_limit Its bound (the output budget).\n"
		"# TYPE thoth_thothd_output_unsent_bytes_limit gauge\n"
		"thoth_thothd_output_unsent_bytes_limit %zu\n"
		"# HELP thoth_thothd_output_kept_bytes Capacity that drained output queues keep for "
		"their next answers, in all (outside the budget).\n"
		"# TYPE thoth_thothd_output_kept_bytes gauge\n"
		"thoth_thothd_output_kept_bytes %zu\n"
		"# HELP thoth_thothd_output_kept_bytes_limit Its bound.\n"
		"# TYPE thoth_thothd_output_kept_bytes_limit gauge\n"
		"thoth_thothd_output_kept_bytes_limit %zu\n"
		"# HELP thoth_thothd_output_budget_closed_total Control clients closed past the output "
		"budget.\n"
		"# TYPE thoth_thothd_output_budget_closed_total counter\n"
		"thoth_thothd_output_budget_closed_total %llu\n",
		d->output_bytes, d->cfg.max_output, d->kept_bytes, thothd_output_kept_max(),
		(unsigned long long)d->over_output_budget);
	return metrics_put(text, len, add, sizeof add, n);
}

static enum MHD_Result serve_metrics(thothd_http_t *h, struct MHD_Connection *conn, void **con_cls)
{
	/* A scraper wants counters that keep counting between its scrapes. */
	h->hold_until_ns = thoth_loop_now(h->loop) + h->hold_ns;
	live_update(h);
	if (wait_for_drain(h, conn, con_cls))
		return MHD_YES;
	char *text;
	size_t len;
	int r = thothd_live_metrics(h->live, &text, &len);
	if (!r)
		r = metrics_streams(h, &text, &len);
	if (!r)
		r = metrics_output(h, &text, &len);
	if (!r && h->d->metrics_hook) {
		char add[4096];
		int n = h->d->metrics_hook(h->d->metrics_hook_arg, add, sizeof add);
		if (n >= 0)     /* -1: its text outgrew ADD; the rest is still served */
			r = metrics_put(&text, &len, add, sizeof add, n);
	}
	if (r)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot produce metrics\n");
	return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
		     MHD_RESPMEM_MUST_FREE);
}

/* A decimal u64 query argument; false when absent or malformed. */
static bool arg_u64(struct MHD_Connection *conn, const char *name, uint64_t *v)
{
	const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
	if (!s || !*s || strlen(s) > 20)
		return false;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 10);
	if (errno || *end || s[0] == '-')
		return false;
	*v = x;
	return true;
}

/* OBS-2: every probe thothd holds or handed out, kernel probes with their
 * maps (probe.c builds the JSON). */
static enum MHD_Result serve_probes(thothd_http_t *h, struct MHD_Connection *conn)
{
	char *json;
	size_t len;
	if (thothd_probes_json(h->d, &json, &len))
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list the probes\n");
	return reply(conn, MHD_HTTP_OK, "application/json", json, len, MHD_RESPMEM_MUST_FREE);
}

/* SCALE-2: the folded counters of every serving process (serve_stats.c). */
static enum MHD_Result serve_serve_stats(thothd_http_t *h, struct MHD_Connection *conn)
{
	char *json;
	size_t len;
	if (thothd_serve_stats_json(h->d, &json, &len))
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the serve counters\n");
	return reply(conn, MHD_HTTP_OK, "application/json", json, len, MHD_RESPMEM_MUST_FREE);
}

/* OBS-3: the recent lifecycle events, as thothctl status --json's. */
static enum MHD_Result serve_lifecycle(thothd_http_t *h, struct MHD_Connection *conn)
{
	char *json;
	size_t len;
	if (thothd_lifecycle_json(h->d->lifecycle, thoth_loop_now(h->loop), &json, &len))
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the lifecycle history\n");
	return reply(conn, MHD_HTTP_OK, "application/json", json, len, MHD_RESPMEM_MUST_FREE);
}

/* SCALE-3: the federation, as thothctl status --json's "federation":
 * {"enabled": false} without --etcd.  Host ids are other hosts' strings:
 * escaped by thothd_jstr, shown by the page through textContent. */
static enum MHD_Result serve_federation(thothd_http_t *h, struct MHD_Connection *conn)
{
	thothd_jbuf_t b = { 0 };
	thothd_t *d = h->d;
	if (!d->federation_view) {
		thothd_jput(&b, "{\"enabled\":false}\n");
	} else {
		thothd_fed_view_t s;
		uint64_t now = thoth_clock_now();
		static thothd_fed_host_t hosts[THOTHD_STATUS_HOSTS];   /* the loop thread's */
		size_t n = d->federation_view(d->federation_view_arg, &s, hosts, THOTHD_STATUS_HOSTS);
		thothd_jput(&b, "{\"enabled\":true,\"etcd\":");
		thothd_jstr(&b, s.etcd);
		thothd_jput(&b, ",\"etcd_up\":%s,\"etcd_down_for_ns\":%llu,\"host_id\":", s.etcd_up ? "true" : "false",
			    (unsigned long long)(s.etcd_down_since_ns && now > s.etcd_down_since_ns
							 ? now - s.etcd_down_since_ns : 0));
		thothd_jstr(&b, s.host_id);
		thothd_jput(&b, ",\"lease_ttl_s\":%u,\"lease_alive\":%s,\"watching\":%s,\"local_instances\":%u,"
			    "\"remote_instances\":%u,\"conflicts\":%zu,\"left_out\":%llu,\"hosts_total\":%u,"
			    "\"hosts\":[", s.ttl_s, s.lease_alive ? "true" : "false", s.watching ? "true" : "false",
			    s.local, s.remote, thoth_registry_remote_conflicts(d->registry, now),
			    (unsigned long long)s.left_out, s.hosts_total);
		for (size_t i = 0; i < n; i++) {
			thothd_jput(&b, "%s{\"id\":", i ? "," : "");
			thothd_jstr(&b, hosts[i].id);
			thothd_jput(&b, ",\"instances\":%u,\"last_seen_ago_ns\":%llu}", hosts[i].instances,
				    (unsigned long long)(hosts[i].last_seen_ns && now > hosts[i].last_seen_ns
								 ? now - hosts[i].last_seen_ns : 0));
		}
		thothd_jput(&b, "]}\n");
	}
	if (b.failed) {
		free(b.p);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot write the federation's state\n");
	}
	return reply(conn, MHD_HTTP_OK, "application/json", b.p, b.len, MHD_RESPMEM_MUST_FREE);
}

/* S (LEN bytes, not NUL-terminated: the registry's) as a JSON string. */
static void jstr_n(thothd_jbuf_t *b, const char *s, size_t len)
{
	char *z = strndup(s ? s : "", s ? len : 0);
	if (!z) {
		b->failed = true;
		return;
	}
	thothd_jstr(b, z);
	free(z);
}

static const char *locality_text(thoth_common_Locality_t l)
{
	switch (l) {
	case THOTH_COMMON_LOCALITY_NUMA: return "numa";
	case THOTH_COMMON_LOCALITY_HOST: return "host";
	case THOTH_COMMON_LOCALITY_REMOTE: return "remote";
	default: return "any";
	}
}

/* SCALE-3: the registered instances and the load each last reported, as
 * `thothctl services --json` gives them (utilization_permille and qps, 0
 * and 0 until a report).  Names, versions and addresses may be other
 * hosts' strings: escaped by thothd_jstr, shown through textContent.  The
 * first SERVICES_LISTED in the registry's order; "total" counts all. */
#define SERVICES_LISTED 1024u
static enum MHD_Result serve_services(thothd_http_t *h, struct MHD_Connection *conn)
{
	thothd_jbuf_t b = { 0 };
	thothd_t *d = h->d;
	const thoth_registry_Instance_t **inst = NULL;
	size_t n = 0;
	if (d->registry && thoth_registry_list(d->registry, thoth_str(""), THOTH_COMMON_LOCALITY_ANY, thothd_now(d),
					       &inst, &n))
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list the registry\n");
	thothd_jput(&b, "{\"total\":%zu,\"services\":[", n);
	for (size_t i = 0; i < n && i < SERVICES_LISTED; i++) {
		const thoth_registry_Registration_t *r = &inst[i]->registration;
		thothd_jput(&b, "%s{\"name\":", i ? "," : "");
		jstr_n(&b, r->name.ptr, r->name.len);
		thothd_jput(&b, ",\"version\":");
		jstr_n(&b, r->version.ptr, r->version.len);
		thothd_jput(&b, ",\"endpoint\":");
		jstr_n(&b, r->endpoint.addr.ptr, r->endpoint.addr.len);
		thothd_jput(&b, ",\"locality\":\"%s\",\"instance_id\":%llu,\"pid\":%u,\"utilization_permille\":%u,"
			    "\"qps\":%u}", locality_text(r->endpoint.locality),
			    (unsigned long long)r->endpoint.instance_id, r->endpoint.pid,
			    inst[i]->utilization_permille, inst[i]->qps);
	}
	free(inst);
	thothd_jput(&b, "]}\n");
	if (b.failed) {
		free(b.p);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot write the services\n");
	}
	return reply(conn, MHD_HTTP_OK, "application/json", b.p, b.len, MHD_RESPMEM_MUST_FREE);
}

static void export_unlink(thothd_http_t *h, export_job_t *j)
{
	if (!j->linked)
		return;
	*(j->prev ? &j->prev->next : &h->exports) = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
	j->linked = false;
}

static void export_free(export_job_t *j)
{
	thothd_live_window_free(j->w);
	free(j->json);
	free(j->gate);
	free(j);
}

/* THOTHD_TEST_EXPORT_GATE: wait for a byte at the FIFO PATH, at most
 * EXPORT_GATE_MS.  Non-blocking open, then poll: a blocking open of a FIFO
 * no one writes would hold the worker for ever were the variable to leak
 * into a real start.  A writer that closes without a byte lets it go too. */
#define EXPORT_GATE_MS 60000
static void export_gate_wait(const char *path)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		thothd_warn("dashboard: export gate %s: %s", path, strerror(errno));
		return;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, EXPORT_GATE_MS);
	while (r < 0 && errno == EINTR);
	char byte;
	if (r == 0)
		thothd_warn("dashboard: export gate %s: no byte in %d s; going on", path,
			    EXPORT_GATE_MS / 1000);
	else if (r > 0 && (p.revents & POLLIN))
		(void)!read(fd, &byte, 1);
	close(fd);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * S_NS + (uint64_t)ts.tv_nsec;
}

/* Worker thread: only what the job owns. */
static void export_work(void *arg)
{
	export_job_t *j = arg;
	if (j->gate) {
		/* Tests: the export waits here until a byte comes, so a test
		 * sees it in flight without timing it.  (Not j->h: the loop
		 * thread clears it when the job is orphaned.) */
		export_gate_wait(j->gate);
	}
	/* The copy of the window's events, then the JSON: both here, off the
	 * loop thread and without the tracer's mutex (the view's segments are
	 * the job's). */
	uint64_t cpu0 = thread_cpu_ns();
	thoth_trace_collection_t *c = NULL;
	j->status = thothd_live_window_collect(j->w, j->from, j->to, &c);
	thothd_live_window_free(j->w);
	j->w = NULL;
	uint64_t cpu1 = thread_cpu_ns();
	if (!j->status)
		j->status = thothd_live_window_json(c, &j->json, &j->len);
	size_t n = c ? thoth_trace_collection_count(c) : 0;
	thoth_trace_collection_free(c);
	thothd_debug("dashboard: window export: %zu events copied in %.3f ms of CPU, JSON (%zu bytes) "
		     "in %.3f ms, on a worker", n, (double)(cpu1 - cpu0) / 1e6, j->len,
		     (double)(thread_cpu_ns() - cpu1) / 1e6);
}

/* Loop thread: the request takes its answer (MHD calls on_request again). */
static int export_done(void *arg, bool ran, void *resp, thoth_arena_t *arena, const char **reason)
{
	(void)resp;
	(void)arena;
	(void)reason;
	export_job_t *j = arg;
	if (!j->h)
		return 0;               /* orphaned: export_release frees it */
	if (!ran)
		j->status = THOTH_E_CLOSED;      /* thothd is stopping */
	j->done = true;
	MHD_resume_connection(j->conn);
	/* Not http_run here: that run may answer the request and free J
	 * (export_sent, or on_completed's export_drop) while the job layer
	 * still holds it for export_release.  A deferred run comes after. */
	http_run_soon(j->h);
	return 0;
}

static void export_release(void *arg)
{
	export_job_t *j = arg;
	if (!j->h)
		export_free(j);         /* else the connection owns it */
}

static const thothd_job_ops_t export_ops = {
	.method = NULL,
	.work = export_work,
	.done = export_done,
	.release = export_release,
};

/* MHD is done with the body (sent, or its connection closed). */
static void export_sent(void *cls)
{
	export_job_t *j = cls;
	if (j->h)
		j->h->n_exports--;
	export_free(j);
}

/* The connection of J's request ended before its answer was queued. */
static void export_drop(thothd_http_t *h, export_job_t *j)
{
	export_unlink(h, j);
	if (!j->done) {
		if (j->h)
			h->n_exports--;
		j->h = NULL;            /* the worker's: export_release frees it */
		return;
	}
	h->n_exports--;
	export_free(j);
}

static enum MHD_Result export_reply(thothd_http_t *h, struct MHD_Connection *conn, void **con_cls,
				    export_job_t *j)
{
	export_unlink(h, j);
	*con_cls = NULL;
	if (j->status) {
		h->n_exports--;
		export_free(j);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot export the window\n");
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer_with_free_callback_cls(j->len, j->json, export_sent, j);
	if (!resp) {
		h->n_exports--;
		export_free(j);
		return MHD_NO;
	}
	char disp[96];
	snprintf(disp, sizeof disp, "attachment; filename=\"thoth-%llu-%llu.json\"",
		 (unsigned long long)j->from, (unsigned long long)j->to);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "Content-Disposition", disp);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);     /* export_sent frees the job with the body */
	return ret;
}

static enum MHD_Result serve_trace(thothd_http_t *h, struct MHD_Connection *conn, void **con_cls)
{
	if (*con_cls && *con_cls != &waited_mark)       /* its export is made */
		return export_reply(h, conn, con_cls, *con_cls);
	uint64_t from, to;
	if (!arg_u64(conn, "from_ns", &from) || !arg_u64(conn, "to_ns", &to) || to <= from)
		return reply_text(conn, MHD_HTTP_BAD_REQUEST,
				  "trace.json wants from_ns and to_ns (CLOCK_MONOTONIC ns, from < to)\n");
	if (to - from > MAX_WINDOW_S * S_NS)
		return reply_text(conn, MHD_HTTP_BAD_REQUEST, "window longer than 120 s\n");
	if (h->n_exports >= EXPORTS_MAX)
		return reply_with(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
				  (void *)"window exports are being made for other requests: retry\n",
				  strlen("window exports are being made for other requests: retry\n"),
				  MHD_RESPMEM_PERSISTENT, "Retry-After", "1");
	if (wait_for_drain(h, conn, con_cls))
		return MHD_YES;
	thothd_live_window_t *w = NULL;
	export_job_t *j = calloc(1, sizeof *j);
	uint64_t cpu0 = thread_cpu_ns();
	if (!j || thothd_live_window(h->live, &w)) {
		free(j);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot export the window\n");
	}
	thothd_debug("dashboard: window export: the kept events' view taken in %.3f ms of CPU on "
		     "the loop thread", (double)(thread_cpu_ns() - cpu0) / 1e6);
	*j = (export_job_t){ .h = h, .conn = conn, .w = w, .from = from, .to = to };
	if (h->export_gate && !(j->gate = strdup(h->export_gate))) {
		export_free(j);
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot export the window\n");
	}
	h->n_exports++;
	if (thothd_defer_task_slow(h->d, &export_ops, j) == 0) {
		j->next = h->exports;
		if (h->exports)
			h->exports->prev = j;
		h->exports = j;
		j->linked = true;
		*con_cls = j;
		MHD_suspend_connection(conn);
		return MHD_YES;
	}
	/* Not deferred (THOTHD_DEFER=off, or no worker): made here. */
	export_work(j);
	return export_reply(h, conn, con_cls, j);
}

/* Constant-time comparison: the token is a secret. */
static bool token_ok(const thothd_http_t *h, struct MHD_Connection *conn)
{
	if (!h->token[0])
		return true;
	const char *given = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	/* The scheme is case-insensitive (RFC 9110 11.1): "bearer TOKEN" was
	 * answered 401 with the right token.  One or more spaces or tabs
	 * follow it, and trailing ones are not part of the token (with two
	 * spaces after "Bearer", or one after the token, it was 401).  strncasecmp stops at a
	 * short header's NUL: no over-read. */
	size_t m = 0;
	if (!given && auth && strncasecmp(auth, "Bearer", 6) == 0 &&
	    (auth[6] == ' ' || auth[6] == '\t')) {
		given = auth + 6;
		while (*given == ' ' || *given == '\t')
			given++;
		m = strlen(given);
		while (m && (given[m - 1] == ' ' || given[m - 1] == '\t'))
			m--;
	} else if (given) {
		m = strlen(given);
	}
	if (!given || !m)
		return false;
	size_t n = strlen(h->token);
	unsigned char diff = n != m;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(h->token[i] ^ given[i < m ? i : 0]);
	return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	thothd_http_t *h = cls;
	/* The head has arrived: from now on only the idle timeout applies
	 * (an event stream lasts as long as its page). */
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci)
		head_unlink(h, ci->socket_context);
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_with(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
				  (void *)"only GET and HEAD\n", strlen("only GET and HEAD\n"),
				  MHD_RESPMEM_PERSISTENT, "Allow", "GET, HEAD");
	if (*upload_data_size) {
		*upload_data_size = 0;  /* a GET with a body: ignore the body */
		return MHD_YES;
	}
	if (!token_ok(h, conn))
		return reply_text(conn, MHD_HTTP_UNAUTHORIZED,
				  "a token is required: ?token=... or Authorization: Bearer ...\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(h, conn, con_cls);
	if (strcmp(url, "/events") == 0)
		return serve_events(h, conn);
	if (strcmp(url, "/trace.json") == 0)
		return serve_trace(h, conn, con_cls);
	if (strcmp(url, "/probes.json") == 0)
		return serve_probes(h, conn);
	if (strcmp(url, "/serve.json") == 0)
		return serve_serve_stats(h, conn);
	if (strcmp(url, "/lifecycle.json") == 0)
		return serve_lifecycle(h, conn);
	if (strcmp(url, "/federation.json") == 0)
		return serve_federation(h, conn);
	if (strcmp(url, "/services.json") == 0)
		return serve_services(h, conn);
	const char *path = strcmp(url, "/") == 0 ? "/index.html" : url;
	for (size_t i = 0; i < thothd_web_file_count; i++) {
		const thothd_web_file_t *f = &thothd_web_files[i];
		if (strcmp(path, f->path) == 0)
			return reply(conn, MHD_HTTP_OK, f->content_type, (void *)f->data, f->size,
				     MHD_RESPMEM_PERSISTENT);
	}
	return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* Percent-decoding of the path and query (MHD's option), except that %00
 * stays as it is: a decoded NUL would cut the path short in every C string
 * comparison ("/dashboard.js%00.html" would match "/dashboard.js"). */
static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		int hi, lo;
		if (r[0] == '%' && (hi = hex_digit(r[1])) >= 0 && (lo = hex_digit(r[2])) >= 0 &&
		    (hi | lo)) {
			*w++ = (char)(hi << 4 | lo);
			r += 3;
		} else {
			*w++ = *r++;
		}
	}
	*w = 0;
	return (size_t)(w - s);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	thothd_http_t *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		h->connections++;
		/* Without memory the connection has only the idle timeout. */
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		head_wait_t *w = ci ? calloc(1, sizeof *w) : NULL;
		if (w) {
			w->fd = ci->connect_fd;
			head_link(h, w);
		}
		*socket_context = w;
	} else {
		if (h->connections >= h->max_connections)
			h->rerun = true;
		h->connections--;
		head_unlink(h, *socket_context);
		free(*socket_context);
		*socket_context = NULL;
	}
}

/* A request ended; on a kept-alive connection the next head is awaited. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	thothd_http_t *h = cls;
	if (*con_cls && *con_cls != &waited_mark) {
		export_drop(h, *con_cls);       /* ended before its export was answered */
		*con_cls = NULL;
	}
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (ci && ci->socket_context && !h->stopping && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		head_link(h, ci->socket_context);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	vsnprintf(line, sizeof line, fmt, ap);
	line[strcspn(line, "\n")] = 0;
	thothd_debug("dashboard (libmicrohttpd): %s", line);
}

/* ---- start / stop --------------------------------------------------------------------- */

int thothd_http_addr_check(const char *addr, char *why, size_t why_len)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, addr, &a4) == 1 || inet_pton(AF_INET6, addr, &a6) == 1)
		return 0;
	snprintf(why, why_len, "'%s' is not a numeric IPv4 or IPv6 address", addr);
	return THOTH_E_INVAL;
}

int thothd_http_start(thothd_t *d, const thothd_http_config_t *cfg, thothd_http_t **out,
		      char *why, size_t why_len)
{
	const char *addr = cfg->addr ? cfg->addr : "127.0.0.1";
	if (cfg->port < 0 || cfg->port > 65535) {
		snprintf(why, why_len, "port %d out of range", cfg->port);
		return THOTH_E_INVAL;
	}
	if (cfg->token && strlen(cfg->token) >= sizeof ((thothd_http_t *)0)->token) {
		snprintf(why, why_len, "token longer than 255 bytes");
		return THOTH_E_INVAL;
	}
	struct sockaddr_storage ss = { 0 };
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cfg->port);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cfg->port);
		flags |= MHD_USE_IPv6;
	} else {
		return thothd_http_addr_check(addr, why, why_len);
	}
	uint32_t max_conn = cfg->max_connections ? cfg->max_connections : 1024;
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
	    max_conn > nofile.rlim_cur / 4)
		max_conn = (uint32_t)(nofile.rlim_cur / 4);
	if (max_conn < 8)
		max_conn = 8;

	thothd_http_t *h = calloc(1, sizeof *h);
	if (!h)
		return THOTH_E_NOMEM;
	h->d = d;
	h->loop = d->loop;
	/* THOTHD_LIVE_HOLD_MS: a shorter hold after a scrape, for tests that
	 * need collection to stop on its own (test_thothd_live_drain). */
	h->hold_ns = LIVE_HOLD_NS;
	const char *hold = getenv("THOTHD_LIVE_HOLD_MS");
	if (hold && atoi(hold) > 0 && atoi(hold) <= 600000)
		h->hold_ns = (uint64_t)atoi(hold) * MS_NS;
	if (cfg->token)
		snprintf(h->token, sizeof h->token, "%s", cfg->token);
	/* THOTHD_TEST_TICK_PAD: each tick's JSON padded with that many spaces
	 * (still valid JSON), so that a test makes the ticks of a 192-CPU
	 * host on this one (test_dashboard_hostile). */
	const char *pad = getenv("THOTHD_TEST_TICK_PAD");
	if (pad && atoi(pad) > 0 && atoi(pad) <= 1 << 20) {
		h->tick_pad = (size_t)atoi(pad);
		thothd_warn("dashboard: ticks padded by %zu bytes (THOTHD_TEST_TICK_PAD; tests only)",
			    h->tick_pad);
	}
	/* THOTHD_TEST_SSE_REF_ALLOCS=N: after N references to event-stream
	 * objects, their malloc fails (a malloc-failure seam for
	 * test_dashboard_hostile: a stream closed for it is counted apart). */
	h->ref_allocs_left = -1;
	const char *allocs = getenv("THOTHD_TEST_SSE_REF_ALLOCS");
	if (allocs && *allocs) {
		/* The whole string a number >= 0: atoi took "yes" for 0, and
		 * every event stream was closed at its first reference. */
		char *end;
		errno = 0;
		long long n = strtoll(allocs, &end, 10);
		if (errno || *end || end == allocs || n < 0) {
			thothd_warn("dashboard: THOTHD_TEST_SSE_REF_ALLOCS=%s is not a count of references: "
				    "ignored (tests only)", allocs);
		} else {
			h->ref_allocs_left = n;
			thothd_warn("dashboard: event-stream references fail after %lld (THOTHD_TEST_SSE_REF_ALLOCS; "
				    "tests only)", (long long)h->ref_allocs_left);
		}
	}
	const char *gate = getenv("THOTHD_TEST_EXPORT_GATE");
	if (gate && *gate) {
		h->export_gate = strdup(gate);
		thothd_warn("dashboard: a test gate is active: window exports wait at %s "
			    "(THOTHD_TEST_EXPORT_GATE; tests only)", gate);
	}
	int r = thothd_live_new(d, &h->live);
	if (r) {
		snprintf(why, why_len, "out of memory");
		goto err;
	}
	h->max_connections = max_conn;
	h->events_memory = cfg->events_memory ? cfg->events_memory : EVENTS_MEMORY_DEFAULT;
	h->head_limit_ns = (uint64_t)(cfg->timeout_s ? cfg->timeout_s : 10) * S_NS;
	h->mhd = MHD_start_daemon(
		flags, (uint16_t)cfg->port, NULL, NULL, on_request, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conn,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->timeout_s ? cfg->timeout_s : 10),
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 128u,
		MHD_OPTION_UNESCAPE_CALLBACK, unescape, h,
		MHD_OPTION_END);
	if (!h->mhd) {
		int err = errno;
		snprintf(why, why_len, "cannot serve HTTP on %s:%d: %s", addr, cfg->port,
			 err ? strerror(err) : "libmicrohttpd refused to start");
		r = err == EADDRINUSE ? THOTH_E_BUSY : THOTH_E_IO;
		goto err;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	const union MHD_DaemonInfo *lfd = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_LISTEN_FD);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	if (!info || !lfd || getsockname(lfd->listen_fd, (struct sockaddr *)&bound, &blen) != 0) {
		snprintf(why, why_len, "libmicrohttpd gave no epoll or listening descriptor");
		r = THOTH_E_IO;
		goto err;
	}
	h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						    : ((struct sockaddr_in *)&bound)->sin_port);
	r = thoth_loop_add_fd(h->loop, info->epoll_fd, THOTH_LOOP_READ, on_mhd_ready, h, &h->source);
	if (r) {
		snprintf(why, why_len, "cannot watch libmicrohttpd's epoll fd: %s", thoth_strerror(r));
		goto err;
	}
	snprintf(d->dashboard_url, sizeof d->dashboard_url,
		 (flags & MHD_USE_IPv6) ? "http://[%s]:%u/" : "http://%s:%u/", addr, h->port);
	thothd_tracer_live_on_drained(d->tracer, live_drained, h);
	*out = h;
	return 0;
err:
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	thothd_live_free(h->live);
	free(h->export_gate);
	free(h);
	return r;
}

void thothd_http_stop(thothd_http_t *h)
{
	if (!h)
		return;
	h->stopping = true;
	h->d->dashboard_url[0] = 0;
	if (h->source)
		thoth_loop_remove_fd(h->loop, h->source);
	if (h->mhd_timer)
		thoth_timer_cancel(h->loop, h->mhd_timer);
	if (h->tick)
		thoth_timer_cancel(h->loop, h->tick);
	h->tick = NULL;
	/* Suspended event streams must be resumed for MHD to close them; their
	 * sse_free callbacks run inside MHD_stop_daemon. */
	for (sse_client_t *c = h->sse; c; c = c->next)
		sse_wake(c);
	thothd_tracer_live_on_drained(h->d->tracer, NULL, NULL);
	for (size_t i = 0; i < h->n_waiting; i++)
		MHD_resume_connection(h->waiting[i]);
	h->n_waiting = 0;
	/* Exports still on a worker are theirs from now on (export_release);
	 * their connections, suspended, are resumed for MHD to close. */
	for (export_job_t *j = h->exports, *next; j; j = next) {
		next = j->next;
		if (!j->done) {
			export_unlink(h, j);
			j->h = NULL;
			MHD_resume_connection(j->conn);
		}
	}
	MHD_stop_daemon(h->mhd);
	thothd_live_stop(h->live);
	thothd_live_free(h->live);
	free(h->waiting);
	free(h->export_gate);
	free(h);
}
