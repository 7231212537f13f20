/*
 * governed_service - the service test_pm_governed runs: serves
 * thoth.echo.Echo on SOCKET with its dispatch governed (kernel/pm/governed.h)
 * on the performance domains under $THOTH_SYSFS_ROOT (a fixture copy).
 * echo(data): burns the CPU for the number of microseconds in data's first
 * four bytes (little endian), then echoes; where data has 12 bytes or more,
 * bytes 4..11 are the client's send stamp (CLOCK_MONOTONIC ns, host order)
 * and the request is due QOS_US after it (governed.h
 * thoth_pm_governed_on_sent).  SIGUSR1 prints one line of stats to stdout:
 *   stats opp O floor F khz K requests R changes C checks T raise_ns X
 *         raise_dispatch_ns Y wake_timer W wake_fd D identified I ... dispatch_raise_ns Z
 *         raise_opp P stamped S clamped L chan_stamped H mid_checks M
 *         mid_changes N watcher 0|1 hold_opp O ring_last W ring_seen S
 *         ring_looks K ring_clamped C ring_visited V
 * A request asking for HOLD_US (0xffffffff) holds its handler without
 * using the CPU: it creates SOCKET.held, waits (at most 10 s) for
 * SOCKET.go to exist, then for two more of the watcher's checks (at most
 * 5 s), notes the OPP then (hold_opp) and returns: the test sends requests
 * meanwhile, which wait in the ring.
 * Requests without the data stamp are dated by the channel's send stamp
 * (the wrap asks every client for one: governed.h), as in any governed
 * service.
 * SIGTERM stops it.  Its trace buffer (THOTH_TRACE=pm switches the PM
 * category on) is memfd number TRACE_FD, printed as "ready TRACE_FD".
 *
 *   governed_service SOCKET QOS_US [nopeek]
 * (nopeek: the shim does not look at the waiting requests,
 * thoth_pm_governed_set_peek false.)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "governed.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/trace.h"

static thoth_pm_governed_t *gov;
static const char *sock_path;
static unsigned hold_opp;

#define HOLD_US 0xffffffffu

static void nap_100us(void)
{
	struct timespec ts = { 0, 100000 };
	nanosleep(&ts, NULL);
}

static bool exists(const char *suffix)
{
	char p[512];
	snprintf(p, sizeof p, "%s%s", sock_path, suffix);
	return access(p, F_OK) == 0;
}

/* The hold (HOLD_US above). */
static void hold(void)
{
	char p[512];
	snprintf(p, sizeof p, "%s.held", sock_path);
	FILE *f = fopen(p, "w");
	if (f)
		fclose(f);
	for (int i = 0; i < 100000 && !exists(".go"); i++)
		nap_100us();
	thoth_pm_governed_stats_t st;
	thoth_pm_governed_stats(gov, &st);
	uint64_t checks = st.mid_checks;
	for (int i = 0; i < 50000 && st.mid_checks < checks + 2; i++) {
		nap_100us();
		thoth_pm_governed_stats(gov, &st);
	}
	hold_opp = thoth_pm_governed_opp(gov);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req,
		   thoth_echo_Echo_echo_resp_t *resp, thoth_arena_t *arena)
{
	uint32_t us = 0;
	if (req->data.len >= 4)
		us = (uint32_t)req->data.ptr[0] | (uint32_t)req->data.ptr[1] << 8 |
		     (uint32_t)req->data.ptr[2] << 16 | (uint32_t)req->data.ptr[3] << 24;
	if (us == HOLD_US) {
		hold();
		us = 0;
	}
	uint64_t until = thread_cpu_ns() + (uint64_t)us * 1000;
	while (thread_cpu_ns() < until)
		;
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	thoth_pm_governed_stats_t st;
	thoth_pm_governed_stats(gov, &st);
	resp->calls = st.requests;
	return 0;
}

