/*
 * test_encode_fast.c - thothc's straight-line encoder of flat messages
 * (one frame of scalars, strings and bytes: tools/thothc/gen_c.c,
 * emit_encode_fast) against the builder path it stands in for.  Every
 * message is encoded twice into two buffers filled with the same garbage:
 * by NAME_encode_msg (the straight-line path, or its builder fallback)
 * and by thoth_method_encode (the method info's builder encoder and
 * thoth_builder_finish).  The return codes, the whole buffers (bytes past
 * the message and a failed encode's partial writes included) and where a
 * reservation points must be the same, over lengths around every copy
 * size class and the inline limit, caps around the exact size, NULL and
 * misaligned buffers, missing pointers, bad UTF-8 and out-of-range strict
 * enums.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "flat.thoth.h"

enum { BUF = 4096 };
static uint64_t buf1[BUF / 8 + 1], buf2[BUF / 8 + 1];
static uint8_t payload[1100];

static const size_t lens[] = { 0, 1, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100,
			       127, 128, 129, 200, 1000 };

typedef int (*enc_fn)(void *buf, size_t cap, const thoth_msg_header_t *meta, const void *v, size_t *len);

static void garbage(void)
{
	for (size_t i = 0; i < sizeof buf1; i++)
		((uint8_t *)buf1)[i] = ((uint8_t *)buf2)[i] = (uint8_t)(i * 37 + 11);
}

static unsigned n_checked, n_ok;

/* Encode V both ways at OFFSET into the buffers with CAP; compare. */
static size_t uninit_len;       /* the length of an uninitialised reservation, else 0 */

static void same(enc_fn fast, const thoth_method_info_t *m, bool response, const void *v,
		 uint8_t **reserve, size_t offset, size_t cap, bool null_buf, const thoth_msg_header_t *meta)
{
	garbage();
	uint8_t *b1 = null_buf ? NULL : (uint8_t *)buf1 + offset;
	uint8_t *b2 = null_buf ? NULL : (uint8_t *)buf2 + offset;
	size_t l1 = 12345, l2 = 12345;
	uint8_t *r1 = (uint8_t *)1, *r2 = (uint8_t *)1;
	if (reserve)
		*reserve = (uint8_t *)1;
	int rc1 = fast(b1, cap, meta, v, &l1);
	if (reserve)
		r1 = *reserve, *reserve = (uint8_t *)1;
	int rc2 = thoth_method_encode(m, response, v, meta, b2, cap, &l2);
	if (reserve)
		r2 = *reserve;
	/* Space reserved uninitialised is the caller's to fill, every byte
	 * (thoth_bytes_t.uninit): the builder leaves what was there, the
	 * straight-line path may have zeroed its last word with the pad.
	 * Compared as the caller leaves it: filled alike in both. */
	if (reserve && rc1 == 0 && rc2 == 0 && r1 && r2 && r1 != (uint8_t *)1 && uninit_len) {
		memset(r1, 0x5c, uninit_len);
		memset(r2, 0x5c, uninit_len);
	}
	n_checked++;
	if (rc1 != rc2 || (rc1 == 0 && l1 != l2) || memcmp(buf1, buf2, sizeof buf1)) {
		size_t at = 0;
		while (at < sizeof buf1 && ((uint8_t *)buf1)[at] == ((uint8_t *)buf2)[at])
			at++;
		fail_msg("%s %s: cap %zu offset %zu null %d: rc %d / %d, len %zu / %zu, first difference at %zu",
			 m->name, response ? "response" : "request", cap, offset, null_buf, rc1, rc2, l1, l2, at);
	}
	if (reserve && rc1 == 0) {
		if (r1 == NULL || r2 == NULL)
			assert_true(r1 == NULL && r2 == NULL);
		else
			assert_int_equal(r1 - b1, r2 - b2);
	}
	n_ok += rc1 == 0;
}

/* Every cap of interest around NEED (the exact size) and the odd buffers. */
static void each_cap(enc_fn fast, const thoth_method_info_t *m, bool response, const void *v,
		     uint8_t **reserve, size_t need)
{
	static const thoth_msg_header_t meta = { .features = 0x1234, .trace_id = 0xfeedfacecafebeefull,
						 .request_id = 77 };
	const size_t caps[] = { need, need - 1, need - 8, need + 1, need + 8, need + 100, 0, 39, 40, 47, 48,
				BUF - 64 };
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		if (caps[i] > BUF - 64)
			continue;
		same(fast, m, response, v, reserve, 0, caps[i], false, &meta);
		same(fast, m, response, v, reserve, 0, caps[i], false, NULL);
	}
	same(fast, m, response, v, reserve, 1, need, false, &meta);     /* misaligned */
	same(fast, m, response, v, reserve, 4, need + 8, false, &meta);
	same(fast, m, response, v, reserve, 0, need, true, &meta);      /* NULL */
}

static int put_req(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_put_req_encode_msg(b, c, h, v, l); }
static int put_resp(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_put_resp_encode_msg(b, c, h, v, l); }
static int mixed_req(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_mixed_req_encode_msg(b, c, h, v, l); }
static int opts_req(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_opts_req_encode_msg(b, c, h, v, l); }
static int opts_resp(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_opts_resp_encode_msg(b, c, h, v, l); }
static int note_req(void *b, size_t c, const thoth_msg_header_t *h, const void *v, size_t *l)
{ return test_flat_Flat_note_req_encode_msg(b, c, h, v, l); }

/* The four ways of giving bytes: a copy, a missing pointer, space
 * reserved uninitialised, space reserved and zeroed. */
