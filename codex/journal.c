/*
 * codex/journal.c - durability classes, group commit, writeback epochs and
 * the PM broker's opportunistic lease on the disk (journal.h, wb.h).
 */
#define _GNU_SOURCE
#include "journal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "pm.thoth.h"
#include "thoth/error.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/stream.h"

#define MAX_BATCH 64            /* dirty segments per epoch: more wait for the next */

struct cx_journal {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	cx_store_t *st;
	cx_wb_t wb;
	uint64_t durable_lsn, sync_want_lsn, first_wait_ns;
	uint32_t sync_waiters, appending, last_group;
	uint32_t readers;               /* between locating records and reading them (store fds) */
	bool readmiss_ev, awake_ev, create_ev, shutdown, stopped;
	int failed;
	char failure[CX_FAILURE_LEN];   /* why, in words (journal_stop); set once */
	void (*on_failure)(void *arg, const char *why);
	void *on_failure_arg;
	uint64_t gc_window_ns;

	/* the committer (its thread only, except where noted) */
	pthread_t thr;
	thoth_loop_t *loop;
	int kick_fd;
	thoth_timer_t *gc_timer, *budget_timer;
	bool in_flight;                 /* under mu */
	cx_dirty_t fl[MAX_BATCH];
	size_t nfl;
	uint64_t fl_dir;                /* cx_store_dirty's: 0, or the newest segment the dir fsync covers */
	uint64_t fl_lsn, fl_start, fl_deferred_bytes;
	int fl_pending, fl_err;
	char fl_why[CX_FAILURE_LEN];    /* fl_err in words, taken in on_fsync */
	struct fl_op {                  /* on_fsync's argument: which file */
		cx_journal_t *j;
		int k;                  /* j->fl[k], or -1: the directory */
	} fl_op[MAX_BATCH + 1];
	uint32_t fl_group;
	cx_wb_reason_t fl_reason;

	/* PM broker: an opportunistic lease on the disk's active level */
	char pm_element[64];
	char runtime_dir[4096];
	bool has_runtime_dir;
	thoth_control_t ctl;
	bool ctl_open;
	thoth_source_t *pm_src;
	thoth_timer_t *pm_retry;
	uint64_t pm_backoff_ns, pm_lease;
	bool pm_leased, pm_awake;       /* under mu for stats */
	bool pm_away;                   /* thothd unreachable or gone at the last try */
	bool pm_reached;                /* pm_connect's last try found thothd there (not away) */
	uint32_t pm_tries;              /* pm_connect calls (under mu: cx_journal_stats) */
	char pm_note[96];

