/*
 * trace.c - thothd's trace collector (OBS-1): TraceControl served on the
 * control socket (idl/trace.tidl, docs/OBSERVABILITY.md "Collection").
 *
 * Sources: every process with a trace buffer hands thothd its memfd when it
 * connects (TraceControl.attach with SCM_RIGHTS; server.c queues the fds a
 * client sends, the attach handler takes the oldest).  thothd maps it with
 * a thoth_trace_reader_t and keeps it while the process's connection lives;
 * after the connection closes it is kept until no session needs its last
 * events.  thothd's own buffer is a source too.
 *
 * Session: start switches the category mask on in each source's shared
 * control page (writers see it at their next trace point), stop switches it
 * off, drains once more and keeps the collection for dump/write.  A session
 * belongs to the connection that started it: when that closes without a
 * stop (thothctl trace start; a killed thothctl trace --duration) the
 * session ends trace_detach_ns later (thothd_config_t).  The collection holds at most
 * MAX_EVENTS; what comes beyond is counted as dropped.  While a
 * session is active the buffers are drained into the collection every
 * DRAIN_PERIOD; with no session nothing is armed and no thread runs, so an
 * idle thothd still never wakes up (test_thothd_idle).
 *
 * Who drains (SCALE-2: thothd's read paths must not wait behind a drain):
 * by default a collector thread that exists only while a session is active
 * ("thothd-trace", its own timed wait, no loop of its own to wake).  The
 * loop thread then never drains periodically: a resolve, list or status
 * request never waits for a drain.  Tracer state (sources, the
 * collection, the session) is guarded by one mutex that only tracer entry
 * points take -- never the registry, resolve, list or status paths -- and
 * the collector holds it for one source at a time, stepping aside between
 * sources when the loop thread wants it (attach, a closed connection,
 * start/stop/write), so the loop thread waits at most one source's drain.
 * Every source is freed on the loop thread only, so a reader pointer handed
 * to the loop thread (probe.c) stays valid while it runs.
 * With --trace-collector loop (the old path, the benchmark's baseline), or
 * while the live observer is set, the loop thread's ONE timer
 * (DRAIN_PERIOD, with slack) drains instead -- with the observer set, by
 * the observer's rule (thothd_tracer_live_drain: a busy backlog on the
 * task thread, routed to the session too).
 *
 * Live observer (the dashboard, http_live.c): while one is set its
 * categories are switched on in every source too, and every event drained
 * (by its own drain calls or the session's) is handed to it; the session
 * then gets only the events of its own categories and pid.  With no
 * observer the session's path is unchanged.  Its callbacks run with mu
 * held, so what they update is guarded by mu (the loop thread reads it
 * under thothd_tracer_live_lock).  Its own drain (the dashboard's tick)
 * runs on the loop thread while few records wait; a busy backlog is
 * drained by a deferred task on a worker (defer.c), in chunks of
 * LIVE_CHUNK records between which it steps aside when the loop thread
 * wants mu: the loop thread waits at most one chunk, never the drain.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "collection.h"         /* thoth__trace_collection_clone */
#include "log.h"
#include "pidpin.h"
#include "trace_layout.h"       /* thoth__trace_reader_unread */
#include "thothd.h"

#define MS_NS 1000000ull

enum {
	MAX_SOURCES = 1024,             /* buffers thothd maps at once */
	MAX_BUFFER_BYTES = 256 << 20,   /* larger memfds are refused */
	/* Events one session keeps: 512 Ki events of ~80 bytes, 40 MiB (the
	 * collection's array doubles up to exactly this).  Beyond, events are
	 * read and counted as dropped (stop's `dropped`, the log). */
	MAX_EVENTS = 512 << 10,
};
/* A worker's live drain holds mu for this many records at most (~0.1-0.5
 * ms of callbacks) before it looks whether the loop thread waits for it. */
enum { LIVE_CHUNK = 4096, ROUTE_CHUNK_END = 1 };
static const uint64_t DRAIN_PERIOD_NS = 100 * MS_NS;   /* THOTHD_TRACE_DRAIN_MS: tests */


typedef struct trace_source {
	thoth_trace_reader_t *reader;
	uint32_t pid;
	dev_t dev;
	ino_t ino;                      /* (dev, ino): one buffer attached twice is one source */
	const thothd_client_t *client;  /* holders[0]; NULL: every one closed (or thothd's own buffer) */
	/* Every connection that handed this buffer over (as many as there
	 * are: a bound let the 17th go unrecorded, and the buffer was gone
	 * once the first 16 closed): a process hands it on each of its
	 * connections, and a forked child sharing its parent's buffer on its
	 * own.  The source is gone once all have closed.  With one pointer
	 * (the last to hand it over) a child's exit, or a process's second
	 * connection closing, made a live process's buffer gone: drained a
	 * last time, unmapped, and its later records never collected. */
	const thothd_client_t **holders;
	uint32_t n_holders, cap_holders;
	bool own;                       /* thothd's own buffer */
	bool in_session;                /* switched on by the active session */
	uint32_t ring_records;          /* geometry, for the fill figure */
	uint32_t last_drain_max;        /* most events one ring gave at the last drain */
	thoth_trace_stats_t base;       /* reader stats when the session took it */
	/* Records of the session lapped, torn or invalid in its rings
	 * (source_lost, by sequence): only those from its cut on (and before
	 * its stop's), not the older ones a ring held when the session started
	 * (the reader's totals, the dashboard's loss counters, have those).
	 * Replace the reader's stats less the base taken at the start. */
	uint64_t session_overwritten, session_torn, session_invalid;
	/* Cuts (thoth__trace_reader_heads, n_cut rings each): records before
	 * the session's cut are not the session's, records before the live
	 * cut not the observer's.  NULL: no cut.  Set on the loop thread
	 * instead of draining there what waits (the drain that reads those
	 * records later, on whichever thread, sorts them). */
	uint64_t *session_cut, *live_cut;
	/* The stop's cut (set by a stop beside the live observer): records
	 * from it on are not the session's, whoever drains them.  With it the
	 * writers' refusal counters then (thoth__trace_reader_refused): the
	 * observer's categories stay on, so later refusals are not the
	 * session's either. */
	uint64_t *stop_cut;
	uint64_t stop_dropped, stop_no_ring;
	uint32_t n_cut;
	/* Its connection closed and a drain has read what it left (its last
	 * records, the observer's): pruning may free it.  A big rest is read
	 * by a drain on the task thread, not by the pruning loop thread. */
	bool final_drained;
	/* In the session while the observer's categories were on too: its
	 * records must be sorted by category, not taken whole (drain_source). */
	bool mixed;
	struct trace_source *next;
} trace_source_t;

struct thothd_tracer {
	thothd_t *d;
	trace_source_t *sources;
	uint32_t n_sources;
	uint32_t max_sources;           /* MAX_SOURCES, or less: THOTHD_MAX_SOURCES (tests) */
	uint32_t detach_hold_ms;        /* THOTHD_TEST_DETACH_HOLD_MS: a detached end's drain held (tests) */
	bool active;
	uint64_t session_id, next_session_id;
	uint64_t categories;
	uint32_t pid_filter;            /* 0: every process */
	thoth_trace_collection_t *collection;   /* the last session's events */
	uint64_t discarded;             /* beyond MAX_EVENTS */
	thoth_timer_t *drain_timer;     /* armed only while a session is active */
	uint64_t drain_period_ns, drain_slack_ns;       /* DRAIN_PERIOD_NS, half of it */
	bool freeing;                   /* thothd_tracer_free: no task (the workers are gone) */
	/* The session belongs to the connection that started it; once that is
	 * gone it is "detached" and ends at detached_end_ns (one timer). */
	const thothd_client_t *session_owner;
	uint64_t detached_end_ns;       /* 0: not detached */
	thoth_timer_t *detach_timer;
	char ended_why[96];             /* why the last session ended without a stop */
	/* The live observer (thothd_tracer_live_start): NULL fn = none. */
	uint64_t live_mask;
	thothd_trace_live_fn live_fn;
	void *live_ctx;
	thothd_trace_live_poll_fn live_poll;    /* its extra source (NULL: none) */
	bool (*live_heavy)(void *ctx);
	/* The observer's deferred drain: at most one in flight (loop thread
	 * only), and the worker's place in the list (mu: pruning moves it). */
	bool live_task;
	void (*live_drained)(void *ctx);        /* told when it is done (loop thread) */
	void *live_drained_ctx;
	trace_source_t *live_cur, *live_next;
	uint64_t live_deferred, live_inline_big;        /* drains of a backlog, each way */
	uint32_t live_inline_max;       /* THOTHD_LIVE_INLINE_MAX, or THOTHD_TEST_LIVE_INLINE (benchmarks) */
	/* Guards everything above once the collector thread runs; taken by
	 * every tracer entry point (tracer_lock on the loop thread). */
	pthread_mutex_t mu;
	pthread_cond_t wake;            /* the collector's timed wait (CLOCK_MONOTONIC) */
	atomic_uint loop_wants;         /* the loop thread waits for mu: the collector steps aside */
	bool on_loop;                   /* --trace-collector loop */
	bool collector_running;         /* started, not yet joined (loop thread only) */
	bool collector_quit;
	pthread_t collector;
	trace_source_t *cursor;         /* the collector's next source (pruning moves it on) */
	/* Collection passes of the session and the CPU they took, on whichever
	 * thread drained (logged at stop; bench_scale section 7 reads it). */
	uint64_t passes, pass_cpu_ns;
	/* An extra source (thothd_tracer_set_source: the lock rings, locks.c),
	 * polled by whichever thread drains, with mu held. */
	uint64_t source_mask;
	thothd_trace_source_poll_fn source_fn;
	void *source_ctx;
	uint64_t session_start_ns;
	uint64_t source_lost;           /* this session's */
	/* THOTHD_TEST_STOP_GATE (a FIFO's path; tests only, NULL: none): a
	 * stop beside the observer waits there, its cut taken, its drain not
	 * yet started, until a byte comes (stop_gate). */
	char *stop_gate;
	/* Deferred answers (defer.c): a stop whose last drain runs on a
	 * worker; write/dump jobs reading a collection (loop thread only). */
	bool stopping;
	uint64_t last_events, last_dropped;     /* the last session_end's totals */
	uint32_t coll_readers;          /* jobs reading `collection` */
	struct retired_coll {
		thoth_trace_collection_t *c;
		uint32_t readers;
		struct retired_coll *next;
	} *retired;                     /* replaced collections jobs still read */
};

/* The loop thread's lock: says it is waiting, so that the collector gives
 * the mutex up after the source it is draining. */
static void tracer_lock(thothd_tracer_t *t)
{
	atomic_fetch_add_explicit(&t->loop_wants, 1, memory_order_relaxed);
	pthread_mutex_lock(&t->mu);
	atomic_fetch_sub_explicit(&t->loop_wants, 1, memory_order_relaxed);
}

static void tracer_unlock(thothd_tracer_t *t)
{
	pthread_mutex_unlock(&t->mu);
}

/* What a source's writers record: the session's categories if it takes
 * part, plus the live observer's. */
static uint64_t source_mask(const thothd_tracer_t *t, const trace_source_t *s)
{
	return (s->in_session ? t->categories : 0) | (t->live_fn ? t->live_mask : 0);
}

/* The observer's drain of its sources in chunks (the live observer's
 * section, below): a task's (defer.c), or part of a stop's or write's. */
typedef struct live_job {
	thothd_tracer_t *t;
	bool no_poll;                   /* for gone processes' rests (live_kick): no ring poll */
	/* Why it was handed over, for the log: a backlog above the inline
	 * limit, or (else) the lock rings' poll due and costly (live_heavy),
	 * which takes a few records waiting with it.  test_thothd_live_drain
	 * judges the limit by the first alone: a hand-off for the second is
	 * not the limit's doing. */
	bool backlog;
	uint64_t waiting;
	uint64_t events, chunks, wall_ns, cpu_ns;
} live_job_t;
static void live_drain_all(thothd_tracer_t *t, live_job_t *job, bool to_stop_cut);

