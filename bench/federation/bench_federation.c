/*
 * bench_federation - many hosts (issue 19, docs/FEDERATION.md).
 *
 *   bench_federation [--calls N] [--skip-etcd] [--window S]
 *
 * 1. Round trip of a 64-byte Echo call, median and p99 of N (default 20000)
 *    per transport, against one server process: a shared-memory channel
 *    (the local baseline; sleeping between calls like the socket
 *    transports, and also with its default spin), the Unix stream transport (stream.c: the same
 *    framing TCP uses, over AF_UNIX), and TCP over loopback (thoth/tcp.h).
 *    Printed with the ratios TCP/channel and TCP/Unix stream.
 * 2. Failover: etcd + two thothd hosts (TTL 2 s); a tcp: instance on A is
 *    seen on B; A's thothd is killed with SIGKILL; time until B no longer
 *    lists it.  Three runs, median.
 * 3. etcd traffic per host per minute, at 1, 100 and 1000 registrations:
 *    an in-process federation (federation.c) mirrors N registrations into
 *    etcd, then its requests and bytes are counted over a window (default
 *    12 s, TTL 6 s: renewals every 2 s), scaled to a minute.  The same run
 *    measures the design the issue rules out, a lease per registration
 *    (thothd_federation_config_t.lease_per_registration), as the baseline.
 * Parts 2 and 3 need etcd (skipped with a message without it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "etcd_proc.h"
#include "federation.h"
#include "harness.h"
#include "registry.h"
#include "thoth/channel.h"
#include "thoth/stream.h"
#include "thoth/tcp.h"

static const char TOKEN[] = "bench-token-0123456789abcdef0123";

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = 0;
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- part 1: round trips ------------------------------------------------------------ */

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

/* Child: a channel server at CHAN_PATH and a TCP server; writes the TCP port to FD. */
static void serve_loop(const char *chan_path, int port_fd)
{
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		_exit(1);
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_chan_server_config_t ccfg = {
		.path = chan_path, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers,
	};
	thoth_tcp_server_config_t tcfg = {
		.addr = "tcp:127.0.0.1:0", .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .token = (const uint8_t *)TOKEN, .token_len = sizeof TOKEN - 1,
	};
	thoth_chan_server_t *cs;
	thoth_tcp_server_t *ts;
	char why[300];
	if (thoth_chan_server_new(loop, &ccfg, &cs, why, sizeof why) ||
	    thoth_tcp_server_new(loop, &tcfg, &ts, why, sizeof why)) {
		fprintf(stderr, "bench server: %s\n", why);
		_exit(1);
	}
	uint16_t port = thoth_tcp_server_port(ts);
	if (write(port_fd, &port, sizeof port) != sizeof port)
		_exit(1);
	close(port_fd);
	thoth_loop_run(loop);
	_exit(0);
}

/* Child: the Unix stream transport's server side, blocking, one client. */
static void serve_stream(int listen_fd)
{
	int fd = accept(listen_fd, NULL, NULL);
	if (fd < 0)
		_exit(1);
	thoth_stream_reader_t r;
	static uint64_t out[1024], arena_buf[4096];
	thoth_stream_reader_init(&r, 1 << 20);
	for (;;) {
		const uint8_t *msg;
		size_t len;
		int n = thoth_stream_next(&r, &msg, &len);
		if (n < 0)
			_exit(1);
		if (n == 0) {
			if (thoth_stream_fill(&r, fd))
				_exit(0);
			continue;
		}
		thoth_arena_t arena;
		thoth_arena_init(&arena, arena_buf, sizeof arena_buf);
		thoth_server_io_t io = { .out = (uint8_t *)out, .cap = sizeof out, .arena = &arena };
		if (thoth_server_dispatch(&thoth_echo_Echo_info, thoth_echo_Echo_invoke, &handlers, NULL, msg, len, &io))
			_exit(1);
		thoth_stream_consume(&r);
		if (io.out_len && thoth_stream_write_all(fd, io.out, io.out_len))
			_exit(0);
	}
}

typedef struct { uint64_t median, p99; } lat_t;

static lat_t measure(thoth_client_t *c, int calls)
{
	uint64_t *t = malloc((size_t)calls * sizeof *t);
	uint8_t data[64] = { 1 };
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = data, .len = sizeof data } };
	thoth_echo_Echo_echo_resp_t resp;
	for (int i = 0; i < calls / 10; i++)            /* warm-up */
		thoth_echo_Echo_echo(c, &req, &resp, NULL);
	for (int i = 0; i < calls; i++) {
		uint64_t t0 = now_ns();
		if (thoth_echo_Echo_echo(c, &req, &resp, NULL)) {
			fprintf(stderr, "call failed\n");
			exit(1);
		}
		t[i] = now_ns() - t0;
	}
	qsort(t, (size_t)calls, sizeof *t, cmp_u64);
	lat_t l = { t[calls / 2], t[(size_t)calls * 99 / 100] };
	free(t);
	return l;
}