	/* stats, under mu */
	cx_journal_stats_t s;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void kick(cx_journal_t *j)
{
	uint64_t one = 1;
	ssize_t w = write(j->kick_fd, &one, sizeof one);
	(void)w;        /* EAGAIN: the counter is already non-zero, the kick is pending */
}

/* The journal stops (mu held) with error R: the first error is kept, in
 * words too -- WHY, or the call and errno from this thread's last error,
 * which the failing call just set -- for stats and for the operator's log:
 * "the journal stopped after an I/O error" alone names no disk, no cause.
 * Returns true if this stopped it: the caller then calls tell_failure once
 * mu is released. */
static bool journal_stop(cx_journal_t *j, int r, const char *why)
{
	if (j->failed)
		return false;
	j->failed = r;
	if (why && *why)
		snprintf(j->failure, sizeof j->failure, "%s", why);
	else
		thoth_strerror_r(r, j->failure, sizeof j->failure);
	return true;
}

/* on_failure (codex: an fprintf to stderr, which may block on a pipe) is
 * called without mu, which every append, read and stats call takes.
 * j->failure is written once, under mu, before `failed` is seen set, and
 * never again: reading it here needs no lock. */
static void tell_failure(cx_journal_t *j, bool stopped)
{
	if (stopped && j->on_failure)
		j->on_failure(j->on_failure_arg, j->failure);
}

/* ---- epochs -------------------------------------------------------------- */

static void evaluate(cx_journal_t *j);

static void epoch_done(cx_journal_t *j)
{
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_EPOCH_SYNCED);
	pthread_mutex_lock(&j->mu);
	uint64_t now = mono_ns();
	bool stopped = false;
	if (j->fl_err) {
		/* After a failed fdatasync the kernel may have dropped the dirty
		 * pages: nothing written since the last good epoch can be
		 * called durable, so the journal stops (no retry, no ack). */
		stopped = journal_stop(j, j->fl_err, j->fl_why);
	} else {
		cx_store_synced(j->st, j->fl, j->nfl, j->fl_dir);
		if (!j->readers)
			cx_store_release_retired(j->st);
		/* This epoch's records are durable (their segments' names were
		 * covered by its directory fsync or an earlier one); a failed
		 * directory fsync of retention's with a newer segment's name
		 * at stake stops the journal after them (store.c,
		 * names_at_risk). */
		if (j->fl_lsn > j->durable_lsn)
			j->durable_lsn = j->fl_lsn;
		char sw[CX_FAILURE_LEN];
		int sr = cx_store_failure(j->st, sw, sizeof sw);
		if (sr)
			stopped = journal_stop(j, sr, sw);
		uint64_t before = j->wb.bytes;
		cx_wb_flushed(&j->wb, j->fl_lsn);
		j->fl_deferred_bytes = before - j->wb.bytes;
	}
	cx_journal_stats_t *s = &j->s;
	s->epochs++;
	s->epochs_by_reason[j->fl_reason]++;
	uint32_t g = j->fl_group;
	int b = 0;
	while (g && b < CX_GROUP_BUCKETS - 1) {
		b++;
		g >>= 1;
	}
	s->group_hist[b]++;
	if (j->fl_group > s->group_max)
		s->group_max = j->fl_group;
	if (s->n_recent == CX_RECENT_EPOCHS) {
		memmove(s->recent, s->recent + 1, (CX_RECENT_EPOCHS - 1) * sizeof s->recent[0]);
		s->n_recent--;
	}
	s->recent[s->n_recent++] = (cx_epoch_t){
		.at_ns = real_ns(), .duration_ns = now - j->fl_start, .deferred_bytes = j->fl_deferred_bytes,
		.group = j->fl_group, .fsyncs = (uint32_t)(j->nfl + (j->fl_dir != 0)), .reason = j->fl_reason,
	};
	if (j->fl_reason == CX_WB_SYNC)
		j->last_group = j->fl_group;
	j->in_flight = false;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	tell_failure(j, stopped);
	evaluate(j);
}

/* An fdatasync failed: in words, naming the file (the journal's failure,
 * docs/CODEX.md "Errors").  After a failed fdatasync (EIO) the kernel may
 * have dropped the pages it could not write and marked them clean: a
 * second fdatasync would then succeed without them ("fsyncgate").  So the
 * failure is never retried, and nothing is acknowledged after it. */
static void fsync_failed(cx_journal_t *j, int k, int err)
{
	char path[4200], brief[CX_PATH_BRIEF];
	if (k < 0)
		j->fl_err = thoth_error_io(err, "fsync the directory %s",
					   cx_path_brief(cx_store_dir(j->st), "fsync the directory ", brief));
	else if (cx_store_seg_name(j->st, j->fl[k].segno, path, sizeof path))
		j->fl_err = thoth_error_io(err, "fdatasync segment %" PRIu64 " in %s", j->fl[k].segno,
					   cx_path_brief(cx_store_dir(j->st), "fdatasync segment 18446744073709551615 in ",
							 brief));
	else
		j->fl_err = thoth_error_io(err, "fdatasync %s", cx_path_brief(path, "fdatasync ", brief));
	/* in words now: by epoch_done another call may have set the
	 * thread's last error */
	char sys[CX_FAILURE_LEN - 128];   /* what[160], the errno: the rest fits */
	thoth_strerror_r(j->fl_err, sys, sizeof sys);
	snprintf(j->fl_why, sizeof j->fl_why, "%s; not retried (the kernel may have dropped the "
		 "unwritten pages): nothing written since the last good sync is acknowledged", sys);
}

static void on_fsync(thoth_loop_t *loop, int64_t result, int err, void *arg)
{
	struct fl_op *op = arg;
	cx_journal_t *j = op->j;
	if (result < 0 && !j->fl_err)
		fsync_failed(j, op->k, err);
	if (--j->fl_pending == 0)
		epoch_done(j);
}

