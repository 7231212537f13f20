/*
 * test_nic_moderation.c - the NIC coalescing control loop
 * (kernel/pm/moderation_nic.c) on real interfaces with real traffic, in a
 * network namespace of its own (unshare: every device it makes dies with
 * the process, whatever happens).
 *
 *   - a tun device, the one device this kernel has that takes a coalescing
 *     parameter (rx-frames): the loop, woken by the traffic we write into
 *     it, reads the live counters, decides and sets rx-frames through
 *     ETHTOOL_MSG_COALESCE_SET; the test reads the device back through its
 *     own ethtool handle;
 *   - lo with UDP traffic and a recording fixture device (rx-usecs and
 *     rx-frames), where the applied values can be checked against the rate
 *     the loop measured; the DIM policy's profiles; a device that refuses
 *     a parameter (as this VM's virtio NIC refuses rx-usecs);
 *   - idle means idle: no timer armed and no wake-up while no packet flows;
 *   - the rtnetlink request and reply parser against hand-built fixtures.
 *
 * Needs CAP_SYS_ADMIN (unshare) and CAP_NET_RAW: without them it skips (77).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "moderation_nic.h"
#include "thoth/error.h"
#include "thoth/loop.h"
#include "../common/loop_until.h"

/* ---- helpers ------------------------------------------------------------- */

static int if_up(const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	int r = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (!r) {
		ifr.ifr_flags |= IFF_UP;
		r = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	close(s);
	return r;
}

static int tun_create(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) || if_up(name)) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint16_t csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)b[i] << 8 | b[i + 1];
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* An IPv4/UDP packet 10.15.0.1 -> 10.15.0.2: received on the tun, counted,
 * then dropped by the stack (no such address here). */
static size_t udp_packet(uint8_t *b)
{
	memset(b, 0, 60);
	b[0] = 0x45;
	b[3] = 60;
	b[8] = 64;
	b[9] = IPPROTO_UDP;
	uint8_t src[4] = { 10, 15, 0, 1 }, dst[4] = { 10, 15, 0, 2 };
	memcpy(b + 12, src, 4);
	memcpy(b + 16, dst, 4);
	uint16_t c = htons(csum(b, 20));
	memcpy(b + 10, &c, 2);
	b[21] = 9;
	b[23] = 9;
	b[25] = 40;
	return 60;
}

typedef struct traffic {
	int fd;                    /* tun fd, or a UDP socket connected to lo */
	bool tun;
	atomic_bool stop;
	atomic_ulong sent;
	pthread_t t;
} traffic_t;

static void *traffic_main(void *arg)
{
	traffic_t *tr = arg;
	uint8_t pkt[60];
	size_t n = udp_packet(pkt);
	while (!atomic_load(&tr->stop)) {
		ssize_t w = tr->tun ? write(tr->fd, pkt, n) : send(tr->fd, pkt + 28, 32, MSG_DONTWAIT);
		if (w > 0)
			atomic_fetch_add(&tr->sent, 1);
	}
	return NULL;
}

static void traffic_start(traffic_t *tr)
{
	atomic_store(&tr->stop, false);
	assert_int_equal(pthread_create(&tr->t, NULL, traffic_main, tr), 0);
}

static void traffic_stop(traffic_t *tr)
{
	atomic_store(&tr->stop, true);
	pthread_join(tr->t, NULL);
}

/* The loop's changes, as the callback saw them; with MINE, the device as
 * the test's own ethtool handle reads it right after the first moderated
 * change (before the loop can change it again). */
typedef struct seen {
	thoth_nicmod_change_t c[256];
	size_t n;
	thoth_ethtool_t *mine;
	const char *dev;
	thoth_coalesce_t indep;
	bool indep_done;
} seen_t;

