/*
 * thoth/trace.h - ThothOS tracing: trace points, the per-process trace
 * buffer, the cross-process reader and the exporters.
 *
 * Writers (every ThothOS process) append fixed 64-byte records to per-thread
 * lock-free rings in one memfd per process.  A reader in another process
 * (thothd; tests) maps that memfd and drains it without stopping the writers.
 * The shared-memory layout and its memory ordering are specified in
 * docs/OBSERVABILITY.md and kernel/observability/trace_layout.h.
 *
 * Tracing is off by default.  A trace point whose category is disabled costs
 * one load and one predicted-not-taken branch (plus the USDT nop); it is
 * switched on at run time through the category mask in the buffer's shared
 * control page, by the process itself or by whoever holds the memfd.
 *
 * Trace points for service authors:
 *
 *     THOTH_TRACE(USER, cache_miss, key_hash, 0);
 *     THOTH_TRACE_MSG(IPC, msg_send, THOTH_TRACE_SEND, service_id, iface_id,
 *                     method, request_id, payload_size,
 *                     THOTH_TRACE_INLINE, trace_id);
 *
 * The event name is a C identifier; it becomes the USDT probe name
 * (provider "thoth") and the event name the exporters print.
 */
#ifndef THOTH_TRACE_H
#define THOTH_TRACE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/sdt.h>
#include <time.h>

#include "thoth/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- categories: bit numbers in the enabled mask ----------------------- */
enum thoth_trace_category {
	THOTH_TRACE_CAT_IPC      = 0,  /* message send / receive */
	THOTH_TRACE_CAT_REGISTRY = 1,  /* registry operations */
	THOTH_TRACE_CAT_TIMER    = 2,  /* timer fires */
	THOTH_TRACE_CAT_LOOP     = 3,  /* event-loop wake-ups */
	THOTH_TRACE_CAT_PM       = 4,  /* power-management transitions */
	THOTH_TRACE_CAT_USER     = 5,  /* service authors' own trace points */
	THOTH_TRACE_CAT_COUNT    = 6,
};
#define THOTH_TRACE_ALL_CATEGORIES ((UINT64_C(1) << THOTH_TRACE_CAT_COUNT) - 1)
#define THOTH_TRACE_MASK(cat) (UINT64_C(1) << THOTH_TRACE_CAT_##cat)

/* Transport of a traced message (record flags bits 0-1). */
#define THOTH_TRACE_NO_TRANSPORT 0u
#define THOTH_TRACE_INLINE       1u   /* payload copied through the ring */
#define THOTH_TRACE_ZERO_COPY    2u   /* payload passed by shared-memory handle */
/* Direction of a traced message: the exporters link SEND -> RECV by trace id. */
#define THOTH_TRACE_SEND         0x4u
#define THOTH_TRACE_RECV         0x8u
/* arg0 is a duration in trace-clock ticks (a message's queueing delay); the
 * reader converts it to ns and clears the flag, so readers' users never see
 * it.  Lets a writer take one clock reading per event. */
#define THOTH_TRACE_ARG0_TICKS   0x10u

/* Longest event name, without its NUL. */
#define THOTH_TRACE_NAME_MAX 27u

/* ---- configuration and the process-wide buffer ------------------------- */

#define THOTH_TRACE_OVERWRITE_OLDEST 0u  /* full ring: writer overwrites oldest */
#define THOTH_TRACE_DROP_NEWEST      1u  /* full ring: writer drops the new event */

typedef struct thoth_trace_config {
	uint32_t ring_count;    /* threads that can own a ring; 0 = 64 */
	uint32_t ring_records;  /* records per ring, a power of two; 0 = 4096 */
	uint32_t full_policy;   /* THOTH_TRACE_OVERWRITE_OLDEST or _DROP_NEWEST */
	uint64_t enabled;       /* initial category mask (0 = all off) */
	const char *process_name; /* NULL = /proc/self/comm */
} thoth_trace_config_t;

