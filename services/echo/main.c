/*
 * echo - the demo service of `make run`.
 *
 * Serves thoth.echo.Echo (idl/echo.tidl) on its own Unix socket in the
 * runtime dir, framed with thoth/stream.h, and registers itself with thothd
 * (name "echo", its socket as endpoint, the NUMA node it runs on).  The data
 * plane here is the socket transport; the shared-memory channel transport
 * replaces it once it lands, with the registry part unchanged.
 *
 *   echo [--runtime-dir DIR] [--name NAME] [--ttl-ms N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/stream.h"
#include "thoth/trace.h"

typedef struct conn {
	struct conn *prev, *next;       /* all connections, closed at exit */
	thoth_source_t *source;
	thoth_stream_reader_t reader;
	int fd;
} conn_t;

static conn_t *conns;
static uint64_t calls;
static uint8_t *out_buf;
static size_t out_cap = 1 << 20;
static uint64_t arena_buf[1 << 14];

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

static void conn_close(thoth_loop_t *loop, conn_t *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	thoth_loop_remove_fd(loop, c->source);
	close(c->fd);
	thoth_stream_reader_free(&c->reader);
	free(c);
}

static void conn_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	conn_t *c = arg;
	int r = thoth_stream_fill(&c->reader, fd);
	const uint8_t *msg;
	size_t len;
	while (!r && (r = thoth_stream_next(&c->reader, &msg, &len)) == 1) {
		thoth_arena_t arena;
		thoth_arena_init(&arena, arena_buf, sizeof arena_buf);
		thoth_server_io_t io = { .out = out_buf, .cap = out_cap, .arena = &arena };
		r = thoth_echo_Echo_dispatch(&handlers, NULL, msg, len, &io);
		if (!r && io.out_len)
			r = thoth_stream_write_all(fd, io.out, io.out_len);
		thoth_stream_consume(&c->reader);
	}
	if (r < 0) {
		if (r != THOTH_E_PEER_GONE)
			fprintf(stderr, "echo[%d]: dropping a client: %s\n", (int)getpid(), thoth_strerror(r));
		conn_close(loop, c);
	}
}

static void on_accept(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	int cfd;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		conn_t *c = calloc(1, sizeof *c);
		if (!c || thoth_stream_reader_init(&c->reader, 1u << 20) ||
		    thoth_loop_add_fd(loop, cfd, THOTH_LOOP_READ, conn_io, c, &c->source)) {
			close(cfd);
			free(c);
		} else {
			c->fd = cfd;
			c->next = conns;
			if (conns)
				conns->prev = c;
			conns = c;
		}
	}
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *runtime_arg = NULL, *name = "echo";
	uint32_t ttl_ms = 3000;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': runtime_arg = optarg; break;
		case 'n': name = optarg; break;
		case 't': ttl_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'h':
			printf("usage: echo [--runtime-dir DIR] [--name NAME] [--ttl-ms N]\n");
			return 0;
		default:
			return 2;
		}
	}
	char dir[4096];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (thoth_runtime_dir(runtime_arg, dir, sizeof dir) ||
	    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s-%d.sock", dir, name, (int)getpid()) >=
		    (int)sizeof sa.sun_path) {
		fprintf(stderr, "echo: runtime dir path too long\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A trace buffer, all categories off: thothd switches them on when
	 * someone runs `thothctl trace` (handed over when we connect). */
	thoth_trace_init_process("echo");
	out_buf = aligned_alloc(8, out_cap);
	thoth_loop_t *loop;
	if (!out_buf || thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	unlink(sa.sun_path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 64) < 0) {
		fprintf(stderr, "echo: cannot listen on %s: %s\n", sa.sun_path, strerror(errno));
		return 1;
	}
	thoth_source_t *ls;
	thoth_loop_add_fd(loop, lfd, THOTH_LOOP_READ, on_accept, NULL, &ls);

	const thoth_interface_info_t *ifaces[] = { &thoth_echo_Echo_info };
	thoth_service_config_t cfg = {
		.runtime_dir = runtime_arg, .name = name, .version = "1.0.0", .endpoint = sa.sun_path,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .ttl_ms = ttl_ms,
		.interfaces = ifaces, .n_interfaces = 1, .on_state = on_state,
	};
	thoth_service_t *svc;
	char why[200];
	int r = thoth_service_register(loop, &cfg, &svc, why, sizeof why);
	if (r) {
		fprintf(stderr, "echo: cannot register: %s: %s\n", thoth_strerror(r), why);
		unlink(sa.sun_path);
		return 1;
	}
	fprintf(stderr, "echo[%d]: serving %s on %s\n", (int)getpid(), name, sa.sun_path);
	thoth_loop_run(loop);
	thoth_service_withdraw(svc);
	while (conns)
		conn_close(loop, conns);
	thoth_loop_remove_fd(loop, ls);
	close(lfd);
	unlink(sa.sun_path);
	thoth_loop_free(loop);
	free(out_buf);
	fprintf(stderr, "echo[%d]: stopped after %llu calls\n", (int)getpid(), (unsigned long long)calls);
	return 0;
}
