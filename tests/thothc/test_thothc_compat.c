/*
 * test_thothc_compat.c - `thothc check`: one test per compatibility rule
 * of docs/IDL.md, in both directions where the rule has two (the breaking
 * change is reported; the compatible variant is accepted).
 *
 * Each test is OLD (below) against OLD with one edit, so the edit is the
 * whole story; edits keep line numbers, so locations are checked too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ast.h"
#include "compat.h"

static const char OLD[] =
	"package t;\n"                                              /*  1 */
	"version 1.0;\n"                                            /*  2 */
	"\n"                                                        /*  3 */
	"feature trace = 0;\n"                                      /*  4 */
	"error NotFound = 1;\n"                                     /*  5 */
	"enum Color : u8 {\n"                                       /*  6 */
	"  RED = 0;\n"                                              /*  7 */
	"  GREEN = 1;\n"                                            /*  8 */
	"}\n"                                                       /*  9 */
	"strict enum Mode : u8 {\n"                                 /* 10 */
	"  OFF = 0;\n"                                              /* 11 */
	"  ON = 1;\n"                                               /* 12 */
	"}\n"                                                       /* 13 */
	"struct Point {\n"                                          /* 14 */
	"  1: i32 x;\n"                                             /* 15 */
	"  2: list<u32> tags;\n"                                    /* 16 */
	"  3: optional u64 id;\n"                                   /* 17 */
	"  4: Color color;\n"                                       /* 18 */
	"}\n"                                                       /* 19 */
	"interface Shapes {\n"                                      /* 20 */
	"  1: get(string key) -> (Point p) error NotFound;\n"       /* 21 */
	"  2: oneway ping(u64 seq);\n"                              /* 22 */
	"  3: traced(u32 n) -> (u32 m) @requires(trace);\n"         /* 23 */
	"}\n";                                                      /* 24 */

static tidl_program_t *old_prog, *new_prog, *findings;
static char *reserved_old;          /* an OLD side with reservations (from_reserved) */
static const char *old_src = OLD;   /* the OLD side of the next check */
static char *new_text;
static int breaks;

static int teardown(void **state)
{
	tidl_program_free(old_prog);
	tidl_program_free(new_prog);
	tidl_program_free(findings);
	free(new_text);
	old_prog = new_prog = findings = NULL;
	new_text = NULL;
	old_src = OLD;
	free(reserved_old);
	reserved_old = NULL;
	return 0;
}

/* OLD with FROM (which must occur exactly once) replaced by TO. */
static const char *edit_of(const char *src, const char *from, const char *to)
{
	const char *at = strstr(src, from);
	assert_non_null(at);
	assert_null(strstr(at + 1, from));
	size_t n = strlen(src) - strlen(from) + strlen(to) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(at - src), src, to, at + strlen(from));
	free(new_text);
	new_text = out;
	return out;
}

static const char *edit(const char *from, const char *to)
{
	return edit_of(OLD, from, to);
}

/* OLD at version 1.1 with one edit: the usual shape of a schema change. */
static const char *bump(const char *from, const char *to)
{
	char *first = strdup(edit("version 1.0;", "version 1.1;"));
	const char *r = edit_of(first, from, to);
	free(first);
	return r;
}

static void check(const char *new_src)
{
	tidl_file_t *of, *nf;
	old_prog = tidl_program_new();
	new_prog = tidl_program_new();
	findings = tidl_program_new();
	if (tidl_program_load_buffer(old_prog, "old.tidl", old_src, strlen(old_src), &of) != 0 ||
	    tidl_program_load_buffer(new_prog, "new.tidl", new_src, strlen(new_src), &nf) != 0) {
		tidl_program_print_diags(old_prog, stderr);
		tidl_program_print_diags(new_prog, stderr);
		fail_msg("a test schema does not load");
	}
	breaks = thothc_compat_check(of, nf, findings);
	assert_int_equal((size_t)breaks, tidl_program_error_count(findings));
}

static const tidl_diag_t *finding(const char *needle)
{
	for (size_t i = 0; i < tidl_program_diag_count(findings); i++) {
		const tidl_diag_t *d = tidl_program_diag(findings, i);
		if (strstr(d->message, needle))
			return d;
	}
	tidl_program_print_diags(findings, stderr);
	fail_msg("no finding containing \"%s\"", needle);
	return NULL;
}

/* NEW breaks compatibility, and one reason is NEEDLE at FILE:LINE. */
static void assert_breaks(const char *new_src, const char *needle, const char *file, uint32_t line)
{
	check(new_src);
	assert_true(breaks > 0);
	const tidl_diag_t *d = finding(needle);
	assert_int_equal(d->severity, TIDL_ERROR);
	assert_string_equal(d->loc.file, file);
	assert_int_equal(d->loc.line, line);
}

static void assert_compatible(const char *new_src)
{
	check(new_src);
	if (breaks) {
		tidl_program_print_diags(findings, stderr);
		fail_msg("%d breaking change(s) reported", breaks);
	}
}

/* NEW is compatible but draws the warning NEEDLE. */
static void assert_warns(const char *new_src, const char *needle, uint32_t line)
{
	assert_compatible(new_src);
	const tidl_diag_t *d = finding(needle);
	assert_int_equal(d->severity, TIDL_WARNING);
	assert_int_equal(d->loc.line, line);
}

static void test_compat_identical_schemas_are_compatible(void **state)
{
	assert_compatible(OLD);
	assert_int_equal(tidl_program_diag_count(findings), 0);
}

/* ---- struct fields ---------------------------------------------------------- */

