/*
 * test_pm_broker.c - the broker core's rules, one per test, with a
 * recording driver: transitions the broker asks for are kept in order and
 * finished by the test, so "dependencies first" is visible as an order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker.h"
#include "thoth/error.h"

#define SEC 1000000000ull

typedef struct rec {
	struct { uint32_t element, from, to; } tr[512];
	int n_tr;
	uint64_t ready[64];
	int n_ready;
	uint64_t failed[64];
	int n_failed;
	uint64_t lost[64];
	int n_lost;
	thoth_pm_lease_status_t last_status;
	struct { uint32_t element; bool idle; } idle[64];
	int n_idle;
} rec_t;

static void on_idle(void *arg, uint32_t e, bool idle, uint32_t *policy)
{
	rec_t *r = arg;
	if (r->n_idle < 64) {
		r->idle[r->n_idle].element = e;
		r->idle[r->n_idle].idle = idle;
	}
	r->n_idle++;
}

static void on_tr(void *arg, uint64_t driver, uint32_t e, uint32_t from, uint32_t to)
{
	rec_t *r = arg;
	assert_true(r->n_tr < 512);
	r->tr[r->n_tr].element = e;
	r->tr[r->n_tr].from = from;
	r->tr[r->n_tr].to = to;
	r->n_tr++;
}

static void on_status(void *arg, uint64_t lease, uint64_t holder, thoth_pm_lease_status_t s)
{
	rec_t *r = arg;
	r->last_status = s;
	if (s == THOTH_PM_LEASE_LOST && r->n_lost++ < 64)
		r->lost[r->n_lost - 1] = lease;
}

static void on_ready(void *arg, uint64_t req, uint64_t holder, uint32_t e)
{
	rec_t *r = arg;
	r->ready[r->n_ready++] = req;
}

static void on_failed(void *arg, uint64_t req, uint64_t holder, const char *why)
{
	rec_t *r = arg;
	assert_non_null(strstr(why, "driver is gone"));
	r->failed[r->n_failed++] = req;
}

static thoth_pm_broker_t *new_broker(rec_t *r)
{
	memset(r, 0, sizeof *r);
	thoth_pm_broker_ops_t ops = { on_tr, on_status, on_ready, on_failed, on_idle, r };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, NULL, 0, &b), 0);
	return b;
}

/* bus: OFF(0 mW, exit 2000 us) ON(50 mW) */
static thoth_pm_element_decl_t bus_decl(void)
{
	thoth_pm_element_decl_t d = { .name = "bus", .n_levels = 2 };
	d.levels[0] = (thoth_pm_level_decl_t){ "OFF", 0.0, 100, 2000 };
	d.levels[1] = (thoth_pm_level_decl_t){ "ON", 50.0, 0, 0 };
	return d;
}

/* disk: OFF(0, exit 50 ms) IDLE(100 mW, exit 500 us) ACTIVE(2000 mW); ACTIVE needs bus ON */
static thoth_pm_element_decl_t disk_decl(thoth_pm_dep_kind_t kind)
{
	thoth_pm_element_decl_t d = { .name = "disk", .n_levels = 3 };
	d.levels[0] = (thoth_pm_level_decl_t){ "OFF", 0.0, 1000, 50000 };
	d.levels[1] = (thoth_pm_level_decl_t){ "IDLE", 100.0, 100, 500 };
	d.levels[2] = (thoth_pm_level_decl_t){ "ACTIVE", 2000.0, 0, 0 };
	d.n_deps = 1;
	d.deps[0] = (thoth_pm_dep_decl_t){ .level = 2, .required = "bus", .required_level = 1, .kind = kind };
	return d;
}

static void declare_bus_disk(thoth_pm_broker_t *b, uint32_t *bus, uint32_t *disk, thoth_pm_dep_kind_t kind)
{
	thoth_pm_element_decl_t d[2] = { bus_decl(), disk_decl(kind) };
	uint32_t ids[2];
	assert_int_equal(thoth_pm_broker_declare(b, 7, d, 2, 0, ids), 0);
	*bus = ids[0];
	*disk = ids[1];
}

static void finish_all(thoth_pm_broker_t *b, rec_t *r, int *done, uint64_t now)
{
	while (*done < r->n_tr) {
		int i = (*done)++;
		assert_int_equal(thoth_pm_broker_level_reached(b, r->tr[i].element, r->tr[i].to, now), 0);
	}
}

