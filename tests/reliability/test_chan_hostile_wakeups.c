/*
 * test_chan_hostile_wakeups.c - a peer can never block the other side of a
 * channel through its wake-ups (issue 11, item 1).
 *
 * Wake-ups travel as one byte on the channel's own Unix socket, sent with
 * MSG_DONTWAIT on the sender's own file description; no eventfd is shared.
 * Hostile clients (C, against the channel internals) try the attacks that
 * used to hang a service: an eventfd with O_NONBLOCK cleared and its counter
 * at the maximum, a FIFO at a path containing "eventfd", a client that never
 * reads the doorbells the service sends it.  Hostile services try the same
 * against a client.  After each: other clients are served, and SIGTERM
 * stops the service promptly.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "chan_shm.h"
#include "channel.thoth.h"
#include "chantest.thoth.h"
#include "fdpass.h"
#include "thoth/channel.h"
#include "chan_call.h"

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

static thoth_chan_t *open_chan(bool loop_wakeup)
{
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .loop_wakeup = loop_wakeup,
				    .timeout_ms = 2000 };
	return chan_open(&env, &cfg);
}

/* An innocent client: 200 calls, each answered within its 2 s timeout. */
static void innocent_is_served(void)
{
	thoth_chan_t *ch = open_chan(false);
	for (int i = 0; i < 200; i++)
		assert_int_equal(chan_echo64(ch), 0);
	thoth_chan_close(ch);
}

static void service_stops_on_sigterm(void)
{
	int ms = chan_service_stop(&env);
	if (ms < 0 || ms > 2000)
		fail_msg("the service took %d ms to stop on SIGTERM (-1: it had to be killed)", ms);
}

/* Send a Channel.open asking for loop wake-ups with FD attached, the way the
 * old protocol did; return the service's answer (status, reason). */
static int handshake_with_fds(int fd, int copies, char *reason, size_t reason_len);

static int handshake_with_fd(int fd, char *reason, size_t reason_len)
{
	return handshake_with_fds(fd, 1, reason, reason_len);
}

/* The handshake with COPIES (1..4) of FD attached. */
static int handshake_with_fds(int fd, int copies, char *reason, size_t reason_len)
{
	int sock = chan_raw_connect(env.sock);
	assert_true(sock >= 0);
	const thoth_interface_info_t *ifc = &thoth_chantest_Test_info;
	thoth_channel_Channel_open_req_t req = {
		.package = thoth_str(ifc->package), .interface = thoth_str(ifc->name),
		.interface_id = ifc->id, .major = ifc->major, .minor = ifc->minor,
		.schema_hash = ifc->schema_hash, .client_wakeup = true,
	};
	uint64_t buf[512];
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	assert_int_equal(thoth_channel_Channel_open_req_encode_msg(buf, sizeof buf, &meta, &req, &len), 0);
	int fds[4] = { fd, fd, fd, fd };
	assert_int_equal(thoth_fdpass_send(sock, buf, len, fds, (size_t)copies), (ssize_t)len);
	struct timeval tv = { 5, 0 };
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	size_t have = 0;
	for (;;) {
		ssize_t n = recv(sock, (uint8_t *)buf + have, sizeof buf - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(sock);
	thoth_channel_Channel_open_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t a;
	thoth_arena_init(&a, scratch, sizeof scratch);
	assert_int_equal(thoth_channel_Channel_open_resp_decode_msg((const uint8_t *)buf, have, &resp, &a), 0);
	snprintf(reason, reason_len, "%.*s", (int)resp.reason.len, resp.reason.ptr);
	return resp.status;
}

/* The attack of issue 11: an eventfd whose O_NONBLOCK the client clears and
 * whose counter it sets to the maximum, so a write() would block forever. */
static void test_service_refuses_a_blocking_eventfd_from_a_client(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, NULL), 0);
	int efd = eventfd(0, 0);                    /* blocking */
	uint64_t max = UINT64_MAX - 1;
	assert_int_equal(write(efd, &max, sizeof max), 8);
	char reason[300];
	int status = handshake_with_fd(efd, reason, sizeof reason);
	close(efd);
	assert_int_equal(status, THOTH_E_PROTOCOL);
	assert_non_null(strstr(reason, "no file descriptors"));
	innocent_is_served();
	service_stops_on_sigterm();
}

