/*
 * fuzz_tidl_files.c - libFuzzer target for thothc as a whole: a set of
 * .tidl files that import each other, loaded, checked and, where the
 * whole set loads, run through the C generator.
 *
 * The input is up to FILES files separated by NUL bytes (a NUL is never
 * valid .tidl, so a single file's input is just that file): the first is
 * main.tidl, the others a.tidl, b.tidl, sub/c.tidl, sub/d.tidl,
 * sub/deep/e.tidl.  They live in memory (tidl_program_add_memory_file): an
 * import is resolved relative to the importer's folder as on disk where
 * every folder is real ("x/.." folded as written), but nothing is read
 * from the disk.  Where every file loads, each one is
 * generated to memory (thothc_gen_c_mem: both outputs non-empty, or the
 * schema refused, THOTHC_GEN_REFUSED, with none; any other answer aborts)
 * and the root is checked compatible with itself; diagnostics are printed
 * to /dev/null either way.  fuzz_tidl_parse covers the formatter.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "front.h"
#include "gen_c.h"

#define FILES 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[FILES] = {
	"main.tidl", "a.tidl", "b.tidl", "sub/c.tidl", "sub/d.tidl", "sub/deep/e.tidl",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	if (!sink)
		sink = fopen("/dev/null", "w");
	const char *text[FILES];
	size_t len[FILES], n = 0;
	const char *s = (const char *)data, *end = s + size;
	while (n < FILES) {
		const char *z = memchr(s, 0, (size_t)(end - s));
		text[n] = s;
		len[n] = (size_t)((z ? z : end) - s);
		n++;
		if (!z)
			break;
		s = z + 1;
	}
	tidl_program_t *prog = tidl_program_new();
	if (!prog)
		return 0;
	for (size_t i = 0; i < n; i++)
		tidl_program_add_memory_file(prog, names[i], text[i], len[i]);
	tidl_file_t *root = NULL;
	if (tidl_program_load_buffer(prog, names[0], text[0], len[0], &root) == 0) {
		for (size_t i = 0; i < prog->n_files; i++) {
			/* A schema that loads generates, or is refused by name
			 * (C names; imports the schema hash cannot read; it
			 * printed to the NULL stream the fuzzer passes: a
			 * crash).  Anything else from memory is a bug of gen. */
			thothc_gen_out_t out;
			int r = thothc_gen_c_mem(prog->files[i], &out);
			if (r == THOTHC_GEN_OK ? !out.h_len || !out.c_len
			    : r != THOTHC_GEN_REFUSED || out.h || out.c)
				abort();
			thothc_gen_out_free(&out);
		}
		/* All of them as the roots of one `thothc gen` run: main.tidl
		 * reaches every one, so any clash is its own check's (above),
		 * never the run's; the run's check must find none, and must
		 * not crash on whatever the files hold. */
		if (thothc_gen_check_roots((const tidl_file_t *const *)prog->files, prog->n_files, sink) != 0)
			abort();
		tidl_program_t *findings = tidl_program_new();
		if (findings && thothc_compat_check(root, root, findings) != 0)
			abort();        /* a schema is always compatible with itself */
		tidl_program_free(findings);
	}
	if (sink)
		tidl_program_print_diags(prog, sink);
	tidl_program_free(prog);
	return 0;
}
