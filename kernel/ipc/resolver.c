/*
 * resolver.c - a client's cache of where a service runs (thoth_resolver_*,
 * include/thoth/service.h).
 *
 * Picking an instance never talks to thothd: it reads the cache.  The
 * cache is kept true in the background over one control link
 * (control_link.h) on the caller's loop:
 *
 *   link up:   Registry.watch(NAME); once it is answered, Registry.list(NAME):
 *              the list is a snapshot taken after the watch began, so no
 *              change can fall between the two.
 *   pushes:    RegistryEvents.changed ADDED / REMOVED / EXPIRED update the
 *              cache as thothd sees services come and go (a service that
 *              dies is removed the moment thothd sees its connection close).
 *   link down: nothing is dropped.  Channels already open keep working
 *              without thothd, and the entries say where to reconnect.
 *   link up again (a restarted thothd): entries not yet seen in the new
 *              thothd's list or events are kept "unconfirmed" for a grace
 *              period (services re-register within ~1 s of thothd's
 *              return), then dropped if still unseen.
 *
 * How stale an entry can be: while connected, as old as thothd's last push
 * (sub-millisecond after a change); while thothd is away, as old as
 * thothd's departure, until it is back plus the grace period.  A caller
 * whose channel to an entry fails calls thoth_resolver_forget() and the
 * entry is gone at once, so a dead instance costs one failed connect.
 *
 * While connected and with nothing changing, no timer is armed: an idle
 * client does not wake up.
 *
 * A latency bound for the service (thoth_resolver_set_qos, PM-2) rides the
 * same link: PowerBroker.service_qos after the watch, again on every new
 * connection.  thothd holds it for the link's life, so the client's exit,
 * kill -9 included, or thoth_resolver_free releases it.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_link.h"
#include "resolver_internal.h"
#include "log_internal.h"
#include "pm.thoth.h"
#include "thoth/contract.h"
#include "registry.thoth.h"
#include "thoth/service.h"

enum {
	ANSWER_TIMEOUT_MS = 2000,
	DEFAULT_GRACE_MS = 2000,
	MAX_ENTRIES = 1024,             /* a bound on what a hostile thothd can make us hold */
	MAX_CLAIMS = 8,                 /* interface claims kept per entry (the first ones) */
};

/* What the contract check compares of an interface claim
 * (thoth_contract_compatible: the names only go into its reason). */
typedef struct claim {
	uint32_t interface_id;
	uint8_t major, minor;
	uint64_t schema_hash;
} claim_t;

typedef struct entry {
	thoth_resolved_t info;
	uint64_t lease;
	thoth_resolved_load_t load;     /* SCALE-3: the instance's last load report */
	claim_t claims[MAX_CLAIMS];
	uint32_t n_claims;
	/* Another host's instance whose claims conflict with an instance of
	 * this host in the cache: thothd's resolve rule (registry.c,
	 * remote_conflicts) applied here too, so pick hands it out last and
	 * the snapshot (pools) leaves it out. */
	bool conflicts;
} entry_t;

struct thoth_resolver {
	thoth_loop_t *loop;
	char *name;
	uint32_t min_major, min_minor, min_patch;
	bool any_version;
	uint32_t grace_ms;
	void (*on_change)(void *arg);
	void *arg;
	thoth__link_t *link;
	entry_t *entries;
	size_t n, cap;
	size_t rr;                      /* round robin among equally good */
	uint16_t numa_node;
	uint32_t watch_id_req, list_req, next_id;
	bool claims_dirty;              /* entries came or went: conflicts to work out again */
	bool speaks;                    /* SPOKEN is the user's claim (thoth__resolver_speaks) */
	claim_t spoken;
	bool listed;                    /* the current connection's list arrived */
	bool list_pending;
	thoth_timer_t *grace;           /* armed once after a reconnect */
	uint32_t connects;
	/* PM-2: the latency bound attached to this resolve (0: none). */
	uint32_t qos_us;
	uint32_t qos_req;               /* the service_qos in flight (0: none) */
	uint32_t qos_drop_req;          /* the drop_service_qos in flight (0: none) */
	uint64_t qos_id;                /* thothd's record on this connection (0: none) */
	thoth_resolver_qos_t qos;       /* what thoth_resolver_qos reports */
};

