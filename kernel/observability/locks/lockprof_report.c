/* lockprof_report.c - lock-profiler tables to a text or JSON report.
 *
 * Tables come from another process (or its file after it died): every
 * field is checked where it enters (thothlock_table_load, and each index
 * and depth before use).  Symbolization is libdw's (elfutils): a Dwfl
 * session per process built from its maps, function names from .symtab or
 * .dynsym, file:line from DWARF (separate debuginfo found by build id in
 * /usr/lib/debug, dwfl_standard_find_debuginfo).  Without symbols an
 * address prints as module+offset.
 */
#define _GNU_SOURCE
#include "lockprof_report.h"

#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockprof_layout.h"
#include "procstat.h"
#include "thoth/error.h"

typedef struct frame frame_t;

/* Symbolization is the report's cost: a libdw session per process (the
 * modules it maps, opened and indexed) and a symbol-table and line-table
 * search per address.  Both live in a thothlock_symbols_t, which a table
 * owns (thothlock, thothctl) or borrows from a longer-lived cache
 * (thothd: kernel/thothd/locks_scan.c, one per process, reused while the
 * process is the same).  Each distinct (kind, address) is looked up once:
 * the answer is kept as one small allocation (its strings only), at most
 * max_entries and max_bytes of them, the oldest evicted first. */
enum { SYM_FRAME = 1, SYM_LOCK_NAME = 2, SYM_LOCK_STORAGE = 3 };

typedef struct {
	uint64_t key;           /* the address */
	uint32_t next;          /* bucket chain: index + 1, 0 = end */
	uint32_t kind;          /* SYM_*, 0 = empty */
	char *blob;             /* frame: module_offset, line, then "function\0file\0module\0" */
	uint32_t blob_len;
} sym_entry_t;

struct thothlock_symbols {
	Dwfl *dwfl;                        /* NULL: raw addresses */
	sym_entry_t *entries;              /* a ring in insertion order, max_entries */
	uint32_t *buckets;                 /* nbuckets heads: index + 1, 0 = empty */
	uint32_t nbuckets, max_entries;
	uint32_t head, count;              /* the oldest entry, entries in use */
	size_t max_bytes, bytes;           /* the blobs' bytes (the arrays are fixed) */
	thothlock_symbols_stats_t stats;
	/* The private copy of the process's table from its last report, kept
	 * for the next one (thothlock_table_load_with): its pages are already
	 * there, so a repeated report neither maps ~95 MiB afresh nor faults
	 * in a page per data page (the cost of a reload on this VM). */
	unsigned char *spare;
	size_t spare_alloc;
	uint8_t *spare_touched;            /* pages to clear before reuse */
	size_t spare_pages;                /* how many: its resident memory / 4 KiB */
};

/* A spare copy is kept only up to this many resident pages (16 MiB): a
 * table with more data is read afresh each time. */
enum { SPARE_MAX_PAGES = 4096 };

struct thothlock_table {
	unsigned char *bytes;
	size_t size;
	size_t alloc;                      /* bytes' mapping size */
	uint8_t *data_pages;               /* bit per 4 KiB page of the file: 1 = has data */
	uint8_t *touched;                  /* pages read or written here (data pages, the entries
	                                    * the reader fills in): what a reuse clears */
	const thothlock_key_t *keys;
	const thothlock_header_t *hdr;
	const thothlock_lock_t *locks;
	const thothlock_site_t *sites;
	const thothlock_cache_t *caches;
	thothlock_cache_entry_t *cached;   /* the caches' counts summed per address, sorted */
	size_t cached_count;
	thothlock_symbols_t *syms;         /* NULL: raw addresses */
	bool own_syms;                     /* made by set_maps_file / set_live_pid: freed with the table */
	const thothlock_site_t **by_lock;  /* used sites sorted by lock index */
	size_t sites_used;
	/* All mode's pairs the writer gave no site entry (it claims one only
	 * for a pc's first lock, a wait or a far hold): a site each, made
	 * here from their per-thread entries, with their pc's stack. */
	thothlock_site_t *extra;
	size_t extra_count;
	/* thothlock_table_set_killed / _check_alive: the process ended without
	 * its exit path (killed); the signal (0: unknown) and when (0: unknown). */
	bool killed;
	int signal;
	int status;                        /* exited by _exit with it; -1: no */
	uint64_t reaped_ns;
	/* thothlock_table_set_sender: the pid the kernel named as the table's
	 * sender (0: none set, the header's pid stands).  Reported in place of
	 * the header's, which is then the pid in the sender's own namespace. */
	int sender_pid;
};

/* Whether the file page holding *p was ever written (a hole reads as
 * zeros: the table is ~95 MiB, mostly never touched; the reader skips
 * what it need not look at rather than fault in zero pages). */
static bool has_data(const thothlock_table_t *t, const void *p)
{
	size_t page = (size_t)((const unsigned char *)p - t->bytes) >> 12;
	return (t->data_pages[page >> 3] >> (page & 7)) & 1u;
}

/* The first entry >= I of the array at BASE (N entries of SIZE bytes)
 * whose first byte lies on a page with data, else N: a thread's cache
 * region is 8 KiB per slot of 1024, the site region 65536 entries, nearly
 * all holes, so a report steps over them a bitmap byte (8 pages) or a
 * page at a time, not an entry at a time. */
static size_t next_with_data(const thothlock_table_t *t, const void *base, size_t size, size_t i,
			     size_t n)
{
	size_t base_off = (size_t)((const unsigned char *)base - t->bytes);
	while (i < n) {
		size_t page = (base_off + i * size) >> 12;
		if (t->data_pages[page >> 3] == 0)
			page = (page | 7) + 1;          /* none of these 8 pages */
		else if ((t->data_pages[page >> 3] >> (page & 7)) & 1u)
			return i;
		else
			page++;
		size_t next = (page << 12) - base_off;  /* the first entry starting at or after it */
		size_t j = (next + size - 1) / size;
		i = j > i ? j : i + 1;
	}
	return n;
}

/* The reader wrote [P, P + LEN): a reuse of the copy must clear it. */
static void mark_touched(thothlock_table_t *t, const void *p, size_t len)
{
	size_t first = (size_t)((const unsigned char *)p - t->bytes) >> 12;
	size_t last = ((size_t)((const unsigned char *)p - t->bytes) + len - 1) >> 12;
	for (size_t pg = first; pg <= last; pg++)
		t->touched[pg >> 3] |= (uint8_t)(1u << (pg & 7));
}

static int cmp_entry(const void *a, const void *b)
{
	const thothlock_cache_entry_t *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sum the per-thread caches once per table: (address, count) sorted. */
static int index_sites(thothlock_table_t *t);

static int gather_caches(thothlock_table_t *t)
{
	/* Every thread's ways as one array. */
	const thothlock_cache_entry_t *ways = &t->caches[0].way[0];
	size_t total = (size_t)t->hdr->thread_capacity * THOTHLOCK_CACHE_WAYS, n = 0;
	for (size_t i = next_with_data(t, ways, sizeof *ways, 0, total); i < total;
	     i = next_with_data(t, ways, sizeof *ways, i + 1, total))
		if (ways[i].addr)
			n++;
	t->cached = calloc(n ? n : 1, sizeof *t->cached);
	if (!t->cached)
		return THOTH_E_NOMEM;
	size_t k = 0;
	for (size_t i = next_with_data(t, ways, sizeof *ways, 0, total); i < total && k < n;
	     i = next_with_data(t, ways, sizeof *ways, i + 1, total))
		if (ways[i].addr)
			t->cached[k++] = ways[i];
	qsort(t->cached, k, sizeof *t->cached, cmp_entry);
	size_t out = 0;
	for (size_t i = 0; i < k; i++) {
		if (out && t->cached[out - 1].addr == t->cached[i].addr)
			t->cached[out - 1].count += t->cached[i].count;
		else
			t->cached[out++] = t->cached[i];
	}
	t->cached_count = out;
	return 0;
}

/* All mode's per-thread entries (lockprof_layout.h), added to the lock
 * and site they name: the writer never moves them, so the copy holds each
 * count once.  An entry naming an unused key, or a site of another lock,
 * is skipped (a hostile or torn file). */
/* A site by its key: the file's, or one made for entries without one. */
typedef struct {
	uint64_t key;
	thothlock_site_t *site;            /* NULL: an entry's pair, not resolved yet */
} site_ref_t;

static int cmp_ref(const void *a, const void *b)
{
	const site_ref_t *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	/* The file's sites first among equal keys (then by address: stable). */
	if (!x->site || !y->site)
		return x->site ? -1 : y->site ? 1 : 0;
	return x->site < y->site ? -1 : x->site > y->site;
}

static int cmp_ref_pc(const void *a, const void *b)
{
	uint64_t x = THOTHLOCK_SITE_PC(((const site_ref_t *)a)->key);
	uint64_t y = THOTHLOCK_SITE_PC(((const site_ref_t *)b)->key);
	return x < y ? -1 : x > y;
}

/* Whether all mode's entry e (its key already checked) names no site:
 * the writer made none for the pair, so the reader does. */
static bool needs_site(const thothlock_tstat_t *e)
{
	return e->site_index == 0;
}

/* An entry on a page with data naming a key in use. */
static bool entry_in_use(const thothlock_table_t *t, const thothlock_tstat_t *e)
{
	if (!has_data(t, e) || e->key_index == 0 || e->key_index > t->hdr->lock_capacity)
		return false;
	const thothlock_key_t *k = &t->keys[e->key_index - 1];
	return has_data(t, k) && k->addr != 0;
}

/* Sites for the entries without one: one per (lock, pc), the file's own
 * when it has that key (claimed later by a wait or a far hold), else made
 * here with the stack of a site at the same pc (the writer keeps one per
 * pc).  At most the site capacity in all, so a hostile file costs no more
 * than a full site region.  Returns the refs sorted by key, each
 * resolved (site NULL: no room), *n their number; NULL with *n = 0 when
 * no entry needs one, or out of memory (those entries then count only in
 * their lock). */
static site_ref_t *make_sites(thothlock_table_t *t, thothlock_site_t *sites,
                              const thothlock_tstat_t *ts, uint64_t used, size_t *n)
{
	const thothlock_header_t *h = t->hdr;
	size_t cap = h->site_capacity, files = 0, pairs = 0;
	*n = 0;
	for (uint64_t i = 0; i < used; i++)
		if (entry_in_use(t, &ts[i]) && needs_site(&ts[i]))
			pairs++;
	if (pairs == 0)
		return NULL;
	for (size_t i = next_with_data(t, sites, sizeof *sites, 0, cap); i < cap;
	     i = next_with_data(t, sites, sizeof *sites, i + 1, cap))
		if (sites[i].key)
			files++;
	site_ref_t *refs = calloc(files + pairs, sizeof *refs), *by_pc = calloc(files ? files : 1,
	                                                                       sizeof *by_pc);
	if (!refs || !by_pc) {
		free(refs);
		free(by_pc);
		return NULL;
	}
	size_t k = 0;
	for (size_t i = next_with_data(t, sites, sizeof *sites, 0, cap); i < cap && k < files;
	     i = next_with_data(t, sites, sizeof *sites, i + 1, cap))
		if (sites[i].key) {
			refs[k] = (site_ref_t){ sites[i].key, &sites[i] };
			by_pc[k] = refs[k];
			k++;
		}
	files = k;
	for (uint64_t i = 0; i < used && k < files + pairs; i++) {
		const thothlock_tstat_t *e = &ts[i];
		if (entry_in_use(t, e) && needs_site(e))
			refs[k++] = (site_ref_t){ THOTHLOCK_SITE_KEY(e->key_index - 1, e->pc), NULL };
	}
	qsort(refs, k, sizeof *refs, cmp_ref);
	qsort(by_pc, files, sizeof *by_pc, cmp_ref_pc);
	size_t groups = 0;
	for (size_t i = 0; i < k; i++)
		if ((i == 0 || refs[i].key != refs[i - 1].key) && !refs[i].site)
			groups++;
	size_t room = THOTHLOCK_SITE_CAPACITY > files ? THOTHLOCK_SITE_CAPACITY - files : 0;
	if (groups > room)
		groups = room;
	t->extra = calloc(groups ? groups : 1, sizeof *t->extra);
	if (!t->extra) {
		free(refs);
		free(by_pc);
		return NULL;
	}
	for (size_t i = 0; i < k; i++) {
		if (i > 0 && refs[i].key == refs[i - 1].key) {
			refs[i].site = refs[i - 1].site;
			continue;
		}
		if (refs[i].site || t->extra_count == groups)
			continue;
		thothlock_site_t *s = &t->extra[t->extra_count++];
		s->key = refs[i].key;
		/* The stack of a site at the same pc, on any lock. */
		uint64_t pc = THOTHLOCK_SITE_PC(s->key);
		size_t lo = 0, hi = files;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (THOTHLOCK_SITE_PC(by_pc[mid].key) < pc)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < files && THOTHLOCK_SITE_PC(by_pc[lo].key) == pc; lo++) {
			const thothlock_stack_t *st = &by_pc[lo].site->stack;
			if (st->depth > 0 && st->depth <= THOTHLOCK_STACK_DEPTH) {
				s->stack.depth = st->depth;
				memcpy(s->stack.pc, st->pc, st->depth * sizeof st->pc[0]);
				break;
			}
		}
		refs[i].site = s;
	}
	free(by_pc);
	*n = k;
	return refs;
}