static void test_compat_removed_field_breaks(void **state)
{
	assert_breaks(edit("  4: Color color;\n", ""), "field 4 'color' of struct 'Point' removed", "old.tidl", 18);
}

static void test_compat_renamed_field_is_a_warning(void **state)
{
	assert_warns(bump("i32 x;", "i32 left;"), "field 1 of struct 'Point' renamed from 'x' to 'left' (compatible)", 15);
}

/* Two fields that swap names keeping their ordinals: the wire is the same,
 * but code reading 'x' now gets what old peers write as 'tags', and it
 * still compiles (a plain rename does not: the old name is gone).  Two
 * "renamed" warnings said it was compatible (ops40); now one breaking
 * finding naming both. */
static void test_compat_fields_swapping_names_break_once(void **state)
{
	assert_breaks(bump("  1: i32 x;\n  2: list<u32> tags;", "  1: i32 tags;\n  2: list<u32> x;"),
		      "fields 1 'x' and 2 'tags' of struct 'Point' swapped names", "new.tidl", 15);
	assert_int_equal(breaks, 1);
	assert_int_equal(tidl_program_diag_count(findings), 1);
}

/* A name moved onto another member's slot (not a swap: 'tags' is renamed
 * away) is the same trap for code using 'tags'. */
static void test_compat_field_renamed_to_another_fields_old_name_breaks(void **state)
{
	assert_breaks(bump("  1: i32 x;\n  2: list<u32> tags;", "  1: i32 tags;\n  2: list<u32> label;"),
		      "field 1 of struct 'Point' renamed from 'x' to 'tags', the old name of field 2",
		      "new.tidl", 15);
	/* 'tags' -> 'label' is a plain rename: a warning beside it */
	assert_int_equal(finding("renamed from 'tags' to 'label'")->severity, TIDL_WARNING);
}

static void test_compat_enum_values_and_methods_swapping_names_break(void **state)
{
	assert_breaks(bump("  RED = 0;\n  GREEN = 1;", "  GREEN = 0;\n  RED = 1;"),
		      "enum values 0 'RED' and 1 'GREEN' of 'Color' swapped names", "new.tidl", 7);
	assert_int_equal(breaks, 1);
	teardown(state);
	/* a client calling get() would run the old server's ping() */
	assert_breaks(bump("  1: get(string key) -> (Point p) error NotFound;\n  2: oneway ping(u64 seq);",
			   "  1: ping(string key) -> (Point p) error NotFound;\n  2: oneway get(u64 seq);"),
		      "methods 1 'get' and 2 'ping' of 'Shapes' swapped names", "new.tidl", 21);
	assert_int_equal(breaks, 1);
}

static void test_compat_renumbered_field_breaks(void **state)
{
	assert_breaks(edit("  3: optional u64 id;\n  4: Color color;", "  3: Color color;"),
		      "field 'color' of struct 'Point' renumbered from 4 to 3", "new.tidl", 17);
}

/* A field or enum value moved to a new ordinal is one change, said once:
 * it was also "added without @since" at its new ordinal (two errors, the
 * second one wrong: nothing was added). */
static void test_compat_renumbering_is_reported_once(void **state)
{
	assert_breaks(bump("  4: Color color;", "  5: Color color;"),
		      "field 'color' of struct 'Point' renumbered from 4 to 5", "new.tidl", 18);
	assert_int_equal(breaks, 1);
	teardown(NULL);                 /* one check per program set */
	assert_breaks(bump("GREEN = 1;", "GREEN = 7;"), "enum value 'Color.GREEN' renumbered from 1 to 7",
		      "new.tidl", 8);
	assert_int_equal(breaks, 1);
	teardown(NULL);
	/* a new member at a new ordinal beside it is still an addition */
	assert_breaks(bump("  4: Color color;", "  5: Color color;\n  6: u8 extra;"), "field 6 'extra' of "
		      "struct 'Point' added without @since", "new.tidl", 19);
	assert_int_equal(breaks, 2);
}

static void test_compat_changed_field_type_breaks(void **state)
{
	assert_breaks(edit("i32 x;", "i64 x;"), "field 'x' of struct 'Point' changed type from i32 to i64", "new.tidl", 15);
}

static void test_compat_changed_list_element_type_breaks(void **state)
{
	assert_breaks(edit("list<u32> tags", "list<u64> tags"),
		      "field 'tags' of struct 'Point' changed type from list<u32> to list<u64>", "new.tidl", 16);
}

static void test_compat_same_type_written_qualified_is_compatible(void **state)
{
	assert_compatible(edit("4: Color color;", "4: t.Color color;"));
}

static void test_compat_field_made_required_breaks(void **state)
{
	assert_breaks(edit("optional u64 id;", "u64 id;"),
		      "field 'id' of struct 'Point' changed from optional to required", "new.tidl", 17);
}

static void test_compat_field_made_optional_breaks(void **state)
{
	assert_breaks(edit("i32 x;", "optional i32 x;"),
		      "field 'x' of struct 'Point' changed from required to optional", "new.tidl", 15);
}

static void test_compat_added_field_with_since_is_compatible(void **state)
{
	assert_compatible(bump("4: Color color;", "4: Color color; 5: bool up @since(1.1);"));
}

static void test_compat_added_field_without_since_breaks(void **state)
{
	assert_breaks(bump("4: Color color;", "4: Color color; 5: bool up;"),
		      "field 5 'up' of struct 'Point' added without @since (must be newer than the old version 1.0)",
		      "new.tidl", 18);
}

