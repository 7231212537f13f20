/*
 * moderator_cli.c - the options and loop nic-moderator and nvme-moderator
 * share (moderator_cli.h).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "moderator_cli.h"

void moderator_opts_init(moderator_opts_t *o)
{
	*o = (moderator_opts_t){ .pol = { .kind = THOTH_MOD_ADAPTIVE }, .sample_ms = 10 };
}

int moderator_opt(const char *prog, int c, const char *arg, moderator_opts_t *o)
{
	char *end;
	switch (c) {
	case 'p':
		if (thoth_mod_kind_parse(arg, &o->pol.kind) ||
		    (o->pol.kind != THOTH_MOD_ADAPTIVE && o->pol.kind != THOTH_MOD_DIM)) {
			fprintf(stderr, "%s: --policy %s: adaptive or dim\n", prog, arg);
			return -1;
		}
		return 1;
	case 'b':
		o->budget_us = strtoul(arg, &end, 10);
		if (*end || o->budget_us < 10 || o->budget_us > THOTH_MOD_MAX_US) {
			fprintf(stderr, "%s: --budget-us %s: 10 to %u\n", prog, arg, THOTH_MOD_MAX_US);
			return -1;
		}
		o->pol.fixed.max_us = (uint32_t)o->budget_us;
		return 1;
	case 's':
		o->sample_ms = strtoul(arg, &end, 10);
		if (*end || o->sample_ms < 1 || o->sample_ms > 1000) {
			fprintf(stderr, "%s: --sample-ms %s: 1 to 1000\n", prog, arg);
			return -1;
		}
		return 1;
	default:
		return 0;
	}
}

static void on_signal(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	(void)info;
	(void)arg;
	thoth_loop_stop(loop);
}

thoth_loop_t *moderator_loop_new(const char *prog)
{
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop)) {
		fprintf(stderr, "%s: cannot create the event loop\n", prog);
		return NULL;
	}
	thoth_loop_add_signal(loop, SIGTERM, on_signal, NULL);
	thoth_loop_add_signal(loop, SIGINT, on_signal, NULL);
	return loop;
}
