/*
 * thothd.h - the daemon's insides, shared by its files, the fuzz target
 * and the benchmarks (not a public header).
 *
 *   server.c    control socket: accept, per-client framing and output queue,
 *               dispatch by interface id, closing misbehaving clients
 *   handlers.c  Registry and Daemon handlers: the glue between decoded
 *               requests and the registry core (registry.c),
 *               watch pushes, the one expiry timer
 *   trace.c     TraceControl: trace buffers handed over by processes,
 *               sessions, the drain timer (only during a session), dumps
 *   endpoints.c removes the endpoint socket a dead service left behind
 *   defer.c     deferred answers: slow requests' work on worker threads,
 *               answered through the loop (an eventfd doorbell), a drain
 *               they need first on the task thread (prep); tasks: thothd's
 *               own slow work (the dashboard's drain of a busy backlog, a
 *               gone process's rest, its lock panel's report)
 *   locks.c     LockReports (OBS-4) and trace sessions' lock source; with
 *               locks_scan.c, thothd's executable only (locks.h)
 *   runtime.c   runtime dir and single-instance lock; log.c the log
 *   main.c      arguments, signals, the loop
 *   registry.c  the registry core: pure data structure (registry.h)
 *   lifecycle.c the recent history of services' lifecycle events (OBS-3)
 *
 * Everything runs on one thoth_loop thread, except the trace collector
 * thread trace.c runs while a session is active (it touches only the
 * tracer's state, under the tracer's own mutex), and the workers and the
 * task thread of deferred answers (defer.c: a job's work touches what the
 * job owns, or state behind its owner's lock -- the dashboard's figures
 * behind the tracer's mutex -- and its answer is made on the loop thread).  A client is closed only from
 * reap_doomed() at the end of a loop callback, never in the middle of one,
 * so a handler (or a watch event to another client) may doom any client
 * without pulling state from under the code that is running.
 */
#ifndef THOTHD_THOTHD_H
#define THOTHD_THOTHD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../ipc/stream_buf.h"     /* relative: not every includer has kernel/ipc on its path */
#include "daemon.thoth.h"
#include "fed_view.h"
#include "locks.thoth.h"
#include "log.h"
#include "pm.thoth.h"
#include "probe.thoth.h"
#include "registry.h"
#include "registry.thoth.h"
#include "thoth/loop.h"
#include "thoth/stream.h"
#include "thoth/trace.h"
#include "thoth/version.h"
#include "trace.thoth.h"

#define THOTHD_VERSION THOTH_VERSION_STRING   /* thoth/version.h: CMake project(VERSION) */

typedef struct thothd_config {
	const char *runtime_dir;        /* reported by Daemon.status */
	uint32_t max_body;              /* largest request body (0: 1 MiB) */
	uint32_t max_clients;           /* connections at once (0: 1024) */
	size_t max_backlog;             /* unsent bytes before a client is dropped (0: 8 MiB) */
	uint32_t max_per_client;        /* registrations per connection (0: 64) */
	uint32_t max_watches_per_client;/* (0: 16) */
	uint64_t expiry_slack_ns;       /* slack of the lease-expiry timer (0: 20 ms) */
	uint32_t max_clients_per_uid;   /* connections one uid may hold (0: 3/4 of max_clients) */
	uint32_t max_leases_per_uid;    /* PM leases of one uid's connections together
					 * (0: 3/4 of THOTHD_PM_MAX_LEASES; docs/PM.md) */
	uint64_t frame_timeout_ns;      /* a connection's first message, and any message once
					 * begun, must be complete within this (0: 5 s) */
	size_t max_input;               /* bytes buffered for incomplete messages, all
					 * clients together (0: 32 MiB) */
	size_t max_output;              /* bytes held for clients that have not read them
					 * (unsent, not queue capacity), all clients together
					 * (0: 64 MiB) */
	uint64_t trace_detach_ns;       /* a trace session outlives the connection that
					 * started it by this much (0: 60 s) */
	bool trace_collect_on_loop;     /* --trace-collector loop: the session's buffers are
					 * drained on the loop thread (the old path, kept as
					 * the benchmark's baseline); default: a collector
					 * thread while a session runs (trace.c) */
	/* SCALE-1: NUMA distances by the kernel's node numbers, n_nodes x
	 * n_nodes (main.c reads them with hwloc); NULL: all other nodes
	 * equally far.  Copied by the registry. */
	const uint32_t *node_distance;
	uint16_t n_nodes;
} thothd_config_t;

typedef struct thothd thothd_t;
typedef struct thothd_client thothd_client_t;
typedef struct thothd_tracer thothd_tracer_t;
typedef struct thothd_probes thothd_probes_t;
typedef struct thothd_endpoints thothd_endpoints_t;
typedef struct thothd_pm thothd_pm_t;
typedef struct thothd_rtable thothd_rtable_t;
typedef struct thothd_locks thothd_locks_t;
typedef struct thothd_lifecycle thothd_lifecycle_t;

