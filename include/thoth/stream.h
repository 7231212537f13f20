/*
 * thoth/stream.h - thoth messages over a stream socket (the control plane).
 *
 * A stream carries whole wire messages back to back; each message's header
 * says how long it is (docs/WIRE.md), so there is no extra framing.  The
 * reader validates each header as soon as its 40 bytes arrive, so a peer
 * announcing a 200 MiB body is refused before anything is buffered.
 *
 * Two users: event-loop servers (thothd) feed non-blocking reads into a
 * thoth_stream_reader_t; blocking clients (thothctl, services talking to
 * thothd) use thoth_sock_client_t, a thoth_transport_ops_t for generated
 * stubs.
 *
 * Both are traced (category IPC, docs/OBSERVABILITY.md): msg_recv when a
 * whole message is handed out, msg_send when one is written; a request sent
 * with tracing on and no trace id of its own gets a fresh one.  Events carry
 * as service_id the pid of the process that serves the calls (thothd for
 * every stream in the tree): the sock client learns it with SO_PEERCRED, a
 * server sets its reader's service_id to its own pid.
 */
#ifndef THOTH_STREAM_H
#define THOTH_STREAM_H

#include "thoth/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- incremental reader ------------------------------------------------ */

/*
 * The largest body the reader's owner accepts for the message whose 40-byte
 * HEADER has just arrived (a server knows what each method needs); a larger
 * announced body is refused from the header, as above max_body.
 */
typedef uint32_t (*thoth_stream_limit_fn)(void *arg, const uint8_t *header);

typedef struct thoth_stream_reader {
	uint8_t *buf;           /* 8-aligned */
	size_t cap;
	size_t len;             /* bytes buffered */
	size_t consumed;        /* bytes of the front message handed out */
	uint32_t max_body;      /* larger announced bodies are refused */
	uint32_t service_id;    /* traced with received messages: pid of the serving process, 0 unknown */
	thoth_stream_limit_fn body_limit;       /* optional, per message (set after init) */
	void *limit_arg;
} thoth_stream_reader_t;

int thoth_stream_reader_init(thoth_stream_reader_t *r, uint32_t max_body);
void thoth_stream_reader_free(thoth_stream_reader_t *r);

/*
 * Read what FD has (it may be non-blocking).  Returns 0 when something was
 * read or nothing is available yet, THOTH_E_PEER_GONE at end of stream (or
 * ECONNRESET), THOTH_E_IO on other errors.
 */
int thoth_stream_fill(thoth_stream_reader_t *r, int fd);

/*
 * thoth_stream_fill that also takes file descriptors passed with the bytes
 * (SCM_RIGHTS, received close-on-exec): up to MAX_FDS are stored in FDS and
 * counted in *N_FDS (the caller owns them); any beyond are closed.  A plain
 * thoth_stream_fill would let the kernel close them.
 */
int thoth_stream_fill_fds(thoth_stream_reader_t *r, int fd, int *fds, size_t max_fds,
			  size_t *n_fds);

/*
 * Append LEN bytes that did not come from a socket (an in-process peer, a
 * fuzz target) as if thoth_stream_fill had read them.  0, or THOTH_E_NOMEM.
 */
int thoth_stream_feed(thoth_stream_reader_t *r, const void *bytes, size_t len);

/*
 * The next complete message, if any: returns 1 and sets msg and len (valid
 * until thoth_stream_consume), 0 when more bytes are needed, or a negative
 * THOTH_E_* when the buffered header is invalid (bad magic, flags, or a
 * body larger than max_body: THOTH_E_TOO_LARGE) - the stream cannot be
 * resynchronised then and the connection should be dropped.
 */
int thoth_stream_next(thoth_stream_reader_t *r, const uint8_t **msg, size_t *len);

/* Drop the message returned by thoth_stream_next. */
void thoth_stream_consume(thoth_stream_reader_t *r);

/* Give back a buffer grown for a large message once nothing is buffered:
 * an idle connection then costs one read chunk, whatever it sent before. */
void thoth_stream_reader_trim(thoth_stream_reader_t *r);

/* Write all of BUF (blocking, MSG_NOSIGNAL); THOTH_E_PEER_GONE on EPIPE.
 * A BUF holding one whole message is traced as msg_send (OBS-1) with
 * service_id 0; thoth_stream_write_msg names the serving process. */
int thoth_stream_write_all(int fd, const void *buf, size_t len);
int thoth_stream_write_msg(int fd, const void *msg, size_t len, uint32_t service_id);

/* Write the whole message MSG with FD attached (SCM_RIGHTS, delivered with
 * its first byte) to the stream socket SOCK (blocking).  The receiver takes
 * it with thoth_stream_fill_fds.  Used to hand thothd a trace buffer.
 * SERVICE_ID: traced, as for thoth_stream_write_msg. */
int thoth_stream_send_fd(int sock, const void *msg, size_t len, int fd, uint32_t service_id);

/* ---- blocking client transport ------------------------------------------ */

/* Called for messages that are not the awaited response (e.g. oneway events
 * a server pushes, such as RegistryEvents.changed). */
typedef void (*thoth_sock_event_fn)(void *arg, const uint8_t *msg, size_t len);

typedef struct thoth_sock_client {
	int fd;
	int timeout_ms;                 /* per call; -1 = wait forever */
	thoth_stream_reader_t reader;
	uint8_t *out;                   /* outgoing message buffer, 8-aligned */
	size_t out_cap;
	thoth_sock_event_fn on_event;
	void *event_arg;
	uint32_t stray_answers;         /* responses to no call waited for, skipped (late ones, or a lying peer's) */
} thoth_sock_client_t;

extern const thoth_transport_ops_t thoth_sock_transport;

/*
 * Connect to the Unix stream socket at PATH.  Returns 0, or
 * THOTH_E_NOT_RUNNING when nothing listens there (no socket file, or
 * connection refused), THOTH_E_PERM, THOTH_E_INVAL (path too long), THOTH_E_IO.
 */
int thoth_sock_client_connect(thoth_sock_client_t *c, const char *path, int timeout_ms);

/* Wrap an already connected stream socket (takes ownership of FD). */
int thoth_sock_client_init(thoth_sock_client_t *c, int fd, int timeout_ms);

void thoth_sock_client_close(thoth_sock_client_t *c);

/* Wait up to TIMEOUT_MS (-1: forever) for one pushed message and hand it to
 * on_event.  Returns 1 if one was delivered, 0 on timeout, or a negative
 * error.  With 0 it does not wait but still reads what the socket holds, so
 * a loop's fd-readable callback can call it until it returns 0. */
int thoth_sock_client_poll_event(thoth_sock_client_t *c, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
