/*
 * test_serve_thothd.c - a per-CPU service's folded counters carried to
 * thothd and shown by thothctl (text and --json) and the dashboard
 * (/serve.json) (SCALE-2, docs/SCALE.md "A per-CPU service's counters in
 * thothctl").
 *
 * A real thothd, a real service process running thoth_serve_per_cpu with a
 * trace buffer (which is where its workers keep their counters), client
 * processes pinned to every CPU so that more than one worker serves.  Once
 * the calls are over, the service reports its own fold (thoth_serve_stats)
 * through a pipe, and every field thothd shows must equal it, in all three
 * places, and the calls must equal what the clients had answered.
 *
 * Hostile input: a process whose serve header lies (workers beyond the
 * slots, a region outside the buffer, a slot count beyond the limit, a
 * header that never settles, unterminated strings, a foreign counter size,
 * counters at UINT64_MAX) is listed with the reason or saturated, thothd
 * keeps answering, and the honest service is still shown exactly.
 *
 * A service's dropped oneway calls (thoth_rpc_oneways_dropped: a method
 * it lacks, sent oneway, has no answer to carry the error) are shown by
 * thothctl serve (text and --json), /serve.json and /metrics.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../common/serve_echo.h"
#include "../common/testutil.h"
#include "harness.h"
#include "thoth/trace.h"
#include "trace_layout.h"

enum {
	CALLS = 300,            /* per client */
	DEADLINE_MS = 20000,
	OUT_CAP = 1 << 16,
};

static harness_t h;
static char sock_path[128];
static char url_host[64];
static int url_port;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(harness_setup(&h), 0);
	const char *args[] = { "--http-port", "0", NULL };
	assert_true(harness_start_thothd(&h, args) > 0);
	snprintf(sock_path, sizeof sock_path, "%s/percpu.sock", h.dir);
	/* The dashboard's address from thothd's status. */
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&ctl, &st), 0);
	assert_true(sscanf(st.dashboard_url.ptr, "http://%63[^:]:%d/", url_host, &url_port) == 2);
	thoth_control_close(&ctl);
	return 0;
}

static int teardown(void **state)
{
	harness_teardown(&h);
	return 0;
}

static void track(pid_t p)
{
	assert_true(p > 0);
	if (h.n_children < HARNESS_MAX_CHILDREN)
		h.children[h.n_children++] = p;         /* killed in teardown */
}

/* ---- the service process ------------------------------------------------------ */

typedef struct ask { int in, out; } ask_t;

/* Answers each byte on ASK->in with thoth_serve_stats's fold. */
static void *answer_asks(void *arg)
{
	ask_t *a = arg;
	char c;
	while (read(a->in, &c, 1) == 1) {
		thoth_chan_server_stats_t st;
		int r = thoth_serve_stats(&st);
		if (r)
			memset(&st, 0xff, sizeof st);
		if (write(a->out, &st, sizeof st) != (ssize_t)sizeof st)
			break;
	}
	return NULL;
}

static void service(ask_t *a)
{
	thoth_control_t ctl;
	/* A trace buffer (where the workers' counters live) handed to thothd
	 * on the control connection. */
	if (thoth_trace_init_process("percpu-svc") || harness_connect(&h, &ctl))
		_exit(10);
	pthread_t t;
	if (pthread_create(&t, NULL, answer_asks, a))
		_exit(11);
	_exit(test_serve_echo_per_cpu(sock_path, test_echo_same_handlers()) ? 12 : 0);
}

/* The service's own fold, asked through its pipe. */
static thoth_chan_server_stats_t own(const ask_t *to, const ask_t *from)
{
	thoth_chan_server_stats_t st;
	assert_int_equal(write(to->out, "?", 1), 1);
	assert_int_equal(read(from->in, &st, sizeof st), (ssize_t)sizeof st);
	return st;
}

/* ---- clients ------------------------------------------------------------------ */

