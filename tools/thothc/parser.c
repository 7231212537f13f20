/*
 * parser.c - the .tidl parser: tokens to the syntax tree of one file
 * (docs/IDL.md, "Grammar").  It stops at the first syntax error of a file.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"

/* ---- parser helpers -------------------------------------------------------- */

static const char *tok_desc(const tok_t *t, char *buf, size_t n)
{
	switch (t->kind) {
	case T_EOF: return "end of file";
	case T_IDENT: snprintf(buf, n, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->text); return buf;
	case T_INT: case T_VERSION: snprintf(buf, n, "number '%.*s'", (int)(t->len > 40 ? 40 : t->len), t->text); return buf;
	case T_STRING: return "a string";
	case T_ARROW: return "'->'";
	case T_PUNCT: snprintf(buf, n, "'%c'", t->punct); return buf;
	case T_BAD: case T_COMMENT: break;
	}
	return "an invalid character";
}

static void syntax_error(parser_t *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void syntax_error(parser_t *ps, const char *fmt, ...)
{
	if (ps->failed)
		return;
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (ps->tok.kind == T_BAD) {
		if (ps->tok.text)
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "%s", ps->tok.text);
		else if ((unsigned char)ps->tok.punct >= 0x20 && (unsigned char)ps->tok.punct < 0x7f)
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "unexpected character '%c'", ps->tok.punct);
		else if (ps->tok.loc.line == 1 && ps->tok.loc.col == 1 && ps->file->source_len >= 3 &&
			 !memcmp(ps->file->source, "\xef\xbb\xbf", 3))
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
				  "the file starts with a UTF-8 byte-order mark (EF BB BF): save it without one");
		else if (ps->tok.loc.line == 1 && ps->tok.loc.col == 1 && ps->file->source_len >= 2 &&
			 (!memcmp(ps->file->source, "\xff\xfe", 2) || !memcmp(ps->file->source, "\xfe\xff", 2)))
			/* an editor's "Unicode" (Windows Notepad's): it was "unexpected
			 * byte 0xff", which does not say what is wrong with the file */
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
				  "the file is UTF-16 (it starts with the byte-order mark %s): a schema is UTF-8 "
				  "(ASCII outside comments and strings); save it as UTF-8",
				  (unsigned char)ps->file->source[0] == 0xff ? "FF FE" : "FE FF");
		else if (ps->tok.punct == '\0')
			/* UTF-16 without a byte-order mark has a NUL beside every ASCII letter */
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
				  "unexpected byte 0x00 (NUL): a schema is text, UTF-8 (is the file UTF-16, or "
				  "not a schema?)");
		else if ((unsigned char)ps->tok.punct >= 0x80)
			/* a name in another script, or a BOM: say what is allowed */
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
				  "unexpected byte 0x%02x: outside comments and strings a schema is ASCII "
				  "(names are [A-Za-z_][A-Za-z0-9_]*)", (unsigned char)ps->tok.punct);
		else if (ps->tok.punct == '\v' || ps->tok.punct == '\f')
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
				  "unexpected byte 0x%02x (a %s): spaces, tabs and line ends separate tokens",
				  (unsigned char)ps->tok.punct, ps->tok.punct == '\v' ? "vertical tab" : "form feed");
		else
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "unexpected byte 0x%02x",
			     (unsigned char)ps->tok.punct);
	} else if (ps->tok.kind == T_EOF && ps->open_kind) {
		/* a '}' missing: the end of the file is not where the mistake is */
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
			  "%s, found end of file: %s '%s' (line %u) is not closed (a '}' is missing)", buf,
			  ps->open_kind, ps->open_name, ps->open_line);
	} else {
		char d[64];
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "%s, found %s", buf,
		     tok_desc(&ps->tok, d, sizeof d));
	}
	ps->failed = true;
}

/* A syntax error at an identifier that is probably a misspelt keyword of
 * WORDS (NULL-ended): the error says which ("found 'strcut'; did you mean
 * 'struct'?"); otherwise MSG as syntax_error says it. */
static void syntax_error_near(parser_t *ps, const char *const *words, const char *msg)
{
	const char *near = ps->tok.kind == T_IDENT ? tidl_near_word(ps->tok.text, ps->tok.len, words)
						   : NULL;
	if (!near || ps->failed) {
		syntax_error(ps, "%s", msg);
		return;
	}
	char d[64];
	tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "%s, found %s; did you mean '%s'?", msg,
		  tok_desc(&ps->tok, d, sizeof d), near);
	ps->failed = true;
}

