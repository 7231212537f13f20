/*
 * thoth/rpc.h - what generated stubs and dispatch tables run on.
 *
 * thothc emits, per method, a thoth_method_info_t (ordinals, feature
 * requirement, encode/decode functions) and typed wrappers around the two
 * generic paths below: thoth_client_call() on the client, and
 * thoth_server_dispatch() on the server.  The transport underneath is
 * pluggable (thoth_transport_ops_t): the shared-memory channel, a Unix
 * socket, or an in-process loopback for tests.
 */
#ifndef THOTH_RPC_H
#define THOTH_RPC_H

#include "thoth/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THOTH_METHOD_INFO_REV 1

typedef struct thoth_method_info {
	const char *name;               /* "Registry.resolve" */
	uint32_t interface_id;
	uint32_t ordinal;
	uint8_t major, minor;           /* schema version the stub was generated from */
	int8_t requires_bit;            /* feature bit the method needs, or -1 */
	bool oneway;
	size_t req_struct_size, resp_struct_size;
	size_t (*req_size)(const void *req);            /* exact body size */
	int (*req_encode)(thoth_builder_t *b, const void *req);
	int (*req_decode)(thoth_decoder_t *d, void *req);
	size_t (*resp_size)(const void *resp);
	int (*resp_encode)(thoth_builder_t *b, const void *resp);
	int (*resp_decode)(thoth_decoder_t *d, void *resp);
	const uint32_t *error_codes;    /* declared application errors */
	const char *const *error_names;
	size_t n_errors;
	bool idempotent;                /* @idempotent: an instance pool may retry it on another
					 * instance when the first died (SCALE-3) */
	/* THOTH_METHOD_INFO_REV in code from a thothc that knows the members
	 * below.  A program built from an older thothc and header has none of
	 * them, and reads 0 here: this byte was the padding after
	 * `idempotent`, zero in a static object.  The library reads the
	 * members below only where this is >= 1, so old binaries keep
	 * working against a newer libthoth.so.0. */
	uint8_t revision;
	/* Optional (NULL in code from an older thothc): the same work as the
	 * functions above, with the builder or decoder the function's own, so
	 * that it lives in registers and its start is known (a root frame at
	 * body offset 0).  *_whole writes the whole message into BUF of CAP
	 * bytes, as thoth_builder_init + *_encode + thoth_builder_finish with
	 * the method's header and META's features, trace_id and request_id
	 * would; *_body decodes a body of LEN bytes (the header already
	 * checked) as thoth_decoder_init + *_decode would.  Byte for byte and
	 * check for check the same: they are the same generated code. */
	int (*req_encode_whole)(void *buf, size_t cap, const thoth_msg_header_t *meta,
				const void *req, size_t *len);
	int (*req_decode_body)(const uint8_t *body, uint32_t len, thoth_arena_t *arena, void *req);
	int (*resp_encode_whole)(void *buf, size_t cap, const thoth_msg_header_t *meta,
				 const void *resp, size_t *len);
	int (*resp_decode_body)(const uint8_t *body, uint32_t len, thoth_arena_t *arena, void *resp);
} thoth_method_info_t;

/* The whole-message and body functions of M, where its code has them. */
#define THOTH_METHOD_HAS(m, fn) ((m)->revision >= 1 && (m)->fn)

typedef struct thoth_server_io thoth_server_io_t;
typedef struct thoth_interface_info thoth_interface_info_t;

/* Generated per interface: calls the typed handler for M. Returns 0, a
 * positive application error code, or a negative THOTH_E_* code. */
typedef int (*thoth_invoke_fn)(const void *handlers, void *self, const thoth_method_info_t *m,
			       const void *req, void *resp, thoth_arena_t *arena);

/* thoth_server_dispatch's signature: what thoth_interface_info_t.dispatch is. */
typedef int (*thoth_dispatch_fn)(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
				 const void *handlers, void *self, const uint8_t *msg, size_t len,
				 thoth_server_io_t *io);

#define THOTH_INTERFACE_INFO_REV 1

