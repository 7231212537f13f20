/*
 * tcp_internal.h - what the TCP transport's files share (not installed).
 *
 * The session (tcp_session.c) is the server side of one connection with no
 * socket in it: bytes in, responses out, the hello checked first.  The
 * server (tcp_server.c) wraps it with a socket, deadlines and an output
 * queue; the fuzz target (fuzz/tcp) drives it directly.
 */
#ifndef THOTH_TCP_INTERNAL_H
#define THOTH_TCP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netdb.h>

#include "thoth/rpc.h"
#include "thoth/stream.h"
#include "thoth/tcp.h"
#include "log_internal.h"   /* THOTH__HIDDEN: none of this leaves libthoth */
#include "why.h"

#define THOTH_TCP_HELLO_MAX_BODY 1024u   /* token 256 + names + the frame's overhead */
#define THOTH_TCP_DEFAULT_MAX_MESSAGE (1u << 20)

/* A reason into WHY (may be NULL or 0 bytes): the shared formatter. */
#define thoth__tcp_why thoth__why
/* The token from TOKEN/TOKEN_LEN if given, else from TOKEN_FILE (NULL: the
 * default path).  0 or as thoth_tcp_token_load. */
THOTH__HIDDEN int thoth__tcp_token_from(const uint8_t *token, size_t token_len, const char *token_file,
			  uint8_t *out, size_t *out_len, char *why, size_t why_len);
THOTH__HIDDEN bool thoth__tcp_token_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);
THOTH__HIDDEN int thoth__tcp_listen(const thoth_tcp_addr_t *a, int *fd_out, char *why, size_t why_len);
THOTH__HIDDEN int thoth__tcp_local_addr(int fd, char *out, size_t cap, uint16_t *port);
/*
 * A connection being opened without waiting (the pool opens on its loop):
 * thoth__tcp_dial_start resolves A's host and connects to its first
 * address.  A numeric address is resolved at once (AI_NUMERICHOST: no
 * resolver asked); a host name is looked up on a thread of its own
 * (tcp_addr.c, docs/SCALE.md), d->lookup set and d->fd an eventfd
 * that becomes readable when the lookup is done.  thoth__tcp_dial_step,
 * once d->fd is ready for thoth__tcp_dial_want (or whenever: it never
 * waits), says how that went: takes the lookup's addresses, or moves on
 * to the next address after a failed connect.  Both return 0 (connected:
 * non-blocking, TCP_NODELAY; take the fd), THOTH_E_AGAIN (in progress:
 * wait until d->fd is ready), or the error of the last address tried
 * (THOTH_E_NOT_RUNNING when refused; a failed lookup THOTH_E_INVAL),
 * WHY naming the address or the host.  thoth__tcp_dial_free closes what
 * was not taken and lets go of a lookup still under way (its thread
 * finishes it and frees it).
 */
typedef struct thoth__tcp_lookup thoth__tcp_lookup_t;
typedef struct thoth__tcp_dial {
	thoth_tcp_addr_t a;
	struct addrinfo *res, *ai;      /* the host's addresses; the one being tried */
	thoth__tcp_lookup_t *lookup;    /* a host name being looked up (d->fd its eventfd) */
	int fd;
	int err;                        /* errno of the last failed address */
} thoth__tcp_dial_t;

/* The most host name lookups one process has under way at once (a pool of
 * many unreachable names must not grow threads without bound).  One more
 * fails at once with THOTH_E_LIMIT, naming the host, when the opener must
 * not block (a pool's loop); a caller that waits anyway (caller_waits:
 * thoth_tcp_connect) looks it up on its own thread instead. */
#define THOTH__TCP_LOOKUPS_MAX 32u
/* How long thoth__tcp_listen (thoth_tcp_server_new, at a service's start)
 * waits for its host name's lookup. */
#define THOTH__TCP_LISTEN_LOOKUP_MS 2000u

/* POLLIN while a host name is being looked up, POLLOUT while connecting. */
THOTH__HIDDEN short thoth__tcp_dial_want(const thoth__tcp_dial_t *d);

