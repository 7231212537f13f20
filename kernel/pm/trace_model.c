/*
 * trace_model.c - the model a PM trace point names (trace_model.h): the
 * built-in tables, or this machine's energy models read from sysfs once.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "trace_model.h"

typedef struct machine_model {
	uint32_t cpu;                   /* the domain's cpus[0] */
	bool ok;
	const char *why;                /* !ok: thoth_pm_cpu_model_from_domain's reason */
	char name[24];                  /* "sysfs-cpuN": one series per domain */
	thoth_pm_cpu_model_t model;
} machine_model_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool loaded;
static const char *load_why;            /* the domains could not be listed */
static uint32_t n_models;
static machine_model_t models[THOTH_PM_MAX_DOMAINS];

static void load(void)
{
	loaded = true;
	load_why = NULL;
	n_models = 0;
	thoth_pm_perf_domain_t *pds = calloc(THOTH_PM_MAX_DOMAINS, sizeof *pds);
	uint32_t n = 0;
	if (!pds) {
		load_why = "out of memory reading this machine's performance domains";
		loaded = false;         /* try again next time */
		return;
	}
	if (thoth_pm_perf_domains(pds, THOTH_PM_MAX_DOMAINS, &n)) {
		load_why = "more performance domains (cpufreq policies) than thothd reads";
		n = 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		machine_model_t *m = &models[i];
		memset(m, 0, sizeof *m);
		m->cpu = pds[i].cpus[0];
		m->ok = thoth_pm_cpu_model_from_domain(&pds[i], &m->model, &m->why) == 0;
		snprintf(m->name, sizeof m->name, "sysfs-cpu%u", m->cpu);
		m->model.name = m->name;
	}
	n_models = n;
	free(pds);
}

const thoth_pm_cpu_model_t *thoth_pm_trace_model(uint32_t id, const char **why)
{
	const thoth_pm_cpu_model_t *m = NULL;
	const char *w = NULL;
	if (id == 0) {
		w = "model trace id 0: the service's model is neither a published table nor this "
		    "machine's energy model";
	} else if (!(id & THOTH_PM_TRACE_SYSFS)) {
		m = thoth_pm_cpu_model_by_trace_id(id);
		if (!m)
			w = "an unknown model trace id (not a published table of this build)";
	} else {
		uint32_t cpu = id & ~THOTH_PM_TRACE_SYSFS;
		pthread_mutex_lock(&lock);
		if (!loaded)
			load();
		w = load_why ? load_why
			     : n_models ? "no performance domain read at that CPU in thothd's view of sysfs"
					: "no cpufreq performance domain in thothd's view of sysfs";
		for (uint32_t i = 0; i < n_models; i++) {
			if (models[i].cpu != cpu)
				continue;
			if (models[i].ok) {
				m = &models[i].model;
				w = NULL;
			} else {
				w = models[i].why;
			}
			break;
		}
		pthread_mutex_unlock(&lock);
	}
	if (why)
		*why = w;
	return m;
}

void thoth_pm_trace_models_reset(void)
{
	pthread_mutex_lock(&lock);
	loaded = false;
	n_models = 0;
	load_why = NULL;
	pthread_mutex_unlock(&lock);
}
