/*
 * test_thothc_parse.c - the .tidl language as the front end accepts and
 * rejects it (docs/IDL.md): one behaviour per test.  Whole schemas live in
 * schemas/good and schemas/bad; a bad schema's first line says which
 * diagnostic it must produce ("// expect: LINE:COL: message").
 */
#define _GNU_SOURCE             /* newlocale */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tidl_test_util.h"

#define HEADER "package t;\nversion 1.2;\n"

/* The load of TEXT fails with a diagnostic containing NEEDLE at LINE:COL
 * (COL 0: any column). */
static void expect_error_at(const char *text, const char *needle, uint32_t line, uint32_t col)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_text(text, &f), 0);
	const tidl_diag_t *d = tidl_test_find_diag(tidl_test_prog(), needle);
	if (!d) {
		tidl_test_dump(tidl_test_prog());
		fail_msg("no diagnostic containing \"%s\"", needle);
	}
	assert_int_equal(d->severity, TIDL_ERROR);
	assert_int_equal(d->loc.line, line);
	if (col)
		assert_int_equal(d->loc.col, col);
}

static tidl_file_t *expect_ok(const char *text)
{
	tidl_file_t *f = NULL;
	if (tidl_test_load_text(text, &f) != 0) {
		tidl_test_dump(tidl_test_prog());
		fail_msg("schema rejected");
	}
	return f;
}

/* Loads schemas/bad/NAME and checks the diagnostic its first line names. */
static void expect_bad_schema(const char *name)
{
	char rel[256], path[1024], first[1024];
	snprintf(rel, sizeof rel, "bad/%s", name);
	snprintf(path, sizeof path, "%s/%s", SCHEMA_DIR, rel);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(first, sizeof first, fp));
	fclose(fp);
	first[strcspn(first, "\n")] = 0;
	unsigned line, col;
	int used = 0;
	assert_int_equal(sscanf(first, "// expect: %u:%u: %n", &line, &col, &used), 2);
	/* the expectation names the schema folder SCHEMA_DIR */
	char want[2048] = "";
	for (const char *s = first + used; *s;) {
		if (strncmp(s, "SCHEMA_DIR", 10) == 0) {
			strncat(want, SCHEMA_DIR, sizeof want - strlen(want) - 1);
			s += 10;
		} else {
			strncat(want, s, 1);
			s++;
		}
	}
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_file(rel, &f), 0);
	const tidl_diag_t *d = NULL;
	for (size_t i = 0; i < tidl_program_diag_count(tidl_test_prog()); i++) {
		const tidl_diag_t *c = tidl_program_diag(tidl_test_prog(), i);
		if (strcmp(c->message, want) == 0)
			d = c;
	}
	if (!d) {
		tidl_test_dump(tidl_test_prog());
		fail_msg("%s: no diagnostic \"%s\"", name, want);
	}
	assert_int_equal(d->loc.line, line);
	assert_int_equal(d->loc.col, col);
	assert_string_equal(d->loc.file, path);
}

static int teardown(void **state)
{
	tidl_test_reset();
	return 0;
}

/* ---- accepted schemas -------------------------------------------------- */

static void test_issue_example_schema_loads_with_everything_resolved(void **state)
{
	tidl_file_t *f;
	if (tidl_test_load_file("good/registry.tidl", &f) != 0) {
		tidl_test_dump(tidl_test_prog());
		fail();
	}
	assert_string_equal(f->package, "thoth.registry");
	assert_int_equal(f->version.major, 1);
	assert_int_equal(f->version.minor, 3);
	tidl_decl_t *batch = tidl_file_find_decl(f, "batch_resolve");
	assert_int_equal(batch->kind, TIDL_DECL_FEATURE);
	assert_int_equal(batch->u.feature.bit, 1);
	assert_true(batch->has_since);
	tidl_decl_t *loc = tidl_file_find_decl(f, "Locality");
	assert_int_equal(loc->u.enum_.underlying, TIDL_U8);
	assert_int_equal(loc->u.enum_.n_values, 4);
	tidl_decl_t *ep = tidl_file_find_decl(f, "Endpoint");
	assert_int_equal(ep->u.struct_.n_fields, 6);
	assert_true(ep->u.struct_.fields[4].optional);
	assert_int_equal(ep->u.struct_.fields[2].type->kind, TIDL_ENUM);
	assert_ptr_equal(ep->u.struct_.fields[2].type->decl, loc);
	tidl_decl_t *reg = tidl_file_find_decl(f, "Registry");
	assert_int_equal(reg->u.iface.n_methods, 4);
	tidl_method_t *resolve = &reg->u.iface.methods[1];
	assert_string_equal(resolve->name, "resolve");
	assert_int_equal(resolve->n_errors, 2);
	assert_ptr_equal(resolve->errors[1], tidl_file_find_decl(f, "Expired"));
	assert_ptr_equal(reg->u.iface.methods[2].requires, batch);
	assert_true(reg->u.iface.methods[3].oneway);
	assert_int_equal(reg->u.iface.methods[0].params[2].ordinal, 3);
}

static void test_fields_are_sorted_by_ordinal(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "struct S { 2: u8 b; 3: u8 c; 1: u8 a; }");
	tidl_decl_t *s = tidl_file_find_decl(f, "S");
	assert_string_equal(s->u.struct_.fields[0].name, "a");
	assert_string_equal(s->u.struct_.fields[1].name, "b");
	assert_string_equal(s->u.struct_.fields[2].name, "c");
}

static void test_methods_are_sorted_and_may_leave_gaps(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "interface I { 7: b(); 2: a(); }");
	tidl_decl_t *i = tidl_file_find_decl(f, "I");
	assert_int_equal(i->u.iface.methods[0].ordinal, 2);
	assert_int_equal(i->u.iface.methods[1].ordinal, 7);
}

