/*
 * service_helper.c - a minimal service process for the multi-process tests.
 *
 *   thothd_test_service DIR NAME TTL_MS        thoth_service_register: heartbeats,
 *                                              reconnects after a thothd restart
 *   thothd_test_service --raw DIR NAME TTL_MS [ENDPOINT]
 *                                              one register call (at ENDPOINT,
 *                                              any bytes: a hostile peer's
 *                                              address), then never renews
 *                                              (lease expiry tests); a refusal:
 *                                              "register: ERROR: thothd's reason"
 *   thothd_test_service --flood DIR NAME N     registers NAME and withdraws it
 *                                              N times on one connection (a
 *                                              client in a loop: hist46's log
 *                                              flood); prints "flooded N", exits
 *   thothd_test_service --hold DIR NAME N      registers NAME-1 .. NAME-N on one
 *                                              connection, prints "registered",
 *                                              holds them until killed (N losses)
 * Prints "registered" on stdout once registered; exits on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "thoth/loop.h"

static void on_state(void *arg, thoth_service_state_t state, int err, const char *why)
{
	printf("state %d %s %s\n", (int)state, thoth_strerror(err), why);
	fflush(stdout);
}

static void on_term(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--flood") == 0) {
		thoth_control_t ctl;
		int r = thoth_control_connect(&ctl, argv[2], 2000);
		long n = atol(argv[4]), i = 0;
		for (; !r && i < n; i++) {
			uint64_t lease;
			r = harness_register(&ctl, argv[3], 60000, &lease);
			thoth_registry_Registry_withdraw_req_t wq = { .lease = lease };
			thoth_registry_Registry_withdraw_resp_t ws;
			if (!r)
				r = thoth_registry_Registry_withdraw(&ctl.client, &wq, &ws, NULL);
		}
		if (r) {
			fprintf(stderr, "flood: turn %ld: %s\n", i, thoth_strerror(r));
			return 1;
		}
		printf("flooded %ld\n", n);
		thoth_control_close(&ctl);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "--hold") == 0) {
		thoth_control_t ctl;
		int r = thoth_control_connect(&ctl, argv[2], 2000);
		long n = atol(argv[4]), i = 0;
		for (; !r && i < n; i++) {
			char name[128];
			snprintf(name, sizeof name, "%s-%ld", argv[3], i + 1);
			uint64_t lease;
			r = harness_register(&ctl, name, 60000, &lease);
		}
		if (r) {
			fprintf(stderr, "hold: registration %ld: %s\n", i, thoth_strerror(r));
			return 1;
		}
		printf("registered\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	bool raw = argc > 1 && strcmp(argv[1], "--raw") == 0;
	if (argc != 4 + raw && !(raw && argc == 6)) {
		fprintf(stderr, "usage: %s [--raw] DIR NAME TTL_MS [ENDPOINT]\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1 + raw], *name = argv[2 + raw];
	uint32_t ttl = (uint32_t)atoi(argv[3 + raw]);
	if (raw) {
		thoth_control_t ctl;
		int r = thoth_control_connect(&ctl, dir, 2000);
		uint64_t lease;
		if (!r)
			r = argc == 6 ? harness_register_at(&ctl, name, ttl, argv[5], &lease)
				      : harness_register(&ctl, name, ttl, &lease);
		if (r) {
			fprintf(stderr, "register: %s: %s\n", thoth_strerror(r),
				r == THOTH_E_REMOTE ? ctl.client.remote_message : "");
			return 1;
		}
		printf("registered\n");
		fflush(stdout);
		for (;;)
			pause();        /* hold the connection open, never renew */
	}
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_term, NULL);
	char addr[300];
	snprintf(addr, sizeof addr, "%s/%s-%d.sock", dir, name, (int)getpid());
	thoth_service_config_t cfg = {
		.runtime_dir = dir, .name = name, .version = "1.0.0", .endpoint = addr,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .ttl_ms = ttl,
		.on_state = on_state,
	};
	thoth_service_t *svc;
	char why[200];
	int r = thoth_service_register(loop, &cfg, &svc, why, sizeof why);
	if (r) {
		fprintf(stderr, "register: %s: %s\n", thoth_strerror(r), why);
		return 1;
	}
	printf("registered=%d\n", thoth_service_state(svc) == THOTH_SERVICE_REGISTERED);
	fflush(stdout);
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	thoth_loop_free(loop);
	return 0;
}
