/*
 * test_client_log.c - issue 12: a library never imposes process-wide
 * policy.  libthoth writes nothing to stderr by itself (its diagnostics go
 * to the handler of thoth/log.h, none by default, filtered by level) and
 * leaves SIGPIPE's disposition alone, also in thoth_serve().
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "echo.thoth.h"
#include "log_internal.h"
#include "thoth/channel.h"
#include "thoth/log.h"
#include "thoth/service.h"
#include "why.h"
#include "../common/tmpdir.h"

typedef struct seen {
	int count;
	thoth_log_level_t level;
	char component[32];
	char message[300];
} seen_t;

static void remember(void *arg, thoth_log_level_t level, const char *component, const char *message)
{
	seen_t *s = arg;
	s->count++;
	s->level = level;
	snprintf(s->component, sizeof s->component, "%s", component);
	snprintf(s->message, sizeof s->message, "%s", message);
}

/* Register against a runtime dir where no thothd runs: the service has
 * something to say (not registered, retrying). */
static void register_nowhere(void)
{
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_service_config_t cfg = { .runtime_dir = "/nonexistent/thoth-log-test", .name = "echo",
				       .version = "1.0.0", .endpoint = "/nonexistent/echo.sock" };
	thoth_service_t *svc;
	assert_int_equal(thoth_service_register(loop, &cfg, &svc, NULL, 0), 0);
	thoth_service_withdraw(svc);
	thoth_loop_free(loop);
}

/* Run FN with stderr going to a file; what did it write? */
static size_t stderr_bytes_of(void (*fn)(void))
{
	char path[256];
	test_tmp_template(path, sizeof path, "thoth-log-test");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	close(fd);
	unlink(path);
	return (size_t)st.st_size;
}

static void test_library_is_silent_by_default(void **state)
{
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_DEBUG);
	assert_int_equal(stderr_bytes_of(register_nowhere), 0);
}

static void test_handler_receives_messages_by_level(void **state)
{
	seen_t seen = { 0 };
	thoth_log_set_handler(remember, &seen, THOTH_LOG_WARN);
	register_nowhere();
	assert_true(seen.count >= 1);
	assert_int_equal(seen.level, THOTH_LOG_WARN);
	assert_string_equal(seen.component, "service");
	assert_non_null(strstr(seen.message, "echo not registered"));
	/* the reason once, not followed by its error code's own wording */
	assert_null(strstr(seen.message, "(not running (nothing listens"));
	/* Filtered: nothing below ERROR gets through. */
	seen_t quiet = { 0 };
	thoth_log_set_handler(remember, &quiet, THOTH_LOG_ERROR);
	register_nowhere();
	assert_int_equal(quiet.count, 0);
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);
}

static char kept[2 * THOTH__LOG_LINE_MAX];

static void keep(void *arg, thoth_log_level_t level, const char *component, const char *message)
{
	snprintf(kept, sizeof kept, "%s", message);
}

/* A message longer than the handler's line is cut, and says so: "..."
 * after the last whole letter.  It was cut at 511 bytes, silently (a
 * reader took it for whole), and in the middle of a letter: 507 'a's
 * then 'é's put the cut between the two bytes of one. */
static void test_a_long_message_is_cut_visibly_at_a_letter(void **state)
{
	char text[700];
	memset(text, 'a', 507);
	size_t n = 507;
	while (n + 2 < sizeof text) {
		memcpy(text + n, "\xc3\xa9", 2);
		n += 2;
	}
	text[n] = 0;
	thoth_log_set_handler(keep, NULL, THOTH_LOG_INFO);
	thoth__log(THOTH_LOG_INFO, "test", "%s", text);
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);
	assert_int_equal(strlen(kept), 507 + 3);
	assert_memory_equal(kept, text, 507);
	assert_string_equal(kept + 507, "...");
	/* one that fits is passed whole, no mark */
	thoth_log_set_handler(keep, NULL, THOTH_LOG_INFO);
	text[THOTH__LOG_LINE_MAX - 1] = 0;
	memset(text, 'b', THOTH__LOG_LINE_MAX - 1);
	thoth__log(THOTH_LOG_INFO, "test", "%s", text);
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);
	assert_string_equal(kept, text);
}

/* A line formatted from escaped text (a caller's thoth__why_text) and cut
 * to the handler's room: between whole escapes.  The cut was at a letter's
 * boundary, 505 'a's then "\x1" and "...": the reader saw a byte 0x01. */
