/*
 * test_chan_bells.c - edge-triggered doorbells (docs/IPC.md, "Edge-triggered
 * doorbells").
 *
 * A client that promises one doorbell per sleep of its service
 * (CHAN_BELL_ONCE) has its bells left unread: the service watches the
 * channel's socket edge-triggered and reads them back only every
 * CHAN_BELL_DRAIN_EVERY sleeps.  Against a real chan_service process:
 *  - many more sleeps than the client's socket holds bells (278 one-byte
 *    sends at the default buffer here) lose no wake-up, and no more than
 *    CHAN_BELL_DRAIN_EVERY + CHAN_BELL_SLACK bells ever wait unread (a
 *    build that never reads them back hangs here after ~278 calls);
 *  - a client that floods its socket is read back and watched
 *    level-triggered again; it is still served, so is an innocent client
 *    beside it, and the service does not spin;
 *  - a client that dies with bells unread is seen gone (edge-triggered,
 *    the end is one more event, not a readable socket);
 *  - the io_uring loop has no edge mode: the same calls there, level.
 * Which way a socket is watched is read from the service's epoll fdinfo
 * (EPOLLET is bit 31 of a "tfd:" line's events).
 */
#define _GNU_SOURCE
#include <linux/sockios.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "chan_shm.h"
#include "testutil.h"
#include "../common/chan_pair.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"
#include "chan_call.h"
#include "../common/skip.h"

static chan_proc_env_t env;

/* PID's open descriptors (/proc/PID/fd), through testutil.h's counter. */
static int service_fds(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/fd", (int)pid);
	return test_count_dir(p);
}

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	unsetenv("THOTH_LOOP_BACKEND");
	return chan_env_init(&env);
}

static int teardown(void **state)
{
	chan_env_fini(&env);
	unsetenv("THOTH_LOOP_BACKEND");
	return 0;
}

static thoth_chan_t *open_chan(void)
{
	/* Always-sleep: every call of ours waits on the futex, and every
	 * request finds the service asleep in its loop (it is --sleep). */
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .wait = THOTH_CHAN_SLEEP,
				    .timeout_ms = 3000 };
	return chan_open(&env, &cfg);
}

/* A call a ms after the last: the service is asleep in its loop when it
 * comes, and its doorbell is a wake-up of its own. */
static int echo_apart(thoth_chan_t *ch)
{
	chan_nap_ms(1);
	return chan_echo64(ch);
}

/* Sockets the process PID's epolls watch: edge-triggered ones in *ET, all
 * in the return value (-1: /proc unreadable). */
static int epoll_watched(pid_t pid, int *et)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fdinfo", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	int all = 0;
	*et = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[400], line[256];
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof line, f)) {
			int tfd;
			unsigned ev;
			if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2) {
				all++;
				*et += (ev & (1u << 31)) != 0;
			}
		}
		fclose(f);
	}
	closedir(d);
	return all;
}

/* Does PID hold an io_uring instance? */
static bool has_uring(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char p[400], link[64];
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		ssize_t n = readlink(p, link, sizeof link - 1);
		if (n > 0) {
			link[n] = 0;
			found = strstr(link, "io_uring") != NULL;
		}
	}
	closedir(d);
	return found;
}

static int et_sockets(void)
{
	int et = 0;
	assert_true(epoll_watched(env.service, &et) >= 0);
	return et;
}

/* The truesize one unread one-byte send costs a Unix stream socket here
 * (what SIOCOUTQ counts per doorbell). */
static int bell_cost(void)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(send(sv[0], "", 1, MSG_DONTWAIT), 1);
	int out = 0;
	assert_int_equal(ioctl(sv[0], SIOCOUTQ, &out), 0);
	close(sv[0]);
	close(sv[1]);
	assert_true(out > 0);
	return out;
}

/* Doorbells of ours the service has not read yet. */
static int unread_bells(thoth_chan_t *ch, int cost)
{
	int out = 0;
	assert_int_equal(ioctl(thoth_chan__end(ch)->sock, SIOCOUTQ, &out), 0);
	return (out + cost - 1) / cost;
}

/* How many one-byte sends our socket takes before EAGAIN: the capacity a
 * build that never reads back would overflow. */
static int socket_room(void)
{
	int sv[2], n = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	while (send(sv[0], "", 1, MSG_DONTWAIT) == 1)
		n++;
	close(sv[0]);
	close(sv[1]);
	return n;
}

