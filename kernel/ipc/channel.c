/*
 * channel.c - opening channels (the handshake over the service's Unix
 * socket), the client transport generated stubs run on, and the service
 * side that serves channels on a thoth_loop.  The rings themselves are in
 * chan_shm.c; docs/IPC.md describes the whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "chan_shm.h"
#include "fdpass.h"
#include "log_internal.h"
#include "channel.thoth.h"
#include "thoth/contract.h"
#include "thoth/stream.h"

#define HANDSHAKE_MAX 4096u     /* an open request or reply is far smaller */

static void put_why(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put_why(char *why, size_t len, const char *fmt, ...)
{
	if (!why || !len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* Receive into BUF at *HAVE (up to CAP), keeping the first fds that arrive
 * in FDS (up to 2; extra ones are closed).  Returns bytes read, 0 at EOF,
 * -1 with errno. */
static ssize_t recv_with_fds(int sock, uint8_t *buf, size_t cap, int *fds, int *nfds, int flags)
{
	size_t n = (size_t)*nfds;
	ssize_t r = thoth_fdpass_recv(sock, buf, cap, flags, fds, 2, &n);
	*nfds = (int)n;
	return r;
}

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	ssize_t r = thoth_fdpass_send(sock, buf, len, fds, (size_t)nfds);
	if (r < 0)
		return errno == EPIPE || errno == ECONNRESET ? THOTH_E_PEER_GONE : THOTH_E_IO;
	if ((size_t)r < len)
		return thoth_stream_write_all(sock, (const uint8_t *)buf + r, len - (size_t)r);
	return 0;
}

/* Length of the whole message whose first bytes are in BUF, or 0 if more
 * bytes are needed to know; a negative error for an impossible header. */
static int handshake_length(const uint8_t *buf, size_t have, size_t *need)
{
	*need = 0;
	int r = thoth_wire_msg_size(buf, have, HANDSHAKE_MAX - THOTH_WIRE_HEADER_SIZE, need);
	return r < 0 ? r : 0;
}

static void limits_to_wire(const thoth_chan_limits_t *l, thoth_channel_Limits_t *w)
{
	w->slots = l->slots;
	w->pool_buf_size = l->pool_buf_size;
	w->pool_bufs = l->pool_bufs;
}

static void limits_from_wire(const thoth_channel_Limits_t *w, thoth_chan_limits_t *l)
{
	l->slots = w->slots;
	l->pool_buf_size = w->pool_buf_size;
	l->pool_bufs = w->pool_bufs;
}

/* ==== client ============================================================== */

struct thoth_chan {
	chan_end_t end;
	thoth_client_t client;
	int sock;
	int peer_efd;
	int own_efd;                    /* loop_wakeup: the service wakes us here */
	int timeout_ms;                 /* < 0: forever */
	uint64_t features;
	bool mapped;
};

static int remaining_ms(uint64_t deadline)
{
	if (deadline == UINT64_MAX)
		return -1;
	uint64_t now = thoth_clock_now();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999999u) / 1000000u;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : thoth_clock_now() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds a blocking call may still wait, for TIMEOUT_MS > 0 or < 0.
 * The deadline (*DEADLINE, 0 = not yet) is fixed at the first wait, so a
 * call that never waits never reads the clock. */
static int wait_budget(uint64_t *deadline, int timeout_ms)
{
	if (!*deadline) {
		*deadline = deadline_of(timeout_ms);
		return timeout_ms;
	}
	return remaining_ms(*deadline);
}

int thoth_chan_alloc(thoth_chan_t *ch, size_t len, uint8_t **buf, int timeout_ms)
{
	uint64_t deadline = 0;
	for (;;) {
		int r = chan_try_alloc(&ch->end, len, buf);
		if (r != THOTH_E_AGAIN)
			return r;
		if (timeout_ms == 0)
			return r;
		int left = wait_budget(&deadline, timeout_ms);
		if (left == 0)
			return THOTH_E_TIMEDOUT;
		r = chan_wait(&ch->end, len <= THOTH_CHAN_INLINE_MAX ? CHAN_WAIT_SLOT : CHAN_WAIT_POOL, len, left);
		if (r)
			return r;
	}
}

int thoth_chan_send(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = 0;
	for (;;) {
		int r = chan_try_send(&ch->end, buf, len);
		if (r != THOTH_E_AGAIN || timeout_ms == 0)
			return r;
		int left = wait_budget(&deadline, timeout_ms);
		if (left == 0)
			return THOTH_E_TIMEDOUT;
		r = chan_wait(&ch->end, CHAN_WAIT_SLOT, 0, left);
		if (r)
			return r;
	}
}

void thoth_chan_discard(thoth_chan_t *ch, uint8_t *buf)
{
	chan_discard(&ch->end, buf);
}

int thoth_chan_recv(thoth_chan_t *ch, thoth_msg_t *msg, int timeout_ms)
{
	uint64_t deadline = 0;
	for (;;) {
		int r = chan_try_recv(&ch->end, msg);
		if (r != THOTH_E_AGAIN)
			return r;
		if (timeout_ms == 0) {
			/* Nothing yet: still report a peer that is gone. */
			r = chan_check_peer(&ch->end);
			return r ? r : THOTH_E_AGAIN;
		}
		int left = wait_budget(&deadline, timeout_ms);
		if (left == 0)
			return THOTH_E_TIMEDOUT;
		r = chan_wait(&ch->end, CHAN_WAIT_RECV, 0, left);
		if (r)
			return r;
	}
}

void thoth_chan_release(thoth_chan_t *ch, thoth_msg_t *msg)
{
	chan_release(&ch->end, msg);
}

/* ---- the transport generated stubs call through ---- */

static int tr_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	thoth_chan_t *ch = ctx;
	return thoth_chan_alloc(ch, len, buf, ch->timeout_ms);
}

static int tr_send(void *ctx, uint8_t *msg, size_t len)
{
	thoth_chan_t *ch = ctx;
	int r = thoth_chan_send(ch, msg, len, ch->timeout_ms);
	if (r)
		chan_discard(&ch->end, msg);
	return r;
}

static int tr_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	thoth_chan_t *ch = ctx;
	int r = tr_send(ctx, req, len);
	if (r)
		return r;
	return thoth_chan_recv(ch, resp, ch->timeout_ms);
}

