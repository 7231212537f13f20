/*
 * writefile.c - replace a file whole or not at all (writefile.h).  fmt and
 * gen both truncated the file and then wrote it: a failure in between left
 * a user's schema empty, or a generated header cut short that the next
 * build took as up to date.
 */
#define _GNU_SOURCE             /* mkstemp, fchmod, fchown */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writefile.h"

/* LEN bytes of BUF at offset 0 of FD: 0 or an errno. */
static int write_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = pwrite(fd, (const char *)buf + off, len - off, (off_t)off);
		if (n > 0)
			off += (size_t)n;
		else if (n < 0 && errno != EINTR)
			return errno;
		else if (n == 0)
			return EIO;
	}
	return 0;
}

int thothc_write_in_place(const char *path, const void *buf, size_t len, bool *touched)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int e = posix_fallocate(fd, 0, (off_t)len);
	if (e && e != EOPNOTSUPP && e != EINVAL) {
		close(fd);
		errno = e;
		return -1;
	}
	*touched = true;
	e = write_all(fd, buf, len);
	if (!e && ftruncate(fd, (off_t)len) != 0)
		e = errno;
	if (!e && fsync(fd) != 0)
		e = errno;
	if (close(fd) != 0 && !e)
		e = errno;
	errno = e;
	return e ? -1 : 0;
}

int thothc_write_whole(const char *path, const void *buf, size_t len, const struct stat *keep)
{
	char tmp[4096 + 8];
	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	mode_t mode;
	if (keep) {
		mode = keep->st_mode & 07777;
	} else {
		mode_t mask = umask(0);         /* mkstemp made it 0600: as fopen would */
		umask(mask);
		mode = 0666 & ~mask;
	}
	int e = write_all(fd, buf, len);
	if (!e && fchmod(fd, mode) != 0)
		e = errno;
	/* An owner we cannot give it (EPERM) fails: the caller writes in place
	 * rather than hand the user's file to us. */
	if (!e && keep && fchown(fd, keep->st_uid, keep->st_gid) != 0)
		e = errno;
	if (!e && keep && fsync(fd) != 0)       /* a user's file: on disk before it replaces the old */
		e = errno;
	if (close(fd) != 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) != 0)
		e = errno;
	if (e) {
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}
