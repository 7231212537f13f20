/*
 * broker_ops.c - see broker_ops.h.  The model beside the broker is small on
 * purpose: it records what the broker asked for (transitions) and told
 * (request ready/failed, lease status) and checks each against the rules,
 * so a bug shows as a broken rule, not as a mismatch with a second broker.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "broker_ops.h"
#include "thoth/error.h"

#define MAX_PENDING 256
#define MAX_REQS 4096
#define MAX_LEASES 1024
#define N_HOLDERS 8
#define N_DRIVERS 4
#define N_GROUPS 3              /* holder H is in group 1 + H % N_GROUPS */
#define LIM_LEASES 64           /* small enough for the shares to be reached */
#define LIM_GROUP 48
#define LIM_REQS 64             /* requests: the same shares, reached as often */
#define LIM_GROUP_REQS 48

enum req_state { REQ_QUEUED, REQ_READY, REQ_DONE, REQ_FAILED, REQ_WITHDRAWN };

typedef struct model {
	thoth_pm_broker_t *b;
	const uint8_t *data;
	size_t len, off;
	uint64_t now;
	struct { uint32_t element, to; } pending[MAX_PENDING];
	uint32_t n_pending;
	struct { uint64_t id, holder; enum req_state state; } reqs[MAX_REQS];
	uint32_t n_reqs;
	struct { uint64_t id, holder; } leases[MAX_LEASES];
	uint32_t n_leases;
	uint32_t held[N_HOLDERS + 1];   /* leases per holder, as the model counts them */
	uint32_t in_group[N_GROUPS + 1];
	uint32_t next_name;
	uint64_t idle_calls;
	pm_ops_stats_t st;
	char *why;
	size_t cap;
	bool failed;
} model_t;

static void fail(model_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(model_t *m, const char *fmt, ...)
{
	if (m->failed)
		return;
	m->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, m->cap, fmt, ap);
	va_end(ap);
}

static uint64_t group_of(uint64_t holder)
{
	return 1 + holder % N_GROUPS;
}

/* The model's counts follow its lease list: one lease of HOLDER more or less. */
static void count(model_t *m, uint64_t holder, int delta)
{
	m->held[holder] += (uint32_t)delta;
	m->in_group[group_of(holder)] += (uint32_t)delta;
}

/* The model's lease I is gone. */
static void forget_lease(model_t *m, uint32_t i)
{
	count(m, m->leases[i].holder, -1);
	m->leases[i] = m->leases[--m->n_leases];
}

static uint8_t take(model_t *m)
{
	return m->off < m->len ? m->data[m->off++] : 0;
}

/* A request being submitted has id UINT64_MAX until the call returns: the
 * broker may answer it inside the call (its element is up already). */
static int find_req(model_t *m, uint64_t id)
{
	for (uint32_t i = 0; i < m->n_reqs; i++)
		if (m->reqs[i].id == id)
			return (int)i;
	if (m->n_reqs && m->reqs[m->n_reqs - 1].id == UINT64_MAX) {
		m->reqs[m->n_reqs - 1].id = id;
		return (int)m->n_reqs - 1;
	}
	return -1;
}

/* ---- broker callbacks: what it asks and tells, checked ------------------------------ */

static void on_transition(void *arg, uint64_t driver, uint32_t element, uint32_t from, uint32_t to)
{
	model_t *m = arg;
	for (uint32_t i = 0; i < m->n_pending; i++)
		if (m->pending[i].element == element)
			fail(m, "element %u asked to move while its transition runs", element);
	if (from == to)
		fail(m, "element %u asked to move to the level it is at", element);
	if (m->n_pending == MAX_PENDING) {
		fail(m, "more than %d transitions pending", MAX_PENDING);
		return;
	}
	m->pending[m->n_pending].element = element;
	m->pending[m->n_pending].to = to;
	m->n_pending++;
}

static void on_lease_status(void *arg, uint64_t lease, uint64_t holder, thoth_pm_lease_status_t s)
{
	model_t *m = arg;
	if (s != THOTH_PM_LEASE_LOST)
		return;
	for (uint32_t i = 0; i < m->n_leases; i++)
		if (m->leases[i].id == lease) {
			forget_lease(m, i);
			return;
		}
	fail(m, "lease %llu reported lost but not held", (unsigned long long)lease);
}