/* Per-drain routing of one source's events (live observer on). */
typedef struct route_ctx {
	thothd_tracer_t *t;
	trace_source_t *s;
	const char *process;
	uint32_t *ring_counts;          /* events per ring in this drain (may be NULL) */
	uint32_t n_rings;
	uint32_t limit;                 /* 0: all; else stop (ROUTE_CHUNK_END) after LIMIT events */
	uint32_t seen;
} route_ctx_t;

/* Is EV from before CUT (NULL: no cut)? */
static bool before_cut(const trace_source_t *s, const uint64_t *cut, const thoth_trace_event_t *ev)
{
	return cut && ev->ring < s->n_cut && ev->seq < cut[ev->ring];
}

/* Is EV the session's by its cuts (after the start's, before the stop's)? */
static bool within_session(const trace_source_t *s, const thoth_trace_event_t *ev)
{
	if (before_cut(s, s->session_cut, ev))
		return false;
	return !s->stop_cut || ev->ring >= s->n_cut || ev->seq < s->stop_cut[ev->ring];
}

static int route_event(const thoth_trace_event_t *ev, void *arg)
{
	route_ctx_t *rc = arg;
	thothd_tracer_t *t = rc->t;
	trace_source_t *s = rc->s;
	if (rc->ring_counts && ev->ring < rc->n_rings)
		rc->ring_counts[ev->ring]++;
	if (t->live_fn && !before_cut(s, s->live_cut, ev))
		t->live_fn(ev, rc->process, t->live_ctx);
	if (t->active && s->in_session && (t->categories & (1ull << ev->category)) &&
	    within_session(s, ev)) {
		if (thoth_trace_collection_count(t->collection) >= MAX_EVENTS) {
			t->discarded++;
		} else {
			const char *thread = "";
			thoth_trace_reader_thread_name(s->reader, ev->ring, &thread);
			int r = thoth_trace_collection_add_event(t->collection, ev, rc->process, thread);
			if (r)
				return r;
		}
	}
	if (rc->limit && ++rc->seen >= rc->limit)
		return ROUTE_CHUNK_END;         /* this event is consumed; the next poll goes on */
	return 0;
}

/* Poll S once, routing each event to the observer and the session. */
static void source_poll_routed(thothd_tracer_t *t, trace_source_t *s)
{
	uint32_t pid, rings = 0;
	const char *name = "";
	thoth_trace_reader_process(s->reader, &pid, &name);
	thoth_trace_reader_geometry(s->reader, &rings, NULL);
	uint32_t counts[64] = { 0 };
	route_ctx_t rc = { .t = t, .s = s, .process = name,
			   .ring_counts = counts, .n_rings = rings < 64 ? rings : 64 };
	int r = thoth_trace_reader_poll(s->reader, route_event, &rc);
	if (r)
		thothd_warn("trace: draining pid %u: %s", s->pid, thoth_strerror(r));
	uint32_t max = 0;
	for (uint32_t i = 0; i < rc.n_rings; i++)
		max = counts[i] > max ? counts[i] : max;
	s->last_drain_max = max;
	if (!s->client && !s->own)
		s->final_drained = true;        /* all it had: its process is gone */
}

/* ---- sources ---------------------------------------------------------------- */

/* The reader lost ring RING's records [FROM, TO) to its writer, as KIND
 * (mu held: every poll of a source's reader is, and find_torn's caller):
 * the session's share is what lies within its cuts, [session cut, stop
 * cut), or all while it has none (without the observer a session's start
 * read its sources to the end).  A torn record's sequence is its ring's
 * head, which a cut equals whether its writer died before or after it:
 * the start's and the stop's cuts look for torn heads (find_torn), so one
 * found later came after the cut.  A head gone backwards has no sequence:
 * counted by whichever session sees it. */
static void source_lost(uint32_t ring, uint32_t kind, uint64_t from, uint64_t to, void *ctx)
{
	trace_source_t *s = ctx;
	if (!s->in_session)
		return;
	const uint64_t *start = s->session_cut && ring < s->n_cut ? &s->session_cut[ring] : NULL;
	const uint64_t *stop = s->stop_cut && ring < s->n_cut ? &s->stop_cut[ring] : NULL;
	uint64_t n = kind == THOTH__TRACE_LOST_UNPLACED ? to - from
							: thoth__trace_cut_share(from, to, start, stop);
	uint64_t *sum = kind == THOTH__TRACE_LOST_OVERWRITTEN ? &s->session_overwritten
		      : kind == THOTH__TRACE_LOST_TORN ? &s->session_torn : &s->session_invalid;
	*sum = thoth__trace_sat_add(*sum, n);
}

/* A cut of S's rings now, in *CUT (allocated once per source); false when
 * there is no memory for it (the caller drains instead, as before cuts). */
static bool cut_now(trace_source_t *s, uint64_t **cut)
{
	if (!s->n_cut) {
		uint32_t rings = 0;
		thoth_trace_reader_geometry(s->reader, &rings, NULL);
		s->n_cut = rings;
	}
	if (!s->n_cut)
		return true;            /* no ring: nothing before any cut */
	if (!*cut && !(*cut = malloc(s->n_cut * sizeof **cut)))
		return false;
	thoth__trace_reader_heads(s->reader, *cut, s->n_cut);
	return true;
}

static void cut_drop(uint64_t **cut)
{
	free(*cut);
	*cut = NULL;
}

/* Unmapping a big buffer costs its page tables' teardown (~12 ms of a
 * 1 Mi-record ring thothd has read): on a worker (a slow task: nothing
 * waits for it), not the loop thread.  The reader is nobody's by then. */
enum { CLOSE_ASIDE_BYTES = 4 << 20 };

static void reader_close_work(void *arg)
{
	thoth_trace_reader_close(arg);
}

static int reader_close_done(void *arg, bool ran, void *resp, thoth_arena_t *arena, const char **reason)
{
	(void)resp;
	(void)arena;
	(void)reason;
	if (!ran)
		thoth_trace_reader_close(arg);  /* thothd is stopping: given up, closed here */
	return 0;
}

static void reader_close_release(void *arg)
{
	(void)arg;
}

static const thothd_job_ops_t reader_close_ops = {
	.method = NULL,
	.work = reader_close_work,
	.done = reader_close_done,
	.release = reader_close_release,
};

static void source_free(thothd_tracer_t *t, trace_source_t *s)
{
	/* Whoever switched it on (a session or the observer) switches it off;
	 * a mask the process set itself (THOTH_TRACE=...) is left alone. */
	if (s->in_session || t->live_fn)
		thoth_trace_reader_set_enabled(s->reader, 0);
	/* A worker may close the reader after S is freed: nothing of it may
	 * be called back with S then. */
	thoth__trace_reader_on_lost(s->reader, NULL, NULL);
	const uint8_t *base;
	size_t size = 0;
	if (t->freeing || thoth__trace_reader_mapping(s->reader, &base, &size) || size < CLOSE_ASIDE_BYTES ||
	    thothd_defer_task_slow(t->d, &reader_close_ops, s->reader) != 0)
		thoth_trace_reader_close(s->reader);
	cut_drop(&s->session_cut);
	cut_drop(&s->live_cut);
	cut_drop(&s->stop_cut);
	free(s->holders);
	free(s);
}

static bool live_kick(thothd_tracer_t *t);

/* Drop sources whose process is gone, unless the active session still has
 * to drain them (mu held, loop thread).  With the live observer set, what
 * a gone process left is the observer's: read here when few records wait
 * (THOTHD_LIVE_INLINE_MAX, the observer's own rule), else the source stays
 * -- its reader, so its mapping: the process may have closed its memfd and
 * exited, the pages stay while mapped -- until a drain on the task thread
 * has read it (final_drained), kicked here; the next pruning frees it
 * (live_done).  THOTHD_DEFER=off reads it here always (the old path), and
 * so does FINISH (an attach at MAX_SOURCES: attach_fd). */
static void prune(thothd_tracer_t *t, bool finish)
{
	trace_source_t **pp = &t->sources;
	while (*pp) {
		trace_source_t *s = *pp;
		if (s->client || s->own || (t->active && s->in_session)) {
			pp = &s->next;
			continue;
		}
		if (t->live_fn && !s->final_drained) {
			if (!finish && !t->d->defer_off &&
			    thoth__trace_reader_unread(s->reader) > t->live_inline_max && live_kick(t)) {
				pp = &s->next;
				continue;
			}
			source_poll_routed(t, s);       /* its last events */
		}
		if (t->cursor == s)
			t->cursor = s->next;
		if (t->live_next == s)
			t->live_next = s->next;
		if (t->live_cur == s)
			t->live_cur = NULL;     /* the worker's drain of it ends */
		*pp = s->next;
		t->n_sources--;
		source_free(t, s);
	}
}

static void prune_sources(thothd_tracer_t *t)
{
	prune(t, false);
}

static int skip_event(const thoth_trace_event_t *ev, void *ctx)
{
	return 0;
}

static int count_event(const thoth_trace_event_t *ev, void *ctx)
{
	(*(uint64_t *)ctx)++;
	return 0;
}

/* Include S in the active session: skip what is already in its buffer,
 * remember its counters, switch the categories on. */
static void source_join_session(thothd_tracer_t *t, trace_source_t *s)
{
	if (t->pid_filter && s->pid != t->pid_filter)
		return;
	bool polled = true;
	if (t->live_fn) {
		/* What waits is the observer's only: its next drain (a busy
		 * backlog on the task thread) hands it out, the cut keeps it from
		 * the session.  Without memory for a cut, or with THOTHD_DEFER=off
		 * (the old path, the benchmarks' baseline), drained here. */
		if (t->d->defer_off || !cut_now(s, &s->session_cut))
			source_poll_routed(t, s);
		else
			polled = false;
		/* Torn heads found now are from before the cut (not yet in the
		 * session): found later, they are its own. */
		if (!polled)
			thoth__trace_reader_find_torn(s->reader);
		s->mixed = true;
	} else {
		thoth_trace_reader_poll(s->reader, skip_event, NULL);
	}
	thoth_trace_reader_stats(s->reader, &s->base);
	/* Without a poll here the last one may be old: records refused since
	 * (a full DROP_NEWEST ring, no free ring) came before the session. */
	if (!polled)
		thoth__trace_reader_refused(s->reader, &s->base.dropped, &s->base.no_ring);
	s->session_overwritten = s->session_torn = s->session_invalid = 0;
	s->in_session = true;
	thoth_trace_reader_set_enabled(s->reader, source_mask(t, s));
}

/* C holds S's buffer too (mu held).  0, or THOTH_E_NOMEM: then C is not
 * recorded and must not attach (its close would not be seen). */
static int holder_add(trace_source_t *s, const thothd_client_t *c)
{
	for (uint32_t i = 0; i < s->n_holders; i++)
		if (s->holders[i] == c)
			return 0;
	if (s->n_holders == s->cap_holders) {
		uint32_t cap = s->cap_holders ? 2 * s->cap_holders : 4;
		const thothd_client_t **h = realloc(s->holders, cap * sizeof *h);
		if (!h)
			return THOTH_E_NOMEM;
		s->holders = h;
		s->cap_holders = cap;
	}
	s->holders[s->n_holders++] = c;
	s->client = s->holders[0];
	return 0;
}

/* C closed (mu held): S is gone once no holder is left. */
static void holder_remove(trace_source_t *s, const thothd_client_t *c)
{
	for (uint32_t i = 0; i < s->n_holders; i++)
		if (s->holders[i] == c) {
			s->holders[i] = s->holders[--s->n_holders];
			break;
		}
	s->client = s->n_holders ? s->holders[0] : NULL;
}

static bool held_by(const trace_source_t *s, const thothd_client_t *c)
{
	for (uint32_t i = 0; i < s->n_holders; i++)
		if (s->holders[i] == c)
			return true;
	return false;
}

