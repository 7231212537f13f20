/*
 * stream.c - thoth messages over stream sockets (include/thoth/stream.h).
 *
 * The reader keeps the front message at offset 0 of an 8-aligned buffer,
 * so generated decoders can read it in place; consuming a message moves
 * the bytes after it to the front (control-plane messages are small).
 *
 * Tracing (OBS-1): every whole message handed out by thoth_stream_next is a
 * msg_recv event, every message written by the blocking client or by
 * thoth_stream_write_all a msg_send event (category IPC).  A request sent
 * while IPC tracing is on and whose caller set no trace id gets a fresh one
 * (thoth_trace_new_id) so that the exporters can link its send, its
 * receipt, the response and its receipt across processes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "thoth/stream.h"
#include "fdpass.h"
#include "ipc_trace.h"
#include "stream_buf.h"
#include "thoth/trace.h"

enum { READ_CHUNK = 4096 };

/* Socket transport: the body is copied through the socket (INLINE). */
#define TRACE_MESSAGE(name, dir, svc, msg) THOTH_TRACE_WIRE_MSG(name, dir, svc, msg, THOTH_TRACE_INLINE)

int thoth_stream_reader_init(thoth_stream_reader_t *r, uint32_t max_body)
{
	memset(r, 0, sizeof *r);
	r->max_body = max_body;
	void *p;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, READ_CHUNK))
		return THOTH_E_NOMEM;
	r->buf = p;
	r->cap = READ_CHUNK;
	return 0;
}

void thoth_stream_reader_free(thoth_stream_reader_t *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

static int reserve(thoth_stream_reader_t *r, size_t need)
{
	if (need <= r->cap)
		return 0;
	size_t cap = r->cap;
	while (cap < need)
		cap *= 2;
	void *p;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, cap))
		return THOTH_E_NOMEM;
	memcpy(p, r->buf, r->len);
	free(r->buf);
	r->buf = p;
	r->cap = cap;
	return 0;
}

/* Bytes the front message needs in total, once its header is buffered. */
static int front_size(const thoth_stream_reader_t *r, size_t *size)
{
	int n = thoth_wire_msg_size(r->buf, r->len, r->max_body, size);
	if (n == 1 && r->body_limit &&
	    *size - THOTH_WIRE_HEADER_SIZE > r->body_limit(r->limit_arg, r->buf))
		return THOTH_E_TOO_LARGE;
	return n;
}

/* Room for the next read: a chunk, or the rest of a large message in one go. */
static int reserve_for_read(thoth_stream_reader_t *r)
{
	size_t want = r->len + READ_CHUNK;
	size_t size;
	if (front_size(r, &size) == 1 && size > r->len)
		want = size;
	return reserve(r, want);
}

/* What a read that returned N <= 0 means (errno set when N < 0). */
static int read_failure(ssize_t n)
{
	if (n == 0)
		return THOTH_E_PEER_GONE;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == ECONNRESET || errno == EPIPE)
		return THOTH_E_PEER_GONE;
	return THOTH_E_IO;
}

