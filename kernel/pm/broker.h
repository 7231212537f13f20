/*
 * broker.h - the power broker core (PM-1, docs/PM.md): pure, no sockets,
 * no clock of its own.  Every call that changes state takes `now_ns`
 * (CLOCK_MONOTONIC of the caller); thothd (kernel/thothd/pm.c), the unit
 * tests and the fuzz target drive the same code.
 *
 * What it does: drivers declare elements (element.h); holders take leases
 * on levels and submit requests that need a level; the broker computes the
 * level each element must be at and asks the drivers to move, through the
 * ops below, one transition per element at a time.  The driver answers with
 * thoth_pm_broker_level_reached().
 *
 * Invariants (thoth_pm_broker_check() verifies them; the fuzz target runs it
 * after every operation):
 *  1. No violated dependency, ever, including during transitions: if a
 *     dependent may be at >= L (its level, or the higher end of its running
 *     transition), each element it needs at L is at >= the required level
 *     (its level, or the lower end of its running transition).  So the
 *     broker raises dependencies first and lowers in reverse order.
 *  2. Every request is answered exactly once: ready (the element is at its
 *     level; the driver serves it and calls request_done) or failed (the
 *     element's driver died).  A request holds its element up from submit
 *     to done: a request reaching a suspended device is queued and replayed
 *     after resume, never lost.
 *  3. A lease on an element whose driver is gone is refused; existing ones
 *     are reported LOST.  A dead element stays in the graph (at its last
 *     level) until no dependent needs it, so invariant 1 holds across
 *     driver death too.
 *
 * Callbacks run inside broker calls and must not call into the broker;
 * record what they ask and act after the call returns.
 */
#ifndef THOTH_PM_BROKER_H
#define THOTH_PM_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "element.h"

typedef struct thoth_pm_broker thoth_pm_broker_t;

typedef enum thoth_pm_lease_kind {
	THOTH_PM_LEASE_ASSERTIVE = 0,   /* raise the element (and its dependencies) to the level */
	THOTH_PM_LEASE_OPPORTUNISTIC = 1, /* satisfied only while something else holds it there */
} thoth_pm_lease_kind_t;

typedef enum thoth_pm_lease_status {
	THOTH_PM_LEASE_PENDING = 0,
	THOTH_PM_LEASE_SATISFIED = 1,
	THOTH_PM_LEASE_LOST = 2,        /* its element's driver died; the lease is gone */
} thoth_pm_lease_status_t;

typedef struct thoth_pm_broker_ops {
	/* Move ELEMENT from FROM to TO; answer with thoth_pm_broker_level_reached. */
	void (*transition)(void *arg, uint64_t driver, uint32_t element, uint32_t from, uint32_t to);
	void (*lease_status)(void *arg, uint64_t lease, uint64_t holder, thoth_pm_lease_status_t status);
	/* The request may be served now (its element is at its level). */
	void (*request_ready)(void *arg, uint64_t request, uint64_t holder, uint32_t element);
	void (*request_failed)(void *arg, uint64_t request, uint64_t holder, const char *why);
	/* ELEMENT became free (IDLE: no assertive lease, request or dependent
	 * holds it, so its policy level applies) or held again; reported once
	 * per change, first when it is declared.  On IDLE the policy engine
	 * may set *POLICY, the level to use from now on, before anything moves.
	 * The only callback that may call the broker, and only its const
	 * (introspection) functions. */
	void (*idle)(void *arg, uint32_t element, bool idle, uint32_t *policy);
	void *arg;
} thoth_pm_broker_ops_t;

typedef struct thoth_pm_broker_limits {
	uint32_t max_elements;          /* 0: 256 */
	uint32_t max_leases;            /* 0: 65536 */
	/* A holder may take a lease only while it holds fewer than remain free
	 * to it (max_leases minus all leases held; for a holder in a group
	 * with a cap, no more than the group may still take): one holder gets
	 * at most half, the next at most half of the rest...  Refused THOTH_E_LIMIT naming
	 * the share (docs/PM.md, "What thothd refuses").  The same for
	 * requests against max_requests (they had no share: one client took
	 * all 65,536). */
	bool fair_share;
	/* The leases of one group of holders together (thoth_pm_broker_lease_in;
	 * thothd: a uid's connections), refused THOTH_E_LIMIT past it (0: no
	 * limit).  The share alone lets holders that come one after another
	 * fill the broker (a 15th takes the last one). */
	uint32_t max_group_leases;
	const char *group_word;         /* names a group in refusals ("uid"; NULL: "group") */
	uint32_t max_requests;          /* queued or in service (0: 65536) */
	/* The requests of one group together (thoth_pm_broker_request_in;
	 * thothd: a uid's connections, in proportion to max_group_leases),
	 * refused THOTH_E_LIMIT past it (0: no limit). */
	uint32_t max_group_requests;
} thoth_pm_broker_limits_t;

