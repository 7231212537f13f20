/*
 * lying_thothd.c - a fake thothd that lies to thothctl (cli47).
 *
 *   lying_thothd RUNTIME_DIR SCENARIO
 *
 * Listens at RUNTIME_DIR/thothd.sock (RUNTIME_DIR: ours, 0700, as
 * thothctl's connection checks want), takes one connection, answers
 * Daemon.timer_page without a page (thothctl keeps the per-boot grid, as
 * with an older thothd) and then Daemon.status as SCENARIO says:
 *
 *   strings      counts that agree; every string a peer could choose
 *                (version, runtime dir, host ids, the etcd URL, an event's
 *                service) holds ESC, a newline, CR, DEL, C1 and bidi controls
 *   hosts-total  hosts_total 1, three hosts listed
 *   many-hosts   1000 hosts listed (thothd lists at most 256)
 *   sum          remote 3, two hosts listed of 5 instances each
 *   ages         uptime 1 s, a host last seen UINT64_MAX ns ago (a negative
 *                age as a u64), etcd down for 2^63 ns
 *   events       65 events, capacity 64
 *   huge-list    100,000 hosts: more than thothctl decodes a status into
 *   wrong-id     a good answer to another request id
 *   wrong-method an answer to this request id from another method (timer_page's)
 *   truncated    the first 64 bytes of a good answer, then the connection closed
 *   stall        the first 64 bytes of a good answer, then nothing (open)
 *   huge-frame   a header announcing a 4 GiB body, then the connection closed
 *   garbage      64 bytes that are no thoth message, then the connection closed
 *   bad-utf8     a host id with bytes that are not UTF-8 (the wire forbids it)
 *   list-loop    (Registry.list_page, thothctl services) the same page of two
 *                instances and "more" every time
 *
 * Exits when thothctl hangs up (or after 60 s: a hang guard of its own).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.thoth.h"
#include "registry.thoth.h"
#include "thoth/rpc.h"
#include "thoth/wire.h"

static int sock = -1;
/* Held to the end, from globals: a LeakSanitizer build does not count them
 * as leaks at whichever exit a scenario takes. */
static uint8_t *in, *out;
static thoth_daemon_FederationHost_t *hosts;
static thoth_daemon_LifecycleEvent_t *events;
static char (*ids)[16];