/*
 * Create this process's trace buffer (a memfd) and make trace points write
 * into it.  THOTH_E_EXISTS if already initialised.  Before init (and after
 * shutdown) every trace point is disabled.
 */
int thoth_trace_init(const thoth_trace_config_t *config);
/*
 * Unmap the buffer.  Callers guarantee no thread is inside a trace point;
 * trace points hit afterwards are disabled again.  A later init starts a
 * new buffer.
 */
int thoth_trace_shutdown(void);
/* The memfd of the buffer (owned by the library; dup it to keep it). */
int thoth_trace_export_fd(int *fd_out);
/* Replace / set / clear bits of the enabled category mask, at run time. */
int thoth_trace_set_enabled(uint64_t mask);
int thoth_trace_enable(uint64_t mask);
int thoth_trace_disable(uint64_t mask);

/*
 * What every ThothOS process calls at start-up (thothd, services, clients):
 * create the buffer with the defaults below, all categories OFF, so that a
 * collector (thothd, `thothctl trace start`) can switch them on at run time.
 * Cheap: one memfd of ring_count x ring_records x 64 B whose pages are only
 * touched by threads that trace, plus a clock anchor (~1 us in all).
 * Idempotent (0 when a buffer exists).  The environment can change it:
 *   THOTH_TRACE=off            no buffer (returns 0, trace points stay off)
 *   THOTH_TRACE=ipc,loop,...   categories switched on from the start
 * Defaults: 16 rings of 16384 records (1 MiB per tracing thread),
 * THOTH_TRACE_OVERWRITE_OLDEST.
 */
int thoth_trace_init_process(const char *process_name);

/* "ipc,registry,timer,loop,pm,user" (any subset, comma-separated; "all") to
 * a mask.  THOTH_E_INVAL names nothing known. */
int thoth_trace_parse_categories(const char *list, uint64_t *mask);

/* A fresh trace id for a message whose caller set none: this process's pid
 * in the high 32 bits, a counter below.  Never 0. */
uint64_t thoth_trace_new_id(void);

/* ---- the trace clock ----------------------------------------------------- */

/*
 * Records are stamped with this process's trace clock: raw TSC ticks where
 * the TSC is invariant (constant rate, synchronised across CPUs), else
 * CLOCK_MONOTONIC ns through the vDSO.  Readers convert ticks to ns; see
 * docs/OBSERVABILITY.md "Clock".  The kind is fixed by thoth_trace_init.
 */
#define THOTH_TRACE_CLOCK_MONOTONIC 0u  /* timestamp is CLOCK_MONOTONIC ns */
#define THOTH_TRACE_CLOCK_TSC       1u  /* timestamp is raw TSC ticks */

extern uint32_t thoth_trace_clock_kind;

/* CLOCK_MONOTONIC in ns.  Out of line because a strict ISO C program
 * (-std=c11) including this header has no clock_gettime declaration. */
uint64_t thoth_trace_monotonic_ns(void);

/* One reading of the trace clock (11 ns as rdtsc on the development VM,
 * 26 ns as clock_gettime). */
static inline uint64_t thoth_trace_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
	if (__builtin_expect(thoth_trace_clock_kind == THOTH_TRACE_CLOCK_TSC, 1))
		return __builtin_ia32_rdtsc();
#endif
	return thoth_trace_monotonic_ns();
}

/* ---- trace points -------------------------------------------------------- */

/* Fields of one event besides those the library fills (time, cpu, tid). */
typedef struct thoth_trace_fields {
	uint64_t trace_id;
	uint64_t arg0;
	uint64_t arg1;
	uint32_t service_id;
	uint32_t interface_id;
	uint32_t request_id;
	uint32_t payload_size;
	uint16_t method;
	uint8_t flags;        /* THOTH_TRACE_INLINE/ZERO_COPY | SEND/RECV | ARG0_TICKS */
	uint64_t timestamp;   /* 0 = now; else a thoth_trace_now() the caller took */
} thoth_trace_fields_t;

/*
 * The enabled mask: points at the shared control page while a buffer exists,
 * at a constant zero otherwise.  Read by every trace point; never NULL.
 */
