/*
 * thoth/caller.h - who sent the request being dispatched on this thread.
 *
 * For a handler, or a shim in front of a channel server's invoke function
 * (thoth_chan_server_config_t in thoth/channel.h): a governed server
 * (kernel/pm/governed.h, SCHED-1) learns its clients' request chains and
 * the queue behind each request from it.
 */
#ifndef THOTH_CALLER_H
#define THOTH_CALLER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_chan_caller {
	uint64_t channel;       /* the channel's id in this process: 1.., never reused */
	int32_t pid;            /* the client process (SO_PEERCRED at its handshake) */
	uint32_t uid;
	/* Requests known to wait behind this one now (a lower bound): one
	 * per open channel of this server whose ring holds a request, this
	 * channel's next included (a look at each ring's head: O(channels),
	 * paid only by a caller of this function). */
	uint32_t waiting;
} thoth_chan_caller_t;

/* 0 and *OUT while a channel server dispatches a request on the calling
 * thread; THOTH_E_NOT_FOUND (OUT zeroed) anywhere else. */
int thoth_chan_server_caller(thoth_chan_caller_t *out);

#ifdef __cplusplus
}
#endif
#endif
