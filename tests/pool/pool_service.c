/*
 * pool_service - one instance of the pool tests' service (pooltest.tidl).
 *
 *   pool_service --runtime-dir DIR [--name NAME] [--slow F] [--stall-ms N]
 *                [--report-ms N] [--load U,Q] [--shard-id K] [--hostile MODE] [--tcp]
 *
 * --slow F multiplies the CPU each call burns (the benchmark's 10x-slower
 * instance); --stall-ms N makes every call take N ms of wall time without
 * answering anything else meanwhile (a hung instance: timeouts, ejection);
 * --report-ms N reports utilisation and qps to thothd every N ms
 * (thoth_service_report_load); --load U,Q reports utilisation U and Q qps
 * instead of what it measured (a known report for the dashboard's test;
 * every 100 ms unless --report-ms says otherwise).  It serves both Work and Shard on one socket
 * per interface: NAME for Work, NAME-shard for Shard (as shard K: its
 * registration's instance_id is K + 1, THOTH_POOL_SHARD_ID).  --tcp serves
 * Work over TCP on loopback instead (DIR/cluster.token), registered at its
 * "tcp:" address; --hostile MODE serves none of that: a TCP address that
 * misbehaves (hostile.c).  On SIGTERM it says on stderr how many Shard.get
 * calls it served ("pool_service PID: served N get calls").
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "pooltest.thoth.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/tcp.h"

#include "hostile.h"

static double slow = 1.0;
static uint32_t stall_ms;
static uint64_t calls;
static uint64_t gets;                    /* Shard.get calls served: said at exit */

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Burn US microseconds of this thread's CPU time (not wall time: on a
 * loaded machine the work per call stays the same). */
static void burn(uint32_t us)
{
	if (stall_ms) {
		struct timespec ts = { stall_ms / 1000, (long)(stall_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	uint64_t want = (uint64_t)((double)us * 1000.0 * slow), t0 = cpu_ns();
	while (cpu_ns() - t0 < want)
		;
}

static int on_work(void *self, const thoth_pooltest_Work_work_req_t *req,
		   thoth_pooltest_Work_work_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)arena;
	calls++;
	burn(req->spin_us);
	resp->id = req->id;
	resp->pid = (uint32_t)getpid();
	return 0;
}

static int on_once(void *self, const thoth_pooltest_Work_once_req_t *req,
		   thoth_pooltest_Work_once_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)arena;
	calls++;
	burn(req->spin_us);
	resp->id = req->id;
	resp->pid = (uint32_t)getpid();
	return 0;
}

static int on_fail(void *self, const thoth_pooltest_Work_fail_req_t *req,
		   thoth_pooltest_Work_fail_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)req;
	(void)resp;
	(void)arena;
	calls++;
	return THOTH_POOLTEST_ERR_REFUSED;
}

static int on_get(void *self, const thoth_pooltest_Shard_get_req_t *req,
		  thoth_pooltest_Shard_get_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)arena;
	calls++;
	gets++;
	resp->key = req->key;
	resp->pid = (uint32_t)getpid();
	return 0;
}

static const thoth_pooltest_Work_handlers_t work_handlers = {
	.work = on_work, .once = on_once, .fail = on_fail,
};
static int on_spin(void *self, const thoth_pooltest_Shard_spin_req_t *req,
		   thoth_pooltest_Shard_spin_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)arena;
	calls++;
	burn(req->spin_us);
	resp->key = req->key;
	resp->pid = (uint32_t)getpid();
	return 0;
}

static const thoth_pooltest_Shard_handlers_t shard_handlers = { .get = on_get, .spin = on_spin };

static thoth_service_t *services[2];
static uint32_t report_ms;
static uint64_t last_wall, last_cpu, last_calls;
static double fixed_util = -1.0, fixed_qps;     /* --load: reported as they are */

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void report(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)timer;
	(void)arg;
	uint64_t w = wall_ns(), c = cpu_ns();
	double dt = (double)(w - last_wall) / 1e9;
	if (dt > 0) {
		double util = (double)(c - last_cpu) / 1e9 / dt, qps = (double)(calls - last_calls) / dt;
		if (fixed_util >= 0.0) {
			util = fixed_util;
			qps = fixed_qps;
		}
		(void)thoth_service_report_load(services[0], util, qps);
	}
	last_wall = w;
	last_cpu = c;
	last_calls = calls;
	thoth_loop_add_timer_in(loop, (uint64_t)report_ms * 1000000ull, 1000000, report, NULL, NULL);
}

