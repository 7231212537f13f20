/*
 * test_codec.c - generated encode/decode for every type of the wire format
 * (schemas/alltypes.tidl), its limits, and the verifier's verdicts on
 * corrupted bytes.  Everything goes through the code thothc generated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alltypes.thoth.h"
#include "thoth/contract.h"
#include "thoth/log.h"

#define SINK (&test_alltypes_Kitchen_sink_info)

static uint64_t msgbuf[1 << 16];    /* 512 KiB, 8-aligned */
static uint64_t arena_mem[1 << 15]; /* 256 KiB */

typedef test_alltypes_Kitchen_sink_req_t sink_req_t;

/* A value with every field set to something non-default. */
static void fill_everything(test_alltypes_Everything_t *e)
{
	static const uint32_t nums[] = { 1, 2, 0xffffffffu };
	static const bool flags[] = { true, false, true };
	static thoth_str_t words[3];
	static thoth_bytes_t blobs[2];
	static test_alltypes_Inner_t inners[2];
	static const uint16_t row0[] = { 1, 2 }, row2[] = { 7 };
	static thoth_list_u16_t rows[3];
	static const test_alltypes_Color_t colors[] = { TEST_ALLTYPES_COLOR_RED, TEST_ALLTYPES_COLOR_BLUE };
	static test_shapes_Point_t path[2] = { { -1, 1 }, { 2147483647, -2147483647 - 1 } };
	static thoth_str_t g0[2], g1[1];
	static thoth_list_string_t groups[2];

	memset(e, 0, sizeof *e);
	e->scalars = (test_alltypes_Scalars_t){
		.flag = true, .a = 0xab, .b = 0xbeef, .c = 0xdeadbeef, .d = 0x0123456789abcdefull,
		.e = -8, .f = -1234, .g = -123456789, .h = -1234567890123ll, .x = 1.5f, .y = -2.25,
		.color = TEST_ALLTYPES_COLOR_GREEN, .level = TEST_ALLTYPES_LEVEL_LOW,
	};
	e->name = thoth_str("h\xc3\xa9llo");
	e->blob = (thoth_bytes_t){ .ptr = (const uint8_t *)"\x00\x01\x02\xff", .len = 4, .reserve = NULL };
	e->inner = (test_alltypes_Inner_t){ 42, thoth_str("inner") };
	e->has_maybe_num = true;
	e->maybe_num = 0;                      /* present, and zero */
	e->has_maybe_str = true;
	e->maybe_str = thoth_str("");          /* present, and empty */
	e->has_maybe_inner = false;
	e->nums = (thoth_list_u32_t){ nums, 3 };
	e->flags = (thoth_list_bool_t){ flags, 3 };
	words[0] = thoth_str("a");
	words[1] = thoth_str("");
	words[2] = thoth_str("third word");
	e->words = (thoth_list_string_t){ words, 3 };
	blobs[0] = (thoth_bytes_t){ .ptr = (const uint8_t *)"xyz", .len = 3, .reserve = NULL };
	blobs[1] = (thoth_bytes_t){ .ptr = NULL, .len = 0, .reserve = NULL };
	e->blobs = (thoth_list_bytes_t){ blobs, 2 };
	inners[0] = (test_alltypes_Inner_t){ 1, thoth_str("one") };
	inners[1] = (test_alltypes_Inner_t){ 2, thoth_str("") };
	e->inners = (test_alltypes_Inner_list_t){ inners, 2 };
	rows[0] = (thoth_list_u16_t){ row0, 2 };
	rows[1] = (thoth_list_u16_t){ NULL, 0 };
	rows[2] = (thoth_list_u16_t){ row2, 1 };
	e->matrix = (thoth_list_u16_list_t){ rows, 3 };
	e->colors = (test_alltypes_Color_list_t){ colors, 2 };
	e->origin = (test_shapes_Point_t){ -3, 4 };
	e->path = (test_shapes_Point_list_t){ path, 2 };
	g0[0] = thoth_str("x");
	g0[1] = thoth_str("y");
	g1[0] = thoth_str("z");
	groups[0] = (thoth_list_string_t){ g0, 2 };
	groups[1] = (thoth_list_string_t){ g1, 1 };
	e->groups = (thoth_list_string_list_t){ groups, 2 };
	e->has_maybe_blob = true;
	e->maybe_blob = (thoth_bytes_t){ .ptr = (const uint8_t *)"b", .len = 1, .reserve = NULL };
}

static size_t encode_sink(const sink_req_t *req)
{
	size_t len = 0;
	int r = thoth_method_encode(SINK, false, req, NULL, msgbuf, sizeof msgbuf, &len);
	assert_int_equal(r, 0);
	assert_int_equal(len, thoth_method_size(SINK, false, req));
	return len;
}

static int decode_sink(const void *msg, size_t len, sink_req_t *out)
{
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	return thoth_method_decode(SINK, false, msg, len, out, &a);
}