/* The other attack: a FIFO at a path containing "eventfd" (the old check
 * was a substring of the fd's path). */
static void test_service_refuses_a_fifo_named_eventfd(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, NULL), 0);
	char fifo[400];
	snprintf(fifo, sizeof fifo, "%s/eventfd", env.dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	int fd = open(fifo, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	char reason[300];
	int status = handshake_with_fd(fd, reason, sizeof reason);
	close(fd);
	unlink(fifo);
	assert_int_equal(status, THOTH_E_PROTOCOL);
	assert_non_null(strstr(reason, "no file descriptors"));
	innocent_is_served();
	service_stops_on_sigterm();
}

/* Three descriptors with the handshake: the refusal counts what arrived,
 * not the 2 the service keeps ("carried 2" before, ops39). */
static void test_service_counts_every_descriptor_a_handshake_carried(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, NULL), 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	char reason[300];
	int status = handshake_with_fds(efd, 3, reason, sizeof reason);
	close(efd);
	assert_int_equal(status, THOTH_E_PROTOCOL);
	if (!strstr(reason, "this one carried 3"))
		fail_msg("the reason \"%s\" does not say \"this one carried 3\"", reason);
	innocent_is_served();
	service_stops_on_sigterm();
}

/* What the hostile child reports through a shared page. */
typedef struct hostile_report {
	_Atomic uint64_t calls;         /* round trips completed */
	_Atomic int unread;             /* doorbell bytes it left in its socket */
	_Atomic uint64_t calls_when_full;
} hostile_report_t;

/*
 * A client that asks for loop wake-ups, keeps telling the service it is
 * asleep (cons_waiting = 1 for ever), and never reads its socket: every
 * response makes the service ring it, until its socket buffer is full.
 * It still takes the responses from the ring, so it keeps calling.
 */
static void hostile_never_reads_doorbells(hostile_report_t *rep)
{
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .loop_wakeup = true, .timeout_ms = 2000 };
	thoth_chan_t *ch = NULL;
	char why[300];
	if (thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why))
		_exit(3);
	chan_end_t *e = thoth_chan__end(ch);
	int fl = fcntl(e->sock, F_GETFL);
	fcntl(e->sock, F_SETFL, fl & ~O_NONBLOCK);  /* our own end: changes nothing for the service */
	atomic_store(&e->ctl->dir[CHAN_RESP].cons_waiting, 1);
	for (;;) {
		uint8_t *buf;
		thoth_chantest_Test_notes_req_t rq = { 0 };
		size_t len;
		thoth_msg_header_t meta = { .request_id = 7 };
		if (thoth_chan_alloc(ch, 256, &buf, 1000) ||
		    thoth_chantest_Test_notes_req_encode_msg(buf, 256, &meta, &rq, &len) ||
		    thoth_chan_send(ch, buf, len, 1000))
			_exit(4);
		/* Take the answer from the ring only: no socket read, ever. */
		thoth_msg_t m;
		int r;
		uint64_t until = chan_now_ns() + 2000000000ull;
		while ((r = chan_try_recv(e, &m)) == THOTH_E_AGAIN && chan_now_ns() < until)
			;
		if (r)
			_exit(5);
		chan_release(e, &m);
		atomic_store(&e->ctl->dir[CHAN_RESP].cons_waiting, 1);
		int unread = 0;
		ioctl(e->sock, FIONREAD, &unread);
		atomic_store(&rep->unread, unread);
		uint64_t n = atomic_fetch_add(&rep->calls, 1) + 1;
		/* The service rings on every response: once the unread bytes
		 * stop growing for 100 calls, its sends get EAGAIN. */
		static int last, same;
		same = unread > 0 && unread == last ? same + 1 : 0;
		last = unread;
		if (same == 100 && !atomic_load(&rep->calls_when_full))
			atomic_store(&rep->calls_when_full, n);
	}
}

