/*
 * test_trace_buffer.c - the trace buffer as a specification: what a reader
 * sees of what writers wrote, what it counts when it cannot see it, and the
 * run-time category switch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/held_child.h"
#include "pidpin.h"

#include "thoth/error.h"
#include "thoth/trace.h"
#include "trace_internal.h"
#include "trace_test_util.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL     /* Linux 6.9 */
#endif

static void start_tracing(uint32_t ring_records, uint32_t policy, uint64_t enabled)
{
	thoth_trace_config_t cfg = {
		.ring_count = 16,
		.ring_records = ring_records,
		.full_policy = policy,
		.enabled = enabled,
		.process_name = "buffer-test",
	};
	assert_int_equal(thoth_trace_init(&cfg), 0);
}

static void start_tracing_rings(uint32_t rings)
{
	thoth_trace_config_t cfg = {
		.ring_count = rings,
		.ring_records = 64,
		.full_policy = THOTH_TRACE_OVERWRITE_OLDEST,
		.enabled = THOTH_TRACE_ALL_CATEGORIES,
		.process_name = "buffer-test",
	};
	assert_int_equal(thoth_trace_init(&cfg), 0);
}

static thoth_trace_reader_t *open_reader(void)
{
	int fd;
	assert_int_equal(thoth_trace_export_fd(&fd), 0);
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), 0);
	return r;
}

static thoth_trace_stats_t poll_into(thoth_trace_reader_t *r, event_list_t *l)
{
	assert_int_equal(thoth_trace_reader_poll(r, event_list_add, l), 0);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	return st;
}

static int teardown(void **state)
{
	thoth_trace_shutdown();
	return 0;
}

static void test_disabled_trace_point_writes_nothing(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, 0);
	thoth_trace_reader_t *r = open_reader();
	for (int i = 0; i < 10; i++)
		THOTH_TRACE(USER, disabled_event, i, 0);
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 0);
	assert_int_equal(st.read + st.dropped + st.overwritten + st.no_ring, 0);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_trace_point_before_init_is_a_no_op(void **state)
{
	THOTH_TRACE(USER, before_init, 1, 2);  /* must not crash or write */
	int fd;
	assert_int_equal(thoth_trace_export_fd(&fd), THOTH_E_NOT_FOUND);
	assert_int_equal(thoth_trace_enable(THOTH_TRACE_MASK(USER)), THOTH_E_NOT_FOUND);
}

static void test_categories_switch_on_and_off_at_run_time(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_MASK(USER));
	thoth_trace_reader_t *r = open_reader();
	THOTH_TRACE(USER, user_event, 1, 0);
	THOTH_TRACE(IPC, ipc_event, 2, 0);
	/* The collector flips the mask through the shared control page. */
	assert_int_equal(thoth_trace_reader_set_enabled(r, THOTH_TRACE_MASK(IPC)), 0);
	THOTH_TRACE(USER, user_event, 3, 0);
	THOTH_TRACE(IPC, ipc_event, 4, 0);
	/* And the process itself, per category. */
	assert_int_equal(thoth_trace_enable(THOTH_TRACE_MASK(TIMER)), 0);
	assert_int_equal(thoth_trace_disable(THOTH_TRACE_MASK(IPC)), 0);
	THOTH_TRACE(IPC, ipc_event, 5, 0);
	THOTH_TRACE(TIMER, timer_event, 6, 0);

	event_list_t l = { 0 };
	poll_into(r, &l);
	assert_int_equal(l.count, 3);
	assert_string_equal(l.events[0].name, "user_event");
	assert_int_equal(l.events[0].arg0, 1);
	assert_string_equal(l.events[1].name, "ipc_event");
	assert_int_equal(l.events[1].arg0, 4);
	assert_int_equal(l.events[1].category, THOTH_TRACE_CAT_IPC);
	assert_string_equal(l.events[2].name, "timer_event");
	assert_int_equal(l.events[2].arg0, 6);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_reader_sees_every_field_the_writer_wrote(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	uint64_t before = test_now_ns();
	THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, 77, 0xdeadbeef, 3, 42, 1500,
	                THOTH_TRACE_ZERO_COPY, 0x1122334455667788ull);
	uint64_t after = test_now_ns();
	event_list_t l = { 0 };
	poll_into(r, &l);
	assert_int_equal(l.count, 1);
	const thoth_trace_event_t *ev = &l.events[0];
	assert_string_equal(ev->name, "msg_send");
	assert_int_equal(ev->service_id, 77);
	assert_int_equal(ev->interface_id, 0xdeadbeef);
	assert_int_equal(ev->method, 3);
	assert_int_equal(ev->request_id, 42);
	assert_int_equal(ev->payload_size, 1500);
	assert_int_equal(ev->flags, THOTH_TRACE_SEND | THOTH_TRACE_ZERO_COPY);
	assert_int_equal(ev->trace_id, 0x1122334455667788ull);
	assert_int_equal(ev->category, THOTH_TRACE_CAT_IPC);
	assert_int_equal(ev->pid, (uint32_t)getpid());
	assert_int_equal(ev->tid, (uint32_t)gettid());
	assert_true(ev->cpu < 4096);
	/* TSC ticks come back as CLOCK_MONOTONIC ns (anchor error is tens of ns). */
	assert_true(ev->timestamp_ns + 2000 >= before);
	assert_true(ev->timestamp_ns <= after + 2000);
	uint32_t pid;
	const char *name;
	assert_int_equal(thoth_trace_reader_process(r, &pid, &name), 0);
	assert_int_equal(pid, (uint32_t)getpid());
	assert_string_equal(name, "buffer-test");
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* A writer that records a duration in clock ticks (THOTH_TRACE_MSG_Q, as the
 * channels do for queueing delays) and the event's own time: the reader
 * delivers the duration in ns and the time it was given, flag cleared. */
