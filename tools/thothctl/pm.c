/*
 * pm.c - `thothctl pm [--json]`: the power broker's elements, levels,
 * leases and their holders, residency, transitions and modelled energy
 * (PowerBroker.state, idl/pm.tidl).  `thothctl pm sim` is the policy
 * engine's (pm_sim.c); main.c sends `pm sim` there, and so does this file
 * for `pm --json sim`.
 *
 * --json prints one object: {"now_ns", "qos_us", "cpu_qos", "lease_limit",
 * "share_refusals", "request_share_refusals", "lease_holders": [{"pid", "leases"}, ...] (most first),
 * "services": [...], "elements": [...]}; "services" lists the latency bounds clients attached
 * to a resolve (service_qos: service, qos_us, holder_pid, elements); each element has "levels", "current_level",
 * "leases" and "residency_ns" (one entry per level).  Energy figures are
 * modelled (declared power x residency) and named so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm.thoth.h"
#include "thothctl.h"

static void json_str(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const char *status_name(thoth_pm_LeaseStatus_t s)
{
	switch (s) {
	case THOTH_PM_LEASE_STATUS_PENDING: return "pending";
	case THOTH_PM_LEASE_STATUS_SATISFIED: return "satisfied";
	default: return "lost";
	}
}

static const char *kind_name(thoth_pm_LeaseKind_t k)
{
	return k == THOTH_PM_LEASE_KIND_OPPORTUNISTIC ? "opportunistic" : "assertive";
}

static bool same(thoth_str_t a, thoth_str_t b)
{
	return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Leases per holder pid, most first, into ROWS (pid, count); how many.
 * N_LEASES pids sorted once, then counted in runs: no quadratic scan of
 * 16,384 leases. */
typedef struct pid_count { uint32_t pid, n; } pid_count_t;

static int cmp_count(const void *a, const void *b)
{
	const pid_count_t *x = a, *y = b;
	return x->n != y->n ? (x->n < y->n ? 1 : -1) : (x->pid > y->pid) - (x->pid < y->pid);
}

static uint32_t leases_by_pid(const thoth_pm_PowerBroker_state_resp_t *st, pid_count_t **rows)
{
	uint32_t n = st->leases.count, k = 0;
	uint32_t *pids = malloc((n ? n : 1) * sizeof *pids);
	*rows = malloc((n ? n : 1) * sizeof **rows);
	if (!pids || !*rows) {
		free(pids);
		free(*rows);
		*rows = NULL;
		return 0;
	}
	for (uint32_t i = 0; i < n; i++)
		pids[i] = st->leases.items[i].holder_pid;
	qsort(pids, n, sizeof *pids, cmp_u32);
	for (uint32_t i = 0; i < n; i++) {
		if (!k || (*rows)[k - 1].pid != pids[i])
			(*rows)[k++] = (pid_count_t){ pids[i], 0 };
		(*rows)[k - 1].n++;
	}
	free(pids);
	qsort(*rows, k, sizeof **rows, cmp_count);
	return k;
}

static void print_cpu_json(const thoth_pm_CpuQos_t *c)
{
	printf("\"cpu_qos\":{\"request_us\":%u,\"lease_us\":%u,\"hint_us\":%u,\"by_lease\":%s,"
	       "\"by_hint\":%s,\"hint_state\":",
	       c->request_us, c->lease_us, c->hint_us, c->why & 1 ? "true" : "false",
	       c->why & 2 ? "true" : "false");
	json_str(c->hint_state.ptr, c->hint_state.len);
	printf(",\"next_wake_ns\":%llu,\"idle_driver\":", (unsigned long long)c->next_wake_ns);
	json_str(c->idle_driver.ptr, c->idle_driver.len);
	printf(",\"idle_states\":%u,\"error\":", c->idle_states);
	json_str(c->error.ptr, c->error.len);
	printf(",\"decided_ns\":%llu},", (unsigned long long)c->decided_ns);
}