static void expect_refusal(const thoth_pm_element_decl_t *d, uint32_t n, const char *needle)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	thoth_pm_element_decl_t bus = bus_decl();
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, NULL), 0);
	assert_true(thoth_pm_broker_declare(b, 2, d, n, 0, NULL) < 0);
	const char *why = thoth_pm_broker_refusal(b);
	if (!strstr(why, needle))
		fail_msg("refusal \"%s\" does not name \"%s\"", why, needle);
	assert_int_equal(thoth_pm_broker_element_count(b), 1);
	thoth_pm_broker_free(b);
}

static void test_declare_refuses_negative_latency_naming_the_field(void **state)
{
	thoth_pm_element_decl_t d = disk_decl(THOTH_PM_ASSERTIVE);
	d.levels[1].entry_latency_us = -5;
	expect_refusal(&d, 1, "levels[1].entry_latency_us: -5 is negative");
}

static void test_declare_refuses_absurd_latency_and_power(void **state)
{
	thoth_pm_element_decl_t d = disk_decl(THOTH_PM_ASSERTIVE);
	d.levels[0].exit_latency_us = 60ll * 1000000;
	expect_refusal(&d, 1, "levels[0].exit_latency_us: 60000000 us is absurd");
	d = disk_decl(THOTH_PM_ASSERTIVE);
	d.levels[2].power_mw = 5e6;
	expect_refusal(&d, 1, "levels[2].power_mw");
	d = disk_decl(THOTH_PM_ASSERTIVE);
	d.levels[2].power_mw = 50;      /* below IDLE's 100: levels are ordered */
	expect_refusal(&d, 1, "levels[2].power_mw: 50 is below levels[1]");
}

static void test_declare_refuses_dependency_cycle(void **state)
{
	thoth_pm_element_decl_t d[2] = { disk_decl(THOTH_PM_ASSERTIVE), disk_decl(THOTH_PM_ASSERTIVE) };
	strcpy(d[0].name, "a");
	strcpy(d[0].deps[0].required, "b");
	strcpy(d[1].name, "b");
	strcpy(d[1].deps[0].required, "a");
	expect_refusal(d, 2, "dependency cycle");
	strcpy(d[0].deps[0].required, "a");
	expect_refusal(d, 1, "deps[0].required: \"a\" depends on itself");
}

static void test_declare_refuses_unknown_levels_and_elements(void **state)
{
	thoth_pm_element_decl_t d = disk_decl(THOTH_PM_ASSERTIVE);
	d.deps[0].required_level = 2;
	expect_refusal(&d, 1, "deps[0].required_level: 2 is not a level of \"bus\" (0..1)");
	d = disk_decl(THOTH_PM_ASSERTIVE);
	d.deps[0].level = 3;
	expect_refusal(&d, 1, "deps[0].level: 3 is not a level");
	d = disk_decl(THOTH_PM_ASSERTIVE);
	strcpy(d.deps[0].required, "pcie");
	expect_refusal(&d, 1, "deps[0].required: no element \"pcie\"");
	d = disk_decl(THOTH_PM_ASSERTIVE);
	d.initial_level = 2;            /* ACTIVE while bus is OFF: impossible */
	expect_refusal(&d, 1, "initial_level: 2 needs \"bus\" at 1");
}

static void test_lease_raises_dependencies_first(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t lease;
	assert_int_equal(thoth_pm_broker_lease(b, 100, disk, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &lease), 0);
	/* Only the bus moves first; the disk waits for it. */
	assert_int_equal(r.n_tr, 1);
	assert_int_equal(r.tr[0].element, bus);
	assert_int_equal(r.last_status, THOTH_PM_LEASE_PENDING);
	assert_int_equal(thoth_pm_broker_level_reached(b, bus, 1, 10), 0);
	assert_int_equal(r.n_tr, 2);
	assert_int_equal(r.tr[1].element, disk);
	assert_int_equal(r.tr[1].to, 2);
	assert_int_equal(thoth_pm_broker_level_reached(b, disk, 2, 20), 0);
	assert_int_equal(r.last_status, THOTH_PM_LEASE_SATISFIED);
	char why[256];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	thoth_pm_broker_free(b);
}

static void test_drop_lowers_in_reverse_order(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t lease;
	int done = 0;
	assert_int_equal(thoth_pm_broker_lease(b, 100, disk, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &lease), 0);
	finish_all(b, &r, &done, 1);
	assert_int_equal(thoth_pm_broker_drop(b, 100, lease, 2), 0);
	/* The disk goes down first; the bus only once the disk is below ACTIVE. */
	assert_int_equal(r.n_tr, 3);
	assert_int_equal(r.tr[2].element, disk);
	assert_int_equal(r.tr[2].to, 0);
	assert_int_equal(thoth_pm_broker_level_reached(b, disk, 0, 3), 0);
	assert_int_equal(r.n_tr, 4);
	assert_int_equal(r.tr[3].element, bus);
	assert_int_equal(r.tr[3].to, 0);
	assert_int_equal(thoth_pm_broker_drop(b, 100, lease, 4), THOTH_E_NOT_FOUND);
	thoth_pm_broker_free(b);
}

