/*
 * engine.c - the PM policy engine (engine.h has the rules; docs/PM.md the
 * evidence).  Prediction lives in predict.c; this file turns a prediction
 * and the constraints into a decision.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "idle_hist.h"
#include "predict.h"
#include "thoth/error.h"

static uint32_t transition_mw(const thoth_pm_element_desc_t *d, uint32_t s)
{
	return d->states[s].transition_mw ? d->states[s].transition_mw : d->states[0].power_mw;
}

uint64_t thoth_pm_wake_latency_ns(const thoth_pm_element_desc_t *d, uint32_t s)
{
	return d->states[s].entry_latency_ns + d->states[s].exit_latency_ns;
}

/* E_s(t) = a_s + P_s * t for t >= entry + exit: the intercept a_s, in nJ
 * (mW * ns / 1e6 = nJ ... kept in mW*ns, divided once at the end). */
static double intercept(const thoth_pm_element_desc_t *d, uint32_t s)
{
	double ttr = (double)thoth_pm_wake_latency_ns(d, s);
	return ttr * ((double)transition_mw(d, s) - (double)d->states[s].power_mw);
}

double thoth_pm_idle_energy_nj(const thoth_pm_element_desc_t *d, uint32_t s, uint64_t idle_ns)
{
	/* mW * ns = 1e-12 J = 1e-3 nJ */
	return (intercept(d, s) + (double)d->states[s].power_mw * (double)idle_ns) / 1000.0;
}

/* Where the lines of S (shallower, higher power) and D cross, ns from the
 * start of the idle period; 0 if D is below S from the start. */
static uint64_t crossing_ns(const thoth_pm_element_desc_t *d, uint32_t s, uint32_t deep)
{
	double ps = d->states[s].power_mw, pd = d->states[deep].power_mw;
	double da = intercept(d, deep) - intercept(d, s);
	if (pd >= ps)
		return THOTH_PM_NONE; /* never pays off against S */
	if (da <= 0)
		return 0;
	double t = da / (ps - pd);
	return t >= 1.8e19 ? THOTH_PM_NONE : (uint64_t)(t + 0.5);
}

uint64_t thoth_pm_break_even_ns(const thoth_pm_element_desc_t *d, uint32_t s)
{
	if (s == 0)
		return 0;
	uint64_t t = crossing_ns(d, 0, s);
	uint64_t ttr = thoth_pm_wake_latency_ns(d, s);
	return t < ttr ? ttr : t;
}

int thoth_pm_element_check(const thoth_pm_element_desc_t *d, const char **why)
{
	static const char *const whys[] = {
		"state_count: must be 1..8",
		"states[0]: the on-idle state has no entry/exit latency",
		"states[i].power_mw: a deeper state must draw less than states[0]",
		"states[i].entry_latency_ns: above 60 s",
		"states[i].exit_latency_ns: above 60 s",
		"states[i]: a deeper state needs an entry or exit latency",
	};
	int k = -1;
	if (!d || d->state_count < 1 || d->state_count > THOTH_PM_MAX_STATES)
		k = 0;
	else if (d->states[0].entry_latency_ns || d->states[0].exit_latency_ns)
		k = 1;
	for (uint32_t i = 1; k < 0 && i < d->state_count; i++) {
		const thoth_pm_state_desc_t *s = &d->states[i];
		if (s->power_mw >= d->states[0].power_mw)
			k = 2;
		else if (s->entry_latency_ns > THOTH_PM_MAX_LATENCY_NS)
			k = 3;
		else if (s->exit_latency_ns > THOTH_PM_MAX_LATENCY_NS)
			k = 4;
		else if (!s->entry_latency_ns && !s->exit_latency_ns)
			k = 5;
	}
	if (k < 0)
		return 0;
	if (why)
		*why = whys[k];
	return THOTH_E_INVAL;
}

/* Step 1: may S be entered at all? */
static int allowed(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c, uint32_t s)
{
	if (s == 0)
		return 1;
	uint64_t wake = thoth_pm_wake_latency_ns(d, s);
	if (c->latency_ns != THOTH_PM_NONE && wake > c->latency_ns)
		return 0;
	if (c->next_event_ns != THOTH_PM_NONE && wake > c->next_event_ns)
		return 0;
	return 1;
}

