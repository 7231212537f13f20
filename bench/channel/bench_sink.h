/*
 * bench_sink.h - the Bench service's sink handler: the service's whole
 * work in a round trip (read the payload's first and last byte, answer a
 * 64-byte ack).  One definition for bench_channel's service and
 * bench_rpc_loopback, which prices the CPU work of that same call and so
 * must run exactly this handler.  Included by one file of each program.
 */
#ifndef THOTH_BENCH_SINK_H
#define THOTH_BENCH_SINK_H

#include <stdint.h>

#include "bench.thoth.h"

static uint8_t ack[64];

static int on_sink(void *self, const thoth_bench_Bench_sink_req_t *req,
		   thoth_bench_Bench_sink_resp_t *resp, thoth_arena_t *arena)
{
	if (req->data.len) {
		ack[0] = req->data.ptr[0];
		ack[1] = req->data.ptr[req->data.len - 1];
	}
	resp->ack.ptr = ack;
	resp->ack.len = sizeof ack;
	return 0;
}

#endif