static void on_change(void *arg, const thoth_nicmod_change_t *c)
{
	seen_t *s = arg;
	if (s->n < 256)
		s->c[s->n++] = *c;
	if (s->mine && !s->indep_done && thoth_mod_profile_defers(c->profile)) {
		char why[300];
		s->indep_done = thoth_ethtool_coalesce_get(s->mine, s->dev, &s->indep, why, sizeof why) == 0;
	}
}

typedef struct ctx {
	thoth_nicmod_t *m;
	seen_t *seen;
} ctx_t;

static bool moderating(void *arg)
{
	ctx_t *c = arg;
	for (size_t i = 0; i < c->seen->n; i++)
		if (thoth_mod_profile_defers(c->seen->c[i].profile))
			return true;
	return false;
}

static bool went_idle(void *arg)
{
	thoth_nicmod_stats_t st;
	thoth_nicmod_stats(((ctx_t *)arg)->m, &st);
	return !st.busy;
}

static bool went_busy(void *arg) { return !went_idle(arg); }

/* ---- the real device: tun, ETHTOOL_MSG_COALESCE_SET, read back ----------- */

static void test_a_tun_devices_rx_frames_follow_its_live_traffic(void **state)
{
	(void)state;
	int tfd = tun_create("thmod0");
	if (tfd < 0) {
		print_message("no /dev/net/tun here: %s (skipped)\n", strerror(errno));
		skip();
	}
	char why[300];
	thoth_ethtool_t *eth, *mine;
	assert_int_equal(thoth_ethtool_open(&eth, why, sizeof why), 0);
	assert_int_equal(thoth_ethtool_open(&mine, why, sizeof why), 0);   /* the test's own view */
	thoth_coalesce_t dev;
	assert_int_equal(thoth_ethtool_coalesce_get(mine, "thmod0", &dev, why, sizeof why), 0);
	assert_int_equal(dev.present & THOTH_COAL_RX_FRAMES, THOTH_COAL_RX_FRAMES);

	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	seen->mine = mine;
	seen->dev = "thmod0";
	thoth_nicmod_config_t cfg = { .ifname = "thmod0", .policy = { .kind = THOTH_MOD_ADAPTIVE },
				      .sample_us = 5000, .backend = thoth_nicmod_ethtool_backend(eth),
				      .on_change = on_change, .arg = seen };
	thoth_nicmod_t *m;
	int r = thoth_nicmod_start(loop, &cfg, &m, why, sizeof why);
	if (r)
		print_message("start: %s\n", why);
	assert_int_equal(r, 0);
	ctx_t c = { m, seen };

	traffic_t tr = { .fd = tfd, .tun = true };
	traffic_start(&tr);
	bool mod = test_loop_until(loop, moderating, &c, 5000);
	traffic_stop(&tr);
	if (!mod) {
		thoth_nicmod_stats_t st;
		thoth_nicmod_stats(m, &st);
		print_message("never moderated: %lu packets written, last rate %lu/s, %lu samples\n",
			      (unsigned long)atomic_load(&tr.sent), (unsigned long)st.rate, (unsigned long)st.samples);
	}
	assert_true(mod);
	/* The decision came from the counters (a rate above the adaptive
	 * threshold of 20k/s), went to the driver, and the driver holds it:
	 * tun caps rx-frames at NAPI_POLL_WEIGHT (64). */
	const thoth_nicmod_change_t *ch = NULL;
	for (size_t i = 0; i < seen->n && !ch; i++)
		if (thoth_mod_profile_defers(seen->c[i].profile))
			ch = &seen->c[i];
	assert_non_null(ch);
	assert_true(ch->rate >= 20000);
	assert_int_equal(ch->err, 0);
	assert_int_equal(ch->asked.rx_frames, 256);
	assert_true(ch->readback.rx_frames > 1 && ch->readback.rx_frames <= 256);
	assert_true(seen->indep_done);
	assert_int_equal(seen->indep.rx_frames, ch->readback.rx_frames);

	/* Traffic stops: the loop sees a sample without packets, puts the
	 * device back to unmoderated and goes idle. */
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	thoth_coalesce_t after;
	assert_int_equal(thoth_ethtool_coalesce_get(mine, "thmod0", &after, why, sizeof why), 0);
	assert_int_equal(after.rx_frames, 1);

	/* Traffic again wakes it through the packet socket. */
	thoth_nicmod_stats_t st;
	thoth_nicmod_stats(m, &st);
	uint64_t wakes = st.wakes;
	traffic_start(&tr);
	bool busy = test_loop_until(loop, went_busy, &c, 3000);
	traffic_stop(&tr);
	assert_true(busy);
	thoth_nicmod_stats(m, &st);
	assert_int_equal(st.wakes, wakes + 1);

	thoth_nicmod_stop(m);
	thoth_loop_free(loop);
	thoth_ethtool_close(eth);
	thoth_ethtool_close(mine);
	close(tfd);
	free(seen);
}

