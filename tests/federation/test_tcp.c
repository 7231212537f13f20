/*
 * test_tcp.c - the TCP transport between hosts (thoth/tcp.h), with a real
 * server process (tcp_service) on 127.0.0.1, port 0.
 *
 * Each test starts its own server with short deadlines, so that the
 * deadline tests wait a few hundred ms, never seconds; every wait is a
 * condition polled against a deadline.  A well-behaved client holds a
 * connection through each hostile scenario and must still be answered
 * afterwards: bad input closes THAT connection only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "echo.thoth.h"
#include "harness.h"
#include "registry.thoth.h"
#include "tcp.thoth.h"
#include "thoth/tcp.h"

static const char TOKEN[] = "0123456789abcdef0123456789abcdef";

typedef struct fixture {
	harness_t h;
	char token_file[128];
	char addr[THOTH_TCP_ADDR_MAX];
	pid_t server;
} fixture_t;

static void write_token(const char *path, const char *token, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, token, strlen(token)), (ssize_t)strlen(token));
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	chmod(path, mode);
}

static bool file_exists(void *arg)
{
	return access(arg, F_OK) == 0;
}

static bool log_says_refused(void *arg)
{
	return harness_file_contains(arg, "contract refused");
}

/* Start tcp_service with EXTRA options; F->addr gets its address. */
static void start_server(fixture_t *f, const char *const *extra)
{
	char addr_file[160];
	snprintf(addr_file, sizeof addr_file, "%s/tcp.addr", f->h.dir);
	const char *argv[24] = { TCP_SERVICE_PATH, "--token-file", f->token_file, "--addr-file", addr_file };
	int n = 5;
	for (; extra && *extra && n < 22; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	f->server = harness_spawn(&f->h, "tcp_service", argv);
	assert_true(f->server > 0);
	assert_true(harness_wait_until(file_exists, addr_file, 10000));
	FILE *fp = fopen(addr_file, "r");
	assert_non_null(fp);
	assert_non_null(fgets(f->addr, sizeof f->addr, fp));
	fclose(fp);
	f->addr[strcspn(f->addr, "\n")] = 0;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	if (!f || harness_setup(&f->h))
		return -1;
	snprintf(f->token_file, sizeof f->token_file, "%s/cluster.token", f->h.dir);
	write_token(f->token_file, TOKEN, 0600);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	harness_teardown(&f->h);
	free(f);
	return 0;
}

static thoth_tcp_conn_t *connect_ok(fixture_t *f)
{
	thoth_tcp_config_t cfg = { .iface = &thoth_echo_Echo_info, .token_file = f->token_file };
	thoth_tcp_conn_t *c = NULL;
	char why[300];
	int r = thoth_tcp_connect_with(f->addr, &cfg, 3000, &c, why, sizeof why);
	if (r)
		fprintf(stderr, "connect %s: %s: %s\n", f->addr, thoth_strerror(r), why);
	assert_int_equal(r, 0);
	return c;
}

static void echo_ok(thoth_tcp_conn_t *c, size_t size)
{
	uint8_t *data = malloc(size ? size : 1);
	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = data, .len = size } };
	thoth_echo_Echo_echo_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	assert_int_equal(thoth_echo_Echo_echo(thoth_tcp_client(c), &req, &resp, &arena), 0);
	assert_int_equal(resp.data.len, size);
	assert_memory_equal(resp.data.ptr, data, size);
	free(data);
}