static thothlock_site_t *find_site(const site_ref_t *refs, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (refs[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && refs[lo].key == key ? refs[lo].site : NULL;
}

static void add_tstats(thothlock_table_t *t, thothlock_lock_t *stats, thothlock_site_t *sites)
{
	const thothlock_header_t *h = t->hdr;
	/* Every acquisition through an entry is a hold, timed unless the
	 * holds were sampled (hold_sample > 1, version 6); then each timed
	 * hold is in one histogram bucket: the entry's near ones here, its
	 * site's far ones below (lockprof_layout.h). */
	bool sampled = h->hold_sample > 1;
	const thothlock_tstat_t *ts = (const thothlock_tstat_t *)(t->bytes + h->tstats_offset);
	uint64_t used = h->tstats_used < h->tstat_capacity ? h->tstats_used : h->tstat_capacity;
	size_t nrefs;
	site_ref_t *refs = make_sites(t, sites, ts, used, &nrefs);
	for (uint64_t i = 0; i < used; i++) {
		const thothlock_tstat_t *e = &ts[i];
		if (!has_data(t, e) || e->key_index == 0 || e->key_index > h->lock_capacity)
			continue;
		uint32_t ki = e->key_index - 1;
		if (!has_data(t, &t->keys[ki]) || !t->keys[ki].addr)
			continue;
		thothlock_lock_t *l = &stats[ki];
		mark_touched(t, l, sizeof *l);
		/* Each acquisition through an entry is one hold, holds_timed
		 * of them timed (all unless the holds were sampled). */
		l->acquisitions += e->acquisitions;
		l->owner_changes += e->owner_changes;
		uint64_t timed = sampled ? 0 : e->acquisitions;
		l->holds_measured += timed;
		l->hold_ns_total += e->hold_ns_total;
		if (e->hold_ns_max > l->hold_ns_max)
			l->hold_ns_max = e->hold_ns_max;
		/* The near buckets, where the window lies inside the histogram
		 * (a hostile base past it adds nothing). */
		if (e->near_base <= THOTHLOCK_HIST_BUCKETS - THOTHLOCK_NEAR_BUCKETS) {
			uint64_t near = 0;
			for (uint32_t b = 0; b < THOTHLOCK_NEAR_BUCKETS; b++) {
				l->hold_hist[e->near_base + b] += e->near[b];
				near += e->near[b];
			}
			if (sampled) {
				timed = near;
				l->holds_measured += near;
			}
		}
		thothlock_site_t *s;
		if (needs_site(e)) {
			s = find_site(refs, nrefs, THOTHLOCK_SITE_KEY(ki, e->pc));
			if (!s)
				continue;
		} else {
			if (e->site_index > h->site_capacity)
				continue;
			s = &sites[e->site_index - 1];
			if (!has_data(t, s) || !s->key || THOTHLOCK_SITE_LOCK(s->key) != ki)
				continue;
		}
		s->acquisitions += e->acquisitions;
		s->holds_measured += timed;
		s->hold_ns_total += e->hold_ns_total;
		if (e->hold_ns_max > s->hold_ns_max)
			s->hold_ns_max = e->hold_ns_max;
	}
	/* Format 4: the entries' holds outside their near buckets, counted in
	 * their site, belong to the site's lock's histogram (a site naming a
	 * lock out of range or unused adds nothing). */
	size_t cap = h->site_capacity;
	for (size_t i = next_with_data(t, sites, sizeof *sites, 0, cap); i < cap;
	     i = next_with_data(t, sites, sizeof *sites, i + 1, cap)) {
		thothlock_site_t *s = &sites[i];
		if (!s->key)
			continue;
		uint32_t ki = THOTHLOCK_SITE_LOCK(s->key);
		if (ki >= h->lock_capacity || !has_data(t, &t->keys[ki]) || !t->keys[ki].addr)
			continue;
		thothlock_lock_t *l = &stats[ki];
		mark_touched(t, l, sizeof *l);
		uint64_t far = 0;
		for (uint32_t b = 0; b < THOTHLOCK_HIST_BUCKETS; b++) {
			l->hold_hist[b] += s->hold_hist[b];
			far += s->hold_hist[b];
		}
		if (sampled) {
			/* the entries' timed holds outside their near buckets */
			l->holds_measured += far;
			s->holds_measured += far;
		}
	}
	free(refs);
}

/* Copy the data extents of [FROM, TO) of the file into T's private pages
 * (SEEK_DATA/SEEK_HOLE; a file system without them reports one extent):
 * the holes cost neither a copy nor a page.  A file that shrank under us
 * leaves zeros (free entries) where its data was. */
static void read_extents(int fd, thothlock_table_t *t, uint64_t from, uint64_t to)
{
	if (to > t->size)
		to = t->size;
	for (off_t off = (off_t)from; off < (off_t)to;) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			return;         /* only a hole is left */
		if (data < 0) {         /* no SEEK_DATA here: the rest is data */
			data = off;
			hole = (off_t)to;
		} else {
			if (data >= (off_t)to)
				return;
			hole = lseek(fd, data, SEEK_HOLE);
			if (hole < 0 || hole > (off_t)to)
				hole = (off_t)to;
		}
		data &= ~(off_t)4095;   /* whole pages: has_data() is per page */
		if (data < (off_t)(from & ~(uint64_t)4095))
			data = (off_t)(from & ~(uint64_t)4095);
		off_t end = (hole + 4095) & ~(off_t)4095;
		if (end > (off_t)t->size)
			end = (off_t)t->size;
		for (off_t at = data; at < end;) {
			ssize_t n = pread(fd, t->bytes + at, (size_t)(end - at), at);
			if (n <= 0) {
				end = at;       /* shrunk under us: what we have */
				break;
			}
			at += n;
		}
		for (size_t pg = (size_t)data >> 12; pg < ((size_t)end + 4095) >> 12; pg++) {
			t->data_pages[pg >> 3] |= (uint8_t)(1u << (pg & 7));
			t->touched[pg >> 3] |= (uint8_t)(1u << (pg & 7));
		}
		if (end < hole)
			return;
		off = end > data ? end : data + 4096;
	}
}

static void refuse(char *why, size_t len, const char *path, const char *reason)
{
	if (why && len)
		snprintf(why, len, "%s: not a lock table (%s)", path, reason);
}

int thothlock_table_load(const char *path, thothlock_table_t **out, char *why, size_t why_len)
{
	return thothlock_table_load_with(path, NULL, out, why, why_len);
}

/* S's spare copy when it has TABLE's size: its touched pages cleared (they
 * are resident: no fault), handed over to T. */
static bool take_spare(thothlock_symbols_t *s, thothlock_table_t *t, size_t size)
{
	if (!s || !s->spare || s->spare_alloc != size)
		return false;
	size_t pages = (size + 4095) >> 12;
	for (size_t pg = 0; pg < pages; pg++) {
		if (!s->spare_touched[pg >> 3]) {
			pg |= 7;
			continue;
		}
		if ((s->spare_touched[pg >> 3] >> (pg & 7)) & 1u) {
			size_t off = pg << 12;
			memset(s->spare + off, 0, size - off < 4096 ? size - off : 4096);
		}
	}
	memset(s->spare_touched, 0, (pages + 7) / 8 + 1);
	t->bytes = s->spare;
	t->alloc = s->spare_alloc;
	t->touched = s->spare_touched;
	s->spare = NULL;
	s->spare_touched = NULL;
	s->spare_alloc = s->spare_pages = 0;
	return true;
}

static int load_fd(int fd, const char *path, bool sealed, thothlock_symbols_t *syms,
		   thothlock_table_t **out, char *why, size_t why_len);

int thothlock_open_live(int pid, char *why, size_t why_len)
{
	char dir[64], want[64];
	snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
	/* What readlink shows of a memfd: its name after "/memfd:", and
	 * " (deleted)" (it has no name in any directory). */
	int wl = snprintf(want, sizeof want, "/memfd:thothlock:%d (deleted)", pid);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int err = errno;
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", dir, strerror(err));
		return err == ENOENT || err == ESRCH ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		int err = errno;
		close(dfd);
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", dir, strerror(err));
		return THOTH_E_NOMEM;
	}
	int fd = THOTH_E_NOT_FOUND;
	struct dirent *e;
	while (fd == THOTH_E_NOT_FOUND && (e = readdir(d))) {
		char link[80];
		ssize_t n = readlinkat(dirfd(d), e->d_name, link, sizeof link);
		if (n != wl || memcmp(link, want, (size_t)wl) != 0)
			continue;
		/* Through the link: a new read-only description of the same
		 * memfd (the process's own is read-write).  Non-blocking: if
		 * the descriptor was replaced since the readlink by a FIFO,
		 * the open must not wait for a writer. */
		fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			int err = errno;
			if (why && why_len)
				snprintf(why, why_len, "%s/%s: %s", dir, e->d_name, strerror(err));
			fd = err == ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_IO;
			break;
		}
	}
	closedir(d);
	return fd;
}

