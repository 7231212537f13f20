/*
 * test_lock_ring_hostile.c - thothd's dashboard reads every profiled
 * process's contention ring (lockprof_report.c, thothlock_ring_*).  Those
 * files are written by whatever program was profiled: each header field is
 * hostile.  A bad file is refused with a reason, never read past its end,
 * and never makes the open block; overwritten events are counted as lost,
 * and one claimed but not yet committed is read at the next poll (lost
 * only once its process has exited), never handed out half-written.  The whole-table reader (thothlock_table_load)
 * likewise refuses misplaced version-3 regions and adds a per-thread
 * entry only to the key and site it rightly names.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "lockprof_layout.h"
#include "lockprof_report.h"
#include "thoth/error.h"
#include "../common/tmpdir.h"

static char dir[256];
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

/* Version 6 (before contention mode's acquisition sampling) is read by
 * both readers: its acq_sample reads 0 = every acquisition counted. */
static void test_version_6_is_read_5_and_8_are_not(void **state)
{
	(void)state;
	thothlock_header_t h = good(4, 0);
	h.version = 6;
	write_table(&h, 4, NULL);
	thothlock_ring_t *r = NULL;
	char why[400] = "";
	if (thothlock_ring_open(path, &r, why, sizeof why) != 0)
		fail_msg("a version-6 ring was refused: %s", why);
	thothlock_ring_free(r);
	h.version = 5;
	write_table(&h, 4, NULL);
	refused("unsupported version");
	h.version = THOTHLOCK_VERSION + 1;
	write_table(&h, 4, NULL);
	refused("unsupported version");
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

static thothlock_ring_t *reopen(void)
{
	thothlock_ring_t *r = NULL;
	char why[400] = "";
	assert_int_equal(thothlock_ring_open(path, &r, why, sizeof why), 0);
	return r;
}

static void test_overwritten_events_are_lost_and_uncommitted_ones_read_later(void **state)
{
	(void)state;
	/* Head 10 in a ring of 4: events 6..9 are in slots 2,3,0,1.  Event 7
	 * is claimed but not committed (its slot still holds event 3's seq:
	 * a writer preempted between its fetch-add and its seq store). */
	thothlock_event_t ev[4] = { 0 };
	for (uint64_t n = 6; n < 10; n++) {
		ev[n & 3].seq = n + 1;
		ev[n & 3].lock = 0x1000 + n;
	}
	ev[7 & 3].seq = 3 + 1;
	thothlock_header_t h = good(4, 10);
	write_table(&h, 4, ev);
	thothlock_ring_t *r = reopen();

	seen_t s = { 0 };
	uint64_t next = 0;                    /* 6 events overwritten before this read */
	uint64_t lost = thothlock_ring_read(r, &next, collect, &s);
	assert_int_equal(lost, 6);            /* 0..5; 7 is not lost: it waits */
	assert_int_equal(next, 7);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.lock[0], 0x1006);
	thothlock_ring_free(r);

	/* Committed by the next poll: 7, 8 and 9 read, none lost. */
	ev[7 & 3].seq = 7 + 1;
	write_table(&h, 4, ev);
	r = reopen();
	s.n = 0;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 0);
	assert_int_equal(next, 10);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.lock[0], 0x1007);
	assert_int_equal(s.lock[2], 0x1009);
	thothlock_ring_free(r);

	/* Overwritten by a later lap (seq ahead of the event): lost, and the
	 * read goes on past it. */
	ev[8 & 3].seq = 8 + 4 + 1;
	write_table(&h, 4, ev);
	r = reopen();
	s.n = 0;
	next = 6;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 1);
	assert_int_equal(next, 10);
	assert_int_equal(s.n, 3);             /* 6, 7, 9 */
	assert_int_equal(s.lock[2], 0x1009);
	thothlock_ring_free(r);

	/* A process that has exited will commit nothing more: an uncommitted
	 * event is lost and the read goes on to the head. */
	ev[8 & 3].seq = 8 + 1;
	ev[7 & 3].seq = 0;
	h.exited = 1;
	write_table(&h, 4, ev);
	r = reopen();
	s.n = 0;
	next = 6;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 1);
	assert_int_equal(next, 10);
	assert_int_equal(s.n, 3);             /* 6, 8, 9 */
	assert_int_equal(s.lock[1], 0x1008);

	/* A reader ahead of the head (a new process behind a reused name)
	 * starts over at the head rather than reading backwards. */
	s.n = 0;
	next = 1000;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(next, 10);
	thothlock_ring_free(r);
}

/* The slots are read when asked for, not at open: a writer that cuts its
 * file short in between gets nothing read (no crash, no position moved),
 * and the events come once the file holds them again. */
