/*
 * pm_sim.c - `thothctl pm sim`: replay a trace on kernel/pm's simulator and
 * print what each policy would have cost (MODELLED energy, docs/PM.md).
 *
 *   thothctl pm sim TRACE [--policy P|all] [--device NAME | --cpu NAME]
 *                   [--qos-us N] [--deadline-us N] [--pid N] [--json]
 *                   [--export-list FILE] [--gov-options O]
 *
 * TRACE is a file written by `thothctl trace dump --json FILE` (or a text
 * list, sim.h), or "synthetic:SPEC" (sim.h's rt-app-like descriptions).
 * Needs no running thothd.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "thoth/error.h"
#include "thothctl.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: thothctl pm sim TRACE [--policy P|all] [--device NAME | --cpu NAME]\n"
		"                       [--qos-us N] [--deadline-us N] [--pid N] [--json]\n"
		"                       [--export-list FILE] [--gov-options O]\n"
		"\n"
		"TRACE: a Chrome JSON trace from `thothctl trace dump --json FILE`, a text\n"
		"list (\"# thoth-pm-trace v1\", then \"arrival_us work_us [deadline_us]\"\n"
		"per line), or synthetic:SPEC, e.g. 'synthetic:poisson mean_gap_us=20000\n"
		"work_us=500'.\n"
		"device policies: always-on fixed-2s fixed-2s-qos apst break-even\n"
		"                 exp-average engine oracle\n"
		"CPU governors:   performance powersave ondemand schedutil thoth optimum\n"
		"devices: nvme-samsung-950 (default) nvme-toshiba-xg4 nic-sim\n"
		"CPUs:    hikey-a53 (default) juno-a57 juno-a53\n"
		"--pid N picks the serving process of a JSON trace (default: the one with\n"
		"the most requests); --export-list FILE also writes the requests as a text\n"
		"list (small enough to keep in a source tree).\n"
		"--gov-options O: the thoth governor's options, none ff chain ff+chain\n"
		"(default: ff+chain; docs/PM.md \"The governor's options\").\n"
		"Energy is MODELLED from published tables, not measured.\n");
}

static int bad(const char *what, const char *arg)
{
	return thothctl_usage_error("pm sim", what, arg);
}

/* What --policy takes, from the simulator's own names (a list typed here
 * would drift from them): all, the device policies, the CPU governors and
 * optimum. */
static const char *policy_names(void)
{
	static char list[512];
	size_t n = (size_t)snprintf(list, sizeof list, "all");
	for (int p = 0; p < THOTH_PM_DEV_COUNT && n < sizeof list; p++)
		n += (size_t)snprintf(list + n, sizeof list - n, " %s", thoth_pm_device_policy_name(p));
	for (int k = 0; k < THOTH_PM_GOV_COUNT && n < sizeof list; k++)
		n += (size_t)snprintf(list + n, sizeof list - n, " %s", thoth_pm_governor_name(k));
	if (n < sizeof list)
		snprintf(list + n, sizeof list - n, " optimum");
	return list;
}

/* An option given an empty value (`--policy=`): said, with what it takes. */
static int empty_value(const char *name, int opt)
{
	return thothctl_empty_value("pm sim", name, opt == 'p' ? policy_names()
					   : opt == 'g' ? "none ff chain ff+chain" : NULL);
}

/* An unknown --policy: named, and the list of those it takes. */
static int unknown_policy(const char *policy)
{
	const char *names = policy_names();
	size_t cap = strlen(policy) + strlen(names) + 32;
	char *arg = malloc(cap);
	if (!arg)
		return bad("--policy: unknown policy", policy);
	snprintf(arg, cap, "%s; it takes one of %s", policy, names);
	int rc = bad("--policy: unknown policy", arg);
	free(arg);
	return rc;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || v > max || s[0] == '-')
		return false;
	*out = v;
	return true;
}

/* thothctl's JSON string (json.c): a trace named "é.txt" came out as
 * "\u00c3\u00a9.txt" (each UTF-8 byte escaped as a code point of its own). */
static void json_string(const char *s)
{
	thothctl_json_str(s, strlen(s));
}