static void tr_release(void *ctx, thoth_msg_t *resp)
{
	thoth_chan_release(ctx, resp);
}

static void tr_discard(void *ctx, uint8_t *buf)
{
	thoth_chan_discard(ctx, buf);
}

static const thoth_transport_ops_t chan_transport = {
	.get_buffer = tr_get_buffer,
	.call = tr_call,
	.send = tr_send,
	.release = tr_release,
	.discard = tr_discard,
};

thoth_client_t *thoth_chan_client(thoth_chan_t *ch) { return &ch->client; }
uint64_t thoth_chan_features(const thoth_chan_t *ch) { return ch->features; }
void thoth_chan_limits(const thoth_chan_t *ch, thoth_chan_limits_t *out) { *out = ch->end.lay.lim; }
void thoth_chan_stats(const thoth_chan_t *ch, thoth_chan_stats_t *out) { *out = ch->end.st; }
int thoth_chan_error(const thoth_chan_t *ch) { return ch->end.err; }
int thoth_chan_fd(const thoth_chan_t *ch) { return ch->own_efd; }

int thoth_chan_arm(thoth_chan_t *ch)
{
	if (ch->own_efd < 0)
		return THOTH_E_INVAL;
	uint64_t v;
	ssize_t n = read(ch->own_efd, &v, sizeof v);     /* non-blocking: clears a pending wake */
	(void)n;
	if (chan_arm(&ch->end, CHAN_WAIT_RECV, 0))
		return ch->end.err ? ch->end.err : 1;
	int r = chan_check_peer(&ch->end);
	if (r) {
		chan_disarm(&ch->end, CHAN_WAIT_RECV);
		return r;
	}
	return 0;
}
chan_end_t *thoth_chan__end(thoth_chan_t *ch) { return &ch->end; }