static void test_client_that_never_reads_doorbells_cannot_block_the_service(void **state)
{
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	hostile_report_t *rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(rep != MAP_FAILED);
	memset(rep, 0, sizeof *rep);
	pid_t evil = fork();
	assert_true(evil >= 0);
	if (evil == 0)
		hostile_never_reads_doorbells(rep);
	/* Wait until its socket holds doorbells that stopped growing (the
	 * buffer is full: every further ring got EAGAIN), then 1000 more
	 * of its calls. */
	uint64_t end = chan_now_ns() + 20000000000ull;
	while (chan_now_ns() < end && !atomic_load(&rep->calls_when_full))
		chan_nap_ms(5);
	uint64_t full_at = atomic_load(&rep->calls_when_full);
	if (!full_at)
		fail_msg("the hostile client's socket never filled (%d bytes unread after %llu calls)",
			 atomic_load(&rep->unread), (unsigned long long)atomic_load(&rep->calls));
	while (chan_now_ns() < end && atomic_load(&rep->calls) < full_at + 1000)
		chan_nap_ms(5);
	assert_true(atomic_load(&rep->calls) >= full_at + 1000);
	innocent_is_served();
	service_stops_on_sigterm();
	kill(evil, SIGKILL);
	waitpid(evil, NULL, 0);
	munmap(rep, sizeof *rep);
}

/* ---- hostile services ------------------------------------------------------ */

typedef enum { FAKE_EXTRA_EVENTFD, FAKE_FIFO_AS_MEMORY, FAKE_NEVER_READS } fake_kind_t;

static _Atomic int *fake_unread;        /* doorbell bytes waiting in the fake's socket (shared page) */

/* A service written against the internals: answers one handshake the way
 * KIND says, then keeps the connection open without reading it. */
static void fake_service(int lfd, fake_kind_t kind)
{
	int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		_exit(2);
	uint64_t buf[512];
	ssize_t n = recv(sock, buf, sizeof buf, 0);
	if (n <= 0)
		_exit(2);
	thoth_chan_limits_t lim = { 0 };
	thoth_chan_limits_resolve(&lim, NULL, 0);
	chan_layout_t lay;
	chan_layout_compute(&lim, &lay);
	int fds[2] = { -1, -1 }, nfds = 0;
	uint8_t *base = NULL;
	if (kind == FAKE_FIFO_AS_MEMORY) {
		char fifo[400];
		snprintf(fifo, sizeof fifo, "%s/thoth-channel", env.dir);
		mkfifo(fifo, 0600);
		fds[nfds++] = open(fifo, O_RDWR | O_CLOEXEC);
	} else {
		int memfd = memfd_create("thoth-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (memfd < 0 || ftruncate(memfd, (off_t)lay.size) ||
		    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
			_exit(2);
		base = chan_shm_map(memfd, lay.size);
		chan_shm_format(base, &lay);
		fds[nfds++] = memfd;
		if (kind == FAKE_EXTRA_EVENTFD) {
			int efd = eventfd(0, 0);        /* blocking, counter at max */
			uint64_t max = UINT64_MAX - 1;
			if (write(efd, &max, sizeof max) != 8)
				_exit(2);
			fds[nfds++] = efd;
		}
	}
	thoth_channel_Channel_open_resp_t resp = {
		.reason = thoth_str(""), .major = thoth_chantest_Test_info.major,
		.minor = thoth_chantest_Test_info.minor, .shm_size = lay.size,
		.limits = { .slots = lim.slots, .pool_buf_size = lim.pool_buf_size, .pool_bufs = lim.pool_bufs },
	};
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	if (thoth_channel_Channel_open_resp_encode_msg(buf, sizeof buf, &meta, &resp, &len) ||
	    thoth_fdpass_send(sock, buf, len, fds, (size_t)nfds) != (ssize_t)len)
		_exit(2);
	if (base) {
		/* "I am asleep, ring me" for ever, and never read a doorbell;
		 * take every request off the ring so the client can go on.
		 * The client claims the flag with each ring (one doorbell per
		 * sleep), so say it again as soon as it is taken. */
		chan_ctl_t *ctl = (chan_ctl_t *)base;
		for (unsigned k = 0;; k++) {
			if (!atomic_load(&ctl->dir[CHAN_REQ].cons_waiting))
				atomic_store(&ctl->dir[CHAN_REQ].cons_waiting, 1);
			atomic_store(&ctl->dir[CHAN_REQ].tail, atomic_load(&ctl->dir[CHAN_REQ].head));
			if (k % 4096)
				continue;
			int unread = 0;
			ioctl(sock, FIONREAD, &unread);
			atomic_store(fake_unread, unread);
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
	}
	pause();
	_exit(0);
}

static pid_t start_fake_service(fake_kind_t kind)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(env.sock) < sizeof sa.sun_path);
	memcpy(sa.sun_path, env.sock, strlen(env.sock) + 1);
	unlink(env.sock);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 8), 0);
	if (!fake_unread) {
		fake_unread = mmap(NULL, sizeof *fake_unread, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		assert_true(fake_unread != MAP_FAILED);
	}
	atomic_store(fake_unread, 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_service(lfd, kind);
	close(lfd);
	env.service = pid;
	return pid;
}

static void test_client_refuses_an_eventfd_from_a_service(void **state)
{
	start_fake_service(FAKE_EXTRA_EVENTFD);
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .loop_wakeup = true };
	thoth_chan_t *ch = NULL;
	char why[300];
	uint64_t t0 = chan_now_ns();
	assert_int_equal(thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why), THOTH_E_PROTOCOL);
	assert_null(ch);
	assert_non_null(strstr(why, "2 file descriptors"));
	assert_true(chan_now_ns() - t0 < 2000000000ull);
	chan_service_stop(&env);
}

