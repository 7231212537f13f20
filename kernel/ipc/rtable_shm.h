/*
 * rtable_shm.h - the resolve table thothd shares read-only with its
 * clients (SCALE-2, docs/SCALE.md): layout, the single writer's operations
 * and the lock-free, bounds-checked reader.  Internal (thoth__ / rt_);
 * the public face is include/thoth/rtable.h.
 *
 * Memory: one memfd, sealed against shrink and grow, and against any new
 * writable mapping (F_SEAL_FUTURE_WRITE) once thothd holds its own: a
 * client can map it only read-only.
 *
 *   page 0..3   rt_header_t: geometry (written once), the seqlock word,
 *               the generation word (futex for watchers), the NUMA
 *               distance matrix (u16, RT_MAX_NODES^2), and thothd's
 *               status (rt_status_t, its own seqlock: `thothctl status`
 *               without a round trip)
 *   then        `buckets` entries of 256 bytes, open addressing by the
 *               name's hash (linear probing, backward-shift deletion), one
 *               entry per live instance.
 *
 * Concurrency: ONE writer (thothd's loop thread), any number of readers in
 * any number of processes, no lock, no read-side store.  A global seqlock:
 * the writer makes `seq` odd, changes entries, makes it even again
 * (release); a reader samples `seq` (acquire), reads what it needs with
 * relaxed atomic loads, fences (acquire) and re-reads `seq`: equal and
 * even, the copy is consistent; otherwise it retries (bounded: a table
 * that never settles answers THOTH_E_BUSY and the caller asks thothd).
 * All shared words are read with __atomic loads, so the race between a
 * reader and the writer is defined behaviour (and ThreadSanitizer-clean).
 *
 * The reader never trusts the memory: geometry is checked once at map time
 * against the file's real size and kept privately; every length read from
 * an entry is bounds-checked; probe chains are bounded by the bucket count;
 * an entry is only ever a hint (the channel handshake checks the service).
 */
#ifndef THOTH_IPC_RTABLE_SHM_H
#define THOTH_IPC_RTABLE_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "log_internal.h"       /* THOTH__HIDDEN */

/* libthoth.a may define no global symbol but thoth_*: the short names
 * used below are these. */
#define rt_writer_init thoth__rt_writer_init
#define rt_writer_free thoth__rt_writer_free
#define rt_writer_add thoth__rt_writer_add
#define rt_writer_remove thoth__rt_writer_remove
#define rt_writer_renew thoth__rt_writer_renew
#define rt_writer_count thoth__rt_writer_count
#define rt_writer_set_incomplete thoth__rt_writer_set_incomplete
#define rt_view_init thoth__rt_view_init
#define rt_key_init thoth__rt_key_init
#define rt_lookup thoth__rt_lookup
#define rt_lookup_all thoth__rt_lookup_all
#define rt_list thoth__rt_list
#define rt_name_init thoth__rt_name_init
#define rt_name_refresh thoth__rt_name_refresh
#define rt_name_past_deadline thoth__rt_name_past_deadline
#define rt_generation thoth__rt_generation
#define rt_wait thoth__rt_wait
#define rt_writer_status thoth__rt_writer_status
#define rt_status_read thoth__rt_status_read

#define RT_MAGIC 0x54525448u            /* "HTRT" little-endian: THoth Resolve Table */
#define RT_LAYOUT 2u                    /* 2: 64-bit seq (a kept answer is checked against it) */
#define RT_ENTRY_SIZE 256u
#define RT_HEADER_SIZE 16384u
#define RT_MAX_NODES 64u
#define RT_NAME_MAX 80u                 /* longer names are not in the table: a miss */
#define RT_ADDR_MAX 107u                /* thoth_resolved_t.addr holds 107 + NUL */
#define RT_READ_RETRIES 1000u           /* a reader gives up after this many unsettled reads */

enum { RT_LOCAL = 0, RT_REMOTE = 1 };

