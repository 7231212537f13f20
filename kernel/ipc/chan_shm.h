/*
 * chan_shm.h - the shared memory of a channel and one side's view of it.
 *
 * Pure: no sockets, no handshake.  channel.c builds connections on top;
 * the fuzz target and the fault tests drive these functions directly on a
 * mapping whose bytes they control.  The layout and the ordering argument
 * are specified in docs/IPC.md; keep the two in step.
 */
#ifndef THOTH_CHAN_SHM_H
#define THOTH_CHAN_SHM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/channel.h"
#include "thoth/hot.h"

#define CHAN_MAGIC  0x31434854u   /* 'T' 'H' 'C' '1' */
#define CHAN_LAYOUT 3u   /* 2: cons_waiting on its own cache line; 3: 8-byte slot
			  * descriptors whose tag publishes the message */
#define CHAN_PAGE   4096u

/*
 * A zeroed allocation for one side's channel state (thoth_chan_t, the
 * service's conn_t): aligned to the power of two at or above its size, up
 * to a page, so an object that fits in a page never straddles two.  Both
 * sides read it on every round trip, right after a context switch on one
 * CPU, where each distinct page costs more than its lines (docs/SCHED.md,
 * stop 34, pages34); malloc put it across a boundary about as often as not.  Freed
 * with free().
 */
static inline void *chan_zalloc_unsplit(size_t size)
{
	size_t align = 64;
	if (size > SIZE_MAX - CHAN_PAGE)
		return NULL;
	while (align < size && align < CHAN_PAGE)
		align <<= 1;
	size_t rounded = (size + align - 1) & ~(align - 1);
	void *p = aligned_alloc(align, rounded);
	if (p)
		memset(p, 0, rounded);
	return p;
}

enum { CHAN_REQ = 0, CHAN_RESP = 1 };          /* ring directions */
enum { CHAN_CLIENT = 0, CHAN_SERVER = 1 };     /* sides */

/* Slot descriptor kinds. */
enum { CHAN_SLOT_INLINE = 1, CHAN_SLOT_POOL = 2 };

/*
 * A slot's descriptor: word 0 is its tag, word 1 the message length.  The
 * tag is the kind in bits 0-6, CHAN_SLOT_STAMPED in bit 7 and the low 24
 * bits of (ring index + 1) in bits 8-31; the producer stores it last (release), so the consumer polls
 * the slot's first line (which carries the message's first 56 bytes too)
 * instead of head's line: docs/IPC.md, "Cache lines".  The slot's previous
 * message was `slots` (at most 65536 < 2^24) indices earlier, so a stale
 * tag never matches.  A POOL descriptor has the buffer index in word 2 and
 * the send stamp in word 3 (the inline area is unused); an inline message's
 * stamp is at CHAN_SLOT_STAMP, after the 240 bytes a message may fill.
 * The stamp is written (and read) only when the tag says STAMPED: an
 * untraced message touches no line but the ones it fills.
 */
#define CHAN_SLOT_STAMP (THOTH_CHAN_SLOT_SIZE - 8u)
#define CHAN_SLOT_KIND_MASK 0x7fu
#define CHAN_SLOT_STAMPED 0x80u
#define CHAN_SLOT_SEQ_MASK 0xffffffu

static inline uint32_t chan_slot_tag(uint32_t kind, uint32_t idx)
{
	return kind | (idx + 1u) << 8;
}

/* Does TAG publish message IDX (of any kind)? */
static inline bool chan_slot_tag_is(uint32_t tag, uint32_t idx)
{
	return tag >> 8 == ((idx + 1u) & CHAN_SLOT_SEQ_MASK);
}

/*
 * Per direction, in shared memory.  The producer of the direction writes
 * head and prod_waiting; the consumer writes tail and cons_waiting; the
 * consumer also gives pool buffers back through the release ring (rel_head),
 * which the producer drains (rel_tail, owner_waiting).  Each writer keeps its
 * own index privately and only stores it here: nothing a side reads back from
 * shared memory is trusted without a check.
 *
 * Cache lines, for a message in flight between two CPUs (docs/IPC.md,
 * "Cache lines"): the consumer polls the slot's tag, not head; head is the
 * futex word a sleeping consumer waits on and the index the consumer checks
 * when the tag says "nothing yet" (a hostile head is still refused).
 * tail's line is the consumer's: the producer reads tail only when its
 * cached copy says the ring is full, and writes prod_waiting beside it only
 * when it goes to sleep on a full ring, so the consumer's store to tail and
 * its check of prod_waiting after every message stay local.  cons_waiting,
 * which the producer checks after every message, has a line of its own
 * that changes only when the consumer goes to sleep.
 */