void thoth_chan_close(thoth_chan_t *ch)
{
	if (!ch)
		return;
	thoth_client_release(&ch->client);
	if (ch->mapped) {
		chan_end_close(&ch->end);
		chan_shm_unmap(ch->end.base, ch->end.lay.size);
	}
	chan_end_fini(&ch->end);
	if (ch->peer_efd >= 0)
		close(ch->peer_efd);
	if (ch->own_efd >= 0)
		close(ch->own_efd);
	if (ch->sock >= 0)
		close(ch->sock);
	free(ch);
}

/* Read one handshake message (blocking, with the socket's timeouts). */
static int read_handshake(int sock, uint8_t *buf, size_t *len, int *fds, int *nfds)
{
	size_t have = 0, need = 0;
	for (;;) {
		ssize_t r = recv_with_fds(sock, buf + have, HANDSHAKE_MAX - have, fds, nfds, 0);
		if (r == 0)
			return THOTH_E_PEER_GONE;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? THOTH_E_TIMEDOUT : THOTH_E_IO;
		}
		have += (size_t)r;
		int e = handshake_length(buf, have, &need);
		if (e)
			return e;
		if (need && have >= need) {
			if (have > need)
				return THOTH_E_PROTOCOL;   /* nothing may follow the handshake */
			*len = have;
			return 0;
		}
	}
}

