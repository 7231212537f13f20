/*
 * tcp_server.c - serve one interface to other hosts over TCP on a
 * thoth_loop (include/thoth/tcp.h; the protocol: tcp_session.c).
 *
 * Each connection is a session (bytes in, responses out) plus:
 *  - input bounded in bytes by the session's reader (a header announcing
 *    more than max_message - or more than a hello before the hello - is
 *    refused as soon as its 40 bytes arrive) and in time by one deadline:
 *    the hello within handshake_timeout_ms of the accept, a started request
 *    (or queued output) finished within frame_timeout_ms, else a request
 *    within idle_timeout_ms.  A peer that trickles bytes (slowloris) or
 *    never reads its answers is closed when its deadline passes;
 *  - output queued when the socket does not take it at once, reading paused
 *    while more than PAUSE_BACKLOG waits (a pipelining client cannot grow
 *    our memory), the connection closed above max_backlog;
 *  - at most max_conns connections: one more is accepted and closed at
 *    once (a listener that stops accepting would leave it in the backlog,
 *    holding a kernel buffer and the peer's hopes).
 * Whatever a connection does ends that connection only.  One timer per
 * connection, moved only when its deadline moves earlier (the first byte of
 * a partial request): a connection at rest costs nothing until its idle
 * deadline, and the timer's callback re-derives the real deadline.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream_buf.h"
#include "tcp_internal.h"
#include "thoth/error.h"
#include "log_internal.h"
#include "why.h"

#define MS_NS 1000000ull

enum {
	PAUSE_BACKLOG = 256u << 10,     /* stop reading a connection above this much unsent output */
	FILLS_PER_WAKEUP = 16,          /* fairness between connections */
	ACCEPTS_PER_WAKEUP = 64,
	LOG_PER_SECOND = 20,            /* a flood of bad connections must not flood the log */
};

typedef struct tcp_conn tcp_conn_t;

struct thoth_tcp_server {
	thoth_loop_t *loop;
	thoth_tcp_server_config_t cfg;
	thoth__tcp_service_t svc;
	int listen_fd;
	thoth_source_t *listen_src;
	char addr[THOTH_TCP_ADDR_MAX];
	uint16_t port;
	tcp_conn_t *conns;
	thoth_tcp_server_stats_t stats;
	uint64_t log_second;
	uint32_t log_count;
};

struct tcp_conn {
	thoth_tcp_server_t *srv;
	tcp_conn_t *prev, *next;
	int fd;
	thoth_source_t *src;
	thoth_timer_t *timer;
	thoth__tcp_session_t sess;
	thoth_outq_t out;               /* answers the socket has not taken yet */
	uint64_t accepted_ns, active_ns, partial_since_ns;   /* partial_since 0: nothing partial */
	bool paused, doomed, close_after_flush;
	char peer[80];
};

