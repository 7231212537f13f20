/*
 * test_loop_arm_failure - a loop whose timerfd_settime failed re-arms at
 * its next turn.  The loop skips a re-arm when nothing it reads changed
 * (loop.c rearm); a failed arm after the window page changed left it
 * "synced" with the page already saying the new instant, so every later
 * turn skipped and the timerfd stayed on the old grid point (review of
 * wake33).  timerfd_settime is overridden here (the test links libthoth's
 * loop statically) to fail on demand.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/loop.h"
#include "timerpage.h"
#include "../common/tmpdir.h"

static int fail_settime, settime_calls;

int timerfd_settime(int fd, int flags, const struct itimerspec *n, struct itimerspec *o)
{
	settime_calls++;
	if (fail_settime) {
		errno = ENOMEM;
		return -1;
	}
	return (int)syscall(SYS_timerfd_settime, fd, flags, n, o);
}

static void nothing(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)loop, (void)t, (void)arg;
}

static void test_a_failed_arm_after_a_page_change_is_retried(void **state)
{
	(void)state;
	/* The doorbells are sockets in DIR ("DIR/tk.GEN.SLOT"): a short
	 * folder of the stage's when TMPDIR is long. */
	char dir[TEST_SOCK_DIR_CAP("/tk.ffffffff.63")];
	assert_true(test_sock_template(dir, sizeof dir, "thoth-armfail"));
	assert_non_null(mkdtemp(dir));
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	uint64_t deadline = thoth_clock_now() + 10000000000ull, slack = 5000000000ull;
	assert_int_equal(thoth_loop_add_timer(loop, deadline, slack, nothing, NULL, NULL), 0);
	/* No page yet: armed on the grid, somewhere in the window. */
	assert_true(thoth_loop_armed_at(loop) >= deadline && thoth_loop_armed_at(loop) <= deadline + slack);
	assert_int_equal(thoth__timerpage_create(dir), 0);
	fail_settime = 1;
	assert_int_not_equal(thoth_loop_run_once(loop, false), 0);     /* the failure said */
	fail_settime = 0;
	settime_calls = 0;
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	/* With a page the loop arms for the window's end, and did retry. */
	assert_true(settime_calls >= 1);
	assert_int_equal(thoth_loop_armed_at(loop), deadline + slack);
	thoth_loop_free(loop);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* A runtime dir too long for a doorbell's path is refused with a reason
 * naming it and the limit (it was a bare THOTH_E_NO_SPACE). */
static void test_a_dir_too_long_for_the_doorbells_is_refused_by_name(void **state)
{
	(void)state;
	char dir[200];
	memset(dir, 'd', sizeof dir - 1);
	dir[0] = '/';
	dir[sizeof dir - 1] = 0;
	assert_int_equal(thoth__timerpage_create(dir), THOTH_E_IO);
	assert_int_equal(thoth_last_errno(), ENAMETOOLONG);
	const char *what = thoth_last_error()->what;
	assert_non_null(strstr(what, "a dir of 199 bytes (at most 95): /ddd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_dir_too_long_for_the_doorbells_is_refused_by_name),
		cmocka_unit_test(test_a_failed_arm_after_a_page_change_is_retried),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