static void test_compat_added_field_with_since_not_newer_than_old_breaks(void **state)
{
	assert_breaks(bump("4: Color color;", "4: Color color; 5: bool up @since(1.0);"),
		      "added with @since(1.0), which is not newer than the old version 1.0", "new.tidl", 18);
}

/* ---- declarations ----------------------------------------------------------- */

static void test_compat_removed_type_breaks(void **state)
{
	assert_breaks(edit("strict enum Mode : u8 {\n  OFF = 0;\n  ON = 1;\n}\n", ""), "enum 'Mode' removed", "old.tidl", 10);
}

static void test_compat_new_types_need_no_since(void **state)
{
	assert_compatible(bump("interface Shapes {",
			       "struct Box { 1: Point a; } enum Size : u16 { S = 0; } error Gone = 9; "
			       "interface Extra { 1: m(); } interface Shapes {"));
}

static void test_compat_changed_package_breaks(void **state)
{
	assert_breaks(edit("package t;", "package u;"), "package changed from 't' to 'u'", "new.tidl", 2);
}

static void test_compat_lowered_version_breaks(void **state)
{
	assert_breaks(edit("version 1.0;", "version 0.9;"), "version lowered from 1.0 to 0.9", "new.tidl", 2);
}

static void test_compat_raised_version_is_compatible(void **state)
{
	assert_compatible(edit("version 1.0;", "version 1.7;"));
}

/* Names are in the schema hash: two builds that claim one version with a
 * rename between them refuse each other at the handshake ("schema changed
 * without a version bump").  `thothc check` called this compatible. */
static void test_compat_same_version_with_a_rename_breaks(void **state)
{
	assert_breaks(edit("i32 x;", "i32 left;"), "but the version stays 1.0: peers built from the two refuse each other",
		      "new.tidl", 2);
	/* the rename itself is still only a warning, and not "(compatible)"
	 * beside the error, and the change counts once */
	const tidl_diag_t *d = finding("renamed from 'x' to 'left'");
	assert_int_equal(d->severity, TIDL_WARNING);
	assert_null(strstr(d->message, "(compatible)"));
	assert_non_null(strstr(d->message, "(compatible only with the version raised)"));
	assert_int_equal(breaks, 1);
}

/* A breaking change at an unchanged version is one breaking change, not
 * two (it was also "the version stays 1.0": "2 breaking changes"). */
static void test_compat_same_version_with_a_break_counts_it_once(void **state)
{
	assert_breaks(edit("  2: oneway ping(u64 seq);\n", ""), "method 2 'Shapes.ping' removed", "old.tidl", 22);
	assert_int_equal(breaks, 1);
}

/* What is not in the schema (layout, comments) may change at any version. */
static void test_compat_same_version_with_only_comments_and_layout_changed_is_compatible(void **state)
{
	assert_compatible(edit("  GREEN = 1;\n", "  GREEN   =   1;   // the colour of grass\n"));
}

static void test_compat_same_version_with_an_addition_breaks(void **state)
{
	/* @since must be newer than 1.0 and, in NEW, not newer than 1.0: impossible */
	assert_breaks(edit("4: Color color;", "4: Color color; 5: bool up @since(1.0);"),
		      "field 5 'up' of struct 'Point' added with @since(1.0)", "new.tidl", 18);
}

/* ---- methods --------------------------------------------------------------- */

static void test_compat_removed_method_breaks(void **state)
{
	assert_breaks(edit("  2: oneway ping(u64 seq);\n", ""), "method 2 'Shapes.ping' removed", "old.tidl", 22);
}

static void test_compat_renamed_method_is_a_warning(void **state)
{
	assert_warns(bump("oneway ping(", "oneway beat("), "method 2 of 'Shapes' renamed from 'ping' to 'beat' (compatible)", 22);
}

static void test_compat_renumbered_method_breaks(void **state)
{
	assert_breaks(edit("2: oneway ping", "4: oneway ping"), "method 'Shapes.ping' renumbered from 2 to 4", "new.tidl", 22);
}

static void test_compat_added_method_with_since_is_compatible(void **state)
{
	assert_compatible(bump("  2: oneway ping(u64 seq);", "  2: oneway ping(u64 seq); 4: stop() @since(1.1);"));
}

static void test_compat_added_method_without_since_breaks(void **state)
{
	assert_breaks(bump("  2: oneway ping(u64 seq);", "  2: oneway ping(u64 seq); 4: stop();"),
		      "method 4 'Shapes.stop' added without @since", "new.tidl", 22);
}

static void test_compat_added_method_requiring_a_new_feature_is_compatible(void **state)
{
	char *first = strdup(bump("feature trace = 0;", "feature trace = 0; feature bulk = 1 @since(1.1);"));
	assert_compatible(edit_of(first, "  2: oneway ping(u64 seq);",
				  "  2: oneway ping(u64 seq); 4: bulk_get(list<string> keys) @since(1.1) @requires(bulk);"));
	free(first);
}

static void test_compat_oneway_made_two_way_breaks(void **state)
{
	assert_breaks(edit("oneway ping(u64 seq);", "ping(u64 seq);"),
		      "method 'Shapes.ping' changed from oneway to two-way", "new.tidl", 22);
}

static void test_compat_two_way_made_oneway_breaks(void **state)
{
	assert_breaks(edit("3: traced(u32 n) -> (u32 m)", "3: oneway traced(u32 n)"),
		      "method 'Shapes.traced' changed from two-way to oneway", "new.tidl", 23);
}

static void test_compat_changed_parameter_type_breaks(void **state)
{
	assert_breaks(edit("get(string key)", "get(bytes key)"),
		      "parameter 'key' of the request of method 'Shapes.get' changed type from string to bytes", "new.tidl", 21);
}