/* Pinned to CPU, connects, makes CALLS calls; writes how many were
 * answered to OUT; with HOLD >= 0, stays connected until HOLD closes. */
static void client(int cpu, int out, int hold)
{
	thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpu);
	uint32_t ok = 0;
	for (int i = 0; i < CALLS; i++)
		ok += test_echo_call(ch, (uint8_t)i, NULL) >= 0;
	if (write(out, &ok, sizeof ok) != sizeof ok)
		_exit(4);
	if (hold >= 0) {
		char c;
		while (read(hold, &c, 1) > 0)
			;
	}
	thoth_chan_close(ch);
	_exit(0);
}

/* ---- what thothd shows ---------------------------------------------------------- */

/* The value of "KEY": N in the object of DOC that has "pid": PID. */
static bool json_u64(const char *doc, uint32_t pid, const char *key, uint64_t *v)
{
	char at[40], k[64];
	snprintf(at, sizeof at, "{\"pid\": %u,", pid);
	const char *obj = strstr(doc, at);
	if (!obj)
		return false;
	const char *end = strchr(obj, '}');
	snprintf(k, sizeof k, "\"%s\": ", key);
	const char *p = strstr(obj, k);
	if (!p || (end && p > end))
		return false;
	*v = strtoull(p + strlen(k), NULL, 10);
	return true;
}

static const char *const FIELDS[] = {
	"clients", "accepted", "refused", "calls", "turns", "peer_gone", "corrupt",
	"handshake_dropped", "shed", "mod_wakeups", "mod_timer_wakeups", "placement_moves",
	"handed_over", "log_suppressed",
};

static uint64_t field(const thoth_chan_server_stats_t *s, const char *name)
{
#define F(f) if (!strcmp(name, #f)) return s->f
	F(clients); F(accepted); F(refused); F(calls); F(turns); F(peer_gone); F(corrupt);
	F(handshake_dropped); F(shed); F(mod_wakeups); F(mod_timer_wakeups); F(placement_moves);
	F(handed_over); F(log_suppressed);
#undef F
	fail_msg("unknown field %s", name);
	return 0;
}

/* Every field of DOC's object for PID equals OWN's; WHERE names DOC. */
static void expect_equal(const char *doc, uint32_t pid, const thoth_chan_server_stats_t *o,
			 const char *where)
{
	for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
		uint64_t v;
		if (!json_u64(doc, pid, FIELDS[i], &v))
			fail_msg("%s: no %s for pid %u in:\n%s", where, FIELDS[i], pid, doc);
		if (v != field(o, FIELDS[i]))
			fail_msg("%s: %s = %llu, the service's own fold says %llu", where, FIELDS[i],
				 (unsigned long long)v, (unsigned long long)field(o, FIELDS[i]));
	}
}

static void thothctl(char *out, const char *a1, const char *a2, const char *a3, const char *a4)
{
	const char *argv[] = { THOTHCTL_PATH, "--runtime-dir", h.dir, a1, a2, a3, a4, NULL };
	int status;
	assert_int_equal(harness_run(&h, argv, out, OUT_CAP, &status), 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("thothctl %s %s failed:\n%s", a1, a2 ? a2 : "", out);
}

/* GET PATH from the dashboard; the body in OUT. */
static void http_get(const char *path, char *out)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)url_port) };
	assert_int_equal(inet_pton(AF_INET, url_host, &sa.sin_addr), 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[200];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, url_host);
	assert_int_equal(write(fd, req, (size_t)n), n);
	size_t len = 0;
	ssize_t k;
	while (len < OUT_CAP - 1 && (k = read(fd, out + len, OUT_CAP - 1 - len)) > 0)
		len += (size_t)k;
	out[len] = 0;
	close(fd);
	assert_non_null(strstr(out, "200 OK"));
	char *body = strstr(out, "\r\n\r\n");
	assert_non_null(body);
	memmove(out, body + 4, strlen(body + 4) + 1);
}