static thoth_bytes_t bytes_way(int way, size_t len, uint8_t **reserve)
{
	thoth_bytes_t b = { .len = (uint32_t)len };
	uninit_len = 0;
	switch (way) {
	case 0: b.ptr = payload; break;
	case 1: break;
	case 2: b.reserve = reserve; b.uninit = true; uninit_len = len; break;
	default: b.reserve = reserve; break;
	}
	return b;
}

static void test_bytes_fields(void **state)
{
	(void)state;
	uint8_t *where;
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
		for (int way = 0; way < 4; way++) {
			size_t need = 40 + 16 + ((lens[i] + 7) & ~(size_t)7);
			test_flat_Flat_put_req_t rq = { .data = bytes_way(way, lens[i], &where) };
			each_cap(put_req, &test_flat_Flat_put_info, false, &rq, way >= 2 ? &where : NULL, need);
			test_flat_Flat_put_resp_t rs = { .ack = bytes_way(way, lens[i], &where) };
			each_cap(put_resp, &test_flat_Flat_put_info, true, &rs, way >= 2 ? &where : NULL, need);
		}
	/* a reservation near 4 GiB: refused both ways (on a 32-bit target its
	 * padded length wrapped the fast path's sum below the cap) */
	for (int way = 2; way < 4; way++) {
		test_flat_Flat_put_req_t big = { .data = bytes_way(way, 0xFFFFFFF9u, &where) };
		each_cap(put_req, &test_flat_Flat_put_info, false, &big, &where, 4096);
	}
	/* a pointer given together with a reservation: the reservation wins */
	test_flat_Flat_put_req_t rq = { .data = { .ptr = payload, .len = 20, .reserve = &where } };
	each_cap(put_req, &test_flat_Flat_put_info, false, &rq, &where, 40 + 16 + 24);
}

static void test_scalars_strings_enums(void **state)
{
	(void)state;
	static const char *names[] = { "", "a", "seven!!", "eight!!!", "h\xc3\xa9llo w\xc3\xb6rld",
				       "bad \xff utf-8", "nul\0inside", NULL };
	static const uint32_t name_lens[] = { 0, 1, 7, 8, 14, 11, 10, 5 };
	for (size_t ni = 0; ni < sizeof names / sizeof names[0]; ni++)
		for (int mode = 0; mode < 3; mode++)
			for (size_t bi = 0; bi < sizeof lens / sizeof lens[0]; bi += 3) {
				test_flat_Flat_mixed_req_t rq = {
					.b = true, .x = 0xab, .mode = (test_flat_Mode_t)mode, .y = 0xbeef,
					.name = { names[ni], name_lens[ni] }, .z = 0xdeadbeef,
					.blob = { .ptr = payload, .len = (uint32_t)lens[bi] }, .w = -5,
					.loose = (test_flat_Loose_t)1234,   /* not strict: any value goes */
				};
				size_t need = 40 + 8 + 48 + (name_lens[ni] ? ((name_lens[ni] + 8) & ~(size_t)7) : 0) +
					      ((lens[bi] + 7) & ~(size_t)7);
				each_cap(mixed_req, &test_flat_Flat_mixed_info, false, &rq, NULL, need);
			}
	/* a long string: past the straight-line copy's limit */
	static char longname[300];
	memset(longname, 'q', sizeof longname - 1);
	test_flat_Flat_mixed_req_t rq = { .name = { longname, 299 } };
	each_cap(mixed_req, &test_flat_Flat_mixed_info, false, &rq, NULL, 40 + 56 + 304);
}

static void test_optional_fields(void **state)
{
	(void)state;
	uint8_t *where;
	for (unsigned has = 0; has < 16; has++)
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i += 2)
			for (int way = 0; way < 4; way += (way == 0 ? 2 : 1)) {
				test_flat_Flat_opts_req_t rq = {
					.has_n = has & 1, .n = 99,
					.has_blob = has & 2, .blob = bytes_way(way, lens[i], &where),
					.has_s = has & 4, .s = thoth_str("optional"),
					.has_m = has & 8, .m = (test_flat_Mode_t)(i & 3),
					.tail = { .ptr = payload + 3, .len = (uint32_t)(lens[i] / 2) },
				};
				size_t need = 40 + 8 + 48 + 2048;   /* a generous cap */
				each_cap(opts_req, &test_flat_Flat_opts_info, false, &rq,
					 way >= 2 && (has & 2) ? &where : NULL, need);
				test_flat_Flat_opts_resp_t rs = { .has_back = has & 1,
								  .back = bytes_way(way, lens[i], &where) };
				each_cap(opts_resp, &test_flat_Flat_opts_info, true, &rs,
					 way >= 2 && (has & 1) ? &where : NULL, 40 + 16 + ((lens[i] + 7) & ~(size_t)7));
			}
	test_flat_Flat_note_req_t nq = { .text = thoth_str("a note"), .data = { .ptr = payload, .len = 33 } };
	each_cap(note_req, &test_flat_Flat_note_info, false, &nq, NULL, 40 + 24 + 8 + 40);
}

/* The straight-line path was taken at all (else the comparisons above
 * would only compare the builder with itself): its code is what these
 * messages run through, so most of them must have been encoded. */
static void test_most_encoded(void **state)
{
	(void)state;
	assert_true(n_checked > 10000);
	assert_true(n_ok > n_checked / 4);
}

int main(void)
{
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes_fields),
		cmocka_unit_test(test_scalars_strings_enums),
		cmocka_unit_test(test_optional_fields),
		cmocka_unit_test(test_most_encoded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
