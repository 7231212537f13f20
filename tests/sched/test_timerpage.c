/*
 * test_timerpage.c - timers shared across processes through thothd's
 * window page (SCHED-3, issue 13 section 3; kernel/sched/timerpage.h):
 * a loop woken by its timer rings the loops of other processes whose
 * deadline has passed, so real processes with overlapping windows wake at
 * one instant; nothing ever fires before its deadline; a page full of
 * hostile values costs wake-ups, never correctness; a file that is not
 * the page thothd writes is refused.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/loop.h"
#include "timerpage.h"

#define MS 1000000ull

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

static void test_pick_never_leaves_the_window_whatever_the_page_says(void **state)
{
	timerpage_t *pg = calloc(1, sizeof *pg);
	assert_non_null(pg);
	for (int round = 0; round < 2000; round++) {
		/* Hostile words everywhere, the high-water mark included. */
		for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
			pg->slot[i].owner = (uint32_t)next_rand();
			pg->slot[i].at = next_rand() % 4 ? next_rand() % (100 * MS) : next_rand();
			pg->slot[i].due = next_rand();
		}
		pg->high = (uint32_t)next_rand();
		uint64_t lo = next_rand() % (100 * MS), hi = lo + next_rand() % (10 * MS);
		bool joined;
		uint64_t at = timerpage_pick(pg, (int)(next_rand() % 300) - 50, lo, hi, &joined);
		assert_true(at >= lo && at <= hi);
		if (!joined)
			assert_true(at == hi);
	}
	/* Joining: the latest posted instant inside the window, not our own. */
	timerpage_init(pg);
	assert_int_equal(timerpage_claim(pg, 11, false), 0);
	assert_int_equal(timerpage_claim(pg, 12, false), 1);
	assert_int_equal(timerpage_claim(pg, 13, false), 2);
	timerpage_post(pg, 0, 50, 40);
	timerpage_post(pg, 1, 70, 60);
	timerpage_post(pg, 2, 65, 60);
	bool joined;
	assert_int_equal(timerpage_pick(pg, 2, 40, 80, &joined), 70);
	assert_true(joined);
	assert_int_equal(timerpage_pick(pg, 1, 40, 68, &joined), 65);
	assert_int_equal(timerpage_pick(pg, 1, 40, 64, &joined), 50);
	assert_int_equal(timerpage_pick(pg, 0, 71, 90, &joined), 90);
	assert_false(joined);
	free(pg);
}

typedef struct rung {
	int slot[THOTH_TIMERPAGE_SLOTS];
	int n;
} rung_t;

static void collect(int slot, void *arg)
{
	rung_t *r = arg;
	r->slot[r->n++] = slot;
}

static void test_due_sleepers_are_the_slots_with_a_passed_deadline_that_wake_later(void **state)
{
	timerpage_t *pg = calloc(1, sizeof *pg);
	assert_non_null(pg);
	timerpage_init(pg);
	for (uint32_t i = 0; i < 5; i++)
		assert_int_equal(timerpage_claim(pg, 100 + i, false), (int)i);
	timerpage_post(pg, 0, 100 * MS, 90 * MS);   /* us */
	timerpage_post(pg, 1, 130 * MS, 95 * MS);   /* due, wakes later: rung */
	timerpage_post(pg, 2, 130 * MS, 120 * MS);  /* not due yet */
	timerpage_post(pg, 3, 100 * MS + 10000, 80 * MS); /* wakes within the margin anyway */
	timerpage_post(pg, 4, 0, 0);                /* nothing armed */
	rung_t r = { .n = 0 };
	timerpage_due_sleepers(pg, 0, 100 * MS, 50000, collect, &r);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.slot[0], 1);
	/* A released slot is never rung; a hostile high-water mark is clamped
	 * (ASan checks no slot past the page is read). */
	timerpage_release(pg, 1, 101);
	pg->high = 0xffffffffu;
	r.n = 0;
	timerpage_due_sleepers(pg, 0, 100 * MS, 50000, collect, &r);
	assert_int_equal(r.n, 0);
	/* Release checks the owner; claiming reuses the freed slot. */
	timerpage_release(pg, 2, 999);
	assert_int_equal((int)pg->slot[2].owner, 102);
	assert_int_equal(timerpage_claim(pg, 200, false), 1);
	free(pg);
}

static char dir[64];