extern uint64_t *thoth_trace_enabled_word;

/*
 * Bits 0-7 of the enabled word: record the category; bits 8-15
 * (cat + THOTH_TRACE_PROBE_SHIFT): a probe is attached (thoth/probe.h).
 * One test of both bits, so a point with neither costs what it did before
 * probes existed (the same instructions: test_probe_zero_cost).  Category
 * setters (thoth_trace_set_enabled, thoth_trace_reader_set_enabled) touch
 * bits 0-7 only.
 */
#define THOTH_TRACE_PROBE_SHIFT 8
#define THOTH_TRACE_CATEGORY_BITS UINT64_C(0xff)
#define THOTH_TRACE_IS_ON(cat)                                                 \
	__builtin_expect((__atomic_load_n(__atomic_load_n(                     \
	                          &thoth_trace_enabled_word, __ATOMIC_RELAXED), \
	                          __ATOMIC_RELAXED) &                           \
	                  ((UINT64_C(1) << THOTH_TRACE_CAT_##cat) |             \
	                   (UINT64_C(1) << (THOTH_TRACE_CAT_##cat +             \
	                                    THOTH_TRACE_PROBE_SHIFT)))) != 0, 0)

/*
 * Append one event (the enabled path of every trace point).  *id_cache is a
 * per-call-site cache of the event's id in this buffer; NAME must be a
 * string literal.  Never fails visibly: a full ring or a thread without a
 * ring is counted in the buffer.
 */
void thoth_trace_emit(unsigned category, uint32_t *id_cache, const char *name,
                      const thoth_trace_fields_t *fields);

/* A generic event with two 64-bit arguments. USDT: thoth:NAME(arg0, arg1). */
#define THOTH_TRACE(cat, name, a0, a1)                                         \
	do {                                                                   \
		uint64_t thoth_tr_a0_ = (uint64_t)(a0);                        \
		uint64_t thoth_tr_a1_ = (uint64_t)(a1);                        \
		STAP_PROBE2(thoth, name, thoth_tr_a0_, thoth_tr_a1_);          \
		if (THOTH_TRACE_IS_ON(cat)) {                                  \
			static uint32_t thoth_tr_id_;                          \
			thoth_trace_fields_t thoth_tr_f_ = {                   \
				.arg0 = thoth_tr_a0_, .arg1 = thoth_tr_a1_ };  \
			thoth_trace_emit(THOTH_TRACE_CAT_##cat, &thoth_tr_id_, \
			                 #name, &thoth_tr_f_);                 \
		}                                                              \
	} while (0)

/*
 * A message event.  DIR is THOTH_TRACE_SEND or THOTH_TRACE_RECV, TRANSPORT
 * THOTH_TRACE_INLINE or THOTH_TRACE_ZERO_COPY; TRACE_ID comes from the wire
 * header.  USDT: thoth:NAME(service_id, interface_id, method, request_id,
 * payload_size, flags, trace_id).
 */
#define THOTH_TRACE_MSG(cat, name, dir, svc, iface, meth, req, size, transport, \
                        tid)                                                    \
	do {                                                                    \
		uint32_t thoth_tr_svc_ = (uint32_t)(svc);                       \
		uint32_t thoth_tr_if_ = (uint32_t)(iface);                      \
		uint32_t thoth_tr_m_ = (uint32_t)(meth);                        \
		uint32_t thoth_tr_req_ = (uint32_t)(req);                       \
		uint32_t thoth_tr_sz_ = (uint32_t)(size);                       \
		uint32_t thoth_tr_fl_ = (uint32_t)((dir) | (transport));        \
		uint64_t thoth_tr_tid_ = (uint64_t)(tid);                       \
		STAP_PROBE7(thoth, name, thoth_tr_svc_, thoth_tr_if_,           \
		            thoth_tr_m_, thoth_tr_req_, thoth_tr_sz_,           \
		            thoth_tr_fl_, thoth_tr_tid_);                       \
		THOTH_TRACE_MSG_EMIT_(cat, name, 0, 0);                         \
	} while (0)

/*
 * The same with the message's queueing delay, for transports that stamp
 * messages with the trace clock: TS is the thoth_trace_now() this event
 * happened at (0 = take it here), QUEUE_TICKS the ticks from the sender's
 * stamp to TS (0 = not known).  The record's arg0 holds the delay (readers
 * deliver it in ns).  USDT: thoth:NAME(service_id, interface_id, method,
 * request_id, payload_size, flags, trace_id, queue_ticks) -- ticks of the
 * trace clock, non-zero only while the category is traced.
 */
#define THOTH_TRACE_MSG_Q(cat, name, dir, svc, iface, meth, req, size, transport, \
                          tid, ts, queue_ticks)                                   \
	do {                                                                      \
		uint32_t thoth_tr_svc_ = (uint32_t)(svc);                         \
		uint32_t thoth_tr_if_ = (uint32_t)(iface);                        \
		uint32_t thoth_tr_m_ = (uint32_t)(meth);                          \
		uint32_t thoth_tr_req_ = (uint32_t)(req);                         \
		uint32_t thoth_tr_sz_ = (uint32_t)(size);                         \
		uint64_t thoth_tr_q_ = (uint64_t)(queue_ticks);                   \
		uint32_t thoth_tr_fl_ = (uint32_t)((dir) | (transport) |          \
		                        (thoth_tr_q_ ? THOTH_TRACE_ARG0_TICKS : 0u)); \
		uint64_t thoth_tr_tid_ = (uint64_t)(tid);                         \
		uint64_t thoth_tr_ts_ = (uint64_t)(ts);                           \
		STAP_PROBE8(thoth, name, thoth_tr_svc_, thoth_tr_if_,             \
		            thoth_tr_m_, thoth_tr_req_, thoth_tr_sz_,             \
		            thoth_tr_fl_, thoth_tr_tid_, thoth_tr_q_);            \
		THOTH_TRACE_MSG_EMIT_(cat, name, thoth_tr_q_, thoth_tr_ts_);      \
	} while (0)

