/*
 * test_pm_thothd.c - PowerBroker through a real thothd with real driver
 * processes (services/pm-drivers/sim_driver.c, which sleep their declared
 * latencies): lease chains, kill -9 of holders and drivers, requests to a
 * suspended device replayed after resume, refusals naming the field, and
 * the CPU latency bound held on a fixture /dev/cpu_dma_latency.
 */
#define _GNU_SOURCE     /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "pm.thoth.h"
#include "pm_state.h"
#include "timerpage.h"
#include "../common/slowdown.h"
#include "../common/testutil.h"

typedef struct client {
	thoth_control_t ctl;
	uint64_t satisfied[64];
	int n_satisfied;
	int n_lost;                     /* LOST lease_status events */
	struct { uint64_t request; bool ok; char result[128]; } done[64];
	int n_done;
	int n_done_ok;                  /* all of them, past the 64 kept */
} client_t;

static void on_event(void *arg, const uint8_t *msg, size_t len)
{
	client_t *c = arg;
	uint64_t scratch[256];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	uint32_t method = thoth_le32(msg + 12);
	if (method == THOTH_PM_POWER_EVENTS_LEASE_STATUS) {
		thoth_pm_PowerEvents_lease_status_req_t ev;
		if (!thoth_pm_PowerEvents_lease_status_req_decode_msg(msg, len, &ev, &arena) &&
		    ev.status == THOTH_PM_LEASE_STATUS_SATISFIED && c->n_satisfied < 64)
			c->satisfied[c->n_satisfied++] = ev.lease;
		else if (!thoth_pm_PowerEvents_lease_status_req_decode_msg(msg, len, &ev, &arena) &&
			 ev.status == THOTH_PM_LEASE_STATUS_LOST)
			c->n_lost++;
	} else if (method == THOTH_PM_POWER_EVENTS_REQUEST_DONE) {
		thoth_pm_PowerEvents_request_done_req_t ev;
		if (!thoth_pm_PowerEvents_request_done_req_decode_msg(msg, len, &ev, &arena) && ev.ok)
			c->n_done_ok++;
		if (!thoth_pm_PowerEvents_request_done_req_decode_msg(msg, len, &ev, &arena) && c->n_done < 64) {
			c->done[c->n_done].request = ev.request;
			c->done[c->n_done].ok = ev.ok;
			thoth_bytes_t b = ev.ok ? ev.result : (thoth_bytes_t){ .ptr = (const uint8_t *)ev.error.ptr, .len = ev.error.len };
			snprintf(c->done[c->n_done].result, sizeof c->done[0].result, "%.*s", (int)b.len, (const char *)b.ptr);
			c->n_done++;
		}
	}
}

static void client_connect(harness_t *h, client_t *c)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(harness_connect(h, &c->ctl), 0);
	c->ctl.sock.on_event = on_event;
	c->ctl.sock.event_arg = c;
}

static int lease(client_t *c, const char *element, uint32_t level, thoth_pm_LeaseKind_t kind, uint32_t qos,
		 uint64_t *id, thoth_pm_LeaseStatus_t *status)
{
	thoth_pm_PowerBroker_lease_req_t req = {
		.element = thoth_str(element), .level = level, .kind = kind, .qos_us = qos,
	};
	thoth_pm_PowerBroker_lease_resp_t resp;
	int r = thoth_pm_PowerBroker_lease(&c->ctl.client, &req, &resp, NULL);
	if (!r) {
		*id = resp.lease;
		if (status)
			*status = resp.status;
	}
	return r;
}

/* Element NAME's level (-1: absent), and the number of leases. */
typedef struct snapshot {
	int level[8];
	bool transitioning[8];
	uint64_t decisions[8];          /* the policy engine's, per element */
	uint32_t leases;
	uint32_t qos_us;
} snapshot_t;

static const char *const names[] = { "bus", "disk", "nic", "input", "rpm.00-00-0", NULL };

static int snapshot(client_t *c, snapshot_t *s)
{
	thoth_pm_PowerBroker_state_resp_t resp;
	int r = pm_state_read(&c->ctl, &resp);
	if (r)
		return r;
	for (int i = 0; names[i]; i++) {
		s->level[i] = -1;
		s->transitioning[i] = false;
		for (uint32_t k = 0; k < resp.elements.count; k++)
			if (resp.elements.items[k].name.len == strlen(names[i]) &&
			    !memcmp(resp.elements.items[k].name.ptr, names[i], strlen(names[i])) &&
			    !resp.elements.items[k].dead) {
				s->level[i] = (int)resp.elements.items[k].current_level;
				s->transitioning[i] = resp.elements.items[k].transitioning;
				s->decisions[i] = resp.elements.items[k].engine_decisions;
			}
	}
	s->leases = resp.leases.count;
	s->qos_us = resp.qos_us;
	return 0;
}

typedef struct wait_arg {
	client_t *c;
	int element, level;
	int leases;                     /* -1: do not care */
} wait_arg_t;

static bool element_at(void *arg)
{
	wait_arg_t *w = arg;
	snapshot_t s;
	if (snapshot(w->c, &s))
		return false;
	if (w->leases >= 0 && (int)s.leases != w->leases)
		return false;
	return w->element < 0 || (s.level[w->element] == w->level && !s.transitioning[w->element]);
}

static char runtime_log[320];   /* the runtime-PM driver's log, while its test runs */

static void print_log(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[512];
	fprintf(stderr, "--- %s\n", path);
	while (fgets(line, sizeof line, f))
		fputs(line, stderr);
	fclose(f);
}

/* On a timeout it says what the broker showed last, so a failure in CI
 * tells a lost level report from a stuck transition or a broken client. */
static void wait_level(client_t *c, int element, int level)
{
	wait_arg_t w = { c, element, level, -1 };
	if (harness_wait_until(element_at, &w, THOTH_TEST_DEADLINE_MS(10000)))
		return;
	if (runtime_log[0])
		print_log(runtime_log);
	snapshot_t s;
	int r = snapshot(c, &s);
	if (r)
		fail_msg("waiting for %s at level %d: the broker's state cannot be read: %s (%s)", names[element],
			 level, thoth_strerror(r), c->ctl.client.remote_message);
	fail_msg("waiting for %s at level %d: it is at %d%s, %u leases", names[element], level,
		 s.level[element], s.transitioning[element] ? " (transitioning)" : "", s.leases);
}

static pid_t start_driver(harness_t *h, const char *kind, const char *needs)
{
	const char *argv[] = { PM_SIM_DRIVER_PATH, kind, "--runtime-dir", h->dir,
			       needs ? "--needs" : NULL, needs, NULL };
	pid_t pid = harness_spawn(h, kind, argv);
	assert_true(pid > 0);
	return pid;
}

/* thothd in the harness's directory.  FIXTURE_ROOT: under
 * THOTH_SYSFS_ROOT=DIR/root with a dev/cpu_dma_latency of its own, so a
 * latency bound never touches the host's (the file is left open in *QOS_FD
 * when asked for).  Its pid. */
static pid_t start_thothd_at(harness_t *h, bool fixture_root, int *qos_fd)
{
	if (fixture_root)
		return pm_start_thothd_fixture_root(h, NULL, qos_fd);
	pid_t d = harness_start_thothd(h, NULL);
	assert_true(d > 0);
	return d;
}

typedef struct drivers {
	pid_t bus, disk;        /* disk: 0 when not started */
} drivers_t;

/* The bus driver, and the disk needing it when DISK, each waited for until
 * the broker shows it at level 0; their pids in *OUT if asked for. */
static void start_drivers(harness_t *h, client_t *c, bool disk, drivers_t *out)
{
	drivers_t d = { start_driver(h, "bus", NULL), 0 };
	wait_level(c, 0, 0);
	if (disk) {
		d.disk = start_driver(h, "disk", "bus");
		wait_level(c, 1, 0);
	}
	if (out)
		*out = d;
}

typedef enum up {
	NO_DRIVERS,
	BUS,
	BUS_AND_DISK,
} up_t;

/* thothd with EXTRA arguments (NULL-terminated), and a control client. */
static void start_with(harness_t *h, client_t *c, const char *const *extra)
{
	assert_int_equal(harness_setup(h), 0);
	assert_true(harness_start_thothd(h, extra) > 0);
	client_connect(h, c);
}

/* The set-up most cases share: harness, thothd, a control client, and the
 * drivers UP says, up. */
static void start(harness_t *h, client_t *c, up_t up, drivers_t *out)
{
	assert_int_equal(harness_setup(h), 0);
	start_thothd_at(h, false, NULL);
	client_connect(h, c);
	if (up != NO_DRIVERS)
		start_drivers(h, c, up == BUS_AND_DISK, out);
}

static void wait_event(client_t *c, int *counter, int want)
{
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (*counter < want && harness_now_ms() < end)
		thoth_sock_client_poll_event(&c->ctl.sock, 100);
	assert_true(*counter >= want);
}

