/*
 * test_thothctl_json - thothctl's JSON string writer (tools/thothctl/json.c):
 * whatever bytes a registrant, a codex record or a probe object holds, the
 * string written is valid JSON, and so UTF-8 (RFC 8259 8.1): well-formed
 * sequences pass through, every other byte is U+FFFD, controls escaped.
 * And its text writer (tools/peertext/peertext.c, peertext_text*): a peer's
 * string on the operator's terminal holds no control byte raw -- C0, DEL,
 * C1 (raw or as UTF-8) and invalid bytes are \xNN, a backslash \\, an
 * invisible or bidi-control character \u{XXXX}, the rest as it is; and
 * the columns a shown string takes on a terminal.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "thothctl.h"

static char *json(const char *s, size_t len)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	assert_non_null(f);
	thothctl_json_fstr(f, s, len);
	fclose(f);
	return out;
}

static void check(const char *in, size_t len, const char *want)
{
	char *got = json(in, len);
	assert_string_equal(got, want);
	free(got);
}

static void test_ascii_and_escapes(void **state)
{
	(void)state;
	check("abc", 3, "\"abc\"");
	check("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
	check("\x01\n\x1f\x7f", 4, "\"\\u0001\\u000a\\u001f\\u007f\"");
	check("a\0b", 3, "\"a\\u0000b\"");
	check("", 0, "\"\"");
}

static void test_utf8_passes(void **state)
{
	(void)state;
	const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf";
	char want[64];
	snprintf(want, sizeof want, "\"%s\"", s);
	check(s, strlen(s), want);
	assert_true(thothctl_utf8_valid(s, strlen(s)));
}

/* Bytes that are not well-formed UTF-8: each one U+FFFD, nothing raw. */
static void test_invalid_bytes_replaced(void **state)
{
	(void)state;
	check("\xff\xfe bad", 6, "\"\\ufffd\\ufffd bad\"");
	check("\x80", 1, "\"\\ufffd\"");                         /* lone continuation */
	check("\xc3", 1, "\"\\ufffd\"");                         /* truncated at the end */
	check("\xc3x", 2, "\"\\ufffdx\"");                       /* truncated mid-string */
	check("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");              /* overlong '/' */
	check("\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\"");   /* overlong, 3 bytes */
	check("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\"");   /* a surrogate */
	check("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* above U+10FFFF */
	check("\xf5", 1, "\"\\ufffd\"");
	assert_false(thothctl_utf8_valid("\xff", 1));
	assert_false(thothctl_utf8_valid("a\xc3", 2));
	assert_true(thothctl_utf8_valid("", 0));
}

/* Every 1- and 2-byte string: the output is ASCII or well-formed UTF-8
 * and holds no raw control byte or unescaped quote. */
static void test_all_short_strings(void **state)
{
	(void)state;
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 257; b++) {
			char in[2] = { (char)a, (char)b };
			size_t len = b == 256 ? 1 : 2;
			char *out = json(in, len);
			size_t n = strlen(out);
			assert_true(thothctl_utf8_valid(out, n));
			assert_true(n >= 2 && out[0] == '"' && out[n - 1] == '"');
			for (size_t i = 1; i + 1 < n; i++) {
				unsigned char c = (unsigned char)out[i];
				assert_true(c >= 0x20 && c != 0x7f);
				if (c == '\\')
					i++;    /* the escaped character */
				else
					assert_true(c != '"');
			}
			free(out);
		}
}

static char *text(const char *s, size_t len, unsigned flags)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	assert_non_null(f);
	peertext_fput(f, s, len, flags);
	fclose(f);
	/* the buffer form says the same (flags 0) */
	if (!flags)
		assert_string_equal(peertext_text(s, len), out);
	return out;
}

static void check_text(const char *in, size_t len, unsigned flags, const char *want)
{
	char *got = text(in, len, flags);
	assert_string_equal(got, want);
	free(got);
}

