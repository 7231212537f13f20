/*
 * tcp_client.c - a client of a thoth service on another host
 * (include/thoth/tcp.h): the opening (connect, Tcp.hello, its answer) as
 * steps that never wait, for a pool on its loop (tcp_internal.h), or with
 * poll(2) between them and a deadline (thoth_tcp_connect_with); then
 * generated stubs as a blocking thoth_transport_ops_t, or messages for a
 * pool (thoth_tcp_alloc/send/recv).
 *
 * Every call is bounded by call_timeout_ms, sending included (a server
 * that stops reading cannot hold us in a blocking write).  A call that
 * times out or fails in transport breaks the connection for good: a late
 * answer could otherwise be taken for the next call's.  The reader refuses
 * a response above max_message from its header, so a hostile server cannot
 * make us allocate more than that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipc_trace.h"
#include "stream_buf.h"
#include "tcp.thoth.h"
#include "tcp_internal.h"
#include "thoth/error.h"
#include "thoth/trace.h"

struct thoth_tcp_conn {
	int fd;
	int call_timeout_ms;
	int error;                      /* sticky transport error */
	uint64_t features;
	thoth_stream_reader_t reader;
	uint8_t *out;                   /* 8-aligned request buffer */
	size_t out_cap;
	thoth_client_t client;
	bool holding;                   /* a message from thoth_tcp_recv not yet released */
	uint64_t sent, received;        /* requests sent, responses received (message level) */
	/* While opening (thoth__tcp_open_*): the step, and what it needs. */
	enum { OPEN_DIAL, OPEN_SEND, OPEN_RECV, OPEN_DONE } state;
	thoth__tcp_dial_t dial;
	const thoth_interface_info_t *iface;
	uint64_t offered;               /* feature bits offered */
	size_t hello_len, hello_sent;   /* the hello, in out (the token in it: cleared once sent) */
	int send_err;                   /* the hello's send hit a closed peer: its answer may say why */
	char addr[THOTH_TCP_ADDR_MAX];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for EVENTS on FD until DEADLINE (-1: forever).  1 ready, or an error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return THOTH_E_TIMEDOUT;
			wait = (int)left;
		}
		struct pollfd pfd = { .fd = fd, .events = events };
		int n = poll(&pfd, 1, wait);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return THOTH_E_IO;
	}
}

static int send_all(thoth_tcp_conn_t *c, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int r = wait_fd(c->fd, POLLOUT, deadline);
			if (r < 0)
				return r;
			continue;
		}
		return n < 0 && (errno == EPIPE || errno == ECONNRESET) ? THOTH_E_PEER_GONE : THOTH_E_IO;
	}
	return 0;
}

/* The next whole message, read until DEADLINE. */
static int recv_msg(thoth_tcp_conn_t *c, int64_t deadline, const uint8_t **msg, size_t *len)
{
	for (;;) {
		int r = thoth_stream_next(&c->reader, msg, len);
		if (r)
			return r;
		r = wait_fd(c->fd, POLLIN, deadline);
		if (r < 0)
			return r;
		r = thoth_stream_fill(&c->reader, c->fd);
		if (r)
			return r;
	}
}

static int64_t call_deadline(const thoth_tcp_conn_t *c)
{
	return c->call_timeout_ms < 0 ? -1 : now_ms() + c->call_timeout_ms;
}

static int tcp_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	thoth_tcp_conn_t *c = ctx;
	int r = thoth__msgbuf_reserve(&c->out, &c->out_cap, len);
	*buf = c->out;
	return r;
}

static int broken(thoth_tcp_conn_t *c, int r)
{
	if (!c->error)
		c->error = r;
	return r;
}

static int tcp_send(void *ctx, uint8_t *msg, size_t len)
{
	thoth_tcp_conn_t *c = ctx;
	if (c->error)
		return c->error;
	thoth_trace_stamp_request(msg);
	THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, 0, msg, THOTH_TRACE_INLINE);
	int r = send_all(c, msg, len, call_deadline(c));
	return r ? broken(c, r) : 0;
}