static void test_compat_changed_result_type_breaks(void **state)
{
	assert_breaks(edit("-> (u32 m)", "-> (u64 m)"),
		      "parameter 'm' of the response of method 'Shapes.traced' changed type from u32 to u64", "new.tidl", 23);
}

static void test_compat_parameter_made_optional_breaks(void **state)
{
	assert_breaks(edit("get(string key)", "get(optional string key)"),
		      "changed from required to optional", "new.tidl", 21);
}

static void test_compat_renamed_parameter_is_a_warning(void **state)
{
	assert_warns(bump("get(string key)", "get(string name)"),
		     "parameter 1 of the request of method 'Shapes.get' renamed from 'key' to 'name' (compatible)", 21);
}

static void test_compat_appended_parameter_with_since_is_compatible(void **state)
{
	assert_compatible(bump("get(string key)", "get(string key, u32 limit @since(1.1))"));
}

static void test_compat_appended_parameter_without_since_breaks(void **state)
{
	assert_breaks(bump("get(string key)", "get(string key, u32 limit)"),
		      "parameter 2 'limit' of the request of method 'Shapes.get' added without @since", "new.tidl", 21);
}

static void test_compat_inserted_parameter_breaks(void **state)
{
	assert_breaks(bump("get(string key)", "get(u32 limit @since(1.1), string key)"),
		      "parameter 'limit' of the request of method 'Shapes.get' changed type from string to u32", "new.tidl", 21);
}

static void test_compat_removed_parameter_breaks(void **state)
{
	assert_breaks(edit("traced(u32 n)", "traced()"),
		      "parameter 1 'n' of the request of method 'Shapes.traced' removed", "old.tidl", 23);
}

static void test_compat_appended_result_with_since_is_compatible(void **state)
{
	assert_compatible(bump("-> (u32 m)", "-> (u32 m, bool more @since(1.1))"));
}

static void test_compat_appended_result_without_since_breaks(void **state)
{
	assert_breaks(bump("-> (u32 m)", "-> (u32 m, bool more)"),
		      "parameter 2 'more' of the response of method 'Shapes.traced' added without @since", "new.tidl", 23);
}

static void test_compat_changed_requires_breaks(void **state)
{
	assert_breaks(edit(" @requires(trace);", ";"),
		      "method 'Shapes.traced' changed @requires from trace to (none)", "new.tidl", 23);
}

static void test_compat_added_requires_breaks(void **state)
{
	assert_breaks(edit("error NotFound;", "error NotFound @requires(trace);"),
		      "method 'Shapes.get' changed @requires from (none) to trace", "new.tidl", 21);
}

static void test_compat_added_error_in_a_method_is_compatible(void **state)
{
	char *first = strdup(bump("error NotFound = 1;", "error NotFound = 1; error Gone = 2;"));
	assert_compatible(edit_of(first, "error NotFound;", "error NotFound | Gone;"));
	free(first);
}

static void test_compat_removed_error_in_a_method_is_compatible(void **state)
{
	assert_compatible(bump(" error NotFound;", ";"));
}

static void test_compat_changed_error_code_breaks(void **state)
{
	assert_breaks(edit("NotFound = 1;", "NotFound = 2;"), "error 'NotFound' changed its code from 1 to 2", "new.tidl", 5);
}

/* ---- enums -------------------------------------------------------------------- */

static void test_compat_removed_enum_value_breaks(void **state)
{
	assert_breaks(edit("  GREEN = 1;\n", ""), "enum value 'Color.GREEN' (1) removed", "old.tidl", 8);
}

static void test_compat_renamed_enum_value_is_a_warning(void **state)
{
	assert_warns(bump("GREEN = 1;", "LIME = 1;"), "enum value 1 of 'Color' renamed from 'GREEN' to 'LIME' (compatible)", 8);
}

static void test_compat_renumbered_enum_value_breaks(void **state)
{
	assert_breaks(edit("GREEN = 1;", "GREEN = 7;"), "enum value 'Color.GREEN' renumbered from 1 to 7", "new.tidl", 8);
}

static void test_compat_added_enum_value_with_since_is_compatible(void **state)
{
	assert_compatible(bump("GREEN = 1;", "GREEN = 1; BLUE = 2 @since(1.1);"));
}

static void test_compat_added_enum_value_without_since_breaks(void **state)
{
	assert_breaks(bump("GREEN = 1;", "GREEN = 1; BLUE = 2;"), "enum value 'Color.BLUE' added without @since", "new.tidl", 8);
}

static void test_compat_added_value_in_a_strict_enum_breaks(void **state)
{
	assert_breaks(bump("ON = 1;", "ON = 1; AUTO = 2 @since(1.1);"),
		      "enum value 'Mode.AUTO' added to a strict enum: old readers reject it", "new.tidl", 12);
}

static void test_compat_value_added_while_making_a_strict_enum_flexible_breaks(void **state)
{
	char *first = strdup(bump("strict enum Mode", "enum Mode"));
	assert_breaks(edit_of(first, "ON = 1;", "ON = 1; AUTO = 2 @since(1.1);"),
		      "added to a strict enum", "new.tidl", 12);
	free(first);
}

static void test_compat_flexible_enum_made_strict_breaks(void **state)
{
	assert_breaks(edit("enum Color", "strict enum Color"), "enum 'Color' became strict", "new.tidl", 6);
}

static void test_compat_strict_enum_made_flexible_is_compatible(void **state)
{
	assert_compatible(bump("strict enum Mode", "enum Mode"));
}