static trace_source_t *source_add(thothd_tracer_t *t, thoth_trace_reader_t *reader, uint32_t pid,
				  const struct stat *st, const thothd_client_t *client)
{
	trace_source_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->reader = reader;
	s->pid = pid;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	if (client && holder_add(s, client) != 0) {
		free(s);
		return NULL;
	}
	thoth_trace_reader_geometry(reader, NULL, &s->ring_records);
	thoth__trace_reader_on_lost(reader, source_lost, s);
	s->next = t->sources;
	t->sources = s;
	t->n_sources++;
	/* Not while a stop runs (its cut taken, its buffers being switched
	 * off, session_end to come): a buffer joining then would be switched
	 * on after the switch-off and counted in a session already cut. */
	if (t->active && !t->stopping)
		source_join_session(t, s);
	if (t->live_fn && !s->in_session)
		thoth_trace_reader_set_enabled(reader, t->live_mask);
	return s;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77         /* Linux 6.5 */
#endif
/* What thothd__client_pidfd asks SO_PEERPIDFD through: getsockopt, or a
 * test's stand-in playing an older kernel (test_thothd_peer_pidfd: this
 * one, 6.18, never answers EINVAL or ENOPROTOOPT for a live peer). */
int (*thothd__peer_getsockopt)(int fd, int level, int name, void *value, socklen_t *len) = getsockopt;

/* Whether this kernel answers SO_PEERPIDFD: -1 not known yet, 0 no (a
 * kernel before 6.5: accept pins the number, thothd__client_pin_accepted),
 * 1 yes.  The loop thread alone asks. */
static int peer_pidfd_known = -1;

void thothd__client_pin_accepted(thothd_client_t *c)
{
	if (peer_pidfd_known < 0 && c->fd >= 0) {
		int fd = -1;
		socklen_t len = sizeof fd;
		if (thothd__peer_getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0) {
			close(fd);
			peer_pidfd_known = 1;
		} else if (errno == ENOPROTOOPT) {
			peer_pidfd_known = 0;
			thothd_info("this kernel has no SO_PEERPIDFD (Linux 6.5): each client's pid is "
				    "pinned by pidfd_open as it connects");
		}
	}
	if (peer_pidfd_known == 0 && c->accept_pidfd < 0 && c->pid) {
		c->accept_pidfd = thoth__pid_pin(c->pid);
		/* Gone already: a number opened later could only name
		 * another process (thothd__client_pidfd says gone). */
		c->accept_pin_gone = c->accept_pidfd < 0 && errno == ESRCH;
	}
}

void thothd__peer_pidfd_forget(void)
{
	peer_pidfd_known = -1;
}

/* A pidfd of the process at the other end of C's connection: the one
 * SO_PEERCRED named, so a pid number reused since cannot stand in for it
 * (SO_PEERPIDFD).  Without it (a kernel before 6.5) the pidfd opened from
 * the number as it connected (thothd__client_pin_accepted: a number
 * already reused then is the residual risk), or for an in-process client
 * the number opened now.  -1: none (the process is gone, or was already
 * at accept: ESRCH; ENOSYS: a kernel or seccomp filter without pidfds). */
int thothd__client_pidfd(const thothd_client_t *c)
{
	if (c->fd >= 0) {
		int fd = -1;
		socklen_t len = sizeof fd;
		if (thothd__peer_getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0)
			return fd;
		/* Only a kernel without the option falls back to the number.
		 * Any other error (ESRCH; EINVAL from 6.5 to ~6.15 for a reaped
		 * peer) is a peer gone: its number may be another's now.
		 * EMFILE, ENFILE, ENOMEM and ENODATA are not a peer gone but
		 * thothd short of descriptors or memory (or a peer the kernel
		 * has no pid for): no pidfd either (the number would cost the
		 * same descriptor), but said, rate-limited (the loop thread
		 * alone calls this), for it was taken silently for a peer
		 * gone. */
		int e = errno;
		if (e == EMFILE || e == ENFILE || e == ENOMEM || e == ENODATA) {
			static thothd_log_limit_t limit = { .per_second = 1, .burst = 5 };
			thothd_log_limited(&limit, THOTHD_LOG_WARN,
					   "trace: no pidfd of pid %u (SO_PEERPIDFD: %s): short of "
					   "resources, not a peer gone",
					   (unsigned)c->pid, strerror(e));
		}
		if (e != ENOPROTOOPT) {
			errno = e;      /* the log line's own calls may have changed it */
			return -1;
		}
		if (c->accept_pidfd >= 0)
			return fcntl(c->accept_pidfd, F_DUPFD_CLOEXEC, 0);
		if (c->accept_pin_gone) {
			errno = ESRCH;
			return -1;
		}
	}
	return thoth__pid_pin(c->pid);
}

/* C's peer pinned for one read of its /proc files: its pidfd (>= 0), -1
 * for a kernel without pidfds (read unpinned, said once), or -2 with
 * errno: ESRCH gone, EINVAL no pid (an in-process client), or thothd short
 * of descriptors or memory: nothing to read as the peer's. */
static int client_pin(const thothd_client_t *c)
{
	if (!c->pid) {
		errno = EINVAL;
		return -2;
	}
	int fd = thothd__client_pidfd(c);
	if (fd >= 0)
		return fd;
	int e = errno;
	if (e != ENOSYS) {
		/* EINVAL from SO_PEERPIDFD (6.5 to ~6.15) is a reaped peer */
		errno = e == EMFILE || e == ENFILE || e == ENOMEM || e == ENODATA ? e : ESRCH;
		return -2;
	}
	static bool said;
	if (!said)
		thothd_warn("no pidfds here (pidfd_open: a kernel before Linux 5.3, or a seccomp "
			    "filter): clients' /proc files are read unpinned (a pid reused meanwhile "
			    "would be read as the client's)");
	said = true;
	return -1;
}

ssize_t thothd__client_proc_read(const thothd_client_t *c, const char *file, char *buf, size_t cap)
{
	int pidfd = client_pin(c);
	if (pidfd == -2) {
		if (cap)
			buf[0] = 0;
		return -1;      /* errno said by client_pin */
	}
	ssize_t n = thoth__proc_read_pinned(c->pid, pidfd, file, buf, cap);
	int e = errno;
	if (pidfd >= 0)
		close(pidfd);
	errno = e;
	return n;
}

int thothd__client_proc_stat(const thothd_client_t *c, const char *file, struct stat *st)
{
	int pidfd = client_pin(c);
	if (pidfd == -2)
		return -1;      /* errno said by client_pin */
	int r = thoth__proc_stat_pinned(c->pid, pidfd, file, st);
	int e = errno;
	if (pidfd >= 0)
		close(pidfd);
	errno = e;
	return r;
}

/* Map the trace buffer FD (consumed).  0, or a reason in WHY. */
static int attach_fd(thothd_tracer_t *t, int fd, const thothd_client_t *client, bool own,
		     uint32_t *pid_out, char *why, size_t why_len)
{
	struct stat st;
	int r = 0;
	if (fstat(fd, &st) != 0) {
		snprintf(why, why_len, "cannot fstat the descriptor: %s", strerror(errno));
		r = THOTH_E_IO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {     /* the reader's words for it */
		snprintf(why, why_len, "not a valid trace buffer: %s, not a memfd",
			 thoth__trace_fd_kind(st.st_mode));
		r = THOTH_E_PERM;
		goto out;
	}
	if (st.st_size > MAX_BUFFER_BYTES) {
		snprintf(why, why_len, "buffer of %lld bytes (limit %d)", (long long)st.st_size,
			 MAX_BUFFER_BYTES);
		r = THOTH_E_LIMIT;
		goto out;
	}
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (s->dev == st.st_dev && s->ino == st.st_ino) {
			if (client) {
				/* a reconnect, another connection of the process */
				if (holder_add(s, client) != 0) {
					snprintf(why, why_len, "out of memory");
					r = THOTH_E_NOMEM;
					goto out;
				}
				s->final_drained = false;
				/* or another process holding it (a forked child
				 * sharing its parent's buffer): its SO_PEERCRED pid
				 * proves it, so its threads may be probed for a torn
				 * ring (their rings name its pid, not the first's) */
				if (!own && client->pid && client->pid != s->pid)
					thoth__trace_reader_add_peer(s->reader, client->pid,
								     thothd__client_pidfd(client));
			}
			*pid_out = s->pid;
			goto out;
		}
	}
	if (t->n_sources >= t->max_sources) {
		/* Gone processes whose last records wait for a drain on the task
		 * thread would hold the limit until it ends (live_done prunes
		 * them): read those records here instead, all of them, and free
		 * their sources, rather than refuse a live process.  Only at the
		 * limit; a worker's drain of one of them stops where this one
		 * takes over (live_cur).  Not counting them instead would let
		 * mappings of gone processes pile up past MAX_SOURCES. */
		uint32_t n0 = t->n_sources;
		prune(t, true);
		if (t->n_sources < n0)
			thothd_debug("trace: %u buffers attached, the limit: read the last records of %u gone "
				     "processes here to make room", n0, n0 - t->n_sources);
		if (t->n_sources >= t->max_sources) {
			snprintf(why, why_len, "%u buffers attached (limit)", t->n_sources);
			r = THOTH_E_LIMIT;
			goto out;
		}
	}
	thoth_trace_reader_t *reader;
	char rwhy[200];	/* fits WHY after the prefix: callers give 256 */
	r = thoth__trace_reader_open_why(fd, &reader, rwhy, sizeof rwhy);
	if (r) {
		snprintf(why, why_len, "not a valid trace buffer: %s", rwhy[0] ? rwhy : thoth_strerror(r));
		goto out;
	}
	/* Only the attaching process's threads are probed for a torn ring's
	 * dead writer (its SO_PEERCRED pid; ours for our own buffer): the pid
	 * in a ring is the writer's word.  A peer of unknown pid: none. */
	if (!own && client && client->pid)      /* its pidfd: that very process */
		thoth__trace_reader_set_peer_pidfd(reader, client->pid, thothd__client_pidfd(client));
	else
		thoth__trace_reader_set_peer(reader, own ? (uint32_t)getpid() : UINT32_MAX);
	uint32_t pid = 0;
	const char *name = "";
	thoth_trace_reader_process(reader, &pid, &name);
	trace_source_t *s = source_add(t, reader, pid, &st, client);
	if (!s) {
		thoth_trace_reader_close(reader);
		snprintf(why, why_len, "out of memory");
		r = THOTH_E_NOMEM;
		goto out;
	}
	s->own = own;
	*pid_out = pid;
	thothd_debug("trace buffer of pid %u (%s) attached%s", pid, name,
		     t->active && s->in_session ? ", joins the active session" : "");
out:
	close(fd);
	return r;
}

int thothd_tracer_new(thothd_t *d, thothd_tracer_t **out)
{
	thothd_tracer_t *t = calloc(1, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	t->d = d;
	t->next_session_id = 1;
	t->on_loop = d->cfg.trace_collect_on_loop;
	/* THOTHD_TRACE_DRAIN_MS: a session's drain period, for tests that need
	 * records to wait for a stop or a write (test_thothd_live_drain). */
	t->drain_period_ns = DRAIN_PERIOD_NS;
	const char *period = getenv("THOTHD_TRACE_DRAIN_MS");
	if (period && atoi(period) >= 10 && atoi(period) <= 60000)
		t->drain_period_ns = (uint64_t)atoi(period) * MS_NS;
	t->drain_slack_ns = t->drain_period_ns / 2;
	/* THOTHD_TEST_LIVE_INLINE: the observer's inline limit, for tests and
	 * benchmarks that move where it lies (bench_scale section 12; 0: every
	 * drain with a record waiting on the task thread).  At most 4,096: a
	 * larger one would put drains of milliseconds back on the loop thread. */
	t->live_inline_max = THOTHD_LIVE_INLINE_MAX;
	const char *inline_max = getenv("THOTHD_TEST_LIVE_INLINE");
	if (inline_max && *inline_max) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(inline_max, &end, 10);
		if (errno || *end || inline_max[0] == '-' || n > 4096)
			thothd_warn("trace: THOTHD_TEST_LIVE_INLINE=%s ignored: want 0..4096", inline_max);
		else
			t->live_inline_max = (uint32_t)n;
	}
	/* THOTHD_TEST_DETACH_HOLD_MS: a detached session's last drain holds the
	 * task thread this long, so that a test's stop lands while it runs
	 * (thothd_hostile.py detach). */
	const char *hold = getenv("THOTHD_TEST_DETACH_HOLD_MS");
	if (hold && atoi(hold) > 0 && atoi(hold) <= 10000)
		t->detach_hold_ms = (uint32_t)atoi(hold);
	/* THOTHD_MAX_SOURCES: a lower limit, for tests that reach it with a
	 * few processes (test_thothd_live_drain); never above MAX_SOURCES. */
	t->max_sources = MAX_SOURCES;
	const char *max_sources = getenv("THOTHD_MAX_SOURCES");
	if (max_sources) {
		char *end;
		errno = 0;
		unsigned long n = strtoul(max_sources, &end, 10);
		if (errno || end == max_sources || *end || max_sources[0] == '-' || n < 2 || n > MAX_SOURCES)
			thothd_info("trace: THOTHD_MAX_SOURCES=%s ignored: want 2..%u", max_sources,
				    (unsigned)MAX_SOURCES);
		else {
			t->max_sources = (uint32_t)n;
			thothd_info("trace: at most %u trace buffers attached (THOTHD_MAX_SOURCES)",
				    t->max_sources);
		}
	}
	const char *gate = getenv("THOTHD_TEST_STOP_GATE");
	if (gate && *gate) {
		t->stop_gate = strdup(gate);
		thothd_info("trace: a stop beside the dashboard waits at %s after its cut "
			    "(THOTHD_TEST_STOP_GATE)", gate);
	}
	pthread_condattr_t ca;
	if (pthread_mutex_init(&t->mu, NULL) || pthread_condattr_init(&ca)) {
		free(t->stop_gate);
		free(t);
		return THOTH_E_NOMEM;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int e = pthread_cond_init(&t->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (e) {
		pthread_mutex_destroy(&t->mu);
		free(t->stop_gate);
		free(t);
		return THOTH_E_NOMEM;
	}
	*out = t;
	/* thothd's own buffer (if main() created one) is a source like any other. */
	int own_fd;
	if (thoth_trace_export_fd(&own_fd) == 0) {
		int fd = dup(own_fd);
		uint32_t pid;
		char why[256];
		if (fd < 0 || attach_fd(t, fd, NULL, true, &pid, why, sizeof why))
			thothd_warn("cannot collect thothd's own trace buffer");
	}
	return 0;
}

static void collector_stop(thothd_tracer_t *t);

void thothd_tracer_free(thothd_tracer_t *t)
{
	if (!t)
		return;
	collector_stop(t);
	t->freeing = true;
	if (t->drain_timer && t->d->loop)
		thoth_timer_cancel(t->d->loop, t->drain_timer);
	if (t->detach_timer && t->d->loop)
		thoth_timer_cancel(t->d->loop, t->detach_timer);
	while (t->sources) {
		trace_source_t *s = t->sources;
		t->sources = s->next;
		source_free(t, s);
	}
	thoth_trace_collection_free(t->collection);
	while (t->retired) {            /* none: the jobs were stopped first */
		struct retired_coll *r = t->retired;
		t->retired = r->next;
		thoth_trace_collection_free(r->c);
		free(r);
	}
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->mu);
	free(t->stop_gate);
	free(t);
}

/* Its creator still holds it: a source outlives it while a forked child
 * (another pid) holds the buffer, and the mailbox's commands are taken
 * only by the creator (mailbox.c), so they would wait there for no one. */
static bool creator_holds(const trace_source_t *s)
{
	for (uint32_t i = 0; i < s->n_holders; i++)
		if (s->holders[i]->pid == s->pid)
			return true;
	return false;
}

/* The buffer of live process PID (connected, or thothd itself), for the
 * probe mailbox (probe.c); NULL when none. */
thoth_trace_reader_t *thothd_tracer_reader(thothd_tracer_t *t, uint32_t pid)
{
	thoth_trace_reader_t *r = NULL;
	tracer_lock(t);
	for (trace_source_t *s = t->sources; s && !r; s = s->next)
		if (s->pid == pid && (s->own || creator_holds(s)))
			r = s->reader;
	tracer_unlock(t);
	return r;       /* valid until the loop thread itself drops the source */
}

bool thothd_tracer_holds(const thothd_tracer_t *ct, const thothd_client_t *c)
{
	if (!ct)
		return false;
	thothd_tracer_t *t = (thothd_tracer_t *)ct;     /* the mutex, not the state */
	bool holds = false;
	tracer_lock(t);
	if (t->active && t->session_owner == c)
		holds = true;
	for (const trace_source_t *s = t->sources; s && !holds; s = s->next)
		if (held_by(s, c))
			holds = true;
	tracer_unlock(t);
	return holds;
}

static void detached_session_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

void thothd_tracer_client_closed(thothd_tracer_t *t, const thothd_client_t *c)
{
	if (!t)
		return;
	tracer_lock(t);
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (!held_by(s, c))
			continue;
		holder_remove(s, c);
		/* Its process's last connection holding S: the reader frees its
		 * peer slot once it exited and its records are read (a 16th
		 * forked child gets one then; before, never). */
		bool more = false;
		for (uint32_t i = 0; i < s->n_holders && !more; i++)
			more = s->holders[i]->pid == c->pid;
		if (!more && c->pid)
			thoth__trace_reader_remove_peer(s->reader, c->pid);
	}
	if (t->active && t->session_owner == c) {
		/* Nobody will stop it: bound it in time (its events are bounded
		 * by MAX_EVENTS already). */
		t->session_owner = NULL;
		t->detached_end_ns = thothd_now(t->d) + t->d->cfg.trace_detach_ns;
		thothd_info("trace session %llu: the connection that started it closed; it ends "
			    "in %llu ms unless stopped", (unsigned long long)t->session_id,
			    (unsigned long long)(t->d->cfg.trace_detach_ns / MS_NS));
		if (t->d->loop && !t->detach_timer &&
		    thoth_loop_add_timer(t->d->loop, t->detached_end_ns, t->d->cfg.trace_detach_ns / 10,
					 detached_session_fired, t, &t->detach_timer)) {
			t->detach_timer = NULL;
			thothd_error("trace: cannot arm the detached-session timer");
		}
	}
	prune_sources(t);
	tracer_unlock(t);
}

/* ---- draining ---------------------------------------------------------------- */

/* One source of the session into the collection (mu held). */
static void source_poll_routed(thothd_tracer_t *t, trace_source_t *s);

static void drain_source(thothd_tracer_t *t, trace_source_t *s)
{
	if (s->mixed) {
		/* The observer's categories were on too (or still wait in the
		 * rings after it left): sorted record by record, the cut kept. */
		source_poll_routed(t, s);
	} else if (thoth_trace_collection_count(t->collection) < MAX_EVENTS) {
		int r = thoth_trace_collection_add(t->collection, s->reader);
		if (r)
			thothd_warn("trace: draining pid %u: %s", s->pid, thoth_strerror(r));
	} else {
		thoth_trace_reader_poll(s->reader, count_event, &t->discarded);
	}
}

static void drain_sources(thothd_tracer_t *t);

/* The extra source, when the session records its categories (mu held;
 * either thread). */
static void poll_extra_source(thothd_tracer_t *t)
{
	if (t->active && t->source_fn && (t->categories & t->source_mask))
		t->source_lost = thoth__trace_sat_add(t->source_lost,
						      t->source_fn(t, t->session_start_ns, t->source_ctx));
}

/* Every source into the collection, then the extra source (mu held). */
static void drain(thothd_tracer_t *t)
{
	drain_sources(t);
	poll_extra_source(t);
}

static void drain_sources(thothd_tracer_t *t)
{
	if (t->live_fn) {
		for (trace_source_t *s = t->sources; s; s = s->next)
			source_poll_routed(t, s);
		return;
	}
	for (trace_source_t *s = t->sources; s; s = s->next)
		if (s->in_session)
			drain_source(t, s);
}

/* Does the loop thread's timer drain (rather than the collector thread)? */
static bool loop_drains(const thothd_tracer_t *t)
{
	return t->d->loop && (t->on_loop || t->live_fn);
}

static void drain_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_tracer_t *t = arg;
	if (t->live_fn) {
		/* The observer is on (live_fn: written on this thread only): the
		 * dashboard's policy, which routes the session's events too --
		 * here while few records wait, else on the task thread. */
		thothd_tracer_live_drain(t);
		tracer_lock(t);
		if (t->active)
			t->passes++;
	} else {
		tracer_lock(t);
		uint64_t cpu0 = thothd_thread_cpu_ns();
		drain(t);
		if (t->active) {
			t->passes++;
			t->pass_cpu_ns += thothd_thread_cpu_ns() - cpu0;
		}
	}
	/* Re-armed from its own callback while the session lasts and the loop
	 * thread is the one that drains: never periodic when there is nothing
	 * to collect.  A fired timer that is not re-armed is freed by the
	 * loop: forget it then. */
	bool again = t->active && loop_drains(t);
	if (again &&
	    thoth_timer_rearm(loop, timer, thoth_loop_now(loop) + t->drain_period_ns, t->drain_slack_ns) == 0) {
		tracer_unlock(t);
		return;
	}
	if (again)
		thothd_error("trace: cannot re-arm the drain timer; events may be overwritten");
	t->drain_timer = NULL;
	tracer_unlock(t);
}

