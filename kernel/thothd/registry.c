/*
 * registry.c - the service registry core (registry.h).
 *
 * Layout.  Each registration is one malloc: an entry_t followed by a copy
 * of every string it carries; entry->inst is the Instance view handed to
 * the encoder, its strings point into that copy.  Three indexes hold the
 * entries:
 *   - groups: open-addressing hash of name -> group_t, a vector of the
 *     name's entries plus its round-robin cursor;
 *   - leases: open-addressing hash of lease id -> entry_t;
 *   - heap:   binary min-heap on expires_at_ns (entry->heap_index).
 * Both hash tables use linear probing with backward-shift deletion (no
 * tombstones), power-of-two capacity, load factor <= 1/2.  Beside them,
 * local_claims counts the local entries' interface claims per name, so a
 * registration's conflict check needs no walk (see "the local claims
 * index"); it follows the entries in register and entry_remove.
 * An owner keeps its entries on an intrusive doubly linked list, so peer
 * death removes them without a search.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"
#include "thoth/contract.h"

enum {
	NAME_MAX_LEN = 128,
	ADDR_MAX_LEN = 1024,
	VERSION_MAX_LEN = 64,
	CLAIMS_MAX = 32,
	CLAIM_STR_MAX = 256,
};

typedef struct group group_t;

typedef struct entry {
	thoth_registry_Instance_t inst;         /* strings point after the struct */
	thoth_semver_t version;
	group_t *group;
	thoth_registry_owner_t *owner;
	struct entry *owner_prev, *owner_next;
	size_t group_index;                     /* in group->entries */
	size_t heap_index;                      /* in reg->heap */
	uint64_t ttl_ns;
	bool in_local_claims;                   /* counted in reg->local_claims */
} entry_t;

struct group {
	char *name;                             /* == entries[i]->inst.registration.name */
	uint32_t name_len;
	uint64_t hash;
	entry_t **entries;
	size_t count, cap;
	size_t local_count;                     /* entries of a non-federated owner */
	const struct entry *a_local;            /* one of them, NULL: none or not found yet */
	uint64_t round_robin;
	char name_storage[];
};

struct thoth_registry_owner {
	uint32_t uid, pid;
	uint64_t exe_dev, exe_ino;              /* 0, 0: unknown */
	void *user;
	entry_t *entries;                       /* list head */
	size_t count;
	size_t watches;
	bool federated;                         /* another host's, fed from etcd (federation.c) */
};

typedef struct watch {
	uint64_t id;
	thoth_registry_owner_t *owner;
	uint32_t prefix_len;
	char *prefix;
} watch_t;

struct thoth_registry {
	thoth_registry_config_t cfg;
	group_t **groups;                       /* hash slots */
	size_t groups_cap, groups_count;
	entry_t **leases;                       /* hash slots */
	size_t leases_cap, count;
	entry_t **heap;
	size_t heap_cap;                        /* heap length == count */
	watch_t *watches;
	size_t n_watches, watches_cap;
	uint64_t lease_state, next_watch_id;
	uint32_t *node_distance;                /* n_nodes x n_nodes, or NULL */
	uint16_t n_nodes;
	struct claim_slot *claims;              /* scratch of conflicts_begin() */
	size_t claims_cap;
	size_t scratch_window_calls, scratch_window_need;  /* scratch_note() */
	size_t scratch_shrinks;
	/* Every local (non-federated) entry's claims, counted per group under
	 * four keys (local_claims_add): register's conflict check. */
	struct local_claim *local_claims;
	size_t local_claims_cap, local_claims_used;
	size_t local_claims_shrinks;
	char refusal[256];
};

/* ---- small helpers ------------------------------------------------------ */

static void refuse(thoth_registry_t *reg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void refuse(thoth_registry_t *reg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reg->refusal, sizeof reg->refusal, fmt, ap);
	va_end(ap);
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s, size_t len)
{
	return thoth_wire_fnv1a64(s, len, THOTH_FNV64_SEED);
}

static uint64_t hash_lease(uint64_t lease)
{
	return lease * 0x9e3779b97f4a7c15ull;   /* leases are already random-ish */
}

static bool has_prefix(const char *s, size_t len, const char *prefix, size_t prefix_len)
{
	/* An empty prefix may come as a NULL view: memcmp must not see it. */
	return prefix_len == 0 || (prefix_len <= len && memcmp(s, prefix, prefix_len) == 0);
}

/* ---- validation ------------------------------------------------------------ */

bool thoth_registry_name_valid(thoth_str_t name)
{
	if (!name.ptr || name.len < 1 || name.len > NAME_MAX_LEN)
		return false;
	if (name.ptr[0] < 'a' || name.ptr[0] > 'z')
		return false;
	for (uint32_t i = 0; i < name.len; i++) {
		char c = name.ptr[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
			  c == '-';
		if (!ok)
			return false;
	}
	return true;
}

static int parse_number(const char **p, const char *end, uint32_t *out)
{
	const char *s = *p;
	if (s == end || *s < '0' || *s > '9')
		return THOTH_E_INVAL;
	if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9')
		return THOTH_E_INVAL;           /* no leading zeros */
	uint64_t v = 0;
	while (s < end && *s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return THOTH_E_INVAL;
		s++;
	}
	*out = (uint32_t)v;
	*p = s;
	return 0;
}

int thoth_semver_parse(thoth_str_t str, thoth_semver_t *out)
{
	if (!str.ptr || str.len == 0 || str.len > VERSION_MAX_LEN)
		return THOTH_E_INVAL;
	const char *p = str.ptr, *end = str.ptr + str.len;
	thoth_semver_t v;
	if (parse_number(&p, end, &v.major) || p == end || *p++ != '.' ||
	    parse_number(&p, end, &v.minor) || p == end || *p++ != '.' ||
	    parse_number(&p, end, &v.patch) || p != end)
		return THOTH_E_INVAL;
	*out = v;
	return 0;
}

int thoth_semver_compare(const thoth_semver_t *a, const thoth_semver_t *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

int thoth_registry_new(const thoth_registry_config_t *cfg, thoth_registry_t **out)
{
	thoth_registry_t *reg = calloc(1, sizeof *reg);
	if (!reg)
		return THOTH_E_NOMEM;
	if (cfg)
		reg->cfg = *cfg;
	thoth_registry_config_t *c = &reg->cfg;
	if (!c->max_per_owner)
		c->max_per_owner = 64;
	if (!c->max_watches_per_owner)
		c->max_watches_per_owner = 16;
	if (!c->default_ttl_ms)
		c->default_ttl_ms = 10000;
	if (!c->min_ttl_ms)
		c->min_ttl_ms = 50;
	if (!c->max_ttl_ms)
		c->max_ttl_ms = 3600 * 1000;
	reg->lease_state = c->seed;
	if (!reg->lease_state) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		reg->lease_state = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	reg->next_watch_id = 1;
	if (c->node_distance && c->n_nodes) {
		size_t nn = (size_t)c->n_nodes * c->n_nodes;
		reg->node_distance = malloc(nn * sizeof *reg->node_distance);
		if (!reg->node_distance) {
			free(reg);
			return THOTH_E_NOMEM;
		}
		/* A distance below 10 or absurdly large would break the
		 * ordering (same node first, remote last): clamp. */
		for (size_t i = 0; i < nn; i++) {
			uint32_t d = c->node_distance[i];
			reg->node_distance[i] = d < 10 ? 10 : d > 1000000 ? 1000000 : d;
		}
		reg->n_nodes = c->n_nodes;
	}
	c->node_distance = NULL;        /* the copy above is ours; never the caller's pointer */
	reg->groups_cap = 64;
	reg->leases_cap = 64;
	reg->groups = calloc(reg->groups_cap, sizeof *reg->groups);
	reg->leases = calloc(reg->leases_cap, sizeof *reg->leases);
	if (!reg->groups || !reg->leases) {
		thoth_registry_free(reg);
		return THOTH_E_NOMEM;
	}
	*out = reg;
	return 0;
}

void thoth_registry_free(thoth_registry_t *reg)
{
	if (!reg)
		return;
	for (size_t i = 0; i < reg->count; i++)
		free(reg->heap[i]);
	for (size_t i = 0; i < reg->groups_cap; i++) {
		if (reg->groups && reg->groups[i]) {
			free(reg->groups[i]->entries);
			free(reg->groups[i]);
		}
	}
	for (size_t i = 0; i < reg->n_watches; i++)
		free(reg->watches[i].prefix);
	free(reg->watches);
	free(reg->groups);
	free(reg->leases);
	free(reg->heap);
	free(reg->node_distance);
	free(reg->claims);
	free(reg->local_claims);
	free(reg);
}

/* ---- hash tables ------------------------------------------------------------ */

static group_t **group_slot(thoth_registry_t *reg, const char *name, size_t len, uint64_t h)
{
	size_t mask = reg->groups_cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		group_t *g = reg->groups[i];
		if (!g || (g->hash == h && g->name_len == len && memcmp(g->name, name, len) == 0))
			return &reg->groups[i];
	}
}

static int groups_grow(thoth_registry_t *reg)
{
	size_t cap = reg->groups_cap * 2;
	group_t **slots = calloc(cap, sizeof *slots);
	if (!slots)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < reg->groups_cap; i++) {
		group_t *g = reg->groups[i];
		if (!g)
			continue;
		size_t j = g->hash & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = g;
	}
	free(reg->groups);
	reg->groups = slots;
	reg->groups_cap = cap;
	return 0;
}