static void srv_log(thoth_tcp_server_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void srv_log(thoth_tcp_server_t *s, const char *fmt, ...)
{
	uint64_t sec = thoth_loop_now(s->loop) / 1000000000ull;
	if (sec != s->log_second) {
		s->log_second = sec;
		s->log_count = 0;
	}
	if (s->log_count++ >= LOG_PER_SECOND)
		return;
	/* A line holds a peer's words (the names its hello claimed, in a
	 * contract refusal): its control characters escaped (why.h), or a
	 * hostile client's "\r\n" forged a line of the server's log and an
	 * escape drove the reader's terminal.  A cut is said ("..."),
	 * between escapes: the in-process sink (thoth__log) cut the escaped
	 * text at its 512 bytes, mid-"\x1b" at worst, and the line looked
	 * whole; so its line is fitted here. */
	char raw[400], line[4 * sizeof raw];
	va_list ap;
	va_start(ap, fmt);
	int want = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	bool cut = want >= (int)sizeof raw;
	if (s->cfg.log) {
		thoth__why_text_cut(line, sizeof line, raw, strlen(raw), cut);
		s->cfg.log(s->cfg.log_arg, line);
		return;
	}
	char full[THOTH__LOG_LINE_MAX];
	size_t pre = (size_t)snprintf(full, sizeof full, "%s: ", s->addr);  /* < THOTH_TCP_ADDR_MAX + 2 */
	thoth__why_text_cut(full + pre, sizeof full - pre, raw, strlen(raw), cut);
	thoth__log(THOTH_LOG_INFO, "tcp", "%s", full);
}

static size_t backlog(const tcp_conn_t *c)
{
	return thoth__outq_pending(&c->out);
}

static void conn_doom(tcp_conn_t *c, uint64_t *counter, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void conn_doom(tcp_conn_t *c, uint64_t *counter, const char *fmt, ...)
{
	if (c->doomed)
		return;
	c->doomed = true;
	if (counter)
		(*counter)++;
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	srv_log(c->srv, "connection from %s closed: %s", c->peer, why);
}

static void conn_free(tcp_conn_t *c)
{
	thoth_tcp_server_t *s = c->srv;
	if (c->timer)
		thoth_timer_cancel(s->loop, c->timer);
	if (c->src)
		thoth_loop_remove_fd(s->loop, c->src);
	if (c->fd >= 0)
		close(c->fd);
	thoth__tcp_session_free(&c->sess);
	thoth__outq_free(&c->out);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->stats.conns--;
	free(c);
}

/* When C must next show progress (see the file comment). */
static uint64_t conn_deadline(const tcp_conn_t *c)
{
	const thoth_tcp_server_config_t *cfg = &c->srv->cfg;
	if (!c->sess.authenticated)
		return c->accepted_ns + cfg->handshake_timeout_ms * MS_NS;
	if (c->partial_since_ns)
		return c->partial_since_ns + cfg->frame_timeout_ms * MS_NS;
	return c->active_ns + (uint64_t)cfg->idle_timeout_ms * MS_NS;
}

static void conn_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static void conn_arm(tcp_conn_t *c)
{
	uint64_t at = conn_deadline(c);
	if (c->timer) {
		/* Later deadlines are found when the timer fires; only an
		 * earlier one moves it. */
		if (thoth_timer_deadline(c->timer) <= at)
			return;
		if (thoth_timer_rearm(c->srv->loop, c->timer, at, 10 * MS_NS) == 0)
			return;
		thoth_timer_cancel(c->srv->loop, c->timer);
		c->timer = NULL;
	}
	if (thoth_loop_add_timer(c->srv->loop, at, 10 * MS_NS, conn_timer_fired, c, &c->timer)) {
		c->timer = NULL;
		conn_doom(c, NULL, "cannot arm its deadline timer");
	}
}

static void conn_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	tcp_conn_t *c = arg;
	c->timer = NULL;                /* a fired timer not re-armed is freed by the loop */
	uint64_t now = thoth_loop_now(loop), at = conn_deadline(c);
	if (at > now) {
		conn_arm(c);
		if (!c->doomed)
			return;
	} else if (!c->sess.authenticated) {
		conn_doom(c, &c->srv->stats.timed_out, "no hello within %u ms", c->srv->cfg.handshake_timeout_ms);
	} else if (c->partial_since_ns) {
		conn_doom(c, &c->srv->stats.timed_out, "%s within %u ms",
			  backlog(c) ? "did not read its answers" : "did not finish a request",
			  c->srv->cfg.frame_timeout_ms);
	} else {
		conn_doom(c, &c->srv->stats.timed_out, "idle for %u ms", c->srv->cfg.idle_timeout_ms);
	}
	conn_free(c);
}

static void update_interest(tcp_conn_t *c)
{
	if (c->doomed)
		return;
	uint32_t ev = (c->paused || c->close_after_flush ? 0 : THOTH_LOOP_READ) |
		      (backlog(c) ? THOTH_LOOP_WRITE : 0);
	if (thoth_loop_modify_fd(c->srv->loop, c->src, ev))
		conn_doom(c, NULL, "cannot update its epoll interest");
}

static void flush(tcp_conn_t *c)
{
	if (!c->doomed && thoth__outq_flush(&c->out, c->fd))
		conn_doom(c, NULL, "write failed: %s", strerror(errno));
}

static void conn_send(tcp_conn_t *c, const uint8_t *buf, size_t len)
{
	if (backlog(c) + len > c->srv->cfg.max_backlog) {
		conn_doom(c, &c->srv->stats.overrun, "does not read its answers: %zu bytes unsent (limit %u)",
			  backlog(c) + len, c->srv->cfg.max_backlog);
		return;
	}
	int r = thoth__outq_send(&c->out, c->fd, buf, len);
	if (r == THOTH_E_NOMEM)
		conn_doom(c, NULL, "out of memory for its answers");
	else if (r)
		conn_doom(c, NULL, "write failed: %s", strerror(errno));
}

/* Handle every whole message buffered, unless output backs up. */
static void conn_process(tcp_conn_t *c)
{
	thoth_tcp_server_t *s = c->srv;
	while (!c->doomed && !c->close_after_flush) {
		if (backlog(c) > PAUSE_BACKLOG) {
			c->paused = true;
			return;
		}
		bool was_authenticated = c->sess.authenticated;
		uint64_t calls = c->sess.calls;
		const uint8_t *out;
		size_t len;
		int r = thoth__tcp_session_step(&c->sess, &out, &len);
		if (r == THOTH__TCP_NEED_MORE)
			return;
		if (r < 0) {
			if (!was_authenticated)
				s->stats.refused++;
			conn_doom(c, &s->stats.bad_input, "%s", c->sess.why);
			return;
		}
		c->active_ns = thoth_loop_now(s->loop);
		s->stats.calls += c->sess.calls - calls;
		if (!was_authenticated && c->sess.authenticated)
			s->stats.authenticated++;
		else if (!was_authenticated)
			s->stats.refused++;
		if (len)
			conn_send(c, out, len);
		if (r == THOTH__TCP_REPLY_CLOSE) {
			srv_log(s, "connection from %s: %s", c->peer, c->sess.why);
			if (was_authenticated)
				s->stats.bad_input++;
			c->close_after_flush = true;
		}
	}
}

/* After I/O: close, pause or resume, and where the deadline stands. */
static void conn_settle(tcp_conn_t *c)
{
	if (c->close_after_flush && !backlog(c))
		c->doomed = true;       /* answered its refusal: now close */
	if (c->doomed) {
		conn_free(c);
		return;
	}
	if (c->paused && backlog(c) <= PAUSE_BACKLOG / 2) {
		c->paused = false;
		conn_process(c);        /* what was buffered while paused */
		if (c->doomed) {
			conn_free(c);
			return;
		}
	}
	bool partial = c->sess.reader.len || backlog(c);
	if (!c->sess.reader.len)
		thoth_stream_reader_trim(&c->sess.reader);
	if (partial && !c->partial_since_ns)
		c->partial_since_ns = thoth_loop_now(c->srv->loop);
	else if (!partial)
		c->partial_since_ns = 0;
	update_interest(c);
	conn_arm(c);
	if (c->doomed)
		conn_free(c);
}

static void conn_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	tcp_conn_t *c = arg;
	(void)loop;
	(void)src;
	if (events & THOTH_LOOP_WRITE)
		flush(c);
	if ((events & (THOTH_LOOP_READ | THOTH_LOOP_HUP)) && !c->paused && !c->close_after_flush) {
		for (int i = 0; i < FILLS_PER_WAKEUP && !c->doomed && !c->paused; i++) {
			size_t before = c->sess.reader.len;
			int r = thoth_stream_fill(&c->sess.reader, fd);
			if (r == THOTH_E_PEER_GONE) {
				conn_process(c);        /* its last words first */
				flush(c);
				if (!c->doomed) {
					c->doomed = true;       /* an orderly end: not worth a log line */
				}
				break;
			}
			if (r) {
				conn_doom(c, NULL, "read failed: %s", thoth_strerror(r));
				break;
			}
			if (c->sess.reader.len == before)
				break;
			bool drained = c->sess.reader.len < c->sess.reader.cap;
			conn_process(c);
			if (drained)
				break;
		}
	}
	conn_settle(c);
}

