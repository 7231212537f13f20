/*
 * test_rtable_thothd.c - the shared resolve table with a real thothd
 * (SCALE-2): handed over on a control connection as a sealed read-only
 * memfd, answers without a round trip once a service registers, loses the
 * instance the moment its owner's connection closes (watchers woken), and
 * sends what it cannot hold (a name longer than the table's slots, a name
 * it never saw) to thothd by round trip; and carries thothd's status.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "thoth/rtable.h"

static harness_t h;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	return 0;
}

static int teardown(void **state)
{
	harness_teardown(&h);
	return 0;
}

static void test_registered_service_resolves_from_the_table_without_a_round_trip(void **state)
{
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	thoth_rtable_stats_t st;
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	uint32_t gen = thoth_rtable_generation(t);

	thoth_control_t svc;
	assert_int_equal(harness_connect(&h, &svc), 0);
	uint64_t lease;
	assert_int_equal(harness_register(&svc, "alpha", 0, &lease), 0);
	/* thothd wrote the table before it answered the registration. */
	assert_true(thoth_rtable_generation(t) != gen);
	thoth_resolved_t where;
	assert_int_equal(thoth_rtable_lookup(t, "alpha", "1.0.0", 0, &where), 0);
	assert_string_equal(where.addr, "/nowhere.sock");
	assert_int_equal(where.pid, (uint32_t)getpid());        /* SO_PEERCRED: this process registered */
	for (int i = 0; i < 100; i++)
		assert_int_equal(thoth_rtable_resolve(t, "alpha", NULL, &where), 0);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.hits, 100);
	assert_int_equal(st.misses, 0);
	assert_int_equal(st.entries, 1);
	assert_false(st.incomplete);

	/* Unknown: the table misses, thothd is asked and says so. */
	assert_int_equal(thoth_rtable_resolve(t, "nobody", NULL, &where), THOTH_E_NOT_FOUND);
	/* Too long for the table's slots (valid for the registry): found by
	 * round trip, and the table says it is incomplete meanwhile. */
	char longname[101];
	memset(longname, 'b', 100);
	longname[100] = 0;
	assert_int_equal(harness_register(&svc, longname, 0, NULL), 0);
	assert_int_equal(thoth_rtable_resolve(t, longname, NULL, &where), 0);
	assert_string_equal(where.addr, "/nowhere.sock");
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.misses, 2);
	assert_true(st.incomplete);

	/* Peer death: the registering connection closes; thothd removes its
	 * instances from the table and wakes watchers. */
	gen = thoth_rtable_generation(t);
	thoth_control_close(&svc);
	assert_int_equal(thoth_rtable_wait(t, gen, 5000), 0);
	uint64_t deadline = harness_now_ms() + 5000;
	while (thoth_rtable_lookup(t, "alpha", NULL, 0, &where) == 0 && harness_now_ms() < deadline)
		thoth_rtable_wait(t, thoth_rtable_generation(t), 100);
	assert_int_equal(thoth_rtable_lookup(t, "alpha", NULL, 0, &where), THOTH_E_NOT_FOUND);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.entries, 0);
	assert_false(st.incomplete);    /* the long one went too */
	thoth_rtable_close(t);
}