/* What the live test (test_codex_peer_text) puts in codex's failure,
 * and each class of the rule. */
static void test_text_controls_shown(void **state)
{
	(void)state;
	check_text("a\x1b[31mb\rc\ad\x7f", 12, 0, "a\\x1b[31mb\\x0dc\\x07d\\x7f");
	check_text("\x1b]52;c;SGVsbG8=\a", 16, 0, "\\x1b]52;c;SGVsbG8=\\x07");     /* OSC 52 */
	check_text("nul\0cut", 7, 0, "nul\\x00cut");                            /* NUL: not the end */
	check_text("t\tn\n", 4, 0, "t\\x09n\\x0a");
	check_text("t\tn\n", 4, PEERTEXT_TAB, "t\tn\\x0a");
	check_text("t\tn\n", 4, PEERTEXT_TAB | PEERTEXT_LINES, "t\tn\n");
	check_text("\x9b" "31m", 4, 0, "\\x9b31m");                              /* raw C1 CSI */
	check_text("\xc2\x9b" "31m", 5, 0, "\\xc2\\x9b31m");                     /* U+009B */
	check_text("\xc2\x85", 2, 0, "\\xc2\\x85");                              /* U+0085 NEL */
	check_text("\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 11, 0,
		   "\xc2\xa0\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");               /* U+00A0 on: as it is */
	check_text("\xff\xe2\x82", 3, 0, "\\xff\\xe2\\x82");                       /* not UTF-8 */
	check_text("back\\slash ~", 12, 0, "back\\\\slash ~");                      /* \\ */
	check_text(NULL, 0, 0, "");
	assert_string_equal(peertext_textz(NULL), "");
	assert_string_equal(peertext_textz("x\x1b"), "x\\x1b");
}

/* No byte value, alone or before any other, reaches the output raw as a
 * control: every output byte is printable ASCII, tab/newline only under
 * their flags, or part of well-formed UTF-8 from U+00A0 on. */
static void test_text_no_control_survives(void **state)
{
	(void)state;
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			char in[2] = { (char)a, (char)b };
			char *out = text(in, 2, 0);
			size_t n = strlen(out);
			for (size_t i = 0; i < n;) {
				unsigned char c = (unsigned char)out[i];
				size_t seq = peertext_utf8_seq((const unsigned char *)out + i, n - i);
				assert_true(seq >= 1);
				if (seq == 1)
					assert_true(c >= 0x20 && c != 0x7f);
				else
					assert_false(c == 0xc2 && (unsigned char)out[i + 1] <= 0x9f);
				i += seq;
			}
			free(out);
		}
	}
}

/* The buffer form is bounded: a long string of controls ends "...". */
static void test_text_bounded(void **state)
{
	(void)state;
	char in[1000];
	memset(in, 0x1b, sizeof in);
	const char *got = peertext_text(in, sizeof in);
	size_t n = strlen(got);
	assert_true(n <= 2047);
	assert_string_equal(got + n - 3, "...");
	assert_memory_equal(got, "\\x1b\\x1b", 8);
	/* eight in one printf: each its own buffer */
	const char *p[8];
	for (int i = 0; i < 8; i++) {
		char s[2] = { (char)('a' + i), 0 };
		p[i] = peertext_textz(s);
	}
	for (int i = 0; i < 8; i++)
		assert_int_equal(p[i][0], 'a' + i);
}

/* A text that comes in pages (thothd's lock report, 256 KiB each): a
 * UTF-8 sequence that a page's end cuts is held for the next page, so a
 * report split at any byte reads as the whole one (each part alone would
 * show the sequence's bytes \xNN). */
