/* preload.c - libthothlock.so: a lock contention profiler for any program.
 *
 * Loaded with LD_PRELOAD (the `thothlock` launcher does it), it interposes
 * the pthread mutex, rwlock and condition-variable entry points, calls the
 * real ones (dlsym RTLD_NEXT) and keeps per-lock and per-call-site
 * statistics in a shared file (lockprof_layout.h), mutrace's approach.
 *
 * What must stay true (docs/LOCKS.md, "Design"):
 *  - Nothing is recorded while the profiled lock is held.  A contended
 *    acquisition only notes its wait in the thread's private held[] entry
 *    (a few stores); the shared table is updated after the real unlock.
 *    Bookkeeping inside the critical section would lengthen every hold and
 *    so inflate the contention being measured (async-profiler's lesson).
 *  - The uncontended path of contention mode is glibc's own protocol and a
 *    per-thread count down (acquisitions counted one in N, before the
 *    attempt, never inside the hold): no held entry, no clock read, no
 *    shared cache line written.  Only a contended
 *    acquisition gets a held entry; the holder's side of a contention is
 *    done where glibc's unlock finds a sleeper (the lock word above 1).
 *  - No malloc, no recursion: the real functions come from dlsym once; the
 *    tables are static or in the mapped file; stacks are taken with glibc's
 *    backtrace() (warmed up in the constructor, when it loads libgcc_s);
 *    a per-thread flag sends re-entrant calls straight to the real function.
 *  - fork: the child starts a fresh table of its own (pthread_atfork).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <link.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <spawn.h>
#include <stdarg.h>
#include <time.h>
#include <unistd.h>
/* x86-64 only: the TSC conversions use unsigned __int128, which 32-bit
 * x86 lacks (there the clock_gettime path is used). */
#if defined(__x86_64__)
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#include "lockprof_layout.h"
#include "lockprof_live.h"

#define EXPORT __attribute__((visibility("default")))
#define HELD_DEPTH 16
#define HOLD_SEGMENTS 4

/* ---- the real functions ------------------------------------------------ */

static struct {
	int (*mutex_lock)(pthread_mutex_t *);
	int (*mutex_trylock)(pthread_mutex_t *);
	int (*mutex_timedlock)(pthread_mutex_t *, const struct timespec *);
	int (*mutex_unlock)(pthread_mutex_t *);
	int (*rw_rdlock)(pthread_rwlock_t *);
	int (*rw_tryrdlock)(pthread_rwlock_t *);
	int (*rw_timedrdlock)(pthread_rwlock_t *, const struct timespec *);
	int (*rw_wrlock)(pthread_rwlock_t *);
	int (*rw_trywrlock)(pthread_rwlock_t *);
	int (*rw_timedwrlock)(pthread_rwlock_t *, const struct timespec *);
	int (*rw_unlock)(pthread_rwlock_t *);
	/* glibc 2.30's clock-selecting variants (NULL where glibc lacks them). */
	int (*mutex_clocklock)(pthread_mutex_t *, clockid_t, const struct timespec *);
	int (*rw_clockrdlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
	int (*rw_clockwrlock)(pthread_rwlock_t *, clockid_t, const struct timespec *);
	int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
	int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
	/* The descriptor calls that could take this library's own away. */
	int (*_Atomic close)(int);      /* may be called before init: NULL until then */
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	/* The execs: thothlock's socket closes with an exec of a program that
	 * will not hand a table over ("... across exec" below). */
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);  /* glibc 2.34 */
	int (*spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
		     const posix_spawnattr_t *, char *const[], char *const[]);
	int (*spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
		      const posix_spawnattr_t *, char *const[], char *const[]);
} real;
static char own_name[256];      /* this library's file name, as LD_PRELOAD would list it */
static void copy_str(char *dst, size_t cap, const char *src);
static bool is_sock_ino(int fd, unsigned long long ino);

static void die(const char *why)
{
	/* No stdio: we may be inside malloc's caller or half initialised. */
	static const char prefix[] = "libthothlock: ";
	ssize_t rc = write(2, prefix, sizeof prefix - 1);
	rc = write(2, why, strlen(why));
	rc = write(2, "\n", 1);
	(void)rc;
	abort();
}

/* A warning on stderr (no stdio: see die()); profiling goes on. */
static void warn3(const char *a, const char *b, const char *c)
{
	static const char prefix[] = "libthothlock: ";
	const char *parts[] = { prefix, a, b, c, "\n" };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		/* A part may be a path with its reason (live_warn's): 128
		 * bytes cut a deep runtime dir's mid-path, the problem unsaid.
		 * The bound only keeps a huge environment value off stderr. */
		size_t n = strnlen(parts[i], PATH_MAX + 128);
		ssize_t rc = write(2, parts[i], n);
		(void)rc;
	}
}

static void *must_resolve(const char *name, const char *version)
{
	/* The condition-variable functions exist in two versions; dlsym would
	 * hand out the old 2.2.5 compatibility one. */
	void *fn = version ? dlvsym(RTLD_NEXT, name, version) : dlsym(RTLD_NEXT, name);
	if (!fn)
		fn = dlsym(RTLD_NEXT, name);
	if (!fn)
		die(name);
	return fn;
}

static void resolve_real(void)
{
	real.mutex_lock = must_resolve("pthread_mutex_lock", NULL);
	real.mutex_trylock = must_resolve("pthread_mutex_trylock", NULL);
	real.mutex_timedlock = must_resolve("pthread_mutex_timedlock", NULL);
	real.mutex_unlock = must_resolve("pthread_mutex_unlock", NULL);
	real.rw_rdlock = must_resolve("pthread_rwlock_rdlock", NULL);
	real.rw_tryrdlock = must_resolve("pthread_rwlock_tryrdlock", NULL);
	real.rw_timedrdlock = must_resolve("pthread_rwlock_timedrdlock", NULL);
	real.rw_wrlock = must_resolve("pthread_rwlock_wrlock", NULL);
	real.rw_trywrlock = must_resolve("pthread_rwlock_trywrlock", NULL);
	real.rw_timedwrlock = must_resolve("pthread_rwlock_timedwrlock", NULL);
	real.rw_unlock = must_resolve("pthread_rwlock_unlock", NULL);
	real.mutex_clocklock = dlsym(RTLD_NEXT, "pthread_mutex_clocklock");
	real.rw_clockrdlock = dlsym(RTLD_NEXT, "pthread_rwlock_clockrdlock");
	real.rw_clockwrlock = dlsym(RTLD_NEXT, "pthread_rwlock_clockwrlock");
	real.cond_wait = must_resolve("pthread_cond_wait", "GLIBC_2.3.2");
	real.cond_timedwait = must_resolve("pthread_cond_timedwait", "GLIBC_2.3.2");
	real.dup2 = must_resolve("dup2", NULL);
	real.dup3 = must_resolve("dup3", NULL);
	real.execve = must_resolve("execve", NULL);
	real.execvp = must_resolve("execvp", NULL);
	real.execvpe = must_resolve("execvpe", NULL);
	real.fexecve = must_resolve("fexecve", NULL);
	real.execveat = dlsym(RTLD_NEXT, "execveat");
	real.spawn = must_resolve("posix_spawn", NULL);
	real.spawnp = must_resolve("posix_spawnp", NULL);
	Dl_info info;
	if (dladdr((void *)resolve_real, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');
		copy_str(own_name, sizeof own_name, slash ? slash + 1 : info.dli_fname);
	}
	atomic_store_explicit(&real.close, (int (*)(int))must_resolve("close", NULL),
			      memory_order_release);
}

/* ---- per-thread state (private memory) --------------------------------- */

enum held_flags {
	HELD_CONTENDED = 1u,     /* this acquisition waited: commit its wait */
	HELD_TIMED = 2u,         /* t_acquired is valid: commit the hold */
	HELD_INHERITED = 4u,     /* taken before fork() by the parent: not this process's */
	HELD_ENTRIES = 8u,       /* key and site below are this lock's table entries */
	HELD_TSTAT = 16u,        /* all mode: tstat below is this thread's entry of (lock, site) */
	HELD_OWNER_KNOWN = 32u,  /* all mode: the owner change was read from the mutex (owner_word) */
	HELD_OWNER_CHANGED = 64u,/* ... and it was one */
};

typedef struct {
	_Atomic(uintptr_t) lock;        /* read by waiters looking for the owner's site */
	_Atomic(uintptr_t) pc;          /* acquisition call site */
	_Atomic(uint32_t) want_stack;   /* a waiter asks for this holder's stack */
	uint32_t kind;
	uint32_t flags;
	uint32_t segments;              /* earlier hold segments (cond waits) */
	uint64_t t_acquired;            /* ticks (see ticks()) */
	uint64_t t_wait;                /* HELD_CONTENDED: ticks when the wait began */
	uint64_t wait_ns;
	/* Looked up before the acquisition, so the commit does not look them
	 * up again (a union: held_t's size is in the fast paths' index
	 * arithmetic). */
	union {
		thothlock_key_t *key;       /* HELD_ENTRIES, with site */
		thothlock_tstat_t *tstat;   /* HELD_TSTAT */
	};
	thothlock_site_t *site;
	uintptr_t owner_pc;             /* the owner's site when we contended; 0 = unknown */
	uint64_t segment_ns[HOLD_SEGMENTS];
	uint64_t pad[2];                /* to 128 bytes: held[d] is a shift, not a multiply */
} held_t;
_Static_assert(sizeof(held_t) == 128, "the fast paths index held[] by a shift");

/* All mode's per-thread entries (thothlock_tstat_t, one 64-byte line
 * each): each thread slot claims them from the pool a page (64 entries)
 * at a time and fills them densely, in the order it meets its (lock,
 * call site) pairs, and finds them through an index of its own in
 * private memory: 4-byte slots, open addressing, each slot 12 bits of the
 * pair's hash (a tag) and the entry's number.  A lookup reads the slot
 * (16 to a line: the index of 4096 pairs is 32 KiB) and the entry.
 *
 * Why not the entries themselves as the hash table (format 4 until now,
 * one line per lookup): a table is at most 5/8 full and each time it
 * doubles the old one stays (entries never move: readers add both), so
 * a thread's 4096 pairs touched 248 pages of the file where dense
 * entries touch 64; and on this VM (a PVM guest) the first touch of a
 * page costs ~25 us, ~1000 times a cache miss: 4 threads x 4096 locks
 * paid ~17 ms for the difference, in a 0.7 s `sysbench mutex` run.  The
 * index can be rebuilt when it grows (it is private: nothing reads it),
 * so no old copy of it lingers in use.  The index slot is read from
 * memory no other process can write; the entry it names is checked
 * (lock and pc) before use, since the file is writable by others.
 * It belongs to the thread slot, so a thread that reuses a slot finds the
 * entries where the last one left them; only fork() (a fresh table file)
 * clears it. */
#define TIX_MIN          512u        /* slots of a slot's first index (2 KiB) */
#define TIX_MAX          (1u << 18)  /* slots; 5/8 of it is a thread's pairs at most */
#define TIX_FIND_PROBES  4u          /* the inline lookup; beyond it, tstat_miss */
#define TIX_PROBES       64u
#define TIX_REF_MASK     0xfffffu    /* a slot: entry number + 1 in the low 20 bits, */
#define TIX_TAG_MASK     0xfff00000u /* bits 20-31 of the pair's hash above; 0 = empty */
#define TIX_POOL_SLOTS   (1u << 24)  /* the private index memory: 64 MiB of address space */
#define TCHUNK           64u         /* entries claimed at a time: one page of the file */
_Static_assert(THOTHLOCK_TSTAT_CAPACITY < TIX_REF_MASK, "an entry number fits a slot");
_Static_assert(THOTHLOCK_TSTAT_CAPACITY % TCHUNK == 0, "the pool is whole chunks");

typedef struct {
	_Atomic(int) tid;               /* 0 = free slot */
	uint32_t depth;
	uint32_t in_hook;               /* re-entrancy guard */
	uint32_t index;
	uint32_t misses;                /* acquisition-cache misses, up to THOTHLOCK_EXACT_MISSES */
	uint32_t countdown;             /* sampling: misses until the next recorded one */
	uint32_t rng;                   /* xorshift state of the sampling period */
	uint32_t hold_countdown;        /* all mode: acquisitions until the next timed hold */
	uint32_t hold_rng;              /* xorshift state of the hold sampling period */
	uint32_t acq_countdown;         /* contention mode: acquisitions until the next counted */
	uint32_t acq_period;            /* ... the period it ends (the counted one's weight) */
	uint32_t acq_exact;             /* ... acquisitions counted one by one so far */
	uint32_t acq_rng;               /* xorshift state of the counting period */
	uint32_t sampling;              /* SAMPLING_*: what this thread samples (counted once) */
	/* Contention mode's holder side (no held entry for an uncontended
	 * hold): a waiter names the lock it sleeps on here; this thread,
	 * releasing a lock with a sleeper, says where it released it.  A line
	 * of their own: other threads write waited_for and read the other two,
	 * while this thread writes the fields above on every lock (its
	 * countdown, depth, re-entrancy flag): sharing a line made each
	 * waiter's store steal it from the holder inside its hold. */
	_Alignas(64) _Atomic(uintptr_t) waited_for; /* a waiter asks for our stack at this
	                                             * lock's release */
	_Atomic(uintptr_t) released;    /* the last lock released to a sleeper, */
	_Atomic(uintptr_t) release_pc;  /* and the unlock's call site */
	_Alignas(64) thothlock_cache_t *cache; /* &caches[index], in the current table */
	uint32_t *tix;                  /* all mode: the slot's index, tix_mask + 1 slots */
	uint32_t tix_mask;
	uint32_t tix_used;
	uint32_t chunk_next, chunk_end; /* pool entries claimed for the slot, not used yet */
	held_t held[HELD_DEPTH];
} thread_state_t;

_Static_assert(offsetof(thread_state_t, waited_for) % 64 == 0 &&
               offsetof(thread_state_t, cache) - offsetof(thread_state_t, waited_for) == 64 &&
               offsetof(thread_state_t, acq_rng) < offsetof(thread_state_t, waited_for),
               "the waiter-written fields have a cache line of their own");

#define SAMPLING_MISSES 1u
#define SAMPLING_ACQ    2u

static thread_state_t threads[THOTHLOCK_THREAD_CAPACITY];
static _Atomic(uint32_t) threads_high;          /* slots ever used: scan bound */
static __thread thread_state_t *self __attribute__((tls_model("initial-exec")));
static __thread bool self_unavailable __attribute__((tls_model("initial-exec")));

/* ---- the shared table --------------------------------------------------- */

static thothlock_header_t *table;
static thothlock_key_t *keys;
static thothlock_lock_t *locks;
static thothlock_site_t *sites;
static thothlock_site_slot_t *site_slots;      /* the region; the writer's use of it: */
static _Atomic(uint32_t) *site_heads;           /* per key: index + 1 of its newest site */
static _Atomic(uint32_t) *site_next;            /* per site: the next older one of its lock */
#define SITE_SLOTS (2u * THOTHLOCK_SITE_CAPACITY)
_Static_assert((THOTHLOCK_LOCK_CAPACITY + THOTHLOCK_SITE_CAPACITY) * sizeof(uint32_t) <=
               SITE_SLOTS * sizeof(thothlock_site_slot_t), "the site index fits its region");
static thothlock_cache_t *caches;
static thothlock_event_t *events;
static thothlock_tstat_t *tstats;
static size_t table_size;
static int mode = THOTHLOCK_MODE_CONTENTION;
static uint32_t hold_sample = 1;                /* all mode: time one hold in N (1: every one) */
static uint32_t acq_sample = THOTHLOCK_ACQ_SAMPLE;  /* contention mode: count one acquisition in N
                                                 * past a thread's first EXACT_ACQUISITIONS */
static bool fast_mutex;                         /* contention mode + inline trylock checked */
static bool fast_mutex_all;                     /* all mode + inline trylock checked */
static bool owner_word;                         /* all mode: default mutexes keep their last
                                                 * owner in __count (check_inline_trylock) */
static _Atomic(int) init_state;                 /* 0 none, 1 running, 2 done */
static _Atomic(int) resolved;                   /* real.* are set */
static pthread_key_t exit_key;
static char table_path[PATH_MAX];               /* DIR/PID.table: the live view's marker, or
						 * (THOTHLOCK_DIR) the base of PID.maps */
static bool keep_table;                         /* THOTHLOCK_DIR given: hand it to thothlock */
static char live_path[PATH_MAX];                /* THOTHLOCK_DIR mode: RUNTIME_DIR/locks/PID.table,
						 * the live view's marker of the same table */
static bool live_warned;                        /* said once why it could not be made */
/* The descriptors this library keeps in the program: the table's memfd
 * and thothlock's socket.  Atomic: the program's close/dup2 wrappers read
 * them from any thread (below, "Descriptors the program cannot close"). */
static _Atomic(int) table_fd = -1;              /* the sealed memfd the table is mapped from */
static _Atomic(int) hand_sock = -1;             /* THOTHLOCK_FD's socket, once checked */
static unsigned long long hand_ino;             /* ... its inode, as THOTHLOCK_FD says */
/* The number of ours the program last close()d (table, socket): the
 * program's view is that it is closed, so a second close() of it answers
 * EBADF as the kernel would.  Compared with the number now: ours moved
 * (dup2 onto it) is fresh to the program again. */
static _Atomic(int) closed_table = -1, closed_sock = -1;
static _Atomic(int) fds_owner;                  /* the process they are open in (a vfork
						 * child shares this memory, not them) */
static bool handed;                             /* thothlock holds it (THOTHLOCK_FD) */
static uintptr_t own_text_start, own_text_end;  /* frames inside this library are skipped */

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the clock of waits and holds -----------------------------------------
 * Every timed wait or hold reads the clock twice.  clock_gettime through
 * the vDSO costs 50-70 ns on this VM (kvm-clock: the TSC read plus the
 * pvclock scaling, in a retry loop), rdtsc 10-15 ns.  So where the TSC is
 * invariant (cpuinfo's constant_tsc and nonstop_tsc: a fixed rate through
 * frequency and idle-state changes) durations are TSC ticks, converted to
 * ns by a rate calibrated once against CLOCK_MONOTONIC at start-up; else
 * (another architecture, no invariant TSC, THOTHLOCK_CLOCK=monotonic, an
 * implausible calibration) they are clock_gettime's.  Across CPUs the TSC
 * is only as synchronised as the kernel and hypervisor keep it (Linux
 * needs the same for its tsc clocksource; kvm-clock's vDSO for its stable
 * bit): a difference that comes out negative counts as 0. */
static bool use_tsc;
static uint64_t tsc_mult;         /* ns = ticks * tsc_mult >> 32 */
static uint64_t tsc_base, ns_base; /* one (TSC, CLOCK_MONOTONIC) pair */

static inline uint64_t ticks(void)
{
#ifdef HAVE_TSC
	if (__builtin_expect(use_tsc, 1))
		return __rdtsc();
#endif
	return now_ns();
}

/* t1 - t0 in ns (0 if t1 is earlier: another CPU's TSC may lag). */
static inline uint64_t elapsed_ns(uint64_t t0, uint64_t t1)
{
	uint64_t d = t1 - t0;
	if ((int64_t)d < 0)
		return 0;
	if (use_tsc)
		return (uint64_t)(((unsigned __int128)d * tsc_mult) >> 32);
	return d;
}

#ifdef HAVE_TSC
/* `word` as a whole word of the cpuinfo flags line `line`. */
static bool has_flag(const char *line, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = strstr(line, word); p; p = strstr(p + 1, word))
		if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == ':') && (p[n] == ' ' || p[n] == 0))
			return true;
	return false;
}