/* The CPU latency request thothd holds, in words. */
static void print_cpu_text(const thoth_pm_CpuQos_t *c)
{
	printf("CPU latency request (/dev/cpu_dma_latency): ");
	if (!c->request_us)
		printf("none held");
	else
		printf("%u us held", c->request_us);
	if (c->why & 1)
		printf("; lease bound %u us", c->lease_us);
	if (c->why & 2)
		printf("; idle hint %u us (%s) before a wake-up in %.1f us", c->hint_us,
		       peertext_text(c->hint_state.ptr, c->hint_state.len), (double)c->next_wake_ns / 1000.0);
	if (c->idle_states)
		printf("\n  idle hints: %u cpuidle states (%s)", c->idle_states,
		       peertext_text(c->idle_driver.ptr, c->idle_driver.len));
	else
		printf("\n  idle hints: off (cpuidle driver %s: lease bounds only)",
		       c->idle_driver.len ? peertext_text(c->idle_driver.ptr, c->idle_driver.len) : "none");
	if (c->error.len)
		printf("\n  NOT APPLIED: %s", peertext_text(c->error.ptr, c->error.len));
	printf("\n");
}

static void print_json(const thoth_pm_PowerBroker_state_resp_t *st)
{
	printf("{\"now_ns\":%llu,\"qos_us\":%u,\"energy_is\":\"modelled\",",
	       (unsigned long long)st->now_ns, st->qos_us);
	print_cpu_json(&st->cpu);
	printf("\"lease_limit\":%u,\"share_refusals\":%llu,\"request_share_refusals\":%llu,"
	       "\"lease_holders\":[", st->lease_limit, (unsigned long long)st->share_refusals,
	       (unsigned long long)st->request_share_refusals);
	pid_count_t *rows;
	uint32_t nh = leases_by_pid(st, &rows);
	for (uint32_t i = 0; i < nh; i++)
		printf("%s{\"pid\":%u,\"leases\":%u}", i ? "," : "", rows[i].pid, rows[i].n);
	free(rows);
	printf("],");
	printf("\"services\":[");
	for (uint32_t i = 0; i < st->services.count; i++) {
		const thoth_pm_ServiceQos_t *q = &st->services.items[i];
		printf("%s{\"qos\":%llu,\"service\":", i ? "," : "", (unsigned long long)q->qos);
		json_str(q->service.ptr, q->service.len);
		printf(",\"qos_us\":%u,\"holder_pid\":%u,\"granted_ns\":%llu,\"elements\":[", q->qos_us,
		       q->holder_pid, (unsigned long long)q->granted_ns);
		for (uint32_t k = 0; k < q->elements.count; k++) {
			printf("%s", k ? "," : "");
			json_str(q->elements.items[k].ptr, q->elements.items[k].len);
		}
		printf("]}");
	}
	printf("],\"elements\":[");
	for (uint32_t i = 0; i < st->elements.count; i++) {
		const thoth_pm_ElementState_t *e = &st->elements.items[i];
		printf("%s{\"id\":%u,\"name\":", i ? "," : "", e->id);
		json_str(e->name.ptr, e->name.len);
		printf(",\"levels\":[");
		for (uint32_t l = 0; l < e->levels.count; l++) {
			const thoth_pm_Level_t *lv = &e->levels.items[l];
			printf("%s{\"name\":", l ? "," : "");
			json_str(lv->name.ptr, lv->name.len);
			printf(",\"power_mw\":%.3f,\"entry_latency_us\":%lld,\"exit_latency_us\":%lld}",
			       lv->power_mw, (long long)lv->entry_latency_us, (long long)lv->exit_latency_us);
		}
		printf("],\"current_level\":%u,\"target_level\":%u,\"transitioning\":%s,\"transition_to\":%u,"
		       "\"dead\":%s,\"driver_pid\":%u,\"policy_level\":%u,\"transitions\":%llu,"
		       "\"queued_requests\":%u,\"energy_mj_modelled\":%.6f,\"engine_decisions\":%llu,"
		       "\"engine_too_deep\":%llu,\"residency_ns\":[",
		       e->current_level, e->target_level, e->transitioning ? "true" : "false",
		       e->transition_to, e->dead ? "true" : "false", e->driver_pid, e->policy_level,
		       (unsigned long long)e->transitions, e->queued_requests, e->energy_mj,
		       (unsigned long long)e->engine_decisions, (unsigned long long)e->engine_too_deep);
		for (uint32_t l = 0; l < e->residency_ns.count; l++)
			printf("%s%llu", l ? "," : "", (unsigned long long)e->residency_ns.items[l]);
		printf("],\"leases\":[");
		bool first = true;
		for (uint32_t k = 0; k < st->leases.count; k++) {
			const thoth_pm_LeaseState_t *ls = &st->leases.items[k];
			if (!same(ls->element, e->name))
				continue;
			printf("%s{\"lease\":%llu,\"level\":%u,\"kind\":\"%s\",\"qos_us\":%u,\"status\":\"%s\","
			       "\"holder_pid\":%u,\"granted_ns\":%llu}",
			       first ? "" : ",", (unsigned long long)ls->lease, ls->level, kind_name(ls->kind),
			       ls->qos_us, status_name(ls->status), ls->holder_pid,
			       (unsigned long long)ls->granted_ns);
			first = false;
		}
		printf("],\"keepers\":[");
		first = true;
		for (uint32_t k = 0; k < st->keepers.count; k++) {
			const thoth_pm_Keeper_t *kp = &st->keepers.items[k];
			if (!same(kp->element, e->name))
				continue;
			printf("%s{\"holder\":", first ? "" : ",");
			json_str(kp->holder.ptr, kp->holder.len);
			printf(",\"awake_ns\":%llu,\"energy_mj_modelled\":%.6f}", (unsigned long long)kp->awake_ns,
			       kp->energy_mj);
			first = false;
		}
		printf("]}");
	}
	printf("]}\n");
}

