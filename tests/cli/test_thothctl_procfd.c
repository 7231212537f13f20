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
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/held_child.h"
#include "../common/testutil.h"
#include "pidpin.h"
#include "procfd.h"
#include "../common/pidfd_play.h"

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
	if (thothctl_pid_pin((uint32_t)c->pid, pidfd, why, sizeof why) || *pidfd < 0)
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
	assert_false(thoth__pid_exited(pidfd));
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
	assert_true(thoth__pid_exited(pidfd));
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
	assert_true(thoth__pid_exited(pidfd));
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
	int pidfd = 0;
	assert_int_equal(thothctl_pid_pin((uint32_t)pid, &pidfd, why, sizeof why), 1);
	assert_int_equal(pidfd, -1);
	char want[64];
	snprintf(want, sizeof want, "process %d has exited", (int)pid);
	assert_string_equal(why, want);
	assert_int_equal(thothctl_pid_pin(0, &pidfd, why, sizeof why), 1);
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

/* Descriptors this process holds (/proc/self/fd): a pinned read must
 * leave as many as it found. */
/* thothctl_peer_memfd_read's reader as `probe maps` has one: takes the
 * bytes (in place of mapping the maps), and, with a child to end, ends and
 * reaps it before returning: the process exits between the read and the
 * check, its number free for any other. */
typedef struct reader_ctx {
	char got[8];
	child_t *end_it;
} reader_ctx_t;

static int take_bytes(int fd, void *ctx, char *why, size_t why_len)
{
	reader_ctx_t *r = ctx;
	if (pread(fd, r->got, 4, 0) != 4) {
		snprintf(why, why_len, "short read");
		return 1;
	}
	if (r->end_it)
		end(r->end_it);
	return 0;
}

static void test_probe_maps_read_holds_for_a_live_process(void **state)
{
	(void)state;
	pidfd_real_kernel();
	int before = test_count_fds();        /* the child's release pipe not counted */
	child_t c = spawn(false);
	reader_ctx_t r = { .end_it = NULL };
	char why[256] = "", path[64];
	assert_int_equal(thothctl_peer_memfd_read((uint32_t)c.pid, FDNUM, take_bytes, &r, path, sizeof path, why,
						  sizeof why), 0);
	assert_memory_equal(r.got, "maps", 4);
	end(&c);
	assert_int_equal(test_count_fds(), before);
}

/* The branch `probe maps` had no test for: the process exits after its
 * descriptor was read and before the pidfd is checked.  What was read is
 * dropped (2), said, and no pidfd leaks. */
static void test_probe_maps_read_of_a_process_that_exits_meanwhile_is_dropped(void **state)
{
	(void)state;
	pidfd_real_kernel();
	int before = test_count_fds();        /* the child's release pipe not counted */
	child_t c = spawn(false);
	reader_ctx_t r = { .end_it = &c };
	char why[256] = "", path[64];
	assert_int_equal(thothctl_peer_memfd_read((uint32_t)c.pid, FDNUM, take_bytes, &r, path, sizeof path, why,
						  sizeof why), 2);
	char want[160];
	snprintf(want, sizeof want, "process %d exited while /proc/%d/fd/%d was read", (int)c.pid, (int)c.pid,
		 FDNUM);
	if (!strstr(why, want))
		fail_msg("\"%s\" lacks \"%s\"", why, want);
	assert_int_equal(test_count_fds(), before);
}

/* The same process read through the shared pinned reader (pidpin.h, which
 * `status --watch`, "did not answer", thothd and the lock scan use): a
 * process ended by the hook between its read and its check is ESRCH, and
 * what was read is not handed back as its. */
static child_t *hook_child;

static void end_hook_child(uint32_t pid)
{
	assert_int_equal((int)pid, (int)hook_child->pid);
	end(hook_child);
}