static bool parse_version(thoth_str_t s, uint32_t *major, uint32_t *minor, uint32_t *patch)
{
	char buf[64];
	if (s.len == 0 || s.len >= sizeof buf)
		return false;
	memcpy(buf, s.ptr, s.len);
	buf[s.len] = 0;
	char tail;
	return sscanf(buf, "%u.%u.%u%c", major, minor, patch, &tail) == 3;
}

/* Same major, and at least the minimum (the rule thothd's resolve uses). */
static bool version_ok(const thoth_resolver_t *r, thoth_str_t v)
{
	if (r->any_version)
		return true;
	uint32_t ma, mi, pa;
	if (!parse_version(v, &ma, &mi, &pa) || ma != r->min_major)
		return false;
	if (mi != r->min_minor)
		return mi > r->min_minor;
	return pa >= r->min_patch;
}

static bool wanted(const thoth_resolver_t *r, const thoth_registry_Instance_t *in)
{
	const thoth_registry_Registration_t *reg = &in->registration;
	size_t n = strlen(r->name);
	return reg->name.len == n && memcmp(reg->name.ptr, r->name, n) == 0 &&
	       version_ok(r, reg->version) && reg->endpoint.addr.len > 0 &&
	       reg->endpoint.addr.len < sizeof ((thoth_resolved_t *)0)->addr;
}

static entry_t *find(thoth_resolver_t *r, const char *addr, size_t len)
{
	for (size_t i = 0; i < r->n; i++)
		if (strlen(r->entries[i].info.addr) == len && memcmp(r->entries[i].info.addr, addr, len) == 0)
			return &r->entries[i];
	return NULL;
}

static void remove_at(thoth_resolver_t *r, size_t i)
{
	r->entries[i] = r->entries[--r->n];
	r->claims_dirty = true;
}

/* Field by field: claim_t has padding, which memcmp would compare. */
static bool same_claim(const claim_t *a, const claim_t *b)
{
	return a->interface_id == b->interface_id && a->major == b->major && a->minor == b->minor &&
	       a->schema_hash == b->schema_hash;
}

static bool claims_conflict(const claim_t *a, const claim_t *b)
{
	thoth_contract_claim_t x = { .package = "", .interface = "", .interface_id = a->interface_id,
				     .major = a->major, .minor = a->minor, .schema_hash = a->schema_hash };
	thoth_contract_claim_t y = { .package = "", .interface = "", .interface_id = b->interface_id,
				     .major = b->major, .minor = b->minor, .schema_hash = b->schema_hash };
	return thoth_contract_compatible(&x, &y, NULL, 0) != 0;
}

/*
 * Mark each remote entry whose claims conflict with a claim of one of this
 * host's entries of the name, as thothd's resolve does (a rolling upgrade:
 * another host's 2.x beside this host's 1.x; without this, a client pool
 * connected to it and its TCP hello was refused, again at every retry).
 * The local claims are gathered once, without repeats, then each remote
 * entry's are compared with them: O(entries x distinct local claims).
 */
