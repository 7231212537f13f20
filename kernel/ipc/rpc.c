/*
 * rpc.c - the generic client call path and server dispatch that generated
 * stubs delegate to (include/thoth/rpc.h).  Transport-agnostic.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "thoth/hot.h"
#include "thoth/rpc.h"
#include "log_internal.h"
#include "why.h"

static const thoth_method_info_t *method_search(const thoth_interface_info_t *iface,
						 uint32_t ordinal) __attribute__((noinline));

/* thothc lists methods by ordinal, usually 1..n without gaps: try the slot
 * the ordinal names before searching (ORDINAL is the peer's: the index is
 * bounds-checked and the slot's ordinal compared).  Inline in the
 * dispatcher, which looks up a method per call. */
static inline const thoth_method_info_t *method_of(const thoth_interface_info_t *iface,
						   uint32_t ordinal)
{
	if (ordinal - 1u < iface->n_methods) {
		const thoth_method_info_t *m = iface->methods[ordinal - 1u];
		if (m->ordinal == ordinal)
			return m;
	}
	return method_search(iface, ordinal);
}

static const thoth_method_info_t *method_search(const thoth_interface_info_t *iface,
						 uint32_t ordinal)
{
	for (size_t i = 0; i < iface->n_methods; i++)
		if (iface->methods[i]->ordinal == ordinal)
			return iface->methods[i];
	return NULL;
}

const thoth_method_info_t *thoth_interface_method(const thoth_interface_info_t *iface,
						  uint32_t ordinal)
{
	return method_of(iface, ordinal);
}

/* ---- error frames ------------------------------------------------------ */

enum { ERR_FIXED = 16 };  /* code u32 @0, status i32 @4, message ptr @8 */

int thoth_wire_encode_error(thoth_builder_t *b, uint32_t code, int32_t status, const char *message)
{
	uint32_t f;
	int r = thoth_builder_frame(b, ERR_FIXED, 3, &f);
	if (r)
		return r;
	thoth_st32(thoth_builder_at(b, f + 8), code);
	thoth_st32(thoth_builder_at(b, f + 12), (uint32_t)status);
	return thoth_builder_str(b, f + 16, thoth_str(message ? message : ""));
}

int thoth_wire_decode_error(thoth_decoder_t *d, uint32_t *code, int32_t *status, thoth_str_t *message)
{
	uint32_t fixed, count;
	int r = thoth_decoder_frame(d, 0, 0, &fixed, &count);
	if (r)
		return r;
	*code = 0;
	*status = 0;
	message->ptr = "";
	message->len = 0;
	if (count >= 1 && fixed >= 4)
		*code = thoth_le32(d->body + 8);
	if (count >= 2 && fixed >= 8)
		*status = (int32_t)thoth_le32(d->body + 12);
	if (count >= 3 && fixed >= 16)
		return thoth_decoder_str(d, 16, message);
	if (count >= 3)
		return THOTH_E_BAD_LENGTH;
	return 0;
}

/* ---- whole messages ------------------------------------------------------ */

size_t thoth_method_size(const thoth_method_info_t *m, bool response, const void *value)
{
	return THOTH_WIRE_HEADER_SIZE + (response ? m->resp_size(value) : m->req_size(value));
}

int thoth_method_encode(const thoth_method_info_t *m, bool response, const void *value,
			const thoth_msg_header_t *meta, void *buf, size_t cap, size_t *len)
{
	if (response && m->oneway)
		return THOTH_E_INVAL;
	thoth_builder_t b;
	thoth_builder_init(&b, buf, cap);
	int r = response ? m->resp_encode(&b, value) : m->req_encode(&b, value);
	if (r)
		return r;
	thoth_msg_header_t h = {
		.schema_major = m->major,
		.schema_minor = m->minor,
		.flags = response ? THOTH_MSG_RESPONSE
				  : THOTH_MSG_REQUEST | (m->oneway ? THOTH_MSG_ONEWAY : 0),
		.interface_id = m->interface_id,
		.method = m->ordinal,
	};
	if (meta) {
		h.features = meta->features;
		h.trace_id = meta->trace_id;
		h.request_id = meta->request_id;
	}
	return thoth_builder_finish(&b, &h, len);
}

