/*
 * test_chan_limits.c - connections that never complete a handshake, and a
 * service at its descriptor limit (issue 11, channel half of items 7 and 9).
 *
 * A handshake has a deadline (the service's timer is armed only while one
 * is pending: an idle service with established channels sleeps with no
 * wake-ups at all); at most max_pending handshakes are in progress (the
 * oldest is dropped for a new one); at the fd limit the service accepts
 * and closes with a reserve descriptor and stops listening for 100 ms, with
 * a rate-limited log, instead of spinning on accept.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"

static chan_proc_env_t env;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	return chan_env_init(&env);
}

static int teardown(void **state)
{
	chan_env_fini(&env);
	return 0;
}

static int try_open(thoth_chan_t **ch, char *why, size_t why_len)
{
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .timeout_ms = 2000,
				    .handshake_timeout_ms = 2000 };
	return thoth_chan_connect(env.sock, &cfg, ch, why, why_len);
}

static thoth_chan_t *open_chan(void)
{
	thoth_chan_t *ch = NULL;
	char why[300];
	int r = try_open(&ch, why, sizeof why);
	if (r)
		fail_msg("connect: %s: %s", thoth_strerror(r), why);
	return ch;
}

static void health(thoth_chan_t *ch, thoth_chantest_Test_health_resp_t *h)
{
	thoth_chantest_Test_health_req_t rq = { 0 };
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	assert_int_equal(thoth_chantest_Test_health(thoth_chan_client(ch), &rq, h, &a), 0);
}

/* Has the service closed FD (EOF) by DEADLINE? */
static bool closed_by(int fd, uint64_t deadline)
{
	for (;;) {
		uint64_t now = chan_now_ns();
		int ms = now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) > 0) {
			char b;
			return recv(fd, &b, 1, MSG_DONTWAIT) == 0;
		}
		if (now >= deadline)
			return false;
	}
}

/* The service's descriptors as /proc names them ("3=socket:[123] ..."),
 * for a failure message. */
static void fd_names(pid_t pid, char *out, size_t cap)
{
	char dir[64], path[340], target[256];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	size_t n = 0;
	out[0] = 0;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) && n + 1 < cap) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		ssize_t len = readlink(path, target, sizeof target - 1);
		target[len < 0 ? 0 : len] = 0;
		int w = snprintf(out + n, cap - n, " %s=%s", e->d_name, target);
		n = w < 0 || (size_t)w >= cap - n ? cap - 1 : n + (size_t)w;
	}
	closedir(d);
}

/* Wait until the service holds WANT descriptors again, as it counts them
 * itself in the health handler (h.fds): inside a dispatch on its one
 * thread, where nothing the loop opens for a moment can be open.  A count
 * from outside could meet such a moment -- placement reads /proc files
 * right after an answer goes (chan_server.c, place_call: the first answer
 * starts a window) -- and a baseline taken so was one too high for good
 * (seen beside two busy loops).  Bounded at 10 s, 33 times the 300 ms
 * handshake deadline: what is still open then is held, and named. */
static void fds_settle(thoth_chan_t *ch, uint32_t want)
{
	thoth_chantest_Test_health_resp_t h;
	for (uint64_t end = chan_now_ns() + 10000000000ull;; chan_nap_ms(10)) {
		health(ch, &h);
		if (h.fds == want)
			return;
		if (chan_now_ns() >= end)
			break;
	}
	char names[4096];
	fd_names(env.service, names, sizeof names);
	fail_msg("the service holds %u descriptors 10 s on, not the %u it started with:%s", h.fds, want, names);
}

/* 200 connections that send nothing: the service drops the oldest beyond
 * 64 at once and the rest at the 300 ms deadline, serves a new client
 * meanwhile, and ends with the descriptors it started with. */
static void test_silent_connections_are_closed_at_the_handshake_deadline(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--handshake-ms", "300", NULL), 0);
	thoth_chan_t *a = open_chan();
	thoth_chantest_Test_health_resp_t h;
	health(a, &h);
	uint32_t fds0 = h.fds;
	enum { SILENT = 200 };
	int silent[SILENT];
	uint64_t t0 = chan_now_ns();
	for (int i = 0; i < SILENT; i++) {
		silent[i] = chan_raw_connect(env.sock);
		assert_true(silent[i] >= 0);
	}
	/* A client arriving after them is served at once. */
	thoth_chan_t *b = open_chan();
	health(b, &h);
	thoth_chan_close(b);
	/* Every silent one is closed by the service, within the deadline plus
	 * generous slack for a loaded machine. */
	for (int i = 0; i < SILENT; i++) {
		if (!closed_by(silent[i], t0 + 5000000000ull))
			fail_msg("silent connection %d still open after 5 s", i);
		close(silent[i]);
	}
	health(a, &h);
	assert_true(h.handshake_dropped >= SILENT);
	fds_settle(a, fds0);
	thoth_chan_close(a);
	assert_true(chan_service_stop(&env) >= 0);
}

