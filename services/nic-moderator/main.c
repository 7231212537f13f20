/*
 * nic-moderator - drives a NIC's interrupt coalescing from its live
 * counters (PM-3): the loop of kernel/pm/moderation_nic.h on a thoth_loop,
 * applying through ethtool netlink (ETHTOOL_MSG_COALESCE_SET).
 *
 *   nic-moderator --dev IF [--policy adaptive|dim] [--budget-us N]
 *                 [--sample-ms N] [--driver-adaptive] [--fixture PARAMS] [--json]
 *
 * Idle (no packet received on IF) it sleeps on a packet socket with no
 * timer; while packets flow it samples the counters every --sample-ms
 * (10) and applies the policy's profile.  Each applied change is one line
 * on stdout (--json: one JSON object), with what the device reads back.
 * SIGTERM / SIGINT: the device is left unmoderated, a summary line is
 * printed, exit 0.
 *
 * --fixture rx-usecs,rx-frames,adaptive-rx: drive a recording fixture
 * device with those parameters instead of IF's driver (the counters and
 * the wake-up are still IF's): for NICs that refuse coalescing, such as
 * this VM's virtio_net, and for tests.  Exit 1 with a reason when IF does
 * not exist, its driver offers no rx coalescing, or CAP_NET_RAW is missing.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moderation_nic.h"
#include "moderator_cli.h"
#include "thoth/error.h"
#include "thoth/loop.h"

static bool json;

static void usage(FILE *f)
{
	fprintf(f, "usage: nic-moderator --dev IF [--policy adaptive|dim] [--budget-us N] [--sample-ms N]\n"
		   "                     [--driver-adaptive] [--fixture rx-usecs,rx-frames,adaptive-rx] [--json]\n");
}

static void print_coalesce(const char *key, const thoth_coalesce_t *c)
{
	if (json) {
		printf(",\"%s\":{", key);
		const char *sep = "";
		if (c->present & THOTH_COAL_RX_USECS) {
			printf("%s\"rx_usecs\":%u", sep, c->rx_usecs);
			sep = ",";
		}
		if (c->present & THOTH_COAL_RX_FRAMES) {
			printf("%s\"rx_frames\":%u", sep, c->rx_frames);
			sep = ",";
		}
		if (c->present & THOTH_COAL_ADAPTIVE_RX)
			printf("%s\"adaptive_rx\":%s", sep, c->adaptive_rx ? "true" : "false");
		printf("}");
	} else {
		char line[300];
		thoth_coalesce_describe(c, line, sizeof line);
		printf(" %s: %s;", key, line);
	}
}

static void on_change(void *arg, const thoth_nicmod_change_t *c)
{
	const char *dev = arg;
	if (json) {
		printf("{\"dev\":\"%s\",\"t_ns\":%llu,\"rate\":%llu,\"profile\":{\"msgs\":%u,\"us\":%u}", dev,
		       (unsigned long long)c->time_ns, (unsigned long long)c->rate, c->profile.max_msgs,
		       c->profile.max_us);
		print_coalesce("asked", &c->asked);
		if (c->readback.present)
			print_coalesce("readback", &c->readback);
		if (c->err) {
			printf(",\"error\":\"");
			for (const char *p = c->why; *p; p++)
				if (*p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
					putchar(*p);
			printf("\"");
		}
		printf("}\n");
	} else {
		printf("%s: %llu pkt/s -> profile %u msgs / %u us;", dev, (unsigned long long)c->rate,
		       c->profile.max_msgs, c->profile.max_us);
		print_coalesce("asked", &c->asked);
		if (c->readback.present)
			print_coalesce("device", &c->readback);
		if (c->err)
			printf(" refused: %s", c->why);
		printf("\n");
	}
	fflush(stdout);
}

static int parse_fixture(const char *s, uint32_t *out)
{
	char buf[128];
	snprintf(buf, sizeof buf, "%s", s);
	*out = 0;
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "rx-usecs"))
			*out |= THOTH_COAL_RX_USECS;
		else if (!strcmp(t, "rx-frames"))
			*out |= THOTH_COAL_RX_FRAMES;
		else if (!strcmp(t, "adaptive-rx"))
			*out |= THOTH_COAL_ADAPTIVE_RX;
		else
			return -1;
	}
	return *out ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *dev = NULL, *fixture = NULL;
	moderator_opts_t mo;
	moderator_opts_init(&mo);
	bool driver_adaptive = false;
	static const struct option opts[] = {
		{ "dev", required_argument, NULL, 'd' },     MODERATOR_POLICY_OPTIONS,
		{ "fixture", required_argument, NULL, 'f' },  { "driver-adaptive", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },           { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int taken = moderator_opt("nic-moderator", c, optarg, &mo);
		if (taken < 0)
			return 2;
		if (taken)
			continue;
		switch (c) {
		case 'd': dev = optarg; break;
		case 'f': fixture = optarg; break;
		case 'a': driver_adaptive = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!dev || optind != argc) {
		usage(stderr);
		return 2;
	}

	char why[300];
	thoth_ethtool_t *eth = NULL;
	thoth_nicmod_record_t rec;
	thoth_nicmod_backend_t be;
	if (fixture) {
		uint32_t sup;
		if (parse_fixture(fixture, &sup)) {
			fprintf(stderr, "nic-moderator: --fixture %s: a list of rx-usecs, rx-frames, adaptive-rx\n", fixture);
			return 2;
		}
		thoth_nicmod_record_init(&rec, sup);
		be = thoth_nicmod_record_backend(&rec);
	} else {
		if (thoth_ethtool_open(&eth, why, sizeof why)) {
			fprintf(stderr, "nic-moderator: ethtool netlink: %s\n", why);
			return 1;
		}
		be = thoth_nicmod_ethtool_backend(eth);
	}
	thoth_loop_t *loop = moderator_loop_new("nic-moderator");
	if (!loop)
		return 1;
	thoth_nicmod_config_t cfg = { .ifname = dev, .policy = mo.pol, .sample_us = (uint32_t)(mo.sample_ms * 1000),
				      .use_driver_adaptive = driver_adaptive, .backend = be,
				      .on_change = on_change, .arg = (void *)dev };
	thoth_nicmod_t *m;
	int r = thoth_nicmod_start(loop, &cfg, &m, why, sizeof why);
	if (r) {
		fprintf(stderr, "nic-moderator: %s\n", why);
		thoth_loop_free(loop);
		thoth_ethtool_close(eth);
		return 1;
	}
	if (!json) {
		printf("%s: driving %s with %s (%s), sampling every %lu ms while packets flow\n", dev,
		       fixture ? "a fixture device" : "its driver", thoth_mod_kind_name(mo.pol.kind),
		       mo.budget_us ? "budget set" : "default budget", mo.sample_ms);
		fflush(stdout);
	}
	r = thoth_loop_run(loop);
	thoth_nicmod_stats_t st;
	thoth_nicmod_stats(m, &st);
	thoth_nicmod_stop(m);
	thoth_loop_stats_t ls;
	thoth_loop_stats(loop, &ls);
	if (json)
		printf("{\"dev\":\"%s\",\"summary\":{\"wakes\":%llu,\"samples\":%llu,\"idles\":%llu,\"applies\":%llu,"
		       "\"refusals\":%llu,\"loop_wakeups\":%llu}}\n",
		       dev, (unsigned long long)st.wakes, (unsigned long long)st.samples, (unsigned long long)st.idles,
		       (unsigned long long)st.applies, (unsigned long long)st.refusals,
		       (unsigned long long)ls.wakeups);
	else
		printf("%s: %llu wakes on traffic, %llu samples, %llu applies (%llu refused), %llu loop wake-ups\n",
		       dev, (unsigned long long)st.wakes, (unsigned long long)st.samples,
		       (unsigned long long)st.applies, (unsigned long long)st.refusals,
		       (unsigned long long)ls.wakeups);
	thoth_loop_free(loop);
	thoth_ethtool_close(eth);
	return r ? 1 : 0;
}