static bool serves(void *arg)
{
	(void)arg;
	return access(sock_path, F_OK) == 0;
}

typedef struct quiet { const ask_t *to, *from; uint64_t calls, gone; uint32_t clients; } quiet_t;

/* Every call counted and every finished client's close seen, in both the
 * closes counted and the channels still open (a server counts the close
 * when it sees the hang-up and drops the channel a little later). */
static bool settled(void *arg)
{
	quiet_t *q = arg;
	thoth_chan_server_stats_t s = own(q->to, q->from);
	return s.calls == q->calls && s.peer_gone == q->gone && s.clients == q->clients;
}

static void test_thothctl_and_dashboard_show_the_services_own_folded_counters(void **state)
{
	int cpus[CPU_SETSIZE], ncpu = test_allowed_cpus(cpus, CPU_SETSIZE);
	assert_true(ncpu > 0);
	int to_svc[2], from_svc[2];
	assert_int_equal(pipe2(to_svc, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from_svc, O_CLOEXEC), 0);
	pid_t svc = fork();
	if (svc == 0) {
		ask_t a = { to_svc[0], from_svc[1] };
		service(&a);
	}
	track(svc);
	ask_t to = { -1, to_svc[1] }, from = { from_svc[0], -1 };
	assert_true(harness_wait_until(serves, NULL, DEADLINE_MS));

	/* Two clients per CPU that call and leave, one per CPU that calls and
	 * stays (so "clients" is not trivially 0). */
	int res[2], hold[2];
	assert_int_equal(pipe2(res, O_CLOEXEC), 0);
	assert_int_equal(pipe2(hold, O_CLOEXEC), 0);
	int leaving = 2 * ncpu, staying = ncpu;
	for (int i = 0; i < leaving + staying; i++) {
		pid_t p = fork();
		if (p == 0)
			client(cpus[i % ncpu], res[1], i >= leaving ? hold[0] : -1);
		track(p);
	}
	close(hold[0]);
	uint64_t answered = 0;
	for (int i = 0; i < leaving + staying; i++) {
		uint32_t ok;
		assert_int_equal(read(res[0], &ok, sizeof ok), (ssize_t)sizeof ok);
		answered += ok;
	}
	assert_int_equal(answered, (uint64_t)(leaving + staying) * CALLS);
	quiet_t q = { &to, &from, answered, (uint64_t)leaving, (uint32_t)staying };
	assert_true(harness_wait_until(settled, &q, DEADLINE_MS));

	thoth_chan_server_stats_t before = own(&to, &from);
	static char json[OUT_CAP], text[OUT_CAP], web[OUT_CAP];
	char pid_s[16];
	snprintf(pid_s, sizeof pid_s, "%d", (int)svc);
	thothctl(json, "--json", "serve", "--pid", pid_s);
	thothctl(text, "serve", NULL, NULL, NULL);
	http_get("/serve.json", web);
	thoth_chan_server_stats_t after = own(&to, &from);
	printf("service's own fold: %llu calls, %llu turns, %u clients, %llu handed over\n"
	       "thothctl --json serve: %s", (unsigned long long)before.calls,
	       (unsigned long long)before.turns, before.clients, (unsigned long long)before.handed_over,
	       json);
	printf("thothctl serve:\n%s", text);
	/* Quiet: nothing moved while thothd was asked three times. */
	assert_memory_equal(&before, &after, sizeof before);
	assert_int_equal(before.calls, answered);
	assert_int_equal(before.clients, (uint32_t)staying);

	expect_equal(json, (uint32_t)svc, &before, "thothctl --json serve");
	expect_equal(web, (uint32_t)svc, &before, "dashboard /serve.json");
	uint64_t workers;
	assert_true(json_u64(json, (uint32_t)svc, "workers", &workers));
	assert_int_equal(workers, (uint64_t)(ncpu > 1 ? ncpu : 1));
	assert_non_null(strstr(json, "\"iface\": \"Test\""));
	assert_non_null(strstr(json, sock_path));
	/* Calls per worker add up to the fold, and with clients on every CPU
	 * more than one worker served. */
	const char *wc = strstr(json, "\"worker_calls\": [");
	assert_non_null(wc);
	wc += strlen("\"worker_calls\": [");
	uint64_t sum = 0;
	int busy = 0;
	for (uint64_t w = 0; w < workers; w++) {
		char *end;
		uint64_t c = strtoull(wc, &end, 10);
		sum += c;
		busy += c > 0;
		wc = end + strspn(end, ", ");
	}
	assert_int_equal(sum, before.calls);
	if (ncpu > 1)
		assert_true(busy > 1);

	char line[320];
	snprintf(line, sizeof line, "pid %d (percpu-svc) serves Test at %s with %llu worker", (int)svc,
		 sock_path, (unsigned long long)workers);
	assert_non_null(strstr(text, line));
	snprintf(line, sizeof line, "  calls %llu  turns %llu  clients %u  accepted %llu",
		 (unsigned long long)before.calls, (unsigned long long)before.turns, before.clients,
		 (unsigned long long)before.accepted);
	assert_non_null(strstr(text, line));
	close(hold[1]);
}

