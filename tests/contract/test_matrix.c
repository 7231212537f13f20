/*
 * test_matrix.c - the version matrix: matrix/evolve_v1_1.tidl and
 * matrix/evolve_v1_3.tidl (one package, two versions) compiled side by side
 * (thothc --c-prefix v11_ / v13_) and every combination of old/new writer
 * and reader exchanged through real encoded bytes.
 *
 *   v1.1 reader <- v1.3 writer: unknown trailing fields, enum values and
 *                               methods are skipped / reported cleanly
 *   v1.3 reader <- v1.1 writer: absent fields read as defaults, optional
 *                               ones as absent
 *
 * and matrix/evolve_v1_4.tidl (prefix v14_), which retires a field, a
 * method and an enum value with `reserved` and has a gap (ordinal 7):
 *
 *   v1.3 reader <- v1.4 writer: the retired optional field reads as absent
 *   v1.4 reader <- v1.3 writer: the retired slot is skipped
 *   v1.3 client -> v1.4 server: the retired method is an unknown method
 *   v1.4 bytes == golden/Evolve.v1_4.register.req.hex (gap and kept slot)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "evolve_v1_1.thoth.h"
#include "evolve_v1_3.thoth.h"
#include "evolve_v1_4.thoth.h"
#include "golden_hex.h"
#include "thoth/wire.h"
#include "thoth/contract.h"

static uint64_t buf[1024], scratch[1024];

static size_t enc(const thoth_method_info_t *m, bool resp, const void *v)
{
	size_t len;
	thoth_msg_header_t meta = { .request_id = 1 };
	assert_int_equal(thoth_method_encode(m, resp, v, &meta, buf, sizeof buf, &len), 0);
	return len;
}

static int dec(const thoth_method_info_t *m, bool resp, size_t len, void *v)
{
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	return thoth_method_decode(m, resp, (uint8_t *)buf, len, v, &a);
}

static const thoth_str_t tags[] = { { "blue", 4 }, { "fast", 4 } };

static void fill_v13(v13_Endpoint_t *ep)
{
	*ep = (v13_Endpoint_t){
		.addr = thoth_str("/run/a.sock"), .numa_node = 3, .locality = V13_LOCALITY_NUMA,
		.cookie = { .ptr = (const uint8_t *)"\x01\x02", .len = 2 },
		.has_lease = true, .lease = 99,
		.tags = { tags, 2 },
	};
}

static void test_same_version_roundtrips_both_sides(void **state)
{
	v11_Registry_register_req_t a = { .name = thoth_str("x"), .ep = { .addr = thoth_str("/p"),
				.numa_node = 1, .locality = V11_LOCALITY_LOCAL }, .ttl_ms = 5 }, a2;
	size_t len = enc(&v11_Registry_register_info, false, &a);
	assert_int_equal(dec(&v11_Registry_register_info, false, len, &a2), 0);
	assert_string_equal(a2.ep.addr.ptr, "/p");
	assert_int_equal(a2.ttl_ms, 5);

	v13_Registry_register_req_t b = { .name = thoth_str("y"), .ttl_ms = 6 }, b2;
	fill_v13(&b.ep);
	len = enc(&v13_Registry_register_info, false, &b);
	assert_int_equal(dec(&v13_Registry_register_info, false, len, &b2), 0);
	assert_int_equal(b2.ep.tags.count, 2);
	assert_true(b2.ep.has_lease);
	assert_int_equal(b2.ep.lease, 99);
}

static void test_old_reader_accepts_new_writer_and_skips_unknown_fields(void **state)
{
	v13_Registry_register_req_t in = { .name = thoth_str("svc"), .ttl_ms = 1000 };
	fill_v13(&in.ep);
	size_t len = enc(&v13_Registry_register_info, false, &in);
	v11_Registry_register_req_t out;
	assert_int_equal(dec(&v11_Registry_register_info, false, len, &out), 0);
	assert_string_equal(out.name.ptr, "svc");
	assert_string_equal(out.ep.addr.ptr, "/run/a.sock");
	assert_int_equal(out.ep.numa_node, 3);
	assert_int_equal(out.ep.locality, V11_LOCALITY_NUMA);
	assert_int_equal(out.ttl_ms, 1000);     /* the field after the grown struct */
}

