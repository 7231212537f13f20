/*
 * moderation.c - `thothctl moderation`: interrupt moderation (PM-3) on
 * this machine's devices, and what a policy chooses.  Needs no thothd.
 *
 *   thothctl moderation [--dev IF] [--probe] [--json]
 *       every NIC (or IF): its driver, the coalescing parameters the
 *       driver reports through ethtool netlink (those it supports), and
 *       for every NVMe controller with a namespace (under $THOTH_SYSFS_ROOT
 *       when set) the counters the NVMe loop samples and its interrupt
 *       coalescing (feature 0x08), or why not.  --probe also tries to change rx-usecs, rx-frames and adaptive-rx
 *       (restoring them) and says which changes the device really takes.
 *   thothctl moderation --policy none|dim|adaptive --rate MSG_PER_S [--json]
 *       the profile {messages, us} the policy settles on for a steady
 *       producer at that rate (the same code the channels run).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moderation.h"
#include "moderation_ethtool.h"
#include "backend.h"
#include "moderation_nvme.h"
#include "thoth/error.h"
#include "thothctl.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: thothctl moderation [--dev IF] [--probe] [--json]\n"
		   "       thothctl moderation --policy none|dim|adaptive --rate MSG_PER_S [--json]\n"
		   "(fixed takes its profile from the channel's configuration: no rate picks one)\n");
}

static void driver_of(const char *ifname, char *out, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	snprintf(path, sizeof path, "/sys/class/net/%s/device/driver", ifname);
	ssize_t n = readlink(path, target, sizeof target - 1);
	if (n <= 0) {
		snprintf(out, len, "none");
		return;
	}
	target[n] = 0;
	const char *slash = strrchr(target, '/'), *name = slash ? slash + 1 : target;
	size_t l = strlen(name) < len ? strlen(name) : len - 1;
	memcpy(out, name, l);
	out[l] = 0;
}

/* Try V on IF, read it back, restore OLD: "applied", "accepted but not
 * applied", or "refused: <why>". */
static void probe_one(thoth_ethtool_t *h, const char *ifname, const thoth_coalesce_t *v, const thoth_coalesce_t *old,
		      bool (*took)(const thoth_coalesce_t *now, const thoth_coalesce_t *v), char *out, size_t len)
{
	char why[300];
	int r = thoth_ethtool_coalesce_set(h, ifname, v, why, sizeof why);
	if (r) {
		snprintf(out, len, "refused: %s", why);
		return;
	}
	thoth_coalesce_t now;
	if (thoth_ethtool_coalesce_get(h, ifname, &now, why, sizeof why)) {
		snprintf(out, len, "accepted; reading back failed: %s", why);
	} else {
		snprintf(out, len, "%s", took(&now, v) ? "applied" : "accepted but not applied (reads back unchanged)");
	}
	thoth_coalesce_t restore = *old;
	restore.present &= v->present;
	thoth_ethtool_coalesce_set(h, ifname, &restore, why, sizeof why);
}

static bool took_usecs(const thoth_coalesce_t *now, const thoth_coalesce_t *v) { return now->rx_usecs == v->rx_usecs; }
static bool took_frames(const thoth_coalesce_t *now, const thoth_coalesce_t *v) { return now->rx_frames == v->rx_frames; }
static bool took_adaptive(const thoth_coalesce_t *now, const thoth_coalesce_t *v) { return now->adaptive_rx == v->adaptive_rx; }

