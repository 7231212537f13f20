/*
 * iox_baseline.c - iceoryx (Debian's libiceoryx-binding-c-dev) publish /
 * subscribe ping-pong, the zero-copy baseline of bench_channel.
 *
 * Two forked processes (each with its own iceoryx runtime: a runtime cannot
 * survive a fork) exchange a sample on "thoth/bench/ping" and one back on
 * "thoth/bench/pong"; one-way latency is half the round trip, as iceoryx's
 * own latency benchmark reports it.  The receiver either polls
 * (iox_sub_take_chunk in a loop: iceoryx's busy-waiting mode) or sleeps in a
 * waitset.  iox-roudi, iceoryx's broker, is started by bench_iox_start().
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/subscriber.h"
#include "iceoryx_binding_c/wait_set.h"
#include "rt_baseline.h"

static pid_t roudi = -1;
static unsigned generation;

int bench_iox_start(void)
{
	if (access("/usr/bin/iox-roudi", X_OK) != 0)
		return -1;
	fflush(stdout);                 /* freopen in the child would write our buffer again */
	roudi = fork();
	if (roudi < 0)
		return -1;
	if (roudi == 0) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execl("/usr/bin/iox-roudi", "iox-roudi", (char *)NULL);
		_exit(127);
	}
	usleep(1500000);                /* RouDi creates its shared memory */
	int status;
	if (waitpid(roudi, &status, WNOHANG) == roudi) {
		roudi = -1;
		return -1;
	}
	return 0;
}

void bench_iox_stop(void)
{
	if (roudi > 0) {
		kill(roudi, SIGTERM);
		waitpid(roudi, NULL, 0);
		roudi = -1;
	}
}

typedef struct side {
	iox_pub_storage_t pub_storage;
	iox_sub_storage_t sub_storage;
	iox_ws_storage_t ws_storage;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
	bool wait;
} side_t;

static void side_init(side_t *s, const char *name, const char *tx, const char *rx, bool wait)
{
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
	iox_pub_options_t po;
	iox_pub_options_init(&po);
	s->pub = iox_pub_init(&s->pub_storage, "thoth", "bench", tx, &po);
	iox_sub_options_t so;
	iox_sub_options_init(&so);
	so.queueCapacity = 4;
	s->sub = iox_sub_init(&s->sub_storage, "thoth", "bench", rx, &so);
	s->wait = wait;
	if (wait) {
		s->ws = iox_ws_init(&s->ws_storage);
		iox_ws_attach_subscriber_state(s->ws, s->sub, SubscriberState_HAS_DATA, 0, NULL);
	}
}

static void side_fini(side_t *s)
{
	if (s->wait) {
		iox_ws_detach_subscriber_state(s->ws, s->sub, SubscriberState_HAS_DATA);
		iox_ws_deinit(s->ws);
	}
	iox_sub_deinit(s->sub);
	iox_pub_deinit(s->pub);
	iox_runtime_shutdown();
}

/* The next sample, or NULL once DEADLINE (CLOCK_MONOTONIC ns) has passed:
 * a lost sample must end the measurement, not hang it. */
static const void *take(side_t *s, uint64_t deadline)
{
	const void *p;
	for (unsigned n = 0;; n++) {
		if (iox_sub_take_chunk(s->sub, &p) == ChunkReceiveResult_SUCCESS)
			return p;
		if (s->wait) {
			iox_notification_info_t info[2];
			uint64_t missed;
			struct timespec ts = { 0, 100000000 };
			iox_ws_timed_wait(s->ws, ts, info, 2, &missed);
		} else {
			__builtin_ia32_pause();
		}
		if ((s->wait || n % 4096 == 0) && bench_now_ns() > deadline)
			return NULL;
	}
}

static int send(side_t *s, size_t payload, uint8_t mark)
{
	void *chunk;
	if (iox_pub_loan_chunk(s->pub, &chunk, (uint32_t)payload) != AllocationResult_SUCCESS)
		return -1;
	((uint8_t *)chunk)[0] = mark;
	((uint8_t *)chunk)[payload - 1] = mark;
	iox_pub_publish_chunk(s->pub, chunk);
	return 0;
}

static bool connected(side_t *s)
{
	return iox_pub_has_subscribers(s->pub) &&
	       iox_sub_get_subscription_state(s->sub) == SubscribeState_SUBSCRIBED;
}