static bool invariant_tsc(void)
{
	/* The first CPU's flags line; static buffer: init() runs once, and no
	 * malloc here. */
	static char buf[16384];
	int fd = open("/proc/cpuinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t len = 0;
	char *line = NULL, *end = NULL;
	while (len < sizeof buf - 1) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
		line = strstr(buf, "\nflags");
		if (line && (end = strchr(line + 1, '\n')) != NULL)
			break;
	}
	close(fd);
	if (!line || !end)
		return false;
	*end = 0;
	return has_flag(line, "constant_tsc") && has_flag(line, "nonstop_tsc");
}

/* A (TSC, CLOCK_MONOTONIC) pair read close together: the tightest of 8
 * tries (a preempted try has a wide bracket), the TSC at its middle. */
static bool clock_pair(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;
	*tsc = *ns = 0;   /* set even when no try counts (GCC -O3 cannot tell) */
	for (int i = 0; i < 8; i++) {
		uint64_t a = __rdtsc();
		uint64_t n = now_ns();
		uint64_t b = __rdtsc();
		if (b > a && b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*ns = n;
		}
	}
	return best < 100000;
}
#endif

/* Decide the clock; calibrate the TSC over CALIBRATE_NS of CLOCK_MONOTONIC
 * (a spin at start-up: +-20 ticks at each end of ~400k is 1e-4). */
#define CALIBRATE_NS 200000u
static void choose_clock(void)
{
	use_tsc = false;
#ifdef HAVE_TSC
	const char *c = getenv("THOTHLOCK_CLOCK");
	if (c && strcmp(c, "monotonic") == 0)
		return;
	if (c && strcmp(c, "tsc") != 0)
		warn3("THOTHLOCK_CLOCK=", c, ": not monotonic or tsc; the TSC where it is invariant");
	if (!invariant_tsc())
		return;
	uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0;   /* set by clock_pair (-O3 cannot tell) */
	if (!clock_pair(&t0, &n0))
		return;
	while (now_ns() - n0 < CALIBRATE_NS)
		__builtin_ia32_pause();
	if (!clock_pair(&t1, &n1) || t1 <= t0 || n1 <= n0)
		return;
	uint64_t hz = (uint64_t)((unsigned __int128)(t1 - t0) * 1000000000u / (n1 - n0));
	if (hz < 50000000ull || hz > 20000000000ull)
		return;   /* implausible: 50 MHz .. 20 GHz */
	tsc_mult = (uint64_t)(((unsigned __int128)1000000000u << 32) / hz);
	tsc_base = t1;
	ns_base = n1;
	use_tsc = true;
#endif
}

/* A ticks() reading as CLOCK_MONOTONIC ns (the trace's clock). */
static inline uint64_t ticks_to_monotonic(uint64_t t)
{
	return use_tsc ? ns_base + elapsed_ns(tsc_base, t) - elapsed_ns(t, tsc_base) : t;
}

static uint64_t tsc_hz(void)
{
	return use_tsc ? (uint64_t)(((unsigned __int128)1000000000u << 32) / tsc_mult) : 0;
}

static inline uint64_t hash_ptr(uint64_t x)
{
	return thothlock_hash(x);
}

/* A (lock, call site) pair's hash: its home slot in a thread's index is
 * taken from the top 32 bits, the slot's tag from bits 20-31. */
static inline uint64_t tindex_hash(uintptr_t lock, uintptr_t pc)
{
	return ((uint64_t)lock * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)pc * 0xff51afd7ed558ccdull);
}

static inline uint32_t tindex_home(uint64_t h, uint32_t mask)
{
	return (uint32_t)(h >> 32) & mask;
}

static inline unsigned bucket_of(uint64_t ns)
{
	if (ns < 2)
		return 0;
	unsigned b = 63u - (unsigned)__builtin_clzll(ns);
	return b < THOTHLOCK_HIST_BUCKETS ? b : THOTHLOCK_HIST_BUCKETS - 1;
}

