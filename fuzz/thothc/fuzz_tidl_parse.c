/*
 * fuzz_tidl_parse.c - libFuzzer target for the .tidl front end: any bytes
 * must load or be rejected with diagnostics, without a crash, a hang, an
 * out-of-bounds read or a leak.  A schema that loads is also checked for
 * compatibility against itself (must be compatible) and its diagnostics are
 * printed to /dev/null, so the checker and the caret printer are covered.
 * The formatter runs on every input too: what it formats must format to
 * itself (thothc fmt is idempotent and checks that it keeps every token).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "compat.h"
#include "fmt.h"

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

	/* fmt needs a NUL-terminated source */
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	tidl_program_t *fp = tidl_program_new();
	tidl_file_t f = { .path = "fuzz.tidl", .source = text, .source_len = size };
	char *once = fp ? thothc_fmt(fp, &f) : NULL;
	if (once) {
		tidl_file_t g = { .path = "fuzz.tidl", .source = once, .source_len = strlen(once) };
		char *twice = thothc_fmt(fp, &g);
		if (!twice || strcmp(once, twice) != 0)
			abort();        /* fmt must be idempotent */
		free(twice);
	}
	free(once);
	tidl_program_free(fp);
	free(text);
	return 0;
}