/*
 * 2,000 calls, each a sleep of the service in its loop and one doorbell:
 * several times what the socket holds.  Each call is bounded by 3 s: a
 * lost wake-up fails it.  Without the read-back every CHAN_BELL_DRAIN_EVERY
 * sleeps, the socket fills after ~278 calls, the next doorbell gets EAGAIN
 * and that call times out (checked with a build that never reads back:
 * -DCHAN_BELL_DRAIN_EVERY=1000000, the promise made regardless).
 */
static void test_more_sleeps_than_the_socket_holds_lose_no_wakeup(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	thoth_chan_t *ch = open_chan();
	assert_int_equal(thoth_chan__end(ch)->ctl->bell[CHAN_CLIENT], CHAN_BELL_ONCE);
	int cost = bell_cost(), room = socket_room(), most = 0;
	const int calls = 2000;
	assert_true(calls > 4 * room);
	for (int i = 0; i < calls; i++) {
		int r = chan_echo64(ch);
		if (r)
			fail_msg("call %d: %s (%d doorbells unread, the socket holds %d)", i, thoth_strerror(r),
				 unread_bells(ch, cost), room);
		int u = unread_bells(ch, cost);
		most = u > most ? u : most;
	}
	/* The socket was watched edge-triggered and bells were left unread
	 * (else this proved nothing), never more than the bound. */
	assert_int_equal(et_sockets(), 1);
	print_message("%d calls, at most %d doorbells unread (bound %u, the socket holds %d)\n", calls, most,
		      CHAN_BELL_DRAIN_EVERY + CHAN_BELL_SLACK, room);
	assert_true(most >= 2);
	assert_true(most <= (int)(CHAN_BELL_DRAIN_EVERY + CHAN_BELL_SLACK));
	thoth_chan_close(ch);
	assert_true(chan_service_stop(&env) >= 0);
}

/* ---- one doorbell per sleep, in one process ------------------------------ */

typedef struct pair {
	int fd, sv[2];
	uint8_t *base;
	chan_layout_t lay;
	chan_end_t cli, srv;
} pair_t;

/* Both ends of a channel in this process, the client ringing the
 * service's end of a socket pair as a real client does. */
static pair_t *pair_new(void)
{
	pair_t *p = calloc(1, sizeof *p);
	chan_pair_map("test-chan-bells", (thoth_chan_limits_t){ 64, 4096, 4 }, &p->fd, &p->base, &p->lay,
		      &p->srv, &p->cli);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p->sv), 0);
	p->cli.wait = p->srv.wait = THOTH_CHAN_SLEEP;
	p->cli.sock = p->sv[0];
	p->cli.peer_bell = true;
	p->srv.sock = p->sv[1];
	p->srv.own_bell = true;
	chan_bell_advertise(&p->srv);   /* the service re-arms after a read-back: the client claims */
	assert_true(chan_bell_attach(&p->cli));
	return p;
}

static void pair_free(pair_t *p)
{
	p->cli.sock = p->srv.sock = -1;
	chan_pair_unmap(p->fd, p->base, &p->lay, &p->srv, &p->cli);
	close(p->sv[0]);
	close(p->sv[1]);
	free(p);
}

static void send_one(chan_end_t *e)
{
	enum { LEN = 48 };
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(e, LEN, &buf), 0);
	memset(buf, 0, LEN);
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST, .request_id = 1, .body_len = LEN - THOTH_WIRE_HEADER_SIZE };
	thoth_wire_header_encode(buf, &h);
	assert_int_equal(chan_try_send(e, buf, LEN), 0);
}

static unsigned take_all(chan_end_t *e)
{
	unsigned n = 0;
	thoth_msg_t m;
	while (chan_try_recv(e, &m) == 0) {
		assert_int_equal(chan_release(e, &m), 0);
		n++;
	}
	return n;
}

static int queued_bytes(int fd)
{
	int n = 0;
	assert_int_equal(ioctl(fd, SIOCINQ, &n), 0);
	return n;
}

/* The producer claims the sleeping consumer's flag (compare-exchange 1 -> 0) and only
 * the claim rings: a burst of 8 messages after one sleep is one doorbell
 * byte, each further sleep one more; a nap is woken on the futex (no byte),
 * and arms are counted for the read-back. */