/* Arm the loop thread's drain timer if it is the one that drains and it is
 * not armed (mu held, loop thread). */
static int arm_loop_drain(thothd_tracer_t *t)
{
	thothd_t *d = t->d;
	if (!loop_drains(t))
		return 0;
	uint64_t at = thoth_loop_now(d->loop) + t->drain_period_ns;
	return t->drain_timer ? thoth_timer_rearm(d->loop, t->drain_timer, at, t->drain_slack_ns)
			      : thoth_loop_add_timer(d->loop, at, t->drain_slack_ns, drain_fired, t,
						     &t->drain_timer);
}

/* ---- the collector thread ------------------------------------------------------- */

/* One pass over the session's sources (mu held).  The mutex is handed to
 * the loop thread between two sources when it waits for it: pruning moves
 * the cursor on if it drops the source the cursor points at, and sources
 * added meanwhile (at the head) wait for the next pass. */
static void collect_pass(thothd_tracer_t *t)
{
	uint64_t cpu0 = thothd_thread_cpu_ns();
	for (trace_source_t *s = t->sources; s; s = t->cursor) {
		t->cursor = s->next;
		if (s->in_session)
			drain_source(t, s);
		if (atomic_load_explicit(&t->loop_wants, memory_order_relaxed)) {
			pthread_mutex_unlock(&t->mu);
			/* Until the loop thread holds it (it counts itself out
			 * once it does); then wait in the lock like anyone. */
			while (atomic_load_explicit(&t->loop_wants, memory_order_relaxed))
				sched_yield();
			pthread_mutex_lock(&t->mu);
			if (!t->active || t->collector_quit || t->live_fn)
				break;
		}
	}
	t->cursor = NULL;
	if (!t->collector_quit && !t->live_fn)
		poll_extra_source(t);
	t->passes++;
	t->pass_cpu_ns += thothd_thread_cpu_ns() - cpu0;
}

static void timespec_add_ns(struct timespec *ts, uint64_t ns)
{
	uint64_t n = (uint64_t)ts->tv_nsec + ns;
	ts->tv_sec += (time_t)(n / 1000000000ull);
	ts->tv_nsec = (long)(n % 1000000000ull);
}

