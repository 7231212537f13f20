/*
 * test_lock_ring_hostile.c - thothd's dashboard reads every profiled
 * process's contention ring (lockprof_report.c, thothlock_ring_*).  Those
 * files are written by whatever program was profiled: each header field is
 * hostile.  A bad file is refused with a reason, never read past its end,
 * and never makes the open block; torn or overwritten events are counted
 * as lost, not handed out.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lockprof_layout.h"
#include "lockprof_report.h"
#include "thoth/error.h"

static char dir[] = "/tmp/thoth-ring-XXXXXX";
static char path[300];

/* A table file: the header page, then `cap` events at THOTHLOCK_HEADER_SIZE. */
static void write_table(const thothlock_header_t *h, uint32_t cap, const thothlock_event_t *ev)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	static uint8_t page[THOTHLOCK_HEADER_SIZE];
	memset(page, 0, sizeof page);
	memcpy(page, h, sizeof *h);
	assert_int_equal(fwrite(page, 1, sizeof page, f), sizeof page);
	for (uint32_t i = 0; i < cap; i++) {
		thothlock_event_t z = { 0 };
		const thothlock_event_t *e = ev ? &ev[i] : &z;
		assert_int_equal(fwrite(e, sizeof *e, 1, f), 1);
	}
	fclose(f);
}

static thothlock_header_t good(uint32_t cap, uint64_t head)
{
	thothlock_header_t h = { 0 };
	h.magic = THOTHLOCK_MAGIC;
	h.version = THOTHLOCK_VERSION;
	h.header_size = THOTHLOCK_HEADER_SIZE;
	h.events_offset = THOTHLOCK_HEADER_SIZE;
	h.event_capacity = cap;
	h.event_head = head;
	return h;
}

static void refused(const char *reason)
{
	thothlock_ring_t *r = (thothlock_ring_t *)1;
	char why[400] = "";
	assert_int_equal(thothlock_ring_open(path, &r, why, sizeof why), THOTH_E_INVAL);
	assert_null(r);
	if (!strstr(why, reason))
		fail_msg("refusal \"%s\" does not say \"%s\"", why, reason);
}

static void test_bad_headers_are_refused_with_their_reason(void **state)
{
	(void)state;
	thothlock_header_t h = good(4, 0);
	h.magic = 0x12345678;
	write_table(&h, 4, NULL);
	refused("bad magic");

	h = good(4, 0);
	h.version = THOTHLOCK_VERSION + 7;
	write_table(&h, 4, NULL);
	refused("unsupported version");

	uint32_t caps[] = { 0, 3, 1u << 21 };             /* none, not a power of two, absurd */
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		h = good(caps[i], 0);
		write_table(&h, 4, NULL);
		refused("ring outside the file");
	}
	h = good(8, 0);                                   /* claims more events than the file holds */
	write_table(&h, 4, NULL);
	refused("ring outside the file");
	h = good(4, 0);
	h.events_offset = 16;                             /* inside the header */
	write_table(&h, 4, NULL);
	refused("ring outside the file");
	h = good(4, 0);
	h.events_offset = UINT64_MAX - 8;                 /* offset + size wraps around */
	write_table(&h, 4, NULL);
	thothlock_ring_t *r = NULL;
	char why[400] = "";
	assert_int_not_equal(thothlock_ring_open(path, &r, why, sizeof why), 0);
	assert_null(r);

	/* Too short for a header at all. */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("THLK", f);
	fclose(f);
	refused("bad magic");
}

static void test_a_fifo_is_refused_without_blocking(void **state)
{
	(void)state;
	char fifo[320];
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	thothlock_ring_t *r = NULL;
	char why[400] = "";
	/* No writer: an open without O_NONBLOCK would wait forever. */
	assert_int_equal(thothlock_ring_open(fifo, &r, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "not a regular file"));
	unlink(fifo);
}

typedef struct { uint64_t n; uint64_t lock[8]; } seen_t;

static void collect(const thothlock_wait_t *w, void *ctx)
{
	seen_t *s = ctx;
	if (s->n < 8)
		s->lock[s->n] = w->lock;
	s->n++;
}

static void test_torn_and_overwritten_events_are_lost_not_read(void **state)
{
	(void)state;
	/* Head 10 in a ring of 4: events 6..9 are in slots 2,3,0,1.  Slot 3
	 * (event 7) is torn (seq of another event). */
	thothlock_event_t ev[4] = { 0 };
	for (uint64_t n = 6; n < 10; n++) {
		ev[n & 3].seq = n + 1;
		ev[n & 3].lock = 0x1000 + n;
	}
	ev[7 & 3].seq = 3;
	thothlock_header_t h = good(4, 10);
	write_table(&h, 4, ev);
	thothlock_ring_t *r = NULL;
	char why[400] = "";
	assert_int_equal(thothlock_ring_open(path, &r, why, sizeof why), 0);

	seen_t s = { 0 };
	uint64_t next = 0;                    /* 6 events overwritten before this read */
	uint64_t lost = thothlock_ring_read(r, &next, collect, &s);
	assert_int_equal(next, 10);
	assert_int_equal(lost, 6 + 1);        /* 0..5 overwritten, 7 torn */
	assert_int_equal(s.n, 3);
	assert_int_equal(s.lock[0], 0x1006);
	assert_int_equal(s.lock[1], 0x1008);
	assert_int_equal(s.lock[2], 0x1009);

	/* A reader ahead of the head (a new process behind a reused name)
	 * starts over at the head rather than reading backwards. */
	s.n = 0;
	next = 1000;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(next, 10);
	thothlock_ring_free(r);
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/table", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_headers_are_refused_with_their_reason),
		cmocka_unit_test(test_a_fifo_is_refused_without_blocking),
		cmocka_unit_test(test_torn_and_overwritten_events_are_lost_not_read),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