struct thoth_interface_info {
	const char *package;            /* "thoth.registry" */
	const char *name;               /* "Registry" */
	uint32_t id;                    /* FNV-1a 32 of "package.Name" */
	uint8_t major, minor;
	uint64_t schema_hash;           /* hash of the wire-relevant schema text */
	uint64_t features;              /* every feature bit the schema declares */
	const thoth_method_info_t *const *methods;
	size_t n_methods;
	uint8_t shard_algo;             /* @sharded(ALGO): a thoth_shard_algo_t (thoth/shard.h),
					 * 0 when not sharded (SCALE-4) */
	/* THOTH_INTERFACE_INFO_REV in code from a thothc that knows the
	 * members below; 0 in older code (this byte was the padding after
	 * `shard_algo`, zero in a static object), which the library then
	 * never reads past: see thoth_method_info_t.revision. */
	uint8_t revision;
	/* Optional (NULL in code from an older thothc): thothc's dispatcher
	 * for this interface.  thoth_server_dispatch hands every call to it;
	 * it serves a plain request (thoth__plain_request) for one of this
	 * interface's methods itself, in one function (a switch on the
	 * ordinal, the method's decoder, typed handler, size and encoder
	 * inlined, none through a pointer), when called with this very
	 * interface info and its generated invoke, and gives everything else
	 * to thoth__server_dispatch_table: the same checks, codes and bytes
	 * either way (tests/contract/test_dispatch_fast.c).  Read only when
	 * `revision` is exactly THOTH_INTERFACE_INFO_REV.  Never
	 * thoth_server_dispatch itself: that hands the call straight back
	 * here, without end (a hand-built info wanting the table-driven way
	 * leaves this NULL). */
	thoth_dispatch_fn dispatch;
};

const thoth_method_info_t *thoth_interface_method(const thoth_interface_info_t *iface,
						  uint32_t ordinal);

/* ---- transport ------------------------------------------------------- */

/* A received message; `handle` belongs to the transport. */
typedef struct thoth_msg {
	const uint8_t *data;
	size_t len;
	void *handle;
} thoth_msg_t;

typedef struct thoth_transport_ops {
	/* A writable, 8-aligned buffer of at least LEN bytes for one outgoing
	 * message (e.g. a ring slot or a pool buffer: building in place). */
	int (*get_buffer)(void *ctx, size_t len, uint8_t **buf);
	/* Send a request built in the last buffer and wait for its response. */
	int (*call)(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp);
	/* Send a oneway message built in the last buffer. */
	int (*send)(void *ctx, uint8_t *msg, size_t len);
	/* Give a response back to the transport. */
	void (*release)(void *ctx, thoth_msg_t *resp);
	/* Optional: give back a buffer from get_buffer that will not be sent. */
	void (*discard)(void *ctx, uint8_t *buf);
} thoth_transport_ops_t;

/* ---- client ----------------------------------------------------------- */

typedef struct thoth_client {
	const thoth_transport_ops_t *ops;
	void *ctx;
	uint64_t features;              /* negotiated feature bits */
	uint64_t trace_id;              /* stamped on each request; 0 = none */
	uint32_t next_request_id;
	thoth_msg_t reply;              /* decoded results point into it */
	bool holding_reply;
	/* After an error answer (THOTH_E_REMOTE, or one of the schema-skew
	 * codes of thoth_remote_result()): the peer's error code, status and
	 * message. */
	uint32_t remote_code;
	int remote_status;
	char remote_message[128];
} thoth_client_t;

/*
 * What a call returns for an error answer whose frame says STATUS
 * (docs/WIRE.md, "Error responses").  The peer's refusals that say the
 * two schemas differ come back as themselves, so that a client built from
 * a newer schema can tell "this service predates the method" and fall
 * back (docs/IDL.md): THOTH_E_UNKNOWN_METHOD, THOTH_E_UNKNOWN_IFACE,
 * THOTH_E_BAD_VERSION, THOTH_E_NO_FEATURE.  Everything else -- the
 * application's errors and the server's own failures (a request it could
 * not decode, no memory) -- is THOTH_E_REMOTE, never a code that a
 * caller would take for a failure on its own side.
 */
static inline int thoth_remote_result(int status)
{
	switch (status) {
	case THOTH_E_UNKNOWN_METHOD:
	case THOTH_E_UNKNOWN_IFACE:
	case THOTH_E_BAD_VERSION:
	case THOTH_E_NO_FEATURE:
		return status;
	default:
		return THOTH_E_REMOTE;
	}
}

void thoth_client_init(thoth_client_t *c, const thoth_transport_ops_t *ops, void *ctx,
		       uint64_t negotiated_features);

/* Give back the last response; results decoded from it become invalid.
 * The next call does this implicitly. */
void thoth_client_release(thoth_client_t *c);

/*
 * The generic call path behind every generated stub: check the feature the
 * method requires (THOTH_E_NO_FEATURE before anything is sent), encode the
 * request in a transport buffer, send, wait, verify and decode the response.
 * Returns 0, a transport error, a decode error, or for an error answer
 * thoth_remote_result() of its status (THOTH_E_REMOTE, or THOTH_E_UNKNOWN_METHOD
 * and the other schema-skew refusals) with c->remote_* filled in.
 */
int thoth_client_call(thoth_client_t *c, const thoth_method_info_t *m,
		      const void *req, void *resp, thoth_arena_t *arena);

