/*
 * server.c - thothd's control socket (thothd.h has the map of the daemon).
 *
 * Input:  a thoth_stream_reader_t per client (a body above what its method
 *         needs is refused from the header alone: request_body_limit), every
 *         complete message dispatched by its interface id: Registry, Daemon
 *         or TraceControl.  Incomplete messages are bounded in time (the
 *         frame deadline: one timer, armed only while one is pending) and
 *         in bytes (max_input over all clients).  File
 *         descriptors sent with the bytes (a trace buffer, SCM_RIGHTS) wait
 *         in the client's fd queue for the message that takes them.
 * Trace:  msg_recv is emitted by the stream reader; here thothd_dispatch
 *         (interface << 32 | method, handler status) and msg_send for the
 *         response, with the client's pid as service_id.
 * Output: answered at once with a non-blocking send; what the socket does
 *         not take is queued and flushed on EPOLLOUT.  Above a pause
 *         threshold the client is not read (a flood of requests from one
 *         client cannot grow thothd's memory); above max_backlog it is
 *         dropped (a watcher that never reads).  All queues together are
 *         bounded too (max_output, unsent bytes): past it the largest queue
 *         of the uid holding the most unsent output is dropped
 *         (output_account); a drained queue above OUTQ_KEEP gives its memory
 *         back, and so does any drained queue once OUTQ_KEPT_MAX is kept.
 * Bad input (bad header, a response or oneway where none belongs, a body
 * that does not decode, oversized) closes that client only, with a reason
 * in the log (rate-limited).  Its registrations go at once, as for any
 * closed connection.
 * Admission: connections per uid and in all are limited; at a limit the
 * quietest connection that holds nothing is evicted (make_room).  At the
 * descriptor limit accept-and-close with a reserve fd, then a pause
 * (at_fd_limit): never a busy loop.  docs/RELIABILITY.md has the promises.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdpass.h"
#include "ipc_trace.h"
#include "unixsock.h"
#include "log.h"
#include "thothd.h"
#include "trace_layout.h"

enum {
	PAUSE_BACKLOG = 1 << 20,        /* stop reading a client above this much unsent output */
	FILLS_PER_WAKEUP = 16,          /* fairness between clients */
	ACCEPTS_PER_WAKEUP = 64,        /* fairness between the listener and clients */
	ARENA_MIN = 1 << 16,
	FD_HEADROOM = 24,               /* descriptors kept for anything but client sockets */
	TRACE_PIDFDS_MAX = 4096,        /* the tracer's pidfds at most (reader.c's budget) */
	READ_CHUNK = 4096,              /* a reader's resting buffer (stream.c) */
	OUTQ_KEEP = 64 << 10,           /* a drained output queue above this is freed */
};
/* Drained queues' capacity kept, all clients: past it a drained queue is freed
 * (768 idle connections keeping 64 KiB each pinned 48 MiB). */
#define OUTQ_KEPT_MAX ((size_t)4 << 20)

size_t thothd_output_kept_max(void)
{
	return OUTQ_KEPT_MAX;
}

#define MS_NS 1000000ull
static const uint64_t ACCEPT_BACKOFF_NS = 100 * MS_NS;  /* at the fd limit */

/*
 * The largest body each request needs (refused from the header when a
 * client announces more, so nothing of it is buffered).  Registry.register:
 * name 128 + version 64 + address 1024 + 32 claims of 2 x 256-byte strings,
 * with the encoding's headers; batch_resolve: up to ~1,000 names;
 * TraceControl.dump/write: paths (PATH_MAX each).  Everything else carries
 * a short name or nothing.
 */
enum {
	BODY_REGISTER = 32 << 10,
	BODY_BATCH_RESOLVE = 256 << 10,
	BODY_TRACE_PATHS = 16 << 10,
	BODY_SMALL = 4 << 10,
	BODY_PROBE_OBJECT = 1 << 20,    /* ProbeControl.attach, kernel_attach: an eBPF ELF object */
	/* PowerBroker.declare: up to 64 elements of 16 levels and 16
	 * dependencies, ~3 KiB each at the longest names (a driver of many
	 * devices declares them all in one call, all or none). */
	BODY_PM_DECLARE = 256 << 10,
};

static uint32_t request_body_limit(void *arg, const uint8_t *header)
{
	const thothd_client_t *c = arg;
	uint32_t iface = thoth_le32(header + 8), method = thoth_le32(header + 12);
	uint32_t limit = BODY_SMALL;
	if (iface == THOTH_REGISTRY_REGISTRY_ID && method == 1)
		limit = BODY_REGISTER;
	else if (iface == THOTH_REGISTRY_REGISTRY_ID && method == 3)
		limit = BODY_BATCH_RESOLVE;
	else if (iface == THOTH_TRACE_TRACE_CONTROL_ID && (method == 3 || method == 6))
		limit = BODY_TRACE_PATHS;
	else if (iface == THOTH_PROBE_PROBE_CONTROL_ID && (method == 1 || method == 4))
		limit = BODY_PROBE_OBJECT;
	else if (iface == THOTH_PM_POWER_BROKER_ID && method == THOTH_PM_POWER_BROKER_DECLARE)
		limit = BODY_PM_DECLARE;
	return limit < c->d->cfg.max_body ? limit : c->d->cfg.max_body;
}

static const thoth_interface_info_t *const known_interfaces[] = {
	&thoth_registry_Registry_info,
	&thoth_registry_RegistryEvents_info,
	&thoth_daemon_Daemon_info,
	&thoth_trace_TraceControl_info,
	&thoth_pm_PowerBroker_info,
	&thoth_pm_PowerEvents_info,
	&thoth_probe_ProbeControl_info,
	&thoth_locks_LockReports_info,
};

static void *aligned_alloc8(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, n ? n : 8))
		return NULL;
	return p;
}

uint64_t thothd_now(const thothd_t *d)
{
	return d->loop ? thoth_loop_now(d->loop) : thoth_clock_now();
}

uint64_t thothd_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The end of a burst of registered or lost lines suppressed: their count
 * said 1 s after the first suppressed (a bucket of 5 a second has a line
 * back by then), not at the next such line, maybe hours on. */
static void log_flush_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_t *d = arg;
	d->log_flush_timer = NULL;      /* fired, not re-armed: freed by the loop */
	thothd_log_limit_flush(&d->register_log, THOTHD_LOG_INFO, "registered");
	thothd_log_limit_flush(&d->lost_log, THOTHD_LOG_INFO, "lost");
}

