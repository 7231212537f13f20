/*
 * governor.c - PELT and the frequency governors (governor.h describes each;
 * docs/PM.md "The governor" gives the reasons).
 */
#include <math.h>
#include <string.h>

#include "governor.h"
#include "thoth/error.h"

static const char *const names[THOTH_PM_GOV_COUNT] = {
	"performance", "powersave", "ondemand", "schedutil", "thoth",
};

const char *thoth_pm_governor_name(thoth_pm_governor_kind_t k)
{
	return (unsigned)k < THOTH_PM_GOV_COUNT ? names[k] : "?";
}

int thoth_pm_governor_parse(const char *name, thoth_pm_governor_kind_t *out)
{
	for (int k = 0; name && k < THOTH_PM_GOV_COUNT; k++)
		if (strcmp(name, names[k]) == 0) {
			*out = (thoth_pm_governor_kind_t)k;
			return 0;
		}
	return THOTH_E_NOT_FOUND;
}

static const char *const option_names[THOTH_PM_GOV_OPTIONS_ALL + 1] = {
	"none", "ff", "chain", "ff+chain",
};

const char *thoth_pm_governor_options_name(unsigned options)
{
	return options <= THOTH_PM_GOV_OPTIONS_ALL ? option_names[options] : "?";
}

int thoth_pm_governor_options_parse(const char *name, unsigned *out)
{
	if (name && strcmp(name, "default") == 0) {
		*out = THOTH_PM_GOV_DEFAULT_OPTIONS;
		return 0;
	}
	for (unsigned k = 0; name && k <= THOTH_PM_GOV_OPTIONS_ALL; k++)
		if (strcmp(name, option_names[k]) == 0) {
			*out = k;
			return 0;
		}
	return THOTH_E_NOT_FOUND;
}

double thoth_pm_pelt_update(thoth_pm_pelt_t *p, uint64_t now_ns, uint64_t running_ns,
			    uint32_t capacity)
{
	if (now_ns <= p->last_ns)
		return p->util;
	uint64_t dt = now_ns - p->last_ns;
	if (running_ns > dt)
		running_ns = dt;
	/* Geometric decay with y^32ms = 1/2; the elapsed window contributes
	 * its (frequency-scaled) running share at full weight 1 - decay.  The
	 * kernel sums 1 ms segments; for the steps we use (<= 1 ms) this is
	 * the same signal up to rounding. */
	double decay = exp2(-(double)dt / (double)THOTH_PM_PELT_HALF_LIFE_NS);
	double share = (double)running_ns / (double)dt * (double)capacity / 1024.0;
	p->util = p->util * decay + 1024.0 * share * (1.0 - decay);
	p->last_ns = now_ns;
	return p->util;
}

/* The lower convex hull of the efficient OPPs' (capacity, active power)
 * and idle at (0, 0), as the optimum time-shares them (sim_cpu.c): what the
 * overlap reserve prices a shared speed on (overlap_reserve).  It depends
 * on the model alone, so it is built once, at init, into G's cache. */
static void hull_build(thoth_pm_governor_t *h, const thoth_pm_cpu_model_t *m)
{
	h->hull_n = 1;
	h->hull_x[0] = h->hull_y[0] = 0;
	for (uint32_t i = 0; i < m->opp_count; i++) {
		if (thoth_pm_opp_inefficient(m, i))
			continue;
		double x = m->opps[i].capacity, y = thoth_pm_opp_power_mw(m, i) - (double)m->sleep_mw;
		/* drop points on or above the chord to this one (x increases) */
		uint32_t n = h->hull_n;
		while (n >= 2 && (h->hull_y[n - 1] - h->hull_y[n - 2]) * (x - h->hull_x[n - 2]) >=
					 (y - h->hull_y[n - 2]) * (h->hull_x[n - 1] - h->hull_x[n - 2]))
			n--;
		h->hull_x[n] = x;
		h->hull_y[n++] = y;
		h->hull_n = n;
	}
}

