/*
 * shard.c - key to member tables (SCALE-4): Maglev, jump consistent hash,
 * rendezvous, bounded loads, and the replica choice.  Pure: no I/O, no
 * clock, no allocation after construction.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/error.h"
#include "thoth/shard.h"
#include "shard_internal.h"
#include "why.h"

struct thoth_shard_table {
	thoth_shard_algo_t algo;
	uint32_t n;
	uint32_t m;                     /* MAGLEV: table entries (prime) */
	uint16_t *entry;                /* MAGLEV: m member indices */
	uint64_t *ids;                  /* RENDEZVOUS: member ids (hashed once: see seed) */
	double balance;                 /* epsilon; < 0: off */
	double cap_per_load;            /* (1 + epsilon) / n */
	uint64_t total;                 /* atomic: sum of loads */
	uint64_t *load;                 /* atomic: n counters */
};

/* MurmurHash3's finalizer: every input bit moves every output bit, so
 * sequential keys and ids spread. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

uint64_t thoth_shard_key(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ull;         /* FNV-1a 64, then mixed */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return mix64(h ^ len);
}

static bool is_prime(uint64_t v)
{
	if (v < 2)
		return false;
	if (v % 2 == 0)
		return v == 2;
	for (uint64_t d = 3; d * d <= v; d += 2)
		if (v % d == 0)
			return false;
	return true;
}