static int run_device(const thoth_pm_trace_t *t, const thoth_pm_device_model_t *m, uint64_t qos,
		      int only, bool json)
{
	thoth_pm_device_result_t r[THOTH_PM_DEV_COUNT];
	for (int p = 0; p < THOTH_PM_DEV_COUNT; p++)
		thoth_pm_sim_device(m, qos, t, p, &r[p]);
	double oracle = r[THOTH_PM_DEV_ORACLE].energy_mj;
	if (json) {
		printf("{\"trace\":");
		json_string(t->name);
		printf(",\"origin\":");
		json_string(t->origin);
		printf(",\"requests\":%zu,\"kind\":\"device\",\"model\":", t->count);
		json_string(m->desc.name);
		printf(",\"model_source\":");
		json_string(m->source);
		printf(",\"qos_ns\":%llu,\"energy\":\"modelled\",\"results\":[",
		       (unsigned long long)qos);
	} else {
		printf("trace %s (%s), %zu requests\n", t->name, t->origin, t->count);
		printf("device %s (%s), QoS %.3f ms; energy is MODELLED\n", m->desc.name, m->source,
		       qos == THOTH_PM_NONE ? -1.0 : qos / 1e6);
		printf("%-13s %12s %9s %6s %9s %8s %12s\n", "policy", "energy_mJ", "vs_oracle",
		       "viol", "too_deep", "sleeps", "max_wake_ms");
	}
	bool first = true;
	for (int p = 0; p < THOTH_PM_DEV_COUNT; p++) {
		if (only >= 0 && p != only)
			continue;
		if (json) {
			printf("%s{\"policy\":\"%s\",\"energy_mj\":%.6f,\"ratio_to_oracle\":%.6f,"
			       "\"qos_violations\":%llu,\"too_deep\":%llu,\"sleeps\":%llu,"
			       "\"idle_periods\":%llu,\"max_wake_delay_ns\":%llu}",
			       first ? "" : ",", thoth_pm_device_policy_name(p), r[p].energy_mj,
			       r[p].energy_mj / oracle, (unsigned long long)r[p].qos_violations,
			       (unsigned long long)r[p].too_deep, (unsigned long long)r[p].sleeps,
			       (unsigned long long)r[p].idle_periods,
			       (unsigned long long)r[p].max_wake_delay_ns);
		} else {
			printf("%-13s %12.3f %8.3fx %6llu %9llu %8llu %12.3f\n",
			       thoth_pm_device_policy_name(p), r[p].energy_mj, r[p].energy_mj / oracle,
			       (unsigned long long)r[p].qos_violations,
			       (unsigned long long)r[p].too_deep, (unsigned long long)r[p].sleeps,
			       r[p].max_wake_delay_ns / 1e6);
		}
		first = false;
	}
	if (json)
		printf("]}\n");
	return 0;
}

static int run_cpu(const thoth_pm_trace_t *t, const thoth_pm_cpu_model_t *m, int only,
		   unsigned gov_options, bool json)
{
	thoth_pm_cpu_result_t r[THOTH_PM_CPU_OPTIMUM + 1];
	for (int k = 0; k <= THOTH_PM_CPU_OPTIMUM; k++)
		thoth_pm_sim_cpu_options(m, t, k, gov_options, &r[k]);
	double su = r[THOTH_PM_GOV_SCHEDUTIL].energy_mj, opt = r[THOTH_PM_CPU_OPTIMUM].energy_mj;
	if (json) {
		printf("{\"trace\":");
		json_string(t->name);
		printf(",\"origin\":");
		json_string(t->origin);
		printf(",\"requests\":%zu,\"kind\":\"cpu\",\"model\":", t->count);
		json_string(m->name);
		printf(",\"model_source\":");
		json_string(m->source);
		printf(",\"energy\":\"modelled\",\"gov_options\":\"%s\",\"results\":[",
		       thoth_pm_governor_options_name(gov_options));
	} else {
		printf("trace %s (%s), %zu requests\n", t->name, t->origin, t->count);
		printf("cpu %s (%s); energy is MODELLED; thoth governor options: %s\n", m->name,
		       m->source, thoth_pm_governor_options_name(gov_options));
		printf("%-12s %12s %8s %8s %6s %7s %10s\n", "governor", "energy_mJ", "vs_sutil",
		       "vs_opt", "miss", "ineff", "ramp_p95");
	}
	bool first = true;
	for (int k = 0; k <= THOTH_PM_CPU_OPTIMUM; k++) {
		if (only >= 0 && k != only)
			continue;
		const char *name = k == THOTH_PM_CPU_OPTIMUM ? "optimum" : thoth_pm_governor_name(k);
		double ineff = r[k].busy_ns ? (double)r[k].inefficient_busy_ns / r[k].busy_ns : 0;
		if (json)
			printf("%s{\"governor\":\"%s\",\"energy_mj\":%.6f,\"ratio_to_schedutil\":%.6f,"
			       "\"ratio_to_optimum\":%.6f,\"deadline_misses\":%llu,"
			       "\"inefficient_residency\":%.6f,\"ramp_p95_ns\":%llu}",
			       first ? "" : ",", name, r[k].energy_mj, r[k].energy_mj / su,
			       r[k].energy_mj / opt, (unsigned long long)r[k].deadline_misses, ineff,
			       (unsigned long long)r[k].ramp_p95_ns);
		else
			printf("%-12s %12.3f %7.3fx %7.3fx %6llu %6.1f%% %8.2fms\n", name,
			       r[k].energy_mj, r[k].energy_mj / su, r[k].energy_mj / opt,
			       (unsigned long long)r[k].deadline_misses, 100 * ineff,
			       r[k].ramp_p95_ns / 1e6);
		first = false;
	}
	if (json)
		printf("]}\n");
	return 0;
}

