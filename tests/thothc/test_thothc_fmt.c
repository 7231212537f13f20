/*
 * test_thothc_fmt.c - `thothc fmt` (canonical layout, comments kept,
 * idempotent) and `thothc lint` (one test per rule, and a clean schema has
 * no finding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fmt.h"
#include "tidl_test_util.h"

static tidl_program_t *prog;
static char *out;

static int teardown(void **state)
{
	tidl_program_free(prog);
	prog = NULL;
	free(out);
	out = NULL;
	tidl_test_reset();
	return 0;
}

/* fmt(TEXT), which must succeed. */
static const char *fmt(const char *text)
{
	tidl_program_free(prog);
	free(out);
	prog = tidl_program_new();
	tidl_file_t f = { .path = "f.tidl", .source = text, .source_len = strlen(text) };
	out = thothc_fmt(prog, &f);
	if (!out) {
		tidl_program_print_diags(prog, stderr);
		fail_msg("fmt failed");
	}
	return out;
}

/* fmt(TEXT) == WANT, and fmt(WANT) == WANT (idempotent). */
static void expect_fmt(const char *text, const char *want)
{
	const char *got = fmt(text);
	if (strcmp(got, want) != 0)
		fail_msg("fmt gave\n%s\nwant\n%s", got, want);
	char *copy = strdup(want);
	got = fmt(copy);
	free(copy);
	if (strcmp(got, want) != 0)
		fail_msg("fmt is not idempotent: second pass gave\n%s", got);
}

static void test_fmt_canonical_file_is_unchanged(void **state)
{
	const char *canon =
		"// a schema\n"
		"package t.demo;\n"
		"version 1.2;\n"
		"\n"
		"feature trace = 0;        // aligned comments\n"
		"error NotFound = 1;       // stay aligned\n"
		"\n"
		"enum Color : i8 {\n"
		"  RED = 0;\n"
		"  DARK = -1 @since(1.1);\n"
		"  reserved 2, -3;\n"
		"}\n"
		"\n"
		"struct Point {\n"
		"  1: i32 x;\n"
		"  2: list<list<u8>> raw;\n"
		"  reserved 3: optional u64 id;\n"
		"  4: optional thoth.common.Endpoint ep @since(1.2);\n"
		"}\n"
		"\n"
		"interface Shapes {\n"
		"  /* block comment */\n"
		"  1: get(string key, optional u32 n @since(1.1)) -> (Point p) error NotFound;\n"
		"  2: oneway ping(u64 seq) @requires(trace);\n"
		"  reserved 3;\n"
		"}\n";
	expect_fmt(canon, canon);
}

static void test_fmt_normalises_spacing_indentation_and_blank_lines(void **state)
{
	expect_fmt("package   t ;version 1.0;\n\n\n\nstruct S{1 :u8 a ;2: list < u8 > b@since( 1.0 );\n\n}\n"
		   "interface I\n{\n\n    1:m( u8 a,u8 b )->( u8 c )error E|F;}\nerror E=1;error F=2;",
		   "package t;\nversion 1.0;\n\nstruct S {\n  1: u8 a;\n  2: list<u8> b @since(1.0);\n}\n"
		   "interface I {\n  1: m(u8 a, u8 b) -> (u8 c) error E | F;\n}\nerror E = 1;\nerror F = 2;\n");
}

static void test_fmt_keeps_every_comment(void **state)
{
	expect_fmt("// head\npackage t; // trailing\nversion 1.0;\nstruct S { // open\n"
		   "// own line\n1: u8 a; /* after */\n}\n// tail\n",
		   "// head\npackage t; // trailing\nversion 1.0;\nstruct S { // open\n"
		   "  // own line\n  1: u8 a; /* after */\n}\n// tail\n");
}

static void test_fmt_comment_inside_a_statement_continues_it_on_the_next_line(void **state)
{
	expect_fmt("package t;\nversion 1.0;\ninterface I {\n  1: m(u8 a) // why\n  -> (u8 b);\n}\n",
		   "package t;\nversion 1.0;\ninterface I {\n  1: m(u8 a) // why\n       -> (u8 b);\n}\n");
}