/* Called with mu held; returns with it released. */
static void start_epoch(cx_journal_t *j, cx_wb_reason_t reason)
{
	j->nfl = cx_store_dirty(j->st, j->fl, MAX_BATCH, &j->fl_dir);
	j->fl_lsn = cx_store_last_lsn(j->st);
	if (j->nfl == MAX_BATCH)        /* older segments first: the rest next time */
		j->fl_lsn = 0;
	j->fl_group = j->sync_waiters;
	j->fl_reason = reason;
	j->fl_start = mono_ns();
	j->fl_err = 0;
	j->fl_why[0] = '\0';
	j->fl_deferred_bytes = 0;
	j->first_wait_ns = 0;
	j->in_flight = true;
	j->readmiss_ev = j->awake_ev = j->create_ev = false;
	size_t n = j->nfl;
	bool dir = j->fl_dir != 0;
	int dirfd = cx_store_dirfd(j->st);
	pthread_mutex_unlock(&j->mu);
	/* The whole batch is queued before the loop next waits: on io_uring
	 * it goes to the kernel in one io_uring_enter. */
	j->fl_pending = (int)(n + dir) + 1;     /* +1: held until all are queued */
	for (size_t k = 0; k < n; k++) {
		j->fl_op[k] = (struct fl_op){ .j = j, .k = (int)k };
		if (thoth_loop_fsync(j->loop, j->fl[k].fd, true, on_fsync, &j->fl_op[k])) {
			j->fl_pending--;
			j->fl_err = THOTH_E_NOMEM;
		}
	}
	j->fl_op[MAX_BATCH] = (struct fl_op){ .j = j, .k = -1 };
	if (dir && thoth_loop_fsync(j->loop, dirfd, false, on_fsync, &j->fl_op[MAX_BATCH])) {
		j->fl_pending--;
		j->fl_err = THOTH_E_NOMEM;
	}
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_EPOCH_SUBMITTED);
	if (--j->fl_pending == 0)
		epoch_done(j);
}

static void on_gc_timer(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	cx_journal_t *j = arg;
	j->gc_timer = NULL;
	evaluate(j);
}

static void on_budget_timer(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	cx_journal_t *j = arg;
	j->budget_timer = NULL;
	evaluate(j);
}

/* Decide whether an epoch starts now (the committer thread only). */
static void evaluate(cx_journal_t *j)
{
	pthread_mutex_lock(&j->mu);
	if (j->in_flight || j->failed) {
		if (j->failed) {
			pthread_cond_broadcast(&j->cv);
			/* A stopped journal makes no more epochs, the shutdown one
			 * included: waiting for it kept codex from exiting. */
			if (j->shutdown && !j->in_flight) {
				j->stopped = true;
				thoth_loop_stop(j->loop);
			}
		}
		pthread_mutex_unlock(&j->mu);
		return;
	}
	uint64_t now = mono_ns();
	cx_wb_reason_t reason = CX_WB_NONE;
	if (j->sync_want_lsn > j->durable_lsn) {
		/* Group window: syncs that arrive while an epoch runs share the
		 * next one.  When none runs and the last epoch acknowledged
		 * several syncs (concurrent writers), wait for as many to join,
		 * but never past first_wait + window (<= 2 ms); a lone writer
		 * never waits. */
		uint64_t until = j->first_wait_ns + j->gc_window_ns;
		if (j->last_group > 1 && j->sync_waiters < j->last_group && now < until && !j->shutdown) {
			if (!j->gc_timer)
				thoth_loop_add_timer(j->loop, until, 0, on_gc_timer, j, &j->gc_timer);
			pthread_mutex_unlock(&j->mu);
			return;
		}
		reason = j->create_ev ? CX_WB_CREATE : CX_WB_SYNC;
	} else if (j->shutdown && cx_wb_should_flush(&j->wb, CX_WB_SHUTDOWN, now)) {
		reason = CX_WB_SHUTDOWN;
	} else if (j->readmiss_ev && cx_wb_should_flush(&j->wb, CX_WB_READ_MISS, now)) {
		reason = CX_WB_READ_MISS;
	} else if ((j->awake_ev || j->pm_awake) && cx_wb_should_flush(&j->wb, CX_WB_PM_AWAKE, now)) {
		reason = CX_WB_PM_AWAKE;
	} else if (cx_wb_should_flush(&j->wb, CX_WB_BUDGET, now)) {
		reason = CX_WB_BUDGET;
	}
	j->readmiss_ev = j->awake_ev = false;
	if (j->gc_timer && reason != CX_WB_NONE) {
		thoth_timer_cancel(j->loop, j->gc_timer);
		j->gc_timer = NULL;
	}
	/* The budget timer always tracks what stays pending after this epoch
	 * (an epoch that covers it all leaves it to the next evaluate). */
	uint64_t due, dl;
	cx_wb_window(&j->wb, &due, &dl);
	if (reason == CX_WB_NONE && due != UINT64_MAX) {
		if (!j->budget_timer)
			thoth_loop_add_timer(j->loop, due, dl - due, on_budget_timer, j, &j->budget_timer);
		else if (thoth_timer_deadline(j->budget_timer) != due)
			thoth_timer_rearm(j->loop, j->budget_timer, due, dl - due);
	} else if (j->budget_timer) {
		thoth_timer_cancel(j->loop, j->budget_timer);
		j->budget_timer = NULL;
	}
	if (reason == CX_WB_NONE) {
		if (j->shutdown && !j->in_flight) {
			j->stopped = true;
			thoth_loop_stop(j->loop);
		}
		pthread_mutex_unlock(&j->mu);
		return;
	}
	start_epoch(j, reason);
}

