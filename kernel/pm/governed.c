/*
 * governed.c - a channel server's dispatch drives its domain's frequency
 * (governed.h).
 */
#include <stdlib.h>
#include <string.h>

#include "governed.h"
#include "pm_clock.h"
#include "power_account.h"
#include "thoth/caller.h"
#include "thoth/error.h"
#include "thoth/trace.h"

struct thoth_pm_governed {
	thoth_loop_t *loop;
	thoth_pm_dvfs_t *dvfs;
	uint64_t qos_ns;
	thoth_invoke_fn inner;
	const void *inner_handlers;
	void *inner_self;
	thoth_timer_t *timer;      /* armed only while above the floor */
	uint64_t cpu_seen_ns;      /* thread CPU time at the last decision */
	uint32_t opp;
	uint32_t model_id;         /* the domain model's trace_id (energy.h; 0: not a published table) */
	thoth_pm_governed_stats_t stats;
	thoth_pm_governed_change_fn on_change;
	void *change_arg;
	thoth_pm_governed_sent_fn sent_fn;
	void *sent_arg;
};

static void on_check(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

/* Why the governor was asked (pm_freq_change's reason, docs/OBSERVABILITY.md).
 * Both PM points name the domain's model and the OPP (power_account.h), so
 * a reader can price OPP time with the published table (thothd's dashboard). */
enum { FREQ_AT_ARRIVAL = 1, FREQ_AT_COMPLETION = 2, FREQ_BY_TIMER = 3 };

/* Ask the governor at NOW; write what it chose; keep the lowering timer
 * armed exactly while the domain is above its floor. */
static void decide(thoth_pm_governed_t *g, uint64_t now, uint64_t dispatch_ns, unsigned why)
{
	uint64_t cpu = thoth_pm_clock_thread_cpu_ns();
	uint64_t ran = cpu > g->cpu_seen_ns ? cpu - g->cpu_seen_ns : 0;
	g->cpu_seen_ns = cpu;
	uint32_t opp = g->opp;
	if (thoth_pm_dvfs_update(g->dvfs, now, ran, &opp))
		g->stats.write_errors++;
	if (opp != g->opp) {
		g->stats.changes++;
		g->stats.last_change_ns = now;
		if (opp > g->opp) {
			g->stats.last_raise_ns = now;
			g->stats.last_raise_dispatch_ns = dispatch_ns;
			g->stats.last_raise_opp = opp;
		}
		g->opp = opp;
		THOTH_TRACE(PM, pm_freq_change, thoth_pm_dvfs_current_khz(g->dvfs),
			    (uint64_t)why << 32 | thoth_pm_trace_model_opp(g->model_id, opp));
		if (g->on_change)
			g->on_change(g->change_arg, now, opp);
	}
	if (g->opp > g->stats.floor_opp && !g->timer) {
		/* the governor lowers only after lower targets held for the
		 * hold time: look again just after it (slack: a quarter) */
		uint64_t hold = THOTH_PM_THOTH_DOWN_HOLD_NS;
		if (thoth_loop_add_timer_in(g->loop, hold + hold / 8, hold / 4, on_check, g, &g->timer))
			g->timer = NULL;
	} else if (g->opp <= g->stats.floor_opp && g->timer) {
		thoth_timer_cancel(g->loop, g->timer);
		g->timer = NULL;
	}
}

static void on_check(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_pm_governed_t *g = arg;
	thoth_timer_cancel(loop, timer); /* one-shot: decide() arms the next if needed */
	g->timer = NULL;
	g->stats.timer_checks++;
	/* No dispatch for a hold time: requests seen waiting went away with
	 * their channels; they must not hold the frequency up. */
	thoth_pm_dvfs_forget_waiting(g->dvfs);
	decide(g, thoth_pm_clock_monotonic_ns(), 0, FREQ_BY_TIMER);
}

static int governed_invoke(const void *handlers, void *self, const thoth_method_info_t *m,
			   const void *req, void *resp, thoth_arena_t *arena)
{
	thoth_pm_governed_t *g = self;
	(void)handlers;
	uint64_t now = thoth_pm_clock_monotonic_ns();
	g->stats.requests++;
	/* Who sent it (the chain predictor keys on the channel) and what
	 * waits behind it (faster-first sees a queue): the channel server
	 * says, when it is the dispatcher. */
	thoth_chan_caller_t who;
	uint32_t client = 0, waiting = 0;
	if (!thoth_chan_server_caller(&who)) {
		client = (uint32_t)who.channel ? (uint32_t)who.channel : 1;
		waiting = who.waiting;
		g->stats.identified++;
	}
	/* Due QOS after its send where the request says when that was (a
	 * request that waited in the ring has that much less time left),
	 * else after now. */
	uint64_t sent = 0;
	bool stamped = g->sent_fn && g->sent_fn(g->sent_arg, m, req, &sent) == 0, clamped = false;
	/* else the channel's own stamp (thoth_chan_server_sent: the wrap
	 * asked every client for one) */
	if (!stamped && thoth_chan_server_sent(now, &sent) == 0) {
		stamped = true;
		g->stats.chan_stamped++;
	}
	uint64_t deadline = thoth_pm_governed_deadline(now, g->qos_ns, stamped, sent, &clamped);
	g->stats.stamped += stamped;
	g->stats.stamps_clamped += clamped;
	if (thoth_pm_dvfs_dispatched(g->dvfs, now, client, deadline, waiting) == 0)
		decide(g, now, now, FREQ_AT_ARRIVAL);
	uint32_t opp_run = g->opp;      /* the handler runs at what arrival chose */
	uint64_t cpu0 = thoth_pm_clock_thread_cpu_ns();
	int r = g->inner(g->inner_handlers, g->inner_self, m, req, resp, arena);
	uint64_t cpu1 = thoth_pm_clock_thread_cpu_ns();
	/* One record per request while category PM is on (thothd's dashboard
	 * prices it: power_account.h); a load and a branch while it is off. */
	THOTH_TRACE(PM, pm_work, cpu1 - cpu0, thoth_pm_trace_model_opp(g->model_id, opp_run));
	thoth_pm_dvfs_completed(g->dvfs, cpu1 - cpu0);
	decide(g, thoth_pm_clock_monotonic_ns(), 0, FREQ_AT_COMPLETION);
	return r;
}

int thoth_pm_governed_new(thoth_loop_t *loop, thoth_pm_dvfs_t *dvfs, uint64_t qos_ns,
			  thoth_pm_governed_t **out)
{
	if (!loop || !dvfs || !qos_ns || !out)
		return THOTH_E_INVAL;
	thoth_pm_governed_t *g = calloc(1, sizeof *g);
	if (!g)
		return THOTH_E_NOMEM;
	g->loop = loop;
	g->dvfs = dvfs;
	g->qos_ns = qos_ns;
	g->model_id = thoth_pm_dvfs_model(dvfs)->trace_id;
	g->cpu_seen_ns = thoth_pm_clock_thread_cpu_ns();
	/* This thread serves the requests: with the uclamp backend its clamps
	 * carry the governor's choice (dvfs.h). */
	int r = thoth_pm_dvfs_add_thread(dvfs, 0);
	if (r && r != THOTH_E_LIMIT) {
		free(g);
		return r;
	}
	/* where the governor starts and an idle domain rests */
	uint32_t opp = 0;
	thoth_pm_dvfs_update(dvfs, thoth_pm_clock_monotonic_ns(), 0, &opp);
	g->opp = g->stats.floor_opp = opp;
	*out = g;
	return 0;
}

void thoth_pm_governed_wrap(thoth_pm_governed_t *g, thoth_chan_server_config_t *cfg)
{
	g->inner = cfg->invoke;
	g->inner_handlers = cfg->handlers;
	g->inner_self = cfg->self;
	cfg->invoke = governed_invoke;
	cfg->handlers = g; /* not read by the shim; never NULL for the server */
	cfg->self = g;
	/* every client stamps its requests with their send time: each is
	 * due QOS after it (a service may clear it again after the wrap) */
	cfg->send_stamps = true;
}

void thoth_pm_governed_set_options(thoth_pm_governed_t *g, unsigned options)
{
	thoth_pm_dvfs_set_options(g->dvfs, options);
}

uint64_t thoth_pm_governed_deadline(uint64_t now_ns, uint64_t qos_ns, bool stamped, uint64_t sent_ns,
				    bool *clamped)
{
	bool out = false;
	if (stamped) {
		uint64_t oldest = now_ns > qos_ns ? now_ns - qos_ns : 0;
		if (sent_ns > now_ns) {
			sent_ns = now_ns;
			out = true;
		} else if (sent_ns < oldest) {
			sent_ns = oldest;
			out = true;
		}
	} else {
		sent_ns = now_ns;
	}
	if (clamped)
		*clamped = out;
	return sent_ns + qos_ns;
}

void thoth_pm_governed_on_sent(thoth_pm_governed_t *g, thoth_pm_governed_sent_fn fn, void *arg)
{
	g->sent_fn = fn;
	g->sent_arg = arg;
}

void thoth_pm_governed_on_change(thoth_pm_governed_t *g, thoth_pm_governed_change_fn fn, void *arg)
{
	g->on_change = fn;
	g->change_arg = arg;
}

void thoth_pm_governed_free(thoth_pm_governed_t *g)
{
	if (!g)
		return;
	if (g->timer)
		thoth_timer_cancel(g->loop, g->timer);
	free(g);
}

void thoth_pm_governed_stats(const thoth_pm_governed_t *g, thoth_pm_governed_stats_t *out)
{
	*out = g->stats;
	out->opp = g->opp;
	out->khz = thoth_pm_dvfs_current_khz(g->dvfs);
}
