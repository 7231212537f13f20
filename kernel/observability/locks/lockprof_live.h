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

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
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

#endif