static void test_compat_changed_enum_underlying_type_breaks(void **state)
{
	assert_breaks(edit("enum Color : u8", "enum Color : u16"),
		      "enum 'Color' changed its underlying type from u8 to u16", "new.tidl", 6);
}

/* ---- features --------------------------------------------------------------- */

static void test_compat_moved_feature_bit_breaks(void **state)
{
	assert_breaks(edit("trace = 0;", "trace = 5;"), "feature 'trace' moved from bit 0 to bit 5", "new.tidl", 4);
}

static void test_compat_removed_feature_breaks(void **state)
{
	char *first = strdup(edit("feature trace = 0;", ""));
	assert_breaks(edit_of(first, " @requires(trace);", ";"), "feature 'trace' (bit 0) removed", "old.tidl", 4);
	free(first);
}

static void test_compat_renamed_feature_is_a_warning(void **state)
{
	char *first = strdup(bump("feature trace = 0;", "feature tracing = 0;"));
	assert_warns(edit_of(first, "@requires(trace)", "@requires(tracing)"),
		     "feature bit 0 renamed from 'trace' to 'tracing' (compatible)", 4);
	free(first);
}

static void test_compat_added_feature_with_since_is_compatible(void **state)
{
	assert_compatible(bump("feature trace = 0;", "feature trace = 0; feature bulk = 1 @since(1.1);"));
}

static void test_compat_added_feature_without_since_breaks(void **state)
{
	assert_breaks(bump("feature trace = 0;", "feature trace = 0; feature bulk = 1;"),
		      "feature 'bulk' added without @since", "new.tidl", 4);
}

/* ---- retiring members: reserved ordinals ---------------------------------- */

/* OLD at 1.1 with the edit FROM -> TO applied, used as the OLD side (a
 * schema that already has reservations); returns OLD edited by NFROM -> NTO
 * at 1.1 as the NEW side. */
static const char *from_reserved(const char *from, const char *to, const char *nfrom, const char *nto)
{
	free(reserved_old);
	reserved_old = strdup(bump(from, to));
	old_src = reserved_old;
	return edit_of(reserved_old, nfrom, nto);
}

static void test_compat_optional_field_retired_with_its_slot_is_compatible(void **state)
{
	assert_warns(bump("  3: optional u64 id;", "  reserved 3: optional u64 id;"),
		     "field 3 'id' of struct 'Point' retired, its slot kept", 17);
}

static void test_compat_required_field_retired_breaks(void **state)
{
	assert_breaks(bump("  4: Color color;", "  reserved 4: Color color;"),
		      "required field 4 'color' of struct 'Point' retired: old readers rely on it",
		      "new.tidl", 18);
}

static void test_compat_field_reserved_without_its_type_breaks(void **state)
{
	assert_breaks(bump("  3: optional u64 id;", "  reserved 3;"),
		      "field 3 'id' of struct 'Point' reserved without its type: its slot disappears "
		      "and the fields after it move for old readers (write 'reserved 3: optional u64 id;')",
		      "new.tidl", 17);
}

static void test_compat_reserved_slot_with_another_layout_breaks(void **state)
{
	assert_breaks(bump("  3: optional u64 id;", "  reserved 3: optional u32 id;"),
		      "the slot's layout changes", "new.tidl", 17);
}

static void test_compat_optional_field_removed_without_reserving_breaks(void **state)
{
	/* a removal in the middle: reported as a breaking change, not as a
	 * gap or syntax error of NEW */
	assert_breaks(bump("  3: optional u64 id;\n", ""),
		      "field 3 'id' of struct 'Point' removed without reserving its ordinal", "old.tidl", 17);
}

static void test_compat_reserved_field_ordinal_reused_breaks(void **state)
{
	const char *nw = from_reserved("  3: optional u64 id;", "  reserved 3: optional u64 id;",
				       "  reserved 3: optional u64 id;", "  3: optional u64 id2;");
	assert_breaks(nw, "field 'id2' reuses ordinal 3 of struct 'Point', reserved in the old version (line 17)",
		      "new.tidl", 17);
}

static void test_compat_dropped_field_reservation_breaks(void **state)
{
	const char *nw = from_reserved("  3: optional u64 id;", "  reserved 3: optional u64 id;",
				       "  reserved 3: optional u64 id;\n", "");
	assert_breaks(nw, "reservation of ordinal 3 of struct 'Point' dropped", "old.tidl", 17);
}

static void test_compat_kept_reservation_is_compatible(void **state)
{
	char *nw = strdup(from_reserved("  3: optional u64 id;", "  reserved 3: optional u64 id;",
					"  4: Color color;", "  4: Color colour;"));
	assert_compatible(edit_of(nw, "version 1.1;", "version 1.2;"));
	free(nw);
}

static void test_compat_field_added_into_a_gap_before_old_fields_breaks(void **state)
{
	const char *nw = from_reserved("  3: optional u64 id;\n", "",
				       "  4: Color color;", "  3: u8 z @since(1.1);\n  4: Color color;");
	assert_breaks(nw, "field 3 'z' of struct 'Point' added before the old version's last slot 4",
		      "new.tidl", 17);
}

static void test_compat_field_appended_after_a_gap_is_compatible(void **state)
{
	assert_compatible(bump("  4: Color color;", "  4: Color color; reserved 5; 6: u8 z @since(1.1);"));
}

static void test_compat_method_retired_with_reserved_ordinal_is_compatible(void **state)
{
	assert_warns(bump("  2: oneway ping(u64 seq);", "  reserved 2;"),
		     "method 2 'Shapes.ping' retired, its ordinal reserved", 22);
}

