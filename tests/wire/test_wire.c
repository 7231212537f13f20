/*
 * test_wire.c - the wire runtime on its own: header checks, UTF-8, the
 * builder's layout and the verifier's verdicts on hand-made bodies
 * (docs/WIRE.md).  Generated codecs are tested in tests/contract/.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "thoth/wire.h"

static uint64_t buf[1024];      /* 8 KiB, 8-aligned */

static size_t make_msg(uint16_t flags, uint32_t body_len)
{
	thoth_msg_header_t h = { .schema_major = 1, .schema_minor = 2, .flags = flags,
				 .interface_id = 0x11223344, .method = 7, .features = 5,
				 .trace_id = 0xabcdef, .request_id = 9, .body_len = body_len };
	memset(buf, 0, sizeof buf);
	thoth_wire_header_encode((uint8_t *)buf, &h);
	return THOTH_WIRE_HEADER_SIZE + body_len;
}

static void test_header_roundtrips_every_field(void **state)
{
	size_t len = make_msg(THOTH_MSG_REQUEST, 16);
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len, &h), 0);
	assert_int_equal(h.schema_major, 1);
	assert_int_equal(h.schema_minor, 2);
	assert_int_equal(h.interface_id, 0x11223344);
	assert_int_equal(h.method, 7);
	assert_int_equal(h.features, 5);
	assert_int_equal(h.trace_id, 0xabcdef);
	assert_int_equal(h.request_id, 9);
	assert_int_equal(h.body_len, 16);
	/* the layout is fixed: spot-check raw offsets */
	assert_memory_equal((uint8_t *)buf, "THW1", 4);
	assert_int_equal(((uint8_t *)buf)[12], 7);
	assert_int_equal(((uint8_t *)buf)[36], 16);
}

static void test_header_shorter_than_40_bytes_is_truncated(void **state)
{
	make_msg(THOTH_MSG_REQUEST, 0);
	thoth_msg_header_t h = { 0 };
	for (size_t n = 0; n < THOTH_WIRE_HEADER_SIZE; n++)
		assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, n, &h), THOTH_E_TRUNCATED);
}

static void test_header_bad_magic(void **state)
{
	size_t len = make_msg(THOTH_MSG_REQUEST, 0);
	((uint8_t *)buf)[0] = 'X';
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len, &h), THOTH_E_BAD_MAGIC);
}

static void test_header_inconsistent_flags(void **state)
{
	static const uint16_t bad[] = {
		0, THOTH_MSG_REQUEST | THOTH_MSG_RESPONSE, THOTH_MSG_RESPONSE | THOTH_MSG_ONEWAY,
		THOTH_MSG_REQUEST | THOTH_MSG_ERROR, THOTH_MSG_REQUEST | 0x100,
	};
	thoth_msg_header_t h = { 0 };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = make_msg(bad[i], 0);
		assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len, &h), THOTH_E_BAD_FLAGS);
	}
	size_t len = make_msg(THOTH_MSG_RESPONSE | THOTH_MSG_ERROR, 0);
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len, &h), 0);
}

/* Every 16-bit flags value against the rule written out (the decoder tests
 * the four valid values as bits of one word): no unknown bit, exactly one
 * of REQUEST and RESPONSE, ONEWAY only with REQUEST, ERROR only with
 * RESPONSE. */
static void test_header_flags_every_value(void **state)
{
	thoth_msg_header_t h = { 0 };
	unsigned valid = 0;
	for (uint32_t f = 0; f <= 0xffff; f++) {
		bool req = f & THOTH_MSG_REQUEST, resp = f & THOTH_MSG_RESPONSE;
		bool ok = !(f & ~THOTH_MSG_FLAGS_KNOWN) && req != resp &&
			  !((f & THOTH_MSG_ONEWAY) && !req) && !((f & THOTH_MSG_ERROR) && !resp);
		size_t len = make_msg((uint16_t)f, 8);
		int r = thoth_wire_header_decode((uint8_t *)buf, len, &h);
		if (ok != (r == 0))
			fail_msg("flags 0x%04x: decode says %d, the rule says %s", f, r, ok ? "valid" : "invalid");
		if (!ok)
			assert_int_equal(r, THOTH_E_BAD_FLAGS);
		valid += ok;
	}
	assert_int_equal(valid, 4);
}

