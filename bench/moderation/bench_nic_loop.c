/*
 * bench_nic_loop - what the NIC coalescing loop (kernel/pm/moderation_nic.c)
 * costs and how fast it follows traffic, on a real tun device driven
 * through ethtool netlink, in a network namespace of its own.
 *
 *   bench_nic_loop [--phase-ms N (1000)] [--runs N (3)]
 *
 * Four phases: idle, 1k packets/s, as fast as one thread writes, idle.
 * For each: the loop's wake-ups per second, against the baseline in the
 * same run: a periodic sampler (the same counters and policy every 10 ms,
 * whether or not packets flow: what a loop without the packet-socket
 * wake-up must do).  Also the reaction time from the start of the fast
 * phase to the moderated setting read back from the device, and from its
 * end to the unmoderated one.  Medians over the runs.  Needs CAP_SYS_ADMIN
 * and CAP_NET_RAW (else it says so and exits 0).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moderation_nic.h"
#include "thoth/loop.h"

enum { PHASES = 4, MAX_RUNS = 15 };
static const char *const phase_name[PHASES] = { "idle", "1k pkt/s", "max rate", "idle after" };
static const unsigned phase_rate[PHASES] = { 0, 1000, UINT32_MAX, 0 };

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

static uint8_t pkt[60] = { 0x45, 0, 0, 60, 0, 0, 0, 0, 64, 17, 0, 0, 10, 15, 0, 1, 10, 15, 0, 2, 0, 9, 0, 9, 0, 40 };

typedef struct gen {
	int fd;
	_Atomic unsigned rate;      /* 0: quiet, UINT32_MAX: as fast as possible */
	atomic_bool stop;
	atomic_ulong sent;
} gen_t;

static void *gen_main(void *arg)
{
	gen_t *g = arg;
	uint64_t t0 = thoth_clock_now(), n0 = 0;
	unsigned last = 0;
	while (!atomic_load(&g->stop)) {
		unsigned r = atomic_load(&g->rate);
		if (r != last) {
			t0 = thoth_clock_now();
			n0 = 0;
			last = r;
		}
		if (!r) {
			usleep(1000);
			continue;
		}
		if (r != UINT32_MAX && n0 >= (thoth_clock_now() - t0) * r / 1000000000u) {
			usleep(200);
			continue;
		}
		if (write(g->fd, pkt, sizeof pkt) > 0) {
			n0++;
			atomic_fetch_add(&g->sent, 1);
		}
	}
	return NULL;
}

/* ---- the baseline: a periodic sampler ------------------------------------ */

typedef struct periodic {
	thoth_rtnl_t *rt;
	thoth_mod_t pol;
	thoth_timer_t *t;
	uint64_t ticks;
} periodic_t;

static void periodic_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	periodic_t *p = arg;
	thoth_link_stats_t st;
	if (!thoth_rtnl_link_stats(p->rt, "bnic0", &st, NULL, 0)) {
		p->ticks++;
		thoth_mod_sample_t s = { thoth_clock_now(), p->ticks * 64, st.rx_packets, st.rx_bytes };
		thoth_mod_update(&p->pol, &s);
	}
	thoth_timer_rearm(loop, t, thoth_clock_now() + 10000000u, 1250000u);
}

/* ---- one run ----------------------------------------------------------------- */

typedef struct seen {
	uint64_t up_ns, down_ns;    /* first moderated / unmoderated change after the marks */
	uint64_t mark_up, mark_down;
	uint32_t readback_frames;
} seen_t;

static void on_change(void *arg, const thoth_nicmod_change_t *c)
{
	seen_t *s = arg;
	bool mod = thoth_mod_profile_defers(c->profile);
	if (mod && s->mark_up && !s->up_ns && c->time_ns >= s->mark_up) {
		s->up_ns = c->time_ns - s->mark_up;
		s->readback_frames = c->readback.rx_frames;
	}
}

static void boundary(thoth_loop_t *l, thoth_timer_t *t, void *a)
{
	(void)l;
	(void)t;
	*(bool *)a = true;
}

/* Run LOOP for MS milliseconds; its wake-ups in that time, less the one
 * that ends it.  With M and SEEN: when M went idle (device unmoderated). */
static uint64_t run_phase(thoth_loop_t *loop, unsigned ms, thoth_nicmod_t *m, seen_t *seen)
{
	thoth_loop_stats_t a, b;
	thoth_loop_stats(loop, &a);
	bool done = false;
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, (uint64_t)ms * 1000000u, 0, boundary, &done, &t);
	while (!done) {
		thoth_loop_run_once(loop, true);
		thoth_nicmod_stats_t st;
		if (m && seen && !seen->down_ns) {
			thoth_nicmod_stats(m, &st);
			if (!st.busy)
				seen->down_ns = thoth_clock_now() - seen->mark_down;
		}
	}
	thoth_loop_stats(loop, &b);
	return b.wakeups - a.wakeups - 1;
}

