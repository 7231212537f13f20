/*
 * pm.c - PowerBroker served by thothd (idl/pm.tidl; PM-1, docs/PM.md): the
 * glue between the control socket and the broker core (kernel/pm/broker.c).
 *
 * A connection is both a possible driver and a possible holder; its client
 * id is its driver id and its holder id in the core.  When it closes, its
 * leases and requests end and its elements die (thothd_pm_client_closed),
 * in the same loop iteration that saw the hang-up: a kill -9'd holder frees
 * its leases as soon as the kernel closes its socket.
 *
 * Pushes (PowerEvents) caused by a call are queued in an outbox and sent
 * after that call's response (thothd_pm_flush, called by server.c), so a
 * client always learns its lease id before any event about the lease.
 *
 * A client may attach a latency bound to a service it resolves
 * (service_qos, docs/PM.md "QoS attached to a resolve"): a record held by
 * its connection that keeps the CPU latency request at or below the bound
 * and holds an opportunistic level-0 lease with the bound on every element
 * driven by a process serving that service.  Which elements those are
 * changes as services register and drivers come and go, so the records are
 * reconciled (svc_reconcile) after any such change, before pushes are sent.
 *
 * Requests carry a payload from the requester to the driver: thothd keeps
 * a copy from submission until the driver answers (served) or dies, so a
 * request reaching a suspended device waits here and is replayed to the
 * driver once the broker has resumed it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "broker.h"
#include "cpu_hint.h"
#include "engine.h"
#include "log.h"
#include "pm.thoth.h"
#include "thothd.h"
#include "thoth/trace.h"
#include "timerpage.h"

#define PM_MAX_LEASES THOTHD_PM_MAX_LEASES  /* in all (thothd_pm_new says why) */
#define PM_MAX_REQUESTS 65536                /* queued or in service, in all (the broker's default) */

typedef struct pm_request {
	uint64_t id;
	uint64_t requester;             /* 0: the requester is gone (the answer is dropped) */
	uint8_t *payload;
	uint32_t len;
	uint32_t element;               /* whose driver alone may answer it (served) */
} pm_request_t;

/*
 * The policy engine (kernel/pm/engine.h, PM-2) of one element: while no
 * lease, request or dependent holds the element, the engine chooses its
 * depth and the broker enforces it (thoth_pm_broker_set_policy_level), then
 * a timer walks the engine's ladder deeper while the element stays idle.
 * The engine numbers states from "on" (0) down with ns latencies; the
 * broker numbers levels from the deepest (0) up with µs: level = n - 1 - state.
 */
typedef struct pm_engine_slot {
	uint32_t element, n_levels;
	thoth_pm_engine_t *engine;      /* NULL: the levels do not fit the engine's model */
	bool idle;
	uint64_t idle_since;
	thoth_pm_decision_t decision;
	uint32_t next_step;             /* the next ladder entry to apply */
	thoth_timer_t *timer;           /* pending step (NULL once fired: the loop frees it) */
	struct thothd_pm *pm;
} pm_engine_slot_t;

/* One service_qos record (idl/pm.tidl 1.2). */
#define SVC_QOS_MAX_ELEMENTS 16         /* elements one record holds leases on */
#define SVC_QOS_PER_CLIENT 16
#define SVC_QOS_MAX 256
/* A uid's connections together, as a uid's leases are capped at 3/4 of
 * thothd's: 16 connections of one uid took all 256 and every other user's
 * bound was refused (hostile46 review, issue 14). */
#define SVC_QOS_PER_UID (SVC_QOS_MAX / 4 * 3)
typedef struct pm_svc_qos {
	uint64_t id;
	uint64_t client;                /* the holder's connection (and broker holder id) */
	uint32_t holder_pid;
	uint32_t holder_uid;            /* SVC_QOS_PER_UID */
	uint32_t qos_us;
	uint64_t granted_ns;
	char service[129];
	uint32_t n;
	uint32_t element[SVC_QOS_MAX_ELEMENTS];
	uint64_t lease[SVC_QOS_MAX_ELEMENTS];
	bool full_warned;
} pm_svc_qos_t;

typedef struct outbox_entry {
	uint64_t client;
	size_t off, len;
} outbox_entry_t;

struct thothd_pm {
	thothd_t *d;
	thoth_pm_broker_t *broker;
	thoth_pm_qos_t *qos;            /* /dev/cpu_dma_latency while a request is held */
	uint32_t qos_us;                /* the request applied now (0: none), for pm_qos_change */
	/* The engine's CPU idle hint (kernel/pm/cpu_hint.h): NULL without
	 * cpuidle states (this VM: no driver bound), then lease bounds only. */
	thoth_pm_cpu_hint_t *cpu;
	char idle_driver[32];
	uint32_t idle_states;
	thoth_pm_cpu_request_t cpu_req; /* the last decision */
	uint64_t cpu_next_wake_ns;      /* ...made with this next wake-up (NONE: none known) */
	uint64_t cpu_decided_ns;
	thoth_timer_t *cpu_timer;       /* re-decides once the wake-up that set the hint passed */
	bool cpu_timer_driven;          /* this decision is cpu_timer's */
	unsigned cpu_streak;            /* cpu_timer's decisions in a row that changed nothing */
	bool qos_failed;                /* the last apply failed (warned once per failure run) */
	char hints_off[200];            /* why the hints were stopped ("": they were not) */
	pm_request_t *reqs;
	uint32_t n_reqs, cap_reqs;
	uint8_t *box;                   /* encoded pushes waiting for thothd_pm_flush */
	size_t box_len, box_cap;
	outbox_entry_t *entries;
	uint32_t n_entries, cap_entries;
	pm_engine_slot_t **slots;       /* one per declared element */
	uint32_t n_slots, cap_slots;
	pm_svc_qos_t *svc;              /* service_qos records */
	uint32_t n_svc, cap_svc;
	uint64_t next_svc_id;
	bool svc_dirty;                 /* instances or elements changed: reconcile */
	bool svc_leasing;               /* inside svc_reconcile: no lease_status pushes */
	uint64_t share_refusals;        /* lease and request calls refused for a share (as 1.3 said) */
	uint64_t request_share_refusals;        /* the request calls among them (state() 1.4) */
	uint64_t svc_warn_ns;           /* the last "service_qos: cannot lease" logged (rate limit) */
	uint64_t svc_warn_quiet;        /* those not logged since */
};