static void test_line_and_block_comments_are_ignored(void **state)
{
	expect_ok("// leading\npackage t; /* inline */ version 1.0;\n/* multi\n line */ struct S {}\n");
}

/* Blanks and comments between the parts of a dotted name are not part of
 * it: "package a . b;" was the package "a . b" (the C prefix "a _ b_",
 * another interface id than a.b), a type "a . b.S" never resolved. */
static void test_dotted_names_are_their_parts_joined_by_dots(void **state)
{
	tidl_file_t *f = expect_ok("package a . b /* c */\n\t. c;\nversion 1.0;\n"
				   "struct S { 1: list<a .b. c . S> x; 2: list<S> y; }\n");
	assert_string_equal(f->package, "a.b.c");
	assert_int_equal(f->package_loc.line, 1);
	assert_int_equal(f->package_loc.col, 1);
	tidl_decl_t *st = tidl_file_find_decl(f, "S");
	assert_ptr_equal(st->u.struct_.fields[0].type->elem->decl, st);
}

static void test_imported_names_resolve_qualified_and_unqualified(void **state)
{
	tidl_file_t *f;
	assert_int_equal(tidl_test_load_file("good/uses_common.tidl", &f), 0);
	tidl_decl_t *s = tidl_file_find_decl(f, "Service");
	tidl_decl_t *ep = s->u.struct_.fields[0].type->decl;
	assert_string_equal(ep->file->package, "thoth.common");
	assert_ptr_equal(s->u.struct_.fields[1].type->decl, ep);
	assert_int_equal(s->u.struct_.fields[2].type->elem->kind, TIDL_ENUM);
}

static void test_negative_enum_values_are_allowed_for_signed_types(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "enum E : i8 { LOW = -128; ZERO = 0; HIGH = 127; }");
	tidl_decl_t *e = tidl_file_find_decl(f, "E");
	assert_int_equal((int64_t)e->u.enum_.values[0].value, -128);
}

static void test_annotations_may_come_in_any_order(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "feature x = 3;\n"
				   "interface I { 1: m() @requires(x) @since(1.1); }");
	tidl_method_t *m = &tidl_file_find_decl(f, "I")->u.iface.methods[0];
	assert_true(m->has_since);
	assert_non_null(m->requires);
}

/* SCALE-3/4: @idempotent on methods, @sharded(ALGO) on interfaces. */
static void test_idempotent_and_sharded_annotations_are_parsed(void **state)
{
	(void)state;
	tidl_file_t *f = expect_ok(HEADER "interface I @sharded(maglev) {\n"
				   "  1: get(string k) -> (u64 v) @idempotent;\n  2: put(string k, u64 v);\n}");
	tidl_decl_t *d = tidl_file_find_decl(f, "I");
	assert_string_equal(d->u.iface.shard_algo, "maglev");
	assert_true(d->u.iface.methods[0].idempotent);
	assert_false(d->u.iface.methods[1].idempotent);
	f = expect_ok(HEADER "interface J { 1: get() @since(1.1) @idempotent; }");
	assert_null(tidl_file_find_decl(f, "J")->u.iface.shard_algo);
}

static void test_misplaced_or_unknown_scale_annotations_are_errors(void **state)
{
	(void)state;
	expect_error_at(HEADER "interface I @sharded(modulo) {\n}", "unknown shard algorithm 'modulo'", 3, 0);
	expect_error_at(HEADER "interface I @idempotent {\n}", "@idempotent is only allowed on methods", 3, 0);
	expect_error_at(HEADER "interface I {\n  1: m() @sharded(jump);\n}",
			"@sharded is only allowed on interfaces", 4, 0);
	expect_error_at(HEADER "interface I {\n  1: m() @idempotent @idempotent;\n}", "duplicate @idempotent", 4, 0);
	expect_error_at(HEADER "struct S { 1: u8 a @idempotent; }", "only allowed on methods", 3, 0);
}

static void test_parameters_may_be_optional_and_carry_since(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "interface I {\n"
				   "  1: m(u32 a, optional string b @since(1.1)) -> (bool ok, u8 extra @since(1.2));\n}");
	tidl_method_t *m = &tidl_file_find_decl(f, "I")->u.iface.methods[0];
	assert_true(m->params[1].optional);
	assert_true(m->params[1].has_since);
	assert_int_equal(m->params[1].since.minor, 1);
	assert_true(m->results[1].has_since);
	assert_int_equal(m->results[1].ordinal, 2);
}

static void test_recursion_through_a_list_is_allowed(void **state)
{
	expect_ok(HEADER "struct Node { 1: u32 v; 2: list<Node> children; }");
}

static void test_list_nesting_of_16_is_accepted(void **state)
{
	expect_ok(HEADER "struct S { 1: list<list<list<list<list<list<list<list<"
		  "list<list<list<list<list<list<list<list<u8>>>>>>>>>>>>>>>> x; }");
}

/* ---- rejected schemas: the bad/ files ------------------------------------ */

static void test_duplicate_field_ordinal_is_error(void **state)
{
	expect_bad_schema("duplicate_field_ordinal.tidl");
}

/* A method name used three times: each later use reported once, naming
 * the interface and the first use (it was "duplicate method name 'get'",
 * twice at the third: once per earlier use). Ordinals alike. */
static void test_duplicate_method_names_name_the_first_once(void **state)
{
	(void)state;
	expect_error_at(HEADER "interface I {\n  1: get();\n  2: get();\n  3: get();\n  3: put();\n}",
			"duplicate method name 'get' in interface 'I' (first at line 4)", 5, 3);
	const tidl_program_t *p = tidl_test_prog();
	size_t names = 0, ords = 0;
	for (size_t i = 0; i < tidl_program_diag_count(p); i++) {
		const tidl_diag_t *d = tidl_program_diag(p, i);
		names += strstr(d->message, "duplicate method name") != NULL;
		ords += strstr(d->message, "duplicate method ordinal") != NULL;
	}
	if (names != 2 || ords != 1)
		tidl_test_dump(p);
	assert_int_equal(names, 2);     /* lines 5 and 6 */
	assert_int_equal(ords, 1);      /* line 7 */
}

