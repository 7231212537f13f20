/*
 * gen_c.c - the C back end of thothc: one .thoth.h and one .thoth.c per
 * .tidl file.
 *
 * What it emits, per file (see docs/IDL.md, "Generated C"):
 *   - constants: schema version, schema hash, feature bits, error codes;
 *   - enums as integer typedefs of their underlying type plus named values;
 *   - a plain C struct per tidl struct and per method request/response,
 *     with strings, bytes and lists as views (no ownership);
 *   - per struct: exact size, encode into a builder, verify+decode (the
 *     verifier: bounds, UTF-8, bool/presence bytes, strict enums, depth);
 *   - per interface: a thoth_method_info_t per method, client stubs,
 *     a handler table and a dispatch function.
 * Field layout (docs/WIRE.md, "Struct frames") is computed here: fields in
 * ordinal order, each slot aligned to its natural alignment, optional
 * fields preceded by a presence byte; a reserved ordinal with a type keeps
 * its (zeroed) slot, a gap has none.  The offset of field k depends only on
 * the slots with smaller ordinals, which is what makes appending fields
 * (and retiring one into a typed reservation) compatible.
 *
 * The generated code is meant to be read: every declaration carries a
 * comment with the schema line it came from.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"
#include "gen_c.h"
#include "thoth/wire.h"
#include "writefile.h"

/* ---- small string helpers ----------------------------------------------- */

/* TEXT from the schema inside a generated block comment: a "*" "/" in it
 * ended the comment (import "x*" "/y.tidl": the rest of the line was C), a
 * "/" "*" is -Wcomment's; each gets a backslash between, control
 * characters are '?'. */
static void sb_add_comment_text(strbuf_t *sb, const char *text)
{
	for (const char *c = text; *c; c++) {
		unsigned char u = (unsigned char)*c;
		sb_addf(sb, "%c", u < 0x20 || u == 0x7f ? '?' : *c);
		if ((c[0] == '*' && c[1] == '/') || (c[0] == '/' && c[1] == '*'))
			sb_addf(sb, "\\");
	}
}

/* Every C name fits CNAME_MAX with room to spare: sema bounds names to 64
 * characters and packages (and main.c --c-prefix) to 128, so the longest,
 * a list nested 16 deep of a struct, is 129 + 64 + 16 * 5 + 2 = 275 and a
 * method's request or response 129 + 64 + 1 + 64 + 5 = 263 (buffers of 256
 * made thothc abort on a schema at those limits). */
#define CNAME_MAX 512

/* Names are short; a ring of static buffers keeps call sites readable. */
static char *tmpname(void)
{
	static char ring[16][CNAME_MAX];
	static unsigned next;
	return ring[next++ % 16];
}

/* --c-prefix: the file whose declarations get another C prefix. */
static const tidl_file_t *override_file;
static const char *override_prefix;

/* "thoth.registry" -> "thoth_registry_" */
static const char *prefix_of(const tidl_file_t *f)
{
	char *out = tmpname();
	size_t j = 0;
	if (f == override_file && override_prefix) {
		snprintf(out, CNAME_MAX, "%s", override_prefix);
		return out;
	}
	for (const char *p = f->package; *p && j < CNAME_MAX - 2; p++)
		out[j++] = *p == '.' ? '_' : *p;
	out[j++] = '_';
	out[j] = 0;
	return out;
}

/* Upper snake case: "NotFound" -> "NOT_FOUND", "trace_context" -> "TRACE_CONTEXT",
 * "thoth_registry_" -> "THOTH_REGISTRY_". */