static void part_round_trips(int calls)
{
	char dir[] = "/tmp/bench-fed-XXXXXX";
	if (!mkdtemp(dir))
		exit(1);
	char chan_path[64], stream_path[64];
	snprintf(chan_path, sizeof chan_path, "%s/echo.sock", dir);
	snprintf(stream_path, sizeof stream_path, "%s/stream.sock", dir);
	int p[2];
	if (pipe(p))
		exit(1);
	pid_t server = fork();
	if (server == 0) {
		close(p[0]);
		serve_loop(chan_path, p[1]);
	}
	close(p[1]);
	uint16_t port = 0;
	if (read(p[0], &port, sizeof port) != sizeof port) {
		fprintf(stderr, "bench server did not start\n");
		exit(1);
	}
	close(p[0]);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", stream_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1))
		exit(1);
	pid_t streamer = fork();
	if (streamer == 0)
		serve_stream(lfd);
	close(lfd);

	thoth_chan_config_t ccfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(chan_path, &ccfg, &ch, why, sizeof why)) {
		fprintf(stderr, "channel: %s\n", why);
		exit(1);
	}
	thoth_chan_config_t spin_cfg = { .iface = &thoth_echo_Echo_info };     /* the default: spin, then sleep */
	thoth_chan_t *spin;
	if (thoth_chan_connect(chan_path, &spin_cfg, &spin, why, sizeof why)) {
		fprintf(stderr, "channel: %s\n", why);
		exit(1);
	}
	thoth_sock_client_t sc;
	thoth_client_t sclient;
	if (thoth_sock_client_connect(&sc, stream_path, 5000)) {
		fprintf(stderr, "stream: cannot connect\n");
		exit(1);
	}
	thoth_client_init(&sclient, &thoth_sock_transport, &sc, 0);
	char addr[64];
	snprintf(addr, sizeof addr, "tcp:127.0.0.1:%u", port);
	thoth_tcp_config_t tcfg = { .iface = &thoth_echo_Echo_info, .token = (const uint8_t *)TOKEN,
				    .token_len = sizeof TOKEN - 1 };
	thoth_tcp_conn_t *tc;
	if (thoth_tcp_connect_with(addr, &tcfg, 2000, &tc, why, sizeof why)) {
		fprintf(stderr, "tcp: %s\n", why);
		exit(1);
	}
	lat_t ls = measure(thoth_chan_client(spin), calls);
	lat_t lc = measure(thoth_chan_client(ch), calls);
	lat_t lu = measure(&sclient, calls);
	lat_t lt = measure(thoth_tcp_client(tc), calls);
	/* The channel sleeps on a futex between calls here (THOTH_CHAN_SLEEP): the
	 * same wake-up per call the two socket transports pay. */
	printf("round trip, 64-byte Echo.echo, %d calls each (median / p99):\n", calls);
	printf("  channel (shared memory, sleeping)  %8.1f us / %8.1f us   (baseline)\n", lc.median / 1e3, lc.p99 / 1e3);
	printf("  channel (default: spin, then sleep) %7.1f us / %8.1f us   (%.2fx; TCP is %.1fx this)\n",
	       ls.median / 1e3, ls.p99 / 1e3, (double)ls.median / (double)lc.median,
	       (double)lt.median / (double)ls.median);
	printf("  Unix stream (same framing)         %8.1f us / %8.1f us   %.2fx channel\n", lu.median / 1e3,
	       lu.p99 / 1e3, (double)lu.median / (double)lc.median);
	printf("  TCP loopback (thoth/tcp.h)         %8.1f us / %8.1f us   %.2fx channel, %.2fx Unix stream\n",
	       lt.median / 1e3, lt.p99 / 1e3, (double)lt.median / (double)lc.median,
	       (double)lt.median / (double)lu.median);
	thoth_tcp_close(tc);
	thoth_sock_client_close(&sc);
	thoth_chan_close(ch);
	thoth_chan_close(spin);
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	kill(streamer, SIGTERM);
	waitpid(streamer, NULL, 0);
	unlink(chan_path);
	unlink(stream_path);
	rmdir(dir);
}

/* ---- etcd for parts 2 and 3 ---------------------------------------------------------- */

typedef struct {
	harness_t h;
	pid_t pid;
	uint16_t port;
	char url[64];
} etcd_t;