static void test_field_using_a_reserved_ordinal_is_error(void **state)
{
	expect_bad_schema("field_uses_reserved_ordinal.tidl");
}

/* ---- reserved ordinals and gaps (schema evolution, docs/IDL.md) --------- */

static void test_field_ordinals_may_leave_gaps(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "struct S { 5: u8 c; 1: u8 a; 3: u8 b; }");
	tidl_decl_t *s = tidl_file_find_decl(f, "S");
	assert_int_equal(s->u.struct_.fields[0].ordinal, 1);
	assert_int_equal(s->u.struct_.fields[1].ordinal, 3);
	assert_int_equal(s->u.struct_.fields[2].ordinal, 5);
}

static void test_reserved_struct_ordinals_with_and_without_a_type_are_accepted(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "enum Color : u8 { RED = 0; }\n"
				   "struct S {\n  1: u8 a;\n  reserved 2: optional u64 lease;\n"
				   "  reserved 3: Color;\n  reserved 4, 6;\n  5: u8 b;\n}");
	tidl_decl_t *s = tidl_file_find_decl(f, "S");
	assert_int_equal(s->u.struct_.n_fields, 2);
	assert_int_equal(s->u.struct_.n_reserved, 4);
	const tidl_field_t *r = s->u.struct_.reserved;
	assert_int_equal(r[0].ordinal, 2);
	assert_true(r[0].optional);
	assert_int_equal(r[0].type->kind, TIDL_U64);
	assert_string_equal(r[0].name, "lease");
	assert_int_equal(r[1].type->kind, TIDL_ENUM);   /* resolved like a field's type */
	assert_null(r[1].name);
	assert_null(r[2].type);                         /* a gap: no slot */
	assert_int_equal(r[3].ordinal, 6);
}

static void test_reserved_method_ordinals_and_enum_values_are_accepted(void **state)
{
	tidl_file_t *f = expect_ok(HEADER "enum E : i8 { A = 0; reserved 1, -2; reserved = 3; }\n"
				   "interface I { 1: a(); reserved 2, 4; 3: c(); }");
	tidl_decl_t *e = tidl_file_find_decl(f, "E"), *i = tidl_file_find_decl(f, "I");
	assert_int_equal(e->u.enum_.n_values, 2);       /* a value may be named 'reserved' */
	assert_string_equal(e->u.enum_.values[1].name, "reserved");
	assert_int_equal(e->u.enum_.n_reserved, 2);
	assert_int_equal(i->u.iface.n_methods, 2);
	assert_int_equal(i->u.iface.n_reserved, 2);
	assert_int_equal(i->u.iface.reserved[1].value, 4);
}

static void test_method_using_a_reserved_ordinal_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  reserved 2;\n  2: b();\n}",
			"method 'b' uses ordinal 2, which interface 'I' reserves at line 4", 5, 3);
}

static void test_enum_value_using_a_reserved_value_is_error(void **state)
{
	expect_error_at(HEADER "enum E : u8 {\n  reserved 1;\n  B = 1;\n}",
			"'B' uses a value that enum 'E' reserves at line 4", 5, 3);
}

static void test_ordinal_reserved_twice_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  reserved 2;\n  reserved 2: u8;\n}",
			"ordinal 2 of struct 'S' is reserved twice (first at line 4)", 5, 12);
	tidl_test_reset();
	expect_error_at(HEADER "interface I {\n  reserved 2, 2;\n}",
			"method ordinal 2 of interface 'I' is reserved twice", 4, 15);
}

static void test_reserved_value_outside_the_enum_type_is_error(void **state)
{
	expect_error_at(HEADER "enum E : u8 {\n  reserved 256;\n}",
			"reserved value of enum 'E' does not fit u8", 4, 12);
}

static void test_reserved_ordinal_zero_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  reserved 0;\n}", "ordinals start at 1 in struct 'S'", 4, 12);
	tidl_test_reset();
	expect_error_at(HEADER "interface I {\n  reserved 0;\n}",
			"reserved method ordinals of interface 'I' must be 1..4294967295", 4, 12);
}

static void test_typed_reservation_takes_one_ordinal(void **state)
{
	expect_error_at(HEADER "struct S {\n  reserved 2, 3: u8;\n}",
			"a reserved slot with a type takes one ordinal: expected ';', found ':'", 4, 16);
}

static void test_reserved_slot_of_unknown_type_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  reserved 2: Gone;\n}", "unknown type 'Gone'", 4, 15);
}

static void test_unknown_type_is_error(void **state)
{
	expect_bad_schema("unknown_type.tidl");
}

static void test_unknown_types_are_all_reported(void **state)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_file("bad/unknown_type.tidl", &f), 0);
	assert_int_equal(tidl_program_error_count(tidl_test_prog()), 2);
	assert_non_null(tidl_test_find_diag(tidl_test_prog(), "unknown type 'Bar'"));
}

static void test_recursive_struct_is_error(void **state)
{
	expect_bad_schema("recursive_struct.tidl");
}

static void test_missing_import_is_reported_at_the_import(void **state)
{
	expect_bad_schema("missing_import.tidl");
}

static void test_ambiguous_unqualified_import_name_is_error(void **state)
{
	expect_bad_schema("ambiguous_import.tidl");
}

static void test_missing_semicolon_after_field_is_syntax_error(void **state)
{
	expect_bad_schema("missing_semicolon.tidl");
}

/* A misspelt keyword is named where it is, with the keyword it probably
 * is: the error fell on the token after it ("optinal u8 a;": "expected ';'
 * after field, found 'a'") or said only "found 'strcut'". */
