/*
 * trace_layout.h - the shared-memory layout of a trace buffer (one memfd per
 * process).  This is a cross-process layout: writers are the threads of the
 * traced process, readers are other processes (thothd, tests) that must treat
 * every byte as untrusted.  docs/OBSERVABILITY.md is the prose version.
 *
 *   offset 0                 control page (4096 bytes)
 *   offset 4096              name table: THOTH_TRACE_MAX_NAMES x 32 bytes
 *   offset RINGS_OFFSET      ring 0, ring 1, ... each RING_HEADER + records
 *
 * All integers are little-endian host order (x86-64, aarch64).
 */
#ifndef THOTH_TRACE_LAYOUT_H
#define THOTH_TRACE_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/trace.h"

#define THOTH_TRACE_MAGIC        0x52544854u  /* 'T' 'H' 'T' 'R' */
#define THOTH_TRACE_VERSION      1u
#define THOTH_TRACE_RECORD_SIZE  64u
#define THOTH_TRACE_CONTROL_SIZE 4096u
#define THOTH_TRACE_MAX_NAMES    256u         /* event ids 1..255; 0 = unnamed */
#define THOTH_TRACE_NAME_SLOT    32u
#define THOTH_TRACE_NAMES_OFFSET THOTH_TRACE_CONTROL_SIZE
#define THOTH_TRACE_RINGS_OFFSET \
	(THOTH_TRACE_NAMES_OFFSET + THOTH_TRACE_MAX_NAMES * THOTH_TRACE_NAME_SLOT)
#define THOTH_TRACE_RING_HEADER  128u
#define THOTH_TRACE_MAX_RINGS    1024u
#define THOTH_TRACE_MAX_RECORDS  (1u << 20)

/* Clock kinds (control.clock_kind), how record timestamps are converted:
 * THOTH_TRACE_CLOCK_MONOTONIC / _TSC in thoth/trace.h. */

/*
 * Control page.  The creator writes every field before it hands the fd out
 * (so a reader that got the fd sees them); afterwards:
 *   enabled        written by anyone holding the fd (relaxed); writers read
 *                  it relaxed at every trace point: a flip takes effect
 *                  within the cache-coherence latency, no ordering needed.
 *   rings_claimed  fetch_add by writer threads claiming a ring.
 *   names_count    store-release by the registering writer after the entry.
 *   no_ring        fetch_add by threads that found no free ring.
 */
typedef struct thoth_trace_control {
	uint32_t magic;          /*  0 THOTH_TRACE_MAGIC */
	uint16_t version;        /*  4 THOTH_TRACE_VERSION */
	uint16_t record_size;    /*  6 THOTH_TRACE_RECORD_SIZE */
	uint32_t ring_count;     /*  8 rings in the buffer */
	uint32_t ring_records;   /* 12 records per ring (power of two) */
	uint32_t full_policy;    /* 16 THOTH_TRACE_OVERWRITE_OLDEST / _DROP_NEWEST */
	uint32_t rings_claimed;  /* 20 rings handed out (may exceed ring_count) */
	uint64_t enabled;        /* 24 category mask read by every trace point */
	uint32_t pid;            /* 32 creating process */
	uint32_t clock_kind;     /* 36 THOTH_TRACE_CLOCK_* */
	uint64_t clock_anchor_ticks; /* 40 TSC at clock_anchor_ns (TSC clock) */
	uint64_t clock_anchor_ns;    /* 48 CLOCK_MONOTONIC at init */
	uint64_t no_ring;        /* 56 events lost: no free ring for the thread */
	uint32_t names_count;    /* 64 valid entries in the name table */
	uint32_t reserved0;      /* 68 */
	uint64_t total_size;     /* 72 bytes of the memfd */
	char process_name[32];   /* 80 NUL-terminated */
	uint64_t oneways_dropped; /* 112 the process's thoth_rpc_oneways_dropped (relaxed
				  * stores of the count, never lower: rpc.c); 0 from a
				  * library older than loose38 (the page is zeroed) */
} thoth_trace_control_t;

