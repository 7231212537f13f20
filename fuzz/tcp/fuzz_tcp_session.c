/*
 * fuzz_tcp_session.c - what an unauthenticated (or authenticated) peer of
 * a TCP server can send: the bytes go through the session exactly as the
 * server's reads do (kernel/ipc/tcp_session.c), split into reads at the
 * boundaries the first input byte chooses, serving thoth.echo.Echo.
 *
 * The token is fixed ("fuzz-token-0123456789"), so the fuzzer can find the
 * accepted hello (the seeds hold one) and go on to requests.  Must hold:
 * no crash, no leak, no read out of bounds; a session that returns an
 * error or REPLY_CLOSE is not stepped again (the server closes it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "echo.thoth.h"
#include "tcp_internal.h"

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = 1;
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char token[] = "fuzz-token-0123456789";
	thoth__tcp_service_t svc = {
		.iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke, .handlers = &handlers,
		.max_message = 64u << 10, .token_len = sizeof token - 1,
	};
	memcpy(svc.token, token, sizeof token - 1);
	if (thoth__tcp_service_init(&svc))
		return 0;
	thoth__tcp_session_t s;
	if (thoth__tcp_session_init(&s, &svc)) {
		thoth__tcp_service_free(&svc);
		return 0;
	}
	size_t chunk = size ? (size_t)(data[0] % 64) + 1 : 1;
	size_t off = size ? 1 : 0;
	int r = 0;
	while (off < size && r >= 0 && r != THOTH__TCP_REPLY_CLOSE) {
		size_t n = size - off < chunk ? size - off : chunk;
		if (thoth_stream_feed(&s.reader, data + off, n))
			break;
		off += n;
		for (;;) {
			const uint8_t *out;
			size_t len;
			r = thoth__tcp_session_step(&s, &out, &len);
			if (r <= 0 || r == THOTH__TCP_REPLY_CLOSE)
				break;
			if (len) {
				/* What would be sent must be a whole, valid message. */
				thoth_msg_header_t h;
				if (thoth_wire_header_decode(out, len, &h))
					abort();
			}
		}
	}
	thoth__tcp_session_free(&s);
	thoth__tcp_service_free(&svc);
	return 0;
}
