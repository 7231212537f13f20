/*
 * fdpass.h - bytes with file descriptors attached (SCM_RIGHTS) over a Unix
 * stream socket: the one place in kernel/ipc that builds and parses the
 * control messages.  Untraced and without framing; callers map errno.
 */
#ifndef THOTH_IPC_FDPASS_H
#define THOTH_IPC_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

/* Most descriptors one read takes; more are closed on arrival. */
#define THOTH_FDPASS_MAX 4

/*
 * recvmsg into BUF (up to CAP) with FLAGS (| MSG_CMSG_CLOEXEC).  The
 * descriptors that arrive are appended to FDS while *N_FDS < MAX_FDS and
 * closed otherwise, so none is ever leaked.  Returns what recvmsg returns
 * (bytes, 0 at EOF, -1 with errno).
 */
ssize_t thoth_fdpass_recv(int sock, void *buf, size_t cap, int flags, int *fds, size_t max_fds,
			  size_t *n_fds);

/*
 * thoth_fdpass_recv, also counting what arrived: *ARRIVED grows by every
 * descriptor the read brought, kept or closed, and *CUT is set when the
 * kernel had more than the control buffer holds (MSG_CTRUNC: those were
 * never installed, so their number is unknown: "more than *ARRIVED").
 * A peer's count is told true in its refusal ("sent 2" was said of 5).
 */
ssize_t thoth_fdpass_recv_counted(int sock, void *buf, size_t cap, int flags, int *fds, size_t max_fds,
				  size_t *n_fds, size_t *arrived, int *cut);

/*
 * One sendmsg of BUF (LEN bytes) with the N_FDS descriptors FDS attached
 * (0..THOTH_FDPASS_MAX; they travel with the first byte), MSG_NOSIGNAL,
 * retried on EINTR.  Returns the bytes sent (maybe fewer than LEN: the rest
 * is plain data for the caller to write), or -1 with errno.
 */
ssize_t thoth_fdpass_send(int sock, const void *buf, size_t len, const int *fds, size_t n_fds);

#endif
