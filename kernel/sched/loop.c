/*
 * loop.c - the tickless event loop (include/thoth/loop.h, docs/LOOP.md).
 *
 * One backend (epoll by default, io_uring on request: loop_backend.h)
 * watches the user's fd sources, one timerfd, and (once a signal is
 * handled) one signalfd, and runs file I/O requests.  The timerfd is armed for the earliest
 * "latest allowed" instant of all pending timers and disarmed when none is
 * pending; an idle loop therefore sleeps in epoll_wait(-1) and costs nothing.
 *
 * Removal safety: a source removed during dispatch is only marked dead and
 * freed after the batch, so a later event of the same batch that points at
 * it is skipped, never dereferenced after free.  Timers being fired are
 * popped first and fired from a local list; cancelling one of them from a
 * callback marks it and it is freed once its turn has passed.
 *
 * Trace points (OBS-1, category LOOP / TIMER): loop_wakeup(reasons, events)
 * after each epoll_wait that returns something to do, timer_fire(lateness
 * in ns past the deadline, slack in ns) before each timer callback; the
 * lateness is from the batch's lazily read thoth_loop_now, so it includes
 * the fd callbacks run before the timers in that batch (since stop 34).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "thoth/error.h"
#include "thoth/hot.h"
#include "thoth/loop.h"
#include "thoth/trace.h"
#include "timerq.h"
#include "loop_backend.h"
#include "timergrid.h"

/* ASan: a free inline slot is poisoned, so a use after thoth_loop_remove_fd
 * of an inline source is reported as a heap source's would be. */
#if defined(__SANITIZE_ADDRESS__)
#define LOOP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOP_ASAN 1
#endif
#endif
#ifdef LOOP_ASAN
#include <sanitizer/asan_interface.h>
#define slot_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define slot_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define slot_poison(p, n) ((void)(p), (void)(n))
#define slot_unpoison(p, n) ((void)(p), (void)(n))
#endif
#include "timerpage.h"

#define MAX_EVENTS 256   /* per wake-up; the epoll backend takes at most 64 */
#define MAX_SIGNAL 65
/* A loop planning to wake this soon after a doorbell instant is left alone:
 * the kernel's default timer slack (50 us) merges the two expiries anyway. */
#define BELL_MARGIN_NS 50000ull
/* Datagrams read off our doorbell per wake-up: any process of the uid can
 * send to it, and one that sends as fast as we read must not keep the loop
 * in recv (level-triggered: what is left wakes us again, or waits while
 * the doorbell is muted). */
#define BELL_DRAIN 64

struct thoth_source {
	int fd;
	uint32_t events;
	void *bh;                      /* the backend's record */
	thoth_fd_fn fn;
	void *arg;
	bool dead;
	thoth_source_t *prev, *next;   /* live sources, so thoth_loop_free frees them */
	thoth_source_t *next_dead;
};

struct thoth_timer {
	timerq_entry_t q;           /* first: timerq hands back entry pointers */
	thoth_timer_fn fn;
	void *arg;
	bool firing;                /* popped, in this batch's fire list */
	bool cancelled;             /* cancelled while firing: free after its turn */
	thoth_timer_t *next_fire;
};

typedef struct deferred {
	thoth_defer_fn fn;
	void *arg;
} deferred_t;

/*
 * The loop's memory, laid out for the wake-up (docs/SCHED.md, stop 36).  A
 * one-CPU round trip wakes a serving loop after a process switch, on a cold
 * TLB, and a distinct page costs more than a line there (stop 34); lackey
 * found a wake-up touching four pages of the loop's: the struct's first
 * line (be, bs) and its tail (timers, flags, stats) across a page boundary
 * (the 1 KiB signal table between them), the socket's source in its own
 * calloc, and the 4 KiB event array in thoth_loop_run_once's frame, which
 * put every callback a stack page deeper.  So: what a wake-up reads or
 * writes comes first, then the first LOOP_INLINE_SOURCES sources and the
 * event array, all in one page-aligned allocation whose first page holds
 * the fields, those sources and the first events; the rest (signals, the
 * window page's slot, the I/O records, setup) after.
 */
#define LOOP_INLINE_SOURCES 8