typedef struct rt_header {
	uint32_t magic, layout;
	uint32_t buckets, entry_size;
	uint64_t size;
	uint32_t header_size, n_nodes;
	uint32_t writer_pid, reserved;
	/* Odd while the writer changes entries.  64 bits: a client keeps
	 * answers and trusts them while seq still equals the value they were
	 * read at (thoth_rtable_name_t), so it must never wrap. */
	_Alignas(64) uint64_t seq;
	_Alignas(64) uint32_t generation;       /* +1 after every change; a futex word */
	uint32_t count;                         /* live entries */
	uint32_t incomplete;                    /* 1: some instance did not fit: misses are not proof */
	uint64_t changes;
	_Alignas(64) uint16_t distance[RT_MAX_NODES * RT_MAX_NODES];
} rt_header_t;

/*
 * thothd's status (what Daemon.status answers), published by thothd's loop
 * thread after every loop iteration and before every answer it sends, so
 * a client that got an answer reads a status at least as new as that
 * answer, and one reading while thothd sleeps reads the present.  Its own
 * sequence word: a status write must not disturb resolve readers (a name
 * handle's kept answers are valid while `seq` above is unchanged).
 * Strings are NUL-padded; the reader bounds them anyway.  magic 0: an
 * older thothd that does not publish (ask it with Daemon.status).
 * Placed after the distance matrix, inside the header pages older clients
 * never read: the layout number did not change.
 */
#define RT_STATUS_MAGIC 0x53545448u     /* "HTTS" little-endian */
#define RT_STATUS_STR 128u
typedef struct rt_status {
	uint32_t magic, pid;
	uint64_t seq;                           /* odd while thothd writes the rest */
	uint64_t started_ns, published_ns;      /* CLOCK_MONOTONIC */
	uint64_t publishes;
	uint32_t clients, registrations, watches, reserved;
	uint64_t wakeups, wakeups_fd, wakeups_timer, timers_fired;
	uint64_t next_expiry_ns;                /* 0: no timer armed */
	uint64_t messages;                      /* requests thothd has handled */
	char version[32];
	char runtime_dir[RT_STATUS_STR];
	char dashboard_url[RT_STATUS_STR];
} rt_status_t;

typedef struct rt_header_status {
	rt_header_t h;
	_Alignas(64) rt_status_t status;
} rt_header_status_t;

_Static_assert(sizeof(rt_header_status_t) <= RT_HEADER_SIZE, "header and status fit their pages");
_Static_assert(sizeof(rt_status_t) % 8 == 0, "status is read word by word");
#define RT_STATUS_OFF offsetof(rt_header_status_t, status)

/* One live instance: 32 words. */
typedef struct rt_entry {
	uint64_t hash;                          /* of the name, | 1; 0 = empty bucket */
	uint64_t lease;
	uint64_t expires_at_ns;                 /* CLOCK_MONOTONIC; UINT64_MAX: held by its connection */
	uint64_t instance_id;
	uint32_t major, minor;
	uint32_t patch, pid;
	uint16_t numa_node;
	uint8_t locality;                       /* RT_LOCAL / RT_REMOTE */
	uint8_t name_len;
	uint16_t addr_len;
	uint16_t reserved16;
	uint64_t reserved64;
	char name[RT_NAME_MAX];                 /* zero-padded */
	char addr[112];                         /* zero-padded, addr_len <= RT_ADDR_MAX */
} rt_entry_t;

_Static_assert(sizeof(rt_entry_t) == RT_ENTRY_SIZE, "entry is 256 bytes");

/* ---- writer (thothd) ---------------------------------------------------- */

typedef struct rt_writer {
	int fd;                                 /* the sealed memfd (sent to clients) */
	uint8_t *base;
	size_t size;
	uint32_t buckets;
} rt_writer_t;

/* The instance as the writer sees it (strings need not be NUL-terminated). */
typedef struct rt_instance {
	const char *name;
	size_t name_len;
	const char *addr;
	size_t addr_len;
	uint32_t major, minor, patch;
	uint32_t pid;
	uint16_t numa_node;
	bool remote;
	uint64_t lease, instance_id, expires_at_ns;
} rt_instance_t;

/* BUCKETS: power of two >= 64 (the table holds 3/4 of it).  DISTANCE:
 * n_nodes^2 (row = accessing node), may be NULL.  0, THOTH_E_INVAL,
 * THOTH_E_IO (memfd/seal/mmap failed; errno kept). */
