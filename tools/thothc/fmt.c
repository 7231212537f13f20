/*
 * fmt.c - `thothc fmt`: the canonical layout of a .tidl file.
 *
 * Works on tokens, not on the tree, so that every comment survives where
 * it was written.  The layout (docs/IDL.md, "Formatting"):
 *   - one statement per line, two spaces per brace level, '{' at the end of
 *     its line, '}' alone;
 *   - one space between tokens except: none before ; , ) > . and before
 *     ':' after an ordinal, '(' after a name, '<'; none after ( < . @ and a
 *     unary '-';
 *   - a statement longer than 100 columns is broken before '->' and before
 *     'error' where needed (continuation lines indented 5 more), and a
 *     parameter list still too long after the commas, lined up after '(';
 *   - blank lines between statements are kept (runs collapse to one), none
 *     after '{' or before '}', and the file ends with one newline;
 *   - a comment on its own line is indented like the code around it; a
 *     trailing comment keeps its column while the code ends before it (so
 *     aligned comments stay aligned), else it follows one space after.
 * A file with a syntax error is not formatted.  The result is checked
 * before it is returned: the same tokens and comments, in the same order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "front.h"

#define MAX_COLS   100
#define CONT_EXTRA 5

typedef struct ftok {
	tok_kind_t kind;
	const char *text;
	size_t len;
	char punct;
	uint32_t line, col, end_line;
} ftok_t;

typedef struct sbuf {
	char *s;
	size_t len, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *ns = realloc(b->s, cap);
		if (!ns)
			abort();
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}


static void sb_spaces(sbuf_t *b, size_t n)
{
	while (n--)
		sb_put(b, " ", 1);
}

/* Tokens of TEXT including comments; NULL (and diagnostics in PROG) on a
 * lexical error. */
static ftok_t *tokens(tidl_program_t *prog, tidl_file_t *f, size_t *n_out)
{
	parser_t ps = { .prog = prog, .file = f, .s = f->source, .end = f->source + f->source_len,
			.cur = f->source, .line = 1, .col = 1, .keep_comments = true };
	size_t n = 0, cap = 64;
	ftok_t *t = malloc(cap * sizeof *t);
	if (!t)
		abort();
	for (;;) {
		tidl_lex(&ps);
		if (ps.tok.kind == T_BAD) {
			tidl_diag(prog, f, TIDL_ERROR, ps.tok.loc, "%s",
				  ps.tok.text ? ps.tok.text : "unexpected character");
			free(t);
			return NULL;
		}
		if (ps.tok.kind == T_EOF)
			break;
		if (n == cap) {
			cap *= 2;
			ftok_t *nt = realloc(t, cap * sizeof *nt);
			if (!nt)
				abort();
			t = nt;
		}
		ftok_t *k = &t[n++];
		k->kind = ps.tok.kind;
		k->text = ps.tok.text;
		k->len = ps.tok.len;
		k->punct = ps.tok.punct;
		k->line = ps.tok.loc.line;
		k->col = ps.tok.loc.col;
		k->end_line = ps.line;
		if (k->kind == T_COMMENT) {
			/* a line comment ends before its newline; trailing blanks are not kept */
			while (k->len && (k->text[k->len - 1] == ' ' || k->text[k->len - 1] == '\t' ||
					  k->text[k->len - 1] == '\r'))
				k->len--;
			k->end_line = k->line;
			for (size_t i = 0; i < k->len; i++)
				k->end_line += k->text[i] == '\n';
		} else {
			k->end_line = k->line;
		}
	}
	*n_out = n;
	return t;
}

static bool is_p(const ftok_t *t, char c) { return t->kind == T_PUNCT && t->punct == c; }

static bool is_w(const ftok_t *t, const char *w)
{
	return t->kind == T_IDENT && t->len == strlen(w) && memcmp(t->text, w, t->len) == 0;
}

/* Is there a space between P and T (both code tokens of one statement)? */
static bool space_between(const ftok_t *p, const ftok_t *t)
{
	if (t->kind == T_PUNCT && strchr(";,).>", t->punct))
		return false;
	if (is_p(t, ':'))
		return p->kind != T_INT;
	if (is_p(t, '(') && p->kind == T_IDENT)
		return false;
	if (is_p(t, '<'))
		return false;
	if (p->kind == T_PUNCT && strchr("(<.@-", p->punct))
		return false;
	return true;
}

typedef struct piece {
	const ftok_t *t;
	bool space;             /* a space before it on the same line */
	bool can_break;         /* a line may break before it */
} piece_t;

