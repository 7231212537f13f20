/*
 * registry.h - the service registry core of thothd (IPC-4), internal.
 *
 * Pure data structure: no sockets, no clock, no printing.  thothd feeds it
 * decoded Registry requests, the current CLOCK_MONOTONIC time, and one
 * owner handle per client connection; the registry answers and reports
 * changes through a callback so thothd can push RegistryEvents.changed.
 *
 * Return values follow the contract of a generated Registry handler, so
 * the glue passes them straight through: 0, a positive
 * THOTH_REGISTRY_ERR_* (an answer the client is meant to see), or a
 * negative THOTH_E_* (a resource problem: THOTH_E_NOMEM, THOTH_E_LIMIT).
 *
 * What must stay true:
 *  - an instance whose lease has ended (expires_at_ns <= now) is never
 *    returned by resolve or list, even before thoth_registry_expire() ran:
 *    thothd's expiry timer has slack, the registry does not rely on it;
 *  - a registration belongs to the owner (client connection) that made it:
 *    only that owner renews or withdraws it, and dropping the owner removes
 *    all of them at once (peer death);
 *  - expiry is driven by ONE deadline (thoth_registry_next_expiry): the
 *    daemon arms one timer for it, there is no periodic sweep.
 *
 * Sizes: a hash table by name (groups of instances), a hash table by lease,
 * and a binary min-heap of lease deadlines: O(1) resolve of a name with few
 * instances, O(log n) register/renew/expire, tested to 100,000 entries.
 */
#ifndef THOTH_IPC_REGISTRY_H
#define THOTH_IPC_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry.thoth.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_registry thoth_registry_t;
typedef struct thoth_registry_owner thoth_registry_owner_t;

/* One change seen by one watch. INSTANCE is valid during the callback only. */
typedef struct thoth_registry_event {
	uint64_t watch_id;
	thoth_registry_owner_t *watcher;
	void *watcher_user;             /* the USER given to thoth_registry_owner_new */
	thoth_registry_ChangeKind_t kind;
	const thoth_registry_Instance_t *instance;
} thoth_registry_event_t;

/* Called once per matching watch; it must not call back into the registry. */
typedef void (*thoth_registry_event_fn)(void *arg, const thoth_registry_event_t *ev);

typedef struct thoth_registry_config {
	uint32_t max_per_owner;         /* registrations per owner (0: 64) */
	uint32_t max_watches_per_owner; /* watches per owner (0: 16) */
	uint32_t default_ttl_ms;        /* lease when ttl_ms is 0 (0: 10 s) */
	uint32_t min_ttl_ms;            /* shorter leases are raised (0: 50 ms) */
	uint32_t max_ttl_ms;            /* longer leases are lowered (0: 1 h) */
	uint64_t seed;                  /* lease id sequence (0: picked from the clock) */
	/* Interfaces this registry knows the compiled schema of: claims for them
	 * must be compatible with it (thoth_contract_compatible). */
	const thoth_interface_info_t *const *known_interfaces;
	size_t n_known_interfaces;
	thoth_registry_event_fn on_event;
	void *event_arg;
	/* SCALE-1: NUMA distances between the kernel's node numbers (row =
	 * the caller's node, column = the instance's; 10 = local, as
	 * kernel/sched/topology.h), n_nodes x n_nodes, copied.  NULL: every
	 * other node counts as equally far. */
	const uint32_t *node_distance;
	uint16_t n_nodes;
	/* SCALE-2: called once per change of any instance, whoever watches:
	 * ADDED, REMOVED, EXPIRED, or THOTH_REGISTRY_RENEWED (its deadline
	 * moved).  thothd mirrors the registry into the shared resolve table
	 * with it.  Must not call back into the registry. */
	void (*on_change)(void *arg, int kind, const thoth_registry_Instance_t *inst);
	void *change_arg;
	/* Tests and benchmarks only: decide which other hosts' instances
	 * conflict with a live local one (rank_of) by the original walk over
	 * the name's instances per candidate, O(local x remote), instead of the
	 * per-call claim index: the oracle the index is checked against. */
	bool rank_by_walk;
	/* Tests and benchmarks only: check a new local registration's claims
	 * against the name's local instances by the original walk over them,
	 * O(instances) per registration, instead of the registry's index of
	 * local claims (O(its claims)): the oracle the index is checked
	 * against.  The answers and refusal texts are the same. */
	bool register_by_walk;
} thoth_registry_config_t;

#define THOTH_REGISTRY_RENEWED 0x100    /* on_change kind beside the ChangeKind values */