static const char *upper(const char *s)
{
	char *out = tmpname();
	size_t j = 0;
	for (size_t i = 0; s[i] && j < CNAME_MAX - 2; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z' && i > 0 && s[i - 1] >= 'a' && s[i - 1] <= 'z')
			out[j++] = '_';
		out[j++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
	}
	out[j] = 0;
	return out;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keywords cannot be member names: append an underscore.  C11's and
 * C23's (a C23 compiler refuses a field called `constexpr` or `nullptr`),
 * and the macros GNU dialects predefine to 1 (gcc and clang -std=gnu11, the
 * project's dialect and gcc's default: a member `linux` was `1`), names
 * reserved to the implementation (`__STDC__`, `__func__`, `_Bool`), and the
 * C library's object-like macros (libc_macros.c: `errno`, `stdin`, `EOF`,
 * `SIZE_MAX`, glibc's `st_mtime`; a member so named did not compile in a
 * program that included the macro's header first). */
static const char *cid(const char *name)
{
	static const char *const kw[] = {
		/* C11 */
		"auto", "break", "case", "char", "const", "continue", "default", "do",
		"double", "else", "enum", "extern", "float", "for", "goto", "if", "inline",
		"int", "long", "register", "restrict", "return", "short", "signed", "sizeof",
		"static", "struct", "switch", "typedef", "union", "unsigned", "void",
		"volatile", "while", "bool", "true", "false", "_Bool", "_Complex",
		"_Imaginary", "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn",
		"_Static_assert", "_Thread_local", "asm", "typeof", "NULL",
		/* C23 */
		"alignas", "alignof", "constexpr", "nullptr", "static_assert", "thread_local",
		"typeof_unqual", "_BitInt", "_Decimal32", "_Decimal64", "_Decimal128",
		/* GNU dialects' predefined macros (Linux; i386 on 32-bit x86) */
		"linux", "unix", "i386",
	};
	/* the implementation's own names (__STDC__, __func__, __x86_64__,
	 * _Bool): reserved in C, many predefined */
	bool hit = name[0] == '_' && (name[1] == '_' || (name[1] >= 'A' && name[1] <= 'Z'));
	hit = hit || bsearch(&name, thothc_libc_macros, thothc_n_libc_macros, sizeof *thothc_libc_macros,
			   cmp_cstr) != NULL;
	for (size_t i = 0; i < sizeof kw / sizeof kw[0] && !hit; i++)
		hit = strcmp(kw[i], name) == 0;
	if (hit) {
		char *out = tmpname();
		snprintf(out, CNAME_MAX, "%s_", name);
		return out;
	}
	return name;
}

/* C++20's keywords and alternative tokens (and the header's own types),
 * which C allows as names.  The generated header is included from C++
 * (extern "C", docs/INSTALL.md),
 * where a member called `class`, `new`, `delete` or `or` does not compile;
 * so the header declares such a member NAME_ under __cplusplus and NAME
 * otherwise (same type and place: the layout is one), and C code, the
 * generated .c included, keeps the name the schema gives (renaming it for
 * C too broke every C service that set `.delete = on_delete`). */
static bool cxx_keyword(const char *name)
{
	static const char *const kw[] = {
		"and", "and_eq", "bitand", "bitor", "catch", "char8_t", "char16_t", "char32_t",
		"class", "compl", "concept", "consteval", "constinit", "const_cast", "co_await",
		"co_return", "co_yield", "decltype", "delete", "dynamic_cast", "explicit",
		"export", "friend", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
		"operator", "or", "or_eq", "private", "protected", "public", "reinterpret_cast",
		"requires", "static_cast", "template", "this", "throw", "try", "typeid",
		"typename", "using", "virtual", "wchar_t", "xor", "xor_eq",
	};
	/* the types the header uses all end in _t (uint32_t, thoth_str_t,
	 * thoth_list_u32_t, thoth_arena_t, a struct's PKG_NAME_t): in a C++
	 * class a member `uint32_t` changes what the next `uint32_t x;`
	 * means (an error); C keeps members and typedefs apart.  Every
	 * name ending in _t, not a list that misses the next type. */
	size_t len = strlen(name);
	if (len >= 2 && strcmp(name + len - 2, "_t") == 0)
		return true;
	for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
		if (strcmp(kw[i], name) == 0)
			return true;
	return false;
}

/* <iso646.h>'s macros, C++'s alternative tokens: in C a member `or` is
 * `||` once that header is included. */
static bool iso646(const char *name)
{
	static const char *const t[] = {
		"and", "and_eq", "bitand", "bitor", "compl", "not", "not_eq", "or", "or_eq", "xor", "xor_eq",
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(t[i], name) == 0)
			return true;
	return false;
}

/* The names a header declares member NAME under: OUT[0] only, or, for a
 * C++ keyword, OUT[0] = NAME_ under __cplusplus and OUT[1] = NAME
 * otherwise, or, for an alternative token, a middle OUT[1] = NAME_ where
 * <iso646.h> made NAME a macro (member_variant opens each, member_end
 * closes; `#elif`: C++ cannot read `defined(or)`). */
static int member_names(const char *name, const char *out[3])
{
	if (!cxx_keyword(name)) {
		out[0] = cid(name);
		return 1;
	}
	char *cxx = tmpname();
	snprintf(cxx, CNAME_MAX, "%s_", name);
	out[0] = cxx;
	if (!iso646(name)) {
		out[1] = name;
		return 2;
	}
	out[1] = cxx;
	out[2] = name;
	return 3;
}

static void member_variant(strbuf_t *h, const char *name, int n, int v)
{
	if (n < 2)
		return;
	if (v == 0)
		sb_addf(h, "#ifdef __cplusplus\n");
	else if (v == 1 && n == 3)
		sb_addf(h, "#elif defined(%s)  /* <iso646.h> */\n", name);
	else
		sb_addf(h, "#else\n");
}

static void member_end(strbuf_t *h, int n)
{
	if (n >= 2)
		sb_addf(h, "#endif\n");
}

static const char *basename_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b ? b + 1 : path;
}

/* ---- types -------------------------------------------------------------- */

static bool is_scalar(const tidl_type_t *t)
{
	return t->kind <= TIDL_F64 || t->kind == TIDL_ENUM;
}

static uint32_t kind_size(tidl_kind_t k)
{
	switch (k) {
	case TIDL_BOOL: case TIDL_U8: case TIDL_I8: return 1;
	case TIDL_U16: case TIDL_I16: return 2;
	case TIDL_U32: case TIDL_I32: case TIDL_F32: return 4;
	case TIDL_U64: case TIDL_I64: case TIDL_F64: return 8;
	default: return 8;      /* pointers: {u32 offset, u32 count} */
	}
}

/* Size of a scalar value on the wire (and in C: the C types match). */
static uint32_t scalar_size(const tidl_type_t *t)
{
	if (t->kind == TIDL_ENUM)
		return kind_size(t->decl->u.enum_.underlying);
	return kind_size(t->kind);
}

static uint32_t slot_size(const tidl_type_t *t)
{
	return is_scalar(t) ? scalar_size(t) : 8;
}

static uint32_t slot_align(const tidl_type_t *t)
{
	return is_scalar(t) ? scalar_size(t) : 4;
}

static const char *builtin_ctype(tidl_kind_t k)
{
	switch (k) {
	case TIDL_BOOL: return "bool";
	case TIDL_U8: return "uint8_t";
	case TIDL_U16: return "uint16_t";
	case TIDL_U32: return "uint32_t";
	case TIDL_U64: return "uint64_t";
	case TIDL_I8: return "int8_t";
	case TIDL_I16: return "int16_t";
	case TIDL_I32: return "int32_t";
	case TIDL_I64: return "int64_t";
	case TIDL_F32: return "float";
	case TIDL_F64: return "double";
	case TIDL_STRING: return "thoth_str_t";
	case TIDL_BYTES: return "thoth_bytes_t";
	default: return NULL;
	}
}

/* C name (without "_t") of a declared type: "thoth_registry_Endpoint". */
static const char *decl_cname(const tidl_decl_t *d)
{
	char prefix[CNAME_MAX];
	snprintf(prefix, sizeof prefix, "%s", prefix_of(d->file));
	char *out = tmpname();
	if (snprintf(out, CNAME_MAX, "%s%s", prefix, d->name) >= CNAME_MAX)
		abort();        /* sema bounds names to 64 and packages to 128 chars */
	return out;
}

/* C name (without "_t") of a list type.  Lists of built-in elements use the
 * runtime's thoth_list_<kind>_t; others are named after their element:
 * list<Endpoint> -> thoth_registry_Endpoint_list, list<list<u32>> ->
 * thoth_list_u32_list. */
static const char *list_cname(const tidl_type_t *t)
{
	/* One ring buffer whatever the depth: a recursion took one per level,
	 * so a list nested 14 or more deep (16 are allowed) wrapped the ring
	 * of 16 and overwrote the caller's names (C that did not compile). */
	unsigned depth = 0;
	const tidl_type_t *e = t->elem;
	for (; e->kind == TIDL_LIST; e = e->elem)
		depth++;
	char *out = tmpname();
	int n;
	if (e->kind <= TIDL_BYTES)
		n = snprintf(out, CNAME_MAX, "thoth_list_%s", tidl_kind_name(e->kind));
	else
		n = snprintf(out, CNAME_MAX, "%s_list", decl_cname(e->decl));
	while (depth-- && n > 0 && n < CNAME_MAX)
		n += snprintf(out + n, CNAME_MAX - (size_t)n, "_list");
	return out;
}

static bool list_is_builtin(const tidl_type_t *t)
{
	return t->elem->kind <= TIDL_BYTES && t->elem->kind != TIDL_LIST;
}

static const char *ctype(const tidl_type_t *t)
{
	char *out = tmpname();
	if (t->kind == TIDL_ENUM || t->kind == TIDL_STRUCT)
		snprintf(out, CNAME_MAX, "%s_t", decl_cname(t->decl));
	else if (t->kind == TIDL_LIST)
		snprintf(out, CNAME_MAX, "%s_t", list_cname(t));
	else
		snprintf(out, CNAME_MAX, "%s", builtin_ctype(t->kind));
	return out;
}

static int list_depth(const tidl_type_t *t)
{
	return t->kind == TIDL_LIST ? 1 + list_depth(t->elem) : 0;
}

/* ---- records: structs and method requests/responses share one layout ---- */

typedef struct rec {
	const char *cname;              /* C name without _t */
	const char *what;               /* for comments: "struct Endpoint" */
	const tidl_field_t *fields;
	size_t n;
	uint32_t *off;                  /* value slot offset within the fixed section */
	uint32_t *poff;                 /* presence byte offset (optional fields) */
	const tidl_field_t *res;        /* struct reservations (typed ones keep a slot) */
	size_t n_res;
	uint32_t fixed;
	uint32_t field_count;           /* highest ordinal with a slot (the frame's field_count) */
	tidl_loc_t loc;
} rec_t;

static uint32_t align_up(uint32_t v, uint32_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void rec_layout(rec_t *r)
{
	r->off = calloc(r->n ? r->n : 1, sizeof *r->off);
	r->poff = calloc(r->n ? r->n : 1, sizeof *r->poff);
	if (!r->off || !r->poff)
		abort();
	/* fields and typed reservations in ordinal order (both arrays sorted) */
	uint32_t cur = 0;
	size_t i = 0, k = 0;
	r->field_count = 0;
	while (i < r->n || k < r->n_res) {
		bool take_res = k < r->n_res && (i >= r->n || r->res[k].ordinal < r->fields[i].ordinal);
		const tidl_field_t *f = take_res ? &r->res[k++] : &r->fields[i++];
		if (!f->type)
			continue;               /* a gap: no slot */
		if (f->optional) {
			if (!take_res)
				r->poff[i - 1] = cur;
			cur++;
		}
		cur = align_up(cur, slot_align(f->type));
		if (!take_res)
			r->off[i - 1] = cur;
		cur += slot_size(f->type);
		r->field_count = f->ordinal;
	}
	r->fixed = align_up(cur, 8);
}

static void rec_free(rec_t *r)
{
	free(r->off);
	free(r->poff);
}

/* ---- the generator state ----------------------------------------------- */

typedef struct gen {
	const tidl_file_t *file;
	const char *prefix;             /* "thoth_registry_" (persistent copy) */
	const char *up;                 /* "THOTH_REGISTRY_" (persistent copy) */
	const char *base;               /* "registry" */
	strbuf_t h, c;
	/* distinct non-builtin list types used (for typedefs) and all list
	 * types used (for helpers), as type pointers */
	const tidl_type_t **lists;
	size_t n_lists, cap_lists;
} gen_t;

static void note_list(gen_t *g, const tidl_type_t *t)
{
	if (t->kind != TIDL_LIST)
		return;
	note_list(g, t->elem);
	char name[CNAME_MAX];
	snprintf(name, sizeof name, "%s", list_cname(t));
	for (size_t i = 0; i < g->n_lists; i++)
		if (strcmp(list_cname(g->lists[i]), name) == 0)
			return;
	if (g->n_lists == g->cap_lists) {
		g->cap_lists = g->cap_lists ? g->cap_lists * 2 : 16;
		g->lists = realloc(g->lists, g->cap_lists * sizeof *g->lists);
		if (!g->lists)
			abort();
	}
	g->lists[g->n_lists++] = t;
}

static int cmp_depth(const void *a, const void *b)
{
	int da = list_depth(*(const tidl_type_t *const *)a);
	int db = list_depth(*(const tidl_type_t *const *)b);
	return da - db;
}

static const char *loc_str(const tidl_loc_t *l)
{
	char *out = tmpname();
	snprintf(out, CNAME_MAX, "%s:%u", basename_of(l->file), l->line);
	return out;
}

static const char *type_str(const tidl_type_t *t)
{
	char *out = tmpname();
	return tidl_type_name(t, out, CNAME_MAX);
}

static const char *field_str(const tidl_field_t *f)
{
	char *out = tmpname();
	snprintf(out, CNAME_MAX, "%u: %s%s %s", f->ordinal, f->optional ? "optional " : "",
		 type_str(f->type), f->name);
	if (f->has_since) {
		size_t n = strlen(out);
		snprintf(out + n, CNAME_MAX - n, " @since(%u.%u)", f->since.major, f->since.minor);
	}
	return out;
}

/* ---- header: declarations ------------------------------------------------ */

static void emit_rec_struct(gen_t *g, const rec_t *r)
{
	strbuf_t *h = &g->h;
	sb_addf(h, "/* %s: %s */\nstruct %s {\n", loc_str(&r->loc), r->what, r->cname);
	if (r->n == 0)
		sb_addf(h, "\tchar unused_;          /* no fields: C needs a member */\n");
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		if (f->optional)
			sb_addf(h, "\tbool has_%s;\n", f->name);
		const char *nm[3];
		int n = member_names(f->name, nm);
		for (int v = 0; v < n; v++) {
			member_variant(h, f->name, n, v);
			sb_addf(h, "\t%s %s;", ctype(f->type), nm[v]);
			sb_addf(h, " /* %s */\n", field_str(f));
		}
		member_end(h, n);
	}
	sb_addf(h, "};\n\n");
}

static void emit_rec_protos(gen_t *g, const rec_t *r)
{
	sb_addf(&g->h,
		"size_t %s__size(const %s_t *v);\n"
		"int %s__encode_frame(thoth_builder_t *b, const %s_t *v, uint32_t *off, uint32_t *len, unsigned depth);\n"
		"int %s__decode_frame(thoth_decoder_t *d, uint32_t off, uint32_t expect_len, %s_t *out, unsigned depth);\n",
		r->cname, r->cname, r->cname, r->cname, r->cname, r->cname);
}

/* ---- source: size / encode / decode of one value ------------------------- */

static const char *size_expr(const tidl_type_t *t, const char *expr)
{
	char *out = tmpname();
	switch (t->kind) {
	case TIDL_STRING: snprintf(out, CNAME_MAX, "thoth_wire_str_size(%s)", expr); break;
	case TIDL_BYTES: snprintf(out, CNAME_MAX, "thoth_wire_bytes_size(&%s)", expr); break;
	case TIDL_STRUCT: snprintf(out, CNAME_MAX, "%s__size(&%s)", decl_cname(t->decl), expr); break;
	case TIDL_LIST: snprintf(out, CNAME_MAX, "size_%s(&%s)", list_cname(t), expr); break;
	default: snprintf(out, CNAME_MAX, "0"); break;
	}
	return out;
}

/* Statement(s) encoding value EXPR of type T into the slot at body offset
 * SLOT; sets r. */
static void emit_encode_value(strbuf_t *c, const char *ind, const tidl_type_t *t,
			      const char *expr, const char *slot)
{
	switch (t->kind) {
	case TIDL_STRING:
		sb_addf(c, "%sr = thoth_builder_str(b, %s, %s);\n", ind, slot, expr);
		break;
	case TIDL_BYTES:
		sb_addf(c, "%sr = thoth_builder_bytes_inline(b, %s, &%s);\n", ind, slot, expr);
		break;
	case TIDL_STRUCT:
		sb_addf(c, "%s{\n%s\tuint32_t so, sl;\n"
			   "%s\tr = %s__encode_frame(b, &%s, &so, &sl, depth + 1);\n"
			   "%s\tif (!r)\n%s\t\tthoth_builder_ptr(b, %s, so, sl);\n%s}\n",
			ind, ind, ind, decl_cname(t->decl), expr, ind, ind, slot, ind);
		break;
	case TIDL_LIST:
		sb_addf(c, "%sr = enc_%s(b, %s, &%s, depth + 1);\n", ind, list_cname(t), slot, expr);
		break;
	default:
		if (t->kind == TIDL_ENUM && t->decl->u.enum_.strict)
			sb_addf(c, "%sif (!%s_is_known(%s))\n%s\treturn THOTH_E_BAD_ENUM;\n", ind,
				decl_cname(t->decl), expr, ind);
		sb_addf(c, "%smemcpy(thoth_builder_at(b, %s), &%s, %u);\n", ind, slot, expr,
			scalar_size(t));
		break;
	}
}

/* Statement(s) decoding the slot at body offset SLOT into LV; returns on error. */
static void emit_decode_value(strbuf_t *c, const char *ind, const tidl_type_t *t,
			      const char *lv, const char *slot)
{
	switch (t->kind) {
	case TIDL_BOOL:
		sb_addf(c, "%sif ((r = thoth_decoder_bool(d, %s, &%s)))\n%s\treturn r;\n",
			ind, slot, lv, ind);
		break;
	case TIDL_STRING:
		sb_addf(c, "%sif ((r = thoth_decoder_str(d, %s, &%s)))\n%s\treturn r;\n",
			ind, slot, lv, ind);
		break;
	case TIDL_BYTES:
		sb_addf(c, "%sif ((r = thoth_decoder_bytes_inline(d, %s, &%s)))\n%s\treturn r;\n",
			ind, slot, lv, ind);
		break;
	case TIDL_STRUCT:
		sb_addf(c, "%sif ((r = %s__decode_frame(d, thoth_le32(d->body + %s), "
			   "thoth_wire_struct_ptr_len(d, %s), &%s, depth + 1)))\n%s\treturn r;\n",
			ind, decl_cname(t->decl), slot, slot, lv, ind);
		break;
	case TIDL_LIST:
		sb_addf(c, "%sif ((r = dec_%s(d, %s, &%s, depth + 1)))\n%s\treturn r;\n",
			ind, list_cname(t), slot, lv, ind);
		break;
	default:
		sb_addf(c, "%smemcpy(&%s, d->body + %s, %u);\n", ind, lv, slot, scalar_size(t));
		if (t->kind == TIDL_ENUM && t->decl->u.enum_.strict)
			sb_addf(c, "%sif (!%s_is_known(%s))\n%s\treturn THOTH_E_BAD_ENUM;\n",
				ind, decl_cname(t->decl), lv, ind);
		break;
	}
}

/* ---- source: list helpers ------------------------------------------------ */

static void emit_list_protos(gen_t *g, const tidl_type_t *t)
{
	const char *n = list_cname(t);
	sb_addf(&g->c,
		"static size_t size_%s(const %s_t *l);\n"
		"static int enc_%s(thoth_builder_t *b, uint32_t slot, const %s_t *l, unsigned depth);\n"
		"static int dec_%s(thoth_decoder_t *d, uint32_t slot, %s_t *out, unsigned depth);\n",
		n, n, n, n, n, n);
}

static void emit_list_funcs(gen_t *g, const tidl_type_t *t)
{
	strbuf_t *c = &g->c;
	const tidl_type_t *e = t->elem;
	char n[CNAME_MAX];
	snprintf(n, sizeof n, "%s", list_cname(t));
	const char *et = ctype(e);
	char etype[CNAME_MAX];
	snprintf(etype, sizeof etype, "%s", et);
	sb_addf(c, "/* %s */\n", type_str(t));

	if (is_scalar(e)) {
		uint32_t es = scalar_size(e);
		sb_addf(c, "static size_t size_%s(const %s_t *l)\n{\n"
			   "\treturn thoth_wire_pad8((size_t)l->count * %u);\n}\n\n", n, n, es);
		sb_addf(c, "static int enc_%s(thoth_builder_t *b, uint32_t slot, const %s_t *l, unsigned depth)\n{\n"
			   "\tuint32_t off;\n"
			   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
			   "\tif (l->count && !l->items)\n\t\treturn THOTH_E_INVAL;\n"
			   , n, n);
		if (e->kind == TIDL_ENUM && e->decl->u.enum_.strict)
			sb_addf(c, "\tfor (uint32_t i = 0; i < l->count; i++)\n"
				   "\t\tif (!%s_is_known(l->items[i]))\n\t\t\treturn THOTH_E_BAD_ENUM;\n",
				decl_cname(e->decl));
		sb_addf(c, "\treturn thoth_builder_list(b, slot, l->items, l->count, %u, &off);\n}\n\n", es);
		sb_addf(c, "static int dec_%s(thoth_decoder_t *d, uint32_t slot, %s_t *out, unsigned depth)\n{\n"
			   "\tconst void *items;\n\tint r;\n"
			   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
			   "\tif ((r = thoth_decoder_scalar_list(d, slot, %u, &items, &out->count)))\n\t\treturn r;\n",
			n, n, es);
		if (e->kind == TIDL_BOOL)
			sb_addf(c, "\tfor (uint32_t i = 0; i < out->count; i++)\n"
				   "\t\tif (((const uint8_t *)items)[i] > 1)\n\t\t\treturn THOTH_E_BAD_BOOL;\n");
		if (e->kind == TIDL_ENUM && e->decl->u.enum_.strict)
			sb_addf(c, "\tfor (uint32_t i = 0; i < out->count; i++) {\n"
				   "\t\t%s v;\n\t\tmemcpy(&v, (const uint8_t *)items + (size_t)i * %u, %u);\n"
				   "\t\tif (!%s_is_known(v))\n\t\t\treturn THOTH_E_BAD_ENUM;\n\t}\n",
				etype, es, es, decl_cname(e->decl));
		sb_addf(c, "\tout->items = items;\n\treturn 0;\n}\n\n");
		return;
	}

	/* Lists of pointers: an array of 8-byte slots, then each element. */
	sb_addf(c, "static size_t size_%s(const %s_t *l)\n{\n"
		   "\tsize_t s = thoth_wire_pad8((size_t)l->count * 8);\n"
		   "\tfor (uint32_t i = 0; i < l->count; i++)\n\t\ts += %s;\n"
		   "\treturn s;\n}\n\n", n, n, size_expr(e, "l->items[i]"));
	sb_addf(c, "static int enc_%s(thoth_builder_t *b, uint32_t slot, const %s_t *l, unsigned depth)\n{\n"
		   "\tuint32_t arr;\n\tint r;\n"
		   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
		   "\tif (l->count && !l->items)\n\t\treturn THOTH_E_INVAL;\n"
		   "\tr = thoth_builder_list(b, slot, NULL, l->count, 8, &arr);\n"
		   "\tfor (uint32_t i = 0; !r && i < l->count; i++) {\n", n, n);
	emit_encode_value(c, "\t\t", e, "l->items[i]", "arr + 8 * i");
	sb_addf(c, "\t}\n\treturn r;\n}\n\n");
	sb_addf(c, "static int dec_%s(thoth_decoder_t *d, uint32_t slot, %s_t *out, unsigned depth)\n{\n"
		   "\tuint32_t arr, n;\n\tint r;\n"
		   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
		   "\tif ((r = thoth_decoder_ptr(d, slot, 8, &arr, &n)))\n\t\treturn r;\n"
		   "\t%s *items = n ? thoth_arena_alloc(d->arena, (size_t)n * sizeof *items) : NULL;\n"
		   "\tif (n && !items)\n\t\treturn THOTH_E_NO_SPACE;\n"
		   "\tfor (uint32_t i = 0; i < n; i++) {\n", n, n, etype);
	emit_decode_value(c, "\t\t", e, "items[i]", "arr + 8 * i");
	sb_addf(c, "\t}\n\tout->items = items;\n\tout->count = n;\n\treturn 0;\n}\n\n");
}

/* ---- source: struct (record) functions ------------------------------------ */

/* A method's request or response record (ROOT) is encoded and decoded only
 * at the root of a message: its frame functions' bodies are emitted once,
 * always inlined (NAME__encode_frame_in / NAME__decode_frame_in), into the
 * public functions and into the type-erased adapters of thoth_method_info_t
 * that the RPC layer calls.  There the depth, offset and frame length are
 * constants, so a call costs no second call and no depth or root-offset
 * test (the checks of the peer's frame stay: thoth_decoder_frame). */
static void emit_rec_funcs(gen_t *g, const rec_t *r, bool root)
{
	strbuf_t *c = &g->c;
	const char *n = r->cname;
	char slot[64], lv[CNAME_MAX], ind[8];
	const char *storage = root ? "static inline THOTH_WIRE_ALWAYS_INLINE int" : "int";
	const char *in = root ? "_in" : "";

	sb_addf(c, "/* ---- %s (%s), fixed section %u bytes ---- */\n\n", r->what,
		loc_str(&r->loc), r->fixed);

	/* size */
	sb_addf(c, "size_t %s__size(const %s_t *v)\n{\n\tsize_t s = 8 + %u;\n", n, n, r->fixed);
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		if (is_scalar(f->type))
			continue;
		snprintf(lv, sizeof lv, "v->%s", cid(f->name));
		if (f->optional)
			sb_addf(c, "\tif (v->has_%s)\n\t\ts += %s;\n", f->name, size_expr(f->type, lv));
		else
			sb_addf(c, "\ts += %s;\n", size_expr(f->type, lv));
	}
	sb_addf(c, "\t(void)v;\n\treturn s;\n}\n\n");

	/* encode */
	sb_addf(c, "%s %s__encode_frame%s(thoth_builder_t *b, const %s_t *v, uint32_t *off, uint32_t *len, unsigned depth)\n{\n"
		   "\tuint32_t f;\n\tint r;\n"
		   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
		   "\tif ((r = thoth_builder_frame(b, %u, %u, &f)))\n\t\treturn r;\n"
		   "\t*off = f;\n\t*len = 8 + %u;\n",
		storage, n, in, n, r->fixed, r->field_count, r->fixed);
	for (size_t i = 0; i < r->n_res; i++)
		if (r->res[i].type)
			sb_addf(c, "\t/* reserved %u: its slot stays zero (absent) */\n", r->res[i].ordinal);
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		sb_addf(c, "\t/* %s */\n", field_str(f));
		snprintf(lv, sizeof lv, "v->%s", cid(f->name));
		snprintf(slot, sizeof slot, "f + %u", 8 + r->off[i]);
		snprintf(ind, sizeof ind, "\t");
		if (f->optional) {
			sb_addf(c, "\tif (v->has_%s) {\n\t\tthoth_builder_at(b, f + %u)[0] = 1;\n",
				f->name, 8 + r->poff[i]);
			snprintf(ind, sizeof ind, "\t\t");
		}
		emit_encode_value(c, ind, f->type, lv, slot);
		if (!is_scalar(f->type))
			sb_addf(c, "%sif (r)\n%s\treturn r;\n", ind, ind);
		if (f->optional)
			sb_addf(c, "\t}\n");
	}
	sb_addf(c, "\t(void)v;\n\treturn 0;\n}\n\n");
	if (root)
		sb_addf(c, "int %s__encode_frame(thoth_builder_t *b, const %s_t *v, uint32_t *off, uint32_t *len, unsigned depth)\n{\n"
			   "\treturn %s__encode_frame_in(b, v, off, len, depth);\n}\n\n", n, n, n);

	/* decode: fields the writer did not know (ordinal > its field count)
	 * keep their zero default; fields it did know must fit its frame. */
	sb_addf(c, "%s %s__decode_frame%s(thoth_decoder_t *d, uint32_t off, uint32_t expect_len, %s_t *out, unsigned depth)\n{\n"
		   "\tuint32_t fixed, count;\n\tint r;\n"
		   "\tif (depth > THOTH_WIRE_MAX_DEPTH)\n\t\treturn THOTH_E_TOO_DEEP;\n"
		   "\tif ((r = thoth_decoder_frame(d, off, expect_len, &fixed, &count)))\n\t\treturn r;\n"
		   "\tmemset(out, 0, sizeof *out);\n",
		storage, n, in, n);
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		uint32_t end = r->off[i] + slot_size(f->type);
		sb_addf(c, "\t/* %s */\n", field_str(f));
		sb_addf(c, "\tif (count < %u)\n\t\treturn 0;\n", f->ordinal);
		sb_addf(c, "\tif (fixed < %u)\n\t\treturn THOTH_E_BAD_LENGTH;\n", end);
		snprintf(lv, sizeof lv, "out->%s", cid(f->name));
		snprintf(slot, sizeof slot, "off + %u", 8 + r->off[i]);
		snprintf(ind, sizeof ind, "\t");
		if (f->optional) {
			sb_addf(c, "\tif ((r = thoth_decoder_bool(d, off + %u, &out->has_%s)))\n"
				   "\t\treturn r == THOTH_E_BAD_BOOL ? THOTH_E_BAD_PRESENCE : r;\n"
				   "\tif (out->has_%s) {\n", 8 + r->poff[i], f->name, f->name);
			snprintf(ind, sizeof ind, "\t\t");
		}
		emit_decode_value(c, ind, f->type, lv, slot);
		if (f->optional)
			sb_addf(c, "\t}\n");
	}
	sb_addf(c, "\t(void)r;\n\treturn 0;\n}\n\n");
	if (root)
		sb_addf(c, "int %s__decode_frame(thoth_decoder_t *d, uint32_t off, uint32_t expect_len, %s_t *out, unsigned depth)\n{\n"
			   "\treturn %s__decode_frame_in(d, off, expect_len, out, depth);\n}\n\n", n, n, n);
}

