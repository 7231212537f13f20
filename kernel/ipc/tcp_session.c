/*
 * tcp_session.c - the server side of one TCP connection, without the
 * socket (tcp_internal.h): bytes in through the stream reader, one whole
 * message at a time out of thoth__tcp_session_step.
 *
 * Order of checks, each of which ends the connection when it fails:
 *  1. the header, as soon as its 40 bytes are there (stream.c): before the
 *     hello, a body above THOTH_TCP_HELLO_MAX_BODY is refused, after it a
 *     message above the service's max_message, so nothing oversized is ever
 *     buffered;
 *  2. the first message must be a Tcp.hello request that decodes;
 *  3. its token, compared in constant time with the service's (a refusal is
 *     answered - the peer learns "token refused", nothing more - then
 *     closed);
 *  4. its interface claim (thoth_contract_compatible, as a channel's);
 *  5. afterwards only requests: a response, or a request that does not
 *     decode, is answered if it can be and the connection closed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan_dispatch.h"
#include "stream_buf.h"
#include "tcp.thoth.h"
#include "tcp_internal.h"
#include "thoth/contract.h"
#include "thoth/error.h"

enum { ARENA_CAP = 64u << 10, OUT_MIN = 4096 };

int thoth__tcp_service_init(thoth__tcp_service_t *svc)
{
	svc->arena_cap = ARENA_CAP;
	svc->arena = aligned_alloc(8, ARENA_CAP);
	svc->out_cap = OUT_MIN;
	svc->out = aligned_alloc(8, OUT_MIN);
	if (!svc->arena || !svc->out) {
		thoth__tcp_service_free(svc);
		return THOTH_E_NOMEM;
	}
	return 0;
}

void thoth__tcp_service_free(thoth__tcp_service_t *svc)
{
	free(svc->arena);
	free(svc->out);
	svc->arena = NULL;
	svc->out = NULL;
	memset(svc->token, 0, sizeof svc->token);
}

/* The body a message may announce: tiny before the hello, so an
 * unauthenticated peer cannot make us buffer anything. */
static uint32_t body_limit(void *arg, const uint8_t *header)
{
	const thoth__tcp_session_t *s = arg;
	(void)header;
	if (!s->authenticated)
		return THOTH_TCP_HELLO_MAX_BODY;
	return s->svc->max_message - THOTH_WIRE_HEADER_SIZE;
}

int thoth__tcp_session_init(thoth__tcp_session_t *s, thoth__tcp_service_t *svc)
{
	memset(s, 0, sizeof *s);
	s->svc = svc;
	int r = thoth_stream_reader_init(&s->reader, svc->max_message - THOTH_WIRE_HEADER_SIZE);
	if (r)
		return r;
	s->reader.body_limit = body_limit;
	s->reader.limit_arg = s;
	s->reader.service_id = 0;
	return 0;
}

void thoth__tcp_session_free(thoth__tcp_session_t *s)
{
	thoth_stream_reader_free(&s->reader);
}

static int get_out(void *ctx, size_t len, uint8_t **buf)
{
	thoth__tcp_service_t *svc = ctx;
	int r = thoth__msgbuf_reserve(&svc->out, &svc->out_cap, thoth_wire_pad8(len));
	if (r)
		return r;
	*buf = svc->out;
	return 0;
}

/* Answer the hello with STATUS and REASON into the service's out buffer. */
static int hello_reply(thoth__tcp_session_t *s, const thoth_msg_header_t *rq, int32_t status,
		       const char *reason, const uint8_t **out, size_t *len)
{
	const thoth_interface_info_t *ifc = s->svc->iface;
	thoth_tcp_Tcp_hello_resp_t resp = {
		.status = status,
		.reason = thoth_str(reason),
		.major = ifc->major,
		.minor = ifc->minor,
		.features = status ? 0 : s->features,
		.max_message = s->svc->max_message,
	};
	thoth_msg_header_t meta = { .request_id = rq->request_id, .trace_id = rq->trace_id };
	int r = thoth__msgbuf_reserve(&s->svc->out, &s->svc->out_cap, 512 + strlen(reason));
	if (!r)
		r = thoth_tcp_Tcp_hello_resp_encode_msg(s->svc->out, s->svc->out_cap, &meta, &resp, len);
	if (r) {
		thoth__tcp_why(s->why, sizeof s->why, "cannot encode the hello's answer: %s", thoth_strerror(r));
		return r;
	}
	*out = s->svc->out;
	return status ? THOTH__TCP_REPLY_CLOSE : THOTH__TCP_REPLY;
}

