/*
 * unixsock.c - listen on and connect to Unix stream sockets with the
 * checks every thoth process needs (unixsock.h says which and why).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "thoth/error.h"
#include "unixsock.h"
#include "why.h"

enum { LISTEN_BACKLOG = 128 };

static int fill_addr(struct sockaddr_un *sa, const char *path, char *why, size_t why_len)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (!path || !*path || strlen(path) >= sizeof sa->sun_path) {
		thoth__why(why, why_len, "socket path %s is empty or longer than the %zu bytes a Unix "
			   "socket allows", path ? path : "(null)", sizeof sa->sun_path - 1);
		return THOTH_E_INVAL;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

int thoth__unix_peer(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred)
		return THOTH_E_IO;
	if (uid)
		*uid = cred.uid;
	if (pid)
		*pid = cred.pid;
	return 0;
}

int thoth__unix_check_dir(const char *dir, char *why, size_t why_len)
{
	struct stat st;
	if (lstat(dir, &st) < 0) {
		int e = errno;
		thoth__why(why, why_len, "runtime dir %s: %s", dir, strerror(e));
		return e == ENOENT || e == ENOTDIR ? THOTH_E_NOT_RUNNING : THOTH_E_IO;
	}
	if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
		thoth__why(why, why_len, "runtime dir %s is %s: refusing to talk to whatever is behind "
			   "it", dir, S_ISLNK(st.st_mode) ? "a symlink, not a directory" : "not a directory");
		return THOTH_E_PERM;
	}
	if (st.st_uid != geteuid()) {
		thoth__why(why, why_len, "runtime dir %s is owned by uid %u, not by us (uid %u): "
			   "refusing to talk to its socket", dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return THOTH_E_PERM;
	}
	if (st.st_mode & 077) {
		thoth__why(why, why_len, "runtime dir %s has mode %03o: group/other must have no access "
			   "(chmod 700 it)", dir, (unsigned)(st.st_mode & 0777));
		return THOTH_E_PERM;
	}
	return 0;
}

/* The directory part of PATH ("." when it has none). */
static int dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return snprintf(out, cap, ".") < (int)cap ? 0 : THOTH_E_INVAL;
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return THOTH_E_INVAL;
	memcpy(out, path, n);
	out[n] = 0;
	return 0;
}

int thoth__unix_connect(const char *path, unsigned flags, int timeout_ms, int *fd_out, char *why,
			size_t why_len)
{
	*fd_out = -1;
	thoth__why(why, why_len, "%s", "");
	struct sockaddr_un sa;
	int r = fill_addr(&sa, path, why, why_len);
	if (r)
		return r;
	if (flags & THOTH__UNIX_CHECK_DIR) {
		char dir[sizeof sa.sun_path];
		if (dir_of(path, dir, sizeof dir))
			return THOTH_E_INVAL;
		r = thoth__unix_check_dir(dir, why, why_len);
		if (r)
			return r;
	}
	bool nonblock = flags & THOTH__UNIX_NONBLOCK;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0) {
		thoth__why(why, why_len, "socket: %s", strerror(errno));
		return THOTH_E_IO;
	}
	/* A blocking connect to a Unix socket waits only while the listener's
	 * backlog is full (a hung listener): SO_SNDTIMEO bounds that wait. */
	struct timeval tv = { 0, 0 };
	if (!nonblock && timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000 + (timeout_ms == 0);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	int c;
	do
		c = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (c < 0 && errno == EINTR);
	if (c < 0) {
		int e = errno;
		close(fd);
		if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
			thoth__why(why, why_len, "nothing listens at %s", path);
			return THOTH_E_NOT_RUNNING;
		}
		if (e == EACCES || e == EPERM) {
			thoth__why(why, why_len, "no permission to connect to %s", path);
			return THOTH_E_PERM;
		}
		if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS) {
			thoth__why(why, why_len, "the listener at %s does not accept (backlog full)", path);
			return nonblock ? THOTH_E_AGAIN : THOTH_E_TIMEDOUT;
		}
		thoth__why(why, why_len, "connect %s: %s", path, strerror(e));
		return THOTH_E_IO;
	}
	if (!nonblock && timeout_ms >= 0) {
		tv = (struct timeval){ 0, 0 };  /* later sends: the caller's business */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	if (!(flags & THOTH__UNIX_ANY_PEER)) {
		uid_t uid;
		pid_t pid;
		if (thoth__unix_peer(fd, &uid, &pid)) {
			thoth__why(why, why_len, "SO_PEERCRED on %s: %s", path, strerror(errno));
			close(fd);
			return THOTH_E_IO;
		}
		if (uid != geteuid()) {
			thoth__why(why, why_len, "the process listening at %s (pid %d) runs as uid %u, "
				   "not as us (uid %u): refusing to talk to it", path, (int)pid,
				   (unsigned)uid, (unsigned)geteuid());
			close(fd);
			return THOTH_E_PERM;
		}
	}
	*fd_out = fd;
	return 0;
}

