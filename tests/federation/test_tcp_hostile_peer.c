/*
 * test_tcp_hostile_peer.c - a TCP server that lies to the client in text
 * (thoth/tcp.h, kernel/ipc/tcp_client.c, rpc.c).
 *
 * The peer answers the client's hello with a refusal whose reason holds a
 * terminal escape ("\x1b[2J"), CR, LF (a forged line), a C1 CSI, DEL and
 * a backslash, or accepts and answers the first call with an error frame
 * whose message holds the same.  What the client hands its caller (the
 * `why` of thoth_tcp_connect_with, the client's remote_message, both
 * printed by thothctl and logged by services) must hold every such byte
 * written \xHH (thoth__why_text), be bounded by its buffer, and end on a
 * whole escape.  A NUL or bytes of no UTF-8 sequence in either text make
 * the frame undecodable: the client refuses it as nonsense and passes on
 * none of its bytes.  The peer is a thread on a loopback socket of port 0
 * that writes the frames itself, so it can say what no honest server
 * would (the encoder refuses a NUL and invalid UTF-8: they are patched
 * into the encoded bytes).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "echo.thoth.h"
#include "tcp.thoth.h"
#include "thoth/rpc.h"
#include "thoth/tcp.h"
#include "thoth/wire.h"

static const char TOKEN[] = "0123456789abcdef0123456789abcdef";

/* What a hostile peer says: every kind of byte a terminal or a log reader
 * takes as more than text, all of it valid UTF-8 (the wire's strings must
 * be), and a literal "\x1b" that must not read as an escaped ESC. */
static const char EVIL[] = "evil\x1b[2J\r\nthothd[1] error: forged line \xc2\x9b" "31m del\x7f end \\x1b";
#define EVIL_LEN (sizeof EVIL - 1)

/* Text the wire refuses: "@@" becomes a NUL and a byte of no UTF-8
 * sequence once encoded (patch). */
static const char BAD[] = "bad @@ text\x1b[2J";

typedef enum { REFUSE, REFUSE_LONG, REFUSE_BAD, REMOTE_ERROR, REMOTE_BAD } script_t;

typedef struct peer {
	int listen_fd;
	int port;
	script_t script;
	pthread_t thread;
} peer_t;

/* One whole message from FD into BUF (CAP bytes); its length, or 0 when
 * the client went away or it does not fit. */
static size_t read_msg(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0, need = THOTH_WIRE_HEADER_SIZE;
	while (got < need) {
		ssize_t n = recv(fd, buf + got, need - got, 0);
		if (n <= 0)
			return 0;
		got += (size_t)n;
		if (got == THOTH_WIRE_HEADER_SIZE && need == THOTH_WIRE_HEADER_SIZE) {
			need += thoth_le32(buf + 36);
			if (need > cap)
				return 0;
		}
	}
	return got;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* TEXT (LEN bytes) N times over into OUT: a reason far past any buffer. */
static size_t repeat(char *out, size_t cap, const char *text, size_t len, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + len <= cap; i++, o += len)
		memcpy(out + o, text, len);
	return o;
}

/* BAD's "@@" in the encoded MSG (LEN bytes) made a NUL and 0xff. */
static void patch(uint8_t *msg, size_t len)
{
	uint8_t *at = memmem(msg, len, "@@", 2);
	if (at) {
		at[0] = 0;
		at[1] = 0xff;
	}
}