static int tcp_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	thoth_tcp_conn_t *c = ctx;
	if (c->error)
		return c->error;
	uint32_t request_id = thoth_le32(req + 32);
	int64_t deadline = call_deadline(c);
	thoth_trace_stamp_request(req);
	THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, 0, req, THOTH_TRACE_INLINE);
	int r = send_all(c, req, len, deadline);
	if (r)
		return broken(c, r);
	for (;;) {
		const uint8_t *msg;
		size_t mlen;
		r = recv_msg(c, deadline, &msg, &mlen);
		if (r < 0)
			return broken(c, r);
		uint16_t flags = thoth_le16(msg + 6);
		if ((flags & THOTH_MSG_RESPONSE) && thoth_le32(msg + 32) == request_id) {
			resp->data = msg;
			resp->len = mlen;
			resp->handle = NULL;
			return 0;       /* consumed by tcp_release */
		}
		/* The server answers in order and pushes nothing: anything else
		 * is a protocol violation. */
		return broken(c, THOTH_E_PROTOCOL);
	}
}

static void tcp_release(void *ctx, thoth_msg_t *resp)
{
	thoth_tcp_conn_t *c = ctx;
	thoth_stream_consume(&c->reader);
	resp->data = NULL;
	resp->len = 0;
}

static const thoth_transport_ops_t tcp_transport = {
	.get_buffer = tcp_get_buffer,
	.call = tcp_call,
	.send = tcp_send,
	.release = tcp_release,
};

/* Encode the hello into c->out (the token copied into it; cleared once sent). */
static int hello_encode(thoth_tcp_conn_t *c, const uint8_t *token, size_t token_len, char *why,
			size_t why_len)
{
	const thoth_interface_info_t *ifc = c->iface;
	thoth_tcp_Tcp_hello_req_t req = {
		.token = { .ptr = token, .len = token_len },
		.package = thoth_str(ifc ? ifc->package : ""),
		.interface = thoth_str(ifc ? ifc->name : ""),
		.interface_id = ifc ? ifc->id : 0,
		.major = ifc ? ifc->major : 0,
		.minor = ifc ? ifc->minor : 0,
		.schema_hash = ifc ? ifc->schema_hash : 0,
		.features = c->offered,
	};
	thoth_msg_header_t meta = { .request_id = 1 };
	uint8_t *buf;
	int r = tcp_get_buffer(c, 2048, &buf);
	if (!r)
		r = thoth_tcp_Tcp_hello_req_encode_msg(buf, 2048, &meta, &req, &c->hello_len);
	if (r)
		thoth__tcp_why(why, why_len, "cannot encode the hello: %s", thoth_strerror(r));
	c->hello_sent = 0;
	return r;
}

/* The hello's answer, whole in MSG. */
static int hello_answer(thoth_tcp_conn_t *c, const uint8_t *msg, size_t mlen, char *why, size_t why_len)
{
	const thoth_interface_info_t *ifc = c->iface;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_tcp_Tcp_hello_resp_t resp;
	int r = thoth_tcp_Tcp_hello_resp_decode_msg(msg, mlen, &resp, &arena);
	if (r) {
		thoth__tcp_why(why, why_len, "%s answered the hello with nonsense: %s", c->addr, thoth_strerror(r));
		return THOTH_E_PROTOCOL;
	}
	if (resp.status) {
		/* The server's code where it is one a refusal can carry: never
		 * THOTH_E_AGAIN, which thoth__tcp_open_step returns while it
		 * waits (a pool would wait out its deadline for an answer that
		 * came, then say none did), never a positive number. */
		char reason[512];       /* a peer's control characters escaped (thoth__why_text) */
		thoth__why_text(reason, sizeof reason, resp.reason.ptr, resp.reason.len);
		if (resp.status < 0 && resp.status > -100 && resp.status != THOTH_E_AGAIN) {
			thoth__tcp_why(why, why_len, "%s refused us: %s", c->addr, reason);
			r = resp.status;
		} else {
			thoth__tcp_why(why, why_len, "%s refused us with status %d, which is no refusal code: %s",
				       c->addr, (int)resp.status, reason);
			r = THOTH_E_PROTOCOL;
		}
		thoth_stream_consume(&c->reader);       /* the reason lies in it */
		return r;
	}
	if ((ifc && resp.major != ifc->major) || (resp.features & ~c->offered)) {
		thoth__tcp_why(why, why_len, "%s answered version %u.%u with features %#llx to a client offering %#llx",
			       c->addr, resp.major, resp.minor, (unsigned long long)resp.features,
			       (unsigned long long)c->offered);
		return THOTH_E_PROTOCOL;
	}
	c->features = resp.features;
	thoth_stream_consume(&c->reader);
	return 0;
}