int thoth_method_decode(const thoth_method_info_t *m, bool response, const uint8_t *msg,
			size_t len, void *value, thoth_arena_t *arena)
{
	thoth_decoder_t d;
	int r = thoth_msg_open(msg, len, response, m->interface_id, m->ordinal, m->major, &d, arena);
	if (r)
		return r;
	return response ? m->resp_decode(&d, value) : m->req_decode(&d, value);  /* zeroes VALUE */
}

/* ---- client ------------------------------------------------------------ */

void thoth_client_init(thoth_client_t *c, const thoth_transport_ops_t *ops, void *ctx,
		       uint64_t negotiated_features)
{
	memset(c, 0, sizeof *c);
	c->ops = ops;
	c->ctx = ctx;
	c->features = negotiated_features;
	c->next_request_id = 1;
}

void thoth_client_release(thoth_client_t *c)
{
	if (c->holding_reply) {
		c->ops->release(c->ctx, &c->reply);
		c->holding_reply = false;
	}
}

static int check_response(const thoth_method_info_t *m, const thoth_msg_header_t *h,
			  uint32_t request_id)
{
	if (!(h->flags & THOTH_MSG_RESPONSE))
		return THOTH_E_PROTOCOL;
	if (h->interface_id != m->interface_id || h->method != m->ordinal ||
	    h->request_id != request_id)
		return THOTH_E_PROTOCOL;
	if (h->schema_major != m->major)
		return THOTH_E_BAD_VERSION;
	return 0;
}

/* begin, commit and the dispatcher run every round trip: thoth/hot.h. */
THOTH_HOT_CLIENT int thoth_client_begin(thoth_client_t *c, const thoth_method_info_t *m, const void *req,
		       thoth_call_t *call)
{
	if (c->holding_reply) {         /* the call only when there is one */
		c->ops->release(c->ctx, &c->reply);
		c->holding_reply = false;
	}
	c->remote_code = 0;
	c->remote_status = 0;
	c->remote_message[0] = 0;
	memset(call, 0, sizeof *call);
	if (m->requires_bit >= 0 && !(c->features & (1ull << m->requires_bit)))
		return THOTH_E_NO_FEATURE;

	size_t len = THOTH_WIRE_HEADER_SIZE + m->req_size(req);
	uint8_t *buf;
	int r = c->ops->get_buffer(c->ctx, len, &buf);
	if (r)
		return r;
	/* A whole-message encoder takes only META's features, trace_id and
	 * request_id (its header words are the method's own): the rest of
	 * the header is filled in only for the builder. */
	thoth_msg_header_t h = {
		.features = c->features,
		.trace_id = c->trace_id,
		.request_id = m->oneway ? 0 : c->next_request_id,
	};
	if (THOTH_METHOD_HAS(m, req_encode_whole)) {
		r = m->req_encode_whole(buf, len, &h, req, &len);
	} else {
		h.schema_major = m->major;
		h.schema_minor = m->minor;
		h.flags = THOTH_MSG_REQUEST | (m->oneway ? THOTH_MSG_ONEWAY : 0);
		h.interface_id = m->interface_id;
		h.method = m->ordinal;
		thoth_builder_t b;
		thoth_builder_init(&b, buf, len);
		r = m->req_encode(&b, req);
		if (!r)
			r = thoth_builder_finish(&b, &h, &len);
	}
	if (r) {
		if (c->ops->discard)
			c->ops->discard(c->ctx, buf);
		return r;
	}
	call->m = m;
	call->buf = buf;
	call->len = len;
	call->request_id = h.request_id;
	if (!m->oneway && ++c->next_request_id == 0)
		c->next_request_id = 1;
	return 0;
}

void thoth_client_abort(thoth_client_t *c, thoth_call_t *call)
{
	if (call->buf && c->ops->discard)
		c->ops->discard(c->ctx, call->buf);
	call->buf = NULL;
}