static void test_a_ring_cut_short_after_open_gives_nothing(void **state)
{
	(void)state;
	thothlock_event_t ev[4] = { 0 };
	for (uint64_t n = 0; n < 3; n++) {
		ev[n].seq = n + 1;
		ev[n].lock = 0x2000 + n;
	}
	thothlock_header_t h = good(4, 3);
	write_table(&h, 4, ev);
	thothlock_ring_t *r = reopen();
	assert_int_equal(truncate(path, THOTHLOCK_HEADER_SIZE + sizeof(thothlock_event_t)), 0);
	seen_t s = { 0 };
	uint64_t next = 0;
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 0);
	assert_int_equal(next, 0);
	assert_int_equal(s.n, 0);
	thothlock_ring_free(r);
	/* Opened again it is refused: the ring is outside the file now. */
	refused("ring outside the file");
	write_table(&h, 4, ev);
	r = reopen();
	assert_int_equal(thothlock_ring_read(r, &next, collect, &s), 0);
	assert_int_equal(next, 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.lock[2], 0x2002);
	thothlock_ring_free(r);
}

/* ---- the whole table (thothlock_table_load): the per-thread regions ---- */

/* A small but complete table (format 4): 8 locks, 8 sites, 1 thread, an
 * event ring sized so that the tstat region starts 64-byte aligned, and
 * 8 tstat entries.  *hdr_out gets the header; the body is zeroed. */
static uint8_t *small_table(size_t *size_out)
{
	thothlock_header_t h = { 0 };
	h.magic = THOTHLOCK_MAGIC;
	h.version = THOTHLOCK_VERSION;
	h.header_size = THOTHLOCK_HEADER_SIZE;
	h.stack_depth = THOTHLOCK_STACK_DEPTH;
	h.lock_capacity = 8;
	h.site_capacity = 8;
	h.thread_capacity = 1;
	h.keys_offset = THOTHLOCK_HEADER_SIZE;
	h.locks_offset = h.keys_offset + 8 * sizeof(thothlock_key_t);
	h.sites_offset = h.locks_offset + 8 * sizeof(thothlock_lock_t);
	h.caches_offset = h.sites_offset + 8 * sizeof(thothlock_site_t);
	h.events_offset = h.caches_offset + sizeof(thothlock_cache_t);
	h.event_capacity = 1;
	while ((h.events_offset + h.event_capacity * sizeof(thothlock_event_t)) % 64)
		h.event_capacity *= 2;
	assert_true(h.event_capacity <= 64);
	h.tstats_offset = h.events_offset + h.event_capacity * sizeof(thothlock_event_t);
	h.tstat_capacity = 8;
	h.site_slots_offset = h.tstats_offset + 8 * sizeof(thothlock_tstat_t);
	h.file_size = h.site_slots_offset + 2 * 8 * sizeof(thothlock_site_slot_t);
	uint8_t *t = calloc(1, h.file_size);
	assert_non_null(t);
	memcpy(t, &h, sizeof h);
	*size_out = h.file_size;
	return t;
}

static void write_bytes(const uint8_t *bytes, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(bytes, 1, n, f), n);
	fclose(f);
}

static char *report_of(void)
{
	thothlock_table_t *t = NULL;
	char why[400] = "";
	if (thothlock_table_load(path, &t, why, sizeof why) != 0)
		fail_msg("a good table was refused: %s", why);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	thothlock_report_opts_t opts = { .json = true, .show_uncontended = true };
	thothlock_table_t *const tables[1] = { t };
	assert_int_equal(thothlock_report_write(out, tables, 1, &opts), 0);
	fclose(out);
	thothlock_table_free(t);
	return text;
}

static void table_refused(const char *reason)
{
	thothlock_table_t *t = (thothlock_table_t *)1;
	char why[400] = "";
	assert_int_equal(thothlock_table_load(path, &t, why, sizeof why), THOTH_E_INVAL);
	assert_null(t);
	if (!strstr(why, reason))
		fail_msg("refusal \"%s\" does not say \"%s\"", why, reason);
}

static void table_refused(const char *reason);

/* The whole table of version 6 loads and reports every count exact
 * (acquisitions_sample 1); 5 and 8 are refused by name. */
