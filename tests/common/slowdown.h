/*
 * slowdown.h - deadlines for tests that wait on conditions, scaled for
 * sanitizer builds.
 *
 * A deadline is how long a test waits for something that must happen
 * before it calls it a failure: it bounds a hang, it does not measure
 * speed (benchmarks do that, bench/).  ASan+UBSan code runs 2-3x slower,
 * and a loaded 2-vCPU CI box stretches that again, so a deadline chosen
 * for the plain build fails sanitizer runs of correct code (test_pool at
 * load 20).  THOTH_TEST_DEADLINE_MS(ms) is MS in the plain build and
 * THOTH_TEST_SLOWDOWN times MS under a sanitizer.  Only deadlines go
 * through it: a bound that a property asserts (a backoff at least 600 ms,
 * a p99 within 2x of a baseline) must not be scaled.
 */
#ifndef THOTH_TESTS_COMMON_SLOWDOWN_H
#define THOTH_TESTS_COMMON_SLOWDOWN_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define THOTH_TEST_SLOWDOWN 4
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define THOTH_TEST_SLOWDOWN 4
#endif
#endif
#ifndef THOTH_TEST_SLOWDOWN
#define THOTH_TEST_SLOWDOWN 1
#endif

#define THOTH_TEST_DEADLINE_MS(ms) ((ms) * THOTH_TEST_SLOWDOWN)

#endif