/* A raw TCP connection to F's server (for hostile bytes). */
static int raw_connect(fixture_t *f)
{
	thoth_tcp_addr_t a;
	assert_int_equal(thoth_tcp_addr_parse(f->addr, false, &a, NULL, 0), 0);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(a.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Has the server closed FD?  Drains what it sent; waits up to MS. */
static bool closed_within(int fd, int ms)
{
	uint64_t end = harness_now_ms() + (uint64_t)ms;
	for (;;) {
		int left = (int)(end - harness_now_ms());
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, left) <= 0)
			continue;
		char buf[4096];
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
}

/* The bytes of a valid hello with TOKEN claiming PACKAGE.INTERFACE (""
 * claims nothing). */
static size_t hello_claiming(uint8_t *buf, size_t cap, const char *token, const char *package,
			     const char *interface)
{
	thoth_tcp_Tcp_hello_req_t req = {
		.token = { .ptr = (const uint8_t *)token, .len = strlen(token) },
		.package = thoth_str(package), .interface = thoth_str(interface),
		.interface_id = 1,
	};
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	assert_int_equal(thoth_tcp_Tcp_hello_req_encode_msg(buf, cap, &meta, &req, &len), 0);
	return len;
}

/* The bytes of a valid hello with TOKEN. */
static size_t hello_bytes(uint8_t *buf, size_t cap, const char *token)
{
	return hello_claiming(buf, cap, token, "", "");
}

/* Send a hello on a raw socket and read its (accepting) answer. */
static void raw_hello(int fd)
{
	uint64_t buf[128];
	size_t len = hello_bytes((uint8_t *)buf, sizeof buf, TOKEN);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	uint8_t hdr[THOTH_WIRE_HEADER_SIZE];
	size_t got = 0;
	while (got < sizeof hdr) {
		ssize_t n = recv(fd, hdr + got, sizeof hdr - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	uint32_t body = thoth_le32(hdr + 36);
	uint8_t rest[512];
	assert_true(body <= sizeof rest);
	got = 0;
	while (got < body) {
		ssize_t n = recv(fd, rest + got, body - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_tcp_call_round_trips_same_messages(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	thoth_tcp_conn_t *c = connect_ok(f);
	echo_ok(c, 0);
	echo_ok(c, 100);
	echo_ok(c, 64 << 10);
	echo_ok(c, 900 << 10);          /* under the default 1 MiB max_message */
	thoth_echo_Echo_stats_resp_t st;
	uint64_t scratch[16];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	assert_int_equal(thoth_echo_Echo_stats(thoth_tcp_client(c), &(thoth_echo_Echo_stats_req_t){ 0 },
					       &st, &arena), 0);
	assert_int_equal(st.calls, 4);
	thoth_tcp_close(c);
	/* The plain entry point reads the default token file: THOTH_TCP_TOKEN_FILE. */
	setenv("THOTH_TCP_TOKEN_FILE", f->token_file, 1);
	assert_int_equal(thoth_tcp_connect(f->addr, 2000, &c), 0);
	echo_ok(c, 10);
	thoth_tcp_close(c);
	unsetenv("THOTH_TCP_TOKEN_FILE");
}

static void test_tcp_pipelined_calls_answered_in_order(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	thoth_tcp_conn_t *c = connect_ok(f);
	thoth_msg_t msg;
	assert_int_equal(thoth_tcp_recv(c, &msg, 0), THOTH_E_AGAIN);   /* nothing asked yet */
	enum { N = 32 };
	for (uint32_t i = 0; i < N; i++) {
		char text[32];
		int n = snprintf(text, sizeof text, "call %u", i);
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)text, .len = (uint32_t)n } };
		size_t len = thoth_method_size(&thoth_echo_Echo_echo_info, false, &req);
		uint8_t *buf;
		assert_int_equal(thoth_tcp_alloc(c, len, &buf), 0);
		thoth_msg_header_t meta = { .request_id = 100 + i };
		size_t out;
		assert_int_equal(thoth_echo_Echo_echo_req_encode_msg(buf, len, &meta, &req, &out), 0);
		assert_int_equal(thoth_tcp_send(c, buf, out), 0);
	}
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(thoth_tcp_recv(c, &msg, 3000), 0);
		assert_int_equal(thoth_le32(msg.data + 32), 100 + i);          /* in order */
		thoth_echo_Echo_echo_resp_t resp;
		uint64_t scratch[16];
		thoth_arena_t arena;
		thoth_arena_init(&arena, scratch, sizeof scratch);
		assert_int_equal(thoth_echo_Echo_echo_resp_decode_msg(msg.data, msg.len, &resp, &arena), 0);
		char text[32];
		int n = snprintf(text, sizeof text, "call %u", i);
		assert_int_equal(resp.data.len, (uint32_t)n);
		assert_memory_equal(resp.data.ptr, text, (size_t)n);
		thoth_tcp_release(c, &msg);
	}
	uint64_t sent, received;
	thoth_tcp_counts(c, &sent, &received);
	assert_int_equal(sent, N);
	assert_int_equal(received, N);
	assert_int_equal(thoth_tcp_arm(c), 0);                          /* nothing buffered */
	assert_int_equal(thoth_tcp_recv(c, &msg, 0), THOTH_E_AGAIN);
	echo_ok(c, 10);                 /* the blocking path still works after */
	thoth_tcp_close(c);
}

static void test_tcp_wrong_token_is_refused(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	thoth_tcp_conn_t *good = connect_ok(f);
	const char *wrong = "0123456789abcdef0123456789abcdeX";     /* differs in the last byte only */
	thoth_tcp_config_t cfg = { .token = (const uint8_t *)wrong, .token_len = strlen(wrong) };
	thoth_tcp_conn_t *c = NULL;
	char why[300];
	assert_int_equal(thoth_tcp_connect_with(f->addr, &cfg, 2000, &c, why, sizeof why), THOTH_E_PERM);
	assert_non_null(strstr(why, "token refused"));
	assert_null(c);
	/* A short token is refused before anything is sent. */
	cfg.token = (const uint8_t *)"short";
	cfg.token_len = 5;
	assert_int_equal(thoth_tcp_connect_with(f->addr, &cfg, 2000, &c, why, sizeof why), THOTH_E_INVAL);
	echo_ok(good, 10);
	thoth_tcp_close(good);
}

static void test_tcp_token_file_must_be_private(void **state)
{
	fixture_t *f = *state;
	char loose[160];
	snprintf(loose, sizeof loose, "%s/loose.token", f->h.dir);
	write_token(loose, TOKEN, 0644);
	uint8_t tok[THOTH_TCP_TOKEN_MAX];
	size_t len;
	char why[300];
	assert_int_equal(thoth_tcp_token_load(loose, tok, &len, why, sizeof why), THOTH_E_PERM);
	assert_non_null(strstr(why, "chmod 600"));
	assert_int_equal(thoth_tcp_token_load(f->token_file, tok, &len, why, sizeof why), 0);
	assert_int_equal(len, strlen(TOKEN));           /* the newline is not part of it */
	char missing[160];
	snprintf(missing, sizeof missing, "%s/none", f->h.dir);
	assert_int_equal(thoth_tcp_token_load(missing, tok, &len, why, sizeof why), THOTH_E_NOT_FOUND);
}

static void test_tcp_contract_mismatch_is_refused(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	thoth_tcp_config_t cfg = { .iface = &thoth_registry_Registry_info, .token_file = f->token_file };
	thoth_tcp_conn_t *c = NULL;
	char why[300];
	int r = thoth_tcp_connect_with(f->addr, &cfg, 2000, &c, why, sizeof why);
	assert_true(r == THOTH_E_CONTRACT || r == THOTH_E_BAD_VERSION);
	assert_non_null(strstr(why, "refused us"));
}

static void test_tcp_garbage_closes_that_connection_only(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	thoth_tcp_conn_t *good = connect_ok(f);
	/* Not a thoth message at all (bad magic). */
	int fd = raw_connect(f);
	const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
	assert_int_equal(send(fd, http, sizeof http - 1, MSG_NOSIGNAL), (ssize_t)(sizeof http - 1));
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* A valid header of another interface as the first frame. */
	fd = raw_connect(f);
	uint64_t buf[64];
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)"x", .len = 1 } };
	size_t len;
	assert_int_equal(thoth_echo_Echo_echo_req_encode_msg(buf, sizeof buf, &(thoth_msg_header_t){ .request_id = 1 },
							     &req, &len), 0);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* After a good hello: a response where requests belong. */
	fd = raw_connect(f);
	raw_hello(fd);
	uint8_t *m = (uint8_t *)buf;
	m[6] = THOTH_MSG_RESPONSE;      /* flags: the echo request turned into a response */
	m[7] = 0;
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_true(closed_within(fd, 3000));
	close(fd);
	echo_ok(good, 1000);
	thoth_tcp_close(good);
}