static int show_nic(thoth_ethtool_t *h, const char *ifname, bool probe, bool json, bool *first)
{
	char drv[64], why[300], line[400];
	driver_of(ifname, drv, sizeof drv);
	thoth_coalesce_t c;
	int r = thoth_ethtool_coalesce_get(h, ifname, &c, why, sizeof why);
	char p_usecs[360] = "", p_frames[360] = "", p_adaptive[360] = "";
	if (!r && probe) {
		if (c.present & THOTH_COAL_RX_USECS) {
			thoth_coalesce_t v = { .present = THOTH_COAL_RX_USECS, .rx_usecs = c.rx_usecs == 8 ? 16 : 8 };
			probe_one(h, ifname, &v, &c, took_usecs, p_usecs, sizeof p_usecs);
		} else {
			snprintf(p_usecs, sizeof p_usecs, "not supported by the driver");
		}
		if (c.present & THOTH_COAL_RX_FRAMES) {
			thoth_coalesce_t v = { .present = THOTH_COAL_RX_FRAMES, .rx_frames = c.rx_frames == 8 ? 16 : 8 };
			probe_one(h, ifname, &v, &c, took_frames, p_frames, sizeof p_frames);
		} else {
			snprintf(p_frames, sizeof p_frames, "not supported by the driver");
		}
		if (c.present & THOTH_COAL_ADAPTIVE_RX) {
			thoth_coalesce_t v = { .present = THOTH_COAL_ADAPTIVE_RX, .adaptive_rx = !c.adaptive_rx };
			probe_one(h, ifname, &v, &c, took_adaptive, p_adaptive, sizeof p_adaptive);
		} else {
			snprintf(p_adaptive, sizeof p_adaptive, "not supported by the driver");
		}
	}
	if (json) {
		printf("%s{\"dev\":", *first ? "" : ",");
		thothctl_json_str(ifname, strlen(ifname));
		printf(",\"driver\":");
		thothctl_json_str(drv, strlen(drv));
		if (r) {
			printf(",\"error\":");
			thothctl_json_str(why, strlen(why));
		} else {
			printf(",\"supported\":{\"rx_usecs\":%s,\"rx_frames\":%s,\"tx_usecs\":%s,\"tx_frames\":%s,"
			       "\"adaptive_rx\":%s,\"adaptive_tx\":%s}",
			       c.present & THOTH_COAL_RX_USECS ? "true" : "false",
			       c.present & THOTH_COAL_RX_FRAMES ? "true" : "false",
			       c.present & THOTH_COAL_TX_USECS ? "true" : "false",
			       c.present & THOTH_COAL_TX_FRAMES ? "true" : "false",
			       c.present & THOTH_COAL_ADAPTIVE_RX ? "true" : "false",
			       c.present & THOTH_COAL_ADAPTIVE_TX ? "true" : "false");
			printf(",\"rx_usecs\":%u,\"rx_frames\":%u,\"tx_usecs\":%u,\"tx_frames\":%u,\"adaptive_rx\":%s",
			       c.rx_usecs, c.rx_frames, c.tx_usecs, c.tx_frames, c.adaptive_rx ? "true" : "false");
			if (probe) {
				printf(",\"probe\":{\"rx_usecs\":");
				thothctl_json_str(p_usecs, strlen(p_usecs));
				printf(",\"rx_frames\":");
				thothctl_json_str(p_frames, strlen(p_frames));
				printf(",\"adaptive_rx\":");
				thothctl_json_str(p_adaptive, strlen(p_adaptive));
				printf("}");
			}
		}
		printf("}");
	} else if (r) {
		printf("%-8s driver %-12s coalescing: %s\n", ifname, drv, why);
	} else {
		thoth_coalesce_describe(&c, line, sizeof line);
		printf("%-8s driver %-12s %s\n", ifname, drv, line);
		if (probe)
			printf("%-8s probe: rx-usecs %s; rx-frames %s; adaptive-rx %s\n", "", p_usecs, p_frames, p_adaptive);
	}
	*first = false;
	return r == 0 || r == THOTH_E_NOT_FOUND ? 0 : 1;
}

/* Every NVMe controller with a namespace under (the root's) /sys/block:
 * the counters the NVMe loop samples and feature 0x08 through the real
 * admin ioctl, or why it cannot be read. */