typedef struct chan_dir {
	_Alignas(64) _Atomic uint32_t head;
	_Alignas(64) _Atomic uint32_t tail;
	_Atomic uint32_t prod_waiting;    /* producer sleeps on tail: ring full */
	_Alignas(64) _Atomic uint32_t cons_waiting;   /* consumer sleeps on head: ring empty */
	_Alignas(64) _Atomic uint32_t rel_head;
	_Alignas(64) _Atomic uint32_t rel_tail;
	_Atomic uint32_t owner_waiting;   /* producer sleeps on rel_head: pool empty */
} chan_dir_t;

/* Page 0 of the memfd.  Geometry is written once by the service before the
 * memfd is shared; the client checks it against what both computed. */
typedef struct chan_ctl {
	uint32_t magic, layout;
	uint32_t slots, pool_buf_size, pool_bufs, rel_slots;
	uint64_t size;
	_Alignas(64) _Atomic uint32_t closed[2];   /* side i closed the channel */
	chan_dir_t dir[2];
	/* Side i's presence word (CHAN_PRESENCE_*), written only by side i,
	 * each on its own cache line (the peer polls it while spinning).  A
	 * hint for the peer's spin decision and nothing else: docs/IPC.md,
	 * "Presence".  Zero (an older peer) reads as "unknown".  `tid`: the
	 * thread that last waited on side i (a client's calling thread, not
	 * necessarily its main one), written when that thread changes, for
	 * the service's placement, which reads its CPU time (docs/SCHED.md:
	 * hostile, used only if /proc/PID/task/TID is a thread of the peer's
	 * process; zero from an older peer: its main thread, as before).  In
	 * the padding of the word's line: the layout does not change. */
	struct { _Alignas(64) _Atomic uint32_t word; _Atomic uint32_t tid; } presence[2];
	/* Moderation of direction d, written only by d's consumer (PM-3,
	 * docs/PM.md "Interrupt moderation"): `profile` = max_msgs | max_us
	 * << 16; `wake_by` = the CLOCK_MONOTONIC ns by which the consumer,
	 * asleep, wakes by itself (0 = it waits to be rung).  Written before
	 * the consumer's waiting flag (release), read by the producer after
	 * it saw the flag (acquire); hostile input for the producer, which
	 * clamps both (chan_mod_may_defer).  Zero (an older peer) = none. */
	struct { _Alignas(64) _Atomic uint32_t profile; _Atomic uint64_t wake_by; } mod[2];
	/* Send stamps of direction d, asked for by d's consumer before the
	 * memfd is shared and never changed (the producer reads it once, at
	 * attach): CHAN_STAMPS_MONOTONIC = "write your CLOCK_MONOTONIC send
	 * time into every slot's stamp word" (docs/IPC.md "Send stamps").
	 * Zero (an older peer, or one that did not ask) or any other value:
	 * no stamps beyond the tracer's. */
	_Alignas(64) uint32_t stamps[2];
	/* Side i's doorbell promise, written by side i once at attach, before
	 * its first message: CHAN_BELL_ONCE = "I ring you at most once per
	 * sleep: I claim your waiting flag (1 -> 0) and only the claim
	 * rings; my socket holds CHAN_BELL_ROOM unread doorbells".  A service
	 * then watches the channel's socket edge-triggered and reads the
	 * doorbells back only every CHAN_BELL_DRAIN_EVERY arms (docs/IPC.md,
	 * "Edge-triggered doorbells").  Zero (an older peer) or any other
	 * value: level triggered, read back at every wake-up.  A lie only
	 * costs the liar its own wake-ups (a flood makes the service fall
	 * back to level).
	 * The service's word (bell[CHAN_SERVER]), written in handle_open
	 * before the memfd is shared: CHAN_BELL_REARMS = "after reading
	 * doorbells back I re-arm (store, fence, check), not only re-check":
	 * a client may claim the service's flags only then, so only then
	 * may it promise CHAN_BELL_ONCE.  An older service (zero) only
	 * re-checks after its late drain, and a claim made for a message it
	 * already took would leave it asleep with its flag clear for good. */
	uint32_t bell[2];
} chan_ctl_t;