/* "HOST:PORT" of the peer, for log lines. */
static void peer_name(int fd, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[64] = "?";
	unsigned port = 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	snprintf(out, cap, "%s:%u", host, port);
}

static void accept_conns(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_tcp_server_t *s = arg;
	(void)src;
	(void)events;
	for (int i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				srv_log(s, "accept: %s", strerror(errno));
			return;
		}
		s->stats.accepted++;
		if (s->stats.conns >= s->cfg.max_conns) {
			s->stats.shed++;
			srv_log(s, "refused a connection: %u open, the limit", s->stats.conns);
			close(cfd);
			continue;
		}
		tcp_conn_t *c = calloc(1, sizeof *c);
		if (!c || thoth__tcp_session_init(&c->sess, &s->svc)) {
			free(c);
			close(cfd);
			srv_log(s, "out of memory for a connection");
			continue;
		}
		int one = 1;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c->srv = s;
		c->fd = cfd;
		c->accepted_ns = c->active_ns = thoth_loop_now(loop);
		peer_name(cfd, c->peer, sizeof c->peer);
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->stats.conns++;
		if (thoth_loop_add_fd(loop, cfd, THOTH_LOOP_READ, conn_io, c, &c->src)) {
			c->src = NULL;
			conn_free(c);
			continue;
		}
		conn_arm(c);
		if (c->doomed)
			conn_free(c);
	}
}