/*
 * The same call in two steps, for building a large payload in place:
 * thoth_client_begin() encodes REQ straight into a transport buffer (on a
 * channel: a shared-memory pool buffer), so a bytes field with `reserve`
 * set gets its final address now; the caller fills it, then
 * thoth_client_commit() sends and waits (or just sends, for oneway) and
 * decodes the response.  thoth_client_abort() gives the buffer back unsent.
 */
typedef struct thoth_call {
	const thoth_method_info_t *m;
	uint8_t *buf;
	size_t len;
	uint32_t request_id;
} thoth_call_t;

int thoth_client_begin(thoth_client_t *c, const thoth_method_info_t *m, const void *req,
		       thoth_call_t *call);
int thoth_client_commit(thoth_client_t *c, thoth_call_t *call, void *resp, thoth_arena_t *arena);
void thoth_client_abort(thoth_client_t *c, thoth_call_t *call);

/* ---- server ----------------------------------------------------------- */

struct thoth_server_io {
	uint8_t *out;                   /* response buffer, 8-aligned */
	size_t cap;
	size_t out_len;                 /* set: 0 when nothing is to be sent (oneway) */
	thoth_arena_t *arena;           /* scratch for decoded requests and results */
	uint64_t features;              /* negotiated on this channel */
	/* Optional: the transport's buffer for a response of exactly LEN bytes
	 * (a ring slot or a shared pool buffer), so the response is encoded in
	 * place; out/cap are then ignored.  0 or a THOTH_E_* code. */
	int (*get_out)(void *ctx, size_t len, uint8_t **buf);
	void *out_ctx;
};

/*
 * Decode a request, run its handler, and encode the response (or an error
 * response) into io->out.  Returns 0 when io->out holds what to send (maybe
 * nothing); a negative code when the message could not be understood well
 * enough to answer (bad header): the transport should drop the peer.
 */
int thoth_server_dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
			  const void *handlers, void *self,
			  const uint8_t *msg, size_t len, thoth_server_io_t *io);

/* How many oneway requests this process's dispatchers could not serve
 * (unknown method or interface, another major, a feature or handler
 * missing, a body that does not decode) and dropped: they have no answer
 * to carry an error.  Each is also a warning through thoth/log.h, at most
 * 8 lines a second. */
uint64_t thoth_rpc_oneways_dropped(void);

/* Tests: zero the count and the log's rate limit, and read the time in
 * seconds from CLOCK_S (NULL: CLOCK_MONOTONIC). */
void thoth__rpc_oneway_log_reset(uint64_t (*clock_s)(void));

/* libthoth's tracing: where the count is also written (the process's
 * trace buffer, which thothd maps: thothctl serve, /metrics), the count so
 * far stored there at once; NULL stops it (before the buffer is unmapped). */
void thoth__rpc_oneway_mirror(uint64_t *slot);

/* ---- for thothc's per-interface dispatchers (not for hand-written code) ---- */

/* Request and response structs up to this size are kept on the
 * dispatcher's stack; larger ones come from io->arena. */
#define THOTH_DISPATCH_SMALL 512

/* thoth_server_dispatch as if IFACE had no dispatcher of its own: the
 * table-driven way (method lookup, decode, invoke, size and encode through
 * thoth_method_info_t).  What a generated dispatcher falls back on. */
int thoth__server_dispatch_table(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
				 const void *handlers, void *self, const uint8_t *msg, size_t len,
				 thoth_server_io_t *io);

/* The answer when a step after the method's checks fails: the request's
 * body did not decode (R), the handler returned STATUS != 0 (R: an
 * application error is named from M's list), no buffer for the response,
 * or the response did not encode.  RH is the answer's header.  The same
 * function and texts for the table-driven way and the generated one. */
enum { THOTH__FAIL_DECODE, THOTH__FAIL_STATUS, THOTH__FAIL_OUT, THOTH__FAIL_ENCODE };

/* What a generated invoke and dispatcher give thoth__server_fail for a
 * method whose handler is NULL: the dispatcher's own refusal, answered
 * THOTH_E_UNKNOWN_METHOD.  A handler's own return of one of the
 * schema-skew codes (thoth_remote_result: a downstream's UNKNOWN_METHOD
 * passed up by `return stub(...)`, a NO_FEATURE of its own) is the
 * service's failure, not the schemas differing, and is answered with
 * status THOTH_E_REMOTE and that code's text, so the caller does not take
 * it for "this service predates the method" (docs/WIRE.md).  Private:
 * never returned to a caller. */
#define THOTH__E_NO_HANDLER (-0x10000)
int thoth__server_fail(const thoth_method_info_t *m, thoth_server_io_t *io, const thoth_msg_header_t *rh,
		       int stage, int r);