static int echo_sent(void *arg, const thoth_method_info_t *m, const void *req, uint64_t *sent_ns)
{
	const thoth_echo_Echo_echo_req_t *r = req;
	if (m->interface_id != thoth_echo_Echo_echo_info.interface_id ||
	    m->ordinal != thoth_echo_Echo_echo_info.ordinal || r->data.len < 12)
		return -1;
	memcpy(sent_ns, r->data.ptr + 4, 8);
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

static void on_usr1(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_pm_governed_stats_t st;
	thoth_loop_stats_t ls;
	thoth_pm_governed_stats(gov, &st);
	thoth_loop_stats(loop, &ls);
	printf("stats opp %u floor %u khz %u requests %llu changes %llu checks %llu raise_ns %llu "
	       "raise_dispatch_ns %llu wake_timer %llu wake_fd %llu identified %llu raise_opp %u stamped %llu "
	       "clamped %llu chan_stamped %llu mid_checks %llu mid_changes %llu watcher %d hold_opp %u ring_last %u "
	       "ring_seen %llu ring_looks %llu ring_clamped %llu ring_visited %llu dispatch_raise_ns %llu\n",
	       st.opp, st.floor_opp, st.khz, (unsigned long long)st.requests,
	       (unsigned long long)st.changes, (unsigned long long)st.timer_checks,
	       (unsigned long long)st.last_raise_ns, (unsigned long long)st.last_raise_dispatch_ns,
	       (unsigned long long)ls.wakeups_timer, (unsigned long long)ls.wakeups_fd,
	       (unsigned long long)st.identified, st.last_raise_opp, (unsigned long long)st.stamped,
	       (unsigned long long)st.stamps_clamped, (unsigned long long)st.chan_stamped,
	       (unsigned long long)st.mid_checks, (unsigned long long)st.mid_changes, (int)st.watcher,
	       hold_opp, st.ring_last, (unsigned long long)st.ring_seen, (unsigned long long)st.ring_looks,
	       (unsigned long long)st.ring_clamped, (unsigned long long)st.ring_visited,
	       (unsigned long long)st.last_dispatch_raise_ns);
	fflush(stdout);
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc != 3 && !(argc == 4 && !strcmp(argv[3], "nopeek"))) {
		fprintf(stderr, "usage: governed_service SOCKET QOS_US [nopeek]\n");
		return 2;
	}
	thoth_loop_t *loop;
	thoth_pm_dvfs_set_t *set;
	if (thoth_loop_new(&loop))
		return 1;
	if (thoth_pm_dvfs_set_new(thoth_pm_cpu_model_find("hikey-a53"), thoth_loop_now(loop), &set) ||
	    thoth_pm_governed_new(loop, thoth_pm_dvfs_set_for_cpu(set, 0),
				  strtoull(argv[2], NULL, 10) * 1000, &gov))
		return 1;
	thoth_pm_governed_on_sent(gov, echo_sent, NULL);
	if (argc == 4)
		thoth_pm_governed_set_peek(gov, false);
	sock_path = argv[1];
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGUSR1, on_usr1, NULL);
	thoth_chan_server_config_t cfg = {
		.path = argv[1], .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .wait = THOTH_CHAN_SLEEP,
	};
	thoth_pm_governed_wrap(gov, &cfg);
	thoth_chan_server_t *srv;
	char why[256];
	if (thoth_chan_server_new(loop, &cfg, &srv, why, sizeof why)) {
		fprintf(stderr, "governed_service: %s\n", why);
		return 1;
	}
	int trace_fd = -1;
	if (thoth_trace_init_process("governed_service") || thoth_trace_export_fd(&trace_fd))
		trace_fd = -1;
	printf("ready %d\n", trace_fd);
	fflush(stdout);
	thoth_loop_run(loop);
	thoth_chan_server_free(srv);
	thoth_pm_governed_free(gov);
	thoth_pm_dvfs_set_free(set);
	thoth_loop_free(loop);
	return 0;
}
