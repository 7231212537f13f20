/*
 * make_seeds.c - writes the seed corpus of fuzz_thothd_control: one file per
 * interesting conversation (valid calls of every Registry method and
 * Daemon.status, a bad name, empty TraceControl paths, pipelined messages,
 * garbage, an oversized header, a truncated message, PowerBroker.service_qos
 * and drop_service_qos, held and refused, LockReports with no table and a
 * page of no snapshot).  Run: fuzz_thothd_make_seeds DIR.
 */
#include <stdio.h>
#include <string.h>

#include "daemon.thoth.h"
#include "pm.thoth.h"
#include "locks.thoth.h"
#include "registry.thoth.h"
#include "trace.thoth.h"

static uint64_t buf[4096];
static size_t len;

static void add(const thoth_method_info_t *m, const void *req)
{
	thoth_msg_header_t meta = { .features = THOTH_REGISTRY_FEATURES_ALL, .request_id = 7 };
	size_t n;
	if (thoth_method_encode(m, false, req, &meta, (uint8_t *)buf + len, sizeof buf - len, &n)) {
		fprintf(stderr, "cannot encode %s\n", m->name);
		return;
	}
	len += n;
}

static void save(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(buf, 1, len, f);
		fclose(f);
	}
	len = 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	thoth_common_InterfaceClaim_t claim = {
		.package = thoth_str("thoth.echo"), .interface = thoth_str("Echo"),
		.interface_id = thoth_wire_fnv1a32("thoth.echo.Echo"), .major = 1, .schema_hash = 1,
	};
	thoth_registry_Registry_register_req_t reg = { .reg = {
		.name = thoth_str("echo"), .version = thoth_str("1.2.3"),
		.endpoint = { .addr = thoth_str("/run/echo.sock"), .numa_node = 1,
			      .locality = THOTH_COMMON_LOCALITY_HOST, .instance_id = 9, .pid = 1 },
		.ttl_ms = 1000, .claims = { &claim, 1 },
	} };
	thoth_registry_Registry_resolve_req_t res = {
		.name = thoth_str("echo"), .min_version = thoth_str("1.0.0"),
		.prefer = THOTH_COMMON_LOCALITY_NUMA, .numa_node = 1,
	};
	thoth_str_t names[] = { thoth_str("echo"), thoth_str("codex") };
	thoth_registry_Registry_batch_resolve_req_t batch = { .names = { names, 2 } };
	thoth_registry_Registry_list_req_t list = { .prefix = thoth_str("e") };
	thoth_registry_Registry_renew_req_t renew = { .lease = 0x1234 };
	thoth_registry_Registry_withdraw_req_t withdraw = { .lease = 0x1234 };
	thoth_registry_Registry_heartbeat_req_t hb = { .lease = 0x1234 };
	thoth_registry_Registry_watch_req_t watch = { .prefix = thoth_str("") };
	thoth_registry_Registry_unwatch_req_t unwatch = { .watch_id = 1 };
	thoth_daemon_Daemon_status_req_t status = { 0 };

	add(&thoth_registry_Registry_register_info, &reg);
	save(dir, "register");
	add(&thoth_registry_Registry_register_info, &reg);
	add(&thoth_registry_Registry_resolve_info, &res);
	add(&thoth_registry_Registry_list_info, &list);
	add(&thoth_registry_Registry_batch_resolve_info, &batch);
	save(dir, "register-resolve-list-batch");
	add(&thoth_registry_Registry_renew_info, &renew);
	add(&thoth_registry_Registry_heartbeat_info, &hb);
	add(&thoth_registry_Registry_withdraw_info, &withdraw);
	save(dir, "renew-heartbeat-withdraw");
	/* SCALE-3 load reports: a good one, then absurd values (refused). */
	thoth_registry_Registry_report_load_req_t load = { .lease = 0x1234, .utilization_permille = 500,
							    .qps = 100 };
	add(&thoth_registry_Registry_register_info, &reg);
	add(&thoth_registry_Registry_report_load_info, &load);
	load.utilization_permille = UINT32_MAX;
	load.qps = UINT32_MAX;
	add(&thoth_registry_Registry_report_load_info, &load);
	save(dir, "register-report-load-hostile");
	add(&thoth_registry_Registry_watch_info, &watch);
	add(&thoth_registry_Registry_unwatch_info, &unwatch);
	add(&thoth_daemon_Daemon_status_info, &status);
	save(dir, "watch-unwatch-status");
	reg.reg.name = thoth_str("Not A Name");
	add(&thoth_registry_Registry_register_info, &reg);
	save(dir, "bad-name");
	for (int i = 0; i < 10; i++) {
		reg.reg.name = thoth_str(i % 2 ? "echo" : "codex");
		add(&thoth_registry_Registry_register_info, &reg);
	}
	save(dir, "flood-past-limit");
	add(&thoth_registry_Registry_resolve_info, &res);
	len -= 12;                      /* truncated */
	save(dir, "truncated");
	memset(buf, 'x', 64);
	len = 64;
	save(dir, "garbage");
	thoth_msg_header_t big = { .schema_major = 1, .flags = THOTH_MSG_REQUEST,
				   .interface_id = THOTH_REGISTRY_REGISTRY_ID, .method = 2,
				   .body_len = 64u << 20 };
	thoth_wire_header_encode((uint8_t *)buf, &big);
	len = THOTH_WIRE_HEADER_SIZE;
	save(dir, "oversized-header");
	/* Once a NULL load in trace.c (issue 11, item 10): a TraceControl.dump
	 * and a .write whose strings are empty (48 bytes each: header and an
	 * empty body), alone and after a session collected something. */
	thoth_trace_TraceControl_dump_req_t dump = { 0 };
	thoth_trace_TraceControl_write_req_t write_empty = { 0 };
	thoth_trace_TraceControl_start_req_t start = { 0 };
	thoth_trace_TraceControl_stop_req_t stop = { 0 };
	add(&thoth_trace_TraceControl_dump_info, &dump);
	save(dir, "trace-dump-empty");
	add(&thoth_trace_TraceControl_write_info, &write_empty);
	save(dir, "trace-write-empty");
	/* The fuzzer's own find: 48 bytes, a body holding a struct header that
	 * lists no field at all (an older schema's request), so the path is
	 * absent rather than empty. */
	for (int m = 0; m < 2; m++) {
		add(m ? &thoth_trace_TraceControl_write_info : &thoth_trace_TraceControl_dump_info,
		    m ? (const void *)&write_empty : (const void *)&dump);
		uint8_t *b = (uint8_t *)buf;
		b[36] = 8;              /* body_len */
		b[37] = b[38] = b[39] = 0;
		memset(b + THOTH_WIRE_HEADER_SIZE, 0, 8);
		len = THOTH_WIRE_HEADER_SIZE + 8;
		save(dir, m ? "trace-write-absent-48" : "trace-dump-absent-48");
	}
	/* PM-2, a latency bound attached to a resolve (idl/pm.tidl 1.2): this
	 * connection drives a disk element and serves "echo", so the bound
	 * covers the element (an opportunistic lease with the bound, the CPU
	 * latency request at it); changed, dropped, asked again and left held
	 * when the client hangs up (the harness checks nothing is left). */
	thoth_pm_Level_t levels[] = {
		{ .name = thoth_str("OFF"), .power_mw = 0.5, .entry_latency_us = 5000, .exit_latency_us = 30000 },
		{ .name = thoth_str("IDLE"), .power_mw = 80, .entry_latency_us = 500, .exit_latency_us = 2000 },
		{ .name = thoth_str("ACTIVE"), .power_mw = 900 },
	};
	thoth_pm_Element_t el = { .name = thoth_str("disk"), .levels = { levels, 3 } };
	thoth_pm_PowerBroker_declare_req_t declare = { .elements = { &el, 1 } };
	thoth_pm_PowerBroker_service_qos_req_t sq = { .service = thoth_str("echo"), .qos_us = 3000 };
	thoth_pm_PowerBroker_drop_service_qos_req_t dsq = { .qos = 1 };
	thoth_pm_PowerBroker_state_req_t pm_state = { 0 };
	reg.reg.name = thoth_str("echo");
	add(&thoth_pm_PowerBroker_declare_info, &declare);
	add(&thoth_registry_Registry_register_info, &reg);
	add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	add(&thoth_pm_PowerBroker_state_info, &pm_state);
	sq.qos_us = 50000;
	add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	add(&thoth_pm_PowerBroker_drop_service_qos_info, &dsq);
	sq.qos_us = 200;
	add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	add(&thoth_pm_PowerBroker_state_info, &pm_state);
	save(dir, "service-qos");
	/* Before the service exists, then withdrawn under it. */
	sq.qos_us = 3000;
	add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	add(&thoth_pm_PowerBroker_declare_info, &declare);
	add(&thoth_registry_Registry_register_info, &reg);
	add(&thoth_registry_Registry_withdraw_info, &withdraw);
	add(&thoth_pm_PowerBroker_state_info, &pm_state);
	save(dir, "service-qos-before-register");
	/* Refused, each naming its field: bounds 0 and over 10 s, names that
	 * are not names, 17 records (16 per connection), someone else's and
	 * unknown records to drop. */
	const uint32_t bad_us[] = { 0, 10000001, UINT32_MAX };
	for (size_t i = 0; i < sizeof bad_us / sizeof bad_us[0]; i++) {
		sq.qos_us = bad_us[i];
		add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	}
	sq.qos_us = 100;
	const char *bad_names[] = { "", "9store", "Not A Name", "a/b" };
	for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
		sq.service = thoth_str(bad_names[i]);
		add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	}
	sq.service = thoth_str("echo");
	for (int i = 0; i < 17; i++) {
		sq.qos_us = 1000 + (uint32_t)i;
		add(&thoth_pm_PowerBroker_service_qos_info, &sq);
	}
	const uint64_t drops[] = { 0, 1, UINT64_MAX };
	for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
		dsq.qos = drops[i];
		add(&thoth_pm_PowerBroker_drop_service_qos_info, &dsq);
	}
	save(dir, "service-qos-hostile");
	add(&thoth_trace_TraceControl_start_info, &start);
	add(&thoth_trace_TraceControl_dump_info, &dump);
	add(&thoth_trace_TraceControl_write_info, &write_empty);
	add(&thoth_trace_TraceControl_stop_info, &stop);
	add(&thoth_trace_TraceControl_write_info, &write_empty);
	save(dir, "trace-session-write-empty");
	/* LockReports (OBS-4): a report where nobody publishes tables, then
	 * pages of snapshots that do not exist, at offsets near the limits. */
	thoth_locks_LockReports_report_req_t lrep = { .pid = 4242, .top = 3, .json = true };
	thoth_locks_LockReports_page_req_t lpage = { .snapshot = 1, .offset = 0 };
	add(&thoth_locks_LockReports_report_info, &lrep);
	add(&thoth_locks_LockReports_page_info, &lpage);
	lpage.snapshot = UINT64_MAX;
	lpage.offset = UINT64_MAX;
	add(&thoth_locks_LockReports_page_info, &lpage);
	save(dir, "locks-report-page");
	return 0;
}