int thoth_stream_fill(thoth_stream_reader_t *r, int fd)
{
	int err = reserve_for_read(r);
	if (err)
		return err;
	ssize_t n = recv(fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
	if (n > 0) {
		r->len += (size_t)n;
		return 0;
	}
	return read_failure(n);
}

int thoth_stream_fill_fds(thoth_stream_reader_t *r, int fd, int *fds, size_t max_fds,
			  size_t *n_fds)
{
	*n_fds = 0;
	int err = reserve_for_read(r);
	if (err)
		return err;
	ssize_t n = thoth_fdpass_recv(fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT, fds,
				      max_fds, n_fds);
	if (n > 0) {
		r->len += (size_t)n;
		return 0;
	}
	return read_failure(n);
}

int thoth_stream_feed(thoth_stream_reader_t *r, const void *bytes, size_t len)
{
	if (len > SIZE_MAX - r->len)
		return THOTH_E_TOO_LARGE;
	int err = reserve(r, r->len + len);
	if (err)
		return err;
	if (len)
		memcpy(r->buf + r->len, bytes, len);
	r->len += len;
	return 0;
}

int thoth_stream_next(thoth_stream_reader_t *r, const uint8_t **msg, size_t *len)
{
	size_t size;
	int r0 = front_size(r, &size);
	if (r0 <= 0)
		return r0;
	if (r->len < size)
		return 0;
	thoth_msg_header_t h = { 0 };
	int err = thoth_wire_header_decode(r->buf, size, &h);
	if (err)
		return err;
	if (!r->consumed)               /* handed out for the first time */
		TRACE_MESSAGE(msg_recv, THOTH_TRACE_RECV, r->service_id, r->buf);
	r->consumed = size;
	*msg = r->buf;
	*len = size;
	return 1;
}

void thoth_stream_consume(thoth_stream_reader_t *r)
{
	if (!r->consumed)
		return;
	memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
	r->len -= r->consumed;
	r->consumed = 0;
}

void thoth_stream_reader_trim(thoth_stream_reader_t *r)
{
	if (r->len || r->cap <= READ_CHUNK)
		return;
	void *p;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, READ_CHUNK))
		return;                 /* keep the large one: still correct */
	free(r->buf);
	r->buf = p;
	r->cap = READ_CHUNK;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				poll(&pfd, 1, -1);
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET)
				return THOTH_E_PEER_GONE;
			return THOTH_E_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* True when BUF starts with a whole wire message (what callers pass; a
 * caller writing a message in pieces gets no trace event). */
static bool is_whole_message(const uint8_t *buf, size_t len)
{
	size_t size;
	return thoth_wire_msg_size(buf, len, UINT32_MAX, &size) == 1 && size == len;
}

int thoth_stream_write_msg(int fd, const void *msg, size_t len, uint32_t service_id)
{
	if (is_whole_message(msg, len))
		TRACE_MESSAGE(msg_send, THOTH_TRACE_SEND, service_id, (const uint8_t *)msg);
	return write_all(fd, msg, len);
}

int thoth_stream_write_all(int fd, const void *buf, size_t len)
{
	return thoth_stream_write_msg(fd, buf, len, 0);
}

int thoth_stream_send_fd(int sock, const void *msg, size_t len, int fd, uint32_t service_id)
{
	if (len == 0 || fd < 0)
		return THOTH_E_INVAL;
	if (is_whole_message(msg, len))
		TRACE_MESSAGE(msg_send, THOTH_TRACE_SEND, service_id, (const uint8_t *)msg);
	ssize_t n = thoth_fdpass_send(sock, msg, len, &fd, 1);
	if (n < 0) {
		if (errno == EPIPE || errno == ECONNRESET)
			return THOTH_E_PEER_GONE;
		return errno == EAGAIN || errno == EWOULDBLOCK ? THOTH_E_BUSY : THOTH_E_IO;
	}
	/* The fd went with the first byte; the rest is plain data. */
	return write_all(sock, (const uint8_t *)msg + n, len - (size_t)n);
}

/* ---- blocking client ------------------------------------------------------ */

int thoth_sock_client_init(thoth_sock_client_t *c, int fd, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	int r = thoth_stream_reader_init(&c->reader, THOTH_WIRE_MAX_BODY);
	/* The process at the other end serves our calls: its pid is the
	 * service_id of our trace events (0 when the socket cannot say). */
	struct ucred cred;
	socklen_t cl = sizeof cred;
	if (!r && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		c->reader.service_id = (uint32_t)cred.pid;
	return r;
}

int thoth_sock_client_connect(thoth_sock_client_t *c, const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memset(c, 0, sizeof *c);
	c->fd = -1;
	if (strlen(path) >= sizeof sa.sun_path)
		return THOTH_E_INVAL;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return THOTH_E_IO;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED)
			return THOTH_E_NOT_RUNNING;
		if (e == EACCES || e == EPERM)
			return THOTH_E_PERM;
		return THOTH_E_IO;
	}
	int r = thoth_sock_client_init(c, fd, timeout_ms);
	if (r) {
		close(fd);
		c->fd = -1;
	}
	return r;
}

