/*
 * broker.c - the power broker core (broker.h; the invariants are listed
 * there and in docs/PM.md).
 *
 * After every change the broker reconverges (converge()):
 *   1. targets: each element's wanted level (assertive leases, requests,
 *      latency bounds, else the policy level), raised by what its dependents
 *      assert and capped where an opportunistic or dead dependency cannot be
 *      met; caps only fall, so the iteration ends.
 *   2. transitions: an element moves towards its target only when the move
 *      is safe now: a raise when every dependency of the new level is
 *      already met, a lower when no dependent still needs the old level.
 *      Anything else waits for a level_reached() that unblocks it.  This is
 *      the whole of "dependencies first on the way up, reverse order on the
 *      way down".
 *   3. dead elements nobody needs any more are removed, then 1-2 again.
 *   4. lease status and ready requests are reported.
 *
 * Graphs are small (a machine has tens of power elements), so everything
 * about elements is a linear scan over arrays; elements are individually
 * allocated so that dependency pointers stay valid.  Leases are many (one
 * per client and resource, up to max_leases), so no lease call scans them:
 * each element keeps its leases on a list and counts what converge needs
 * of them (assertive leases and latency floors per level, the holders it
 * credits), a hash finds a lease by id, and report looks only at the leases
 * of elements whose level moved (docs/PM.md, "Cost of a lease call").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "thoth/error.h"

#define KEEPERS_MAX 32                  /* holders credited per element per interval */
#define KEEPER_STATS_MAX 64             /* keeper rows per element; more go to holder 0 */
#define HOLDER_NAMES_MAX 1024
#define OTHERS UINT64_MAX               /* keeper row of holders past KEEPER_STATS_MAX */
#define NONE UINT32_MAX                 /* no lease (list links, lookups) */

/* A holder of assertive leases above level 0 on an element, credited as
 * its keeper, and how many such leases it holds there. */
typedef struct lease_keeper {
	uint64_t holder;
	uint32_t n;
} lease_keeper_t;

typedef struct keeper_stat {
	uint64_t holder;
	uint64_t awake_ns;
	double energy_mj;
} keeper_stat_t;

typedef struct elem {
	uint32_t id;
	uint64_t driver;
	thoth_pm_element_decl_t decl;
	struct elem *req[THOTH_PM_MAX_DEPS];    /* bound dependency targets (NULL: gone) */
	uint32_t level, to;
	bool transitioning, dead;
	uint32_t policy;
	uint64_t transitions;
	uint64_t residency_ns[THOTH_PM_MAX_LEVELS];
	double energy_mj;
	keeper_stat_t *keepers;
	uint32_t n_keepers;
	/* converge() scratch */
	uint32_t want, cap, t, required;
	bool asserted;
	int idle_reported;              /* -1: not yet, else the last idle reported */
	uint64_t keeper_ids[KEEPERS_MAX];
	uint32_t n_keeper_ids;
	/* Its leases (maintained by add_lease / remove_lease) */
	uint32_t lease_head, lease_tail;        /* indices into b->leases, NONE-ended */
	uint32_t n_assert_at[THOTH_PM_MAX_LEVELS];     /* assertive leases per level */
	uint32_t n_floor_at[THOTH_PM_MAX_LEVELS];      /* latency bounds per level they floor it at */
	uint32_t n_assertive;
	lease_keeper_t lease_keepers[KEEPERS_MAX];     /* the first holders, in arrival order */
	uint32_t n_lease_keepers;
	uint32_t keeper_overflow;       /* their leases by holders past KEEPERS_MAX */
	bool keepers_stale;             /* a keeper left while others waited: rebuild */
	uint32_t reported_lo;           /* occ_lo() when its leases' status was last reported */
} elem_t;

typedef struct lease {
	uint64_t id, holder;
	uint64_t group;                 /* the holder's group (0: none) */
	bool internal;                  /* thoth_pm_broker_lease_internal: outside the shares, uncounted */
	elem_t *e;
	uint32_t level, qos_us;
	thoth_pm_lease_kind_t kind;
	thoth_pm_lease_status_t status;
	uint64_t granted_ns;
	uint32_t floor;                 /* qos_floor() of qos_us, when qos_us */
	uint32_t prev, next;            /* its element's list */
} lease_t;

typedef struct request {
	uint64_t id, holder, group;
	elem_t *e;
	uint32_t level;
	bool ready;
} request_t;

/* Leases per holder and per holder group (for the fair share): open
 * addressing by key, an entry removed when it reaches 0, so a table holds
 * one entry per holder (group) of leases. */
typedef struct key_count {
	uint64_t key;                   /* 0: empty (0 is never a holder or group) */
	uint32_t n;
} key_count_t;

typedef struct count_table {
	key_count_t *e;
	uint32_t cap;                   /* a power of 2, > 2 x n; 0 before the first */
	uint32_t n;
} count_table_t;

typedef struct holder_name {
	uint64_t holder;
	char name[48];
} holder_name_t;

struct thoth_pm_broker {
	thoth_pm_broker_ops_t ops;
	thoth_pm_broker_limits_t lim;
	elem_t **elems;                 /* declaration order */
	elem_t **order;                 /* dependents before what they depend on */
	uint32_t n_elems;
	uint32_t next_elem_id;
	lease_t *leases;
	uint32_t n_leases, cap_leases;
	uint32_t *by_id;                /* open addressing: lease index + 1, 0 empty */
	uint32_t by_id_cap;             /* a power of 2, > 2 x n_leases; 0 before the first */
	uint32_t new_lease;             /* added since the last report (NONE: none) */
	count_table_t per_holder;       /* leases per holder */
	count_table_t per_group;        /* leases per holder group (thothd: per uid) */
	count_table_t req_per_holder;   /* requests queued or in service, per holder */
	count_table_t req_per_group;    /* the same per holder group */
	uint32_t qos_min, qos_min_n;    /* the tightest bound and how many leases have it */
	uint64_t qos_scans;             /* qos_rescan calls (thoth_pm_broker_qos_scans) */
	request_t *reqs;                /* FIFO: submission order */
	uint32_t n_reqs, cap_reqs;
	uint64_t next_id;               /* leases and requests */
	holder_name_t *names;
	uint32_t n_names;
	uint64_t accounted_ns;
	char refusal[256];
};

static int refuse(thoth_pm_broker_t *b, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void converge(thoth_pm_broker_t *b);

static int refuse(thoth_pm_broker_t *b, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->refusal, sizeof b->refusal, fmt, ap);
	va_end(ap);
	return code;
}

const char *thoth_pm_broker_refusal(const thoth_pm_broker_t *b)
{
	return b->refusal;
}

static uint32_t occ_hi(const elem_t *e)
{
	return e->transitioning && e->to > e->level ? e->to : e->level;
}

static uint32_t occ_lo(const elem_t *e)
{
	return e->transitioning && e->to < e->level ? e->to : e->level;
}

static elem_t *elem_by_id(const thoth_pm_broker_t *b, uint32_t id)
{
	for (uint32_t i = 0; i < b->n_elems; i++)
		if (b->elems[i]->id == id)
			return b->elems[i];
	return NULL;
}

static elem_t *elem_by_name(const thoth_pm_broker_t *b, const char *name)
{
	for (uint32_t i = 0; i < b->n_elems; i++)
		if (!strcmp(b->elems[i]->decl.name, name))
			return b->elems[i];
	return NULL;
}

int thoth_pm_broker_new(const thoth_pm_broker_ops_t *ops, const thoth_pm_broker_limits_t *limits,
			uint64_t now_ns, thoth_pm_broker_t **out)
{
	thoth_pm_broker_t *b = calloc(1, sizeof *b);
	if (!b)
		return THOTH_E_NOMEM;
	if (ops)
		b->ops = *ops;
	if (limits)
		b->lim = *limits;
	if (!b->lim.max_elements || b->lim.max_elements > 4096)
		b->lim.max_elements = 256;
	if (!b->lim.max_leases)
		b->lim.max_leases = 65536;
	if (!b->lim.max_requests)
		b->lim.max_requests = 65536;
	b->elems = calloc(b->lim.max_elements, sizeof *b->elems);
	b->order = calloc(b->lim.max_elements, sizeof *b->order);
	if (!b->elems || !b->order) {
		thoth_pm_broker_free(b);
		return THOTH_E_NOMEM;
	}
	b->next_elem_id = 1;
	b->next_id = 1;
	b->new_lease = NONE;
	b->accounted_ns = now_ns;
	*out = b;
	return 0;
}

