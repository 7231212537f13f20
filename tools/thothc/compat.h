/* compat.h - `thothc check`: is a new schema wire-compatible with an old one? */
#ifndef THOTHC_COMPAT_H
#define THOTHC_COMPAT_H

#include <stdio.h>
#include "ast.h"

/*
 * Compare the root files OLD and NEW (both loaded without errors).  Each
 * breaking change is printed to OUT as "file:line:col: error: reason"
 * (removals point into OLD), each harmless rename as a warning.  Returns
 * the number of breaking changes (0 = compatible).  The rules are listed,
 * with their reasons, in docs/IDL.md ("Compatibility").
 */
int thothc_compat_check(const tidl_file_t *old_file, const tidl_file_t *new_file, FILE *out);

#endif
