/*
 * nvme-moderator - drives an NVMe controller's interrupt coalescing
 * (Set Features 0x08) from its live completion and interrupt counters
 * (PM-3): the loop of kernel/pm/moderation_nvme.h on a thoth_loop, with
 * the same policy code as the channels and nic-moderator.
 *
 *   nvme-moderator --ctrl nvmeN [--policy adaptive|dim] [--budget-us N]
 *                  [--sample-ms N] [--stall-ms N] [--wake perf|files]
 *                  [--fake-controller[=ok|reject|reject-set|enotty|eperm|ignore]] [--json]
 *
 * Idle (no completion on the controller's namespaces) it sleeps with no
 * timer: a block_rq_issue perf event per CPU, filtered to the
 * namespaces, wakes it on the first request issued (--wake files: inotify on
 * the namespaces' sysfs directories instead, for fixture trees under
 * $THOTH_SYSFS_ROOT).  While I/O completes it samples the counters every
 * --sample-ms (10) and sends Set Features 0x08 when the policy's profile
 * encodes differently.  Requests in flight with none completing keep it
 * sampling for --stall-ms (100), then it backs off to re-reading the
 * counters at most once a second until they complete.  Each command sent is one line on stdout (--json:
 * one object).  SIGTERM / SIGINT: the controller gets back the value it
 * had at start, a summary line is printed, exit 0.
 *
 * --fake-controller answers the admin commands itself instead of
 * /dev/nvmeN (this VM has no NVMe controller; tests) and prints every
 * command it received (opcode, cdw10, cdw11); =reject answers every
 * command on feature 0x08 with Invalid Field in Command, =reject-set only
 * Set Features, =enotty / =eperm fail like the ioctl on a non-NVMe file or
 * without CAP_SYS_ADMIN, =ignore accepts sets without changing the value.
 * Exit 1 with the reason when the controller, its namespaces, perf or the
 * admin command is refused; exit 2 for a bad argument.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moderation_nvme.h"
#include "moderator_cli.h"
#include "thoth/error.h"
#include "thoth/loop.h"

static bool json;
static thoth_nvme_fake_t fake;
static bool use_fake;
static uint64_t fake_printed;

static void usage(FILE *f)
{
	fprintf(f, "usage: nvme-moderator --ctrl nvmeN [--policy adaptive|dim] [--budget-us N] [--sample-ms N]\n"
		   "                      [--stall-ms N] [--wake perf|files]\n"
		   "                      [--fake-controller[=ok|reject|reject-set|enotty|eperm|ignore]] [--json]\n");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s >= 0x20)
			putchar(*s);
	putchar('"');
}

/* The fake controller's log since the last print. */
static void print_fake_commands(void)
{
	if (!use_fake)
		return;
	if (fake.n - fake_printed > THOTH_NVME_FAKE_LOG)
		fake_printed = fake.n - THOTH_NVME_FAKE_LOG;
	for (; fake_printed < fake.n; fake_printed++) {
		const struct nvme_admin_cmd *c = &fake.log[fake_printed % THOTH_NVME_FAKE_LOG];
		if (json)
			printf("{\"command\":{\"opcode\":%u,\"cdw10\":%u,\"cdw11\":%u}}\n", c->opcode, c->cdw10, c->cdw11);
		else
			printf("fake controller: opcode 0x%02x cdw10 0x%08x cdw11 0x%08x\n", c->opcode, c->cdw10, c->cdw11);
	}
}

static void on_change(void *arg, const thoth_nvmemod_change_t *c)
{
	const char *ctrl = arg;
	print_fake_commands();
	thoth_mod_profile_t got = thoth_nvme_coalesce_decode(c->asked);
	if (json) {
		printf("{\"ctrl\":\"%s\",\"t_ns\":%llu,\"rate\":%llu,\"irq_rate\":%llu,\"profile\":{\"msgs\":%u,\"us\":%u},"
		       "\"asked\":%u",
		       ctrl, (unsigned long long)c->time_ns, (unsigned long long)c->rate, (unsigned long long)c->irq_rate,
		       c->profile.max_msgs, c->profile.max_us, c->asked);
		if (c->read_ok)
			printf(",\"readback\":%u", c->readback);
		if (c->err || c->why[0]) {
			printf(",\"%s\":", c->err ? "error" : "note");
			json_str(c->why);
		}
		printf("}\n");
	} else {
		printf("%s: %llu completions/s, %llu interrupts/s -> profile %u / %u us; feature 0x08 = 0x%04x "
		       "(%u completions / %u us)",
		       ctrl, (unsigned long long)c->rate, (unsigned long long)c->irq_rate, c->profile.max_msgs,
		       c->profile.max_us, c->asked, got.max_msgs, got.max_us);
		if (c->read_ok)
			printf(", reads back 0x%04x", c->readback);
		if (c->err)
			printf("; refused: %s", c->why);
		else if (c->why[0])
			printf("; %s", c->why);
		printf("\n");
	}
	fflush(stdout);
}