static void mark_conflicts(thoth_resolver_t *r)
{
	r->claims_dirty = false;
	if (r->speaks) {
		/* The user's own claim decides, on any host: a 2.x pool on a
		 * host running 1.x takes another host's 2.x, and a 1.x pool
		 * never connects to a 2.x, local instance or not. */
		for (size_t i = 0; i < r->n; i++) {
			entry_t *e = &r->entries[i];
			e->conflicts = false;
			for (uint32_t k = 0; k < e->n_claims && !e->conflicts; k++)
				e->conflicts = e->claims[k].interface_id == r->spoken.interface_id &&
					       claims_conflict(&e->claims[k], &r->spoken);
		}
		return;
	}
	claim_t local[64];
	size_t n_local = 0;
	bool all_local = true;          /* every distinct local claim is in LOCAL */
	for (size_t i = 0; i < r->n; i++) {
		const entry_t *e = &r->entries[i];
		if (e->info.locality == THOTH_LOCALITY_REMOTE)
			continue;
		for (uint32_t k = 0; k < e->n_claims; k++) {
			size_t j = 0;
			while (j < n_local && !same_claim(&local[j], &e->claims[k]))
				j++;
			if (j < n_local)
				continue;
			if (n_local == sizeof local / sizeof local[0])
				all_local = false;
			else
				local[n_local++] = e->claims[k];
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		entry_t *e = &r->entries[i];
		e->conflicts = false;
		if (e->info.locality != THOTH_LOCALITY_REMOTE)
			continue;
		for (uint32_t k = 0; k < e->n_claims && !e->conflicts; k++)
			for (size_t j = 0; j < n_local && !e->conflicts; j++)
				e->conflicts = local[j].interface_id == e->claims[k].interface_id &&
					       claims_conflict(&local[j], &e->claims[k]);
		/* More distinct local claims than gathered: the rest, the slow way. */
		for (size_t l = 0; !all_local && !e->conflicts && l < r->n; l++) {
			const entry_t *o = &r->entries[l];
			if (o->info.locality == THOTH_LOCALITY_REMOTE)
				continue;
			for (uint32_t k = 0; k < e->n_claims && !e->conflicts; k++)
				for (uint32_t j = 0; j < o->n_claims && !e->conflicts; j++)
					e->conflicts = o->claims[j].interface_id == e->claims[k].interface_id &&
						       claims_conflict(&o->claims[j], &e->claims[k]);
		}
	}
}

static void changed(thoth_resolver_t *r)
{
	if (r->claims_dirty)
		mark_conflicts(r);
	if (r->on_change)
		r->on_change(r->arg);
}

/* An instance thothd announced (list or ADDED): now confirmed. */
static void upsert(thoth_resolver_t *r, const thoth_registry_Instance_t *in)
{
	if (!wanted(r, in))
		return;
	const thoth_common_Endpoint_t *ep = &in->registration.endpoint;
	entry_t *e = find(r, (const char *)ep->addr.ptr, ep->addr.len);
	if (!e) {
		if (r->n == MAX_ENTRIES)
			return;
		if (r->n == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 8;
			entry_t *p = realloc(r->entries, cap * sizeof *p);
			if (!p)
				return;         /* keep what we have: a missed entry, not a crash */
			r->entries = p;
			r->cap = cap;
		}
		e = &r->entries[r->n++];
		memset(e, 0, sizeof *e);
		memcpy(e->info.addr, ep->addr.ptr, ep->addr.len);
		e->info.addr[ep->addr.len] = 0;
	}
	e->info.pid = ep->pid;
	e->info.numa_node = ep->numa_node;
	e->info.instance_id = ep->instance_id;
	e->info.confirmed = true;
	e->info.host[0] = 0;
	if (ep->locality == THOTH_COMMON_LOCALITY_REMOTE) {
		/* Another host's (issue 19): its name is the HOST of "tcp:HOST:PORT". */
		e->info.locality = THOTH_LOCALITY_REMOTE;
		const char *h = e->info.addr + (strncmp(e->info.addr, "tcp:", 4) == 0 ? 4 : 0);
		const char *end = strrchr(h, ':');
		size_t hl = end ? (size_t)(end - h) : strlen(h);
		if (*h == '[' && hl >= 2) {
			h++;
			hl -= 2;
		}
		if (hl >= sizeof e->info.host)
			hl = sizeof e->info.host - 1;
		memcpy(e->info.host, h, hl);
		e->info.host[hl] = 0;
	} else {
		e->info.locality = ep->numa_node == r->numa_node ? THOTH_LOCALITY_NODE : THOTH_LOCALITY_HOST;
	}
	e->lease = in->lease;
	e->load.utilization_permille = in->utilization_permille;
	e->load.qps = in->qps;
	const thoth_common_InterfaceClaim_list_t *cl = &in->registration.claims;
	e->n_claims = cl->count < MAX_CLAIMS ? cl->count : MAX_CLAIMS;
	for (uint32_t k = 0; k < e->n_claims; k++)
		e->claims[k] = (claim_t){ .interface_id = cl->items[k].interface_id,
					  .major = cl->items[k].major, .minor = cl->items[k].minor,
					  .schema_hash = cl->items[k].schema_hash };
	r->claims_dirty = true;
}

static void drop_unconfirmed(thoth_resolver_t *r)
{
	bool any = false;
	for (size_t i = r->n; i-- > 0;)
		if (!r->entries[i].info.confirmed) {
			remove_at(r, i);
			any = true;
		}
	if (any)
		changed(r);
}

static void grace_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_resolver_t *r = arg;
	thoth_timer_cancel(loop, timer);
	r->grace = NULL;
	if (thoth__link_is_up(r->link) && r->listed)
		drop_unconfirmed(r);
}