static void test_header_body_length_must_match(void **state)
{
	thoth_msg_header_t h = { 0 };
	size_t len = make_msg(THOTH_MSG_REQUEST, 16);
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len - 1, &h), THOTH_E_TRUNCATED);
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, len + 8, &h), THOTH_E_BAD_LENGTH);
	len = make_msg(THOTH_MSG_REQUEST, THOTH_WIRE_MAX_BODY + 8);
	assert_int_equal(thoth_wire_header_decode((uint8_t *)buf, sizeof buf, &h), THOTH_E_TOO_LARGE);
}

static void test_utf8_accepts_valid_and_rejects_invalid(void **state)
{
	static const char *good[] = { "", "plain ascii long enough for the fast path",
				      "h\xc3\xa9llo", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
				      "\xf4\x8f\xbf\xbf" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_int_equal(thoth_wire_check_utf8((const uint8_t *)good[i], strlen(good[i])), 0);
	static const struct { const char *s; size_t n; int err; } bad[] = {
		{ "\xc0\xaf", 2, THOTH_E_BAD_UTF8 },              /* overlong '/' */
		{ "\xe0\x80\xaf", 3, THOTH_E_BAD_UTF8 },          /* overlong */
		{ "\xed\xa0\x80", 3, THOTH_E_BAD_UTF8 },          /* surrogate */
		{ "\xf4\x90\x80\x80", 4, THOTH_E_BAD_UTF8 },      /* > U+10FFFF */
		{ "\xff", 1, THOTH_E_BAD_UTF8 },
		{ "\xe2\x82", 2, THOTH_E_BAD_UTF8 },              /* truncated sequence */
		{ "abc\x80", 4, THOTH_E_BAD_UTF8 },               /* lone continuation */
		{ "abcdefgh\0ijklmnop", 17, THOTH_E_BAD_NUL },    /* NUL inside, fast path */
		{ "a\0b", 3, THOTH_E_BAD_NUL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(thoth_wire_check_utf8((const uint8_t *)bad[i].s, bad[i].n), bad[i].err);
}

static void test_builder_aligns_objects_and_pads_body(void **state)
{
	thoth_builder_t b;
	uint32_t f, off;
	thoth_builder_init(&b, buf, sizeof buf);
	assert_int_equal(thoth_builder_frame(&b, 16, 2, &f), 0);
	assert_int_equal(f, 0);
	assert_int_equal(thoth_builder_str(&b, 8, thoth_str("abc")), 0);
	assert_int_equal(thoth_builder_alloc(&b, 3, &off), 0);
	assert_int_equal(off % 8, 0);
	/* "abc\0" occupies body 24..27, next object at 32 */
	assert_int_equal(off, 32);
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST };
	size_t len;
	assert_int_equal(thoth_builder_finish(&b, &h, &len), 0);
	assert_int_equal(len % 8, 0);
	assert_int_equal(len, THOTH_WIRE_HEADER_SIZE + 40);
	const uint8_t *body = (uint8_t *)buf + THOTH_WIRE_HEADER_SIZE;
	assert_int_equal(thoth_le32(body + 8), 24);   /* pointer offset */
	assert_int_equal(thoth_le32(body + 12), 3);   /* pointer count */
	assert_memory_equal(body + 24, "abc\0", 4);
}

static void test_builder_reports_no_space_and_stays_failed(void **state)
{
	thoth_builder_t b;
	uint32_t off;
	thoth_builder_init(&b, buf, 64);
	assert_int_equal(thoth_builder_alloc(&b, 32, &off), THOTH_E_NO_SPACE);
	assert_int_equal(thoth_builder_alloc(&b, 8, &off), THOTH_E_NO_SPACE);
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST };
	size_t len;
	assert_int_equal(thoth_builder_finish(&b, &h, &len), THOTH_E_NO_SPACE);
}

/* The builder clamps its cap at a maximal message and tells TOO_LARGE from
 * NO_SPACE only when an allocation fails: the answers of the two separate
 * tests it had, case by case (alloc_raw writes nothing but a gap, so a cap
 * larger than the buffer is safe here while every object fits BUF). */
static void test_builder_tells_too_large_from_no_space(void **state)
{
	thoth_builder_t b;
	uint32_t off;
	/* Larger than a body may be: TOO_LARGE, whatever the cap. */
	thoth_builder_init(&b, buf, SIZE_MAX);
	assert_int_equal(thoth_builder_alloc_raw(&b, (size_t)THOTH_WIRE_MAX_BODY + 1, &off), THOTH_E_TOO_LARGE);
	thoth_builder_init(&b, buf, 64);
	assert_int_equal(thoth_builder_alloc_raw(&b, (size_t)THOTH_WIRE_MAX_BODY + 1, &off), THOTH_E_TOO_LARGE);
	/* Within MAX_BODY alone but not after what is there: TOO_LARGE. */
	thoth_builder_init(&b, buf, SIZE_MAX);
	assert_int_equal(thoth_builder_alloc_raw(&b, 16, &off), 0);
	assert_int_equal(thoth_builder_alloc_raw(&b, THOTH_WIRE_MAX_BODY - 8, &off), THOTH_E_TOO_LARGE);
	/* Exactly a maximal body fits a cap that large (nothing written). */
	thoth_builder_init(&b, buf, SIZE_MAX);
	assert_int_equal(thoth_builder_alloc_raw(&b, THOTH_WIRE_MAX_BODY, &off), 0);
	assert_int_equal(off, 0);
	assert_int_equal(b.len, THOTH_WIRE_HEADER_SIZE + (size_t)THOTH_WIRE_MAX_BODY);
	/* Small enough for a message, too large for the cap: NO_SPACE. */
	thoth_builder_init(&b, buf, 64);
	assert_int_equal(thoth_builder_alloc_raw(&b, 32, &off), THOTH_E_NO_SPACE);
	thoth_builder_init(&b, buf, 64);
	assert_int_equal(thoth_builder_alloc_raw(&b, 24, &off), 0);
}

static void test_builder_refuses_invalid_strings(void **state)
{
	thoth_builder_t b;
	thoth_builder_init(&b, buf, sizeof buf);
	thoth_str_t s = { "a\xff", 2 };
	assert_int_equal(thoth_builder_str(&b, 0, s), THOTH_E_BAD_UTF8);
}

static void test_builder_reserve_returns_writable_space_without_copy(void **state)
{
	thoth_builder_t b;
	uint32_t f;
	uint8_t *where = NULL;
	thoth_builder_init(&b, buf, sizeof buf);
	assert_int_equal(thoth_builder_frame(&b, 8, 1, &f), 0);
	thoth_bytes_t v = { .ptr = NULL, .len = 100, .reserve = &where };
	assert_int_equal(thoth_builder_bytes(&b, 8, &v), 0);
	assert_non_null(where);
	assert_ptr_equal(where, thoth_builder_at(&b, 16));
}

/* A body: frame {fixed 8, count 1} with one pointer slot at body offset 8. */
static uint8_t *body_with_ptr(uint32_t off, uint32_t count)
{
	uint8_t *body = (uint8_t *)buf;
	memset(buf, 0, sizeof buf);
	thoth_st32(body, 8);
	thoth_st32(body + 4, 1);
	thoth_st32(body + 8, off);
	thoth_st32(body + 12, count);
	return body;
}

static void test_decoder_rejects_pointer_outside_body(void **state)
{
	uint8_t *body = body_with_ptr(16, 100);
	thoth_decoder_t d;
	uint32_t fixed, count, off, n;
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_frame(&d, 0, 0, &fixed, &count), 0);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 1, &off, &n), THOTH_E_BAD_LENGTH);
	/* offset near UINT32_MAX must not wrap */
	body_with_ptr(0xfffffff8u, 16);
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 1, &off, &n), THOTH_E_BAD_LENGTH);
	/* count * elem_size overflowing 32 bits */
	body_with_ptr(16, 0x20000001u);
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 8, &off, &n), THOTH_E_BAD_LENGTH);
}

