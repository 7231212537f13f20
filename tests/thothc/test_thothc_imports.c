/*
 * test_thothc_imports.c - how an import's path becomes a file, in memory
 * (the fuzzer's resolver) and on disk: ".." folded as written, one file
 * however it is spelled (symlinks, "./"), a cycle through either reported
 * as a cycle, and on disk '..' as the kernel resolves it (after a symlinked
 * or a missing folder it is not folded), a message naming the import as
 * written, the path looked for and, after a symlinked folder, the real one.
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
#include "../common/tmpdir.h"

static tidl_program_t *prog;

static int teardown(void **state)
{
	(void)state;
	tidl_program_free(prog);
	prog = NULL;
	return 0;
}

static const tidl_diag_t *find(const char *needle)
{
	for (size_t i = 0; i < tidl_program_diag_count(prog); i++)
		if (strstr(tidl_program_diag(prog, i)->message, needle))
			return tidl_program_diag(prog, i);
	tidl_program_print_diags(prog, stderr);
	fail_msg("no diagnostic containing \"%s\"", needle);
	return NULL;
}

static void mem(const char *path, const char *text)
{
	tidl_program_add_memory_file(prog, path, text, strlen(text));
}

static int load_mem(const char *root)
{
	tidl_file_t *f;
	const tidl_diag_t *d = NULL;
	for (size_t i = 0; i < prog->n_mem; i++)
		if (strcmp(prog->mem[i].path, root) == 0)
			return tidl_program_load_buffer(prog, root, prog->mem[i].text, prog->mem[i].len, &f);
	(void)d;
	fail_msg("no memory file %s", root);
	return -1;
}

/* ---- the spelling of a path ---------------------------------------------- */

static void expect_path(const char *importer, const char *rel, const char *want)
{
	char *got = tidl_import_path(prog, importer, rel);
	if (!got || strcmp(got, want) != 0)
		fail_msg("%s + %s: '%s', want '%s'", importer ? importer : "(none)", rel,
			 got ? got : "(null)", want);
}

static void test_import_paths_fold_dot_and_dotdot_as_written(void **state)
{
	(void)state;
	prog = tidl_program_new();
	expect_path("main.tidl", "a.tidl", "a.tidl");
	expect_path("sub/c.tidl", "../a.tidl", "a.tidl");
	expect_path("sub/deep/e.tidl", "../../sub/./d.tidl", "sub/d.tidl");
	expect_path("sub/c.tidl", "deep//e.tidl", "sub/deep/e.tidl");
	expect_path("main.tidl", "../x.tidl", "../x.tidl");
	expect_path("../up/m.tidl", "../../x.tidl", "../../x.tidl");
	expect_path("a/b/m.tidl", "../../../x.tidl", "../x.tidl");
	expect_path("/s/m.tidl", "../../../x.tidl", "/x.tidl");
	expect_path("sub/c.tidl", "/abs/./y/../z.tidl", "/abs/z.tidl");
	expect_path("sub/c.tidl", "..", "."); /* a folder: refused when opened */
	expect_path(NULL, "./sub//c.tidl", "sub/c.tidl");
	char *longp = malloc(MAX_PATH_LEN + 2);
	memset(longp, 'a', MAX_PATH_LEN + 1);
	longp[MAX_PATH_LEN + 1] = 0;
	assert_null(tidl_import_path(prog, "m.tidl", longp));
	free(longp);
}

/* ---- in memory (fuzz_tidl_files' resolver) -------------------------------- */

/* sub/c.tidl imports "../a.tidl": the same file main.tidl imports.  The old
 * resolver looked for "sub/../a.tidl" among the memory files: no such file. */