/* How many leases are held against thothd's limit, who holds them, and
 * how often a connection was refused for its fair share (pm.tidl 1.3; an
 * older thothd sends no limit: 0). */
static void print_lease_summary_text(const thoth_pm_PowerBroker_state_resp_t *st)
{
	if (!st->leases.count && !st->share_refusals && !st->request_share_refusals)
		return;
	printf("leases: %u held", st->leases.count);
	if (st->lease_limit)
		printf(" of %u (%u free; a connection holds at most as many as remain free)", st->lease_limit,
		       st->lease_limit > st->leases.count ? st->lease_limit - st->leases.count : 0);
	/* share_refusals is leases and requests together (1.3 and 1.4);
	 * request_share_refusals (1.4) the requests among them, 0 from a 1.3
	 * thothd, whose total then holds its refused requests too. */
	uint64_t req = st->request_share_refusals, all = st->share_refusals;
	printf(", %llu refused for a connection's or a uid's share; requests: %llu refused so%s\n",
	       (unsigned long long)(all > req ? all - req : 0), (unsigned long long)req,
	       !req && all ? " (from a thothd before 1.4 the leases' count includes requests)" : "");
	pid_count_t *rows;
	uint32_t k = leases_by_pid(st, &rows);
	for (uint32_t i = 0; i < k && i < 8; i++)
		printf("  pid %u holds %u\n", rows[i].pid, rows[i].n);
	if (k > 8)
		printf("  ... and %u more holders\n", k - 8);
	free(rows);
}