void thoth_pm_broker_free(thoth_pm_broker_t *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->n_elems; i++) {
		free(b->elems[i]->keepers);
		free(b->elems[i]);
	}
	free(b->elems);
	free(b->order);
	free(b->leases);
	free(b->by_id);
	free(b->per_holder.e);
	free(b->per_group.e);
	free(b->req_per_holder.e);
	free(b->req_per_group.e);
	free(b->reqs);
	free(b->names);
	free(b);
}

/* ---- graph ---------------------------------------------------------------------- */

/* Kahn's algorithm over "D depends on R" edges: dependents first.  The graph
 * is acyclic (declare refuses cycles), so every element is placed. */
static void reorder(thoth_pm_broker_t *b)
{
	uint32_t n = b->n_elems;
	uint32_t *indeg = calloc(n ? n : 1, sizeof *indeg);
	uint32_t head = 0, tail = 0;
	if (!indeg) {                   /* keep the old order plus new tail: still usable */
		memcpy(b->order, b->elems, n * sizeof *b->order);
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < b->elems[i]->decl.n_deps; k++)
			for (uint32_t j = 0; j < n; j++)
				if (b->elems[i]->req[k] == b->elems[j])
					indeg[j]++;
	for (uint32_t i = 0; i < n; i++)
		if (!indeg[i])
			b->order[tail++] = b->elems[i];
	while (head < tail) {
		elem_t *d = b->order[head++];
		for (uint32_t k = 0; k < d->decl.n_deps; k++)
			for (uint32_t j = 0; j < n; j++)
				if (d->req[k] == b->elems[j] && --indeg[j] == 0)
					b->order[tail++] = b->elems[j];
	}
	free(indeg);
}

/* DFS colour marks over the tentative graph of declare(). */
typedef struct tentative {
	thoth_pm_broker_t *b;
	const thoth_pm_element_decl_t *decls;
	uint32_t n;
	uint8_t *mark;                  /* 0 white, 1 on the stack, 2 done */
} tentative_t;

/* Node i < n_elems: an existing element; else decls[i - n_elems]. */
static const thoth_pm_element_decl_t *node_decl(const tentative_t *t, uint32_t i)
{
	return i < t->b->n_elems ? &t->b->elems[i]->decl : &t->decls[i - t->b->n_elems];
}

static int node_by_name(const tentative_t *t, const char *name)
{
	for (uint32_t i = 0; i < t->b->n_elems + t->n; i++)
		if (!strcmp(node_decl(t, i)->name, name))
			return (int)i;
	return -1;
}

static bool has_cycle_from(tentative_t *t, uint32_t i, uint32_t *at)
{
	if (t->mark[i] == 2)
		return false;
	if (t->mark[i] == 1) {
		*at = i;
		return true;
	}
	t->mark[i] = 1;
	const thoth_pm_element_decl_t *d = node_decl(t, i);
	for (uint32_t k = 0; k < d->n_deps; k++) {
		int j = node_by_name(t, d->deps[k].required);
		/* An unbound edge of an existing element binds only to the batch. */
		if (i < t->b->n_elems && !t->b->elems[i]->req[k] && j < (int)t->b->n_elems)
			continue;
		if (j >= 0 && has_cycle_from(t, (uint32_t)j, at))
			return true;
	}
	t->mark[i] = 2;
	return false;
}

int thoth_pm_broker_declare(thoth_pm_broker_t *b, uint64_t driver, const thoth_pm_element_decl_t *decls,
			    uint32_t n, uint64_t now_ns, uint32_t *ids)
{
	b->refusal[0] = 0;
	if (!driver || !decls || n == 0)
		return refuse(b, THOTH_E_INVAL, "elements: a declaration needs a driver and at least one element");
	if (n > b->lim.max_elements - b->n_elems)
		return refuse(b, THOTH_E_LIMIT, "elements: %u more would pass the broker's limit of %u", n,
			      b->lim.max_elements);
	char why[200];
	for (uint32_t i = 0; i < n; i++) {
		if (thoth_pm_element_validate(&decls[i], why, sizeof why))
			return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%.63s\"): %s", i, decls[i].name, why);
		const elem_t *old = elem_by_name(b, decls[i].name);
		/* A dead element stays while its dependents come down: a
		 * driver restarted in that window was told "declared already"
		 * of an element no live driver had. */
		if (old && old->dead)
			return refuse(b, THOTH_E_EXISTS, "elements[%u].name: \"%s\" is still held: its driver "
				      "is gone and the elements that need it are not down yet (declare it "
				      "again once they are)", i, decls[i].name);
		if (old)
			return refuse(b, THOTH_E_EXISTS, "elements[%u].name: \"%s\" is declared already", i,
				      decls[i].name);
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(decls[j].name, decls[i].name))
				return refuse(b, THOTH_E_EXISTS, "elements[%u].name: \"%s\" repeats elements[%u]",
					      i, decls[i].name, j);
	}
	tentative_t t = { .b = b, .decls = decls, .n = n };
	for (uint32_t i = 0; i < n; i++) {
		const thoth_pm_element_decl_t *d = &decls[i];
		for (uint32_t k = 0; k < d->n_deps; k++) {
			int j = node_by_name(&t, d->deps[k].required);
			if (j < 0)
				return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): deps[%u].required: no element \"%s\"",
					      i, d->name, k, d->deps[k].required);
			const thoth_pm_element_decl_t *r = node_decl(&t, (uint32_t)j);
			if (j < (int)b->n_elems && b->elems[j]->dead)
				return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): deps[%u].required: \"%s\"'s driver is gone",
					      i, d->name, k, r->name);
			if (d->deps[k].required_level >= r->n_levels)
				return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): deps[%u].required_level: %u is not a level of \"%s\" (0..%u)",
					      i, d->name, k, d->deps[k].required_level, r->name, r->n_levels - 1);
			/* Declared state must already be consistent: the broker never
			 * holds a violated dependency, not even the first one. */
			uint32_t r_level = j < (int)b->n_elems ? occ_lo(b->elems[j]) : r->initial_level;
			if (d->initial_level >= d->deps[k].level && r_level < d->deps[k].required_level)
				return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): initial_level: %u needs \"%s\" at %u (deps[%u]), which is at %u",
					      i, d->name, d->initial_level, r->name, d->deps[k].required_level, k,
					      r_level);
		}
	}
	/* Existing elements whose dependency lost its element bind to the batch. */
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		for (uint32_t k = 0; k < e->decl.n_deps; k++) {
			int j = e->req[k] ? -1 : node_by_name(&t, e->decl.deps[k].required);
			if (j >= (int)b->n_elems &&
			    e->decl.deps[k].required_level >= decls[j - b->n_elems].n_levels)
				return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): n_levels: %u, but \"%s\" needs it at level %u",
					      j - b->n_elems, decls[j - b->n_elems].name,
					      decls[j - b->n_elems].n_levels, e->decl.name,
					      e->decl.deps[k].required_level);
		}
	}
	t.mark = calloc(b->n_elems + n, 1);
	if (!t.mark)
		return THOTH_E_NOMEM;
	for (uint32_t i = b->n_elems; i < b->n_elems + n; i++) {
		uint32_t at = 0;
		if (has_cycle_from(&t, i, &at)) {
			free(t.mark);
			return refuse(b, THOTH_E_INVAL, "elements[%u] (\"%s\"): deps: a dependency cycle through \"%s\"",
				      i - b->n_elems, decls[i - b->n_elems].name, node_decl(&t, at)->name);
		}
	}
	free(t.mark);

	thoth_pm_broker_account(b, now_ns);
	uint32_t first = b->n_elems;
	for (uint32_t i = 0; i < n; i++) {
		elem_t *e = calloc(1, sizeof *e);
		if (!e) {
			while (b->n_elems > first)
				free(b->elems[--b->n_elems]);
			return THOTH_E_NOMEM;
		}
		e->id = b->next_elem_id++;
		e->driver = driver;
		e->decl = decls[i];
		e->level = decls[i].initial_level;
		e->idle_reported = -1;
		e->lease_head = e->lease_tail = NONE;
		e->reported_lo = occ_lo(e);
		b->elems[b->n_elems++] = e;
		if (ids)
			ids[i] = e->id;
	}
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		for (uint32_t k = 0; k < e->decl.n_deps; k++)
			if (!e->req[k]) {
				elem_t *r = elem_by_name(b, e->decl.deps[k].required);
				if (r && !r->dead)
					e->req[k] = r;
			}
	}
	reorder(b);
	converge(b);
	return 0;
}

