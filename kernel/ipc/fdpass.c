/*
 * fdpass.c - SCM_RIGHTS send and receive (see fdpass.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"

typedef union {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int) * THOTH_FDPASS_MAX)];
} fd_control_t;

ssize_t thoth_fdpass_recv(int sock, void *buf, size_t cap, int flags, int *fds, size_t max_fds,
			  size_t *n_fds)
{
	size_t arrived = 0;
	int cut = 0;
	return thoth_fdpass_recv_counted(sock, buf, cap, flags, fds, max_fds, n_fds, &arrived, &cut);
}

ssize_t thoth_fdpass_recv_counted(int sock, void *buf, size_t cap, int flags, int *fds, size_t max_fds,
				  size_t *n_fds, size_t *arrived, int *cut)
{
	fd_control_t control;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = control.buf, .msg_controllen = sizeof control.buf,
	};
	ssize_t n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	if (mh.msg_flags & MSG_CTRUNC)
		*cut = 1;
	/* Every descriptor that arrived is handed out or closed here. */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		*arrived += count;
		for (size_t i = 0; i < count; i++) {
			int got;
			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
			if (*n_fds < max_fds)
				fds[(*n_fds)++] = got;
			else
				close(got);
		}
	}
	return n;
}

ssize_t thoth_fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds)
{
	if (n_fds > THOTH_FDPASS_MAX) {
		errno = EINVAL;
		return -1;
	}
	fd_control_t control;
	memset(&control, 0, sizeof control);
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n_fds) {
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}
