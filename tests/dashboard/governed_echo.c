/*
 * governed_echo.c - a governed service for the dashboard's modelled
 * P-state panel (docs/DASHBOARD.md): thoth.echo.Echo whose channel
 * dispatch drives the SCHED-1 governor (kernel/pm/governed.h) of its
 * performance domain, registered with thothd as "governed-echo" (so its
 * trace buffer, and with it its pm_freq_change points, reach thothd), plus
 * a child that calls it at a steady rate.
 *
 *   governed_echo --runtime-dir DIR [--rate N] [--work-us W] [--qos-us Q]
 *   governed_echo --call SOCKET --rate N        (the caller, exec'd by the service)
 *
 * Each request costs W us of CPU (default 600) and is due Q us after its
 * dispatch (default 500), more than the domain's floor can promise, so a
 * request raises the frequency and idleness lowers it again: a live
 * sequence of OPP changes.  Without cpufreq (this VM; the dashboard tests'
 * sysfs fixture has none) the domain is simulated: the governor chooses
 * HiKey A53 OPPs and nothing is written - the modelled P-state.
 * SIGTERM stops it; the caller child dies with it (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "echo.thoth.h"
#include "governed.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/trace.h"

static uint64_t work_ns = 600000;

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int on_echo(void *self, const thoth_echo_Echo_echo_req_t *req,
		   thoth_echo_Echo_echo_resp_t *resp, thoth_arena_t *arena)
{
	uint64_t until = thread_cpu_ns() + work_ns;
	while (thread_cpu_ns() < until)
		;
	resp->data = req->data;
	return 0;
}

static int on_stats(void *self, const thoth_echo_Echo_stats_req_t *req,
		    thoth_echo_Echo_stats_resp_t *resp, thoth_arena_t *arena)
{
	resp->calls = 0;
	return 0;
}

static const thoth_echo_Echo_handlers_t handlers = { .echo = on_echo, .stats = on_stats };

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

/* The child: calls the service RATE times a second until its parent dies. */
static int caller(const char *sock, unsigned rate)
{
	thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info, .wait = THOTH_CHAN_SLEEP,
				    .timeout_ms = 10000 };
	thoth_chan_t *ch;
	char why[256];
	if (thoth_chan_connect(sock, &cfg, &ch, why, sizeof why)) {
		fprintf(stderr, "governed_echo caller: %s\n", why);
		return 1;
	}
	uint8_t payload[8] = { 0 };
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = payload, .len = sizeof payload } };
		thoth_echo_Echo_echo_resp_t resp;
		if (thoth_echo_Echo_echo(thoth_chan_client(ch), &req, &resp, NULL))
			return 1;       /* the service is gone */
		next.tv_nsec += 1000000000L / (long)rate;
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
			;
	}
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "rate", required_argument, NULL, 'n' },
		{ "work-us", required_argument, NULL, 'w' },
		{ "qos-us", required_argument, NULL, 'q' },
		{ "call", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	const char *runtime_arg = NULL, *call_sock = NULL;
	unsigned rate = 50;
	uint64_t qos_ns = 500000;
	int opt;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'r': runtime_arg = optarg; break;
		case 'n': rate = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': work_ns = strtoull(optarg, NULL, 10) * 1000; break;
		case 'q': qos_ns = strtoull(optarg, NULL, 10) * 1000; break;
		case 'c': call_sock = optarg; break;
		default:
			fprintf(stderr, "usage: governed_echo --runtime-dir DIR [--rate N] [--work-us W] "
					"[--qos-us Q]\n");
			return 2;
		}
	}
	if (!rate || !qos_ns) {
		fprintf(stderr, "governed_echo: --rate and --qos-us must be > 0\n");
		return 2;
	}
	if (call_sock)
		return caller(call_sock, rate);
	char dir[4096], sock[4200];
	if (thoth_runtime_dir(runtime_arg, dir, sizeof dir) ||
	    snprintf(sock, sizeof sock, "%s/governed-echo-%d.sock", dir, (int)getpid()) >= 108) {
		fprintf(stderr, "governed_echo: runtime dir path too long\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	thoth_trace_init_process("governed-echo");
	thoth_loop_t *loop;
	thoth_pm_dvfs_set_t *set;
	thoth_pm_governed_t *gov;
	if (thoth_loop_new(&loop) ||
	    thoth_pm_dvfs_set_new(thoth_pm_cpu_model_find("hikey-a53"), thoth_loop_now(loop), &set) ||
	    thoth_pm_governed_new(loop, thoth_pm_dvfs_set_for_cpu(set, 0), qos_ns, &gov)) {
		fprintf(stderr, "governed_echo: cannot set up the governor\n");
		return 1;
	}
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_stop, NULL);
	thoth_chan_server_config_t scfg = {
		.path = sock, .iface = &thoth_echo_Echo_info, .invoke = thoth_echo_Echo_invoke,
		.handlers = &handlers, .wait = THOTH_CHAN_SLEEP,
	};
	thoth_pm_governed_wrap(gov, &scfg);
	thoth_chan_server_t *srv;
	char why[300];
	if (thoth_chan_server_new(loop, &scfg, &srv, why, sizeof why)) {
		fprintf(stderr, "governed_echo: %s\n", why);
		return 1;
	}
	const thoth_interface_info_t *ifaces[] = { &thoth_echo_Echo_info };
	thoth_service_config_t cfg = {
		.runtime_dir = runtime_arg, .name = "governed-echo", .version = "1.0.0",
		.endpoint = sock, .numa_node = THOTH_SERVICE_NUMA_AUTO,
		.interfaces = ifaces, .n_interfaces = 1,
	};
	thoth_service_t *svc;
	if (thoth_service_register(loop, &cfg, &svc, why, sizeof why)) {
		fprintf(stderr, "governed_echo: cannot register: %s\n", why);
		return 1;
	}
	/* The caller: a fresh process image (exec), so its channel and trace
	 * state are its own, not a copy of ours. */
	pid_t parent = getpid();
	pid_t child = fork();
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		char rate_arg[16];
		snprintf(rate_arg, sizeof rate_arg, "%u", rate);
		execl("/proc/self/exe", "governed_echo", "--call", sock, "--rate", rate_arg,
		      (char *)NULL);
		_exit(127);
	}
	thoth_loop_run(loop);
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	thoth_service_withdraw(svc);
	thoth_chan_server_free(srv);
	thoth_pm_governed_free(gov);
	thoth_pm_dvfs_set_free(set);
	thoth_loop_free(loop);
	return 0;
}