/* The record behind THOTH_TRACE_MSG{,_Q}, from the thoth_tr_*_ locals. */
#define THOTH_TRACE_MSG_EMIT_(cat, name, a0, ts)                                \
	if (THOTH_TRACE_IS_ON(cat)) {                                           \
		static uint32_t thoth_tr_id_;                                   \
		thoth_trace_fields_t thoth_tr_f_ = {                            \
			.trace_id = thoth_tr_tid_,                              \
			.arg0 = (a0),                                           \
			.service_id = thoth_tr_svc_,                            \
			.interface_id = thoth_tr_if_,                           \
			.request_id = thoth_tr_req_,                            \
			.payload_size = thoth_tr_sz_,                           \
			.method = (uint16_t)thoth_tr_m_,                        \
			.flags = (uint8_t)thoth_tr_fl_,                         \
			.timestamp = (ts) };                                    \
		thoth_trace_emit(THOTH_TRACE_CAT_##cat, &thoth_tr_id_,          \
		                 #name, &thoth_tr_f_);                          \
	}

/* ---- reader: another process drains a live buffer ----------------------- */

typedef struct thoth_trace_reader thoth_trace_reader_t;

/* One decoded, validated event. NAME is owned by the reader. */
typedef struct thoth_trace_event {
	uint64_t timestamp_ns;  /* CLOCK_MONOTONIC */
	uint64_t trace_id;
	uint64_t arg0;
	uint64_t arg1;
	uint64_t seq;           /* position in its ring */
	uint32_t service_id;
	uint32_t interface_id;
	uint32_t request_id;
	uint32_t payload_size;
	uint32_t pid;
	uint32_t tid;
	uint32_t ring;          /* ring index inside the buffer */
	uint16_t cpu;
	uint16_t method;
	uint16_t event_id;      /* id in this buffer's name table */
	uint8_t category;
	uint8_t flags;
	const char *name;
} thoth_trace_event_t;

/* What a reader has seen and lost.  Every event written is either read or
 * counted in exactly one of the loss counters. */
typedef struct thoth_trace_stats {
	uint64_t read;         /* delivered to the callback */
	uint64_t dropped;      /* DROP_NEWEST: refused by writers, ring full */
	uint64_t overwritten;  /* OVERWRITE_OLDEST: lapped before this reader got them */
	uint64_t torn;         /* half-written by a writer that died mid-record */
	uint64_t invalid;      /* records that failed validation (corrupt memory) */
	uint64_t no_ring;      /* written by threads that found no free ring */
} thoth_trace_stats_t;

typedef int (*thoth_trace_event_fn)(const thoth_trace_event_t *event, void *ctx);

/*
 * Map the buffer behind FD (a memfd from thoth_trace_export_fd, received by
 * SCM_RIGHTS or opened as /proc/PID/fd/N) and validate its control page.
 * The reader keeps its own mapping; FD may be closed afterwards.
 */
int thoth_trace_reader_open(int fd, thoth_trace_reader_t **out);
/* Read a copy of a buffer image (a saved trace, a fuzzer's input). Writers
 * are assumed gone: an unfinished record at a ring's head counts as torn. */
int thoth_trace_reader_open_image(const void *bytes, size_t len,
                                  thoth_trace_reader_t **out);
void thoth_trace_reader_close(thoth_trace_reader_t *reader);
/*
 * Deliver every record committed since the last poll, ring by ring, to FN.
 * A non-zero return from FN stops the poll and is returned.
 */
int thoth_trace_reader_poll(thoth_trace_reader_t *reader,
                            thoth_trace_event_fn fn, void *ctx);
int thoth_trace_reader_stats(const thoth_trace_reader_t *reader,
                             thoth_trace_stats_t *out);
/* Flip the writer process's enabled mask (what thothd does). */
int thoth_trace_reader_set_enabled(thoth_trace_reader_t *reader, uint64_t mask);
/* The writer process: its pid and name (validated, NUL-terminated). */
int thoth_trace_reader_process(const thoth_trace_reader_t *reader,
                               uint32_t *pid, const char **name);
/* Name of the thread owning ring RING ("" when unknown). */
int thoth_trace_reader_thread_name(const thoth_trace_reader_t *reader,
                                   uint32_t ring, const char **name);
/* The buffer's geometry: rings and records per ring (a ring's fill is its
 * unread records over RING_RECORDS). */
int thoth_trace_reader_geometry(const thoth_trace_reader_t *reader,
                                uint32_t *ring_count, uint32_t *ring_records);

/* ---- collections and exporters ------------------------------------------ */

/* Events drained from one or more processes, ready to export. */
typedef struct thoth_trace_collection thoth_trace_collection_t;

int thoth_trace_collection_new(thoth_trace_collection_t **out);
void thoth_trace_collection_free(thoth_trace_collection_t *collection);
/* Drain READER into the collection (its process and thread names too). */
int thoth_trace_collection_add(thoth_trace_collection_t *collection,
                               thoth_trace_reader_t *reader);
size_t thoth_trace_collection_count(const thoth_trace_collection_t *collection);
/* Add one event a reader delivered (EVENT->name set), with its process's
 * and thread's names: for collectors that route each event themselves
 * (thothd's dashboard keeps a window of them). */
int thoth_trace_collection_add_event(thoth_trace_collection_t *collection,
                                     const thoth_trace_event_t *event,
                                     const char *process_name, const char *thread_name);

/* Chrome Trace Event JSON (Perfetto UI, chrome://tracing). */
int thoth_trace_export_chrome_json(const thoth_trace_collection_t *collection,
                                   FILE *out);
/* CTF 1.8 trace: DIR/metadata plus one stream file per thread.  DIR must
 * exist. */
int thoth_trace_export_ctf(const thoth_trace_collection_t *collection,
                           const char *dir);

#ifdef __cplusplus
}
#endif
#endif