static void *collector_main(void *arg)
{
	thothd_tracer_t *t = arg;
	pthread_setname_np(pthread_self(), "thothd-trace");
	pthread_mutex_lock(&t->mu);
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (t->active && !t->collector_quit) {
		timespec_add_ns(&next, t->drain_period_ns);
		while (t->active && !t->collector_quit &&
		       pthread_cond_timedwait(&t->wake, &t->mu, &next) != ETIMEDOUT)
			;
		if (!t->active || t->collector_quit)
			break;
		/* With the live observer set, the loop thread drains (its
		 * callbacks are the loop thread's). */
		if (!t->live_fn)
			collect_pass(t);
		/* A pass longer than the period: the next one a period after
		 * it, not a burst of passes to catch up. */
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next.tv_sec || (now.tv_sec == next.tv_sec && now.tv_nsec > next.tv_nsec))
			next = now;
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Start the collector for the session that starts (mu held, loop thread).
 * Signals stay with the loop thread: the collector blocks them all. */
static int collector_start(thothd_tracer_t *t)
{
	if (t->on_loop || !t->d->loop || t->collector_running)
		return 0;
	t->collector_quit = false;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&t->collector, NULL, collector_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		thothd_error("trace: cannot start the collector thread: %s", strerror(e));
		return THOTH_E_NOMEM;
	}
	t->collector_running = true;
	return 0;
}

/* Stop and join the collector (mu NOT held, loop thread).  It finishes at
 * most the source it is draining. */
static void collector_stop(thothd_tracer_t *t)
{
	if (!t->collector_running)
		return;
	tracer_lock(t);
	t->collector_quit = true;
	pthread_cond_signal(&t->wake);
	tracer_unlock(t);
	pthread_join(t->collector, NULL);
	t->collector_running = false;
}

/* ---- collections read by deferred jobs ------------------------------------------- */

/* A write/dump job reads the collection on a worker thread, without the
 * mutex once the session that fills it has ended: nothing changes it then
 * but its replacement by the next session_start, which leaves it to the
 * last job reading it (loop thread, mu held). */
static thoth_trace_collection_t *coll_hold(thothd_tracer_t *t)
{
	t->coll_readers++;
	return t->collection;
}

static void coll_retire(thothd_tracer_t *t)
{
	struct retired_coll *r = t->coll_readers ? malloc(sizeof *r) : NULL;
	if (t->coll_readers && r) {
		*r = (struct retired_coll){ .c = t->collection, .readers = t->coll_readers,
					    .next = t->retired };
		t->retired = r;
	} else if (t->coll_readers) {
		/* No memory to keep it aside: leaked rather than freed under
		 * a reader (counted in the log). */
		thothd_error("trace: out of memory; a collection being written is leaked");
	} else {
		thoth_trace_collection_free(t->collection);
	}
	t->collection = NULL;
	t->coll_readers = 0;
}

static void coll_drop(thothd_tracer_t *t, thoth_trace_collection_t *c)
{
	if (c == t->collection && t->coll_readers) {
		t->coll_readers--;
		return;
	}
	for (struct retired_coll **pp = &t->retired; *pp; pp = &(*pp)->next) {
		struct retired_coll *r = *pp;
		if (r->c != c)
			continue;
		if (--r->readers == 0) {
			*pp = r->next;
			thoth_trace_collection_free(r->c);
			free(r);
		}
		return;
	}
}

/* ---- TraceControl ------------------------------------------------------------- */

static void session_end(thothd_tracer_t *t, uint64_t *events, uint64_t *dropped, bool drained);

static int session_start(thothd_call_t *call, uint64_t categories, uint32_t pid, uint64_t *id)
{
	thothd_t *d = call->d;
	thothd_tracer_t *t = d->tracer;
	if (t->active) {
		call->reason = "a trace session is already running (stop it first)";
		return THOTH_TRACE_ERR_ALREADY_RUNNING;
	}
	thoth_trace_collection_t *c;
	int r = thoth_trace_collection_new(&c);
	if (r)
		return r;
	if ((r = arm_loop_drain(t))) {
		thoth_trace_collection_free(c);
		return r;
	}
	prune_sources(t);
	coll_retire(t);
	t->collection = c;
	t->discarded = 0;
	t->active = true;
	t->session_id = t->next_session_id++;
	t->categories = categories ? categories : THOTH_TRACE_ALL_CATEGORIES;
	t->pid_filter = pid;
	t->session_start_ns = thothd_now(d);
	t->source_lost = 0;
	t->session_owner = call->client;
	t->detached_end_ns = 0;
	t->ended_why[0] = 0;
	t->passes = t->pass_cpu_ns = 0;
	uint32_t joined = 0;
	for (trace_source_t *s = t->sources; s; s = s->next) {
		s->in_session = false;
		source_join_session(t, s);
		joined += s->in_session;
	}
	*id = t->session_id;
	/* The collector needs the session in place: it runs while it is active. */
	if ((r = collector_start(t))) {
		uint64_t events, dropped;
		call->reason = "cannot start the trace collector thread";
		session_end(t, &events, &dropped, false);
		return r;
	}
	thothd_info("trace session %llu started: categories %#llx, %s%.0u, %u process%s",
		    (unsigned long long)t->session_id, (unsigned long long)t->categories,
		    pid ? "pid " : "every process", pid, joined, joined == 1 ? "" : "es");
	return 0;
}

static int session_start_locked(thothd_call_t *call, uint64_t categories, uint32_t pid, uint64_t *id)
{
	thothd_tracer_t *t = call->d->tracer;
	tracer_lock(t);
	int r = session_start(call, categories, pid, id);
	tracer_unlock(t);
	if (r)
		collector_stop(t);      /* if it started before the failure */
	return r;
}

static int on_start(void *self, const thoth_trace_TraceControl_start_req_t *req,
		    thoth_trace_TraceControl_start_resp_t *resp, thoth_arena_t *arena)
{
	return session_start_locked(self, req->categories, 0, &resp->session_id);
}

static int on_start_pid(void *self, const thoth_trace_TraceControl_start_pid_req_t *req,
			thoth_trace_TraceControl_start_pid_resp_t *resp, thoth_arena_t *arena)
{
	return session_start_locked(self, req->categories, req->pid, &resp->session_id);
}

/* End the active session: switch every source off, drain a last time
 * (DRAINED: a drain beside the live observer has read everything before
 * the stop's cut: nothing to read here), keep the collection for
 * dump/write.  EVENTS and DROPPED: its totals. */
static void session_end(thothd_tracer_t *t, uint64_t *events, uint64_t *dropped, bool drained)
{
	thothd_t *d = t->d;
	for (trace_source_t *s = t->sources; s; s = s->next)
		if (s->in_session)
			thoth_trace_reader_set_enabled(s->reader, t->live_fn ? t->live_mask : 0);
	/* Writers that saw the mask just before it changed finish their record
	 * within nanoseconds; this drain takes what is committed, and a record
	 * still in progress is neither read nor lost (it stays in its ring). */
	if (!drained)
		drain(t);
	t->active = false;
	pthread_cond_signal(&t->wake);  /* the collector ends; its starter joins it */
	t->session_owner = NULL;
	t->detached_end_ns = 0;
	if (t->drain_timer) {
		thoth_timer_cancel(d->loop, t->drain_timer);
		t->drain_timer = NULL;
	}
	if (t->detach_timer) {
		thoth_timer_cancel(d->loop, t->detach_timer);
		t->detach_timer = NULL;
	}
	thoth_trace_stats_t sum = { 0 };
	uint32_t processes = 0;
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (!s->in_session)
			continue;
		thoth_trace_stats_t st;
		thoth_trace_reader_stats(s->reader, &st);
		/* Refusals up to the stop's cut where it took one (the observer
		 * keeps its categories on: later ones are its own), else now:
		 * never a poll's older figure.  The writer owns the counters:
		 * one that lowers them loses only its own count. */
		uint64_t end_dropped = s->stop_dropped, end_no_ring = s->stop_no_ring;
		if (!s->stop_cut)
			thoth__trace_reader_refused(s->reader, &end_dropped, &end_no_ring);
		/* Saturated: a hostile writer's absurd count stays absurd, never
		 * takes from the other processes' counts. */
		sum.read += st.read - s->base.read;
		sum.dropped = thoth__trace_sat_add(sum.dropped, end_dropped > s->base.dropped ?
						   end_dropped - s->base.dropped : 0);
		sum.overwritten = thoth__trace_sat_add(sum.overwritten, s->session_overwritten);
		sum.torn = thoth__trace_sat_add(sum.torn, s->session_torn);
		sum.invalid = thoth__trace_sat_add(sum.invalid, s->session_invalid);
		sum.no_ring = thoth__trace_sat_add(sum.no_ring, end_no_ring > s->base.no_ring ?
						   end_no_ring - s->base.no_ring : 0);
		s->in_session = false;
		processes++;
	}
	for (trace_source_t *s = t->sources; s; s = s->next) {
		cut_drop(&s->session_cut);
		cut_drop(&s->stop_cut);
		s->stop_dropped = s->stop_no_ring = 0;
		s->mixed = false;
	}
	*events = thoth_trace_collection_count(t->collection);
	uint64_t lost = 0;
	const uint64_t parts[] = { sum.dropped, sum.overwritten, sum.torn, sum.invalid, sum.no_ring,
				   t->discarded, t->source_lost };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		lost = thoth__trace_sat_add(lost, parts[i]);
	*dropped = lost;
	t->last_events = *events;
	t->last_dropped = *dropped;
	t->stopping = false;
	thothd_info("trace session %llu stopped: %llu events from %u process%s; lost: %llu dropped, "
		    "%llu overwritten, %llu torn, %llu invalid, %llu without a ring, %llu over the "
		    "collector's limit of %u events, %llu lock waits overwritten in profiled "
		    "programs' rings",
		    (unsigned long long)t->session_id, (unsigned long long)*events, processes,
		    processes == 1 ? "" : "es", (unsigned long long)sum.dropped,
		    (unsigned long long)sum.overwritten, (unsigned long long)sum.torn,
		    (unsigned long long)sum.invalid, (unsigned long long)sum.no_ring,
		    (unsigned long long)t->discarded, (unsigned)MAX_EVENTS,
		    (unsigned long long)t->source_lost);
	thothd_info("trace session %llu: %llu collection passes on the %s thread, %.1f us CPU each",
		    (unsigned long long)t->session_id, (unsigned long long)t->passes,
		    loop_drains(t) || !t->collector_running ? "loop" : "collector",
		    t->passes ? (double)t->pass_cpu_ns / (double)t->passes / 1e3 : 0.0);
	prune_sources(t);
}

/*
 * stop: the sources are switched off at once (loop thread), the last drain
 * runs off the loop thread (deferred answer, defer.c), and the session ends
 * back on the loop thread when it is done.  Meanwhile the session is
 * `stopping`: a second stop is refused, a dump or write of it collects
 * what is there.  With no observer the drain is a worker's WORK, and
 * session_end drains once more (short: the sources are off).  Beside the
 * live observer the sources stay on for its categories, so that second
 * drain would read the observer's records on the loop thread: instead the
 * stop marks a cut in each of the session's rings (what comes after is not
 * the session's), and the drain is the answer's PREP on the task thread,
 * in chunks like the observer's own, reading every ring exactly up to the cut first;
 * session_end reads nothing then.  A session whose owner went away ends
 * the same way, by a task (detached_session_fired).
 */
typedef struct stop_job {
	thothd_tracer_t *t;
	uint64_t session_id;
	bool drained;                   /* stop_drain read everything up to the cut */
	bool detached;                  /* the end of a session whose owner went away */
} stop_job_t;

/* Switch the session's sources off for its categories and, beside the
 * observer, cut them (mu held, loop thread). */
static void stop_switch_off(thothd_tracer_t *t)
{
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (!s->in_session)
			continue;
		thoth_trace_reader_set_enabled(s->reader, t->live_fn ? t->live_mask : 0);
		/* Torn heads found before the cut are the session's (found
		 * later, after it: not).  Without memory for a cut the session
		 * may get records written after the stop, until it ends: as
		 * before cuts.  The start does it the other way round (cut,
		 * then find_torn, then the base counts: source_join_session):
		 * there what find_torn finds goes into the base, so it looks
		 * after the cut; here what it finds before the cut is the
		 * session's.  Either way a head torn between the two steps is
		 * not the session's (here: found later, its sequence is the
		 * cut's), and none is counted twice. */
		if (t->live_fn)
			thoth__trace_reader_find_torn(s->reader);
		if (t->live_fn && !cut_now(s, &s->stop_cut))
			cut_drop(&s->stop_cut);
		if (s->stop_cut)
			thoth__trace_reader_refused(s->reader, &s->stop_dropped, &s->stop_no_ring);
	}
}

