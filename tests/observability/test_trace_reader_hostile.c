/*
 * test_trace_reader_hostile.c - the trace buffer reader (thothd's and
 * thothctl's, through thothd) handed a hostile producer's descriptor or
 * buffer: every wrong kind of descriptor, short and oversized memfds,
 * unsealed ones, garbage control pages and ring headers, a buffer whose
 * pages a peer punches out under the mapping.  Each is refused by code and
 * by a reason that names the problem, or read without a fault or a hang,
 * and no descriptor is left behind (docs/IPC.md "Hostile peers").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/trace.h"
#include "../common/testutil.h"
#include "../common/sealed_memfd.h"
#include "trace_layout.h"
#include "../common/skip.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

/* A buffer's control page as an honest writer leaves it. */
static void honest_control(uint8_t *base, uint32_t rings, uint32_t records)
{
	thoth_trace_control_t *c = (thoth_trace_control_t *)base;
	c->magic = THOTH_TRACE_MAGIC;
	c->version = THOTH_TRACE_VERSION;
	c->record_size = THOTH_TRACE_RECORD_SIZE;
	c->ring_count = rings;
	c->ring_records = records;
	c->full_policy = THOTH_TRACE_OVERWRITE_OLDEST;
	c->clock_kind = THOTH_TRACE_CLOCK_MONOTONIC;
	c->pid = (uint32_t)getpid();
	c->total_size = thoth_trace_buffer_size(rings, records);
	snprintf(c->process_name, sizeof c->process_name, "hostile");
}

/* A memfd of SIZE bytes holding IMAGE (LEN bytes, may be 0), with SEALS. */
static int memfd_with(const void *image, size_t len, size_t size, int seals)
{
	return test_sealed_memfd("hostile-trace", image, len, size, seals);
}

/* FD refused with ERR and a reason holding NEEDLE; FD closed. */
static void refused(int fd, int err, const char *needle)
{
	char why[256] = "";
	thoth_trace_reader_t *r = (thoth_trace_reader_t *)1;
	int got = thoth__trace_reader_open_why(fd, &r, why, sizeof why);
	if (got != err || !strstr(why, needle))
		fail_msg("expected %s naming \"%s\"; got %s: \"%s\"", thoth_errname(err), needle,
			 thoth_errname(got), why);
	assert_null(r);
	/* The public call says the same. */
	r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), err);
	assert_null(r);
	close(fd);
}

typedef struct seen {
	uint64_t n;
} seen_t;

static int count_event(const thoth_trace_event_t *e, void *ctx)
{
	(void)e;
	((seen_t *)ctx)->n++;
	return 0;
}

static void test_every_wrong_kind_of_descriptor_is_refused_by_name(void **state)
{
	(void)state;
	int before = test_count_fds();
	/* A regular file on disk of a valid buffer's size and contents among them. */
	static uint8_t image[THOTH_TRACE_RINGS_OFFSET];
	honest_control(image, 0, 8);
	test_wrong_kinds_refused(refused, THOTH_E_PERM, image, sizeof image);

	int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	refused(fd, THOTH_E_PERM, "a directory, not a memfd");

	/* A tmpfs file that is no memfd (its seals: F_SEAL_SEAL alone). */
	fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		assert_int_equal(pwrite(fd, image, sizeof image, 0), (ssize_t)sizeof image);
		refused(fd, THOTH_E_PERM, "not sealed against shrinking");
	}
	assert_int_equal(test_count_fds(), before);
}

static void test_an_unsealed_memfd_is_refused_and_a_sealed_one_cannot_shrink(void **state)
{
	(void)state;
	int before = test_count_fds();
	static uint8_t image[THOTH_TRACE_RINGS_OFFSET];
	honest_control(image, 0, 8);
	/* The writer could truncate it under the mapping: refused before mmap. */
	int fd = memfd_with(image, sizeof image, sizeof image, 0);
	refused(fd, THOTH_E_PERM, "not sealed against shrinking");
	fd = memfd_with(image, sizeof image, sizeof image, F_SEAL_GROW | F_SEAL_WRITE);
	refused(fd, THOTH_E_PERM, "not sealed against shrinking");

	/* Sealed: the peer's truncation fails, so the reader never faults. */
	honest_control(image, 0, 8);
	fd = memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK);
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), 0);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(errno, EPERM);
	seen_t seen = { 0 };
	assert_int_equal(thoth_trace_reader_poll(r, count_event, &seen), 0);
	assert_int_equal(seen.n, 0);
	thoth_trace_reader_close(r);
	close(fd);

	/* Sealed against writing: cannot be mapped read-write, said so. */
	fd = memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK | F_SEAL_WRITE);
	refused(fd, THOTH_E_IO, "sealed against writing");
	assert_int_equal(test_count_fds(), before);
}

