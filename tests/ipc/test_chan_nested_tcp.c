/*
 * test_chan_nested_tcp - a channel handler that serves a TCP session's
 * request in turn (kernel/ipc/chan_dispatch.h).
 *
 * While the TCP request is dispatched, the channel's "who is dispatching"
 * must not answer (include/thoth/caller.h): a governed TCP service nested
 * so would otherwise credit the channel's client and look at the channel
 * server's rings (docs/PM.md "Seeing the rings", "Whose rings").  Around
 * the nested dispatch the channel's answers are the channel's.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "echo.thoth.h"
#include "tcp.thoth.h"
#include "tcp_internal.h"
#include "thoth/caller.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "../common/tmpdir.h"

static char dir[TEST_SOCK_DIR_CAP("/echo.sock")], sock[128];
static _Atomic int ready;
static _Atomic int answered;    /* publishes seen to main (the rings' order is not TSan's) */

/* What each handler saw (the loop thread writes, main reads after the call). */
static struct {
	bool outer_before, outer_after;         /* dispatcher set around the nested dispatch */
	int outer_caller;
	bool inner_ran, inner_dispatcher;       /* inside the TCP request's handler */
	int inner_caller;
	uint64_t inner_sent;
	int inner_sent_r;
	int steps_ok;
} seen;

static int inner_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		      thoth_arena_t *arena)
{
	thoth_chan_caller_t who;
	seen.inner_ran = true;
	seen.inner_dispatcher = thoth_chan_server_dispatcher() != NULL;
	seen.inner_caller = thoth_chan_server_caller(&who);
	seen.inner_sent_r = thoth_chan_server_sent(1, &seen.inner_sent);
	resp->data = req->data;
	return 0;
}

static int no_stats(void *self, const thoth_echo_Echo_stats_req_t *req, thoth_echo_Echo_stats_resp_t *resp,
		    thoth_arena_t *arena)
{
	return 0;
}

static const thoth_echo_Echo_handlers_t inner = { .echo = inner_echo, .stats = no_stats };

/* One TCP session, no socket: the hello, then one echo request. */
static void serve_tcp_request(void)
{
	static const char token[] = "nested-token-0123456789";
	thoth__tcp_service_t svc = {
		.iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke, .handlers = &inner,
		.max_message = 64u << 10, .token_len = sizeof token - 1,
	};
	memcpy(svc.token, token, sizeof token - 1);
	if (thoth__tcp_service_init(&svc))
		return;
	thoth__tcp_session_t s;
	if (thoth__tcp_session_init(&s, &svc)) {
		thoth__tcp_service_free(&svc);
		return;
	}
	const thoth_interface_info_t *ifc = &thoth_echo_Echo_info;
	thoth_tcp_Tcp_hello_req_t hello = {
		.token = { .ptr = (const uint8_t *)token, .len = sizeof token - 1 },
		.package = thoth_str(ifc->package), .interface = thoth_str(ifc->name),
		.interface_id = ifc->id, .major = ifc->major, .minor = ifc->minor,
		.schema_hash = ifc->schema_hash,
	};
	uint8_t payload[4] = { 1, 2, 3, 4 };
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = sizeof payload } };
	_Alignas(8) uint8_t buf[2048];
	thoth_msg_header_t m1 = { .request_id = 1 }, m2 = { .request_id = 2 };
	size_t len = 0;
	const uint8_t *out;
	size_t out_len;
	if (!thoth_tcp_Tcp_hello_req_encode_msg(buf, sizeof buf, &m1, &hello, &len) &&
	    !thoth_stream_feed(&s.reader, buf, len) &&
	    thoth__tcp_session_step(&s, &out, &out_len) == THOTH__TCP_REPLY && s.authenticated)
		seen.steps_ok++;
	if (!thoth_echo_Echo_echo_req_encode_msg(buf, sizeof buf, &m2, &req, &len) &&
	    !thoth_stream_feed(&s.reader, buf, len) &&
	    thoth__tcp_session_step(&s, &out, &out_len) == THOTH__TCP_REPLY && out_len)
		seen.steps_ok++;
	thoth__tcp_session_free(&s);
	thoth__tcp_service_free(&svc);
}

static int outer_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		      thoth_arena_t *arena)
{
	thoth_chan_caller_t who;
	seen.outer_before = thoth_chan_server_dispatcher() != NULL;
	serve_tcp_request();
	seen.outer_after = thoth_chan_server_dispatcher() != NULL;
	seen.outer_caller = thoth_chan_server_caller(&who);
	atomic_store(&answered, 1);
	resp->data = req->data;
	return 0;
}

static const thoth_echo_Echo_handlers_t outer = { .echo = outer_echo, .stats = no_stats };

static void *serve(void *arg)
{
	thoth_loop_t *loop;
	thoth_chan_server_t *srv;
	thoth_chan_server_config_t cfg = {
		.path = sock, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &outer, .wait = THOTH_CHAN_SLEEP,
	};
	char why[256];
	if (thoth_loop_new(&loop) || thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why)) {
		atomic_store(&ready, -1);
		return NULL;
	}
	atomic_store(&ready, 1);
	thoth_loop_run(loop);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	return NULL;
}

static void test_a_tcp_request_served_inside_a_channel_handler_is_not_the_channels(void **state)
{
	assert_true(test_sock_template(dir, sizeof dir, "thoth-nested"));  /* short if TMPDIR is long */
	assert_non_null(mkdtemp(dir));
	int n = snprintf(sock, sizeof sock, "%s/echo.sock", dir);
	assert_true(n > 0 && (size_t)n < sizeof sock);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, serve, NULL), 0);
	while (!atomic_load(&ready))
		usleep(1000);
	assert_int_equal(atomic_load(&ready), 1);
	thoth_chan_config_t ccfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP, .timeout_ms = 10000 };
	thoth_chan_t *ch;
	char why[256];
	assert_int_equal(thoth_chan_connect(sock, &ccfg, &ch, why, sizeof why), 0);
	uint8_t payload[8] = { 0 };
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = sizeof payload } };
	thoth_echo_Echo_echo_resp_t resp;
	assert_int_equal(thoth_echo_Echo_echo(thoth_chan_client(ch), &req, &resp, NULL), 0);
	assert_int_equal(atomic_load(&answered), 1);
	assert_int_equal(seen.steps_ok, 2);             /* the hello and the request answered */
	assert_true(seen.inner_ran);
	assert_true(seen.outer_before);
	assert_false(seen.inner_dispatcher);            /* not the channel server's request */
	assert_int_equal(seen.inner_caller, THOTH_E_NOT_FOUND);
	assert_int_equal(seen.inner_sent_r, THOTH_E_NOT_FOUND);
	assert_true(seen.outer_after);                  /* the channel's again */
	assert_int_equal(seen.outer_caller, 0);
	thoth_chan_close(ch);
	pthread_detach(t);      /* its loop runs until the process ends */
	char rm[300];
	snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
	assert_int_equal(system(rm), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_tcp_request_served_inside_a_channel_handler_is_not_the_channels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
