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

/* Receive into BUF (up to CAP), keeping the first fds that arrive in FDS
 * from index *NFDS on (up to 2 in all; extra ones are closed).  Returns
 * bytes read, 0 at EOF, -1 with errno. */
ssize_t thoth__chan_recv_fds(int sock, uint8_t *buf, size_t cap, int *fds, int *nfds, int flags);

/* Length of the whole message whose first bytes are in BUF (*NEED, 0 if
 * more bytes are needed to know); a negative error for an impossible
 * header or one longer than HANDSHAKE_MAX. */
int thoth__chan_msg_length(const uint8_t *buf, size_t have, size_t *need);

void thoth__chan_limits_to_wire(const thoth_chan_limits_t *l, thoth_channel_Limits_t *w);
void thoth__chan_limits_from_wire(const thoth_channel_Limits_t *w, thoth_chan_limits_t *l);

#endif