static void test_tcp_oversized_frame_closes_that_connection_only(void **state)
{
	fixture_t *f = *state;
	const char *extra[] = { "--max-message", "65536", NULL };
	start_server(f, extra);
	thoth_tcp_conn_t *good = connect_ok(f);
	/* Before the hello: a header announcing 4 KiB (a hello is at most 1 KiB). */
	int fd = raw_connect(f);
	uint64_t buf[512];
	hello_bytes((uint8_t *)buf, sizeof buf, TOKEN);
	uint8_t *m = (uint8_t *)buf;
	m[36] = 0;
	m[37] = 0x10;                   /* body_len = 4096 */
	m[38] = m[39] = 0;
	assert_int_equal(send(fd, buf, THOTH_WIRE_HEADER_SIZE, MSG_NOSIGNAL), THOTH_WIRE_HEADER_SIZE);
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* After the hello: a request announcing 200 MiB. */
	fd = raw_connect(f);
	raw_hello(fd);
	hello_bytes((uint8_t *)buf, sizeof buf, TOKEN);         /* a valid header to bend */
	m[36] = 0;
	m[37] = 0;
	m[38] = 0x80;
	m[39] = 0x0c;                   /* 0x0c800000 = 200 MiB */
	assert_int_equal(send(fd, buf, THOTH_WIRE_HEADER_SIZE, MSG_NOSIGNAL), THOTH_WIRE_HEADER_SIZE);
	assert_true(closed_within(fd, 3000));
	close(fd);
	/* A real client's call above max_message: its connection is closed and
	 * the call fails; a fresh connection works. */
	thoth_tcp_conn_t *big = connect_ok(f);
	uint8_t *data = calloc(1, 100 << 10);
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = data, .len = 100 << 10 } };
	thoth_echo_Echo_echo_resp_t resp;
	thoth_arena_t arena;
	thoth_arena_init(&arena, NULL, 0);
	int r = thoth_echo_Echo_echo(thoth_tcp_client(big), &req, &resp, &arena);
	assert_true(r == THOTH_E_PEER_GONE || r == THOTH_E_IO);
	assert_int_equal(thoth_tcp_error(big), r);
	free(data);
	thoth_tcp_close(big);
	echo_ok(good, 60000);
	thoth_tcp_close(good);
}

