/* locks.c - lock contention through thothd (OBS-4, docs/LOCKS.md "Live
 * reports through thothd"): LockReports (idl/locks.tidl) and the lock
 * profiler's contention rings as a trace session's `lock_wait` events.
 *
 * thothd's executable only (main.c calls thothd_locks_new): the reader
 * symbolizes with libdw, which libthoth does not link.  Nothing here runs
 * unless asked: a report is made per request, the rings are read at the
 * session's own drains; no timer, and no descriptor but a pidfd per process
 * whose symbols are kept (it fires once, at that process's exit), so an idle
 * thothd stays at 0 wake-ups (test_thothd_idle).
 *
 * Symbols are kept across reports, per process (thothd_lock_symcache_t,
 * locks.h): a repeated report of the same process sets up no libdw session
 * and looks up no address again.  Each cached process is watched with a
 * pidfd on the loop (no timer: one wake-up when it exits), and its entry
 * dropped then.
 *
 * A report larger than one page (PAGE_BYTES) is kept as a snapshot whose
 * pages the client fetches: one consistent report, made once.  At most
 * SNAPSHOTS are kept (the oldest is pushed out); one read to its end is
 * freed at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "locks.h"
#include "locks.thoth.h"
#include "log.h"
#include "thothd.h"

enum {
	PAGE_BYTES = 256 << 10,
	MAX_REPORT_BYTES = 16 << 20,
	SNAPSHOTS = 4,
};

typedef struct snapshot {
	uint64_t id;                    /* 0 = free */
	uint64_t client;                /* thothd_client_t.id of the asker */
	char *buf;
	size_t size;
} snapshot_t;

struct thothd_locks {
	thothd_t *d;
	char dir[4200];                 /* RUNTIME_DIR/locks */
	snapshot_t snaps[SNAPSHOTS];
	uint64_t next_id;
	thothd_lock_rings_t *rings;     /* followed for trace sessions */
	thothd_lock_symcache_t *syms;   /* symbols kept across reports */
};

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* A cached process's pidfd on the loop. */
typedef struct sym_watch {
	thothd_locks_t *l;
	int pid, fd;
	thoth_source_t *src;
} sym_watch_t;

static void sym_exited(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)fd;
	(void)events;
	sym_watch_t *w = arg;
	thothd_debug("locks: process %d exited: its symbols dropped", w->pid);
	thothd_lock_symcache_exited(w->l->syms, w->pid);       /* calls sym_unwatch(w) */
}

static void *sym_watch(int pid, void *ctx)
{
	thothd_locks_t *l = ctx;
	if (!l->d->loop)
		return NULL;            /* in-process use: the next scan prunes */
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0)
		return NULL;            /* gone already, or no pidfd: the next scan prunes */
	sym_watch_t *w = calloc(1, sizeof *w);
	if (!w || thoth_loop_add_fd(l->d->loop, fd, THOTH_LOOP_READ, sym_exited, w, &w->src)) {
		free(w);
		close(fd);
		return NULL;
	}
	w->l = l;
	w->pid = pid;
	w->fd = fd;
	return w;
}

