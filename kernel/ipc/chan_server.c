/*
 * chan_server.c - the service side of channels on a thoth_loop: listening
 * with the declared socket policy, answering handshakes, serving every
 * channel in bounded turns, and holding out against hostile clients (see
 * below).  The rings are in chan_shm.c; docs/IPC.md describes the whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chan_handshake.h"
#include "chan_shm.h"
#include "placement.h"
#include "procstat.h"
#include "chan_dispatch.h"
#include "serve_slots.h"
#include "fdpass.h"
#include "log_internal.h"
#include "numa.h"
#include "thoth/caller.h"
#include "thoth/contract.h"
#include "thoth/stream.h"

/*
 * What a hostile client cannot do to a service (docs/IPC.md, "Hostile
 * peers"; docs/RELIABILITY.md, "Channels"):
 *  - block it: the service only ever writes to its own end of each client's
 *    socket, with MSG_DONTWAIT, and receives no descriptors from clients;
 *  - starve other clients: each channel is served at most CONN_BUDGET
 *    messages per turn; channels with more waiting go to the back of the
 *    ready queue, which is served in rounds between polls of the loop;
 *  - hold its descriptors: a handshake must finish within
 *    handshake_timeout_ms, at most max_pending may be in progress, and at
 *    the process's fd limit waiting connections are accepted and closed
 *    with a reserve descriptor while listening pauses (no busy loop).
 */

enum {
	CONN_BUDGET = 16,               /* messages served per channel per turn */
	ACCEPT_BATCH = 64,              /* connections accepted per loop wake-up */
	LOG_BURST = 10,                 /* log lines per second, then counted only */
	FD_LIMIT_PAUSE_MS = 100,        /* listening pauses this long at the fd limit */
	SHED_MAX = 256,                 /* connections shed per fd-limit episode */
	PEEK_CONNS = 16,                /* channels one look at the rings visits at most (peek_pick) */
};

typedef struct conn conn_t;

/* A FIFO of connections: pending handshakes (in deadline order, since every
 * deadline is accept time + the same timeout) or channels ready to serve.
 * A connection is in at most one of them. */
typedef struct conn_queue {
	conn_t *head, *tail;
	uint32_t n;
} conn_queue_t;

struct conn {
	conn_t *prev, *next;            /* every connection of the service */
	conn_t *q_prev, *q_next;        /* in s->pending (handshaking) or s->ready (open) */
	conn_queue_t *queue;            /* which, or NULL */
	thoth_chan_server_t *srv;
	int sock;
	thoth_source_t *sock_src;
	bool open;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t hs_deadline;           /* handshake must be complete by then */
	uint8_t *hs;                    /* handshake bytes so far (until open) */
	size_t hs_len;
	thoth__chan_fds_t hs_fds;       /* brought by the handshake (it may bring none) */
	chan_end_t end;
	bool mapped;
	uint64_t features;
	uint8_t *pending_out;           /* buffer handed to dispatch, not yet sent */
	uint64_t slept_at;              /* when it last went back to the loop to wait, or: */
#define SLEPT_UNTIMED 1                 /* it did, and the sleep is not timed (chan_nap_at's quiet) */
	bool waits_slot;                /* SERVE_IDLE armed CHAN_WAIT_SLOT (else CHAN_WAIT_RECV) */
	bool bell_edge;                 /* socket watched edge-triggered: doorbells read back every
					 * CHAN_BELL_DRAIN_EVERY arms (bell_skip) */
	bool bell_level;                /* level triggered for good: no promise kept, the end, or no edge mode */
	bool peer_gone;                 /* conn_drain took the client as gone: ours, not the shared closed word */
	uint64_t pl_calls, pl_wakes;    /* placement window: calls, doorbell wake-ups */
	uint64_t pl_busy0;              /* the client's CPU ns at the window's start (0 = none) */
	pid_t pl_thread;                /* ... of this thread of the client (its calling one, or the main) */
	thoth_timer_t *mod_timer;       /* moderation: we wake by ourselves then (PM-3) */
	uint64_t serial;                /* thoth_chan_server_caller's channel: 1.., never reused */
	uint32_t peek_look;             /* the look that last picked it (peek_pick: no channel twice) */
};

struct thoth_chan_server {
	thoth_loop_t *loop;
	thoth_chan_server_config_t cfg;
	char *path;
	int lfd;
	thoth_source_t *lsrc;
	int reserve_fd;                 /* spare fd, closed to accept-and-close at the fd limit */
	int kick_fd;                    /* private eventfd: readable while s->ready is not empty */
	thoth_source_t *kick_src;
	bool kicked;
	conn_t *conns;
	conn_queue_t pending, ready;
	conn_t *disp;                   /* the channel whose request the loop thread dispatches, or NULL */
	conn_t *peek_at;                /* where the next look's round-robin part begins (NULL: s->conns) */
	uint32_t nconns;                /* in s->conns (handshaking ones included) */
	uint32_t peek_looks;            /* looks so far (peek_pick) */
	uint32_t nopen;
	thoth_timer_t *hs_timer;        /* armed only while a handshake is pending */
	thoth_timer_t *pause_timer;     /* armed only while listening pauses */
	uid_t uid;
	thoth_chan_limits_t defaults;
	/* Counters: st points at st_own, or at this server's slot in the
	 * process's trace buffer when thoth_serve / thoth_serve_per_cpu could
	 * claim one (serve_slots.h: thothd folds them from there). */
	thoth_chan_server_stats_t st_own;
	thoth_chan_server_stats_t *st;
	uint64_t *arena_buf;
	size_t arena_cap;
	uint64_t log_window;            /* rate limit: start of the current second */
	uint32_t log_lines, log_dropped;
	/* Placement (SCHED-4): one window of observations at a time, judged
	 * by the first call after it ends (no timer: an idle service never
	 * wakes for it). */
	bool pl_on, pl_colocated;
	int pl_cpu;                     /* co-located: the one CPU we gave this thread */
	bool one_cpu;                   /* this thread may run on one CPU only (naps: serve_pinned) */
	uint64_t one_cpu_at;            /* when that was last read (coarse clock), 0 = never */
	uint64_t pl_start, pl_busy0, pl_last_move;
	double pl_cycle_before;
	/* This thread's own affinity, saved before a move and restored exactly
	 * by the undo (the user's taskset, a cpuset, CPUs offline: not "every
	 * online CPU"); and a scratch mask for reading the current one.  Both
	 * allocated at the first window judged, sized for the possible CPUs. */
	place_mask_t pl_saved, pl_now;
	bool pl_restore_logged;         /* a failed undo was logged (once; later tries are silent) */
	place_policy_t pl_pol;          /* the defaults, or THOTH_PLACEMENT_POLICY's (read once) */
	/* thoth_serve_per_cpu: the listening server routes each connection to
	 * the worker on its client's CPU (all of them, itself included). */
	struct worker *workers;
	unsigned n_workers;
	const place_cpumap_t *cpumap;   /* "nearest" by topology (placement.h); NULL: by number */
	struct place_apart *pl_apart;   /* rule 6's state, made when a pair first saturates a CPU */
};

/*
 * Counters (thoth_chan_server_stats_t): each server's are written only by
 * its loop thread -- with thoth_serve_per_cpu, every worker thread has its
 * own server, so its own counters -- and read by any thread:
 * thoth_chan_server_stats() folds a per-CPU service's workers on read.
 * One writer, so a plain load and a relaxed store (no read-modify-write,
 * no shared line between workers, nothing lost when a worker's thread is
 * moved between CPUs); the reader's relaxed loads are never torn.
 */
#define ST_ADD(srv, field, n) \
	__atomic_store_n(&(srv)->st->field, (srv)->st->field + (n), __ATOMIC_RELAXED)

/* The channel whose request this thread is dispatching (NULL outside a
 * dispatch): what thoth_chan_server_caller() answers from.  Per thread,
 * so a per-CPU service's workers each see their own. */
static _Thread_local conn_t *dispatching;
static uint64_t conn_serials;   /* process-wide: channel ids never repeat */

struct worker {
	int cpu;
	int pipe_rd, pipe_wr;
	thoth_chan_server_t *srv;
	thoth_loop_t *loop;
	pthread_t thread;
	int status;
	void *slot;                     /* its counters' slot (serve_slots.h), or NULL */
	/* Start-up hand-shake with the starter; destroyed only after the
	 * worker was joined (thoth_serve_per_cpu), never while the worker may
	 * still be inside pthread_barrier_wait. */
	pthread_barrier_t ready;
	bool ready_init;
	thoth_numa_stack_t stack;       /* on its CPU's node (start_on_node); freed after the join */
};

static void q_push(conn_queue_t *q, conn_t *c)
{
	c->queue = q;
	c->q_next = NULL;
	c->q_prev = q->tail;
	if (q->tail)
		q->tail->q_next = c;
	else
		q->head = c;
	q->tail = c;
	q->n++;
}

static void q_remove(conn_t *c)
{
	conn_queue_t *q = c->queue;
	if (!q)
		return;
	if (c->q_prev)
		c->q_prev->q_next = c->q_next;
	else
		q->head = c->q_next;
	if (c->q_next)
		c->q_next->q_prev = c->q_prev;
	else
		q->tail = c->q_prev;
	c->q_prev = c->q_next = NULL;
	c->queue = NULL;
	q->n--;
}

/* Log through cfg.log, at most LOG_BURST lines a second: a peer that gets
 * itself refused in a loop cannot fill the disk.  What was dropped is
 * counted in the next line that gets through. */
static void srv_log(thoth_chan_server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_log(thoth_chan_server_t *s, const char *fmt, ...)
{
	if (!s->cfg.log)
		return;
	char line[400];
	uint64_t now = thoth_clock_now();
	if (now - s->log_window >= 1000000000u) {
		if (s->log_dropped) {
			snprintf(line, sizeof line, "%u log lines like the ones above were dropped in one second",
				 s->log_dropped);
			s->cfg.log(s->cfg.log_arg, line);
		}
		s->log_window = now;
		s->log_lines = 0;
		s->log_dropped = 0;
	}
	if (s->log_lines >= LOG_BURST) {
		s->log_dropped++;
		ST_ADD(s, log_suppressed, 1);
		return;
	}
	s->log_lines++;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_arg, line);
}

/* The handshake timer follows the pending queue: armed while it holds a
 * connection, gone when it is empty (an idle service has no timer). */