/* ---- the service: nic-moderator as its own process ------------------------ */

#ifdef NIC_MODERATOR

static void test_the_nic_moderator_service_drives_a_tun_device(void **state)
{
	(void)state;
	int tfd = tun_create("thmod1");
	if (tfd < 0) {
		print_message("no /dev/net/tun here: %s (skipped)\n", strerror(errno));
		skip();
	}
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(NIC_MODERATOR, "nic-moderator", "--dev", "thmod1", "--sample-ms", "5", "--json", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	char line[1024];
	/* Its first line: the device put to a known, unmoderated state. */
	assert_true(test_read_line_until(f, "\"readback\":{\"rx_frames\":1}", line, sizeof line, 5000));
	traffic_t tr = { .fd = tfd, .tun = true };
	traffic_start(&tr);
	bool mod = test_read_line_until(f, "\"asked\":{\"rx_frames\":256}", line, sizeof line, 5000);
	bool held = mod && strstr(line, "\"readback\":{\"rx_frames\":1}") == NULL && strstr(line, "\"readback\"");
	char why[300];
	thoth_ethtool_t *mine;
	assert_int_equal(thoth_ethtool_open(&mine, why, sizeof why), 0);
	/* Our own read, while the traffic goes on: the moderated value (on a
	 * loaded machine a pause in the writer may briefly idle the loop, so
	 * this is a condition with a deadline, not one read). */
	thoth_coalesce_t during = { 0 }, after;
	uint64_t end = test_now_ms() + 5000;
	while (mod && test_now_ms() < end) {
		assert_int_equal(thoth_ethtool_coalesce_get(mine, "thmod1", &during, why, sizeof why), 0);
		if (during.rx_frames > 1)
			break;
		usleep(1000);
	}
	traffic_stop(&tr);
	assert_true(mod);
	assert_true(held);
	assert_true(during.rx_frames > 1);
	/* Quiet: back to unmoderated, then SIGTERM ends it cleanly. */
	assert_true(test_read_line_until(f, "\"asked\":{\"rx_frames\":1}", line, sizeof line, 5000));
	kill(pid, SIGTERM);
	assert_true(test_read_line_until(f, "\"summary\"", line, sizeof line, 5000));
	assert_non_null(strstr(line, "\"refusals\":0"));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(thoth_ethtool_coalesce_get(mine, "thmod1", &after, why, sizeof why), 0);
	assert_int_equal(after.rx_frames, 1);
	thoth_ethtool_close(mine);
	fclose(f);
	close(tfd);
}
#endif

/* ---- lo with a recording device: values checked against the rate --------- */

static int udp_to_lo(int *sink)
{
	*sink = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int small = 4096;
	setsockopt(*sink, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	assert_int_equal(bind(*sink, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(*sink, (struct sockaddr *)&a, &al), 0);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof a), 0);
	return s;
}

static uint32_t adaptive_us(uint64_t rate)
{
	uint64_t us = 256u * 1000000u / rate;
	return us < 10 ? 10 : us > 256 ? 256 : (uint32_t)us;
}

static void test_the_loop_applies_what_the_policy_computes_from_the_measured_rate(void **state)
{
	(void)state;
	thoth_nicmod_record_t dev;
	thoth_nicmod_record_init(&dev, THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	thoth_nicmod_config_t cfg = { .ifname = "lo", .policy = { .kind = THOTH_MOD_ADAPTIVE }, .sample_us = 5000,
				      .backend = thoth_nicmod_record_backend(&dev), .on_change = on_change, .arg = seen };
	thoth_nicmod_t *m;
	char why[300];
	int r = thoth_nicmod_start(loop, &cfg, &m, why, sizeof why);
	if (r)
		print_message("start: %s\n", why);
	assert_int_equal(r, 0);
	ctx_t c = { m, seen };
	/* Started unmoderated: rx-usecs 0, rx-frames 1. */
	assert_int_equal(dev.now.rx_usecs, 0);
	assert_int_equal(dev.now.rx_frames, 1);

	int sink;
	traffic_t tr = { .fd = udp_to_lo(&sink) };
	traffic_start(&tr);
	bool mod = test_loop_until(loop, moderating, &c, 5000);
	traffic_stop(&tr);
	assert_true(mod);
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	/* Every moderated setting is the adaptive profile for the rate that
	 * sample measured: T = 256 packets' worth, within [10, 256] us. */
	size_t moderated = 0;
	for (size_t i = 0; i < seen->n; i++) {
		const thoth_nicmod_change_t *ch = &seen->c[i];
		assert_int_equal(ch->err, 0);
		if (!thoth_mod_profile_defers(ch->profile)) {
			assert_int_equal(ch->asked.rx_usecs, 0);
			assert_int_equal(ch->asked.rx_frames, 1);
			continue;
		}
		moderated++;
		assert_true(ch->rate >= 20000);
		assert_int_equal(ch->asked.rx_usecs, adaptive_us(ch->rate));
		assert_int_equal(ch->asked.rx_frames, 256);
		assert_int_equal(ch->readback.rx_usecs, ch->asked.rx_usecs);
	}
	assert_true(moderated >= 1);
	/* Idle again: the device is back to unmoderated. */
	assert_int_equal(dev.now.rx_usecs, 0);
	assert_int_equal(dev.now.rx_frames, 1);
	thoth_nicmod_stop(m);
	thoth_loop_free(loop);
	close(tr.fd);
	close(sink);
	free(seen);
}

static void test_dim_drives_the_device_through_net_dims_profiles(void **state)
{
	(void)state;
	thoth_nicmod_record_t dev;
	thoth_nicmod_record_init(&dev, THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	thoth_nicmod_config_t cfg = { .ifname = "lo", .policy = { .kind = THOTH_MOD_DIM }, .sample_us = 2000,
				      .backend = thoth_nicmod_record_backend(&dev), .on_change = on_change, .arg = seen };
	thoth_nicmod_t *m;
	char why[300];
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), 0);
	ctx_t c = { m, seen };
	/* DIM starts on its default profile 1: 8 us x 256. */
	assert_int_equal(dev.now.rx_usecs, 8);
	assert_int_equal(dev.now.rx_frames, 256);
	int sink;
	traffic_t tr = { .fd = udp_to_lo(&sink) };
	traffic_start(&tr);
	test_loop_until(loop, went_busy, &c, 3000);
	/* Let DIM walk for 60 samples. */
	thoth_nicmod_stats_t st;
	uint64_t end = test_now_ms() + 3000;
	do {
		thoth_loop_run_once(loop, true);
		thoth_nicmod_stats(m, &st);
	} while (st.samples < 60 && test_now_ms() < end);
	traffic_stop(&tr);
	assert_true(st.samples >= 10);
	for (size_t i = 0; i < seen->n; i++) {
		uint32_t us = seen->c[i].asked.rx_usecs;
		assert_true(us == 1 || us == 8 || us == 64 || us == 128 || us == 256);
		assert_int_equal(seen->c[i].asked.rx_frames, 256);
	}
	thoth_nicmod_stop(m);
	thoth_loop_free(loop);
	close(tr.fd);
	close(sink);
	free(seen);
}

/* ---- a device that refuses rx-usecs (this VM's virtio NIC) ---------------- */

typedef struct picky {
	thoth_nicmod_record_t rec;
	unsigned refused;
} picky_t;

static int picky_get(void *arg, const char *ifname, thoth_coalesce_t *out, char *why, size_t why_len)
{
	thoth_nicmod_backend_t rec = thoth_nicmod_record_backend(&((picky_t *)arg)->rec);
	return rec.get(rec.arg, ifname, out, why, why_len);
}

static int picky_set(void *arg, const char *ifname, const thoth_coalesce_t *want, char *why, size_t why_len)
{
	picky_t *p = arg;
	if ((want->present & THOTH_COAL_RX_USECS) && want->rx_usecs) {
		p->refused++;
		snprintf(why, why_len, "the kernel answered Operation not supported");
		return THOTH_E_NOT_FOUND;
	}
	thoth_nicmod_backend_t rec = thoth_nicmod_record_backend(&p->rec);
	return rec.set(rec.arg, ifname, want, why, why_len);
}

static void test_a_refused_parameter_is_dropped_and_the_rest_still_driven(void **state)
{
	(void)state;
	picky_t p = { 0 };
	thoth_nicmod_record_init(&p.rec, THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES | THOTH_COAL_ADAPTIVE_RX);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	thoth_nicmod_config_t cfg = { .ifname = "lo", .policy = { .kind = THOTH_MOD_ADAPTIVE }, .sample_us = 5000,
				      .backend = { picky_get, picky_set, &p }, .on_change = on_change, .arg = seen };
	thoth_nicmod_t *m;
	char why[300];
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), 0);
	ctx_t c = { m, seen };
	int sink;
	traffic_t tr = { .fd = udp_to_lo(&sink) };
	traffic_start(&tr);
	bool mod = test_loop_until(loop, moderating, &c, 5000);
	traffic_stop(&tr);
	assert_true(mod);
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	thoth_nicmod_stats_t st;
	thoth_nicmod_stats(m, &st);
	/* Refused once with its reason, then no longer asked; rx-frames and
	 * adaptive-rx (off) are still driven. */
	assert_true(st.refusals >= 1);
	assert_int_equal(st.supported, THOTH_COAL_RX_FRAMES | THOTH_COAL_ADAPTIVE_RX);
	unsigned refused = p.refused;
	bool reason = false;
	for (size_t i = 0; i < seen->n; i++)
		if (seen->c[i].err)
			reason |= strstr(seen->c[i].why, "Operation not supported") != NULL;
	assert_true(reason);
	traffic_start(&tr);
	test_loop_until(loop, moderating, &c, 2000);
	traffic_stop(&tr);
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	assert_int_equal(p.refused, refused);
	thoth_nicmod_stop(m);
	thoth_loop_free(loop);
	close(tr.fd);
	close(sink);
	free(seen);
}

