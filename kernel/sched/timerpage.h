/*
 * timerpage.h - the window page: wake-up instants shared across processes
 * (SCHED-3, docs/SCHED.md "Timers across processes").
 *
 * thothd creates the page (one 4 KiB sealed memfd) at start and hands its
 * descriptor to every process that connects and asks (Daemon.timer_page,
 * after the runtime-dir and peer-uid checks); each maps it read-write.
 * Each loop claims one slot and posts there the instant its timerfd is
 * armed for (0 = nothing armed) and the earliest deadline of its timers
 * (0 = none), and binds a datagram socket DIR/tk.GEN.SLOT, its doorbell.  The rule is the
 * greedy offline optimum run online: a loop sleeps until the end of its
 * earliest window (HI: the greedy stabs the window that closes first at its
 * end), and a loop woken by its timer rings the doorbell of every other
 * slot with a deadline already passed that planned to wake later: they
 * fire what is due at this instant, which the CPU is awake for anyway,
 * instead of waking it again.  bench_timers shows this reaches the offline
 * optimum where joining instants other loops posted (without ringing)
 * stays at 1.8x: a sleeping loop cannot take back an instant it chose.
 *
 * The page is hostile input: any process of the uid can write any word.
 * A posted value is only ever used when it lies inside the reader's own
 * window, so a bogus value can move a wake-up inside the window (costing
 * at most one wake-up), never make a timer fire outside it; a bogus
 * deadline costs one doorbell per slot per timer wake-up of the reader at
 * most, and a rung loop fires only timers whose deadline has passed; slot
 * counts and indexes are bounded by the mapping, never by the page's words.
 * Without thothd (no page) the loop uses the per-boot grid (timergrid.h).
 * Internal to libthoth (thoth__ names: the loop, the control link, thothd).
 */
#ifndef THOTH_SCHED_TIMERPAGE_H
#define THOTH_SCHED_TIMERPAGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define THOTH_TIMERPAGE_NAME "timers.page"   /* where a thothd before the sealed memfd put it: swept */
#define THOTH_TIMERPAGE_MAGIC 0x3147504d49544854ull   /* "THTIMPG1" */
#define THOTH_TIMERPAGE_SIZE 4096u
#define THOTH_TIMERPAGE_SLOTS 169u

typedef struct timerpage_slot {
	_Atomic uint32_t owner;         /* tid of the loop's thread, 0 = free */
	uint32_t reserved;
	_Atomic uint64_t at;            /* CLOCK_MONOTONIC ns the owner wakes at, 0 = none */
	_Atomic uint64_t due;           /* its earliest timer deadline, 0 = none */
} timerpage_slot_t;

typedef struct timerpage {
	uint64_t magic;
	uint32_t size, nslots;          /* written by the creator; readers trust their own constants */
	_Atomic uint32_t high;          /* slots [0, high) were ever claimed (a hint, clamped) */
	uint32_t reserved[3];
	timerpage_slot_t slot[THOTH_TIMERPAGE_SLOTS];
} timerpage_t;

_Static_assert(sizeof(timerpage_t) <= THOTH_TIMERPAGE_SIZE, "the window page is one page");

/* ---- pure: the rule (the benchmark runs it in virtual time) ---------------- */

/* Initialise an empty page in memory. */
void timerpage_init(timerpage_t *pg);
/* The instant to wake at for the window [LO, HI] (LO <= HI): the latest
 * instant another slot (not SELF; SELF < 0 = none) posted inside the
 * window, else HI.  *JOINED tells which.  Never outside [LO, HI]. */
uint64_t timerpage_pick(const timerpage_t *pg, int self, uint64_t lo, uint64_t hi, bool *joined);
/* Claim a free slot for OWNER (non-zero); -1 if none.  A slot whose owner
 * is gone for good (no such thread, or a zombie: the same judgement as
 * thoth__timerpage_reap) is free when RECLAIM_DEAD and no slot is free:
 * loops of a crashed process leave their slot behind.  A reused id keeps
 * a slot busy, no more. */
int timerpage_claim(timerpage_t *pg, uint32_t owner, bool reclaim_dead);
void timerpage_release(timerpage_t *pg, int slot, uint32_t owner);
static inline void timerpage_post(timerpage_t *pg, int slot, uint64_t at, uint64_t due)
{
	atomic_store_explicit(&pg->slot[slot].at, at, memory_order_relaxed);
	atomic_store_explicit(&pg->slot[slot].due, due, memory_order_relaxed);
}
/* Calls FN(SLOT, ARG) for every slot but SELF whose earliest deadline has
 * passed at NOW (0 < due <= NOW) and that planned to wake later than
 * NOW + MARGIN: the loops a timer wake-up at NOW should ring. */
