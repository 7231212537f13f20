/*
 * control_link.h - a control connection to thothd that lives on a
 * thoth_loop and never blocks it (internal: thoth__ prefix).
 *
 * Shared by a registering service (service.c) and a resolving client
 * (resolver.c).  What it promises:
 *  - connects non-blocking, and only after the runtime-dir and peer-uid
 *    checks of unixsock.h passed; then hands thothd the process's trace
 *    buffer (TraceControl.attach), then calls ops->up so the owner sends
 *    its requests;
 *  - every send is non-blocking: a thothd that does not read (hung,
 *    stopped) costs a dropped connection and a retry, never a stall;
 *  - while connected it arms no timer at all (liveness is the connection:
 *    thothd's death is the socket hanging up), unless the owner asked for
 *    an answer deadline (thoth__link_deadline) while a request is pending;
 *  - while disconnected it watches the runtime dir (inotify) for
 *    thothd.sock to appear and keeps a backoff timer as a safety net
 *    (50 ms doubling to 2 s; 30 s when the inotify watch is in place),
 *    so a returning thothd is found within milliseconds without polling;
 *  - it owns at most three descriptors (the socket, the inotify fd while
 *    disconnected, the timer is the loop's): nothing accumulates across
 *    thothd restarts.
 */
#ifndef THOTH_IPC_CONTROL_LINK_H
#define THOTH_IPC_CONTROL_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"
#include "thoth/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Internal to libthoth: never exported from libthoth.so (the version
 * script exports thoth_*, which these names would match). */
#ifndef THOTH__HIDDEN
#define THOTH__HIDDEN __attribute__((visibility("hidden")))
#endif

typedef struct thoth__link thoth__link_t;

typedef struct thoth__link_ops {
	/* Connected and checked: send requests now (thoth__link_send). */
	void (*up)(void *arg);
	/* A whole message from thothd (valid during the call). */
	void (*message)(void *arg, const uint8_t *msg, size_t len);
	/* The connection went away, or an attempt failed for a new reason;
	 * the link retries by itself. */
	void (*down)(void *arg, int err, const char *why);
} thoth__link_ops_t;

/* Nothing happens until thoth__link_start.  RUNTIME_DIR NULL: the default
 * rule (thoth_runtime_dir). */
THOTH__HIDDEN
int thoth__link_new(thoth_loop_t *loop, const char *runtime_dir, const thoth__link_ops_t *ops,
		    void *arg, thoth__link_t **out);
/* Try to connect now (callbacks may run before it returns). */
THOTH__HIDDEN
void thoth__link_start(thoth__link_t *link);
THOTH__HIDDEN
void thoth__link_free(thoth__link_t *link);

THOTH__HIDDEN
bool thoth__link_is_up(const thoth__link_t *link);

/* Encode REQ as method M's request with REQUEST_ID and send it without
 * blocking.  0, or an error after which the caller should drop the link. */
THOTH__HIDDEN
int thoth__link_send(thoth__link_t *link, const thoth_method_info_t *m, const void *req,
		     uint32_t request_id);

/* Close the connection and stop: no retry until thoth__link_start.  Safe
 * from the link's own callbacks (ops->down does not run). */
THOTH__HIDDEN
void thoth__link_stop(thoth__link_t *link);

/* Close the connection and retry later (ops->down runs with ERR/WHY). */
THOTH__HIDDEN
void thoth__link_drop(thoth__link_t *link, int err, const char *why);

/* Drop the connection if no thoth__link_deadline(link, 0) comes within
 * MS milliseconds (an unanswered request).  0 disarms. */
THOTH__HIDDEN
int thoth__link_deadline(thoth__link_t *link, uint32_t ms);

/* Decode an error response's code and message; 1 if MSG is one, 0 if it
 * is a normal response, <0 if it is malformed. */
THOTH__HIDDEN
int thoth__link_error_of(const uint8_t *msg, size_t len, uint32_t *code, char *why, size_t why_len);

/* Header fields of a received message (0 when too short). */
THOTH__HIDDEN
uint32_t thoth__link_request_id(const uint8_t *msg, size_t len);
THOTH__HIDDEN
uint16_t thoth__link_flags(const uint8_t *msg, size_t len);

/* Counted handovers of our trace buffer to thothd (service.c): when the
 * last connection that carried one closes, the process's own tracing mask
 * is put back (nobody collects any more). */
THOTH__HIDDEN
void thoth__trace_collector_attached(void);
THOTH__HIDDEN
void thoth__trace_collector_detached(void);
/* Send our trace buffer's memfd to thothd on SOCK (service.c); *SENT says
 * whether it went (then it counts as attached). */
THOTH__HIDDEN
int thoth__trace_buffer_hand_over(int sock, uint32_t service_id, bool *sent);

/* The window page (SCHED-3, kernel/sched/timerpage.h): thothd hands its
 * sealed memfd to each connection that asks (Daemon.timer_page with this
 * request id, which no owner of a link uses: owners count from 1).  Is MSG
 * the answer to that request?  Then take it: decode it and adopt FD (the
 * descriptor that came with it, -1 none; always consumed) with the
 * doorbells in DIR.  0 or a negative THOTH_E_* (the grid stays). */
#define THOTH__TIMERPAGE_REQUEST_ID 0xfffffff3u
THOTH__HIDDEN
bool thoth__timerpage_is_answer(const uint8_t *msg, size_t len);
THOTH__HIDDEN
int thoth__timerpage_take(const uint8_t *msg, size_t len, int fd, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