void thoth_pm_governor_init(thoth_pm_governor_t *g, thoth_pm_governor_kind_t kind,
			    const thoth_pm_cpu_model_t *model, uint64_t now_ns)
{
	memset(g, 0, sizeof(*g));
	g->kind = kind;
	g->model = model;
	g->pelt.last_ns = now_ns;
	g->window_start_ns = now_ns;
	g->opp = kind == THOTH_PM_GOV_PERFORMANCE ? model->opp_count - 1 : 0;
	if (kind == THOTH_PM_GOV_THOTH)
		g->opp = thoth_pm_opp_for_capacity(model, 0);
	g->options = THOTH_PM_GOV_DEFAULT_OPTIONS;
	g->last_change_ns = now_ns;
	hull_build(g, model);
	for (uint32_t i = 0; i < model->opp_count && i < THOTH_PM_MODEL_MAX_OPPS; i++) {
		g->next_eff[i] = (uint8_t)i;
		for (uint32_t j = i + 1; j < model->opp_count; j++)
			if (!thoth_pm_opp_inefficient(model, j)) {
				g->next_eff[i] = (uint8_t)j;
				break;
			}
	}
}

/* The clients' typical learned chain for the overlap reserve: the sums of
 * their learned depths and spans (step spacing x (depth - 1) + deadline)
 * over the clients that have one.  Kept in G and redone when a client's
 * learned chain changes (thoth_pm_governor_arrived) rather than at each
 * decision, where the reserve asks for it while requests are queued. */
static void typical_chain(thoth_pm_governor_t *g)
{
	double depth = 0, span = 0;
	int n = 0;
	for (int i = 0; i < THOTH_PM_GOV_CLIENTS; i++) {
		const thoth_pm_chain_client_t *c = &g->clients[i];
		if (!c->id || !c->depth || c->gap_ns <= 0)
			continue;
		depth += c->depth;
		span += c->gap_ns * (c->depth - 1) + (double)c->rel_deadline_ns;
		n++;
	}
	g->chain_depth_sum = depth;
	g->chain_span_sum = span;
	g->chain_clients = n;
}

void thoth_pm_governor_set_options(thoth_pm_governor_t *g, unsigned options)
{
	g->options = options & THOTH_PM_GOV_OPTIONS_ALL;
}

void thoth_pm_governor_arrived(thoth_pm_governor_t *g, uint64_t now_ns, uint32_t client,
			       uint64_t deadline_ns)
{
	g->arrived = true;
	if (!client)
		return;
	thoth_pm_chain_client_t *c = &g->clients[client % THOTH_PM_GOV_CLIENTS];
	uint64_t rel = deadline_ns > now_ns ? deadline_ns - now_ns : 0;
	bool next_step = c->id == client && now_ns >= c->last_arrival_ns &&
			 now_ns - c->last_arrival_ns <= c->rel_deadline_ns;
	if (!next_step) {
		/* A chain starts (a lone request is a chain of one): learn
		 * how often, for the reserve against overlaps (thoth_gov). */
		if (g->started && now_ns > g->last_start_ns) {
			double gap = (double)(now_ns - g->last_start_ns);
			g->start_gap_ns = g->start_gap_ns > 0 ? g->start_gap_ns + (gap - g->start_gap_ns) / 8
							      : gap;
		}
		if (!g->started || now_ns > g->last_start_ns)
			g->last_start_ns = now_ns;
		g->started = true;
	}
	if (c->id != client || now_ns < c->last_arrival_ns) {
		*c = (thoth_pm_chain_client_t){ .id = client, .steps = 1, .last_arrival_ns = now_ns,
						.rel_deadline_ns = rel };
		typical_chain(g);
		return;
	}
	double gap = (double)(now_ns - c->last_arrival_ns);
	if (next_step) {
		/* Sent before the client's previous request was due: a
		 * client waiting for an answer does not send an unrelated
		 * request, so this is the chain's next step. */
		c->gap_ns = c->gap_ns > 0 ? c->gap_ns + (gap - c->gap_ns) / 4 : gap;
		c->steps++;
	} else {
		/* A new chain: the previous one ended with STEPS steps.  The
		 * counts age (halved when one saturates), so a client that
		 * changes its habit is followed. */
		uint32_t d = c->steps < THOTH_PM_GOV_CHAIN_DEPTHS ? c->steps : THOTH_PM_GOV_CHAIN_DEPTHS;
		if (c->depths[d - 1] == UINT8_MAX)
			for (int k = 0; k < THOTH_PM_GOV_CHAIN_DEPTHS; k++)
				c->depths[k] /= 2;
		c->depths[d - 1]++;
		c->depth = 0;
		for (uint32_t k = 0; k < THOTH_PM_GOV_CHAIN_DEPTHS; k++)
			if (c->depths[k] > (c->depth ? c->depths[c->depth - 1] : 0))
				c->depth = k + 1;
		c->steps = 1;
	}
	c->last_arrival_ns = now_ns;
	c->rel_deadline_ns = rel;
	typical_chain(g);
}

