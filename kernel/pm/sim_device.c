/*
 * sim_device.c - replaying a trace of requests against a device's power
 * states under each policy (sim.h).  The energy of an idle period follows
 * engine.h's model exactly: transitions draw the state's transition power
 * for their latency, residency draws the state's power, requests are served
 * at the device's busy power.  A request that finds the device asleep waits
 * for the rest of the entry plus the exit; that wait is checked against the
 * QoS.  Requests that find the device busy queue (that wait is not a power
 * decision and is not counted).
 */
#include <string.h>

#include "engine.h"
#include "sim.h"
#include "thoth/error.h"

static const char *const policy_names[THOTH_PM_DEV_COUNT] = {
	"always-on", "fixed-2s", "fixed-2s-qos", "apst", "break-even", "exp-average", "engine", "oracle",
};

const char *thoth_pm_device_policy_name(thoth_pm_device_policy_t p)
{
	return (unsigned)p < THOTH_PM_DEV_COUNT ? policy_names[p] : "?";
}

int thoth_pm_device_policy_parse(const char *name, thoth_pm_device_policy_t *out)
{
	for (int p = 0; name && p < THOTH_PM_DEV_COUNT; p++)
		if (strcmp(name, policy_names[p]) == 0) {
			*out = (thoth_pm_device_policy_t)p;
			return 0;
		}
	return THOTH_E_NOT_FOUND;
}

static uint32_t transition_mw(const thoth_pm_element_desc_t *d, uint32_t s)
{
	return d->states[s].transition_mw ? d->states[s].transition_mw : d->states[0].power_mw;
}

typedef struct idle_cost {
	double energy_mw_ns;
	uint64_t wake_delay_ns;
	uint32_t deepest;
} idle_cost_t;

/* Play decision D over an idle period of L ns (the next request at L).
 * With a pre-wake, the exit starts D->prewake_ns before the known event at
 * EVENT ns (the next armed timer; the oracle's is L itself): a request
 * nobody announced that comes earlier finds the element as the plan left
 * it and waits for its exit. */
static idle_cost_t play_idle(const thoth_pm_element_desc_t *d, const thoth_pm_decision_t *dec,
			     uint64_t L, uint64_t event, uint64_t *residency)
{
	idle_cost_t c = { 0, 0, 0 };
	bool prewake = dec->prewake_ns && event != THOTH_PM_NONE;
	thoth_pm_step_t steps[THOTH_PM_MAX_STATES + 1];
	uint32_t n = 0;
	if (dec->state)
		steps[n++] = (thoth_pm_step_t){ dec->state, 0 };
	for (uint32_t i = 0; i < dec->ladder_count; i++)
		steps[n++] = dec->ladder[i];
	/* With a pre-wake, no step may start after the point where the exit
	 * of the state it leads to must begin. */
	uint32_t state = 0;
	uint64_t now = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t at = steps[i].at_ns > now ? steps[i].at_ns : now;
		uint32_t s = steps[i].state;
		if (at >= L || (prewake && at + thoth_pm_wake_latency_ns(d, s) > event))
			break;
		/* resident in STATE until AT */
		c.energy_mw_ns += (double)d->states[state].power_mw * (double)(at - now);
		residency[state] += at - now;
		uint64_t entry_end = at + d->states[s].entry_latency_ns;
		uint32_t ptr = transition_mw(d, s);
		c.deepest = s;
		if (entry_end > L) {
			/* interrupted entry: finish it, then exit */
			c.energy_mw_ns += (double)ptr * (double)(entry_end - at + d->states[s].exit_latency_ns);
			c.wake_delay_ns = entry_end - L + d->states[s].exit_latency_ns;
			return c;
		}
		c.energy_mw_ns += (double)ptr * (double)d->states[s].entry_latency_ns;
		now = entry_end;
		state = s;
	}
	if (state == 0) {
		c.energy_mw_ns += (double)d->states[0].power_mw * (double)(L - now);
		residency[0] += L - now;
		return c;
	}
	uint64_t exit = d->states[state].exit_latency_ns;
	uint64_t exit_start = L;
	if (prewake) {
		uint64_t pw = event > exit ? event - exit : 0;
		if (pw < now)
			pw = now;
		if (pw < L)
			exit_start = pw;
	}
	c.energy_mw_ns += (double)d->states[state].power_mw * (double)(exit_start - now) +
			  (double)transition_mw(d, state) * (double)exit;
	residency[state] += exit_start - now;
	if (exit_start + exit < L) {
		/* woke for the event before the request came: on meanwhile */
		c.energy_mw_ns += (double)d->states[0].power_mw * (double)(L - exit_start - exit);
		residency[0] += L - exit_start - exit;
	}
	c.wake_delay_ns = exit_start + exit > L ? exit_start + exit - L : 0;
	return c;
}