/* Backward-shift deletion of slot I in a linear-probing table. */
#define TABLE_DELETE(slots, cap, i, home_of)                                       \
	do {                                                                       \
		size_t mask_ = (cap) - 1, hole_ = (i), j_ = (i);                   \
		for (;;) {                                                         \
			j_ = (j_ + 1) & mask_;                                     \
			if (!(slots)[j_])                                          \
				break;                                             \
			size_t home_ = home_of((slots)[j_]) & mask_;               \
			/* move j_ into the hole unless its home lies in (hole_, j_] */ \
			bool stays_ = hole_ <= j_ ? (hole_ < home_ && home_ <= j_) \
						  : (hole_ < home_ || home_ <= j_); \
			if (stays_)                                                \
				continue;                                          \
			(slots)[hole_] = (slots)[j_];                              \
			hole_ = j_;                                                \
		}                                                                  \
		(slots)[hole_] = NULL;                                             \
	} while (0)

#define GROUP_HOME(g) ((g)->hash)
#define LEASE_HOME(e) hash_lease((e)->inst.lease)

static void group_delete(thoth_registry_t *reg, group_t *g)
{
	group_t **slot = group_slot(reg, g->name, g->name_len, g->hash);
	size_t i = (size_t)(slot - reg->groups);
	TABLE_DELETE(reg->groups, reg->groups_cap, i, GROUP_HOME);
	reg->groups_count--;
	free(g->entries);
	free(g);
}

static entry_t **lease_slot(thoth_registry_t *reg, uint64_t lease)
{
	size_t mask = reg->leases_cap - 1;
	for (size_t i = hash_lease(lease) & mask;; i = (i + 1) & mask) {
		entry_t *e = reg->leases[i];
		if (!e || e->inst.lease == lease)
			return &reg->leases[i];
	}
}

static int leases_grow(thoth_registry_t *reg)
{
	size_t cap = reg->leases_cap * 2;
	entry_t **slots = calloc(cap, sizeof *slots);
	if (!slots)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < reg->leases_cap; i++) {
		entry_t *e = reg->leases[i];
		if (!e)
			continue;
		size_t j = hash_lease(e->inst.lease) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = e;
	}
	free(reg->leases);
	reg->leases = slots;
	reg->leases_cap = cap;
	return 0;
}

static entry_t *lease_find(thoth_registry_t *reg, uint64_t lease)
{
	return lease ? *lease_slot(reg, lease) : NULL;
}

/* ---- expiry heap ------------------------------------------------------------ */

static uint64_t deadline(const entry_t *e)
{
	return e->inst.expires_at_ns;
}

static void heap_set(thoth_registry_t *reg, size_t i, entry_t *e)
{
	reg->heap[i] = e;
	e->heap_index = i;
}

static void heap_up(thoth_registry_t *reg, size_t i)
{
	entry_t *e = reg->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (deadline(reg->heap[parent]) <= deadline(e))
			break;
		heap_set(reg, i, reg->heap[parent]);
		i = parent;
	}
	heap_set(reg, i, e);
}

static void heap_down(thoth_registry_t *reg, size_t i)
{
	entry_t *e = reg->heap[i];
	size_t n = reg->count;
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= n)
			break;
		if (child + 1 < n && deadline(reg->heap[child + 1]) < deadline(reg->heap[child]))
			child++;
		if (deadline(e) <= deadline(reg->heap[child]))
			break;
		heap_set(reg, i, reg->heap[child]);
		i = child;
	}
	heap_set(reg, i, e);
}

/* Remove heap[i]: the last element fills the hole and moves to its place.
 * The heap's length is reg->count, which this decrements. */
static void heap_remove(thoth_registry_t *reg, size_t i)
{
	size_t last = --reg->count;
	entry_t *moved = reg->heap[last];
	reg->heap[last] = NULL;
	if (i == last)
		return;
	heap_set(reg, i, moved);
	heap_down(reg, i);
	heap_up(reg, moved->heap_index);
}

uint64_t thoth_registry_next_expiry(const thoth_registry_t *reg)
{
	return reg->count ? deadline(reg->heap[0]) : UINT64_MAX;
}

size_t thoth_registry_count(const thoth_registry_t *reg)
{
	return reg->count;
}

size_t thoth_registry_watch_count(const thoth_registry_t *reg)
{
	return reg->n_watches;
}

const char *thoth_registry_refusal(const thoth_registry_t *reg)
{
	return reg->refusal;
}

/* ---- events ----------------------------------------------------------------- */

static void notify_watchers(thoth_registry_t *reg, const entry_t *e, thoth_registry_ChangeKind_t kind);

static void notify(thoth_registry_t *reg, const entry_t *e, thoth_registry_ChangeKind_t kind)
{
	if (reg->cfg.on_change)
		reg->cfg.on_change(reg->cfg.change_arg, (int)kind, &e->inst);
	notify_watchers(reg, e, kind);
}

static void notify_watchers(thoth_registry_t *reg, const entry_t *e, thoth_registry_ChangeKind_t kind)
{
	if (!reg->cfg.on_event)
		return;
	const thoth_str_t name = e->inst.registration.name;
	for (size_t i = 0; i < reg->n_watches; i++) {
		const watch_t *w = &reg->watches[i];
		if (!has_prefix(name.ptr, name.len, w->prefix, w->prefix_len))
			continue;
		thoth_registry_event_t ev = {
			.watch_id = w->id,
			.watcher = w->owner,
			.watcher_user = w->owner->user,
			.kind = kind,
			.instance = &e->inst,
		};
		reg->cfg.on_event(reg->cfg.event_arg, &ev);
	}
}

/* ---- the local claims index (register's conflict check) ------------------------ */

/*
 * A new local registration's claims must be compatible with every claim of
 * the name's local instances (check_claims).  Walking them was O(instances)
 * per registration, so n registrations of one name cost O(n^2) (one
 * registration at 20000 instances: see docs/BENCHMARKS.md "Registering
 * instances of one name").  Instead every local entry's claims are counted
 * here, per group, under the four keys of claim_key_hash (interface id;
 * + major; + minor; + schema hash), and since thoth_contract_compatible
 * refuses a pair with the same interface id exactly when the majors differ
 * or the major.minor is the same and the schema hashes differ, a claim C
 * conflicts with some local claim of its group iff
 *     count(id) > count(id, major)  or
 *     count(id, major, minor) > count(id, major, minor, hash).
 * The set counted is the walk's: entries of non-federated owners, expired
 * or not until removed (entry_remove).  Only a refusal walks, to name the
 * same instance and reason as before (local_claim_conflicts decides, the
 * walk words it).  One open-addressing table for all groups (the group is
 * part of the key), so a registry of many one-instance names holds one
 * slot per key, not a table per name; load kept in (1/8, 1/2]: it doubles
 * above 1/2 and halves below 1/8, so a registration and a withdrawal
 * alternating at a boundary never resize twice in a row.
 */
