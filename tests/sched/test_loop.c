/*
 * test_loop.c - the tickless event loop: timers fire within [deadline,
 * deadline + slack], overlapping windows share a wake-up, everything can be
 * removed or cancelled from any callback, and an idle loop never wakes.
 * Waits are on conditions with deadlines, never plain sleeps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/loop.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

#define MS 1000000ull

static thoth_loop_t *new_loop(void)
{
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	return loop;
}

/* Run iterations until *flag or DEADLINE_MS passes. */
static void run_until(thoth_loop_t *loop, const volatile int *flag, int want, uint64_t deadline_ms)
{
	uint64_t end = thoth_clock_now() + deadline_ms * MS;
	while (*flag < want) {
		assert_true(thoth_clock_now() < end);
		/* a guard timer keeps a broken loop from blocking forever */
		thoth_timer_t *guard;
		assert_int_equal(thoth_loop_add_timer(loop, end, 0, (thoth_timer_fn)abort, NULL, &guard), 0);
		assert_true(thoth_loop_run_once(loop, true) >= 0);
		thoth_timer_cancel(loop, guard);
	}
}

typedef struct fired {
	int count;
	uint64_t at[64];
} fired_t;

static void on_timer(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	fired_t *f = arg;
	f->at[f->count++] = thoth_clock_now();
}

static void test_timer_fires_after_deadline_not_before(void **state)
{
	thoth_loop_t *loop = new_loop();
	fired_t f = { 0 };
	uint64_t deadline = thoth_clock_now() + 20 * MS;
	assert_int_equal(thoth_loop_add_timer(loop, deadline, 0, on_timer, &f, NULL), 0);
	run_until(loop, &f.count, 1, 2000);
	assert_true(f.at[0] >= deadline);
	thoth_loop_free(loop);
}

static void test_timers_within_slack_fire_in_one_wakeup(void **state)
{
	thoth_loop_t *loop = new_loop();
	fired_t f = { 0 };
	uint64_t now = thoth_clock_now();
	/* windows [10,60], [20,70], [30,80] ms overlap at [30,60]: one wake-up */
	for (int i = 0; i < 3; i++)
		assert_int_equal(thoth_loop_add_timer(loop, now + (uint64_t)(10 + 10 * i) * MS, 50 * MS,
						      on_timer, &f, NULL), 0);
	thoth_loop_stats_t before, after;
	thoth_loop_stats(loop, &before);
	run_until(loop, &f.count, 3, 2000);
	thoth_loop_stats(loop, &after);
	assert_int_equal(after.wakeups_timer - before.wakeups_timer, 1);
	assert_int_equal(after.timers_coalesced - before.timers_coalesced, 2);
	for (int i = 0; i < 3; i++)
		assert_true(f.at[i] >= now + (uint64_t)(10 + 10 * i) * MS);
	thoth_loop_free(loop);
}

static void test_timers_without_overlap_fire_separately_in_order(void **state)
{
	thoth_loop_t *loop = new_loop();
	fired_t f = { 0 };
	uint64_t now = thoth_clock_now();
	assert_int_equal(thoth_loop_add_timer(loop, now + 40 * MS, 0, on_timer, &f, NULL), 0);
	assert_int_equal(thoth_loop_add_timer(loop, now + 10 * MS, 0, on_timer, &f, NULL), 0);
	run_until(loop, &f.count, 2, 2000);
	assert_true(f.at[0] >= now + 10 * MS && f.at[1] >= now + 40 * MS);
	thoth_loop_free(loop);
}

static thoth_timer_t *victim;
static void cancel_other(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	fired_t *f = arg;
	f->count++;
	thoth_timer_cancel(loop, victim);
	thoth_timer_cancel(loop, t);            /* its own handle too */
}

static void test_cancel_from_callback(void **state)
{
	thoth_loop_t *loop = new_loop();
	fired_t f = { 0 }, g = { 0 };
	uint64_t now = thoth_clock_now();
	/* both due in the same wake-up: the first cancels the second */
	assert_int_equal(thoth_loop_add_timer(loop, now + 5 * MS, 20 * MS, cancel_other, &f, NULL), 0);
	assert_int_equal(thoth_loop_add_timer(loop, now + 6 * MS, 20 * MS, on_timer, &g, &victim), 0);
	run_until(loop, &f.count, 1, 2000);
	assert_int_equal(g.count, 0);
	thoth_loop_stats_t st;
	thoth_loop_stats(loop, &st);
	assert_int_equal(st.timers_pending, 0);
	thoth_loop_free(loop);
}

static void rearm_self(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	fired_t *f = arg;
	f->at[f->count++] = thoth_clock_now();
	if (f->count < 3)
		assert_int_equal(thoth_timer_rearm(loop, t, thoth_clock_now() + 5 * MS, 0), 0);
}