THOTH_HOT_CLIENT int thoth_client_commit(thoth_client_t *c, thoth_call_t *call, void *resp, thoth_arena_t *arena)
{
	const thoth_method_info_t *m = call->m;
	if (!m || !call->buf)
		return THOTH_E_INVAL;
	if (!resp && !m->oneway) {
		/* Nowhere to decode the answer (a NULL response crashed in the
		 * decoder after the request went out): said before sending. */
		thoth_client_abort(c, call);
		return THOTH_E_INVAL;
	}
	uint8_t *buf = call->buf;
	call->buf = NULL;               /* the transport owns it from here */
	if (m->oneway)
		return c->ops->send(c->ctx, buf, call->len);

	int r = c->ops->call(c->ctx, buf, call->len, &c->reply);
	if (r)
		return r;
	c->holding_reply = true;

	thoth_decoder_t d;
	const uint8_t *p = c->reply.data;
	size_t n = c->reply.len;
	/* The answer this call expects, its header read once in four words:
	 * magic, the method's major, any minor, flags exactly RESPONSE, the
	 * method, the request, and a padded body that is the rest of the
	 * message.  Anything else (an error frame, a bad header, a stranger's
	 * answer) goes the full way below, which says what it is: this path
	 * accepts only what that one accepts. */
	if (n >= THOTH_WIRE_HEADER_SIZE) {
		uint64_t w0 = thoth_le64(p) & ~((uint64_t)0xff << 40);      /* minor */
		uint64_t want0 = THOTH_WIRE_MAGIC | (uint64_t)m->major << 32 |
				 (uint64_t)THOTH_MSG_RESPONSE << 48;
		uint64_t w1 = thoth_le64(p + 8);
		uint64_t want1 = m->interface_id | (uint64_t)m->ordinal << 32;
		uint32_t body = thoth_le32(p + 36);
		if (w0 == want0 && w1 == want1 && thoth_le32(p + 32) == call->request_id &&
		    (size_t)body == n - THOTH_WIRE_HEADER_SIZE && !(body % 8u) &&
		    body <= THOTH_WIRE_MAX_BODY) {
			if (THOTH_METHOD_HAS(m, resp_decode_body)) {
				r = m->resp_decode_body(p + THOTH_WIRE_HEADER_SIZE, body, arena, resp);
				goto decoded;
			}
			thoth_decoder_init(&d, p + THOTH_WIRE_HEADER_SIZE, body, arena);
			goto decode;
		}
	}
	thoth_msg_header_t rh = { 0 };
	r = thoth_wire_header_decode(p, n, &rh);
	if (!r)
		r = check_response(m, &rh, call->request_id);
	if (r)
		return r;
	thoth_decoder_init(&d, p + THOTH_WIRE_HEADER_SIZE, rh.body_len, arena);
	if (rh.flags & THOTH_MSG_ERROR) {
		uint32_t code;
		int32_t status;
		thoth_str_t msg;
		r = thoth_wire_decode_error(&d, &code, &status, &msg);
		if (r)
			return r;
		c->remote_code = code;
		c->remote_status = status;
		/* printed by thothctl and logged by callers: a peer's control
		 * characters escaped, and a reason longer than we keep ending
		 * in "..." (why.h): cut silently, it read as whole, its last
		 * word or path half there */
		thoth__why_text_cut(c->remote_message, sizeof c->remote_message, msg.ptr, msg.len, false);
		return thoth_remote_result(status);
	}
decode:
	r = m->resp_decode(&d, resp);
decoded:
	/* Every generated decoder zeroes RESP before reading a field; zeroed
	 * here only when decoding failed (possibly before that point), so a
	 * caller never sees its own stale values beside an error. */
	if (r)
		memset(resp, 0, m->resp_struct_size);
	return r;
}

int thoth_client_call(thoth_client_t *c, const thoth_method_info_t *m,
		      const void *req, void *resp, thoth_arena_t *arena)
{
	thoth_call_t call;
	int r = thoth_client_begin(c, m, req, &call);
	return r ? r : thoth_client_commit(c, &call, resp, arena);
}

/* ---- server ------------------------------------------------------------ */

static int respond_error(thoth_server_io_t *io, const thoth_msg_header_t *rq,
			 uint32_t code, int32_t status, const char *message)
{
	if (!message)
		message = "";
	/* header + frame header + {code, status, message ptr} + the string */
	size_t need = THOTH_WIRE_HEADER_SIZE + 8 + ERR_FIXED +
		      thoth_wire_str_size(thoth_str(message));
	int r = thoth__server_out(io, need);
	if (r) {
		io->out_len = 0;
		return r;
	}
	thoth_builder_t b;
	thoth_builder_init(&b, io->out, io->cap);
	r = thoth_wire_encode_error(&b, code, status, message);
	thoth_msg_header_t h = *rq;
	h.flags = THOTH_MSG_RESPONSE | THOTH_MSG_ERROR;
	if (!r)
		r = thoth_builder_finish(&b, &h, &io->out_len);
	if (r)
		io->out_len = 0;
	return r;
}