/* ---- idle is idle --------------------------------------------------------- */

static void test_an_idle_interface_costs_no_timer_and_no_wake_up(void **state)
{
	(void)state;
	thoth_nicmod_record_t dev;
	thoth_nicmod_record_init(&dev, THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nicmod_config_t cfg = { .ifname = "lo", .policy = { .kind = THOTH_MOD_ADAPTIVE }, .sample_us = 1000,
				      .backend = thoth_nicmod_record_backend(&dev) };
	thoth_nicmod_t *m;
	char why[300];
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), 0);
	ctx_t c = { m, NULL };
	assert_true(test_loop_until(loop, went_idle, &c, 1000));
	/* Nothing flows on lo in this namespace: no timer is armed, and the
	 * loop sleeps through 300 ms woken only by the test's own timer. */
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	thoth_nicmod_stats_t before, after;
	thoth_nicmod_stats(m, &before);
	thoth_loop_stats_t l0, l1;
	thoth_loop_stats(loop, &l0);
	bool fired = false;
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, 300000000u, 0, test_loop_tick, &fired, &t);
	while (!fired)
		thoth_loop_run_once(loop, true);
	thoth_loop_stats(loop, &l1);
	thoth_nicmod_stats(m, &after);
	assert_int_equal(l1.wakeups - l0.wakeups, 1);
	assert_int_equal(after.samples, before.samples);
	assert_int_equal(after.wakes, before.wakes);
	thoth_nicmod_stop(m);
	thoth_loop_free(loop);
}