int thothlock_table_check_sealed(int fd, char *reason, size_t cap)
{
	/* A file of the directory (or anything but a memfd) has no seals:
	 * F_GET_SEALS fails, asking nothing of the file's filesystem (first:
	 * an fstat of a FUSE file, say, may wait on its server).  A memfd
	 * without the two size seals could be cut short under the writer, as
	 * the plain file could. */
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		snprintf(reason, cap, "not a sealed memfd");
		return THOTH_E_INVAL;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(reason, cap, "not a regular file");
		return THOTH_E_INVAL;
	}
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
		snprintf(reason, cap, "a memfd whose size is not sealed");
		return THOTH_E_INVAL;
	}
	return 0;
}

int thothlock_table_load_with(const char *path, thothlock_symbols_t *syms, thothlock_table_t **out,
			      char *why, size_t why_len)
{
	*out = NULL;
	/* The table's owner is another process: a FIFO or a symlink planted in
	 * its place must not block or redirect the reader (thothctl, thothd's
	 * dashboard). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0) {
		int err = errno;
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", path, strerror(err));
		return err == ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	}
	int rc = load_fd(fd, path, false, syms, out, why, why_len);
	close(fd);
	return rc;
}

int thothlock_table_load_fd(int fd, const char *name, thothlock_symbols_t *syms,
			    thothlock_table_t **out, char *why, size_t why_len)
{
	*out = NULL;
	return load_fd(fd, name, true, syms, out, why, why_len);
}

/* The table open at FD (the caller's, left open), NAME in refusals.
 * SEALED: it must be the writer's sealed memfd, as large as its header
 * says (a table handed over by another process, or opened through its
 * /proc/PID/fd). */
static int load_fd(int fd, const char *path, bool sealed, thothlock_symbols_t *syms,
		   thothlock_table_t **out, char *why, size_t why_len)
{
	struct stat st;
	char kind[64];
	if (sealed && thothlock_table_check_sealed(fd, kind, sizeof kind) != 0) {
		refuse(why, why_len, path, kind);
		return THOTH_E_INVAL;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		refuse(why, why_len, path, "not a regular file");
		return THOTH_E_INVAL;
	}
	if (fstat(fd, &st) != 0 || st.st_size < (off_t)THOTHLOCK_HEADER_SIZE ||
	    st.st_size > (off_t)1 << 30) {
		refuse(why, why_len, path, "size");
		return THOTH_E_INVAL;
	}
	/* Private zero pages, into which only the file's data extents are read
	 * (SEEK_DATA/SEEK_HOLE; a file system without them reports one
	 * extent): the holes cost neither a copy nor a page. */
	size_t size = (size_t)st.st_size, pages = (size + 4095) >> 12;
	thothlock_table_t *t = calloc(1, sizeof *t);
	uint8_t *data_pages = calloc((pages + 7) / 8 + 1, 1);
	if (!t || !data_pages) {
		free(t);
		free(data_pages);
		return THOTH_E_NOMEM;
	}
	t->data_pages = data_pages;
	t->size = size;
	t->syms = syms;
	if (!take_spare(syms, t, size)) {
		unsigned char *bytes = mmap(NULL, size, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		t->touched = calloc((pages + 7) / 8 + 1, 1);
		if (bytes == MAP_FAILED || !t->touched) {
			if (bytes != MAP_FAILED)
				munmap(bytes, size);
			free(t->touched);
			free(data_pages);
			free(t);
			return THOTH_E_NOMEM;
		}
		t->bytes = bytes;
		t->alloc = size;
	}
	unsigned char *bytes = t->bytes;
	/* The header first: it says which regions the report reads (not the
	 * contention ring, which thothd reads on its own, nor the writer's
	 * site index), so only their extents are looked for and copied. */
	read_extents(fd, t, 0, THOTHLOCK_HEADER_SIZE);
	size_t got = size;
	const thothlock_header_t *h = (const thothlock_header_t *)bytes;
	const char *bad = NULL;
	if (got < THOTHLOCK_HEADER_SIZE || h->magic != THOTHLOCK_MAGIC)
		bad = "bad magic";
	else if (h->version < THOTHLOCK_VERSION_MIN || h->version > THOTHLOCK_VERSION ||
	         h->header_size != THOTHLOCK_HEADER_SIZE)
		bad = "unsupported version";
	else if (h->stack_depth != THOTHLOCK_STACK_DEPTH || h->lock_capacity == 0 ||
	         h->lock_capacity > (1u << 20) || h->site_capacity > (1u << 20) ||
	         h->thread_capacity > (1u << 16))
		bad = "bad capacities";
	else if (h->keys_offset != THOTHLOCK_HEADER_SIZE ||
	         h->locks_offset != h->keys_offset + (uint64_t)h->lock_capacity * sizeof(thothlock_key_t) ||
	         h->sites_offset != h->locks_offset + (uint64_t)h->lock_capacity * sizeof(thothlock_lock_t) ||
	         h->caches_offset != h->sites_offset + (uint64_t)h->site_capacity * sizeof(thothlock_site_t) ||
	         h->events_offset != h->caches_offset + (uint64_t)h->thread_capacity * sizeof(thothlock_cache_t) ||
	         h->event_capacity > (1u << 20) || (h->event_capacity & (h->event_capacity - 1)) ||
	         h->events_offset + (uint64_t)h->event_capacity * sizeof(thothlock_event_t) > got ||
	         h->tstats_offset != h->events_offset + (uint64_t)h->event_capacity * sizeof(thothlock_event_t) ||
	         (h->tstats_offset & 63) != 0 || h->tstat_capacity > (1u << 22) ||
	         h->tstats_offset + (uint64_t)h->tstat_capacity * sizeof(thothlock_tstat_t) > got ||
	         h->site_slots_offset != h->tstats_offset + (uint64_t)h->tstat_capacity * sizeof(thothlock_tstat_t) ||
	         h->site_slots_offset + 2 * (uint64_t)h->site_capacity * sizeof(thothlock_site_slot_t) > got)
		bad = "regions outside the file";
	else if (sealed && h->file_size != size)
		bad = "its size is not the one its header says";
	if (bad) {
		refuse(why, why_len, path, bad);
		thothlock_table_free(t);
		return THOTH_E_INVAL;
	}
	t->hdr = h;
	read_extents(fd, t, h->keys_offset, h->events_offset);
	read_extents(fd, t, h->tstats_offset, h->site_slots_offset);
	/* The writer keeps address, kind and acquisition count in the dense
	 * key region (lockprof_layout.h); copy them into the private copy of
	 * each statistics entry, which the rest of the reader reads. */
	const thothlock_key_t *keys = (const thothlock_key_t *)(bytes + h->keys_offset);
	thothlock_lock_t *stats = (thothlock_lock_t *)(bytes + h->locks_offset);
	for (uint32_t i = 0; i < h->lock_capacity; i++) {
		if (!has_data(t, &keys[i]) || !keys[i].addr)
			continue;
		mark_touched(t, &stats[i], sizeof stats[i]);
		stats[i].addr = keys[i].addr;
		stats[i].kind = keys[i].kind;
		stats[i].acquisitions = keys[i].acquisitions;
	}
	t->keys = keys;
	t->locks = stats;
	t->sites = (const thothlock_site_t *)(bytes + h->sites_offset);
	add_tstats(t, stats, (thothlock_site_t *)(bytes + h->sites_offset));
	t->caches = (const thothlock_cache_t *)(bytes + h->caches_offset);
	if (gather_caches(t) != 0 || index_sites(t) != 0) {
		thothlock_table_free(t);
		return THOTH_E_NOMEM;
	}
	*out = t;
	return 0;
}

void thothlock_table_free(thothlock_table_t *t)
{
	if (!t)
		return;
	if (t->own_syms) {
		thothlock_symbols_free(t->syms);
		t->syms = NULL;
	}
	free(t->by_lock);
	free(t->extra);
	free(t->cached);
	free(t->data_pages);
	thothlock_symbols_t *s = t->syms;
	size_t pages = (t->alloc + 4095) >> 12, used = 0;
	for (size_t i = 0; t->touched && i < (pages + 7) / 8; i++)
		used += (size_t)__builtin_popcount(t->touched[i]);
	if (t->bytes && s && !t->own_syms && !s->spare && used <= SPARE_MAX_PAGES) {
		s->spare = t->bytes;    /* the next report of this process reads into it */
		s->spare_alloc = t->alloc;
		s->spare_touched = t->touched;
		s->spare_pages = used;
	} else {
		if (t->bytes)
			munmap(t->bytes, t->alloc);
		free(t->touched);
	}
	free(t);
}

int thothlock_table_pid(const thothlock_table_t *t)
{
	return t->sender_pid ? t->sender_pid : t->hdr->pid;
}

void thothlock_table_set_sender(thothlock_table_t *t, int pid)
{
	t->sender_pid = pid;
}

/* The header's pid when it differs from the pid reported (the process's
 * pid in a namespace of its own), else 0. */
static int namespace_pid(const thothlock_table_t *t)
{
	return t->sender_pid && t->hdr->pid != t->sender_pid ? t->hdr->pid : 0;
}

bool thothlock_table_exited(const thothlock_table_t *t)
{
	return t->hdr->exited != 0;
}

static void set_ended(thothlock_table_t *t, int signal, int status, uint64_t reaped_ns)
{
	if (t->hdr->exited)
		return;         /* it ran its exit path: ended normally, its end_ns says when */
	t->killed = true;
	t->signal = signal;
	t->status = status;
	t->reaped_ns = reaped_ns;
}

void thothlock_table_set_reaped(thothlock_table_t *t, int wait_status, uint64_t reaped_ns)
{
	if (WIFSIGNALED(wait_status))
		set_ended(t, WTERMSIG(wait_status), -1, reaped_ns);
	else if (WIFEXITED(wait_status))
		set_ended(t, 0, WEXITSTATUS(wait_status), reaped_ns);
	else
		set_ended(t, 0, -1, reaped_ns);
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void thothlock_table_check_alive(thothlock_table_t *t)
{
	const thothlock_header_t *h = t->hdr;
	int pid = thothlock_table_pid(t);
	if (h->exited || t->killed || pid <= 0)
		return;
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	bool alive = state && *state != 'Z' && *state != 'X';
	if (alive) {
		/* Field 22, clock ticks since boot (CLOCK_BOOTTIME): the process
		 * started before its table did (start_ns, CLOCK_MONOTONIC at the
		 * library's start-up, moved to boot time with today's offset, which
		 * only grows), else the pid was reused by a later process. */
		const char *f = thoth__proc_stat_field(path, 22, buf, sizeof buf);
		long hz = sysconf(_SC_CLK_TCK);
		uint64_t mono = clock_ns(CLOCK_MONOTONIC);      /* first: boot time >= it */
		uint64_t boot = clock_ns(CLOCK_BOOTTIME);
		uint64_t offset = boot > mono ? boot - mono : 0;
		if (!f || hz <= 0)
			alive = false;
		else if (strtoull(f, NULL, 10) * (1000000000ull / (uint64_t)hz) > h->start_ns + offset)
			alive = false;
	}
	if (!alive)
		set_ended(t, 0, -1, 0);
}

static char *debuginfo_path;
static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* A symbols object around D (NULL: no session, raw addresses). */
static int symbols_new(Dwfl *d, size_t max_entries, size_t max_bytes, thothlock_symbols_t **out)
{
	*out = NULL;
	if (max_entries < 16)
		max_entries = 16;
	if (max_entries > (1u << 20))
		max_entries = 1u << 20;
	uint32_t nb = 16;
	while (nb < max_entries)
		nb <<= 1;
	thothlock_symbols_t *s = calloc(1, sizeof *s);
	sym_entry_t *e = calloc(max_entries, sizeof *e);
	uint32_t *b = calloc(nb, sizeof *b);
	if (!s || !e || !b) {
		free(s);
		free(e);
		free(b);
		if (d)
			dwfl_end(d);
		return THOTH_E_NOMEM;
	}
	*s = (thothlock_symbols_t){ .dwfl = d, .entries = e, .buckets = b, .nbuckets = nb,
				    .max_entries = (uint32_t)max_entries,
				    .max_bytes = max_bytes ? max_bytes : (size_t)1 << 30 };
	*out = s;
	return 0;
}

int thothlock_symbols_live(int pid, size_t max_entries, size_t max_bytes, thothlock_symbols_t **out)
{
	*out = NULL;
	Dwfl *d = dwfl_begin(&offline_callbacks);
	if (!d)
		return THOTH_E_NOMEM;
	dwfl_report_begin(d);
	int rc = dwfl_linux_proc_report(d, pid);
	dwfl_report_end(d, NULL, NULL);
	if (rc != 0) {
		dwfl_end(d);
		return rc == ENOENT || rc == ESRCH ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	}
	return symbols_new(d, max_entries, max_bytes, out);
}

static void entry_evict(thothlock_symbols_t *s, uint32_t i)
{
	sym_entry_t *e = &s->entries[i];
	uint32_t *link = &s->buckets[(uint32_t)thothlock_hash(e->key ^ e->kind) & (s->nbuckets - 1)];
	while (*link && *link != i + 1)
		link = &s->entries[*link - 1].next;
	if (*link)
		*link = e->next;
	s->bytes -= e->blob_len;
	free(e->blob);
	*e = (sym_entry_t){ 0 };
}

void thothlock_symbols_free(thothlock_symbols_t *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->max_entries; i++)
		free(s->entries[i].blob);
	free(s->entries);
	free(s->buckets);
	if (s->spare)
		munmap(s->spare, s->spare_alloc);
	free(s->spare_touched);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	free(s);
}

size_t thothlock_symbols_bytes(const thothlock_symbols_t *s)
{
	return s ? sizeof *s + s->max_entries * sizeof *s->entries + s->nbuckets * sizeof *s->buckets +
		   s->bytes + s->spare_pages * 4096
		 : 0;
}

void thothlock_symbols_get_stats(const thothlock_symbols_t *s, thothlock_symbols_stats_t *out)
{
	*out = s->stats;
	out->entries = s->count;
	out->bytes = thothlock_symbols_bytes(s);
}

static const sym_entry_t *cache_find(thothlock_symbols_t *s, uint32_t kind, uint64_t key)
{
	uint32_t i = s->buckets[(uint32_t)thothlock_hash(key ^ kind) & (s->nbuckets - 1)];
	while (i) {
		const sym_entry_t *e = &s->entries[i - 1];
		if (e->key == key && e->kind == kind) {
			s->stats.hits++;
			return e;
		}
		i = e->next;
	}
	s->stats.misses++;
	return NULL;
}

/* Keep a copy of BLOB (LEN bytes) for (KIND, KEY): the oldest entries make
 * room when the ring or the byte budget is full.  Out of memory: not
 * kept (the next report looks it up again). */
static void cache_put(thothlock_symbols_t *s, uint32_t kind, uint64_t key, const void *blob, size_t len)
{
	if (len > s->max_bytes)
		return;
	while (s->count && (s->count == s->max_entries || s->bytes + len > s->max_bytes)) {
		entry_evict(s, s->head);
		s->head = (s->head + 1) % s->max_entries;
		s->count--;
		s->stats.evictions++;
	}
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, blob, len);
	uint32_t i = (s->head + s->count) % s->max_entries;
	uint32_t *bucket = &s->buckets[(uint32_t)thothlock_hash(key ^ kind) & (s->nbuckets - 1)];
	s->entries[i] = (sym_entry_t){ .key = key, .kind = kind, .blob = copy, .blob_len = (uint32_t)len,
				       .next = *bucket };
	*bucket = i + 1;
	s->count++;
	s->bytes += len;
}

void thothlock_table_use_symbols(thothlock_table_t *t, thothlock_symbols_t *s)
{
	if (t->own_syms)
		thothlock_symbols_free(t->syms);
	t->syms = s;
	t->own_syms = false;
}

/* A table's own symbols: what one report looks up, at most the 8192
 * addresses the per-table cache held before the cache could outlive the
 * table. */
enum { OWN_ENTRIES = 8192 };

static int table_own_symbols(thothlock_table_t *t, Dwfl *d)
{
	thothlock_symbols_t *s;
	int r = symbols_new(d, OWN_ENTRIES, 0, &s);
	if (r)
		return r;
	thothlock_table_use_symbols(t, s);
	t->own_syms = true;
	return 0;
}

int thothlock_table_set_maps_file(thothlock_table_t *t, const char *maps_path)
{
	FILE *f = fopen(maps_path, "re");
	if (!f)
		return THOTH_E_NOT_FOUND;
	Dwfl *d = dwfl_begin(&offline_callbacks);
	if (!d) {
		fclose(f);
		return THOTH_E_NOMEM;
	}
	dwfl_report_begin(d);
	int rc = dwfl_linux_proc_maps_report(d, f);
	dwfl_report_end(d, NULL, NULL);
	fclose(f);
	if (rc != 0) {
		dwfl_end(d);
		return THOTH_E_INVAL;
	}
	return table_own_symbols(t, d);
}

int thothlock_table_set_live_pid(thothlock_table_t *t, int pid)
{
	thothlock_symbols_t *s;
	int r = thothlock_symbols_live(pid, OWN_ENTRIES, 0, &s);
	if (r)
		return r;
	thothlock_table_use_symbols(t, s);
	t->own_syms = true;
	return 0;
}

/* ---- symbols ------------------------------------------------------------ */

struct frame {
	char function[160];   /* "" = unknown */
	char file[256];       /* "" = unknown */
	int line;
	char module[128];
	uint64_t module_offset;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void symbolize_uncached(const thothlock_symbols_t *s, uint64_t pc, frame_t *f);

/* A frame's blob: module_offset, line, then its three strings. */
static size_t frame_pack(const frame_t *f, char *out, size_t cap)
{
	size_t n = sizeof f->module_offset + sizeof f->line;
	if (cap < n)
		return 0;
	memcpy(out, &f->module_offset, sizeof f->module_offset);
	memcpy(out + sizeof f->module_offset, &f->line, sizeof f->line);
	const char *str[3] = { f->function, f->file, f->module };
	for (int k = 0; k < 3; k++) {
		size_t l = strlen(str[k]) + 1;
		if (n + l > cap)
			return 0;
		memcpy(out + n, str[k], l);
		n += l;
	}
	return n;
}

/* The inverse of frame_pack over a blob this file wrote. */
static void frame_unpack(const sym_entry_t *e, frame_t *f)
{
	memset(f, 0, sizeof *f);
	const char *p = e->blob, *end = e->blob + e->blob_len;
	memcpy(&f->module_offset, p, sizeof f->module_offset);
	memcpy(&f->line, p + sizeof f->module_offset, sizeof f->line);
	p += sizeof f->module_offset + sizeof f->line;
	char *dst[3] = { f->function, f->file, f->module };
	size_t cap[3] = { sizeof f->function, sizeof f->file, sizeof f->module };
	for (int k = 0; k < 3 && p < end; k++) {
		snprintf(dst[k], cap[k], "%s", p);
		p += strlen(p) + 1;
	}
}

/* `pc` is a return address: look up pc - 1, inside the call instruction. */
static void symbolize(const thothlock_table_t *t, uint64_t pc, frame_t *f)
{
	thothlock_symbols_t *s = t->syms;
	if (!s || !s->dwfl || pc == 0) {
		symbolize_uncached(s, pc, f);
		return;
	}
	const sym_entry_t *e = cache_find(s, SYM_FRAME, pc);
	if (e) {
		frame_unpack(e, f);
		return;
	}
	symbolize_uncached(s, pc, f);
	char blob[sizeof(frame_t)];
	size_t n = frame_pack(f, blob, sizeof blob);
	if (n)
		cache_put(s, SYM_FRAME, pc, blob, n);
}

static void symbolize_uncached(const thothlock_symbols_t *s, uint64_t pc, frame_t *f)
{
	memset(f, 0, sizeof *f);
	if (!s || !s->dwfl || pc == 0)
		return;
	Dwarf_Addr lookup = pc - 1;
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, lookup);
	if (!mod)
		return;
	Dwarf_Addr start = 0;
	const char *mname = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
	if (mname)
		snprintf(f->module, sizeof f->module, "%s", base_name(mname));
	f->module_offset = pc - start;
	const char *fn = dwfl_module_addrname(mod, lookup);
	if (fn)
		snprintf(f->function, sizeof f->function, "%s", fn);
	Dwfl_Line *line = dwfl_module_getsrc(mod, lookup);
	if (line) {
		int lineno = 0;
		const char *file = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
		if (file) {
			snprintf(f->file, sizeof f->file, "%s", file);
			f->line = lineno;
		}
	}
}

/* A lock's name or storage through the cache: FN computes it. */
static void lock_text_cached(const thothlock_table_t *t, uint32_t kind, uint64_t addr, char *out,
			     size_t cap, void (*fn)(Dwfl *, uint64_t, char *, size_t))
{
	out[0] = 0;
	thothlock_symbols_t *s = t->syms;
	if (!s || !s->dwfl)
		return;
	const sym_entry_t *e = cache_find(s, kind, addr);
	if (e) {
		snprintf(out, cap, "%s", e->blob);
		return;
	}
	fn(s->dwfl, addr, out, cap);
	cache_put(s, kind, addr, out, strlen(out) + 1);
}

/* A data symbol covering `addr` (a global or static lock): "name" or
 * "name+0x28" inside an array; "" for heap locks. */
static void lock_name_uncached(Dwfl *dwfl, uint64_t addr, char *out, size_t cap)
{
	out[0] = 0;
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	if (!mod)
		return;
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
	if (!name || GELF_ST_TYPE(sym.st_info) != STT_OBJECT || (sym.st_size && off >= sym.st_size))
		return;
	if (off)
		snprintf(out, cap, "%s+0x%" PRIx64, name, (uint64_t)off);
	else
		snprintf(out, cap, "%s", name);
}

/* Where a lock without a symbol lives: "module .bss+0x3a0" for a static
 * lock of a stripped module, "" when in no module (heap, stack). */
static void lock_storage_uncached(Dwfl *dwfl, uint64_t addr, char *out, size_t cap)
{
	out[0] = 0;
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	if (!mod)
		return;
	const char *mname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	Dwarf_Addr rel = addr, bias = 0;
	Elf_Scn *scn = dwfl_module_address_section(mod, &rel, &bias);
	Elf *elf = dwfl_module_getelf(mod, &bias);
	size_t shstrndx;
	GElf_Shdr shdr;
	const char *sname = NULL;
	if (scn && elf && elf_getshdrstrndx(elf, &shstrndx) == 0 && gelf_getshdr(scn, &shdr))
		sname = elf_strptr(elf, shstrndx, shdr.sh_name);
	if (sname)
		snprintf(out, cap, "%s %s+0x%" PRIx64, mname ? base_name(mname) : "?", sname,
		         (uint64_t)rel);
	else
		snprintf(out, cap, "%s", mname ? base_name(mname) : "?");
}

static void lock_name(const thothlock_table_t *t, uint64_t addr, char *out, size_t cap)
{
	lock_text_cached(t, SYM_LOCK_NAME, addr, out, cap, lock_name_uncached);
}

static void lock_storage(const thothlock_table_t *t, uint64_t addr, char *out, size_t cap)
{
	lock_text_cached(t, SYM_LOCK_STORAGE, addr, out, cap, lock_storage_uncached);
}

static void frame_text(const frame_t *f, uint64_t pc, char *out, size_t cap)
{
	const char *fn = f->function[0] ? f->function : NULL;
	if (fn && f->file[0])
		snprintf(out, cap, "%s (%s:%d)", fn, base_name(f->file), f->line);
	else if (fn)
		snprintf(out, cap, "%s (%s)", fn, f->module[0] ? f->module : "?");
	else if (f->module[0])
		snprintf(out, cap, "%s+0x%" PRIx64, f->module, f->module_offset);
	else
		snprintf(out, cap, "0x%" PRIx64, pc);
}

/* ---- gathering ---------------------------------------------------------- */

typedef struct {
	const thothlock_table_t *table;
	const thothlock_lock_t *lock;  /* &no_entry for a lock seen only in caches */
	uint64_t addr;                /* the lock's (no_entry has none) */
	uint32_t kind;
	uint32_t index;
	uint64_t acquisitions;        /* entry + per-thread caches */
} lock_view_t;

/* The statistics of a lock seen only in a thread's acquisition cache (it
 * has no entry: none), shared by all of them: a stand-in each (1 KiB)
 * was ~600 MiB, written page by page, for a table of garbage caches. */
static const thothlock_lock_t no_entry;

static uint64_t cached_acquisitions(const thothlock_table_t *t, uint64_t addr)
{
	thothlock_cache_entry_t key = { .addr = addr };
	const thothlock_cache_entry_t *e =
		bsearch(&key, t->cached, t->cached_count, sizeof key, cmp_entry);
	return e ? e->count : 0;
}

/* The table's entry for `addr` (linear probing from its hash, as the
 * writer inserts), or NULL.  At most THOTHLOCK_MAX_PROBES probes: the
 * writer claims no key further from its hash (lock_entry gives up), and a
 * key region of garbage (nothing zero to stop at) probed to its end for
 * each of ~500,000 garbage cache entries took a report minutes. */
static const thothlock_lock_t *find_lock(const thothlock_table_t *t, uint64_t addr)
{
	uint32_t cap = t->hdr->lock_capacity;
	uint32_t i = (uint32_t)(thothlock_hash(addr) % cap);
	uint32_t probes = cap < THOTHLOCK_MAX_PROBES ? cap : THOTHLOCK_MAX_PROBES;
	for (uint32_t n = 0; n < probes; n++, i = (i + 1) % cap) {
		uint64_t key = has_data(t, &t->keys[i]) ? t->keys[i].addr : 0;
		if (key == addr)
			return &t->locks[i];
		if (!key)
			return NULL;
	}
	return NULL;
}

static size_t count_cache_only(const thothlock_table_t *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->cached_count; i++)
		if (!find_lock(t, t->cached[i].addr))
			n++;
	return n;
}

