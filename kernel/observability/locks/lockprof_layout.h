/* lockprof_layout.h - the lock profiler's statistics table, as one file.
 *
 * libthothlock.so (preload.c) keeps every statistic in one file mapped
 * MAP_SHARED: `<dir>/<pid>.table`.  Readers (thothlock at the program's
 * exit, `thothctl locks` while it runs) map or read the same bytes, so the
 * live view and the final report are one format (docs/LOCKS.md).
 *
 *   offset 0                      header (thothlock_header_t, 4096 B)
 *   header.keys_offset            lock_capacity  x thothlock_key_t
 *   header.locks_offset           lock_capacity  x thothlock_lock_t
 *   header.sites_offset           site_capacity  x thothlock_site_t
 *   header.caches_offset          thread_capacity x thothlock_cache_t
 *   header.events_offset          event_capacity x thothlock_event_t (a ring)
 *   header.tstats_offset          tstat_capacity x thothlock_tstat_t (version 3; 4: 64 B)
 *   header.site_slots_offset      2 x site_capacity x thothlock_site_slot_t (version 3: the
 *                                 writer's site index; readers skip it)
 *
 * Who writes what: only the profiled process writes; every counter is
 * updated with relaxed atomic adds (or a CAS loop for maxima) by the thread
 * that measured it, always AFTER it released the profiled lock (never
 * inside the critical section).  Entries are claimed by a CAS on their key
 * (0 = free; call sites: handed out in order by sites_used, keyed before
 * the writer's index links them) and never removed, so a reader that sees
 * a key sees a valid entry; the counters it reads may lag by the
 * in-flight updates.
 *
 * All-acquisitions mode counts each uncontended acquisition and hold in
 * the thread's own entries (thothlock_tstat_t, one per thread slot, lock
 * and call site), with plain stores: no shared cache line is written per
 * acquisition.  Those entries are never folded into the shared ones, so
 * nothing moves while a reader copies: a lock's totals are its shared
 * entry plus the sum of its tstat entries, for a live process and after
 * its exit alike (thread exit and slot reuse included: the next thread of
 * a slot goes on adding to the slot's entries).
 *
 * Readers trust nothing here: the reader (lockprof_report.c) checks magic,
 * version, sizes, capacities against the file's size and every index.
 */
#ifndef THOTH_LOCKPROF_LAYOUT_H
#define THOTH_LOCKPROF_LAYOUT_H

#include <stdint.h>

#define THOTHLOCK_MAGIC        0x4b4c4854u   /* "THLK" little-endian */
#define THOTHLOCK_VERSION      7u            /* 2: lock keys apart from their statistics;
                                              * 3: per-thread all-mode counters (tstats);
                                              * 4: one 64-byte line per acquisition;
                                              * 5: a thread's entries dense, sites only
                                              *    where needed (the reader makes the rest);
                                              * 6: all mode may time one hold in N
                                              *    (header.hold_sample);
                                              * 7: contention mode counts one acquisition
                                              *    in N past a thread's first ones
                                              *    (header.acq_sample) */
/* The oldest version the readers accept: 7 only added acq_sample in the
 * header's spare room (a version-6 table reads 0 there: every acquisition
 * counted, as it was), so a reader of 7 reads 6 as it is. */
#define THOTHLOCK_VERSION_MIN  6u
#define THOTHLOCK_HEADER_SIZE  4096u
/* Under thothlock (THOTHLOCK_DIR), the maps a process whose table was
 * handed over saves, named by its memfd's device and inode (what
 * thothlock's fstat of the descriptor it was handed says), printf format
 * with two unsigned long long: not by pid, which two pid namespaces' pid
 * 1s share (the later one's maps symbolized both).  A memfd's inode is
 * the kernel's, one per live memfd, and thothlock holds the descriptor
 * until its report.  A table that did not go through the socket (the
 * copy at exit) keeps PID.maps. */
#define THOTHLOCK_MEMFD_MAPS_FMT "memfd-%llu-%llu.maps"
#define THOTHLOCK_HIST_BUCKETS 32u            /* log2(ns) buckets, see below */
#define THOTHLOCK_STACK_DEPTH  16u
#define THOTHLOCK_OWNER_SITES  4u
#define THOTHLOCK_HOLDER_STACKS 4u
#define THOTHLOCK_CACHE_WAYS   512u
#define THOTHLOCK_EXACT_MISSES 1024u          /* per thread, before sampling */
#define THOTHLOCK_MISS_SAMPLE  32u            /* mean sampling period after */
/* All mode's hold sampling (THOTHLOCK_HOLD_SAMPLE=N, version 6): each
 * thread times one hold in N on average (a random period of 1 .. 2N-1);
 * acquisitions, contentions and waits stay exact. */