/* ---- rtnetlink encoding and parsing against fixtures ---------------------- */

static size_t newlink(uint8_t *b, uint32_t seq, int ifindex, bool stats, uint16_t stats_len)
{
	memset(b, 0, 512);
	size_t n = sizeof(struct nlmsghdr);
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	memcpy(b + n, &ifi, sizeof ifi);
	n += sizeof ifi;
	struct nlattr a = { .nla_len = 4 + 3, .nla_type = IFLA_IFNAME };
	memcpy(b + n, &a, 4);
	memcpy(b + n + 4, "lo", 3);
	n += 8;
	if (stats) {
		a = (struct nlattr){ .nla_len = (uint16_t)(4 + stats_len), .nla_type = IFLA_STATS64 };
		memcpy(b + n, &a, 4);
		uint64_t v[24] = { 11, 22, 3300, 4400 };
		memcpy(b + n + 4, v, stats_len < sizeof v ? stats_len : sizeof v);
		n += 4 + ((stats_len + 3u) & ~3u);
	}
	struct nlmsghdr h = { .nlmsg_len = (uint32_t)n, .nlmsg_type = RTM_NEWLINK, .nlmsg_seq = seq };
	memcpy(b, &h, sizeof h);
	return n;
}

static void test_link_counters_are_requested_and_parsed_exactly(void **state)
{
	(void)state;
	uint8_t b[512];
	size_t len;
	assert_int_equal(thoth_rtnl_build_getlink(b, sizeof b, 7, "thmod0", &len), 0);
	struct nlmsghdr h;
	memcpy(&h, b, sizeof h);
	assert_int_equal(h.nlmsg_len, len);
	assert_int_equal(h.nlmsg_type, RTM_GETLINK);
	assert_int_equal(h.nlmsg_flags, NLM_F_REQUEST);
	assert_int_equal(h.nlmsg_seq, 7);
	struct nlattr a;
	memcpy(&a, b + sizeof h + sizeof(struct ifinfomsg), 4);
	assert_int_equal(a.nla_type, IFLA_IFNAME);
	assert_int_equal(a.nla_len, 4 + 7);
	assert_memory_equal(b + sizeof h + sizeof(struct ifinfomsg) + 4, "thmod0", 7);
	assert_int_equal(thoth_rtnl_build_getlink(b, sizeof b, 7, "a-name-of-16-chr", &len), THOTH_E_INVAL);
	assert_int_equal(thoth_rtnl_build_getlink(b, 8, 7, "lo", &len), THOTH_E_NO_SPACE);

	thoth_link_stats_t st;
	char why[200];
	size_t n = newlink(b, 9, 1, true, 24 * 8);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 9, &st, why, sizeof why), 0);
	assert_int_equal(st.ifindex, 1);
	assert_int_equal(st.rx_packets, 11);
	assert_int_equal(st.tx_packets, 22);
	assert_int_equal(st.rx_bytes, 3300);
	assert_int_equal(st.tx_bytes, 4400);

	n = newlink(b, 9, 1, false, 0);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "no IFLA_STATS64"));
	n = newlink(b, 9, 1, true, 16);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "IFLA_STATS64 of 16 bytes"));
	n = newlink(b, 9, 1, true, 24 * 8);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 8, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "reply to request 9, we sent 8"));
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n - 4, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "outside the"));
	n = newlink(b, 9, 0, true, 24 * 8);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "interface index 0"));
	/* An attribute that claims more than is there. */
	n = newlink(b, 9, 1, true, 24 * 8);
	uint16_t huge = 2000;
	memcpy(b + sizeof(struct nlmsghdr) + sizeof(struct ifinfomsg), &huge, 2);
	assert_int_equal(thoth_rtnl_parse_link_stats(b, n, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "claims 2000 bytes"));
	/* The kernel's error: no such device. */
	struct { struct nlmsghdr h; int32_t err; } e = { { sizeof e, NLMSG_ERROR, 0, 9, 0 }, -ENODEV };
	assert_int_equal(thoth_rtnl_parse_link_stats((uint8_t *)&e, sizeof e, 9, &st, why, sizeof why),
			 THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "No such device"));
	assert_int_equal(thoth_rtnl_parse_link_stats(b, 3, 9, &st, why, sizeof why), THOTH_E_PROTOCOL);

	/* And the real kernel: lo in this namespace. */
	thoth_rtnl_t *rt;
	assert_int_equal(thoth_rtnl_open(&rt, why, sizeof why), 0);
	assert_int_equal(thoth_rtnl_link_stats(rt, "lo", &st, why, sizeof why), 0);
	assert_int_equal(st.ifindex, 1);
	assert_int_equal(thoth_rtnl_link_stats(rt, "nosuchif15", &st, why, sizeof why), THOTH_E_NOT_FOUND);
	thoth_rtnl_close(rt);
}