static void test_tcp_slow_clients_are_closed_by_their_deadline(void **state)
{
	fixture_t *f = *state;
	const char *extra[] = { "--handshake-ms", "300", "--frame-ms", "300", "--idle-ms", "60000", NULL };
	start_server(f, extra);
	thoth_tcp_conn_t *good = connect_ok(f);
	/* Silent after connecting: no hello. */
	int silent = raw_connect(f);
	/* Slowloris: half a hello, then a byte every 100 ms. */
	int slow = raw_connect(f);
	uint64_t buf[128];
	size_t len = hello_bytes((uint8_t *)buf, sizeof buf, TOKEN);
	assert_int_equal(send(slow, buf, 20, MSG_NOSIGNAL), 20);
	/* Authenticated, then half a request, never finished. */
	int partial = raw_connect(f);
	raw_hello(partial);
	assert_int_equal(send(partial, buf, 30, MSG_NOSIGNAL), 30);
	uint64_t start = harness_now_ms();
	for (size_t i = 20; i < len - 1 && harness_now_ms() - start < 1500; i++) {
		if (send(slow, (uint8_t *)buf + i, 1, MSG_NOSIGNAL) != 1)
			break;          /* closed: what we wait for */
		struct pollfd p = { .fd = slow, .events = POLLIN };
		poll(&p, 1, 100);
		if (p.revents)
			break;
	}
	assert_true(closed_within(slow, 3000));
	assert_true(closed_within(silent, 3000));
	assert_true(closed_within(partial, 3000));
	close(slow);
	close(silent);
	close(partial);
	echo_ok(good, 10);               /* idle for the whole time, within its idle deadline */
	thoth_tcp_close(good);
}

