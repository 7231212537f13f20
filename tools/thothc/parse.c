/*
 * parse.c - the .tidl front end: lexer, parser and semantic checks,
 * producing the tree declared in ast.h (docs/IDL.md has the grammar).
 *
 * Robustness rules, because the fuzzer feeds this arbitrary bytes: every
 * read of the source is bounds-checked, recursion is limited (type nesting
 * <= 16, imports <= 64 deep), files are <= 4 MiB, and after the first syntax
 * error in a file parsing of that file stops (semantic errors are all
 * collected).  All memory comes from the program's arena.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ast.h"

#define MAX_FILE_SIZE  (4u << 20)
#define MAX_TYPE_DEPTH 16
#define MAX_IMPORT_DEPTH 64
#define MAX_NAME_LEN   64      /* identifiers; keeps generated C names bounded */
#define MAX_PACKAGE_LEN 128
#define MAX_MEMBERS    4096    /* declarations per file, members per declaration: keeps
				* the quadratic duplicate checks fast on any input */
#define MAX_DIAGS      200     /* diagnostics kept; later ones are counted, not stored */

/* ---- arena ------------------------------------------------------------- */

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
} chunk_t;

struct tidl_program {
	chunk_t *chunks;
	tidl_diag_t *diags;
	size_t n_diags, cap_diags, n_errors;
	tidl_file_t **files;
	size_t n_files, cap_files;
	const char **loading;           /* import stack, for cycle reports */
	size_t n_loading;
};

static void *palloc(tidl_program_t *p, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	chunk_t *c = p->chunks;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		c = malloc(sizeof *c + cap);
		if (!c)
			abort();
		c->next = p->chunks;
		c->used = 0;
		c->cap = cap;
		p->chunks = c;
	}
	void *r = c->data + c->used;
	c->used += n;
	memset(r, 0, n);
	return r;
}

static char *pstrndup(tidl_program_t *p, const char *s, size_t n)
{
	char *r = palloc(p, n + 1);
	memcpy(r, s, n);
	r[n] = 0;
	return r;
}

/* Growable arrays in the arena: push copies the element. */
typedef struct vec {
	void *items;
	size_t n, cap, size;
} vec_t;

static void *vec_push(tidl_program_t *p, vec_t *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		void *items = palloc(p, cap * v->size);
		if (v->n)
			memcpy(items, v->items, v->n * v->size);
		v->items = items;
		v->cap = cap;
	}
	return (char *)v->items + v->size * v->n++;
}

tidl_program_t *tidl_program_new(void)
{
	return calloc(1, sizeof(tidl_program_t));
}

void tidl_program_free(tidl_program_t *p)
{
	if (!p)
		return;
	for (chunk_t *c = p->chunks, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	free(p->diags);
	free(p->files);
	free(p->loading);
	free(p);
}

/* ---- diagnostics --------------------------------------------------------- */

static void line_of(const tidl_file_t *f, uint32_t line, const char **text, size_t *len)
{
	*text = NULL;
	*len = 0;
	if (!f || !f->source || line == 0)
		return;
	const char *s = f->source, *end = s + f->source_len;
	for (uint32_t l = 1; l < line && s < end; s++)
		if (*s == '\n')
			l++;
	const char *e = s;
	while (e < end && *e != '\n')
		e++;
	*text = s;
	*len = (size_t)(e - s);
}

static void vdiag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
		  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void vdiag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
		  const char *fmt, va_list ap)
{
	if (sev == TIDL_ERROR)
		p->n_errors++;
	if (p->n_diags > MAX_DIAGS)
		return;
	if (p->n_diags == MAX_DIAGS) {
		sev = TIDL_NOTE;        /* one last entry says that more were dropped */
		fmt = "too many diagnostics; the rest are not shown";
		loc = (tidl_loc_t){ loc.file, 0, 0 };
	}
	if (p->n_diags == p->cap_diags) {
		size_t cap = p->cap_diags ? p->cap_diags * 2 : 16;
		tidl_diag_t *d = realloc(p->diags, cap * sizeof *d);
		if (!d)
			abort();
		p->diags = d;
		p->cap_diags = cap;
	}
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	tidl_diag_t *d = &p->diags[p->n_diags++];
	d->severity = sev;
	d->loc = loc;
	d->message = pstrndup(p, buf, strlen(buf));
	line_of(f, loc.line, &d->line_text, &d->line_len);
}

static void diag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void diag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(p, f, sev, loc, fmt, ap);
	va_end(ap);
}

void tidl_program_add_diag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev,
			   tidl_loc_t loc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdiag(p, f, sev, loc, fmt, ap);
	va_end(ap);
}

size_t tidl_program_diag_count(const tidl_program_t *p) { return p->n_diags; }
const tidl_diag_t *tidl_program_diag(const tidl_program_t *p, size_t i) { return i < p->n_diags ? &p->diags[i] : NULL; }
size_t tidl_program_error_count(const tidl_program_t *p) { return p->n_errors; }

void tidl_program_print_diags(const tidl_program_t *p, FILE *out)
{
	static const char *const sev[] = { "error", "warning", "note" };
	for (size_t i = 0; i < p->n_diags; i++) {
		const tidl_diag_t *d = &p->diags[i];
		if (d->loc.file && d->loc.line)
			fprintf(out, "%s:%u:%u: %s: %s\n", d->loc.file, d->loc.line, d->loc.col,
				sev[d->severity], d->message);
		else
			fprintf(out, "%s%s%s: %s\n", d->loc.file ? d->loc.file : "thothc",
				d->loc.file ? ": " : "", sev[d->severity], d->message);
		if (d->line_text) {
			fprintf(out, "  %.*s\n  ", (int)d->line_len, d->line_text);
			for (uint32_t c = 1; c < d->loc.col && c <= d->line_len; c++)
				fputc(d->line_text[c - 1] == '\t' ? '\t' : ' ', out);
			fputs("^\n", out);
		}
	}
}

/* ---- lexer ---------------------------------------------------------------- */

typedef enum tok_kind {
	T_EOF, T_IDENT, T_INT, T_VERSION, T_STRING, T_PUNCT, T_ARROW, T_BAD,
} tok_kind_t;

typedef struct tok {
	tok_kind_t kind;
	const char *text;
	size_t len;
	char punct;
	uint64_t value;                 /* T_INT */
	bool overflow;
	tidl_version_t version;         /* T_VERSION */
	tidl_loc_t loc;
} tok_t;

typedef struct parser {
	tidl_program_t *prog;
	tidl_file_t *file;
	const char *s, *end, *cur;
	uint32_t line, col;
	tok_t tok;
	bool failed;
} parser_t;

static void advance_char(parser_t *ps)
{
	if (*ps->cur == '\n') {
		ps->line++;
		ps->col = 1;
	} else {
		ps->col++;
	}
	ps->cur++;
}

static bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static void lex(parser_t *ps)
{
	tok_t *t = &ps->tok;
	for (;;) {
		while (ps->cur < ps->end && (*ps->cur == ' ' || *ps->cur == '\t' || *ps->cur == '\n' ||
					     *ps->cur == '\r'))
			advance_char(ps);
		if (ps->cur + 1 < ps->end && ps->cur[0] == '/' && ps->cur[1] == '/') {
			while (ps->cur < ps->end && *ps->cur != '\n')
				advance_char(ps);
			continue;
		}
		if (ps->cur + 1 < ps->end && ps->cur[0] == '/' && ps->cur[1] == '*') {
			tidl_loc_t start = { ps->file->path, ps->line, ps->col };
			advance_char(ps);
			advance_char(ps);
			while (ps->cur + 1 < ps->end && !(ps->cur[0] == '*' && ps->cur[1] == '/'))
				advance_char(ps);
			if (ps->cur + 1 >= ps->end) {
				t->kind = T_BAD;
				t->loc = start;
				t->text = "unterminated comment";
				ps->cur = ps->end;
				return;
			}
			advance_char(ps);
			advance_char(ps);
			continue;
		}
		break;
	}
	memset(t, 0, sizeof *t);
	t->loc = (tidl_loc_t){ ps->file->path, ps->line, ps->col };
	t->text = ps->cur;
	if (ps->cur >= ps->end) {
		t->kind = T_EOF;
		return;
	}
	char c = *ps->cur;
	if (is_ident_start(c)) {
		while (ps->cur < ps->end && (is_ident_start(*ps->cur) || is_digit(*ps->cur)))
			advance_char(ps);
		t->kind = T_IDENT;
		if ((size_t)(ps->cur - t->text) > MAX_NAME_LEN) {
			t->kind = T_BAD;
			t->text = "name longer than 64 characters";
			return;
		}
	} else if (is_digit(c)) {
		uint64_t v = 0;
		bool hex = ps->cur + 1 < ps->end && c == '0' && (ps->cur[1] == 'x' || ps->cur[1] == 'X');
		if (hex) {
			advance_char(ps);
			advance_char(ps);
		}
		const char *digits = ps->cur;
		while (ps->cur < ps->end) {
			char d = *ps->cur;
			unsigned dv;
			if (is_digit(d))
				dv = (unsigned)(d - '0');
			else if (hex && d >= 'a' && d <= 'f')
				dv = (unsigned)(d - 'a' + 10);
			else if (hex && d >= 'A' && d <= 'F')
				dv = (unsigned)(d - 'A' + 10);
			else
				break;
			uint64_t base = hex ? 16 : 10;
			if (v > (UINT64_MAX - dv) / base)
				t->overflow = true;
			v = v * base + dv;
			advance_char(ps);
		}
		if (hex && ps->cur == digits) {
			t->kind = T_BAD;
			t->text = "hexadecimal number without digits";
			return;
		}
		t->kind = T_INT;
		t->value = v;
		/* major.minor */
		if (!hex && ps->cur + 1 < ps->end && *ps->cur == '.' && is_digit(ps->cur[1])) {
			advance_char(ps);
			uint64_t minor = 0;
			while (ps->cur < ps->end && is_digit(*ps->cur)) {
				if (minor < 100000)
					minor = minor * 10 + (uint64_t)(*ps->cur - '0');
				advance_char(ps);
			}
			t->kind = T_VERSION;
			if (v > 255 || minor > 255)
				t->overflow = true;
			t->version = (tidl_version_t){ (uint16_t)(v > 255 ? 255 : v),
						       (uint16_t)(minor > 255 ? 255 : minor) };
		}
	} else if (c == '"') {
		advance_char(ps);
		while (ps->cur < ps->end && *ps->cur != '"' && *ps->cur != '\n')
			advance_char(ps);
		if (ps->cur >= ps->end || *ps->cur != '"') {
			t->kind = T_BAD;
			t->text = "unterminated string";
			return;
		}
		advance_char(ps);
		t->kind = T_STRING;
	} else if (c == '-' && ps->cur + 1 < ps->end && ps->cur[1] == '>') {
		advance_char(ps);
		advance_char(ps);
		t->kind = T_ARROW;
	} else if (c != '\0' && strchr(";:.,{}()<>=@|-", c)) {   /* strchr finds the NUL too */
		advance_char(ps);
		t->kind = T_PUNCT;
		t->punct = c;
	} else {
		advance_char(ps);
		t->kind = T_BAD;
		t->text = NULL;
		t->punct = c;
		return;
	}
	t->len = (size_t)(ps->cur - t->text);
}

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
	case T_BAD: break;
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
			diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "%s", ps->tok.text);
		else if ((unsigned char)ps->tok.punct >= 0x20 && (unsigned char)ps->tok.punct < 0x7f)
			diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "unexpected character '%c'", ps->tok.punct);
		else
			diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "unexpected byte 0x%02x",
			     (unsigned char)ps->tok.punct);
	} else {
		char d[64];
		diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "%s, found %s", buf,
		     tok_desc(&ps->tok, d, sizeof d));
	}
	ps->failed = true;
}

/* False (and a syntax error) once a list already holds MAX_MEMBERS entries. */
static bool room_for(parser_t *ps, const vec_t *v, const char *what)
{
	if (v->n < MAX_MEMBERS)
		return true;
	diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "more than %d %s", MAX_MEMBERS, what);
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
	lex(ps);
	return true;
}

static bool expect_punct(parser_t *ps, char c, const char *after)
{
	if (accept_punct(ps, c))
		return true;
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
	const char *r = pstrndup(ps->prog, ps->tok.text, ps->tok.len);
	lex(ps);
	return r;
}

static bool expect_uint(parser_t *ps, const char *what, uint64_t *v, tidl_loc_t *loc)
{
	if (ps->tok.kind != T_INT) {
		syntax_error(ps, "expected %s", what);
		return false;
	}
	if (ps->tok.overflow) {
		diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "number too large");
		ps->failed = true;
		return false;
	}
	*v = ps->tok.value;
	if (loc)
		*loc = ps->tok.loc;
	lex(ps);
	return true;
}

static bool parse_version(parser_t *ps, tidl_version_t *v)
{
	if (ps->tok.kind == T_INT && !ps->tok.overflow && ps->tok.value <= 255) {
		/* "version 2;" means 2.0 */
		*v = (tidl_version_t){ (uint16_t)ps->tok.value, 0 };
		lex(ps);
		return true;
	}
	if (ps->tok.kind != T_VERSION) {
		syntax_error(ps, "expected a version MAJOR.MINOR");
		return false;
	}
	if (ps->tok.overflow) {
		diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
		     "version components must be 0..255");
		ps->failed = true;
		return false;
	}
	*v = ps->tok.version;
	lex(ps);
	return true;
}

/* Annotations: @since(M.m) and @requires(feature), any order, each once. */
typedef struct annots {
	bool has_since;
	tidl_version_t since;
	tidl_loc_t since_loc;
	const char *requires;
	tidl_loc_t requires_loc;
} annots_t;