/* Give the socket file at PATH (just bound by us) mode MODE without
 * following a symlink someone may have swapped in: chmod through an
 * O_PATH descriptor of the very file (the /proc/self/fd link reaches the
 * inode, never a link target).  Falls back to chmod(PATH) without /proc. */
static int set_mode(const char *path, unsigned mode)
{
	int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return -1;
	struct stat st;
	if (fstat(pfd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		close(pfd);
		errno = EPERM;
		return -1;
	}
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", pfd);
	int r = chmod(proc, mode);
	if (r < 0 && errno == ENOENT)           /* no /proc */
		r = chmod(path, mode);
	int e = errno;
	close(pfd);
	errno = e;
	return r;
}

/* PATH exists: may it be replaced?  0 (it was removed), or an error. */
static int clear_path(const char *path, const struct sockaddr_un *sa, unsigned flags, char *why,
		      size_t why_len)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : THOTH_E_IO;
	if (!S_ISSOCK(st.st_mode)) {
		thoth__why(why, why_len, "%s exists and is not a socket: not removing it", path);
		return THOTH_E_EXISTS;
	}
	if (!(flags & (THOTH__UNIX_REPLACE | THOTH__UNIX_REPLACE_STALE))) {
		thoth__why(why, why_len, "%s already exists", path);
		return THOTH_E_EXISTS;
	}
	if (!(flags & THOTH__UNIX_REPLACE)) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (probe < 0) {
			thoth__why(why, why_len, "socket: %s", strerror(errno));
			return THOTH_E_IO;
		}
		int c = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
		int e = errno;
		close(probe);
		if (c == 0 || e == EAGAIN) {
			thoth__why(why, why_len, "another process already listens at %s", path);
			return THOTH_E_BUSY;
		}
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		thoth__why(why, why_len, "cannot remove the stale socket %s: %s", path, strerror(errno));
		return THOTH_E_IO;
	}
	return 0;
}

int thoth__unix_listen(const char *path, unsigned mode, unsigned flags, int *fd_out, char *why,
		       size_t why_len)
{
	*fd_out = -1;
	thoth__why(why, why_len, "%s", "");
	struct sockaddr_un sa;
	int r = fill_addr(&sa, path, why, why_len);
	if (r)
		return r;
	if (!mode)
		mode = THOTH__UNIX_DEFAULT_MODE;
	if (mode & ~0777u) {
		thoth__why(why, why_len, "socket mode %o has bits beyond 0777", mode);
		return THOTH_E_INVAL;
	}
	r = clear_path(path, &sa, flags, why, why_len);
	if (r)
		return r;
	/* Bind under a temporary name in the same directory, set the mode,
	 * listen, then rename into place: nobody can connect while the mode
	 * is still the umask's (connect before listen() is refused), and a
	 * client that sees PATH can always connect. */
	struct sockaddr_un ta = sa;
	int n = snprintf(ta.sun_path, sizeof ta.sun_path, "%s.%d.tmp", path, (int)getpid());
	bool staged = n > 0 && (size_t)n < sizeof ta.sun_path;
	if (!staged)
		ta = sa;
	else
		unlink(ta.sun_path);    /* ours: a previous run of this pid */
	const char *step = "socket";
	int e;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	step = "bind";
	if (bind(fd, (struct sockaddr *)&ta, sizeof ta) < 0)
		goto fail;
	step = "chmod";
	if (set_mode(ta.sun_path, mode) < 0)
		goto fail_bound;
	step = "listen";
	if (listen(fd, LISTEN_BACKLOG) < 0)
		goto fail_bound;
	step = "rename";
	if (staged && rename(ta.sun_path, path) < 0)
		goto fail_bound;
	*fd_out = fd;
	return 0;

fail_bound:
	e = errno;
	unlink(ta.sun_path);
	errno = e;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	thoth__why(why, why_len, "cannot listen at %s: %s: %s", path, step, strerror(e));
	return THOTH_E_IO;
}