static void on_ready(void *arg, uint64_t request, uint64_t holder, uint32_t element)
{
	model_t *m = arg;
	int i = find_req(m, request);
	if (i < 0 || m->reqs[i].state != REQ_QUEUED) {
		fail(m, "request %llu made ready twice or after its end", (unsigned long long)request);
		return;
	}
	thoth_pm_element_info_t info;
	if (thoth_pm_broker_element_info(m->b, element, &info) || info.dead)
		fail(m, "request %llu ready on a dead element", (unsigned long long)request);
	m->reqs[i].state = REQ_READY;
}

static void on_failed(void *arg, uint64_t request, uint64_t holder, const char *why)
{
	model_t *m = arg;
	int i = find_req(m, request);
	if (i < 0 || (m->reqs[i].state != REQ_QUEUED && m->reqs[i].state != REQ_READY)) {
		fail(m, "request %llu failed twice or after its end", (unsigned long long)request);
		return;
	}
	if (!why || !why[0])
		fail(m, "request %llu failed without a reason", (unsigned long long)request);
	m->reqs[i].state = REQ_FAILED;
	m->st.failed++;
}

/* The policy hook: a stand-in engine that picks a level as elements become
 * free (broker.h: before anything moves), so policy changes inside the
 * broker's step are exercised too. */
static void on_idle(void *arg, uint32_t element, bool idle, uint32_t *policy)
{
	model_t *m = arg;
	thoth_pm_element_info_t info;
	if (thoth_pm_broker_element_info(m->b, element, &info) || info.dead) {
		fail(m, "idle reported for a dead or unknown element %u", element);
		return;
	}
	m->idle_calls++;
	if (idle)
		*policy = (uint32_t)((element * 7u + m->idle_calls) % 5u);  /* may be out of range: ignored */
}

/* ---- operations ------------------------------------------------------------------- */

static uint32_t pick_element(model_t *m)
{
	uint32_t n = thoth_pm_broker_element_count(m->b);
	thoth_pm_element_info_t info;
	uint8_t x = take(m);
	if (!n || thoth_pm_broker_element_at(m->b, x % n, &info))
		return x;       /* also exercises unknown ids */
	return info.id;
}

static void op_declare(model_t *m)
{
	thoth_pm_element_decl_t d[2];
	uint8_t flags = take(m);
	uint32_t n = (flags & 0x80) ? 2 : 1;
	memset(d, 0, sizeof d);
	uint32_t existing = thoth_pm_broker_element_count(m->b);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(d[i].name, sizeof d[i].name, "e%u", m->next_name++ % 64);
		d[i].n_levels = 2 + take(m) % 3;
		for (uint32_t l = 0; l < d[i].n_levels; l++) {
			snprintf(d[i].levels[l].name, sizeof d[i].levels[l].name, "L%u", l);
			d[i].levels[l].power_mw = 10.0 * l + (take(m) % 8);
			d[i].levels[l].entry_latency_us = (int64_t)(take(m) % 4) * 100;
			d[i].levels[l].exit_latency_us = (int64_t)(d[i].n_levels - 1 - l) * 500;
		}
		if (flags & 0x01)       /* bad input must be refused, not obeyed */
			d[i].levels[0].exit_latency_us = (flags & 0x02) ? -5 : 100000000;
		uint8_t nd = take(m) % 3;
		for (uint32_t k = 0; k < nd; k++) {
			thoth_pm_dep_decl_t *dep = &d[i].deps[d[i].n_deps++];
			dep->level = 1 + take(m) % (d[i].n_levels - 1);
			uint8_t t = take(m);
			if (n == 2 && (t & 0x40)) {
				/* the other element of the batch: both ways makes a cycle */
				snprintf(dep->required, sizeof dep->required, "e%u",
					 (m->next_name - 1 + (i ? -1 : 1)) % 64);
			} else {
				thoth_pm_element_info_t info;
				if (existing && !thoth_pm_broker_element_at(m->b, t % existing, &info))
					snprintf(dep->required, sizeof dep->required, "%s", info.decl->name);
				else
					snprintf(dep->required, sizeof dep->required, "nosuch");
			}
			dep->required_level = take(m) % 4;
			dep->kind = (t & 0x80) ? THOTH_PM_OPPORTUNISTIC : THOTH_PM_ASSERTIVE;
		}
	}
	uint32_t ids[2];
	uint64_t driver = 1 + take(m) % N_DRIVERS;
	int r = thoth_pm_broker_declare(m->b, driver, d, n, m->now, ids);
	if (r == 0) {
		m->st.declared += n;
		if (flags & 0x01)
			fail(m, "a declaration with an absurd latency was accepted");
	} else {
		m->st.refused_declarations++;
		if (!thoth_pm_broker_refusal(m->b)[0])
			fail(m, "declaration refused (%d) without a reason", r);
	}
}