static void hs_timer_fire(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static uint64_t hs_slack(const thoth_chan_server_t *s)
{
	return (uint64_t)s->cfg.handshake_timeout_ms * 1000000u / 8;
}

static void pending_changed(thoth_chan_server_t *s)
{
	if (!s->pending.head) {
		if (s->hs_timer) {
			thoth_timer_cancel(s->loop, s->hs_timer);
			s->hs_timer = NULL;
		}
	} else if (!s->hs_timer) {
		/* An earlier deadline than the head's is harmless: the timer
		 * fires, finds nothing due and moves to the head's. */
		if (thoth_loop_add_timer(s->loop, s->pending.head->hs_deadline, hs_slack(s), hs_timer_fire, s,
					 &s->hs_timer))
			s->hs_timer = NULL;
	}
}

static void conn_close(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	if (s->peek_at == c)
		s->peek_at = c->next;   /* NULL: the next look starts at the head */
	s->nconns--;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bool was_pending = c->queue == &s->pending;
	q_remove(c);
	if (was_pending)
		pending_changed(s);
	if (c->sock_src)
		thoth_loop_remove_fd(s->loop, c->sock_src);
	if (c->mod_timer)
		thoth_timer_cancel(s->loop, c->mod_timer);
	if (c->mapped) {
		chan_end_close(&c->end);
		chan_shm_unmap(c->end.base, c->end.lay.size);
	}
	if (c->open) {
		s->nopen--;
		ST_ADD(s, clients, -1);
	}
	chan_end_fini(&c->end);
	for (int i = 0; i < c->hs_fds.kept; i++)
		close(c->hs_fds.fd[i]);
	if (c->sock >= 0)
		close(c->sock);
	free(c->hs);
	free(c);
}

static void hs_timer_fire(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_chan_server_t *s = arg;
	uint64_t now = thoth_clock_now();
	while (s->pending.head && s->pending.head->hs_deadline <= now) {
		conn_t *c = s->pending.head;
		srv_log(s, "client pid %d did not complete its channel handshake within %u ms: closing its connection",
			(int)c->pid, s->cfg.handshake_timeout_ms);
		ST_ADD(s, handshake_dropped, 1);
		conn_close(c);          /* cancels the timer when the queue empties */
	}
	if (s->pending.head && s->hs_timer)
		thoth_timer_rearm(loop, s->hs_timer, s->pending.head->hs_deadline, hs_slack(s));
}

THOTH_HOT_SERVE static int conn_get_out(void *ctx, size_t len, uint8_t **buf)
{
	conn_t *c = ctx;
	if (c->pending_out) {
		chan_discard(&c->end, c->pending_out);
		c->pending_out = NULL;
	}
	int r = chan_try_alloc_fast(&c->end, len, buf);
	if (!r)
		c->pending_out = *buf;
	return r;
}

enum serve_result { SERVE_IDLE, SERVE_MORE, SERVE_CLOSED };

static void conn_turn(conn_t *c);

/* Moderation (PM-3): the channel sleeps with a deadline by which it wakes
 * by itself (the client may leave up to N requests unannounced until
 * then), or without one (0: the client rings every request). */
static void mod_timer_fire(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	conn_t *c = arg;
	thoth_timer_cancel(loop, timer);
	c->mod_timer = NULL;
	if (c->queue)
		return;                 /* awake anyway: its turn comes */
	ST_ADD(c->srv, mod_wakeups, 1);
	ST_ADD(c->srv, mod_timer_wakeups, 1);
	chan_mod_woke(&c->end, true);
	conn_turn(c);
}

static void mod_timer_set(conn_t *c, uint64_t wake_by)
{
	thoth_chan_server_t *s = c->srv;
	if (!wake_by) {
		if (c->mod_timer)
			thoth_timer_cancel(s->loop, c->mod_timer);
		c->mod_timer = NULL;
		return;
	}
	uint64_t slack = (uint64_t)c->end.st.mod_us * 1000u / 4;
	if (c->mod_timer && !thoth_timer_rearm(s->loop, c->mod_timer, wake_by, slack))
		return;
	if (c->mod_timer)
		thoth_timer_cancel(s->loop, c->mod_timer);
	if (thoth_loop_add_timer(s->loop, wake_by, slack, mod_timer_fire, c, &c->mod_timer))
		c->mod_timer = NULL;    /* the client's own cap makes it ring us */
}

/*
 * Serve at most BUDGET of what the client has queued.  SERVE_IDLE: the
 * rings say wait, and the waiting flags are set so the client rings our
 * socket; SERVE_MORE: the budget is spent with requests still waiting
 * (flags clear: the client does not ring while we are awake, the ready
 * queue brings us back); SERVE_CLOSED: the channel is gone.
 */
/* ---- placement: the serving thread follows its client (SCHED-4) ------------------ */

enum { PLACE_WINDOW_MS = 1000 };

/* Placement's rule 6 (apart: a pair that saturates the one CPU the kernel
 * keeps it on is split when another CPU is idle), made for a server
 * whose pair first saturates a CPU: how idle each CPU was over the
 * window needs /proc/stat read at its start and end, which no other
 * server pays for. */
typedef struct place_apart {
	bool apart;                     /* the service was moved apart by rule 6 (to s->pl_cpu) */
	bool want_stat;                 /* read /proc/stat at the next window's start */
	bool map_tried;
	unsigned undos;                 /* rule 6's moves undone (its dwell doubles each time) */
	uint64_t stat_at;               /* the window start t0 was read at (0: none) */
	place_cpu_times_t t0, t1;
	place_cpumap_t *map;            /* "nearest" by topology (sysfs); NULL: by number */
	place_cpu_idle_t *idle;         /* each CPU's idle share over the window: as many as /proc/stat */
	unsigned idle_cap;              /* lists (grown once per machine size, place_cpu_idle_all) */
} place_apart_t;

/* The thread of the client that calls (its presence word's tid: hostile,
 * checked by place_thread_cpu_ns against the client's own threads; zero
 * from an older client: its main thread). */
static uint32_t client_thread(const conn_t *c)
{
	return atomic_load_explicit(&c->end.ctl->presence[CHAN_CLIENT].tid, memory_order_relaxed);
}

static void place_window_start(thoth_chan_server_t *s, uint64_t now)
{
	s->pl_start = now;
	s->pl_busy0 = place_thread_cpu_ns(getpid(), (uint32_t)gettid(), NULL);
	for (conn_t *c = s->conns; c; c = c->next) {
		c->pl_calls = c->pl_wakes = 0;
		c->pl_busy0 = c->open ? place_thread_cpu_ns(c->pid, client_thread(c), &c->pl_thread) : 0;
	}
	place_apart_t *ap = s->pl_apart;
	if (ap && ap->want_stat) {
		ap->want_stat = false;
		ap->stat_at = place_cpu_times_read(&ap->t0, NULL) == 0 ? now : 0;
	}
}

static void place_log(void *ctx, const char *line)
{
	srv_log(ctx, "%s", line);
}

/*
 * The end of a window: one channel (one client) kept this thread busy, so
 * the thread may follow it (place_decide has the rules).  With several
 * active clients the thread cannot follow all of them: it stays (the
 * thread-per-core server is the answer there).
 */
static void place_eval(thoth_chan_server_t *s, uint64_t now)
{
	uint64_t window = now - s->pl_start;
	conn_t *one = NULL;
	unsigned active = 0;
	for (conn_t *c = s->conns; c; c = c->next)
		if (c->open && c->pl_calls) {
			one = c;
			active++;
		}
	if (active != 1 || !one->pl_busy0 || !s->pl_busy0)
		return;
	/* The client's CPU time over the window is one thread's: the one read
	 * at its start.  Another thread calling now, or that one gone: this
	 * window says nothing about the caller (no judgment). */
	pid_t thread;
	uint64_t busy = place_thread_cpu_ns(getpid(), (uint32_t)gettid(), NULL);
	uint64_t cbusy = place_thread_cpu_ns(one->pid, client_thread(one), &thread);
	if (!cbusy || thread != one->pl_thread)
		return;
	/* Hostile input: the client writes its own presence word; a bogus CPU
	 * can only make us move to a CPU we are allowed on (place_apply
	 * fails otherwise), never crash. */
	uint32_t pw = atomic_load_explicit(&one->end.ctl->presence[CHAN_CLIENT].word, memory_order_relaxed);
	int ccpu = (int)(pw & CHAN_PRESENCE_CPU_MASK) - 1;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	/* Pinned by the user, now: a mask other than the one CPU we gave it
	 * (the user may pin the thread at any time, before or after a move). */
	bool user_pinned;
	place_apart_t *ap = s->pl_apart;
	place_mask_t *now_mask = &s->pl_now;
	bool have_now = place_mask_get(now_mask, 0) == 0;
	if (s->pl_colocated || (ap && ap->apart)) {
		user_pinned = !have_now || CPU_COUNT_S(now_mask->size, now_mask->set) != 1 || s->pl_cpu < 0 ||
			      (unsigned)s->pl_cpu >= now_mask->bits ||
			      !CPU_ISSET_S((unsigned)s->pl_cpu, now_mask->size, now_mask->set);
		if (user_pinned) {
			s->pl_colocated = false;        /* the user's now, not ours */
			if (ap)
				ap->apart = false;
		}
	} else {
		/* Our own mask, kept for the undo of a move made now. */
		user_pinned = !have_now || place_mask_pinned(now_mask);
	}
	/* Rule 6: how idle each CPU this thread may use was over the window
	 * (read only when the last window found the pair saturating one CPU). */
	unsigned nidle = 0;
	if (ap && ap->stat_at && ap->stat_at == s->pl_start && !user_pinned && have_now &&
	    place_cpu_times_read(&ap->t1, NULL) == 0)
		nidle = place_cpu_idle_all(&ap->t0, &ap->t1, now_mask, &ap->idle, &ap->idle_cap);
	if (ap)
		ap->stat_at = 0;
	place_obs_t o = {
		.client_cpu = ccpu < online ? ccpu : -1,
		.server_cpu = sched_getcpu(),
		.client_pinned = place_thread_pinned(one->pid) == 1,
		.server_pinned = user_pinned,
		.colocated = s->pl_colocated,
		.window_ns = window,
		.calls = one->pl_calls,
		.peer_wakeups = one->pl_wakes,
		.client_busy = busy && cbusy > one->pl_busy0 ? (double)(cbusy - one->pl_busy0) / (double)window : 0,
		.server_busy = busy > s->pl_busy0 ? (double)(busy - s->pl_busy0) / (double)window : 0,
		/* The client's cycle (think time + round trip) as the service
		 * sees it: it grows when sharing a CPU slows either side. */
		.rtt_ns = (double)window / (double)one->pl_calls,
		/* Co-located or apart: the cycle in the window before that move. */
		.rtt_before_ns = s->pl_colocated || (ap && ap->apart) ? s->pl_cycle_before : 0,
		.since_last_move_ns = s->pl_last_move ? now - s->pl_last_move : UINT64_MAX,
		.apart = ap && ap->apart,
		.apart_undos = ap ? ap->undos : 0,
		.cpus = nidle ? ap->idle : NULL,
		.ncpus = nidle,
		.map = ap ? ap->map : NULL,
	};
	const place_policy_t pol = s->pl_pol;
	place_decision_t d;
	place_decide(&pol, &o, &d);
	bool undo = d.action == PLACE_SPREAD;
	if (d.action != PLACE_STAY && !undo) {
		/* Leaving our own mask: keep it for the undo (a swap: no copy). */
		place_mask_t t = s->pl_saved;
		s->pl_saved = s->pl_now;
		s->pl_now = t;
	}
	/* An undo refused twice (place_apply fell back and that failed too)
	 * is retried each window, logged once. */
	place_log_fn log = undo && s->pl_restore_logged ? NULL : place_log;
	int moved = d.action == PLACE_STAY ? -1 : place_apply(0, &d, undo ? &s->pl_saved : NULL, log, s);
	if (undo)
		s->pl_restore_logged = moved != 0;
	if (moved == 0) {
		s->pl_last_move = now;
		s->pl_colocated = d.action == PLACE_COLOCATE;
		if (ap) {
			ap->apart = d.action == PLACE_APART;
			ap->undos += d.reason == PLACE_WHY_APART_SLOWER;
		}
		s->pl_cpu = d.cpu;
		s->pl_cycle_before = o.rtt_ns;
		ST_ADD(s, placement_moves, 1);
	}
	/* A pair saturating the one CPU the kernel keeps it on: read how idle
	 * the other CPUs are over the next window (rule 6 decides then). */
	if (d.action == PLACE_STAY && !user_pinned && !s->pl_colocated && !(ap && ap->apart) && o.client_cpu >= 0 &&
	    o.client_cpu == o.server_cpu && o.client_busy + o.server_busy > pol.spread_busy) {
		if (!ap)
			ap = s->pl_apart = calloc(1, sizeof *ap);
		if (ap && !ap->map_tried) {
			ap->map_tried = true;
			ap->map = malloc(sizeof *ap->map);
			if (ap->map && place_cpumap_load(ap->map, NULL)) {
				free(ap->map);
				ap->map = NULL;
			}
		}
		if (ap)
			ap->want_stat = true;
	}
}

/*
 * CLOCK_MONOTONIC_COARSE in ns (the last tick's time: a few ms behind, no
 * TSC read, ~10 ns against ~70-100 ns for CLOCK_MONOTONIC on this VM), for
 * what is judged in seconds: placement's windows and serve_pinned's
 * affinity check.  They asked the loop's now, which made every service
 * wake-up read the precise clock though nothing else in it needs one
 * (docs/SCHED.md, "Stop 34").  Only ever compared with itself.
 */
static uint64_t coarse_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts))
		return thoth_clock_now();
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Per call: the first starts a window, the first after a window's end
 * judges it and starts the next (one coarse clock read). */
