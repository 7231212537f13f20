/*
 * sd.c - socket activation and readiness notification for thothd.
 *
 * Both are systemd's documented, stable protocols (sd_listen_fds(3),
 * sd_notify(3), "Interface Portability and Stability"): a socket passed as
 * fd 3 with LISTEN_PID/LISTEN_FDS, and a datagram "READY=1" sent to the
 * AF_UNIX address in $NOTIFY_SOCKET.  They take a page of code, so thothd
 * speaks them itself rather than linking libsystemd for two calls: no
 * run-time dependency on systemd, and the same binary works under
 * systemd-socket-activate, s6 or a shell script (which gets --ready-fd, the
 * s6 convention: a line on an inherited descriptor).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sd.h"
#include "thoth/error.h"

#define SD_LISTEN_FDS_START 3

static int fail(char *why, size_t cap, int code, const char *msg)
{
	snprintf(why, cap, "socket activation: %s", msg);
	return code;
}

int thothd_sd_listen_fd(int *fd, char *path, size_t cap, char *why, size_t why_cap)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	if (!pid_s || !fds_s)
		return 0;
	char *end;
	errno = 0;
	unsigned long pid = strtoul(pid_s, &end, 10);
	if (errno || *end || pid != (unsigned long)getpid())
		return 0;               /* meant for another process (our parent) */
	unsigned long n = strtoul(fds_s, &end, 10);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*end || n == 0)
		return 0;
	if (n != 1)
		return fail(why, why_cap, THOTH_E_INVAL,
			    "thothd takes exactly one socket (LISTEN_FDS must be 1)");
	int s = SD_LISTEN_FDS_START, v = 0;
	socklen_t len = sizeof v;
	if (getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
		return fail(why, why_cap, THOTH_E_INVAL, "fd 3 is not a Unix socket");
	len = sizeof v;
	if (getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || v != SOCK_STREAM)
		return fail(why, why_cap, THOTH_E_INVAL,
			    "fd 3 is not a stream socket (ListenStream=)");
	len = sizeof v;
	if (getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
		return fail(why, why_cap, THOTH_E_INVAL,
			    "fd 3 is not listening (Accept=no is required)");
	int fl = fcntl(s, F_GETFL);
	if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(s, F_SETFD, FD_CLOEXEC) < 0)
		return fail(why, why_cap, THOTH_E_IO, "cannot make fd 3 non-blocking");
	struct sockaddr_un sa;
	socklen_t sl = sizeof sa;
	memset(&sa, 0, sizeof sa);
	if (getsockname(s, (struct sockaddr *)&sa, &sl) < 0 || sl <= offsetof(struct sockaddr_un, sun_path))
		path[0] = 0;
	else
		snprintf(path, cap, "%s", sa.sun_path[0] ? sa.sun_path : "(abstract)");
	*fd = s;
	return 1;
}

int thothd_sd_notify(const char *state)
{
	const char *addr = getenv("NOTIFY_SOCKET");
	if (!addr || !*addr)
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(addr);
	if ((addr[0] != '/' && addr[0] != '@') || len >= sizeof sa.sun_path)
		return THOTH_E_INVAL;
	memcpy(sa.sun_path, addr, len);
	if (addr[0] == '@')
		sa.sun_path[0] = 0;     /* abstract namespace */
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return THOTH_E_IO;
	ssize_t w = sendto(s, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(s);
	return w < 0 ? THOTH_E_IO : 0;
}

int thothd_ready_fd_notify(int fd)
{
	static const char line[] = "READY=1\n";
	ssize_t w;
	do
		w = write(fd, line, sizeof line - 1);
	while (w < 0 && errno == EINTR);
	close(fd);
	return w == (ssize_t)sizeof line - 1 ? 0 : THOTH_E_IO;
}
