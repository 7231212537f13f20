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
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/trace.h"
#include "../common/tmpdir.h"

#define SERVICE   77u
#define IFACE     0x5eed1234u
#define TRACE_ID  0xabc0000000000001ull
#define BIG0      0xfedcba9876543210ull           /* 18364758544493064720 */
#define BIG1      ((1ull << 53) + 1)              /* 9007199254740993: a double has no such value */

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
	THOTH_TRACE(USER, big_args, BIG0, BIG1);      /* above 2^53: JSON viewers would round them */
	THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, SERVICE, IFACE, 2, 1, 4096,
	                THOTH_TRACE_ZERO_COPY, TRACE_ID + 1);
	int fd;
	if (thoth_trace_export_fd(&fd) != 0 || send_fd(sock, fd) != 0)
		return 4;
	return 0;
}

/* WANT as thoth_error_io records it: a text longer than the record's
 * 160 bytes (a long TMPDIR) is cut to 156 and "...". */
static void cut_like_a_record(char *want)
{
	size_t cap = sizeof thoth_last_error()->what;
	if (strlen(want) >= cap)
		memcpy(want + cap - 4, "...", 4);
}

typedef struct two_process_trace {
	thoth_trace_collection_t *collection;
	pid_t client, server;
	char dir[PATH_MAX];
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
	assert_int_equal(thoth_trace_collection_count(t.collection), 6);
	thoth_trace_reader_close(client_reader);
	thoth_trace_reader_close(server_reader);
	thoth_trace_shutdown();
	t.client = getpid();
	t.server = child;
	test_tmp_template(t.dir, sizeof t.dir, "thoth-trace-test");
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
	char cmd[2 * PATH_MAX];
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
	char path[PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/trace.json", t->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(thoth_trace_export_chrome_json(t->collection, f), 0);
	assert_int_equal(fclose(f), 0);
	char cmd[2 * PATH_MAX], *out;
	/* 4 message slices (with flows), 2 trace points as instants */
	snprintf(cmd, sizeof cmd, "'%s' '%s/check_chrome_json.py' '%s' 4 2 %d=client %d=server 2>&1",
	         THOTH_PYTHON3, THOTH_TEST_DIR, path, (int)t->client, (int)t->server);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
	/* the big arguments are exact, as strings; small ones stay numbers */
	snprintf(cmd, sizeof cmd, "cat '%s'", path);
	assert_int_equal(run_capture(cmd, &out), 0);
	assert_int_equal(count_substr(out, "\"arg0\":\"18364758544493064720\",\"arg1\":\"9007199254740993\""), 1);
	assert_int_equal(count_substr(out, "\"arg0\":99,\"arg1\":0}"), 1);
}

static void test_chrome_json_checker_rejects_a_trace_without_flows(void **state)
{
	/* The checker itself must be able to fail. */
	two_process_trace_t *t = *state;
	char path[PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/noflow.json", t->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"traceEvents\":[{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,"
	      "\"args\":{\"name\":\"x\"}}]}", f);
	assert_int_equal(fclose(f), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "'%s' '%s/check_chrome_json.py' '%s' 0 0 2>&1", THOTH_PYTHON3,
	         THOTH_TEST_DIR, path);
	assert_int_not_equal(run_capture(cmd, &out), 0);
	assert_non_null(strstr(out, "no flows"));
}

static void test_babeltrace2_reads_the_ctf_trace(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32];
	snprintf(ctf, sizeof ctf, "%s/ctf", t->dir);  /* only the trace in it */
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", THOTH_BABELTRACE2, ctf);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
	/* Lines look like: [..] (+..) msg_send: { pid = .. }, { cpu = .., ... } */
	assert_int_equal(count_substr(out, " msg_send: "), 2);
	assert_int_equal(count_substr(out, " msg_recv: "), 2);
	assert_int_equal(count_substr(out, " handler_work: "), 1);
	assert_int_equal(count_substr(out, " big_args: "), 1);
	assert_int_equal(count_substr(out, "\n"), 6);
	assert_int_equal(count_substr(out, "arg0 = 18364758544493064720, arg1 = 9007199254740993"), 1);
	assert_int_equal(count_substr(out, "service_id = 77,"), 4);
	assert_int_equal(count_substr(out, "payload_size = 4096,"), 2);
	assert_int_equal(count_substr(out, "arg0 = 99,"), 1);
	char pid_field[32];
	snprintf(pid_field, sizeof pid_field, "pid = %d,", (int)t->server);
	assert_int_equal(count_substr(out, pid_field), 4);
}