static void test_version_6_table_is_read(void **state)
{
	(void)state;
	size_t size;
	uint8_t *t = small_table(&size);
	thothlock_header_t *h = (thothlock_header_t *)t;
	h->version = 6;
	h->acq_sample = 0;                                /* not in a version-6 header */
	write_bytes(t, size);
	char *text = report_of();
	if (!strstr(text, "\"acquisitions_sampled\":false,\"acquisitions_sample\":1,"))
		fail_msg("version 6 not reported exact: %s", text);
	free(text);
	h->version = 5;
	write_bytes(t, size);
	table_refused("unsupported version");
	h->version = THOTHLOCK_VERSION + 1;
	write_bytes(t, size);
	table_refused("unsupported version");
	free(t);
}

/* The report of the table at PATH after FATE(table) (NULL: none), text or
 * JSON. */
static char *report_after(void (*fate)(thothlock_table_t *, void *), void *arg, bool json)
{
	thothlock_table_t *t = NULL;
	char why[400] = "";
	if (thothlock_table_load(path, &t, why, sizeof why) != 0)
		fail_msg("a good table was refused: %s", why);
	if (fate)
		fate(t, arg);
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	assert_non_null(out);
	thothlock_report_opts_t opts = { .json = json, .show_uncontended = true };
	thothlock_table_t *const tables[1] = { t };
	assert_int_equal(thothlock_report_write(out, tables, 1, &opts), 0);
	fclose(out);
	thothlock_table_free(t);
	return text;
}

static void fate_check(thothlock_table_t *t, void *arg)
{
	(void)arg;
	thothlock_table_check_alive(t);
}