struct thoth_loop {
	/* ---- every wake-up ---- */
	const loop_backend_t *be;
	void *bs;                   /* backend state */
	uint64_t now;                   /* thoth_loop_now's reading; read again when: */
	bool now_stale;                 /* set at each wake-up: the next thoth_loop_now reads */
	/* rearm's inputs as of its last complete run: the timer set's
	 * generation, and whether armed_at is still what it armed (false
	 * from the start, after a failed arm and once the timerfd fired). */
	bool synced;
	bool page;                  /* ... or join instants posted on the window page (timerpage.h) */
	bool stopped;
	bool dispatching;
	uint8_t src_used;           /* bit i: src[i] holds a source */
	uint16_t depth;             /* thoth_loop_run_once calls in progress (ev is the outermost's) */
	uint64_t synced_gen;
	timerpage_t *tp;            /* the window page our slot is in (NULL: none claimed) */
	int tp_held;                /* our hold on tp (thoth__timerpage_hold), -1 none */
	timerq_t timers;
	deferred_t *deferred;
	size_t n_deferred, cap_deferred;
	loop_io_t *io_done, **io_done_tail;   /* epoll backend: done inline, callback pending */
	thoth_source_t *dead;       /* removed during dispatch, freed after */
	thoth_loop_stats_t stats;
	thoth_source_t src[LOOP_INLINE_SOURCES];   /* the first sources (alloc_source) */
	loop_ev_t ev[MAX_EVENTS];   /* the outermost wake-up's events (the first ones on page 0) */
	/* ---- the rest ---- */
	void *timer_bh, *sig_bh;    /* backend records of our own fds */
	int timerfd;
	int sigfd;
	uint64_t armed_at;          /* timerfd expiry as armed, 0 = disarmed */
	bool grid;                  /* wake on the per-boot grid (timergrid.h) */
	uint64_t grid_pert;
	int tp_slot;
	uint32_t tp_owner;
	uint64_t tp_posted, tp_posted_due;   /* what our slot says */
	int bell_fd;                /* our slot's doorbell (datagram socket), -1 none */
	void *bell_bh;
	bool bell_muted;            /* not watched until our own timer fires (bell_mute) */
	thoth_source_t *live;       /* all sources not removed */
	loop_io_t *io_free;                   /* records of completed requests, for the next ones */
	/* Every record ever allocated (linked once, at malloc), freed with the
	 * loop: a record is never unlinked per I/O, and the records in use
	 * never exceed the most requests this loop had outstanding at once. */
	loop_io_t *io_all;
	sigset_t sigmask;
	char bell_path[108];
	struct {
		thoth_signal_fn fn;
		void *arg;
	} signals[MAX_SIGNAL];
};

#define LOOP_PAGE 4096
/* The wake-up's fields and the inline sources on the first page, with
 * room for the first 16 events (a wake-up that finds one uses ev[0]). */
_Static_assert(offsetof(struct thoth_loop, ev) + 16 * sizeof(loop_ev_t) <= LOOP_PAGE,
	       "a loop's wake-up fields, first sources and first events fit its first page");
_Static_assert(LOOP_INLINE_SOURCES <= 8, "src_used is 8 bits");

/* epoll user data for the loop's own fds (sources are heap pointers). */
static char timerfd_tag, sigfd_tag, bell_tag;

THOTH_HOT uint64_t thoth_clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The clock is read at the first call after a wake-up, not at every
 * wake-up: a wake-up that runs no timer and whose callbacks ask no time
 * reads no clock (a CLOCK_MONOTONIC read costs 55-95 ns on this VM, and the
 * one-CPU channel service's loop wakes once a round trip: docs/SCHED.md,
 * "Stop 34").  Stable for the rest of the wake-up's batch, as before.  The
 * loop is logically const here: NOW is a cache (every loop is
 * heap-allocated, never a const object).
 */
THOTH_HOT_SERVE uint64_t thoth_loop_now(const thoth_loop_t *loop)
{
	if (loop->now_stale) {
		thoth_loop_t *l = (thoth_loop_t *)loop;
		l->now = thoth_clock_now();
		l->now_stale = false;
	}
	return loop->now;
}

/* The backend asked for: the option, else $THOTH_LOOP_BACKEND. */
static thoth_loop_backend_kind_t wanted_backend(const thoth_loop_options_t *opts, bool *from_env)
{
	*from_env = false;
	if (opts && opts->backend != THOTH_LOOP_BACKEND_DEFAULT)
		return opts->backend;
	const char *env = getenv("THOTH_LOOP_BACKEND");
	if (env && (!strcmp(env, "uring") || !strcmp(env, "io_uring"))) {
		*from_env = true;
		return THOTH_LOOP_BACKEND_URING;
	}
	return THOTH_LOOP_BACKEND_EPOLL;
}

int thoth_loop_new_with(const thoth_loop_options_t *opts, thoth_loop_t **out)
{
	if (!out || (opts && (unsigned)opts->backend > THOTH_LOOP_BACKEND_URING))
		return THOTH_E_INVAL;
	/* Page-aligned, so that the wake-up's fields never straddle (above). */
	thoth_loop_t *loop;
	if (posix_memalign((void **)&loop, LOOP_PAGE, sizeof *loop))
		return THOTH_E_NOMEM;
	memset(loop, 0, sizeof *loop);
	slot_poison(loop->src, sizeof loop->src);   /* all free */
	loop->sigfd = -1;
	loop->timerfd = -1;
	loop->io_done_tail = &loop->io_done;
	loop->grid = !(opts && opts->no_timer_grid);
	loop->grid_pert = loop->grid ? timergrid_perturbation() : 0;
	loop->page = loop->grid && !(opts && opts->no_timer_page);
	loop->tp_slot = -1;
	loop->tp_held = -1;
	loop->bell_fd = -1;
	sigemptyset(&loop->sigmask);
	timerq_init(&loop->timers);
	bool from_env;
	int r = THOTH_E_IO;
	if (wanted_backend(opts, &from_env) == THOTH_LOOP_BACKEND_URING) {
		if (!loop_backend_uring) {
			errno = ENOSYS;         /* built without liburing */
		} else {
			loop->be = loop_backend_uring;
			r = loop->be->create(&loop->bs);
		}
		/* An environment variable is a preference: a kernel or sandbox
		 * without io_uring still gets a working loop. */
		if (r && !from_env) {
			free(loop);
			return r;
		}
	}
	if (!loop->bs) {
		loop->be = &loop_backend_epoll;
		if ((r = loop->be->create(&loop->bs)))
			goto err;
	}
	r = THOTH_E_IO;
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timerfd < 0)
		goto err;
	if ((r = loop->be->add(loop->bs, loop->timerfd, THOTH_LOOP_READ, &timerfd_tag, &loop->timer_bh)))
		goto err;
	loop->now = thoth_clock_now();
	*out = loop;
	return 0;