static bool connects(void *arg)
{
	fixture_t *f = arg;
	thoth_tcp_config_t cfg = { .token_file = f->token_file };
	thoth_tcp_conn_t *c = NULL;
	if (thoth_tcp_connect_with(f->addr, &cfg, 1000, &c, NULL, 0))
		return false;
	thoth_tcp_close(c);
	return true;
}

static void test_tcp_connection_cap_sheds_the_extra_one(void **state)
{
	fixture_t *f = *state;
	const char *extra[] = { "--max-conns", "3", NULL };
	start_server(f, extra);
	thoth_tcp_conn_t *c[3];
	for (int i = 0; i < 3; i++)
		c[i] = connect_ok(f);
	thoth_tcp_config_t cfg = { .token_file = f->token_file };
	thoth_tcp_conn_t *extra_conn = NULL;
	char why[300];
	assert_int_equal(thoth_tcp_connect_with(f->addr, &cfg, 2000, &extra_conn, why, sizeof why), THOTH_E_BUSY);
	for (int i = 0; i < 3; i++)
		echo_ok(c[i], 10);
	thoth_tcp_close(c[0]);
	assert_true(harness_wait_until(connects, f, 5000));      /* room again once one left */
	thoth_tcp_close(c[1]);
	thoth_tcp_close(c[2]);
}

/* A hello claiming PACKAGE.INTERFACE (not the server's: refused and
 * closed), until tcp_service's log, LOG (CAP bytes) its path, says so. */
static void claim_until_refused(fixture_t *f, const char *package, const char *interface, char *log,
				size_t cap)
{
	int fd = raw_connect(f);
	uint64_t buf[128];
	size_t len = hello_claiming((uint8_t *)buf, sizeof buf, TOKEN, package, interface);
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_true(closed_within(fd, 2000));
	close(fd);
	snprintf(log, cap, "%s/tcp_service.log", f->h.dir);
	assert_true(harness_wait_until(log_says_refused, log, 5000));
}

/* A client's names are its words: a hello claiming an interface whose
 * names hold a terminal escape, CR and LF is refused, and the server's
 * log line (tcp_service writes what thoth_tcp_server logs) names them
 * escaped, not as a forged line and a cleared screen. */
static void test_tcp_a_hostile_clients_names_reach_the_log_escaped(void **state)
{
	fixture_t *f = *state;
	start_server(f, NULL);
	char log[200];
	claim_until_refused(f, "evil\x1b[2J", "x\r\ntcp_service: forged line", log, sizeof log);
	assert_true(harness_file_contains(log, "client wants evil\\x1b[2J.x\\x0d\\x0atcp_service: forged line"));
	assert_false(harness_file_contains(log, "\x1b"));
	assert_false(harness_file_contains(log, "\ntcp_service: forged"));
}

/* The same hostile names, long, through libthoth's own log (a server
 * whose config names no log: thoth__log and its 512-byte line): 180 ESC
 * bytes are 720 escaped, so the line is cut.  The cut must be said ("..."
 * at its end) and fall between escapes, not in one: the old line ended
 * at 511 bytes, mid-"\x1b" or not, and looked whole. */
