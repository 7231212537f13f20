/*
 * energy.c - the published tables behind every modelled figure of kernel/pm
 * (energy.h), and the OPP efficiency rule.
 *
 * CPU models (Arm's energy-aware scheduling models, "busy-cost-data" of the
 * sched-energy device-tree bindings used by the EAS kernels; the same
 * numbers are in Arm's LISA toolkit, lisa/platforms/hikey_energy.py and
 * juno_r0_energy.py):
 *   - HiKey (Kirin 620, 8x Cortex-A53 in two clusters), one cluster:
 *     208/432/729/960/1200 MHz, capacity 178/369/622/819/1024, core power
 *     69/124/224/367/670, cluster power 16/29/47/75/112, cluster-sleep 0.
 *     (Issue 14 quotes 125 for 432 MHz; LISA's table says 124.  Either way
 *     208 MHz is inefficient.)
 *   - Juno r0, Cortex-A57 cluster: 450/625/800/950/1100 MHz, capacity
 *     417/579/744/883/1023, core 168/251/359/479/616, cluster
 *     24/32/43/49/64, cluster-sleep 24.
 *   - Juno r0, Cortex-A53 cluster: 450/575/700/775/850 MHz, capacity
 *     235/302/368/406/447, core 33/46/61/76/93, cluster 26/30/39/47/57,
 *     cluster-sleep 17.
 * The EAS tables are in "bogo-watts" normalised per platform; we read them
 * as mW, which keeps every ratio (the only thing the benchmarks report)
 * exact.  The frequency switch latency (500 us) is not in these tables: an
 * assumption, the same for every governor.
 *
 * Device models (NVMe "Identify Controller" power-state descriptors, as
 * printed by `nvme id-ctrl`: max power, entry and exit latency in us):
 *   - Samsung SM951/950 PRO (linux-nvme/nvme-cli pull request 52, Andy
 *     Lutomirski's drive, 2016): PS0 6.50 W; PS3 0.0700 W non-operational
 *     enlat 500 exlat 5000; PS4 0.0050 W enlat 2000 exlat 22000.
 *   - Toshiba XG4 (damige/linux-nvme issue 11, 2017): PS0 6.00 W, PS2
 *     1.90 W; PS3 0.0120 W enlat 5000 exlat 25000; PS4 0.0060 W enlat
 *     100000 exlat 70000.
 *   The tables give no idle power for the operational states ("idle_power:
 *   -"), so "on, idle" uses the lowest operational state's maximum (950:
 *   PS2 3.60 W; XG4: PS2 1.90 W) and transitions are charged at PS0's
 *   maximum: both assumptions, stated in docs/PM.md.  Their QoS is Linux's
 *   default APST latency tolerance (nvme_core.default_ps_max_latency_us =
 *   100000).
 *   - "nic-sim": a synthetic element with a 200 us QoS (on 800 mW; L1
 *     150 mW, 20+50 us; D3 10 mW, 2+5 ms).  Not a published table: it
 *     exists to exercise a tight QoS, and is labelled so in every output.
 */
#include <stddef.h>
#include <string.h>

#include "energy.h"

#define US 1000ull
#define MS 1000000ull

static const thoth_pm_cpu_model_t cpu_models[] = {
	{
		.name = "hikey-a53",
		.source = "Arm EAS energy model for HiKey (LISA hikey_energy.py)",
		.opp_count = 5,
		.opps = {
			{ 208000, 178, 69, 16 },
			{ 432000, 369, 124, 29 },
			{ 729000, 622, 224, 47 },
			{ 960000, 819, 367, 75 },
			{ 1200000, 1024, 670, 112 },
		},
		.sleep_mw = 0,
		.switch_latency_ns = 500 * US,
		.trace_id = 1,
	},
	{
		.name = "juno-a57",
		.source = "Arm EAS energy model for Juno r0, A57 cluster (LISA juno_r0_energy.py)",
		.opp_count = 5,
		.opps = {
			{ 450000, 417, 168, 24 },
			{ 625000, 579, 251, 32 },
			{ 800000, 744, 359, 43 },
			{ 950000, 883, 479, 49 },
			{ 1100000, 1023, 616, 64 },
		},
		.sleep_mw = 24,
		.switch_latency_ns = 500 * US,
		.trace_id = 2,
	},
	{
		.name = "juno-a53",
		.source = "Arm EAS energy model for Juno r0, A53 cluster (LISA juno_r0_energy.py)",
		.opp_count = 5,
		.opps = {
			{ 450000, 235, 33, 26 },
			{ 575000, 302, 46, 30 },
			{ 700000, 368, 61, 39 },
			{ 775000, 406, 76, 47 },
			{ 850000, 447, 93, 57 },
		},
		.sleep_mw = 17,
		.switch_latency_ns = 500 * US,
		.trace_id = 3,
	},
};