static void test_timer_rearmed_from_its_callback_fires_again(void **state)
{
	thoth_loop_t *loop = new_loop();
	fired_t f = { 0 };
	assert_int_equal(thoth_loop_add_timer_in(loop, 5 * MS, 0, rearm_self, &f, NULL), 0);
	run_until(loop, &f.count, 3, 2000);
	assert_true(f.at[2] - f.at[1] >= 5 * MS);
	thoth_loop_free(loop);
}

typedef struct pipes {
	int a[2], b[2];
	thoth_source_t *sa, *sb;
	int calls;
} pipes_t;

static void remove_both(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t ev, void *arg)
{
	pipes_t *p = arg;
	p->calls++;
	thoth_loop_remove_fd(loop, p->sa);
	thoth_loop_remove_fd(loop, p->sb);
}

static void test_remove_fd_source_from_callback_of_another(void **state)
{
	thoth_loop_t *loop = new_loop();
	pipes_t p = { 0 };
	assert_int_equal(pipe(p.a), 0);
	assert_int_equal(pipe(p.b), 0);
	assert_int_equal(thoth_loop_add_fd(loop, p.a[0], THOTH_LOOP_READ, remove_both, &p, &p.sa), 0);
	assert_int_equal(thoth_loop_add_fd(loop, p.b[0], THOTH_LOOP_READ, remove_both, &p, &p.sb), 0);
	/* both ready in the same batch; whichever runs first removes both */
	assert_int_equal(write(p.a[1], "x", 1), 1);
	assert_int_equal(write(p.b[1], "x", 1), 1);
	run_until(loop, &p.calls, 1, 2000);
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(p.calls, 1);
	for (int i = 0; i < 2; i++) {
		close(p.a[i]);
		close(p.b[i]);
	}
	thoth_loop_free(loop);
}

static int got_signal;
static void on_signal(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	got_signal = (int)info->ssi_signo;
}

static void test_signal_delivered_via_signalfd(void **state)
{
	thoth_loop_t *loop = new_loop();
	got_signal = 0;
	assert_int_equal(thoth_loop_add_signal(loop, SIGUSR1, on_signal, NULL), 0);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	uint64_t end = thoth_clock_now() + 2000 * MS;
	while (!got_signal && thoth_clock_now() < end)
		thoth_loop_run_once(loop, false);
	assert_int_equal(got_signal, SIGUSR1);
	thoth_loop_free(loop);
}

static void deferred_fn(thoth_loop_t *loop, void *arg)
{
	(*(int *)arg)++;
}

static void test_deferred_runs_before_sleep(void **state)
{
	thoth_loop_t *loop = new_loop();
	int n = 0;
	assert_int_equal(thoth_loop_defer(loop, deferred_fn, &n), 0);
	/* blocking, but nothing else is pending: must return after running it */
	assert_true(thoth_loop_run_once(loop, true) >= 1);
	assert_int_equal(n, 1);
	thoth_loop_free(loop);
}

static void test_timerfd_disarmed_when_no_timers(void **state)
{
	thoth_loop_t *loop = new_loop();
	thoth_timer_t *t;
	assert_int_equal(thoth_loop_add_timer_in(loop, 1000 * MS, 0, on_timer, NULL, &t), 0);
	assert_true(thoth_loop_armed_at(loop) != 0);
	thoth_timer_cancel(loop, t);
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	thoth_loop_free(loop);
}

/* An fd callback that arms a timer on its first call and cancels it on
 * its second: timer changes made inside a wake-up that had none before. */
typedef struct arm_from_fd {
	int fd;
	int calls;
	uint64_t delay, deadline, slack;
	thoth_timer_t *t;
	fired_t f;
} arm_from_fd_t;

static void on_fd_arm(thoth_loop_t *loop, thoth_source_t *s, int fd, uint32_t events, void *arg)
{
	arm_from_fd_t *a = arg;
	char b;
	assert_int_equal(read(fd, &b, 1), 1);
	if (a->calls++ == 0) {
		a->deadline = thoth_clock_now() + a->delay;
		assert_int_equal(thoth_loop_add_timer(loop, a->deadline, a->slack, on_timer, &a->f, &a->t), 0);
	} else {
		thoth_timer_cancel(loop, a->t);
	}
}

/*
 * The loop re-arms its timerfd after a wake-up only when the timer set
 * changed: a timer added, or cancelled, from an fd callback during a
 * wake-up that changed no timer before it must still be armed (in its
 * window) or disarmed when run_once returns.  armed_at is read, not
 * waited for: a wrongly skipped re-arm fails here, it does not hang.
 */
