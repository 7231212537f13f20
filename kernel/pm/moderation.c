/*
 * moderation.c - the moderation policies of moderation.h.  The DIM port
 * keeps Linux's names and structure (lib/dim/net_dim.c, lib/dim/dim.c,
 * include/linux/dim.h) so the two can be read side by side; the only
 * change is that a new profile applies at once (the kernel applies it from
 * a work item before the next measurement starts: the same thing).
 */
#include <string.h>

#include "moderation.h"
#include "thoth/error.h"

/* ---- common ------------------------------------------------------------- */

static const thoth_mod_profile_t NONE_PROFILE = { 1, 0 };

thoth_mod_profile_t thoth_mod_clamp(thoth_mod_profile_t p)
{
	if (p.max_msgs > THOTH_MOD_MAX_MSGS)
		p.max_msgs = THOTH_MOD_MAX_MSGS;
	if (p.max_us > THOTH_MOD_MAX_US)
		p.max_us = THOTH_MOD_MAX_US;
	return p;
}

const char *thoth_mod_kind_name(thoth_mod_kind_t k)
{
	switch (k) {
	case THOTH_MOD_NONE: return "none";
	case THOTH_MOD_FIXED: return "fixed";
	case THOTH_MOD_DIM: return "dim";
	case THOTH_MOD_ADAPTIVE: return "adaptive";
	}
	return "?";
}

int thoth_mod_kind_parse(const char *s, thoth_mod_kind_t *out)
{
	for (int k = THOTH_MOD_NONE; k <= THOTH_MOD_ADAPTIVE; k++)
		if (s && !strcmp(s, thoth_mod_kind_name((thoth_mod_kind_t)k))) {
			*out = (thoth_mod_kind_t)k;
			return 0;
		}
	return THOTH_E_INVAL;
}

/* ---- DIM (Linux lib/dim) ------------------------------------------------ */

enum { DIM_NEVENTS = 64, NET_DIM_PARAMS_NUM_PROFILES = 5, NET_DIM_DEF_PROFILE_EQE = 1,
       NET_DIM_DEFAULT_RX_CQ_PKTS_FROM_EQE = 256 };
enum { DIM_START_MEASURE, DIM_MEASURE_IN_PROGRESS };
enum { DIM_PARKING_ON_TOP, DIM_PARKING_TIRED, DIM_GOING_RIGHT, DIM_GOING_LEFT };
enum { DIM_STATS_WORSE, DIM_STATS_SAME, DIM_STATS_BETTER };
enum { DIM_STEPPED, DIM_TOO_TIRED, DIM_ON_EDGE };

static const uint32_t rx_eqe_usec[NET_DIM_PARAMS_NUM_PROFILES] = { 1, 8, 64, 128, 256 };

thoth_mod_profile_t thoth_mod_dim_profile(unsigned ix)
{
	if (ix >= NET_DIM_PARAMS_NUM_PROFILES)
		ix = NET_DIM_PARAMS_NUM_PROFILES - 1;
	return (thoth_mod_profile_t){ NET_DIM_DEFAULT_RX_CQ_PKTS_FROM_EQE, rx_eqe_usec[ix] };
}

/* IS_SIGNIFICANT_DIFF: more than 10% away from a non-zero reference. */
static bool significant(uint32_t val, uint32_t ref)
{
	if (!ref)
		return false;
	uint64_t diff = val > ref ? val - ref : ref - val;
	return 100u * diff / ref > 10;
}

static bool dim_on_top(const thoth_mod_dim_t *d)
{
	switch (d->tune_state) {
	case DIM_PARKING_ON_TOP:
	case DIM_PARKING_TIRED:
		return true;
	case DIM_GOING_RIGHT:
		return d->steps_left > 1 && d->steps_right == 1;
	default:
		return d->steps_right > 1 && d->steps_left == 1;
	}
}

static void dim_turn(thoth_mod_dim_t *d)
{
	if (d->tune_state == DIM_GOING_RIGHT) {
		d->tune_state = DIM_GOING_LEFT;
		d->steps_left = 0;
	} else if (d->tune_state == DIM_GOING_LEFT) {
		d->tune_state = DIM_GOING_RIGHT;
		d->steps_right = 0;
	}
}

static void dim_park_on_top(thoth_mod_dim_t *d)
{
	d->steps_right = d->steps_left = d->tired = 0;
	d->tune_state = DIM_PARKING_ON_TOP;
}

static void dim_park_tired(thoth_mod_dim_t *d)
{
	d->steps_right = d->steps_left = 0;
	d->tune_state = DIM_PARKING_TIRED;
}