#define CHAN_BELL_ONCE 1u
#define CHAN_BELL_REARMS 2u
/* Arms (nonzero stores of our waiting flags) between two read-backs of the
 * doorbells, edge-triggered.  An honest peer sends at most one byte per
 * arm, so at most this many (plus CHAN_BELL_SLACK in flight: a claim made
 * before our last read whose byte arrived after it, a close) sit unread;
 * a Unix stream socket at the default SO_SNDBUF (212,992 B) takes 278
 * one-byte sends before EAGAIN on this kernel (6.18; each byte costs an
 * skb of ~766 B).  A build may override it (-DCHAN_BELL_DRAIN_EVERY=N,
 * e.g. huge to show what never reading back loses). */
#ifndef CHAN_BELL_DRAIN_EVERY
#define CHAN_BELL_DRAIN_EVERY 32u
#endif
/* More bytes than arms + this at a read-back: not one bell per sleep (a
 * flood, a bug): the service watches that channel level-triggered again. */
#define CHAN_BELL_SLACK 8u
/* The most doorbell bytes one read-back takes (chan_bell_drain). */
#define CHAN_BELL_READ 256u
/* The hard bound: the service reads back at its count of
 * CHAN_BELL_DRAIN_EVERY when a doorbell's wake-up finds it there, but the
 * turns between two such wake-ups (the ready queue's, a moderation
 * timer's, re-checks) can arm ~2 times per message of a turn's budget
 * each; an arm that finds this many since the last read-back reads them
 * back itself, before its store (chan_arm, chan_nap). */
#define CHAN_BELL_ARMS_MAX (2u * CHAN_BELL_DRAIN_EVERY)
/* The unread one-byte sends a peer promising CHAN_BELL_ONCE must be able
 * to queue (what an honest peer can leave unread, CHAN_BELL_ARMS_MAX +
 * CHAN_BELL_SLACK, with CHAN_BELL_SLACK to spare), and the send buffer
 * that takes them with room to spare (~766 B per byte). */
#define CHAN_BELL_ROOM (CHAN_BELL_ARMS_MAX + 2u * CHAN_BELL_SLACK)
#define CHAN_BELL_SNDBUF (CHAN_BELL_ROOM * 1024u)
/* The one-byte sends a socket with SO_SNDBUF = CHAN_BELL_SNDBUF took
 * before EAGAIN, counted once per process on a socketpair (chan_client.c;
 * capped at 4 x CHAN_BELL_ROOM; 0 if it could not be counted, and then
 * counted again at the next call: a shortage of fds is not the kernel's
 * answer): a client
 * promises CHAN_BELL_ONCE only where it is at least CHAN_BELL_ROOM. */
unsigned chan_bell_room_sends(void);

#define CHAN_STAMPS_MONOTONIC 1u

/*
 * The slot's stamp word (layout 3: an inline slot's last 8 bytes,
 * CHAN_SLOT_STAMP; byte 12 of a pool descriptor), read only when the tag
 * says CHAN_SLOT_STAMPED: 0 = none; else bit 0 set, bit 1 the clock kind
 * (THOTH_TRACE_CLOCK_MONOTONIC 0 / _TSC 1) and bits 2..31 the low 32 bits
 * of the sender's clock at send, its low two bits dropped.  A MONOTONIC
 * stamp is CLOCK_MONOTONIC ns on every process of the host.
 */
#define CHAN_STAMP_SET 1u
#define CHAN_STAMP_TSC 2u

/* The CLOCK_MONOTONIC ns a MONOTONIC-kind STAMP stands for, reconstructed
 * around NOW_NS (the stamp holds 32 bits: a time within 2^31 ns, about
 * 2.1 s, before or after NOW_NS; anything older aliases into that window).
 * 0 and *SENT_NS; THOTH_E_NOT_FOUND when STAMP is none or of another clock.
 * The stamp is the peer's word: every value gives some time, which the
 * caller must treat as a claim (kernel/pm/governed.h clamps it). */
int chan_stamp_sent_ns(uint32_t stamp, uint64_t now_ns, uint64_t *sent_ns);

/* Presence word: bit 31 = running (not about to sleep), low 16 bits = the
 * CPU it last ran on + 1 (0 = unknown), bits 16-30 = 0.  Any other value is
 * read as "unknown". */
