/*
 * lexer.c - the .tidl lexer: bytes to tokens, comments skipped,
 * every read bounds-checked (the fuzzer feeds it arbitrary bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "front.h"

/* ---- lexer ---------------------------------------------------------------- */

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

void tidl_lex(parser_t *ps)
{
	tok_t *t = &ps->tok;
	ps->prev_end = (tidl_loc_t){ ps->file->path, ps->line, ps->col };
	for (;;) {
		while (ps->cur < ps->end && (*ps->cur == ' ' || *ps->cur == '\t' || *ps->cur == '\n' ||
					     *ps->cur == '\r'))
			advance_char(ps);
		if (ps->cur + 1 < ps->end && ps->cur[0] == '/' && ps->cur[1] == '/') {
			tidl_loc_t start = { ps->file->path, ps->line, ps->col };
			const char *text = ps->cur;
			while (ps->cur < ps->end && *ps->cur != '\n')
				advance_char(ps);
			if (ps->keep_comments) {
				*t = (tok_t){ .kind = T_COMMENT, .text = text,
					      .len = (size_t)(ps->cur - text), .loc = start };
				return;
			}
			continue;
		}
		if (ps->cur + 1 < ps->end && ps->cur[0] == '/' && ps->cur[1] == '*') {
			tidl_loc_t start = { ps->file->path, ps->line, ps->col };
			const char *start_text = ps->cur;
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
			if (ps->keep_comments) {
				*t = (tok_t){ .kind = T_COMMENT, .text = start_text,
					      .len = (size_t)(ps->cur - start_text), .loc = start };
				return;
			}
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
		size_t len = (size_t)(ps->cur - t->text);
		if (len > MAX_NAME_LEN) {
			/* how long, and what it begins with: the quoted line of a
			 * long name is cut by the terminal, the caret at its start */
			char *msg = tidl_palloc(ps->prog, 160);
			snprintf(msg, 160, "name longer than %d characters ('%.20s...' has %zu)", MAX_NAME_LEN,
				 t->text, len);
			t->kind = T_BAD;
			t->text = msg;
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
