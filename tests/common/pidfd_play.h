/*
 * pidfd_play.h - the pidfd_open seam of kernel/ipc/pidpin.h played by a
 * test: a kernel without pidfd_open (ENOSYS), a seccomp filter (EPERM), a
 * process already gone (ESRCH); and the real kernel put back at the start
 * of each test, whatever an earlier failed one left set (a failed
 * assertion skips its restoring lines).  Two suites had their own copies
 * of both (tests/cli/test_thothctl_procfd.c, tests/thothd/test_thothd_peer_pidfd.c).
 * Include after pidpin.h.
 */
#ifndef THOTH_TESTS_COMMON_PIDFD_PLAY_H
#define THOTH_TESTS_COMMON_PIDFD_PLAY_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

static long (*pidfd_real_open)(pid_t pid, unsigned flags);
static int pidfd_played_errno;

static long pidfd_open_played(pid_t pid, unsigned flags)
{
	(void)pid;
	(void)flags;
	errno = pidfd_played_errno;
	return -1;
}

/* pidfd_open as the kernel answers it. */
static inline void pidfd_open_real(void)
{
	if (!pidfd_real_open)
		pidfd_real_open = thoth__pidfd_open_call;
	thoth__pidfd_open_call = pidfd_real_open;
}

/* The real kernel: pidfd_open real, no hook after a pinned read. */
static inline void pidfd_real_kernel(void)
{
	pidfd_open_real();
	thoth__pidpin_after_read = NULL;
}

/* pidfd_open failing with ERR until pidfd_open_real(). */
static inline void pidfd_open_fails(int err)
{
	pidfd_open_real();
	pidfd_played_errno = err;
	thoth__pidfd_open_call = pidfd_open_played;
}

#endif