static void test_timer_changed_from_fd_callback_is_armed(void **state)
{
	thoth_loop_t *loop = new_loop();
	arm_from_fd_t a = { .delay = 30 * MS, .slack = 10 * MS };
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_fd_arm, &a, NULL), 0);
	/* Quiet iterations: the re-arms that follow find nothing changed. */
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(thoth_loop_armed_at(loop), 0);

	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(thoth_loop_run_once(loop, false), 1);
	assert_int_equal(a.calls, 1);
	uint64_t at = thoth_loop_armed_at(loop);
	assert_true(at >= a.deadline && at <= a.deadline + a.slack);
	/* ... and it fires, in its window. */
	uint64_t end = a.deadline + 2000 * MS;
	while (a.f.count == 0) {
		assert_true(thoth_clock_now() < end);
		assert_true(thoth_loop_run_once(loop, true) >= 0);
	}
	assert_true(a.f.at[0] >= a.deadline);
	assert_int_equal(thoth_loop_armed_at(loop), 0);

	/* Again, and this time cancelled from the next fd wake-up: disarmed. */
	a.calls = 0;
	a.f.count = 0;
	a.delay = 10000 * MS;           /* never due while the test runs */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(thoth_loop_run_once(loop, false), 1);
	assert_true(thoth_loop_armed_at(loop) >= a.deadline);
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_true(thoth_loop_armed_at(loop) >= a.deadline);    /* a quiet wake-up keeps it */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(thoth_loop_run_once(loop, false), 1);
	assert_int_equal(a.calls, 2);
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	assert_int_equal(a.f.count, 0);
	close(p[0]);
	close(p[1]);
	thoth_loop_free(loop);
}

static void test_bad_arguments_are_refused(void **state)
{
	thoth_loop_t *loop = new_loop();
	assert_int_equal(thoth_loop_add_fd(loop, -1, THOTH_LOOP_READ, remove_both, NULL, NULL), THOTH_E_INVAL);
	assert_int_equal(thoth_loop_add_fd(loop, 0, 0x80, remove_both, NULL, NULL), THOTH_E_INVAL);
	assert_int_equal(thoth_loop_add_signal(loop, SIGKILL, on_signal, NULL), THOTH_E_INVAL);
	assert_int_equal(thoth_loop_add_timer(loop, 0, 0, NULL, NULL, NULL), THOTH_E_INVAL);
	thoth_loop_free(loop);
}

/* ---- the idle guarantee ---------------------------------------------------- */

static long voluntary_switches(pid_t tid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	long v = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

typedef struct idle_ctx {
	thoth_loop_t *loop;
	int stop_pipe[2];
	pid_t tid;
	volatile int ready;
	thoth_loop_stats_t stats;
} idle_ctx_t;

static void on_stop(thoth_loop_t *loop, thoth_source_t *s, int fd, uint32_t ev, void *arg)
{
	thoth_loop_stop(loop);
}

static void noop_fd(thoth_loop_t *loop, thoth_source_t *s, int fd, uint32_t ev, void *arg)
{
}

static void *idle_thread(void *arg)
{
	idle_ctx_t *c = arg;
	c->tid = (pid_t)syscall(SYS_gettid);
	__atomic_store_n(&c->ready, 1, __ATOMIC_RELEASE);
	thoth_loop_run(c->loop);
	thoth_loop_stats(c->loop, &c->stats);
	return NULL;
}

static void test_idle_loop_never_wakes(void **state)
{
	idle_ctx_t c = { 0 };
	c.loop = new_loop();
	int quiet[2];
	assert_int_equal(pipe(c.stop_pipe), 0);
	assert_int_equal(pipe(quiet), 0);
	assert_int_equal(thoth_loop_add_fd(c.loop, c.stop_pipe[0], THOTH_LOOP_READ, on_stop, NULL, NULL), 0);
	assert_int_equal(thoth_loop_add_fd(c.loop, quiet[0], THOTH_LOOP_READ, noop_fd, NULL, NULL), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, idle_thread, &c), 0);
	while (!__atomic_load_n(&c.ready, __ATOMIC_ACQUIRE))
		sched_yield();
	/* let it reach epoll_wait, then measure over 1.5 s of idleness */
	usleep(100 * 1000);
	long before = voluntary_switches(c.tid);
	usleep(1500 * 1000);
	long after = voluntary_switches(c.tid);
	assert_int_equal(write(c.stop_pipe[1], "q", 1), 1);
	pthread_join(t, NULL);
	assert_int_equal(after - before, 0);
	assert_int_equal(c.stats.wakeups, 1);          /* only the stop request */
	assert_int_equal(c.stats.timerfd_arms, 0);     /* never armed */
	close(quiet[0]);
	close(quiet[1]);
	close(c.stop_pipe[0]);
	close(c.stop_pipe[1]);
	thoth_loop_free(c.loop);
}

/* ---- many random timers -------------------------------------------------- */

typedef struct stress {
	uint64_t deadline, slack, fired_at;
	int order;
} stress_t;

static int fire_order;
static void on_stress(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	stress_t *s = arg;
	s->fired_at = thoth_loop_now(loop);
	s->order = fire_order++;
}

