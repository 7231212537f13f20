/*
 * thoth/pool.h - calling one of many instances of a service (SCALE-3,
 * docs/SCALE.md "SCALE-3").
 *
 * A pool keeps a channel open to every live instance of a service name,
 * learnt from thothd through a resolver (thoth/service.h) and kept current
 * by its pushes, and sends each call to one of them:
 *
 *   P2C (default)  power of two choices: two instances drawn at random, the
 *                  one with the lower (outstanding + 1) x cost wins, where
 *                  outstanding is what the instance's channel counts as
 *                  sent into its request ring and not yet answered on its
 *                  response ring (no round trip; a call that timed out
 *                  counts until the service answers it), and
 *                  cost the inverse of the weight the instance's own load
 *                  reports give it (thoth_service_report_load: weight =
 *                  qps / utilisation, gRPC's ORCA weighted round robin),
 *                  normalised to the mean; 1 when nothing was reported.
 *   ROUND_ROBIN    in turn (the contrast of the benchmark).
 *   PICK_FIRST     the first usable instance (gRPC's pick_first).
 *
 * Health:
 *   - an instance that dies leaves the pool at once: its channel hangs up
 *     (the pool watches every channel's socket on the loop) and thothd
 *     pushes its removal; no timeout is involved;
 *   - calls in flight on it end with THOTH_E_PEER_GONE, except those of
 *     methods marked @idempotent in the IDL (thoth_method_info_t.idempotent),
 *     which are sent again to another instance (at most 3 attempts);
 *   - outlier ejection (Envoy's): an instance whose calls fail or time out
 *     eject_consecutive times in a row (5) is ejected for eject_base_ms
 *     (30 s) x 2^(times ejected - 1), capped at eject_max_ms (300 s), then
 *     readmitted (a level is forgotten per eject_decay_ms healthy); at most max_ejected_percent (10%, but always at least one
 *     instance) are ejected at once.  Application errors (the service
 *     answered with an IDL error) are answers, not failures.
 *
 * Threading: a pool lives on one loop and is used from that loop's thread.
 * Every completion runs on the loop.
 */
#ifndef THOTH_POOL_H
#define THOTH_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"
#include "thoth/rpc.h"
#include "thoth/service.h"
#include "thoth/shard.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum thoth_pool_policy {
	THOTH_POOL_P2C = 0,
	THOTH_POOL_ROUND_ROBIN = 1,
	THOTH_POOL_PICK_FIRST = 2,
} thoth_pool_policy_t;

typedef struct thoth_pool_config {
	const char *runtime_dir;        /* NULL: the default rule */
	const char *name;               /* the service name instances register under */
	const char *min_version;        /* as thoth_resolver_config_t */
	const thoth_interface_info_t *iface;    /* what the channels speak; kept, not copied: it must
						 * outlive the pool (its shard_algo picks the keyed
						 * calls' algorithm: 0..3, anything else refused) */
	thoth_pool_policy_t policy;
	uint32_t max_in_flight;         /* per instance: 0 = 64 (at most the ring's slots) */
	uint32_t call_timeout_ms;       /* 0: no timeout (a call still ends when its instance dies) */
	uint32_t eject_consecutive;     /* 0: 5 */
	uint32_t eject_base_ms;         /* 0: 30000 */
	uint32_t eject_max_ms;          /* 0: 300000 */
	uint32_t eject_decay_ms;        /* one ejection level forgotten per this long healthy: 0 = 10000 */
	uint32_t max_ejected_percent;   /* 0: 10 (at least one instance may always be ejected) */
	uint32_t weight_expiry_ms;      /* a load report's weight is used this long: 0 = 10000 */
	uint64_t seed;                  /* of the random choices: 0 = from the clock */
	bool shard_bounded;             /* keyed calls: bounded loads (epsilon 0.25) on calls in flight (not
					 * calls served), not strict affinity */
	void (*on_change)(void *arg);   /* optional: an instance came, went, was ejected or readmitted */
	void *arg;
} thoth_pool_config_t;

typedef struct thoth_pool thoth_pool_t;

