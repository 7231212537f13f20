/*
 * test_dispatch_fast.c - thoth_server_dispatch's plain-request test
 * (kernel/ipc/rpc.c, plain_request: a request with flags exactly REQUEST,
 * our interface and major, the body the rest of the message, read straight
 * into the answer's header) against the full header decode and checks it
 * stands in for (the same source built without it: rpc_full_way.c).
 * Every request of test.flat's Flat interface, valid and with every header
 * byte mutated, cut short or padded, is dispatched both ways with the same
 * garbage in the answer buffers: the return codes, the answers' lengths
 * and bytes (past the answer too), and what the handlers were called with
 * must be the same.
 *
 * Since stop 34 thoth_server_dispatch hands a call to the interface's own
 * dispatcher, emitted by thothc (thoth_interface_info_t.dispatch: a switch
 * on the ordinal, the method's decoder, handler, size and encoder inlined),
 * which serves plain requests itself and gives the rest to the table-driven
 * way (thoth__server_dispatch_table, itself with the plain-request test):
 * all three are compared here, with and without handlers.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alltypes.thoth.h"
#include "big.thoth.h"
#include "flat.thoth.h"
#include "rpc_full_way.h"

typedef int (*dispatch_fn)(const thoth_interface_info_t *iface, thoth_invoke_fn invoke, const void *handlers,
			   void *self, const uint8_t *msg, size_t len, thoth_server_io_t *io);

/* What the handlers saw: calls, and a hash of every field they were given. */
typedef struct seen {
	unsigned calls;
	uint64_t hash;
} seen_t;

static void mix(seen_t *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		s->hash = (s->hash ^ b[i]) * 0x100000001b3ull;
	s->hash = (s->hash ^ n) * 0x100000001b3ull;
}

static uint8_t ack[80];

static int on_put(void *self, const test_flat_Flat_put_req_t *req, test_flat_Flat_put_resp_t *resp,
		  thoth_arena_t *arena)
{
	seen_t *s = self;
	s->calls++;
	mix(s, req->data.ptr, req->data.len);
	if (req->data.len == 5)
		return 7;                       /* an application error */
	if (req->data.len == 6)
		return THOTH_E_NO_SPACE;        /* a library one */
	size_t n = req->data.len < sizeof ack ? req->data.len : sizeof ack;
	for (size_t i = 0; i < n; i++)
		ack[i] = (uint8_t)(req->data.ptr[i] ^ 0x5a);
	resp->ack.ptr = ack;
	resp->ack.len = n;
	return 0;
}

static int on_mixed(void *self, const test_flat_Flat_mixed_req_t *req, test_flat_Flat_mixed_resp_t *resp,
		    thoth_arena_t *arena)
{
	seen_t *s = self;
	s->calls++;
	uint64_t v[] = { req->b, req->x, (uint64_t)req->mode, req->y, req->z, (uint64_t)req->w, (uint64_t)req->loose };
	mix(s, v, sizeof v);
	mix(s, req->name.ptr, req->name.len);
	mix(s, req->blob.ptr, req->blob.len);
	resp->n = req->x + req->y + req->z;
	return 0;
}

static int on_opts(void *self, const test_flat_Flat_opts_req_t *req, test_flat_Flat_opts_resp_t *resp,
		   thoth_arena_t *arena)
{
	seen_t *s = self;
	s->calls++;
	uint64_t v[] = { req->has_n, req->n, req->has_blob, req->has_s, req->has_m, (uint64_t)req->m };
	mix(s, v, sizeof v);
	mix(s, req->tail.ptr, req->tail.len);
	resp->has_back = req->tail.len > 0;
	resp->back = req->tail;
	return 0;
}

static void on_note(void *self, const test_flat_Flat_note_req_t *req)
{
	seen_t *s = self;
	s->calls++;
	mix(s, req->text.ptr, req->text.len);
	mix(s, req->data.ptr, req->data.len);
}

