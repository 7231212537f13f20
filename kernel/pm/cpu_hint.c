/*
 * cpu_hint.c - the engine's CPU idle hint (cpu_hint.h says what and why).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_hint.h"
#include "thoth/error.h"

struct thoth_pm_cpu_hint {
	thoth_pm_engine_t *engine;
	thoth_pm_element_desc_t desc; /* names point into names[] */
	uint32_t index[THOTH_PM_MAX_STATES]; /* engine state -> cpuidle state */
	uint32_t latency_us[THOTH_PM_MAX_STATES];
	char names[THOTH_PM_MAX_STATES][32];
};

#define TOP_MW 1000u

int thoth_pm_cpu_hint_new(const thoth_pm_cpuidle_t *idle, thoth_pm_cpu_hint_t **out,
			  const char **why)
{
	*out = NULL;
	thoth_pm_cpu_hint_t *h = calloc(1, sizeof *h);
	if (!h)
		return THOTH_E_NOMEM;
	uint32_t n = 0;
	for (uint32_t s = 0; s < idle->n_states && s < THOTH_PM_MAX_IDLE_STATES; s++) {
		if (idle->states[s].disabled)
			continue;
		if (n == THOTH_PM_MAX_STATES) {
			free(h);
			if (why)
				*why = "cpuidle: more enabled states than the engine's 8";
			return THOTH_E_INVAL;
		}
		h->index[n] = s;
		h->latency_us[n] = idle->states[s].latency_us > UINT32_MAX ? UINT32_MAX
						: (uint32_t)idle->states[s].latency_us;
		memcpy(h->names[n], idle->states[s].name, sizeof h->names[n]);
		h->names[n][sizeof h->names[n] - 1] = 0;
		n++;
	}
	if (n < 2) {
		free(h);
		if (why)
			*why = "cpuidle: fewer than two enabled states (no driver bound?)";
		return THOTH_E_NOT_FOUND;
	}
	h->desc.name = "cpu";
	h->desc.state_count = n;
	for (uint32_t k = 0; k < n; k++) {
		const thoth_pm_idle_state_t *st = &idle->states[h->index[k]];
		thoth_pm_state_desc_t *d = &h->desc.states[k];
		d->name = h->names[k];
		/* modelled: evenly spaced, only the order matters */
		d->power_mw = TOP_MW - (uint32_t)((uint64_t)TOP_MW * k / (n - 1));
		if (k == 0)
			continue;       /* the shallowest: where the CPU idles anyway */
		uint64_t lat = st->latency_us * 1000, res = st->residency_us * 1000;
		d->exit_latency_ns = lat ? lat : 1;
		/* E_k crosses E_0 at lat * (P_tr - P_k) / (P_0 - P_k); put that on
		 * the target residency (never below the latency itself). */
		if (res > d->exit_latency_ns) {
			double ptr = d->power_mw + (double)res * (TOP_MW - d->power_mw) /
							   (double)d->exit_latency_ns;
			d->transition_mw = ptr >= 4e9 ? 4000000000u : (uint32_t)(ptr + 0.5);
		}
	}
	int r = thoth_pm_engine_new(&h->desc, &h->engine, why);
	if (r) {
		free(h);
		return r;
	}
	*out = h;
	return 0;
}

void thoth_pm_cpu_hint_free(thoth_pm_cpu_hint_t *h)
{
	if (!h)
		return;
	thoth_pm_engine_free(h->engine);
	free(h);
}

const thoth_pm_element_desc_t *thoth_pm_cpu_hint_desc(const thoth_pm_cpu_hint_t *h)
{
	return &h->desc;
}

void thoth_pm_cpu_hint_decide(thoth_pm_cpu_hint_t *h, uint32_t lease_us, uint64_t next_wake_ns,
			      thoth_pm_cpu_request_t *out)
{
	*out = (thoth_pm_cpu_request_t){ .state = -1, .state_name = "" };
	if (h && next_wake_ns != THOTH_PM_NONE) {
		thoth_pm_constraints_t c = {
			.latency_ns = lease_us ? (uint64_t)lease_us * 1000 : THOTH_PM_NONE,
			.next_event_ns = next_wake_ns,
		};
		thoth_pm_decision_t dec;
		thoth_pm_engine_decide(h->engine, &c, &dec);
		out->state = (int32_t)h->index[dec.state];
		out->state_name = h->names[dec.state];
		/* A hint only where it is tighter than the bound already is:
		 * the deepest state the bound allows (the kernel compares exit
		 * latencies) is what the kernel may enter without one. */
		uint32_t floor = 0;
		for (uint32_t k = 1; k < h->desc.state_count; k++)
			if (!lease_us || h->latency_us[k] <= lease_us)
				floor = k;
		if (dec.state < floor) {
			/* 0 us (poll only) cannot be told apart from "no request"
			 * by the backend: ask for 1 us, which may allow a state of
			 * 1 us exit latency too. */
			uint32_t us = h->latency_us[dec.state];
			out->hint_us = us ? us : 1;
		}
	}
	out->request_us = lease_us;
	if (lease_us)
		out->why = THOTH_PM_CPU_LEASE;
	if (out->hint_us && (!lease_us || out->hint_us < lease_us)) {
		out->request_us = out->hint_us;
		out->why = THOTH_PM_CPU_TIMER;
	} else if (out->hint_us && out->hint_us == lease_us) {
		out->why |= THOTH_PM_CPU_TIMER;
	}
}