static int one_run(gen_t *g, bool baseline, unsigned ms, double per_s[PHASES], seen_t *seen)
{
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return -1;
	char why[300];
	thoth_ethtool_t *eth = NULL;
	thoth_nicmod_t *m = NULL;
	periodic_t p = { 0 };
	thoth_mod_config_t pol = { .kind = THOTH_MOD_ADAPTIVE };
	memset(seen, 0, sizeof *seen);
	if (baseline) {
		if (thoth_rtnl_open(&p.rt, why, sizeof why))
			return -1;
		thoth_mod_init(&p.pol, &pol);
		thoth_loop_add_timer_in(loop, 10000000u, 1250000u, periodic_tick, &p, &p.t);
	} else {
		if (thoth_ethtool_open(&eth, why, sizeof why)) {
			printf("bench_nic_loop: ethtool netlink: %s\n", why);
			return -1;
		}
		thoth_nicmod_config_t cfg = { .ifname = "bnic0", .policy = pol, .sample_us = 10000,
					      .backend = thoth_nicmod_ethtool_backend(eth), .on_change = on_change,
					      .arg = seen };
		if (thoth_nicmod_start(loop, &cfg, &m, why, sizeof why)) {
			printf("bench_nic_loop: %s\n", why);
			return -1;
		}
	}
	for (int ph = 0; ph < PHASES; ph++) {
		atomic_store(&g->rate, phase_rate[ph]);
		if (ph == 2)
			seen->mark_up = thoth_clock_now();
		if (ph == 3)
			seen->mark_down = thoth_clock_now();
		per_s[ph] = (double)run_phase(loop, ms, m, ph == 3 ? seen : NULL) * 1000.0 / ms;
	}
	atomic_store(&g->rate, 0);
	if (m)
		thoth_nicmod_stop(m);
	if (p.t)
		thoth_timer_cancel(loop, p.t);
	thoth_rtnl_close(p.rt);
	thoth_ethtool_close(eth);
	thoth_loop_free(loop);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

int main(int argc, char **argv)
{
	unsigned ms = 1000;
	int runs = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--phase-ms") && i + 1 < argc)
			ms = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_nic_loop [--phase-ms N] [--runs N]\n");
			return 2;
		}
	}
	if (ms < 100 || ms > 60000 || runs < 1 || runs > MAX_RUNS) {
		fprintf(stderr, "bench_nic_loop: --phase-ms 100..60000, --runs 1..%d\n", MAX_RUNS);
		return 2;
	}
	if (unshare(CLONE_NEWNET) || if_up("lo")) {
		printf("bench_nic_loop: skipped: a network namespace of its own needs CAP_SYS_ADMIN (%s)\n",
		       strerror(errno));
		return 0;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "bnic0");
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) || if_up("bnic0")) {
		printf("bench_nic_loop: skipped: no tun device (%s)\n", strerror(errno));
		return 0;
	}
	gen_t g = { .fd = fd };
	pthread_t t;
	pthread_create(&t, NULL, gen_main, &g);
	double loopw[PHASES][MAX_RUNS], basew[PHASES][MAX_RUNS], up[MAX_RUNS], down[MAX_RUNS];
	uint32_t frames = 0;
	for (int r = 0; r < runs; r++) {
		double a[PHASES], b[PHASES];
		seen_t s, sb;
		if (one_run(&g, false, ms, a, &s) || one_run(&g, true, ms, b, &sb)) {
			atomic_store(&g.stop, true);
			pthread_join(t, NULL);
			return 1;
		}
		for (int ph = 0; ph < PHASES; ph++) {
			loopw[ph][r] = a[ph];
			basew[ph][r] = b[ph];
		}
		up[r] = s.up_ns / 1e6;
		down[r] = s.down_ns / 1e6;
		frames = s.readback_frames;
	}
	atomic_store(&g.stop, true);
	pthread_join(t, NULL);
	printf("bench_nic_loop: tun device, ETHTOOL_MSG_COALESCE_SET rx-frames, adaptive policy, 10 ms samples; "
	       "%d runs of %u ms per phase, medians; %lu packets written\n",
	       runs, ms, (unsigned long)atomic_load(&g.sent));
	printf("%-12s %18s %26s %8s\n", "phase", "nic loop wake-ups/s", "periodic sampler wake-ups/s", "ratio");
	for (int ph = 0; ph < PHASES; ph++) {
		double a = median(loopw[ph], runs), b = median(basew[ph], runs);
		printf("%-12s %18.1f %26.1f %8.2f\n", phase_name[ph], a, b, b > 0 ? a / b : 0);
	}
	printf("reaction: moderated setting applied %.1f ms after the fast phase began (device reads back "
	       "rx-frames %u); idle again, device unmoderated, %.1f ms after it ended\n",
	       median(up, runs), frames, median(down, runs));
	close(fd);
	return 0;
}