/* The steps the clients' running chains are still expected to send, as
 * queued demand (no work done yet), into OUT[MAX]; their count.  A chain
 * whose next step is overdue by a whole step has ended (shorter than
 * learned) and predicts nothing.  They are listed in the order they are
 * expected to arrive, which is the order they will be served in (first
 * come, first served): `fits` checks each one with all the work listed
 * before it, so two overlapping chains' steps listed client by client
 * checked a step against a later step of the other chain.  With more
 * than MAX steps the earliest MAX are kept, whichever client sends them
 * (stopping at MAX in client order kept an early client's late steps and
 * dropped a later client's next ones). */
static size_t predicted_steps(const thoth_pm_governor_t *g, uint64_t now, thoth_pm_pending_t *out,
			      size_t max)
{
	uint64_t at[64];
	size_t n = 0;
	if (max > sizeof at / sizeof at[0])
		max = sizeof at / sizeof at[0];
	for (size_t i = 0; i < THOTH_PM_GOV_CLIENTS; i++) {
		const thoth_pm_chain_client_t *c = &g->clients[i];
		if (!c->id || c->gap_ns <= 0 || c->depth <= c->steps ||
		    (double)now > (double)c->last_arrival_ns + 2 * c->gap_ns)
			continue;
		uint32_t left = c->depth - c->steps;
		for (uint32_t k = 1; k <= left; k++) {
			uint64_t arrival = (uint64_t)((double)c->last_arrival_ns + k * c->gap_ns);
			/* Full: this client's later steps come later still. */
			if (n == max && (!max || at[n - 1] <= arrival))
				break;
			size_t j = n < max ? n++ : n - 1;  /* insertion by expected arrival */
			for (; j > 0 && at[j - 1] > arrival; j--) {
				at[j] = at[j - 1];
				out[j] = out[j - 1];
			}
			at[j] = arrival;
			out[j] = (thoth_pm_pending_t){ arrival + c->rel_deadline_ns, 0 };
		}
	}
	return n;
}