static void test_many_random_timers_fire_in_window_and_deadline_order(void **state)
{
	enum { N = 2000 };
	static stress_t s[N];
	thoth_loop_t *loop = new_loop();
	srand(42);
	uint64_t now = thoth_clock_now();
	fire_order = 0;
	for (int i = 0; i < N; i++) {
		s[i].deadline = now + (uint64_t)(rand() % 200) * MS;
		s[i].slack = (uint64_t)(rand() % 20) * MS;
		assert_int_equal(thoth_loop_add_timer(loop, s[i].deadline, s[i].slack, on_stress, &s[i], NULL), 0);
	}
	/* cancel some, deterministically, through their own re-lookup: re-add 10% later */
	run_until(loop, &fire_order, N, 5000);
	thoth_loop_stats_t st;
	thoth_loop_stats(loop, &st);
	for (int i = 0; i < N; i++) {
		assert_true(s[i].fired_at >= s[i].deadline);
		for (int k = 0; k < N; k += 97)
			if (s[k].deadline < s[i].deadline)
				assert_true(s[k].order < s[i].order || s[k].fired_at == s[i].fired_at);
	}
	assert_true(st.wakeups_timer < N / 4);      /* slack batches them */
	thoth_loop_free(loop);
}

/* ---- backends (issue 13 section 4): the suite runs on both ---------------- */

/* ctest runs this suite twice, the second time with THOTH_LOOP_BACKEND=uring:
 * that run must really be on io_uring, not on a silent fallback. */
static void test_backend_is_the_one_asked_for(void **state)
{
	thoth_loop_t *loop = new_loop();
	const char *env = getenv("THOTH_LOOP_BACKEND");
	const char *want = env && !strcmp(env, "uring") ? "uring" : "epoll";
	print_message("backend: %s\n", thoth_loop_backend(loop));
	assert_string_equal(thoth_loop_backend(loop), want);
	thoth_loop_free(loop);
	/* Asked for explicitly: that backend, or an error. */
	thoth_loop_options_t o = { .backend = THOTH_LOOP_BACKEND_EPOLL };
	assert_int_equal(thoth_loop_new_with(&o, &loop), 0);
	assert_string_equal(thoth_loop_backend(loop), "epoll");
	thoth_loop_free(loop);
	o.backend = (thoth_loop_backend_kind_t)7;
	assert_int_equal(thoth_loop_new_with(&o, &loop), THOTH_E_INVAL);
}

typedef struct level {
	int calls;
	int fd;
} level_t;

static void on_ready_leave_data(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t ev, void *arg)
{
	((level_t *)arg)->calls++;    /* reads nothing: the fd stays readable */
}

/* Level triggered on both backends: data left unread is reported again on
 * the next iteration; a modify to WRITE-only stops the READ reports. */
static void test_fd_readiness_is_level_triggered(void **state)
{
	thoth_loop_t *loop = new_loop();
	int p[2];
	assert_int_equal(pipe(p), 0);
	level_t l = { 0 };
	thoth_source_t *src;
	assert_int_equal(thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_ready_leave_data, &l, &src), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	run_until(loop, &l.calls, 1, 2000);
	run_until(loop, &l.calls, 3, 2000);     /* reported again and again */
	/* The write end of an empty pipe: WRITE ready; READ no longer asked. */
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	assert_int_equal(thoth_loop_modify_fd(loop, src, THOTH_LOOP_READ), 0);
	int before = l.calls;
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(l.calls, before);      /* empty pipe: nothing to report */
	thoth_loop_remove_fd(loop, src);
	assert_int_equal(write(p[1], "y", 1), 1);
	assert_int_equal(thoth_loop_run_once(loop, false), 0);
	assert_int_equal(l.calls, before);      /* removed: never reported again */
	close(p[0]);
	close(p[1]);
	thoth_loop_free(loop);
}

/* A source removed and its fd closed at once, while the backend still has
 * a request naming it (uring: an in-flight poll): no callback, no crash,
 * and the fd number can be reused for a new source. */
static void test_remove_then_close_then_reuse_fd(void **state)
{
	thoth_loop_t *loop = new_loop();
	for (int round = 0; round < 50; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		level_t l = { 0 };
		thoth_source_t *src;
		assert_int_equal(thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_ready_leave_data, &l, &src), 0);
		assert_int_equal(thoth_loop_run_once(loop, false), 0);   /* the poll is in flight */
		thoth_loop_remove_fd(loop, src);
		close(p[0]);
		close(p[1]);
		assert_int_equal(thoth_loop_run_once(loop, false), 0);
		assert_int_equal(l.calls, 0);
	}
	thoth_loop_stats_t st;
	thoth_loop_stats(loop, &st);
	assert_int_equal(st.fd_sources, 0);
	thoth_loop_free(loop);
}

/*
 * A callback that runs the loop again (a synchronous pool call inside a
 * handler does) gets events of its own: the outer wake-up's array, which
 * since stop 36 lives in the loop, must not be overwritten under the outer
 * dispatch.  Four pipes (the batch) ready at once; the first callback
 * drains all four, makes four other pipes (the fresh ones) ready and runs
 * a nested iteration, which reports the fresh ones only.  The outer
 * dispatch then calls each batch source at most once and no fresh one
 * (with the nested call writing into the outer's events, the outer one
 * dispatched the nested one's: a fresh source, on either backend).  Rounds
 * repeat until the nested run has seen at least two events (one could
 * only overwrite the entry being dispatched), asserted at the end, so the
 * test cannot pass by the nested run seeing nothing.
 */