static void test_decoder_rejects_misaligned_pointer(void **state)
{
	uint8_t *body = body_with_ptr(20, 4);
	thoth_decoder_t d;
	uint32_t off, n;
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 1, &off, &n), THOTH_E_BAD_ALIGN);
}

static void test_decoder_empty_pointer_must_be_canonical(void **state)
{
	uint8_t *body = body_with_ptr(16, 0);
	thoth_decoder_t d;
	uint32_t off, n;
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 1, &off, &n), THOTH_E_BAD_LENGTH);
	body_with_ptr(0, 0);
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_ptr(&d, 8, 1, &off, &n), 0);
	assert_int_equal(n, 0);
}

static void test_decoder_string_needs_terminator_and_no_nul(void **state)
{
	uint8_t *body = body_with_ptr(16, 3);
	thoth_decoder_t d;
	thoth_str_t s;
	memcpy(body + 16, "abcX", 4);
	thoth_decoder_init(&d, body, 24, NULL);
	assert_int_equal(thoth_decoder_str(&d, 8, &s), THOTH_E_BAD_NUL);
	memcpy(body + 16, "a\0c\0", 4);
	thoth_decoder_init(&d, body, 24, NULL);
	assert_int_equal(thoth_decoder_str(&d, 8, &s), THOTH_E_BAD_NUL);
	memcpy(body + 16, "abc\0", 4);
	thoth_decoder_init(&d, body, 24, NULL);
	assert_int_equal(thoth_decoder_str(&d, 8, &s), 0);
	assert_string_equal(s.ptr, "abc");
	/* terminator would be the byte after the body */
	body_with_ptr(16, 8);
	memcpy(body + 16, "abcdefgh", 8);
	thoth_decoder_init(&d, body, 24, NULL);
	assert_int_equal(thoth_decoder_str(&d, 8, &s), THOTH_E_BAD_NUL);
}

