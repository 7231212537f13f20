/*
 * skip.h - cmocka's skip() with the reason said first.  make test's stages
 * end with every skipped case and the reason it printed between cmocka's
 * "[ RUN      ]" and "[  SKIPPED ]" lines (tests/common/stage_skips.py);
 * print_message flushes stdout, cmocka's own stream, so the reason lands
 * between the two.  `stage_skips.py --lint` (test_stage_skips) fails on a
 * skip() with no print_message or fprintf(stderr, ...) just before it.
 * Include after <cmocka.h>.
 */
#ifndef THOTH_TESTS_COMMON_SKIP_H
#define THOTH_TESTS_COMMON_SKIP_H

/* skip_because("no io_uring here: %s", why): skipped with that reason. */
#define skip_because(...)                                  \
	do {                                               \
		print_message("skipped: " __VA_ARGS__);    \
		print_message("\n");                       \
		skip();                                    \
	} while (0)

#endif
