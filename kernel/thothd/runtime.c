/*
 * runtime.c - the runtime directory and the single-instance lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime.h"
#include "thoth/error.h"
#include "thoth/service.h"

int thothd_runtime_dir(const char *explicit_dir, char *out, size_t cap)
{
	return thoth_runtime_dir(explicit_dir, out, cap);  /* the rule every thoth process shares */
}

int thothd_runtime_dir_prepare(const char *dir, char *why, size_t why_len)
{
	/* Every endpoint is a path in it, which services register and clients
	 * open from their own working directories: a relative one names
	 * another place (or nothing) for each of them. */
	if (dir[0] != '/') {
		snprintf(why, why_len, "runtime dir '%s' is relative: services and clients started "
			 "elsewhere would not find its sockets; give an absolute path", dir);
		return THOTH_E_INVAL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, why_len, "cannot create runtime dir %s: %s", dir, strerror(errno));
		return THOTH_E_IO;
	}
	struct stat st;
	if (lstat(dir, &st) < 0) {
		snprintf(why, why_len, "cannot stat runtime dir %s: %s", dir, strerror(errno));
		return THOTH_E_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, why_len, "runtime dir %s is not a directory (or is a symlink)", dir);
		return THOTH_E_PERM;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, why_len, "runtime dir %s is owned by uid %u, not by us (uid %u)", dir,
			 (unsigned)st.st_uid, (unsigned)geteuid());
		return THOTH_E_PERM;
	}
	if (st.st_mode & 077) {
		snprintf(why, why_len,
			 "runtime dir %s has mode %03o: group/other must have no access "
			 "(chmod 700 it or pick another with --runtime-dir)",
			 dir, (unsigned)(st.st_mode & 0777));
		return THOTH_E_PERM;
	}
	return 0;
}

int thothd_pidfile_lock(const char *dir, int *other_pid, thothd_predecessor_t *prev)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, THOTHD_PIDFILE_NAME) >= (int)sizeof path)
		return THOTH_E_INVAL;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return THOTH_E_IO;      /* errno says why (EACCES, ELOOP, EISDIR...) */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		char buf[32] = { 0 };
		ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
		*other_pid = n > 0 ? atoi(buf) : 0;
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? THOTH_E_BUSY : THOTH_E_IO;
	}
	if (prev) {
		char old[32] = { 0 };
		struct stat st;
		memset(prev, 0, sizeof *prev);
		if (pread(fd, old, sizeof old - 1, 0) > 0 && atoi(old) > 0 && fstat(fd, &st) == 0) {
			prev->pid = atoi(old);
			prev->started = st.st_mtim;
		}
	}
	char buf[32];
	int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
	ssize_t w = ftruncate(fd, 0) < 0 ? -1 : pwrite(fd, buf, (size_t)len, 0);
	if (w != len) {
		int e = w < 0 ? errno : ENOSPC;         /* a short write: a full disk */
		close(fd);
		errno = e;
		return THOTH_E_IO;
	}
	return fd;
}

void thothd_pidfile_release(const char *dir, int fd)
{
	char path[4096];
	/* Unlink while still holding the lock, so nobody sees our stale pid. */
	if (snprintf(path, sizeof path, "%s/%s", dir, THOTHD_PIDFILE_NAME) < (int)sizeof path)
		unlink(path);
	if (fd >= 0)
		close(fd);
}