static void test_queue_delay_in_ticks_is_delivered_in_ns(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	uint64_t ns0 = test_now_ns(), t0 = thoth_trace_now();
	struct timespec pause = { 0, 3000000 };
	nanosleep(&pause, NULL);
	uint64_t t1 = thoth_trace_now(), ns1 = test_now_ns();
	uint64_t later = test_now_ns();
	THOTH_TRACE_MSG_Q(IPC, chan_recv, THOTH_TRACE_RECV, 7, 1, 2, 3, 64, THOTH_TRACE_INLINE,
	                  9, t1, t1 - t0);
	THOTH_TRACE_MSG_Q(IPC, chan_recv, THOTH_TRACE_RECV, 7, 1, 2, 4, 64, THOTH_TRACE_INLINE,
	                  9, 0, 0);
	event_list_t l = { 0 };
	poll_into(r, &l);
	assert_int_equal(l.count, 2);
	const thoth_trace_event_t *ev = &l.events[0];
	assert_int_equal(ev->flags, THOTH_TRACE_RECV | THOTH_TRACE_INLINE);
	/* At least the 3 ms pause, at most what CLOCK_MONOTONIC saw around it
	 * (plus the anchors' error). */
	assert_true(ev->arg0 >= 3000000);
	assert_true(ev->arg0 <= ns1 - ns0 + 2000);
	/* The time given, not the time of the emit. */
	assert_true(ev->timestamp_ns <= later + 2000);
	assert_true(ev->timestamp_ns + 2000 >= ns0 + 3000000);
	/* No delay known: arg0 0, no flag, stamped at the emit. */
	assert_int_equal(l.events[1].arg0, 0);
	assert_int_equal(l.events[1].flags, THOTH_TRACE_RECV | THOTH_TRACE_INLINE);
	assert_true(l.events[1].timestamp_ns + 2000 >= later);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_overwrite_oldest_keeps_newest_and_counts_the_rest(void **state)
{
	start_tracing(8, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	for (int i = 0; i < 20; i++)
		THOTH_TRACE(USER, counted, i, 0);
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 8);
	for (size_t i = 0; i < l.count; i++)
		assert_int_equal(l.events[i].arg0, 12 + i);
	assert_int_equal(st.overwritten, 12);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.read, 8);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* The ranges thoth__trace_reader_on_lost reports (ring, kind, [from, to)). */
typedef struct lost_ranges {
	unsigned n;
	uint32_t ring[8], kind[8];
	uint64_t from[8], to[8];
} lost_ranges_t;

static void lost_range_add(uint32_t ring, uint32_t kind, uint64_t from, uint64_t to, void *ctx)
{
	lost_ranges_t *lr = ctx;
	assert_true(lr->n < 8);
	lr->ring[lr->n] = ring;
	lr->kind[lr->n] = kind;
	lr->from[lr->n] = from;
	lr->to[lr->n] = to;
	lr->n++;
}

/* What a reader counts as overwritten it also tells by sequence: the lap,
 * [its position, head - capacity), one range a ring per poll; records
 * overwritten while it copies them, runs of consecutive ones as one range.
 * A collector splits a ring's loss by a cut with it (thothd: a session's
 * loss is only what was lapped from its start on, not the older records a
 * ring held when it started). */
static void test_overwritten_records_are_told_by_sequence(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	lost_ranges_t lr = { 0 };
	thoth__trace_reader_on_lost(r, lost_range_add, &lr);
	for (int i = 0; i < 10; i++)
		THOTH_TRACE(USER, older, i, 0);         /* before the cut */
	uint64_t cut;
	thoth__trace_reader_heads(r, &cut, 1);
	assert_int_equal(cut, 10);
	for (int i = 0; i < 100; i++)
		THOTH_TRACE(USER, newer, i, 0);         /* 110 in a ring of 64 */
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 64);
	assert_int_equal(st.overwritten, 46);
	assert_int_equal(lr.n, 1);
	assert_int_equal(lr.ring[0], 0);
	assert_int_equal(lr.from[0], 0);
	assert_int_equal(lr.to[0], 46);
	/* split by the cut: 10 older, 36 from the cut on */
	assert_int_equal(thoth__trace_cut_share(lr.from[0], lr.to[0], &cut, NULL), 36);
	assert_int_equal(thoth__trace_cut_share(lr.from[0], lr.to[0], NULL, &cut), 10);

	/* The next lap starts at the reader's position: [110, 116). */
	for (int i = 0; i < 70; i++)
		THOTH_TRACE(USER, again, i, 0);
	st = poll_into(r, &l);
	assert_int_equal(st.overwritten, 52);
	assert_int_equal(lr.n, 2);
	assert_int_equal(lr.from[1], 110);
	assert_int_equal(lr.to[1], 116);

	/* Records overwritten under the copy (their commit words no longer
	 * theirs): 3 consecutive ones, then 1 apart: two ranges. */
	for (int i = 0; i < 8; i++)
		THOTH_TRACE(USER, torn, i, 0);          /* seq 180..187 */
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	thoth_trace_record_t *slots = thoth_trace_ring_records(ring);
	for (uint64_t seq = 181; seq <= 183; seq++)
		__atomic_store_n(&slots[seq & 63].word0, thoth_trace_commit_for(seq + 64), __ATOMIC_RELAXED);
	__atomic_store_n(&slots[186 & 63].word0, thoth_trace_commit_for(186 + 64), __ATOMIC_RELAXED);
	st = poll_into(r, &l);
	assert_int_equal(st.overwritten, 56);
	assert_int_equal(lr.n, 4);
	assert_int_equal(lr.from[2], 181);
	assert_int_equal(lr.to[2], 184);
	assert_int_equal(lr.from[3], 186);
	assert_int_equal(lr.to[3], 187);
	assert_int_equal(l.count, 64 + 64 + 4);
	uint64_t told = 0;
	for (unsigned i = 0; i < lr.n; i++)
		told += lr.to[i] - lr.from[i];
	assert_int_equal(told, st.overwritten);

	/* NULL: no more calls, still counted. */
	thoth__trace_reader_on_lost(r, NULL, NULL);
	for (int i = 0; i < 70; i++)
		THOTH_TRACE(USER, quiet, i, 0);
	st = poll_into(r, &l);
	assert_int_equal(st.overwritten, 62);
	assert_int_equal(lr.n, 4);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* A collector's share of a lost range is what lies between its cuts
 * (thothd: a session's loss, from its start's cut to its stop's). */
static void test_a_cut_share_is_what_lies_between_the_cuts(void **state)
{
	(void)state;
	const uint64_t start = 100, stop = 200;
	assert_int_equal(thoth__trace_cut_share(10, 50, NULL, NULL), 40);     /* no cut */
	assert_int_equal(thoth__trace_cut_share(10, 100, &start, &stop), 0);  /* wholly before */
	assert_int_equal(thoth__trace_cut_share(200, 300, &start, &stop), 0); /* wholly after */
	assert_int_equal(thoth__trace_cut_share(250, 300, NULL, &stop), 0);
	assert_int_equal(thoth__trace_cut_share(10, 50, &start, NULL), 0);
	assert_int_equal(thoth__trace_cut_share(90, 150, &start, &stop), 50); /* straddles the start */
	assert_int_equal(thoth__trace_cut_share(90, 150, &start, NULL), 50);
	assert_int_equal(thoth__trace_cut_share(150, 250, &start, &stop), 50); /* straddles the stop */
	assert_int_equal(thoth__trace_cut_share(150, 250, NULL, &stop), 50);
	assert_int_equal(thoth__trace_cut_share(50, 250, &start, &stop), 100); /* both */
	assert_int_equal(thoth__trace_cut_share(120, 130, &start, &stop), 10); /* within */
	assert_int_equal(thoth__trace_cut_share(150, 150, &start, &stop), 0);  /* empty */
	assert_int_equal(thoth__trace_sat_add(1, 2), 3);
	assert_int_equal(thoth__trace_sat_add(UINT64_MAX - 1, 1), UINT64_MAX);
	assert_int_equal(thoth__trace_sat_add(UINT64_MAX - 1, 5), UINT64_MAX);
}

/* A ring's writer owns its head: a lying one makes the loss count absurd,
 * told in one call a lap (not a call a record), and the count saturates
 * rather than wrapping round to a small one.  The head far ahead, back to
 * 0 (counted invalid, followed), far ahead again: two laps of nearly 2^64
 * each.  The code before wrapped (2^64 - 32 overwritten: test fails). */
static void test_a_lying_head_is_told_once_and_saturates(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	lost_ranges_t lr = { 0 };
	thoth__trace_reader_on_lost(r, lost_range_add, &lr);
	for (int i = 0; i < 10; i++)
		THOTH_TRACE(USER, honest, i, 0);
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 10);
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	uint64_t honest_head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
	assert_int_equal(honest_head, 10);

	__atomic_store_n(&ring->head, UINT64_MAX - 10, __ATOMIC_RELEASE);
	st = poll_into(r, &l);
	assert_int_equal(lr.n, 1);      /* the lap and the copies after it: one range */
	assert_int_equal(lr.from[0], 10);
	assert_int_equal(lr.to[0], UINT64_MAX - 10);
	assert_int_equal(st.overwritten, UINT64_MAX - 20);
	assert_int_equal(l.count, 10);

	__atomic_store_n(&ring->head, 0, __ATOMIC_RELEASE);
	uint64_t invalid = st.invalid;
	st = poll_into(r, &l);
	assert_int_equal(st.invalid, invalid + 1);
	/* gone backwards: one invalid record with no sequence to place it by */
	assert_int_equal(lr.n, 2);
	assert_int_equal(lr.kind[1], THOTH__TRACE_LOST_UNPLACED);
	assert_int_equal(lr.to[1] - lr.from[1], 1);

	__atomic_store_n(&ring->head, UINT64_MAX - 10, __ATOMIC_RELEASE);
	st = poll_into(r, &l);
	assert_int_equal(lr.n, 3);
	assert_int_equal(lr.kind[2], THOTH__TRACE_LOST_OVERWRITTEN);
	assert_int_equal(lr.from[2], 0);
	assert_int_equal(lr.to[2], UINT64_MAX - 10);
	assert_int_equal(st.overwritten, UINT64_MAX);
	assert_int_equal(l.count, 10);

	__atomic_store_n(&ring->head, honest_head, __ATOMIC_RELEASE);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static int stop_at_first(const thoth_trace_event_t *ev, void *ctx)
{
	(void)ev;
	(*(unsigned *)ctx)++;
	return 1;
}

/* A poll reads the writers' refusal counters whatever stops it: one ended
 * by its callback (thothd's chunked drains end so) still says what was
 * refused, as does one to an empty cut of that ring.  The code before
 * summed only the rings a poll finished, and nothing when it stopped
 * early (0 here: test fails). */
static void test_a_poll_stopped_early_still_counts_refusals(void **state)
{
	start_tracing(8, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	for (int i = 0; i < 20; i++)
		THOTH_TRACE(USER, counted, i, 0);
	unsigned seen = 0;
	assert_int_equal(thoth_trace_reader_poll(r, stop_at_first, &seen), 1);
	assert_int_equal(seen, 1);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.dropped, 12);
	uint64_t dropped, no_ring;
	thoth__trace_reader_refused(r, &dropped, &no_ring);
	assert_int_equal(dropped, 12);
	/* 3 more refused (the ring still holds 7): a poll to a cut that
	 * reads none of this ring counts them too. */
	for (int i = 0; i < 4; i++)
		THOTH_TRACE(USER, counted, i, 0);
	uint64_t none = 0;
	assert_int_equal(thoth__trace_reader_poll_upto(r, &none, 1, stop_at_first, &seen), 0);
	assert_int_equal(seen, 1);
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.dropped, 15);
	thoth_trace_reader_close(r);
}

static void test_drop_newest_keeps_oldest_and_counts_drops_exactly(void **state)
{
	start_tracing(8, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	for (int i = 0; i < 20; i++)
		THOTH_TRACE(USER, counted, i, 0);
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 8);
	for (size_t i = 0; i < l.count; i++)
		assert_int_equal(l.events[i].arg0, i);
	assert_int_equal(st.dropped, 12);
	assert_int_equal(st.overwritten, 0);
	/* Draining frees the ring: new events are accepted again. */
	for (int i = 100; i < 103; i++)
		THOTH_TRACE(USER, counted, i, 0);
	st = poll_into(r, &l);
	assert_int_equal(l.count, 11);
	assert_int_equal(l.events[8].arg0, 100);
	assert_int_equal(st.dropped, 12);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_ring_wraps_around_without_loss_when_drained(void **state)
{
	start_tracing(8, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	event_list_t l = { 0 };
	uint64_t next = 0;
	for (int round = 0; round < 25; round++) {  /* 25 x 5 = 15 laps of 8 slots */
		for (int i = 0; i < 5; i++, next++)
			THOTH_TRACE(USER, wrap, next, 0);
		poll_into(r, &l);
	}
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	assert_int_equal(l.count, next);
	for (size_t i = 0; i < l.count; i++) {
		assert_int_equal(l.events[i].arg0, i);
		assert_int_equal(l.events[i].seq, i);
	}
	assert_int_equal(st.dropped + st.overwritten + st.invalid + st.torn, 0);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* ---- concurrent writers, concurrent reader ------------------------------ */

#define WRITERS 4
#define EVENTS_PER_WRITER 20000

static int writers_done;
static int reader_polls;

/* Each writer, half-way through, waits until the reader has polled twice
 * more: reads are guaranteed to interleave with writes on any scheduler. */
static void *writer_thread(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	int seen = __atomic_load_n(&reader_polls, __ATOMIC_ACQUIRE);
	uint64_t deadline = test_deadline();
	for (uint64_t i = 0; i < EVENTS_PER_WRITER; i++) {
		THOTH_TRACE(USER, concurrent, id, i);
		if (i == EVENTS_PER_WRITER / 2)
			while (__atomic_load_n(&reader_polls, __ATOMIC_ACQUIRE) < seen + 2 &&
			       test_now_ns() < deadline)
				sched_yield();
	}
	__atomic_fetch_add(&writers_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void check_concurrent_writers(uint32_t policy)
{
	/* USER only: with every category on, writers that meet on the name
	 * table's thoth_mutex add lock_wait events (LOCK), which are not this
	 * test's events and would break its exact accounting. */
	start_tracing(1024, policy, THOTH_TRACE_MASK(USER));
	thoth_trace_reader_t *r = open_reader();
	__atomic_store_n(&writers_done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&reader_polls, 0, __ATOMIC_RELAXED);
	pthread_t t[WRITERS];
	for (uintptr_t i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer_thread, (void *)i), 0);

	event_list_t l = { 0 };
	uint64_t deadline = test_deadline();
	while (__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) < WRITERS) {
		poll_into(r, &l);  /* reading while the writers write */
		__atomic_fetch_add(&reader_polls, 1, __ATOMIC_RELEASE);
		assert_true(test_now_ns() < deadline);
		sched_yield();
	}
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	thoth_trace_stats_t st = poll_into(r, &l);

	/* Nothing invented, nothing reordered within a thread, losses exact. */
	int64_t last[WRITERS] = { -1, -1, -1, -1 };
	for (size_t i = 0; i < l.count; i++) {
		const thoth_trace_event_t *ev = &l.events[i];
		assert_true(ev->arg0 < WRITERS);
		assert_true((int64_t)ev->arg1 > last[ev->arg0]);
		last[ev->arg0] = (int64_t)ev->arg1;
	}
	assert_int_equal(st.invalid, 0);
	assert_int_equal(st.torn, 0);
	assert_int_equal(st.read, l.count);
	assert_int_equal(st.read + st.dropped + st.overwritten, WRITERS * EVENTS_PER_WRITER);
	if (policy == THOTH_TRACE_DROP_NEWEST)
		assert_int_equal(st.overwritten, 0);
	else
		assert_int_equal(st.dropped, 0);
	assert_true(__atomic_load_n(&reader_polls, __ATOMIC_RELAXED) >= 2);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_concurrent_writers_drop_mode_lose_nothing_uncounted(void **state)
{
	check_concurrent_writers(THOTH_TRACE_DROP_NEWEST);
}

static void test_concurrent_writers_overwrite_mode_lose_nothing_uncounted(void **state)
{
	check_concurrent_writers(THOTH_TRACE_OVERWRITE_OLDEST);
}

static void *late_thread(void *arg)
{
	for (int i = 0; i < 5; i++)
		THOTH_TRACE(USER, late, i, 0);
	return NULL;
}

static void test_thread_without_a_free_ring_is_counted(void **state)
{
	thoth_trace_config_t cfg = { .ring_count = 1, .ring_records = 8,
	                             .enabled = THOTH_TRACE_ALL_CATEGORIES };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	THOTH_TRACE(USER, first, 0, 0);  /* this thread takes the only ring */
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, late_thread, NULL), 0);
	pthread_join(t, NULL);
	thoth_trace_reader_t *r = open_reader();
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(st.read, 1);
	assert_int_equal(st.no_ring, 5);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static pid_t fork_writer(int *go, bool tear);
static void writer_run(pid_t c, int go);

static void *ring_thread(void *arg)
{
	(void)arg;
	THOTH_TRACE(USER, ring_thread, 1, 0);
	return thoth_trace_thread_ring();
}

static thoth_trace_ring_header_t *ring_of_a_new_thread(void)
{
	pthread_t t;
	void *ring;
	assert_int_equal(pthread_create(&t, NULL, ring_thread, NULL), 0);
	assert_int_equal(pthread_join(t, &ring), 0);
	return ring;
}

/* The shared rings_claimed is anyone's to write.  Lowered (to 0, after a
 * forked child claimed ring 1): our next thread's proposal is a ring the
 * child holds, refused by the ring's own state, so the next free one (the
 * code before took ring 1 too: two writers on one ring).  Raised to the
 * ring count: our later threads still get the free rings (the code
 * before: none, each counted in no_ring). */
static void test_a_thread_claims_a_free_ring_whatever_the_shared_counter_says(void **state)
{
	start_tracing_rings(8);
	THOTH_TRACE(USER, parent, 1, 0);                       /* ring 0 */
	int go;
	pid_t c = fork_writer(&go, false);
	writer_run(c, go);                                      /* ring 1: the child's */
	thoth_trace_reader_t *r = open_reader();
	thoth_trace_control_t *ctl = thoth__trace_reader_control_page(r);
	uint8_t *base = (uint8_t *)ctl;
	assert_int_equal(thoth_trace_ring_at(base, 64, 1)->owner_pid, (uint32_t)c);
	__atomic_store_n(&ctl->rings_claimed, 0, __ATOMIC_RELAXED);
	/* the writer maps the buffer elsewhere: rings by index from ours */
	uint8_t *ring0 = (uint8_t *)thoth_trace_thread_ring();
	size_t stride = (size_t)((uint8_t *)thoth_trace_ring_at(base, 64, 1) - base) -
	                (size_t)((uint8_t *)thoth_trace_ring_at(base, 64, 0) - base);
	assert_ptr_equal(ring_of_a_new_thread(), ring0 + 2 * stride);
	assert_int_equal(thoth_trace_ring_at(base, 64, 1)->owner_pid, (uint32_t)c);
	__atomic_store_n(&ctl->rings_claimed, 8, __ATOMIC_RELAXED);
	assert_ptr_equal(ring_of_a_new_thread(), ring0 + 3 * stride);
	thoth_trace_reader_close(r);
}

static void *cut_thread(void *arg)
{
	for (int i = 0; i < 7; i++)
		THOTH_TRACE(USER, other, i, 0);
	(void)arg;
	return NULL;
}

/* Stop after LIMIT events a call (1: a chunk's end, as thothd's drains). */
typedef struct chunked {
	event_list_t *l;
	unsigned limit, seen;
} chunked_t;

static int chunk_add(const thoth_trace_event_t *ev, void *arg)
{
	chunked_t *c = arg;
	event_list_add(ev, c->l);
	return ++c->seen % c->limit == 0;
}

/* A stop's drain reads to a cut (thoth__trace_reader_heads): exactly the
 * records before it in every ring, however many a busy ring gets after it,
 * in chunks that resume where they stopped; a ring past the cut's length
 * is not read.  (thothd's stop once drained by a count, which a busy first
 * ring used up before a later ring's records before the cut.) */
static void test_a_drain_to_a_cut_reads_exactly_what_came_before_it(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	for (int i = 0; i < 10; i++)
		THOTH_TRACE(USER, before, i, 0);        /* ring 0 */
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, cut_thread, NULL), 0);
	pthread_join(th, NULL);                         /* ring 1: 7 */
	thoth_trace_reader_t *r = open_reader();
	uint64_t cut[2];
	thoth__trace_reader_heads(r, cut, 2);
	assert_int_equal(cut[0], 10);
	assert_int_equal(cut[1], 7);
	for (int i = 0; i < 30; i++)
		THOTH_TRACE(USER, after, i, 0);         /* ring 0, after the cut */
	event_list_t l = { 0 };
	chunked_t c = { .l = &l, .limit = 4 };
	int r1, polls = 0;
	while ((r1 = thoth__trace_reader_poll_upto(r, cut, 2, chunk_add, &c)) == 1)
		polls++;
	assert_int_equal(r1, 0);
	assert_true(polls >= 4);                        /* 17 in chunks of 4 */
	assert_int_equal(l.count, 17);
	unsigned ring0 = 0, ring1 = 0;
	for (size_t i = 0; i < l.count; i++) {
		assert_true(l.events[i].seq < cut[l.events[i].ring]);
		ring0 += l.events[i].ring == 0;
		ring1 += l.events[i].ring == 1;
	}
	assert_int_equal(ring0, 10);
	assert_int_equal(ring1, 7);
	/* what came after: the next plain poll, once */
	event_list_t rest = { 0 };
	poll_into(r, &rest);
	assert_int_equal(rest.count, 30);
	/* a cut of one ring reads nothing of ring 1; an empty one nothing */
	for (int i = 0; i < 3; i++)
		THOTH_TRACE(USER, more, i, 0);
	uint64_t one = cut[0] + 30 + 3;
	event_list_t l2 = { 0 };
	assert_int_equal(thoth__trace_reader_poll_upto(r, &one, 1, event_list_add, &l2), 0);
	assert_int_equal(l2.count, 3);
	assert_int_equal(thoth__trace_reader_poll_upto(r, NULL, 0, event_list_add, &l2), 0);
	assert_int_equal(thoth__trace_reader_poll_upto(r, NULL, 1, event_list_add, &l2), THOTH_E_INVAL);
	assert_int_equal(l2.count, 3);
	thoth_trace_reader_close(r);
	event_list_free(&l);
	event_list_free(&rest);
	event_list_free(&l2);
}

/* thothd sizes a drain by this count (the dashboard drains inline up to
 * 2,048 records, else on its task thread).  The ring words are the traced
 * process's, hostile: the count stays within the rings whatever they say. */
static void test_unread_count_is_bounded_whatever_the_rings_say(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	for (int i = 0; i < 10; i++)
		THOTH_TRACE(USER, unread, i, 0);
	thoth_trace_reader_t *r = open_reader();
	assert_int_equal(thoth__trace_reader_unread(r), 10);
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	thoth_trace_control_t *ctl = thoth__trace_reader_control_page(r);
	uint64_t head = ring->head, tail = ring->tail;
	uint32_t claimed = ctl->rings_claimed;
	/* A head far past the tail: one ring's worth, not 2^64. */
	__atomic_store_n(&ring->head, UINT64_MAX, __ATOMIC_RELEASE);
	assert_int_equal(thoth__trace_reader_unread(r), 64);
	/* A head behind the tail: nothing. */
	__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	__atomic_store_n(&ring->tail, head + 5, __ATOMIC_RELEASE);
	assert_int_equal(thoth__trace_reader_unread(r), 0);
	__atomic_store_n(&ring->tail, tail, __ATOMIC_RELEASE);
	/* Claimed rings past the ring count: only the rings there are, and
	 * only claimed ones, are counted. */
	__atomic_store_n(&ctl->rings_claimed, UINT32_MAX, __ATOMIC_RELEASE);
	assert_int_equal(thoth__trace_reader_unread(r), 10);
	__atomic_store_n(&ctl->rings_claimed, claimed, __ATOMIC_RELEASE);
	/* Read: nothing left. */
	event_list_t l = { 0 };
	poll_into(r, &l);
	assert_int_equal(l.count, 10);
	assert_int_equal(thoth__trace_reader_unread(r), 0);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* ---- other processes ------------------------------------------------------ */

static void test_reader_skips_half_written_record(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* The child claims its own ring, commits three events, then
		 * dies in the middle of a fourth, like a writer killed by -9. */
		for (int i = 0; i < 3; i++)
			THOTH_TRACE(USER, before_crash, i, 0);
		thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
		thoth_trace_record_t *rec =
		        &thoth_trace_ring_records(ring)[ring->head & (64 - 1)];
		__atomic_store_n(&rec->word0, THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		rec->arg0 = 0xbadbad;
		rec->service_id = 666;
		raise(SIGKILL);
		_exit(1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	thoth_trace_reader_t *r = open_reader();
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 3);
	for (size_t i = 0; i < l.count; i++) {
		assert_int_equal(l.events[i].pid, (uint32_t)child);
		assert_int_equal(l.events[i].arg0, i);
	}
	assert_int_equal(st.torn, 1);
	assert_int_equal(st.invalid, 0);
	/* Counted once, however often the reader looks. */
	st = poll_into(r, &l);
	assert_int_equal(st.torn, 1);
	assert_int_equal(l.count, 3);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static void test_unfinished_record_of_a_live_writer_is_not_torn(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	THOTH_TRACE(USER, committed, 1, 0);
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	thoth_trace_record_t *rec = &thoth_trace_ring_records(ring)[ring->head & 63];
	__atomic_store_n(&rec->word0, THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
	thoth_trace_reader_t *r = open_reader();
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 1);
	assert_int_equal(st.torn, 0);  /* we are alive: it is in progress */
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* Torn and invalid records are told by sequence too, as lapped ones are
 * (thothd splits a session's share of them by its cuts): records whose
 * fields do not decode as runs of [from, to), a torn head as [head, head +
 * 1), found by a poll or, at a cut, by thoth__trace_reader_find_torn, and
 * counted once either way.  The code before told only lapped records. */
static void test_torn_and_invalid_records_are_told_by_sequence(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	lost_ranges_t lr = { 0 };
	thoth__trace_reader_on_lost(r, lost_range_add, &lr);
	for (int i = 0; i < 6; i++)
		THOTH_TRACE(USER, decoded, i, 0);       /* seq 0..5 */
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	thoth_trace_record_t *slots = thoth_trace_ring_records(ring);
	for (uint64_t seq = 2; seq <= 3; seq++)  /* committed, but flags no writer sets */
		__atomic_store_n(&slots[seq].word0, thoth_trace_word0(thoth_trace_commit_for(seq), 0,
								      THOTH_TRACE_CAT_USER, 0xe0),
				 __ATOMIC_RELEASE);
	__atomic_store_n(&slots[5].word0, thoth_trace_word0(thoth_trace_commit_for(5), 0, 64, 0),
			 __ATOMIC_RELEASE);     /* no such category */
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(l.count, 3);
	assert_int_equal(st.invalid, 3);
	assert_int_equal(lr.n, 2);
	assert_int_equal(lr.kind[0], THOTH__TRACE_LOST_INVALID);
	assert_int_equal(lr.from[0], 2);
	assert_int_equal(lr.to[0], 4);
	assert_int_equal(lr.kind[1], THOTH__TRACE_LOST_INVALID);
	assert_int_equal(lr.from[1], 5);
	assert_int_equal(lr.to[1], 6);

	/* A child claims the next ring, commits 3 records and dies in its
	 * fourth: found at a cut without reading the ring, told once. */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (int i = 0; i < 3; i++)
			THOTH_TRACE(USER, before_crash, i, 0);
		thoth_trace_ring_header_t *cr = thoth_trace_thread_ring();
		__atomic_store_n(&thoth_trace_ring_records(cr)[cr->head & 63].word0,
				 THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
		raise(SIGKILL);
		_exit(1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	thoth__trace_reader_find_torn(r);
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.torn, 1);
	assert_int_equal(lr.n, 3);
	assert_int_equal(lr.kind[2], THOTH__TRACE_LOST_TORN);
	assert_int_equal(lr.ring[2], 1);
	assert_int_equal(lr.from[2], 3);
	assert_int_equal(lr.to[2], 4);
	st = poll_into(r, &l);                  /* its 3 records; the torn one not again */
	assert_int_equal(l.count, 6);
	assert_int_equal(st.torn, 1);
	thoth__trace_reader_find_torn(r);
	assert_int_equal(lr.n, 3);
	uint64_t told[4] = { 0 };
	for (unsigned i = 0; i < lr.n; i++)
		told[lr.kind[i]] += lr.to[i] - lr.from[i];
	assert_int_equal(told[THOTH__TRACE_LOST_INVALID], st.invalid);
	assert_int_equal(told[THOTH__TRACE_LOST_TORN], st.torn);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* A thread that writes one record, names PID/TID as its ring's writer
 * where asked (a lying writer), leaves its head slot mid-write and exits. */
typedef struct tear_arg {
	uint32_t pid, tid;      /* 0: the ring's own */
} tear_arg_t;

static void *tear_and_exit(void *arg)
{
	const tear_arg_t *a = arg;
	THOTH_TRACE(USER, before_tear, 1, 0);
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	if (a->pid) {
		ring->owner_pid = a->pid;
		ring->owner_tid = a->tid;
	}
	__atomic_store_n(&thoth_trace_ring_records(ring)[ring->head & 63].word0,
			 THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
	return NULL;
}

static void tear_in_thread(uint32_t pid, uint32_t tid)
{
	tear_arg_t a = { pid, tid };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, tear_and_exit, &a), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
}

/* The pid and tid in a ring are its writer's word: a reader told its peer
 * (thothd: the connection's SO_PEERCRED pid) probes that process's threads
 * only.  Three torn rings: one of ours (its thread exited), one naming a
 * reaped child, one naming a live child.  Probing every pid named (the
 * code before, and a reader with no peer) tells the writer which of the
 * two others exists (torn 2: the reaped one counted); with its peer set,
 * only our own ring is counted (torn 1). */
static void test_a_ring_naming_another_pid_is_not_probed(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	int hold[2];
	assert_int_equal(pipe(hold), 0);
	pid_t live = fork();
	assert_true(live >= 0);
	if (live == 0) {
		char b;
		close(hold[1]);
		_exit(read(hold[0], &b, 1) < 0);
	}
	close(hold[0]);
	pid_t gone = fork();
	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	int status;
	assert_int_equal(waitpid(gone, &status, 0), gone);

	tear_in_thread(0, 0);                                   /* ring 0: ours */
	tear_in_thread((uint32_t)gone, (uint32_t)gone);         /* ring 1 */
	tear_in_thread((uint32_t)live, (uint32_t)live);         /* ring 2 */

	thoth_trace_reader_t *any = open_reader(), *peer = open_reader();
	thoth__trace_reader_set_peer(peer, (uint32_t)getpid());
	lost_ranges_t lr = { 0 };
	thoth__trace_reader_on_lost(peer, lost_range_add, &lr);
	thoth__trace_reader_find_torn(any);
	thoth__trace_reader_find_torn(peer);
	thoth_trace_stats_t st_any, st_peer;
	assert_int_equal(thoth_trace_reader_stats(any, &st_any), 0);
	assert_int_equal(thoth_trace_reader_stats(peer, &st_peer), 0);
	close(hold[1]);
	assert_int_equal(waitpid(live, &status, 0), live);
	assert_int_equal(st_any.torn, 2);
	assert_int_equal(st_peer.torn, 1);
	assert_int_equal(lr.n, 1);
	assert_int_equal(lr.ring[0], 0);
	assert_int_equal(lr.kind[0], THOTH__TRACE_LOST_TORN);
	thoth_trace_reader_close(any);
	thoth_trace_reader_close(peer);
}

/* A writer that crashed mid-record but is not reaped yet (a zombie) is
 * dead: tgkill(2) still finds it, its state (Z) says it.  The code before
 * counted it alive (torn 0) until its parent reaped it. */
static void test_a_zombie_writer_is_dead(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_reader_t *r = open_reader();
	THOTH_TRACE(USER, parent, 1, 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		tear_arg_t a = { 0, 0 };
		tear_and_exit(&a);
		raise(SIGKILL);
		_exit(1);
	}
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
	thoth__trace_reader_set_peer(r, (uint32_t)child);
	thoth__trace_reader_find_torn(r);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(st.torn, 1);
	thoth_trace_reader_close(r);
}

/* A pidfd of PID (as thothd takes one with SO_PEERPIDFD). */
static int pidfd_of(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(fd >= 0);
	return fd;
}

/* A forked child sharing our buffer that waits for a byte on *GO, then
 * claims a ring of its own (its pid in it), writes a record, leaves its
 * head mid-write and is killed (SIGKILL) in it.  With TEAR false it
 * exits cleanly instead, after its record. */
static pid_t fork_writer(int *go, bool tear)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		char b;
		close(p[1]);
		if (read(p[0], &b, 1) != 1)
			_exit(1);
		if (!tear) {
			THOTH_TRACE(USER, child_record, 1, 0);
			_exit(0);
		}
		tear_arg_t a = { 0, 0 };
		tear_and_exit(&a);
		raise(SIGKILL);
		_exit(1);
	}
	close(p[0]);
	*go = p[1];
	return c;
}

/* Let it go and reap it. */
static void writer_run(pid_t c, int go)
{
	assert_int_equal(write(go, "g", 1), 1);
	close(go);
	int status;
	assert_int_equal(waitpid(c, &status, 0), c);
}

/* N children that live until HOLD's write end closes: one pipe for all
 * (each child closes its copy of the write end, a pipe each would be held
 * open by the children forked after).  TRACE: each traces first (a ring
 * each, its pid in it), and is waited for until it has. */
static void fork_sleepers_tracing(pid_t *pids, uint32_t n, int *hold, bool trace)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	for (uint32_t i = 0; i < n; i++) {
		int q[2];
		assert_int_equal(pipe(q), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char b;
			close(p[1]);
			if (trace)
				THOTH_TRACE(USER, sleeper, 1, 0);
			if (write(q[1], "t", 1) != 1)
				_exit(1);
			_exit(read(p[0], &b, 1) < 0);
		}
		char b;
		assert_int_equal(read(q[0], &b, 1), 1);
		close(q[0]);
		close(q[1]);
	}
	close(p[0]);
	*hold = p[1];
}

static void fork_sleepers(pid_t *pids, uint32_t n, int *hold)
{
	fork_sleepers_tracing(pids, n, hold, false);
}

static void fork_tracing_sleepers(pid_t *pids, uint32_t n, int *hold)
{
	fork_sleepers_tracing(pids, n, hold, true);
}

static void sleepers_end(const pid_t *pids, uint32_t n, int hold)
{
	close(hold);
	for (uint32_t i = 0; i < n; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
	}
}

/*
 * A forked child shares its parent's buffer and writes a ring naming its
 * own pid.  Killed mid-record, its ring is torn, but a reader told only the
 * parent as its peer never probes the child (a ring naming another pid is
 * the writer's word) unless it is verified: added (thothd: its own
 * connection handed over the same memfd) with a pidfd taken while it
 * lived, then its threads are probed: torn 1.  Another pid added does not
 * make it probed, a full set refuses more, and a pid removed while it
 * lives stays probed (its connection closed, it has not exited yet).
 */
static void test_a_forked_child_sharing_the_buffer_is_counted_torn_once_added(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	THOTH_TRACE(USER, parent, 1, 0);                       /* ring 0: ours */
	thoth_trace_reader_t *r = open_reader(), *other = open_reader(), *none = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	thoth__trace_reader_set_peer(other, (uint32_t)getpid());
	thoth__trace_reader_set_peer(none, (uint32_t)getpid());
	int go;
	pid_t child = fork_writer(&go, true);
	assert_true(thoth__trace_reader_add_peer(r, (uint32_t)child, pidfd_of(child)));
	assert_true(thoth__trace_reader_add_peer(r, (uint32_t)child, pidfd_of(child)));   /* once */
	assert_int_equal(thoth__trace_reader_peer_count(r), 1);
	thoth__trace_reader_remove_peer(r, (uint32_t)child);   /* alive: kept, still probed */
	assert_int_equal(thoth__trace_reader_peer_count(r), 1);
	/* a full set (15 living pids besides the peer) refuses more */
	enum { N = THOTH__TRACE_READER_PEERS };
	pid_t sleepers[N];
	int hold;
	fork_sleepers(sleepers, N, &hold);
	for (uint32_t i = 0; i < N; i++)
		assert_true(thoth__trace_reader_add_peer(other, (uint32_t)sleepers[i],
							 pidfd_of(sleepers[i])));
	assert_false(thoth__trace_reader_add_peer(other, (uint32_t)child, pidfd_of(child)));
	assert_false(thoth__trace_reader_add_peer(r, (uint32_t)child, -1));     /* no pidfd */
	writer_run(child, go);
	/* the child's ring was never adopted by NONE while it lived: unverified */
	thoth__trace_reader_find_torn(r);
	thoth__trace_reader_find_torn(other);
	thoth__trace_reader_find_torn(none);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.torn, 1);
	assert_int_equal(thoth_trace_reader_stats(other, &st), 0);
	assert_int_equal(st.torn, 0);                          /* never added: not probed */
	assert_int_equal(thoth_trace_reader_stats(none, &st), 0);
	assert_int_equal(st.torn, 0);
	sleepers_end(sleepers, N, hold);
	thoth_trace_reader_close(r);
	thoth_trace_reader_close(other);
	thoth_trace_reader_close(none);
}

/*
 * More than 15 short-lived forked writers in sequence, each verified while
 * it lives, each killed mid-record: every one is counted torn.  A slot is
 * freed only once its process exited (its pidfd) and its records were read
 * (its torn head counted): removed before the poll that reads it, a dead
 * child keeps its slot; the poll frees it.  Half are never removed (a
 * process that never said its connection closed): a full set frees those
 * exited and read out to make room.  The code before never freed a slot:
 * the 16th child's add_peer failed, its ring never torn (the thothd test
 * test_thothd_live_drain's test_more_than_fifteen_forked_children_are_each_counted_torn
 * shows it on the old code; this API took no pidfd then).
 */
static void test_more_than_fifteen_short_lived_children_each_get_a_slot(void **state)
{
	enum { CHILDREN = 2 * THOTH__TRACE_READER_PEERS + 3 };
	start_tracing_rings(CHILDREN + 2);
	THOTH_TRACE(USER, parent, 1, 0);                       /* ring 0: ours */
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	event_list_t l = { 0 };
	thoth_trace_stats_t st = poll_into(r, &l);
	for (uint32_t i = 0; i < CHILDREN; i++) {
		int go;
		pid_t c = fork_writer(&go, true);
		assert_true(thoth__trace_reader_add_peer(r, (uint32_t)c, pidfd_of(c)));
		writer_run(c, go);
		if (i == 0) {
			/* dead, but its record unread: still a peer */
			thoth__trace_reader_remove_peer(r, (uint32_t)c);
			assert_int_equal(thoth__trace_reader_peer_count(r), 1);
		}
		st = poll_into(r, &l);
		assert_int_equal(st.torn, i + 1);
		if (i % 2 == 0)
			thoth__trace_reader_remove_peer(r, (uint32_t)c);
		/* the odd ones kept until a 16th pid finds the set full of
		 * them (child 30): then every one exited and read out is freed */
		if (i % 2 == 0 && i < 2 * THOTH__TRACE_READER_PEERS)
			assert_int_equal(thoth__trace_reader_peer_count(r), (i + 1) / 2);
	}
	assert_int_equal(thoth__trace_reader_peer_count(r), 1);  /* child 31 */
	/* each child's first record, each in a ring of its own (children
	 * forked in turn all claimed their parent's next ring: the second
	 * overwrote the first's, its record never read) */
	assert_int_equal(l.count, 1 + CHILDREN);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/*
 * A forked child that writes into the buffer it inherited but never
 * connects to thothd: nothing proves it holds the buffer, but its parent
 * is the verified peer, so it is that process's own child.  Seen alive
 * (its ring adopted by a poll while it lives), it is verified then and
 * counted torn when it dies mid-record.  The code before never counted it
 * (torn 0: test fails on it).  A ring naming a process that is not our
 * child (our parent) stays unprobed.
 */
static void test_an_unconnected_forked_child_seen_alive_is_counted_torn(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	THOTH_TRACE(USER, parent, 1, 0);                       /* ring 0: ours */
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	event_list_t l = { 0 };
	poll_into(r, &l);
	/* a child that writes, waits, then tears: adopted while alive */
	int p[2], q[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		char b;
		close(p[1]);
		close(q[0]);
		THOTH_TRACE(USER, child_first, 1, 0);
		if (write(q[1], "w", 1) != 1 || read(p[0], &b, 1) != 1)
			_exit(1);
		tear_arg_t a = { 0, 0 };
		tear_and_exit(&a);
		raise(SIGKILL);
		_exit(1);
	}
	close(p[0]);
	close(q[1]);
	char b;
	assert_int_equal(read(q[0], &b, 1), 1);
	close(q[0]);
	tear_in_thread((uint32_t)getppid(), (uint32_t)getppid());  /* not ours: never probed */
	thoth_trace_stats_t st = poll_into(r, &l);                  /* adopts both rings */
	assert_int_equal(st.torn, 0);
	assert_int_equal(thoth__trace_reader_peer_count(r), 1);
	writer_run(c, p[1]);
	st = poll_into(r, &l);
	assert_int_equal(st.torn, 1);
	assert_int_equal(thoth__trace_reader_peer_count(r), 0);    /* exited, read out: freed */
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

typedef struct stuck_writer {
	int go[2], ready[2];
} stuck_writer_t;

/* A thread stopped mid-record (its head slot BUSY) until GO. */
static pid_t stuck_tid;

static void *stuck_thread(void *arg)
{
	stuck_writer_t *w = arg;
	stuck_tid = gettid();
	THOTH_TRACE(USER, before_stuck, 1, 0);
	thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
	__atomic_store_n(&thoth_trace_ring_records(ring)[ring->head & 63].word0,
			 THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
	char b;
	if (write(w->ready[1], "r", 1) != 1 || read(w->go[0], &b, 1) != 1)
		return (void *)1;
	return NULL;
}

/*
 * A writer stopped mid-record is asked about at every poll that meets its
 * BUSY head: the reader keeps its thread's pidfd between polls (one
 * poll(2) a time, bench_trace_torn).  Alive, never torn, however many
 * polls; once the thread exits, the next poll counts it torn, once; the
 * kept pidfd is closed then and with the reader.
 */
static void test_a_stuck_writer_is_watched_until_it_dies(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	int fds0 = open_fds();
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	stuck_writer_t w;
	assert_int_equal(pipe(w.go), 0);
	assert_int_equal(pipe(w.ready), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stuck_thread, &w), 0);
	char b;
	assert_int_equal(read(w.ready[0], &b, 1), 1);
	/* the thread's own pidfd: pthread_join returns before the kernel
	 * marks the thread exited (tgkill still finds it, its pidfd not yet
	 * readable), so its exit is waited for on this one */
	int tfd = (int)syscall(SYS_pidfd_open, stuck_tid, PIDFD_THREAD);
	assert_true(tfd >= 0);
	int fds1 = open_fds();
	event_list_t l = { 0 };
	thoth_trace_stats_t st;
	for (int i = 0; i < 5; i++) {
		st = poll_into(r, &l);
		assert_int_equal(st.torn, 0);
		/* one pidfd kept across the polls (a reader opening and
		 * closing one each poll would leave the count as it was) */
		assert_int_equal(open_fds(), fds1 + 1);
	}
	assert_int_equal(write(w.go[1], "g", 1), 1);
	void *ret;
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_null(ret);
	struct pollfd pf = { .fd = tfd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 60000), 1);       /* generous: not a timing assertion */
	close(tfd);
	for (int i = 0; i < 3; i++) {
		st = poll_into(r, &l);
		assert_int_equal(st.torn, 1);
	}
	assert_int_equal(l.count, 1);
	thoth_trace_reader_close(r);
	for (int i = 0; i < 2; i++) {
		close(w.go[i]);
		close(w.ready[i]);
	}
	assert_int_equal(open_fds(), fds0);             /* the watched thread's pidfd closed */
	event_list_free(&l);
}

/* A stuck writer's head committed again (its thread alive): the next poll
 * meeting it closes the thread's pidfd, a descriptor thothd holds for
 * nothing otherwise (the code before kept it until the thread exited or
 * another ring stuck: fds stay one up, this test fails).  Under a pidfd
 * budget of none, readers hold no pidfd: a stuck writer is asked about by
 * tgkill and /proc (torn once it exits, as before), an added peer is
 * refused. */
static void test_the_pidfds_readers_hold_are_bounded(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	THOTH_TRACE(USER, parent, 1, 0);
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	uint32_t held0 = thoth__trace_reader_pidfds_held();
	stuck_writer_t w;
	assert_int_equal(pipe(w.go), 0);
	assert_int_equal(pipe(w.ready), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stuck_thread, &w), 0);
	char b;
	assert_int_equal(read(w.ready[0], &b, 1), 1);
	event_list_t l = { 0 };
	int fds0 = open_fds();
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(st.torn, 0);
	assert_int_equal(open_fds(), fds0 + 1);                 /* watched */
	assert_int_equal(thoth__trace_reader_pidfds_held(), held0 + 1);
	/* the record committed, the thread alive */
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(
	        (uint8_t *)thoth__trace_reader_control_page(r), 64, 1);
	thoth_trace_record_t *slot = &thoth_trace_ring_records(ring)[ring->head & 63];
	uint64_t busy = __atomic_load_n(&slot->word0, __ATOMIC_RELAXED);
	assert_int_equal((uint32_t)busy, THOTH_TRACE_COMMIT_BUSY);
	__atomic_store_n(&slot->word0, 0, __ATOMIC_RELEASE);
	st = poll_into(r, &l);
	assert_int_equal(open_fds(), fds0);                     /* dropped */
	assert_int_equal(thoth__trace_reader_pidfds_held(), held0);
	__atomic_store_n(&slot->word0, busy, __ATOMIC_RELEASE); /* stuck again */

	/* no budget: nothing kept, the answers the same */
	thoth__trace_reader_pidfd_budget(0);
	for (int i = 0; i < 3; i++) {
		st = poll_into(r, &l);
		assert_int_equal(st.torn, 0);
		assert_int_equal(open_fds(), fds0);
	}
	int go;
	pid_t c = fork_writer(&go, false);
	assert_false(thoth__trace_reader_add_peer(r, (uint32_t)c, pidfd_of(c)));
	assert_int_equal(open_fds(), fds0 + 1);                 /* the pipe to C only */
	writer_run(c, go);
	int tfd = (int)syscall(SYS_pidfd_open, stuck_tid, PIDFD_THREAD);
	assert_true(tfd >= 0);
	assert_int_equal(write(w.go[1], "g", 1), 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	struct pollfd pf = { .fd = tfd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 60000), 1);
	close(tfd);
	st = poll_into(r, &l);
	assert_int_equal(st.torn, 1);
	thoth__trace_reader_pidfd_budget(UINT32_MAX);
	thoth_trace_reader_close(r);
	assert_int_equal(thoth__trace_reader_pidfds_held(), held0 - 1);    /* set_peer's */
	for (int i = 0; i < 2; i++) {
		close(w.go[i]);
		close(w.ready[i]);
	}
	event_list_free(&l);
}

/* Forked children that never connected are adopted up to
 * THOTH__TRACE_READER_ADOPTED, and give their slots up to connecting
 * peers: the code before adopted 15, and the 16th process to connect was
 * refused (its rings never torn, never asked again). */
static void test_adopted_children_give_way_to_connecting_ones(void **state)
{
	enum { N = THOTH__TRACE_READER_PEERS };
	start_tracing_rings(2 * N + 2);
	THOTH_TRACE(USER, parent, 1, 0);
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	event_list_t l = { 0 };
	poll_into(r, &l);
	pid_t kids[N], conn[N];
	int hold, hold2;
	fork_tracing_sleepers(kids, N, &hold);
	poll_into(r, &l);                                       /* adopts */
	assert_int_equal(thoth__trace_reader_peer_count(r), THOTH__TRACE_READER_ADOPTED);
	assert_true(thoth__trace_reader_peer_count(r) < N);    /* room for connecting ones */
	fork_tracing_sleepers(conn, N, &hold2);
	for (uint32_t i = 0; i < N; i++)
		assert_true(thoth__trace_reader_add_peer(r, (uint32_t)conn[i], pidfd_of(conn[i])));
	assert_int_equal(thoth__trace_reader_peer_count(r), N);
	poll_into(r, &l);                                       /* none adopted again */
	assert_int_equal(thoth__trace_reader_peer_count(r), N);
	thoth_trace_reader_close(r);
	sleepers_end(conn, N, hold2);       /* first: they hold KIDS' pipe too */
	sleepers_end(kids, N, hold);
	event_list_free(&l);
}

/* The peer's pidfd (set_peer_pidfd) says whether the parent a child's
 * /proc names is that process: here a pidfd of one that exited (as when
 * the peer died and its number went to another), so a live child of ours
 * is not adopted.  The code before trusted the number: adopted. */
static void test_a_child_is_adopted_only_while_the_peer_lives(void **state)
{
	start_tracing_rings(8);
	THOTH_TRACE(USER, parent, 1, 0);
	int go;
	pid_t gone = fork_writer(&go, false);
	int gone_fd = pidfd_of(gone);
	writer_run(gone, go);
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer_pidfd(r, (uint32_t)getpid(), gone_fd);
	thoth_trace_reader_t *live = open_reader();
	thoth__trace_reader_set_peer(live, (uint32_t)getpid());
	pid_t kid;
	int hold;
	fork_tracing_sleepers(&kid, 1, &hold);
	event_list_t l = { 0 };
	poll_into(r, &l);
	poll_into(live, &l);
	assert_int_equal(thoth__trace_reader_peer_count(r), 0);
	assert_int_equal(thoth__trace_reader_peer_count(live), 1);
	thoth_trace_reader_close(r);
	thoth_trace_reader_close(live);
	sleepers_end(&kid, 1, hold);
	event_list_free(&l);
}

/* A slot whose process exited, its number now a child of ours (reused):
 * the child's ring, met at first sight, is verified afresh and the slot
 * takes its pidfd.  The code before judged the live child by the exited
 * one's pidfd: its BUSY head counted torn while it lived. */
static void test_a_reused_pid_is_verified_afresh(void **state)
{
	start_tracing_rings(8);
	THOTH_TRACE(USER, parent, 1, 0);
	int go;
	pid_t gone = fork_writer(&go, false);
	int gone_fd = pidfd_of(gone);
	writer_run(gone, go);
	thoth_trace_reader_t *r = open_reader();
	thoth__trace_reader_set_peer(r, (uint32_t)getpid());
	event_list_t l = { 0 };
	poll_into(r, &l);
	/* a live child, stuck mid-record until P closes */
	int p[2], q[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(pipe(q), 0);
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		char b;
		close(p[1]);
		tear_arg_t a = { 0, 0 };
		tear_and_exit(&a);
		if (write(q[1], "w", 1) != 1 || read(p[0], &b, 1) != 1)
			_exit(1);
		raise(SIGKILL);
		_exit(1);
	}
	close(p[0]);
	char b;
	assert_int_equal(read(q[0], &b, 1), 1);
	close(q[0]);
	close(q[1]);
	/* its number's slot holds the pidfd of a process that exited */
	assert_true(thoth__trace_reader_add_peer(r, (uint32_t)c, gone_fd));
	thoth_trace_stats_t st = poll_into(r, &l);
	assert_int_equal(st.torn, 0);
	writer_run(c, p[1]);
	st = poll_into(r, &l);
	assert_int_equal(st.torn, 1);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

/* A lying head of UINT64_MAX over a torn slot: [head, head + 1) would wrap
 * to [UINT64_MAX, 0), nothing to a collector's cut while torn grew by one.
 * Not counted.  And a count an absurd head saturated stays saturated when a
 * head going backwards adds one (the code before wrapped it round to 0). */
static void test_a_lying_head_neither_wraps_torn_nor_invalid(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		THOTH_TRACE(USER, child_record, 1, 0);
		thoth_trace_ring_header_t *ring = thoth_trace_thread_ring();
		thoth_trace_record_t *slots = thoth_trace_ring_records(ring);
		for (int i = 0; i < 64; i++)
			__atomic_store_n(&slots[i].word0, THOTH_TRACE_COMMIT_BUSY, __ATOMIC_RELAXED);
		__atomic_store_n(&ring->head, UINT64_MAX, __ATOMIC_RELEASE);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	thoth_trace_reader_t *r = open_reader();
	lost_ranges_t lr = { 0 };
	thoth__trace_reader_on_lost(r, lost_range_add, &lr);
	thoth__trace_reader_find_torn(r);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.torn, 0);
	assert_int_equal(lr.n, 0);

	event_list_t l = { 0 };
	st = poll_into(r, &l);                  /* lap + 64 broken copies: saturated */
	assert_int_equal(l.count, 0);
	assert_true(st.invalid == UINT64_MAX);
	assert_int_equal(st.torn, 0);
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(
	        (uint8_t *)thoth__trace_reader_control_page(r), 64, 0);
	__atomic_store_n(&ring->head, 5, __ATOMIC_RELEASE);     /* backwards */
	st = poll_into(r, &l);
	assert_true(st.invalid == UINT64_MAX);
	thoth_trace_reader_close(r);
	event_list_free(&l);
}

#define LIVE_EVENTS 20000

/* The child is the collector: it opens the parent's memfd by its /proc path
 * and drains while the parent writes; the pipe only says "writer finished". */
static int child_reads_live_buffer(pid_t parent, int fd, int done_pipe)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)parent, fd);
	int own = open(path, O_RDWR | O_CLOEXEC);
	if (own < 0)
		return 10;
	thoth_trace_reader_t *r;
	if (thoth_trace_reader_open(own, &r) != 0)
		return 11;
	close(own);
	event_list_t l = { 0 };
	uint64_t deadline = test_deadline();
	int finished = 0;
	while (!finished) {
		char b;
		finished = read(done_pipe, &b, 1) == 1;  /* read before the last poll */
		if (thoth_trace_reader_poll(r, event_list_add, &l) != 0)
			return 12;
		if (test_now_ns() > deadline)
			return 13;
	}
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	for (size_t i = 1; i < l.count; i++)
		if (l.events[i].arg0 <= l.events[i - 1].arg0)
			return 14;
	int rc = st.read + st.dropped == LIVE_EVENTS && st.invalid == 0 && l.count > 0 ? 0 : 15;
	thoth_trace_reader_close(r);
	event_list_free(&l);
	return rc;
}

static void test_reader_in_another_process_drains_live_buffer(void **state)
{
	start_tracing(256, THOTH_TRACE_DROP_NEWEST, THOTH_TRACE_ALL_CATEGORIES);
	int fd;
	assert_int_equal(thoth_trace_export_fd(&fd), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	pid_t parent = getpid();
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(p[1]);
		_exit(child_reads_live_buffer(parent, fd, p[0]));
	}
	close(p[0]);
	for (uint64_t i = 0; i < LIVE_EVENTS; i++)
		THOTH_TRACE(USER, live, i, 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	close(p[1]);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_reader_refuses_a_memfd_that_can_shrink(void **state)
{
	int fd = memfd_create("not-sealed", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 16), 0);
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), THOTH_E_PERM);
	assert_null(r);
	close(fd);
}

static void test_reader_rejects_images_with_bad_geometry(void **state)
{
	static uint8_t image[THOTH_TRACE_RINGS_OFFSET + 4096];
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open_image(image, 100, &r), THOTH_E_TRUNCATED);
	assert_int_equal(thoth_trace_reader_open_image(image, sizeof image, &r), THOTH_E_BAD_MAGIC);
	thoth_trace_control_t *c = (thoth_trace_control_t *)image;
	c->magic = THOTH_TRACE_MAGIC;
	c->version = THOTH_TRACE_VERSION;
	c->record_size = THOTH_TRACE_RECORD_SIZE;
	c->ring_count = 1000;          /* far more than the image holds */
	c->ring_records = 1024;
	assert_int_equal(thoth_trace_reader_open_image(image, sizeof image, &r), THOTH_E_BAD_LENGTH);
	c->ring_records = 1000;        /* not a power of two */
	assert_int_equal(thoth_trace_reader_open_image(image, sizeof image, &r), THOTH_E_CORRUPT);
	assert_null(r);
}