/* ---- schema hash: FNV-1a 64 over the canonical text (canon.c) ---------- */


#define CANON_LIMIT TIDL_CANON_LIMIT

static uint64_t schema_hash(const tidl_file_t *file)
{
	size_t len;
	char *text = tidl_canon_text(file, &len);
	uint64_t h = thoth_wire_fnv1a64(text, len, THOTH_FNV64_SEED);
	free(text);
	return h;
}

/* ---- per file ------------------------------------------------------------ */

static void method_rec(const tidl_decl_t *iface, const tidl_method_t *m, bool response,
		       const char *prefix, rec_t *r, char *cname, char *what)
{
	/* these always fit (CNAME_MAX) */
	if (snprintf(cname, CNAME_MAX, "%s%s_%s_%s", prefix, iface->name, m->name,
		     response ? "resp" : "req") >= CNAME_MAX ||
	    snprintf(what, CNAME_MAX, "%s.%s %s", iface->name, m->name,
		     response ? "response" : "request") >= CNAME_MAX)
		abort();
	memset(r, 0, sizeof *r);
	r->cname = cname;
	r->what = what;
	r->fields = response ? m->results : m->params;
	r->n = response ? m->n_results : m->n_params;
	r->loc = m->loc;
	rec_layout(r);
}

static void collect_lists_fields(gen_t *g, const tidl_field_t *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		note_list(g, f[i].type);
}

static void emit_header_prologue(gen_t *g, uint64_t hash)
{
	const tidl_file_t *f = g->file;
	strbuf_t *h = &g->h;
	sb_addf(h, "/*\n * %s.thoth.h - generated by thothc from %s. Do not edit.\n *\n"
		   " * package %s, version %u.%u.  Wire format: docs/WIRE.md.\n"
		   " * Decoded strings, bytes and lists are views into the received message\n"
		   " * (and the decode arena): they live as long as those buffers.\n */\n",
		g->base, basename_of(f->path), f->package, f->version.major, f->version.minor);
	/* The guard is the package's (the C prefix's): the header of another
	 * schema file of the same package, included first, made this one
	 * vanish in silence, and the program failed on "unknown type" far
	 * from here.  Both make the same C names, so that is an error, named
	 * here; the same schema reached twice (same hash) is not. */
	sb_addf(h, "#if defined(%sTHOTH_H) && defined(%sSCHEMA_HASH) && %sSCHEMA_HASH != 0x%016llxull\n"
		   "#error \"%s.thoth.h: a header of another schema of package %s (or another version "
		   "of it) is included already: the two make the same C names; give one file "
		   "another package, or generate it with --c-prefix\"\n#endif\n",
		g->up, g->up, g->up, (unsigned long long)hash, g->base, f->package);
	sb_addf(h, "#ifndef %sTHOTH_H\n#define %sTHOTH_H\n\n", g->up, g->up);
	sb_addf(h, "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n"
		   "#include \"thoth/rpc.h\"\n");
	for (size_t i = 0; i < f->n_imports; i++) {
		char inc[CNAME_MAX];
		snprintf(inc, sizeof inc, "%s", basename_of(f->imports[i].path));
		char *dot = strstr(inc, ".tidl");
		if (dot)
			*dot = 0;
		sb_addf(h, "#include \"%s.thoth.h\"  /* import \"", inc);
		sb_add_comment_text(h, f->imports[i].path);
		sb_addf(h, "\" */\n");
	}
	sb_addf(h, "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
	sb_addf(h, "#define %sVERSION_MAJOR %u\n#define %sVERSION_MINOR %u\n"
		   "#define %sSCHEMA_HASH 0x%016llxull\n\n",
		g->up, f->version.major, g->up, f->version.minor, g->up, (unsigned long long)hash);
}

static void emit_feature_and_errors(gen_t *g)
{
	const tidl_file_t *f = g->file;
	uint64_t all = 0;
	bool any = false;
	for (size_t i = 0; i < f->n_decls; i++) {
		const tidl_decl_t *d = f->decls[i];
		if (d->kind == TIDL_DECL_FEATURE) {
			sb_addf(&g->h, "/* %s: feature %s = %u */\n#define %sFEATURE_%s_BIT %u\n"
				       "#define %sFEATURE_%s (1ull << %u)\n",
				loc_str(&d->loc), d->name, d->u.feature.bit, g->up, upper(d->name),
				d->u.feature.bit, g->up, upper(d->name), d->u.feature.bit);
			all |= 1ull << d->u.feature.bit;
			any = true;
		} else if (d->kind == TIDL_DECL_ERROR) {
			sb_addf(&g->h, "/* %s: error %s */\n#define %sERR_%s %uu\n", loc_str(&d->loc),
				d->name, g->up, upper(d->name), d->u.error.code);
			any = true;
		}
	}
	sb_addf(&g->h, "%s#define %sFEATURES_ALL 0x%llxull\n\n", any ? "\n" : "", g->up,
		(unsigned long long)all);
}

static void emit_enums(gen_t *g)
{
	const tidl_file_t *f = g->file;
	for (size_t i = 0; i < f->n_decls; i++) {
		const tidl_decl_t *d = f->decls[i];
		if (d->kind != TIDL_DECL_ENUM)
			continue;
		const char *cn = decl_cname(d);
		char cname[CNAME_MAX];
		snprintf(cname, sizeof cname, "%s", cn);
		sb_addf(&g->h, "/* %s: %senum %s : %s */\ntypedef %s %s_t;\n", loc_str(&d->loc),
			d->u.enum_.strict ? "strict " : "", d->name,
			tidl_kind_name(d->u.enum_.underlying), builtin_ctype(d->u.enum_.underlying),
			cname);
		char up[CNAME_MAX];
		snprintf(up, sizeof up, "%s%s", g->up, upper(d->name));
		bool is_signed = d->u.enum_.underlying >= TIDL_I8;
		for (size_t k = 0; k < d->u.enum_.n_values; k++) {
			const tidl_enum_value_t *v = &d->u.enum_.values[k];
			/* -9223372036854775808 is not a C constant (the literal
			 * is unsigned, then negated): the one i64 value that
			 * must be written as an expression. */
			if (is_signed && (int64_t)v->value == INT64_MIN)
				sb_addf(&g->h, "#define %s_%s ((%s_t)(-0x7fffffffffffffffll - 1))\n", up,
					v->name, cname);
			else if (is_signed)
				sb_addf(&g->h, "#define %s_%s ((%s_t)%lld)\n", up, v->name, cname,
					(long long)v->value);
			else
				sb_addf(&g->h, "#define %s_%s ((%s_t)%lluu)\n", up, v->name, cname,
					(unsigned long long)v->value);
		}
		sb_addf(&g->h, "static inline bool %s_is_known(%s_t v)\n{\n\tswitch (v) {\n", cname,
			cname);
		for (size_t k = 0; k < d->u.enum_.n_values; k++)
			sb_addf(&g->h, "\tcase %s_%s:\n", up, d->u.enum_.values[k].name);
		sb_addf(&g->h, "\t\treturn true;\n\t}\n\treturn false;\n}\n\n");
	}
}

/* A struct declaration and its index in the file's struct list, sorted by
 * the declaration's address so that a field's type finds its struct in
 * O(log n). */
typedef struct decl_index {
	const tidl_decl_t *decl;
	size_t i;
} decl_index_t;

static int cmp_decl_index(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const decl_index_t *)a)->decl, y = (uintptr_t)((const decl_index_t *)b)->decl;
	return x < y ? -1 : x > y;
}

typedef struct struct_order {
	gen_t *g;
	rec_t *recs;
	decl_index_t *index;
	size_t n;
	unsigned char *state;           /* 0 not yet, 1 on the path, 2 emitted */
} struct_order_t;

/* Emit struct I after the structs it contains by value (depth first).  The
 * recursion is as deep as the longest by-value chain, at most MAX_MEMBERS
 * structs; each struct and each field is visited once, so a long chain
 * costs linear time (the old fixed-point loop was cubic: 1,600 chained
 * structs took 8 s, 4,096 minutes). */
