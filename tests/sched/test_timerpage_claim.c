/*
 * test_timerpage_claim.c - the window page's high-water mark against a
 * process of the uid that rewrites it (kernel/sched/timerpage.c, SCHED-3):
 *
 * - a claim raises `high` with at most TIMERPAGE_HIGH_TRIES exchanges,
 *   however often the word is rewritten between its load and its
 *   exchange, and still returns the slot it took: the scribbler costs the
 *   claimer eight tries, never a spin.  Deterministic: this file compiles
 *   timerpage.c itself with the exchange routed through a seam that fails
 *   as the test says, as a scribbler winning every race would, and counts
 *   the tries.  The seam gives in after SEAM_MAX_FAILURES failures, so a
 *   claim without the bound fails here by its count, never by a hang;
 * - readers clamp a hostile `high` (THOTH_TIMERPAGE_SLOTS + 1, + 8,
 *   UINT32_MAX) to the page's slots: bait words placed in memory right
 *   after the page, inside the reader's window, are never picked or rung.
 *
 * The library's build expands the seam to the very exchange it had
 * (docs/LOOP.md gives the object-code check).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

/* The seam: every exchange on `high` goes through here. */
static bool seam_hostile;               /* false: the real exchange */
static uint32_t seam_rewrite_to;        /* what the "scribbler" leaves in `high` */
static unsigned seam_tries;
enum { SEAM_MAX_FAILURES = 1000 };      /* then it lets one through: never a hang */

static bool seam_cas(_Atomic uint32_t *obj, uint32_t *expected, uint32_t desired)
{
	seam_tries++;
	if (seam_hostile && seam_tries <= SEAM_MAX_FAILURES) {
		/* The scribbler wrote between our load and our exchange: the
		 * exchange fails and reports what is there now. */
		atomic_store_explicit(obj, seam_rewrite_to, memory_order_relaxed);
		*expected = seam_rewrite_to;
		return false;
	}
	return atomic_compare_exchange_weak(obj, expected, desired);
}

#define TIMERPAGE_HIGH_CAS(obj, expected, desired) seam_cas(obj, expected, desired)
#include "../../kernel/sched/timerpage.c"

#define MS 1000000ull

static void seam_reset(bool hostile, uint32_t rewrite_to)
{
	seam_hostile = hostile;
	seam_rewrite_to = rewrite_to;
	seam_tries = 0;
}

static void test_a_claim_gives_up_raising_high_after_the_bound_and_keeps_its_slot(void **state)
{
	timerpage_t *pg = calloc(1, sizeof *pg);
	assert_non_null(pg);
	timerpage_init(pg);
	/* Undisturbed: one exchange raises the mark past the slot taken. */
	seam_reset(false, 0);
	assert_int_equal(timerpage_claim(pg, 100, false), 0);
	assert_int_equal(seam_tries, 1);
	assert_int_equal(atomic_load(&pg->high), 1);
	/* A scribbler that puts 0 back before each of our exchanges: exactly
	 * the bound, then the claim returns its slot, owned by us. */
	seam_reset(true, 0);
	assert_int_equal(timerpage_claim(pg, 101, false), 1);
	assert_int_equal(seam_tries, TIMERPAGE_HIGH_TRIES);
	assert_int_equal(TIMERPAGE_HIGH_TRIES, 8);
	assert_int_equal((int)atomic_load(&pg->slot[1].owner), 101);
	assert_int_equal(atomic_load(&pg->high), 0);    /* the hint lost, nothing else */
	/* The next claim, undisturbed, raises it again (slot 2: high 3). */
	seam_reset(false, 0);
	assert_int_equal(timerpage_claim(pg, 102, false), 2);
	assert_int_equal(seam_tries, 1);
	assert_int_equal(atomic_load(&pg->high), 3);
	/* A rewrite to a mark already past our slot ends the tries at once:
	 * nothing left to raise. */
	seam_reset(true, 50);
	assert_int_equal(timerpage_claim(pg, 103, false), 3);
	assert_int_equal(seam_tries, 1);
	assert_int_equal(atomic_load(&pg->high), 50);
	/* A mark already high enough at the load: no exchange at all. */
	seam_reset(true, 0);
	assert_int_equal(timerpage_claim(pg, 104, false), 4);
	assert_int_equal(seam_tries, 0);
	seam_reset(false, 0);
	free(pg);
}

/* A page followed in memory by slots that are not its own, as bait: a
 * reader that trusted `high` past THOTH_TIMERPAGE_SLOTS would read them. */
typedef struct baited {
	timerpage_t pg;
	timerpage_slot_t beyond[8];
} baited_t;

static void collect(int slot, void *arg)
{
	int *n = arg;
	(void)slot;
	(*n)++;
}

static void test_readers_clamp_a_hostile_high_to_the_page(void **state)
{
	_Static_assert(offsetof(baited_t, beyond) ==
		       offsetof(timerpage_t, slot) + THOTH_TIMERPAGE_SLOTS * sizeof(timerpage_slot_t),
		       "the bait lies where slot[THOTH_TIMERPAGE_SLOTS] would");
	baited_t *b = calloc(1, sizeof *b);
	assert_non_null(b);
	timerpage_init(&b->pg);
	/* The bait: owned, due long ago, waking inside the window below. */
	for (unsigned k = 0; k < 8; k++) {
		atomic_store(&b->beyond[k].owner, 7);
		atomic_store(&b->beyond[k].at, 150 * MS);
		atomic_store(&b->beyond[k].due, 1);
	}
	const uint32_t hostile[] = { THOTH_TIMERPAGE_SLOTS + 1, THOTH_TIMERPAGE_SLOTS + 8, UINT32_MAX };
	for (unsigned h = 0; h < sizeof hostile / sizeof hostile[0]; h++) {
		atomic_store(&b->pg.high, hostile[h]);
		bool joined = true;
		assert_int_equal(timerpage_pick(&b->pg, -1, 100 * MS, 200 * MS, &joined), 200 * MS);
		assert_false(joined);
		int rung = 0;
		timerpage_due_sleepers(&b->pg, -1, 100 * MS, 0, collect, &rung);
		assert_int_equal(rung, 0);
		/* The page's own last slot is still read: clamped, not ignored. */
		atomic_store(&b->pg.slot[THOTH_TIMERPAGE_SLOTS - 1].owner, 9);
		timerpage_post(&b->pg, THOTH_TIMERPAGE_SLOTS - 1, 170 * MS, 1);
		assert_int_equal(timerpage_pick(&b->pg, -1, 100 * MS, 200 * MS, &joined), 170 * MS);
		assert_true(joined);
		timerpage_due_sleepers(&b->pg, -1, 100 * MS, 0, collect, &rung);
		assert_int_equal(rung, 1);
		atomic_store(&b->pg.slot[THOTH_TIMERPAGE_SLOTS - 1].owner, 0);
		timerpage_post(&b->pg, THOTH_TIMERPAGE_SLOTS - 1, 0, 0);
	}
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_claim_gives_up_raising_high_after_the_bound_and_keeps_its_slot),
		cmocka_unit_test(test_readers_clamp_a_hostile_high_to_the_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