static bool etcd_start(etcd_t *e)
{
	if (access(ETCD_PATH, X_OK) || harness_setup(&e->h))
		return false;
	e->port = etcd_free_port();
	uint16_t peer = etcd_free_port();
	snprintf(e->url, sizeof e->url, "http://127.0.0.1:%u", e->port);
	e->pid = etcd_spawn(&e->h, ETCD_PATH, e->port, peer);
	return e->pid > 0 && harness_wait_until(etcd_answers, &e->port, 20000);
}

/* ---- part 2: failover ------------------------------------------------------------------ */

typedef struct { harness_t *host; bool want_empty; } remote_arg_t;

static bool remote_state(void *p)
{
	remote_arg_t *a = p;
	thoth_control_t ctl;
	if (harness_connect(a->host, &ctl))
		return false;
	thoth_registry_Registry_list_req_t req = { .prefix = thoth_str(""), .locality = THOTH_COMMON_LOCALITY_REMOTE };
	thoth_registry_Registry_list_resp_t resp;
	static uint64_t scratch[4096];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_registry_Registry_list(&ctl.client, &req, &resp, &arena);
	thoth_control_close(&ctl);
	return !r && (a->want_empty ? resp.instances.count == 0 : resp.instances.count > 0);
}

static void part_failover(etcd_t *e)
{
	uint64_t t[3];
	for (int run = 0; run < 3; run++) {
		harness_t a, b;
		harness_setup(&a);
		harness_setup(&b);
		const char *xa[] = { "--http-port", "off", "--etcd", e->url, "--host-id", "a", "--etcd-ttl", "2", NULL };
		const char *xb[] = { "--http-port", "off", "--etcd", e->url, "--host-id", "b", "--etcd-ttl", "2", NULL };
		harness_start_thothd(&a, xa);
		harness_start_thothd(&b, xb);
		thoth_control_t ctl;
		harness_connect(&a, &ctl);
		thoth_registry_Registry_register_req_t req = {
			.reg = { .name = thoth_str("echo"), .version = thoth_str("1.0.0"),
				 .endpoint = { .addr = thoth_str("tcp:127.0.0.1:7001"), .locality = THOTH_COMMON_LOCALITY_HOST } },
		};
		thoth_registry_Registry_register_resp_t resp;
		thoth_registry_Registry_register(&ctl.client, &req, &resp, NULL);
		remote_arg_t seen = { &b, false }, gone = { &b, true };
		harness_wait_until(remote_state, &seen, 10000);
		thoth_control_close(&ctl);
		uint64_t t0 = harness_now_ms();
		harness_kill(&a, a.thothd, SIGKILL);
		a.thothd = 0;
		harness_wait_until(remote_state, &gone, 15000);
		t[run] = harness_now_ms() - t0;
		harness_teardown(&a);
		harness_teardown(&b);
	}
	qsort(t, 3, sizeof *t, cmp_u64);
	printf("failover, host lease TTL 2 s: a kill -9'd host's instance left the other host after "
	       "%" PRIu64 " ms (median of 3: %" PRIu64 ", %" PRIu64 ", %" PRIu64 " ms; bound TTL + 1 s = 3000 ms)\n",
	       t[1], t[0], t[1], t[2]);
}

/* ---- part 3: etcd traffic ------------------------------------------------------------- */

typedef struct { thothd_federation_t *f; uint32_t want; } synced_arg_t;

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_timer_rearm(loop, timer, thoth_clock_now() + 50000000ull, 0);
}

/* Run LOOP until DONE(ARG) or DEADLINE_MS (a 50 ms tick re-checks). */
static void run_until(thoth_loop_t *loop, uint64_t deadline_ms, bool (*done)(void *), void *arg)
{
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, 50000000ull, 0, tick, NULL, &t);
	while (harness_now_ms() < deadline_ms && !(done && done(arg)))
		thoth_loop_run_once(loop, true);
	thoth_timer_cancel(loop, t);
}

static thothd_federation_t *bench_fed;

/* The registry's on_change, as thothd wires it (server.c). */
static void bench_on_change(void *arg, int kind, const thoth_registry_Instance_t *inst)
{
	thothd_federation_on_change(bench_fed, kind, inst);
}

static bool synced(void *p)
{
	synced_arg_t *a = p;
	thothd_federation_stats_t s;
	thothd_federation_stats(a->f, &s);
	return s.lease_alive && s.local == a->want && s.pending == 0;
}

typedef struct { uint64_t req, bytes, init_req, init_bytes; } traffic_t;

