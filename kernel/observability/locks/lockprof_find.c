/*
 * lockprof_find.c - where libthothlock.so is (lockprof_find.h).  One rule
 * for thothlock and thothctl: looked up only at the configured prefix, an
 * install moved with `cmake --install --prefix P` or staged under DESTDIR
 * had thothlock say "not found" and thothctl advise an LD_PRELOAD that
 * ld.so could not load.
 */
#define _GNU_SOURCE
#include "lockprof_find.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef THOTHLOCK_INSTALLED_LIB
#define THOTHLOCK_INSTALLED_LIB "/usr/lib/thoth/libthothlock.so"
#endif
#ifndef THOTHLOCK_RELATIVE_LIB
#define THOTHLOCK_RELATIVE_LIB "../lib/thoth/libthothlock.so"
#endif
#ifndef THOTHLOCK_INSTALLED_BIN
#define THOTHLOCK_INSTALLED_BIN "/usr/bin/thothlock"
#endif
#ifndef THOTHLOCK_RELATIVE_BIN
#define THOTHLOCK_RELATIVE_BIN "../bin/thothlock"
#endif

/* DIR/REL into OUT, resolved, if it is there with MODE (access(2)'s:
 * R_OK for the library, X_OK for the launcher). */
static int try_path(const char *dir, const char *rel, int mode, char *out, size_t cap)
{
	char path[PATH_MAX];
	int w = snprintf(path, sizeof path, "%s/%s", dir, rel);
	if (w < 0 || (size_t)w >= sizeof path || cap < PATH_MAX || access(path, mode) != 0)
		return -1;
	return realpath(path, out) ? 0 : -1;
}

/* One lookup for the library and the launcher: REL beside the running
 * executable, then RELATIVE from it (its installed tree), then INSTALLED
 * (the configured prefix). */
static int find_beside(const char *const *rel, const char *relative, const char *installed, int mode,
		       char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash = n > 0 ? (self[n] = '\0', strrchr(self, '/')) : NULL;
	if (slash) {
		*slash = '\0';
		for (size_t i = 0; rel && rel[i]; i++)
			if (try_path(self, rel[i], mode, out, cap) == 0)
				return 0;
		if (try_path(self, relative, mode, out, cap) == 0)
			return 0;
	}
	if (access(installed, mode) == 0 && strlen(installed) < cap) {
		snprintf(out, cap, "%s", installed);
		return 0;
	}
	return -1;
}

int thothlock_find_library(const char *const *rel, char *out, size_t cap)
{
	return find_beside(rel, THOTHLOCK_RELATIVE_LIB, THOTHLOCK_INSTALLED_LIB, R_OK, out, cap);
}

int thothlock_find_launcher(const char *const *rel, char *out, size_t cap)
{
	/* REL (a build tree's), then beside (thothctl is installed in bin/
	 * with thothlock), then the installed bindir from here (thothd is in
	 * sbin/), then the configured prefix's */
	const char *all[8];
	size_t n = 0;
	for (; rel && rel[n] && n < 6; n++)
		all[n] = rel[n];
	all[n++] = "thothlock";
	all[n] = NULL;
	if (find_beside(all, THOTHLOCK_RELATIVE_BIN, THOTHLOCK_INSTALLED_BIN, X_OK, out, cap) == 0)
		return 0;
	/* PATH, as a shell would look (an empty entry is the current folder) */
	const char *path = getenv("PATH");
	while (path && *path) {
		const char *colon = strchrnul(path, ':');
		char dir[PATH_MAX];
		int w = snprintf(dir, sizeof dir, "%.*s", (int)(colon - path), path);
		if (w >= 0 && (size_t)w < sizeof dir &&
		    try_path(w ? dir : ".", "thothlock", X_OK, out, cap) == 0)
			return 0;
		path = *colon ? colon + 1 : colon;
	}
	return -1;
}

const char *thothlock_preload_hint(const char *const *rel, char *out, size_t cap)
{
	if (thothlock_find_library(rel, out, cap) != 0)
		snprintf(out, cap, "libthothlock.so (not found beside %s nor at %s: give its full path)",
			 program_invocation_short_name, THOTHLOCK_INSTALLED_LIB);
	return out;
}

const char *thothlock_no_tables_reason(char *out, size_t cap, unsigned pid, const char *hint,
				       const char *launcher)
{
	/* What to do first: `thothlock -- PROGRAM`, whose run is seen in
	 * this live view while it runs (its preload publishes the table's
	 * marker here too) AND reported at PROGRAM's exit, kept through a
	 * kill -9.  A 127-byte reason has room for one path: the bare
	 * preload, seen here only, is named where no launcher was found. */
	const char *tail = launcher ? " -- PROGRAM (docs/LOCKS.md)" : " (docs/LOCKS.md)";
	const char *with = launcher ? "as " : "with LD_PRELOAD=";
	char head[112];
	if (pid)
		snprintf(head, sizeof head, "process %u publishes no lock statistics; run it %s", pid, with);
	else
		snprintf(head, sizeof head, "no process publishes lock statistics; run one %s", with);
	if (launcher)
		hint = launcher;
	size_t fixed = strlen(head) + strlen(tail), len = strlen(hint);
	if (!cap)
		return out;
	if (fixed + len < cap || fixed + 4 >= cap) {
		/* it fits (or CAP leaves no room for any of HINT: cut plainly) */
		snprintf(out, cap, "%s%s%s", head, hint, tail);
		return out;
	}
	size_t room = cap - 1 - fixed - 3;     /* HINT's bytes after "..." */
	const char *keep = hint + len - room;
	const char *slash = strchr(keep, '/');
	if (slash && slash[1])
		keep = slash;                  /* from a folder's boundary */
	snprintf(out, cap, "%s...%s%s", head, keep, tail);
	return out;
}