static bool str_eq(thoth_str_t a, thoth_str_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool bytes_eq(thoth_bytes_t a, thoth_bytes_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_everything_equal(const test_alltypes_Everything_t *a,
				    const test_alltypes_Everything_t *b)
{
	assert_memory_equal(&a->scalars, &b->scalars, sizeof a->scalars);
	assert_true(str_eq(a->name, b->name));
	assert_true(bytes_eq(a->blob, b->blob));
	assert_int_equal(a->inner.id, b->inner.id);
	assert_true(str_eq(a->inner.label, b->inner.label));
	assert_int_equal(a->has_maybe_num, b->has_maybe_num);
	assert_int_equal(a->maybe_num, b->maybe_num);
	assert_int_equal(a->has_maybe_str, b->has_maybe_str);
	assert_true(str_eq(a->maybe_str, b->maybe_str));
	assert_int_equal(a->has_maybe_inner, b->has_maybe_inner);
	assert_int_equal(a->nums.count, b->nums.count);
	for (uint32_t i = 0; i < a->nums.count; i++)
		assert_int_equal(a->nums.items[i], b->nums.items[i]);
	assert_int_equal(a->flags.count, b->flags.count);
	for (uint32_t i = 0; i < a->flags.count; i++)
		assert_int_equal(a->flags.items[i], b->flags.items[i]);
	assert_int_equal(a->words.count, b->words.count);
	for (uint32_t i = 0; i < a->words.count; i++)
		assert_true(str_eq(a->words.items[i], b->words.items[i]));
	assert_int_equal(a->blobs.count, b->blobs.count);
	for (uint32_t i = 0; i < a->blobs.count; i++)
		assert_true(bytes_eq(a->blobs.items[i], b->blobs.items[i]));
	assert_int_equal(a->inners.count, b->inners.count);
	for (uint32_t i = 0; i < a->inners.count; i++) {
		assert_int_equal(a->inners.items[i].id, b->inners.items[i].id);
		assert_true(str_eq(a->inners.items[i].label, b->inners.items[i].label));
	}
	assert_int_equal(a->matrix.count, b->matrix.count);
	for (uint32_t i = 0; i < a->matrix.count; i++) {
		assert_int_equal(a->matrix.items[i].count, b->matrix.items[i].count);
		for (uint32_t k = 0; k < a->matrix.items[i].count; k++)
			assert_int_equal(a->matrix.items[i].items[k], b->matrix.items[i].items[k]);
	}
	assert_int_equal(a->colors.count, b->colors.count);
	for (uint32_t i = 0; i < a->colors.count; i++)
		assert_int_equal(a->colors.items[i], b->colors.items[i]);
	assert_int_equal(a->origin.x, b->origin.x);
	assert_int_equal(a->origin.y, b->origin.y);
	assert_int_equal(a->path.count, b->path.count);
	for (uint32_t i = 0; i < a->path.count; i++) {
		assert_int_equal(a->path.items[i].x, b->path.items[i].x);
		assert_int_equal(a->path.items[i].y, b->path.items[i].y);
	}
	assert_int_equal(a->groups.count, b->groups.count);
	for (uint32_t i = 0; i < a->groups.count; i++) {
		assert_int_equal(a->groups.items[i].count, b->groups.items[i].count);
		for (uint32_t k = 0; k < a->groups.items[i].count; k++)
			assert_true(str_eq(a->groups.items[i].items[k], b->groups.items[i].items[k]));
	}
	assert_int_equal(a->has_maybe_blob, b->has_maybe_blob);
	assert_true(bytes_eq(a->maybe_blob, b->maybe_blob));
}

static void test_every_type_roundtrips(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_everything_equal(&in.e, &out.e);
}

static void test_default_value_roundtrips_and_is_small(void **state)
{
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_everything_equal(&in.e, &out.e);
	assert_false(out.e.has_maybe_num);
	assert_int_equal(out.e.name.len, 0);
	assert_string_equal(out.e.name.ptr, "");
}

static void test_optional_present_zero_differs_from_absent(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_true(out.e.has_maybe_num);
	assert_int_equal(out.e.maybe_num, 0);
	assert_true(out.e.has_maybe_str);
	assert_int_equal(out.e.maybe_str.len, 0);
	assert_false(out.e.has_maybe_inner);
}

static void test_decoded_strings_and_bytes_point_into_the_message(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	const uint8_t *lo = (const uint8_t *)msgbuf, *hi = lo + len;
	assert_true((const uint8_t *)out.e.name.ptr >= lo && (const uint8_t *)out.e.name.ptr < hi);
	assert_true(out.e.blob.ptr >= lo && out.e.blob.ptr < hi);
	assert_true((const uint8_t *)out.e.nums.items >= lo && (const uint8_t *)out.e.nums.items < hi);
	/* strings are NUL-terminated in place */
	assert_string_equal(out.e.name.ptr, "h\xc3\xa9llo");
}

static void test_large_bytes_field_is_not_copied(void **state)
{
	enum { BIG = 256 * 1024 };
	uint8_t *big = malloc(BIG);
	assert_non_null(big);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (uint8_t)(i * 7);
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	in.e.blob = (thoth_bytes_t){ .ptr = big, .len = BIG, .reserve = NULL };
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_int_equal(out.e.blob.len, BIG);
	assert_true(out.e.blob.ptr > (const uint8_t *)msgbuf &&
		    out.e.blob.ptr < (const uint8_t *)msgbuf + len);
	assert_memory_equal(out.e.blob.ptr, big, BIG);
	free(big);
}

static void test_reserved_bytes_are_built_in_place(void **state)
{
	uint8_t *where = NULL;
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	in.e.blob = (thoth_bytes_t){ .ptr = NULL, .len = 1000, .reserve = &where };
	size_t len = encode_sink(&in);
	assert_non_null(where);
	memset(where, 0x5a, 1000);           /* fill after encoding: no copy was made */
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_ptr_equal(out.e.blob.ptr, where);
	assert_int_equal(out.e.blob.ptr[999], 0x5a);
}

static void test_long_string_roundtrips(void **state)
{
	enum { LONG = 100000 };
	char *s = malloc(LONG + 1);
	assert_non_null(s);
	memset(s, 'q', LONG);
	s[LONG] = 0;
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	in.e.name = thoth_str(s);
	size_t len = encode_sink(&in);
	assert_int_equal(decode_sink(msgbuf, len, &out), 0);
	assert_int_equal(out.e.name.len, LONG);
	assert_int_equal(out.e.name.ptr[LONG], 0);
	free(s);
}

static void test_encoding_a_string_with_nul_is_refused(void **state)
{
	sink_req_t in;
	memset(&in, 0, sizeof in);
	in.e.name = (thoth_str_t){ "a\0b", 3 };
	size_t len;
	assert_int_equal(thoth_method_encode(SINK, false, &in, NULL, msgbuf, sizeof msgbuf, &len),
			 THOTH_E_BAD_NUL);
}

static void test_buffer_too_small_is_no_space(void **state)
{
	sink_req_t in;
	fill_everything(&in.e);
	size_t need = thoth_method_size(SINK, false, &in), len;
	for (size_t cap = 0; cap < need; cap += 8)
		assert_int_equal(thoth_method_encode(SINK, false, &in, NULL, msgbuf, cap, &len),
				 THOTH_E_NO_SPACE);
}

static void test_arena_too_small_is_no_space(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, 16);
	assert_int_equal(thoth_method_decode(SINK, false, (uint8_t *)msgbuf, len, &out, &a),
			 THOTH_E_NO_SPACE);
}

/* A slot of the Everything frame: the root frame is the sink request, whose
 * field 1 (slot 0) points at Everything; slots start after the 8-byte frame
 * header. */
static uint8_t *root_field(uint32_t slot_off)
{
	const uint8_t *body = (uint8_t *)msgbuf + THOTH_WIRE_HEADER_SIZE;
	uint32_t everything = thoth_le32(body + 8);
	return (uint8_t *)body + everything + 8 + slot_off;
}

static void test_strict_enum_rejects_unknown_value_flexible_accepts(void **state)
{
	test_alltypes_Scalars_t s;
	memset(&s, 0, sizeof s);
	/* Encode a Scalars frame standalone and patch it. */
	thoth_builder_t b;
	uint32_t off, flen;
	thoth_builder_init(&b, msgbuf, sizeof msgbuf);
	s.color = TEST_ALLTYPES_COLOR_RED;
	s.level = 12345;                               /* flexible: unknown is fine */
	assert_int_equal(test_alltypes_Scalars__encode_frame(&b, &s, &off, &flen, 0), 0);
	thoth_decoder_t d;
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	test_alltypes_Scalars_t out;
	uint8_t *body = thoth_builder_at(&b, 0);
	thoth_decoder_init(&d, body, (uint32_t)(b.len - THOTH_WIRE_HEADER_SIZE), &a);
	assert_int_equal(test_alltypes_Scalars__decode_frame(&d, 0, 0, &out, 0), 0);
	assert_int_equal(out.level, 12345);
	/* color is field 12: find its byte and make it 9 */
	bool patched = false;
	for (uint32_t i = 8; i < flen; i++) {
		if (body[i] == TEST_ALLTYPES_COLOR_RED) {
			body[i] = 9;
			thoth_decoder_init(&d, body, (uint32_t)(b.len - THOTH_WIRE_HEADER_SIZE), &a);
			if (test_alltypes_Scalars__decode_frame(&d, 0, 0, &out, 0) == THOTH_E_BAD_ENUM) {
				patched = true;
				break;
			}
			body[i] = TEST_ALLTYPES_COLOR_RED;
		}
	}
	assert_true(patched);
}

static void test_bool_other_than_0_or_1_is_rejected(void **state)
{
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	in.e.scalars.flag = true;
	size_t len = encode_sink(&in);
	/* Everything.scalars is field 1: a struct pointer at slot 0; Scalars.flag is
	 * the first byte of its fixed section. */
	uint32_t so = thoth_le32(root_field(0));      /* Everything.scalars */
	uint8_t *flag = (uint8_t *)msgbuf + THOTH_WIRE_HEADER_SIZE + so + 8;
	assert_int_equal(*flag, 1);
	*flag = 2;
	assert_int_equal(decode_sink(msgbuf, len, &out), THOTH_E_BAD_BOOL);
}

static void test_presence_other_than_0_or_1_is_rejected(void **state)
{
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	in.e.has_maybe_num = true;
	in.e.maybe_num = 77;
	size_t len = encode_sink(&in);
	/* Layout (docs/WIRE.md): fields 1-4 are 8-byte pointer slots at 0..31;
	 * field 5 (optional u32) has its presence byte at 32, value at 36. */
	uint8_t *p = root_field(32);
	assert_int_equal(*p, 1);
	assert_int_equal(thoth_le32(root_field(36)), 77);
	*p = 3;
	assert_int_equal(decode_sink(msgbuf, len, &out), THOTH_E_BAD_PRESENCE);
}

static int tree_sum_depth(unsigned depth)
{
	/* Build a chain of DEPTH nodes and encode it. */
	test_alltypes_Node_t *nodes = calloc(depth, sizeof *nodes);
	assert_non_null(nodes);
	for (unsigned i = 0; i < depth; i++) {
		nodes[i].value = i;
		if (i + 1 < depth)
			nodes[i].children = (test_alltypes_Node_list_t){ &nodes[i + 1], 1 };
	}
	test_alltypes_Kitchen_tree_req_t req = { .root = nodes[0] };
	size_t len;
	int r = thoth_method_encode(&test_alltypes_Kitchen_tree_info, false, &req, NULL, msgbuf,
				    sizeof msgbuf, &len);
	free(nodes);
	return r;
}

static void test_nesting_deeper_than_limit_is_refused(void **state)
{
	assert_int_equal(tree_sum_depth(8), 0);
	assert_int_equal(tree_sum_depth(THOTH_WIRE_MAX_DEPTH * 2), THOTH_E_TOO_DEEP);
}

static void test_every_truncation_fails_cleanly(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	static uint64_t copy[4096];
	/* Objects are 8-aligned and bodies padded to 8, so every cut either
	 * makes body_len non-canonical or removes at least one byte of data. */
	for (size_t n = 0; n < len; n++) {
		memcpy(copy, msgbuf, n);
		/* keep the header's body_len consistent so the body itself is cut */
		if (n >= THOTH_WIRE_HEADER_SIZE)
			thoth_st32((uint8_t *)copy + 36, (uint32_t)(n - THOTH_WIRE_HEADER_SIZE));
		int r = decode_sink(copy, n, &out);
		if (r >= 0)
			fail_msg("a message cut to %zu of %zu bytes decoded", n, len);
	}
}

static void test_every_byte_corruption_decodes_or_fails_cleanly(void **state)
{
	sink_req_t in, out;
	fill_everything(&in.e);
	size_t len = encode_sink(&in);
	static uint64_t copy[4096];
	static const uint8_t patterns[] = { 0x00, 0xff, 0x80, 0x01, 0x7f };
	for (size_t i = 0; i < len; i++) {
		for (size_t p = 0; p < sizeof patterns; p++) {
			memcpy(copy, msgbuf, len);
			((uint8_t *)copy)[i] = patterns[p];
			int r = decode_sink(copy, len, &out);
			assert_true(r == 0 || (r < 0 && strcmp(thoth_strerror(r), "unknown error") != 0));
		}
	}
}

static void test_wrong_method_or_interface_is_reported(void **state)
{
	sink_req_t in, out;
	memset(&in, 0, sizeof in);
	size_t len = encode_sink(&in);
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	test_alltypes_Kitchen_tree_req_t tree;
	assert_int_equal(thoth_method_decode(&test_alltypes_Kitchen_tree_info, false,
					     (uint8_t *)msgbuf, len, &tree, &a),
			 THOTH_E_UNKNOWN_METHOD);
	((uint8_t *)msgbuf)[4] = 3;   /* schema major 3 */
	assert_int_equal(decode_sink(msgbuf, len, &out), THOTH_E_BAD_VERSION);
	((uint8_t *)msgbuf)[4] = 2;
	((uint8_t *)msgbuf)[8] ^= 1;  /* interface id */
	assert_int_equal(decode_sink(msgbuf, len, &out), THOTH_E_UNKNOWN_IFACE);
}

/* ---- client stubs and dispatch over an in-process loopback transport ---- */

typedef struct loop_ctx {
	uint64_t req[4096];
	uint64_t resp[4096];
	uint64_t scratch[4096];
	int sends;
	int calls;
	uint64_t features;
	bool table;             /* serve the table-driven way, not the generated dispatcher */
} loop_ctx_t;

static int kitchen_sink(void *self, const sink_req_t *req,
			test_alltypes_Kitchen_sink_resp_t *resp, thoth_arena_t *arena)
{
	if (req->e.name.len == 4 && memcmp(req->e.name.ptr, "fail", 4) == 0)
		return TEST_ALLTYPES_ERR_NOPE;
	/* "status:-N": the handler's own failure -N (a downstream's code
	 * passed up, a feature of its own it lacks) */
	if (req->e.name.len > 7 && memcmp(req->e.name.ptr, "status:", 7) == 0)
		return (int)strtol(req->e.name.ptr + 7, NULL, 10);
	resp->echo = req->e;
	return 0;
}

static uint32_t sum_tree(const test_alltypes_Node_t *n)
{
	uint32_t s = n->value;
	for (uint32_t i = 0; i < n->children.count; i++)
		s += sum_tree(&n->children.items[i]);
	return s;
}

static int kitchen_tree(void *self, const test_alltypes_Kitchen_tree_req_t *req,
			test_alltypes_Kitchen_tree_resp_t *resp, thoth_arena_t *arena)
{
	resp->sum = sum_tree(&req->root);
	return 0;
}

static uint64_t poked;

static void kitchen_poke(void *self, const test_alltypes_Kitchen_poke_req_t *req)
{
	poked = req->n;
}

static const test_alltypes_Kitchen_handlers_t kitchen = {
	.sink = kitchen_sink,
	.tree = kitchen_tree,
	.poke = kitchen_poke,
	/* fancy: not implemented */
};

static int lb_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	loop_ctx_t *c = ctx;
	if (len > sizeof c->req)
		return THOTH_E_NO_SPACE;
	*buf = (uint8_t *)c->req;
	return 0;
}