/* ---- converge ------------------------------------------------------------------- */

/* The lowest level whose exit latency fits QOS_US (levels wake faster as they
 * rise and the top level's exit latency is 0, so one always fits). */
static uint32_t qos_floor(const elem_t *e, uint32_t qos_us)
{
	for (uint32_t l = 0; l < e->decl.n_levels; l++)
		if (e->decl.levels[l].exit_latency_us <= (int64_t)qos_us)
			return l;
	return e->decl.n_levels - 1;
}

static void compute_wants(thoth_pm_broker_t *b)
{
	/* Leases by their counts per level: the highest level an assertive
	 * lease or a latency bound holds. */
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		e->want = 0;
		e->asserted = e->n_assertive > 0;
		e->cap = e->decl.n_levels - 1;
		for (uint32_t l = e->decl.n_levels; l-- > 1;)
			if (e->n_assert_at[l] || e->n_floor_at[l]) {
				e->want = l;
				break;
			}
	}
	for (uint32_t i = 0; i < b->n_reqs; i++) {
		request_t *r = &b->reqs[i];
		r->e->asserted = true;
		if (r->level > r->e->want)
			r->e->want = r->level;
	}
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		/* A dependency on a dead or vanished element cannot be met: stay below it. */
		for (uint32_t k = 0; k < e->decl.n_deps; k++) {
			const thoth_pm_dep_decl_t *dep = &e->decl.deps[k];
			bool usable = e->req[k] && !e->req[k]->dead;
			if (!usable && dep->required_level > 0 && dep->level - 1 < e->cap)
				e->cap = dep->level - 1;
		}
	}
}

/* One pass: targets from wants, caps and what dependents assert. */
static void compute_targets_once(thoth_pm_broker_t *b)
{
	for (uint32_t i = 0; i < b->n_elems; i++)
		b->elems[i]->required = 0;
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->order[i];
		if (e->dead) {
			e->t = e->level;        /* nobody can move it any more */
		} else {
			uint32_t t = e->want < e->cap ? e->want : e->cap;
			/* The policy level applies only while nothing holds the
			 * element (no assertive lease or request, no dependent
			 * needing it): then the engine decides depth. */
			if (!e->asserted && !e->required) {
				uint32_t p = e->policy < e->cap ? e->policy : e->cap;
				if (p > t)
					t = p;
			}
			e->t = t > e->required ? t : e->required;
		}
		for (uint32_t k = 0; k < e->decl.n_deps; k++) {
			const thoth_pm_dep_decl_t *dep = &e->decl.deps[k];
			elem_t *r = e->req[k];
			if (r && dep->kind == THOTH_PM_ASSERTIVE && e->t >= dep->level &&
			    dep->required_level > r->required)
				r->required = dep->required_level;
		}
	}
}

static bool lower_cap(elem_t *e, uint32_t cap)
{
	if (cap >= e->cap)
		return false;
	e->cap = cap;
	return true;
}

static void compute_targets(thoth_pm_broker_t *b)
{
	compute_wants(b);
	for (;;) {
		compute_targets_once(b);
		bool changed = false;
		for (uint32_t i = 0; i < b->n_elems; i++) {
			elem_t *d = b->elems[i];
			for (uint32_t k = 0; k < d->decl.n_deps; k++) {
				const thoth_pm_dep_decl_t *dep = &d->decl.deps[k];
				elem_t *r = d->req[k];
				if (!r || d->t < dep->level)
					continue;
				/* An opportunistic need the others do not meet, or an
				 * assertive one above what R can reach: D stays below. */
				uint32_t reach = r->dead ? r->level : (r->t < r->cap ? r->t : r->cap);
				if (dep->kind == THOTH_PM_ASSERTIVE && !r->dead)
					reach = r->cap;
				if (reach < dep->required_level)
					changed |= lower_cap(d, dep->level - 1);
			}
		}
		if (!changed)
			return;
	}
}

static bool raise_is_safe(const elem_t *e, uint32_t to)
{
	for (uint32_t k = 0; k < e->decl.n_deps; k++) {
		const thoth_pm_dep_decl_t *dep = &e->decl.deps[k];
		if (to < dep->level || dep->required_level == 0)
			continue;
		if (!e->req[k] || e->req[k]->dead || occ_lo(e->req[k]) < dep->required_level)
			return false;
	}
	return true;
}

static bool lower_is_safe(const thoth_pm_broker_t *b, const elem_t *e, uint32_t to)
{
	for (uint32_t i = 0; i < b->n_elems; i++) {
		const elem_t *d = b->elems[i];
		for (uint32_t k = 0; k < d->decl.n_deps; k++)
			if (d->req[k] == e && d->decl.deps[k].required_level > to &&
			    occ_hi(d) >= d->decl.deps[k].level)
				return false;
	}
	return true;
}

static bool needed(const thoth_pm_broker_t *b, const elem_t *e)
{
	for (uint32_t i = 0; i < b->n_elems; i++) {
		const elem_t *d = b->elems[i];
		for (uint32_t k = 0; k < d->decl.n_deps; k++)
			if (d->req[k] == e && d->decl.deps[k].required_level > 0 &&
			    occ_hi(d) >= d->decl.deps[k].level)
				return true;
	}
	return false;
}

static void remove_elem(thoth_pm_broker_t *b, uint32_t index)
{
	elem_t *e = b->elems[index];
	for (uint32_t i = 0; i < b->n_elems; i++)
		for (uint32_t k = 0; k < b->elems[i]->decl.n_deps; k++)
			if (b->elems[i]->req[k] == e)
				b->elems[i]->req[k] = NULL;
	memmove(&b->elems[index], &b->elems[index + 1], (b->n_elems - index - 1) * sizeof *b->elems);
	b->n_elems--;
	free(e->keepers);
	free(e);
	reorder(b);
}

static void report_lease(thoth_pm_broker_t *b, lease_t *l)
{
	thoth_pm_lease_status_t s = occ_lo(l->e) >= l->level ? THOTH_PM_LEASE_SATISFIED : THOTH_PM_LEASE_PENDING;
	if (s != l->status) {
		l->status = s;
		if (b->ops.lease_status)
			b->ops.lease_status(b->ops.arg, l->id, l->holder, s);
	}
}

/* A lease's status changes only with its element's lower level, or when
 * it is new: only those leases are looked at. */
static void report(thoth_pm_broker_t *b)
{
	if (b->new_lease != NONE) {
		report_lease(b, &b->leases[b->new_lease]);
		b->new_lease = NONE;
	}
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		uint32_t lo = occ_lo(e);
		if (lo == e->reported_lo)
			continue;
		e->reported_lo = lo;
		for (uint32_t j = e->lease_head; j != NONE; j = b->leases[j].next)
			report_lease(b, &b->leases[j]);
	}
	for (uint32_t i = 0; i < b->n_reqs; i++) {
		request_t *r = &b->reqs[i];
		if (!r->ready && occ_lo(r->e) >= r->level) {
			r->ready = true;
			if (b->ops.request_ready)
				b->ops.request_ready(b->ops.arg, r->id, r->holder, r->e->id);
		}
	}
}

/*
 * Tell the policy hook which elements became free or held, and let it set
 * the level of those that became free before anything moves: the engine
 * decides depth at the moment the hold ends, never after the broker acted
 * on a stale level.  A free element's policy can make it hold another
 * (its dependencies), so this repeats until nothing changes.
 */
static void update_idle(thoth_pm_broker_t *b)
{
	for (uint32_t round = 0; round <= b->n_elems; round++) {
		bool changed = false;
		for (uint32_t i = 0; i < b->n_elems; i++) {
			elem_t *e = b->elems[i];
			int idle = !e->asserted && e->required == 0;
			if (e->dead || idle == e->idle_reported)
				continue;
			e->idle_reported = idle;
			uint32_t policy = e->policy;
			if (b->ops.idle)
				b->ops.idle(b->ops.arg, e->id, idle, &policy);
			if (idle && policy < e->decl.n_levels && policy != e->policy) {
				e->policy = policy;
				changed = true;
			}
		}
		if (!changed)
			return;
		compute_targets(b);
	}
}

