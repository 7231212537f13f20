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
 * A report is made on a worker thread (a deferred answer, defer.c): a
 * process's first report symbolizes for ~100 ms, and the loop thread serves
 * everyone else meanwhile.  The symbol cache is then shared by the workers
 * and the loop thread (the dashboard's panel, a cached process's exit):
 * syms_mu guards it.  Its watch callbacks run under that lock on whichever
 * thread uses the cache; the loop belongs to the loop thread, so a worker's
 * watch and unwatch are queued (watch_mu) and applied on the loop thread
 * when its report is answered.  A cached process that exits while a worker
 * holds the cache is queued too (never a blocked loop thread).
 *
 * A report larger than one page (PAGE_BYTES) is kept as a snapshot whose
 * pages the client fetches: one consistent report, made once.  At most
 * SNAPSHOTS are kept (the oldest is pushed out); one read to its end is
 * freed at once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
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
	thothd_lock_symcache_t *syms;   /* symbols kept across reports (syms_mu) */
	pthread_mutex_t syms_mu;
	pthread_t loop_thread;
	/* Watches a worker added or dropped, for the loop thread, in order. */
	pthread_mutex_t watch_mu;
	struct watch_op {
		struct sym_watch *w;
		bool add;
		struct watch_op *next;
	} *ops_head, *ops_tail;
	int exited[32];                 /* exits seen while a worker held the cache */
	unsigned n_exited;
};

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* A cached process's pidfd on the loop. */
typedef struct sym_watch sym_watch_t;
static void apply_watches(thothd_locks_t *l);
struct sym_watch {
	thothd_locks_t *l;
	int pid, fd;
	thoth_source_t *src;
};

static bool on_loop_thread(const thothd_locks_t *l)
{
	return pthread_equal(pthread_self(), l->loop_thread);
}

/* From a worker (syms_mu held): for the loop thread (apply_watches). */
static void queue_watch(thothd_locks_t *l, sym_watch_t *w, bool add)
{
	struct watch_op *op = malloc(sizeof *op);
	if (!op) {
		/* Unwatched: the entry goes at the next scan (its start
		 * time) or by eviction instead. */
		if (add) {
			close(w->fd);
			free(w);
		}
		return;
	}
	*op = (struct watch_op){ .w = w, .add = add };
	pthread_mutex_lock(&l->watch_mu);
	if (l->ops_tail)
		l->ops_tail->next = op;
	else
		l->ops_head = op;
	l->ops_tail = op;
	pthread_mutex_unlock(&l->watch_mu);
}

static void unwatch_now(thothd_locks_t *l, sym_watch_t *w)
{
	if (w->src)
		thoth_loop_remove_fd(l->d->loop, w->src);
	close(w->fd);
	free(w);
}

static void sym_exited(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)fd;
	(void)events;
	sym_watch_t *w = arg;
	thothd_locks_t *l = w->l;
	int pid = w->pid;
	if (pthread_mutex_trylock(&l->syms_mu) == 0) {
		thothd_debug("locks: process %d exited: its symbols dropped", pid);
		thothd_lock_symcache_exited(l->syms, pid);     /* calls sym_unwatch(w) */
		pthread_mutex_unlock(&l->syms_mu);
		return;
	}
	/* A worker symbolizes: never wait for it here.  The pidfd stays
	 * readable, so stop listening to it; the exit is applied when the
	 * worker's report is answered (apply_watches). */
	thoth_loop_modify_fd(l->d->loop, w->src, 0);
	if (l->n_exited < sizeof l->exited / sizeof l->exited[0])
		l->exited[l->n_exited++] = pid;
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
	if (!w) {
		close(fd);
		return NULL;
	}
	w->l = l;
	w->pid = pid;
	w->fd = fd;
	if (!on_loop_thread(l)) {
		queue_watch(l, w, true);
		return w;
	}
	if (thoth_loop_add_fd(l->d->loop, fd, THOTH_LOOP_READ, sym_exited, w, &w->src)) {
		free(w);
		close(fd);
		return NULL;
	}
	return w;
}