static thothd_client_t *client_by_id(thothd_t *d, uint64_t id)
{
	for (thothd_client_t *c = d->clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void push(thothd_pm_t *pm, uint64_t client, const thoth_method_info_t *m, const void *msg)
{
	size_t need = thoth_method_size(m, false, msg) + 64;
	if (pm->box_len + need > pm->box_cap) {
		size_t cap = pm->box_cap ? pm->box_cap : 4096;
		while (cap < pm->box_len + need)
			cap *= 2;
		uint8_t *p = NULL;
		if (posix_memalign((void **)&p, THOTH_WIRE_ALIGN, cap)) {
			thothd_error("pm: out of memory for an event");
			return;
		}
		if (pm->box_len)
			memcpy(p, pm->box, pm->box_len);
		free(pm->box);
		pm->box = p;
		pm->box_cap = cap;
	}
	if (pm->n_entries == pm->cap_entries) {
		uint32_t cap = pm->cap_entries ? pm->cap_entries * 2 : 16;
		void *p = realloc(pm->entries, cap * sizeof *pm->entries);
		if (!p) {
			thothd_error("pm: out of memory for an event");
			return;
		}
		pm->entries = p;
		pm->cap_entries = cap;
	}
	size_t off = (pm->box_len + 7) & ~(size_t)7;     /* messages are 8-aligned */
	size_t len;
	int r = thoth_method_encode(m, false, msg, NULL, pm->box + off, pm->box_cap - off, &len);
	if (r) {
		thothd_error("pm: cannot encode an event: %s", thoth_strerror(r));
		return;
	}
	pm->entries[pm->n_entries++] = (outbox_entry_t){ .client = client, .off = off, .len = len };
	pm->box_len = off + len;
}

static void update_qos(thothd_pm_t *pm);
static void svc_reconcile_all(thothd_pm_t *pm);

void thothd_pm_flush(thothd_pm_t *pm)
{
	if (pm->svc_dirty)
		svc_reconcile_all(pm);  /* its transitions and the QoS change go out below */
	/* After every message thothd serves: the window page may hold a new
	 * next wake-up.  At most every 50 us (a page scan and an engine
	 * decision each), and only where there is an engine to ask. */
	if (pm->cpu && thothd_now(pm->d) - pm->cpu_decided_ns >= 50000)
		update_qos(pm);
	for (uint32_t i = 0; i < pm->n_entries; i++) {
		thothd_client_t *c = client_by_id(pm->d, pm->entries[i].client);
		if (c && !c->doomed && c->fd >= 0)
			thothd_client_send(c, pm->box + pm->entries[i].off, pm->entries[i].len);
	}
	pm->n_entries = 0;
	pm->box_len = 0;
}

/* ---- broker callbacks -------------------------------------------------------------- */

#define PENDING_ID UINT64_MAX          /* a request inside thoth_pm_broker_request() */

/* The request ID; a callback for an unknown id during on_request() is about
 * the request being submitted, which takes that id. */
static pm_request_t *find_request(thothd_pm_t *pm, uint64_t id)
{
	pm_request_t *pending = NULL;
	for (uint32_t i = 0; i < pm->n_reqs; i++) {
		if (pm->reqs[i].id == id)
			return &pm->reqs[i];
		if (pm->reqs[i].id == PENDING_ID)
			pending = &pm->reqs[i];
	}
	if (pending && id != PENDING_ID)
		pending->id = id;
	return pending;
}

static void forget_request(thothd_pm_t *pm, pm_request_t *r)
{
	free(r->payload);
	*r = pm->reqs[--pm->n_reqs];
}

static pm_engine_slot_t *find_slot(thothd_pm_t *pm, uint32_t element);

/* Reasons in pm_level_change / pm_lease_release (docs/OBSERVABILITY.md). */
enum { PM_BY_HOLD = 1, PM_BY_POLICY = 2 };
enum { PM_RELEASE_DROP = 0, PM_RELEASE_HOLDER_GONE = 1, PM_RELEASE_LOST = 2 };

static void on_transition(void *arg, uint64_t driver, uint32_t element, uint32_t from, uint32_t to)
{
	thothd_pm_t *pm = arg;
	/* why: the engine's choice for an element nothing holds, or what
	 * holds it (a lease, a request, a dependent) */
	pm_engine_slot_t *slot = find_slot(pm, element);
	THOTH_TRACE(PM, pm_level_change, (uint64_t)element << 32 | to,
		    (uint64_t)from << 32 | (slot && slot->idle ? PM_BY_POLICY : PM_BY_HOLD));
	thoth_pm_PowerEvents_set_level_req_t ev = { .element = element, .from = from, .to = to };
	push(pm, driver, &thoth_pm_PowerEvents_set_level_info, &ev);
}

static bool svc_owns_lease(const thothd_pm_t *pm, uint64_t lease)
{
	for (uint32_t i = 0; i < pm->n_svc; i++)
		for (uint32_t k = 0; k < pm->svc[i].n; k++)
			if (pm->svc[i].lease[k] == lease)
				return true;
	return false;
}

static void on_lease_status(void *arg, uint64_t lease, uint64_t holder, thoth_pm_lease_status_t s)
{
	thothd_pm_t *pm = arg;
	thoth_pm_PowerEvents_lease_status_req_t ev = { .lease = lease, .status = (thoth_pm_LeaseStatus_t)s };
	if (s == THOTH_PM_LEASE_LOST) {
		THOTH_TRACE(PM, pm_lease_release, lease, PM_RELEASE_LOST);
		pm->svc_dirty |= pm->n_svc > 0;
	}
	/* A service_qos record's leases are thothd's bookkeeping: the holder
	 * asked for a bound on a service, not for these lease ids. */
	if (pm->svc_leasing || svc_owns_lease(pm, lease))
		return;
	push(pm, holder, &thoth_pm_PowerEvents_lease_status_info, &ev);
}

static void on_request_ready(void *arg, uint64_t request, uint64_t holder, uint32_t element)
{
	thothd_pm_t *pm = arg;
	pm_request_t *r = find_request(pm, request);
	thoth_pm_element_info_t info;
	if (!r || thoth_pm_broker_element_info(pm->broker, element, &info))
		return;
	thoth_pm_PowerEvents_serve_req_t ev = {
		.request = request, .element = element,
		.payload = { .ptr = r->payload, .len = r->len },
	};
	push(pm, info.driver, &thoth_pm_PowerEvents_serve_info, &ev);
}

static void on_request_failed(void *arg, uint64_t request, uint64_t holder, const char *why)
{
	thothd_pm_t *pm = arg;
	pm_request_t *r = find_request(pm, request);
	if (!r)
		return;
	thoth_pm_PowerEvents_request_done_req_t ev = {
		.request = request, .ok = false, .error = thoth_str(why),
	};
	if (r->requester)
		push(pm, r->requester, &thoth_pm_PowerEvents_request_done_info, &ev);
	forget_request(pm, r);
}

/* ---- the policy engine --------------------------------------------------------------- */

static pm_engine_slot_t *find_slot(thothd_pm_t *pm, uint32_t element)
{
	for (uint32_t i = 0; i < pm->n_slots; i++)
		if (pm->slots[i]->element == element)
			return pm->slots[i];
	return NULL;
}

static void free_slot(thothd_pm_t *pm, uint32_t i)
{
	pm_engine_slot_t *s = pm->slots[i];
	if (s->timer)
		thoth_timer_cancel(pm->d->loop, s->timer);
	thoth_pm_engine_free(s->engine);
	free(s);
	pm->slots[i] = pm->slots[--pm->n_slots];
}

/* An engine for element ID described by DECL (its levels in reverse). */
static void engine_add(thothd_pm_t *pm, uint32_t id, const thoth_pm_element_decl_t *decl)
{
	if (pm->n_slots == pm->cap_slots) {
		uint32_t cap = pm->cap_slots ? pm->cap_slots * 2 : 16;
		void *p = realloc(pm->slots, cap * sizeof *pm->slots);
		if (!p)
			return;
		pm->slots = p;
		pm->cap_slots = cap;
	}
	pm_engine_slot_t *s = calloc(1, sizeof *s);
	if (!s)
		return;
	s->pm = pm;
	s->element = id;
	s->n_levels = decl->n_levels;
	thoth_pm_element_desc_t desc = { .name = decl->name, .state_count = decl->n_levels };
	const char *why = NULL;
	if (decl->n_levels <= THOTH_PM_MAX_STATES) {
		for (uint32_t st = 0; st < decl->n_levels; st++) {
			const thoth_pm_level_decl_t *l = &decl->levels[decl->n_levels - 1 - st];
			desc.states[st] = (thoth_pm_state_desc_t){
				.name = l->name, .power_mw = (uint32_t)(l->power_mw + 0.5),
				.entry_latency_ns = (uint64_t)l->entry_latency_us * 1000,
				.exit_latency_ns = (uint64_t)l->exit_latency_us * 1000,
			};
		}
		if (thoth_pm_engine_new(&desc, &s->engine, &why))
			s->engine = NULL;
	} else {
		why = "more levels than the engine's states";
	}
	if (!s->engine)
		thothd_debug("pm: %s: no policy engine (%s); its policy level stays 0", decl->name,
			     why ? why : "out of memory");
	pm->slots[pm->n_slots++] = s;
	/* Its first idle report came inside declare, before this slot existed.
	 * No decision yet: the engine decides when an idle period follows
	 * activity (until then the element stays where the broker put it); the
	 * time from declaration to first use is its first observation. */
	thoth_pm_element_info_t info;
	if (s->engine && !thoth_pm_broker_element_info(pm->broker, id, &info) && info.idle) {
		s->idle = true;
		s->idle_since = thothd_now(pm->d);
	}
}

/* The tightest latency bound of the leases on ELEMENT, ns (NONE: none). */
static uint64_t element_qos_ns(thothd_pm_t *pm, uint32_t element)
{
	uint64_t q = THOTH_PM_NONE;
	for (uint32_t i = 0; i < thoth_pm_broker_lease_count(pm->broker); i++) {
		thoth_pm_lease_info_t l;
		if (!thoth_pm_broker_lease_at(pm->broker, i, &l) && l.element == element && l.qos_us &&
		    (uint64_t)l.qos_us * 1000 < q)
			q = (uint64_t)l.qos_us * 1000;
	}
	return q;
}

static void ladder_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

/* Arm the timer for the next step of the ladder, if there is one. */
static void arm_ladder(pm_engine_slot_t *s)
{
	thothd_pm_t *pm = s->pm;
	if (!pm->d->loop || s->next_step >= s->decision.ladder_count)
		return;
	uint64_t step = s->decision.ladder[s->next_step].at_ns;
	/* A step may come a little late, never early: slack 1/16, at most 1 ms. */
	uint64_t slack = step / 16 < 1000000 ? step / 16 : 1000000;
	int r = s->timer ? thoth_timer_rearm(pm->d->loop, s->timer, s->idle_since + step, slack)
			 : thoth_loop_add_timer(pm->d->loop, s->idle_since + step, slack, ladder_fired, s,
						&s->timer);
	if (r)
		thothd_warn("pm: cannot arm the ladder timer of element %u", s->element);
}

/* Still idle at the next step of the engine's ladder: one state deeper. */
static void ladder_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	pm_engine_slot_t *s = arg;
	thothd_pm_t *pm = s->pm;
	/* Fired: the loop frees a one-shot timer that its callback does not
	 * re-arm, so the slot forgets it now and arm_ladder below adds a fresh
	 * one for the next step.  Keeping the pointer past the last step was a
	 * use-after-free at the element's next hold, next idle period or its
	 * driver's death (thothd aborted under ASan; test_pm_thothd's
	 * ladder-step case). */
	s->timer = NULL;
	if (!s->idle || s->next_step >= s->decision.ladder_count)
		return;
	uint32_t state = s->decision.ladder[s->next_step++].state;
	if (thoth_pm_broker_set_policy_level(pm->broker, s->element, s->n_levels - 1 - state,
					     thothd_now(pm->d)))
		thothd_debug("pm: ladder step for element %u: %s", s->element,
			     thoth_pm_broker_refusal(pm->broker));
	arm_ladder(s);
	thothd_pm_flush(pm);
}

/*
 * The broker's idle hook, called inside its step: when nothing holds the
 * element any more the engine decides its depth there and then (*POLICY),
 * before anything moves; when it is held again, the idle period it ended is
 * the engine's next observation.  Only const broker calls in here.
 */
static void on_idle(void *arg, uint32_t element, bool idle, uint32_t *policy)
{
	thothd_pm_t *pm = arg;
	pm_engine_slot_t *s = find_slot(pm, element);
	if (!s || !s->engine || s->idle == idle)
		return;
	uint64_t now = thothd_now(pm->d);
	s->idle = idle;
	if (idle) {
		s->idle_since = now;
		thoth_pm_constraints_t c = {
			.latency_ns = element_qos_ns(pm, element), .next_event_ns = THOTH_PM_NONE,
		};
		thoth_pm_engine_decide(s->engine, &c, &s->decision);
		s->next_step = 0;
		*policy = s->n_levels - 1 - s->decision.state;
		arm_ladder(s);
	} else {
		thoth_pm_engine_observe(s->engine, now - s->idle_since, THOTH_PM_NONE);
		if (s->timer) {
			thoth_timer_cancel(pm->d->loop, s->timer);
			s->timer = NULL;
		}
	}
}

/* ---- lifecycle --------------------------------------------------------------------- */

int thothd_pm_new(thothd_t *d, thothd_pm_t **out)
{
	thothd_pm_t *pm = calloc(1, sizeof *pm);
	if (!pm)
		return THOTH_E_NOMEM;
	pm->d = d;
	thoth_pm_broker_ops_t ops = {
		.transition = on_transition, .lease_status = on_lease_status,
		.request_ready = on_request_ready, .request_failed = on_request_failed,
		.idle = on_idle, .arg = pm,
	};
	/* state() lists every lease, and thothd drops a client whose unsent
	 * answers pass its backlog limit (8 MiB, server.c): at the broker's
	 * default of 65,536 leases, ~130 bytes each on an element with a
	 * 63-character name, one client taking leases for two seconds made
	 * state() an 8.4 MB answer nobody could be given.  16,384 leases are
	 * ~2.2 MB; with 256 elements of 16 levels (~0.4 MB), their 64 keeper
	 * rows each (~2.8 MB) and the service bounds (~0.3 MB) the longest
	 * answer stays near 6 MB.
	 *
	 * Within that, a connection holds at most as many leases as remain
	 * free (the broker's fair share): one connection alone stops at 8,192
	 * and the next finds half of the rest.  A fixed per-connection cap
	 * would be beaten by opening more connections (a uid may hold 768);
	 * the share alone by connections opened one after another (the 15th
	 * takes the last lease), so a uid's connections together hold at most
	 * 3/4 (12,288, --max-leases-per-uid), as a uid holds at most 3/4 of
	 * the connections, and other uids always find 4,096 (docs/PM.md,
	 * "What thothd refuses"); a deployment with one user may raise it to
	 * the whole limit.  A connection's share is of what its uid may still
	 * take: the third connection of a uid finds 1,536 after two greedy
	 * ones, not none. */
	uint32_t per_uid = d->cfg.max_leases_per_uid;
	if (!per_uid)
		per_uid = PM_MAX_LEASES / 4 * 3;
	if (per_uid > PM_MAX_LEASES)
		per_uid = PM_MAX_LEASES;
	const thoth_pm_broker_limits_t limits = {
		.max_leases = PM_MAX_LEASES, .fair_share = true, .max_group_leases = per_uid, .group_word = "uid",
		/* requests: the same share of the broker's 65,536, 3/4 to a uid */
		.max_requests = PM_MAX_REQUESTS,
		.max_group_requests = (uint32_t)((uint64_t)PM_MAX_REQUESTS * per_uid / PM_MAX_LEASES),
	};
	int r = thoth_pm_broker_new(&ops, &limits, thothd_now(d), &pm->broker);
	if (!r)
		r = thoth_pm_qos_open(&pm->qos);
	if (r) {
		thothd_pm_free(pm);
		return r;
	}
	/* CPU 0's cpuidle states stand for every CPU's (one driver for all). */
	thoth_pm_cpuidle_t idle;
	const char *why = NULL;
	if (thoth_pm_cpuidle_read(0, &idle)) {
		why = "no cpuidle in sysfs";
	} else {
		snprintf(pm->idle_driver, sizeof pm->idle_driver, "%s", idle.driver);
		for (uint32_t i = 0; i < idle.n_states; i++)
			pm->idle_states += !idle.states[i].disabled;
		if (thoth_pm_cpu_hint_new(&idle, &pm->cpu, &why) == THOTH_E_NOMEM)
			why = "out of memory";
	}
	if (pm->cpu)
		thothd_info("pm: CPU idle hints over %u cpuidle states (driver %s)", pm->idle_states,
			    pm->idle_driver);
	else
		thothd_info("pm: no CPU idle hints (%s): lease latency bounds only", why);
	pm->cpu_req.state = -1;
	pm->cpu_req.state_name = "";
	pm->cpu_next_wake_ns = THOTH_PM_NONE;
	*out = pm;
	return 0;
}

void thothd_pm_free(thothd_pm_t *pm)
{
	if (!pm)
		return;
	while (pm->n_reqs)
		forget_request(pm, &pm->reqs[0]);
	while (pm->n_slots)
		free_slot(pm, 0);
	free(pm->slots);
	if (pm->cpu_timer && pm->d->loop)
		thoth_timer_cancel(pm->d->loop, pm->cpu_timer);
	thoth_pm_cpu_hint_free(pm->cpu);
	thoth_pm_broker_free(pm->broker);
	thoth_pm_qos_close(pm->qos);
	free(pm->reqs);
	free(pm->svc);
	free(pm->box);
	free(pm->entries);
	free(pm);
}

/*
 * The time to the next wake-up any loop posted on the window page
 * (kernel/sched/timerpage.h; read only).  The page is hostile input: a
 * bogus value only moves the hint, which is a request for depth that the
 * kernel bounds anyway, and the scan is bounded by our own slot count.
 */
static uint64_t next_posted_wake_ns(uint64_t now)
{
	const timerpage_t *pg = thoth__timerpage_current();
	if (!pg)
		return THOTH_PM_NONE;
	uint32_t n = atomic_load_explicit(&pg->high, memory_order_relaxed);
	if (n > THOTH_TIMERPAGE_SLOTS)
		n = THOTH_TIMERPAGE_SLOTS;
	uint64_t best = UINT64_MAX;
	for (uint32_t i = 0; i < n; i++) {
		if (!atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed))
			continue;
		uint64_t at = atomic_load_explicit(&pg->slot[i].at, memory_order_relaxed);
		if (at > now && at < best)
			best = at;
	}
	return best == UINT64_MAX ? THOTH_PM_NONE : best - now;
}