/* WORD (at LOC) came where a name or type may stand, and the token after it
 * is another name: "optinal u8 a;", "onway m();" read as a type or a method
 * called like the keyword, and the error fell on the next token.  If WORD
 * is near KEYWORD, say so at WORD and return true. */
static bool misspelt_keyword(parser_t *ps, const char *word, tidl_loc_t loc, const char *keyword,
			     const char *expected)
{
	static const char *words[2];
	words[0] = keyword;
	if (ps->failed || !word || ps->tok.kind != T_IDENT || strchr(word, '.') ||
	    !tidl_near_word(word, strlen(word), words))
		return false;
	char d[64];
	tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, "%s, found %s; did you mean '%s', not '%s'?",
		  expected, tok_desc(&ps->tok, d, sizeof d), keyword, word);
	ps->failed = true;
	return true;
}

/* False (and a syntax error) once a list already holds MAX_MEMBERS entries. */
static bool room_for(parser_t *ps, const vec_t *v, const char *what)
{
	if (v->n < MAX_MEMBERS)
		return true;
	tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "more than %d %s", MAX_MEMBERS, what);
	ps->failed = true;
	return false;
}

static bool is_punct(parser_t *ps, char c) { return ps->tok.kind == T_PUNCT && ps->tok.punct == c; }

static bool is_word(parser_t *ps, const char *w)
{
	return ps->tok.kind == T_IDENT && ps->tok.len == strlen(w) && memcmp(ps->tok.text, w, ps->tok.len) == 0;
}

static bool accept_punct(parser_t *ps, char c)
{
	if (!is_punct(ps, c))
		return false;
	tidl_lex(ps);
	return true;
}

static bool expect_punct(parser_t *ps, char c, const char *after)
{
	if (accept_punct(ps, c))
		return true;
	/* A ';' missing at the end of a line goes there, as a C compiler puts
	 * it: the error stood on the next line's first token ("6:3: expected
	 * ';' after field, found number '2'"), a line that is right. */
	if (c == ';' && !ps->failed && ps->tok.kind != T_BAD && ps->prev_end.line &&
	    ps->tok.loc.line > ps->prev_end.line) {
		char d[64];
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->prev_end, "expected ';' %s, found %s on line %u", after,
			  tok_desc(&ps->tok, d, sizeof d), (unsigned)ps->tok.loc.line);
		ps->failed = true;
		return false;
	}
	syntax_error(ps, "expected '%c' %s", c, after);
	return false;
}

static const char *expect_ident(parser_t *ps, const char *what, tidl_loc_t *loc)
{
	if (ps->tok.kind != T_IDENT) {
		syntax_error(ps, "expected %s", what);
		return NULL;
	}
	if (loc)
		*loc = ps->tok.loc;
	const char *r = tidl_pstrndup(ps->prog, ps->tok.text, ps->tok.len);
	tidl_lex(ps);
	return r;
}

/* NAME { "." NAME }, the current token an identifier, joined by '.' alone:
 * comments and blanks between the parts are not part of the name (they
 * were: "package a . b;" made the C prefix "a _ b_" and another interface
 * id than "a.b").  NULL after a syntax error; MAX bounds the length (the
 * longer one is still returned, the caller names the limit). */
static char *parse_qname(parser_t *ps, const char *after_dot, size_t max)
{
	size_t cap = ps->tok.len + 1, n = 0;
	char *out = malloc(cap);
	if (!out)
		abort();
	for (;;) {
		if (n + ps->tok.len + 2 > cap) {
			cap = (n + ps->tok.len + 2) * 2;
			char *o = realloc(out, cap);
			if (!o)
				abort();
			out = o;
		}
		if (n)
			out[n++] = '.';
		memcpy(out + n, ps->tok.text, ps->tok.len);
		n += ps->tok.len;
		tidl_lex(ps);
		if (!is_punct(ps, '.') || n > max)
			break;
		tidl_lex(ps);
		if (ps->tok.kind != T_IDENT) {
			syntax_error(ps, "%s", after_dot);
			free(out);
			return NULL;
		}
	}
	char *r = tidl_pstrndup(ps->prog, out, n);
	free(out);
	return r;
}

static bool expect_uint(parser_t *ps, const char *what, uint64_t *v, tidl_loc_t *loc)
{
	if (ps->tok.kind != T_INT) {
		syntax_error(ps, "expected %s", what);
		return false;
	}
	if (ps->tok.overflow) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "number too large");
		ps->failed = true;
		return false;
	}
	*v = ps->tok.value;
	if (loc)
		*loc = ps->tok.loc;
	tidl_lex(ps);
	return true;
}

