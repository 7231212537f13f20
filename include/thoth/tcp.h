/*
 * thoth/tcp.h - thoth calls between hosts over TCP (issue 19, "many hosts").
 *
 * The same .tidl messages in the same wire format (docs/WIRE.md), framed as
 * on the Unix stream transport: whole messages back to back, each one's
 * 40-byte header saying how long it is.  A connection starts with one
 * authenticating frame, Tcp.hello (idl/tcp.tidl): a shared cluster token,
 * compared in constant time, and the client's interface claim, checked as a
 * channel handshake checks it (thoth/contract.h).  Nothing else is looked
 * at before the token matched.  After that, every frame is a request to the
 * served interface, answered in order through the same generated dispatch
 * a shared-memory channel uses (thoth_server_dispatch).  docs/FEDERATION.md
 * has the protocol, the token story and the limits.
 *
 * Addresses are strings "tcp:HOST:PORT": HOST an IPv4 address, a host name,
 * or an IPv6 address in brackets ("tcp:[::1]:7001"); PORT 1..65535 (0 only
 * for a listener: the kernel picks one; thoth_tcp_server_addr says which).
 * A registry endpoint that starts with "tcp:" is such an address; one that
 * starts with '/' is a Unix socket path (a channel).
 *
 * The token: 16..256 bytes, read from a file that must be a regular file
 * owned by us with no group/other permission bits (0600 or stricter), a
 * trailing newline ignored.  Every host of a cluster holds the same file
 * (scripts/run-cluster.sh makes one).  The token authenticates; it does not
 * encrypt: calls travel in clear, so a cluster's TCP ports belong on a
 * private network (docs/FEDERATION.md, "Threat model").
 */
#ifndef THOTH_TCP_H
#define THOTH_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"
#include "thoth/rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THOTH_TCP_PREFIX "tcp:"
#define THOTH_TCP_ADDR_MAX 300           /* longest "tcp:HOST:PORT" accepted, NUL included */
#define THOTH_TCP_TOKEN_MIN 16u
#define THOTH_TCP_TOKEN_MAX 256u
#define THOTH_TCP_TOKEN_FILE "cluster.token"    /* in the runtime dir, by default */

/* True when ADDR starts with "tcp:" (a remote endpoint), whatever follows. */
bool thoth_tcp_is_addr(const char *addr);

typedef struct thoth_tcp_addr {
	char host[256];                 /* without brackets */
	uint16_t port;
} thoth_tcp_addr_t;

/* Parse "tcp:HOST:PORT".  PORT 0 is accepted only with ALLOW_PORT0 (a
 * listener).  0, or THOTH_E_INVAL with WHY naming the part that is wrong. */
int thoth_tcp_addr_parse(const char *addr, bool allow_port0, thoth_tcp_addr_t *out, char *why,
			 size_t why_len);

/* Where the token is by default: $THOTH_TCP_TOKEN_FILE if set, else
 * RUNTIME_DIR/cluster.token (RUNTIME_DIR as thoth_runtime_dir chooses it
 * from EXPLICIT_RUNTIME_DIR).  0 or THOTH_E_NO_SPACE. */
int thoth_tcp_token_path(const char *explicit_runtime_dir, char *out, size_t cap);

/* Read the token at PATH into TOKEN (THOTH_TCP_TOKEN_MAX bytes).  0,
 * THOTH_E_NOT_FOUND (no file), THOTH_E_PERM (not ours, not a regular file,
 * or readable by group/other), THOTH_E_INVAL (shorter than 16 or longer
 * than 256 bytes), THOTH_E_IO; WHY says which. */
int thoth_tcp_token_load(const char *path, uint8_t *token, size_t *len, char *why, size_t why_len);

/* ---- client ------------------------------------------------------------------- */

typedef struct thoth_tcp_conn thoth_tcp_conn_t;

typedef struct thoth_tcp_config {
	const thoth_interface_info_t *iface;  /* checked by the server (contract); NULL: not
					       * checked (each call's header still is) */
	uint64_t features;                    /* bits offered; negotiated = ours & the server's */
	const uint8_t *token;                 /* NULL: read token_file */
	size_t token_len;
	const char *token_file;               /* NULL: thoth_tcp_token_path(NULL) */
	int call_timeout_ms;                  /* per call, sending and waiting: 0 = 5000, < 0 = none */
	uint32_t max_message;                 /* largest response accepted: 0 = 16 MiB */
} thoth_tcp_config_t;

/*
 * Connect to ADDR ("tcp:HOST:PORT") with the default configuration (no
 * interface check, the default token file), waiting at most TIMEOUT_MS for
 * the connection and the hello's answer (<= 0: 2000), a host name's lookup
 * included (it runs on a thread of its own, or on the caller's while the
 * process has 32 lookups under way: docs/SCALE.md).  0, THOTH_E_INVAL
 * (bad address, a host that does not resolve), THOTH_E_NOT_RUNNING (connection refused), THOTH_E_TIMEDOUT,
 * THOTH_E_PERM (the token was refused, or the token file is unsafe),
 * THOTH_E_CONTRACT / THOTH_E_BAD_VERSION, THOTH_E_BUSY (the server is at its
 * connection limit), THOTH_E_PROTOCOL, THOTH_E_IO, THOTH_E_NOMEM.
 */
int thoth_tcp_connect(const char *addr, int timeout_ms, thoth_tcp_conn_t **out);

/* The same with CFG (NULL: defaults); WHY gets a one-line reason. */
int thoth_tcp_connect_with(const char *addr, const thoth_tcp_config_t *cfg, int timeout_ms,
			   thoth_tcp_conn_t **out, char *why, size_t why_len);