static int cmp_locks(const void *a, const void *b)
{
	const lock_view_t *x = a, *y = b;
	if (x->lock->wait_ns_total != y->lock->wait_ns_total)
		return x->lock->wait_ns_total > y->lock->wait_ns_total ? -1 : 1;
	if (x->lock->contentions != y->lock->contentions)
		return x->lock->contentions > y->lock->contentions ? -1 : 1;
	if (x->lock->hold_ns_total != y->lock->hold_ns_total)
		return x->lock->hold_ns_total > y->lock->hold_ns_total ? -1 : 1;
	if (x->acquisitions != y->acquisitions)
		return x->acquisitions > y->acquisitions ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int cmp_sites(const void *a, const void *b)
{
	const thothlock_site_t *x = *(const thothlock_site_t *const *)a;
	const thothlock_site_t *y = *(const thothlock_site_t *const *)b;
	if (x->wait_ns_total != y->wait_ns_total)
		return x->wait_ns_total > y->wait_ns_total ? -1 : 1;
	if (x->contentions != y->contentions)
		return x->contentions > y->contentions ? -1 : 1;
	if (x->hold_ns_total != y->hold_ns_total)
		return x->hold_ns_total > y->hold_ns_total ? -1 : 1;
	return x->acquisitions > y->acquisitions ? -1 : x->acquisitions < y->acquisitions;
}

static int cmp_site_lock(const void *a, const void *b)
{
	uint32_t x = THOTHLOCK_SITE_LOCK((*(const thothlock_site_t *const *)a)->key);
	uint32_t y = THOTHLOCK_SITE_LOCK((*(const thothlock_site_t *const *)b)->key);
	return x < y ? -1 : x > y;
}

/* Group the used sites by lock once per table. */
static int index_sites(thothlock_table_t *t)
{
	size_t cap = t->hdr->site_capacity, n = 0;
	for (size_t i = next_with_data(t, t->sites, sizeof *t->sites, 0, cap); i < cap;
	     i = next_with_data(t, t->sites, sizeof *t->sites, i + 1, cap))
		if (t->sites[i].key)
			n++;
	n += t->extra_count;
	t->by_lock = calloc(n ? n : 1, sizeof *t->by_lock);
	if (!t->by_lock)
		return THOTH_E_NOMEM;
	size_t k = 0;
	for (size_t i = next_with_data(t, t->sites, sizeof *t->sites, 0, cap); i < cap && k < n;
	     i = next_with_data(t, t->sites, sizeof *t->sites, i + 1, cap))
		if (t->sites[i].key)
			t->by_lock[k++] = &t->sites[i];
	for (size_t i = 0; i < t->extra_count && k < n; i++)
		t->by_lock[k++] = &t->extra[i];
	qsort(t->by_lock, k, sizeof *t->by_lock, cmp_site_lock);
	t->sites_used = k;
	return 0;
}

/* The sites of one lock, sorted by wait; *n set.  Caller frees. */
static const thothlock_site_t **sites_of(const lock_view_t *v, size_t *n)
{
	const thothlock_table_t *t = v->table;
	*n = 0;
	/* First site of this lock: binary search in by_lock. */
	size_t lo = 0, hi = t->sites_used;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (THOTHLOCK_SITE_LOCK(t->by_lock[mid]->key) < v->index)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < t->sites_used && THOTHLOCK_SITE_LOCK(t->by_lock[end]->key) == v->index)
		end++;
	size_t count = end - lo;
	const thothlock_site_t **list = calloc(count ? count : 1, sizeof *list);
	if (!list)
		return NULL;
	memcpy(list, t->by_lock + lo, count * sizeof *list);
	qsort(list, count, sizeof *list, cmp_sites);
	*n = count;
	return list;
}

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case THOTHLOCK_KIND_MUTEX: return "mutex";
	case THOTHLOCK_KIND_RWLOCK: return "rwlock";
	case THOTHLOCK_KIND_NATIVE: return "thoth_mutex";
	default: return "unknown";
	}
}