static uint32_t next_id(thoth_resolver_t *r)
{
	if (++r->next_id == 0)
		r->next_id = 1;
	return r->next_id;
}

/* Ask for the current instances; the answer is merged into the cache. */
static int send_list(thoth_resolver_t *r)
{
	if (r->list_pending)
		return 0;
	thoth_registry_Registry_list_req_t l = { .prefix = thoth_str(r->name),
						 .locality = THOTH_COMMON_LOCALITY_ANY };
	r->list_req = next_id(r);
	int e = thoth__link_send(r->link, &thoth_registry_Registry_list_info, &l, r->list_req);
	if (!e)
		e = thoth__link_deadline(r->link, ANSWER_TIMEOUT_MS);
	if (!e)
		r->list_pending = true;
	return e;
}

static int send_qos(thoth_resolver_t *r)
{
	thoth_pm_PowerBroker_service_qos_req_t q = { .service = thoth_str(r->name), .qos_us = r->qos_us };
	r->qos_req = next_id(r);
	r->qos.state = THOTH_RESOLVER_QOS_PENDING;
	return thoth__link_send(r->link, &thoth_pm_PowerBroker_service_qos_info, &q, r->qos_req);
}

/* thothd's answer to service_qos: held, or refused with its reason (a
 * refusal is kept and reported, never a reason to drop the link). */
static void got_qos(thoth_resolver_t *r, const uint8_t *msg, size_t len)
{
	r->qos_req = 0;
	uint32_t code = 0;
	char why[sizeof r->qos.why];
	int e = thoth__link_error_of(msg, len, &code, why, sizeof why);
	if (e == 0) {
		uint64_t scratch[16];
		thoth_arena_t arena;
		thoth_arena_init(&arena, scratch, sizeof scratch);
		thoth_pm_PowerBroker_service_qos_resp_t resp;
		e = thoth_method_decode(&thoth_pm_PowerBroker_service_qos_info, true, msg, len, &resp, &arena);
		if (!e) {
			r->qos_id = resp.qos;
			r->qos.state = THOTH_RESOLVER_QOS_HELD;
			r->qos.elements = resp.elements;
			r->qos.grants++;
			r->qos.why[0] = 0;
			return;
		}
		snprintf(why, sizeof why, "undecodable answer: %s", thoth_strerror(e));
	} else if (e < 0) {
		snprintf(why, sizeof why, "malformed answer: %s", thoth_strerror(e));
	}
	r->qos.state = THOTH_RESOLVER_QOS_REFUSED;
	snprintf(r->qos.why, sizeof r->qos.why, "%s", why);
	thoth__log(THOTH_LOG_WARN, "resolver", "%s: thothd refused the latency bound of %u us: %s",
		   r->name, r->qos_us, r->qos.why);
}