static void converge(thoth_pm_broker_t *b)
{
	bool again = true;
	while (again) {
		again = false;
		compute_targets(b);
		update_idle(b);
		for (uint32_t i = 0; i < b->n_elems; i++) {
			elem_t *e = b->elems[i];
			if (e->dead || e->transitioning || e->t == e->level)
				continue;
			bool safe = e->t > e->level ? raise_is_safe(e, e->t) : lower_is_safe(b, e, e->t);
			if (!safe)
				continue;
			e->transitioning = true;
			e->to = e->t;
			if (b->ops.transition)
				b->ops.transition(b->ops.arg, e->driver, e->id, e->level, e->to);
		}
		for (uint32_t i = 0; i < b->n_elems; i++) {
			if (b->elems[i]->dead && !needed(b, b->elems[i])) {
				remove_elem(b, i);
				again = true;   /* what it held up may come down now */
				break;
			}
		}
	}
	report(b);
}

/* ---- accounting ------------------------------------------------------------------- */

static void add_keeper(elem_t *e, uint64_t holder)
{
	for (uint32_t i = 0; i < e->n_keeper_ids; i++)
		if (e->keeper_ids[i] == holder)
			return;
	if (e->n_keeper_ids < KEEPERS_MAX)
		e->keeper_ids[e->n_keeper_ids++] = holder;
}

/* HOLDER's row for E; once the table is full, one last row collects every
 * further holder as "(others)" so totals stay right. */
static keeper_stat_t *keeper_row(elem_t *e, uint64_t holder)
{
	for (uint32_t i = 0; i < e->n_keepers; i++)
		if (e->keepers[i].holder == holder)
			return &e->keepers[i];
	if (e->n_keepers == KEEPER_STATS_MAX)
		return &e->keepers[KEEPER_STATS_MAX - 1];       /* the OTHERS row */
	if (e->n_keepers == KEEPER_STATS_MAX - 1)
		holder = OTHERS;
	if (!e->keepers) {
		e->keepers = calloc(KEEPER_STATS_MAX, sizeof *e->keepers);
		if (!e->keepers)
			return NULL;
	}
	keeper_stat_t *k = &e->keepers[e->n_keepers++];
	k->holder = holder;
	return k;
}

/* ---- leases: the element's list and counts, the id hash ----------------------------- */

static bool keeps(const lease_t *l)
{
	return l->kind == THOTH_PM_LEASE_ASSERTIVE && l->level > 0;
}

/* HOLDER holds one more keeping lease on E (COUNT: -1 one less). */
static void count_keeper(elem_t *e, uint64_t holder, int count)
{
	for (uint32_t h = 0; h < e->n_lease_keepers; h++) {
		lease_keeper_t *k = &e->lease_keepers[h];
		if (k->holder != holder)
			continue;
		if (count > 0) {
			k->n++;
		} else if (--k->n == 0) {
			memmove(k, k + 1, (e->n_lease_keepers - h - 1) * sizeof *k);
			e->n_lease_keepers--;
			/* a holder past the table may take its place: only the
			 * element's own leases know which */
			if (e->keeper_overflow)
				e->keepers_stale = true;
		}
		return;
	}
	if (count < 0)
		e->keeper_overflow--;
	else if (e->n_lease_keepers < KEEPERS_MAX)
		e->lease_keepers[e->n_lease_keepers++] = (lease_keeper_t){ holder, 1 };
	else
		e->keeper_overflow++;
}

static void rebuild_lease_keepers(thoth_pm_broker_t *b, elem_t *e)
{
	e->n_lease_keepers = e->keeper_overflow = 0;
	e->keepers_stale = false;
	for (uint32_t j = e->lease_head; j != NONE; j = b->leases[j].next)
		if (keeps(&b->leases[j]))
			count_keeper(e, b->leases[j].holder, 1);
}

static uint32_t id_slot(const thoth_pm_broker_t *b, uint64_t id)
{
	return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (b->by_id_cap - 1);
}

static uint32_t lease_by_id(const thoth_pm_broker_t *b, uint64_t id)
{
	if (!b->by_id_cap)
		return NONE;
	for (uint32_t s = id_slot(b, id);; s = (s + 1) & (b->by_id_cap - 1)) {
		uint32_t v = b->by_id[s];
		if (!v)
			return NONE;
		if (b->leases[v - 1].id == id)
			return v - 1;
	}
}

/* Point ID's entry at INDEX + 1 (0: remove it, shifting back the run after). */
static void set_by_id(thoth_pm_broker_t *b, uint64_t id, uint32_t v)
{
	uint32_t m = b->by_id_cap - 1, s = id_slot(b, id);
	while (b->by_id[s] && b->leases[b->by_id[s] - 1].id != id)
		s = (s + 1) & m;
	if (v || !b->by_id[s]) {
		b->by_id[s] = v;
		return;
	}
	/* Backward-shift deletion: an entry after the hole moves into it
	 * unless its home slot lies cyclically in (hole, its slot]. */
	uint32_t hole = s;
	for (uint32_t j = (s + 1) & m; b->by_id[j]; j = (j + 1) & m) {
		uint32_t home = id_slot(b, b->leases[b->by_id[j] - 1].id);
		if (((j - home) & m) >= ((j - hole) & m)) {
			b->by_id[hole] = b->by_id[j];
			hole = j;
		}
	}
	b->by_id[hole] = 0;
}

/* Room in the hash for one more lease (before anything changes). */
static int reserve_by_id(thoth_pm_broker_t *b)
{
	if (2 * ((uint64_t)b->n_leases + 1) < b->by_id_cap)
		return 0;
	uint32_t cap = b->by_id_cap ? b->by_id_cap * 2 : 64;
	uint32_t *t = calloc(cap, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	free(b->by_id);
	b->by_id = t;
	b->by_id_cap = cap;
	for (uint32_t i = 0; i < b->n_leases; i++)
		set_by_id(b, b->leases[i].id, i + 1);
	return 0;
}

static uint32_t count_slot(const count_table_t *t, uint64_t key)
{
	uint32_t m = t->cap - 1, s = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & m;
	while (t->e[s].key && t->e[s].key != key)
		s = (s + 1) & m;
	return s;
}

static uint32_t count_of(const count_table_t *t, uint64_t key)
{
	return t->cap && key ? t->e[count_slot(t, key)].n : 0;
}

uint32_t thoth_pm_broker_holder_lease_count(const thoth_pm_broker_t *b, uint64_t holder)
{
	return count_of(&b->per_holder, holder);
}

uint32_t thoth_pm_broker_group_lease_count(const thoth_pm_broker_t *b, uint64_t group)
{
	return count_of(&b->per_group, group);
}

/* Room for one more key in T (before anything changes). */
static int count_reserve(count_table_t *t)
{
	if (2 * ((uint64_t)t->n + 1) < t->cap)
		return 0;
	uint32_t cap = t->cap ? t->cap * 2 : 64, old_cap = t->cap;
	key_count_t *e = calloc(cap, sizeof *e), *old = t->e;
	if (!e)
		return THOTH_E_NOMEM;
	t->e = e;
	t->cap = cap;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].key)
			e[count_slot(t, old[i].key)] = old[i];
	free(old);
	return 0;
}

/* KEY's count up or down by one (room reserved; 0 is never counted). */
static void count_add(count_table_t *t, uint64_t key, int delta)
{
	if (!key)
		return;
	uint32_t m = t->cap - 1, s = count_slot(t, key);
	key_count_t *h = &t->e[s];
	if (delta > 0) {
		if (!h->key) {
			h->key = key;
			t->n++;
		}
		h->n++;
		return;
	}
	if (!h->key || --h->n)
		return;
	/* Its last lease: backward-shift deletion, as set_by_id. */
	t->n--;
	uint32_t hole = s;
	for (uint32_t j = (s + 1) & m; t->e[j].key; j = (j + 1) & m) {
		uint32_t home = (uint32_t)((t->e[j].key * 0x9E3779B97F4A7C15ull) >> 32) & m;
		if (((j - home) & m) >= ((j - hole) & m)) {
			t->e[hole] = t->e[j];
			hole = j;
		}
	}
	t->e[hole] = (key_count_t){ 0 };
}