static void show_nvme(bool json)
{
	char dir[600], ctrls[32][16];
	unsigned n = 0;
	DIR *d = thoth_pm_path(dir, sizeof dir, "/sys/block") ? NULL : opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)) && n < 32) {
		char c[16];
		size_t l = strcspn(de->d_name + (strncmp(de->d_name, "nvme", 4) ? 0 : 4), "n");
		if (strncmp(de->d_name, "nvme", 4) || l + 4 >= sizeof c)
			continue;
		memcpy(c, de->d_name, l + 4);
		c[l + 4] = 0;
		if (thoth_nvme_ctrl_name_check(c) || de->d_name[l + 4] != 'n')
			continue;
		bool dup = false;
		for (unsigned i = 0; i < n; i++)
			dup |= !strcmp(ctrls[i], c);
		if (!dup)
			memcpy(ctrls[n++], c, sizeof c);
	}
	if (d)
		closedir(d);
	if (!n && !json)
		printf("NVMe: no controller (no nvme<N>n<K> under %s): interrupt coalescing (feature 0x08) not available "
		       "here\n", dir);
	for (unsigned i = 0; i < n; i++) {
		char why[300], gwhy[300], dev[48];
		thoth_nvme_counters_t c;
		int r = thoth_nvme_read_counters(ctrls[i], &c, why, sizeof why);
		snprintf(dev, sizeof dev, "/dev/%.15s", ctrls[i]);
		uint32_t dw = 0;
		int g = thoth_nvme_coalesce_get(dev, &dw, gwhy, sizeof gwhy);
		thoth_mod_profile_t p = thoth_nvme_coalesce_decode(dw);
		if (json) {
			printf("%s{\"ctrl\":\"%s\"", i ? "," : "", ctrls[i]);
			if (r) {
				printf(",\"counters_error\":");
				thothctl_json_str(why, strlen(why));
			} else {
				printf(",\"namespaces\":%u,\"completions\":%llu,\"sectors\":%llu,\"io_queue_irqs\":%llu,"
				       "\"io_queues\":%u",
				       c.namespaces, (unsigned long long)c.ios, (unsigned long long)c.sectors,
				       (unsigned long long)c.irqs, c.queues);
			}
			if (g) {
				printf(",\"feature_08_error\":");
				thothctl_json_str(gwhy, strlen(gwhy));
			} else {
				printf(",\"feature_08\":%u,\"threshold\":%u,\"time_us\":%u", dw, p.max_msgs, p.max_us);
			}
			printf("}");
			continue;
		}
		if (r)
			printf("NVMe %s: counters: %s\n", ctrls[i], why);
		else
			printf("NVMe %s: %u namespace(s), %llu completions, %llu interrupts on %u I/O queue(s)%s\n", ctrls[i],
			       c.namespaces, (unsigned long long)c.ios, (unsigned long long)c.irqs, c.queues,
			       c.queues ? "" : " (no interrupt lines: the loop counts samples)");
		if (g)
			printf("NVMe %s: feature 0x08: %s\n", ctrls[i], gwhy);
		else
			printf("NVMe %s: interrupt coalescing feature 0x08 = 0x%04x (%u completions / %u us)\n", ctrls[i], dw,
			       p.max_msgs, p.max_us);
	}
}

static int show_devices(const char *dev, bool probe, bool json)
{
	char why[300];
	thoth_ethtool_t *h;
	int r = thoth_ethtool_open(&h, why, sizeof why);
	int status = 0;
	bool first = true;
	if (json)
		printf("{\"nics\":[");
	if (r) {
		if (!json)
			printf("NICs: ethtool netlink unavailable: %s\n", why);
		status = 1;
	} else if (dev) {
		status |= show_nic(h, dev, probe, json, &first);
	} else {
		DIR *d = opendir("/sys/class/net");
		struct dirent *de;
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.' && strlen(de->d_name) < 16)
				status |= show_nic(h, de->d_name, probe, json, &first);
		if (d)
			closedir(d);
	}
	thoth_ethtool_close(h);
	if (json)
		printf("],\"nvme\":[");
	show_nvme(json);
	if (json)
		printf("]}\n");
	return status;
}