/* ---- a process whose serve header lies ------------------------------------------ */

enum { LIE_NONE, LIE_WORKERS, LIE_REGION, LIE_SLOTS, LIE_UNSETTLED, LIE_STRINGS, LIE_SIZE,
       LIE_HUGE, LIE_MAGIC, LIE_COUNT };

static void liar(int in, int out)
{
	thoth_control_t ctl;
	int fd;
	struct stat st;
	if (thoth_trace_init_process("liar") || thoth_trace_export_fd(&fd) || fstat(fd, &st))
		_exit(10);
	char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED || harness_connect(&h, &ctl))
		_exit(11);
	thoth_trace_serve_t *sv = (thoth_trace_serve_t *)(base + THOTH_TRACE_SERVE_OFFSET);
	const thoth_trace_serve_t good = *sv;
	thoth_chan_server_stats_t *slot = (thoth_chan_server_stats_t *)(base + good.region_offset);
	char step;
	while (read(in, &step, 1) == 1) {
		*sv = good;
		sv->workers = 2;
		sv->stats_size = sizeof(thoth_chan_server_stats_t);
		snprintf(sv->iface, sizeof sv->iface, "Lies");
		snprintf(sv->path, sizeof sv->path, "/nowhere");
		memset(slot, 0, 2 * THOTH_TRACE_SERVE_SLOT);
		slot->calls = 7;
		switch (step) {
		case LIE_WORKERS: sv->workers = good.slot_count + 1; break;
		case LIE_REGION: sv->region_offset = (uint64_t)st.st_size; break;
		case LIE_SLOTS: sv->slot_count = 1u << 30; break;
		case LIE_UNSETTLED: sv->seq = good.seq | 1; break;
		case LIE_STRINGS: memset(sv->iface, 'A', sizeof sv->iface); break;
		case LIE_SIZE: sv->stats_size = 4000; break;
		case LIE_HUGE:
			slot->calls = UINT64_MAX;
			((thoth_chan_server_stats_t *)((char *)slot + THOTH_TRACE_SERVE_SLOT))->calls = 5;
			slot->clients = UINT32_MAX;
			((thoth_chan_server_stats_t *)((char *)slot + THOTH_TRACE_SERVE_SLOT))->clients = 3;
			break;
		case LIE_MAGIC: sv->magic = 0x12345678; break;
		}
		if (write(out, &step, 1) != 1)
			_exit(12);
	}
	_exit(0);
}