static void test_misspelt_keywords_are_named_at_the_typo(void **state)
{
	expect_error_at("packge t;\nversion 1.0;\n", "found 'packge'; did you mean 'package'?", 1, 1);
	expect_error_at("package t;\nverison 1.0;\n", "found 'verison'; did you mean 'version'?", 2, 1);
	expect_error_at(HEADER "strcut S {\n}\n", "found 'strcut'; did you mean 'struct'?", 3, 1);
	expect_error_at(HEADER "intrface I {\n}\n", "found 'intrface'; did you mean 'interface'?", 3, 1);
	expect_error_at(HEADER "struct S {\n  1: optinal u8 a;\n}\n",
			"expected ';' after field, found 'a'; did you mean 'optional', not 'optinal'?", 4, 6);
	expect_error_at(HEADER "interface I {\n  1: m(optinal u8 a);\n}\n",
			"did you mean 'optional', not 'optinal'?", 4, 8);
	expect_error_at(HEADER "interface I {\n  1: onway m(u8 a);\n}\n",
			"expected '(' to open the parameter list, found 'm'; did you mean 'oneway', not 'onway'?",
			4, 6);
	expect_error_at(HEADER "struct S {\n  reserverd 3;\n}\n", "found 'reserverd'; did you mean 'reserved'?",
			4, 3);
	expect_error_at(HEADER "interface I {\n  reseved 3;\n}\n", "found 'reseved'; did you mean 'reserved'?",
			4, 3);
	/* a field without its ordinal says what a field is */
	expect_error_at(HEADER "struct S {\n  string name;\n}\n",
			"expected a field ordinal or '}' (a field is 'N: TYPE NAME;'), found 'string'", 4, 3);
	/* no hint where nothing is near: the message is as before */
	expect_error_at(HEADER "blob S {\n}\n",
			"expected a declaration (import, feature, error, enum, struct, interface), found 'blob'", 3, 1);
	assert_null(tidl_test_find_diag(tidl_test_prog(), "did you mean"));
}

/* An unknown type that is a built-in as C or another IDL spells it, or a
 * near name of the file's own types, says which it probably is. */
static void test_unknown_types_suggest_the_type_meant(void **state)
{
	expect_error_at(HEADER "struct S {\n  1: uint32 a;\n}\n", "unknown type 'uint32'; did you mean 'u32'?", 4, 6);
	expect_error_at(HEADER "struct S {\n  1: double a;\n}\n", "unknown type 'double'; did you mean 'f64'?", 4, 6);
	expect_error_at(HEADER "struct S {\n  1: Strng a;\n}\n", "unknown type 'Strng'; did you mean 'string'?", 4, 6);
	expect_error_at(HEADER "struct Note {\n  1: u8 a;\n}\nstruct S {\n  1: Notes n;\n}\n",
			"unknown type 'Notes'; did you mean 'Note'?", 7, 6);
	/* the nearest of the file's types, not the first near one */
	expect_error_at(HEADER "struct Abcdef {\n  1: u8 a;\n}\nstruct Abcdeg {\n  1: u8 a;\n}\n"
			"struct S {\n  1: Abcdxg n;\n}\n",
			"unknown type 'Abcdxg'; did you mean 'Abcdeg'?", 10, 6);
	expect_error_at(HEADER "struct S {\n  1: lst<u8> a;\n}\n",
			"'lst<' is not a type: the one type that takes an element type is list<T>", 4, 6);
	expect_error_at(HEADER "struct S {\n  1: Zebra a;\n}\n", "unknown type 'Zebra'", 4, 6);
	assert_null(tidl_test_find_diag(tidl_test_prog(), "did you mean"));
}

/* A struct or enum named like a built-in type could never be a field's
 * type unqualified: 'string s;' was the built-in, in silence. */
static void test_a_type_named_like_a_builtin_is_an_error(void **state)
{
	expect_error_at(HEADER "struct string {\n  1: u8 a;\n}\nstruct S {\n  1: string s;\n}\n",
			"struct 'string' is named like the built-in type: a field of type 'string' means the "
			"built-in, never this struct; rename it", 3, 8);
	expect_error_at(HEADER "enum u8 : u16 {\n  A = 0;\n}\n", "enum 'u8' is named like the built-in type", 3, 6);
	/* a field or a method may have such a name: nothing refers to it as a type */
	expect_ok(HEADER "struct S {\n  1: u8 u8;\n  2: string string;\n}\ninterface I {\n  1: bytes(u8 list);\n}\n");
}

static void test_import_cycle_is_reported(void **state)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_file("bad/cycle_a.tidl", &f), 0);
	char want[2048];
	snprintf(want, sizeof want, "import cycle: %s/bad/cycle_a.tidl -> %s/bad/cycle_b.tidl -> %s/bad/cycle_a.tidl",
		 SCHEMA_DIR, SCHEMA_DIR, SCHEMA_DIR);
	const tidl_diag_t *d = tidl_test_find_diag(tidl_test_prog(), "import cycle");
	assert_non_null(d);
	assert_string_equal(d->message, want);
	assert_int_equal(d->loc.line, 3);       /* the import in cycle_b.tidl */
}

static void test_missing_root_file_is_reported(void **state)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_file("no_such_file.tidl", &f), 0);
	char want[1200];
	snprintf(want, sizeof want, "cannot open '%s/no_such_file.tidl': No such file or directory", SCHEMA_DIR);
	assert_non_null(tidl_test_find_diag(tidl_test_prog(), want));
}

/* An import with errors fails its importers, which are not checked against
 * it: no_package.tidl has no package (its package line is refused), and
 * resolving x.A in an importer took the strlen of that NULL package (a
 * crash found by fuzz_tidl_files), the second importer through the cached
 * file as well.  The import's own error is the only one reported. */