int thoth_chan_connect(const char *path, const thoth_chan_config_t *cfg, thoth_chan_t **out,
		       char *why, size_t why_len)
{
	*out = NULL;
	put_why(why, why_len, "%s", "");
	if (!path || !cfg || !cfg->iface) {
		put_why(why, why_len, "no socket path or no interface given");
		return THOTH_E_INVAL;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		put_why(why, why_len, "socket path is %zu bytes, longer than the %zu a Unix socket allows",
			strlen(path), sizeof sa.sun_path - 1);
		return THOTH_E_INVAL;
	}
	strcpy(sa.sun_path, path);
	/* Nonsense limits are the caller's mistake: say so before connecting. */
	thoth_chan_limits_t want = cfg->limits;
	char lwhy[160];
	if (thoth_chan_limits_resolve(&want, lwhy, sizeof lwhy)) {
		put_why(why, why_len, "bad channel limits: %s", lwhy);
		return THOTH_E_INVAL;
	}

	thoth_chan_t *ch = calloc(1, sizeof *ch);
	if (!ch)
		return THOTH_E_NOMEM;
	ch->sock = ch->peer_efd = ch->own_efd = -1;
	ch->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : -1;
	int fds[2] = { -1, -1 }, nfds = 0;
	int r;
	uint8_t *msg = NULL;

	ch->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ch->sock < 0) {
		put_why(why, why_len, "socket: %s", strerror(errno));
		r = THOTH_E_IO;
		goto fail;
	}
	int hs_ms = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 2000;
	struct timeval tv = { hs_ms / 1000, (hs_ms % 1000) * 1000 };
	setsockopt(ch->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(ch->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(ch->sock, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED) {
			put_why(why, why_len, "no service listens at %s", path);
			r = THOTH_E_NOT_RUNNING;
		} else if (e == EACCES || e == EPERM) {
			put_why(why, why_len, "no permission to connect to %s", path);
			r = THOTH_E_PERM;
		} else {
			put_why(why, why_len, "connect %s: %s", path, strerror(e));
			r = THOTH_E_IO;
		}
		goto fail;
	}

	msg = aligned_alloc(8, HANDSHAKE_MAX);
	if (!msg) {
		r = THOTH_E_NOMEM;
		goto fail;
	}
	const thoth_interface_info_t *ifc = cfg->iface;
	thoth_channel_Channel_open_req_t req = {
		.package = thoth_str(ifc->package),
		.interface = thoth_str(ifc->name),
		.interface_id = ifc->id,
		.major = ifc->major,
		.minor = ifc->minor,
		.schema_hash = ifc->schema_hash,
		.features = cfg->features,
		.client_wakeup = cfg->loop_wakeup,
	};
	limits_to_wire(&cfg->limits, &req.limits);
	if (cfg->loop_wakeup) {
		ch->own_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (ch->own_efd < 0) {
			put_why(why, why_len, "eventfd: %s", strerror(errno));
			r = THOTH_E_IO;
			goto fail;
		}
	}
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	r = thoth_channel_Channel_open_req_encode_msg(msg, HANDSHAKE_MAX, &meta, &req, &len);
	if (!r)
		r = send_with_fds(ch->sock, msg, len, &ch->own_efd, cfg->loop_wakeup ? 1 : 0);
	if (r) {
		put_why(why, why_len, "sending the channel handshake to %s: %s", path, thoth_strerror(r));
		goto fail;
	}
	r = read_handshake(ch->sock, msg, &len, fds, &nfds);
	if (r) {
		put_why(why, why_len, "reading the service's handshake reply from %s: %s", path,
			r == THOTH_E_TIMEDOUT ? "no answer in time" : thoth_strerror(r));
		goto fail;
	}
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_channel_Channel_open_resp_t resp;
	r = thoth_channel_Channel_open_resp_decode_msg(msg, len, &resp, &arena);
	if (r) {
		put_why(why, why_len, "the service's handshake reply does not decode: %s", thoth_strerror(r));
		r = THOTH_E_PROTOCOL;
		goto fail;
	}
	if (resp.status) {
		put_why(why, why_len, "%.*s", (int)resp.reason.len, resp.reason.ptr);
		r = resp.status < 0 && resp.status > -100 ? resp.status : THOTH_E_PROTOCOL;
		goto fail;
	}
	if (resp.major != ifc->major || (resp.features & ~cfg->features)) {
		put_why(why, why_len, "service answered version %u.%u with features %#llx to a %u.x client offering %#llx",
			resp.major, resp.minor, (unsigned long long)resp.features, ifc->major,
			(unsigned long long)cfg->features);
		r = THOTH_E_PROTOCOL;
		goto fail;
	}
	thoth_chan_limits_t lim;
	limits_from_wire(&resp.limits, &lim);
	chan_layout_t lay;
	if ((cfg->limits.slots && lim.slots != cfg->limits.slots) ||
	    (cfg->limits.pool_buf_size && lim.pool_buf_size != cfg->limits.pool_buf_size) ||
	    (cfg->limits.pool_bufs && lim.pool_bufs != cfg->limits.pool_bufs) ||
	    thoth_chan_limits_resolve(&lim, lwhy, sizeof lwhy) || chan_layout_compute(&lim, &lay) ||
	    resp.shm_size != lay.size) {
		put_why(why, why_len, "service answered with limits we did not ask for or cannot use");
		r = THOTH_E_PROTOCOL;
		goto fail;
	}
	if (nfds != 2) {
		put_why(why, why_len, "service sent %d file descriptors with its reply, expected 2", nfds);
		r = THOTH_E_PROTOCOL;
		goto fail;
	}
	struct stat st;
	int seals = fcntl(fds[0], F_GET_SEALS);
	if (fstat(fds[0], &st) < 0 || (size_t)st.st_size != lay.size || seals < 0 ||
	    !(seals & F_SEAL_SHRINK)) {
		put_why(why, why_len, "the channel memory the service sent is not a sealed memfd of %zu bytes", lay.size);
		r = THOTH_E_PROTOCOL;
		goto fail;
	}
	uint8_t *base = chan_shm_map(fds[0], lay.size);
	if (!base) {
		put_why(why, why_len, "cannot map %zu bytes of channel memory: %s", lay.size, strerror(errno));
		r = THOTH_E_NOMEM;
		goto fail;
	}
	close(fds[0]);
	fds[0] = -1;
	ch->peer_efd = fds[1];
	fds[1] = -1;
	r = chan_end_init(&ch->end, base, &lay, CHAN_CLIENT);
	ch->mapped = true;          /* unmapped by close from here on */
	if (r) {
		put_why(why, why_len, "%s", ch->end.why);
		goto fail;
	}
	ch->end.peer_efd = ch->peer_efd;
	ch->end.own_efd = ch->own_efd;
	struct ucred cred = { 0 };
	socklen_t cl = sizeof cred;
	if (getsockopt(ch->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		ch->end.service_pid = (uint32_t)cred.pid;
	ch->end.sock = ch->sock;
	ch->end.wait = cfg->wait;
	ch->end.spin_max = ch->end.spin_budget =
		cfg->wait == THOTH_CHAN_SLEEP ? 0 : (cfg->spin_ns ? cfg->spin_ns : THOTH_CHAN_DEFAULT_SPIN_NS);
	ch->features = resp.features;
	thoth_client_init(&ch->client, &chan_transport, ch, resp.features);
	free(msg);
	*out = ch;
	return 0;

fail:
	free(msg);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	thoth_chan_close(ch);
	return r;
}

/* ==== service ============================================================= */

typedef struct conn {
	struct conn *prev, *next;
	thoth_chan_server_t *srv;
	int sock, efd, peer_efd;
	thoth_source_t *sock_src, *efd_src;
	bool open;
	pid_t pid;
	uint8_t *hs;                    /* handshake bytes so far (until open) */
	size_t hs_len;
	int hs_fds[2], hs_nfds;
	chan_end_t end;
	bool mapped;
	uint64_t features;
	uint8_t *pending_out;           /* buffer handed to dispatch, not yet sent */
	uint64_t slept_at;              /* when it last went back to the loop to wait */
} conn_t;

struct thoth_chan_server {
	thoth_loop_t *loop;
	thoth_chan_server_config_t cfg;
	char *path;
	int lfd;
	thoth_source_t *lsrc;
	conn_t *conns;
	thoth_chan_limits_t defaults;
	thoth_chan_server_stats_t st;
	uint64_t *arena_buf;
	size_t arena_cap;
};

static void srv_log(thoth_chan_server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_log(thoth_chan_server_t *s, const char *fmt, ...)
{
	if (!s->cfg.log)
		return;
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.log_arg, line);
}

static void conn_close(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->sock_src)
		thoth_loop_remove_fd(s->loop, c->sock_src);
	if (c->efd_src)
		thoth_loop_remove_fd(s->loop, c->efd_src);
	if (c->mapped) {
		chan_end_close(&c->end);
		chan_shm_unmap(c->end.base, c->end.lay.size);
		s->st.clients--;
	}
	chan_end_fini(&c->end);
	for (int i = 0; i < c->hs_nfds; i++)
		close(c->hs_fds[i]);
	if (c->peer_efd >= 0)
		close(c->peer_efd);
	if (c->efd >= 0)
		close(c->efd);
	if (c->sock >= 0)
		close(c->sock);
	free(c->hs);
	free(c);
}

static int conn_get_out(void *ctx, size_t len, uint8_t **buf)
{
	conn_t *c = ctx;
	if (c->pending_out) {
		chan_discard(&c->end, c->pending_out);
		c->pending_out = NULL;
	}
	int r = chan_try_alloc(&c->end, len, buf);
	if (!r)
		c->pending_out = *buf;
	return r;
}

/* Serve what the client has queued; return when the rings say wait (the
 * waiting flags are then set, so the client wakes our eventfd). */
static void conn_process(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	chan_end_t *e = &c->end;
	chan_disarm(e, CHAN_WAIT_RECV);
	chan_disarm(e, CHAN_WAIT_SLOT);
	for (;;) {
		/* An orderly close (the socket's end is seen by on_sock; reading
		 * it here would cost a system call per message).  What the
		 * client queued before closing is still served: a oneway
		 * message sent just before close is not lost. */
		bool closing = atomic_load_explicit(&e->ctl->closed[CHAN_CLIENT], memory_order_acquire);
		if (closing && !chan_ready(e, CHAN_WAIT_RECV, 0)) {
			s->st.peer_gone++;
			conn_close(c);
			return;
		}
		/* A request is taken only when its response can be queued. */
		if (!chan_ready(e, CHAN_WAIT_SLOT, 0)) {
			if (closing) {          /* nobody will read the answers */
				s->st.peer_gone++;
				conn_close(c);
				return;
			}
			if (chan_spin(e, CHAN_WAIT_SLOT, 0) || chan_arm(e, CHAN_WAIT_SLOT, 0))
				continue;
			return;
		}
		thoth_msg_t msg;
		int r = chan_try_recv(e, &msg);
		if (r == THOTH_E_AGAIN) {
			if (chan_spin(e, CHAN_WAIT_RECV, 0) || chan_arm(e, CHAN_WAIT_RECV, 0))
				continue;
			c->slept_at = thoth_clock_now();   /* the eventfd wakes us; on_efd learns how long */
			return;
		}
		if (!r) {
			thoth_arena_t arena;
			thoth_arena_init(&arena, s->arena_buf, s->arena_cap);
			thoth_server_io_t io = { .arena = &arena, .features = c->features,
						 .get_out = conn_get_out, .out_ctx = c };
			r = thoth_server_dispatch(s->cfg.iface, s->cfg.invoke, s->cfg.handlers, s->cfg.self,
						  msg.data, msg.len, &io);
			s->st.calls++;
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
			if (!r)
				r = rr;
			if (r && r != THOTH_E_CORRUPT && r != THOTH_E_PEER_GONE) {
				srv_log(s, "client pid %d sent a message that cannot be answered (%s): closing its channel",
					(int)c->pid, thoth_strerror(r));
				s->st.corrupt++;
				conn_close(c);
				return;
			}
		}
		if (r) {
			if (r == THOTH_E_CORRUPT) {
				srv_log(s, "client pid %d corrupted its channel (%s): closing it", (int)c->pid, e->why);
				s->st.corrupt++;
			} else {
				s->st.peer_gone++;
			}
			conn_close(c);
			return;
		}
	}
}

static void on_efd(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	conn_t *c = arg;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof v);
	(void)r;
	if (c->slept_at) {
		chan_spin_slept(&c->end, thoth_clock_now() - c->slept_at);
		c->slept_at = 0;
	}
	conn_process(c);
}

