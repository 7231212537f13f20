/*
 * rpc_loopback.c - the CPU work of one 64 B RPC round trip, with no cache
 * line changing CPU: both ends of a channel in one thread, each call going
 * through what bench_channel's thoth cells run (thoth_client_begin/commit,
 * the rings' alloc/send/recv, thoth_server_dispatch and the same sink
 * handler), less the waiting (spin, presence, the serving loop), which has
 * nothing to wait for here.  What is left of a two-CPU round trip beyond
 * this and a raw spin's is lines moving between the CPUs.  A gauge of the
 * work's size, not of each part: in one thread the receiver reads bytes the
 * sender has just stored (store forwarding, all lines in L1), which prices
 * the copies unlike two CPUs do.  docs/BENCHMARKS.md (SCHED-3/4, stop 28).
 *
 *   taskset -c 0 build/default/bench/channel/bench_rpc_loopback [calls_per_round]
 *
 * Prints the median, min and max ns per round trip over 15 rounds.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.thoth.h"
#include "bench_sink.h"
#include "chan_shm.h"

enum { ROUNDS = 15 };

static chan_end_t cli, srv;
static uint64_t srv_arena[512];

static int on_cpu(void *self, const thoth_bench_Bench_cpu_req_t *req,
		  thoth_bench_Bench_cpu_resp_t *resp, thoth_arena_t *arena)
{
	resp->ns = 0;
	return 0;
}

static const thoth_bench_Bench_handlers_t handlers = { .sink = on_sink, .cpu = on_cpu };

static int srv_get_out(void *ctx, size_t len, uint8_t **buf)
{
	return chan_try_alloc_fast(&srv, len, buf);
}

static int cli_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	return chan_try_alloc_fast(&cli, len, buf);
}

/* The client's send, the service's turn for it, the client's receive. */
static int cli_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	int r = chan_try_send_flags(&cli, req, len, THOTH_CHAN_URGENT);
	thoth_msg_t m;
	if (r || (r = chan_try_recv(&srv, &m)))
		return r;
	thoth_arena_t a;
	thoth_arena_init(&a, srv_arena, sizeof srv_arena);
	thoth_server_io_t io = { .arena = &a, .get_out = srv_get_out };
	r = thoth_server_dispatch(&thoth_bench_Bench_info, thoth_bench_Bench_invoke, &handlers, NULL,
				  m.data, m.len, &io);
	int rr = chan_release(&srv, &m);
	if (r || rr || (r = chan_try_send(&srv, io.out, io.out_len)))
		return r ? r : rr;
	return chan_try_recv(&cli, resp);
}

static void cli_release(void *ctx, thoth_msg_t *resp)
{
	chan_release(&cli, resp);
}

static const thoth_transport_ops_t ops = {
	.get_buffer = cli_get_buffer, .call = cli_call, .release = cli_release,
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
	unsigned long calls = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	if (calls == 0 || calls > 100000000ul) {
		fprintf(stderr, "bench_rpc_loopback: calls per round must be 1..100000000, not %s\n", argv[1]);
		return 2;
	}
	thoth_chan_limits_t lim = { 0 };
	chan_layout_t lay;
	char why[200];
	if (thoth_chan_limits_resolve(&lim, why, sizeof why) || chan_layout_compute(&lim, &lay)) {
		fprintf(stderr, "bench_rpc_loopback: default limits refused: %s\n", why);
		return 1;
	}
	int fd = memfd_create("bench-rpc-loopback", MFD_CLOEXEC);
	uint8_t *base = NULL;
	if (fd < 0 || ftruncate(fd, (off_t)lay.size) || !(base = chan_shm_map(fd, lay.size))) {
		perror("bench_rpc_loopback: channel memory");
		return 1;
	}
	chan_shm_format(base, &lay);
	if (chan_end_init(&srv, base, &lay, CHAN_SERVER) || chan_end_init(&cli, base, &lay, CHAN_CLIENT)) {
		fprintf(stderr, "bench_rpc_loopback: %s%s\n", srv.why, cli.why);
		return 1;
	}
	thoth_client_t c;
	thoth_client_init(&c, &ops, NULL, 0);
	double per[ROUNDS];
	for (int k = 0; k < ROUNDS; k++) {
		uint64_t t0 = now_ns();
		for (unsigned long i = 0; i < calls; i++) {
			uint8_t *where;
			uint64_t ab[64];
			thoth_arena_t a;
			thoth_bench_Bench_sink_req_t rq = {
				.data = { .len = 64, .reserve = &where, .uninit = true },
			};
			thoth_call_t call;
			thoth_bench_Bench_sink_resp_t rs;
			thoth_arena_init(&a, ab, sizeof ab);
			int r = thoth_client_begin(&c, &thoth_bench_Bench_sink_info, &rq, &call);
			if (!r) {
				where[0] = (uint8_t)i;
				where[63] = (uint8_t)(i >> 8);
				r = thoth_client_commit(&c, &call, &rs, &a);
			}
			if (r || rs.ack.ptr[0] != (uint8_t)i) {
				fprintf(stderr, "bench_rpc_loopback: call %lu failed: %s\n", i, thoth_strerror(r));
				return 1;
			}
		}
		per[k] = (double)(now_ns() - t0) / (double)calls;
	}
	qsort(per, ROUNDS, sizeof per[0], cmp_double);
	printf("loopback 64 B round trip, both ends in one thread: median %.1f ns (min %.1f, max %.1f) over %d rounds of %lu calls\n",
	       per[ROUNDS / 2], per[0], per[ROUNDS - 1], ROUNDS, calls);
	thoth_client_release(&c);
	chan_end_fini(&cli);
	chan_end_fini(&srv);
	chan_shm_unmap(base, lay.size);
	close(fd);
	return 0;
}