static void emit_struct_after_deps(struct_order_t *o, size_t i)
{
	if (o->state[i])
		return;         /* emitted, or on the path (sema rejects by-value recursion; be safe) */
	o->state[i] = 1;
	const rec_t *r = &o->recs[i];
	for (size_t k = 0; k < r->n; k++) {
		const tidl_type_t *t = r->fields[k].type;
		if (t->kind != TIDL_STRUCT || t->decl->file != o->g->file)
			continue;
		decl_index_t key = { .decl = t->decl };
		const decl_index_t *hit = bsearch(&key, o->index, o->n, sizeof key, cmp_decl_index);
		if (hit)
			emit_struct_after_deps(o, hit->i);
	}
	emit_rec_struct(o->g, r);
	o->state[i] = 2;
}

/* Emit struct definitions so that a struct contained by value comes first. */
static void emit_struct_defs(gen_t *g, rec_t *recs, const tidl_decl_t **decls, size_t n)
{
	struct_order_t o = {
		.g = g, .recs = recs, .n = n,
		.index = calloc(n ? n : 1, sizeof *o.index),
		.state = calloc(n ? n : 1, 1),
	};
	if (!o.index || !o.state)
		abort();
	for (size_t i = 0; i < n; i++)
		o.index[i] = (decl_index_t){ decls[i], i };
	qsort(o.index, n, sizeof *o.index, cmp_decl_index);
	for (size_t i = 0; i < n; i++)
		emit_struct_after_deps(&o, i);
	free(o.index);
	free(o.state);
}

static void emit_interface_header(gen_t *g, const tidl_decl_t *d)
{
	strbuf_t *h = &g->h;
	char in[CNAME_MAX];
	snprintf(in, sizeof in, "%s%s", g->prefix, d->name);
	char iup[CNAME_MAX];
	snprintf(iup, sizeof iup, "%s%s", g->up, upper(d->name));
	char qual[512];
	snprintf(qual, sizeof qual, "%s.%s", g->file->package, d->name);

	sb_addf(h, "/* ==== %s: interface %s ==== */\n\n", loc_str(&d->loc), d->name);
	sb_addf(h, "#define %s_ID 0x%08xu  /* FNV-1a 32 of \"%s\" */\n", iup,
		thoth_wire_fnv1a32(qual), qual);
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		sb_addf(h, "#define %s_%s %u\n", iup, upper(m->name), m->ordinal);
	}
	sb_addf(h, "\nextern const thoth_interface_info_t %s_info;\n\n", in);

	/* whole messages, typed: encode into BUF (8-aligned), verify + decode */
	sb_addf(h, "/* Whole messages, typed (the fast path; thoth_method_encode/decode are the\n"
		   " * generic equivalents).  META supplies features, trace_id, request_id. */\n");
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		for (int resp = 0; resp < (m->oneway ? 1 : 2); resp++) {
			const char *rs = resp ? "resp" : "req";
			sb_addf(h, "int %s_%s_%s_encode_msg(void *buf, size_t cap, const thoth_msg_header_t *meta,\n"
				   "\t\tconst %s_%s_%s_t *v, size_t *len);\n"
				   "int %s_%s_%s_decode_msg(const uint8_t *msg, size_t len, %s_%s_%s_t *out,\n"
				   "\t\tthoth_arena_t *arena);\n",
				in, m->name, rs, in, m->name, rs, in, m->name, rs, in, m->name, rs);
		}
	}
	sb_addf(h, "\n");

	/* client stubs */
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		sb_addf(h, "/* %s: %u: %s%s(...)%s%s%s */\n", loc_str(&m->loc), m->ordinal,
			m->oneway ? "oneway " : "", m->name,
			m->requires ? " @requires(" : "", m->requires ? m->requires->name : "",
			m->requires ? ")" : "");
		if (m->requires)
			sb_addf(h, "/* fails with THOTH_E_NO_FEATURE unless %sFEATURE_%s was negotiated */\n",
				g->up, upper(m->requires->name));
		sb_addf(h, "extern const thoth_method_info_t %s_%s_info;\n", in, m->name);
		if (m->oneway)
			sb_addf(h, "static inline int %s_%s(thoth_client_t *c, const %s_%s_req_t *req)\n"
				   "{\n\treturn thoth_client_call(c, &%s_%s_info, req, NULL, NULL);\n}\n\n",
				in, m->name, in, m->name, in, m->name);
		else
			sb_addf(h, "static inline int %s_%s(thoth_client_t *c, const %s_%s_req_t *req,\n"
				   "\t\t%s_%s_resp_t *resp, thoth_arena_t *arena)\n"
				   "{\n\treturn thoth_client_call(c, &%s_%s_info, req, resp, arena);\n}\n\n",
				in, m->name, in, m->name, in, m->name, in, m->name);
	}

	/* server */
	sb_addf(h, "/* Server side: fill in the handlers you implement (NULL answers\n"
		   " * THOTH_E_UNKNOWN_METHOD).  A handler returns 0 and fills *resp, a\n"
		   " * positive %sERR_* code, or a negative THOTH_E_* code. */\n", g->up);
	sb_addf(h, "typedef struct %s_handlers {\n", in);
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		const char *nm[3];
		int n = member_names(m->name, nm);
		for (int v = 0; v < n; v++) {
			member_variant(h, m->name, n, v);
			if (m->oneway)
				sb_addf(h, "\tvoid (*%s)(void *self, const %s_%s_req_t *req);\n", nm[v],
					in, m->name);
			else
				sb_addf(h, "\tint (*%s)(void *self, const %s_%s_req_t *req, %s_%s_resp_t *resp,\n"
					   "\t\t\tthoth_arena_t *arena);\n",
					nm[v], in, m->name, in, m->name);
		}
		member_end(h, n);
	}
	sb_addf(h, "} %s_handlers_t;\n\n", in);
	sb_addf(h, "int %s_dispatch(const %s_handlers_t *handlers, void *self,\n"
		   "\t\tconst uint8_t *msg, size_t len, thoth_server_io_t *io);\n", in, in);
	sb_addf(h, "/* The type-erased handler call behind %s_dispatch, for transports that\n"
		   " * serve any interface (thoth_chan_server_config_t.invoke). */\n"
		   "int %s_invoke(const void *handlers, void *self, const thoth_method_info_t *m,\n"
		   "\t\tconst void *req, void *resp, thoth_arena_t *arena);\n\n", in, in);
}

/* Whether a method's message gets a straight-line encoder
 * (emit_encode_fast): every field a scalar, a string or bytes, so the
 * message is one frame and its objects, and each field's failure can be
 * tested before anything is written. */
static bool rec_is_flat(const rec_t *r)
{
	for (size_t i = 0; i < r->n; i++) {
		tidl_kind_t k = r->fields[i].type->kind;
		if (!is_scalar(r->fields[i].type) && k != TIDL_STRING && k != TIDL_BYTES)
			return false;
	}
	return true;
}

/*
 * The usual case of a flat message's encode, straight-line: the whole size
 * and every reason the builder path could fail are tested first, reading
 * only the value (a pointer missing, a string that is not UTF-8, a strict
 * enum out of range, no room, a buffer that is NULL or misaligned); when
 * none holds, the header, the frame and each object are stored at offsets
 * computed once: the same bytes the builder writes (its zeroed frame,
 * objects in field order, each padded to 8 with zeros).  Otherwise the
 * builder path after it runs and returns what it always returned.  Our own
 * value, not a peer's input: nothing here is a check of the peer.  A 64 B
 * call's message: ~85 instructions through the builder (a sticky error, a
 * length and a cap tested per object, a memcpy call for the payload), about
 * half this way.  Emitted into NAME__encode_msg_in (R: the message's record).
 */
static void emit_encode_fast(strbuf_t *c, const rec_t *r, unsigned major, unsigned minor,
			     const char *flags, uint32_t iface_id, uint32_t ordinal)
{
	char lv[CNAME_MAX];
	sb_addf(c, "\t{\n\t\t/* straight-line when nothing can fail (thothc: emit_encode_fast) */\n"
		   "\t\tuint8_t *p = (uint8_t *)buf;\n\t\tuint64_t need = THOTH_WIRE_HEADER_SIZE + 8 + %u;\n"
		   "\t\tbool fast = p && !((uintptr_t)p & (THOTH_WIRE_ALIGN - 1));\n", r->fixed);
	/* each string and bytes field read once: a store into the message
	 * could alias the value for all the compiler knows */
	for (size_t i = 0; i < r->n; i++) {
		const tidl_type_t *t = r->fields[i].type;
		if (t->kind == TIDL_BYTES || t->kind == TIDL_STRING)
			sb_addf(c, "\t\tconst %s f%zu = v->%s;\n",
				t->kind == TIDL_BYTES ? "thoth_bytes_t" : "thoth_str_t", i, cid(r->fields[i].name));
	}
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		const tidl_type_t *t = f->type;
		snprintf(lv, sizeof lv, "v->%s", cid(f->name));
		const char *ind = f->optional ? "\t\t\t" : "\t\t";
		bool strict = t->kind == TIDL_ENUM && t->decl->u.enum_.strict;
		if (t->kind != TIDL_BYTES && t->kind != TIDL_STRING && !strict)
			continue;
		if (f->optional)
			sb_addf(c, "\t\tif (v->has_%s) {\n", f->name);
		/* bytes: a copy up to THOTH_WIRE_COPY_INLINE or space reserved
		 * uninitialised (zeroed space and longer copies: the builder) */
		if (t->kind == TIDL_BYTES)
			sb_addf(c, "%sfast &= !f%zu.len || (f%zu.reserve ? f%zu.uninit && f%zu.len <= THOTH_WIRE_MAX_BODY\n"
				   "%s\t\t: f%zu.ptr && f%zu.len <= THOTH_WIRE_COPY_INLINE);\n"
				   "%sneed += thoth_wire_pad8(f%zu.len);\n", ind, i, i, i, i, ind, i, i, ind, i);
		else if (t->kind == TIDL_STRING)
			sb_addf(c, "%sfast &= !f%zu.len || (f%zu.ptr && f%zu.len <= THOTH_WIRE_COPY_INLINE &&\n"
				   "%s\t!thoth_wire_check_utf8((const uint8_t *)f%zu.ptr, f%zu.len));\n"
				   "%sneed += thoth_wire_str_size(f%zu);\n", ind, i, i, i, ind, i, i, ind, i);
		else
			sb_addf(c, "%sfast &= %s_is_known(%s);\n", ind, decl_cname(t->decl), lv);
		if (f->optional)
			sb_addf(c, "\t\t}\n");
	}
	/* The builder's cap is CAP clamped at a maximal message; the message
	 * fits it iff every allocation and the final pad do (each ends at or
	 * before NEED).  NEED is 64-bit and adds only lengths already bounded
	 * (a reservation by THOTH_WIRE_MAX_BODY, a copy by
	 * THOTH_WIRE_COPY_INLINE): on a 32-bit target a 4 GiB reservation
	 * wrapped a size_t sum below CAP. */
	sb_addf(c, "\t\tif (fast && need <= cap && need <= THOTH_WIRE_HEADER_SIZE + (size_t)THOTH_WIRE_MAX_BODY) {\n"
		   "\t\t\tuint8_t *fr = p + THOTH_WIRE_HEADER_SIZE;\n"
		   "\t\t\tsize_t at = 8 + %u;   /* the next object's body offset */\n"
		   "\t\t\tmemset(fr, 0, 8 + %u);\n"
		   "\t\t\tthoth_st64(fr, %uu | (uint64_t)%uu << 32);\n",
		r->fixed, r->fixed, r->fixed, r->field_count);
	for (size_t i = 0; i < r->n; i++) {
		const tidl_field_t *f = &r->fields[i];
		const tidl_type_t *t = f->type;
		uint32_t slot = 8 + r->off[i];
		snprintf(lv, sizeof lv, "v->%s", cid(f->name));
		const char *ind = "\t\t\t";
		sb_addf(c, "\t\t\t/* %s */\n", field_str(f));
		if (f->optional) {
			sb_addf(c, "\t\t\tif (v->has_%s) {\n\t\t\t\tfr[%u] = 1;\n", f->name, 8 + r->poff[i]);
			ind = "\t\t\t\t";
		}
		if (t->kind == TIDL_BYTES) {
			sb_addf(c, "%sif (f%zu.len) {\n", ind, i);
			sb_addf(c, "%s\tthoth_st64(fr + at + thoth_wire_pad8(f%zu.len) - 8, 0);   /* the pad */\n", ind, i);
			sb_addf(c, "%s\tif (f%zu.reserve)\n%s\t\t*f%zu.reserve = fr + at;\n", ind, i, ind, i);
			sb_addf(c, "%s\telse\n%s\t\tthoth__wire_copy_small(fr + at, f%zu.ptr, f%zu.len);\n",
				ind, ind, i, i);
			sb_addf(c, "%s\tthoth_st64(fr + %u, (uint32_t)at | (uint64_t)f%zu.len << 32);\n", ind, slot, i);
			sb_addf(c, "%s\tat += thoth_wire_pad8(f%zu.len);\n", ind, i);
			sb_addf(c, "%s} else if (f%zu.reserve) {\n%s\t*f%zu.reserve = NULL;\n%s}\n",
				ind, i, ind, i, ind);
		} else if (t->kind == TIDL_STRING) {
			sb_addf(c, "%sif (f%zu.len) {\n", ind, i);
			sb_addf(c, "%s\tthoth_st64(fr + at + thoth_wire_str_size(f%zu) - 8, 0);   /* the pad and the NUL */\n",
				ind, i);
			sb_addf(c, "%s\tthoth__wire_copy_small(fr + at, (const uint8_t *)f%zu.ptr, f%zu.len);\n", ind, i, i);
			sb_addf(c, "%s\tthoth_st64(fr + %u, (uint32_t)at | (uint64_t)f%zu.len << 32);\n", ind, slot, i);
			sb_addf(c, "%s\tat += thoth_wire_str_size(f%zu);\n%s}\n", ind, i, ind);
		} else {
			sb_addf(c, "%smemcpy(fr + %u, &%s, %u);\n", ind, slot, lv, scalar_size(t));
		}
		if (f->optional)
			sb_addf(c, "\t\t\t}\n");
	}
	sb_addf(c, "\t\t\tthoth_st64(p, THOTH_WIRE_MAGIC | (uint64_t)%uu << 32 | (uint64_t)%uu << 40 |\n"
		   "\t\t\t\t   (uint64_t)(%s) << 48);\n"
		   "\t\t\tthoth_st64(p + 8, 0x%08xu | (uint64_t)%uu << 32);\n"
		   "\t\t\tthoth_st64(p + 16, meta ? meta->features : 0);\n"
		   "\t\t\tthoth_st64(p + 24, meta ? meta->trace_id : 0);\n"
		   "\t\t\tthoth_st64(p + 32, (meta ? meta->request_id : 0) |\n"
		   "\t\t\t\t   (uint64_t)(need - THOTH_WIRE_HEADER_SIZE) << 32);\n"
		   "\t\t\t(void)at;\n"
		   "\t\t\t*len = need;\n\t\t\treturn 0;\n\t\t}\n\t}\n",
		major, minor, flags, iface_id, ordinal);
}