static void sym_unwatch(void *token, void *ctx)
{
	thothd_locks_t *l = ctx;
	sym_watch_t *w = token;
	pthread_mutex_lock(&l->watch_mu);
	bool in_order = on_loop_thread(l) && !l->ops_head;
	pthread_mutex_unlock(&l->watch_mu);
	if (in_order)
		unwatch_now(l, w);
	else
		queue_watch(l, w, false);       /* after its queued add, if any */
}

/* Loop thread: the watches workers queued, then the exits seen meanwhile. */
static void apply_watches(thothd_locks_t *l)
{
	pthread_mutex_lock(&l->watch_mu);
	struct watch_op *op = l->ops_head;
	l->ops_head = l->ops_tail = NULL;
	pthread_mutex_unlock(&l->watch_mu);
	while (op) {
		struct watch_op *next = op->next;
		sym_watch_t *w = op->w;
		if (!op->add) {
			unwatch_now(l, w);
		} else if (thoth_loop_add_fd(l->d->loop, w->fd, THOTH_LOOP_READ, sym_exited, w, &w->src)) {
			/* Cannot watch: the cache still holds the token; keep
			 * it, unregistered (the entry goes when pruned). */
			w->src = NULL;
		}
		free(op);
		op = next;
	}
	if (l->n_exited && pthread_mutex_trylock(&l->syms_mu) == 0) {
		for (unsigned i = 0; i < l->n_exited; i++) {
			thothd_debug("locks: process %d exited: its symbols dropped", l->exited[i]);
			thothd_lock_symcache_exited(l->syms, l->exited[i]);
		}
		l->n_exited = 0;
		pthread_mutex_unlock(&l->syms_mu);
		apply_watches(l);       /* the unwatches those queued, if a worker's ops came first */
	}
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

/*
 * A report: scanned, symbolized and written on a worker (report_work, with
 * the symbol cache's lock), answered on the loop thread (report_done).
 */
typedef struct report_job {
	thothd_locks_t *l;
	uint32_t pid;
	thothlock_report_opts_t opts;
	uint64_t client;                /* the asker's id: its snapshot */
	int status;                     /* of the scan or the report */
	const char *why;
	/* why, when it names the dir (dir[4200]) and an errno; NoTables' reason,
	 * which names the library (THOTHLOCK_HINT_MAX) */
	char why_buf[THOTHLOCK_HINT_MAX + 128];
	thothd_lock_scan_t *scan;       /* the scan's refusals (tables freed) */
	char *buf;                      /* the report */
	size_t size;
	size_t processes;               /* tables in it */
	double ms;
} report_job_t;

static void report_work(void *arg)
{
	report_job_t *job = arg;
	thothd_locks_t *l = job->l;
	thothd_lock_scan_t *scan = job->scan;
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&l->syms_mu);
	thothd_locks_prune(l->dir, false);
	errno = 0;
	int r = thothd_lock_scan_cached(l->dir, (int)job->pid, l->syms, scan);
	if (r) {
		int e = errno;          /* opendir's: say which dir and why */
		pthread_mutex_unlock(&l->syms_mu);
		job->status = r;
		snprintf(job->why_buf, sizeof job->why_buf, "cannot read %s: %s", l->dir,
			 e ? strerror(e) : thoth_strerror(r));
		job->why = job->why_buf;
		return;
	}
	if (scan->n) {
		FILE *f = open_memstream(&job->buf, &job->size);
		r = f ? thothlock_report_write(f, scan->tables, scan->n, &job->opts) : THOTH_E_NOMEM;
		if (f && fclose(f) != 0 && !r)
			r = THOTH_E_NOMEM;
		job->status = r;
	}
	job->processes = scan->n;
	thothd_lock_scan_free(scan);    /* the tables (n goes to 0); the refusals stay */
	if (l->syms)
		thothd_lock_symcache_trim(l->syms);
	pthread_mutex_unlock(&l->syms_mu);
	job->ms = (now_ns() - t0) / 1e6;
}

