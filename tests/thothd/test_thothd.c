/*
 * test_thothd.c - thothd with real processes on real sockets: a fresh
 * runtime dir per test, children killed in teardown, conditions polled
 * against deadlines.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "live_harness.h"

static int setup(void **state)
{
	harness_t *h = calloc(1, sizeof *h);
	assert_int_equal(harness_setup(h), 0);
	assert_true(harness_start_thothd(h, NULL) > 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	harness_t *h = *state;
	harness_teardown(h);
	free(h);
	return 0;
}

static pid_t start_service(harness_t *h, const char *name, const char *ttl_ms, bool raw)
{
	char log[64];
	snprintf(log, sizeof log, "%s-%s", name, raw ? "raw" : "svc");
	const char *argv_svc[] = { SERVICE_HELPER_PATH, h->dir, name, ttl_ms, NULL };
	const char *argv_raw[] = { SERVICE_HELPER_PATH, "--raw", h->dir, name, ttl_ms, NULL };
	return harness_spawn(h, log, raw ? argv_raw : argv_svc);
}

typedef struct resolve_arg {
	thoth_control_t *ctl;
	const char *name;
	int want;                       /* 0: found, else the THOTH_REGISTRY_ERR_* */
} resolve_arg_t;

static bool resolve_gives(void *p)
{
	resolve_arg_t *a = p;
	int r = harness_resolve(a->ctl, a->name, NULL);
	if (a->want == 0)
		return r == 0;
	return r == THOTH_E_REMOTE && harness_remote_code(a->ctl) == (uint32_t)a->want;
}

static bool wait_resolvable(thoth_control_t *ctl, const char *name, int ms)
{
	resolve_arg_t a = { ctl, name, 0 };
	return harness_wait_until(resolve_gives, &a, ms);
}

static bool wait_gone(thoth_control_t *ctl, const char *name, int ms)
{
	resolve_arg_t a = { ctl, name, THOTH_REGISTRY_ERR_NOT_FOUND };
	return harness_wait_until(resolve_gives, &a, ms);
}

/* ---- watch events --------------------------------------------------------------- */

typedef struct watcher {
	thoth_control_t ctl;
	int kinds[32];
	char names[32][32];
	int n;
} watcher_t;

static void on_event(void *arg, const uint8_t *msg, size_t len)
{
	watcher_t *w = arg;
	uint64_t scratch[512];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_registry_RegistryEvents_changed_req_t ev;
	if (thoth_registry_RegistryEvents_changed_req_decode_msg(msg, len, &ev, &arena) || w->n == 32)
		return;
	w->kinds[w->n] = ev.kind;
	snprintf(w->names[w->n], sizeof w->names[0], "%s", ev.instance.registration.name.ptr);
	w->n++;
}

static void watch_start(harness_t *h, watcher_t *w, const char *prefix)
{
	memset(w, 0, sizeof *w);
	assert_int_equal(harness_connect(h, &w->ctl), 0);
	w->ctl.sock.on_event = on_event;
	w->ctl.sock.event_arg = w;
	thoth_registry_Registry_watch_req_t req = { .prefix = thoth_str(prefix) };
	thoth_registry_Registry_watch_resp_t resp;
	assert_int_equal(thoth_registry_Registry_watch(&w->ctl.client, &req, &resp, NULL), 0);
	assert_true(resp.watch_id != 0);
}

/* Wait for the next event (up to MS); its kind, or -1. */
static int watch_next(watcher_t *w, int ms, int index)
{
	uint64_t end = harness_now_ms() + (uint64_t)ms;
	while (w->n <= index) {
		int64_t left = (int64_t)(end - harness_now_ms());
		if (left <= 0 || thoth_sock_client_poll_event(&w->ctl.sock, (int)left) < 0)
			return -1;
	}
	return w->kinds[index];
}

/* ---- raw sockets for malformed input ------------------------------------------------- */

static int raw_connect(harness_t *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/thothd.sock", h->dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* Read until EOF (true) or MS pass (false); bytes read are counted. */
static bool closed_by_peer(int fd, int ms, size_t *bytes)
{
	uint64_t end = harness_now_ms() + (uint64_t)ms;
	char buf[4096];
	if (bytes)
		*bytes = 0;
	for (;;) {
		int64_t left = (int64_t)(end - harness_now_ms());
		if (left <= 0)
			return false;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n > 0 && bytes)
			*bytes += (size_t)n;
	}
}

static void header(uint8_t *out, uint16_t flags, uint32_t iface, uint32_t method, uint32_t body)
{
	thoth_msg_header_t hd = {
		.schema_major = 1, .flags = flags, .interface_id = iface, .method = method,
		.request_id = 1, .body_len = body,
	};
	thoth_wire_header_encode(out, &hd);
}

/* ================================================================================= */

static void test_register_then_resolve(void **state)
{
	harness_t *h = *state;
	thoth_control_t a, b;
	assert_int_equal(harness_connect(h, &a), 0);
	assert_int_equal(harness_connect(h, &b), 0);
	uint64_t lease = 0, got = 0;
	assert_int_equal(harness_register(&a, "echo", 10000, &lease), 0);
	assert_int_equal(harness_resolve(&b, "echo", &got), 0);
	assert_true(got == lease);
	assert_int_equal(harness_resolve(&b, "codex", &got), THOTH_E_REMOTE);
	assert_int_equal(harness_remote_code(&b), THOTH_REGISTRY_ERR_NOT_FOUND);
	thoth_control_close(&a);
	thoth_control_close(&b);
}

static void test_service_process_registers_and_resolves(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	assert_true(start_service(h, "echo", "3000", false) > 0);
	assert_true(wait_resolvable(&c, "echo", 3000));
	thoth_control_close(&c);
}

static void test_bad_name_is_refused_with_reason(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	assert_int_equal(harness_register(&c, "Bad Name", 1000, NULL), THOTH_E_REMOTE);
	assert_int_equal(harness_remote_code(&c), THOTH_REGISTRY_ERR_BAD_NAME);
	assert_non_null(strstr(c.client.remote_message, "bad name"));
	thoth_control_close(&c);
}