#define NEST_BATCH 4
#define NEST_ALL (2 * NEST_BATCH)

typedef struct nest {
	int fds[NEST_ALL], wfds[NEST_ALL];
	thoth_source_t *src[NEST_ALL];
	int outer[NEST_ALL], inner[NEST_ALL];
	int depth;
} nest_t;

static void drain(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

static void on_nest(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t ev, void *arg)
{
	nest_t *n = arg;
	int i = 0;
	while (n->src[i] != src)
		i++;
	drain(fd);
	if (n->depth) {
		n->inner[i]++;
		return;
	}
	n->outer[i]++;
	int before = 0;
	for (int k = 0; k < NEST_ALL; k++)
		before += n->outer[k];
	if (before == 1) {
		for (int k = 0; k < NEST_BATCH; k++) {
			drain(n->fds[k]);                 /* the nested wait reports ... */
			assert_int_equal(write(n->wfds[NEST_BATCH + k], "x", 1), 1);   /* ... these */
		}
		n->depth++;
		assert_true(thoth_loop_run_once(loop, false) >= 0);
		n->depth--;
	}
}

static void test_a_nested_run_leaves_the_outer_batch_intact(void **state)
{
	thoth_loop_t *loop = new_loop();
	nest_t n = { 0 };
	int p[NEST_ALL][2];
	for (int i = 0; i < NEST_ALL; i++) {
		assert_int_equal(pipe2(p[i], O_NONBLOCK), 0);
		n.fds[i] = p[i][0];
		n.wfds[i] = p[i][1];
		assert_int_equal(thoth_loop_add_fd(loop, p[i][0], THOTH_LOOP_READ, on_nest, &n, &n.src[i]), 0);
	}
	assert_true(thoth_loop_run_once(loop, false) >= 0);   /* uring: the polls submitted */
	int inner = 0;
	for (int round = 0; round < 20 && inner < 2; round++) {
		memset(n.outer, 0, sizeof n.outer);
		memset(n.inner, 0, sizeof n.inner);
		for (int i = 0; i < NEST_BATCH; i++)
			assert_int_equal(write(p[i][1], "x", 1), 1);
		int outer = 0;
		for (int it = 0; it < 100 && !outer; it++) {
			assert_true(thoth_loop_run_once(loop, false) >= 0);
			for (int i = 0; i < NEST_ALL; i++)
				outer += n.outer[i];
		}
		assert_true(outer >= 1);
		inner = 0;
		for (int i = 0; i < NEST_ALL; i++) {
			assert_true(n.outer[i] <= 1);   /* no event of the outer batch dispatched twice */
			if (i >= NEST_BATCH)
				assert_int_equal(n.outer[i], 0);   /* nor one of the nested run's */
			inner += n.inner[i];
		}
		/* before another round: nothing left readable, nothing pending */
		for (int i = 0; i < NEST_ALL; i++)
			drain(p[i][0]);
		for (int it = 0; it < 3; it++)
			assert_true(thoth_loop_run_once(loop, false) >= 0);
	}
	assert_true(inner >= 2);
	for (int i = 0; i < NEST_ALL; i++) {
		thoth_loop_remove_fd(loop, n.src[i]);
		close(p[i][0]);
		close(p[i][1]);
	}
	thoth_loop_free(loop);
}

/*
 * A nested run inside a callback must not free what the OUTER batch still
 * names.  The first of three ready sources removes the other two (one
 * before, one after its nested run), runs the loop nested, then adds two
 * sources on pipes never written.  Had the nested run freed the removed
 * ones, the new ones would take their slots (an inline slot at once; a
 * heap one from malloc's free list) and the outer batch would hand the old
 * sources' events to the new callbacks (with sources beyond the inline
 * ones: a heap use after free, which ASan names).  FILLERS first fills
 * the inline slots, so the test runs once inline and once on the heap.
 */
typedef struct nest_rm {
	thoth_source_t *src[3], *added[2];
	int rfd[3], quiet[2];
	int calls[3], added_calls, depth;
} nest_rm_t;

static void on_added(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t ev, void *arg)
{
	((nest_rm_t *)arg)->added_calls++;
}

static void on_nest_rm(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t ev, void *arg)
{
	nest_rm_t *n = arg;
	int i = 0;
	while (n->src[i] != src)
		i++;
	n->calls[i]++;
	if (n->depth || n->calls[0] + n->calls[1] + n->calls[2] > 1)
		return;
	thoth_loop_remove_fd(loop, n->src[(i + 1) % 3]);   /* before the nested run */
	n->depth++;
	assert_true(thoth_loop_run_once(loop, false) >= 0);
	n->depth--;
	thoth_loop_remove_fd(loop, n->src[(i + 2) % 3]);   /* after it */
	for (int k = 0; k < 2; k++)
		assert_int_equal(thoth_loop_add_fd(loop, n->quiet[k], THOTH_LOOP_READ, on_added, n,
						   &n->added[k]), 0);
}

static void nested_run_then_add(int fillers)
{
	thoth_loop_t *loop = new_loop();
	int fp[8][2], p[3][2], q[2][2];
	level_t fl = { 0 };
	for (int i = 0; i < fillers; i++) {
		assert_int_equal(pipe(fp[i]), 0);
		assert_int_equal(thoth_loop_add_fd(loop, fp[i][0], THOTH_LOOP_READ, on_ready_leave_data, &fl, NULL), 0);
	}
	nest_rm_t n = { 0 };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pipe2(p[i], O_NONBLOCK), 0);
		n.rfd[i] = p[i][0];
		assert_int_equal(thoth_loop_add_fd(loop, p[i][0], THOTH_LOOP_READ, on_nest_rm, &n, &n.src[i]), 0);
	}
	for (int k = 0; k < 2; k++) {
		assert_int_equal(pipe2(q[k], O_NONBLOCK), 0);
		n.quiet[k] = q[k][0];
	}
	assert_true(thoth_loop_run_once(loop, false) >= 0);   /* uring: the polls submitted */
	for (int i = 0; i < 3; i++)
		assert_int_equal(write(p[i][1], "x", 1), 1);
	for (int round = 0; round < 100 && !(n.calls[0] + n.calls[1] + n.calls[2]); round++)
		assert_true(thoth_loop_run_once(loop, false) >= 0);
	assert_true(n.calls[0] + n.calls[1] + n.calls[2] >= 1);
	for (int round = 0; round < 3; round++)
		assert_true(thoth_loop_run_once(loop, false) >= 0);
	assert_int_equal(n.added_calls, 0);     /* their pipes were never written */
	assert_int_equal(fl.calls, 0);
	thoth_loop_free(loop);
	for (int i = 0; i < fillers; i++) {
		close(fp[i][0]);
		close(fp[i][1]);
	}
	for (int i = 0; i < 3; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
	for (int k = 0; k < 2; k++) {
		close(q[k][0]);
		close(q[k][1]);
	}
}