err:
	thoth_loop_free(loop);
	return r;
}

int thoth_loop_new(thoth_loop_t **out)
{
	return thoth_loop_new_with(NULL, out);
}

const char *thoth_loop_backend(const thoth_loop_t *loop)
{
	return loop->be->name;
}

static void page_leave(thoth_loop_t *loop);
static void page_drop(thoth_loop_t *loop);

/* A source: one of the loop's inline slots while one is free (on the page
 * a wake-up reads anyway), else its own allocation.  Zeroed. */
static thoth_source_t *alloc_source(thoth_loop_t *loop)
{
	for (unsigned i = 0; i < LOOP_INLINE_SOURCES; i++) {
		if (!(loop->src_used & (1u << i))) {
			loop->src_used |= (uint8_t)(1u << i);
			slot_unpoison(&loop->src[i], sizeof loop->src[i]);
			memset(&loop->src[i], 0, sizeof loop->src[i]);
			return &loop->src[i];
		}
	}
	return calloc(1, sizeof(thoth_source_t));
}

static void free_source(thoth_loop_t *loop, thoth_source_t *s)
{
	uintptr_t off = (uintptr_t)s - (uintptr_t)loop->src;   /* huge if below */
	if (off < sizeof loop->src) {
		loop->src_used &= (uint8_t)~(1u << (off / sizeof loop->src[0]));
		slot_poison(s, sizeof *s);
	} else {
		free(s);
	}
}

static void free_dead(thoth_loop_t *loop)
{
	while (loop->dead) {
		thoth_source_t *s = loop->dead;
		loop->dead = s->next_dead;
		free_source(loop, s);
	}
}

void thoth_loop_free(thoth_loop_t *loop)
{
	if (!loop)
		return;
	free_dead(loop);
	page_drop(loop);
	/* Sources and pending timers belong to the loop. */
	while (loop->live) {
		thoth_source_t *s = loop->live;
		loop->live = s->next;
		free_source(loop, s);
	}
	while (loop->timers.n) {
		timerq_entry_t *e = loop->timers.deadline_heap[0];
		timerq_remove(&loop->timers, e);
		free(e);
	}
	timerq_free(&loop->timers);
	if (loop->sigfd >= 0) {
		close(loop->sigfd);
		sigprocmask(SIG_UNBLOCK, &loop->sigmask, NULL);
	}
	if (loop->be)
		loop->be->destroy(loop->bs);   /* cancels in-flight requests */
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	while (loop->io_all) {
		loop_io_t *io = loop->io_all;
		loop->io_all = io->all_next;
		free(io);
	}
	free(loop->deferred);
	free(loop);
}

/* ---- fd sources ------------------------------------------------------------ */

int thoth_loop_add_fd(thoth_loop_t *loop, int fd, uint32_t events, thoth_fd_fn fn, void *arg,
		      thoth_source_t **out)
{
	if (fd < 0 || !fn || (events & ~(THOTH_LOOP_READ | THOTH_LOOP_WRITE | THOTH_LOOP_EDGE)))
		return THOTH_E_INVAL;
	if ((events & THOTH_LOOP_EDGE) && !loop->be->edge)
		return THOTH_E_NO_FEATURE;
	thoth_source_t *s = alloc_source(loop);
	if (!s)
		return THOTH_E_NOMEM;
	*s = (thoth_source_t){ .fd = fd, .events = events, .fn = fn, .arg = arg };
	int r = loop->be->add(loop->bs, fd, events, s, &s->bh);
	if (r) {
		free_source(loop, s);
		return r;
	}
	loop->stats.fd_sources++;
	s->next = loop->live;
	if (loop->live)
		loop->live->prev = s;
	loop->live = s;
	if (out)
		*out = s;
	return 0;
}

int thoth_loop_modify_fd(thoth_loop_t *loop, thoth_source_t *s, uint32_t events)
{
	if (s->dead || (events & ~(THOTH_LOOP_READ | THOTH_LOOP_WRITE | THOTH_LOOP_EDGE)))
		return THOTH_E_INVAL;
	if ((events & THOTH_LOOP_EDGE) && !loop->be->edge)
		return THOTH_E_NO_FEATURE;
	int r = loop->be->modify(loop->bs, s->fd, events, s, &s->bh);
	if (r)
		return r;
	s->events = events;
	return 0;
}

void thoth_loop_remove_fd(thoth_loop_t *loop, thoth_source_t *s)
{
	if (!s || s->dead)
		return;
	loop->be->del(loop->bs, s->fd, s->bh);   /* before its fd is closed (backend_epoll.c) */
	s->bh = NULL;
	s->dead = true;
	loop->stats.fd_sources--;
	if (s->prev)
		s->prev->next = s->next;
	else
		loop->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next_dead = loop->dead;
	loop->dead = s;
	if (!loop->dispatching)
		free_dead(loop);
}