static void test_decoder_overlapping_pointers_exhaust_budget(void **state)
{
	/* frame with 8 pointers all pointing at the same 64-byte object */
	uint8_t *body = (uint8_t *)buf;
	memset(buf, 0, sizeof buf);
	thoth_st32(body, 64);
	thoth_st32(body + 4, 8);
	for (int i = 0; i < 8; i++) {
		thoth_st32(body + 8 + 8 * i, 72);
		thoth_st32(body + 12 + 8 * i, 64);
	}
	thoth_decoder_t d;
	uint32_t fixed, count, off, n;
	int r = 0;
	thoth_decoder_init(&d, body, 136, NULL);
	assert_int_equal(thoth_decoder_frame(&d, 0, 0, &fixed, &count), 0);
	for (int i = 0; i < 8 && !r; i++)
		r = thoth_decoder_ptr(&d, 8 + 8 * i, 1, &off, &n);
	assert_int_equal(r, THOTH_E_ALIASED);
}

static void test_decoder_frame_checks(void **state)
{
	uint8_t *body = (uint8_t *)buf;
	thoth_decoder_t d;
	uint32_t fixed, count;
	memset(buf, 0, sizeof buf);
	thoth_st32(body, 12);                       /* not a multiple of 8 */
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_frame(&d, 0, 0, &fixed, &count), THOTH_E_BAD_ALIGN);
	thoth_st32(body, 64);                       /* larger than the body */
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_frame(&d, 0, 0, &fixed, &count), THOTH_E_TRUNCATED);
	thoth_decoder_init(&d, body, 4, NULL);      /* no room for the frame header */
	assert_int_equal(thoth_decoder_frame(&d, 0, 0, &fixed, &count), THOTH_E_TRUNCATED);
	thoth_st32(body, 8);
	thoth_decoder_init(&d, body, 64, NULL);     /* nested frame: length must match pointer */
	assert_int_equal(thoth_decoder_frame(&d, 0, 24, &fixed, &count), THOTH_E_BAD_LENGTH);
	thoth_decoder_init(&d, body, 64, NULL);
	assert_int_equal(thoth_decoder_frame(&d, 0, 16, &fixed, &count), 0);
}