static int lb_serve(loop_ctx_t *c, uint8_t *msg, size_t len, thoth_server_io_t *io)
{
	thoth_arena_t a;
	thoth_arena_init(&a, c->scratch, sizeof c->scratch);
	*io = (thoth_server_io_t){ .out = (uint8_t *)c->resp, .cap = sizeof c->resp,
				   .arena = &a, .features = c->features };
	if (c->table)
		return thoth__server_dispatch_table(&test_alltypes_Kitchen_info, test_alltypes_Kitchen_invoke,
						    &kitchen, NULL, msg, len, io);
	return test_alltypes_Kitchen_dispatch(&kitchen, NULL, msg, len, io);
}

static int lb_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	loop_ctx_t *c = ctx;
	thoth_server_io_t io;
	c->calls++;
	int r = lb_serve(c, req, len, &io);
	if (r)
		return r;
	resp->data = (uint8_t *)c->resp;
	resp->len = io.out_len;
	return 0;
}

static int lb_send(void *ctx, uint8_t *msg, size_t len)
{
	loop_ctx_t *c = ctx;
	thoth_server_io_t io;
	c->sends++;
	int r = lb_serve(c, msg, len, &io);
	assert_int_equal(io.out_len, 0);
	return r;
}

static void lb_release(void *ctx, thoth_msg_t *resp)
{
}