static void test_a_producer_rings_once_per_sleep(void **state)
{
	pair_t *p = pair_new();
	_Atomic uint32_t *flag = &p->srv.ctl->dir[CHAN_REQ].cons_waiting;
	for (int sleep = 1; sleep <= 5; sleep++) {
		assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);
		assert_int_equal(atomic_load(flag), CHAN_WAITING_BELL);
		for (int i = 0; i < 8; i++)
			send_one(&p->cli);
		assert_int_equal(atomic_load(flag), 0);            /* claimed */
		assert_int_equal(p->cli.st.wakes, (uint64_t)sleep);
		assert_int_equal(queued_bytes(p->sv[1]), sleep);    /* one byte per sleep, left unread */
		assert_int_equal(take_all(&p->srv), 8);
	}
	assert_int_equal(p->srv.bell_arms, 5);
	/* A nap: CHAN_WAITING_FUTEX is not claimed (a FUTEX_WAKE is no
	 * byte that stays: a stale one would be lost); it wakes the futex. */
	atomic_store(flag, CHAN_WAITING_FUTEX);
	send_one(&p->cli);
	assert_int_equal(p->cli.st.wakes, 6);
	assert_int_equal(queued_bytes(p->sv[1]), 5);
	assert_int_equal(atomic_load(flag), CHAN_WAITING_FUTEX);
	atomic_store(flag, 0);          /* the nap ends */
	/* The read-back takes them and starts a new count. */
	assert_int_equal(chan_bell_drain(&p->srv), 0);
	assert_int_equal(p->srv.bell_read, 5);
	assert_int_equal(p->srv.bell_arms_read, 5);
	assert_int_equal(p->srv.bell_arms, 0);
	assert_int_equal(queued_bytes(p->sv[1]), 0);
	pair_free(p);
}

/*
 * A client that breaks its promise: bytes on its socket until EAGAIN, in
 * one large send and then in many small ones, with no message behind
 * them.  The service must not spin on
 * them (edge-triggered it would not, level-triggered unread it would), must
 * serve an innocent client beside it, must read them back and watch that
 * socket level-triggered again (the flooder's own later doorbells would
 * otherwise find its socket full), and must still serve the flooder.
 */