static inline void add(uint64_t *p, uint64_t v)
{
	__atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

static inline void set_max(uint64_t *p, uint64_t v)
{
	uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
	while (v > cur &&
	       !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* The key of the lock at `addr`, claimed if new; NULL when the table is
 * full.  Only the dense key region is probed (thothlock_key_t). */
static thothlock_key_t *lock_entry(uintptr_t addr, uint32_t kind)
{
	if (!keys)
		return NULL;
	uint32_t mask = THOTHLOCK_LOCK_CAPACITY - 1;
	uint32_t i = (uint32_t)hash_ptr(addr) & mask;
	for (uint32_t n = 0; n < THOTHLOCK_MAX_PROBES; n++, i = (i + 1) & mask) {
		thothlock_key_t *e = &keys[i];
		uint64_t key = __atomic_load_n(&e->addr, __ATOMIC_ACQUIRE);
		if (key == addr)
			return e;
		if (key == 0) {
			uint64_t expected = 0;
			if (__atomic_compare_exchange_n(&e->addr, &expected, addr, false,
			                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				__atomic_store_n(&e->kind, kind, __ATOMIC_RELAXED);
				return e;
			}
			if (expected == addr)
				return e;
		}
	}
	add(&table->lock_table_full, 1);
	return NULL;
}

/* The statistics of the lock whose key is `k`. */
static inline thothlock_lock_t *stats_of(const thothlock_key_t *k)
{
	return &locks[k - keys];
}

/* The site entry of (lock, pc), claimed if new; NULL when the site
 * region is full or the lock has THOTHLOCK_MAX_PROBES sites already.
 * Found through the writer's index in the site_slots region: per lock
 * the newest of its sites (site_heads, by key index), per site the next
 * older one of the same lock (site_next, by site index), so a lookup
 * walks the few sites of one lock.  Both arrays are dense: 4096 locks
 * with a site each touch 20 pages of them, where a hash index over the
 * 2 MiB region touched all 512 (each first touch of a page is a page
 * fault: ~25 us on this VM, most of all mode's cost on `sysbench mutex`).
 * Entries are handed out in order, so the sites in use are dense too.
 *
 * Lookups take no lock.  Additions are made one at a time, under a lock
 * of this process (site_add_busy), and a new entry is complete - key
 * stored - before its lock's head names it (a release store), so a walk
 * never meets an entry being made.  A thread that finds nothing takes
 * the lock and walks again before adding: two threads meeting a new
 * (lock, pc) at once make one entry.  The old way linked the entry by a
 * CAS on the head and stored its key after; a thread walking the chain
 * that met the key still 0 waited for it, but only so long (4,096 spins,
 * so that a hostile file's zero could not hang it), and went on to add
 * the pair a second time when the adding thread was preempted or took
 * the page fault of the entry's first touch in between: two entries of
 * one call site, its counts split between them (test_locks_exact_counts
 * under load; test_locks_site_race).  Additions are rare (at most
 * site_capacity in a process's life), so the lock costs nothing that
 * shows.  Another process may write this file: every index is checked
 * and every walk bounded; a zero key on a chain (only a hostile writer
 * leaves one) is walked past. */
static _Atomic(int) site_add_busy;              /* the addition lock (private memory) */
static _Atomic(bool) site_add_stuck;            /* it stayed held 2 s: given up for good */
static uint32_t site_test_delay_us;             /* THOTHLOCK_TEST_SITE_DELAY_US: tests only */

static thothlock_site_t *site_find(uint32_t v, uint64_t key, uint32_t *steps)
{
	for (; v; v = atomic_load_explicit(&site_next[v - 1], memory_order_acquire)) {
		if (v > THOTHLOCK_SITE_CAPACITY || ++*steps > THOTHLOCK_MAX_PROBES)
			return NULL;
		if (__atomic_load_n(&sites[v - 1].key, __ATOMIC_ACQUIRE) == key)
			return &sites[v - 1];
	}
	return NULL;
}

/* The addition lock: held for a walk of one lock's sites and the stores
 * of one entry (and its first page fault).  Every caller runs with
 * in_hook set, so a signal handler's lock calls pass straight through
 * and never come here while its thread holds it; a forked child's copy
 * is reset (after_fork_child).  Bounded: a child made without the atfork
 * handler (_Fork, a raw clone) can inherit it held, and a SCHED_FIFO
 * spinner can starve a preempted holder on its CPU.  A holder takes at most
 * a page fault (tests hold it 50 ms); held for 2 s it is taken to be stuck
 * for good, and from then on new sites are counted as not kept
 * (site_table_full) at once instead of waiting again. */
enum { SITE_ADD_STUCK_NS = 2000000000 };
static bool site_add_lock(void)
{
	uint64_t since = 0;
	for (unsigned spin = 0;; spin++) {
		if (atomic_load_explicit(&site_add_busy, memory_order_relaxed) == 0 &&
		    atomic_exchange_explicit(&site_add_busy, 1, memory_order_acquire) == 0)
			return true;
		if (spin < 64)
			continue;
		sched_yield();           /* the holder was preempted: let it run */
		if (spin % 1024 == 0) {
			if (atomic_load_explicit(&site_add_stuck, memory_order_relaxed))
				return false;
			uint64_t now = now_ns();
			if (!since) {
				since = now;
			} else if (now - since > SITE_ADD_STUCK_NS) {
				atomic_store_explicit(&site_add_stuck, true, memory_order_relaxed);
				return false;
			}
		}
	}
}

static void site_add_unlock(void)
{
	atomic_store_explicit(&site_add_busy, 0, memory_order_release);
}

static thothlock_site_t *site_entry(thothlock_key_t *lock, uintptr_t pc)
{
	uint32_t ki = (uint32_t)(lock - keys);
	uint64_t key = THOTHLOCK_SITE_KEY(ki, pc);
	_Atomic(uint32_t) *head = &site_heads[ki];
	uint32_t steps = 0;
	thothlock_site_t *s = site_find(atomic_load_explicit(head, memory_order_acquire), key,
	                                &steps);
	if (s)
		return s;
	if (steps > THOTHLOCK_MAX_PROBES) {
		add(&table->site_table_full, 1);   /* this lock's chain is full (or hostile) */
		return NULL;
	}
	if (atomic_load_explicit(&site_add_stuck, memory_order_relaxed) || !site_add_lock()) {
		add(&table->site_table_full, 1);
		return NULL;
	}
	/* Again: another thread may have added it since. */
	uint32_t h = atomic_load_explicit(head, memory_order_acquire);
	steps = 0;
	s = site_find(h, key, &steps);
	if (!s && steps <= THOTHLOCK_MAX_PROBES) {
		uint64_t n = __atomic_fetch_add(&table->sites_used, 1, __ATOMIC_RELAXED);
		if (n < THOTHLOCK_SITE_CAPACITY) {
			s = &sites[n];
			__atomic_store_n(&s->key, key, __ATOMIC_RELAXED);
			atomic_store_explicit(&site_next[n], h, memory_order_relaxed);
			if (__builtin_expect(site_test_delay_us != 0, 0))
				usleep(site_test_delay_us);   /* a preempted adder (tests) */
			/* Last: the entry is complete when a walk can reach it. */
			atomic_store_explicit(head, (uint32_t)n + 1, memory_order_release);
		}
	}
	site_add_unlock();
	if (!s)
		add(&table->site_table_full, 1);
	return s;
}

/* Fill `st` with the calling thread's stack (outside this library) once:
 * the first thread to claim it captures, others go on. */
static void capture_stack_once(thothlock_stack_t *st)
{
	uint32_t expected = 0;
	if (__atomic_load_n(&st->claimed, __ATOMIC_RELAXED) ||
	    !__atomic_compare_exchange_n(&st->claimed, &expected, 1, false,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	void *frames[THOTHLOCK_STACK_DEPTH + 8];
	int n = backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
	uint32_t depth = 0;
	for (int k = 0; k < n && depth < THOTHLOCK_STACK_DEPTH; k++) {
		uintptr_t pc = (uintptr_t)frames[k];
		if (pc >= own_text_start && pc < own_text_end)
			continue;
		st->pc[depth++] = pc;
	}
	__atomic_store_n(&st->depth, depth, __ATOMIC_RELEASE);
}

/* Call sites whose stack was taken (pc -> site index + 1): the same call
 * site on another lock (an array of item locks, a lock per object) copies
 * that stack instead of unwinding again (backtrace() is tens of
 * microseconds: per (lock, site) it was a good part of all mode's cost on
 * memcached's 4096 item locks).  Its frames above the call site are those
 * of the first acquisition at that pc, on any lock (docs/LOCKS.md).
 * Private memory; cleared at fork (the site indexes are the table's). */
#define PC_STACKS 4096u
static struct {
	_Atomic(uint64_t) pc;           /* 0 = free (CAS) */
	_Atomic(uint32_t) site;         /* index + 1 of a site whose stack is complete */
} pc_stacks[PC_STACKS];

static void site_stack_once(thothlock_site_t *s, uintptr_t pc)
{
	thothlock_stack_t *st = &s->stack;
	if (__atomic_load_n(&st->claimed, __ATOMIC_RELAXED))
		return;
	uint32_t i = (uint32_t)hash_ptr(pc) & (PC_STACKS - 1);
	for (uint32_t n = 0; n < 8; n++, i = (i + 1) & (PC_STACKS - 1)) {
		uint64_t cur = atomic_load_explicit(&pc_stacks[i].pc, memory_order_acquire);
		if (cur == 0)
			break;
		if (cur != pc)
			continue;
		uint32_t v = atomic_load_explicit(&pc_stacks[i].site, memory_order_acquire);
		if (v == 0 || v > THOTHLOCK_SITE_CAPACITY || &sites[v - 1] == s)
			break;
		const thothlock_stack_t *from = &sites[v - 1].stack;
		uint32_t depth = __atomic_load_n(&from->depth, __ATOMIC_ACQUIRE);
		uint32_t expected = 0;
		if (depth == 0 || depth > THOTHLOCK_STACK_DEPTH ||
		    !__atomic_compare_exchange_n(&st->claimed, &expected, 1, false, __ATOMIC_ACQ_REL,
		                                 __ATOMIC_RELAXED))
			return;
		memcpy(st->pc, from->pc, depth * sizeof st->pc[0]);
		__atomic_store_n(&st->depth, depth, __ATOMIC_RELEASE);
		return;
	}
	capture_stack_once(st);
	if (!__atomic_load_n(&st->depth, __ATOMIC_ACQUIRE))
		return;
	i = (uint32_t)hash_ptr(pc) & (PC_STACKS - 1);
	for (uint32_t n = 0; n < 8; n++, i = (i + 1) & (PC_STACKS - 1)) {
		uint64_t expected = 0;
		if (atomic_compare_exchange_strong(&pc_stacks[i].pc, &expected, pc) || expected == pc) {
			uint32_t none = 0;
			atomic_compare_exchange_strong(&pc_stacks[i].site, &none, (uint32_t)(s - sites) + 1);
			return;
		}
	}
}

/* Whether a site with a complete stack is known for pc (site_stack_once
 * registered one). */
static bool pc_stack_known(uintptr_t pc)
{
	uint32_t i = (uint32_t)hash_ptr(pc) & (PC_STACKS - 1);
	for (uint32_t n = 0; n < 8; n++, i = (i + 1) & (PC_STACKS - 1)) {
		uint64_t cur = atomic_load_explicit(&pc_stacks[i].pc, memory_order_acquire);
		if (cur == 0)
			return false;
		if (cur == pc)
			return atomic_load_explicit(&pc_stacks[i].site, memory_order_acquire) != 0;
	}
	return false;
}

/* ---- all mode's per-thread entries --------------------------------------- */

static uint32_t *tix_pool;                       /* private, MAP_NORESERVE */
static _Atomic(uint64_t) tix_pool_used;          /* slots handed out */

/* A new index for the thread slot: the first, or twice the last, with
 * the pairs of the old one put in (their entries stay where they are).
 * False when the index memory or TIX_MAX runs out: the caller counts in
 * the shared entries. */
static bool tix_grow(thread_state_t *t)
{
	uint32_t size = t->tix ? 2 * (t->tix_mask + 1) : TIX_MIN;
	if (size > TIX_MAX)
		return false;
	if (!tix_pool) {
		void *p = mmap(NULL, (size_t)TIX_POOL_SLOTS * sizeof(uint32_t), PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		uint32_t *none = NULL;
		if (p == MAP_FAILED)
			return false;
		if (!__atomic_compare_exchange_n(&tix_pool, &none, (uint32_t *)p, false,
		                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			munmap(p, (size_t)TIX_POOL_SLOTS * sizeof(uint32_t));
	}
	uint32_t *pool = __atomic_load_n(&tix_pool, __ATOMIC_ACQUIRE);
	uint64_t n = atomic_fetch_add_explicit(&tix_pool_used, size, memory_order_relaxed);
	if (n + size > TIX_POOL_SLOTS)
		return false;
	uint32_t *ix = pool + n, mask = size - 1, used = 0;
	for (uint32_t j = 0; t->tix && j <= t->tix_mask; j++) {
		uint32_t v = t->tix[j];
		if (!v)
			continue;
		const thothlock_tstat_t *e = &tstats[(v & TIX_REF_MASK) - 1];
		uint32_t i = tindex_home(tindex_hash(e->lock, e->pc), mask);
		while (ix[i])
			i = (i + 1) & mask;
		ix[i] = v;
		used++;
	}
	t->tix = ix;
	t->tix_mask = mask;
	t->tix_used = used;
	return true;
}

static inline uint32_t tix_tag(uint64_t h)
{
	return (uint32_t)h & TIX_TAG_MASK;
}

/* (lock, pc) not found by the inline probes: further probes, else a new
 * entry with the pair's key (and a site, for a pc's first lock).  NULL
 * when the lock table, the pool or the index is full: the caller counts
 * in the shared entries instead. */
static __attribute__((noinline)) thothlock_tstat_t *tstat_miss(thread_state_t *t, uintptr_t lock,
                                                              uintptr_t pc, uint32_t kind)
{
	if (!tstats)
		return NULL;
	uint64_t h = tindex_hash(lock, pc);
	uint32_t tag = tix_tag(h), *slot = NULL;
	if (t->tix) {
		uint32_t i = tindex_home(h, t->tix_mask);
		for (uint32_t n = 0; n < TIX_PROBES; n++, i = (i + 1) & t->tix_mask) {
			uint32_t v = t->tix[i];
			if (v == 0) {
				slot = &t->tix[i];
				break;
			}
			if ((v & TIX_TAG_MASK) == tag) {
				thothlock_tstat_t *c = &tstats[(v & TIX_REF_MASK) - 1];
				if (c->lock == lock && c->pc == pc)
					return c;
			}
		}
	}
	if (!slot || 8 * (t->tix_used + 1) > 5 * (t->tix_mask + 1)) {
		if (tix_grow(t)) {
			/* Probe the new index (the pair is there if it was in the
			 * old one past TIX_PROBES). */
			uint32_t i = tindex_home(h, t->tix_mask), v;
			for (; (v = t->tix[i]) != 0; i = (i + 1) & t->tix_mask)
				if ((v & TIX_TAG_MASK) == tag) {
					thothlock_tstat_t *c = &tstats[(v & TIX_REF_MASK) - 1];
					if (c->lock == lock && c->pc == pc)
						return c;
				}
			slot = &t->tix[i];
		} else if (!slot || 4 * (t->tix_used + 1) > 3 * (t->tix_mask + 1)) {
			return NULL;   /* no larger index: this one up to 3/4, then shared entries */
		}
	}
	if (t->chunk_next == t->chunk_end) {
		if (__atomic_load_n(&table->tstats_used, __ATOMIC_RELAXED) + TCHUNK >
		    THOTHLOCK_TSTAT_CAPACITY)
			return NULL;
		uint64_t n = __atomic_fetch_add(&table->tstats_used, TCHUNK, __ATOMIC_RELAXED);
		if (n + TCHUNK > THOTHLOCK_TSTAT_CAPACITY)
			return NULL;   /* raced past the end: readers clamp tstats_used */
		t->chunk_next = (uint32_t)n;
		t->chunk_end = (uint32_t)n + TCHUNK;
	}
	t->in_hook = 1;
	thothlock_key_t *k = lock_entry(lock, kind);
	thothlock_tstat_t *e = NULL;
	if (k) {
		/* A site entry (544 bytes) only for the first lock seen at this
		 * pc, which keeps the pc's stack; the pair's counts are in its
		 * own entry, and its site is claimed later only if it needs one
		 * (tstat_site: a wait, a far hold).  Readers give a pair without
		 * a site one of its own, with its pc's stack
		 * (lockprof_report.c).  A site per pair was 545 pages of
		 * `sysbench mutex`'s 4096 locks. */
		thothlock_site_t *s = !pc_stack_known(pc) ? site_entry(k, pc) : NULL;
		if (s)
			site_stack_once(s, pc);
		uint32_t idx = t->chunk_next++;
		e = &tstats[idx];
		e->lock = lock;
		e->pc = pc;
		e->near_base = THOTHLOCK_NEAR_UNSET;
		e->site_index = s ? (uint32_t)(s - sites) + 1 : 0;
		/* Last: a reader adds an entry only once it names a key. */
		__atomic_store_n(&e->key_index, (uint32_t)(k - keys) + 1, __ATOMIC_RELEASE);
		*slot = tag | (idx + 1);
		t->tix_used++;
	}
	t->in_hook = 0;
	return e;
}

/* The site of a thread's entry, claimed the first time it is needed (a
 * wait, a hold outside the near buckets, a condition wait); NULL when
 * the site region is full.  Called by the entry's thread, after the
 * release. */
static thothlock_site_t *tstat_site(thothlock_tstat_t *ts)
{
	if (ts->site_index && ts->site_index <= THOTHLOCK_SITE_CAPACITY)
		return &sites[ts->site_index - 1];
	thread_state_t *t = self;
	uint32_t was = t ? t->in_hook : 0;
	if (t)
		t->in_hook = 1;   /* backtrace() may take locks: not ours to profile */
	thothlock_site_t *s = site_entry(&keys[ts->key_index - 1], ts->pc);
	if (s) {
		site_stack_once(s, ts->pc);
		__atomic_store_n(&ts->site_index, (uint32_t)(s - sites) + 1, __ATOMIC_RELAXED);
	}
	if (t)
		t->in_hook = was;
	return s;
}

/* This thread's entry of (lock, pc): its index slot (or one of the next
 * few), then the entry it names. */
static inline thothlock_tstat_t *tstat_find(thread_state_t *t, uintptr_t lock, uintptr_t pc,
                                            uint32_t kind)
{
	const uint32_t *ix = t->tix;
	if (__builtin_expect(ix != NULL, 1)) {
		uint64_t h = tindex_hash(lock, pc);
		uint32_t mask = t->tix_mask, i = tindex_home(h, mask), tag = tix_tag(h);
		for (uint32_t n = 0; n < TIX_FIND_PROBES; n++, i = (i + 1) & mask) {
			uint32_t v = ix[i];
			if (v == 0)
				break;
			if (__builtin_expect((v & TIX_TAG_MASK) == tag, 1)) {
				thothlock_tstat_t *e = &tstats[(v & TIX_REF_MASK) - 1];
				if (__builtin_expect(e->lock == lock && e->pc == pc, 1))
					return e;
			}
		}
	}
	return tstat_miss(t, lock, pc, kind);
}

/* ---- threads ------------------------------------------------------------ */

static void flush_cache(uint32_t index)
{
	thothlock_cache_t *c = &caches[index];
	for (uint32_t w = 0; w < THOTHLOCK_CACHE_WAYS; w++) {
		uint64_t addr = c->way[w].addr;
		uint64_t count = c->way[w].count;
		if (!addr)
			continue;
		c->way[w].count = 0;
		c->way[w].addr = 0;
		thothlock_key_t *e = lock_entry(addr, THOTHLOCK_KIND_MUTEX);
		if (e)
			add(&e->acquisitions, count);
	}
}

static void thread_exit(void *arg)
{
	thread_state_t *t = arg;
	t->in_hook = 1;
	if (caches)
		flush_cache(t->index);
	t->depth = 0;
	self = NULL;
	self_unavailable = true;        /* later destructors' locks pass straight through */
	atomic_store_explicit(&t->tid, 0, memory_order_release);
}

/* A thread's counting and sampling state as a new thread starts it: its
 * slot claimed, or the forking thread in a child, whose table is new (the
 * parent's periods and weights, its exact count and its miss count
 * describe the parent's table: a child's first counted acquisition
 * carried the parent's weight, its counts reported exact). */
static void reset_counting(thread_state_t *t)
{
	uint32_t i = t->index;
	t->misses = 0;
	t->countdown = 0;
	t->hold_countdown = 0;      /* the thread's first hold is timed */
	t->hold_rng = (0x9e3779b9u ^ (i * 2654435761u)) | 1u;
	t->acq_countdown = 1;       /* counted one by one at first */
	t->acq_period = 1;
	t->acq_exact = 0;
	t->acq_rng = (0x85ebca6bu ^ (i * 2246822519u)) | 1u;
	t->sampling = 0;
	atomic_store_explicit(&t->waited_for, 0, memory_order_relaxed);
	atomic_store_explicit(&t->released, 0, memory_order_relaxed);
	atomic_store_explicit(&t->release_pc, 0, memory_order_relaxed);
}

static thread_state_t *claim_thread(void)
{
	if (self_unavailable)
		return NULL;
	int tid = (int)syscall(SYS_gettid);
	for (uint32_t i = 0; i < THOTHLOCK_THREAD_CAPACITY; i++) {
		int expected = 0;
		if (atomic_load_explicit(&threads[i].tid, memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&threads[i].tid, &expected, tid)) {
			thread_state_t *t = &threads[i];
			t->depth = 0;
			t->in_hook = 0;
			t->index = i;
			t->cache = &caches[i];
			reset_counting(t);
			uint32_t high = atomic_load(&threads_high);
			while (high < i + 1 && !atomic_compare_exchange_weak(&threads_high, &high, i + 1))
				;
			self = t;
			/* Key index < 32: pthread_setspecific needs no allocation. */
			t->in_hook = 1;
			pthread_setspecific(exit_key, t);
			t->in_hook = 0;
			return t;
		}
	}
	self_unavailable = true;
	if (table)
		add(&table->thread_overflow, 1);
	return NULL;
}

static void init(void);
static void check_inline_trylock(void);

/* The calling thread's state, or NULL when this call must pass straight
 * through (not initialised, re-entered, no slot). */
static inline thread_state_t *enter(void)
{
	/* The wrappers called init() already when real.* was unset; here only
	 * "under way in this thread" remains, answered by passing through. */
	if (__builtin_expect(atomic_load_explicit(&init_state, memory_order_relaxed) != 2, 0))
		return NULL;
	thread_state_t *t = self;
	if (__builtin_expect(!t, 0))
		t = claim_thread();
	if (!t || t->in_hook)
		return NULL;
	return t;
}

/* ---- descriptors the program cannot close --------------------------------
 *
 * Daemons close every descriptor they did not open at start-up:
 * closefrom(3), close_range(3, ~0U, 0), or close() over every number.
 * That closed the table's memfd (live readers find the table only through
 * /proc/PID/fd: the process went unseen) and thothlock's socket (a worker
 * it forked then could not hand its table over, so a kill -9 lost its
 * report).  So these calls are interposed and this library's two
 * descriptors survive them:
 *  - close(ours) answers 0 and closes nothing.  0, not EBADF: the program
 *    can only know the number from /proc/self/fd (closefrom's fallback
 *    reads it) or THOTHLOCK_FD, where it is listed as open, and closing an
 *    open descriptor succeeds; runtimes that raise on EBADF (Python's
 *    os.close) would turn a harmless close into a crash.  A second close
 *    of that number answers EBADF, as the kernel would once the first had
 *    closed it (close_ours).  Other calls on the number (fcntl, fstat,
 *    read, dup) still reach ours: only close keeps the program's view.
 *  - close_range and closefrom close the rest of their range, split around
 *    ours, with the caller's flags (CLOSE_RANGE_CLOEXEC: ours keep their
 *    own close-on-exec flag: the socket must reach exec'd programs;
 *    CLOSE_RANGE_UNSHARE: done even when the range held only ours).  Bad
 *    input (first > last, unknown flags) goes to the kernel whole, which
 *    answers EINVAL as it would without the profiler.
 *  - dup2/dup3 onto our number: the program wants that number, so ours
 *    moves to another (same close-on-exec flag) and the program's call
 *    then does what it asked.
 * Not seen: the raw syscalls (a static or Go program) and glibc-internal
 * closes (posix_spawn's file actions, in the spawned child only).  A vfork
 * child's calls go through untouched (is_ours). */

static inline bool is_ours(int fd)
{
	/* The pid last: a syscall, asked only of a number that matches.  In
	 * a vfork child (this memory, its own descriptors) nothing is ours:
	 * its dup2 onto our number must not move the parent's record. */
	return fd >= 0 &&
	       (fd == atomic_load_explicit(&table_fd, memory_order_relaxed) ||
		fd == atomic_load_explicit(&hand_sock, memory_order_relaxed)) &&
	       (int)syscall(SYS_getpid) == atomic_load_explicit(&fds_owner, memory_order_relaxed);
}

/* This library's own closes: the kernel's, never the program's view. */
static int close_own(int fd)
{
	return (int)syscall(SYS_close, fd);
}

/* FD, a descriptor of ours, moved off its number (the program dup2s onto
 * it): the new number, same close-on-exec flag; -1 when there is no room,
 * and then ours is given up (the program's call must do what it asked). */
static int move_ours(int fd)
{
	int fl = fcntl(fd, F_GETFD);
	int moved = fl < 0 ? -1 : fcntl(fd, (fl & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD, 3);
	int expect = fd;
	if (!atomic_compare_exchange_strong(&table_fd, &expect, moved)) {
		expect = fd;
		if (!atomic_compare_exchange_strong(&hand_sock, &expect, moved)) {
			/* another thread's dup2 onto FD moved it first: this
			 * copy is nobody's */
			if (moved >= 0)
				close_own(moved);
			return -1;
		}
	}
	if (moved < 0)
		warn3("the program took this library's descriptor's number and no other is free: ",
		      "this process's table is no longer seen live nor handed to thothlock", "");
	return moved;
}

/* close() of one of ours: the first answers 0 and closes nothing (the
 * program's descriptor is "closed"), a second one EBADF, as the kernel
 * answers a close of a closed number.  Two threads closing it at once:
 * one gets 0, the other EBADF, as without the profiler. */
static int close_ours(int fd)
{
	_Atomic(int) *closed =
		fd == atomic_load_explicit(&table_fd, memory_order_relaxed) ? &closed_table : &closed_sock;
	if (atomic_exchange(closed, fd) == fd) {
		errno = EBADF;
		return -1;
	}
	return 0;
}

EXPORT int close(int fd)
{
	if (is_ours(fd))
		return close_ours(fd);
	int (*fn)(int) = atomic_load_explicit(&real.close, memory_order_acquire);
	return fn ? fn(fd) : close_own(fd);
}

static int dup_onto(int oldfd, int newfd, int flags, bool three)
{
	/* dup3's bad flags: the kernel's EINVAL comes before EBADF */
	if (oldfd != newfd && (!three || (flags & ~O_CLOEXEC) == 0) && is_ours(newfd)) {
		if (fcntl(oldfd, F_GETFD) < 0)
			return -1;              /* EBADF: nothing to dup, ours stays */
		(void)move_ours(newfd);
	}
	if (three)
		return real.dup3 ? real.dup3(oldfd, newfd, flags)
				 : (int)syscall(SYS_dup3, oldfd, newfd, flags);
	if (real.dup2)
		return real.dup2(oldfd, newfd);
	if (oldfd == newfd)
		return fcntl(oldfd, F_GETFD) < 0 ? -1 : newfd;
	return (int)syscall(SYS_dup3, oldfd, newfd, 0);
}

EXPORT int dup2(int oldfd, int newfd)
{
	return dup_onto(oldfd, newfd, 0, false);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return dup_onto(oldfd, newfd, flags, true);
}

/* ---- thothlock's socket across exec ---------------------------------------
 *
 * The socket must reach the programs PROGRAM execs with the library
 * preloaded (they hand their tables over through it, finding it by
 * THOTHLOCK_FD), so thothlock leaves it without close-on-exec.  An exec of
 * a program that will not (an environment without THOTHLOCK_FD, or whose
 * LD_PRELOAD does not name this library) would carry it into the new
 * image until that ends: here it is marked close-on-exec just before such
 * an exec, and unmarked again when the exec fails.  The memfd is always
 * close-on-exec (a new image makes its own).  Not seen: glibc's own execs
 * (system(), popen(), posix_spawn's inside), which keep it as inherited,
 * and an exec of a static program with the library in LD_PRELOAD; another
 * thread that forks and execs a profiled program during such an exec's
 * window loses the socket (its table is copied at its exit, with a
 * warning). */

/* An exec before this library's constructor ran (another library's
 * constructor): the real functions looked up now. */
static void resolve_execs(void)
{
	if (real.spawnp)
		return;
	real.execve = dlsym(RTLD_NEXT, "execve");
	real.execvp = dlsym(RTLD_NEXT, "execvp");
	real.execvpe = dlsym(RTLD_NEXT, "execvpe");
	real.fexecve = dlsym(RTLD_NEXT, "fexecve");
	real.execveat = dlsym(RTLD_NEXT, "execveat");
	real.spawn = dlsym(RTLD_NEXT, "posix_spawn");
	real.spawnp = dlsym(RTLD_NEXT, "posix_spawnp");
}

/* Does ENVP have a profiled program hand its table to thothlock? */
static bool env_hands_over(char *const envp[])
{
	bool fd = false, preload = false;
	size_t n = strlen(own_name);
	for (size_t i = 0; envp && envp[i] && !(fd && preload); i++) {
		const char *e = envp[i];
		if (strncmp(e, "THOTHLOCK_FD=", 13) == 0) {
			fd = e[13] != 0;
		} else if (n && strncmp(e, "LD_PRELOAD=", 11) == 0) {
			/* entries separated by spaces or colons; a match ends one
			 * and starts at one's start or after a slash */
			for (const char *p = e + 11; (p = strstr(p, own_name)); p++) {
				char before = p == e + 11 ? ' ' : p[-1], after = p[n];
				if ((before == ' ' || before == ':' || before == '/') &&
				    (after == 0 || after == ' ' || after == ':')) {
					preload = true;
					break;
				}
			}
		}
	}
	return fd && preload;
}

/* Before an exec with ENVP: the socket's number, if it was marked
 * close-on-exec for it (to unmark when the exec fails), else -1. */
static int sock_for_exec(char *const envp[])
{
	resolve_execs();
	int sock = atomic_load(&hand_sock);
	if (sock < 0 || env_hands_over(envp) || !is_sock_ino(sock, hand_ino))
		return -1;      /* none; a profiled program follows; or the number is no longer ours */
	int fl = fcntl(sock, F_GETFD);
	if (fl < 0 || (fl & FD_CLOEXEC) || fcntl(sock, F_SETFD, fl | FD_CLOEXEC) != 0)
		return -1;
	return sock;
}

/* After an exec that returned (failed), or a spawn: the socket as it was. */
static int exec_returned(int sock, int rc)
{
	if (sock >= 0) {
		int saved = errno;
		int fl = fcntl(sock, F_GETFD);
		if (fl >= 0)
			(void)fcntl(sock, F_SETFD, fl & ~FD_CLOEXEC);
		errno = saved;
	}
	return rc;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	int sock = sock_for_exec(envp);
	int rc = real.execve ? real.execve(path, argv, envp) : (int)syscall(SYS_execve, path, argv, envp);
	return exec_returned(sock, rc);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	int sock = sock_for_exec(envp);
	return exec_returned(sock, real.execvpe(file, argv, envp));
}

EXPORT int execvp(const char *file, char *const argv[])
{
	int sock = sock_for_exec(environ);
	return exec_returned(sock, real.execvp(file, argv));
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	int sock = sock_for_exec(envp);
	return exec_returned(sock, real.fexecve(fd, argv, envp));
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	int sock = sock_for_exec(envp);
	int rc = real.execveat ? real.execveat(dirfd, path, argv, envp, flags)
			       : (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
	return exec_returned(sock, rc);
}

/* execl, execlp, execle: their arguments into an array (on the stack:
 * no malloc, they may run in a vfork child), then the v form above. */
#define LIST_ARGS(arg, argv, envp_out)                                          \
	size_t argc_ = 1;                                                       \
	va_list ap_;                                                            \
	va_start(ap_, arg);                                                     \
	while (va_arg(ap_, char *))                                             \
		argc_++;                                                        \
	va_end(ap_);                                                            \
	char *argv[argc_ + 1];                                                  \
	argv[0] = (char *)(arg);                                                \
	va_start(ap_, arg);                                                     \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                  \
		argv[i_] = va_arg(ap_, char *);                                 \
	envp_out;                                                               \
	va_end(ap_)

EXPORT int execl(const char *path, const char *arg, ...)
{
	LIST_ARGS(arg, argv, (void)0);
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	LIST_ARGS(arg, argv, (void)0);
	return execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *const *envp;
	LIST_ARGS(arg, argv, envp = va_arg(ap_, char *const *));
	return execve(path, argv, envp);
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int sock = sock_for_exec(envp);
	return exec_returned(sock, real.spawn(pid, path, fa, attr, argv, envp));
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	int sock = sock_for_exec(envp);
	return exec_returned(sock, real.spawnp(pid, file, fa, attr, argv, envp));
}

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1U << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int close_range_raw(unsigned int first, unsigned int last, unsigned int flags)
{
#ifdef SYS_close_range
	return (int)syscall(SYS_close_range, first, last, flags);
#else
	(void)first, (void)last, (void)flags;
	errno = ENOSYS;
	return -1;
#endif
}

/* close_range(FIRST, LAST, FLAGS) on every number of the range but ours. */
static int close_range_around(unsigned int first, unsigned int last, unsigned int flags)
{
	int a = atomic_load(&table_fd), b = atomic_load(&hand_sock);
	unsigned int keep[2];
	size_t n = 0;
	if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) ||
	    (int)syscall(SYS_getpid) != atomic_load(&fds_owner))
		return close_range_raw(first, last, flags);     /* EINVAL by the kernel; a vfork child */
	if (a >= 0 && (unsigned)a >= first && (unsigned)a <= last)
		keep[n++] = (unsigned)a;
	if (b >= 0 && b != a && (unsigned)b >= first && (unsigned)b <= last)
		keep[n++] = (unsigned)b;
	if (n == 0)
		return close_range_raw(first, last, flags);
	/* closed in the program's view: a later close() of it is EBADF */
	if (!(flags & CLOSE_RANGE_CLOEXEC)) {
		if (a >= 0 && (unsigned)a >= first && (unsigned)a <= last)
			atomic_store(&closed_table, a);
		if (b >= 0 && (unsigned)b >= first && (unsigned)b <= last)
			atomic_store(&closed_sock, b);
	}
	if (n == 2 && keep[0] > keep[1]) {
		unsigned int t = keep[0];
		keep[0] = keep[1];
		keep[1] = t;
	}
	unsigned int from = first;
	bool called = false;
	for (size_t i = 0; i <= n; i++) {
		/* the piece [from, keep[i] - 1], then the rest up to last */
		bool tail = i == n;
		if (!tail && keep[i] == from) {
			from = keep[i] + 1;     /* ours are at most INT_MAX: no wrap */
			continue;
		}
		if (tail && from > last)
			break;
		unsigned int to = tail ? last : keep[i] - 1;
		if (close_range_raw(from, to, flags) != 0)
			return -1;
		called = true;
		if (!tail)
			from = keep[i] + 1;
	}
	if (!called && (flags & CLOSE_RANGE_UNSHARE) && unshare(CLONE_FILES) != 0)
		return -1;
	return 0;
}

EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	return close_range_around(first, last, (unsigned int)flags);
}

/* glibc's closefrom: close_range(LOWFD, ~0U, 0), else (a kernel without
 * close_range) each number up to the descriptor limit; it cannot fail. */
EXPORT void closefrom(int lowfd)
{
	unsigned int from = lowfd < 0 ? 0 : (unsigned int)lowfd;
	if (close_range_around(from, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = from; fd < (max > 0 ? max : 1024); fd++) {
		if (!is_ours((int)fd))
			(void)close_own((int)fd);
		else
			(void)close_ours((int)fd);
	}
}

/* ---- table file --------------------------------------------------------- */

static size_t table_bytes(void)
{
	return THOTHLOCK_HEADER_SIZE + (size_t)THOTHLOCK_LOCK_CAPACITY * sizeof(thothlock_key_t) +
	       (size_t)THOTHLOCK_LOCK_CAPACITY * sizeof(thothlock_lock_t) +
	       (size_t)THOTHLOCK_SITE_CAPACITY * sizeof(thothlock_site_t) +
	       (size_t)THOTHLOCK_THREAD_CAPACITY * sizeof(thothlock_cache_t) +
	       (size_t)THOTHLOCK_EVENT_CAPACITY * sizeof(thothlock_event_t) +
	       (size_t)THOTHLOCK_TSTAT_CAPACITY * sizeof(thothlock_tstat_t) +
	       (size_t)SITE_SLOTS * sizeof(thothlock_site_slot_t);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static void read_program_name(char *out, size_t cap)
{
	out[0] = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	out[n > 0 ? n : 0] = 0;
}

/* The live view's directory, RUNTIME_DIR/locks (thothd's rule,
 * lockprof_live.h), into DIR.
 * MAKE_BASE: a bare LD_PRELOAD run makes RUNTIME_DIR itself; under
 * thothlock only a RUNTIME_DIR that exists already (a thothd or a
 * thothctl of this user is about) gets a locks/: running a program under
 * thothlock leaves no runtime directory behind where nobody looks.
 * Both, and locks/, must be this user's own (thothlock_dir_ours): false
 * with WHY said where one is not (another user's /tmp/thoth-UID), false
 * with WHY empty where RUNTIME_DIR is simply not there under thothlock. */
static bool live_dir(char *dir, size_t cap, bool make_base, char *why, size_t why_cap)
{
	char base[PATH_MAX];
	why[0] = 0;
	if (!thothlock_runtime_dir(base, sizeof base))
		return false;
	if (make_base)
		(void)mkdir(base, 0700);
	if (!thothlock_dir_ours(base, true, why, why_cap)) {
		if (!make_base && errno == ENOENT)
			why[0] = 0;
		return false;
	}
	int n = snprintf(dir, cap, "%s/locks", base);
	if (n < 0 || (size_t)n >= cap)
		return false;
	(void)mkdir(dir, 0700);
	return thothlock_dir_ours(dir, false, why, why_cap);
}

/* Why no live marker is made, said once per program image (a forked
 * child inherits the flag): never fatal, the program runs profiled. */
static void live_warn(const char *why)
{
	if (!live_warned)
		warn3(why, ": no live marker, thothd and `thothctl locks` do not see this process",
		      keep_table ? " (thothlock's report is not affected)" : "");
	live_warned = true;
}

/* The kernel's initial pid namespace (PROC_PID_INIT_INO, fixed since
 * Linux 3.8): the inode of /proc/self/ns/pid there. */
#define THOTHLOCK_PID_NS_INIT_INO 0xEFFFFFFCULL

/* The last decision below and the pid namespace (its /proc/self/ns/pid
 * inode) it was made in: a forked child in the same namespace inherits
 * both and does not ask thothd again; one after unshare(CLONE_NEWPID)
 * (another inode) decides afresh.  0: none made. */
static unsigned long long pidns_decided_ino;
static bool pidns_decided_outside;

/* A bare run (no thothlock): is a thothd of this runtime dir outside this
 * process's pid namespace, so that getpid() would name another process
 * to it?  In a pid namespace of its own (`unshare -pf --mount-proc
 * PROGRAM`, a container) the process is 1, 2 ... there and another number
 * outside: a marker under it would name another process to such a thothd
 * (and its removal at exit remove that one's).  The kernel gives the
 * listening thothd's pid through SO_PEERCRED as this namespace numbers
 * it, 0 when it is outside.  False (publish, as before) in the initial
 * namespace (fixed inode, nothing asked), where /proc cannot tell, where
 * no thothd answers (no socket, refused, a full backlog: a container
 * without thothd, whose `thothctl locks` reads the directory in the same
 * namespace) and where thothd's pid is seen (a thothd in the same
 * container numbers the process as it does). */
static bool thothd_outside_pidns(const char *locks_dir)
{
	struct stat st;
	if (stat("/proc/self/ns/pid", &st) != 0 || (unsigned long long)st.st_ino == THOTHLOCK_PID_NS_INIT_INO)
		return false;
	unsigned long long ino = (unsigned long long)st.st_ino;
	if (ino == pidns_decided_ino)
		return pidns_decided_outside;
	/* thothd's socket, RUNTIME_DIR/thothd.sock, from LOCKS_DIR
	 * (RUNTIME_DIR/locks, live_dir): "locks/../" made the path 9 bytes
	 * longer than thothd's own, so under a runtime dir of 87..95 bytes
	 * (thothd serves up to 95) it did not fit sun_path and the marker was
	 * published for a thothd outside the namespace, without a word. */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t base = strlen(locks_dir);
	if (base >= 6 && strcmp(locks_dir + base - 6, "/locks") == 0)
		base -= 6;
	int n = snprintf(a.sun_path, sizeof a.sun_path, "%.*s/thothd.sock", (int)base, locks_dir);
	if (n < 0 || (size_t)n >= sizeof a.sun_path)
		return false;
	/* non-blocking: a thothd whose backlog is full does not hold this
	 * program's start (EAGAIN: undecided, published, asked again) */
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return false;
	struct ucred cr = { .pid = -1 };
	socklen_t len = sizeof cr;
	bool answered = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
	int err = errno;
	bool outside = answered && getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.pid == 0;
	close_own(s);
	if (answered || err != EAGAIN) {
		pidns_decided_ino = ino;
		pidns_decided_outside = outside;
	}
	return outside;
}

/* <THOTHLOCK_DIR> if set (the launcher's private directory: kept for the
 * report), else the thoth runtime dir's locks/ (live view; removed at exit). */
static bool choose_dir(char *dir, size_t cap)
{
	const char *d = getenv("THOTHLOCK_DIR");
	if (d && *d) {
		keep_table = true;
		copy_str(dir, cap, d);
		return true;
	}
	char why[PATH_MAX + 96];
	if (live_dir(dir, cap, true, why, sizeof why)) {
		if (!thothd_outside_pidns(dir))
			return true;
		char pid[16];
		snprintf(pid, sizeof pid, "%d", (int)getpid());
		if (!live_warned)
			warn3("this process is in a pid namespace of its own (pid ", pid,
			      " there, another number outside, where this runtime dir's thothd runs): no live "
			      "marker, thothd and `thothctl locks` do not see it; run it as "
			      "`thothlock -- PROGRAM` (docs/LOCKS.md), whose report names it by both pids");
		live_warned = true;
		return false;
	}
	if (why[0])
		live_warn(why);
	return false;
}

/* Under thothlock: does this process see thothlock's pid?  Its socket's
 * peer is thothlock (socketpair() recorded it), and the kernel gives that
 * pid as this process's pid namespace numbers it: 0 where it cannot (a
 * pid namespace of its own, `unshare -p`).  There getpid() is not the pid
 * thothd and /proc outside know, so a live marker would name another
 * process (pid 1, 2 ...).  No socket: as a bare run, which cannot tell. */
static bool sees_thothlock(void)
{
	int sock = atomic_load(&hand_sock);
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (sock < 0 || getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0)
		return true;
	return cr.pid > 0;
}

static void save_maps(void);

/* The table's memory: a memfd named "thothlock:PID" (readers find it in
 * /proc/PID/fd), sealed against shrinking and growing before it is
 * mapped, so no process can cut it short under this one (a truncated
 * shared file made the next lock fault with SIGBUS).  Not sealed against
 * writes: this process writes it; whoever reads it treats it as hostile.
 * Close-on-exec: a new program image makes its own.  -1 if the kernel
 * has no sealed memfds (the table is then private: profiled, not seen). */
static int sealed_memfd(size_t size)
{
	char name[32];
	snprintf(name, sizeof name, "thothlock:%d", (int)getpid());
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0 && fd < 3) {
		/* A program started with stdin, stdout or stderr closed: leave
		 * those numbers to it ("close(0); open(...)" expects 0), since it
		 * could never close ours. */
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		close_own(fd);
		fd = high;
	}
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* THOTHLOCK_FD's socket, at start-up (before the program runs, so before
 * it can close anything): kept in hand_sock, which the program's closes
 * then spare, and which a forked child inherits.  -1 when unset or not
 * that socket (an exec'd program whose parent closed or reused it). */
static bool is_sock_ino(int fd, unsigned long long ino)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == (ino_t)ino;
}

/* The descriptor of this process that is socket INO, -1 if none: an
 * exec'd program whose parent dup2'd onto THOTHLOCK_FD's number, which
 * moved the socket (dup_onto) without changing the variable it inherited.
 * The inode is the socket's own: no other descriptor can match it. */
static int find_sock_ino(unsigned long long ino)
{
	DIR *d = opendir("/proc/self/fd");
	int found = -1;
	struct dirent *e;
	while (d && found < 0 && (e = readdir(d))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && !*end && fd <= INT_MAX &&
		    fd != dirfd(d) && is_sock_ino((int)fd, ino))
			found = (int)fd;
	}
	if (d)
		closedir(d);
	return found;
}

static void find_hand_sock(void)
{
	const char *v = getenv("THOTHLOCK_FD");
	char *end = NULL;
	long sock = v && *v ? strtol(v, &end, 10) : -1;
	unsigned long long ino = 0;
	atomic_store(&hand_sock, -1);
	if (!v)
		return;         /* THOTHLOCK_DIR alone: the copy at exit (save_table) */
	if (sock >= 0 && *end == ':' && end[1] >= '0' && end[1] <= '9')
		ino = strtoull(end + 1, &end, 10);
	if (sock < 0 || sock > INT_MAX || *end || !ino)
		return;
	if (!is_sock_ino((int)sock, ino) && (sock = find_sock_ino(ino)) < 0)
		return;
	hand_ino = ino;
	atomic_store(&hand_sock, (int)sock);
}

/* THOTHLOCK_DIR mode: give thothlock the table now, while this process
 * lives, through the socket it left open at THOTHLOCK_FD ("FD:INODE").
 * The descriptor in flight (then in thothlock) keeps the memfd when this
 * process dies, however it dies: thothlock used to read a file after the
 * fact.  The inode says it is still that socket: a program that closed FD
 * and opened a socket of its own there (then forked) must not be sent a
 * byte and a descriptor in the middle of its own protocol. */
static void hand_over(int fd)
{
	const char *v = getenv("THOTHLOCK_FD");
	int sock = atomic_load(&hand_sock);
	handed = false;
	if (!v)
		return;         /* THOTHLOCK_DIR alone: the copy at exit (save_table) */
	/* Still that socket: one the program put at our number by a raw
	 * dup2 syscall (not seen by dup_onto) is not written to. */
	if (sock < 0 || !is_sock_ino(sock, hand_ino)) {
		warn3("THOTHLOCK_FD=", v,
		      ": not thothlock's socket (the program closed or reused it?): this "
		      "process's table is copied at its exit only");
		return;
	}
	char byte = 't';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union {
		struct cmsghdr h;
		char room[CMSG_SPACE(sizeof(int))];
	} c;
	memset(&c, 0, sizeof c);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.room,
			    .msg_controllen = sizeof c.room };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	if (sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
		warn3("cannot hand this process's table to thothlock: ", strerror(errno),
		      ": it is copied at its exit only");
	else
		handed = true;
}

/* PATH.new made afresh, its name in FRESH (what someone left under that
 * name, a FIFO or a link, is removed, never opened): its descriptor, or
 * -1.  publish() then gives it PATH, replacing whatever was there in one
 * step, so a reader never sees it half made. */
static int open_fresh(const char *path, char *fresh, size_t cap)
{
	int n = snprintf(fresh, cap, "%s.new", path);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	(void)unlink(fresh);
	return open(fresh, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* FRESH renamed to PATH when OK, else removed. */
static bool publish(const char *fresh, const char *path, bool ok)
{
	if (ok && rename(fresh, path) == 0)
		return true;
	unlink(fresh);
	return false;
}

/* THOTHLOCK_DIR mode, the table not handed over (THOTHLOCK_FD unset or
 * unusable): a copy of it at exit, DIR/PID.table, for whoever reads the
 * directory afterwards (tests, a user of THOTHLOCK_DIR by hand, thothlock
 * for a process that closed its socket).  A private file: this process
 * never maps it, so cutting it short harms nobody.  The memfd's data
 * extents only (most of its ~95 MiB are holes). */
static void save_table(void)
{
	char fresh[PATH_MAX + 8];
	int out = open_fresh(table_path, fresh, sizeof fresh);
	if (out < 0)
		return;
	static char buf[65536];
	bool ok = ftruncate(out, (off_t)table_size) == 0;
	off_t pos = 0, end = (off_t)table_size;
	while (ok && pos < end) {
		off_t data = lseek(table_fd, pos, SEEK_DATA);
		off_t hole = data < 0 ? -1 : lseek(table_fd, data, SEEK_HOLE);
		if (data < 0 || hole <= data)
			break;          /* ENXIO: no data past pos */
		if (hole > end)
			hole = end;
		for (pos = data; ok && pos < hole;) {
			size_t n = (size_t)(hole - pos) < sizeof buf ? (size_t)(hole - pos) : sizeof buf;
			ssize_t r = pread(table_fd, buf, n, pos);
			ok = r > 0 && pwrite(out, buf, (size_t)r, pos) == r;
			pos += r > 0 ? r : 0;
		}
	}
	ok = close(out) == 0 && ok;
	(void)publish(fresh, table_path, ok);
}

/* The live view's marker DIR/PID.table: an empty file saying "PID has a
 * table" (readers then look in /proc/PID/fd). */
static bool make_marker(const char *path)
{
	char fresh[PATH_MAX + 8];
	int fd = open_fresh(path, fresh, sizeof fresh);
	return fd >= 0 && publish(fresh, path, close(fd) == 0);
}

/* Map a fresh table for this process: a sealed memfd when possible
 * (readers find it), anonymous memory otherwise, so profiling itself
 * never fails.  Readers are told of it only once its header is written
 * (the marker, or the hand-over): a reader listing the directory while a
 * process starts saw an all-zero header and refused it as "not a lock
 * table (bad magic)" (test_locks_thothd, 4 runs in 10 with 16 processes
 * starting). */
static void open_table(void)
{
	char dir[PATH_MAX];
	table_size = table_bytes();
	void *mem = MAP_FAILED;
	table_path[0] = 0;
	if (table_fd >= 0)
		close_own(table_fd);    /* a forked child's copy of its parent's */
	table_fd = sealed_memfd(table_size);
	atomic_store(&fds_owner, (int)syscall(SYS_getpid));     /* a forked child: its copies now */
	if (table_fd >= 0) {
		mem = mmap(NULL, table_size, PROT_READ | PROT_WRITE, MAP_SHARED, table_fd, 0);
		if (mem == MAP_FAILED) {
			close_own(table_fd);
			table_fd = -1;
		}
	}
	if (table_fd >= 0 && choose_dir(dir, sizeof dir)) {
		int n = snprintf(table_path, sizeof table_path, "%s/%d.table", dir, (int)getpid());
		if (n < 0 || (size_t)n >= sizeof table_path)
			table_path[0] = 0;
	}
	/* Under thothlock the table is thothlock's and the live view's too:
	 * the same memfd, announced in both places (a program run under
	 * thothlock used to be invisible to thothd and `thothctl locks`). */
	live_path[0] = 0;
	if (keep_table && table_fd >= 0 && sees_thothlock()) {
		char why[PATH_MAX + 96];
		if (live_dir(dir, sizeof dir, false, why, sizeof why)) {
			int n = snprintf(live_path, sizeof live_path, "%s/%d.table", dir, (int)getpid());
			if (n < 0 || (size_t)n >= sizeof live_path || strcmp(live_path, table_path) == 0)
				live_path[0] = 0;       /* THOTHLOCK_DIR is the live dir: its copy at exit stays */
		} else if (why[0]) {
			live_warn(why);
		}
	}
	if (mem == MAP_FAILED)
		mem = mmap(NULL, table_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("cannot map the statistics table");
	table = mem;
	keys = (thothlock_key_t *)((char *)mem + THOTHLOCK_HEADER_SIZE);
	locks = (thothlock_lock_t *)(keys + THOTHLOCK_LOCK_CAPACITY);
	sites = (thothlock_site_t *)(locks + THOTHLOCK_LOCK_CAPACITY);
	caches = (thothlock_cache_t *)(sites + THOTHLOCK_SITE_CAPACITY);
	events = (thothlock_event_t *)(caches + THOTHLOCK_THREAD_CAPACITY);
	tstats = (thothlock_tstat_t *)(events + THOTHLOCK_EVENT_CAPACITY);
	site_slots = (thothlock_site_slot_t *)(tstats + THOTHLOCK_TSTAT_CAPACITY);
	site_heads = (_Atomic(uint32_t) *)site_slots;
	site_next = site_heads + THOTHLOCK_LOCK_CAPACITY;
	if (((uintptr_t)tstats & 63) != 0)
		die("the tstat region is not line-aligned");
	table->version = THOTHLOCK_VERSION;
	table->header_size = THOTHLOCK_HEADER_SIZE;
	table->mode = (uint32_t)mode;
	table->pid = (int32_t)getpid();
	table->lock_capacity = THOTHLOCK_LOCK_CAPACITY;
	table->site_capacity = THOTHLOCK_SITE_CAPACITY;
	table->thread_capacity = THOTHLOCK_THREAD_CAPACITY;
	table->stack_depth = THOTHLOCK_STACK_DEPTH;
	table->keys_offset = THOTHLOCK_HEADER_SIZE;
	table->locks_offset = (uint64_t)((char *)locks - (char *)mem);
	table->sites_offset = (uint64_t)((char *)sites - (char *)mem);
	table->caches_offset = (uint64_t)((char *)caches - (char *)mem);
	table->events_offset = (uint64_t)((char *)events - (char *)mem);
	table->event_capacity = THOTHLOCK_EVENT_CAPACITY;
	table->tstats_offset = (uint64_t)((char *)tstats - (char *)mem);
	table->tstat_capacity = THOTHLOCK_TSTAT_CAPACITY;
	table->site_slots_offset = (uint64_t)((char *)site_slots - (char *)mem);
	table->file_size = table_size;
	table->flags = (fast_mutex || fast_mutex_all ? THOTHLOCK_FLAG_INLINE_TRYLOCK : 0) |
	               (use_tsc ? THOTHLOCK_FLAG_TSC : 0) | (owner_word ? THOTHLOCK_FLAG_OWNER_WORD : 0);
	table->tsc_hz = tsc_hz();
	table->hold_sample = hold_sample;
	table->acq_sample = mode == THOTHLOCK_MODE_ALL ? 1 : acq_sample;
	table->start_ns = now_ns();
	read_program_name(table->program, sizeof table->program);
	/* Magic last: a reader that sees it sees the rest of the header. */
	__atomic_store_n(&table->magic, THOTHLOCK_MAGIC, __ATOMIC_RELEASE);
	/* Then tell the readers: thothlock by handing the memfd over, the
	 * live view by the marker (atomically replacing a dead process's of
	 * the same pid). */
	if (keep_table && table_fd >= 0)
		hand_over(table_fd);
	else if (table_path[0] && !make_marker(table_path))
		table_path[0] = 0;      /* profiled all the same, not seen live */
	if (live_path[0] && !make_marker(live_path)) {
		char why[PATH_MAX + 96];
		snprintf(why, sizeof why, "%s: %s", live_path, strerror(errno));
		live_warn(why);
		live_path[0] = 0;
	}
	/* The maps now, for a process that ends without exit() (_exit, a
	 * signal); rewritten at exit with what was loaded meanwhile. */
	if (keep_table && table_path[0])
		save_maps();
}

static void save_maps(void)
{
	/* The report symbolizes after the process is gone: keep its mappings,
	 * as DIR/memfd-DEV-INO.maps when thothlock holds the table (it finds
	 * them by the descriptor it was handed, whatever pid namespace this
	 * process is in), else as DIR/PID.maps beside the copy at exit. */
	char path[PATH_MAX + 64];
	size_t n = strlen(table_path);
	struct stat st;
	if (n < 6 || n + 1 > sizeof path)
		return;
	memcpy(path, table_path, n - 6);              /* strip "table" ... */
	memcpy(path + n - 6, ".maps", 6);
	if (handed) {
		char *slash = strrchr(path, '/');
		if (!slash || fstat(table_fd, &st) != 0)
			return;
		snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), THOTHLOCK_MEMFD_MAPS_FMT,
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	}
	int in = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in >= 0 && out >= 0) {
		char buf[8192];
		ssize_t r;
		while ((r = read(in, buf, sizeof buf)) > 0)
			if (write(out, buf, (size_t)r) != r)
				break;
	}
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

static void after_fork_child(void)
{
	/* Only the forking thread lives on; the parent's table is not ours.
	 * Slots from threads_high up were never used (still zero): going over
	 * all 1024 touched 1.9 MiB of this library's memory in every child,
	 * ~480 page faults and ~7 ms here before its exec or its first lock.
	 * (A slot another thread was claiming at the fork, its tid set and
	 * threads_high not yet raised, stays taken in the child: one slot.) */
	thread_state_t *me = self;
	uint32_t used = atomic_load(&threads_high);
	for (uint32_t i = 0; i < used && i < THOTHLOCK_THREAD_CAPACITY; i++) {
		if (&threads[i] != me) {
			atomic_store(&threads[i].tid, 0);
			threads[i].depth = 0;
		}
		/* The slots' tables are in the parent's file. */
		threads[i].tix = NULL;
		threads[i].tix_mask = 0;
		threads[i].tix_used = 0;
		threads[i].chunk_next = threads[i].chunk_end = 0;
	}
	if (me) {
		atomic_store(&me->tid, (int)syscall(SYS_gettid));
		me->cache = NULL;       /* in the parent's table, unmapped below: nothing counts
					 * into it until open_table gives the child its own */
		reset_counting(me);
		for (uint32_t i = 0; i < me->depth; i++)
			me->held[i].flags = HELD_INHERITED;
	}
	if (table)
		munmap(table, table_size);
	table = NULL;
	keys = NULL;
	locks = NULL;
	events = NULL;
	tstats = NULL;
	site_slots = NULL;
	site_heads = NULL;
	site_next = NULL;
	atomic_store(&site_add_busy, 0);   /* the fork may have caught another thread adding */
	atomic_store(&site_add_stuck, false);
	memset(pc_stacks, 0, sizeof pc_stacks);
	open_table();
	if (me)
		me->cache = &caches[me->index];
}

static int find_own_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t probe = (uintptr_t)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;
		if (probe >= start && probe < start + ph->p_memsz) {
			own_text_start = start;
			own_text_end = start + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

/* A sampling period from the environment, NAME=N: a decimal integer from
 * 1 to THOTHLOCK_HOLD_SAMPLE_MAX.  *N: the value; *VALUE: the text (NULL:
 * unset); false if unset or not such a number. */
static bool sample_env(const char *name, const char **value, uint32_t *n)
{
	const char *v = getenv(name);
	*value = v;
	if (!v)
		return false;
	unsigned long x = 0;
	bool ok = *v != 0;
	for (const char *p = v; ok && *p; p++) {
		ok = *p >= '0' && *p <= '9';
		x = x * 10 + (unsigned long)(*p - '0');
		if (x > THOTHLOCK_HOLD_SAMPLE_MAX)
			ok = false;
	}
	if (!ok || x < 1)
		return false;
	*n = (uint32_t)x;
	return true;
}

/* THOTHLOCK_HOLD_SAMPLE=N (all mode): time one hold in N.  Anything but
 * a decimal integer from 1 to THOTHLOCK_HOLD_SAMPLE_MAX is refused by
 * name on stderr, and every hold is timed (the default).
 * THOTHLOCK_ACQ_SAMPLE=N (contention mode): count one acquisition in N
 * past a thread's first THOTHLOCK_EXACT_ACQUISITIONS; 1 counts every one
 * (exact, at the cost of a call per acquisition).  Bad values are refused
 * by name and the default kept; in all mode (every acquisition counted)
 * any value but 1 is said not to apply. */
static void choose_samples(void)
{
	const char *v;
	uint32_t n = 1;
	hold_sample = 1;
	bool ok = sample_env("THOTHLOCK_HOLD_SAMPLE", &v, &n);
	if (v && !ok)
		warn3("THOTHLOCK_HOLD_SAMPLE=", v,
		      ": not an integer from 1 to 65536; timing every hold (THOTHLOCK_HOLD_SAMPLE=1)");
	else if (ok && n > 1 && mode != THOTHLOCK_MODE_ALL)
		warn3("THOTHLOCK_HOLD_SAMPLE=", v,
		      " applies to all mode (THOTHLOCK_MODE=all) only: contention mode times "
		      "only the holds that followed a wait");
	else if (ok)
		hold_sample = n;
	ok = sample_env("THOTHLOCK_ACQ_SAMPLE", &v, &n);
	if (v && mode == THOTHLOCK_MODE_ALL && !(ok && n == 1))
		warn3("THOTHLOCK_ACQ_SAMPLE=", v,
		      " applies to contention-only mode: all mode counts every acquisition");
	else if (v && !ok)
		warn3("THOTHLOCK_ACQ_SAMPLE=", v,
		      ": not an integer from 1 to 65536; counting one acquisition in 64 "
		      "(THOTHLOCK_ACQ_SAMPLE=64)");
	else if (ok && mode != THOTHLOCK_MODE_ALL)
		acq_sample = n;
}

static void init(void)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
		/* Done, or under way: in this thread (re-entered from below, after
		 * the real functions are known) or in another one, whose
		 * dlsym calls take no pthread lock and end soon. */
		while (!atomic_load_explicit(&resolved, memory_order_acquire))
			sched_yield();
		return;
	}
	resolve_real();
	atomic_store_explicit(&resolved, 1, memory_order_release);
	/* Bad values are refused by name, as THOTHLOCK_ACQ_SAMPLE's are:
	 * THOTHLOCK_MODE=ALL (or a typo) silently profiled in the other mode. */
	const char *m = getenv("THOTHLOCK_MODE");
	if (m && strcmp(m, "all") == 0)
		mode = THOTHLOCK_MODE_ALL;
	else if (m && strcmp(m, "contention") != 0)
		warn3("THOTHLOCK_MODE=", m, ": not all or contention; contention-only mode");
	choose_samples();
	const char *sd = getenv("THOTHLOCK_TEST_SITE_DELAY_US");
	if (sd)
		site_test_delay_us = (uint32_t)strtoul(sd, NULL, 10);
	check_inline_trylock();
	choose_clock();
	dl_iterate_phdr(find_own_text, (void *)(uintptr_t)&find_own_text);
	/* backtrace() loads libgcc_s on first use (malloc, dlopen): do it now,
	 * not inside a wrapper. */
	void *warm[4];
	(void)backtrace(warm, 4);
	if (pthread_key_create(&exit_key, thread_exit) != 0)
		die("pthread_key_create");
	find_hand_sock();
	open_table();
	pthread_atfork(NULL, NULL, after_fork_child);
	atomic_store_explicit(&init_state, 2, memory_order_release);
}

__attribute__((constructor(101))) static void thothlock_start(void)
{
	init();
}

__attribute__((destructor)) static void thothlock_stop(void)
{
	if (!table)
		return;
	table->end_ns = now_ns();
	__atomic_store_n(&table->exited, 1, __ATOMIC_RELEASE);
	if (live_path[0])
		unlink(live_path);      /* as a bare run's: the live view lists live processes */
	if (!table_path[0])
		return;
	if (keep_table) {
		save_maps();
		if (!handed && table_fd >= 0)
			save_table();
	} else {
		unlink(table_path);   /* live view only: nobody reads a dead process's table */
	}
}

/* ---- recording (never with the profiled lock held) ----------------------- */

/* A lock that is not in its way of the thread's cache.  Evicting the way's
 * lock costs a lookup in the shared table (a random access into tens of
 * MiB: ~100-300 ns on this VM), which a program cycling through thousands
 * of locks pays on nearly every acquisition (sysbench mutex: 4096 locks in
 * random order).  So after THOTHLOCK_EXACT_MISSES misses a thread samples
 * them: one miss in THOTHLOCK_MISS_SAMPLE on average (random period) is
 * recorded with that weight, the others leave the cache as it is.  Hits
 * stay exact; programs with few locks never sample; the header says when
 * a process's counts became estimates. */
/* The thread starts sampling WHAT (SAMPLING_*): the header counts it, in
 * sampling_threads once however many kinds it samples. */
static __attribute__((noinline, cold)) void start_sampling(thread_state_t *t, uint32_t what)
{
	if ((t->sampling & what) || !table)
		return;
	/* The kind first: a live reader that sees sampling_threads go up
	 * finds the kind counted already, and never guesses it. */
	add(what == SAMPLING_MISSES ? &table->miss_sampling_threads : &table->acq_sampling_threads, 1);
	if (!t->sampling)
		add(&table->sampling_threads, 1);
	t->sampling |= what;
}

/* A random sampling period of 1 .. 2 x MEAN - 1 (mean MEAN), from the
 * xorshift32 state *RNG: random, so that a program taking its locks in a
 * fixed cycle is not sampled in step with it (a fixed period of 2 would
 * see one of two alternating locks only). */
static inline uint32_t draw_period(uint32_t *rng, uint32_t mean)
{
	uint32_t x = *rng;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*rng = x;
	return 1 + x % (2 * mean - 1);
}

static __attribute__((noinline)) uint64_t cache_miss(thread_state_t *t, thothlock_cache_entry_t *w,
                                                     uintptr_t lock, uint32_t kind, uint64_t weight)
{
	if (__builtin_expect(t->misses >= THOTHLOCK_EXACT_MISSES, 0)) {
		/* count_acquisition counted the countdown down to 0: this miss
		 * is sampled. */
		t->countdown = draw_period(&t->rng, THOTHLOCK_MISS_SAMPLE);
		weight *= THOTHLOCK_MISS_SAMPLE;
	} else if (++t->misses == THOTHLOCK_EXACT_MISSES) {
		t->rng = 2463534242u ^ (uint32_t)t->index;
		t->countdown = 1;
		start_sampling(t, SAMPLING_MISSES);
	}
	if (w->addr) {
		t->in_hook = 1;
		uint64_t count = w->count;
		thothlock_key_t *e = lock_entry(w->addr, kind);
		__atomic_store_n(&w->count, 0, __ATOMIC_RELAXED);
		if (e)
			add(&e->acquisitions, count);
		t->in_hook = 0;
	}
	__atomic_store_n(&w->addr, lock, __ATOMIC_RELAXED);
	__atomic_store_n(&w->count, weight, __ATOMIC_RELAXED);
	return weight;
}

/* The thread's cache way of `lock`. */
static inline thothlock_cache_entry_t *cache_way(thread_state_t *t, uintptr_t lock)
{
	/* Fibonacci hashing: one multiply, the top log2(WAYS) bits. */
	_Static_assert(THOTHLOCK_CACHE_WAYS == 512, "the way is the product's top 9 bits");
	return &t->cache->way[((uint64_t)lock * 0x9e3779b97f4a7c15ull) >> 55];
}

/* Counts `weight` acquisitions of `lock`; returns what it added to the
 * lock's way (0: a miss the sampling left out). */
static inline uint64_t count_acquisition(thread_state_t *t, uintptr_t lock, uint32_t kind,
                                         uint64_t weight)
{
	thothlock_cache_entry_t *w = cache_way(t, lock);
	if (__builtin_expect(w->addr == lock, 1)) {
		__atomic_store_n(&w->count, w->count + weight, __ATOMIC_RELAXED);
		return weight;
	}
	if (t->misses >= THOTHLOCK_EXACT_MISSES && --t->countdown != 0)
		return 0;   /* a miss the sampling leaves out */
	return cache_miss(t, w, lock, kind, weight);
}

/* Contention mode counts an acquisition before it is attempted, never
 * inside the hold (the release of an uncontended hold is glibc's and
 * nothing else: no held entry says what it released, so it cannot be
 * counted after the release as it was).  The lock and trylock wrappers
 * count their attempt down first; the attempt that ends the period is
 * counted here, out of line, before the lock is tried.  An attempt that
 * does not acquire (a busy trylock, a timeout, EDEADLK...) is taken back
 * (count_failed): the countdown restored, a counted one's count
 * subtracted from its way, so the counts are of acquisitions alone.  A
 * thread's first
 * THOTHLOCK_EXACT_ACQUISITIONS are each counted in its cache; after that
 * one in acq_sample on average (THOTHLOCK_ACQ_SAMPLE=N; a random period
 * of 1 .. 2N-1, so a program cycling through its locks is not sampled in
 * step with them), each counted with the weight of the period it ends:
 * a thread's counts then add up to its acquisitions up to its last
 * counted one (at most 2N-2 short), a lock's are an estimate (the header
 * says so: sampling_threads).  The fast paths only count down
 * (a decrement and a branch, before the attempt); this is the rest, out
 * of line.  Returns the attempt's token for count_failed. */
typedef struct {
	uint64_t added;      /* what the count added to the lock's way */
	uint32_t weight;     /* the period it ended (0: the attempt was not counted) */
} count_tok_t;

static inline __attribute__((always_inline)) count_tok_t
count_before_inline(thread_state_t *t, uintptr_t lock, uint32_t kind)
{
	uint32_t weight = t->acq_period;
	uint32_t period = 1;
	if (acq_sample > 1 && t->acq_exact < THOTHLOCK_EXACT_ACQUISITIONS &&
	    ++t->acq_exact == THOTHLOCK_EXACT_ACQUISITIONS)
		start_sampling(t, SAMPLING_ACQ);    /* from the next period on: estimates */
	if (acq_sample > 1 && t->acq_exact >= THOTHLOCK_EXACT_ACQUISITIONS)
		period = draw_period(&t->acq_rng, acq_sample);
	t->acq_period = period;
	t->acq_countdown = period;
	count_tok_t tok = { 0, weight };
	if (t->cache)
		tok.added = count_acquisition(t, lock, kind, weight);
	return tok;
}

/* (Out of line for the general paths; the default mutex's counted lock
 * and trylock, already out of line, have it inline.) */
static __attribute__((noinline)) count_tok_t count_before(thread_state_t *t, uintptr_t lock,
                                                          uint32_t kind)
{
	return count_before_inline(t, lock, kind);
}

/* The attempt TOK was counted down for did not acquire: as if it had not
 * been made.  Uncounted (weight 0): the countdown back up by one.
 * Counted: its count off its way (unless the way moved on meanwhile), and
 * the next acquisition is the counted one, with the same weight.  (The
 * period drawn for after it is lost: the next is drawn anew; a counted
 * attempt in the exact phase still counts towards the thread's 4,096.) */
static __attribute__((noinline, cold)) void count_failed(thread_state_t *t, uintptr_t lock,
                                                        count_tok_t tok)
{
	if (!tok.weight) {
		t->acq_countdown++;
		return;
	}
	if (tok.added && t->cache) {
		thothlock_cache_entry_t *w = cache_way(t, lock);
		if (w->addr == lock && w->count >= tok.added)
			__atomic_store_n(&w->count, w->count - tok.added, __ATOMIC_RELAXED);
	}
	t->acq_countdown = 1;
	t->acq_period = tok.weight;
}

/* All mode: whether the hold of the acquisition being made is timed, as
 * held flags.  N = 1 (THOTHLOCK_HOLD_SAMPLE unset): every hold, HELD_TIMED,
 * as before (a load and a compare more).  N > 1: a thread times one hold
 * in N on average (HELD_TIMED), the others not (0): a countdown,
 * re-armed with a random period of 1 .. 2N-1 (xorshift), so that a program
 * taking its locks in a fixed cycle is not sampled in step with it (a
 * fixed period of 2 would time one of two alternating locks only). */
static __attribute__((noinline)) uint32_t hold_period(thread_state_t *t)
{
	return draw_period(&t->hold_rng, hold_sample);
}

static inline uint32_t hold_flags(thread_state_t *t)
{
	if (__builtin_expect(hold_sample == 1, 1))
		return HELD_TIMED;
	uint32_t c = t->hold_countdown;
	if (c > 1) {
		t->hold_countdown = c - 1;
		return 0;
	}
	t->hold_countdown = hold_period(t);
	return HELD_TIMED;
}

static inline held_t *push_held(thread_state_t *t, uintptr_t lock, uintptr_t pc, uint32_t kind)
{
	if (__builtin_expect(t->depth >= HELD_DEPTH, 0)) {
		add(&table->held_overflow, 1);
		return NULL;
	}
	held_t *h = &t->held[t->depth];
	h->kind = kind;
	h->flags = 0;
	h->segments = 0;
	atomic_store_explicit(&h->want_stack, 0, memory_order_relaxed);
	atomic_store_explicit(&h->pc, pc, memory_order_relaxed);
	atomic_store_explicit(&h->lock, lock, memory_order_relaxed);
	t->depth++;
	return h;
}

/* The newest held entry of `lock`, removed from held[] into *out. */
static inline bool pop_held(thread_state_t *t, uintptr_t lock, held_t *out)
{
	for (uint32_t i = t->depth; i-- > 0;) {
		if (atomic_load_explicit(&t->held[i].lock, memory_order_relaxed) != lock)
			continue;
		*out = t->held[i];
		/* Locks are usually released in reverse order: i is the top. */
		for (uint32_t j = i; j + 1 < t->depth; j++)
			t->held[j] = t->held[j + 1];
		t->depth--;
		atomic_store_explicit(&t->held[t->depth].lock, 0, memory_order_relaxed);
		return true;
	}
	return false;
}

static inline held_t *find_held(thread_state_t *t, uintptr_t lock)
{
	for (uint32_t i = t->depth; i-- > 0;)
		if (atomic_load_explicit(&t->held[i].lock, memory_order_relaxed) == lock)
			return &t->held[i];
	return NULL;
}

/* The owner's acquisition site, read from its held[] (racy by design: the
 * owner may be releasing; a stale answer names a site that did hold it). */
static uintptr_t owner_site(int owner_tid, uintptr_t lock, bool ask_stack)
{
	if (owner_tid <= 0)
		return 0;
	uint32_t high = atomic_load_explicit(&threads_high, memory_order_relaxed);
	for (uint32_t i = 0; i < high; i++) {
		thread_state_t *o = &threads[i];
		if (atomic_load_explicit(&o->tid, memory_order_relaxed) != owner_tid)
			continue;
		for (uint32_t k = 0; k < HELD_DEPTH; k++) {
			held_t *h = &o->held[k];
			if (atomic_load_explicit(&h->lock, memory_order_relaxed) != lock)
				continue;
			if (ask_stack)
				atomic_store_explicit(&h->want_stack, 1, memory_order_relaxed);
			return atomic_load_explicit(&h->pc, memory_order_relaxed);
		}
		return 0;
	}
	return 0;
}

/* Contention mode keeps no held entry for an uncontended hold, so a
 * waiter cannot read where its holder took the lock.  Instead it names
 * the lock in the holder's slot (waited_for) before it sleeps; the
 * holder, releasing a lock with a sleeper (glibc's lock word above 1, or
 * a waiter named it), says where it released it (note_release) before the
 * wake, and takes its stack after the release (holder_released).  The
 * waiter, woken, reads the release site (release_site): "waited for a
 * holder releasing at SITE".  Racy by design, like owner_site: a waiter
 * that did not sleep may read an earlier release of the same lock by the
 * same thread (a site that did release it), or nothing (owner unknown). */
static thread_state_t *ask_holder(thread_state_t *me, int owner_tid, uintptr_t lock)
{
	if (owner_tid <= 0)
		return NULL;
	uint32_t high = atomic_load_explicit(&threads_high, memory_order_relaxed);
	for (uint32_t i = 0; i < high; i++) {
		thread_state_t *o = &threads[i];
		if (atomic_load_explicit(&o->tid, memory_order_relaxed) != owner_tid)
			continue;
		if (o == me)
			return NULL;
		atomic_store_explicit(&o->waited_for, lock, memory_order_relaxed);
		return o;
	}
	return NULL;
}

/* A seqlock of one writer: `released` cleared, the site, then the lock. */
static __attribute__((noinline)) void note_release(thread_state_t *t, uintptr_t lock, uintptr_t pc)
{
	atomic_store_explicit(&t->released, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	atomic_store_explicit(&t->release_pc, pc, memory_order_relaxed);
	atomic_store_explicit(&t->released, lock, memory_order_release);
}

static uintptr_t release_site(thread_state_t *o, uintptr_t lock)
{
	if (atomic_load_explicit(&o->released, memory_order_acquire) != lock)
		return 0;
	uintptr_t pc = atomic_load_explicit(&o->release_pc, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&o->released, memory_order_relaxed) == lock ? pc : 0;
}

static void note_owner(thothlock_site_t *s, uintptr_t owner_pc)
{
	if (!owner_pc) {
		add(&s->owner_unknown, 1);
		return;
	}
	for (uint32_t i = 0; i < THOTHLOCK_OWNER_SITES; i++) {
		uint64_t cur = __atomic_load_n(&s->owners[i].pc, __ATOMIC_ACQUIRE);
		if (cur == 0) {
			uint64_t expected = 0;
			if (__atomic_compare_exchange_n(&s->owners[i].pc, &expected, owner_pc, false,
			                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				cur = owner_pc;
			else
				cur = expected;
		}
		if (cur == owner_pc) {
			add(&s->owners[i].count, 1);
			return;
		}
	}
	add(&s->owner_unknown, 1);
}

/* The holder's stack, taken right after it released a lock a waiter
 * flagged: the frames above the unlock are the code that held it. */
static void record_holder_stack(thothlock_lock_t *e)
{
	for (uint32_t i = 0; i < THOTHLOCK_HOLDER_STACKS; i++) {
		thothlock_stack_t *st = &e->holders[i];
		if (__atomic_load_n(&st->claimed, __ATOMIC_RELAXED))
			continue;
		capture_stack_once(st);
		if (__atomic_load_n(&st->depth, __ATOMIC_ACQUIRE)) {
			/* Merge with an identical earlier stack (same innermost frames). */
			for (uint32_t j = 0; j < i; j++) {
				thothlock_stack_t *o = &e->holders[j];
				if (o->depth == st->depth &&
				    memcmp(o->pc, st->pc, st->depth * sizeof st->pc[0]) == 0) {
					add(&o->count, 1);
					/* Free the slot again for a different stack. */
					__atomic_store_n(&st->depth, 0, __ATOMIC_RELAXED);
					__atomic_store_n(&st->claimed, 0, __ATOMIC_RELEASE);
					return;
				}
			}
			add(&st->count, 1);
		}
		return;
	}
}

/* Contention mode: a waiter named this lock in our slot (ask_holder);
 * we have released it: our stack, the code that held it. */
static __attribute__((noinline)) void holder_released(thread_state_t *t, uintptr_t lock,
                                                      uint32_t kind)
{
	if (t->in_hook)
		return;
	t->in_hook = 1;
	atomic_store_explicit(&t->waited_for, 0, memory_order_relaxed);
	thothlock_key_t *k = lock_entry(lock, kind);
	if (k)
		record_holder_stack(stats_of(k));
	t->in_hook = 0;
}

/* A contended acquisition into the table's ring, as a trace slice for
 * thothd (lockprof_layout.h: seq 0, the fields, then seq n + 1). */
static void record_event(thread_state_t *t, uint64_t t_wait, uint64_t wait_ns, uintptr_t lock,
                         uint32_t flags)
{
	if (!events)
		return;
	uint64_t n = __atomic_fetch_add(&table->event_head, 1, __ATOMIC_RELAXED);
	thothlock_event_t *e = &events[n & (THOTHLOCK_EVENT_CAPACITY - 1)];
	__atomic_store_n(&e->seq, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e->start_ns, ticks_to_monotonic(t_wait), __ATOMIC_RELAXED);
	__atomic_store_n(&e->wait_ns, wait_ns, __ATOMIC_RELAXED);
	__atomic_store_n(&e->lock, (uint64_t)lock, __ATOMIC_RELAXED);
	__atomic_store_n(&e->tid, atomic_load_explicit(&t->tid, memory_order_relaxed),
	                 __ATOMIC_RELAXED);
	__atomic_store_n(&e->flags, flags, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, n + 1, __ATOMIC_RELEASE);
}

/* All mode: the owner change, against the key's last owner (a load, and
 * a write only when the owner did change).  Returns whether it changed. */
static inline bool owner_changed_key(thread_state_t *t, thothlock_key_t *k)
{
	uint32_t tid = (uint32_t)atomic_load_explicit(&t->tid, memory_order_relaxed);
	if (__atomic_load_n(&k->last_owner_tid, __ATOMIC_RELAXED) == tid)
		return false;
	uint32_t last = __atomic_exchange_n(&k->last_owner_tid, tid, __ATOMIC_RELAXED);
	return last && last != tid;
}

/* All mode, a lock this thread has just taken: a default mutex keeps
 * its last owner's tid in its own `__count`, which glibc uses only for
 * recursive mutexes (check_inline_trylock checks that its lock, trylock,
 * unlock and condition wait leave it alone).  The mutex's line is the one
 * line every acquisition touches anyway, and this thread owns it now, so
 * reading and writing the owner there costs no cache miss; the key's
 * `last_owner_tid` (format 3) was one more per acquisition, shared.  Only
 * holders read or write it: the mutex orders them.  Other locks (rwlocks,
 * other mutex types) answer 0 and use the key's word at the commit. */
static inline uint32_t owner_flags(void *lock, uint32_t kind, int tid)
{
	if (!owner_word || kind != THOTHLOCK_KIND_MUTEX)
		return 0;
	pthread_mutex_t *m = lock;
	if (__atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != 0)
		return 0;
	unsigned prev = m->__data.__count;
	if (prev == (unsigned)tid)
		return HELD_OWNER_KNOWN;
	m->__data.__count = (unsigned)tid;
	return prev ? HELD_OWNER_KNOWN | HELD_OWNER_CHANGED : HELD_OWNER_KNOWN;
}

static inline int tid_of(thread_state_t *t)
{
	return atomic_load_explicit(&t->tid, memory_order_relaxed);
}

/* The owner change of the acquisition `h` commits: read from the mutex
 * when it was taken (owner_word), else against the key's word. */
static inline bool owner_changed(thread_state_t *t, const held_t *h, thothlock_key_t *k)
{
	if (h->flags & HELD_OWNER_KNOWN)
		return (h->flags & HELD_OWNER_CHANGED) != 0;
	return owner_changed_key(t, k);
}

/* The hold segments `h` measured, ending at t_release: up to
 * HOLD_SEGMENTS + 1 durations into segs[], their number returned. */
static inline uint32_t hold_segments(const held_t *h, uint64_t t_release, uint64_t *segs)
{
	uint32_t n = h->segments < HOLD_SEGMENTS ? h->segments : HOLD_SEGMENTS;
	memcpy(segs, h->segment_ns, n * sizeof segs[0]);
	segs[n++] = elapsed_ns(h->t_acquired, t_release);
	return n;
}

static void commit_shared(thread_state_t *t, const held_t *h, uintptr_t lock, uint64_t t_release);

static __attribute__((noinline, cold)) void tstat_owner_wrapped(thothlock_tstat_t *ts)
{
	add(&stats_of(&keys[ts->key_index - 1])->owner_changes, 1ull << 32);
}

/* An acquisition whose hold was not timed (hold sampling): its count and
 * owner change only. */
static inline void tstat_untimed(thothlock_tstat_t *ts, bool owner_change)
{
	ts->acquisitions++;
	if (owner_change && __builtin_expect(++ts->owner_changes == 0, 0))
		tstat_owner_wrapped(ts);
}

/* An acquisition, its owner change and its hold into the thread's own
 * entry: plain stores, all in the entry's first line unless the hold
 * falls outside the entry's near buckets. */
/* n holds of entry ts into bucket b of its site's histogram (of its
 * lock's without a site): shared, atomic, and rare (a hold outside the
 * entry's near buckets, or every 256th of one bucket). */
static thothlock_site_t *tstat_site(thothlock_tstat_t *ts);

static void far_add(thothlock_tstat_t *ts, unsigned b, unsigned n)
{
	uint32_t si = ts->site_index;
	thothlock_site_t *s = si - 1u < THOTHLOCK_SITE_CAPACITY ? &sites[si - 1] : tstat_site(ts);
	if (s) {
		add(&s->hold_hist[b], n);
	} else {
		thothlock_lock_t *e = stats_of(&keys[ts->key_index - 1]);
		add(&e->hold_hist[b], n);
		/* sampled holds are counted from the entries' and sites'
		 * histograms (lockprof_layout.h): these, in no site, here */
		if (hold_sample != 1)
			add(&e->holds_measured, n);
	}
}

static __attribute__((noinline, cold)) void near_carry(thothlock_tstat_t *ts, unsigned off)
{
	far_add(ts, ts->near_base + off, 256);
	ts->near[off] = 0;
}

static __attribute__((noinline)) void tstat_hold_far(thothlock_tstat_t *ts, unsigned b)
{
	if (ts->near_base == THOTHLOCK_NEAR_UNSET) {
		/* The first hold sets the window: six buckets below it (1/64 as
		 * long: a first hold is often slow, its data cold; with four,
		 * 1/7 of `sysbench mutex`'s pairs began at a cold 256-1023 ns
		 * and sent every later 8-15 ns hold to the site, 8 % of all
		 * holds), four above. */
		unsigned base = b > 6 ? b - 6 : 0;
		if (base > THOTHLOCK_HIST_BUCKETS - THOTHLOCK_NEAR_BUCKETS)
			base = THOTHLOCK_HIST_BUCKETS - THOTHLOCK_NEAR_BUCKETS;
		ts->near_base = (uint8_t)base;
		ts->near[b - base] = 1;
		return;
	}
	far_add(ts, b, 1);
}

static inline void tstat_commit(thothlock_tstat_t *ts, bool owner_change, uint64_t ns)
{
	ts->acquisitions++;
	if (owner_change && __builtin_expect(++ts->owner_changes == 0, 0))
		tstat_owner_wrapped(ts);
	ts->hold_ns_total += ns;
	if (ns > ts->hold_ns_max)
		ts->hold_ns_max = ns;
	unsigned b = bucket_of(ns);
	unsigned off = b - ts->near_base;   /* near_base UNSET: out of range */
	if (__builtin_expect(off < THOTHLOCK_NEAR_BUCKETS, 1)) {
		if (__builtin_expect(ts->near[off] == 255, 0))
			near_carry(ts, off);
		else
			ts->near[off]++;
	} else {
		tstat_hold_far(ts, b);
	}
}

/* A hold segment (before a condition wait) into the shared entries. */
static void shared_hold(thothlock_lock_t *e, thothlock_site_t *s, uint64_t ns)
{
	add(&e->holds_measured, 1);
	add(&e->hold_ns_total, ns);
	set_max(&e->hold_ns_max, ns);
	add(&e->hold_hist[bucket_of(ns)], 1);
	if (s) {
		add(&s->holds_measured, 1);
		add(&s->hold_ns_total, ns);
		set_max(&s->hold_ns_max, ns);
	}
}

/* After the real unlock: move what `h` measured into the table.  In all
 * mode the acquisition and its hold go to the thread's own entry (plain
 * stores); the shared entries are written only for a wait, a holder's
 * stack or a condition wait, or when the thread has no entry. */
static __attribute__((noinline)) void commit(thread_state_t *t, const held_t *h, uintptr_t lock,
                                             uint64_t t_release)
{
	if (h->flags & HELD_INHERITED)
		return;   /* the parent's acquisition: its table has it */
	if (!(h->flags & HELD_TSTAT)) {
		commit_shared(t, h, lock, t_release);
		return;
	}
	thothlock_tstat_t *ts = h->tstat;
	thothlock_key_t *k = &keys[ts->key_index - 1];
	/* The last hold segment is the entry's hold; earlier ones (condition
	 * waits) go to the shared entries below. */
	uint64_t segs[HOLD_SEGMENTS + 1];
	uint32_t n = 0;
	if (h->flags & HELD_TIMED) {
		n = hold_segments(h, t_release, segs);
		tstat_commit(ts, owner_changed(t, h, k), segs[n - 1]);
	} else {
		tstat_untimed(ts, owner_changed(t, h, k));   /* hold sampling: not this one */
	}
	if (__builtin_expect(!(h->flags & HELD_CONTENDED) && !h->segments &&
	                         !atomic_load_explicit(&h->want_stack, memory_order_relaxed), 1))
		return;
	t->in_hook = 1;
	if (h->segments)
		add(&table->cond_waits, h->segments);
	thothlock_lock_t *e = stats_of(k);
	thothlock_site_t *s = tstat_site(ts);
	for (uint32_t i = 0; i + 1 < n; i++)
		shared_hold(e, s, segs[i]);
	if (h->flags & HELD_CONTENDED) {
		record_event(t, h->t_wait, h->wait_ns, lock, 0);
		add(&e->contentions, 1);
		add(&e->wait_ns_total, h->wait_ns);
		set_max(&e->wait_ns_max, h->wait_ns);
		add(&e->wait_hist[bucket_of(h->wait_ns)], 1);
		if (s) {
			add(&s->contentions, 1);
			add(&s->wait_ns_total, h->wait_ns);
			set_max(&s->wait_ns_max, h->wait_ns);
			note_owner(s, h->owner_pc);
		}
	}
	if (atomic_load_explicit(&h->want_stack, memory_order_relaxed))
		record_holder_stack(e);
	t->in_hook = 0;
}

/* Everything in the shared entries, with atomic adds: contention mode,
 * and all mode without a per-thread entry. */
static void commit_shared(thread_state_t *t, const held_t *h, uintptr_t lock, uint64_t t_release)
{
	bool timed_hold = (h->flags & HELD_TIMED) != 0;
	bool contended = (h->flags & HELD_CONTENDED) != 0;
	bool all = mode == THOTHLOCK_MODE_ALL;
	if (!timed_hold && !contended && !all && !h->want_stack && !h->segments)
		return;
	t->in_hook = 1;
	if (h->segments)
		add(&table->cond_waits, h->segments);
	thothlock_key_t *k;
	thothlock_site_t *s;
	if (h->flags & HELD_ENTRIES) {
		k = h->key;
		s = h->site;
	} else {
		k = lock_entry(lock, h->kind);
		if (!k)
			goto out;
		uintptr_t pc = atomic_load_explicit(&h->pc, memory_order_relaxed);
		s = (contended || all) ? site_entry(k, pc) : NULL;
	}
	if (!k)
		goto out;
	thothlock_lock_t *e = stats_of(k);
	if (all) {
		add(&table->tstat_full, 1);
		add(&k->acquisitions, 1);
		if (s)
			add(&s->acquisitions, 1);
		if (owner_changed(t, h, k))
			add(&e->owner_changes, 1);
	}
	if (contended) {
		record_event(t, h->t_wait, h->wait_ns, lock, 0);
		add(&e->contentions, 1);
		if (!all)
			add(&e->owner_changes, 1);
		add(&e->wait_ns_total, h->wait_ns);
		set_max(&e->wait_ns_max, h->wait_ns);
		add(&e->wait_hist[bucket_of(h->wait_ns)], 1);
		if (s) {
			add(&s->contentions, 1);
			add(&s->wait_ns_total, h->wait_ns);
			set_max(&s->wait_ns_max, h->wait_ns);
			note_owner(s, h->owner_pc);
		}
	}
	if (timed_hold) {
		uint64_t segs[HOLD_SEGMENTS + 1];
		uint32_t n = hold_segments(h, t_release, segs);
		for (uint32_t i = 0; i < n; i++)
			shared_hold(e, s, segs[i]);
	}
	if (atomic_load_explicit(&h->want_stack, memory_order_relaxed))
		record_holder_stack(e);
out:
	t->in_hook = 0;
}

/* A timed acquisition that gave up: we hold nothing, record now. */
static void commit_timeout(thread_state_t *t, uintptr_t lock, uintptr_t pc, uint32_t kind,
                           uint64_t t_wait, uint64_t wait_ns)
{
	t->in_hook = 1;
	record_event(t, t_wait, wait_ns, lock, THOTHLOCK_EVENT_TIMEOUT);
	thothlock_key_t *k = lock_entry(lock, kind);
	if (k) {
		thothlock_lock_t *e = stats_of(k);
		add(&e->timeouts, 1);
		add(&e->wait_ns_total, wait_ns);
		set_max(&e->wait_ns_max, wait_ns);
		thothlock_site_t *s = site_entry(k, pc);
		if (s) {
			site_stack_once(s, pc);
			add(&s->timeouts, 1);
			add(&s->wait_ns_total, wait_ns);
			set_max(&s->wait_ns_max, wait_ns);
		}
	}
	t->in_hook = 0;
}

static void count_trylock_busy(thread_state_t *t, uintptr_t lock, uint32_t kind)
{
	t->in_hook = 1;
	thothlock_key_t *k = lock_entry(lock, kind);
	if (k)
		add(&stats_of(k)->trylock_busy, 1);
	t->in_hook = 0;
}

/* ---- the generic acquire / release -------------------------------------- */

typedef int (*try_fn)(void *);
typedef int (*lock_fn)(void *);
typedef int (*timed_fn)(void *, const struct timespec *);

static int owner_tid_of(void *lock, uint32_t kind)
{
	/* glibc keeps the owner's tid in the lock: mutex __owner (every type),
	 * rwlock __cur_writer (writers only). */
	if (kind == THOTHLOCK_KIND_MUTEX)
		return __atomic_load_n(&((pthread_mutex_t *)lock)->__data.__owner, __ATOMIC_RELAXED);
	return (int)__atomic_load_n(&((pthread_rwlock_t *)lock)->__data.__cur_writer,
	                            __ATOMIC_RELAXED);
}

/* The site's stack, the first time it is seen: taken before the blocking
 * call, while this thread waits anyway (or, in all mode, before it tries).
 * The lock's key and the site are kept for the commit (*key NULL: the
 * lock table is full). */
static thothlock_site_t *note_site_stack(thread_state_t *t, uintptr_t lock, uint32_t kind,
                                         uintptr_t pc, thothlock_key_t **key)
{
	t->in_hook = 1;
	thothlock_key_t *k = lock_entry(lock, kind);
	thothlock_site_t *s = k ? site_entry(k, pc) : NULL;
	if (s)
		site_stack_once(s, pc);
	t->in_hook = 0;
	*key = k;
	return s;
}

static inline void keep_entries(held_t *h, thothlock_tstat_t *ts, thothlock_key_t *k,
                                thothlock_site_t *s)
{
	if (ts) {
		h->tstat = ts;
		h->flags |= HELD_TSTAT;
	} else if (k) {
		h->key = k;
		h->site = s;
		h->flags |= HELD_ENTRIES;
	}
}

/* A lock call's result that leaves the lock held: 0, or EOWNERDEAD (a
 * robust mutex whose owner died: glibc's trylock and lock take it and
 * say so).  Calling the real lock again after such a trylock would take
 * a mutex this thread already holds: a normal robust one hangs, an
 * errorcheck one says EDEADLK, a recursive one counts two. */
static inline bool now_held(int rc)
{
	return rc == 0 || rc == EOWNERDEAD;
}

/* The trylock failed with EBUSY: time the wait (the blocking call
 * between two clock reads) and keep it in the private held entry. */
/* All mode passes the entries it looked up before the trylock (ts, or k
 * and s); contention mode looks them up here, while it waits anyway. */
static __attribute__((noinline, cold)) int
acquire_contended(thread_state_t *t, void *lock, uint32_t kind, lock_fn blocking, timed_fn timed,
                  const struct timespec *abstime, uintptr_t pc, thothlock_tstat_t *ts,
                  thothlock_key_t *k, thothlock_site_t *s)
{
	uintptr_t key = (uintptr_t)lock;
	uint64_t t0 = ticks();
	bool all = mode == THOTHLOCK_MODE_ALL;
	if (!all)
		s = note_site_stack(t, key, kind, pc, &k);
	t->in_hook = 1;
	/* All mode: the holder's acquisition site, from its held entry;
	 * contention mode: the holder will say where it releases it. */
	uintptr_t owner_pc = all ? owner_site(owner_tid_of(lock, kind), key, true) : 0;
	thread_state_t *o = all ? NULL : ask_holder(t, owner_tid_of(lock, kind), key);
	t->in_hook = 0;
	int rc = timed ? timed(lock, abstime) : blocking(lock);
	uint64_t t1 = ticks();
	if (!now_held(rc)) {
		if (rc == ETIMEDOUT)
			commit_timeout(t, key, pc, kind, t0, elapsed_ns(t0, t1));
		return rc;
	}
	if (o)
		owner_pc = release_site(o, key);
	/* (contention mode: counted by the caller, before the attempt) */
	held_t *h = push_held(t, key, pc, kind);
	if (h) {
		/* The wait is always timed; in all mode the hold after it as the
		 * hold sampling says (contention mode times every such hold). */
		uint32_t hold = !all ? HELD_TIMED : hold_flags(t);
		h->flags = HELD_CONTENDED | hold | owner_flags(lock, kind, tid_of(t));
		h->wait_ns = elapsed_ns(t0, t1);
		h->t_wait = t0;
		h->owner_pc = owner_pc;
		h->t_acquired = t1;
		keep_entries(h, ts, k, s);
	}
	return rc;
}

/* Contention mode: the trylock said something else than "taken".  EBUSY
 * is contention (timed in acquire_contended); EOWNERDEAD took the lock (a
 * robust mutex whose owner died: an acquisition, returned as glibc
 * returns it); ENOTRECOVERABLE is what the lock would say; anything else
 * (EDEADLK, EAGAIN, EINVAL...) is not contention, and the real call says
 * it.  TOK: the attempt's count, taken back if it does not acquire. */
static __attribute__((noinline, cold)) int
acquire_busy(thread_state_t *t, void *lock, uint32_t kind, int rc, lock_fn blocking,
             timed_fn timed, const struct timespec *abstime, uintptr_t pc, count_tok_t tok)
{
	if (rc == EOWNERDEAD)
		return rc;
	if (rc == EBUSY)
		rc = acquire_contended(t, lock, kind, blocking, timed, abstime, pc, NULL, NULL, NULL);
	else if (rc != ENOTRECOVERABLE)
		rc = timed ? timed(lock, abstime) : blocking(lock);
	if (!now_held(rc))
		count_failed(t, (uintptr_t)lock, tok);
	return rc;
}

/* Contention mode: the attempt that ends the thread's counting period,
 * counted before it is made (outside any hold), then made. */
static __attribute__((noinline)) int
acquire_counted(thread_state_t *t, void *lock, uint32_t kind, try_fn try, lock_fn blocking,
                timed_fn timed, const struct timespec *abstime, uintptr_t pc)
{
	count_tok_t tok = count_before(t, (uintptr_t)lock, kind);
	int rc = try(lock);
	if (__builtin_expect(rc == 0, 1))
		return 0;
	return acquire_busy(t, lock, kind, rc, blocking, timed, abstime, pc, tok);
}

/* Contention mode's acquisition: counted down before the attempt; no held
 * entry unless contended. */
static inline __attribute__((always_inline)) int
acquire_contention_mode(thread_state_t *t, void *lock, uint32_t kind, try_fn try, lock_fn blocking,
                        timed_fn timed, const struct timespec *abstime, uintptr_t pc)
{
	if (__builtin_expect(--t->acq_countdown == 0, 0))
		return acquire_counted(t, lock, kind, try, blocking, timed, abstime, pc);
	int rc = try(lock);
	if (__builtin_expect(rc == 0, 1))
		return 0;
	return acquire_busy(t, lock, kind, rc, blocking, timed, abstime, pc, (count_tok_t){ 0, 0 });
}

/* All mode's entries of (lock, pc), looked up before the trylock (and
 * the site's stack taken the first time), outside any hold: the thread's
 * own entry, or without one the shared key and site. */
static inline thothlock_tstat_t *all_mode_entries(thread_state_t *t, uintptr_t lock, uint32_t kind,
                                                  uintptr_t pc, thothlock_key_t **k,
                                                  thothlock_site_t **s)
{
	thothlock_tstat_t *ts = tstat_find(t, lock, pc, kind);
	*k = NULL;
	*s = NULL;
	if (__builtin_expect(!ts, 0))
		*s = note_site_stack(t, lock, kind, pc, k);
	return ts;
}

static inline int acquire(void *lock, uint32_t kind, try_fn try, lock_fn blocking,
                          timed_fn timed, const struct timespec *abstime, uintptr_t pc)
{
	thread_state_t *t = enter();
	if (__builtin_expect(!t, 0))
		return timed ? timed(lock, abstime) : blocking(lock);
	if (mode != THOTHLOCK_MODE_ALL)
		return acquire_contention_mode(t, lock, kind, try, blocking, timed, abstime, pc);
	thothlock_key_t *k = NULL;
	thothlock_site_t *s = NULL;
	thothlock_tstat_t *ts = all_mode_entries(t, (uintptr_t)lock, kind, pc, &k, &s);
	int rc = try(lock);
	if (__builtin_expect(now_held(rc), 1)) {
		held_t *h = push_held(t, (uintptr_t)lock, pc, kind);
		if (h) {
			uint32_t hold = hold_flags(t);
			h->flags = hold | owner_flags(lock, kind, tid_of(t));
			keep_entries(h, ts, k, s);
			/* The hold starts here: the last thing before returning. */
			if (hold)
				h->t_acquired = ticks();
		}
		return rc;
	}
	if (rc == ENOTRECOVERABLE)
		return rc;   /* what the real lock would say too */
	if (rc != EBUSY)
		/* Not contention: EDEADLK, EAGAIN, EINVAL... let the real call say it. */
		return timed ? timed(lock, abstime) : blocking(lock);
	return acquire_contended(t, lock, kind, blocking, timed, abstime, pc, ts, k, s);
}

static inline int try_acquire(void *lock, uint32_t kind, try_fn try, uintptr_t pc)
{
	thread_state_t *t = enter();
	if (!t)
		return try(lock);
	thothlock_key_t *k = NULL;
	thothlock_site_t *s = NULL;
	thothlock_tstat_t *ts = NULL;
	if (mode != THOTHLOCK_MODE_ALL) {
		/* counted before the attempt, taken back if it finds the lock busy */
		count_tok_t tok = { 0, 0 };
		if (--t->acq_countdown == 0)
			tok = count_before(t, (uintptr_t)lock, kind);
		int rc = try(lock);
		if (!now_held(rc)) {
			count_failed(t, (uintptr_t)lock, tok);
			if (rc == EBUSY)
				count_trylock_busy(t, (uintptr_t)lock, kind);
		}
		return rc;
	}
	ts = all_mode_entries(t, (uintptr_t)lock, kind, pc, &k, &s);
	int rc = try(lock);
	if (now_held(rc)) {
		held_t *h = push_held(t, (uintptr_t)lock, pc, kind);
		if (h) {
			uint32_t hold = hold_flags(t);
			h->flags = hold | owner_flags(lock, kind, tid_of(t));
			keep_entries(h, ts, k, s);
			if (hold)
				h->t_acquired = ticks();
		}
	} else if (rc == EBUSY) {
		count_trylock_busy(t, (uintptr_t)lock, kind);
	}
	return rc;
}

/* A release that is not of the newest held lock (or of one not seen
 * taken): the entry is moved out of held[] first. */
static __attribute__((noinline)) int release_out_of_order(thread_state_t *t, void *lock,
                                                          lock_fn unlock)
{
	held_t h;
	if (!pop_held(t, (uintptr_t)lock, &h))
		return unlock(lock);
	uint64_t t_release = (h.flags & HELD_TIMED) ? ticks() : 0;
	int rc = unlock(lock);
	if (rc != 0)
		return rc;
	commit(t, &h, (uintptr_t)lock, t_release);
	return 0;
}

/* A recursive mutex this unlock leaves held (glibc counts its recursion
 * in __count): its held entry, if any, belongs to the outermost hold. */
static inline bool still_held_after(void *lock, uint32_t kind)
{
	if (kind != THOTHLOCK_KIND_MUTEX)
		return false;
	pthread_mutex_t *m = lock;
	return (__atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) & 3) == PTHREAD_MUTEX_RECURSIVE_NP &&
	       m->__data.__count > 1;
}


/* glibc's unlock of a default mutex, inline (nptl/pthread_mutex_unlock.c,
 * glibc 2.36, PTHREAD_MUTEX_TIMED_NP): the owner and user count reset,
 * the lock word exchanged for 0 (a release), and a futex wake of one
 * waiter when it was above 1 (someone sleeps on it).  glibc stores 0
 * plainly when the process has one thread; the exchange is right in both
 * cases.  Spares the call through real.mutex_unlock and glibc's type
 * dispatch: ~17 of the 59 instructions contention-only mode added to an
 * uncontended pair (callgrind).  Only where the inline trylock is on
 * (check_inline_trylock checks this one too) and for __kind 0.
 * mutex_release_word is all of it but the wake: it says whether the old
 * word was above 1, so that each caller wakes (futex_wake_one) where it
 * needs to (after publishing the release site; as a tail call). */
/* glibc's lll_unlock wake, errno kept as glibc's internal syscall keeps it
 * (EFAULT is legal: the mutex freed by its next owner after our swap). */
static __attribute__((noinline)) void futex_wake_one(int *word)
{
	int saved = errno;
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}

static inline __attribute__((always_inline)) bool mutex_release_word(pthread_mutex_t *m)
{
	m->__data.__owner = 0;
	m->__data.__nusers--;
	return __builtin_expect(__atomic_exchange_n(&m->__data.__lock, 0, __ATOMIC_RELEASE) > 1, 0);
}

static inline __attribute__((always_inline)) void mutex_unlock_inline(pthread_mutex_t *m)
{
	if (mutex_release_word(m))
		futex_wake_one(&m->__data.__lock);
}

/* Contention mode's release when there is something to do besides
 * glibc's unlock: the thread has a contended acquisition in flight (its
 * held entry, anywhere in held[]: only contended acquisitions have one;
 * the lock released may be another), or a waiter asked for our stack at
 * this lock's release.  The release site goes out before the release
 * when a waiter asked (glibc's unlock of other lock types wakes it out of
 * our sight); for a default mutex also when the lock word says a sleeper
 * was there, after the word's release and before the wake. */
static __attribute__((noinline)) int release_contention(thread_state_t *t, void *lock,
                                                        uint32_t kind, lock_fn unlock,
                                                        uintptr_t pc)
{
	held_t h;
	bool have = t->depth && !still_held_after(lock, kind) && pop_held(t, (uintptr_t)lock, &h);
	bool asked = atomic_load_explicit(&t->waited_for, memory_order_relaxed) == (uintptr_t)lock;
	if (asked)
		note_release(t, (uintptr_t)lock, pc);
	uint64_t t_release = have && (h.flags & HELD_TIMED) ? ticks() : 0;
	int rc = 0;
	pthread_mutex_t *m = lock;
	if (kind == THOTHLOCK_KIND_MUTEX && fast_mutex &&
	    __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) == 0) {
		if (mutex_release_word(m)) {
			if (!asked)
				note_release(t, (uintptr_t)lock, pc);
			futex_wake_one(&m->__data.__lock);
		}
	} else {
		rc = unlock(lock);
	}
	if (__builtin_expect(rc != 0, 0))
		return rc;
	if (have)
		commit(t, &h, (uintptr_t)lock, t_release);
	if (asked)
		holder_released(t, (uintptr_t)lock, kind);
	return 0;
}

static inline int release(void *lock, lock_fn unlock, uint32_t kind, uintptr_t pc)
{
	thread_state_t *t = enter();
	if (!t)
		return unlock(lock);
	if (mode != THOTHLOCK_MODE_ALL)
		return release_contention(t, lock, kind, unlock, pc);
	uint32_t d = t->depth;
	held_t *h;
	if (__builtin_expect(d && atomic_load_explicit(&t->held[d - 1].lock, memory_order_relaxed) ==
	                              (uintptr_t)lock, 1)) {
		/* The usual case: the newest lock is released first.  The entry
		 * stays readable for commit() below (only this thread pushes). */
		h = &t->held[d - 1];
		atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
		t->depth = d - 1;
	} else {
		return release_out_of_order(t, lock, unlock);
	}
	/* The one clock read inside the critical section: the end of the hold. */
	uint64_t t_release = (h->flags & HELD_TIMED) ? ticks() : 0;
	int rc = unlock(lock);
	if (__builtin_expect(rc != 0, 0))
		return rc;
	commit(t, h, (uintptr_t)lock, t_release);   /* all mode: every hold */
	return 0;
}

#define CALLER() ((uintptr_t)__builtin_return_address(0))

/* ---- the fast paths ------------------------------------------------------
 * What an uncontended lock/unlock pair costs in contention-only mode, and
 * all of it thread-private: the real trylock and unlock (glibc's protocol
 * inline for a default mutex), a count down to the next counted
 * acquisition, and at the unlock one check that the thread has no
 * contended acquisition in flight (held[] empty).  No held entry, no clock
 * read, no shared cache line written, no TLS lookup through
 * __tls_get_addr (`self` is initial-exec: one %fs-relative load), no
 * function-pointer parameters (each wrapper below is its own specialised
 * copy).  Anything unusual - not initialised, re-entered, all mode, a busy
 * trylock, a contended acquisition in flight, a waiter asking for our
 * stack - leaves for the general code above, which is out of line. */

/* `self`, when this call may take the fast path. */
static inline __attribute__((always_inline)) thread_state_t *fast_self(void)
{
	thread_state_t *t = self;   /* set only once init() is done */
	if (__builtin_expect(t == NULL || t->in_hook, 0))
		return NULL;
	return t;
}

/* Which wrapper the slow path serves: the real functions are looked up
 * again there, after init(), since the fast path may have read them unset. */
enum acquire_op { OP_MUTEX, OP_MUTEX_TIMED, OP_RD, OP_WR, OP_RD_TIMED, OP_WR_TIMED,
                  OP_MUTEX_CLOCK, OP_RD_CLOCK, OP_WR_CLOCK };

/* The clock*lock variants take a clock as well: the generic code calls a
 * timed function of (lock, abstime), so the clock waits for it here, set
 * by the wrapper in the same thread just before (nothing in between takes
 * another clock*lock: the profiler's own calls pass straight through). */
static __thread clockid_t pending_clock __attribute__((tls_model("initial-exec")));

static int mutex_clocklock_call(void *m, const struct timespec *abstime)
{
	return real.mutex_clocklock(m, pending_clock, abstime);
}

static int rw_clockrdlock_call(void *l, const struct timespec *abstime)
{
	return real.rw_clockrdlock(l, pending_clock, abstime);
}

static int rw_clockwrlock_call(void *l, const struct timespec *abstime)
{
	return real.rw_clockwrlock(l, pending_clock, abstime);
}

static __attribute__((noinline)) int acquire_slow(void *lock, enum acquire_op op,
                                                  const struct timespec *abstime, uintptr_t pc)
{
	if (!atomic_load_explicit(&resolved, memory_order_acquire))
		init();
	switch (op) {
	case OP_MUTEX:
		return acquire(lock, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock,
		               (lock_fn)real.mutex_lock, NULL, NULL, pc);
	case OP_MUTEX_TIMED:
		return acquire(lock, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock, NULL,
		               (timed_fn)real.mutex_timedlock, abstime, pc);
	case OP_RD:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock,
		               (lock_fn)real.rw_rdlock, NULL, NULL, pc);
	case OP_WR:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock,
		               (lock_fn)real.rw_wrlock, NULL, NULL, pc);
	case OP_RD_TIMED:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock, NULL,
		               (timed_fn)real.rw_timedrdlock, abstime, pc);
	case OP_WR_TIMED:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock, NULL,
		               (timed_fn)real.rw_timedwrlock, abstime, pc);
	case OP_MUTEX_CLOCK:
		return acquire(lock, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock, NULL,
		               mutex_clocklock_call, abstime, pc);
	case OP_RD_CLOCK:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock, NULL,
		               rw_clockrdlock_call, abstime, pc);
	case OP_WR_CLOCK:
		return acquire(lock, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock, NULL,
		               rw_clockwrlock_call, abstime, pc);
	}
	return EINVAL;
}

static inline __attribute__((always_inline)) int
acquire_fast(void *lock, enum acquire_op op, uint32_t kind, try_fn try, lock_fn blocking,
             timed_fn timed, const struct timespec *abstime, uintptr_t pc)
{
	thread_state_t *t = fast_self();
	if (__builtin_expect(t != NULL && mode == THOTHLOCK_MODE_CONTENTION, 1))
		return acquire_contention_mode(t, lock, kind, try, blocking, timed, abstime, pc);
	return acquire_slow(lock, op, abstime, pc);
}

/* All mode, hold sampling: the release of an acquisition whose hold was
 * not timed (held entry h, the newest: HELD_TSTAT without HELD_TIMED). */
static __attribute__((noinline)) int release_untimed(thread_state_t *t, held_t *h, void *lock,
                                                    uint32_t kind)
{
	atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
	t->depth--;
	int rc = kind == THOTHLOCK_KIND_MUTEX ? real.mutex_unlock(lock) : real.rw_unlock(lock);
	if (__builtin_expect(rc == 0, 1)) {
		thothlock_tstat_t *ts = h->tstat;
		bool changed = (h->flags & HELD_OWNER_KNOWN)
		                   ? (h->flags & HELD_OWNER_CHANGED) != 0
		                   : owner_changed_key(t, &keys[ts->key_index - 1]);
		tstat_untimed(ts, changed);
	}
	return rc;
}

/* All mode's usual release: of the newest held lock, an uncontended
 * acquisition with the thread's own entry (HELD_TIMED | HELD_TSTAT and
 * nothing else): the hold's end, the real unlock, then the entry. */
static inline __attribute__((always_inline)) bool release_all_fast(void *lock, uint32_t kind,
                                                                   int *rc)
{
	thread_state_t *t = fast_self();
	if (mode != THOTHLOCK_MODE_ALL || !t || t->depth == 0)
		return false;
	uint32_t d = t->depth;
	held_t *h = &t->held[d - 1];
	uint32_t plain = h->flags & ~(uint32_t)(HELD_OWNER_KNOWN | HELD_OWNER_CHANGED);
	if (atomic_load_explicit(&h->lock, memory_order_relaxed) != (uintptr_t)lock ||
	    h->segments || atomic_load_explicit(&h->want_stack, memory_order_relaxed))
		return false;
	if (plain != (HELD_TIMED | HELD_TSTAT)) {
		if (plain != HELD_TSTAT)
			return false;
		/* a hold the sampling left untimed: no clock read (out of line,
		 * so that the timed path costs what it did before sampling) */
		*rc = release_untimed(t, h, lock, kind);
		return true;
	}
	uint64_t t_release = ticks();
	atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
	t->depth = d - 1;
	*rc = kind == THOTHLOCK_KIND_MUTEX ? real.mutex_unlock(lock) : real.rw_unlock(lock);
	if (__builtin_expect(*rc == 0, 1)) {
		/* h stays as it was until this thread pushes again. */
		thothlock_tstat_t *ts = h->tstat;
		bool changed = (h->flags & HELD_OWNER_KNOWN)
		                   ? (h->flags & HELD_OWNER_CHANGED) != 0
		                   : owner_changed_key(t, &keys[ts->key_index - 1]);
		tstat_commit(ts, changed, elapsed_ns(h->t_acquired, t_release));
	}
	return true;
}

static __attribute__((noinline)) int release_slow(void *lock, uint32_t kind, uintptr_t pc)
{
	if (!atomic_load_explicit(&resolved, memory_order_acquire))
		init();
	return release(lock, kind == THOTHLOCK_KIND_MUTEX ? (lock_fn)real.mutex_unlock
	                                                  : (lock_fn)real.rw_unlock, kind, pc);
}

/* All mode's release: its own fast path first (no call site needed:
 * all mode names holders by their acquisition site). */
static __attribute__((noinline)) int release_all_mode(void *lock, uint32_t kind)
{
	int rc;
	if (release_all_fast(lock, kind, &rc))
		return rc;
	return release_slow(lock, kind, 0);
}

/* Contention mode's release of a lock (rwlocks, mutexes of other types,
 * a default mutex when glibc's protocol is not inline): glibc's unlock and
 * nothing else, unless the thread has a contended acquisition in flight
 * or a waiter asked for its stack at this lock's release. */
static inline __attribute__((always_inline)) int release_fast(void *lock, lock_fn unlock,
                                                              uint32_t kind, uintptr_t pc)
{
	thread_state_t *t = fast_self();
	if (__builtin_expect(t != NULL && mode == THOTHLOCK_MODE_CONTENTION && t->depth == 0 &&
	                         atomic_load_explicit(&t->waited_for, memory_order_relaxed) !=
	                             (uintptr_t)lock,
	                     1))
		return unlock(lock);
	if (mode == THOTHLOCK_MODE_ALL)
		return release_all_mode(lock, kind);
	return release_slow(lock, kind, pc);
}

/* ---- mutexes ----------------------------------------------------------- */

/* glibc's trylock of a default mutex (PTHREAD_MUTEX_TIMED_NP: __kind 0 -
 * not recursive, errorcheck, robust, process-shared or elided), inline:
 * the lock word's 0 -> 1 compare-and-swap, then the owner's tid and the
 * user count, exactly what glibc 2.36's pthread_mutex_trylock does for
 * this type (nptl/pthread_mutex_trylock.c); glibc's own unlock, condition
 * wait and destroy then find the mutex as they expect (in a process
 * with one thread, glibc takes a private mutex with a plain store, and so
 * does this).  It spares the
 * call into glibc's type dispatch and lets the wrapper be a leaf.  init()
 * checks the protocol against the running glibc (check_inline_trylock)
 * and leaves `fast_mutex` off if anything differs; every other mutex type
 * goes through glibc's trylock. */
static inline __attribute__((always_inline)) bool mutex_trylock_inline(pthread_mutex_t *m,
                                                                       int tid)
{
	if (__builtin_expect(__libc_single_threaded, 0)) {
		/* glibc's own single-threaded shortcut (lll_mutex_lock_optimized):
		 * no other thread exists and the mutex is private, so a plain
		 * store takes it. */
		if (m->__data.__lock != 0)
			return false;
		m->__data.__lock = 1;
	} else {
		int unlocked = 0;
		if (!__atomic_compare_exchange_n(&m->__data.__lock, &unlocked, 1, false,
		                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return false;
	}
	m->__data.__owner = tid;
	m->__data.__nusers++;
	return true;
}

/* What start-up checks of the running glibc: the uncontended protocol
 * (lock word 0/1, owner, nusers) of the inline trylock and unlock against
 * glibc's own calls.  Not checked here: the contended word 2 and the
 * private futex wake, glibc's long-stable lll_lock protocol, which
 * tests/locks/glibc_protocol.c covers (a sleeper only the wake can free). */
static void check_inline_trylock(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	int tid = (int)syscall(SYS_gettid);
	bool ok = m.__data.__kind == 0 && mutex_trylock_inline(&m, tid) &&
	          m.__data.__lock == 1 && m.__data.__owner == tid && m.__data.__nusers == 1 &&
	          real.mutex_trylock(&m) == EBUSY &&          /* glibc sees it taken */
	          real.mutex_unlock(&m) == 0 &&               /* and releases it */
	          m.__data.__lock == 0 && m.__data.__owner == 0 && m.__data.__nusers == 0 &&
	          real.mutex_trylock(&m) == 0 &&              /* glibc's trylock leaves the same */
	          m.__data.__lock == 1 && m.__data.__owner == tid && m.__data.__nusers == 1 &&
	          !mutex_trylock_inline(&m, tid) &&           /* and the inline one sees its hold */
	          real.mutex_unlock(&m) == 0 && m.__data.__lock == 0 &&
	          real.mutex_lock(&m) == 0 &&                 /* glibc's lock, the inline unlock */
	          (mutex_unlock_inline(&m), m.__data.__lock == 0) &&
	          m.__data.__owner == 0 && m.__data.__nusers == 0 &&
	          real.mutex_trylock(&m) == 0 &&              /* glibc finds it free */
	          (mutex_unlock_inline(&m), m.__data.__lock == 0) &&
	          memcmp(&m, &(pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER, sizeof m) == 0;
	fast_mutex = ok && mode == THOTHLOCK_MODE_CONTENTION;
	fast_mutex_all = ok && mode == THOTHLOCK_MODE_ALL;
	/* All mode's owner word (owner_flags): glibc must leave a default
	 * mutex's __count as it is through lock, trylock, unlock and the
	 * unlock and relock of a condition wait (here one that times out at
	 * once).  THOTHLOCK_OWNER=key keeps every owner in the table's keys. */
	const char *ow = getenv("THOTHLOCK_OWNER");
	if (mode == THOTHLOCK_MODE_ALL && !(ow && strcmp(ow, "key") == 0)) {
		pthread_mutex_t w = PTHREAD_MUTEX_INITIALIZER;
		pthread_cond_t c = PTHREAD_COND_INITIALIZER;
		const struct timespec past = { 0, 0 };
		const unsigned mark = 0x5a5a5au;
		w.__data.__count = mark;
		owner_word = w.__data.__kind == 0 &&
		             real.mutex_lock(&w) == 0 && w.__data.__count == mark &&
		             real.cond_timedwait(&c, &w, &past) == ETIMEDOUT && w.__data.__count == mark &&
		             real.mutex_unlock(&w) == 0 && w.__data.__count == mark &&
		             real.mutex_trylock(&w) == 0 && w.__data.__count == mark &&
		             real.mutex_unlock(&w) == 0 && w.__data.__count == mark && w.__data.__lock == 0;
	}
}

/* All mode's held entry of a default mutex just taken with the inline
 * trylock; HOLD: HELD_TIMED (the clock last) or 0 (hold sampling). */
static inline __attribute__((always_inline)) void push_all_mode(thread_state_t *t,
                                                                pthread_mutex_t *m, uintptr_t pc,
                                                                thothlock_tstat_t *ts, int tid,
                                                                uint32_t hold)
{
	uint32_t d = t->depth;
	held_t *h = &t->held[d];
	h->kind = THOTHLOCK_KIND_MUTEX;
	h->flags = hold | HELD_TSTAT | owner_flags(m, THOTHLOCK_KIND_MUTEX, tid);
	h->segments = 0;
	h->tstat = ts;
	atomic_store_explicit(&h->want_stack, 0, memory_order_relaxed);
	atomic_store_explicit(&h->pc, pc, memory_order_relaxed);
	atomic_store_explicit(&h->lock, (uintptr_t)m, memory_order_relaxed);
	t->depth = d + 1;
	if (hold)
		h->t_acquired = ticks();
}

/* Everything but the inline fast path: out of line, reached by a tail
 * call, so that the fast path saves no register. */
static __attribute__((noinline)) int mutex_lock_general(pthread_mutex_t *m, uintptr_t pc)
{
	/* All mode's usual acquisition of a default mutex: the thread's entry
	 * of (lock, site) first (outside the hold), the inline trylock, the
	 * held entry, and the clock last. */
	thread_state_t *t = self;
	if (fast_mutex_all && t && !t->in_hook &&
	    __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) == 0 && t->depth < HELD_DEPTH) {
		thothlock_tstat_t *ts = tstat_find(t, (uintptr_t)m, pc, THOTHLOCK_KIND_MUTEX);
		if (__builtin_expect(ts != NULL, 1)) {
			int tid = tid_of(t);
			if (__builtin_expect(!mutex_trylock_inline(m, tid), 0))
				return acquire_contended(t, m, THOTHLOCK_KIND_MUTEX, (lock_fn)real.mutex_lock,
				                         NULL, NULL, pc, ts, NULL, NULL);
			/* every hold timed (the default), or as the sampling says */
			if (__builtin_expect(hold_sample == 1, 1))
				push_all_mode(t, m, pc, ts, tid, HELD_TIMED);
			else
				push_all_mode(t, m, pc, ts, tid, hold_flags(t));
			return 0;
		}
	}
	return acquire_fast(m, OP_MUTEX, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock,
	                    (lock_fn)real.mutex_lock, NULL, NULL, pc);
}

/* (A default mutex's lock acquires or blocks for ever: no attempt to
 * take back.) */
static __attribute__((noinline)) int mutex_lock_busy(thread_state_t *t, pthread_mutex_t *m,
                                                     uintptr_t pc)
{
	return acquire_contended(t, m, THOTHLOCK_KIND_MUTEX, (lock_fn)real.mutex_lock, NULL, NULL,
	                         pc, NULL, NULL, NULL);
}

/* The lock that ends the thread's counting period: counted first, outside
 * the hold, then taken. */
static __attribute__((noinline)) int mutex_lock_counted(thread_state_t *t, pthread_mutex_t *m,
                                                        uintptr_t pc)
{
	count_before_inline(t, (uintptr_t)m, THOTHLOCK_KIND_MUTEX);
	if (__builtin_expect(!mutex_trylock_inline(m, atomic_load_explicit(&t->tid,
	                                                                   memory_order_relaxed)),
	                     0))
		return mutex_lock_busy(t, m, pc);
	return 0;
}

/* Contention mode's lock of a default mutex: glibc's own protocol inline
 * (mutex_trylock_inline) and a count down to the next acquisition counted
 * (count_before): no held entry, nothing else.  Where the hold ends is
 * glibc's unlock too (pthread_mutex_unlock); only a contended acquisition
 * gets a held entry (acquire_contended), for the wait and hold it commits. */
EXPORT int pthread_mutex_lock(pthread_mutex_t *m)
{
	uintptr_t pc = CALLER();
	thread_state_t *t = self;
	if (__builtin_expect(t == NULL || t->in_hook || !fast_mutex ||
	                         __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != 0,
	                     0))
		return mutex_lock_general(m, pc);
	if (__builtin_expect(--t->acq_countdown == 0, 0))
		return mutex_lock_counted(t, m, pc);
	if (__builtin_expect(!mutex_trylock_inline(m, atomic_load_explicit(&t->tid,
	                                                                   memory_order_relaxed)),
	                     0))
		return mutex_lock_busy(t, m, pc);
	return 0;
}

EXPORT int pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime)
{
	return acquire_fast(m, OP_MUTEX_TIMED, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock, NULL,
	                    (timed_fn)real.mutex_timedlock, abstime, CALLER());
}

EXPORT int pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                   const struct timespec *abstime)
{
	uintptr_t pc = CALLER();
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	if (!real.mutex_clocklock)
		return ENOSYS;
	pending_clock = clock;
	return acquire_fast(m, OP_MUTEX_CLOCK, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock, NULL,
	                    mutex_clocklock_call, abstime, pc);
}

static __attribute__((noinline)) int mutex_trylock_general(pthread_mutex_t *m, uintptr_t pc)
{
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	return try_acquire(m, THOTHLOCK_KIND_MUTEX, (try_fn)real.mutex_trylock, pc);
}

static __attribute__((noinline)) int mutex_trylock_busy(thread_state_t *t, pthread_mutex_t *m)
{
	t->acq_countdown++;   /* the attempt counted down acquired nothing */
	count_trylock_busy(t, (uintptr_t)m, THOTHLOCK_KIND_MUTEX);
	return EBUSY;
}

/* The trylock that ends the thread's counting period: counted first, taken
 * back if the mutex is busy. */
static __attribute__((noinline)) int mutex_trylock_counted(thread_state_t *t, pthread_mutex_t *m)
{
	count_tok_t tok = count_before_inline(t, (uintptr_t)m, THOTHLOCK_KIND_MUTEX);
	if (mutex_trylock_inline(m, atomic_load_explicit(&t->tid, memory_order_relaxed)))
		return 0;
	count_failed(t, (uintptr_t)m, tok);
	count_trylock_busy(t, (uintptr_t)m, THOTHLOCK_KIND_MUTEX);
	return EBUSY;
}

/* Contention mode's trylock of a default mutex: the same inline trylock
 * and count down as pthread_mutex_lock's fast path (memcached's LRU
 * maintainer tries item locks, 1.9 times per operation).  A busy one is
 * counted as before, not a contention. */
EXPORT int pthread_mutex_trylock(pthread_mutex_t *m)
{
	uintptr_t pc = CALLER();
	thread_state_t *t = self;
	if (__builtin_expect(t == NULL || t->in_hook || !fast_mutex ||
	                         __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != 0,
	                     0))
		return mutex_trylock_general(m, pc);
	if (__builtin_expect(--t->acq_countdown == 0, 0))
		return mutex_trylock_counted(t, m);
	if (__builtin_expect(!mutex_trylock_inline(m, atomic_load_explicit(&t->tid,
	                                                                   memory_order_relaxed)),
	                     0))
		return mutex_trylock_busy(t, m);
	return 0;
}

static __attribute__((noinline)) int mutex_unlock_general(pthread_mutex_t *m, uintptr_t pc)
{
	return release_fast(m, (lock_fn)real.mutex_unlock, THOTHLOCK_KIND_MUTEX, pc);
}

/* The lock word was above 1: a thread sleeps on the mutex (a waiter, or
 * glibc's condition wait taking it back, which always leaves 2).  The
 * mutex is free already; where we released it goes out before the wake
 * (the waiter reads it once woken), our stack after it if a waiter asked. */
static __attribute__((noinline)) int mutex_unlock_wake(thread_state_t *t, pthread_mutex_t *m,
                                                       uintptr_t pc)
{
	note_release(t, (uintptr_t)m, pc);
	futex_wake_one(&m->__data.__lock);
	if (atomic_load_explicit(&t->waited_for, memory_order_relaxed) == (uintptr_t)m)
		holder_released(t, (uintptr_t)m, THOTHLOCK_KIND_MUTEX);
	return 0;
}

/* Contention mode's release of a default mutex: glibc's unlock inline
 * (mutex_release_word, the wake a tail call), after one check that this thread has no contended acquisition
 * in flight (held[] empty: the uncontended holds have no entry).  The
 * "above 1" branch is exactly the contended release, where the holder
 * does its part (mutex_unlock_wake). */
EXPORT int pthread_mutex_unlock(pthread_mutex_t *m)
{
	if (__builtin_expect(!fast_mutex, 0))
		/* all mode: its own fast path (release_all_fast) is release_slow's
		 * first step; else glibc's protocol was not confirmed */
		return mode == THOTHLOCK_MODE_ALL ? release_all_mode(m, THOTHLOCK_KIND_MUTEX)
		                                  : mutex_unlock_general(m, CALLER());
	thread_state_t *t = self;
	if (__builtin_expect(t == NULL || t->depth != 0 ||
	                         __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) != 0,
	                     0))
		return mutex_unlock_general(m, CALLER());
	if (mutex_release_word(m))
		return mutex_unlock_wake(t, m, CALLER());
	return 0;
}

/* ---- rwlocks ----------------------------------------------------------- */

EXPORT int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
	return acquire_fast(l, OP_RD, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock,
	                    (lock_fn)real.rw_rdlock, NULL, NULL, CALLER());
}

EXPORT int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
	return acquire_fast(l, OP_WR, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock,
	                    (lock_fn)real.rw_wrlock, NULL, NULL, CALLER());
}

EXPORT int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *abstime)
{
	return acquire_fast(l, OP_RD_TIMED, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock, NULL,
	                    (timed_fn)real.rw_timedrdlock, abstime, CALLER());
}

EXPORT int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *abstime)
{
	return acquire_fast(l, OP_WR_TIMED, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock, NULL,
	                    (timed_fn)real.rw_timedwrlock, abstime, CALLER());
}

