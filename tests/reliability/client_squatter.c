/*
 * client_squatter.c - the hostile listener of client_squatter.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_squatter.h"

bool squatter_can_setuid(void)
{
	return geteuid() == 0;
}

/* Read everything the client sends until it hangs up (or 2 s pass). */
static squatter_report_t drain_connection(int cfd)
{
	squatter_report_t rep = { 0, 0 };
	struct timeval tv = { 2, 0 };
	setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		char buf[4096];
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 16)];
		} control;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof buf };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
				     .msg_controllen = sizeof control.buf };
		ssize_t n = recvmsg(cfd, &mh, MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		rep.bytes += n;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < count; i++) {
				int got;
				memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
				close(got);
				rep.fds++;
			}
		}
		if (rep.bytes == 1 && buf[0] == '!')
			break;          /* the sentinel */
	}
	return rep;
}

static void squatter_main(const char *path, uid_t uid, int report)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		_exit(3);
	if (uid != geteuid() && (setgid(uid) < 0 || setuid(uid) < 0))
		_exit(4);
	if (listen(fd, 16) < 0)
		_exit(5);
	char ready = 1;
	if (write(report, &ready, 1) != 1)
		_exit(6);
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			_exit(7);
		}
		squatter_report_t rep = drain_connection(cfd);
		close(cfd);
		if (write(report, &rep, sizeof rep) != (ssize_t)sizeof rep)
			_exit(8);
	}
}

int squatter_start(squatter_t *s, const char *path, uid_t uid)
{
	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->report_fd = -1;
	snprintf(s->path, sizeof s->path, "%s", path);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		squatter_main(path, uid, p[1]);
		_exit(0);
	}
	close(p[1]);
	s->pid = pid;
	s->report_fd = p[0];
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	char ready = 0;
	if (poll(&pfd, 1, 5000) != 1 || read(p[0], &ready, 1) != 1 || ready != 1) {
		squatter_stop(s);
		return -1;
	}
	return 0;
}

int squatter_next(squatter_t *s, int timeout_ms, squatter_report_t *out)
{
	struct pollfd pfd = { .fd = s->report_fd, .events = POLLIN };
	int n = poll(&pfd, 1, timeout_ms);
	if (n == 0)
		return 0;
	if (n < 0 || read(s->report_fd, out, sizeof *out) != (ssize_t)sizeof *out)
		return -1;
	return 1;
}

int squatter_sentinel(squatter_t *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		send(fd, "!", 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
	close(fd);
	return r;
}

bool squatter_drain(squatter_t *s, int timeout_ms, int *conns, long *bytes, long *fds)
{
	*conns = 0;
	*bytes = *fds = 0;
	if (squatter_sentinel(s))
		return false;
	for (;;) {
		squatter_report_t rep;
		if (squatter_next(s, timeout_ms, &rep) != 1)
			return false;
		if (rep.bytes == 1 && rep.fds == 0)
			return true;    /* the sentinel: everything before it is counted */
		(*conns)++;
		*bytes += rep.bytes;
		*fds += rep.fds;
	}
}

void squatter_stop(squatter_t *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	if (s->report_fd >= 0)
		close(s->report_fd);
	s->pid = -1;
	s->report_fd = -1;
	unlink(s->path);
}