static void test_short_and_oversized_memfds_are_refused(void **state)
{
	(void)state;
	int before = test_count_fds();
	refused(memfd_with(NULL, 0, 0, F_SEAL_SHRINK), THOTH_E_TRUNCATED, "0 bytes: shorter");
	refused(memfd_with(NULL, 0, 100, F_SEAL_SHRINK), THOTH_E_TRUNCATED, "100 bytes: shorter");
	refused(memfd_with(NULL, 0, THOTH_TRACE_RINGS_OFFSET - 1, F_SEAL_SHRINK), THOTH_E_TRUNCATED,
		"shorter than a trace buffer's control page");
	/* Sparse, sealed, larger than any geometry: not mapped at all (the old
	 * reader mapped all of it, then read its control page). */
	static uint8_t image[THOTH_TRACE_RINGS_OFFSET];
	honest_control(image, THOTH_TRACE_MAX_RINGS, THOTH_TRACE_MAX_RECORDS);
	size_t most = thoth_trace_memfd_size(THOTH_TRACE_MAX_RINGS, THOTH_TRACE_MAX_RECORDS,
					     THOTH_TRACE_SERVE_MAX_SLOTS);
	refused(memfd_with(image, sizeof image, most + 4096, F_SEAL_SHRINK), THOTH_E_BAD_LENGTH,
		"larger than any trace buffer");
	/* The largest a writer makes is taken: its rings at the largest
	 * geometry, then its serve slots (buffer.c sizes it so).  The branch
	 * before this refused it, counting the rings only. */
	int fd = memfd_with(image, sizeof image, most, F_SEAL_SHRINK | F_SEAL_GROW);
	thoth_trace_reader_t *r = NULL;
	char why[256] = "";
	if (thoth__trace_reader_open_why(fd, &r, why, sizeof why) != 0)
		fail_msg("a writer's largest buffer (%zu bytes) refused: %s", most, why);
	thoth_trace_reader_close(r);
	close(fd);
	assert_int_equal(test_count_fds(), before);
}

static void test_a_hugetlb_memfd_is_refused(void **state)
{
	(void)state;
	int before = test_count_fds();
	int fd = memfd_create("hostile-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (fd < 0)
		skip_because("memfd_create(MFD_HUGETLB): %s (no hugetlbfs in this kernel)", strerror(errno));
	/* A punched hole there faults in a new huge page: SIGBUS with none
	 * left.  Refused for what it is, mapped or not (the old reader tried
	 * the mapping and said THOTH_E_IO on a machine with no huge pages). */
	if (ftruncate(fd, 2 << 20) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
		close(fd);
		skip_because("a 2 MiB sealed hugetlb memfd: %s (no huge pages reserved)", strerror(errno));
	}
	refused(fd, THOTH_E_PERM, "not on shmem");
	assert_int_equal(test_count_fds(), before);
}

static void test_garbage_control_pages_are_refused_by_the_word(void **state)
{
	(void)state;
	int before = test_count_fds();
	static uint8_t image[THOTH_TRACE_RINGS_OFFSET + 4096];
	thoth_trace_control_t *c = (thoth_trace_control_t *)image;
	memset(image, 0xa5, sizeof image);
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_BAD_MAGIC,
		"magic 0xa5a5a5a5 is not a trace buffer's");
	honest_control(image, 0, 8);
	c->version = 9;
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_BAD_VERSION,
		"layout version 9");
	honest_control(image, 0, 8);
	c->record_size = 128;
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_BAD_VERSION,
		"128-byte records");
	honest_control(image, 5000, 8);
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_CORRUPT,
		"5000 rings of 8 records");
	honest_control(image, 1, 1000);
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_CORRUPT,
		"1 rings of 1000 records");
	honest_control(image, 1, 8);
	c->full_policy = 7;
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_CORRUPT,
		"full policy 7");
	/* A geometry past the end of the memfd. */
	honest_control(image, 64, 1024);
	refused(memfd_with(image, sizeof image, sizeof image, F_SEAL_SHRINK), THOTH_E_BAD_LENGTH,
		"64 rings of 1024 records need");
	assert_int_equal(test_count_fds(), before);
}