static void test_memory_imports_resolve_dotdot(void **state)
{
	(void)state;
	prog = tidl_program_new();
	mem("main.tidl", "package m;\nversion 1.0;\nimport \"a.tidl\";\nimport \"sub/c.tidl\";\n"
			 "struct M { 1: a.A x; 2: c.C y; }\n");
	mem("a.tidl", "package a;\nversion 1.0;\nstruct A { 1: u8 v; }\n");
	mem("sub/c.tidl", "package c;\nversion 1.0;\nimport \"../a.tidl\";\nstruct C { 1: a.A v; }\n");
	if (load_mem("main.tidl") != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("did not load");
	}
	assert_int_equal(prog->n_files, 3);     /* a.tidl once */
}

/* A cycle through '..' is a cycle (it was "no such file" in memory and, on
 * disk, a path growing by "sub/../" per level until 64 levels). */
static void test_memory_cycle_through_dotdot_is_a_cycle(void **state)
{
	(void)state;
	prog = tidl_program_new();
	mem("main.tidl", "package m;\nversion 1.0;\nimport \"sub/c.tidl\";\n");
	mem("sub/c.tidl", "package c;\nversion 1.0;\nimport \"../main.tidl\";\n");
	assert_int_not_equal(load_mem("main.tidl"), 0);
	const tidl_diag_t *d = find("import cycle");
	assert_string_equal(d->message, "import cycle: main.tidl -> sub/c.tidl -> main.tidl");
	assert_int_equal(tidl_program_error_count(prog), 1);
}

static void test_memory_import_above_the_set_is_not_found(void **state)
{
	(void)state;
	prog = tidl_program_new();
	mem("main.tidl", "package m;\nversion 1.0;\nimport \"../../x.tidl\";\n");
	assert_int_not_equal(load_mem("main.tidl"), 0);
	assert_int_equal(find("cannot open '../../x.tidl': no such file")->loc.line, 3);
}

/* One file imported twice, under two spellings: refused at the second. */
static void test_a_file_imported_twice_is_refused(void **state)
{
	(void)state;
	prog = tidl_program_new();
	mem("main.tidl", "package m;\nversion 1.0;\nimport \"sub/c.tidl\";\n"
			 "import \"sub/../sub/c.tidl\";\n");
	mem("sub/c.tidl", "package c;\nversion 1.0;\n");
	assert_int_not_equal(load_mem("main.tidl"), 0);
	const tidl_diag_t *d = find("is imported already");
	assert_string_equal(d->message, "'sub/../sub/c.tidl' is imported already, at line 3 (as 'sub/c.tidl')");
	assert_int_equal(d->loc.line, 4);
	assert_int_equal(tidl_program_error_count(prog), 1);
}

/* ---- on disk -------------------------------------------------------------- */

static char dir[PATH_MAX];

static int setup_dir(void **state)
{
	(void)state;
	test_tmp_template(dir, sizeof dir, "thothc_imports");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	teardown(state);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	char *slash = strrchr(path, '/');
	*slash = 0;
	char cmd[PATH_MAX + 96];
	snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
	assert_int_equal(system(cmd), 0);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void link_(const char *target, const char *rel)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	assert_int_equal(symlink(target, path), 0);
}

static int load_disk(const char *rel)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/%s", dir, rel);
	tidl_file_t *f;
	prog = tidl_program_new();
	return tidl_program_load(prog, path, &f);
}

static void test_disk_dotdot_imports_resolve(void **state)
{
	(void)state;
	put("main.tidl", "package m;\nversion 1.0;\nimport \"a.tidl\";\nimport \"sub/c.tidl\";\n"
			 "struct M { 1: a.A x; 2: c.C y; }\n");
	put("a.tidl", "package a;\nversion 1.0;\nstruct A { 1: u8 v; }\n");
	put("sub/c.tidl", "package c;\nversion 1.0;\nimport \"../a.tidl\";\nstruct C { 1: a.A v; }\n");
	if (load_disk("main.tidl") != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("did not load");
	}
	assert_int_equal(prog->n_files, 3);
}

/* The same file through a symlink is one file: reached twice it is loaded
 * once (it was two files of one package, the twin's names clashing), and
 * importing its importer back through the link is a cycle (it was 64
 * levels of imports and "imports nested deeper than 64"). */