static const test_flat_Flat_handlers_t handlers = {
	.put = on_put, .mixed = on_mixed, .opts = on_opts, .note = on_note,
};
/* No handler for put or opts: answered THOTH_E_UNKNOWN_METHOD, after the
 * request decoded (a bad body is still refused as such). */
static const test_flat_Flat_handlers_t some_handlers = { .mixed = on_mixed, .note = on_note };
static const test_flat_Flat_handlers_t *run_handlers = &handlers;

enum { OUT = 2048 };

/* One side's run: the answer buffer (io->out, or the transport's through
 * get_out), the arena, what its handlers saw. */
typedef struct side {
	uint64_t out[OUT / 8], given[OUT / 8], arena[OUT / 8];
	size_t given_len;
	seen_t seen;
} side_t;

static side_t one, two;

static int get_out(void *ctx, size_t len, uint8_t **buf)
{
	side_t *s = ctx;
	if (len > sizeof s->given)
		return THOTH_E_NO_SPACE;
	s->given_len = len;
	*buf = (uint8_t *)s->given;
	return 0;
}

static void garbage(side_t *s)
{
	for (size_t i = 0; i < sizeof s->out; i++) {
		((uint8_t *)s->out)[i] = (uint8_t)(i * 37 + 11);
		((uint8_t *)s->given)[i] = (uint8_t)(i * 53 + 7);
		((uint8_t *)s->arena)[i] = (uint8_t)(i * 29 + 3);
	}
	s->given_len = 0;
	memset(&s->seen, 0, sizeof s->seen);
}

static unsigned n_checked, n_plain;

/* Does MSG take the plain way?  The rule, written out independently, to
 * show both ways are covered. */
static bool plain(const uint8_t *msg, size_t len)
{
	if (len < THOTH_WIRE_HEADER_SIZE)
		return false;
	uint32_t body = thoth_le32(msg + 36);
	return thoth_le32(msg) == THOTH_WIRE_MAGIC && msg[4] == test_flat_Flat_info.major &&
	       thoth_le16(msg + 6) == THOTH_MSG_REQUEST && thoth_le32(msg + 8) == test_flat_Flat_info.id &&
	       body == len - THOTH_WIRE_HEADER_SIZE && body % 8 == 0;
}

static int run(dispatch_fn f, side_t *s, const uint8_t *msg, size_t len, uint64_t features, bool transport,
	       size_t *out_len)
{
	garbage(s);
	thoth_arena_t a;
	thoth_arena_init(&a, s->arena, sizeof s->arena);
	thoth_server_io_t io = { .out = (uint8_t *)s->out, .cap = sizeof s->out, .out_len = 99, .arena = &a,
				 .features = features, .get_out = transport ? get_out : NULL, .out_ctx = s };
	int r = f(&test_flat_Flat_info, test_flat_Flat_invoke, run_handlers, &s->seen, msg, len, &io);
	*out_len = io.out_len;
	return r;
}

/* Dispatch MSG the three ways (the interface's dispatcher through
 * thoth_server_dispatch, the table-driven way, the full way), with and
 * without a transport buffer, with two feature sets and two handler sets;
 * everything observable must be the same. */