/* runtime.c's (probe_runtime.h): set the probe bits as thothd does. */
void thoth__probe_bits(bool any);
/* mailbox.c's: the last command this process saw (the fire path's compare). */
extern uint64_t thoth__probe_taken_seq;

/*
 * A forked child shares its parent's buffer and so its probe mailbox: the
 * command is the parent's (thothd addresses it by the buffer's pid; an
 * ATTACH's maps fd lives in the parent's fd table), so a trace point in
 * the child never takes it; the parent's next one does.  The child took
 * it (the claim let exactly one process win, either).
 */
static void test_a_forked_child_never_takes_the_parents_probe_command(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_probe_mailbox_t *mb =
		(void *)((char *)thoth_trace_buffer.control + THOTH_TRACE_PROBE_MAILBOX_OFFSET);
	uint64_t seq = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE) + 1;
	mb->cmd = THOTH_TRACE_PROBE_CMD_DETACH;
	mb->from_pid = (uint32_t)getpid();
	mb->object_fd = -1;
	mb->probe_id = 0x7777;          /* no such probe: acknowledged NOT_FOUND */
	__atomic_store_n(&mb->cmd_seq, seq, __ATOMIC_RELEASE);
	thoth__probe_bits(true);
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		THOTH_TRACE(USER, child_point, 1, 0);
		/* Seen once: the child's trace points compare equal from now
		 * on and never come back to poll (a getpid() each). */
		int polled_again = __atomic_load_n(&thoth__probe_taken_seq, __ATOMIC_RELAXED) != seq;
		for (int i = 0; i < 1000; i++)
			THOTH_TRACE(USER, child_point, 2, 0);
		_exit(polled_again ? 3 : 0);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(__atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE), seq - 1);
	assert_true(__atomic_load_n(&mb->claim_seq, __ATOMIC_ACQUIRE) < seq);
	THOTH_TRACE(USER, parent_point, 1, 0);
	assert_int_equal(__atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE), seq);
	assert_int_equal(mb->ack_status, THOTH_E_NOT_FOUND);
}