typedef struct local_claim {
	const group_t *g;                       /* NULL: a free slot */
	uint64_t schema_hash;
	uint32_t interface_id;
	uint8_t major, minor, depth;
	uint32_t n;                             /* local claims of g with this key */
} local_claim_t;

enum { LOCAL_CLAIMS_MIN = 64 };

static uint64_t claim_key_hash(const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	uint64_t h = (uint64_t)c->interface_id * 0x9e3779b97f4a7c15ull ^ depth;
	if (depth >= 2)
		h = (h ^ c->major) * 0xbf58476d1ce4e5b9ull;
	if (depth >= 3)
		h = (h ^ c->minor) * 0x94d049bb133111ebull;
	if (depth >= 4)
		h = (h ^ c->schema_hash) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 29);
}

static uint64_t local_claim_home(const group_t *g, const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	uint64_t h = claim_key_hash(c, depth) ^ g->hash * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 31);
}

static uint64_t local_claim_home_of(const local_claim_t *s)
{
	thoth_common_InterfaceClaim_t c = { .interface_id = s->interface_id, .major = s->major,
					    .minor = s->minor, .schema_hash = s->schema_hash };
	return local_claim_home(s->g, &c, s->depth);
}

/* The slot of G's DEPTH key of C: its own, or the free one where it would go. */
static local_claim_t *local_claim_slot(const thoth_registry_t *reg, const group_t *g,
				       const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	size_t mask = reg->local_claims_cap - 1;
	for (size_t i = local_claim_home(g, c, depth) & mask;; i = (i + 1) & mask) {
		local_claim_t *s = &reg->local_claims[i];
		if (!s->g || (s->g == g && s->depth == depth && s->interface_id == c->interface_id &&
			      (depth < 2 || s->major == c->major) && (depth < 3 || s->minor == c->minor) &&
			      (depth < 4 || s->schema_hash == c->schema_hash)))
			return s;
	}
}

static size_t local_claim_count(const thoth_registry_t *reg, const group_t *g,
				const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	if (!reg->local_claims_cap)
		return 0;
	const local_claim_t *s = local_claim_slot(reg, g, c, depth);
	return s->g ? s->n : 0;
}

/* Does C conflict with a claim of one of G's local entries? */
static bool local_claim_conflicts(const thoth_registry_t *reg, const group_t *g,
				  const thoth_common_InterfaceClaim_t *c)
{
	size_t same_id = local_claim_count(reg, g, c, 1);
	if (!same_id)
		return false;
	return same_id > local_claim_count(reg, g, c, 2) ||          /* another major */
	       local_claim_count(reg, g, c, 3) > local_claim_count(reg, g, c, 4);  /* same minor, other schema */
}

/* Rehash into CAP slots (a power of two, above twice the keys in use). */
static int local_claims_resize(thoth_registry_t *reg, size_t cap)
{
	local_claim_t *t = calloc(cap, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < reg->local_claims_cap; i++) {
		const local_claim_t *s = &reg->local_claims[i];
		if (!s->g)
			continue;
		size_t j = local_claim_home_of(s) & (cap - 1);
		while (t[j].g)
			j = (j + 1) & (cap - 1);
		t[j] = *s;
	}
	free(reg->local_claims);
	reg->local_claims = t;
	reg->local_claims_cap = cap;
	return 0;
}

/* Room for KEYS more keys, before an entry is linked (nothing fails after). */
static int local_claims_reserve(thoth_registry_t *reg, size_t keys)
{
	size_t cap = reg->local_claims_cap ? reg->local_claims_cap : LOCAL_CLAIMS_MIN;
	while ((reg->local_claims_used + keys) * 2 > cap)
		cap *= 2;
	return cap == reg->local_claims_cap ? 0 : local_claims_resize(reg, cap);
}

static void local_claims_add(thoth_registry_t *reg, entry_t *e)
{
	const thoth_common_InterfaceClaim_list_t *cl = &e->inst.registration.claims;
	for (uint32_t j = 0; j < cl->count; j++)
		for (uint8_t depth = 1; depth <= 4; depth++) {
			const thoth_common_InterfaceClaim_t *c = &cl->items[j];
			local_claim_t *s = local_claim_slot(reg, e->group, c, depth);
			if (!s->g) {
				*s = (local_claim_t){ .g = e->group, .schema_hash = c->schema_hash,
						      .interface_id = c->interface_id, .major = c->major,
						      .minor = c->minor, .depth = depth };
				reg->local_claims_used++;
			}
			s->n++;
		}
	e->in_local_claims = true;
}

/* Backward-shift deletion of slot I (no tombstones, as TABLE_DELETE). */
static void local_claim_delete(thoth_registry_t *reg, size_t i)
{
	size_t mask = reg->local_claims_cap - 1, hole = i, j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (!reg->local_claims[j].g)
			break;
		size_t home = local_claim_home_of(&reg->local_claims[j]) & mask;
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		reg->local_claims[hole] = reg->local_claims[j];
		hole = j;
	}
	reg->local_claims[hole] = (local_claim_t){ 0 };
	reg->local_claims_used--;
}

static void local_claims_sub(thoth_registry_t *reg, entry_t *e)
{
	if (!e->in_local_claims)
		return;
	const thoth_common_InterfaceClaim_list_t *cl = &e->inst.registration.claims;
	for (uint32_t j = 0; j < cl->count; j++)
		for (uint8_t depth = 1; depth <= 4; depth++) {
			local_claim_t *s = local_claim_slot(reg, e->group, &cl->items[j], depth);
			if (s->g && !--s->n)
				local_claim_delete(reg, (size_t)(s - reg->local_claims));
		}
	e->in_local_claims = false;
	/* Far above need (load under 1/8): halve while that leaves it at most
	 * 1/4 full.  A failed allocation keeps the larger table. */
	size_t cap = reg->local_claims_cap;
	if (cap <= LOCAL_CLAIMS_MIN || reg->local_claims_used * 8 >= cap)
		return;
	while (cap > LOCAL_CLAIMS_MIN && reg->local_claims_used * 4 <= cap / 2)
		cap /= 2;
	if (!local_claims_resize(reg, cap))
		reg->local_claims_shrinks++;
}

/* ---- removing an entry from every index -------------------------------------- */

static void entry_remove(thoth_registry_t *reg, entry_t *e, thoth_registry_ChangeKind_t kind)
{
	notify(reg, e, kind);

	entry_t **slot = lease_slot(reg, e->inst.lease);
	TABLE_DELETE(reg->leases, reg->leases_cap, (size_t)(slot - reg->leases), LEASE_HOME);

	heap_remove(reg, e->heap_index);

	group_t *g = e->group;
	if (!e->owner->federated)
		g->local_count--;
	if (g->a_local == e)
		g->a_local = NULL;
	local_claims_sub(reg, e);               /* before the group can go: it keys the counts */
	size_t last = g->count - 1;
	if (e->group_index != last) {
		g->entries[e->group_index] = g->entries[last];
		g->entries[e->group_index]->group_index = e->group_index;
	}
	g->count--;
	if (!g->count)
		group_delete(reg, g);

	thoth_registry_owner_t *o = e->owner;
	if (e->owner_prev)
		e->owner_prev->owner_next = e->owner_next;
	else
		o->entries = e->owner_next;
	if (e->owner_next)
		e->owner_next->owner_prev = e->owner_prev;
	o->count--;
	free(e);
}

/* ---- owners ------------------------------------------------------------------- */

