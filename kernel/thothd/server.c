/*
 * server.c - thothd's control socket (thothd.h has the map of the daemon).
 *
 * Input:  a thoth_stream_reader_t per client (bodies above max_body are
 *         refused from the header alone), every complete message dispatched
 *         by its interface id: Registry, Daemon or TraceControl.  File
 *         descriptors sent with the bytes (a trace buffer, SCM_RIGHTS) wait
 *         in the client's fd queue for the message that takes them.
 * Trace:  msg_recv is emitted by the stream reader; here thothd_dispatch
 *         (interface << 32 | method, handler status) and msg_send for the
 *         response, with the client's pid as service_id.
 * Output: answered at once with a non-blocking send; what the socket does
 *         not take is queued and flushed on EPOLLOUT.  Above a pause
 *         threshold the client is not read (a flood of requests from one
 *         client cannot grow thothd's memory); above max_backlog it is
 *         dropped (a watcher that never reads).
 * Bad input (bad header, a response or oneway where none belongs, a body
 * that does not decode, oversized) closes that client only, with a reason
 * in the log.  Its registrations go at once, as for any closed connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc_trace.h"
#include "log.h"
#include "thothd.h"

enum {
	PAUSE_BACKLOG = 1 << 20,        /* stop reading a client above this much unsent output */
	FILLS_PER_WAKEUP = 16,          /* fairness between clients */
	ARENA_MIN = 1 << 16,
};

static const thoth_interface_info_t *const known_interfaces[] = {
	&thoth_registry_Registry_info,
	&thoth_registry_RegistryEvents_info,
	&thoth_daemon_Daemon_info,
	&thoth_trace_TraceControl_info,
	&thoth_pm_PowerBroker_info,
	&thoth_pm_PowerEvents_info,
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
	if (!c->max_backlog)
		c->max_backlog = 8u << 20;
	if (!c->expiry_slack_ns)
		c->expiry_slack_ns = 20ull * 1000000ull;
	if (!c->runtime_dir)
		c->runtime_dir = "";
	d->loop = loop;
	d->listen_fd = -1;
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
	};
	if (!d->out || !d->arena || !d->event_buf || thoth_registry_new(&rc, &d->registry) ||
	    thothd_tracer_new(d, &d->tracer) || thothd_pm_new(d, &d->pm)) {
		thothd_free(d);
		return THOTH_E_NOMEM;
	}
	*out = d;
	return 0;
}

/* ---- clients ------------------------------------------------------------------- */

static void client_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg);

int thothd_client_open(thothd_t *d, int fd, uint32_t uid, uint32_t pid, thothd_client_t **out)
{
	thothd_client_t *c = calloc(1, sizeof *c);
	if (!c)
		return THOTH_E_NOMEM;
	c->d = d;
	c->fd = fd;
	c->uid = uid;
	c->pid = pid;
	c->id = d->next_client_id++;
	int r = thoth_stream_reader_init(&c->reader, d->cfg.max_body);
	c->reader.service_id = d->pid;  /* thothd serves this client's calls */
	if (!r)
		r = thoth_registry_owner_new(d->registry, uid, pid, c, &c->owner);
	if (!r && fd >= 0 && d->loop)
		r = thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, client_io, c, &c->source);
	if (r) {
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
	*out = c;
	return 0;
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
}

static void client_close(thothd_t *d, thothd_client_t *c)
{
	if (c->doom_reason[0])
		thothd_log(strncmp(c->doom_reason, "closed", 6) == 0 ? THOTHD_LOG_DEBUG : THOTHD_LOG_WARN,
			   "client %llu (pid %u uid %u): %s; dropping it and its %zu registrations",
			   (unsigned long long)c->id, c->pid, c->uid, c->doom_reason,
			   thoth_registry_owner_registrations(c->owner));
	/* Peer death: its registrations go now, its watchers' events queue. */
	THOTH_TRACE(REGISTRY, registry_drop, c->pid, thoth_registry_owner_registrations(c->owner));
	thoth_registry_owner_drop(d->registry, c->owner);
	thothd_tracer_client_closed(d->tracer, c);
	thothd_pm_client_closed(d->pm, c);
	while (c->n_fds)
		close(thothd_client_take_fd(c));
	if (c->source)
		thoth_loop_remove_fd(d->loop, c->source);
	if (c->fd >= 0)
		close(c->fd);
	thoth_stream_reader_free(&c->reader);
	free(c->out);
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
}

int thothd_client_feed(thothd_client_t *c, const void *bytes, size_t len)
{
	thoth_stream_reader_t *r = &c->reader;
	if (len > r->cap - r->len) {
		size_t cap = r->cap;
		while (cap - r->len < len)
			cap *= 2;
		uint8_t *p = aligned_alloc8(cap);
		if (!p)
			return THOTH_E_NOMEM;
		memcpy(p, r->buf, r->len);
		free(r->buf);
		r->buf = p;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, bytes, len);
	r->len += len;
	return 0;
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
	return c->out_len - c->out_off;
}