static uint32_t next_prime(uint32_t v)
{
	while (!is_prime(v))
		v++;
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Maglev's population (Eisenbud et al., NSDI 2016, pseudo-code 1): each
 * member walks its own permutation of the slots (offset + j * skip mod M)
 * and takes the next free slot in turn, so every member gets floor or ceil
 * of M/N slots and a removed member's slots are mostly refilled by the
 * members that would have had them next. */
static int maglev_fill(thoth_shard_table_t *t, const uint64_t *ids)
{
	uint32_t n = t->n, m = t->m;
	uint32_t *pos = malloc((size_t)n * sizeof *pos);
	uint32_t *skip = malloc((size_t)n * sizeof *skip);
	if (!pos || !skip) {
		free(pos);
		free(skip);
		return THOTH_E_NOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		pos[i] = (uint32_t)(mix64(ids[i] ^ 0x6a09e667f3bcc908ull) % m);
		skip[i] = (uint32_t)(mix64(ids[i] ^ 0xbb67ae8584caa73bull) % (m - 1)) + 1;
	}
	memset(t->entry, 0xff, (size_t)m * sizeof *t->entry);
	uint32_t filled = 0;
	for (;;) {
		for (uint32_t i = 0; i < n; i++) {
			uint32_t c = pos[i];
			while (t->entry[c] != 0xffff) {
				c += skip[i];
				if (c >= m)
					c -= m;
			}
			t->entry[c] = (uint16_t)i;
			c += skip[i];
			pos[i] = c >= m ? c - m : c;
			if (++filled == m)
				goto done;
		}
	}
done:
	free(pos);
	free(skip);
	return 0;
}

int thoth_shard_table_new(const thoth_shard_config_t *cfg, const uint64_t *ids, size_t n,
			  thoth_shard_table_t **out, char *why, size_t why_len)
{
	thoth__why(why, why_len, "%s", "");
	if (!cfg || !out) {
		thoth__why(why, why_len, "no config or no result pointer");
		return THOTH_E_INVAL;
	}
	*out = NULL;
	size_t max;
	switch (cfg->algo) {
	case THOTH_SHARD_MAGLEV: max = THOTH_SHARD_MAX_MAGLEV; break;
	case THOTH_SHARD_JUMP: max = THOTH_SHARD_MAX_JUMP; break;
	case THOTH_SHARD_RENDEZVOUS: max = THOTH_SHARD_MAX_RENDEZVOUS; break;
	default:
		thoth__why(why, why_len, "unknown shard algorithm %d", (int)cfg->algo);
		return THOTH_E_INVAL;
	}
	const char *an = thoth_shard_algo_name(cfg->algo);
	if (n == 0) {
		thoth__why(why, why_len, "%s: no members (N = 0)", an);
		return THOTH_E_INVAL;
	}
	if (n > max) {
		thoth__why(why, why_len, "%s: %zu members, at most %zu", an, n, max);
		return THOTH_E_INVAL;
	}
	if (!ids && cfg->algo != THOTH_SHARD_JUMP) {
		thoth__why(why, why_len, "%s: no member ids", an);
		return THOTH_E_INVAL;
	}
	double eps = cfg->balance;
	if (isnan(eps) || eps > 100.0) {
		thoth__why(why, why_len, "balance %g: not a number in (0, 100] (or < 0 for off)", eps);
		return THOTH_E_INVAL;
	}
	if (eps == 0.0)
		eps = THOTH_SHARD_DEFAULT_BALANCE;
	uint32_t m = 0;
	if (cfg->algo == THOTH_SHARD_MAGLEV) {
		if (cfg->table_size) {
			m = cfg->table_size;
			if ((uint64_t)m <= 100u * (uint64_t)n || m > THOTH_SHARD_MAX_TABLE || !is_prime(m)) {
				thoth__why(why, why_len, "maglev table size %u: not a prime > 100 N = %zu and <= %u",
				           m, 100 * n, THOTH_SHARD_MAX_TABLE);
				return THOTH_E_INVAL;
			}
		} else {
			/* A ladder, not a function of N: a key keeps its slot only
			 * while M stays the same, so M changes only when N crosses
			 * a power of two / 100 (655, 1310, ...). */
			uint64_t want = 32768;
			while (want <= 100u * (uint64_t)n)
				want *= 2;
			m = next_prime((uint32_t)want);
		}
	}
	if (cfg->algo == THOTH_SHARD_JUMP && ids) {
		for (size_t i = 0; i < n; i++)
			if (ids[i] != i) {
				thoth__why(why, why_len, "jump: shards must be numbered 0..N-1 in order; member %zu is %llu",
				           i, (unsigned long long)ids[i]);
				return THOTH_E_INVAL;
			}
	}
	if (ids && cfg->algo != THOTH_SHARD_JUMP) {
		uint64_t *sorted = malloc(n * sizeof *sorted);
		if (!sorted)
			return THOTH_E_NOMEM;
		memcpy(sorted, ids, n * sizeof *sorted);
		qsort(sorted, n, sizeof *sorted, cmp_u64);
		for (size_t i = 1; i < n; i++)
			if (sorted[i] == sorted[i - 1]) {
				thoth__why(why, why_len, "%s: member id %llu appears twice", an,
				           (unsigned long long)sorted[i]);
				free(sorted);
				return THOTH_E_INVAL;
			}
		free(sorted);
	}

	thoth_shard_table_t *t = calloc(1, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	t->algo = cfg->algo;
	t->n = (uint32_t)n;
	t->m = m;
	t->balance = eps;
	t->cap_per_load = (1.0 + eps) / (double)n;
	t->load = calloc(n, sizeof *t->load);
	int err = t->load ? 0 : THOTH_E_NOMEM;
	if (!err && cfg->algo == THOTH_SHARD_MAGLEV) {
		t->entry = malloc((size_t)m * sizeof *t->entry);
		err = t->entry ? maglev_fill(t, ids) : THOTH_E_NOMEM;
	}
	if (!err && cfg->algo == THOTH_SHARD_RENDEZVOUS) {
		t->ids = malloc(n * sizeof *t->ids);
		if (t->ids)
			for (size_t i = 0; i < n; i++)
				t->ids[i] = mix64(ids[i] ^ 0x3c6ef372fe94f82bull);
		else
			err = THOTH_E_NOMEM;
	}
	if (err) {
		thoth_shard_table_free(t);
		return err;
	}
	*out = t;
	return 0;
}

void thoth_shard_table_free(thoth_shard_table_t *t)
{
	if (!t)
		return;
	free(t->entry);
	free(t->ids);
	free(t->load);
	free(t);
}

size_t thoth_shard_members(const thoth_shard_table_t *t)
{
	return t ? t->n : 0;
}

thoth_shard_algo_t thoth_shard_table_algo(const thoth_shard_table_t *t)
{
	return t ? t->algo : THOTH_SHARD_NONE;
}

uint32_t thoth_shard_table_size(const thoth_shard_table_t *t)
{
	return t ? t->m : 0;
}

/* Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm"
 * (2014), figure 1. */
static uint32_t jump_hash(uint64_t key, uint32_t n)
{
	int64_t b = -1, j = 0;
	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ull + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1ll << 31) / (double)((key >> 33) + 1)));
	}
	return (uint32_t)b;
}

static inline uint32_t maglev_slot(const thoth_shard_table_t *t, uint64_t key)
{
	/* Lemire's multiply-shift range reduction instead of a division. */
	return (uint32_t)(((mix64(key) >> 32) * (uint64_t)t->m) >> 32);
}

static uint32_t rendezvous(const thoth_shard_table_t *t, uint64_t key, const uint64_t *cap)
{
	uint64_t best = 0;
	uint32_t who = UINT32_MAX;
	/* Key and ids are mixed once; the per-member weight is one multiply
	 * and a shift of their combination (enough to order members
	 * independently per key: tested by the 1/N movement property). */
	key = mix64(key);
	for (uint32_t i = 0; i < t->n; i++) {
		if (cap && __atomic_load_n(&t->load[i], __ATOMIC_RELAXED) >= *cap)
			continue;
		uint64_t w = (key ^ t->ids[i]) * 0x9e3779b97f4a7c15ull;
		w ^= w >> 31;
		if (who == UINT32_MAX || w > best) {
			best = w;
			who = i;
		}
	}
	return who;
}