/* File descriptors a client may have in flight (SCM_RIGHTS) before the
 * message that uses them is handled; more doom the client. */
#define THOTHD_CLIENT_MAX_FDS 4
#define THOTHD_PM_MAX_LEASES 16384      /* PM leases in all (pm.c, thothd_pm_new, says why) */

struct thothd_client {
	thothd_t *d;
	uint64_t id;                    /* for the log */
	int fd;                         /* -1: in-process client (fuzzing): output discarded */
	uint32_t uid, pid;              /* SO_PEERCRED */
	int accept_pidfd;               /* PID pinned at accept where SO_PEERPIDFD is missing; else -1 */
	bool accept_pin_gone;           /* PID named no process at accept: never opened later */
	thoth_source_t *source;
	thoth_stream_reader_t reader;
	thoth_registry_owner_t *owner;
	int fds[THOTHD_CLIENT_MAX_FDS]; /* received with its bytes, oldest first */
	uint32_t n_fds;
	thoth_outq_t out;               /* queued output the socket has not taken */
	bool paused;                    /* not reading: backlog above the pause threshold */
	bool said_hello;                /* has sent one complete message */
	bool exe_known;                 /* its executable was looked up (name ownership) */
	bool pm_share_warned;           /* pm.c: its lease share refusal was logged; cleared by a grant */
	bool pm_req_share_warned;       /* pm.c: the same for requests; cleared by a queued request */
	uint64_t last_active_ns;        /* last complete message (eviction picks the oldest) */
	uint64_t partial_since;         /* in d's partial list since (frame deadline) */
	bool in_partial;
	thothd_client_t *partial_prev, *partial_next;
	size_t input_counted;           /* reader bytes counted in d->input_bytes */
	size_t output_counted;          /* unsent bytes counted in d->output_bytes */
	size_t kept_counted;            /* a drained queue's capacity counted in d->kept_bytes */
	bool doomed;                    /* to be closed by reap_doomed() */
	char doom_reason[160];
	/* Deferred answers (defer.c): while one of this connection's requests
	 * is answered later, the answers of its next requests wait behind it in
	 * this list, so a pipelining client gets them in order. */
	struct thothd_held *held_head, *held_tail;
	uint32_t n_held;                /* answers in the list (pending or ready) */
	uint32_t n_jobs;                /* of those, still being worked on */
	thothd_client_t *prev, *next;   /* all clients */
	thothd_client_t *next_doomed;
};

/* The lock rings' kept descriptors at most (locks.h's THOTHD_LOCKS_KEPT_FDS_MAX,
 * which locks.c checks): thothd's sizing counts them (server.c). */
#define THOTHD_LOCK_RING_FDS_MAX 128