static void test_drop_by_another_holder_is_refused(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t lease;
	assert_int_equal(thoth_pm_broker_lease(b, 100, disk, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &lease), 0);
	assert_int_equal(thoth_pm_broker_drop(b, 101, lease, 1), THOTH_E_PERM);
	thoth_pm_broker_free(b);
}

/* Requests have the leases' share: one holder whose requests never get
 * served (the level is never reached) stops at half of the slots, the next
 * at half of the rest.  It took all of them (thothd: 65,536 requests of up
 * to 4 KiB each, and every other client refused TooMany). */
static void test_requests_follow_the_fair_share(void **state)
{
	rec_t r;
	memset(&r, 0, sizeof r);
	thoth_pm_broker_ops_t ops = { on_tr, on_status, on_ready, on_failed, on_idle, &r };
	thoth_pm_broker_limits_t lim = { .max_leases = 64, .fair_share = true, .max_requests = 64 };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t q;
	uint32_t n = 0, m = 0;
	int rc;
	while ((rc = thoth_pm_broker_request(b, 9, disk, 2, 0, &q)) == 0)
		n++;
	assert_int_equal(rc, THOTH_E_LIMIT);
	assert_int_equal(n, 32);
	const char *why = thoth_pm_broker_refusal(b);
	if (!strstr(why, "fair share") || !strstr(why, "has 32") || !strstr(why, "limit of 64"))
		fail_msg("refusal \"%s\" does not name the share and the limit", why);
	while (thoth_pm_broker_request(b, 10, disk, 2, 0, &q) == 0)
		m++;
	assert_int_equal(m, 16);
	assert_int_equal(thoth_pm_broker_request(b, 11, disk, 2, 0, &q), 0);
	/* the holder gone, its requests go, and others have room again */
	thoth_pm_broker_holder_gone(b, 9, 1);
	assert_int_equal(thoth_pm_broker_request(b, 12, disk, 2, 0, &q), 0);
	char buf[256];
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	thoth_pm_broker_free(b);
}

/* Requests take a group's cap and the share of its room, as leases do
 * (thothd: a uid's connections): 17 greedy holders of one group hold its
 * cap of 48 together, not the broker's 64, and a holder of another group
 * still queues (17 greedy connections of one uid took every slot); each
 * holder's count is kept, not recounted by a scan. */
static void test_requests_follow_the_group_cap(void **state)
{
	rec_t r;
	memset(&r, 0, sizeof r);
	thoth_pm_broker_ops_t ops = { on_tr, on_status, on_ready, on_failed, on_idle, &r };
	thoth_pm_broker_limits_t lim = { .max_leases = 64, .fair_share = true, .max_requests = 64,
					 .max_group_requests = 48, .group_word = "uid" };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t q;
	uint32_t total = 0;
	for (uint64_t h = 100; h < 117; h++) {
		uint32_t n = 0;
		int rc;
		while ((rc = thoth_pm_broker_request_in(b, h, 1001, disk, 2, 0, &q)) == 0)
			n++;
		assert_int_equal(rc, THOTH_E_LIMIT);
		assert_int_equal(thoth_pm_broker_holder_request_count(b, h), n);
		total += n;
	}
	/* the group together at its cap, never the broker's 64 */
	assert_int_equal(total, 48);
	assert_int_equal(thoth_pm_broker_request_count(b), total);
	const char *why = thoth_pm_broker_refusal(b);
	if (!strstr(why, "uid 1000 has 48 queued, its limit"))
		fail_msg("refusal \"%s\" does not name the uid's cap", why);
	/* the first took half of the group's 48, the second half the rest */
	assert_int_equal(thoth_pm_broker_holder_request_count(b, 100), 24);
	assert_int_equal(thoth_pm_broker_holder_request_count(b, 101), 12);
	/* another uid still queues */
	assert_int_equal(thoth_pm_broker_request_in(b, 200, 2001, disk, 2, 0, &q), 0);
	thoth_pm_broker_holder_gone(b, 100, 1);
	assert_int_equal(thoth_pm_broker_holder_request_count(b, 100), 0);
	assert_int_equal(thoth_pm_broker_request_count(b), total - 24 + 1);
	char buf[256];
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	thoth_pm_broker_free(b);
}