/* An ordinal as written, V, in 32 bits: a larger one is an error of its own
 * (it was clamped to 4294967295 in silence, so two of them were reported
 * as one duplicate ordinal that the file does not contain).  *BAD marks it
 * for sema, which leaves it out of the duplicate and reserved checks: its
 * 4294967295 stands in for a number the file does not have. */
static uint32_t ordinal32(parser_t *ps, uint64_t v, tidl_loc_t loc, bool *bad)
{
	*bad = v > UINT32_MAX;
	if (!*bad)
		return (uint32_t)v;
	tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, "ordinal %llu is larger than 4294967295",
		  (unsigned long long)v);
	return UINT32_MAX;
}

static bool parse_version(parser_t *ps, tidl_version_t *v)
{
	if (ps->tok.kind == T_INT && !ps->tok.overflow && ps->tok.value <= 255) {
		/* "version 2;" means 2.0 */
		*v = (tidl_version_t){ (uint16_t)ps->tok.value, 0 };
		tidl_lex(ps);
		return true;
	}
	if (ps->tok.kind != T_VERSION) {
		syntax_error(ps, "expected a version MAJOR.MINOR");
		return false;
	}
	if (ps->tok.overflow) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
		     "version components must be 0..255");
		ps->failed = true;
		return false;
	}
	*v = ps->tok.version;
	tidl_lex(ps);
	return true;
}

/* Annotations: @since(M.m) and @requires(feature), any order, each once;
 * on a method also @idempotent (safe to retry on another instance: SCALE-3),
 * on an interface @sharded(maglev|jump|rendezvous) (SCALE-4).  Neither of
 * the last two changes the wire: they are not part of the schema hash. */
typedef struct annots {
	bool has_since;
	tidl_version_t since;
	tidl_loc_t since_loc;
	const char *requires;
	tidl_loc_t requires_loc;
	bool idempotent;
	const char *sharded;
} annots_t;

enum { ANNOT_OTHER, ANNOT_METHOD, ANNOT_INTERFACE };

static bool parse_annotations_at(parser_t *ps, annots_t *a, int where);

static bool parse_annotations(parser_t *ps, annots_t *a, bool allow_requires)
{
	return parse_annotations_at(ps, a, allow_requires ? ANNOT_METHOD : ANNOT_OTHER);
}

static bool parse_annotations_at(parser_t *ps, annots_t *a, int where)
{
	bool allow_requires = where == ANNOT_METHOD;
	memset(a, 0, sizeof *a);
	while (is_punct(ps, '@')) {
		tidl_lex(ps);
		tidl_loc_t loc = ps->tok.loc;
		if (is_word(ps, "since")) {
			tidl_lex(ps);
			if (a->has_since) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, "duplicate @since");
				ps->failed = true;
				return false;
			}
			if (!expect_punct(ps, '(', "after @since") || !parse_version(ps, &a->since) ||
			    !expect_punct(ps, ')', "after the version"))
				return false;
			a->has_since = true;
			a->since_loc = loc;
		} else if (is_word(ps, "requires")) {
			tidl_lex(ps);
			if (!allow_requires) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, "@requires is only allowed on methods");
				ps->failed = true;
				return false;
			}
			if (a->requires) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, "duplicate @requires");
				ps->failed = true;
				return false;
			}
			if (!expect_punct(ps, '(', "after @requires"))
				return false;
			a->requires_loc = ps->tok.loc;
			a->requires = expect_ident(ps, "a feature name", NULL);
			if (!a->requires || !expect_punct(ps, ')', "after the feature name"))
				return false;
		} else if (is_word(ps, "idempotent")) {
			tidl_lex(ps);
			if (where != ANNOT_METHOD || a->idempotent) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, where != ANNOT_METHOD ?
					  "@idempotent is only allowed on methods" : "duplicate @idempotent");
				ps->failed = true;
				return false;
			}
			a->idempotent = true;
		} else if (is_word(ps, "sharded")) {
			tidl_lex(ps);
			if (where != ANNOT_INTERFACE || a->sharded) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, loc, where != ANNOT_INTERFACE ?
					  "@sharded is only allowed on interfaces" : "duplicate @sharded");
				ps->failed = true;
				return false;
			}
			if (!expect_punct(ps, '(', "after @sharded"))
				return false;
			tidl_loc_t aloc = ps->tok.loc;
			a->sharded = expect_ident(ps, "maglev, jump or rendezvous", NULL);
			if (!a->sharded || !expect_punct(ps, ')', "after the algorithm"))
				return false;
			if (strcmp(a->sharded, "maglev") && strcmp(a->sharded, "jump") &&
			    strcmp(a->sharded, "rendezvous")) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, aloc,
					  "unknown shard algorithm '%s' (maglev, jump or rendezvous)", a->sharded);
				ps->failed = true;
				return false;
			}
		} else {
			syntax_error(ps, "expected an annotation (@since, @requires, @idempotent or @sharded)");
			return false;
		}
	}
	return true;
}