static void cpu_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

/* The tightest latency bound clients asked for: leases' and service_qos
 * records' (a service with no element still needs the CPU to wake in time). */
static uint32_t lease_bound_us(const thothd_pm_t *pm)
{
	uint32_t q = thoth_pm_broker_min_qos_us(pm->broker);
	for (uint32_t i = 0; i < pm->n_svc; i++)
		if (!q || pm->svc[i].qos_us < q)
			q = pm->svc[i].qos_us;
	return q;
}

#define CPU_HINT_MIN_INTERVAL_NS 1000000ull
/* cpu_timer's interval doubles, up to 64 ms, for each of its decisions in
 * a row that changed nothing (CPU_HINT_BACKOFF_MAX doublings). */
#define CPU_HINT_BACKOFF_MAX 6u

/*
 * Hold /dev/cpu_dma_latency open exactly while a request exists: the
 * tightest lease bound, or the engine's hint before a known wake-up if that
 * is tighter (kernel/pm/cpu_hint.h).  Called at every lease change, after
 * every message thothd serves (thothd_pm_flush), and once the wake-up that
 * set a hint has passed (cpu_timer).
 */
static void update_qos(thothd_pm_t *pm)
{
	uint64_t now = thothd_now(pm->d);
	uint32_t lease_us = lease_bound_us(pm);
	uint64_t next = pm->cpu ? next_posted_wake_ns(now) : THOTH_PM_NONE;
	thoth_pm_cpu_request_t req;
	thoth_pm_cpu_hint_decide(pm->cpu, lease_us, next, &req);
	if (req.hint_us != pm->cpu_req.hint_us || req.state != pm->cpu_req.state)
		THOTH_TRACE(PM, pm_cpu_hint, (uint64_t)(uint32_t)req.state << 32 | req.hint_us,
			    next == THOTH_PM_NONE ? 0 : next);
	/* Any process of the uid can post near instants on the page (an
	 * honest 1 ms timer does, and so can a forger that wakes once a
	 * second, lying in every slot): re-deciding each millisecond woke
	 * idle thothd 1000 times a second for a request that stayed the
	 * same.  While cpu_timer's decisions change nothing, its interval
	 * doubles up to 64 ms; only a changed request starts again at 1 ms.
	 * A decision after a message served that changes nothing keeps the
	 * interval where it is: restarting it there let a forger that also
	 * sent a cheap call every few ms keep idle thothd re-deciding every
	 * 1-3 ms (about 200 timers a second with a call every 5 ms, against
	 * 15-20 for the forger alone; docs/PM.md).  A lease or service_qos that
	 * changes the request changes it in its own call.  Nothing wakes
	 * thothd when a slot changes (the page is read at a decision), so
	 * meanwhile the request lags the page by up to 64 ms (or until the
	 * next message served), not max(1 ms, the wake-up's distance): a
	 * farther post finds a shallower state than it allows
	 * (energy), a nearer one may find the held, deeper state (its wake-up
	 * at most the held hint's exit latency late). */
	bool same = req.hint_us == pm->cpu_req.hint_us && req.state == pm->cpu_req.state;
	if (!same)
		pm->cpu_streak = 0;
	else if (pm->cpu_timer_driven && pm->cpu_streak < CPU_HINT_BACKOFF_MAX)
		pm->cpu_streak++;
	pm->cpu_timer_driven = false;
	pm->cpu_req = req;
	pm->cpu_next_wake_ns = next;
	pm->cpu_decided_ns = now;
	uint32_t us = req.request_us;
	if (us != pm->qos_us) {
		THOTH_TRACE(PM, pm_qos_change, us, pm->qos_us);
		pm->qos_us = us;
	}
	int r = thoth_pm_qos_set(pm->qos, us);
	if (r && !pm->qos_failed)
		thothd_warn("pm: cannot apply the CPU latency request: %s", thoth_pm_qos_error(pm->qos));
	pm->qos_failed = r != 0;
	if (r && req.why == THOTH_PM_CPU_TIMER) {
		/* The hint alone cannot be applied (not root, no device): stop
		 * hinting rather than fail, and warn, at every near wake-up. */
		snprintf(pm->hints_off, sizeof pm->hints_off, "idle hints off: %s",
			 thoth_pm_qos_error(pm->qos));
		thothd_warn("pm: CPU %s", pm->hints_off);
		thoth_pm_cpu_hint_free(pm->cpu);
		pm->cpu = NULL;
		pm->cpu_req = (thoth_pm_cpu_request_t){ .state = -1, .state_name = "" };
		req.why = 0;
	}
	/* A hint set by a near wake-up is decided again once it has passed
	 * (at most once a millisecond, backing off to once per 64 ms while
	 * nothing changes; the window page lets this wake-up join another
	 * loop's, when the CPU is awake anyway).  Otherwise no timer: an idle
	 * thothd stays at 0 wake-ups. */
	if (!pm->d->loop)
		return;
	if (req.why & THOTH_PM_CPU_TIMER) {
		uint64_t every = CPU_HINT_MIN_INTERVAL_NS << pm->cpu_streak;
		uint64_t at = now + (next < every ? every : next);
		int tr = pm->cpu_timer ? thoth_timer_rearm(pm->d->loop, pm->cpu_timer, at, CPU_HINT_MIN_INTERVAL_NS)
				       : thoth_loop_add_timer(pm->d->loop, at, CPU_HINT_MIN_INTERVAL_NS,
							      cpu_timer_fired, pm, &pm->cpu_timer);
		if (tr)
			thothd_warn("pm: cannot arm the CPU hint timer: %s", thoth_strerror(tr));
	} else if (pm->cpu_timer) {
		thoth_timer_cancel(pm->d->loop, pm->cpu_timer);
		pm->cpu_timer = NULL;
	}
}