struct thothd {
	thothd_config_t cfg;
	/* Descriptors the lock rings' polls may keep (locks.h), taken off
	 * the clients' like the tracer's pidfds: thothd_locks_new hands it
	 * to them. */
	uint32_t lock_ring_fds;
	thoth_loop_t *loop;             /* NULL for in-process use (fuzzing) */
	thoth_registry_t *registry;
	int listen_fd;
	thoth_source_t *listen_source;
	char socket_path[108];
	thothd_client_t *clients;
	uint32_t n_clients;
	uint64_t next_client_id;
	thothd_client_t *doomed;
	thoth_timer_t *expiry_timer;    /* kept after it fires; re-armed, never periodic */
	thothd_tracer_t *tracer;        /* trace sources and the session (trace.c) */
	thothd_endpoints_t *endpoints;  /* dead services' sockets to remove (endpoints.c) */
	/* Connections with an incomplete message (or none yet), oldest first:
	 * ONE timer for the head's deadline, armed only while the list is not
	 * empty, so an idle thothd never wakes up for it. */
	thothd_client_t *partial_head, *partial_tail;
	thoth_timer_t *frame_timer;
	size_t input_bytes;             /* read buffers beyond one chunk, all clients */
	size_t output_bytes;            /* unsent output, all clients (max_output) */
	size_t kept_bytes;              /* capacity of drained queues kept (OUTQ_KEPT_MAX) */
	struct thothd_uid_count {       /* connections and their unsent output per uid */
		uint32_t uid, n;
		size_t unsent;
	} *uids;
	size_t n_uids, uids_cap;
	int reserve_fd;                 /* closed to accept-and-close at the fd limit */
	thoth_timer_t *accept_timer;    /* accepting paused (fd limit) until it fires */
	thothd_pm_t *pm;                /* the power broker (pm.c) */
	thothd_probes_t *probes;        /* probes handed to traced processes (probe.c) */
	/* LockReports (locks.c, set by thothd's executable: it links libdw); NULL:
	 * the interface is answered as unknown. */
	thothd_locks_t *locks;
	const thoth_locks_LockReports_handlers_t *locks_handlers;
	/* Lock-table symbols kept across reports (locks.h), shared by LockReports
	 * and the dashboard's lock panel; NULL: each scan symbolizes afresh. */
	struct thothd_lock_symcache *lock_syms;
	/* Guards lock_syms: reports symbolize on worker threads (locks.c). */
	pthread_mutex_t *lock_syms_mu;
	/* The trace sessions' ring follower (locks.c), for /metrics: its rings
	 * read afresh for want of descriptors (thothd_lock_rings_unkept). */
	struct thothd_lock_rings *lock_session_rings;
	thothd_rtable_t *rtable;        /* the shared resolve table (rtable.c); NULL if none */
	struct thothd_jobs *jobs;       /* deferred answers' workers (defer.c); NULL until the first */
	bool jobs_freed;                /* thothd_jobs_free ran: nothing is deferred any more (a
					 * closing client's source is closed inline, not by a task) */
	bool defer_off;                 /* THOTHD_DEFER=off: slow requests answered on the loop
					 * thread as before (the benchmarks' baseline) */
	struct thothd_page_watch *page_watches;   /* exited processes' page slots to reap (timerpage.c) */
	/* Also told every registry change, after the resolve table: the etcd
	 * mirror (federation.c, issue 19) when thothd runs with --etcd. */
	void (*change_hook)(void *arg, int kind, const thoth_registry_Instance_t *inst);
	void *change_hook_arg;
	/* Appends a module's own /metrics text (the federation's, with
	 * --etcd): bytes written to OUT, -1 when CAP is too small.  Set by
	 * main(); http.c knows no module behind it. */
	int (*metrics_hook)(void *arg, char *out, size_t cap);
	void *metrics_hook_arg;
	/* With --etcd: the federation as Daemon.status and the dashboard show
	 * it (fed_view.h; main() sets thothd_federation_view). */
	thothd_fed_view_fn federation_view;
	void *federation_view_arg;
	bool expiry_armed;
	char dashboard_url[128];        /* "" when no dashboard serves (Daemon.status) */
	thothd_lifecycle_t *lifecycle;  /* recent lifecycle events (lifecycle.c) */
	/* While client_close drops a connection's registrations: their
	 * REMOVED changes are losses, its process in this state (lifecycle.c);
	 * THOTHD_PID_NOT_LOST otherwise (a withdraw). */
	int closing_pidfd;
	int closing_state;
	uint32_t pid;                   /* traced as service_id: thothd serves every call */
	uint64_t started_ns;
	/* Per-message scratch: response buffer and decode arena. */
	uint8_t *out;
	size_t out_cap;
	uint8_t *arena;
	size_t arena_cap;
	uint8_t *event_buf;             /* encoding RegistryEvents.changed */
	size_t event_cap;
	/* Counters (Daemon.status, tests). */
	uint64_t messages, closed_bad_input;
	uint64_t refused, evicted, timed_out, over_budget, over_output_budget, fd_limit_hits;
	thothd_log_limit_t refuse_log;  /* refused/evicted connections, accept errors */
	thothd_log_limit_t drop_log;    /* clients dropped for bad input */
	/* "registered" lines (a client registering and withdrawing in a loop
	 * would flood the log), and "lost" lines: each its own bucket, so that
	 * a registration flood never takes a loss's or an expiry's line (the
	 * expiry line, one per sweep, is not limited).  log_flush_timer:
	 * armed while such lines are suppressed, says their count when the
	 * burst ends (thothd_arm_log_flush, thothd_log_limit_flush). */
	thothd_log_limit_t register_log, lost_log;
	thoth_timer_t *log_flush_timer;
	/* thothd_free under way: the clients it closes are not lost (the
	 * services live on), so no "lost" line and no flush timer armed. */
	bool freeing;
};

/* A timer that says, 1 s on, how many registered and lost lines the log's
 * buckets suppressed since the last that passed (server.c). */
void thothd_arm_log_flush(thothd_t *d);
int thothd_new(const thothd_config_t *cfg, thoth_loop_t *loop, thothd_t **out);
/* Close every client and the listener (unlinking the socket). */
void thothd_free(thothd_t *d);

/* Bind and listen on PATH, mode 0600 (a stale socket file there is
 * replaced: the caller holds the runtime dir's lock).  On failure WHY names
 * the system call and its errno ("bind /run/thoth/thothd.sock: EACCES"). */
int thothd_listen(thothd_t *d, const char *path, char *why, size_t why_len);
/* Serve FD, a listening socket passed by a service manager (not unlinked
 * by thothd_free). */
int thothd_listen_fd(thothd_t *d, int fd);

/* SCHED-3 window page (timerpage.c): the connection of process PID
 * closed, so if PID is exiting its loops leave page slots and doorbells
 * behind: watch PID (a pidfd on the loop: no timer, no wake-up while it
 * lives) and reap them when it has exited. */
void thothd_timerpage_client_closed(thothd_t *d, uint32_t pid);
/* Daemon.timer_page: the page's memfd attached to the answer. */
/* SCALE-2 (serve_stats.c): the serve counters of connected processes. */
int thothd_on_serve_stats(void *self, const thoth_daemon_Daemon_serve_stats_req_t *req,
			  thoth_daemon_Daemon_serve_stats_resp_t *resp, thoth_arena_t *arena);
