/*
 * sim_cpu.c - replaying a trace of requests on one CPU performance domain
 * (sim.h): the governors of governor.h in 50 us steps, and the offline
 * optimum computed exactly.
 *
 * The CPU serves requests first come first served.  Running at OPP i draws
 * core + cluster power; idle draws the cluster-sleep power; a frequency
 * change takes the model's switch latency, during which the old OPP runs.
 *
 * The optimum: with agreeable deadlines (sim_trace.c makes them so), the
 * energy-optimal schedule for a convex power-vs-speed curve is the "taut
 * string" through the corridor between the work that has arrived, A(t),
 * and the work that is due, D(t): the shortest path from (0, 0) to the
 * last deadline, which minimises the integral of every convex function of
 * its slope at once.  This is what Yao, Demers and Shenker's algorithm
 * computes for agreeable deadlines.  The curve is the lower convex hull of
 * the points (0, sleep power) and (capacity_i, power_i): any speed in between
 * is best served by time-sharing two hull points (or racing to sleep), so
 * inefficient OPPs are never on it.  It ignores switch latency: a bound no
 * governor can beat.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "thoth/error.h"

/* ---- the power curve ------------------------------------------------------------------- */

typedef struct hull {
	uint32_t n;
	double cap[THOTH_PM_MODEL_MAX_OPPS + 1], mw[THOTH_PM_MODEL_MAX_OPPS + 1];
	int opp[THOTH_PM_MODEL_MAX_OPPS + 1]; /* the OPP of each point; -1: idle */
} hull_t;

static void build_hull(const thoth_pm_cpu_model_t *m, hull_t *h)
{
	double x[THOTH_PM_MODEL_MAX_OPPS + 1], y[THOTH_PM_MODEL_MAX_OPPS + 1];
	int opp[THOTH_PM_MODEL_MAX_OPPS + 1];
	uint32_t n = 0;
	x[n] = 0;
	opp[n] = -1;
	y[n++] = m->sleep_mw;
	for (uint32_t i = 0; i < m->opp_count; i++) {
		x[n] = m->opps[i].capacity;
		opp[n] = (int)i;
		y[n++] = thoth_pm_opp_power_mw(m, i);
	}
	/* Andrew's monotone chain, lower half (x is increasing) */
	h->n = 0;
	for (uint32_t i = 0; i < n; i++) {
		while (h->n >= 2) {
			double x1 = h->cap[h->n - 2], y1 = h->mw[h->n - 2];
			double x2 = h->cap[h->n - 1], y2 = h->mw[h->n - 1];
			if ((x2 - x1) * (y[i] - y1) - (y2 - y1) * (x[i] - x1) <= 0)
				h->n--;
			else
				break;
		}
		h->cap[h->n] = x[i];
		h->opp[h->n] = opp[i];
		h->mw[h->n++] = y[i];
	}
}

/* Power (mW) of running at average capacity C, time-sharing hull points. */
static double hull_power(const hull_t *h, double c)
{
	for (uint32_t i = 1; i < h->n; i++)
		if (c <= h->cap[i])
			return h->mw[i - 1] + (h->mw[i] - h->mw[i - 1]) * (c - h->cap[i - 1]) /
							(h->cap[i] - h->cap[i - 1]);
	return h->mw[h->n - 1];
}

/* Book into WORK[opp] (ns at capacity 1024) the work that running DT ns
 * at average capacity C does, time-sharing the two hull points around C:
 * the upper one for the share (C - lo) / (hi - lo) of the time. */
static void hull_work(const hull_t *h, double c, double dt, double *work)
{
	for (uint32_t i = 1; i < h->n; i++)
		if (c <= h->cap[i]) {
			double up = (c - h->cap[i - 1]) / (h->cap[i] - h->cap[i - 1]);
			if (h->opp[i] >= 0)
				work[h->opp[i]] += up * dt * h->cap[i] / 1024.0;
			if (h->opp[i - 1] >= 0)
				work[h->opp[i - 1]] += (1 - up) * dt * h->cap[i - 1] / 1024.0;
			return;
		}
	/* Past the hull's end (not reached: callers stop at its top), as
	 * hull_power: the top point runs it. */
	if (h->n && h->opp[h->n - 1] >= 0)
		work[h->opp[h->n - 1]] += dt * c / 1024.0;
}