static void test_a_pinned_proc_read_of_a_process_that_exits_meanwhile_is_esrch(void **state)
{
	(void)state;
	pidfd_real_kernel();
	int before = test_count_fds();        /* the child's release pipe not counted */
	child_t c = spawn(false);
	int pidfd = thoth__pid_pin((uint32_t)c.pid);
	assert_true(pidfd >= 0);
	char buf[64];
	assert_true(thoth__proc_read_pinned((uint32_t)c.pid, pidfd, "comm", buf, sizeof buf) > 0);
	assert_true(strlen(buf) > 0);
	struct stat st;
	assert_int_equal(thoth__proc_stat_pinned((uint32_t)c.pid, pidfd, "exe", &st), 0);
	hook_child = &c;
	thoth__pidpin_after_read = end_hook_child;
	errno = 0;
	assert_int_equal(thoth__proc_read_pinned((uint32_t)c.pid, pidfd, "comm", buf, sizeof buf), -1);
	thoth__pidpin_after_read = NULL;
	assert_int_equal(errno, ESRCH);
	assert_string_equal(buf, "");
	assert_int_equal(thoth__proc_stat_pinned((uint32_t)c.pid, pidfd, "exe", &st), -1);
	assert_int_equal(errno, ESRCH);
	close(pidfd);
	assert_int_equal(test_count_fds(), before);
}

/* A kernel without pidfd_open (before 5.3), or a seccomp filter (ENOSYS or
 * EPERM): every pinned path reads unpinned, with one warning per run. */

static void test_without_pidfds_reads_are_unpinned_and_said_once(void **state)
{
	(void)state;
	pidfd_real_kernel();
	child_t c = spawn(false);
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	const int errs[] = { ENOSYS, EPERM };
	int rc[2], pidfds[2];
	char why[256] = "", path[64];
	for (int i = 0; i < 2; i++) {
		pidfd_open_fails(errs[i]);
		reader_ctx_t r = { .end_it = NULL };
		rc[i] = thothctl_peer_memfd_read((uint32_t)c.pid, FDNUM, take_bytes, &r, path, sizeof path, why,
						 sizeof why);
		assert_memory_equal(r.got, "maps", 4);
		pidfds[i] = 0;
		assert_int_equal(thothctl_pid_pin((uint32_t)c.pid, &pidfds[i], why, sizeof why), 0);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	pidfd_real_kernel();
	rewind(tmp);
	char out[1024];
	size_t n = fread(out, 1, sizeof out - 1, tmp);
	out[n] = 0;
	fclose(tmp);
	assert_int_equal(rc[0], 0);
	assert_int_equal(rc[1], 0);
	assert_int_equal(pidfds[0], -1);
	assert_int_equal(pidfds[1], -1);
	char want[200];
	snprintf(want, sizeof want, "thothctl: warning: pidfd_open is not available (a kernel before Linux 5.3, "
		 "or a seccomp filter): process %d is not pinned", (int)c.pid);
	if (strncmp(out, want, strlen(want)) != 0)
		fail_msg("warning \"%s\", not \"%s\"", out, want);
	assert_null(strchr(out, '\n') ? strstr(strchr(out, '\n') + 1, "warning") : NULL);  /* once */
	end(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_live_process_memfd_is_read_and_its_pin_holds),
		cmocka_unit_test(test_a_process_that_exits_during_the_reads_is_told),
		cmocka_unit_test(test_a_pid_whose_process_is_gone_is_not_pinned),
		cmocka_unit_test(test_a_descriptor_that_is_no_memfd_is_refused_by_name),
		cmocka_unit_test(test_probe_maps_read_holds_for_a_live_process),
		cmocka_unit_test(test_probe_maps_read_of_a_process_that_exits_meanwhile_is_dropped),
		cmocka_unit_test(test_a_pinned_proc_read_of_a_process_that_exits_meanwhile_is_esrch),
		cmocka_unit_test(test_without_pidfds_reads_are_unpinned_and_said_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
