/*
 * test_stream.c - thoth messages over stream sockets: reassembly, early
 * header checks, end of stream, and the blocking client transport.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "stream_buf.h"
#include "thoth/stream.h"

static size_t make(uint64_t *buf, uint16_t flags, uint32_t request_id, uint32_t body_len)
{
	thoth_msg_header_t h = { .flags = flags, .request_id = request_id, .body_len = body_len,
				 .interface_id = 1, .method = 2 };
	memset(buf, 0, THOTH_WIRE_HEADER_SIZE + body_len);
	thoth_wire_header_encode((uint8_t *)buf, &h);
	for (uint32_t i = 0; i < body_len; i++)
		((uint8_t *)buf)[THOTH_WIRE_HEADER_SIZE + i] = (uint8_t)i;
	return THOTH_WIRE_HEADER_SIZE + body_len;
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_message_split_byte_by_byte_is_reassembled(void **state)
{
	int sv[2];
	pair(sv);
	static uint64_t m[64];
	size_t len = make(m, THOTH_MSG_REQUEST, 1, 64);
	thoth_stream_reader_t r;
	assert_int_equal(thoth_stream_reader_init(&r, 1024), 0);
	const uint8_t *msg;
	size_t got;
	for (size_t i = 0; i < len; i++) {
		assert_int_equal(thoth_stream_next(&r, &msg, &got), 0);
		assert_int_equal(write(sv[0], (uint8_t *)m + i, 1), 1);
		assert_int_equal(thoth_stream_fill(&r, sv[1]), 0);
	}
	assert_int_equal(thoth_stream_next(&r, &msg, &got), 1);
	assert_int_equal(got, len);
	assert_memory_equal(msg, m, len);
	assert_int_equal((uintptr_t)msg % 8, 0);
	thoth_stream_consume(&r);
	assert_int_equal(thoth_stream_next(&r, &msg, &got), 0);
	thoth_stream_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

static void test_two_messages_in_one_write_come_out_one_by_one(void **state)
{
	int sv[2];
	pair(sv);
	static uint64_t m[64];
	size_t a = make(m, THOTH_MSG_REQUEST, 1, 8);
	size_t b = make(m + a / 8, THOTH_MSG_REQUEST, 2, 16);
	assert_int_equal(write(sv[0], m, a + b), (ssize_t)(a + b));
	thoth_stream_reader_t r;
	assert_int_equal(thoth_stream_reader_init(&r, 1024), 0);
	assert_int_equal(thoth_stream_fill(&r, sv[1]), 0);
	const uint8_t *msg;
	size_t got;
	assert_int_equal(thoth_stream_next(&r, &msg, &got), 1);
	assert_int_equal(thoth_le32(msg + 32), 1);
	thoth_stream_consume(&r);
	assert_int_equal(thoth_stream_next(&r, &msg, &got), 1);
	assert_int_equal(thoth_le32(msg + 32), 2);
	assert_int_equal(got, b);
	thoth_stream_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

static void test_oversized_body_is_refused_from_the_header_alone(void **state)
{
	int sv[2];
	pair(sv);
	static uint64_t m[8];
	make(m, THOTH_MSG_REQUEST, 1, 0);
	thoth_st32((uint8_t *)m + 36, 200u << 20);      /* announces 200 MiB */
	assert_int_equal(write(sv[0], m, THOTH_WIRE_HEADER_SIZE), THOTH_WIRE_HEADER_SIZE);
	thoth_stream_reader_t r;
	assert_int_equal(thoth_stream_reader_init(&r, 1 << 20), 0);
	assert_int_equal(thoth_stream_fill(&r, sv[1]), 0);
	const uint8_t *msg;
	size_t got;
	assert_int_equal(thoth_stream_next(&r, &msg, &got), THOTH_E_TOO_LARGE);
	assert_true(r.cap < (1u << 20));                /* nothing was allocated for it */
	thoth_stream_reader_free(&r);
	close(sv[0]);
	close(sv[1]);
}