static void test_a_flooding_client_is_read_back_and_watched_level(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	thoth_chan_t *good = open_chan(), *bad = open_chan();
	for (int i = 0; i < 20; i++) {
		assert_int_equal(echo_apart(good), 0);
		assert_int_equal(echo_apart(bad), 0);
	}
	assert_int_equal(et_sockets(), 2);
	int fd = thoth_chan__end(bad)->sock;
	/* One large send first: a few arrivals, a few wake-ups, and a full
	 * socket.  Only a read-back when a wake-up finds nothing to serve
	 * saves the flooder's next doorbell (none would come otherwise). */
	static char big[1 << 19];
	long flooded = 0;
	while (flooded < (long)sizeof big) {
		ssize_t n = send(fd, big, sizeof big - (size_t)flooded, MSG_DONTWAIT);
		if (n <= 0)
			break;
		flooded += n;
	}
	assert_true(flooded > 4096);
	for (int i = 0; i < 20; i++)
		assert_int_equal(chan_echo64(good), 0);
	for (int i = 0; i < 50; i++) {
		int r = echo_apart(bad);
		if (r)
			fail_msg("flooder's call %d after one send of %ld bytes: %s", i, flooded, thoth_strerror(r));
	}
	/* Then many small sends (many arrivals). */
	for (int round = 0; round < 5; round++) {
		char junk[64] = { 0 };
		for (int k = 0; k < 100000; k++) {
			ssize_t n = send(fd, junk, (size_t)(k & 1 ? 1 : sizeof junk), MSG_DONTWAIT);
			if (n <= 0)
				break;
			flooded += n;
		}
		for (int i = 0; i < 20; i++)
			assert_int_equal(chan_echo64(good), 0);
	}
	assert_true(flooded > 1000);
	/* The flooder is served, read back, and level-triggered from now on;
	 * the innocent one is still edge-triggered. */
	for (int i = 0; i < 200; i++) {
		int r = chan_echo64(bad);
		if (r)
			fail_msg("flooder's call %d after %ld bytes: %s", i, flooded, thoth_strerror(r));
	}
	assert_int_equal(et_sockets(), 1);
	/* Idle: the service sleeps (a level-triggered unread socket would be
	 * a wake-up per loop pass).  20 naps of 10 ms: a spinning loop wakes
	 * thousands of times, an idle one a few (timers). */
	chan_nap_ms(50);
	long w0 = chan_wakeups(env.service);
	chan_nap_ms(200);
	long w1 = chan_wakeups(env.service);
	assert_true(w0 >= 0 && w1 >= 0);
	if (w1 - w0 > 20)
		fail_msg("the idle service woke %ld times in 200 ms after a flood", w1 - w0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(chan_echo64(good), 0);
	thoth_chan_close(bad);
	thoth_chan_close(good);
	assert_true(chan_service_stop(&env) >= 0);
}

/*
 * A client process that dies with doorbells unread (fewer calls than a
 * read-back takes): the socket's end is seen although bytes are still in
 * it (read until recv says 0), and the channel is closed: the service's
 * descriptors come back to what they were.
 */
static void test_a_client_dying_with_bells_unread_is_seen_gone(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	/* The service is up and serving; calls a ms apart, so that each
	 * finds it asleep in its loop (back to back, a late read-back's
	 * re-check serves the next one in the same wake-up, and the first
	 * may be served before it ever sleeps): the probe's socket is
	 * edge-triggered. */
	thoth_chan_t *probe = open_chan();
	for (int i = 0; i < 10; i++)
		assert_int_equal(echo_apart(probe), 0);
	assert_int_equal(et_sockets(), 1);
	int fds0 = service_fds(env.service);
	for (int round = 0; round < 3; round++) {
		int go[2];
		assert_int_equal(pipe(go), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(go[0]);
			thoth_chan_t *ch = open_chan();
			for (int i = 0; i < 10 + round * 5; i++)
				if (echo_apart(ch))
					_exit(3);
			int et = 0;
			epoll_watched(env.service, &et);
			int u = unread_bells(ch, bell_cost());
			char b = et == 2 ? (char)(u < 100 ? u : 100) : (char)(-10 - et);
			if (write(go[1], &b, 1) != 1)
				_exit(4);
			_exit(0);                       /* no close: the process just goes */
		}
		close(go[1]);
		char b = 0;
		assert_int_equal(read(go[0], &b, 1), 1);
		close(go[0]);
		assert_int_equal(chan_wait_exit(pid, 5000), 0);
		if (b < 2)      /* it was edge-triggered (-1: not), with bells unread */
			fail_msg("round %d: the dying client's socket: %d (-10 - N: N sockets edge-triggered, not 2; else bells unread)", round, b);
		int fds = -1;
		for (uint64_t end = chan_now_ns() + 5000000000ull; chan_now_ns() < end;) {
			fds = service_fds(env.service);
			if (fds == fds0)
				break;
			chan_nap_ms(5);
		}
		if (fds != fds0)
			fail_msg("round %d: the service holds %d descriptors, %d before the client came and died", round,
				 fds, fds0);
	}
	assert_int_equal(chan_echo64(probe), 0);
	thoth_chan_close(probe);
	assert_true(chan_service_stop(&env) >= 0);
}

/* The io_uring loop has no edge mode: the service keeps the socket level
 * triggered and reads back at every wake-up, and loses nothing either. */
static void test_uring_loop_stays_level_and_loses_nothing(void **state)
{
	setenv("THOTH_LOOP_BACKEND", "uring", 1);
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	unsetenv("THOTH_LOOP_BACKEND");
	thoth_chan_t *ch = open_chan();
	int room = socket_room();
	for (int i = 0; i < 2 * room; i++) {
		int r = chan_echo64(ch);
		if (r)
			fail_msg("call %d on the io_uring loop: %s", i, thoth_strerror(r));
	}
	if (!has_uring(env.service))
		skip_because("no io_uring here: the loop fell back to epoll");
	int et = 0;
	epoll_watched(env.service, &et);
	assert_int_equal(et, 0);        /* the loop's sockets are io_uring polls: none edge-triggered */
	thoth_chan_close(ch);
	assert_true(chan_service_stop(&env) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_more_sleeps_than_the_socket_holds_lose_no_wakeup, setup, teardown),
		cmocka_unit_test(test_a_producer_rings_once_per_sleep),
		cmocka_unit_test_setup_teardown(test_a_flooding_client_is_read_back_and_watched_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_client_dying_with_bells_unread_is_seen_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uring_loop_stays_level_and_loses_nothing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
