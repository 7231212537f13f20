/*
 * tmpdir.h - where a test makes its temporary files: under $TMPDIR when it
 * is set, else /tmp.  make test gives each ctest stage a TMPDIR of its own
 * and fails the stage on anything left there (tests/common/clean_stage.py),
 * which sees only what a test made under TMPDIR: no test hard-codes /tmp.
 */
#ifndef THOTH_TESTS_COMMON_TMPDIR_H
#define THOTH_TESTS_COMMON_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static inline const char *test_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* BUF = "$TMPDIR/NAME-XXXXXX", a template for mkdtemp or mkstemp; false
 * (and BUF empty) when it does not fit in CAP. */
static inline int test_tmp_template(char *buf, size_t cap, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s-XXXXXX", test_tmpdir(), name);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "TMPDIR %s is too long for %s\n", test_tmpdir(), name);
		if (cap)
			buf[0] = 0;
		return 0;
	}
	return 1;
}

/* The CAP for test_sock_template that leaves room for NAME (a literal,
 * "/svc.sock") below the folder in a sockaddr_un's 108-byte path. */
#define TEST_SOCK_DIR_CAP(name) (sizeof(((struct sockaddr_un *)0)->sun_path) - (sizeof(name) - 1))

/* A folder for unix sockets: BUF = "$TMPDIR/NAME-XXXXXX" when that fits
 * in CAP (the caller's CAP leaves room for its socket names below it in a
 * sun_path of 108 bytes), else a short one in /tmp named for the stage,
 * "/tmp/MARK-NAME-XXXXXX" with MARK the base name of $THOTH_TEST_STAGE
 * (thoth-stage-XXXXXXXX; "thoth-short" outside make test): a developer's
 * long TMPDIR would otherwise fail every socket test, and the stage's guard
 * (tests/common/clean_stage.py) checks and removes /tmp/MARK-* as it does
 * its TMPDIR, so the fallback is no place to leave things.  The caller
 * removes the folder as it would under TMPDIR.  False (BUF empty, the
 * reason on stderr) only when even the short name does not fit. */
static inline int test_sock_template(char *buf, size_t cap, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s-XXXXXX", test_tmpdir(), name);
	if (n >= 0 && (size_t)n < cap)
		return 1;
	const char *stage = getenv("THOTH_TEST_STAGE");
	const char *mark = stage && *stage ? strrchr(stage, '/') : NULL;
	mark = mark && mark[1] ? mark + 1 : "thoth-short";
	n = snprintf(buf, cap, "/tmp/%s-%s-XXXXXX", mark, name);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "TMPDIR %s is too long for %s's sockets, and so is /tmp/%s-%s-XXXXXX "
			"(at most %zu bytes)\n", test_tmpdir(), name, mark, name, cap ? cap - 1 : 0);
		if (cap)
			buf[0] = 0;
		return 0;
	}
	return 1;
}

#endif
