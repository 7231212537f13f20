/*
 * test_harness_cleanup.c - the thothd harness leaves nothing behind on the
 * paths a test can end on without its teardown (docs/TESTING.md
 * "Leftovers guard"): a setup that failed after harness_setup (cmocka runs
 * no teardown then), a failed assertion that jumped past the teardown of a
 * harness on the test's stack, and a SIGTERM.  Each left a
 * /tmp/thothd-test-* dir.  The runtime dir is made under $TMPDIR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "../common/tmpdir.h"

typedef struct seen {
	char dir[64];
	pid_t child;
} seen_t;

/* In a child process under a TMPDIR of ours: a harness set up on the
 * stack with one spawned child, its dir and child's pid sent up the pipe;
 * then ENDING ends the process without a teardown.  Returns the child's
 * wait status; *SEEN what it sent. */
static int run_without_teardown(void (*ending)(void), const char *tmp, seen_t *seen)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		setenv("TMPDIR", tmp, 1);
		harness_t h;
		if (harness_setup(&h))
			_exit(2);
		const char *const argv[] = { "/bin/sleep", "300", NULL };
		seen_t s = { .child = harness_spawn(&h, "sleep", argv) };
		/* A tree below the runtime dir, as thothd's own can hold. */
		char sub[128];
		snprintf(sub, sizeof sub, "%s/sub", h.dir);
		if (mkdir(sub, 0700))
			_exit(5);
		snprintf(sub, sizeof sub, "%s/sub/deeper", h.dir);
		if (mkdir(sub, 0700))
			_exit(5);
		snprintf(sub, sizeof sub, "%s/sub/deeper/file", h.dir);
		int fd = open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			_exit(5);
		close(fd);
		memcpy(s.dir, h.dir, sizeof s.dir);
		if (write(p[1], &s, sizeof s) != (ssize_t)sizeof s)
			_exit(3);
		ending();
		_exit(4);
	}
	close(p[1]);
	memset(seen, 0, sizeof *seen);
	assert_int_equal(read(p[0], seen, sizeof *seen), (ssize_t)sizeof *seen);
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void exit_failed(void)
{
	exit(1);                /* cmocka's end after a failed setup or test */
}

static void terminated(void)
{
	raise(SIGTERM);
}

static void check_gone(const char *tmp, const seen_t *seen)
{
	size_t n = strlen(tmp);
	/* under TMPDIR, or in /tmp where TMPDIR is too long (tmpdir.h) */
	assert_true((strncmp(seen->dir, tmp, n) == 0 && seen->dir[n] == '/') ||
		    (n + sizeof "/thothd-test-XXXXXX" > sizeof seen->dir && strncmp(seen->dir, "/tmp/", 5) == 0));
	struct stat st;
	if (stat(seen->dir, &st) == 0)
		fail_msg("%s left behind", seen->dir);
	assert_int_equal(errno, ENOENT);
	assert_true(seen->child > 0);
}

/* The TMPDIR each case gives its child: short (the harness's runtime dir
 * has 64 bytes), removed by the teardown also when a case failed. */
static char tmp[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int remove_tmp(void **state)
{
	(void)state;
	if (tmp[0])
		nftw(tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	tmp[0] = 0;
	return 0;
}

static void with_tmp(void (*ending)(void), int want_signal)
{
	assert_true(test_tmp_template(tmp, sizeof tmp, "hc"));
	assert_non_null(mkdtemp(tmp));
	seen_t seen;
	int status = run_without_teardown(ending, tmp, &seen);
	if (want_signal)
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == want_signal);
	else
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	check_gone(tmp, &seen);
	assert_int_equal(rmdir(tmp), 0);        /* nothing else made there */
	tmp[0] = 0;
}

static void test_exit_without_teardown_removes_the_runtime_dir(void **state)
{
	(void)state;
	with_tmp(exit_failed, 0);
}

/* The signal still ends the process (re-raised after the cleanup). */
static void test_sigterm_removes_the_runtime_dir(void **state)
{
	(void)state;
	with_tmp(terminated, SIGTERM);
}

/* A test's fork()ed child that ends (exit, or a SIGTERM to it) while its
 * parent's harness is up: the child inherits the exit hook and the signal
 * handlers, which are its parent's, and removed nothing of the parent's
 * (they removed the parent's runtime dir from under its thothd). */
static void test_a_forked_child_leaves_its_parents_dir_alone(void **state)
{
	(void)state;
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	const int endings[] = { 0, SIGTERM };
	for (size_t i = 0; i < sizeof endings / sizeof endings[0]; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (endings[i])
				raise(endings[i]);
			exit(0);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		struct stat st;
		if (stat(h.dir, &st) != 0) {
			harness_teardown(&h);
			fail_msg("a child's %s removed its parent's runtime dir %s", endings[i] ? "SIGTERM" : "exit",
				 h.dir);
		}
	}
	harness_teardown(&h);
}

/* A TMPDIR too long for the harness's dir (its sockets' paths would not
 * fit a sun_path) gets a short folder in /tmp named for the stage, which
 * the stage's guard also checks, removed by the teardown (it was refused
 * until stop 43: ~20 socket tests failed under a developer's long TMPDIR). */
static void test_a_too_long_tmpdir_gets_a_short_folder_of_the_stages(void **state)
{
	(void)state;
	char *was = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	char *stage = getenv("THOTH_TEST_STAGE") ? strdup(getenv("THOTH_TEST_STAGE")) : NULL;
	setenv("TMPDIR", "/tmp/a-folder-name-long-enough-to-leave-no-room-for-the-runtime-dir", 1);
	/* The stage's own mark where there is one, so that its guard checks
	 * the folder; a made-up thoth-stage-1-... was a dead guard's to any
	 * other guard starting meanwhile, which removed it under this test. */
	const char *mark = stage && strrchr(stage, '/') ? strrchr(stage, '/') + 1 : "harness-test-stage";
	if (!stage || !strrchr(stage, '/'))
		setenv("THOTH_TEST_STAGE", "/somewhere/harness-test-stage", 1);
	char want[64];
	snprintf(want, sizeof want, "/tmp/%s-thothd-test-", mark);
	harness_t h;
	int r = harness_setup(&h);
	if (was)
		setenv("TMPDIR", was, 1);
	else
		unsetenv("TMPDIR");
	if (stage)
		setenv("THOTH_TEST_STAGE", stage, 1);
	else
		unsetenv("THOTH_TEST_STAGE");
	free(was);
	free(stage);                    /* want has its mark */
	assert_int_equal(r, 0);
	char dir[sizeof h.dir];
	memcpy(dir, h.dir, sizeof dir);
	bool named = strncmp(dir, want, strlen(want)) == 0 && strlen(dir) == strlen(want) + 6;
	struct stat st;
	bool made = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
	harness_teardown(&h);
	if (!named || !made)
		fail_msg("runtime dir %s: %s", dir, !named ? "not /tmp/MARK-thothd-test-XXXXXX" : "not made");
	assert_int_equal(stat(dir, &st), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_exit_without_teardown_removes_the_runtime_dir, remove_tmp),
		cmocka_unit_test_teardown(test_sigterm_removes_the_runtime_dir, remove_tmp),
		cmocka_unit_test(test_a_forked_child_leaves_its_parents_dir_alone),
		cmocka_unit_test(test_a_too_long_tmpdir_gets_a_short_folder_of_the_stages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