/*
 * The probe mailbox (OBS-2, docs/PROBES.md "Live attach"): the second half
 * of the control page.  A collector (thothd) posts one command at a time;
 * the traced process takes it at its next trace point (the collector sets
 * the probe bits, 8-15, of `enabled` so that one enters the slow path),
 * acknowledges it and reports its probes in `slots`.  The process copies
 * every field it reads into private memory and validates it; the program
 * it fetches is verified again in the process.
 *   cmd_seq   collector: store-release after the command fields
 *   ack_seq   process: store-release after ack_status, maps_fd, ack_msg
 *   slots     process: refreshed while probes run (relaxed; informative)
 *   claim_seq the last command taken, by whoever took it: the process
 *             (to act on it) or the collector (to withdraw it unacted);
 *             compare-and-swap upwards only, so exactly one side wins a
 *             command.  A process whose features word lacks
 *             THOTH_TRACE_PROBE_FEAT_WITHDRAW (an older libthoth: the
 *             word was zero) never claims, so a collector must not
 *             withdraw there.
 *   features  process: THOTH_TRACE_PROBE_FEAT_*, written at creation
 * A collector withdraws a command nobody took (an idle target that never
 * reaches a trace point: `thothctl probe run` twice in a row blocked on
 * the first one, which then attached long after its run had ended) by
 * claiming it and acknowledging it itself with THOTH_E_CLOSED; the
 * process, finding it claimed, skips it.
 */
#define THOTH_TRACE_PROBE_MAILBOX_OFFSET 2048u
#define THOTH_TRACE_PROBE_SLOTS 12u
#define THOTH_TRACE_PROBE_CMD_ATTACH 1u
#define THOTH_TRACE_PROBE_CMD_DETACH 2u
#define THOTH_TRACE_PROBE_FREE 0u
#define THOTH_TRACE_PROBE_RUNNING 1u
#define THOTH_TRACE_PROBE_STOPPED 2u    /* detached by the process (budget): reason */
#define THOTH_TRACE_PROBE_FEAT_WITHDRAW 1u  /* the process claims commands (claim_seq) */

typedef struct thoth_trace_probe_slot {
	uint64_t probe_id;       /*  0 the collector's id */
	uint64_t runs;           /*  8 */
	uint32_t state;          /* 16 THOTH_TRACE_PROBE_* */
	int32_t maps_fd;         /* 20 in the process's fd table */
	char reason[96];         /* 24 NUL-terminated */
} thoth_trace_probe_slot_t;

typedef struct thoth_trace_probe_mailbox {
	uint64_t cmd_seq;        /*   0 */
	uint32_t cmd;            /*   8 THOTH_TRACE_PROBE_CMD_* */
	uint32_t from_pid;       /*  12 the collector (object_fd is in its fd table) */
	int32_t object_fd;       /*  16 attach: a sealed memfd holding the ELF object */
	uint32_t object_len;     /*  20 */
	uint64_t probe_id;       /*  24 attach: the id of the first program (then +1 ...); detach: the id */
	uint64_t ack_seq;        /*  32 */
	int32_t ack_status;      /*  40 0 or a THOTH_E_* */
	int32_t maps_fd;         /*  44 attach: the maps memfd in the process's fd table */
	char ack_msg[464];       /*  48 why it failed (the verifier's message) */
	thoth_trace_probe_slot_t slots[THOTH_TRACE_PROBE_SLOTS]; /* 512 */
	uint64_t claim_seq;      /* 1952 */
	uint32_t features;       /* 1960 THOTH_TRACE_PROBE_FEAT_* */
	uint32_t reserved;       /* 1964 */
} thoth_trace_probe_mailbox_t;

/* thoth_trace_reader_open, and WHY (WHY_LEN bytes, may be NULL) told the
 * reason of a refusal: the descriptor's kind, its seals, its size, the
 * control page's word that is wrong. */
int thoth__trace_reader_open_why(int fd, thoth_trace_reader_t **out, char *why, size_t why_len);
/* The kind of a descriptor that is no memfd (st_mode MODE), for a reason:
 * "a pipe or FIFO", "a socket", ... */
const char *thoth__trace_fd_kind(unsigned mode);

/* The control page a reader maps (read-write): the collector's side of the mailbox. */
void *thoth__trace_reader_control_page(thoth_trace_reader_t *r);
/* The whole mapping a reader holds (read-only use): 0, or THOTH_E_INVAL. */
int thoth__trace_reader_mapping(const thoth_trace_reader_t *r, const uint8_t **base, size_t *size);
/* Records waiting for READER across its claimed rings, without consuming
 * any (at most ring_records a ring: older ones are lost, not waiting).
 * Cheap: two loads a ring.  A hostile header can make it wrong, never
 * unbounded.  thothd decides with it where a drain runs (trace.c). */
