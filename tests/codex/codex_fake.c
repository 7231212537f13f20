/*
 * codex_fake - helper of test_codex_fake.sh: a service registered with
 * thothd as "codex" whose every stats call fails with codex's Failed
 * error, so that thothctl's error line for a call without a stream
 * (`codex stats`) can be seen; a real codex's stats never fails.
 *   codex_fake RUNTIME_DIR     serve until SIGTERM
 *   codex_fake RUNTIME_DIR NAME ENDPOINT
 *                              register NAME at ENDPOINT (whatever bytes,
 *                              nothing served there) until SIGTERM: a
 *                              peer's address for a client to print
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codex.thoth.h"
#include "echo.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"

static int on_stats(void *self, const thoth_codex_Codex_stats_req_t *req, thoth_codex_Codex_stats_resp_t *resp,
		    thoth_arena_t *arena)
{
	return THOTH_CODEX_ERR_FAILED;
}

static const thoth_codex_Codex_handlers_t handlers = { .stats = on_stats };

static void on_signal(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: codex_fake RUNTIME_DIR [NAME ENDPOINT]\n");
		return 2;
	}
	char sock[108], why[256] = "";
	snprintf(sock, sizeof sock, "%s/codex-fake-%d.sock", argv[1], (int)getpid());
	thoth_loop_t *loop;
	thoth_chan_server_t *srv = NULL;
	thoth_service_t *svc;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_chan_server_config_t scfg = {
		.path = sock, .iface = &thoth_codex_Codex_info, .invoke = thoth_codex_Codex_invoke,
		.handlers = &handlers, .self = NULL,
	};
	if (argc == 2 && thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why)) {
		fprintf(stderr, "codex_fake: serve %s: %s\n", sock, why);
		return 1;
	}
	/* NAME "echo": Echo's interface, which echo-client's resolver asks for */
	const thoth_interface_info_t *ifaces[] = { argc == 4 && !strcmp(argv[2], "echo") ? &thoth_echo_Echo_info
									       : &thoth_codex_Codex_info };
	thoth_service_config_t cfg = {
		.runtime_dir = argv[1], .name = argc == 4 ? argv[2] : "codex", .version = "1.0.0",
		.endpoint = argc == 4 ? argv[3] : sock,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
	};
	if (thoth_service_register(loop, &cfg, &svc, why, sizeof why)) {
		fprintf(stderr, "codex_fake: register: %s\n", why);
		return 1;
	}
	thoth_loop_add_signal(loop, SIGTERM, on_signal, NULL);
	fprintf(stderr, "codex_fake: registered\n");
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	if (srv)
		thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	unlink(sock);
	return 0;
}