/* Values of a waiting flag (cons_waiting etc.): 0 = awake; BELL = wake me
 * the usual way (futex, or the socket when I serve a loop); FUTEX = I nap
 * on the futex word even though I serve a loop (chan_nap).  Any other
 * nonzero value reads as BELL. */
#define CHAN_WAITING_BELL  1u
#define CHAN_WAITING_FUTEX 2u

#define CHAN_PRESENCE_RUNNING 0x80000000u
#define CHAN_PRESENCE_CPU_MASK 0xffffu

/* The waiter's rule (pure, so tests feed it any value): spin for a peer
 * whose presence word is PEER while running on MY_CPU (-1 = unknown)?
 * RANG: we woke the peer and have not seen it running since.
 *  - the peer last ran on MY_CPU: no (it cannot run while we spin there);
 *  - it runs on another CPU: yes;
 *  - it is not running: yes only if RANG (it is waking up, most likely on
 *    the CPU it last ran on), else no (nothing will wake it soon);
 *  - either CPU unknown (or a value we never write): yes, the bounded
 *    adaptive spin of before. */
bool chan_spin_pays(uint32_t peer, int my_cpu, bool rang);

/* One side's moderation state (PM-3).  Opaque storage for the policy of
 * kernel/pm/moderation.h, so this header needs nothing from kernel/pm. */
typedef struct chan_mod_end {
	bool on;                          /* a policy other than none consumes our rx */
	bool timed;                       /* our current/last rx sleep had a wake-up deadline */
	bool owed;                        /* producer: a wake-up was deferred, not yet made */
	bool woke_by_timer;               /* our last rx wake-up was our own deadline */
	uint64_t wake_by;                 /* what we published */
	uint64_t rx_at_wake;              /* e->st.received when we last woke */
	uint64_t rx_bytes;                /* bytes received so far */
	_Alignas(8) unsigned char policy[256];   /* thoth_mod_t */
} chan_mod_end_t;

/* Where everything is; computed by both sides from the limits alone. */
typedef struct chan_layout {
	thoth_chan_limits_t lim;
	uint32_t rel_slots;               /* power of two >= pool_bufs */
	size_t ring_off[2], rel_off[2], pool_off[2];
	size_t size;
} chan_layout_t;

int chan_layout_compute(const thoth_chan_limits_t *lim, chan_layout_t *out);

/* chan_nap's epochs: decisions per epoch, of which the first CHAN_NAP_RUN
 * nap and the next CHAN_NAP_RUN wait in the loop; CHAN_NAP_SAMPLES cycles
 * of each run (its last ones) are timed. */
#define CHAN_NAP_EPOCH 256u
#define CHAN_NAP_RUN 16u
#define CHAN_NAP_SAMPLES 12u
/* Epochs without runs after the loop won one: 1, 2, 4, 8, then at most
 * this many (nap_way; a nap win puts it back to none). */
#define CHAN_NAP_QUIET_MAX 15u