static void test_request_on_suspended_element_is_queued_and_replayed_after_resume(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t q1, q2;
	assert_int_equal(thoth_pm_broker_request(b, 5, disk, 2, 0, &q1), 0);
	assert_int_equal(thoth_pm_broker_request(b, 6, disk, 2, 0, &q2), 0);
	assert_int_equal(r.n_ready, 0);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.queued_requests, 2);
	int done = 0;
	finish_all(b, &r, &done, 5);
	/* Both replayed, in order, once. */
	assert_int_equal(r.n_ready, 2);
	assert_true(r.ready[0] == q1 && r.ready[1] == q2);
	/* A request holds the disk up until it is served. */
	assert_int_equal(thoth_pm_broker_request_done(b, q1, 6), 0);
	assert_int_equal(r.n_tr, done);
	assert_int_equal(thoth_pm_broker_request_done(b, q2, 7), 0);
	assert_int_equal(r.tr[r.n_tr - 1].element, disk);
	assert_int_equal(r.tr[r.n_tr - 1].to, 0);
	assert_int_equal(thoth_pm_broker_request_done(b, q2, 8), THOTH_E_NOT_FOUND);
	thoth_pm_broker_free(b);
}

static void test_driver_death_fails_queued_requests_and_loses_leases(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	thoth_pm_element_decl_t bus = bus_decl(), disk_d = disk_decl(THOTH_PM_ASSERTIVE);
	uint32_t bus_id, disk_id;
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	assert_int_equal(thoth_pm_broker_declare(b, 2, &disk_d, 1, 0, &disk_id), 0);
	uint64_t lease, q;
	assert_int_equal(thoth_pm_broker_lease(b, 9, disk_id, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &lease), 0);
	int done = 0;
	finish_all(b, &r, &done, 1);
	/* The disk's driver dies with the disk ACTIVE and one request queued behind
	 * a transition that never completes. */
	assert_int_equal(thoth_pm_broker_drop(b, 9, lease, 2), 0);
	assert_int_equal(thoth_pm_broker_request(b, 9, disk_id, 2, 2, &q), 0);
	assert_int_equal(thoth_pm_broker_lease(b, 9, disk_id, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 2, &lease), 0);
	thoth_pm_broker_driver_gone(b, 2, 3);
	assert_int_equal(r.n_failed, 1);
	assert_true(r.failed[0] == q);
	assert_int_equal(r.n_lost, 1);
	assert_true(r.lost[0] == lease);
	/* New leases on it are refused, naming why. */
	assert_int_equal(thoth_pm_broker_lease(b, 9, disk_id, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 4, &lease),
			 THOTH_E_NOT_FOUND);
	/* Dead disk (last seen ACTIVE) is removed; then the bus comes down. */
	assert_int_equal(thoth_pm_broker_element_count(b), 1);
	assert_int_equal(r.tr[r.n_tr - 1].element, bus_id);
	assert_int_equal(r.tr[r.n_tr - 1].to, 0);
	char why[256];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	thoth_pm_broker_free(b);
}

static void test_opportunistic_dependency_never_raises(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_OPPORTUNISTIC);
	uint64_t l1, l2;
	int done = 0;
	assert_int_equal(thoth_pm_broker_lease(b, 1, disk, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l1), 0);
	finish_all(b, &r, &done, 1);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.level, 1);        /* IDLE: ACTIVE needs the bus, which nobody raised */
	assert_int_equal(r.last_status, THOTH_PM_LEASE_PENDING);
	/* Someone else raises the bus: now the disk may be ACTIVE. */
	assert_int_equal(thoth_pm_broker_lease(b, 2, bus, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 2, &l2), 0);
	finish_all(b, &r, &done, 3);
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.level, 2);
	/* The bus lease goes: the disk steps down before the bus does. */
	assert_int_equal(thoth_pm_broker_drop(b, 2, l2, 4), 0);
	assert_int_equal(r.tr[r.n_tr - 1].element, disk);
	assert_int_equal(r.tr[r.n_tr - 1].to, 1);
	finish_all(b, &r, &done, 5);
	assert_int_equal(thoth_pm_broker_element_info(b, bus, &info), 0);
	assert_int_equal(info.level, 0);
	thoth_pm_broker_free(b);
}

static void test_latency_qos_keeps_a_level_that_wakes_in_time(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t l;
	int done = 0;
	/* "answer within 1 ms": OFF wakes in 50 ms, IDLE in 500 us: IDLE. */
	assert_int_equal(thoth_pm_broker_lease(b, 1, disk, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 1000, 0, &l), 0);
	finish_all(b, &r, &done, 1);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.level, 1);
	assert_int_equal(thoth_pm_broker_min_qos_us(b), 1000);
	assert_int_equal(thoth_pm_broker_drop(b, 1, l, 2), 0);
	assert_int_equal(thoth_pm_broker_min_qos_us(b), 0);
	thoth_pm_broker_free(b);
}

