/*
 * pidpin.c - /proc/PID read with the process pinned by a pidfd (pidpin.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pidpin.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

static long pidfd_open_syscall(pid_t pid, unsigned flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

long (*thoth__pidfd_open_call)(pid_t pid, unsigned flags) = pidfd_open_syscall;
void (*thoth__pidpin_after_read)(uint32_t pid);

int thoth__pid_pin(uint32_t pid)
{
	if (!pid || pid > INT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	int fd = (int)thoth__pidfd_open_call((pid_t)pid, 0);
	/* pidfd_open checks no permission: EPERM is a seccomp filter's
	 * refusal, told as the kernel without it. */
	if (fd < 0 && errno == EPERM)
		errno = ENOSYS;
	return fd;
}

bool thoth__pid_exited(int pidfd)
{
	if (pidfd < 0)
		return false;
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

bool thoth__pid_lived_through(uint32_t pid, int pidfd)
{
	if (thoth__pidpin_after_read)
		thoth__pidpin_after_read(pid);
	return !thoth__pid_exited(pidfd);
}

/* After a read of PID's files: -1 with ESRCH when the pinned process did
 * not live through it, else R with errno E kept. */
static ssize_t checked(uint32_t pid, int pidfd, ssize_t r, int e)
{
	if (!thoth__pid_lived_through(pid, pidfd)) {
		errno = ESRCH;
		return -1;
	}
	errno = e;
	return r;
}

ssize_t thoth__proc_read_pinned(uint32_t pid, int pidfd, const char *file, char *buf, size_t cap)
{
	if (cap)
		buf[0] = 0;
	char path[96];
	snprintf(path, sizeof path, "/proc/%u/%s", pid, file);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;
	if (fd >= 0) {
		n = cap ? read(fd, buf, cap - 1) : 0;
		int e = errno;
		close(fd);
		errno = e;
	}
	int e = errno;
	if (n >= 0 && cap)
		buf[n] = 0;
	n = checked(pid, pidfd, n, e);
	if (n < 0 && cap)
		buf[0] = 0;     /* another process's words, or none */
	return n;
}

int thoth__proc_stat_pinned(uint32_t pid, int pidfd, const char *file, struct stat *st)
{
	char path[96];
	snprintf(path, sizeof path, "/proc/%u/%s", pid, file);
	int r = stat(path, st);
	return (int)checked(pid, pidfd, r, errno);
}