/* One side's private state. */
typedef struct chan_end {
	uint8_t *base;
	chan_layout_t lay;
	chan_ctl_t *ctl;
	int side;
	int tx, rx;                       /* direction we produce / consume */
	/* Worked out once at attach from the fields above (chan_end_init),
	 * never from shared memory: a send or receive used to recompute them
	 * from base, lay and tx/rx every time (~8 instructions a message). */
	chan_dir_t *txd, *rxd;            /* &ctl->dir[tx], &ctl->dir[rx] */
	uint8_t *tx_ring, *rx_ring;       /* slot 0 of each direction's ring */
	uint32_t slot_mask;               /* lay.lim.slots - 1 */

	uint32_t tx_head;                 /* our producer index (private truth) */
	uint32_t tx_tail_seen;            /* the peer's tail as last loaded and checked: reloaded
					   * only when the ring looks full from it */
	uint32_t rx_tail;                 /* our consumer index */
	bool rx_settle;                   /* tail published, its fence and prod_waiting check owed
					   * (chan_rx_settle; publish() pays them with its own fence) */
	uint32_t rel_pop;                 /* our pop index on our release ring */
	uint32_t rel_push;                /* our push index on the peer's release ring */

	uint8_t *buf_state;               /* per own pool buffer: BUF_* */
	uint32_t *buf_run;                /* run length at a run's first buffer */
	uint32_t pool_free;
	uint8_t *inline_pending;          /* tx_stage, handed out by chan_alloc, not yet sent */

	_Alignas(8) uint8_t rx_copy[THOTH_CHAN_INLINE_MAX];  /* inline messages are read from here */
	_Alignas(64) uint8_t tx_stage[THOTH_CHAN_INLINE_MAX]; /* and built here, then copied to the slot */

	int err;                          /* sticky: CORRUPT or PEER_GONE */
	char why[160];                    /* what was wrong */
	int sock;                         /* our end of the channel's Unix socket, or -1:
					   * liveness of the peer (EOF = gone) and doorbells */
	bool peer_bell;                   /* wake the peer with a doorbell byte on sock, not a futex */
	bool own_bell;                    /* we wait on sock (a loop watches it), not on a futex */
	bool claim;                       /* claim the peer's flags before a doorbell byte (ring_if_waiting):
					   * only where the peer re-arms after reading doorbells back */
	uint32_t service_pid;             /* traced as service_id: the service instance */
	thoth_chan_wait_t wait;
	uint32_t spin_max, spin_budget;   /* ns */
	uint32_t spin_waits;              /* spin decisions made: every SPIN_PROBE-th tries spin_max */
	uint32_t spin_round_ns;           /* the last timed round of polls (chan_spin's first is not) */
	uint32_t presence;                /* last value we published in our presence word */
	uint32_t presence_tid;            /* the tid we published in our presence word (0: none) */
	bool rang;                        /* we woke the peer since our last spin decision */
	bool nap_ok;                      /* chan_nap may nap: the last wait took <= spin_max */
	uint16_t nap_skip;                /* chan_nap: naps still to skip (back-off after misses) */
	uint16_t nap_backoff;             /* naps skipped after the next miss (doubles, halves) */
	uint16_t nap_turns;               /* chan_nap decisions made (epochs: nap_way) */
	uint8_t nap_cycle_way;            /* how the wait begun at nap_cycle_at is waited (NAP_WAY_*) */
	bool nap_loop_wins;               /* the last epoch's loop run beat its nap run */
	bool nap_epoch_quiet;             /* this epoch runs no nap and loop runs (nap_way) */
	uint8_t nap_quiet;                /* epochs still to run quiet */
	uint8_t nap_quiet_next;           /* quiet epochs after the loop's next win (0 = 1; 2, 4, 8, 15) */
	uint8_t nap_n[2];                 /* cycles timed this epoch: napping, in the loop */
	uint32_t nap_s[2][CHAN_NAP_SAMPLES];
	uint32_t nap_avg_ns, loop_avg_ns; /* the last epoch's median cycles napping / in the loop (ns) */
	uint64_t nap_cycle_at;            /* the last idle moment chan_nap saw */
	uint64_t nap_cycle_rx;            /* st.received then: a cycle is timed with one message */
	bool stamp_tx;                    /* the consumer of what we send asked for send stamps */
	bool stamp_rx;                    /* we asked for send stamps on what we receive */
	uint32_t rx_stamp;                /* the stamp word of the message last received */
	uint32_t bell_arms;               /* nonzero stores of our waiting flags since our last read-back */
	uint32_t bell_read;               /* doorbell bytes our last read-back took */
	uint32_t bell_arms_read;          /* bell_arms when it did */
	thoth_chan_stats_t st;
	chan_mod_end_t mod;
} chan_end_t;

/* Write the control page of a fresh, zeroed mapping of LAY.size bytes. */
void chan_shm_format(uint8_t *base, const chan_layout_t *lay);
/* On a formatted page, before it is shared: the consumer of direction D
 * asks its producer for a CLOCK_MONOTONIC send stamp on every message. */
void chan_shm_want_stamps(uint8_t *base, int d);

/* Attach SIDE to a mapping of LAY.size bytes (checks the control page:
 * THOTH_E_CORRUPT with e->why on a mismatch).  Never fails otherwise
 * except THOTH_E_NOMEM. */
int chan_end_init(chan_end_t *e, uint8_t *base, const chan_layout_t *lay, int side);
void chan_end_fini(chan_end_t *e);

/* Map a channel memfd of SIZE bytes followed by a guard page (PROT_NONE),
 * so that a bug can never read past it silently.  NULL on failure. */
uint8_t *chan_shm_map(int fd, size_t size);
void chan_shm_unmap(uint8_t *base, size_t size);

