/*
 * probe_target.c - a traced process for test_probe_live: it hands thothd
 * its trace buffer (a control connection, as every thoth program does) and
 * fires msg_send about every 200 us until SIGTERM; then it prints how many
 * it fired.  It knows nothing of probes: they are attached into it live.
 *   probe_target RUNTIME_DIR
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "thoth/service.h"
#include "thoth/trace.h"

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	signal(SIGTERM, on_term);
	if (thoth_trace_init_process("probe_target"))
		return 1;
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, argv[1], 5000))
		return 1;
	printf("ready %d\n", getpid());
	fflush(stdout);
	unsigned long long n = 0;
	while (!stop) {
		THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, 7, 1, 2, (uint32_t)n, 2000,
		                THOTH_TRACE_INLINE, 0);
		n++;
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);    /* pacing, not synchronisation */
	}
	printf("fired %llu\n", n);
	thoth_control_close(&ctl);
	return 0;
}