static void cpu_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_pm_t *pm = arg;
	(void)loop;
	(void)timer;                    /* kept: update_qos re-arms or cancels it */
	pm->cpu_timer_driven = true;
	update_qos(pm);
}

/* ---- service_qos: a latency bound attached to a resolve ------------------------------- */

/* Pids of the live local instances of SERVICE (at most CAP): the processes
 * whose elements a bound on SERVICE covers.  The pid of a local
 * registration is the kernel's (SO_PEERCRED, handlers.c), never the
 * client's word, so a process cannot pull another's elements in. */
static uint32_t service_pids(thothd_pm_t *pm, const char *service, uint32_t *pids, uint32_t cap)
{
	const thoth_registry_Instance_t **found = NULL;
	size_t n = 0;
	size_t len = strlen(service);
	if (thoth_registry_list(pm->d->registry, thoth_str(service), THOTH_COMMON_LOCALITY_ANY,
				thothd_now(pm->d), &found, &n))
		return 0;
	uint32_t k = 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		const thoth_registry_Registration_t *r = &found[i]->registration;
		if (r->name.len != len || memcmp(r->name.ptr, service, len) != 0 ||
		    r->endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE || !r->endpoint.pid)
			continue;       /* a longer name with this prefix, or another host's */
		pids[k++] = r->endpoint.pid;
	}
	free(found);
	return k;
}