/* Non-blocking primitives: 0, THOTH_E_AGAIN, or a sticky error. */
int chan_try_alloc(chan_end_t *e, size_t len, uint8_t **buf);

/* The ring slot of index IDX in direction D. */
static inline uint8_t *chan_slot_at(const chan_end_t *e, int d, uint32_t idx)
{
	return e->base + e->lay.ring_off[d] + (size_t)(idx & (e->lay.lim.slots - 1)) * THOTH_CHAN_SLOT_SIZE;
}

/* The slot of index IDX in the ring we send on / receive from: the same
 * address as chan_slot_at(e, e->tx / e->rx, idx), from the ring bases
 * worked out at attach. */
static inline uint8_t *chan_tx_slot(const chan_end_t *e, uint32_t idx)
{
	return e->tx_ring + (size_t)(idx & e->slot_mask) * THOTH_CHAN_SLOT_SIZE;
}

static inline uint8_t *chan_rx_slot(const chan_end_t *e, uint32_t idx)
{
	return e->rx_ring + (size_t)(idx & e->slot_mask) * THOTH_CHAN_SLOT_SIZE;
}

/* chan_try_alloc without a call in its common case (an inline message, no
 * slot promised yet, a free slot by the tail last seen: only our own
 * words are read); anything else, with every answer, is chan_try_alloc's. */
static inline int chan_try_alloc_fast(chan_end_t *e, size_t len, uint8_t **buf)
{
	if (!e->err && len >= THOTH_WIRE_HEADER_SIZE && len <= THOTH_CHAN_INLINE_MAX &&
	    !e->inline_pending && e->tx_head - e->tx_tail_seen < e->lay.lim.slots) {
		*buf = e->inline_pending = e->tx_stage;
		return 0;
	}
	return chan_try_alloc(e, len, buf);
}
int chan_try_send(chan_end_t *e, uint8_t *buf, size_t len);
void chan_discard(chan_end_t *e, uint8_t *buf);
/* Receive.  The slot is handed back at once (tail stored), but the fence
 * and the check of a producer asleep on a full ring (prod_waiting) that
 * must follow the store are owed (e->rx_settle) until our next send
 * (publish() checks after the fence it makes anyway), receive, wait, nap
 * or close, or an explicit chan_rx_settle: an RPC's receive then pays no
 * fence on the path its caller waits on.  docs/IPC.md, "Memory ordering". */
int chan_try_recv(chan_end_t *e, thoth_msg_t *msg);
void chan_rx_settle_owed(chan_end_t *e);
static inline void chan_rx_settle(chan_end_t *e)
{
	if (e->rx_settle)
		chan_rx_settle_owed(e);
}
/* Hand a received message back: its pool buffer, if it has one, goes to
 * the peer's release ring.  An inline message (no handle: it was copied
 * out at receive) has nothing to give back, decided here without a call:
 * every message of a small call is inline. */
int chan_release_pool(chan_end_t *e, thoth_msg_t *msg);
static inline int chan_release(chan_end_t *e, thoth_msg_t *msg)
{
	return msg->handle ? chan_release_pool(e, msg) : 0;
}

/*
 * The messages published to us and not yet taken, read only (no index,
 * flag or counter of E changes, no chan_fail: a reader on another thread
 * than E's owner may call it while the owner is held elsewhere, e.g. in a
 * dispatch).  Walks our ring from our tail by the slots' tags, which alone
 * say a message is there (head is not read: a hostile head cannot make it
 * read anything), and stops at the first slot whose tag does not publish
 * it, after the ring's `slots`, or after MAX: the count (<= MAX).  With
 * STAMPS, the stamp word of each (0 where the tag says none) goes to
 * STAMPS[i]; the peer may rewrite a slot at any time, so every word is a
 * claim (chan_stamp_sent_ns, then a clamp: kernel/pm/governed.c).
 */
uint32_t chan_rx_peek(const chan_end_t *e, uint32_t max, uint32_t *stamps);

/* What a blocked side waits for. */
enum chan_cond { CHAN_WAIT_RECV, CHAN_WAIT_SLOT, CHAN_WAIT_POOL };

/* Can we make progress on COND now?  (Also drains releases for POOL.) */
int chan_ready(chan_end_t *e, enum chan_cond cond, size_t len);

