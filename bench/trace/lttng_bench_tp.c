/* lttng_bench_tp.c - instantiates the LTTng-UST baseline probe provider. */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "lttng_bench_tp.h"
