/*
 * chan_handshake.h - what both sides of a channel's opening share: the
 * Channel.open exchange (idl/channel.tidl) over the service's Unix socket,
 * framed as one thoth message each way with descriptors attached.
 * Internal to kernel/ipc (thoth__ names: never part of the API).
 * chan_client.c opens channels, chan_server.c answers; docs/IPC.md,
 * "Opening: the handshake".
 */
#ifndef THOTH_CHAN_HANDSHAKE_H
#define THOTH_CHAN_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "channel.thoth.h"
#include "thoth/channel.h"
#include "why.h"

#define HANDSHAKE_MAX 4096u     /* an open request or reply is far smaller */

/* Write a reason into WHY (may be NULL or 0 bytes): the shared formatter. */
#define thoth__chan_why thoth__why

/* The descriptors a handshake message brought: the first 2 kept (the rest
 * closed on arrival), with the true count of what arrived for the
 * refusal's words. */
typedef struct thoth__chan_fds {
	int fd[2];
	int kept;                       /* in fd[] */
	size_t arrived;                 /* kept or closed */
	int cut;                        /* more than the control buffer held (MSG_CTRUNC) */
} thoth__chan_fds_t;

/* Receive into BUF (up to CAP), keeping the first fds that arrive in
 * FDS->fd (up to 2 in all; extra ones are closed) and counting them all.
 * Returns bytes read, 0 at EOF, -1 with errno. */
ssize_t thoth__chan_recv_fds(int sock, uint8_t *buf, size_t cap, thoth__chan_fds_t *fds, int flags);

/* How many descriptors FDS says arrived, in words: "3", or "more than 4"
 * when the kernel cut some off. */
const char *thoth__chan_fds_count(const thoth__chan_fds_t *fds, char *buf, size_t cap);

/* Length of the whole message whose first bytes are in BUF (*NEED, 0 if
 * more bytes are needed to know); a negative error for an impossible
 * header or one longer than HANDSHAKE_MAX. */
int thoth__chan_msg_length(const uint8_t *buf, size_t have, size_t *need);

/*
 * A channel opened without waiting (an instance pool opens on its loop):
 * thoth__chan_open_start connects (non-blocking: a service with a full
 * backlog is THOTH_E_BUSY) and sends the open request, returning
 * THOTH_E_AGAIN; thoth__chan_open_step, whenever thoth__chan_open_fd is
 * readable (or whenever: it never waits), reads the reply as it arrives and
 * returns THOTH_E_AGAIN, 0 with *OUT the open channel (as thoth_chan_connect
 * gives it), or an error with WHY naming the socket.  The caller owns the
 * deadline: thoth__chan_open_expired gives its reason.  thoth__chan_open_free
 * in every case (it keeps nothing that was handed out).
 * thoth_chan_connect is these steps with poll(2) between them.
 */
typedef struct thoth__chan_opening thoth__chan_opening_t;
int thoth__chan_open_start(const char *path, const thoth_chan_config_t *cfg, thoth__chan_opening_t **out,
			   char *why, size_t why_len);
int thoth__chan_open_step(thoth__chan_opening_t *op, thoth_chan_t **out, char *why, size_t why_len);
int thoth__chan_open_fd(const thoth__chan_opening_t *op);
int thoth__chan_open_expired(const thoth__chan_opening_t *op, int timeout_ms, char *why, size_t why_len);
void thoth__chan_open_free(thoth__chan_opening_t *op);

void thoth__chan_limits_to_wire(const thoth_chan_limits_t *l, thoth_channel_Limits_t *w);
void thoth__chan_limits_from_wire(const thoth_channel_Limits_t *w, thoth_chan_limits_t *l);

#endif