static const struct { const char *name; tidl_kind_t kind; } builtins[] = {
	{ "bool", TIDL_BOOL }, { "u8", TIDL_U8 }, { "u16", TIDL_U16 }, { "u32", TIDL_U32 },
	{ "u64", TIDL_U64 }, { "i8", TIDL_I8 }, { "i16", TIDL_I16 }, { "i32", TIDL_I32 },
	{ "i64", TIDL_I64 }, { "f32", TIDL_F32 }, { "f64", TIDL_F64 },
	{ "string", TIDL_STRING }, { "bytes", TIDL_BYTES },
};

static tidl_type_t *parse_type(parser_t *ps, int depth)
{
	if (depth > MAX_TYPE_DEPTH) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "type nested deeper than %d levels",
		     MAX_TYPE_DEPTH);
		ps->failed = true;
		return NULL;
	}
	if (ps->tok.kind != T_IDENT) {
		syntax_error(ps, "expected a type");
		return NULL;
	}
	tidl_type_t *t = tidl_palloc(ps->prog, sizeof *t);
	t->loc = ps->tok.loc;
	if (is_word(ps, "list")) {
		tidl_lex(ps);
		if (!expect_punct(ps, '<', "after 'list'"))
			return NULL;
		t->kind = TIDL_LIST;
		t->elem = parse_type(ps, depth + 1);
		if (!t->elem || !expect_punct(ps, '>', "to close 'list<'"))
			return NULL;
		return t;
	}
	if (is_word(ps, "optional")) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
		     "'optional' is only allowed on fields and parameters, not inside a type");
		ps->failed = true;
		return NULL;
	}
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		if (is_word(ps, builtins[i].name)) {
			t->kind = builtins[i].kind;
			tidl_lex(ps);
			return t;
		}
	}
	/* a (possibly qualified) name */
	t->kind = TIDL_STRUCT;          /* resolved by sema */
	t->ref_name = parse_qname(ps, "expected a name after '.'", SIZE_MAX);
	if (t->ref_name && is_punct(ps, '<')) {         /* "lst<u8>", "vector<u8>", "map<...>" */
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, t->loc,
			  "'%s<' is not a type: the one type that takes an element type is list<T>",
			  t->ref_name);
		ps->failed = true;
		return NULL;
	}
	return t;
}

static tidl_decl_t *new_decl(parser_t *ps, tidl_decl_kind_t kind, vec_t *decls)
{
	tidl_decl_t *d = tidl_palloc(ps->prog, sizeof *d);
	d->kind = kind;
	d->file = ps->file;
	*(tidl_decl_t **)tidl_vec_push(ps->prog, decls) = d;
	return d;
}

static void set_since(tidl_decl_t *d, const annots_t *a)
{
	d->has_since = a->has_since;
	d->since = a->since;
}

static void parse_feature(parser_t *ps, vec_t *decls)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_FEATURE, decls);
	d->loc = ps->tok.loc;
	tidl_lex(ps);
	uint64_t bit;
	annots_t a;
	if (!(d->name = expect_ident(ps, "a feature name", &d->loc)) ||
	    !expect_punct(ps, '=', "after the feature name") ||
	    !expect_uint(ps, "a feature bit (0..63)", &bit, NULL) || !parse_annotations(ps, &a, false) ||
	    !expect_punct(ps, ';', "after feature"))
		return;
	d->u.feature.bit = bit > 63 ? 64 : (uint32_t)bit;
	set_since(d, &a);
}

static void parse_error_decl(parser_t *ps, vec_t *decls)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_ERROR, decls);
	d->loc = ps->tok.loc;
	tidl_lex(ps);
	uint64_t code;
	annots_t a;
	if (!(d->name = expect_ident(ps, "an error name", &d->loc)) ||
	    !expect_punct(ps, '=', "after the error name") ||
	    !expect_uint(ps, "an error code", &code, NULL) || !parse_annotations(ps, &a, false) ||
	    !expect_punct(ps, ';', "after error"))
		return;
	d->u.error.code = code > UINT32_MAX ? 0 : (uint32_t)code;
	set_since(d, &a);
}

/*
 * "reserved N, M;" in an interface or enum (NEG: enum values may be
 * negative), the ordinals/values going to OUT.  The current token is the
 * word 'reserved'.
 */