int thoth__tcp_open_step(thoth_tcp_conn_t *c, short *want, char *why, size_t why_len)
{
	int r;
	switch (c->state) {
	case OPEN_DIAL:
		r = thoth__tcp_dial_step(&c->dial, why, why_len);
		if (r == THOTH_E_AGAIN) {
			c->fd = c->dial.fd;     /* the fd to watch (may change with the address) */
			*want = thoth__tcp_dial_want(&c->dial);
			return r;
		}
		if (r) {
			c->fd = -1;
			return r;
		}
		c->fd = thoth__tcp_dial_take(&c->dial);
		c->state = OPEN_SEND;
		/* fall through */
	case OPEN_SEND:
		while (c->hello_sent < c->hello_len) {
			ssize_t n = send(c->fd, c->out + c->hello_sent, c->hello_len - c->hello_sent,
					 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				c->hello_sent += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				*want = POLLOUT;
				return THOTH_E_AGAIN;
			}
			if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
				/* A server that refused us may have answered and
				 * closed already: its reason is worth more. */
				c->send_err = THOTH_E_PEER_GONE;
				break;
			}
			memset(c->out, 0, c->hello_len);
			thoth__tcp_why(why, why_len, "sending the hello to %s: %s", c->addr, strerror(errno));
			return THOTH_E_IO;
		}
		memset(c->out, 0, c->hello_len);        /* the token does not linger in our buffer */
		c->state = OPEN_RECV;
		/* fall through */
	case OPEN_RECV:
		for (;;) {
			const uint8_t *msg;
			size_t mlen, size;
			/* The answer's size from its header: a hello answer is small,
			 * and a peer announcing more gets nothing buffered. */
			r = thoth_wire_msg_size(c->reader.buf, c->reader.len, THOTH_TCP_HELLO_MAX_BODY, &size);
			if (r < 0) {
				thoth__tcp_why(why, why_len, "%s answered the hello with nonsense: %s (%zu bytes: not "
					       "a hello answer's header)", c->addr, thoth_strerror(r), c->reader.len);
				return THOTH_E_PROTOCOL;
			}
			r = thoth_stream_next(&c->reader, &msg, &mlen);
			if (r < 0) {
				thoth__tcp_why(why, why_len, "%s answered the hello with nonsense: %s", c->addr,
					       thoth_strerror(r));
				return THOTH_E_PROTOCOL;
			}
			if (r == 1) {
				r = hello_answer(c, msg, mlen, why, why_len);
				if (r)
					return r;
				c->state = OPEN_DONE;
				thoth_client_init(&c->client, &tcp_transport, c, c->features);
				return 0;
			}
			size_t before = c->reader.len;
			r = thoth_stream_fill(&c->reader, c->fd);
			if (r) {
				thoth__tcp_why(why, why_len, "%s did not answer the hello: %s", c->addr,
					       r == THOTH_E_PEER_GONE
						       ? before ? "it closed the connection in the middle of its answer"
							        : "it closed the connection (at its connection limit?)"
						       : thoth_strerror(r));
				return c->send_err ? c->send_err : r == THOTH_E_PEER_GONE ? THOTH_E_BUSY : r;
			}
			if (c->reader.len == before) {
				*want = POLLIN;
				return THOTH_E_AGAIN;
			}
		}
	case OPEN_DONE:
		return 0;
	}
	return THOTH_E_INVAL;
}

int thoth__tcp_open_expired(const thoth_tcp_conn_t *c, int timeout_ms, char *why, size_t why_len)
{
	if (c->state == OPEN_DIAL && c->dial.lookup)
		thoth__tcp_why(why, why_len, "connect %s: cannot resolve host %s within %d ms", c->addr,
			       c->dial.a.host, timeout_ms);
	else if (c->state == OPEN_DIAL)
		thoth__tcp_why(why, why_len, "connect %s: no answer within %d ms", c->addr, timeout_ms);
	else if (c->state == OPEN_SEND)
		thoth__tcp_why(why, why_len, "%s did not take the hello within %d ms (%zu of %zu bytes sent)",
			       c->addr, timeout_ms, c->hello_sent, c->hello_len);
	else
		thoth__tcp_why(why, why_len, "%s did not answer the hello within %d ms (%zu bytes of an answer "
			       "came)", c->addr, timeout_ms, c->reader.len);
	return THOTH_E_TIMEDOUT;
}