static void lease_one(model_t *m, uint64_t holder, uint32_t e, uint32_t level, thoth_pm_lease_kind_t kind,
		      uint32_t qos)
{
	uint64_t id;
	/* Holders in three groups (thothd: uids), held to the shares, each
	 * grant and refusal checked against the rule (broker.h): the total,
	 * the group's cap, then the share of what remains free to the holder
	 * (the broker's free leases, or its group's room when less). */
	uint64_t g = group_of(holder);
	uint32_t total = m->n_leases, held = m->held[holder], in_g = m->in_group[g];
	uint32_t room = LIM_LEASES - total;
	if (LIM_GROUP - in_g < room)
		room = LIM_GROUP - in_g;
	bool limit = total >= LIM_LEASES || in_g >= LIM_GROUP || held >= room;
	int r = thoth_pm_broker_lease_in(m->b, holder, g, e, level, kind, qos, m->now, &id);
	if (r) {
		if (r == THOTH_E_LIMIT) {
			m->st.refused_leases++;
			if (!limit)
				fail(m, "holder %llu (%u held, group %llu %u, %u in all) refused a lease its share "
				     "allows: %s", (unsigned long long)holder, held, (unsigned long long)g, in_g, total,
				     thoth_pm_broker_refusal(m->b));
		}
		if (!thoth_pm_broker_refusal(m->b)[0])
			fail(m, "lease refused (%d) without a reason", r);
		return;
	}
	if (limit)
		fail(m, "holder %llu (%u held, group %llu %u, %u in all) granted a lease past its share",
		     (unsigned long long)holder, held, (unsigned long long)g, in_g, total);
	if (m->n_leases == MAX_LEASES) {
		fail(m, "more than %d leases granted", MAX_LEASES);
		return;
	}
	m->leases[m->n_leases].id = id;
	m->leases[m->n_leases].holder = holder;
	m->n_leases++;
	count(m, holder, 1);
	m->st.leases++;
}

/* One lease, or (x & 0x20) a burst of up to 32 by one holder: a greedy
 * holder, so the shares and the caps are reached, not only read. */
static void op_lease(model_t *m)
{
	uint64_t holder = 1 + take(m) % N_HOLDERS;
	uint32_t e = pick_element(m);
	uint8_t x = take(m);
	uint32_t level = x % 5;
	thoth_pm_lease_kind_t kind = (x & 0x40) ? THOTH_PM_LEASE_OPPORTUNISTIC : THOTH_PM_LEASE_ASSERTIVE;
	uint32_t qos = (x & 0x80) ? (uint32_t)take(m) * 10 : 0;
	uint32_t n = (x & 0x20) ? 1 + take(m) % 32 : 1;
	for (uint32_t i = 0; i < n && !m->failed; i++)
		lease_one(m, holder, e, level, kind, qos);
}

static void op_drop(model_t *m)
{
	uint8_t x = take(m);
	if (!m->n_leases)
		return;
	uint32_t i = x % m->n_leases;
	if (thoth_pm_broker_drop(m->b, m->leases[i].holder, m->leases[i].id, m->now))
		fail(m, "dropping held lease %llu failed", (unsigned long long)m->leases[i].id);
	forget_lease(m, i);
}

static void op_kill_holder(model_t *m)
{
	uint64_t holder = 1 + take(m) % N_HOLDERS;
	thoth_pm_broker_holder_gone(m->b, holder, m->now);
	for (uint32_t i = 0; i < m->n_leases;)
		if (m->leases[i].holder == holder)
			forget_lease(m, i);
		else
			i++;
	for (uint32_t i = 0; i < m->n_reqs; i++)
		if (m->reqs[i].holder == holder &&
		    (m->reqs[i].state == REQ_QUEUED || m->reqs[i].state == REQ_READY)) {
			m->reqs[i].state = REQ_WITHDRAWN;
			m->st.withdrawn++;
		}
	m->st.kills++;
}

static void op_kill_driver(model_t *m, uint64_t driver)
{
	thoth_pm_broker_driver_gone(m->b, driver, m->now);
	m->st.kills++;
}