static void update_interest(thothd_client_t *c)
{
	if (!c->source || c->doomed)
		return;
	uint32_t ev = (c->paused ? 0 : THOTH_LOOP_READ) | (backlog(c) ? THOTH_LOOP_WRITE : 0);
	if (thoth_loop_modify_fd(c->d->loop, c->source, ev))
		thothd_client_doom(c, "cannot update its epoll interest");
}

/* Send what the socket takes now.  0, or doomed. */
static void flush(thothd_client_t *c)
{
	while (backlog(c)) {
		ssize_t n = send(c->fd, c->out + c->out_off, backlog(c), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		thothd_client_doom(c, "closed (write: %s)", n < 0 ? strerror(errno) : "0 bytes");
		return;
	}
	c->out_off = c->out_len = 0;
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
	/* Compact, then append. */
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + len > c->out_cap) {
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, backlog(c));
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		if (cap != c->out_cap) {
			uint8_t *p = realloc(c->out, cap);
			if (!p) {
				thothd_client_doom(c, "out of memory for its output");
				return;
			}
			c->out = p;
			c->out_cap = cap;
		}
	}
	bool was_empty = backlog(c) == 0;
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
	flush(c);
	if (was_empty && backlog(c))
		update_interest(c);
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
	thothd_call_t call = { .d = d, .client = c, .io = &io };
	int r;
	if (iface == THOTH_DAEMON_DAEMON_ID)
		r = thoth_daemon_Daemon_dispatch(&thothd_daemon_handlers, &call, msg, len, &io);
	else if (iface == THOTH_TRACE_TRACE_CONTROL_ID)
		r = thoth_trace_TraceControl_dispatch(&thothd_trace_handlers, &call, msg, len, &io);
	else if (iface == THOTH_PM_POWER_BROKER_ID)
		r = thoth_pm_PowerBroker_dispatch(&thothd_pm_handlers, &call, msg, len, &io);
	else    /* Registry, or an unknown interface answered by the Registry dispatcher */
		r = thoth_registry_Registry_dispatch(&thothd_registry_handlers, &call, msg, len, &io);
	d->out = io.out;                /* a handler may have grown the buffer */
	d->out_cap = io.cap;
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
	if (io.out_len) {
		THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, d->pid, io.out, THOTH_TRACE_INLINE);
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
		if (backlog(c) > PAUSE_BACKLOG) {
			/* Back-pressure: read no more from it until its output drains. */
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
		handle_message(d, c, msg, len);
		thoth_stream_consume(&c->reader);
	}
}

static void client_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thothd_client_t *c = arg;
	thothd_t *d = c->d;
	if (events & THOTH_LOOP_WRITE) {
		flush(c);
		if (!backlog(c) && c->paused) {
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
		}
	}
	thothd_reap(d);
}

/* ---- listening -------------------------------------------------------------------- */

static void accept_clients(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			   void *arg)
{
	thothd_t *d = arg;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				thothd_warn("accept: %s", strerror(errno));
			break;
		}
		struct ucred cred = { 0 };
		socklen_t cl = sizeof cred;
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			thothd_warn("SO_PEERCRED: %s; refusing the connection", strerror(errno));
			close(cfd);
			continue;
		}
		if (d->n_clients >= d->cfg.max_clients) {
			thothd_warn("refusing pid %d: %u clients connected (limit)", (int)cred.pid,
				    d->n_clients);
			close(cfd);
			continue;
		}
		thothd_client_t *c;
		int r = thothd_client_open(d, cfd, (uint32_t)cred.uid, (uint32_t)cred.pid, &c);
		if (r) {
			thothd_warn("cannot take a client: %s", thoth_strerror(r));
			close(cfd);
			continue;
		}
		thothd_debug("client %llu connected (pid %d uid %d)", (unsigned long long)c->id,
			     (int)cred.pid, (int)cred.uid);
	}
	thothd_reap(d);
}

int thothd_listen(thothd_t *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path || strlen(path) >= sizeof d->socket_path)
		return THOTH_E_INVAL;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return THOTH_E_IO;
	unlink(path);                   /* stale: we hold the runtime dir's lock */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		close(fd);
		return THOTH_E_IO;
	}
	r = thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, accept_clients, d, &d->listen_source);
	if (r) {
		close(fd);
		unlink(path);
		return r;
	}
	d->listen_fd = fd;
	strcpy(d->socket_path, path);
	return 0;
}

void thothd_free(thothd_t *d)
{
	if (!d)
		return;
	while (d->clients) {
		thothd_client_t *c = d->clients;
		c->doom_reason[0] = 0;  /* shutting down: not worth a warning */
		client_close(d, c);
	}
	if (d->listen_source)
		thoth_loop_remove_fd(d->loop, d->listen_source);
	if (d->listen_fd >= 0) {
		close(d->listen_fd);
		unlink(d->socket_path);
	}
	if (d->expiry_timer)
		thoth_timer_cancel(d->loop, d->expiry_timer);
	thothd_tracer_free(d->tracer);
	thothd_pm_free(d->pm);
	thoth_registry_free(d->registry);
	free(d->out);
	free(d->arena);
	free(d->event_buf);
	free(d);
}