static int handle_hello(thoth__tcp_session_t *s, const uint8_t *msg, size_t mlen, const uint8_t **out,
			size_t *len)
{
	thoth_msg_header_t h;
	memset(&h, 0, sizeof h);
	int r = thoth_wire_header_decode(msg, mlen, &h);
	if (r || !(h.flags & THOTH_MSG_REQUEST) || h.interface_id != THOTH_TCP_TCP_ID ||
	    h.method != THOTH_TCP_TCP_HELLO) {
		thoth__tcp_why(s->why, sizeof s->why, "first frame is not Tcp.hello (interface %08x method %u)",
			       h.interface_id, h.method);
		return THOTH_E_PROTOCOL;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, s->svc->arena, s->svc->arena_cap);
	thoth_tcp_Tcp_hello_req_t req;
	r = thoth_tcp_Tcp_hello_req_decode_msg(msg, mlen, &req, &arena);
	if (r) {
		thoth__tcp_why(s->why, sizeof s->why, "Tcp.hello does not decode: %s", thoth_strerror(r));
		return THOTH_E_PROTOCOL;
	}
	if (!thoth__tcp_token_equal(req.token.ptr, req.token.len, s->svc->token, s->svc->token_len)) {
		thoth__tcp_why(s->why, sizeof s->why, "token refused");
		return hello_reply(s, &h, THOTH_E_PERM, "token refused", out, len);
	}
	if (req.interface.len) {
		char pkg[128], name[128];
		snprintf(pkg, sizeof pkg, "%.*s", (int)req.package.len, req.package.ptr);
		snprintf(name, sizeof name, "%.*s", (int)req.interface.len, req.interface.ptr);
		thoth_contract_claim_t mine, theirs = {
			.package = pkg, .interface = name, .interface_id = req.interface_id,
			.major = req.major, .minor = req.minor, .schema_hash = req.schema_hash,
			.features = req.features,
		};
		thoth_contract_claim_init(&mine, s->svc->iface, s->svc->features);
		char why[200];
		r = thoth_contract_compatible(&mine, &theirs, why, sizeof why);
		if (r) {
			thoth__tcp_why(s->why, sizeof s->why, "contract refused: %s", why);
			return hello_reply(s, &h, r, why, out, len);
		}
	}
	s->features = req.features & s->svc->features;
	s->authenticated = true;
	return hello_reply(s, &h, 0, "", out, len);
}

static bool is_decode_error(int status)
{
	return status <= THOTH_E_TRUNCATED && status >= THOTH_E_BAD_NUL;
}

/* The status of the error response OUT holds (0: not an error response). */
static int response_status(const uint8_t *out, size_t len)
{
	if (len < THOTH_WIRE_HEADER_SIZE || !(thoth_le16(out + 6) & THOTH_MSG_ERROR))
		return 0;
	thoth_decoder_t dec;
	thoth_arena_t none;
	thoth_arena_init(&none, NULL, 0);
	thoth_decoder_init(&dec, out + THOTH_WIRE_HEADER_SIZE, (uint32_t)(len - THOTH_WIRE_HEADER_SIZE), &none);
	uint32_t code = 0;
	int32_t status = 0;
	thoth_str_t message;
	if (thoth_wire_decode_error(&dec, &code, &status, &message))
		return THOTH_E_PROTOCOL;
	return status;
}

int thoth__tcp_session_step(thoth__tcp_session_t *s, const uint8_t **out, size_t *len)
{
	const uint8_t *msg;
	size_t mlen;
	*len = 0;
	int r = thoth_stream_next(&s->reader, &msg, &mlen);
	if (r < 0) {
		thoth__tcp_why(s->why, sizeof s->why, "bad frame header: %s%s", thoth_strerror(r),
			       r == THOTH_E_TOO_LARGE ? (s->authenticated ? " (above the service's max_message)"
						       : " (larger than a hello may be)") : "");
		return r;
	}
	if (r == 0)
		return THOTH__TCP_NEED_MORE;
	if (!s->authenticated) {
		r = handle_hello(s, msg, mlen, out, len);
		thoth_stream_consume(&s->reader);
		return r;
	}
	if (!(thoth_le16(msg + 6) & THOTH_MSG_REQUEST)) {
		thoth__tcp_why(s->why, sizeof s->why, "sent a response (flags %#x) where requests belong",
			       thoth_le16(msg + 6));
		thoth_stream_consume(&s->reader);
		return THOTH_E_PROTOCOL;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, s->svc->arena, s->svc->arena_cap);
	thoth_server_io_t io = {
		.out = s->svc->out, .cap = s->svc->out_cap, .arena = &arena, .features = s->features,
		.get_out = get_out, .out_ctx = s->svc,
	};
	uint32_t iface = thoth_le32(msg + 8), method = thoth_le32(msg + 12);
	void *chan = thoth__chan_dispatch_hide();  /* not a channel's request (chan_dispatch.h) */
	r = thoth_server_dispatch(s->svc->iface, s->svc->invoke, s->svc->handlers, s->svc->self, msg, mlen, &io);
	thoth__chan_dispatch_restore(chan);
	thoth_stream_consume(&s->reader);
	if (r < 0) {
		thoth__tcp_why(s->why, sizeof s->why, "malformed request: %s", thoth_strerror(r));
		return r;
	}
	s->calls++;
	*out = io.out;
	*len = io.out_len;
	int status = response_status(io.out, io.out_len);
	if (is_decode_error(status)) {
		/* Answered (the client learns why), then closed: it speaks garbage. */
		thoth__tcp_why(s->why, sizeof s->why, "undecodable request (interface %08x method %u): %s",
			       iface, method, thoth_strerror(status));
		return THOTH__TCP_REPLY_CLOSE;
	}
	return THOTH__TCP_REPLY;
}