THOTH__HIDDEN int rt_writer_init(rt_writer_t *w, uint32_t buckets, const uint32_t *distance, unsigned n_nodes);
THOTH__HIDDEN void rt_writer_free(rt_writer_t *w);
/* Add / remove one instance (each one seqlock write section, then the
 * generation bumped and watchers woken).  add: 0, or THOTH_E_LIMIT (name
 * or address too long, table 3/4 full: `incomplete` set, readers then
 * take a miss as "ask thothd").  remove: 0 or THOTH_E_NOT_FOUND. */
THOTH__HIDDEN int rt_writer_add(rt_writer_t *w, const rt_instance_t *in);
THOTH__HIDDEN int rt_writer_remove(rt_writer_t *w, const char *name, size_t name_len, uint64_t lease);
/* The deadline of LEASE moved (a renewal): no generation bump (the set of
 * instances did not change).  0 or THOTH_E_NOT_FOUND. */
THOTH__HIDDEN int rt_writer_renew(rt_writer_t *w, const char *name, size_t name_len, uint64_t lease,
				  uint64_t expires_at_ns);
THOTH__HIDDEN uint32_t rt_writer_count(const rt_writer_t *w);
/* Say whether every live instance is in the table (the writer counts the
 * ones that did not fit and clears this when none is left). */
THOTH__HIDDEN void rt_writer_set_incomplete(rt_writer_t *w, bool incomplete);
/* Publish ST (magic and seq are set here) in one write section of the
 * status's own sequence word: no generation bump, no wake-up. */
THOTH__HIDDEN void rt_writer_status(rt_writer_t *w, const rt_status_t *st);

/* ---- reader ------------------------------------------------------------- */

typedef struct rt_view {
	const uint8_t *base;                    /* read-only mapping */
	size_t size;
	uint32_t buckets, mask;                 /* checked copies: never re-read */
	uint32_t n_nodes;
} rt_view_t;

/* Check the header of a mapping of SIZE bytes and fill V.  0 or
 * THOTH_E_CORRUPT with WHY. */
THOTH__HIDDEN int rt_view_init(rt_view_t *v, const void *base, size_t size, char *why, size_t why_len);

/* A looked-up name, prepared once (hash, padded copy) so that repeated
 * lookups of the same name cost no hashing. */
typedef struct rt_key {
	uint64_t hash;
	uint32_t len;
	bool any_version;
	uint32_t major, minor, patch;
	uint64_t name_words[RT_NAME_MAX / 8];
} rt_key_t;

/* 0, or THOTH_E_INVAL (name empty or longer than RT_NAME_MAX, bad min
 * version: such names are never in the table). */
THOTH__HIDDEN int rt_key_init(rt_key_t *k, const char *name, const char *min_version);

typedef struct rt_result {
	char addr[RT_ADDR_MAX + 1];
	uint64_t lease, instance_id;
	uint32_t pid;
	uint16_t numa_node;
	bool remote;
	uint64_t seq;                           /* the version of the table it came from */
	uint64_t expires_at_ns;                 /* UINT64_MAX: held by its connection */
} rt_result_t;

/*
 * The best live instance for a caller on NODE: same node, then nearer
 * nodes (the table's distances), then remote; round-robin among equals
 * (a per-thread counter: no shared write).  0; THOTH_E_NOT_FOUND (a miss:
 * *INCOMPLETE says whether the table admits it may lack instances);
 * THOTH_E_BUSY (the writer kept it unsettled RT_READ_RETRIES times).
 * CLOCK_MONOTONIC is read only when a candidate has a deadline (held
 * registrations have none).
 */
THOTH__HIDDEN int rt_lookup(const rt_view_t *v, const rt_key_t *k, uint16_t node, rt_result_t *out,
			    bool *incomplete);

/*
 * Every instance rt_lookup would choose among for a caller on NODE (the
 * equally ranked best ones, up to MAX), copied in one consistent read.
 * *SEQ: the table's sequence they were read at; while rt_seq() still
 * returns it, the same call would give the same answers (no writer began
 * since).  *MIN_DEADLINE: the earliest expires_at_ns among them (UINT64_MAX
 * none).  Returns how many (>= 1), or THOTH_E_NOT_FOUND / THOTH_E_BUSY as
 * rt_lookup.  Answers whose address does not check are left out.
 */
THOTH__HIDDEN int rt_lookup_all(const rt_view_t *v, const rt_key_t *k, uint16_t node, rt_result_t *out,
				uint32_t max, uint64_t *seq, uint64_t *min_deadline, bool *incomplete);