static void test_garbage_is_bad_magic_and_eof_is_peer_gone(void **state)
{
	int sv[2];
	pair(sv);
	char junk[64];
	memset(junk, 'j', sizeof junk);
	assert_int_equal(write(sv[0], junk, sizeof junk), (ssize_t)sizeof junk);
	close(sv[0]);
	thoth_stream_reader_t r;
	assert_int_equal(thoth_stream_reader_init(&r, 1024), 0);
	assert_int_equal(thoth_stream_fill(&r, sv[1]), 0);
	const uint8_t *msg;
	size_t got;
	assert_int_equal(thoth_stream_next(&r, &msg, &got), THOTH_E_BAD_MAGIC);
	r.len = 0;
	assert_int_equal(thoth_stream_fill(&r, sv[1]), THOTH_E_PEER_GONE);
	thoth_stream_reader_free(&r);
	close(sv[1]);
}

/* A server thread: answers each request with a response (same request id),
 * but first pushes one event message; requests with method 99 get no answer. */
static void *server(void *arg)
{
	int fd = *(int *)arg;
	thoth_stream_reader_t r;
	thoth_stream_reader_init(&r, 1 << 20);
	static uint64_t out[64];
	for (;;) {
		const uint8_t *msg;
		size_t len;
		int n;
		while ((n = thoth_stream_next(&r, &msg, &len)) == 0) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			poll(&pfd, 1, -1);
			if (thoth_stream_fill(&r, fd) < 0)
				goto done;
		}
		if (n < 0)
			break;
		uint32_t id = thoth_le32(msg + 32), method = thoth_le32(msg + 12);
		thoth_stream_consume(&r);
		if (method == 99)
			continue;
		size_t e = make(out, THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY, 0, 8);
		thoth_stream_write_all(fd, out, e);
		size_t a = make(out, THOTH_MSG_RESPONSE, id, 16);
		thoth_stream_write_all(fd, out, a);
	}
done:
	thoth_stream_reader_free(&r);
	close(fd);
	return NULL;
}

static int events;
static void on_event(void *arg, const uint8_t *msg, size_t len)
{
	events++;
}

static void test_client_call_matches_response_and_delivers_events(void **state)
{
	int sv[2];
	pair(sv);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, server, &sv[1]), 0);
	thoth_sock_client_t c;
	assert_int_equal(thoth_sock_client_init(&c, sv[0], 5000), 0);
	c.on_event = on_event;
	events = 0;
	for (uint32_t id = 1; id <= 3; id++) {
		uint8_t *buf;
		assert_int_equal(thoth_sock_transport.get_buffer(&c, 48, &buf), 0);
		size_t len = make((uint64_t *)buf, THOTH_MSG_REQUEST, id, 8);
		thoth_msg_t resp;
		assert_int_equal(thoth_sock_transport.call(&c, buf, len, &resp), 0);
		assert_int_equal(thoth_le32(resp.data + 32), id);
		assert_int_equal(resp.len, THOTH_WIRE_HEADER_SIZE + 16);
		thoth_sock_transport.release(&c, &resp);
	}
	assert_int_equal(events, 3);
	/* a request the server ignores times out */
	c.timeout_ms = 50;
	uint8_t *buf;
	assert_int_equal(thoth_sock_transport.get_buffer(&c, 48, &buf), 0);
	size_t len = make((uint64_t *)buf, THOTH_MSG_REQUEST, 9, 8);
	thoth_st32(buf + 12, 99);
	thoth_msg_t resp;
	assert_int_equal(thoth_sock_transport.call(&c, buf, len, &resp), THOTH_E_TIMEDOUT);
	thoth_sock_client_close(&c);
	pthread_join(t, NULL);
}

/* poll_event with timeout 0 is what a loop's fd-readable callback calls: it
 * must take what the socket already holds (two events queued, one larger
 * than a read chunk), not time out before reading; then, with nothing or
 * only part of a message there, return 0 at once; end of stream is an error. */