static void link_up(void *arg)
{
	thoth_resolver_t *r = arg;
	r->connects++;
	r->listed = false;
	for (size_t i = 0; i < r->n; i++)
		r->entries[i].info.confirmed = false;   /* until this thothd says so */
	thoth_registry_Registry_watch_req_t w = { .prefix = thoth_str(r->name) };
	r->watch_id_req = next_id(r);
	r->list_pending = false;
	int e = thoth__link_send(r->link, &thoth_registry_Registry_watch_info, &w, r->watch_id_req);
	if (!e)
		e = thoth__link_deadline(r->link, ANSWER_TIMEOUT_MS);
	r->qos_id = 0;                  /* a new connection holds nothing yet */
	if (!e && r->qos_us)
		e = send_qos(r);        /* answered before the list: the watch's deadline covers it */
	if (e)
		thoth__link_drop(r->link, e, "cannot send to thothd");
}

static void link_down(void *arg, int err, const char *why)
{
	thoth_resolver_t *r = arg;
	thoth__log(THOTH_LOG_WARN, "resolver", "%s: no thothd (%s); %zu cached instance(s) kept",
		   r->name, why, r->n);
	r->listed = false;
	r->list_pending = false;
	r->qos_req = 0;
	r->qos_drop_req = 0;
	r->qos_id = 0;                  /* thothd released it with the connection */
	if (r->qos_us)
		r->qos.state = THOTH_RESOLVER_QOS_PENDING;
	if (r->grace) {                 /* gone again before the grace ended: keep all */
		thoth_timer_cancel(r->loop, r->grace);
		r->grace = NULL;
	}
}

static void got_list(thoth_resolver_t *r, const uint8_t *msg, size_t len)
{
	r->list_pending = false;
	thoth__link_deadline(r->link, 0);
	/* Decoded lists live in an arena; a few times the message is plenty. */
	size_t cap = 2 * len + 4096;
	uint64_t *scratch = malloc(cap);
	if (!scratch) {
		thoth__link_drop(r->link, THOTH_E_NOMEM, "no memory for thothd's list");
		return;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, cap);
	thoth_registry_Registry_list_resp_t resp;
	int e = thoth_method_decode(&thoth_registry_Registry_list_info, true, msg, len, &resp, &arena);
	if (e) {
		free(scratch);
		thoth__link_drop(r->link, e, "thothd sent an undecodable list");
		return;
	}
	for (uint32_t i = 0; i < resp.instances.count; i++)
		upsert(r, &resp.instances.items[i]);
	free(scratch);
	r->listed = true;
	bool stale = false;
	for (size_t i = 0; i < r->n; i++)
		stale |= !r->entries[i].info.confirmed;
	if (stale && !r->grace) {
		/* From before thothd went: give their services time to register
		 * again, picking confirmed entries first meanwhile. */
		uint64_t ns = (uint64_t)r->grace_ms * 1000000ull;
		if (thoth_loop_add_timer_in(r->loop, ns, ns / 10, grace_fired, r, &r->grace))
			drop_unconfirmed(r);    /* no timer: do not keep them forever */
	}
	changed(r);
}

static void got_event(thoth_resolver_t *r, const uint8_t *msg, size_t len)
{
	uint64_t scratch[512];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_registry_RegistryEvents_changed_req_t ev;
	if (thoth_method_decode(&thoth_registry_RegistryEvents_changed_info, false, msg, len, &ev,
				&arena))
		return;                 /* some other push: not ours */
	if (!wanted(r, &ev.instance))
		return;
	if (ev.kind == THOTH_REGISTRY_CHANGE_KIND_ADDED) {
		upsert(r, &ev.instance);
	} else if (ev.kind == THOTH_REGISTRY_CHANGE_KIND_LOAD) {
		const thoth_str_t *addr = &ev.instance.registration.endpoint.addr;
		entry_t *e = find(r, (const char *)addr->ptr, addr->len);
		if (!e || e->lease != ev.instance.lease)
			return;
		e->load.utilization_permille = ev.instance.utilization_permille;
		e->load.qps = ev.instance.qps;
		e->load.reports++;
	} else if (ev.kind == THOTH_REGISTRY_CHANGE_KIND_REMOVED ||
		   ev.kind == THOTH_REGISTRY_CHANGE_KIND_EXPIRED) {
		const thoth_str_t *addr = &ev.instance.registration.endpoint.addr;
		entry_t *e = find(r, (const char *)addr->ptr, addr->len);
		if (!e || e->lease != ev.instance.lease)
			return;         /* an older registration at that address */
		remove_at(r, (size_t)(e - r->entries));
	}
	changed(r);
}