static bool parse_reserved_list(parser_t *ps, vec_t *out, bool neg_ok, const char *what)
{
	tidl_lex(ps);
	do {
		if (!room_for(ps, out, what))
			return false;
		tidl_reserved_t *r = tidl_vec_push(ps->prog, out);
		r->loc = ps->tok.loc;
		bool neg = neg_ok && accept_punct(ps, '-');
		uint64_t v;
		if (!expect_uint(ps, neg_ok ? "a value to reserve" : "an ordinal to reserve", &v, NULL))
			return false;
		if (neg && v > (uint64_t)INT64_MAX + 1) {
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, r->loc, "number too large");
			ps->failed = true;
			return false;
		}
		if (!neg_ok)
			v = ordinal32(ps, v, r->loc, &r->bad_ordinal);
		r->value = neg && v ? (uint64_t)(-(int64_t)(v - 1) - 1) : v;
	} while (accept_punct(ps, ','));
	return expect_punct(ps, ';', "after the reserved list");
}

/*
 * In a struct: "reserved N;" (a gap: no slot) or "reserved N: [optional]
 * TYPE [NAME];" (a retired field whose slot stays on the wire, so the
 * fields after it keep their offsets), or "reserved N, M;".
 */
static bool parse_struct_reserved(parser_t *ps, vec_t *out)
{
	tidl_lex(ps);
	size_t first = out->n;
	for (;;) {
		if (!room_for(ps, out, "reserved ordinals in one struct"))
			return false;
		tidl_field_t *f = tidl_vec_push(ps->prog, out);
		uint64_t ord;
		if (!expect_uint(ps, "an ordinal to reserve", &ord, &f->loc))
			return false;
		f->ordinal = ordinal32(ps, ord, f->loc, &f->bad_ordinal);
		if (is_punct(ps, ':') && out->n - first > 1) {
			syntax_error(ps, "a reserved slot with a type takes one ordinal: expected ';'");
			return false;
		}
		if (accept_punct(ps, ':')) {
			if (is_word(ps, "optional")) {
				f->optional = true;
				tidl_lex(ps);
			}
			if (!(f->type = parse_type(ps, 0)))
				return false;
			if (ps->tok.kind == T_IDENT &&
			    !(f->name = expect_ident(ps, "the retired field's name", NULL)))
				return false;
			return expect_punct(ps, ';', "after the reserved field");
		}
		if (accept_punct(ps, ';'))
			return true;
		if (!expect_punct(ps, ',', "or ':' or ';' after the reserved ordinal"))
			return false;
	}
}

static void parse_enum(parser_t *ps, vec_t *decls, bool strict)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_ENUM, decls);
	d->loc = ps->tok.loc;
	d->u.enum_.strict = strict;
	tidl_lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "an enum name", &d->loc)) ||
	    !expect_punct(ps, ':', "after the enum name (enums need an underlying type, e.g. ': u8')"))
		return;
	tidl_type_t *ut = parse_type(ps, 0);
	if (!ut)
		return;
	if (ut->kind < TIDL_U8 || ut->kind > TIDL_I64) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, ut->loc,
		     "an enum's underlying type must be an integer type (u8..u64, i8..i64)");
		ps->failed = true;
		return;
	}
	d->u.enum_.underlying = ut->kind;
	if (!parse_annotations(ps, &a, false) || !expect_punct(ps, '{', "to open the enum"))
		return;
	ps->open_kind = "enum";
	ps->open_name = d->name;
	ps->open_line = d->loc.line;
	set_since(d, &a);
	vec_t values = { .size = sizeof(tidl_enum_value_t) };
	vec_t reserved = { .size = sizeof(tidl_reserved_t) };
	while (!is_punct(ps, '}') && !ps->failed) {
		if (is_word(ps, "reserved")) {
			/* "reserved = 3;" is a value named reserved: look one token ahead */
			parser_t ahead = *ps;
			tidl_lex(&ahead);
			if (!(ahead.tok.kind == T_PUNCT && ahead.tok.punct == '=')) {
				if (!parse_reserved_list(ps, &reserved, true, "reserved values in one enum"))
					return;
				continue;
			}
		}
		if (!room_for(ps, &values, "values in one enum"))
			return;
		tidl_enum_value_t *v = tidl_vec_push(ps->prog, &values);
		if (!(v->name = expect_ident(ps, "an enum value name or '}'", &v->loc)) ||
		    !expect_punct(ps, '=', "after the enum value name"))
			return;
		bool neg = accept_punct(ps, '-');
		uint64_t val;
		tidl_loc_t vloc = ps->tok.loc;
		if (!expect_uint(ps, "an enum value", &val, NULL))
			return;
		if (neg && val > (uint64_t)INT64_MAX + 1) {
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, vloc, "number too large");
			ps->failed = true;
			return;
		}
		v->value = neg ? (uint64_t)(-(int64_t)(val - 1) - 1) : val;
		if (neg && val == 0)
			v->value = 0;
		if (neg && val != 0 && d->u.enum_.underlying < TIDL_I8) {
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, vloc,
			     "negative value for enum '%s' with unsigned type %s", d->name,
			     tidl_kind_name(d->u.enum_.underlying));
			v->value = 0;
		}
		if (!parse_annotations(ps, &a, false) || !expect_punct(ps, ';', "after enum value"))
			return;
		v->has_since = a.has_since;
		v->since = a.since;
	}
	if (!expect_punct(ps, '}', "to close the enum"))
		return;
	ps->open_kind = NULL;
	d->u.enum_.values = values.items;
	d->u.enum_.n_values = values.n;
	d->u.enum_.reserved = reserved.items;
	d->u.enum_.n_reserved = reserved.n;
}

