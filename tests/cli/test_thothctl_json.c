/*
 * test_thothctl_json - thothctl's JSON string writer (tools/thothctl/json.c):
 * whatever bytes a registrant, a codex record or a probe object holds, the
 * string written is valid JSON, and so UTF-8 (RFC 8259 8.1): well-formed
 * sequences pass through, every other byte is U+FFFD, controls escaped.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii_and_escapes),
		cmocka_unit_test(test_utf8_passes),
		cmocka_unit_test(test_invalid_bytes_replaced),
		cmocka_unit_test(test_all_short_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
