/* fmt.h - `thothc fmt` and `thothc lint`. */
#ifndef THOTHC_FMT_H
#define THOTHC_FMT_H

#include "ast.h"

/*
 * The canonical layout of FILE's source (docs/IDL.md, "Formatting"), as a
 * malloc'ed NUL-terminated string; NULL when the file has a syntax error
 * (reported in PROG).  FILE need only hold path, source and source_len.
 */
char *thothc_fmt(tidl_program_t *prog, tidl_file_t *file);

/*
 * Style findings on ROOT (loaded without errors) as warnings in FINDINGS,
 * each message ending in its rule name ("[naming]", "[since]",
 * "[unused-import]", "[reuse]", "[gap]").  Returns the number of findings.
 */
int thothc_lint(const tidl_file_t *root, tidl_program_t *findings);

#endif