static bool parse_annotations(parser_t *ps, annots_t *a, bool allow_requires)
{
	memset(a, 0, sizeof *a);
	while (is_punct(ps, '@')) {
		lex(ps);
		tidl_loc_t loc = ps->tok.loc;
		if (is_word(ps, "since")) {
			lex(ps);
			if (a->has_since) {
				diag(ps->prog, ps->file, TIDL_ERROR, loc, "duplicate @since");
				ps->failed = true;
				return false;
			}
			if (!expect_punct(ps, '(', "after @since") || !parse_version(ps, &a->since) ||
			    !expect_punct(ps, ')', "after the version"))
				return false;
			a->has_since = true;
			a->since_loc = loc;
		} else if (is_word(ps, "requires")) {
			lex(ps);
			if (!allow_requires) {
				diag(ps->prog, ps->file, TIDL_ERROR, loc, "@requires is only allowed on methods");
				ps->failed = true;
				return false;
			}
			if (a->requires) {
				diag(ps->prog, ps->file, TIDL_ERROR, loc, "duplicate @requires");
				ps->failed = true;
				return false;
			}
			if (!expect_punct(ps, '(', "after @requires"))
				return false;
			a->requires_loc = ps->tok.loc;
			a->requires = expect_ident(ps, "a feature name", NULL);
			if (!a->requires || !expect_punct(ps, ')', "after the feature name"))
				return false;
		} else {
			syntax_error(ps, "expected an annotation (@since or @requires)");
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
		diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc, "type nested deeper than %d levels",
		     MAX_TYPE_DEPTH);
		ps->failed = true;
		return NULL;
	}
	if (ps->tok.kind != T_IDENT) {
		syntax_error(ps, "expected a type");
		return NULL;
	}
	tidl_type_t *t = palloc(ps->prog, sizeof *t);
	t->loc = ps->tok.loc;
	if (is_word(ps, "list")) {
		lex(ps);
		if (!expect_punct(ps, '<', "after 'list'"))
			return NULL;
		t->kind = TIDL_LIST;
		t->elem = parse_type(ps, depth + 1);
		if (!t->elem || !expect_punct(ps, '>', "to close 'list<'"))
			return NULL;
		return t;
	}
	if (is_word(ps, "optional")) {
		diag(ps->prog, ps->file, TIDL_ERROR, ps->tok.loc,
		     "'optional' is only allowed on fields and parameters, not inside a type");
		ps->failed = true;
		return NULL;
	}
	for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
		if (is_word(ps, builtins[i].name)) {
			t->kind = builtins[i].kind;
			lex(ps);
			return t;
		}
	}
	/* a (possibly qualified) name */
	const char *start = ps->tok.text;
	const char *stop = ps->tok.text + ps->tok.len;
	lex(ps);
	while (is_punct(ps, '.')) {
		lex(ps);
		if (ps->tok.kind != T_IDENT) {
			syntax_error(ps, "expected a name after '.'");
			return NULL;
		}
		stop = ps->tok.text + ps->tok.len;
		lex(ps);
	}
	t->kind = TIDL_STRUCT;          /* resolved by sema */
	t->ref_name = pstrndup(ps->prog, start, (size_t)(stop - start));
	return t;
}

