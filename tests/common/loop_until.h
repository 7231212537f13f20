/*
 * loop_until.h - run a test's own thoth_loop until a condition holds or a
 * deadline passes: the set-up the NIC and NVMe moderation tests shared
 * line for line (tests/pm).  Every turn of the loop is bounded by a 20 ms
 * timer, so a condition that no event makes true is still looked at.
 */
#ifndef THOTH_TESTS_COMMON_LOOP_UNTIL_H
#define THOTH_TESTS_COMMON_LOOP_UNTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "testutil.h"
#include "thoth/loop.h"

static inline void test_loop_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)loop;
	(void)t;
	*(bool *)arg = true;
}

/* Run LOOP until PRED(ARG) or TIMEOUT_MS; returns PRED's last answer. */
static inline bool test_loop_until(thoth_loop_t *loop, bool (*pred)(void *), void *arg, unsigned timeout_ms)
{
	uint64_t end = test_now_ms() + timeout_ms;
	while (!pred(arg) && test_now_ms() < end) {
		bool fired = false;
		thoth_timer_t *t;
		thoth_loop_add_timer_in(loop, 20000000u, 0, test_loop_tick, &fired, &t);
		thoth_loop_run_once(loop, true);
		if (!fired)
			thoth_timer_cancel(loop, t);
	}
	return pred(arg);
}

#endif
