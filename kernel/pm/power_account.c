/*
 * power_account.c - a governed service's trace priced with the published
 * CPU models (power_account.h).
 */
#include <string.h>

#include "power_account.h"
#include "thoth/error.h"
#include "trace_model.h"

void thoth_pm_power_account_init(thoth_pm_power_account_t *a)
{
	memset(a, 0, sizeof *a);
}

/* The model and OPP of ARG1's low 32 bits, checked against the tables
 * (trace_model.h: a published one, or this machine's energy model). */
static int model_opp(uint64_t arg1, const thoth_pm_cpu_model_t **m, uint32_t *id, uint32_t *opp,
		     const char **why)
{
	*id = (uint32_t)(arg1 >> 16) & 0xffff;
	*opp = (uint32_t)arg1 & 0xffff;
	*m = thoth_pm_trace_model(*id, why);
	if (!*m)
		return THOTH_E_NOT_FOUND;
	if (*opp >= (*m)->opp_count) {
		*why = "an OPP the model has not";
		return THOTH_E_INVAL;
	}
	return 0;
}

int thoth_pm_power_account_freq(thoth_pm_power_account_t *a, uint64_t arg0, uint64_t arg1)
{
	(void)arg0;
	const thoth_pm_cpu_model_t *m;
	uint32_t id, opp;
	const char *why = NULL;
	if (model_opp(arg1, &m, &id, &opp, &why) == THOTH_E_INVAL)
		return THOTH_E_INVAL;
	a->model_id = id;
	a->opp = opp;
	a->seen = true;
	return 0;
}

int thoth_pm_power_account_work(thoth_pm_power_account_t *a, uint64_t arg0, uint64_t arg1)
{
	const thoth_pm_cpu_model_t *m = NULL;
	uint32_t id, opp;
	bool partial = arg1 & THOTH_PM_WORK_PARTIAL;
	arg1 &= ~THOTH_PM_WORK_PARTIAL;
	const char *why = arg1 >> 32 ? "reserved bits set in the model/OPP word"
			  : "a CPU time over a minute for one request";
	int r = arg1 >> 32 || arg0 > THOTH_PM_WORK_MAX_NS ? THOTH_E_INVAL
							 : model_opp(arg1, &m, &id, &opp, &why);
	if (r) {
		a->unpriced++;
		a->unpriced_why = why;
		return r;
	}
	a->model_id = id;
	a->opp = opp;
	a->seen = true;
	double pj = (double)thoth_pm_opp_power_mw(m, opp) * (double)arg0;
	a->requests += !partial;
	a->cpu_ns += arg0;
	a->energy_pj += pj;
	a->iv_requests += !partial;
	a->iv_cpu_ns += arg0;
	a->iv_energy_pj += pj;
	return 0;
}

void thoth_pm_power_account_interval(thoth_pm_power_account_t *a, uint64_t interval_ns,
				     thoth_pm_power_interval_t *out)
{
	double ns = interval_ns ? (double)interval_ns : 1.0;
	out->power_mw = a->iv_energy_pj / ns;           /* pJ / ns = mW */
	out->energy_j = a->iv_energy_pj * 1e-12;
	out->requests = a->iv_requests;
	out->cpu_share = (double)a->iv_cpu_ns / ns;
	out->j_per_request = a->iv_requests ? out->energy_j / (double)a->iv_requests : 0;
	a->iv_requests = a->iv_cpu_ns = 0;
	a->iv_energy_pj = 0;
}

const thoth_pm_cpu_model_t *thoth_pm_power_account_model(const thoth_pm_power_account_t *a)
{
	return a->seen ? thoth_pm_trace_model(a->model_id, NULL) : NULL;
}

const char *thoth_pm_power_account_unpriced_why(const thoth_pm_power_account_t *a)
{
	const char *why = NULL;
	if (a->seen && !thoth_pm_trace_model(a->model_id, &why))
		return why;
	return a->unpriced ? a->unpriced_why : NULL;
}

uint32_t thoth_pm_power_account_opp_mw(const thoth_pm_power_account_t *a)
{
	const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(a);
	return m && a->opp < m->opp_count ? thoth_pm_opp_power_mw(m, a->opp) : 0;
}