void thothd_arm_log_flush(thothd_t *d)
{
	if (!d->loop || d->log_flush_timer)
		return;
	if (thoth_loop_add_timer(d->loop, thoth_loop_now(d->loop) + 1000000000ull, 100000000ull,
				 log_flush_fired, d, &d->log_flush_timer))
		d->log_flush_timer = NULL;      /* said at the next line that passes */
}

/* Every registry change: mirrored into the shared resolve table (SCALE-2)
 * and, when federated, into etcd (change_hook: issue 19). */
static void thothd_on_change(void *arg, int kind, const thoth_registry_Instance_t *inst)
{
	thothd_t *d = arg;
	thothd_rtable_on_change(d, kind, inst);
	thothd_lifecycle_change(d->lifecycle, kind, inst, thothd_now(d), d->closing_pidfd,
				(thothd_pid_state_t)d->closing_state);
	const thoth_registry_Registration_t *reg = &inst->registration;
	if (kind == THOTH_REGISTRY_CHANGE_KIND_REMOVED && d->closing_state != THOTHD_PID_NOT_LOST &&
	    reg->endpoint.locality != THOTH_COMMON_LOCALITY_REMOTE && !d->freeing)
		/* Its own bucket: never taken by a registration flood. */
		thothd_log_limited(&d->lost_log, THOTHD_LOG_INFO,
				   "lost %.*s %.*s (pid %u, lease %016llx): its connection closed while "
				   "registered", (int)reg->name.len, reg->name.ptr, (int)reg->version.len,
				   reg->version.ptr, reg->endpoint.pid, (unsigned long long)inst->lease);
	if (d->lost_log.suppressed && !d->freeing)
		thothd_arm_log_flush(d);
	if (kind != THOTH_REGISTRY_RENEWED)
		thothd_pm_registry_changed(d->pm);      /* PM-2: bounds attached to resolves */
	if (d->change_hook)
		d->change_hook(d->change_hook_arg, kind, inst);
}

int thothd_new(const thothd_config_t *cfg, thoth_loop_t *loop, thothd_t **out)
{
	thothd_t *d = calloc(1, sizeof *d);
	if (!d)
		return THOTH_E_NOMEM;
	if (cfg)
		d->cfg = *cfg;
	d->pid = (uint32_t)getpid();
	thothd_config_t *c = &d->cfg;
	if (!c->max_body)
		c->max_body = 1u << 20;
	if (!c->max_clients)
		c->max_clients = 1024;
	/* Never more clients than descriptors: at the limit thothd would fail
	 * to accept (and to open anything else) instead of refusing cleanly. */
	d->lock_ring_fds = THOTHD_LOCK_RING_FDS_MAX;
	struct rlimit nofile;
	if (loop && getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
		rlim_t usable = nofile.rlim_cur > 2 * FD_HEADROOM ? nofile.rlim_cur - FD_HEADROOM
								 : nofile.rlim_cur / 2;
		/* The lock rings' kept memfds and pidfds (two per followed
		 * process, 64 processes): all 128 where a quarter of the
		 * descriptors holds them, else that quarter (the rings beyond
		 * it are read afresh at each poll, through the headroom).
		 * Uncounted, they took the clients' last descriptors: accept
		 * failed with EMFILE below max_clients and the polls skipped
		 * processes. */
		rlim_t ring_fds = usable / 4 < THOTHD_LOCK_RING_FDS_MAX ? usable / 4 : THOTHD_LOCK_RING_FDS_MAX;
		d->lock_ring_fds = (uint32_t)ring_fds;
		usable -= ring_fds;
		/* The tracer's pidfds (a reader holds up to 17, and 1,024
		 * buffers may be mapped): a quarter of the rest, taken off the
		 * clients', so neither runs the other out of descriptors. */
		rlim_t pidfds = usable / 4 < TRACE_PIDFDS_MAX ? usable / 4 : TRACE_PIDFDS_MAX;
		thoth__trace_reader_pidfd_budget((uint32_t)pidfds);
		usable -= pidfds;
		/* Lost processes' pidfds the lifecycle history keeps (at most
		 * THOTHD_LIFECYCLE_PIDFDS, lifecycle.c), or an eighth of the
		 * rest when that is less (one it cannot keep leaves its loss's
		 * state "unknown"). */
		usable -= usable / 8 < THOTHD_LIFECYCLE_PIDFDS ? usable / 8 : THOTHD_LIFECYCLE_PIDFDS;
		if (usable < c->max_clients)
			c->max_clients = (uint32_t)usable;
	}
	if (!c->max_clients_per_uid)
		c->max_clients_per_uid = (c->max_clients * 3 + 3) / 4;
	if (c->max_clients_per_uid > c->max_clients)
		c->max_clients_per_uid = c->max_clients;
	if (!c->frame_timeout_ns)
		c->frame_timeout_ns = 5000 * MS_NS;
	if (!c->max_input)
		c->max_input = 32u << 20;
	if (!c->trace_detach_ns)
		c->trace_detach_ns = 60000 * MS_NS;
	if (!c->max_backlog)
		c->max_backlog = 8u << 20;
	if (!c->max_output)
		c->max_output = 64u << 20;
	if (!c->expiry_slack_ns)
		c->expiry_slack_ns = 20ull * 1000000ull;
	if (!c->runtime_dir)
		c->runtime_dir = "";
	d->loop = loop;
	/* THOTHD_DEFER=off: slow requests answered on the loop thread, as
	 * before deferred answers (bench_scale's and bench_lockreports'
	 * baseline, measured in the same run). */
	const char *defer = getenv("THOTHD_DEFER");
	d->defer_off = defer && strcmp(defer, "off") == 0;
	d->listen_fd = -1;
	d->reserve_fd = -1;
	d->closing_pidfd = -1;
	d->closing_state = THOTHD_PID_NOT_LOST;
	/* Lines a peer can repeat at will: 20 at once, then 5 a second. */
	d->refuse_log = (thothd_log_limit_t){ .burst = 20, .per_second = 5 };
	d->drop_log = (thothd_log_limit_t){ .burst = 50, .per_second = 10 };
	d->register_log = (thothd_log_limit_t){ .burst = 20, .per_second = 5 };
	d->lost_log = (thothd_log_limit_t){ .burst = 20, .per_second = 5 };
	d->started_ns = thoth_clock_now();
	d->next_client_id = 1;
	d->out_cap = 64 * 1024;
	d->arena_cap = ARENA_MIN + 4 * (size_t)c->max_body;
	d->event_cap = 4096;
	d->out = aligned_alloc8(d->out_cap);
	d->arena = aligned_alloc8(d->arena_cap);
	d->event_buf = aligned_alloc8(d->event_cap);
	thoth_registry_config_t rc = {
		.max_per_owner = c->max_per_client,
		.max_watches_per_owner = c->max_watches_per_client,
		.known_interfaces = known_interfaces,
		.n_known_interfaces = sizeof known_interfaces / sizeof known_interfaces[0],
		.on_event = thothd_on_registry_event,
		.event_arg = d,
		.node_distance = c->node_distance,
		.n_nodes = c->n_nodes,
		.on_change = thothd_on_change,
		.change_arg = d,
	};
	if (!d->out || !d->arena || !d->event_buf || thothd_lifecycle_new(&d->lifecycle) ||
	    thothd_rtable_new(d) || thoth_registry_new(&rc, &d->registry) ||
	    thothd_tracer_new(d, &d->tracer) || thothd_endpoints_new(d, &d->endpoints) ||
	    thothd_pm_new(d, &d->pm) || thothd_probes_new(d, &d->probes)) {
		thothd_free(d);
		return THOTH_E_NOMEM;
	}
	*out = d;
	return 0;
}