/* Step 4: from FROM, walk the lower envelope of the allowed deeper states:
 * each next step is the state whose line crosses the current one first
 * (the deeper one on ties). */
static void build_ladder(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
			 uint32_t from, thoth_pm_decision_t *out)
{
	uint32_t cur = from;
	uint64_t now = 0;
	out->ladder_count = 0;
	for (;;) {
		uint32_t best = cur;
		uint64_t best_t = THOTH_PM_NONE;
		for (uint32_t s = 0; s < d->state_count; s++) {
			if (s == cur || !allowed(d, c, s) ||
			    d->states[s].power_mw >= d->states[cur].power_mw)
				continue;
			uint64_t t = crossing_ns(d, cur, s);
			if (t == THOTH_PM_NONE)
				continue;
			if (t < now)
				t = now;
			if (t < best_t || (t == best_t && d->states[s].power_mw < d->states[best].power_mw)) {
				best = s;
				best_t = t;
			}
		}
		/* A known next event bounds the ladder: a step that cannot leave
		 * time to wake before the event is pointless. */
		if (best == cur || (c->next_event_ns != THOTH_PM_NONE &&
				    best_t + thoth_pm_wake_latency_ns(d, best) > c->next_event_ns))
			break;
		out->ladder[out->ladder_count++] = (thoth_pm_step_t){ .state = best, .at_ns = best_t };
		cur = best;
		now = best_t;
	}
}

static void set_prewake(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
			thoth_pm_decision_t *out)
{
	uint32_t deepest = out->ladder_count ? out->ladder[out->ladder_count - 1].state : out->state;
	out->prewake_ns = (c->next_event_ns != THOTH_PM_NONE && deepest)
				  ? d->states[deepest].exit_latency_ns : 0;
}

void thoth_pm_ladder(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
		     uint32_t from_state, thoth_pm_decision_t *out)
{
	memset(out, 0, sizeof(*out));
	out->state = from_state;
	build_ladder(d, c, from_state, out);
	set_prewake(d, c, out);
}

void thoth_pm_choose(const thoth_pm_element_desc_t *d, const thoth_pm_constraints_t *c,
		     uint64_t predicted_idle_ns, thoth_pm_decision_t *out)
{
	memset(out, 0, sizeof(*out));
	out->predicted_idle_ns = predicted_idle_ns;
	/* A known event bounds the idle period whatever history says. */
	uint64_t idle = predicted_idle_ns;
	if (c->next_event_ns != THOTH_PM_NONE && c->next_event_ns < idle)
		idle = c->next_event_ns;
	/* Step 3: of the allowed states worth entering for IDLE, the one with
	 * the least energy over IDLE (the deepest whose break-even is below
	 * it, unless a shallower one is cheaper there). */
	uint32_t best = 0;
	double best_e = thoth_pm_idle_energy_nj(d, 0, idle);
	for (uint32_t s = 1; s < d->state_count; s++) {
		if (!allowed(d, c, s) || thoth_pm_break_even_ns(d, s) > idle)
			continue;
		double e = thoth_pm_idle_energy_nj(d, s, idle);
		if (e <= best_e) {
			best = s;
			best_e = e;
		}
	}
	out->state = best;
	build_ladder(d, c, best, out);
	set_prewake(d, c, out);
}

int32_t thoth_pm_cpu_latency_hint_us(const thoth_pm_element_desc_t *d,
				     const thoth_pm_decision_t *decision)
{
	uint64_t ns = d->states[decision->state].exit_latency_ns;
	uint64_t us = (ns + 999) / 1000;
	return us > INT32_MAX ? INT32_MAX : (int32_t)us;
}

/* ---- the engine: description + history -------------------------------------------- */

struct thoth_pm_engine {
	thoth_pm_element_desc_t desc;
	thoth_pm_predictor_t predictor; /* TEO bins: hits/intercepts, the reported prediction */
	thoth_pm_idle_hist_t hist;      /* the distribution the plans are priced on */
	thoth_pm_engine_stats_t stats;
	uint32_t last_state;  /* entered at the last decision, for too_deep */
	uint64_t last_step_ns; /* ...at this time into the idle period */
	double mu;             /* the price of going too deep (observe() steers it) */
	/* Fixed by the description, computed once (not per decision): */
	uint64_t break_even[THOTH_PM_MAX_STATES];
	uint64_t upper[THOTH_PM_HIST_BINS]; /* the histogram's bin edges */
};