/* Answer a handshake: status 0 with the fds, or a refusal with a reason. */
static int send_open_reply(conn_t *c, int status, const char *reason, const thoth_chan_limits_t *lim,
			   size_t shm_size, const int *fds, int nfds)
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
		limits_to_wire(lim, &resp.limits);
	uint64_t buf[HANDSHAKE_MAX / 8];
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	int r = thoth_channel_Channel_open_resp_encode_msg(buf, sizeof buf, &meta, &resp, &len);
	return r ? r : send_with_fds(c->sock, buf, len, fds, nfds);
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
	send_open_reply(c, status, reason, NULL, 0, NULL, 0);
	srv_log(c->srv, "refused a channel to client pid %d: %s", (int)c->pid, reason);
	c->srv->st.refused++;
	conn_close(c);
}

static void handle_open(conn_t *c)
{
	thoth_chan_server_t *s = c->srv;
	const thoth_interface_info_t *ifc = s->cfg.iface;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_channel_Channel_open_req_t req;
	int r = thoth_channel_Channel_open_req_decode_msg(c->hs, c->hs_len, &req, &arena);
	if (r)
		return refuse(c, THOTH_E_PROTOCOL, "the channel handshake does not decode: %s", thoth_strerror(r));

	/* A client that waits on a loop sends exactly one eventfd with the
	 * request; nobody else may send any. */
	if (req.client_wakeup != (c->hs_nfds == 1) || c->hs_nfds > 1)
		return refuse(c, THOTH_E_PROTOCOL, "the handshake %s a wake-up eventfd but carried %d file descriptors",
			      req.client_wakeup ? "asks for" : "does not ask for", c->hs_nfds);
	if (c->hs_nfds == 1) {
		struct stat st;
		char link[64], target[64] = "";
		snprintf(link, sizeof link, "/proc/self/fd/%d", c->hs_fds[0]);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (fstat(c->hs_fds[0], &st) < 0 || n <= 0 || !strstr(target, "eventfd"))
			return refuse(c, THOTH_E_PROTOCOL, "the file descriptor sent with the handshake is not an eventfd");
		c->peer_efd = c->hs_fds[0];
		c->hs_nfds = 0;
	}

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

	thoth_chan_limits_t lim;
	limits_from_wire(&req.limits, &lim);
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
	chan_shm_format(base, &lay);
	if (chan_end_init(&c->end, base, &lay, CHAN_SERVER)) {
		chan_shm_unmap(base, lay.size);
		close(memfd);
		return refuse(c, THOTH_E_NOMEM, "out of memory");
	}
	c->mapped = true;
	s->st.clients++;
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd < 0 || thoth_loop_add_fd(s->loop, c->efd, THOTH_LOOP_READ, on_efd, c, &c->efd_src)) {
		close(memfd);
		return refuse(c, THOTH_E_IO, "service cannot create its wake-up eventfd: %s", strerror(errno));
	}
	c->end.peer_efd = c->peer_efd;      /* -1: the client sleeps on futexes */
	c->end.sock = c->sock;
	c->end.service_pid = (uint32_t)getpid();
	c->end.wait = s->cfg.wait;
	c->end.spin_max = c->end.spin_budget =
		s->cfg.wait == THOTH_CHAN_SLEEP ? 0 : (s->cfg.spin_ns ? s->cfg.spin_ns : THOTH_CHAN_DEFAULT_SPIN_NS);
	int fds[2] = { memfd, c->efd };
	r = send_open_reply(c, 0, "", &lim, lay.size, fds, 2);
	close(memfd);                       /* the mapping keeps the memory */
	free(c->hs);
	c->hs = NULL;
	if (r) {
		s->st.peer_gone++;
		conn_close(c);
		return;
	}
	c->open = true;
	s->st.accepted++;
	chan_arm(&c->end, CHAN_WAIT_RECV, 0);
	if (chan_ready(&c->end, CHAN_WAIT_RECV, 0))
		conn_process(c);
}

