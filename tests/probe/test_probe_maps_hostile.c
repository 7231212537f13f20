/*
 * test_probe_maps_hostile.c - thoth_probe_maps_open (what thothctl's
 * `probe maps` maps from a probed process's descriptor) handed a hostile
 * peer's descriptor or region: wrong kinds of descriptor, unsealed, short,
 * oversized and hugetlbfs memfds, a garbage header, map descriptors the
 * loader never makes or placed at odd or outside offsets, names with
 * terminal escapes, a ring buffer whose positions and lengths lie.  Each
 * is refused with a reason that names the problem, or read bounded; no
 * descriptor is left behind (docs/IPC.md "Hostile peers").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/probe.h"
#include "probe_internal.h"
#include "../common/testutil.h"
#include "../common/sealed_memfd.h"

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif

/* maps.c's region layout (docs/PROBES.md "Maps"), written by a peer. */
typedef struct {
	char name[PROBE_NAME_MAX];
	uint32_t type, key_size, value_size, max_entries;
	uint64_t offset, bytes;
} desc_t;
typedef struct {
	uint32_t magic, version, n_maps, thread_slots;
	desc_t desc[THOTH_PROBE_MAX_MAPS];
} hdr_t;
#define REGION_HDR 8192u
#define REGION_SIZE (REGION_HDR + 3 * 4096u)

/* An honest region: one ARRAY map of 4 u64 at 8192, one RINGBUF of 4 KiB at 12288. */
static void honest(uint8_t *img)
{
	memset(img, 0, REGION_SIZE);
	hdr_t *h = (hdr_t *)img;
	h->magic = 0x4d504854u;
	h->version = 1;
	h->n_maps = 2;
	h->thread_slots = THOTH_PROBE_THREAD_SLOTS;
	snprintf(h->desc[0].name, PROBE_NAME_MAX, "counts");
	h->desc[0].type = BPF_MAP_TYPE_ARRAY;
	h->desc[0].key_size = 4;
	h->desc[0].value_size = 8;
	h->desc[0].max_entries = 4;
	h->desc[0].offset = REGION_HDR;
	h->desc[0].bytes = 64 + 32;
	snprintf(h->desc[1].name, PROBE_NAME_MAX, "events");
	h->desc[1].type = BPF_MAP_TYPE_RINGBUF;
	h->desc[1].max_entries = 4096;
	h->desc[1].offset = REGION_HDR + 4096;
	h->desc[1].bytes = 64 + 4096;
}

static int region_fd(const uint8_t *img, size_t len, size_t size, int seals)
{
	return test_sealed_memfd("hostile-maps", img, len, size, seals);
}

/* FD refused with ERR and a reason holding NEEDLE; FD closed. */
static void refused(int fd, int err, const char *needle)
{
	char why[256] = "";
	thoth_probe_maps_t *mp = (thoth_probe_maps_t *)1;
	int got = thoth_probe_maps_open_why(fd, &mp, why, sizeof why);
	if (got != err || !strstr(why, needle))
		fail_msg("expected %s naming \"%s\"; got %s: \"%s\"", thoth_errname(err), needle,
			 thoth_errname(got), why);
	assert_null(mp);
	assert_int_equal(thoth_probe_maps_open(fd, &mp), err);
	close(fd);
}

static uint8_t img[REGION_SIZE];