static void test_a_nested_run_frees_nothing_the_outer_batch_names(void **state)
{
	nested_run_then_add(0);
}

static void test_a_nested_run_frees_nothing_the_outer_batch_names_heap(void **state)
{
	nested_run_then_add(8);
}

/* Run FN in a child with its stderr in OUT (NUL-terminated); its wait status. */
static int in_child(void (*fn)(void), char *out, size_t cap)
{
	int pe[2];
	assert_int_equal(pipe(pe), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pe[1], 2);
		close(pe[0]);
		fn();
		_exit(0);
	}
	close(pe[1]);
	size_t len = 0;
	ssize_t r;
	while (len + 1 < cap && (r = read(pe[0], out + len, cap - 1 - len)) > 0)
		len += (size_t)r;
	out[len] = 0;
	close(pe[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifdef TEST_ASAN
static void use_after_remove_inline(void)
{
	thoth_loop_t *loop = new_loop();
	int p[2];
	level_t l = { 0 };
	thoth_source_t *s;
	if (pipe(p) || thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_ready_leave_data, &l, &s))
		_exit(2);
	thoth_loop_remove_fd(loop, s);
	(void)thoth_loop_modify_fd(loop, s, THOTH_LOOP_READ);   /* reads the freed slot */
}
#endif

/* ASan builds: a removed inline source is poisoned like a freed heap one,
 * so using it after thoth_loop_remove_fd is reported. */
static void test_an_inline_source_used_after_remove_is_caught_by_asan(void **state)
{
#ifdef TEST_ASAN
	char out[16384];
	int st = in_child(use_after_remove_inline, out, sizeof out);
	assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(out, "use-after-poison"));
#else
	skip_because("only under AddressSanitizer (the build/asan stage runs it)");
#endif
}


static void close_before_remove(void)
{
	thoth_loop_t *loop = new_loop();
	level_t l = { 0 };
	thoth_source_t *s;
	int p[2];
	/* removed, then closed: nothing to say */
	if (pipe(p) || thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_ready_leave_data, &l, &s))
		_exit(2);
	thoth_loop_remove_fd(loop, s);
	close(p[0]);
	close(p[1]);
	/* closed while a copy lives, then removed, twice: said once */
	for (int k = 0; k < 2; k++) {
		if (pipe(p) || thoth_loop_add_fd(loop, p[0], THOTH_LOOP_READ, on_ready_leave_data, &l, &s))
			_exit(2);
		int keep = dup(p[0]);
		close(p[0]);
		thoth_loop_remove_fd(loop, s);
		if (k == 0)
			fprintf(stderr, "[fd %d]\n", p[0]);
		close(keep);
		close(p[1]);
	}
	thoth_loop_free(loop);
}

