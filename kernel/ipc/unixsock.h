/*
 * unixsock.h - the one way thoth processes listen on and connect to Unix
 * stream sockets (internal to libthoth: thoth__ prefix, not exported).
 *
 * Used by everything that speaks over a Unix socket: the control
 * connection to thothd (service.c, thothctl, resolving clients), thothd's
 * own listening socket, and the channel handshake socket.  Having one
 * helper means the security rules below are written (and tested) once:
 *
 *  - A listening socket gets an explicit mode (0600 unless the caller asks
 *    for another, e.g. 0660 for a group), set before listen(): the umask
 *    never decides who may connect, and the library never changes the
 *    process-wide umask to get there.  The socket is bound under a
 *    temporary name and renamed into place once it listens, so a client
 *    that sees the path can always connect.
 *  - A connecting client can require that the socket's directory is a
 *    real directory (not a symlink) owned by the caller's effective uid
 *    with no group/other access (THOTH__UNIX_CHECK_DIR: the runtime dir
 *    rule), and by default requires the listener's uid (SO_PEERCRED, taken
 *    by the kernel at listen() time) to be the caller's effective uid.
 *    Both checks happen before the caller sends a single byte, so a
 *    squatter at the socket path gets nothing: no trace buffer, no
 *    registration, no resolve.
 */
#ifndef THOTH_IPC_UNIXSOCK_H
#define THOTH_IPC_UNIXSOCK_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define THOTH__UNIX_DEFAULT_MODE 0600u

enum {
	/* listen: a socket file at PATH that nobody listens on (a dead
	 * process's) is replaced; one that answers is THOTH_E_BUSY. */
	THOTH__UNIX_REPLACE_STALE = 1u << 0,
	/* listen: whatever socket file is at PATH is replaced (the caller holds
	 * a lock that makes it the only legitimate owner, as thothd does). */
	THOTH__UNIX_REPLACE = 1u << 1,
	/* connect: the directory holding PATH must be ours, mode 0700, and not
	 * a symlink (the runtime-dir rule, docs/THOTHD.md). */
	THOTH__UNIX_CHECK_DIR = 1u << 2,
	/* connect: accept a listener of any uid (channel endpoints whose
	 * owner is checked by the caller's own policy). */
	THOTH__UNIX_ANY_PEER = 1u << 3,
	/* connect: non-blocking socket and connect; a full backlog is
	 * THOTH_E_AGAIN instead of a wait.  For callers on an event loop. */
	THOTH__UNIX_NONBLOCK = 1u << 4,
};

/*
 * Create a listening Unix stream socket at PATH with mode MODE (0: 0600),
 * non-blocking and close-on-exec, backlog 128.  FLAGS: REPLACE_STALE or
 * REPLACE (otherwise an existing PATH is THOTH_E_EXISTS).  Something at
 * PATH that is not a socket is never removed (THOTH_E_EXISTS).
 * Returns the fd in *FD_OUT and 0, or THOTH_E_INVAL (path too long),
 * THOTH_E_EXISTS, THOTH_E_BUSY (a live listener is there), THOTH_E_IO
 * (WHY names the system call and errno).
 */
int thoth__unix_listen(const char *path, unsigned mode, unsigned flags, int *fd_out, char *why,
		       size_t why_len);

/*
 * Connect to the Unix stream socket at PATH (close-on-exec), checking as
 * FLAGS ask (see above; the peer uid check is on unless ANY_PEER).
 * TIMEOUT_MS bounds a blocking connect to a listener with a full backlog
 * (-1: no bound; ignored with NONBLOCK).  Returns the fd in *FD_OUT and 0,
 * or THOTH_E_NOT_RUNNING (no socket, or nobody listens), THOTH_E_PERM (a
 * check failed or connect was refused by file permissions; WHY says
 * which), THOTH_E_TIMEDOUT, THOTH_E_AGAIN (NONBLOCK, backlog full),
 * THOTH_E_INVAL (path too long), THOTH_E_IO.
 */
int thoth__unix_connect(const char *path, unsigned flags, int timeout_ms, int *fd_out, char *why,
			size_t why_len);

/* The runtime-dir rule on DIR: 0, or THOTH_E_NOT_RUNNING (absent),
 * THOTH_E_PERM (symlink, not a directory, other owner, group/other
 * access), THOTH_E_IO; WHY says which. */
int thoth__unix_check_dir(const char *dir, char *why, size_t why_len);

/* The uid/pid of the process at the other end of the connected socket FD
 * (for a client: whoever called listen()).  0 or THOTH_E_IO. */
int thoth__unix_peer(int fd, uid_t *uid, pid_t *pid);

#ifdef __cplusplus
}
#endif
#endif