/* The client generated stubs take: thoth_echo_Echo_echo(thoth_tcp_client(c), ...).
 * Blocking calls, one at a time, answered in order. */
thoth_client_t *thoth_tcp_client(thoth_tcp_conn_t *conn);
uint64_t thoth_tcp_features(const thoth_tcp_conn_t *conn);     /* negotiated */
int thoth_tcp_fd(const thoth_tcp_conn_t *conn);
/* The first transport error that broke the connection (0 while it works);
 * a broken connection fails every later call with it. */
int thoth_tcp_error(const thoth_tcp_conn_t *conn);
void thoth_tcp_close(thoth_tcp_conn_t *conn);

/*
 * Message level, for many calls in flight on one connection (the instance
 * pool, thoth/pool.h), as a channel's thoth_chan_alloc/send/recv/release:
 * build a request with its own request_id in the buffer from
 * thoth_tcp_alloc, thoth_tcp_send it (the whole message is written; only a
 * server that stops reading makes it wait, at most call_timeout_ms), and
 * take responses, in the order the server answers, with thoth_tcp_recv
 * (TIMEOUT_MS 0: THOTH_E_AGAIN when none is there; a message is valid until
 * thoth_tcp_release or the next recv).  On an event loop watch
 * thoth_tcp_fd() for READ; before going back to the loop, thoth_tcp_arm()
 * says 1 when a whole response is already buffered (receive again), 0 when
 * the fd will fire, or the error that broke the connection.
 * thoth_tcp_counts: requests sent and responses received so far (their
 * difference is what the server still owes).
 */
int thoth_tcp_alloc(thoth_tcp_conn_t *conn, size_t len, uint8_t **buf);
int thoth_tcp_send(thoth_tcp_conn_t *conn, uint8_t *buf, size_t len);
int thoth_tcp_recv(thoth_tcp_conn_t *conn, thoth_msg_t *msg, int timeout_ms);
void thoth_tcp_release(thoth_tcp_conn_t *conn, thoth_msg_t *msg);
int thoth_tcp_arm(thoth_tcp_conn_t *conn);
void thoth_tcp_counts(const thoth_tcp_conn_t *conn, uint64_t *sent, uint64_t *received);

/* ---- server ------------------------------------------------------------------- */

typedef struct thoth_tcp_server thoth_tcp_server_t;

typedef void (*thoth_tcp_log_fn)(void *arg, const char *message);

typedef struct thoth_tcp_server_config {
	const char *addr;                     /* "tcp:127.0.0.1:0" */
	const thoth_interface_info_t *iface;  /* the interface served */
	thoth_invoke_fn invoke;               /* generated <iface>_invoke */
	const void *handlers;
	void *self;
	uint64_t features;                    /* bits offered */
	const uint8_t *token;                 /* NULL: read token_file */
	size_t token_len;
	const char *token_file;               /* NULL: thoth_tcp_token_path(NULL) */
	uint32_t max_conns;                   /* open connections: 0 = 256; more are closed at accept */
	uint32_t max_message;                 /* largest request, header included: 0 = 1 MiB */
	uint32_t max_backlog;                 /* unsent response bytes per connection: 0 = 4 MiB */
	uint32_t handshake_timeout_ms;        /* hello must arrive whole by then: 0 = 1000 */
	uint32_t frame_timeout_ms;            /* a started request must arrive whole by then: 0 = 5000 */
	uint32_t idle_timeout_ms;             /* no request for this long: closed; 0 = 300000 */
	thoth_tcp_log_fn log;                 /* why a connection was refused or closed */
	void *log_arg;
} thoth_tcp_server_config_t;

typedef struct thoth_tcp_server_stats {
	uint32_t conns;                       /* open now */
	uint64_t accepted;                    /* connections accepted */
	uint64_t authenticated;               /* ... whose hello was accepted */
	uint64_t refused;                     /* hello refused: token, contract, garbage */
	uint64_t shed;                        /* closed at accept: max_conns reached */
	uint64_t timed_out;                   /* handshake, frame or idle deadline passed */
	uint64_t bad_input;                   /* closed for a bad frame (header, oversized, response) */
	uint64_t overrun;                     /* closed: did not read its responses (max_backlog) */
	uint64_t calls;                       /* requests dispatched */
} thoth_tcp_server_stats_t;

/* Listen at cfg->addr and serve on LOOP.  0, THOTH_E_INVAL (WHY says what),
 * THOTH_E_PERM / THOTH_E_NOT_FOUND (token file), THOTH_E_IO (cannot
 * listen), THOTH_E_NOMEM.  A start-up call: a host name in cfg->addr is
 * looked up for at most 2 s (THOTH_E_TIMEDOUT past it, THOTH_E_LIMIT with
 * 32 lookups of the process under way), so it may block that long. */
int thoth_tcp_server_new(thoth_loop_t *loop, const thoth_tcp_server_config_t *cfg,
			 thoth_tcp_server_t **out, char *why, size_t why_len);
/* The bound address, "tcp:HOST:PORT" with the real port. */
const char *thoth_tcp_server_addr(const thoth_tcp_server_t *srv);
uint16_t thoth_tcp_server_port(const thoth_tcp_server_t *srv);
void thoth_tcp_server_stats(const thoth_tcp_server_t *srv, thoth_tcp_server_stats_t *out);
/* Close every connection and the listener. */
void thoth_tcp_server_free(thoth_tcp_server_t *srv);

#ifdef __cplusplus
}
#endif
#endif