#define THOTHLOCK_HOLD_SAMPLE_MAX 65536u
/* Contention mode (version 7): each thread counts its first
 * THOTHLOCK_EXACT_ACQUISITIONS acquisitions one by one, then one in
 * THOTHLOCK_ACQ_SAMPLE on average (THOTHLOCK_ACQ_SAMPLE=N; 1: every one),
 * each with the weight of its period: acquisitions become estimates
 * (header.sampling_threads counts the threads that got that far). */
#define THOTHLOCK_EXACT_ACQUISITIONS 4096u
#define THOTHLOCK_ACQ_SAMPLE      64u

/* Capacities the writer uses (the reader takes them from the header). */
#define THOTHLOCK_LOCK_CAPACITY   16384u      /* power of two: open addressing */
#define THOTHLOCK_SITE_CAPACITY   65536u      /* power of two: one per (lock, call site) */
/* Writers give up (and count a loss) after this many probes: a full or
 * crowded table must not cost a scan of all of it per acquisition. */
#define THOTHLOCK_MAX_PROBES      256u
#define THOTHLOCK_THREAD_CAPACITY 1024u
#define THOTHLOCK_EVENT_CAPACITY  4096u       /* power of two: the contention ring */
/* Per-thread counters of all mode: one per (thread slot, lock, call site),
 * claimed from this pool as they are first needed; past it, acquisitions
 * are counted in the shared entries with atomic adds (exact, slower). */
#define THOTHLOCK_TSTAT_CAPACITY  524288u     /* 2 x 32 MiB of the file, sparse */

enum thothlock_mode {
	THOTHLOCK_MODE_CONTENTION = 0,   /* trylock first; time only contended acquisitions */
	THOTHLOCK_MODE_ALL = 1,          /* time every acquisition and every hold */
};

enum thothlock_flags {
	/* Default mutexes are taken by the inline copy of glibc's trylock
	 * (its protocol checked at start-up: preload.c, docs/LOCKS.md). */
	THOTHLOCK_FLAG_INLINE_TRYLOCK = 1u,
	/* Durations were timed with the TSC (header.tsc_hz), calibrated once
	 * against CLOCK_MONOTONIC; without it, with clock_gettime. */
	THOTHLOCK_FLAG_TSC = 2u,
	/* All mode: default mutexes kept their last owner in the mutex
	 * (version 4; preload.c, owner_flags), other locks in their key. */
	THOTHLOCK_FLAG_OWNER_WORD = 4u,
};

enum thothlock_kind {
	THOTHLOCK_KIND_MUTEX = 1,
	THOTHLOCK_KIND_RWLOCK = 2,
	THOTHLOCK_KIND_NATIVE = 3,       /* thoth_mutex_t (include/thoth/mutex.h) */
};

/* Histogram bucket i counts durations d with floor(log2(d)) == i, d in ns
 * (d < 2 goes to bucket 0; bucket 31 also takes everything >= 2^31 ns). */