static void test_an_import_with_errors_fails_its_importers_unchecked(void **state)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_file("bad/imports_no_package.tidl", &f), 0);
	const tidl_program_t *p = tidl_test_prog();
	assert_non_null(tidl_test_find_diag(p, "expected a package name"));
	if (tidl_program_error_count(p) != 1) {
		tidl_test_dump(p);
		fail_msg("%zu errors, want only the import's own", tidl_program_error_count(p));
	}
}

static void test_importing_a_directory_is_refused(void **state)
{
	char text[1400];
	snprintf(text, sizeof text, HEADER "import \"%s/good\";\n", SCHEMA_DIR);
	expect_error_at(text, "not a regular file", 3, 1);
}

/* ---- rejected schemas: single rules --------------------------------------- */

static void test_duplicate_method_ordinal_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  1: a();\n  1: b();\n}", "duplicate method ordinal 1 (first used at test.tidl:4:3)", 5, 3);
}

/* Ordinals are 32 bits: a larger one is named (it was clamped in silence,
 * so two of them were one "duplicate ordinal 4294967295"). */
static void test_ordinal_over_32_bits_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  4294967296: u8 a;\n}", "ordinal 4294967296 is larger than 4294967295", 4, 3);
	expect_error_at(HEADER "interface I {\n  1: a();\n  99999999999: b();\n}",
			"ordinal 99999999999 is larger than 4294967295", 5, 3);
	expect_error_at(HEADER "interface I {\n  reserved 2, 4294967296;\n}",
			"ordinal 4294967296 is larger than 4294967295", 4, 15);
	expect_error_at(HEADER "struct S {\n  reserved 4294967297: u8;\n}",
			"ordinal 4294967297 is larger than 4294967295", 4, 12);
	expect_ok(HEADER "struct S {\n  4294967295: u8 a;\n}\ninterface I {\n  4294967295: a();\n}");
	/* One error per bad ordinal, no more: the stand-in 4294967295 made
	 * "duplicate ordinal 4294967295" (and "reserved twice", "uses
	 * ordinal ..., which ... reserves") of numbers the file lacks. */
	static const struct { const char *text; unsigned errors; } once[] = {
		{ "struct S {\n  4294967296: u8 a;\n  4294967297: u8 b;\n}", 2 },
		{ "struct S {\n  4294967296: u8 a;\n  4294967295: u8 b;\n}", 1 },
		{ "struct S {\n  reserved 4294967296, 4294967297;\n}", 2 },
		{ "struct S {\n  reserved 4294967296;\n  4294967297: u8 a;\n}", 2 },
		{ "struct S {\n  reserved 4294967295;\n  4294967297: u8 a;\n}", 1 },
		{ "interface I {\n  4294967296: a();\n  4294967297: b();\n}", 2 },
		{ "interface I {\n  reserved 4294967296, 4294967297;\n}", 2 },
		{ "interface I {\n  reserved 4294967296;\n  4294967295: a();\n}", 1 },
		{ "interface I {\n  reserved 4294967295;\n  4294967296: a();\n}", 1 },
	};
	for (size_t i = 0; i < sizeof once / sizeof once[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, HEADER "%s", once[i].text);
		tidl_file_t *f;
		assert_int_not_equal(tidl_test_load_text(text, &f), 0);
		tidl_program_t *p = tidl_test_prog();
		unsigned big = 0;
		for (size_t k = 0; k < tidl_program_diag_count(p); k++)
			big += strstr(tidl_program_diag(p, k)->message, "is larger than 4294967295") != NULL;
		if (tidl_program_error_count(p) != once[i].errors || big != once[i].errors) {
			tidl_test_dump(p);
			fail_msg("case %zu: %zu errors, %u of them 'larger than', want %u", i,
				 tidl_program_error_count(p), big, once[i].errors);
		}
	}
}

static void test_method_ordinal_zero_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  0: a();\n}", "method ordinals start at 1", 4, 3);
}

static void test_field_ordinal_zero_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  0: u8 a;\n}", "ordinals start at 1", 4, 3);
}

static void test_duplicate_declaration_name_is_error(void **state)
{
	expect_error_at(HEADER "struct S {}\nenum S : u8 {}", "'S' is already declared at line 3", 4, 6);
}

static void test_duplicate_field_name_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  1: u8 a;\n  2: u8 a;\n}", "duplicate name 'a'", 5, 3);
}

static void test_negative_value_in_unsigned_enum_is_error(void **state)
{
	expect_error_at(HEADER "enum E : u8 {\n  A = -1;\n}", "negative value for enum 'E' with unsigned type u8", 4, 8);
}

static void test_enum_value_out_of_range_is_error(void **state)
{
	expect_error_at(HEADER "enum E : u8 {\n  A = 256;\n}", "value of 'A' does not fit u8", 4, 3);
}

static void test_signed_enum_value_below_range_is_error(void **state)
{
	expect_error_at(HEADER "enum E : i8 {\n  A = -129;\n}", "value of 'A' does not fit i8", 4, 3);
}

static void test_duplicate_enum_value_is_error(void **state)
{
	expect_error_at(HEADER "enum E : u8 {\n  A = 1;\n  B = 1;\n}", "'B' has the same value as 'A'", 5, 3);
}

static void test_enum_underlying_type_must_be_an_integer(void **state)
{
	expect_error_at(HEADER "enum E : string {}", "an enum's underlying type must be an integer type", 3, 10);
}

static void test_feature_bit_above_63_is_error(void **state)
{
	expect_error_at(HEADER "feature big = 64;", "feature bit of 'big' must be 0..63", 3, 9);
}

static void test_duplicate_feature_bit_is_error(void **state)
{
	expect_error_at(HEADER "feature a = 5;\nfeature b = 5;", "feature bit 5 already used by 'a'", 4, 9);
}

static void test_error_code_zero_is_error(void **state)
{
	expect_error_at(HEADER "error Bad = 0;", "error code of 'Bad' must be 1..4294967295", 3, 7);
}