/* THOTHD_TEST_STOP_GATE: the loop thread waits, the stop's cut taken and
 * its drain not started, until a byte is written to the FIFO (a test's
 * writer refuses records meanwhile: deterministically after the cut and
 * before the drain that reads to it, where a racing writer would need
 * luck).  Tests only; nothing else runs on the loop thread meanwhile. */
static void stop_gate(thothd_tracer_t *t)
{
	if (!t->stop_gate || !t->live_fn)
		return;
	thothd_info("trace: the stop's cut is taken; waiting at %s", t->stop_gate);
	int fd = open(t->stop_gate, O_RDONLY | O_CLOEXEC);
	char byte;
	if (fd < 0 || read(fd, &byte, 1) != 1)
		thothd_warn("trace: stop gate %s: %s", t->stop_gate, fd < 0 ? strerror(errno) : "no byte");
	if (fd >= 0)
		close(fd);
}

/* A refused stop: the session goes on, switched back on, uncut. */
static void stop_switch_on(thothd_tracer_t *t)
{
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (!s->in_session)
			continue;
		thoth_trace_reader_set_enabled(s->reader, source_mask(t, s));
		cut_drop(&s->stop_cut);
		s->stop_dropped = s->stop_no_ring = 0;
	}
}

/* The session's drain beside the live observer (mu held): every source in
 * chunks for the observer, which routes the session's share, stepping
 * aside for the loop thread; then, if the observer left meanwhile, the
 * session's sources as without it, and the extra source.  WHAT names it
 * in the log (bench_scale section 11 reads it). */
static void drain_beside_observer(thothd_tracer_t *t, const char *what, bool to_stop_cut)
{
	uint64_t cpu0 = thothd_thread_cpu_ns(), wall0 = thoth_clock_now();
	live_job_t lj = { .t = t };
	if (t->live_fn)
		live_drain_all(t, &lj, to_stop_cut);
	if (!t->live_fn)
		drain_sources(t);
	poll_extra_source(t);
	thothd_debug("trace: %s drained %llu records beside the dashboard in %.1f ms (%.1f ms CPU) on "
		     "the %s thread", what, (unsigned long long)lj.events,
		     (thoth_clock_now() - wall0) / 1e6, (thothd_thread_cpu_ns() - cpu0) / 1e6,
		     gettid() == getpid() ? "loop" : "task");       /* the main thread is the loop's */
}

/* A stop's last drain beside the observer (PREP, the task thread), or a
 * detached session's (a task's WORK, either way). */
static void stop_drain(void *arg)
{
	stop_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	if (job->detached && t->detach_hold_ms)
		usleep(t->detach_hold_ms * 1000u);
	pthread_mutex_lock(&t->mu);
	if (t->active && t->session_id == job->session_id) {
		if (t->live_fn) {
			drain_beside_observer(t, "a stop", true);
			job->drained = true;
		} else {
			drain(t);       /* session_end drains once more: the sources are off */
		}
	}
	pthread_mutex_unlock(&t->mu);
}

static void stop_work(void *arg)
{
	stop_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	pthread_mutex_lock(&t->mu);
	/* With the live observer set now (it came meanwhile), session_end
	 * drains on the loop thread (as before the observer's drains moved). */
	if (t->active && t->session_id == job->session_id && !t->live_fn)
		drain(t);
	pthread_mutex_unlock(&t->mu);
}

static int stop_done(void *arg, bool ran, void *resp_v, thoth_arena_t *arena, const char **reason)
{
	(void)ran;
	(void)arena;
	(void)reason;
	stop_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	thoth_trace_TraceControl_stop_resp_t *resp = resp_v;
	uint64_t events, dropped;
	tracer_lock(t);
	if (t->active && t->session_id == job->session_id) {
		/* Read up to the stop's cut already (drained), or a short drain:
		 * the sources are off. */
		session_end(t, &events, &dropped, job->drained);
	} else {
		events = t->last_events;        /* it ended meanwhile (detached timer) */
		dropped = t->last_dropped;
	}
	tracer_unlock(t);
	collector_stop(t);
	if (resp) {
		resp->events = events;
		resp->dropped = dropped;
	}
	return 0;
}

static void job_free(void *arg);

/* A detached session's end: a task, answering nobody. */
static const thothd_job_ops_t detach_ops = {
	.method = NULL,
	.work = stop_drain,
	.done = stop_done,
	.release = job_free,
};

static void detached_session_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_tracer_t *t = arg;
	tracer_lock(t);
	t->detach_timer = NULL;         /* fired, not re-armed: freed by the loop */
	if (!t->active || !t->detached_end_ns) {
		tracer_unlock(t);
		return;
	}
	uint64_t events, dropped;
	snprintf(t->ended_why, sizeof t->ended_why,
		 "session %llu ended %llu ms after the connection that started it closed",
		 (unsigned long long)t->session_id,
		 (unsigned long long)(t->d->cfg.trace_detach_ns / MS_NS));
	thothd_info("trace %s", t->ended_why);
	if (!t->stopping && !t->d->defer_off) {
		/* Its last drain on the task thread, the end back here. */
		stop_job_t *job = malloc(sizeof *job);
		if (job) {
			*job = (stop_job_t){ .t = t, .session_id = t->session_id, .detached = true };
			stop_switch_off(t);
			if (thothd_defer_task(t->d, &detach_ops, job) == 0) {
				t->stopping = true;
				tracer_unlock(t);
				return;
			}
			free(job);      /* ended here, as before (the sources stay off) */
		}
	}
	session_end(t, &events, &dropped, false);
	tracer_unlock(t);
	collector_stop(t);
}

static void job_free(void *arg)
{
	free(arg);
}

static const thothd_job_ops_t stop_ops = {
	.method = &thoth_trace_TraceControl_stop_info,
	.work = stop_work,
	.done = stop_done,
	.release = job_free,
};

/* Beside the live observer: the last drain on the task thread, no WORK. */
static const thothd_job_ops_t stop_live_ops = {
	.method = &thoth_trace_TraceControl_stop_info,
	.prep = stop_drain,
	.done = stop_done,
	.release = job_free,
};

static int on_stop(void *self, const thoth_trace_TraceControl_stop_req_t *req,
		   thoth_trace_TraceControl_stop_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_tracer_t *t = call->d->tracer;
	tracer_lock(t);
	if (!t->active || (req->session_id && req->session_id != t->session_id)) {
		call->reason = t->ended_why[0] && !t->active
				       ? t->ended_why : "no trace session is running";
		tracer_unlock(t);
		return THOTH_TRACE_ERR_NOT_RUNNING;
	}
	if (t->stopping) {
		/* A session ending because its owner went away says so from the
		 * moment it is logged, not only once its last drain is done. */
		call->reason = t->ended_why[0] ? t->ended_why
					       : "the session is being stopped (another stop is draining it)";
		tracer_unlock(t);
		return THOTH_TRACE_ERR_NOT_RUNNING;
	}
	stop_job_t *job = malloc(sizeof *job);
	if (!job) {
		tracer_unlock(t);
		return THOTH_E_NOMEM;
	}
	*job = (stop_job_t){ .t = t, .session_id = t->session_id };
	/* Writers see the mask off at their next trace point: what the last
	 * drain reads is then all there is (beside the observer: up to the cut). */
	stop_switch_off(t);
	const thothd_job_ops_t *ops = t->live_fn ? &stop_live_ops : &stop_ops;
	t->stopping = true;
	tracer_unlock(t);
	stop_gate(t);
	int r = thothd_defer_or_run(call, ops, job, resp, arena);
	if (r < 0) {
		tracer_lock(t);
		t->stopping = false;    /* refused: the session goes on */
		stop_switch_on(t);
		/* and takes the buffers attached while it was stopping */
		for (trace_source_t *s = t->sources; s; s = s->next)
			if (!s->in_session)
				source_join_session(t, s);
		tracer_unlock(t);
	}
	return r;
}

/* TraceControl error for errno ERR of an output, with "PATH: strerror" in WHY. */
static int output_status(const char *path, int err, char *why, size_t why_len)
{
	snprintf(why, why_len, "%s: %s", path, strerror(err));
	thothd_warn("trace: cannot write %s: %s", path, strerror(err));
	if (err == ENOSPC || err == EDQUOT)
		return THOTH_TRACE_ERR_NO_SPACE;
	if (err == EACCES || err == EPERM || err == EROFS)
		return THOTH_TRACE_ERR_NO_PERMISSION;
	return THOTH_TRACE_ERR_OUTPUT_FAILED;
}

/* errno of a failed output to the TraceControl error, with the reason
 * (path and strerror) in the call's scratch so the response carries it. */
static int output_error(thothd_call_t *call, const char *path, int err)
{
	char *msg = malloc(256);
	char local[256];
	int r = output_status(path, err, msg ? msg : local, 256);
	if (msg) {
		free(call->scratch);
		call->scratch = msg;
		call->reason = msg;
	}
	return r;
}

/*
 * The JSON trace is written whole or not at all: into a new file beside
 * PATH, renamed over it once complete.  fopen(PATH, "w") truncated an
 * earlier dump first, so a full disk lost it and left a cut one (or an
 * empty file) that `thothctl sched --from` then refused.  A PATH that
 * exists and is not a regular file (a FIFO, /dev/stdout, a symlink the
 * user chose) is written in place, as before: renaming over it would
 * replace it.
 *
 * The new file takes the old one's mode (and owner, when thothd is root):
 * `thothctl sched` dumps into a mkstemp 0600 file in /tmp, which the rename
 * of a 0666&~umask temporary made world-readable.  The temporary is created
 * 0600 so it is never more open than the old file while being written.  A
 * directory thothd cannot create in (an existing writable file in it: the
 * dump worked there before the rename), or a name too long for the
 * temporary's suffix, falls back to writing in place.
 */
static bool cannot_create_beside(int err)
{
	return err == EACCES || err == EPERM || err == EROFS || err == ENAMETOOLONG;
}

static int write_json(const thoth_trace_collection_t *c, const char *path, char *why, size_t why_len)
{
	static atomic_uint seq;
	struct stat st;
	bool existed = lstat(path, &st) == 0;
	bool in_place = existed && !S_ISREG(st.st_mode);
	char tmp[4200];
	if (!in_place && snprintf(tmp, sizeof tmp, "%s.tmp-%d-%u", path, (int)getpid(),
				  atomic_fetch_add(&seq, 1)) >= (int)sizeof tmp)
		in_place = true;
	int fd = -1;
	if (!in_place) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, existed ? 0600 : 0666);
		if (fd < 0 && cannot_create_beside(errno))
			in_place = true;
		else if (fd >= 0 && existed &&
			 ((geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0) ||
			  fchmod(fd, st.st_mode & 07777) != 0)) {
			/* a file system that keeps no owners or modes (NFS
			 * root_squash, vfat): the old file, written in place,
			 * keeps its own */
			int err = errno;
			close(fd);
			fd = -1;
			unlink(tmp);
			if (err != EPERM && err != ENOTSUP && err != EINVAL)
				return output_status(path, err, why, why_len);
			in_place = true;
		}
	}
	if (in_place)
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | (existed ? 0 : O_CREAT), 0666);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		if (!in_place && fd >= 0)
			unlink(tmp);
		return output_status(path, err, why, why_len);
	}
	errno = 0;
	int r = thoth_trace_export_chrome_json(c, f);
	int err = errno;
	if (fflush(f) != 0 && !err)
		err = errno;
	/* on disk before the rename: a crash must not leave an empty PATH */
	if (!r && !err && !in_place && fsync(fileno(f)) != 0)
		err = errno;
	if (fclose(f) != 0 && !err)
		err = errno;
	if (!r && !err && !in_place && rename(tmp, path) != 0)
		err = errno;
	if (r || err) {
		if (!in_place)
			unlink(tmp);
		return output_status(path, err ? err : EIO, why, why_len);
	}
	return 0;
}

