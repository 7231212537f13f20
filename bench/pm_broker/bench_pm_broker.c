/*
 * bench_pm_broker - the power broker measured through a real thothd
 * (PM-1; docs/BENCHMARKS.md "Power broker"), each figure next to its
 * baseline from the same run:
 *   1. baseline: Daemon.status round trip on the same control socket;
 *   2. lease call on an element already at the level (broker bookkeeping);
 *   3. lease grant: lease() until the SATISFIED event, through a driver
 *      (a thread of this program on its own connection) whose levels have
 *      0 µs latency: lease -> set_level push -> level_reached -> status push;
 *   4. kill -9 of a holder: until it is dead and reaped (the kernel's part:
 *      its socket is closed then), and from there until thothd shows its
 *      lease gone (polled with state(): includes one round trip);
 * (The broker core alone, without thothd: fuzz/pm/pm_broker_soak prints ops/s.)
 * Medians of many runs; ratios to the baseline round trip.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pm.thoth.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double median_us(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return v[n / 2] / 1e3;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench_pm_broker: %s: %s\n", what, thoth_strerror(r));
	exit(1);
}

/* ---- a zero-latency driver on its own connection ------------------------------- */

typedef struct drv {
	thoth_control_t ctl;
	uint8_t pending[4096];
	size_t pending_len;
	volatile int stop;
} drv_t;

static void drv_event(void *arg, const uint8_t *msg, size_t len)
{
	drv_t *d = arg;
	if (len <= sizeof d->pending) {
		memcpy(d->pending, msg, len);
		d->pending_len = len;
	}
}

static void *drv_main(void *arg)
{
	drv_t *d = arg;
	while (!d->stop) {
		/* An event may have arrived during the last level_reached call. */
		if (!d->pending_len && thoth_sock_client_poll_event(&d->ctl.sock, 50) <= 0)
			continue;
		if (!d->pending_len)
			continue;
		uint64_t scratch[64];
		thoth_arena_t arena;
		thoth_arena_init(&arena, scratch, sizeof scratch);
		thoth_pm_PowerEvents_set_level_req_t ev;
		size_t len = d->pending_len;
		d->pending_len = 0;
		if (thoth_pm_PowerEvents_set_level_req_decode_msg(d->pending, len, &ev, &arena))
			continue;
		thoth_pm_PowerBroker_level_reached_req_t req = { .element = ev.element, .level = ev.to };
		thoth_pm_PowerBroker_level_reached_resp_t resp;
		thoth_pm_PowerBroker_level_reached(&d->ctl.client, &req, &resp, NULL);
	}
	return NULL;
}

typedef struct holder {
	thoth_control_t ctl;
	int satisfied;
} holder_t;

static void holder_event(void *arg, const uint8_t *msg, size_t len)
{
	holder_t *h = arg;
	uint64_t scratch[32];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerEvents_lease_status_req_t ev;
	if (!thoth_pm_PowerEvents_lease_status_req_decode_msg(msg, len, &ev, &arena) &&
	    ev.status == THOTH_PM_LEASE_STATUS_SATISFIED)
		h->satisfied++;
}

static uint32_t lease_count(thoth_control_t *ctl)
{
	static uint64_t scratch[1 << 13];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t resp;
	int r = thoth_pm_PowerBroker_state(&ctl->client, &req, &resp, &arena);
	if (r)
		die("state", r);
	return resp.leases.count;
}