static void test_duplicate_error_code_is_error(void **state)
{
	expect_error_at(HEADER "error A = 3;\nerror B = 3;", "error code 3 already used by 'A'", 4, 7);
}

static void test_since_newer_than_the_file_version_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  1: u8 a @since(1.3);\n}", "@since(1.3) on a field is newer than the file's version 1.2", 4, 3);
}

static void test_requires_naming_an_unknown_feature_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  1: m() @requires(nope);\n}", "@requires(nope): no feature 'nope' in this file", 4, 3);
}

static void test_requires_outside_a_method_is_error(void **state)
{
	expect_error_at(HEADER "feature x = 1;\nstruct S @requires(x) {}", "@requires is only allowed on methods", 4, 11);
}

static void test_oneway_method_with_results_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  1: oneway m() -> (u8 r);\n}", "oneway method 'm' cannot have results", 4, 17);
}

static void test_oneway_method_with_errors_is_error(void **state)
{
	expect_error_at(HEADER "error E = 1;\ninterface I {\n  1: oneway m() error E;\n}", "oneway method 'm' cannot return errors", 5, 17);
}

static void test_unknown_error_in_a_method_is_error(void **state)
{
	expect_error_at(HEADER "interface I {\n  1: m() error Nope;\n}", "unknown error 'Nope' in method 'm'", 4, 3);
}

static void test_a_feature_is_not_a_type(void **state)
{
	expect_error_at(HEADER "feature f = 1;\nstruct S {\n  1: f x;\n}", "'f' is not a type (it is a feature)", 5, 6);
}

static void test_optional_inside_a_type_is_error(void **state)
{
	expect_error_at(HEADER "struct S {\n  1: list<optional u8> x;\n}", "'optional' is only allowed on fields and parameters", 4, 11);
}

static void test_indirect_recursion_through_optional_fields_is_error(void **state)
{
	expect_error_at(HEADER "struct A {\n  1: optional B b;\n}\nstruct B {\n  1: list<u8> pad;\n  2: A a;\n}",
			"recursive struct 'A' (through field 'b'); use a list", 3, 8);
	assert_int_equal(tidl_program_error_count(tidl_test_prog()), 1);   /* one report per cycle */
}

static void test_struct_holding_a_recursive_struct_is_not_itself_reported(void **state)
{
	expect_error_at(HEADER "struct Outer {\n  1: Node n;\n}\nstruct Node {\n  1: Node next;\n}",
			"recursive struct 'Node' (through field 'next')", 6, 8);
	assert_null(tidl_test_find_diag(tidl_test_prog(), "'Outer'"));
}

static void test_version_component_above_255_is_error(void **state)
{
	expect_error_at("package t;\nversion 1.256;", "version components must be 0..255", 2, 9);
}

static void test_list_nesting_deeper_than_16_is_error(void **state)
{
	expect_error_at(HEADER "struct S { 1: list<list<list<list<list<list<list<list<"
			"list<list<list<list<list<list<list<list<list<u8>>>>>>>>>>>>>>>>> x; }",
			"type nested deeper than 16 levels", 3, 0);
}

static void test_name_longer_than_64_characters_is_error(void **state)
{
	char text[256];
	snprintf(text, sizeof text, HEADER "struct %065d {}", 0);
	text[strlen(HEADER) + 7] = 'S';         /* an identifier, not a number */
	expect_error_at(text, "name longer than 64 characters ('S0000000000000000000...' has 65)", 3, 8);
}

static void test_semantic_errors_are_all_collected(void **state)
{
	expect_error_at(HEADER "feature a = 64;\nstruct S {\n  1: Nope x;\n}\nerror E = 0;", "unknown type 'Nope'", 5, 6);
	assert_int_equal(tidl_program_error_count(tidl_test_prog()), 3);
}

static void test_diagnostics_are_capped_but_all_errors_counted(void **state)
{
	size_t n = 1000, cap = 64 + n * 24;
	char *text = malloc(cap);
	size_t len = (size_t)snprintf(text, cap, HEADER);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "feature f%zu = 99;\n", i);
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_text(text, &f), 0);
	free(text);
	assert_int_equal(tidl_program_error_count(tidl_test_prog()), n);
	assert_true(tidl_program_diag_count(tidl_test_prog()) <= 201);
	assert_non_null(tidl_test_find_diag(tidl_test_prog(), "too many diagnostics"));
}

static void test_input_larger_than_4_MiB_is_refused(void **state)
{
	size_t len = (4u << 20) + 1;
	char *text = malloc(len);
	memset(text, ' ', len);
	tidl_program_t *prog = tidl_program_new();
	tidl_file_t *f;
	assert_int_not_equal(tidl_program_load_buffer(prog, "big.tidl", text, len, &f), 0);
	assert_non_null(tidl_test_find_diag(prog, "input larger than 4194304 bytes"));
	tidl_program_free(prog);
	free(text);
}

/* ---- syntax errors: message, location and the printed form --------------- */

/* A '}' missing: the end of the file said only "expected a field ordinal
 * or '}', found end of file", at the last line; it names the open
 * declaration and its line now (a new user's first mistake in a long file). */
static void test_a_missing_close_brace_names_the_open_declaration(void **state)
{
	(void)state;
	expect_error_at(HEADER "struct A {\n  1: u8 a;\n}\nstruct S {\n  1: u8 a;\n",
			"expected a field ordinal or '}', found end of file: struct 'S' (line 6) is not closed "
			"(a '}' is missing)", 8, 1);
	expect_error_at(HEADER "enum E : u8 {\n  A = 0;\n", "enum 'E' (line 3) is not closed", 5, 1);
	expect_error_at(HEADER "interface I {\n  1: m();\n", "interface 'I' (line 3) is not closed", 5, 1);
	/* closed ones are not named: the end of a complete file is plain */
	expect_error_at(HEADER "struct A {\n}\nstruct", "expected a struct name, found end of file", 5, 0);
	assert_null(tidl_test_find_diag(tidl_test_prog(), "is not closed"));
}