/* A field: "N: [optional] TYPE NAME [annotations];" */
static bool parse_field(parser_t *ps, vec_t *fields)
{
	tidl_field_t *f = tidl_vec_push(ps->prog, fields);
	uint64_t ord;
	annots_t a;
	static const char *const reserved_word[] = { "reserved", NULL };
	if (ps->tok.kind == T_IDENT) {  /* "reserverd 3;", or a field without its ordinal */
		syntax_error_near(ps, reserved_word, "expected a field ordinal or '}' (a field is 'N: TYPE NAME;')");
		return false;
	}
	if (!expect_uint(ps, "a field ordinal or '}'", &ord, &f->loc) ||
	    !expect_punct(ps, ':', "after the field ordinal"))
		return false;
	f->ordinal = ordinal32(ps, ord, f->loc, &f->bad_ordinal);
	if (is_word(ps, "optional")) {
		f->optional = true;
		tidl_lex(ps);
	}
	if (!(f->type = parse_type(ps, 0)) || !(f->name = expect_ident(ps, "a field name", NULL)) ||
	    !parse_annotations(ps, &a, false))
		return false;
	if (!f->optional && misspelt_keyword(ps, f->type->ref_name, f->type->loc, "optional",
					     "expected ';' after field"))
		return false;
	if (!expect_punct(ps, ';', "after field"))
		return false;
	f->has_since = a.has_since;
	f->since = a.since;
	return true;
}

static void parse_struct(parser_t *ps, vec_t *decls)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_STRUCT, decls);
	d->loc = ps->tok.loc;
	tidl_lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "a struct name", &d->loc)) || !parse_annotations(ps, &a, false) ||
	    !expect_punct(ps, '{', "to open the struct"))
		return;
	ps->open_kind = "struct";
	ps->open_name = d->name;
	ps->open_line = d->loc.line;
	set_since(d, &a);
	vec_t fields = { .size = sizeof(tidl_field_t) };
	vec_t reserved = { .size = sizeof(tidl_field_t) };
	while (!is_punct(ps, '}') && !ps->failed) {
		if (is_word(ps, "reserved")) {
			if (!parse_struct_reserved(ps, &reserved))
				return;
		} else if (!room_for(ps, &fields, "fields in one struct") || !parse_field(ps, &fields)) {
			return;
		}
	}
	expect_punct(ps, '}', "to close the struct");
	ps->open_kind = NULL;
	d->u.struct_.fields = fields.items;
	d->u.struct_.n_fields = fields.n;
	d->u.struct_.reserved = reserved.items;
	d->u.struct_.n_reserved = reserved.n;
}

/* "(T a, optional T b @since(1.2))": positional fields, ordinal = position. */
static bool parse_params(parser_t *ps, vec_t *out)
{
	if (!expect_punct(ps, '(', "to open the parameter list"))
		return false;
	if (accept_punct(ps, ')'))
		return true;
	for (;;) {
		if (!room_for(ps, out, "parameters"))
			return false;
		tidl_field_t *f = tidl_vec_push(ps->prog, out);
		f->ordinal = (uint32_t)out->n;
		f->loc = ps->tok.loc;
		if (is_word(ps, "optional")) {
			f->optional = true;
			tidl_lex(ps);
		}
		annots_t a;
		if (!(f->type = parse_type(ps, 0)) ||
		    !(f->name = expect_ident(ps, "a parameter name", NULL)) ||
		    !parse_annotations(ps, &a, false))
			return false;
		if (!f->optional && misspelt_keyword(ps, f->type->ref_name, f->type->loc, "optional",
						     "expected ',' or ')' after the parameter"))
			return false;
		f->has_since = a.has_since;     /* appended after release: "T name @since(1.2)" */
		f->since = a.since;
		if (accept_punct(ps, ')'))
			return true;
		if (!expect_punct(ps, ',', "or ')' after the parameter"))
			return false;
	}
}