static void same(const uint8_t *msg, size_t len)
{
	static const uint64_t features[] = { 0, ~0ull };
	static const dispatch_fn ways[] = { thoth_server_dispatch, thoth__server_dispatch_table };
	static const char *const names[] = { "the interface's dispatcher", "the table-driven way" };
	for (int hs = 0; hs < 2; hs++) {
		run_handlers = hs ? &some_handlers : &handlers;
		for (int t = 0; t < 2; t++) {
			for (size_t fi = 0; fi < 2; fi++) {
				for (int w = 0; w < 2; w++) {
					size_t l1, l2;
					int r1 = run(ways[w], &one, msg, len, features[fi], t, &l1);
					int r2 = run(thoth_full_server_dispatch, &two, msg, len, features[fi], t, &l2);
					if (r1 != r2 || l1 != l2 || one.given_len != two.given_len ||
					    memcmp(one.out, two.out, sizeof one.out) ||
					    memcmp(one.given, two.given, sizeof one.given) ||
					    one.seen.calls != two.seen.calls || one.seen.hash != two.seen.hash)
						fail_msg("len %zu (header %02x %02x %02x %02x flags %04x body %u), transport %d, "
							 "features %d, handlers %d: %s %d / %zu bytes / %u calls, the full way "
							 "%d / %zu bytes / %u calls",
							 len, msg[0], msg[4], msg[5], msg[8], len >= 8 ? thoth_le16(msg + 6) : 0,
							 len >= 40 ? thoth_le32(msg + 36) : 0, t, (int)fi, hs, names[w], r1, l1,
							 one.seen.calls, r2, l2, two.seen.calls);
					n_checked++;
				}
			}
		}
	}
	run_handlers = &handlers;
	n_plain += plain(msg, len);
}

/* MSG as is, every header byte changed four ways, cut short and padded. */
static void variants(const uint8_t *msg, size_t len)
{
	static uint8_t m[OUT] __attribute__((aligned(8)));
	assert_true(len + 16 <= sizeof m);
	memcpy(m, msg, len);
	same(m, len);
	for (size_t pos = 0; pos < THOTH_WIRE_HEADER_SIZE; pos++) {
		uint8_t b = msg[pos];
		const uint8_t vals[] = { (uint8_t)(b ^ 1), (uint8_t)(b ^ 0x80), 0, 0xff, (uint8_t)(b + 1), (uint8_t)(b ^ 4) };
		for (size_t v = 0; v < sizeof vals; v++) {
			m[pos] = vals[v];
			same(m, len);
		}
		m[pos] = b;
	}
	/* Every valid flag word and a few invalid ones. */
	for (uint16_t f = 0; f < 20; f++) {
		thoth_st16(m + 6, f);
		same(m, len);
	}
	thoth_st16(m + 6, thoth_le16(msg + 6));
	/* The length against body_len. */
	memset(m + len, 0, 16);
	const size_t lens[] = { 0, 1, 39, 40, len - 8, len - 1, len + 1, len + 8, len + 16 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
		if (lens[i] <= len + 16)
			same(m, lens[i]);
	const uint32_t body = thoth_le32(msg + 36);
	const uint32_t bodies[] = { body + 8, body - 8, body + 1, THOTH_WIRE_MAX_BODY + 8, UINT32_MAX };
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		thoth_st32(m + 36, bodies[i]);
		same(m, len);
		same(m, THOTH_WIRE_HEADER_SIZE + (size_t)bodies[i] <= len + 16 ? THOTH_WIRE_HEADER_SIZE + bodies[i] : len);
	}
}

static void encode_and_check(const thoth_method_info_t *mi, const void *req)
{
	static uint64_t buf[OUT / 8];
	const thoth_msg_header_t meta = { .features = 0x5, .trace_id = 0x1122334455667788ull, .request_id = 0x77 };
	size_t len;
	assert_int_equal(thoth_method_encode(mi, false, req, &meta, buf, sizeof buf, &len), 0);
	variants((const uint8_t *)buf, len);
}