static void test_compat_method_ordinal_reused_breaks(void **state)
{
	const char *nw = from_reserved("  2: oneway ping(u64 seq);", "  reserved 2;",
				       "  reserved 2;", "  2: pong() @since(1.1);");
	assert_breaks(nw, "method 'Shapes.pong' reuses ordinal 2, reserved in the old version (line 22)",
		      "new.tidl", 22);
}

static void test_compat_dropped_method_reservation_breaks(void **state)
{
	const char *nw = from_reserved("  2: oneway ping(u64 seq);", "  reserved 2;", "  reserved 2;\n", "");
	assert_breaks(nw, "reservation of method ordinal 2 of interface 'Shapes' dropped", "old.tidl", 22);
}

static void test_compat_enum_value_retired_from_a_flexible_enum_is_compatible(void **state)
{
	assert_warns(bump("  GREEN = 1;", "  reserved 1;"),
		     "enum value 'Color.GREEN' (1) retired, its value reserved", 8);
}

static void test_compat_enum_value_retired_from_a_strict_enum_breaks(void **state)
{
	assert_breaks(bump("  ON = 1;", "  reserved 1;"),
		      "enum value 'Mode.ON' (1) retired from a strict enum", "new.tidl", 12);
}

static void test_compat_reserved_enum_value_reused_breaks(void **state)
{
	const char *nw = from_reserved("  GREEN = 1;", "  reserved 1;", "  reserved 1;", "  TEAL = 1 @since(1.1);");
	assert_breaks(nw, "enum value 'Color.TEAL' reuses 1, reserved in the old version (line 8)",
		      "new.tidl", 8);
}

static void test_compat_enum_value_removed_without_reserving_names_the_fix(void **state)
{
	assert_breaks(bump("  GREEN = 1;\n", ""), "removed without reserving its value (write 'reserved 1;')",
		      "old.tidl", 8);
}


/* ---- imported files ------------------------------------------------------ */

static const char IMP_ROOT_OLD[] =
	"package t.shop;\nversion 1.0;\nimport \"common.tidl\";\n"
	"interface Store {\n  1: get(u64 id) -> (Item item);\n}\n";
static const char IMP_COMMON_OLD[] =
	"package t.common;\nversion 1.0;\n"
	"enum Color : u8 {\n  RED = 0;\n}\n"
	"struct Item {\n  1: string name;\n  2: Color color;\n}\n";

/* OLD and NEW roots, each with its own common.tidl, checked as `thothc
 * check old/shop.tidl new/shop.tidl` would. */
static void check_imports(const char *new_root, const char *new_common)
{
	tidl_file_t *of, *nf;
	old_prog = tidl_program_new();
	new_prog = tidl_program_new();
	findings = tidl_program_new();
	tidl_program_add_memory_file(old_prog, "old/shop.tidl", IMP_ROOT_OLD, strlen(IMP_ROOT_OLD));
	tidl_program_add_memory_file(old_prog, "old/common.tidl", IMP_COMMON_OLD, strlen(IMP_COMMON_OLD));
	tidl_program_add_memory_file(new_prog, "new/shop.tidl", new_root, strlen(new_root));
	tidl_program_add_memory_file(new_prog, "new/common.tidl", new_common, strlen(new_common));
	if (tidl_program_load_buffer(old_prog, "old/shop.tidl", IMP_ROOT_OLD, strlen(IMP_ROOT_OLD), &of) ||
	    tidl_program_load_buffer(new_prog, "new/shop.tidl", new_root, strlen(new_root), &nf)) {
		tidl_program_print_diags(old_prog, stderr);
		tidl_program_print_diags(new_prog, stderr);
		fail_msg("a test schema does not load");
	}
	breaks = thothc_compat_check(of, nf, findings);
	assert_int_equal((size_t)breaks, tidl_program_error_count(findings));
}

/* A struct of an imported file travels inside the root's messages: a
 * field inserted into it without @since breaks the root's peers.  `thothc
 * check` compared the root file only and answered "compatible" (exit 0). */
static void test_compat_breaking_change_in_an_imported_struct_breaks(void **state)
{
	check_imports(IMP_ROOT_OLD,
		      "package t.common;\nversion 1.0;\n"
		      "enum Color : u8 {\n  RED = 0;\n}\n"
		      "struct Item {\n  1: u32 weight;\n  2: string name;\n  3: Color color;\n}\n");
	assert_true(breaks > 0);
	const tidl_diag_t *d = finding("field 'weight' of struct 'Item' changed type from string to u32");
	assert_int_equal(d->severity, TIDL_ERROR);
	assert_string_equal(d->loc.file, "new/common.tidl");
	assert_int_equal(d->loc.line, 7);
}

static void test_compat_removed_enum_value_in_an_import_breaks(void **state)
{
	check_imports("package t.shop;\nversion 1.1;\nimport \"common.tidl\";\n"
		      "interface Store {\n  1: get(u64 id) -> (Item item);\n}\n",
		      "package t.common;\nversion 1.1;\n"
		      "enum Color : u8 {\n}\n"
		      "struct Item {\n  1: string name;\n  2: Color color;\n}\n");
	assert_true(breaks > 0);
	assert_string_equal(finding("RED")->loc.file, "old/common.tidl");
}

/* An import that evolves (compatibly, with its own version) under a root
 * that keeps its version: the root's schema hash changes while both sides
 * claim one version, so they refuse each other.  `thothc check` said
 * compatible. */