static void test_text_pages(void **state)
{
	(void)state;
	assert_int_equal(peertext_cut_tail("ab", 2), 0);
	assert_int_equal(peertext_cut_tail("a\xc3", 2), 1);
	assert_int_equal(peertext_cut_tail("a\xc3\xa9", 3), 0);
	assert_int_equal(peertext_cut_tail("\xe2\x82", 2), 2);
	assert_int_equal(peertext_cut_tail("\xf0\x9f\x98", 3), 3);
	assert_int_equal(peertext_cut_tail("\xf0\x9f\x98\x80", 4), 0);
	assert_int_equal(peertext_cut_tail("\x80\x80\x80", 3), 0);
	assert_int_equal(peertext_cut_tail(NULL, 0), 0);
	static const char whole[] = "lock \xc3\xa9t\xc3\xa9\t\xe2\x82\xac 3\n\xf0\x9f\x98\x80 x\x1b\xff\xe2\x82 \xc2\x9b\n";
	size_t len = sizeof whole - 1;
	char *want = text(whole, len, PEERTEXT_TAB | PEERTEXT_LINES);
	for (size_t at = 0; at <= len; at++) {
		size_t held = peertext_cut_tail(whole, at);
		char *a = text(whole, at - held, PEERTEXT_TAB | PEERTEXT_LINES);
		char *b = text(whole + at - held, len - at + held, PEERTEXT_TAB | PEERTEXT_LINES);
		size_t na = strlen(a);
		assert_memory_equal(want, a, na);
		assert_string_equal(want + na, b);
		free(a);
		free(b);
	}
	free(want);
}

/* The buffer form's "..." never splits a UTF-8 sequence or a \xNN. */
static void test_text_cut_whole(void **state)
{
	(void)state;
	for (size_t w = 1; w <= 4; w++) {
		static const char *const ch[] = { "", "\x1b", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80" };
		char in[3000];
		size_t n = 0;
		while (n + w <= sizeof in) {
			memcpy(in + n, ch[w], w);
			n += w;
		}
		const char *got = peertext_text(in, n);
		size_t g = strlen(got);
		assert_true(g <= 2047);
		assert_string_equal(got + g - 3, "...");
		size_t unit = w == 1 ? 4 : w;           /* ESC is shown as 4 bytes */
		assert_int_equal((g - 3) % unit, 0);
		assert_true(thothctl_utf8_valid(got, g));
	}
}

/* CP as UTF-8 into OUT; returns its length. */
static int encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The shown form read back: \\, \xNN and \u{X} undone.  Returns the
 * length in OUT, or -1 where SHOWN is not made of those and characters. */
static long unshow(const char *shown, char *out)
{
	size_t n = 0;
	for (const char *p = shown; *p;) {
		if (*p != '\\') {
			out[n++] = *p++;
			continue;
		}
		if (p[1] == '\\') {
			out[n++] = '\\';
			p += 2;
		} else if (p[1] == 'x') {
			unsigned v;
			if (sscanf(p + 2, "%2x", &v) != 1)
				return -1;
			out[n++] = (char)v;
			p += 4;
		} else if (p[1] == 'u' && p[2] == '{') {
			char *end;
			unsigned long cp = strtoul(p + 3, &end, 16);
			if (*end != '}' || cp < 0x80 || cp > 0x10ffff)
				return -1;
			n += (size_t)encode((unsigned)cp, out + n);
			p = end + 1;
		} else {
			return -1;      /* a backslash that begins no escape */
		}
	}
	return (long)n;
}

static void check_round_trip(const char *in, size_t len)
{
	char *shown = text(in, len, 0);
	char *buf = malloc(strlen(shown) + 1);
	long n = unshow(shown, buf);
	if (n != (long)len || memcmp(buf, in, len)) {
		print_error("shown \"%s\" does not read back as its %zu bytes\n", shown, len);
		fail();
	}
	free(buf);
	free(shown);
}

/* Unambiguous: a shown string reads back as exactly the bytes the peer
 * sent.  A backslash printed as it was made the four characters "\x1b" a
 * peer sent and an escaped ESC the same output. */
static void test_text_backslash(void **state)
{
	(void)state;
	check_text("\\x1b", 4, 0, "\\\\x1b");
	check_text("\x1b", 1, 0, "\\x1b");
	check_text("\\u{202e}", 8, 0, "\\\\u{202e}");
	check_text("\\", 1, 0, "\\\\");
	check_text("a\\\tb", 4, PEERTEXT_TAB, "a\\\\\tb");
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++) {
			char in[3] = { (char)a, (char)b, '\\' };
			check_round_trip(in, 3);
		}
	check_round_trip("\\x1b\x1b\\\\\xe2\x80\xae\xe6\xbc\xa2\xc2\x9b", 16);
}