typedef struct fmt {
	sbuf_t out;
	sbuf_t line;            /* the line being built (not yet in out) */
	bool line_open;         /* line holds something */
	int depth;
	piece_t *pcs;
	size_t n_pcs, cap_pcs;
	bool cont;              /* the statement continues on a new line (after a comment) */
	int parens;
	const ftok_t *last_code;/* last code token of the statement, for spacing */
} fmt_t;

static void end_line(fmt_t *f)
{
	if (!f->line_open)
		return;
	sb_put(&f->out, f->line.s, f->line.len);
	sb_put(&f->out, "\n", 1);
	f->line.len = 0;
	f->line_open = false;
}

static void open_line(fmt_t *f, size_t indent)
{
	end_line(f);
	sb_spaces(&f->line, indent);
	f->line_open = true;
}

static size_t indent_of(const fmt_t *f, bool cont)
{
	return (size_t)f->depth * 2 + (cont ? CONT_EXTRA : 0);
}

/* Length of pieces [I, J) written on one line (no leading space). */
static size_t run_len(const fmt_t *f, size_t i, size_t j)
{
	size_t n = 0;
	for (size_t k = i; k < j; k++)
		n += (k > i && f->pcs[k].space) + f->pcs[k].t->len;
	return n;
}

static void put_piece(fmt_t *f, size_t k, bool first_on_line, size_t *align, int *parens)
{
	if (!first_on_line && f->pcs[k].space)
		sb_put(&f->line, " ", 1);
	sb_put(&f->line, f->pcs[k].t->text, f->pcs[k].t->len);
	if (is_p(f->pcs[k].t, '(') && (*parens)++ == 0)
		*align = f->line.len;           /* wrapped parameters line up after '(' */
	else if (is_p(f->pcs[k].t, ')') && *parens > 0)
		(*parens)--;
}

/*
 * Pieces [I, J) of one segment (a method's head, its "-> (...)" or its
 * "error ..." part) onto the current line, wrapping after the commas of
 * its parameter list (continuations aligned after the '(') when the line
 * would pass MAX_COLS.
 */
static void put_segment(fmt_t *f, size_t i, size_t j, bool first_on_line)
{
	size_t align = 0;
	int parens = 0;
	for (size_t k = i; k < j;) {
		/* the unit: up to and including the next ',' inside the parentheses */
		size_t e = k + 1;
		int depth = parens;
		for (size_t q = k; q < j; q++) {
			e = q + 1;
			if (is_p(f->pcs[q].t, '('))
				depth++;
			else if (is_p(f->pcs[q].t, ')'))
				depth--;
			else if (depth == 1 && is_p(f->pcs[q].t, ','))
				break;
		}
		size_t need = run_len(f, k, e) + (!first_on_line && f->pcs[k].space);
		if (!first_on_line && align && f->line.len + need > MAX_COLS) {
			open_line(f, align);
			first_on_line = true;
		}
		for (size_t q = k; q < e; q++) {
			put_piece(f, q, first_on_line, &align, &parens);
			first_on_line = false;
		}
		k = e;
	}
}

/* The statement pieces so far, onto lines: one line when it fits, else
 * broken before '->' and 'error' (continuations indented CONT_EXTRA more)
 * and after the commas of long parameter lists. */
static void flush_pieces(fmt_t *f, bool complete)
{
	if (!f->n_pcs)
		return;
	size_t ind = indent_of(f, f->cont);
	open_line(f, ind);
	if (!complete || f->cont || ind + run_len(f, 0, f->n_pcs) <= MAX_COLS) {
		size_t align = 0;
		int parens = 0;
		for (size_t k = 0; k < f->n_pcs; k++)
			put_piece(f, k, k == 0, &align, &parens);
	} else {
		for (size_t i = 0; i < f->n_pcs;) {
			size_t j = i + 1;
			while (j < f->n_pcs && !f->pcs[j].can_break)
				j++;
			if (i == 0) {
				put_segment(f, i, j, true);
			} else if (f->line.len + 1 + run_len(f, i, j) <= MAX_COLS) {
				sb_put(&f->line, " ", 1);
				put_segment(f, i, j, true);
			} else {
				open_line(f, indent_of(f, true));
				put_segment(f, i, j, true);
			}
			i = j;
		}
	}
	f->n_pcs = 0;
	if (!complete)
		f->cont = true;
}