static const thoth_transport_ops_t loopback = {
	.get_buffer = lb_get_buffer, .call = lb_call, .send = lb_send, .release = lb_release,
};

static void test_stub_call_reaches_handler_and_returns_results(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	sink_req_t req;
	test_alltypes_Kitchen_sink_resp_t resp;
	fill_everything(&req.e);
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	assert_int_equal(test_alltypes_Kitchen_sink(&c, &req, &resp, &a), 0);
	assert_everything_equal(&req.e, &resp.echo);
	thoth_client_release(&c);

	test_alltypes_Node_t leaves[2] = { { 3, { NULL, 0 } }, { 4, { NULL, 0 } } };
	test_alltypes_Kitchen_tree_req_t treq = { .root = { 10, { leaves, 2 } } };
	test_alltypes_Kitchen_tree_resp_t tresp;
	assert_int_equal(test_alltypes_Kitchen_tree(&c, &treq, &tresp, &a), 0);
	assert_int_equal(tresp.sum, 17);
}

static void test_application_error_reaches_client_by_code_and_name(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	sink_req_t req;
	test_alltypes_Kitchen_sink_resp_t resp;
	memset(&req, 0, sizeof req);
	req.e.name = thoth_str("fail");
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	assert_int_equal(test_alltypes_Kitchen_sink(&c, &req, &resp, &a), THOTH_E_REMOTE);
	assert_int_equal(c.remote_code, TEST_ALLTYPES_ERR_NOPE);
	assert_int_equal(c.remote_status, THOTH_E_REMOTE);
	assert_string_equal(c.remote_message, "Nope");
}

/* A handler's own return of a schema-skew code is the service's failure:
 * the caller gets THOTH_E_REMOTE (with the code's text), not a code that
 * says "this service predates the method" (it got exactly that code, so
 * thothctl took thothd's NO_FEATURE from a libbpf-less kernel_attach for
 * schema skew).  Both ways of serving; a NULL handler, the dispatcher's
 * own refusal, is still THOTH_E_UNKNOWN_METHOD. */
static void test_a_handlers_own_skew_code_reaches_the_client_as_remote(void **state)
{
	static const int skew[] = { THOTH_E_NO_FEATURE, THOTH_E_UNKNOWN_METHOD, THOTH_E_BAD_VERSION,
				    THOTH_E_UNKNOWN_IFACE };
	for (int table = 0; table < 2; table++) {
		static loop_ctx_t ctx;
		ctx.table = table;
		thoth_client_t c;
		thoth_client_init(&c, &loopback, &ctx, 0);
		for (size_t i = 0; i < sizeof skew / sizeof skew[0]; i++) {
			char name[32];
			snprintf(name, sizeof name, "status:%d", skew[i]);
			sink_req_t req;
			test_alltypes_Kitchen_sink_resp_t resp;
			memset(&req, 0, sizeof req);
			req.e.name = thoth_str(name);
			thoth_arena_t a;
			thoth_arena_init(&a, arena_mem, sizeof arena_mem);
			assert_int_equal(test_alltypes_Kitchen_sink(&c, &req, &resp, &a), THOTH_E_REMOTE);
			assert_int_equal(c.remote_code, 0);
			assert_int_equal(c.remote_status, THOTH_E_REMOTE);
			assert_string_equal(c.remote_message, thoth_strerror(skew[i]));
		}
		/* the dispatcher's own refusal passes: fancy has no handler */
		ctx.features = TEST_ALLTYPES_FEATURE_EXTRA;
		thoth_client_init(&c, &loopback, &ctx, TEST_ALLTYPES_FEATURE_EXTRA);
		test_alltypes_Kitchen_fancy_req_t freq = { 1 };
		test_alltypes_Kitchen_fancy_resp_t fresp;
		thoth_arena_t a;
		thoth_arena_init(&a, arena_mem, sizeof arena_mem);
		assert_int_equal(test_alltypes_Kitchen_fancy(&c, &freq, &fresp, &a), THOTH_E_UNKNOWN_METHOD);
		assert_int_equal(c.remote_status, THOTH_E_UNKNOWN_METHOD);
		ctx.features = 0;
		ctx.table = false;
	}
}