int thoth_registry_owner_new(thoth_registry_t *reg, uint32_t uid, uint32_t pid, void *user,
			     thoth_registry_owner_t **out)
{
	(void)reg;
	thoth_registry_owner_t *o = calloc(1, sizeof *o);
	if (!o)
		return THOTH_E_NOMEM;
	o->uid = uid;
	o->pid = pid;
	o->user = user;
	*out = o;
	return 0;
}

static void watch_remove_at(thoth_registry_t *reg, size_t i)
{
	reg->watches[i].owner->watches--;
	free(reg->watches[i].prefix);
	reg->watches[i] = reg->watches[--reg->n_watches];
}

void thoth_registry_owner_drop(thoth_registry_t *reg, thoth_registry_owner_t *owner)
{
	if (!owner)
		return;
	/* Its watches first: a dying connection is told nothing more. */
	for (size_t i = reg->n_watches; i-- > 0;)
		if (reg->watches[i].owner == owner)
			watch_remove_at(reg, i);
	while (owner->entries)
		entry_remove(reg, owner->entries, THOTH_REGISTRY_CHANGE_KIND_REMOVED);
	free(owner);
}

void thoth_registry_owner_set_federated(thoth_registry_owner_t *owner)
{
	owner->federated = true;
}

void thoth_registry_owner_set_exe(thoth_registry_owner_t *owner, uint64_t dev, uint64_t ino)
{
	owner->exe_dev = dev;
	owner->exe_ino = ino;
}

size_t thoth_registry_owner_registrations(const thoth_registry_owner_t *owner)
{
	return owner->count;
}

size_t thoth_registry_owner_watches(const thoth_registry_owner_t *owner)
{
	return owner->watches;
}

void thoth_registry_owner_foreach(const thoth_registry_owner_t *owner,
				  void (*fn)(void *arg, const thoth_registry_Instance_t *inst),
				  void *arg)
{
	for (const entry_t *e = owner->entries; e; e = e->owner_next)
		fn(arg, &e->inst);
}

bool thoth_registry_endpoint_in_use(const thoth_registry_t *reg, thoth_str_t addr,
				    const thoth_registry_owner_t *except)
{
	for (size_t i = 0; i < reg->count; i++) {
		if (reg->heap[i]->owner == except)
			continue;
		const thoth_str_t *a = &reg->heap[i]->inst.registration.endpoint.addr;
		if (a->len == addr.len && (!a->len || memcmp(a->ptr, addr.ptr, a->len) == 0))
			return true;
	}
	return false;
}

/* ---- register ------------------------------------------------------------------ */

/* Copy S into *CURSOR (NUL-terminated) and return the view. */
static thoth_str_t copy_str(char **cursor, thoth_str_t s)
{
	char *p = *cursor;
	if (s.len)
		memcpy(p, s.ptr, s.len);
	p[s.len] = 0;
	*cursor = p + s.len + 1;
	return (thoth_str_t){ p, s.len };
}

/* A claim's names as thothc accepts them in a schema: an identifier
 * ([A-Za-z_][A-Za-z0-9_]*), for a package several joined by dots.  They
 * are shown (thothctl services, the dashboard's interface names, /metrics
 * labels): bytes no schema can hold (quotes, controls, stray non-UTF-8)
 * are refused here rather than escaped by every reader. */