static void test_poll_event_with_zero_timeout_reads_what_is_queued(void **state)
{
	int sv[2];
	pair(sv);
	thoth_sock_client_t c;
	assert_int_equal(thoth_sock_client_init(&c, sv[0], 5000), 0);
	c.on_event = on_event;
	events = 0;
	static uint64_t m[2048];
	size_t len = make(m, THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY, 0, 8);
	assert_int_equal(thoth_stream_write_all(sv[1], m, len), 0);
	len = make(m, THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY, 0, 10000);
	assert_int_equal(thoth_stream_write_all(sv[1], m, len), 0);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), 1);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), 1);
	assert_int_equal(events, 2);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), 0);
	len = make(m, THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY, 0, 8);
	assert_int_equal(thoth_stream_write_all(sv[1], m, len - 3), 0);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), 0);
	assert_int_equal(thoth_stream_write_all(sv[1], (uint8_t *)m + len - 3, 3), 0);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), 1);
	assert_int_equal(events, 3);
	close(sv[1]);
	assert_int_equal(thoth_sock_client_poll_event(&c, 0), THOTH_E_PEER_GONE);
	thoth_sock_client_close(&c);
}

/* The output queue servers keep per client (stream_buf.h): what a full
 * socket does not take waits, in order, and goes out as the peer reads;
 * a lost peer is an error, with errno from the send. */
static void test_outq_keeps_what_a_full_socket_does_not_take(void **state)
{
	int sv[2];
	pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
	enum { N = 64, CHUNK = 3000 };
	static uint8_t sent[N * CHUNK], got[N * CHUNK];
	for (size_t i = 0; i < sizeof sent; i++)
		sent[i] = (uint8_t)(i * 7 + i / 251);
	thoth_outq_t q = { 0 };
	for (int i = 0; i < N; i++)
		assert_int_equal(thoth__outq_send(&q, sv[0], sent + i * CHUNK, CHUNK), 0);
	assert_true(thoth__outq_pending(&q) > 0);       /* the socket is full */
	size_t have = 0;
	while (have < sizeof got) {
		struct pollfd p = { .fd = sv[1], .events = POLLIN };
		assert_int_equal(poll(&p, 1, 5000), 1);
		ssize_t n = read(sv[1], got + have, sizeof got - have);
		assert_true(n > 0);
		have += (size_t)n;
		assert_int_equal(thoth__outq_flush(&q, sv[0]), 0);
	}
	assert_int_equal(thoth__outq_pending(&q), 0);
	assert_memory_equal(got, sent, sizeof sent);
	close(sv[1]);
	assert_int_equal(thoth__outq_send(&q, sv[0], sent, 10), THOTH_E_IO);
	assert_true(errno == EPIPE || errno == ECONNRESET);
	thoth__outq_free(&q);
	close(sv[0]);

	/* The client transports' message buffer: 8-aligned, grown on demand. */
	uint8_t *buf = NULL;
	size_t cap = 0;
	assert_int_equal(thoth__msgbuf_reserve(&buf, &cap, 100), 0);
	assert_true(cap >= 100 && (uintptr_t)buf % 8 == 0);
	assert_int_equal(thoth__msgbuf_reserve(&buf, &cap, 50), 0);
	assert_true(cap >= 100);
	assert_int_equal(thoth__msgbuf_reserve(&buf, &cap, 10000), 0);
	assert_true(cap >= 10000 && (uintptr_t)buf % 8 == 0);
	free(buf);
}

static void test_connect_to_missing_socket_says_not_running(void **state)
{
	thoth_sock_client_t c;
	assert_int_equal(thoth_sock_client_connect(&c, "/nonexistent/thoth/ctl.sock", 100),
			 THOTH_E_NOT_RUNNING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_split_byte_by_byte_is_reassembled),
		cmocka_unit_test(test_two_messages_in_one_write_come_out_one_by_one),
		cmocka_unit_test(test_oversized_body_is_refused_from_the_header_alone),
		cmocka_unit_test(test_garbage_is_bad_magic_and_eof_is_peer_gone),
		cmocka_unit_test(test_client_call_matches_response_and_delivers_events),
		cmocka_unit_test(test_poll_event_with_zero_timeout_reads_what_is_queued),
		cmocka_unit_test(test_outq_keeps_what_a_full_socket_does_not_take),
		cmocka_unit_test(test_connect_to_missing_socket_says_not_running),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