/* A reason longer than a client keeps (127 bytes of remote_message): a
 * bad name of 100 letters comes back in thothd's reason, and the cut is
 * marked ("..."), not a reason that ends mid-word and reads as whole. */
static void test_a_long_reason_is_cut_with_a_mark(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	char name[101];
	memset(name, 'n', 100);
	name[100] = '\0';
	name[0] = 'X';          /* not [a-z]: a bad name */
	assert_int_equal(harness_register(&c, name, 1000, NULL), THOTH_E_REMOTE);
	const char *m = c.client.remote_message;
	size_t n = strlen(m);
	print_message("remote_message: %s\n", m);
	assert_non_null(strstr(m, "bad name \"Xnnn"));
	assert_true(n < sizeof c.client.remote_message);
	assert_true(n > 3 && strcmp(m + n - 3, "...") == 0);
	thoth_control_close(&c);
}

/* A registration of NAME and VERSION sent as is (unchecked here). */
static int register_raw(thoth_control_t *c, const char *name, const char *version)
{
	thoth_registry_Registry_register_req_t rq = {
		.reg = { .name = thoth_str(name), .version = thoth_str(version),
			 .endpoint = { .addr = thoth_str("/tmp/x.sock"), .locality = THOTH_COMMON_LOCALITY_HOST },
			 .ttl_ms = 60000 },
	};
	thoth_registry_Registry_register_resp_t rr;
	return thoth_registry_Registry_register(&c->client, &rq, &rr, NULL);
}

/*
 * Text a peer sends reaches thothd's log: a refused registration's reason
 * quotes its name or version.  A newline in it forged a log line of its
 * own ("thothd[1] error: ..."), an escape drove the reader's terminal.
 * Now every control byte of a log line is written \xHH (as federation
 * keys were already).
 */
static void test_peer_text_in_the_log_is_escaped(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	assert_int_equal(register_raw(&c, "echo", "1.0\nthothd[1] error: forged version\x1b[2J"), THOTH_E_REMOTE);
	assert_int_equal(register_raw(&c, "bad\nthothd[1] error: forged name\x07", "1.0.0"), THOTH_E_REMOTE);
	/* The refusal is logged before it is answered. */
	assert_true(harness_file_contains(h->log, "1.0\\x0athothd[1] error: forged version\\x1b[2J"));
	assert_true(harness_file_contains(h->log, "bad\\x0athothd[1] error: forged name\\x07"));
	assert_false(harness_file_contains(h->log, "\nthothd[1] error: forged"));
	assert_false(harness_file_contains(h->log, "\x1b"));
	assert_false(harness_file_contains(h->log, "\x07"));
	/* A C1 control as UTF-8 (U+009B, CSI) is escaped, other UTF-8
	 * passes.  (Raw 0x80-0xff bytes cannot come from a peer's strings:
	 * the wire refuses invalid UTF-8.) */
	assert_int_equal(register_raw(&c, "echo", "1.0 csi\xc2\x9b" "2J e\xc3\xa9"), THOTH_E_REMOTE);
	assert_true(harness_file_contains(h->log, "1.0 csi\\xc2\\x9b2J e\xc3\xa9"));
	assert_false(harness_file_contains(h->log, "\xc2\x9b"));
	/* A backslash is escaped too: a peer's literal "\x1b" (four
	 * characters) must not read as the escape of an ESC. */
	assert_int_equal(register_raw(&c, "echo", "1.0 lit\\x1b"), THOTH_E_REMOTE);
	assert_true(harness_file_contains(h->log, "1.0 lit\\\\x1b"));
	assert_false(harness_file_contains(h->log, "1.0 lit\\x1b"));
	thoth_control_close(&c);
}

static void test_watch_sees_service_come_and_go(void **state)
{
	harness_t *h = *state;
	watcher_t w;
	watch_start(h, &w, "ec");
	pid_t svc = start_service(h, "echo", "60000", false);
	assert_int_equal(watch_next(&w, 3000, 0), THOTH_REGISTRY_CHANGE_KIND_ADDED);
	assert_string_equal(w.names[0], "echo");
	harness_kill(h, svc, SIGKILL);
	assert_int_equal(watch_next(&w, 1000, 1), THOTH_REGISTRY_CHANGE_KIND_REMOVED);
	thoth_control_close(&w.ctl);
}

/*
 * How late thothd may be with something due "now" (a lease's timer, a
 * dead peer's hang-up) and its word still reach us, derived from this
 * run: 20 times the median of 5 resolve round trips on C (each one a
 * wake-up of thothd and of us, the same path such news takes), and never
 * under FLOOR_MS, the bound a quiet machine met.  A loaded CI box
 * stretches every round trip, so a fixed bound would fail correct code
 * there, while a thothd that sweeps leases every second would still miss it.
 */
