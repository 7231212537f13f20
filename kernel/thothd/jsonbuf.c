/*
 * jsonbuf.c - thothd's growing text buffer for JSON views (jsonbuf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "jsonbuf.h"

void thothd_jput(thothd_jbuf_t *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

void thothd_jstr(thothd_jbuf_t *b, const char *s)
{
	thothd_jput(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			thothd_jput(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			thothd_jput(b, "\\u%04x", c < 0x20 ? c : '?');
		else
			thothd_jput(b, "%c", c);
	}
	thothd_jput(b, "\"");
}