/* The CTF trace is whole or not at all too: written into a temporary
 * directory inside DIR and renamed into it once complete
 * (thoth_trace_export_ctf), so a full disk or a kill mid-write leaves an
 * earlier trace in DIR as it was.  The reason names the file that failed. */
static int write_ctf(const thoth_trace_collection_t *c, const char *dir, char *why, size_t why_len)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return output_status(dir, errno, why, why_len);
	int r = thoth_trace_export_ctf(c, dir);
	if (!r)
		return 0;
	const thoth_error_info_t *e = thoth_last_error();
	if (r != THOTH_E_IO || e->code != THOTH_E_IO || !e->sys_errno)
		return output_status(dir, r == THOTH_E_NOMEM ? ENOMEM : EIO, why, why_len);
	/* "write DIR/stream_1_2": the call and its file */
	int st = output_status(dir, e->sys_errno, why, why_len);
	snprintf(why, why_len, "%s: %s", e->what, strerror(e->sys_errno));
	return st;
}

/* A request string as a C string: decoded strings are NUL-terminated in the
 * message (thoth/wire.h); a field an older client's schema lacks is left
 * zeroed (ptr NULL) and reads as "". */
static const char *c_str(thoth_str_t s)
{
	return s.ptr ? s.ptr : "";
}

/*
 * write and dump: the export (seconds at 500k events) runs on a worker
 * (deferred answer).  A collection whose session has ended is read as it
 * is (nothing changes it; coll_hold keeps it from being freed); an active
 * session's is drained and copied under the mutex by the worker, and the
 * copy written.
 */
typedef struct write_job {
	thothd_tracer_t *t;
	thoth_trace_collection_t *coll; /* held (coll_hold) */
	bool dump;
	char *json, *ctf;               /* "" : not asked for */
	int status;
	uint64_t events;
	uint64_t wall_ns, cpu_ns;       /* the export's, on whichever thread ran it */
	char why[300];
} write_job_t;

static void write_work(void *arg)
{
	write_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	thoth_trace_collection_t *copy = NULL;
	uint64_t cpu0 = thothd_thread_cpu_ns(), wall0 = thoth_clock_now();
	pthread_mutex_lock(&t->mu);
	if (t->active && t->collection == job->coll) {
		if (!t->live_fn)
			drain(t);       /* beside the observer: write_prep drained */
		if (thoth__trace_collection_clone(job->coll, &copy))
			copy = NULL;
		if (!copy) {
			job->status = THOTH_E_NOMEM;
			snprintf(job->why, sizeof job->why, "out of memory copying the active "
				 "session's %zu events", thoth_trace_collection_count(job->coll));
		}
	}
	pthread_mutex_unlock(&t->mu);
	if (job->status)
		return;
	const thoth_trace_collection_t *c = copy ? copy : job->coll;
	if (job->json[0])
		job->status = write_json(c, job->json, job->why, sizeof job->why);
	if (!job->status && job->ctf[0])
		job->status = write_ctf(c, job->ctf, job->why, sizeof job->why);
	job->events = thoth_trace_collection_count(c);
	thoth_trace_collection_free(copy);
	job->cpu_ns = thothd_thread_cpu_ns() - cpu0;
	job->wall_ns = thoth_clock_now() - wall0;
}

static int write_done(void *arg, bool ran, void *resp_v, thoth_arena_t *arena, const char **reason)
{
	write_job_t *job = arg;
	if (!ran) {
		*reason = "thothd is stopping: the trace was not written";
		return THOTH_TRACE_ERR_OUTPUT_FAILED;
	}
	if (job->status) {
		*reason = job->why;
		return job->status;
	}
	thothd_info("trace: wrote %llu events%s%s%s%s in %.1f ms (%.1f ms CPU)",
		    (unsigned long long)job->events, job->json[0] ? " to " : "", job->json,
		    job->ctf[0] ? " and CTF into " : "", job->ctf, job->wall_ns / 1e6, job->cpu_ns / 1e6);
	if (!resp_v)
		return 0;
	if (job->dump) {
		thoth_trace_TraceControl_dump_resp_t *resp = resp_v;
		char *json = thoth_arena_alloc(arena, strlen(job->json) + 1);
		char *ctf = thoth_arena_alloc(arena, strlen(job->ctf) + 1);
		if (!json || !ctf)
			return THOTH_E_NOMEM;
		resp->chrome_json = thoth_str(strcpy(json, job->json));
		resp->ctf_dir = thoth_str(strcpy(ctf, job->ctf));
	} else {
		thoth_trace_TraceControl_write_resp_t *resp = resp_v;
		resp->events = job->events;
	}
	return 0;
}

static void write_release(void *arg)
{
	write_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	tracer_lock(t);
	coll_drop(t, job->coll);
	tracer_unlock(t);
	free(job->json);
	free(job->ctf);
	free(job);
}

/* An active session's drain beside the live observer (PREP, the task
 * thread): what the export's copy will hold. */
static void write_prep(void *arg)
{
	write_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	pthread_mutex_lock(&t->mu);
	if (t->active && t->collection == job->coll && t->live_fn)
		drain_beside_observer(t, "a write", false);
	pthread_mutex_unlock(&t->mu);
}

static const thothd_job_ops_t write_live_ops = {
	.method = &thoth_trace_TraceControl_write_info,
	.prep = write_prep,
	.work = write_work,
	.done = write_done,
	.release = write_release,
};

static const thothd_job_ops_t dump_live_ops = {
	.method = &thoth_trace_TraceControl_dump_info,
	.prep = write_prep,
	.work = write_work,
	.done = write_done,
	.release = write_release,
};

static const thothd_job_ops_t write_ops = {
	.method = &thoth_trace_TraceControl_write_info,
	.work = write_work,
	.done = write_done,
	.release = write_release,
};

static const thothd_job_ops_t dump_ops = {
	.method = &thoth_trace_TraceControl_dump_info,
	.work = write_work,
	.done = write_done,
	.release = write_release,
};

/* Checks on the loop thread, then the job (deferred, or inline). */
static int start_write(thothd_call_t *call, bool dump, const char *json, const char *ctf, void *resp,
		       thoth_arena_t *arena)
{
	thothd_tracer_t *t = call->d->tracer;
	tracer_lock(t);
	if (!t->collection) {
		tracer_unlock(t);
		call->reason = "nothing collected: start a trace session first";
		return THOTH_TRACE_ERR_NOT_RUNNING;
	}
	if ((*json && json[0] != '/') || (*ctf && ctf[0] != '/')) {
		tracer_unlock(t);
		call->reason = "output paths must be absolute";
		return THOTH_TRACE_ERR_OUTPUT_FAILED;
	}
	write_job_t *job = calloc(1, sizeof *job);
	char *j = strdup(json), *c = strdup(ctf);
	if (!job || !j || !c) {
		tracer_unlock(t);
		free(job);
		free(j);
		free(c);
		return THOTH_E_NOMEM;
	}
	job->t = t;
	job->dump = dump;
	job->json = j;
	job->ctf = c;
	/* An active session beside the observer: drained first on the task
	 * thread (write_prep), not here. */
	bool beside = t->active && t->live_fn;
	job->coll = coll_hold(t);
	tracer_unlock(t);
	const thothd_job_ops_t *ops = dump ? (beside ? &dump_live_ops : &dump_ops)
					   : (beside ? &write_live_ops : &write_ops);
	return thothd_defer_or_run(call, ops, job, resp, arena);
}

static int on_write(void *self, const thoth_trace_TraceControl_write_req_t *req,
		    thoth_trace_TraceControl_write_resp_t *resp, thoth_arena_t *arena)
{
	return start_write(self, false, c_str(req->json_path), c_str(req->ctf_dir), resp, arena);
}

static int on_dump(void *self, const thoth_trace_TraceControl_dump_req_t *req,
		   thoth_trace_TraceControl_dump_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	const char *dir = c_str(req->dir);
	size_t n = req->dir.len + 16;
	char *json = thoth_arena_alloc(arena, n), *ctf = thoth_arena_alloc(arena, n);
	if (!json || !ctf)
		return THOTH_E_NOMEM;
	snprintf(json, n, "%s/trace.json", dir);
	snprintf(ctf, n, "%s/ctf", dir);
	tracer_lock(call->d->tracer);
	bool have = call->d->tracer->collection != NULL;
	tracer_unlock(call->d->tracer);
	if (dir[0] == '/' && mkdir(dir, 0755) != 0 && errno != EEXIST && have)
		return output_error(call, dir, errno);
	return start_write(call, true, json, ctf, resp, arena);
}

static void on_attach(void *self, const thoth_trace_TraceControl_attach_req_t *req)
{
	thothd_call_t *call = self;
	thothd_client_t *c = call->client;
	int fd = thothd_client_take_fd(c);
	if (fd < 0) {
		thothd_warn("client %llu (pid %u): trace attach without a file descriptor; ignored",
			    (unsigned long long)c->id, c->pid);
		return;
	}
	uint32_t pid = 0;
	char why[256];
	tracer_lock(call->d->tracer);
	int r = attach_fd(call->d->tracer, fd, c, false, &pid, why, sizeof why);
	tracer_unlock(call->d->tracer);
	if (r)
		thothd_warn("client %llu (pid %u): trace buffer refused: %s",
			    (unsigned long long)c->id, c->pid, why);
	else if (pid != c->pid)
		thothd_debug("client %llu (pid %u) attached the trace buffer of pid %u",
			     (unsigned long long)c->id, c->pid, pid);
}

const thoth_trace_TraceControl_handlers_t thothd_trace_handlers = {
	.start = on_start,
	.stop = on_stop,
	.dump = on_dump,
	.attach = on_attach,
	.start_pid = on_start_pid,
	.write = on_write,
};

/* ---- the live observer ---------------------------------------------------------- */

int thothd_tracer_live_start(thothd_tracer_t *t, uint64_t mask, thothd_trace_live_fn fn, void *ctx)
{
	if (!t || !fn)
		return THOTH_E_INVAL;
	tracer_lock(t);
	if (t->live_fn) {
		tracer_unlock(t);
		return THOTH_E_BUSY;
	}
	/* Start from now: what the buffers hold already (a session's
	 * records, or an earlier observer's left behind) is not the
	 * observer's.  A cut in each source says so without reading it here;
	 * the observer's drains read past it, handing a session its share.
	 * Without memory for a cut, or with THOTHD_DEFER=off (the old path),
	 * that source is drained here. */
	for (trace_source_t *s = t->sources; s; s = s->next) {
		if (!t->d->defer_off && cut_now(s, &s->live_cut))
			continue;
		if (s->in_session)
			drain_source(t, s);
		else
			thoth_trace_reader_poll(s->reader, skip_event, NULL);
	}
	t->live_mask = mask;
	t->live_fn = fn;
	t->live_ctx = ctx;
	for (trace_source_t *s = t->sources; s; s = s->next) {
		thoth_trace_reader_set_enabled(s->reader, source_mask(t, s));
		if (s->in_session)
			s->mixed = true;
	}
	/* While the observer is set the loop thread's timer drains the session
	 * too, by the observer's rule (drain_fired). */
	if (t->active && arm_loop_drain(t))
		thothd_error("trace: cannot arm the drain timer; events may be overwritten");
	tracer_unlock(t);
	return 0;
}

void thothd_tracer_live_stop(thothd_tracer_t *t)
{
	if (!t)
		return;
	tracer_lock(t);
	if (t->live_fn) {
		/* Nothing is drained here: what waits was the observer's (nobody
		 * reads its figures now; the next observer starts after its cut)
		 * or the session's, which the session's own drains sort out of
		 * the mixed rings (drain_source) on the collector thread.
		 * THOTHD_DEFER=off drains here (the old path, the baseline). */
		if (t->d->defer_off)
			drain(t);
		t->live_fn = NULL;
		t->live_ctx = NULL;
		t->live_poll = NULL;
		t->live_heavy = NULL;
		for (trace_source_t *s = t->sources; s; s = s->next) {
			thoth_trace_reader_set_enabled(s->reader, source_mask(t, s));
			cut_drop(&s->live_cut);
		}
		t->live_mask = 0;
	}
	tracer_unlock(t);
}

