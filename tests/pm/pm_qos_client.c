/*
 * pm_qos_client.c - a client process for test_pm_resolve_qos: resolves
 * SERVICE with a latency bound (thoth_resolver_set_qos, or with "pool" a
 * thoth_pool with thoth_pool_set_qos) and keeps its resolver (pool) until
 * SIGTERM, so the test can kill -9 it and watch thothd release the bound.
 * Writes "qos held N" / "qos refused WHY" once thothd has answered (for
 * the log), never anything the test waits on blindly.
 *
 *   pm_qos_client RUNTIME_DIR SERVICE QOS_US [pool]
 */
#include <signal.h>
#include <sys/signalfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm.thoth.h"
#include "thoth/loop.h"
#include "thoth/pool.h"
#include "thoth/service.h"

typedef struct state {
	thoth_resolver_t *r;
	thoth_pool_t *pool;
	int reported;
} state_t;

static void on_change(void *arg)
{
	state_t *s = arg;
	thoth_resolver_qos_t q;
	if (s->r)
		thoth_resolver_qos(s->r, &q);
	else if (s->pool)
		thoth_pool_qos(s->pool, &q);
	else
		return;
	if (q.state == THOTH_RESOLVER_QOS_HELD && s->reported != q.state)
		printf("qos held %u\n", q.elements);
	else if (q.state == THOTH_RESOLVER_QOS_REFUSED && s->reported != q.state)
		printf("qos refused %s\n", q.why);
	s->reported = q.state;
	fflush(stdout);
}

static void on_term(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;
	(void)arg;
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	bool pool = argc == 5 && !strcmp(argv[4], "pool");
	if (argc != 4 && !pool) {
		fprintf(stderr, "usage: pm_qos_client RUNTIME_DIR SERVICE QOS_US [pool]\n");
		return 2;
	}
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	state_t s = { 0 };
	uint32_t us = (uint32_t)atoi(argv[3]);
	int r;
	if (pool) {
		/* The instances' addresses need not be channels (the sim
		 * driver's are not): the bound is the pool's resolve's. */
		char why[200] = "";
		thoth_pool_config_t pc = { .runtime_dir = argv[1], .name = argv[2],
					   .iface = &thoth_pm_PowerEvents_info, .on_change = on_change, .arg = &s };
		r = thoth_pool_new(loop, &pc, &s.pool, why, sizeof why);
		r = r ? r : thoth_pool_set_qos(s.pool, us);
	} else {
		thoth_resolver_config_t cfg = { .runtime_dir = argv[1], .name = argv[2],
						.on_change = on_change, .arg = &s };
		r = thoth_resolver_new(loop, &cfg, &s.r);
		r = r ? r : thoth_resolver_set_qos(s.r, us);
	}
	if (r || thoth_loop_add_signal(loop, SIGTERM, on_term, NULL)) {
		fprintf(stderr, "pm_qos_client: cannot start\n");
		return 1;
	}
	thoth_loop_run(loop);
	thoth_resolver_free(s.r);
	thoth_pool_free(s.pool);
	thoth_loop_free(loop);
	return 0;
}