static void on_kick(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	cx_journal_t *j = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof v);
	(void)r;
	evaluate(j);
}

/* ---- the PM broker ------------------------------------------------------- */

static void pm_schedule_retry(cx_journal_t *j, const char *why, bool away);

static void pm_set_awake(cx_journal_t *j, bool awake)
{
	pthread_mutex_lock(&j->mu);
	j->pm_awake = awake;
	if (awake)
		j->awake_ev = true;
	pthread_mutex_unlock(&j->mu);
}

static void pm_on_event(void *arg, const uint8_t *msg, size_t len)
{
	cx_journal_t *j = arg;
	if (len < 16 || thoth_le32(msg + 8) != THOTH_PM_POWER_EVENTS_ID ||
	    thoth_le32(msg + 12) != THOTH_PM_POWER_EVENTS_LEASE_STATUS)
		return;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerEvents_lease_status_req_t ev;
	if (thoth_pm_PowerEvents_lease_status_req_decode_msg(msg, len, &ev, &arena) || ev.lease != j->pm_lease)
		return;
	if (ev.status == THOTH_PM_LEASE_STATUS_LOST) {
		pm_set_awake(j, false);
		pthread_mutex_lock(&j->mu);
		j->pm_leased = false;   /* the retry below takes a new one */
		pthread_mutex_unlock(&j->mu);
		return;
	}
	pm_set_awake(j, ev.status == THOTH_PM_LEASE_STATUS_SATISFIED);
}

static void pm_close(cx_journal_t *j)
{
	if (j->pm_src) {
		thoth_loop_remove_fd(j->loop, j->pm_src);
		j->pm_src = NULL;
	}
	if (j->ctl_open) {
		thoth_control_close(&j->ctl);
		j->ctl_open = false;
	}
	pthread_mutex_lock(&j->mu);
	j->pm_leased = false;
	j->pm_awake = false;
	pthread_mutex_unlock(&j->mu);
}

static void pm_on_readable(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	cx_journal_t *j = arg;
	/* Read once what is there and hand out every whole message: one
	 * read per readable event, so the loop never spins on this fd. */
	int r = thoth_stream_fill(&j->ctl.sock.reader, fd);
	const uint8_t *msg;
	size_t len;
	while (r >= 0 && (r = thoth_stream_next(&j->ctl.sock.reader, &msg, &len)) > 0) {
		pm_on_event(j, msg, len);
		thoth_stream_consume(&j->ctl.sock.reader);
	}
	if (r < 0 || !j->pm_leased) {
		pm_close(j);
		pm_schedule_retry(j, r < 0 ? "thothd went away" : "lease lost (the disk's driver died)", r < 0);
	}
	evaluate(j);
}

/* pm_note is read by cx_journal_stats from other threads: set under mu. */
static void pm_note_set(cx_journal_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pm_note_set(cx_journal_t *j, const char *fmt, ...)
{
	char buf[sizeof j->pm_note];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&j->mu);
	memcpy(j->pm_note, buf, sizeof buf);
	pthread_mutex_unlock(&j->mu);
}