THOTH__HIDDEN int thoth__tcp_dial_start(thoth__tcp_dial_t *d, const thoth_tcp_addr_t *a, bool caller_waits,
					char *why, size_t why_len);
THOTH__HIDDEN int thoth__tcp_dial_step(thoth__tcp_dial_t *d, char *why, size_t why_len);
THOTH__HIDDEN int thoth__tcp_dial_take(thoth__tcp_dial_t *d);
THOTH__HIDDEN void thoth__tcp_dial_free(thoth__tcp_dial_t *d);

/*
 * A client connection opened without waiting (thoth_tcp_connect_with is
 * the same steps with poll(2) between them): start, then step whenever
 * the fd (thoth_tcp_fd) is ready for *WANT (POLLIN / POLLOUT), until it
 * returns 0 (open: the connection is what thoth_tcp_connect_with gives)
 * or an error with WHY naming the address and what the peer did.  Nothing
 * here waits; the caller owns the deadline and, when it passes, closes the
 * connection with thoth__tcp_open_expired's reason.  The hello's answer is
 * taken only up to THOTH_TCP_HELLO_MAX_BODY: a larger frame is refused
 * from its header.  CALLER_WAITS as for thoth__tcp_dial_start.
 */
THOTH__HIDDEN int thoth__tcp_open_start(const char *addr, const thoth_tcp_config_t *cfg, bool caller_waits,
					thoth_tcp_conn_t **out, short *want, char *why, size_t why_len);
THOTH__HIDDEN int thoth__tcp_open_step(thoth_tcp_conn_t *c, short *want, char *why, size_t why_len);
/* Why an opening that did not finish within TIMEOUT_MS failed: which step
 * it was at, and THOTH_E_TIMEDOUT. */
THOTH__HIDDEN int thoth__tcp_open_expired(const thoth_tcp_conn_t *c, int timeout_ms, char *why,
					  size_t why_len);

/* What a session serves (the server's configuration, resolved). */
typedef struct thoth__tcp_service {
	const thoth_interface_info_t *iface;
	thoth_invoke_fn invoke;
	const void *handlers;
	void *self;
	uint64_t features;
	uint8_t token[THOTH_TCP_TOKEN_MAX];
	size_t token_len;
	uint32_t max_message;           /* header included */
	/* Scratch shared by every session of one server (one loop thread):
	 * the response being built and the decoder's arena. */
	uint8_t *out;                   /* 8-aligned, grown on demand */
	size_t out_cap;
	uint64_t *arena;
	size_t arena_cap;
} thoth__tcp_service_t;

typedef struct thoth__tcp_session {
	thoth__tcp_service_t *svc;
	thoth_stream_reader_t reader;
	bool authenticated;
	uint64_t features;              /* negotiated */
	uint64_t calls;                 /* requests dispatched */
	char why[256];                  /* why the session must end */
} thoth__tcp_session_t;

/* Fill the scratch of SVC (its other fields set by the caller). */
THOTH__HIDDEN int thoth__tcp_service_init(thoth__tcp_service_t *svc);
THOTH__HIDDEN void thoth__tcp_service_free(thoth__tcp_service_t *svc);

THOTH__HIDDEN int thoth__tcp_session_init(thoth__tcp_session_t *s, thoth__tcp_service_t *svc);
THOTH__HIDDEN void thoth__tcp_session_free(thoth__tcp_session_t *s);

/* Outcomes of one step. */
enum {
	THOTH__TCP_NEED_MORE = 0,       /* no whole message buffered */
	THOTH__TCP_REPLY = 1,           /* send OUT, LEN bytes (LEN may be 0: oneway) */
	THOTH__TCP_REPLY_CLOSE = 2,     /* send *out, then close (a refused hello) */
};

/*
 * Handle the next whole message in the reader: the hello first (token,
 * then contract), then requests.  Returns an outcome above, or a negative
 * THOTH_E_* when the connection must close at once (s->why says why):
 * bad header, oversized, a non-hello first frame, a response or a
 * malformed request.
 */
THOTH__HIDDEN int thoth__tcp_session_step(thoth__tcp_session_t *s, const uint8_t **out, size_t *len);

#endif