/* The table's sequence now (acquire): even and equal to a value read
 * before means nothing changed in between. */
static inline uint64_t rt_seq(const rt_view_t *v)
{
	return __atomic_load_n(&((const rt_header_t *)(const void *)v->base)->seq, __ATOMIC_ACQUIRE);
}

/*
 * A name resolved once and its answers kept (the core of
 * thoth_rtable_name_t, here so that the in-process tests run the same
 * code under ThreadSanitizer).  rt_name_refresh() reads every equally good
 * instance for NODE with the table's sequence; rt_name_pick() then costs
 * one load: the sequence unchanged means no writer began since, so the
 * kept answers are what a full lookup would give, and the next one in
 * turn is used.  One thread at a time per rt_name_t.
 */
enum { RT_NAME_ANSWERS = 16 };

typedef struct rt_name {
	uint64_t seq;                           /* table seq the answers were read at; UINT64_MAX: none */
	uint64_t min_deadline;                  /* earliest TTL deadline among them; UINT64_MAX: none */
	uint32_t n, rr;                         /* answers kept; the next one to use */
	uint16_t node;                          /* the caller node they were chosen for */
	rt_key_t key;
	rt_result_t ans[RT_NAME_ANSWERS];
} rt_name_t;

THOTH__HIDDEN void rt_name_init(rt_name_t *nm, const rt_key_t *k);

static inline uint64_t rt_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Whether the earliest kept deadline has passed (out of line: the clock
 * read is the rare case, kept off the hot path's frame). */
THOTH__HIDDEN bool rt_name_past_deadline(const rt_name_t *nm);

/* The index in NM->ans of the answer to use, or -1: the table changed,
 * NODE is not the one they were chosen for, a deadline passed, or
 * nothing is kept (call rt_name_refresh). */
static inline int rt_name_pick(rt_name_t *nm, const rt_view_t *v, uint16_t node)
{
	if (__builtin_expect(rt_seq(v) != nm->seq || node != nm->node, 0))
		return -1;
	if (__builtin_expect(nm->min_deadline != UINT64_MAX, 0) && rt_name_past_deadline(nm))
		return -1;
	uint32_t i = nm->rr;
	nm->rr = i + 1 < nm->n ? i + 1 : 0;
	return (int)i;
}

/* Read the table again for NODE and pick: the index (>= 0), or
 * THOTH_E_NOT_FOUND / THOTH_E_BUSY as rt_lookup (nothing kept then). */
THOTH__HIDDEN int rt_name_refresh(rt_name_t *nm, const rt_view_t *v, uint16_t node);

/* One instance as a list gives it (checked, NUL-terminated). */
typedef struct rt_listed {
	char name[RT_NAME_MAX + 1];
	char addr[RT_ADDR_MAX + 1];
	uint32_t major, minor, patch, pid;
	uint16_t numa_node;
	bool remote;
	uint64_t lease, instance_id, expires_at_ns;
} rt_listed_t;

/*
 * Every live instance whose name starts with PREFIX (PREFIX_LEN bytes, 0:
 * all), in one consistent read of the whole table: up to MAX into OUT,
 * *TOTAL how many matched.  Entries whose strings do not check, and
 * instances past their deadline, are left out.  How many were written
 * into OUT, or THOTH_E_BUSY (the writer never let a whole pass finish).
 */
THOTH__HIDDEN int rt_list(const rt_view_t *v, const char *prefix, size_t prefix_len, rt_listed_t *out, size_t max,
			  size_t *total, bool *incomplete);

/* The generation word (acquire): changes after every update. */
THOTH__HIDDEN uint32_t rt_generation(const rt_view_t *v);
/* thothd's status, copied in one consistent read, strings NUL-terminated
 * within their fields.  0; THOTH_E_NOT_FOUND (the writer publishes none);
 * THOTH_E_BUSY (unsettled RT_READ_RETRIES times). */
THOTH__HIDDEN int rt_status_read(const rt_view_t *v, rt_status_t *out);
/* Wait until the generation differs from SEEN or TIMEOUT_MS passes
 * (< 0: forever).  0 changed, THOTH_E_TIMEDOUT. */
THOTH__HIDDEN int rt_wait(const rt_view_t *v, uint32_t seen, int timeout_ms);

#endif