static void place_call(thoth_chan_server_t *s)
{
	uint64_t now = coarse_now();
	if (!s->pl_start) {
		place_window_start(s, now);
	} else if (now - s->pl_start >= PLACE_WINDOW_MS * 1000000ull) {
		place_eval(s, now);
		place_window_start(s, now);
	}
}

/*
 * May this thread nap on a channel's futex (chan_nap)?  Only while it is
 * confined to one CPU (pinned by the user, by placement's COLOCATE move or
 * by thoth_serve_per_cpu).  Unpinned, a nap measured worse than the loop's
 * wait: with a busy process on the other CPU (bench_channel --matrix,
 * unpinned + hog, 64 B) 25-46 us against 19 us without naps, while pinned
 * to the client's CPU it is 1.10-1.19x -> 0.94-1.05x of a futex pair
 * (docs/SCHED.md).  Read with a system call at most once a second.
 */
static bool serve_pinned(thoth_chan_server_t *s)
{
	uint64_t now = coarse_now();
	if (!s->one_cpu_at || now - s->one_cpu_at >= 1000000000ull) {
		cpu_set_t set;
		s->one_cpu = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
		s->one_cpu_at = now ? now : 1;
	}
	return s->one_cpu;
}

/* Keep s->conns most recently served first: a look visits the channels
 * at its head (peek_pick), the active ones among many idle.  A few stores
 * per turn, on lines the server owns; none while a look walks every
 * channel anyway (PEEK_CONNS or fewer: the order is never read). */
static void conn_to_front(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	if (s->conns == c || s->nconns <= PEEK_CONNS)
		return;
	if (s->peek_at == c)
		s->peek_at = c->next;
	c->prev->next = c->next;        /* not the head: it has a prev */
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = s->conns;
	s->conns->prev = c;
	s->conns = c;
}

THOTH_HOT_SERVE static enum serve_result conn_serve(conn_t *c, unsigned *budget)
{
	thoth_chan_server_t *s = c->srv;
	chan_end_t *e = &c->end;
	conn_to_front(c);
	chan_disarm_both(e);            /* RECV and SLOT: one sched_getcpu, not two */
	ST_ADD(s, turns, 1);
	for (;;) {
		/* An orderly close (the socket's end is seen by on_sock; reading
		 * it here would cost a system call per message).  What the
		 * client queued before closing is still served: a oneway
		 * message sent just before close is not lost. */
		bool closing = c->peer_gone ||
			       atomic_load_explicit(&e->ctl->closed[CHAN_CLIENT], memory_order_acquire);
		if (closing && !chan_ready(e, CHAN_WAIT_RECV, 0)) {
			ST_ADD(s, peer_gone, 1);
			conn_close(c);
			return SERVE_CLOSED;
		}
		if (!*budget) {
			chan_rx_settle(e);      /* the client may sleep on a full ring until our next turn */
			return SERVE_MORE;
		}
		/* Spin for this client only while no other channel waits for
		 * its turn. */
		bool may_spin = s->ready.n == 0;
		/* A request is taken only when its response can be queued. */
		if (!chan_tx_ready(e)) {
			if (closing) {          /* nobody will read the answers */
				ST_ADD(s, peer_gone, 1);
				conn_close(c);
				return SERVE_CLOSED;
			}
			if ((may_spin && chan_spin(e, CHAN_WAIT_SLOT, 0)) || chan_arm(e, CHAN_WAIT_SLOT, 0))
				continue;
			c->waits_slot = true;   /* the client's doorbell now means "a slot is free" */
			return SERVE_IDLE;
		}
		thoth_msg_t msg;
		int r = chan_try_recv(e, &msg);
		/* A spin that sees the request takes it at once, not through
		 * the loop's top again: nothing checked there changed since
		 * (the budget is untouched, our ring's free slots only grow,
		 * and a closing client's queued request is served anyway), and
		 * this is the path the client waits on. */
		if (r == THOTH_E_AGAIN && may_spin && chan_spin(e, CHAN_WAIT_RECV, 0))
			r = chan_try_recv(e, &msg);
		if (r == THOTH_E_AGAIN) {
			/* The client needs our CPU: nap on the ring's futex
			 * rather than in the loop's wait (chan_nap). */
			uint64_t idle_at = 0;
			bool quiet = false;     /* chan_nap_at: this sleep needs no timing */
			if (may_spin && e->nap_ok && serve_pinned(s)) {
				if (chan_nap_at(e, thoth_loop_quiet_until(s->loop), &idle_at, &quiet)) {
					c->pl_wakes++;          /* its wake-up ended our sleep */
					continue;
				}
			}
			uint64_t wake_by = chan_mod_sleep(e);    /* before the flag: PM-3 */
			if (chan_arm(e, CHAN_WAIT_RECV, 0))
				continue;
			c->waits_slot = false;
			/* on_sock learns how long it slept (a nap included) */
			c->slept_at = idle_at ? idle_at : quiet ? SLEPT_UNTIMED : thoth_clock_now();
			mod_timer_set(c, wake_by);
			return SERVE_IDLE;
		}
		if (!r) {
			(*budget)--;
			thoth_arena_t arena;
			thoth_arena_init(&arena, s->arena_buf, s->arena_cap);
			thoth_server_io_t io = { .arena = &arena, .features = c->features,
						 .get_out = conn_get_out, .out_ctx = c };
			conn_t *outer = dispatching;    /* a handler may run a server of its own */
			dispatching = c;
			s->disp = c;
			r = thoth_server_dispatch(s->cfg.iface, s->cfg.invoke, s->cfg.handlers, s->cfg.self,
						  msg.data, msg.len, &io);
			s->disp = NULL;
			dispatching = outer;
			/* Counted before the answer goes: a client that has its
			 * answer may read the counters (test_serve_counters). */
			ST_ADD(s, calls, 1);
			c->pl_calls++;
			/* The request's buffers go back first: the response is
			 * already encoded, and the client can reuse them sooner. */
			int rr = chan_release(e, &msg);
			if (!r && !rr && io.out_len) {
				r = chan_try_send(e, io.out, io.out_len);
				c->pending_out = NULL;
			} else if (c->pending_out) {
				chan_discard(e, c->pending_out);
				c->pending_out = NULL;
			}
			/* Placement's window is judged once the answer is on
			 * its way: the client waits for it, not for this. */
			if (s->pl_on)
				place_call(s);
			if (!r)
				r = rr;
			if (r && r != THOTH_E_CORRUPT && r != THOTH_E_PEER_GONE) {
				srv_log(s, "client pid %d sent a message that cannot be answered (%s): closing its channel",
					(int)c->pid, thoth_strerror(r));
				ST_ADD(s, corrupt, 1);
				conn_close(c);
				return SERVE_CLOSED;
			}
		}
		if (r) {
			if (r == THOTH_E_CORRUPT) {
				srv_log(s, "client pid %d corrupted its channel (%s): closing it", (int)c->pid, e->why);
				ST_ADD(s, corrupt, 1);
			} else {
				ST_ADD(s, peer_gone, 1);
			}
			conn_close(c);
			return SERVE_CLOSED;
		}
	}
}

/* Put C at the back of the ready queue; the kick eventfd (ours alone, never
 * shared) stays readable while the queue holds anyone, so the loop polls its
 * other sources and comes straight back to on_kick. */
static void ready_push(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	q_push(&s->ready, c);
	if (!s->kicked) {
		uint64_t one = 1;
		if (write(s->kick_fd, &one, sizeof one) == sizeof one)
			s->kicked = true;
	}
}

/* One turn for C; it queues for another if its budget ran out. */
static void conn_turn(conn_t *c)
{
	unsigned budget = CONN_BUDGET;
	if (conn_serve(c, &budget) == SERVE_MORE)
		ready_push(c);
}

/* One round over the channels that were ready when it began. */
static void on_kick(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_chan_server_t *s = arg;
	for (uint32_t n = s->ready.n; n && s->ready.head; n--) {
		conn_t *c = s->ready.head;
		q_remove(c);
		conn_turn(c);
	}
	if (!s->ready.n && s->kicked) {
		uint64_t v;
		if (read(s->kick_fd, &v, sizeof v) == sizeof v)
			s->kicked = false;
	}
}