/* ---- timers ------------------------------------------------------------------- */

/* Is our slot still ours?  Any process of the uid can write its owner
 * (and thothd gives back a slot whose owner thread is gone): a loop that
 * already claimed it may have bound its doorbell name since. */
static bool slot_ours(const thoth_loop_t *loop)
{
	return loop->tp && loop->tp_slot >= 0 &&
	       atomic_load_explicit(&loop->tp->slot[loop->tp_slot].owner, memory_order_relaxed) == loop->tp_owner;
}

/* Give our slot back: no doorbell, nothing posted.  A slot no longer ours
 * is left alone, its doorbell name (now perhaps another loop's) too. */
static void page_leave(thoth_loop_t *loop)
{
	bool ours = slot_ours(loop);
	if (loop->bell_fd >= 0) {
		loop->be->del(loop->bs, loop->bell_fd, loop->bell_bh);
		close(loop->bell_fd);
		if (ours)
			unlink(loop->bell_path);
		loop->bell_fd = -1;
		loop->bell_muted = false;
	}
	if (ours)
		timerpage_release(loop->tp, loop->tp_slot, loop->tp_owner);
	loop->tp_slot = -1;
	loop->tp_posted = loop->tp_posted_due = 0;
}

/* Leave our slot and let go of the page: from here we read none of it. */
static void page_drop(thoth_loop_t *loop)
{
	page_leave(loop);
	thoth__timerpage_unhold(loop->tp_held);
	loop->tp_held = -1;
	loop->tp = NULL;
}

/* Our slot's doorbell: a datagram socket at DIR/tk.SLOT (the runtime dir
 * is ours and 0700: only our uid can ring it). */
static int bell_open(thoth_loop_t *loop)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (thoth__timerpage_bell_path(loop->tp, loop->tp_slot, a.sun_path, sizeof a.sun_path))
		return THOTH_E_NO_SPACE;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return THOTH_E_IO;
	unlink(a.sun_path);             /* left by a dead owner of the slot */
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    loop->be->add(loop->bs, fd, THOTH_LOOP_READ, &bell_tag, &loop->bell_bh)) {
		close(fd);
		return THOTH_E_IO;
	}
	memcpy(loop->bell_path, a.sun_path, sizeof loop->bell_path);
	loop->bell_fd = fd;
	loop->bell_muted = false;
	return 0;
}

/*
 * The window page this loop posts on (timerpage.h): the process's current
 * page, with a slot and its doorbell; on a new page (thothd restarted) the
 * slot moves.  NULL when there is none, or no free slot, or no doorbell,
 * or our slot was taken from us (slot_ours): then the loop uses the
 * per-boot grid.
 */
static timerpage_t *page_of(thoth_loop_t *loop)
{
	timerpage_t *pg = thoth__timerpage_current();
	if (pg == loop->tp) {
		/* Lost (its owner word rewritten): we neither post there nor
		 * claim again on this page; the grid keeps every window, and a
		 * co-tenant rewriting owners cannot make us churn slots. */
		if (loop->tp_slot >= 0 && !slot_ours(loop))
			page_leave(loop);
		return loop->tp_slot >= 0 ? pg : NULL;
	}
	page_drop(loop);
	/* Held while we read it: only then may the page we leave be unmapped
	 * (timerpage.c).  Not held: replaced and unmapped since we read the
	 * pointer; the grid this time, the newer page at the next re-arm. */
	int held = thoth__timerpage_hold(pg);
	if (held < 0)
		return NULL;
	loop->tp = pg;
	loop->tp_held = held;
	loop->tp_owner = (uint32_t)gettid();
	loop->tp_slot = timerpage_claim(pg, loop->tp_owner, true);
	if (loop->tp_slot >= 0 && bell_open(loop)) {
		timerpage_release(pg, loop->tp_slot, loop->tp_owner);
		loop->tp_slot = -1;
	}
	return loop->tp_slot >= 0 ? pg : NULL;
}

static void ring(int slot, void *arg)
{
	thoth_loop_t *loop = arg;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (thoth__timerpage_bell_path(loop->tp, slot, a.sun_path, sizeof a.sun_path))
		return;
	/* Full queue or no such socket (a stale slot): it wakes on its own. */
	if (sendto(loop->bell_fd, "", 1, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a) == 1)
		loop->stats.timer_bells_rung++;
}

/* Woken by our own timer at NOW: ring every loop with a deadline passed
 * that would wake later on its own (the greedy's shared instant). */
static void ring_due_sleepers(thoth_loop_t *loop)
{
	if (loop->tp && loop->tp_slot >= 0 && loop->bell_fd >= 0)
		timerpage_due_sleepers(loop->tp, loop->tp_slot, thoth_loop_now(loop), BELL_MARGIN_NS, ring, loop);
}

