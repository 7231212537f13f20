/*
 * peertext.c - a peer's string on the operator's terminal, shown, never obeyed
 * (docs/THOTHD.md "thothctl", "A peer's text").
 *
 * Everything thothctl prints as text that another process chose -- thothd's
 * answers (names, versions, addresses, reasons, messages), codex's failure,
 * stream names and records, a PM element's names, a probe's output -- goes
 * through here: a hostile process of the operator's uid registered as
 * codex could otherwise put ESC [ ... (colours, cursor moves, a retitled
 * window), OSC 52 (a clipboard write), CR (a line overwritten) or BEL into
 * the operator's terminal.  The rule:
 *   - C0 controls (0x00..0x1f), DEL (0x7f): "\xNN"; a tab is kept only
 *     under THOTH_TEXT_TAB (a field that holds tabs by design: a codex
 *     record), a newline only under THOTH_TEXT_LINES (a text of many
 *     lines by design: thothd's lock report), else a string is one line;
 *   - C1 controls, raw (0x80..0x9f, never valid UTF-8 on their own) or as
 *     UTF-8 (U+0080..U+009F, c2 80..c2 9f: xterm obeys U+009B as CSI):
 *     "\xNN" per byte;
 *   - any other byte that is not part of well-formed UTF-8: "\xNN";
 *   - the rest (printable ASCII, well-formed UTF-8 from U+00A0 on) as it is.
 * A backslash is printed as it is: "\x1b" in the output is either the four
 * characters or an ESC; --json gives the exact string.
 */
#include <stdint.h>
#include <string.h>

#include "peertext.h"

/* The length of the well-formed UTF-8 sequence at S (at most LEFT bytes), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
size_t thoth_utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;     /* the second byte's range */
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else {
		return 0;
	}
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}


/* The visible form of the one character at S (LEFT bytes on) into OUT
 * (at least 8 bytes); returns the bytes of S it took, *N the length
 * written. */
static size_t visible(const unsigned char *s, size_t left, unsigned flags, char *out, size_t *n)
{
	static const char hex[] = "0123456789abcdef";
	size_t seq = thoth_utf8_seq(s, left);
	if (seq == 2 && s[0] == 0xc2 && s[1] <= 0x9f) {         /* U+0080..U+009F */
		memcpy(out, "\\xc2\\x", 6);
		out[6] = hex[s[1] >> 4];
		out[7] = hex[s[1] & 15];
		*n = 8;
		return 2;
	}
	if (seq > 1) {
		memcpy(out, s, seq);
		*n = seq;
		return seq;
	}
	unsigned char c = s[0];
	if (seq == 1 && c != 0x7f && (c >= 0x20 || (c == '\t' && (flags & THOTH_TEXT_TAB)) ||
				      (c == '\n' && (flags & THOTH_TEXT_LINES)))) {
		out[0] = (char)c;
		*n = 1;
		return 1;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 15];
	*n = 4;
	return 1;
}

void thoth_text_fput(FILE *f, const char *s, size_t len, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	char out[8];
	size_t n;
	for (size_t i = 0; s && i < len;) {
		/* a run of printable ASCII (most of a lock report) in one write:
		 * a byte at a time cost ~20 ns a byte, 0.4 s for 16 MiB */
		size_t run = i;
		while (run < len && ((u[run] >= 0x20 && u[run] < 0x7f) ||
				     (u[run] == '\t' && (flags & THOTH_TEXT_TAB)) ||
				     (u[run] == '\n' && (flags & THOTH_TEXT_LINES))))
			run++;
		if (run > i) {
			fwrite(u + i, 1, run - i, f);
			i = run;
			continue;
		}
		i += visible(u + i, len - i, flags, out, &n);
		fwrite(out, 1, n, f);
	}
}

size_t thoth_text_cut_tail(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	/* a lead byte in the last 3 whose sequence runs past the end */
	for (size_t back = 1; back <= 3 && back <= len; back++) {
		unsigned char b = u[len - back];
		if ((b & 0xc0) == 0x80)
			continue;
		size_t want = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
		return want > back ? back : 0;
	}
	return 0;
}

enum { TEXT_SLOTS = 8, TEXT_CAP = 2048 };

const char *thoth_text(const char *s, size_t len)
{
	static char slots[TEXT_SLOTS][TEXT_CAP];
	static unsigned next;
	char *buf = slots[next++ % TEXT_SLOTS];
	const unsigned char *u = (const unsigned char *)s;
	size_t at = 0, n;
	char out[8];
	for (size_t i = 0; s && i < len;) {
		size_t took = visible(u + i, len - i, 0, out, &n);
		if (at + n > TEXT_CAP - 4) {            /* room for "..." and the NUL */
			memcpy(buf + at, "...", 3);
			at += 3;
			break;
		}
		memcpy(buf + at, out, n);
		at += n;
		i += took;
	}
	buf[at] = 0;
	return buf;
}

const char *thoth_textz(const char *s)
{
	return thoth_text(s, s ? strlen(s) : 0);
}
