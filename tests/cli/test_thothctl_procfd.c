/*
 * test_thothctl_procfd.c - another process's memfd read through /proc with
 * the process pinned by a pidfd (tools/thothctl/procfd.c, used by
 * `thothctl probe maps`).
 *
 * A pid is a number the kernel hands out again: a process that exits
 * while thothctl reads /proc/PID/fd/N may leave PID to another one, whose
 * descriptor N thothctl would print as the probe's maps.  The pidfd taken
 * before the reads must say, after them, that the process it named is
 * gone (whatever holds the number now); the short-lived children here
 * exit at the points a real one could.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/held_child.h"
#include "procfd.h"

enum { FDNUM = 77 };

typedef struct child {
	pid_t pid;
	int release;    /* write end: closing it lets the child exit */
} child_t;

/* In the child: a memfd with "maps" in it (ARG true: a pipe instead) at
 * FDNUM. */
static bool hold_at_fdnum(void *arg)
{
	int fd;
	if (*(bool *)arg) {
		int p[2];
		if (pipe(p))
			return false;
		fd = p[0];
	} else {
		fd = memfd_create("maps", MFD_CLOEXEC);
		if (fd < 0 || write(fd, "maps", 4) != 4)
			return false;
	}
	return dup2(fd, FDNUM) == FDNUM;
}

/* A child holding at FDNUM a memfd with "maps" in it (PIPE_INSTEAD: a
 * pipe), alive until released. */
static child_t spawn(bool pipe_instead)
{
	child_t c;
	c.pid = test_held_child(hold_at_fdnum, &pipe_instead, &c.release);
	return c;
}

static void end(child_t *c)
{
	close(c->release);
	int st;
	assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
}

/* C pinned (*PIDFD) and its memfd at FDNUM opened, as thothctl probe maps
 * does: the descriptor, or the test fails. */
static int pin_and_open(const child_t *c, int *pidfd)
{
	char why[256] = "", path[64];
	*pidfd = thothctl_pid_pin((uint32_t)c->pid, why, sizeof why);
	if (*pidfd < 0)
		fail_msg("%s", why);
	int fd = -1;
	if (thothctl_open_peer_memfd((uint32_t)c->pid, FDNUM, &fd, path, sizeof path, why, sizeof why))
		fail_msg("%s", why);
	return fd;
}

static void test_a_live_process_memfd_is_read_and_its_pin_holds(void **state)
{
	(void)state;
	child_t c = spawn(false);
	int pidfd, fd = pin_and_open(&c, &pidfd);
	char buf[8] = "";
	assert_int_equal(pread(fd, buf, sizeof buf, 0), 4);
	assert_memory_equal(buf, "maps", 4);
	assert_false(thothctl_pid_exited(pidfd));
	close(fd);
	end(&c);
	close(pidfd);
}

static void test_a_process_that_exits_during_the_reads_is_told(void **state)
{
	(void)state;
	child_t c = spawn(false);
	int pidfd, fd = pin_and_open(&c, &pidfd);
	/* It exits and is reaped: its number is free for another process,
	 * and what was read can no longer be said to be its. */
	end(&c);
	assert_true(thothctl_pid_exited(pidfd));
	close(fd);
	close(pidfd);
	/* Exited but not yet reaped (a zombie, whose /proc entry remains):
	 * told too. */
	c = spawn(false);
	fd = pin_and_open(&c, &pidfd);
	close(fd);
	close(c.release);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)c.pid, &si, WEXITED | WNOWAIT), 0);
	assert_true(thothctl_pid_exited(pidfd));
	c.release = -1;
	assert_int_equal(waitpid(c.pid, NULL, 0), c.pid);
	close(pidfd);
}

static void test_a_pid_whose_process_is_gone_is_not_pinned(void **state)
{
	(void)state;
	child_t c = spawn(false);
	pid_t pid = c.pid;
	end(&c);
	char why[256] = "";
	assert_int_equal(thothctl_pid_pin((uint32_t)pid, why, sizeof why), -1);
	char want[64];
	snprintf(want, sizeof want, "process %d has exited", (int)pid);
	assert_string_equal(why, want);
	assert_int_equal(thothctl_pid_pin(0, why, sizeof why), -1);
	assert_string_equal(why, "process 0: no such pid");
}

static void test_a_descriptor_that_is_no_memfd_is_refused_by_name(void **state)
{
	(void)state;
	child_t c = spawn(true);
	char why[256] = "", path[64];
	int fd = -1;
	assert_int_equal(thothctl_open_peer_memfd((uint32_t)c.pid, FDNUM, &fd, path, sizeof path, why, sizeof why), 1);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(why, "not a memfd (a pipe or FIFO)"));
	assert_int_equal(thothctl_open_peer_memfd((uint32_t)c.pid, FDNUM + 1, &fd, path, sizeof path, why, sizeof why),
			 1);
	assert_non_null(strstr(why, "cannot open its maps at /proc/"));
	end(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_live_process_memfd_is_read_and_its_pin_holds),
		cmocka_unit_test(test_a_process_that_exits_during_the_reads_is_told),
		cmocka_unit_test(test_a_pid_whose_process_is_gone_is_not_pinned),
		cmocka_unit_test(test_a_descriptor_that_is_no_memfd_is_refused_by_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
