/*
 * test_error.c - thoth/error.h: every code keeps its value (they travel in
 * error responses), has its own name and message, and THOTH_E_IO keeps the
 * failed call and its errno for the thread that saw it.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/error.h"
#include "../common/tmpdir.h"

static const struct { int value; const char *name; } table[] = {
#define ROW_(name, value, msg) { value, "THOTH_" #name },
	THOTH_ERROR_MAP(ROW_)
#undef ROW_
};
#define N_CODES (sizeof table / sizeof table[0])

static void test_code_values_never_change(void **state)
{
	/* Pinned by hand: a renumbering breaks every peer built before it. */
	static const struct { int code, value; } pinned[] = {
		{ THOTH_OK, 0 }, { THOTH_E_INVAL, -1 }, { THOTH_E_NOMEM, -2 }, { THOTH_E_NO_SPACE, -3 },
		{ THOTH_E_LIMIT, -4 }, { THOTH_E_NOT_FOUND, -5 }, { THOTH_E_EXISTS, -6 },
		{ THOTH_E_PERM, -7 }, { THOTH_E_IO, -8 }, { THOTH_E_AGAIN, -9 }, { THOTH_E_TIMEDOUT, -10 },
		{ THOTH_E_BUSY, -11 }, { THOTH_E_TRUNCATED, -20 }, { THOTH_E_BAD_MAGIC, -21 },
		{ THOTH_E_BAD_LENGTH, -22 }, { THOTH_E_BAD_ALIGN, -23 }, { THOTH_E_BAD_UTF8, -24 },
		{ THOTH_E_BAD_ENUM, -25 }, { THOTH_E_BAD_BOOL, -26 }, { THOTH_E_TOO_DEEP, -27 },
		{ THOTH_E_BAD_FLAGS, -28 }, { THOTH_E_BAD_PRESENCE, -29 }, { THOTH_E_TOO_LARGE, -30 },
		{ THOTH_E_ALIASED, -31 }, { THOTH_E_BAD_NUL, -32 }, { THOTH_E_BAD_VERSION, -40 },
		{ THOTH_E_NO_FEATURE, -41 }, { THOTH_E_UNKNOWN_METHOD, -42 },
		{ THOTH_E_UNKNOWN_IFACE, -43 }, { THOTH_E_CONTRACT, -44 }, { THOTH_E_PROTOCOL, -45 },
		{ THOTH_E_REMOTE, -46 }, { THOTH_E_PEER_GONE, -60 }, { THOTH_E_CLOSED, -61 },
		{ THOTH_E_CORRUPT, -62 }, { THOTH_E_NOT_RUNNING, -63 },
	};
	for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
		assert_int_equal(pinned[i].code, pinned[i].value);
	/* and the table has exactly these: a new code needs a pinned row too */
	assert_int_equal(N_CODES, sizeof pinned / sizeof pinned[0]);
}

static void test_every_code_has_its_own_name_and_message(void **state)
{
	for (size_t i = 0; i < N_CODES; i++) {
		int v = table[i].value;
		assert_string_equal(thoth_errname(v), table[i].name);
		assert_string_not_equal(thoth_strerror(v), "unknown error");
		for (size_t k = 0; k < i; k++) {
			assert_int_not_equal(table[k].value, v);
			assert_string_not_equal(thoth_strerror(table[k].value), thoth_strerror(v));
		}
	}
	assert_string_equal(thoth_errname(THOTH_E_IO), "THOTH_E_IO");
	assert_string_equal(thoth_strerror(THOTH_E_IO), "system call failed");
}

static void test_a_value_that_is_no_code_is_named_unknown(void **state)
{
	assert_string_equal(thoth_errname(-12345), "THOTH_E_UNKNOWN");
	assert_string_equal(thoth_strerror(7), "unknown error");
}