static int net_dim_step(thoth_mod_dim_t *d)
{
	if (d->tired == NET_DIM_PARAMS_NUM_PROFILES * 2)
		return DIM_TOO_TIRED;
	switch (d->tune_state) {
	case DIM_PARKING_ON_TOP:
	case DIM_PARKING_TIRED:
		break;
	case DIM_GOING_RIGHT:
		if (d->profile_ix == NET_DIM_PARAMS_NUM_PROFILES - 1)
			return DIM_ON_EDGE;
		d->profile_ix++;
		d->steps_right++;
		break;
	case DIM_GOING_LEFT:
		if (d->profile_ix == 0)
			return DIM_ON_EDGE;
		d->profile_ix--;
		d->steps_left++;
		break;
	}
	d->tired++;
	return DIM_STEPPED;
}

static void net_dim_exit_parking(thoth_mod_dim_t *d)
{
	d->tune_state = d->profile_ix ? DIM_GOING_LEFT : DIM_GOING_RIGHT;
	net_dim_step(d);
}

typedef thoth_mod_dim_stats_t dim_stats_t;

static int net_dim_stats_compare(const dim_stats_t *curr, const dim_stats_t *prev)
{
	if (!prev->bpms)
		return curr->bpms ? DIM_STATS_BETTER : DIM_STATS_SAME;
	if (significant(curr->bpms, prev->bpms))
		return curr->bpms > prev->bpms ? DIM_STATS_BETTER : DIM_STATS_WORSE;
	if (!prev->ppms)
		return curr->ppms ? DIM_STATS_BETTER : DIM_STATS_SAME;
	if (significant(curr->ppms, prev->ppms))
		return curr->ppms > prev->ppms ? DIM_STATS_BETTER : DIM_STATS_WORSE;
	if (!prev->epms)
		return DIM_STATS_SAME;
	if (significant(curr->epms, prev->epms))
		return curr->epms < prev->epms ? DIM_STATS_BETTER : DIM_STATS_WORSE;
	return DIM_STATS_SAME;
}

static bool net_dim_decision(const dim_stats_t *curr, thoth_mod_dim_t *d)
{
	int prev_state = d->tune_state, prev_ix = d->profile_ix;
	switch (d->tune_state) {
	case DIM_PARKING_ON_TOP:
		if (net_dim_stats_compare(curr, &d->prev) != DIM_STATS_SAME)
			net_dim_exit_parking(d);
		break;
	case DIM_PARKING_TIRED:
		d->tired--;
		if (!d->tired)
			net_dim_exit_parking(d);
		break;
	case DIM_GOING_RIGHT:
	case DIM_GOING_LEFT:
		if (net_dim_stats_compare(curr, &d->prev) != DIM_STATS_BETTER)
			dim_turn(d);
		if (dim_on_top(d)) {
			dim_park_on_top(d);
			break;
		}
		switch (net_dim_step(d)) {
		case DIM_ON_EDGE:
			dim_park_on_top(d);
			break;
		case DIM_TOO_TIRED:
			dim_park_tired(d);
			break;
		}
		break;
	}
	if (prev_state != DIM_PARKING_ON_TOP || d->tune_state != DIM_PARKING_ON_TOP)
		d->prev = *curr;
	return d->profile_ix != prev_ix;
}

static uint32_t div_round_up(uint64_t n, uint64_t d) { return (uint32_t)((n + d - 1) / d); }

static bool dim_calc_stats(const thoth_mod_dim_t *d, const thoth_mod_sample_t *end, dim_stats_t *st)
{
	/* Linux keeps 32-bit counters and takes their gap modulo 2^32. */
	uint64_t delta_us = (end->time_ns - d->start.time_ns) / 1000u;
	uint32_t npkts = (uint32_t)end->msgs - d->start.pkt_ctr;
	uint32_t nbytes = (uint32_t)end->bytes - d->start.byte_ctr;
	if (!delta_us || delta_us > UINT32_MAX)
		return false;
	st->ppms = div_round_up((uint64_t)npkts * 1000u, delta_us);
	st->bpms = div_round_up((uint64_t)nbytes * 1000u, delta_us);
	st->epms = div_round_up((uint64_t)DIM_NEVENTS * 1000u, delta_us);
	return true;
}

static void dim_update_sample(thoth_mod_dim_t *d, const thoth_mod_sample_t *s)
{
	d->start.time_ns = s->time_ns;
	d->start.event_ctr = (uint16_t)s->events;
	d->start.pkt_ctr = (uint32_t)s->msgs;
	d->start.byte_ctr = (uint32_t)s->bytes;
}