static void qos_rescan(thoth_pm_broker_t *b)
{
	b->qos_scans++;
	b->qos_min = b->qos_min_n = 0;
	for (uint32_t i = 0; i < b->n_leases; i++) {
		uint32_t q = b->leases[i].qos_us;
		if (!q || (b->qos_min && q > b->qos_min))
			continue;
		if (q != b->qos_min)
			b->qos_min = q, b->qos_min_n = 0;
		b->qos_min_n++;
	}
}

/* The lease L, appended (reserve_by_id and the array's room come first). */
static void add_lease(thoth_pm_broker_t *b, const lease_t *l)
{
	uint32_t i = b->n_leases++;
	lease_t *n = &b->leases[i];
	elem_t *e = l->e;
	*n = *l;
	n->prev = e->lease_tail;
	n->next = NONE;
	if (e->lease_tail != NONE)
		b->leases[e->lease_tail].next = i;
	else
		e->lease_head = i;
	e->lease_tail = i;
	if (n->kind == THOTH_PM_LEASE_ASSERTIVE) {
		e->n_assertive++;
		e->n_assert_at[n->level]++;
	}
	if (n->qos_us) {
		n->floor = qos_floor(e, n->qos_us);
		e->n_floor_at[n->floor]++;
		if (!b->qos_min || n->qos_us < b->qos_min)
			b->qos_min = n->qos_us, b->qos_min_n = 0;
		if (n->qos_us == b->qos_min)
			b->qos_min_n++;
	}
	if (keeps(n))
		count_keeper(e, n->holder, 1);
	if (!n->internal) {
		count_add(&b->per_holder, n->holder, 1);
		count_add(&b->per_group, n->group, 1);
	}
	set_by_id(b, n->id, i + 1);
	b->new_lease = i;
}

/* Lease I, gone: the last lease takes its index.  True when the last
 * lease holding the tightest bound left: the bound must be found again
 * (qos_rescan), once, by the caller; until then qos_min_n stays 0 and
 * later removals leave it so.  A holder's or a driver's many leases go
 * with one scan, not one each (a holder ordering its bounds so that every
 * removal is the last tightest one made that k scans of n leases). */
static bool unlink_lease(thoth_pm_broker_t *b, uint32_t i)
{
	lease_t *l = &b->leases[i];
	elem_t *e = l->e;
	if (l->prev != NONE)
		b->leases[l->prev].next = l->next;
	else
		e->lease_head = l->next;
	if (l->next != NONE)
		b->leases[l->next].prev = l->prev;
	else
		e->lease_tail = l->prev;
	if (l->kind == THOTH_PM_LEASE_ASSERTIVE) {
		e->n_assertive--;
		e->n_assert_at[l->level]--;
	}
	bool rescan = false;
	if (l->qos_us) {
		e->n_floor_at[l->floor]--;
		rescan = b->qos_min_n && l->qos_us == b->qos_min && --b->qos_min_n == 0;
	}
	if (keeps(l))
		count_keeper(e, l->holder, -1);
	if (!l->internal) {
		count_add(&b->per_holder, l->holder, -1);
		count_add(&b->per_group, l->group, -1);
	}
	set_by_id(b, l->id, 0);
	if (b->new_lease == i)
		b->new_lease = NONE;
	uint32_t last = --b->n_leases;
	if (i != last) {
		lease_t *m = &b->leases[i];
		*m = b->leases[last];
		if (m->prev != NONE)
			b->leases[m->prev].next = i;
		else
			m->e->lease_head = i;
		if (m->next != NONE)
			b->leases[m->next].prev = i;
		else
			m->e->lease_tail = i;
		set_by_id(b, m->id, i + 1);
		if (b->new_lease == last)
			b->new_lease = i;
	}
	return rescan;
}

static void remove_lease(thoth_pm_broker_t *b, uint32_t i)
{
	if (unlink_lease(b, i))
		qos_rescan(b);  /* the last tightest bound left: the only scan, and only then */
}

void thoth_pm_broker_account(thoth_pm_broker_t *b, uint64_t now_ns)
{
	if (now_ns <= b->accounted_ns)
		return;
	uint64_t dt = now_ns - b->accounted_ns;
	b->accounted_ns = now_ns;
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		if (e->keepers_stale)
			rebuild_lease_keepers(b, e);
		for (uint32_t h = 0; h < e->n_lease_keepers; h++)
			e->keeper_ids[h] = e->lease_keepers[h].holder;
		e->n_keeper_ids = e->n_lease_keepers;
	}
	for (uint32_t i = 0; i < b->n_reqs; i++)
		if (b->reqs[i].level > 0)
			add_keeper(b->reqs[i].e, b->reqs[i].holder);
	/* Dependents first: a holder of "disk" also keeps "bus" awake. */
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *d = b->order[i];
		for (uint32_t k = 0; k < d->decl.n_deps; k++) {
			const thoth_pm_dep_decl_t *dep = &d->decl.deps[k];
			if (d->req[k] && dep->kind == THOTH_PM_ASSERTIVE && dep->required_level > 0 &&
			    occ_hi(d) >= dep->level)
				for (uint32_t h = 0; h < d->n_keeper_ids; h++)
					add_keeper(d->req[k], d->keeper_ids[h]);
		}
	}
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		uint32_t lv = occ_hi(e);       /* a transition runs at the higher level's power */
		e->residency_ns[lv] += dt;
		double mw = e->decl.levels[lv].power_mw;
		e->energy_mj += mw * (double)dt * 1e-9;
		if (lv == 0)
			continue;
		double above = (mw - e->decl.levels[0].power_mw) * (double)dt * 1e-9;
		if (!e->n_keeper_ids)
			e->keeper_ids[e->n_keeper_ids++] = 0;
		for (uint32_t h = 0; h < e->n_keeper_ids; h++) {
			keeper_stat_t *k = keeper_row(e, e->keeper_ids[h]);
			if (!k)
				continue;
			k->awake_ns += dt;
			k->energy_mj += above / e->n_keeper_ids;
		}
	}
}

/* ---- drivers ---------------------------------------------------------------------- */

int thoth_pm_broker_find(const thoth_pm_broker_t *b, const char *name, uint32_t *element)
{
	elem_t *e = elem_by_name(b, name);
	if (!e || e->dead)
		return THOTH_E_NOT_FOUND;
	*element = e->id;
	return 0;
}

static void remove_request(thoth_pm_broker_t *b, uint32_t i)
{
	count_add(&b->req_per_holder, b->reqs[i].holder, -1);
	count_add(&b->req_per_group, b->reqs[i].group, -1);
	memmove(&b->reqs[i], &b->reqs[i + 1], (b->n_reqs - i - 1) * sizeof *b->reqs);
	b->n_reqs--;
}

void thoth_pm_broker_driver_gone(thoth_pm_broker_t *b, uint64_t driver, uint64_t now_ns)
{
	thoth_pm_broker_account(b, now_ns);
	bool any = false;
	for (uint32_t i = 0; i < b->n_elems; i++) {
		elem_t *e = b->elems[i];
		if (e->driver != driver || e->dead)
			continue;
		any = true;
		e->dead = true;
		/* A transition will never be confirmed: assume the worse end of it. */
		if (e->transitioning) {
			e->level = occ_hi(e);
			e->transitioning = false;
		}
	}
	if (!any)
		return;
	bool rescan = false;
	for (uint32_t i = 0; i < b->n_leases;) {
		lease_t *l = &b->leases[i];
		if (!l->e->dead) {
			i++;
			continue;
		}
		if (b->ops.lease_status)
			b->ops.lease_status(b->ops.arg, l->id, l->holder, THOTH_PM_LEASE_LOST);
		rescan |= unlink_lease(b, i);
	}
	if (rescan)
		qos_rescan(b);
	for (uint32_t i = 0; i < b->n_reqs;) {
		request_t *r = &b->reqs[i];
		if (!r->e->dead) {
			i++;
			continue;
		}
		char why[128];
		snprintf(why, sizeof why, "element \"%s\": its driver is gone", r->e->decl.name);
		if (b->ops.request_failed)
			b->ops.request_failed(b->ops.arg, r->id, r->holder, why);
		remove_request(b, i);
	}
	converge(b);
}

