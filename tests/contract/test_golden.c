/*
 * test_golden.c - golden wire vectors for every message of every system
 * interface (the .tidl files under idl/): the exact bytes, checked in both directions.
 *
 *   encode(fixture value)        == bytes in golden/<Interface>.<method>.<req|resp>.hex
 *   decode(golden bytes)         succeeds, spot-checked fields match the fixture,
 *   encode(decode(golden bytes)) == golden bytes
 *
 * A change to the wire format or to a system schema shows up here as a diff
 * of a checked-in file.  After an intended change, regenerate with
 *   THOTH_GOLDEN_REGEN=1 build/default/tests/contract/test_golden
 * and review the diff (git diff tests/contract/golden) before committing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common.thoth.h"
#include "registry.thoth.h"
#include "timer.thoth.h"
#include "trace.thoth.h"
#include "channel.thoth.h"
#include "locks.thoth.h"
#include "golden_hex.h"

#ifndef GOLDEN_DIR
#error "GOLDEN_DIR must point at tests/contract/golden"
#endif

/* ---- fixtures ------------------------------------------------------------ */

static thoth_common_InterfaceClaim_t claims[1];

static void fill_registration(thoth_registry_Registration_t *r)
{
	claims[0] = (thoth_common_InterfaceClaim_t){
		.package = thoth_str("thoth.codex"), .interface = thoth_str("Codex"),
		.interface_id = 0x1234abcd, .major = 1, .minor = 2,
		.schema_hash = 0x0102030405060708ull, .features = 0x3,
	};
	*r = (thoth_registry_Registration_t){
		.name = thoth_str("codex"),
		.version = thoth_str("1.4.2"),
		.endpoint = { .addr = thoth_str("/run/thoth/codex.0.sock"), .numa_node = 1,
			      .locality = THOTH_COMMON_LOCALITY_HOST, .instance_id = 7, .pid = 4242 },
		.features = 0x3,
		.ttl_ms = 5000,
		.claims = { claims, 1 },
	};
}

static void fill_instance(thoth_registry_Instance_t *i)
{
	fill_registration(&i->registration);
	i->lease = 0xfeedface00000001ull;
	i->registered_at_ns = 1000000000ull;
	i->expires_at_ns = 6000000000ull;
	i->owner_uid = 1000;
	i->utilization_permille = 750;
	i->qps = 1200;
}

static thoth_str_t names[3];
static thoth_registry_Instance_t instances[2];

#define FILL(fn, type) static void fn(void *p_) { type *v = p_; memset(v, 0, sizeof *v);
#define END }

FILL(reg_register_req, thoth_registry_Registry_register_req_t) fill_registration(&v->reg); END
FILL(reg_register_resp, thoth_registry_Registry_register_resp_t) v->lease = 0xfeedface00000001ull; END
FILL(reg_resolve_req, thoth_registry_Registry_resolve_req_t)
	v->name = thoth_str("codex");
	v->min_version = thoth_str("1.2.0");
	v->prefer = THOTH_COMMON_LOCALITY_NUMA;
	v->numa_node = 1;
END
FILL(reg_resolve_resp, thoth_registry_Registry_resolve_resp_t) fill_instance(&v->instance); END
FILL(reg_batch_req, thoth_registry_Registry_batch_resolve_req_t)
	names[0] = thoth_str("codex");
	names[1] = thoth_str("echo");
	names[2] = thoth_str("");
	v->names = (thoth_list_string_t){ names, 3 };
	v->min_version = thoth_str("1.0.0");
END
FILL(reg_batch_resp, thoth_registry_Registry_batch_resolve_resp_t)
	fill_instance(&instances[0]);
	fill_instance(&instances[1]);
	instances[1].lease = 2;
	v->instances = (thoth_registry_Instance_list_t){ instances, 2 };
END
FILL(reg_list_req, thoth_registry_Registry_list_req_t)
	v->prefix = thoth_str("co");
	v->locality = THOTH_COMMON_LOCALITY_ANY;
END
FILL(reg_list_resp, thoth_registry_Registry_list_resp_t)
	fill_instance(&instances[0]);
	v->instances = (thoth_registry_Instance_list_t){ instances, 1 };
END
FILL(reg_list_page_req, thoth_registry_Registry_list_page_req_t)
	v->prefix = thoth_str("co");
	v->locality = THOTH_COMMON_LOCALITY_ANY;
	v->after_name = thoth_str("codex");
	v->after_registered_at_ns = 1000000000ull;
	v->after_lease = 0xfeedface00000001ull;
	v->max_count = 100;
