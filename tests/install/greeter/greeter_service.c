/*
 * greeter-service - a service written outside the ThothOS tree, as a user
 * would: its own .tidl compiled by the installed thothc, built against the
 * installed libthoth (pkg-config or find_package), registered with thothd.
 *
 *   greeter-service --runtime-dir DIR
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <thoth/channel.h>
#include <thoth/loop.h>
#include <thoth/service.h>

#include "greeter.thoth.h"

static int on_greet(void *self, const acme_greeter_Greeter_greet_req_t *req,
		    acme_greeter_Greeter_greet_resp_t *resp, thoth_arena_t *arena)
{
	static const char hello[] = "hello, ";
	size_t n = sizeof hello - 1 + req->name.len;
	char *text = thoth_arena_alloc(arena, n);
	if (!text)
		return THOTH_E_NOMEM;
	memcpy(text, hello, sizeof hello - 1);
	memcpy(text + sizeof hello - 1, req->name.ptr, req->name.len);
	resp->text.ptr = text;
	resp->text.len = n;
	return 0;
}

static const acme_greeter_Greeter_handlers_t handlers = { .greet = on_greet };

static void on_state(void *arg, thoth_service_state_t state, int err, const char *why)
{
	if (state == THOTH_SERVICE_REGISTERED)
		fprintf(stderr, "greeter-service: registered\n");
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--runtime-dir") != 0) {
		fprintf(stderr, "usage: greeter-service --runtime-dir DIR\n");
		return 2;
	}
	const char *dir = argv[2];
	struct sockaddr_un sa;
	if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/greeter.sock", dir) >= (int)sizeof sa.sun_path)
		return 1;
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_chan_server_config_t scfg = {
		.path = sa.sun_path, .iface = &acme_greeter_Greeter_info,
		.invoke = acme_greeter_Greeter_invoke, .handlers = &handlers,
	};
	thoth_chan_server_t *srv;
	char why[300];
	if (thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why)) {
		fprintf(stderr, "greeter-service: %s\n", why);
		return 1;
	}
	const thoth_interface_info_t *ifaces[] = { &acme_greeter_Greeter_info };
	thoth_service_config_t cfg = {
		.runtime_dir = dir, .name = "greeter", .version = "1.0.0", .endpoint = sa.sun_path,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .ttl_ms = 3000,
		.interfaces = ifaces, .n_interfaces = 1, .on_state = on_state,
	};
	thoth_service_t *svc;
	int r = thoth_service_register(loop, &cfg, &svc, why, sizeof why);
	if (r) {
		fprintf(stderr, "greeter-service: cannot register: %s: %s\n", thoth_strerror(r), why);
		return 1;
	}
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	return 0;
}
