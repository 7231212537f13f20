/*
 * greeter-client NAME - the tutorial's client (docs/TUTORIAL.md): finds
 * "greeter" through thothd, opens a channel to it, calls hello(NAME) and
 * prints the answer.
 */
#define _POSIX_C_SOURCE 200809L         /* nanosleep under -std=c11 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <thoth/channel.h>
#include <thoth/idl/registry.thoth.h>
#include <thoth/service.h>
#include <thoth/trace.h>

#include "greeter.thoth.h"

/* Ask thothd's registry for a live "greeter"; its endpoint into ADDR. */
static int resolve(char *addr, size_t cap)
{
	thoth_control_t ctl;
	int r = thoth_control_connect(&ctl, NULL, 1000);
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
	if (!r)
		snprintf(addr, cap, "%.*s", (int)resp.instance.registration.endpoint.addr.len,
			 resp.instance.registration.endpoint.addr.ptr);
	else if (r == THOTH_E_REMOTE && ctl.client.remote_code == THOTH_REGISTRY_ERR_NOT_FOUND)
		r = THOTH_E_NOT_FOUND;  /* thothd's answer: no live instance of that name */
	thoth_control_close(&ctl);
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: greeter-client NAME\n");
		return 2;
	}
	thoth_trace_init_process("greeter-client");

	/* a service registers just after it starts: ask again for up to 5 s */
	char addr[108];
	int r;
	for (int tries = 0; (r = resolve(addr, sizeof addr)) && tries < 250; tries++)
		nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
	char dir[4096];
	if (r == THOTH_E_NOT_RUNNING && !thoth_runtime_dir(NULL, dir, sizeof dir))
		/* where we looked: a shell without the THOTH_RUNTIME_DIR the
		 * one running thothd has looks elsewhere */
		fprintf(stderr, "greeter-client: thothd is not running in %s (start it first, or set "
			"THOTH_RUNTIME_DIR to the runtime dir it runs in)\n", dir);
	else if (r == THOTH_E_NOT_RUNNING)
		fprintf(stderr, "greeter-client: thothd is not running (start it first)\n");
	else if (r == THOTH_E_NOT_FOUND)
		fprintf(stderr, "greeter-client: no greeter registered with thothd (is greeter-service running?)\n");
	else if (r)
		fprintf(stderr, "greeter-client: cannot ask thothd for greeter: %s\n", thoth_strerror(r));
	if (r)
		return 1;

	thoth_chan_config_t cfg = { .iface = &tutorial_greeter_Greeter_info };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(addr, &cfg, &ch, why, sizeof why)) {
		fprintf(stderr, "greeter-client: %s\n", why);
		return 1;
	}
	tutorial_greeter_Greeter_hello_req_t req = { .name = thoth_str(argv[1]) };
	tutorial_greeter_Greeter_hello_resp_t resp;
	r = tutorial_greeter_Greeter_hello(thoth_chan_client(ch), &req, &resp, NULL);
	if (!r)
		printf("%.*s\n", (int)resp.greeting.len, resp.greeting.ptr);
	else
		fprintf(stderr, "greeter-client: hello: %s\n", thoth_strerror(r));
	thoth_chan_close(ch);
	return r ? 1 : 0;
}