uint32_t thoth_shard_lookup(const thoth_shard_table_t *t, uint64_t key)
{
	switch (t->algo) {
	case THOTH_SHARD_MAGLEV:
		return t->entry[maglev_slot(t, key)];
	case THOTH_SHARD_JUMP:
		return jump_hash(mix64(key), t->n);
	case THOTH_SHARD_RENDEZVOUS:
		return rendezvous(t, key, NULL);
	default:
		return 0;
	}
}

static void add_load(thoth_shard_table_t *t, uint32_t i)
{
	__atomic_fetch_add(&t->load[i], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&t->total, 1, __ATOMIC_RELAXED);
}

void shard_charge(thoth_shard_table_t *t, uint32_t member)
{
	if (t && member < t->n)
		add_load(t, member);
}

uint32_t thoth_shard_acquire(thoth_shard_table_t *t, uint64_t key)
{
	uint32_t home = thoth_shard_lookup(t, key);
	if (t->balance < 0 || t->n == 1) {
		add_load(t, home);
		return home;
	}
	/* The cap counts the load being placed: ceil((1 + eps) (total + 1) / n).
	 * Some member is always under it (the average is below), so each probe
	 * sequence below ends. */
	uint64_t total = __atomic_load_n(&t->total, __ATOMIC_RELAXED) + 1;
	double exact = t->cap_per_load * (double)total;
	uint64_t cap = (uint64_t)exact;
	cap += (double)cap < exact;                     /* ceil without libm */
	uint32_t pick = home;
	if (__atomic_load_n(&t->load[home], __ATOMIC_RELAXED) >= cap) {
		pick = UINT32_MAX;
		switch (t->algo) {
		case THOTH_SHARD_MAGLEV: {
			/* Walk the table from the key's slot: the next slots belong to
			 * other members in a key-dependent order (the ring's clockwise
			 * walk of the paper, on Maglev's table). */
			uint32_t s = maglev_slot(t, key);
			for (uint32_t k = 1; k < t->m && pick == UINT32_MAX; k++) {
				uint32_t c = s + k >= t->m ? s + k - t->m : s + k;
				uint32_t i = t->entry[c];
				if (__atomic_load_n(&t->load[i], __ATOMIC_RELAXED) < cap)
					pick = i;
			}
			break;
		}
		case THOTH_SHARD_RENDEZVOUS:
			pick = rendezvous(t, key, &cap);
			break;
		default:
			for (uint32_t k = 1; k < t->n && pick == UINT32_MAX; k++) {
				uint32_t i = (home + k) % t->n;
				if (__atomic_load_n(&t->load[i], __ATOMIC_RELAXED) < cap)
					pick = i;
			}
			break;
		}
		if (pick == UINT32_MAX)         /* racing threads filled every member */
			pick = home;
	}
	add_load(t, pick);
	return pick;
}

void thoth_shard_release(thoth_shard_table_t *t, uint32_t member)
{
	if (!t || member >= t->n)
		return;
	/* Never below zero: a release without its acquire is ignored.  (Two
	 * racing extra releases of a counter at 1 could still wrap it: a
	 * caller bug we bound, not one we can fully hide without a CAS loop
	 * on every release.) */
	if (!__atomic_load_n(&t->load[member], __ATOMIC_RELAXED))
		return;
	__atomic_fetch_sub(&t->load[member], 1, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&t->total, 1, __ATOMIC_RELAXED);
}

uint64_t thoth_shard_load(const thoth_shard_table_t *t, uint32_t member)
{
	if (!t || member >= t->n)
		return 0;
	return __atomic_load_n(&t->load[member], __ATOMIC_RELAXED);
}

thoth_shard_algo_t thoth_shard_algo_from_name(const char *name)
{
	if (!name)
		return THOTH_SHARD_NONE;
	if (!strcmp(name, "maglev"))
		return THOTH_SHARD_MAGLEV;
	if (!strcmp(name, "jump"))
		return THOTH_SHARD_JUMP;
	if (!strcmp(name, "rendezvous"))
		return THOTH_SHARD_RENDEZVOUS;
	return THOTH_SHARD_NONE;
}

const char *thoth_shard_algo_name(thoth_shard_algo_t algo)
{
	switch (algo) {
	case THOTH_SHARD_MAGLEV: return "maglev";
	case THOTH_SHARD_JUMP: return "jump";
	case THOTH_SHARD_RENDEZVOUS: return "rendezvous";
	default: return "none";
	}
}

int thoth_shard_pick_replica(const thoth_shard_replica_t *reps, size_t n, uint64_t key)
{
	int who = -1;
	unsigned best_d = 0;
	uint64_t best_w = 0;
	for (size_t i = 0; i < n && i < (size_t)INT32_MAX; i++) {
		if (!reps[i].usable)
			continue;
		unsigned d = reps[i].distance;
		uint64_t w = mix64(key ^ mix64(reps[i].id));
		if (who < 0 || d < best_d || (d == best_d && w > best_w)) {
			who = (int)i;
			best_d = d;
			best_w = w;
		}
	}
	return who;
}