static void print_text(const thoth_pm_PowerBroker_state_resp_t *st)
{
	print_cpu_text(&st->cpu);
	print_lease_summary_text(st);
	for (uint32_t i = 0; i < st->services.count; i++) {
		const thoth_pm_ServiceQos_t *q = &st->services.items[i];
		printf("service %s: answer within %u us, asked by pid %u (resolve); elements:",
		       peertext_text(q->service.ptr, q->service.len), q->qos_us, q->holder_pid);
		for (uint32_t k = 0; k < q->elements.count; k++)
			printf(" %s", peertext_text(q->elements.items[k].ptr, q->elements.items[k].len));
		printf("%s\n", q->elements.count ? "" : " none (CPU bound only)");
	}
	if (!st->elements.count) {
		printf("no power elements declared\n");
		return;
	}
	for (uint32_t i = 0; i < st->elements.count; i++) {
		const thoth_pm_ElementState_t *e = &st->elements.items[i];
		const thoth_pm_Level_t *cur = &e->levels.items[e->current_level];
		/* names a driver declared: shown, never obeyed (peertext_text) */
		printf("\n%s (driver pid %u%s): %s", peertext_text(e->name.ptr, e->name.len), e->driver_pid,
		       e->dead ? ", DEAD" : "", peertext_text(cur->name.ptr, cur->name.len));
		if (e->transitioning)
			printf(" -> %s", peertext_text(e->levels.items[e->transition_to].name.ptr,
						       e->levels.items[e->transition_to].name.len));
		printf(", %llu transitions, %u queued requests, %.3f mJ (modelled)\n",
		       (unsigned long long)e->transitions, e->queued_requests, e->energy_mj);
		if (e->engine_decisions)
			printf("  policy engine: %llu decisions, %llu too deep\n",
			       (unsigned long long)e->engine_decisions, (unsigned long long)e->engine_too_deep);
		printf("  %-3s %-12s %10s %10s %10s %14s\n", "#", "LEVEL", "POWER mW", "ENTRY us", "EXIT us",
		       "RESIDENCY ms");
		for (uint32_t l = 0; l < e->levels.count; l++) {
			const thoth_pm_Level_t *lv = &e->levels.items[l];
			const char *name = peertext_text(lv->name.ptr, lv->name.len);
			printf("  %-3u %-*s %10.1f %10lld %10lld %14.3f%s\n", l, peertext_field(name, 12), name,
			       lv->power_mw, (long long)lv->entry_latency_us, (long long)lv->exit_latency_us,
			       l < e->residency_ns.count ? e->residency_ns.items[l] / 1e6 : 0.0,
			       l == e->current_level ? "  <" : "");
		}
		for (uint32_t k = 0; k < st->leases.count; k++) {
			const thoth_pm_LeaseState_t *ls = &st->leases.items[k];
			if (same(ls->element, e->name))
				printf("  lease %llu: level %u %s%s, pid %u, %s\n", (unsigned long long)ls->lease,
				       ls->level, kind_name(ls->kind), ls->qos_us ? " with latency bound" : "",
				       ls->holder_pid, status_name(ls->status));
		}
		for (uint32_t k = 0; k < st->keepers.count; k++) {
			const thoth_pm_Keeper_t *kp = &st->keepers.items[k];
			if (same(kp->element, e->name))
				printf("  kept awake by %s: %.3f ms, %.3f mJ (modelled)\n",
				       peertext_text(kp->holder.ptr, kp->holder.len), kp->awake_ns / 1e6,
				       kp->energy_mj);
		}
	}
}

int thothctl_pm(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *runtime_dir = opts->runtime_dir;
	bool json = opts->json;
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--help") || (i == 1 && !strcmp(argv[i], "-h"))) {
			/* Every command answers --help (thothctl(1)); pm said
			 * "unknown argument" and exited 2. */
			printf("usage: thothctl [--runtime-dir DIR] [--json] pm\n"
			       "       thothctl pm sim TRACE [--policy P] [--device D | --cpu M] [--json]\n"
			       "The power broker's elements, their levels and leases, who kept them\n"
			       "awake, the CPU idle hint and the modelled energy (docs/PM.md);\n"
			       "`pm sim` replays a trace on the simulator (`thothctl pm sim --help`).\n");
			return 0;
		} else if (!strcmp(argv[i], "sim"))
			break;
		else {
			return thothctl_usage_error("pm", argv[i][0] == '-' ? "unknown option"
							  : "sim or nothing, not", argv[i]);
		}
	}
	if (i < argc)
		return thothctl_pm_sim(argc - i, argv + i, opts);
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, runtime_dir))
		return 1;
	size_t cap = 8u << 20;
	void *scratch = malloc(cap);
	if (!scratch) {
		thoth_control_close(&ctl);
		return 1;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, cap);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	thoth_pm_PowerBroker_state_resp_t st;
	int r = thoth_pm_PowerBroker_state(&ctl.client, &req, &st, &arena);
	if (r) {
		r = thothctl_call_failed(&ctl, "pm state", r);
	} else {
		if (json)
			print_json(&st);
		else
			print_text(&st);
		r = 0;
	}
	free(scratch);
	thoth_control_close(&ctl);
	return r;
}