/* Take the opportunistic lease: 0, or why not in j->pm_note. */
static int pm_connect(cx_journal_t *j)
{
	pthread_mutex_lock(&j->mu);
	j->pm_tries++;
	pthread_mutex_unlock(&j->mu);
	int r = thoth_control_connect(&j->ctl, j->has_runtime_dir ? j->runtime_dir : NULL, 500);
	/* Away (retried within a second of its return) only when nothing
	 * listens at its socket, or it closed on us; a thothd that is there
	 * and refuses us (BUSY, PERM, BAD_VERSION, ...) is asked again backing
	 * off to 30 s, not every second forever. */
	j->pm_reached = !(r == THOTH_E_NOT_RUNNING || r == THOTH_E_PEER_GONE || r == THOTH_E_CLOSED);
	if (r) {
		if (j->pm_reached)
			pm_note_set(j, "thothd refused us: %s (%s)", thoth_strerror(r), j->ctl.why);
		else
			pm_note_set(j, "no thothd: %s", thoth_strerror(r));
		return r;
	}
	j->ctl_open = true;
	j->ctl.sock.on_event = pm_on_event;
	j->ctl.sock.event_arg = j;
	uint64_t scratch[8192];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t sreq = { 0 };
	thoth_pm_PowerBroker_state_resp_t sresp;
	r = thoth_pm_PowerBroker_state(&j->ctl.client, &sreq, &sresp, &arena);
	if (r) {
		pm_note_set(j, "PowerBroker.state: %s", thoth_strerror(r));
		return r;
	}
	int64_t top = -1;
	for (uint32_t k = 0; k < sresp.elements.count; k++) {
		const thoth_pm_ElementState_t *e = &sresp.elements.items[k];
		if (e->name.len == strlen(j->pm_element) && !memcmp(e->name.ptr, j->pm_element, e->name.len) &&
		    !e->dead)
			top = (int64_t)e->levels.count - 1;
	}
	if (top < 1) {
		pm_note_set(j, "no power element \"%s\" declared", j->pm_element);
		return THOTH_E_NOT_FOUND;
	}
	thoth_pm_PowerBroker_lease_req_t lreq = {
		.element = thoth_str(j->pm_element), .level = (uint32_t)top,
		.kind = THOTH_PM_LEASE_KIND_OPPORTUNISTIC,
	};
	thoth_pm_PowerBroker_lease_resp_t lresp;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	r = thoth_pm_PowerBroker_lease(&j->ctl.client, &lreq, &lresp, &arena);
	if (r) {
		pm_note_set(j, "PowerBroker.lease: %.30s%s%.30s", thoth_strerror(r),
			 r == THOTH_E_REMOTE ? ": " : "", r == THOTH_E_REMOTE ? j->ctl.client.remote_message : "");
		return r;
	}
	pthread_mutex_lock(&j->mu);
	j->pm_lease = lresp.lease;
	j->pm_leased = true;
	pthread_mutex_unlock(&j->mu);
	pm_note_set(j, "%s", "");
	pm_set_awake(j, lresp.status == THOTH_PM_LEASE_STATUS_SATISFIED);
	r = thoth_loop_add_fd(j->loop, j->ctl.sock.fd, THOTH_LOOP_READ, pm_on_readable, j, &j->pm_src);
	if (r)
		pm_note_set(j, "cannot watch the control socket");
	return r;
}

static void pm_on_retry(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	cx_journal_t *j = arg;
	j->pm_retry = NULL;
	int r = pm_connect(j);
	if (r) {
		pm_close(j);
		pm_schedule_retry(j, NULL, !j->pm_reached);
	} else {
		j->pm_backoff_ns = 0;
		j->pm_away = false;
	}
	evaluate(j);
}

/*
 * Try again later.  AWAY (thothd unreachable, or its connection lost):
 * every 20 ms doubling to 1 s, as pm-sim-driver asks for a thothd that
 * went away (a failed connect to a missing socket costs thothd nothing),
 * so the lease is back within about a second of thothd's return; it
 * backed off to 30 s before, and a thothd restarted after a few seconds
 * away waited that long for codex (loose38).  Otherwise (thothd answers:
 * no such element yet, a lease refused or lost): 0.5 s doubling to 30 s,
 * no polling of a thothd that holds no disk -- except just after thothd
 * came back, when the drivers are declaring again: 20 ms doubling.
 */
static void pm_schedule_retry(cx_journal_t *j, const char *why, bool away)
{
	if (why)
		pm_note_set(j, "%s", why);
	if (away) {
		j->pm_backoff_ns = !j->pm_away || !j->pm_backoff_ns ? 20000000ull : j->pm_backoff_ns * 2;
		if (j->pm_backoff_ns > 1000000000ull)
			j->pm_backoff_ns = 1000000000ull;
	} else if (j->pm_away) {
		j->pm_backoff_ns = 20000000ull;         /* thothd is back: its drivers come soon */
	} else {
		j->pm_backoff_ns = j->pm_backoff_ns ? j->pm_backoff_ns * 2 : 500000000ull;
		if (j->pm_backoff_ns > 30000000000ull)
			j->pm_backoff_ns = 30000000000ull;
	}
	j->pm_away = away;
	if (!j->pm_retry && !j->shutdown)
		thoth_loop_add_timer_in(j->loop, j->pm_backoff_ns, j->pm_backoff_ns / 8, pm_on_retry, j,
					&j->pm_retry);
}

/* ---- the committer thread ------------------------------------------------ */