static uint32_t stack_depth(const thothlock_stack_t *s)
{
	return s->depth <= THOTHLOCK_STACK_DEPTH ? s->depth : THOTHLOCK_STACK_DEPTH;
}

/* ---- JSON --------------------------------------------------------------- */

static void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	while (*s) {
		/* The plain run up to the next character to escape, in one write
		 * (a report writes thousands of names: per-character stdio calls
		 * were a tenth of a cached report's cost). */
		size_t n = 0;
		while (s[n] && s[n] != '"' && s[n] != '\\' && (unsigned char)s[n] >= 0x20 &&
		       (unsigned char)s[n] < 0x7f)
			n++;
		if (n)
			fwrite(s, 1, n, o);
		s += n;
		if (!*s)
			break;
		unsigned char c = (unsigned char)*s++;
		if (c == '"' || c == '\\')
			fprintf(o, "\\%c", c);
		else
			fprintf(o, "\\u%04x", c);
	}
	fputc('"', o);
}

static void json_str_or_null(FILE *o, const char *s)
{
	if (s && *s)
		json_str(o, s);
	else
		fputs("null", o);
}

/* The symbolized fields of a frame, after `"function":` (JSON writers of
 * frames and of call sites share them). */
static void json_frame_fields(FILE *o, const frame_t *f)
{
	json_str_or_null(o, f->function);
	fputs(",\"file\":", o);
	json_str_or_null(o, f->file);
	fprintf(o, ",\"line\":%d,\"location\":", f->line);
	if (f->file[0]) {
		char loc[300];
		snprintf(loc, sizeof loc, "%s:%d", base_name(f->file), f->line);
		json_str(o, loc);
	} else {
		fputs("null", o);
	}
	fputs(",\"module\":", o);
	json_str_or_null(o, f->module);
}