static void test_new_reader_accepts_old_writer_with_defaults(void **state)
{
	v11_Registry_register_req_t in = { .name = thoth_str("svc"), .ttl_ms = 7,
		.ep = { .addr = thoth_str("/old"), .numa_node = 2, .locality = V11_LOCALITY_LOCAL } };
	size_t len = enc(&v11_Registry_register_info, false, &in);
	v13_Registry_register_req_t out;
	assert_int_equal(dec(&v13_Registry_register_info, false, len, &out), 0);
	assert_string_equal(out.ep.addr.ptr, "/old");
	assert_int_equal(out.ep.locality, V13_LOCALITY_LOCAL);
	assert_int_equal(out.ep.cookie.len, 0);      /* absent: default empty */
	assert_false(out.ep.has_lease);              /* absent optional */
	assert_int_equal(out.ep.tags.count, 0);
	assert_int_equal(out.ttl_ms, 7);
}

static void test_old_reader_keeps_unknown_enum_value_of_flexible_enum(void **state)
{
	v13_Registry_resolve_resp_t in = { 0 };
	fill_v13(&in.ep);
	in.ep.locality = V13_LOCALITY_REMOTE;        /* added in 1.3 */
	size_t len = enc(&v13_Registry_resolve_info, true, &in);
	v11_Registry_resolve_resp_t out;
	assert_int_equal(dec(&v11_Registry_resolve_info, true, len, &out), 0);
	assert_int_equal(out.ep.locality, 3);
	assert_false(v11_Locality_is_known(out.ep.locality));
}

static void test_responses_cross_versions_in_both_directions(void **state)
{
	v11_Registry_resolve_resp_t old = { .ep = { .addr = thoth_str("/o"), .numa_node = 4 } };
	size_t len = enc(&v11_Registry_resolve_info, true, &old);
	v13_Registry_resolve_resp_t neu;
	assert_int_equal(dec(&v13_Registry_resolve_info, true, len, &neu), 0);
	assert_int_equal(neu.ep.numa_node, 4);
	assert_false(neu.ep.has_lease);

	fill_v13(&neu.ep);
	len = enc(&v13_Registry_resolve_info, true, &neu);
	assert_int_equal(dec(&v11_Registry_resolve_info, true, len, &old), 0);
	assert_string_equal(old.ep.addr.ptr, "/run/a.sock");
}

static int old_register(void *self, const v11_Registry_register_req_t *req,
			v11_Registry_register_resp_t *resp, thoth_arena_t *arena)
{
	resp->lease = req->ttl_ms + 1;
	return 0;
}

static const v11_Registry_handlers_t old_server = { .register_ = old_register };

static void test_new_method_sent_to_old_server_is_unknown_method(void **state)
{
	static const thoth_str_t names[] = { { "a", 1 } };
	v13_Registry_batch_resolve_req_t req = { .names = { names, 1 } };
	size_t len = enc(&v13_Registry_batch_resolve_info, false, &req);
	static uint64_t out[512], sc[512];
	thoth_arena_t a;
	thoth_arena_init(&a, sc, sizeof sc);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a,
				 .features = ~0ull };
	assert_int_equal(v11_Registry_dispatch(&old_server, NULL, (uint8_t *)buf, len, &io), 0);
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)out, io.out_len, &h), 0);
	assert_true(h.flags & THOTH_MSG_ERROR);
	thoth_decoder_t d;
	thoth_decoder_init(&d, (uint8_t *)out + THOTH_WIRE_HEADER_SIZE, h.body_len, NULL);
	uint32_t code;
	int32_t status;
	thoth_str_t msg;
	assert_int_equal(thoth_wire_decode_error(&d, &code, &status, &msg), 0);
	assert_int_equal(status, THOTH_E_UNKNOWN_METHOD);
}

static void test_new_client_calls_old_server_through_dispatch(void **state)
{
	v13_Registry_register_req_t req = { .name = thoth_str("n"), .ttl_ms = 41 };
	fill_v13(&req.ep);
	size_t len = enc(&v13_Registry_register_info, false, &req);
	static uint64_t out[512], sc[512];
	thoth_arena_t a;
	thoth_arena_init(&a, sc, sizeof sc);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
	assert_int_equal(v11_Registry_dispatch(&old_server, NULL, (uint8_t *)buf, len, &io), 0);
	memcpy(buf, out, io.out_len);
	v13_Registry_register_resp_t resp;
	assert_int_equal(dec(&v13_Registry_register_info, true, io.out_len, &resp), 0);
	assert_int_equal(resp.lease, 42);
}