/* The worker's side of the loop thread's lock: when the loop thread waits
 * for mu, let it have it and take mu back after (mu held on entry and on
 * return; anything may have changed meanwhile). */
static void step_aside(thothd_tracer_t *t)
{
	if (!atomic_load_explicit(&t->loop_wants, memory_order_relaxed))
		return;
	pthread_mutex_unlock(&t->mu);
	while (atomic_load_explicit(&t->loop_wants, memory_order_relaxed))
		sched_yield();
	pthread_mutex_lock(&t->mu);
}

static uint64_t records_read(const thothd_tracer_t *t)
{
	uint64_t n = 0;
	for (const trace_source_t *s = t->sources; s; s = s->next) {
		thoth_trace_stats_t st;
		thoth_trace_reader_stats(s->reader, &st);
		n += st.read;
	}
	return n;
}



/* Drain S for the observer in chunks, as far as what waited when it began
 * (a writer faster than the drain does not keep it here), or, given a cut
 * UPTO, exactly what came before it in every ring: a count would not do,
 * since each poll starts again at ring 0 and a busy ring 0 would use it up
 * before a later ring's records before the cut (a stop's session would
 * lose them).  mu held.  False: S was pruned meanwhile or the observer
 * left (S may be gone). */
static bool live_drain_source(thothd_tracer_t *t, trace_source_t *s, live_job_t *job, const uint64_t *upto)
{
	uint32_t rings = 0;
	const char *name = "";
	thoth_trace_reader_process(s->reader, NULL, &name);
	thoth_trace_reader_geometry(s->reader, &rings, NULL);
	uint32_t counts[64] = { 0 };
	uint64_t budget = thoth__trace_reader_unread(s->reader);
	bool gone = !s->client && !s->own;     /* what it left is all there is to read */
	t->live_cur = s;
	for (;;) {
		route_ctx_t rc = { .t = t, .s = s, .process = name, .ring_counts = counts,
				   .n_rings = rings < 64 ? rings : 64, .limit = LIVE_CHUNK };
		int r = upto ? thoth__trace_reader_poll_upto(s->reader, upto, s->n_cut, route_event, &rc)
			     : thoth_trace_reader_poll(s->reader, route_event, &rc);
		job->events += rc.seen;
		job->chunks++;
		if (r != ROUTE_CHUNK_END && r)
			thothd_warn("trace: draining pid %u: %s", s->pid, thoth_strerror(r));
		/* to a cut: until a poll ends short of its chunk (the records
		 * before a cut are finite: at most ring_records a ring) */
		bool more = r == ROUTE_CHUNK_END && (upto || budget > rc.seen);
		budget = budget > rc.seen ? budget - rc.seen : 0;
		if (!more)
			break;
		step_aside(t);
		/* Pruned meanwhile (it drained the rest), or the observer left. */
		if (t->live_cur != s || !t->live_fn)
			return false;
	}
	uint32_t max = 0;
	for (uint32_t i = 0; i < 64; i++)
		max = counts[i] > max ? counts[i] : max;
	s->last_drain_max = max;
	if (gone && !upto)
		s->final_drained = true;        /* the next pruning frees it */
	t->live_cur = NULL;
	return true;
}

/* Every source for the observer, each in chunks (mu held; the task thread,
 * or the loop thread with THOTHD_DEFER=off).  Sources added meanwhile (at
 * the head) wait for the next drain. */
static void live_drain_all(thothd_tracer_t *t, live_job_t *job, bool to_stop_cut)
{
	t->live_next = t->sources;
	while (t->live_fn && t->live_next) {
		trace_source_t *s = t->live_next;
		t->live_next = s->next;
		/* a stop: the session's records first, all of them up to its cut */
		if (!to_stop_cut || !s->in_session || !s->stop_cut ||
		    live_drain_source(t, s, job, s->stop_cut))
			live_drain_source(t, s, job, NULL);
		t->live_cur = NULL;
		step_aside(t);
	}
	t->live_next = NULL;
}

static void live_work(void *arg)
{
	live_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	uint64_t cpu0 = thothd_thread_cpu_ns(), wall0 = thoth_clock_now();
	pthread_mutex_lock(&t->mu);
	live_drain_all(t, job, false);
	if (t->live_fn)
		poll_extra_source(t);
	if (t->live_fn && t->live_poll && !job->no_poll)
		t->live_poll(t, t->live_ctx);   /* steps aside between its own steps */
	pthread_mutex_unlock(&t->mu);
	job->cpu_ns = thothd_thread_cpu_ns() - cpu0;
	job->wall_ns = thoth_clock_now() - wall0;
}

static int live_done(void *arg, bool ran, void *resp, thoth_arena_t *arena, const char **reason)
{
	(void)resp;
	(void)arena;
	(void)reason;
	live_job_t *job = arg;
	thothd_tracer_t *t = job->t;
	t->live_task = false;
	/* Logged before the tick and the requests that waited for it go on:
	 * whoever they wake finds the drain in the log. */
	if (ran) {
		char why[96];
		if (job->no_poll)
			snprintf(why, sizeof why, "a gone process's last records");
		else if (job->backlog)
			snprintf(why, sizeof why, "a backlog of %llu records", (unsigned long long)job->waiting);
		else
			snprintf(why, sizeof why, "the lock rings' poll, %llu records waiting",
				 (unsigned long long)job->waiting);
		thothd_debug("dashboard: drained %llu trace records in %.1f ms (%.1f ms CPU, %llu chunks) "
			     "on a worker thread (%s)", (unsigned long long)job->events, job->wall_ns / 1e6,
			     job->cpu_ns / 1e6, (unsigned long long)job->chunks, why);
	}
	if (t->live_drained)
		t->live_drained(t->live_drained_ctx);
	/* Gone processes it read to the end go now; one it did not (it passed
	 * it before its connection closed) gets another drain. */
	tracer_lock(t);
	prune_sources(t);
	tracer_unlock(t);
	return 0;
}

static const thothd_job_ops_t live_ops = {
	.method = NULL,
	.work = live_work,
	.done = live_done,
	.release = job_free,
};

/* A drain on the task thread for what a gone process left (mu held, loop
 * thread; prune_sources).  True: one is in flight (this, or the tick's,
 * whose end prunes and kicks again if that did not read it all). */
static bool live_kick(thothd_tracer_t *t)
{
	if (t->live_task)
		return true;
	live_job_t *job = calloc(1, sizeof *job);
	if (!job)
		return false;
	*job = (live_job_t){ .t = t, .no_poll = true };
	if (thothd_defer_task(t->d, &live_ops, job) != 0) {
		free(job);
		return false;
	}
	t->live_task = true;
	t->live_deferred++;
	return true;
}

void thothd_tracer_live_drain(thothd_tracer_t *t)
{
	/* One in flight takes these records too; and the loop thread must
	 * not wait for the mutex it holds (live_task: loop thread only). */
	if (!t || t->live_task)
		return;
	tracer_lock(t);
	if (!t->live_fn) {
		tracer_unlock(t);
		return;
	}
	uint64_t waiting = 0;
	for (const trace_source_t *s = t->sources; s; s = s->next)
		waiting += thoth__trace_reader_unread(s->reader);
	bool backlog = waiting > t->live_inline_max;
	bool heavy = t->live_heavy && t->live_heavy(t->live_ctx);
	if (backlog || heavy) {
		live_job_t *job = calloc(1, sizeof *job);
		if (job)
			*job = (live_job_t){ .t = t, .backlog = backlog, .waiting = waiting };
		int r = job ? thothd_defer_task(t->d, &live_ops, job) : THOTH_E_NOMEM;
		if (r == 0) {
			t->live_task = true;
			t->live_deferred++;
			tracer_unlock(t);
			return;
		}
		free(job);
		if (r < 0)
			thothd_warn("dashboard: cannot hand the drain to a worker (%s): draining here",
				    thoth_strerror(r));
		/* r == 1: THOTHD_DEFER=off (the old path) */
		uint64_t read0 = records_read(t), wall0 = thoth_clock_now(), cpu0 = thothd_thread_cpu_ns();
		drain(t);
		t->live_inline_big++;
		thothd_debug("dashboard: drained %llu trace records in %.1f ms (%.1f ms CPU) on the loop "
			     "thread", (unsigned long long)(records_read(t) - read0),
			     (thoth_clock_now() - wall0) / 1e6, (thothd_thread_cpu_ns() - cpu0) / 1e6);
		if (t->live_poll)
			t->live_poll(t, t->live_ctx);   /* logs its own figures */
		prune_sources(t);       /* gone processes read to the end */
		tracer_unlock(t);
		return;
	}
	drain(t);
	if (t->live_poll)
		t->live_poll(t, t->live_ctx);
	prune_sources(t);
	tracer_unlock(t);
}

void thothd_tracer_live_set_poll(thothd_tracer_t *t, thothd_trace_live_poll_fn poll,
				 bool (*heavy)(void *ctx))
{
	if (!t)
		return;
	tracer_lock(t);
	t->live_poll = t->live_fn ? poll : NULL;
	t->live_heavy = t->live_fn ? heavy : NULL;
	tracer_unlock(t);
}

bool thothd_tracer_live_step(thothd_tracer_t *t)
{
	step_aside(t);
	return t->live_fn && t->live_poll;
}

bool thothd_tracer_live_busy(const thothd_tracer_t *t)
{
	return t && t->live_task;
}

void thothd_tracer_live_on_drained(thothd_tracer_t *t, void (*fn)(void *ctx), void *ctx)
{
	if (!t)
		return;
	t->live_drained = fn;
	t->live_drained_ctx = fn ? ctx : NULL;
}

void thothd_tracer_live_lock(thothd_tracer_t *t)
{
	tracer_lock(t);
}

void thothd_tracer_live_unlock(thothd_tracer_t *t)
{
	tracer_unlock(t);
}

void thothd_tracer_foreach_source(const thothd_tracer_t *t, thothd_trace_source_fn fn, void *ctx)
{
	if (!t)
		return;
	thothd_tracer_t *mt = (thothd_tracer_t *)t;     /* the mutex, not the state */
	tracer_lock(mt);
	for (const trace_source_t *s = t->sources; s; s = s->next) {
		thothd_trace_source_info_t info = { .pid = s->pid, .ring_records = s->ring_records,
						    .last_drain_max = s->last_drain_max,
						    .connected = s->client != NULL || s->own };
		thoth_trace_reader_process(s->reader, &info.pid, &info.name);
		thoth_trace_reader_stats(s->reader, &info.stats);
		fn(&info, ctx);
	}
	tracer_unlock(mt);
}

void thothd_tracer_foreach_reader(thothd_tracer_t *t, thothd_trace_reader_fn fn, void *ctx)
{
	if (!t)
		return;
	tracer_lock(t);
	for (trace_source_t *s = t->sources; s; s = s->next)
		if (s->client && !s->own)
			fn(s->reader, s->client->pid, ctx);
	tracer_unlock(t);
}

/* ---- an extra source ------------------------------------------------------------ */

/* Under mu: the collector thread may be polling the old source. */
void thothd_tracer_set_source(thothd_tracer_t *t, uint64_t mask, thothd_trace_source_poll_fn fn,
			      void *ctx)
{
	if (!t)
		return;
	tracer_lock(t);
	t->source_mask = fn ? mask : 0;
	t->source_fn = fn;
	t->source_ctx = fn ? ctx : NULL;
	tracer_unlock(t);
}

/* Called by the extra source from within a drain (mu held, either thread). */
void thothd_tracer_add_event(thothd_tracer_t *t, const thoth_trace_event_t *ev, const char *process,
			     const char *thread)
{
	if (!t->active || !(t->categories & (1ull << ev->category)) ||
	    (t->pid_filter && ev->pid != t->pid_filter))
		return;
	if (thoth_trace_collection_count(t->collection) >= MAX_EVENTS ||
	    thoth_trace_collection_add_event(t->collection, ev, process ? process : "",
					     thread ? thread : ""))
		t->discarded++;
}