static void test_policy_level_applies_only_without_assertive_claims(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	int done = 0;
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_set_policy_level(b, disk, 1, 0), 0);
	finish_all(b, &r, &done, 1);
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.level, 1);
	/* An assertive lease at OFF overrides the engine's IDLE: the holder decides. */
	uint64_t l;
	assert_int_equal(thoth_pm_broker_lease(b, 1, disk, 0, THOTH_PM_LEASE_ASSERTIVE, 0, 2, &l), 0);
	finish_all(b, &r, &done, 3);
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_int_equal(info.level, 0);
	assert_int_equal(thoth_pm_broker_set_policy_level(b, disk, 3, 4), THOTH_E_INVAL);
	assert_non_null(strstr(thoth_pm_broker_refusal(b), "level: 3 is not a level of \"disk\""));
	thoth_pm_broker_free(b);
}

static void test_accounting_credits_who_kept_the_bus_awake(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	assert_int_equal(thoth_pm_broker_name_holder(b, 42, "pid 42 kv"), 0);
	uint64_t l;
	int done = 0;
	assert_int_equal(thoth_pm_broker_lease(b, 42, disk, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l), 0);
	finish_all(b, &r, &done, 0);
	assert_int_equal(thoth_pm_broker_drop(b, 42, l, 2 * SEC), 0);
	finish_all(b, &r, &done, 2 * SEC);
	thoth_pm_broker_account(b, 3 * SEC);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, bus, &info), 0);
	assert_int_equal(info.residency_ns[1], 2 * SEC);
	assert_int_equal(info.residency_ns[0], 1 * SEC);
	assert_true(info.energy_mj > 99.9 && info.energy_mj < 100.1);   /* 50 mW x 2 s */
	assert_int_equal(thoth_pm_broker_element_info(b, disk, &info), 0);
	assert_true(info.energy_mj > 3999.9 && info.energy_mj < 4000.1); /* 2 W x 2 s */
	assert_int_equal(info.transitions, 2);
	/* Holder 42 kept both awake for 2 s. */
	int found = 0;
	for (uint32_t i = 0; i < thoth_pm_broker_keeper_count(b); i++) {
		thoth_pm_keeper_info_t k;
		assert_int_equal(thoth_pm_broker_keeper_at(b, i, &k), 0);
		if (k.holder == 42) {
			assert_string_equal(k.name, "pid 42 kv");
			assert_int_equal(k.awake_ns, 2 * SEC);
			found++;
		}
	}
	assert_int_equal(found, 2);
	thoth_pm_broker_free(b);
}

static void test_restarted_driver_rebinds_its_dependents(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	thoth_pm_element_decl_t bus = bus_decl(), disk_d = disk_decl(THOTH_PM_ASSERTIVE);
	uint32_t bus_id, disk_id;
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	assert_int_equal(thoth_pm_broker_declare(b, 2, &disk_d, 1, 0, &disk_id), 0);
	uint64_t l;
	int done = 0;
	assert_int_equal(thoth_pm_broker_lease(b, 3, disk_id, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l), 0);
	finish_all(b, &r, &done, 1);
	thoth_pm_broker_driver_gone(b, 1, 2);   /* the bus driver dies */
	/* Restarted before the disk is down: the dead bus is still there, and
	 * the refusal says so (it said "declared already"). */
	uint32_t again;
	assert_int_equal(thoth_pm_broker_declare(b, 4, &bus, 1, 2, &again), THOTH_E_EXISTS);
	assert_non_null(strstr(thoth_pm_broker_refusal(b), "its driver is gone"));
	finish_all(b, &r, &done, 3);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, disk_id, &info), 0);
	assert_int_equal(info.level, 1);        /* held below ACTIVE: its bus is gone */
	assert_int_equal(r.last_status, THOTH_PM_LEASE_PENDING);
	assert_int_equal(thoth_pm_broker_declare(b, 4, &bus, 1, 4, &bus_id), 0);
	finish_all(b, &r, &done, 5);
	assert_int_equal(thoth_pm_broker_element_info(b, disk_id, &info), 0);
	assert_int_equal(info.level, 2);
	assert_int_equal(r.last_status, THOTH_PM_LEASE_SATISFIED);
	thoth_pm_broker_free(b);
}