static void *peer_main(void *arg)
{
	peer_t *p = arg;
	int fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return NULL;
	static uint64_t in[1024], out[2048];
	static char reason[8192];
	size_t len = read_msg(fd, (uint8_t *)in, sizeof in);
	if (!len)
		goto done;
	thoth_msg_header_t meta = { .request_id = thoth_le32((uint8_t *)in + 32) };
	thoth_tcp_Tcp_hello_resp_t resp = { .major = thoth_echo_Echo_info.major };
	const char *text = EVIL;
	size_t tlen = EVIL_LEN;
	if (p->script == REFUSE_LONG) {
		text = reason;
		tlen = repeat(reason, sizeof reason, EVIL, EVIL_LEN, 12);     /* under 1 KiB: a hello answer's most */
	} else if (p->script == REFUSE_BAD) {
		text = BAD;
		tlen = sizeof BAD - 1;
	}
	if (p->script == REFUSE || p->script == REFUSE_LONG || p->script == REFUSE_BAD) {
		resp.status = THOTH_E_PERM;
		resp.reason = (thoth_str_t){ .ptr = text, .len = tlen };
	}
	size_t olen;
	if (thoth_tcp_Tcp_hello_resp_encode_msg(out, sizeof out, &meta, &resp, &olen))
		goto done;
	if (p->script == REFUSE_BAD)
		patch((uint8_t *)out, olen);
	send_all(fd, out, olen);
	if (p->script != REMOTE_ERROR && p->script != REMOTE_BAD)
		goto done;
	/* The first call, answered with an error frame holding EVIL ten
	 * times over (or BAD) as its message. */
	len = read_msg(fd, (uint8_t *)in, sizeof in);
	if (!len)
		goto done;
	thoth_msg_header_t h;
	if (thoth_wire_header_decode((uint8_t *)in, len, &h))
		goto done;
	h.flags = THOTH_MSG_RESPONSE | THOTH_MSG_ERROR;
	size_t rlen = p->script == REMOTE_BAD ? sizeof BAD - 1 : repeat(reason, sizeof reason, EVIL, EVIL_LEN, 10);
	if (p->script == REMOTE_BAD)
		memcpy(reason, BAD, rlen);
	thoth_builder_t b;
	thoth_builder_init(&b, out, sizeof out);
	uint32_t f;
	if (thoth_builder_frame(&b, 16, 3, &f))
		goto done;
	thoth_st32(thoth_builder_at(&b, f + 8), 7);
	thoth_st32(thoth_builder_at(&b, f + 12), (uint32_t)THOTH_E_PERM);
	if (thoth_builder_str(&b, f + 16, (thoth_str_t){ .ptr = reason, .len = rlen }) ||
	    thoth_builder_finish(&b, &h, &olen))
		goto done;
	if (p->script == REMOTE_BAD)
		patch((uint8_t *)out, olen);
	send_all(fd, out, olen);
	/* Held open until the client closes: its error comes from the frame,
	 * not from a connection gone. */
	char sink[256];
	while (recv(fd, sink, sizeof sink, 0) > 0)
		;
done:
	close(fd);
	return NULL;
}

static void peer_start(peer_t *p, script_t script)
{
	p->script = script;
	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->listen_fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(p->listen_fd, 4), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&sa, &sl), 0);
	p->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_stop(peer_t *p)
{
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
}

static int connect_to(peer_t *p, thoth_tcp_conn_t **c, char *why, size_t why_len)
{
	char addr[64];
	snprintf(addr, sizeof addr, "tcp:127.0.0.1:%d", p->port);
	thoth_tcp_config_t cfg = { .iface = &thoth_echo_Echo_info, .token = (const uint8_t *)TOKEN,
				   .token_len = strlen(TOKEN) };
	int r = thoth_tcp_connect_with(addr, &cfg, 3000, c, why, why_len);
	print_message("connect: %s: %s\n", thoth_errname(r), why);
	return r;
}

/* TEXT (a C string of a buffer of CAP bytes) is safe to print: no byte
 * below 0x20, no DEL, no byte past 0x7f (EVIL's only non-ASCII character
 * is a C1 control, which must have been escaped), shorter than CAP, and
 * every backslash starting a whole escape. */
static void assert_printable(const char *text, size_t cap)
{
	size_t len = strlen(text);
	assert_true(len < cap);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch < 0x20 || ch >= 0x7f)
			fail_msg("byte %zu of \"%s\" is 0x%02x: a peer's control or invalid byte got through",
				 i, text, ch);
	}
	/* Escapes are whole units: \\ or \xHH, never cut. */
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '\\')
			continue;
		if (text[i + 1] == '\\')
			i++;
		else if (text[i + 1] == 'x' && isxdigit((unsigned char)text[i + 2]) &&
			 isxdigit((unsigned char)text[i + 3]))
			i += 3;
		else
			fail_msg("\"%s\" holds half an escape at byte %zu", text, i);
	}
}