/*
 * The interface's own dispatcher (thoth_interface_info_t.dispatch): a plain
 * request (thoth__plain_request: flags exactly REQUEST, this interface and
 * major, the body the rest of the message) for one of its two-way methods
 * is served here, in one function: a switch on the ordinal, then the
 * method's decoder, typed handler, size and encoder, inlined, none called
 * through a pointer (the table-driven way makes five such calls a request).
 * Every step and its order are thoth__server_dispatch_table's: the
 * request's struct is zeroed by its decoder, the response's here; the
 * structs are on the stack only when the table-driven way would keep them
 * there (THOTH_DISPATCH_SMALL), a failed step answers through the same
 * thoth__server_fail.  Everything it does not serve itself (not a plain
 * request, an unknown or oneway method, a feature the request or the
 * channel lacks, large structs, another interface info or invoke than
 * these, as a test's copy of the info would be) goes the table-driven way
 * from the start, which sees the message afresh.  The header is read once,
 * into a private copy (a request in the client's pool can change under us).
 */
static void emit_dispatcher(strbuf_t *c, const tidl_decl_t *d, const char *in, uint32_t id,
			    unsigned major, unsigned minor)
{
	/* Each method's body in a function of its own (X__serve), called
	 * from its case only when neither struct is over THOTH_DISPATCH_SMALL:
	 * thothc does not know the C sizes, and an `if (sizeof ...) break;`
	 * before locals in the case itself still reserves them in the
	 * dispatcher's frame (at -O0 and under ASan a 200 x u64 method made it
	 * 3.5-7.5 KB, with the table-driven way's frame on top).  A call that
	 * can never run costs no frame.  When optimising, a live one is
	 * inlined (always_inline: GCC -O2 kept it out of line, +23
	 * instructions a loopback round trip), and a dead one is gone before
	 * inlining (the sizeof test folds to a constant); at -O0 none is. */
	sb_addf(c, "#ifndef THOTH__SERVE_INLINE\n#ifdef __OPTIMIZE__\n"
		   "#define THOTH__SERVE_INLINE inline __attribute__((always_inline))\n"
		   "#else\n#define THOTH__SERVE_INLINE\n#endif\n#endif\n");
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		if (m->oneway)
			continue;
		char mn[2 * CNAME_MAX];
		snprintf(mn, sizeof mn, "%s_%s", in, m->name);
		const char *fn = cid(m->name);
		sb_addf(c, "static THOTH__SERVE_INLINE int %s__serve(const %s_handlers_t *h, void *self, const uint8_t *msg,\n"
			   "\t\tthoth_msg_header_t *rh, thoth_server_io_t *io)\n{\n"
			   "\t%s_req_t q;\n\t%s_resp_t s;\n"
			   "\tthoth_decoder_t d;\n"
			   "\tio->out_len = 0;\n"
			   "\tmemset(&s, 0, sizeof s);\n"
			   "\tthoth_decoder_init(&d, msg + THOTH_WIRE_HEADER_SIZE, rh->body_len, io->arena);\n"
			   "\tint r = %s_req__decode_frame_in(&d, 0, 0, &q, 0);\n"
			   "\tif (r)\n"
			   "\t\treturn thoth__server_fail(&%s_info, io, rh, THOTH__FAIL_DECODE, r);\n"
			   "\tif ((r = h->%s ? (h->%s)(self, &q, &s, io->arena) : THOTH__E_NO_HANDLER))\n"
			   "\t\treturn thoth__server_fail(&%s_info, io, rh, THOTH__FAIL_STATUS, r);\n"
			   "\tif ((r = thoth__server_out(io, THOTH_WIRE_HEADER_SIZE + %s_resp__size(&s))))\n"
			   "\t\treturn thoth__server_fail(&%s_info, io, rh, THOTH__FAIL_OUT, r);\n"
			   "\trh->flags = THOTH_MSG_RESPONSE;\n"
			   "\tif ((r = %s_resp__encode_msg_in(io->out, io->cap, rh, &s, &io->out_len)))\n"
			   "\t\treturn thoth__server_fail(&%s_info, io, rh, THOTH__FAIL_ENCODE, r);\n"
			   "\treturn 0;\n}\n\n",
			mn, in, mn, mn, mn, mn, fn, fn, mn, mn, mn, mn, mn);
	}
	sb_addf(c, "THOTH__HOT_SERVE static int %s__dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,\n"
		   "\t\tconst void *handlers, void *self, const uint8_t *msg, size_t len, thoth_server_io_t *io)\n{\n"
		   "\tuint8_t hd[THOTH_WIRE_HEADER_SIZE];\n"
		   "\tif (iface != &%s_info || invoke != %s_invoke || len < THOTH_WIRE_HEADER_SIZE)\n"
		   "\t\tgoto table;\n"
		   "\tmemcpy(hd, msg, sizeof hd);\n"
		   "\tif (!thoth__plain_request(hd, len, 0x%08xu, %u))\n"
		   "\t\tgoto table;\n"
		   "\tconst %s_handlers_t *h = (const %s_handlers_t *)handlers;\n"
		   "\tconst uint64_t features = thoth_le64(hd + 16);\n"
		   "\tthoth_msg_header_t rh;\n"
		   "\tthoth__plain_answer_header(&rh, hd, 0x%08xu, %u, %u, io->features);\n"
		   "\t(void)h;\n\t(void)features;\n"
		   "\tswitch (rh.method) {\n",
		in, in, in, id, major, in, in, id, major, minor);
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		if (m->oneway)
			continue;
		char mn[2 * CNAME_MAX];
		snprintf(mn, sizeof mn, "%s_%s", in, m->name);
		sb_addf(c, "\tcase %u:\n"
			   "\t\tif (sizeof(%s_req_t) > THOTH_DISPATCH_SMALL || sizeof(%s_resp_t) > THOTH_DISPATCH_SMALL)\n"
			   "\t\t\tbreak;\n",
			m->ordinal, mn, mn);
		if (m->requires)
			sb_addf(c, "\t\tif (!(features & io->features & (1ull << %u)))\n\t\t\tbreak;\n",
				(unsigned)m->requires->u.feature.bit);
		sb_addf(c, "\t\treturn %s__serve(h, self, msg, &rh, io);\n", mn);
	}
	sb_addf(c, "\t}\n"
		   "table:\n"
		   "\treturn thoth__server_dispatch_table(iface, invoke, handlers, self, msg, len, io);\n}\n\n");
}

static void emit_interface_source(gen_t *g, const tidl_decl_t *d, uint64_t hash)
{
	strbuf_t *c = &g->c;
	char in[CNAME_MAX];
	snprintf(in, sizeof in, "%s%s", g->prefix, d->name);
	char qual[512];
	snprintf(qual, sizeof qual, "%s.%s", g->file->package, d->name);
	uint64_t features = 0;
	for (size_t i = 0; i < g->file->n_decls; i++)
		if (g->file->decls[i]->kind == TIDL_DECL_FEATURE)
			features |= 1ull << g->file->decls[i]->u.feature.bit;

	sb_addf(c, "/* ==== interface %s (%s) ==== */\n\n", d->name, loc_str(&d->loc));
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		char mn[2 * CNAME_MAX];
		snprintf(mn, sizeof mn, "%s_%s", in, m->name);
		/* type-erased adapters for thoth_method_info_t */
		sb_addf(c, "THOTH__HOT_CLIENT static size_t %s_req_size_any(const void *v) { return %s_req__size(v); }\n"
			   "static int %s_req_encode_any(thoth_builder_t *b, const void *v)\n"
			   "{\n\tuint32_t off, len;\n\treturn %s_req__encode_frame_in(b, v, &off, &len, 0);\n}\n"
			   "static int %s_req_decode_any(thoth_decoder_t *d, void *v) { return %s_req__decode_frame_in(d, 0, 0, v, 0); }\n",
			mn, mn, mn, mn, mn, mn);
		if (!m->oneway)
			sb_addf(c, "static size_t %s_resp_size_any(const void *v) { return %s_resp__size(v); }\n"
				   "static int %s_resp_encode_any(thoth_builder_t *b, const void *v)\n"
				   "{\n\tuint32_t off, len;\n\treturn %s_resp__encode_frame_in(b, v, &off, &len, 0);\n}\n"
				   "static int %s_resp_decode_any(thoth_decoder_t *d, void *v) { return %s_resp__decode_frame_in(d, 0, 0, v, 0); }\n",
				mn, mn, mn, mn, mn, mn);
		for (int resp = 0; resp < (m->oneway ? 1 : 2); resp++) {
			const char *rs = resp ? "resp" : "req";
			const char *flags = resp ? "THOTH_MSG_RESPONSE"
					  : m->oneway ? "THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY" : "THOTH_MSG_REQUEST";
			/* The whole message: one body, inlined in the public
			 * function and in the adapter thoth_method_info_t
			 * holds for the RPC layer (a local builder: kept in
			 * registers, its start known). */
			rec_t mr;
			char mcname[CNAME_MAX], mwhat[CNAME_MAX];
			method_rec(d, m, resp, g->prefix, &mr, mcname, mwhat);
			bool flat = rec_is_flat(&mr);
			/* A flat message's builder path is the straight-line
			 * encoder's fallback, out of line: the usual case then
			 * saves no register for it and ends in a tail call. */
			if (flat)
				sb_addf(c, "static __attribute__((noinline)) int %s_%s__encode_msg_builder(void *buf, size_t cap,\n"
					   "\t\tconst thoth_msg_header_t *meta, const %s_%s_t *v, size_t *len)\n{\n",
					mn, rs, mn, rs);
			else
				sb_addf(c, "static inline THOTH_WIRE_ALWAYS_INLINE int %s_%s__encode_msg_in(void *buf, size_t cap,\n"
					   "\t\tconst thoth_msg_header_t *meta, const %s_%s_t *v, size_t *len)\n{\n",
					mn, rs, mn, rs);
			sb_addf(c, "\tthoth_builder_t b;\n\tuint32_t off, flen;\n"
				   "\tthoth_builder_init(&b, buf, cap);\n"
				   "\tint r = %s_%s__encode_frame_in(&b, v, &off, &flen, 0);\n"
				   "\tif (r)\n\t\treturn r;\n"
				   "\tthoth_msg_header_t h = { .schema_major = %u, .schema_minor = %u,\n"
				   "\t\t.flags = %s, .interface_id = 0x%08xu, .method = %u };\n"
				   "\tif (meta) {\n\t\th.features = meta->features;\n\t\th.trace_id = meta->trace_id;\n"
				   "\t\th.request_id = meta->request_id;\n\t}\n"
				   "\treturn thoth_builder_finish(&b, &h, len);\n}\n\n",
				mn, rs, g->file->version.major, g->file->version.minor, flags,
				thoth_wire_fnv1a32(qual), m->ordinal);
			if (flat) {
				sb_addf(c, "static inline THOTH_WIRE_ALWAYS_INLINE int %s_%s__encode_msg_in(void *buf, size_t cap,\n"
					   "\t\tconst thoth_msg_header_t *meta, const %s_%s_t *v, size_t *len)\n{\n",
					mn, rs, mn, rs);
				emit_encode_fast(c, &mr, g->file->version.major, g->file->version.minor,
						 flags, thoth_wire_fnv1a32(qual), m->ordinal);
				sb_addf(c, "\treturn %s_%s__encode_msg_builder(buf, cap, meta, v, len);\n}\n\n", mn, rs);
			}
			rec_free(&mr);
			sb_addf(c, "int %s_%s_encode_msg(void *buf, size_t cap, const thoth_msg_header_t *meta,\n"
				   "\t\tconst %s_%s_t *v, size_t *len)\n{\n"
				   "\treturn %s_%s__encode_msg_in(buf, cap, meta, v, len);\n}\n\n"
				   "%sstatic int %s_%s_encode_whole_any(void *buf, size_t cap, const thoth_msg_header_t *meta,\n"
				   "\t\tconst void *v, size_t *len)\n{\n"
				   "\treturn %s_%s__encode_msg_in(buf, cap, meta, v, len);\n}\n\n"
				   "%sstatic int %s_%s_decode_body_any(const uint8_t *body, uint32_t blen, thoth_arena_t *arena, void *v)\n{\n"
				   "\tthoth_decoder_t d;\n\tthoth_decoder_init(&d, body, blen, arena);\n"
				   "\treturn %s_%s__decode_frame_in(&d, 0, 0, v, 0);\n}\n\n",
				mn, rs, mn, rs, mn, rs, resp ? "" : "THOTH__HOT_CLIENT ", mn, rs, mn, rs,
				resp ? "THOTH__HOT_CLIENT " : "", mn, rs, mn, rs);
			sb_addf(c, "int %s_%s_decode_msg(const uint8_t *msg, size_t len, %s_%s_t *out,\n"
				   "\t\tthoth_arena_t *arena)\n{\n"
				   "\tthoth_decoder_t d;\n"
				   "\tint r = thoth_msg_open(msg, len, %s, 0x%08xu, %u, %u, &d, arena);\n"
				   "\tif (r)\n\t\treturn r;\n"
				   "\treturn %s_%s__decode_frame(&d, 0, 0, out, 0);\n}\n\n",
				mn, rs, mn, rs, resp ? "true" : "false", thoth_wire_fnv1a32(qual), m->ordinal,
				g->file->version.major, mn, rs);
		}
		if (m->n_errors) {
			sb_addf(c, "static const uint32_t %s_error_codes[] = {", mn);
			for (size_t e = 0; e < m->n_errors; e++)
				sb_addf(c, " %u,", m->errors[e]->u.error.code);
			sb_addf(c, " };\nstatic const char *const %s_error_names[] = {", mn);
			for (size_t e = 0; e < m->n_errors; e++)
				sb_addf(c, " \"%s\",", m->errors[e]->name);
			sb_addf(c, " };\n");
		}
		sb_addf(c, "const thoth_method_info_t %s_info = {\n"
			   "\t.name = \"%s.%s\",\n\t.interface_id = 0x%08xu,\n\t.ordinal = %u,\n"
			   "\t.major = %u,\n\t.minor = %u,\n\t.requires_bit = %d,\n\t.oneway = %s,\n"
			   "\t.req_struct_size = sizeof(%s_req_t),\n"
			   "\t.req_size = %s_req_size_any,\n\t.req_encode = %s_req_encode_any,\n"
			   "\t.req_decode = %s_req_decode_any,\n"
			   "\t.revision = THOTH_METHOD_INFO_REV,\n"
			   "\t.req_encode_whole = %s_req_encode_whole_any,\n"
			   "\t.req_decode_body = %s_req_decode_body_any,\n",
			mn, d->name, m->name, thoth_wire_fnv1a32(qual), m->ordinal,
			g->file->version.major, g->file->version.minor,
			m->requires ? (int)m->requires->u.feature.bit : -1,
			m->oneway ? "true" : "false", mn, mn, mn, mn, mn, mn);
		if (!m->oneway)
			sb_addf(c, "\t.resp_struct_size = sizeof(%s_resp_t),\n"
				   "\t.resp_size = %s_resp_size_any,\n\t.resp_encode = %s_resp_encode_any,\n"
				   "\t.resp_decode = %s_resp_decode_any,\n"
				   "\t.resp_encode_whole = %s_resp_encode_whole_any,\n"
				   "\t.resp_decode_body = %s_resp_decode_body_any,\n", mn, mn, mn, mn, mn, mn);
		if (m->n_errors)
			sb_addf(c, "\t.error_codes = %s_error_codes,\n\t.error_names = %s_error_names,\n"
				   "\t.n_errors = %zu,\n", mn, mn, m->n_errors);
		if (m->idempotent)
			sb_addf(c, "\t.idempotent = true,\n");
		sb_addf(c, "};\n\n");
	}

	sb_addf(c, "static int %s__dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke,\n"
		   "\t\tconst void *handlers, void *self, const uint8_t *msg, size_t len, thoth_server_io_t *io);\n\n",
		in);
	sb_addf(c, "static const thoth_method_info_t *const %s_methods[] = {\n", in);
	for (size_t k = 0; k < d->u.iface.n_methods; k++)
		sb_addf(c, "\t&%s_%s_info,\n", in, d->u.iface.methods[k].name);
	if (d->u.iface.n_methods == 0)
		sb_addf(c, "\tNULL,\n");
	sb_addf(c, "};\n\n");
	sb_addf(c, "const thoth_interface_info_t %s_info = {\n"
		   "\t.package = \"%s\",\n\t.name = \"%s\",\n\t.id = 0x%08xu,\n"
		   "\t.major = %u,\n\t.minor = %u,\n\t.schema_hash = 0x%016llxull,\n"
		   "\t.features = 0x%llxull,\n\t.methods = %s_methods,\n\t.n_methods = %zu,\n",
		in, g->file->package, d->name, thoth_wire_fnv1a32(qual), g->file->version.major,
		g->file->version.minor, (unsigned long long)hash, (unsigned long long)features, in,
		d->u.iface.n_methods);
	/* thoth_shard_algo_t values (thoth/shard.h): maglev 1, jump 2, rendezvous 3. */
	if (d->u.iface.shard_algo)
		sb_addf(c, "\t.shard_algo = %d,\n", !strcmp(d->u.iface.shard_algo, "maglev") ? 1 :
			!strcmp(d->u.iface.shard_algo, "jump") ? 2 : 3);
	sb_addf(c, "\t.revision = THOTH_INTERFACE_INFO_REV,\n\t.dispatch = %s__dispatch,\n};\n\n", in);

	/* invoke: type-erased call into the typed handler table */
	sb_addf(c, "int %s_invoke(const void *handlers, void *self, const thoth_method_info_t *m,\n"
		   "\t\tconst void *req, void *resp, thoth_arena_t *arena)\n{\n"
		   "\tconst %s_handlers_t *h = handlers;\n\t(void)resp;\n\t(void)arena;\n"
		   "\tswitch (m->ordinal) {\n", in, in);
	for (size_t k = 0; k < d->u.iface.n_methods; k++) {
		const tidl_method_t *m = &d->u.iface.methods[k];
		const char *fn = cid(m->name);
		sb_addf(c, "\tcase %u:\n\t\tif (!h->%s)\n\t\t\treturn THOTH__E_NO_HANDLER;\n", m->ordinal, fn);
		if (m->oneway)
			sb_addf(c, "\t\t(h->%s)(self, req);\n\t\treturn 0;\n", fn);
		else
			sb_addf(c, "\t\treturn (h->%s)(self, req, resp, arena);\n", fn);
	}
	sb_addf(c, "\t}\n\treturn THOTH__E_NO_HANDLER;\n}\n\n");
	emit_dispatcher(c, d, in, thoth_wire_fnv1a32(qual), g->file->version.major, g->file->version.minor);
	sb_addf(c, "int %s_dispatch(const %s_handlers_t *handlers, void *self,\n"
		   "\t\tconst uint8_t *msg, size_t len, thoth_server_io_t *io)\n{\n"
		   "\treturn %s__dispatch(&%s_info, %s_invoke, handlers, self, msg, len, io);\n}\n\n",
		in, in, in, in, in);
}