static void json_frame(FILE *o, const thothlock_table_t *t, uint64_t pc)
{
	frame_t f;
	char text[512];
	symbolize(t, pc, &f);
	frame_text(&f, pc, text, sizeof text);
	fprintf(o, "{\"address\":\"0x%" PRIx64 "\",\"function\":", pc);
	json_frame_fields(o, &f);
	fputs(",\"text\":", o);
	json_str(o, text);
	fputc('}', o);
}

static void json_stack(FILE *o, const thothlock_table_t *t, const thothlock_stack_t *s)
{
	fputc('[', o);
	for (uint32_t i = 0; i < stack_depth(s); i++) {
		if (i)
			fputc(',', o);
		json_frame(o, t, s->pc[i]);
	}
	fputc(']', o);
}

static void json_hist(FILE *o, const uint64_t *h)
{
	fputc('[', o);
	bool first = true;
	for (unsigned i = 0; i < THOTHLOCK_HIST_BUCKETS; i++) {
		if (!h[i])
			continue;
		fprintf(o, "%s{\"ge_ns\":%" PRIu64 ",\"count\":%" PRIu64 "}", first ? "" : ",",
		        i ? (uint64_t)1 << i : 0, h[i]);
		first = false;
	}
	fputc(']', o);
}

/* ---- sampled holds ----------------------------------------------------------
 * With THOTHLOCK_HOLD_SAMPLE=N (all mode, header.hold_sample > 1) one
 * hold in N was timed: a lock's or site's hold total is then the timed
 * holds' sum scaled to all its holds (x holds / holds timed, ~N), an
 * estimate, and so marked; the average, maximum and histogram are the
 * timed holds' (a sample).  Counts (acquisitions, contentions, waits)
 * are never sampled. */
static bool holds_sampled(const thothlock_table_t *t)
{
	return t->hdr->mode == THOTHLOCK_MODE_ALL && t->hdr->hold_sample > 1;
}

static uint64_t hold_total_estimate(const thothlock_table_t *t, uint64_t measured_ns,
                                    uint64_t holds_timed, uint64_t holds)
{
	if (!holds_sampled(t) || !holds_timed || holds <= holds_timed)
		return measured_ns;
	long double est = (long double)measured_ns * (long double)holds / (long double)holds_timed;
	return est >= 1.8e19L ? UINT64_MAX : (uint64_t)(est + 0.5L);
}

static void json_lock(FILE *o, const lock_view_t *v)
{
	const thothlock_lock_t *l = v->lock;
	const thothlock_table_t *t = v->table;
	char name[200];
	lock_name(t, v->addr, name, sizeof name);
	uint64_t waits = l->contentions + l->timeouts;
	fprintf(o, "{\"pid\":%d,\"address\":\"0x%" PRIx64 "\",\"name\":", thothlock_table_pid(t), v->addr);
	json_str_or_null(o, name);
	char storage[300];
	lock_storage(t, v->addr, storage, sizeof storage);
	fputs(",\"storage\":", o);
	json_str(o, storage[0] ? storage : "heap or stack");
	fprintf(o, ",\"kind\":\"%s\",\"acquisitions\":%" PRIu64 ",\"contentions\":%" PRIu64
	        ",\"owner_changes\":%" PRIu64 ",\"trylock_busy\":%" PRIu64 ",\"timeouts\":%" PRIu64
	        ",\"wait_ns_total\":%" PRIu64 ",\"wait_ns_avg\":%" PRIu64 ",\"wait_ns_max\":%" PRIu64
	        ",\"holds_measured\":%" PRIu64 ",\"hold_ns_total\":%" PRIu64 ",\"hold_ns_avg\":%" PRIu64
	        ",\"hold_ns_max\":%" PRIu64 ",\"hold_estimated\":%s,\"hold_ns_total_measured\":%" PRIu64
	        ",\"acquisitions_estimated\":%s,\"wait_histogram\":",
	        kind_name(v->kind), v->acquisitions, l->contentions, l->owner_changes,
	        l->trylock_busy, l->timeouts, l->wait_ns_total, waits ? l->wait_ns_total / waits : 0,
	        l->wait_ns_max, l->holds_measured,
	        hold_total_estimate(t, l->hold_ns_total, l->holds_measured, v->acquisitions),
	        l->holds_measured ? l->hold_ns_total / l->holds_measured : 0, l->hold_ns_max,
	        holds_sampled(t) ? "true" : "false", l->hold_ns_total,
	        t->hdr->sampling_threads ? "true" : "false");
	json_hist(o, l->wait_hist);
	fputs(",\"hold_histogram\":", o);
	json_hist(o, l->hold_hist);
	fputs(",\"holder_stacks\":[", o);
	bool first = true;
	for (unsigned i = 0; i < THOTHLOCK_HOLDER_STACKS; i++) {
		const thothlock_stack_t *s = &l->holders[i];
		if (!stack_depth(s) || !s->count)
			continue;
		fprintf(o, "%s{\"count\":%" PRIu64 ",\"stack\":", first ? "" : ",", s->count);
		json_stack(o, t, s);
		fputc('}', o);
		first = false;
	}
	fputs("],\"call_sites\":[", o);
	size_t n = 0;
	const thothlock_site_t **list = sites_of(v, &n);
	for (size_t i = 0; i < n; i++) {
		const thothlock_site_t *s = list[i];
		uint64_t pc = THOTHLOCK_SITE_PC(s->key);
		frame_t f;
		symbolize(t, pc, &f);
		uint64_t sw = s->contentions + s->timeouts;
		fprintf(o, "%s{\"address\":\"0x%" PRIx64 "\",\"function\":", i ? "," : "", pc);
		json_frame_fields(o, &f);
		fprintf(o, ",\"acquisitions\":%" PRIu64 ",\"contentions\":%" PRIu64
		        ",\"timeouts\":%" PRIu64 ",\"wait_ns_total\":%" PRIu64 ",\"wait_ns_avg\":%" PRIu64
		        ",\"wait_ns_max\":%" PRIu64 ",\"holds_measured\":%" PRIu64
		        ",\"hold_ns_total\":%" PRIu64 ",\"hold_ns_max\":%" PRIu64
		        ",\"hold_estimated\":%s,\"hold_ns_total_measured\":%" PRIu64
		        ",\"owner_unknown\":%" PRIu64 ",\"owner_sites\":[",
		        s->acquisitions, s->contentions, s->timeouts, s->wait_ns_total,
		        sw ? s->wait_ns_total / sw : 0, s->wait_ns_max, s->holds_measured,
		        hold_total_estimate(t, s->hold_ns_total, s->holds_measured, s->acquisitions),
		        s->hold_ns_max, holds_sampled(t) ? "true" : "false", s->hold_ns_total,
		        s->owner_unknown);
		bool ofirst = true;
		for (unsigned k = 0; k < THOTHLOCK_OWNER_SITES; k++) {
			if (!s->owners[k].pc)
				continue;
			fprintf(o, "%s{\"count\":%" PRIu64 ",\"site\":", ofirst ? "" : ",",
			        s->owners[k].count);
			json_frame(o, t, s->owners[k].pc);
			fputc('}', o);
			ofirst = false;
		}
		fputs("],\"stack\":", o);
		json_stack(o, t, &s->stack);
		fputc('}', o);
	}
	free(list);
	fputs("]}", o);
}

/* ---- text ---------------------------------------------------------------- */

static void fmt_ns(uint64_t ns, char *out, size_t cap)
{
	if (ns >= 1000000000ull)
		snprintf(out, cap, "%.3f s", (double)ns / 1e9);
	else if (ns >= 1000000ull)
		snprintf(out, cap, "%.3f ms", (double)ns / 1e6);
	else if (ns >= 1000ull)
		snprintf(out, cap, "%.3f us", (double)ns / 1e3);
	else
		snprintf(out, cap, "%" PRIu64 " ns", ns);
}

static void text_stack(FILE *o, const thothlock_table_t *t, const thothlock_stack_t *s,
                       const char *indent)
{
	for (uint32_t i = 0; i < stack_depth(s); i++) {
		frame_t f;
		char text[512];
		symbolize(t, s->pc[i], &f);
		frame_text(&f, s->pc[i], text, sizeof text);
		fprintf(o, "%s%s\n", indent, text);
	}
}

/* What a table's estimated acquisitions were sampled by, as the text
 * report says it: acquisitions (contention mode, past each thread's first
 * 4,096), cache misses (past a thread's first 1,024), or both.  A table
 * without the two counters (before them) says what its sampling_threads
 * meant: misses (version 6), or acquisitions if N > 1. */