static void sym_unwatch(void *token, void *ctx)
{
	thothd_locks_t *l = ctx;
	sym_watch_t *w = token;
	if (w->src)
		thoth_loop_remove_fd(l->d->loop, w->src);
	close(w->fd);
	free(w);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void snapshot_drop(snapshot_t *s)
{
	free(s->buf);
	*s = (snapshot_t){ 0 };
}

static snapshot_t *snapshot_slot(thothd_locks_t *l)
{
	snapshot_t *oldest = &l->snaps[0];
	for (int i = 0; i < SNAPSHOTS; i++) {
		if (!l->snaps[i].id)
			return &l->snaps[i];
		if (l->snaps[i].id < oldest->id)
			oldest = &l->snaps[i];
	}
	thothd_debug("locks: report snapshot %llu pushed out before it was read to its end",
		     (unsigned long long)oldest->id);
	snapshot_drop(oldest);
	return oldest;
}

static int on_report(void *self, const thoth_locks_LockReports_report_req_t *req,
		     thoth_locks_LockReports_report_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_locks_t *l = call->d->locks;
	if (req->pid > INT32_MAX) {
		call->reason = "pid out of range";
		return THOTH_LOCKS_ERR_NO_TABLES;
	}
	thothd_lock_scan_t *scan = malloc(sizeof *scan);
	if (!scan)
		return THOTH_E_NOMEM;
	uint64_t t0 = now_ns();
	int r = thothd_lock_scan_cached(l->dir, (int)req->pid, l->syms, scan);
	if (r) {
		free(scan);
		call->reason = "cannot read the runtime directory's locks/";
		return r;
	}
	if (scan->n == 0 && scan->refused_total == 0) {
		free(scan);
		call->reason = req->pid ? "that process publishes no lock statistics (run it with "
					  "LD_PRELOAD=libthothlock.so; docs/LOCKS.md)"
					: "no running process publishes lock statistics (run one with "
					  "LD_PRELOAD=libthothlock.so; docs/LOCKS.md)";
		return THOTH_LOCKS_ERR_NO_TABLES;
	}
	char *buf = NULL;
	size_t size = 0;
	if (scan->n) {
		FILE *f = open_memstream(&buf, &size);
		thothlock_report_opts_t opts = { .json = req->json, .top = req->top,
						 .show_uncontended = req->verbose };
		r = f ? thothlock_report_write(f, scan->tables, scan->n, &opts) : THOTH_E_NOMEM;
		if (f && fclose(f) != 0 && !r)
			r = THOTH_E_NOMEM;
	}
	resp->processes = (uint32_t)scan->n;
	thothd_lock_scan_free(scan);
	thothd_lock_symcache_stats_t st = { 0 };
	if (l->syms) {
		thothd_lock_symcache_trim(l->syms);
		thothd_lock_symcache_stats(l->syms, &st);
	}
	thothd_debug("locks: report of %zu process%s in %.3f ms; symbol cache: %zu processes, %zu KiB, "
		     "%llu lookups answered, %llu looked up, %llu sessions built, %llu reused",
		     (size_t)resp->processes, resp->processes == 1 ? "" : "es", (now_ns() - t0) / 1e6,
		     st.processes, st.bytes >> 10, (unsigned long long)st.hits,
		     (unsigned long long)st.misses, (unsigned long long)st.built,
		     (unsigned long long)st.reused);
	thoth_locks_Refusal_t *refused = thoth_arena_alloc(arena, (scan->n_refused ? scan->n_refused : 1) *
								   sizeof *refused);
	for (size_t i = 0; refused && i < scan->n_refused; i++) {
		const thothd_lock_refusal_t *x = &scan->refused[i];
		char *file = thoth_arena_alloc(arena, strlen(x->file) + 1);
		char *why = thoth_arena_alloc(arena, strlen(x->why) + 1);
		if (!file || !why) {
			refused = NULL;
			break;
		}
		strcpy(file, x->file);
		strcpy(why, x->why);
		refused[i] = (thoth_locks_Refusal_t){ .pid = (uint32_t)x->pid, .file = thoth_str(file),
						      .why = thoth_str(why) };
		thothd_debug("locks: %s refused: %s", x->file, x->why);
	}
	size_t n_refused = scan->n_refused;
	free(scan);
	if (!refused) {
		free(buf);
		return THOTH_E_NOMEM;
	}
	if (r) {
		free(buf);
		return r;
	}
	if (size > MAX_REPORT_BYTES) {
		free(buf);
		call->reason = "the report is larger than thothd's 16 MiB limit: ask for fewer locks "
			       "(--top N)";
		return THOTH_LOCKS_ERR_TOO_LARGE;
	}
	resp->refused = (thoth_locks_Refusal_list_t){ .items = refused, .count = (uint32_t)n_refused };
	resp->size = size;
	resp->text = (thoth_bytes_t){ .ptr = (const uint8_t *)buf,
				      .len = (uint32_t)(size < PAGE_BYTES ? size : PAGE_BYTES) };
	if (size <= PAGE_BYTES) {
		call->scratch = buf;    /* freed once the answer is encoded */
	} else {
		snapshot_t *s = snapshot_slot(l);
		*s = (snapshot_t){ .id = ++l->next_id, .client = call->client ? call->client->id : 0,
				   .buf = buf, .size = size };
		resp->snapshot = s->id;
	}
	return thothd_reserve_response(call, &thoth_locks_LockReports_report_info, resp);
}

static int on_page(void *self, const thoth_locks_LockReports_page_req_t *req,
		   thoth_locks_LockReports_page_resp_t *resp, thoth_arena_t *arena)
{
	(void)arena;
	thothd_call_t *call = self;
	thothd_locks_t *l = call->d->locks;
	uint64_t client = call->client ? call->client->id : 0;
	snapshot_t *s = NULL;
	for (int i = 0; i < SNAPSHOTS && !s; i++)
		if (req->snapshot && l->snaps[i].id == req->snapshot && l->snaps[i].client == client)
			s = &l->snaps[i];
	if (!s || req->offset > s->size) {
		call->reason = s ? "offset beyond the report's end"
				 : "no such report snapshot (read to its end, pushed out by newer "
				   "ones, or another connection's): ask for the report again";
		return THOTH_LOCKS_ERR_EXPIRED;
	}
	size_t n = s->size - req->offset < PAGE_BYTES ? s->size - req->offset : PAGE_BYTES;
	resp->text = (thoth_bytes_t){ .ptr = (const uint8_t *)s->buf + req->offset, .len = (uint32_t)n };
	if (req->offset + n == s->size) {       /* the last page: the buffer goes with the answer */
		call->scratch = s->buf;
		*s = (snapshot_t){ 0 };
	}
	return thothd_reserve_response(call, &thoth_locks_LockReports_page_info, resp);
}

static const thoth_locks_LockReports_handlers_t handlers = {
	.report = on_report,
	.page = on_page,
};

/* ---- trace sessions ---------------------------------------------------------------- */

static void add_wait(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	thothd_tracer_add_event(ctx, ev, process, "");
}

/* At each drain of a session that records category LOCK: the waits since
 * the session started that were not handed to it yet. */
static uint64_t session_source(thothd_tracer_t *t, uint64_t since_ns, void *ctx)
{
	thothd_locks_t *l = ctx;
	uint64_t lost = 0;
	(void)thothd_lock_rings_poll(l->rings, l->dir, since_ns, add_wait, t, &lost);
	return lost;
}

int thothd_locks_new(thothd_t *d, thothd_locks_t **out)
{
	thothd_locks_t *l = calloc(1, sizeof *l);
	if (!l || thothd_lock_rings_new(&l->rings) ||
	    thothd_lock_symcache_new(NULL, sym_watch, sym_unwatch, l, &l->syms)) {
		if (l)
			thothd_lock_rings_free(l->rings);
		free(l);
		return THOTH_E_NOMEM;
	}
	l->d = d;
	snprintf(l->dir, sizeof l->dir, "%s/locks", d->cfg.runtime_dir ? d->cfg.runtime_dir : ".");
	d->locks = l;
	d->locks_handlers = &handlers;
	/* THOTHD_LOCK_SYMCACHE=off: every report symbolizes afresh, as before
	 * the cache (bench_lockreports' baseline, measured in the same run). */
	const char *env = getenv("THOTHD_LOCK_SYMCACHE");
	if (env && strcmp(env, "off") == 0) {
		thothd_lock_symcache_free(l->syms);
		l->syms = NULL;
	}
	d->lock_syms = l->syms;
	thothd_tracer_set_source(d->tracer, THOTH_TRACE_MASK(LOCK), session_source, l);
	*out = l;
	return 0;
}

void thothd_locks_free(thothd_locks_t *l)
{
	if (!l)
		return;
	if (l->d->locks == l) {
		thothd_tracer_set_source(l->d->tracer, 0, NULL, NULL);
		l->d->locks = NULL;
		l->d->locks_handlers = NULL;
		l->d->lock_syms = NULL;
	}
	for (int i = 0; i < SNAPSHOTS; i++)
		snapshot_drop(&l->snaps[i]);
	thothd_lock_rings_free(l->rings);
	thothd_lock_symcache_free(l->syms);
	free(l);
}