static void test_compat_import_changed_under_the_same_root_version_breaks(void **state)
{
	check_imports(IMP_ROOT_OLD,
		      "package t.common;\nversion 1.1;\n"
		      "enum Color : u8 {\n  RED = 0;\n}\n"
		      "struct Item {\n  1: string name;\n  2: Color color;\n"
		      "  3: optional string origin @since(1.1);\n}\n");
	assert_int_equal(breaks, 1);
	const tidl_diag_t *d = finding("the version stays 1.0");
	assert_string_equal(d->loc.file, "new/shop.tidl");
	assert_int_equal(d->loc.line, 2);
}

/* OLD and NEW trees of N files each ({path, text}, the root first),
 * checked as `thothc check` would. */
static void check_trees(const char *const (*old)[2], size_t n_old, const char *const (*nw)[2], size_t n_new)
{
	tidl_file_t *of, *nf;
	old_prog = tidl_program_new();
	new_prog = tidl_program_new();
	findings = tidl_program_new();
	for (size_t i = 1; i < n_old; i++)
		tidl_program_add_memory_file(old_prog, old[i][0], old[i][1], strlen(old[i][1]));
	for (size_t i = 1; i < n_new; i++)
		tidl_program_add_memory_file(new_prog, nw[i][0], nw[i][1], strlen(nw[i][1]));
	if (tidl_program_load_buffer(old_prog, old[0][0], old[0][1], strlen(old[0][1]), &of) ||
	    tidl_program_load_buffer(new_prog, nw[0][0], nw[0][1], strlen(nw[0][1]), &nf)) {
		tidl_program_print_diags(old_prog, stderr);
		tidl_program_print_diags(new_prog, stderr);
		fail_msg("a test schema does not load");
	}
	breaks = thothc_compat_check(of, nf, findings);
	if (breaks)
		tidl_program_print_diags(findings, stderr);
	assert_int_equal((size_t)breaks, tidl_program_error_count(findings));
}

static const char TWO_ROOT_OLD[] =
	"package t.shop;\nversion 1.0;\nimport \"a.tidl\";\nimport \"b.tidl\";\n"
	"interface Store {\n  1: get(u64 id) -> (A a, B b);\n}\n";
static const char TWO_A[] = "package t.common;\nversion 1.0;\nstruct A {\n  1: u32 x;\n}\n";
static const char TWO_B[] = "package t.common;\nversion 1.0;\nstruct B {\n  1: u32 y;\n}\n";

/* A package spread over two imported files, one renamed (b.tidl ->
 * bb.tidl, the root's version raised): nothing changed on the wire.
 * Matching files by name, else the package's first file, compared bb.tidl
 * with a.tidl: "struct 'A' removed", exit 1. */
static void test_compat_a_renamed_file_of_a_package_is_compatible(void **state)
{
	static const char root_new[] =
		"package t.shop;\nversion 1.1;\nimport \"a.tidl\";\nimport \"bb.tidl\";\n"
		"interface Store {\n  1: get(u64 id) -> (A a, B b);\n}\n";
	const char *const old[][2] = { { "old/shop.tidl", TWO_ROOT_OLD }, { "old/a.tidl", TWO_A },
				       { "old/b.tidl", TWO_B } };
	const char *const nw[][2] = { { "new/shop.tidl", root_new }, { "new/a.tidl", TWO_A },
				      { "new/bb.tidl", TWO_B } };
	check_trees(old, 3, nw, 3);
	assert_int_equal(breaks, 0);
	/* and a real change in the renamed file is still found, in it */
	const char *const nw2[][2] = { { "new/shop.tidl", root_new }, { "new/a.tidl", TWO_A },
				       { "new/bb.tidl", "package t.common;\nversion 1.0;\nstruct B {\n  1: u64 y;\n}\n" } };
	teardown(NULL);
	check_trees(old, 3, nw2, 3);
	assert_int_equal(breaks, 1);
	const tidl_diag_t *d = finding("field 'y' of struct 'B' changed type from u32 to u64");
	assert_string_equal(d->loc.file, "new/bb.tidl");
	assert_int_equal(d->loc.line, 4);
}

/* A struct moved from one file of a package to another (the versions
 * raised): the package declares the same things.  It was "struct 'B'
 * removed", exit 1. */
static void test_compat_a_struct_moved_between_files_of_a_package_is_compatible(void **state)
{
	static const char root_new[] =
		"package t.shop;\nversion 1.1;\nimport \"a.tidl\";\nimport \"b.tidl\";\n"
		"interface Store {\n  1: get(u64 id) -> (A a, B b);\n}\n";
	const char *const old[][2] = { { "old/shop.tidl", TWO_ROOT_OLD }, { "old/a.tidl", TWO_A },
				       { "old/b.tidl", TWO_B } };
	const char *const nw[][2] = {
		{ "new/shop.tidl", root_new },
		{ "new/a.tidl", "package t.common;\nversion 1.1;\nstruct A {\n  1: u32 x;\n}\n"
				"struct B {\n  1: u32 y;\n}\n" },
		{ "new/b.tidl", "package t.common;\nversion 1.1;\n" },
	};
	check_trees(old, 3, nw, 3);
	assert_int_equal(breaks, 0);
}

/* The compatible evolution of an import, each addition with its own
 * file's @since, is still compatible. */