static void test_a_long_escaped_line_is_cut_between_escapes(void **state)
{
	char esc[600];
	thoth__why_text(esc, sizeof esc, "\x1b\x1b\x1b\x1b\x1b", 5);  /* "\\x1b" x 5 */
	struct { size_t pad; const char *tail; size_t keep; } cases[] = {
		{ 505, esc, 505 },              /* "\\x1" at the cut */
		{ 506, esc, 506 },              /* "\\x" */
		{ 507, esc, 507 },              /* "\\" */
		{ 504, esc, 508 },              /* "\\x1b" whole, then the cut */
		{ 507, "\\\\\\\\", 507 },       /* half of an escaped backslash */
		{ 506, "\\\\\\\\", 508 },       /* "\\\\" whole */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[1200];
		memset(text, 'a', cases[i].pad);
		snprintf(text + cases[i].pad, sizeof text - cases[i].pad, "%s%s", cases[i].tail, esc);
		thoth_log_set_handler(keep, NULL, THOTH_LOG_INFO);
		thoth__log(THOTH_LOG_INFO, "test", "%s", text);
		thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);
		if (strlen(kept) != cases[i].keep + 3 || strcmp(kept + cases[i].keep, "...") != 0)
			fail_msg("case %zu: kept %zu bytes, ends \"%s\"; want %zu and \"...\"", i, strlen(kept),
				 kept + (strlen(kept) > 8 ? strlen(kept) - 8 : 0), cases[i].keep);
		assert_memory_equal(kept, text, cases[i].keep);
	}
}

/* A peer's text escaped for a log line (why.h): a cut falls between
 * escapes and says so; a text already cut loses its half letter, not as
 * \xHH bytes; a whole text that fits is unmarked. */
static void test_escaped_text_is_cut_between_escapes_and_says_so(void **state)
{
	char out[12];
	assert_int_equal(thoth__why_text_cut(out, sizeof out, "\x1b\x1b\x1b\x1b", 4, false), 11);
	assert_string_equal(out, "\\x1b\\x1b...");
	char big[64];
	thoth__why_text_cut(big, sizeof big, "ok \xc3", 4, true);
	assert_string_equal(big, "ok ...");
	thoth__why_text_cut(big, sizeof big, "ok \x1b", 4, false);
	assert_string_equal(big, "ok \\x1b");
	/* exactly filling OUT: whole, unmarked */
	assert_int_equal(thoth__why_text_cut(out, sizeof out, "0123456789a", 11, false), 11);
	assert_string_equal(out, "0123456789a");
}

static void test_sigpipe_disposition_is_left_alone(void **state)
{
	/* thoth_serve in a child: it fails to listen (no such dir) and must
	 * neither print nor change SIGPIPE; the child reports both. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_DFL);
		int devnull_check[2];
		if (pipe(devnull_check))
			_exit(2);
		dup2(devnull_check[1], 2);      /* anything printed lands here */
		fcntl(devnull_check[0], F_SETFL, O_NONBLOCK);
		thoth_chan_server_config_t cfg = { .path = "/nonexistent/thoth-log-test/x.sock",
						   .iface = &thoth_echo_Echo_info };
		int r = thoth_serve(&cfg);
		struct sigaction sa;
		sigaction(SIGPIPE, NULL, &sa);
		char buf[256];
		ssize_t printed = read(devnull_check[0], buf, sizeof buf);
		char verdict[3] = { r != 0 ? 'f' : 's', sa.sa_handler == SIG_DFL ? 'd' : 'c',
				    printed > 0 ? 'p' : 'q' };
		if (write(p[1], verdict, 3) != 3)
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	char verdict[3] = { 0 };
	assert_int_equal(read(p[0], verdict, 3), 3);
	close(p[0]);
	int status;
	waitpid(pid, &status, 0);
	assert_int_equal(verdict[0], 'f');      /* it failed, as it should */
	assert_int_equal(verdict[1], 'd');      /* SIGPIPE still default */
	assert_int_equal(verdict[2], 'q');      /* and nothing printed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library_is_silent_by_default),
		cmocka_unit_test(test_handler_receives_messages_by_level),
		cmocka_unit_test(test_a_long_message_is_cut_visibly_at_a_letter),
		cmocka_unit_test(test_escaped_text_is_cut_between_escapes_and_says_so),
		cmocka_unit_test(test_a_long_escaped_line_is_cut_between_escapes),
		cmocka_unit_test(test_sigpipe_disposition_is_left_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