int thoth__server_fail(const thoth_method_info_t *m, thoth_server_io_t *io, const thoth_msg_header_t *rh,
		       int stage, int r)
{
	switch (stage) {
	case THOTH__FAIL_DECODE:
		return respond_error(io, rh, 0, r, thoth_strerror(r));
	case THOTH__FAIL_STATUS:
		if (r == THOTH__E_NO_HANDLER)
			return respond_error(io, rh, 0, THOTH_E_UNKNOWN_METHOD,
					     thoth_strerror(THOTH_E_UNKNOWN_METHOD));
		if (r < 0 && thoth_remote_result(r) != THOTH_E_REMOTE)
			/* the handler's own: rpc.h, THOTH__E_NO_HANDLER */
			return respond_error(io, rh, 0, THOTH_E_REMOTE, thoth_strerror(r));
		if (r > 0) {
			const char *name = "application error";
			for (size_t i = 0; i < m->n_errors; i++)
				if (m->error_codes[i] == (uint32_t)r)
					name = m->error_names[i];
			return respond_error(io, rh, (uint32_t)r, THOTH_E_REMOTE, name);
		}
		return respond_error(io, rh, 0, r, thoth_strerror(r));
	case THOTH__FAIL_OUT:
		return respond_error(io, rh, 0, r, "no buffer for the response (pool exhausted)");
	default:
		return respond_error(io, rh, 0, r, "server could not encode its response");
	}
}


/* A oneway request the server cannot serve (a method or interface of
 * another schema version, a missing feature or handler, a body that does
 * not decode) has nobody to answer to.  It is counted
 * (thoth_rpc_oneways_dropped) and logged as a warning, at most
 * ONEWAY_LOG_PER_S lines a second (a peer that floods costs no more), the
 * next line after a full second saying how many were not logged.  A
 * warning reaches only a log handler that takes warnings (thoth/log.h: by
 * default none does). */
enum { ONEWAY_LOG_PER_S = 8 };
static _Atomic uint64_t oneways_dropped, oneway_second, oneway_lines, oneway_unlogged;
static uint64_t (*oneway_clock)(void);  /* seconds; NULL: CLOCK_MONOTONIC (tests set it) */
static uint64_t *_Atomic oneway_mirror; /* the trace buffer's copy (thoth__rpc_oneway_mirror) */
/* A child forked from a traced process inherits both its count and the
 * shared control page: until the child makes its own buffer, parent and
 * child raise the same slot, which then shows the larger of their counts,
 * not their sum (an under-count; each process's thoth_rpc_oneways_dropped
 * stays exact).  A dispatcher may store through a pointer loaded just
 * before thoth_trace_shutdown swapped it: buffer.c keeps that address
 * mapped (an anonymous page) for that reason. */

/* Raise *SLOT to N (a peer process reads it): droppers on several threads
 * store their counts in any order, and the slot must never go back. */