static void test_versions_share_wire_identity_but_not_schema_hash(void **state)
{
	assert_int_equal(v11_Registry_info.id, v13_Registry_info.id);
	assert_int_equal(v11_Registry_info.major, v13_Registry_info.major);
	assert_true(v11_Registry_info.schema_hash != v13_Registry_info.schema_hash);
	thoth_contract_claim_t s, c;
	char why[256];
	thoth_contract_claim_init(&s, &v13_Registry_info, 0);
	thoth_contract_claim_init(&c, &v11_Registry_info, 0);
	assert_int_equal(thoth_contract_compatible(&s, &c, why, sizeof why), 0);
}


/* ---- 1.4: retired members (reserved ordinals) and a gap ----------------- */

static void fill_v14(v14_Endpoint_t *ep)
{
	*ep = (v14_Endpoint_t){
		.addr = thoth_str("/run/b.sock"), .numa_node = 5, .locality = V14_LOCALITY_LOCAL,
		.cookie = { .ptr = (const uint8_t *)"\x03", .len = 1 },
		.tags = { tags, 2 },
		.zone = thoth_str("eu-1"),
	};
}

static void test_retired_optional_field_reads_absent_for_old_reader(void **state)
{
	v14_Registry_register_req_t in = { .name = thoth_str("svc"), .ttl_ms = 9 };
	fill_v14(&in.ep);
	size_t len = enc(&v14_Registry_register_info, false, &in);
	v13_Registry_register_req_t out;
	assert_int_equal(dec(&v13_Registry_register_info, false, len, &out), 0);
	assert_false(out.ep.has_lease);             /* the kept slot is zero: absent */
	assert_int_equal(out.ep.tags.count, 2);     /* the field after it did not move */
	assert_string_equal(out.ep.tags.items[1].ptr, "fast");
	assert_int_equal(out.ep.cookie.len, 1);
	assert_int_equal(out.ttl_ms, 9);
	v11_Registry_register_req_t old;
	assert_int_equal(dec(&v11_Registry_register_info, false, len, &old), 0);
	assert_string_equal(old.ep.addr.ptr, "/run/b.sock");
	assert_int_equal(old.ep.numa_node, 5);
}

static void test_new_reader_skips_the_retired_slot_of_an_old_writer(void **state)
{
	v13_Registry_register_req_t in = { .name = thoth_str("svc"), .ttl_ms = 3 };
	fill_v13(&in.ep);                           /* lease present: 99 */
	size_t len = enc(&v13_Registry_register_info, false, &in);
	v14_Registry_register_req_t out;
	assert_int_equal(dec(&v14_Registry_register_info, false, len, &out), 0);
	assert_string_equal(out.ep.addr.ptr, "/run/a.sock");
	assert_int_equal(out.ep.tags.count, 2);
	assert_int_equal(out.ep.zone.len, 0);       /* after the gap: unknown to 1.3, default */
	assert_int_equal(out.ttl_ms, 3);
}

static void test_field_after_a_gap_roundtrips(void **state)
{
	v14_Registry_register_req_t in = { .name = thoth_str("z"), .ttl_ms = 1 }, out;
	fill_v14(&in.ep);
	size_t len = enc(&v14_Registry_register_info, false, &in);
	assert_int_equal(dec(&v14_Registry_register_info, false, len, &out), 0);
	assert_string_equal(out.ep.zone.ptr, "eu-1");
	assert_int_equal(out.ep.locality, V14_LOCALITY_LOCAL);
}

static int new_register(void *self, const v14_Registry_register_req_t *req,
			v14_Registry_register_resp_t *resp, thoth_arena_t *arena)
{
	resp->lease = req->ttl_ms;
	return 0;
}

static void test_retired_method_sent_to_new_server_is_unknown_method(void **state)
{
	static const v14_Registry_handlers_t server = { .register_ = new_register };
	v13_Registry_resolve_req_t req = { .name = thoth_str("a") };
	size_t len = enc(&v13_Registry_resolve_info, false, &req);
	static uint64_t out[512], sc[512];
	thoth_arena_t a;
	thoth_arena_init(&a, sc, sizeof sc);
	thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &a };
	assert_int_equal(v14_Registry_dispatch(&server, NULL, (uint8_t *)buf, len, &io), 0);
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)out, io.out_len, &h), 0);
	assert_true(h.flags & THOTH_MSG_ERROR);
	thoth_decoder_t d;
	thoth_decoder_init(&d, (uint8_t *)out + THOTH_WIRE_HEADER_SIZE, h.body_len, NULL);
	uint32_t code;
	int32_t status;
	thoth_str_t msg;
	assert_int_equal(thoth_wire_decode_error(&d, &code, &status, &msg), 0);
	assert_int_equal(status, THOTH_E_UNKNOWN_METHOD);
}