static void test_disk_a_symlinked_file_is_one_file(void **state)
{
	(void)state;
	put("main.tidl", "package m;\nversion 1.0;\nimport \"a.tidl\";\nimport \"sub/c.tidl\";\n"
			 "struct M { 1: A x; 2: C y; }\n");
	put("a.tidl", "package a;\nversion 1.0;\nstruct A { 1: u8 v; }\n");
	put("sub/c.tidl", "package c;\nversion 1.0;\nimport \"../alias.tidl\";\nstruct C { 1: A v; }\n");
	link_("a.tidl", "alias.tidl");
	if (load_disk("main.tidl") != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("did not load");
	}
	assert_int_equal(prog->n_files, 3);
	/* and in one file, the second spelling is a second import of it */
	tidl_program_free(prog);
	put("twice.tidl", "package t;\nversion 1.0;\nimport \"a.tidl\";\nimport \"alias.tidl\";\n");
	assert_int_not_equal(load_disk("twice.tidl"), 0);
	assert_int_equal(find("is imported already")->loc.line, 4);
}

static void test_disk_cycle_through_a_symlink_is_a_cycle(void **state)
{
	(void)state;
	put("main.tidl", "package m;\nversion 1.0;\nimport \"sub/c.tidl\";\n");
	put("sub/c.tidl", "package c;\nversion 1.0;\nimport \"me.tidl\";\n");
	link_("../main.tidl", "sub/me.tidl");
	assert_int_not_equal(load_disk("main.tidl"), 0);
	find("import cycle:");
	assert_int_equal(tidl_program_error_count(prog), 1);
}

static void test_disk_cycle_through_dotdot_is_a_cycle(void **state)
{
	(void)state;
	put("sub/c.tidl", "package c;\nversion 1.0;\nimport \"../sub/c.tidl\";\n");
	assert_int_not_equal(load_disk("sub/c.tidl"), 0);
	find("import cycle:");
	assert_int_equal(tidl_program_error_count(prog), 1);
}

static tidl_file_t *loaded(const char *package)
{
	for (size_t i = 0; i < prog->n_files; i++)
		if (prog->files[i]->package && strcmp(prog->files[i]->package, package) == 0)
			return prog->files[i];
	return NULL;
}

static void must_load(const char *rel)
{
	if (load_disk(rel) != 0) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("%s did not load", rel);
	}
}

/* link -> elsewhere/deep: "link/../x.tidl" is elsewhere/x.tidl, as the
 * kernel resolves it (and as thothc read it before imports were folded),
 * not the x.tidl beside main.tidl that folding it as written names.  The
 * path keeps the '..' that is not folded, so a message names it so. */
static void test_disk_dotdot_after_a_symlinked_folder_is_the_kernels(void **state)
{
	(void)state;
	put("main.tidl", "package m;\nversion 1.0;\nimport \"link/../x.tidl\";\n");
	put("x.tidl", "package decoy;\nversion 1.0;\n");
	put("elsewhere/deep/y.tidl", "package y;\nversion 1.0;\n");
	put("elsewhere/x.tidl", "package x;\nversion 1.0;\n");
	link_("elsewhere/deep", "link");
	must_load("main.tidl");
	assert_null(loaded("decoy"));
	const tidl_file_t *x = loaded("x");
	assert_non_null(x);
	char want[PATH_MAX + 128];
	snprintf(want, sizeof want, "%s/link/../x.tidl", dir);
	assert_string_equal(x->path, want);
}

/* The root's own path as given: "link/../z.tidl" is real/z.tidl, whose
 * import "y2.tidl" is real/y2.tidl.  Folded with the root's path as
 * written it was ./y2.tidl: "cannot open", or with one there, that one. */