END
FILL(reg_list_page_resp, thoth_registry_Registry_list_page_resp_t)
	fill_instance(&instances[0]);
	v->instances = (thoth_registry_Instance_list_t){ instances, 1 };
	v->more = true;
END
FILL(reg_renew_req, thoth_registry_Registry_renew_req_t) v->lease = 0xfeedface00000001ull; END
FILL(reg_renew_resp, thoth_registry_Registry_renew_resp_t) v->expires_at_ns = 11000000000ull; END
FILL(reg_withdraw_req, thoth_registry_Registry_withdraw_req_t) v->lease = 0xfeedface00000001ull; END
FILL(reg_withdraw_resp, thoth_registry_Registry_withdraw_resp_t) (void)v; END
FILL(reg_heartbeat_req, thoth_registry_Registry_heartbeat_req_t) v->lease = 0xfeedface00000001ull; END
FILL(reg_report_load_req, thoth_registry_Registry_report_load_req_t)
	v->lease = 0xfeedface00000001ull;
	v->utilization_permille = 750;
	v->qps = 1200;
END
FILL(reg_watch_req, thoth_registry_Registry_watch_req_t) v->prefix = thoth_str(""); END
FILL(reg_watch_resp, thoth_registry_Registry_watch_resp_t) v->watch_id = 3; END
FILL(reg_unwatch_req, thoth_registry_Registry_unwatch_req_t) v->watch_id = 3; END
FILL(reg_unwatch_resp, thoth_registry_Registry_unwatch_resp_t) (void)v; END
FILL(ev_changed_req, thoth_registry_RegistryEvents_changed_req_t)
	v->watch_id = 3;
	v->kind = THOTH_REGISTRY_CHANGE_KIND_EXPIRED;
	fill_instance(&v->instance);
END
FILL(tm_arm_req, thoth_timer_Timer_arm_req_t)
	v->deadline_ns = 123456789000ull;
	v->slack_ns = 5000000;
	v->cookie = 0xc00c1e;
END
FILL(tm_arm_resp, thoth_timer_Timer_arm_resp_t) v->timer_id = 17; END
FILL(tm_cancel_req, thoth_timer_Timer_cancel_req_t) v->timer_id = 17; END
FILL(tm_cancel_resp, thoth_timer_Timer_cancel_resp_t) (void)v; END
FILL(tm_fired_req, thoth_timer_TimerEvents_fired_req_t)
	v->timer_id = 17;
	v->cookie = 0xc00c1e;
	v->now_ns = 123457000000ull;
END
FILL(tr_attach_req, thoth_trace_TraceControl_attach_req_t) v->pid = 4242; END
FILL(tr_start_pid_req, thoth_trace_TraceControl_start_pid_req_t)
	v->categories = 0x9;
	v->pid = 4242;
END
FILL(tr_start_pid_resp, thoth_trace_TraceControl_start_pid_resp_t) v->session_id = 2; END
FILL(tr_write_req, thoth_trace_TraceControl_write_req_t)
	v->json_path = thoth_str("/tmp/thoth-trace/trace.json");
	v->ctf_dir = thoth_str("/tmp/thoth-trace/ctf");
END
FILL(tr_write_resp, thoth_trace_TraceControl_write_resp_t) v->events = 1000000; END
FILL(tr_start_req, thoth_trace_TraceControl_start_req_t) v->categories = 0; END
FILL(tr_start_resp, thoth_trace_TraceControl_start_resp_t) v->session_id = 1; END
FILL(tr_stop_req, thoth_trace_TraceControl_stop_req_t) v->session_id = 1; END
FILL(tr_stop_resp, thoth_trace_TraceControl_stop_resp_t)
	v->events = 1000000;
	v->dropped = 12;
END
FILL(tr_dump_req, thoth_trace_TraceControl_dump_req_t) v->dir = thoth_str("/tmp/thoth-trace"); END
FILL(tr_dump_resp, thoth_trace_TraceControl_dump_resp_t)
	v->chrome_json = thoth_str("/tmp/thoth-trace/trace.json");
	v->ctf_dir = thoth_str("/tmp/thoth-trace/ctf");