/* ---- the optimum ----------------------------------------------------------------------- */

typedef struct point {
	double t, c; /* time (ns), cumulative work (capacity-ns) */
	bool lower;  /* a deadline (the curve must be at or above) or an arrival (at or below) */
} point_t;

static int cmp_point(const void *a, const void *b)
{
	const point_t *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (int)y->lower - (int)x->lower;
}

typedef struct segment {
	double t0, c0, t1, c1;
} segment_t;

/* The taut string: segments in *SEG (caller frees), their count. */
static size_t taut_string(const thoth_pm_trace_t *t, segment_t **seg_out)
{
	size_t n = t->count;
	point_t *pt = malloc((2 * n + 1) * sizeof(*pt));
	segment_t *seg = malloc((2 * n + 2) * sizeof(*seg));
	if (!pt || !seg) {
		free(pt);
		free(seg);
		*seg_out = NULL;
		return 0;
	}
	/* upper points: before arrival j only the work of earlier jobs exists;
	 * lower points: at deadline j all work of jobs up to j is done */
	double cum = 0;
	size_t np = 0;
	for (size_t j = 0; j < n; j++) {
		pt[np++] = (point_t){ (double)t->jobs[j].arrival_ns, cum, false };
		cum += (double)t->jobs[j].work_ns;
		pt[np++] = (point_t){ (double)t->jobs[j].deadline_ns, cum, true };
	}
	qsort(pt, np, sizeof(*pt), cmp_point);
	/* Running max of lower points / min of upper points as c values at the
	 * same time can be out of order after sorting: keep the tightest. */
	size_t ns = 0;
	double pt_t = 0, pt_c = 0;
	size_t i = 0;
	while (i < np) {
		double lo = -INFINITY, up = INFINITY;
		size_t lo_k = SIZE_MAX, up_k = SIZE_MAX, bend = SIZE_MAX;
		for (size_t k = i; k < np; k++) {
			double dt = pt[k].t - pt_t;
			if (dt <= 0) {
				/* at the current time: a lower point above us means an
				 * infeasible (missed) deadline: jump there */
				if (pt[k].lower && pt[k].c > pt_c) {
					bend = k;
					break;
				}
				continue;
			}
			double s = (pt[k].c - pt_c) / dt;
			if (pt[k].lower && s > lo) {
				lo = s;
				lo_k = k;
				if (lo > up) {
					bend = up_k;
					break;
				}
			} else if (!pt[k].lower && s < up) {
				up = s;
				up_k = k;
				if (up < lo) {
					bend = lo_k;
					break;
				}
			}
		}
		if (bend == SIZE_MAX)
			bend = lo_k; /* no conflict left: straight to the steepest due point */
		if (bend == SIZE_MAX)
			break; /* only arrival points left: all work is done */
		double c1 = pt[bend].c;
		if (pt[bend].t > pt_t)
			seg[ns++] = (segment_t){ pt_t, pt_c, pt[bend].t, c1 };
		else
			seg[ns++] = (segment_t){ pt_t, pt_c, pt_t, c1 }; /* infeasible jump */
		pt_t = pt[bend].t;
		pt_c = c1;
		i = bend + 1;
	}
	free(pt);
	*seg_out = seg;
	return ns;
}

/* thoth_pm_cpu_optimum, and the work it runs at each OPP into WORK (NULL:
 * not asked); its segments into *KEEP and *NKEEP (KEEP NULL: not asked;
 * the caller frees them). */