static uint64_t news_slack_ms(thoth_control_t *c, uint64_t floor_ms)
{
	uint64_t rtt[5];
	for (int i = 0; i < 5; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		harness_resolve(c, "no-such-name", NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		rtt[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec -
			 (uint64_t)a.tv_nsec;
	}
	for (int i = 1; i < 5; i++)
		for (int j = i; j > 0 && rtt[j] < rtt[j - 1]; j--) {
			uint64_t t = rtt[j];
			rtt[j] = rtt[j - 1];
			rtt[j - 1] = t;
		}
	uint64_t slack = 20 * rtt[2] / 1000000;
	fprintf(stderr, "# resolve round trip %.3f ms: slack %llu ms\n", rtt[2] / 1e6,
		(unsigned long long)(slack > floor_ms ? slack : floor_ms));
	return slack > floor_ms ? slack : floor_ms;
}

static void test_lease_expires_without_heartbeats(void **state)
{
	harness_t *h = *state;
	watcher_t w;
	watch_start(h, &w, "");
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	uint64_t slack = news_slack_ms(&c, 700);
	/* The lease is granted after the spawn, and expires no sooner than
	 * its TTL after the grant: so not before spawn + TTL, exactly (no
	 * allowance for noise: thothd's timers never fire early). */
	uint64_t spawned = harness_now_ms();
	assert_true(start_service(h, "quiet", "300", true) > 0);
	assert_int_equal(watch_next(&w, 3000, 0), THOTH_REGISTRY_CHANGE_KIND_ADDED);
	uint64_t added = harness_now_ms();      /* after the grant */
	/* Its connection stays open: only the missing renewals end the lease. */
	assert_int_equal(watch_next(&w, (int)(300 + 2 * slack), 1), THOTH_REGISTRY_CHANGE_KIND_EXPIRED);
	uint64_t expired = harness_now_ms();
	fprintf(stderr, "# expired %llu ms after the spawn, %llu ms after ADDED was seen\n",
		(unsigned long long)(expired - spawned), (unsigned long long)(expired - added));
	assert_true(expired - spawned >= 300);  /* not before the TTL */
	assert_true(expired - added < 300 + slack); /* and promptly after it (timer slack is 20 ms) */
	assert_int_equal(harness_resolve(&c, "quiet", NULL), THOTH_E_REMOTE);
	thoth_control_close(&c);
	thoth_control_close(&w.ctl);
}

/* OBS-3 (docs/THOTHD.md "Recent events"), the kinds test_thothd_lifecycle
 * does not make with real services: a withdraw is "deregistered", a lease
 * run out "expired", and a peer that registers and closes its connection
 * while it lives on is "lost" with its process "running".  A peer doing
 * that in a loop holds thothd's descriptors for those pidfds to
 * THOTHD_LIFECYCLE_PIDFDS (8): the ninth loss on is "unknown" and
 * thothd's descriptor count stays put (before: one pidfd kept per loss,
 * up to 64, all counted off the clients). */
typedef struct { thoth_control_t *c; uint32_t want; } regs_wait_t;

static bool registrations_are(void *arg)
{
	regs_wait_t *w = arg;
	thoth_daemon_Daemon_status_resp_t st;
	return harness_status(w->c, &st) == 0 && st.registrations == w->want;
}

static int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_lifecycle_withdraw_expiry_and_lost_running_peers(void **state)
{
	harness_t *h = *state;
	enum { LOOPS = 14, KEPT = 8 };
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	regs_wait_t w = { .c = &c };
	uint64_t lease;
	assert_int_equal(harness_register(&c, "gone", 60000, &lease), 0);
	thoth_registry_Registry_withdraw_req_t wq = { .lease = lease };
	thoth_registry_Registry_withdraw_resp_t ws;
	assert_int_equal(thoth_registry_Registry_withdraw(&c.client, &wq, &ws, NULL), 0);
	assert_int_equal(harness_register(&c, "short", 200, NULL), 0);
	w.want = 0;
	assert_true(harness_wait_until(registrations_are, &w, 30000));
	int before = count_fds(h->thothd);
	assert_true(before > 0);
	for (int i = 0; i < LOOPS; i++) {
		thoth_control_t k;
		assert_int_equal(harness_connect(h, &k), 0);
		assert_int_equal(harness_register(&k, "loop", 60000, NULL), 0);
		thoth_control_close(&k);        /* this process lives on */
		assert_true(harness_wait_until(registrations_are, &w, 30000));
	}
	int after = count_fds(h->thothd);
	fprintf(stderr, "# thothd's descriptors: %d before %d losses of a running peer, %d after\n",
		before, LOOPS, after);
	assert_true(after <= before + KEPT);

	static _Alignas(16) uint8_t scratch[256 * 1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_daemon_Daemon_status_req_t req = { .with_events = true };
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(thoth_daemon_Daemon_status(&c.client, &req, &st, &arena), 0);
	int deregistered = 0, expired = 0, running = 0, unknown = 0, other = 0;
	for (uint32_t i = 0; i < st.events.count; i++) {
		const thoth_daemon_LifecycleEvent_t *e = &st.events.items[i];
#define IS(str, lit) ((str).len == sizeof(lit) - 1 && memcmp((str).ptr, lit, (str).len) == 0)
		if (IS(e->kind, "deregistered") && IS(e->service, "gone"))
			deregistered++;
		else if (IS(e->kind, "expired") && IS(e->service, "short"))
			expired++;
		else if (IS(e->kind, "lost") && IS(e->service, "loop") && e->pid == (uint32_t)getpid())
			running += IS(e->pid_state, "running"), unknown += IS(e->pid_state, "unknown");
		else if (IS(e->kind, "lost"))
			other++;
#undef IS
	}
	fprintf(stderr, "# events: %d deregistered, %d expired, %d lost running, %d lost unknown\n",
		deregistered, expired, running, unknown);
	/* started, gone registered and deregistered, short registered and
	 * expired, then loop registered (or reregistered) and lost, each
	 * once: one event per change, none twice */
	assert_int_equal(st.events.count, 5 + 2 * LOOPS);
	assert_int_equal(deregistered, 1);
	assert_int_equal(expired, 1);
	assert_int_equal(other, 0);
	assert_int_equal(running, KEPT);
	assert_int_equal(unknown, LOOPS - KEPT);
	thoth_control_close(&c);
}

/* The state of the one "lost" event about SERVICE: 'r'unning,
 * 'e'xited, 'u'nknown, 0 none (or more than one). */
static char lost_state(thoth_control_t *c, const char *service)
{
	static _Alignas(16) uint8_t scratch[256 * 1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_daemon_Daemon_status_req_t req = { .with_events = true };
	thoth_daemon_Daemon_status_resp_t st;
	if (thoth_daemon_Daemon_status(&c->client, &req, &st, &arena))
		return 0;
	char state = 0;
	int n = 0;
	for (uint32_t i = 0; i < st.events.count; i++) {
		const thoth_daemon_LifecycleEvent_t *e = &st.events.items[i];
		if (e->kind.len == 4 && memcmp(e->kind.ptr, "lost", 4) == 0 &&
		    e->service.len == strlen(service) && memcmp(e->service.ptr, service, e->service.len) == 0) {
			n++;
			state = e->pid_state.len ? e->pid_state.ptr[0] : '?';
		}
	}
	return n == 1 ? state : 0;
}

/* A loss whose process still ran when its connection closed keeps its
 * pidfd and is asked again at each read: "running" while it lives,
 * "exited" once it has (test_thothd_lifecycle's kill -9 races this: the
 * socket closes just before the exit is signalled, so it saw a broken
 * re-ask only in about 2 runs of 3). */
static void test_lifecycle_lost_process_reads_exited_once_it_has(void **state)
{
	harness_t *h = *state;
	int go[2], done[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(go[1]);                   /* so that the parent's close is EOF */
		close(done[0]);
		thoth_control_t k;
		char b = 0;
		int ok = harness_connect(h, &k) == 0 && harness_register(&k, "child", 60000, NULL) == 0;
		thoth_control_close(&k);        /* lost, this process alive */
		if (write(done[1], ok ? "y" : "n", 1) != 1 || read(go[0], &b, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(go[0]);
	close(done[1]);
	char b = 0;
	assert_int_equal(read(done[0], &b, 1), 1);
	if (b != 'y') {
		close(go[1]);
		waitpid(child, NULL, 0);
		fail_msg("the child could not register");
	}
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	regs_wait_t w = { .c = &c, .want = 0 };
	assert_true(harness_wait_until(registrations_are, &w, 30000));
	char before = lost_state(&c, "child");
	close(go[1]);                   /* the child exits */
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	close(done[0]);
	char after = lost_state(&c, "child");
	fprintf(stderr, "# lost child: %c while it ran, %c after it exited\n", before ? before : '-',
		after ? after : '-');
	assert_int_equal(before, 'r');
	assert_int_equal(after, 'e');
	thoth_control_close(&c);
}

static void test_peer_death_removes_instance_at_once(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	pid_t svc = start_service(h, "echo", "60000", false);
	assert_true(wait_resolvable(&c, "echo", 3000));
	uint64_t slack = news_slack_ms(&c, 1000);
	uint64_t t0 = harness_now_ms();
	harness_kill(h, svc, SIGKILL);
	/* TTL is 60 s: gone within the slack is peer death */
	assert_true(wait_gone(&c, "echo", (int)slack));
	assert_true(harness_now_ms() - t0 < slack);
	thoth_control_close(&c);
}

static void test_unauthorized_renew_is_refused(void **state)
{
	harness_t *h = *state;
	thoth_control_t owner, other;
	assert_int_equal(harness_connect(h, &owner), 0);
	assert_int_equal(harness_connect(h, &other), 0);
	uint64_t lease;
	assert_int_equal(harness_register(&owner, "echo", 10000, &lease), 0);
	thoth_registry_Registry_renew_req_t rq = { .lease = lease };
	thoth_registry_Registry_renew_resp_t rs;
	assert_int_equal(thoth_registry_Registry_renew(&other.client, &rq, &rs, NULL), THOTH_E_REMOTE);
	assert_int_equal(harness_remote_code(&other), THOTH_REGISTRY_ERR_NOT_OWNER);
	thoth_registry_Registry_withdraw_req_t wq = { .lease = lease };
	thoth_registry_Registry_withdraw_resp_t ws;
	assert_int_equal(thoth_registry_Registry_withdraw(&other.client, &wq, &ws, NULL),
			 THOTH_E_REMOTE);
	assert_int_equal(harness_remote_code(&other), THOTH_REGISTRY_ERR_NOT_OWNER);
	/* Still there, and its owner may renew it. */
	assert_int_equal(harness_resolve(&other, "echo", NULL), 0);
	assert_int_equal(thoth_registry_Registry_renew(&owner.client, &rq, &rs, NULL), 0);
	assert_true(harness_file_contains(h->log, "does not own"));
	thoth_control_close(&owner);
	thoth_control_close(&other);
}

static void test_thothd_restart_service_reregisters_within_a_second(void **state)
{
	harness_t *h = *state;
	assert_true(start_service(h, "echo", "3000", false) > 0);
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	assert_true(wait_resolvable(&c, "echo", 3000));
	thoth_control_close(&c);

	assert_int_equal(harness_stop_thothd(h), 0);
	assert_true(harness_start_thothd(h, NULL) > 0);
	uint64_t up = harness_now_ms();
	assert_int_equal(harness_connect(h, &c), 0);
	/* A second on a quiet machine; a loaded one stretches it with this
	 * run's round trips (news_slack_ms). */
	assert_true(wait_resolvable(&c, "echo", (int)news_slack_ms(&c, 1000)));
	fprintf(stderr, "# resolvable %llu ms after thothd came back\n",
		(unsigned long long)(harness_now_ms() - up));
	thoth_control_close(&c);
}

static void test_second_thothd_on_same_dir_exits_1(void **state)
{
	harness_t *h = *state;
	const char *argv[] = { THOTHD_PATH, "--runtime-dir", h->dir, NULL };
	char out[1024];
	int status;
	assert_int_equal(harness_run(h, argv, out, sizeof out, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(out, "already running"));
	/* The first one is unaffected. */
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&c, &st), 0);
	assert_int_equal(st.pid, h->thothd);
	thoth_control_close(&c);
}

static void test_sigterm_removes_socket_and_pidfile(void **state)
{
	harness_t *h = *state;
	assert_int_equal(harness_stop_thothd(h), 0);
	char path[400];
	snprintf(path, sizeof path, "%s/thothd.sock", h->dir);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof path, "%s/thothd.pid", h->dir);
	assert_int_equal(access(path, F_OK), -1);
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), THOTH_E_NOT_RUNNING);
}

/* ---- malformed input ------------------------------------------------------------------ */

static void assert_others_unaffected(harness_t *h, thoth_control_t *good)
{
	assert_int_equal(harness_resolve(good, "echo", NULL), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(good, &st), 0);
	assert_int_equal(st.registrations, 1);
}

static void test_garbage_closes_only_that_client(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	int fd = raw_connect(h);
	char junk[100];
	memset(junk, 'x', sizeof junk);
	assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	assert_true(closed_by_peer(fd, 2000, NULL));
	close(fd);
	assert_others_unaffected(h, &good);
	assert_true(harness_file_contains(h->log, "bad message header: bad magic"));
	thoth_control_close(&good);
}

static void test_oversized_header_closes_only_that_client(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	int fd = raw_connect(h);
	uint8_t hd[THOTH_WIRE_HEADER_SIZE];
	/* 64 MiB announced: refused from the header alone, nothing buffered. */
	header(hd, THOTH_MSG_REQUEST, THOTH_REGISTRY_REGISTRY_ID, 2, 64u << 20);
	assert_int_equal(write(fd, hd, sizeof hd), (ssize_t)sizeof hd);
	assert_true(closed_by_peer(fd, 2000, NULL));
	close(fd);
	assert_others_unaffected(h, &good);
	assert_true(harness_file_contains(h->log, "above the control limit"));
	thoth_control_close(&good);
}

static void test_truncated_message_then_hangup_leaves_others_alone(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	int fd = raw_connect(h);
	uint8_t hd[THOTH_WIRE_HEADER_SIZE + 8] = { 0 };
	header(hd, THOTH_MSG_REQUEST, THOTH_REGISTRY_REGISTRY_ID, 2, 64);
	assert_int_equal(write(fd, hd, sizeof hd), (ssize_t)sizeof hd);  /* 56 of 104 bytes */
	close(fd);
	assert_others_unaffected(h, &good);
	thoth_control_close(&good);
}

static void test_undecodable_body_is_answered_then_closed(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	int fd = raw_connect(h);
	uint8_t msg[THOTH_WIRE_HEADER_SIZE + 16];
	memset(msg, 0xff, sizeof msg);  /* a frame claiming 4 GiB of fixed fields */
	header(msg, THOTH_MSG_REQUEST, THOTH_REGISTRY_REGISTRY_ID, 2, 16);
	assert_int_equal(write(fd, msg, sizeof msg), (ssize_t)sizeof msg);
	size_t answered = 0;
	assert_true(closed_by_peer(fd, 2000, &answered));
	assert_true(answered >= THOTH_WIRE_HEADER_SIZE);        /* the error response */
	close(fd);
	assert_others_unaffected(h, &good);
	assert_true(harness_file_contains(h->log, "undecodable request"));
	thoth_control_close(&good);
}

static void test_response_sent_as_request_closes_client(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	int fd = raw_connect(h);
	uint8_t hd[THOTH_WIRE_HEADER_SIZE];
	header(hd, THOTH_MSG_RESPONSE, THOTH_REGISTRY_REGISTRY_ID, 2, 0);
	assert_int_equal(write(fd, hd, sizeof hd), (ssize_t)sizeof hd);
	assert_true(closed_by_peer(fd, 2000, NULL));
	close(fd);
	assert_others_unaffected(h, &good);
	thoth_control_close(&good);
}

static void test_registration_flood_is_bounded(void **state)
{
	harness_t *h = *state;
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	int ok = 0, too_many = 0;
	for (int i = 0; i < 200; i++) {
		int r = harness_register(&c, "flood", 60000, NULL);
		ok += r == 0;
		too_many += r == THOTH_E_REMOTE && harness_remote_code(&c) == THOTH_REGISTRY_ERR_TOO_MANY;
	}
	assert_int_equal(ok, 64);
	assert_int_equal(too_many, 136);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&c, &st), 0);
	assert_int_equal(st.registrations, 64);
	/* The connection is still usable, and closing it frees everything at once. */
	thoth_control_close(&c);
	assert_int_equal(harness_connect(h, &c), 0);
	assert_true(wait_gone(&c, "flood", 1000));
	thoth_control_close(&c);
}

static void test_request_flood_without_reading_is_bounded(void **state)
{
	harness_t *h = *state;
	thoth_control_t good;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(harness_register(&good, "echo", 60000, NULL), 0);
	/* One client writes 20 MiB of status requests and never reads a reply:
	 * thothd stops reading it (back-pressure) instead of queueing without bound. */
	int fd = raw_connect(h);
	uint8_t hd[THOTH_WIRE_HEADER_SIZE + 8] = { 0 };
	header(hd, THOTH_MSG_REQUEST, THOTH_DAEMON_DAEMON_ID, 1, 8);
	thoth_st32(hd + THOTH_WIRE_HEADER_SIZE, 0);    /* empty frame: fixed size 0 */
	thoth_st32(hd + THOTH_WIRE_HEADER_SIZE + 4, 0);
	static uint8_t burst[48 * 4096];
	for (size_t off = 0; off + sizeof hd <= sizeof burst; off += sizeof hd)
		memcpy(burst + off, hd, sizeof hd);
	size_t sent = 0;
	uint64_t end = harness_now_ms() + 3000;
	while (sent < (20u << 20) && harness_now_ms() < end) {
		ssize_t n = send(fd, burst, sizeof burst, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		else {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			poll(&p, 1, 50);
		}
	}
	assert_true(sent < (20u << 20));        /* it stalled: thothd stopped reading */
	assert_others_unaffected(h, &good);
	char statm[400];
	snprintf(statm, sizeof statm, "/proc/%d/statm", (int)h->thothd);
	FILE *f = fopen(statm, "r");
	long pages = 0, rss = 0;
	assert_int_equal(fscanf(f, "%ld %ld", &pages, &rss), 2);
	fclose(f);
	fprintf(stderr, "# flood stalled after %zu KiB; thothd RSS %ld KiB\n", sent >> 10,
		rss * 4);
	assert_true(rss * 4096 < (64l << 20));
	close(fd);
	thoth_control_close(&good);
}

/* True once thothd closed FD's connection (its unread data left unread). */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

/* Large events for the watchers: a 128-byte name and a 1,000-byte
 * endpoint. */
static thoth_registry_Registry_register_req_t large_register_req(void)
{
	static char name[129], addr[1001];
	memset(name, 'a', 128);
	addr[0] = '/';
	memset(addr + 1, 'x', 999);
	return (thoth_registry_Registry_register_req_t){
		.reg = { .name = thoth_str(name), .version = thoth_str("1.0.0"),
			 .endpoint = { .addr = thoth_str(addr), .locality = THOTH_COMMON_LOCALITY_HOST },
			 .ttl_ms = 60000 },
	};
}

/* The storm's own connection: registrations answered within 60 s, not the
 * harness's 2 s.  These cases count bytes pushed, not time; with dozens of
 * queues growing towards the output budget, thothd under ASan at ctest -j4
 * (load ~11) once took over 2 s for one answer (THOTH_E_TIMEDOUT at the
 * withdraw), and the silent watchers that failure left open failed the
 * next case the same way. */
static void storm_connect(harness_t *h, thoth_control_t *c)
{
	assert_int_equal(thoth_control_connect(c, h->dir, 60000), 0);
}

/* C connected and watching everything, with a small receive buffer so its
 * queue at thothd grows as soon as it stops reading. */
static void slow_watcher(harness_t *h, thoth_control_t *c)
{
	thoth_registry_Registry_watch_req_t wreq = { .prefix = thoth_str("") };
	thoth_registry_Registry_watch_resp_t wresp;
	int small = 4096;
	assert_int_equal(harness_connect(h, c), 0);
	setsockopt(c->sock.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	assert_int_equal(thoth_registry_Registry_watch(&c->client, &wreq, &wresp, NULL), 0);
}

/*
 * Watchers that never read, and a storm of registrations: each watcher's
 * queue is bounded (8 MiB), and so must be their sum.  The old thothd held
 * up to 8 MiB for every one of them (40 here: 320 MiB; 700 of one uid:
 * 5.6 GiB) and closed none before it crossed its own 8 MiB.  Now past the
 * output budget (64 MiB, all clients) the one whose queue moved least
 * recently goes: the first of the 40 is closed well before 8 MiB were
 * pushed to each.  Counted in bytes pushed, not timed.  A watcher that
 * reads throughout, and thothd's other clients, are untouched.
 */
static void test_watchers_that_never_read_cannot_hold_unbounded_output(void **state)
{
	harness_t *h = *state;
	enum { WATCHERS = 40 };
	static thoth_control_t w[WATCHERS];
	thoth_registry_Registry_watch_req_t wreq = { .prefix = thoth_str("") };
	thoth_registry_Registry_watch_resp_t wresp;
	for (int i = 0; i < WATCHERS; i++) {
		slow_watcher(h, &w[i]);
	}
	thoth_control_t good, storm;
	assert_int_equal(harness_connect(h, &good), 0);
	assert_int_equal(thoth_registry_Registry_watch(&good.client, &wreq, &wresp, NULL), 0);
	storm_connect(h, &storm);

	thoth_registry_Registry_register_req_t rq = large_register_req();
	size_t pushed = 0, event = THOTH_WIRE_HEADER_SIZE + 128 + 1000 + 64, first_closed = 0;
	char sink[65536];
	while (pushed < (12u << 20) && !first_closed) {
		thoth_registry_Registry_register_resp_t rr;
		assert_int_equal(thoth_registry_Registry_register(&storm.client, &rq, &rr, NULL), 0);
		thoth_registry_Registry_withdraw_req_t wd = { .lease = rr.lease };
		thoth_registry_Registry_withdraw_resp_t wr;
		assert_int_equal(thoth_registry_Registry_withdraw(&storm.client, &wd, &wr, NULL), 0);
		pushed += 2 * event;
		while (recv(good.sock.fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
			;
		for (int i = 0; i < WATCHERS && !first_closed; i++)
			if (hung_up(w[i].sock.fd))
				first_closed = pushed;
	}
	fprintf(stderr, "# first of %d silent watchers closed after %zu KiB pushed to each\n", WATCHERS,
		first_closed >> 10);
	assert_true(first_closed != 0);
	assert_true(first_closed < (6u << 20));
	/* The budget counts unsent bytes, not queue capacity: with 40 equal
	 * queues none goes before about 64 MiB / 40 is unsent in each (counting
	 * capacity, doubling closed the first at 1037 KiB, about half). */
	assert_true(first_closed >= (size_t)(64u << 20) / WATCHERS * 8 / 10);
	/* The reader kept up and stays; thothd answers everyone else. */
	assert_false(hung_up(good.sock.fd));
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&storm, &st), 0);
	assert_true(harness_file_contains(h->log, "output budget"));
	for (int i = 0; i < WATCHERS; i++)
		thoth_control_close(&w[i]);
	thoth_control_close(&good);
	thoth_control_close(&storm);
}

/*
 * Who pays when the output budget is spent: the largest queue of the uid
 * holding the most unsent output, not the queue that moved least recently.
 * That choice was gameable: a hostile client that keeps reading a little
 * keeps its queue "fresh" while it grows, and a client that paused briefly
 * became the victim.  Here (one uid: all test clients are root) 30 fillers
 * and one hog read a little every round, so their queues move but grow, the
 * hog's fastest; a pauser reads everything and then stops near the end.  The
 * hog is closed; the pauser, whose queue moved least recently, stays.
 */
static void test_output_budget_closes_the_largest_queue_not_the_paused_one(void **state)
{
	harness_t *h = *state;
	enum { FILLERS = 30 };
	static thoth_control_t f[FILLERS];
	thoth_control_t hog, pauser, storm;
	for (int i = 0; i < FILLERS + 2; i++)
		slow_watcher(h, i < FILLERS ? &f[i] : i == FILLERS ? &hog : &pauser);
	storm_connect(h, &storm);

	thoth_registry_Registry_register_req_t rq = large_register_req();
	const size_t event = THOTH_WIRE_HEADER_SIZE + 128 + 1000 + 64;
	/* 30 fillers grow one event a round, the hog about 1.5: the budget is
	 * spent after about 64 MiB / 32 events rounds; the pauser stops well
	 * before, so its queue has not moved for hundreds of rounds. */
	const size_t pause_at = ((size_t)64 << 20) / (FILLERS + 2) / event * 8 / 10;
	char sink[65536];
	bool closed = false;
	for (size_t round = 0; round < 20000 && !closed; round++) {
		thoth_registry_Registry_register_resp_t rr;
		assert_int_equal(thoth_registry_Registry_register(&storm.client, &rq, &rr, NULL), 0);
		thoth_registry_Registry_withdraw_req_t wd = { .lease = rr.lease };
		thoth_registry_Registry_withdraw_resp_t wr;
		assert_int_equal(thoth_registry_Registry_withdraw(&storm.client, &wd, &wr, NULL), 0);
		for (int i = 0; i < FILLERS; i++)
			(void)!recv(f[i].sock.fd, sink, event, MSG_DONTWAIT);
		(void)!recv(hog.sock.fd, sink, event / 2, MSG_DONTWAIT);
		if (round < pause_at)
			while (recv(pauser.sock.fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
				;
		closed = hung_up(hog.sock.fd) || hung_up(pauser.sock.fd);
		for (int i = 0; i < FILLERS && !closed; i++)
			closed = hung_up(f[i].sock.fd);
	}
	assert_true(closed);
	assert_true(hung_up(hog.sock.fd));
	assert_false(hung_up(pauser.sock.fd));
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&storm, &st), 0);
	/* The log is over 1 MiB of registrations (harness_file_contains reads
	 * the first MiB): grep it all. */
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "grep -q 'largest queue of the uid' '%s'", h->log);
	assert_int_equal(system(cmd), 0);
	for (int i = 0; i < FILLERS; i++)
		thoth_control_close(&f[i]);
	thoth_control_close(&hog);
	thoth_control_close(&pauser);
	thoth_control_close(&storm);
}

/*
 * The default port (9180) held by another process: thothd says so and runs
 * without a dashboard (status names none), its registry served.  Tests give
 * thothd a port of their own (harness.c: --http-port 0), so this is the one
 * test of the default.  9180 is held here when this process can bind it;
 * else another process holds it (make test's hold_default_ports.py, another
 * thothd), and if that one lets go before thothd binds, thothd serves it:
 * skipped so, saying why, never a failure of a race.
 */
static void test_the_default_port_held_elsewhere_leaves_thothd_without_a_dashboard(void **state)
{
	harness_t *h = *state;
	int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(hold >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9180),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	bool ours = bind(hold, (struct sockaddr *)&a, sizeof a) == 0 && listen(hold, 1) == 0;
	if (!ours)
		fprintf(stderr, "# 127.0.0.1:9180 is another process's (%s): the test leans on that\n",
			strerror(errno));
	h->thothd_default_port = true;
	assert_true(harness_start_thothd(h, NULL) > 0);
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&c, &st), 0);
	thoth_control_close(&c);
	close(hold);
	if (!ours && st.dashboard_url.len) {
		fprintf(stderr, "# 9180 was let go before thothd bound it: it serves %.*s; nothing to check\n",
			(int)st.dashboard_url.len, st.dashboard_url.ptr);
		skip();
	}
	if (st.dashboard_url.len)
		fail_msg("thothd serves a dashboard at %.*s with 9180 held", (int)st.dashboard_url.len,
			 st.dashboard_url.ptr);
	assert_true(harness_file_contains(h->log, "running without it"));
}