/* peertext_fput's fast paths (eight bytes at a time, runs of
 * characters shown as they are) agree with the character-at-a-time form
 * (peertext_text): every byte value, and a UTF-8 character, at every
 * offset of a 24-byte printable text. */
static void test_text_fast_path(void **state)
{
	(void)state;
	static const char *const ins[] = { "\xe2\x80\xae", "\xc3\xa9", "\xc2\x9b", "\xe6\xbc\xa2",
					   "\xf0\x9f\x98\x80", "\xc2\xad" };
	for (unsigned v = 0; v < 256 + sizeof ins / sizeof ins[0]; v++) {
		for (size_t at = 0; at < 24; at++) {
			char in[32];
			memset(in, 'a' + (int)(at % 26), sizeof in);
			size_t n = 24;
			if (v < 256) {
				in[at] = (char)v;
			} else {
				const char *c = ins[v - 256];
				memcpy(in + at, c, strlen(c));
				n += strlen(c) - 1;
			}
			char *got = text(in, n, 0);
			assert_string_equal(got, peertext_text(in, n));
			free(got);
		}
	}
}

/* "Trojan source": a character that is invisible or reorders the line is
 * shown \u{X}, so one name cannot pose as another.  The list is written
 * out here from the Unicode lists (Bidi_Control, PropList.txt;
 * Default_Ignorable_Code_Point, DerivedCoreProperties.txt; Zl, Zp), not
 * taken from thothctl's table. */
static void test_text_trojan(void **state)
{
	(void)state;
	static const unsigned escaped[] = {
		0x202a, 0x202b, 0x202c, 0x202d, 0x202e,         /* LRE RLE PDF LRO RLO */
		0x2066, 0x2067, 0x2068, 0x2069,                 /* LRI RLI FSI PDI */
		0x200e, 0x200f, 0x061c,                         /* LRM RLM ALM */
		0x200b, 0x200c, 0x200d, 0x2060, 0xfeff,         /* ZWSP ZWNJ ZWJ WJ BOM */
		0x00ad, 0x034f, 0x115f, 0x1160, 0x17b4, 0x17b5, 0x180b, 0x180e, 0x180f,
		0x2061, 0x2064, 0x2065, 0x206a, 0x206f, 0x3164, 0xfe00, 0xfe0f, 0xffa0,
		0xfff0, 0xfff8, 0x1bca0, 0x1bca3, 0x1d173, 0x1d17a, 0xe0000, 0xe0001,
		0xe0041, 0xe007f, 0xe0100, 0xe01ef, 0xe0fff,
		0x2028, 0x2029,                                 /* LS PS */
	};
	static const unsigned plain[] = {
		0x00a0, 0x00e9, 0x0301, 0x0627, 0x05d0, 0x200a, 0x2010, 0x2027, 0x202f,
		0x205f, 0x2070, 0x3000, 0x6f22, 0xfdff, 0xfe10, 0xff21, 0xfffd, 0x1f600,
		0xe1000,
	};
	for (size_t i = 0; i < sizeof escaped / sizeof escaped[0]; i++) {
		char in[8], want[16];
		int n = encode(escaped[i], in);
		snprintf(want, sizeof want, "\\u{%04x}", escaped[i]);
		check_text(in, (size_t)n, 0, want);
		assert_int_equal(peertext_cols(peertext_text(in, (size_t)n)), (int)strlen(want));
	}
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		char in[8];
		int n = encode(plain[i], in);
		in[n] = 0;
		check_text(in, (size_t)n, 0, in);
	}
	/* the RLO name of the Trojan source paper */
	check_text("svc\xe2\x80\xae" "cba", 9, 0, "svc\\u{202e}cba");
}