int thoth_pm_broker_level_reached(thoth_pm_broker_t *b, uint32_t element, uint32_t level, uint64_t now_ns)
{
	b->refusal[0] = 0;
	elem_t *e = elem_by_id(b, element);
	if (!e || e->dead)
		return refuse(b, THOTH_E_NOT_FOUND, "element: no live element %u", element);
	if (!e->transitioning || e->to != level)
		return refuse(b, THOTH_E_PROTOCOL, "level: \"%s\" was not asked to go to %u", e->decl.name, level);
	thoth_pm_broker_account(b, now_ns);
	e->level = level;
	e->transitioning = false;
	e->transitions++;
	converge(b);
	return 0;
}

int thoth_pm_broker_set_policy_level(thoth_pm_broker_t *b, uint32_t element, uint32_t level, uint64_t now_ns)
{
	b->refusal[0] = 0;
	elem_t *e = elem_by_id(b, element);
	if (!e || e->dead)
		return refuse(b, THOTH_E_NOT_FOUND, "element: no live element %u", element);
	if (level >= e->decl.n_levels)
		return refuse(b, THOTH_E_INVAL, "level: %u is not a level of \"%s\" (0..%u)", level,
			      e->decl.name, e->decl.n_levels - 1);
	if (e->policy == level)
		return 0;
	thoth_pm_broker_account(b, now_ns);
	e->policy = level;
	converge(b);
	return 0;
}

/* ---- holders ---------------------------------------------------------------------- */

static int grow(void **v, uint32_t *cap, uint32_t n, size_t size)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : 16;
	void *p = realloc(*v, (size_t)c * size);
	if (!p)
		return THOTH_E_NOMEM;
	*v = p;
	*cap = c;
	return 0;
}

/* ELEMENT, alive, with LEVEL among its levels; else the refusal's code. */
static int live_elem(thoth_pm_broker_t *b, uint32_t element, uint32_t level, elem_t **out)
{
	elem_t *e = elem_by_id(b, element);
	if (!e)
		return refuse(b, THOTH_E_NOT_FOUND, "element: no element %u", element);
	if (e->dead)
		return refuse(b, THOTH_E_NOT_FOUND, "element: \"%s\"'s driver is gone", e->decl.name);
	if (level >= e->decl.n_levels)
		return refuse(b, THOTH_E_INVAL, "level: %u is not a level of \"%s\" (0..%u)", level,
			      e->decl.name, e->decl.n_levels - 1);
	*out = e;
	return 0;
}

/*
 * The fair share (broker.h): HOLDER holds HELD and may not take one more
 * when that is not fewer than remain free to it -- the broker's free
 * leases, or what its group may still take when that is less.  Measured
 * against the broker alone, two holders of one group took the group's
 * whole cap between them (a half, then the rest) and every other holder
 * of the group got none; against the group's room the third still finds
 * an eighth.  0, or THOTH_E_LIMIT.
 */
static int share_check(thoth_pm_broker_t *b, uint32_t held, uint64_t group, uint32_t in_group)
{
	uint32_t free_now = b->lim.max_leases - b->n_leases;
	bool by_group = group && b->lim.max_group_leases && b->lim.max_group_leases - in_group < free_now;
	if (by_group)
		free_now = b->lim.max_group_leases - in_group;  /* in_group < the cap: checked first */
	if (held < free_now)
		return 0;
	if (by_group)
		/* Short: thothd's error message holds 128 bytes. */
		return refuse(b, THOTH_E_LIMIT, "leases: fair share: this holder holds %u, no fewer than %s %llu "
			      "may still take (%u of %u; limit of %u)", held,
			      b->lim.group_word ? b->lim.group_word : "group", (unsigned long long)(group - 1),
			      free_now, b->lim.max_group_leases, b->lim.max_leases);
	return refuse(b, THOTH_E_LIMIT, "leases: fair share reached: this holder holds %u, no fewer than remain "
		      "free (%u of the limit of %u)", held, free_now, b->lim.max_leases);
}

static int lease_add(thoth_pm_broker_t *b, uint64_t holder, uint64_t group, bool internal, uint32_t element,
		     uint32_t level, thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns,
		     uint64_t *lease)
{
	b->refusal[0] = 0;
	if (!holder)
		return refuse(b, THOTH_E_INVAL, "holder: 0 is not a holder");
	if (kind != THOTH_PM_LEASE_ASSERTIVE && kind != THOTH_PM_LEASE_OPPORTUNISTIC)
		return refuse(b, THOTH_E_INVAL, "kind: %d is neither ASSERTIVE nor OPPORTUNISTIC", (int)kind);
	if (qos_us > THOTH_PM_MAX_LATENCY_US)
		return refuse(b, THOTH_E_INVAL, "qos_us: %u is absurd (limit %d us)", qos_us,
			      THOTH_PM_MAX_LATENCY_US);
	elem_t *e;
	int r = live_elem(b, element, level, &e);
	if (r)
		return r;
	if (b->n_leases >= b->lim.max_leases)
		return refuse(b, THOTH_E_LIMIT, "leases: the broker's limit of %u is reached", b->lim.max_leases);
	/* The group's cap, then the fair share: one holder never takes the
	 * last free leases from the others, however many it asks for, nor
	 * the last of its group's room from the group's other holders; nor
	 * one group more than its cap (broker.h).  The host's own leases
	 * (internal) are held only to the total. */
	uint32_t in_group = count_of(&b->per_group, group);
	if (!internal && group && b->lim.max_group_leases && in_group >= b->lim.max_group_leases)
		return refuse(b, THOTH_E_LIMIT, "leases: %s %llu holds %u, its limit (of %u in all)",
			      b->lim.group_word ? b->lim.group_word : "group", (unsigned long long)(group - 1),
			      in_group, b->lim.max_leases);
	if (!internal && b->lim.fair_share &&
	    (r = share_check(b, count_of(&b->per_holder, holder), group, in_group)))
		return r;
	if (grow((void **)&b->leases, &b->cap_leases, b->n_leases, sizeof *b->leases) || reserve_by_id(b) ||
	    count_reserve(&b->per_holder) || count_reserve(&b->per_group))
		return THOTH_E_NOMEM;
	thoth_pm_broker_account(b, now_ns);
	lease_t l = {
		.id = b->next_id++, .holder = holder, .group = internal ? 0 : group, .internal = internal,
		.e = e, .level = level, .qos_us = qos_us, .kind = kind, .status = THOTH_PM_LEASE_PENDING,
		.granted_ns = now_ns,
	};
	add_lease(b, &l);
	if (lease)
		*lease = l.id;
	converge(b);
	return 0;
}

int thoth_pm_broker_lease(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
			  thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns, uint64_t *lease)
{
	return lease_add(b, holder, 0, false, element, level, kind, qos_us, now_ns, lease);
}

int thoth_pm_broker_lease_in(thoth_pm_broker_t *b, uint64_t holder, uint64_t group, uint32_t element,
			     uint32_t level, thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns,
			     uint64_t *lease)
{
	return lease_add(b, holder, group, false, element, level, kind, qos_us, now_ns, lease);
}

int thoth_pm_broker_lease_internal(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
				   thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns,
				   uint64_t *lease)
{
	return lease_add(b, holder, 0, true, element, level, kind, qos_us, now_ns, lease);
}

int thoth_pm_broker_drop(thoth_pm_broker_t *b, uint64_t holder, uint64_t lease, uint64_t now_ns)
{
	b->refusal[0] = 0;
	uint32_t i = lease_by_id(b, lease);
	if (i == NONE)
		return refuse(b, THOTH_E_NOT_FOUND, "lease: no lease %llu", (unsigned long long)lease);
	if (b->leases[i].holder != holder)
		return refuse(b, THOTH_E_PERM, "lease: %llu is not this holder's", (unsigned long long)lease);
	thoth_pm_broker_account(b, now_ns);
	remove_lease(b, i);
	converge(b);
	return 0;
}