static int report_done(void *arg, bool ran, void *resp_v, thoth_arena_t *arena, const char **reason)
{
	report_job_t *job = arg;
	thothd_locks_t *l = job->l;
	thoth_locks_LockReports_report_resp_t *resp = resp_v;
	thothd_lock_scan_t *scan = job->scan;
	apply_watches(l);
	if (!ran) {
		*reason = "thothd is stopping";
		return THOTH_E_CLOSED;
	}
	if (job->status && job->why) {
		*reason = job->why;
		return job->status;
	}
	if (job->processes == 0 && scan->refused_total == 0) {
		/* The thothlock launcher, as thothctl names it first (seen
		 * here live and reported at the exit); else the library by its
		 * full path: the bare name is not on ld.so's path ("cannot be
		 * preloaded: ignored").  In the 127 bytes a client keeps of a
		 * reason (thoth_client_t.remote_message): a deep path's head
		 * gives way to "...", never its tail cut unmarked. */
		char lib[THOTHLOCK_HINT_MAX], launcher[PATH_MAX];
		thothd_lock_preload_hint(lib, sizeof lib);
		thothlock_no_tables_reason(job->why_buf, sizeof ((thoth_client_t *)0)->remote_message, job->pid,
					   lib, thothd_lock_launcher(launcher, sizeof launcher));
		*reason = job->why_buf;
		return THOTH_LOCKS_ERR_NO_TABLES;
	}
	thothd_lock_symcache_stats_t st = { 0 };
	if (l->syms && pthread_mutex_trylock(&l->syms_mu) == 0) {
		thothd_lock_symcache_stats(l->syms, &st);
		pthread_mutex_unlock(&l->syms_mu);
	}
	thothd_debug("locks: report of %zu process%s in %.3f ms; symbol cache: %zu processes, %zu KiB, "
		     "%llu lookups answered, %llu looked up, %llu sessions built, %llu reused",
		     job->processes, job->processes == 1 ? "" : "es", job->ms, st.processes, st.bytes >> 10,
		     (unsigned long long)st.hits, (unsigned long long)st.misses,
		     (unsigned long long)st.built, (unsigned long long)st.reused);
	if (job->status)
		return job->status;
	if (!resp)
		return 0;               /* nobody waits for it any more */
	if (job->size > MAX_REPORT_BYTES) {
		*reason = "the report is larger than thothd's 16 MiB limit: ask for fewer locks "
			  "(--top N)";
		return THOTH_LOCKS_ERR_TOO_LARGE;
	}
	thoth_locks_Refusal_t *refused = thoth_arena_alloc(arena, (scan->n_refused ? scan->n_refused : 1) *
								   sizeof *refused);
	if (!refused)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < scan->n_refused; i++) {
		const thothd_lock_refusal_t *x = &scan->refused[i];
		char *file = thoth_arena_alloc(arena, strlen(x->file) + 1);
		char *why = thoth_arena_alloc(arena, strlen(x->why) + 1);
		if (!file || !why)
			return THOTH_E_NOMEM;
		strcpy(file, x->file);
		strcpy(why, x->why);
		refused[i] = (thoth_locks_Refusal_t){ .pid = (uint32_t)x->pid, .file = thoth_str(file),
						      .why = thoth_str(why) };
		thothd_debug("locks: %s refused: %s", x->file, x->why);
	}
	resp->processes = (uint32_t)job->processes;
	resp->refused = (thoth_locks_Refusal_list_t){ .items = refused, .count = (uint32_t)scan->n_refused };
	resp->size = job->size;
	size_t first = job->size < PAGE_BYTES ? job->size : PAGE_BYTES;
	/* The first page goes in the answer, copied: RELEASE frees the job
	 * before the inline path (THOTHD_DEFER=off) encodes. */
	uint8_t *text = thoth_arena_alloc(arena, first ? first : 1);
	if (!text)
		return THOTH_E_NOMEM;
	if (first)
		memcpy(text, job->buf, first);
	resp->text = (thoth_bytes_t){ .ptr = text, .len = (uint32_t)first };
	if (job->size > PAGE_BYTES) {
		snapshot_t *s = snapshot_slot(l);
		*s = (snapshot_t){ .id = ++l->next_id, .client = job->client, .buf = job->buf,
				   .size = job->size };
		job->buf = NULL;        /* the snapshot's now */
		resp->snapshot = s->id;
	}
	return 0;
}

static void report_release(void *arg)
{
	report_job_t *job = arg;
	free(job->buf);
	free(job->scan);
	free(job);
}

static const thothd_job_ops_t report_ops = {
	.method = &thoth_locks_LockReports_report_info,
	.work = report_work,
	.done = report_done,
	.release = report_release,
};