static void parse_interface(parser_t *ps, vec_t *decls)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_INTERFACE, decls);
	d->loc = ps->tok.loc;
	tidl_lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "an interface name", &d->loc)) ||
	    !parse_annotations_at(ps, &a, ANNOT_INTERFACE) || !expect_punct(ps, '{', "to open the interface"))
		return;
	ps->open_kind = "interface";
	ps->open_name = d->name;
	ps->open_line = d->loc.line;
	set_since(d, &a);
	d->u.iface.shard_algo = a.sharded;
	vec_t methods = { .size = sizeof(tidl_method_t) };
	vec_t reserved = { .size = sizeof(tidl_reserved_t) };
	while (!is_punct(ps, '}') && !ps->failed) {
		if (is_word(ps, "reserved")) {
			if (!parse_reserved_list(ps, &reserved, false, "reserved ordinals in one interface"))
				return;
			continue;
		}
		if (!room_for(ps, &methods, "methods in one interface"))
			return;
		tidl_method_t *m = tidl_vec_push(ps->prog, &methods);
		uint64_t ord;
		static const char *const reserved_word[] = { "reserved", NULL };
		if (ps->tok.kind == T_IDENT) {  /* "reserverd 2;", or a method without its ordinal */
			syntax_error_near(ps, reserved_word,
					  "expected a method ordinal or '}' (a method is 'N: NAME(PARAMS) -> (RESULTS);')");
			return;
		}
		if (!expect_uint(ps, "a method ordinal or '}'", &ord, &m->loc) ||
		    !expect_punct(ps, ':', "after the method ordinal"))
			return;
		m->ordinal = ordinal32(ps, ord, m->loc, &m->bad_ordinal);
		if (is_word(ps, "oneway")) {
			/* "1: oneway(u8 a);" is a method named oneway, as
			 * "reserved = 3;" is an enum value: a keyword only where
			 * the grammar expects it (it was "expected a method
			 * name, found '('") */
			parser_t ahead = *ps;
			tidl_lex(&ahead);
			if (!(ahead.tok.kind == T_PUNCT && ahead.tok.punct == '(')) {
				m->oneway = true;
				tidl_lex(ps);
			}
		}
		vec_t params = { .size = sizeof(tidl_field_t) }, results = { .size = sizeof(tidl_field_t) };
		tidl_loc_t name_loc;
		if (!(m->name = expect_ident(ps, "a method name", &name_loc)))
			return;
		if (!m->oneway && misspelt_keyword(ps, m->name, name_loc, "oneway",
						   "expected '(' to open the parameter list"))
			return;
		if (!parse_params(ps, &params))
			return;
		if (ps->tok.kind == T_ARROW) {
			tidl_loc_t arrow = ps->tok.loc;
			tidl_lex(ps);
			if (!parse_params(ps, &results))
				return;
			if (m->oneway) {
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, arrow,
				     "oneway method '%s' cannot have results", m->name);
			}
		}
		vec_t errs = { .size = sizeof(const char *) };
		if (is_word(ps, "error")) {
			tidl_loc_t eloc = ps->tok.loc;
			tidl_lex(ps);
			do {
				if (!room_for(ps, &errs, "errors in one method"))
					return;
				const char *e = expect_ident(ps, "an error name", NULL);
				if (!e)
					return;
				*(const char **)tidl_vec_push(ps->prog, &errs) = e;
			} while (accept_punct(ps, '|'));
			if (m->oneway)
				tidl_diag(ps->prog, ps->file, TIDL_ERROR, eloc,
				     "oneway method '%s' cannot return errors", m->name);
		}
		if (!parse_annotations(ps, &a, true) || !expect_punct(ps, ';', "after method"))
			return;
		m->params = params.items;
		m->n_params = params.n;
		m->results = results.items;
		m->n_results = results.n;
		m->error_names = errs.items;
		m->n_errors = errs.n;
		m->has_since = a.has_since;
		m->since = a.since;
		m->requires_name = a.requires;
		m->idempotent = a.idempotent;
	}
	expect_punct(ps, '}', "to close the interface");
	ps->open_kind = NULL;
	d->u.iface.methods = methods.items;
	d->u.iface.n_methods = methods.n;
	d->u.iface.reserved = reserved.items;
	d->u.iface.n_reserved = reserved.n;
}

