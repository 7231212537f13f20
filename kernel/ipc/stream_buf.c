/*
 * stream_buf.c - buffers the stream transports share (stream_buf.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stream_buf.h"
#include "thoth/error.h"
#include "thoth/wire.h"

enum { OUTQ_MIN = 4096 };

/* One non-blocking send: bytes taken (0 when the socket is full), or -1
 * with errno set when the connection is lost. */
static ssize_t send_now(int fd, const uint8_t *p, size_t len)
{
	for (;;) {
		ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			return n;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == 0)
			errno = EPIPE;          /* a stream socket that takes nothing */
		return -1;
	}
}

int thoth__outq_flush(thoth_outq_t *q, int fd)
{
	while (thoth__outq_pending(q)) {
		ssize_t n = send_now(fd, q->buf + q->off, thoth__outq_pending(q));
		if (n < 0)
			return THOTH_E_IO;
		if (n == 0)
			return 0;               /* full: the rest waits for POLLOUT */
		q->off += (size_t)n;
	}
	q->off = q->len = 0;
	return 0;
}

int thoth__outq_send(thoth_outq_t *q, int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	if (!thoth__outq_pending(q)) {
		/* The common case: the socket takes it all now, no copy. */
		q->off = q->len = 0;
		ssize_t n = send_now(fd, p, len);
		if (n < 0)
			return THOTH_E_IO;
		p += n;
		len -= (size_t)n;
		if (!len)
			return 0;
	}
	if (q->off && q->len + len > q->cap) {
		/* Compact first: the sent front is room too. */
		memmove(q->buf, q->buf + q->off, thoth__outq_pending(q));
		q->len -= q->off;
		q->off = 0;
	}
	if (q->len + len > q->cap) {
		size_t cap = q->cap ? q->cap : OUTQ_MIN;
		while (cap < q->len + len)
			cap *= 2;
		uint8_t *nb = realloc(q->buf, cap);
		if (!nb)
			return THOTH_E_NOMEM;
		q->buf = nb;
		q->cap = cap;
	}
	memcpy(q->buf + q->len, p, len);
	q->len += len;
	return 0;
}

void thoth__outq_free(thoth_outq_t *q)
{
	free(q->buf);
	memset(q, 0, sizeof *q);
}

int thoth__msgbuf_reserve(uint8_t **buf, size_t *cap, size_t len)
{
	if (len <= *cap)
		return 0;
	size_t want = *cap ? *cap : len;
	while (want < len)
		want *= 2;
	void *p;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, want))
		return THOTH_E_NOMEM;
	free(*buf);
	*buf = p;
	*cap = want;
	return 0;
}