/*
 * Every other harness thothd: with 9180 held, still a dashboard, on a port
 * of its own (--http-port 0 from harness.c).  At the default it ran
 * without one whenever another test's thothd held 9180 at that moment, a
 * listener and its epoll entry fewer than the run before (test_chaos's
 * exact descriptor count failed so).
 */
static void test_a_harness_thothd_has_a_dashboard_of_its_own_with_9180_held(void **state)
{
	harness_t *h = *state;
	int hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(hold >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9180),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (bind(hold, (struct sockaddr *)&a, sizeof a) != 0 || listen(hold, 1) != 0)
		fprintf(stderr, "# 127.0.0.1:9180 is another process's (%s)\n", strerror(errno));
	assert_true(harness_start_thothd(h, NULL) > 0);
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	int port = live_dashboard_port(&c);
	thoth_control_close(&c);
	close(hold);
	if (port <= 0 || port == 9180)
		fail_msg("a harness thothd's dashboard port: %d (want one of its own, not 9180, not none)", port);
}

static int setup_bare(void **state)
{
	harness_t *h = calloc(1, sizeof *h);
	assert_int_equal(harness_setup(h), 0);
	*state = h;
	return 0;
}

static int setup_http(void **state)
{
	harness_t *h = calloc(1, sizeof *h);
	assert_int_equal(harness_setup(h), 0);
	const char *const args[] = { "--http-port", "0", NULL };
	assert_true(harness_start_thothd(h, args) > 0);
	*state = h;
	return 0;
}