static void on_stop(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;
	(void)arg;
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "slow", required_argument, NULL, 's' },
		{ "stall-ms", required_argument, NULL, 'S' },
		{ "report-ms", required_argument, NULL, 'R' },
		{ "shard-id", required_argument, NULL, 'K' },
		{ "hostile", required_argument, NULL, 'H' },
		{ "tcp", no_argument, NULL, 'T' },
		{ "load", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *name = "pooltest", *hostile = NULL;
	long shard_id = -1;
	bool tcp = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'r': dir = optarg; break;
		case 'n': name = optarg; break;
		case 's': slow = atof(optarg); break;
		case 'S': stall_ms = (uint32_t)atoi(optarg); break;
		case 'R': report_ms = (uint32_t)atoi(optarg); break;
		case 'K': shard_id = atol(optarg); break;
		case 'H': hostile = optarg; break;
		case 'T': tcp = true; break;
		case 'L':
			if (sscanf(optarg, "%lf,%lf", &fixed_util, &fixed_qps) != 2 || fixed_util < 0.0) {
				fprintf(stderr, "pool_service: --load wants U,Q (utilisation >= 0, qps), not %s\n",
					optarg);
				return 2;
			}
			if (!report_ms)
				report_ms = 100;
			break;
		default:
			fprintf(stderr, "usage: pool_service --runtime-dir DIR [--name N] [--slow F] "
				"[--stall-ms N] [--report-ms N] [--load U,Q] [--shard-id K] [--hostile MODE] [--tcp]\n");
			return 2;
		}
	}
	if (!dir || slow <= 0) {
		fprintf(stderr, "pool_service: --runtime-dir needed, --slow > 0\n");
		return 2;
	}
	if (hostile)
		return pool_service_hostile(dir, name, hostile);
	signal(SIGPIPE, SIG_IGN);
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_stop, NULL);
	const thoth_interface_info_t *ifaces[2] = { &thoth_pooltest_Work_info, &thoth_pooltest_Shard_info };
	thoth_invoke_fn invokes[2] = { thoth_pooltest_Work_invoke, thoth_pooltest_Shard_invoke };
	const void *handlers[2] = { &work_handlers, &shard_handlers };
	thoth_chan_server_t *srv[2] = { NULL, NULL };
	thoth_tcp_server_t *tsrv = NULL;
	for (int i = 0; i < 2; i++) {
		char path[THOTH_TCP_ADDR_MAX], svc_name[64], why[300];
		snprintf(svc_name, sizeof svc_name, "%s%s", name, i ? "-shard" : "");
		if (snprintf(path, 108, "%s/%s-%d.sock", dir, svc_name, (int)getpid()) >= 108)
			return 1;
		if (tcp && i == 0) {
			/* Work over TCP on loopback, with the runtime dir's cluster token. */
			char token[4200];
			snprintf(token, sizeof token, "%s/cluster.token", dir);
			thoth_tcp_server_config_t tcfg = {
				.addr = "tcp:127.0.0.1:0", .iface = ifaces[0], .invoke = invokes[0],
				.handlers = handlers[0], .token_file = token,
			};
			if (thoth_tcp_server_new(loop, &tcfg, &tsrv, why, sizeof why)) {
				fprintf(stderr, "pool_service: %s\n", why);
				return 1;
			}
			snprintf(path, sizeof path, "%s", thoth_tcp_server_addr(tsrv));
		} else if (thoth_chan_server_new(loop, &(thoth_chan_server_config_t){
			.path = path, .iface = ifaces[i], .invoke = invokes[i], .handlers = handlers[i],
		}, &srv[i], why, sizeof why)) {
			fprintf(stderr, "pool_service: %s\n", why);
			return 1;
		}
		thoth_service_config_t cfg = {
			.runtime_dir = dir, .name = svc_name, .version = "1.0.0", .endpoint = path,
			.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = &ifaces[i], .n_interfaces = 1,
			/* shard k registers instance_id k + 1 (THOTH_POOL_SHARD_ID) */
			.instance_id = i == 1 && shard_id >= 0 ? (uint64_t)shard_id + 1 : 0,
		};
		if (thoth_service_register(loop, &cfg, &services[i], why, sizeof why)) {
			fprintf(stderr, "pool_service: cannot register: %s\n", why);
			return 1;
		}
	}
	if (report_ms) {
		last_wall = wall_ns();
		last_cpu = cpu_ns();
		thoth_loop_add_timer_in(loop, (uint64_t)report_ms * 1000000ull, 1000000, report, NULL, NULL);
	}
	thoth_loop_run(loop);
	for (int i = 0; i < 2; i++) {
		thoth_service_withdraw(services[i]);
		thoth_chan_server_free(srv[i]);
	}
	thoth_tcp_server_free(tsrv);
	thoth_loop_free(loop);
	/* What this instance served, for a test that checks it against what
	 * its clients were answered (test_pool_bounded: one line per pid). */
	fprintf(stderr, "pool_service %d: served %llu get calls\n", (int)getpid(), (unsigned long long)gets);
	return 0;
}
