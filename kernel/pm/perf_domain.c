/*
 * perf_domain.c - performance domains from cpufreq's related_cpus, and an
 * energy.h CPU model from a domain's energy model (backend.h).  A big.LITTLE
 * board (tests/fixtures/sysfs/arm64-juno: A53 cpus 0,3,4,5 and A57 cpus 1,2)
 * has two domains, each with its own OPPs, capacities and power; the
 * governor runs once per domain (dvfs_domains.c).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "thoth/error.h"

static bool cpu_exists(uint32_t cpu)
{
	char rel[96], full[600];
	struct stat st;
	snprintf(rel, sizeof rel, "/sys/devices/system/cpu/cpu%u", cpu);
	return !thoth_pm_path(full, sizeof full, rel) && stat(full, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool in_domain(const thoth_pm_perf_domain_t *d, uint32_t cpu)
{
	for (uint32_t i = 0; i < d->n_cpus; i++)
		if (d->cpus[i] == cpu)
			return true;
	return false;
}

int thoth_pm_perf_domains(thoth_pm_perf_domain_t *out, uint32_t max, uint32_t *n)
{
	*n = 0;
	for (uint32_t cpu = 0; cpu < 1024 && cpu_exists(cpu); cpu++) {
		bool known = false;
		for (uint32_t k = 0; k < *n && !known; k++)
			known = in_domain(&out[k], cpu);
		if (known)
			continue;
		thoth_pm_cpufreq_t f;
		thoth_pm_cpufreq_read(cpu, &f);
		if (!f.present)
			continue;
		if (*n == max)
			return THOTH_E_LIMIT;
		thoth_pm_perf_domain_t *d = &out[(*n)++];
		memset(d, 0, sizeof *d);
		d->freq = f;
		/* this CPU first (it is read and written), then its siblings */
		d->cpus[d->n_cpus++] = cpu;
		for (uint32_t i = 0; i < f.n_related && d->n_cpus < THOTH_PM_MAX_DOMAIN_CPUS; i++)
			if (f.related[i] != cpu)
				d->cpus[d->n_cpus++] = f.related[i];
	}
	return 0;
}

int thoth_pm_cpu_model_from_domain(const thoth_pm_perf_domain_t *d, thoth_pm_cpu_model_t *out,
				   const char **why)
{
	const thoth_pm_cpufreq_t *f = &d->freq;
	memset(out, 0, sizeof *out);
	if (!f->n_em) {
		*why = "no energy model (/sys/kernel/debug/energy_model/cpuN)";
		return THOTH_E_NOT_FOUND;
	}
	if (!f->capacity || f->capacity > 1024) {
		*why = "cpu_capacity absent or above 1024";
		return THOTH_E_NOT_FOUND;
	}
	uint32_t n = f->n_em < THOTH_PM_MODEL_MAX_OPPS ? f->n_em : THOTH_PM_MODEL_MAX_OPPS;
	uint32_t fmax = f->em_khz[f->n_em - 1];
	if (!fmax) {
		*why = "energy model: a performance state at 0 kHz";
		return THOTH_E_NOT_FOUND;
	}
	/* the fastest N states when the EM has more than a model holds */
	uint32_t first = f->n_em - n;
	for (uint32_t i = 0; i < n; i++) {
		const uint32_t k = first + i;
		out->opps[i] = (thoth_pm_opp_t){
			.freq_khz = f->em_khz[k],
			.capacity = (uint32_t)((uint64_t)f->capacity * f->em_khz[k] / fmax),
			.core_mw = f->em_power_mw[k],
			.cluster_mw = 0,
		};
	}
	out->opp_count = n;
	out->name = "sysfs";
	out->source = "this machine's energy model (sysfs), per-CPU power, no cluster share";
	/* what trace points name it by: a reader (thothd's dashboard) reads
	 * this same table from sysfs (trace_model.h) */
	out->trace_id = thoth_pm_trace_id_sysfs(d->cpus[0]);
	out->sleep_mw = 0;
	out->switch_latency_ns = 500ull * 1000ull; /* the simulator's assumption (energy.c) */
	return 0;
}