static void on_sock(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	conn_t *c = arg;
	thoth_chan_server_t *s = c->srv;
	if (c->open) {
		/* Only the end of the connection is expected here. */
		char b;
		ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT);
		if (r > 0) {
			srv_log(s, "client pid %d wrote on its socket after the handshake: closing its channel",
				(int)c->pid);
			s->st.corrupt++;
			conn_close(c);
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			/* Serve what it queued before it went (it may have been
			 * oneway messages), then close: conn_process closes the
			 * channel once the ring is empty, as the closed flag or
			 * the end of the socket says. */
			atomic_store_explicit(&c->end.ctl->closed[CHAN_CLIENT], 1, memory_order_release);
			conn_process(c);
		}
		return;
	}
	ssize_t r = recv_with_fds(fd, c->hs + c->hs_len, HANDSHAKE_MAX - c->hs_len, c->hs_fds,
				  &c->hs_nfds, MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		conn_close(c);          /* went away during the handshake */
		return;
	}
	c->hs_len += (size_t)r;
	size_t need;
	int e = handshake_length(c->hs, c->hs_len, &need);
	if (e)
		return refuse(c, THOTH_E_PROTOCOL, "the channel handshake is not a thoth message (%s)",
			      thoth_strerror(e));
	if (!need || c->hs_len < need)
		return;
	if (c->hs_len > need)
		return refuse(c, THOTH_E_PROTOCOL, "bytes follow the channel handshake");
	handle_open(c);
}

