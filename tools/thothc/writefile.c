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
#include <string.h>
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

/* The folder that holds PATH, synced so that the rename replacing PATH is
 * on disk too: 0 or an errno.  A folder we may not open (write and search
 * only) cannot be synced by us: left to the kernel's writeback. */
static int sync_folder(const char *path)
{
	char dir[4096 + 8];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == EACCES || errno == EPERM ? 0 : errno;
	int e = 0;
	/* EINVAL: a file system that cannot sync folders (it has no
	 * journal to order the rename); nothing more to do there */
	if (fsync(fd) != 0 && errno != EINVAL)
		e = errno;
	close(fd);
	return e;
}

int thothc_write_whole(const char *path, const void *buf, size_t len, const struct stat *keep,
		       const char **what)
{
	const char *step_;
	if (!what)
		what = &step_;
	*what = "create a temporary file beside it";
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
	*what = "write";
	int e = write_all(fd, buf, len);
	if (!e && (*what = "chmod", fchmod(fd, mode) != 0))
		e = errno;
	/* An owner we cannot give it (EPERM) fails: the caller writes in place
	 * rather than hand the user's file to us. */
	if (!e && keep && (*what = "chown", fchown(fd, keep->st_uid, keep->st_gid) != 0))
		e = errno;
	/* On disk before it replaces the old: without it, a crash after the
	 * rename could leave the new name on an empty file (the data not yet
	 * written back), a generated header that the next build takes as up
	 * to date. */
	if (!e && (*what = "fsync", fsync(fd) != 0))
		e = errno;
	if (close(fd) != 0 && !e)
		*what = "close", e = errno;
	if (!e && (*what = "rename", rename(tmp, path) != 0))
		e = errno;
	if (e) {
		unlink(tmp);
		errno = e;
		return -1;
	}
	/* and the rename itself, in the folder's entries */
	if ((e = sync_folder(path)) != 0) {
		*what = "fsync of its folder (the file was replaced)";
		errno = e;
		return -1;
	}
	*what = NULL;
	return 0;
}