static void die(const char *what)
{
	fprintf(stderr, "lying_thothd: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* One whole message into BUF (CAP bytes); its length, 0 at EOF. */
static size_t read_msg(uint8_t *buf, size_t cap)
{
	size_t have = 0, want = THOTH_WIRE_HEADER_SIZE;
	while (have < want) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		if (poll(&p, 1, 60000) <= 0)
			exit(3);
		ssize_t n = read(sock, buf + have, want - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		have += (size_t)n;
		if (have == THOTH_WIRE_HEADER_SIZE) {
			want += thoth_le32(buf + 36);
			if (want > cap)
				exit(4);
		}
	}
	return have;
}

static void send_all(const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		ssize_t n = send(sock, b, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0);        /* thothctl gone: what it did with it is the test's */
		b += n;
		len -= (size_t)n;
	}
}

static bool is(const uint8_t *msg, const thoth_method_info_t *m)
{
	return thoth_le32(msg + 8) == m->interface_id && thoth_le32(msg + 12) == m->ordinal;
}

static thoth_str_t s(const char *t)
{
	return (thoth_str_t){ .ptr = t, .len = (uint32_t)strlen(t) };
}

/* The ugly bytes every string of "strings" holds: ESC (a colour), a
 * newline and CR (a forged line), DEL, a C1 CSI (U+009B), bidi overrides
 * (U+202E, U+2066) and a zero-width space. */
#define UGLY "\x1b[31mred\nforged line\rback\x7f\xc2\x9b" "2J\xe2\x80\xae" "desrever\xe2\x81\xa6\xe2\x80\x8b"

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: lying_thothd RUNTIME_DIR SCENARIO\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	const char *sc = argv[2];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/thothd.sock", argv[1]) >= sizeof sa.sun_path) {
		fprintf(stderr, "lying_thothd: runtime dir too long\n");
		return 2;
	}
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0)
		die("listen");
	printf("ready\n");
	fflush(stdout);
	struct pollfd lp = { .fd = lfd, .events = POLLIN };
	if (poll(&lp, 1, 60000) <= 0)
		return 3;
	sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		die("accept");

	size_t cap = 64u << 20;
	in = malloc(1u << 20);
	out = malloc(cap);
	if (!in || !out)
		return 2;
	/* The hosts and events the scenarios list. */
	enum { HUGE_HOSTS = 100000 };
	hosts = calloc(HUGE_HOSTS, sizeof *hosts);
	events = calloc(65, sizeof *events);
	ids = calloc(HUGE_HOSTS, sizeof *ids);
	if (!hosts || !events || !ids)
		return 2;
	for (size_t i = 0; i < HUGE_HOSTS; i++) {
		snprintf(ids[i], sizeof ids[i], "host-%06zu", i);
		hosts[i] = (thoth_daemon_FederationHost_t){ .id = s(ids[i]), .instances = 1,
							    .last_seen_ago_ns = 1000000 };
	}
	for (size_t i = 0; i < 65; i++)
		events[i] = (thoth_daemon_LifecycleEvent_t){ .kind = s("registered"), .service = s("echo"),
							     .version = s("1.0.0"), .pid = 4242, .at_ns = 1,
							     .at_unix_ns = 1 };

	for (;;) {
		size_t len = read_msg(in, 1u << 20);
		if (!len)
			return 0;
		uint16_t flags = thoth_le16(in + 6);
		if (!(flags & THOTH_MSG_REQUEST) || (flags & THOTH_MSG_ONEWAY))
			continue;       /* a trace buffer's attach: nothing to answer */
		thoth_msg_header_t meta = { .request_id = thoth_le32(in + 32) };
		size_t n;
		if (is(in, &thoth_daemon_Daemon_timer_page_info)) {
			/* no page (size 0): refused, the grid kept */
			thoth_daemon_Daemon_timer_page_resp_t tp = { 0 };
			if (thoth_method_encode(&thoth_daemon_Daemon_timer_page_info, true, &tp, &meta, out, cap, &n))
				return 5;
			send_all(out, n);
			continue;
		}
		if (is(in, &thoth_registry_Registry_list_page_info) && !strcmp(sc, "list-loop")) {
			thoth_registry_Instance_t inst[2] = {
				{ .registration = { .name = s("alpha"), .version = s("1.0.0") }, .lease = 1,
				  .registered_at_ns = 5 },
				{ .registration = { .name = s("beta"), .version = s("1.0.0") }, .lease = 2,
				  .registered_at_ns = 5 },
			};
			thoth_registry_Registry_list_page_resp_t page = { .instances = { .items = inst, .count = 2 },
									 .more = true };
			if (thoth_method_encode(&thoth_registry_Registry_list_page_info, true, &page, &meta, out, cap, &n))
				return 5;
			send_all(out, n);
			continue;
		}
		if (!is(in, &thoth_daemon_Daemon_status_info)) {
			fprintf(stderr, "lying_thothd: a request it does not answer (interface %08x method %u)\n",
				thoth_le32(in + 8), thoth_le32(in + 12));
			return 6;
		}
		/* A sane answer first: 3 hosts of 2 instances each. */
		thoth_daemon_Daemon_status_resp_t st = {
			.pid = (uint32_t)getpid(), .uptime_ns = 60000000000ull, .clients = 1,
			.runtime_dir = s(argv[1]), .version = s("0.47.0"), .events_capacity = 64,
			.events = { .items = events, .count = 2 },
			.federation = {
				.state = s("on"), .etcd = s("http://127.0.0.1:2379"), .etcd_up = true,
				.host_id = s("here"), .lease_ttl_s = 10, .lease_alive = true, .watching = true,
				.local = 1, .remote = 6, .hosts_total = 3, .hosts = { .items = hosts, .count = 3 },
			},
		};
		for (int i = 0; i < 3; i++)
			hosts[i].instances = 2;
		thoth_daemon_Federation_t *fe = &st.federation;
		static const char bad_utf8[] = "host-\xff\xfe\xc0\xaf";
		if (!strcmp(sc, "strings")) {
			st.version = s("0.47" UGLY);
			st.runtime_dir = s("/run/" UGLY);
			st.dashboard_url = s("http://x/" UGLY);
			fe->etcd = s("http://etcd" UGLY ":2379");
			fe->host_id = s("me" UGLY);
			hosts[0].id = s("a" UGLY);
			hosts[1].id = s("\xe2\x80\xae" "b-reversed");
			events[0].service = s("svc" UGLY);
			events[0].version = s("1.0" UGLY);
		} else if (!strcmp(sc, "hosts-total")) {
			fe->hosts_total = 1;
		} else if (!strcmp(sc, "many-hosts")) {
			for (int i = 0; i < 1000; i++)
				hosts[i].instances = 1;
			fe->hosts_total = 1000;
			fe->hosts.count = 1000;
			fe->remote = 1000;
		} else if (!strcmp(sc, "sum")) {
			fe->remote = 3;
			fe->hosts_total = 2;
			fe->hosts.count = 2;
			hosts[0].instances = hosts[1].instances = 5;
		} else if (!strcmp(sc, "ages")) {
			st.uptime_ns = 1000000000ull;
			hosts[1].last_seen_ago_ns = UINT64_MAX;
			fe->etcd_up = false;
			fe->etcd_down_for_ns = 1ull << 63;
		} else if (!strcmp(sc, "events")) {
			st.events.count = 65;
		} else if (!strcmp(sc, "huge-list")) {
			fe->hosts_total = HUGE_HOSTS;
			fe->hosts.count = HUGE_HOSTS;
			fe->remote = HUGE_HOSTS;
			for (size_t i = 0; i < HUGE_HOSTS; i++)
				hosts[i].instances = 1;
		} else if (!strcmp(sc, "wrong-id")) {
			meta.request_id += 7;
		} else if (!strcmp(sc, "bad-utf8")) {
			hosts[0].id = s(bad_utf8);
		}
		if (!strcmp(sc, "wrong-method")) {
			thoth_daemon_Daemon_timer_page_resp_t tp = { 0 };
			if (thoth_method_encode(&thoth_daemon_Daemon_timer_page_info, true, &tp, &meta, out, cap, &n))
				return 5;
			send_all(out, n);
			continue;
		}
		uint64_t hdr[5];
		if (!strcmp(sc, "huge-frame") || !strcmp(sc, "garbage")) {
			/* a header of a status answer announcing 4 GiB - 8; or no thoth message at all */
			thoth_msg_header_t h = { .magic = THOTH_WIRE_MAGIC, .schema_major = 1, .schema_minor = 6,
						 .flags = THOTH_MSG_RESPONSE,
						 .interface_id = thoth_daemon_Daemon_status_info.interface_id,
						 .method = thoth_daemon_Daemon_status_info.ordinal,
						 .request_id = meta.request_id, .body_len = 0xfffffff8u };
			thoth_wire_header_encode((uint8_t *)hdr, &h);
			if (!strcmp(sc, "garbage"))
				memset(hdr, 'G', sizeof hdr);
			send_all(hdr, sizeof hdr);
			send_all(hdr, sizeof hdr);
			return 0;
		}
		int r = thoth_method_encode(&thoth_daemon_Daemon_status_info, true, &st, &meta, out, cap, &n);
		if (r == THOTH_E_BAD_UTF8 && !strcmp(sc, "bad-utf8")) {
			/* the encoder checks too: the bytes put in after it */
			hosts[0].id = s("host-abcd");
			r = thoth_method_encode(&thoth_daemon_Daemon_status_info, true, &st, &meta, out, cap, &n);
			uint8_t *at = memmem(out, n, "host-abcd", 9);
			if (!r && at)
				memcpy(at + 5, "\xff\xfe\xc0\xaf", 4);
		}
		if (r) {
			fprintf(stderr, "lying_thothd: encode: %s\n", thoth_strerror(r));
			return 5;
		}
		if (!strcmp(sc, "truncated") || !strcmp(sc, "stall")) {
			send_all(out, 64);
			if (!strcmp(sc, "truncated"))
				return 0;
			/* thothctl's own timeout ends it: we wait for its hang-up */
			while (read(sock, in, 1 << 20) > 0)
				;
			return 0;
		}
		send_all(out, n);
	}
}