static void path_in(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static void write_file(const char *name, size_t len, mode_t mode, uint64_t magic)
{
	char p[128];
	path_in(p, sizeof p, name);
	unlink(p);
	int fd = open(p, O_RDWR | O_CREAT | O_EXCL, mode);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	if (len >= 8)
		assert_int_equal(pwrite(fd, &magic, 8, 0), 8);
	fchmod(fd, mode);
	close(fd);
}

static void test_open_refuses_what_thothd_did_not_write(void **state)
{
	char p[128], sub[128];
	/* Nothing there. */
	assert_true(thoth__timerpage_open(dir) < 0);
	assert_null(thoth__timerpage_current());
	/* Wrong size, readable by others, wrong magic, a symlink. */
	write_file(THOTH_TIMERPAGE_NAME, 100, 0600, THOTH_TIMERPAGE_MAGIC);
	assert_int_equal(thoth__timerpage_open(dir), THOTH_E_PERM);
	write_file(THOTH_TIMERPAGE_NAME, THOTH_TIMERPAGE_SIZE, 0644, THOTH_TIMERPAGE_MAGIC);
	assert_int_equal(thoth__timerpage_open(dir), THOTH_E_PERM);
	write_file(THOTH_TIMERPAGE_NAME, THOTH_TIMERPAGE_SIZE, 0600, 0x1234);
	assert_int_equal(thoth__timerpage_open(dir), THOTH_E_BAD_MAGIC);
	snprintf(sub, sizeof sub, "%s/real", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(thoth__timerpage_create(sub), 0);      /* as thothd does */
	timerpage_t *made = thoth__timerpage_current();
	assert_non_null(made);
	path_in(p, sizeof p, THOTH_TIMERPAGE_NAME);
	unlink(p);
	char target[160];
	snprintf(target, sizeof target, "%s/%s", sub, THOTH_TIMERPAGE_NAME);
	assert_int_equal(symlink(target, p), 0);
	assert_true(thoth__timerpage_open(dir) < 0);
	assert_ptr_equal(thoth__timerpage_current(), made);     /* the good page stays */
	unlink(p);
	/* The page thothd wrote, opened again: the same page, no new mapping. */
	assert_int_equal(thoth__timerpage_open(sub), 0);
	assert_ptr_equal(thoth__timerpage_current(), made);
	assert_int_equal(made->magic, THOTH_TIMERPAGE_MAGIC);
}

/*
 * Six real processes, one timer each, deadlines 5 ms apart and 40 ms of
 * slack: process 0's window closes first; it wakes there and rings the
 * other five, whose deadlines have passed, so all six fire at one instant
 * instead of six.  With the page turned off (grid) nobody rings.  Nobody
 * ever fires before its deadline.
 */
enum { PROCS = 6 };

typedef struct shared {
	uint64_t fired_at[2][PROCS], deadline[2][PROCS], latest[2][PROCS];
	uint64_t rung[2][PROCS], bells[2][PROCS];
} shared_t;

typedef struct one {
	int fired;
	uint64_t at;
} one_t;

static void on_fire(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	one_t *o = arg;
	o->fired = 1;
	o->at = thoth_clock_now();
}

static void run_procs(shared_t *sh, int page)
{
	uint64_t base = thoth_clock_now() + 400 * MS;
	pid_t pids[PROCS];
	for (int i = 0; i < PROCS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i])
			continue;
		thoth_loop_t *loop;
		thoth_loop_options_t opts = { .no_timer_page = !page };
		if (thoth_loop_new_with(&opts, &loop))
			_exit(1);
		one_t o = { 0 };
		uint64_t d = base + (uint64_t)i * 5 * MS, slack = 40 * MS;
		if (thoth_loop_add_timer(loop, d, slack, on_fire, &o, NULL))
			_exit(2);
		while (!o.fired)
			if (thoth_loop_run_once(loop, true) < 0)
				_exit(3);
		thoth_loop_stats_t st;
		thoth_loop_stats(loop, &st);
		sh->fired_at[page][i] = o.at;
		sh->deadline[page][i] = d;
		sh->latest[page][i] = d + slack;
		sh->rung[page][i] = st.wakeups_rung;
		sh->bells[page][i] = st.timer_bells_rung;
		thoth_loop_free(loop);
		_exit(0);
	}
	for (int i = 0; i < PROCS; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

static void test_processes_rung_at_the_first_window_end_fire_together(void **state)
{
	/* The page of test_open_refuses_what_thothd_did_not_write is in use. */
	assert_non_null(thoth__timerpage_current());
	shared_t *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	run_procs(sh, 1);
	run_procs(sh, 0);
	uint64_t spread[2];
	for (int m = 0; m < 2; m++) {
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int i = 0; i < PROCS; i++) {
			assert_true(sh->fired_at[m][i] >= sh->deadline[m][i]);     /* never early */
			lo = sh->fired_at[m][i] < lo ? sh->fired_at[m][i] : lo;
			hi = sh->fired_at[m][i] > hi ? sh->fired_at[m][i] : hi;
		}
		spread[m] = hi - lo;
	}
	print_message("fire instants spread over %.2f ms with the page, %.2f ms without\n",
		      (double)spread[1] / 1e6, (double)spread[0] / 1e6);
	/* With the page: process 0 rings the five others, each is rung once.
	 * On a loaded machine process 0 may run more than 5 ms late, so that
	 * process 1 wakes on its own timer too: allow one such. */
	uint64_t rung = 0, bells = 0;
	for (int i = 0; i < PROCS; i++) {
		assert_true(sh->rung[1][i] <= 1);
		rung += sh->rung[1][i];
		bells += sh->bells[1][i];
	}
	print_message("with the page: %llu of %d processes rung, %llu doorbells\n", (unsigned long long)rung,
		      PROCS, (unsigned long long)bells);
	for (int i = 0; i < PROCS; i++)
		print_message("  %d: fired %+.2f ms after its deadline, rung %llu, rang %llu\n", i,
			      (double)(sh->fired_at[1][i] - sh->deadline[1][i]) / 1e6,
			      (unsigned long long)sh->rung[1][i], (unsigned long long)sh->bells[1][i]);
	assert_int_equal(sh->rung[1][0], 0);
	assert_true(rung >= PROCS - 2);
	assert_true(bells >= rung);
	/* Without it nobody rings. */
	for (int i = 0; i < PROCS; i++)
		assert_int_equal(sh->rung[0][i] + sh->bells[0][i], 0);
	munmap(sh, sizeof *sh);
}

/*
 * The page is anybody's to scribble on: every other slot owned by a live
 * process (pid 1) and claiming a passed deadline and a far wake-up, our own
 * slot overwritten while we sleep.  Our timers still fire inside their
 * windows and never early; the doorbells we try to ring for those bogus
 * slots lead nowhere (no socket bound) and cost nothing else.  A stray
 * datagram on our doorbell costs one wake-up and fires nothing early.
 */
static void test_hostile_page_costs_wakeups_never_correctness(void **state)
{
	timerpage_t *pg = thoth__timerpage_current();
	assert_non_null(pg);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	one_t a = { 0 }, b = { 0 };
	uint64_t now = thoth_clock_now();
	thoth_timer_t *ta, *tb;
	assert_int_equal(thoth_loop_add_timer(loop, now + 30 * MS, 20 * MS, on_fire, &a, &ta), 0);
	assert_int_equal(thoth_loop_add_timer(loop, now + 400 * MS, 0, on_fire, &b, &tb), 0);
	uint64_t da = thoth_timer_deadline(ta), db = thoth_timer_deadline(tb);
	/* Find our slot: the one whose owner is our thread. */
	int self = -1;
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++)
		if (pg->slot[i].owner == (uint32_t)gettid())
			self = (int)i;
	assert_true(self >= 0);
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
		if ((int)i == self)
			continue;
		pg->slot[i].owner = 1;
		pg->slot[i].at = UINT64_MAX - i;
		pg->slot[i].due = 1;
	}
	pg->slot[self].at = 5;
	pg->slot[self].due = UINT64_MAX;
	pg->high = 0xffffffffu;
	/* A stray ring on our doorbell. */
	char bell[108];
	assert_int_equal(thoth__timerpage_bell_path(pg, self, bell, sizeof bell), 0);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, bell);
	assert_int_equal(sendto(s, "x", 1, 0, (struct sockaddr *)&addr, sizeof addr), 1);
	close(s);
	uint64_t end = now + 3000 * MS;
	while (!(a.fired && b.fired) && thoth_clock_now() < end)
		assert_true(thoth_loop_run_once(loop, true) >= 0);
	assert_true(a.fired && b.fired);
	assert_true(a.at >= da && b.at >= db);
	thoth_loop_stats_t st;
	thoth_loop_stats(loop, &st);
	assert_true(st.wakeups_rung >= 1);      /* the stray datagram woke us ... */
	assert_int_equal(st.timers_fired, 2);   /* ... and fired nothing early */
	assert_int_equal(st.timer_bells_rung, 0);
	/* Our slot is given back on free; the others stay as the scribbler left them. */
	thoth_loop_free(loop);
	assert_int_equal((int)pg->slot[self].owner, 0);
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
		pg->slot[i].owner = 0;
		timerpage_post(pg, (int)i, 0, 0);
	}
	pg->high = 0;
}

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/thoth-timerpage-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_never_leaves_the_window_whatever_the_page_says),
		cmocka_unit_test(test_due_sleepers_are_the_slots_with_a_passed_deadline_that_wake_later),
		cmocka_unit_test(test_open_refuses_what_thothd_did_not_write),
		cmocka_unit_test(test_processes_rung_at_the_first_window_end_fire_together),
		cmocka_unit_test(test_hostile_page_costs_wakeups_never_correctness),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
