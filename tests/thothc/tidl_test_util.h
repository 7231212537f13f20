/*
 * tidl_test_util.h - helpers shared by the thothc front-end tests: load a
 * schema from text or from tests/thothc/schemas, and find a diagnostic.
 */
#ifndef TIDL_TEST_UTIL_H
#define TIDL_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "ast.h"

/* Load TEXT as "test.tidl" into a fresh program (freed by tidl_test_reset). */
int tidl_test_load_text(const char *text, tidl_file_t **out);
/* Load SCHEMA_DIR/RELPATH into a fresh program. */
int tidl_test_load_file(const char *relpath, tidl_file_t **out);
/* The program of the last load (diagnostics). */
tidl_program_t *tidl_test_prog(void);
void tidl_test_reset(void);

/* The first diagnostic of PROG whose message contains NEEDLE, or NULL. */
const tidl_diag_t *tidl_test_find_diag(const tidl_program_t *prog, const char *needle);
/* Every diagnostic of PROG, printed, for failure messages. */
void tidl_test_dump(const tidl_program_t *prog);

#endif