/* A carriage return not followed by a line feed (old Mac line endings, a
 * stray CR): an editor starts a line there, thothc did not, so every
 * diagnostic after it named another line than the one shown (a CR-only
 * file was one line: "cr.tidl:1:55").  Refused at the first, by the line
 * and column both agree on. */
static bool lone_cr(parser_t *ps)
{
	uint32_t line = 1, col = 1;
	for (const char *c = ps->s; c < ps->end; c++) {
		if (*c == '\r' && (c + 1 == ps->end || c[1] != '\n')) {
			tidl_loc_t at = { ps->file->path, line, col };
			tidl_diag(ps->prog, ps->file, TIDL_ERROR, at,
				  "a carriage return (CR) without a line feed after it: lines end in LF "
				  "or CRLF (save the file with those line endings)");
			ps->failed = true;
			return true;
		}
		if (*c == '\n')
			line++, col = 1;
		else
			col++;
	}
	return false;
}

void tidl_parse_file(parser_t *ps)
{
	tidl_file_t *f = ps->file;
	if (lone_cr(ps))
		return;
	tidl_lex(ps);
	if (!is_word(ps, "package")) {
		static const char *const package_word[] = { "package", NULL };
		syntax_error_near(ps, package_word, "expected 'package NAME;' at the start of the file");
		return;
	}
	f->package_loc = ps->tok.loc;
	tidl_lex(ps);
	if (ps->tok.kind != T_IDENT) {
		syntax_error(ps, "expected a package name");
		return;
	}
	tidl_loc_t name_loc = ps->tok.loc;
	char *pkg = parse_qname(ps, "expected a name after '.' in the package name", MAX_PACKAGE_LEN);
	if (!pkg)
		return;
	if (strlen(pkg) > MAX_PACKAGE_LEN) {
		tidl_diag(ps->prog, ps->file, TIDL_ERROR, name_loc,
		     "package name longer than %d characters", MAX_PACKAGE_LEN);
		ps->failed = true;
		return;
	}
	f->package = pkg;
	if (!expect_punct(ps, ';', "after the package name"))
		return;
	if (!is_word(ps, "version")) {
		static const char *const version_word[] = { "version", NULL };
		syntax_error_near(ps, version_word, "expected 'version MAJOR.MINOR;' after the package");
		return;
	}
	f->version_loc = ps->tok.loc;
	tidl_lex(ps);
	if (!parse_version(ps, &f->version) || !expect_punct(ps, ';', "after the version"))
		return;

	vec_t imports = { .size = sizeof(tidl_import_t) };
	vec_t decls = { .size = sizeof(tidl_decl_t *) };
	while (ps->tok.kind != T_EOF && !ps->failed) {
		if (!room_for(ps, &decls, "declarations in one file") ||
		    !room_for(ps, &imports, "imports in one file"))
			break;
		if (is_word(ps, "import")) {
			tidl_import_t *im = tidl_vec_push(ps->prog, &imports);
			im->loc = ps->tok.loc;
			tidl_lex(ps);
			if (ps->tok.kind != T_STRING) {
				syntax_error(ps, "expected a file name in quotes after 'import'");
				return;
			}
			im->path = tidl_pstrndup(ps->prog, ps->tok.text + 1, ps->tok.len - 2);
			tidl_lex(ps);
			if (!expect_punct(ps, ';', "after import"))
				return;
		} else if (is_word(ps, "feature")) {
			parse_feature(ps, &decls);
		} else if (is_word(ps, "error")) {
			parse_error_decl(ps, &decls);
		} else if (is_word(ps, "strict")) {
			tidl_lex(ps);
			if (!is_word(ps, "enum")) {
				syntax_error(ps, "expected 'enum' after 'strict'");
				return;
			}
			parse_enum(ps, &decls, true);
		} else if (is_word(ps, "enum")) {
			parse_enum(ps, &decls, false);
		} else if (is_word(ps, "struct")) {
			parse_struct(ps, &decls);
		} else if (is_word(ps, "interface")) {
			parse_interface(ps, &decls);
		} else {
			static const char *const decl_words[] = { "import", "feature", "error", "enum", "struct",
								  "interface", "strict", NULL };
			syntax_error_near(ps, decl_words,
					  "expected a declaration (import, feature, error, enum, struct, interface)");
			return;
		}
	}
	f->imports = imports.items;
	f->n_imports = imports.n;
	f->decls = decls.items;
	f->n_decls = decls.n;
	/* a failed declaration may lack a name: drop such entries */
	size_t k = 0;
	for (size_t i = 0; i < f->n_decls; i++)
		if (f->decls[i]->name)
			f->decls[k++] = f->decls[i];
	f->n_decls = k;
}