int thoth__tcp_open_start(const char *addr, const thoth_tcp_config_t *cfg_in, bool caller_waits,
			  thoth_tcp_conn_t **out, short *want, char *why, size_t why_len)
{
	*out = NULL;
	if (why && why_len)
		why[0] = 0;
	thoth_tcp_config_t cfg = cfg_in ? *cfg_in : (thoth_tcp_config_t){ 0 };
	if (!cfg.call_timeout_ms)
		cfg.call_timeout_ms = 5000;
	if (!cfg.max_message)
		cfg.max_message = 16u << 20;
	if (cfg.max_message < THOTH_WIRE_HEADER_SIZE + 64 || cfg.max_message > THOTH_WIRE_MAX_BODY) {
		thoth__tcp_why(why, why_len, "max_message %u is out of range", cfg.max_message);
		return THOTH_E_INVAL;
	}
	thoth_tcp_addr_t a;
	int r = thoth_tcp_addr_parse(addr, false, &a, why, why_len);
	if (r)
		return r;
	uint8_t token[THOTH_TCP_TOKEN_MAX];
	size_t token_len;
	r = thoth__tcp_token_from(cfg.token, cfg.token_len, cfg.token_file, token, &token_len, why, why_len);
	if (r)
		return r;
	thoth_tcp_conn_t *c = calloc(1, sizeof *c);
	if (!c) {
		memset(token, 0, sizeof token);
		return THOTH_E_NOMEM;
	}
	c->fd = -1;
	c->dial.fd = -1;
	c->call_timeout_ms = cfg.call_timeout_ms;
	c->iface = cfg.iface;
	c->offered = cfg.features;
	snprintf(c->addr, sizeof c->addr, "%s", addr);  /* parsed: shorter than THOTH_TCP_ADDR_MAX */
	r = thoth_stream_reader_init(&c->reader, cfg.max_message - THOTH_WIRE_HEADER_SIZE);
	if (!r)
		r = hello_encode(c, token, token_len, why, why_len);
	memset(token, 0, sizeof token);
	if (!r) {
		c->state = OPEN_DIAL;
		r = thoth__tcp_dial_start(&c->dial, &a, caller_waits, why, why_len);
		if (r == 0 || r == THOTH_E_AGAIN)
			r = thoth__tcp_open_step(c, want, why, why_len);
	}
	if (r && r != THOTH_E_AGAIN) {
		thoth_tcp_close(c);
		return r;
	}
	*out = c;
	return r;
}

int thoth_tcp_connect_with(const char *addr, const thoth_tcp_config_t *cfg, int timeout_ms,
			   thoth_tcp_conn_t **out, char *why, size_t why_len)
{
	*out = NULL;
	if (timeout_ms <= 0)
		timeout_ms = 2000;
	int64_t deadline = now_ms() + timeout_ms;
	thoth_tcp_conn_t *c;
	short want = 0;
	int r = thoth__tcp_open_start(addr, cfg, true, &c, &want, why, why_len);
	while (r == THOTH_E_AGAIN) {
		r = wait_fd(c->fd, want, deadline);
		if (r == THOTH_E_TIMEDOUT)
			r = thoth__tcp_open_expired(c, timeout_ms, why, why_len);
		else if (r > 0)
			r = thoth__tcp_open_step(c, &want, why, why_len);
		else
			thoth__tcp_why(why, why_len, "waiting for %s: %s", addr, strerror(errno));
	}
	if (r) {
		thoth_tcp_close(c);
		return r;
	}
	*out = c;
	return 0;
}

/* ---- message level: many calls in flight (a pool) ------------------------------ */

int thoth_tcp_alloc(thoth_tcp_conn_t *c, size_t len, uint8_t **buf)
{
	if (c->error)
		return c->error;
	return tcp_get_buffer(c, len, buf);
}