typedef struct {
	uint32_t magic;
	uint16_t version;
	uint16_t header_size;        /* THOTHLOCK_HEADER_SIZE */
	uint32_t mode;               /* enum thothlock_mode */
	int32_t  pid;
	uint32_t lock_capacity;
	uint32_t site_capacity;
	uint32_t thread_capacity;
	uint32_t stack_depth;        /* THOTHLOCK_STACK_DEPTH */
	uint64_t locks_offset;
	uint64_t sites_offset;
	uint64_t caches_offset;
	uint64_t file_size;
	uint64_t start_ns;           /* CLOCK_MONOTONIC at start-up */
	uint64_t end_ns;             /* at exit; 0 while running */
	uint32_t exited;             /* 1 once the process ran its exit path */
	uint32_t flags;              /* THOTHLOCK_FLAG_* (was reserved, 0) */
	/* Losses, never silent: each counts events that found no room. */
	uint64_t lock_table_full;    /* a lock found no free entry */
	uint64_t site_table_full;    /* a call site found no free entry */
	uint64_t held_overflow;      /* a thread held more than its held[] depth */
	uint64_t thread_overflow;    /* a thread found no free thread slot */
	uint64_t cond_waits;         /* condition waits seen (their reacquisition is not timed) */
	char     program[256];       /* /proc/self/cmdline's first word */
	/* Threads whose acquisition cache missed more than
	 * THOTHLOCK_EXACT_MISSES times: from then on their misses are sampled
	 * (1 in THOTHLOCK_MISS_SAMPLE on average, each counted that many
	 * times); version 7: also threads past THOTHLOCK_EXACT_ACQUISITIONS
	 * in contention mode (acq_sample > 1), each thread once (which kind:
	 * miss_sampling_threads, acq_sampling_threads).  Either way the
	 * process's per-lock `acquisitions` are estimates;
	 * 0 = every count exact.  (Appended in the header's spare room: a
	 * table written before it reads 0.) */
	uint64_t sampling_threads;
	/* Version 2: the lock keys (thothlock_key_t) are a region of their own,
	 * before the statistics; entry i of both is the same lock. */
	uint64_t keys_offset;
	uint64_t tsc_hz;             /* THOTHLOCK_FLAG_TSC: the calibrated rate */
	/* The last event_capacity contended acquisitions, as trace slices for
	 * thothd (the dashboard's Chrome JSON export, `thothctl trace`). */
	uint64_t events_offset;
	uint32_t event_capacity;     /* power of two */
	uint32_t acq_sample;         /* version 7, contention mode: the mean period of counted
	                              * acquisitions past a thread's first EXACT_ACQUISITIONS
	                              * (1: every one counted; all mode: 1) */
	uint64_t event_head;         /* events ever written; event n is in slot n % capacity */
	/* Version 3: all mode's per-thread counters (thothlock_tstat_t). */
	uint64_t tstats_offset;
	uint32_t tstat_capacity;
	/* Version 6, all mode: the mean period of timed holds (1: every hold
	 * timed).  Above 1, holds_measured counts the holds timed, and the
	 * reader scales hold totals to every hold (an estimate, so marked). */
	uint32_t hold_sample;
	uint64_t tstats_used;        /* entries claimed so far (<= tstat_capacity) */
	uint64_t tstat_full;         /* acquisitions counted in the shared entries: the pool
	                              * or a thread's index was full (not a loss) */
	/* Version 3: sites are dense, sites[0 .. sites_used) in the order they
	 * were first seen; the writer finds them through a hash index of its
	 * own (thothlock_site_slot_t), so a thousand sites touch a thousand
	 * site entries' pages in a row, not a thousand random pages of the
	 * region (each first touch is a page fault). */
	uint64_t site_slots_offset;
	uint64_t sites_used;         /* entries claimed (<= site_capacity) */
	/* Version 7 (appended in the spare room: a table written before reads
	 * 0): what sampling_threads' threads sample.  sampling_threads counts
	 * each thread once however much it samples; these count the threads
	 * whose cache misses are sampled (past THOTHLOCK_EXACT_MISSES) and,
	 * contention mode, those whose acquisitions are (past
	 * THOTHLOCK_EXACT_ACQUISITIONS, acq_sample > 1). */
	uint64_t miss_sampling_threads;
	uint64_t acq_sampling_threads;
} thothlock_header_t;
_Static_assert(sizeof(thothlock_header_t) <= THOTHLOCK_HEADER_SIZE, "the header fits its page");

typedef struct {
	uint32_t depth;              /* frames in pc[]; 0 = not captured (yet) */
	uint32_t claimed;            /* 1 once a thread took the job of filling it */
	uint64_t count;              /* holder stacks: times seen */
	uint64_t pc[THOTHLOCK_STACK_DEPTH];   /* return addresses, innermost first */
} thothlock_stack_t;

/* A lock's key and acquisition count: what every lock seen costs.  Kept
 * apart from the statistics below (1.2 KiB per lock, written only when
 * the lock is contended or timed) so that counting acquisitions over
 * thousands of locks touches 24 bytes per lock, not a page: the keys of
 * 4096 locks fit in ~100 pages, their statistics would be one page each,
 * and every first touch of a page of the mapped file is a page fault
 * (docs/LOCKS.md, "Cost"). */
typedef struct {
	uint64_t addr;               /* the lock's address; 0 = free entry (CAS) */
	uint64_t acquisitions;       /* plus the per-thread caches' and tstats' counts */
	uint32_t kind;               /* enum thothlock_kind */
	uint32_t last_owner_tid;     /* all mode: the thread that took it last (version 4:
	                              * except default mutexes, which keep it in the mutex:
	                              * preload.c, owner_flags; header flag OWNER_WORD) */
} thothlock_key_t;