void timerpage_due_sleepers(const timerpage_t *pg, int self, uint64_t now, uint64_t margin,
			    void (*fn)(int slot, void *arg), void *arg);

/* Owner value of a slot thothd is giving back (thoth__timerpage_reap):
 * never a thread id (ids are below 2^30), never claimed. */
#define THOTH_TIMERPAGE_REAPING 0xffffffffu

/* ---- the process's page ------------------------------------------------------ */

/* thothd: create the page as a memfd sealed against shrinking and growing
 * (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: nobody, thothd included, can
 * truncate it under a mapping, which would SIGBUS every loop), use it in
 * this process, and keep its descriptor to hand out (Daemon.timer_page).
 * DIR is the runtime dir: the doorbells live there.  0 or a negative
 * THOTH_E_* (errno kept); a DIR of over 95 bytes is THOTH_E_IO with
 * ENAMETOOLONG, the record naming it and the limit. */
int thoth__timerpage_create(const char *dir);
/* The memfd of the page this process created (thothd), -1 if none. */
int thoth__timerpage_fd(void);
/* A process connected to thothd: adopt the page descriptor FD thothd
 * sent (hostile until checked: a regular memfd of exactly one page,
 * sealed against shrinking and growing, mappable read-write, with the
 * magic) and use it in every loop of this process from their next
 * re-arm; the doorbells live in DIR.  FD is always consumed (closed).
 * Adopting the page already in use is a no-op.  0 or a negative
 * THOTH_E_*: THOTH_E_PERM for a descriptor that is not such a memfd; on
 * such an error the previous page (or the grid) stays in use.
 * THOTH_E_LIMIT: DIR is too long for a doorbell path (the previous page
 * stays), or every page this process maps is still held by a loop
 * (timerpage.c): then no page is in use, the grid is, said once on
 * stderr. */
int thoth__timerpage_adopt(int fd, const char *dir);
/* The page in use (NULL = none: the grid). */
timerpage_t *thoth__timerpage_current(void);
/* A loop's hold on PG, the page it is about to read (taken from
 * thoth__timerpage_current): while held, PG stays mapped.  A handle for
 * thoth__timerpage_unhold, or -1 when PG is no longer one this process
 * maps (it was replaced and unmapped meanwhile: read none of it). */
int thoth__timerpage_hold(const timerpage_t *pg);
void thoth__timerpage_unhold(int held);
/* Pages unmapped so far, their entries reused for newer ones (tests). */
unsigned thoth__timerpage_unmapped(void);
/* The same, inline, for the loop's check on every wake-up (rearm): an
 * acquire load (a plain load on x86), no call.  Written only by
 * thoth__timerpage_adopt (release, after the page's doorbell dir and
 * generation are recorded). */
extern _Atomic(timerpage_t *) thoth__timerpage_cur __attribute__((visibility("hidden")));
static inline timerpage_t *timerpage_current_inline(void)
{
	return atomic_load_explicit(&thoth__timerpage_cur, memory_order_acquire);
}
/* The doorbell socket path of SLOT of PG ("DIR/tk.GEN.SLOT", GEN naming
 * the page, so loops of an old and a new thothd's page never share a
 * name); 0 or THOTH_E_NO_SPACE / THOTH_E_INVAL (PG is not a page this
 * process mapped). */
int thoth__timerpage_bell_path(const timerpage_t *pg, int slot, char *out, size_t cap);
/* thothd: give back every slot of its page whose owner thread is gone
 * (exited, or a zombie) and unlink its doorbell; how many.  Run after a
 * client's connection closed (a dead process leaves its slots).  A thread
 * that dies or is reaped by its parent while being judged is judged gone. */
unsigned thoth__timerpage_reap(void);
/* Tests: read thread states (ROOT/TID/stat) under ROOT instead of /proc;
 * NULL restores /proc. */
void thoth__timerpage_set_proc_root(const char *root);
/* thothd at start, before creating its page: unlink every doorbell
 * (tk.* sockets) and old-style timers.page file left in DIR by an
 * earlier thothd's processes; how many. */
unsigned thoth__timerpage_sweep(const char *dir);

#endif