static void fate_reaped(thothlock_table_t *t, void *arg)
{
	thothlock_table_set_reaped(t, *(int *)arg, 0);
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void expect(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("\"%s\" not in the report: %s", want, text);
}

/*
 * A table whose exit path never ran is not "running" when its process is
 * gone: thothlock reported a program killed with -9 (no destructor, no
 * end_ns) as running.  Its own child, reaped: killed by the signal (or
 * exited by _exit); any other: /proc says, a zombie or a reaped process
 * being dead and a live pid that started after the table being another
 * process (pid reuse), not the table's.
 */
static void test_a_killed_process_is_not_reported_running(void **state)
{
	(void)state;
	size_t size;
	uint8_t *t = small_table(&size);
	thothlock_header_t *h = (thothlock_header_t *)t;
	/* alive: ourselves, the table started after us */
	h->pid = getpid();
	h->start_ns = monotonic_ns();
	write_bytes(t, size);
	char *text = report_after(fate_check, NULL, false);
	expect(text, ", running\n");
	free(text);
	text = report_after(fate_check, NULL, true);
	expect(text, "\"state\":\"running\"");
	expect(text, "\"exited\":false");
	free(text);
	/* no check asked for (thothd's live reports): running, as before */
	text = report_after(NULL, NULL, true);
	expect(text, "\"state\":\"running\"");
	free(text);
	/* our pid, but a table older than our process: a reused pid */
	h->start_ns = 1;
	write_bytes(t, size);
	text = report_after(fate_check, NULL, false);
	expect(text, "died without running its exit path (killed or crashed)");
	free(text);
	/* a zombie, then a reaped child */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	for (int i = 0; i < 2000; i++) {        /* until it is a zombie */
		char p[64], buf[256];
		snprintf(p, sizeof p, "/proc/%d/stat", (int)child);
		FILE *f = fopen(p, "r");
		size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		char *c = strrchr(buf, ')');
		if (c && c[1] == ' ' && c[2] == 'Z')
			break;
		usleep(1000);
	}
	h->pid = child;
	h->start_ns = monotonic_ns();
	write_bytes(t, size);
	text = report_after(fate_check, NULL, true);
	expect(text, "\"state\":\"killed\"");
	expect(text, "\"exited\":true");
	free(text);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	text = report_after(fate_check, NULL, false);
	expect(text, "died without running its exit path");
	free(text);
	/* thothlock's own child, reaped: SIGKILL, or _exit(3) */
	int killed = SIGKILL;           /* a wait status: the signal in the low bits */
	text = report_after(fate_reaped, &killed, false);
	expect(text, "killed by signal 9 (SIGKILL)");
	free(text);
	text = report_after(fate_reaped, &killed, true);
	expect(text, "\"state\":\"killed\",\"signal\":9,");
	free(text);
	int exited3 = 3 << 8;
	text = report_after(fate_reaped, &exited3, false);
	expect(text, "exited with status 3 without its exit path (_exit)");
	free(text);
	/* a process that ran its exit path is exited, whatever else is said */
	h->exited = 1;
	h->end_ns = h->start_ns + 1500000;
	write_bytes(t, size);
	text = report_after(fate_reaped, &killed, false);
	expect(text, "ran 1.5");
	free(text);
	free(t);
}

/* Per-thread entries (all mode) name the key and site they add to: an
 * entry naming a key out of range or unused, or a site that is not its
 * key's, adds nothing there; a claimed count past the pool is clamped. */
static void test_tstat_entries_add_only_to_what_they_rightly_name(void **state)
{
	(void)state;
	size_t size;
	uint8_t *t = small_table(&size);
	thothlock_header_t *h = (thothlock_header_t *)t;
	thothlock_key_t *keys = (thothlock_key_t *)(t + h->keys_offset);
	thothlock_site_t *sites = (thothlock_site_t *)(t + h->sites_offset);
	thothlock_tstat_t *ts = (thothlock_tstat_t *)(t + h->tstats_offset);
	keys[1].addr = 0x7000;
	keys[1].kind = THOTHLOCK_KIND_MUTEX;
	keys[1].acquisitions = 1;                         /* counted in the shared key */
	keys[2].addr = 0x8000;
	keys[2].kind = THOTHLOCK_KIND_MUTEX;
	sites[0].key = THOTHLOCK_SITE_KEY(1, 0x401000);
	sites[1].key = THOTHLOCK_SITE_KEY(2, 0x402000);  /* lock 2's site */
	struct { uint32_t key, site; uint64_t acq; } e[] = {
		{ 2, 1, 10 },      /* lock 1, its site 0: both */
		{ 9, 1, 77771 },    /* key index past the capacity: nothing */
		{ 1, 1, 77772 },    /* key 0 is unused: nothing */
		{ 2, 2, 5 },       /* site 1 belongs to lock 2: the lock only */
		{ 2, 100, 7 },     /* site index past the capacity: the lock only */
		{ 0, 1, 77773 },    /* an entry not set up: nothing */
	};
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
		ts[i].lock = 0x7000;
		ts[i].pc = 0x401000;
		ts[i].key_index = e[i].key;
		ts[i].site_index = e[i].site;
		ts[i].acquisitions = e[i].acq;
		ts[i].hold_ns_total = 100 * e[i].acq;
		ts[i].hold_ns_max = 300;
		ts[i].near_base = THOTHLOCK_NEAR_UNSET;
	}
	/* Format 4's near buckets: entry 0's window starts at bucket 5, so its
	 * near[2] is bucket 7; entry 3's base puts its window past the
	 * histogram's end (a hostile file): its near buckets add nothing (the
	 * exact histogram below). */
	ts[0].near_base = 5;
	ts[0].near[2] = 40;
	ts[3].near_base = THOTHLOCK_HIST_BUCKETS - THOTHLOCK_NEAR_BUCKETS + 1;
	ts[3].near[0] = 200;
	/* Holds outside the entries' near buckets, counted per site: lock
	 * 0x7000's site adds to its histogram; a site naming an unused lock
	 * adds nothing. */
	sites[0].hold_hist[6] = 22;
	sites[2].key = THOTHLOCK_SITE_KEY(5, 0x403000);
	sites[2].hold_hist[6] = 77774;
	h->tstats_used = UINT64_MAX;                      /* clamped to the 8 entries */
	write_bytes(t, size);
	char *json = report_of();
	/* Lock 0x7000: 1 + 10 + 5 + 7 acquisitions, each entry's a timed hold;
	 * its site: 10 only.  Hold buckets: 2^6 = 10 + 5 + 7, 2^7 = 40. */
	if (!strstr(json, "\"address\":\"0x7000\"") || !strstr(json, "\"acquisitions\":23,") ||
	    !strstr(json, "\"holds_measured\":22,\"hold_ns_total\":2200,") ||
	    !strstr(json, "\"acquisitions\":10,\"contentions\":0") ||
	    !strstr(json, "\"hold_histogram\":[{\"ge_ns\":64,\"count\":22},{\"ge_ns\":128,\"count\":40}]"))
		fail_msg("report: %s", json);
	if (strstr(json, "7777"))
		fail_msg("an entry naming no rightful key was added: %s", json);
	free(json);

	/* The regions themselves: each misplacement is refused. */
	h->tstats_offset += 64;
	write_bytes(t, size);
	table_refused("regions outside the file");
	h->tstats_offset -= 32;                           /* not 64-byte aligned */
	write_bytes(t, size);
	table_refused("regions outside the file");
	h->tstats_offset -= 32;
	h->site_slots_offset += 8;
	write_bytes(t, size);
	table_refused("regions outside the file");
	h->site_slots_offset -= 8;
	h->tstat_capacity = 1u << 30;                     /* absurd */
	write_bytes(t, size);
	table_refused("regions outside the file");
	h->tstat_capacity = 8;
	write_bytes(t, size - 1);                         /* the site index cut short */
	table_refused("regions outside the file");
	free(t);
}