static bool optimum(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, double *speed,
		    double *energy_mj, double *work, segment_t **keep, size_t *nkeep)
{
	hull_t h;
	build_hull(m, &h);
	segment_t *seg;
	size_t ns = taut_string(t, &seg);
	double cap_max = m->opps[m->opp_count - 1].capacity;
	double e = 0, busy_span = 0;
	bool feasible = true;
	for (size_t k = 0; k < ns; k++) {
		double dt = seg[k].t1 - seg[k].t0, dc = seg[k].c1 - seg[k].c0;
		double c = dt > 0 ? 1024.0 * dc / dt : INFINITY;
		if (c > cap_max) {
			/* not feasible at any OPP: run flat out (late), as any
			 * schedule must */
			feasible = false;
			double run = dc * 1024.0 / cap_max;
			e += run * thoth_pm_opp_power_mw(m, m->opp_count - 1);
			busy_span += run;
			if (work)
				work[m->opp_count - 1] += dc;
			continue;
		}
		e += dt * hull_power(&h, c);
		busy_span += dt;
		if (work)
			hull_work(&h, c, dt, work);
	}
	/* time outside the segments (after the last deadline) sleeps */
	if ((double)t->end_ns > busy_span)
		e += ((double)t->end_ns - busy_span) * m->sleep_mw;
	*energy_mj = e / 1e9;
	/* each job's speed: the segment where the curve starts its work */
	double cum = 0;
	size_t k = 0;
	for (size_t j = 0; j < t->count && speed; j++) {
		while (k + 1 < ns && seg[k].c1 <= cum)
			k++;
		double dt = ns ? seg[k].t1 - seg[k].t0 : 0;
		speed[j] = ns && dt > 0 ? 1024.0 * (seg[k].c1 - seg[k].c0) / dt : cap_max;
		cum += (double)t->jobs[j].work_ns;
	}
	if (keep) {
		*keep = seg;
		*nkeep = ns;
	} else {
		free(seg);
	}
	return feasible;
}

bool thoth_pm_cpu_optimum(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t,
			  double *speed, double *energy_mj)
{
	return optimum(m, t, speed, energy_mj, NULL, NULL, NULL);
}

/* ---- the governors, stepped ------------------------------------------------------------- */

/* The fastest efficient OPP at or below SPEED (the most efficient OPP if
 * that is slower): the "right speed" a governor is measured against. */
static uint32_t right_opp(const thoth_pm_cpu_model_t *m, double speed)
{
	uint32_t right = thoth_pm_opp_for_capacity(m, 0);
	for (uint32_t i = right; i < m->opp_count; i++)
		if (!thoth_pm_opp_inefficient(m, i) && m->opps[i].capacity <= speed + 1e-6)
			right = i;
	return right;
}

/* Could job J's right speed (capacity RIGHT) be known when it arrived?  The
 * optimum over the requests arrived by then (those due within the last
 * 50 ms, at most 64 before it: older ones are long served, and the window
 * bounds the cost on dense traces) gives it at least RIGHT.  With CHAIN,
 * J's own chain's later steps are added, with their exact works: its
 * sender's next requests, each sent before the previous one was due (the
 * chain predictor's rule, governor.c), which is the most a predictor of
 * that sender's chains could know; what still falls short needed another
 * sender's requests. */
static bool right_speed_knowable(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, size_t j,
				 uint32_t right, bool chain)
{
	size_t lo = j, hi = j + 1;
	uint64_t a = t->jobs[j].arrival_ns;
	while (lo > 0 && j - lo < 64 && t->jobs[lo - 1].deadline_ns + 50 * 1000000ull > a)
		lo--;
	while (hi < t->count && hi - j < 64 && t->jobs[hi].arrival_ns <= a)
		hi++;
	thoth_pm_job_t *jobs = malloc((hi - lo + 64) * sizeof(*jobs));
	double *speed = calloc(hi - lo + 64, sizeof(*speed)), e;
	bool known = false;
	if (!jobs || !speed)
		goto out;
	size_t n = hi - lo;
	memcpy(jobs, t->jobs + lo, n * sizeof(*jobs));
	uint32_t client = t->jobs[j].client;
	uint64_t due = t->jobs[j].deadline_ns;
	for (size_t k = hi; chain && client && k < t->count && k - hi < 64; k++) {
		if (t->jobs[k].arrival_ns > due)
			break;
		if (t->jobs[k].client != client)
			continue;
		jobs[n++] = t->jobs[k];
		due = t->jobs[k].deadline_ns;
	}
	thoth_pm_trace_t prefix = *t;
	prefix.jobs = jobs;
	prefix.count = n;
	thoth_pm_cpu_optimum(m, &prefix, speed, &e);
	known = m->opps[right_opp(m, speed[j - lo])].capacity >= right;
out:
	free(jobs);
	free(speed);
	return known;
}

