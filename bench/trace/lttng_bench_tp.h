/*
 * lttng_bench_tp.h - the LTTng-UST baseline tracepoint for bench_trace: the
 * same fields THOTH_TRACE_MSG records (LTTng adds its own timestamp and
 * records the CPU by its per-CPU buffers).
 */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER thoth_bench

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./lttng_bench_tp.h"

#if !defined(THOTH_LTTNG_BENCH_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define THOTH_LTTNG_BENCH_TP_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(
	thoth_bench, msg,
	LTTNG_UST_TP_ARGS(uint32_t, service_id, uint32_t, interface_id, uint32_t, method,
	                  uint32_t, request_id, uint32_t, payload_size, uint32_t, flags,
	                  uint64_t, trace_id),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint32_t, service_id, service_id)
		lttng_ust_field_integer(uint32_t, interface_id, interface_id)
		lttng_ust_field_integer(uint32_t, method, method)
		lttng_ust_field_integer(uint32_t, request_id, request_id)
		lttng_ust_field_integer(uint32_t, payload_size, payload_size)
		lttng_ust_field_integer(uint32_t, flags, flags)
		lttng_ust_field_integer(uint64_t, trace_id, trace_id)))

#endif

#include <lttng/tracepoint-event.h>