/* ---- what a client stub returns when the service predates the method ---- */

/* A loopback transport into an old server's generated dispatcher. */
typedef struct old_link {
	int (*dispatch)(const void *handlers, void *self, uint8_t *msg, size_t len,
			thoth_server_io_t *io);
	const void *handlers;
	uint64_t req[512], resp[512], sc[512];
} old_link_t;

static int ol_get_buffer(void *ctx, size_t len, uint8_t **out)
{
	old_link_t *l = ctx;
	if (len > sizeof l->req)
		return THOTH_E_NO_SPACE;
	*out = (uint8_t *)l->req;
	return 0;
}

static int ol_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	old_link_t *l = ctx;
	thoth_arena_t a;
	thoth_arena_init(&a, l->sc, sizeof l->sc);
	thoth_server_io_t io = { .out = (uint8_t *)l->resp, .cap = sizeof l->resp, .arena = &a,
				 .features = ~0ull };
	int r = l->dispatch(l->handlers, NULL, req, len, &io);
	resp->data = (uint8_t *)l->resp;
	resp->len = io.out_len;
	return r;
}

static void ol_release(void *ctx, thoth_msg_t *resp)
{
}

static const thoth_transport_ops_t old_link_ops = {
	.get_buffer = ol_get_buffer, .call = ol_call, .release = ol_release,
};

static int v11_dispatch(const void *h, void *self, uint8_t *msg, size_t len, thoth_server_io_t *io)
{
	return v11_Registry_dispatch(h, self, msg, len, io);
}

static int v14_dispatch(const void *h, void *self, uint8_t *msg, size_t len, thoth_server_io_t *io)
{
	return v14_Registry_dispatch(h, self, msg, len, io);
}

/* docs/IDL.md: a method added in a newer version, or retired, gets
 * THOTH_E_UNKNOWN_METHOD from a service that does not have it, "which
 * callers must handle anyway".  The stub returned THOTH_E_REMOTE ("peer
 * returned an application error"), so a client checking for
 * THOTH_E_UNKNOWN_METHOD to fall back to the old method never saw it. */
static void test_a_stub_calling_a_method_the_service_lacks_returns_unknown_method(void **state)
{
	static old_link_t old = { .dispatch = v11_dispatch, .handlers = &old_server };
	thoth_client_t c;
	thoth_client_init(&c, &old_link_ops, &old, V13_FEATURE_BATCH_RESOLVE);
	static const thoth_str_t names[] = { { "a", 1 } };
	v13_Registry_batch_resolve_req_t req = { .names = { names, 1 } };
	v13_Registry_batch_resolve_resp_t resp;
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	assert_int_equal(v13_Registry_batch_resolve(&c, &req, &resp, &a), THOTH_E_UNKNOWN_METHOD);
	assert_int_equal(c.remote_status, THOTH_E_UNKNOWN_METHOD);
	assert_int_equal(c.remote_code, 0);

	/* a retired method, called by an old client of a new service */
	static const v14_Registry_handlers_t newer = { .register_ = new_register };
	static old_link_t new_link = { .dispatch = v14_dispatch, .handlers = &newer };
	thoth_client_init(&c, &old_link_ops, &new_link, 0);
	v13_Registry_resolve_req_t rreq = { .name = thoth_str("a") };
	v13_Registry_resolve_resp_t rresp;
	thoth_arena_init(&a, scratch, sizeof scratch);
	assert_int_equal(v13_Registry_resolve(&c, &rreq, &rresp, &a), THOTH_E_UNKNOWN_METHOD);

	/* the method the old service has still works on the same client */
	thoth_client_init(&c, &old_link_ops, &old, 0);
	v13_Registry_register_req_t reg = { .name = thoth_str("n"), .ttl_ms = 41 };
	fill_v13(&reg.ep);
	v13_Registry_register_resp_t rr;
	thoth_arena_init(&a, scratch, sizeof scratch);
	assert_int_equal(v13_Registry_register(&c, &reg, &rr, &a), 0);
	assert_int_equal(rr.lease, 42);
}

/* The rule itself: only the schema-skew refusals come back as themselves;
 * an application error and the server's own failures stay THOTH_E_REMOTE
 * (a server's "truncated" is about our request, not our answer). */