static void test_disk_dotdot_in_the_roots_path_is_the_kernels(void **state)
{
	(void)state;
	put("real/sub/keep.tidl", "package keep;\nversion 1.0;\n");
	put("real/z.tidl", "package z;\nversion 1.0;\nimport \"y2.tidl\";\nstruct Z { 1: y2.Y v; }\n");
	put("real/y2.tidl", "package y2;\nversion 1.0;\nstruct Y { 1: u8 v; }\n");
	link_("real/sub", "link");
	must_load("link/../z.tidl");
	assert_int_equal(prog->n_files, 2);
	tidl_program_free(prog);
	put("y2.tidl", "package y2;\nversion 1.0;\nstruct Decoy { 1: u8 v; }\n");
	must_load("link/../z.tidl");        /* not the decoy: Z's field resolves */
	assert_non_null(loaded("y2"));
	assert_non_null(tidl_file_find_decl(loaded("y2"), "Y"));
	assert_null(tidl_file_find_decl(loaded("y2"), "Decoy"));
}

/* link/x.tidl imports "../y.tidl": real/y.tidl, which does not exist.
 * Folded as written it was ./y.tidl, which does: loaded in its place. */
static void test_disk_missing_file_after_a_symlinked_folder_is_missing(void **state)
{
	(void)state;
	put("real/sub/x.tidl", "package x;\nversion 1.0;\nimport \"../y.tidl\";\n");
	put("y.tidl", "package y;\nversion 1.0;\n");
	link_("real/sub", "link");
	assert_int_not_equal(load_disk("link/x.tidl"), 0);
	/* named as written, then where it was looked for and why there */
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof want, "cannot open '../y.tidl' (looked for %s/link/../y.tidl, which is "
		 "%s/real/y.tidl: '..' after a symlinked folder is its target's parent): No such file",
		 dir, dir);
	assert_int_equal(find(want)->loc.line, 3);
	assert_null(loaded("y"));
}

/* A schema tree reached through a symlinked folder (proj/schemas ->
 * shared/idl) resolves where it really is: "../common/c.tidl" of
 * proj/schemas/a.tidl is shared/common/c.tidl, as for the kernel, cc's
 * #include "..." and an editor, not proj/common/c.tidl; a tree moves
 * with its imports wherever it is linked from.  Missing there, the message
 * says the import as written, the path and the real place. */
static void test_disk_a_tree_through_a_symlinked_folder_resolves_where_it_is(void **state)
{
	(void)state;
	put("shared/idl/a.tidl", "package a;\nversion 1.0;\nimport \"../common/c.tidl\";\n"
				 "import \"sub/b.tidl\";\nstruct A { 1: c.C x; 2: b.B y; }\n");
	put("shared/idl/sub/b.tidl", "package b;\nversion 1.0;\nimport \"../../common/c.tidl\";\n"
				     "struct B { 1: c.C x; }\n");
	put("shared/common/c.tidl", "package c;\nversion 1.0;\nstruct C { 1: u8 v; }\n");
	put("proj/common/c.tidl", "package c;\nversion 1.0;\nstruct Decoy { 1: u8 v; }\n");
	link_("../shared/idl", "proj/schemas");
	must_load("proj/schemas/a.tidl");
	assert_int_equal(prog->n_files, 3);     /* c.tidl once, by both spellings */
	assert_non_null(tidl_file_find_decl(loaded("c"), "C"));
	tidl_program_free(prog);
	char gone[PATH_MAX + 64];
	snprintf(gone, sizeof gone, "%s/shared/common/c.tidl", dir);
	assert_int_equal(unlink(gone), 0);
	assert_int_not_equal(load_disk("proj/schemas/a.tidl"), 0);
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof want, "cannot open '../common/c.tidl' (looked for %s/proj/schemas/../common/c.tidl, "
		 "which is %s/shared/common/c.tidl: '..' after a symlinked folder is its target's parent)", dir, dir);
	const tidl_diag_t *d = find(want);
	assert_int_equal(d->loc.line, 3);
	snprintf(want, sizeof want, "%s/proj/schemas/a.tidl", dir);
	assert_string_equal(d->loc.file, want);         /* the importer as the user named it */
}