/* Keywords are names where the grammar expects a name (docs/IDL.md): a
 * two-way method called oneway was "expected a method name, found '('". */
static void test_a_method_may_be_called_oneway(void **state)
{
	(void)state;
	tidl_file_t *f = expect_ok(HEADER "interface I {\n  1: oneway(u8 a) -> (u8 b);\n"
				   "  2: oneway oneway2(u8 a);\n  3: oneway reserved();\n}\n");
	const tidl_decl_t *d = f->decls[0];
	assert_int_equal(d->u.iface.n_methods, 3);
	assert_string_equal(d->u.iface.methods[0].name, "oneway");
	assert_false(d->u.iface.methods[0].oneway);
	assert_int_equal(d->u.iface.methods[0].n_results, 1);
	assert_true(d->u.iface.methods[1].oneway);
	assert_string_equal(d->u.iface.methods[2].name, "reserved");
	assert_true(d->u.iface.methods[2].oneway);
}

static void test_unterminated_block_comment_is_error(void **state)
{
	expect_error_at(HEADER "/* no end\nstruct S {}", "unterminated comment", 3, 1);
}

static void test_unterminated_import_string_is_error(void **state)
{
	expect_error_at(HEADER "import \"x.tidl;\n", "unterminated string", 3, 8);
}

static void test_missing_package_is_error(void **state)
{
	expect_error_at("version 1.0;", "expected 'package NAME;' at the start of the file, found 'version'", 1, 1);
}

static void test_control_byte_is_reported_in_hex(void **state)
{
	expect_error_at(HEADER "struct S \x01 {}", "unexpected byte 0x01", 3, 10);
}

static void test_nul_byte_does_not_end_the_input(void **state)
{
	static const char text[] = HEADER "struct S {}\0garbage";
	tidl_program_t *prog = tidl_program_new();
	tidl_file_t *f;
	assert_int_not_equal(tidl_program_load_buffer(prog, "nul.tidl", text, sizeof text - 1, &f), 0);
	assert_non_null(tidl_test_find_diag(prog, "unexpected byte 0x00"));
	tidl_program_free(prog);
}

/* TEXT, which must fail to load, and the diagnostics thothc prints for it
 * (as `thothc` would on stderr); free() the answer. */
static char *printed_diags(const char *text)
{
	tidl_file_t *f;
	assert_int_not_equal(tidl_test_load_text(text, &f), 0);
	char *out = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&out, &len);
	assert_non_null(mem);
	tidl_program_print_diags(tidl_test_prog(), mem);
	fclose(mem);
	return out;
}

/* TEXT's printed diagnostics are WANT. */
static void assert_printed(const char *text, const char *want)
{
	char *out = printed_diags(text);
	assert_string_equal(out, want);
	free(out);
}

/* A ';' missing at a line's end is reported there, as a C compiler does:
 * it was at the next line's first token ("5:3: ... found number '2'"), a
 * line with nothing wrong; a comment after the field does not move it. */
static void test_syntax_error_prints_like_a_compiler(void **state)
{
	assert_printed(HEADER "struct ServiceId {\n  1: string name\n  2: string version;\n}\n",
		       "test.tidl:4:17: error: expected ';' after field, found number '2' on line 5\n"
		       "    1: string name\n"
		       "                  ^\n");
	assert_printed(HEADER "interface I {\n  1: get(string k) -> (u32 v) // the value\n  2: put(string k);\n}\n",
		       "test.tidl:4:30: error: expected ';' after method, found number '2' on line 5\n"
		       "    1: get(string k) -> (u32 v) // the value\n"
		       "                               ^\n");
	/* on one line it stays at the token found */
	assert_printed(HEADER "struct S { 1: string a 2: u8 b; }\n",
		       "test.tidl:3:24: error: expected ';' after field, found number '2'\n"
		       "  struct S { 1: string a 2: u8 b; }\n"
		       "                         ^\n");
}

static void test_caret_keeps_tabs_aligned(void **state)
{
	assert_printed(HEADER "struct S {\n\t1: Nope x;\n}\n",
		       "test.tidl:4:5: error: unknown type 'Nope'\n"
		       "  \t1: Nope x;\n"
		       "  \t   ^\n");
}

/* A comment in Greek before the error on its line: two bytes a letter in
 * UTF-8, so a caret placed by bytes stood four columns (one a letter)
 * right of 'Nope' (ops40).  By characters it is under it; the column stays the byte's
 * (4:21), as the line:col of gcc's -fdiagnostics-column-unit=byte. */
static void test_caret_counts_characters_not_bytes(void **state)
{
	assert_printed(HEADER "struct S {\n  /* \u03b3\u03b5\u03b9\u03ac */ 1: Nope x;\n}\n",
		       "test.tidl:4:21: error: unknown type 'Nope'\n"
		       "    /* \u03b3\u03b5\u03b9\u03ac */ 1: Nope x;\n"
		       "                  ^\n");
}

/* A stray continuation byte (a Latin-1 degree sign, 0xb0, in a comment)
 * follows no lead byte: a terminal shows it as a character, so it gets a
 * space (skipped as part of a letter, the caret stood one left of 'Nope';
 * ops40 review). */
static void test_caret_counts_a_stray_continuation_byte(void **state)
{
	assert_printed(HEADER "struct S {\n  /* 5\xb0 */ 1: Nope x;\n}\n",
		       "test.tidl:4:15: error: unknown type 'Nope'\n"
		       "    /* 5\xb0 */ 1: Nope x;\n"
		       "  " "              ^\n");
}