/* Steady producer at RATE: the profile the policy settles on after 200 ms. */
static int show_policy(const char *name, const char *rate_s, bool json)
{
	thoth_mod_kind_t kind;
	char *end;
	errno = 0;
	unsigned long long rate = rate_s ? strtoull(rate_s, &end, 10) : 0;
	/* a digit first: strtoull takes "-18446744073709551615" as 1 */
	/* which of the two is wrong, and how (one line said both were) */
	if (!name)
		return thothctl_usage_error("moderation", "--rate needs --policy none|dim|adaptive", NULL);
	if (thoth_mod_kind_parse(name, &kind) || kind == THOTH_MOD_FIXED)
		return thothctl_usage_error("moderation", "--policy wants none, dim or adaptive, not", name);
	if (!rate_s)
		return thothctl_usage_error("moderation", "--policy needs --rate 1..100000000 messages/s", NULL);
	if (*end || errno || rate_s[0] < '0' || rate_s[0] > '9' || rate < 1 || rate > 100000000ull)
		return thothctl_usage_error("moderation", "--rate wants 1..100000000 messages/s, not", rate_s);
	thoth_mod_t m;
	thoth_mod_config_t cfg = { .kind = kind };
	thoth_mod_init(&m, &cfg);
	thoth_mod_sample_t s = { .time_ns = 1000000000u };
	uint64_t gap = 1000000000ull / rate, end_ns = s.time_ns + 200000000u;
	if (!gap)
		gap = 1;
	while (s.time_ns < end_ns) {
		thoth_mod_profile_t p = thoth_mod_profile(&m);
		uint64_t n = 1;
		if (thoth_mod_profile_defers(p)) {
			uint64_t by_time = (uint64_t)p.max_us * 1000u / gap;
			n = by_time < p.max_msgs ? (by_time ? by_time : 1) : p.max_msgs;
		}
		s.time_ns += n * gap;
		s.events++;
		s.msgs += n;
		s.bytes += n * 64;
		thoth_mod_update(&m, &s);
	}
	thoth_mod_profile_t p = thoth_mod_profile(&m);
	double per_wake = 1;
	if (thoth_mod_profile_defers(p)) {
		double by_time = (double)p.max_us * 1e-6 * (double)rate;
		per_wake = by_time < p.max_msgs ? (by_time > 1 ? by_time : 1) : p.max_msgs;
	}
	if (json)
		printf("{\"policy\":\"%s\",\"rate\":%llu,\"max_msgs\":%u,\"max_us\":%u,\"msgs_per_wakeup\":%.1f}\n",
		       name, rate, p.max_msgs, p.max_us, per_wake);
	else
		printf("%s at %llu msg/s: %s {%u messages, %u us}, ~%.1f messages per wake-up\n", name, rate,
		       thoth_mod_profile_defers(p) ? "moderates" : "no moderation", p.max_msgs, p.max_us, per_wake);
	return 0;
}

int thothctl_moderation(int argc, char **argv, const thothctl_opts_t *opts)
{
	static const struct option options[] = {
		{ "dev", required_argument, NULL, 'd' },
		{ "probe", no_argument, NULL, 'p' },
		{ "policy", required_argument, NULL, 'P' },
		{ "rate", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dev = NULL, *policy = NULL, *rate = NULL;
	bool probe = false;
	int opt;
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value("moderation", empty, opt == 'P' ? "none dim adaptive" : NULL);
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'p': probe = true; break;
		case 'P': policy = optarg; break;
		case 'r': rate = optarg; break;
		case 'h': usage(stdout); return 0;
		case ':':
			return thothctl_usage_error("moderation", "missing value for", thothctl_refused_word(argc, argv));
		default:
			return thothctl_usage_error("moderation", "unknown option", thothctl_refused_word(argc, argv));
		}
	}
	if (optind < argc)
		return thothctl_usage_error("moderation", "unexpected argument", argv[optind]);
	/* the two forms do not mix: --dev/--probe were ignored beside --policy */
	if ((policy || rate) && (dev || probe))
		return thothctl_usage_error("moderation", "--policy/--rate (a model) and --dev/--probe (the "
					    "devices) are two forms, not one", NULL);
	if (dev && (!*dev || strlen(dev) >= 16 || strchr(dev, '/'))) {
		/* "of 1 to 15 bytes, not a/b" blamed the length of a 3-byte
		 * name refused for its '/' */
		return thothctl_usage_error("moderation", "--dev wants an interface name (1 to 15 bytes, no "
					    "'/'), not", dev);
	}
	/* A named interface that does not exist is an error, not a line among
	 * the devices (ethtool's "no device" is taken for "nothing to show"
	 * when every interface is listed). */
	if (dev && !if_nametoindex(dev)) {
		fprintf(stderr, "thothctl: moderation: --dev %s: no such network interface\n", peertext_textz(dev));
		return 1;
	}
	if (policy || rate)
		return show_policy(policy, rate, opts->json);
	return show_devices(dev, probe, opts->json);
}
