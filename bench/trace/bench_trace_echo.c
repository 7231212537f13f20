/*
 * bench_trace_echo.c - what tracing costs a whole call: an Echo.echo round
 * trip over the socket transport (thoth/stream.h, the transport the echo
 * demo uses), untraced vs fully traced, in the same run.
 *
 * A forked child serves thoth.echo.Echo on one end of a socketpair the way
 * services/echo does (a thoth loop, stream reader, generated dispatcher,
 * write_all); the
 * parent calls it with the generated stub over thoth_sock_transport.  Both
 * share one trace buffer (the child inherits the memfd and claims its own
 * ring), so flipping the category mask switches tracing in both at once.
 *
 * Traced = every category on: per round trip the client's msg_send and
 * msg_recv, the server's loop_wakeup, msg_recv and msg_send (5 events, plus
 * a trace id stamped on the request).  No collector drains the rings
 * (overwrite-oldest): the writer's cost does not depend on one.
 *
 * Rounds alternate untraced / traced so drift on the shared machine hits
 * both alike; each figure is the median of ROUNDS rounds of N round trips,
 * the per-call mean of a round.
 *   bench_trace_echo [round-trips-per-round] [payload-bytes]
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "thoth/loop.h"
#include "thoth/stream.h"
#include "thoth/trace.h"

#define ROUNDS 9

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req,
		   thoth_echo_Echo_echo_resp_t *resp, thoth_arena_t *arena)
{
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = 0;
	return 0;
}

typedef struct server {
	thoth_stream_reader_t reader;
	uint8_t *out;
} server_t;

/* One readable event: as services/echo handles its connections. */
static void server_io(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };
	static uint64_t arena_buf[1 << 13];
	server_t *s = arg;
	int r = thoth_stream_fill(&s->reader, fd);
	const uint8_t *msg;
	size_t len;
	while (!r && (r = thoth_stream_next(&s->reader, &msg, &len)) == 1) {
		thoth_arena_t arena;
		thoth_arena_init(&arena, arena_buf, sizeof arena_buf);
		thoth_server_io_t io = { .out = s->out, .cap = 1 << 20, .arena = &arena };
		r = thoth_echo_Echo_dispatch(&handlers, NULL, msg, len, &io);
		if (!r && io.out_len)
			r = thoth_stream_write_all(fd, io.out, io.out_len);
		thoth_stream_consume(&s->reader);
	}
	if (r < 0)
		thoth_loop_stop(loop);  /* the parent hung up */
}

/* The child: a thoth loop serving until the parent hangs up. */
static void serve(int fd)
{
	server_t s = { .out = aligned_alloc(8, 1 << 20) };
	thoth_loop_t *loop;
	thoth_source_t *src;
	if (!s.out || thoth_stream_reader_init(&s.reader, 1u << 20) || thoth_loop_new(&loop) ||
	    thoth_loop_add_fd(loop, fd, THOTH_LOOP_READ, server_io, &s, &src))
		_exit(1);
	thoth_loop_run(loop);
	_exit(0);
}

/* Mean ns per round trip over N calls. */
static double round_trips(thoth_client_t *client, uint64_t n, const uint8_t *payload, size_t size)
{
	thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = size } };
	thoth_echo_Echo_echo_resp_t resp;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (thoth_echo_Echo_echo(client, &req, &resp, NULL) != 0 || resp.data.len != size) {
			fprintf(stderr, "bench_trace_echo: call %" PRIu64 " failed\n", i);
			exit(1);
		}
	}
	return (double)(now_ns() - t0) / (double)n;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
	size_t size = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
	if (!n || size > 65536) {
		fprintf(stderr, "usage: bench_trace_echo [round-trips-per-round] [payload-bytes <= 65536]\n");
		return 2;
	}
	thoth_trace_config_t cfg = { .ring_count = 8, .ring_records = 65536,
				     .process_name = "bench_trace_echo" };
	if (thoth_trace_init(&cfg) != 0) {
		fprintf(stderr, "bench_trace_echo: no trace buffer\n");
		return 1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return 1;
	pid_t child = fork();
	if (child == 0) {
		close(sv[0]);
		serve(sv[1]);
	}
	close(sv[1]);
	thoth_sock_client_t sock;
	thoth_client_t client;
	if (thoth_sock_client_init(&sock, sv[0], -1) != 0)
		return 1;
	thoth_client_init(&client, &thoth_sock_transport, &sock, 0);
	uint8_t *payload = calloc(1, size ? size : 1);

	round_trips(&client, n / 4 + 1, payload, size);  /* warm up: rings claimed, ids cached */
	thoth_trace_set_enabled(THOTH_TRACE_ALL_CATEGORIES);
	round_trips(&client, n / 4 + 1, payload, size);
	double off[ROUNDS], on[ROUNDS], ratio[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		thoth_trace_set_enabled(0);
		off[i] = round_trips(&client, n, payload, size);
		thoth_trace_set_enabled(THOTH_TRACE_ALL_CATEGORIES);
		on[i] = round_trips(&client, n, payload, size);
		ratio[i] = on[i] / off[i];
	}
	thoth_trace_set_enabled(0);
	thoth_sock_client_close(&sock);     /* the child sees the hang-up and exits */
	waitpid(child, NULL, 0);

	qsort(off, ROUNDS, sizeof off[0], cmp_double);
	qsort(on, ROUNDS, sizeof on[0], cmp_double);
	qsort(ratio, ROUNDS, sizeof ratio[0], cmp_double);
	printf("bench_trace_echo: Echo.echo round trip over a Unix socket, %zu-byte payload,\n"
	       "  %" PRIu64 " round trips per round, median of %d alternating rounds\n",
	       size, n, ROUNDS);
	printf("  untraced (categories off)      %8.2f us\n", off[ROUNDS / 2] / 1000.0);
	printf("  traced (all on, 5 events/call) %8.2f us\n", on[ROUNDS / 2] / 1000.0);
	printf("  slowdown traced / untraced     %8.3fx (median of per-round ratios; "
	       "min %.3f, max %.3f)   target < 1.10x\n",
	       ratio[ROUNDS / 2], ratio[0], ratio[ROUNDS - 1]);
	free(payload);
	thoth_trace_shutdown();
	return 0;
}
