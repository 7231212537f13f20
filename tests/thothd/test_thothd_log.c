/*
 * test_thothd_log.c - thothd's log line as a reader sees it: a message
 * longer than the line's room ends "..." after its last whole letter
 * (cut silently it looked whole), a short one carries no mark, and a
 * peer's control bytes are escaped either way.  And the two limits of
 * thothd_log_limited_both (a source's own, and a cap on all sources):
 * which holds a line back, and what the next line says of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "peertext.h"

/* The one line thothd_log writes for MSG, stderr caught in a temporary
 * file; the message part (after "info: "), newline removed. */
static char *logged(const char *msg)
{
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	thothd_log(THOTHD_LOG_INFO, "%s", msg);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	static char line[8192];
	rewind(tmp);
	assert_non_null(fgets(line, sizeof line, tmp));
	assert_null(fgets((char[8]){ 0 }, 8, tmp));     /* one line, not two */
	fclose(tmp);
	size_t n = strlen(line);
	assert_true(n > 0 && line[n - 1] == '\n');
	line[n - 1] = '\0';
	char *text = strstr(line, " info: ");
	assert_non_null(text);
	return text + strlen(" info: ");
}

/* The message part logged for N copies of the letter C. */
static char *logged_run(char c, size_t n)
{
	static char msg[4096];
	assert_true(n < sizeof msg);
	memset(msg, c, n);
	msg[n] = '\0';
	return logged(msg);
}

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && memcmp(s + n - t, tail, t) == 0;
}

static void test_a_short_line_is_whole_and_unmarked(void **state)
{
	(void)state;
	char *text = logged("peer said \x1b[2J\r\nthothd: forged");
	assert_string_equal(text, "peer said \\x1b[2J\\x0d\\x0athothd: forged");
}

static void test_a_long_line_ends_with_a_visible_cut(void **state)
{
	(void)state;
	char *text = logged_run('a', 2999);
	assert_true(ends_with(text, "..."));
	assert_true(strlen(text) > 1000 && strlen(text) < 1100);
	assert_int_equal(strspn(text, "a"), strlen(text) - 3);
}

/* A two-byte letter across the cut: dropped whole, not written as a
 * stray \xc3; and the cut still marked. */
static void test_a_letter_across_the_cut_is_dropped_not_escaped(void **state)
{
	(void)state;
	char msg[1100];
	memset(msg, 'b', 1022);           /* the line keeps bytes 0..1022 */
	for (size_t i = 1022; i + 1 < sizeof msg; i += 2) {
		msg[i] = (char)0xc3;         /* é: its first byte is the last kept */
		msg[i + 1] = (char)0xa9;
	}
	msg[sizeof msg - 1] = '\0';
	char *text = logged(msg);
	assert_null(strstr(text, "\\xc3"));
	assert_true(ends_with(text, "..."));
	assert_int_equal(strspn(text, "b"), 1022);
}

/* Exactly as long as the room (1023 bytes): whole, unmarked. */
static void test_a_line_that_just_fits_is_unmarked(void **state)
{
	(void)state;
	char *text = logged_run('c', 1023);
	assert_int_equal(strlen(text), 1023);
	assert_false(ends_with(text, "..."));
}

/* A peer's name that reorders or hides part of the line (hist46): a bidi
 * override, a format character that is not Default_Ignorable (U+0600),
 * the line separator, a tag character: each \u{X}, as thothctl shows
 * them (tools/peertext, the same code), never raw.  Before, thothd wrote
 * them as they were: "registered svc<RLO>live.evil" read reversed. */
static void test_a_peers_bidi_and_format_characters_are_escaped(void **state)
{
	(void)state;
	const char *name = "svc\xe2\x80\xae" "live.evil \xd8\x80 \xe2\x80\xa8 \xf3\xa0\x81\x81 \\";
	char msg[256];
	snprintf(msg, sizeof msg, "registered %s 1.0.0", name);
	char *text = logged(msg);
	assert_string_equal(text, "registered svc\\u{202e}live.evil \\u{0600} \\u{2028} \\u{e0041} \\\\ 1.0.0");
	/* thothctl's rule, to the byte */
	char want[256];
	snprintf(want, sizeof want, "registered %s 1.0.0", peertext_textz(name));
	assert_string_equal(text, want);
}

