/* lockprof_live.h - where the live view's markers are: RUNTIME_DIR/locks/
 * PID.table (docs/LOCKS.md, "Live reports through thothd").
 *
 * RUNTIME_DIR is thothd's rule (thoth_runtime_dir, kernel/ipc/service.c):
 * THOTH_RUNTIME_DIR, else $XDG_RUNTIME_DIR/thoth, else /tmp/thoth-UID.  The
 * preload cannot link the IPC library that holds that rule, so it is here
 * once for both sides of the marker: libthothlock.so, which makes it, and
 * thothlock, which removes its program's when the program ended without
 * its exit path.
 */
#ifndef THOTH_LOCKPROF_LIVE_H
#define THOTH_LOCKPROF_LIVE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RUNTIME_DIR into OUT; false when it does not fit. */
static inline bool thothlock_runtime_dir(char *out, size_t cap)
{
	const char *rt = getenv("THOTH_RUNTIME_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (rt && *rt)
		n = snprintf(out, cap, "%s", rt);
	else if (xdg && *xdg)
		n = snprintf(out, cap, "%s/thoth", xdg);
	else
		n = snprintf(out, cap, "/tmp/thoth-%u", (unsigned)getuid());
	return n >= 0 && (size_t)n < cap;
}

/* DIR fit to hold this user's markers, as thothd checks its runtime dir
 * (thothd_runtime_dir_prepare, kernel/thothd/runtime.c): a directory, not
 * a symlink, ours, and with NEED_PRIVATE (RUNTIME_DIR itself) no access for
 * group or other; locks/ inside it is out of their reach whatever its
 * mode (a test's or a user's mkdir -p makes it 755).  With XDG_RUNTIME_DIR
 * unset RUNTIME_DIR is /tmp/thoth-UID, which another local user can make
 * first: markers renamed into, and unlinked from, a directory that user
 * controls (its locks/ a symlink to anywhere this user can write) would
 * let them create and remove this user's files.  false, WHY saying so
 * (ENOENT in errno where DIR is not there at all). */
static inline bool thothlock_dir_ours(const char *dir, bool need_private, char *why, size_t cap)
{
	struct stat st;
	if (lstat(dir, &st) != 0) {
		int e = errno;
		snprintf(why, cap, "%s: %s", dir, strerror(e));
		errno = e;
		return false;
	}
	errno = EPERM;
	if (!S_ISDIR(st.st_mode))
		snprintf(why, cap, "%s is %s", dir,
			 S_ISLNK(st.st_mode) ? "a symlink, not a directory" : "not a directory");
	else if (st.st_uid != geteuid())
		snprintf(why, cap, "%s is owned by uid %u, not by us (uid %u)", dir, (unsigned)st.st_uid,
			 (unsigned)geteuid());
	else if (need_private && (st.st_mode & 077))
		snprintf(why, cap, "%s has mode %03o: group/other must have no access", dir,
			 (unsigned)(st.st_mode & 0777));
	else
		return true;
	return false;
}

#endif
