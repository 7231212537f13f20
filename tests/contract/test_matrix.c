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
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "evolve_v1_1.thoth.h"
#include "evolve_v1_3.thoth.h"
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
