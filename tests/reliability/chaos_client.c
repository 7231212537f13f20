/*
 * chaos_client.c - steady load for test_chaos: a client of one kind that
 * reports every attempt on stdout, one line each, so the test can tell a
 * call that was answered, one that failed (and how), and one that hangs
 * (no line for longer than the call's deadline).
 *
 *   chaos_client DIR echo|kv DEADLINE_MS   calls every 20 ms through a
 *       resolver (the instances thothd pushes); each attempt prints
 *       "ok MS", "err MS NAME" (the call failed: NAME is the error's name)
 *       or "none" (no instance known); kv also checks what it reads back
 *       ("bad MS" when it differs from what it put)
 *   chaos_client DIR status DEADLINE_MS  calls thothd itself (Daemon.status)
 *       every 20 ms on one control connection, made again after a failure;
 *       reports as the others ("err MS NAME" while thothd is away)
 *   chaos_client DIR lease ELEMENT LEVEL  takes an assertive lease through
 *       thothd's PowerBroker, prints "lease ID STATUS", holds it, takes a
 *       new one when it is LOST (the element's driver died: asked again
 *       every 20 ms while the element is gone), until thothd's side closes
 *       ("thothd gone", exit 3)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <time.h>

#include "daemon.thoth.h"
#include "echo.thoth.h"
#include "kv.thoth.h"
#include "pm.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"

#define TICK_NS (20ull * 1000000ull)

typedef struct load {
	const char *kind;
	int deadline_ms;
	thoth_resolver_t *resolver;
	char addr[108];
	thoth_chan_t *ch;
	uint64_t n;
} load_t;

static void drop_channel(load_t *s)
{
	thoth_chan_close(s->ch);        /* NULL-safe */
	s->ch = NULL;
	if (s->addr[0])
		thoth_resolver_forget(s->resolver, s->addr);
	s->addr[0] = 0;
}

/* One call of the kind, on S->ch: 0, a negative THOTH_E_*, or 1 when kv
 * read back something else than it put. */
static int call_once(load_t *s)
{
	thoth_client_t *c = thoth_chan_client(s->ch);
	char payload[64];
	int len = snprintf(payload, sizeof payload, "chaos %d %llu", (int)getpid(), (unsigned long long)s->n);
	if (!strcmp(s->kind, "echo")) {
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = (const uint8_t *)payload, .len = (uint32_t)len } };
		thoth_echo_Echo_echo_resp_t resp;
		int r = thoth_echo_Echo_echo(c, &req, &resp, NULL);
		if (r)
			return r;
		return resp.data.len == (uint32_t)len && !memcmp(resp.data.ptr, payload, (size_t)len) ? 0 : 1;
	}
	char key[32];
	snprintf(key, sizeof key, "k%d", (int)getpid());
	example_kv_Kv_put_req_t put = { .key = thoth_str(key),
					.value = { .ptr = (const uint8_t *)payload, .len = (uint32_t)len } };
	example_kv_Kv_put_resp_t put_resp;
	int r = example_kv_Kv_put(c, &put, &put_resp, NULL);
	if (r)
		return r;
	example_kv_Kv_get_req_t get = { .key = thoth_str(key) };
	example_kv_Kv_get_resp_t got;
	r = example_kv_Kv_get(c, &get, &got, NULL);
	if (r)
		return r;
	return got.value.len == (uint32_t)len && !memcmp(got.value.ptr, payload, (size_t)len) ? 0 : 1;
}

static void tick(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	load_t *s = arg;
	s->n++;
	uint64_t t0 = thoth_clock_now();
	int r = 0;
	if (!s->ch) {
		thoth_resolved_t e;
		if (thoth_resolver_pick(s->resolver, &e)) {
			printf("none\n");
			goto out;
		}
		snprintf(s->addr, sizeof s->addr, "%s", e.addr);
		thoth_chan_config_t cfg = {
			.iface = !strcmp(s->kind, "echo") ? &thoth_echo_Echo_info : &example_kv_Kv_info,
			.timeout_ms = s->deadline_ms, .handshake_timeout_ms = (uint32_t)s->deadline_ms,
		};
		char why[300];
		r = thoth_chan_connect(s->addr, &cfg, &s->ch, why, sizeof why);
		if (r) {
			s->ch = NULL;
			printf("err %llu %s connect: %s\n", (unsigned long long)((thoth_clock_now() - t0) / 1000000),
			       thoth_errname(r), why);
			drop_channel(s);
			goto out;
		}
	}
	r = call_once(s);
	unsigned long long ms = (thoth_clock_now() - t0) / 1000000;
	if (r == 0)
		printf("ok %llu\n", ms);
	else if (r == 1)
		printf("bad %llu\n", ms);
	else
		printf("err %llu %s\n", ms, thoth_errname(r));
	if (r)
		drop_channel(s);
out:
	fflush(stdout);
	thoth_timer_rearm(loop, timer, thoth_clock_now() + TICK_NS, TICK_NS / 10);
}

