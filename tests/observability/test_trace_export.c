/*
 * test_trace_export.c - a two-process trace exported to the standard
 * formats and read back by the standard tools: the Chrome JSON parses and has
 * a track per process/thread and a flow per message (checked by
 * check_chrome_json.py), and babeltrace2 reads the CTF and prints the events.
 *
 * The parent is the "client"; a forked child is the "server" with its own
 * trace buffer, whose memfd it hands to the parent over SCM_RIGHTS as a
 * service would hand it to thothd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/trace.h"

#define SERVICE   77u
#define IFACE     0x5eed1234u
#define TRACE_ID  0xabc0000000000001ull

static int send_fd(int sock, int fd)
{
	char byte = 'f';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	memset(&u, 0, sizeof u);
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	                      .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	                      .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof fd);
	return fd;
}

/* The server: receives the request, sends the response, hands over its
 * buffer.  Protocol on SOCK: parent writes 'q' (request sent), child
 * answers with its memfd once it has traced both messages. */
static int run_server(int sock)
{
	thoth_trace_shutdown();  /* the parent's buffer is not ours */
	thoth_trace_config_t cfg = { .ring_records = 64, .process_name = "server",
	                             .enabled = THOTH_TRACE_ALL_CATEGORIES };
	if (thoth_trace_init(&cfg) != 0)
		return 2;
	char q;
	if (read(sock, &q, 1) != 1)
		return 3;
	THOTH_TRACE_MSG(IPC, msg_recv, THOTH_TRACE_RECV, SERVICE, IFACE, 2, 1, 128,
	                THOTH_TRACE_INLINE, TRACE_ID);
	THOTH_TRACE(USER, handler_work, 99, 0);
	THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, SERVICE, IFACE, 2, 1, 4096,
	                THOTH_TRACE_ZERO_COPY, TRACE_ID + 1);
	int fd;
	if (thoth_trace_export_fd(&fd) != 0 || send_fd(sock, fd) != 0)
		return 4;
	return 0;
}

typedef struct two_process_trace {
	thoth_trace_collection_t *collection;
	pid_t client, server;
	char dir[64];
} two_process_trace_t;

static int setup(void **state)
{
	static two_process_trace_t t;
	thoth_trace_config_t cfg = { .ring_records = 64, .process_name = "client",
	                             .enabled = THOTH_TRACE_ALL_CATEGORIES };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(sv[0]);
		_exit(run_server(sv[1]));
	}
	close(sv[1]);
	THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, SERVICE, IFACE, 2, 1, 128,
	                THOTH_TRACE_INLINE, TRACE_ID);
	assert_int_equal(write(sv[0], "q", 1), 1);
	int server_fd = recv_fd(sv[0]);
	assert_true(server_fd >= 0);
	THOTH_TRACE_MSG(IPC, msg_recv, THOTH_TRACE_RECV, SERVICE, IFACE, 2, 1, 4096,
	                THOTH_TRACE_ZERO_COPY, TRACE_ID + 1);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(sv[0]);

	/* thothd's part: read both buffers into one collection. */
	int client_fd;
	assert_int_equal(thoth_trace_export_fd(&client_fd), 0);
	thoth_trace_reader_t *client_reader, *server_reader;
	assert_int_equal(thoth_trace_reader_open(client_fd, &client_reader), 0);
	assert_int_equal(thoth_trace_reader_open(server_fd, &server_reader), 0);
	close(server_fd);
	assert_int_equal(thoth_trace_collection_new(&t.collection), 0);
	assert_int_equal(thoth_trace_collection_add(t.collection, client_reader), 0);
	assert_int_equal(thoth_trace_collection_add(t.collection, server_reader), 0);
	assert_int_equal(thoth_trace_collection_count(t.collection), 5);
	thoth_trace_reader_close(client_reader);
	thoth_trace_reader_close(server_reader);
	thoth_trace_shutdown();
	t.client = getpid();
	t.server = child;
	strcpy(t.dir, "/tmp/thoth-trace-test-XXXXXX");
	assert_non_null(mkdtemp(t.dir));
	*state = &t;
	return 0;
}

static int teardown(void **state)
{
	two_process_trace_t *t = *state;
	thoth_trace_collection_free(t->collection);
	if (getenv("THOTH_KEEP_TRACE")) {  /* to open it in Perfetto / babeltrace2 */
		print_message("trace kept in %s\n", t->dir);
		return 0;
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

/* Run CMD, capture its stdout+stderr into a static buffer, return status. */
static int run_capture(const char *cmd, char **out)
{
	static char buf[1 << 16];
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(buf, 1, sizeof buf - 1, p);
	buf[n] = '\0';
	*out = buf;
	return pclose(p);
}

static int count_substr(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_chrome_json_has_tracks_and_cross_process_flows(void **state)
{
	two_process_trace_t *t = *state;
	char path[128];
	snprintf(path, sizeof path, "%s/trace.json", t->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(thoth_trace_export_chrome_json(t->collection, f), 0);
	assert_int_equal(fclose(f), 0);
	char cmd[512], *out;
	snprintf(cmd, sizeof cmd, "'%s' '%s/check_chrome_json.py' '%s' 5 %d=client %d=server 2>&1",
	         THOTH_PYTHON3, THOTH_TEST_DIR, path, (int)t->client, (int)t->server);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
}

static void test_chrome_json_checker_rejects_a_trace_without_flows(void **state)
{
	/* The checker itself must be able to fail. */
	two_process_trace_t *t = *state;
	char path[128];
	snprintf(path, sizeof path, "%s/noflow.json", t->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"traceEvents\":[{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,"
	      "\"args\":{\"name\":\"x\"}}]}", f);
	assert_int_equal(fclose(f), 0);
	char cmd[512], *out;
	snprintf(cmd, sizeof cmd, "'%s' '%s/check_chrome_json.py' '%s' 0 2>&1", THOTH_PYTHON3,
	         THOTH_TEST_DIR, path);
	assert_int_not_equal(run_capture(cmd, &out), 0);
	assert_non_null(strstr(out, "no flows"));
}

static void test_babeltrace2_reads_the_ctf_trace(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[128];
	snprintf(ctf, sizeof ctf, "%s/ctf", t->dir);  /* only the trace in it */
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[256], *out;
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", THOTH_BABELTRACE2, ctf);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
	/* Lines look like: [..] (+..) msg_send: { pid = .. }, { cpu = .., ... } */
	assert_int_equal(count_substr(out, " msg_send: "), 2);
	assert_int_equal(count_substr(out, " msg_recv: "), 2);
	assert_int_equal(count_substr(out, " handler_work: "), 1);
	assert_int_equal(count_substr(out, "\n"), 5);
	assert_int_equal(count_substr(out, "service_id = 77,"), 4);
	assert_int_equal(count_substr(out, "payload_size = 4096,"), 2);
	assert_int_equal(count_substr(out, "arg0 = 99,"), 1);
	char pid_field[32];
	snprintf(pid_field, sizeof pid_field, "pid = %d,", (int)t->server);
	assert_int_equal(count_substr(out, pid_field), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chrome_json_has_tracks_and_cross_process_flows),
		cmocka_unit_test(test_chrome_json_checker_rejects_a_trace_without_flows),
		cmocka_unit_test(test_babeltrace2_reads_the_ctf_trace),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