static void test_tcp_a_long_hostile_name_is_cut_visibly_between_escapes(void **state)
{
	fixture_t *f = *state;
	const char *extra[] = { "--library-log", NULL };
	start_server(f, extra);
	char name[181];
	memset(name, 0x1b, sizeof name - 1);
	name[sizeof name - 1] = 0;
	char log[200];
	claim_until_refused(f, name, "x", log, sizeof log);
	FILE *fp = fopen(log, "r");
	assert_non_null(fp);
	char *line = NULL, *found = NULL;
	size_t cap = 0;
	while (!found && getline(&line, &cap, fp) > 0)
		if (strstr(line, "contract refused"))
			found = line;
	fclose(fp);
	assert_non_null(found);
	line[strcspn(line, "\n")] = 0;
	print_message("  %s\n", line);
	/* thoth_log_stderr's "thoth tcp: " and a message of the handler's
	 * 511 bytes at most. */
	assert_true(!strncmp(line, "thoth tcp: ", 11));
	size_t n = strlen(line);
	assert_true(n - 11 <= 511);
	assert_true(n > 3 && !strcmp(line + n - 3, "..."));
	/* Before the "...": the name's escapes, whole, each of them. */
	const char *esc = strstr(line, "\\x1b");
	assert_non_null(esc);
	size_t run = (size_t)(line + n - 3 - esc);
	assert_true(run >= 4);
	assert_int_equal(run % 4, 0);
	for (size_t k = 0; k < run; k += 4)
		assert_memory_equal(esc + k, "\\x1b", 4);
	assert_null(strchr(line, 0x1b));
	free(line);
}

static void test_tcp_address_parsing(void **state)
{
	thoth_tcp_addr_t a;
	char why[200];
	assert_int_equal(thoth_tcp_addr_parse("tcp:127.0.0.1:7001", false, &a, why, sizeof why), 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 7001);
	assert_int_equal(thoth_tcp_addr_parse("tcp:[::1]:80", false, &a, why, sizeof why), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(thoth_tcp_addr_parse("tcp:host-a.example:65535", false, &a, why, sizeof why), 0);
	assert_int_equal(thoth_tcp_addr_parse("tcp:127.0.0.1:0", true, &a, why, sizeof why), 0);
	const char *bad[] = { "tcp:127.0.0.1:0", "tcp:127.0.0.1", "tcp::80", "tcp:::1:80", "tcp:a:65536",
			      "tcp:a:08", "tcp:a:80x", "udp:a:80", "/run/x.sock", "tcp:[::1]80", "tcp:a b:80",
			      "", NULL };
	for (int i = 0; bad[i]; i++) {
		why[0] = 0;
		assert_int_equal(thoth_tcp_addr_parse(bad[i], false, &a, why, sizeof why), THOTH_E_INVAL);
		assert_true(why[0] != 0);
	}
	assert_true(thoth_tcp_is_addr("tcp:x:1"));
	assert_false(thoth_tcp_is_addr("/tmp/x.sock"));
	/* Nothing listens: refused, quickly. */
	thoth_tcp_conn_t *c;
	thoth_tcp_config_t cfg = { .token = (const uint8_t *)TOKEN, .token_len = strlen(TOKEN) };
	assert_int_equal(thoth_tcp_connect_with("tcp:127.0.0.1:1", &cfg, 1000, &c, why, sizeof why),
			 THOTH_E_NOT_RUNNING);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_address_parsing),
		cmocka_unit_test_setup_teardown(test_tcp_token_file_must_be_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_call_round_trips_same_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_pipelined_calls_answered_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_wrong_token_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_contract_mismatch_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_garbage_closes_that_connection_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_oversized_frame_closes_that_connection_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_slow_clients_are_closed_by_their_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_connection_cap_sheds_the_extra_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tcp_a_hostile_clients_names_reach_the_log_escaped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_a_long_hostile_name_is_cut_visibly_between_escapes, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