static void link_message(void *arg, const uint8_t *msg, size_t len)
{
	thoth_resolver_t *r = arg;
	uint16_t flags = thoth__link_flags(msg, len);
	uint32_t id = thoth__link_request_id(msg, len);
	if (flags & THOTH_MSG_RESPONSE) {
		if (id && id == r->qos_req) {
			got_qos(r, msg, len);
			return;
		}
		if (id && id == r->qos_drop_req) {
			r->qos_drop_req = 0;    /* nothing waits for it (set_qos) */
			return;
		}
		uint32_t code;
		char why[160];
		int e = thoth__link_error_of(msg, len, &code, why, sizeof why);
		if (e != 0) {
			thoth__link_drop(r->link, e < 0 ? e : THOTH_E_REMOTE, e < 0 ? "bad answer" : why);
			return;
		}
		if (id == r->list_req) {
			got_list(r, msg, len);
		} else if (id == r->watch_id_req) {
			/* Watching now: the list asked for after this cannot miss a
			 * change.  (Sent only now, it is also traced when a trace
			 * session runs: thothd has switched our tracing on while
			 * handling the attach that preceded the watch.) */
			e = send_list(r);
			if (e)
				thoth__link_drop(r->link, e, "cannot send to thothd");
		}
		return;
	}
	if (flags & THOTH_MSG_REQUEST)
		got_event(r, msg, len);
}

static const thoth__link_ops_t resolver_link_ops = {
	.up = link_up,
	.message = link_message,
	.down = link_down,
};

int thoth_resolver_new(thoth_loop_t *loop, const thoth_resolver_config_t *cfg,
		       thoth_resolver_t **out)
{
	if (!loop || !cfg || !cfg->name || !*cfg->name || !out)
		return THOTH_E_INVAL;
	thoth_resolver_t *r = calloc(1, sizeof *r);
	if (!r)
		return THOTH_E_NOMEM;
	r->loop = loop;
	r->name = strdup(cfg->name);
	r->grace_ms = cfg->grace_ms ? cfg->grace_ms : DEFAULT_GRACE_MS;
	r->on_change = cfg->on_change;
	r->arg = cfg->arg;
	const char *min = cfg->min_version ? cfg->min_version : "";
	r->any_version = !*min;
	if (!r->any_version &&
	    !parse_version(thoth_str(min), &r->min_major, &r->min_minor, &r->min_patch)) {
		free(r->name);
		free(r);
		return THOTH_E_INVAL;
	}
	unsigned cpu = 0, node = 0;
	if (getcpu(&cpu, &node) == 0)
		r->numa_node = (uint16_t)node;
	int e = r->name ? thoth__link_new(loop, cfg->runtime_dir, &resolver_link_ops, r, &r->link)
			: THOTH_E_NOMEM;
	if (e) {
		free(r->name);
		free(r);
		return e;
	}
	*out = r;
	thoth__link_start(r->link);
	return 0;
}

void thoth_resolver_free(thoth_resolver_t *r)
{
	if (!r)
		return;
	thoth__link_free(r->link);
	if (r->grace)
		thoth_timer_cancel(r->loop, r->grace);
	free(r->entries);
	free(r->name);
	free(r);
}

/* Lower is better: confirmed before unconfirmed, this host before another
 * (issue 19), then same NUMA node; another host's instance that conflicts
 * with one of this host's last of all (thothd's rule, mark_conflicts). */
static unsigned rank(const thoth_resolver_t *r, const entry_t *e)
{
	return (e->conflicts ? 8u : 0u) + (e->info.confirmed ? 0u : 4u) + (e->info.locality == THOTH_LOCALITY_REMOTE ? 2u : 0u) +
	       (e->info.numa_node == r->numa_node ? 0u : 1u);
}