/* chan_ready(E, CHAN_WAIT_SLOT, 0) without a call while the tail last
 * seen already shows a free slot (the serving loop asks before every
 * request); the same answer, since chan_ready's tx_space decides from that
 * tail first too. */
static inline int chan_tx_ready(chan_end_t *e)
{
	if (!e->err && e->tx_head - e->tx_tail_seen < e->lay.lim.slots)
		return 1;
	return chan_ready(e, CHAN_WAIT_SLOT, 0);
}

/*
 * Announce that we are about to sleep on COND (sets the waiting flag, then
 * a full fence) and re-check: returns 1 when the condition already holds
 * (flag cleared again: do not sleep), 0 when the peer will wake us.
 */
int chan_arm(chan_end_t *e, enum chan_cond cond, size_t len);
void chan_disarm(chan_end_t *e, enum chan_cond cond);
/* Both RECV and SLOT, one presence update (a server turn's start). */
void chan_disarm_both(chan_end_t *e);
/* The futex word a sleeper on COND waits on, and the value to wait for. */
_Atomic uint32_t *chan_wait_word(chan_end_t *e, enum chan_cond cond, uint32_t *expect);

/*
 * Block until COND holds: spin (SPIN mode, adaptive budget), then sleep on
 * the futex in slices of at most 10 ms, checking between slices that the
 * peer still lives (closed flag, socket EOF).  TIMEOUT_MS as in
 * thoth_chan_recv.  0, THOTH_E_AGAIN, THOTH_E_TIMEDOUT, THOTH_E_PEER_GONE,
 * THOTH_E_CORRUPT.
 */
int chan_wait(chan_end_t *e, enum chan_cond cond, size_t len, int timeout_ms);

/*
 * Consumer served by a loop (chan_server): the ring is empty and the peer
 * last ran on our CPU, so a spin cannot pay, and the loop's wait would cost
 * the round trip two more system calls (epoll_wait, the doorbell read).
 * Instead sleep on the receive ring's futex word, with cons_waiting =
 * CHAN_WAITING_FUTEX telling the producer to FUTEX_WAKE rather than ring
 * the socket, for at most spin_max (plus the thread's timer slack) and
 * never past UNTIL (the loop's next timer): the loop's other sources wait
 * no longer than a spin would have made them wait.  A nap that finds
 * nothing stops naps until a wait again ends within spin_max, and then
 * skips the next 1, 2, 4, ... (up to CHAN_NAP_BACKOFF_MAX) naps, the count
 * doubled by each miss and halved by each nap that is answered.  And in
 * epochs of 256 decisions, the first 16 nap and the next 16 wait in the
 * loop, and whichever gave the shorter median round trip (idle moment to
 * idle moment, one message between) is used for the other 224: with other
 * work runnable on the CPU napping measured 2-3x slower than the loop's
 * wait.  While the loop keeps winning, epochs without runs follow each
 * win (1, 2, 4, 8, then 15).  chan_server
 * naps only while its thread is confined to one CPU (serve_pinned).  true
 * when a message came (serve it), false otherwise (flag cleared: arm for
 * the loop as usual).  SPIN mode only; never with moderation.  docs/IPC.md,
 * "Naps".  NOW: the idle moment the caller just read (its CLOCK_MONOTONIC
 * ns), which the nap is timed from and its cycle ends at; 0 = read the
 * clock here.  The server reads it anyway (how long the channel sleeps),
 * and a second reading an instant later cost a clock read per idle
 * transition on the one-CPU round trip's path (docs/SCHED.md, "Stop 32").
 */
bool chan_nap(chan_end_t *e, uint64_t until, uint64_t now);
/*
 * chan_nap with a clock read only where one is needed.  *NOW: in, the
 * caller's reading or 0; out, the reading the decision used, or 0 when it
 * needed none.  That is a wait with no timer in the loop (UNTIL ==
 * UINT64_MAX), no naps to skip, no cycle of the chooser to close or start
 * (the way is the loop's, settled: a quiet epoch, or the rest of an epoch
 * whose runs are over, the loop having won; never its last decision) and a
 * spin budget above 0: then *QUIET is set, the decision is the loop's, and
 * the caller's sleep needs no timing either.  Its use, chan_spin_slept,
 * sizes spins, which a peer on our CPU never gets, and sets nap_ok (false
 * after a sleep longer than spin_max), which no quiet decision reads: the
 * epoch's last decision is timed, so its sleep sets nap_ok for the next
 * epoch's first, the one that may nap.  What an untimed sleep leaves out:
 * a long one mid-epoch neither halves the spin budget (stale until the
 * next timed sleep, should the peer move off our CPU) nor stops the
 * epoch's count of decisions, as nap_ok false used to.
 * Every decision is the one chan_nap makes with a reading; the one-CPU
 * service's idle moment costs no clock read (docs/SCHED.md, "Stop 34").
 */