static void sampling_words(const thothlock_header_t *h, char *buf, size_t len, bool process)
{
	buf[0] = 0;
	if (!h->sampling_threads)
		return;
	bool acq = h->acq_sampling_threads && h->mode != THOTHLOCK_MODE_ALL && h->acq_sample > 1;
	bool miss = h->miss_sampling_threads != 0;
	if (!acq && !miss) {            /* a table before the counters */
		acq = h->version >= 7 && h->mode != THOTHLOCK_MODE_ALL && h->acq_sample > 1;
		miss = !acq;
	}
	if (process && acq && miss)
		snprintf(buf, len, " (acquisitions estimated: 1 in %u counted past each thread's first %u,"
		         " cache misses 1 in %u past its first %u)", h->acq_sample,
		         THOTHLOCK_EXACT_ACQUISITIONS, THOTHLOCK_MISS_SAMPLE, THOTHLOCK_EXACT_MISSES);
	else if (process && acq)
		snprintf(buf, len, " (acquisitions estimated: 1 in %u counted past each thread's first %u)",
		         h->acq_sample, THOTHLOCK_EXACT_ACQUISITIONS);
	else if (process)
		snprintf(buf, len, " (acquisitions estimated: cache misses 1 in %u counted past a "
		         "thread's first %u)", THOTHLOCK_MISS_SAMPLE, THOTHLOCK_EXACT_MISSES);
	else if (acq && miss)
		snprintf(buf, len, " (estimated, 1 in %u counted, cache misses 1 in %u)", h->acq_sample,
		         THOTHLOCK_MISS_SAMPLE);
	else if (acq)
		snprintf(buf, len, " (estimated, 1 in %u counted)", h->acq_sample);
	else
		snprintf(buf, len, " (estimated, cache misses 1 in %u counted)", THOTHLOCK_MISS_SAMPLE);
}

static void text_lock(FILE *o, unsigned rank, const lock_view_t *v)
{
	const thothlock_lock_t *l = v->lock;
	const thothlock_table_t *t = v->table;
	char name[200], wt[32], wa[32], wm[32], ht[32], hm[32];
	lock_name(t, v->addr, name, sizeof name);
	uint64_t waits = l->contentions + l->timeouts;
	fmt_ns(l->wait_ns_total, wt, sizeof wt);
	fmt_ns(waits ? l->wait_ns_total / waits : 0, wa, sizeof wa);
	fmt_ns(l->wait_ns_max, wm, sizeof wm);
	fmt_ns(hold_total_estimate(t, l->hold_ns_total, l->holds_measured, v->acquisitions), ht,
	       sizeof ht);
	fmt_ns(l->hold_ns_max, hm, sizeof hm);
	char storage[300];
	lock_storage(t, v->addr, storage, sizeof storage);
	fprintf(o, "#%u %s %s%s0x%" PRIx64 "%s in %s (pid %d)\n", rank, kind_name(v->kind), name,
	        name[0] ? " (" : "", v->addr, name[0] ? ")" : "", storage[0] ? storage : "heap or stack",
	        thothlock_table_pid(t));
	char est[96] = "";
	sampling_words(t->hdr, est, sizeof est, false);
	fprintf(o, "   acquisitions %" PRIu64 "%s, contentions %" PRIu64 ", owner changes %" PRIu64
	        ", timeouts %" PRIu64 ", failed trylocks %" PRIu64 "\n",
	        v->acquisitions, est, l->contentions, l->owner_changes, l->timeouts, l->trylock_busy);
	if (holds_sampled(t)) {
		char ha[32];
		fmt_ns(l->holds_measured ? l->hold_ns_total / l->holds_measured : 0, ha, sizeof ha);
		fprintf(o, "   wait: total %s, avg %s, max %s; hold (sampled: %" PRIu64 " of %" PRIu64
		        " timed): total %s (estimated), avg %s, max %s (of the timed)\n",
		        wt, wa, wm, l->holds_measured, v->acquisitions, ht, ha, hm);
	} else {
		fprintf(o, "   wait: total %s, avg %s, max %s; hold (%" PRIu64 " timed): total %s, max %s\n",
		        wt, wa, wm, l->holds_measured, ht, hm);
	}
	size_t n = 0;
	const thothlock_site_t **list = sites_of(v, &n);
	for (size_t i = 0; i < n; i++) {
		const thothlock_site_t *s = list[i];
		uint64_t pc = THOTHLOCK_SITE_PC(s->key);
		frame_t f;
		char text[512];
		symbolize(t, pc, &f);
		frame_text(&f, pc, text, sizeof text);
		fmt_ns(s->wait_ns_total, wt, sizeof wt);
		fmt_ns(s->wait_ns_max, wm, sizeof wm);
		fmt_ns(hold_total_estimate(t, s->hold_ns_total, s->holds_measured, s->acquisitions), ht,
		       sizeof ht);
		fprintf(o, "   site %s: contentions %" PRIu64 ", wait %s (max %s)", text,
		        s->contentions, wt, wm);
		if (s->acquisitions || s->holds_measured)
			fprintf(o, ", acquisitions %" PRIu64 ", hold %s%s", s->acquisitions, ht,
			        holds_sampled(t) ? " (estimated)" : "");
		fputc('\n', o);
		for (unsigned k = 0; k < THOTHLOCK_OWNER_SITES; k++) {
			if (!s->owners[k].pc)
				continue;
			symbolize(t, s->owners[k].pc, &f);
			frame_text(&f, s->owners[k].pc, text, sizeof text);
			/* contention mode names where the holder released it
			 * (no held entry says where it took it) */
			fprintf(o, "      waited for a holder %s %s: %" PRIu64 " times\n",
			        t->hdr->mode == THOTHLOCK_MODE_ALL ? "from" : "releasing at", text,
			        s->owners[k].count);
		}
		if (s->owner_unknown)
			fprintf(o, "      holder not known: %" PRIu64 " times\n", s->owner_unknown);
		if (stack_depth(&s->stack)) {
			fprintf(o, "      stack:\n");
			text_stack(o, t, &s->stack, "        ");
		}
	}
	free(list);
	for (unsigned i = 0; i < THOTHLOCK_HOLDER_STACKS; i++) {
		const thothlock_stack_t *s = &l->holders[i];
		if (!stack_depth(s) || !s->count)
			continue;
		fprintf(o, "   holder stack seen by waiters %" PRIu64 " times (after its release):\n",
		        s->count);
		text_stack(o, t, s, "        ");
	}
}

/* ---- the report ---------------------------------------------------------- */

int thothlock_report_write(FILE *o, thothlock_table_t *const *tables, size_t n,
                           const thothlock_report_opts_t *opts)
{
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		for (uint32_t k = 0; k < tables[i]->hdr->lock_capacity; k++)
			if (has_data(tables[i], &tables[i]->keys[k]) && tables[i]->keys[k].addr)
				used++;
		used += count_cache_only(tables[i]);
	}
	lock_view_t *views = calloc(used ? used : 1, sizeof *views);
	if (!views)
		return THOTH_E_NOMEM;
	size_t v = 0;
	for (size_t i = 0; i < n; i++) {
		const thothlock_table_t *t = tables[i];
		for (uint32_t k = 0; k < t->hdr->lock_capacity && v < used; k++) {
			if (!has_data(t, &t->keys[k]) || !t->keys[k].addr)
				continue;
			const thothlock_lock_t *l = &t->locks[k];
			views[v] = (lock_view_t){ t, l, l->addr, l->kind, k,
						  l->acquisitions + cached_acquisitions(t, l->addr) };
			v++;
		}
		for (size_t c = 0; c < t->cached_count && v < used; c++) {
			if (find_lock(t, t->cached[c].addr))
				continue;
			views[v++] = (lock_view_t){ t, &no_entry, t->cached[c].addr, THOTHLOCK_KIND_MUTEX,
						    UINT32_MAX, t->cached[c].count };
		}
	}
	qsort(views, v, sizeof *views, cmp_locks);
	size_t shown = v;
	if (!opts->json && !opts->show_uncontended) {
		shown = 0;
		while (shown < v && (views[shown].lock->contentions || views[shown].lock->timeouts ||
		                     views[shown].lock->holds_measured))
			shown++;
	}
	if (opts->top && shown > opts->top)
		shown = opts->top;

	if (opts->json) {
		fputs("{\"tool\":\"thothlock\",\"format\":1,\"processes\":[", o);
		for (size_t i = 0; i < n; i++) {
			const thothlock_header_t *h = tables[i]->hdr;
			char prog[sizeof h->program + 1];
			memcpy(prog, h->program, sizeof h->program);
			prog[sizeof h->program] = 0;
			const thothlock_table_t *tb = tables[i];
			uint64_t end = h->end_ns ? h->end_ns
				       : tb->killed && tb->reaped_ns ? tb->reaped_ns : h->start_ns;
			fprintf(o, "%s{\"pid\":%d,", i ? "," : "", thothlock_table_pid(tb));
			if (namespace_pid(tb))
				fprintf(o, "\"namespace_pid\":%d,", namespace_pid(tb));
			fputs("\"program\":", o);
			json_str(o, prog);
			fprintf(o, ",\"state\":\"%s\"", h->exited || (tb->killed && tb->status >= 0)
							       ? "exited" : tb->killed ? "killed" : "running");
			if (tb->killed && tb->signal)
				fprintf(o, ",\"signal\":%d", tb->signal);
			if (tb->killed && tb->status >= 0)
				fprintf(o, ",\"status\":%d,\"exit_path\":false", tb->status);
			fprintf(o, ",\"mode\":\"%s\",\"exited\":%s,\"duration_ns\":%" PRIu64
			        ",\"losses\":{\"lock_table_full\":%" PRIu64 ",\"site_table_full\":%" PRIu64
			        ",\"held_overflow\":%" PRIu64 ",\"thread_overflow\":%" PRIu64
			        "},\"cond_waits\":%" PRIu64 ",\"fast_path\":\"%s\","
			        "\"acquisitions_sampled\":%s,\"acquisitions_sample\":%u,"
			        "\"acq_sampling_threads\":%" PRIu64 ",\"miss_sampling_threads\":%" PRIu64 ","
			        "\"owner_site\":\"%s\",\"hold_sample\":%u,"
			        "\"clock\":\"%s\",\"tsc_hz\":%" PRIu64 "}",
			        h->mode == THOTHLOCK_MODE_ALL ? "all" : "contention",
			        h->exited || tb->killed ? "true" : "false",
			        end > h->start_ns ? end - h->start_ns : 0,
			        h->lock_table_full, h->site_table_full, h->held_overflow,
			        h->thread_overflow, h->cond_waits,
			        h->flags & THOTHLOCK_FLAG_INLINE_TRYLOCK ? "inline" : "glibc",
			        h->sampling_threads ? "true" : "false",
			        h->mode == THOTHLOCK_MODE_ALL || !h->acq_sample ? 1u : h->acq_sample,
			        h->acq_sampling_threads, h->miss_sampling_threads,
			        h->mode == THOTHLOCK_MODE_ALL ? "acquisition" : "release",
			        holds_sampled(tables[i]) ? h->hold_sample : 1u,
			        h->flags & THOTHLOCK_FLAG_TSC ? "tsc" : "monotonic",
			        h->flags & THOTHLOCK_FLAG_TSC ? h->tsc_hz : 0);
		}
		fprintf(o, "],\"locks_total\":%zu,\"locks\":[", v);
		for (size_t i = 0; i < shown; i++) {
			if (i)
				fputc(',', o);
			json_lock(o, &views[i]);
		}
		fputs("]}\n", o);
	} else {
		for (size_t i = 0; i < n; i++) {
			const thothlock_header_t *h = tables[i]->hdr;
			char prog[sizeof h->program + 1], dur[32];
			memcpy(prog, h->program, sizeof h->program);
			prog[sizeof h->program] = 0;
			const thothlock_table_t *tb = tables[i];
			uint64_t end = h->end_ns ? h->end_ns
				       : tb->killed && tb->reaped_ns ? tb->reaped_ns : h->start_ns;
			fmt_ns(end > h->start_ns ? end - h->start_ns : 0, dur, sizeof dur);
			char fate[128];
			if (h->exited)
				snprintf(fate, sizeof fate, "ran %s", dur);
			else if (tb->killed && tb->signal)
				snprintf(fate, sizeof fate, "killed by signal %d (SIG%s)%s%s", tb->signal,
					 sigabbrev_np(tb->signal) ? sigabbrev_np(tb->signal) : "?",
					 tb->reaped_ns ? " after " : "", tb->reaped_ns ? dur : "");
			else if (tb->killed && tb->status >= 0)
				snprintf(fate, sizeof fate, "exited with status %d%s%s without its exit "
					 "path (_exit)", tb->status, tb->reaped_ns ? " after " : "",
					 tb->reaped_ns ? dur : "");
			else if (tb->killed)
				snprintf(fate, sizeof fate, "died without running its exit path (killed "
					 "or crashed)");
			else
				snprintf(fate, sizeof fate, "running");
			char sampled[192] = "";
			if (holds_sampled(tables[i]))
				snprintf(sampled, sizeof sampled, " (holds sampled: 1 in %u timed)",
				         h->hold_sample);
			else
				sampling_words(h, sampled, sizeof sampled, true);
			char ns[48] = "";
			if (namespace_pid(tables[i]))
				snprintf(ns, sizeof ns, " (pid %d in its namespace)",
				         namespace_pid(tables[i]));
			fprintf(o, "thothlock: pid %d%s (%s), %s mode%s, %s\n",
			        thothlock_table_pid(tables[i]), ns, prog,
			        h->mode == THOTHLOCK_MODE_ALL ? "all-acquisitions" : "contention-only",
			        sampled, fate);
			if (h->lock_table_full || h->site_table_full || h->held_overflow || h->thread_overflow)
				fprintf(o, "  losses: lock table full %" PRIu64 ", site table full %" PRIu64
				        ", held depth overflow %" PRIu64 ", thread slots full %" PRIu64 "\n",
				        h->lock_table_full, h->site_table_full, h->held_overflow,
				        h->thread_overflow);
		}
		fprintf(o, "%zu locks used, %zu shown (sorted by total wait)\n", v, shown);
		for (size_t i = 0; i < shown; i++)
			text_lock(o, (unsigned)(i + 1), &views[i]);
	}
	free(views);
	return ferror(o) ? THOTH_E_IO : 0;
}