/* ---- C names: refuse a schema whose generated names collide ----------------
 *
 * Schema names are unique per scope, but the C names made of them are not:
 * method `m_req` of interface `I` and method `req` of `I_m` both make
 * `P_I_m_req_req_t`; a method `info` makes a stub `P_I_info` beside the
 * interface's `P_I_info`; a method `id` makes the ordinal macro `P_I_ID` that
 * replaces the interface id; a struct `S_list` is also `list<S>`'s type; a
 * field `has_x` is also optional `x`'s presence flag.  The C compiler then
 * fails inside the generated files (or, for a redefined macro without
 * -Werror, compiles a wrong constant), far from the schema.  So before
 * anything is written every file-scope name the generated header and source
 * hold (of this file and of the files whose headers it includes) and every
 * member of every generated struct is listed with the schema member it
 * comes from; a name made twice is an error at the schema's line that says
 * which two members made it.  Renaming one fixes it and is wire-compatible
 * (names are not on the wire). */

typedef struct cn_origin {
	size_t what;                    /* offset in the pool: "method 'I.m'" */
	tidl_loc_t loc;
	uint32_t file;                  /* index in cnames.files of the file listed then */
} cn_origin_t;

typedef struct cn_ent {
	size_t name;                    /* offset in the pool */
	uint32_t origin;
} cn_ent_t;

typedef struct cnames {
	strbuf_t pool;                  /* NUL-separated strings */
	cn_origin_t *origins;
	size_t n_origins, cap_origins;
	cn_ent_t *ents;
	size_t n, cap;
	const tidl_file_t **files;      /* visited: a diamond of imports is listed once */
	size_t n_files, cap_files;
	uint32_t cur;                   /* the file being listed (origins' file) */
} cnames_t;

/* ARR (of *CAP elements of SIZE) with room for element N: doubled, FIRST
 * to start; out of memory aborts, as the rest of the generator does. */
static void *cn_room(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
	if (n < *cap)
		return arr;
	*cap = *cap ? *cap * 2 : first;
	arr = realloc(arr, *cap * size);
	if (!arr)
		abort();
	return arr;
}

static size_t cn_str(cnames_t *cn, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));      /* clang's -Wformat-nonliteral: the fuzz build */
static size_t cn_str(cnames_t *cn, const char *fmt, va_list ap)
{
	char tmp[600];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	size_t at = cn->pool.len;
	sb_addf(&cn->pool, "%s%c", tmp, 0);
	return at;
}