int main(int argc, char **argv)
{
	if (argc > 1) {         /* it takes none: junk is not "run everything" */
		fprintf(stderr, "usage: bench_pm_broker   (no arguments; %s?)\n", argv[1]);
		return 2;
	}
	enum { N = 2001, KILLS = 31 };
	static uint64_t base[N], call[N], grant[N], kills[KILLS], deaths[KILLS];
	harness_t h;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0)
		die("start thothd", THOTH_E_IO);
	static drv_t d;
	static holder_t c;
	int r = harness_connect(&h, &d.ctl);
	if (!r)
		r = harness_connect(&h, &c.ctl);
	if (r)
		die("connect", r);
	d.ctl.sock.on_event = drv_event;
	d.ctl.sock.event_arg = &d;
	c.ctl.sock.on_event = holder_event;
	c.ctl.sock.event_arg = &c;
	thoth_pm_Level_t lv[2] = { { .name = thoth_str("OFF") }, { .name = thoth_str("ON"), .power_mw = 1 } };
	thoth_pm_Element_t el = { .name = thoth_str("dev"), .levels = { lv, 2 } };
	thoth_pm_PowerBroker_declare_req_t dreq = { .elements = { &el, 1 } };
	thoth_pm_PowerBroker_declare_resp_t dresp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	if ((r = thoth_pm_PowerBroker_declare(&d.ctl.client, &dreq, &dresp, &arena)))
		die("declare", r);
	pthread_t t;
	pthread_create(&t, NULL, drv_main, &d);

	for (int i = 0; i < N; i++) {
		thoth_daemon_Daemon_status_resp_t st;
		uint64_t t0 = now_ns();
		if ((r = harness_status(&c.ctl, &st)))
			die("status", r);
		base[i] = now_ns() - t0;
	}
	for (int i = 0; i < N; i++) {
		thoth_pm_PowerBroker_lease_req_t lreq = { .element = thoth_str("dev"), .level = 0 };
		thoth_pm_PowerBroker_lease_resp_t lresp;
		uint64_t t0 = now_ns();
		if ((r = thoth_pm_PowerBroker_lease(&c.ctl.client, &lreq, &lresp, NULL)))
			die("lease", r);
		call[i] = now_ns() - t0;
		thoth_pm_PowerBroker_drop_req_t dr = { .lease = lresp.lease };
		thoth_pm_PowerBroker_drop_resp_t drr;
		thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &drr, NULL);
	}
	for (int i = 0; i < N; i++) {
		/* wait for the element to be back at OFF (no lease): state() */
		thoth_pm_PowerBroker_lease_req_t lreq = { .element = thoth_str("dev"), .level = 1 };
		thoth_pm_PowerBroker_lease_resp_t lresp;
		int before = c.satisfied;
		uint64_t t0 = now_ns();
		if ((r = thoth_pm_PowerBroker_lease(&c.ctl.client, &lreq, &lresp, NULL)))
			die("lease", r);
		while (lresp.status != THOTH_PM_LEASE_STATUS_SATISFIED && c.satisfied == before)
			if (thoth_sock_client_poll_event(&c.ctl.sock, 1000) < 0)
				die("wait satisfied", THOTH_E_IO);
		grant[i] = now_ns() - t0;
		thoth_pm_PowerBroker_drop_req_t dr = { .lease = lresp.lease };
		thoth_pm_PowerBroker_drop_resp_t drr;
		thoth_pm_PowerBroker_drop(&c.ctl.client, &dr, &drr, NULL);
		usleep(200);    /* let the driver thread bring it down before the next grant */
	}
	for (int i = 0; i < KILLS; i++) {
		int p[2];
		if (pipe(p))
			die("pipe", THOTH_E_IO);
		pid_t pid = fork();
		if (pid == 0) {
			holder_t k;
			memset(&k, 0, sizeof k);
			if (thoth_control_connect(&k.ctl, h.dir, 2000))
				_exit(1);
			thoth_pm_PowerBroker_lease_req_t lreq = { .element = thoth_str("dev"), .level = 0 };
			thoth_pm_PowerBroker_lease_resp_t lresp;
			if (thoth_pm_PowerBroker_lease(&k.ctl.client, &lreq, &lresp, NULL) || write(p[1], "k", 1) != 1)
				_exit(1);
			for (;;)
				pause();
		}
		char b;
		if (read(p[0], &b, 1) != 1)
			die("holder", THOTH_E_IO);
		close(p[0]);
		close(p[1]);
		uint64_t t0 = now_ns();
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);  /* dead and reaped: its socket is closed */
		uint64_t t1 = now_ns();
		while (lease_count(&c.ctl))
			;
		deaths[i] = t1 - t0;
		kills[i] = now_ns() - t1;
	}
	d.stop = 1;
	pthread_join(t, NULL);
	thoth_control_close(&d.ctl);
	thoth_control_close(&c.ctl);
	harness_teardown(&h);

	double b = median_us(base, N);
	double lc = median_us(call, N), lg = median_us(grant, N), kl = median_us(kills, KILLS),
	       kd = median_us(deaths, KILLS);
	printf("baseline  Daemon.status round trip          p50 %8.1f us\n", b);
	printf("lease()   on a satisfied level              p50 %8.1f us  (%.2fx baseline)\n", lc, lc / b);
	printf("lease grant through a 0-latency driver      p50 %8.1f us  (%.2fx baseline)\n", lg, lg / b);
	printf("kill -9 -> holder dead and reaped (kernel)  p50 %8.1f us  (%d kills)\n", kd, KILLS);
	printf("holder dead -> lease gone in thothd         p50 %8.1f us  (%.2fx baseline; polled with state())\n",
	       kl, kl / b);
	return 0;
}