/* ---- the contention ring (trace slices) ---------------------------------- */

struct thothlock_ring {
	thothlock_header_t hdr;
	int fd;                         /* open until freed: the events are read on demand */
	uint64_t file_size;
	thothlock_event_t *events;      /* a private copy of the slots a read wants */
	uint64_t cap_events;            /* its room */
};

static int ring_open(int fd, const char *path, bool sealed, thothlock_ring_t **out, char *why,
		     size_t why_len);

int thothlock_ring_open(const char *path, thothlock_ring_t **out, char *why, size_t why_len)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0) {
		int err = errno;
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", path, strerror(err));
		return err == ENOENT ? THOTH_E_NOT_FOUND : THOTH_E_IO;
	}
	return ring_open(fd, path, false, out, why, why_len);
}

int thothlock_ring_open_fd(int fd, const char *name, thothlock_ring_t **out, char *why,
			   size_t why_len)
{
	*out = NULL;
	int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0) {
		if (why && why_len)
			snprintf(why, why_len, "%s: %s", name, strerror(errno));
		return THOTH_E_IO;
	}
	return ring_open(own, name, true, out, why, why_len);
}

/* The ring of the table open at FD, which the ring keeps (closed on
 * failure).  SEALED as load_fd's. */
static int ring_open(int fd, const char *path, bool sealed, thothlock_ring_t **out, char *why,
		     size_t why_len)
{
	thothlock_ring_t *r = calloc(1, sizeof *r);
	struct stat st;
	const char *bad = NULL;
	char kind[64];
	int rc = THOTH_E_INVAL;
	if (!r) {
		rc = THOTH_E_NOMEM;
		goto fail;
	}
	r->fd = -1;
	if (sealed && thothlock_table_check_sealed(fd, kind, sizeof kind) != 0) {
		bad = kind;
		goto fail;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		bad = "not a regular file";
		goto fail;
	}
	if (pread(fd, &r->hdr, sizeof r->hdr, 0) != (ssize_t)sizeof r->hdr ||
	    r->hdr.magic != THOTHLOCK_MAGIC) {
		bad = "bad magic";
		goto fail;
	}
	const thothlock_header_t *h = &r->hdr;
	if (h->version < THOTHLOCK_VERSION_MIN || h->version > THOTHLOCK_VERSION ||
	    h->header_size != THOTHLOCK_HEADER_SIZE) {
		bad = "unsupported version";
		goto fail;
	}
	uint64_t bytes = (uint64_t)h->event_capacity * sizeof(thothlock_event_t);
	if (h->event_capacity == 0 || h->event_capacity > (1u << 20) ||
	    (h->event_capacity & (h->event_capacity - 1)) || h->events_offset < THOTHLOCK_HEADER_SIZE ||
	    h->events_offset > (uint64_t)st.st_size || bytes > (uint64_t)st.st_size - h->events_offset) {
		/* (Compared without the sum: an offset near 2^64 wraps it.) */
		bad = "ring outside the file";
		goto fail;
	}
	if (sealed && h->file_size != (uint64_t)st.st_size) {
		bad = "its size is not the one its header says";
		goto fail;
	}
	/* The slots are read when asked for (thothlock_ring_read): only those
	 * written since the reader's last position, not the whole ring. */
	r->fd = fd;
	r->file_size = (uint64_t)st.st_size;
	*out = r;
	return 0;
fail:
	if (bad)
		refuse(why, why_len, path, bad);
	close(fd);
	thothlock_ring_free(r);
	return rc;
}

/* Copy slots FIRST..FIRST+N-1 (event numbers; N <= capacity) into
 * r->events[0..N-1], in one or two reads (the ring wraps).  False when the
 * file no longer holds them (truncated meanwhile) or there is no memory. */
static bool ring_copy(thothlock_ring_t *r, uint64_t first, uint64_t n)
{
	uint64_t cap = r->hdr.event_capacity;
	if (n > r->cap_events) {
		thothlock_event_t *e = realloc(r->events, n * sizeof *e);
		if (!e)
			return false;
		r->events = e;
		r->cap_events = n;
	}
	uint64_t slot = first & (cap - 1);
	uint64_t part = cap - slot < n ? cap - slot : n;
	size_t sz = sizeof(thothlock_event_t);
	if (pread(r->fd, r->events, part * sz, (off_t)(r->hdr.events_offset + slot * sz)) !=
	    (ssize_t)(part * sz))
		return false;
	if (part < n && pread(r->fd, r->events + part, (n - part) * sz, (off_t)r->hdr.events_offset) !=
	                        (ssize_t)((n - part) * sz))
		return false;
	return true;
}

void thothlock_ring_free(thothlock_ring_t *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->events);
	free(r);
}

void thothlock_ring_identity(const thothlock_ring_t *r, int *pid, uint64_t *start_ns, bool *exited)
{
	*pid = r->hdr.pid;
	*start_ns = r->hdr.start_ns;
	*exited = r->hdr.exited != 0;
}

uint64_t thothlock_ring_head(const thothlock_ring_t *r)
{
	return r->hdr.event_head;
}

uint64_t thothlock_ring_read(thothlock_ring_t *r, uint64_t *next, thothlock_wait_fn fn, void *ctx)
{
	uint64_t head = r->hdr.event_head, cap = r->hdr.event_capacity, lost = 0;
	uint64_t n = *next;
	if (n > head)
		n = head;               /* a new process behind a reused name: start over */
	if (head - n > cap) {
		lost += head - n - cap;
		n = head - cap;
	}
	uint64_t first = n;
	if (n < head && !ring_copy(r, first, head - n))
		return 0;               /* truncated meanwhile (or no memory): read next time */
	for (; n < head; n++) {
		const thothlock_event_t *e = &r->events[n - first];
		if (e->seq > n + 1) {   /* overwritten by a later lap */
			lost++;
			continue;
		}
		if (e->seq < n + 1) {
			/* Claimed (the head moved) but not yet committed when
			 * copied: a writer between its fetch-add and its seq
			 * store, perhaps preempted there.  Read it next time
			 * rather than count it lost; a live process's later lap
			 * overwriting it is counted above, and once the process
			 * has exited nothing will commit it. */
			if (!r->hdr.exited)
				break;
			lost++;
			continue;
		}
		thothlock_wait_t w = { .start_ns = e->start_ns, .wait_ns = e->wait_ns, .lock = e->lock,
				       .tid = e->tid, .timeout = (e->flags & THOTHLOCK_EVENT_TIMEOUT) != 0 };
		fn(&w, ctx);
	}
	*next = n;
	return lost;
}
