/*
 * maps.c - probe maps in one shared-memory region (a sealed memfd) per
 * loaded object: ARRAY, HASH, PERCPU_ARRAY (per thread: see below) and
 * RINGBUF.  The process running the programs writes; readers (thothctl,
 * thothd, tests) map the same memfd and read while programs run.
 *
 * Trust: once the fd is handed out, any byte may be rewritten by a reader.
 * The writer keeps the sizes, the hash free list and the ring's producer
 * position in private memory, bounds-checks every index it reads back from
 * the region (hash chains, ring tail) and bounds every walk, so a corrupt
 * region gives wrong values, never a wild access or a hang.
 *
 * Region layout (docs/PROBES.md "Maps"):
 *   0      region header: magic 'THPM', version, n_maps, descriptors
 *   8192   map 0: 64-byte map header, then its data; each map page-aligned
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "probe_internal.h"
#include "../../ipc/why.h"

#define REGION_MAGIC 0x4d504854u   /* 'T' 'H' 'P' 'M' */
#define REGION_VERSION 1u
#define REGION_HDR 8192u
#define MAP_HDR 64u
#define MAX_REGION (1ull << 30)

typedef struct map_desc {
	char name[PROBE_NAME_MAX];
	uint32_t type, key_size, value_size, max_entries;
	uint64_t offset, bytes;
} map_desc_t;

typedef struct region_hdr {
	uint32_t magic, version, n_maps, thread_slots;
	map_desc_t desc[THOTH_PROBE_MAX_MAPS];
} region_hdr_t;
_Static_assert(sizeof(region_hdr_t) <= REGION_HDR, "region header fits a page");

struct probe_map_hdr {
	uint64_t lost;        /* ringbuf: dropped records; percpu: lookups without a slot */
	uint64_t count;       /* hash: entries in use (informative) */
	uint64_t rb_head;     /* ringbuf: producer position (published) */
	uint64_t rb_tail;     /* ringbuf: consumer position (written by the reader) */
	uint64_t pad[4];
};
_Static_assert(sizeof(struct probe_map_hdr) == MAP_HDR, "map header");

/* Hash entry: next (index + 1, 0 = end), used, key, value. */
typedef struct hash_entry {
	uint32_t next;
	uint32_t used;
} hash_entry_t;

static uint64_t round8(uint64_t x) { return (x + 7) & ~7ull; }
static uint64_t round_page(uint64_t x) { return (x + 4095) & ~4095ull; }

static uint32_t pow2_at_least(uint32_t x)
{
	uint32_t p = 1;
	while (p < x && p < (1u << 30))
		p <<= 1;
	return p;
}

static void map_geometry(probe_map_t *m)
{
	m->value_stride = (uint32_t)round8(m->value_size);
	switch (m->type) {
	case BPF_MAP_TYPE_ARRAY:
		m->bytes = (uint64_t)m->max_entries * m->value_stride;
		break;
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		m->bytes = (uint64_t)THOTH_PROBE_THREAD_SLOTS * m->max_entries * m->value_stride;
		break;
	case BPF_MAP_TYPE_HASH:
		m->n_buckets = pow2_at_least(m->max_entries);
		m->entry_size = (uint32_t)(sizeof(hash_entry_t) + round8(m->key_size) + m->value_stride);
		m->bytes = (uint64_t)m->n_buckets * 4 + 8 + (uint64_t)m->max_entries * m->entry_size;
		break;
	case BPF_MAP_TYPE_RINGBUF:
		m->bytes = m->max_entries;
		break;
	}
}

static uint8_t *map_data(const probe_map_t *m) { return m->base + MAP_HDR; }

static uint8_t *hash_entries(const probe_map_t *m)
{
	return map_data(m) + round8((uint64_t)m->n_buckets * 4);
}

static hash_entry_t *hash_entry(const probe_map_t *m, uint32_t idx)
{
	return (hash_entry_t *)(hash_entries(m) + (uint64_t)idx * m->entry_size);
}

