/*
 * runtime.h - where thothd lives: the runtime directory (0700, owned by the
 * user) holding the control socket thothd.sock and the lock file
 * thothd.pid that keeps a second thothd off the same directory.
 */
#ifndef THOTHD_RUNTIME_H
#define THOTHD_RUNTIME_H

#include <time.h>
#include <stddef.h>

#define THOTHD_SOCKET_NAME "thothd.sock"
#define THOTHD_PIDFILE_NAME "thothd.pid"

/*
 * The runtime directory: EXPLICIT if given, else $THOTH_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/thoth, else /tmp/thoth-$UID.  0 or THOTH_E_NO_SPACE.
 * (thothctl and libthoth services use the same rule: include/thoth/service.h.)
 */
int thothd_runtime_dir(const char *explicit_dir, char *out, size_t cap);

/*
 * Create DIR with mode 0700 if missing, then refuse it unless it is a real
 * directory owned by this user with no group/other access.  On refusal
 * returns THOTH_E_PERM (or THOTH_E_IO) with a one-line reason in WHY.
 */
int thothd_runtime_dir_prepare(const char *dir, char *why, size_t why_len);

/*
 * Take the lock file DIR/thothd.pid (flock, non-blocking) and write our pid.
 * Returns the open fd (keep it open to hold the lock), or THOTH_E_BUSY with
 * *OTHER_PID set when another thothd holds it (the lock's holder, read from
 * /proc/locks: the file may still name a crashed predecessor while the
 * winner has not written its pid yet; the file's pid where /proc/locks
 * cannot tell), or THOTH_E_IO with errno
 * saying why (the file cannot be opened, locked or written).
 * A thothd that stops cleanly removes the file; one found unlocked with a
 * pid in it was left by a thothd that was killed or crashed: on success
 * PREV (when not NULL) gets that pid (0: none) and the file's mtime, when
 * that thothd started, so that the new one can say what it replaced.
 */
typedef struct thothd_predecessor {
	int pid;                        /* 0: the last thothd here stopped cleanly (or none ran) */
	struct timespec started;        /* the left pid file's mtime */
} thothd_predecessor_t;
int thothd_pidfile_lock(const char *dir, int *other_pid, thothd_predecessor_t *prev);
void thothd_pidfile_release(const char *dir, int fd);

#endif