static void test_oneway_is_delivered_without_response(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	test_alltypes_Kitchen_poke_req_t req = { 99 };
	assert_int_equal(test_alltypes_Kitchen_poke(&c, &req), 0);
	assert_int_equal(poked, 99);
	assert_int_equal(ctx.sends, 1);
	assert_int_equal(ctx.calls, 0);
}

static char logged[512];
static int n_logged;

static void capture_log(void *arg, thoth_log_level_t level, const char *component, const char *msg)
{
	if (level == THOTH_LOG_WARN && !strcmp(component, "rpc")) {
		snprintf(logged, sizeof logged, "%s", msg);
		n_logged++;
	}
}

static uint64_t fake_now = 100;

static uint64_t fake_clock(void)
{
	return fake_now;
}

/* A oneway call the service cannot serve -- here a method of a newer
 * schema that this service lacks -- has no answer to carry an error; it
 * was dropped without a word.  The server counts it and logs a warning,
 * at most 8 lines a second (the clock is the test's): 1,100 drops in one
 * second are 8 lines and the count, and the first line of the next second
 * says how many were not logged. */
static void test_a_oneway_call_the_service_cannot_serve_is_logged(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	thoth_method_info_t newer = test_alltypes_Kitchen_poke_info;
	newer.ordinal = 99;                     /* a oneway method added in a later version */
	newer.revision = 0;                     /* no fast paths: the generic encoder */
	test_alltypes_Kitchen_poke_req_t req = { 7 };
	poked = 0;
	n_logged = 0;
	fake_now = 100;
	thoth__rpc_oneway_log_reset(fake_clock);
	thoth_log_set_handler(capture_log, NULL, THOTH_LOG_WARN);
	assert_int_equal(thoth_client_call(&c, &newer, &req, NULL, NULL), 0);
	assert_int_equal(ctx.sends, 1);
	assert_int_equal(poked, 0);
	assert_int_equal(n_logged, 1);
	assert_int_equal(thoth_rpc_oneways_dropped(), 1);
	assert_non_null(strstr(logged, "dropped a oneway call to method 99 of interface"));
	assert_non_null(strstr(logged, "unknown method"));
	/* served ones are neither logged nor counted */
	assert_int_equal(test_alltypes_Kitchen_poke(&c, &req), 0);
	assert_int_equal(poked, 7);
	assert_int_equal(n_logged, 1);
	assert_int_equal(thoth_rpc_oneways_dropped(), 1);
	for (int i = 1; i < 1100; i++)
		assert_int_equal(thoth_client_call(&c, &newer, &req, NULL, NULL), 0);
	assert_int_equal(thoth_rpc_oneways_dropped(), 1100);
	assert_int_equal(n_logged, 8);
	assert_non_null(strstr(logged, "(8 oneway calls dropped so far, 0 of them not logged"));
	fake_now = 101;
	assert_int_equal(thoth_client_call(&c, &newer, &req, NULL, NULL), 0);
	assert_int_equal(n_logged, 9);
	assert_non_null(strstr(logged, "(1101 oneway calls dropped so far, 1092 of them not logged"));
	thoth__rpc_oneway_log_reset(NULL);
	thoth_log_set_handler(NULL, NULL, THOTH_LOG_ERROR);   /* log.c's default */
}

static void test_method_requiring_unnegotiated_feature_fails_before_sending(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	test_alltypes_Kitchen_fancy_req_t req = { 1 };
	test_alltypes_Kitchen_fancy_resp_t resp;
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	assert_int_equal(test_alltypes_Kitchen_fancy(&c, &req, &resp, &a), THOTH_E_NO_FEATURE);
	assert_int_equal(ctx.calls, 0);
	/* negotiated: it is sent, and the server (no handler) answers unknown method */
	ctx.features = TEST_ALLTYPES_FEATURE_EXTRA;
	thoth_client_init(&c, &loopback, &ctx, TEST_ALLTYPES_FEATURE_EXTRA);
	assert_int_equal(test_alltypes_Kitchen_fancy(&c, &req, &resp, &a), THOTH_E_UNKNOWN_METHOD);
	assert_int_equal(c.remote_status, THOTH_E_UNKNOWN_METHOD);
	assert_int_equal(ctx.calls, 1);
}

/* A two-way call with no response struct: THOTH_E_INVAL before anything
 * is sent (it crashed in the decoder once the answer came back). */
static void test_a_two_way_call_without_a_response_fails_before_sending(void **state)
{
	static loop_ctx_t ctx;
	thoth_client_t c;
	thoth_client_init(&c, &loopback, &ctx, 0);
	test_alltypes_Kitchen_tree_req_t req = { 0 };
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	assert_int_equal(test_alltypes_Kitchen_tree(&c, &req, NULL, &a), THOTH_E_INVAL);
	assert_int_equal(ctx.calls, 0);
}

static void test_server_answers_malformed_request_with_error_response(void **state)
{
	static loop_ctx_t ctx;
	sink_req_t req;
	fill_everything(&req.e);
	size_t len;
	assert_int_equal(thoth_method_encode(SINK, false, &req, &(thoth_msg_header_t){ .request_id = 5 },
					     ctx.req, sizeof ctx.req, &len), 0);
	/* point the name string past the body */
	uint8_t *body = (uint8_t *)ctx.req + THOTH_WIRE_HEADER_SIZE;
	uint32_t name_slot = 8 + 8;    /* field 2 after the struct pointer of field 1 */
	thoth_st32(body + name_slot, 0x7ffffff8u);
	thoth_server_io_t io;
	assert_int_equal(lb_serve(&ctx, (uint8_t *)ctx.req, len, &io), 0);
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)ctx.resp, io.out_len, &h), 0);
	assert_true(h.flags & THOTH_MSG_ERROR);
	assert_int_equal(h.request_id, 5);
	thoth_decoder_t d;
	thoth_decoder_init(&d, (uint8_t *)ctx.resp + THOTH_WIRE_HEADER_SIZE, h.body_len, NULL);
	uint32_t code;
	int32_t status;
	thoth_str_t msg;
	assert_int_equal(thoth_wire_decode_error(&d, &code, &status, &msg), 0);
	assert_int_equal(status, THOTH_E_BAD_LENGTH);
}

/* ---- contract check -------------------------------------------------------- */

/* ---- the RPC layer's fast paths refuse what its full checks refuse ---- */

/* A transport whose call answers with the bytes in `answer` (the request is
 * dropped): the peer's reply, hostile or not. */
static uint64_t answer[64];
static size_t answer_len;
static uint64_t req_space[512];