int thoth_pm_engine_new(const thoth_pm_element_desc_t *d, thoth_pm_engine_t **out,
			const char **why)
{
	int err = thoth_pm_element_check(d, why);
	if (err)
		return err;
	thoth_pm_engine_t *e = calloc(1, sizeof(*e));
	if (!e)
		return THOTH_E_NOMEM;
	e->desc = *d;
	for (uint32_t s = 0; s < d->state_count; s++)
		e->break_even[s] = thoth_pm_break_even_ns(d, s);
	for (uint32_t b = 0; b < THOTH_PM_HIST_BINS; b++)
		e->upper[b] = thoth_pm_idle_hist_upper_ns(b);
	thoth_pm_predictor_init(&e->predictor, e->break_even, d->state_count);
	thoth_pm_idle_hist_init(&e->hist);
	*out = e;
	return 0;
}

void thoth_pm_engine_free(thoth_pm_engine_t *e)
{
	free(e);
}

const thoth_pm_element_desc_t *thoth_pm_engine_desc(const thoth_pm_engine_t *e)
{
	return &e->desc;
}

/* ---- step 3 without a known event: the cheapest plan on the distribution ---------- */

/*
 * The history as the plans are priced on it: the bins in use, in order of
 * length (a bin's mean lies inside the bin, so bin order is length order),
 * with prefix sums of weight and weight x length.  A plan's energy is
 * piecewise linear in the idle length L (on, then each entry, then each
 * state), so its expected energy over the history is, per piece,
 * a x (weight in the piece) + b x (weight x length in the piece): two
 * prefix-sum differences per piece, found by binary search, instead of
 * playing the plan on every bin (what made a decision cost 13-30 us;
 * docs/PM.md "Cost").
 */
typedef struct hist_view {
	uint32_t n;
	double len[THOTH_PM_HIST_BINS];          /* mean length of the k-th bin in use */
	double w[THOTH_PM_HIST_BINS + 1];        /* prefix sums: bins [0, k) */
	double wl[THOTH_PM_HIST_BINS + 1];
	uint64_t upper[THOTH_PM_HIST_BINS];      /* the k-th bin's upper edge */
} hist_view_t;

/* With a known next event at CAP (THOTH_PM_NONE: none), every length past
 * it is the event itself: the idle period ends there at the latest. */
static void view_hist(const thoth_pm_idle_hist_t *h, const uint64_t *upper, uint64_t cap,
		      hist_view_t *v)
{
	v->n = 0;
	v->w[0] = v->wl[0] = 0;
	for (uint32_t b = 0; b < THOTH_PM_HIST_BINS; b++) {
		if (h->weight[b] <= 0)
			continue;
		double len = thoth_pm_idle_hist_mean_ns(h, b);
		uint32_t k = v->n;
		if (cap != THOTH_PM_NONE && len >= (double)cap) {
			if (k && v->len[k - 1] == (double)cap) {
				k--;            /* pooled with the lengths already at CAP */
			} else {
				v->n++;
				v->len[k] = (double)cap;
				v->upper[k] = cap;
				v->w[k + 1] = v->w[k];
				v->wl[k + 1] = v->wl[k];
			}
			v->w[k + 1] += h->weight[b];
			v->wl[k + 1] += h->weight[b] * (double)cap;
			continue;
		}
		v->n++;
		v->len[k] = len;
		v->upper[k] = upper[b];
		v->w[k + 1] = v->w[k] + h->weight[b];
		v->wl[k + 1] = v->wl[k] + h->weight[b] * len;
	}
}