static void on_accept(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_chan_server_t *s = arg;
	int cfd;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		uint32_t n = 0;
		for (conn_t *c = s->conns; c; c = c->next)
			n++;
		struct ucred cred = { 0 };
		socklen_t cl = sizeof cred;
		getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl);
		if (n >= s->cfg.max_clients) {
			srv_log(s, "refusing client pid %d: %u channels open, the limit", (int)cred.pid, n);
			s->st.refused++;
			close(cfd);
			continue;
		}
		conn_t *c = calloc(1, sizeof *c);
		uint8_t *hs = aligned_alloc(8, HANDSHAKE_MAX);
		if (!c || !hs) {
			free(c);
			free(hs);
			close(cfd);
			continue;
		}
		c->srv = s;
		c->sock = cfd;
		c->efd = c->peer_efd = -1;
		c->pid = cred.pid;
		c->hs = hs;
		if (thoth_loop_add_fd(loop, cfd, THOTH_LOOP_READ, on_sock, c, &c->sock_src)) {
			free(hs);
			free(c);
			close(cfd);
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
	}
}

int thoth_chan_server_new(thoth_loop_t *loop, const thoth_chan_server_config_t *cfg,
			  thoth_chan_server_t **out, char *why, size_t why_len)
{
	*out = NULL;
	put_why(why, why_len, "%s", "");
	if (!loop || !cfg || !cfg->path || !cfg->iface || !cfg->invoke || !cfg->handlers) {
		put_why(why, why_len, "a service needs a loop, a socket path, an interface, its invoke function and handlers");
		return THOTH_E_INVAL;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(cfg->path) >= sizeof sa.sun_path) {
		put_why(why, why_len, "socket path is %zu bytes, longer than the %zu a Unix socket allows",
			strlen(cfg->path), sizeof sa.sun_path - 1);
		return THOTH_E_INVAL;
	}
	strcpy(sa.sun_path, cfg->path);
	thoth_chan_limits_t lim = cfg->limits;
	char lwhy[160];
	if (thoth_chan_limits_resolve(&lim, lwhy, sizeof lwhy)) {
		put_why(why, why_len, "bad channel limits: %s", lwhy);
		return THOTH_E_INVAL;
	}
	thoth_chan_server_t *s = calloc(1, sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	s->loop = loop;
	s->cfg = *cfg;
	if (!s->cfg.max_clients)
		s->cfg.max_clients = 1024;
	s->defaults = lim;
	s->lfd = -1;
	s->path = strdup(cfg->path);
	s->arena_cap = 64u << 10;
	s->arena_buf = aligned_alloc(8, s->arena_cap);
	if (!s->path || !s->arena_buf) {
		thoth_chan_server_free(s);
		return THOTH_E_NOMEM;
	}
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* A socket file left by a dead service is replaced; a live one is not. */
	if (s->lfd >= 0 && access(cfg->path, F_OK) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
			close(probe);
			put_why(why, why_len, "another service already listens at %s", cfg->path);
			thoth_chan_server_free(s);
			return THOTH_E_BUSY;
		}
		if (probe >= 0)
			close(probe);
		unlink(cfg->path);
	}
	/* Bind under a temporary name, listen, then rename into place: a
	 * client that sees the path can always connect (no window between
	 * bind and listen in which it would be refused). */
	struct sockaddr_un ta = sa;
	int n = snprintf(ta.sun_path, sizeof ta.sun_path, "%s.%d.tmp", cfg->path, (int)getpid());
	bool staged = n > 0 && (size_t)n < sizeof ta.sun_path;
	if (!staged)
		ta = sa;
	else
		unlink(ta.sun_path);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&ta, sizeof ta) < 0 || listen(s->lfd, 128) < 0 ||
	    (staged && rename(ta.sun_path, cfg->path) < 0)) {
		put_why(why, why_len, "cannot listen at %s: %s", cfg->path, strerror(errno));
		if (staged)
			unlink(ta.sun_path);
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
	if (s->lsrc)
		thoth_loop_remove_fd(s->loop, s->lsrc);
	if (s->lfd >= 0) {
		close(s->lfd);
		if (s->path)
			unlink(s->path);
	}
	free(s->path);
	free(s->arena_buf);
	free(s);
}

void thoth_chan_server_stats(const thoth_chan_server_t *s, thoth_chan_server_stats_t *out)
{
	*out = s->st;
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
	r = thoth_loop_run(loop);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	return r;
}