/* EVIL as the client must pass it on. */
#define EVIL_SAID "evil\\x1b[2J\\x0d\\x0athothd[1] error: forged line \\xc2\\x9b31m del\\x7f end \\\\x1b"

/* No byte of TEXT (CAP bytes) came from BAD's payload. */
static void assert_none_of_bad(const char *text, size_t cap)
{
	assert_printable(text, cap);
	assert_null(strstr(text, "bad "));
	assert_null(strstr(text, "text"));
}

/* The client's connection to a peer of SCRIPT refused with ERR; its why
 * (CAP bytes) into WHY, checked printable. */
static void refused_by(script_t script, int err, char *why, size_t cap)
{
	peer_t p;
	peer_start(&p, script);
	thoth_tcp_conn_t *c = NULL;
	assert_int_equal(connect_to(&p, &c, why, cap), err);
	assert_null(c);
	peer_stop(&p);
	assert_printable(why, cap);
}

static void test_a_refusal_reason_is_escaped_and_bounded(void **state)
{
	(void)state;
	char why[400];
	refused_by(REFUSE, THOTH_E_PERM, why, sizeof why);
	/* Every byte said, the backslash doubled. */
	assert_non_null(strstr(why, "refused us: " EVIL_SAID));
}

static void test_a_long_refusal_reason_is_cut_at_a_whole_escape(void **state)
{
	(void)state;
	char why[300];
	refused_by(REFUSE_LONG, THOTH_E_PERM, why, sizeof why);
	assert_non_null(strstr(why, "refused us: " EVIL_SAID "evil"));
}

static void test_a_refusal_with_a_nul_or_invalid_utf8_is_nonsense(void **state)
{
	(void)state;
	char why[300];
	refused_by(REFUSE_BAD, THOTH_E_PROTOCOL, why, sizeof why);
	assert_non_null(strstr(why, "answered the hello with nonsense"));
	assert_none_of_bad(why, sizeof why);
}

/* Connected to a peer of SCRIPT; the echo call's result, its client. */
static int call_once(peer_t *p, script_t script, thoth_tcp_conn_t **c)
{
	peer_start(p, script);
	char why[300];
	assert_int_equal(connect_to(p, c, why, sizeof why), 0);
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)"x", .len = 1 } };
	thoth_echo_Echo_echo_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	return thoth_echo_Echo_echo(thoth_tcp_client(*c), &req, &resp, &arena);
}

static void test_a_remote_error_message_is_escaped_and_bounded(void **state)
{
	(void)state;
	peer_t p;
	thoth_tcp_conn_t *c = NULL;
	assert_int_equal(call_once(&p, REMOTE_ERROR, &c), THOTH_E_REMOTE);
	thoth_client_t *cl = thoth_tcp_client(c);
	assert_int_equal(cl->remote_status, THOTH_E_PERM);
	print_message("remote_message: %s\n", cl->remote_message);
	assert_printable(cl->remote_message, sizeof cl->remote_message);
	assert_non_null(strstr(cl->remote_message, EVIL_SAID "evil"));
	thoth_tcp_close(c);
	peer_stop(&p);
}

static void test_a_remote_error_with_a_nul_or_invalid_utf8_is_refused(void **state)
{
	(void)state;
	peer_t p;
	thoth_tcp_conn_t *c = NULL;
	int r = call_once(&p, REMOTE_BAD, &c);
	print_message("call: %s\n", thoth_errname(r));
	assert_true(r == THOTH_E_BAD_NUL || r == THOTH_E_BAD_UTF8);
	assert_none_of_bad(thoth_tcp_client(c)->remote_message, sizeof thoth_tcp_client(c)->remote_message);
	thoth_tcp_close(c);
	peer_stop(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_refusal_reason_is_escaped_and_bounded),
		cmocka_unit_test(test_a_long_refusal_reason_is_cut_at_a_whole_escape),
		cmocka_unit_test(test_a_refusal_with_a_nul_or_invalid_utf8_is_nonsense),
		cmocka_unit_test(test_a_remote_error_message_is_escaped_and_bounded),
		cmocka_unit_test(test_a_remote_error_with_a_nul_or_invalid_utf8_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