static void test_dispatch_plain_requests_match_the_full_way(void **state)
{
	static uint8_t payload[300];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	const size_t lens[] = { 0, 1, 5, 6, 8, 63, 64, 65, 200 };
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		test_flat_Flat_put_req_t rq = { .data = { .ptr = payload, .len = lens[i] } };
		encode_and_check(&test_flat_Flat_put_info, &rq);
	}
	test_flat_Flat_mixed_req_t mx = { .b = true, .x = 3, .mode = TEST_FLAT_MODE_ON, .y = 700,
					  .name = thoth_str("name"), .z = 123456,
					  .blob = { .ptr = payload, .len = 17 }, .w = -5, .loose = TEST_FLAT_LOOSE_B };
	encode_and_check(&test_flat_Flat_mixed_info, &mx);
	test_flat_Flat_opts_req_t op = { .has_n = true, .n = 9, .has_s = true, .s = thoth_str("s"),
					 .tail = { .ptr = payload, .len = 30 } };
	encode_and_check(&test_flat_Flat_opts_info, &op);
	test_flat_Flat_note_req_t nt = { .text = thoth_str("oneway"), .data = { .ptr = payload, .len = 9 } };
	encode_and_check(&test_flat_Flat_note_info, &nt);
	/* Both ways covered, many times over. */
	assert_true(n_plain >= 12);
	assert_true(n_checked / 16 - n_plain >= 1000);
	print_message("dispatched %u times both ways, %u messages plain requests\n", n_checked, n_plain);
}

/*
 * The feature gate: Flat has no method that requires a feature, so a fast
 * path that ignored the request's features would pass everything above.
 * Kitchen.fancy requires `extra`: dispatched both ways with the request's
 * and the channel's features each in {none, extra, another bit, all}, it
 * runs exactly when both carry extra, and both ways answer the same bytes.
 */
static int on_fancy(void *self, const test_alltypes_Kitchen_fancy_req_t *req, test_alltypes_Kitchen_fancy_resp_t *resp,
		    thoth_arena_t *arena)
{
	(void)arena;
	(*(unsigned *)self)++;
	resp->m = req->n + 1;
	return 0;
}

static void test_the_feature_gate_is_the_same_both_ways(void **state)
{
	(void)state;
	static const test_alltypes_Kitchen_handlers_t kh = { .fancy = on_fancy };
	const uint64_t fs[] = { 0, TEST_ALLTYPES_FEATURE_EXTRA, 1ull << 3, ~0ull };
	unsigned plain_seen = 0;
	for (size_t i = 0; i < 4; i++) {
		uint64_t buf[16];
		size_t len;
		test_alltypes_Kitchen_fancy_req_t rq = { .n = 41 };
		thoth_msg_header_t meta = { .request_id = 9, .trace_id = 5, .features = fs[i] };
		assert_int_equal(thoth_method_encode(&test_alltypes_Kitchen_fancy_info, false, &rq, &meta, buf,
						     sizeof buf, &len), 0);
		plain_seen += thoth_le16((const uint8_t *)buf + 6) == THOTH_MSG_REQUEST;
		for (size_t j = 0; j < 8; j++) {
			dispatch_fn way = j < 4 ? thoth_server_dispatch : thoth__server_dispatch_table;
			uint64_t out1[32], out2[32], ar1[64], ar2[64];
			unsigned calls1 = 0, calls2 = 0;
			memset(out1, 0x5a, sizeof out1);
			memset(out2, 0x5a, sizeof out2);
			thoth_arena_t a1, a2;
			thoth_arena_init(&a1, ar1, sizeof ar1);
			thoth_arena_init(&a2, ar2, sizeof ar2);
			thoth_server_io_t io1 = { .out = (uint8_t *)out1, .cap = sizeof out1, .arena = &a1, .features = fs[j % 4] };
			thoth_server_io_t io2 = { .out = (uint8_t *)out2, .cap = sizeof out2, .arena = &a2, .features = fs[j % 4] };
			int r1 = way(&test_alltypes_Kitchen_info, test_alltypes_Kitchen_invoke, &kh,
				     &calls1, (const uint8_t *)buf, len, &io1);
			int r2 = thoth_full_server_dispatch(&test_alltypes_Kitchen_info, test_alltypes_Kitchen_invoke, &kh,
							    &calls2, (const uint8_t *)buf, len, &io2);
			bool both = fs[i] & fs[j % 4] & TEST_ALLTYPES_FEATURE_EXTRA;
			if (r1 != r2 || io1.out_len != io2.out_len || memcmp(out1, out2, sizeof out1) || calls1 != calls2 ||
			    calls1 != (both ? 1u : 0u))
				fail_msg("request features %#llx, channel %#llx: %s %d / %zu bytes / %u calls, "
					 "the full way %d / %zu bytes / %u calls",
					 (unsigned long long)fs[i], (unsigned long long)fs[j % 4],
					 j < 4 ? "the interface's dispatcher" : "the table-driven way", r1, io1.out_len, calls1, r2,
					 io2.out_len, calls2);
		}
	}
	assert_int_equal(plain_seen, 4);        /* every one took the plain way */
}