EXPORT int pthread_rwlock_clockrdlock(pthread_rwlock_t *l, clockid_t clock,
                                      const struct timespec *abstime)
{
	uintptr_t pc = CALLER();
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	if (!real.rw_clockrdlock)
		return ENOSYS;
	pending_clock = clock;
	return acquire_fast(l, OP_RD_CLOCK, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock, NULL,
	                    rw_clockrdlock_call, abstime, pc);
}

EXPORT int pthread_rwlock_clockwrlock(pthread_rwlock_t *l, clockid_t clock,
                                      const struct timespec *abstime)
{
	uintptr_t pc = CALLER();
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	if (!real.rw_clockwrlock)
		return ENOSYS;
	pending_clock = clock;
	return acquire_fast(l, OP_WR_CLOCK, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock, NULL,
	                    rw_clockwrlock_call, abstime, pc);
}

EXPORT int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	return try_acquire(l, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_tryrdlock, CALLER());
}

EXPORT int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	return try_acquire(l, THOTHLOCK_KIND_RWLOCK, (try_fn)real.rw_trywrlock, CALLER());
}

EXPORT int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
	return release_fast(l, (lock_fn)real.rw_unlock, THOTHLOCK_KIND_RWLOCK, CALLER());
}

/* ---- condition variables ------------------------------------------------
 * The real wait releases the mutex and takes it back inside glibc (through
 * its internal lock call, which no preload can see): the hold is split in
 * segments, kept in the held entry and committed at the final unlock, so
 * nothing is recorded while the mutex is held.  The reacquisition's own
 * wait is not measured (counted in header.cond_waits). */