/* All mode gives a (lock, call site) pair a site entry only where it
 * needs one (a pc's first lock, a wait, a far hold): the reader gives
 * each pair without one a site of its own, shared by every thread's
 * entry of that pair, or the file's site of the same key when there is
 * one; its stack is that of a site at the same pc. */
static void test_tstat_entries_without_a_site_get_one_with_their_pcs_stack(void **state)
{
	(void)state;
	size_t size;
	uint8_t *t = small_table(&size);
	thothlock_header_t *h = (thothlock_header_t *)t;
	thothlock_key_t *keys = (thothlock_key_t *)(t + h->keys_offset);
	thothlock_site_t *sites = (thothlock_site_t *)(t + h->sites_offset);
	thothlock_tstat_t *ts = (thothlock_tstat_t *)(t + h->tstats_offset);
	keys[0].addr = 0x7000;
	keys[0].kind = THOTHLOCK_KIND_MUTEX;
	keys[1].addr = 0x8000;
	keys[1].kind = THOTHLOCK_KIND_MUTEX;
	sites[0].key = THOTHLOCK_SITE_KEY(0, 0x401000);   /* lock 0x7000's, with the pc's stack */
	sites[0].stack.depth = 2;
	sites[0].stack.pc[0] = 0x401000;
	sites[0].stack.pc[1] = 0x4abcde;
	struct { uint32_t key; uint64_t pc, acq; } e[] = {
		{ 2, 0x401000, 10 },   /* lock 0x8000 at that pc: a site made for it */
		{ 2, 0x401000, 5 },    /* another thread's entry of the same pair: the same site */
		{ 1, 0x401000, 3 },    /* lock 0x7000 at that pc: the file's site */
		{ 2, 0x405000, 4 },    /* a pc no site has: a site without a stack */
		{ 3, 0x401000, 77771 },/* an unused key: nothing, no site */
	};
	for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
		ts[i].lock = e[i].key == 1 ? 0x7000 : 0x8000;
		ts[i].pc = e[i].pc;
		ts[i].key_index = e[i].key;
		ts[i].acquisitions = e[i].acq;
		ts[i].hold_ns_total = 100 * e[i].acq;
		ts[i].near_base = THOTHLOCK_NEAR_UNSET;
	}
	h->tstats_used = 8;
	write_bytes(t, size);
	char *json = report_of();
	const char *l8 = strstr(json, "\"address\":\"0x8000\"");
	const char *l7 = strstr(json, "\"address\":\"0x7000\"");
	if (!l8 || !l7 || !strstr(l8, "\"acquisitions\":19,"))
		fail_msg("report: %s", json);
	/* Lock 0x8000's two sites, sorted by hold: 0x401000 (15, the pc's
	 * stack), then 0x405000 (4, no stack); lock 0x7000's one site: 3. */
	const char *s15 = strstr(l8, "\"call_sites\":[{\"address\":\"0x401000\"");
	const char *s4 = s15 ? strstr(s15, "{\"address\":\"0x405000\"") : NULL;
	if (!s15 || !strstr(s15, "\"acquisitions\":15,") || !s4 ||
	    !strstr(s4, "\"acquisitions\":4,") || !strstr(s15, "\"address\":\"0x4abcde\""))
		fail_msg("lock 0x8000's sites: %s", json);
	if (strstr(s15, "0x4abcde") > s4 || !strstr(s4, "\"stack\":[]"))
		fail_msg("a site's stack taken from another pc: %s", json);
	if (!strstr(l7, "\"call_sites\":[{\"address\":\"0x401000\"") ||
	    !strstr(l7, "\"acquisitions\":3,"))
		fail_msg("lock 0x7000's site: %s", json);
	if (strstr(json, "7777"))
		fail_msg("an entry of an unused key was added: %s", json);
	free(json);
	free(t);
}

static int setup(void **state)
{
	(void)state;
	test_tmp_template(dir, sizeof dir, "thoth-ring");
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
		cmocka_unit_test(test_version_6_is_read_5_and_8_are_not),
		cmocka_unit_test(test_version_6_table_is_read),
		cmocka_unit_test(test_a_fifo_is_refused_without_blocking),
		cmocka_unit_test(test_overwritten_events_are_lost_and_uncommitted_ones_read_later),
		cmocka_unit_test(test_a_ring_cut_short_after_open_gives_nothing),
		cmocka_unit_test(test_tstat_entries_add_only_to_what_they_rightly_name),
		cmocka_unit_test(test_a_killed_process_is_not_reported_running),
		cmocka_unit_test(test_tstat_entries_without_a_site_get_one_with_their_pcs_stack),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
