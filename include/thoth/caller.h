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

/* When the client published the request being dispatched on the calling
 * thread, as its send stamp says (CLOCK_MONOTONIC ns): 0 and *SENT_NS, the
 * stamp's 32 bits read around NOW_NS (a CLOCK_MONOTONIC reading the caller
 * took: the answer lies within 2^31 ns, about 2.1 s, of it, before or
 * after).  THOTH_E_NOT_FOUND (*SENT_NS untouched) outside a dispatch, or
 * when the request carries no such stamp (the server did not ask:
 * thoth_chan_server_config_t.send_stamps; or the client predates stamps).
 * The stamp is the client's word: any value may come, one from the future
 * included, and the caller must treat it as a claim (governed.h clamps it
 * to [now - qos, now]). */
int thoth_chan_server_sent(uint64_t now_ns, uint64_t *sent_ns);

#ifdef __cplusplus
}
#endif
#endif