static void test_ctf_clock_carries_the_realtime_offset(void **state)
{
	/* With the offset, babeltrace2 dates the events today, not in 1970. */
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32];
	snprintf(ctf, sizeof ctf, "%s/ctf_dated", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "'%s' --clock-date --clock-gmt '%s' 2>&1", THOTH_BABELTRACE2, ctf);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
	time_t now = time(NULL);
	struct tm tm;
	assert_non_null(gmtime_r(&now, &tm));
	char today[32];
	strftime(today, sizeof today, "[%Y-%m-%d ", &tm);
	if (count_substr(out, today) != 6) {
		/* midnight may pass between the events and now: then yesterday */
		now -= 3600;
		gmtime_r(&now, &tm);
		char before[32];
		strftime(before, sizeof before, "[%Y-%m-%d ", &tm);
		assert_int_equal(count_substr(out, today) + count_substr(out, before), 6);
	}
}

static void test_export_to_a_missing_directory_says_which_file_and_why(void **state)
{
	two_process_trace_t *t = *state;
	char dir[PATH_MAX + 16], want[PATH_MAX + 128];
	snprintf(dir, sizeof dir, "%s/no/such/dir", t->dir);
	assert_int_equal(thoth_trace_export_ctf(t->collection, dir), THOTH_E_IO);
	assert_int_equal(thoth_last_errno(), ENOENT);
	snprintf(want, sizeof want, "open the CTF directory %s", dir);
	cut_like_a_record(want);
	assert_string_equal(thoth_last_error()->what, want);
}

/* Every entry of DIR (names and bytes, sorted) as one string: what a
 * failed export must leave unchanged. */
static char *dir_snapshot(const char *dir)
{
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "cd '%s' && ls -A && cat metadata stream_* 2>/dev/null | md5sum", dir);
	assert_int_equal(run_capture(cmd, &out), 0);
	char *copy = strdup(out);       /* run_capture's buffer is reused */
	assert_non_null(copy);
	return copy;
}

/*
 * A second export into a directory holding an earlier trace replaces it
 * whole: the earlier trace's stream of a thread the new one lacks goes (it
 * was left beside the new streams, and babeltrace2 read both as one trace),
 * files that are not a trace's stay, and no temporary is left.
 */
static void test_a_ctf_export_replaces_an_earlier_trace_whole(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32], path[PATH_MAX + 128];
	snprintf(ctf, sizeof ctf, "%s/ctf_again", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	snprintf(path, sizeof path, "%s/stream_999999_999999", ctf);    /* an older trace's thread */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("old", f);
	assert_int_equal(fclose(f), 0);
	snprintf(path, sizeof path, "%s/notes.txt", ctf);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("mine", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "ls -A '%s'", ctf);
	assert_int_equal(run_capture(cmd, &out), 0);
	assert_null(strstr(out, "stream_999999_999999"));
	assert_non_null(strstr(out, "notes.txt"));
	assert_null(strstr(out, ".thoth-ctf.tmp"));
	assert_int_equal(count_substr(out, "stream_"), 2);      /* a thread of each process */
	unlink(path);           /* babeltrace2 reads every file there as a stream */
	snprintf(cmd, sizeof cmd, "'%s' '%s' 2>&1", THOTH_BABELTRACE2, ctf);
	int status = run_capture(cmd, &out);
	if (status != 0)
		print_error("%s", out);
	assert_int_equal(status, 0);
	assert_int_equal(count_substr(out, "\n"), 6);
}

/*
 * A CTF export that fails (here a file size limit, EFBIG: a full disk as
 * near as a test gets without a mount) leaves the earlier trace in the
 * directory exactly as it was and no temporary; the error names the file.
 * Written in place, the failure cut the earlier metadata to the limit.
 */
static void test_a_failed_ctf_export_leaves_the_earlier_trace(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32];
	snprintf(ctf, sizeof ctf, "%s/ctf_full", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char *before = dir_snapshot(ctf);
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		signal(SIGXFSZ, SIG_IGN);
		struct rlimit rl = { 256, 256 };
		if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
			_exit(10);
		int r = thoth_trace_export_ctf(t->collection, ctf);
		char want[PATH_MAX + 128];
		snprintf(want, sizeof want, "write %s/metadata", ctf);
		cut_like_a_record(want);
		_exit(r != THOTH_E_IO ? 11 : thoth_last_errno() != EFBIG ? 12
		      : strcmp(thoth_last_error()->what, want) != 0 ? 13 : 0);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	char *after = dir_snapshot(ctf);
	assert_string_equal(after, before);
	assert_null(strstr(after, ".thoth-ctf.tmp"));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);       /* 11-13: the error, its errno, its file */
	free(before);
	free(after);
}

/* A temporary left by an export killed mid-write goes with the next one. */
static void test_a_killed_exports_temporary_is_removed_by_the_next(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32], path[PATH_MAX + 128];
	snprintf(ctf, sizeof ctf, "%s/ctf_killed", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	snprintf(path, sizeof path, "%s/.thoth-ctf.tmp-1-0", ctf);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/.thoth-ctf.tmp-1-0/metadata", ctf);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("/* CTF 1.8 */ cut", f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "ls -A '%s'", ctf);
	assert_int_equal(run_capture(cmd, &out), 0);
	assert_null(strstr(out, ".thoth-ctf.tmp"));
	assert_non_null(strstr(out, "metadata"));
}

