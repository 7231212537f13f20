/*
 * test_thothc_gen_result.c - what the C generator answers: written, a
 * schema refused by name (THOTHC_GEN_REFUSED), or a failure to write
 * (THOTHC_GEN_FAILED).  fuzz_tidl_files aborts on anything from memory but
 * the first two; when a refusal and a failure were both -1 it could only
 * accept every non-zero answer, and a gen bug returning one went unseen.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "front.h"
#include "gen_c.h"
#include "../common/tmpdir.h"

static tidl_program_t *prog;
static char dir[PATH_MAX];

static int setup(void **state)
{
	(void)state;
	test_tmp_template(dir, sizeof dir, "thothc_gen_result");
	prog = tidl_program_new();
	return mkdtemp(dir) && prog ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tidl_program_free(prog);
	prog = NULL;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void mem(const char *path, const char *text)
{
	tidl_program_add_memory_file(prog, path, text, strlen(text));
}

static tidl_file_t *load(const char *path, const char *text)
{
	tidl_file_t *f = NULL;
	if (tidl_program_load_buffer(prog, path, text, strlen(text), &f) != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("%s did not load", path);
	}
	return f;
}

/* Generated to memory: OK with both outputs, REFUSED with none. */
static void expect_mem(const tidl_file_t *f, int want)
{
	thothc_gen_out_t out;
	int r = thothc_gen_c_mem(f, &out);
	bool both = out.h_len && out.c_len, none = !out.h && !out.c;
	thothc_gen_out_free(&out);
	assert_int_equal(r, want);
	assert_true(want == THOTHC_GEN_OK ? both : none);
}

/* Generated to DIR, the messages read back: R and whether one holds NEEDLE. */
static int gen_disk(const tidl_file_t *f, const char *outdir, const char *needle)
{
	FILE *err = tmpfile();
	assert_non_null(err);
	int r = thothc_gen_c(f, outdir, err);
	char buf[4096];
	size_t n = (rewind(err), fread(buf, 1, sizeof buf - 1, err));
	buf[n] = 0;
	fclose(err);
	if (needle && !strstr(buf, needle))
		fail_msg("no message with \"%s\" in: %s", needle, buf);
	return r;
}

static void test_a_schema_that_loads_generates(void **state)
{
	(void)state;
	tidl_file_t *f = load("ok.tidl", "package ok;\nversion 1.0;\nstruct S { 1: u8 v; }\n");
	expect_mem(f, THOTHC_GEN_OK);
	assert_int_equal(gen_disk(f, dir, NULL), THOTHC_GEN_OK);
}

/* A stub's comment quotes its method's annotation whole: it read
 * "@requires(batch", the parenthesis never closed. */
static void test_a_stubs_comment_quotes_its_requires_whole(void **state)
{
	(void)state;
	tidl_file_t *f = load("r.tidl", "package r;\nversion 1.0;\nfeature batch = 0;\n"
				       "interface I { 1: m() @requires(batch); }\n");
	thothc_gen_out_t out;
	assert_int_equal(thothc_gen_c_mem(f, &out), THOTHC_GEN_OK);
	const char *want = "/* r.tidl:4: 1: m(...) @requires(batch) */\n";
	char *h = strndup(out.h, out.h_len);
	assert_non_null(h);
	if (!strstr(h, want))
		fail_msg("no \"%s\" in the header:\n%s", want, h);
	free(h);
	thothc_gen_out_free(&out);
}

/* The method 'info' makes the C name of the interface's info record. */
static void test_names_that_make_one_c_name_are_refused(void **state)
{
	(void)state;
	tidl_file_t *f = load("p.tidl", "package p;\nversion 1.0;\ninterface I { 1: info(); }\n");
	expect_mem(f, THOTHC_GEN_REFUSED);
	assert_int_equal(gen_disk(f, dir, "rename"), THOTHC_GEN_REFUSED);
}

static void test_two_header_names_alike_are_refused(void **state)
{
	(void)state;
	mem("a.tidl", "package a;\nversion 1.0;\nstruct A { 1: u8 v; }\n");
	mem("sub/a.tidl", "package b;\nversion 1.0;\nstruct B { 1: u8 v; }\n");
	tidl_file_t *f = load("main.tidl", "package m;\nversion 1.0;\nimport \"a.tidl\";\n"
					   "import \"sub/a.tidl\";\nstruct M { 1: a.A x; 2: b.B y; }\n");
	expect_mem(f, THOTHC_GEN_REFUSED);
	assert_int_equal(gen_disk(f, dir, "has the name of"), THOTHC_GEN_REFUSED);
}

static void test_a_system_package_elsewhere_is_refused(void **state)
{
	(void)state;
	tidl_file_t *f = load("mine.tidl", "package thoth.registry;\nversion 1.0;\n"
					   "struct S { 1: u8 v; }\n");
	assert_int_equal(gen_disk(f, dir, "is the system's"), THOTHC_GEN_REFUSED);
}

/* The file's name proved nothing: a user's own registry.tidl declaring
 * thoth.registry was taken for the system's (its C names are libthoth's,
 * with other meanings), in memory (the fuzzer) as on disk. */
static void test_a_system_package_in_a_file_named_like_the_systems_is_refused(void **state)
{
	(void)state;
	tidl_file_t *f = load("registry.tidl", "\n// mine\npackage thoth.registry;\nversion 1.0;\n"
					       "struct S { 1: u8 v; }\n");
	assert_int_equal(gen_disk(f, dir, "registry.tidl:3:1: error: package 'thoth.registry' is the "
					  "system's (idl/registry.tidl), but this file is not that schema"),
			 THOTHC_GEN_REFUSED);
	expect_mem(f, THOTHC_GEN_REFUSED);
}

/* ... and the system's own schema under another name (a copy, the
 * installed one beside the user's) is the system's: it generates. */
static void test_the_systems_schema_under_another_name_generates(void **state)
{
	(void)state;
	const thothc_system_schema_t *reg = NULL;
	for (const thothc_system_schema_t *s = thothc_system_schemas; s->package; s++) {
		mem(s->file, (const char *)s->text);
		if (strcmp(s->package, "thoth.registry") == 0)
			reg = s;
	}
	assert_non_null(reg);
	tidl_file_t *f = NULL;
	if (tidl_program_load_buffer(prog, "copy_of_registry.tidl", (const char *)reg->text, reg->len,
				     &f) != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("the system's registry.tidl did not load");
	}
	assert_int_equal(gen_disk(f, dir, NULL), THOTHC_GEN_OK);
	expect_mem(f, THOTHC_GEN_OK);
}

/* A folder that is not there: the schema is fine, the write fails. */
static void test_a_file_that_cannot_be_written_is_a_failure(void **state)
{
	(void)state;
	tidl_file_t *f = load("ok.tidl", "package ok;\nversion 1.0;\nstruct S { 1: u8 v; }\n");
	char missing[PATH_MAX + 64];
	snprintf(missing, sizeof missing, "%s/not/there", dir);
	assert_int_equal(gen_disk(f, missing, "cannot write"), THOTHC_GEN_FAILED);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_schema_that_loads_generates),
		T(test_a_stubs_comment_quotes_its_requires_whole),
		T(test_names_that_make_one_c_name_are_refused),
		T(test_two_header_names_alike_are_refused),
		T(test_a_system_package_elsewhere_is_refused),
		T(test_a_system_package_in_a_file_named_like_the_systems_is_refused),
		T(test_the_systems_schema_under_another_name_generates),
		T(test_a_file_that_cannot_be_written_is_a_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
