/*
 * lockprof_find.h - where libthothlock.so is, for the programs that name it
 * (thothlock preloads it; `thothctl locks` tells the user what to preload).
 */
#ifndef THOTH_LOCKPROF_FIND_H
#define THOTH_LOCKPROF_FIND_H

#include <limits.h>
#include <stddef.h>

/*
 * The library beside the running executable: the first of REL (paths
 * relative to the executable's folder, NULL-terminated) that is readable,
 * then THOTHLOCK_RELATIVE_LIB (an installed tree: BINDIR to
 * LIBDIR/thoth/libthothlock.so, wherever the tree was installed or
 * staged), then THOTHLOCK_INSTALLED_LIB (the configured prefix's).  OUT
 * (at least PATH_MAX) gets it without "..": it is shown to people and put
 * in LD_PRELOAD.  0, or -1 when none is there.
 */
int thothlock_find_library(const char *const *rel, char *out, size_t cap);

/*
 * What a message tells a person to put in LD_PRELOAD: the library by
 * thothlock_find_library (REL as there), or, when none is found, the bare
 * name followed by a note saying so (ld.so does not look in LIBDIR/thoth,
 * so the bare name alone would be ignored there: "cannot be preloaded").
 * OUT: at least THOTHLOCK_HINT_MAX.  Returns OUT.
 */
#define THOTHLOCK_HINT_MAX (PATH_MAX + 256)
const char *thothlock_preload_hint(const char *const *rel, char *out, size_t cap);

/*
 * The thothlock launcher, for the messages that tell a person how to
 * profile a program (`thothlock -- PROGRAM`, the supported way: its report
 * survives a kill -9 of PROGRAM, a bare LD_PRELOAD's table does not): the
 * first of REL (relative to the running executable's folder, as for the
 * library), "thothlock" beside it (thothctl's bin/), THOTHLOCK_RELATIVE_BIN
 * from it (thothd's sbin/ to the installed bindir), THOTHLOCK_INSTALLED_BIN
 * (the configured prefix's), then $PATH, that is executable.  OUT (at
 * least PATH_MAX) gets its resolved path.  0, or -1 when none is there.
 */
int thothlock_find_launcher(const char *const *rel, char *out, size_t cap);

/*
 * thothd's NoTables reason: with LAUNCHER (thothlock_find_launcher's
 * path) "no process publishes lock statistics; run one as LAUNCHER --
 * PROGRAM (docs/LOCKS.md)", a run under thothlock being seen live and
 * reported at its exit; LAUNCHER NULL (none found) "...; run one with
 * LD_PRELOAD=HINT (docs/LOCKS.md)".  "process PID publishes ...; run it
 * ..." for PID > 0.  In at most CAP - 1 bytes: a client keeps 127 of a
 * reason (thoth_client_t.remote_message), and a deep build's path (a CI
 * workspace) ran past it, the reason ending mid-path with no mark.  Where
 * the path does not fit, its head gives way to "...": its tail from a '/'
 * (the file's name and the folders nearest it) stays, with the pointer to
 * the docs; `thothctl locks` prints the whole path (found the same way).
 * Returns OUT.
 */
const char *thothlock_no_tables_reason(char *out, size_t cap, unsigned pid, const char *hint,
				       const char *launcher);

#endif
