/*
 * procfd.c - another process's memfd, read through /proc with the process
 * pinned by a pidfd (procfd.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "procfd.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int thothctl_pid_pin(uint32_t pid, char *why, size_t why_len)
{
	if (!pid || pid > INT32_MAX) {
		snprintf(why, why_len, "process %u: no such pid", pid);
		return -1;
	}
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(why, why_len, e == ESRCH ? "process %u has exited" : "process %u: pidfd_open: %s", pid,
			 strerror(e));
		errno = e;      /* the caller may tell ESRCH from a kernel without pidfds */
	}
	return fd;
}

bool thothctl_pid_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

int thothctl_open_peer_memfd(uint32_t pid, int fdnum, int *out, char *path, size_t path_cap, char *why,
			     size_t why_len)
{
	*out = -1;
	snprintf(path, path_cap, "/proc/%u/fd/%d", pid, fdnum);
	/* The descriptor number is the process's word: only a regular file is
	 * then opened for reading and writing (never blocking, never taking a
	 * terminal). */
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0) {
		snprintf(why, why_len, "cannot open its maps at %s: %s", path, strerror(errno));
		return 1;
	}
	struct stat st = { 0 };
	if (fstat(pfd, &st) != 0) {
		snprintf(why, why_len, "maps at %s: cannot fstat it: %s", path, strerror(errno));
		close(pfd);
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "maps at %s: not a memfd (%s)", path,
			 S_ISFIFO(st.st_mode) ? "a pipe or FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
			 : S_ISCHR(st.st_mode) ? "a character device" : S_ISDIR(st.st_mode) ? "a directory"
			 : "not a regular file");
		close(pfd);
		return 1;
	}
	/* Only a file on shmem (a memfd) is opened: a file on disk, FUSE or
	 * NFS is not opened at all (its open could block on the peer's
	 * server, break its lease, or open as us a file the peer could only
	 * name through an O_PATH descriptor of its own). */
	struct statfs sfs;
	if (fstatfs(pfd, &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) {
		snprintf(why, why_len, "maps at %s: a regular file not on shmem, not a memfd: not opened", path);
		close(pfd);
		return 1;
	}
	char again[64];
	snprintf(again, sizeof again, "/proc/self/fd/%d", pfd);
	int fd = open(again, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	close(pfd);
	if (fd < 0) {
		snprintf(why, why_len, "cannot open its maps at %s: %s", path, strerror(errno));
		return 1;
	}
	*out = fd;
	return 0;
}