void thoth_pm_governor_completed(thoth_pm_governor_t *g, double work)
{
	/* The window of the last works, its mean and its largest: what the
	 * estimate rests on once it holds THOTH_PM_GOV_WORK_MIN (thoth_gov). */
	g->works[g->completions % THOTH_PM_GOV_WORK_WINDOW] = work;
	if (g->works_n < THOTH_PM_GOV_WORK_WINDOW)
		g->works_n++;
	double sum = 0, max = 0, second = 0;
	for (uint32_t i = 0; i < g->works_n; i++) {
		double w = g->works[i];
		sum += w;
		if (w > max) {
			second = max;
			max = w;
		} else if (w > second) {
			second = w;
		}
	}
	/* One work alone above THOTH_PM_GOV_WORK_OUTLIER x the next largest
	 * (live: a handler that faulted its pages in, a cold cache) would set
	 * the plan for the next 32 requests: it is left out of the largest and
	 * the mean until another as large confirms it.  On the bench's works
	 * (0.8..1.2 x the mean: at most 1.5x apart) it never applies. */
	if (g->works_n >= THOTH_PM_GOV_WORK_MIN && max > THOTH_PM_GOV_WORK_OUTLIER * second) {
		sum -= max;
		g->win_mean = sum / (g->works_n - 1);
		g->win_max = second;
	} else {
		g->win_mean = sum / g->works_n;
		g->win_max = max;
	}
	/* Mean and mean deviation with gain 1/8 and 1/4, as TCP's SRTT and
	 * RTTVAR (RFC 6298): cheap, and the deviation term covers the
	 * variance that a mean alone would turn into deadline misses; the
	 * estimate until the window has enough works. */
	if (g->completions++ == 0) {
		g->est_mean = work;
		g->est_dev = 0;
		return;
	}
	double err = work - g->est_mean;
	g->est_dev += (fabs(err) - g->est_dev) / 4;
	g->est_mean += err / 8;
}

static uint32_t max_capacity(const thoth_pm_cpu_model_t *m)
{
	return m->opps[m->opp_count - 1].capacity;
}

static uint32_t schedutil(thoth_pm_governor_t *g, uint64_t now)
{
	const thoth_pm_cpu_model_t *m = g->model;
	if (now - g->last_change_ns < THOTH_PM_SCHEDUTIL_RATE_LIMIT_NS)
		return g->opp;
	double fmax = m->opps[m->opp_count - 1].freq_khz;
	double next = 1.25 * fmax * g->pelt.util / max_capacity(m);
	uint32_t opp = m->opp_count - 1;
	for (uint32_t i = 0; i < m->opp_count; i++)
		if (m->opps[i].freq_khz >= next) {
			opp = i;
			break;
		}
	if (opp != g->opp)
		g->last_change_ns = now;
	return opp;
}

static uint32_t ondemand(thoth_pm_governor_t *g, uint64_t now, uint64_t running_ns)
{
	const thoth_pm_cpu_model_t *m = g->model;
	g->window_busy_ns += running_ns;
	if (now - g->window_start_ns < THOTH_PM_ONDEMAND_SAMPLING_NS)
		return g->opp;
	uint64_t load = g->window_busy_ns * 100 / (now - g->window_start_ns);
	g->window_start_ns = now;
	g->window_busy_ns = 0;
	if (load > 80)
		return m->opp_count - 1;
	double fmin = m->opps[0].freq_khz, fmax = m->opps[m->opp_count - 1].freq_khz;
	double next = fmin + (double)load * (fmax - fmin) / 100.0;
	for (uint32_t i = 0; i < m->opp_count; i++)
		if (m->opps[i].freq_khz >= next)
			return i;
	return m->opp_count - 1;
}

/* The next efficient OPP above I (I itself at the top), from the table
 * built at init (each lookup used to walk the OPPs and price each). */
static uint32_t next_efficient(const thoth_pm_governor_t *g, uint32_t i)
{
	return i < g->model->opp_count && i < THOTH_PM_MODEL_MAX_OPPS ? g->next_eff[i] : i;
}

/* The work estimate: each request's MEAN, and EST, what one request is
 * planned on (0 before any completion; thoth_gov says which). */
typedef struct estimate {
	double mean, est;
} estimate_t;

