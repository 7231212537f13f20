/*
 * procfd.c - another process's memfd, read through /proc with the process
 * pinned by a pidfd (procfd.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "pidpin.h"
#include "procfd.h"

char thothctl_stat_state(const char *stat, char *comm, size_t comm_cap)
{
	const char *open_ = strchr(stat, '('), *close_ = strrchr(stat, ')');
	if (comm && comm_cap)
		comm[0] = 0;
	if (!close_ || close_[1] != ' ')
		return 0;
	if (comm && comm_cap && open_ && close_ > open_)
		snprintf(comm, comm_cap, "%.*s", (int)(close_ - open_ - 1), open_ + 1);
	return close_[2];
}

int thothctl_pid_pin(uint32_t pid, int *pidfd, char *why, size_t why_len)
{
	*pidfd = thoth__pid_pin(pid);
	if (*pidfd >= 0)
		return 0;
	int e = errno;
	if (e == ENOSYS) {
		/* No pidfds here: read unpinned, said once per run (the same
		 * for every pinned read thothctl makes: docs/PROBES.md "Pinned
		 * pids"). */
		static bool warned;
		if (!warned)
			fprintf(stderr, "thothctl: warning: pidfd_open is not available (a kernel before "
				"Linux 5.3, or a seccomp filter): process %u is not pinned (a pid reused "
				"meanwhile would be taken for it)\n", pid);
		warned = true;
		errno = e;
		return 0;
	}
	if (e == EINVAL)
		snprintf(why, why_len, "process %u: no such pid", pid);
	else if (e == ESRCH)
		snprintf(why, why_len, "process %u has exited", pid);
	else
		snprintf(why, why_len, "process %u: pidfd_open: %s", pid, strerror(e));
	errno = e;      /* the caller may tell ESRCH (gone) from the rest */
	return 1;
}

int thothctl_peer_memfd_read(uint32_t pid, int fdnum, thothctl_peer_read_fn read, void *ctx, char *path,
			     size_t path_cap, char *why, size_t why_len)
{
	snprintf(path, path_cap, "/proc/%u/fd/%d", pid, fdnum);
	int pidfd;
	if (thothctl_pid_pin(pid, &pidfd, why, why_len))
		return 1;
	int fd = -1;
	int r = thothctl_open_peer_memfd(pid, fdnum, &fd, path, path_cap, why, why_len);
	if (!r) {
		r = read(fd, ctx, why, why_len) ? 1 : 0;
		close(fd);
	}
	/* What READ took is mapped or copied: whatever happens to the process
	 * now, it is what FDNUM named.  Was that PID's all along? */
	if (!thoth__pid_lived_through(pid, pidfd) && !r) {
		snprintf(why, why_len, "process %u exited while %s was read (its pid may name another "
			 "process now)", pid, path);
		r = 2;
	}
	if (pidfd >= 0)
		close(pidfd);
	return r;
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