static void test_only_schema_skew_refusals_pass_through(void **state)
{
	assert_int_equal(thoth_remote_result(THOTH_E_UNKNOWN_METHOD), THOTH_E_UNKNOWN_METHOD);
	assert_int_equal(thoth_remote_result(THOTH_E_UNKNOWN_IFACE), THOTH_E_UNKNOWN_IFACE);
	assert_int_equal(thoth_remote_result(THOTH_E_BAD_VERSION), THOTH_E_BAD_VERSION);
	assert_int_equal(thoth_remote_result(THOTH_E_NO_FEATURE), THOTH_E_NO_FEATURE);
	assert_int_equal(thoth_remote_result(THOTH_E_REMOTE), THOTH_E_REMOTE);
	assert_int_equal(thoth_remote_result(THOTH_E_TRUNCATED), THOTH_E_REMOTE);
	assert_int_equal(thoth_remote_result(THOTH_E_NOMEM), THOTH_E_REMOTE);
	assert_int_equal(thoth_remote_result(THOTH_E_PEER_GONE), THOTH_E_REMOTE);
	assert_int_equal(thoth_remote_result(0), THOTH_E_REMOTE);
	assert_int_equal(thoth_remote_result(7), THOTH_E_REMOTE);
}

static void test_gap_and_kept_slot_match_the_golden_vector(void **state)
{
	static uint64_t golden[512];
	char path[1024];
	snprintf(path, sizeof path, "%s/Evolve.v1_4.register.req.hex", GOLDEN_DIR);
	v14_Registry_register_req_t in = { .name = thoth_str("svc"), .ttl_ms = 9 };
	fill_v14(&in.ep);
	size_t len = enc(&v14_Registry_register_info, false, &in);
	if (getenv("THOTH_GOLDEN_REGEN")) {
		assert_int_equal(golden_write_hex(path, (uint8_t *)buf, len,
			"test.evolve 1.4 Registry.register request (tests/contract/matrix)"), 0);
		return;
	}
	size_t n = golden_read_hex(path, (uint8_t *)golden, sizeof golden);
	assert_int_equal(n, len);
	assert_memory_equal(golden, buf, len);

	/* Spelled out from docs/WIRE.md: Endpoint's slots are 1 string @0,
	 * 2 u16 @8, 3 u8 @10, 4 bytes @12, 5 (reserved, optional u64: presence
	 * @20, value @24), 6 list @32, 7 (gap: no slot), 8 string @40. */
	const uint8_t *body = (const uint8_t *)golden + THOTH_WIRE_HEADER_SIZE;
	uint32_t ep = thoth_le32(body + 8 + 8);     /* root slot 2: the Endpoint pointer */
	assert_int_equal(thoth_le32(body + 8 + 12), 8 + 48);
	assert_int_equal(thoth_le32(body + ep), 48);          /* fixed_size */
	assert_int_equal(thoth_le32(body + ep + 4), 8);       /* field_count: highest slot */
	const uint8_t *fx = body + ep + 8;
	assert_int_equal(thoth_le16(fx + 8), 5);
	assert_int_equal(fx[10], V14_LOCALITY_LOCAL);
	assert_int_equal(fx[20], 0);                          /* retired: always absent */
	assert_int_equal(thoth_le64(fx + 24), 0);
	assert_int_equal(thoth_le32(fx + 32 + 4), 2);         /* tags: 2 elements */
	assert_int_equal(thoth_le32(fx + 40 + 4), 4);         /* zone: "eu-1" */
	assert_memory_equal(body + thoth_le32(fx + 40), "eu-1", 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_version_roundtrips_both_sides),
		cmocka_unit_test(test_old_reader_accepts_new_writer_and_skips_unknown_fields),
		cmocka_unit_test(test_new_reader_accepts_old_writer_with_defaults),
		cmocka_unit_test(test_old_reader_keeps_unknown_enum_value_of_flexible_enum),
		cmocka_unit_test(test_responses_cross_versions_in_both_directions),
		cmocka_unit_test(test_new_method_sent_to_old_server_is_unknown_method),
		cmocka_unit_test(test_new_client_calls_old_server_through_dispatch),
		cmocka_unit_test(test_versions_share_wire_identity_but_not_schema_hash),
		cmocka_unit_test(test_retired_optional_field_reads_absent_for_old_reader),
		cmocka_unit_test(test_new_reader_skips_the_retired_slot_of_an_old_writer),
		cmocka_unit_test(test_field_after_a_gap_roundtrips),
		cmocka_unit_test(test_retired_method_sent_to_new_server_is_unknown_method),
		cmocka_unit_test(test_gap_and_kept_slot_match_the_golden_vector),
		cmocka_unit_test(test_a_stub_calling_a_method_the_service_lacks_returns_unknown_method),
		cmocka_unit_test(test_only_schema_skew_refusals_pass_through),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