int thoth_resolver_pick(thoth_resolver_t *r, thoth_resolved_t *out)
{
	if (!r->n)
		return THOTH_E_NOT_FOUND;
	unsigned best = UINT32_MAX;
	size_t count = 0;
	for (size_t i = 0; i < r->n; i++) {
		unsigned k = rank(r, &r->entries[i]);
		if (k < best) {
			best = k;
			count = 0;
		}
		count += k == best;
	}
	size_t want = r->rr++ % count;
	for (size_t i = 0; i < r->n; i++) {
		if (rank(r, &r->entries[i]) != best)
			continue;
		if (want-- == 0) {
			*out = r->entries[i].info;
			return 0;
		}
	}
	return THOTH_E_NOT_FOUND;       /* not reached */
}

void thoth_resolver_forget(thoth_resolver_t *r, const char *addr)
{
	entry_t *e = addr ? find(r, addr, strlen(addr)) : NULL;
	if (!e)
		return;
	remove_at(r, (size_t)(e - r->entries));
	/* Revalidate: if thothd still lists it (alive, its channel refused us
	 * for another reason), it comes back confirmed.  One request per
	 * forget, never periodic. */
	if (thoth__link_is_up(r->link) && r->listed) {
		int err = send_list(r);
		if (err)
			thoth__link_drop(r->link, err, "cannot send to thothd");
	}
	changed(r);
}

void thoth__resolver_speaks(thoth_resolver_t *r, const thoth_interface_info_t *iface)
{
	if (!r || !iface)
		return;
	r->spoken = (claim_t){ .interface_id = iface->id, .major = iface->major, .minor = iface->minor,
			       .schema_hash = iface->schema_hash };
	r->speaks = true;
	mark_conflicts(r);
}

size_t thoth_resolver_snapshot(const thoth_resolver_t *r, thoth_resolved_t *out,
			       thoth_resolved_load_t *load, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (r->entries[i].conflicts)
			continue;       /* conflicting with the user's claim, or another host's
					 * conflicting with this host's (mark_conflicts) */
		if (n < cap && out)
			out[n] = r->entries[i].info;
		if (n < cap && load)
			load[n] = r->entries[i].load;
		n++;
	}
	return n;
}

int thoth_resolver_set_qos(thoth_resolver_t *r, uint32_t latency_us)
{
	if (!r || latency_us > 10000000u)
		return THOTH_E_INVAL;
	if (latency_us == r->qos_us)
		return 0;
	r->qos_us = latency_us;
	r->qos = (thoth_resolver_qos_t){ .qos_us = latency_us, .grants = r->qos.grants,
					 .state = latency_us ? THOTH_RESOLVER_QOS_PENDING
							     : THOTH_RESOLVER_QOS_NONE };
	if (!thoth__link_is_up(r->link))
		return 0;               /* sent when the link comes up */
	int e = 0;
	if (r->qos_id) {
		/* The old bound goes first; its answer is not waited for. */
		thoth_pm_PowerBroker_drop_service_qos_req_t d = { .qos = r->qos_id };
		r->qos_id = 0;
		r->qos_drop_req = next_id(r);
		e = thoth__link_send(r->link, &thoth_pm_PowerBroker_drop_service_qos_info, &d, r->qos_drop_req);
	}
	if (!e && latency_us)
		e = send_qos(r);
	if (e)
		thoth__link_drop(r->link, e, "cannot send to thothd");
	return 0;
}

void thoth_resolver_qos(const thoth_resolver_t *r, thoth_resolver_qos_t *out)
{
	*out = r->qos;
	out->qos_us = r->qos_us;
}

size_t thoth_resolver_count(const thoth_resolver_t *r)
{
	return r->n;
}

bool thoth_resolver_connected(const thoth_resolver_t *r)
{
	return thoth__link_is_up(r->link) && r->listed;
}
