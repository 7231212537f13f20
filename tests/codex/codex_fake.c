/*
 * codex_fake - helper of test_codex_fake.sh: a service registered with
 * thothd as "codex" whose every stats call fails with codex's Failed
 * error, so that thothctl's error line for a call without a stream
 * (`codex stats`) can be seen; a real codex's stats never fails.
 *   codex_fake RUNTIME_DIR     serve until SIGTERM
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "codex.thoth.h"
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
	if (argc != 2) {
		fprintf(stderr, "usage: codex_fake RUNTIME_DIR\n");
		return 2;
	}
	char sock[108], why[256] = "";
	snprintf(sock, sizeof sock, "%s/codex-fake-%d.sock", argv[1], (int)getpid());
	thoth_loop_t *loop;
	thoth_chan_server_t *srv;
	thoth_service_t *svc;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_chan_server_config_t scfg = {
		.path = sock, .iface = &thoth_codex_Codex_info, .invoke = thoth_codex_Codex_invoke,
		.handlers = &handlers, .self = NULL,
	};
	if (thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why)) {
		fprintf(stderr, "codex_fake: serve %s: %s\n", sock, why);
		return 1;
	}
	const thoth_interface_info_t *ifaces[] = { &thoth_codex_Codex_info };
	thoth_service_config_t cfg = {
		.runtime_dir = argv[1], .name = "codex", .version = "1.0.0", .endpoint = sock,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
	};
	if (thoth_service_register(loop, &cfg, &svc, why, sizeof why)) {
		fprintf(stderr, "codex_fake: register: %s\n", why);
		return 1;
	}
	thoth_loop_add_signal(loop, SIGTERM, on_signal, NULL);
	fprintf(stderr, "codex_fake: serving at %s\n", sock);
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);
	thoth_loop_free(loop);
	unlink(sock);
	return 0;
}