/* Can the queued demand be met by running at LO for the next decision
 * interval (plus a switch) and at HI after it?  This is how a CPU between
 * two OPPs time-shares them, as the optimum does (sim_cpu.c).
 *
 * FIRST is the OPP that runs while the CPU switches to LO (FIRST == LO: no
 * switch): a frequency change takes the switch latency, during which the
 * old OPP runs (sim_cpu.c, and cpufreq drivers).  The callers pass the
 * current OPP where the plan raises it (the slower old OPP runs first: a
 * raise counted as instant planned 0.5 ms of work that was not done) and
 * where the governor lowers at once (the faster old OPP runs first: a
 * lower OPP needs to carry the queue only from the end of the switch); the
 * search for the wanted OPP below the current one takes no such credit
 * (with it there too, misses over the 27 cells rose 51 -> 64-66: docs/PM.md
 * "The switch in the plan").
 *
 * The first K queued requests are planned on K means plus ONE margin of
 * 2 deviations x sqrt(K), not K margins: their works are independent, so
 * the spread of their sum grows as sqrt(K) (K margins planned two chains
 * queued behind each other as if every step were the largest; docs/PM.md
 * "Chains").  A predicted step keeps a whole margin of its own: whether
 * it comes at all, and when, is a guess too (with sqrt margins for them
 * as well the A57 chain reached its right speed 2.15 ms after arrival,
 * over the 2 ms target; so did sharing margins between two overlapping
 * chains' steps, 2.09 ms on seed 1: docs/PM.md "The work estimate").
 *
 * The running request (the first queued) that has run past the mean has
 * shown part of its margin: its remaining work is at most EST - done, so
 * what it ran past the mean comes off the margin (at most the whole of
 * it).  Without this, a request at EST - epsilon was still planned on a
 * whole margin to come. */
static bool fits(const thoth_pm_cpu_model_t *m, uint64_t now, const thoth_pm_pending_t *pending,
		 size_t count, const thoth_pm_pending_t *predicted, size_t npredicted, estimate_t e,
		 uint32_t first, uint32_t lo, uint32_t hi)
{
	double sw = (double)m->switch_latency_ns;
	double lead = (double)THOTH_PM_THOTH_DECISION_NS + sw;
	double cumulative = 0;
	double shown = count && pending[0].done_work > e.mean ? pending[0].done_work - e.mean : 0;
	if (shown > e.est - e.mean)
		shown = e.est - e.mean;
	for (size_t i = 0; i < count + npredicted; i++) {
		/* Predicted steps come after the queued requests: they are
		 * sent later and due later. */
		const thoth_pm_pending_t *p = i < count ? &pending[i] : &predicted[i - count];
		/* A request past its estimate (or the first one, with none)
		 * is assumed to need half as much again as it has used: the
		 * demand stays visible while its deadline approaches. */
		double done = p->done_work;
		double left = done >= e.est ? done / 2 : done < e.mean ? e.mean - done : 0;
		cumulative += left;
		double queued = (double)(i < count ? i + 1 : count);
		double margin = (e.est - e.mean) * (sqrt(queued) + (double)(i + 1) - queued) - shown;
		if (margin < 0)
			margin = 0;
		double slack = (double)p->deadline_ns - (double)now;
		double pre = first != lo ? (slack < sw ? slack : sw) : 0;
		double rest = slack - pre, at_lo = hi != lo ? (rest < lead ? rest : lead) : rest;
		double can = m->opps[first].capacity * pre + m->opps[lo].capacity * at_lo +
			     m->opps[hi].capacity * (rest - at_lo);
		if ((cumulative + margin) * 1024.0 > can)
			return false;
	}
	return true;
}

/* An OPP's active energy per unit of work: what running one more unit of
 * work there costs over idling (the idle power is paid either way). */
static double active_per_work(const thoth_pm_cpu_model_t *m, uint32_t i)
{
	return ((double)thoth_pm_opp_power_mw(m, i) - (double)m->sleep_mw) / m->opps[i].capacity;
}

/* Active energy per unit of work at an average capacity V on the hull (the
 * governor's cached one, hull_build); the top OPP's beyond it. */
static double hull_per_work(const thoth_pm_governor_t *h, double v)
{
	for (uint32_t i = 1; i < h->hull_n; i++)
		if (v <= h->hull_x[i])
			return (h->hull_y[i - 1] + (h->hull_y[i] - h->hull_y[i - 1]) *
							   (v - h->hull_x[i - 1]) /
							   (h->hull_x[i] - h->hull_x[i - 1])) / v;
	return h->hull_y[h->hull_n - 1] / h->hull_x[h->hull_n - 1];
}