void thoth_pm_broker_holder_gone(thoth_pm_broker_t *b, uint64_t holder, uint64_t now_ns)
{
	thoth_pm_broker_account(b, now_ns);
	bool any = false, rescan = false;
	for (uint32_t i = 0; i < b->n_leases;) {
		if (b->leases[i].holder == holder) {
			rescan |= unlink_lease(b, i);
			any = true;
		} else {
			i++;
		}
	}
	if (rescan)
		qos_rescan(b);
	/* Its requests are withdrawn: nobody is left to receive the answer. */
	for (uint32_t i = 0; i < b->n_reqs;) {
		if (b->reqs[i].holder == holder) {
			remove_request(b, i);
			any = true;
		} else {
			i++;
		}
	}
	if (any)
		converge(b);
}

static bool holds_anything(const thoth_pm_broker_t *b, uint64_t holder)
{
	for (uint32_t i = 0; i < b->n_leases; i++)
		if (b->leases[i].holder == holder)
			return true;
	for (uint32_t i = 0; i < b->n_reqs; i++)
		if (b->reqs[i].holder == holder)
			return true;
	return false;
}

bool thoth_pm_broker_holder_named(const thoth_pm_broker_t *b, uint64_t holder)
{
	for (uint32_t i = 0; i < b->n_names; i++)
		if (b->names[i].holder == holder)
			return true;
	return false;
}

int thoth_pm_broker_name_holder(thoth_pm_broker_t *b, uint64_t holder, const char *name)
{
	for (uint32_t i = 0; i < b->n_names; i++)
		if (b->names[i].holder == holder) {
			snprintf(b->names[i].name, sizeof b->names[i].name, "%s", name);
			return 0;
		}
	if (b->n_names == HOLDER_NAMES_MAX) {
		/* Forget the name of a holder that holds nothing any more: its
		 * keeper rows then show "(gone)". */
		for (uint32_t i = 0; i < b->n_names; i++)
			if (!holds_anything(b, b->names[i].holder)) {
				b->names[i] = b->names[--b->n_names];
				break;
			}
		if (b->n_names == HOLDER_NAMES_MAX)
			return THOTH_E_LIMIT;
	}
	if (!b->names) {
		b->names = calloc(HOLDER_NAMES_MAX, sizeof *b->names);
		if (!b->names)
			return THOTH_E_NOMEM;
	}
	b->names[b->n_names].holder = holder;
	snprintf(b->names[b->n_names].name, sizeof b->names[0].name, "%s", name);
	b->n_names++;
	return 0;
}

int thoth_pm_broker_request(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
			    uint64_t now_ns, uint64_t *request)
{
	return thoth_pm_broker_request_in(b, holder, 0, element, level, now_ns, request);
}

int thoth_pm_broker_request_in(thoth_pm_broker_t *b, uint64_t holder, uint64_t group, uint32_t element,
			       uint32_t level, uint64_t now_ns, uint64_t *request)
{
	b->refusal[0] = 0;
	if (!holder)
		return refuse(b, THOTH_E_INVAL, "holder: 0 is not a holder");
	elem_t *e;
	int r = live_elem(b, element, level, &e);
	if (r)
		return r;
	if (b->n_reqs >= b->lim.max_requests)
		return refuse(b, THOTH_E_LIMIT, "requests: the broker's limit of %u is reached",
			      b->lim.max_requests);
	/* The group's cap and the share of leases, for requests too: a holder
	 * queues a request only while it has fewer than remain free to it
	 * (the broker's free slots, or its group's room when less), so one
	 * client that never lets its requests be served (asks for a level
	 * nobody reaches, or a driver that never answers), or one uid's many
	 * connections, cannot take every slot from the others.  Counted per
	 * holder and group (a scan of every queued request per request was up
	 * to 65,536 steps on thothd's loop). */
	uint32_t in_group = count_of(&b->req_per_group, group);
	if (group && b->lim.max_group_requests && in_group >= b->lim.max_group_requests)
		return refuse(b, THOTH_E_LIMIT, "requests: %s %llu has %u queued, its limit (of %u in all)",
			      b->lim.group_word ? b->lim.group_word : "group", (unsigned long long)(group - 1),
			      in_group, b->lim.max_requests);
	if (b->lim.fair_share) {
		uint32_t mine = count_of(&b->req_per_holder, holder);
		uint32_t free_now = b->lim.max_requests - b->n_reqs;
		bool by_group = group && b->lim.max_group_requests &&
				b->lim.max_group_requests - in_group < free_now;
		if (by_group)
			free_now = b->lim.max_group_requests - in_group;
		if (mine >= free_now)
			return refuse(b, THOTH_E_LIMIT, "requests: fair share: this holder has %u queued, no "
				      "fewer than %s (%u; limit of %u)", mine,
				      by_group ? "its group may still queue" : "remain free", free_now,
				      b->lim.max_requests);
	}
	if (grow((void **)&b->reqs, &b->cap_reqs, b->n_reqs, sizeof *b->reqs) ||
	    count_reserve(&b->req_per_holder) || count_reserve(&b->req_per_group))
		return THOTH_E_NOMEM;
	thoth_pm_broker_account(b, now_ns);
	request_t *q = &b->reqs[b->n_reqs++];
	*q = (request_t){ .id = b->next_id++, .holder = holder, .group = group, .e = e, .level = level };
	count_add(&b->req_per_holder, holder, 1);
	count_add(&b->req_per_group, group, 1);
	if (request)
		*request = q->id;
	converge(b);
	return 0;
}

uint32_t thoth_pm_broker_holder_request_count(const thoth_pm_broker_t *b, uint64_t holder)
{
	return count_of(&b->req_per_holder, holder);
}

uint32_t thoth_pm_broker_request_count(const thoth_pm_broker_t *b)
{
	return b->n_reqs;
}

int thoth_pm_broker_request_done(thoth_pm_broker_t *b, uint64_t request, uint64_t now_ns)
{
	b->refusal[0] = 0;
	for (uint32_t i = 0; i < b->n_reqs; i++) {
		if (b->reqs[i].id != request)
			continue;
		if (!b->reqs[i].ready)
			return refuse(b, THOTH_E_PROTOCOL, "request: %llu was not ready to be served",
				      (unsigned long long)request);
		thoth_pm_broker_account(b, now_ns);
		remove_request(b, i);
		converge(b);
		return 0;
	}
	return refuse(b, THOTH_E_NOT_FOUND, "request: no request %llu", (unsigned long long)request);
}

uint64_t thoth_pm_broker_qos_scans(const thoth_pm_broker_t *b)
{
	return b->qos_scans;
}

uint32_t thoth_pm_broker_min_qos_us(const thoth_pm_broker_t *b)
{
	return b->qos_min;
}

/* ---- introspection ------------------------------------------------------------------ */

uint32_t thoth_pm_broker_element_count(const thoth_pm_broker_t *b)
{
	return b->n_elems;
}

static void fill_elem(const thoth_pm_broker_t *b, const elem_t *e, thoth_pm_element_info_t *info)
{
	uint32_t queued = 0;
	for (uint32_t i = 0; i < b->n_reqs; i++)
		if (b->reqs[i].e == e && !b->reqs[i].ready)
			queued++;
	*info = (thoth_pm_element_info_t){
		.id = e->id, .driver = e->driver, .decl = &e->decl, .level = e->level, .target = e->t,
		.transitioning = e->transitioning, .transition_to = e->to, .dead = e->dead,
		.idle = e->idle_reported == 1,
		.policy_level = e->policy, .transitions = e->transitions,
		.residency_ns = e->residency_ns, .energy_mj = e->energy_mj, .queued_requests = queued,
	};
}

int thoth_pm_broker_element_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_element_info_t *info)
{
	if (index >= b->n_elems)
		return THOTH_E_NOT_FOUND;
	fill_elem(b, b->elems[index], info);
	return 0;
}

int thoth_pm_broker_element_info(const thoth_pm_broker_t *b, uint32_t element, thoth_pm_element_info_t *info)
{
	elem_t *e = elem_by_id(b, element);
	if (!e)
		return THOTH_E_NOT_FOUND;
	fill_elem(b, e, info);
	return 0;
}

uint32_t thoth_pm_broker_lease_count(const thoth_pm_broker_t *b)
{
	return b->n_leases;
}

int thoth_pm_broker_lease_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_lease_info_t *info)
{
	if (index >= b->n_leases)
		return THOTH_E_NOT_FOUND;
	const lease_t *l = &b->leases[index];
	*info = (thoth_pm_lease_info_t){
		.id = l->id, .holder = l->holder, .element = l->e->id, .level = l->level,
		.qos_us = l->qos_us, .kind = l->kind, .status = l->status, .granted_ns = l->granted_ns,
	};
	return 0;
}