/* Closing a source's fd before removing it is a caller's error epoll cannot
 * undo (a live copy keeps the registration and its stale pointer): the
 * epoll backend says so on stderr, once, naming the fd. */
static void test_closing_before_remove_is_reported(void **state)
{
	thoth_loop_t *loop = new_loop();
	bool epoll = strcmp(thoth_loop_backend(loop), "epoll") == 0;
	thoth_loop_free(loop);
	char out[4096];
	int st = in_child(close_before_remove, out, sizeof out);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	if (!epoll) {
		assert_null(strstr(out, "closed before"));   /* io_uring removes by its own record */
		return;
	}
	const char *w = strstr(out, "closed before thoth_loop_remove_fd");
	assert_non_null(w);
	assert_null(strstr(w + 1, "closed before"));      /* once */
	int fd = -1;
	const char *tag = strstr(out, "[fd ");
	assert_non_null(tag);
	assert_int_equal(sscanf(tag, "[fd %d]", &fd), 1);
	char want[64];
	snprintf(want, sizeof want, "fd %d closed before", fd);
	assert_non_null(strstr(out, want));
}

/*
 * Stop 36's layout: a loop is page-aligned and its first sources are in
 * it, on its first page, with the fields a wake-up reads (one data page a
 * wake-up where there were four: docs/SCHED.md).  Sources beyond the
 * inline ones, and one added again after a removal, still work, and
 * freeing the loop with sources of both kinds live frees each once (ASan).
 */