END
static const thoth_locks_Refusal_t lk_refused[1] = {
	{ .pid = 4243, .file = { "4243.table", 10 }, .why = { "a FIFO, not a lock table", 24 } },
};
static const uint8_t lk_text[] = "{\"locks\":[]}\n";
FILL(lk_report_req, thoth_locks_LockReports_report_req_t)
	v->pid = 4242;
	v->top = 10;
	v->json = true;
	v->verbose = false;
END
FILL(lk_report_resp, thoth_locks_LockReports_report_resp_t)
	v->snapshot = 0;
	v->size = sizeof lk_text - 1;
	v->text = (thoth_bytes_t){ .ptr = lk_text, .len = sizeof lk_text - 1 };
	v->processes = 1;
	v->refused = (thoth_locks_Refusal_list_t){ .items = lk_refused, .count = 1 };
END
FILL(lk_page_req, thoth_locks_LockReports_page_req_t)
	v->snapshot = 3;
	v->offset = 262144;
END
FILL(lk_page_resp, thoth_locks_LockReports_page_resp_t)
	v->text = (thoth_bytes_t){ .ptr = lk_text, .len = sizeof lk_text - 1 };
END
FILL(ch_open_req, thoth_channel_Channel_open_req_t)
	v->package = thoth_str("thoth.echo");
	v->interface = thoth_str("Echo");
	v->interface_id = 0x1b2c3d4eu;
	v->major = 1;
	v->minor = 0;
	v->schema_hash = 0x0123456789abcdefull;
	v->features = 0x5;
	v->limits.slots = 256;
	v->client_wakeup = false;
END
FILL(ch_open_resp, thoth_channel_Channel_open_resp_t)
	v->status = 0;
	v->reason = thoth_str("");
	v->major = 1;
	v->features = 0x1;
	v->limits.slots = 256;
	v->limits.pool_buf_size = 65536;
	v->limits.pool_bufs = 512;
	v->shm_size = 67256320;
END

typedef struct fixture {
	const char *file;
	const thoth_method_info_t *m;
	bool response;
	void (*fill)(void *v);
} fixture_t;

#define REQ(name, info, fn) { name ".req", &info, false, fn }
#define RESP(name, info, fn) { name ".resp", &info, true, fn }

static const fixture_t fixtures[] = {
	REQ("Registry.register", thoth_registry_Registry_register_info, reg_register_req),
	RESP("Registry.register", thoth_registry_Registry_register_info, reg_register_resp),
	REQ("Registry.resolve", thoth_registry_Registry_resolve_info, reg_resolve_req),
	RESP("Registry.resolve", thoth_registry_Registry_resolve_info, reg_resolve_resp),
	REQ("Registry.batch_resolve", thoth_registry_Registry_batch_resolve_info, reg_batch_req),
	RESP("Registry.batch_resolve", thoth_registry_Registry_batch_resolve_info, reg_batch_resp),
	REQ("Registry.list", thoth_registry_Registry_list_info, reg_list_req),
	RESP("Registry.list", thoth_registry_Registry_list_info, reg_list_resp),
	REQ("Registry.list_page", thoth_registry_Registry_list_page_info, reg_list_page_req),
	RESP("Registry.list_page", thoth_registry_Registry_list_page_info, reg_list_page_resp),
	REQ("Registry.renew", thoth_registry_Registry_renew_info, reg_renew_req),
	RESP("Registry.renew", thoth_registry_Registry_renew_info, reg_renew_resp),
	REQ("Registry.withdraw", thoth_registry_Registry_withdraw_info, reg_withdraw_req),
	RESP("Registry.withdraw", thoth_registry_Registry_withdraw_info, reg_withdraw_resp),
	REQ("Registry.heartbeat", thoth_registry_Registry_heartbeat_info, reg_heartbeat_req),
	REQ("Registry.report_load", thoth_registry_Registry_report_load_info, reg_report_load_req),
	REQ("Registry.watch", thoth_registry_Registry_watch_info, reg_watch_req),
	RESP("Registry.watch", thoth_registry_Registry_watch_info, reg_watch_resp),
	REQ("Registry.unwatch", thoth_registry_Registry_unwatch_info, reg_unwatch_req),
	RESP("Registry.unwatch", thoth_registry_Registry_unwatch_info, reg_unwatch_resp),
	REQ("RegistryEvents.changed", thoth_registry_RegistryEvents_changed_info, ev_changed_req),
	REQ("Timer.arm", thoth_timer_Timer_arm_info, tm_arm_req),
	RESP("Timer.arm", thoth_timer_Timer_arm_info, tm_arm_resp),
	REQ("Timer.cancel", thoth_timer_Timer_cancel_info, tm_cancel_req),
	RESP("Timer.cancel", thoth_timer_Timer_cancel_info, tm_cancel_resp),
	REQ("TimerEvents.fired", thoth_timer_TimerEvents_fired_info, tm_fired_req),
	REQ("TraceControl.attach", thoth_trace_TraceControl_attach_info, tr_attach_req),
	REQ("TraceControl.start_pid", thoth_trace_TraceControl_start_pid_info, tr_start_pid_req),
	RESP("TraceControl.start_pid", thoth_trace_TraceControl_start_pid_info, tr_start_pid_resp),
	REQ("TraceControl.write", thoth_trace_TraceControl_write_info, tr_write_req),
	RESP("TraceControl.write", thoth_trace_TraceControl_write_info, tr_write_resp),
	REQ("TraceControl.start", thoth_trace_TraceControl_start_info, tr_start_req),
	RESP("TraceControl.start", thoth_trace_TraceControl_start_info, tr_start_resp),
	REQ("TraceControl.stop", thoth_trace_TraceControl_stop_info, tr_stop_req),
	RESP("TraceControl.stop", thoth_trace_TraceControl_stop_info, tr_stop_resp),
	REQ("TraceControl.dump", thoth_trace_TraceControl_dump_info, tr_dump_req),
	RESP("TraceControl.dump", thoth_trace_TraceControl_dump_info, tr_dump_resp),
	REQ("LockReports.report", thoth_locks_LockReports_report_info, lk_report_req),
	RESP("LockReports.report", thoth_locks_LockReports_report_info, lk_report_resp),
	REQ("LockReports.page", thoth_locks_LockReports_page_info, lk_page_req),
	RESP("LockReports.page", thoth_locks_LockReports_page_info, lk_page_resp),
	REQ("Channel.open", thoth_channel_Channel_open_info, ch_open_req),
	RESP("Channel.open", thoth_channel_Channel_open_info, ch_open_resp),
};

