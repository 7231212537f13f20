/*
 * chan_shm.c - rings, pool and wake-ups of a channel, on one side's view of
 * the shared memory (chan_shm.h; the argument for every barrier is in
 * docs/IPC.md, "Memory ordering").
 *
 * Rules kept throughout:
 *  - each index has exactly one writer, which keeps the true value in private
 *    memory and only publishes it (release store); the other side loads it
 *    once (acquire) and checks it before using it;
 *  - anything else read from shared memory (slot descriptors, release
 *    entries) is read once into a local and validated against the private
 *    geometry, never against values stored in shared memory;
 *  - "am I asleep?" flags and the indices follow the store-fence-load
 *    pattern on both sides, so a wake-up is never lost and never needed
 *    while the peer is known to be awake.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "chan_shm.h"
#include "moderation.h"
#include "thoth/hot.h"
#include "thoth/loop.h"
#include "ipc_trace.h"

/* Every message a channel carries is an IPC trace event (and a USDT probe:
 * thoth:chan_send / thoth:chan_recv), inline or zero-copy, with the service
 * instance's pid as service_id and, on receive, the queueing delay.  TS is
 * the trace-clock reading the event happened at, shared with the slot's
 * stamp: one clock reading per traced message on each side. */
#define TRACE_CHAN(e, name, dir, msg, transport, ts, queue_ticks) \
	THOTH_TRACE_WIRE_MSG_Q(name, dir, (e)->service_pid, msg, transport, ts, queue_ticks)

_Static_assert(sizeof(chan_ctl_t) <= CHAN_PAGE, "control page overflows");
_Static_assert(THOTH_CHAN_INLINE_MAX % 8 == 0, "inline area must keep messages 8-aligned");
_Static_assert(sizeof(thoth_mod_t) <= sizeof(((chan_mod_end_t *)0)->policy), "moderation policy state overflows");
_Static_assert((int)THOTH_CHAN_MOD_ADAPTIVE == (int)THOTH_MOD_ADAPTIVE && (int)THOTH_CHAN_MOD_DIM == (int)THOTH_MOD_DIM &&
	       (int)THOTH_CHAN_MOD_FIXED == (int)THOTH_MOD_FIXED && THOTH_CHAN_MOD_MAX_US == THOTH_MOD_MAX_US &&
	       THOTH_CHAN_MOD_MAX_MSGS == THOTH_MOD_MAX_MSGS, "channel and policy moderation constants differ");

enum { BUF_FREE = 0, BUF_ALLOCATED = 1, BUF_LENT = 2 };

/* The hot groups' anchors (thoth/hot.h): empty functions alone in
 * sections that sort before the client group and before the shared one,
 * aligned to a page, so that each of those groups starts at a page
 * boundary whatever lies before it (the PLT's size, .text.hot, the
 * program's generated code).  The client's part (its group, then the
 * shared one) and the service's (the shared group, then its own) then
 * each span the fewest pages their sizes allow, where a group that starts
 * mid-page costs a side one page more (docs/SCHED.md, stop 35); the cost
 * is the padding, under two pages of file.  Never called.
 *
 * `used` keeps them in the object, not in a program's static link with
 * --gc-sections, which drops a section nothing refers to: `retain`
 * (SHF_GNU_RETAIN) keeps them there too, where the compiler has it. */
#if defined(__has_attribute)
#if __has_attribute(retain)
#define HOT_ANCHOR_RETAIN retain,
#endif
#endif
#ifndef HOT_ANCHOR_RETAIN
#define HOT_ANCHOR_RETAIN
#endif
__attribute__((section(".text.sorted.thoth_0"), aligned(4096), used, HOT_ANCHOR_RETAIN noinline))
static void hot_anchor_client(void)
{
}

__attribute__((section(".text.sorted.thoth_1z"), aligned(4096), used, HOT_ANCHOR_RETAIN noinline))
static void hot_anchor_shared(void)
{
}

static void presence_publish(chan_end_t *e, bool running);

#define SPIN_MIN_NS 1000u
/* One wait in this many spins the whole spin_max while the budget has
 * shrunk (chan_spin): the way out of the sleeping trap. */
#define SPIN_PROBE 16u
/* Polls of a receiver's tag per pause while spinning (chan_spin). */
#define SPIN_POLLS 8u
#define SLEEP_SLICE_NS (10u * 1000000u)
/* chan_nap: no nap shorter than this (a learnt budget this small means the
 * peer answers slowly: the loop's own wait is the right one). */
#define NAP_MIN_NS 4000u   /* liveness is re-checked this often while blocked */
/* chan_nap's epochs (nap_way): each run's first NAP_SETTLE cycles are
 * not timed (the way of the wait before them still shows). */
#define NAP_SETTLE (CHAN_NAP_RUN - CHAN_NAP_SAMPLES)
enum { NAP_WAY_NAP = 1, NAP_WAY_LOOP = 2, NAP_WAY_TIMED = 4 };   /* chan_end_t.nap_cycle_way */

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static size_t page_up(size_t n) { return (n + CHAN_PAGE - 1) & ~(size_t)(CHAN_PAGE - 1); }