static void add_piece(fmt_t *f, const ftok_t *t)
{
	if (f->n_pcs == f->cap_pcs) {
		f->cap_pcs = f->cap_pcs ? f->cap_pcs * 2 : 32;
		f->pcs = realloc(f->pcs, f->cap_pcs * sizeof *f->pcs);
		if (!f->pcs)
			abort();
	}
	piece_t *p = &f->pcs[f->n_pcs++];
	p->t = t;
	p->space = f->last_code && space_between(f->last_code, t);
	p->can_break = f->parens == 0 && f->last_code &&
		       (t->kind == T_ARROW || (is_w(t, "error") && is_p(f->last_code, ')')));
	f->last_code = t;
}

static void put_comment(fmt_t *f, const ftok_t *c, bool trailing)
{
	if (trailing) {
		size_t want = c->col - 1;
		if (f->line.len + 1 <= want)
			sb_spaces(&f->line, want - f->line.len);
		else
			sb_put(&f->line, " ", 1);
	} else {
		open_line(f, indent_of(f, f->n_pcs > 0 || f->cont));
	}
	sb_put(&f->line, c->text, c->len);
	end_line(f);
}

static bool statement_open(const fmt_t *f) { return f->n_pcs > 0 || f->cont; }

char *thothc_fmt(tidl_program_t *prog, tidl_file_t *file)
{
	/* only syntactically valid files are formatted */
	parser_t ps = { .prog = prog, .file = file, .s = file->source,
			.end = file->source + file->source_len, .cur = file->source,
			.line = 1, .col = 1 };
	tidl_parse_file(&ps);
	if (ps.failed)
		return NULL;
	size_t n;
	ftok_t *tk = tokens(prog, file, &n);
	if (!tk)
		return NULL;

	fmt_t f = { 0 };
	uint32_t prev_end = 0;          /* last source line of the previous token */
	bool after_open = true;         /* at file start or right after '{' */
	for (size_t i = 0; i < n; i++) {
		const ftok_t *t = &tk[i];
		bool own_line = i == 0 || t->line > prev_end;
		bool closing = is_p(t, '}');
		/* a blank line before a statement or comment that had one */
		if (own_line && i > 0 && t->line >= prev_end + 2 && !after_open && !closing &&
		    !statement_open(&f)) {
			end_line(&f);
			sb_put(&f.out, "\n", 1);
		}
		if (t->kind == T_COMMENT) {
			bool trailing = !own_line && (f.line_open || f.n_pcs > 0);
			if (f.n_pcs)
				flush_pieces(&f, false);
			put_comment(&f, t, trailing && f.line_open);
			prev_end = t->end_line;
			after_open = false;
			continue;
		}
		if (closing) {
			flush_pieces(&f, true);
			f.cont = false;
			if (f.depth > 0)
				f.depth--;
			open_line(&f, indent_of(&f, false));
			sb_put(&f.line, "}", 1);
			f.last_code = NULL;
			prev_end = t->end_line;
			after_open = false;
			continue;
		}
		add_piece(&f, t);
		if (is_p(t, '('))
			f.parens++;
		else if (is_p(t, ')') && f.parens > 0)
			f.parens--;
		after_open = false;
		if (is_p(t, ';') || is_p(t, '{')) {
			flush_pieces(&f, true);
			f.cont = false;
			f.parens = 0;
			f.last_code = NULL;
			if (is_p(t, '{')) {
				f.depth++;
				after_open = true;
			}
		}
		prev_end = t->end_line;
	}
	flush_pieces(&f, true);
	end_line(&f);
	free(f.pcs);
	free(f.line.s);
	free(tk);
	if (!f.out.s) {
		f.out.s = malloc(1);
		if (!f.out.s)
			abort();
		f.out.s[0] = 0;
	}

	/* the layout may not change a token or lose a comment */
	tidl_file_t check = *file;
	check.source = f.out.s;
	check.source_len = f.out.len;
	size_t n2;
	ftok_t *t1 = tokens(prog, file, &n), *t2 = tokens(prog, &check, &n2);
	bool same = t1 && t2 && n == n2;
	for (size_t i = 0; same && i < n; i++)
		same = t1[i].kind == t2[i].kind && t1[i].len == t2[i].len &&
		       memcmp(t1[i].text, t2[i].text, t1[i].len) == 0;
	free(t1);
	free(t2);
	if (!same) {
		tidl_diag(prog, file, TIDL_ERROR, (tidl_loc_t){ file->path, 0, 0 },
			  "internal error: formatting would change the file's tokens (not formatted)");
		free(f.out.s);
		return NULL;
	}
	return f.out.s;
}