uint64_t thoth__trace_reader_unread(const thoth_trace_reader_t *r);
/* Each ring's head (records ever claimed in it) now, for the first N rings
 * (the rest of HEADS, up to N, zero): a cut in the stream that says which
 * records came before it (an event's seq below its ring's head here) without
 * reading any.  The writer owns the heads: a hostile one misplaces only its
 * own records. */
void thoth__trace_reader_heads(const thoth_trace_reader_t *r, uint64_t *heads, uint32_t n);
/* The writers' own loss counters now, as every poll reads them into
 * stats.dropped and stats.no_ring (one load a claimed ring, the sum
 * saturated): with a cut (thoth__trace_reader_heads) they say what was
 * refused before it, for records that never got a sequence to be cut by. */
void thoth__trace_reader_refused(const thoth_trace_reader_t *r, uint64_t *dropped, uint64_t *no_ring);
/* What READER counts as lost to a ring's writer, by sequence, each run of
 * consecutive records of one kind in one call: ring RING's records [FROM,
 * TO) of KIND (thoth__trace_lost_kind), as the reader counts them:
 *   OVERWRITTEN  (stats.overwritten) an OVERWRITE_OLDEST ring's records
 *                lapped before it got to them or overwritten while it
 *                copied them: the lap and the copies that failed right
 *                after it make one call, but copies failing one in two (a
 *                writer racing the copy) make one call each, about
 *                ring_records / 2 a ring per poll at most;
 *   INVALID      (stats.invalid) records whose fields do not decode, and a
 *                DROP_NEWEST ring's lap or broken copies (its writer never
 *                laps: a lie or a broken slot), runs as above;
 *   TORN         (stats.torn) the record at a ring's head left mid-write by
 *                a writer that died in it: [head, head + 1), once a ring
 *                (the head never moves after);
 *   UNPLACED     (stats.invalid) a head gone backwards (a lying writer): no
 *                sequence, FROM 0 and TO 1, whoever is told counts it.
 * FN runs within the poll (or thoth__trace_reader_find_torn) that counts
 * them, on its thread; the TO - FROM it is told of a kind add up to what
 * that kind's stats grew by (until they saturate: a lying head).  The
 * reader knows these ranges anyway: nothing is added to the writers'
 * path.  thothd splits them by its cuts (trace.c: a session's loss is
 * what it lost after its start and before its stop).  NULL FN: none. */
enum thoth__trace_lost_kind {
	THOTH__TRACE_LOST_OVERWRITTEN,
	THOTH__TRACE_LOST_INVALID,
	THOTH__TRACE_LOST_TORN,
	THOTH__TRACE_LOST_UNPLACED,
};
typedef void (*thoth__trace_lost_fn)(uint32_t ring, uint32_t kind, uint64_t from, uint64_t to,
                                     void *ctx);
void thoth__trace_reader_on_lost(thoth_trace_reader_t *r, thoth__trace_lost_fn fn, void *ctx);
/* The process whose threads the reader may probe to find a torn ring's
 * writer gone (tgkill, /proc/PID/task/TID/stat): the pid a verified channel
 * gave (thothd: the connection's SO_PEERCRED pid).  A ring naming another
 * pid is never found torn: the pid and tid in a ring are its writer's word,
 * and probing any would tell a hostile writer whether that thread exists
 * on the host.  0 (the default): any pid is probed (a reader of its own or
 * its children's buffer). */
void thoth__trace_reader_set_peer(thoth_trace_reader_t *r, uint32_t pid);
/* The same with PIDFD, a pidfd of that very process (consumed; -1: none):
 * a forked child that never connected is adopted only while it says its
 * parent lives (a reused number is not the parent).  set_peer opens one by
 * number: for the caller's own pid or its child's. */
void thoth__trace_reader_set_peer_pidfd(thoth_trace_reader_t *r, uint32_t pid, int pidfd);
/* The most pidfds all readers of this process hold at once (default: no
 * limit; thothd takes them off its clients' descriptors).  Over it a
 * reader keeps none: a stuck writer asked by tgkill and /proc, a peer or
 * adopted child refused.  Held now: thoth__trace_reader_pidfds_held. */