int thoth_registry_new(const thoth_registry_config_t *cfg, thoth_registry_t **out);
void thoth_registry_free(thoth_registry_t *reg);

/* An owner is one client connection (uid/pid from SO_PEERCRED). */
int thoth_registry_owner_new(thoth_registry_t *reg, uint32_t uid, uint32_t pid, void *user,
			     thoth_registry_owner_t **out);
/* Peer death: drop OWNER's watches, then remove each of its registrations
 * (REMOVED events to the remaining watchers), then free OWNER. */
void thoth_registry_owner_drop(thoth_registry_t *reg, thoth_registry_owner_t *owner);
/* OWNER feeds other hosts' instances (issue 19, federation.c): its
 * registrations are REMOTE, held without a TTL until it withdraws them or
 * is dropped, not limited by max_per_owner, and outside the name-ownership
 * rule and the claims check against live instances (their host applied
 * both; they neither hold a name here nor are held to its local holder or
 * its local instances' contracts, nor do local instances answer to theirs). */
void thoth_registry_owner_set_federated(thoth_registry_owner_t *owner);
/* The executable OWNER's process runs (st_dev, st_ino of /proc/PID/exe;
 * 0, 0 when unknown): part of the name-ownership rule (register). */
void thoth_registry_owner_set_exe(thoth_registry_owner_t *owner, uint64_t dev, uint64_t ino);
size_t thoth_registry_owner_registrations(const thoth_registry_owner_t *owner);
size_t thoth_registry_owner_watches(const thoth_registry_owner_t *owner);
/* Call FN for each registration OWNER holds (FN must not change the registry). */
void thoth_registry_owner_foreach(const thoth_registry_owner_t *owner,
				  void (*fn)(void *arg, const thoth_registry_Instance_t *inst),
				  void *arg);
/* Does any registration of an owner other than EXCEPT (NULL: of any owner)
 * have endpoint address ADDR? */
bool thoth_registry_endpoint_in_use(const thoth_registry_t *reg, thoth_str_t addr,
				    const thoth_registry_owner_t *except);

/*
 * Register R (copied) for OWNER at NOW_NS.  Errors: ERR_BAD_NAME,
 * ERR_BAD_VERSION, ERR_CONTRACT_REFUSED (reason: thoth_registry_refusal),
 * ERR_TOO_MANY (per-owner limit), ERR_NOT_OWNER (the name is held by
 * another uid or executable), THOTH_E_NOMEM.
 *
 * Name ownership: the first registration of a name makes its owner's uid
 * and executable the name's holders; while any instance of the name is
 * live, further instances are accepted only from the same uid running the
 * same executable.  The name is free again once its last instance is gone
 * (withdrawn, expired, or its owner's connection closed).
 */
int thoth_registry_register(thoth_registry_t *reg, thoth_registry_owner_t *owner,
			    const thoth_registry_Registration_t *r, uint64_t now_ns, uint64_t *lease);

/*
 * The best live instance of NAME whose version is at least MIN_VERSION
 * with the same major (empty MIN_VERSION: any).  PREFER orders candidates:
 * NUMA: same NUMA node (NUMA_NODE), then the other local nodes nearest
 * first (node_distance; equally far ones are equally good), then remote; HOST:
 * local before remote; ANY/REMOTE: no preference.  Round-robin among the
 * equally good.  *OUT points into the registry until its next change.
 * Errors: ERR_BAD_NAME, ERR_BAD_VERSION, ERR_NOT_FOUND.
 */
int thoth_registry_resolve(thoth_registry_t *reg, thoth_str_t name, thoth_str_t min_version,
			   thoth_common_Locality_t prefer, uint16_t numa_node, uint64_t now_ns,
			   const thoth_registry_Instance_t **out);

/*
 * Live instances whose name starts with PREFIX, sorted by name then age.
 * LOCALITY filters: ANY all, NUMA/HOST local ones, REMOTE remote ones.
 * *OUT is a malloc'd array the caller frees (NULL when none); the
 * instances it points to are valid until the registry's next change.
 */
int thoth_registry_list(thoth_registry_t *reg, thoth_str_t prefix,
			thoth_common_Locality_t locality, uint64_t now_ns,
			const thoth_registry_Instance_t ***out, size_t *n);

/*
 * One page of thoth_registry_list: the instances sorting after the cursor
 * (AFTER_NAME, AFTER_REGISTERED_AT, AFTER_LEASE; an empty name starts at the
 * beginning), at most MAX of them; *MORE tells whether any follow.  *OUT as
 * for thoth_registry_list.
 */