static void serve_stats(thoth_control_t *ctl, uint32_t pid, thoth_daemon_Daemon_serve_stats_resp_t *resp,
			thoth_arena_t *a, void *mem, size_t cap)
{
	thoth_arena_init(a, mem, cap);
	thoth_daemon_Daemon_serve_stats_req_t req = { .pid = pid };
	assert_int_equal(thoth_daemon_Daemon_serve_stats(&ctl->client, &req, resp, a), 0);
}

static void test_a_serve_header_that_lies_is_refused_with_the_reason(void **state)
{
	int to[2], from[2];
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	pid_t p = fork();
	if (p == 0)
		liar(to[0], from[1]);
	track(p);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	static const char *const expect[LIE_COUNT] = {
		[LIE_WORKERS] = "workers in", [LIE_REGION] = "outside the", [LIE_SLOTS] = "slots (1 to",
		[LIE_UNSETTLED] = "kept changing", [LIE_STRINGS] = "not NUL-terminated",
		[LIE_SIZE] = "counters of 4000 bytes",
	};
	static uint64_t mem[1 << 14];
	for (char step = LIE_NONE; step < LIE_COUNT; step++) {
		char ack;
		assert_int_equal(write(to[1], &step, 1), 1);
		assert_int_equal(read(from[0], &ack, 1), 1);
		thoth_daemon_Daemon_serve_stats_resp_t resp;
		thoth_arena_t a;
		serve_stats(&ctl, (uint32_t)p, &resp, &a, mem, sizeof mem);
		if (step == LIE_MAGIC) {
			assert_int_equal(resp.services.count, 0);      /* an older library: not listed */
			continue;
		}
		assert_int_equal(resp.services.count, 1);
		const thoth_daemon_ServeCounters_t *s = &resp.services.items[0];
		assert_int_equal(s->pid, (uint32_t)p);
		printf("lie %d: calls %llu clients %u why \"%s\"\n", step, (unsigned long long)s->calls,
		       s->clients, s->why.ptr);
		if (step == LIE_NONE) {
			assert_string_equal(s->why.ptr, "");
			assert_int_equal(s->calls, 7);
			assert_string_equal(s->iface.ptr, "Lies");
		} else if (step == LIE_HUGE) {
			assert_string_equal(s->why.ptr, "");
			assert_int_equal(s->calls, UINT64_MAX);         /* saturated, not wrapped */
			assert_int_equal(s->clients, UINT32_MAX);
		} else {
			if (!strstr(s->why.ptr, expect[(int)step]))
				fail_msg("lie %d: why \"%s\" lacks \"%s\"", step, s->why.ptr, expect[(int)step]);
			assert_int_equal(s->calls, 0);
			assert_int_equal(s->workers, 0);
		}
		thoth_daemon_Daemon_status_resp_t st;
		assert_int_equal(harness_status(&ctl, &st), 0);          /* thothd still answers */
	}
	thoth_control_close(&ctl);
}

/* ---- an older (daemon.tidl 1.3) client ----------------------------------------- */

/* A process that serves nothing and dropped 3 oneway calls (its control
 * page's word), attached to thothd; a byte on IN makes it look like a
 * server of "Lies" with 2 workers, the next back to nothing. */
static void quiet_dropper(int in, int out)
{
	thoth_control_t ctl;
	int fd;
	struct stat st;
	if (thoth_trace_init_process("quiet") || thoth_trace_export_fd(&fd) || fstat(fd, &st))
		_exit(10);
	char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		_exit(11);
	((thoth_trace_control_t *)base)->oneways_dropped = 3;
	if (harness_connect(&h, &ctl))
		_exit(12);
	thoth_trace_serve_t *sv = (thoth_trace_serve_t *)(base + THOTH_TRACE_SERVE_OFFSET);
	const thoth_trace_serve_t none = *sv;
	char step;
	bool serving = false;
	if (write(out, "r", 1) != 1)
		_exit(13);
	while (read(in, &step, 1) == 1) {
		serving = !serving;
		*sv = none;
		if (serving) {
			sv->magic = THOTH_TRACE_SERVE_MAGIC;
			sv->workers = 2;
			sv->stats_size = sizeof(thoth_chan_server_stats_t);
			snprintf(sv->iface, sizeof sv->iface, "Lies");
			snprintf(sv->path, sizeof sv->path, "/nowhere");
		}
		if (write(out, &step, 1) != 1)
			_exit(14);
	}
	_exit(0);
}