/* ---- clients ------------------------------------------------------------------- */

static void client_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg);
static void held_free(thothd_client_t *c);

/* ---- connections per uid ----------------------------------------------------------- */

static struct thothd_uid_count *uid_find(thothd_t *d, uint32_t uid)
{
	for (size_t i = 0; i < d->n_uids; i++)
		if (d->uids[i].uid == uid)
			return &d->uids[i];
	return NULL;
}

static uint32_t uid_connections(thothd_t *d, uint32_t uid)
{
	struct thothd_uid_count *u = uid_find(d, uid);
	return u ? u->n : 0;
}

/* One more (DELTA 1) or one fewer (-1) connection of UID.  A few uids at
 * most connect (the runtime dir is 0700): a short array is enough. */
static int uid_count_add(thothd_t *d, uint32_t uid, int delta)
{
	struct thothd_uid_count *u = uid_find(d, uid);
	if (!u) {
		if (delta < 0)
			return 0;
		if (d->n_uids == d->uids_cap) {
			size_t cap = d->uids_cap ? d->uids_cap * 2 : 4;
			struct thothd_uid_count *v = realloc(d->uids, cap * sizeof *v);
			if (!v)
				return THOTH_E_NOMEM;
			d->uids = v;
			d->uids_cap = cap;
		}
		u = &d->uids[d->n_uids++];
		*u = (struct thothd_uid_count){ .uid = uid };
	}
	if (delta > 0) {
		u->n++;
	} else if (--u->n == 0) {
		*u = d->uids[--d->n_uids];
	}
	return 0;
}

/* ---- the frame deadline ------------------------------------------------------------- */

/*
 * A connection is "partial" while it has not completed its first message,
 * or holds the beginning of one: it must finish within frame_timeout_ns of
 * that moment, or it is closed (a silent or trickling peer cannot hold a
 * descriptor and a buffer forever).  A paused client (thothd stopped
 * reading it) is not waiting on its peer and is not partial.
 */
static void partial_unlink(thothd_t *d, thothd_client_t *c)
{
	if (!c->in_partial)
		return;
	if (c->partial_prev)
		c->partial_prev->partial_next = c->partial_next;
	else
		d->partial_head = c->partial_next;
	if (c->partial_next)
		c->partial_next->partial_prev = c->partial_prev;
	else
		d->partial_tail = c->partial_prev;
	c->partial_prev = c->partial_next = NULL;
	c->in_partial = false;
}

static void partial_update(thothd_t *d, thothd_client_t *c)
{
	bool waiting = !c->doomed && !c->paused && c->fd >= 0 && (!c->said_hello || c->reader.len);
	if (waiting == c->in_partial)
		return;
	if (!waiting) {
		partial_unlink(d, c);
		return;
	}
	/* Appended with the current time: the list stays in deadline order. */
	c->partial_since = thothd_now(d);
	c->in_partial = true;
	c->partial_prev = d->partial_tail;
	c->partial_next = NULL;
	if (d->partial_tail)
		d->partial_tail->partial_next = c;
	else
		d->partial_head = c;
	d->partial_tail = c;
}

static void frame_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_t *d = arg;
	d->frame_timer = NULL;          /* a fired timer not re-armed here is freed by the loop */
	uint64_t now = thoth_loop_now(loop);
	while (d->partial_head && d->partial_head->partial_since + d->cfg.frame_timeout_ns <= now) {
		thothd_client_t *c = d->partial_head;
		partial_unlink(d, c);
		d->timed_out++;
		thothd_client_doom(c, "%s within %llu ms",
				   c->said_hello ? "did not finish a message" : "sent no message",
				   (unsigned long long)(d->cfg.frame_timeout_ns / MS_NS));
	}
	thothd_reap(d);                 /* closes them and re-arms for the next head */
}

/* Arm (or move, or cancel) the one timer for the oldest partial connection. */
static void rearm_frame_timer(thothd_t *d)
{
	if (!d->loop)
		return;
	if (!d->partial_head) {
		if (d->frame_timer)
			thoth_timer_cancel(d->loop, d->frame_timer);
		d->frame_timer = NULL;
		return;
	}
	uint64_t at = d->partial_head->partial_since + d->cfg.frame_timeout_ns;
	/* Slack: being closed a little late costs nothing, and lets the loop
	 * coalesce this wake-up with others. */
	uint64_t slack = d->cfg.frame_timeout_ns / 8;
	if (d->frame_timer) {
		if (thoth_timer_deadline(d->frame_timer) == at)
			return;
		if (thoth_timer_rearm(d->loop, d->frame_timer, at, slack) == 0)
			return;
		thoth_timer_cancel(d->loop, d->frame_timer);
		d->frame_timer = NULL;
	}
	if (thoth_loop_add_timer(d->loop, at, slack, frame_timer_fired, d, &d->frame_timer)) {
		d->frame_timer = NULL;
		thothd_error("cannot arm the frame-deadline timer");
	}
}