/* Answer a handshake: status 0 with the memfd, or a refusal with a reason.
 * The socket is ours and non-blocking: a reply that does not fit at once
 * (it always does, on a fresh connection) fails instead of waiting. */
static int send_open_reply(conn_t *c, int status, const char *reason, const thoth_chan_limits_t *lim,
			   size_t shm_size, int memfd)
{
	thoth_chan_server_t *s = c->srv;
	thoth_channel_Channel_open_resp_t resp = {
		.status = status,
		.reason = thoth_str(reason),
		.major = s->cfg.iface->major,
		.minor = s->cfg.iface->minor,
		.features = c->features,
		.shm_size = shm_size,
	};
	if (lim)
		thoth__chan_limits_to_wire(lim, &resp.limits);
	uint64_t buf[HANDSHAKE_MAX / 8];
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	int r = thoth_channel_Channel_open_resp_encode_msg(buf, sizeof buf, &meta, &resp, &len);
	if (r)
		return r;
	ssize_t n = thoth_fdpass_send(c->sock, buf, len, &memfd, memfd >= 0 ? 1 : 0);
	return n == (ssize_t)len ? 0 : THOTH_E_PEER_GONE;
}

static void refuse(conn_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void refuse(conn_t *c, int status, const char *fmt, ...)
{
	char reason[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof reason, fmt, ap);
	va_end(ap);
	c->features = 0;
	send_open_reply(c, status, reason, NULL, 0, -1);
	srv_log(c->srv, "refused a channel to client pid %d: %s", (int)c->pid, reason);
	ST_ADD(c->srv, refused, 1);
	conn_close(c);
}

/* The service's policy on the connecting process's credentials. */
static bool peer_allowed(const thoth_chan_server_t *s, const conn_t *c)
{
	switch (s->cfg.peers) {
	case THOTH_CHAN_PEERS_ANY:
		return true;
	case THOTH_CHAN_PEERS_GROUP: {
		if (c->uid == s->uid || c->gid == (gid_t)s->cfg.group)
			return true;
		gid_t groups[64];
		socklen_t len = sizeof groups;
		if (getsockopt(c->sock, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
			return false;
		for (size_t i = 0; i < len / sizeof groups[0]; i++)
			if (groups[i] == (gid_t)s->cfg.group)
				return true;
		return false;
	}
	case THOTH_CHAN_PEERS_SAME_UID:
	default:
		return c->uid == s->uid;
	}
}

static void handle_open(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	const thoth_interface_info_t *ifc = s->cfg.iface;
	if (!peer_allowed(s, c))
		return refuse(c, THOTH_E_PERM, "this service admits %s; client pid %d runs as uid %d",
			      s->cfg.peers == THOTH_CHAN_PEERS_GROUP ? "its own uid and its group only" : "its own uid only",
			      (int)c->pid, (int)c->uid);
	/* No descriptor ever comes from a client: the service must not hold,
	 * let alone write to, anything whose file description a peer shares. */
	if (c->hs_fds.arrived || c->hs_fds.cut) {
		char count[32];
		return refuse(c, THOTH_E_PROTOCOL, "a channel handshake carries no file descriptors; this one carried %s",
			      thoth__chan_fds_count(&c->hs_fds, count, sizeof count));
	}
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_channel_Channel_open_req_t req;
	int r = thoth_channel_Channel_open_req_decode_msg(c->hs, c->hs_len, &req, &arena);
	if (r)
		return refuse(c, THOTH_E_PROTOCOL, "the channel handshake does not decode: %s", thoth_strerror(r));

	char pkg[128], name[128];
	snprintf(pkg, sizeof pkg, "%.*s", (int)req.package.len, req.package.ptr);
	snprintf(name, sizeof name, "%.*s", (int)req.interface.len, req.interface.ptr);
	thoth_contract_claim_t mine, theirs = {
		.package = pkg, .interface = name, .interface_id = req.interface_id,
		.major = req.major, .minor = req.minor, .schema_hash = req.schema_hash,
		.features = req.features,
	};
	thoth_contract_claim_init(&mine, ifc, s->cfg.features);
	char why[300];
	r = thoth_contract_compatible(&mine, &theirs, why, sizeof why);
	if (r)
		return refuse(c, r, "%s", why);
	if (s->nopen >= s->cfg.max_clients)
		return refuse(c, THOTH_E_BUSY, "the service has %u channels open, its limit", s->nopen);

	thoth_chan_limits_t lim;
	thoth__chan_limits_from_wire(&req.limits, &lim);
	if (!lim.slots)
		lim.slots = s->defaults.slots;
	if (!lim.pool_buf_size)
		lim.pool_buf_size = s->defaults.pool_buf_size;
	if (!lim.pool_bufs)
		lim.pool_bufs = s->defaults.pool_bufs;
	char lwhy[160];
	if (thoth_chan_limits_resolve(&lim, lwhy, sizeof lwhy))
		return refuse(c, THOTH_E_INVAL, "bad channel limits: %s", lwhy);
	chan_layout_t lay;
	chan_layout_compute(&lim, &lay);
	c->features = req.features & s->cfg.features;

	/* The memory: a sealed memfd (the client cannot shrink it under us). */
	int memfd = memfd_create("thoth-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	uint8_t *base = NULL;
	if (memfd < 0 || ftruncate(memfd, (off_t)lay.size) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0 ||
	    !(base = chan_shm_map(memfd, lay.size))) {
		int e = errno;
		if (memfd >= 0)
			close(memfd);
		return refuse(c, THOTH_E_NOMEM, "service cannot create %zu bytes of channel memory: %s",
			      lay.size, strerror(e));
	}
	/* SCALE-1: what we read (requests, the client's pool) on our node. */
	thoth__chan_place(base, &lay, CHAN_SERVER);
	chan_shm_format(base, &lay);
	if (s->cfg.send_stamps)
		chan_shm_want_stamps(base, CHAN_REQ);
	if (chan_end_init(&c->end, base, &lay, CHAN_SERVER)) {
		chan_shm_unmap(base, lay.size);
		close(memfd);
		return refuse(c, THOTH_E_NOMEM, "out of memory");
	}
	c->mapped = true;
	/* Both directions of wake-up use our own end of the socket: the
	 * client rings it, and we ring the client's end when it waits on a
	 * loop (else FUTEX_WAKE on the shared page, which never blocks). */
	c->end.sock = c->sock;
	c->end.own_bell = true;
	c->end.peer_bell = req.client_wakeup;
	/* Before the memfd is shared: we re-arm after reading doorbells back
	 * (on_sock), so a client may claim our flags and promise one doorbell
	 * per sleep; a client without it (older) rings as before. */
	chan_bell_advertise(&c->end);
	c->end.service_pid = (uint32_t)getpid();
	c->end.wait = s->cfg.wait;
	c->end.spin_max = c->end.spin_budget =
		s->cfg.wait == THOTH_CHAN_SLEEP ? 0 : (s->cfg.spin_ns ? s->cfg.spin_ns : THOTH_CHAN_DEFAULT_SPIN_NS);
	chan_mod_config(&c->end, &s->cfg.moderation);     /* checked by thoth_chan_server_new */
	r = send_open_reply(c, 0, "", &lim, lay.size, memfd);
	close(memfd);                       /* the mapping keeps the memory */
	free(c->hs);
	c->hs = NULL;
	if (r) {
		ST_ADD(s, peer_gone, 1);
		conn_close(c);
		return;
	}
	q_remove(c);                        /* no longer pending */
	pending_changed(s);
	c->open = true;
	s->nopen++;
	ST_ADD(s, clients, 1);
	ST_ADD(s, accepted, 1);
	if (chan_arm(&c->end, CHAN_WAIT_RECV, 0))
		conn_turn(c);
}

/* The client's doorbell ended our sleep (or on_sock's re-check found what a
 * doorbell it read back announced: the same wake-up, taken without the loop's
 * wait).  Before the channel's turn. */
THOTH_HOT_SERVE static void conn_woke(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	if (c->slept_at == SLEPT_UNTIMED) {
		c->slept_at = 0;
		c->pl_wakes++;
	} else if (c->slept_at) {
		/* Slept until the loop's reading of this wake-up, not until
		 * now: no clock read of our own on the round trip's path (stop
		 * 32).  Since stop 34 that reading is lazy: the batch's first
		 * thoth_loop_now (a timer's, or this), so it may come after
		 * other connections' handlers ran in the same batch and the
		 * sleep reads long by their time (alone in its batch, it is
		 * read here first).  Over-long errs toward "slow peer":
		 * a halved budget, no naps until a short sleep.  A turn
		 * within the same wake-up (a re-check after the late drain, a
		 * queued turn) armed after that reading: then now, as before
		 * (a sleep of 0 ns would set a spin budget of 0, which no spin
		 * or probe leaves until the next sleep). */
		uint64_t woke = thoth_loop_now(s->loop);
		if (woke <= c->slept_at)
			woke = thoth_clock_now();
		chan_spin_slept(&c->end, woke > c->slept_at ? woke - c->slept_at : 0);
		c->slept_at = 0;
		c->pl_wakes++;          /* its doorbell ended our sleep */
	}
	mod_timer_set(c, 0);
	ST_ADD(s, mod_wakeups, 1);
	chan_mod_woke(&c->end, false);
}

/* The most reads of doorbells in one conn_drain while the socket stays
 * edge triggered against our wish (4 KiB at CHAN_BELL_READ each). */
#define CONN_DRAIN_PASSES 16u

/* Watch the channel's socket level-triggered again, for good. */
static void bell_to_level(conn_t *c)
{
	c->bell_level = true;
	/* A switch that fails leaves bell_edge set: conn_drain then reads
	 * until nothing is left, since no later arrival may come to report
	 * what one read leaves (the end of the connection above all). */
	if (c->bell_edge && (!c->sock_src ||
			     thoth_loop_modify_fd(c->srv->loop, c->sock_src, THOTH_LOOP_READ) == 0))
		c->bell_edge = false;
}

/* Read the doorbells back.  At the socket's end (the client went) mark the
 * client's side closed and stop watching the socket (its end would be
 * reported at every poll); true then.  What the client queued before it
 * went is still served (it may have been oneway messages): conn_serve
 * closes the channel once the ring is empty, as the closed flag says. */
THOTH_HOT_SERVE static bool conn_drain(conn_t *c)
{
	int gone = chan_bell_drain(&c->end);
	/* Edge triggered for good against our wish (bell_to_level's switch
	 * failed): read until recv says EAGAIN or 0, since no later arrival
	 * may come to report what one read leaves, the end of the connection
	 * above all (a short read is no sign the socket is empty).  At most
	 * CONN_DRAIN_PASSES reads (an honest client's socket holds a few
	 * hundred doorbells at most, CHAN_BELL_ROOM of them promised): bytes
	 * still coming after that are a flood we can neither watch nor
	 * leave unread, and the channel is taken as gone (what it queued is
	 * served, then it is closed). */
	if (c->bell_edge && c->bell_level) {
		for (unsigned n = 1; !gone && c->end.bell_read; n++) {
			if (n >= CONN_DRAIN_PASSES) {
				gone = THOTH_E_PEER_GONE;
				break;
			}
			gone = chan_bell_drain(&c->end);
		}
	}
	/* More bytes than the sleeps they could ring for: the client does
	 * not keep its promise of one doorbell per sleep (a flood, a bug).
	 * Level triggered from now on, read back at every wake-up, as for
	 * a client that promised nothing: a flood then costs what it costs
	 * there, and its own wake-ups are not lost in a full socket. */
	if (c->bell_edge && c->end.bell_read > c->end.bell_arms_read + CHAN_BELL_SLACK)
		bell_to_level(c);
	if (!gone)
		return false;
	/* The shared word tells a napping or spinning end; our own flag is
	 * what closes the channel: a flooding client is alive and could
	 * store 0 back into the shared one, keeping a channel nothing wakes
	 * any more (its socket is no longer watched). */
	c->peer_gone = true;
	atomic_store_explicit(&c->end.ctl->closed[CHAN_CLIENT], 1, memory_order_release);
	thoth_loop_remove_fd(c->srv->loop, c->sock_src);
	c->sock_src = NULL;
	return true;
}

/*
 * May this wake-up leave the doorbells unread (docs/IPC.md, "Edge-triggered
 * doorbells")?  Only while the socket is watched edge-triggered, which it
 * is from the first wake-up after the client promised one doorbell per
 * sleep (chan_bell_promised: one epoll_ctl); the loop's backend may have
 * no edge mode (io_uring), and then nothing changes.  Then every arrival
 * is reported once, whether or not earlier bytes sit unread, so a
 * doorbell sent for a sleep is a wake-up whatever we left unread; unread
 * bytes are bounded by our arms since the last read-back (one per arm, the
 * promise), and we read them back once there are CHAN_BELL_DRAIN_EVERY
 * (well inside what the client's socket takes: CHAN_BELL_ROOM).  The end
 * of the connection: level triggered again for good, which reads the
 * bytes back until recv says 0, as before.
 */
static bool bell_skip(conn_t *c, uint32_t events)
{
	if (c->bell_level)
		return false;
	if (events & THOTH_LOOP_HUP) {
		bell_to_level(c);
		return false;
	}
	if (!c->bell_edge) {
		if (chan_bell_promised(&c->end)) {
			if (thoth_loop_modify_fd(c->srv->loop, c->sock_src, THOTH_LOOP_READ | THOTH_LOOP_EDGE))
				c->bell_level = true;
			else
				c->bell_edge = true;
		}
		return false;   /* this wake-up reads them back, as before */
	}
	return c->end.bell_arms < CHAN_BELL_DRAIN_EVERY;
}

/*
 * Read the doorbells back after the turn only while the client can run
 * beside us: its presence word says it last ran on another CPU (or says
 * nothing we can read).  Then the answer reaches a client that runs while
 * we drain.  A client that last ran on our CPU is woken there and runs
 * only once we sleep, so the drain is on its round trip whichever way, and
 * late it measured slower (always-sleep, both ends pinned to one CPU:
 * 5.90 -> 6.24 us p50, docs/SCHED.md).  The word is the client's: a lie
 * picks the other order, and both orders lose no wake-up.
 */
static bool late_drain_pays(const conn_t *c)
{
	uint32_t pw = atomic_load_explicit(&c->end.ctl->presence[CHAN_CLIENT].word, memory_order_relaxed);
	uint32_t cpu = pw & CHAN_PRESENCE_CPU_MASK;
	if ((pw & ~(CHAN_PRESENCE_RUNNING | CHAN_PRESENCE_CPU_MASK)) || !cpu)
		return true;            /* not a value a client writes, or unknown */
	int me = sched_getcpu();
	return me < 0 || cpu - 1 != (uint32_t)me;
}

/*
 * The channel's socket is readable: doorbells, or its end.  While the
 * client can run beside us (late_drain_pays) the woken channel is served
 * first and its doorbells are read back after (the late drain: the answer
 * no longer waits for a recv), and then the condition the channel sleeps
 * on is checked again; when it holds, the channel is served again within
 * the same turn's budget.  Why that re-check loses no wake-up (docs/IPC.md,
 * "Reading doorbells back late"): a doorbell sent after our read keeps the
 * socket readable (level triggered) or is an arrival of its own (edge
 * triggered: an event even while older bytes sit unread), and the loop
 * comes back;
 * a doorbell our read took was sent after the thing it announces was
 * published (publish, fence, load the waiting flag, send), so that thing
 * is visible now.  It must be exactly the condition whose flag is set:
 * waiting for a free response slot (waits_slot) the client's doorbell says
 * "I took an answer", not "a request came", and a request it sends then
 * rings nobody (the receive flag is clear) -- checking only for a request
 * there sleeps for ever (test_channel: test_late_drain_rechecks_a_free_slot;
 * no re-check at all: test_late_drain_rechecks_a_request).  Edge triggered
 * (bell_skip), most wake-ups make no read at all: the turn alone, whose
 * flags were set before the doorbell's claim, serves what it announced.
 */
THOTH_HOT_SERVE static void on_sock(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	conn_t *c = arg;
	if (c->open) {
		/* Edge triggered and under the count: no read-back at all,
		 * unless the turn finds nothing (below). */
		bool skip = bell_skip(c, events);
		if (c->queue) {         /* its turn comes in on_kick, flags clear */
			if (!skip)
				conn_drain(c);
			return;
		}
		if (!skip && !late_drain_pays(c)) {
			/* Early: read the doorbells back, then serve. */
			conn_drain(c);
			conn_woke(c);
			conn_turn(c);
			return;
		}
		/* One turn's budget for everything served here, re-checks
		 * included: other channels wait at most one turn of this
		 * one, as before. */
		unsigned budget = CONN_BUDGET;
		bool recheck = false;
		for (;;) {
			uint64_t rx = c->end.st.received;
			conn_woke(c);
			enum serve_result sr = conn_serve(c, &budget);
			if (sr == SERVE_CLOSED)
				return;
			/* A re-check for a request that held but whose pass
			 * took nothing (a client flipping its slot's tag)
			 * still costs one unit: the loop stays within one
			 * turn's budget.  One for a free slot does not: it
			 * held because we had served requests, and the pass
			 * after it waits for a request again. */
			if (recheck && c->end.st.received == rx && budget)
				budget--;
			if (sr == SERVE_MORE) {
				ready_push(c);
				if (!skip)
					conn_drain(c);  /* flags clear: the queued turn serves what they rang for */
				return;
			}
			/* Left unread, rung for something: every byte's
			 * arrival was its own wake-up.  Rung for nothing
			 * (more doorbells than sleeps: a flood, or one whose
			 * message a re-check already served), or the turn
			 * armed us up to the count: read them back now, as
			 * the late drain does, and count them. */
			if (skip && c->end.st.received != rx && c->end.bell_arms < CHAN_BELL_DRAIN_EVERY)
				return;
			skip = false;
			/* SERVE_IDLE armed one flag, the one waits_slot names;
			 * it may be claimed already (below). */
			if (conn_drain(c)) {
				conn_turn(c);   /* it went: serve what is left, then close */
				return;
			}
			enum chan_cond cond = c->waits_slot ? CHAN_WAIT_SLOT : CHAN_WAIT_RECV;
			/* Armed again, not only checked again: a doorbell we
			 * just read may be the claim of the flag our turn set
			 * (ring_if_waiting took it 1 -> 0) by a message we
			 * had already served -- the client stores its tag,
			 * we take it by the tag, answer and arm for the next,
			 * and only then does the client store head, fence and
			 * claim.  A check alone then sleeps with the flag
			 * clear, and the next message rings nobody
			 * (test_channel: test_late_drain_rearms_a_claimed_flag,
			 * test_hammering_clients_lose_no_wakeup on io_uring).
			 * chan_arm stores the flag (one more arm: one more
			 * doorbell the promise allows), fences and checks. */
			if (!chan_arm(&c->end, cond, 0))
				return;         /* asleep, flag set: a later doorbell keeps the socket readable */
			/* A doorbell we read announced it: the wake-up it
			 * would have been, served now (conn_serve disarms). */
			if (!budget) {
				chan_disarm(&c->end, cond);
				conn_woke(c);
				ready_push(c);
				return;
			}
			recheck = cond == CHAN_WAIT_RECV;
		}
	}
	ssize_t r = thoth__chan_recv_fds(fd, c->hs + c->hs_len, HANDSHAKE_MAX - c->hs_len, &c->hs_fds,
				  MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		conn_close(c);          /* went away during the handshake */
		return;
	}
	c->hs_len += (size_t)r;
	size_t need;
	int e = thoth__chan_msg_length(c->hs, c->hs_len, &need);
	if (e)
		return refuse(c, THOTH_E_PROTOCOL, "the channel handshake is not a thoth message (%s)",
			      thoth_strerror(e));
	if (!need || c->hs_len < need)
		return;
	if (c->hs_len > need)
		return refuse(c, THOTH_E_PROTOCOL, "bytes follow the channel handshake");
	handle_open(c);
}

static void resume_accept(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_chan_server_t *s = arg;
	thoth_timer_cancel(loop, timer);
	s->pause_timer = NULL;
	if (s->reserve_fd < 0)
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	thoth_loop_modify_fd(loop, s->lsrc, THOTH_LOOP_READ);
}

/*
 * Out of descriptors (EMFILE/ENFILE) with connections waiting: the classic
 * accept busy loop, since the listening socket stays readable.  Spend the
 * reserve descriptor to accept and close what waits (those clients learn at
 * once that they were refused), take the reserve back, and stop watching
 * the socket for FD_LIMIT_PAUSE_MS (a timer armed only for that pause).
 */
static void at_fd_limit(thoth_chan_server_t *s, int err)
{
	unsigned shed = 0;
	if (s->reserve_fd >= 0) {
		close(s->reserve_fd);
		s->reserve_fd = -1;
		int cfd;
		while (shed < SHED_MAX && (cfd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			close(cfd);
			shed++;
		}
		s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	ST_ADD(s, shed, shed);
	srv_log(s, "accept: %s with %u channels and %u handshakes open: closed %u waiting connections, "
		"accepting again in %d ms", strerror(err), s->nopen, s->pending.n, shed, FD_LIMIT_PAUSE_MS);
	if (!s->pause_timer &&
	    !thoth_loop_add_timer_in(s->loop, FD_LIMIT_PAUSE_MS * 1000000ull, 10 * 1000000ull, resume_accept, s,
				     &s->pause_timer))
		thoth_loop_modify_fd(s->loop, s->lsrc, 0);
}

/* Take an accepted connection (from our listening socket, or handed over
 * by the thread that accepted it): its handshake starts on our loop. */
static void adopt(thoth_chan_server_t *s, int cfd, const struct ucred *cred)
{
	if (s->nopen >= s->cfg.max_clients) {
		srv_log(s, "refusing client pid %d: %u channels open, the limit", (int)cred->pid, s->nopen);
		ST_ADD(s, refused, 1);
		close(cfd);
		return;
	}
	if (s->pending.n >= s->cfg.max_pending) {
		/* The oldest is the most likely to be stuck: an honest
		 * client finishes its handshake in well under a ms. */
		conn_t *old = s->pending.head;
		srv_log(s, "%u channel handshakes pending, the limit: dropping the oldest (client pid %d)",
			s->pending.n, (int)old->pid);
		ST_ADD(s, handshake_dropped, 1);
		conn_close(old);
	}
	conn_t *c = chan_zalloc_unsplit(sizeof *c);
	uint8_t *hs = aligned_alloc(8, HANDSHAKE_MAX);
	if (!c || !hs) {
		free(c);
		free(hs);
		close(cfd);
		return;
	}
	c->srv = s;
	c->sock = cfd;
	c->pid = cred->pid;
	c->uid = cred->uid;
	c->gid = cred->gid;
	c->serial = __atomic_add_fetch(&conn_serials, 1, __ATOMIC_RELAXED);
	c->hs = hs;
	if (thoth_loop_add_fd(s->loop, cfd, THOTH_LOOP_READ, on_sock, c, &c->sock_src)) {
		free(hs);
		free(c);
		close(cfd);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	c->hs_deadline = thoth_clock_now() + (uint64_t)s->cfg.handshake_timeout_ms * 1000000u;
	q_push(&s->pending, c);
	pending_changed(s);
}

/* ---- thread per CPU (thoth_serve_per_cpu) ------------------------------------------ */

/* What travels through a worker's hand-over pipe (fd -1: stop). */
typedef struct handover {
	int fd;
	struct ucred cred;
} handover_t;

/* The CPU a process's main thread last ran on (/proc/PID/stat field 39),
 * -1 unknown. */
static int last_cpu_of(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	const char *f = thoth__proc_stat_field(p, 39, buf, sizeof buf);
	return f ? atoi(f) : -1;
}

/* Hand CFD to the worker on (or nearest to, by topology distance:
 * place_cpu_distance, SMT sibling before package before node) the client's
 * CPU; false when that is us (or the hand-over failed): we adopt it
 * ourselves.  The CPU comes from /proc (the client's word, in effect): a
 * bogus one picks a worse worker, never a wrong answer. */
static bool route(thoth_chan_server_t *s, int cfd, const struct ucred *cred)
{
	int cpu = last_cpu_of(cred->pid), best = -1;
	uint32_t best_d = UINT32_MAX;
	for (unsigned i = 0; i < s->n_workers; i++) {
		uint32_t d = cpu < 0 ? 0 : place_cpu_distance(s->cpumap, s->workers[i].cpu, cpu);
		if (best < 0 || d < best_d) {
			best_d = d;
			best = (int)i;
		}
	}
	if (best < 0 || s->workers[best].srv == s)
		return false;
	handover_t h = { .fd = cfd, .cred = *cred };
	if (write(s->workers[best].pipe_wr, &h, sizeof h) != (ssize_t)sizeof h)
		return false;
	ST_ADD(s, handed_over, 1);
	return true;
}

static void on_handover(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_chan_server_t *s = arg;
	handover_t h;
	while (read(fd, &h, sizeof h) == (ssize_t)sizeof h) {
		if (h.fd < 0) {
			thoth_loop_stop(loop);
			return;
		}
		adopt(s, h.fd, &h.cred);
	}
}

static void on_accept(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_chan_server_t *s = arg;
	/* A bounded batch: a connection flood cannot keep the loop here. */
	for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				at_fd_limit(s, errno);
			return;         /* EAGAIN: nobody else waits */
		}
		struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
		socklen_t cl = sizeof cred;
		getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
		if (s->workers && route(s, cfd, &cred))
			continue;       /* handed to the loop on the client's CPU */
		adopt(s, cfd, &cred);
	}
}

/* Bind SA's path under a temporary name with the policy's mode (and group),
 * listen, then rename into place: a client that sees the path can always
 * connect, and the mode never depends on the umask. */
static int listen_at(thoth_chan_server_t *s, const struct sockaddr_un *sa, char *why, size_t why_len)
{
	const char *path = sa->sun_path;
	struct sockaddr_un ta = *sa;
	int n = snprintf(ta.sun_path, sizeof ta.sun_path, "%s.%d.tmp", path, (int)getpid());
	bool staged = n > 0 && (size_t)n < sizeof ta.sun_path;
	if (!staged)
		ta = *sa;
	else
		unlink(ta.sun_path);
	const char *step = "bind";
	if (bind(s->lfd, (struct sockaddr *)&ta, sizeof ta) < 0)
		goto fail;
	step = "chmod";
	if (chmod(ta.sun_path, s->cfg.socket_mode) < 0)
		goto fail_unlink;
	step = "chown to the group";
	if (s->cfg.peers == THOTH_CHAN_PEERS_GROUP && chown(ta.sun_path, (uid_t)-1, (gid_t)s->cfg.group) < 0)
		goto fail_unlink;
	step = "listen";
	if (listen(s->lfd, 128) < 0)
		goto fail_unlink;
	step = "rename";
	if (staged && rename(ta.sun_path, path) < 0)
		goto fail_unlink;
	return 0;

fail_unlink: {
	int e = errno;
	unlink(ta.sun_path);
	errno = e;
}
fail:
	thoth__chan_why(why, why_len, "cannot listen at %s (%s): %s", path, step, strerror(errno));
	return THOTH_E_IO;
}

static int server_new(thoth_loop_t *loop, const thoth_chan_server_config_t *cfg, bool listening,
		      thoth_chan_server_t **out, char *why, size_t why_len);

int thoth_chan_server_new(thoth_loop_t *loop, const thoth_chan_server_config_t *cfg,
			  thoth_chan_server_t **out, char *why, size_t why_len)
{
	return server_new(loop, cfg, true, out, why, why_len);
}

/* LISTENING false: a worker of thoth_serve_per_cpu, fed connections
 * through its hand-over pipe; it owns no socket file. */
static int server_new(thoth_loop_t *loop, const thoth_chan_server_config_t *cfg, bool listening,
		      thoth_chan_server_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth__chan_why(why, why_len, "%s", "");
	if (!loop || !cfg || !cfg->path || !cfg->iface || !cfg->invoke || !cfg->handlers) {
		thoth__chan_why(why, why_len, "a service needs a loop, a socket path, an interface, its invoke function and handlers");
		return THOTH_E_INVAL;
	}
	if (cfg->peers > THOTH_CHAN_PEERS_ANY || (cfg->socket_mode & ~0777u)) {
		thoth__chan_why(why, why_len, "peers = %d, socket_mode = %#o: peers must be a thoth_chan_peers_t, the mode at most 0777",
			(int)cfg->peers, cfg->socket_mode);
		return THOTH_E_INVAL;
	}
	chan_end_t mod_check = { 0 };
	if (chan_mod_config(&mod_check, &cfg->moderation)) {
		thoth__chan_why(why, why_len, "moderation policy %d with %u messages / %u us: must be none, fixed (at most %u messages, %u us), dim or adaptive",
			(int)cfg->moderation.policy, cfg->moderation.fixed_msgs, cfg->moderation.fixed_us,
			THOTH_CHAN_MOD_MAX_MSGS, THOTH_CHAN_MOD_MAX_US);
		return THOTH_E_INVAL;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg->path) >= sizeof sa.sun_path) {
		thoth__chan_why(why, why_len, "socket path is %zu bytes, longer than the %zu a Unix socket allows",
			strlen(cfg->path), sizeof sa.sun_path - 1);
		return THOTH_E_INVAL;
	}
	strcpy(sa.sun_path, cfg->path);
	thoth_chan_limits_t lim = cfg->limits;
	char lwhy[160];
	if (thoth_chan_limits_resolve(&lim, lwhy, sizeof lwhy)) {
		thoth__chan_why(why, why_len, "bad channel limits: %s", lwhy);
		return THOTH_E_INVAL;
	}
	/* Unsplit: conn_serve reads it on every round trip (docs/SCHED.md,
	 * stop 36: calloc'd after a page-aligned loop it straddled a page). */
	thoth_chan_server_t *s = chan_zalloc_unsplit(sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	s->loop = loop;
	s->st = &s->st_own;
	s->cfg = *cfg;
	if (!s->cfg.max_clients)
		s->cfg.max_clients = 1024;
	if (!s->cfg.max_pending)
		s->cfg.max_pending = 64;
	if (!s->cfg.handshake_timeout_ms)
		s->cfg.handshake_timeout_ms = 1000;
	if (!s->cfg.socket_mode)
		s->cfg.socket_mode = cfg->peers == THOTH_CHAN_PEERS_ANY ? 0666 : cfg->peers == THOTH_CHAN_PEERS_GROUP ? 0660 : 0600;
	s->uid = geteuid();
	s->defaults = lim;
	/* Placement follows the client unless turned off (measurements) or the
	 * user pinned this thread: then it is never moved (docs/SCHED.md). */
	const char *pl = getenv("THOTH_PLACEMENT");
	s->pl_on = !(pl && (!strcmp(pl, "off") || !strcmp(pl, "0")));
	/* The policy's thresholds (tests, tuning): a spec that means nothing
	 * leaves every default, silently like THOTH_PLACEMENT (thothd warns). */
	place_policy_default(&s->pl_pol);
	place_policy_parse(&s->pl_pol, getenv("THOTH_PLACEMENT_POLICY"), NULL, 0);
	s->lfd = s->kick_fd = -1;
	s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	s->path = strdup(cfg->path);
	s->arena_cap = 64u << 10;
	s->arena_buf = aligned_alloc(8, s->arena_cap);
	if (!s->path || !s->arena_buf) {
		thoth_chan_server_free(s);
		return THOTH_E_NOMEM;
	}
	s->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->kick_fd < 0 || thoth_loop_add_fd(loop, s->kick_fd, THOTH_LOOP_READ, on_kick, s, &s->kick_src)) {
		thoth__chan_why(why, why_len, "cannot create the service's eventfd: %s", strerror(errno));
		free(s->path);
		s->path = NULL;
		thoth_chan_server_free(s);
		return THOTH_E_IO;
	}
	if (!listening) {
		free(s->path);
		s->path = NULL;         /* no socket file of ours to remove */
		*out = s;
		return 0;
	}
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* A socket file left by a dead service is replaced; a live one is not. */
	if (s->lfd >= 0 && access(cfg->path, F_OK) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			thoth__chan_why(why, why_len, "another service already listens at %s", cfg->path);
			free(s->path);
			s->path = NULL;         /* not ours: do not unlink it */
			thoth_chan_server_free(s);
			return THOTH_E_BUSY;
		}
		if (probe >= 0)
			close(probe);
		unlink(cfg->path);
	}
	if (s->lfd < 0 || listen_at(s, &sa, why, why_len)) {
		if (s->lfd < 0)
			thoth__chan_why(why, why_len, "socket: %s", strerror(errno));
		if (s->lfd >= 0) {
			close(s->lfd);
			s->lfd = -1;
		}
		free(s->path);
		s->path = NULL;         /* not ours: do not unlink it */
		thoth_chan_server_free(s);
		return THOTH_E_IO;
	}
	int r = thoth_loop_add_fd(loop, s->lfd, THOTH_LOOP_READ, on_accept, s, &s->lsrc);
	if (r) {
		thoth_chan_server_free(s);
		return r;
	}
	*out = s;
	return 0;
}

void thoth_chan_server_free(thoth_chan_server_t *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_close(s->conns);
	if (s->hs_timer)
		thoth_timer_cancel(s->loop, s->hs_timer);
	if (s->pause_timer)
		thoth_timer_cancel(s->loop, s->pause_timer);
	if (s->lsrc)
		thoth_loop_remove_fd(s->loop, s->lsrc);
	if (s->kick_src)
		thoth_loop_remove_fd(s->loop, s->kick_src);
	if (s->kick_fd >= 0)
		close(s->kick_fd);
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	if (s->lfd >= 0) {
		close(s->lfd);
		if (s->path)
			unlink(s->path);
	}
	free(s->path);
	free(s->arena_buf);
	if (s->pl_apart) {
		free(s->pl_apart->map);
		free(s->pl_apart->idle);
	}
	free(s->pl_apart);
	place_mask_free(&s->pl_saved);
	place_mask_free(&s->pl_now);
	free(s);
}

/* Add S's counters to OUT (relaxed loads: S's loop thread may be writing). */
static void stats_fold(const thoth_chan_server_t *s, thoth_chan_server_stats_t *out)
{
#define F(field) out->field += __atomic_load_n(&s->st->field, __ATOMIC_RELAXED)
	F(clients); F(accepted); F(refused); F(calls); F(peer_gone); F(corrupt);
	F(handshake_dropped); F(shed); F(turns); F(log_suppressed); F(mod_wakeups);
	F(mod_timer_wakeups); F(placement_moves); F(handed_over);
#undef F
}

static bool peekable(const conn_t *o)
{
	return o->open && o->mapped && !o->end.err;
}

/*
 * The channels one look at S's rings visits (docs/PM.md "Seeing the
 * rings", the rule): at most PEEK_CONNS, whatever the number of open
 * channels, so that thousands of idle clients cost a look nothing more
 * (each visit reads a line its client writes: a miss per channel).  In
 * this order, none twice: the channel being dispatched (its client's
 * next requests), those queued for their turn (s->ready: their budget ran
 * out with requests left, so they hold some), the PEEK_CONNS / 2 most
 * recently served (s->conns' head, conn_to_front: the active clients
 * among many idle ones), then the others round-robin from where the last
 * look stopped, PEEK_CONNS steps at most (skipped ones included): a
 * request on a channel that was idle is seen within about
 * ceil(channels / (PEEK_CONNS / 2)) looks, and at its dispatch anyway.
 * The channels whose doorbell rang while the loop thread was held are
 * among those others: their readiness is in the loop's epoll set, which
 * only a system call would tell.  Writes OUT[0..n), returns n.  On S's
 * loop thread, or while it is held in a dispatch (s->peek_at moves: the
 * caller's lock orders it, governed.c's g->mu).
 */
static uint32_t peek_pick(thoth_chan_server_t *s, conn_t **out)
{
	uint32_t n = 0;
	if (s->nconns <= PEEK_CONNS) {  /* all of them, no order to keep */
		for (conn_t *o = s->conns; o; o = o->next)
			if (peekable(o))
				out[n++] = o;
		return n;
	}
	uint32_t look = ++s->peek_looks;
	if (!look)
		look = ++s->peek_looks; /* 0 is a new channel's: never a look's */
#define PICK(o) do { if ((o)->peek_look != look && peekable(o)) { (o)->peek_look = look; out[n++] = (o); } } while (0)
	if (s->disp)
		PICK(s->disp);
	for (conn_t *q = s->ready.head; q && n < PEEK_CONNS; q = q->q_next)
		PICK(q);
	conn_t *o = s->conns;
	for (uint32_t step = 0; o && n < PEEK_CONNS && step < PEEK_CONNS / 2; step++, o = o->next)
		PICK(o);        /* the most recently served (conn_to_front) */
	conn_t *start = s->peek_at ? s->peek_at : s->conns;
	o = start;
	for (uint32_t step = 0; o && n < PEEK_CONNS && step < PEEK_CONNS; step++) {
		PICK(o);
		o = o->next ? o->next : s->conns;
		if (o == start)
			break;          /* all of them: the next look starts here again */
	}
#undef PICK
	s->peek_at = o;
	return n;
}

int thoth_chan_server_caller(thoth_chan_caller_t *out)
{
	conn_t *c = dispatching;
	if (!c) {
		memset(out, 0, sizeof *out);
		return THOTH_E_NOT_FOUND;
	}
	/* Requests known to wait now: one per channel looked at whose
	 * request ring holds one (its head, one load each; a governed
	 * service asks, others never pay for it), this one's next included;
	 * at most PEEK_CONNS channels (peek_pick).  The ring index is the
	 * peer's word: it only says "non-empty" here. */
	conn_t *pick[PEEK_CONNS];
	uint32_t k = peek_pick(c->srv, pick), waiting = 0;
	for (uint32_t i = 0; i < k; i++)
		if (chan_ready(&pick[i]->end, CHAN_WAIT_RECV, 0))
			waiting++;
	*out = (thoth_chan_caller_t){
		.channel = c->serial, .pid = (int32_t)c->pid, .uid = (uint32_t)c->uid,
		.waiting = waiting,
	};
	return 0;
}

int thoth_chan_server_sent(uint64_t now_ns, uint64_t *sent_ns)
{
	conn_t *c = dispatching;
	if (!c)
		return THOTH_E_NOT_FOUND;
	return chan_stamp_sent_ns(c->end.rx_stamp, now_ns, sent_ns);
}

void *thoth__chan_dispatch_hide(void)
{
	conn_t *c = dispatching;
	dispatching = NULL;
	return c;
}

void thoth__chan_dispatch_restore(void *hidden)
{
	dispatching = hidden;
}

thoth_chan_server_t *thoth_chan_server_dispatcher(void)
{
	return dispatching ? dispatching->srv : NULL;
}

uint32_t thoth_chan_server_waiting(thoth_chan_server_t *s, uint64_t now_ns, uint64_t *sent_ns, uint32_t max,
				   uint32_t *visited)
{
	/* Each ring's published slots by their tags (chan_rx_peek: nothing
	 * of the end changes, so another thread may look while the loop
	 * thread is held in a dispatch); the stamps decoded here. */
	conn_t *pick[PEEK_CONNS];
	uint32_t nc = peek_pick(s, pick), n = 0, stamps[64];
	if (visited)
		*visited = nc;
	for (uint32_t j = 0; j < nc && n < max; j++) {
		conn_t *o = pick[j];
		uint32_t want = max - n < 64 ? max - n : 64;
		uint32_t k = chan_rx_peek(&o->end, want, sent_ns ? stamps : NULL);
		for (uint32_t i = 0; sent_ns && i < k; i++)
			if (chan_stamp_sent_ns(stamps[i], now_ns, &sent_ns[n + i]))
				sent_ns[n + i] = 0;
		n += k;
	}
	return n;
}

/* A per-CPU service's listening server answers for all its workers: their
 * counters folded on read (each worker's are its own thread's). */
void thoth_chan_server_stats(const thoth_chan_server_t *s, thoth_chan_server_stats_t *out)
{
	memset(out, 0, sizeof *out);
	struct worker *w = __atomic_load_n(&s->workers, __ATOMIC_ACQUIRE);
	unsigned n = w ? s->n_workers : 0;
	if (!n) {
		stats_fold(s, out);
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (w[i].srv)
			stats_fold(w[i].srv, out);
}

/* Keep S's counters in SLOT from now on (serve_slots.h), on S's own thread
 * before it serves: what it counted so far comes along. */
static void stats_to_slot(thoth_chan_server_t *s, void *slot)
{
	if (!slot)
		return;
	memcpy(slot, s->st, sizeof *s->st);
	s->st = slot;
}

static void *claim_slots(uint32_t n, const thoth_chan_server_config_t *cfg)
{
	void *slots = thoth__trace_serve_claim(n, (uint32_t)sizeof(thoth_chan_server_stats_t),
					       cfg->iface ? cfg->iface->name : "", cfg->path);
	if (!slots)
		thoth__log(THOTH_LOG_DEBUG, "thoth_serve", "counters kept private: no trace buffer "
			   "(thoth_trace_init_process) or its serve slots are taken; thothd cannot show them");
	return slots;
}

static void *slot_at(void *slots, unsigned i)
{
	return slots ? (char *)slots + (size_t)i * thoth__trace_serve_slot_size() : NULL;
}

/* The server thoth_serve or thoth_serve_per_cpu runs in this process (the
 * listening one), for thoth_serve_stats from any thread. */
static pthread_mutex_t serving_mu = PTHREAD_MUTEX_INITIALIZER;
static thoth_chan_server_t *serving;

static void set_serving(thoth_chan_server_t *s)
{
	pthread_mutex_lock(&serving_mu);
	serving = s;
	pthread_mutex_unlock(&serving_mu);
}

int thoth_serve_stats(thoth_chan_server_stats_t *out)
{
	if (!out)
		return THOTH_E_INVAL;
	pthread_mutex_lock(&serving_mu);
	int r = serving ? 0 : THOTH_E_NOT_RUNNING;
	if (serving)
		thoth_chan_server_stats(serving, out);
	else
		memset(out, 0, sizeof *out);
	pthread_mutex_unlock(&serving_mu);
	return r;
}

static void stop_loop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

static void log_to_handler(void *arg, const char *message)
{
	thoth__log(THOTH_LOG_WARN, (const char *)arg, "%s", message);     /* thoth/log.h */
}

int thoth_serve(const thoth_chan_server_config_t *cfg)
{
	thoth_loop_t *loop;
	int r = thoth_loop_new(&loop);
	if (r)
		return r;
	thoth_loop_add_signal(loop, SIGTERM, stop_loop, NULL);
	thoth_loop_add_signal(loop, SIGINT, stop_loop, NULL);
	thoth_chan_server_config_t c = *cfg;
	if (!c.log) {
		c.log = log_to_handler;
		c.log_arg = (void *)(cfg->iface ? cfg->iface->name : "thoth_serve");
	}
	thoth_chan_server_t *srv;
	char why[300];
	r = thoth_chan_server_new(loop, &c, &srv, why, sizeof why);
	if (r) {
		thoth__log(THOTH_LOG_ERROR, "thoth_serve", "%s", why);
		thoth_loop_free(loop);
		return r;
	}
	void *slots = claim_slots(1, &c);
	stats_to_slot(srv, slots);
	set_serving(srv);
	r = thoth_loop_run(loop);
	set_serving(NULL);
	thoth_chan_server_free(srv);
	if (slots)
		thoth__trace_serve_release();
	thoth_loop_free(loop);
	return r;
}

/* ---- thoth_serve_per_cpu ------------------------------------------------------------ */

typedef struct worker_start {
	struct worker *w;
	const thoth_chan_server_config_t *cfg;
} worker_start_t;

static int pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) ? THOTH_E_IO : 0;
}

static void *worker_main(void *arg)
{
	worker_start_t *ws = arg;
	struct worker *w = ws->w;
	char why[300];
	w->status = pin_to(w->cpu);
	if (!w->status)
		w->status = thoth_loop_new(&w->loop);
	if (!w->status)
		w->status = server_new(w->loop, ws->cfg, false, &w->srv, why, sizeof why);
	if (!w->status)
		stats_to_slot(w->srv, w->slot);
	if (!w->status)
		w->status = thoth_loop_add_fd(w->loop, w->pipe_rd, THOTH_LOOP_READ, on_handover, w->srv, NULL);
	pthread_barrier_wait(&w->ready);        /* ws lives on the starter's stack until here */
	if (!w->status)
		w->status = thoth_loop_run(w->loop);
	return NULL;
}

/*
 * Start a worker thread whose stack is on CPU's node.  Pinning inside the
 * thread (worker_main) is too late for its stack: glibc's pthread_create
 * maps it in the creating thread and writes the new thread's descriptor
 * and TLS at its top there, on the creator's node under the default local
 * policy -- with transparent huge pages a whole 2 MiB page, so the worker's
 * first frames too.  The 2-node guest caught it (a worker on node 1 with
 * its stack on node 0, 1 run in 11).  So the stack is ours, mapped and
 * mbind'ed MPOL_PREFERRED to the node before that first touch
 * (thoth__numa_stack_for_cpu).  Starting each worker from a thread already
 * on its node would also do, but needs a starter per node and still leaves
 * glibc's stack cache free to hand back a stack first touched elsewhere.
 * Placement off or one node: glibc's stack, exactly as before; a stack
 * that cannot be placed is not a start-up failure (glibc's, too).
 */
static int start_on_node(pthread_t *t, int cpu, thoth_numa_stack_t *st, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	int e = pthread_attr_init(&attr);
	if (e)
		return e;
	thoth__numa_stack_for_cpu(&attr, cpu, st);
	/* No stack of ours: exactly the old start (a NULL attr takes the
	 * process's pthread_setattr_default_np defaults). */
	e = pthread_create(t, st->map ? &attr : NULL, fn, arg);
	pthread_attr_destroy(&attr);
	if (e)
		thoth__numa_stack_free(st);
	return e;
}

/* The listening worker (worker 0) and the ones it starts: runs on a thread
 * of its own (thoth_serve_per_cpu). */
static int serve_workers(const thoth_chan_server_config_t *cfg, const cpu_set_t *allowed_set)
{
	cpu_set_t allowed = *allowed_set;
	unsigned n = (unsigned)CPU_COUNT(&allowed);
	struct worker *w = calloc(n, sizeof *w);
	if (!w)
		return THOTH_E_NOMEM;
	unsigned k = 0;
	for (int cpu = 0; cpu < CPU_SETSIZE && k < n; cpu++)
		if (CPU_ISSET(cpu, &allowed))
			w[k++] = (struct worker){ .cpu = cpu, .pipe_rd = -1, .pipe_wr = -1 };
	thoth_chan_server_config_t c = *cfg;
	if (!c.log) {
		c.log = log_to_handler;
		c.log_arg = (void *)(cfg->iface ? cfg->iface->name : "thoth_serve_per_cpu");
	}
	char why[300];
	thoth_loop_t *loop = NULL;
	thoth_chan_server_t *srv = NULL;
	unsigned started = 0;
	/* Every worker's counters in its slot of the trace buffer, set on its
	 * own thread before it serves (NULL: they stay private). */
	void *slots = claim_slots(n, &c);
	for (unsigned i = 0; i < n; i++)
		w[i].slot = slot_at(slots, i);
	/* Worker 0 is this thread: it listens, routes and serves its CPU. */
	int r = pin_to(w[0].cpu);
	if (!r)
		r = thoth_loop_new(&loop);
	if (!r) {
		/* Signals first: the workers inherit the blocked mask. */
		thoth_loop_add_signal(loop, SIGTERM, stop_loop, NULL);
		thoth_loop_add_signal(loop, SIGINT, stop_loop, NULL);
		r = thoth_chan_server_new(loop, &c, &srv, why, sizeof why);
		if (r)
			thoth__log(THOTH_LOG_ERROR, "thoth_serve_per_cpu", "%s", why);
		else
			stats_to_slot(srv, w[0].slot);
	}
	w[0].srv = srv;
	w[0].loop = loop;
	for (unsigned i = 1; !r && i < n; i++) {
		int p[2];
		if (pipe2(p, O_NONBLOCK | O_CLOEXEC)) {
			r = thoth_error_io(errno, "pipe2");
			break;
		}
		w[i].pipe_rd = p[0];
		w[i].pipe_wr = p[1];
		if (pthread_barrier_init(&w[i].ready, NULL, 2)) {
			r = THOTH_E_NOMEM;
			break;
		}
		w[i].ready_init = true;
		worker_start_t ws = { &w[i], &c };
		if (start_on_node(&w[i].thread, w[i].cpu, &w[i].stack, worker_main, &ws)) {
			r = THOTH_E_NOMEM;
			break;
		}
		/* Both sides leave the barrier, but the worker may still be
		 * inside pthread_barrier_wait when ours returns: the barrier is
		 * destroyed after the join below (the join orders the worker's
		 * last access before the destroy). */
		pthread_barrier_wait(&w[i].ready);
		started = i;
		r = w[i].status;
	}
	/* The machine's CPUs by topology, for "nearest" (sysfs: no hwloc in a
	 * service); unreadable, routing falls back to CPU numbers. */
	place_cpumap_t *map = r ? NULL : malloc(sizeof *map);
	if (map && place_cpumap_load(map, NULL)) {
		free(map);
		map = NULL;
	}
	if (!r) {
		srv->n_workers = n;
		srv->cpumap = map;
		/* Release: a folding reader that sees the workers sees their servers. */
		__atomic_store_n(&srv->workers, w, __ATOMIC_RELEASE);
		set_serving(srv);
		r = thoth_loop_run(loop);
		set_serving(NULL);
		__atomic_store_n(&srv->workers, NULL, __ATOMIC_RELEASE);
		srv->cpumap = NULL;
	}
	free(map);
	/* Stop the workers (each at its next wake-up), then free in order. */
	for (unsigned i = 1; i <= started; i++) {
		handover_t stop = { .fd = -1 };
		if (write(w[i].pipe_wr, &stop, sizeof stop) != (ssize_t)sizeof stop && w[i].loop)
			thoth_loop_stop(w[i].loop);
		pthread_join(w[i].thread, NULL);
		thoth__numa_stack_free(&w[i].stack);
		thoth_chan_server_free(w[i].srv);
		thoth_loop_free(w[i].loop);
	}
	for (unsigned i = 1; i < n; i++) {
		if (w[i].ready_init)
			pthread_barrier_destroy(&w[i].ready);
		if (w[i].pipe_rd >= 0)
			close(w[i].pipe_rd);
		if (w[i].pipe_wr >= 0)
			close(w[i].pipe_wr);
	}
	thoth_chan_server_free(srv);
	if (slots)
		thoth__trace_serve_release();   /* no worker writes any more */
	thoth_loop_free(loop);
	free(w);
	return r;
}

typedef struct per_cpu_start {
	const thoth_chan_server_config_t *cfg;
	cpu_set_t allowed;
	int r;
	thoth_error_info_t err;         /* its thread's thoth_last_error() */
} per_cpu_start_t;

static void *per_cpu_main(void *arg)
{
	per_cpu_start_t *ps = arg;
	ps->r = serve_workers(ps->cfg, &ps->allowed);
	ps->err = *thoth_last_error();
	return NULL;
}

/*
 * Every worker, the listening one included, runs on a thread of its own
 * that pins itself before it allocates anything, so that what it allocates
 * (its loop, server, channels' state, and whatever its handlers malloc: each
 * thread has its own malloc arena) is first touched on its CPU's node.  The
 * calling thread cannot give that: its heap is the process's main arena,
 * whose free pages were touched wherever the program ran before; in a
 * 2-node guest (scripts/qemu-numa.sh) a handler's heap block on the
 * caller's worker was on the other node while every other worker's was
 * local (docs/SCALE.md).  The caller waits, with SIGTERM and SIGINT blocked
 * so that they reach the listening worker's signalfd.
 */
int thoth_serve_per_cpu(const thoth_chan_server_config_t *cfg)
{
	per_cpu_start_t ps = { .cfg = cfg };
	if (!cfg || sched_getaffinity(0, sizeof ps.allowed, &ps.allowed))
		return THOTH_E_INVAL;
	if (CPU_COUNT(&ps.allowed) <= 1)
		return thoth_serve(cfg);
	sigset_t stop, old;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	/* Worker 0 serves the first allowed CPU (serve_workers): its stack on
	 * that CPU's node, like every worker's (start_on_node). */
	int cpu0 = 0;
	while (cpu0 < CPU_SETSIZE - 1 && !CPU_ISSET(cpu0, &ps.allowed))
		cpu0++;
	pthread_t t;
	thoth_numa_stack_t stack0;
	int e = start_on_node(&t, cpu0, &stack0, per_cpu_main, &ps);
	if (e) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return thoth_error_io(e, "pthread_create (thoth_serve_per_cpu's first worker)");
	}
	pthread_join(t, NULL);
	thoth__numa_stack_free(&stack0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ps.r == THOTH_E_IO && ps.err.code == THOTH_E_IO)
		thoth_error_io(ps.err.sys_errno, "%s", ps.err.what);
	return ps.r;
}