static void test_keeper_rows_are_bounded_and_totals_kept(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	int done = 0;
	/* 100 holders, one after the other, each keeping the disk IDLE 1 s. */
	for (uint64_t h = 1; h <= 100; h++) {
		uint64_t l;
		assert_int_equal(thoth_pm_broker_lease(b, h, disk, 1, THOTH_PM_LEASE_ASSERTIVE, 0, (h - 1) * SEC, &l), 0);
		finish_all(b, &r, &done, (h - 1) * SEC);
		assert_int_equal(thoth_pm_broker_drop(b, h, l, h * SEC), 0);
		finish_all(b, &r, &done, h * SEC);
	}
	uint64_t total = 0;
	bool others = false;
	uint32_t rows = 0;
	for (uint32_t i = 0; i < thoth_pm_broker_keeper_count(b); i++) {
		thoth_pm_keeper_info_t k;
		assert_int_equal(thoth_pm_broker_keeper_at(b, i, &k), 0);
		if (k.element != disk)
			continue;
		rows++;
		total += k.awake_ns;
		others |= !strcmp(k.name, "(others)");
	}
	assert_true(rows <= 64);
	assert_true(others);
	assert_int_equal(total, 100 * SEC);
	thoth_pm_broker_free(b);
}

/* 32 holders are credited per element and interval (KEEPERS_MAX).  With
 * 40 holding the disk, a keeper that leaves makes room for one of the 8
 * waiting: 32 holders are credited in the next interval too.  The broker
 * keeps its keepers per element as leases come and go (no scan of every
 * lease per call), so the waiting holder must be found again. */
static void test_a_keeper_that_leaves_makes_room_for_a_waiting_holder(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	int done = 0;
	uint64_t l[41];
	for (uint64_t h = 1; h <= 40; h++) {
		assert_int_equal(thoth_pm_broker_lease(b, h, disk, 1, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l[h]), 0);
		finish_all(b, &r, &done, 0);
	}
	thoth_pm_broker_account(b, 1 * SEC);
	assert_int_equal(thoth_pm_broker_drop(b, 1, l[1], 1 * SEC), 0);
	finish_all(b, &r, &done, 1 * SEC);
	thoth_pm_broker_account(b, 2 * SEC);
	char why[200];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	uint64_t total = 0;
	uint32_t waited = 0;
	for (uint32_t i = 0; i < thoth_pm_broker_keeper_count(b); i++) {
		thoth_pm_keeper_info_t k;
		assert_int_equal(thoth_pm_broker_keeper_at(b, i, &k), 0);
		if (k.element != disk)
			continue;
		total += k.awake_ns;
		waited += k.holder > 32 && k.holder <= 40 && k.awake_ns == 1 * SEC;
	}
	assert_int_equal(total, 64 * SEC);     /* 32 holders x 2 intervals of 1 s */
	assert_int_equal(waited, 1);
	thoth_pm_broker_free(b);
}

/* A holder ordering its bounds so that each removal is the last lease
 * holding the tightest one (1, then N..2: the last takes the removed one's
 * index) cost one scan of every lease per removal when it went away: k
 * leases, k scans of n.  Its leases go with one scan, and the bound left
 * is another holder's. */
static void test_a_holders_leases_go_with_one_bound_scan(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	uint64_t l;
	enum { N = 200 };
	assert_int_equal(thoth_pm_broker_lease(b, 9, disk, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 100000, 0, &l), 0);
	assert_int_equal(thoth_pm_broker_lease(b, 7, disk, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 1, 0, &l), 0);
	for (uint32_t q = N; q >= 2; q--)
		assert_int_equal(thoth_pm_broker_lease(b, 7, disk, 0, THOTH_PM_LEASE_OPPORTUNISTIC, q, 0, &l), 0);
	assert_int_equal(thoth_pm_broker_min_qos_us(b), 1);
	uint64_t scans = thoth_pm_broker_qos_scans(b);
	thoth_pm_broker_holder_gone(b, 7, 1);
	assert_true(thoth_pm_broker_qos_scans(b) - scans <= 1);
	assert_int_equal(thoth_pm_broker_min_qos_us(b), 100000);
	char why[200];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	/* The same through the driver's death: every lease lost, one scan. */
	for (uint32_t q = N; q >= 1; q--)
		assert_int_equal(thoth_pm_broker_lease(b, 7, disk, 0, THOTH_PM_LEASE_OPPORTUNISTIC, q, 2, &l), 0);
	scans = thoth_pm_broker_qos_scans(b);
	thoth_pm_broker_driver_gone(b, 7, 3);
	assert_true(thoth_pm_broker_qos_scans(b) - scans <= 1);
	assert_int_equal(thoth_pm_broker_min_qos_us(b), 0);
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	thoth_pm_broker_free(b);
}