/*
 * Arm the timerfd for an instant T no later than the earliest instant at
 * which some pending timer's window closes (HI = min over timers of
 * deadline + slack).  Firing then runs every timer whose deadline has
 * passed: each of those is inside its window, because no window closes
 * before HI >= T.  T is chosen in [LO, HI], LO = the latest deadline <= HI,
 * so every timer that would fire at HI still fires at T (no batching inside
 * the process is lost), where other processes wake too: an instant another
 * loop posted on the window page (timerpage.h), else HI; without a page,
 * the point of the per-boot grid that other processes pick too
 * (timergrid.h).  Either way T is in [LO, HI], whatever the page says.
 * timerfd_settime is skipped if the instant is unchanged.
 */
static __attribute__((noinline)) int rearm_now(thoth_loop_t *loop)
{
	uint64_t at = 0, due = 0;
	timerpage_t *pg = loop->page ? page_of(loop) : NULL;
	if (loop->timers.n) {
		uint64_t hi = timerq_min_latest(&loop->timers);
		due = timerq_min_deadline(&loop->timers);
		if (pg)
			at = hi;            /* the greedy's instant; loops woken earlier ring us */
		else if (loop->grid)
			at = timergrid_pick(timerq_max_due(&loop->timers, hi), hi, loop->grid_pert);
		else
			at = hi;
	}
	if (at == 0 && loop->timers.n)
		at = 1;                 /* deadline 0: "as soon as possible" */
	if (due == 0 && loop->timers.n)
		due = 1;
	if (pg && (at != loop->tp_posted || due != loop->tp_posted_due)) {
		timerpage_post(pg, loop->tp_slot, at, due);
		loop->tp_posted = at;
		loop->tp_posted_due = due;
	}
	if (at == loop->armed_at)
		goto synced;
	struct itimerspec its = { 0 };
	its.it_value.tv_sec = (time_t)(at / 1000000000ull);
	its.it_value.tv_nsec = (long)(at % 1000000000ull);
	/* A failure is surfaced, never ignored: the next deadline would be
	 * silently missed (the caller gets THOTH_E_IO with errno kept). */
	if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		/* Not synced: the page (moved by page_of) already says AT, so
		 * only this keeps the next rearm from skipping the retry. */
		loop->synced = false;
		return thoth_error_io(errno, "timerfd_settime");
	}
	loop->armed_at = at;
	loop->stats.timerfd_arms++;
synced:
	loop->synced_gen = loop->timers.gen;
	loop->synced = true;
	return 0;
}

/*
 * rearm_now, unless nothing it reads changed since it last ran to the end:
 * the timer set (generation: every add, re-arm, cancel and fire, from a
 * callback too), armed_at (synced), the process's window page (a new one
 * moves our slot), our slot and what it says (written by rearm_now and by
 * page_leave, which only a page change or the loop's end runs), and the
 * grid settings (fixed at create).  It would compute the same instant,
 * post nothing and arm nothing.  Inline, with the page read inline: the
 * check is ~10 instructions where the call was ~30, twice per wake-up of
 * a loop whose timers did not change.
 */
static inline int rearm(thoth_loop_t *loop)
{
	if (loop->synced && loop->synced_gen == loop->timers.gen &&
	    (!loop->page || timerpage_current_inline() == loop->tp))
		return 0;
	return rearm_now(loop);
}