/* ---- input budget ---------------------------------------------------------------- */

/* Account C's read buffer (beyond its resting chunk) in the daemon's total;
 * a client whose incomplete message pushes the total over max_input is
 * dropped.  Called after each read and each round of messages. */
static void input_account(thothd_t *d, thothd_client_t *c)
{
	if (!c->reader.len)
		thoth_stream_reader_trim(&c->reader);
	size_t now = c->reader.cap > READ_CHUNK ? c->reader.cap - READ_CHUNK : 0;
	d->input_bytes = d->input_bytes - c->input_counted + now;
	c->input_counted = now;
	if (now && d->input_bytes > d->cfg.max_input && !c->doomed) {
		d->over_budget++;
		thothd_client_doom(c, "buffers %zu bytes of an incomplete message while thothd's "
				   "input budget (%zu bytes, all clients) is spent",
				   c->reader.cap, d->cfg.max_input);
	}
}

int thothd_client_open(thothd_t *d, int fd, uint32_t uid, uint32_t pid, thothd_client_t **out)
{
	thothd_client_t *c = calloc(1, sizeof *c);
	if (!c)
		return THOTH_E_NOMEM;
	c->d = d;
	c->fd = fd;
	c->uid = uid;
	c->pid = pid;
	c->accept_pidfd = -1;
	c->id = d->next_client_id++;
	int r = thoth_stream_reader_init(&c->reader, d->cfg.max_body);
	c->reader.service_id = d->pid;  /* thothd serves this client's calls */
	c->reader.body_limit = request_body_limit;
	c->reader.limit_arg = c;
	if (!r)
		r = thoth_registry_owner_new(d->registry, uid, pid, c, &c->owner);
	if (!r)
		r = uid_count_add(d, uid, 1);
	bool counted = !r;
	if (!r && fd >= 0 && d->loop)
		r = thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, client_io, c, &c->source);
	if (r) {
		if (counted)
			uid_count_add(d, uid, -1);
		thoth_registry_owner_drop(d->registry, c->owner);
		thoth_stream_reader_free(&c->reader);
		free(c);
		return r;
	}
	c->next = d->clients;
	if (d->clients)
		d->clients->prev = c;
	d->clients = c;
	d->n_clients++;
	c->last_active_ns = thothd_now(d);
	partial_update(d, c);           /* its first message is due within the frame timeout */
	*out = c;
	return 0;
}

/* Free C's output queue and take it out of the totals (doomed or closed). */
static void output_release(thothd_t *d, thothd_client_t *c)
{
	struct thothd_uid_count *u = uid_find(d, c->uid);
	if (u)
		u->unsent -= c->output_counted;
	d->output_bytes -= c->output_counted;
	d->kept_bytes -= c->kept_counted;
	c->output_counted = c->kept_counted = 0;
	thoth__outq_free(&c->out);
}

void thothd_client_doom(thothd_client_t *c, const char *fmt, ...)
{
	if (c->doomed)
		return;
	c->doomed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->doom_reason, sizeof c->doom_reason, fmt, ap);
	va_end(ap);
	c->next_doomed = c->d->doomed;
	c->d->doomed = c;
	/* Nothing more is sent to it: its queue goes now, so the output budget's
	 * victim loop sees the room made at once (not one client too many). */
	output_release(c->d, c);
}

static void client_close(thothd_t *d, thothd_client_t *c)
{
	if (c->doom_reason[0] && strncmp(c->doom_reason, "closed", 6) == 0)
		thothd_debug("client %llu (pid %u uid %u): %s; dropping it and its %zu registrations",
			     (unsigned long long)c->id, c->pid, c->uid, c->doom_reason,
			     thoth_registry_owner_registrations(c->owner));
	else if (c->doom_reason[0])
		thothd_log_limited(&d->drop_log, THOTHD_LOG_WARN,
				   "client %llu (pid %u uid %u): %s; dropping it and its %zu "
				   "registrations", (unsigned long long)c->id, c->pid, c->uid,
				   c->doom_reason, thoth_registry_owner_registrations(c->owner));
	/* Peer death: its registrations go now, its watchers' events queue. */
	THOTH_TRACE(REGISTRY, registry_drop, c->pid, thoth_registry_owner_registrations(c->owner));
	thothd_endpoints_owner_closed(d->endpoints, c);
	/* Its registrations are lost (OBS-3): the history says whether its
	 * process is gone, by a pidfd (never the bare number). */
	if (thoth_registry_owner_registrations(c->owner)) {
		d->closing_pidfd = c->fd >= 0 && c->pid ? thothd__client_pidfd(c) : -1;
		d->closing_state = c->fd < 0 || !c->pid ? THOTHD_PID_UNKNOWN
				   : d->closing_pidfd >= 0 ? thothd_lifecycle_pid_state(d->closing_pidfd)
				   : errno == ESRCH || errno == EINVAL ? THOTHD_PID_EXITED
				   : THOTHD_PID_UNKNOWN;
	}
	thoth_registry_owner_drop(d->registry, c->owner);
	if (d->closing_pidfd >= 0)
		close(d->closing_pidfd);
	d->closing_pidfd = -1;
	d->closing_state = THOTHD_PID_NOT_LOST;
	thothd_tracer_client_closed(d->tracer, c);
	thothd_pm_client_closed(d->pm, c);
	thothd_probes_client_closed(d->probes, c);
	thothd_timerpage_client_closed(d, c->pid);
	while (c->n_fds)
		close(thothd_client_take_fd(c));
	held_free(c);                   /* its pending jobs finish unanswered */
	if (c->source)
		thoth_loop_remove_fd(d->loop, c->source);
	if (c->fd >= 0)
		close(c->fd);
	if (c->accept_pidfd >= 0)
		close(c->accept_pidfd);
	partial_unlink(d, c);
	d->input_bytes -= c->input_counted;
	output_release(d, c);
	uid_count_add(d, c->uid, -1);
	thoth_stream_reader_free(&c->reader);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->n_clients--;
	free(c);
}

void thothd_reap(thothd_t *d)
{
	/* Closing one client can doom another (its events overflow a backlog). */
	while (d->doomed) {
		thothd_client_t *c = d->doomed;
		d->doomed = c->next_doomed;
		client_close(d, c);
	}
	thothd_rearm_expiry(d);
	rearm_frame_timer(d);
}

