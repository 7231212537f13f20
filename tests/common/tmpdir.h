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

#endif
