/*
 * moderator_cli.h - what nic-moderator and nvme-moderator share: the
 * policy options (--policy, --budget-us, --sample-ms) with their checks and
 * messages, and the loop they run on until SIGTERM / SIGINT.
 */
#ifndef THOTH_SERVICES_MODERATOR_CLI_H
#define THOTH_SERVICES_MODERATOR_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "moderation.h"
#include "thoth/loop.h"

typedef struct moderator_opts {
	thoth_mod_config_t pol;         /* adaptive unless --policy; fixed.max_us = --budget-us */
	unsigned long sample_ms;        /* 10 unless --sample-ms */
	unsigned long budget_us;        /* 0: the policy's default */
} moderator_opts_t;

/* The three options' rows of a getopt_long table (values 'p', 'b', 's'). */
#define MODERATOR_POLICY_OPTIONS                                                                   \
	{ "policy", required_argument, NULL, 'p' }, { "budget-us", required_argument, NULL, 'b' }, \
		{ "sample-ms", required_argument, NULL, 's' }

void moderator_opts_init(moderator_opts_t *o);

/* getopt_long's C with ARG: 1 taken, 0 not one of the three, -1 refused
 * (the reason printed on stderr as "PROG: --option ARG: what it takes";
 * the caller exits 2). */
int moderator_opt(const char *prog, int c, const char *arg, moderator_opts_t *o);

/* A loop that SIGTERM and SIGINT stop; NULL after "PROG: cannot create
 * the event loop" on stderr. */
thoth_loop_t *moderator_loop_new(const char *prog);

#endif