static bool claim_name_valid(thoth_str_t s, bool dotted)
{
	bool start = true;
	for (size_t i = 0; i < s.len; i++) {
		char c = s.ptr[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (dotted && c == '.' && !start && i + 1 < s.len) {
			start = true;
			continue;
		}
		if (!alpha && (start || c < '0' || c > '9'))
			return false;
		start = false;
	}
	return s.len > 0;
}

/* FEDERATED: R is another host's instance (its owner is federated). */
static int check_claims(thoth_registry_t *reg, const thoth_registry_Registration_t *r, bool federated)
{
	const thoth_common_InterfaceClaim_list_t *claims = &r->claims;
	if (claims->count > CLAIMS_MAX) {
		refuse(reg, "%u interface claims, at most %d allowed", claims->count, CLAIMS_MAX);
		return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
	}
	char qualified[2 * CLAIM_STR_MAX + 2];
	for (uint32_t i = 0; i < claims->count; i++) {
		const thoth_common_InterfaceClaim_t *c = &claims->items[i];
		if (!c->package.len || !c->interface.len || c->package.len > CLAIM_STR_MAX ||
		    c->interface.len > CLAIM_STR_MAX) {
			refuse(reg, "claim %u: package and interface must be 1..%d characters", i,
			       CLAIM_STR_MAX);
			return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
		}
		if (!claim_name_valid(c->package, true) || !claim_name_valid(c->interface, false)) {
			refuse(reg, "claim %u: package and interface must be names as in a schema "
			       "(identifiers of [A-Za-z0-9_], the package's joined by dots)", i);
			return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
		}
		snprintf(qualified, sizeof qualified, "%.*s.%.*s", (int)c->package.len,
			 c->package.ptr, (int)c->interface.len, c->interface.ptr);
		if (thoth_wire_fnv1a32(qualified) != c->interface_id) {
			refuse(reg, "claim %s: interface id %08x is not the id of that name (%08x)",
			       qualified, c->interface_id, thoth_wire_fnv1a32(qualified));
			return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
		}
		thoth_contract_claim_t claim = {
			.package = c->package.ptr, .interface = c->interface.ptr,
			.interface_id = c->interface_id, .major = c->major, .minor = c->minor,
			.schema_hash = c->schema_hash, .features = c->features,
		};
		char why[200];
		/* Against the schemas compiled into this registry. */
		for (size_t k = 0; k < reg->cfg.n_known_interfaces; k++) {
			const thoth_interface_info_t *iface = reg->cfg.known_interfaces[k];
			if (iface->id != c->interface_id)
				continue;
			thoth_contract_claim_t known;
			thoth_contract_claim_init(&known, iface, iface->features);
			if (thoth_contract_compatible(&known, &claim, why, sizeof why)) {
				refuse(reg, "claim %s: %s", qualified, why);
				return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
			}
		}
		/* Against what live instances of the same name claim for it:
		 * this host's among themselves only.  Another host's instance
		 * was held to its own host's instances there, as with name
		 * ownership; compared here, one mirrored with another major (a
		 * rolling upgrade, or a peer that lies) refused this host's own
		 * service, or the first of either kept the other out.  The
		 * index decides (O(1)); only a refusal walks, to name the
		 * first conflicting instance as the walk always did. */
		group_t *g = federated ? NULL : *group_slot(reg, r->name.ptr, r->name.len,
							    hash_name(r->name.ptr, r->name.len));
		if (g && !g->local_count)
			g = NULL;
		if (g && !reg->cfg.register_by_walk && !local_claim_conflicts(reg, g, c))
			g = NULL;
		for (size_t k = 0; g && k < g->count; k++) {
			if (g->entries[k]->owner->federated)
				continue;
			const thoth_common_InterfaceClaim_list_t *other =
				&g->entries[k]->inst.registration.claims;
			for (uint32_t m = 0; m < other->count; m++) {
				const thoth_common_InterfaceClaim_t *o = &other->items[m];
				if (o->interface_id != c->interface_id)
					continue;
				thoth_contract_claim_t live = {
					.package = o->package.ptr, .interface = o->interface.ptr,
					.interface_id = o->interface_id, .major = o->major,
					.minor = o->minor, .schema_hash = o->schema_hash,
					.features = o->features,
				};
				if (thoth_contract_compatible(&live, &claim, why, sizeof why)) {
					refuse(reg, "claim %s: conflicts with live instance %llu: %s",
					       qualified,
					       (unsigned long long)g->entries[k]->inst.registration
						       .endpoint.instance_id,
					       why);
					return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
				}
			}
		}
	}
	return 0;
}

static uint64_t clamp_ttl_ns(const thoth_registry_t *reg, uint32_t ttl_ms)
{
	if (!ttl_ms)
		ttl_ms = reg->cfg.default_ttl_ms;
	if (ttl_ms < reg->cfg.min_ttl_ms)
		ttl_ms = reg->cfg.min_ttl_ms;
	if (ttl_ms > reg->cfg.max_ttl_ms)
		ttl_ms = reg->cfg.max_ttl_ms;
	return (uint64_t)ttl_ms * 1000000ull;
}

/* Make room for one more entry in every index before touching any. */
static int reserve_one(thoth_registry_t *reg, group_t *g)
{
	if ((reg->count + 1) * 2 > reg->leases_cap && leases_grow(reg))
		return THOTH_E_NOMEM;
	if (!g && (reg->groups_count + 1) * 2 > reg->groups_cap && groups_grow(reg))
		return THOTH_E_NOMEM;
	if (reg->count == reg->heap_cap) {
		size_t cap = reg->heap_cap ? reg->heap_cap * 2 : 64;
		entry_t **h = realloc(reg->heap, cap * sizeof *h);
		if (!h)
			return THOTH_E_NOMEM;
		reg->heap = h;
		reg->heap_cap = cap;
	}
	if (g && g->count == g->cap) {
		size_t cap = g->cap * 2;
		entry_t **v = realloc(g->entries, cap * sizeof *v);
		if (!v)
			return THOTH_E_NOMEM;
		g->entries = v;
		g->cap = cap;
	}
	return 0;
}

static group_t *group_new(const char *name, uint32_t len, uint64_t h)
{
	group_t *g = calloc(1, sizeof *g + len + 1);
	if (!g)
		return NULL;
	g->entries = malloc(2 * sizeof *g->entries);
	if (!g->entries) {
		free(g);
		return NULL;
	}
	g->cap = 2;
	memcpy(g->name_storage, name, len);
	g->name = g->name_storage;
	g->name_len = len;
	g->hash = h;
	return g;
}

int thoth_registry_register(thoth_registry_t *reg, thoth_registry_owner_t *owner,
			    const thoth_registry_Registration_t *r, uint64_t now_ns, uint64_t *lease)
{
	reg->refusal[0] = 0;
	if (!thoth_registry_name_valid(r->name)) {
		refuse(reg, "bad name \"%.*s\": 1..%d characters of [a-z0-9_.-], starting with a letter",
		       (int)(r->name.len > 140 ? 140 : r->name.len), r->name.ptr ? r->name.ptr : "",
		       NAME_MAX_LEN);
		return THOTH_REGISTRY_ERR_BAD_NAME;
	}
	thoth_semver_t version;
	if (thoth_semver_parse(r->version, &version)) {
		refuse(reg, "bad version \"%.*s\": expected MAJOR.MINOR.PATCH",
		       (int)(r->version.len > 64 ? 64 : r->version.len),
		       r->version.ptr ? r->version.ptr : "");
		return THOTH_REGISTRY_ERR_BAD_VERSION;
	}
	const thoth_common_Endpoint_t *ep = &r->endpoint;
	if (ep->addr.len > ADDR_MAX_LEN) {
		refuse(reg, "endpoint address longer than %d bytes", ADDR_MAX_LEN);
		return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
	}
	/* Printed as they are by `thothctl services`, the log and the
	 * dashboard: a newline or an escape in an address forged whole lines
	 * of the table (an instance that is not there) or drove the reader's
	 * terminal.  A socket path may hold them; none worth serving does. */
	for (uint32_t i = 0; i < ep->addr.len; i++) {
		unsigned char ch = (unsigned char)ep->addr.ptr[i];
		if (ch < 0x20 || ch == 0x7f) {
			refuse(reg, "endpoint address holds control byte 0x%02x at offset %u: "
			       "addresses are shown as they are, so none is taken", ch, i);
			return THOTH_REGISTRY_ERR_CONTRACT_REFUSED;
		}
	}
	if (owner->count >= reg->cfg.max_per_owner && !owner->federated) {
		refuse(reg, "this connection already holds %zu registrations (limit %u)",
		       owner->count, reg->cfg.max_per_owner);
		return THOTH_REGISTRY_ERR_TOO_MANY;
	}
	uint64_t h = hash_name(r->name.ptr, r->name.len);
	group_t *g = *group_slot(reg, r->name.ptr, r->name.len, h);
	/* Every live local instance has the same holder (this rule, and an
	 * owner's executable set once, before its first registration):
	 * compare with one, g->a_local, found again only when it went.
	 * Other hosts' instances (a federated owner) neither hold the name
	 * here nor are held to it: their host applied its own rule. */
	const thoth_registry_owner_t *holder = NULL;
	if (g && !owner->federated && g->local_count) {
		for (size_t i = 0; !g->a_local && i < g->count; i++)
			if (!g->entries[i]->owner->federated)
				g->a_local = g->entries[i];
		holder = g->a_local->owner;
	}
	if (holder) {
		if (holder->uid != owner->uid || holder->exe_dev != owner->exe_dev ||
		    holder->exe_ino != owner->exe_ino) {
			/* Named as ever: the first local instance's owner. */
			for (size_t i = 0; i < g->count; i++)
				if (!g->entries[i]->owner->federated) {
					holder = g->entries[i]->owner;
					break;
				}
			refuse(reg, "name \"%.*s\" is held by %s (pid %u) while it has live "
			       "instances: only the same uid running the same executable may add one",
			       (int)r->name.len, r->name.ptr,
			       holder->uid != owner->uid ? "another uid" : "another executable",
			       holder->pid);
			return THOTH_REGISTRY_ERR_NOT_OWNER;
		}
	}
	int err = check_claims(reg, r, owner->federated);
	if (err)
		return err;
	if (reserve_one(reg, g))
		return THOTH_E_NOMEM;
	if (!owner->federated && local_claims_reserve(reg, (size_t)r->claims.count * 4))
		return THOTH_E_NOMEM;

	/* One allocation: the entry, the claims array, then every string. */
	size_t n_claims = r->claims.count;
	size_t strings = r->name.len + 1 + r->version.len + 1 + ep->addr.len + 1;
	for (size_t i = 0; i < n_claims; i++)
		strings += r->claims.items[i].package.len + 1 + r->claims.items[i].interface.len + 1;
	size_t claims_off = thoth_wire_pad8(sizeof(entry_t));
	size_t strings_off = claims_off + n_claims * sizeof(thoth_common_InterfaceClaim_t);
	entry_t *e = calloc(1, strings_off + strings);
	if (!e)
		return THOTH_E_NOMEM;
	bool new_group = !g;
	if (new_group) {
		g = group_new(r->name.ptr, r->name.len, h);
		if (!g) {
			free(e);
			return THOTH_E_NOMEM;
		}
	}

	char *cursor = (char *)e + strings_off;
	thoth_registry_Registration_t *copy = &e->inst.registration;
	*copy = *r;
	copy->name = copy_str(&cursor, r->name);
	copy->version = copy_str(&cursor, r->version);
	copy->endpoint.addr = copy_str(&cursor, ep->addr);
	thoth_common_InterfaceClaim_t *claims = (thoth_common_InterfaceClaim_t *)((char *)e + claims_off);
	for (size_t i = 0; i < n_claims; i++) {
		claims[i] = r->claims.items[i];
		claims[i].package = copy_str(&cursor, r->claims.items[i].package);
		claims[i].interface = copy_str(&cursor, r->claims.items[i].interface);
	}
	copy->claims.items = n_claims ? claims : NULL;
	copy->claims.count = (uint32_t)n_claims;
	e->version = version;
	/* A local registration without a TTL is held by its owner's connection
	 * (issue 13 section 0): it ends when the owner drops (peer death) or
	 * withdraws, never by time, so nobody has to send heartbeats.  ttl_ns 0
	 * marks it; its deadline never comes.  Remote ones always get a TTL,
	 * except another host's (federated owner): etcd's lease bounds those,
	 * and federation.c removes them when etcd deletes their keys. */
	bool held = r->ttl_ms == 0 && (ep->locality != THOTH_COMMON_LOCALITY_REMOTE || owner->federated);
	e->ttl_ns = held ? 0 : clamp_ttl_ns(reg, r->ttl_ms);
	copy->ttl_ms = (uint32_t)(e->ttl_ns / 1000000ull);
	e->inst.registered_at_ns = now_ns;
	e->inst.expires_at_ns = held ? UINT64_MAX : now_ns + e->ttl_ns;
	e->inst.owner_uid = owner->uid;
	do
		e->inst.lease = splitmix64(&reg->lease_state);
	while (!e->inst.lease || lease_find(reg, e->inst.lease));

	/* Link into every index (space was reserved above: nothing fails now). */
	if (new_group) {
		*group_slot(reg, g->name, g->name_len, h) = g;
		reg->groups_count++;
	}
	e->group = g;
	e->group_index = g->count;
	g->entries[g->count++] = e;
	*lease_slot(reg, e->inst.lease) = e;
	reg->heap[reg->count] = e;
	e->heap_index = reg->count;
	reg->count++;
	heap_up(reg, e->heap_index);
	e->owner = owner;
	e->owner_next = owner->entries;
	if (owner->entries)
		owner->entries->owner_prev = e;
	owner->entries = e;
	owner->count++;
	if (!owner->federated) {
		g->local_count++;
		if (!g->a_local)
			g->a_local = e;
		local_claims_add(reg, e);       /* room reserved above */
	}

	*lease = e->inst.lease;
	notify(reg, e, THOTH_REGISTRY_CHANGE_KIND_ADDED);
	return 0;
}

/* ---- resolve and list ------------------------------------------------------------- */

uint32_t thoth_registry_node_distance(const thoth_registry_t *reg, uint16_t a, uint16_t b)
{
	if (a == b)
		return 10;
	if (!reg->node_distance || a >= reg->n_nodes || b >= reg->n_nodes)
		return 20;
	return reg->node_distance[(size_t)a * reg->n_nodes + b];
}

static thoth_contract_claim_t claim_view(const thoth_common_InterfaceClaim_t *o)
{
	return (thoth_contract_claim_t){
		.package = o->package.ptr, .interface = o->interface.ptr,
		.interface_id = o->interface_id, .major = o->major, .minor = o->minor,
		.schema_hash = o->schema_hash, .features = o->features,
	};
}

/* Another host's instance E whose claims conflict with a live local instance
 * of the same name (G): it was not held to this host's claims at
 * registration (that refused this host's own service during a rolling
 * upgrade), so it is handed out last, never before a local instance of the
 * major this host serves (resolve with prefer ANY gave it as often as the
 * local one).
 *
 * remote_conflicts_walk is the definition: per candidate, a walk over every
 * live local instance's claims.  Per resolve that is O(local x remote) (326
 * ms at 5000 + 5000 instances of one name, on thothd's one loop thread), so
 * the registry asks conflicts_of instead: one pass over the group counts the
 * live local claims under four keys (interface id; + major; + minor;
 * + schema hash) in reg->claims, and since thoth_contract_compatible refuses
 * a pair with the same interface id exactly when the majors differ or the
 * major.minor is the same and the schema hashes differ, E's claim C
 * conflicts with some live local claim iff
 *     count(id) > count(id, major)  or
 *     count(id, major, minor) > count(id, major, minor, hash).
 * The walk stays: the fallback when the index cannot be allocated, and the
 * oracle of tests and bench (thoth_registry_config_t.rank_by_walk). */
/* A live local instance at NOW_NS: whose claims other hosts' instances are
 * held to.  One predicate for the walk, the index's sizing and its build:
 * the index is sized from the claims it counts, so a build that inserted
 * claims the sizing skipped could fill it and probe forever. */
static bool live_local(const entry_t *l, uint64_t now_ns)
{
	return !l->owner->federated && l->inst.expires_at_ns > now_ns;
}

static bool remote_conflicts_walk(const group_t *g, const entry_t *e, uint64_t now_ns)
{
	if (!e->owner->federated)
		return false;
	const thoth_common_InterfaceClaim_list_t *mine = &e->inst.registration.claims;
	char why[160];
	for (size_t k = 0; k < g->count; k++) {
		const entry_t *l = g->entries[k];
		if (!live_local(l, now_ns))
			continue;
		const thoth_common_InterfaceClaim_list_t *theirs = &l->inst.registration.claims;
		for (uint32_t i = 0; i < mine->count; i++)
			for (uint32_t j = 0; j < theirs->count; j++) {
				if (mine->items[i].interface_id != theirs->items[j].interface_id)
					continue;
				thoth_contract_claim_t a = claim_view(&theirs->items[j]);
				thoth_contract_claim_t b = claim_view(&mine->items[i]);
				if (thoth_contract_compatible(&a, &b, why, sizeof why))
					return true;
			}
	}
	return false;
}

/* One key of the live local claims' index: the first DEPTH fields of a
 * claim (1: interface id ... 4: + schema hash); depth 0 is a free slot. */
typedef struct claim_slot {
	uint64_t schema_hash;
	uint32_t interface_id;
	uint8_t major, minor, depth;
	size_t n;                               /* live local claims with this key */
} claim_slot_t;

/* How the conflicts of one group at one time are decided. */
typedef struct conflicts {
	thoth_registry_t *reg;
	const group_t *g;
	uint64_t now_ns;
	enum { CONFLICTS_NONE, CONFLICTS_INDEX, CONFLICTS_WALK } how;
	size_t mask;                            /* INDEX: slots in use - 1 */
} conflicts_t;

static bool claim_key_is(const claim_slot_t *s, const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	return s->depth == depth && s->interface_id == c->interface_id &&
	       (depth < 2 || s->major == c->major) && (depth < 3 || s->minor == c->minor) &&
	       (depth < 4 || s->schema_hash == c->schema_hash);
}

/* The slot of C's DEPTH key: its own, or the free one where it would go. */
static claim_slot_t *claim_slot(const conflicts_t *cx, const thoth_common_InterfaceClaim_t *c,
				uint8_t depth)
{
	size_t i = (size_t)claim_key_hash(c, depth) & cx->mask;
	for (;;) {
		claim_slot_t *s = &cx->reg->claims[i];
		if (!s->depth || claim_key_is(s, c, depth))
			return s;
		i = (i + 1) & cx->mask;
	}
}

static size_t claim_count(const conflicts_t *cx, const thoth_common_InterfaceClaim_t *c, uint8_t depth)
{
	const claim_slot_t *s = claim_slot(cx, c, depth);
	return s->depth ? s->n : 0;
}

/*
 * The scratch's size over time: it grows at once to what a call needs, and
 * shrinks only when every one of the last SCRATCH_WINDOW calls (any name's
 * resolve or conflict count, those that build no index needing 0) needed
 * under a quarter of it, to the most any of them needed.  One 5000-instance
 * name left 1.5 MiB for good before; now it goes within SCRATCH_WINDOW
 * calls of the name shrinking, while resolves of a large name among those
 * of small ones keep it and pay no reallocation each.
 */
enum { SCRATCH_WINDOW = 64, SCRATCH_KEEP = 256 };       /* calls; slots always kept (6 KiB) */

static void scratch_note(thoth_registry_t *reg, size_t need)
{
	if (need > reg->scratch_window_need)
		reg->scratch_window_need = need;
	if (++reg->scratch_window_calls < SCRATCH_WINDOW)
		return;
	size_t keep = reg->scratch_window_need;
	reg->scratch_window_calls = 0;
	reg->scratch_window_need = 0;
	if (reg->claims_cap <= SCRATCH_KEEP || reg->claims_cap <= 4 * keep)
		return;
	if (keep < SCRATCH_KEEP)
		keep = SCRATCH_KEEP;
	claim_slot_t *t = malloc(keep * sizeof *t);
	if (!t)
		return;                 /* keep the larger one */
	free(reg->claims);
	reg->claims = t;
	reg->claims_cap = keep;
	reg->scratch_shrinks++;
}

/* Decide how G's conflicts at NOW_NS are answered; build the index when
 * some of G's instances are another host's and some live local one
 * claims anything.  O(G's instances x their claims). */
static conflicts_t conflicts_begin(thoth_registry_t *reg, const group_t *g, uint64_t now_ns)
{
	conflicts_t cx = { .reg = reg, .g = g, .now_ns = now_ns, .how = CONFLICTS_NONE };
	size_t remote = 0, local_claims = 0;
	for (size_t k = 0; k < g->count; k++) {
		const entry_t *l = g->entries[k];
		if (l->owner->federated)
			remote++;
		else if (live_local(l, now_ns))
			local_claims += l->inst.registration.claims.count;
	}
	if (!remote || !local_claims || reg->cfg.rank_by_walk) {
		scratch_note(reg, 0);
		if (remote && local_claims)
			cx.how = CONFLICTS_WALK;
		return cx;
	}
	/* Four keys per claim, load factor <= 1/2. */
	size_t cap = 16;
	while (cap < local_claims * 8)
		cap *= 2;
	scratch_note(reg, cap);
	if (cap > reg->claims_cap) {
		claim_slot_t *t = malloc(cap * sizeof *t);
		if (!t) {
			cx.how = CONFLICTS_WALK;        /* slower, same answer */
			return cx;
		}
		free(reg->claims);
		reg->claims = t;
		reg->claims_cap = cap;
	}
	memset(reg->claims, 0, cap * sizeof *reg->claims);
	cx.mask = cap - 1;
	cx.how = CONFLICTS_INDEX;
	for (size_t k = 0; k < g->count; k++) {
		const entry_t *l = g->entries[k];
		if (!live_local(l, now_ns))
			continue;
		const thoth_common_InterfaceClaim_list_t *theirs = &l->inst.registration.claims;
		for (uint32_t j = 0; j < theirs->count; j++)
			for (uint8_t depth = 1; depth <= 4; depth++) {
				const thoth_common_InterfaceClaim_t *c = &theirs->items[j];
				claim_slot_t *s = claim_slot(&cx, c, depth);
				if (!s->depth)
					*s = (claim_slot_t){ .schema_hash = c->schema_hash,
							     .interface_id = c->interface_id,
							     .major = c->major, .minor = c->minor,
							     .depth = depth };
				s->n++;
			}
	}
	return cx;
}

/* remote_conflicts_walk(CX's group, E, CX's time), answered by CX's index. */
static bool conflicts_of(const conflicts_t *cx, const entry_t *e)
{
	if (cx->how == CONFLICTS_NONE || !e->owner->federated)
		return false;
	if (cx->how == CONFLICTS_WALK)
		return remote_conflicts_walk(cx->g, e, cx->now_ns);
	const thoth_common_InterfaceClaim_list_t *mine = &e->inst.registration.claims;
	for (uint32_t i = 0; i < mine->count; i++) {
		const thoth_common_InterfaceClaim_t *c = &mine->items[i];
		size_t same_id = claim_count(cx, c, 1);
		if (!same_id)
			continue;
		if (same_id > claim_count(cx, c, 2))
			return true;            /* a live local claim of another major */
		if (claim_count(cx, c, 3) > claim_count(cx, c, 4))
			return true;            /* same major.minor, another schema */
	}
	return false;
}

size_t thoth_registry_remote_conflicts(thoth_registry_t *reg, uint64_t now_ns)
{
	size_t n = 0;
	for (size_t i = 0; i < reg->groups_cap; i++) {
		const group_t *g = reg->groups ? reg->groups[i] : NULL;
		if (!g)
			continue;
		conflicts_t cx = conflicts_begin(reg, g, now_ns);
		if (cx.how == CONFLICTS_NONE)
			continue;
		for (size_t k = 0; k < g->count; k++)
			n += conflicts_of(&cx, g->entries[k]);
	}
	return n;
}

/* Rank of E for a caller on NUMA_NODE under PREFER (lower is better).
 * NUMA: 0 same node; another local node 1 + its distance from the
 * caller's (SCALE-1: nearer nodes first, equal distances tie and share
 * the round robin); remote last.  HOST: local 0, remote 1.  A remote
 * instance whose claims conflict with a live local one: last under any. */
static unsigned rank_of(const thoth_registry_t *reg, const conflicts_t *cx, const entry_t *e,
			thoth_common_Locality_t prefer, uint16_t numa_node)
{
	const thoth_common_Endpoint_t *ep = &e->inst.registration.endpoint;
	bool remote = ep->locality == THOTH_COMMON_LOCALITY_REMOTE;
	if (conflicts_of(cx, e))
		return UINT32_MAX - 1;  /* last under any preference */
	switch (prefer) {
	case THOTH_COMMON_LOCALITY_NUMA:
		if (remote)
			return UINT32_MAX - 2;
		if (ep->numa_node == numa_node)
			return 0;
		return 1 + thoth_registry_node_distance(reg, numa_node, ep->numa_node);
	case THOTH_COMMON_LOCALITY_HOST:
		return remote;
	default:
		return 0;
	}
}

static bool version_ok(const entry_t *e, const thoth_semver_t *min)
{
	return !min || (e->version.major == min->major && thoth_semver_compare(&e->version, min) >= 0);
}

int thoth_registry_resolve(thoth_registry_t *reg, thoth_str_t name, thoth_str_t min_version,
			   thoth_common_Locality_t prefer, uint16_t numa_node, uint64_t now_ns,
			   const thoth_registry_Instance_t **out)
{
	if (!thoth_registry_name_valid(name))
		return THOTH_REGISTRY_ERR_BAD_NAME;
	thoth_semver_t min, *minp = NULL;
	if (min_version.len) {
		if (thoth_semver_parse(min_version, &min))
			return THOTH_REGISTRY_ERR_BAD_VERSION;
		minp = &min;
	}
	group_t *g = *group_slot(reg, name.ptr, name.len, hash_name(name.ptr, name.len));
	if (!g)
		return THOTH_REGISTRY_ERR_NOT_FOUND;
	conflicts_t cx = conflicts_begin(reg, g, now_ns);
	/* Pass 1: the best rank and how many candidates share it. */
	unsigned best = UINT32_MAX;    /* above every rank_of() */
	size_t ties = 0;
	for (size_t i = 0; i < g->count; i++) {
		const entry_t *e = g->entries[i];
		if (e->inst.expires_at_ns <= now_ns || !version_ok(e, minp))
			continue;
		unsigned r = rank_of(reg, &cx, e, prefer, numa_node);
		if (r < best) {
			best = r;
			ties = 0;
		}
		ties += r == best;
	}
	if (!ties)
		return THOTH_REGISTRY_ERR_NOT_FOUND;
	/* Pass 2: the (round_robin mod ties)-th of them. */
	size_t pick = (size_t)(g->round_robin++ % ties);
	for (size_t i = 0; i < g->count; i++) {
		const entry_t *e = g->entries[i];
		if (e->inst.expires_at_ns <= now_ns || !version_ok(e, minp) ||
		    rank_of(reg, &cx, e, prefer, numa_node) != best)
			continue;
		if (pick-- == 0) {
			*out = &e->inst;
			return 0;
		}
	}
	return THOTH_REGISTRY_ERR_NOT_FOUND;    /* unreachable */
}

static int compare_instances(const void *pa, const void *pb)
{
	const thoth_registry_Instance_t *a = *(const thoth_registry_Instance_t *const *)pa;
	const thoth_registry_Instance_t *b = *(const thoth_registry_Instance_t *const *)pb;
	const thoth_str_t *na = &a->registration.name, *nb = &b->registration.name;
	int c = memcmp(na->ptr, nb->ptr, na->len < nb->len ? na->len : nb->len);
	if (c)
		return c;
	if (na->len != nb->len)
		return na->len < nb->len ? -1 : 1;
	if (a->registered_at_ns != b->registered_at_ns)
		return a->registered_at_ns < b->registered_at_ns ? -1 : 1;
	return a->lease < b->lease ? -1 : a->lease > b->lease;
}

static bool locality_matches(const entry_t *e, thoth_common_Locality_t want)
{
	bool remote = e->inst.registration.endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE;
	switch (want) {
	case THOTH_COMMON_LOCALITY_ANY:
		return true;
	case THOTH_COMMON_LOCALITY_REMOTE:
		return remote;
	default:
		return !remote;
	}
}

int thoth_registry_list(thoth_registry_t *reg, thoth_str_t prefix,
			thoth_common_Locality_t locality, uint64_t now_ns,
			const thoth_registry_Instance_t ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0, len = 0;
	const thoth_registry_Instance_t **v = NULL;
	for (size_t i = 0; i < reg->groups_cap; i++) {
		const group_t *g = reg->groups[i];
		if (!g || !has_prefix(g->name, g->name_len, prefix.ptr, prefix.len))
			continue;
		for (size_t k = 0; k < g->count; k++) {
			const entry_t *e = g->entries[k];
			if (e->inst.expires_at_ns <= now_ns || !locality_matches(e, locality))
				continue;
			if (len == cap) {
				cap = cap ? cap * 2 : 16;
				const thoth_registry_Instance_t **nv = realloc(v, cap * sizeof *nv);
				if (!nv) {
					free(v);
					return THOTH_E_NOMEM;
				}
				v = nv;
			}
			v[len++] = &e->inst;
		}
	}
	if (len > 1)
		qsort(v, len, sizeof *v, compare_instances);
	*out = v;
	*n = len;
	return 0;
}

int thoth_registry_list_page(thoth_registry_t *reg, thoth_str_t prefix,
			     thoth_common_Locality_t locality, uint64_t now_ns,
			     thoth_str_t after_name, uint64_t after_registered_at,
			     uint64_t after_lease, size_t max,
			     const thoth_registry_Instance_t ***out, size_t *n, bool *more)
{
	*more = false;
	const thoth_registry_Instance_t **all;
	size_t count;
	int r = thoth_registry_list(reg, prefix, locality, now_ns, &all, &count);
	if (r)
		return r;
	/* The first instance after the cursor, in list's order (a binary
	 * search: the array is sorted by compare_instances). */
	size_t first = 0;
	if (after_name.len) {
		thoth_registry_Instance_t cursor = { .registered_at_ns = after_registered_at,
						     .lease = after_lease };
		cursor.registration.name = after_name;
		const thoth_registry_Instance_t *key = &cursor;
		size_t lo = 0, hi = count;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (compare_instances(&all[mid], &key) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		first = lo;
	}
	size_t take = count - first < max ? count - first : max;
	*more = first + take < count;
	*n = take;
	if (!take) {
		free(all);              /* NULL when nothing matched at all */
		*out = NULL;
		return 0;
	}
	memmove(all, all + first, take * sizeof *all);
	*out = all;
	return 0;
}

/* ---- renew, withdraw, expire -------------------------------------------------------- */

int thoth_registry_renew(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease,
			 uint64_t now_ns, uint64_t *expires_at_ns)
{
	entry_t *e = lease_find(reg, lease);
	if (!e)
		return THOTH_REGISTRY_ERR_EXPIRED;
	if (e->owner != owner)
		return THOTH_REGISTRY_ERR_NOT_OWNER;
	if (e->inst.expires_at_ns <= now_ns) {
		/* Ended before the expiry timer (with its slack) ran: too late. */
		entry_remove(reg, e, THOTH_REGISTRY_CHANGE_KIND_EXPIRED);
		return THOTH_REGISTRY_ERR_EXPIRED;
	}
	if (e->ttl_ns) {                        /* held ones have no deadline to move */
		e->inst.expires_at_ns = now_ns + e->ttl_ns;
		heap_down(reg, e->heap_index);  /* deadlines only move later */
		if (reg->cfg.on_change)
			reg->cfg.on_change(reg->cfg.change_arg, THOTH_REGISTRY_RENEWED, &e->inst);
	}
	if (expires_at_ns)
		*expires_at_ns = e->inst.expires_at_ns;
	return 0;
}

int thoth_registry_report_load(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease,
				uint32_t utilization_permille, uint32_t qps)
{
	entry_t *e = lease_find(reg, lease);
	if (!e)
		return THOTH_REGISTRY_ERR_EXPIRED;
	if (e->owner != owner)
		return THOTH_REGISTRY_ERR_NOT_OWNER;
	/* A hostile or broken reporter: refused, the last good value kept. */
	if (utilization_permille > THOTH_REGISTRY_MAX_UTILIZATION || qps > THOTH_REGISTRY_MAX_QPS)
		return THOTH_E_INVAL;
	if (e->inst.utilization_permille == utilization_permille && e->inst.qps == qps)
		return 0;                       /* nothing new for the watchers */
	e->inst.utilization_permille = utilization_permille;
	e->inst.qps = qps;
	/* Watchers only: the shared resolve table and other on_change users
	 * track membership, not load. */
	notify_watchers(reg, e, THOTH_REGISTRY_CHANGE_KIND_LOAD);
	return 0;
}

int thoth_registry_withdraw(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t lease)
{
	entry_t *e = lease_find(reg, lease);
	if (!e)
		return THOTH_REGISTRY_ERR_NOT_FOUND;
	if (e->owner != owner)
		return THOTH_REGISTRY_ERR_NOT_OWNER;
	entry_remove(reg, e, THOTH_REGISTRY_CHANGE_KIND_REMOVED);
	return 0;
}

size_t thoth_registry_expire(thoth_registry_t *reg, uint64_t now_ns)
{
	size_t n = 0;
	while (reg->count && deadline(reg->heap[0]) <= now_ns) {
		entry_remove(reg, reg->heap[0], THOTH_REGISTRY_CHANGE_KIND_EXPIRED);
		n++;
	}
	return n;
}

/* ---- watches ---------------------------------------------------------------------- */

int thoth_registry_watch(thoth_registry_t *reg, thoth_registry_owner_t *owner, thoth_str_t prefix,
			 uint64_t *watch_id)
{
	if (owner->watches >= reg->cfg.max_watches_per_owner)
		return THOTH_E_LIMIT;
	if (prefix.len > NAME_MAX_LEN)
		return THOTH_E_INVAL;
	if (reg->n_watches == reg->watches_cap) {
		size_t cap = reg->watches_cap ? reg->watches_cap * 2 : 8;
		watch_t *w = realloc(reg->watches, cap * sizeof *w);
		if (!w)
			return THOTH_E_NOMEM;
		reg->watches = w;
		reg->watches_cap = cap;
	}
	char *copy = malloc(prefix.len + 1);
	if (!copy)
		return THOTH_E_NOMEM;
	if (prefix.len)
		memcpy(copy, prefix.ptr, prefix.len);
	copy[prefix.len] = 0;
	watch_t *w = &reg->watches[reg->n_watches++];
	*w = (watch_t){ .id = reg->next_watch_id++, .owner = owner, .prefix = copy,
			.prefix_len = prefix.len };
	owner->watches++;
	*watch_id = w->id;
	return 0;
}

int thoth_registry_unwatch(thoth_registry_t *reg, thoth_registry_owner_t *owner, uint64_t watch_id)
{
	for (size_t i = 0; i < reg->n_watches; i++) {
		if (reg->watches[i].id == watch_id && reg->watches[i].owner == owner) {
			watch_remove_at(reg, i);
			return 0;
		}
	}
	return THOTH_REGISTRY_ERR_NOT_FOUND;
}

void thoth_registry_memory(const thoth_registry_t *reg, thoth_registry_memory_t *out)
{
	*out = (thoth_registry_memory_t){
		.scratch_bytes = reg->claims_cap * sizeof(claim_slot_t),
		.scratch_shrinks = reg->scratch_shrinks,
		.local_claims_bytes = reg->local_claims_cap * sizeof(local_claim_t),
		.local_claims_keys = reg->local_claims_used,
		.local_claims_shrinks = reg->local_claims_shrinks,
	};
}