/*
 * A directory named stream_* is the user's, not an old trace's stream: the
 * export keeps it and succeeds. It was unlinked after the old metadata
 * went, failed EISDIR, and left neither trace.
 */
static void test_a_stream_named_directory_is_kept(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32], path[PATH_MAX + 128];
	snprintf(ctf, sizeof ctf, "%s/ctf_keep", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	snprintf(path, sizeof path, "%s/stream_keep", ctf);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "ls -A '%s'", ctf);
	assert_int_equal(run_capture(cmd, &out), 0);
	assert_non_null(strstr(out, "stream_keep"));
	assert_non_null(strstr(out, "metadata"));
	assert_int_equal(count_substr(out, "stream_"), 3);
	rmdir(path);
}

/*
 * A directory where a new stream must go refuses the export before the
 * old trace loses a file: the directory is as it was.
 */
static void test_a_directory_in_a_new_streams_place_refuses_first(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32], path[PATH_MAX + 128];
	snprintf(ctf, sizeof ctf, "%s/ctf_blocked", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
	char cmd[2 * PATH_MAX], *out;
	snprintf(cmd, sizeof cmd, "cd '%s' && ls -d stream_* | head -1", ctf);
	assert_int_equal(run_capture(cmd, &out), 0);
	out[strcspn(out, "\n")] = 0;
	int n = snprintf(path, sizeof path, "%s/%s", ctf, out);
	assert_true(n > 0 && (size_t)n < sizeof path);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	char *before = dir_snapshot(ctf);
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), THOTH_E_IO);
	assert_int_equal(thoth_last_errno(), EISDIR);
	char *after = dir_snapshot(ctf);
	assert_string_equal(after, before);
	assert_non_null(strstr(after, "metadata"));
	free(before);
	free(after);
	rmdir(path);
}

/*
 * A lock held by someone else (a forked child here, as `flock DIR sleep
 * inf` would) refuses the export after a bounded wait; it waited forever.
 */
static void test_a_held_lock_refuses_the_export(void **state)
{
	two_process_trace_t *t = *state;
	char ctf[PATH_MAX + 32];
	snprintf(ctf, sizeof ctf, "%s/ctf_locked", t->dir);
	assert_int_equal(mkdir(ctf, 0700), 0);
	int pipefd[2], go[2];
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(pipefd[0]);
		close(go[1]);
		int fd = open(ctf, O_RDONLY | O_DIRECTORY);
		if (fd < 0 || flock(fd, LOCK_EX) != 0)
			_exit(1);
		char c = 1;
		if (write(pipefd[1], &c, 1) != 1)
			_exit(2);
		(void)!read(go[0], &c, 1);      /* holds until the parent says */
		_exit(0);
	}
	close(pipefd[1]);
	close(go[0]);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	/* an alarm turns the old endless wait into a failure, not a hang */
	pid_t tester = fork();
	assert_true(tester >= 0);
	if (tester == 0) {
		alarm(30);
		int r = thoth_trace_export_ctf(t->collection, ctf);
		char want[PATH_MAX + 128];
		snprintf(want, sizeof want, "%s is locked by another export", ctf);
		cut_like_a_record(want);
		_exit(r != THOTH_E_IO ? 11 : strcmp(thoth_last_error()->what, want) != 0 ? 12 : 0);
	}
	int status;
	assert_int_equal(waitpid(tester, &status, 0), tester);
	close(go[1]);
	int cs;
	assert_int_equal(waitpid(child, &cs, 0), child);
	close(pipefd[0]);
	assert_true(WIFEXITED(status));         /* killed by SIGALRM: it waited */
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(WIFEXITED(cs) && WEXITSTATUS(cs) == 0);
	/* released, the next export goes through */
	assert_int_equal(thoth_trace_export_ctf(t->collection, ctf), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chrome_json_has_tracks_and_cross_process_flows),
		cmocka_unit_test(test_chrome_json_checker_rejects_a_trace_without_flows),
		cmocka_unit_test(test_babeltrace2_reads_the_ctf_trace),
		cmocka_unit_test(test_a_ctf_export_replaces_an_earlier_trace_whole),
		cmocka_unit_test(test_a_failed_ctf_export_leaves_the_earlier_trace),
		cmocka_unit_test(test_a_killed_exports_temporary_is_removed_by_the_next),
		cmocka_unit_test(test_a_stream_named_directory_is_kept),
		cmocka_unit_test(test_a_directory_in_a_new_streams_place_refuses_first),
		cmocka_unit_test(test_a_held_lock_refuses_the_export),
		cmocka_unit_test(test_ctf_clock_carries_the_realtime_offset),
		cmocka_unit_test(test_export_to_a_missing_directory_says_which_file_and_why),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