int thoth_pm_broker_new(const thoth_pm_broker_ops_t *ops, const thoth_pm_broker_limits_t *limits,
			uint64_t now_ns, thoth_pm_broker_t **out);
void thoth_pm_broker_free(thoth_pm_broker_t *b);

/* Why the last refused call was refused ("" if none): names the field. */
const char *thoth_pm_broker_refusal(const thoth_pm_broker_t *b);

/*
 * Declare N elements for DRIVER (non-zero), all or none.  Dependencies may
 * name elements declared before or in the same batch; a cycle, an unknown
 * element or level, a name in use: THOTH_E_INVAL / THOTH_E_EXISTS with the
 * reason.  IDS (may be NULL) receives the element ids.
 */
int thoth_pm_broker_declare(thoth_pm_broker_t *b, uint64_t driver, const thoth_pm_element_decl_t *decls,
			    uint32_t n, uint64_t now_ns, uint32_t *ids);
/* DRIVER's connection is gone: its elements die (see invariant 3). */
void thoth_pm_broker_driver_gone(thoth_pm_broker_t *b, uint64_t driver, uint64_t now_ns);

/* Element id by name: 0 or THOTH_E_NOT_FOUND (also for a dead element). */
int thoth_pm_broker_find(const thoth_pm_broker_t *b, const char *name, uint32_t *element);

/*
 * Lease LEVEL of ELEMENT for HOLDER (non-zero).  QOS_US > 0 adds a latency
 * bound: while the lease lives the element stays at a level whose exit
 * latency is <= QOS_US ("answer within N us"), whatever the lease's kind.
 */
int thoth_pm_broker_lease(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
			  thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns, uint64_t *lease);
/* The same for HOLDER in GROUP (0: none), whose leases together are held
 * to max_group_leases.  A refusal names the group as GROUP - 1 (thothd
 * passes uid + 1: uid 0 is a group). */
int thoth_pm_broker_lease_in(thoth_pm_broker_t *b, uint64_t holder, uint64_t group, uint32_t element,
			     uint32_t level, thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns,
			     uint64_t *lease);
/* A lease the host takes for HOLDER on its own account (thothd: a
 * service_qos bound's leases, bounded per connection): outside the fair
 * share and any group's cap, and not counted in them, but within
 * max_leases; dropped and ended with HOLDER like any other. */
int thoth_pm_broker_lease_internal(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
				   thoth_pm_lease_kind_t kind, uint32_t qos_us, uint64_t now_ns,
				   uint64_t *lease);
/* THOTH_E_NOT_FOUND, or THOTH_E_PERM when HOLDER does not hold it. */
int thoth_pm_broker_drop(thoth_pm_broker_t *b, uint64_t holder, uint64_t lease, uint64_t now_ns);
/* HOLDER is gone: its leases end, its requests are withdrawn. */
void thoth_pm_broker_holder_gone(thoth_pm_broker_t *b, uint64_t holder, uint64_t now_ns);
/* Name shown for HOLDER in the accounting ("pid 1234 kv").  1024 names are
 * kept; past that, the name of a holder that holds nothing is forgotten. */
int thoth_pm_broker_name_holder(thoth_pm_broker_t *b, uint64_t holder, const char *name);
bool thoth_pm_broker_holder_named(const thoth_pm_broker_t *b, uint64_t holder);

/* A request that needs ELEMENT at >= LEVEL; request_ready fires when it may be served. */
int thoth_pm_broker_request(thoth_pm_broker_t *b, uint64_t holder, uint32_t element, uint32_t level,
			    uint64_t now_ns, uint64_t *request);
/* The same for HOLDER in GROUP (0: none): the group's requests together
 * are held to max_group_requests, and the holder's share is of what its
 * group may still queue, as for leases. */
int thoth_pm_broker_request_in(thoth_pm_broker_t *b, uint64_t holder, uint64_t group, uint32_t element,
			       uint32_t level, uint64_t now_ns, uint64_t *request);