void thoth__trace_reader_pidfd_budget(uint32_t n);
uint32_t thoth__trace_reader_pidfds_held(void);
/* Another process verified to hold the same buffer (thothd: a second
 * connection handing over the same memfd, by SO_PEERCRED pid: a forked
 * child that shares its parent's buffer and connected itself): its
 * threads may be probed too, so that a child dying mid-record counts its
 * ring torn.  PIDFD: a pidfd of that very process (thothd: SO_PEERPIDFD),
 * consumed whatever the answer: once it says the process exited, its
 * threads are dead without asking about its pid number again (another
 * process may have it).  At most THOTH__TRACE_READER_PEERS pids besides
 * set_peer's at once; a full set first frees those exited and settled (as
 * remove_peer), else refuses (false: that pid's rings never torn).  Like
 * every peer call here, serialized with the reader's polls (thothd: mu).
 * No effect while no peer is set. */
#define THOTH__TRACE_READER_PEERS 15u
/* Of those, forked children that never connected (adopted at their ring's
 * first sight): fewer, so that connected ones find room; a connecting peer
 * takes an adopted one's slot when none is free (it is adopted again at
 * its ring's next BUSY head). */
#define THOTH__TRACE_READER_ADOPTED 8u
bool thoth__trace_reader_add_peer(thoth_trace_reader_t *r, uint32_t pid, int pidfd);
/* PID holds the buffer no more (thothd: its last connection closed): its
 * slot is freed once that is safe -- its process exited (its pidfd says
 * so: a reused pid number cannot fake it) and every record of its rings
 * was read, their torn heads counted -- now, or at the first poll that
 * finds it so (a poll(2) a poll while one waits).  Until then it is still
 * probed: a child's exit closes its connections before it is a zombie,
 * and its torn ring is found after.  A PID added again before is kept. */
void thoth__trace_reader_remove_peer(thoth_trace_reader_t *r, uint32_t pid);
/* Slots in use (tests, thothd's status). */
uint32_t thoth__trace_reader_peer_count(const thoth_trace_reader_t *r);
/* Count every claimed ring's torn head now (its record mid-write, its
 * writer gone), as a poll reaching it would, telling it to the on_lost
 * hook: two loads a ring (its head and its head slot's word0; a ring not
 * seen before is adopted first, adopt_ring), system calls only for a ring
 * whose head slot is BUSY (reader.c writer_is_dead).  With a cut (thoth__trace_reader_heads) it places what the cut
 * alone cannot: a torn record's sequence is the head, equal to a cut taken
 * after its writer died and to one taken while it was still writing.  Found
 * here, at the cut, it came before it; found later, after it. */
void thoth__trace_reader_find_torn(thoth_trace_reader_t *r);

/* A + B, or UINT64_MAX where that would wrap: a loss count a lying ring
 * head makes absurd stays absurd, never wraps round to a small one (nor
 * takes from a sum of other processes' losses). */
static inline uint64_t thoth__trace_sat_add(uint64_t a, uint64_t b)
{
	uint64_t sum;
	return __builtin_add_overflow(a, b, &sum) ? UINT64_MAX : sum;
}

/* How many of a ring's records [FROM, TO) lie within [*START, *STOP):
 * those of a collection cut at START (its first record) and at STOP (the
 * first not its own).  START NULL: no cut before (from the ring's first);
 * STOP NULL: none after. */
static inline uint64_t thoth__trace_cut_share(uint64_t from, uint64_t to, const uint64_t *start,
                                              const uint64_t *stop)
{
	if (start && from < *start)
		from = *start;
	if (stop && to > *stop)
		to = *stop;
	return to > from ? to - from : 0;
}

/* thoth_trace_reader_poll, reading each ring I < N only up to UPTO[I] (a
 * cut taken by thoth__trace_reader_heads) and rings from N on not at all:
 * what came before the cut, however fast writers add after it, so a drain
 * to a cut ends (at most ring_records a ring). */
int thoth__trace_reader_poll_upto(thoth_trace_reader_t *r, const uint64_t *upto, uint32_t n,
                                  thoth_trace_event_fn fn, void *ctx);

_Static_assert(THOTH_TRACE_PROBE_MAILBOX_OFFSET + sizeof(thoth_trace_probe_mailbox_t) <=
               THOTH_TRACE_CONTROL_SIZE, "probe mailbox fits the control page");