static void test_a_name_handle_reads_the_table_once_per_change(void **state)
{
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	thoth_rtable_name_t *n = NULL, *bad = NULL, *lng = NULL;
	assert_int_equal(thoth_rtable_name_open(t, "beta", "1.x", &bad), THOTH_E_INVAL);
	assert_null(bad);
	assert_int_equal(thoth_rtable_name_open(t, "", NULL, &bad), THOTH_E_INVAL);
	assert_int_equal(thoth_rtable_name_open(t, "beta", "1.0.0", &n), 0);
	const thoth_resolved_t *where = NULL;
	/* Nothing registered: the table misses and thothd is asked. */
	assert_int_equal(thoth_rtable_name_resolve(n, &where), THOTH_E_NOT_FOUND);

	thoth_control_t svc;
	assert_int_equal(harness_connect(&h, &svc), 0);
	assert_int_equal(harness_register(&svc, "beta", 0, NULL), 0);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(thoth_rtable_name_resolve(n, &where), 0);
		assert_string_equal(where->addr, "/nowhere.sock");
	}
	thoth_rtable_stats_t st;
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.hits, 100);
	assert_int_equal(st.refreshes, 1);      /* read once, then kept */
	assert_int_equal(st.misses, 1);
	/* Another registration changes the table: read again, once. */
	assert_int_equal(harness_register(&svc, "gamma", 0, NULL), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(thoth_rtable_name_resolve(n, &where), 0);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.refreshes, 2);
	/* A list from the same table: no round trip. */
	thoth_rtable_instance_t all[4];
	size_t total = 0;
	assert_int_equal(thoth_rtable_list(t, NULL, all, 4, &total), 0);
	assert_int_equal(total, 2);
	assert_int_equal(thoth_rtable_list(t, "g", all, 4, &total), 0);
	assert_int_equal(total, 1);
	assert_string_equal(all[0].name, "gamma");
	assert_string_equal(all[0].addr, "/nowhere.sock");
	assert_int_equal(all[0].pid, (uint32_t)getpid());
	assert_int_equal(all[0].major, 1);
	assert_int_equal(all[0].expires_at_ns, UINT64_MAX);
	assert_int_equal(thoth_rtable_list(t, "", all, 1, &total), 0);
	assert_int_equal(total, 2);             /* more than the room given */
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.misses, 1);
	/* A name too long for the table: every resolve is a round trip. */
	char longname[101];
	memset(longname, 'c', 100);
	longname[100] = 0;
	assert_int_equal(harness_register(&svc, longname, 0, NULL), 0);
	assert_int_equal(thoth_rtable_name_open(t, longname, NULL, &lng), 0);
	assert_int_equal(thoth_rtable_name_resolve(lng, &where), 0);
	assert_int_equal(thoth_rtable_name_resolve(lng, &where), 0);
	thoth_rtable_stats(t, &st);
	assert_int_equal(st.misses, 3);
	/* The table lacks it: a list from the table says it may be partial. */
	assert_int_equal(thoth_rtable_list(t, NULL, all, 4, &total), THOTH_E_LIMIT);
	/* The owner goes: the kept answer goes with the table's change. */
	uint32_t gen = thoth_rtable_generation(t);
	thoth_control_close(&svc);
	assert_int_equal(thoth_rtable_wait(t, gen, 5000), 0);
	uint64_t deadline = harness_now_ms() + 5000;
	while (thoth_rtable_lookup(t, "beta", NULL, 0, &(thoth_resolved_t){ 0 }) == 0 &&
	       harness_now_ms() < deadline)
		thoth_rtable_wait(t, thoth_rtable_generation(t), 100);
	assert_int_equal(thoth_rtable_name_resolve(n, &where), THOTH_E_NOT_FOUND);
	thoth_rtable_name_close(lng);
	thoth_rtable_name_close(n);
	thoth_rtable_close(t);
}

/* thothd's status from the table (SCALE-2): the same answer Daemon.status
 * gives, published before thothd answers anything, and reading it costs
 * thothd nothing: no message, no wake-up. */
static void test_status_is_read_from_the_table_and_costs_thothd_nothing(void **state)
{
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	thoth_daemon_Daemon_status_resp_t rt;
	assert_int_equal(harness_status(&ctl, &rt), 0);
	thoth_rtable_status_t st;
	assert_int_equal(thoth_rtable_status(t, &st), 0);
	/* Published before the answer we just got: at least as new. */
	assert_int_equal(st.pid, rt.pid);
	assert_int_equal(st.registrations, rt.registrations);
	assert_int_equal(st.clients, rt.clients);
	assert_true(st.wakeups >= rt.wakeups);
	assert_true(st.uptime_ns > 0);
	assert_true(st.publishes > 0);
	assert_int_equal(strlen(st.version), rt.version.len);
	assert_memory_equal(st.version, rt.version.ptr, rt.version.len);
	assert_string_equal(st.runtime_dir, h.dir);

	/* A registration shows before register returns. */
	assert_int_equal(harness_register(&ctl, "delta", 0, NULL), 0);
	assert_int_equal(thoth_rtable_status(t, &st), 0);
	assert_int_equal(st.registrations, rt.registrations + 1);

	/* 10,000 status reads: thothd handled no message and never woke up
	 * (an idle thothd arms no timer: test_thothd_idle). */
	thoth_rtable_status_t first, last;
	assert_int_equal(thoth_rtable_status(t, &first), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(thoth_rtable_status(t, &last), 0);
	assert_int_equal(last.messages, first.messages);
	assert_int_equal(last.wakeups, first.wakeups);
	/* thothd may still finish the iteration that answered the
	 * registration (one more publish at its end), no more: it was not
	 * woken again. */
	assert_true(last.publishes <= first.publishes + 1);
	/* One round trip: the table counts it before the answer arrives. */
	assert_int_equal(harness_status(&ctl, &rt), 0);
	assert_int_equal(thoth_rtable_status(t, &last), 0);
	assert_int_equal(last.messages, first.messages + 1);
	/* Not "> first": if thothd was still in the iteration that answered
	 * the registration (the publish allowed above), it may read the
	 * status request in that same iteration, without a new wake-up
	 * (seen once in a clean-clone run). */
	assert_true(last.wakeups >= first.wakeups);
	thoth_control_close(&ctl);
	thoth_rtable_close(t);
}

/* ---- two real nodes (the QEMU guest of scripts/qemu-numa.sh) ---------- */

static void register_on_node(thoth_control_t *ctl, const char *addr, uint16_t node)
{
	thoth_registry_Registry_register_req_t req = {
		.reg = {
			.name = thoth_str("near"), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(addr), .numa_node = node,
				      .locality = THOTH_COMMON_LOCALITY_HOST },
		},
	};
	thoth_registry_Registry_register_resp_t resp;
	assert_int_equal(thoth_registry_Registry_register(&ctl->client, &req, &resp, NULL), 0);
}

