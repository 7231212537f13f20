/*
 * dvfs_domains.c - one thoth governor per performance domain (dvfs.h).
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dvfs.h"
#include "thoth/error.h"

typedef struct domain {
	thoth_pm_perf_domain_t pd;
	thoth_pm_cpu_model_t model; /* the governor points here: never moved */
	thoth_pm_dvfs_t *dvfs;
	bool all_cpus;              /* the simulated domain of a machine without cpufreq */
} domain_t;

struct thoth_pm_dvfs_set {
	uint32_t count;
	domain_t domains[THOTH_PM_MAX_DOMAINS];
};

void thoth_pm_dvfs_set_free(thoth_pm_dvfs_set_t *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->count; i++)
		thoth_pm_dvfs_free(s->domains[i].dvfs);
	free(s);
}

int thoth_pm_dvfs_set_new(const thoth_pm_cpu_model_t *fallback, uint64_t now_ns,
			  thoth_pm_dvfs_set_t **out)
{
	if (!fallback || !out)
		return THOTH_E_INVAL;
	thoth_pm_dvfs_set_t *s = calloc(1, sizeof *s);
	thoth_pm_perf_domain_t *pds = calloc(THOTH_PM_MAX_DOMAINS, sizeof *pds);
	int err = THOTH_E_NOMEM;
	if (!s || !pds)
		goto fail;
	uint32_t n = 0;
	err = thoth_pm_perf_domains(pds, THOTH_PM_MAX_DOMAINS, &n);
	if (err)
		goto fail;
	if (n == 0) {
		/* no cpufreq: one simulated domain with the fallback's OPPs */
		n = 1;
		memset(&pds[0], 0, sizeof pds[0]);
		s->domains[0].all_cpus = true;
	}
	for (uint32_t i = 0; i < n; i++) {
		domain_t *d = &s->domains[i];
		const char *why;
		d->pd = pds[i];
		if (d->all_cpus || thoth_pm_cpu_model_from_domain(&d->pd, &d->model, &why))
			d->model = *fallback;
		uint32_t cpu = d->all_cpus ? 0 : d->pd.cpus[0];
		err = thoth_pm_dvfs_new(cpu, &d->model, now_ns, &d->dvfs);
		if (err)
			goto fail;
		s->count++;
	}
	free(pds);
	*out = s;
	return 0;
fail:
	free(pds);
	thoth_pm_dvfs_set_free(s);
	return err;
}

uint32_t thoth_pm_dvfs_set_count(const thoth_pm_dvfs_set_t *s)
{
	return s->count;
}

thoth_pm_dvfs_t *thoth_pm_dvfs_set_at(thoth_pm_dvfs_set_t *s, uint32_t i)
{
	return i < s->count ? s->domains[i].dvfs : NULL;
}

const thoth_pm_cpu_model_t *thoth_pm_dvfs_set_model(const thoth_pm_dvfs_set_t *s, uint32_t i)
{
	return i < s->count ? &s->domains[i].model : NULL;
}

const uint32_t *thoth_pm_dvfs_set_cpus(const thoth_pm_dvfs_set_t *s, uint32_t i, uint32_t *n_cpus)
{
	*n_cpus = i < s->count ? s->domains[i].pd.n_cpus : 0;
	return i < s->count ? s->domains[i].pd.cpus : NULL;
}

thoth_pm_dvfs_t *thoth_pm_dvfs_set_for_cpu(thoth_pm_dvfs_set_t *s, uint32_t cpu)
{
	for (uint32_t i = 0; i < s->count; i++) {
		const domain_t *d = &s->domains[i];
		if (d->all_cpus)
			return d->dvfs;
		for (uint32_t k = 0; k < d->pd.n_cpus; k++)
			if (d->pd.cpus[k] == cpu)
				return d->dvfs;
	}
	return NULL;
}