int thoth_loop_add_timer(thoth_loop_t *loop, uint64_t deadline, uint64_t slack, thoth_timer_fn fn,
			 void *arg, thoth_timer_t **out)
{
	if (!fn)
		return THOTH_E_INVAL;
	thoth_timer_t *t = calloc(1, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	t->fn = fn;
	t->arg = arg;
	t->q.by_deadline = t->q.by_latest = TIMERQ_NONE;
	int r = timerq_insert(&loop->timers, &t->q, deadline, slack);
	if (r) {
		free(t);
		return r;
	}
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (!loop->dispatching && (r = rearm(loop)) != 0) {
		timerq_remove(&loop->timers, &t->q);
		loop->stats.timers_pending = (uint32_t)loop->timers.n;
		free(t);
		return r;
	}
	if (out)
		*out = t;
	return 0;
}

int thoth_loop_add_timer_in(thoth_loop_t *loop, uint64_t delay, uint64_t slack, thoth_timer_fn fn,
			    void *arg, thoth_timer_t **out)
{
	return thoth_loop_add_timer(loop, thoth_clock_now() + delay, slack, fn, arg, out);
}

int thoth_timer_rearm(thoth_loop_t *loop, thoth_timer_t *t, uint64_t deadline, uint64_t slack)
{
	if (t->cancelled)
		return THOTH_E_INVAL;
	timerq_remove(&loop->timers, &t->q);
	int r = timerq_insert(&loop->timers, &t->q, deadline, slack);
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (!r && !loop->dispatching)
		r = rearm(loop);
	return r;
}

void thoth_timer_cancel(thoth_loop_t *loop, thoth_timer_t *t)
{
	if (!t || t->cancelled)
		return;
	timerq_remove(&loop->timers, &t->q);
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (t->firing) {
		t->cancelled = true;    /* freed by fire_timers after its turn */
	} else {
		free(t);
		if (!loop->dispatching)
			(void)rearm(loop);  /* fewer timers: a failed re-arm only wakes early */
	}
}

uint64_t thoth_timer_deadline(const thoth_timer_t *t)
{
	return t->q.deadline;
}

/* Fire every timer whose deadline has passed (woken by the timerfd or by
 * another loop's doorbell). */
static int fire_due(thoth_loop_t *loop)
{
	/* Pop everything due into a local list first: callbacks may add, re-arm
	 * or cancel timers while we walk it. */
	thoth_timer_t *head = NULL, **tail = &head;
	timerq_entry_t *e;
	uint64_t now = thoth_loop_now(loop);
	while ((e = timerq_pop_due(&loop->timers, now))) {
		thoth_timer_t *t = (thoth_timer_t *)e;
		t->firing = true;
		t->next_fire = NULL;
		*tail = t;
		tail = &t->next_fire;
	}
	int ran = 0;
	while (head) {
		thoth_timer_t *t = head;
		head = t->next_fire;
		/* skip one cancelled, or re-armed by an earlier callback of this batch */
		if (!t->cancelled && !timerq_queued(&t->q)) {
			THOTH_TRACE(TIMER, timer_fire, now - t->q.deadline,
				    t->q.latest - t->q.deadline);
			loop->stats.timers_fired++;
			if (ran++)
				loop->stats.timers_coalesced++;
			t->fn(loop, t, t->arg);
		}
		t->firing = false;
		/* Fired timers are done unless the callback re-armed them; a
		 * one-shot that was neither re-armed nor cancelled is freed. */
		if (t->cancelled || !timerq_queued(&t->q))
			free(t);
	}
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	return ran;
}

static int fire_timers(thoth_loop_t *loop)
{
	uint64_t expirations;
	if (read(loop->timerfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return THOTH_E_IO;
	loop->armed_at = 0;             /* a fired timerfd is disarmed */
	loop->synced = false;           /* ... and must be armed again even for the same set */
	return fire_due(loop);
}

/* Read what waits on our doorbell, BELL_DRAIN datagrams at most (payloads
 * truncated, descriptors never installed: no control buffer). */
static void bell_drain(thoth_loop_t *loop)
{
	char b[64];
	for (int i = 0; i < BELL_DRAIN && recv(loop->bell_fd, b, sizeof b, MSG_DONTWAIT) >= 0; i++)
		;
}

/* Another loop woke at an instant inside our window (timerpage.h). */
static int bell_rung(thoth_loop_t *loop)
{
	bell_drain(loop);
	loop->stats.wakeups_rung++;
	return fire_due(loop);
}

/*
 * A ring that fired nothing was bogus: an honest loop rings us only once
 * our posted earliest deadline has passed, so at least that timer is due
 * (short of a race with our own re-post).  Any process of the uid can send
 * to our doorbell, as often as it likes; so after a bogus ring we stop
 * watching it until our own timer fires.  Rings are only ever an
 * optimisation (our timerfd still wakes us at the end of our window), so
 * a muted doorbell costs at most a shared wake-up, and a flood costs us
 * one wake-up per wake-up of our own timer.  What queued meanwhile is read
 * when we listen again, in the same wake-up; the queue is the kernel's
 * (net.unix.max_dgram_qlen datagrams; senders get EAGAIN past it).
 */
static void bell_mute(thoth_loop_t *loop)
{
	if (loop->bell_fd >= 0 && !loop->bell_muted &&
	    loop->be->modify(loop->bs, loop->bell_fd, 0, &bell_tag, &loop->bell_bh) == 0)
		loop->bell_muted = true;
}

static void bell_listen(thoth_loop_t *loop)
{
	if (loop->bell_fd < 0 || !loop->bell_muted)
		return;
	bell_drain(loop);
	if (loop->be->modify(loop->bs, loop->bell_fd, THOTH_LOOP_READ, &bell_tag, &loop->bell_bh) == 0)
		loop->bell_muted = false;
}

/* ---- signals ----------------------------------------------------------------- */

int thoth_loop_add_signal(thoth_loop_t *loop, int signo, thoth_signal_fn fn, void *arg)
{
	if (signo <= 0 || signo >= MAX_SIGNAL || !fn || signo == SIGKILL || signo == SIGSTOP)
		return THOTH_E_INVAL;
	sigset_t mask = loop->sigmask;
	sigaddset(&mask, signo);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return THOTH_E_IO;
	int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return THOTH_E_IO;
	if (loop->sigfd < 0) {
		if (loop->be->add(loop->bs, fd, THOTH_LOOP_READ, &sigfd_tag, &loop->sig_bh)) {
			close(fd);
			return THOTH_E_IO;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->signals[signo].fn = fn;
	loop->signals[signo].arg = arg;
	return 0;
}

static int dispatch_signals(thoth_loop_t *loop)
{
	struct signalfd_siginfo info;
	int ran = 0;
	while (read(loop->sigfd, &info, sizeof info) == (ssize_t)sizeof info) {
		if (info.ssi_signo < MAX_SIGNAL && loop->signals[info.ssi_signo].fn) {
			loop->signals[info.ssi_signo].fn(loop, &info, loop->signals[info.ssi_signo].arg);
			ran++;
		}
	}
	return ran;
}

/* ---- deferred ----------------------------------------------------------------- */

int thoth_loop_defer(thoth_loop_t *loop, thoth_defer_fn fn, void *arg)
{
	if (!fn)
		return THOTH_E_INVAL;
	if (loop->n_deferred == loop->cap_deferred) {
		size_t cap = loop->cap_deferred ? loop->cap_deferred * 2 : 16;
		deferred_t *d = realloc(loop->deferred, cap * sizeof *d);
		if (!d)
			return THOTH_E_NOMEM;
		loop->deferred = d;
		loop->cap_deferred = cap;
	}
	loop->deferred[loop->n_deferred++] = (deferred_t){ fn, arg };
	return 0;
}

/* Run what was deferred before this call; what they defer runs next time. */
static int run_deferred(thoth_loop_t *loop)
{
	size_t n = loop->n_deferred;
	if (!n)
		return 0;
	deferred_t batch[16], *b = n <= 16 ? batch : malloc(n * sizeof *b);
	if (!b)
		return THOTH_E_NOMEM;
	memcpy(b, loop->deferred, n * sizeof *b);
	loop->n_deferred = 0;
	for (size_t i = 0; i < n; i++)
		b[i].fn(loop, b[i].arg);
	if (b != batch)
		free(b);
	return (int)n;
}

/* ---- file I/O ------------------------------------------------------------------ */

/* Inlined into its three callers: as a call with eight arguments it cost
 * ~20 instructions per I/O of moves and saves (callgrind, bench_sched). */
static inline __attribute__((always_inline)) int io_submit(thoth_loop_t *loop, thoth_io_op_t op, int fd,
							   void *buf, size_t len, uint64_t off,
							   thoth_io_fn fn, void *arg)
{
	if (fd < 0 || !fn || (!buf && len) || len > 0x7ffff000u)
		return THOTH_E_INVAL;
	/* A record a completed request left (no malloc per I/O at depth). */
	loop_io_t *io = loop->io_free;
	if (io) {
		loop->io_free = io->next;
	} else if ((io = malloc(sizeof *io))) {
		io->all_next = loop->io_all;
		loop->io_all = io;
	} else {
		return THOTH_E_NOMEM;
	}
	/* Field by field: a compound literal would also zero res and next,
	 * which the completion writes anyway (callgrind: 11 stores per I/O). */
	io->op = op;
	io->fd = fd;
	io->buf = buf;
	io->len = len;
	io->off = off;
	io->fn = fn;
	io->arg = arg;
	loop->stats.io_submitted++;
	if (loop->be->io && loop->be->io(loop->bs, io) == 0)
		return 0;       /* in flight: the record is reachable from io_all only */
	io->next = NULL;
	/* No asynchronous file I/O here (or the ring is full): do it now,
	 * report it on the next iteration like a completion. */
	ssize_t r = 0;
	switch (op) {
	case THOTH_IO_READ: r = pread(fd, buf, len, (off_t)off); break;
	case THOTH_IO_WRITE: r = pwrite(fd, buf, len, (off_t)off); break;
	case THOTH_IO_FSYNC: r = fsync(fd); break;
	case THOTH_IO_FDATASYNC: r = fdatasync(fd); break;
	}
	io->res = r < 0 ? -errno : r;
	*loop->io_done_tail = io;
	loop->io_done_tail = &io->next;
	return 0;
}

int thoth_loop_read(thoth_loop_t *loop, int fd, void *buf, size_t len, uint64_t off, thoth_io_fn fn,
		    void *arg)
{
	return io_submit(loop, THOTH_IO_READ, fd, buf, len, off, fn, arg);
}

int thoth_loop_write(thoth_loop_t *loop, int fd, const void *buf, size_t len, uint64_t off,
		     thoth_io_fn fn, void *arg)
{
	return io_submit(loop, THOTH_IO_WRITE, fd, (void *)buf, len, off, fn, arg);
}

int thoth_loop_fsync(thoth_loop_t *loop, int fd, bool datasync, thoth_io_fn fn, void *arg)
{
	return io_submit(loop, datasync ? THOTH_IO_FDATASYNC : THOTH_IO_FSYNC, fd, NULL, 0, 0, fn, arg);
}

static void io_complete(thoth_loop_t *loop, loop_io_t *io)
{
	loop->stats.io_completed++;
	int64_t res = io->res;
	thoth_io_fn fn = io->fn;
	void *arg = io->arg;
	/* Recycled before the callback, which typically submits the next one. */
	io->next = loop->io_free;
	loop->io_free = io;
	fn(loop, res < 0 ? THOTH_E_IO : res, res < 0 ? (int)-res : 0, arg);
}

/* Completions done inline (epoll backend) before this call. */
static int run_io_done(thoth_loop_t *loop)
{
	loop_io_t *io = loop->io_done;
	loop->io_done = NULL;
	loop->io_done_tail = &loop->io_done;
	int ran = 0;
	while (io) {
		loop_io_t *next = io->next;
		io_complete(loop, io);
		ran++;
		io = next;
	}
	return ran;
}

/* ---- running ------------------------------------------------------------------ */

static inline __attribute__((always_inline)) int run_once(thoth_loop_t *loop, bool block, loop_ev_t *ev)
{
	int ran = run_deferred(loop);
	if (ran < 0)
		return ran;
	int io_ran = run_io_done(loop);
	ran += io_ran;
	int armed = rearm(loop);
	if (armed)
		return armed;
	/* Sleep only if this iteration has nothing done or queued: deferred
	 * work that ran may have changed what the caller is waiting for. */
	bool sleep = block && ran == 0 && loop->n_deferred == 0 && !loop->io_done && !loop->stopped;
	int n = loop->be->wait(loop->bs, ev, MAX_EVENTS, sleep, &loop->stats.backend_syscalls);
	if (n < 0)
		return n;
	loop->now_stale = true;         /* read when first asked (thoth_loop_now) */
	loop->stats.wakeups++;
	/* Why we are awake, for the trace (a scan of at most MAX_EVENTS tags).
	 * Made on every wake-up, not only while the LOOP category is on: the
	 * USDT probe thoth:loop_wakeup has no semaphore, so a bpftrace attached
	 * to it must see every wake-up whatever thothd's trace settings.
	 * Price: ~10 instructions per completion of a deep io_uring batch. */
	unsigned reasons = (!sleep && ran > 0) ? THOTH_LOOP_WAKE_DEFERRED : 0;
	for (int i = 0; i < n; i++)
		reasons |= ev[i].ptr == &bell_tag      ? THOTH_LOOP_WAKE_TIMER | THOTH_LOOP_WAKE_RUNG
			 : ev[i].ptr == &timerfd_tag ? THOTH_LOOP_WAKE_TIMER
			 : ev[i].ptr == &sigfd_tag   ? THOTH_LOOP_WAKE_SIGNAL
						     : THOTH_LOOP_WAKE_FD;
	if (reasons)
		THOTH_TRACE(LOOP, loop_wakeup, reasons, n);
	bool saw_fd = false, saw_timer = false, saw_signal = false, saw_io = false;
	bool rang_own_timer = false, bogus_ring = false;
	/* A nested run (a callback calling thoth_loop_run_once) must leave
	 * the removed sources alone: the outer batch, still being walked,
	 * may name them, and a freed inline slot is the next source added. */
	bool outer = !loop->dispatching;
	loop->dispatching = true;
	for (int i = 0; i < n; i++) {
		void *p = ev[i].ptr;
		if (ev[i].io) {
			saw_io = true;
			io_complete(loop, p);
			ran++;
		} else if (p == &timerfd_tag) {
			saw_timer = rang_own_timer = true;
			int r = fire_timers(loop);
			if (r > 0)
				ran += r;
		} else if (p == &bell_tag) {
			saw_timer = true;
			int r = bell_rung(loop);
			if (r > 0)
				ran += r;
			else if (r == 0)
				bogus_ring = true;
		} else if (p == &sigfd_tag) {
			saw_signal = true;
			ran += dispatch_signals(loop);
		} else {
			thoth_source_t *s = p;
			if (s->dead)
				continue;
			saw_fd = true;
			s->fn(loop, s, s->fd, ev[i].events, s->arg);
			ran++;
		}
	}
	if (outer) {
		loop->dispatching = false;
		free_dead(loop);
	}
	if (rang_own_timer) {
		bell_listen(loop);
		ring_due_sleepers(loop);
	} else if (bogus_ring) {
		bell_mute(loop);
	}
	int rearmed = rearm(loop);
	if (rearmed)
		return rearmed;
	loop->stats.wakeups_fd += saw_fd;
	loop->stats.wakeups_timer += saw_timer;
	loop->stats.wakeups_signal += saw_signal;
	loop->stats.wakeups_io += saw_io || io_ran > 0;
	if (n == 0 && !sleep && ran > 0)
		loop->stats.wakeups_deferred++;
	return ran;
}

/* A call from a callback of an outer wake-up (a synchronous pool call
 * inside a handler) must not overwrite the events the outer one is still
 * walking: it takes its own array, on the stack. */
static __attribute__((noinline)) int run_nested(thoth_loop_t *loop, bool block)
{
	loop_ev_t ev[MAX_EVENTS];
	return run_once(loop, block, ev);
}

THOTH_HOT_SERVE int thoth_loop_run_once(thoth_loop_t *loop, bool block)
{
	loop->depth++;
	int r = loop->depth == 1 ? run_once(loop, block, loop->ev) : run_nested(loop, block);
	loop->depth--;
	return r;
}

THOTH_HOT_SERVE int thoth_loop_run(thoth_loop_t *loop)
{
	loop->stopped = false;
	while (!loop->stopped) {
		int r = thoth_loop_run_once(loop, true);
		if (r < 0)
			return r;
	}
	return 0;
}

void thoth_loop_stop(thoth_loop_t *loop)
{
	loop->stopped = true;
}

void thoth_loop_stats(const thoth_loop_t *loop, thoth_loop_stats_t *out)
{
	*out = loop->stats;
}

uint64_t thoth_loop_quiet_until(const thoth_loop_t *loop)
{
	if (loop->n_deferred || loop->io_done || loop->stopped)
		return 0;
	if (!loop->timers.n)
		return UINT64_MAX;
	uint64_t due = timerq_min_deadline(&loop->timers);
	return due ? due : 1;
}

uint64_t thoth_loop_armed_at(const thoth_loop_t *loop)
{
	struct itimerspec its;
	if (timerfd_gettime(loop->timerfd, &its) < 0)
		return 0;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		return 0;
	return loop->armed_at;
}