/*
 * The interface's dispatcher serves only calls made with its own interface
 * info and its own invoke: a transport handed another invoke (a wrapper
 * that counts, as a test or a shim would) or a copy of the info (as
 * test_codec's "old stubs" are) must see that invoke run and the copy's
 * method table used, as the table-driven way does.  A dispatcher that
 * skipped either check would call the handler straight and pass every
 * test above.
 */
static unsigned wrapped;

static int counting_invoke(const void *h, void *self, const thoth_method_info_t *m, const void *req, void *resp,
			   thoth_arena_t *arena)
{
	wrapped++;
	return test_flat_Flat_invoke(h, self, m, req, resp, arena);
}

static int trap_body(const uint8_t *body, uint32_t len, thoth_arena_t *arena, void *v)
{
	(void)body, (void)len, (void)arena, (void)v;
	wrapped += 100;
	return THOTH_E_INVAL;
}

static void test_another_invoke_or_a_copied_info_takes_the_table_way(void **state)
{
	(void)state;
	assert_int_equal(test_flat_Flat_info.revision, THOTH_INTERFACE_INFO_REV);
	assert_non_null(test_flat_Flat_info.dispatch);
	static uint64_t enc[32], out[64], arena_mem[64];
	static const uint8_t payload[8] = "payload";
	test_flat_Flat_put_req_t rq = { .data = { .ptr = payload, .len = sizeof payload } };
	thoth_msg_header_t meta = { .request_id = 3 };
	size_t len;
	assert_int_equal(thoth_method_encode(&test_flat_Flat_put_info, false, &rq, &meta, enc, sizeof enc, &len), 0);
	seen_t seen = { 0 };
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
	wrapped = 0;
	assert_int_equal(thoth_server_dispatch(&test_flat_Flat_info, counting_invoke, &handlers, &seen,
					       (const uint8_t *)enc, len, &io), 0);
	assert_int_equal(wrapped, 1);
	assert_int_equal(seen.calls, 1);
	assert_true(io.out_len > THOTH_WIRE_HEADER_SIZE);

	/* A copy whose put decodes through a trap: the copy's table is used. */
	static thoth_method_info_t put;
	static const thoth_method_info_t *table[4];
	static thoth_interface_info_t copy;
	put = test_flat_Flat_put_info;
	put.req_decode_body = trap_body;
	copy = test_flat_Flat_info;
	for (size_t i = 0; i < copy.n_methods; i++)
		table[i] = copy.methods[i] == &test_flat_Flat_put_info ? &put : copy.methods[i];
	copy.methods = table;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	io = (thoth_server_io_t){ .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
	wrapped = 0;
	thoth_server_dispatch(&copy, test_flat_Flat_invoke, &handlers, &seen, (const uint8_t *)enc, len, &io);
	assert_int_equal(wrapped, 100);
	assert_int_equal(seen.calls, 1);        /* refused before the handler */
}

/*
 * A request sent through the pool is dispatched in place, in the client's
 * pool, which the client can still write.  A put request cut to 16 body
 * bytes whose data lies past them is refused; a peer flipping body_len
 * between 16 and the uncut length while it is dispatched must not get the
 * handler run on the longer body (the fast path once checked body_len and
 * then read it again: at -O0, as in the ASan build, the handler ran on the
 * first few thousand dispatches and read past the buffer).  Where the
 * compiler happens to load the word once the old code passed too.
 */
static uint8_t *race_msg;
static uint32_t race_small, race_big;
static int race_stop;

static void *race_flip(void *arg)
{
	(void)arg;
	uint32_t *bl = (uint32_t *)(void *)(race_msg + 36);
	while (!__atomic_load_n(&race_stop, __ATOMIC_RELAXED)) {
		__atomic_store_n(bl, race_big, __ATOMIC_RELAXED);
		__atomic_store_n(bl, race_small, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_a_body_len_rewritten_during_dispatch_is_read_once(void **state)
{
	(void)state;
	static uint64_t enc[64], out[512], arena_mem[512];
	static uint8_t payload[64];
	memset(payload, 0xab, sizeof payload);
	test_flat_Flat_put_req_t rq = { .data = { .ptr = payload, .len = sizeof payload } };
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t full;
	assert_int_equal(thoth_method_encode(&test_flat_Flat_put_info, false, &rq, &meta, enc, sizeof enc, &full), 0);
	size_t len = THOTH_WIRE_HEADER_SIZE + 16;
	race_msg = aligned_alloc(8, len);       /* exactly LEN bytes: ASan sees a read past */
	assert_non_null(race_msg);
	memcpy(race_msg, enc, len);
	race_small = 16;
	race_big = (uint32_t)(full - THOTH_WIRE_HEADER_SIZE);
	thoth_st32(race_msg + 36, race_small);
	seen_t seen = { 0 };
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
	/* Unraced: refused, no handler. */
	thoth_server_dispatch(&test_flat_Flat_info, test_flat_Flat_invoke, &handlers, &seen, race_msg, len, &io);
	assert_int_equal(seen.calls, 0);
	pthread_t t;
	__atomic_store_n(&race_stop, 0, __ATOMIC_RELAXED);
	assert_int_equal(pthread_create(&t, NULL, race_flip, NULL), 0);
	for (unsigned i = 0; i < 100000 && !seen.calls; i++) {
		thoth_arena_init(&a, arena_mem, sizeof arena_mem);
		io = (thoth_server_io_t){ .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
		thoth_server_dispatch(&test_flat_Flat_info, test_flat_Flat_invoke, &handlers, &seen, race_msg, len, &io);
	}
	__atomic_store_n(&race_stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	free(race_msg);
	assert_int_equal(seen.calls, 0);
}

/*
 * A method whose request struct (test.big's wide, 200 x u64) is over
 * THOTH_DISPATCH_SMALL is left to the table-driven way (its structs come
 * from the arena there): its answer is the full way's, byte for byte.
 * And the dispatcher must not reserve its structs in its own frame: a
 * small method's handler runs less than one such struct below the caller
 * (the dispatcher once declared every method's structs in its case, and
 * under ASan the narrow handler ran 2,864 bytes below big_run, 1,104 since).
 */
static uintptr_t big_base, big_depth;

static int on_wide(void *self, const test_big_Big_wide_req_t *req, test_big_Big_wide_resp_t *resp,
		   thoth_arena_t *arena)
{
	(void)arena;
	(*(unsigned *)self)++;
	const uint64_t *a = &req->a0;
	for (size_t i = 0; i < 200; i++)
		resp->sum += a[i] * (i + 1);
	return 0;
}

static int on_narrow(void *self, const test_big_Big_narrow_req_t *req, test_big_Big_narrow_resp_t *resp,
		     thoth_arena_t *arena)
{
	(void)arena;
	(*(unsigned *)self)++;
	big_depth = big_base - (uintptr_t)__builtin_frame_address(0);
	resp->n = req->x + 1ull;
	return 0;
}

static const test_big_Big_handlers_t big_handlers = { .wide = on_wide, .narrow = on_narrow };

static int big_run(dispatch_fn f, const uint8_t *msg, size_t len, uint64_t *out, size_t cap, size_t *out_len,
		   unsigned *calls)
{
	static uint64_t arena_mem[1024];
	thoth_arena_t a;
	thoth_arena_init(&a, arena_mem, sizeof arena_mem);
	memset(out, 0xa5, cap);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = cap, .arena = &a };
	big_base = (uintptr_t)__builtin_frame_address(0);
	int r = f(&test_big_Big_info, test_big_Big_invoke, &big_handlers, calls, msg, len, &io);
	*out_len = io.out_len;
	return r;
}

static void test_a_large_method_goes_the_table_way(void **state)
{
	(void)state;
	assert_true(sizeof(test_big_Big_wide_req_t) > THOTH_DISPATCH_SMALL);
	assert_non_null(test_big_Big_info.dispatch);
	static uint64_t enc[256], o1[256], o2[256];
	static test_big_Big_wide_req_t w;
	uint64_t *a = &w.a0;
	for (size_t i = 0; i < 200; i++)
		a[i] = i * 0x0101010101ull + 3;
	const thoth_msg_header_t meta = { .request_id = 9 };
	size_t len, l1, l2;
	assert_int_equal(thoth_method_encode(&test_big_Big_wide_info, false, &w, &meta, enc, sizeof enc, &len), 0);
	for (size_t cut = 0; cut < 3; cut++) {     /* whole, one word short, 8 bytes of body */
		size_t n = cut == 0 ? len : cut == 1 ? len - 8 : THOTH_WIRE_HEADER_SIZE + 8;
		if (cut)
			thoth_st32((uint8_t *)enc + 36, (uint32_t)(n - THOTH_WIRE_HEADER_SIZE));
		unsigned c1 = 0, c2 = 0;
		int r1 = big_run(thoth_server_dispatch, (const uint8_t *)enc, n, o1, sizeof o1, &l1, &c1);
		int r2 = big_run(thoth_full_server_dispatch, (const uint8_t *)enc, n, o2, sizeof o2, &l2, &c2);
		assert_int_equal(r1, r2);
		assert_int_equal(l1, l2);
		assert_int_equal(c1, c2);
		assert_int_equal(c1, cut == 0);
		assert_memory_equal(o1, o2, sizeof o1);
		assert_true(l1 > THOTH_WIRE_HEADER_SIZE);
	}

	test_big_Big_narrow_req_t nq = { .x = 41 };
	assert_int_equal(thoth_method_encode(&test_big_Big_narrow_info, false, &nq, &meta, enc, sizeof enc, &len), 0);
	unsigned c1 = 0, c2 = 0;
	big_depth = 0;
	assert_int_equal(big_run(thoth_server_dispatch, (const uint8_t *)enc, len, o1, sizeof o1, &l1, &c1), 0);
	uintptr_t depth = big_depth;
	assert_int_equal(big_run(thoth_full_server_dispatch, (const uint8_t *)enc, len, o2, sizeof o2, &l2, &c2), 0);
	assert_int_equal(c1, 1);
	assert_int_equal(l1, l2);
	assert_memory_equal(o1, o2, sizeof o1);
	print_message("narrow's handler ran %zu bytes below its caller (wide's request: %zu bytes)\n",
		      (size_t)depth, sizeof(test_big_Big_wide_req_t));
	assert_true(depth > 0);
	assert_true(depth < sizeof(test_big_Big_wide_req_t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_plain_requests_match_the_full_way),
		cmocka_unit_test(test_the_feature_gate_is_the_same_both_ways),
		cmocka_unit_test(test_a_body_len_rewritten_during_dispatch_is_read_once),
		cmocka_unit_test(test_another_invoke_or_a_copied_info_takes_the_table_way),
		cmocka_unit_test(test_a_large_method_goes_the_table_way),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