/* ---- the gap by decision (sim.h) ------------------------------------------------------ */

static const char *const gap_names[] = {
	"nothing queued", "plan", "predicted steps", "faster-first", "overlap reserve", "lowered",
	"hold", "hold, 2 senders", "catch-up", "catch-up, 2 senders", "switch up (old slower)",
	"switch down (old faster)",
};
/* A kind added to thoth_pm_gap_kind_t (or thoth_pm_gov_why_t) needs its name here. */
_Static_assert(sizeof(gap_names) / sizeof(gap_names[0]) == THOTH_PM_GAP_KINDS,
	       "gap_names names every thoth_pm_gap_kind_t");

const char *thoth_pm_gap_kind_name(int kind)
{
	return kind >= 0 && kind < THOTH_PM_GAP_KINDS ? gap_names[kind] : "?";
}

/* The optimum's active energy per unit of work (mW ns per capacity-ns)
 * and its speed over the segment S (flat out at the top where no OPP
 * meets it, as optimum() runs it). */
static double segment_per_work(const thoth_pm_cpu_model_t *m, const hull_t *h, const segment_t *s,
			       double *speed)
{
	double dt = s->t1 - s->t0, dc = s->c1 - s->c0;
	double top = m->opps[m->opp_count - 1].capacity;
	*speed = dt > 0 ? 1024.0 * dc / dt : INFINITY;
	if (*speed > top)
		return ((double)thoth_pm_opp_power_mw(m, m->opp_count - 1) - m->sleep_mw) * 1024.0 / top;
	return (hull_power(h, *speed) - m->sleep_mw) * dt / dc;
}

/* The lowest efficient OPP whose constant speed from NOW carries the queued
 * jobs [HEAD, NEXT)'s exact remaining work by their deadlines (the top if
 * none does). */
static uint32_t exact_need(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t,
			   const thoth_pm_pending_t *pending, size_t head, size_t next, uint64_t now)
{
	for (uint32_t o = thoth_pm_opp_for_capacity(m, 0); o < m->opp_count; o++) {
		if (thoth_pm_opp_inefficient(m, o))
			continue;
		double cum = 0;
		bool ok = true;
		for (size_t j = head; j < next && ok; j++) {
			cum += (double)t->jobs[j].work_ns - pending[j].done_work;
			ok = cum * 1024.0 / m->opps[o].capacity <= (double)t->jobs[j].deadline_ns - (double)now;
		}
		if (ok)
			return o;
	}
	return m->opp_count - 1;
}

/* Is a request of another sender than J's queued in [HEAD, NEXT)? */
static bool other_sender(const thoth_pm_trace_t *t, size_t head, size_t next, size_t j)
{
	for (size_t k = head; k < next; k++)
		if (t->jobs[k].client != t->jobs[j].client)
			return true;
	return false;
}

typedef struct gap_book {
	const segment_t *seg;
	size_t ns, k;
	double at; /* the governor's cumulative work so far */
	hull_t hull;
} gap_book_t;

/* Book the work W (capacity-ns) the governor ran in one step at capacity
 * CAP (OPP OPP), under KIND, against the optimum's cost of the same work. */