int thothd_client_feed(thothd_client_t *c, const void *bytes, size_t len)
{
	return thoth_stream_feed(&c->reader, bytes, len);
}

int thothd_client_take_fd(thothd_client_t *c)
{
	if (!c->n_fds)
		return -1;
	int fd = c->fds[0];
	memmove(c->fds, c->fds + 1, (c->n_fds - 1) * sizeof c->fds[0]);
	c->n_fds--;
	return fd;
}

/* ---- output ------------------------------------------------------------------- */

static size_t backlog(const thothd_client_t *c)
{
	return thoth__outq_pending(&c->out);
}

static void update_interest(thothd_client_t *c)
{
	if (!c->source || c->doomed)
		return;
	uint32_t ev = (c->paused ? 0 : THOTH_LOOP_READ) | (backlog(c) ? THOTH_LOOP_WRITE : 0);
	if (thoth_loop_modify_fd(c->d->loop, c->source, ev))
		thothd_client_doom(c, "cannot update its epoll interest");
}

/*
 * Account C's output in the daemon's totals.  Each client's queue is bounded
 * (max_backlog, 8 MiB), but not their sum: 700 watchers that never read, and
 * a storm of registrations, held 8 MiB each (5.6 GiB) until each crossed its
 * own limit.  The budget (max_output) counts unsent bytes only, so it closes
 * at what it says, not at half of it as capacity doubling did, and a drained
 * queue never counts (a queue's capacity is at most twice its unsent bytes,
 * plus what drained queues keep, bounded apart by OUTQ_KEPT_MAX).  Past the
 * budget the largest queue of the uid holding the most unsent output goes,
 * until the total is back under it: the uid that causes the pressure pays,
 * and no uid can make another's briefly paused client the victim by keeping
 * its own queues moving (least-recently-moved was gameable that way).
 */
static void output_account(thothd_t *d, thothd_client_t *c)
{
	size_t unsent = backlog(c), kept = unsent ? 0 : c->out.cap;
	if (kept && (kept > OUTQ_KEEP || d->kept_bytes - c->kept_counted + kept > OUTQ_KEPT_MAX)) {
		thoth__outq_free(&c->out);      /* drained: the memory goes back */
		kept = 0;
	}
	d->kept_bytes = d->kept_bytes - c->kept_counted + kept;
	c->kept_counted = kept;
	struct thothd_uid_count *u = uid_find(d, c->uid);
	if (u)
		u->unsent = u->unsent - c->output_counted + unsent;
	d->output_bytes = d->output_bytes - c->output_counted + unsent;
	c->output_counted = unsent;
	while (d->output_bytes > d->cfg.max_output) {
		struct thothd_uid_count *top = NULL;
		for (size_t i = 0; i < d->n_uids; i++)
			if (!top || d->uids[i].unsent > top->unsent)
				top = &d->uids[i];
		thothd_client_t *worst = NULL;
		for (thothd_client_t *o = d->clients; top && o; o = o->next)
			if (o->uid == top->uid && !o->doomed && o->output_counted &&
			    (!worst || o->output_counted > worst->output_counted))
				worst = o;
		if (!worst)
			break;
		d->over_output_budget++;
		/* Doom frees its queue and takes it out of the totals. */
		thothd_client_doom(worst, "does not read: %zu bytes unsent, the largest queue of the uid "
				   "with the most, past thothd's output budget (%zu bytes, all clients)",
				   worst->output_counted, d->cfg.max_output);
	}
}

/* Send what the socket takes now.  0, or doomed. */
static void flush(thothd_client_t *c)
{
	size_t before = backlog(c);
	if (thoth__outq_flush(&c->out, c->fd)) {
		thothd_client_doom(c, "closed (write: %s)", strerror(errno));
		return;
	}
	if (backlog(c) != before)
		output_account(c->d, c);
}

void thothd_client_send(thothd_client_t *c, const void *buf, size_t len)
{
	if (c->doomed)
		return;
	if (c->fd < 0)
		return;                 /* in-process client: nobody to read it */
	if (backlog(c) + len > c->d->cfg.max_backlog) {
		thothd_client_doom(c, "does not read: %zu bytes unsent (limit %zu)", backlog(c) + len,
				   c->d->cfg.max_backlog);
		return;
	}
	bool was_empty = backlog(c) == 0;
	int r = thoth__outq_send(&c->out, c->fd, buf, len);
	if (r == THOTH_E_NOMEM) {
		thothd_client_doom(c, "out of memory for its output");
	} else if (r) {
		thothd_client_doom(c, "closed (write: %s)", strerror(errno));
	} else if (was_empty && backlog(c)) {
		update_interest(c);
	}
	if (!c->doomed && (backlog(c) != c->output_counted || c->out.cap != c->kept_counted))
		output_account(c->d, c);
}

/* ---- answers held behind a deferred one (defer.c) ---------------------------------- */

struct thothd_held {
	struct thothd_held *next;
	struct thothd_job *job;         /* non-NULL: still being worked on */
	uint8_t *buf;                   /* the answer once ready (NULL: none to send) */
	size_t len;
};

static bool held_full(const thothd_client_t *c)
{
	return c->n_held >= THOTHD_HELD_MAX;
}

/* Append an answer slot; JOB NULL: a ready answer (BUF copied). */
static struct thothd_held *held_append(thothd_client_t *c, struct thothd_job *job, const uint8_t *buf,
				       size_t len)
{
	struct thothd_held *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->job = job;
	if (buf && len) {
		h->buf = malloc(len);
		if (!h->buf) {
			free(h);
			return NULL;
		}
		memcpy(h->buf, buf, len);
		h->len = len;
	}
	if (c->held_tail)
		c->held_tail->next = h;
	else
		c->held_head = h;
	c->held_tail = h;
	c->n_held++;
	return h;
}

struct thothd_held *thothd_client_hold(thothd_client_t *c, struct thothd_job *job)
{
	return held_append(c, job, NULL, 0);
}

/* Send the ready answers at the head of C's list, in order. */
static void held_flush(thothd_client_t *c)
{
	while (c->held_head && !c->held_head->job) {
		struct thothd_held *h = c->held_head;
		c->held_head = h->next;
		if (!c->held_head)
			c->held_tail = NULL;
		c->n_held--;
		if (h->buf)
			thothd_client_send(c, h->buf, h->len);
		free(h->buf);
		free(h);
	}
}