/* The QoS-bound constraints every policy keeps to. */
static thoth_pm_constraints_t qos_only(uint64_t qos_ns)
{
	return (thoth_pm_constraints_t){ qos_ns, THOTH_PM_NONE };
}

/* Deepest state allowed by the QoS. */
static uint32_t deepest_allowed(const thoth_pm_element_desc_t *d, uint64_t qos_ns)
{
	uint32_t best = 0;
	for (uint32_t s = 1; s < d->state_count; s++)
		if (thoth_pm_wake_latency_ns(d, s) <= qos_ns &&
		    d->states[s].power_mw < d->states[best].power_mw)
			best = s;
	return best;
}

typedef struct policy_state {
	thoth_pm_device_policy_t p;
	thoth_pm_engine_t *engine;
	double exp_avg_ns; /* Hwang & Wu's prediction */
	bool have_avg;
} policy_state_t;

static void decide(policy_state_t *ps, const thoth_pm_element_desc_t *d, uint64_t qos_ns,
		   uint64_t next_timer_ns, uint64_t L, thoth_pm_decision_t *dec)
{
	thoth_pm_constraints_t c = qos_only(qos_ns);
	memset(dec, 0, sizeof(*dec));
	switch (ps->p) {
	case THOTH_PM_DEV_ALWAYS_ON:
		break;
	case THOTH_PM_DEV_FIXED_2S:
	case THOTH_PM_DEV_FIXED_2S_QOS: {
		uint32_t s = deepest_allowed(d, ps->p == THOTH_PM_DEV_FIXED_2S ? THOTH_PM_NONE : qos_ns);
		if (s)
			dec->ladder[dec->ladder_count++] =
				(thoth_pm_step_t){ s, 2000ull * 1000000ull };
		break;
	}
	case THOTH_PM_DEV_APST:
		/* drivers/nvme/host/core.c nvme_configure_apst(): each
		 * non-operational state within the latency tolerance, after an
		 * idle time of 50x its total latency (the "(lat + 19) / 20 ms"
		 * rule), shallow to deep. */
		for (uint32_t s = 1; s < d->state_count; s++)
			if (thoth_pm_wake_latency_ns(d, s) <= qos_ns)
				dec->ladder[dec->ladder_count++] =
					(thoth_pm_step_t){ s, 50 * thoth_pm_wake_latency_ns(d, s) };
		break;
	case THOTH_PM_DEV_BREAK_EVEN:
		thoth_pm_ladder(d, &c, 0, dec);
		break;
	case THOTH_PM_DEV_EXP_AVERAGE:
		/* Hwang & Wu (1997): I[n] = a * i[n-1] + (1 - a) * I[n-1],
		 * a = 0.5; sleep at once when the prediction exceeds the
		 * break-even.  No timeout fallback: the basic scheme. */
		thoth_pm_choose(d, &c, ps->have_avg ? (uint64_t)ps->exp_avg_ns : 0, dec);
		dec->ladder_count = 0;
		break;
	case THOTH_PM_DEV_ENGINE:
		/* requests that are armed timers: the engine is told when
		 * the next one fires, as loops post it on the window page */
		c.next_event_ns = next_timer_ns;
		thoth_pm_engine_decide(ps->engine, &c, dec);
		break;
	case THOTH_PM_DEV_ORACLE:
	default: {
		/* knows L: the cheapest allowed state for exactly L, entered at
		 * once and left just in time */
		uint32_t best = 0;
		double best_e = thoth_pm_idle_energy_nj(d, 0, L);
		for (uint32_t s = 1; s < d->state_count; s++) {
			if (thoth_pm_wake_latency_ns(d, s) > qos_ns ||
			    thoth_pm_wake_latency_ns(d, s) > L)
				continue;
			double e = thoth_pm_idle_energy_nj(d, s, L);
			if (e < best_e) {
				best = s;
				best_e = e;
			}
		}
		dec->state = best;
		dec->prewake_ns = best ? d->states[best].exit_latency_ns : 0;
		break;
	}
	}
}