static void request_one(model_t *m, uint64_t holder, uint32_t e, uint32_t level)
{
	if (m->n_reqs == MAX_REQS) {
		/* forget finished requests to make room */
		uint32_t w = 0;
		for (uint32_t i = 0; i < m->n_reqs; i++)
			if (m->reqs[i].state == REQ_QUEUED || m->reqs[i].state == REQ_READY)
				m->reqs[w++] = m->reqs[i];
		m->n_reqs = w;
		if (w == MAX_REQS)
			return;
	}
	/* The shares of requests, as of leases (lease_one): each grant and
	 * refusal checked against the total, the group's cap and the share
	 * of what remains free to the holder, from the model's own count of
	 * the requests queued or in service. */
	uint64_t g = group_of(holder);
	uint32_t total = 0, mine = 0, in_g = 0;
	for (uint32_t i = 0; i < m->n_reqs; i++) {
		if (m->reqs[i].state != REQ_QUEUED && m->reqs[i].state != REQ_READY)
			continue;
		total++;
		mine += m->reqs[i].holder == holder;
		in_g += group_of(m->reqs[i].holder) == g;
	}
	uint32_t room = LIM_REQS - total;
	if (LIM_GROUP_REQS - in_g < room)
		room = LIM_GROUP_REQS - in_g;
	bool limit = total >= LIM_REQS || in_g >= LIM_GROUP_REQS || mine >= room;
	/* Recorded before the call (see find_req). */
	uint32_t slot = m->n_reqs++;
	m->reqs[slot].id = UINT64_MAX;
	m->reqs[slot].holder = holder;
	m->reqs[slot].state = REQ_QUEUED;
	uint64_t id;
	int r = thoth_pm_broker_request_in(m->b, holder, g, e, level, m->now, &id);
	if (r) {
		m->n_reqs--;
		m->st.refused_requests += r == THOTH_E_LIMIT;
		if (r == THOTH_E_LIMIT && !limit)
			fail(m, "holder %llu (%u queued, group %llu %u, %u in all) refused a request its share "
			     "allows: %s", (unsigned long long)holder, mine, (unsigned long long)g, in_g, total,
			     thoth_pm_broker_refusal(m->b));
		return;
	}
	if (limit)
		fail(m, "holder %llu (%u queued, group %llu %u, %u in all) queued a request past its share",
		     (unsigned long long)holder, mine, (unsigned long long)g, in_g, total);
	m->reqs[slot].id = id;
	m->st.requests++;
}

/* One request, or (x & 0x20) a burst of up to 32 by one holder, so the
 * request shares and caps are reached too. */
static void op_request(model_t *m)
{
	uint64_t holder = 1 + take(m) % N_HOLDERS;
	uint32_t e = pick_element(m);
	uint8_t x = take(m);
	uint32_t level = x % 5;
	uint32_t n = (x & 0x20) ? 1 + take(m) % 32 : 1;
	for (uint32_t i = 0; i < n && !m->failed; i++)
		request_one(m, holder, e, level);
}

static void op_serve(model_t *m)
{
	uint8_t x = take(m);
	for (uint32_t k = 0; k < m->n_reqs; k++) {
		uint32_t i = (x + k) % m->n_reqs;
		if (m->reqs[i].state != REQ_READY)
			continue;
		if (thoth_pm_broker_request_done(m->b, m->reqs[i].id, m->now))
			fail(m, "serving ready request %llu failed", (unsigned long long)m->reqs[i].id);
		m->reqs[i].state = REQ_DONE;
		m->st.served++;
		return;
	}
}

static bool finish_transition(model_t *m, uint32_t i)
{
	uint32_t element = m->pending[i].element, to = m->pending[i].to;
	m->pending[i] = m->pending[--m->n_pending];
	int r = thoth_pm_broker_level_reached(m->b, element, to, m->now);
	if (r && r != THOTH_E_NOT_FOUND)    /* NOT_FOUND: its driver died meanwhile */
		fail(m, "level_reached(%u, %u): %d %s", element, to, r, thoth_pm_broker_refusal(m->b));
	if (!r)
		m->st.transitions++;
	return true;
}