static traffic_t traffic(etcd_t *e, uint32_t n, bool per_registration, int window_s, int ttl_s, int tag)
{
	thoth_loop_t *loop;
	thoth_registry_t *reg;
	thoth_registry_config_t rc = { .max_per_owner = 100000, .on_change = bench_on_change };
	thoth_loop_new(&loop);
	thoth_registry_new(&rc, &reg);
	char host[32], prefix[64];
	snprintf(host, sizeof host, "bench%d", tag);
	snprintf(prefix, sizeof prefix, "/bench/%d/", tag);   /* its own keys: no other writer sees them */
	thothd_federation_config_t fc = {
		.etcd_url = e->url, .host_id = host, .ttl_s = (uint32_t)ttl_s, .prefix = prefix,
		.lease_per_registration = per_registration,
	};
	thothd_federation_t *f;
	char why[300];
	if (thothd_federation_new(loop, reg, &fc, &f, why, sizeof why)) {
		fprintf(stderr, "federation: %s\n", why);
		exit(1);
	}
	bench_fed = f;
	thoth_registry_owner_t *owner;
	thoth_registry_owner_new(reg, 0, 0, NULL, &owner);
	for (uint32_t i = 0; i < n; i++) {
		char addr[64];
		snprintf(addr, sizeof addr, "tcp:127.0.0.1:%u", 10000 + i);
		thoth_registry_Registration_t r = {
			.name = thoth_str("svc"), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(addr), .locality = THOTH_COMMON_LOCALITY_HOST },
		};
		uint64_t lease;
		thoth_registry_register(reg, owner, &r, thoth_clock_now(), &lease);
	}
	synced_arg_t sa = { f, n };
	run_until(loop, harness_now_ms() + 60000, synced, &sa);
	thothd_federation_stats_t s0, s1;
	thothd_federation_stats(f, &s0);
	run_until(loop, harness_now_ms() + (uint64_t)window_s * 1000, NULL, NULL);
	thothd_federation_stats(f, &s1);
	traffic_t t = {
		.req = (s1.requests - s0.requests) * 60 / (uint64_t)window_s,
		.bytes = (s1.bytes_sent - s0.bytes_sent) * 60 / (uint64_t)window_s,
		.init_req = s0.requests, .init_bytes = s0.bytes_sent,
	};
	bench_fed = NULL;
	thoth_registry_owner_drop(reg, owner);
	thothd_federation_free(f);
	thoth_registry_free(reg);
	thoth_loop_free(loop);
	return t;
}

static void part_traffic(etcd_t *e, int window_s)
{
	const int ttl = 6;
	printf("etcd traffic per host per minute (lease TTL %d s, renewals every %d s; window %d s scaled to 60 s;\n"
	       "bytes = HTTP request lines, headers and bodies our client sent):\n", ttl, ttl / 3, window_s);
	printf("  %-13s %-28s %-28s %s\n", "registrations", "one lease per host", "a lease per registration",
	       "ratio (requests)");
	static const uint32_t sizes[] = { 1, 100, 1000 };
	int tag = (int)getpid() % 100000;
	for (size_t i = 0; i < 3; i++) {
		traffic_t one = traffic(e, sizes[i], false, window_s, ttl, tag * 10 + (int)i * 2);
		traffic_t per = traffic(e, sizes[i], true, window_s, ttl, tag * 10 + (int)i * 2 + 1);
		printf("  %-13u %6" PRIu64 " req %9" PRIu64 " B    %6" PRIu64 " req %9" PRIu64 " B    %.0fx\n", sizes[i],
		       one.req, one.bytes, per.req, per.bytes, one.req ? (double)per.req / (double)one.req : 0.0);
		printf("  %-13s (start-up: %" PRIu64 " req / %" PRIu64 " B)      (start-up: %" PRIu64 " req / %" PRIu64 " B)\n",
		       "", one.init_req, one.init_bytes, per.init_req, per.init_bytes);
	}
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "calls", required_argument, NULL, 'c' },
		{ "skip-etcd", no_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	int calls = 20000, window = 12, opt;
	bool skip = false;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'c': calls = atoi(optarg); break;
		case 's': skip = true; break;
		case 'w': window = atoi(optarg); break;
		default: return 2;
		}
	}
	if (calls < 100 || window < 2) {
		fprintf(stderr, "bench_federation: --calls >= 100, --window >= 2\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	part_round_trips(calls);
	if (skip)
		return 0;
	etcd_t e;
	if (!etcd_start(&e)) {
		printf("etcd not available (%s): failover and traffic skipped\n", ETCD_PATH);
		return 0;
	}
	part_failover(&e);
	part_traffic(&e, window);
	harness_teardown(&e.h);
	return 0;
}
