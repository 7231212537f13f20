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
	 * per channel looked at whose ring holds a request, this channel's
	 * next included; the channels looked at are those of
	 * thoth_chan_server_waiting(), at most 16 (a look at each ring's
	 * head, paid only by a caller of this function). */
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

/* The channel server dispatching a request on the calling thread (NULL
 * outside a dispatch): the handle thoth_chan_server_waiting() takes, for a
 * shim whose other thread looks at the rings while the handler runs
 * (kernel/pm/governed.c's watcher).  Inside a handler that dispatches a
 * TCP session's request in turn (thoth_tcp_*), NULL there, as are
 * thoth_chan_server_caller() and thoth_chan_server_sent(): that request is
 * not the channel's. */
struct thoth_chan_server *thoth_chan_server_dispatcher(void);

/* The requests waiting in S's rings now, read only: the published, not yet
 * taken requests (by their slots' tags; the one being dispatched is taken
 * already) of at most 16 channels, at most MAX, in no promised order.  The
 * channels looked at (all of them up to 16): the one being dispatched,
 * those queued for their turn, the 8 most recently served, then the
 * others round-robin, each look going on where the last stopped
 * (docs/PM.md "Seeing the rings": a request on an idle channel is seen
 * within about ceil(channels / 8) looks).  For each request, SENT_NS[i]
 * (may be NULL) is its send stamp read around NOW_NS as
 * thoth_chan_server_sent() reads it, or 0 where it carries none.  Returns
 * how many it saw (<= MAX); *VISITED (may be NULL): how many channels it
 * looked at.  O(16 + requests seen), whatever the number of channels.
 * Call it on S's loop thread during a dispatch, or from another thread
 * while S's loop thread is held inside one of S's dispatches (the channel
 * list and the rings' consumer indices are that thread's; governed.c
 * holds it on a mutex at the handler's end), never while a handler runs
 * S's loop itself.  Every word read is a client's claim: a bogus head is
 * never read, a forged tag counts as one request at most per ring slot, a
 * stamp is any time (the caller clamps it). */
uint32_t thoth_chan_server_waiting(struct thoth_chan_server *s, uint64_t now_ns, uint64_t *sent_ns,
				   uint32_t max, uint32_t *visited);

#ifdef __cplusplus
}
#endif
#endif