static void check(model_t *m)
{
	char why[256];
	if (!m->failed && thoth_pm_broker_check(m->b, why, sizeof why))
		fail(m, "invariant: %s", why);
	/* The broker's counts are the model's. */
	if (thoth_pm_broker_lease_count(m->b) != m->n_leases)
		fail(m, "the broker holds %u leases, the model %u", thoth_pm_broker_lease_count(m->b), m->n_leases);
	for (uint64_t h = 1; h <= N_HOLDERS; h++)
		if (thoth_pm_broker_holder_lease_count(m->b, h) != m->held[h])
			fail(m, "holder %llu: the broker counts %u leases, the model %u", (unsigned long long)h,
			     thoth_pm_broker_holder_lease_count(m->b, h), m->held[h]);
	for (uint64_t g = 1; g <= N_GROUPS; g++)
		if (thoth_pm_broker_group_lease_count(m->b, g) != m->in_group[g])
			fail(m, "group %llu: the broker counts %u leases, the model %u", (unsigned long long)g,
			     thoth_pm_broker_group_lease_count(m->b, g), m->in_group[g]);
}

/* Finish every transition and serve every ready request until quiet; then
 * every live element must sit at its target (nothing stuck). */
static void drain(model_t *m)
{
	for (int rounds = 0; rounds < 10000 && !m->failed; rounds++) {
		bool busy = false;
		if (m->n_pending) {
			finish_transition(m, 0);
			busy = true;
		}
		for (uint32_t i = 0; i < m->n_reqs; i++)
			if (m->reqs[i].state == REQ_READY) {
				thoth_pm_broker_request_done(m->b, m->reqs[i].id, m->now);
				m->reqs[i].state = REQ_DONE;
				m->st.served++;
				busy = true;
			}
		check(m);
		if (!busy)
			break;
	}
	for (uint32_t i = 0; i < thoth_pm_broker_element_count(m->b) && !m->failed; i++) {
		thoth_pm_element_info_t info;
		thoth_pm_broker_element_at(m->b, i, &info);
		if (!info.dead && (info.transitioning || info.level != info.target))
			fail(m, "\"%s\" is stuck at %u (target %u) with nothing pending", info.decl->name,
			     info.level, info.target);
	}
}

int pm_ops_run(const uint8_t *data, size_t len, pm_ops_stats_t *stats, char *why, size_t cap)
{
	model_t *m = calloc(1, sizeof *m);
	if (!m) {
		snprintf(why, cap, "out of memory");
		return -1;
	}
	m->data = data;
	m->len = len;
	m->why = why;
	m->cap = cap;
	m->now = 1000;
	thoth_pm_broker_ops_t ops = {
		.transition = on_transition, .lease_status = on_lease_status,
		.request_ready = on_ready, .request_failed = on_failed, .idle = on_idle, .arg = m,
	};
	thoth_pm_broker_limits_t lim = { .max_elements = 32, .max_leases = LIM_LEASES, .max_requests = LIM_REQS,
					 .fair_share = true, .max_group_leases = LIM_GROUP,
					 .max_group_requests = LIM_GROUP_REQS };
	if (thoth_pm_broker_new(&ops, &lim, m->now, &m->b)) {
		free(m);
		snprintf(why, cap, "broker_new failed");
		return -1;
	}
	while (m->off < m->len && !m->failed) {
		uint8_t op = take(m);
		m->now += (uint64_t)(op >> 4) * 1000;
		switch (op % 12) {
		case 0: op_declare(m); break;
		case 1: case 2: op_lease(m); break;
		case 3: op_drop(m); break;
		case 4: op_kill_holder(m); break;
		case 5: op_kill_driver(m, 1 + take(m) % N_DRIVERS); break;
		case 6: op_request(m); break;
		case 7: case 8: case 9:
			if (m->n_pending)
				finish_transition(m, take(m) % m->n_pending);
			break;
		case 10: op_serve(m); break;
		case 11:
			thoth_pm_broker_set_policy_level(m->b, pick_element(m), take(m) % 4, m->now);
			break;
		}
		m->st.ops++;
		check(m);
	}
	drain(m);
	/* Every driver dies: each request still open must now fail, exactly once. */
	for (uint64_t d = 1; d <= N_DRIVERS && !m->failed; d++)
		op_kill_driver(m, d);
	drain(m);
	for (uint32_t i = 0; i < m->n_reqs && !m->failed; i++)
		if (m->reqs[i].state == REQ_QUEUED || m->reqs[i].state == REQ_READY)
			fail(m, "request %llu was never answered", (unsigned long long)m->reqs[i].id);
	if (!m->failed && thoth_pm_broker_element_count(m->b))
		fail(m, "%u dead elements stayed after every driver died", thoth_pm_broker_element_count(m->b));
	if (stats)
		*stats = m->st;
	bool failed = m->failed;
	thoth_pm_broker_free(m->b);
	free(m);
	return failed ? -1 : 0;
}