static int rp_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	if (len > sizeof req_space)
		return THOTH_E_NO_SPACE;
	*buf = (uint8_t *)req_space;
	return 0;
}

static int rp_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	resp->data = (const uint8_t *)answer;
	resp->len = answer_len;
	resp->handle = NULL;
	return 0;
}

static void rp_release(void *ctx, thoth_msg_t *resp)
{
}

static const thoth_transport_ops_t replay = {
	.get_buffer = rp_get_buffer, .call = rp_call, .release = rp_release,
};

/* What thoth_client_commit must answer for the reply MSG of LEN bytes to
 * request ID of method M, by the rules (docs/WIRE.md, include/thoth/rpc.h)
 * rather than by the code under test: the header's own checks, then a
 * response to this method and request, then the schema major, then an
 * error frame or the body's verdict. */
static int expected_verdict(const thoth_method_info_t *m, const uint8_t *msg, size_t len,
			    uint32_t id, void *out)
{
	thoth_msg_header_t h;
	int r = thoth_wire_header_decode(msg, len, &h);
	if (r)
		return r;
	if (!(h.flags & THOTH_MSG_RESPONSE) || h.interface_id != m->interface_id ||
	    h.method != m->ordinal || h.request_id != id)
		return THOTH_E_PROTOCOL;
	if (h.schema_major != m->major)
		return THOTH_E_BAD_VERSION;
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	thoth_decoder_t d;
	thoth_decoder_init(&d, msg + THOTH_WIRE_HEADER_SIZE, h.body_len, &a);
	if (h.flags & THOTH_MSG_ERROR) {
		uint32_t code;
		int32_t status;
		thoth_str_t text;
		r = thoth_wire_decode_error(&d, &code, &status, &text);
		return r ? r : THOTH_E_REMOTE;
	}
	return m->resp_decode(&d, out);
}

static int commit_with_answer(const thoth_method_info_t *m, const void *req, void *resp)
{
	thoth_client_t c;
	thoth_call_t call;
	thoth_client_init(&c, &replay, NULL, 0);
	int r = thoth_client_begin(&c, m, req, &call);
	assert_int_equal(r, 0);
	assert_int_equal(call.request_id, 1);
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	r = thoth_client_commit(&c, &call, resp, &a);
	thoth_client_release(&c);
	return r;
}

/* thoth_client_commit reads an expected answer's header in four words and
 * decodes its body with the method's own decoder; every other answer goes
 * through the full header checks.  Each byte of a valid answer (tree's
 * u32 sum) changed in several ways, and each length change: the verdict
 * must be the rules' one, and a value only when they accept. */
static void test_commit_fast_path_refuses_what_the_full_checks_refuse(void **state)
{
	const thoth_method_info_t *m = &test_alltypes_Kitchen_tree_info;
	test_alltypes_Kitchen_tree_req_t treq = { .root = { 1, { NULL, 0 } } };
	test_alltypes_Kitchen_tree_resp_t good = { .sum = 0x12345678u }, got, want;
	thoth_msg_header_t meta = { .request_id = 1, .trace_id = 7 };
	uint64_t valid[64];
	size_t vlen;
	assert_int_equal(test_alltypes_Kitchen_tree_resp_encode_msg(valid, sizeof valid, &meta, &good, &vlen), 0);
	memcpy(answer, valid, vlen);
	answer_len = vlen;
	assert_int_equal(commit_with_answer(m, &treq, &got), 0);
	assert_int_equal(got.sum, good.sum);

	static const uint8_t flips[] = { 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff };
	unsigned accepted = 0, refused = 0;
	for (size_t at = 0; at < vlen; at++)
		for (size_t k = 0; k < sizeof flips; k++) {
			memcpy(answer, valid, vlen);
			((uint8_t *)answer)[at] ^= flips[k];
			answer_len = vlen;
			memset(&want, 0xa5, sizeof want);
			int e = expected_verdict(m, (const uint8_t *)answer, vlen, 1, &want);
			memset(&got, 0x5a, sizeof got);
			int r = commit_with_answer(m, &treq, &got);
			if (r != e)
				fail_msg("byte %zu ^ 0x%02x: commit says %d, the rules %d", at, flips[k], r, e);
			if (!r) {
				assert_int_equal(got.sum, want.sum);
				accepted++;
			} else {
				refused++;
			}
		}
	/* Lengths: shorter and longer than the header says, and below a header. */
	static const int deltas[] = { -1, -8, 1, 8, -(int)THOTH_WIRE_HEADER_SIZE };
	for (size_t k = 0; k < sizeof deltas / sizeof deltas[0]; k++) {
		memset(answer, 0, sizeof answer);
		memcpy(answer, valid, vlen);
		answer_len = (size_t)((int)vlen + deltas[k]);
		int e = expected_verdict(m, (const uint8_t *)answer, answer_len, 1, &want);
		assert_int_not_equal(e, 0);
		assert_int_equal(commit_with_answer(m, &treq, &got), e);
	}
	/* The minor version is anyone's (accepted), an error frame is an error. */
	assert_true(accepted > 0 && refused > 0);
	memcpy(answer, valid, vlen);
	((uint8_t *)answer)[5] = 9;
	answer_len = vlen;
	assert_int_equal(commit_with_answer(m, &treq, &got), 0);
	assert_int_equal(got.sum, good.sum);
}

/* The generated whole-message encoders and body decoders that the RPC
 * layer calls (thoth_method_info_t's *_whole / *_body) against the
 * builder and decoder functions: the same bytes, and the same verdict on
 * every corruption of a body. */
