/*
 * tcp_service - thoth.echo.Echo served over TCP only (thoth/tcp.h), for
 * the TCP transport's tests and benchmark.  It writes the address it
 * listens on (the real port) to --addr-file, then serves until SIGTERM.
 *
 *   tcp_service --token-file F --addr-file F [--listen tcp:127.0.0.1:0]
 *               [--max-conns N] [--handshake-ms N] [--frame-ms N]
 *               [--idle-ms N] [--max-message N] [--library-log]
 *
 * --library-log: the server's log lines go through libthoth's log
 * handler (thoth_log_stderr), the path of a server whose config names no
 * log of its own, instead of its cfg.log.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "thoth/log.h"
#include "thoth/tcp.h"

static uint64_t calls;

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req, thoth_echo_Echo_echo_resp_t *resp,
		   thoth_arena_t *arena)
{
	calls++;
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = calls;
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

static void log_line(void *arg, const char *message)
{
	fprintf(stderr, "tcp_service: %s\n", message);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "token-file", required_argument, NULL, 't' },
		{ "addr-file", required_argument, NULL, 'a' },
		{ "max-conns", required_argument, NULL, 'c' },
		{ "handshake-ms", required_argument, NULL, 'H' },
		{ "frame-ms", required_argument, NULL, 'F' },
		{ "idle-ms", required_argument, NULL, 'I' },
		{ "max-message", required_argument, NULL, 'm' },
		{ "library-log", no_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	thoth_tcp_server_config_t cfg = {
		.addr = "tcp:127.0.0.1:0", .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .log = log_line,
	};
	const char *addr_file = NULL;
	int opt;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'l': cfg.addr = optarg; break;
		case 't': cfg.token_file = optarg; break;
		case 'a': addr_file = optarg; break;
		case 'c': cfg.max_conns = (uint32_t)atoi(optarg); break;
		case 'H': cfg.handshake_timeout_ms = (uint32_t)atoi(optarg); break;
		case 'F': cfg.frame_timeout_ms = (uint32_t)atoi(optarg); break;
		case 'I': cfg.idle_timeout_ms = (uint32_t)atoi(optarg); break;
		case 'm': cfg.max_message = (uint32_t)atoi(optarg); break;
		case 'L':
			/* The server's lines through libthoth's own log
			 * (thoth/log.h) instead of cfg.log: its default path. */
			cfg.log = NULL;
			thoth_log_set_handler(thoth_log_stderr, NULL, THOTH_LOG_INFO);
			break;
		default: return 2;
		}
	}
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	thoth_tcp_server_t *srv;
	char why[300];
	int r = thoth_tcp_server_new(loop, &cfg, &srv, why, sizeof why);
	if (r) {
		fprintf(stderr, "tcp_service: %s\n", why);
		return 1;
	}
	if (addr_file) {
		char tmp[4200];
		snprintf(tmp, sizeof tmp, "%s.tmp", addr_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%s\n", thoth_tcp_server_addr(srv)) < 0 || fclose(f) || rename(tmp, addr_file))
			return 1;
	}
	fprintf(stderr, "tcp_service[%d]: serving Echo on %s\n", (int)getpid(), thoth_tcp_server_addr(srv));
	thoth_loop_run(loop);
	thoth_tcp_server_stats_t st;
	thoth_tcp_server_stats(srv, &st);
	fprintf(stderr, "tcp_service: accepted %llu authenticated %llu refused %llu shed %llu timed_out %llu "
		"bad_input %llu calls %llu\n", (unsigned long long)st.accepted,
		(unsigned long long)st.authenticated, (unsigned long long)st.refused, (unsigned long long)st.shed,
		(unsigned long long)st.timed_out, (unsigned long long)st.bad_input, (unsigned long long)st.calls);
	thoth_tcp_server_free(srv);
	thoth_loop_free(loop);
	return 0;
}
