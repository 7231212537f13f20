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
 *     under PEERTEXT_TAB (a field that holds tabs by design: a codex
 *     record), a newline only under PEERTEXT_LINES (a text of many
 *     lines by design: thothd's lock report), else a string is one line;
 *   - C1 controls, raw (0x80..0x9f, never valid UTF-8 on their own) or as
 *     UTF-8 (U+0080..U+009F, c2 80..c2 9f: xterm obeys U+009B as CSI):
 *     "\xNN" per byte;
 *   - any other byte that is not part of well-formed UTF-8: "\xNN";
 *   - a backslash: "\\", so that "\x1b" in the output is only ever an
 *     escape (the four characters a peer sent read "\\x1b");
 *   - a character that is invisible or reorders the line (a "Trojan
 *     source" name: Unicode's Default_Ignorable_Code_Point -- zero-width
 *     space and joiners, U+2060..U+206F, the BOM, soft hyphen, variation
 *     selectors, tags, Hangul fillers -- with every Bidi_Control among
 *     them, U+202A..U+202E, U+2066..U+2069, U+200E, U+200F, U+061C; every
 *     format character, General_Category Cf, also those that are not
 *     Default_Ignorable: U+0600..U+0605, U+06DD, U+070F, U+08E2, U+110BD,
 *     U+FFF9..U+FFFB, ...; and U+2028, U+2029, Zl and Zp):
 *     "\u{202e}" (lower-case hex, 4 to 5 digits);
 *   - the rest (printable ASCII, well-formed UTF-8 from U+00A0 on) as it is.
 * --json gives the exact string.
 *
 * A table pads a peer's string to the columns it takes on a terminal, not
 * its bytes: peertext_cols counts a shown string's columns as
 * terminals do (a combining mark 0, an East Asian wide or fullwidth
 * character 2, the rest 1; an escape takes its length), from tables built
 * from the Unicode Character Database (text_width.h).  Not wcwidth(3): it
 * answers only under a UTF-8 locale, and thothctl runs under LANG=C in
 * scripts, units and tests as often as not (every non-ASCII character
 * would be -1); a locale's table also differs from one libc to the next.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "peertext.h"

struct text_range {
	uint32_t lo, hi;
};

#include "text_width.h"


/* The length of the well-formed UTF-8 sequence at S (at most LEFT bytes), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
size_t peertext_utf8_seq(const unsigned char *s, size_t left)
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


static bool in_table(const struct text_range *t, size_t n, uint32_t cp)
{
	if (cp < t[0].lo || cp > t[n - 1].hi)
		return false;
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp > t[mid].hi)
			lo = mid + 1;
		else if (cp < t[mid].lo)
			hi = mid;
		else
			return true;
	}
	return false;
}

#define IN_TABLE(t, cp) in_table((t), sizeof(t) / sizeof((t)[0]), (cp))

/* The code point of the well-formed SEQ-byte sequence at S. */
static uint32_t code_point(const unsigned char *s, size_t seq)
{
	uint32_t cp = seq == 2 ? s[0] & 0x1fu : seq == 3 ? s[0] & 0x0fu : s[0] & 0x07u;
	for (size_t i = 1; i < seq; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	return cp;
}

/* The visible form of the one character at S (LEFT bytes on) into OUT
 * (at least TEXT_OUT_MAX bytes); returns the bytes of S it took, *N the
 * length written. */
enum { TEXT_OUT_MAX = 12 };     /* "\u{e0fff}" is 9 */
static size_t visible(const unsigned char *s, size_t left, unsigned flags, char *out, size_t *n)
{
	static const char hex[] = "0123456789abcdef";
	size_t seq = peertext_utf8_seq(s, left);
	if (seq == 2 && s[0] == 0xc2 && s[1] <= 0x9f) {         /* U+0080..U+009F */
		memcpy(out, "\\xc2\\x", 6);
		out[6] = hex[s[1] >> 4];
		out[7] = hex[s[1] & 15];
		*n = 8;
		return 2;
	}
	if (seq > 1) {
		uint32_t cp = code_point(s, seq);
		if (IN_TABLE(text_escaped, cp)) {
			int w = snprintf(out, TEXT_OUT_MAX, "\\u{%04x}", (unsigned)cp);
			*n = (size_t)w;
			return seq;
		}
		memcpy(out, s, seq);
		*n = seq;
		return seq;
	}
	unsigned char c = s[0];
	if (c == '\\') {
		out[0] = out[1] = '\\';
		*n = 2;
		return 1;
	}
	if (seq == 1 && c != 0x7f && (c >= 0x20 || (c == '\t' && (flags & PEERTEXT_TAB)) ||
				      (c == '\n' && (flags & PEERTEXT_LINES)))) {
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

/* Whether the well-formed SEQ-byte character at S is shown as it is. */
static bool plain_utf8(const unsigned char *s, size_t seq)
{
	if (s[0] == 0xc2 && s[1] <= 0x9f)               /* U+0080..U+009F */
		return false;
	return !IN_TABLE(text_escaped, code_point(s, seq));
}

/* Whether a byte of X is below 0x20, above 0x7e or a backslash (exact
 * as to whether one is, not which: "Bit Twiddling Hacks", hasless,
 * hasmore, haszero). */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static bool text_special(uint64_t x)
{
	uint64_t b = x ^ (ONES * '\\');
	return (((x - ONES * 0x20) & ~x) | ((x + ONES) | x) | ((b - ONES) & ~b)) & HIGHS;
}

void peertext_fput(FILE *f, const char *s, size_t len, unsigned flags)
{
	const unsigned char *u = (const unsigned char *)s;
	char out[TEXT_OUT_MAX];
	size_t n;
	/* what goes out as it is, a byte: printable ASCII but the backslash,
	 * a tab and a newline where FLAGS keep them */
	bool keep[256];
	for (unsigned c = 0; c < 256; c++)
		keep[c] = (c >= 0x20 && c < 0x7f && c != '\\') || (c == '\t' && (flags & PEERTEXT_TAB)) ||
			  (c == '\n' && (flags & PEERTEXT_LINES));
	for (size_t i = 0; s && i < len;) {
		/* a run of what is shown as it is (most of a lock report) in one
		 * write: a byte at a time cost ~20 ns a byte, 0.4 s for 16 MiB */
		size_t run = i;
		for (;;) {
			/* eight bytes at a time while none is below 0x20, above
			 * 0x7e or a backslash (a tab or newline ends it: the
			 * byte loop takes it) */
			while (len - run >= 8) {
				uint64_t x;
				memcpy(&x, u + run, 8);
				if (text_special(x))
					break;
				run += 8;
			}
			while (run < len && keep[u[run]])
				run++;
			size_t seq = run < len && u[run] >= 0x80 ? peertext_utf8_seq(u + run, len - run) : 0;
			if (seq < 2 || !plain_utf8(u + run, seq))
				break;
			run += seq;
		}
		if (run > i) {
			fwrite(u + i, 1, run - i, f);
			i = run;
			continue;
		}
		i += visible(u + i, len - i, flags, out, &n);
		fwrite(out, 1, n, f);
	}
}

/* The bytes of the one unit at U (LEFT bytes on) in a shown string --
 * an escape, which a backslash always begins (a peer's own is "\\"),
 * or a character -- and its columns in *COLS. */
static size_t shown_unit(const unsigned char *u, size_t left, int *cols)
{
	if (u[0] == '\\' && left > 1) {
		size_t n = u[1] == 'x' ? 4 : 2;            /* \xNN, \\ */
		if (u[1] == 'u')                           /* \u{XXXX} */
			while (n < left && u[n - 1] != '}')
				n++;
		n = n < left ? n : left;
		*cols = (int)n;
		return n;
	}
	if (u[0] < 0x80) {      /* printable ASCII: a shown cell holds no other */
		*cols = 1;
		return 1;
	}
	size_t seq = peertext_utf8_seq(u, left);
	if (!seq) {             /* not a shown string: a byte, a column */
		*cols = 1;
		return 1;
	}
	uint32_t cp = code_point(u, seq);
	*cols = IN_TABLE(text_zero, cp) ? 0 : IN_TABLE(text_wide, cp) ? 2 : 1;
	return seq;
}

int peertext_cols(const char *shown)
{
	int used;
	peertext_prefix(shown, INT32_MAX, &used);
	return used;
}

size_t peertext_prefix(const char *shown, int cols, int *used)
{
	const unsigned char *u = (const unsigned char *)shown;
	size_t len = shown ? strlen(shown) : 0, i = 0;
	int have = 0, c;
	while (i < len) {
		size_t n = shown_unit(u + i, len - i, &c);
		if (have + c > cols)
			break;
		have += c;
		i += n;
	}
	/* the marks that combine with the last character kept */
	while (i < len && u[i] >= 0x80) {
		size_t n = shown_unit(u + i, len - i, &c);
		if (c)
			break;
		i += n;
	}
	*used = have;
	return i;
}

int peertext_field(const char *shown, int cols)
{
	int have = peertext_cols(shown);
	int bytes = shown ? (int)strlen(shown) : 0;
	return have >= cols ? bytes : cols + (bytes - have);
}

size_t peertext_cut_tail(const char *s, size_t len)
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

const char *peertext_text(const char *s, size_t len)
{
	static char slots[TEXT_SLOTS][TEXT_CAP];
	static unsigned next;
	char *buf = slots[next++ % TEXT_SLOTS];
	const unsigned char *u = (const unsigned char *)s;
	size_t at = 0, n;
	char out[TEXT_OUT_MAX];
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

size_t peertext_cut(char *out, size_t cap, const char *s, size_t len, bool cut)
{
	if (!out || !cap)
		return 0;
	const unsigned char *u = (const unsigned char *)s;
	if (cut)                /* half a letter at the cut: dropped, not \xNN */
		len -= peertext_cut_tail(s, len);
	/* Whole units while they fit (never half an escape); KEPT: how
	 * many of them leave room for "..." and the NUL. */
	size_t keep = cap > sizeof "..." ? cap - sizeof "..." : 0;
	size_t at = 0, kept = 0, i = 0, n;
	char unit[TEXT_OUT_MAX];
	while (s && i < len) {
		size_t took = visible(u + i, len - i, 0, unit, &n);
		if (at + n > cap - 1)
			break;
		memcpy(out + at, unit, n);
		at += n;
		if (at <= keep)
			kept = at;
		i += took;
	}
	if ((i < len || cut) && cap > sizeof "...") {     /* else no room to say so */
		memcpy(out + kept, "...", 3);
		at = kept + 3;
	}
	out[at] = 0;
	return at;
}

const char *peertext_textz(const char *s)
{
	return peertext_text(s, s ? strlen(s) : 0);
}