/*
 * The parent takes a command after the fork: the child's private
 * taken_seq still names the old one, so its next trace point polls; that
 * one poll marks the command seen and the rest stay on the fast path.
 */
static void test_a_forked_child_polls_once_per_parent_command(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_probe_mailbox_t *mb =
		(void *)((char *)thoth_trace_buffer.control + THOTH_TRACE_PROBE_MAILBOX_OFFSET);
	thoth__probe_bits(true);
	int go[2];
	assert_int_equal(pipe(go), 0);
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char b;
		close(go[1]);
		if (read(go[0], &b, 1) != 1)
			_exit(4);
		uint64_t seq = __atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE);
		int stale = __atomic_load_n(&thoth__probe_taken_seq, __ATOMIC_RELAXED) == seq;
		for (int i = 0; i < 1000; i++)
			THOTH_TRACE(USER, child_point, (uint64_t)i, 0);
		int seen = __atomic_load_n(&thoth__probe_taken_seq, __ATOMIC_RELAXED) == seq;
		_exit(stale ? 5 : seen ? 0 : 3);
	}
	close(go[0]);
	/* Past what this process saw in an earlier test's buffer, too. */
	uint64_t seq = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE);
	if (seq < thoth__probe_taken_seq)
		seq = thoth__probe_taken_seq;
	seq++;
	mb->cmd = THOTH_TRACE_PROBE_CMD_DETACH;
	mb->from_pid = (uint32_t)getpid();
	mb->object_fd = -1;
	mb->probe_id = 0x7778;
	__atomic_store_n(&mb->cmd_seq, seq, __ATOMIC_RELEASE);
	THOTH_TRACE(USER, parent_point, 1, 0);     /* the parent takes it */
	uint64_t acked = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE);
	thoth__probe_bits(true);     /* taking it found no probe and cleared them */
	ssize_t w = write(go[1], "g", 1);
	close(go[1]);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(w, 1);
	assert_int_equal(acked, seq);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* In the child: 16 bytes in a memfd at descriptor 77 (an object's place
 * in thothd's fd table, as an ATTACH names it). */
static bool hold_object(void *arg)
{
	(void)arg;
	int fd = memfd_create("object", MFD_CLOEXEC);
	return fd >= 0 && write(fd, "0123456789abcdef", 16) == 16 && dup2(fd, 77) == 77;
}

static pid_t object_holder = -1;
static int object_release = -1;

/* pidpin.h's hook: the sender ended and reaped after its object was read,
 * before the mailbox checks its pidfd (the race made deterministic). */
static void end_object_holder(uint32_t pid)
{
	if ((pid_t)pid != object_holder)
		return;
	close(object_release);
	assert_int_equal(waitpid(object_holder, NULL, 0), object_holder);
	object_holder = -1;
}

/*
 * An ATTACH names the object by the sender's pid and descriptor; the
 * mailbox reads it through /proc/PID/fd/N with PID pinned (pidpin.h).  A
 * sender that exits during the read (its number perhaps another
 * program's by then, whose descriptor would be loaded as the object) is
 * refused by name, not loaded.  On the code before nothing was pinned:
 * the bytes were taken and refused only as a bad object.
 */
static void test_an_attach_whose_sender_exits_while_its_object_is_read_is_refused(void **state)
{
	start_tracing(64, THOTH_TRACE_OVERWRITE_OLDEST, THOTH_TRACE_ALL_CATEGORIES);
	thoth_trace_probe_mailbox_t *mb =
		(void *)((char *)thoth_trace_buffer.control + THOTH_TRACE_PROBE_MAILBOX_OFFSET);
	pid_t holder = test_held_child(hold_object, NULL, &object_release);
	object_holder = holder;
	uint64_t seq = __atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE);
	if (seq < thoth__probe_taken_seq)
		seq = thoth__probe_taken_seq;
	seq++;
	mb->cmd = THOTH_TRACE_PROBE_CMD_ATTACH;
	mb->from_pid = (uint32_t)holder;
	mb->object_fd = 77;
	mb->object_len = 16;
	mb->probe_id = 0x7779;
	__atomic_store_n(&mb->cmd_seq, seq, __ATOMIC_RELEASE);
	thoth__probe_bits(true);
	thoth__pidpin_after_read = end_object_holder;
	THOTH_TRACE(USER, attach_point, 1, 0);
	thoth__pidpin_after_read = NULL;
	if (object_holder >= 0)         /* the hook never ran: the child still held */
		end_object_holder((uint32_t)object_holder);
	assert_int_equal(__atomic_load_n(&mb->ack_seq, __ATOMIC_ACQUIRE), seq);
	assert_int_equal(mb->ack_status, THOTH_E_INVAL);
	char want[160];
	snprintf(want, sizeof want, "pid %d exited while the object at /proc/%d/fd/77 was read", (int)holder,
		 (int)holder);
	if (!strstr(mb->ack_msg, want))
		fail_msg("ack \"%s\" lacks \"%s\"", mb->ack_msg, want);
}