/*
 * Serve counters (SCALE-2, docs/SCALE.md "A per-CPU service's counters in
 * thothctl"): a process that serves with thoth_serve or thoth_serve_per_cpu
 * keeps each worker's server counters (thoth_chan_server_stats_t, one
 * writer each) in a slot of its trace buffer, so that thothd folds them on
 * read: no message, no publishing step, nothing per call beyond the
 * counter store itself.  The header lives in the control page; the slots
 * are a region after the rings (THOTH_TRACE_SERVE_SLOT bytes each).
 *   magic, slot_size, slot_count, region_offset
 *             written by the creator before the fd is handed out.
 *   seq       odd while the service (re)claims or releases the slots
 *             (store-release around the change), even otherwise.
 *   workers, stats_size, runs, iface, path
 *             written while seq is odd: slots in use (0 = not serving),
 *             sizeof(thoth_chan_server_stats_t) of the writer, serve runs
 *             so far, what is served (NUL-terminated).
 *   slots     slot i: worker i's counters, written by worker i's thread
 *             only (relaxed stores); zeroed at a claim.
 * A reader copies header and slots between two loads of seq and trusts
 * nothing: geometry against the mapping, workers against slot_count,
 * strings bounded (thothd: serve_stats.c).
 */
#define THOTH_TRACE_SERVE_OFFSET    1024u
#define THOTH_TRACE_SERVE_MAGIC     0x56525354u   /* 'T' 'S' 'R' 'V' */
#define THOTH_TRACE_SERVE_SLOT      128u
#define THOTH_TRACE_SERVE_MAX_SLOTS 1024u

typedef struct thoth_trace_serve {
	uint32_t magic;          /*   0 THOTH_TRACE_SERVE_MAGIC */
	uint32_t slot_size;      /*   4 THOTH_TRACE_SERVE_SLOT */
	uint32_t slot_count;     /*   8 slots in the region */
	uint32_t workers;        /*  12 slots in use now (0: not serving) */
	uint64_t region_offset;  /*  16 from the start of the buffer, page-aligned */
	uint64_t seq;            /*  24 odd while the header changes */
	uint32_t stats_size;     /*  32 bytes of counters at the start of each slot */
	uint32_t runs;           /*  36 serve runs since the buffer was made */
	char iface[64];          /*  40 the interface served */
	char path[112];          /* 104 the socket it listens on */
} thoth_trace_serve_t;

_Static_assert(sizeof(thoth_trace_serve_t) == 216, "serve header layout");
_Static_assert(THOTH_TRACE_SERVE_OFFSET >= sizeof(thoth_trace_control_t) &&
               THOTH_TRACE_SERVE_OFFSET + sizeof(thoth_trace_serve_t) <=
               THOTH_TRACE_PROBE_MAILBOX_OFFSET, "serve header between control and mailbox");

/* Name table entry (id = index + 1); written once, before names_count. */
typedef struct thoth_trace_name {
	char name[THOTH_TRACE_NAME_MAX + 1]; /* [A-Za-z0-9_], NUL-terminated */
	uint8_t category;
	uint8_t reserved[3];
} thoth_trace_name_t;

/*
 * Ring header: two cache lines so writer and reader never share one.
 * Line 0, written by the owning thread only:
 *   head      next sequence number; store-release AFTER the record at
 *             head-1 is committed, so every seq < head is complete.
 *   dropped   DROP_NEWEST: events refused because the ring was full.
 *   owner_*   written at claim, before state (store-release).
 *   state     0 free, 1 claimed.
 * Line 1, written by the (single) collecting reader:
 *   tail      every seq < tail has been consumed (store-release after the
 *             reader copied the records).  DROP_NEWEST writers load-acquire
 *             it to know which slots they may reuse.
 */
typedef struct thoth_trace_ring_header {
	uint64_t head;           /*  0 */
	uint64_t dropped;        /*  8 */
	uint32_t owner_pid;      /* 16 */
	uint32_t owner_tid;      /* 20 */
	uint32_t state;          /* 24 */
	uint32_t reserved0;      /* 28 */
	char thread_name[16];    /* 32 NUL-terminated */
	uint8_t pad0[16];        /* 48 */
	uint64_t tail;           /* 64 */
	uint8_t pad1[56];        /* 72 */
} thoth_trace_ring_header_t;

#define THOTH_TRACE_RING_CLAIMED 1u
#define THOTH_TRACE_RING_CLAIMING 2u   /* taken, owner fields being written (emit.c) */