/* serve_stats for PID as a client of daemon.tidl 1.MINOR asks it: the
 * request's header carries the schema minor its stub was built from. */
static int serve_stats_as(thoth_control_t *ctl, uint32_t pid, uint8_t minor,
			  thoth_daemon_Daemon_serve_stats_resp_t *resp, thoth_arena_t *a, void *mem,
			  size_t cap)
{
	thoth_arena_init(a, mem, cap);
	thoth_daemon_Daemon_serve_stats_req_t req = { .pid = pid };
	thoth_call_t call;
	int r = thoth_client_begin(&ctl->client, &thoth_daemon_Daemon_serve_stats_info, &req, &call);
	if (r)
		return r;
	assert_true(call.len >= THOTH_WIRE_HEADER_SIZE);
	call.buf[5] = minor;
	return thoth_client_commit(&ctl->client, &call, resp, a);
}

/*
 * A process listed only for its dropped oneway calls (it serves nothing)
 * is shown to a daemon.tidl 1.4 client and left out for a 1.3 one, which
 * would print it as serving an empty interface with 0 workers; a process
 * that serves is shown to both (serve_stats.c's old_client).
 */
static void test_a_process_serving_nothing_is_left_out_for_a_1_3_client_only(void **state)
{
	(void)state;
	int to[2], from[2];
	assert_int_equal(pipe2(to, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from, O_CLOEXEC), 0);
	pid_t p = fork();
	if (p == 0) {
		close(to[1]);
		close(from[0]);
		quiet_dropper(to[0], from[1]);
	}
	track(p);
	close(to[0]);
	close(from[1]);
	char ack;
	assert_int_equal(read(from[0], &ack, 1), 1);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	static uint64_t mem[1 << 14];
	thoth_daemon_Daemon_serve_stats_resp_t resp;
	thoth_arena_t a;
	/* Attached on its control connection: wait until thothd maps it. */
	uint64_t t0 = test_now_ms();
	do {
		assert_int_equal(serve_stats_as(&ctl, (uint32_t)p, 4, &resp, &a, mem, sizeof mem), 0);
		if (resp.services.count)
			break;
		usleep(10000);
	} while (test_now_ms() - t0 < DEADLINE_MS);
	assert_int_equal(resp.services.count, 1);
	assert_int_equal(resp.services.items[0].pid, (uint32_t)p);
	assert_int_equal(resp.services.items[0].oneways_dropped, 3);
	assert_int_equal(resp.services.items[0].workers, 0);
	assert_int_equal(serve_stats_as(&ctl, (uint32_t)p, 3, &resp, &a, mem, sizeof mem), 0);
	assert_int_equal(resp.services.count, 0);
	assert_int_equal(serve_stats_as(&ctl, 0, 3, &resp, &a, mem, sizeof mem), 0);
	for (uint32_t i = 0; i < resp.services.count; i++)
		assert_int_not_equal(resp.services.items[i].pid, (uint32_t)p);
	/* Serving now: a 1.3 client sees it too. */
	assert_int_equal(write(to[1], "s", 1), 1);
	assert_int_equal(read(from[0], &ack, 1), 1);
	for (uint8_t minor = 3; minor <= 4; minor++) {
		assert_int_equal(serve_stats_as(&ctl, (uint32_t)p, minor, &resp, &a, mem, sizeof mem), 0);
		assert_int_equal(resp.services.count, 1);
		assert_int_equal(resp.services.items[0].workers, 2);
		assert_string_equal(resp.services.items[0].iface.ptr, "Lies");
	}
	thoth_control_close(&ctl);
	close(to[1]);
	close(from[0]);
}

