/* compat.h - `thothc check`: is a new schema wire-compatible with an old one? */
#ifndef THOTHC_COMPAT_H
#define THOTHC_COMPAT_H

#include "ast.h"

/*
 * Compare the root files OLD and NEW (both loaded without errors).  Each
 * breaking change is added to DIAGS as an error "reason" located in NEW
 * (removals point into OLD), each harmless rename as a warning; print them
 * with tidl_program_print_diags(), while OLD and NEW are still loaded.
 * Returns the number of breaking changes (0 = compatible).  The rules are
 * listed, with their reasons, in docs/IDL.md ("Compatibility rules").
 */
int thothc_compat_check(const tidl_file_t *old_file, const tidl_file_t *new_file,
			tidl_program_t *diags);

#endif