/* A missing folder before '..' is an error, as the kernel has it: folded,
 * "nope/../a.tidl" was a.tidl.  A real folder before it folds. */
static void test_disk_absolute_import_with_dotdot(void **state)
{
	(void)state;
	put("a.tidl", "package a;\nversion 1.0;\nstruct A { 1: u8 v; }\n");
	char text[PATH_MAX + 256];
	snprintf(text, sizeof text, "package m;\nversion 1.0;\nimport \"%s/sub/../a.tidl\";\n"
				    "struct M { 1: a.A x; }\n", dir);
	put("sub/main.tidl", text);
	must_load("sub/main.tidl");
	char want[PATH_MAX + 128];
	snprintf(want, sizeof want, "%s/a.tidl", dir);
	assert_string_equal(loaded("a")->path, want);
	tidl_program_free(prog);
	snprintf(text, sizeof text, "package m;\nversion 1.0;\nimport \"%s/nope/../a.tidl\";\n", dir);
	put("sub/main.tidl", text);
	assert_int_not_equal(load_disk("sub/main.tidl"), 0);
	snprintf(want, sizeof want, "cannot open '%s/nope/../a.tidl': No such file", dir);
	assert_int_equal(find(want)->loc.line, 3);
}

static void test_disk_missing_import_named_as_written_and_as_looked_for(void **state)
{
	(void)state;
	put("sub/main.tidl", "package m;\nversion 1.0;\nimport \"./../gone.tidl\";\n");
	assert_int_not_equal(load_disk("sub/main.tidl"), 0);
	char want[PATH_MAX + 128];
	snprintf(want, sizeof want, "cannot open './../gone.tidl' (looked for %s/gone.tidl): No such file", dir);
	assert_int_equal(find(want)->loc.line, 3);
}

/* A diagnostic is kept whole, however long: one over 512 bytes (a long
 * import name, a deep folder) lost its end, ": No such file" and all. */
static void test_disk_a_long_diagnostic_is_kept_whole(void **state)
{
	(void)state;
	char name[420];
	memcpy(name, "./", 2);
	memset(name + 2, 'n', 200);
	name[202] = '/';
	memset(name + 203, 'o', 200);
	strcpy(name + 403, ".tidl");
	char text[600];
	snprintf(text, sizeof text, "package m;\nversion 1.0;\nimport \"%s\";\n", name);
	put("sub/main.tidl", text);
	assert_int_not_equal(load_disk("sub/main.tidl"), 0);
	char want[2 * PATH_MAX + 256];
	snprintf(want, sizeof want, "cannot open '%s' (looked for %s/sub/%s): No such file", name, dir, name + 2);
	assert_true(strlen(want) > 512);
	assert_int_equal(find(want)->loc.line, 3);
}

int main(void)
{
#define T(f) cmocka_unit_test_teardown(f, teardown)
#define D(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)
	const struct CMUnitTest tests[] = {
		T(test_import_paths_fold_dot_and_dotdot_as_written),
		T(test_memory_imports_resolve_dotdot),
		T(test_memory_cycle_through_dotdot_is_a_cycle),
		T(test_memory_import_above_the_set_is_not_found),
		T(test_a_file_imported_twice_is_refused),
		D(test_disk_dotdot_imports_resolve),
		D(test_disk_a_symlinked_file_is_one_file),
		D(test_disk_cycle_through_a_symlink_is_a_cycle),
		D(test_disk_cycle_through_dotdot_is_a_cycle),
		D(test_disk_dotdot_after_a_symlinked_folder_is_the_kernels),
		D(test_disk_dotdot_in_the_roots_path_is_the_kernels),
		D(test_disk_missing_file_after_a_symlinked_folder_is_missing),
		D(test_disk_a_tree_through_a_symlinked_folder_resolves_where_it_is),
		D(test_disk_absolute_import_with_dotdot),
		D(test_disk_missing_import_named_as_written_and_as_looked_for),
		D(test_disk_a_long_diagnostic_is_kept_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