static void test_fmt_breaks_long_methods_before_arrow_and_error(void **state)
{
	expect_fmt("package t;\nversion 1.0;\nerror LongErrorNameOne = 1;\nerror LongErrorNameTwo = 2;\n"
		   "interface I {\n  1: resolve(string name, string min_version, u32 prefer, u16 numa_node) -> "
		   "(string instance) error LongErrorNameOne | LongErrorNameTwo;\n}\n",
		   "package t;\nversion 1.0;\nerror LongErrorNameOne = 1;\nerror LongErrorNameTwo = 2;\n"
		   "interface I {\n  1: resolve(string name, string min_version, u32 prefer, u16 numa_node) "
		   "-> (string instance)\n       error LongErrorNameOne | LongErrorNameTwo;\n}\n");
	/* too long even for '->': the break comes before it */
	expect_fmt("package t;\nversion 1.0;\ninterface I {\n  1: resolve(string name, string min_version, "
		   "list<string> prefer, u16 numa_node) -> (string instance);\n}\n",
		   "package t;\nversion 1.0;\ninterface I {\n  1: resolve(string name, string min_version, "
		   "list<string> prefer, u16 numa_node)\n       -> (string instance);\n}\n");
}

static void test_fmt_refuses_a_file_with_a_syntax_error(void **state)
{
	prog = tidl_program_new();
	const char *text = "package t;\nversion 1.0;\nstruct S { 1: u8 a }\n";
	tidl_file_t f = { .path = "f.tidl", .source = text, .source_len = strlen(text) };
	assert_null(thothc_fmt(prog, &f));
	assert_non_null(tidl_test_find_diag(prog, "expected ';' after field"));
}

static void test_fmt_refuses_a_file_with_a_nul_byte(void **state)
{
	/* found by the fuzzer: a NUL inside a comment would cut the output */
	static const char text[] = "package t;\nversion 1.0; // a\0b\n";
	prog = tidl_program_new();
	tidl_file_t f = { .path = "f.tidl", .source = text, .source_len = sizeof text - 1 };
	assert_null(thothc_fmt(prog, &f));
	const tidl_diag_t *d = tidl_test_find_diag(prog, "NUL byte in the file; not formatted");
	assert_non_null(d);
	assert_int_equal(d->loc.line, 2);
	assert_int_equal(d->loc.col, 18);
}

/* ---- lint ---------------------------------------------------------------- */

static tidl_program_t *findings;

static int lint(const char *text)
{
	tidl_file_t *f;
	if (tidl_test_load_text(text, &f) != 0) {
		tidl_test_dump(tidl_test_prog());
		fail_msg("lint test schema does not load");
	}
	tidl_program_free(findings);
	findings = tidl_program_new();
	return thothc_lint(f, findings);
}

static int lint_teardown(void **state)
{
	tidl_program_free(findings);
	findings = NULL;
	return teardown(state);
}

static void expect_finding(const char *text, const char *needle, uint32_t line)
{
	assert_true(lint(text) > 0);
	const tidl_diag_t *d = tidl_test_find_diag(findings, needle);
	if (!d) {
		tidl_test_dump(findings);
		fail_msg("no lint finding containing \"%s\"", needle);
	}
	assert_int_equal(d->severity, TIDL_WARNING);
	assert_int_equal(d->loc.line, line);
}

#define H "package t;\nversion 1.2;\n"

static void test_lint_clean_schema_has_no_finding(void **state)
{
	int n = lint(H "feature fast_path = 0;\nerror NotFound = 1;\nenum Color : u8 {\n  RED = 0;\n"
		     "  DARK_RED = 1 @since(1.1);\n}\nstruct Point {\n  1: i32 x;\n  reserved 2;\n"
		     "  3: u8 z @since(1.1);\n}\ninterface Shapes {\n  1: get_point(u8 id) -> (Point p) "
		     "error NotFound;\n  reserved 2;\n  3: new_call() @since(1.2);\n}\n");
	if (n)
		tidl_test_dump(findings);
	assert_int_equal(n, 0);
}

static void test_lint_reports_naming(void **state)
{
	expect_finding(H "struct point {\n  1: u8 a;\n}\n", "struct 'point' should be UpperCamelCase [naming]", 3);
	expect_finding(H "struct P {\n  1: u8 badName;\n}\n", "field 'badName' should be lower_snake_case", 4);
	expect_finding(H "enum E : u8 {\n  Red = 0;\n}\n", "enum value 'Red' should be UPPER_SNAKE_CASE", 4);
	expect_finding(H "interface I {\n  1: GetIt();\n}\n", "method 'GetIt' should be lower_snake_case", 4);
	expect_finding(H "feature Fast = 1;\n", "feature 'Fast' should be lower_snake_case", 3);
}

