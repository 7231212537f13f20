/*
 * chan_handshake.c - the pieces of a channel's opening both sides share
 * (chan_handshake.h).
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "chan_handshake.h"
#include "fdpass.h"

ssize_t thoth__chan_recv_fds(int sock, uint8_t *buf, size_t cap, thoth__chan_fds_t *fds, int flags)
{
	size_t n = (size_t)fds->kept;
	ssize_t r = thoth_fdpass_recv_counted(sock, buf, cap, flags, fds->fd, 2, &n, &fds->arrived, &fds->cut);
	fds->kept = (int)n;
	return r;
}

const char *thoth__chan_fds_count(const thoth__chan_fds_t *fds, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s%zu", fds->cut ? "more than " : "", fds->arrived);
	return buf;
}

int thoth__chan_msg_length(const uint8_t *buf, size_t have, size_t *need)
{
	*need = 0;
	int r = thoth_wire_msg_size(buf, have, HANDSHAKE_MAX - THOTH_WIRE_HEADER_SIZE, need);
	return r < 0 ? r : 0;
}

void thoth__chan_limits_to_wire(const thoth_chan_limits_t *l, thoth_channel_Limits_t *w)
{
	w->slots = l->slots;
	w->pool_buf_size = l->pool_buf_size;
	w->pool_bufs = l->pool_bufs;
}

void thoth__chan_limits_from_wire(const thoth_channel_Limits_t *w, thoth_chan_limits_t *l)
{
	l->slots = w->slots;
	l->pool_buf_size = w->pool_buf_size;
	l->pool_bufs = w->pool_bufs;
}