int thothd_on_timer_page(void *self, const thoth_daemon_Daemon_timer_page_req_t *req,
			 thoth_daemon_Daemon_timer_page_resp_t *resp, thoth_arena_t *arena);
/* Free the watches (thothd_free). */
void thothd_timerpage_free(thothd_t *d);

/* A connected client on FD (-1: in-process, output discarded). */
int thothd_client_open(thothd_t *d, int fd, uint32_t uid, uint32_t pid, thothd_client_t **out);

/* Append bytes as if read from the client's socket (in-process clients). */
int thothd_client_feed(thothd_client_t *c, const void *bytes, size_t len);

/*
 * Handle every complete message buffered for C: the connection handler the
 * daemon runs after each read, and the fuzz target's entry point.  Bad input
 * dooms C (with a logged reason); call thothd_reap() afterwards.
 */
void thothd_client_process(thothd_t *d, thothd_client_t *c);

/* Close doomed clients (peer death for the registry: their registrations
 * go at once) and re-arm the expiry timer. */
void thothd_reap(thothd_t *d);

void thothd_client_doom(thothd_client_t *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Queue bytes for C (sent at once when the socket takes them). */
void thothd_client_send(thothd_client_t *c, const void *buf, size_t len);

/* The oldest file descriptor C sent that no message has used yet (the
 * caller owns it), or -1. */
int thothd_client_take_fd(thothd_client_t *c);

/* ---- handlers.c ---- */

/* Per-request context handed to the generated handlers as `self`. */
typedef struct thothd_call {
	thothd_t *d;
	thothd_client_t *client;
	thoth_server_io_t *io;
	const char *reason;             /* replaces the error name in an error response */
	void *scratch;                  /* freed after the response is encoded */
	int send_fd;                    /* >= 0: attach to the response (not owned) */
	const uint8_t *msg;             /* the request (its header names the deferred answer) */
	size_t len;
	struct thothd_job *job;         /* set by thothd_defer: answered later */
} thothd_call_t;

/* ---- defer.c: deferred answers (SCALE-2) ----
 * A handler whose work is slow (a trace dump, a first lock report) hands it
 * to a worker thread and answers later, so the loop thread keeps serving
 * everyone else.  The connection's later answers wait behind the deferred
 * one (ordering per connection); a connection that closes meanwhile
 * orphans its job, whose result is freed unsent.  Bounded:
 * THOTHD_DEFER_PER_CLIENT jobs per connection and THOTHD_DEFER_TOTAL in
 * all, beyond which the request is refused (THOTH_E_LIMIT, with a reason).
 * A worker tells the loop through an eventfd when a job is done: nothing
 * wakes while no job runs (idle thothd stays at 0 wake-ups). */
enum {
	THOTHD_DEFER_PER_CLIENT = 2,
	THOTHD_DEFER_TOTAL = 16,
	THOTHD_DEFER_WORKERS = 2,
	/* Answers held behind a deferred one before the connection is no longer
	 * read (back-pressure, like unsent output). */
	THOTHD_HELD_MAX = 64,
};

typedef struct thothd_job_ops {
	const thoth_method_info_t *method;      /* whose response the job answers */
	/* Task thread, before WORK (NULL: none; a deferred answer's only):
	 * a short part that must run at thothd's own priority and in turn with
	 * the dashboard's drains -- a drain of trace rings beside the live
	 * observer (a stop's last drain, a write's drain of an active session;
	 * trace.c).  Then WORK (if any) on a worker.  Same rules as WORK. */
	void (*prep)(void *arg);
	/* Worker thread: the slow part (NULL: none, PREP was all).  Touches
	 * only what ARG owns, or state behind its owner's own lock. */
	void (*work)(void *arg);
	/* Loop thread, once, after WORK (RAN false: it never ran, thothd is
	 * stopping).  Fills RESP (zeroed, METHOD's response struct; NULL when
	 * nobody waits for the answer any more: the connection closed) and
	 * returns the handler's status (0, an application error > 0, or a
	 * THOTH_E_* code) with *REASON naming an error (it may point into
	 * ARG: the answer is encoded before RELEASE).  Strings RESP points to
	 * go in ARENA (the inline path releases ARG before encoding). */
	int (*done)(void *arg, bool ran, void *resp, thoth_arena_t *arena, const char **reason);
	/* Loop thread, last: frees ARG (after the answer is encoded). */
	void (*release)(void *arg);
} thothd_job_ops_t;

/* In a handler: answer this request later with OPS on ARG.  0: deferred
 * (the handler returns 0; its response struct is ignored); 1: not deferred
 * (no loop, or THOTHD_DEFER=off): the handler runs WORK and DONE itself on
 * its own response (thothd_run_inline); THOTH_E_LIMIT with call->reason set
 * past a bound, or THOTH_E_NOMEM (ARG is NOT released: the caller's). */
int thothd_defer(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg);
/* The inline path: PREP, WORK, DONE on RESP, RELEASE after copying REASON into
 * the call's scratch.  Returns DONE's status. */
int thothd_run_inline(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg, void *resp,
		      thoth_arena_t *arena);
/* Handler helper: defer, or run inline when deferring is off.  Refused
 * (< 0): only RELEASE is called (DONE is not: nothing happened). */
int thothd_defer_or_run(thothd_call_t *call, const thothd_job_ops_t *ops, void *arg, void *resp,
			thoth_arena_t *arena);
/* thothd's own slow work, answering nobody (the dashboard's drain of busy
 * trace rings): OPS->work(ARG) on a worker, then OPS->done(ARG, ran, NULL,
 * arena, &reason) and OPS->release(ARG) on the loop thread (OPS->method
 * unused).  0: queued; 1: not deferred (THOTHD_DEFER=off, no loop, or
 * stopping): the caller works inline; <0: error (nothing queued). */
int thothd_defer_task(thothd_t *d, const thothd_job_ops_t *ops, void *arg);
/* The same on the workers (nice +10, shared with the slow requests), not
 * the task thread: for slow work that holds no lock the loop thread waits
 * for and can be late (the lock panel's report: ~90 ms of CPU when cold),
 * so that it never delays a drain queued behind it on the task thread. */
int thothd_defer_task_slow(thothd_t *d, const thothd_job_ops_t *ops, void *arg);
/* handle_message: queue the job the handler deferred (after it returned). */
void thothd_jobs_submit(thothd_t *d, struct thothd_job *job);
/* C is closing: its pending jobs finish unanswered. */
void thothd_jobs_orphan(struct thothd_job *job);
/* Stop the workers: jobs queued and not started are given up (DONE with
 * RAN false), running ones finish first.  Idempotent; thothd_free and
 * thothd_locks_free call it (their state is what the jobs use). */
void thothd_jobs_stop(thothd_t *d);
void thothd_jobs_free(thothd_t *d);
/* Counters (Daemon.status is not changed: tests read the log). */
typedef struct thothd_jobs_stats {
	uint64_t deferred, refused, orphaned, pending;
	uint64_t tasks;                 /* thothd_defer_task's, ever */
} thothd_jobs_stats_t;
void thothd_jobs_stats(const thothd_t *d, thothd_jobs_stats_t *out);

/* server.c side of deferred answers: a pending slot in C's answer list,
 * and its answer (BUF malloc'd, taken; NULL: none) once the job is done. */
struct thothd_held *thothd_client_hold(thothd_client_t *c, struct thothd_job *job);
void thothd_client_answered(thothd_client_t *c, struct thothd_held *slot, uint8_t *buf, size_t len);

extern const thoth_registry_Registry_handlers_t thothd_registry_handlers;
extern const thoth_daemon_Daemon_handlers_t thothd_daemon_handlers;

/* Registry change callback: pushes RegistryEvents.changed to the watcher. */
void thothd_on_registry_event(void *arg, const thoth_registry_event_t *ev);

/* Arm (or move, or cancel) the one timer for the registry's next expiry. */
void thothd_rearm_expiry(thothd_t *d);

/* ---- rtable.c (SCALE-2: the resolve table shared with clients) ---- */

/* Create the table (a failure is logged; thothd runs without it). */
int thothd_rtable_new(thothd_t *d);
void thothd_rtable_free(thothd_t *d);
/* The registry's on_change: mirror one change into the table. */
void thothd_rtable_on_change(void *arg, int kind, const thoth_registry_Instance_t *inst);
/* The table's memfd (-1 when there is none), its size and bucket count. */
int thothd_rtable_fd(const thothd_t *d, uint64_t *size, uint32_t *buckets);
uint32_t thothd_rtable_entries(const thothd_t *d);
/* Publish thothd's status (Daemon.status's fields) into the table for
 * readers that want no round trip (thoth_rtable_status): after every loop
 * iteration (main.c) and before every answer (server.c).  ~100 ns of
 * stores, no system call; nothing when there is no table. */
void thothd_rtable_publish_status(thothd_t *d);

/* ---- lifecycle.c (OBS-3: docs/THOTHD.md "Recent events") ---- */

/* The bounds: events kept (the oldest overwritten and counted as dropped),
 * losses a re-registration is matched against, service names with a
 * label of their own in thoth_thothd_service_lost_total. */
#define THOTHD_LIFECYCLE_EVENTS 64
/* SCALE-3: the other hosts Daemon.status lists (daemon.tidl Federation). */
#define THOTHD_STATUS_HOSTS 256
#define THOTHD_LIFECYCLE_LOSSES 64
#define THOTHD_LIFECYCLE_LABELS 32
/* Lost processes' pidfds kept at once, to say "exited" once a lost one
 * has (a kill -9 closes the socket just before the exit is signalled):
 * few are ever pending; more, all still running, are a peer closing its
 * connection in a loop. */
#define THOTHD_LIFECYCLE_PIDFDS 8
#define THOTH_LIFECYCLE_NAME_MAX 128    /* a registry name's longest (registry.h) */

typedef enum thothd_lifecycle_kind {
	THOTHD_LIFECYCLE_STARTED,
	THOTHD_LIFECYCLE_REGISTERED,
	THOTHD_LIFECYCLE_DEREGISTERED,
	THOTHD_LIFECYCLE_LOST,
	THOTHD_LIFECYCLE_REREGISTERED,
	THOTHD_LIFECYCLE_EXPIRED,
} thothd_lifecycle_kind_t;

typedef enum thothd_pid_state {
	THOTHD_PID_NOT_LOST,            /* "": not a loss */
	THOTHD_PID_EXITED,              /* its pidfd polls readable */
	THOTHD_PID_RUNNING,             /* its pidfd does not (yet) */
	THOTHD_PID_UNKNOWN,             /* no pidfd */
} thothd_pid_state_t;

/* One event: Daemon.status's LifecycleEvent (idl/daemon.tidl) in fixed
 * storage. */
typedef struct thothd_lifecycle_event {
	thothd_lifecycle_kind_t kind;
	thothd_pid_state_t pid_state;
	uint64_t at_unix_ns, at_ns;
	char service[THOTH_LIFECYCLE_NAME_MAX + 1];
	char version[40];
	uint64_t lease;
	uint32_t pid, previous_pid, predecessor_pid;
	uint64_t gap_ns, predecessor_started_unix_ns;
} thothd_lifecycle_event_t;

int thothd_lifecycle_new(thothd_lifecycle_t **out);
void thothd_lifecycle_free(thothd_lifecycle_t *l);
/* thothd (PID) started; PREDECESSOR_PID the thothd that left its pid file
 * (0: none), started at PREDECESSOR_STARTED_UNIX_NS. */
void thothd_lifecycle_started(thothd_lifecycle_t *l, uint64_t now_ns, uint32_t pid,
			      uint32_t predecessor_pid, uint64_t predecessor_started_unix_ns);
/* A registry change (on_change's KIND).  REMOVED with LOST_STATE other than
 * THOTHD_PID_NOT_LOST is a loss; LOST_PIDFD (>= 0: not taken, duplicated
 * when kept) is its process's. */
void thothd_lifecycle_change(thothd_lifecycle_t *l, int kind, const thoth_registry_Instance_t *inst,
			     uint64_t now_ns, int lost_pidfd, thothd_pid_state_t lost_state);
/* The state of the process PIDFD pins (-1: unknown). */
thothd_pid_state_t thothd_lifecycle_pid_state(int pidfd);
/* The events kept, oldest first, in two runs (the ring's wrap): *N_FIRST
 * at *FIRST, then the rest at *SECOND; returns how many in all.  Valid
 * until the next change.  *DROPPED: pushed out, ever. */
size_t thothd_lifecycle_read(thothd_lifecycle_t *l, const thothd_lifecycle_event_t **first,
			     size_t *n_first, const thothd_lifecycle_event_t **second,
			     uint64_t *dropped);
const char *thothd_lifecycle_kind_name(thothd_lifecycle_kind_t k);
const char *thothd_lifecycle_pid_state_name(thothd_pid_state_t s);
/* The dashboard's /lifecycle.json (malloc'd), NOW_NS the monotonic now. */
int thothd_lifecycle_json(thothd_lifecycle_t *l, uint64_t now_ns, char **out, size_t *len);
/* /metrics: losses per service (bounded labels), events and drops. */
void thothd_lifecycle_metrics(const thothd_lifecycle_t *l, FILE *f);

/* ---- trace.c ---- */

extern const thoth_trace_TraceControl_handlers_t thothd_trace_handlers;

/* The collector; takes this process's own trace buffer as a source if
 * thoth_trace_init* was called before. */
int thothd_tracer_new(thothd_t *d, thothd_tracer_t **out);
void thothd_tracer_free(thothd_tracer_t *t);
/* Does C hold something of the tracer's (its buffer, or the session)? */
bool thothd_tracer_holds(const thothd_tracer_t *t, const thothd_client_t *c);
/* The trace buffer reader of live process PID, or NULL (probe.c uses it). */
thoth_trace_reader_t *thothd_tracer_reader(thothd_tracer_t *t, uint32_t pid);

/* Probes (probe.c, idl/probe.tidl). */
int thothd_probes_new(thothd_t *d, thothd_probes_t **out);
void thothd_probes_free(thothd_probes_t *p);
/* C's connection is closing: the kernel probes it held are detached. */
void thothd_probes_client_closed(thothd_probes_t *p, const thothd_client_t *c);
/* Every probe as JSON (the dashboard's /probes.json): kernel probes with
 * their maps' entries (ring buffers not consumed).  *OUT is malloc'd. */
int thothd_probes_json(thothd_t *d, char **out, size_t *len);
/* C's connection is closing: its buffer stays only while a session needs it. */
void thothd_tracer_client_closed(thothd_tracer_t *t, const thothd_client_t *c);

/* The live observer (the dashboard): while set, MASK's categories are on in
 * every source and each drained event is handed to FN with its process's
 * name.  One observer at a time (THOTH_E_BUSY).  It drains with
 * thothd_tracer_live_drain(), when it wants (no timer of the tracer's).
 * FN runs with the tracer's mutex held, on the loop thread or on a
 * worker: whatever FN updates is guarded by that mutex, and the loop
 * thread reads it between thothd_tracer_live_lock and _unlock. */
typedef void (*thothd_trace_live_fn)(const thoth_trace_event_t *ev, const char *process, void *ctx);
int thothd_tracer_live_start(thothd_tracer_t *t, uint64_t mask, thothd_trace_live_fn fn, void *ctx);
void thothd_tracer_live_stop(thothd_tracer_t *t);
/* Loop thread.  At most THOTHD_LIVE_INLINE_MAX records waiting in all the
 * sources: drained here and now; more: drained by a worker
 * (thothd_defer_task), the loop thread going back to its clients; while
 * that drain runs a call does nothing (at most one in flight).
 * THOTHD_DEFER=off drains here always (the old path, the baseline).
 * 512 (~40 us of loop CPU, 2,048 before): the hand-off costs the loop
 * thread 10-27 us and a scrape 18-43 us more, about what 200-250
 * records' drain costs, so below that handing over costs more than it
 * saves and from 512 on it saves 18-83 us a drain (bench_scale section
 * 12, docs/SCALE.md "Where the inline limit sits"). */
enum { THOTHD_LIVE_INLINE_MAX = 512 };
void thothd_tracer_live_drain(thothd_tracer_t *t);
/* Loop thread: is a worker draining for the observer?  While it is, the
 * observer's readers should wait for it (thothd_tracer_live_on_drained:
 * FN(CTX) on the loop thread when it is done) rather than take the mutex:
 * the worker (nice +10) may be preempted holding it. */
bool thothd_tracer_live_busy(const thothd_tracer_t *t);
void thothd_tracer_live_on_drained(thothd_tracer_t *t, void (*fn)(void *ctx), void *ctx);
/* Loop thread: hold the tracer's mutex while reading what FN updates (a
 * worker's drain steps aside at its next chunk of records).  Do not call
 * other tracer entry points meanwhile (the mutex is not recursive). */
void thothd_tracer_live_lock(thothd_tracer_t *t);
void thothd_tracer_live_unlock(thothd_tracer_t *t);
/* The observer's own extra source (the dashboard's lock-ring poll,
 * http_live.c), polled by its drains wherever they run: POLL(T, CTX) with
 * the mutex held, on the loop thread after a small drain, or on the task
 * thread after a deferred one.  HEAVY(CTX) (mutex held, loop thread): is
 * the poll due now and too costly for the loop thread?  Then the drain is
 * deferred even with few records waiting.  CTX is the observer's; both are
 * dropped at thothd_tracer_live_stop.  Loop thread. */
typedef void (*thothd_trace_live_poll_fn)(thothd_tracer_t *t, void *ctx);
void thothd_tracer_live_set_poll(thothd_tracer_t *t, thothd_trace_live_poll_fn poll,
				 bool (*heavy)(void *ctx));
/* From within POLL, between two of its steps: let the loop thread have the
 * mutex if it waits for it (a no-op on the loop thread).  False when the
 * observer or its poll went away meanwhile: POLL must return at once,
 * touching nothing of its context. */
bool thothd_tracer_live_step(thothd_tracer_t *t);

typedef struct thothd_trace_source_info {
	uint32_t pid;
	const char *name;
	thoth_trace_stats_t stats;      /* since thothd mapped the buffer */
	uint32_t ring_records;          /* per ring */
	uint32_t last_drain_max;        /* most unread records one ring held at the last drain */
	bool connected;                 /* its process is still connected (or is thothd) */
} thothd_trace_source_info_t;
typedef void (*thothd_trace_source_fn)(const thothd_trace_source_info_t *info, void *ctx);
void thothd_tracer_foreach_source(const thothd_tracer_t *t, thothd_trace_source_fn fn, void *ctx);

/* Every connected process's trace buffer (not thothd's own), under the
 * tracer's lock: PID is the connection's peer (SO_PEERCRED), READER valid
 * only during the call (serve_stats.c reads the serve slots through it). */
typedef void (*thothd_trace_reader_fn)(thoth_trace_reader_t *reader, uint32_t pid, void *ctx);
void thothd_tracer_foreach_reader(thothd_tracer_t *t, thothd_trace_reader_fn fn, void *ctx);

/* SCALE-2 (serve_stats.c): Daemon.serve_stats, and the same as JSON for
 * the dashboard (malloc'd, NUL-terminated). */
int thothd_serve_stats_json(thothd_t *d, char **json, size_t *len);
/* thoth_oneways_dropped_total{pid,process} of every process whose trace
 * buffer thothd maps, one line each into F (serve_stats.c). */
void thothd_oneways_metrics(thothd_t *d, FILE *f);
/* S as a Prometheus label value's text (serve_stats.c): \\ and \" escaped,
 * a control character written '?'. */
void thothd_metrics_put_label(FILE *f, const char *s);

/* An extra event source of trace sessions (the lock profiler's rings,
 * locks.c): while a session records a category of MASK, FN is called at
 * each of its drains with the session's start time and adds what is new
 * with thothd_tracer_add_event; it returns the events it lost (overwritten
 * before they were read).  One source; FN NULL removes it. */
typedef uint64_t (*thothd_trace_source_poll_fn)(thothd_tracer_t *t, uint64_t since_ns, void *ctx);
void thothd_tracer_set_source(thothd_tracer_t *t, uint64_t mask, thothd_trace_source_poll_fn fn,
			      void *ctx);
/* Add EV to the active session (its categories and pid filter applied,
 * counted as dropped beyond the collector's limit). */
void thothd_tracer_add_event(thothd_tracer_t *t, const thoth_trace_event_t *ev, const char *process,
			     const char *thread);

/* ---- locks.c (thothd's executable only) ---- */

int thothd_locks_new(thothd_t *d, thothd_locks_t **out);
void thothd_locks_free(thothd_locks_t *l);
/* Removes the dead processes' markers in LOCKS_DIR (thothd_lock_prune,
 * locks.h), logging each; AT_START: thothd starting (a refused name a
 * warning, not a debug line).  At start and before every LockReports
 * scan (locks.c; the dashboard's panel, http_live.c, calls
 * thothd_lock_prune itself: it links without locks.c). */
void thothd_locks_prune(const char *locks_dir, bool at_start);

/* ---- endpoints.c ---- */

int thothd_endpoints_new(thothd_t *d, thothd_endpoints_t **out);
void thothd_endpoints_free(thothd_endpoints_t *e);
/* C (holding registrations) is closing: once its process has exited,
 * remove the endpoint sockets it registered in the runtime dir. */
void thothd_endpoints_owner_closed(thothd_endpoints_t *e, const thothd_client_t *c);
uint64_t thothd_endpoints_removed(const thothd_endpoints_t *e);
/* ---- pm.c: PowerBroker (PM-1, docs/PM.md) ---- */

extern const thoth_pm_PowerBroker_handlers_t thothd_pm_handlers;
extern const thoth_probe_ProbeControl_handlers_t thothd_probe_handlers;
int thothd_pm_new(thothd_t *d, thothd_pm_t **out);
void thothd_pm_free(thothd_pm_t *pm);
/* C's connection is closing: its leases and requests end, its elements die. */
void thothd_pm_client_closed(thothd_pm_t *pm, const thothd_client_t *c);
/* Send the PowerEvents a call caused (after that call's response). */
void thothd_pm_flush(thothd_pm_t *pm);
/* A registry instance came or went: service_qos records may cover other
 * elements now (reconciled at the next thothd_pm_flush).  PM may be NULL. */
void thothd_pm_registry_changed(thothd_pm_t *pm);
/* service_qos records held now (all connections): the fuzzer checks that a
 * client's go with it. */
uint32_t thothd_pm_service_qos_count(const thothd_pm_t *pm);

/* Make room for RESP of M in CALL's response buffer (handlers.c; every
 * handler whose response size depends on the data calls it). */
int thothd_reserve_response(thothd_call_t *call, const thoth_method_info_t *m, const void *resp);

/* Now, in ns of CLOCK_MONOTONIC (the loop's cached time when there is a loop). */
uint64_t thothd_now(const thothd_t *d);
/* A pidfd of C's peer (SO_PEERPIDFD; before Linux 6.5 the pidfd taken as
 * it connected), -1 when the peer is gone (trace.c).  The getsockopt it
 * asks through is a seam for test_thothd_peer_pidfd. */
int thothd__client_pidfd(const thothd_client_t *c);
extern int (*thothd__peer_getsockopt)(int fd, int level, int name, void *value, socklen_t *len);
/* Right after accept: on a kernel without SO_PEERPIDFD (asked once, at
 * the first connection) C's pid is pinned now, in C->accept_pidfd, before
 * the number can go to another process.  _forget: ask again (tests). */
void thothd__client_pin_accepted(thothd_client_t *c);
void thothd__peer_pidfd_forget(void);
/* /proc/PID/FILE of C's peer read (one read, NUL-terminated) or stat'ed
 * with the peer pinned (kernel/ipc/pidpin.h): its length or 0, or -1 with
 * errno ESRCH when the peer is gone, or went during the read (its number
 * may be another's: nothing read is its); EINVAL for a client with no pid
 * (in-process); EMFILE, ENFILE, ENOMEM: no pidfd, nothing read. */
ssize_t thothd__client_proc_read(const thothd_client_t *c, const char *file, char *buf, size_t cap);
int thothd__client_proc_stat(const thothd_client_t *c, const char *file, struct stat *st);
/* The capacity drained output queues may keep, all clients (server.c). */
size_t thothd_output_kept_max(void);

/* The calling thread's CPU time, ns (CLOCK_THREAD_CPUTIME_ID): what a drain
 * or a report cost the thread that ran it (server.c). */
uint64_t thothd_thread_cpu_ns(void);

#endif