static void gap_book(const thoth_pm_cpu_model_t *m, gap_book_t *b, thoth_pm_cpu_result_t *out,
		     int kind, bool catch_up, bool overlap, uint32_t opp, double w)
{
	double cap = m->opps[opp].capacity;
	double own = ((double)thoth_pm_opp_power_mw(m, opp) - m->sleep_mw) * 1024.0 / cap;
	double end = b->at + w;
	while (b->at < end && b->k < b->ns) {
		const segment_t *s = &b->seg[b->k];
		if (s->c1 <= b->at) {
			b->k++;
			continue;
		}
		double upto = end < s->c1 ? end : s->c1, speed;
		double theirs = segment_per_work(m, &b->hull, s, &speed);
		/* Below the hull's first OPP the optimum time-shares it with
		 * idle: it runs that OPP, so a step there is not faster. */
		if (b->hull.n > 1 && speed < b->hull.cap[1])
			speed = b->hull.cap[1];
		int side = cap > speed * (1 + 1e-9) ? 0 : 1, k = kind;
		if (side == 0 && catch_up)
			k = THOTH_PM_GAP_CATCH_UP;
		if (overlap && k == THOTH_PM_WHY_HOLD)
			k = THOTH_PM_GAP_HOLD_OVERLAP;
		else if (overlap && k == THOTH_PM_GAP_CATCH_UP)
			k = THOTH_PM_GAP_CATCH_UP_OVERLAP;
		out->gap_mj[k][side] += (upto - b->at) * (own - theirs) / 1e9;
		out->gap_work_ns[k][side] += upto - b->at;
		b->at = upto;
	}
	b->at = end;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int thoth_pm_sim_cpu(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, int kind,
		     thoth_pm_cpu_result_t *out)
{
	return thoth_pm_sim_cpu_options(m, t, kind, THOTH_PM_GOV_DEFAULT_OPTIONS, out);
}

int thoth_pm_sim_cpu_options(const thoth_pm_cpu_model_t *m, const thoth_pm_trace_t *t, int kind,
			     unsigned options, thoth_pm_cpu_result_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!m || !t || kind < 0 || kind > THOTH_PM_CPU_OPTIMUM)
		return THOTH_E_INVAL;
	out->jobs = t->count;
	double *speed = calloc(t->count + 1, sizeof(*speed));
	uint64_t *ramp = calloc(t->count + 1, sizeof(*ramp));
	thoth_pm_pending_t *pending = calloc(t->count + 1, sizeof(*pending));
	if (!speed || !ramp || !pending) {
		free(speed);
		free(ramp);
		free(pending);
		return THOTH_E_NOMEM;
	}
	double opt_mj;
	bool gap = kind == THOTH_PM_GOV_THOTH && (options & THOTH_PM_SIM_BOOK_GAP);
	gap_book_t book = { 0 };
	segment_t *seg = NULL;
	out->optimum_exact = optimum(m, t, speed, &opt_mj,
				     kind == THOTH_PM_CPU_OPTIMUM ? out->opp_work_ns : NULL,
				     gap ? &seg : NULL, &book.ns);
	book.seg = seg;
	build_hull(m, &book.hull);
	if (kind == THOTH_PM_CPU_OPTIMUM) {
		out->energy_mj = opt_mj;
		free(seg);
		free(speed);
		free(ramp);
		free(pending);
		return 0;
	}
	/* The "right speed" of each job: where the optimum's time-sharing
	 * starts, the fastest efficient OPP at or below its speed (the most
	 * efficient OPP if that is slower). */
	for (size_t j = 0; j < t->count; j++)
		speed[j] = m->opps[right_opp(m, speed[j])].capacity;

	thoth_pm_governor_t g;
	thoth_pm_governor_init(&g, (thoth_pm_governor_kind_t)kind, m, 0);
	thoth_pm_governor_set_options(&g, options);
	uint32_t cur = g.opp, switching_to = g.opp;
	uint64_t switch_done = 0, last_running = 0;
	size_t next = 0, head = 0; /* jobs [head, next) are queued */
	bool *reached = calloc(t->count + 1, sizeof(*reached));
	if (!reached) {
		free(seg);
		free(speed);
		free(ramp);
		free(pending);
		return THOTH_E_NOMEM;
	}
	double energy = 0; /* mW * ns */
	const uint64_t dt = THOTH_PM_SIM_STEP_NS;
	for (uint64_t now = 0; now < t->end_ns || head < t->count; now += dt) {
		while (next < t->count && t->jobs[next].arrival_ns <= now) {
			pending[next] = (thoth_pm_pending_t){ t->jobs[next].deadline_ns, 0 };
			thoth_pm_governor_arrived(&g, t->jobs[next].arrival_ns, t->jobs[next].client,
						  t->jobs[next].deadline_ns);
			next++;
		}
		uint32_t want = thoth_pm_governor_update(&g, now, last_running, pending + head,
							 next - head);
		if (switch_done <= now && cur != switching_to) {
			cur = switching_to;
			out->switches++;
		}
		if (want != switching_to) {
			switching_to = want;
			switch_done = now + m->switch_latency_ns;
		}
		if (switch_done <= now && cur != switching_to) {
			cur = switching_to;
			out->switches++;
		}
		uint32_t cap = m->opps[cur].capacity;
		/* What set this step's OPP (sim.h, the gap by decision). */
		int why = cur != switching_to ?
				  (m->opps[switching_to].capacity > cap ? THOTH_PM_GAP_SWITCH_UP :
									  THOTH_PM_GAP_SWITCH_DOWN) :
				  (int)g.why;
		for (size_t j = head; gap && j < next; j++)
			if (!reached[j] && cap < speed[j] &&
			    now - t->jobs[j].arrival_ns >= THOTH_PM_RAMP_TARGET_NS &&
			    now - t->jobs[j].arrival_ns < THOTH_PM_RAMP_TARGET_NS + dt) {
				out->late_by[why]++;
				out->late_by_overlap[why] += other_sender(t, head, next, j);
			}
		bool catch_up = false, overlap = false;
		if (gap && head < next && why < THOTH_PM_GAP_SWITCH_UP) {
			catch_up = exact_need(m, t, pending, head, next, now) >= cur;
			overlap = other_sender(t, head, next, head);
		}
		for (size_t j = head; j < next; j++)
			if (!reached[j] && cap >= speed[j]) {
				reached[j] = true;
				ramp[j] = now - t->jobs[j].arrival_ns;
			}
		double budget = (double)dt;
		while (budget > 0 && head < next) {
			double rate = cap / 1024.0;
			double left = (double)t->jobs[head].work_ns - pending[head].done_work;
			double need = left / rate;
			if (need <= budget) {
				budget -= need;
				uint64_t done_at = now + dt - (uint64_t)budget;
				if (done_at > t->jobs[head].deadline_ns)
					out->deadline_misses++;
				if (!reached[head]) {
					reached[head] = true;
					ramp[head] = done_at - t->jobs[head].arrival_ns;
				}
				thoth_pm_governor_completed(&g, (double)t->jobs[head].work_ns);
				head++;
			} else {
				pending[head].done_work += budget * rate;
				budget = 0;
			}
		}
		if (gap && budget < (double)dt)
			gap_book(m, &book, out, why, catch_up, overlap, cur,
				 ((double)dt - budget) * cap / 1024.0);
		uint64_t busy = dt - (uint64_t)budget;
		energy += (double)thoth_pm_opp_power_mw(m, cur) * (double)busy +
			  (double)m->sleep_mw * budget;
		out->busy_ns += busy;
		out->opp_work_ns[cur] += ((double)dt - budget) * cap / 1024.0;
		if (thoth_pm_opp_inefficient(m, cur))
			out->inefficient_busy_ns += busy;
		last_running = busy;
	}
	out->energy_mj = energy / 1e9;
	if (gap) {
		out->gap_rest_mj = out->energy_mj - opt_mj;
		for (int k = 0; k < THOTH_PM_GAP_KINDS; k++)
			out->gap_rest_mj -= out->gap_mj[k][0] + out->gap_mj[k][1];
	}
	for (size_t j = 0; j < t->count; j++)
		if (ramp[j] > THOTH_PM_RAMP_TARGET_NS) {
			out->ramp_late++;
			if (right_speed_knowable(m, t, j, (uint32_t)speed[j], false))
				out->ramp_late_knowable++;
			else if (right_speed_knowable(m, t, j, (uint32_t)speed[j], true))
				out->ramp_late_chain++;
		}
	if (t->count) {
		qsort(ramp, t->count, sizeof(*ramp), cmp_u64);
		out->ramp_p50_ns = ramp[t->count / 2];
		out->ramp_p95_ns = ramp[(t->count * 95) / 100 < t->count ? (t->count * 95) / 100 : t->count - 1];
		out->ramp_max_ns = ramp[t->count - 1];
	}
	free(reached);
	free(seg);
	free(speed);
	free(ramp);
	free(pending);
	return 0;
}