/* Bins in use with length <= X (le) or < X (lt): their count. */
static uint32_t count_le(const hist_view_t *v, double x)
{
	uint32_t lo = 0, hi = v->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v->len[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t count_lt(const hist_view_t *v, double x)
{
	uint32_t lo = 0, hi = v->n;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v->len[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

typedef struct pricing {
	const hist_view_t *v;
	const uint32_t *short_of; /* per state: bins shorter than its break-even */
	uint32_t lo;        /* the first bin not yet priced */
	double e, too_deep;
} pricing_t;

/* Bins [p->lo, HI) cost A + B x L each, and went to DEEPEST. */
static void price_piece(pricing_t *p, uint32_t hi, double a, double b, uint32_t deepest)
{
	const hist_view_t *v = p->v;
	if (hi <= p->lo)
		return;
	p->e += a * (v->w[hi] - v->w[p->lo]) + b * (v->wl[hi] - v->wl[p->lo]);
	if (deepest) {
		/* too deep: the deepest state's break-even not reached */
		uint32_t td = p->short_of[deepest];
		if (td > hi)
			td = hi;
		if (td > p->lo)
			p->too_deep += v->w[td] - v->w[p->lo];
	}
	p->lo = hi;
}

/* Expected energy (mW * ns, weighted) of PLAN over the history V, and the
 * weight for which it goes too deep.  An idle period of length L is played
 * as the simulator's play_idle without pre-wake: on until a step, an entry
 * a request interrupts is finished and then left. */
static double plan_expected(const thoth_pm_element_desc_t *d, const hist_view_t *v,
			    const uint32_t *short_of, const thoth_pm_decision_t *plan,
			    double *too_deep)
{
	thoth_pm_step_t steps[THOTH_PM_MAX_STATES + 1];
	uint32_t n = 0, state = 0;
	if (plan->state)
		steps[n++] = (thoth_pm_step_t){ plan->state, 0 };
	for (uint32_t i = 0; i < plan->ladder_count; i++)
		steps[n++] = plan->ladder[i];
	pricing_t p = { .v = v, .short_of = short_of };
	double now = 0, e = 0; /* energy up to NOW, in the state entered last */
	for (uint32_t i = 0; i < n && p.lo < v->n; i++) {
		double at = (double)steps[i].at_ns > now ? (double)steps[i].at_ns : now;
		double ps = (double)d->states[state].power_mw;
		double leave = state ? transition_mw(d, state) * (double)d->states[state].exit_latency_ns : 0;
		/* L <= AT: the step never comes; on in STATE, then leave it */
		price_piece(&p, count_le(v, at), e - ps * now + leave, ps, state);
		uint32_t s = steps[i].state;
		double entry_end = at + (double)d->states[s].entry_latency_ns;
		double tr = transition_mw(d, s);
		/* AT < L < the entry's end: the entry is finished, then left */
		price_piece(&p, count_lt(v, entry_end),
			    e + ps * (at - now) + tr * (entry_end - at + (double)d->states[s].exit_latency_ns),
			    0, s);
		e += ps * (at - now) + tr * (double)d->states[s].entry_latency_ns;
		now = entry_end;
		state = s;
	}
	double ps = (double)d->states[state].power_mw;
	double leave = state ? transition_mw(d, state) * (double)d->states[state].exit_latency_ns : 0;
	price_piece(&p, v->n, e - ps * now + leave, ps, state);
	*too_deep = p.too_deep;
	return p.e;
}

/*
 * Of the plans "on for TAU, then FIRST, then its ladder" (FIRST an allowed
 * state, TAU = 0 or just past a length the history has seen), the one with the least
 * expected energy over the history plus a price on going too deep (the
 * Lagrange multiplier of the too-deep target, see observe()).  Waiting just
 * past a seen length is where the choice can change: between two seen
 * lengths the cost of a plan is linear in TAU, so the best TAU is at one of
 * them.
 */
static void choose_on_history(const thoth_pm_engine_t *e, const thoth_pm_constraints_t *c,
			      thoth_pm_decision_t *out)
{
	const thoth_pm_element_desc_t *d = &e->desc;
	const uint64_t *be = e->break_even;
	hist_view_t v;
	view_hist(&e->hist, e->upper, c->next_event_ns, &v);
	uint32_t short_of[THOTH_PM_MAX_STATES];
	for (uint32_t s = 0; s < d->state_count; s++)
		short_of[s] = count_lt(&v, (double)be[s]);
	thoth_pm_ladder(d, c, 0, out); /* the fallback: never too deep */
	double too_deep, best = plan_expected(d, &v, short_of, out, &too_deep);
	/* The price of going too deep: MU times the energy of staying on for
	 * the first deep state's break-even (MU is steered by observe()). */
	double price = e->mu * (double)d->states[0].power_mw * (double)be[1];
	best += price * too_deep; /* 0: the ladder never goes too deep */
	thoth_pm_decision_t plan, lad;
	for (uint32_t s = 1; s < d->state_count; s++) {
		if (!allowed(d, c, s) || d->states[s].power_mw >= d->states[0].power_mw)
			continue;
		/* S's ladder, shifted by each TAU below (made once per S) */
		thoth_pm_ladder(d, c, s, &lad);
		uint64_t last = 0;
		for (uint32_t k = 0; k <= v.n; k++) {
			uint64_t tau = k ? v.upper[k - 1] : 0;
			if (tau == UINT64_MAX)
				break;          /* past the longest bin: never */
			if (k > 0 && tau == last)
				continue;
			last = tau;
			memset(&plan, 0, sizeof plan);
			plan.state = tau ? 0 : s;
			if (tau)
				plan.ladder[plan.ladder_count++] = (thoth_pm_step_t){ .state = s, .at_ns = tau };
			for (uint32_t i = 0; i < lad.ladder_count && plan.ladder_count < THOTH_PM_MAX_STATES; i++)
				plan.ladder[plan.ladder_count++] = (thoth_pm_step_t){
					.state = lad.ladder[i].state, .at_ns = lad.ladder[i].at_ns + tau,
				};
			double cost = plan_expected(d, &v, short_of, &plan, &too_deep);
			cost += price * too_deep;
			/* Waiting past S's break-even wins where the idle lengths
			 * crowd just above it (recorded request trains at ~100 ms
			 * against the XG4's 95 ms), but it gives up the break-even
			 * bound in a period that ends just after TAU, and the
			 * history is an estimate: such a plan must beat the others
			 * by a clear margin (docs/PM.md "Waiting past the break-even"). */
			if (tau > be[s])
				cost *= 1.0 + THOTH_PM_PAST_BREAK_EVEN_MARGIN;
			if (cost < best) {
				best = cost;
				*out = plan;
			}
		}
	}
}

void thoth_pm_engine_decide(thoth_pm_engine_t *e, const thoth_pm_constraints_t *c,
			    thoth_pm_decision_t *out)
{
	uint64_t predicted = thoth_pm_predictor_predict(&e->predictor, c->next_event_ns);
	if (e->hist.total <= 0) {
		/* No history: the choice for the known event (or, with none,
		 * the break-even ladder). */
		thoth_pm_choose(&e->desc, c, predicted, out);
	} else {
		/* The plans on the history; a known event caps it (requests
		 * nobody announced may still come first) and is pre-woken. */
		choose_on_history(e, c, out);
		set_prewake(&e->desc, c, out);
		out->predicted_idle_ns = predicted;
	}
	e->stats.decisions++;
	e->last_state = out->state;
	e->last_step_ns = 0;
	/* A plan that waits enters its first state by a timed step: that
	 * state is this decision's too (too_deep if the idle outlasts the
	 * wait but not the state's break-even). */
	if (out->state == 0 && out->ladder_count) {
		e->last_state = out->ladder[0].state;
		e->last_step_ns = out->ladder[0].at_ns;
	}
}

void thoth_pm_engine_observe(thoth_pm_engine_t *e, uint64_t idle_ns, uint64_t next_event_ns)
{
	int hit = thoth_pm_predictor_observe(&e->predictor, idle_ns, next_event_ns);
	if (hit > 0)
		e->stats.hits++;
	else if (hit == 0)
		e->stats.intercepts++;
	thoth_pm_idle_hist_observe(&e->hist, idle_ns);
	int td = idle_ns > e->last_step_ns && e->break_even[e->last_state] > idle_ns;
	if (td)
		e->stats.too_deep++;
	/* Dual ascent on the too-deep target: each too-deep period raises the
	 * price of going too deep, each other period lowers it by a tenth as
	 * much, so the price settles where at most THOTH_PM_TOO_DEEP_TARGET of
	 * this element's periods go too deep (and falls to 0 when going deep
	 * is never wrong). */
	e->mu += THOTH_PM_TOO_DEEP_GAIN * ((double)td - THOTH_PM_TOO_DEEP_TARGET);
	if (e->mu < 0)
		e->mu = 0;
	e->last_state = 0;
	e->last_step_ns = 0;
}

void thoth_pm_engine_stats(const thoth_pm_engine_t *e, thoth_pm_engine_stats_t *out)
{
	*out = e->stats;
}