/* The handshake timer exists only while a handshake is pending: with open
 * channels and nothing happening, the service's thread does not wake. */
static void test_idle_service_with_channels_does_not_wake(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--handshake-ms", "200", "--sleep", NULL), 0);
	thoth_chan_t *ch[3];
	thoth_chantest_Test_health_resp_t h;
	for (int i = 0; i < 3; i++) {
		ch[i] = open_chan();
		health(ch[i], &h);
	}
	int silent = chan_raw_connect(env.sock);   /* arms the handshake timer ... */
	assert_true(closed_by(silent, chan_now_ns() + 5000000000ull));   /* ... which closes it */
	close(silent);
	chan_nap_ms(100);                           /* let the service finish that wake-up */
	long w0 = chan_wakeups(env.service);
	chan_nap_ms(1000);
	long w1 = chan_wakeups(env.service);
	assert_true(w0 >= 0);
	if (w1 != w0)
		fail_msg("an idle service with 3 channels woke %ld times in 1 s", w1 - w0);
	for (int i = 0; i < 3; i++) {
		health(ch[i], &h);
		thoth_chan_close(ch[i]);
	}
	assert_true(chan_service_stop(&env) >= 0);
}

/* RLIMIT_NOFILE 24 and a connection flood for 1.5 s: the service sheds
 * connections and pauses instead of spinning on accept (few loop wake-ups,
 * a bounded log), its open channel keeps working, and once the flood ends
 * new clients are served again. */
static void test_fd_limit_sheds_connections_without_spinning(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--nofile", "24", "--handshake-ms", "5000", NULL), 0);
	thoth_chan_t *a = open_chan();
	thoth_chantest_Test_health_resp_t h0, h1;
	health(a, &h0);
	int lines0 = chan_count_lines(env.log);
	enum { HELD = 400 };
	int held[HELD];
	int n = 0;
	uint64_t t0 = chan_now_ns(), end = t0 + 1500000000ull;
	uint64_t attempts = 0;
	while (chan_now_ns() < end) {
		/* Keep HELD connections, replacing the oldest: a steady flood. */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		memcpy(sa.sun_path, env.sock, strlen(env.sock) + 1);
		attempts++;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
			close(fd);              /* backlog full: the service is not accepting */
			chan_nap_ms(1);
			continue;
		}
		if (n == HELD) {
			close(held[0]);
			memmove(held, held + 1, (HELD - 1) * sizeof held[0]);
			n--;
		}
		held[n++] = fd;
	}
	double secs = (double)(chan_now_ns() - t0) / 1e9;
	health(a, &h1);                           /* the established channel still works */
	uint64_t wakeups = h1.loop_wakeups - h0.loop_wakeups;
	int lines = chan_count_lines(env.log) - lines0;
	print_message("%.1f s of flood (%llu connects): %llu loop wake-ups, %llu connections shed, %d log lines\n",
		      secs, (unsigned long long)attempts, (unsigned long long)wakeups,
		      (unsigned long long)(h1.shed - h0.shed), lines);
	assert_true(h1.shed > h0.shed);           /* it really was at its limit */
	/* Spinning on accept is millions of wake-ups; pausing is tens a second
	 * (plus one per accepted batch). */
	if ((double)wakeups > 2000 * secs)
		fail_msg("%llu loop wake-ups in %.1f s at the fd limit", (unsigned long long)wakeups, secs);
	/* At most 10 lines a second and one summary per second. */
	if (lines > (int)(11 * (secs + 1)) + 2)
		fail_msg("%d log lines in %.1f s", lines, secs);
	for (int i = 0; i < n; i++)
		close(held[i]);
	/* Served again once the flood is gone (after the pause, and after the
	 * service closed what it had accepted). */
	thoth_chan_t *b = NULL;
	char why[300];
	int r = -1;
	for (uint64_t until = chan_now_ns() + 10000000000ull; r && chan_now_ns() < until;) {
		r = try_open(&b, why, sizeof why);
		if (r)
			chan_nap_ms(20);
	}
	if (r)
		fail_msg("no channel after the flood: %s", why);
	thoth_chan_close(b);
	thoth_chan_close(a);
	assert_true(chan_service_stop(&env) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_silent_connections_are_closed_at_the_handshake_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_service_with_channels_does_not_wake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_limit_sheds_connections_without_spinning, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
