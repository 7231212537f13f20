/*
 * depfile.h - `thothc gen --depfile FILE`: the files a run read, in make's
 * syntax, for the build tool to track (CMake's add_custom_command(DEPFILE),
 * Ninja's depfile, make's include).  Without it a build knew only the
 * imports read at configure time (cmake/ThothTidl.cmake): an import added
 * later was not a dependency until the next configure, and an edit of the
 * imported file left the old generated code.
 */
#ifndef THOTHC_DEPFILE_H
#define THOTHC_DEPFILE_H

#include <stddef.h>

/*
 * "T1 T2...: \\\n D1 \\\n D2\n" for the N_TARGETS TARGETS and N_DEPS DEPS
 * (each dependency on its own line), every path escaped as make reads it:
 * a blank as "\ " (the backslashes before it doubled), '#' as "\#", '$'
 * as "$$" (GCC's -MD rules, which Ninja and CMake parse too).  Returns
 * the text (malloc'd; *LEN its length), or NULL: out of memory (errno
 * ENOMEM), or a path with a newline, which no depfile can hold (errno
 * EINVAL, *BAD that path).
 */
char *thothc_depfile_text(const char *const *targets, size_t n_targets, const char *const *deps,
			  size_t n_deps, size_t *len, const char **bad);

#endif