/* 0, THOTH_E_INVAL (WHY says what: no loop, no name or iface, a bad
 * min_version, a percentage over 100, an iface->shard_algo that is no
 * thoth_shard_algo_t), THOTH_E_NOMEM.  Instances are added
 * as thothd announces them. */
int thoth_pool_new(thoth_loop_t *loop, const thoth_pool_config_t *cfg, thoth_pool_t **out,
		   char *why, size_t why_len);

/* Close every channel; calls in flight complete with THOTH_E_CLOSED first. */
void thoth_pool_free(thoth_pool_t *p);

/* What a completed call went through. */
typedef struct thoth_pool_result {
	uint64_t instance_id;           /* the instance that answered (or last failed) */
	uint32_t pid;
	uint32_t attempts;              /* 1, or more when an idempotent call was retried */
	uint32_t remote_code;           /* THOTH_E_REMOTE: the service's IDL error code
					 * (an instance that predates the method answers
					 * THOTH_E_UNKNOWN_METHOD: thoth_remote_result()) */
	const char *why;                /* on failure: what happened ("" otherwise) */
} thoth_pool_result_t;

/* RESP is M's decoded response (NULL on error), valid during the call only. */
typedef void (*thoth_pool_done_fn)(void *arg, int err, const void *resp,
				   const thoth_pool_result_t *result);

/*
 * Send M(REQ) to the instance the policy picks; DONE runs on the loop when
 * the answer arrives or the call fails, exactly once.  REQ is encoded at
 * once (it need not outlive this call).  Returns 0, THOTH_E_NOT_FOUND (no
 * usable instance now), THOTH_E_AGAIN (every usable instance has
 * max_in_flight calls), THOTH_E_INVAL (M is not of the pool's interface,
 * or is oneway), an encoding error, THOTH_E_NOMEM; DONE is not called then.
 */
int thoth_pool_start(thoth_pool_t *p, const thoth_method_info_t *m, const void *req,
		     thoth_pool_done_fn done, void *arg);

/*
 * SCALE-4: route by KEY to the shard that owns it, for an interface marked
 * @sharded(maglev|jump|rendezvous) (iface->shard_algo).  Shard k's
 * instances register with instance_id THOTH_POOL_SHARD_ID(k); several
 * instances with the same id are replicas of one shard, and the replica on
 * the caller's NUMA node is preferred, then one on its host, then any (a
 * stable choice per key).  The table (thoth/shard.h) is rebuilt when
 * instances come, go, or are ejected: a key moves only when its shard's
 * membership changed.  With shard_bounded, a shard carrying more than 1.25x
 * the average calls in flight sends a key on to the next shard (for caches:
 * never for data that lives on one shard).  It bounds calls in flight, not
 * calls served: with answers flowing, a shard that answers faster serves
 * more (docs/SCALE.md, "Bounded loads").  jump needs shards 0..N-1: a
 * missing one makes its keys fail with THOTH_E_NOT_FOUND.  Errors as
 * thoth_pool_start, and THOTH_E_INVAL when the interface is not sharded or
 * the table cannot be built (two members that are not replicas...).
 * Idempotent keyed calls are retried by key.
 */
#define THOTH_POOL_SHARD_ID(k) ((uint64_t)(k) + 1u)

int thoth_pool_start_key(thoth_pool_t *p, const thoth_method_info_t *m, const void *req, uint64_t key,
			 thoth_pool_done_fn done, void *arg);

/*
 * The same call, waiting: runs the pool's loop (thoth_loop_run_once) until
 * the answer arrives, so it must not be called from a callback of that
 * loop.  RESP is decoded into ARENA and stays valid until the next
 * thoth_pool_call on this pool.  Waits for an instance for up to TIMEOUT_MS
 * (0: does not wait) when none is usable yet.
 */
int thoth_pool_call(thoth_pool_t *p, const thoth_method_info_t *m, const void *req, void *resp,
		    thoth_arena_t *arena, int timeout_ms, thoth_pool_result_t *result);

/* Instances with an open channel that are not ejected. */
size_t thoth_pool_usable(const thoth_pool_t *p);
/* Calls in flight over all instances. */
size_t thoth_pool_in_flight(const thoth_pool_t *p);

