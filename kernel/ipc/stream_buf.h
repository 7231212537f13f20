/*
 * stream_buf.h - buffers the stream transports share (internal to libthoth).
 *
 * thoth_outq_t: the output queue of a non-blocking stream socket.  A server
 * never blocks on one client: what the socket does not take now waits here,
 * in order, until the socket is writable again.  thothd's control clients
 * and the TCP server's connections use it; each bounds it with its own
 * limit and decides what a failure means for the connection.
 *
 * thoth__msgbuf_reserve: the 8-aligned buffer a blocking client builds each
 * outgoing message in (the Unix-socket and the TCP client transports).
 */
#ifndef THOTH_STREAM_BUF_H
#define THOTH_STREAM_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct thoth_outq {
	uint8_t *buf;                   /* buf[off .. len) not sent yet */
	size_t off, len, cap;
} thoth_outq_t;

/* Bytes queued and not sent yet. */
static inline size_t thoth__outq_pending(const thoth_outq_t *q)
{
	return q->len - q->off;
}

/*
 * Send LEN bytes of BUF after what is queued, never blocking: what the
 * socket FD takes now goes out at once (without a copy when nothing is
 * queued), the rest is queued.  0; THOTH_E_NOMEM; or THOTH_E_IO with errno
 * from the failed send (the connection is lost).
 */
int thoth__outq_send(thoth_outq_t *q, int fd, const void *buf, size_t len);

/* Send what is queued, as far as FD takes it now.  0 (all sent, or the
 * socket is full), or THOTH_E_IO with errno from the failed send. */
int thoth__outq_flush(thoth_outq_t *q, int fd);

void thoth__outq_free(thoth_outq_t *q);

/* Make *BUF (8-aligned, *CAP bytes) hold at least LEN bytes; its contents
 * are not kept.  0 or THOTH_E_NOMEM (the old buffer is kept then). */
int thoth__msgbuf_reserve(uint8_t **buf, size_t *cap, size_t len);

#endif