/* Requests queued or in service: all of them, and HOLDER's. */
uint32_t thoth_pm_broker_request_count(const thoth_pm_broker_t *b);
uint32_t thoth_pm_broker_holder_request_count(const thoth_pm_broker_t *b, uint64_t holder);
/* The driver served a ready request: it no longer holds the element up. */
int thoth_pm_broker_request_done(thoth_pm_broker_t *b, uint64_t request, uint64_t now_ns);

/* The driver finished the transition the broker asked for.  THOTH_E_PROTOCOL
 * if no transition to LEVEL was asked of ELEMENT. */
int thoth_pm_broker_level_reached(thoth_pm_broker_t *b, uint32_t element, uint32_t level, uint64_t now_ns);

/* The policy engine's choice for ELEMENT, used while nothing holds it (no
 * assertive lease or request, no dependent needing it; latency bounds still
 * apply).  Default: level 0. */
int thoth_pm_broker_set_policy_level(thoth_pm_broker_t *b, uint32_t element, uint32_t level,
				     uint64_t now_ns);

/* The tightest latency bound of all leases, in us (0: none). */
uint32_t thoth_pm_broker_min_qos_us(const thoth_pm_broker_t *b);
/* How often every lease was scanned for the tightest bound (only when the
 * last lease holding it left; a holder's or driver's leases going at once
 * cost one scan): for tests. */
uint64_t thoth_pm_broker_qos_scans(const thoth_pm_broker_t *b);

/* Bring residency and energy accounting up to NOW_NS. */
void thoth_pm_broker_account(thoth_pm_broker_t *b, uint64_t now_ns);

/* ---- introspection (thothctl pm, tests) ---------------------------------------------- */

typedef struct thoth_pm_element_info {
	uint32_t id;
	uint64_t driver;
	const thoth_pm_element_decl_t *decl;
	uint32_t level;                 /* settled level (the start of a running transition) */
	uint32_t target;                /* what the broker wants now */
	bool transitioning;
	uint32_t transition_to;
	bool dead;                      /* driver gone; kept while a dependent needs it */
	bool idle;                      /* nothing holds it: its policy level applies */
	uint32_t policy_level;
	uint64_t transitions;           /* completed */
	const uint64_t *residency_ns;   /* [decl->n_levels] */
	double energy_mj;               /* modelled: declared power x residency */
	uint32_t queued_requests;
} thoth_pm_element_info_t;

typedef struct thoth_pm_lease_info {
	uint64_t id, holder;
	uint32_t element, level, qos_us;
	thoth_pm_lease_kind_t kind;
	thoth_pm_lease_status_t status;
	uint64_t granted_ns;            /* taken at */
} thoth_pm_lease_info_t;

/* Who kept an element above its deepest level, and the modelled energy
 * that cost (the share above level 0's power, split among keepers).  Up to
 * 64 rows per element; the last collects further holders as "(others)". */
typedef struct thoth_pm_keeper_info {
	uint64_t holder;                /* 0: nobody (initial level, policy) */
	const char *name;
	uint32_t element;
	uint64_t awake_ns;
	double energy_mj;
} thoth_pm_keeper_info_t;

uint32_t thoth_pm_broker_element_count(const thoth_pm_broker_t *b);
int thoth_pm_broker_element_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_element_info_t *info);
int thoth_pm_broker_element_info(const thoth_pm_broker_t *b, uint32_t element, thoth_pm_element_info_t *info);
uint32_t thoth_pm_broker_lease_count(const thoth_pm_broker_t *b);
/* Leases HOLDER (GROUP) holds now (a hash lookup: no scan). */
uint32_t thoth_pm_broker_holder_lease_count(const thoth_pm_broker_t *b, uint64_t holder);
uint32_t thoth_pm_broker_group_lease_count(const thoth_pm_broker_t *b, uint64_t group);
int thoth_pm_broker_lease_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_lease_info_t *info);
uint32_t thoth_pm_broker_keeper_count(const thoth_pm_broker_t *b);
int thoth_pm_broker_keeper_at(const thoth_pm_broker_t *b, uint32_t index, thoth_pm_keeper_info_t *info);

/* Verify the invariants; 0, or THOTH_E_CORRUPT with the violation in WHY. */
int thoth_pm_broker_check(const thoth_pm_broker_t *b, char *why, size_t cap);

#endif
