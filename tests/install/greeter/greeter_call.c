/*
 * greeter-call - resolve "greeter" through thothd (retrying until a deadline:
 * the service registers asynchronously), open a channel to it and call
 * greet(NAME) once; print the answer.
 *
 *   greeter-call --runtime-dir DIR NAME
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <thoth/channel.h>
#include <thoth/service.h>
#include <thoth/idl/registry.thoth.h>

#include "greeter.thoth.h"

static int resolve(const char *dir, char *addr, size_t cap)
{
	thoth_control_t ctl;
	int r = thoth_control_connect(&ctl, dir, 1000);
	if (r)
		return r;
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str("greeter"), .min_version = thoth_str("1.0.0"),
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	r = thoth_registry_Registry_resolve(&ctl.client, &req, &resp, &arena);
	if (!r) {
		const thoth_str_t *a = &resp.instance.registration.endpoint.addr;
		if (a->len >= cap)
			r = THOTH_E_INVAL;
		else {
			memcpy(addr, a->ptr, a->len);
			addr[a->len] = 0;
		}
	}
	thoth_control_close(&ctl);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 4 || strcmp(argv[1], "--runtime-dir") != 0) {
		fprintf(stderr, "usage: greeter-call --runtime-dir DIR NAME\n");
		return 2;
	}
	char addr[128];
	int r;
	/* Registration is asynchronous: resolve until it appears (10 s deadline). */
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = resolve(argv[2], addr, sizeof addr);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!r || now.tv_sec - t0.tv_sec > 10)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	}
	if (r) {
		fprintf(stderr, "greeter-call: resolve: %s\n", thoth_strerror(r));
		return 1;
	}
	thoth_chan_config_t cfg = { .iface = &acme_greeter_Greeter_info, .timeout_ms = 2000 };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(addr, &cfg, &ch, why, sizeof why)) {
		fprintf(stderr, "greeter-call: %s\n", why);
		return 1;
	}
	acme_greeter_Greeter_greet_req_t req = { .name = thoth_str(argv[3]) };
	acme_greeter_Greeter_greet_resp_t resp;
	r = acme_greeter_Greeter_greet(thoth_chan_client(ch), &req, &resp, NULL);
	if (r) {
		fprintf(stderr, "greeter-call: greet: %s\n", thoth_strerror(r));
		thoth_chan_close(ch);
		return 1;
	}
	printf("%.*s\n", (int)resp.text.len, resp.text.ptr);
	thoth_chan_close(ch);
	return 0;
}