/* ---- the test ------------------------------------------------------------ */

static uint64_t value[512], again[512], enc[2048], golden[2048], reenc[2048], scratch[4096];

static void check_fixture(const fixture_t *fx, bool regen)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.hex", GOLDEN_DIR, fx->file);
	thoth_msg_header_t meta = { .features = 0x1, .trace_id = 0x7472616365ull, .request_id = 42 };
	if (fx->m->oneway && !fx->response)
		meta.request_id = 0;

	fx->fill(value);
	size_t len;
	int r = thoth_method_encode(fx->m, fx->response, value, &meta, enc, sizeof enc, &len);
	if (r)
		fail_msg("%s: encode failed: %s", fx->file, thoth_strerror(r));
	if (regen) {
		char title[300];
		snprintf(title, sizeof title, "%s %s (interface %08x, method %u); schemas in idl/",
			 fx->m->name, fx->response ? "response" : "request", fx->m->interface_id,
			 fx->m->ordinal);
		assert_int_equal(golden_write_hex(path, (uint8_t *)enc, len, title), 0);
		return;
	}
	size_t glen = golden_read_hex(path, (uint8_t *)golden, sizeof golden);
	if (glen != len || memcmp(golden, enc, len) != 0)
		fail_msg("%s: encoding differs from the golden vector (%zu vs %zu bytes)", fx->file,
			 len, glen);

	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	r = thoth_method_decode(fx->m, fx->response, (uint8_t *)golden, glen, again, &a);
	if (r)
		fail_msg("%s: golden bytes do not decode: %s", fx->file, thoth_strerror(r));
	size_t rlen;
	r = thoth_method_encode(fx->m, fx->response, again, &meta, reenc, sizeof reenc, &rlen);
	if (r || rlen != glen || memcmp(reenc, golden, glen) != 0)
		fail_msg("%s: decode+encode does not reproduce the golden bytes", fx->file);
}

static void test_every_system_message_matches_its_golden_vector(void **state)
{
	bool regen = getenv("THOTH_GOLDEN_REGEN") != NULL;
	for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
		check_fixture(&fixtures[i], regen);
}