/* net_dim(): one event. */
static bool dim_event(thoth_mod_t *m, const thoth_mod_sample_t *s)
{
	thoth_mod_dim_t *d = &m->dim;
	if (d->state == DIM_MEASURE_IN_PROGRESS) {
		uint16_t nevents = (uint16_t)((uint16_t)s->events - d->start.event_ctr);
		if (nevents < DIM_NEVENTS)
			return false;
		dim_stats_t curr;
		/* A clock that did not move (or went back): Linux skips the
		 * decision and starts a new sample, as here. */
		if (s->time_ns > d->start.time_ns && dim_calc_stats(d, s, &curr) && net_dim_decision(&curr, d)) {
			/* DIM_APPLY_NEW_PROFILE; the driver's work applies it and
			 * sets DIM_START_MEASURE before the next event. */
			m->cur = thoth_mod_dim_profile(d->profile_ix);
			d->state = DIM_START_MEASURE;
			return true;
		}
	}
	dim_update_sample(d, s);
	d->state = DIM_MEASURE_IN_PROGRESS;
	return false;
}

/* ---- adaptive (ours) ---------------------------------------------------- */

enum {
	AD_WINDOW_NS = 1000000,      /* a rate is measured over at least 1 ms ... */
	AD_WINDOW_EVENTS = 64,       /* ... or 64 events, whichever ends first */
	AD_MIN_RATE = 20000,         /* msg/s: below, no moderation */
	AD_BATCH = 256,              /* messages a wake-up may carry (DIM's top profile) ... */
	AD_MAX_US = 256,             /* ... within this latency budget by default (DIM's top) */
	AD_MIN_US = 10,
};

/* BUDGET: the most a message may wait (us). */
static thoth_mod_profile_t adaptive_for(uint64_t rate, uint32_t budget)
{
	if (rate < AD_MIN_RATE)
		return NONE_PROFILE;
	uint64_t us = (uint64_t)AD_BATCH * 1000000u / rate;
	if (us < AD_MIN_US)
		us = AD_MIN_US;
	if (us > budget)
		us = budget;
	return (thoth_mod_profile_t){ AD_BATCH, (uint32_t)us };
}

static bool adaptive_event(thoth_mod_t *m, const thoth_mod_sample_t *s)
{
	if (!m->win_started || s->time_ns < m->win.time_ns || s->msgs < m->win.msgs || s->events < m->win.events) {
		m->win = *s;
		m->win_started = true;
		return false;
	}
	uint64_t dt = s->time_ns - m->win.time_ns;
	if (dt < AD_WINDOW_NS && s->events - m->win.events < AD_WINDOW_EVENTS)
		return false;
	if (!dt)
		return false;
	uint64_t msgs = s->msgs - m->win.msgs;
	m->rate = msgs > UINT64_MAX / 1000000000u ? UINT64_MAX : msgs * 1000000000u / dt;
	m->win = *s;
	thoth_mod_profile_t want = adaptive_for(m->rate, m->cfg.fixed.max_us ? m->cfg.fixed.max_us : AD_MAX_US);
	bool was = thoth_mod_profile_defers(m->cur), will = thoth_mod_profile_defers(want);
	if (was == will && (!will || !significant(want.max_us, m->cur.max_us)))
		return false;            /* within 10%: keep it (DIM's threshold) */
	m->cur = want;
	return true;
}

/* ---- entry points ------------------------------------------------------- */

int thoth_mod_init(thoth_mod_t *m, const thoth_mod_config_t *cfg)
{
	memset(m, 0, sizeof *m);
	if (!cfg) {
		m->cfg.kind = THOTH_MOD_NONE;
		m->cur = NONE_PROFILE;
		return 0;
	}
	m->cfg = *cfg;
	switch (cfg->kind) {
	case THOTH_MOD_NONE:
		m->cur = NONE_PROFILE;
		return 0;
	case THOTH_MOD_ADAPTIVE:
		if (cfg->fixed.max_us > THOTH_MOD_MAX_US || (cfg->fixed.max_us && cfg->fixed.max_us < AD_MIN_US))
			return THOTH_E_INVAL;
		m->cur = NONE_PROFILE;
		return 0;
	case THOTH_MOD_FIXED:
		if (cfg->fixed.max_msgs > THOTH_MOD_MAX_MSGS || cfg->fixed.max_us > THOTH_MOD_MAX_US)
			return THOTH_E_INVAL;
		m->cur = cfg->fixed;
		return 0;
	case THOTH_MOD_DIM:
		m->dim.profile_ix = NET_DIM_DEF_PROFILE_EQE;
		m->dim.tune_state = DIM_PARKING_ON_TOP;
		m->cur = thoth_mod_dim_profile(m->dim.profile_ix);
		return 0;
	}
	return THOTH_E_INVAL;
}

bool thoth_mod_update(thoth_mod_t *m, const thoth_mod_sample_t *s)
{
	bool changed = false;
	switch (m->cfg.kind) {
	case THOTH_MOD_DIM:
		changed = dim_event(m, s);
		break;
	case THOTH_MOD_ADAPTIVE:
		changed = adaptive_event(m, s);
		break;
	default:
		break;
	}
	m->changes += changed;
	return changed;
}