/* Entry i is the statistics of keys[i].  The writer never sets addr, kind
 * or acquisitions here (they live in the key); a reader fills them in from
 * the key after loading, so the rest of it reads one struct per lock. */
typedef struct {
	uint64_t addr;               /* reader only: keys[i].addr */
	uint32_t kind;               /* reader only: keys[i].kind */
	uint32_t reserved0;
	uint64_t acquisitions;       /* reader only: keys[i].acquisitions */
	uint64_t contentions;        /* acquisitions that had to wait */
	uint64_t owner_changes;      /* all mode: acquired by another thread than the last owner;
	                              * contention mode: the contended acquisitions (a lower bound) */
	uint64_t trylock_busy;       /* trylock calls that failed (not contentions) */
	uint64_t timeouts;           /* timed acquisitions that gave up */
	uint64_t holds_measured;     /* holds timed: all of them in all mode (one in
	                              * header.hold_sample when sampled), those after a
	                              * contended acquisition otherwise */
	uint64_t wait_ns_total;
	uint64_t wait_ns_max;
	uint64_t hold_ns_total;
	uint64_t hold_ns_max;
	uint64_t reserved1;          /* was last_owner_tid (now in the key), 0 */
	uint64_t wait_hist[THOTHLOCK_HIST_BUCKETS];
	uint64_t hold_hist[THOTHLOCK_HIST_BUCKETS];
	/* Holder stacks: captured by the owner right after it released the lock,
	 * when a waiter had flagged it; the first distinct stacks only. */
	thothlock_stack_t holders[THOTHLOCK_HOLDER_STACKS];
} thothlock_lock_t;

/* The unit of the writer's site index region (its size: 2 x site_capacity
 * of these).  Readers do not read it.  The writer (preload.c, site_entry)
 * keeps there, as 32-bit words, per lock key the index + 1 of its newest
 * site, then per site the index + 1 of the next older site of the same
 * lock: dense, where a hash of site keys over the region touched every
 * page of it (versions 3 and 4 used it so, with this layout). */
typedef struct {
	uint64_t key;
	uint32_t site;
	uint32_t reserved;
} thothlock_site_slot_t;

typedef struct {
	uint64_t pc;                 /* the owner's acquisition call site; 0 = free */
	uint64_t count;              /* times this site waited for that owner site */
} thothlock_owner_site_t;

typedef struct {
	/* key = (lock index + 1) << 48 | caller pc (x86-64 user pcs fit in 47
	 * bits); 0 = free entry (CAS). */
	uint64_t key;
	uint64_t acquisitions;       /* all mode only */
	uint64_t contentions;
	uint64_t timeouts;
	uint64_t holds_measured;
	uint64_t wait_ns_total;
	uint64_t wait_ns_max;
	uint64_t hold_ns_total;
	uint64_t hold_ns_max;
	uint64_t owner_unknown;      /* contentions whose owner site was not known */
	thothlock_owner_site_t owners[THOTHLOCK_OWNER_SITES];
	thothlock_stack_t stack;     /* the first stack seen at this site */
	/* Version 4, all mode: holds through per-thread entries that fell
	 * outside their near buckets (and their carries); a reader adds them
	 * to the site's lock's hold_hist. */
	uint64_t hold_hist[THOTHLOCK_HIST_BUCKETS];
} thothlock_site_t;

/* Per-thread acquisition counters (contention mode): a direct-mapped cache
 * that the thread alone writes; an evicted entry is added to its lock's
 * `acquisitions`.  Readers add the counts still cached. */
typedef struct {
	uint64_t addr;
	uint64_t count;
} thothlock_cache_entry_t;

typedef struct {
	thothlock_cache_entry_t way[THOTHLOCK_CACHE_WAYS];
} thothlock_cache_t;

