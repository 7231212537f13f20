/*
 * program.c - a loaded .tidl program: its arena, its diagnostics
 * (collected, printed like a compiler's) and the names of types.
 */
#define _GNU_SOURCE             /* wcwidth (XSI) beside newlocale/uselocale */
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "front.h"

/* ---- arena ------------------------------------------------------------- */

void *tidl_palloc(tidl_program_t *p, size_t n)
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

char *tidl_pstrndup(tidl_program_t *p, const char *s, size_t n)
{
	char *r = tidl_palloc(p, n + 1);
	memcpy(r, s, n);
	r[n] = 0;
	return r;
}

void *tidl_vec_push(tidl_program_t *p, vec_t *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 8;
		void *items = tidl_palloc(p, cap * v->size);
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
	free(p->mem);
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
	while (e < end && *e != '\n' && *e != '\r')  /* a CRLF's CR is not shown */
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
	/* The whole message, however long: one naming paths under a deep
	 * folder (a long TMPDIR) was cut at 512 bytes without a mark. */
	va_list again;
	va_copy(again, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	char *msg = tidl_palloc(p, n > 0 ? (size_t)n + 1 : 1);
	if (n > 0)
		vsnprintf(msg, (size_t)n + 1, fmt, again);
	else
		msg[0] = 0;
	va_end(again);
	tidl_diag_t *d = &p->diags[p->n_diags++];
	d->severity = sev;
	d->loc = loc;
	d->message = msg;
	line_of(f, loc.line, &d->line_text, &d->line_len);
}

void tidl_diag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
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

size_t tidl_program_file_count(const tidl_program_t *p) { return p->n_files; }
const tidl_file_t *tidl_program_file(const tidl_program_t *p, size_t i) { return i < p->n_files ? p->files[i] : NULL; }
size_t tidl_program_diag_count(const tidl_program_t *p) { return p->n_diags; }
const tidl_diag_t *tidl_program_diag(const tidl_program_t *p, size_t i) { return i < p->n_diags ? &p->diags[i] : NULL; }
size_t tidl_program_error_count(const tidl_program_t *p) { return p->n_errors; }

/* The code point of the valid UTF-8 sequence at S (LEFT bytes) and its
 * length, or 0 where S starts none (a stray continuation, a bad lead, an
 * overlong form, a surrogate, past U+10FFFF, cut short).  Decoded here,
 * not by mbrtowc: a schema is UTF-8 whatever the user's locale says
 * (docs/IDL.md), and mbrtowc reads by LC_CTYPE, which thothc never sets
 * ("C": every byte past 0x7f an error). */
static size_t utf8_decode(const unsigned char *s, size_t left, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
		 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	if (!n || n > left)
		return 0;
	uint32_t v = s[0] & (0x7f >> n);
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[k] & 0x3f);
	}
	if ((n == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) || (n == 4 && (v < 0x10000 || v > 0x10ffff)))
		return 0;
	*cp = v;
	return n;
}

/* wcwidth answers by LC_CTYPE too ("C": -1 past ASCII), so the caret's
 * widths come from the C.UTF-8 locale (built into glibc since 2.35),
 * switched to for this thread only while a caret line is printed: the
 * program's own locale is left alone.  Where it is missing, each
 * character is one column (the caret of before: right for every
 * script but the wide ones). */
static locale_t caret_utf8;
static bool caret_utf8_tried;

static locale_t caret_locale_enter(void)
{
	if (!caret_utf8_tried) {
		caret_utf8_tried = true;
		caret_utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	}
	return caret_utf8 ? uselocale(caret_utf8) : (locale_t)0;
}

static void caret_locale_leave(locale_t was)
{
	if (caret_utf8 && was)
		uselocale(was);
}

/* Terminal columns of CP: 2 for East Asian wide and full-width letters
 * and most emoji, 0 for a combining mark (it sits on the letter before),
 * else 1 (also where wcwidth knows no answer, -1). */
static unsigned caret_width(uint32_t cp)
{
	if (!caret_utf8)
		return 1;
	int w = wcwidth((wchar_t)cp);
	return w < 0 ? 1 : (unsigned)w;
}

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
			/* The caret under the column, not the byte: a column
			 * counts bytes, and a comment or string in Greek before
			 * the error (two bytes a letter in UTF-8) put it a letter
			 * right per letter; a CJK letter or an emoji fills two
			 * terminal columns, and counted as one character it put
			 * the caret a column left per letter (caret_width). */
			uint32_t end = d->loc.col - 1 < d->line_len ? d->loc.col - 1 : (uint32_t)d->line_len;
			locale_t was = caret_locale_enter();
			for (uint32_t at = 0; at < end;) {
				const unsigned char *b = (const unsigned char *)d->line_text + at;
				uint32_t cp;
				size_t n = utf8_decode(b, end - at, &cp);
				if (!n || n == 1) {
					/* ASCII, or a byte of no valid sequence (a
					 * Latin-1 '\xb0' in a comment, a stray
					 * continuation byte): one column, as a
					 * terminal shows it.  Tabs as they are. */
					fputc(*b == '\t' ? '\t' : ' ', out);
					at++;
					continue;
				}
				for (unsigned w = caret_width(cp); w; w--)
					fputc(' ', out);
				at += (uint32_t)n;
			}
			caret_locale_leave(was);
			fputs("^\n", out);
		}
	}
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