static void test_wrong_kinds_of_descriptor_are_refused_by_name(void **state)
{
	(void)state;
	int before = test_count_fds();
	honest(img);
	test_wrong_kinds_refused(refused, THOTH_E_PERM, img, sizeof img);
	/* Unsealed: the peer could truncate it under the mapping. */
	refused(region_fd(img, sizeof img, sizeof img, 0), THOTH_E_PERM,
		"not sealed against shrinking");
	refused(region_fd(img, sizeof img, sizeof img, F_SEAL_SHRINK | F_SEAL_WRITE), THOTH_E_IO,
		"sealed against writing");
	refused(region_fd(NULL, 0, 100, F_SEAL_SHRINK), THOTH_E_CORRUPT, "100 bytes");
	refused(region_fd(NULL, 0, (2ull << 30), F_SEAL_SHRINK), THOTH_E_CORRUPT, "2147483648 bytes");
	int fd = memfd_create("hostile-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB);
	if (fd >= 0) {
		if (ftruncate(fd, 2 << 20) == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
			refused(fd, THOTH_E_PERM, "not on shmem");
		else
			close(fd);
	}
	assert_int_equal(test_count_fds(), before);
}

static void test_hostile_headers_and_descriptors_are_refused_by_name(void **state)
{
	(void)state;
	int before = test_count_fds();
	hdr_t *h = (hdr_t *)img;
	const int S = F_SEAL_SHRINK | F_SEAL_GROW;
	honest(img);
	h->magic = 0x41414141;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT,
		"magic 0x41414141, version 1, 2 maps: not a probe maps region");
	honest(img);
	h->n_maps = 1000;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT, "1000 maps");
	/* An offset that is not page-aligned: the map header's atomics would
	 * be misaligned (the old reader took any offset past the header). */
	honest(img);
	h->desc[0].offset = REGION_HDR + 4;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT,
		"map 0 ('counts'): 96 bytes at offset 8196: not page-aligned");
	honest(img);
	h->desc[1].offset = REGION_SIZE - 4096 + 4096;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT, "map 1 ('events')");
	honest(img);
	h->desc[1].offset = UINT64_MAX - 4095;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT, "map 1 ('events')");
	/* Maps the loader never makes (the old reader took a 1-byte array key,
	 * which a 4-byte index then read past; 2^26 entries; a 16-byte ring). */
	honest(img);
	h->desc[0].key_size = 1;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT,
		"type 2 with key 1 B, value 8 B, 4 entries: not a map the loader makes");
	honest(img);
	h->desc[1].max_entries = 16;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT, "not a map the loader makes");
	honest(img);
	h->desc[0].type = 99;
	refused(region_fd(img, sizeof img, sizeof img, S), THOTH_E_CORRUPT, "type 99 unknown");
	assert_int_equal(test_count_fds(), before);
}

typedef struct seen {
	uint32_t n;
	uint64_t bytes;
} seen_t;

static int count_entry(const void *key, const void *value, void *ctx)
{
	(void)value;
	seen_t *s = ctx;
	s->n++;
	uint32_t len;
	memcpy(&len, key, 4);
	s->bytes += len;
	return 0;
}

static void test_names_and_ring_positions_from_a_peer_are_bounded(void **state)
{
	(void)state;
	int before = test_count_fds();
	hdr_t *h = (hdr_t *)img;
	honest(img);
	/* A name with a terminal escape and a missing terminator. */
	memset(h->desc[0].name, 'x', PROBE_NAME_MAX);
	memcpy(h->desc[0].name, "\x1b]0;pwned\x07", 10);
	int fd = region_fd(img, sizeof img, sizeof img, F_SEAL_SHRINK);
	thoth_probe_maps_t *mp = NULL;
	char why[256];
	assert_int_equal(thoth_probe_maps_open_why(fd, &mp, why, sizeof why), 0);
	thoth_probe_map_info_t info;
	assert_int_equal(thoth_probe_maps_info(mp, 0, &info), 0);
	assert_int_equal(strlen(info.name), PROBE_NAME_MAX - 1);
	for (const char *c = info.name; *c; c++)
		assert_true(*c >= 0x20 && *c <= 0x7e);
	assert_int_equal(strncmp(info.name, "?]0;pwned?", 10), 0);
	/* The ring: a head far past the tail, then records whose lengths
	 * reach past what was published or past the ring. */
	uint8_t *peer = mmap(NULL, sizeof img, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(peer != MAP_FAILED);
	uint64_t *rb = (uint64_t *)(peer + REGION_HDR + 4096);   /* lost, count, head, tail */
	seen_t seen = { 0 };
	rb[2] = UINT64_MAX - 7;
	rb[3] = 3;
	assert_int_equal(thoth_probe_maps_foreach(mp, 1, count_entry, &seen), 0);
	assert_int_equal(seen.n, 0);
	assert_int_equal(rb[3], rb[2]);      /* skipped to the head */
	uint32_t *ring = (uint32_t *)(peer + REGION_HDR + 4096 + 64);
	rb[2] = 4096 * 5;
	rb[3] = 4096 * 5 - 64;
	ring[(4096 - 64) / 4] = 1u << 31;    /* a length past the ring */
	assert_int_equal(thoth_probe_maps_foreach(mp, 1, count_entry, &seen), 0);
	assert_int_equal(seen.n, 0);
	rb[3] = 4096 * 5 - 64;
	ring[(4096 - 64) / 4] = 16;          /* one honest record, then a length past the head */
	ring[(4096 - 64 + 24) / 4] = 100;
	assert_int_equal(thoth_probe_maps_foreach(mp, 1, count_entry, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.bytes, 16);
	assert_int_equal(rb[3], rb[2]);
	munmap(peer, sizeof img);
	thoth_probe_maps_free(mp);
	close(fd);
	assert_int_equal(test_count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_kinds_of_descriptor_are_refused_by_name),
		cmocka_unit_test(test_hostile_headers_and_descriptors_are_refused_by_name),
		cmocka_unit_test(test_names_and_ring_positions_from_a_peer_are_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