/*
 * A dispatcher that loaded the oneway mirror's pointer (or a trace point
 * the enabled word's) just before thoth_trace_shutdown swapped it may
 * store through it afterwards: the control page is replaced, not
 * unmapped, so that store lands harmlessly (SIGSEGV on the code before).
 */
static void test_a_store_through_a_stale_control_pointer_after_shutdown_is_harmless(void **state)
{
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, 0);
	volatile uint64_t *mirror = &thoth_trace_buffer.control->oneways_dropped;
	volatile uint64_t *enabled = &thoth_trace_buffer.control->enabled;
	assert_int_equal(thoth_trace_shutdown(), 0);
	*mirror = 7;
	assert_int_equal(*enabled, 0);
	/* and a buffer can be made again */
	start_tracing(64, THOTH_TRACE_DROP_NEWEST, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_disabled_trace_point_writes_nothing, teardown),
		cmocka_unit_test(test_trace_point_before_init_is_a_no_op),
		cmocka_unit_test_teardown(test_categories_switch_on_and_off_at_run_time, teardown),
		cmocka_unit_test_teardown(test_reader_sees_every_field_the_writer_wrote, teardown),
		cmocka_unit_test_teardown(test_queue_delay_in_ticks_is_delivered_in_ns, teardown),
		cmocka_unit_test_teardown(test_overwrite_oldest_keeps_newest_and_counts_the_rest,
		                          teardown),
		cmocka_unit_test_teardown(test_overwritten_records_are_told_by_sequence, teardown),
		cmocka_unit_test(test_a_cut_share_is_what_lies_between_the_cuts),
		cmocka_unit_test_teardown(test_a_lying_head_is_told_once_and_saturates, teardown),
		cmocka_unit_test_teardown(test_a_poll_stopped_early_still_counts_refusals, teardown),
		cmocka_unit_test_teardown(test_drop_newest_keeps_oldest_and_counts_drops_exactly,
		                          teardown),
		cmocka_unit_test_teardown(test_ring_wraps_around_without_loss_when_drained, teardown),
		cmocka_unit_test_teardown(test_concurrent_writers_drop_mode_lose_nothing_uncounted,
		                          teardown),
		cmocka_unit_test_teardown(
		        test_concurrent_writers_overwrite_mode_lose_nothing_uncounted, teardown),
		cmocka_unit_test_teardown(test_thread_without_a_free_ring_is_counted, teardown),
		cmocka_unit_test_teardown(test_a_thread_claims_a_free_ring_whatever_the_shared_counter_says,
					  teardown),
		cmocka_unit_test_teardown(test_reader_skips_half_written_record, teardown),
		cmocka_unit_test_teardown(test_unfinished_record_of_a_live_writer_is_not_torn,
		                          teardown),
		cmocka_unit_test_teardown(test_torn_and_invalid_records_are_told_by_sequence, teardown),
		cmocka_unit_test_teardown(test_reader_in_another_process_drains_live_buffer, teardown),
		cmocka_unit_test_teardown(test_unread_count_is_bounded_whatever_the_rings_say, teardown),
		cmocka_unit_test_teardown(test_a_drain_to_a_cut_reads_exactly_what_came_before_it, teardown),
		cmocka_unit_test_teardown(test_a_ring_naming_another_pid_is_not_probed, teardown),
		cmocka_unit_test_teardown(test_a_forked_child_never_takes_the_parents_probe_command, teardown),
		cmocka_unit_test_teardown(test_an_attach_whose_sender_exits_while_its_object_is_read_is_refused,
					  teardown),
		cmocka_unit_test_teardown(test_a_forked_child_polls_once_per_parent_command, teardown),
		cmocka_unit_test_teardown(test_a_zombie_writer_is_dead, teardown),
		cmocka_unit_test_teardown(test_a_forked_child_sharing_the_buffer_is_counted_torn_once_added,
		                          teardown),
		cmocka_unit_test_teardown(test_more_than_fifteen_short_lived_children_each_get_a_slot,
		                          teardown),
		cmocka_unit_test_teardown(test_an_unconnected_forked_child_seen_alive_is_counted_torn,
		                          teardown),
		cmocka_unit_test_teardown(test_a_stuck_writer_is_watched_until_it_dies, teardown),
		cmocka_unit_test_teardown(test_the_pidfds_readers_hold_are_bounded, teardown),
		cmocka_unit_test_teardown(test_adopted_children_give_way_to_connecting_ones, teardown),
		cmocka_unit_test_teardown(test_a_child_is_adopted_only_while_the_peer_lives, teardown),
		cmocka_unit_test_teardown(test_a_reused_pid_is_verified_afresh, teardown),
		cmocka_unit_test_teardown(test_a_lying_head_neither_wraps_torn_nor_invalid, teardown),
		cmocka_unit_test(test_reader_refuses_a_memfd_that_can_shrink),
		cmocka_unit_test(test_reader_rejects_images_with_bad_geometry),
		cmocka_unit_test_teardown(test_a_store_through_a_stale_control_pointer_after_shutdown_is_harmless,
					  teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