static void test_lease_on_disk_raises_bus_first_through_thothd(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS_AND_DISK, NULL);
	uint64_t id = 0;
	thoth_pm_LeaseStatus_t st = THOTH_PM_LEASE_STATUS_LOST;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, &st), 0);
	assert_int_equal(st, THOTH_PM_LEASE_STATUS_PENDING);   /* the disk sleeps 30 ms to wake */
	wait_event(&c, &c.n_satisfied, 1);
	assert_true(c.satisfied[0] == id);
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	assert_int_equal(s.level[0], 1);
	assert_int_equal(s.level[1], 2);
	/* The drivers' logs show the order: the bus was ON before the disk moved. */
	char log[320];
	snprintf(log, sizeof log, "%s/bus.log", h.dir);
	assert_true(harness_file_contains(log, "level 0 -> 1"));
	/* Dropping it: disk down first, then the bus. */
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = id };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	wait_level(&c, 0, 0);
	wait_level(&c, 1, 0);   /* the disk's engine may pause at IDLE first (below) */
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* A holder in a child process: leases ELEMENT, says so on FD, waits to die. */
static pid_t holder_child(harness_t *h, const char *element, uint32_t level)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		client_t c;
		if (thoth_control_connect(&c.ctl, h->dir, 2000))
			_exit(1);
		uint64_t id;
		thoth_pm_PowerBroker_lease_req_t req = { .element = thoth_str(element), .level = level };
		thoth_pm_PowerBroker_lease_resp_t resp;
		if (thoth_pm_PowerBroker_lease(&c.ctl.client, &req, &resp, NULL))
			_exit(1);
		id = resp.lease;
		(void)id;
		if (write(p[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char b;
	assert_int_equal(read(p[0], &b, 1), 1);
	close(p[0]);
	return pid;
}

static void test_kill_9_of_holder_frees_its_lease_within_1ms(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS, NULL);
	/* Baseline from this run: how long one state() round trip takes now. */
	uint64_t rtt = pm_state_rtt_median_ns(&c.ctl);
	snapshot_t s;
	uint64_t bound = 1000000 + 100 * rtt;           /* generous: a loaded 2-core box */
	/* Up to three holders: a load spike on the shared box (32 ms once under
	 * ASan in a full make test) stalls thothd once, not three times in a
	 * row; a release that waits for a sweep or a timer fails all three. */
	bool fast = false;
	for (int round = 0; round < 3 && !fast; round++) {
		pid_t child = holder_child(&h, "bus", 1);
		wait_level(&c, 0, 1);
		assert_int_equal(snapshot(&c, &s), 0);
		assert_int_equal(s.leases, 1);
		/* From the moment the holder is dead (reaped: the kernel has
		 * closed its files, its socket included) to thothd showing the
		 * lease gone.  The kernel's own teardown before that (long for an
		 * ASan process's mappings) is not thothd's to shorten. */
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		uint64_t t0 = test_now_ns(), t1 = 0;
		while (test_now_ns() - t0 < 5000000000ull) {
			assert_int_equal(snapshot(&c, &s), 0);
			if (s.leases == 0) {
				t1 = test_now_ns();
				break;
			}
		}
		assert_true(t1 != 0);
		uint64_t took = t1 - t0;
		print_message("lease released %.3f ms after the holder died (state() rtt median %.3f ms, "
			      "bound %.3f ms)\n", took / 1e6, rtt / 1e6, bound / 1e6);
		fast = took < bound;
	}
	assert_true(fast);
	wait_level(&c, 0, 0);   /* and the bus goes back down */
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* Element NAME declared on C's connection with two levels, OFF (0 mW, 1 us
 * either way) and ON: the pool the lease-share tests fill. */
static void declare_off_on(client_t *c, const char *name)
{
	thoth_pm_Level_t lv[2] = {
		{ .name = thoth_str("OFF"), .power_mw = 0, .entry_latency_us = 1, .exit_latency_us = 1 },
		{ .name = thoth_str("ON"), .power_mw = 1 },
	};
	thoth_pm_Element_t el = { .name = thoth_str(name), .levels = { lv, 2 } };
	thoth_pm_PowerBroker_declare_req_t dreq = { .elements = { &el, 1 } };
	thoth_pm_PowerBroker_declare_resp_t dresp;
	uint64_t small[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, small, sizeof small);
	assert_int_equal(thoth_pm_PowerBroker_declare(&c->ctl.client, &dreq, &dresp, &arena), 0);
}

static int count_in_file(const char *file, const char *needle);

static int try_submit(client_t *c, const char *element, uint32_t level)
{
	thoth_pm_PowerBroker_request_req_t req = { .element = thoth_str(element), .level = level };
	thoth_pm_PowerBroker_request_resp_t resp;
	return thoth_pm_PowerBroker_request(&c->ctl.client, &req, &resp, NULL);
}

/* Requests take the uid's cap and the share of its room, as leases do,
 * and a share refusal is logged once per run and counted in state(): a
 * uid's greedy connections took every one of the 65,536 request slots,
 * refused without a word.  --max-leases-per-uid 8 of 16,384 makes the
 * uid's request cap 32 of 65,536: A queues 16, B 8. */
static void test_greedy_requests_stop_at_the_uids_share_and_are_logged(void **state)
{
	harness_t h;
	client_t c, a, b;
	const char *const extra[] = { "--max-leases-per-uid", "8", NULL };
	start_with(&h, &c, extra);
	declare_off_on(&c, "pool");
	thoth_arena_t arena;
	client_connect(&h, &a);
	client_connect(&h, &b);
	uint32_t na = 0, nb = 0;
	while (na < 100 && !try_submit(&a, "pool", 1))
		na++;
	while (nb < 100 && !try_submit(&b, "pool", 1))
		nb++;
	assert_int_equal(na, 16);
	assert_int_equal(nb, 8);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(try_submit(&a, "pool", 1), THOTH_E_REMOTE);
		assert_int_equal(a.ctl.client.remote_code, THOTH_PM_ERR_TOO_MANY);
		assert_int_equal(try_submit(&b, "pool", 1), THOTH_E_REMOTE);
	}
	int n = count_in_file(h.log, "further requests refused");
	if (n != 2)
		fail_msg("12 request refusals to 2 connections logged %d times, not 2", n);
	thoth_pm_PowerBroker_state_req_t sreq = { 0 };
	thoth_pm_PowerBroker_state_resp_t st;
	size_t cap = 1u << 20;
	void *big = malloc(cap);
	assert_non_null(big);
	thoth_arena_init(&arena, big, cap);
	assert_int_equal(thoth_pm_PowerBroker_state(&c.ctl.client, &sreq, &st, &arena), 0);
	/* share_refusals is still the total, as 1.3 meant it (0 on the
	 * branch's first version, which counted requests apart only), and
	 * state() 1.4 tells the requests among them apart. */
	assert_int_equal(st.request_share_refusals, 12);
	assert_int_equal(st.share_refusals, 12);
	free(big);
	static char out[1 << 16];
	int status;
	const char *json[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "--json", "pm", NULL };
	assert_int_equal(harness_run(&h, json, out, sizeof out, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (!strstr(out, "\"share_refusals\":12,\"request_share_refusals\":12,"))
		fail_msg("thothctl pm --json does not show the 12 request refusals apart: %.300s", out);
	const char *text[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "pm", NULL };
	assert_int_equal(harness_run(&h, text, out, sizeof out, &status), 0);
	if (!strstr(out, "0 refused for a connection's or a uid's share; requests: 12 refused so"))
		fail_msg("thothctl pm does not show the 12 request refusals apart: %.300s", out);
	thoth_control_close(&a.ctl);
	thoth_control_close(&b.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void submit(client_t *c, const char *element, uint32_t level, const char *payload, uint64_t *id)
{
	thoth_pm_PowerBroker_request_req_t req = {
		.element = thoth_str(element), .level = level,
		.payload = { .ptr = (const uint8_t *)payload, .len = (uint32_t)strlen(payload) },
	};
	thoth_pm_PowerBroker_request_resp_t resp;
	assert_int_equal(thoth_pm_PowerBroker_request(&c->ctl.client, &req, &resp, NULL), 0);
	*id = resp.request;
}

static void test_requests_to_suspended_disk_are_replayed_after_resume(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS_AND_DISK, NULL);
	uint64_t ids[5];
	char payload[16];
	for (int i = 0; i < 5; i++) {
		snprintf(payload, sizeof payload, "key%d", i);
		submit(&c, "disk", 2, payload, &ids[i]);
	}
	wait_event(&c, &c.n_done, 5);
	for (int i = 0; i < 5; i++) {
		char want[32];
		snprintf(want, sizeof want, "key%d@2", i);      /* served at ACTIVE, in order, once */
		assert_true(c.done[i].request == ids[i]);
		assert_true(c.done[i].ok);
		assert_string_equal(c.done[i].result, want);
	}
	/* Served, nothing holds it: the disk suspends again. */
	wait_level(&c, 1, 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* Requests queued while the disk cannot rise (its bus's driver stopped)
 * are all released when it does, in one burst of serve events that reach
 * the disk's driver inside its level_reached call: the driver kept 256
 * and dropped the rest, whose requesters then waited for ever. */
static void test_a_burst_of_600_queued_requests_is_served_in_full(void **state)
{
	harness_t h;
	client_t c;
	drivers_t d;
	start(&h, &c, BUS_AND_DISK, &d);
	kill(d.bus, SIGSTOP);
	enum { N = 600 };
	for (int i = 0; i < N; i++) {
		uint64_t id;
		submit(&c, "disk", 2, "k", &id);
	}
	kill(d.bus, SIGCONT);
	wait_event(&c, &c.n_done_ok, N);
	assert_int_equal(c.n_done_ok, N);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void test_kill_9_of_driver_fails_its_queued_requests(void **state)
{
	harness_t h;
	client_t c;
	drivers_t drv;
	start(&h, &c, BUS_AND_DISK, &drv);
	pid_t bus = drv.bus, disk = drv.disk;
	/* The bus driver hangs: the disk cannot resume, the request waits. */
	kill(bus, SIGSTOP);
	uint64_t id;
	submit(&c, "disk", 2, "lost?", &id);
	harness_kill(&h, disk, SIGKILL);
	wait_event(&c, &c.n_done, 1);
	assert_true(c.done[0].request == id);
	assert_false(c.done[0].ok);
	assert_non_null(strstr(c.done[0].result, "driver is gone"));
	/* Leases on the dead element are refused. */
	uint64_t l = 0;
	assert_int_equal(lease(&c, "disk", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &l, NULL), THOTH_E_REMOTE);
	assert_int_equal(c.ctl.client.remote_code, THOTH_PM_ERR_NOT_FOUND);
	kill(bus, SIGCONT);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* served() is the driver's answer to a request it was handed: thothd took
 * it from any connection, so a client that guessed a request id (they are
 * sequential) answered another client's request with bytes of its own and
 * the element came down before the driver had served it. */
static void test_served_from_another_connection_is_refused_and_the_driver_answers(void **state)
{
	harness_t h;
	client_t c, x;
	drivers_t d;
	start(&h, &c, BUS_AND_DISK, &d);
	client_connect(&h, &x);
	uint64_t l;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &l, NULL), 0);
	wait_level(&c, 1, 2);
	/* The disk is ACTIVE: the request is ready at once and handed to its
	 * driver, which is stopped before it can answer. */
	kill(d.disk, SIGSTOP);
	uint64_t id;
	submit(&c, "disk", 2, "real", &id);
	thoth_pm_PowerBroker_served_req_t sr = {
		.request = id, .result = { .ptr = (const uint8_t *)"forged", .len = 6 },
	};
	thoth_pm_PowerBroker_served_resp_t sresp;
	int r = thoth_pm_PowerBroker_served(&x.ctl.client, &sr, &sresp, NULL);
	kill(d.disk, SIGCONT);
	assert_int_equal(r, THOTH_E_REMOTE);
	assert_int_equal(x.ctl.client.remote_code, THOTH_PM_ERR_NOT_OWNER);
	assert_non_null(strstr(x.ctl.client.remote_message, "request"));
	/* The driver's own answer is the one the requester gets. */
	wait_event(&c, &c.n_done, 1);
	assert_true(c.done[0].request == id);
	assert_true(c.done[0].ok);
	assert_string_equal(c.done[0].result, "real@2");
	thoth_control_close(&x.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* DepKind and LeaseKind are open enums on the wire: an unknown value
 * reaches thothd, which read every value but OPPORTUNISTIC as ASSERTIVE,
 * so the broker's own check ("neither ASSERTIVE nor OPPORTUNISTIC") never
 * saw it and a mistyped kind silently raised devices. */
static void test_unknown_dependency_and_lease_kinds_are_refused_naming_the_field(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS, NULL);
	thoth_pm_Level_t lv[2] = {
		{ .name = thoth_str("OFF"), .power_mw = 0, .entry_latency_us = 5, .exit_latency_us = 10 },
		{ .name = thoth_str("ON"), .power_mw = 1 },
	};
	thoth_pm_Dependency_t dep = { .level = 1, .required = thoth_str("bus"), .required_level = 1,
				      .kind = (thoth_pm_DepKind_t)7 };
	thoth_pm_Element_t el = { .name = thoth_str("odd"), .levels = { lv, 2 }, .deps = { &dep, 1 } };
	thoth_pm_PowerBroker_declare_req_t req = { .elements = { &el, 1 } };
	thoth_pm_PowerBroker_declare_resp_t resp;
	assert_int_equal(thoth_pm_PowerBroker_declare(&c.ctl.client, &req, &resp, NULL), THOTH_E_REMOTE);
	assert_int_equal(c.ctl.client.remote_code, THOTH_PM_ERR_BAD_DECLARATION);
	assert_non_null(strstr(c.ctl.client.remote_message, "deps[0].kind: 7"));
	uint64_t id = 0;
	assert_int_equal(lease(&c, "bus", 1, (thoth_pm_LeaseKind_t)9, 0, &id, NULL), THOTH_E_REMOTE);
	assert_int_equal(c.ctl.client.remote_status, THOTH_E_INVAL);
	assert_non_null(strstr(c.ctl.client.remote_message, "kind: 9"));
	/* Nothing was raised by either. */
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	assert_int_equal(s.leases, 0);
	assert_int_equal(s.level[0], 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* A greedy client in its own process: leases ELEMENT at level 0 until
 * thothd refuses, tells the count and the refusal on a pipe, waits to die
 * (with the test process at the latest). */
static pid_t greedy_child(harness_t *h, const char *element, uint32_t *taken, char *why, size_t why_cap)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		client_t c;
		if (thoth_control_connect(&c.ctl, h->dir, 2000))
			_exit(1);
		uint32_t n = 0;
		uint64_t id;
		int r;
		while (n < 70000 && !(r = lease(&c, element, 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL)))
			n++;
		char msg[400];
		int len = snprintf(msg, sizeof msg, "%u %d %u %s", n, r, c.ctl.client.remote_code,
				   c.ctl.client.remote_message);
		if (write(p[1], msg, (size_t)len) != len)
			_exit(1);
		close(p[1]);
		for (;;)
			pause();
	}
	close(p[1]);
	char msg[400];
	ssize_t got, len = 0;
	while ((got = read(p[0], msg + len, sizeof msg - 1 - (size_t)len)) > 0)
		len += got;
	close(p[0]);
	msg[len > 0 ? len : 0] = 0;
	int r = 0, used = 0;
	unsigned code = 0;
	if (sscanf(msg, "%u %d %u %n", taken, &r, &code, &used) != 3)
		fail_msg("the greedy client said \"%s\"", msg);
	assert_int_equal(r, THOTH_E_REMOTE);
	assert_int_equal(code, THOTH_PM_ERR_TOO_MANY);
	snprintf(why, why_cap, "%s", msg + used);
	return pid;
}

/* How many leases state() lists (into an arena that holds 16,384 of them:
 * snapshot()'s is for a handful); -1 when state() fails. */
static int lease_total(client_t *c)
{
	static uint64_t big[(8u << 20) / sizeof(uint64_t)];
	thoth_arena_t arena;
	thoth_arena_init(&arena, big, sizeof big);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t resp;
	return thoth_pm_PowerBroker_state(&c->ctl.client, &req, &resp, &arena) ? -1 : (int)resp.leases.count;
}

static bool leases_are(void *arg)
{
	wait_arg_t *w = arg;
	return lease_total(w->c) == w->leases;
}

/* state() lists every lease, and thothd drops a client whose unsent
 * answers pass 8 MiB: 65,536 leases (the broker's default limit) on an
 * element with a 63-character name made a 8.4 MB answer, so one client
 * taking leases for two seconds left `thothctl pm` and every driver's
 * state() with "thothd went away" while thothd ran on.  thothd's own limit
 * keeps the longest answer well inside what it will queue.  Checked at
 * the whole limit, 16,384, with the uid's cap raised to it
 * (--max-leases-per-uid, as a single-user deployment may): the answer is
 * measured against the 8 MiB. */
static void test_state_stays_readable_at_the_most_leases_thothd_takes(void **state)
{
	harness_t h;
	enum { CONNS = 24 };
	client_t c, *x = calloc(CONNS, sizeof *x);
	assert_non_null(x);
	const char *const extra[] = { "--max-leases-per-uid", "16384", NULL };
	start_with(&h, &c, extra);
	static const char name[] = "a.name.of.sixty.three.characters.the.longest.an.element.may.hav";
	assert_int_equal(strlen(name), 63);
	declare_off_on(&c, name);
	thoth_arena_t arena;
	/* Opportunistic leases at level 0: bookkeeping only, nothing moves.
	 * A connection holds at most as many as remain free (its share): the
	 * first takes 8,192, each next one half of the rest, until thothd's
	 * own limit refuses (the 15th connection takes the last lease). */
	uint32_t n = 0;
	int r = 0, k = 0;
	uint64_t id;
	for (; k < CONNS && n < 16384; k++) {
		client_connect(&h, &x[k]);
		uint32_t mine = 0;
		while (mine < 70000 && !(r = lease(&x[k], name, 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL)))
			mine++;
		assert_int_equal(r, THOTH_E_REMOTE);
		assert_int_equal(x[k].ctl.client.remote_code, THOTH_PM_ERR_TOO_MANY);
		if (k == 0)
			assert_int_equal(mine, 8192);
		n += mine;
	}
	assert_int_equal(n, 16384);
	if (!strstr(x[k - 1].ctl.client.remote_message, "limit of 16384 is reached"))
		fail_msg("the last connection was refused \"%s\"", x[k - 1].ctl.client.remote_message);
	/* Every lease is listed, to anyone who asks. */
	size_t cap = 16u << 20;
	void *big = malloc(cap);
	assert_non_null(big);
	thoth_arena_init(&arena, big, cap);
	thoth_pm_PowerBroker_state_req_t sreq = { 0 };
	thoth_pm_PowerBroker_state_resp_t st;
	r = thoth_pm_PowerBroker_state(&c.ctl.client, &sreq, &st, &arena);
	if (r)
		fail_msg("state() with %u leases: %s", n, thoth_strerror(r));
	assert_int_equal(st.leases.count, n);
	/* thothd queues at most 8 MiB of answers to a client (server.c). */
	size_t bytes = thoth_pm_PowerBroker_state_resp__size(&st);
	print_message("state() with %u leases: %zu bytes\n", n, bytes);
	assert_true(bytes > 16384u * 64);
	assert_true(bytes < (8u << 20));
	free(big);
	char cmd[600], out[4096];
	snprintf(cmd, sizeof cmd, "%s --runtime-dir %s --json pm > %s/pm.json && %s -c "
		 "'import json,sys; d=json.load(open(sys.argv[1])); print(len(d[\"elements\"][0][\"leases\"]))' %s/pm.json",
		 THOTHCTL_PATH, h.dir, h.dir, THOTH_PYTHON3, h.dir);
	const char *sh[] = { "/bin/sh", "-c", cmd, NULL };
	int status;
	assert_int_equal(harness_run(&h, sh, out, sizeof out, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("thothctl --json pm with %u leases: %s", n, out);
	assert_int_equal(strtoul(out, NULL, 10), n);
	for (int i = 0; i < k; i++)
		thoth_control_close(&x[i].ctl);
	free(x);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* One connection may not take every lease thothd holds (16,384): it holds
 * at most as many as remain free to it (its uid's room: 12,288 by
 * default), so a greedy client in its own process stops at 6,144 with
 * TooMany naming its share, another client still gets leases, and
 * connections of the same uid opened one after another each still find
 * some until the uid's 12,288; thothctl pm shows who holds what, and kill
 * -9 of the greedy one ends all of its leases.  Before the shares the
 * greedy client took all 16,384 and every other lease was refused; with
 * the share measured against thothd's free leases, two greedy connections
 * took the uid's whole 12,288 and a third got none. */
static void test_a_greedy_connection_stops_at_its_share_and_others_still_get_leases(void **state)
{
	harness_t h;
	client_t c, x;
	start(&h, &c, NO_DRIVERS, NULL);
	declare_off_on(&c, "pool");
	thoth_arena_t arena;
	uint32_t taken = 0;
	char why[400];
	pid_t greedy = greedy_child(&h, "pool", &taken, why, sizeof why);
	print_message("greedy pid %d: %u leases, then: %s\n", (int)greedy, taken, why);
	assert_int_equal(taken, 6144);
	if (!strstr(why, "fair share") || !strstr(why, "holds 6144") || !strstr(why, "limit of 16384"))
		fail_msg("the refusal \"%s\" does not name the share and the limit", why);
	/* Another client still gets leases. */
	client_connect(&h, &x);
	uint64_t id;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(lease(&x, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL), 0);
	/* More connections of the same uid, one after another: each takes
	 * half of what its uid may still take (the first 2,572 of the 5,144
	 * left), none finds nothing before the uid's 12,288, which leaves
	 * 4,096 for other uids (test_pm_broker: another group still gets its
	 * share; a client of another uid cannot connect here: the library
	 * talks only to a thothd of its own uid). */
	enum { MORE = 20 };
	client_t *y = calloc(MORE, sizeof *y);
	assert_non_null(y);
	uint32_t held = 6144 + 1000;
	int r = 0, k = 0;
	for (; k < MORE && held < 12288; k++) {
		client_connect(&h, &y[k]);
		uint32_t mine = 0;
		while (!(r = lease(&y[k], "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL)))
			mine++;
		assert_int_equal(r, THOTH_E_REMOTE);
		assert_int_equal(y[k].ctl.client.remote_code, THOTH_PM_ERR_TOO_MANY);
		assert_int_equal(mine, (12288 - held + 1) / 2);
		held += mine;
	}
	assert_int_equal(held, 12288);
	client_t *z = &y[k++];                  /* and now the uid's cap */
	client_connect(&h, z);
	assert_int_equal(lease(z, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL), THOTH_E_REMOTE);
	char uid_needle[64];
	snprintf(uid_needle, sizeof uid_needle, "uid %u holds 12288, its limit (of 16384", (unsigned)geteuid());
	if (!strstr(z->ctl.client.remote_message, uid_needle))
		fail_msg("the refusal \"%s\" does not name the uid's limit", z->ctl.client.remote_message);
	/* thothd says so: state() counts the refusals, thothctl pm names the holders. */
	size_t cap = 8u << 20;
	void *big = malloc(cap);
	assert_non_null(big);
	thoth_arena_init(&arena, big, cap);
	thoth_pm_PowerBroker_state_req_t sreq = { 0 };
	thoth_pm_PowerBroker_state_resp_t st;
	assert_int_equal(thoth_pm_PowerBroker_state(&c.ctl.client, &sreq, &st, &arena), 0);
	assert_int_equal(st.leases.count, 12288);
	assert_int_equal(st.lease_limit, 16384);
	assert_true(st.share_refusals >= 2);
	free(big);
	static char out[1 << 22];
	int status;
	const char *text[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "pm", NULL };
	assert_int_equal(harness_run(&h, text, out, sizeof out, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char needle[64];
	snprintf(needle, sizeof needle, "pid %d holds 6144\n", (int)greedy);
	if (!strstr(out, "leases: 12288 held of 16384 (4096 free") || !strstr(out, needle))
		fail_msg("thothctl pm does not show the holders: %.600s", out);
	assert_true(harness_file_contains(h.log, "leases: fair share"));
	/* kill -9 of the greedy one: every one of its leases ends. */
	kill(greedy, SIGKILL);
	waitpid(greedy, NULL, 0);
	wait_arg_t w = { &c, -1, 0, 12288 - 6144 };
	if (!harness_wait_until(leases_are, &w, THOTH_TEST_DEADLINE_MS(10000)))
		fail_msg("after kill -9 of the greedy client %d leases are left, not %d", lease_total(&c),
			 12288 - 6144);
	/* ...and its share is free again for the others. */
	for (int i = 0; i < 2000; i++)
		assert_int_equal(lease(&x, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL), 0);
	for (int i = 0; i < k; i++)
		thoth_control_close(&y[i].ctl);
	free(y);
	thoth_control_close(&x.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* How many times NEEDLE is in FILE (thothd's log). */
static int count_in_file(const char *file, const char *needle)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return -1;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* A share refusal is logged once per run of refusals to a connection:
 * two greedy connections refused in turn log once each, not on every call
 * (thothd remembered only the last connection it logged, so each turn was
 * a new "run"), and a grant starts a new run.  The uid's cap is lowered
 * to 8 (--max-leases-per-uid) to keep the test short: A takes 4, B 2. */
static void test_greedy_connections_taking_turns_are_each_logged_once_per_run(void **state)
{
	harness_t h;
	client_t c, a, b;
	const char *const extra[] = { "--max-leases-per-uid", "8", NULL };
	start_with(&h, &c, extra);
	declare_off_on(&c, "pool");
	client_connect(&h, &a);
	client_connect(&h, &b);
	uint64_t id, a_ids[8];
	uint32_t na = 0, nb = 0;
	while (na < 8 && !lease(&a, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &a_ids[na], NULL))
		na++;
	while (!lease(&b, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL))
		nb++;
	assert_int_equal(na, 4);
	assert_int_equal(nb, 2);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(lease(&a, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL),
				 THOTH_E_REMOTE);
		assert_int_equal(lease(&b, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL),
				 THOTH_E_REMOTE);
	}
	/* 12 refusals, one run each (the log line is written before the
	 * answer is sent: the count is final here). */
	int n = count_in_file(h.log, "further leases refused");
	if (n != 2)
		fail_msg("12 refusals to 2 connections logged %d times, not 2", n);
	/* A grant ends A's run: its next refusal is logged again (two of its
	 * four dropped: it holds 2 of the uid's 4, the room left 4). */
	for (int i = 0; i < 2; i++) {
		thoth_pm_PowerBroker_drop_req_t dr = { .lease = a_ids[i] };
		thoth_pm_PowerBroker_drop_resp_t dresp2;
		assert_int_equal(thoth_pm_PowerBroker_drop(&a.ctl.client, &dr, &dresp2, NULL), 0);
	}
	assert_int_equal(lease(&a, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL), 0);
	assert_int_equal(lease(&a, "pool", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 0, &id, NULL), THOTH_E_REMOTE);
	assert_int_equal(count_in_file(h.log, "further leases refused"), 3);
	thoth_control_close(&b.ctl);
	thoth_control_close(&a.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static bool log_has_refusal(void *arg)
{
	return harness_file_contains(arg, "pm declare refused");
}

/* A driver killed while its dependent is moving, and restarted at once:
 * the dead element stays until the dependent is down, and the new driver's
 * declaration was refused ("declared already") -- pm-sim-driver then
 * exited, and the bus never came back.  Now the refusal says the old
 * element is still held, and the driver declares again until it is gone. */
static void test_driver_restarted_while_its_dead_element_is_held_comes_back(void **state)
{
	harness_t h;
	client_t c;
	drivers_t d;
	start(&h, &c, BUS_AND_DISK, &d);
	uint64_t l;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &l, NULL), 0);
	wait_level(&c, 1, 2);
	/* The disk cannot come down (its driver is stopped), so the dead bus
	 * stays while the new bus driver declares. */
	kill(d.disk, SIGSTOP);
	harness_kill(&h, d.bus, SIGKILL);
	start_driver(&h, "bus", NULL);
	if (!harness_wait_until(log_has_refusal, h.log, THOTH_TEST_DEADLINE_MS(10000)))
		fail_msg("the restarted bus driver's declaration was not refused while the old bus was held");
	assert_true(harness_file_contains(h.log, "is still held: its driver is gone"));
	kill(d.disk, SIGCONT);
	/* The disk comes down, the dead bus goes, the new driver's bus is
	 * declared and the lease raises both again. */
	wait_level(&c, 0, 1);
	wait_level(&c, 1, 2);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* thothd killed (-9) and started again: its broker starts empty, and the
 * drivers must declare their elements to the new one, as services register
 * again.  pm-sim-driver exited instead ("thothd went away"), so after an
 * operator restarted thothd the bus and disk were gone for good and every
 * lease on them was refused (found by test_chaos). */
static void test_drivers_declare_again_after_thothd_restarts(void **state)
{
	harness_t h;
	client_t c;
	drivers_t d;
	start(&h, &c, BUS_AND_DISK, &d);
	/* the disk up (level 2) when thothd dies: the new broker declares it
	 * at 0, and the driver must serve at 0 too (it kept 2: "x@2") */
	uint64_t id = 0;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_level(&c, 1, 2);
	thoth_control_close(&c.ctl);
	harness_kill(&h, h.thothd, SIGKILL);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	client_connect(&h, &c);
	wait_level(&c, 0, 0);   /* declared to the new thothd (-1 while absent) */
	wait_level(&c, 1, 0);
	assert_int_equal(waitpid(d.bus, NULL, WNOHANG), 0);
	assert_int_equal(waitpid(d.disk, NULL, WNOHANG), 0);
	uint64_t req = 0;
	submit(&c, "disk", 0, "after", &req);
	wait_event(&c, &c.n_done, 1);
	assert_true(c.done[0].request == req);
	assert_string_equal(c.done[0].result, "after@0");
	/* and they serve it: a lease on the disk raises the bus, then the disk */
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_event(&c, &c.n_satisfied, 1);
	wait_level(&c, 0, 1);
	wait_level(&c, 1, 2);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* Elements named ELEMENT in thothd's state, dead or not; -1 when state()
 * fails.  *LEASES: the leases listed. */
static int elements_named(client_t *c, const char *element, uint32_t *leases)
{
	static uint64_t scratch[1 << 14];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t resp;
	if (thoth_pm_PowerBroker_state(&c->ctl.client, &req, &resp, &arena))
		return -1;
	int n = 0;
	for (uint32_t k = 0; k < resp.elements.count; k++)
		n += resp.elements.items[k].name.len == strlen(element) &&
		     !memcmp(resp.elements.items[k].name.ptr, element, strlen(element));
	*leases = resp.leases.count;
	return n;
}

/* SIGTERM to pm-sim-driver while a client holds a lease on its element:
 * it withdraws its service, leaves the broker and exits 0 saying so; the
 * broker shows neither its element nor the lease, and the holder is told
 * LOST.  The old driver had no handler: SIGTERM killed it (no exit
 * status, no line), as a crash would. */
static void test_sim_driver_leaves_cleanly_on_sigterm_while_a_lease_is_held(void **state)
{
	(void)state;
	harness_t h;
	client_t c;
	start(&h, &c, NO_DRIVERS, NULL);
	const char *argv[] = { PM_SIM_DRIVER_PATH, "bus", "--runtime-dir", h.dir, "--service", "busd", NULL };
	pid_t bus = harness_spawn(&h, "bus", argv);
	assert_true(bus > 0);
	wait_level(&c, 0, 0);
	uint64_t id = 0;
	assert_int_equal(lease(&c, "bus", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_event(&c, &c.n_satisfied, 1);
	uint64_t lease_id;
	assert_int_equal(harness_resolve(&c.ctl, "busd", &lease_id), 0);
	assert_int_equal(kill(bus, SIGTERM), 0);
	int status = 0;
	pid_t w = 0;
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(5000);
	while ((w = waitpid(bus, &status, WNOHANG)) == 0 && harness_now_ms() < end)
		usleep(2000);
	if (w != bus) {
		harness_kill(&h, bus, SIGKILL);
		fail_msg("pm-sim-driver did not exit within 5 s of SIGTERM");
	}
	harness_kill(&h, bus, 0);               /* reaped: forgotten by the harness */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("pm-sim-driver ended by SIGTERM with %s %d, not exit 0",
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	char log[320];
	snprintf(log, sizeof log, "%s/bus.log", h.dir);
	assert_true(harness_file_contains(log, "pm-sim-driver: Terminated: bus and busd withdrawn from thothd"));
	/* thothd's view: no element, no lease, the holder told, no service. */
	wait_event(&c, &c.n_lost, 1);
	uint32_t leases = 99;
	assert_int_equal(elements_named(&c, "bus", &leases), 0);
	assert_int_equal(leases, 0);
	assert_int_not_equal(harness_resolve(&c.ctl, "busd", NULL), 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* thothd restarted while the bus driver is down for longer than the 5 s
 * the disk's driver waits for a needed element at start-up: after a
 * reconnect that wait is no reason to exit (it did, exit 1: the disk gone
 * for good), the driver backs off as for thothd and declares once the bus
 * is back. */
static void test_disk_driver_waits_past_5s_for_its_bus_after_thothd_restarts(void **state)
{
	harness_t h;
	client_t c;
	drivers_t d;
	start(&h, &c, BUS_AND_DISK, &d);
	thoth_control_close(&c.ctl);
	harness_kill(&h, d.bus, SIGKILL);
	harness_kill(&h, h.thothd, SIGKILL);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	client_connect(&h, &c);
	/* the disk's declaration is refused "no element" meanwhile; past its
	 * 5 s of tries it must still be there (plain time: the driver's own
	 * bound, not a deadline of the test) */
	uint64_t until = harness_now_ms() + 6500;
	while (harness_now_ms() < until) {
		assert_int_equal(waitpid(d.disk, NULL, WNOHANG), 0);
		thoth_sock_client_poll_event(&c.ctl.sock, 100);
	}
	start_driver(&h, "bus", NULL);
	wait_level(&c, 0, 0);
	wait_level(&c, 1, 0);   /* the disk declared again, after the bus */
	assert_int_equal(waitpid(d.disk, NULL, WNOHANG), 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void test_declaration_with_negative_latency_is_refused_naming_the_field(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, NO_DRIVERS, NULL);
	thoth_pm_Level_t lv[2] = {
		{ .name = thoth_str("OFF"), .power_mw = 0, .entry_latency_us = -5, .exit_latency_us = 10 },
		{ .name = thoth_str("ON"), .power_mw = 1 },
	};
	thoth_pm_Element_t el = { .name = thoth_str("bad"), .levels = { lv, 2 } };
	thoth_pm_PowerBroker_declare_req_t req = { .elements = { &el, 1 } };
	thoth_pm_PowerBroker_declare_resp_t resp;
	assert_int_equal(thoth_pm_PowerBroker_declare(&c.ctl.client, &req, &resp, NULL), THOTH_E_REMOTE);
	assert_int_equal(c.ctl.client.remote_code, THOTH_PM_ERR_BAD_DECLARATION);
	assert_non_null(strstr(c.ctl.client.remote_message, "levels[0].entry_latency_us: -5 is negative"));
	/* The connection stays usable: a refusal is an answer, not a crash. */
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* The schema allows 64 elements of 16 levels in one declaration (a driver
 * of many devices, pm-runtime-driver's 64, declares them all at once, all
 * or none); thothd's request size limit for PowerBroker (4 KiB) refused
 * anything past a handful, and the driver only saw its connection closed. */
static void test_declaration_of_64_elements_of_16_levels_is_accepted(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, NO_DRIVERS, NULL);
	enum { N = 64, L = 16 };
	static char names_buf[N][64], level_names[L][32];
	static thoth_pm_Level_t lv[L];
	static thoth_pm_Element_t els[N];
	for (int l = 0; l < L; l++) {
		snprintf(level_names[l], sizeof level_names[l], "LEVEL_%02d_%.*s", l, 22,
			 "padded_to_thirty_one_characters");
		lv[l] = (thoth_pm_Level_t){ .name = thoth_str(level_names[l]), .power_mw = 10.0 * l,
					    .entry_latency_us = 100, .exit_latency_us = (L - 1 - l) * 100 };
	}
	for (int i = 0; i < N; i++) {
		/* 63 characters: the longest name an element may have */
		snprintf(names_buf[i], sizeof names_buf[i], "dev%02d.%.*s", i, 57,
			 "a_long_element_name_of_sixty_three_characters_in_total_xxxxxxx");
		els[i] = (thoth_pm_Element_t){ .name = thoth_str(names_buf[i]), .levels = { lv, L } };
	}
	thoth_pm_PowerBroker_declare_req_t req = { .elements = { els, N } };
	thoth_pm_PowerBroker_declare_resp_t resp;
	uint64_t scratch[256];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_pm_PowerBroker_declare(&c.ctl.client, &req, &resp, &arena);
	if (r)
		fail_msg("64 elements of 16 levels: %s (%s)", thoth_strerror(r), c.ctl.client.remote_message);
	assert_int_equal(resp.ids.count, N);
	/* A 65th is beyond the schema's limit: refused by name, connection kept. */
	thoth_pm_Element_t more[N + 1];
	memcpy(more, els, sizeof els);
	more[N] = els[0];
	req.elements.items = more;
	req.elements.count = N + 1;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	assert_int_equal(thoth_pm_PowerBroker_declare(&c.ctl.client, &req, &resp, &arena), THOTH_E_REMOTE);
	assert_non_null(strstr(c.ctl.client.remote_message, "1..64 per declaration"));
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* A holder's name is "pid N (comm)", and a process chooses its comm
 * (prctl PR_SET_NAME): one that is not UTF-8 made every state() answer
 * undecodable (strings on the wire are UTF-8), so `thothctl pm` and every
 * driver's view failed for everyone while that process held a lease. */
static void test_holder_whose_name_is_not_utf8_leaves_state_readable(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS, NULL);
	char old[17] = "";
	prctl(PR_GET_NAME, old);
	prctl(PR_SET_NAME, "evil\xff\xfe\x1b[2J");
	client_t hostile;
	client_connect(&h, &hostile);
	uint64_t id;
	int r = lease(&hostile, "bus", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL);
	prctl(PR_SET_NAME, old);
	assert_int_equal(r, 0);
	wait_level(&c, 0, 1);
	static uint64_t scratch[1 << 14];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t resp;
	r = thoth_pm_PowerBroker_state(&c.ctl.client, &req, &resp, &arena);
	if (r)
		fail_msg("state() with a holder named \\xff: %s", thoth_strerror(r));
	bool seen = false;
	for (uint32_t k = 0; k < resp.keepers.count; k++) {
		const thoth_str_t *n = &resp.keepers.items[k].holder;
		if (memmem(n->ptr, n->len, "(evil", 5)) {
			seen = true;
			for (uint32_t i = 0; i < n->len; i++)      /* printable, the escape too */
				assert_true(n->ptr[i] >= 0x20 && n->ptr[i] < 0x7f);
		}
	}
	assert_true(seen);
	thoth_control_close(&hostile.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void test_latency_bound_holds_cpu_dma_latency_open_and_keeps_disk_idle(void **state)
{
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	/* A fixture root: thothd must never write the host's /dev/cpu_dma_latency. */
	int fd = -1;
	pid_t d = start_thothd_at(&h, true, &fd);
	client_connect(&h, &c);
	start_drivers(&h, &c, true, NULL);
	uint64_t l = 0;
	/* "answer within 3 ms": OFF wakes in 30 ms, IDLE in 2 ms. */
	assert_int_equal(lease(&c, "disk", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 3000, &l, NULL), 0);
	wait_level(&c, 1, 1);
	int32_t v = 0;
	assert_int_equal(pread(fd, &v, sizeof v, 0), (ssize_t)sizeof v);
	assert_int_equal(v, 3000);
	/* thothd holds the file open while the bound exists. */
	char fdlink[64], target[300];
	bool open_now = false;
	for (int i = 0; i < 64 && !open_now; i++) {
		snprintf(fdlink, sizeof fdlink, "/proc/%d/fd/%d", (int)d, i);
		ssize_t n = readlink(fdlink, target, sizeof target - 1);
		if (n > 0) {
			target[n] = 0;
			open_now = strstr(target, "cpu_dma_latency") != NULL;
		}
	}
	assert_true(open_now);
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = l };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	assert_int_equal(s.qos_us, 0);
	wait_level(&c, 1, 0);
	close(fd);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static int thothctl_trace(harness_t *h, const char *a, const char *b, const char *c,
			  const char *d, const char *e)
{
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace", a, b, c, d, e, NULL };
	char out[4096];
	int status = 0;
	assert_int_equal(harness_run(h, argv, out, sizeof out, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		print_message("thothctl trace %s: %s\n", a, out);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_pm_trace_points_are_exported_as_chrome_json_and_ctf(void **state)
{
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	/* a fixture root, so that the latency bound never touches the host */
	start_thothd_at(&h, true, NULL);
	assert_int_equal(thothctl_trace(&h, "start", "--categories", "pm", NULL, NULL), 0);
	client_connect(&h, &c);
	start_drivers(&h, &c, true, NULL);
	uint64_t l = 0;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 3000, &l, NULL), 0);
	wait_level(&c, 1, 2);
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = l };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	wait_level(&c, 1, 0);
	char json[300], ctf[300], meta[320];
	snprintf(json, sizeof json, "%s/pm.json", h.dir);
	snprintf(ctf, sizeof ctf, "%s/pm.ctf", h.dir);
	snprintf(meta, sizeof meta, "%s/metadata", ctf);
	assert_int_equal(thothctl_trace(&h, "dump", "--json", json, "--ctf", ctf), 0);
	static const char *const points[] = { "pm_lease_grant", "pm_lease_release", "pm_qos_change",
					      "pm_level_change", NULL };
	for (int i = 0; points[i]; i++) {
		assert_true(harness_file_contains(json, points[i]));
		assert_true(harness_file_contains(meta, points[i]));
	}
	/* the grant names the lease and (element << 32 | level) */
	char needle[64];
	snprintf(needle, sizeof needle, "\"arg0\":%llu", (unsigned long long)l);
	assert_true(harness_file_contains(json, needle));
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void test_thothctl_pm_json_lists_every_element_with_levels_and_leases(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS_AND_DISK, NULL);
	uint64_t id = 0;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_event(&c, &c.n_satisfied, 1);
	static char out[1 << 16];
	int status;
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "--json", "pm", NULL };
	assert_int_equal(harness_run(&h, argv, out, sizeof out, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	char path[300];
	snprintf(path, sizeof path, "%s/pm.json", h.dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(out, f);
	fclose(f);
	/* python3's json module is the judge of the format. */
	const char *check =
		"import json,sys\n"
		"d=json.load(open(sys.argv[1]))\n"
		"els={e['name']:e for e in d['elements']}\n"
		"assert set(els)=={'bus','disk'}, els.keys()\n"
		"for e in els.values():\n"
		"  assert len(e['levels'])==len(e['residency_ns'])\n"
		"  assert isinstance(e['current_level'],int)\n"
		"assert els['disk']['current_level']==2 and els['bus']['current_level']==1\n"
		"assert [l['name'] for l in els['disk']['levels']]==['OFF','IDLE','ACTIVE']\n"
		"assert els['disk']['leases'][0]['status']=='satisfied'\n"
		"assert els['bus']['leases']==[]\n"
		"assert d['energy_is']=='modelled'\n";
	const char *py[] = { THOTH_PYTHON3, "-c", check, path, NULL };
	assert_int_equal(harness_run(&h, py, out, sizeof out, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("json check failed: %s", out);
	/* The text form names the holder that keeps the bus awake. */
	const char *text[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, "pm", NULL };
	assert_int_equal(harness_run(&h, text, out, sizeof out, &status), 0);
	assert_non_null(strstr(out, "kept awake by pid"));
	assert_non_null(strstr(out, "(modelled)"));
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

static void read_control(const char *root, char *buf, size_t cap)
{
	char path[400];
	snprintf(path, sizeof path, "%s/sys/devices/pnp0/00:00/00:00:0/power/control", root);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)cap, f));
	buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

static void test_runtime_pm_driver_writes_power_control_on_a_fixture_tree(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, NO_DRIVERS, NULL);
	/* A private copy of this VM's tree: the driver writes there, never /sys. */
	char root[300], cmd[900];
	snprintf(root, sizeof root, "%s/root", h.dir);
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r '%s/vm/.' '%s/'", root, FIXTURES, root);
	assert_int_equal(system(cmd), 0);
	setenv("THOTH_SYSFS_ROOT", root, 1);
	const char *argv[] = { PM_RUNTIME_DRIVER_PATH, "--runtime-dir", h.dir, "--device",
			       "/sys/devices/pnp0/00:00/00:00:0", NULL };
	pid_t drv = harness_spawn(&h, "runtime", argv);
	unsetenv("THOTH_SYSFS_ROOT");
	assert_true(drv > 0);
	snprintf(runtime_log, sizeof runtime_log, "%s/runtime.log", h.dir);
	wait_level(&c, 4, 0);           /* runtime_status "suspended": level 0 */
	uint64_t id = 0;
	assert_int_equal(lease(&c, "rpm.00-00-0", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_event(&c, &c.n_satisfied, 1);
	char buf[32];
	read_control(root, buf, sizeof buf);
	assert_string_equal(buf, "on");
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = id };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	wait_level(&c, 4, 0);
	read_control(root, buf, sizeof buf);
	assert_string_equal(buf, "auto");
	/* kill -9 of the driver: its element goes, leases on it are refused. */
	harness_kill(&h, drv, SIGKILL);
	wait_level(&c, 4, -1);
	assert_int_equal(lease(&c, "rpm.00-00-0", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), THOTH_E_REMOTE);
	runtime_log[0] = 0;
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* SIGTERM to pm-runtime-driver while a client holds its device ACTIVE
 * (power/control "on"): it writes "auto" back (what it found), leaves the
 * broker and exits 0 saying so; its element and the lease are gone and the
 * holder is told LOST.  The old driver had no handler: SIGTERM killed it
 * (no exit status, no line) and the device stayed "on" for good. */
static void test_runtime_pm_driver_writes_control_back_and_leaves_on_sigterm(void **state)
{
	(void)state;
	harness_t h;
	client_t c;
	start(&h, &c, NO_DRIVERS, NULL);
	char root[300], cmd[900];
	snprintf(root, sizeof root, "%s/root", h.dir);
	snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r '%s/vm/.' '%s/'", root, FIXTURES, root);
	assert_int_equal(system(cmd), 0);
	char buf[32];
	read_control(root, buf, sizeof buf);
	assert_string_equal(buf, "auto");
	setenv("THOTH_SYSFS_ROOT", root, 1);
	const char *argv[] = { PM_RUNTIME_DRIVER_PATH, "--runtime-dir", h.dir, "--device",
			       "/sys/devices/pnp0/00:00/00:00:0", NULL };
	pid_t drv = harness_spawn(&h, "runtime", argv);
	unsetenv("THOTH_SYSFS_ROOT");
	assert_true(drv > 0);
	snprintf(runtime_log, sizeof runtime_log, "%s/runtime.log", h.dir);
	wait_level(&c, 4, 0);
	uint64_t id = 0;
	assert_int_equal(lease(&c, "rpm.00-00-0", 1, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, NULL), 0);
	wait_event(&c, &c.n_satisfied, 1);
	read_control(root, buf, sizeof buf);
	assert_string_equal(buf, "on");
	assert_int_equal(kill(drv, SIGTERM), 0);
	int status = 0;
	pid_t w = 0;
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(5000);
	while ((w = waitpid(drv, &status, WNOHANG)) == 0 && harness_now_ms() < end)
		usleep(2000);
	if (w != drv) {
		harness_kill(&h, drv, SIGKILL);
		fail_msg("pm-runtime-driver did not exit within 5 s of SIGTERM");
	}
	harness_kill(&h, drv, 0);               /* reaped: forgotten by the harness */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("pm-runtime-driver ended by SIGTERM with %s %d, not exit 0",
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	assert_true(harness_file_contains(runtime_log, "pm-runtime-driver: Terminated: power/control written back"));
	read_control(root, buf, sizeof buf);
	assert_string_equal(buf, "auto");       /* as it found it: "on" for good before */
	wait_event(&c, &c.n_lost, 1);
	uint32_t leases = 99;
	assert_int_equal(elements_named(&c, "rpm.00-00-0", &leases), 0);
	assert_int_equal(leases, 0);
	runtime_log[0] = 0;
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* With the policy engine wired in (PM-2), an idle disk follows the engine's
 * plan: IDLE first and OFF by the ladder, or (once the history holds long
 * idle periods beside short ones: the first observation, declaration to
 * first use, is long) ACTIVE past the short lengths and then straight to
 * OFF.  Either way it ends OFF, moved by the engine (thothd's broker alone
 * would stay at the policy level it was given). */
/* Does FILE, from byte OFFSET on, contain NEEDLE? */
static bool tail_contains(const char *file, long offset, const char *needle)
{
	static char buf[1 << 16];
	FILE *f = fopen(file, "r");
	if (!f)
		return false;
	fseek(f, offset, SEEK_SET);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, needle) != NULL;
}

static long file_size(const char *file)
{
	struct stat st;
	return stat(file, &st) ? 0 : (long)st.st_size;
}

static void test_engine_takes_an_idle_disk_down_by_its_plan(void **state)
{
	harness_t h;
	client_t c;
	start(&h, &c, BUS_AND_DISK, NULL);
	char log[320];
	snprintf(log, sizeof log, "%s/disk.log", h.dir);
	/* A few short idle periods teach the engine that idle is short here
	 * (the first observation, declaration to first use, may be long on a
	 * loaded machine). */
	long mark = 0;
	for (int round = 0; round < 4; round++) {
		uint64_t id = 0;
		int before = c.n_satisfied;
		thoth_pm_LeaseStatus_t st = THOTH_PM_LEASE_STATUS_PENDING;
		assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, &st), 0);
		if (st != THOTH_PM_LEASE_STATUS_SATISFIED)     /* still ACTIVE: no event comes */
			wait_event(&c, &c.n_satisfied, before + 1);
		mark = file_size(log);
		thoth_pm_PowerBroker_drop_req_t dr = { .lease = id };
		thoth_pm_PowerBroker_drop_resp_t dresp;
		assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	}
	/* After the last drop: OFF, through IDLE or straight after a wait. */
	wait_level(&c, 1, 0);
	assert_true(tail_contains(log, mark, "level 1 -> 0") || tail_contains(log, mark, "level 2 -> 0"));
	/* ...by the engine's plan, not the broker's default (level 0 at once,
	 * no decision): one decision per idle period that followed a drop. */
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);
	assert_true(s.decisions[1] >= 4);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/*
 * The engine's ladder runs on a one-shot loop timer, which the loop frees
 * once it has fired and was not re-armed.  thothd kept the pointer and, at
 * the element's next hold, its driver's death or the next idle period,
 * cancelled or re-armed freed memory: the runtime-PM case's intermittent
 * 40 s timeout (2 in 84 ASan runs) was thothd aborting on that
 * use-after-free when the driver was killed after a ladder step.  Here the
 * disk goes idle until a ladder step takes it from IDLE to OFF (the only
 * way "level 1 -> 0" happens: IDLE is the engine's choice for idle periods
 * it has seen end between 35 ms and 612 ms, and OFF comes by the ladder at
 * 612 ms), then it is held again and its driver is killed: thothd must
 * answer throughout.
 */
static void test_disk_taken_down_by_a_ladder_step_can_be_held_again_and_its_driver_killed(void **state)
{
	harness_t h;
	client_t c;
	drivers_t drv;
	start(&h, &c, BUS_AND_DISK, &drv);
	pid_t disk = drv.disk;
	char log[320];
	snprintf(log, sizeof log, "%s/disk.log", h.dir);
	bool laddered = false;
	for (int round = 0; round < 8 && !laddered; round++) {
		uint64_t id = 0;
		int before = c.n_satisfied;
		thoth_pm_LeaseStatus_t st = THOTH_PM_LEASE_STATUS_PENDING;
		assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, &st), 0);
		if (st != THOTH_PM_LEASE_STATUS_SATISFIED)
			wait_event(&c, &c.n_satisfied, before + 1);
		long mark = file_size(log);
		thoth_pm_PowerBroker_drop_req_t dr = { .lease = id };
		thoth_pm_PowerBroker_drop_resp_t dresp;
		assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
		wait_level(&c, 1, 0);   /* OFF: at once, or by the ladder */
		laddered = tail_contains(log, mark, "level 1 -> 0");
	}
	assert_true(laddered);
	/* Held again: the idle period ends (its ladder timer is long gone). */
	uint64_t id = 0;
	int before = c.n_satisfied;
	thoth_pm_LeaseStatus_t st = THOTH_PM_LEASE_STATUS_PENDING;
	assert_int_equal(lease(&c, "disk", 2, THOTH_PM_LEASE_KIND_ASSERTIVE, 0, &id, &st), 0);
	if (st != THOTH_PM_LEASE_STATUS_SATISFIED)
		wait_event(&c, &c.n_satisfied, before + 1);
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = id };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	/* kill -9 of its driver: the element and its engine go, thothd stays. */
	harness_kill(&h, disk, SIGKILL);
	wait_level(&c, 1, -1);
	snapshot_t s;
	assert_int_equal(snapshot(&c, &s), 0);  /* thothd still answers */
	assert_true(s.level[0] >= 0);           /* and the bus lives on */
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* thothd's CPU latency request as state() reports it. */
static int cpu_qos(client_t *c, thoth_pm_CpuQos_t *out, char *state_name, size_t cap)
{
	thoth_pm_PowerBroker_state_resp_t resp;
	int r = pm_state_read(&c->ctl, &resp);
	if (r)
		return r;
	*out = resp.cpu;
	snprintf(state_name, cap, "%.*s", (int)resp.cpu.hint_state.len, resp.cpu.hint_state.ptr);
	return 0;
}

/* Does process PID hold a file whose path contains NEEDLE open? */
static bool holds_open(pid_t pid, const char *needle)
{
	char fdlink[64], target[300];
	for (int i = 0; i < 256; i++) {
		snprintf(fdlink, sizeof fdlink, "/proc/%d/fd/%d", (int)pid, i);
		ssize_t n = readlink(fdlink, target, sizeof target - 1);
		if (n > 0) {
			target[n] = 0;
			if (strstr(target, needle))
				return true;
		}
	}
	return false;
}

typedef struct released_arg {
	pid_t pid;
} released_arg_t;

static bool qos_released(void *arg)
{
	return !holds_open(((released_arg_t *)arg)->pid, "cpu_dma_latency");
}

/* The engine's CPU idle hint through a real thothd on the x86 laptop's
 * cpuidle table (C2: 127 us latency, 381 us residency; C3: 1048 / 3144):
 * a wake-up posted on the window page 2 ms ahead makes thothd hold 127 us
 * in (the fixture's) /dev/cpu_dma_latency, a far one holds nothing, and
 * once the near wake-up has passed thothd ends the request by itself (its
 * own timer, no call from anyone). */
/* Where the engine's choice changes on that table (cpu_hint.c's modelled
 * powers; pinned in test_pm_backends): C1 below 761 us ahead, since C2's
 * 381 us residency is where it pays against polling, not against C1; C2
 * below 8.6535 ms; C3 (no hint) from there. */
#define C2_FROM_NS 761000ull
#define C3_FROM_NS 8654000ull

/* What thothd decided, for a failure's message: one of this test's checks
 * failed once in ~35 ASan runs at load ~10 and said nothing more. */
static void fail_cpu_qos(const char *what, const thoth_pm_CpuQos_t *q, const char *st, pid_t d)
{
	fail_msg("%s: next_wake_ns %llu hint_us %u request_us %u why %u state \"%s\" lease_us %u "
		 "error \"%.*s\" cpu_dma_latency %s", what, (unsigned long long)q->next_wake_ns, q->hint_us,
		 q->request_us, q->why, st, q->lease_us, (int)q->error.len, q->error.ptr,
		 holds_open(d, "cpu_dma_latency") ? "held" : "not held");
}

/* thothd on a root whose sys/ is the x86-laptop fixture, with or without
 * dev/cpu_dma_latency, and this process posting wake-ups as a loop would:
 * a slot of thothd's window page. */
typedef struct laptop {
	pid_t d;
	int dma_fd;             /* root/dev/cpu_dma_latency; -1: not made */
	thoth_control_t pctl;   /* the connection that adopted the page */
	timerpage_t *pg;
	int slot;
} laptop_t;

static void laptop_start(harness_t *h, client_t *c, bool with_dma, laptop_t *l)
{
	char root[300], path[400], link[400];
	snprintf(root, sizeof root, "%s/root", h->dir);
	mkdir(root, 0700);
	snprintf(path, sizeof path, "%s/x86-laptop/sys", FIXTURES);
	snprintf(link, sizeof link, "%s/sys", root);
	assert_int_equal(symlink(path, link), 0);
	l->dma_fd = -1;
	if (with_dma) {
		snprintf(path, sizeof path, "%s/dev", root);
		mkdir(path, 0700);
		snprintf(path, sizeof path, "%s/dev/cpu_dma_latency", root);
		/* CLOEXEC: thothd must not inherit it (the test looks at its fds) */
		l->dma_fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		assert_true(l->dma_fd >= 0);
	}
	setenv("THOTH_SYSFS_ROOT", root, 1);
	timerpage_t *before = thoth__timerpage_current();
	l->d = harness_start_thothd(h, NULL);
	unsetenv("THOTH_SYSFS_ROOT");
	assert_true(l->d > 0);
	client_connect(h, c);
	/* thothd hands its page out as a sealed memfd over the control
	 * socket (Daemon.timer_page); a control connection adopts it. */
	assert_int_equal(thoth_control_connect(&l->pctl, h->dir, 5000), 0);
	l->pg = thoth__timerpage_current();
	assert_non_null(l->pg);
	/* A process maps at most 32 window pages (timerpage.c, MAX_MAPPED):
	 * past that the page of the thothd just started is refused and the
	 * old one stays, which this thothd never reads.  Each case has a
	 * process of its own (main). */
	if (l->pg == before)
		fail_msg("the window page of the new thothd was not adopted: this case's process "
			 "has mapped 32, one per thothd it connected to (timerpage.c, MAX_MAPPED)");
	l->slot = timerpage_claim(l->pg, (uint32_t)getpid(), false);
	assert_true(l->slot >= 0);
}

static void laptop_stop(laptop_t *l)
{
	timerpage_release(l->pg, l->slot, (uint32_t)getpid());
	thoth_control_close(&l->pctl);
	if (l->dma_fd >= 0)
		close(l->dma_fd);
}

static void test_cpu_idle_hint_follows_the_next_posted_wake_up(void **state)
{
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	laptop_t l;
	laptop_start(&h, &c, true, &l);

	thoth_pm_CpuQos_t q = { 0 };
	char st[32];
	assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
	assert_int_equal(q.idle_states, 4);
	/* Far (3 s, past C3_FROM_NS): the kernel may go as deep as it likes. */
	bool seen_far = false, seen_near = false;
	/* Rounds until a deadline, not a count: each must reach thothd
	 * before the instant it posts, which a loaded machine can deny for
	 * 200 rounds in a row (the hints-off case below once failed so). */
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (!seen_far && harness_now_ms() < end) {
		timerpage_post(l.pg, l.slot, test_now_ns() + 3000000000ull, 0);
		assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
		if (q.next_wake_ns >= C3_FROM_NS) {    /* decided on our far post */
			seen_far = true;
			if (q.hint_us || q.request_us || holds_open(l.d, "cpu_dma_latency"))
				fail_cpu_qos("far post", &q, st, l.d);
		}
	}
	if (!seen_far)
		fail_cpu_qos("no decision on a far post before the deadline", &q, st, l.d);
	/* Near (2 ms): C2 is the cheapest.  On a loaded machine the call may
	 * come late: post again until thothd decided while C2 was still the
	 * engine's answer.  Its residency (381 us) is not that bound: decided
	 * 609 us ahead (1.4 ms late) thothd rightly chose C1, and this test
	 * failed (2 of 9 runs at load ~10). */
	end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (!seen_near && harness_now_ms() < end) {
		timerpage_post(l.pg, l.slot, test_now_ns() + 2000000ull, 0);
		assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
		if (q.next_wake_ns >= C2_FROM_NS) {    /* and <= 2 ms: our near post */
			seen_near = true;
			if (q.hint_us != 127 || q.request_us != 127 || q.why != 2 || strcmp(st, "C2_ACPI"))
				fail_cpu_qos("near post", &q, st, l.d);
			int32_t v = 0;
			assert_int_equal(pread(l.dma_fd, &v, sizeof v, 0), (ssize_t)sizeof v);
			assert_int_equal(v, 127);
		}
	}
	if (!seen_near)
		fail_cpu_qos("no decision on a near post before the deadline", &q, st, l.d);
	/* Nothing more is posted: once the instant has passed, thothd decides
	 * again on its own timer and lets the file go. */
	timerpage_post(l.pg, l.slot, 0, 0);
	released_arg_t ra = { l.d };
	assert_true(harness_wait_until(qos_released, &ra, THOTH_TEST_DEADLINE_MS(10000)));
	assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
	assert_int_equal(q.request_us, 0);
	laptop_stop(&l);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* Voluntary context switches of PID's main thread: one each time it goes
 * back to sleep, so one per wake-up. */
static uint64_t main_thread_sleeps(pid_t pid)
{
	char p[64], line[128];
	snprintf(p, sizeof p, "/proc/%d/task/%d/status", (int)pid, (int)pid);
	FILE *f = fopen(p, "re");
	unsigned long long v = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* The median of three runs. */
static uint64_t median3(uint64_t a, uint64_t b, uint64_t m)
{
	return a > b ? (b > m ? b : (a > m ? m : a)) : (a > m ? a : (b > m ? m : b));
}

/* Wake-ups of idle thothd in one second while this process, a forger,
 * keeps near instants on the page: 40 slots it claims, their instants
 * 1 ms apart from 1.5 ms ahead on, rewritten every 10 ms (so one is always
 * between 0.5 and 40 ms ahead, however late this process runs). */
enum { FORGED_SLOTS = 40 };
static uint64_t sleeps_under_forged_posts(laptop_t *l, client_t *c, pid_t d)
{
	int slots[FORGED_SLOTS];
	for (int k = 0; k < FORGED_SLOTS; k++) {
		slots[k] = timerpage_claim(l->pg, (uint32_t)getpid(), false);
		assert_true(slots[k] >= 0);
	}
	/* thothd decides after a message (any client's: here one CpuQos
	 * call), then on its own timer for as long as near instants come */
	thoth_pm_CpuQos_t q = { 0 };
	char st[32];
	uint64_t before = 0, end = 0;
	for (int round = 0; !end || test_now_ns() < end; round++) {
		uint64_t now = test_now_ns();
		for (int k = 0; k < FORGED_SLOTS; k++)
			timerpage_post(l->pg, slots[k], now + 1500000ull + (uint64_t)k * 1000000ull, 0);
		if (round == 0) {
			assert_int_equal(cpu_qos(c, &q, st, sizeof st), 0);
			before = main_thread_sleeps(d);
			end = test_now_ns() + 1000000000ull;
		}
		usleep(10000);
	}
	uint64_t n = main_thread_sleeps(d) - before;
	for (int k = 0; k < FORGED_SLOTS; k++)
		timerpage_release(l->pg, slots[k], (uint32_t)getpid());
	return n;
}

/*
 * Near instants on the window page (honest or forged: any process of the
 * uid can write them) re-decided the CPU hint once a millisecond: idle
 * thothd woke ~1000 times a second for a request that stayed the same.
 * Its re-decision now backs off to once per 64 ms while nothing changes
 * (docs/LOOP.md "A hostile co-tenant"); the hint is still set, and still
 * let go once the posts stop.
 */
static void test_near_posts_wake_idle_thothd_a_bounded_number_of_times(void **state)
{
	(void)state;
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	laptop_t l;
	laptop_start(&h, &c, true, &l);
	timerpage_post(l.pg, l.slot, 0, 0);
	usleep(200000);
	uint64_t idle0 = main_thread_sleeps(l.d);
	usleep(1000000);
	uint64_t idle = main_thread_sleeps(l.d) - idle0;
	uint64_t runs[3];
	for (int i = 0; i < 3; i++)
		runs[i] = sleeps_under_forged_posts(&l, &c, l.d);
	/* the posts do set the hint (else this measured nothing): a call
	 * decides on a post 2 ms ahead, which a loaded host may let pass */
	thoth_pm_CpuQos_t q = { 0 };
	char st[32] = "";
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (q.hint_us != 127 && harness_now_ms() < end) {
		timerpage_post(l.pg, l.slot, test_now_ns() + 2000000ull, 0);
		assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
	}
	print_message("idle thothd: %llu wake-ups in 1 s; under a forger's near instants: %llu / %llu / %llu "
		      "(hint %u us, %s)\n", (unsigned long long)idle, (unsigned long long)runs[0],
		      (unsigned long long)runs[1], (unsigned long long)runs[2], q.hint_us, st);
	assert_int_equal(q.hint_us, 127);
	/* the median: at 64 ms, ~16 a second and the ramps after a changed
	 * hint (a loaded host lets the instants run out); it was 367-403 */
	assert_true(median3(runs[0], runs[1], runs[2]) <= 150);
	timerpage_post(l.pg, l.slot, 0, 0);
	released_arg_t ra = { l.d };
	assert_true(harness_wait_until(qos_released, &ra, THOTH_TEST_DEADLINE_MS(10000)));
	laptop_stop(&l);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/*
 * A forger that also messages thothd.  Every message thothd serves makes it
 * decide the CPU hint again (thothd_pm_flush); that decision used to start
 * cpu_timer's backoff again at 1 ms, so a co-tenant that forged near
 * instants AND sent a cheap call every few ms kept idle thothd re-deciding
 * at 1-3 ms instead of 64 ms.  Counted here: thothd's main-thread sleeps
 * (one per wake-up) and its loop's fired timers (Daemon.status), in one
 * second, under a client sending Daemon.status every MSG_US (0: none) and,
 * when FORGER, this process keeping near instants on the page.
 *
 * FORGER_SPREAD: the instants of the 40 forged slots, every 10 ms, from
 * 1.5 ms ahead, 1 ms apart (the forger of the test above: the nearest one
 * crosses C1/C2's boundary, so the hint changes now and then) or, when
 * FORGER_STEADY, 0.5 ms apart from 0.5 ms ahead: the nearest is always
 * under C2_FROM_NS, so every decision is the same (C1) and only the
 * backoff decides how often thothd wakes: what the test counts.
 */
typedef enum { FORGER_NONE, FORGER_SPREAD, FORGER_STEADY } forger_t;
typedef struct wakes {
	uint64_t sleeps, timers, msgs;
} wakes_t;

static wakes_t wakes_under(laptop_t *l, forger_t forger, unsigned msg_us)
{
	int slots[FORGED_SLOTS];
	for (int k = 0; forger && k < FORGED_SLOTS; k++) {
		slots[k] = timerpage_claim(l->pg, (uint32_t)getpid(), false);
		assert_true(slots[k] >= 0);
	}
	uint64_t first = forger == FORGER_STEADY ? 500000ull : 1500000ull;
	uint64_t apart = forger == FORGER_STEADY ? 500000ull : 1000000ull;
	thoth_daemon_Daemon_status_resp_t st;
	wakes_t w = { 0 };
	uint64_t t0 = test_now_ns(), next_forge = t0, next_msg = t0, end = 0;
	uint64_t sleeps0 = 0, timers0 = 0;
	for (bool started = false;;) {
		uint64_t now = test_now_ns();
		if (forger && now >= next_forge) {
			for (int k = 0; k < FORGED_SLOTS; k++)
				timerpage_post(l->pg, slots[k], now + first + (uint64_t)k * apart, 0);
			next_forge = now + 10000000ull;
		}
		if (!started) {
			/* the window opens after one call: thothd has decided on
			 * the posts, the ramp (if any) starts here */
			assert_int_equal(harness_status(&l->pctl, &st), 0);
			sleeps0 = main_thread_sleeps(l->d);
			timers0 = st.timers_fired;
			end = test_now_ns() + 1000000000ull;
			next_msg = test_now_ns() + msg_us * 1000ull;
			started = true;
			continue;
		}
		if (msg_us && now >= next_msg) {
			assert_int_equal(harness_status(&l->pctl, &st), 0);
			w.msgs++;
			next_msg = now + msg_us * 1000ull;
		}
		now = test_now_ns();
		if (now >= end)
			break;
		uint64_t wake = end;
		if (forger && next_forge < wake)
			wake = next_forge;
		if (msg_us && next_msg < wake)
			wake = next_msg;
		if (wake > now)
			usleep((useconds_t)((wake - now) / 1000));
	}
	w.sleeps = main_thread_sleeps(l->d) - sleeps0;
	assert_int_equal(harness_status(&l->pctl, &st), 0);
	w.timers = st.timers_fired - timers0;      /* this last call is not counted as a sleep */
	for (int k = 0; forger && k < FORGED_SLOTS; k++)
		timerpage_release(l->pg, slots[k], (uint32_t)getpid());
	return w;
}

/* docs/PM.md's other figure: what an honest loop's post waits for.  With
 * the steady forger's stream held (its decision C1: the backoff at its
 * longest) and a client sending Daemon.status every MSG_US (0: none), the
 * forged slots go and an honest loop keeps its next wake-up 3 ms ahead
 * (C2: 127 us): microseconds until the fixture's cpu_dma_latency holds
 * 127 (the first decision that saw the honest post). */
static uint64_t honest_post_seen_us(laptop_t *l, unsigned msg_us)
{
	int slots[FORGED_SLOTS];
	for (int k = 0; k < FORGED_SLOTS; k++) {
		slots[k] = timerpage_claim(l->pg, (uint32_t)getpid(), false);
		assert_true(slots[k] >= 0);
	}
	thoth_daemon_Daemon_status_resp_t st;
	uint64_t t0 = test_now_ns(), next_forge = t0, next_msg = t0;
	bool first = true;
	while (test_now_ns() - t0 < 300000000ull) {     /* the ramp: 127 ms to 64 */
		uint64_t now = test_now_ns();
		if (now >= next_forge) {
			for (int k = 0; k < FORGED_SLOTS; k++)
				timerpage_post(l->pg, slots[k], now + 500000ull + (uint64_t)k * 500000ull, 0);
			next_forge = now + 10000000ull;
		}
		/* one call starts the chain (a post alone wakes nobody) */
		if ((msg_us || first) && now >= next_msg) {
			assert_int_equal(harness_status(&l->pctl, &st), 0);
			next_msg = now + msg_us * 1000ull;
			first = false;
		}
		usleep(500);
	}
	int32_t held = 0, v = 0;
	assert_int_equal(pread(l->dma_fd, &held, sizeof held, 0), (ssize_t)sizeof held);
	for (int k = 0; k < FORGED_SLOTS; k++)
		timerpage_release(l->pg, slots[k], (uint32_t)getpid());
	assert_true(held != 127);
	uint64_t posted = test_now_ns();
	uint64_t seen = 0;
	while (!seen && test_now_ns() - posted < 1000000000ull) {
		uint64_t now = test_now_ns();
		timerpage_post(l->pg, l->slot, now + 3000000ull, 0);
		if (msg_us && now >= next_msg) {
			assert_int_equal(harness_status(&l->pctl, &st), 0);
			next_msg = now + msg_us * 1000ull;
		}
		assert_int_equal(pread(l->dma_fd, &v, sizeof v, 0), (ssize_t)sizeof v);
		if (v == 127)
			seen = test_now_ns();
		else
			usleep(100);
	}
	timerpage_post(l->pg, l->slot, 0, 0);
	usleep(100000);                 /* thothd lets the hint go */
	return seen ? (seen - posted) / 1000 : UINT64_MAX;
}

/* Whether our slot's post 0.5 ms ahead (kept that near) gets thothd to set
 * a hint, asked until the deadline; the post is taken back after. */
static bool a_near_post_sets_a_hint(laptop_t *l, client_t *c)
{
	thoth_pm_CpuQos_t q = { 0 };
	char st[32] = "";
	uint64_t until = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (!q.hint_us && harness_now_ms() < until) {
		timerpage_post(l->pg, l->slot, test_now_ns() + 500000ull, 0);
		assert_int_equal(cpu_qos(c, &q, st, sizeof st), 0);
	}
	timerpage_post(l->pg, l->slot, 0, 0);
	return q.hint_us > 0;
}

/* The forger above with a call every 5 ms gains no re-decisions (and, with
 * THOTH_PM_WAKES_TABLE set, docs/PM.md's table and honest-post figures). */
static void test_a_forger_that_also_messages_thothd_gains_no_re_decisions(void **state)
{
	(void)state;
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	laptop_t lt;
	laptop_start(&h, &c, true, &lt);
	laptop_t *l = &lt;
	timerpage_post(l->pg, l->slot, 0, 0);
	if (getenv("THOTH_PM_WAKES_TABLE")) {
		/* docs/PM.md's table: each line the median of 3 one-second runs */
		static const unsigned every[] = { 0, 1000, 5000, 20000 };
		for (unsigned f = 0; f < 3; f++)
			for (unsigned e = 0; e < 4; e++) {
				wakes_t r[3];
				for (int i = 0; i < 3; i++)
					r[i] = wakes_under(l, (forger_t)f, every[e]);
				print_message("forger %-6s status every %2u ms: sleeps/s %4llu timers/s %4llu "
					      "(calls %llu)\n", f == 0 ? "none" : f == 1 ? "spread" : "steady",
					      every[e] / 1000,
					      (unsigned long long)median3(r[0].sleeps, r[1].sleeps, r[2].sleeps),
					      (unsigned long long)median3(r[0].timers, r[1].timers, r[2].timers),
					      (unsigned long long)r[1].msgs);
			}
		static const unsigned honest_every[] = { 0, 5000, 20000 };
		for (unsigned e = 0; e < 3; e++) {
			uint64_t u[5];
			for (int i = 0; i < 5; i++)
				u[i] = honest_post_seen_us(l, honest_every[e]);
			print_message("honest post 3 ms ahead under the steady forger, status every %2u ms: "
				      "seen after %llu / %llu / %llu / %llu / %llu us\n", honest_every[e] / 1000,
				      (unsigned long long)u[0], (unsigned long long)u[1], (unsigned long long)u[2],
				      (unsigned long long)u[3], (unsigned long long)u[4]);
		}
	}
	/* The count: timers thothd fired in a second of a steady forger plus
	 * a call every 5 ms.  Each call's decision restarted the backoff at
	 * 1 ms: about one re-decision per call, 194 / 205 / 198 a second on
	 * the old thothd (load ~15); now a decision that changes nothing
	 * keeps the interval, so the timer ramps once (1+2+...+64 ms: 7 fires
	 * at most) and each call then moves it 64 ms on: 0-9.  The median of
	 * three runs; the bound leaves room for a few ramps more (a host
	 * that runs this process 20 ms late lets every forged instant pass:
	 * no hint, then a hint again, each change a ramp of 7). */
	wakes_t r[3];
	for (int i = 0; i < 3; i++)
		r[i] = wakes_under(l, FORGER_STEADY, 5000);
	uint64_t med = median3(r[0].timers, r[1].timers, r[2].timers);
	print_message("steady forger + status every 5 ms: %llu / %llu / %llu timers fired in 1 s "
		      "(%llu / %llu / %llu calls)\n", (unsigned long long)r[0].timers,
		      (unsigned long long)r[1].timers, (unsigned long long)r[2].timers,
		      (unsigned long long)r[0].msgs, (unsigned long long)r[1].msgs,
		      (unsigned long long)r[2].msgs);
	assert_true(med <= 40);
	/* and a post this near does set a hint (else this counted nothing) */
	assert_true(a_near_post_sets_a_hint(l, &c));
	laptop_stop(l);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* thothd bounds its scan for the next posted wake-up (pm.c,
 * next_posted_wake_ns) by the page's `high`, which any process of the uid
 * can write; past the page (SLOTS + 1, + 8, 2^32 - 1) it is clamped to the
 * page's slots and thothd still decides on our post.  A scan that trusted
 * 2^32 - 1 ran off the mapping and killed thothd. */
static void test_thothds_hint_scan_clamps_a_hostile_high_water_mark(void **state)
{
	(void)state;
	harness_t h;
	client_t cl;
	assert_int_equal(harness_setup(&h), 0);
	laptop_t lt;
	laptop_start(&h, &cl, true, &lt);
	laptop_t *l = &lt;
	client_t *c = &cl;
	uint32_t honest = atomic_load(&l->pg->high);
	const uint32_t highs[] = { honest, THOTH_TIMERPAGE_SLOTS + 1, THOTH_TIMERPAGE_SLOTS + 8, UINT32_MAX };
	for (unsigned i = 0; i < sizeof highs / sizeof highs[0]; i++) {
		atomic_store(&l->pg->high, highs[i]);
		assert_true(a_near_post_sets_a_hint(l, c));
		released_arg_t ra = { l->d };
		assert_true(harness_wait_until(qos_released, &ra, THOTH_TEST_DEADLINE_MS(10000)));
	}
	atomic_store(&l->pg->high, honest);
	laptop_stop(l);
	thoth_control_close(&c->ctl);
	harness_teardown(&h);
}

/* The real /dev/cpu_dma_latency through thothd (root, on a machine that has
 * it): a lease bound of 77 us is in force system-wide while the lease
 * lives (the device reads back the tightest request of all holders: <= 77)
 * and thothd lets the file go when it is dropped.  Skipped, saying why,
 * where the device is absent or not ours to open. */
static void test_lease_bound_is_held_in_the_real_cpu_dma_latency(void **state)
{
	int rfd = open("/dev/cpu_dma_latency", O_RDWR | O_CLOEXEC);
	if (rfd < 0) {
		fprintf(stderr, "SKIP: /dev/cpu_dma_latency: %s (absent, or not root)\n", strerror(errno));
		skip();
	}
	harness_t h;
	client_t c;
	unsetenv("THOTH_SYSFS_ROOT");
	start(&h, &c, BUS, NULL);
	uint64_t l = 0;
	assert_int_equal(lease(&c, "bus", 0, THOTH_PM_LEASE_KIND_OPPORTUNISTIC, 77, &l, NULL), 0);
	thoth_pm_CpuQos_t q = { 0 };
	char st[32];
	assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
	assert_int_equal(q.lease_us, 77);
	assert_true(q.request_us > 0 && q.request_us <= 77);
	assert_int_equal(q.error.len, 0);
	assert_true(holds_open(h.thothd, "/dev/cpu_dma_latency"));
	int32_t v = -1;
	assert_int_equal(pread(rfd, &v, sizeof v, 0), (ssize_t)sizeof v);
	assert_true(v >= 0 && v <= 77);
	thoth_pm_PowerBroker_drop_req_t dr = { .lease = l };
	thoth_pm_PowerBroker_drop_resp_t dresp;
	assert_int_equal(thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &dresp, NULL), 0);
	assert_false(holds_open(h.thothd, "/dev/cpu_dma_latency"));
	assert_int_equal(pread(rfd, &v, sizeof v, 0), (ssize_t)sizeof v);
	if (v <= 77)
		fprintf(stderr, "note: another holder keeps cpu_dma_latency at %d us\n", (int)v);
	close(rfd);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/* Where the hint cannot be held (here: a fixture root without
 * dev/cpu_dma_latency, as for a thothd that is not root), thothd says why
 * and stops hinting instead of failing at every near wake-up; it keeps
 * serving. */
static void test_cpu_idle_hints_stop_with_a_reason_when_the_request_cannot_be_held(void **state)
{
	harness_t h;
	client_t c;
	assert_int_equal(harness_setup(&h), 0);
	laptop_t l;
	laptop_start(&h, &c, false, &l);
	thoth_pm_CpuQos_t q = { 0 };
	char st[32];
	assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
	assert_int_equal(q.idle_states, 4);
	bool off = false;
	/* Until a deadline: a post that reaches thothd after its instant asks
	 * for nothing (at ASan speed under load, 200 rounds in a row once did:
	 * 1 of 34 looped runs at load ~10). */
	uint64_t end = harness_now_ms() + THOTH_TEST_DEADLINE_MS(10000);
	while (!off && harness_now_ms() < end) {
		timerpage_post(l.pg, l.slot, test_now_ns() + 2000000ull, 0);
		assert_int_equal(cpu_qos(&c, &q, st, sizeof st), 0);
		off = q.idle_states == 0;
	}
	assert_true(off);
	assert_int_equal(q.request_us, 0);
	char err[200];
	snprintf(err, sizeof err, "%.*s", (int)q.error.len, q.error.ptr);
	assert_non_null(strstr(err, "cpu_dma_latency"));
	laptop_stop(&l);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);
}

/*
 * Each case runs in a process of its own.  A process maps at most 32 window
 * pages, one per thothd it connects to (timerpage.c, MAX_MAPPED: a page once
 * mapped stays mapped, since loops of other threads may still read it), and
 * this file's cases start more thothds than that between them: in one
 * process the cases after the 32nd kept a gone thothd's page (laptop_start
 * fails on it).  A case's pages, like everything else it leaves in the
 * process, now go with its process.  A name pattern (fnmatch: * and ?) runs
 * the matching cases only (loops chasing an intermittent fault).
 */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_on_disk_raises_bus_first_through_thothd),
		cmocka_unit_test(test_kill_9_of_holder_frees_its_lease_within_1ms),
		cmocka_unit_test(test_requests_to_suspended_disk_are_replayed_after_resume),
		cmocka_unit_test(test_kill_9_of_driver_fails_its_queued_requests),
		cmocka_unit_test(test_a_burst_of_600_queued_requests_is_served_in_full),
		cmocka_unit_test(test_declaration_with_negative_latency_is_refused_naming_the_field),
		cmocka_unit_test(test_served_from_another_connection_is_refused_and_the_driver_answers),
		cmocka_unit_test(test_unknown_dependency_and_lease_kinds_are_refused_naming_the_field),
		cmocka_unit_test(test_state_stays_readable_at_the_most_leases_thothd_takes),
		cmocka_unit_test(test_a_greedy_connection_stops_at_its_share_and_others_still_get_leases),
		cmocka_unit_test(test_greedy_connections_taking_turns_are_each_logged_once_per_run),
		cmocka_unit_test(test_greedy_requests_stop_at_the_uids_share_and_are_logged),
		cmocka_unit_test(test_sim_driver_leaves_cleanly_on_sigterm_while_a_lease_is_held),
		cmocka_unit_test(test_driver_restarted_while_its_dead_element_is_held_comes_back),
		cmocka_unit_test(test_drivers_declare_again_after_thothd_restarts),
		cmocka_unit_test(test_disk_driver_waits_past_5s_for_its_bus_after_thothd_restarts),
		cmocka_unit_test(test_declaration_of_64_elements_of_16_levels_is_accepted),
		cmocka_unit_test(test_holder_whose_name_is_not_utf8_leaves_state_readable),
		cmocka_unit_test(test_latency_bound_holds_cpu_dma_latency_open_and_keeps_disk_idle),
		cmocka_unit_test(test_thothctl_pm_json_lists_every_element_with_levels_and_leases),
		cmocka_unit_test(test_runtime_pm_driver_writes_power_control_on_a_fixture_tree),
		cmocka_unit_test(test_runtime_pm_driver_writes_control_back_and_leaves_on_sigterm),
		cmocka_unit_test(test_engine_takes_an_idle_disk_down_by_its_plan),
		cmocka_unit_test(test_disk_taken_down_by_a_ladder_step_can_be_held_again_and_its_driver_killed),
		cmocka_unit_test(test_pm_trace_points_are_exported_as_chrome_json_and_ctf),
		cmocka_unit_test(test_cpu_idle_hint_follows_the_next_posted_wake_up),
		cmocka_unit_test(test_near_posts_wake_idle_thothd_a_bounded_number_of_times),
		cmocka_unit_test(test_a_forger_that_also_messages_thothd_gains_no_re_decisions),
		cmocka_unit_test(test_thothds_hint_scan_clamps_a_hostile_high_water_mark),
		cmocka_unit_test(test_lease_bound_is_held_in_the_real_cpu_dma_latency),
		cmocka_unit_test(test_cpu_idle_hints_stop_with_a_reason_when_the_request_cannot_be_held),
	};
	const char *only = argc > 1 ? argv[1] : NULL;
	unsigned ran = 0, failed = 0;
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		if (only && fnmatch(only, tests[i].name, 0) != 0)
			continue;
		ran++;
		fflush(NULL);           /* nothing buffered printed twice */
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "test_pm_thothd: cannot fork for %s: %s\n", tests[i].name, strerror(errno));
			return 1;
		}
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);       /* a killed run leaves no case behind */
			exit(_cmocka_run_group_tests(tests[i].name, &tests[i], 1, NULL, NULL) ? 1 : 0);
		}
		int st = 0;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(st))
			fprintf(stderr, "test_pm_thothd: %s killed by signal %d\n", tests[i].name, WTERMSIG(st));
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	if (!ran) {
		fprintf(stderr, "test_pm_thothd: no case matches '%s'\n", only);
		return 1;
	}
	printf("[==========] test_pm_thothd: %u case(s), each in its own process, %u failed\n", ran, failed);
	return failed ? 1 : 0;
}