static void observe(policy_state_t *ps, uint64_t next_timer_ns, uint64_t L)
{
	if (ps->p == THOTH_PM_DEV_ENGINE)
		thoth_pm_engine_observe(ps->engine, L, next_timer_ns);
	if (ps->p == THOTH_PM_DEV_EXP_AVERAGE) {
		ps->exp_avg_ns = ps->have_avg ? 0.5 * (double)L + 0.5 * ps->exp_avg_ns : (double)L;
		ps->have_avg = true;
	}
}

int thoth_pm_sim_device(const thoth_pm_device_model_t *m, uint64_t qos_ns,
			const thoth_pm_trace_t *t, thoth_pm_device_policy_t p,
			thoth_pm_device_result_t *out)
{
	return thoth_pm_sim_device_timers(m, qos_ns, t, p, true, out);
}

int thoth_pm_sim_device_timers(const thoth_pm_device_model_t *m, uint64_t qos_ns,
			       const thoth_pm_trace_t *t, thoth_pm_device_policy_t p,
			       bool use_timers, thoth_pm_device_result_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!m || !t || (unsigned)p >= THOTH_PM_DEV_COUNT)
		return THOTH_E_INVAL;
	const thoth_pm_element_desc_t *d = &m->desc;
	policy_state_t ps = { .p = p };
	if (p == THOTH_PM_DEV_ENGINE) {
		int err = thoth_pm_engine_new(d, &ps.engine, NULL);
		if (err)
			return err;
	}
	double energy = 0; /* mW * ns */
	uint64_t free_at = 0;
	size_t next_timer = 0; /* the first timer job at or after i (count: none) */
	for (size_t i = 0; i <= t->count; i++) {
		if (next_timer < i)
			next_timer = i;
		while (next_timer < t->count && !t->timer_driven && !t->jobs[next_timer].timer)
			next_timer++;
		/* the end of the trace closes the last idle period like a request */
		bool last = i == t->count;
		uint64_t a = last ? t->end_ns : t->jobs[i].arrival_ns;
		uint64_t start = free_at;
		if (a >= free_at) {
			uint64_t L = a - free_at;
			/* what the window page says at the idle start: the next
			 * armed timer (a timer-driven trace's ticks go on past
			 * its end: the end is its next tick) */
			uint64_t nt = THOTH_PM_NONE;
			if (use_timers && next_timer < t->count)
				nt = t->jobs[next_timer].arrival_ns - free_at;
			else if (use_timers && last && t->timer_driven)
				nt = L;
			thoth_pm_decision_t dec;
			decide(&ps, d, qos_ns, nt, L, &dec);
			/* pre-wake: the engine for the next armed timer, the
			 * oracle for the request it knows */
			uint64_t event = p == THOTH_PM_DEV_ORACLE ? L : nt;
			idle_cost_t c = play_idle(d, &dec, L, event, out->residency_ns);
			observe(&ps, nt, L);
			energy += c.energy_mw_ns;
			out->idle_periods++;
			if (c.deepest) {
				out->sleeps++;
				if (thoth_pm_break_even_ns(d, c.deepest) > L)
					out->too_deep++;
			}
			if (!last) {
				if (c.wake_delay_ns > qos_ns)
					out->qos_violations++;
				out->wake_delay_sum_ns += c.wake_delay_ns;
				if (c.wake_delay_ns > out->max_wake_delay_ns)
					out->max_wake_delay_ns = c.wake_delay_ns;
			}
			start = a + c.wake_delay_ns;
		}
		if (last)
			break;
		energy += (double)m->busy_mw * (double)t->jobs[i].work_ns;
		free_at = start + t->jobs[i].work_ns;
		out->requests++;
	}
	out->energy_mj = energy / 1e9; /* mW * ns = 1e-12 J = 1e-9 mJ */
	thoth_pm_engine_free(ps.engine);
	return 0;
}
