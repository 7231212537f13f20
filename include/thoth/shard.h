/*
 * thoth/shard.h - routing a request to the shard that owns its key
 * (SCALE-4, docs/SCALE.md "SCALE-4").
 *
 * A sharded service is N members (instances, or shard numbers); a client
 * maps each request's key to one member with a table built from the member
 * list.  Three algorithms, chosen per service (the interface's
 * `@sharded(ALGO)` annotation, emitted by thothc as
 * thoth_interface_info_t.shard_algo):
 *
 *   MAGLEV      Google's Maglev lookup table: a prime table of M > 100 N
 *               entries filled from a per-member permutation.  One array
 *               index per lookup; removing a member moves about 1/N of the
 *               keys.  For members named by arbitrary 64-bit ids.
 *   JUMP        Lamping and Veach's jump consistent hash: no table, O(log N)
 *               per lookup.  Only for shards numbered 0..N-1 that grow and
 *               shrink at the end (members must be 0, 1, ... N-1).
 *   RENDEZVOUS  highest random weight: O(N) per lookup, no table, exactly
 *               1/N moved on any removal.  For small N (<= 256).
 *
 * Bounded loads (Mirrokni, Thorup and Zadimoghaddam; HAProxy's
 * hash-balance-factor): thoth_shard_acquire() assigns a key to its member
 * unless that member already carries more than (1 + epsilon) times the
 * average load, in which case the key goes to the next member of its probe
 * sequence that is under the cap.  The caller gives the load back with
 * thoth_shard_release().  epsilon 0.25 (the default) bounds every member
 * to 1.25x the average even under heavily skewed keys, at the price of
 * sending a hot key's overflow away from its home.
 *
 * Among the replicas of one shard, thoth_shard_pick_replica() prefers the
 * caller's NUMA node, then its host, then anything, stable per key.
 *
 * A table is immutable after construction except for the load counters,
 * which are updated with relaxed atomics: lookups may run from any number
 * of threads; acquire/release too (the cap is then approximate by the
 * number of racing threads).
 */
#ifndef THOTH_SHARD_H
#define THOTH_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum thoth_shard_algo {
	THOTH_SHARD_NONE = 0,           /* not sharded (the interface info's default) */
	THOTH_SHARD_MAGLEV = 1,
	THOTH_SHARD_JUMP = 2,
	THOTH_SHARD_RENDEZVOUS = 3,
} thoth_shard_algo_t;

#define THOTH_SHARD_MAX_MAGLEV      16384u    /* members of a Maglev table */
#define THOTH_SHARD_MAX_JUMP        (1u << 20)
#define THOTH_SHARD_MAX_RENDEZVOUS  256u
#define THOTH_SHARD_MAX_TABLE       (1u << 24) /* Maglev entries (an explicit table_size) */
#define THOTH_SHARD_DEFAULT_BALANCE 0.25

typedef struct thoth_shard_config {
	thoth_shard_algo_t algo;
	/* MAGLEV: entries, a prime > 100 N and <= THOTH_SHARD_MAX_TABLE.  0: the
	 * smallest prime above the smallest power of two >= 32768 that exceeds
	 * 100 N (32771 up to N = 327).  Keys keep their slot only while M is
	 * the same: a caller that rebuilds the table as members come and go
	 * keeps the size (0 does, unless N crosses a ladder step). */
	uint32_t table_size;
	/* Bounded loads' epsilon, 0 < epsilon <= 100: 0 means the default
	 * (0.25); a negative value turns bounded loads off (acquire = lookup). */
	double balance;
} thoth_shard_config_t;

typedef struct thoth_shard_table thoth_shard_table_t;

/*
 * A table over N members named by IDS[0..N-1] (JUMP: IDS may be NULL,
 * else it must be 0..N-1 in order).  Lookups return an index into IDS.
 * 0, THOTH_E_INVAL with the reason in WHY (N = 0, N above the algorithm's
 * maximum, a duplicate id, a table size that is not a prime > 100 N, a
 * NaN or out-of-range balance, an unknown algorithm), THOTH_E_NOMEM.
 */
int thoth_shard_table_new(const thoth_shard_config_t *cfg, const uint64_t *ids, size_t n,
			  thoth_shard_table_t **out, char *why, size_t why_len);
void thoth_shard_table_free(thoth_shard_table_t *t);

size_t thoth_shard_members(const thoth_shard_table_t *t);
thoth_shard_algo_t thoth_shard_table_algo(const thoth_shard_table_t *t);
uint32_t thoth_shard_table_size(const thoth_shard_table_t *t);   /* MAGLEV's M, else 0 */

/* A 64-bit key for LEN bytes (a name, a user id's text): any well-mixed
 * 64-bit value works as a key, this is one. */
uint64_t thoth_shard_key(const void *data, size_t len);

/* The member that owns KEY (an index into the ids the table was built from). */
uint32_t thoth_shard_lookup(const thoth_shard_table_t *t, uint64_t key);

/* Bounded loads: the member KEY is assigned to, its load counted. */
uint32_t thoth_shard_acquire(thoth_shard_table_t *t, uint64_t key);
void thoth_shard_release(thoth_shard_table_t *t, uint32_t member);
uint64_t thoth_shard_load(const thoth_shard_table_t *t, uint32_t member);

/* The algorithm named NAME ("maglev", "jump", "rendezvous"), or NONE. */
thoth_shard_algo_t thoth_shard_algo_from_name(const char *name);
const char *thoth_shard_algo_name(thoth_shard_algo_t algo);

/* ---- replicas of one shard ----------------------------------------------- */

/* Where a replica runs relative to the caller. */
#define THOTH_SHARD_SAME_NODE 0u
#define THOTH_SHARD_SAME_HOST 1u
#define THOTH_SHARD_REMOTE    2u

typedef struct thoth_shard_replica {
	uint64_t id;                    /* stable name (instance id) */
	uint8_t distance;               /* THOTH_SHARD_SAME_NODE .. REMOTE */
	bool usable;                    /* false: ejected or dead, skip */
} thoth_shard_replica_t;

/* The usable replica nearest the caller, ties broken by a hash of KEY and
 * the replica's id (stable while the set is).  -1 when none is usable. */
int thoth_shard_pick_replica(const thoth_shard_replica_t *reps, size_t n, uint64_t key);

#ifdef __cplusplus
}
#endif
#endif