/*
 * Is HD (the first THOTH_WIRE_HEADER_SIZE bytes of a LEN-byte message, LEN
 * at least that, in the caller's own copy) a request that
 * thoth_wire_header_decode accepts, with flags exactly REQUEST (not
 * oneway), for interface IFACE_ID and MAJOR (any minor)?  Then every check
 * of thoth_server_dispatch up to the method lookup passes.  Four word
 * tests: magic, major and flags; the interface; the body the rest of the
 * message, padded, within the limit.  HD must be a private copy: a request
 * in the client's pool can be rewritten while it is dispatched, so a word
 * checked here and read again from the message (body_len) could change.
 */
static inline bool thoth__plain_request(const uint8_t *hd, size_t len, uint32_t iface_id, uint8_t major)
{
	uint64_t w0 = thoth_le64(hd) & ~((uint64_t)0xff << 40);     /* minor */
	uint64_t want0 = THOTH_WIRE_MAGIC | (uint64_t)major << 32 | (uint64_t)THOTH_MSG_REQUEST << 48;
	uint32_t body = thoth_le32(hd + 36);
	return w0 == want0 && thoth_le32(hd + 8) == iface_id &&
	       (size_t)body == len - THOTH_WIRE_HEADER_SIZE && !(body % 8u) && body <= THOTH_WIRE_MAX_BODY;
}

/* The answer's header for a plain request HD: the request's with our
 * schema version and the channel's FEATURES (flags still REQUEST). */
static inline void thoth__plain_answer_header(thoth_msg_header_t *rh, const uint8_t *hd, uint32_t iface_id,
					      uint8_t major, uint8_t minor, uint64_t features)
{
	rh->magic = THOTH_WIRE_MAGIC;
	rh->schema_major = major;
	rh->schema_minor = minor;
	rh->flags = THOTH_MSG_REQUEST;
	rh->interface_id = iface_id;
	rh->method = thoth_le32(hd + 12);
	rh->features = features;
	rh->trace_id = thoth_le64(hd + 24);
	rh->request_id = thoth_le32(hd + 32);
	rh->body_len = thoth_le32(hd + 36);
}

/* Point io->out at a buffer for LEN bytes: the transport's, when it offers one. */
static inline int thoth__server_out(thoth_server_io_t *io, size_t len)
{
	if (!io->get_out)
		return 0;
	uint8_t *buf;
	int r = io->get_out(io->out_ctx, len, &buf);
	if (r)
		return r;
	io->out = buf;
	io->cap = len;
	return 0;
}

/* ---- whole messages without a transport (tests, golden vectors, tools) ---- */

/* Exact size of the message holding VALUE (M's request or response struct). */
size_t thoth_method_size(const thoth_method_info_t *m, bool response, const void *value);

/* Encode VALUE as a whole message into BUF (8-aligned).  META supplies
 * features, trace_id and request_id (may be NULL); flags, ids and version
 * come from M. */
int thoth_method_encode(const thoth_method_info_t *m, bool response, const void *value,
			const thoth_msg_header_t *meta, void *buf, size_t cap, size_t *len);

/* Verify and decode a whole message: header checks (magic, flags, interface,
 * method, major version), then the body into VALUE. */
int thoth_method_decode(const thoth_method_info_t *m, bool response, const uint8_t *msg,
			size_t len, void *value, thoth_arena_t *arena);

/*
 * Check a received message's header against what a typed decoder expects
 * (request or response, interface, method, major version) and point D at
 * its body.  Generated *_decode_msg functions and thoth_method_decode use it.
 */
static inline int thoth_msg_open(const uint8_t *msg, size_t len, bool response, uint32_t iface,
				 uint32_t method, uint8_t major, thoth_decoder_t *d,
				 thoth_arena_t *arena)
{
	thoth_msg_header_t h;
	memset(&h, 0, sizeof h);        /* not `= { 0 }`: C++ warns on missing initialisers */
	int r = thoth_wire_header_decode(msg, len, &h);
	if (r)
		return r;
	if (!(h.flags & (response ? THOTH_MSG_RESPONSE : THOTH_MSG_REQUEST)) ||
	    (h.flags & THOTH_MSG_ERROR))
		return THOTH_E_BAD_FLAGS;
	if (h.interface_id != iface)
		return THOTH_E_UNKNOWN_IFACE;
	if (h.method != method)
		return THOTH_E_UNKNOWN_METHOD;
	if (h.schema_major != major)
		return THOTH_E_BAD_VERSION;
	thoth_decoder_init(d, msg + THOTH_WIRE_HEADER_SIZE, h.body_len, arena);
	return 0;
}

/* Error responses: body = frame { 1: u32 code; 2: i32 status; 3: string message }. */
int thoth_wire_encode_error(thoth_builder_t *b, uint32_t code, int32_t status, const char *message);
int thoth_wire_decode_error(thoth_decoder_t *d, uint32_t *code, int32_t *status, thoth_str_t *message);

#ifdef __cplusplus
}
#endif
#endif