static const thoth_pm_device_model_t device_models[] = {
	{
		.source = "Samsung 950 PRO power states (nvme id-ctrl, nvme-cli PR 52)",
		.busy_mw = 6500,
		.qos_ns = 100 * MS,
		.desc = { .name = "nvme-samsung-950", .state_count = 3, .states = {
			{ .name = "PS0-idle", .power_mw = 3600 },
			{ .name = "PS3", .power_mw = 70, .entry_latency_ns = 500 * US,
			  .exit_latency_ns = 5000 * US, .transition_mw = 6500 },
			{ .name = "PS4", .power_mw = 5, .entry_latency_ns = 2000 * US,
			  .exit_latency_ns = 22000 * US, .transition_mw = 6500 },
		} },
	},
	{
		.source = "Toshiba XG4 power states (nvme id-ctrl, damige/linux-nvme issue 11)",
		.busy_mw = 6000,
		.qos_ns = 100 * MS,
		.desc = { .name = "nvme-toshiba-xg4", .state_count = 3, .states = {
			{ .name = "PS0-idle", .power_mw = 1900 },
			{ .name = "PS3", .power_mw = 12, .entry_latency_ns = 5000 * US,
			  .exit_latency_ns = 25000 * US, .transition_mw = 6000 },
			{ .name = "PS4", .power_mw = 6, .entry_latency_ns = 100000 * US,
			  .exit_latency_ns = 70000 * US, .transition_mw = 6000 },
		} },
	},
	{
		.source = "synthetic element (not a published table) for a 200 us QoS",
		.busy_mw = 1200,
		.qos_ns = 200 * US,
		.desc = { .name = "nic-sim", .state_count = 3, .states = {
			{ .name = "on", .power_mw = 800 },
			{ .name = "L1", .power_mw = 150, .entry_latency_ns = 20 * US,
			  .exit_latency_ns = 50 * US },
			{ .name = "D3", .power_mw = 10, .entry_latency_ns = 2 * MS,
			  .exit_latency_ns = 5 * MS },
		} },
	},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const thoth_pm_cpu_model_t *thoth_pm_cpu_model_at(size_t i)
{
	return i < COUNT(cpu_models) ? &cpu_models[i] : NULL;
}

const thoth_pm_cpu_model_t *thoth_pm_cpu_model_find(const char *name)
{
	for (size_t i = 0; name && i < COUNT(cpu_models); i++)
		if (strcmp(cpu_models[i].name, name) == 0)
			return &cpu_models[i];
	return NULL;
}

const thoth_pm_cpu_model_t *thoth_pm_cpu_model_by_trace_id(uint32_t id)
{
	for (size_t i = 0; id && i < COUNT(cpu_models); i++)
		if (cpu_models[i].trace_id == id)
			return &cpu_models[i];
	return NULL;
}

const thoth_pm_device_model_t *thoth_pm_device_model_at(size_t i)
{
	return i < COUNT(device_models) ? &device_models[i] : NULL;
}

const thoth_pm_device_model_t *thoth_pm_device_model_find(const char *name)
{
	for (size_t i = 0; name && i < COUNT(device_models); i++)
		if (strcmp(device_models[i].desc.name, name) == 0)
			return &device_models[i];
	return NULL;
}

uint32_t thoth_pm_opp_power_mw(const thoth_pm_cpu_model_t *m, uint32_t i)
{
	return m->opps[i].core_mw + m->opps[i].cluster_mw;
}

double thoth_pm_opp_energy_per_work(const thoth_pm_cpu_model_t *m, uint32_t i)
{
	return (double)thoth_pm_opp_power_mw(m, i) / (double)m->opps[i].capacity;
}

bool thoth_pm_opp_inefficient(const thoth_pm_cpu_model_t *m, uint32_t i)
{
	/* Compare power * capacity products instead of the quotients: exact
	 * integer arithmetic, so equal efficiency counts as "no better". */
	for (uint32_t j = i + 1; j < m->opp_count; j++)
		if ((uint64_t)thoth_pm_opp_power_mw(m, j) * m->opps[i].capacity <=
		    (uint64_t)thoth_pm_opp_power_mw(m, i) * m->opps[j].capacity)
			return true;
	return false;
}

uint32_t thoth_pm_opp_for_capacity(const thoth_pm_cpu_model_t *m, uint32_t capacity)
{
	for (uint32_t i = 0; i < m->opp_count; i++)
		if (!thoth_pm_opp_inefficient(m, i) && m->opps[i].capacity >= capacity)
			return i;
	return m->opp_count - 1;
}

uint32_t thoth_pm_opp_ceil_raw(const thoth_pm_cpu_model_t *m, uint32_t capacity)
{
	for (uint32_t i = 0; i < m->opp_count; i++)
		if (m->opps[i].capacity >= capacity)
			return i;
	return m->opp_count - 1;
}