uint32_t thoth_pm_broker_keeper_count(const thoth_pm_broker_t *b)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < b->n_elems; i++)
		n += b->elems[i]->n_keepers;
	return n;
}

static const char *holder_name(const thoth_pm_broker_t *b, uint64_t holder)
{
	if (!holder)
		return "(policy)";
	if (holder == OTHERS)
		return "(others)";
	for (uint32_t i = 0; i < b->n_names; i++)
		if (b->names[i].holder == holder)
			return b->names[i].name;
	return "(gone)";
}

int thoth_pm_broker_keeper_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_keeper_info_t *info)
{
	for (uint32_t i = 0; i < b->n_elems; i++) {
		const elem_t *e = b->elems[i];
		if (index < e->n_keepers) {
			const keeper_stat_t *k = &e->keepers[index];
			*info = (thoth_pm_keeper_info_t){
				.holder = k->holder, .name = holder_name(b, k->holder), .element = e->id,
				.awake_ns = k->awake_ns, .energy_mj = k->energy_mj,
			};
			return 0;
		}
		index -= e->n_keepers;
	}
	return THOTH_E_NOT_FOUND;
}

/* What add_lease / remove_lease maintain, recounted from the array. */
static int check_lease_index(const thoth_pm_broker_t *b, char *why, size_t cap)
{
	uint32_t qmin = 0, qn = 0, listed = 0;
	for (uint32_t i = 0; i < b->n_leases; i++) {
		const lease_t *l = &b->leases[i];
		if (lease_by_id(b, l->id) != i) {
			snprintf(why, cap, "lease %llu is not found by its id", (unsigned long long)l->id);
			return THOTH_E_CORRUPT;
		}
		/* report looks only where something moved: nothing it skipped is stale */
		if (l->status != (occ_lo(l->e) >= l->level ? THOTH_PM_LEASE_SATISFIED : THOTH_PM_LEASE_PENDING)) {
			snprintf(why, cap, "lease %llu's status %d was not reported", (unsigned long long)l->id,
				 (int)l->status);
			return THOTH_E_CORRUPT;
		}
		if (l->qos_us && (!qmin || l->qos_us <= qmin)) {
			qn = l->qos_us == qmin ? qn + 1 : 1;
			qmin = l->qos_us;
		}
	}
	/* Leases per holder and group: each key's count recounted from the
	 * leases (a drift that keeps the total, one holder's lease counted
	 * as another's, passed a check of the sum alone), each found where
	 * it lives, none listed with 0. */
	const count_table_t *tables[2] = { &b->per_holder, &b->per_group };
	for (int t = 0; t < 2; t++) {
		const count_table_t *tb = tables[t];
		const char *what = t ? "group" : "holder";
		uint32_t keys = 0;
		for (uint32_t i = 0; i < tb->cap; i++) {
			const key_count_t *h = &tb->e[i];
			if (!h->key)
				continue;
			keys++;
			if (!h->n || count_slot(tb, h->key) != i) {
				snprintf(why, cap, "%s %llu's count (%u) is misplaced", what,
					 (unsigned long long)h->key, h->n);
				return THOTH_E_CORRUPT;
			}
		}
		if (keys != tb->n) {
			snprintf(why, cap, "%u %ss counted, %u listed", keys, what, tb->n);
			return THOTH_E_CORRUPT;
		}
		uint32_t *re = tb->cap ? calloc(tb->cap, sizeof *re) : NULL;
		if (tb->cap && !re) {
			snprintf(why, cap, "out of memory recounting the %ss' leases", what);
			return THOTH_E_NOMEM;
		}
		for (uint32_t i = 0; i < b->n_leases; i++) {
			const lease_t *l = &b->leases[i];
			uint64_t key = t ? l->group : l->holder;
			if (l->internal || !key)
				continue;
			uint32_t s = tb->cap ? count_slot(tb, key) : 0;
			if (!tb->cap || tb->e[s].key != key) {
				snprintf(why, cap, "lease %llu's %s is not counted", (unsigned long long)l->id, what);
				free(re);
				return THOTH_E_CORRUPT;
			}
			re[s]++;
		}
		for (uint32_t i = 0; i < tb->cap; i++)
			if (tb->e[i].key && tb->e[i].n != re[i]) {
				snprintf(why, cap, "%s %llu counted %u leases, holds %u", what,
					 (unsigned long long)tb->e[i].key, tb->e[i].n, re[i]);
				free(re);
				return THOTH_E_CORRUPT;
			}
		free(re);
	}
	if (qmin != b->qos_min || qn != b->qos_min_n) {
		snprintf(why, cap, "tightest bound %u us x %u, counted %u us x %u", qmin, qn, b->qos_min,
			 b->qos_min_n);
		return THOTH_E_CORRUPT;
	}
	for (uint32_t i = 0; i < b->n_elems; i++) {
		const elem_t *e = b->elems[i];
		uint32_t at[THOTH_PM_MAX_LEVELS] = { 0 }, fl[THOTH_PM_MAX_LEVELS] = { 0 }, na = 0, nk = 0;
		uint32_t prev = NONE;
		for (uint32_t j = e->lease_head; j != NONE; prev = j, j = b->leases[j].next) {
			const lease_t *l = &b->leases[j];
			if (j >= b->n_leases || l->e != e || l->prev != prev || ++listed > b->n_leases) {
				snprintf(why, cap, "\"%s\"'s lease list is broken at %u", e->decl.name, j);
				return THOTH_E_CORRUPT;
			}
			if (l->kind == THOTH_PM_LEASE_ASSERTIVE)
				na++, at[l->level]++;
			if (l->qos_us)
				fl[qos_floor(e, l->qos_us)]++;
			nk += keeps(l);
		}
		uint32_t kept = e->keeper_overflow;
		for (uint32_t h = 0; h < e->n_lease_keepers; h++)
			kept += e->lease_keepers[h].n;
		/* and no holder waits for a keeper's place while the table has room */
		bool waits = e->keeper_overflow && e->n_lease_keepers < KEEPERS_MAX;
		if (prev != e->lease_tail || na != e->n_assertive || memcmp(at, e->n_assert_at, sizeof at) ||
		    memcmp(fl, e->n_floor_at, sizeof fl) || (!e->keepers_stale && (kept != nk || waits))) {
			snprintf(why, cap, "\"%s\"'s lease counts differ from its leases", e->decl.name);
			return THOTH_E_CORRUPT;
		}
	}
	if (listed != b->n_leases) {
		snprintf(why, cap, "%u leases on element lists, %u held", listed, b->n_leases);
		return THOTH_E_CORRUPT;
	}
	return 0;
}

int thoth_pm_broker_check(const thoth_pm_broker_t *b, char *why, size_t cap)
{
	for (uint32_t i = 0; i < b->n_elems; i++) {
		const elem_t *d = b->elems[i];
		if (d->level >= d->decl.n_levels || (d->transitioning && d->to >= d->decl.n_levels)) {
			snprintf(why, cap, "\"%s\" is at level %u of %u", d->decl.name, occ_hi(d), d->decl.n_levels);
			return THOTH_E_CORRUPT;
		}
		for (uint32_t k = 0; k < d->decl.n_deps; k++) {
			const thoth_pm_dep_decl_t *dep = &d->decl.deps[k];
			if (occ_hi(d) < dep->level || dep->required_level == 0)
				continue;
			const elem_t *r = d->req[k];
			if (!r || occ_lo(r) < dep->required_level) {
				snprintf(why, cap, "\"%s\" at %u needs \"%s\" at %u, which is at %u", d->decl.name,
					 occ_hi(d), dep->required, dep->required_level, r ? occ_lo(r) : 0);
				return THOTH_E_CORRUPT;
			}
		}
	}
	for (uint32_t i = 0; i < b->n_leases; i++)
		if (b->leases[i].e->dead) {
			snprintf(why, cap, "lease %llu is on dead \"%s\"", (unsigned long long)b->leases[i].id,
				 b->leases[i].e->decl.name);
			return THOTH_E_CORRUPT;
		}
	return check_lease_index(b, why, cap);
}