/* A line of 600 RLOs (1,800 bytes): cut after the last whole one that
 * fits the line's room, still "...", no half escape, no raw byte. */
static void test_a_long_line_of_overrides_is_cut_whole(void **state)
{
	(void)state;
	char msg[1801];
	for (size_t i = 0; i < 600; i++)
		memcpy(msg + 3 * i, "\xe2\x80\xae", 3);
	msg[1800] = '\0';
	char *text = logged(msg);
	assert_true(ends_with(text, "..."));
	size_t n = strlen(text) - 3;
	assert_int_equal(n % 8, 0);
	assert_int_equal(n / 8, 341);           /* 1,023 bytes of the raw line: 341 whole */
	for (size_t i = 0; i < n; i += 8)
		assert_memory_equal(text + i, "\\u{202e}", 8);
}

/* Two sources under their own limits (3 lines each) and a cap on both
 * (4 lines): no refill (0 per second), so the counts are exact.  A is
 * held back by its own limit after 3, B by the cap after 1 (A spent 3 of
 * its 4); B's held-back lines are said with its next line once the cap
 * has room, and counted in the cap's total. */
static void test_a_cap_over_all_sources_holds_back_what_their_own_limits_let_through(void **state)
{
	(void)state;
	thothd_log_limit_t a = { .burst = 3 }, b = { .burst = 3 }, all = { .burst = 4 };
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	int ra[5], rb[3], rlast;
	for (int i = 0; i < 5; i++)
		ra[i] = thothd_log_limited_both(&a, &all, THOTHD_LOG_INFO, "host a %d", i);
	for (int i = 0; i < 3; i++)
		rb[i] = thothd_log_limited_both(&b, &all, THOTHD_LOG_INFO, "host b %d", i);
	all.tokens = 1.0;               /* the cap has room again (a refill, without waiting) */
	rlast = thothd_log_limited_both(&b, &all, THOTHD_LOG_INFO, "host b last");
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	assert_int_equal(ra[0], 0);
	assert_int_equal(ra[1], 0);
	assert_int_equal(ra[2], 0);
	assert_int_equal(ra[3], 1);     /* A's own limit */
	assert_int_equal(ra[4], 1);
	assert_int_equal(rb[0], 0);     /* the cap's 4th line */
	assert_int_equal(rb[1], 2);     /* the cap, while B's own limit has room */
	assert_int_equal(rb[2], 2);
	assert_int_equal(rlast, 0);
	assert_int_equal(a.suppressed_total, 2);
	assert_int_equal(b.suppressed_total, 2);
	assert_int_equal(all.suppressed_total, 2);
	assert_int_equal(b.suppressed, 0);      /* said with "host b last" */
	rewind(tmp);
	char line[512];
	int lines = 0, said = 0;
	while (fgets(line, sizeof line, tmp)) {
		lines++;
		if (strstr(line, "host b last (2 similar lines suppressed)"))
			said++;
	}
	fclose(tmp);
	assert_int_equal(lines, 5);     /* a 0-2, b 0, b last */
	assert_int_equal(said, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_short_line_is_whole_and_unmarked),
		cmocka_unit_test(test_a_long_line_ends_with_a_visible_cut),
		cmocka_unit_test(test_a_letter_across_the_cut_is_dropped_not_escaped),
		cmocka_unit_test(test_a_line_that_just_fits_is_unmarked),
		cmocka_unit_test(test_a_peers_bidi_and_format_characters_are_escaped),
		cmocka_unit_test(test_a_long_line_of_overrides_is_cut_whole),
		cmocka_unit_test(test_a_cap_over_all_sources_holds_back_what_their_own_limits_let_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