void thoth_sock_client_close(thoth_sock_client_t *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	thoth_stream_reader_free(&c->reader);
	free(c->out);
	c->out = NULL;
	c->out_cap = 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until the reader holds a complete message or the deadline passes.
 * The socket is always looked at before giving up, also once the deadline
 * has passed (a timeout of 0, as from a loop's fd-readable callback): what
 * it already holds is read, and only an empty socket times out.
 */
static int wait_message(thoth_sock_client_t *c, int64_t deadline, const uint8_t **msg, size_t *len)
{
	for (;;) {
		int r = thoth_stream_next(&c->reader, msg, len);
		if (r)
			return r;
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			wait = left > 0 ? (int)left : 0;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			return THOTH_E_IO;
		if (n > 0) {
			r = thoth_stream_fill(&c->reader, c->fd);
			if (r)
				return r;
		} else if (n == 0 && wait == 0) {
			return THOTH_E_TIMEDOUT;        /* nothing more to read */
		}
	}
}

static int sock_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	thoth_sock_client_t *c = ctx;
	int r = thoth__msgbuf_reserve(&c->out, &c->out_cap, len);
	*buf = c->out;
	return r;
}

static int sock_send(void *ctx, uint8_t *msg, size_t len)
{
	thoth_sock_client_t *c = ctx;
	thoth_trace_stamp_request(msg);
	return thoth_stream_write_msg(c->fd, msg, len, c->reader.service_id);
}

static int sock_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	thoth_sock_client_t *c = ctx;
	uint32_t request_id = thoth_le32(req + 32);
	thoth_trace_stamp_request(req);
	int r = thoth_stream_write_msg(c->fd, req, len, c->reader.service_id);
	if (r)
		return r;
	int64_t deadline = c->timeout_ms < 0 ? -1 : mono_ms() + c->timeout_ms;
	for (;;) {
		const uint8_t *msg;
		size_t mlen;
		r = wait_message(c, deadline, &msg, &mlen);
		if (r < 0)
			return r;
		uint16_t flags = thoth_le16(msg + 6);
		if ((flags & THOTH_MSG_RESPONSE) && thoth_le32(msg + 32) == request_id) {
			resp->data = msg;
			resp->len = mlen;
			resp->handle = NULL;
			return 0;       /* consumed by sock_release */
		}
		if ((flags & THOTH_MSG_REQUEST) && c->on_event)
			c->on_event(c->event_arg, msg, mlen);
		/* anything else: a late response to a call that timed out
		 * (counted: a peer that answers only other calls is told
		 * from one that is silent, thothctl's lying_thothd test) */
		if (flags & THOTH_MSG_RESPONSE)
			c->stray_answers++;
		thoth_stream_consume(&c->reader);
	}
}

static void sock_release(void *ctx, thoth_msg_t *resp)
{
	thoth_sock_client_t *c = ctx;
	thoth_stream_consume(&c->reader);
	resp->data = NULL;
	resp->len = 0;
}

int thoth_sock_client_poll_event(thoth_sock_client_t *c, int timeout_ms)
{
	const uint8_t *msg;
	size_t len;
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	int r = wait_message(c, deadline, &msg, &len);
	if (r == THOTH_E_TIMEDOUT)
		return 0;
	if (r < 0)
		return r;
	if (c->on_event)
		c->on_event(c->event_arg, msg, len);
	thoth_stream_consume(&c->reader);
	return 1;
}

const thoth_transport_ops_t thoth_sock_transport = {
	.get_buffer = sock_get_buffer,
	.call = sock_call,
	.send = sock_send,
	.release = sock_release,
};