static uint32_t hash_key(const void *key, uint32_t len)
{
	/* The common keys (u32 ids, u64 pids/addresses) in a few multiplies:
	 * the 64-bit finaliser of MurmurHash3 mixes every input bit into the
	 * bucket bits. */
	if (len == 4 || len == 8) {
		uint64_t k = 0;
		memcpy(&k, key, len);
		k ^= k >> 33;
		k *= 0xff51afd7ed558ccdull;
		k ^= k >> 33;
		k *= 0xc4ceb9fe1a85ec53ull;
		k ^= k >> 33;
		return (uint32_t)k;
	}
	/* FNV-1a for the rest (structs, strings). */
	const uint8_t *p = key;
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h ^ (h >> 15);
}

static void lock(probe_map_t *m)
{
	while (__atomic_exchange_n(&m->lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&m->lock, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
}

static void unlock(probe_map_t *m)
{
	__atomic_store_n(&m->lock, 0, __ATOMIC_RELEASE);
}

/* ---- per-thread slots (PERCPU_ARRAY) ------------------------------------------ */

static uint32_t next_slot;
static __thread uint32_t my_slot;   /* slot + 1; 0 = not claimed yet */

static __attribute__((noinline, cold)) void claim_thread_slot(void)
{
	uint32_t s = __atomic_fetch_add(&next_slot, 1, __ATOMIC_RELAXED);
	my_slot = s < THOTH_PROBE_THREAD_SLOTS ? s + 1 : UINT32_MAX;
}

/* Inline in the per-thread lookup (a JIT'd program's hot call): a leaf. */
static inline uint32_t thread_slot(void)
{
	if (__builtin_expect(my_slot == 0, 0))
		claim_thread_slot();
	return my_slot == UINT32_MAX ? UINT32_MAX : my_slot - 1;
}

uint32_t probe_thread_slot(void)
{
	return thread_slot();
}

/* ---- operations ----------------------------------------------------------------- */

/* Keys of 4 and 8 bytes compare as one load each (no memcmp call). */
static inline bool key_equal(const void *a, const void *b, uint32_t len)
{
	if (len == 4) {
		uint32_t x, y;
		memcpy(&x, a, 4);
		memcpy(&y, b, 4);
		return x == y;
	}
	if (len == 8) {
		uint64_t x, y;
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		return x == y;
	}
	return memcmp(a, b, len) == 0;
}

/* Chain walk, bounded by max_entries steps with every index checked. */
static hash_entry_t *hash_find(probe_map_t *m, const void *key, uint32_t **link_out)
{
	uint32_t *buckets = (uint32_t *)map_data(m);
	uint32_t b = hash_key(key, m->key_size) & (m->n_buckets - 1);
	uint32_t *link = &buckets[b];
	for (uint32_t steps = 0; steps <= m->max_entries; steps++) {
		uint32_t idx = __atomic_load_n(link, __ATOMIC_ACQUIRE);
		if (idx == 0 || idx > m->max_entries)
			return NULL;
		hash_entry_t *e = hash_entry(m, idx - 1);
		if (__atomic_load_n(&e->used, __ATOMIC_RELAXED) && key_equal(e + 1, key, m->key_size)) {
			if (link_out)
				*link_out = link;
			return e;
		}
		link = &e->next;
	}
	return NULL;
}

uint8_t *probe_map_values(const probe_map_t *m)
{
	return map_data(m);
}

void *probe_map_lookup_percpu(probe_map_t *m, const void *key)
{
	uint32_t k;
	memcpy(&k, key, 4);
	if (k >= m->max_entries)
		return NULL;
	uint32_t s = thread_slot();
	if (__builtin_expect(s == UINT32_MAX, 0)) {
		__atomic_fetch_add(&m->hdr->lost, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	return map_data(m) + ((uint64_t)s * m->max_entries + k) * m->value_stride;
}

void *probe_map_lookup_hash(probe_map_t *m, const void *key)
{
	hash_entry_t *e = hash_find(m, key, NULL);
	return e ? (uint8_t *)(e + 1) + round8(m->key_size) : NULL;
}

void *probe_map_lookup(probe_map_t *m, const void *key)
{
	uint32_t k;
	switch (m->type) {
	case BPF_MAP_TYPE_ARRAY:
		memcpy(&k, key, 4);
		return k < m->max_entries ? map_data(m) + (uint64_t)k * m->value_stride : NULL;
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		return probe_map_lookup_percpu(m, key);
	case BPF_MAP_TYPE_HASH:
		return probe_map_lookup_hash(m, key);
	default:
		return NULL;
	}
}

int64_t probe_map_update(probe_map_t *m, const void *key, const void *value, uint64_t flags)
{
	if (flags > BPF_EXIST)
		return -EINVAL;
	uint32_t k;
	switch (m->type) {
	case BPF_MAP_TYPE_ARRAY: case BPF_MAP_TYPE_PERCPU_ARRAY: {
		memcpy(&k, key, 4);
		if (k >= m->max_entries)
			return -E2BIG;
		if (flags == BPF_NOEXIST)
			return -EEXIST;
		void *v = probe_map_lookup(m, key);
		if (!v)
			return -E2BIG;
		memcpy(v, value, m->value_size);
		return 0;
	}
	case BPF_MAP_TYPE_HASH: {
		lock(m);
		int64_t r = 0;
		hash_entry_t *e = hash_find(m, key, NULL);
		if (e) {
			if (flags == BPF_NOEXIST)
				r = -EEXIST;
			else
				memcpy((uint8_t *)(e + 1) + round8(m->key_size), value, m->value_size);
		} else if (flags == BPF_EXIST) {
			r = -ENOENT;
		} else if (m->n_free == 0) {
			r = -E2BIG;
		} else {
			uint32_t idx = m->free_list[--m->n_free];
			e = hash_entry(m, idx);
			memcpy(e + 1, key, m->key_size);
			memcpy((uint8_t *)(e + 1) + round8(m->key_size), value, m->value_size);
			uint32_t *buckets = (uint32_t *)map_data(m);
			uint32_t b = hash_key(key, m->key_size) & (m->n_buckets - 1);
			e->next = __atomic_load_n(&buckets[b], __ATOMIC_RELAXED);
			__atomic_store_n(&e->used, 1, __ATOMIC_RELAXED);
			/* Publishes key and value to lock-free lookups and readers. */
			__atomic_store_n(&buckets[b], idx + 1, __ATOMIC_RELEASE);
			__atomic_fetch_add(&m->hdr->count, 1, __ATOMIC_RELAXED);
		}
		unlock(m);
		return r;
	}
	default:
		return -EINVAL;
	}
}

int64_t probe_map_delete(probe_map_t *m, const void *key)
{
	if (m->type != BPF_MAP_TYPE_HASH)
		return -EINVAL;
	lock(m);
	uint32_t *link;
	int64_t r = -ENOENT;
	hash_entry_t *e = hash_find(m, key, &link);
	if (e) {
		uint32_t idx = (uint32_t)(((uint8_t *)e - hash_entries(m)) / m->entry_size);
		__atomic_store_n(link, __atomic_load_n(&e->next, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
		__atomic_store_n(&e->used, 0, __ATOMIC_RELAXED);
		/* The free list is private: a duplicate index from a corrupt chain
		 * cannot be pushed twice beyond its capacity. */
		if (m->n_free < m->max_entries)
			m->free_list[m->n_free++] = idx;
		__atomic_fetch_sub(&m->hdr->count, 1, __ATOMIC_RELAXED);
		r = 0;
	}
	unlock(m);
	return r;
}

/* Ring records: u32 length, u32 reserved, data padded to 8. */
int64_t probe_ringbuf_output(probe_map_t *m, const void *data, uint64_t size, uint64_t flags)
{
	(void)flags;
	uint64_t need = 8 + round8(size);
	uint64_t cap = m->max_entries, mask = cap - 1;
	if (size == 0 || need > cap / 2)
		return -E2BIG;
	lock(m);
	uint64_t head = m->rb_head;
	uint64_t tail = __atomic_load_n(&m->hdr->rb_tail, __ATOMIC_ACQUIRE);
	if (tail > head || head - tail + need > cap) {
		/* full (or a reader wrote nonsense): drop, counted */
		unlock(m);
		__atomic_fetch_add(&m->hdr->lost, 1, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	uint8_t *ring = map_data(m);
	uint32_t hdr[2] = { (uint32_t)size, 0 };
	memcpy(ring + (head & mask), hdr, 8);
	uint64_t pos = (head + 8) & mask, first = cap - pos < size ? cap - pos : size;
	memcpy(ring + pos, data, first);
	memcpy(ring, (const uint8_t *)data + first, size - first);
	m->rb_head = head + need;
	__atomic_store_n(&m->hdr->rb_head, head + need, __ATOMIC_RELEASE);
	unlock(m);
	return 0;
}

/* ---- the region ------------------------------------------------------------------ */

static int region_map(thoth_probe_maps_t *mp, const region_hdr_t *h, bool fresh)
{
	for (uint32_t i = 0; i < mp->n_maps; i++) {
		probe_map_t *m = &mp->maps[i];
		const map_desc_t *d = &h->desc[i];
		m->base = (uint8_t *)mp->region + d->offset;
		m->hdr = (struct probe_map_hdr *)m->base;
		if (m->type == BPF_MAP_TYPE_HASH && fresh) {
			m->free_list = malloc(sizeof *m->free_list * m->max_entries);
			if (!m->free_list)
				return THOTH_E_NOMEM;
			for (uint32_t k = 0; k < m->max_entries; k++)
				m->free_list[k] = m->max_entries - 1 - k;
			m->n_free = m->max_entries;
		}
	}
	return 0;
}

int thoth_probe_maps_new(const thoth_probe_object_t *obj, thoth_probe_maps_t **out)
{
	if (!obj || !out)
		return THOTH_E_INVAL;
	*out = NULL;
	thoth_probe_maps_t *mp = calloc(1, sizeof *mp);
	if (!mp)
		return THOTH_E_NOMEM;
	mp->fd = -1;
	uint64_t off = REGION_HDR;
	region_hdr_t h = { .magic = REGION_MAGIC, .version = REGION_VERSION,
	                   .n_maps = obj->n_maps, .thread_slots = THOTH_PROBE_THREAD_SLOTS };
	for (uint32_t i = 0; i < obj->n_maps; i++) {
		probe_map_t *m = &mp->maps[i];
		const probe_map_def_t *d = &obj->maps[i];
		m->type = d->type;
		m->key_size = d->key_size;
		m->value_size = d->value_size;
		m->max_entries = d->max_entries;
		snprintf(m->name, sizeof m->name, "%s", d->name);
		map_geometry(m);
		map_desc_t *md = &h.desc[i];
		memcpy(md->name, m->name, sizeof md->name);
		md->type = m->type;
		md->key_size = m->key_size;
		md->value_size = m->value_size;
		md->max_entries = m->max_entries;
		md->offset = off;
		md->bytes = MAP_HDR + m->bytes;
		off += round_page(MAP_HDR + m->bytes);
		if (off > MAX_REGION) {
			free(mp);
			return THOTH_E_LIMIT;
		}
	}
	mp->n_maps = obj->n_maps;
	mp->region_size = off;
	int r;
	mp->fd = memfd_create("thoth-probe-maps", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mp->fd < 0) {
		r = thoth_error_io(errno, "memfd_create");
		goto fail;
	}
	if (ftruncate(mp->fd, (off_t)off) < 0 ||
	    fcntl(mp->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = thoth_error_io(errno, "size the probe maps memfd");
		goto fail;
	}
	mp->region = mmap(NULL, off, PROT_READ | PROT_WRITE, MAP_SHARED, mp->fd, 0);
	if (mp->region == MAP_FAILED) {
		mp->region = NULL;
		r = thoth_error_io(errno, "mmap probe maps");
		goto fail;
	}
	memcpy(mp->region, &h, sizeof h);
	r = region_map(mp, &h, true);
	if (r < 0)
		goto fail;
	*out = mp;
	return 0;
fail:
	thoth_probe_maps_free(mp);
	return r;
}

void thoth_probe_maps_free(thoth_probe_maps_t *mp)
{
	if (!mp)
		return;
	for (uint32_t i = 0; i < mp->n_maps; i++)
		free(mp->maps[i].free_list);
	if (mp->region)
		munmap(mp->region, mp->region_size);
	if (mp->fd >= 0)
		close(mp->fd);
	free(mp);
}

int thoth_probe_maps_fd(const thoth_probe_maps_t *mp)
{
	return mp ? mp->fd : -1;
}

/* Map I's descriptor D (from the region: the peer's words) checked as the
 * loader checks an object's maps (loader.c), and against the region. */
static int check_desc(const thoth_probe_maps_t *mp, uint32_t i, const map_desc_t *d,
		      probe_map_t *m, char *why, size_t why_len)
{
	m->type = d->type;
	m->key_size = d->key_size;
	m->value_size = d->value_size;
	m->max_entries = d->max_entries;
	memcpy(m->name, d->name, sizeof m->name);
	m->name[sizeof m->name - 1] = '\0';
	/* Printed by thothctl and in JSON: no terminal escapes from a peer. */
	for (char *c = m->name; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	bool ok;
	switch (m->type) {
	case BPF_MAP_TYPE_RINGBUF:
		ok = m->key_size == 0 && m->value_size == 0 && m->max_entries >= 4096 &&
		     m->max_entries <= (64u << 20) && !(m->max_entries & (m->max_entries - 1));
		break;
	case BPF_MAP_TYPE_ARRAY:
	case BPF_MAP_TYPE_PERCPU_ARRAY:
	case BPF_MAP_TYPE_HASH:
		ok = (m->type == BPF_MAP_TYPE_HASH ? m->key_size >= 1 && m->key_size <= 512
						    : m->key_size == 4) &&
		     m->value_size >= 1 && m->value_size <= 65536 && m->max_entries >= 1 &&
		     m->max_entries <= (1u << 20);
		break;
	default:
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT, "map %u ('%s'): type %u unknown", i,
				m->name, m->type);
	}
	if (!ok)
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT,
				"map %u ('%s'): type %u with key %u B, value %u B, %u entries: "
				"not a map the loader makes", i, m->name, m->type, m->key_size,
				m->value_size, m->max_entries);
	map_geometry(m);
	/* Page-aligned as the writer places them: a map header's atomics at
	 * an odd address would be misaligned accesses. */
	if (d->offset < REGION_HDR || d->offset % 4096 != 0 || d->offset > mp->region_size ||
	    MAP_HDR + m->bytes > mp->region_size - d->offset)
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT,
				"map %u ('%s'): %llu bytes at offset %llu: not page-aligned inside "
				"the %zu-byte region", i, m->name,
				(unsigned long long)(MAP_HDR + m->bytes),
				(unsigned long long)d->offset, mp->region_size);
	return 0;
}

int thoth_probe_maps_open_why(int fd, thoth_probe_maps_t **out, char *why, size_t why_len)
{
	if (why && why_len)
		why[0] = '\0';
	if (fd < 0 || !out)
		return thoth__why_err(why, why_len, THOTH_E_INVAL, "no descriptor");
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		return thoth__why_err(why, why_len, thoth_error_io(e, "fstat probe maps"),
				"cannot fstat the descriptor: %s", strerror(e));
	}
	/* The peer's descriptor: only a memfd on shmem that cannot shrink is
	 * mapped (anything else could be truncated under the mapping: SIGBUS;
	 * a hugetlbfs hole faults a page in). */
	if (!S_ISREG(st.st_mode))
		return thoth__why_err(why, why_len, THOTH_E_PERM, "%s, not a memfd",
				S_ISFIFO(st.st_mode) ? "a pipe or FIFO" :
				S_ISSOCK(st.st_mode) ? "a socket" :
				S_ISCHR(st.st_mode) ? "a character device" :
				S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return thoth__why_err(why, why_len, THOTH_E_PERM, "%s: it could be truncated under the mapping",
				seals < 0 ? "a regular file that takes no seals (not a memfd)"
					  : "not sealed against shrinking (F_SEAL_SHRINK)");
	struct statfs sfs;
	if (fstatfs(fd, &sfs) != 0 || sfs.f_type != TMPFS_MAGIC)
		return thoth__why_err(why, why_len, THOTH_E_PERM,
				"a sealed memfd that is not on shmem (hugetlbfs?): reading a punched "
				"hole could fault");
	if (st.st_size < (off_t)REGION_HDR || (uint64_t)st.st_size > MAX_REGION)
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT,
				"%lld bytes: a region is %u bytes to 1 GiB", (long long)st.st_size,
				REGION_HDR);
	thoth_probe_maps_t *mp = calloc(1, sizeof *mp);
	if (!mp)
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
	mp->fd = -1;
	mp->readonly = true;
	mp->region_size = (size_t)st.st_size;
	/* Read-write: a ringbuf reader advances its tail. */
	mp->region = mmap(NULL, mp->region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mp->region == MAP_FAILED) {
		int e = errno;
		mp->region = NULL;
		free(mp);
		return thoth__why_err(why, why_len, thoth_error_io(e, "mmap probe maps"),
				"cannot map it read-write: %s%s", strerror(e),
				e == EPERM || e == EACCES ? " (sealed against writing, or opened read-only)"
							  : "");
	}
	region_hdr_t h;
	memcpy(&h, mp->region, sizeof h);
	int r = THOTH_E_CORRUPT;
	if (h.magic != REGION_MAGIC || h.version != REGION_VERSION || h.n_maps > THOTH_PROBE_MAX_MAPS) {
		thoth__why_err(why, why_len, r, "magic 0x%08x, version %u, %u maps: not a probe maps region "
			 "(0x%08x, %u, at most %u)", h.magic, h.version, h.n_maps, REGION_MAGIC,
			 REGION_VERSION, THOTH_PROBE_MAX_MAPS);
		goto fail;
	}
	mp->n_maps = h.n_maps;
	for (uint32_t i = 0; i < h.n_maps; i++) {
		r = check_desc(mp, i, &h.desc[i], &mp->maps[i], why, why_len);
		if (r)
			goto fail;
	}
	r = region_map(mp, &h, false);
	if (r < 0)
		goto fail;
	*out = mp;
	return 0;
fail:
	thoth_probe_maps_free(mp);
	return r;
}

int thoth_probe_maps_open(int fd, thoth_probe_maps_t **out)
{
	return thoth_probe_maps_open_why(fd, out, NULL, 0);
}

size_t thoth_probe_maps_count(const thoth_probe_maps_t *mp)
{
	return mp ? mp->n_maps : 0;
}

int thoth_probe_maps_info(const thoth_probe_maps_t *mp, size_t i, thoth_probe_map_info_t *out)
{
	if (!mp || i >= mp->n_maps || !out)
		return THOTH_E_INVAL;
	const probe_map_t *m = &mp->maps[i];
	out->name = m->name;
	out->type = m->type;
	out->key_size = m->key_size;
	out->value_size = m->value_size;
	out->max_entries = m->max_entries;
	out->lost = __atomic_load_n(&m->hdr->lost, __ATOMIC_RELAXED);
	return 0;
}

int thoth_probe_maps_foreach(thoth_probe_maps_t *mp, size_t i, thoth_probe_entry_fn fn, void *ctx)
{
	if (!mp || i >= mp->n_maps || !fn)
		return THOTH_E_INVAL;
	probe_map_t *m = &mp->maps[i];
	uint8_t *key = calloc(1, m->key_size + 8), *val = calloc(1, m->value_stride + 8);
	int r = 0;
	if (!key || !val) {
		r = THOTH_E_NOMEM;
		goto out;
	}
	switch (m->type) {
	case BPF_MAP_TYPE_ARRAY:
		for (uint32_t k = 0; k < m->max_entries && !r; k++) {
			memcpy(key, &k, 4);
			memcpy(val, map_data(m) + (uint64_t)k * m->value_stride, m->value_size);
			r = fn(key, val, ctx);
		}
		break;
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		for (uint32_t k = 0; k < m->max_entries && !r; k++) {
			memcpy(key, &k, 4);
			if (m->value_size == 8) {
				uint64_t sum = 0;
				for (uint32_t s = 0; s < THOTH_PROBE_THREAD_SLOTS; s++) {
					uint64_t x;
					memcpy(&x, map_data(m) + ((uint64_t)s * m->max_entries + k) *
					                  m->value_stride, 8);
					sum += x;
				}
				memcpy(val, &sum, 8);
			} else {
				memcpy(val, map_data(m) + (uint64_t)k * m->value_stride, m->value_size);
			}
			r = fn(key, val, ctx);
		}
		break;
	case BPF_MAP_TYPE_HASH:
		for (uint32_t k = 0; k < m->max_entries && !r; k++) {
			hash_entry_t *e = hash_entry(m, k);
			if (!__atomic_load_n(&e->used, __ATOMIC_ACQUIRE))
				continue;
			memcpy(key, e + 1, m->key_size);
			memcpy(val, (uint8_t *)(e + 1) + round8(m->key_size), m->value_size);
			r = fn(key, val, ctx);
		}
		break;
	case BPF_MAP_TYPE_RINGBUF: {
		uint64_t cap = m->max_entries, mask = cap - 1;
		uint8_t *ring = map_data(m);
		uint8_t *rec = malloc(cap / 2 + 8);
		if (!rec) {
			r = THOTH_E_NOMEM;
			break;
		}
		uint64_t tail = __atomic_load_n(&m->hdr->rb_tail, __ATOMIC_RELAXED);
		uint64_t head = __atomic_load_n(&m->hdr->rb_head, __ATOMIC_ACQUIRE);
		if (head - tail > cap)   /* writer's numbers are untrusted too */
			tail = head;
		while (tail < head && !r) {
			uint32_t h[2];
			memcpy(h, ring + (tail & mask), 8);
			uint64_t len = h[0];
			if (len == 0 || 8 + round8(len) > head - tail || len > cap / 2) {
				tail = head;
				break;
			}
			uint64_t pos = (tail + 8) & mask, first = cap - pos < len ? cap - pos : len;
			memcpy(rec, ring + pos, first);
			memcpy(rec + first, ring, len - first);
			tail += 8 + round8(len);
			uint32_t len32 = (uint32_t)len;
			r = fn(&len32, rec, ctx);
		}
		__atomic_store_n(&m->hdr->rb_tail, tail, __ATOMIC_RELEASE);
		free(rec);
		break;
	}
	}
out:
	free(key);
	free(val);
	return r;
}

int thoth_probe_map_lookup(thoth_probe_maps_t *mp, size_t i, const void *key, void *value)
{
	if (!mp || i >= mp->n_maps || !key || !value || mp->maps[i].type == BPF_MAP_TYPE_RINGBUF)
		return THOTH_E_INVAL;
	void *v = probe_map_lookup(&mp->maps[i], key);
	if (!v)
		return THOTH_E_NOT_FOUND;
	memcpy(value, v, mp->maps[i].value_size);
	return 0;
}

int thoth_probe_map_update(thoth_probe_maps_t *mp, size_t i, const void *key, const void *value,
                           uint64_t flags)
{
	if (!mp || mp->readonly || i >= mp->n_maps || !key || !value)
		return THOTH_E_INVAL;
	int64_t r = probe_map_update(&mp->maps[i], key, value, flags);
	return r == 0 ? 0 : r == -E2BIG ? THOTH_E_LIMIT : r == -EEXIST ? THOTH_E_EXISTS
	       : r == -ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_INVAL;
}