/* All mode: what one thread slot measured at one (lock, call site), in
 * the slot's own entry, written with plain stores by the thread that owns
 * the slot (thread_state in preload.c), never folded elsewhere: a reader
 * adds each entry to keys[key_index - 1], locks[key_index - 1] and
 * sites[site_index - 1].  Contended waits stay in the shared entries (the
 * slow path anyway).
 *
 * Version 4: everything an uncontended acquisition and its hold write is
 * in the entry's one line, the hold histogram's buckets included for the
 * eleven buckets around the entry's first hold (`near`, 8 bits each: each
 * 256th hold of a bucket adds 256 to the site's); holds outside them
 * (preempted holds, mostly) go to the site's `hold_hist` with an atomic
 * add.  A thread slot claims entries 64 at a time (a page) and fills them
 * densely as it meets new pairs; it finds them through an index in its
 * private memory (preload.c; version 4 used each slot's entries as its
 * hash table, 5/8 full at most, with the old tables left behind as it
 * grew: four times the pages).  Unused entries of a claimed run stay zero
 * (key_index 0).  Entries are never moved or folded.
 *
 * Version 5, site_index 0: the pair has no site entry yet.  The writer claims one
 * for the first lock seen at a pc (it keeps the pc's stack) and for a
 * pair that waits or holds outside its near buckets; a reader gives the
 * others a site of their own (one per lock and pc, with the stack of a
 * site at the same pc, or the file's site of that key if one exists).
 *
 * Every acquisition through an entry is one hold.  Unless header.
 * hold_sample > 1 every one is timed: the hold count is `acquisitions`.
 * With hold_sample > 1 (version 6) only the holds the sampling chose are
 * timed, and each timed hold is counted once in a hold histogram (the
 * entry's near buckets, its site's far buckets and carries): a reader
 * takes their sum as the timed holds (no counter of its own: the entry
 * has no room, and N = 1 pays nothing for it; a far hold that finds no
 * site, the site region full, goes to the lock's histogram and, counted
 * there by the writer, its holds_measured).  A condition wait's
 * earlier hold segments are timed in the shared entries.  Counters
 * narrower than 64 bits add their wrap (2^8 to the site's histogram, 2^32
 * to the lock's owner changes), so the sums stay exact; a live read can
 * catch a histogram bucket between the two stores of a carry (256 too
 * many until the next read, in the timed holds too when sampled). */
#define THOTHLOCK_NEAR_BUCKETS 11u
#define THOTHLOCK_NEAR_UNSET   0xffu         /* near_base before the first hold */
typedef struct {
	uint64_t lock;               /* the lock's address (the writer's lookup key); 0 = free */
	uint64_t pc;                 /* the call site */
	uint32_t key_index;          /* keys[] index + 1; 0 = unused entry */
	uint32_t site_index;         /* sites[] index + 1; 0 = no site entry (not needed yet,
	                              * or the site region full): the reader makes one */
	uint64_t acquisitions;       /* = holds through this entry (all timed unless
	                              * header.hold_sample > 1) */
	uint64_t hold_ns_total;
	uint64_t hold_ns_max;
	uint32_t owner_changes;      /* wraps: 2^32 added to locks[].owner_changes */
	uint8_t  near_base;          /* bucket of near[0]; THOTHLOCK_NEAR_UNSET: none yet */
	uint8_t  near[THOTHLOCK_NEAR_BUCKETS];  /* hold buckets near_base .. +10; a bucket
	                              * at 255 goes to 0 and adds 256 to the site's */
} __attribute__((aligned(64))) thothlock_tstat_t;
_Static_assert(sizeof(thothlock_tstat_t) == 64, "what every acquisition writes: one line");

/* One contended acquisition (or timed acquisition that gave up), written
 * after the release: seq is set to 0, then the fields, then to n + 1 (n =
 * its number), each store a release; a reader keeps an event only when
 * seq == n + 1 (else it was overwritten or is being written). */
typedef struct {
	uint64_t seq;
	uint64_t start_ns;           /* CLOCK_MONOTONIC when the wait began */
	uint64_t wait_ns;
	uint64_t lock;               /* the lock's address */
	int32_t  tid;                /* the thread that waited */
	uint32_t flags;              /* THOTHLOCK_EVENT_* */
} thothlock_event_t;

enum thothlock_event_flags {
	THOTHLOCK_EVENT_TIMEOUT = 1u,     /* a timed acquisition that gave up */
};

/* The hash both sides use for lock addresses (table slot, cache way) and
 * site keys; lock entries are found by linear probing from it. */
static inline uint64_t thothlock_hash(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

#define THOTHLOCK_SITE_KEY(lock_index, pc) \
	((((uint64_t)(lock_index) + 1) << 48) | ((uint64_t)(pc) & 0xffffffffffffull))
#define THOTHLOCK_SITE_LOCK(key) ((uint32_t)((key) >> 48) - 1)
#define THOTHLOCK_SITE_PC(key)   ((key) & 0xffffffffffffull)

#endif