static void test_idle_is_reported_when_nothing_holds_an_element(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	uint32_t bus, disk;
	declare_bus_disk(b, &bus, &disk, THOTH_PM_ASSERTIVE);
	assert_int_equal(r.n_idle, 2);          /* both idle from the start */
	uint64_t l;
	int done = 0;
	r.n_idle = 0;
	/* A lease on the disk at ACTIVE holds the disk, and through it the bus. */
	assert_int_equal(thoth_pm_broker_lease(b, 1, disk, 2, THOTH_PM_LEASE_ASSERTIVE, 0, 0, &l), 0);
	finish_all(b, &r, &done, 1);
	assert_int_equal(r.n_idle, 2);
	assert_false(r.idle[0].idle);
	assert_false(r.idle[1].idle);
	thoth_pm_element_info_t info;
	assert_int_equal(thoth_pm_broker_element_info(b, bus, &info), 0);
	assert_false(info.idle);
	/* Dropped: both are free at once (nothing will need the bus once the
	 * disk is down; the disk still comes down first). */
	assert_int_equal(thoth_pm_broker_drop(b, 1, l, 2), 0);
	finish_all(b, &r, &done, 3);
	assert_int_equal(r.n_idle, 4);
	assert_true(r.idle[2].idle && r.idle[3].idle);
	assert_int_equal(thoth_pm_broker_element_info(b, bus, &info), 0);
	assert_true(info.idle);
	thoth_pm_broker_free(b);
}

/* One holder may not take every lease (docs/PM.md, "What thothd refuses"):
 * with the fair share it holds at most as many as remain free, so a greedy
 * holder stops at half, a second one still gets leases, then a third, and
 * when the greedy one goes its count goes with it. */
static void test_fair_share_leaves_leases_for_other_holders(void **state)
{
	rec_t r;
	memset(&r, 0, sizeof r);
	thoth_pm_broker_ops_t ops = { on_tr, on_status, on_ready, on_failed, on_idle, &r };
	thoth_pm_broker_limits_t lim = { .max_leases = 64, .fair_share = true };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	thoth_pm_element_decl_t bus = bus_decl();
	uint32_t bus_id;
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	uint64_t id;
	uint32_t n = 0;
	int rc;
	while ((rc = thoth_pm_broker_lease(b, 9, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id)) == 0)
		n++;
	assert_int_equal(rc, THOTH_E_LIMIT);
	assert_int_equal(n, 32);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 9), 32);
	const char *why = thoth_pm_broker_refusal(b);
	if (!strstr(why, "fair share") || !strstr(why, "holds 32") || !strstr(why, "limit of 64"))
		fail_msg("refusal \"%s\" does not name the share and the limit", why);
	/* Another holder: while it holds fewer than remain free. */
	uint32_t m = 0;
	while (thoth_pm_broker_lease(b, 10, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id) == 0)
		m++;
	assert_int_equal(m, 16);
	assert_int_equal(thoth_pm_broker_lease(b, 11, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id), 0);
	char buf[256];
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	/* Dropping one makes room for its holder again. */
	assert_int_equal(thoth_pm_broker_drop(b, 11, id, 2), 0);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 11), 0);
	thoth_pm_broker_holder_gone(b, 9, 3);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 9), 0);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 10), 16);
	assert_int_equal(thoth_pm_broker_lease_count(b), 16);
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	assert_int_equal(thoth_pm_broker_lease(b, 9, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 4, &id), 0);
	/* Without the share (the broker's default) one holder takes them all. */
	thoth_pm_broker_free(b);
	lim.fair_share = false;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	for (n = 0; thoth_pm_broker_lease(b, 9, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id) == 0;)
		n++;
	assert_int_equal(n, 64);
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	thoth_pm_broker_free(b);
}

/* Holders of one group (thothd: the connections of one uid) are held to
 * the group's cap together: connections of one uid opened one after
 * another, each taking all its share allows, filled the broker (the 7th
 * took the last one at 64); now the uid stops at its cap, another group
 * still gets leases, and the count goes with the holders. */