static void test_every_system_method_has_golden_vectors(void **state)
{
	const thoth_interface_info_t *ifaces[] = {
		&thoth_registry_Registry_info, &thoth_registry_RegistryEvents_info,
		&thoth_timer_Timer_info, &thoth_timer_TimerEvents_info,
		&thoth_trace_TraceControl_info, &thoth_channel_Channel_info,
		&thoth_locks_LockReports_info,
	};
	for (size_t i = 0; i < sizeof ifaces / sizeof ifaces[0]; i++) {
		for (size_t k = 0; k < ifaces[i]->n_methods; k++) {
			const thoth_method_info_t *m = ifaces[i]->methods[k];
			bool req = false, resp = false;
			for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
				if (fixtures[f].m != m)
					continue;
				if (fixtures[f].response)
					resp = true;
				else
					req = true;
			}
			if (!req || (!m->oneway && !resp))
				fail_msg("%s has no golden %s", m->name, req ? "response" : "request");
		}
	}
}

/* Decoded values match the fixture field by field (not only via re-encoding). */
static void test_golden_registry_resolve_response_decodes_to_fixture(void **state)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/Registry.resolve.resp.hex", GOLDEN_DIR);
	size_t n = golden_read_hex(path, (uint8_t *)golden, sizeof golden);
	thoth_registry_Registry_resolve_resp_t out;
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	assert_int_equal(thoth_method_decode(&thoth_registry_Registry_resolve_info, true,
					     (uint8_t *)golden, n, &out, &a), 0);
	const thoth_registry_Instance_t *in = &out.instance;
	assert_string_equal(in->registration.name.ptr, "codex");
	assert_string_equal(in->registration.version.ptr, "1.4.2");
	assert_string_equal(in->registration.endpoint.addr.ptr, "/run/thoth/codex.0.sock");
	assert_int_equal(in->registration.endpoint.numa_node, 1);
	assert_int_equal(in->registration.endpoint.locality, THOTH_COMMON_LOCALITY_HOST);
	assert_int_equal(in->registration.endpoint.pid, 4242);
	assert_int_equal(in->registration.ttl_ms, 5000);
	assert_int_equal(in->registration.claims.count, 1);
	assert_string_equal(in->registration.claims.items[0].interface.ptr, "Codex");
	assert_int_equal(in->registration.claims.items[0].schema_hash, 0x0102030405060708ull);
	assert_int_equal(in->lease, 0xfeedface00000001ull);
	assert_int_equal(in->owner_uid, 1000);
	thoth_msg_header_t h = { 0 };
	assert_int_equal(thoth_wire_header_decode((uint8_t *)golden, n, &h), 0);
	assert_int_equal(h.trace_id, 0x7472616365ull);
	assert_int_equal(h.request_id, 42);
	assert_int_equal(h.interface_id, THOTH_REGISTRY_REGISTRY_ID);
}

static void test_golden_timer_arm_request_bytes_are_as_documented(void **state)
{
	/* Spelled out by hand from docs/WIRE.md, independently of the encoder. */
	char path[1024];
	snprintf(path, sizeof path, "%s/Timer.arm.req.hex", GOLDEN_DIR);
	size_t n = golden_read_hex(path, (uint8_t *)golden, sizeof golden);
	const uint8_t *m = (const uint8_t *)golden;
	assert_int_equal(n, 40 + 8 + 24);
	assert_memory_equal(m, "THW1", 4);
	assert_int_equal(m[4], 1);                          /* major */
	assert_int_equal(m[5], 0);                          /* minor */
	assert_int_equal(thoth_le16(m + 6), THOTH_MSG_REQUEST);
	assert_int_equal(thoth_le32(m + 8), thoth_wire_fnv1a32("thoth.timer.Timer"));
	assert_int_equal(thoth_le32(m + 12), 1);            /* arm */
	assert_int_equal(thoth_le32(m + 36), 32);           /* body */
	assert_int_equal(thoth_le32(m + 40), 24);           /* fixed_size: 3 x u64 */
	assert_int_equal(thoth_le32(m + 44), 3);            /* field_count */
	assert_int_equal(thoth_le64(m + 48), 123456789000ull);
	assert_int_equal(thoth_le64(m + 56), 5000000);
	assert_int_equal(thoth_le64(m + 64), 0xc00c1e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_system_message_matches_its_golden_vector),
		cmocka_unit_test(test_every_system_method_has_golden_vectors),
		cmocka_unit_test(test_golden_registry_resolve_response_decodes_to_fixture),
		cmocka_unit_test(test_golden_timer_arm_request_bytes_are_as_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
