/*
 * why_text.c - a peer's text made safe to print (why.h: thoth__why_text).
 * Its own file so that a test compiling rpc.c a second time under other
 * names (tests/contract/rpc_full_way.c) can compile it beside it.
 * thothd's log lines (kernel/thothd/log.c) are escaped by it too.
 */
#include <stdio.h>
#include <string.h>

#include "why.h"

/* The length of the valid UTF-8 sequence at P (1 for ASCII), or 0 when
 * P starts none (a stray continuation, a bad lead, an overlong form, a
 * surrogate, past U+10FFFF, or cut short by LEFT). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
		 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	if (!n || n > left)
		return 0;
	for (size_t k = 1; k < n; k++)
		if ((p[k] & 0xc0) != 0x80)
			return 0;
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

/* TEXT escaped into OUT (CAP bytes, terminated), whole units only;
 * *USED: the bytes of TEXT that went in.  Returns the length written. */
static size_t escape(char *out, size_t cap, const char *text, size_t len, size_t *used)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t o = 0, i = 0;
	while (i < len) {
		size_t n = utf8_seq(s + i, len - i);
		char unit[16];
		size_t u;
		if (n > 1 && !(s[i] == 0xc2 && s[i + 1] < 0xa0)) {
			memcpy(unit, s + i, n);         /* a whole code point past U+009F */
			u = n;
		} else if (n == 1 && s[i] == '\\') {
			memcpy(unit, "\\\\", 2);
			u = 2;
		} else if (n == 1 && s[i] >= 0x20 && s[i] != 0x7f) {
			unit[0] = (char)s[i];
			u = 1;
		} else {
			/* C0 (ESC, CR, LF, ...), DEL, C1 (raw or as UTF-8), and
			 * bytes of no valid sequence */
			if (!n)
				n = 1;
			u = 0;
			for (size_t k = 0; k < n; k++)
				u += (size_t)snprintf(unit + u, sizeof unit - u, "\\x%02x", s[i + k]);
		}
		if (o + u >= cap)
			break;                  /* only whole units: never half an escape */
		memcpy(out + o, unit, u);
		o += u;
		i += n;
	}
	out[o] = 0;
	*used = i;
	return o;
}

size_t thoth__why_text(char *out, size_t cap, const char *text, size_t len)
{
	if (!out || !cap)
		return 0;
	size_t used;
	return escape(out, cap, text, len, &used);
}

size_t thoth__utf8_whole(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t back = 1; back <= 4 && back <= len; back++) {
		unsigned char c = u[len - back];
		if ((c & 0xc0) == 0x80)
			continue;       /* a continuation: look further back */
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		return need > back ? len - back : len;
	}
	return len;
}

/* Of "\\xHH", how many bytes P (LEFT of them) holds: 4 whole, fewer
 * when it is cut short, 0 when P holds no such escape. */
static size_t hex_escape(const char *p, size_t left)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	size_t k = 0;
	while (k < 4 && k < left &&
	       (k == 0 ? p[k] == '\\' : k == 1 ? p[k] == 'x' : p[k] && strchr(hex, p[k])))
		k++;
	return k == 4 || k == left ? k : 0;
}

size_t thoth__escaped_whole(const char *s, size_t len)
{
	/* Forward: whether a backslash opens an escape depends on the ones
	 * before it ("\\\\x1b" is a backslash, then "x1b").  Escapes are
	 * ASCII, and no byte of a letter is a backslash: once none is cut, a
	 * half letter at the end is thoth__utf8_whole's. */
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\\')
			continue;
		size_t x = hex_escape(s + i, len - i);
		if (i + 1 == len || (x && x < 4))
			return i;       /* "\\" or "\\x1" at the cut: half an escape */
		i += x ? 3 : s[i + 1] == '\\' ? 1 : 0;
	}
	return thoth__utf8_whole(s, len);
}

size_t thoth__why_text_cut(char *out, size_t cap, const char *text, size_t len, bool cut)
{
	if (!out || !cap)
		return 0;
	if (cap <= sizeof "...")
		return thoth__why_text(out, cap, text, len);    /* no room to say so */
	if (cut)
		len = thoth__utf8_whole(text, len);     /* half a letter: dropped, not \xHH */
	size_t used, o = escape(out, cap, text, len, &used);
	if (used == len && !cut)
		return o;
	if (o + sizeof "..." > cap)
		o = escape(out, cap - (sizeof "..." - 1), text, len, &used);
	memcpy(out + o, "...", sizeof "...");
	return o + sizeof "..." - 1;
}