static int cond_common(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
	thread_state_t *t = enter();
	if (!t)
		return abstime ? real.cond_timedwait(c, m, abstime) : real.cond_wait(c, m);
	held_t *h = find_held(t, (uintptr_t)m);
	if (!h && table)
		/* contention mode's uncontended hold: no entry to count it at the
		 * release (one add, where the thread is about to sleep anyway) */
		add(&table->cond_waits, 1);
	if (h && (h->flags & HELD_TIMED)) {
		/* Hold segments beyond HOLD_SEGMENTS are counted in cond_waits
		 * but not timed. */
		uint64_t seg = elapsed_ns(h->t_acquired, ticks());
		if (h->segments < HOLD_SEGMENTS)
			h->segment_ns[h->segments] = seg;
		h->segments++;
	}
	int rc = abstime ? real.cond_timedwait(c, m, abstime) : real.cond_wait(c, m);
	if (h && (h->flags & HELD_TIMED))
		h->t_acquired = ticks();
	else if (h)
		h->segments++;      /* counted at the unlock, in header.cond_waits */
	return rc;
}

EXPORT int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	return cond_common(c, m, NULL);
}

EXPORT int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                  const struct timespec *abstime)
{
	if (__builtin_expect(!real.mutex_lock, 0))
		init();
	return cond_common(c, m, abstime);
}
