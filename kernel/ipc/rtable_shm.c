/*
 * rtable_shm.c - the shared resolve table (rtable_shm.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rtable_shm.h"
#include "thoth/error.h"
#include "thoth/wire.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/*
 * The seqlock without fences (ThreadSanitizer does not model them, and
 * they cost the same as what follows on x86): the writer's entry stores are
 * releases, so the odd `seq` store before them is visible first; the
 * reader's entry loads are acquires, so its second `seq` load cannot move
 * before them.  On x86 both are plain moves.
 */
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define RLOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)          /* reader: entry words */
#define WSTORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE) /* writer: entry words */

static uint64_t name_hash(const char *s, size_t len)
{
	return thoth_wire_fnv1a64(s, len, THOTH_FNV64_SEED) | 1u;
}

static rt_entry_t *entry_at(const uint8_t *base, uint32_t i)
{
	return (rt_entry_t *)(void *)(base + RT_HEADER_SIZE + (size_t)i * RT_ENTRY_SIZE);
}

/* ---- writer ------------------------------------------------------------- */

int rt_writer_init(rt_writer_t *w, uint32_t buckets, const uint32_t *distance, unsigned n_nodes)
{
	memset(w, 0, sizeof *w);
	w->fd = -1;
	if (buckets < 64 || (buckets & (buckets - 1)) || buckets > (1u << 20))
		return THOTH_E_INVAL;
	size_t size = RT_HEADER_SIZE + (size_t)buckets * RT_ENTRY_SIZE;
	int fd = memfd_create("thoth-resolve-table", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return THOTH_E_IO;
	uint8_t *base = MAP_FAILED;
	if (ftruncate(fd, (off_t)size) ||
	    (base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED ||
	    /* Our writable mapping exists; from now on nobody can make one. */
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)) {
		int e = errno;
		if (base != MAP_FAILED)
			munmap(base, size);
		close(fd);
		errno = e;
		return THOTH_E_IO;
	}
	rt_header_t *h = (rt_header_t *)(void *)base;
	h->magic = RT_MAGIC;
	h->layout = RT_LAYOUT;
	h->buckets = buckets;
	h->entry_size = RT_ENTRY_SIZE;
	h->size = size;
	h->header_size = RT_HEADER_SIZE;
	h->writer_pid = (uint32_t)getpid();
	unsigned n = distance && n_nodes <= RT_MAX_NODES ? n_nodes : 0;
	for (unsigned a = 0; a < n; a++)
		for (unsigned b = 0; b < n; b++) {
			uint32_t d = distance[a * n_nodes + b];
			h->distance[a * RT_MAX_NODES + b] = (uint16_t)(d > UINT16_MAX ? UINT16_MAX : d);
		}
	h->n_nodes = n;
	w->fd = fd;
	w->base = base;
	w->size = size;
	w->buckets = buckets;
	return 0;
}

void rt_writer_free(rt_writer_t *w)
{
	if (w->base)
		munmap(w->base, w->size);
	if (w->fd >= 0)
		close(w->fd);
	w->base = NULL;
	w->fd = -1;
}

uint32_t rt_writer_count(const rt_writer_t *w)
{
	return LOAD(&((const rt_header_t *)(const void *)w->base)->count);
}

static void write_begin(rt_header_t *h)
{
	uint64_t s = LOAD(&h->seq);
	/* Readers that see any entry store below also see seq odd: those
	 * stores are releases (WSTORE). */
	STORE(&h->seq, s + 1);
}

static void write_end_quiet(rt_header_t *h)
{
	__atomic_store_n(&h->seq, LOAD(&h->seq) + 1, __ATOMIC_RELEASE);
}

static void write_end(rt_header_t *h)
{
	write_end_quiet(h);
	STORE(&h->changes, LOAD(&h->changes) + 1);
	__atomic_store_n(&h->generation, LOAD(&h->generation) + 1, __ATOMIC_RELEASE);
	/* Watchers (rt_wait) sleep on the generation word in other processes:
	 * a shared futex.  One system call per registry change, which is
	 * rare; readers never make one. */
	syscall(SYS_futex, &h->generation, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Copy SRC (LEN bytes) into the zero-padded field DST of CAP bytes with
 * relaxed word stores (readers load the same words concurrently). */
static void store_words(void *dst, const void *src, size_t len, size_t cap)
{
	uint64_t tmp[RT_ENTRY_SIZE / 8] = { 0 };
	memcpy(tmp, src, len);
	uint64_t *d = dst;
	for (size_t i = 0; i < cap / 8; i++)
		WSTORE(&d[i], tmp[i]);
}

static void entry_copy(rt_entry_t *dst, const rt_entry_t *src)
{
	const uint64_t *s = (const uint64_t *)(const void *)src;
	uint64_t *d = (uint64_t *)(void *)dst;
	for (size_t i = 0; i < RT_ENTRY_SIZE / 8; i++)
		WSTORE(&d[i], LOAD(&s[i]));
}

static void entry_clear(rt_entry_t *e)
{
	uint64_t *d = (uint64_t *)(void *)e;
	for (size_t i = 0; i < RT_ENTRY_SIZE / 8; i++)
		WSTORE(&d[i], 0);
}

void rt_writer_set_incomplete(rt_writer_t *w, bool incomplete)
{
	rt_header_t *h = (rt_header_t *)(void *)w->base;
	if ((LOAD(&h->incomplete) != 0) == incomplete)
		return;
	write_begin(h);
	WSTORE(&h->incomplete, incomplete ? 1u : 0u);
	write_end(h);
}

void rt_writer_status(rt_writer_t *w, const rt_status_t *st)
{
	rt_status_t *dst = (rt_status_t *)(void *)(w->base + RT_STATUS_OFF);
	rt_status_t tmp = *st;
	uint64_t s = LOAD(&dst->seq);
	STORE(&dst->seq, s + 1);
	tmp.magic = RT_STATUS_MAGIC;
	tmp.seq = s + 1;
	/* Word by word with release stores, like the entries: a reader that
	 * sees any of them also sees seq odd.  seq is skipped here and ends
	 * the section. */
	const uint64_t *src = (const uint64_t *)(const void *)&tmp;
	uint64_t *d = (uint64_t *)(void *)dst;
	const size_t seq_word = offsetof(rt_status_t, seq) / 8;
	for (size_t i = 0; i < sizeof tmp / 8; i++)
		if (i != seq_word && LOAD(&d[i]) != src[i])
			WSTORE(&d[i], src[i]);
	__atomic_store_n(&dst->seq, s + 2, __ATOMIC_RELEASE);
}

int rt_writer_add(rt_writer_t *w, const rt_instance_t *in)
{
	rt_header_t *h = (rt_header_t *)(void *)w->base;
	if (!in->name_len || in->name_len > RT_NAME_MAX || !in->addr_len || in->addr_len > RT_ADDR_MAX ||
	    h->count + 1 > w->buckets / 4 * 3) {
		if (!h->incomplete) {
			write_begin(h);
			WSTORE(&h->incomplete, 1u);
			write_end(h);
		}
		return THOTH_E_LIMIT;
	}
	uint64_t hash = name_hash(in->name, in->name_len);
	uint32_t mask = w->buckets - 1, i = (uint32_t)hash & mask;
	while (LOAD(&entry_at(w->base, i)->hash))
		i = (i + 1) & mask;
	rt_entry_t e = {
		.hash = hash, .lease = in->lease, .expires_at_ns = in->expires_at_ns,
		.instance_id = in->instance_id, .major = in->major, .minor = in->minor,
		.patch = in->patch, .pid = in->pid, .numa_node = in->numa_node,
		.locality = in->remote ? RT_REMOTE : RT_LOCAL, .name_len = (uint8_t)in->name_len,
		.addr_len = (uint16_t)in->addr_len,
	};
	memcpy(e.name, in->name, in->name_len);
	memcpy(e.addr, in->addr, in->addr_len);
	write_begin(h);
	rt_entry_t *slot = entry_at(w->base, i);
	store_words(slot, &e, sizeof e, sizeof e);
	WSTORE(&h->count, h->count + 1);
	write_end(h);
	return 0;
}

/* The bucket holding LEASE of NAME, or -1. */
static int64_t find_lease(const rt_writer_t *w, const char *name, size_t name_len, uint64_t lease)
{
	if (!name_len || name_len > RT_NAME_MAX)
		return -1;
	uint64_t hash = name_hash(name, name_len);
	uint32_t mask = w->buckets - 1, i = (uint32_t)hash & mask;
	for (;; i = (i + 1) & mask) {
		rt_entry_t *e = entry_at(w->base, i);
		uint64_t eh = LOAD(&e->hash);
		if (!eh)
			return -1;
		if (eh == hash && LOAD(&e->lease) == lease)
			return i;
	}
}

int rt_writer_renew(rt_writer_t *w, const char *name, size_t name_len, uint64_t lease, uint64_t expires_at_ns)
{
	int64_t at = find_lease(w, name, name_len, lease);
	if (at < 0)
		return THOTH_E_NOT_FOUND;
	rt_header_t *h = (rt_header_t *)(void *)w->base;
	write_begin(h);
	WSTORE(&entry_at(w->base, (uint32_t)at)->expires_at_ns, expires_at_ns);
	write_end_quiet(h);
	return 0;
}

int rt_writer_remove(rt_writer_t *w, const char *name, size_t name_len, uint64_t lease)
{
	rt_header_t *h = (rt_header_t *)(void *)w->base;
	int64_t at = find_lease(w, name, name_len, lease);
	if (at < 0)
		return THOTH_E_NOT_FOUND;
	uint32_t mask = w->buckets - 1, i = (uint32_t)at;
	write_begin(h);
	/* Backward-shift deletion: no tombstones, so probe chains stay short.
	 * Readers cannot see the intermediate states (seq is odd). */
	uint32_t hole = i;
	for (uint32_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
		rt_entry_t *e = entry_at(w->base, j);
		uint64_t eh = LOAD(&e->hash);
		if (!eh)
			break;
		uint32_t home = (uint32_t)eh & mask;
		/* Move e into the hole unless its home lies cyclically in (hole, j]. */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			entry_copy(entry_at(w->base, hole), e);
			hole = j;
		}
	}
	entry_clear(entry_at(w->base, hole));
	WSTORE(&h->count, h->count - 1);
	write_end(h);
	return 0;
}

/* ---- reader ------------------------------------------------------------- */

static int corrupt(char *why, size_t len, const char *what)
{
	if (why && len)
		snprintf(why, len, "resolve table: %s", what);
	return THOTH_E_CORRUPT;
}

int rt_view_init(rt_view_t *v, const void *base, size_t size, char *why, size_t why_len)
{
	memset(v, 0, sizeof *v);
	if (size < RT_HEADER_SIZE)
		return corrupt(why, why_len, "smaller than its header");
	const rt_header_t *h = base;
	uint32_t magic = LOAD(&h->magic), layout = LOAD(&h->layout), buckets = LOAD(&h->buckets);
	uint32_t esz = LOAD(&h->entry_size), hsz = LOAD(&h->header_size), nn = LOAD(&h->n_nodes);
	uint64_t hsize = LOAD(&h->size);
	if (magic != RT_MAGIC)
		return corrupt(why, why_len, "bad magic");
	if (layout != RT_LAYOUT)
		return corrupt(why, why_len, "unknown layout version");
	if (esz != RT_ENTRY_SIZE || hsz != RT_HEADER_SIZE || buckets < 64 || (buckets & (buckets - 1)) ||
	    buckets > (1u << 20) || nn > RT_MAX_NODES)
		return corrupt(why, why_len, "impossible geometry");
	if (hsize != size || (uint64_t)RT_HEADER_SIZE + (uint64_t)buckets * RT_ENTRY_SIZE != size)
		return corrupt(why, why_len, "geometry does not match the file's size");
	v->base = base;
	v->size = size;
	v->buckets = buckets;
	v->mask = buckets - 1;
	v->n_nodes = nn;
	return 0;
}

static bool parse_u32(const char **p, uint32_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s++ - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = (uint32_t)v;
	*p = s;
	return true;
}

int rt_key_init(rt_key_t *k, const char *name, const char *min_version)
{
	memset(k, 0, sizeof *k);
	size_t len = name ? strlen(name) : 0;
	if (!len || len > RT_NAME_MAX)
		return THOTH_E_INVAL;
	memcpy(k->name_words, name, len);
	k->len = (uint32_t)len;
	k->hash = name_hash(name, len);
	k->any_version = !min_version || !*min_version;
	if (!k->any_version) {
		const char *p = min_version;
		if (!parse_u32(&p, &k->major) || *p++ != '.' || !parse_u32(&p, &k->minor) || *p++ != '.' ||
		    !parse_u32(&p, &k->patch) || *p)
			return THOTH_E_INVAL;
	}
	return 0;
}

static uint64_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Is there a NUL among the first LEN bytes of W?  (A word at a time:
 * the classic "has a zero byte" test, the last word masked to LEN.) */
static bool has_nul(const uint64_t *w, uint32_t len)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
	return memchr(w, 0, len) != NULL;
#endif
	for (uint32_t i = 0; i * 8 < len; i++) {
		uint64_t x = w[i];
		uint32_t left = len - i * 8;
		if (left < 8)
			x |= ~0ull << (left * 8);       /* bytes beyond LEN count as non-zero */
		if ((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull)
			return true;
	}
	return false;
}

static __thread uint32_t rr_counter;      /* round robin: per thread, never shared */

enum { MAX_TIES = 16 };

/* One probe chain of K for a caller on NODE: the buckets of the equally
 * ranked best live instances (up to MAX_TIES) into TIE_AT.  Returns how
 * many.  Inside a read section: the caller checks seq afterwards. */
static uint32_t scan(const rt_view_t *v, const rt_header_t *h, const rt_key_t *k, uint16_t node,
		     uint32_t tie_at[MAX_TIES])
{
	uint32_t words = (k->len + 7) / 8;
	uint32_t best = UINT32_MAX, ties = 0;
	uint64_t now = 0;
	uint32_t i = (uint32_t)k->hash & v->mask;
	for (uint32_t probes = 0; probes < v->buckets; probes++, i = (i + 1) & v->mask) {
		const rt_entry_t *e = entry_at(v->base, i);
		uint64_t eh = RLOAD(&e->hash);
		if (!eh)
			break;
		if (eh != k->hash || RLOAD(&e->name_len) != k->len)
			continue;
		const uint64_t *nw = (const uint64_t *)(const void *)e->name;
		uint32_t w = 0;
		while (w < words && RLOAD(&nw[w]) == k->name_words[w])
			w++;
		if (w < words)
			continue;
		if (!k->any_version) {
			uint32_t ma = RLOAD(&e->major), mi = RLOAD(&e->minor), pa = RLOAD(&e->patch);
			if (ma != k->major || mi < k->minor || (mi == k->minor && pa < k->patch))
				continue;
		}
		uint64_t exp = RLOAD(&e->expires_at_ns);
		if (exp != UINT64_MAX) {
			if (!now)
				now = now_mono();
			if (exp <= now)
				continue;
		}
		uint32_t rank;
		uint16_t en = RLOAD(&e->numa_node);
		if (RLOAD(&e->locality) != RT_LOCAL)
			rank = UINT32_MAX - 1;
		else if (en == node)
			rank = 0;
		else if (node < v->n_nodes && en < v->n_nodes)
			rank = 1u + RLOAD(&h->distance[node * RT_MAX_NODES + en]);
		else
			rank = 21;
		if (rank < best) {
			best = rank;
			ties = 0;
		}
		if (rank == best && ties < MAX_TIES)
			tie_at[ties++] = i;
	}
	return ties;
}

/* An entry's answer words, copied inside a read section and checked only
 * after the section proved consistent. */
typedef struct raw_answer {
	uint64_t lease, iid, expires;
	uint32_t pid;
	uint16_t node, alen;
	uint8_t loc;
	uint64_t aw[112 / 8];
} raw_answer_t;

static void read_raw(const rt_entry_t *e, raw_answer_t *r)
{
	/* Only what the answer needs: the fixed words, then the address
	 * words up to its (clamped) length. */
	r->lease = RLOAD(&e->lease);
	r->iid = RLOAD(&e->instance_id);
	r->expires = RLOAD(&e->expires_at_ns);
	r->pid = RLOAD(&e->pid);
	r->node = RLOAD(&e->numa_node);
	r->alen = RLOAD(&e->addr_len);
	r->loc = RLOAD(&e->locality);
	uint32_t nwords = r->alen <= RT_ADDR_MAX ? (r->alen + 7u) / 8u : 0;
	const uint64_t *src = (const uint64_t *)(const void *)e->addr;
	for (uint32_t w = 0; w < nwords; w++)
		r->aw[w] = RLOAD(&src[w]);
}

/* A consistent copy; still only checked bytes leave here.  false: the
 * address is no address. */
static bool raw_to_result(const raw_answer_t *r, uint64_t seq, rt_result_t *out)
{
	if (r->alen == 0 || r->alen > RT_ADDR_MAX || has_nul(r->aw, r->alen))
		return false;
	size_t nbytes = (size_t)(r->alen + 7u) / 8u * 8u;
	memcpy(out->addr, r->aw, nbytes <= sizeof out->addr ? nbytes : r->alen);
	out->addr[r->alen] = 0;
	out->lease = r->lease;
	out->instance_id = r->iid;
	out->pid = r->pid;
	out->numa_node = r->node;
	out->remote = r->loc != RT_LOCAL;
	out->seq = seq;
	out->expires_at_ns = r->expires;
	return true;
}

int rt_lookup(const rt_view_t *v, const rt_key_t *k, uint16_t node, rt_result_t *out, bool *incomplete)
{
	const rt_header_t *h = (const rt_header_t *)(const void *)v->base;
	for (unsigned attempt = 0; attempt < RT_READ_RETRIES; attempt++) {
		uint64_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		uint32_t tie_at[MAX_TIES];
		uint32_t ties = scan(v, h, k, node, tie_at);
		bool inc = RLOAD(&h->incomplete) != 0;
		if (ties) {
			/* Round robin without a division in the common cases. */
			uint32_t pick = ties == 1 ? 0 : !(ties & (ties - 1)) ? rr_counter++ & (ties - 1)
									    : rr_counter++ % ties;
			raw_answer_t raw;
			read_raw(entry_at(v->base, tie_at[pick]), &raw);
			if (LOAD(&h->seq) != s1)
				continue;
			if (!raw_to_result(&raw, s1, out))
				return THOTH_E_NOT_FOUND;
			if (incomplete)
				*incomplete = inc;
			return 0;
		}
		if (LOAD(&h->seq) != s1)
			continue;
		if (incomplete)
			*incomplete = inc;
		return THOTH_E_NOT_FOUND;
	}
	return THOTH_E_BUSY;
}

int rt_lookup_all(const rt_view_t *v, const rt_key_t *k, uint16_t node, rt_result_t *out, uint32_t max,
		  uint64_t *seq, uint64_t *min_deadline, bool *incomplete)
{
	const rt_header_t *h = (const rt_header_t *)(const void *)v->base;
	if (max > MAX_TIES)
		max = MAX_TIES;
	for (unsigned attempt = 0; attempt < RT_READ_RETRIES; attempt++) {
		uint64_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		uint32_t tie_at[MAX_TIES];
		uint32_t ties = scan(v, h, k, node, tie_at);
		bool inc = RLOAD(&h->incomplete) != 0;
		if (ties > max)
			ties = max;
		raw_answer_t raw[MAX_TIES];
		for (uint32_t t = 0; t < ties; t++)
			read_raw(entry_at(v->base, tie_at[t]), &raw[t]);
		if (LOAD(&h->seq) != s1)
			continue;
		uint32_t n = 0;
		uint64_t dl = UINT64_MAX;
		for (uint32_t t = 0; t < ties; t++)
			if (raw_to_result(&raw[t], s1, &out[n])) {
				if (raw[t].expires < dl)
					dl = raw[t].expires;
				n++;
			}
		if (incomplete)
			*incomplete = inc;
		*seq = s1;
		*min_deadline = dl;
		return n ? (int)n : THOTH_E_NOT_FOUND;
	}
	return THOTH_E_BUSY;
}

/* Copy N bytes of shared words at SRC (8-aligned) into DST (acquire loads). */
static void load_bytes(void *dst, const void *src, size_t n)
{
	const uint64_t *s = src;
	uint64_t w[RT_ENTRY_SIZE / 8];
	size_t words = (n + 7) / 8;
	for (size_t i = 0; i < words; i++)
		w[i] = RLOAD(&s[i]);
	memcpy(dst, w, n);
}

static void terminate(char *s, size_t cap)
{
	s[cap - 1] = 0;
}

int rt_status_read(const rt_view_t *v, rt_status_t *out)
{
	/* The status lies inside the header, whose size rt_view_init checked
	 * against the file. */
	const rt_status_t *st = (const rt_status_t *)(const void *)(v->base + RT_STATUS_OFF);
	for (unsigned attempt = 0; attempt < RT_READ_RETRIES; attempt++) {
		uint64_t s1 = __atomic_load_n(&st->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		const uint64_t *src = (const uint64_t *)(const void *)st;
		uint64_t *d = (uint64_t *)(void *)out;
		for (size_t i = 0; i < sizeof *out / 8; i++)
			d[i] = RLOAD(&src[i]);
		if (__atomic_load_n(&st->seq, __ATOMIC_ACQUIRE) != s1)
			continue;
		if (out->magic != RT_STATUS_MAGIC)
			return THOTH_E_NOT_FOUND;
		terminate(out->version, sizeof out->version);
		terminate(out->runtime_dir, sizeof out->runtime_dir);
		terminate(out->dashboard_url, sizeof out->dashboard_url);
		return 0;
	}
	return THOTH_E_BUSY;
}

int rt_list(const rt_view_t *v, const char *prefix, size_t prefix_len, rt_listed_t *out, size_t max,
	    size_t *total, bool *incomplete)
{
	const rt_header_t *h = (const rt_header_t *)(const void *)v->base;
	if (prefix_len > RT_NAME_MAX) {
		*total = 0;
		if (incomplete)
			*incomplete = RLOAD(&h->incomplete) != 0;
		return 0;
	}
	for (unsigned attempt = 0; attempt < RT_READ_RETRIES; attempt++) {
		uint64_t s1 = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		size_t n = 0, matched = 0;
		for (uint32_t i = 0; i < v->buckets; i++) {
			const rt_entry_t *e = entry_at(v->base, i);
			if (!RLOAD(&e->hash))
				continue;
			uint8_t nlen = RLOAD(&e->name_len);
			char name[RT_NAME_MAX];
			load_bytes(name, e->name, sizeof name);
			if (nlen > RT_NAME_MAX || nlen < prefix_len || memcmp(name, prefix, prefix_len))
				continue;
			matched++;
			if (n >= max)
				continue;
			rt_listed_t *o = &out[n];
			raw_answer_t raw;
			read_raw(e, &raw);
			memcpy(o->name, name, nlen);
			o->name[nlen] = 0;
			o->major = RLOAD(&e->major);
			o->minor = RLOAD(&e->minor);
			o->patch = RLOAD(&e->patch);
			/* Checked below, once the pass proved consistent. */
			rt_result_t res;
			if (!raw_to_result(&raw, s1, &res) || memchr(o->name, 0, nlen)) {
				o->addr[0] = 0;
			} else {
				memcpy(o->addr, res.addr, sizeof o->addr);
				o->pid = res.pid;
				o->numa_node = res.numa_node;
				o->remote = res.remote;
				o->lease = res.lease;
				o->instance_id = res.instance_id;
				o->expires_at_ns = res.expires_at_ns;
			}
			n++;
		}
		bool inc = RLOAD(&h->incomplete) != 0;
		if (LOAD(&h->seq) != s1)
			continue;
		/* A consistent pass: drop what did not check, and instances
		 * whose deadline passed (thothd has not expired them yet). */
		uint64_t now = rt_now_ns();
		size_t kept = 0;
		for (size_t i = 0; i < n; i++) {
			if (!out[i].addr[0] || out[i].expires_at_ns <= now) {
				matched--;
				continue;
			}
			if (kept != i)
				out[kept] = out[i];
			kept++;
		}
		*total = matched;
		if (incomplete)
			*incomplete = inc;
		return (int)kept;
	}
	return THOTH_E_BUSY;
}

void rt_name_init(rt_name_t *nm, const rt_key_t *k)
{
	memset(nm, 0, sizeof *nm);
	nm->key = *k;
	nm->seq = UINT64_MAX;           /* odd: no table sequence ever equals it */
	nm->min_deadline = UINT64_MAX;
}

bool rt_name_past_deadline(const rt_name_t *nm)
{
	return rt_now_ns() >= nm->min_deadline;
}

int rt_name_refresh(rt_name_t *nm, const rt_view_t *v, uint16_t node)
{
	uint64_t seq = 0, dl = UINT64_MAX;
	nm->seq = UINT64_MAX;
	nm->n = 0;
	int r = rt_lookup_all(v, &nm->key, node, nm->ans, RT_NAME_ANSWERS, &seq, &dl, NULL);
	if (r <= 0)
		return r;
	nm->n = (uint32_t)r;
	nm->node = node;
	nm->min_deadline = dl;
	nm->seq = seq;
	/* Keep the turn across refreshes, so that a table changing often
	 * still spreads callers over the instances. */
	uint32_t i = nm->rr < nm->n ? nm->rr : 0;
	nm->rr = i + 1 < nm->n ? i + 1 : 0;
	return (int)i;
}

uint32_t rt_generation(const rt_view_t *v)
{
	return __atomic_load_n(&((const rt_header_t *)(const void *)v->base)->generation, __ATOMIC_ACQUIRE);
}

int rt_wait(const rt_view_t *v, uint32_t seen, int timeout_ms)
{
	const rt_header_t *h = (const rt_header_t *)(const void *)v->base;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : now_mono() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		if (rt_generation(v) != seen)
			return 0;
		struct timespec ts, *tp = NULL;
		if (deadline != UINT64_MAX) {
			uint64_t now = now_mono();
			if (now >= deadline)
				return THOTH_E_TIMEDOUT;
			uint64_t left = deadline - now;
			ts.tv_sec = (time_t)(left / 1000000000ull);
			ts.tv_nsec = (long)(left % 1000000000ull);
			tp = &ts;
		}
		/* Returns at once if the word already moved (EAGAIN). */
		syscall(SYS_futex, &h->generation, FUTEX_WAIT, seen, tp, NULL, 0);
	}
}