/* In a client process: COUNT oneway calls of a method the service lacks
 * (ordinal 99, as a newer schema's), then one echo answered, which the
 * worker reaches after them (one channel, in order). */
static void dropper(int cpu, int count)
{
	thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpu);
	thoth_method_info_t newer = thoth_chantest_Test_note_info;
	newer.ordinal = 99;
	newer.revision = 0;             /* no fast paths: the generic encoder */
	thoth_chantest_Test_note_req_t req = { 7 };
	for (int i = 0; i < count; i++)
		if (thoth_client_call(thoth_chan_client(ch), &newer, &req, NULL, NULL))
			_exit(5);
	if (test_echo_call(ch, 1, NULL) < 0)
		_exit(6);
	thoth_chan_close(ch);
	_exit(0);
}

typedef struct shown { pid_t svc; uint64_t want; } shown_t;

static bool json_shows(void *arg)
{
	shown_t *s = arg;
	static char out[OUT_CAP];
	char pid_s[16];
	snprintf(pid_s, sizeof pid_s, "%d", (int)s->svc);
	thothctl(out, "--json", "serve", "--pid", pid_s);
	uint64_t v = 0;
	return json_u64(out, (uint32_t)s->svc, "oneways_dropped", &v) && v == s->want;
}

/* The service's oneway calls dropped, as thothd shows them: the count
 * stayed in the service (a warning line and thoth_rpc_oneways_dropped)
 * before loose38, and an operator could not see it. */
static void test_a_services_dropped_oneway_calls_are_shown(void **state)
{
	(void)state;
	int cpus[CPU_SETSIZE], ncpu = test_allowed_cpus(cpus, CPU_SETSIZE);
	assert_true(ncpu > 0);
	int to_svc[2], from_svc[2];
	assert_int_equal(pipe2(to_svc, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from_svc, O_CLOEXEC), 0);
	pid_t svc = fork();
	if (svc == 0) {
		ask_t a = { to_svc[0], from_svc[1] };
		service(&a);
	}
	track(svc);
	assert_true(harness_wait_until(serves, NULL, DEADLINE_MS));
	pid_t c = fork();
	if (c == 0)
		dropper(cpus[0], 5);
	int status;
	assert_int_equal(waitpid(c, &status, 0), c);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	shown_t s = { svc, 5 };
	if (!harness_wait_until(json_shows, &s, DEADLINE_MS)) {
		static char out[OUT_CAP];
		thothctl(out, "--json", "serve", NULL, NULL);
		fail_msg("thothctl --json serve does not show 5 oneway calls dropped by pid %d:\n%s", (int)svc, out);
	}
	static char text[OUT_CAP], web[OUT_CAP];
	thothctl(text, "serve", NULL, NULL, NULL);
	if (!strstr(text, "oneway calls dropped 5\n"))
		fail_msg("thothctl serve does not show them:\n%s", text);
	http_get("/serve.json", web);
	uint64_t v = 0;
	if (!json_u64(web, (uint32_t)svc, "oneways_dropped", &v) || v != 5)
		fail_msg("/serve.json does not show them:\n%s", web);
	http_get("/metrics", web);
	char series[96];
	snprintf(series, sizeof series, "thoth_oneways_dropped_total{pid=\"%d\",process=\"percpu-svc\"} 5\n",
		 (int)svc);
	if (!strstr(web, series))
		fail_msg("/metrics has no %s", series);
	close(to_svc[1]);
	close(from_svc[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_thothctl_and_dashboard_show_the_services_own_folded_counters,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_services_dropped_oneway_calls_are_shown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_serve_header_that_lies_is_refused_with_the_reason,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_process_serving_nothing_is_left_out_for_a_1_3_client_only,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