int bench_iox_rt(size_t payload, bool wait, unsigned warmup, unsigned iters, int cpu_client,
		 int cpu_server, bench_rt_result_t *out)
{
	if (roudi <= 0 || payload < 2)
		return -1;
	unsigned gen = ++generation;
	fflush(stdout);                 /* the children must not print our buffer again */
	int res[2], cpu[2], stop[2];
	if (pipe(res) || pipe(cpu) || pipe(stop))
		return -1;
	pid_t pong = fork();
	if (pong == 0) {
		close(res[0]);
		close(cpu[0]);
		close(stop[1]);
		bench_pin_cpu(cpu_server);
		char name[64];
		snprintf(name, sizeof name, "thoth-pong-%d-%u", (int)getppid(), gen);
		side_t s;
		memset(&s, 0, sizeof s);
		side_init(&s, name, "pong", "ping", wait);
		for (int i = 0; i < 5000 && !connected(&s); i++)
			usleep(1000);
		uint64_t deadline = bench_now_ns() + 60000000000ull;
		uint64_t c0 = bench_cpu_ns();
		for (unsigned i = 0; i < warmup + iters; i++) {
			if (i == warmup)
				c0 = bench_cpu_ns();
			const uint8_t *p = take(&s, deadline);
			if (!p)
				_exit(1);
			uint8_t mark = p[payload - 1];
			iox_sub_release_chunk(s.sub, p);
			while (send(&s, 64, mark))
				usleep(100);
		}
		uint64_t used = bench_cpu_ns() - c0;
		ssize_t w = write(cpu[1], &used, sizeof used);
		char b;
		ssize_t r = read(stop[0], &b, 1);   /* keep the publisher until ping is done */
		(void)w;
		(void)r;
		side_fini(&s);
		_exit(0);
	}
	pid_t ping = fork();
	if (ping == 0) {
		close(res[0]);
		close(cpu[0]);
		bench_pin_cpu(cpu_client);
		char name[64];
		snprintf(name, sizeof name, "thoth-ping-%d-%u", (int)getppid(), gen);
		side_t s;
		memset(&s, 0, sizeof s);
		side_init(&s, name, "ping", "pong", wait);
		for (int i = 0; i < 5000 && !connected(&s); i++)
			usleep(1000);
		double *lat = calloc(iters, sizeof *lat);
		uint64_t t_start = 0, c_start = 0, deadline = bench_now_ns() + 60000000000ull;
		for (unsigned i = 0; i < warmup + iters; i++) {
			if (i == warmup) {
				t_start = bench_now_ns();
				c_start = bench_cpu_ns();
			}
			uint64_t t0 = bench_now_ns();
			while (send(&s, payload, (uint8_t)i))
				usleep(100);
			const void *p = take(&s, deadline);
			if (!p) {
				fprintf(stderr, "bench: iceoryx ping-pong lost a sample (no reply in 60 s)\n");
				_exit(1);
			}
			iox_sub_release_chunk(s.sub, p);
			if (i >= warmup)
				lat[i - warmup] = (double)(bench_now_ns() - t0);
		}
		uint64_t elapsed = bench_now_ns() - t_start, used = bench_cpu_ns() - c_start;
		bench_rt_result_t r = {
			.p50_ns = bench_percentile(lat, iters, 50),
			.p99_ns = bench_percentile(lat, iters, 99),
			.msgs_per_s = iters / (elapsed / 1e9),
			.client_cpu_ns = (double)used / iters,
		};
		ssize_t w = write(res[1], &r, sizeof r);
		(void)w;
		side_fini(&s);
		_exit(0);
	}
	close(res[1]);
	close(cpu[1]);
	close(stop[0]);
	uint64_t pong_cpu = 0;
	bench_rt_result_t r;
	int rc = -1;
	if (read(res[0], &r, sizeof r) == sizeof r &&
	    read(cpu[0], &pong_cpu, sizeof pong_cpu) == sizeof pong_cpu) {
		r.server_cpu_ns = (double)pong_cpu / iters;
		*out = r;
		rc = 0;
	} else {
		kill(ping, SIGKILL);    /* one side gave up: do not wait for the other's deadline */
		kill(pong, SIGKILL);
	}
	close(stop[1]);
	close(res[0]);
	close(cpu[0]);
	waitpid(ping, NULL, 0);
	waitpid(pong, NULL, 0);
	return rc;
}