static void on_term(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

static int run_load(const char *dir, const char *kind, int deadline_ms)
{
	load_t s = { .kind = kind, .deadline_ms = deadline_ms };
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_term, NULL);
	thoth_resolver_config_t cfg = { .runtime_dir = dir, .name = kind };
	if (thoth_resolver_new(loop, &cfg, &s.resolver))
		return 1;
	thoth_timer_t *t;
	if (thoth_loop_add_timer(loop, thoth_clock_now() + TICK_NS, TICK_NS / 10, tick, &s, &t))
		return 1;
	thoth_loop_run(loop);
	drop_channel(&s);
	thoth_resolver_free(s.resolver);
	thoth_loop_free(loop);
	return 0;
}

/* SIGTERM in the lease and status modes (no loop of their own): noticed
 * between calls, so they end by returning from main and LeakSanitizer
 * runs on them under ASan (a death by SIGTERM skipped it). */
static volatile sig_atomic_t term;

static void on_sigterm(int sig)
{
	(void)sig;
	term = 1;
}

static void catch_sigterm(void)
{
	struct sigaction sa = { .sa_handler = on_sigterm };        /* no SA_RESTART: a sleep ends */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
}

typedef struct holder {
	thoth_control_t ctl;
	uint64_t lease;
	bool lost;
} holder_t;

/* PowerEvents.lease_status pushed to us: LOST (the driver died) means the
 * lease is gone; a holder that still wants the level asks again. */
static void on_push(void *arg, const uint8_t *msg, size_t len)
{
	holder_t *h = arg;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerEvents_lease_status_req_t ev;
	if (!thoth_pm_PowerEvents_lease_status_req_decode_msg(msg, len, &ev, &arena) && ev.lease == h->lease &&
	    ev.status == THOTH_PM_LEASE_STATUS_LOST)
		h->lost = true;
}

static int run_lease(const char *dir, const char *element, uint32_t level)
{
	holder_t h = { .lost = true };
	int r = thoth_control_connect(&h.ctl, dir, 2000);
	if (r) {
		printf("err connect %s\n", thoth_errname(r));
		return 1;
	}
	h.ctl.sock.on_event = on_push;
	h.ctl.sock.event_arg = &h;
	while (!term) {
		if (h.lost) {
			/* While the element's driver is away (restarting): NotFound */
			thoth_pm_PowerBroker_lease_req_t req = { .element = thoth_str(element), .level = level,
								 .kind = THOTH_PM_LEASE_KIND_ASSERTIVE };
			thoth_pm_PowerBroker_lease_resp_t resp;
			r = thoth_pm_PowerBroker_lease(&h.ctl.client, &req, &resp, NULL);
			if (!r) {
				h.lease = resp.lease;
				h.lost = false;
				printf("lease %llu %u\n", (unsigned long long)resp.lease, (unsigned)resp.status);
				fflush(stdout);
			} else if (r != THOTH_E_REMOTE) {
				break;
			}
		}
		/* 100 ms, not for ever: a SIGTERM is seen within it (the wait
		 * goes on through EINTR) */
		r = thoth_sock_client_poll_event(&h.ctl.sock, h.lost ? 20 : 100);
		if (r < 0)
			break;
	}
	thoth_control_close(&h.ctl);
	if (term)
		return 0;
	printf("thothd gone: %s\n", thoth_errname(r));
	return 3;
}

static uint64_t now_ms(void)
{
	return thoth_clock_now() / 1000000;
}

static int run_status(const char *dir, int deadline_ms)
{
	thoth_control_t ctl;
	bool open = false;
	while (!term) {     /* until SIGTERM or SIGKILL */
		uint64_t t0 = now_ms();
		int r = 0;
		if (!open) {
			r = thoth_control_connect(&ctl, dir, deadline_ms);
			open = r == 0;
			if (open)
				ctl.sock.timeout_ms = deadline_ms;
		}
		if (open) {
			thoth_daemon_Daemon_status_req_t req = { 0 };
			thoth_daemon_Daemon_status_resp_t st;
			r = thoth_daemon_Daemon_status(&ctl.client, &req, &st, NULL);
			if (r) {
				thoth_control_close(&ctl);
				open = false;
			}
		}
		if (r)
			printf("err %llu %s\n", (unsigned long long)(now_ms() - t0), thoth_errname(r));
		else
			printf("ok %llu\n", (unsigned long long)(now_ms() - t0));
		fflush(stdout);
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	}
	if (open)
		thoth_control_close(&ctl);
	return 0;
}

int main(int argc, char **argv)
{
	catch_sigterm();        /* the echo and kv loads stop through their loop's signalfd */
	if (argc == 4 && !strcmp(argv[2], "status"))
		return run_status(argv[1], atoi(argv[3]));
	if (argc == 4 && (!strcmp(argv[2], "echo") || !strcmp(argv[2], "kv")))
		return run_load(argv[1], argv[2], atoi(argv[3]));
	if (argc == 5 && !strcmp(argv[2], "lease"))
		return run_lease(argv[1], argv[3], (uint32_t)atoi(argv[4]));
	fprintf(stderr, "usage: chaos_client DIR echo|kv|status DEADLINE_MS | DIR lease ELEMENT LEVEL\n");
	return 2;
}