static void *committer(void *arg)
{
	cx_journal_t *j = arg;
	if (j->pm_element[0] && pm_connect(j)) {
		pm_close(j);
		pm_schedule_retry(j, NULL, !j->pm_reached);
	}
	thoth_loop_run(j->loop);
	pm_close(j);
	if (j->pm_retry)
		thoth_timer_cancel(j->loop, j->pm_retry);
	return NULL;
}

int cx_journal_open(const cx_journal_config_t *cfg, cx_journal_t **out, cx_recovery_t *rep,
		    char *why, size_t why_len)
{
	if (!cfg || !cfg->data_dir || cfg->gc_window_us > CX_GC_WINDOW_MAX_US ||
	    (cfg->pm_element && strlen(cfg->pm_element) >= 64)) {
		snprintf(why, why_len, "bad journal configuration (data dir, group window <= 2000 us, element name)");
		return THOTH_E_INVAL;
	}
	cx_journal_t *j = calloc(1, sizeof *j);
	if (!j)
		return THOTH_E_NOMEM;
	j->kick_fd = -1;
	pthread_mutex_init(&j->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cv, &ca);
	pthread_condattr_destroy(&ca);
	cx_wb_init(&j->wb);
	j->gc_window_ns = (cfg->gc_window_us ? cfg->gc_window_us : 1000u) * 1000ull;
	j->on_failure = cfg->on_failure;
	j->on_failure_arg = cfg->on_failure_arg;
	if (cfg->pm_element)
		snprintf(j->pm_element, sizeof j->pm_element, "%s", cfg->pm_element);
	if (cfg->runtime_dir) {
		snprintf(j->runtime_dir, sizeof j->runtime_dir, "%s", cfg->runtime_dir);
		j->has_runtime_dir = true;
	}
	if (!j->pm_element[0])
		snprintf(j->pm_note, sizeof j->pm_note, "not asked to (no --pm-element)");
	cx_store_config_t scfg = { .dir = cfg->data_dir, .segment_bytes = cfg->segment_bytes,
				   .retain_bytes = cfg->retain_bytes,
				   .cut_budget_bytes = cfg->cut_budget_bytes };
	int r = cx_store_open(&scfg, &j->st, rep, why, why_len);
	if (r)
		goto fail;
	j->durable_lsn = cx_store_last_lsn(j->st);     /* recovery synced it all */
	thoth_loop_options_t lo = { .backend = cfg->epoll ? THOTH_LOOP_BACKEND_EPOLL : THOTH_LOOP_BACKEND_URING };
	if (thoth_loop_new_with(&lo, &j->loop)) {
		/* No io_uring here (kernel, seccomp): the same calls, done inline. */
		lo.backend = THOTH_LOOP_BACKEND_EPOLL;
		if ((r = thoth_loop_new_with(&lo, &j->loop))) {
			snprintf(why, why_len, "cannot create the committer's loop: %s", thoth_strerror(r));
			goto fail;
		}
	}
	j->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->kick_fd < 0 || thoth_loop_add_fd(j->loop, j->kick_fd, THOTH_LOOP_READ, on_kick, j, NULL)) {
		snprintf(why, why_len, "cannot create the committer's eventfd: %s", strerror(errno));
		r = THOTH_E_IO;
		goto fail;
	}
	/* The committer's loop belongs to its thread from here on (io_uring's
	 * single issuer: the ring is enabled by the first wait there). */
	if ((r = pthread_create(&j->thr, NULL, committer, j))) {
		snprintf(why, why_len, "cannot start the committer: %s", strerror(r));
		r = THOTH_E_IO;
		goto fail;
	}
	*out = j;
	return 0;
fail:
	if (j->loop)
		thoth_loop_free(j->loop);
	if (j->kick_fd >= 0)
		close(j->kick_fd);
	cx_store_close(j->st);
	cx_wb_free(&j->wb);
	free(j);
	return r;
}

void cx_journal_close(cx_journal_t *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->mu);
	j->shutdown = true;
	pthread_mutex_unlock(&j->mu);
	kick(j);
	pthread_join(j->thr, NULL);
	if (j->gc_timer)
		thoth_timer_cancel(j->loop, j->gc_timer);
	if (j->budget_timer)
		thoth_timer_cancel(j->loop, j->budget_timer);
	thoth_loop_free(j->loop);
	close(j->kick_fd);
	cx_store_close(j->st);
	cx_wb_free(&j->wb);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