static void test_lint_reports_a_member_without_since_after_one_with_since(void **state)
{
	expect_finding(H "struct P {\n  1: u8 a;\n  2: u8 b @since(1.1);\n  3: u8 c;\n}\n",
		       "field 'c' has no @since but follows 'b' @since(1.1)", 6);
	expect_finding(H "interface I {\n  1: a() @since(1.2);\n  2: b() @since(1.1);\n}\n",
		       "method 'b' @since(1.1) is older than 'a' @since(1.2)", 5);
}

static void test_lint_reports_an_unused_import(void **state)
{
	char text[2048];
	snprintf(text, sizeof text, H "import \"%s/good/common.tidl\";\nstruct P {\n  1: u8 a;\n}\n",
		 SCHEMA_DIR);
	expect_finding(text, "(package thoth.common) is used [unused-import]", 3);
	snprintf(text, sizeof text, H "import \"%s/good/common.tidl\";\nstruct P {\n  1: Endpoint a;\n}\n",
		 SCHEMA_DIR);
	assert_int_equal(lint(text), 0);        /* used through a field's type */
}

static void test_lint_reports_reuse_of_a_retired_name(void **state)
{
	expect_finding(H "struct P {\n  reserved 1: optional u64 lease;\n  2: u64 lease @since(1.1);\n}\n",
		       "field 'lease' has the name of the field retired at ordinal 1 of struct 'P' [reuse]", 5);
}

static void test_lint_reports_an_unreserved_gap(void **state)
{
	expect_finding(H "struct P {\n  1: u8 a;\n  3: u8 c;\n}\n",
		       "ordinal 2 of struct 'P' is neither a field nor reserved", 3);
	expect_finding(H "interface I {\n  1: a();\n  4: d();\n  reserved 2;\n}\n",
		       "method ordinal 3 of interface 'I' is neither a method nor reserved", 3);
}

/* An enum without a value 0 was silent: an absent field, or a request
 * initialised with { 0 }, then holds a value the schema does not name. A
 * reserved 0 is a choice; a strict enum without one is sema's error. */
static void test_lint_reports_an_enum_without_a_zero_value(void **state)
{
	expect_finding(H "enum Prio : u8 {\n  LOW = 1;\n  HIGH = 2;\n}\n",
		       "enum 'Prio' has no value 0: an absent field, or one initialised to 0, holds a value "
		       "it does not name; add one (UNSPECIFIED = 0;, say) [zero]", 3);
	expect_finding(H "enum Sign : i8 {\n  NEG = -1;\n  POS = 1;\n}\n", "enum 'Sign' has no value 0", 3);
	assert_int_equal(lint(H "enum Prio : u8 {\n  reserved 0;\n  LOW = 1;\n}\n"), 0);
	assert_int_equal(lint(H "enum Sign : i8 {\n  NEG = -1;\n  NONE = 0;\n}\n"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fmt_canonical_file_is_unchanged, teardown),
		cmocka_unit_test_teardown(test_fmt_normalises_spacing_indentation_and_blank_lines, teardown),
		cmocka_unit_test_teardown(test_fmt_keeps_every_comment, teardown),
		cmocka_unit_test_teardown(test_fmt_comment_inside_a_statement_continues_it_on_the_next_line, teardown),
		cmocka_unit_test_teardown(test_fmt_breaks_long_methods_before_arrow_and_error, teardown),
		cmocka_unit_test_teardown(test_fmt_refuses_a_file_with_a_syntax_error, teardown),
		cmocka_unit_test_teardown(test_fmt_refuses_a_file_with_a_nul_byte, teardown),
		cmocka_unit_test_teardown(test_lint_clean_schema_has_no_finding, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_naming, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_a_member_without_since_after_one_with_since, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_an_unused_import, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_reuse_of_a_retired_name, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_an_unreserved_gap, lint_teardown),
		cmocka_unit_test_teardown(test_lint_reports_an_enum_without_a_zero_value, lint_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