static void test_compat_compatible_change_in_an_import_is_compatible(void **state)
{
	check_imports("package t.shop;\nversion 1.1;\nimport \"common.tidl\";\n"
		      "interface Store {\n  1: get(u64 id) -> (Item item);\n"
		      "  2: count() -> (u32 n) @since(1.1);\n}\n",
		      "package t.common;\nversion 1.1;\n"
		      "enum Color : u8 {\n  RED = 0;\n  BLUE = 1 @since(1.1);\n}\n"
		      "struct Item {\n  1: string name;\n  2: Color color;\n"
		      "  3: optional string origin @since(1.1);\n}\n");
	if (breaks) {
		tidl_program_print_diags(findings, stderr);
		fail_msg("%d breaking change(s) reported", breaks);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_teardown(name, teardown)
		T(test_compat_identical_schemas_are_compatible),
		T(test_compat_removed_field_breaks),
		T(test_compat_renamed_field_is_a_warning),
		T(test_compat_fields_swapping_names_break_once),
		T(test_compat_field_renamed_to_another_fields_old_name_breaks),
		T(test_compat_enum_values_and_methods_swapping_names_break),
		T(test_compat_renumbered_field_breaks),
		T(test_compat_renumbering_is_reported_once),
		T(test_compat_changed_field_type_breaks),
		T(test_compat_changed_list_element_type_breaks),
		T(test_compat_same_type_written_qualified_is_compatible),
		T(test_compat_field_made_required_breaks),
		T(test_compat_field_made_optional_breaks),
		T(test_compat_added_field_with_since_is_compatible),
		T(test_compat_added_field_without_since_breaks),
		T(test_compat_added_field_with_since_not_newer_than_old_breaks),
		T(test_compat_removed_type_breaks),
		T(test_compat_new_types_need_no_since),
		T(test_compat_changed_package_breaks),
		T(test_compat_lowered_version_breaks),
		T(test_compat_raised_version_is_compatible),
		T(test_compat_same_version_with_a_rename_breaks),
		T(test_compat_same_version_with_a_break_counts_it_once),
		T(test_compat_same_version_with_only_comments_and_layout_changed_is_compatible),
		T(test_compat_same_version_with_an_addition_breaks),
		T(test_compat_removed_method_breaks),
		T(test_compat_renamed_method_is_a_warning),
		T(test_compat_renumbered_method_breaks),
		T(test_compat_added_method_with_since_is_compatible),
		T(test_compat_added_method_without_since_breaks),
		T(test_compat_added_method_requiring_a_new_feature_is_compatible),
		T(test_compat_oneway_made_two_way_breaks),
		T(test_compat_two_way_made_oneway_breaks),
		T(test_compat_changed_parameter_type_breaks),
		T(test_compat_changed_result_type_breaks),
		T(test_compat_parameter_made_optional_breaks),
		T(test_compat_renamed_parameter_is_a_warning),
		T(test_compat_appended_parameter_with_since_is_compatible),
		T(test_compat_appended_parameter_without_since_breaks),
		T(test_compat_inserted_parameter_breaks),
		T(test_compat_removed_parameter_breaks),
		T(test_compat_appended_result_with_since_is_compatible),
		T(test_compat_appended_result_without_since_breaks),
		T(test_compat_changed_requires_breaks),
		T(test_compat_added_requires_breaks),
		T(test_compat_added_error_in_a_method_is_compatible),
		T(test_compat_removed_error_in_a_method_is_compatible),
		T(test_compat_changed_error_code_breaks),
		T(test_compat_removed_enum_value_breaks),
		T(test_compat_renamed_enum_value_is_a_warning),
		T(test_compat_renumbered_enum_value_breaks),
		T(test_compat_added_enum_value_with_since_is_compatible),
		T(test_compat_added_enum_value_without_since_breaks),
		T(test_compat_added_value_in_a_strict_enum_breaks),
		T(test_compat_value_added_while_making_a_strict_enum_flexible_breaks),
		T(test_compat_flexible_enum_made_strict_breaks),
		T(test_compat_strict_enum_made_flexible_is_compatible),
		T(test_compat_changed_enum_underlying_type_breaks),
		T(test_compat_moved_feature_bit_breaks),
		T(test_compat_removed_feature_breaks),
		T(test_compat_renamed_feature_is_a_warning),
		T(test_compat_added_feature_with_since_is_compatible),
		T(test_compat_added_feature_without_since_breaks),
		T(test_compat_optional_field_retired_with_its_slot_is_compatible),
		T(test_compat_required_field_retired_breaks),
		T(test_compat_field_reserved_without_its_type_breaks),
		T(test_compat_reserved_slot_with_another_layout_breaks),
		T(test_compat_optional_field_removed_without_reserving_breaks),
		T(test_compat_reserved_field_ordinal_reused_breaks),
		T(test_compat_dropped_field_reservation_breaks),
		T(test_compat_kept_reservation_is_compatible),
		T(test_compat_field_added_into_a_gap_before_old_fields_breaks),
		T(test_compat_field_appended_after_a_gap_is_compatible),
		T(test_compat_method_retired_with_reserved_ordinal_is_compatible),
		T(test_compat_method_ordinal_reused_breaks),
		T(test_compat_dropped_method_reservation_breaks),
		T(test_compat_enum_value_retired_from_a_flexible_enum_is_compatible),
		T(test_compat_enum_value_retired_from_a_strict_enum_breaks),
		T(test_compat_reserved_enum_value_reused_breaks),
		T(test_compat_enum_value_removed_without_reserving_names_the_fix),
		T(test_compat_breaking_change_in_an_imported_struct_breaks),
		T(test_compat_removed_enum_value_in_an_import_breaks),
		T(test_compat_compatible_change_in_an_import_is_compatible),
		T(test_compat_import_changed_under_the_same_root_version_breaks),
		T(test_compat_a_renamed_file_of_a_package_is_compatible),
		T(test_compat_a_struct_moved_between_files_of_a_package_is_compatible),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