/* Wait (mu held) until LSN is durable or the journal failed. */
static int wait_durable(cx_journal_t *j, uint64_t lsn)
{
	if (j->sync_want_lsn < lsn)
		j->sync_want_lsn = lsn;
	if (!j->first_wait_ns)
		j->first_wait_ns = mono_ns();
	j->sync_waiters++;
	pthread_mutex_unlock(&j->mu);
	kick(j);
	pthread_mutex_lock(&j->mu);
	while (j->durable_lsn < lsn && !j->failed && !j->stopped)
		pthread_cond_wait(&j->cv, &j->mu);
	j->sync_waiters--;
	return j->durable_lsn >= lsn ? 0 : j->failed ? j->failed : THOTH_E_CLOSED;
}

int cx_journal_create(cx_journal_t *j, const char *name, size_t len, uint32_t budget_ms)
{
	if (budget_ms > CX_BUDGET_MAX_MS)
		return THOTH_E_INVAL;
	pthread_mutex_lock(&j->mu);
	uint32_t id;
	int r = j->failed ? j->failed : j->shutdown ? THOTH_E_CLOSED :
		cx_store_stream_create(j->st, name, len, budget_ms ? budget_ms : CX_BUDGET_DEFAULT_MS,
				       real_ns(), &id);
	if (!r) {
		j->create_ev = true;
		r = wait_durable(j, cx_store_last_lsn(j->st));
	}
	bool stopped = r == THOTH_E_IO && journal_stop(j, r, NULL);
	pthread_mutex_unlock(&j->mu);
	tell_failure(j, stopped);
	return r;
}

int cx_journal_append(cx_journal_t *j, const char *name, size_t len, const cx_iov_t *recs, size_t n,
		      cx_dur_t dur, uint32_t budget_ms, uint64_t *first_seq)
{
	if ((dur != CX_DUR_SYNC && dur != CX_DUR_DEFERRED) || budget_ms > CX_BUDGET_MAX_MS || !n)
		return THOTH_E_INVAL;
	size_t bytes = 0;
	for (size_t k = 0; k < n; k++) {
		if (recs[k].len > CX_REC_MAX)
			return THOTH_E_TOO_LARGE;
		bytes += recs[k].len;
	}
	pthread_mutex_lock(&j->mu);
	if (j->failed || j->shutdown) {
		int r = j->failed ? j->failed : THOTH_E_CLOSED;
		pthread_mutex_unlock(&j->mu);
		return r;
	}
	uint32_t id;
	int r = cx_store_stream_find(j->st, name, len, &id);
	if (!r) {
		j->appending++;
		r = cx_store_append(j->st, id, recs, n, dur == CX_DUR_SYNC ? CX_REC_F_SYNC : 0, real_ns(),
				    first_seq);
		j->appending--;
	}
	if (r) {
		bool stopped = r == THOTH_E_IO && journal_stop(j, r, NULL);
		pthread_mutex_unlock(&j->mu);
		tell_failure(j, stopped);
		return r;
	}
	uint64_t lsn = cx_store_last_lsn(j->st);
	j->s.records += n;
	j->s.bytes += bytes;
	if (dur == CX_DUR_SYNC) {
		j->s.appends_sync++;
		r = wait_durable(j, lsn);
		pthread_mutex_unlock(&j->mu);
		return r;
	}
	j->s.appends_deferred++;
	uint32_t b = budget_ms ? budget_ms : cx_store_stream_budget_ms(j->st, id);
	uint64_t due_before, dl;
	cx_wb_window(&j->wb, &due_before, &dl);
	r = cx_wb_add(&j->wb, lsn, mono_ns(), (uint64_t)b * 1000000ull, bytes, n);
	uint64_t due_after;
	cx_wb_window(&j->wb, &due_after, &dl);
	/* The committer re-arms its budget timer when the earliest due moved,
	 * and flushes at once while the disk is awake. */
	bool need = due_after != due_before || j->pm_awake;
	pthread_mutex_unlock(&j->mu);
	if (need)
		kick(j);
	return r;
}

typedef struct rd {
	cx_loc_t loc;
} rd_t;