static void mirror_store(uint64_t *slot, uint64_t n)
{
	uint64_t was = __atomic_load_n(slot, __ATOMIC_RELAXED);
	while (was < n && !__atomic_compare_exchange_n(slot, &was, n, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void thoth__rpc_oneway_mirror(uint64_t *slot)
{
	if (slot)
		mirror_store(slot, atomic_load_explicit(&oneways_dropped, memory_order_relaxed));
	atomic_store_explicit(&oneway_mirror, slot, memory_order_release);
	/* a drop counted between the two stores lands at its own store below */
	if (slot)
		mirror_store(slot, atomic_load_explicit(&oneways_dropped, memory_order_relaxed));
}

uint64_t thoth_rpc_oneways_dropped(void)
{
	return atomic_load_explicit(&oneways_dropped, memory_order_relaxed);
}

void thoth__rpc_oneway_log_reset(uint64_t (*clock_s)(void))
{
	oneway_clock = clock_s;
	atomic_store(&oneways_dropped, 0);
	atomic_store(&oneway_second, 0);
	atomic_store(&oneway_lines, 0);
	atomic_store(&oneway_unlogged, 0);
}

/* Cold and out of line: it is reached from six failure points of the
 * dispatcher, which inlining it into each made larger for the hot path. */
__attribute__((cold, noinline)) static int oneway_dropped(const thoth_msg_header_t *h, int status,
							  const char *why)
{
	uint64_t n = atomic_fetch_add_explicit(&oneways_dropped, 1, memory_order_relaxed) + 1;
	uint64_t *mirror = atomic_load_explicit(&oneway_mirror, memory_order_acquire);
	if (mirror)
		mirror_store(mirror, n);
	uint64_t now;
	if (oneway_clock) {
		now = oneway_clock();
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec;
	}
	uint64_t sec = atomic_load(&oneway_second);
	if (sec != now && atomic_compare_exchange_strong(&oneway_second, &sec, now))
		atomic_store(&oneway_lines, 0);
	if (atomic_fetch_add(&oneway_lines, 1) >= ONEWAY_LOG_PER_S) {
		atomic_fetch_add_explicit(&oneway_unlogged, 1, memory_order_relaxed);
		return 0;
	}
	uint64_t unlogged = atomic_exchange(&oneway_unlogged, 0);
	thoth__log(THOTH_LOG_WARN, "rpc",
		   "dropped a oneway call to method %u of interface %08x (schema %u.%u): %s "
		   "(%llu oneway calls dropped so far, %llu of them not logged since the last line)",
		   h->method, h->interface_id, h->schema_major, h->schema_minor,
		   why ? why : thoth_strerror(status), (unsigned long long)n, (unsigned long long)unlogged);
	return 0;
}

/*
 * Is MSG (LEN bytes, the peer's) a plain request for IFACE
 * (thoth__plain_request, thoth/rpc.h)?  Then thoth_server_dispatch's checks
 * up to the method lookup all pass, and it reads the header's words
 * straight into the answer's header instead of decoding it into one struct
 * and copying that into another.  The same four-word test as the client's
 * answer (thoth_client_commit).  Anything else (oneway, a bad header,
 * another interface or major) goes the full way, which says what it is:
 * this accepts only what that accepts, and checks no less.  HD is the
 * caller's own copy of the header, never the message itself.
 */
static inline bool plain_request(const thoth_interface_info_t *iface, const uint8_t *hd, size_t len)
{
#ifdef THOTH_RPC_FULL_WAY_ONLY
	return false;   /* tests/contract/rpc_full_way.c: the full way, to compare with */
#endif
	return len >= THOTH_WIRE_HEADER_SIZE && thoth__plain_request(hd, len, iface->id, iface->major);
}

/* An interface's own dispatcher, where its code has one (thothc emits it:
 * thoth_interface_info_t.dispatch); it gives what it does not serve itself
 * to thoth__server_dispatch_table. */
THOTH_HOT_SERVE int thoth_server_dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
			  const void *handlers, void *self,
			  const uint8_t *msg, size_t len, thoth_server_io_t *io)
{
#ifndef THOTH_RPC_FULL_WAY_ONLY
	/* Exactly our revision, not >= 1: a hand-built info in automatic
	 * storage compiled against an older header may carry a stray byte
	 * where `revision` now is, and nothing past it. */
	if (iface->revision == THOTH_INTERFACE_INFO_REV && iface->dispatch)
		return iface->dispatch(iface, invoke, handlers, self, msg, len, io);
#endif
	return thoth__server_dispatch_table(iface, invoke, handlers, self, msg, len, io);
}

int thoth__server_dispatch_table(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,
				 const void *handlers, void *self, const uint8_t *msg, size_t len,
				 thoth_server_io_t *io)
{
	io->out_len = 0;
	/* rh: the answer's header (the request's, with our schema version
	 * and features); h: what the checks below read of the request's. */
	thoth_msg_header_t h, rh;
	bool oneway;
	int r;
#define FAIL(status, text) (oneway ? oneway_dropped(&h, (status), (text)) : \
				   respond_error(io, &rh, 0, (status), (text)))
	/* The header read once, into our own copy (plain_request says why). */
	uint8_t hd[THOTH_WIRE_HEADER_SIZE];
	if (len >= THOTH_WIRE_HEADER_SIZE)
		memcpy(hd, msg, sizeof hd);
	if (len >= THOTH_WIRE_HEADER_SIZE && plain_request(iface, hd, len)) {
		/* Every check of the full way below passed in four tests;
		 * the header is read straight into the answer's. */
		oneway = false;
		thoth__plain_answer_header(&rh, hd, iface->id, iface->major, iface->minor, io->features);
		h.method = rh.method;
		h.body_len = rh.body_len;
		h.features = thoth_le64(hd + 16);
	} else {
		h = (thoth_msg_header_t){ 0 };
		r = thoth_wire_header_decode(msg, len, &h);
		if (r)
			return r;
		if (!(h.flags & THOTH_MSG_REQUEST))
			return THOTH_E_PROTOCOL;
		oneway = h.flags & THOTH_MSG_ONEWAY;
		rh = h;
		rh.schema_major = iface->major;
		rh.schema_minor = iface->minor;
		rh.features = io->features;
		if (h.interface_id != iface->id)
			return FAIL(THOTH_E_UNKNOWN_IFACE, thoth_strerror(THOTH_E_UNKNOWN_IFACE));
		if (h.schema_major != iface->major)
			return FAIL(THOTH_E_BAD_VERSION, thoth_strerror(THOTH_E_BAD_VERSION));
	}
	const thoth_method_info_t *m = method_of(iface, h.method);
	if (!m)
		return FAIL(THOTH_E_UNKNOWN_METHOD, thoth_strerror(THOTH_E_UNKNOWN_METHOD));
	if (m->oneway != oneway)
		return FAIL(THOTH_E_PROTOCOL, "oneway flag does not match the method");
	if (m->requires_bit >= 0 &&
	    !(h.features & io->features & (1ull << m->requires_bit)))
		return FAIL(THOTH_E_NO_FEATURE, thoth_strerror(THOTH_E_NO_FEATURE));

	/* The request and response structs: on this stack when they are small
	 * (most are), leaving the whole arena to the decoder and the handler
	 * and saving two allocations per call; the request is not zeroed here
	 * because every generated decoder zeroes its struct before reading a
	 * field (the handler runs only when decoding succeeded). */
	uint64_t req_small[THOTH_DISPATCH_SMALL / 8], resp_small[THOTH_DISPATCH_SMALL / 8];
	void *req, *resp;
	if (m->req_struct_size <= sizeof req_small && m->resp_struct_size <= sizeof resp_small) {
		req = req_small;
		resp = resp_small;
		/* Most responses are a few words: a fixed-size clear is two
		 * vector stores where a library call with a variable size is
		 * ~25 instructions. */
		if (m->resp_struct_size <= 64)
			memset(resp, 0, 64);
		else
			memset(resp, 0, m->resp_struct_size);
	} else {
		req = thoth_arena_alloc(io->arena, m->req_struct_size ? m->req_struct_size : 1);
		resp = thoth_arena_alloc(io->arena, m->resp_struct_size ? m->resp_struct_size : 1);
		if (!req || !resp)
			return FAIL(THOTH_E_NO_SPACE, "server scratch arena exhausted");
	}
	if (THOTH_METHOD_HAS(m, req_decode_body)) {
		r = m->req_decode_body(msg + THOTH_WIRE_HEADER_SIZE, h.body_len, io->arena, req);
	} else {
		thoth_decoder_t d;
		thoth_decoder_init(&d, msg + THOTH_WIRE_HEADER_SIZE, h.body_len, io->arena);
		r = m->req_decode(&d, req);
	}
	if (r)
		return oneway ? oneway_dropped(&h, r, thoth_strerror(r))
			      : thoth__server_fail(m, io, &rh, THOTH__FAIL_DECODE, r);

	int status = invoke(handlers, self, m, req, resp, io->arena);
	if (oneway)
		return status == THOTH__E_NO_HANDLER
			       ? oneway_dropped(&h, THOTH_E_UNKNOWN_METHOD, "no handler for the method")
			       : 0;
	if (status)
		return thoth__server_fail(m, io, &rh, THOTH__FAIL_STATUS, status);

	r = thoth__server_out(io, THOTH_WIRE_HEADER_SIZE + m->resp_size(resp));
	if (r)
		return thoth__server_fail(m, io, &rh, THOTH__FAIL_OUT, r);
	rh.flags = THOTH_MSG_RESPONSE;
	if (THOTH_METHOD_HAS(m, resp_encode_whole) && m->interface_id == rh.interface_id && m->major == rh.schema_major &&
	    m->minor == rh.schema_minor) {
		/* Its header words are rh's (the ordinal was matched above; a
		 * table listing another interface's method takes the long
		 * way); rh's features, trace and request id are passed. */
		r = m->resp_encode_whole(io->out, io->cap, &rh, resp, &io->out_len);
	} else {
		thoth_builder_t b;
		thoth_builder_init(&b, io->out, io->cap);
		r = m->resp_encode(&b, resp);
		if (!r)
			r = thoth_builder_finish(&b, &rh, &io->out_len);
	}
	if (r)
		return thoth__server_fail(m, io, &rh, THOTH__FAIL_ENCODE, r);
	return 0;
#undef FAIL
}