/* Every format character (General_Category Cf) and the line and paragraph
 * separators (Zl, Zp) of Unicode 14.0.0 (text_width.h's version), each
 * code point of each range, shown \u{X} (hist46: those that are not
 * Default_Ignorable -- U+0600..U+0605, U+06DD, U+070F, U+0890, U+0891,
 * U+08E2, U+110BD, U+110CD, U+13430..U+13438, U+FFF9..U+FFFB -- went
 * out as they were).  The list is written out here, not read from the
 * generated table, so that a table that lost some fails. */
static void test_text_every_format_character(void **state)
{
	(void)state;
	static const unsigned cf[][2] = {
		{ 0xad, 0xad }, { 0x600, 0x605 }, { 0x61c, 0x61c }, { 0x6dd, 0x6dd }, { 0x70f, 0x70f },
		{ 0x890, 0x891 }, { 0x8e2, 0x8e2 }, { 0x180e, 0x180e }, { 0x200b, 0x200f },
		{ 0x202a, 0x202e }, { 0x2060, 0x2064 }, { 0x2066, 0x206f }, { 0xfeff, 0xfeff },
		{ 0xfff9, 0xfffb }, { 0x110bd, 0x110bd }, { 0x110cd, 0x110cd }, { 0x13430, 0x13438 },
		{ 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a }, { 0xe0001, 0xe0001 }, { 0xe0020, 0xe007f },
		{ 0x2028, 0x2028 },                             /* Zl */
		{ 0x2029, 0x2029 },                             /* Zp */
	};
	/* just outside some of them: letters, digits, marks, as they are */
	static const unsigned plain[] = { 0x5ff, 0x606, 0x6dc, 0x6de, 0x70e, 0x710, 0x88f, 0x892, 0x8e1,
					  0x8e3, 0x110bc, 0x110be, 0x1342f, 0x13439, 0xfffc };
	size_t n_cp = 0;
	for (size_t r = 0; r < sizeof cf / sizeof cf[0]; r++)
		for (unsigned cp = cf[r][0]; cp <= cf[r][1]; cp++, n_cp++) {
			char in[8], want[16];
			int n = encode(cp, in);
			snprintf(want, sizeof want, "\\u{%04x}", cp);
			check_text(in, (size_t)n, 0, want);
			/* and among other text, through the fast path */
			char line[32], wline[48];
			memcpy(line, "svc.name", 8);
			memcpy(line + 8, in, (size_t)n);
			memcpy(line + 8 + n, "tail", 4);
			snprintf(wline, sizeof wline, "svc.name%stail", want);
			check_text(line, (size_t)n + 12, 0, wline);
		}
	assert_int_equal(n_cp, 165);            /* Cf 163, Zl 1, Zp 1 in 14.0.0 */
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		char in[8];
		int n = encode(plain[i], in);
		in[n] = 0;
		check_text(in, (size_t)n, 0, in);
	}
}