/* Letters a terminal shows two columns wide (CJK, an emoji) and a
 * combining accent (none: it sits on its 'e') before the error: counted
 * one a character, the caret stood two columns left of 'Nope' (three
 * short for the wide letters, one over for the accent; mend41).
 * By terminal columns it is under it, whatever the locale thothc runs in
 * (the test's is "C").  thothc reads the widths from the C.UTF-8 locale;
 * a system without it (glibc before 2.35, or no /usr/lib/locale/C.utf8)
 * gets one column a letter, the caret of before: skipped there, said,
 * rather than failed. */
static void test_caret_counts_terminal_columns_of_wide_letters(void **state)
{
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!utf8) {
		print_message("skipped: needs the C.UTF-8 locale for wcwidth (glibc 2.35 or later, "
			      "/usr/lib/locale/C.utf8): without it thothc counts one column a letter\n");
		skip();
	}
	freelocale(utf8);
	assert_printed(HEADER "struct S {\n  /* \u4e2d\u6587 \U0001F600 e\u0301 */ 1: Nope x;\n}\n",
		       "test.tidl:4:28: error: unknown type 'Nope'\n"
		       "    /* \u4e2d\u6587 \U0001F600 e\u0301 */ 1: Nope x;\n"
		       "  " "                     ^\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_teardown(name, teardown)
		T(test_issue_example_schema_loads_with_everything_resolved),
		T(test_fields_are_sorted_by_ordinal),
		T(test_dotted_names_are_their_parts_joined_by_dots),
		T(test_methods_are_sorted_and_may_leave_gaps),
		T(test_line_and_block_comments_are_ignored),
		T(test_imported_names_resolve_qualified_and_unqualified),
		T(test_negative_enum_values_are_allowed_for_signed_types),
		T(test_annotations_may_come_in_any_order),
		T(test_idempotent_and_sharded_annotations_are_parsed),
		T(test_misplaced_or_unknown_scale_annotations_are_errors),
		T(test_parameters_may_be_optional_and_carry_since),
		T(test_recursion_through_a_list_is_allowed),
		T(test_list_nesting_of_16_is_accepted),
		T(test_duplicate_field_ordinal_is_error),
		T(test_duplicate_method_names_name_the_first_once),
		T(test_field_using_a_reserved_ordinal_is_error),
		T(test_field_ordinals_may_leave_gaps),
		T(test_reserved_struct_ordinals_with_and_without_a_type_are_accepted),
		T(test_reserved_method_ordinals_and_enum_values_are_accepted),
		T(test_method_using_a_reserved_ordinal_is_error),
		T(test_enum_value_using_a_reserved_value_is_error),
		T(test_ordinal_reserved_twice_is_error),
		T(test_reserved_value_outside_the_enum_type_is_error),
		T(test_reserved_ordinal_zero_is_error),
		T(test_typed_reservation_takes_one_ordinal),
		T(test_reserved_slot_of_unknown_type_is_error),
		T(test_unknown_type_is_error),
		T(test_unknown_types_are_all_reported),
		T(test_recursive_struct_is_error),
		T(test_missing_import_is_reported_at_the_import),
		T(test_ambiguous_unqualified_import_name_is_error),
		T(test_missing_semicolon_after_field_is_syntax_error),
		T(test_misspelt_keywords_are_named_at_the_typo),
		T(test_unknown_types_suggest_the_type_meant),
		T(test_a_type_named_like_a_builtin_is_an_error),
		T(test_import_cycle_is_reported),
		T(test_missing_root_file_is_reported),
		T(test_importing_a_directory_is_refused),
		T(test_an_import_with_errors_fails_its_importers_unchecked),
		T(test_duplicate_method_ordinal_is_error),
		T(test_method_ordinal_zero_is_error),
		T(test_ordinal_over_32_bits_is_error),
		T(test_field_ordinal_zero_is_error),
		T(test_duplicate_declaration_name_is_error),
		T(test_duplicate_field_name_is_error),
		T(test_negative_value_in_unsigned_enum_is_error),
		T(test_enum_value_out_of_range_is_error),
		T(test_signed_enum_value_below_range_is_error),
		T(test_duplicate_enum_value_is_error),
		T(test_enum_underlying_type_must_be_an_integer),
		T(test_feature_bit_above_63_is_error),
		T(test_duplicate_feature_bit_is_error),
		T(test_error_code_zero_is_error),
		T(test_duplicate_error_code_is_error),
		T(test_since_newer_than_the_file_version_is_error),
		T(test_requires_naming_an_unknown_feature_is_error),
		T(test_requires_outside_a_method_is_error),
		T(test_oneway_method_with_results_is_error),
		T(test_oneway_method_with_errors_is_error),
		T(test_unknown_error_in_a_method_is_error),
		T(test_a_feature_is_not_a_type),
		T(test_optional_inside_a_type_is_error),
		T(test_indirect_recursion_through_optional_fields_is_error),
		T(test_struct_holding_a_recursive_struct_is_not_itself_reported),
		T(test_version_component_above_255_is_error),
		T(test_list_nesting_deeper_than_16_is_error),
		T(test_name_longer_than_64_characters_is_error),
		T(test_semantic_errors_are_all_collected),
		T(test_diagnostics_are_capped_but_all_errors_counted),
		T(test_input_larger_than_4_MiB_is_refused),
		T(test_a_missing_close_brace_names_the_open_declaration),
		T(test_a_method_may_be_called_oneway),
		T(test_unterminated_block_comment_is_error),
		T(test_unterminated_import_string_is_error),
		T(test_missing_package_is_error),
		T(test_control_byte_is_reported_in_hex),
		T(test_nul_byte_does_not_end_the_input),
		T(test_syntax_error_prints_like_a_compiler),
		T(test_caret_keeps_tabs_aligned),
		T(test_caret_counts_characters_not_bytes),
		T(test_caret_counts_a_stray_continuation_byte),
		T(test_caret_counts_terminal_columns_of_wide_letters),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
