/*
 * fuzz_tidl_parse.c - libFuzzer target for the .tidl front end: any bytes
 * must load or be rejected with diagnostics, without a crash, a hang, an
 * out-of-bounds read or a leak.  A schema that loads is also checked for
 * compatibility against itself (must be compatible) and its diagnostics are
 * printed to /dev/null, so the checker and the caret printer are covered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ast.h"
#include "compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (!sink)
		sink = fopen("/dev/null", "w");
	tidl_program_t *prog = tidl_program_new();
	tidl_file_t *file = NULL;
	if (!prog)
		return 0;
	int r = tidl_program_load_buffer(prog, "fuzz.tidl", (const char *)data, size, &file);
	if (r == 0) {
		tidl_program_t *findings = tidl_program_new();
		if (thothc_compat_check(file, file, findings) != 0)
			abort();        /* a schema is always compatible with itself */
		tidl_program_free(findings);
	}
	if (sink)
		tidl_program_print_diags(prog, sink);
	tidl_program_free(prog);
	return 0;
}