static void held_free(thothd_client_t *c)
{
	while (c->held_head) {
		struct thothd_held *h = c->held_head;
		c->held_head = h->next;
		if (h->job)
			thothd_jobs_orphan(h->job);
		free(h->buf);
		free(h);
	}
	c->held_tail = NULL;
	c->n_held = 0;
}

void thothd_client_answered(thothd_client_t *c, struct thothd_held *slot, uint8_t *buf, size_t len)
{
	slot->job = NULL;
	slot->buf = buf;
	slot->len = buf ? len : 0;
	held_flush(c);
	/* Its next requests, if they waited for room among held answers. */
	if (c->paused && !backlog(c) && !held_full(c)) {
		c->paused = false;
		thothd_client_process(c->d, c);
		update_interest(c);
		partial_update(c->d, c);
		input_account(c->d, c);
	}
}

/* ---- one message ---------------------------------------------------------------- */

static bool is_decode_error(int status)
{
	return status <= THOTH_E_TRUNCATED && status >= THOTH_E_BAD_NUL;
}

/* Status of the error response in D->out (0 if it is not an error response). */
static int response_status(const thothd_t *d, size_t len, uint32_t *code)
{
	if (len < THOTH_WIRE_HEADER_SIZE || !(thoth_le16(d->out + 6) & THOTH_MSG_ERROR))
		return 0;
	thoth_decoder_t dec;
	thoth_arena_t none;
	thoth_arena_init(&none, NULL, 0);
	thoth_decoder_init(&dec, d->out + THOTH_WIRE_HEADER_SIZE,
			   (uint32_t)(len - THOTH_WIRE_HEADER_SIZE), &none);
	int32_t status = 0;
	thoth_str_t message;
	if (thoth_wire_decode_error(&dec, code, &status, &message))
		return THOTH_E_PROTOCOL;
	return status ? status : THOTH_E_REMOTE;
}

/* Rewrite the error response in D->out with a more precise message. */
static void explain_error(thothd_t *d, thoth_server_io_t *io, const char *reason)
{
	uint32_t code = 0;
	int status = response_status(d, io->out_len, &code);
	if (!status)
		return;
	thoth_msg_header_t h;
	if (thoth_wire_header_decode(d->out, io->out_len, &h))
		return;
	thoth_builder_t b;
	thoth_builder_init(&b, d->out, d->out_cap);
	size_t len;
	if (!thoth_wire_encode_error(&b, code, status, reason) && !thoth_builder_finish(&b, &h, &len))
		io->out_len = len;
}

/*
 * A response that carries a descriptor (the resolve table).  The fd must
 * ride on the response's first byte, so it goes out directly when nothing
 * is queued before it; otherwise (a client with unread output, or a full
 * socket) the response goes without it and the client says so (it asks on
 * a fresh connection, where this does not happen).  Never blocks: the
 * client sockets are non-blocking.
 */
static void send_with_fd(thothd_client_t *c, const uint8_t *buf, size_t len, int fd)
{
	if (c->doomed || c->fd < 0)
		return;
	ssize_t n = backlog(c) ? -1 : thoth_fdpass_send(c->fd, buf, len, &fd, 1);
	if (n < 0) {
		thothd_debug("client %llu: answer sent without its descriptor (%s)", (unsigned long long)c->id,
			     backlog(c) ? "output queued before it" : strerror(errno));
		n = 0;
	}
	if ((size_t)n < len)
		thothd_client_send(c, buf + n, len - (size_t)n);
}

static void handle_message(thothd_t *d, thothd_client_t *c, const uint8_t *msg, size_t len)
{
	uint16_t flags = thoth_le16(msg + 6);
	uint32_t iface = thoth_le32(msg + 8);
	d->messages++;
	if (!(flags & THOTH_MSG_REQUEST)) {
		thothd_client_doom(c, "sent a response (flags %#x) where requests belong", flags);
		return;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, d->arena, d->arena_cap);
	thoth_server_io_t io = {
		.out = d->out, .cap = d->out_cap, .arena = &arena,
		.features = THOTH_REGISTRY_FEATURES_ALL,
	};
	thothd_call_t call = { .d = d, .client = c, .io = &io, .send_fd = -1, .msg = msg, .len = len };
	int r;
	if (iface == THOTH_DAEMON_DAEMON_ID)
		r = thoth_daemon_Daemon_dispatch(&thothd_daemon_handlers, &call, msg, len, &io);
	else if (iface == THOTH_TRACE_TRACE_CONTROL_ID)
		r = thoth_trace_TraceControl_dispatch(&thothd_trace_handlers, &call, msg, len, &io);
	else if (iface == THOTH_PM_POWER_BROKER_ID)
		r = thoth_pm_PowerBroker_dispatch(&thothd_pm_handlers, &call, msg, len, &io);
	else if (iface == THOTH_PROBE_PROBE_CONTROL_ID)
		r = thoth_probe_ProbeControl_dispatch(&thothd_probe_handlers, &call, msg, len, &io);
	else if (iface == THOTH_LOCKS_LOCK_REPORTS_ID && d->locks_handlers)
		r = thoth_locks_LockReports_dispatch(d->locks_handlers, &call, msg, len, &io);
	else    /* Registry, or an unknown interface answered by the Registry dispatcher */
		r = thoth_registry_Registry_dispatch(&thothd_registry_handlers, &call, msg, len, &io);
	d->out = io.out;                /* a handler may have grown the buffer */
	d->out_cap = io.cap;
	if (call.job) {
		/* Answered later (defer.c): what dispatch encoded is not the answer. */
		free(call.scratch);
		THOTH_TRACE(IPC, thothd_dispatch, (uint64_t)iface << 32 | thoth_le32(msg + 12), 0);
		thothd_jobs_submit(d, call.job);
		return;
	}
	if (r < 0) {
		free(call.scratch);
		thothd_client_doom(c, "malformed message: %s", thoth_strerror(r));
		return;
	}
	if (io.out_len && call.reason)
		explain_error(d, &io, call.reason);     /* the reason may live in scratch */
	free(call.scratch);
	uint32_t code = 0;
	int status = io.out_len ? response_status(d, io.out_len, &code) : 0;
	THOTH_TRACE(IPC, thothd_dispatch, (uint64_t)iface << 32 | thoth_le32(msg + 12),
		    (uint64_t)(int64_t)status);
	/* Before the answer: a client that got it reads a status at least as
	 * new from the shared table (SCALE-2, thoth_rtable_status). */
	thothd_rtable_publish_status(d);
	if (io.out_len) {
		THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, d->pid, io.out, THOTH_TRACE_INLINE);
		if (c->held_head) {
			/* Behind a deferred answer: in order (a descriptor it
			 * carried is not sent; the client asks again, as when
			 * output is queued before it). */
			if (!held_append(c, NULL, io.out, io.out_len))
				thothd_client_doom(c, "out of memory for its held answers");
		} else if (call.send_fd >= 0 && !status)
			send_with_fd(c, io.out, io.out_len, call.send_fd);
		else
			thothd_client_send(c, io.out, io.out_len);
	}
	thothd_pm_flush(d->pm);         /* events this call caused, after its answer */
	if (is_decode_error(status)) {
		/* Answered (the client learns why), then dropped: it speaks garbage. */
		thothd_client_doom(c, "undecodable request (interface %08x method %u): %s", iface,
				   thoth_le32(msg + 12), thoth_strerror(status));
	}
}

