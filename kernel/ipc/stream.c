/*
 * stream.c - thoth messages over stream sockets (include/thoth/stream.h).
 *
 * The reader keeps the front message at offset 0 of an 8-aligned buffer,
 * so generated decoders can read it in place; consuming a message moves
 * the bytes after it to the front (control-plane messages are small).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "thoth/stream.h"

enum { READ_CHUNK = 4096 };

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
	if (r->len < THOTH_WIRE_HEADER_SIZE)
		return 0;
	const uint8_t *b = r->buf;
	if (thoth_le32(b) != THOTH_WIRE_MAGIC)
		return THOTH_E_BAD_MAGIC;
	uint32_t body = thoth_le32(b + 36);
	if (body > r->max_body)
		return THOTH_E_TOO_LARGE;
	*size = THOTH_WIRE_HEADER_SIZE + (size_t)body;
	return 1;
}

int thoth_stream_fill(thoth_stream_reader_t *r, int fd)
{
	size_t want = r->len + READ_CHUNK;
	size_t size;
	if (front_size(r, &size) == 1 && size > r->len)
		want = size;            /* read the rest of a large message in one go */
	int err = reserve(r, want);
	if (err)
		return err;
	ssize_t n = recv(fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
	if (n > 0) {
		r->len += (size_t)n;
		return 0;
	}
	if (n == 0)
		return THOTH_E_PEER_GONE;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == ECONNRESET || errno == EPIPE)
		return THOTH_E_PEER_GONE;
	return THOTH_E_IO;
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

int thoth_stream_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
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

/* ---- blocking client ------------------------------------------------------ */

int thoth_sock_client_init(thoth_sock_client_t *c, int fd, int timeout_ms)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->timeout_ms = timeout_ms;
	return thoth_stream_reader_init(&c->reader, THOTH_WIRE_MAX_BODY);
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

/* Wait until the reader holds a complete message or the deadline passes. */
static int wait_message(thoth_sock_client_t *c, int64_t deadline, const uint8_t **msg, size_t *len)
{
	for (;;) {
		int r = thoth_stream_next(&c->reader, msg, len);
		if (r)
			return r;
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			if (left <= 0)
				return THOTH_E_TIMEDOUT;
			wait = (int)left;
		}
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int n = poll(&pfd, 1, wait);
		if (n < 0 && errno != EINTR)
			return THOTH_E_IO;
		if (n > 0) {
			r = thoth_stream_fill(&c->reader, c->fd);
			if (r)
				return r;
		}
	}
}

static int sock_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	thoth_sock_client_t *c = ctx;
	if (len > c->out_cap) {
		void *p;
		if (posix_memalign(&p, THOTH_WIRE_ALIGN, len))
			return THOTH_E_NOMEM;
		free(c->out);
		c->out = p;
		c->out_cap = len;
	}
	*buf = c->out;
	return 0;
}

static int sock_send(void *ctx, uint8_t *msg, size_t len)
{
	thoth_sock_client_t *c = ctx;
	return thoth_stream_write_all(c->fd, msg, len);
}

static int sock_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	thoth_sock_client_t *c = ctx;
	uint32_t request_id = thoth_le32(req + 32);
	int r = thoth_stream_write_all(c->fd, req, len);
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
		/* anything else: a late response to a call that timed out */
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