static void test_client_refuses_a_fifo_as_channel_memory(void **state)
{
	start_fake_service(FAKE_FIFO_AS_MEMORY);
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info };
	thoth_chan_t *ch = NULL;
	char why[300];
	assert_int_equal(thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "not a sealed memfd"));
	chan_service_stop(&env);
}

/* A service that says "ring me" and never reads its socket: the client
 * rings it for every sleep it announces (it announces one again as soon as
 * a ring took the last), its socket fills, and further rings get EAGAIN
 * instead of blocking: the client's oneway messages go on until it has
 * rung 2,000 times (at least 1,000 within the 30 s bound for a hang),
 * while only a few hundred doorbells fit in the socket. */
static void test_client_is_never_blocked_by_a_service_that_never_reads(void **state)
{
	start_fake_service(FAKE_NEVER_READS);
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .wait = THOTH_CHAN_SLEEP, .timeout_ms = 2000 };
	thoth_chan_t *ch = NULL;
	char why[300];
	int r = thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why);
	if (r)
		fail_msg("connect: %s", why);
	chan_end_t *e = thoth_chan__end(ch);
	for (uint64_t end = chan_now_ns() + 5000000000ull;
	     !atomic_load(&e->ctl->dir[CHAN_REQ].cons_waiting) && chan_now_ns() < end;)
		chan_nap_ms(1);
	uint64_t t0 = chan_now_ns();
	/* Until it rang far more often than the socket holds (278 one-byte
	 * sends here): with one ring per announced sleep, how many messages
	 * that takes depends on how often the fake runs, which on a loaded
	 * machine is when the scheduler lets it (about 100 re-announcements
	 * a second at load 18-20 on two CPUs: 1,083-1,981 rings in 10 s,
	 * where 2,000 were asked).  The bound is for a hang, not a speed. */
	int sent = 0;
	while (e->st.wakes < 2000 && chan_now_ns() - t0 < 30000000000ull) {
		thoth_chantest_Test_note_req_t rq = { .value = (uint64_t)sent };
		r = thoth_chantest_Test_note(thoth_chan_client(ch), &rq);
		if (r)
			fail_msg("note %d: %s", sent, thoth_strerror(r));
		sent++;
	}
	uint64_t took = chan_now_ns() - t0;
	chan_nap_ms(20);                        /* the fake samples its socket now and then */
	int unread = atomic_load(fake_unread);
	/* Most rings found the socket full: over three times what it holds. */
	if (e->st.wakes < 1000)
		fail_msg("only %llu rings for %d messages in %llu ms", (unsigned long long)e->st.wakes, sent,
			 (unsigned long long)(took / 1000000u));
	if (unread <= 0 || (uint64_t)unread >= e->st.wakes / 2)
		fail_msg("%d doorbells wait in the service's socket after %llu rings: expected a full socket",
			 unread, (unsigned long long)e->st.wakes);
	thoth_chan_close(ch);
	chan_service_stop(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_service_refuses_a_blocking_eventfd_from_a_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_refuses_a_fifo_named_eventfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_counts_every_descriptor_a_handshake_carried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_that_never_reads_doorbells_cannot_block_the_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_refuses_an_eventfd_from_a_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_refuses_a_fifo_as_channel_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_is_never_blocked_by_a_service_that_never_reads, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