int thoth_tcp_send(thoth_tcp_conn_t *c, uint8_t *buf, size_t len)
{
	if (c->error)
		return c->error;
	thoth_trace_stamp_request(buf);
	THOTH_TRACE_WIRE_MSG(msg_send, THOTH_TRACE_SEND, 0, buf, THOTH_TRACE_INLINE);
	/* A whole message or nothing usable: the rest of a partly written one
	 * is sent now, bounded by the call timeout (the socket's buffer takes
	 * a small request at once; only a server that stops reading makes us
	 * wait, and then the connection breaks). */
	int r = send_all(c, buf, len, call_deadline(c));
	if (r)
		return broken(c, r);
	if (len >= THOTH_WIRE_HEADER_SIZE && (thoth_le16(buf + 6) & THOTH_MSG_REQUEST) &&
	    !(thoth_le16(buf + 6) & THOTH_MSG_ONEWAY))
		c->sent++;
	return 0;
}

int thoth_tcp_recv(thoth_tcp_conn_t *c, thoth_msg_t *msg, int timeout_ms)
{
	if (c->holding) {
		thoth_stream_consume(&c->reader);
		c->holding = false;
	}
	if (c->error)
		return c->error;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	const uint8_t *m;
	size_t len;
	for (;;) {
		int r = thoth_stream_next(&c->reader, &m, &len);
		if (r < 0)
			return broken(c, r);
		if (r == 1)
			break;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int wait = deadline < 0 ? -1 : (int)(deadline - now_ms());
		int n = poll(&pfd, 1, wait > 0 || deadline < 0 ? wait : 0);
		if (n < 0 && errno != EINTR)
			return broken(c, THOTH_E_IO);
		if (n <= 0) {
			if (deadline >= 0 && now_ms() >= deadline)
				return timeout_ms ? THOTH_E_TIMEDOUT : THOTH_E_AGAIN;
			continue;
		}
		size_t before = c->reader.len;
		r = thoth_stream_fill(&c->reader, c->fd);
		if (r)
			return broken(c, r);
		if (c->reader.len == before && !timeout_ms)
			return THOTH_E_AGAIN;
	}
	if (!(thoth_le16(m + 6) & THOTH_MSG_RESPONSE)) {
		thoth_stream_consume(&c->reader);
		return broken(c, THOTH_E_PROTOCOL);     /* the server pushes nothing */
	}
	c->received++;
	c->holding = true;
	msg->data = m;
	msg->len = len;
	msg->handle = NULL;
	return 0;
}

void thoth_tcp_release(thoth_tcp_conn_t *c, thoth_msg_t *msg)
{
	if (c->holding) {
		thoth_stream_consume(&c->reader);
		c->holding = false;
	}
	msg->data = NULL;
	msg->len = 0;
}

int thoth_tcp_arm(thoth_tcp_conn_t *c)
{
	if (c->error)
		return c->error;
	size_t size;
	/* A whole message already read is not announced by the socket again. */
	if (!c->holding && thoth_wire_msg_size(c->reader.buf, c->reader.len, UINT32_MAX, &size) == 1 &&
	    c->reader.len >= size)
		return 1;
	return 0;
}

void thoth_tcp_counts(const thoth_tcp_conn_t *c, uint64_t *sent, uint64_t *received)
{
	*sent = c->sent;
	*received = c->received;
}

int thoth_tcp_connect(const char *addr, int timeout_ms, thoth_tcp_conn_t **out)
{
	return thoth_tcp_connect_with(addr, NULL, timeout_ms, out, NULL, 0);
}

thoth_client_t *thoth_tcp_client(thoth_tcp_conn_t *conn)
{
	return &conn->client;
}

uint64_t thoth_tcp_features(const thoth_tcp_conn_t *conn)
{
	return conn->features;
}

int thoth_tcp_fd(const thoth_tcp_conn_t *conn)
{
	return conn->fd;
}

int thoth_tcp_error(const thoth_tcp_conn_t *conn)
{
	return conn->error;
}

void thoth_tcp_close(thoth_tcp_conn_t *conn)
{
	if (!conn)
		return;
	if (conn->state == OPEN_DIAL)
		thoth__tcp_dial_free(&conn->dial);      /* conn->fd is the dial's then */
	else if (conn->fd >= 0)
		close(conn->fd);
	/* An unsent hello holds the token (once sent it was cleared; the
	 * buffer, up to 16 MiB of calls since, is not cleared on every close). */
	if (conn->out && conn->state < OPEN_RECV)
		memset(conn->out, 0, conn->hello_len < conn->out_cap ? conn->hello_len : conn->out_cap);
	thoth_stream_reader_free(&conn->reader);
	free(conn->out);
	free(conn);
}
