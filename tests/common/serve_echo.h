/*
 * serve_echo.h - the per-CPU echo service and its client processes, as the
 * serve tests (tests/scale/test_serve_counters, test_serve_thothd,
 * tests/sched/test_serve_per_cpu) each wrote them again: the server
 * configuration, the CPUs a test may pin clients to, a client channel
 * opened from one CPU, one echo call.  What each test asserts stays in the
 * test; this is only how the service is started and called.
 *
 * Needs _GNU_SOURCE (CPU sets) and the chantest IDL (link test_chantest_idl).
 * A client helper runs in a forked client process and exits it on failure:
 * 2 = cannot run on the CPU, 3 = cannot connect.
 */
#ifndef THOTH_TESTS_COMMON_SERVE_ECHO_H
#define THOTH_TESTS_COMMON_SERVE_ECHO_H

#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "chantest.thoth.h"
#include "testutil.h"
#include "thoth/channel.h"

/* Echo answers with what it was sent. */
static inline int test_echo_same(void *self, const thoth_chantest_Test_echo_req_t *req,
				 thoth_chantest_Test_echo_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)arena;
	resp->data = req->data;
	return 0;
}

static inline const thoth_chantest_Test_handlers_t *test_echo_same_handlers(void)
{
	static const thoth_chantest_Test_handlers_t h = { .echo = test_echo_same };
	return &h;
}

/* thoth_serve_per_cpu on PATH with HANDLERS (sleeping waits): returns when
 * the service is stopped (SIGTERM), with thoth_serve_per_cpu's result. */
static inline int test_serve_echo_per_cpu(const char *path, const thoth_chantest_Test_handlers_t *handlers)
{
	thoth_chan_server_config_t cfg = {
		.path = path, .iface = &thoth_chantest_Test_info,
		.invoke = thoth_chantest_Test_invoke, .handlers = handlers,
		.wait = THOTH_CHAN_SLEEP,
	};
	return thoth_serve_per_cpu(&cfg);
}

/* The CPUs this process may run on, at most MAX of them, into CPUS; how
 * many (0 when the affinity cannot be read). */
static inline int test_allowed_cpus(int *cpus, int max)
{
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof allowed, &allowed))
		return 0;
	int n = 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &allowed))
			cpus[n++] = c;
	return n;
}

/* In a client process: run on CPU, then connect to the echo service at
 * PATH (the service hands the channel to the worker on the CPU its client
 * last ran on, so the pin comes first). */
static inline thoth_chan_t *test_echo_client_on_cpu(const char *path, int cpu)
{
	if (!test_run_on_cpu(cpu))
		_exit(2);
	thoth_chan_config_t cc = { .iface = &thoth_chantest_Test_info, .wait = THOTH_CHAN_SLEEP };
	thoth_chan_t *ch;
	char why[300];
	if (thoth_chan_connect(path, &cc, &ch, why, sizeof why))
		_exit(3);
	return ch;
}

/* One echo call of 8 bytes, the first TAG: the reply's length, or the
 * call's negative error; the reply's first CAP bytes (at most) in OUT. */
static inline int test_echo_call_copy(thoth_chan_t *ch, uint8_t tag, uint8_t *out, size_t cap)
{
	uint8_t data[8] = { tag };
	thoth_chantest_Test_echo_req_t rq = { .data = { .ptr = data, .len = sizeof data } };
	thoth_chantest_Test_echo_resp_t rs;
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	int r = thoth_chantest_Test_echo(thoth_chan_client(ch), &rq, &rs, &a);
	if (r)
		return r < 0 ? r : -r;
	if (out)
		memcpy(out, rs.data.ptr, rs.data.len < cap ? rs.data.len : cap);
	return (int)rs.data.len;
}

/* The same, the reply's first byte in *FIRST when it has one. */
static inline int test_echo_call(thoth_chan_t *ch, uint8_t tag, uint8_t *first)
{
	return test_echo_call_copy(ch, tag, first, first ? 1 : 0);
}

#endif