static tidl_decl_t *new_decl(parser_t *ps, tidl_decl_kind_t kind, vec_t *decls)
{
	tidl_decl_t *d = palloc(ps->prog, sizeof *d);
	d->kind = kind;
	d->file = ps->file;
	*(tidl_decl_t **)vec_push(ps->prog, decls) = d;
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
	lex(ps);
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
	lex(ps);
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
	lex(ps);
	do {
		if (!room_for(ps, out, what))
			return false;
		tidl_reserved_t *r = vec_push(ps->prog, out);
		r->loc = ps->tok.loc;
		bool neg = neg_ok && accept_punct(ps, '-');
		uint64_t v;
		if (!expect_uint(ps, neg_ok ? "a value to reserve" : "an ordinal to reserve", &v, NULL))
			return false;
		if (neg && v > (uint64_t)INT64_MAX + 1) {
			diag(ps->prog, ps->file, TIDL_ERROR, r->loc, "number too large");
			ps->failed = true;
			return false;
		}
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
	lex(ps);
	size_t first = out->n;
	for (;;) {
		if (!room_for(ps, out, "reserved ordinals in one struct"))
			return false;
		tidl_field_t *f = vec_push(ps->prog, out);
		uint64_t ord;
		if (!expect_uint(ps, "an ordinal to reserve", &ord, &f->loc))
			return false;
		f->ordinal = ord > UINT32_MAX ? UINT32_MAX : (uint32_t)ord;
		if (is_punct(ps, ':') && out->n - first > 1) {
			syntax_error(ps, "a reserved slot with a type takes one ordinal: expected ';'");
			return false;
		}
		if (accept_punct(ps, ':')) {
			if (is_word(ps, "optional")) {
				f->optional = true;
				lex(ps);
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
	lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "an enum name", &d->loc)) ||
	    !expect_punct(ps, ':', "after the enum name (enums need an underlying type, e.g. ': u8')"))
		return;
	tidl_type_t *ut = parse_type(ps, 0);
	if (!ut)
		return;
	if (ut->kind < TIDL_U8 || ut->kind > TIDL_I64) {
		diag(ps->prog, ps->file, TIDL_ERROR, ut->loc,
		     "an enum's underlying type must be an integer type (u8..u64, i8..i64)");
		ps->failed = true;
		return;
	}
	d->u.enum_.underlying = ut->kind;
	if (!parse_annotations(ps, &a, false) || !expect_punct(ps, '{', "to open the enum"))
		return;
	set_since(d, &a);
	vec_t values = { .size = sizeof(tidl_enum_value_t) };
	vec_t reserved = { .size = sizeof(tidl_reserved_t) };
	while (!is_punct(ps, '}') && !ps->failed) {
		if (is_word(ps, "reserved")) {
			/* "reserved = 3;" is a value named reserved: look one token ahead */
			parser_t ahead = *ps;
			lex(&ahead);
			if (!(ahead.tok.kind == T_PUNCT && ahead.tok.punct == '=')) {
				if (!parse_reserved_list(ps, &reserved, true, "reserved values in one enum"))
					return;
				continue;
			}
		}
		if (!room_for(ps, &values, "values in one enum"))
			return;
		tidl_enum_value_t *v = vec_push(ps->prog, &values);
		if (!(v->name = expect_ident(ps, "an enum value name or '}'", &v->loc)) ||
		    !expect_punct(ps, '=', "after the enum value name"))
			return;
		bool neg = accept_punct(ps, '-');
		uint64_t val;
		tidl_loc_t vloc = ps->tok.loc;
		if (!expect_uint(ps, "an enum value", &val, NULL))
			return;
		if (neg && val > (uint64_t)INT64_MAX + 1) {
			diag(ps->prog, ps->file, TIDL_ERROR, vloc, "number too large");
			ps->failed = true;
			return;
		}
		v->value = neg ? (uint64_t)(-(int64_t)(val - 1) - 1) : val;
		if (neg && val == 0)
			v->value = 0;
		if (neg && val != 0 && d->u.enum_.underlying < TIDL_I8) {
			diag(ps->prog, ps->file, TIDL_ERROR, vloc,
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
	d->u.enum_.values = values.items;
	d->u.enum_.n_values = values.n;
	d->u.enum_.reserved = reserved.items;
	d->u.enum_.n_reserved = reserved.n;
}

/* A field: "N: [optional] TYPE NAME [annotations];" */
static bool parse_field(parser_t *ps, vec_t *fields)
{
	tidl_field_t *f = vec_push(ps->prog, fields);
	uint64_t ord;
	annots_t a;
	if (!expect_uint(ps, "a field ordinal or '}'", &ord, &f->loc) ||
	    !expect_punct(ps, ':', "after the field ordinal"))
		return false;
	f->ordinal = ord > UINT32_MAX ? UINT32_MAX : (uint32_t)ord;
	if (is_word(ps, "optional")) {
		f->optional = true;
		lex(ps);
	}
	if (!(f->type = parse_type(ps, 0)) || !(f->name = expect_ident(ps, "a field name", NULL)) ||
	    !parse_annotations(ps, &a, false) || !expect_punct(ps, ';', "after field"))
		return false;
	f->has_since = a.has_since;
	f->since = a.since;
	return true;
}

static void parse_struct(parser_t *ps, vec_t *decls)
{
	tidl_decl_t *d = new_decl(ps, TIDL_DECL_STRUCT, decls);
	d->loc = ps->tok.loc;
	lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "a struct name", &d->loc)) || !parse_annotations(ps, &a, false) ||
	    !expect_punct(ps, '{', "to open the struct"))
		return;
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
		tidl_field_t *f = vec_push(ps->prog, out);
		f->ordinal = (uint32_t)out->n;
		f->loc = ps->tok.loc;
		if (is_word(ps, "optional")) {
			f->optional = true;
			lex(ps);
		}
		annots_t a;
		if (!(f->type = parse_type(ps, 0)) ||
		    !(f->name = expect_ident(ps, "a parameter name", NULL)) ||
		    !parse_annotations(ps, &a, false))
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
	lex(ps);
	annots_t a;
	if (!(d->name = expect_ident(ps, "an interface name", &d->loc)) ||
	    !parse_annotations(ps, &a, false) || !expect_punct(ps, '{', "to open the interface"))
		return;
	set_since(d, &a);
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
		tidl_method_t *m = vec_push(ps->prog, &methods);
		uint64_t ord;
		if (!expect_uint(ps, "a method ordinal or '}'", &ord, &m->loc) ||
		    !expect_punct(ps, ':', "after the method ordinal"))
			return;
		m->ordinal = ord > UINT32_MAX ? UINT32_MAX : (uint32_t)ord;
		if (is_word(ps, "oneway")) {
			m->oneway = true;
			lex(ps);
		}
		vec_t params = { .size = sizeof(tidl_field_t) }, results = { .size = sizeof(tidl_field_t) };
		if (!(m->name = expect_ident(ps, "a method name", NULL)) || !parse_params(ps, &params))
			return;
		if (ps->tok.kind == T_ARROW) {
			tidl_loc_t arrow = ps->tok.loc;
			lex(ps);
			if (!parse_params(ps, &results))
				return;
			if (m->oneway) {
				diag(ps->prog, ps->file, TIDL_ERROR, arrow,
				     "oneway method '%s' cannot have results", m->name);
			}
		}
		vec_t errs = { .size = sizeof(const char *) };
		if (is_word(ps, "error")) {
			tidl_loc_t eloc = ps->tok.loc;
			lex(ps);
			do {
				if (!room_for(ps, &errs, "errors in one method"))
					return;
				const char *e = expect_ident(ps, "an error name", NULL);
				if (!e)
					return;
				*(const char **)vec_push(ps->prog, &errs) = e;
			} while (accept_punct(ps, '|'));
			if (m->oneway)
				diag(ps->prog, ps->file, TIDL_ERROR, eloc,
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
	}
	expect_punct(ps, '}', "to close the interface");
	d->u.iface.methods = methods.items;
	d->u.iface.n_methods = methods.n;
	d->u.iface.reserved = reserved.items;
	d->u.iface.n_reserved = reserved.n;
}

/* ---- semantic checks --------------------------------------------------------- */

static int cmp_field(const void *a, const void *b)
{
	const tidl_field_t *x = a, *y = b;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static int cmp_method(const void *a, const void *b)
{
	const tidl_method_t *x = a, *y = b;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static tidl_decl_t *find_local(tidl_file_t *f, const char *name)
{
	for (size_t i = 0; i < f->n_decls; i++)
		if (strcmp(f->decls[i]->name ? f->decls[i]->name : "", name) == 0)
			return f->decls[i];
	return NULL;
}

tidl_decl_t *tidl_file_find_decl(tidl_file_t *file, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot) {
		size_t plen = (size_t)(dot - name);
		if (strlen(file->package) == plen && strncmp(file->package, name, plen) == 0)
			return find_local(file, dot + 1);
		for (size_t i = 0; i < file->n_imports; i++) {
			tidl_file_t *imp = file->imports[i].file;
			if (imp && strlen(imp->package) == plen && strncmp(imp->package, name, plen) == 0) {
				tidl_decl_t *d = find_local(imp, dot + 1);
				if (d)
					return d;
			}
		}
		return NULL;
	}
	tidl_decl_t *d = find_local(file, name);
	if (d)
		return d;
	for (size_t i = 0; i < file->n_imports; i++)
		if (file->imports[i].file && (d = find_local(file->imports[i].file, name)))
			return d;
	return NULL;
}

static void check_since(tidl_program_t *p, tidl_file_t *f, bool has, tidl_version_t v,
			tidl_loc_t loc, const char *what)
{
	if (has && tidl_version_cmp(v, f->version) > 0)
		diag(p, f, TIDL_ERROR, loc, "@since(%u.%u) on %s is newer than the file's version %u.%u",
		     v.major, v.minor, what, f->version.major, f->version.minor);
}

static void resolve_type(tidl_program_t *p, tidl_file_t *f, tidl_type_t *t)
{
	if (t->kind == TIDL_LIST) {
		resolve_type(p, f, t->elem);
		return;
	}
	if (!t->ref_name)
		return;
	tidl_decl_t *d = tidl_file_find_decl(f, t->ref_name);
	if (!d) {
		diag(p, f, TIDL_ERROR, t->loc, "unknown type '%s'", t->ref_name);
		return;
	}
	if (d->file != f && !strchr(t->ref_name, '.')) {
		/* an unqualified name from an import must be unique across the imports */
		for (size_t i = 0; i < f->n_imports; i++) {
			tidl_file_t *imp = f->imports[i].file;
			tidl_decl_t *other = imp && imp != d->file ? find_local(imp, t->ref_name) : NULL;
			if (other && strcmp(imp->package, d->file->package) != 0) {
				diag(p, f, TIDL_ERROR, t->loc,
				     "ambiguous type '%s': declared in '%s' and '%s'; write %s.%s",
				     t->ref_name, d->file->package, imp->package, d->file->package,
				     t->ref_name);
				return;
			}
		}
	}
	if (d->kind == TIDL_DECL_ENUM)
		t->kind = TIDL_ENUM;
	else if (d->kind == TIDL_DECL_STRUCT)
		t->kind = TIDL_STRUCT;
	else {
		diag(p, f, TIDL_ERROR, t->loc, "'%s' is not a type (it is %s)", t->ref_name,
		     d->kind == TIDL_DECL_FEATURE ? "a feature" :
		     d->kind == TIDL_DECL_ERROR ? "an error" : "an interface");
		return;
	}
	t->decl = d;
}

static void check_fields(tidl_program_t *p, tidl_file_t *f, tidl_field_t *fields, size_t n,
			 const char *owner, bool positional)
{
	for (size_t i = 0; i < n; i++) {
		resolve_type(p, f, fields[i].type);
		check_since(p, f, fields[i].has_since, fields[i].since, fields[i].loc, "a field");
		for (size_t k = 0; k < i; k++) {
			if (strcmp(fields[k].name, fields[i].name) == 0)
				diag(p, f, TIDL_ERROR, fields[i].loc, "duplicate name '%s' in %s (first at line %u)",
				     fields[i].name, owner, fields[k].loc.line);
			if (!positional && fields[k].ordinal == fields[i].ordinal)
				diag(p, f, TIDL_ERROR, fields[i].loc,
				     "duplicate ordinal %u in %s (first used at %s:%u:%u)", fields[i].ordinal,
				     owner, fields[k].loc.file, fields[k].loc.line, fields[k].loc.col);
		}
	}
	if (positional)
		return;
	/* gaps are allowed (docs/WIRE.md: a gap has no slot); 0 is not */
	for (size_t i = 0; i < n; i++)
		if (fields[i].ordinal == 0)
			diag(p, f, TIDL_ERROR, fields[i].loc, "ordinals start at 1 in %s", owner);
	if (n)
		qsort(fields, n, sizeof *fields, cmp_field);
}

/* Reserved ordinals of a struct: >= 1, unique, not used by a field; a
 * typed reservation's type resolves like a field's. */
static void check_struct_reserved(tidl_program_t *p, tidl_file_t *f, tidl_decl_t *d)
{
	tidl_field_t *res = d->u.struct_.reserved;
	size_t n = d->u.struct_.n_reserved;
	for (size_t i = 0; i < n; i++) {
		if (res[i].type)
			resolve_type(p, f, res[i].type);
		if (res[i].ordinal == 0)
			diag(p, f, TIDL_ERROR, res[i].loc, "ordinals start at 1 in struct '%s'", d->name);
		bool twice = false;
		for (size_t k = 0; k < i && !twice; k++)
			if (res[k].ordinal == res[i].ordinal) {
				diag(p, f, TIDL_ERROR, res[i].loc,
				     "ordinal %u of struct '%s' is reserved twice (first at line %u)",
				     res[i].ordinal, d->name, res[k].loc.line);
				twice = true;
			}
		for (size_t k = 0; k < d->u.struct_.n_fields && !twice; k++) {
			const tidl_field_t *fl = &d->u.struct_.fields[k];
			if (fl->ordinal == res[i].ordinal)
				diag(p, f, TIDL_ERROR, fl->loc,
				     "field '%s' uses ordinal %u, which struct '%s' reserves at line %u",
				     fl->name, fl->ordinal, d->name, res[i].loc.line);
		}
	}
	if (n)
		qsort(res, n, sizeof *res, cmp_field);
}

static int cmp_reserved(const void *a, const void *b)
{
	const tidl_reserved_t *x = a, *y = b;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* Reserved method ordinals or enum values: unique among themselves (what
 * they are checked against is the caller's). */
static void check_reserved_unique(tidl_program_t *p, tidl_file_t *f, tidl_reserved_t *res,
				  size_t n, const char *what, const char *owner, bool is_signed)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < i; k++)
			if (res[k].value == res[i].value) {
				if (is_signed)
					diag(p, f, TIDL_ERROR, res[i].loc,
					     "%s %lld of %s is reserved twice (first at line %u)", what,
					     (long long)res[i].value, owner, res[k].loc.line);
				else
					diag(p, f, TIDL_ERROR, res[i].loc,
					     "%s %llu of %s is reserved twice (first at line %u)", what,
					     (unsigned long long)res[i].value, owner, res[k].loc.line);
				break;
			}
}

/*
 * By-value containment cycles.  A struct that holds itself through struct
 * fields (required or optional; both are stored inline) has no finite
 * encoding; through list<> it is fine.  Imports are acyclic, so such a
 * cycle lies within one file: Tarjan's strongly connected components over
 * the file's structs, edges = by-value struct fields.  One error per cycle,
 * at its first struct in source order.
 */
typedef struct scc_state {
	tidl_decl_t **nodes;            /* the file's structs, in source order */
	size_t n;
	struct scc_key { const tidl_decl_t *decl; size_t node; } *by_addr;  /* sorted by decl */
	size_t *index, *low, *comp;     /* per node; index 0 = unvisited */
	size_t *stack, depth, next_index, n_comps;
	bool *on_stack;
} scc_state_t;

static int cmp_scc_key(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct scc_key *)a)->decl;
	uintptr_t y = (uintptr_t)((const struct scc_key *)b)->decl;
	return x < y ? -1 : x > y;
}

static size_t scc_node(const scc_state_t *s, const tidl_decl_t *d)
{
	struct scc_key key = { d, 0 };
	const struct scc_key *k = s->n ? bsearch(&key, s->by_addr, s->n, sizeof key, cmp_scc_key) : NULL;
	return k ? k->node : SIZE_MAX;  /* not found: an imported struct cannot close a cycle */
}

static size_t by_value_target(const scc_state_t *s, const tidl_field_t *f)
{
	if (f->type->kind != TIDL_STRUCT || !f->type->decl)
		return SIZE_MAX;
	return scc_node(s, f->type->decl);
}

static void scc_visit(scc_state_t *s, size_t v)
{
	s->index[v] = s->low[v] = ++s->next_index;
	s->stack[s->depth++] = v;
	s->on_stack[v] = true;
	const tidl_decl_t *d = s->nodes[v];
	for (size_t i = 0; i < d->u.struct_.n_fields; i++) {
		size_t w = by_value_target(s, &d->u.struct_.fields[i]);
		if (w == SIZE_MAX)
			continue;
		if (!s->index[w]) {
			scc_visit(s, w);
			if (s->low[w] < s->low[v])
				s->low[v] = s->low[w];
		} else if (s->on_stack[w] && s->index[w] < s->low[v]) {
			s->low[v] = s->index[w];
		}
	}
	if (s->low[v] != s->index[v])
		return;
	size_t w, comp = s->n_comps++;
	do {
		w = s->stack[--s->depth];
		s->on_stack[w] = false;
		s->comp[w] = comp;
	} while (w != v);
}

static void check_recursion(tidl_program_t *p, tidl_file_t *f)
{
	scc_state_t s = { 0 };
	size_t cap = f->n_decls ? f->n_decls : 1;
	s.nodes = calloc(cap, sizeof *s.nodes);
	s.index = calloc(cap, sizeof *s.index);
	s.low = calloc(cap, sizeof *s.low);
	s.comp = calloc(cap, sizeof *s.comp);
	s.stack = calloc(cap, sizeof *s.stack);
	s.on_stack = calloc(cap, sizeof *s.on_stack);
	s.by_addr = calloc(cap, sizeof *s.by_addr);
	bool *reported = calloc(cap, sizeof *reported);
	if (!s.nodes || !s.index || !s.low || !s.comp || !s.stack || !s.on_stack || !s.by_addr ||
	    !reported)
		abort();
	for (size_t i = 0; i < f->n_decls; i++)
		if (f->decls[i]->kind == TIDL_DECL_STRUCT) {
			s.by_addr[s.n] = (struct scc_key){ f->decls[i], s.n };
			s.nodes[s.n++] = f->decls[i];
		}
	if (s.n)
		qsort(s.by_addr, s.n, sizeof *s.by_addr, cmp_scc_key);
	for (size_t v = 0; v < s.n; v++)
		if (!s.index[v])
			scc_visit(&s, v);       /* depth <= MAX_MEMBERS structs */
	for (size_t v = 0; v < s.n; v++) {
		const tidl_decl_t *d = s.nodes[v];
		for (size_t i = 0; i < d->u.struct_.n_fields && !reported[s.comp[v]]; i++) {
			size_t w = by_value_target(&s, &d->u.struct_.fields[i]);
			if (w == SIZE_MAX || s.comp[w] != s.comp[v])
				continue;
			reported[s.comp[v]] = true;
			diag(p, f, TIDL_ERROR, d->loc,
			     "recursive struct '%s' (through field '%s'); use a list", d->name,
			     d->u.struct_.fields[i].name);
		}
	}
	free(s.nodes);
	free(s.index);
	free(s.low);
	free(s.comp);
	free(s.stack);
	free(s.on_stack);
	free(s.by_addr);
	free(reported);
}

static bool fits(tidl_kind_t k, uint64_t v)
{
	int64_t s = (int64_t)v;
	switch (k) {
	case TIDL_U8: return v <= UINT8_MAX;
	case TIDL_U16: return v <= UINT16_MAX;
	case TIDL_U32: return v <= UINT32_MAX;
	case TIDL_U64: return true;
	case TIDL_I8: return s >= INT8_MIN && s <= INT8_MAX;
	case TIDL_I16: return s >= INT16_MIN && s <= INT16_MAX;
	case TIDL_I32: return s >= INT32_MIN && s <= INT32_MAX;
	case TIDL_I64: return true;
	default: return false;
	}
}

static void sema_file(tidl_program_t *p, tidl_file_t *f)
{
	for (size_t i = 0; i < f->n_decls; i++) {
		tidl_decl_t *d = f->decls[i];
		for (size_t k = 0; k < i; k++)
			if (strcmp(f->decls[k]->name, d->name) == 0) {
				diag(p, f, TIDL_ERROR, d->loc, "'%s' is already declared at line %u", d->name,
				     f->decls[k]->loc.line);
				break;
			}
		check_since(p, f, d->has_since, d->since, d->loc, d->name);
		switch (d->kind) {
		case TIDL_DECL_FEATURE:
			if (d->u.feature.bit > 63)
				diag(p, f, TIDL_ERROR, d->loc, "feature bit of '%s' must be 0..63", d->name);
			for (size_t k = 0; k < i; k++)
				if (f->decls[k]->kind == TIDL_DECL_FEATURE &&
				    f->decls[k]->u.feature.bit == d->u.feature.bit && d->u.feature.bit <= 63)
					diag(p, f, TIDL_ERROR, d->loc, "feature bit %u already used by '%s'",
					     d->u.feature.bit, f->decls[k]->name);
			break;
		case TIDL_DECL_ERROR:
			if (d->u.error.code == 0)
				diag(p, f, TIDL_ERROR, d->loc, "error code of '%s' must be 1..4294967295", d->name);
			for (size_t k = 0; k < i; k++)
				if (f->decls[k]->kind == TIDL_DECL_ERROR &&
				    f->decls[k]->u.error.code == d->u.error.code)
					diag(p, f, TIDL_ERROR, d->loc, "error code %u already used by '%s'",
					     d->u.error.code, f->decls[k]->name);
			break;
		case TIDL_DECL_ENUM: {
			tidl_enum_value_t *v = d->u.enum_.values;
			bool has_zero = false;
			for (size_t k = 0; k < d->u.enum_.n_values; k++)
				has_zero = has_zero || v[k].value == 0;
			if (d->u.enum_.strict && !has_zero)
				diag(p, f, TIDL_ERROR, d->loc,
				     "strict enum '%s' needs a value 0: absent fields read as 0, "
				     "and a strict reader rejects unknown values", d->name);
			char owner[200];
			bool sgn = d->u.enum_.underlying >= TIDL_I8;
			snprintf(owner, sizeof owner, "enum '%s'", d->name);
			tidl_reserved_t *rv = d->u.enum_.reserved;
			check_reserved_unique(p, f, rv, d->u.enum_.n_reserved, "value", owner, sgn);
			for (size_t k = 0; k < d->u.enum_.n_reserved; k++) {
				if (!fits(d->u.enum_.underlying, rv[k].value))
					diag(p, f, TIDL_ERROR, rv[k].loc, "reserved value of %s does not fit %s",
					     owner, tidl_kind_name(d->u.enum_.underlying));
				for (size_t j = 0; j < d->u.enum_.n_values; j++)
					if (v[j].value == rv[k].value)
						diag(p, f, TIDL_ERROR, v[j].loc,
						     "'%s' uses a value that %s reserves at line %u", v[j].name,
						     owner, rv[k].loc.line);
			}
			if (d->u.enum_.n_reserved)
				qsort(rv, d->u.enum_.n_reserved, sizeof *rv, cmp_reserved);
			for (size_t k = 0; k < d->u.enum_.n_values; k++) {
				if (!fits(d->u.enum_.underlying, v[k].value))
					diag(p, f, TIDL_ERROR, v[k].loc, "value of '%s' does not fit %s",
					     v[k].name, tidl_kind_name(d->u.enum_.underlying));
				check_since(p, f, v[k].has_since, v[k].since, v[k].loc, v[k].name);
				for (size_t j = 0; j < k; j++) {
					if (strcmp(v[j].name, v[k].name) == 0)
						diag(p, f, TIDL_ERROR, v[k].loc, "duplicate enum value name '%s'",
						     v[k].name);
					else if (v[j].value == v[k].value)
						diag(p, f, TIDL_ERROR, v[k].loc,
						     "'%s' has the same value as '%s'", v[k].name, v[j].name);
				}
			}
			break;
		}
		case TIDL_DECL_STRUCT: {
			char owner[200];
			snprintf(owner, sizeof owner, "struct '%s'", d->name);
			check_fields(p, f, d->u.struct_.fields, d->u.struct_.n_fields, owner, false);
			check_struct_reserved(p, f, d);
			break;
		}
		case TIDL_DECL_INTERFACE: {
			tidl_method_t *ms = d->u.iface.methods;
			for (size_t k = 0; k < d->u.iface.n_methods; k++) {
				tidl_method_t *m = &ms[k];
				char owner[200];
				snprintf(owner, sizeof owner, "method '%s'", m->name);
				check_fields(p, f, m->params, m->n_params, owner, true);
				check_fields(p, f, m->results, m->n_results, owner, true);
				check_since(p, f, m->has_since, m->since, m->loc, m->name);
				if (m->ordinal == 0)
					diag(p, f, TIDL_ERROR, m->loc, "method ordinals start at 1");
				for (size_t j = 0; j < k; j++) {
					if (ms[j].ordinal == m->ordinal)
						diag(p, f, TIDL_ERROR, m->loc,
						     "duplicate method ordinal %u (first used at %s:%u:%u)",
						     m->ordinal, ms[j].loc.file, ms[j].loc.line, ms[j].loc.col);
					if (strcmp(ms[j].name, m->name) == 0)
						diag(p, f, TIDL_ERROR, m->loc, "duplicate method name '%s'", m->name);
				}
				if (m->requires_name) {
					tidl_decl_t *fd = find_local(f, m->requires_name);
					if (!fd || fd->kind != TIDL_DECL_FEATURE)
						diag(p, f, TIDL_ERROR, m->loc,
						     "@requires(%s): no feature '%s' in this file",
						     m->requires_name, m->requires_name);
					else
						m->requires = fd;
				}
				if (m->n_errors) {
					m->errors = palloc(p, m->n_errors * sizeof *m->errors);
					for (size_t e = 0; e < m->n_errors; e++) {
						tidl_decl_t *ed = tidl_file_find_decl(f, m->error_names[e]);
						if (!ed || ed->kind != TIDL_DECL_ERROR)
							diag(p, f, TIDL_ERROR, m->loc,
							     "unknown error '%s' in method '%s' (declare it: error %s = N;)",
							     m->error_names[e], m->name, m->error_names[e]);
						m->errors[e] = ed;
					}
				}
			}
			char iowner[200];
			snprintf(iowner, sizeof iowner, "interface '%s'", d->name);
			tidl_reserved_t *rm = d->u.iface.reserved;
			check_reserved_unique(p, f, rm, d->u.iface.n_reserved, "method ordinal", iowner, false);
			for (size_t k = 0; k < d->u.iface.n_reserved; k++) {
				if (rm[k].value == 0 || rm[k].value > UINT32_MAX)
					diag(p, f, TIDL_ERROR, rm[k].loc,
					     "reserved method ordinals of %s must be 1..4294967295", iowner);
				for (size_t j = 0; j < d->u.iface.n_methods; j++)
					if (ms[j].ordinal == rm[k].value)
						diag(p, f, TIDL_ERROR, ms[j].loc,
						     "method '%s' uses ordinal %u, which %s reserves at line %u",
						     ms[j].name, ms[j].ordinal, iowner, rm[k].loc.line);
			}
			if (d->u.iface.n_reserved)
				qsort(rm, d->u.iface.n_reserved, sizeof *rm, cmp_reserved);
			if (d->u.iface.n_methods)
				qsort(ms, d->u.iface.n_methods, sizeof *ms, cmp_method);
			break;
		}
		}
	}
	check_recursion(p, f);
}

/* ---- loading files ---------------------------------------------------------- */

static int load(tidl_program_t *p, const char *path, const char *text, size_t len,
		tidl_loc_t from, tidl_file_t **out);

static char *read_file(tidl_program_t *p, const char *path, size_t *len, tidl_loc_t from,
		       const tidl_file_t *importer)
{
	/* O_NONBLOCK: opening a FIFO named by an import must not hang; only
	 * regular files are read, so a device or directory is refused. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		diag(p, importer, TIDL_ERROR, from, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		diag(p, importer, TIDL_ERROR, from, "cannot open '%s': not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)MAX_FILE_SIZE) {
		diag(p, importer, TIDL_ERROR, from, "'%s' is larger than %u bytes", path, MAX_FILE_SIZE);
		goto out;
	}
	size_t want = (size_t)st.st_size, n = 0;
	buf = palloc(p, want + 1);
	while (n < want) {
		ssize_t r = read(fd, buf + n, want - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			diag(p, importer, TIDL_ERROR, from, "cannot read '%s': %s", path, strerror(errno));
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break;          /* the file shrank: parse what is there */
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
out:
	close(fd);
	return buf;
}

static const char *import_path(tidl_program_t *p, const char *importer, const char *rel)
{
	if (rel[0] == '/')
		return rel;
	const char *slash = strrchr(importer, '/');
	if (!slash)
		return rel;
	size_t dlen = (size_t)(slash - importer) + 1;
	char *r = palloc(p, dlen + strlen(rel) + 1);
	memcpy(r, importer, dlen);
	strcpy(r + dlen, rel);
	return r;
}

static void parse_file(parser_t *ps)
{
	tidl_file_t *f = ps->file;
	lex(ps);
	if (!is_word(ps, "package")) {
		syntax_error(ps, "expected 'package NAME;' at the start of the file");
		return;
	}
	lex(ps);
	const char *start = ps->tok.text;
	if (!expect_ident(ps, "a package name", NULL))
		return;
	const char *stop = ps->tok.text;
	while (is_punct(ps, '.')) {
		lex(ps);
		if (ps->tok.kind != T_IDENT) {
			syntax_error(ps, "expected a name after '.' in the package name");
			return;
		}
		lex(ps);
		stop = ps->tok.text;
	}
	/* the package text runs up to (not including) the current token */
	const char *e = stop;
	while (e > start && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	if ((size_t)(e - start) > MAX_PACKAGE_LEN) {
		diag(ps->prog, ps->file, TIDL_ERROR, f->version_loc.line ? f->version_loc : ps->tok.loc,
		     "package name longer than %d characters", MAX_PACKAGE_LEN);
		ps->failed = true;
		return;
	}
	f->package = pstrndup(ps->prog, start, (size_t)(e - start));
	if (!expect_punct(ps, ';', "after the package name"))
		return;
	if (!is_word(ps, "version")) {
		syntax_error(ps, "expected 'version MAJOR.MINOR;' after the package");
		return;
	}
	f->version_loc = ps->tok.loc;
	lex(ps);
	if (!parse_version(ps, &f->version) || !expect_punct(ps, ';', "after the version"))
		return;

	vec_t imports = { .size = sizeof(tidl_import_t) };
	vec_t decls = { .size = sizeof(tidl_decl_t *) };
	while (ps->tok.kind != T_EOF && !ps->failed) {
		if (!room_for(ps, &decls, "declarations in one file") ||
		    !room_for(ps, &imports, "imports in one file"))
			break;
		if (is_word(ps, "import")) {
			tidl_import_t *im = vec_push(ps->prog, &imports);
			im->loc = ps->tok.loc;
			lex(ps);
			if (ps->tok.kind != T_STRING) {
				syntax_error(ps, "expected a file name in quotes after 'import'");
				return;
			}
			im->path = pstrndup(ps->prog, ps->tok.text + 1, ps->tok.len - 2);
			lex(ps);
			if (!expect_punct(ps, ';', "after import"))
				return;
		} else if (is_word(ps, "feature")) {
			parse_feature(ps, &decls);
		} else if (is_word(ps, "error")) {
			parse_error_decl(ps, &decls);
		} else if (is_word(ps, "strict")) {
			lex(ps);
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
			syntax_error(ps, "expected a declaration (import, feature, error, enum, struct, interface)");
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

static int load(tidl_program_t *p, const char *path, const char *text, size_t len,
		tidl_loc_t from, tidl_file_t **out)
{
	*out = NULL;
	for (size_t i = 0; i < p->n_loading; i++) {
		if (strcmp(p->loading[i], path) == 0) {
			char chain[1024] = "";
			for (size_t k = i; k < p->n_loading; k++) {
				strncat(chain, p->loading[k], sizeof chain - strlen(chain) - 1);
				strncat(chain, " -> ", sizeof chain - strlen(chain) - 1);
			}
			strncat(chain, path, sizeof chain - strlen(chain) - 1);
			diag(p, NULL, TIDL_ERROR, from, "import cycle: %s", chain);
			return -1;
		}
	}
	for (size_t i = 0; i < p->n_files; i++)
		if (strcmp(p->files[i]->path, path) == 0) {
			*out = p->files[i];
			return 0;
		}
	if (p->n_loading >= MAX_IMPORT_DEPTH) {
		diag(p, NULL, TIDL_ERROR, from, "imports nested deeper than %d", MAX_IMPORT_DEPTH);
		return -1;
	}
	tidl_file_t *f = palloc(p, sizeof *f);
	f->path = pstrndup(p, path, strlen(path));
	if (!text) {
		const tidl_file_t *importer = NULL;
		if (p->n_loading)
			for (size_t i = 0; i < p->n_files; i++)
				if (strcmp(p->files[i]->path, p->loading[p->n_loading - 1]) == 0)
					importer = p->files[i];
		char *buf = read_file(p, path, &len, from, importer);
		if (!buf)
			return -1;
		text = buf;
	} else {
		char *copy = palloc(p, len + 1);
		memcpy(copy, text, len);
		copy[len] = 0;
		text = copy;
	}
	f->source = text;
	f->source_len = len;

	parser_t ps = { .prog = p, .file = f, .s = text, .end = text + len, .cur = text,
			.line = 1, .col = 1 };
	size_t errors_before = p->n_errors;
	parse_file(&ps);

	/* register before loading imports so diamonds share one file */
	if (p->n_files == p->cap_files) {
		size_t cap = p->cap_files ? p->cap_files * 2 : 8;
		tidl_file_t **nf = realloc(p->files, cap * sizeof *nf);
		if (!nf)
			abort();
		p->files = nf;
		p->cap_files = cap;
	}
	const char **nl = realloc(p->loading, (p->n_loading + 1) * sizeof *nl);
	if (!nl)
		abort();
	p->loading = nl;
	p->loading[p->n_loading++] = f->path;
	for (size_t i = 0; i < f->n_imports && !ps.failed; i++) {
		const char *ip = import_path(p, f->path, f->imports[i].path);
		load(p, ip, NULL, 0, f->imports[i].loc, &f->imports[i].file);
	}
	p->n_loading--;
	p->files[p->n_files++] = f;
	if (!ps.failed) {
		for (size_t i = 0; i < f->n_imports; i++)
			if (!f->imports[i].file)
				ps.failed = true;
	}
	if (!ps.failed)
		sema_file(p, f);
	*out = f;
	return p->n_errors > errors_before ? -1 : 0;
}

int tidl_program_load(tidl_program_t *p, const char *path, tidl_file_t **out)
{
	tidl_loc_t from = { path, 0, 0 };
	int r = load(p, path, NULL, 0, from, out);
	return r || p->n_errors ? -1 : 0;
}

int tidl_program_load_buffer(tidl_program_t *p, const char *name, const char *text, size_t len,
			     tidl_file_t **out)
{
	tidl_loc_t from = { name, 0, 0 };
	if (len > MAX_FILE_SIZE) {
		diag(p, NULL, TIDL_ERROR, from, "input larger than %u bytes", MAX_FILE_SIZE);
		return -1;
	}
	int r = load(p, name, text, len, from, out);
	return r || p->n_errors ? -1 : 0;
}

/* ---- names --------------------------------------------------------------------- */

const char *tidl_kind_name(tidl_kind_t k)
{
	switch (k) {
	case TIDL_BOOL: return "bool";
	case TIDL_U8: return "u8";
	case TIDL_U16: return "u16";
	case TIDL_U32: return "u32";
	case TIDL_U64: return "u64";
	case TIDL_I8: return "i8";
	case TIDL_I16: return "i16";
	case TIDL_I32: return "i32";
	case TIDL_I64: return "i64";
	case TIDL_F32: return "f32";
	case TIDL_F64: return "f64";
	case TIDL_STRING: return "string";
	case TIDL_BYTES: return "bytes";
	case TIDL_LIST: return "list";
	case TIDL_ENUM: return "enum";
	case TIDL_STRUCT: return "struct";
	}
	return "?";
}

const char *tidl_type_name(const tidl_type_t *t, char *buf, size_t len)
{
	if (!len)
		return buf;
	if (t->kind == TIDL_LIST) {
		char inner[200];
		tidl_type_name(t->elem, inner, sizeof inner);
		snprintf(buf, len, "list<%s>", inner);
	} else if (t->decl) {
		snprintf(buf, len, "%s", t->ref_name ? t->ref_name : t->decl->name);
	} else if (t->ref_name) {
		snprintf(buf, len, "%s", t->ref_name);
	} else {
		snprintf(buf, len, "%s", tidl_kind_name(t->kind));
	}
	return buf;
}