/* The steps of the overlap reserve's expected cost (expected_cost). */
#define OVERLAP_STEPS 16

/*
 * The expected active energy of running the known demand, R (capacity-ns of
 * expected work, its last deadline T ns away), at capacity C (active energy
 * E_C per unit of work) until it is done, when another chain of expected
 * work X, due within L of its start, starts at a Poisson time (mean gap
 * GAP).  If it starts at S before the known work is done, what is left of
 * it and the new chain run together at the speed the later of their
 * deadlines needs (the fluid optimum over the two, time-sharing the hull);
 * otherwise each runs at its own.  The chance over [0, done] in
 * OVERLAP_STEPS slices (midpoints): after the known work is done the cost
 * is ALONE whenever the chain starts (the 1 - mass term), and slices
 * spread to a far deadline put the first midpoint past the work's end,
 * where the reserve never acted (review of stop 31); the new chain's own
 * cost is counted in every case, so the candidates compare what the
 * overlap adds.
 */
static double expected_cost(const thoth_pm_governor_t *h, double c, double e_c, double r,
			    double t, double x, double l, double gap)
{
	double done_at = r * 1024.0 / c, horizon = done_at;
	double alone = r * e_c + x * hull_per_work(h, x * 1024.0 / l);
	double cost = 0, mass = 0;
	/* The chance of a start in slice k, exp(-s0 / gap) - exp(-s1 / gap):
	 * the slices are equal, so exp(-s / gap) at their bounds is q^k, one
	 * exp() per call instead of two per slice (most of a decision's cost,
	 * measured with callgrind: docs/PM.md "What the reserve's decision
	 * costs"). */
	double q = exp(-horizon / OVERLAP_STEPS / gap), e0 = 1;
	for (int k = 0; k < OVERLAP_STEPS; k++) {
		double s0 = horizon * k / OVERLAP_STEPS, s1 = horizon * (k + 1) / OVERLAP_STEPS;
		double e1 = e0 * q;
		double s = (s0 + s1) / 2, p = e0 - e1;
		e0 = e1;
		mass += p;
		if (s >= done_at) {
			cost += p * alone;
			continue;
		}
		double left = r - c * s / 1024.0;
		double v = (left + x) * 1024.0 / l, own = t - s > 0 ? left * 1024.0 / (t - s) : INFINITY;
		if (own > v)
			v = own;
		cost += p * ((r - left) * e_c + (left + x) * hull_per_work(h, v));
	}
	return cost + (1 - mass) * alone;
}

/*
 * The reserve against an overlapping chain (governor.h, CHAIN_PREDICT):
 * WANT, or the efficient OPP above it where that costs less in
 * expectation (expected_cost).  Work done ahead at the faster OPP costs
 * more for sure; if another chain starts before the known work is done,
 * less of it is left to share the overlap's speed, which on a steep table
 * (HiKey: 729 -> 960 MHz +24% per unit of work, 960 -> 1200 +41%) is what
 * the optimum, seeing the chain coming, avoids.  The rate of chain starts
 * is learned (any client; start_gap_ns); the new chain is the clients'
 * typical one (their learned depths x the mean work, due within their
 * step spacing x (depth - 1) + their deadline).  It replaces a rule that
 * compared P x (e(B) - e(A)) with e(A) - e(W), P the chance of a start
 * before the last predicted deadline: that one counted every unit worked
 * ahead as saving the B - A difference, whatever the amount and whenever
 * the chain came (docs/PM.md "The overlap reserve in expectation").
 */