static uint32_t cn_origin(cnames_t *cn, tidl_loc_t loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static uint32_t cn_origin(cnames_t *cn, tidl_loc_t loc, const char *fmt, ...)
{
	cn->origins = cn_room(cn->origins, &cn->cap_origins, cn->n_origins, sizeof *cn->origins, 64);
	va_list ap;
	va_start(ap, fmt);
	cn->origins[cn->n_origins] = (cn_origin_t){ .what = cn_str(cn, fmt, ap), .loc = loc, .file = cn->cur };
	va_end(ap);
	return (uint32_t)cn->n_origins++;
}

static void cn_name(cnames_t *cn, uint32_t origin, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cn_name(cnames_t *cn, uint32_t origin, const char *fmt, ...)
{
	cn->ents = cn_room(cn->ents, &cn->cap, cn->n, sizeof *cn->ents, 256);
	va_list ap;
	va_start(ap, fmt);
	cn->ents[cn->n++] = (cn_ent_t){ .name = cn_str(cn, fmt, ap), .origin = origin };
	va_end(ap);
}

/* The file-scope names of a record's C struct and codec (R is its C name). */
static void cn_record(cnames_t *cn, uint32_t o, const char *r, bool message)
{
	static const char *const common[] = { "_t", "__size", "__encode_frame", "__decode_frame" };
	static const char *const msg[] = {
		"__encode_frame_in", "__decode_frame_in", "__encode_msg_in", "__encode_msg_builder",
		"_encode_msg", "_decode_msg", "_size_any", "_encode_any", "_decode_any",
		"_encode_whole_any", "_decode_body_any",
	};
	for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
		cn_name(cn, o, "%s%s", r, common[i]);
	for (size_t i = 0; message && i < sizeof msg / sizeof msg[0]; i++)
		cn_name(cn, o, "%s%s", r, msg[i]);
}

/* Every file-scope name the generated files of F declare or define. */
/* The index of F in CN's files (one file on disk, loaded by another
 * program, is the same file: the roots of one gen run), or -1. */
static long cn_file_index(const cnames_t *cn, const tidl_file_t *f)
{
	for (size_t i = 0; i < cn->n_files; i++) {
		const tidl_file_t *g = cn->files[i];
		if (g == f || (f->on_disk && g->on_disk && g->dev == f->dev && g->ino == f->ino))
			return (long)i;
	}
	return -1;
}

static void cn_file(cnames_t *cn, const tidl_file_t *f)
{
	if (cn_file_index(cn, f) >= 0)
		return;
	cn->files = cn_room(cn->files, &cn->cap_files, cn->n_files, sizeof *cn->files, 16);
	cn->files[cn->n_files++] = f;
	uint32_t me = (uint32_t)(cn->n_files - 1);
	/* imports first: a collision is then reported at the importing
	 * file's member, the one its author can rename */
	for (size_t i = 0; i < f->n_imports; i++)
		if (f->imports[i].file)
			cn_file(cn, f->imports[i].file);
	cn->cur = me;
	char p[CNAME_MAX], up[CNAME_MAX];
	snprintf(p, sizeof p, "%s", prefix_of(f));
	snprintf(up, sizeof up, "%s", upper(p));
	uint32_t o = cn_origin(cn, f->version_loc, "the constants of package '%s'", f->package);
	static const char *const fixed[] = { "THOTH_H", "VERSION_MAJOR", "VERSION_MINOR",
					     "SCHEMA_HASH", "FEATURES_ALL" };
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		cn_name(cn, o, "%s%s", up, fixed[i]);
	for (size_t i = 0; i < f->n_decls; i++) {
		const tidl_decl_t *d = f->decls[i];
		switch (d->kind) {
		case TIDL_DECL_FEATURE:
			o = cn_origin(cn, d->loc, "feature '%s'", d->name);
			cn_name(cn, o, "%sFEATURE_%s", up, upper(d->name));
			cn_name(cn, o, "%sFEATURE_%s_BIT", up, upper(d->name));
			break;
		case TIDL_DECL_ERROR:
			o = cn_origin(cn, d->loc, "error '%s'", d->name);
			cn_name(cn, o, "%sERR_%s", up, upper(d->name));
			break;
		case TIDL_DECL_ENUM:
			o = cn_origin(cn, d->loc, "enum '%s'", d->name);
			cn_name(cn, o, "%s%s_t", p, d->name);
			cn_name(cn, o, "%s%s_is_known", p, d->name);
			for (size_t k = 0; k < d->u.enum_.n_values; k++) {
				const tidl_enum_value_t *v = &d->u.enum_.values[k];
				uint32_t ov = cn_origin(cn, v->loc, "enum value '%s.%s'", d->name, v->name);
				cn_name(cn, ov, "%s%s_%s", up, upper(d->name), v->name);
			}
			break;
		case TIDL_DECL_STRUCT: {
			o = cn_origin(cn, d->loc, "struct '%s'", d->name);
			char r[CNAME_MAX];
			snprintf(r, sizeof r, "%s%s", p, d->name);
			cn_record(cn, o, r, false);
			break;
		}
		case TIDL_DECL_INTERFACE: {
			o = cn_origin(cn, d->loc, "interface '%s'", d->name);
			char in[CNAME_MAX], iup[CNAME_MAX];
			snprintf(in, sizeof in, "%s%s", p, d->name);
			snprintf(iup, sizeof iup, "%s%s", up, upper(d->name));
			static const char *const iface[] = { "_info", "_handlers_t", "_dispatch",
							     "_invoke", "_methods", "__dispatch" };
			for (size_t k = 0; k < sizeof iface / sizeof iface[0]; k++)
				cn_name(cn, o, "%s%s", in, iface[k]);
			cn_name(cn, o, "%s_ID", iup);
			for (size_t k = 0; k < d->u.iface.n_methods; k++) {
				const tidl_method_t *m = &d->u.iface.methods[k];
				uint32_t om = cn_origin(cn, m->loc, "method '%s.%s'", d->name, m->name);
				cn_name(cn, om, "%s_%s", in, m->name);
				cn_name(cn, om, "%s_%s", iup, upper(m->name));
				cn_name(cn, om, "%s_%s_info", in, m->name);
				if (m->n_errors) {      /* emitted only then */
					cn_name(cn, om, "%s_%s_error_codes", in, m->name);
					cn_name(cn, om, "%s_%s_error_names", in, m->name);
				}
				char r[2 * CNAME_MAX];
				snprintf(r, sizeof r, "%s_%s_req", in, m->name);
				cn_record(cn, om, r, true);
				snprintf(r, sizeof r, "%s_%s_resp", in, m->name);
				cn_record(cn, om, r, !m->oneway);
				if (m->oneway) {        /* an unused response: frames only */
					cn_name(cn, om, "%s__encode_frame_in", r);
					cn_name(cn, om, "%s__decode_frame_in", r);
				}
			}
			break;
		}
		}
	}
}

/* The members of one generated struct: fields (C keywords get an
 * underscore) and the presence flag of each optional one. */
static void cn_members(cnames_t *cn, const char *scope, const tidl_field_t *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const tidl_field_t *f = &fields[i];
		uint32_t o = cn_origin(cn, f->loc, "%s'%s' of %s", f->optional ? "optional " : "",
				       f->name, scope);
		cn_name(cn, o, "%s.%s", scope, cid(f->name));
		if (cxx_keyword(f->name))
			cn_name(cn, o, "%s.%s_", scope, f->name);       /* its C++ name */
		if (f->optional)
			cn_name(cn, o, "%s.has_%s", scope, f->name);
	}
}

static const cnames_t *cn_sort_ctx;

static int cmp_cn_ent(const void *a, const void *b)
{
	const cn_ent_t *x = a, *y = b;
	int c = strcmp(cn_sort_ctx->pool.s + x->name, cn_sort_ctx->pool.s + y->name);
	if (c)
		return c;
	return x->origin < y->origin ? -1 : x->origin > y->origin;
}

typedef struct cn_pair {
	uint32_t first, second;         /* origins, first <= second */
	size_t name;
} cn_pair_t;

static int cmp_cn_pair(const void *a, const void *b)
{
	const cn_pair_t *x = a, *y = b;
	if (x->second != y->second)
		return x->second < y->second ? -1 : 1;
	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->name < y->name ? -1 : x->name > y->name;
}

/* ---- header names ------------------------------------------------------------ */

/* "dir/a.tidl" -> "a": the <base>.thoth.h a file's header has, which
 * importers include by that name alone. */
void thothc_header_base(const char *path, char *out, size_t len)
{
	snprintf(out, len, "%s", basename_of(path));
	char *dot = strstr(out, ".tidl");
	if (dot)
		*dot = 0;
}

/* Files F reaches (itself, its imports, theirs) into SEEN, each once. */
static void reach_files(const tidl_file_t *f, const tidl_file_t ***seen, size_t *n, int depth)
{
	if (!f || depth > 64)
		return;
	for (size_t i = 0; i < *n; i++)
		if ((*seen)[i] == f)
			return;
	const tidl_file_t **s = realloc(*seen, (*n + 1) * sizeof *s);
	if (!s)
		abort();
	*seen = s;
	s[(*n)++] = f;
	for (size_t i = 0; i < f->n_imports; i++)
		reach_files(f->imports[i].file, seen, n, depth + 1);
}

/* Two files of one program whose headers have one name (a.tidl and
 * sub/a.tidl: both a.thoth.h) cannot both be included, and generated into
 * one folder one replaces the other: the importer then failed to compile,
 * on types the header it got does not have.  Returns the count. */
static size_t check_header_names(const tidl_file_t *root, FILE *err)
{
	const tidl_file_t **seen = NULL;
	size_t n = 0, found = 0;
	reach_files(root, &seen, &n, 0);
	/* Each header name in a C #include "NAME.thoth.h": a '"' ended it
	 * early (a"b.tidl: "extra tokens at end of #include"); C leaves ', \
	 * undefined there, and a control character or "??" (a trigraph in
	 * -std=c11) is not what the file is called. */
	for (size_t i = 0; i < n; i++) {
		char b[CNAME_MAX];
		thothc_header_base(seen[i]->path, b, sizeof b);
		const char *bad = NULL;
		for (const char *c = b; *c && !bad; c++) {
			if (*c == '"' || *c == '\'' || *c == '\\')
				bad = *c == '"' ? "a '\"'" : *c == '\'' ? "a \"'\"" : "a '\\'";
			else if ((unsigned char)*c < 0x20 || *c == 0x7f)
				bad = "a control character";
			else if (c[0] == '?' && c[1] == '?')
				bad = "\"??\", a trigraph in C11";
		}
		if (bad && found++ < 200 && err)
			fprintf(err, "%s: error: its header's name, '%s.thoth.h', cannot be written in a C "
				     "#include (it has %s); rename the file\n", seen[i]->path, b, bad);
	}
	for (size_t i = 1; i < n; i++) {
		char bi[CNAME_MAX], bj[CNAME_MAX];
		thothc_header_base(seen[i]->path, bi, sizeof bi);
		for (size_t j = 0; j < i; j++) {
			thothc_header_base(seen[j]->path, bj, sizeof bj);
			if (strcmp(bi, bj) != 0)
				continue;
			if (found++ < 200 && err)
				fprintf(err, "%s: error: its header, '%s.thoth.h', has the name of %s's; "
					     "rename one of the files (a program includes both)\n",
					seen[i]->path, bi, seen[j]->path);
			break;
		}
	}
	free(seen);
	return found;
}

/* ---- libthoth's own names ---------------------------------------------------- */

static int cmp_libname(const void *a, const void *b)
{
	return strcmp(((const thothc_libname_t *)a)->name, ((const thothc_libname_t *)b)->name);
}

/*
 * The file-scope names of CN (a '.' marks a member: skipped) that libthoth's
 * public headers declare (thothc_libthoth_names), one error per schema
 * member.  A package `thoth` makes THOTH_VERSION_MAJOR (thoth/version.h), a
 * package `thoth.chan` with a struct `limits` thoth_chan_limits_t and the
 * tag `struct thoth_chan_limits` (thoth/channel.h): the clash showed only
 * in the C compiler, in a program that includes both.  Returns the count.
 */
static size_t check_libthoth(const cnames_t *cn, FILE *err)
{
	static thothc_libname_t *lib;
	static size_t n_lib;
	if (!lib) {
		while (thothc_libthoth_names[n_lib].name)
			n_lib++;
		lib = malloc((n_lib ? n_lib : 1) * sizeof *lib);
		if (!lib)
			abort();
		memcpy(lib, thothc_libthoth_names, n_lib * sizeof *lib);
		qsort(lib, n_lib, sizeof *lib, cmp_libname);
	}
	bool *told = calloc(cn->n_origins ? cn->n_origins : 1, sizeof *told);
	if (!told)
		abort();
	size_t found = 0;
	for (size_t i = 0; i < cn->n; i++) {
		const char *name = cn->pool.s + cn->ents[i].name;
		uint32_t o = cn->ents[i].origin;
		if (told[o] || strchr(name, '.') || (name[0] != 't' && name[0] != 'T'))
			continue;
		thothc_libname_t key = { name, NULL };
		const thothc_libname_t *hit = bsearch(&key, lib, n_lib, sizeof *lib, cmp_libname);
		char tag[CNAME_MAX];
		size_t len = strlen(name);
		if (!hit && len > 2 && len < sizeof tag && strcmp(name + len - 2, "_t") == 0) {
			snprintf(tag, sizeof tag, "%.*s", (int)(len - 2), name);     /* struct TAG */
			key.name = tag;
			hit = bsearch(&key, lib, n_lib, sizeof *lib, cmp_libname);
		}
		if (!hit)
			continue;
		told[o] = true;
		if (found++ < 200 && err) {
			const cn_origin_t *a = &cn->origins[o];
			fprintf(err, "%s:%u:%u: error: %s makes the C name '%s', which libthoth "
				     "declares (<%s>); rename it, or the package (or give --c-prefix)\n",
				a->loc.file, a->loc.line, a->loc.col, cn->pool.s + a->what, hit->name,
				hit->where);
		}
	}
	free(told);
	return found;
}

/* The names CN holds twice, one error per pair of schema members (SKIP,
 * where given, passes over a pair); returns the count. */
static size_t cn_report(cnames_t *cn, FILE *err,
			bool (*skip)(const cnames_t *, uint32_t, uint32_t, void *), void *skip_arg)
{
	cn_sort_ctx = cn;
	qsort(cn->ents, cn->n, sizeof *cn->ents, cmp_cn_ent);
	cn_pair_t *pairs = NULL;
	size_t n_pairs = 0, cap_pairs = 0;
	for (size_t i = 0; i < cn->n;) {
		size_t j = i + 1;
		while (j < cn->n && strcmp(cn->pool.s + cn->ents[j].name, cn->pool.s + cn->ents[i].name) == 0)
			j++;
		for (size_t a = i; a < j; a++) {
			/* a window: a name made by many members still gives
			 * every one of them a partner, at bounded cost */
			for (size_t b = a + 1; b < j && b < a + 8; b++) {
				if (n_pairs == cap_pairs) {
					cap_pairs = cap_pairs ? cap_pairs * 2 : 16;
					pairs = realloc(pairs, cap_pairs * sizeof *pairs);
					if (!pairs)
						abort();
				}
				uint32_t x = cn->ents[a].origin, y = cn->ents[b].origin;
				pairs[n_pairs++] = (cn_pair_t){ x < y ? x : y, x < y ? y : x, cn->ents[a].name };
			}
		}
		i = j;
	}
	size_t found = 0;
	if (n_pairs)
		qsort(pairs, n_pairs, sizeof *pairs, cmp_cn_pair);
	for (size_t i = 0; i < n_pairs; i++) {
		if (i && pairs[i].first == pairs[i - 1].first && pairs[i].second == pairs[i - 1].second)
			continue;
		if (skip && skip(cn, pairs[i].first, pairs[i].second, skip_arg))
			continue;
		if (found++ >= 200 || !err)     /* !err: thothc_gen_c_mem, counted only */
			continue;
		const cn_origin_t *a = &cn->origins[pairs[i].first], *b = &cn->origins[pairs[i].second];
		/* "I.m request.x": the scope may hold a dot, a member never does. */
		const char *name = cn->pool.s + pairs[i].name;
		const char *dot = strrchr(name, '.');
		static const char pkg_what[] = "the constants of package ";
		if (a != b && strcmp(cn->pool.s + a->what, cn->pool.s + b->what) == 0 &&
		    strncmp(cn->pool.s + a->what, pkg_what, sizeof pkg_what - 1) == 0)
			/* two files of one package: every constant clashes, say it once */
			fprintf(err, "%s:%u:%u: error: package %s is declared by %s too (line %u), and "
				     "the two files make the same C names ('%s', the version and hash "
				     "macros); a program holds one file per package: merge them, or give "
				     "one a package of its own\n",
				b->loc.file, b->loc.line, b->loc.col,
				cn->pool.s + b->what + sizeof pkg_what - 1, a->loc.file, a->loc.line, name);
		else if (a == b)
			fprintf(err, "%s:%u:%u: error: %s makes the C %s '%s' twice (the C names fold "
				     "case and join with '_'); rename it\n",
				b->loc.file, b->loc.line, b->loc.col, cn->pool.s + b->what,
				dot ? "member" : "name", dot ? dot + 1 : name);
		else
			fprintf(err, "%s:%u:%u: error: %s makes the C %s '%s', as does %s (%s:%u:%u); "
				     "rename one (names are not on the wire)\n",
				b->loc.file, b->loc.line, b->loc.col, cn->pool.s + b->what,
				dot ? "member" : "name", dot ? dot + 1 : name, cn->pool.s + a->what,
				a->loc.file, a->loc.line, a->loc.col);
	}
	if (found > 200 && err)
		fprintf(err, "thothc: %zu more colliding C names not shown\n", found - 200);
	free(pairs);
	return found;
}

/* Returns the number of colliding pairs of schema members (0: none). */
static size_t check_c_names(const gen_t *g, const rec_t *recs, size_t n_recs, FILE *err)
{
	cnames_t cn = { 0 };
	cn_file(&cn, g->file);
	for (size_t i = 0; i < g->n_lists; i++) {
		const tidl_type_t *t = g->lists[i];
		if (list_is_builtin(t))
			continue;
		char ln[CNAME_MAX];
		snprintf(ln, sizeof ln, "%s", list_cname(t));
		uint32_t o = cn_origin(&cn, t->loc, "type %s", type_str(t));
		cn_name(&cn, o, "%s_t", ln);
	}
	/* Members are named "STRUCT.member": a '.' is in no C name, so these
	 * only ever meet the members of the same struct. */
	for (size_t i = 0; i < n_recs; i++)
		cn_members(&cn, recs[i].what, recs[i].fields, recs[i].n);
	for (size_t i = 0; i < g->file->n_decls; i++) {
		const tidl_decl_t *d = g->file->decls[i];
		if (d->kind != TIDL_DECL_INTERFACE)
			continue;
		char scope[CNAME_MAX];
		snprintf(scope, sizeof scope, "the handlers of interface '%s'", d->name);
		for (size_t k = 0; k < d->u.iface.n_methods; k++) {
			const tidl_method_t *m = &d->u.iface.methods[k];
			uint32_t o = cn_origin(&cn, m->loc, "method '%s.%s'", d->name, m->name);
			cn_name(&cn, o, "%s.%s", scope, cid(m->name));
			if (cxx_keyword(m->name))
				cn_name(&cn, o, "%s.%s_", scope, m->name);
		}
	}

	size_t found = cn_report(&cn, err, NULL, NULL);
	found += check_libthoth(&cn, err);
	free(cn.ents);
	free(cn.origins);
	free(cn.files);
	free(cn.pool.s);
	return found;
}

/* ---- the files of one gen run ------------------------------------------------- */

typedef struct roots_reach {
	const bool *in;                 /* [root * n_files + file]: root reaches file */
	size_t n_roots, n_files;
} roots_reach_t;

/* A pair two files of one root's imports make is that root's own check's
 * (reported, or not, when it generates): only pairs no root sees together. */
static bool seen_by_one_root(const cnames_t *cn, uint32_t x, uint32_t y, void *arg)
{
	const roots_reach_t *rr = arg;
	uint32_t fx = cn->origins[x].file, fy = cn->origins[y].file;
	for (size_t r = 0; r < rr->n_roots; r++)
		if (rr->in[r * rr->n_files + fx] && rr->in[r * rr->n_files + fy])
			return true;
	return false;
}

size_t thothc_gen_check_roots(const tidl_file_t *const *roots, size_t n, FILE *err)
{
	cnames_t cn = { 0 };
	for (size_t r = 0; r < n; r++)
		cn_file(&cn, roots[r]);
	/* one file on disk is listed once (its device and inode): given twice
	 * under two names (a symlink, a hard link) it makes two pairs of
	 * generated files with the same C names, which nothing above sees */
	size_t twice = 0;
	for (size_t r = 1; r < n; r++)
		for (size_t s = 0; s < r; s++) {
			char br[CNAME_MAX], bs[CNAME_MAX];
			thothc_header_base(roots[r]->path, br, sizeof br);
			thothc_header_base(roots[s]->path, bs, sizeof bs);
			if (cn_file_index(&cn, roots[r]) != cn_file_index(&cn, roots[s]) || strcmp(br, bs) == 0)
				continue;
			if (err)
				fprintf(err, "thothc: '%s' is '%s' (the same file): it would be generated "
					     "twice, as %s.thoth.c and %s.thoth.c with the same C names; give it once\n",
					roots[r]->path, roots[s]->path, bs, br);
			twice++;
			break;
		}
	bool *in = calloc(n * (cn.n_files ? cn.n_files : 1), sizeof *in);
	if (!in)
		abort();
	for (size_t r = 0; r < n; r++) {
		const tidl_file_t **seen = NULL;
		size_t k = 0;
		reach_files(roots[r], &seen, &k, 0);
		for (size_t i = 0; i < k; i++) {
			long at = cn_file_index(&cn, seen[i]);
			if (at >= 0)
				in[r * cn.n_files + (size_t)at] = true;
		}
		free(seen);
	}
	roots_reach_t rr = { in, n, cn.n_files };
	size_t found = twice + cn_report(&cn, err, seen_by_one_root, &rr);
	free(in);
	free(cn.ents);
	free(cn.origins);
	free(cn.files);
	free(cn.pool.s);
	return found;
}

/* Write PATH whole or not at all: a temporary file beside it, renamed
 * over it.  Written in place, a failed write (a full disk) left a truncated
 * header that a build run again took as up to date and compiled. */
static int write_file(const char *path, const strbuf_t *sb, FILE *err)
{
	const char *what;
	if (thothc_write_whole(path, sb->s ? sb->s : "", sb->len, NULL, &what) != 0) {
		fprintf(err, "thothc: cannot write '%s' (%s): %s\n", path, what, strerror(errno));
		return THOTHC_GEN_FAILED;
	}
	return THOTHC_GEN_OK;
}

int thothc_gen_c_prefixed(const tidl_file_t *file, const char *outdir, const char *c_prefix,
			  FILE *err)
{
	override_file = file;
	override_prefix = c_prefix;
	int r = thothc_gen_c(file, outdir, err);
	override_file = NULL;
	override_prefix = NULL;
	return r;
}

static int gen_c(const tidl_file_t *file, const char *outdir, FILE *err, thothc_gen_out_t *mem);

int thothc_gen_c(const tidl_file_t *file, const char *outdir, FILE *err)
{
	return gen_c(file, outdir, err, NULL);
}

int thothc_gen_c_mem(const tidl_file_t *file, thothc_gen_out_t *out)
{
	*out = (thothc_gen_out_t){ 0 };
	return gen_c(file, NULL, NULL, out);
}

void thothc_gen_out_free(thothc_gen_out_t *out)
{
	free(out->h);
	free(out->c);
	*out = (thothc_gen_out_t){ 0 };
}

/* The schema hash of system schema SYS as this thothc was built with it
 * (idl/, embedded whole: libthoth_names.cmake), its imports the other
 * system schemas; 0 if it does not load (it always does: the build
 * generated libthoth from it). */
static uint64_t system_hash(const thothc_system_schema_t *sys)
{
	static uint64_t memo[64];       /* per schema, +1 (0: not yet) */
	size_t at = (size_t)(sys - thothc_system_schemas);
	if (at < 64 && memo[at])
		return memo[at] - 1;
	tidl_program_t *p = tidl_program_new();
	if (!p)
		abort();
	for (const thothc_system_schema_t *s = thothc_system_schemas; s->package; s++)
		tidl_program_add_memory_file(p, s->file, (const char *)s->text, s->len);
	tidl_file_t *f = NULL;
	uint64_t h = 0;
	if (tidl_program_load_buffer(p, sys->file, (const char *)sys->text, sys->len, &f) == 0 && f)
		h = schema_hash(f);
	tidl_program_free(p);
	if (at < 64)
		memo[at] = h + 1;
	return h;
}

/*
 * A file declaring a system package (idl/: thoth.registry, ...) is the
 * system's schema only if it is that schema: the same schema hash (every
 * declaration of it and of its imports), whatever the file is called or
 * where it is (the installed share/thoth/idl/registry.tidl, a copy).  Its
 * C is then libthoth's own.  Any other file declaring that package would
 * make C names (thoth_registry_*) that libthoth holds with other meanings:
 * refused, at its package line.  The file's name proved nothing: a user's
 * own registry.tidl declaring thoth.registry passed, a copy of the
 * system's under another name was refused.
 */
static int check_system_package(const tidl_file_t *file, uint64_t hash, const char *prefix, FILE *err)
{
	for (const thothc_system_schema_t *sys = thothc_system_schemas; sys->package; sys++) {
		if (strcmp(sys->package, file->package) != 0)
			continue;
		uint64_t want = system_hash(sys);
		if (want == hash)
			return 0;
		if (err)
			fprintf(err, "%s:%u:%u: error: package '%s' is the system's (idl/%s), but this "
				     "file is not that schema (schema hash 0x%016llx, the system's "
				     "0x%016llx): its C names (%s*) are libthoth's; name the package "
				     "otherwise (or give --c-prefix)\n",
				file->path, file->package_loc.line, file->package_loc.col, file->package, sys->file, (unsigned long long)hash,
				(unsigned long long)want, prefix);
		return 1;
	}
	return 0;
}

/* To OUTDIR's two files, or (OUTDIR NULL) into MEM. */
static int gen_c(const tidl_file_t *file, const char *outdir, FILE *err, thothc_gen_out_t *mem)
{
	gen_t g = { .file = file };
	char prefix[CNAME_MAX], up[CNAME_MAX], base[CNAME_MAX];
	snprintf(prefix, sizeof prefix, "%s", prefix_of(file));
	snprintf(up, sizeof up, "%s", upper(prefix));
	thothc_header_base(file->path, base, sizeof base);
	g.prefix = prefix;
	g.up = up;
	g.base = base;
	if (check_header_names(file, err))
		return THOTHC_GEN_REFUSED;
	uint64_t reach = tidl_canon_reach(file, CANON_LIMIT);
	if (reach >= CANON_LIMIT) {
		if (err)
			fprintf(err, "%s: error: its imports reach the same files over more paths than "
				     "the schema hash can read (%u MiB of schema text, diamonds of imports "
				     "nested too deep); import fewer files from each\n",
				file->path, CANON_LIMIT >> 20);
		return THOTHC_GEN_REFUSED;
	}
	uint64_t hash = schema_hash(file);
	if (!(override_file == file && override_prefix) && check_system_package(file, hash, prefix, err))
		return THOTHC_GEN_REFUSED;

	/* Records: every struct, then every method's request and response. */
	size_t n_recs = 0, n_structs = 0;
	for (size_t i = 0; i < file->n_decls; i++) {
		const tidl_decl_t *d = file->decls[i];
		if (d->kind == TIDL_DECL_STRUCT)
			n_recs++, n_structs++;
		else if (d->kind == TIDL_DECL_INTERFACE)
			n_recs += 2 * d->u.iface.n_methods;
	}
	rec_t *recs = calloc(n_recs ? n_recs : 1, sizeof *recs);
	const tidl_decl_t **sdecls = calloc(n_structs ? n_structs : 1, sizeof *sdecls);
	char (*names)[2][CNAME_MAX] = calloc(n_recs ? n_recs : 1, sizeof *names);
	if (!recs || !sdecls || !names)
		abort();
	size_t ri = 0;
	for (size_t i = 0; i < file->n_decls; i++) {
		const tidl_decl_t *d = file->decls[i];
		if (d->kind != TIDL_DECL_STRUCT)
			continue;
		snprintf(names[ri][0], CNAME_MAX, "%s%s", prefix, d->name);
		snprintf(names[ri][1], CNAME_MAX, "struct %s", d->name);
		recs[ri] = (rec_t){ .cname = names[ri][0], .what = names[ri][1],
				    .fields = d->u.struct_.fields, .n = d->u.struct_.n_fields,
				    .res = d->u.struct_.reserved, .n_res = d->u.struct_.n_reserved,
				    .loc = d->loc };
		rec_layout(&recs[ri]);
		sdecls[ri] = d;
		collect_lists_fields(&g, d->u.struct_.fields, d->u.struct_.n_fields);
		ri++;
	}
	for (size_t i = 0; i < file->n_decls; i++) {
		const tidl_decl_t *d = file->decls[i];
		if (d->kind != TIDL_DECL_INTERFACE)
			continue;
		for (size_t k = 0; k < d->u.iface.n_methods; k++) {
			const tidl_method_t *m = &d->u.iface.methods[k];
			for (int resp = 0; resp < 2; resp++) {
				method_rec(d, m, resp, prefix, &recs[ri], names[ri][0], names[ri][1]);
				collect_lists_fields(&g, resp ? m->results : m->params,
						     resp ? m->n_results : m->n_params);
				ri++;
			}
		}
	}
	if (g.n_lists)
		qsort(g.lists, g.n_lists, sizeof *g.lists, cmp_depth);
	int rc = THOTHC_GEN_OK;
	if (check_c_names(&g, recs, n_recs, err)) {
		rc = THOTHC_GEN_REFUSED;
		goto out;
	}

	/* ---- header ---- */
	emit_header_prologue(&g, hash);
	emit_feature_and_errors(&g);
	emit_enums(&g);
	for (size_t i = 0; i < n_recs; i++)
		sb_addf(&g.h, "typedef struct %s %s_t;\n", recs[i].cname, recs[i].cname);
	sb_addf(&g.h, "\n");
	for (size_t i = 0; i < g.n_lists; i++) {
		const tidl_type_t *t = g.lists[i];
		if (list_is_builtin(t))
			continue;
		const char *ln = list_cname(t);
		char lname[CNAME_MAX];
		snprintf(lname, sizeof lname, "%s", ln);
		sb_addf(&g.h, "#ifndef THOTH_HAVE_%s\n#define THOTH_HAVE_%s\n"
			      "/* %s */\ntypedef struct %s { const %s *items; uint32_t count; } %s_t;\n#endif\n",
			lname, lname, type_str(t), lname, ctype(t->elem), lname);
	}
	sb_addf(&g.h, "\n");
	emit_struct_defs(&g, recs, sdecls, n_structs);
	for (size_t i = n_structs; i < n_recs; i++)
		emit_rec_struct(&g, &recs[i]);
	sb_addf(&g.h, "/* Codec entry points (used by generated code and tests). */\n");
	for (size_t i = 0; i < n_recs; i++)
		emit_rec_protos(&g, &recs[i]);
	sb_addf(&g.h, "\n");
	for (size_t i = 0; i < file->n_decls; i++)
		if (file->decls[i]->kind == TIDL_DECL_INTERFACE)
			emit_interface_header(&g, file->decls[i]);
	sb_addf(&g.h, "#ifdef __cplusplus\n}\n#endif\n#endif\n");

	/* ---- source ---- */
	sb_addf(&g.c, "/* %s.thoth.c - generated by thothc from %s. Do not edit. */\n"
		      "#include <string.h>\n\n#include \"%s.thoth.h\"\n\n",
		base, basename_of(file->path), base);
	/* The call path's adapters and the dispatcher join libthoth's hot
	 * groups (kernel/ipc's thoth/hot.h, not installed: the section names
	 * are spelt here), so a round trip's generated code lies on the pages
	 * its RPC layer and channel already touch (docs/SCHED.md, stop 35).
	 * A program opts out of either by predefining it empty: each has its
	 * own guard, so one predefined alone leaves the other (docs/IDL.md). */
	sb_addf(&g.c, "#ifndef THOTH__HOT_CLIENT\n"
		      "#define THOTH__HOT_CLIENT __attribute__((section(\".text.sorted.thoth_1\")))\n"
		      "#endif\n"
		      "#ifndef THOTH__HOT_SERVE\n"
		      "#define THOTH__HOT_SERVE __attribute__((section(\".text.sorted.thoth_3\")))\n"
		      "#endif\n\n");
	for (size_t i = 0; i < g.n_lists; i++)
		emit_list_protos(&g, g.lists[i]);
	sb_addf(&g.c, "\n");
	for (size_t i = 0; i < g.n_lists; i++)
		emit_list_funcs(&g, g.lists[i]);
	for (size_t i = 0; i < n_recs; i++)
		emit_rec_funcs(&g, &recs[i], i >= n_structs);
	for (size_t i = 0; i < file->n_decls; i++)
		if (file->decls[i]->kind == TIDL_DECL_INTERFACE)
			emit_interface_source(&g, file->decls[i], hash);

	if (mem) {
		snprintf(mem->base, sizeof mem->base, "%s", base);
		mem->h = g.h.s, mem->h_len = g.h.len;
		mem->c = g.c.s, mem->c_len = g.c.len;
		g.h.s = g.c.s = NULL;
	} else {
		char hpath[4096], cpath[4096];
		snprintf(hpath, sizeof hpath, "%s/%s.thoth.h", outdir, base);
		snprintf(cpath, sizeof cpath, "%s/%s.thoth.c", outdir, base);
		rc = write_file(hpath, &g.h, err);
		if (!rc)
			rc = write_file(cpath, &g.c, err);
	}
out:
	for (size_t i = 0; i < n_recs; i++)
		rec_free(&recs[i]);
	free(recs);
	free(sdecls);
	free(names);
	free(g.lists);
	free(g.h.s);
	free(g.c.s);
	return rc;
}