static int parse_fake(const char *s)
{
	if (!s || !strcmp(s, "ok"))
		return 0;
	if (!strcmp(s, "reject"))
		fake.reject_status = 0x4002;      /* DNR | Invalid Field in Command */
	else if (!strcmp(s, "reject-set"))
		fake.set_status = 0x410e;         /* DNR | Feature Not Changeable */
	else if (!strcmp(s, "enotty"))
		fake.fail_errno = ENOTTY;
	else if (!strcmp(s, "eperm"))
		fake.fail_errno = EPERM;
	else if (!strcmp(s, "ignore"))
		fake.ignore_sets = true;
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *ctrl = NULL, *fake_mode = NULL;
	moderator_opts_t mo;
	moderator_opts_init(&mo);
	thoth_nvmemod_wake_t wake = THOTH_NVMEMOD_WAKE_PERF;
	unsigned long stall_ms = 0;
	static const struct option opts[] = {
		{ "ctrl", required_argument, NULL, 'c' },      MODERATOR_POLICY_OPTIONS,
		{ "wake", required_argument, NULL, 'w' },      { "fake-controller", optional_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },            { "help", no_argument, NULL, 'h' },
		{ "stall-ms", required_argument, NULL, 't' },  { 0 },
	};
	int c;
	thoth_nvme_fake_init(&fake, 0);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int taken = moderator_opt("nvme-moderator", c, optarg, &mo);
		if (taken < 0)
			return 2;
		if (taken)
			continue;
		switch (c) {
		case 'c': ctrl = optarg; break;
		case 'w':
			if (!strcmp(optarg, "perf"))
				wake = THOTH_NVMEMOD_WAKE_PERF;
			else if (!strcmp(optarg, "files"))
				wake = THOTH_NVMEMOD_WAKE_FILES;
			else {
				fprintf(stderr, "nvme-moderator: --wake %s: perf or files\n", optarg);
				return 2;
			}
			break;
		case 'f':
			use_fake = true;
			fake_mode = optarg;
			if (parse_fake(fake_mode)) {
				fprintf(stderr, "nvme-moderator: --fake-controller=%s: ok, reject, reject-set, enotty, eperm "
						"or ignore\n", fake_mode);
				return 2;
			}
			break;
		case 'j': json = true; break;
		case 't': {
			char *end;
			errno = 0;
			stall_ms = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || stall_ms < 1 || stall_ms > 10000) {
				fprintf(stderr, "nvme-moderator: --stall-ms %s: 1 to 10000\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ctrl || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (thoth_nvme_ctrl_name_check(ctrl)) {
		fprintf(stderr, "nvme-moderator: --ctrl %s: nvme followed by 1 to 4 digits (nvme0)\n", ctrl);
		return 2;
	}

	thoth_loop_t *loop = moderator_loop_new("nvme-moderator");
	if (!loop)
		return 1;
	thoth_nvmemod_config_t cfg = { .ctrl = ctrl, .policy = mo.pol, .sample_us = (uint32_t)(mo.sample_ms * 1000),
				       .stall_us = (uint32_t)(stall_ms * 1000), .wake = wake, .on_change = on_change, .arg = (void *)ctrl };
	if (use_fake)
		cfg.admin = thoth_nvme_fake_admin(&fake);
	thoth_nvmemod_t *m;
	char why[300];
	int r = thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why);
	if (r) {
		print_fake_commands();
		fprintf(stderr, "nvme-moderator: %s (%s)\n", why, thoth_errname(r));
		thoth_loop_free(loop);
		return 1;
	}
	if (!json) {
		printf("%s: driving %s with %s (%s), waking on %s, sampling every %lu ms while I/O completes\n", ctrl,
		       use_fake ? "a fake controller" : "its feature 0x08", thoth_mod_kind_name(mo.pol.kind),
		       mo.budget_us ? "budget set" : "default budget",
		       wake == THOTH_NVMEMOD_WAKE_PERF ? "block_rq_issue (perf)" : "sysfs file changes", mo.sample_ms);
		fflush(stdout);
	}
	r = thoth_loop_run(loop);
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(m, &st);
	thoth_nvmemod_stop(m);
	print_fake_commands();
	thoth_loop_stats_t ls;
	thoth_loop_stats(loop, &ls);
	if (json) {
		printf("{\"ctrl\":\"%s\",\"summary\":{\"wakes\":%llu,\"samples\":%llu,\"idles\":%llu,\"waits\":%llu,"
		       "\"stalls\":%llu,\"applies\":%llu,"
		       "\"refusals\":%llu,\"mismatches\":%llu,\"disabled\":%s,\"restored\":%u,\"loop_wakeups\":%llu",
		       ctrl, (unsigned long long)st.wakes, (unsigned long long)st.samples, (unsigned long long)st.idles,
		       (unsigned long long)st.waits, (unsigned long long)st.stalls,
		       (unsigned long long)st.applies, (unsigned long long)st.refusals,
		       (unsigned long long)st.mismatches, st.disabled ? "true" : "false", st.original,
		       (unsigned long long)ls.wakeups);
		if (st.disabled) {
			printf(",\"error\":");
			json_str(st.why);
		}
		printf("}}\n");
	} else {
		printf("%s: %llu wakes on I/O, %llu samples, %llu sets (%llu refused, %llu read back different), "
		       "%llu loop wake-ups; feature 0x08 restored to 0x%04x\n",
		       ctrl, (unsigned long long)st.wakes, (unsigned long long)st.samples,
		       (unsigned long long)st.applies, (unsigned long long)st.refusals,
		       (unsigned long long)st.mismatches, (unsigned long long)ls.wakeups, st.original);
		if (st.disabled)
			printf("%s: stopped driving: %s\n", ctrl, st.why);
	}
	thoth_loop_free(loop);
	return r || st.disabled ? 1 : 0;
}