/* A real failing call: binding a Unix socket to a path already bound. */
static void test_io_error_keeps_the_call_and_its_errno(void **state)
{
	char dir[256];
	assert_true(test_sock_template(dir, TEST_SOCK_DIR_CAP("/x.sock"), "thoth-error"));
	assert_non_null(mkdtemp(dir));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/x.sock", dir);
	assert_true(n > 0 && (size_t)n < sizeof sa.sun_path);
	int a = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(a, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(bind(b, (struct sockaddr *)&sa, sizeof sa), -1);
	int r = thoth_error_io(errno, "listen %s", sa.sun_path);
	close(a);
	close(b);
	unlink(sa.sun_path);
	rmdir(dir);

	assert_int_equal(r, THOTH_E_IO);
	assert_int_equal(thoth_last_errno(), EADDRINUSE);
	const thoth_error_info_t *info = thoth_last_error();
	assert_int_equal(info->code, THOTH_E_IO);
	char want[200], buf[300];
	snprintf(want, sizeof want, "listen %s", sa.sun_path);
	assert_string_equal(info->what, want);
	snprintf(want, sizeof want, "system call failed: listen %s: EADDRINUSE (Address already in use)",
		 sa.sun_path);
	assert_string_equal(thoth_strerror_r(THOTH_E_IO, buf, sizeof buf), want);
	/* other codes are explained by their message alone */
	assert_string_equal(thoth_strerror_r(THOTH_E_INVAL, buf, sizeof buf), "invalid argument");
}

static void *fail_on_other_thread(void *arg)
{
	(void)arg;
	thoth_error_io(EACCES, "open %s", "/elsewhere");
	return (void *)(long)thoth_last_errno();
}

static void test_io_error_record_belongs_to_its_thread(void **state)
{
	thoth_error_io(ENOENT, "open %s", "/here");
	pthread_t t;
	void *theirs;
	assert_int_equal(pthread_create(&t, NULL, fail_on_other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &theirs), 0);
	assert_int_equal((long)theirs, EACCES);
	assert_int_equal(thoth_last_errno(), ENOENT);
	assert_string_equal(thoth_last_error()->what, "open /here");
}

/* A record longer than its 160 bytes (a path under a long TMPDIR) ends in
 * "...", and a UTF-8 character at the cut is dropped whole, not halved. */
static void test_a_long_record_is_cut_visibly_at_a_character(void **state)
{
	(void)state;
	size_t cap = sizeof thoth_last_error()->what;
	char path[400];
	memset(path, 'a', sizeof path - 1);
	path[sizeof path - 1] = 0;
	thoth_error_io(ENAMETOOLONG, "open %s", path);
	const char *what = thoth_last_error()->what;
	assert_int_equal(strlen(what), cap - 1);
	assert_memory_equal(what, "open aaaa", 9);
	assert_string_equal(what + cap - 4, "...");
	assert_int_equal(thoth_last_errno(), ENAMETOOLONG);
	/* "é" (2 bytes) over byte 156, the first the "..." takes: all of
	 * it goes, the text before it stays. */
	for (int start = (int)cap - 6; start <= (int)cap - 3; start++) {
		memset(path, 'b', sizeof path - 1);
		memcpy(path + start - 5, "\xc3\xa9", 2);      /* "open " is 5 bytes */
		thoth_error_io(EIO, "open %s", path);
		what = thoth_last_error()->what;
		size_t len = strlen(what);
		assert_int_equal(memcmp(what + len - 3, "...", 3), 0);
		for (size_t i = 0; i + 3 < len; i++)
			if (((unsigned char)what[i] & 0xC0) == 0xC0)
				assert_true(i + 1 < len - 3);   /* a lead byte keeps its tail */
		if (start == (int)cap - 5)
			assert_int_equal(len, (size_t)start + 3);   /* over the cut: dropped whole */
		else
			assert_int_equal(len, cap - 1);             /* wholly before or after it */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_code_values_never_change),
		cmocka_unit_test(test_every_code_has_its_own_name_and_message),
		cmocka_unit_test(test_a_value_that_is_no_code_is_named_unknown),
		cmocka_unit_test(test_io_error_keeps_the_call_and_its_errno),
		cmocka_unit_test(test_io_error_record_belongs_to_its_thread),
		cmocka_unit_test(test_a_long_record_is_cut_visibly_at_a_character),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