void thothd_client_process(thothd_t *d, thothd_client_t *c)
{
	while (!c->doomed) {
		if (backlog(c) > PAUSE_BACKLOG || held_full(c)) {
			/* Back-pressure: read no more from it until its output
			 * drains (or its held answers go out: defer.c). */
			if (!c->paused) {
				c->paused = true;
				update_interest(c);
			}
			return;
		}
		const uint8_t *msg;
		size_t len;
		int r = thoth_stream_next(&c->reader, &msg, &len);
		if (r < 0) {
			thothd_client_doom(c, "bad message header: %s%s", thoth_strerror(r),
					   r == THOTH_E_TOO_LARGE ? " (body above the control limit)" : "");
			return;
		}
		if (r == 0)
			return;
		c->said_hello = true;
		c->last_active_ns = thothd_now(d);
		handle_message(d, c, msg, len);
		thoth_stream_consume(&c->reader);
	}
}

/* After reading and handling: where C stands against the deadlines and the budget. */
static void client_settle(thothd_t *d, thothd_client_t *c)
{
	partial_update(d, c);
	input_account(d, c);
}

static void client_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thothd_client_t *c = arg;
	thothd_t *d = c->d;
	if (events & THOTH_LOOP_WRITE) {
		flush(c);
		if (!backlog(c) && c->paused && !held_full(c)) {
			c->paused = false;
			thothd_client_process(d, c);    /* what was buffered while paused */
		}
		update_interest(c);
	}
	if ((events & (THOTH_LOOP_READ | THOTH_LOOP_HUP)) && !c->paused) {
		for (int i = 0; i < FILLS_PER_WAKEUP && !c->doomed && !c->paused; i++) {
			size_t before = c->reader.len;
			size_t n_fds = 0;
			int r = thoth_stream_fill_fds(&c->reader, fd, c->fds + c->n_fds,
						      THOTHD_CLIENT_MAX_FDS - c->n_fds, &n_fds);
			c->n_fds += (uint32_t)n_fds;
			if (c->n_fds == THOTHD_CLIENT_MAX_FDS) {
				/* What it sent beyond the queue was closed: no buffer
				 * of ours holds them, and it keeps sending more. */
				thothd_client_doom(c, "sent %u file descriptors no message used",
						   c->n_fds);
				break;
			}
			if (r == THOTH_E_PEER_GONE) {
				thothd_client_process(d, c);    /* its last words first */
				thothd_client_doom(c, "closed the connection");
				break;
			}
			if (r) {
				thothd_client_doom(c, "read failed: %s", thoth_strerror(r));
				break;
			}
			if (c->reader.len == before)
				break;
			thothd_client_process(d, c);
			input_account(d, c);
		}
	}
	client_settle(d, c);
	thothd_reap(d);
}

/* ---- listening -------------------------------------------------------------------- */

/*
 * Room for a new connection of UID: within max_clients_per_uid for it and
 * max_clients in all.  When either is reached, the connection that has been
 * quiet longest among those holding nothing (no registration, watch, trace
 * buffer or session, queued output) - of that uid, or of anyone at the
 * global limit - is closed to make room: idle connections cannot lock
 * anyone out, while a connection that holds state is never evicted (those
 * are bounded by the per-uid limit instead).  False: no room.
 */
static bool client_holds_nothing(const thothd_client_t *c)
{
	return !c->doomed && c->fd >= 0 && thoth_registry_owner_registrations(c->owner) == 0 &&
	       thoth_registry_owner_watches(c->owner) == 0 && !backlog(c) &&
	       !thothd_tracer_holds(c->d->tracer, c);
}

static bool make_room(thothd_t *d, uint32_t uid, int pid)
{
	for (;;) {
		bool uid_full = uid_connections(d, uid) >= d->cfg.max_clients_per_uid;
		bool all_full = d->n_clients >= d->cfg.max_clients;
		if (!uid_full && !all_full)
			return true;
		thothd_client_t *victim = NULL;
		for (thothd_client_t *c = d->clients; c; c = c->next) {
			if ((uid_full && c->uid != uid) || !client_holds_nothing(c))
				continue;
			if (!victim || c->last_active_ns < victim->last_active_ns)
				victim = c;
		}
		if (!victim) {
			d->refused++;
			thothd_log_limited(&d->refuse_log, THOTHD_LOG_WARN,
					   "refusing pid %d (uid %u): %s (%u) reached and every "
					   "connection holds registrations, watches or traces",
					   pid, uid, uid_full ? "its uid's connection limit"
							      : "the connection limit",
					   uid_full ? d->cfg.max_clients_per_uid : d->cfg.max_clients);
			return false;
		}
		d->evicted++;
		thothd_log_limited(&d->refuse_log, THOTHD_LOG_INFO,
				   "connection limit%s reached: closing idle client %llu (pid %u) for "
				   "pid %d", uid_full ? " of uid" : "",
				   (unsigned long long)victim->id, victim->pid, pid);
		thothd_client_doom(victim, "closed (idle, evicted at the connection limit)");
		thothd_reap(d);
	}
}

static void accept_resume(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_t *d = arg;
	d->accept_timer = NULL;         /* fired and not re-armed: freed by the loop */
	if (thoth_loop_modify_fd(loop, d->listen_source, THOTH_LOOP_READ))
		thothd_error("cannot resume accepting connections");
}