static bool pid_in(const uint32_t *pids, uint32_t n, uint32_t pid)
{
	for (uint32_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* The pid of the connection that drives ELEMENT (0: none, or dead). */
static uint32_t element_driver_pid(thothd_pm_t *pm, const thoth_pm_element_info_t *info)
{
	if (info->dead)
		return 0;
	thothd_client_t *c = client_by_id(pm->d, info->driver);
	return c && !c->doomed ? c->pid : 0;
}

/* Make Q's leases be exactly one per live element its service's processes drive. */
static void svc_reconcile(thothd_pm_t *pm, pm_svc_qos_t *q)
{
	uint32_t pids[64];
	uint32_t np = service_pids(pm, q->service, pids, 64);
	uint64_t now = thothd_now(pm->d);
	pm->svc_leasing = true;
	for (uint32_t k = 0; k < q->n;) {
		thoth_pm_element_info_t info;
		if (!thoth_pm_broker_element_info(pm->broker, q->element[k], &info) &&
		    pid_in(pids, np, element_driver_pid(pm, &info))) {
			k++;
			continue;
		}
		/* Its driver died (the broker already removed the lease) or no
		 * longer serves the service: let the element go. */
		if (!thoth_pm_broker_drop(pm->broker, q->client, q->lease[k], now))
			THOTH_TRACE(PM, pm_lease_release, q->lease[k], PM_RELEASE_DROP);
		q->n--;
		q->element[k] = q->element[q->n];
		q->lease[k] = q->lease[q->n];
	}
	uint32_t ne = thoth_pm_broker_element_count(pm->broker);
	for (uint32_t i = 0; np && i < ne; i++) {
		thoth_pm_element_info_t info;
		if (thoth_pm_broker_element_at(pm->broker, i, &info) ||
		    !pid_in(pids, np, element_driver_pid(pm, &info)))
			continue;
		bool have = false;
		for (uint32_t k = 0; k < q->n && !have; k++)
			have = q->element[k] == info.id;
		if (have)
			continue;
		if (q->n == SVC_QOS_MAX_ELEMENTS) {
			if (!q->full_warned)
				thothd_warn("pm: service_qos %llu (%s): more than %d elements; the bound "
					    "covers the first %d", (unsigned long long)q->id, q->service,
					    SVC_QOS_MAX_ELEMENTS, SVC_QOS_MAX_ELEMENTS);
			q->full_warned = true;
			break;
		}
		uint64_t lease;
		/* Opportunistic at level 0: it asserts nothing, so the element
		 * stays free for the engine, whose choice the bound's floor
		 * limits ("the deepest state whose exit latency fits").  thothd's
		 * own lease, outside the connection's share and its uid's cap:
		 * held to them, a client that had taken its share lost the bound
		 * it asked for, silently (each record holds at most
		 * SVC_QOS_MAX_ELEMENTS, a connection SVC_QOS_PER_CLIENT records). */
		int r = thoth_pm_broker_lease_internal(pm->broker, q->client, info.id, 0,
						       THOTH_PM_LEASE_OPPORTUNISTIC, q->qos_us, now, &lease);
		if (r) {
			/* Only the total can refuse it now; every reconcile
			 * would say so again: once per 10 s, with the count. */
			if (!pm->svc_warn_ns || now - pm->svc_warn_ns >= 10000000000ull) {
				thothd_warn("pm: service_qos %llu (%s): cannot lease %s: %s (%llu more not logged)",
					    (unsigned long long)q->id, q->service, info.decl->name,
					    thoth_pm_broker_refusal(pm->broker),
					    (unsigned long long)pm->svc_warn_quiet);
				pm->svc_warn_ns = now ? now : 1;
				pm->svc_warn_quiet = 0;
			} else {
				pm->svc_warn_quiet++;
			}
			continue;
		}
		THOTH_TRACE(PM, pm_lease_grant, lease, (uint64_t)info.id << 32);
		q->element[q->n] = info.id;
		q->lease[q->n++] = lease;
	}
	pm->svc_leasing = false;
}

static void svc_reconcile_all(thothd_pm_t *pm)
{
	pm->svc_dirty = false;
	for (uint32_t i = 0; i < pm->n_svc; i++)
		svc_reconcile(pm, &pm->svc[i]);
	update_qos(pm);
}

void thothd_pm_registry_changed(thothd_pm_t *pm)
{
	if (pm && pm->n_svc)
		pm->svc_dirty = true;   /* reconciled at the next flush: the registry is busy now */
}

void thothd_pm_client_closed(thothd_pm_t *pm, const thothd_client_t *c)
{
	uint64_t now = thothd_now(pm->d);
	/* Its service_qos records go with it (their leases go with the holder
	 * below); what it drove may have been covered by others' records. */
	for (uint32_t i = 0; i < pm->n_svc;) {
		if (pm->svc[i].client == c->id) {
			thothd_info("pm: service_qos %llu (%s, %u us) released: pid %u's connection closed",
				    (unsigned long long)pm->svc[i].id, pm->svc[i].service, pm->svc[i].qos_us,
				    c->pid);
			pm->svc[i] = pm->svc[--pm->n_svc];
		} else {
			i++;
		}
	}
	pm->svc_dirty |= pm->n_svc > 0;
	for (uint32_t i = 0; i < pm->n_reqs; i++)
		if (pm->reqs[i].requester == c->id)
			pm->reqs[i].requester = 0;
	for (uint32_t i = 0; THOTH_TRACE_IS_ON(PM) && i < thoth_pm_broker_lease_count(pm->broker); i++) {
		thoth_pm_lease_info_t l;
		if (!thoth_pm_broker_lease_at(pm->broker, i, &l) && l.holder == c->id)
			THOTH_TRACE(PM, pm_lease_release, l.id, PM_RELEASE_HOLDER_GONE);
	}
	thoth_pm_broker_holder_gone(pm->broker, c->id, now);
	thoth_pm_broker_driver_gone(pm->broker, c->id, now);
	/* Requests whose requester left and that no driver holds any more. */
	for (uint32_t i = 0; i < pm->n_reqs;) {
		if (!pm->reqs[i].requester) {
			/* The broker withdrew it; a driver serving it now is answered
			 * 0 by served() (nobody waits for the result). */
			forget_request(pm, &pm->reqs[i]);
		} else {
			i++;
		}
	}
	for (uint32_t i = 0; i < pm->n_slots;) {
		thoth_pm_element_info_t info;
		if (thoth_pm_broker_element_info(pm->broker, pm->slots[i]->element, &info) || info.dead)
			free_slot(pm, i);
		else
			i++;
	}
	update_qos(pm);
	thothd_pm_flush(pm);
}

/* ---- handlers ---------------------------------------------------------------------- */

static int map_error(thothd_call_t *call, int r)
{
	call->reason = thoth_pm_broker_refusal(call->d->pm->broker);
	switch (r) {
	case 0: return 0;
	case THOTH_E_NOT_FOUND: return THOTH_PM_ERR_NOT_FOUND;
	case THOTH_E_PERM: return THOTH_PM_ERR_NOT_OWNER;
	case THOTH_E_LIMIT: return THOTH_PM_ERR_TOO_MANY;
	case THOTH_E_PROTOCOL: return THOTH_PM_ERR_NOT_ASKED;
	case THOTH_E_INVAL: return THOTH_PM_ERR_BAD_LEVEL;
	case THOTH_E_EXISTS: return THOTH_PM_ERR_BAD_DECLARATION;
	default: return r;
	}
}

/* Once per connection: "pid N (comm)" for the accounting. */
static void name_holder(thothd_pm_t *pm, const thothd_client_t *c)
{
	if (thoth_pm_broker_holder_named(pm->broker, c->id))
		return;
	char comm[32] = "", name[48];
	/* Read with the peer pinned (thothd__client_proc_read): one that has
	 * exited may have left its number to another program, whose name
	 * would be shown as the lease holder's. */
	if (thothd__client_proc_read(c, "comm", comm, sizeof comm) < 0 && errno == ESRCH)
		snprintf(comm, sizeof comm, "exited");
	comm[strcspn(comm, "\n")] = 0;
	/* A process names itself (PR_SET_NAME): any byte but NUL.  The name
	 * goes out in state() as a wire string, which must be UTF-8 -- one
	 * byte 0xff made every state() answer undecodable for everyone -- and
	 * is printed by `thothctl pm` to a terminal: printable ASCII only. */
	for (char *p = comm; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	snprintf(name, sizeof name, "pid %u (%s)", c->pid, comm);
	thoth_pm_broker_name_holder(pm->broker, c->id, name);
}

/* A request string into DST.  An absent field (an older client's schema)
 * is decoded as { NULL, 0 } (thoth/wire.h) and reads as "". */
static bool copy_str(char *dst, size_t cap, thoth_str_t s)
{
	if (s.len >= cap)
		return false;
	if (s.len)
		memcpy(dst, s.ptr, s.len);
	dst[s.len] = 0;
	return true;
}

static int on_declare(void *self, const thoth_pm_PowerBroker_declare_req_t *req,
		      thoth_pm_PowerBroker_declare_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	uint32_t n = req->elements.count;
	if (n == 0 || n > 64) {
		call->reason = "elements: 1..64 per declaration";
		return THOTH_PM_ERR_BAD_DECLARATION;
	}
	thoth_pm_element_decl_t *decls = calloc(n, sizeof *decls);
	/* scratch outlives the handler: the refusal reason and the ids live there */
	char *why = calloc(1, 256 + n * sizeof(uint32_t));
	if (!decls || !why) {
		free(decls);
		free(why);
		return THOTH_E_NOMEM;
	}
	uint32_t *ids = (uint32_t *)(void *)(why + 256);
	call->scratch = why;
	int status = 0;
	for (uint32_t i = 0; i < n && !status; i++) {
		const thoth_pm_Element_t *e = &req->elements.items[i];
		thoth_pm_element_decl_t *d = &decls[i];
		if (!copy_str(d->name, sizeof d->name, e->name)) {
			snprintf(why, 256, "elements[%u].name: longer than %d", i, THOTH_PM_NAME_MAX);
			status = THOTH_PM_ERR_BAD_DECLARATION;
			break;
		}
		if (e->levels.count > THOTH_PM_MAX_LEVELS || e->deps.count > THOTH_PM_MAX_DEPS) {
			snprintf(why, 256, "elements[%u]: %u levels / %u deps (limits %d / %d)", i,
				 e->levels.count, e->deps.count, THOTH_PM_MAX_LEVELS, THOTH_PM_MAX_DEPS);
			status = THOTH_PM_ERR_BAD_DECLARATION;
			break;
		}
		d->n_levels = e->levels.count;
		d->initial_level = e->initial_level;
		for (uint32_t l = 0; l < e->levels.count; l++) {
			const thoth_pm_Level_t *lv = &e->levels.items[l];
			if (!copy_str(d->levels[l].name, sizeof d->levels[l].name, lv->name)) {
				snprintf(why, 256, "elements[%u].levels[%u].name: longer than %d", i, l,
					 THOTH_PM_LEVEL_NAME_MAX);
				status = THOTH_PM_ERR_BAD_DECLARATION;
				break;
			}
			d->levels[l].power_mw = lv->power_mw;
			d->levels[l].entry_latency_us = lv->entry_latency_us;
			d->levels[l].exit_latency_us = lv->exit_latency_us;
		}
		d->n_deps = e->deps.count;
		for (uint32_t k = 0; k < e->deps.count && !status; k++) {
			const thoth_pm_Dependency_t *dep = &e->deps.items[k];
			if (!copy_str(d->deps[k].required, sizeof d->deps[k].required, dep->required)) {
				snprintf(why, 256, "elements[%u].deps[%u].required: longer than %d", i, k,
					 THOTH_PM_NAME_MAX);
				status = THOTH_PM_ERR_BAD_DECLARATION;
			}
			d->deps[k].level = dep->level;
			d->deps[k].required_level = dep->required_level;
			/* The enum is open on the wire: an unknown kind goes to the
			 * validation as it came, which refuses it by name (read as
			 * ASSERTIVE, a mistyped kind silently raised devices). */
			d->deps[k].kind = dep->kind == THOTH_PM_DEP_KIND_OPPORTUNISTIC ? THOTH_PM_OPPORTUNISTIC
					  : dep->kind == THOTH_PM_DEP_KIND_ASSERTIVE ? THOTH_PM_ASSERTIVE
					  : (thoth_pm_dep_kind_t)dep->kind;
		}
	}
	if (!status) {
		int r = thoth_pm_broker_declare(pm->broker, call->client->id, decls, n, thothd_now(call->d), ids);
		if (r) {
			snprintf(why, 256, "%s", thoth_pm_broker_refusal(pm->broker));
			if (r == THOTH_E_LIMIT)
				status = THOTH_PM_ERR_TOO_MANY;
			else if (r == THOTH_E_INVAL || r == THOTH_E_EXISTS)
				status = THOTH_PM_ERR_BAD_DECLARATION;
			else
				status = r;     /* out of memory */
		}
	}
	if (!status)
		for (uint32_t i = 0; i < n; i++)
			engine_add(pm, ids[i], &decls[i]);
	free(decls);
	if (status) {
		call->reason = why;
		thothd_info("client %llu (pid %u): pm declare refused: %s",
			    (unsigned long long)call->client->id, call->client->pid, why);
		return status;
	}
	resp->ids.items = ids;
	resp->ids.count = n;
	pm->svc_dirty |= pm->n_svc > 0;     /* a service's process may have declared them */
	name_holder(pm, call->client);
	thothd_info("client %llu (pid %u) declared %u power element%s (first: %.*s)",
		    (unsigned long long)call->client->id, call->client->pid, n, n == 1 ? "" : "s",
		    (int)req->elements.items[0].name.len, req->elements.items[0].name.ptr);
	return 0;
}

static int on_level_reached(void *self, const thoth_pm_PowerBroker_level_reached_req_t *req,
			    thoth_pm_PowerBroker_level_reached_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	thoth_pm_element_info_t info;
	if (thoth_pm_broker_element_info(pm->broker, req->element, &info))
		return THOTH_PM_ERR_NOT_FOUND;
	if (info.driver != call->client->id) {
		call->reason = "element: another connection drives it";
		return THOTH_PM_ERR_NOT_OWNER;
	}
	return map_error(call, thoth_pm_broker_level_reached(pm->broker, req->element, req->level,
							     thothd_now(call->d)));
}

static int find_element(thothd_call_t *call, thoth_str_t name, uint32_t *id)
{
	char buf[THOTH_PM_NAME_MAX + 1];
	if (!copy_str(buf, sizeof buf, name) || thoth_pm_broker_find(call->d->pm->broker, buf, id)) {
		call->reason = "element: no live element of that name";
		return THOTH_PM_ERR_NOT_FOUND;
	}
	return 0;
}

static int on_lease(void *self, const thoth_pm_PowerBroker_lease_req_t *req,
		    thoth_pm_PowerBroker_lease_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	if (req->kind != THOTH_PM_LEASE_KIND_ASSERTIVE && req->kind != THOTH_PM_LEASE_KIND_OPPORTUNISTIC) {
		/* An open enum: an unknown kind is refused, not taken as ASSERTIVE. */
		char *why = malloc(64);
		if (why)
			snprintf(why, 64, "kind: %u is neither ASSERTIVE nor OPPORTUNISTIC",
				 (unsigned)req->kind);
		call->scratch = why;            /* freed after the answer */
		call->reason = why ? why : "kind: neither ASSERTIVE nor OPPORTUNISTIC";
		return THOTH_E_INVAL;
	}
	uint32_t id;
	int r = find_element(call, req->element, &id);
	if (r)
		return r;
	name_holder(pm, call->client);
	/* Held to the fair share as a connection and with its uid's other
	 * connections (uid + 1: the broker's group 0 is none, uid 0 is root). */
	r = thoth_pm_broker_lease_in(pm->broker, call->client->id, (uint64_t)call->client->uid + 1, id,
				     req->level,
				     req->kind == THOTH_PM_LEASE_KIND_OPPORTUNISTIC ? THOTH_PM_LEASE_OPPORTUNISTIC
										    : THOTH_PM_LEASE_ASSERTIVE,
				     req->qos_us, thothd_now(call->d), &resp->lease);
	if (r == THOTH_E_LIMIT && thoth_pm_broker_lease_count(pm->broker) < PM_MAX_LEASES) {
		/* A share, not the total: counted for state(), logged once
		 * per run of refusals to that connection (a greedy client asks
		 * again and again; one flag per connection, so greedy clients
		 * taking turns do not log every call). */
		pm->share_refusals++;
		if (!call->client->pm_share_warned)
			thothd_warn("pm: client %llu (pid %u, uid %u): %s: further leases refused",
				    (unsigned long long)call->client->id, call->client->pid, call->client->uid,
				    thoth_pm_broker_refusal(pm->broker));
		call->client->pm_share_warned = true;
	}
	if (!r)
		call->client->pm_share_warned = false;  /* a new run of refusals is logged again */
	if (r)
		return map_error(call, r);
	THOTH_TRACE(PM, pm_lease_grant, resp->lease, (uint64_t)id << 32 | req->level);
	/* The status as of now; later changes come as lease_status events.
	 * A new lease is the broker's last: looked up there first, not by a
	 * scan of every lease (a third of thothd's time in a flood of leases
	 * from one client, each call a little slower than the one before). */
	uint32_t n = thoth_pm_broker_lease_count(pm->broker);
	thoth_pm_lease_info_t l;
	if (n && !thoth_pm_broker_lease_at(pm->broker, n - 1, &l) && l.id == resp->lease) {
		resp->status = (thoth_pm_LeaseStatus_t)l.status;
	} else {
		for (uint32_t i = 0; i < n; i++)
			if (!thoth_pm_broker_lease_at(pm->broker, i, &l) && l.id == resp->lease)
				resp->status = (thoth_pm_LeaseStatus_t)l.status;
	}
	update_qos(pm);
	return 0;
}

static int on_drop(void *self, const thoth_pm_PowerBroker_drop_req_t *req,
		   thoth_pm_PowerBroker_drop_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	int r = thoth_pm_broker_drop(pm->broker, call->client->id, req->lease, thothd_now(call->d));
	if (!r)
		THOTH_TRACE(PM, pm_lease_release, req->lease, PM_RELEASE_DROP);
	update_qos(pm);
	return map_error(call, r);
}

static int on_request(void *self, const thoth_pm_PowerBroker_request_req_t *req,
		      thoth_pm_PowerBroker_request_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	uint32_t id;
	int r = find_element(call, req->element, &id);
	if (r)
		return r;
	if (pm->n_reqs == pm->cap_reqs) {
		uint32_t cap = pm->cap_reqs ? pm->cap_reqs * 2 : 16;
		void *p = realloc(pm->reqs, cap * sizeof *pm->reqs);
		if (!p)
			return THOTH_E_NOMEM;
		pm->reqs = p;
		pm->cap_reqs = cap;
	}
	pm_request_t *q = &pm->reqs[pm->n_reqs];
	*q = (pm_request_t){ .requester = call->client->id, .len = req->payload.len, .element = id };
	q->payload = malloc(req->payload.len ? req->payload.len : 1);
	if (!q->payload)
		return THOTH_E_NOMEM;
	if (req->payload.len)    /* absent bytes decode as { NULL, 0 } */
		memcpy(q->payload, req->payload.ptr, req->payload.len);
	/* Recorded before the broker sees it: it may be ready at once, inside
	 * the call, before its id is returned (find_request patches the id). */
	q->id = PENDING_ID;
	pm->n_reqs++;
	name_holder(pm, call->client);
	uint64_t rid = 0;
	r = thoth_pm_broker_request_in(pm->broker, call->client->id, (uint64_t)call->client->uid + 1, id,
				       req->level, thothd_now(call->d), &rid);
	if (r == THOTH_E_LIMIT && thoth_pm_broker_request_count(pm->broker) < PM_MAX_REQUESTS) {
		/* A share, not the total: counted and logged as a lease's is
		 * (on_lease), once per run of refusals to the connection;
		 * share_refusals stays the total, as 1.3 meant it, and
		 * state() 1.4 tells the requests among them apart. */
		pm->share_refusals++;
		pm->request_share_refusals++;
		if (!call->client->pm_req_share_warned)
			thothd_warn("pm: client %llu (pid %u, uid %u): %s: further requests refused",
				    (unsigned long long)call->client->id, call->client->pid, call->client->uid,
				    thoth_pm_broker_refusal(pm->broker));
		call->client->pm_req_share_warned = true;
	}
	if (!r)
		call->client->pm_req_share_warned = false;
	q = find_request(pm, r ? PENDING_ID : rid);
	if (r) {
		if (q)
			forget_request(pm, q);
		return map_error(call, r);
	}
	resp->request = rid;
	return 0;
}

static int on_served(void *self, const thoth_pm_PowerBroker_served_req_t *req,
		     thoth_pm_PowerBroker_served_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	pm_request_t *q = find_request(pm, req->request);
	if (!q)
		return 0;               /* its requester left: nobody waits for the answer */
	/* Only the driver it was handed to answers it: request ids are
	 * sequential, and another connection's served() would hand the
	 * requester its own bytes and let the element come down unserved. */
	thoth_pm_element_info_t info;
	if (thoth_pm_broker_element_info(pm->broker, q->element, &info) ||
	    info.driver != call->client->id) {
		call->reason = "request: another connection's driver serves it";
		return THOTH_PM_ERR_NOT_OWNER;
	}
	uint64_t requester = q->requester;
	int r = thoth_pm_broker_request_done(pm->broker, req->request, thothd_now(call->d));
	if (r)
		return map_error(call, r);
	thoth_pm_PowerEvents_request_done_req_t ev = {
		.request = req->request, .ok = true,
		.result = { .ptr = req->result.ptr, .len = req->result.len },
	};
	if (requester)
		push(pm, requester, &thoth_pm_PowerEvents_request_done_info, &ev);
	forget_request(pm, q);
	return 0;
}

static int on_set_policy_level(void *self, const thoth_pm_PowerBroker_set_policy_level_req_t *req,
			       thoth_pm_PowerBroker_set_policy_level_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	uint32_t id;
	int r = find_element(call, req->element, &id);
	if (r)
		return r;
	return map_error(call, thoth_pm_broker_set_policy_level(call->d->pm->broker, id, req->level,
								thothd_now(call->d)));
}

static int on_service_qos(void *self, const thoth_pm_PowerBroker_service_qos_req_t *req,
			  thoth_pm_PowerBroker_service_qos_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	if (!thoth_registry_name_valid(req->service)) {
		call->reason = "service: not a service name (1..128 chars of [a-z0-9_.-], starting "
			       "with a letter)";
		return THOTH_PM_ERR_BAD_QOS;
	}
	if (req->qos_us == 0) {
		call->reason = "qos_us: 0 asks for nothing (a bound in microseconds, 1.."
			       "10000000)";
		return THOTH_PM_ERR_BAD_QOS;
	}
	if (req->qos_us > THOTH_PM_MAX_LATENCY_US) {
		call->reason = "qos_us: absurd (more than 10 s; the limit is 10000000 us)";
		return THOTH_PM_ERR_BAD_QOS;
	}
	uint32_t mine = 0, uids = 0;
	for (uint32_t i = 0; i < pm->n_svc; i++) {
		mine += pm->svc[i].client == call->client->id;
		uids += pm->svc[i].holder_uid == call->client->uid;
	}
	if (mine >= SVC_QOS_PER_CLIENT || uids >= SVC_QOS_PER_UID || pm->n_svc >= SVC_QOS_MAX) {
		call->reason = mine >= SVC_QOS_PER_CLIENT ? "service_qos: 16 per connection"
			       : uids >= SVC_QOS_PER_UID ? "service_qos: 192 per uid (its connections together)"
							  : "service_qos: thothd's limit of 256";
		return THOTH_PM_ERR_TOO_MANY;
	}
	if (pm->n_svc == pm->cap_svc) {
		uint32_t cap = pm->cap_svc ? pm->cap_svc * 2 : 8;
		void *p = realloc(pm->svc, cap * sizeof *pm->svc);
		if (!p)
			return THOTH_E_NOMEM;
		pm->svc = p;
		pm->cap_svc = cap;
	}
	pm_svc_qos_t *q = &pm->svc[pm->n_svc++];
	*q = (pm_svc_qos_t){
		.id = ++pm->next_svc_id, .client = call->client->id, .holder_pid = call->client->pid,
		.holder_uid = call->client->uid, .qos_us = req->qos_us, .granted_ns = thothd_now(call->d),
	};
	memcpy(q->service, req->service.ptr, req->service.len);
	q->service[req->service.len] = 0;
	name_holder(pm, call->client);
	svc_reconcile(pm, q);
	update_qos(pm);
	resp->qos = q->id;
	resp->elements = q->n;
	thothd_info("pm: service_qos %llu: pid %u asks %s to answer within %u us (%u element%s now)",
		    (unsigned long long)q->id, q->holder_pid, q->service, q->qos_us, q->n,
		    q->n == 1 ? "" : "s");
	return 0;
}

uint32_t thothd_pm_service_qos_count(const thothd_pm_t *pm)
{
	return pm ? pm->n_svc : 0;
}

static int on_drop_service_qos(void *self, const thoth_pm_PowerBroker_drop_service_qos_req_t *req,
			       thoth_pm_PowerBroker_drop_service_qos_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	for (uint32_t i = 0; i < pm->n_svc; i++) {
		pm_svc_qos_t *q = &pm->svc[i];
		if (q->id != req->qos)
			continue;
		if (q->client != call->client->id) {
			call->reason = "qos: another connection holds it";
			return THOTH_PM_ERR_NOT_OWNER;
		}
		uint64_t now = thothd_now(call->d);
		for (uint32_t k = 0; k < q->n; k++)
			if (!thoth_pm_broker_drop(pm->broker, q->client, q->lease[k], now))
				THOTH_TRACE(PM, pm_lease_release, q->lease[k], PM_RELEASE_DROP);
		*q = pm->svc[--pm->n_svc];
		update_qos(pm);
		return 0;
	}
	call->reason = "qos: no such service_qos";
	return THOTH_PM_ERR_NOT_FOUND;
}

static int on_state(void *self, const thoth_pm_PowerBroker_state_req_t *req,
		    thoth_pm_PowerBroker_state_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_pm_t *pm = call->d->pm;
	thoth_pm_broker_t *b = pm->broker;
	uint64_t now = thothd_now(call->d);
	thoth_pm_broker_account(b, now);
	uint32_t ne = thoth_pm_broker_element_count(b), nl = thoth_pm_broker_lease_count(b),
		 nk = thoth_pm_broker_keeper_count(b);
	/* One block: element, lease and keeper rows, then the per-element level rows. */
	size_t size = ne * sizeof(thoth_pm_ElementState_t) + nl * sizeof(thoth_pm_LeaseState_t) +
		      nk * sizeof(thoth_pm_Keeper_t) +
		      (size_t)ne * THOTH_PM_MAX_LEVELS * sizeof(thoth_pm_Level_t) +
		      pm->n_svc * (sizeof(thoth_pm_ServiceQos_t) + SVC_QOS_MAX_ELEMENTS * sizeof(thoth_str_t)) + 8;
	uint8_t *block = calloc(1, size);
	if (!block)
		return THOTH_E_NOMEM;
	call->scratch = block;
	thoth_pm_ElementState_t *es = (void *)block;
	thoth_pm_LeaseState_t *ls = (void *)(es + ne);
	thoth_pm_Keeper_t *ks = (void *)(ls + nl);
	thoth_pm_Level_t *lv = (void *)(ks + nk);
	thoth_pm_ServiceQos_t *sq = (void *)(lv + (size_t)ne * THOTH_PM_MAX_LEVELS);
	thoth_str_t *sq_names = (void *)(sq + pm->n_svc);
	for (uint32_t i = 0; i < ne; i++) {
		thoth_pm_element_info_t info;
		thoth_pm_broker_element_at(b, i, &info);
		thoth_pm_Level_t *levels = lv + (size_t)i * THOTH_PM_MAX_LEVELS;
		for (uint32_t l = 0; l < info.decl->n_levels; l++)
			levels[l] = (thoth_pm_Level_t){
				.name = thoth_str(info.decl->levels[l].name),
				.power_mw = info.decl->levels[l].power_mw,
				.entry_latency_us = info.decl->levels[l].entry_latency_us,
				.exit_latency_us = info.decl->levels[l].exit_latency_us,
			};
		thothd_client_t *drv = client_by_id(call->d, info.driver);
		es[i] = (thoth_pm_ElementState_t){
			.id = info.id, .name = thoth_str(info.decl->name),
			.levels = { .items = levels, .count = info.decl->n_levels },
			.current_level = info.level, .target_level = info.target,
			.transitioning = info.transitioning, .transition_to = info.transition_to,
			.dead = info.dead,
			.residency_ns = { .items = info.residency_ns, .count = info.decl->n_levels },
			.energy_mj = info.energy_mj, .transitions = info.transitions,
			.queued_requests = info.queued_requests, .driver_pid = drv ? drv->pid : 0,
			.policy_level = info.policy_level,
		};
		pm_engine_slot_t *slot = find_slot(pm, info.id);
		if (slot && slot->engine) {
			thoth_pm_engine_stats_t est;
			thoth_pm_engine_stats(slot->engine, &est);
			es[i].engine_decisions = est.decisions;
			es[i].engine_too_deep = est.too_deep;
		}
	}
	for (uint32_t i = 0; i < nl; i++) {
		thoth_pm_lease_info_t l;
		thoth_pm_element_info_t info;
		thoth_pm_broker_lease_at(b, i, &l);
		thoth_pm_broker_element_info(b, l.element, &info);
		thothd_client_t *h = client_by_id(call->d, l.holder);
		ls[i] = (thoth_pm_LeaseState_t){
			.lease = l.id, .element = thoth_str(info.decl->name), .level = l.level,
			.kind = (thoth_pm_LeaseKind_t)l.kind, .qos_us = l.qos_us,
			.status = (thoth_pm_LeaseStatus_t)l.status, .holder_pid = h ? h->pid : 0,
			.granted_ns = l.granted_ns,
		};
	}
	for (uint32_t i = 0; i < nk; i++) {
		thoth_pm_keeper_info_t k;
		thoth_pm_element_info_t info;
		thoth_pm_broker_keeper_at(b, i, &k);
		thoth_pm_broker_element_info(b, k.element, &info);
		ks[i] = (thoth_pm_Keeper_t){
			.element = thoth_str(info.decl->name), .holder = thoth_str(k.name),
			.awake_ns = k.awake_ns, .energy_mj = k.energy_mj,
		};
	}
	resp->elements.items = es;
	resp->elements.count = ne;
	resp->leases.items = ls;
	resp->leases.count = nl;
	resp->keepers.items = ks;
	resp->keepers.count = nk;
	for (uint32_t i = 0; i < pm->n_svc; i++) {
		const pm_svc_qos_t *q = &pm->svc[i];
		thoth_str_t *names = sq_names + (size_t)i * SVC_QOS_MAX_ELEMENTS;
		uint32_t n = 0;
		for (uint32_t k = 0; k < q->n; k++) {
			thoth_pm_element_info_t info;
			if (!thoth_pm_broker_element_info(b, q->element[k], &info))
				names[n++] = thoth_str(info.decl->name);
		}
		sq[i] = (thoth_pm_ServiceQos_t){
			.qos = q->id, .service = thoth_str(q->service), .qos_us = q->qos_us,
			.holder_pid = q->holder_pid, .elements = { .items = names, .count = n },
			.granted_ns = q->granted_ns,
		};
	}
	resp->services.items = sq;
	resp->services.count = pm->n_svc;
	resp->qos_us = lease_bound_us(pm);
	resp->now_ns = now;
	resp->lease_limit = PM_MAX_LEASES;
	resp->share_refusals = pm->share_refusals;
	resp->request_share_refusals = pm->request_share_refusals;
	update_qos(pm);                 /* what is held as of now */
	resp->cpu = (thoth_pm_CpuQos_t){
		.request_us = pm->cpu_req.request_us, .lease_us = resp->qos_us,
		.hint_us = pm->cpu_req.hint_us, .why = pm->cpu_req.why,
		.hint_state = thoth_str(pm->cpu_req.state_name),
		.next_wake_ns = pm->cpu_next_wake_ns == THOTH_PM_NONE ? 0 : pm->cpu_next_wake_ns,
		.idle_driver = thoth_str(pm->idle_driver), .idle_states = pm->cpu ? pm->idle_states : 0,
		.error = thoth_str(pm->qos_failed ? thoth_pm_qos_error(pm->qos) : pm->hints_off),
		.decided_ns = pm->cpu_decided_ns,
	};
	return thothd_reserve_response(call, &thoth_pm_PowerBroker_state_info, resp);
}

const thoth_pm_PowerBroker_handlers_t thothd_pm_handlers = {
	.declare = on_declare,
	.level_reached = on_level_reached,
	.lease = on_lease,
	.drop = on_drop,
	.request = on_request,
	.served = on_served,
	.set_policy_level = on_set_policy_level,
	.state = on_state,
	.service_qos = on_service_qos,
	.drop_service_qos = on_drop_service_qos,
};