bool chan_nap_at(chan_end_t *e, uint64_t until, uint64_t *now, bool *quiet);
#define CHAN_NAP_BACKOFF_MAX 64u

/* Spin (SPIN mode) for at most the adaptive budget until COND holds. */
bool chan_spin(chan_end_t *e, enum chan_cond cond, size_t len);
/* After sleeping WAITED_NS for the peer: grow the budget when a longer spin
 * would have caught it (twice the wait, up to spin_max), halve it when the
 * peer is slower than spin_max (floor 1 us).  The budget can always recover:
 * it is learnt from the wait that was needed, not from the spin that failed. */
void chan_spin_slept(chan_end_t *e, uint64_t waited_ns);

/* ---- moderation (PM-3; docs/PM.md, "Interrupt moderation") ---------------- */

/* Choose our rx policy (THOTH_E_INVAL for a bad one).  Before the peer
 * can see the channel, or at any time: the profile is republished at our
 * next sleep. */
int chan_mod_config(chan_end_t *e, const thoth_chan_moderation_cfg_t *cfg);
/* Consumer, about to arm CHAN_WAIT_RECV: update the policy, publish the
 * profile and our wake-up deadline (release), return that deadline (0 =
 * sleep until rung).  A timed sleep that found nothing is followed by an
 * untimed one, so an idle channel costs at most one timer wake-up. */
uint64_t chan_mod_sleep(chan_end_t *e);
/* Consumer, woken (by the peer, or by our deadline when BY_TIMER). */
void chan_mod_woke(chan_end_t *e, bool by_timer);
/* Producer: ring the peer now if we deferred a wake-up it still waits for. */
void chan_mod_flush(chan_end_t *e);
/* Producer's rule, pure for the tests: may a wake-up be deferred, given the
 * consumer's PROFILE and WAKE_BY words, our BACKLOG (unconsumed messages,
 * this one included) and the time NOW?  Clamps whatever the peer wrote. */
bool chan_mod_may_defer(uint32_t profile, uint64_t wake_by, uint32_t backlog, uint64_t now);
/* Send with THOTH_CHAN_URGENT etc. */
int chan_try_send_flags(chan_end_t *e, uint8_t *buf, size_t len, unsigned flags);

/* Is the peer still there?  0 or THOTH_E_PEER_GONE (sets e->err). */
int chan_check_peer(chan_end_t *e);

/* Take the doorbell bytes the peer sent on our socket (never blocks, one
 * recv of up to 256): 0, or THOTH_E_PEER_GONE when the socket reached its
 * end (not sticky: chan_check_peer sets e->err).  Sets bell_read and
 * bell_arms_read, and starts a new count of bell_arms. */
int chan_bell_drain(chan_end_t *e);

/* Doorbell promise (chan_ctl_t.bell): made by a side about its own
 * doorbells once at attach, read by the peer; the value is the promiser's
 * word, so the reader treats it as a claim. */
void chan_bell_promise(chan_end_t *e);
bool chan_bell_promised(const chan_end_t *e);

/* The service, before the memfd is shared: advertise CHAN_BELL_REARMS in
 * its word, and claim the client's flags where it rings a doorbell byte
 * (a loop_wakeup client, which reads its doorbells back before it arms). */
void chan_bell_advertise(chan_end_t *e);
/* The client, at attach (peer_bell set): claim the service's flags only if
 * it advertised CHAN_BELL_REARMS.  Returns e->claim: whether it may
 * promise CHAN_BELL_ONCE. */
bool chan_bell_attach(chan_end_t *e);

/* Mark our side closed and wake the peer. */
void chan_end_close(chan_end_t *e);

/* Set the sticky error with a reason; returns ERR. */
int chan_fail(chan_end_t *e, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4), cold));

/* Tests only: the client side's view of an open channel. */
chan_end_t *thoth_chan__end(thoth_chan_t *ch);

#endif