static void check_whole_and_body(const thoth_method_info_t *m, bool response, const void *value,
				 void *out_a, void *out_b)
{
	static uint64_t a[1 << 12], b[1 << 12];
	thoth_msg_header_t meta = { .features = 5, .trace_id = 0x1122334455667788ull, .request_id = 42 };
	size_t la = 0, lb = 0;
	int (*whole)(void *, size_t, const thoth_msg_header_t *, const void *, size_t *) =
		response ? m->resp_encode_whole : m->req_encode_whole;
	int (*body)(const uint8_t *, uint32_t, thoth_arena_t *, void *) =
		response ? m->resp_decode_body : m->req_decode_body;
	int (*dec)(thoth_decoder_t *, void *) = response ? m->resp_decode : m->req_decode;
	assert_non_null(whole);
	assert_non_null(body);
	memset(a, 0x77, sizeof a);
	memset(b, 0x77, sizeof b);
	assert_int_equal(whole(a, sizeof a, &meta, value, &la), 0);
	assert_int_equal(thoth_method_encode(m, response, value, &meta, b, sizeof b, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);
	/* Too small a buffer: the same refusal. */
	assert_int_equal(whole(a, la - 8, &meta, value, &la), THOTH_E_NO_SPACE);

	uint8_t *msg = (uint8_t *)a;
	uint32_t blen = (uint32_t)(lb - THOTH_WIRE_HEADER_SIZE);
	for (uint32_t at = 0; at < blen; at++)
		for (unsigned flip = 1; flip < 256; flip <<= 1) {
			memcpy(a, b, lb);
			msg[THOTH_WIRE_HEADER_SIZE + at] ^= (uint8_t)flip;
			thoth_arena_t aa, ab;
			thoth_arena_init(&aa, arena_mem, sizeof arena_mem / 2);
			thoth_arena_init(&ab, arena_mem + sizeof arena_mem / 16, sizeof arena_mem / 2);
			int ra = body(msg + THOTH_WIRE_HEADER_SIZE, blen, &aa, out_a);
			thoth_decoder_t d;
			thoth_decoder_init(&d, msg + THOTH_WIRE_HEADER_SIZE, blen, &ab);
			int rb = dec(&d, out_b);
			if (ra != rb)
				fail_msg("%s %s byte %u ^ 0x%02x: body decoder %d, decoder %d", m->name,
					 response ? "response" : "request", at, flip, ra, rb);
		}
}

static void test_whole_message_encoders_and_body_decoders_match_the_builder(void **state)
{
	sink_req_t req, o1, o2;
	fill_everything(&req.e);
	check_whole_and_body(SINK, false, &req, &o1, &o2);
	test_alltypes_Kitchen_sink_resp_t resp = { .echo = req.e }, p1, p2;
	check_whole_and_body(SINK, true, &resp, &p1, &p2);
	test_alltypes_Node_t leaves[2] = { { 3, { NULL, 0 } }, { 4, { NULL, 0 } } };
	test_alltypes_Kitchen_tree_req_t treq = { .root = { 10, { leaves, 2 } } }, t1, t2;
	check_whole_and_body(&test_alltypes_Kitchen_tree_info, false, &treq, &t1, &t2);
	test_alltypes_Kitchen_tree_resp_t tresp = { .sum = 17 }, s1, s2;
	check_whole_and_body(&test_alltypes_Kitchen_tree_info, true, &tresp, &s1, &s2);
	test_alltypes_Kitchen_poke_req_t preq = { 99 }, q1, q2;
	check_whole_and_body(&test_alltypes_Kitchen_poke_info, false, &preq, &q1, &q2);
	assert_null(test_alltypes_Kitchen_poke_info.resp_encode_whole);
}

/* Stubs from an older thothc have no whole-message encoders or body
 * decoders (revision 0, the members absent): the RPC layer then takes
 * the builder path, on both sides, with the same results. */
static thoth_method_info_t old_methods[4];
static const thoth_method_info_t *old_table[4];
static thoth_interface_info_t old_iface;

static const thoth_method_info_t *as_old(const thoth_method_info_t *m)
{
	for (size_t i = 0; i < test_alltypes_Kitchen_info.n_methods; i++)
		if (test_alltypes_Kitchen_info.methods[i] == m)
			return &old_methods[i];
	fail_msg("%s is not a Kitchen method", m->name);
	return NULL;
}

static int old_serve(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	loop_ctx_t *c = ctx;
	thoth_arena_t a;
	thoth_arena_init(&a, c->scratch, sizeof c->scratch);
	thoth_server_io_t io = { .out = (uint8_t *)c->resp, .cap = sizeof c->resp, .arena = &a };
	int r = thoth_server_dispatch(&old_iface, test_alltypes_Kitchen_invoke, &kitchen, NULL, req, len, &io);
	if (r)
		return r;
	resp->data = (uint8_t *)c->resp;
	resp->len = io.out_len;
	return 0;
}

static const thoth_transport_ops_t old_loopback = {
	.get_buffer = lb_get_buffer, .call = old_serve, .release = lb_release,
};

/* What an older program's method info has past `idempotent`: not these
 * members at all, so whatever follows it in its data.  The library must
 * not call them (revision 0). */
static int trap_whole(void *buf, size_t cap, const thoth_msg_header_t *meta, const void *v, size_t *len)
{
	(void)buf, (void)cap, (void)meta, (void)v, (void)len;
	fail_msg("a revision-0 method info's whole-message encoder was called");
	return THOTH_E_INVAL;
}

static int trap_body(const uint8_t *body, uint32_t len, thoth_arena_t *arena, void *v)
{
	(void)body, (void)len, (void)arena, (void)v;
	fail_msg("a revision-0 method info's body decoder was called");
	return THOTH_E_INVAL;
}

static int trap_dispatch(const thoth_interface_info_t *iface, thoth_invoke_fn invoke, const void *handlers,
			 void *self, const uint8_t *msg, size_t len, thoth_server_io_t *io)
{
	(void)iface, (void)invoke, (void)handlers, (void)self, (void)msg, (void)len, (void)io;
	fail_msg("a revision-0 interface info's dispatcher was called");
	return THOTH_E_INVAL;
}

static void test_stubs_without_whole_encoders_take_the_builder_path(void **state)
{
	assert_true(test_alltypes_Kitchen_info.n_methods <= 4);
	for (size_t i = 0; i < test_alltypes_Kitchen_info.n_methods; i++) {
		assert_int_equal(test_alltypes_Kitchen_info.methods[i]->revision, THOTH_METHOD_INFO_REV);
		old_methods[i] = *test_alltypes_Kitchen_info.methods[i];
		old_methods[i].revision = 0;
		old_methods[i].req_encode_whole = trap_whole;
		old_methods[i].req_decode_body = trap_body;
		old_methods[i].resp_encode_whole = trap_whole;
		old_methods[i].resp_decode_body = trap_body;
		old_table[i] = &old_methods[i];
	}
	assert_int_equal(test_alltypes_Kitchen_info.revision, THOTH_INTERFACE_INFO_REV);
	old_iface = test_alltypes_Kitchen_info;
	old_iface.methods = old_table;
	/* Revision 0: `dispatch` is not there (was padding or past the
	 * struct), whatever it holds; a trap shows it is never read. */
	old_iface.revision = 0;
	old_iface.dispatch = trap_dispatch;

	static loop_ctx_t ctx;
	thoth_arena_t a;
	sink_req_t req;
	test_alltypes_Kitchen_sink_resp_t resp;
	fill_everything(&req.e);
	/* Old client, old server; old client, new server; new client, old server. */
	for (int k = 0; k < 3; k++) {
		thoth_client_t c;
		thoth_client_init(&c, k == 1 ? &loopback : &old_loopback, &ctx, 0);
		const thoth_method_info_t *sink = k == 2 ? SINK : as_old(SINK);
		thoth_arena_init(&a, arena_mem, sizeof arena_mem);
		memset(&resp, 0, sizeof resp);
		assert_int_equal(thoth_client_call(&c, sink, &req, &resp, &a), 0);
		assert_everything_equal(&req.e, &resp.echo);
		test_alltypes_Node_t leaves[2] = { { 3, { NULL, 0 } }, { 4, { NULL, 0 } } };
		test_alltypes_Kitchen_tree_req_t treq = { .root = { 10, { leaves, 2 } } };
		test_alltypes_Kitchen_tree_resp_t tresp;
		const thoth_method_info_t *tree = k == 2 ? &test_alltypes_Kitchen_tree_info
							 : as_old(&test_alltypes_Kitchen_tree_info);
		assert_int_equal(thoth_client_call(&c, tree, &treq, &tresp, &a), 0);
		assert_int_equal(tresp.sum, 17);
		/* An application error comes back the same way. */
		sink_req_t bad;
		memset(&bad, 0, sizeof bad);
		bad.e.name = thoth_str("fail");
		assert_int_equal(thoth_client_call(&c, sink, &bad, &resp, &a), THOTH_E_REMOTE);
		assert_int_equal(c.remote_code, TEST_ALLTYPES_ERR_NOPE);
		thoth_client_release(&c);
	}
}

static void test_contract_selftest_passes_for_generated_code(void **state)
{
	char why[256];
	assert_int_equal(thoth_contract_selftest(&test_alltypes_Kitchen_info, why, sizeof why), 0);
}

static void test_contract_verify_accepts_own_claim_and_names_each_mismatch(void **state)
{
	const thoth_interface_info_t *k = &test_alltypes_Kitchen_info;
	thoth_contract_claim_t claim;
	char why[256];
	thoth_contract_claim_init(&claim, k, TEST_ALLTYPES_FEATURE_EXTRA);
	assert_int_equal(thoth_contract_verify(k, &claim, why, sizeof why), 0);

	claim.minor = 2;
	assert_int_equal(thoth_contract_verify(k, &claim, why, sizeof why), THOTH_E_CONTRACT);
	assert_string_equal(why, "claims version 2.2, compiled schema is 2.1");

	thoth_contract_claim_init(&claim, k, 0);
	claim.schema_hash ^= 1;
	assert_int_equal(thoth_contract_verify(k, &claim, why, sizeof why), THOTH_E_CONTRACT);
	assert_non_null(strstr(why, "schema hash"));

	thoth_contract_claim_init(&claim, k, 1ull << 40);
	assert_int_equal(thoth_contract_verify(k, &claim, why, sizeof why), THOTH_E_CONTRACT);
	assert_non_null(strstr(why, "feature bits 0x10000000000"));

	thoth_contract_claim_init(&claim, k, 0);
	claim.interface = "Pantry";
	assert_int_equal(thoth_contract_verify(k, &claim, why, sizeof why), THOTH_E_CONTRACT);
	assert_string_equal(why, "claims interface test.alltypes.Pantry, compiled schema is test.alltypes.Kitchen");
}

static void test_contract_compatible_requires_same_major_and_same_hash_at_same_version(void **state)
{
	thoth_contract_claim_t s, c;
	char why[256];
	thoth_contract_claim_init(&s, &test_alltypes_Kitchen_info, 0);
	c = s;
	assert_int_equal(thoth_contract_compatible(&s, &c, why, sizeof why), 0);
	c.minor = 0;
	c.schema_hash = 1;                    /* other minor: hashes may differ */
	assert_int_equal(thoth_contract_compatible(&s, &c, why, sizeof why), 0);
	c = s;
	c.major = 3;
	assert_int_equal(thoth_contract_compatible(&s, &c, why, sizeof why), THOTH_E_BAD_VERSION);
	assert_string_equal(why, "service speaks Kitchen 2.1, client speaks 3.1: major versions differ");
	c = s;
	c.schema_hash ^= 1;
	assert_int_equal(thoth_contract_compatible(&s, &c, why, sizeof why), THOTH_E_CONTRACT);
	assert_non_null(strstr(why, "without a version bump"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_roundtrips),
		cmocka_unit_test(test_default_value_roundtrips_and_is_small),
		cmocka_unit_test(test_optional_present_zero_differs_from_absent),
		cmocka_unit_test(test_decoded_strings_and_bytes_point_into_the_message),
		cmocka_unit_test(test_large_bytes_field_is_not_copied),
		cmocka_unit_test(test_reserved_bytes_are_built_in_place),
		cmocka_unit_test(test_long_string_roundtrips),
		cmocka_unit_test(test_encoding_a_string_with_nul_is_refused),
		cmocka_unit_test(test_buffer_too_small_is_no_space),
		cmocka_unit_test(test_arena_too_small_is_no_space),
		cmocka_unit_test(test_strict_enum_rejects_unknown_value_flexible_accepts),
		cmocka_unit_test(test_bool_other_than_0_or_1_is_rejected),
		cmocka_unit_test(test_presence_other_than_0_or_1_is_rejected),
		cmocka_unit_test(test_nesting_deeper_than_limit_is_refused),
		cmocka_unit_test(test_every_truncation_fails_cleanly),
		cmocka_unit_test(test_every_byte_corruption_decodes_or_fails_cleanly),
		cmocka_unit_test(test_wrong_method_or_interface_is_reported),
		cmocka_unit_test(test_stub_call_reaches_handler_and_returns_results),
		cmocka_unit_test(test_application_error_reaches_client_by_code_and_name),
		cmocka_unit_test(test_a_handlers_own_skew_code_reaches_the_client_as_remote),
		cmocka_unit_test(test_oneway_is_delivered_without_response),
		cmocka_unit_test(test_method_requiring_unnegotiated_feature_fails_before_sending),
		cmocka_unit_test(test_a_oneway_call_the_service_cannot_serve_is_logged),
		cmocka_unit_test(test_a_two_way_call_without_a_response_fails_before_sending),
		cmocka_unit_test(test_server_answers_malformed_request_with_error_response),
		cmocka_unit_test(test_commit_fast_path_refuses_what_the_full_checks_refuse),
		cmocka_unit_test(test_whole_message_encoders_and_body_decoders_match_the_builder),
		cmocka_unit_test(test_stubs_without_whole_encoders_take_the_builder_path),
		cmocka_unit_test(test_contract_selftest_passes_for_generated_code),
		cmocka_unit_test(test_contract_verify_accepts_own_claim_and_names_each_mismatch),
		cmocka_unit_test(test_contract_compatible_requires_same_major_and_same_hash_at_same_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