static uint32_t overlap_reserve(const thoth_pm_governor_t *g, uint64_t now,
				const thoth_pm_pending_t *pending, size_t count,
				const thoth_pm_pending_t *predicted, size_t np, estimate_t e, uint32_t want)
{
	const thoth_pm_cpu_model_t *m = g->model;
	uint32_t a = next_efficient(g, want);
	if ((!np && !count) || g->start_gap_ns <= 0 || e.mean <= 0 || a == want)
		return want;
	double r = (double)np * e.mean, t = 0;
	for (size_t i = 0; i < count + np; i++) {
		const thoth_pm_pending_t *p = i < count ? &pending[i] : &predicted[i - count];
		if (i < count && p->done_work < e.mean)
			r += e.mean - p->done_work;
		if ((double)p->deadline_ns - (double)now > t)
			t = (double)p->deadline_ns - (double)now;
	}
	int n = g->chain_clients;
	if (!n || t <= 0 || r <= 0)
		return want;
	double x = g->chain_depth_sum / n * e.mean, l = g->chain_span_sum / n;
	double stay = expected_cost(g, m->opps[want].capacity, active_per_work(m, want), r, t, x, l,
				    g->start_gap_ns);
	double ahead = expected_cost(g, m->opps[a].capacity, active_per_work(m, a), r, t, x, l,
				     g->start_gap_ns);
	return ahead < stay ? a : want;
}