/* A plain /metrics figure (no labels); UINT64_MAX when absent. */
static uint64_t plain_metric(int port, const char *name)
{
	char *m = live_metrics(port);
	char key[128];
	snprintf(key, sizeof key, "\n%s ", name);
	const char *p = m ? strstr(m, key) : NULL;
	uint64_t v = p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
	free(m);
	return v;
}

typedef struct drained_arg {
	int port;
	thoth_control_t *w;
	int n;
} drained_arg_t;

/* Every watcher read all it was sent, and thothd holds nothing unsent. */
static bool all_drained(void *p)
{
	drained_arg_t *a = p;
	char sink[65536];
	for (int i = 0; i < a->n; i++)
		while (recv(a->w[i].sock.fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
			;
	return plain_metric(a->port, "thoth_thothd_output_unsent_bytes") == 0;
}

static bool nothing_kept(void *p)
{
	return plain_metric(*(int *)p, "thoth_thothd_output_kept_bytes") == 0;
}

/* Register and withdraw the large registration until thothd holds at least
 * WANT unsent bytes in all (/metrics), its watchers reading nothing. */
static void push_unsent(thoth_control_t *storm, int port, uint64_t want)
{
	thoth_registry_Registry_register_req_t rq = large_register_req();
	for (int round = 0; round < 20000; round++) {
		uint64_t unsent = plain_metric(port, "thoth_thothd_output_unsent_bytes");
		assert_true(unsent != UINT64_MAX);
		if (unsent >= want)
			return;
		thoth_registry_Registry_register_resp_t rr;
		assert_int_equal(thoth_registry_Registry_register(&storm->client, &rq, &rr, NULL), 0);
		thoth_registry_Registry_withdraw_req_t wd = { .lease = rr.lease };
		thoth_registry_Registry_withdraw_resp_t wr;
		assert_int_equal(thoth_registry_Registry_withdraw(&storm->client, &wd, &wr, NULL), 0);
	}
	fail_msg("thothd never held %llu unsent bytes", (unsigned long long)want);
}

/*
 * A drained output queue keeps its capacity for its next answers, but only
 * up to 64 KiB each (OUTQ_KEEP) and 4 MiB in all (OUTQ_KEPT_MAX), outside
 * the output budget: 768 idle connections that once queued 64 KiB each
 * pinned 48 MiB.  One watcher first, whose queue grew past 64 KiB: nothing
 * kept once it reads.  Then 100 whose queues grew to a 64 KiB capacity
 * (40-60 KiB unsent each): 6.4 MiB would be kept without the bound in all;
 * about 4 MiB is (more than 3.9 MiB: the bound is reached, so the test
 * shows it binds).  Counted by thothd's /metrics, not by RSS.
 */
static void test_drained_output_queues_keep_a_bounded_capacity(void **state)
{
	harness_t *h = *state;
	enum { WATCHERS = 100 };
	static thoth_control_t w[WATCHERS];
	thoth_control_t storm;
	assert_int_equal(harness_connect(h, &storm), 0);
	int port = live_dashboard_port(&storm);
	assert_true(port > 0);
	assert_int_equal(plain_metric(port, "thoth_thothd_output_kept_bytes_limit"), 4u << 20);

	slow_watcher(h, &w[0]);
	push_unsent(&storm, port, 80u << 10);
	drained_arg_t one = { port, w, 1 };
	assert_true(harness_wait_until(all_drained, &one, 30000));
	assert_int_equal(plain_metric(port, "thoth_thothd_output_kept_bytes"), 0);
	thoth_control_close(&w[0]);

	for (int i = 0; i < WATCHERS; i++)
		slow_watcher(h, &w[i]);
	/* Each queue between 32 and 64 KiB unsent: a 64 KiB capacity, the
	 * most one drained queue may keep.  The kernel's socket buffers take
	 * the same for each, so the queues stay within an event of each
	 * other. */
	push_unsent(&storm, port, (uint64_t)WATCHERS * (40u << 10));
	uint64_t unsent = plain_metric(port, "thoth_thothd_output_unsent_bytes");
	fprintf(stderr, "# %d watchers hold %llu KiB unsent each\n", WATCHERS,
		(unsigned long long)(unsent / WATCHERS >> 10));
	assert_true(unsent < (uint64_t)WATCHERS * (60u << 10));
	drained_arg_t all = { port, w, WATCHERS };
	assert_true(harness_wait_until(all_drained, &all, 60000));
	uint64_t kept = plain_metric(port, "thoth_thothd_output_kept_bytes");
	fprintf(stderr, "# drained queues keep %llu KiB in all\n", (unsigned long long)(kept >> 10));
	assert_true(kept <= (4u << 20));
	assert_true(kept > (4u << 20) - (64u << 10) * 2);
	assert_int_equal(plain_metric(port, "thoth_thothd_output_budget_closed_total"), 0);
	for (int i = 0; i < WATCHERS; i++)
		thoth_control_close(&w[i]);
	/* Closed connections take their kept capacity with them. */
	assert_true(harness_wait_until(nothing_kept, &port, 30000));
	thoth_control_close(&storm);
}

/* OBS-3: a peer minting service names and losing each (register, close
 * its connection) gets 32 labels of thoth_thothd_service_lost_total at
 * most; the rest count under service="(other)", and the total holds. */
static void test_lost_service_labels_are_bounded(void **state)
{
	harness_t *h = *state;
	enum { NAMES = 36, LABELS = 32 };
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	int port = live_dashboard_port(&c);
	assert_true(port > 0);
	regs_wait_t w = { .c = &c, .want = 0 };
	for (int i = 0; i < NAMES; i++) {
		thoth_control_t k;
		char name[32];
		snprintf(name, sizeof name, "minted%02d", i);
		assert_int_equal(harness_connect(h, &k), 0);
		assert_int_equal(harness_register(&k, name, 60000, NULL), 0);
		thoth_control_close(&k);
		assert_true(harness_wait_until(registrations_are, &w, 30000));
	}
	char *m = live_metrics(port);
	assert_non_null(m);
	int labels = 0, other = -1;
	uint64_t sum = 0;
	const char *key = "\nthoth_thothd_service_lost_total{service=\"";
	for (const char *p = strstr(m, key); p; p = strstr(p + 1, key)) {
		const char *v = strchr(p, '}');
		assert_non_null(v);
		unsigned long long n = strtoull(v + 2, NULL, 10);
		sum += n;
		if (strncmp(p + strlen(key), "(other)\"", 8) == 0)
			other = (int)n;
		else
			labels++;
	}
	free(m);
	fprintf(stderr, "# %d names lost: %d labels, (other) %d\n", NAMES, labels, other);
	assert_int_equal(labels, LABELS);
	assert_int_equal(other, NAMES - LABELS);
	assert_int_equal(sum, NAMES);
	thoth_control_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_then_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_default_port_held_elsewhere_leaves_thothd_without_a_dashboard,
						setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_a_harness_thothd_has_a_dashboard_of_its_own_with_9180_held,
						setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_service_process_registers_and_resolves, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_name_is_refused_with_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_long_reason_is_cut_with_a_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_text_in_the_log_is_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_sees_service_come_and_go, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_expires_without_heartbeats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle_withdraw_expiry_and_lost_running_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lifecycle_lost_process_reads_exited_once_it_has, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_death_removes_instance_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unauthorized_renew_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thothd_restart_service_reregisters_within_a_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_thothd_on_same_dir_exits_1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_removes_socket_and_pidfile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_closes_only_that_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_header_closes_only_that_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_message_then_hangup_leaves_others_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undecodable_body_is_answered_then_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_response_sent_as_request_closes_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registration_flood_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_flood_without_reading_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watchers_that_never_read_cannot_hold_unbounded_output, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_output_budget_closes_the_largest_queue_not_the_paused_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_service_labels_are_bounded, setup_http, teardown),
		cmocka_unit_test_setup_teardown(test_drained_output_queues_keep_a_bounded_capacity, setup_http,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
