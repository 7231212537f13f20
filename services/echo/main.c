/*
 * echo - the demo service of `make run`.
 *
 * Serves thoth.echo.Echo (idl/echo.tidl) on shared-memory channels
 * (thoth/channel.h): clients open a channel through its Unix socket in the
 * runtime dir, after which calls go through shared memory, never through a
 * socket or thothd.  It registers itself with thothd (name "echo", its
 * socket as endpoint, the NUMA node it runs on).
 *
 *   echo [--runtime-dir DIR] [--name NAME] [--ttl-ms N]   (N 0, the default: no lease
 *   renewals, the registration lives as long as the connection to thothd)
 *        [--tcp tcp:HOST:PORT] [--token-file F]
 *
 * With --tcp it also serves Echo to other hosts over TCP (thoth/tcp.h; the
 * cluster token from F, default RUNTIME_DIR/cluster.token) and registers
 * that address as a second instance: a federated thothd mirrors it into
 * etcd for the other hosts (docs/FEDERATION.md).  Port 0: any free port.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/tcp.h"
#include "thoth/trace.h"

static uint64_t calls;

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	calls++;
	resp->data.ptr = req->data.ptr;         /* a view into the request: encoded before it goes */
	resp->data.len = req->data.len;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = calls;
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

static void log_line(void *arg, const char *message)
{
	fprintf(stderr, "echo[%d]: %s\n", (int)getpid(), message);
}

static void on_state(void *arg, thoth_service_state_t state, int err, const char *why)
{
	static const char *names[] = { "connecting to thothd", "registered", "refused" };
	fprintf(stderr, "echo[%d]: %s%s%s\n", (int)getpid(), names[state], *why ? ": " : "", why);
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "ttl-ms", required_argument, NULL, 't' },
		{ "tcp", required_argument, NULL, 'T' },
		{ "token-file", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *runtime_arg = NULL, *name = "echo", *tcp_addr = NULL, *token_file = NULL;
	uint32_t ttl_ms = 0;            /* held by the control connection: no renewals */
	int opt;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': runtime_arg = optarg; break;
		case 'n': name = optarg; break;
		case 't': ttl_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'T': tcp_addr = optarg; break;
		case 'K': token_file = optarg; break;
		case 'h':
			printf("usage: echo [--runtime-dir DIR] [--name NAME] [--ttl-ms N] [--tcp tcp:HOST:PORT] "
			       "[--token-file F]\n");
			return 0;
		default:
			return 2;
		}
	}
	/* The name is part of the socket's file name: a '/' in it put the
	 * socket outside the runtime dir (or failed to bind) before thothd
	 * refused the name; say so first. */
	if (!*name || strchr(name, '/')) {
		fprintf(stderr, "echo: --name '%s' is not a service name (1..128 of [a-z0-9_.-], "
			"starting with a letter)\n", name);
		return 2;
	}
	char dir[4096];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (thoth_runtime_dir(runtime_arg, dir, sizeof dir)) {
		fprintf(stderr, "echo: runtime dir path too long\n");
		return 1;
	}
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s-%d.sock", dir, name, (int)getpid());
	if (n >= (int)sizeof sa.sun_path) {
		/* A long --name makes it too long as well as a long runtime dir:
		 * "runtime dir path too long" blamed the dir for a 128-byte name. */
		fprintf(stderr, "echo: socket path %s/%s-%d.sock is %d bytes, a Unix socket path holds "
			"%zu: a shorter --name or runtime dir\n", dir, name, (int)getpid(), n,
			sizeof sa.sun_path - 1);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A trace buffer, all categories off: thothd switches them on when
	 * someone runs `thothctl trace` (handed over when we connect). */
	thoth_trace_init_process("echo");
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	thoth_chan_server_config_t scfg = {
		.path = sa.sun_path, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .log = log_line,
	};
	thoth_chan_server_t *srv;
	char why[300];
	int r = thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why);
	if (r) {
		fprintf(stderr, "echo: %s\n", why);
		return 1;
	}

	const thoth_interface_info_t *ifaces[] = { &thoth_echo_Echo_info };
	thoth_service_config_t cfg = {
		.runtime_dir = runtime_arg, .name = name, .version = "1.0.0", .endpoint = sa.sun_path,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .ttl_ms = ttl_ms,
		.interfaces = ifaces, .n_interfaces = 1, .on_state = on_state,
	};
	thoth_service_t *svc;
	r = thoth_service_register(loop, &cfg, &svc, why, sizeof why);
	if (r) {
		fprintf(stderr, "echo: cannot register: %s: %s\n", thoth_strerror(r), why);
		thoth_chan_server_free(srv);
		return 1;
	}
	fprintf(stderr, "echo[%d]: serving %s on %s\n", (int)getpid(), name, sa.sun_path);
	thoth_tcp_server_t *tcp = NULL;
	thoth_service_t *tcp_svc = NULL;
	if (tcp_addr) {
		char token_path[4200];
		if (!token_file && thoth_tcp_token_path(runtime_arg, token_path, sizeof token_path) == 0)
			token_file = token_path;
		thoth_tcp_server_config_t tcfg = {
			.addr = tcp_addr, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
			.handlers = &handlers, .token_file = token_file, .log = log_line,
		};
		r = thoth_tcp_server_new(loop, &tcfg, &tcp, why, sizeof why);
		if (r) {
			fprintf(stderr, "echo: --tcp: %s\n", why);
			thoth_service_withdraw(svc);
			thoth_chan_server_free(srv);
			return 1;
		}
		thoth_service_config_t tc = cfg;
		tc.endpoint = thoth_tcp_server_addr(tcp);
		r = thoth_service_register(loop, &tc, &tcp_svc, why, sizeof why);
		if (r)
			fprintf(stderr, "echo: cannot register %s: %s\n", tc.endpoint, why);
		fprintf(stderr, "echo[%d]: serving %s to other hosts on %s\n", (int)getpid(), name,
			thoth_tcp_server_addr(tcp));
	}
	thoth_loop_run(loop);
	if (tcp_svc)
		thoth_service_withdraw(tcp_svc);
	thoth_tcp_server_free(tcp);
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);    /* closes every channel, removes the socket */
	thoth_loop_free(loop);
	fprintf(stderr, "echo[%d]: stopped after %llu calls\n", (int)getpid(), (unsigned long long)calls);
	return 0;
}
