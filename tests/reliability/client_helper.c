/*
 * client_helper.c - an idle resolving client for the reliability tests:
 * holds a thoth_resolver for NAME on its loop and prints "count N" each
 * time the cache changes.  Nothing else: between changes it must sleep.
 *
 *   client_helper DIR NAME
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "thoth/loop.h"
#include "thoth/service.h"

static thoth_resolver_t *resolver;

static void on_change(void *arg)
{
	printf("count %zu\n", thoth_resolver_count(resolver));
	fflush(stdout);
}

static void on_term(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thoth_loop_stop(loop);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DIR NAME\n", argv[0]);
		return 2;
	}
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		return 1;
	thoth_loop_add_signal(loop, SIGTERM, on_term, NULL);
	thoth_resolver_config_t cfg = { .runtime_dir = argv[1], .name = argv[2],
					.on_change = on_change };
	if (thoth_resolver_new(loop, &cfg, &resolver))
		return 1;
	thoth_loop_run(loop);
	thoth_resolver_free(resolver);
	thoth_loop_free(loop);
	return 0;
}