static int first_cpu_of(int node)
{
	char path[96], buf[64] = "";
	snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", node);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof buf, f))
		buf[0] = 0;
	fclose(f);
	return buf[0] >= '0' && buf[0] <= '9' ? atoi(buf) : -1;
}

static void run_on(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
}

/*
 * SCALE-1's resolve on a machine with two nodes: thothd reads the real
 * distance matrix (hwloc), an instance registered on each node, and a
 * caller is given the one on the node it runs on, from the table (full
 * lookup and name handle: the handle asks getcpu on every call only on a
 * multi-node machine, the path a one-node machine skips) and by round
 * trip.  Moving the caller to the other node moves the answer.
 */
static void test_on_two_nodes_a_caller_is_given_the_instance_on_its_node(void **state)
{
	int cpu0 = first_cpu_of(0), cpu1 = first_cpu_of(1);
	if (cpu0 < 0 || cpu1 < 0) {
		print_message("one NUMA node online: skipped (scripts/qemu-numa.sh runs this in a 2-node guest)\n");
		skip();
	}
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	thoth_control_t svc;
	assert_int_equal(harness_connect(&h, &svc), 0);
	register_on_node(&svc, "/node0.sock", 0);
	register_on_node(&svc, "/node1.sock", 1);
	cpu_set_t saved;
	assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
	thoth_rtable_name_t *n = NULL;
	assert_int_equal(thoth_rtable_name_open(t, "near", NULL, &n), 0);
	static const char *want[2] = { "/node0.sock", "/node1.sock" };
	for (int pass = 0; pass < 4; pass++) {
		int node = pass % 2;
		run_on(node ? cpu1 : cpu0);
		thoth_resolved_t where;
		for (int i = 0; i < 10; i++) {
			assert_int_equal(thoth_rtable_resolve(t, "near", NULL, &where), 0);
			assert_string_equal(where.addr, want[node]);
			assert_int_equal(where.numa_node, node);
			const thoth_resolved_t *w = NULL;
			assert_int_equal(thoth_rtable_name_resolve(n, &w), 0);
			assert_string_equal(w->addr, want[node]);
		}
		/* thothd's own answer, by round trip, for a caller on NODE. */
		thoth_registry_Registry_resolve_req_t rq = {
			.name = thoth_str("near"), .min_version = thoth_str(""),
			.prefer = THOTH_COMMON_LOCALITY_NUMA, .numa_node = (uint16_t)node,
		};
		thoth_registry_Registry_resolve_resp_t rs;
		assert_int_equal(thoth_registry_Registry_resolve(&svc.client, &rq, &rs, NULL), 0);
		assert_int_equal(rs.instance.registration.endpoint.numa_node, node);
	}
	print_message("two nodes: callers on node 0 and node 1 each given their own node's instance\n");
	assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
	thoth_rtable_name_close(n);
	thoth_control_close(&svc);
	thoth_rtable_close(t);
}

/* `thothctl status --watch MS` prints from the table: its lines go on
 * while thothd handles no message for them. */
static char watch_log[400];

static bool three_lines(void *arg)
{
	FILE *f = fopen(watch_log, "re");
	if (!f)
		return false;
	int n = 0, c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n >= 3;
}

static void test_thothctl_status_watch_reads_the_table(void **state)
{
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "--json", "status", "--watch", "20", NULL };
	pid_t pid = harness_spawn(&h, "watch", argv);
	assert_true(pid > 0);
	snprintf(watch_log, sizeof watch_log, "%s/watch.log", h.dir);
	assert_true(harness_wait_until(three_lines, NULL, 10000));
	harness_kill(&h, pid, SIGTERM);
	FILE *f = fopen(watch_log, "re");
	assert_non_null(f);
	char line[1024];
	unsigned long long messages = 0;
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		const char *m = strstr(line, "\"messages\":");
		assert_non_null(m);
		assert_non_null(strstr(line, "\"source\":\"table\""));
		unsigned long long v = strtoull(m + 11, NULL, 10);
		if (n++ == 0)
			messages = v;
		/* The table was taken (one request) before the first line; no
		 * line after it asked thothd anything. */
		assert_int_equal(v, messages);
	}
	fclose(f);
	assert_true(n >= 3);
}

static void test_without_thothd_open_says_so(void **state)
{
	assert_int_equal(harness_stop_thothd(&h), 0);
	thoth_rtable_t *t = (thoth_rtable_t *)1;
	char why[300] = "";
	int r = thoth_rtable_open(h.dir, &t, why, sizeof why);
	assert_int_equal(r, THOTH_E_NOT_RUNNING);
	assert_null(t);
	assert_true(why[0] != 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registered_service_resolves_from_the_table_without_a_round_trip,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_name_handle_reads_the_table_once_per_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_is_read_from_the_table_and_costs_thothd_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_thothctl_status_watch_reads_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_two_nodes_a_caller_is_given_the_instance_on_its_node, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_without_thothd_open_says_so, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