int thoth_registry_list_page(thoth_registry_t *reg, thoth_str_t prefix,
			     thoth_common_Locality_t locality, uint64_t now_ns,
			     thoth_str_t after_name, uint64_t after_registered_at,
			     uint64_t after_lease, size_t max,
			     const thoth_registry_Instance_t ***out, size_t *n, bool *more);

/* Distance from node A to node B as configured (10 for A == B, 20 for
 * any pair outside the matrix). */
uint32_t thoth_registry_node_distance(const thoth_registry_t *reg, uint16_t a, uint16_t b);

/* Extend LEASE by its TTL from NOW_NS.  ERR_EXPIRED (no such live lease),
 * ERR_NOT_OWNER. */
int thoth_registry_renew(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease,
			 uint64_t now_ns, uint64_t *expires_at_ns);

/* LEASE's owner reports its load (SCALE-3): stored in the instance and
 * pushed to watchers as a LOAD change when it differs from the last report
 * (not to on_change).  ERR_EXPIRED, ERR_NOT_OWNER, THOTH_E_INVAL when a
 * value is beyond the limits below (the last good report is kept). */
#define THOTH_REGISTRY_MAX_UTILIZATION 64000u   /* permille: 64 CPUs busy */
#define THOTH_REGISTRY_MAX_QPS 100000000u
int thoth_registry_report_load(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease,
				uint32_t utilization_permille, uint32_t qps);

/* Remove LEASE (REMOVED event).  ERR_NOT_FOUND, ERR_NOT_OWNER. */
int thoth_registry_withdraw(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease);

/* Subscribe OWNER to changes of names starting with PREFIX ("" = all).
 * THOTH_E_LIMIT past max_watches_per_owner. */
int thoth_registry_watch(thoth_registry_t *reg, thoth_registry_owner_t *owner, thoth_str_t prefix,
			 uint64_t *watch_id);
/* ERR_NOT_FOUND unless OWNER holds WATCH_ID. */
int thoth_registry_unwatch(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t watch_id);

/* Remove every lease that ended at or before NOW_NS (EXPIRED events);
 * returns how many. */
size_t thoth_registry_expire(thoth_registry_t *reg, uint64_t now_ns);

/* The earliest lease end, UINT64_MAX when there is none. */
uint64_t thoth_registry_next_expiry(const thoth_registry_t *reg);

size_t thoth_registry_count(const thoth_registry_t *reg);
/* SCALE-3 (Daemon.status): other hosts' instances whose claims conflict
 * with a live local instance of their name, left last in every answer
 * (rank_of).  O(instances x their claims): one pass per name builds an
 * index of its live local claims (reg's scratch, hence not const). */
size_t thoth_registry_remote_conflicts(thoth_registry_t *reg, uint64_t now_ns);
size_t thoth_registry_watch_count(const thoth_registry_t *reg);

/* The memory of the registry's two claim indexes, for tests and benches:
 * the per-call scratch of resolve and the conflict count (its size follows
 * the largest recent need: scratch_note in registry.c) and register's index
 * of local claims (sized by the claims it holds, load 1/8..1/2). */
typedef struct thoth_registry_memory {
	size_t scratch_bytes;
	size_t scratch_shrinks;         /* times it was cut to a recent need */
	size_t local_claims_bytes;
	size_t local_claims_keys;       /* (name, claim key) pairs counted */
	size_t local_claims_shrinks;
} thoth_registry_memory_t;
void thoth_registry_memory(const thoth_registry_t *reg, thoth_registry_memory_t *out);

/* Why the last ERR_CONTRACT_REFUSED / ERR_BAD_* was answered (never NULL). */
const char *thoth_registry_refusal(const thoth_registry_t *reg);

/* ---- validation, exposed for tests and tools ---- */

typedef struct thoth_semver {
	uint32_t major, minor, patch;
} thoth_semver_t;

/* 1..128 chars of [a-z0-9_.-], starting with a letter. */
bool thoth_registry_name_valid(thoth_str_t name);
/* Strict "MAJOR.MINOR.PATCH": decimal, no leading zeros, each < 2^32.
 * 0 or THOTH_E_INVAL. */
int thoth_semver_parse(thoth_str_t s, thoth_semver_t *out);
int thoth_semver_compare(const thoth_semver_t *a, const thoth_semver_t *b);

#ifdef __cplusplus
}
#endif
#endif
