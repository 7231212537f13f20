/*
 * test_daemon_versions.c - Daemon.status across OBS-3's change (daemon.tidl
 * 1.4 -> 1.5: the request's with_events, the results' events,
 * events_dropped, events_capacity), through real encoded bytes, with
 * matrix/daemon_v1_4.tidl (the schema before it, C prefix d14_) linked
 * beside the current one (thoth_idl):
 *
 *   old thothd (1.4) answering a new thothctl: the request's with_events
 *     is skipped, and the answer decodes with events_capacity 0 and no
 *     events -- what thothctl says as "not kept by this thothd";
 *   new thothd answering an old thothctl: the old reader skips the history
 *     and reads every field it knows;
 *   a 1.5 caller that does not ask for events (with_events false) gets an
 *     answer it can decode with no arena, as before 1.5.
 * docs/THOTHD.md "Recent events", "Versions".
 *
 * And across SCALE-3's (1.5 -> 1.6: the request's with_federation, the
 * results' federation), with matrix/daemon_v1_5.tidl (prefix d15_):
 *   old thothd (1.5) answering a new thothctl: federation.state "" --
 *     what thothctl says as "not said by this thothd" (json null);
 *   new thothd answering an old thothctl: the old reader skips it;
 *   a 1.6 caller that does not ask WITH_FEDERATION gets the federation's
 *     figures with no host list: decodable with no arena.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "daemon.thoth.h"
#include "daemon_v1_4.thoth.h"
#include "daemon_v1_5.thoth.h"
#include "thoth/wire.h"

static uint64_t buf[4096], scratch[4096];

static size_t enc(const thoth_method_info_t *m, bool resp, const void *v)
{
	size_t len;
	thoth_msg_header_t meta = { .request_id = 1 };
	assert_int_equal(thoth_method_encode(m, resp, v, &meta, buf, sizeof buf, &len), 0);
	return len;
}

static int dec(const thoth_method_info_t *m, bool resp, size_t len, void *v, bool arena)
{
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	return thoth_method_decode(m, resp, (uint8_t *)buf, len, v, arena ? &a : NULL);
}

static void test_old_thothd_skips_with_events_and_answers_no_history(void **state)
{
	thoth_daemon_Daemon_status_req_t req = { .with_events = true };
	d14_Daemon_status_req_t old_req;
	size_t len = enc(&thoth_daemon_Daemon_status_info, false, &req);
	assert_int_equal(dec(&d14_Daemon_status_info, false, len, &old_req, true), 0);

	d14_Daemon_status_resp_t old = { .pid = 42, .uptime_ns = 7, .registrations = 3,
					 .runtime_dir = thoth_str("/run/t"), .version = thoth_str("0.1.0"),
					 .dashboard_url = thoth_str("http://127.0.0.1:9180/") };
	len = enc(&d14_Daemon_status_info, true, &old);
	thoth_daemon_Daemon_status_resp_t st;
	memset(&st, 0xa5, sizeof st);
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &st, true), 0);
	assert_int_equal(st.pid, 42);
	assert_int_equal(st.registrations, 3);
	assert_string_equal(st.dashboard_url.ptr, "http://127.0.0.1:9180/");
	assert_int_equal(st.events_capacity, 0);        /* thothctl: "not kept by this thothd" */
	assert_int_equal(st.events.count, 0);
	assert_int_equal(st.events_dropped, 0);
}

static void test_old_thothctl_reads_a_new_status_and_skips_the_history(void **state)
{
	thoth_daemon_LifecycleEvent_t ev[2] = {
		{ .kind = thoth_str("started"), .pid = 42, .predecessor_pid = 41 },
		{ .kind = thoth_str("lost"), .service = thoth_str("echo"), .version = thoth_str("1.0.0"),
		  .pid = 77, .pid_state = thoth_str("exited") },
	};
	thoth_daemon_Daemon_status_resp_t st = { .pid = 42, .clients = 2, .registrations = 1,
		.runtime_dir = thoth_str("/run/t"), .version = thoth_str("0.1.0"),
		.dashboard_url = thoth_str(""), .events = { ev, 2 }, .events_dropped = 5,
		.events_capacity = 64 };
	size_t len = enc(&thoth_daemon_Daemon_status_info, true, &st);
	d14_Daemon_status_resp_t old;
	/* no arena: the 1.4 answer needed none, and the skipped list needs none */
	assert_int_equal(dec(&d14_Daemon_status_info, true, len, &old, false), 0);
	assert_int_equal(old.pid, 42);
	assert_int_equal(old.clients, 2);
	assert_int_equal(old.registrations, 1);
	assert_string_equal(old.runtime_dir.ptr, "/run/t");
	assert_string_equal(old.version.ptr, "0.1.0");

	thoth_daemon_Daemon_status_resp_t back;
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &back, true), 0);
	assert_int_equal(back.events.count, 2);
	assert_string_equal(back.events.items[1].service.ptr, "echo");
	assert_string_equal(back.events.items[1].pid_state.ptr, "exited");
	assert_int_equal(back.events.items[0].predecessor_pid, 41);
	assert_int_equal(back.events_dropped, 5);
	assert_int_equal(back.events_capacity, 64);
}