int thothctl_pm_sim(int argc, char **argv, const thothctl_opts_t *opts)
{
	/* The simulator needs no thothd: opts->runtime_dir is unused. */
	static const struct option options[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "device", required_argument, NULL, 'd' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "qos-us", required_argument, NULL, 'q' },
		{ "deadline-us", required_argument, NULL, 'D' },
		{ "pid", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "export-list", required_argument, NULL, 'x' },
		{ "gov-options", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy = "all", *device = NULL, *cpu = NULL, *export_path = NULL;
	uint64_t qos_us = 0, deadline_us = 0, pid = 0;
	bool json = opts->json, have_qos = false;
	unsigned gov_options = THOTH_PM_GOV_DEFAULT_OPTIONS;
	int opt;
	optind = 1;
	opterr = 0;     /* our messages, not getopt's "sim: option ..." */
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return empty_value(empty, opt);
		switch (opt) {
		case 'p': policy = optarg; break;
		case 'd': device = optarg; break;
		case 'c': cpu = optarg; break;
		case 'q':
			if (!parse_u64(optarg, THOTH_PM_TRACE_MAX_NS / 1000, &qos_us))
				return bad("--qos-us: not a number of us up to an hour:", optarg);
			have_qos = true;
			break;
		case 'D':
			if (!parse_u64(optarg, THOTH_PM_TRACE_MAX_NS / 1000, &deadline_us) || !deadline_us)
				return bad("--deadline-us: not a number of us in 1..3600e6:", optarg);
			break;
		case 'P':
			if (!parse_u64(optarg, UINT32_MAX, &pid))
				return bad("--pid: not a process id:", optarg);
			break;
		case 'j': json = true; break;
		case 'x': export_path = optarg; break;
		case 'g':
			if (thoth_pm_governor_options_parse(optarg, &gov_options))
				return bad("--gov-options: expected none, ff, chain or ff+chain, not", optarg);
			break;
		case 'h': usage(stdout); return 0;
		case ':': return bad("missing value for", thothctl_refused_word(argc, argv));
		default: return bad("unknown option", thothctl_refused_word(argc, argv));
		}
	}
	if (optind != argc - 1)
		return bad(optind >= argc ? "no TRACE given" : "more than one TRACE given", NULL);
	if (device && cpu)
		return bad("--device and --cpu exclude each other", NULL);

	/* The kind of replay: from the model given, else from the policy. */
	int dev_policy = -1, gov = -1;
	thoth_pm_device_policy_t dp;
	thoth_pm_governor_kind_t gk;
	bool all = strcmp(policy, "all") == 0;
	if (!all) {
		if (thoth_pm_device_policy_parse(policy, &dp) == 0)
			dev_policy = (int)dp;
		else if (thoth_pm_governor_parse(policy, &gk) == 0)
			gov = (int)gk;
		else if (strcmp(policy, "optimum") == 0)
			gov = THOTH_PM_CPU_OPTIMUM;
		else
			return unknown_policy(policy);
	}
	bool is_cpu = cpu || gov >= 0;
	if (is_cpu && (device || dev_policy >= 0))
		return bad("a CPU governor needs --cpu, a device policy --device", NULL);
	const thoth_pm_device_model_t *dm = NULL;
	const thoth_pm_cpu_model_t *cm = NULL;
	if (is_cpu && !(cm = thoth_pm_cpu_model_find(cpu ? cpu : "hikey-a53")))
		return bad("--cpu: unknown model", cpu);
	if (!is_cpu && !(dm = thoth_pm_device_model_find(device ? device : "nvme-samsung-950")))
		return bad("--device: unknown model", device);

	const char *src = argv[optind];
	uint64_t deadline = deadline_us ? deadline_us * 1000 : (is_cpu ? 1000000ull : 10000000ull);
	thoth_pm_trace_t t;
	int err;
	if (strncmp(src, "synthetic:", 10) == 0) {
		const char *why = "";
		err = thoth_pm_trace_generate(src + 10, NULL, &t, &why);
		if (err) {      /* a bad SPEC is a bad argument */
			fprintf(stderr, "thothctl: pm sim: %s: %s\n", src, why);
			return 2;
		}
	} else {
		char why[256] = "";
		err = thoth_pm_trace_load(src, deadline, (uint32_t)pid, &t, why, sizeof(why));
		/* TRACE that cannot be used (missing, unreadable, not a trace,
		 * no requests) is exit 2, as in every thoth tool (thothctl(1),
		 * EXIT STATUS): it was 1 here and 2 in probe. */
		if (err) {
			fprintf(stderr, "thothctl: pm sim: %s\n", why);
			return err == THOTH_E_NOMEM ? 1 : 2;
		}
	}
	if (export_path) {
		FILE *f = fopen(export_path, "w");
		int werr = f ? thoth_pm_trace_write(&t, f) : THOTH_E_IO;
		if (f && fclose(f) != 0)
			werr = THOTH_E_IO;
		if (werr) {
			fprintf(stderr, "thothctl: pm sim: --export-list %s: %s\n", export_path,
				f ? "write failed" : strerror(errno));
			thoth_pm_trace_free(&t);
			return 1;
		}
	}
	int rc = is_cpu ? run_cpu(&t, cm, gov, gov_options, json)
			: run_device(&t, dm, have_qos ? qos_us * 1000 : dm->qos_ns, dev_policy, json);
	thoth_pm_trace_free(&t);
	return rc;
}