static uint32_t thoth_gov(thoth_pm_governor_t *g, uint64_t now, const thoth_pm_pending_t *pending,
			  size_t count)
{
	const thoth_pm_cpu_model_t *m = g->model;
	/* Known demand: with estimate E per request, the lowest efficient OPP
	 * from which the queued requests still all meet their deadlines
	 * (moving to the next efficient OPP after the decision interval).
	 * With nothing queued, the thread's running is not request-driven:
	 * then PELT says what it uses.  (While requests are queued PELT would
	 * only echo their burst, which the demand already accounts for.) */
	/* The work estimate.  Once the window holds enough works, a request is
	 * planned on the largest of the last 32 (x 1.01): steady, and on a
	 * bounded work distribution close to its top (uniform 0.8..1.2 of the
	 * mean: 1.188 expected).  The mean + 2 mean deviations it replaces
	 * moves with each request (the deviation's gain is 1/4, a few
	 * samples): above the top it spends energy, below it misses; on the
	 * bench's cells the window cut both (docs/PM.md "The work estimate").
	 * The headroom: without it HiKey Poisson missed 1 deadline of ~2000
	 * where it missed none. */
	estimate_t est = { 0, 0 };
	if (g->works_n >= THOTH_PM_GOV_WORK_MIN) {
		est.mean = g->win_mean;
		est.est = g->win_max * THOTH_PM_GOV_WORK_HEADROOM;
		if (est.est < est.mean)
			est.est = est.mean;
	} else if (g->completions) {
		est = (estimate_t){ g->est_mean, g->est_mean + 2 * g->est_dev };
	}
	thoth_pm_pending_t predicted[32];
	size_t np = 0;
	if (g->options & THOTH_PM_GOV_CHAIN_PREDICT)
		np = predicted_steps(g, now, predicted, sizeof predicted / sizeof predicted[0]);
	uint32_t want = thoth_pm_opp_for_capacity(m, count ? 0 : (uint32_t)ceil(g->pelt.util));
	uint32_t cur = g->opp, below = want;
	while (want + 1 < m->opp_count &&
	       !fits(m, now, pending, count, predicted, np, est, cur < want ? cur : want, want,
		     next_efficient(g, want))) {
		below = want;
		want = next_efficient(g, want);
	}
	/* Why (an observation, g->why): the predicted steps raised the plan
	 * when the OPP below it carries the queued requests alone. */
	g->why = !count ? THOTH_PM_WHY_PELT : THOTH_PM_WHY_PLAN;
	if (np && count && below != want &&
	    fits(m, now, pending, count, NULL, 0, est, cur < below ? cur : below, below, want))
		g->why = THOTH_PM_WHY_PREDICTED;
	/* An arrival that finds another request queued: if staying at WANT
	 * beyond the interval would not do, go faster now. */
	bool arrival = count > g->last_count || g->arrived;
	g->last_count = count;
	g->arrived = false;
	if ((g->options & THOTH_PM_GOV_FASTER_ON_QUEUE) && arrival && count >= 2 && !np &&
	    next_efficient(g, want) != want &&
	    !fits(m, now, pending, count, NULL, 0, est, cur < want ? cur : want, want, want)) {
		want = next_efficient(g, want);
		g->why = THOTH_PM_WHY_FASTER_FIRST;
	}
	if (g->options & THOTH_PM_GOV_CHAIN_PREDICT) {
		uint32_t reserve = overlap_reserve(g, now, pending, count, predicted, np, est, want);
		if (reserve != want)
			g->why = THOTH_PM_WHY_RESERVE;
		want = reserve;
	}
	if (want >= g->opp) {
		g->holding_down = false;
		return want;
	}
	/* Lower at once when requests are queued and WANT alone carries all
	 * the known demand, the predicted steps included: no known request
	 * would take it back up, so there is no back-and-forth for the hold
	 * to damp, and holding the faster OPP would only run that demand at
	 * a worse energy per unit of work (on the HiKey chains, a step that a
	 * late request had pushed to 1200 MHz ran the next one there too).
	 * With nothing queued the hold stays: idle costs the same at any OPP,
	 * and live, where a client's next request is seen only when it is
	 * dispatched, dropping at each completion would switch twice per
	 * request. */
	if (count && fits(m, now, pending, count, predicted, np, est, cur, want, want)) {
		g->holding_down = false;
		g->why = THOTH_PM_WHY_LOWER;
		return want;
	}
	/* For the same reason, the lowest efficient OPP between WANT and the
	 * current one that alone carries all of it is taken at once: an
	 * overlap of two chains that needed 1200 MHz on HiKey, once its
	 * first steps are done, is carried by 960 MHz, and holding the top
	 * OPP for 2 ms ran the rest of both chains at its 41% higher energy
	 * per unit of work. */
	if (count)
		for (uint32_t o = next_efficient(g, want); o < g->opp; o = next_efficient(g, o)) {
			if (fits(m, now, pending, count, predicted, np, est, cur, o, o)) {
				g->holding_down = false;
				g->why = THOTH_PM_WHY_LOWER;
				return o;
			}
			if (next_efficient(g, o) == o)
				break;
		}
	/* Otherwise lower only once lower targets held for the whole hold
	 * time. */
	if (!g->holding_down) {
		g->holding_down = true;
		g->down_since_ns = now;
	}
	if (now - g->down_since_ns < THOTH_PM_THOTH_DOWN_HOLD_NS) {
		g->why = count ? THOTH_PM_WHY_HOLD : THOTH_PM_WHY_PELT;
		return g->opp;
	}
	g->holding_down = false;
	g->why = count ? THOTH_PM_WHY_LOWER : THOTH_PM_WHY_PELT;
	return want;
}

uint32_t thoth_pm_governor_update(thoth_pm_governor_t *g, uint64_t now_ns, uint64_t running_ns,
				  const thoth_pm_pending_t *pending, size_t count)
{
	thoth_pm_pelt_update(&g->pelt, now_ns, running_ns, g->model->opps[g->opp].capacity);
	uint32_t opp = g->opp;
	switch (g->kind) {
	case THOTH_PM_GOV_PERFORMANCE:
		opp = g->model->opp_count - 1;
		break;
	case THOTH_PM_GOV_POWERSAVE:
		opp = 0;
		break;
	case THOTH_PM_GOV_ONDEMAND:
		opp = ondemand(g, now_ns, running_ns);
		break;
	case THOTH_PM_GOV_SCHEDUTIL:
		opp = schedutil(g, now_ns);
		break;
	case THOTH_PM_GOV_THOTH:
	default:
		opp = thoth_gov(g, now_ns, pending, count);
		break;
	}
	g->opp = opp;
	return opp;
}