static void test_a_group_of_holders_is_held_to_its_cap_together(void **state)
{
	rec_t r;
	memset(&r, 0, sizeof r);
	thoth_pm_broker_ops_t ops = { on_tr, on_status, on_ready, on_failed, on_idle, &r };
	thoth_pm_broker_limits_t lim = { .max_leases = 64, .fair_share = true, .max_group_leases = 48,
					 .group_word = "uid" };
	thoth_pm_broker_t *b;
	assert_int_equal(thoth_pm_broker_new(&ops, &lim, 0, &b), 0);
	thoth_pm_element_decl_t bus = bus_decl();
	uint32_t bus_id;
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	uint64_t id;
	uint32_t total = 0;
	for (uint64_t h = 100; h < 120; h++)    /* 20 holders of uid 1000, one after another */
		while (thoth_pm_broker_lease_in(b, h, 1001, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id) == 0)
			total++;
	assert_int_equal(total, 48);
	assert_int_equal(thoth_pm_broker_group_lease_count(b, 1001), 48);
	/* Each holder's share is of what its uid may still take, not of the
	 * broker's free leases: two greedy holders took 32 + 16, the whole
	 * cap, and every later connection of the uid got none; now they stop
	 * at 24 and 12 and the third still finds 6. */
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 100), 24);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 101), 12);
	assert_int_equal(thoth_pm_broker_holder_lease_count(b, 102), 6);
	const char *why = thoth_pm_broker_refusal(b);
	if (!strstr(why, "uid 1000 holds 48, its limit") || !strstr(why, "64"))
		fail_msg("refusal \"%s\" does not name the uid and the limit", why);
	/* Another uid (root: group 1) still gets leases, its own share of the rest. */
	uint32_t other = 0;
	while (thoth_pm_broker_lease_in(b, 200, 1, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id) == 0)
		other++;
	assert_int_equal(other, 8);
	char buf[256];
	if (thoth_pm_broker_check(b, buf, sizeof buf))
		fail_msg("%s", buf);
	for (uint64_t h = 100; h < 120; h++)
		thoth_pm_broker_holder_gone(b, h, 2);
	assert_int_equal(thoth_pm_broker_group_lease_count(b, 1001), 0);
	assert_int_equal(thoth_pm_broker_group_lease_count(b, 1), 8);
	assert_int_equal(thoth_pm_broker_check(b, buf, sizeof buf), 0);
	thoth_pm_broker_free(b);
}

/* Many holders coming and going: the per-holder counts stay exact through
 * the hash's growth and backward-shift deletions. */
static void test_holder_counts_survive_growth_and_removal(void **state)
{
	rec_t r;
	thoth_pm_broker_t *b = new_broker(&r);
	thoth_pm_element_decl_t bus = bus_decl();
	uint32_t bus_id;
	assert_int_equal(thoth_pm_broker_declare(b, 1, &bus, 1, 0, &bus_id), 0);
	uint64_t id;
	for (uint64_t h = 100; h < 400; h++)
		for (uint64_t k = 0; k < h % 5 + 1; k++)
			assert_int_equal(thoth_pm_broker_lease(b, h, bus_id, 0, THOTH_PM_LEASE_OPPORTUNISTIC, 0, 1, &id),
					 0);
	char why[256];
	assert_int_equal(thoth_pm_broker_check(b, why, sizeof why), 0);
	for (uint64_t h = 100; h < 400; h += 3)
		thoth_pm_broker_holder_gone(b, h, 2);
	if (thoth_pm_broker_check(b, why, sizeof why))
		fail_msg("%s", why);
	for (uint64_t h = 100; h < 400; h++)
		assert_int_equal(thoth_pm_broker_holder_lease_count(b, h), (h - 100) % 3 ? h % 5 + 1 : 0);
	thoth_pm_broker_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_declare_refuses_negative_latency_naming_the_field),
		cmocka_unit_test(test_declare_refuses_absurd_latency_and_power),
		cmocka_unit_test(test_declare_refuses_dependency_cycle),
		cmocka_unit_test(test_requests_follow_the_fair_share),
		cmocka_unit_test(test_requests_follow_the_group_cap),
		cmocka_unit_test(test_declare_refuses_unknown_levels_and_elements),
		cmocka_unit_test(test_lease_raises_dependencies_first),
		cmocka_unit_test(test_drop_lowers_in_reverse_order),
		cmocka_unit_test(test_drop_by_another_holder_is_refused),
		cmocka_unit_test(test_request_on_suspended_element_is_queued_and_replayed_after_resume),
		cmocka_unit_test(test_driver_death_fails_queued_requests_and_loses_leases),
		cmocka_unit_test(test_opportunistic_dependency_never_raises),
		cmocka_unit_test(test_latency_qos_keeps_a_level_that_wakes_in_time),
		cmocka_unit_test(test_policy_level_applies_only_without_assertive_claims),
		cmocka_unit_test(test_accounting_credits_who_kept_the_bus_awake),
		cmocka_unit_test(test_restarted_driver_rebinds_its_dependents),
		cmocka_unit_test(test_keeper_rows_are_bounded_and_totals_kept),
		cmocka_unit_test(test_a_keeper_that_leaves_makes_room_for_a_waiting_holder),
		cmocka_unit_test(test_idle_is_reported_when_nothing_holds_an_element),
		cmocka_unit_test(test_a_holders_leases_go_with_one_bound_scan),
		cmocka_unit_test(test_fair_share_leaves_leases_for_other_holders),
		cmocka_unit_test(test_holder_counts_survive_growth_and_removal),
		cmocka_unit_test(test_a_group_of_holders_is_held_to_its_cap_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