typedef struct thoth_pool_instance {
	char addr[108];
	uint64_t instance_id;
	uint32_t pid;
	uint32_t outstanding;           /* requests sent and not answered (the channel's count) */
	double cost;                    /* 1 / normalised weight (1: none reported) */
	uint32_t utilization_permille, qps;     /* its last load report */
	bool ejected;
	uint32_t ejections;             /* times ejected */
	uint64_t ejected_for_ms;        /* remaining, when ejected */
	uint64_t eject_ms;              /* the length the pool chose for its last ejection
					 * (0: never ejected); a connection being retried
					 * is ejected but not counted here nor in ejections */
	uint64_t calls, failures;       /* answered, failed (transport or timeout) */
} thoth_pool_instance_t;

/* Fill OUT with up to CAP instances; returns how many the pool holds.
 * (The struct's size and layout are ABI: callers pass arrays of it.) */
size_t thoth_pool_instances(const thoth_pool_t *p, thoth_pool_instance_t *out, size_t cap);

/*
 * Instance I (numbered as thoth_pool_instances numbers them) as its
 * connection stands: *CONNECTING (when not NULL) whether one is being
 * opened (on the pool's loop, in steps that never wait on the peer,
 * failed by name after 500 ms; a host name in a "tcp:" address is
 * looked up on a thread of its own within that deadline, a numeric
 * address at once: docs/SCALE.md), and LAST_ERROR (when not NULL, LEN bytes, always
 * terminated; 512 hold any reason whole) why the last attempt failed,
 * naming the address ("" when none failed since it last worked).  0, or THOTH_E_INVAL (no pool, I
 * out of range).  Since libthoth version node THOTH_0.3.
 */
int thoth_pool_instance_state(const thoth_pool_t *p, size_t i, bool *connecting, char *last_error,
			      size_t len);

typedef struct thoth_pool_stats {
	/* calls: completed counts answers, application errors
	 * (THOTH_E_REMOTE) included; failed everything else, since trial37
	 * also a THOTH_E_UNKNOWN_METHOD (or another schema-skew code) from an
	 * instance older than the method, which counted completed before */
	uint64_t started, completed, failed;
	uint64_t retried;               /* idempotent calls sent again after their instance died */
	uint64_t peer_gone;             /* instances lost by hang-up or registry removal */
	uint64_t ejections, readmissions;
	uint64_t connect_failures;
} thoth_pool_stats_t;

void thoth_pool_stats(const thoth_pool_t *p, thoth_pool_stats_t *out);

const char *thoth_pool_policy_name(thoth_pool_policy_t policy);

/*
 * PM-2: attach a latency bound to the pool's resolve ("answer within
 * LATENCY_US"), exactly as thoth_resolver_set_qos on the pool's resolver
 * (thoth/service.h; docs/PM.md "QoS attached to a resolve"): thothd keeps
 * the CPU latency request at or below it and the power elements of every
 * process serving the name at levels that wake within it, for as long as
 * the pool's connection to thothd lives (sent again after a reconnect).
 * thoth_pool_free, the process's exit or kill -9 release it; 0 drops it.
 * 0, or THOTH_E_INVAL (no pool, or more than 10 s).  Whether thothd holds
 * it, or why it refused: thoth_pool_qos (a refusal never drops the pool's
 * resolve).
 */
int thoth_pool_set_qos(thoth_pool_t *p, uint32_t latency_us);
void thoth_pool_qos(const thoth_pool_t *p, thoth_resolver_qos_t *out);

/* ---- the choice alone (benchmarks, simulations, tests) -------------------- */

/* One candidate as the selection sees it. */
typedef struct thoth_pool_slot {
	uint32_t outstanding;
	float cost;                     /* > 0 */
} thoth_pool_slot_t;

/* The index POLICY picks among the N (>= 1) usable SLOTS; RNG is xorshift
 * state (non-zero), RR the round-robin cursor.  What thoth_pool_start uses. */
uint32_t thoth_pool_select(thoth_pool_policy_t policy, const thoth_pool_slot_t *slots, uint32_t n,
			   uint64_t *rng, uint32_t *rr);

#ifdef __cplusplus
}
#endif
#endif