/* A buffer that opens, then hostile words in its rings while it is read:
 * heads far ahead and behind, tails past heads, names past the table,
 * then every page punched out under the reader's mapping.  Every poll
 * returns, nothing faults, and every record delivered or counted. */
static void test_hostile_rings_and_punched_pages_are_read_without_a_fault(void **state)
{
	(void)state;
	int before = test_count_fds();
	const uint32_t rings = 4, records = 64;
	size_t size = thoth_trace_buffer_size(rings, records);
	uint8_t *image = calloc(1, size);
	assert_non_null(image);
	honest_control(image, rings, records);
	int fd = memfd_with(image, size, size, F_SEAL_SHRINK | F_SEAL_GROW);
	free(image);
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), 0);
	uint8_t *peer = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(peer != MAP_FAILED);
	thoth_trace_control_t *c = (thoth_trace_control_t *)peer;
	const uint64_t heads[] = { UINT64_MAX, UINT64_MAX - 3, 1ull << 63, records * 3 + 5, 0 };
	seen_t seen = { 0 };
	for (size_t k = 0; k < sizeof heads / sizeof heads[0]; k++) {
		c->names_count = UINT32_MAX - (uint32_t)k;
		c->rings_claimed = UINT32_MAX;
		for (uint32_t i = 0; i < rings; i++) {
			thoth_trace_ring_header_t *h = thoth_trace_ring_at(peer, records, i);
			h->state = THOTH_TRACE_RING_CLAIMED;
			h->owner_pid = (uint32_t)getpid();
			h->owner_tid = UINT32_MAX;
			h->head = heads[k] + i;
			h->tail = heads[(k + 1) % 5];
			h->dropped = UINT64_MAX / (i + 1);
			memset(h->thread_name, 0xff, sizeof h->thread_name);
			/* Records that claim to be committed, with garbage words. */
			uint8_t *rec = (uint8_t *)(h + 1);
			for (uint32_t j = 0; j < records; j++)
				memset(rec + (size_t)j * THOTH_TRACE_RECORD_SIZE, (int)(0x80 + j + k),
				       THOTH_TRACE_RECORD_SIZE);
		}
		uint64_t t0 = test_now_ms();
		int pr = thoth_trace_reader_poll(r, count_event, &seen);
		assert_true(pr >= 0 || pr == THOTH_E_CORRUPT);
		assert_true(test_now_ms() - t0 < 5000);
	}
	/* Every page punched out: reads as zeros, never SIGBUS. */
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size), 0);
	int pr = thoth_trace_reader_poll(r, count_event, &seen);
	assert_true(pr >= 0 || pr == THOTH_E_CORRUPT);
	thoth_trace_stats_t st;
	assert_int_equal(thoth_trace_reader_stats(r, &st), 0);
	assert_int_equal(st.read, seen.n);
	uint32_t pid;
	const char *name;
	assert_int_equal(thoth_trace_reader_process(r, &pid, &name), 0);
	assert_string_equal(name, "hostile");
	munmap(peer, size);
	thoth_trace_reader_close(r);
	close(fd);
	assert_int_equal(test_count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_wrong_kind_of_descriptor_is_refused_by_name),
		cmocka_unit_test(test_an_unsealed_memfd_is_refused_and_a_sealed_one_cannot_shrink),
		cmocka_unit_test(test_short_and_oversized_memfds_are_refused),
		cmocka_unit_test(test_a_hugetlb_memfd_is_refused),
		cmocka_unit_test(test_garbage_control_pages_are_refused_by_the_word),
		cmocka_unit_test(test_hostile_rings_and_punched_pages_are_read_without_a_fault),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