static void test_scalar_list_copies_into_arena_when_misaligned(void **state)
{
	static uint64_t raw[16];
	uint8_t *body = (uint8_t *)raw + 1;         /* deliberately misaligned */
	memset(raw, 0, sizeof raw);
	thoth_st32(body + 8, 16);
	thoth_st32(body + 12, 2);
	thoth_st32(body + 16, 0xdeadbeef);
	thoth_st32(body + 20, 42);
	uint64_t scratch[4];
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	thoth_decoder_t d;
	const void *items;
	uint32_t n;
	thoth_decoder_init(&d, body, 24, &a);
	assert_int_equal(thoth_decoder_scalar_list(&d, 8, 4, &items, &n), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(items, scratch);
	assert_int_equal(((const uint32_t *)items)[0], 0xdeadbeef);
	assert_int_equal(((const uint32_t *)items)[1], 42);
	thoth_arena_init(&a, scratch, 4);           /* too small */
	thoth_decoder_init(&d, body, 24, &a);
	assert_int_equal(thoth_decoder_scalar_list(&d, 8, 4, &items, &n), THOTH_E_NO_SPACE);
	/* no arena at all (a stub called with NULL): the call fails, the
	 * client does not crash (it did, in thoth_arena_alloc) */
	thoth_decoder_init(&d, body, 24, NULL);
	assert_int_equal(thoth_decoder_scalar_list(&d, 8, 4, &items, &n), THOTH_E_NO_SPACE);
	assert_null(thoth_arena_alloc(NULL, 8));
}

static void test_every_error_code_has_a_name(void **state)
{
	for (int e = -80; e < 0; e++) {
		const char *s = thoth_strerror(e);
		assert_non_null(s);
	}
	assert_string_equal(thoth_strerror(THOTH_E_BAD_UTF8), "string is not valid UTF-8");
	assert_string_equal(thoth_strerror(-9999), "unknown error");
}

/* thoth_wire_copy_small is public: any length copies exactly, nothing
 * past it written.  Its size classes stop at THOTH_WIRE_COPY_INLINE; a
 * longer copy once went to them too and left all but the first and last
 * 64 bytes unwritten. */
static void test_copy_small_is_exact_at_any_length(void **state)
{
	(void)state;
	enum { MAX = 3 * THOTH_WIRE_COPY_INLINE, GUARD = 32 };
	static uint8_t src[MAX], dst[MAX + GUARD];
	for (size_t i = 0; i < MAX; i++)
		src[i] = (uint8_t)(i * 7 + 1);
	for (size_t n = 0; n <= MAX; n++) {
		memset(dst, 0xEE, sizeof dst);
		thoth_wire_copy_small(dst, src, n);
		if (n)
			assert_memory_equal(dst, src, n);
		for (size_t i = n; i < n + GUARD; i++)
			assert_int_equal(dst[i], 0xEE);
	}
	/* the generator's own, within its bound */
	for (size_t n = 0; n <= THOTH_WIRE_COPY_INLINE; n++) {
		memset(dst, 0xEE, sizeof dst);
		thoth__wire_copy_small(dst, src, n);
		if (n)
			assert_memory_equal(dst, src, n);
		assert_int_equal(dst[n], 0xEE);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_roundtrips_every_field),
		cmocka_unit_test(test_header_shorter_than_40_bytes_is_truncated),
		cmocka_unit_test(test_header_bad_magic),
		cmocka_unit_test(test_header_inconsistent_flags),
		cmocka_unit_test(test_header_flags_every_value),
		cmocka_unit_test(test_header_body_length_must_match),
		cmocka_unit_test(test_utf8_accepts_valid_and_rejects_invalid),
		cmocka_unit_test(test_builder_aligns_objects_and_pads_body),
		cmocka_unit_test(test_builder_reports_no_space_and_stays_failed),
		cmocka_unit_test(test_builder_tells_too_large_from_no_space),
		cmocka_unit_test(test_builder_refuses_invalid_strings),
		cmocka_unit_test(test_builder_reserve_returns_writable_space_without_copy),
		cmocka_unit_test(test_decoder_rejects_pointer_outside_body),
		cmocka_unit_test(test_decoder_rejects_misaligned_pointer),
		cmocka_unit_test(test_decoder_empty_pointer_must_be_canonical),
		cmocka_unit_test(test_decoder_string_needs_terminator_and_no_nul),
		cmocka_unit_test(test_decoder_overlapping_pointers_exhaust_budget),
		cmocka_unit_test(test_decoder_frame_checks),
		cmocka_unit_test(test_scalar_list_copies_into_arena_when_misaligned),
		cmocka_unit_test(test_every_error_code_has_a_name),
		cmocka_unit_test(test_copy_small_is_exact_at_any_length),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
