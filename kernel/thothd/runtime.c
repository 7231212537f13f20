/*
 * runtime.c - the runtime directory and the single-instance lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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

/* The pid in the pid file open at FD: a decimal 1..INT_MAX, then a
 * newline or the end, as thothd writes it; 0 for anything else (empty,
 * negative, not a number, too large: "4294967297" read by atoi() was
 * pid 1).  Only ever said in a message, never signalled. */
static int pidfile_pid(int fd)
{
	char buf[32] = { 0 };
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0 || buf[0] < '1' || buf[0] > '9')
		return 0;
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno || v <= 0 || v > INT_MAX || (*end && strcmp(end, "\n")))
		return 0;
	return (int)v;
}

/* The pid of the process holding the flock on the file open at FD, from
 * /proc/locks (dev:inode), or 0 when it cannot be told.  The file's own pid
 * is not the holder's while a thothd that just won the lock has not yet
 * written its pid over its crashed predecessor's: two thothds starting
 * together after a crash, the loser named the crashed pid as the thothd
 * "already running". */
static int flock_holder(int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return 0;
	FILE *f = fopen("/proc/locks", "re");
	if (!f)
		return 0;
	char line[256];
	int holder = 0;
	while (!holder && fgets(line, sizeof line, f)) {
		char kind[16], mode[16], rw[16];
		int pid;
		unsigned maj, min;
		unsigned long long ino;
		/* "1: FLOCK  ADVISORY  WRITE 4711 fd:01:123456 0 EOF"; a waiter's
		 * line starts "1: -> ", and reads as no match here. */
		if (sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%llu", kind, mode, rw, &pid, &maj, &min,
			   &ino) == 7 &&
		    strcmp(kind, "FLOCK") == 0 && pid > 0 && maj == major(st.st_dev) &&
		    min == minor(st.st_dev) && ino == (unsigned long long)st.st_ino)
			holder = pid;
	}
	fclose(f);
	return holder;
}

#define LOCK_AGAIN INT_MIN     /* not a THOTH_E_* code */

/* One try: the fd, a THOTH_E_* code, or LOCK_AGAIN when the file was
 * unlinked under us. */
static int pidfile_lock_once(const char *path, int *other_pid, thothd_predecessor_t *prev, int *tries)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return THOTH_E_IO;      /* errno says why (EACCES, ELOOP, EISDIR...) */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		int holder = e == EWOULDBLOCK ? flock_holder(fd) : 0;
		*other_pid = holder ? holder : pidfile_pid(fd);
		close(fd);
		errno = e;
		return e == EWOULDBLOCK ? THOTH_E_BUSY : THOTH_E_IO;
	}
	struct stat st = { 0 };
	if (fstat(fd, &st) < 0)
		memset(&st, 0, sizeof st);      /* no start time to say; st_nlink 0 is not read */
	else if (st.st_nlink == 0) {
		/* We opened the file of a thothd that was stopping cleanly: it
		 * unlinked the file and closed it between our open and our flock.
		 * A lock on that unlinked file locks nothing (a third thothd would
		 * create a new file and start too) and its pid is no crashed
		 * predecessor's: open the path again. */
		close(fd);
		if (++*tries > 8) {
			errno = EAGAIN;
			return THOTH_E_IO;
		}
		return LOCK_AGAIN;
	}
	if (prev) {
		memset(prev, 0, sizeof *prev);
		prev->pid = pidfile_pid(fd);
		prev->started = st.st_mtim;     /* 0 when fstat failed: "an unknown time" */
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

int thothd_pidfile_lock(const char *dir, int *other_pid, thothd_predecessor_t *prev)
{
	char path[4096];
	if (snprintf(path, sizeof path, "%s/%s", dir, THOTHD_PIDFILE_NAME) >= (int)sizeof path)
		return THOTH_E_INVAL;
	int tries = 0, fd;
	while ((fd = pidfile_lock_once(path, other_pid, prev, &tries)) == LOCK_AGAIN)
		;
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