int thoth_tcp_server_new(thoth_loop_t *loop, const thoth_tcp_server_config_t *cfg,
			 thoth_tcp_server_t **out, char *why, size_t why_len)
{
	*out = NULL;
	if (!loop || !cfg || !cfg->iface || !cfg->invoke || !cfg->handlers) {
		thoth__tcp_why(why, why_len, "a TCP server needs a loop, an interface, its invoke function and handlers");
		return THOTH_E_INVAL;
	}
	thoth_tcp_addr_t a;
	int r = thoth_tcp_addr_parse(cfg->addr, true, &a, why, why_len);
	if (r)
		return r;
	thoth_tcp_server_t *s = calloc(1, sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	s->loop = loop;
	s->cfg = *cfg;
	s->cfg.addr = NULL;
	s->listen_fd = -1;
	thoth_tcp_server_config_t *c = &s->cfg;
	if (!c->max_conns)
		c->max_conns = 256;
	if (!c->max_message)
		c->max_message = THOTH_TCP_DEFAULT_MAX_MESSAGE;
	if (!c->max_backlog)
		c->max_backlog = 4u << 20;
	if (!c->handshake_timeout_ms)
		c->handshake_timeout_ms = 1000;
	if (!c->frame_timeout_ms)
		c->frame_timeout_ms = 5000;
	if (!c->idle_timeout_ms)
		c->idle_timeout_ms = 300000;
	if (c->max_message < 4096 || c->max_message > THOTH_WIRE_MAX_BODY) {
		thoth__tcp_why(why, why_len, "max_message %u: must be 4096..%u", c->max_message,
			       (unsigned)THOTH_WIRE_MAX_BODY);
		free(s);
		return THOTH_E_INVAL;
	}
	if (c->max_backlog < c->max_message)
		c->max_backlog = c->max_message;        /* one whole answer always fits */
	s->svc = (thoth__tcp_service_t){
		.iface = c->iface, .invoke = c->invoke, .handlers = c->handlers, .self = c->self,
		.features = c->features, .max_message = c->max_message,
	};
	r = thoth__tcp_token_from(c->token, c->token_len, c->token_file, s->svc.token, &s->svc.token_len,
				  why, why_len);
	c->token = NULL;                /* ours is in svc.token: the caller's may go away */
	c->token_file = NULL;
	if (r) {
		free(s);
		return r;
	}
	r = thoth__tcp_service_init(&s->svc);
	if (r)
		goto fail;
	r = thoth__tcp_listen(&a, &s->listen_fd, why, why_len);
	if (r)
		goto fail;
	r = thoth__tcp_local_addr(s->listen_fd, s->addr, sizeof s->addr, &s->port);
	if (r) {
		thoth__tcp_why(why, why_len, "cannot name the address we listen on");
		goto fail;
	}
	r = thoth_loop_add_fd(loop, s->listen_fd, THOTH_LOOP_READ, accept_conns, s, &s->listen_src);
	if (r) {
		thoth__tcp_why(why, why_len, "cannot watch the listening socket");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	thoth__tcp_service_free(&s->svc);
	free(s);
	return r;
}

const char *thoth_tcp_server_addr(const thoth_tcp_server_t *srv)
{
	return srv->addr;
}

uint16_t thoth_tcp_server_port(const thoth_tcp_server_t *srv)
{
	return srv->port;
}

void thoth_tcp_server_stats(const thoth_tcp_server_t *srv, thoth_tcp_server_stats_t *out)
{
	*out = srv->stats;
}

void thoth_tcp_server_free(thoth_tcp_server_t *srv)
{
	if (!srv)
		return;
	while (srv->conns)
		conn_free(srv->conns);
	if (srv->listen_src)
		thoth_loop_remove_fd(srv->loop, srv->listen_src);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	thoth__tcp_service_free(&srv->svc);
	free(srv);
}