static void test_a_status_without_events_decodes_with_no_arena(void **state)
{
	thoth_daemon_Daemon_status_resp_t st = { .pid = 1, .runtime_dir = thoth_str("/r"),
		.version = thoth_str("v"), .dashboard_url = thoth_str(""), .events_capacity = 64,
		.events_dropped = 3 }, out;
	size_t len = enc(&thoth_daemon_Daemon_status_info, true, &st);
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &out, false), 0);
	assert_int_equal(out.events_capacity, 64);
	assert_int_equal(out.events_dropped, 3);
	/* with the list, a caller with no arena is refused, not crashed: why
	 * thothd fills it only when asked */
	thoth_daemon_LifecycleEvent_t ev = { .kind = thoth_str("started") };
	st.events = (thoth_daemon_LifecycleEvent_list_t){ &ev, 1 };
	len = enc(&thoth_daemon_Daemon_status_info, true, &st);
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &out, false), THOTH_E_NO_SPACE);
}

static void test_old_thothd_1_5_says_no_federation(void **state)
{
	thoth_daemon_Daemon_status_req_t req = { .with_events = true, .with_federation = true };
	d15_Daemon_status_req_t old_req;
	size_t len = enc(&thoth_daemon_Daemon_status_info, false, &req);
	assert_int_equal(dec(&d15_Daemon_status_info, false, len, &old_req, true), 0);
	assert_true(old_req.with_events);

	d15_Daemon_status_resp_t old = { .pid = 42, .registrations = 3, .runtime_dir = thoth_str("/run/t"),
					 .version = thoth_str("0.1.0"), .dashboard_url = thoth_str(""),
					 .events_capacity = 64 };
	len = enc(&d15_Daemon_status_info, true, &old);
	thoth_daemon_Daemon_status_resp_t st;
	memset(&st, 0xa5, sizeof st);
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &st, true), 0);
	assert_int_equal(st.pid, 42);
	assert_int_equal(st.events_capacity, 64);
	assert_int_equal(st.federation.state.len, 0);   /* thothctl: "not said by this thothd" */
	assert_int_equal(st.federation.hosts.count, 0);
	assert_int_equal(st.federation.hosts_total, 0);
}

static void test_old_thothctl_1_5_reads_a_federated_status(void **state)
{
	thoth_daemon_FederationHost_t hosts[2] = {
		{ .id = thoth_str("hostb"), .instances = 2, .last_seen_ago_ns = 7 },
		{ .id = thoth_str("hostc"), .instances = 1, .last_seen_ago_ns = 9 },
	};
	thoth_daemon_Daemon_status_resp_t st = { .pid = 42, .clients = 2, .registrations = 1,
		.runtime_dir = thoth_str("/run/t"), .version = thoth_str("0.1.0"), .dashboard_url = thoth_str(""),
		.events_capacity = 64, .events_dropped = 1,
		.federation = { .state = thoth_str("on"), .etcd = thoth_str("http://127.0.0.1:2379"),
				.etcd_up = true, .host_id = thoth_str("hosta"), .lease_ttl_s = 10,
				.lease_alive = true, .watching = true, .remote = 3, .left_out = 4,
				.hosts_total = 2, .hosts = { hosts, 2 }, .conflicts = 1 } };
	size_t len = enc(&thoth_daemon_Daemon_status_info, true, &st);
	d15_Daemon_status_resp_t old;
	assert_int_equal(dec(&d15_Daemon_status_info, true, len, &old, true), 0);
	assert_int_equal(old.pid, 42);
	assert_int_equal(old.clients, 2);
	assert_string_equal(old.runtime_dir.ptr, "/run/t");
	assert_int_equal(old.events_capacity, 64);
	assert_int_equal(old.events_dropped, 1);

	thoth_daemon_Daemon_status_resp_t back;
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &back, true), 0);
	assert_string_equal(back.federation.state.ptr, "on");
	assert_string_equal(back.federation.host_id.ptr, "hosta");
	assert_int_equal(back.federation.lease_ttl_s, 10);
	assert_int_equal(back.federation.left_out, 4);
	assert_int_equal(back.federation.conflicts, 1);
	assert_int_equal(back.federation.hosts.count, 2);
	assert_string_equal(back.federation.hosts.items[1].id.ptr, "hostc");
	assert_int_equal(back.federation.hosts.items[0].instances, 2);
}

static void test_a_federated_status_without_hosts_decodes_with_no_arena(void **state)
{
	thoth_daemon_Daemon_status_resp_t st = { .pid = 1, .runtime_dir = thoth_str("/r"),
		.version = thoth_str("v"), .dashboard_url = thoth_str(""),
		.federation = { .state = thoth_str("on"), .etcd = thoth_str("http://e"), .host_id = thoth_str("h"),
				.hosts_total = 5 } }, out;
	size_t len = enc(&thoth_daemon_Daemon_status_info, true, &st);
	assert_int_equal(dec(&thoth_daemon_Daemon_status_info, true, len, &out, false), 0);
	assert_int_equal(out.federation.hosts_total, 5);
	assert_string_equal(out.federation.host_id.ptr, "h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_old_thothd_skips_with_events_and_answers_no_history),
		cmocka_unit_test(test_old_thothctl_reads_a_new_status_and_skips_the_history),
		cmocka_unit_test(test_a_status_without_events_decodes_with_no_arena),
		cmocka_unit_test(test_old_thothd_1_5_says_no_federation),
		cmocka_unit_test(test_old_thothctl_1_5_reads_a_federated_status),
		cmocka_unit_test(test_a_federated_status_without_hosts_decodes_with_no_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