static void test_a_loops_first_sources_share_its_first_page(void **state)
{
	thoth_loop_t *loop = new_loop();
	uintptr_t base = (uintptr_t)loop;
	assert_int_equal(base % 4096, 0);
	enum { N = 20 };
	int p[N][2];
	level_t l[N];
	thoth_source_t *src[N];
	memset(l, 0, sizeof l);
	for (int i = 0; i < N; i++) {
		assert_int_equal(pipe(p[i]), 0);
		assert_int_equal(thoth_loop_add_fd(loop, p[i][0], THOTH_LOOP_READ, on_ready_leave_data, &l[i], &src[i]), 0);
		if (i < 4)
			assert_true((uintptr_t)src[i] >= base && (uintptr_t)src[i] + 64 <= base + 4096);
	}
	/* one inline source removed: the next source added takes its place */
	thoth_loop_remove_fd(loop, src[1]);
	assert_int_equal(thoth_loop_add_fd(loop, p[1][0], THOTH_LOOP_READ, on_ready_leave_data, &l[1], &src[1]), 0);
	assert_true((uintptr_t)src[1] >= base && (uintptr_t)src[1] + 64 <= base + 4096);
	for (int i = 0; i < N; i++)
		assert_int_equal(write(p[i][1], "x", 1), 1);
	for (int i = 0; i < N; i++)
		run_until(loop, &l[i].calls, 1, 2000);
	for (int i = 0; i < N; i += 2)
		thoth_loop_remove_fd(loop, src[i]);
	thoth_loop_free(loop);          /* the odd ones still live */
	for (int i = 0; i < N; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

typedef struct io_done {
	int calls;
	int64_t result[64];
	int err[64];
	bool inside_submit;
	bool ran_inside;
} io_done_t;

static void on_io(thoth_loop_t *loop, int64_t result, int err, void *arg)
{
	io_done_t *d = arg;
	if (d->inside_submit)
		d->ran_inside = true;
	d->result[d->calls] = result;
	d->err[d->calls] = err;
	d->calls++;
}

/* Write, fsync, read back through the loop; each callback on a later
 * iteration; errors come back as THOTH_E_IO with the errno. */
static void test_file_io_completes_with_results_and_errors(void **state)
{
	thoth_loop_t *loop = new_loop();
	char path[256];
	test_tmp_template(path, sizeof path, "thoth-loop-io");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	io_done_t d = { 0 };
	static const char text[] = "the quick brown fox";
	d.inside_submit = true;
	assert_int_equal(thoth_loop_write(loop, fd, text, sizeof text, 4096, on_io, &d), 0);
	assert_int_equal(thoth_loop_fsync(loop, fd, true, on_io, &d), 0);
	d.inside_submit = false;
	run_until(loop, &d.calls, 2, 2000);
	assert_false(d.ran_inside);
	assert_int_equal(d.result[0], (int64_t)sizeof text);
	assert_int_equal(d.result[1], 0);
	char back[64] = { 0 };
	assert_int_equal(thoth_loop_read(loop, fd, back, sizeof back, 4096, on_io, &d), 0);
	run_until(loop, &d.calls, 3, 2000);
	assert_int_equal(d.result[2], (int64_t)sizeof text);
	assert_string_equal(back, text);
	/* Reading a directory: EISDIR, reported, not a crash. */
	int dir = open(test_tmpdir(), O_RDONLY | O_DIRECTORY);
	assert_true(dir >= 0);
	assert_int_equal(thoth_loop_read(loop, dir, back, sizeof back, 0, on_io, &d), 0);
	run_until(loop, &d.calls, 4, 2000);
	assert_int_equal(d.result[3], THOTH_E_IO);
	assert_int_equal(d.err[3], EISDIR);
	assert_int_equal(thoth_loop_read(loop, -1, back, 1, 0, on_io, &d), THOTH_E_INVAL);
	assert_int_equal(thoth_loop_read(loop, fd, back, 1, 0, NULL, &d), THOTH_E_INVAL);
	thoth_loop_stats_t st;
	thoth_loop_stats(loop, &st);
	assert_int_equal(st.io_submitted, 4);
	assert_int_equal(st.io_completed, 4);
	close(dir);
	close(fd);
	thoth_loop_free(loop);
}

/* 32 reads queued together complete in a few wake-ups, not 32. */
static void test_queued_reads_complete_in_batches(void **state)
{
	thoth_loop_t *loop = new_loop();
	char path[256];
	test_tmp_template(path, sizeof path, "thoth-loop-io");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	static char block[32][512];
	assert_int_equal(pwrite(fd, block, sizeof block, 0), (ssize_t)sizeof block);
	io_done_t d = { 0 };
	for (int i = 0; i < 32; i++)
		assert_int_equal(thoth_loop_read(loop, fd, block[i], 512, (uint64_t)i * 512, on_io, &d), 0);
	thoth_loop_stats_t before, after;
	thoth_loop_stats(loop, &before);
	run_until(loop, &d.calls, 32, 2000);
	thoth_loop_stats(loop, &after);
	for (int i = 0; i < 32; i++)
		assert_int_equal(d.result[i], 512);
	print_message("%s: 32 reads in %llu wake-ups, %llu backend calls\n", thoth_loop_backend(loop),
		      (unsigned long long)(after.wakeups_io - before.wakeups_io),
		      (unsigned long long)(after.backend_syscalls - before.backend_syscalls));
	assert_true(after.wakeups_io - before.wakeups_io <= 4);
	close(fd);
	thoth_loop_free(loop);
}

/* Requests still in flight when the loop is freed are freed with it (ASan
 * checks the leak) and their callbacks never run. */
static void test_free_with_io_in_flight(void **state)
{
	thoth_loop_t *loop = new_loop();
	int p[2];
	assert_int_equal(pipe(p), 0);
	io_done_t d = { 0 };
	static char buf[8];
	/* uring: a read of an empty pipe stays in flight; epoll: pread on a
	 * pipe fails at once (ESPIPE) and its callback is pending instead. */
	assert_int_equal(thoth_loop_read(loop, p[0], buf, sizeof buf, 0, on_io, &d), 0);
	thoth_loop_run_once(loop, false);
	if (!strcmp(thoth_loop_backend(loop), "uring"))
		assert_int_equal(d.calls, 0);
	thoth_loop_free(loop);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_fires_after_deadline_not_before),
		cmocka_unit_test(test_timers_within_slack_fire_in_one_wakeup),
		cmocka_unit_test(test_timers_without_overlap_fire_separately_in_order),
		cmocka_unit_test(test_cancel_from_callback),
		cmocka_unit_test(test_timer_rearmed_from_its_callback_fires_again),
		cmocka_unit_test(test_remove_fd_source_from_callback_of_another),
		cmocka_unit_test(test_signal_delivered_via_signalfd),
		cmocka_unit_test(test_deferred_runs_before_sleep),
		cmocka_unit_test(test_timerfd_disarmed_when_no_timers),
		cmocka_unit_test(test_timer_changed_from_fd_callback_is_armed),
		cmocka_unit_test(test_bad_arguments_are_refused),
		cmocka_unit_test(test_idle_loop_never_wakes),
		cmocka_unit_test(test_many_random_timers_fire_in_window_and_deadline_order),
		cmocka_unit_test(test_backend_is_the_one_asked_for),
		cmocka_unit_test(test_fd_readiness_is_level_triggered),
		cmocka_unit_test(test_remove_then_close_then_reuse_fd),
		cmocka_unit_test(test_file_io_completes_with_results_and_errors),
		cmocka_unit_test(test_queued_reads_complete_in_batches),
		cmocka_unit_test(test_free_with_io_in_flight),
		cmocka_unit_test(test_a_nested_run_leaves_the_outer_batch_intact),
		cmocka_unit_test(test_a_nested_run_frees_nothing_the_outer_batch_names),
		cmocka_unit_test(test_a_nested_run_frees_nothing_the_outer_batch_names_heap),
		cmocka_unit_test(test_an_inline_source_used_after_remove_is_caught_by_asan),
		cmocka_unit_test(test_closing_before_remove_is_reported),
		cmocka_unit_test(test_a_loops_first_sources_share_its_first_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