int cx_journal_read(cx_journal_t *j, const char *name, size_t len, uint64_t from_seq, uint64_t to_seq,
		    size_t max_records, size_t max_bytes, cx_read_fn fn, void *arg, uint64_t *next_seq)
{
	if (!max_records)
		max_records = 1;
	if (max_records > 4096)
		max_records = 4096;
	if (from_seq == 0)
		from_seq = 1;
	cx_loc_t *locs = malloc(max_records * sizeof *locs);
	uint8_t *buf = malloc(cx_rec_size(CX_REC_MAX));
	if (!locs || !buf) {
		free(locs);
		free(buf);
		return THOTH_E_NOMEM;
	}
	size_t n = 0, bytes = 0;
	pthread_mutex_lock(&j->mu);
	uint32_t id;
	int r = cx_store_stream_find(j->st, name, len, &id);
	bool counted = !r;
	if (!r) {
		uint64_t first = cx_store_first_seq(j->st, id);
		if (from_seq < first)
			from_seq = first;       /* retired by retention: start at the oldest kept */
		for (uint64_t seq = from_seq; n < max_records && (!to_seq || seq <= to_seq); seq++) {
			int lr = cx_store_locate(j->st, id, seq, &locs[n]);
			if (lr) {
				if (lr != THOTH_E_NOT_FOUND && !n)
					r = lr;         /* a segment could not be reopened: said, not an empty answer */
				break;
			}
			if (n && bytes + locs[n].len > max_bytes)
				break;
			bytes += locs[n].len;
			n++;
		}
		j->s.reads++;
		j->readers++;
	}
	pthread_mutex_unlock(&j->mu);
	*next_seq = from_seq;
	bool missed = false;
	for (size_t k = 0; !r && k < n; k++) {
		cx_rec_t rec;
		bool miss;
		r = cx_store_read_at(&locs[k], buf, &rec, &miss);
		if (r) {
			/* A record damaged on the disk (or a failed read) is that
			 * record's problem, not the journal's: the answer ends
			 * before it (next_seq names it), and a read that starts
			 * at it is THOTH_E_CORRUPT, this thread's last error
			 * saying why.  It was reported as the journal having
			 * stopped, and the good records before it went unread.
			 * A failed pread (THOTH_E_IO) stays THOTH_E_IO: the
			 * record may be good, and Unreadable's advice (read
			 * from the next one) would skip it. */
			r = k ? 0 : r;
			break;
		}
		missed |= miss;
		fn(arg, &rec);
		*next_seq = rec.seq + 1;
	}
	pthread_mutex_lock(&j->mu);
	if (counted && !--j->readers)
		cx_store_release_retired(j->st);        /* reopened segments' descriptors retired meanwhile */
	if (missed) {
		j->s.read_misses++;
		j->readmiss_ev = true;
	}
	pthread_mutex_unlock(&j->mu);
	if (missed)
		kick(j);
	free(locs);
	free(buf);
	return r;
}

int cx_journal_time_range(cx_journal_t *j, const char *name, size_t len, uint64_t from_ns,
			  uint64_t to_ns, uint64_t *first_seq, uint64_t *end_seq)
{
	pthread_mutex_lock(&j->mu);
	uint32_t id;
	int r = cx_store_stream_find(j->st, name, len, &id);
	if (!r) {
		*first_seq = cx_store_seq_at_time(j->st, id, from_ns);
		*end_seq = to_ns ? cx_store_seq_at_time(j->st, id, to_ns) : cx_store_next_seq(j->st, id);
	}
	pthread_mutex_unlock(&j->mu);
	return r;
}

void cx_journal_note_awake(cx_journal_t *j, cx_wb_reason_t why)
{
	pthread_mutex_lock(&j->mu);
	if (why == CX_WB_READ_MISS)
		j->readmiss_ev = true;
	else
		j->awake_ev = true;
	pthread_mutex_unlock(&j->mu);
	kick(j);
}

void cx_journal_stats(cx_journal_t *j, cx_journal_stats_t *out, cx_stream_info_t *streams,
		      size_t cap, size_t *n_streams)
{
	pthread_mutex_lock(&j->mu);
	*out = j->s;
	out->pending_bytes = j->wb.bytes;
	out->pending_records = j->wb.records;
	out->oldest_pending_age_ns = j->wb.n ? mono_ns() - j->wb.oldest_ns : 0;
	out->durable_lsn = j->durable_lsn;
	out->last_lsn = cx_store_last_lsn(j->st);
	out->segments = cx_store_segments(j->st);
	out->segment_bytes_now = cx_store_bytes(j->st);
	cx_store_compact_stats(j->st, &out->compact);
	out->backend = thoth_loop_backend(j->loop);
	out->pm_leased = j->pm_leased;
	out->pm_awake = j->pm_awake;
	snprintf(out->pm_note, sizeof out->pm_note, "%s", j->pm_note);
	out->pm_tries = j->pm_tries;
	out->failed = j->failed;
	snprintf(out->failure, sizeof out->failure, "%s", j->failure);
	size_t n = cx_store_streams(j->st, streams, cap);
	if (n_streams)
		*n_streams = n;
	pthread_mutex_unlock(&j->mu);
}