static void test_bad_configurations_are_refused_with_a_reason(void **state)
{
	(void)state;
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nicmod_record_t dev;
	thoth_nicmod_record_init(&dev, 0);
	thoth_nicmod_config_t cfg = { .ifname = "lo", .policy = { .kind = THOTH_MOD_ADAPTIVE },
				      .backend = thoth_nicmod_record_backend(&dev) };
	thoth_nicmod_t *m;
	char why[300];
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "no rx coalescing"));
	thoth_nicmod_record_init(&dev, THOTH_COAL_RX_USECS);
	cfg.ifname = "nosuchif15";
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_NOT_FOUND);
	cfg.ifname = "lo";
	cfg.sample_us = 10;
	assert_int_equal(thoth_nicmod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "sample period"));
	thoth_loop_free(loop);
}

int main(void)
{
	if (unshare(CLONE_NEWNET)) {
		printf("skipped: a network namespace of its own needs CAP_SYS_ADMIN (%s)\n", strerror(errno));
		return 77;
	}
	if (if_up("lo")) {
		printf("skipped: cannot bring lo up (%s)\n", strerror(errno));
		return 77;
	}
	int p = socket(AF_PACKET, SOCK_RAW, 0);
	if (p < 0) {
		printf("skipped: packet sockets need CAP_NET_RAW (%s)\n", strerror(errno));
		return 77;
	}
	close(p);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_link_counters_are_requested_and_parsed_exactly),
		cmocka_unit_test(test_bad_configurations_are_refused_with_a_reason),
		cmocka_unit_test(test_an_idle_interface_costs_no_timer_and_no_wake_up),
		cmocka_unit_test(test_the_loop_applies_what_the_policy_computes_from_the_measured_rate),
		cmocka_unit_test(test_dim_drives_the_device_through_net_dims_profiles),
		cmocka_unit_test(test_a_refused_parameter_is_dropped_and_the_rest_still_driven),
		cmocka_unit_test(test_a_tun_devices_rx_frames_follow_its_live_traffic),
#ifdef NIC_MODERATOR
		cmocka_unit_test(test_the_nic_moderator_service_drives_a_tun_device),
#endif
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
