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
#include "thoth/channel.h"
#include "thoth/log.h"
#include "thoth/service.h"

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
	char path[] = "/tmp/thoth-log-test-XXXXXX";
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
		cmocka_unit_test(test_sigpipe_disposition_is_left_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