/*
 * One record, 64 bytes, one cache line.  Word 0 is the commit word:
 *
 *   bits  0-31 commit    0 = never written, THOTH_TRACE_COMMIT_BUSY while the
 *                        writer fills the record, else 0x80000000 | (seq &
 *                        0x7fffffff) once complete
 *   bits 32-47 event_id  index + 1 into the name table (0 = unnamed)
 *   bits 48-55 category  THOTH_TRACE_CAT_*
 *   bits 56-63 flags     bits 0-1 transport, bit 2 SEND, bit 3 RECV
 *
 * Writer: store word0 = BUSY (relaxed); release fence; store words 1-7
 * (relaxed); store word0 = commit (release); store head = seq + 1 (release).
 * Reader: w = load word0 (acquire); copy words 1-7 (relaxed); acquire fence;
 * reload word0: the copy is valid only if both loads equal the commit
 * expected for seq (a seqlock: a writer lapping the slot mid-copy shows up).
 */
typedef struct thoth_trace_record {
	uint64_t word0;          /*  0 commit | event_id | category | flags */
	uint64_t timestamp;      /*  8 ticks of control.clock_kind */
	uint64_t trace_id;       /* 16 from the wire header, 0 = none */
	uint64_t arg0;           /* 24 */
	uint64_t arg1;           /* 32 */
	uint32_t service_id;     /* 40 */
	uint32_t interface_id;   /* 44 wire interface_id */
	uint32_t request_id;     /* 48 */
	uint32_t payload_size;   /* 52 bytes of message body */
	uint32_t tid;            /* 56 writing thread (kernel tid) */
	uint16_t method;         /* 60 method ordinal */
	uint16_t cpu;            /* 62 CPU the writer ran on */
} thoth_trace_record_t;

_Static_assert(sizeof(thoth_trace_control_t) == 120, "control layout");
_Static_assert(sizeof(thoth_trace_name_t) == THOTH_TRACE_NAME_SLOT, "name layout");
_Static_assert(sizeof(thoth_trace_ring_header_t) == THOTH_TRACE_RING_HEADER,
               "ring header layout");
_Static_assert(sizeof(thoth_trace_record_t) == THOTH_TRACE_RECORD_SIZE,
               "record layout");

#define THOTH_TRACE_COMMIT_BUSY  0x00000001u
#define THOTH_TRACE_COMMIT_DONE  0x80000000u
#define THOTH_TRACE_FLAGS_KNOWN  0x1fu

static inline uint32_t thoth_trace_commit_for(uint64_t seq)
{
	return THOTH_TRACE_COMMIT_DONE | (uint32_t)(seq & 0x7fffffffu);
}

static inline uint64_t thoth_trace_word0(uint32_t commit, uint16_t event_id,
                                         uint8_t category, uint8_t flags)
{
	return (uint64_t)commit | (uint64_t)event_id << 32 |
	       (uint64_t)category << 48 | (uint64_t)flags << 56;
}

static inline size_t thoth_trace_ring_stride(uint32_t ring_records)
{
	return THOTH_TRACE_RING_HEADER + (size_t)ring_records * THOTH_TRACE_RECORD_SIZE;
}

/* Bytes of a buffer with this geometry (caller validated the limits). */
static inline size_t thoth_trace_buffer_size(uint32_t ring_count, uint32_t ring_records)
{
	return THOTH_TRACE_RINGS_OFFSET + (size_t)ring_count * thoth_trace_ring_stride(ring_records);
}

/* Bytes of the memfd the writer makes (buffer.c): the rings, then, from
 * the next page, SERVE_SLOTS serve slots rounded up to a page.  The
 * largest is what a reader accepts at most (SERVE_MAX_SLOTS slots). */
static inline size_t thoth_trace_memfd_size(uint32_t ring_count, uint32_t ring_records,
                                            uint32_t serve_slots)
{
	size_t serve_off = (thoth_trace_buffer_size(ring_count, ring_records) + 4095) & ~(size_t)4095;
	return serve_off + (((size_t)serve_slots * THOTH_TRACE_SERVE_SLOT + 4095) & ~(size_t)4095);
}

static inline thoth_trace_ring_header_t *thoth_trace_ring_at(void *base, uint32_t ring_records,
                                                              uint32_t index)
{
	return (thoth_trace_ring_header_t *)((char *)base + THOTH_TRACE_RINGS_OFFSET +
	                                     (size_t)index * thoth_trace_ring_stride(ring_records));
}

static inline thoth_trace_record_t *thoth_trace_ring_records(thoth_trace_ring_header_t *ring)
{
	return (thoth_trace_record_t *)((char *)ring + THOTH_TRACE_RING_HEADER);
}

#endif