/*
 * accept() failed for want of descriptors (EMFILE/ENFILE): the pending
 * connection would stay in the backlog and epoll would report the listener
 * again at once, for ever (the classic busy loop).  Close the reserve
 * descriptor, accept that connection and close it (its peer sees EOF
 * instead of hanging), take the reserve back, close the quietest idle
 * client so that the next one fits, and stop listening for
 * ACCEPT_BACKOFF_NS (one timer, only while backing off).
 */
static void at_fd_limit(thothd_t *d, int listen_fd, int err)
{
	d->fd_limit_hits++;
	thothd_log_limited(&d->refuse_log, THOTHD_LOG_WARN,
			   "accept: %s: closing a new connection; accepting again in %llu ms",
			   strerror(err), (unsigned long long)(ACCEPT_BACKOFF_NS / MS_NS));
	if (d->reserve_fd >= 0) {
		close(d->reserve_fd);
		d->reserve_fd = -1;
	}
	int cfd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd >= 0)
		close(cfd);
	d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	thothd_client_t *victim = NULL;
	for (thothd_client_t *c = d->clients; c; c = c->next)
		if (client_holds_nothing(c) && (!victim || c->last_active_ns < victim->last_active_ns))
			victim = c;
	if (victim) {
		d->evicted++;
		thothd_client_doom(victim, "closed (idle, evicted at the descriptor limit)");
	}
	if (!d->loop || d->accept_timer)
		return;
	if (thoth_loop_modify_fd(d->loop, d->listen_source, 0) == 0 &&
	    thoth_loop_add_timer(d->loop, thoth_loop_now(d->loop) + ACCEPT_BACKOFF_NS,
				 ACCEPT_BACKOFF_NS / 2, accept_resume, d, &d->accept_timer)) {
		d->accept_timer = NULL;
		thoth_loop_modify_fd(d->loop, d->listen_source, THOTH_LOOP_READ);
	}
}

static void accept_clients(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			   void *arg)
{
	thothd_t *d = arg;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				at_fd_limit(d, fd, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
				 errno != ECONNABORTED)
				thothd_log_limited(&d->refuse_log, THOTHD_LOG_WARN, "accept: %s",
						   strerror(errno));
			break;
		}
		struct ucred cred = { 0 };
		socklen_t cl = sizeof cred;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			thothd_log_limited(&d->refuse_log, THOTHD_LOG_WARN,
					   "SO_PEERCRED: %s; refusing the connection", strerror(errno));
			close(cfd);
			continue;
		}
		if (!make_room(d, (uint32_t)cred.uid, (int)cred.pid)) {
			close(cfd);
			continue;
		}
		thothd_client_t *c;
		int r = thothd_client_open(d, cfd, (uint32_t)cred.uid, (uint32_t)cred.pid, &c);
		if (r) {
			thothd_log_limited(&d->refuse_log, THOTHD_LOG_WARN, "cannot take a client: %s",
					   thoth_strerror(r));
			close(cfd);
			continue;
		}
		/* Before the number can go to another process: pinned now
		 * where SO_PEERPIDFD cannot name the peer later. */
		thothd__client_pin_accepted(c);
		thothd_debug("client %llu connected (pid %d uid %d)", (unsigned long long)c->id,
			     (int)cred.pid, (int)cred.uid);
	}
	thothd_reap(d);
}

int thothd_listen(thothd_t *d, const char *path, char *why, size_t why_len)
{
	if (strlen(path) >= sizeof d->socket_path) {
		snprintf(why, why_len, "socket path too long (%zu bytes, a Unix socket path holds at most %zu)",
			 strlen(path), sizeof d->socket_path - 1);
		return THOTH_E_INVAL;
	}
	/* Explicit mode, set before listen(); the process umask is never
	 * touched.  REPLACE: a stale socket there is ours to replace, since we
	 * hold the runtime dir's lock. */
	int fd, r = thoth__unix_listen(path, 0600, THOTH__UNIX_REPLACE, &fd, why, why_len);
	if (r)
		return r;
	r = thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, accept_clients, d, &d->listen_source);
	if (r) {
		close(fd);
		unlink(path);
		return r;
	}
	d->listen_fd = fd;
	strcpy(d->socket_path, path);
	/* The descriptor given up to accept-and-close at the fd limit. */
	d->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}

/* Serve a listening socket made by someone else (socket activation, sd.c):
 * it is not ours to unlink when we stop. */
int thothd_listen_fd(thothd_t *d, int fd)
{
	int r = thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, accept_clients, d, &d->listen_source);
	if (r)
		return r;
	d->listen_fd = fd;
	d->socket_path[0] = 0;
	return 0;
}

void thothd_free(thothd_t *d)
{
	if (!d)
		return;
	/* Deferred work first: it uses the tracer and answers clients. */
	thothd_jobs_free(d);
	/* Shutting down: the services live on and keep their sockets; the
	 * clients closed below are not lost (no "lost" lines). */
	d->freeing = true;
	thothd_endpoints_free(d->endpoints);
	d->endpoints = NULL;
	while (d->clients) {
		thothd_client_t *c = d->clients;
		c->doom_reason[0] = 0;  /* shutting down: not worth a warning */
		client_close(d, c);
	}
	if (d->listen_source)
		thoth_loop_remove_fd(d->loop, d->listen_source);
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		if (d->socket_path[0])  /* empty: a passed socket (thothd_listen_fd) */
			unlink(d->socket_path);
	}
	if (d->expiry_timer)
		thoth_timer_cancel(d->loop, d->expiry_timer);
	if (d->frame_timer)
		thoth_timer_cancel(d->loop, d->frame_timer);
	if (d->accept_timer)
		thoth_timer_cancel(d->loop, d->accept_timer);
	if (d->log_flush_timer)
		thoth_timer_cancel(d->loop, d->log_flush_timer);
	thothd_timerpage_free(d);
	if (d->reserve_fd >= 0)
		close(d->reserve_fd);
	free(d->uids);
	thothd_tracer_free(d->tracer);
	thothd_pm_free(d->pm);
	thothd_probes_free(d->probes);
	thoth_registry_free(d->registry);
	thothd_lifecycle_free(d->lifecycle);
	thothd_rtable_free(d);
	free(d->out);
	free(d->arena);
	free(d->event_buf);
	free(d);
}