static uint32_t next_pow2(uint32_t v)
{
	uint32_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

/* Shared memory the peer may write concurrently: one relaxed atomic load. */
static inline uint32_t ld32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED); }
static inline void st32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED); }
static inline uint32_t ld32_acq(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void st32_rel(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ---- limits and layout --------------------------------------------------- */

static int limits_check(const thoth_chan_limits_t *l, char *why, size_t why_len)
{
	if (!is_pow2(l->slots) || l->slots < 2 || l->slots > 65536) {
		snprintf(why, why_len, "slots = %u: must be a power of two from 2 to 65536", l->slots);
		return THOTH_E_INVAL;
	}
	if (!is_pow2(l->pool_buf_size) || l->pool_buf_size < 4096 || l->pool_buf_size > (64u << 20)) {
		snprintf(why, why_len, "pool_buf_size = %u: must be a power of two from 4096 to 64 MiB",
			 l->pool_buf_size);
		return THOTH_E_INVAL;
	}
	if (l->pool_bufs > 65536) {
		snprintf(why, why_len, "pool_bufs = %u: at most 65536", l->pool_bufs);
		return THOTH_E_INVAL;
	}
	chan_layout_t lay;
	if (chan_layout_compute(l, &lay) || lay.size > THOTH_CHAN_MAX_SHM) {
		snprintf(why, why_len, "%u slots and %u pool buffers of %u bytes need %llu MiB of shared memory, more than the %llu MiB limit",
			 l->slots, l->pool_bufs, l->pool_buf_size,
			 (unsigned long long)(2ull * l->pool_bufs * l->pool_buf_size >> 20),
			 (unsigned long long)(THOTH_CHAN_MAX_SHM >> 20));
		return THOTH_E_INVAL;
	}
	return 0;
}

int thoth_chan_limits_resolve(thoth_chan_limits_t *l, char *why, size_t why_len)
{
	char scratch[8];
	if (!why) {
		why = scratch;
		why_len = sizeof scratch;
	}
	if (!l->slots)
		l->slots = THOTH_CHAN_DEFAULT_SLOTS;
	if (!l->pool_buf_size)
		l->pool_buf_size = THOTH_CHAN_DEFAULT_BUF_SIZE;
	if (!l->pool_bufs)
		l->pool_bufs = THOTH_CHAN_DEFAULT_BUFS;
	return limits_check(l, why, why_len);
}

size_t thoth_chan_max_message(const thoth_chan_limits_t *l)
{
	size_t pool = (size_t)l->pool_bufs * l->pool_buf_size;
	size_t wire = (size_t)THOTH_WIRE_MAX_BODY + THOTH_WIRE_HEADER_SIZE;
	if (pool < THOTH_CHAN_INLINE_MAX)
		return THOTH_CHAN_INLINE_MAX;
	return pool < wire ? pool : wire;
}

int chan_layout_compute(const thoth_chan_limits_t *lim, chan_layout_t *out)
{
	if (!is_pow2(lim->slots) || !is_pow2(lim->pool_buf_size) || lim->pool_buf_size < CHAN_PAGE ||
	    lim->slots > 65536 || lim->pool_bufs > 65536 || lim->pool_buf_size > (64u << 20))
		return THOTH_E_INVAL;
	memset(out, 0, sizeof *out);
	out->lim = *lim;
	out->rel_slots = next_pow2(lim->pool_bufs ? lim->pool_bufs : 1);
	size_t off = CHAN_PAGE;
	for (int d = 0; d < 2; d++) {
		out->ring_off[d] = off;
		off = page_up(off + (size_t)lim->slots * THOTH_CHAN_SLOT_SIZE);
	}
	for (int d = 0; d < 2; d++) {
		out->rel_off[d] = off;
		off = page_up(off + (size_t)out->rel_slots * sizeof(uint32_t));
	}
	for (int d = 0; d < 2; d++) {
		out->pool_off[d] = off;
		off += (size_t)lim->pool_bufs * lim->pool_buf_size;
	}
	out->size = off;
	return 0;
}

void chan_shm_format(uint8_t *base, const chan_layout_t *lay)
{
	chan_ctl_t *c = (chan_ctl_t *)base;
	c->magic = CHAN_MAGIC;
	c->layout = CHAN_LAYOUT;
	c->slots = lay->lim.slots;
	c->pool_buf_size = lay->lim.pool_buf_size;
	c->pool_bufs = lay->lim.pool_bufs;
	c->rel_slots = lay->rel_slots;
	c->size = lay->size;
}

void chan_shm_want_stamps(uint8_t *base, int d)
{
	((chan_ctl_t *)base)->stamps[d] = CHAN_STAMPS_MONOTONIC;
}

int chan_stamp_sent_ns(uint32_t stamp, uint64_t now_ns, uint64_t *sent_ns)
{
	if ((stamp & (CHAN_STAMP_SET | CHAN_STAMP_TSC)) != CHAN_STAMP_SET)
		return THOTH_E_NOT_FOUND;
	uint64_t now = now_ns & ~(uint64_t)3;
	uint32_t behind = ((uint32_t)now & ~3u) - (stamp & ~3u);   /* mod 2^32 */
	if (behind <= INT32_MAX)                                  /* sent before now */
		*sent_ns = now >= behind ? now - behind : 0;
	else                                                      /* a stamp from the future */
		*sent_ns = now + (uint64_t)(UINT32_MAX - behind) + 1u;
	return 0;
}

uint8_t *chan_shm_map(int fd, size_t size)
{
	uint8_t *area = mmap(NULL, size + CHAN_PAGE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (area == MAP_FAILED)
		return NULL;
	if (mmap(area, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
		munmap(area, size + CHAN_PAGE);
		return NULL;
	}
	return area;
}

void chan_shm_unmap(uint8_t *base, size_t size)
{
	if (base)
		munmap(base, size + CHAN_PAGE);
}

/* ---- one side ------------------------------------------------------------ */

int chan_fail(chan_end_t *e, int err, const char *fmt, ...)
{
	if (!e->err) {
		e->err = err;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->why, sizeof e->why, fmt, ap);
		va_end(ap);
	}
	return e->err;
}

int chan_end_init(chan_end_t *e, uint8_t *base, const chan_layout_t *lay, int side)
{
	memset(e, 0, sizeof *e);
	e->base = base;
	e->lay = *lay;
	e->ctl = (chan_ctl_t *)base;
	e->side = side;
	e->tx = side == CHAN_CLIENT ? CHAN_REQ : CHAN_RESP;
	e->rx = side == CHAN_CLIENT ? CHAN_RESP : CHAN_REQ;
	e->txd = &e->ctl->dir[e->tx];
	e->rxd = &e->ctl->dir[e->rx];
	e->tx_ring = base + lay->ring_off[e->tx];
	e->rx_ring = base + lay->ring_off[e->rx];
	e->slot_mask = lay->lim.slots - 1;
	e->sock = -1;
	e->wait = THOTH_CHAN_SPIN;
	e->spin_max = e->spin_budget = THOTH_CHAN_DEFAULT_SPIN_NS;
	e->nap_ok = true;
	uint32_t n = lay->lim.pool_bufs;
	e->buf_state = calloc(n ? n : 1, 1);
	e->buf_run = calloc(n ? n : 1, sizeof *e->buf_run);
	if (!e->buf_state || !e->buf_run) {
		chan_end_fini(e);
		return THOTH_E_NOMEM;
	}
	e->pool_free = n;

	const chan_ctl_t *c = e->ctl;
	uint32_t magic = ld32(&c->magic), layout = ld32(&c->layout);
	uint32_t slots = ld32(&c->slots), bsz = ld32(&c->pool_buf_size), bufs = ld32(&c->pool_bufs);
	if (magic != CHAN_MAGIC || layout != CHAN_LAYOUT)
		return chan_fail(e, THOTH_E_CORRUPT, "control page has magic 0x%08x layout %u, expected 0x%08x layout %u",
				 magic, layout, CHAN_MAGIC, CHAN_LAYOUT);
	if (slots != lay->lim.slots || bsz != lay->lim.pool_buf_size || bufs != lay->lim.pool_bufs)
		return chan_fail(e, THOTH_E_CORRUPT,
				 "control page describes %u slots, %u buffers of %u bytes; the handshake agreed %u, %u of %u",
				 slots, bufs, bsz, lay->lim.slots, lay->lim.pool_bufs, lay->lim.pool_buf_size);
	/* Read once: the consumer of what we send asked before sharing the
	 * page (a wish, not geometry: any other value is "no"). */
	e->stamp_tx = ld32(&c->stamps[e->tx]) == CHAN_STAMPS_MONOTONIC;
	e->stamp_rx = ld32(&c->stamps[e->rx]) == CHAN_STAMPS_MONOTONIC;
	presence_publish(e, true);      /* the peer learns our CPU before our first wait */
	return 0;
}

void chan_end_fini(chan_end_t *e)
{
	free(e->buf_state);
	free(e->buf_run);
	e->buf_state = NULL;
	e->buf_run = NULL;
}

static uint8_t *slot_at(const chan_end_t *e, int d, uint32_t idx)
{
	return chan_slot_at(e, d, idx);
}

static uint8_t *pool_at(const chan_end_t *e, int d, uint32_t buf)
{
	return e->base + e->lay.pool_off[d] + (size_t)buf * e->lay.lim.pool_buf_size;
}

static uint32_t *rel_at(const chan_end_t *e, int d, uint32_t idx)
{
	return (uint32_t *)(e->base + e->lay.rel_off[d]) + (idx & (e->lay.rel_slots - 1));
}

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/*
 * Wake the peer.  A futex word lives in the shared page: FUTEX_WAKE never
 * blocks whatever the peer wrote there.  A peer that waits on an event loop
 * is rung with one byte on OUR end of the channel's socket: that file
 * description is ours alone (the peer cannot clear its O_NONBLOCK, as it
 * could on a shared eventfd), and MSG_DONTWAIT makes this one call
 * non-blocking whatever the flags say.  EAGAIN means the socket already
 * holds unread doorbells: a level-triggered peer is awake enough; an
 * edge-triggered one (CHAN_BELL_ONCE) leaves at most CHAN_BELL_DRAIN_EVERY
 * + CHAN_BELL_SLACK unread, which our socket holds (chan_client.c,
 * bell_room), so we never meet it there.  docs/IPC.md, "Wake-ups a peer
 * cannot block", "Edge-triggered doorbells".
 */
static void wake_peer(chan_end_t *e, _Atomic uint32_t *word, uint32_t waiting)
{
	e->st.wakes++;
	e->rang = true;
	/* A loop-served peer napping on the futex word (chan_nap) says so
	 * with CHAN_WAITING_FUTEX: one FUTEX_WAKE instead of a doorbell it
	 * would have to wait for in epoll_wait and read back.  A peer that
	 * lies only changes how it is itself woken. */
	if (e->peer_bell && !(waiting == CHAN_WAITING_FUTEX && word)) {
		ssize_t r = send(e->sock, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)r;        /* EAGAIN: doorbells are pending; EPIPE: the liveness check sees it */
	} else if (word) {
		futex_wake(word);
	}
}

/*
 * Producer, after the fence that follows what we published: wake the peer
 * if FLAG says it may sleep.  Where we ring with a doorbell byte and the
 * peer re-arms after reading doorbells back (e->claim: a service that
 * advertised CHAN_BELL_REARMS, or a loop_wakeup client, which reads back
 * before it arms), a flag of 1 is claimed (compare-exchange 1 -> 0) and
 * only the claim rings, so each sleep of the peer (each store of 1) costs
 * at most one doorbell byte however many messages follow it: what lets a
 * service leave our doorbells unread and count them (CHAN_BELL_ONCE).
 * The plain load first keeps the locked instruction off the path where
 * the peer is awake.  Why the claim loses no wake-up: the compare-exchange reads
 * the flag as the load did, after our fence (the Dekker pair of "Memory
 * ordering", point 4); the peer clears its flag only when awake and
 * re-arms with store, fence, re-check.  The claim may be for a message
 * the peer already took by its tag (we had not stored head yet) and so end
 * the sleep it armed for the next one: the byte stays in the socket until
 * read, and a peer that reads doorbells back must re-arm, not only
 * re-check, before it sleeps again (chan_server.c, on_sock's late drain;
 * docs/IPC.md) -- what an older service does not (no CHAN_BELL_REARMS:
 * no claim, the flag stays set, as before the claim).
 * A futex wake is not a byte that stays around: a stale FUTEX_WAKE that
 * lands before the peer's FUTEX_WAIT wakes nothing, so a flag whose wake
 * goes to a futex (a nap's CHAN_WAITING_FUTEX, a peer without a bell) is
 * never claimed: it stays set and the next message wakes the sleeper.
 */
THOTH_HOT static void ring_if_waiting(chan_end_t *e, _Atomic uint32_t *flag, _Atomic uint32_t *word, bool nap_word)
{
	uint32_t waiting = atomic_load_explicit(flag, memory_order_relaxed);
	if (!waiting)
		return;
	if (e->claim && waiting == CHAN_WAITING_BELL) {
		if (atomic_compare_exchange_strong_explicit(flag, &waiting, 0, memory_order_relaxed,
							    memory_order_relaxed)) {
			wake_peer(e, word, CHAN_WAITING_BELL);
			return;
		}
		if (!waiting)
			return;         /* the peer woke and disarmed: awake */
		/* Changed under us (a nap began: 2): woken as it says, unclaimed. */
	}
	wake_peer(e, word, nap_word ? waiting : CHAN_WAITING_BELL);
}

THOTH_HOT_SERVE int chan_bell_drain(chan_end_t *e)
{
	if (e->sock < 0)
		return 0;
	char bells[CHAN_BELL_READ];
	/* One read: a peer ringing without pause cannot keep us here; what is
	 * left keeps the socket readable and the loop comes back (level
	 * triggered), or is counted against the peer's promise (edge
	 * triggered: the caller compares bell_read with bell_arms_read). */
	ssize_t r = recv(e->sock, bells, sizeof bells, MSG_DONTWAIT);
	e->bell_arms_read = e->bell_arms;
	e->bell_arms = 0;
	e->bell_read = r > 0 ? (uint32_t)r : 0;
	/* Not sticky: what the peer queued before it went may still be
	 * served (a service answers a dead client's oneway messages); the
	 * liveness check makes it sticky when the caller asks. */
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return THOTH_E_PEER_GONE;
	return 0;
}

void chan_bell_promise(chan_end_t *e)
{
	__atomic_store_n(&e->ctl->bell[e->side], CHAN_BELL_ONCE, __ATOMIC_RELAXED);
}

bool chan_bell_promised(const chan_end_t *e)
{
	return __atomic_load_n(&e->ctl->bell[e->side ^ 1], __ATOMIC_RELAXED) == CHAN_BELL_ONCE;
}

void chan_bell_advertise(chan_end_t *e)
{
	__atomic_store_n(&e->ctl->bell[e->side], CHAN_BELL_REARMS, __ATOMIC_RELAXED);
	e->claim = e->peer_bell;
}

bool chan_bell_attach(chan_end_t *e)
{
	e->claim = e->peer_bell &&
		   __atomic_load_n(&e->ctl->bell[e->side ^ 1], __ATOMIC_RELAXED) == CHAN_BELL_REARMS;
	return e->claim;
}

static uint32_t runs_of(const chan_end_t *e, size_t len)
{
	return (uint32_t)((len + e->lay.lim.pool_buf_size - 1) / e->lay.lim.pool_buf_size);
}

/* Take back the buffers the peer released (our tx direction's release ring). */
static int drain_releases(chan_end_t *e)
{
	chan_dir_t *d = &e->ctl->dir[e->tx];
	uint32_t head = atomic_load_explicit(&d->rel_head, memory_order_acquire);
	uint32_t avail = head - e->rel_pop;
	if (avail == 0)
		return 0;
	if (avail > e->lay.rel_slots)
		return chan_fail(e, THOTH_E_CORRUPT, "release ring index %u is %u entries ahead of %u (ring holds %u)",
				 head, avail, e->rel_pop, e->lay.rel_slots);
	while (e->rel_pop != head) {
		uint32_t b = ld32(rel_at(e, e->tx, e->rel_pop));
		if (b >= e->lay.lim.pool_bufs || e->buf_state[b] != BUF_LENT || !e->buf_run[b])
			return chan_fail(e, THOTH_E_CORRUPT,
					 "peer released pool buffer %u, which is not lent to it (bad index or released twice)", b);
		uint32_t n = e->buf_run[b];
		memset(e->buf_state + b, BUF_FREE, n);
		e->buf_run[b] = 0;
		e->pool_free += n;
		e->st.pool_in_use -= n;
		e->rel_pop++;
	}
	atomic_store_explicit(&d->rel_tail, e->rel_pop, memory_order_release);
	return 0;
}

/* Lowest run of N free buffers, or -1.  First fit from the bottom keeps
 * reusing the same few buffers, whose pages are mapped and cache-hot on both
 * sides; cycling through the pool would fault and miss on every message. */
static int64_t find_run(const chan_end_t *e, uint32_t n)
{
	uint32_t total = e->lay.lim.pool_bufs, run = 0;
	if (n == 0 || n > e->pool_free)
		return -1;
	for (uint32_t i = 0; i < total; i++) {
		run = e->buf_state[i] == BUF_FREE ? run + 1 : 0;
		if (run == n)
			return (int64_t)(i + 1 - n);
	}
	return -1;
}

/* Free slots in our tx ring (or a CORRUPT error when the peer's tail is
 * impossible).  From the tail last seen while that says there is room: the
 * slots it freed stay free (acquire then), and not loading the peer's tail
 * per message keeps its cache line on the consumer's CPU (a transfer and a
 * fence stall less per message each way).  Reloaded and checked when the
 * ring looks full: a hostile tail is refused when it is used, as before. */
static int tx_space_reload(chan_end_t *e, uint32_t *space) __attribute__((noinline));

static inline int tx_space(chan_end_t *e, uint32_t *space)
{
	uint32_t used = e->tx_head - e->tx_tail_seen;
	if (used < e->lay.lim.slots) {
		*space = e->lay.lim.slots - used;
		return 0;
	}
	return tx_space_reload(e, space);
}

/* The ring looks full from the tail last seen: load and check the peer's. */
THOTH_HOT static int tx_space_reload(chan_end_t *e, uint32_t *space)
{
	uint32_t tail = atomic_load_explicit(&e->ctl->dir[e->tx].tail, memory_order_acquire);
	uint32_t used = e->tx_head - tail;
	if (used > e->lay.lim.slots)
		return chan_fail(e, THOTH_E_CORRUPT, "peer's tail index %u is not within the %u slots behind our head %u",
				 tail, e->lay.lim.slots, e->tx_head);
	e->tx_tail_seen = tail;
	*space = e->lay.lim.slots - used;
	return 0;
}

static int tx_slot_reload(chan_end_t *e) __attribute__((noinline));

/* 0 when the next tx slot is free, THOTH_E_AGAIN when the ring is full, or
 * the error that closed the channel.  The common answer (a free slot by
 * the tail last seen) takes no stack frame; the reload and its check of
 * the peer's tail are tx_slot_reload's. */
static inline int tx_slot_free(chan_end_t *e)
{
	if (e->tx_head - e->tx_tail_seen < e->lay.lim.slots)
		return 0;
	return tx_slot_reload(e);
}

static int tx_slot_reload(chan_end_t *e)
{
	uint32_t space = 0;
	int r = tx_space_reload(e, &space);
	return r ? r : space ? 0 : THOTH_E_AGAIN;
}

static int alloc_pool(chan_end_t *e, size_t len, uint8_t **buf) __attribute__((noinline));

/* The inline case is every small call's: kept apart from the pool's
 * bookkeeping (alloc_pool), so it pays for no registers that needs. */
THOTH_HOT int chan_try_alloc(chan_end_t *e, size_t len, uint8_t **buf)
{
	if (e->err)
		return e->err;
	if (len < THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_INVAL;
	if (len <= THOTH_CHAN_INLINE_MAX) {
		if (e->inline_pending)
			return THOTH_E_BUSY;
		int r = tx_slot_free(e);
		if (r)
			return r;
		*buf = e->inline_pending = e->tx_stage;
		return 0;
	}
	return alloc_pool(e, len, buf);
}

THOTH_HOT static int alloc_pool(chan_end_t *e, size_t len, uint8_t **buf)
{
	if (len > thoth_chan_max_message(&e->lay.lim) || !e->lay.lim.pool_bufs)
		return THOTH_E_TOO_LARGE;
	int r = drain_releases(e);
	if (r)
		return r;
	uint32_t n = runs_of(e, len);
	int64_t first = find_run(e, n);
	if (first < 0)
		return THOTH_E_AGAIN;
	memset(e->buf_state + first, BUF_ALLOCATED, n);
	e->buf_run[first] = n;
	e->pool_free -= n;
	e->st.pool_in_use += n;
	*buf = pool_at(e, e->tx, (uint32_t)first);
	return 0;
}

/* Index of the pool run starting at BUF (allocated by us), or -1. */
static int64_t own_run(const chan_end_t *e, const uint8_t *buf, uint8_t state)
{
	const uint8_t *pool = pool_at(e, e->tx, 0);
	size_t bytes = (size_t)e->lay.lim.pool_bufs * e->lay.lim.pool_buf_size;
	if (buf < pool || buf >= pool + bytes)
		return -1;
	size_t off = (size_t)(buf - pool);
	if (off % e->lay.lim.pool_buf_size)
		return -1;
	uint32_t b = (uint32_t)(off / e->lay.lim.pool_buf_size);
	if (e->buf_state[b] != state || !e->buf_run[b])
		return -1;
	return b;
}

/*
 * Slot word 3 carries the send time while IPC tracing is on, for the
 * receiver's queueing delay: the low 32 bits of the sender's trace clock
 * (thoth_trace_now()) with bit 0 set (stamped) and bit 1 the clock kind, so
 * a receiver on another clock kind ignores it.  0 = not stamped.  The ticks
 * wrap every 2^32 (about 1.4 s of TSC at 3 GHz, 4.3 s of ns): longer delays
 * alias, which is harmless for a diagnostic figure.
 */
static inline uint32_t send_stamp(uint64_t ts)
{
	return ts ? ((uint32_t)ts & ~3u) | thoth_trace_clock_kind << 1 | 1u : 0;
}

/* The stamp of a message whose consumer asked for send stamps: CLOCK_MONOTONIC
 * ns, shared with the tracer's reading TS when that is the same clock (one
 * clock reading per message), else read here. */
THOTH_HOT static __attribute__((noinline)) uint32_t mono_stamp(uint64_t ts)
{
	uint64_t ns = ts && thoth_trace_clock_kind == THOTH_TRACE_CLOCK_MONOTONIC ? ts : thoth_clock_now();
	return ((uint32_t)ns & ~3u) | CHAN_STAMP_SET;
}

/* Ticks from STAMP to NOW (a thoth_trace_now()), 0 when not comparable. */
static inline uint32_t queue_ticks(uint32_t stamp, uint64_t now)
{
	if ((stamp & 3u) != (thoth_trace_clock_kind << 1 | 1u))
		return 0;
	return ((uint32_t)now & ~3u) - (stamp & ~3u);
}

/* The trace-clock time of a traced message event, 0 while IPC is off. */
static inline uint64_t trace_time(void)
{
	return THOTH_TRACE_IS_ON(IPC) ? thoth_trace_now() : 0;
}

/* ---- moderation (docs/PM.md, "Interrupt moderation (PM-3)") ------------- */

#define MOD_MSGS_MASK 0xffffu

THOTH_HOT bool chan_mod_may_defer(uint32_t profile, uint64_t wake_by, uint32_t backlog, uint64_t now)
{
	uint32_t n = profile & MOD_MSGS_MASK;
	if (n > THOTH_CHAN_MOD_MAX_MSGS)
		n = THOTH_CHAN_MOD_MAX_MSGS;
	if (n <= 1 || backlog >= n)
		return false;                   /* unmoderated, or the batch is full */
	if (!wake_by || wake_by <= now)
		return false;                   /* it waits to be rung, or it is late */
	/* A deadline further than the cap is a lie (or a bug): ring. */
	return wake_by - now <= (uint64_t)THOTH_CHAN_MOD_MAX_US * 1000u;
}

/* Producer, the consumer's waiting flag just seen set: may this wake-up
 * wait?  Reads the consumer's words after an acquire fence, so a flag set
 * for a sleep comes with that sleep's deadline (chan_mod_sleep). */
static bool mod_defer(chan_end_t *e)
{
	atomic_thread_fence(memory_order_acquire);
	uint32_t prof = atomic_load_explicit(&e->ctl->mod[e->tx].profile, memory_order_relaxed);
	if ((prof & MOD_MSGS_MASK) <= 1)
		return false;                   /* the common case reads no clock */
	uint64_t by = atomic_load_explicit(&e->ctl->mod[e->tx].wake_by, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&e->ctl->dir[e->tx].tail, memory_order_acquire);
	return chan_mod_may_defer(prof, by, e->tx_head - tail, thoth_clock_now());
}

int chan_mod_config(chan_end_t *e, const thoth_chan_moderation_cfg_t *cfg)
{
	thoth_mod_config_t mc = { .kind = THOTH_MOD_NONE };
	if (cfg) {
		mc.kind = (thoth_mod_kind_t)cfg->policy;
		mc.fixed = (thoth_mod_profile_t){ cfg->fixed_msgs, cfg->fixed_us };
	}
	thoth_mod_t m;
	int r = thoth_mod_init(&m, &mc);
	if (r)
		return r;
	memcpy(e->mod.policy, &m, sizeof m);
	e->mod.on = mc.kind != THOTH_MOD_NONE;
	return 0;
}

THOTH_HOT uint64_t chan_mod_sleep(chan_end_t *e)
{
	if (!e->mod.on)
		return 0;
	thoth_mod_t *m = (thoth_mod_t *)(void *)e->mod.policy;
	uint64_t now = thoth_clock_now();
	thoth_mod_sample_t s = { .time_ns = now, .events = e->st.mod_wakeups, .msgs = e->st.received,
				 .bytes = e->mod.rx_bytes };
	thoth_mod_update(m, &s);
	thoth_mod_profile_t p = thoth_mod_clamp(thoth_mod_profile(m));
	uint64_t by = 0;
	if (e->mod.woke_by_timer && e->st.received == e->mod.rx_at_wake) {
		/* Our timer found nothing: the producer went quiet.  Sleep
		 * until rung (NAPI re-enabling its interrupt), so an idle
		 * channel costs one timer wake-up, not one every T. */
		e->st.mod_empty_wakeups++;
	} else if (thoth_mod_profile_defers(p)) {
		by = now + (uint64_t)p.max_us * 1000u;
	}
	e->mod.woke_by_timer = false;
	e->st.mod_msgs = p.max_msgs;
	e->st.mod_us = p.max_us;
	atomic_store_explicit(&e->ctl->mod[e->rx].profile, p.max_msgs | p.max_us << 16, memory_order_relaxed);
	atomic_store_explicit(&e->ctl->mod[e->rx].wake_by, by, memory_order_relaxed);
	/* Before the waiting flag (chan_arm stores it next): a producer that
	 * sees the flag sees these. */
	atomic_thread_fence(memory_order_release);
	e->mod.wake_by = by;
	e->mod.timed = by != 0;
	return by;
}

THOTH_HOT void chan_mod_woke(chan_end_t *e, bool by_timer)
{
	if (!e->mod.on)
		return;
	e->st.mod_wakeups++;
	e->st.mod_timer_wakeups += by_timer;
	e->mod.woke_by_timer = by_timer;
	e->mod.rx_at_wake = e->st.received;
}

THOTH_HOT void chan_mod_flush(chan_end_t *e)
{
	if (!e->mod.owed)
		return;
	e->mod.owed = false;
	chan_dir_t *d = &e->ctl->dir[e->tx];
	atomic_thread_fence(memory_order_seq_cst);
	ring_if_waiting(e, &d->cons_waiting, &d->head, true);
}

/* Publish the message in SLOT (everything but its tag written) of kind KIND:
 * the tag (release: the consumer polls it), then head (release: a sleeping
 * consumer's futex word, and what its checks compare with). */
static int publish_wakes(chan_end_t *e, bool bell_tail, unsigned flags) __attribute__((noinline));

THOTH_HOT static int publish(chan_end_t *e, uint8_t *slot, uint32_t kind, unsigned flags)
{
	chan_dir_t *d = e->txd;
	st32_rel(slot, chan_slot_tag(kind, e->tx_head));
	e->tx_head++;
	atomic_store_explicit(&d->head, e->tx_head, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	/* The fence also orders the tail our last receive stored before this
	 * load: what that receive owed (chan_rx_settle), on our own line.
	 * A peer to wake is publish_wakes', out of line: with nobody
	 * waiting (a spinning or running peer) publish saves no register. */
	if (e->rx_settle) {
		chan_dir_t *rd = e->rxd;
		e->rx_settle = false;
		if (atomic_load_explicit(&rd->prod_waiting, memory_order_relaxed))
			return publish_wakes(e, true, flags);
	}
	if (atomic_load_explicit(&d->cons_waiting, memory_order_relaxed))
		return publish_wakes(e, false, flags);
	return 0;   /* 0 always: a send ends in a tail call here */
}

/* publish()'s wake-ups, in its order: a producer asleep on our full ring
 * (BELL_TAIL: what our last receive owed), then a consumer waiting for
 * this message, unless moderation defers its bell. */
THOTH_HOT static int publish_wakes(chan_end_t *e, bool bell_tail, unsigned flags)
{
	chan_dir_t *d = &e->ctl->dir[e->tx];
	if (bell_tail) {
		chan_dir_t *rd = &e->ctl->dir[e->rx];
		ring_if_waiting(e, &rd->prod_waiting, &rd->tail, false);
	}
	if (atomic_load_explicit(&d->cons_waiting, memory_order_relaxed)) {
		if (!(flags & THOTH_CHAN_URGENT) && mod_defer(e)) {
			e->st.bells_deferred++;
			e->mod.owed = true;
			return 0;
		}
		e->mod.owed = false;
		ring_if_waiting(e, &d->cons_waiting, &d->head, true);
	}
	return 0;
}

THOTH_HOT int chan_try_send(chan_end_t *e, uint8_t *buf, size_t len)
{
	return chan_try_send_flags(e, buf, len, 0);
}

static int send_pool(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags) __attribute__((noinline));

/*
 * Copies of at most THOTH_CHAN_INLINE_MAX bytes, inline: 16-byte moves, the
 * last ones ending exactly at N (they may overlap the ones before), so
 * nothing past N is read or written.  A memcpy of a variable size here compiled to
 * `rep movsq`, whose start-up costs tens of cycles per copy, and there are
 * four copies per round trip on the path a peer waits on (docs/IPC.md,
 * "Cache lines").  Both buffers are ours or bounds-checked; the source may
 * be the peer's slot, which it may rewrite meanwhile: the copy is then as
 * torn as a memcpy's, never out of bounds.
 */
typedef uint8_t chan_v16 __attribute__((vector_size(16)));

/* One 16-byte load and store (movdqu/movups): as two 8-byte halves,
 * straight-line code was left in 8-byte moves. */
static inline void copy16(uint8_t *to, const uint8_t *from)
{
	chan_v16 v;
	memcpy(&v, from, 16);
	memcpy(to, &v, 16);
}

/* N (16..256) bytes in 16-byte moves by size class, without a loop: the
 * class's first half from the start, its second half ending exactly at N
 * (the two halves overlap unless N is the class's top), so every byte in
 * [0, N) is written and none past it.  A loop of moves measured ~6
 * instructions a move (its counter, test and branch), this 2: at 120 bytes
 * (a 64 B call's message) 8 moves and two tests instead of ~50
 * instructions, four copies per round trip (stop 31). */
static inline __attribute__((always_inline)) void copy_halves(uint8_t *to, const uint8_t *from, size_t n,
								size_t half)
{
	for (size_t i = 0; i < half; i += 16)
		copy16(to + i, from + i);
	for (size_t i = half; i > 0; i -= 16)
		copy16(to + n - i, from + n - i);
}

static inline __attribute__((always_inline)) void copy_moves(uint8_t *to, const uint8_t *from, size_t n)
{
	if (n <= 32)
		copy_halves(to, from, n, 16);
	else if (n <= 64)
		copy_halves(to, from, n, 32);
	else if (n <= 128)
		copy_halves(to, from, n, 64);
	else
		copy_halves(to, from, n, 128);
}

_Static_assert(THOTH_CHAN_INLINE_MAX <= 256, "copy_moves copies at most 256 bytes");

static inline __attribute__((always_inline)) void copy_small(uint8_t *to, const uint8_t *from, size_t n)
{
	if (n >= 16) {
		copy_moves(to, from, n);
	} else if (n >= 8) {
		uint64_t a, b;
		memcpy(&a, from, 8);
		memcpy(&b, from + n - 8, 8);
		memcpy(to, &a, 8);
		memcpy(to + n - 8, &b, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			to[i] = from[i];
	}
}

/* The message built in tx_stage goes to SLOT, with its length, in a few
 * wide stores: the part past the slot's first line first, then the first
 * line (the one the peer polls) in one run of stores, then publish() adds
 * the tag to that line.  Encoded in place field by field, the polled line
 * was taken back by the peer between the stores, each time costing a
 * transfer; in one run it changes hands once. */
#define SLOT_LINE0 (64u - THOTH_CHAN_SLOT_HEADER)   /* message bytes in the first line */

static inline void slot_fill(uint8_t *slot, const uint8_t *msg, size_t len)
{
	uint8_t *to = slot + THOTH_CHAN_SLOT_HEADER;
	if (len > SLOT_LINE0) {
		copy_small(to + SLOT_LINE0, msg + SLOT_LINE0, len - SLOT_LINE0);
		memcpy(to, msg, SLOT_LINE0);
	} else {
		copy_small(to, msg, len);
	}
	st32(slot + 4, (uint32_t)len);
}

static int send_inline_stamped(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags, bool traced)
	__attribute__((noinline));

THOTH_HOT int chan_try_send_flags(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags)
{
	if (e->err)
		return e->err;
	if (len < THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_INVAL;
	if (buf && buf == e->inline_pending) {
		if (len > THOTH_CHAN_INLINE_MAX)
			return THOTH_E_INVAL;
		/* The trace switch is read once per message (each test is two
		 * dependent loads).  With no stamp to write and nothing to
		 * trace, the send is straight-line and ends in publish()'s
		 * tail call: it saves no register (~16 instructions a send). */
		bool traced = THOTH_TRACE_IS_ON(IPC);
		if (__builtin_expect(traced || e->stamp_tx, 0))
			return send_inline_stamped(e, buf, len, flags, traced);
		e->inline_pending = NULL;
		e->st.sent_inline++;
		e->st.urgent += flags & THOTH_CHAN_URGENT;
		uint8_t *slot = chan_tx_slot(e, e->tx_head);
		slot_fill(slot, buf, len);
		return publish(e, slot, CHAN_SLOT_INLINE, flags);
	}
	return send_pool(e, buf, len, flags);
}

/* An inline send that writes a send stamp (the consumer asked for them,
 * docs/IPC.md "Send stamps") or is traced. */
static int send_inline_stamped(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags, bool traced)
{
	uint64_t ts = traced ? thoth_trace_now() : 0;
	if (traced)
		thoth_trace_stamp_request(buf);
	e->inline_pending = NULL;
	e->st.sent_inline++;
	e->st.urgent += flags & THOTH_CHAN_URGENT;
	uint8_t *slot = chan_tx_slot(e, e->tx_head);
	/* In the slot's last line, only while tracing or asked for (the
	 * tag says so), and first, so that it cannot hold up the stores below. */
	/* The consumer's send stamp where it asked for one (docs/IPC.md
	 * "Send stamps"), else the tracer's while tracing. */
	uint32_t stamp = __builtin_expect(e->stamp_tx, 0) ? mono_stamp(ts) : send_stamp(ts);
	if (stamp)
		st32(slot + CHAN_SLOT_STAMP, stamp);
	slot_fill(slot, buf, len);
	publish(e, slot, CHAN_SLOT_INLINE | (stamp ? CHAN_SLOT_STAMPED : 0), flags);
	/* Traced after publishing, off the peer's critical path: only we
	 * write this slot, so it still holds our message. */
	if (traced)
		TRACE_CHAN(e, chan_send, THOTH_TRACE_SEND, buf, THOTH_TRACE_INLINE, ts, 0);
	return 0;
}

static int send_pool(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags)
{
	int64_t b = own_run(e, buf, BUF_ALLOCATED);
	if (b < 0 || len > (size_t)e->buf_run[b] * e->lay.lim.pool_buf_size)
		return THOTH_E_INVAL;   /* not a buffer from chan_try_alloc, or longer than it */
	if (e->inline_pending)
		return THOTH_E_BUSY;    /* the next slot is promised to the pending inline message */
	int r = tx_slot_free(e);
	if (r)
		return r;
	uint8_t *slot = chan_tx_slot(e, e->tx_head);
	st32(slot + 4, (uint32_t)len);
	st32(slot + 8, (uint32_t)b);
	uint64_t ts = trace_time();
	uint32_t stamp = e->stamp_tx ? mono_stamp(ts) : send_stamp(ts);
	if (stamp)
		st32(slot + 12, stamp);
	memset(e->buf_state + b, BUF_LENT, e->buf_run[b]);
	e->st.sent_pool++;
	thoth_trace_stamp_request(buf);
	e->st.urgent += flags & THOTH_CHAN_URGENT;
	publish(e, slot, CHAN_SLOT_POOL | (stamp ? CHAN_SLOT_STAMPED : 0), flags);
	TRACE_CHAN(e, chan_send, THOTH_TRACE_SEND, buf, THOTH_TRACE_ZERO_COPY, ts, 0);
	return 0;
}

void chan_discard(chan_end_t *e, uint8_t *buf)
{
	if (!buf)
		return;
	if (buf == e->inline_pending) {
		e->inline_pending = NULL;
		return;
	}
	int64_t b = own_run(e, buf, BUF_ALLOCATED);
	if (b < 0)
		return;
	uint32_t n = e->buf_run[b];
	memset(e->buf_state + b, BUF_FREE, n);
	e->buf_run[b] = 0;
	e->pool_free += n;
	e->st.pool_in_use -= n;
}

/*
 * The tag of our next slot does not publish it: is that "nothing yet"
 * (THOTH_E_AGAIN) or a lie?  Checks the peer's head, then reads the tag
 * again (head is stored after the tag, so a head that counts the message
 * comes with its tag).  An honest head is our tail (nothing sent), one
 * behind it (the producer stored the tag we took and not yet head), or up
 * to `slots` ahead with the tag there; anything else is refused.
 */
static int rx_untagged(chan_end_t *e, const uint8_t *slot, uint32_t *tag) __attribute__((noinline));

THOTH_HOT static int rx_untagged(chan_end_t *e, const uint8_t *slot, uint32_t *tag)
{
	uint32_t head = atomic_load_explicit(&e->ctl->dir[e->rx].head, memory_order_acquire);
	uint32_t avail = head - e->rx_tail;
	if (avail == 0 || avail == UINT32_MAX)
		return THOTH_E_AGAIN;
	if (avail > e->lay.lim.slots)
		return (int32_t)avail < 0
			? chan_fail(e, THOTH_E_CORRUPT, "peer's head index %u is %u behind our tail %u (at most 1 may be)",
				    head, -avail, e->rx_tail)
			: chan_fail(e, THOTH_E_CORRUPT, "peer's head index %u is %u slots ahead of our tail %u (ring has %u)",
				    head, avail, e->rx_tail, e->lay.lim.slots);
	*tag = ld32_acq(slot);
	if (!chan_slot_tag_is(*tag, e->rx_tail))
		return chan_fail(e, THOTH_E_CORRUPT, "peer's head index %u counts message %u, but slot %u's tag 0x%08x is not its",
				 head, e->rx_tail, e->rx_tail & (e->lay.lim.slots - 1), *tag);
	return 0;
}

/* What a receive owed: the fence after its tail store, then wake a
 * producer that went to sleep on a full ring before it saw that tail
 * (the Dekker pair of "Memory ordering", point 4). */
THOTH_HOT void chan_rx_settle_owed(chan_end_t *e)
{
	chan_dir_t *d = &e->ctl->dir[e->rx];
	e->rx_settle = false;
	atomic_thread_fence(memory_order_seq_cst);
	ring_if_waiting(e, &d->prod_waiting, &d->tail, false);
}

THOTH_HOT int chan_try_recv(chan_end_t *e, thoth_msg_t *msg)
{
	if (e->err)
		return e->err;
	chan_rx_settle(e);
	chan_dir_t *d = e->rxd;
	const uint8_t *slot = chan_rx_slot(e, e->rx_tail);
	uint32_t tag = ld32_acq(slot);
	if (!chan_slot_tag_is(tag, e->rx_tail)) {
		int r = rx_untagged(e, slot, &tag);
		if (r)
			return r;
	}
	uint32_t kind = tag & CHAN_SLOT_KIND_MASK, len = ld32(slot + 4);
	switch (kind) {
	case CHAN_SLOT_INLINE:
		if (len < THOTH_WIRE_HEADER_SIZE || len > THOTH_CHAN_INLINE_MAX)
			return chan_fail(e, THOTH_E_CORRUPT, "inline message of %u bytes in slot %u (must be %u..%u)",
					 len, e->rx_tail, THOTH_WIRE_HEADER_SIZE, THOTH_CHAN_INLINE_MAX);
		/* Copied out, so the peer cannot change it under the decoder. */
		copy_small(e->rx_copy, slot + THOTH_CHAN_SLOT_HEADER, len);
		msg->data = e->rx_copy;
		msg->handle = NULL;
		break;
	case CHAN_SLOT_POOL: {
		uint32_t bufs = e->lay.lim.pool_bufs, b = ld32(slot + 8);
		if (b >= bufs)
			return chan_fail(e, THOTH_E_CORRUPT, "descriptor in slot %u points at pool buffer %u; the pool has %u",
					 e->rx_tail, b, bufs);
		if (len < THOTH_WIRE_HEADER_SIZE ||
		    len > (size_t)(bufs - b) * e->lay.lim.pool_buf_size)
			return chan_fail(e, THOTH_E_CORRUPT, "descriptor in slot %u: %u bytes at buffer %u run past the pool",
					 e->rx_tail, len, b);
		msg->data = pool_at(e, e->rx, b);
		msg->handle = (void *)(uintptr_t)(b + 1u);
		break;
	}
	default:
		return chan_fail(e, THOTH_E_CORRUPT, "slot %u holds descriptor kind %u", e->rx_tail, kind);
	}
	/* The trace switch is read once.  The send stamp is the peer's word
	 * like any other; it feeds the traced queueing delay and, where this
	 * end asked for stamps, a dispatch's send time (clamped there). */
	bool traced = THOTH_TRACE_IS_ON(IPC);
	uint32_t sent = (traced || e->stamp_rx) && (tag & CHAN_SLOT_STAMPED) ? ld32(slot + (kind == CHAN_SLOT_POOL ? 12 : CHAN_SLOT_STAMP)) : 0;
	msg->len = len;
	e->rx_stamp = sent;     /* the server hands it to a dispatch (thoth_chan_server_sent) */
	e->mod.rx_bytes += len;
	e->rx_tail++;
	atomic_store_explicit(&d->tail, e->rx_tail, memory_order_release);
	/* The fence and the check of prod_waiting are owed, not paid here:
	 * the caller's next send pays them with the fence it makes anyway
	 * (an RPC: its answer, or its next request), and every receive, wait,
	 * nap and close settles first.  Off the path the peer waits on. */
	e->rx_settle = true;
	e->st.received++;
	/* After the slot is handed back: the message is in rx_copy or in the
	 * peer's pool buffer, which stays ours until released. */
	if (traced) {
		uint64_t ts = thoth_trace_now();
		TRACE_CHAN(e, chan_recv, THOTH_TRACE_RECV, msg->data,
			   msg->handle ? THOTH_TRACE_ZERO_COPY : THOTH_TRACE_INLINE,
			   ts, ts ? queue_ticks(sent, ts) : 0);
	}
	return 0;
}

int chan_release_pool(chan_end_t *e, thoth_msg_t *msg)
{
	if (!msg->handle)
		return 0;
	uint32_t b = (uint32_t)((uintptr_t)msg->handle - 1u);
	msg->handle = NULL;
	msg->data = NULL;
	if (e->err)
		return e->err;
	chan_dir_t *d = &e->ctl->dir[e->rx];
	uint32_t tail = atomic_load_explicit(&d->rel_tail, memory_order_acquire);
	if (e->rel_push - tail >= e->lay.rel_slots)
		return chan_fail(e, THOTH_E_CORRUPT, "release ring full: peer's release tail %u, ours %u (ring holds %u)",
				 tail, e->rel_push, e->lay.rel_slots);
	st32(rel_at(e, e->rx, e->rel_push), b);
	e->rel_push++;
	atomic_store_explicit(&d->rel_head, e->rel_push, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	ring_if_waiting(e, &d->owner_waiting, &d->rel_head, false);
	return 0;
}

THOTH_HOT_SERVE uint32_t chan_rx_peek(const chan_end_t *e, uint32_t max, uint32_t *stamps)
{
	if (e->err)
		return 0;
	uint32_t n = 0, lim = max < e->lay.lim.slots ? max : e->lay.lim.slots;
	for (; n < lim; n++) {
		uint32_t idx = e->rx_tail + n;
		const uint8_t *slot = slot_at(e, e->rx, idx);
		uint32_t tag = ld32_acq(slot);
		if (!chan_slot_tag_is(tag, idx))
			break;
		if (stamps)
			stamps[n] = tag & CHAN_SLOT_STAMPED
				? ld32(slot + ((tag & CHAN_SLOT_KIND_MASK) == CHAN_SLOT_POOL ? 12 : CHAN_SLOT_STAMP))
				: 0;
	}
	return n;
}

/* ---- waiting ------------------------------------------------------------ */

/* Does our next slot's tag publish it?  What a spinning consumer polls:
 * the slot's first line, which the message then is read from. */
static inline bool rx_tagged(const chan_end_t *e)
{
	return chan_slot_tag_is(ld32_acq(slot_at(e, e->rx, e->rx_tail)), e->rx_tail);
}

THOTH_HOT int chan_ready(chan_end_t *e, enum chan_cond cond, size_t len)
{
	if (e->err)
		return 1;
	switch (cond) {
	case CHAN_WAIT_RECV: {
		/* Or head says more than "nothing" or "one behind" (a producer
		 * between its tag and its head): chan_try_recv then takes the
		 * message, or refuses a head that its tag contradicts, so a
		 * hostile head is refused rather than slept on. */
		if (rx_tagged(e))
			return 1;
		uint32_t avail = atomic_load_explicit(&e->ctl->dir[e->rx].head, memory_order_acquire) - e->rx_tail;
		return avail != 0 && avail != UINT32_MAX;
	}
	case CHAN_WAIT_SLOT: {
		uint32_t space = 0;
		return tx_space(e, &space) || space > 0;
	}
	case CHAN_WAIT_POOL:
		return drain_releases(e) || find_run(e, runs_of(e, len)) >= 0;
	}
	return 1;
}

static _Atomic uint32_t *wait_flag(chan_end_t *e, enum chan_cond cond)
{
	switch (cond) {
	case CHAN_WAIT_RECV: return &e->ctl->dir[e->rx].cons_waiting;
	case CHAN_WAIT_SLOT: return &e->ctl->dir[e->tx].prod_waiting;
	case CHAN_WAIT_POOL: return &e->ctl->dir[e->tx].owner_waiting;
	}
	return NULL;
}

THOTH_HOT_CLIENT _Atomic uint32_t *chan_wait_word(chan_end_t *e, enum chan_cond cond, uint32_t *expect)
{
	switch (cond) {
	case CHAN_WAIT_RECV: {
		/* Sleep while head == our tail, or while it stays one behind
		 * (a producer stopped between the tag we took and its head):
		 * its head store then wakes us, and we sleep again. */
		_Atomic uint32_t *head = &e->ctl->dir[e->rx].head;
		uint32_t h = atomic_load_explicit(head, memory_order_relaxed);
		*expect = h == e->rx_tail - 1 ? h : e->rx_tail;
		return head;
	}
	case CHAN_WAIT_SLOT:
		*expect = e->tx_head - e->lay.lim.slots;    /* sleep while the ring is full */
		return &e->ctl->dir[e->tx].tail;
	case CHAN_WAIT_POOL:
		*expect = e->rel_pop;                       /* sleep while nothing was released */
		return &e->ctl->dir[e->tx].rel_head;
	}
	return NULL;
}

/* ---- presence: spin only when it can pay (docs/IPC.md, "Presence") ------- */

THOTH_HOT bool chan_spin_pays(uint32_t peer, int my_cpu, bool rang)
{
	if (peer & ~(CHAN_PRESENCE_RUNNING | CHAN_PRESENCE_CPU_MASK))
		return true;                     /* not a value we write: unknown */
	uint32_t cpu = peer & CHAN_PRESENCE_CPU_MASK;
	if (cpu == 0 || my_cpu < 0)
		return true;                     /* unknown: the adaptive budget decides */
	if (cpu - 1 == (uint32_t)my_cpu)
		return false;                    /* it needs our CPU to answer */
	return (peer & CHAN_PRESENCE_RUNNING) || rang;
}

/* This thread's id, read once per thread (gettid is a system call; this
 * a TLS load).  Not pthread_self(): glibc gives a new thread the handle
 * and stack of one that exited, so a client's second per-request thread
 * kept publishing the first one's (gone) tid.  Initial-exec: in
 * libthoth.so the default model calls __tls_get_addr on every presence
 * change; this is one %fs-relative load (the library is linked, not
 * dlopen'd, and 4 bytes fit glibc's static TLS surplus if it is). */
static _Thread_local uint32_t my_tid __attribute__((tls_model("initial-exec")));

/* fork() copies the calling thread, its my_tid with it: the child's one
 * thread published its parent's thread id on a channel it inherited, and
 * the service took that parent thread's CPU time for the caller's.
 * Forgotten in the child by an atfork handler, registered once, before
 * any thread caches an id; a TLS load stays the whole cost of a publish
 * (comparing a cached getpid would be a system call each time: glibc no
 * longer caches it).  A raw clone() or vfork() runs no handler. */
static void my_tid_forget(void)
{
	my_tid = 0;
}

static void my_tid_watch_forks(void)
{
	(void)pthread_atfork(NULL, NULL, my_tid_forget);    /* ENOMEM: the old behaviour */
}

static pthread_once_t my_tid_once = PTHREAD_ONCE_INIT;

static uint32_t my_tid_get(void)
{
	uint32_t tid = my_tid;
	if (!tid) {
		(void)pthread_once(&my_tid_once, my_tid_watch_forks);
		tid = my_tid = (uint32_t)syscall(SYS_gettid);
	}
	return tid;
}

/* Publish our presence; a store only when it changes, so a busy side does
 * not keep pulling the cache line the peer polls.  Relaxed: the word is a
 * hint that no correctness argument relies on. */
static void presence_publish(chan_end_t *e, bool running)
{
	int cpu = sched_getcpu();
	uint32_t v = cpu >= 0 && cpu < (int)CHAN_PRESENCE_CPU_MASK ? (uint32_t)cpu + 1 : 0;
	v |= running ? CHAN_PRESENCE_RUNNING : 0;
	if (v != e->presence) {
		e->presence = v;
		atomic_store_explicit(&e->ctl->presence[e->side].word, v, memory_order_relaxed);
		/* Who waits: stored when the thread changes.  Only here, where
		 * a sleeping pair publishes twice a call anyway: the service
		 * judges only sleeping pairs by CPU time. */
		uint32_t tid = my_tid_get();
		if (tid != e->presence_tid) {
			e->presence_tid = tid;
			atomic_store_explicit(&e->ctl->presence[e->side].tid, tid, memory_order_relaxed);
		}
	}
}

/*
 * Count one more nonzero store of a waiting flag.  At CHAN_BELL_ARMS_MAX
 * since the last read-back, read them back here, before the store: each
 * byte read was sent for an earlier arm, after what it announced was
 * published, so the re-check that follows the store sees a request it
 * announced, and a free slot it announced was taken before we came to
 * wait for anything else.  Rare (the loop reads back at
 * CHAN_BELL_DRAIN_EVERY); it bounds unread doorbells whatever the loop
 * runs between two read-backs.  The end of the connection read here is
 * read again by the loop (it stays readable).
 */
static inline void bell_arm_count(chan_end_t *e)
{
	if (!e->own_bell)
		return;                 /* no doorbells of ours to count: a futex sleeper */
	if (e->bell_arms >= CHAN_BELL_ARMS_MAX)
		(void)chan_bell_drain(e);
	e->bell_arms++;
}

THOTH_HOT int chan_arm(chan_end_t *e, enum chan_cond cond, size_t len)
{
	chan_rx_settle(e);              /* never sleep owing a sleeping producer its wake-up */
	_Atomic uint32_t *flag = wait_flag(e, cond);
	presence_publish(e, false);
	bell_arm_count(e);              /* at most one doorbell byte per store (ring_if_waiting) */
	atomic_store_explicit(flag, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (chan_ready(e, cond, len)) {
		atomic_store_explicit(flag, 0, memory_order_relaxed);
		presence_publish(e, true);
		return 1;
	}
	return 0;
}

THOTH_HOT_CLIENT void chan_disarm(chan_end_t *e, enum chan_cond cond)
{
	/* A store only when set: the peer reads the flag after every message,
	 * and a store, even of the same value, would take its line away. */
	_Atomic uint32_t *flag = wait_flag(e, cond);
	if (atomic_load_explicit(flag, memory_order_relaxed))
		atomic_store_explicit(flag, 0, memory_order_relaxed);
	presence_publish(e, true);
}

/*
 * chan_disarm of RECV and SLOT with one presence_publish (one sched_getcpu),
 * a server's turn start.  Nothing orders the three relaxed stores against
 * each other or against the checks that follow, here or in two
 * chan_disarm calls: clearing a flag only spares the peer a doorbell, and
 * a wake-up is never lost to it because a sleep always goes through
 * chan_arm (store 1, seq_cst fence, re-check).  The presence published is
 * the value the second chan_disarm published last, read no earlier: the
 * first one's store differed from it only if we migrated in between.
 */
THOTH_HOT_SERVE void chan_disarm_both(chan_end_t *e)
{
	_Atomic uint32_t *rx = wait_flag(e, CHAN_WAIT_RECV), *tx = wait_flag(e, CHAN_WAIT_SLOT);
	if (atomic_load_explicit(rx, memory_order_relaxed))
		atomic_store_explicit(rx, 0, memory_order_relaxed);
	if (atomic_load_explicit(tx, memory_order_relaxed))
		atomic_store_explicit(tx, 0, memory_order_relaxed);
	presence_publish(e, true);
}

THOTH_HOT_CLIENT int chan_check_peer(chan_end_t *e)
{
	if (e->err)
		return e->err;
	int peer = e->side ^ 1;
	if (atomic_load_explicit(&e->ctl->closed[peer], memory_order_acquire))
		return chan_fail(e, THOTH_E_PEER_GONE, "the %s closed the channel",
				 peer == CHAN_SERVER ? "service" : "client");
	if (e->sock >= 0) {
		char c;
		ssize_t r = recv(e->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return chan_fail(e, THOTH_E_PEER_GONE, "the %s went away (its socket closed)",
					 peer == CHAN_SERVER ? "service" : "client");
	}
	return 0;
}

static int ready_result(chan_end_t *e)
{
	return e->err ? e->err : 0;
}

/* May we (go on) spinning?  Reads the peer's presence once; counts a skip
 * when not.  Seeing the peer running ends "we rang it". */
THOTH_HOT static bool spin_may(chan_end_t *e, bool published)
{
	uint32_t peer = atomic_load_explicit(&e->ctl->presence[e->side ^ 1].word, memory_order_relaxed);
	if (peer & CHAN_PRESENCE_RUNNING)
		e->rang = false;
	if (!published)
		presence_publish(e, true);
	if (chan_spin_pays(peer, (int)(e->presence & CHAN_PRESENCE_CPU_MASK) - 1, e->rang))
		return true;
	e->st.spin_skips++;
	THOTH_TRACE(LOOP, chan_spin, 2, 0);     /* skipped: the peer cannot answer a spin */
	e->rang = false;
	return false;
}

/*
 * chan_spin, for chan_wait too.  PUBLISHED: our presence was published an
 * instant ago (chan_wait's first step), so the first check does not read
 * our CPU again.  *STARTED: the time the spin is timed from (its first
 * clock reading less one round), or 0 when it read the clock not at all (a
 * hit in the first round of polls, or no spin).  *REFUSED (may be NULL):
 * no spin at all because none may be made whatever a timed sleep would
 * teach (always-sleep mode, or spin_may's first answer: a peer that needs
 * our CPU to answer, or one asleep and not rung); not for a budget of 0,
 * which only a timed sleep raises again (chan_spin_slept).
 */
THOTH_HOT static bool spin_for(chan_end_t *e, enum chan_cond cond, size_t len, bool published, uint64_t *started,
		     bool *refused)
{
	*started = 0;
	chan_rx_settle(e);              /* a producer may wait for the slot we freed */
	if (e->wait != THOTH_CHAN_SPIN) {
		if (refused)
			*refused = true;
		return false;
	}
	if (!e->spin_budget)
		return false;
	if (!spin_may(e, published)) {
		if (refused)
			*refused = true;
		return false;
	}
	/* The budget shrinks while waits end in sleeps longer than spin_max
	 * (a slow peer).  But a sleeping pair on two CPUs is slow *because*
	 * both sleep: each wait then costs two cross-CPU wake-ups, which on a
	 * loaded VM exceed spin_max, so the budget would never grow again
	 * (bench_channel, two CPUs, 64 KiB: 97-133 us instead of 1.7 us).
	 * Probe: one wait in SPIN_PROBE spins the full spin_max; a hit puts
	 * the budget back.  Price for a really slow peer: spin_max of CPU per
	 * SPIN_PROBE waits. */
	uint32_t budget = e->spin_budget;
	if (budget < e->spin_max && ++e->spin_waits % SPIN_PROBE == 0)
		budget = e->spin_max;
	/* A receiver polls its tag SPIN_POLLS times per pause: with a pause
	 * after every poll the two-CPU round trip measured 16-50 ns slower
	 * (paired, faster in 27-34 of 40; one pause in 4 gave about half of
	 * that, none no more than one in 8: docs/BENCHMARKS.md "Stop 29").
	 * A poll that hits in L1 costs a few cycles and a pause tens of ns
	 * here, so the pauses still fill most of the spin, and the checks
	 * between them stay 64 pauses apart.  The other conditions read
	 * several words per check and keep one pause each. */
	unsigned polls = cond == CHAN_WAIT_RECV ? SPIN_POLLS : 1;
	/* The clock is first read after the first round of polls, not
	 * before it: a hit in that round reports 0 ns spun either way (the
	 * last reading was the start), and a spinning pair's answer usually
	 * comes within it, so most waits read no clock at all (a kvm-clock
	 * read costs tens of ns, before every wait on both sides: stop 31).
	 * The untimed round counts as long as the last timed one
	 * (spin_round_ns; the pauses make most of a round, whatever the
	 * condition), so a spin ends when it did when the clock was read
	 * before it (after one round at the floor budget, not two). */
	uint64_t start = 0, t = 0;
	bool timed = false;
	for (;;) {
		for (unsigned i = 0; i < 64 * polls; i++) {
			/* A receiver polls only its slot's tag: head's line
			 * stays with the producer (chan_ready checks it when
			 * the spin is over). */
			if (cond == CHAN_WAIT_RECV ? e->err || rx_tagged(e) : chan_ready(e, cond, len)) {
				/* How long it took, as of the last clock reading
				 * (at most 64 pauses short): no clock read between
				 * the peer's message and its handling, where a
				 * kvm-clock read costs tens of ns of the round
				 * trip.  It only ever grows the budget. */
				uint64_t took = t - start;
				e->st.spin_hits++;
				THOTH_TRACE(LOOP, chan_spin, 0, took);   /* hit, ns spun */
				e->rang = false;
				/* Success: allow twice what this wait took, never less than now. */
				if (2 * took > e->spin_budget)
					e->spin_budget = 2 * took < e->spin_max ? (uint32_t)(2 * took) : e->spin_max;
				return true;
			}
			if (i % polls == polls - 1)
				cpu_relax();
		}
		uint64_t last = t;
		t = thoth_clock_now();
		if (!timed) {
			timed = true;
			/* At most half of spin_max, whatever the word says: a
			 * full-budget (probe) spin always times a round. */
			uint64_t credit = e->spin_round_ns < e->spin_max / 2 ? e->spin_round_ns : e->spin_max / 2;
			start = t > credit ? t - credit : t;
			*started = start;
		} else if (t - last < e->spin_max / 2) {
			/* Only a round that ran undisturbed: one taken off the
			 * CPU (preempted, stopped) would be credited to every
			 * later spin's first round, and one of spin_max or more
			 * would end each of them there, before any round could
			 * be timed again to correct it (review of stop 31). */
			e->spin_round_ns = (uint32_t)(t - last);
		}
		if (t - start >= budget)
			break;
		/* Every 64 pauses (a few hundred ns): the peer may have gone to
		 * sleep or moved to our CPU, and we may have moved. */
		if (!spin_may(e, false))
			return false;
	}
	e->st.spin_misses++;
	THOTH_TRACE(LOOP, chan_spin, 1, t - start);  /* missed, ns spun */
	e->rang = false;
	return false;
}

THOTH_HOT bool chan_spin(chan_end_t *e, enum chan_cond cond, size_t len)
{
	uint64_t started;
	return spin_for(e, cond, len, false, &started, NULL);
}

/* Median of the N (<= CHAN_NAP_SAMPLES) samples at V (sorted in place). */
static uint32_t median_of(uint32_t *v, unsigned n)
{
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint32_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

THOTH_HOT_SERVE void chan_spin_slept(chan_end_t *e, uint64_t waited_ns)
{
	if (e->wait != THOTH_CHAN_SPIN || !e->spin_max)
		return;
	e->nap_ok = waited_ns <= e->spin_max;
	if (waited_ns <= e->spin_max) {
		/* The peer answered within what we may spin: spinning twice that
		 * long would have saved the sleep and both wake-ups. */
		uint64_t want = 2 * waited_ns;
		e->spin_budget = want < e->spin_max ? (uint32_t)want : e->spin_max;
	} else {
		/* A slow peer: spinning does not pay, halve it. */
		e->spin_budget = e->spin_budget / 2 > SPIN_MIN_NS ? e->spin_budget / 2 : SPIN_MIN_NS;
	}
}

/*
 * Which way of waiting serves this peer faster, timed in epochs of
 * CHAN_NAP_EPOCH decisions: the first CHAN_NAP_RUN nap, the next
 * CHAN_NAP_RUN wait in the loop, and the median cycle of each run (its
 * first NAP_SETTLE left out) decides the rest of the epoch.  A cycle: from
 * one idle moment to the next, over the messages between, i.e. the peer's
 * round trip as this side sees it.  Any number of messages, not exactly
 * one: on one CPU the client woken by our answer often runs before we
 * wait again and its next request is there, so a napping run held 2-4
 * messages in most cycles, too few one-message samples to decide, and the
 * service kept napping, measured at ~1.4x the loop's round trip.  Not
 * the wait alone: a doorbell's synchronous wake-up runs us sooner than a
 * FUTEX_WAKE but delays the peer, whose round trip is what counts.  Runs, not single probes: one nap between loop waits measured
 * 2-3x longer than naps in a row, and medians, not means: the tail of a
 * loaded machine (preemptions, naps that time out) is not the typical
 * round trip.  NOW: this idle moment.
 */
static void nap_cycle(chan_end_t *e, uint64_t now)
{
	uint64_t msgs = e->st.received - e->nap_cycle_rx;
	if ((e->nap_cycle_way & NAP_WAY_TIMED) && msgs && now > e->nap_cycle_at) {
		unsigned w = e->nap_cycle_way & NAP_WAY_NAP ? 0 : 1;
		uint64_t ns = (now - e->nap_cycle_at) / msgs;
		if (e->nap_n[w] < CHAN_NAP_SAMPLES)
			e->nap_s[w][e->nap_n[w]++] = ns < UINT32_MAX ? (uint32_t)ns : UINT32_MAX;
	}
	e->nap_cycle_at = now;
	e->nap_cycle_rx = e->st.received;
	e->nap_cycle_way = 0;            /* set below once the way is chosen */
}

/*
 * This decision's way: NAP_WAY_NAP or NAP_WAY_LOOP, | NAP_WAY_TIMED.
 *
 * Quiet epochs: while the loop keeps winning, the nap run, which is the
 * slower way then, is not paid every epoch.  Each loop win makes the next
 * 1, 2, 4, 8, then 15 epochs quiet (no runs: the loop for all their 256
 * decisions); a nap win, or an epoch that does not decide, makes none.
 * Why: on this VM a nap's own timer costs ~1.5 us (its 50 us futex
 * timeout is the CPU's earliest timer, and programming it exits to the
 * host), so the 16 naps of each epoch's run were ~1.3-2.2 us slower each,
 * ~100 ns per round trip of the one-CPU cell spread over the epoch
 * (docs/SCHED.md, "Stop 32").  Where naps win, every epoch still runs
 * both ways; where the loop wins, conditions that change are seen again
 * within 16 epochs (4,096 waits, tens of ms on one CPU).
 */
static uint8_t nap_way(chan_end_t *e)
{
	unsigned t = e->nap_turns++ % CHAN_NAP_EPOCH;
	if (t == 0) {
		e->nap_n[0] = e->nap_n[1] = 0;
		e->nap_epoch_quiet = e->nap_quiet > 0;
		if (e->nap_quiet)
			e->nap_quiet--;
	}
	if (e->nap_epoch_quiet)
		return e->nap_loop_wins ? NAP_WAY_LOOP : NAP_WAY_NAP;
	if (t < CHAN_NAP_RUN)
		return NAP_WAY_NAP | (t >= NAP_SETTLE ? NAP_WAY_TIMED : 0);
	if (t < 2 * CHAN_NAP_RUN)
		return NAP_WAY_LOOP | (t >= CHAN_NAP_RUN + NAP_SETTLE ? NAP_WAY_TIMED : 0);
	if (t == 2 * CHAN_NAP_RUN) {
		bool decided = e->nap_n[0] >= CHAN_NAP_SAMPLES / 2 && e->nap_n[1] >= CHAN_NAP_SAMPLES / 2;
		if (decided) {
			e->nap_avg_ns = median_of(e->nap_s[0], e->nap_n[0]);
			e->loop_avg_ns = median_of(e->nap_s[1], e->nap_n[1]);
			e->nap_loop_wins = e->loop_avg_ns < e->nap_avg_ns;
		}
		if (decided && e->nap_loop_wins) {
			unsigned q = e->nap_quiet_next ? e->nap_quiet_next : 1;
			e->nap_quiet = (uint8_t)q;
			e->nap_quiet_next = (uint8_t)(2 * q < CHAN_NAP_QUIET_MAX ? 2 * q : CHAN_NAP_QUIET_MAX);
		} else {
			e->nap_quiet = e->nap_quiet_next = 0;
		}
	}
	return e->nap_loop_wins ? NAP_WAY_LOOP : NAP_WAY_NAP;
}

/* The next nap_way is the loop's and untimed, and closes no timed cycle:
 * not an epoch's first decision (it may start runs), not inside the runs,
 * not the deciding one; a quiet epoch, or past the runs, the loop winning.
 * Not an epoch's last either: the sleep after it is timed, and its length
 * (chan_spin_slept: nap_ok false after one longer than spin_max) decides
 * whether the next epoch's first decision may nap at all, as it did before
 * stop 34 -- a client on our CPU that now thinks longer than spin_max
 * costs no missed nap and back-off.  Two clock reads per epoch. */
static bool nap_way_settled_loop(const chan_end_t *e)
{
	unsigned t = e->nap_turns % CHAN_NAP_EPOCH;
	return t != 0 && t != CHAN_NAP_EPOCH - 1 && e->nap_loop_wins &&
	       (e->nap_epoch_quiet || t > 2 * CHAN_NAP_RUN) &&
	       !(e->nap_cycle_way & NAP_WAY_TIMED);
}

bool chan_nap(chan_end_t *e, uint64_t until, uint64_t now)
{
	bool quiet;
	return chan_nap_at(e, until, &now, &quiet);
}

THOTH_HOT_SERVE bool chan_nap_at(chan_end_t *e, uint64_t until, uint64_t *now, bool *quiet)
{
	*quiet = false;
	chan_rx_settle(e);
	if (e->wait != THOTH_CHAN_SPIN || e->mod.on || e->err || !e->nap_ok || e->spin_max < NAP_MIN_NS) {
		e->nap_cycle_way = 0;    /* no cycle is timed across this wait */
		return false;
	}
	/* Only for a peer that needs our CPU to answer (where a spin cannot
	 * pay and chan_spin skipped): hostile input, a lie costs latency. */
	uint32_t peer = atomic_load_explicit(&e->ctl->presence[e->side ^ 1].word, memory_order_relaxed);
	int cpu = sched_getcpu();
	if (cpu < 0 || (peer & ~(CHAN_PRESENCE_RUNNING | CHAN_PRESENCE_CPU_MASK)) ||
	    (peer & CHAN_PRESENCE_CPU_MASK) != (uint32_t)cpu + 1) {
		e->nap_cycle_way = 0;
		return false;
	}
	/* What follows with a reading, minus the reading: nap_cycle would
	 * record nothing (the last way was untimed) and start a cycle no
	 * one times; no timer can be due; nap_way answers the loop. */
	if (!*now && until == UINT64_MAX && !e->nap_skip && e->spin_budget && nap_way_settled_loop(e)) {
		e->nap_cycle_rx = e->st.received;
		e->nap_cycle_way = nap_way(e);
		*quiet = true;
		return false;
	}
	uint64_t start = *now ? *now : thoth_clock_now();
	*now = start;
	nap_cycle(e, start);
	if (until <= start + NAP_MIN_NS)
		return false;                   /* a timer is due: back to the loop */
	/* Backing off after misses: this wait goes to the loop.  Counted
	 * only here, where a nap would otherwise be taken. */
	if (e->nap_skip) {
		e->nap_skip--;
		return false;
	}
	/* Nap, or wait in the loop, as the last epoch's runs found faster
	 * (nap_cycle): with a busy process on the CPU, always napping
	 * measured 2.3-3.0x a futex pair's round trip, the loop's wait
	 * ~1.1x; without one napping is the faster (docs/SCHED.md, "Naps"). */
	e->nap_cycle_way = nap_way(e);
	if (!(e->nap_cycle_way & NAP_WAY_NAP))
		return false;
	uint64_t slice = e->spin_max;
	if (until - start < slice)
		slice = until - start;
	_Atomic uint32_t *flag = &e->ctl->dir[e->rx].cons_waiting;
	presence_publish(e, false);
	bell_arm_count(e);              /* a claim returning 1 after we re-armed rings (ring_if_waiting) */
	atomic_store_explicit(flag, CHAN_WAITING_FUTEX, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	bool got = chan_ready(e, CHAN_WAIT_RECV, 0);
	if (!got) {
		struct timespec ts = { (time_t)(slice / 1000000000u), (long)(slice % 1000000000u) };
		e->st.sleeps++;
		syscall(SYS_futex, (uint32_t *)&e->ctl->dir[e->rx].head, FUTEX_WAIT, e->rx_tail, &ts, NULL, 0);
		got = chan_ready(e, CHAN_WAIT_RECV, 0);
	}
	/* Cleared before the caller arms for the loop (flag = 1, fence,
	 * re-check): a producer that saw 2 and woke a nap already over has
	 * published before our re-check, so chan_arm sees its message. */
	atomic_store_explicit(flag, 0, memory_order_relaxed);
	presence_publish(e, true);
	uint64_t took = thoth_clock_now() - start;
	/* A miss stops naps until a wait shows the peer answering within
	 * spin_max again (chan_spin_slept): a slow peer costs one wasted
	 * timer wake-up, not one per message.  Under load the peer answers
	 * quickly, then not (preempted by other work on our CPU), and a nap
	 * that times out wakes us while the peer wants the CPU: so each miss
	 * also doubles the naps skipped after it (1, 2, 4, ... up to
	 * CHAN_NAP_BACKOFF_MAX) and each answered nap halves that count; a
	 * quiet pair never misses and never skips (docs/SCHED.md, "Naps").
	 * A timed miss counts as a cycle of 2 spin_max (its own is not timed:
	 * the loop waits next). */
	if (got) {
		chan_spin_slept(e, took);
		e->nap_backoff /= 2;
	} else {
		uint64_t long_cycle = 2ull * e->spin_max;
		if ((e->nap_cycle_way & NAP_WAY_TIMED) && e->nap_n[0] < CHAN_NAP_SAMPLES)
			e->nap_s[0][e->nap_n[0]++] = long_cycle < UINT32_MAX ? (uint32_t)long_cycle : UINT32_MAX;
		e->nap_cycle_way = 0;
		e->nap_ok = false;
		e->nap_backoff = e->nap_backoff ? e->nap_backoff * 2 : 1;
		if (e->nap_backoff > CHAN_NAP_BACKOFF_MAX)
			e->nap_backoff = CHAN_NAP_BACKOFF_MAX;
		e->nap_skip = e->nap_backoff;
	}
	THOTH_TRACE(LOOP, chan_spin, got ? 3 : 4, took);   /* nap: hit / missed, ns */
	return got;
}

THOTH_HOT_CLIENT int chan_wait(chan_end_t *e, enum chan_cond cond, size_t len, int timeout_ms)
{
	/* Running, and where: also when the wait is over at once (a side that
	 * always finds its data ready would otherwise never tell its peer). */
	presence_publish(e, true);
	chan_rx_settle(e);
	chan_mod_flush(e);              /* never wait while owing the peer a wake-up */
	if (chan_ready(e, cond, len))
		return ready_result(e);
	if (timeout_ms == 0)
		return THOTH_E_AGAIN;
	/* The wait is timed from its spin's start as the spin reckoned it
	 * (its first clock reading, one round of polls in, less that
	 * round), or from now when it read no clock: one clock read and one
	 * presence update fewer on every wait that spins. */
	uint64_t start;
	bool refused = false;
	if (spin_for(e, cond, len, true, &start, &refused))
		return ready_result(e);
	/*
	 * No clock at all for a wait with nothing to time: no deadline, not
	 * moderated, and no spin made or possible (always-sleep mode, or a
	 * peer that needs our CPU to answer, or one asleep and not rung).
	 * Its only use was the sleep's length for chan_spin_slept, which
	 * sizes spins and allows naps: a spin refused for this wait is
	 * refused by the presence it reads, not by that budget, and naps
	 * are a serving loop's, never chan_wait's.  Each one-CPU round trip's
	 * client sleeps here: two clock reads fewer, a CLOCK_MONOTONIC read
	 * 55-95 ns on this VM (docs/SCHED.md, "Stop 34").  The first sleep's slice
	 * is SLEEP_SLICE_NS whatever the time with no deadline.
	 */
	bool clockless = refused && timeout_ms < 0 && !e->mod.on;
	/* Read here, an arm before the first sleep (a spin's start may be
	 * spin_max old): that sleep's slice is taken from it. */
	bool fresh = !start && !clockless;
	if (fresh)
		start = thoth_clock_now();
	uint64_t deadline = timeout_ms > 0 ? start + (uint64_t)timeout_ms * 1000000u : UINT64_MAX;

	for (;;) {
		/* Moderated: publish the profile and when we wake by ourselves. */
		uint64_t mod_by = cond == CHAN_WAIT_RECV ? chan_mod_sleep(e) : 0;
		if (chan_arm(e, cond, len))
			return ready_result(e);
		uint32_t expect = 0;
		_Atomic uint32_t *word = chan_wait_word(e, cond, &expect);
		/* The first sleep's slice from the start read an arm ago when
		 * no spin read the clock (a slice longer by that arm at most):
		 * a clock read fewer on every wait that sleeps without a spin,
		 * as each one-CPU round trip's client does (stop 32). */
		uint64_t now = clockless ? 0 : fresh ? start : thoth_clock_now();
		fresh = false;
		uint64_t slice = now >= deadline ? 1 : deadline - now < SLEEP_SLICE_NS ? deadline - now : SLEEP_SLICE_NS;
		if (mod_by) {
			uint64_t left = mod_by > now ? mod_by - now : 1;
			slice = left < slice ? left : slice;
		}
		struct timespec ts = { (time_t)(slice / 1000000000u), (long)(slice % 1000000000u) };
		e->st.sleeps++;
		if (e->own_bell) {
			/* The peer rings our socket (we also serve a loop). */
			struct pollfd pfd = { .fd = e->sock, .events = POLLIN };
			if (ppoll(&pfd, 1, &ts, NULL) > 0)
				chan_bell_drain(e);
		} else {
			syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expect, &ts, NULL, 0);
		}
		chan_disarm(e, cond);
		if (cond == CHAN_WAIT_RECV)
			chan_mod_woke(e, mod_by && thoth_clock_now() >= mod_by);
		if (chan_ready(e, cond, len)) {
			if (!clockless)
				chan_spin_slept(e, thoth_clock_now() - start);
			return ready_result(e);
		}
		int r = chan_check_peer(e);
		if (r)
			return r;
		if (!clockless && thoth_clock_now() >= deadline)
			return THOTH_E_TIMEDOUT;
	}
}

void chan_end_close(chan_end_t *e)
{
	if (!e->ctl)
		return;
	chan_rx_settle(e);
	atomic_store_explicit(&e->ctl->closed[e->side], 1, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	/* The peer may sleep on any of these words (or on its socket). */
	if (e->peer_bell) {
		wake_peer(e, NULL, CHAN_WAITING_BELL);
		futex_wake(&e->ctl->dir[e->tx].head);   /* it may nap there (chan_nap) */
	} else {
		futex_wake(&e->ctl->dir[e->tx].head);
		futex_wake(&e->ctl->dir[e->rx].tail);
		futex_wake(&e->ctl->dir[e->rx].rel_head);
	}
}