/* Columns, as a terminal draws them: a table pads by these. */
static void test_text_cols(void **state)
{
	(void)state;
	assert_int_equal(peertext_cols(""), 0);
	assert_int_equal(peertext_cols(NULL), 0);
	assert_int_equal(peertext_cols("echo"), 4);
	assert_int_equal(peertext_cols("caf\xc3\xa9"), 4);                  /* é: 2 bytes, 1 column */
	assert_int_equal(peertext_cols("cafe\xcc\x81"), 4);                 /* e + U+0301: 0 */
	assert_int_equal(peertext_cols("\xe6\xbc\xa2\xe5\xad\x97"), 4);     /* 漢字: 2 each */
	assert_int_equal(peertext_cols("\xef\xbc\xa1"), 2);                 /* fullwidth A */
	assert_int_equal(peertext_cols("\xf0\x9f\x98\x80"), 2);             /* emoji */
	assert_int_equal(peertext_cols("\xea\xb0\x80"), 2);                 /* Hangul syllable */
	assert_int_equal(peertext_cols("\xe1\x84\x80\xe1\x85\xa1"), 2);     /* jamo L + V: 2 + 0 */
	assert_int_equal(peertext_cols("\xd0\x96"), 1);                     /* Cyrillic */
	/* a shown escape: its length */
	assert_int_equal(peertext_cols(peertext_text("\x1b\\\xe2\x80\xae", 5)), 4 + 2 + 8);

	/* a table of cells padded to 6 columns: the "|" after each is in column 7 */
	static const char *const cells[] = { "abc", "\xc3\xa9t\xc3\xa9", "\xe6\xbc\xa2\xe5\xad\x97",
					     "e\xcc\x81\xcc\x82", "\\", "\xf0\x9f\x98\x80\xe6\xbc\xa2x",
					     "toolongcell" };
	for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
		const char *shown = peertext_textz(cells[i]);
		char line[128];
		snprintf(line, sizeof line, "%-*s|", peertext_field(shown, 6), shown);
		char *bar = strrchr(line, '|');
		*bar = 0;
		int cols = peertext_cols(line);
		int want = peertext_cols(shown) > 6 ? peertext_cols(shown) : 6;
		if (cols != want) {
			print_error("cell \"%s\" padded to %d columns, not %d\n", line, cols, want);
			fail();
		}
	}
}

/* A cell cut to N columns is cut between characters and escapes, a
 * combining mark kept with its character. */
static void test_text_prefix(void **state)
{
	(void)state;
	int used;
	const char *s = "\xe6\xbc\xa2\xe5\xad\x97\xe6\xbc\xa2";                 /* 漢字漢 */
	assert_int_equal(peertext_prefix(s, 3, &used), 3);
	assert_int_equal(used, 2);
	assert_int_equal(peertext_prefix(s, 4, &used), 6);
	assert_int_equal(used, 4);
	const char *shown = peertext_text("ab\x1b" "cd", 5);                     /* ab\x1bcd */
	for (int cols = 0; cols <= 9; cols++) {
		size_t n = peertext_prefix(shown, cols, &used);
		size_t want = cols < 2 ? (size_t)cols : cols < 6 ? 2 : (size_t)cols;
		assert_int_equal(n, want > 8 ? 8 : want);
		assert_int_equal(used, (int)(want > 8 ? 8 : want));
	}
	assert_int_equal(peertext_prefix("ae\xcc\x81" "b", 2, &used), 4);  /* a, e + U+0301 */
	assert_int_equal(used, 2);
	assert_int_equal(peertext_prefix(NULL, 5, &used), 0);
	assert_int_equal(used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii_and_escapes),
		cmocka_unit_test(test_utf8_passes),
		cmocka_unit_test(test_invalid_bytes_replaced),
		cmocka_unit_test(test_all_short_strings),
		cmocka_unit_test(test_text_controls_shown),
		cmocka_unit_test(test_text_no_control_survives),
		cmocka_unit_test(test_text_bounded),
		cmocka_unit_test(test_text_pages),
		cmocka_unit_test(test_text_cut_whole),
		cmocka_unit_test(test_text_backslash),
		cmocka_unit_test(test_text_fast_path),
		cmocka_unit_test(test_text_trojan),
		cmocka_unit_test(test_text_every_format_character),
		cmocka_unit_test(test_text_cols),
		cmocka_unit_test(test_text_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