static int on_report(void *self, const thoth_locks_LockReports_report_req_t *req,
		     thoth_locks_LockReports_report_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_locks_t *l = call->d->locks;
	if (req->pid > INT32_MAX) {
		call->reason = "pid out of range";
		return THOTH_LOCKS_ERR_NO_TABLES;
	}
	report_job_t *job = calloc(1, sizeof *job);
	thothd_lock_scan_t *scan = malloc(sizeof *scan);
	if (!job || !scan) {
		free(job);
		free(scan);
		return THOTH_E_NOMEM;
	}
	*job = (report_job_t){ .l = l, .pid = req->pid, .scan = scan,
			       .client = call->client ? call->client->id : 0,
			       .opts = { .json = req->json, .top = req->top,
					 .show_uncontended = req->verbose } };
	int r = thothd_defer_or_run(call, &report_ops, job, resp, arena);
	if (!r && !call->job)   /* answered here (THOTHD_DEFER=off): room for it */
		r = thothd_reserve_response(call, &thoth_locks_LockReports_report_info, resp);
	return r;
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

/* A dead process's marker removed (info), or a name refused (at start a
 * warning; at a scan a debug line: the report's refusals name it). */
static void prune_say(void *ctx, bool refused, const char *line)
{
	bool at_start = ctx != NULL;
	if (!refused)
		thothd_info("locks: removed the dead marker %s", line);
	else if (at_start)
		thothd_warn("locks: %s", line);
	else
		thothd_debug("locks: %s", line);
}

void thothd_locks_prune(const char *locks_dir, bool at_start)
{
	static char start_mark;
	int r = thothd_lock_prune(locks_dir, prune_say, at_start ? &start_mark : NULL);
	if (r < 0 && at_start)
		thothd_warn("locks: cannot read %s to remove dead markers: %s", locks_dir, strerror(errno));
}

int thothd_locks_new(thothd_t *d, thothd_locks_t **out)
{
	thothd_locks_t *l = calloc(1, sizeof *l);
	if (l) {
		pthread_mutex_init(&l->syms_mu, NULL);
		pthread_mutex_init(&l->watch_mu, NULL);
		l->loop_thread = pthread_self();        /* thothd_locks_new runs on it */
	}
	if (!l || thothd_lock_rings_new(&l->rings) ||
	    thothd_lock_symcache_new(NULL, sym_watch, sym_unwatch, l, &l->syms)) {
		if (l)
			thothd_lock_rings_free(l->rings);
		free(l);
		return THOTH_E_NOMEM;
	}
	l->d = d;
	/* The descriptors thothd's sizing set aside for the rings (server.c). */
	_Static_assert(THOTHD_LOCK_RING_FDS_MAX == THOTHD_LOCKS_KEPT_FDS_MAX, "one budget, two names");
	thothd_lock_rings_fd_budget(d->lock_ring_fds);
	snprintf(l->dir, sizeof l->dir, "%s/locks", d->cfg.runtime_dir ? d->cfg.runtime_dir : ".");
	/* Markers of processes killed or crashed while no thothd ran (or
	 * before this one started): removed now, and at every scan. */
	thothd_locks_prune(l->dir, true);
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
	d->lock_session_rings = l->rings;
	d->lock_syms_mu = &l->syms_mu;
	thothd_tracer_set_source(d->tracer, THOTH_TRACE_MASK(LOCK), session_source, l);
	*out = l;
	return 0;
}

void thothd_locks_free(thothd_locks_t *l)
{
	if (!l)
		return;
	/* Reports in progress use the cache: they finish (or are given up) first. */
	thothd_jobs_stop(l->d);
	apply_watches(l);
	if (l->d->locks == l) {
		thothd_tracer_set_source(l->d->tracer, 0, NULL, NULL);
		l->d->locks = NULL;
		l->d->locks_handlers = NULL;
		l->d->lock_syms = NULL;
		l->d->lock_session_rings = NULL;
		l->d->lock_syms_mu = NULL;
	}
	for (int i = 0; i < SNAPSHOTS; i++)
		snapshot_drop(&l->snaps[i]);
	thothd_lock_rings_free(l->rings);
	thothd_lock_symcache_free(l->syms);
	pthread_mutex_destroy(&l->syms_mu);
	pthread_mutex_destroy(&l->watch_mu);
	free(l);
}

