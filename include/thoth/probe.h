/*
 * thoth/probe.h - eBPF probes at ThothOS trace points (OBS-2).
 *
 * Two audiences include this header:
 *
 *  - probe programs, compiled with `clang -O2 -g -target bpf -c prog.c`:
 *    they get `struct thoth_probe_ctx`, the read-only context every program
 *    in a SEC("thoth/<trace point>") section receives in r1.  Include this
 *    header before <bpf/bpf_helpers.h>: under -target bpf it supplies the
 *    __u8..__u64 types and the BPF_MAP_TYPE_* / BPF_ANY constants that
 *    <linux/bpf.h> would (that header needs the host's asm/ directory,
 *    which -target bpf does not search).
 *
 *  - C programs (thothctl, thothd, tests): the loader, the verifier, the
 *    interpreter and the in-process attach API.  docs/PROBES.md describes
 *    the whole runtime.
 */
#ifndef THOTH_PROBE_H
#define THOTH_PROBE_H

#if defined(__bpf__)
/* ---- the program side --------------------------------------------------- */
#ifndef __u64
#if !defined(_LINUX_TYPES_H) && !defined(__ASM_GENERIC_INT_LL64_H)
typedef __UINT8_TYPE__ __u8;
typedef __INT8_TYPE__ __s8;
typedef __UINT16_TYPE__ __u16;
typedef __INT16_TYPE__ __s16;
typedef __UINT32_TYPE__ __u32;
typedef __INT32_TYPE__ __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
#endif
#endif
#ifndef _UAPI__LINUX_BPF_H__
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
#endif
#define THOTH_PROBE_U64 __u64
#define THOTH_PROBE_U32 __u32
#define THOTH_PROBE_U16 __u16
#define THOTH_PROBE_U8 __u8
#else
#include <stddef.h>
#include <stdint.h>

#include "thoth/error.h"
#define THOTH_PROBE_U64 uint64_t
#define THOTH_PROBE_U32 uint32_t
#define THOTH_PROBE_U16 uint16_t
#define THOTH_PROBE_U8 uint8_t
#endif

/*
 * The context of every probe: read-only (a store into it is rejected by the
 * verifier), 64 bytes.  The first 32 bytes are fixed for every trace point;
 * the rest carries the point's own fields (docs/PROBES.md, per point):
 * message points (msg_send, msg_recv, chan_send, chan_recv) fill
 * interface_id, request_id, method and flags, and size = payload bytes;
 * generic points (timer_fire, loop_wakeup, registry_*, thothd_dispatch,
 * THOTH_TRACE user points) fill arg0 / arg1 (chan_recv: arg0 = queue delay
 * in trace-clock ticks).
 */
struct thoth_probe_ctx {
	THOTH_PROBE_U64 ts_ns;         /*  0 CLOCK_MONOTONIC ns of the event */
	THOTH_PROBE_U64 trace_id;      /*  8 wire trace id, 0 = none */
	THOTH_PROBE_U32 service_id;    /* 16 */
	THOTH_PROBE_U32 size;          /* 20 payload bytes (message points) */
	THOTH_PROBE_U32 cpu;           /* 24 CPU the event happened on */
	THOTH_PROBE_U32 tid;           /* 28 kernel thread id */
	THOTH_PROBE_U64 arg0;          /* 32 */
	THOTH_PROBE_U64 arg1;          /* 40 */
	THOTH_PROBE_U32 interface_id;  /* 48 */
	THOTH_PROBE_U32 request_id;    /* 52 */
	THOTH_PROBE_U16 method;        /* 56 */
	THOTH_PROBE_U8 flags;          /* 58 THOTH_TRACE_SEND/RECV | INLINE/ZERO_COPY */
	THOTH_PROBE_U8 category;       /* 59 THOTH_TRACE_CAT_* */
	THOTH_PROBE_U32 pid;           /* 60 the traced process */
};

#if !defined(__bpf__)
/* ---- the host side -------------------------------------------------------- */
#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
static_assert(sizeof(struct thoth_probe_ctx) == 64, "probe context is 64 bytes");
#else
_Static_assert(sizeof(struct thoth_probe_ctx) == 64, "probe context is 64 bytes");
#endif

/* Limits (docs/PROBES.md "Verifier"). */
#define THOTH_PROBE_MAX_INSNS      4096u     /* instructions per program */
#define THOTH_PROBE_MAX_PROCESSED  1000000u  /* instructions the verifier walks */
#define THOTH_PROBE_MAX_PROGS      64u       /* programs per object */
#define THOTH_PROBE_MAX_MAPS       64u       /* maps per object */
#define THOTH_PROBE_MAX_OBJECT     (16u << 20) /* bytes of an ELF object */
#define THOTH_PROBE_THREAD_SLOTS   64u       /* PERCPU_ARRAY: per-thread slots */

/* A parsed ELF object: programs, map definitions, license, line info. */
typedef struct thoth_probe_object thoth_probe_object_t;

/*
 * Parse an ELF object (bytes are copied).  On failure *out is NULL and,
 * when ERR is not NULL, a one-line reason is written there.
 * THOTH_E_BAD_MAGIC: not a BPF ELF object; THOTH_E_INVAL: a BPF object using
 * what probes do not support (a BTF-less map, a global variable, ...); THOTH_E_NOMEM.
 */
int thoth_probe_object_open(const void *bytes, size_t len, thoth_probe_object_t **out,
                            char *err, size_t err_len);
/* The same from a file; THOTH_E_IO (errno kept) when it cannot be read. */
int thoth_probe_object_open_file(const char *path, thoth_probe_object_t **out,
                                 char *err, size_t err_len);
void thoth_probe_object_free(thoth_probe_object_t *obj);

size_t thoth_probe_object_prog_count(const thoth_probe_object_t *obj);
/* Section ("thoth/msg_send"), function name, instruction count of program I. */
int thoth_probe_object_prog(const thoth_probe_object_t *obj, size_t i, const char **section,
                            const char **name, size_t *insns);
size_t thoth_probe_object_map_count(const thoth_probe_object_t *obj);
const char *thoth_probe_object_license(const thoth_probe_object_t *obj);

/*
 * Verify program I (every program with thoth_probe_object_verify_all).
 * 0 = accepted; THOTH_E_INVAL = rejected, the reason in MSG: the program,
 * the instruction index, file:line when the object has BTF line info, what
 * failed and the register state there.  Programs of kernel sections
 * (tracepoint/, raw_tp/, uprobe/) are not ours to verify: THOTH_E_NOT_FOUND.
 */
int thoth_probe_verify(const thoth_probe_object_t *obj, size_t i, char *msg, size_t msg_len);

/*
 * Build the helper's Linux name for ID ("bpf_map_lookup_elem"), or NULL for
 * a number Linux does not define.
 */
const char *thoth_probe_helper_name(int32_t id);

/* ---- loaded programs and their maps ---------------------------------- */

/* Programs of one object, verified, with their maps instantiated. */
typedef struct thoth_probe_prog thoth_probe_prog_t;
typedef struct thoth_probe_maps thoth_probe_maps_t;

/*
 * Engines (docs/PROBES.md "JIT"): the interpreter (the reference), the
 * x86-64 JIT, or AUTO = the JIT where there is one (x86-64) unless the
 * environment says THOTH_PROBE_JIT=0, else the interpreter.  Asking for
 * the JIT by name on another architecture fails (THOTH_E_INVAL, MSG says
 * why); AUTO falls back.
 */
#define THOTH_PROBE_ENGINE_INTERP 0u
#define THOTH_PROBE_ENGINE_JIT    1u
#define THOTH_PROBE_ENGINE_AUTO   2u

/*
 * Instantiate OBJ's maps in one shared-memory region (a sealed memfd that
 * thoth_probe_maps_fd exports: readers map it with thoth_probe_maps_open).
 */
int thoth_probe_maps_new(const thoth_probe_object_t *obj, thoth_probe_maps_t **out);
void thoth_probe_maps_free(thoth_probe_maps_t *maps);
int thoth_probe_maps_fd(const thoth_probe_maps_t *maps);
/* Map a region exported by another process (read-only view, validated):
 * FD must be a memfd on shmem sealed against shrinking, every map
 * descriptor one the loader makes, page-aligned inside the region. */
int thoth_probe_maps_open(int fd, thoth_probe_maps_t **out);
/* The same; a refusal's reason (the descriptor's kind, seals, size, the
 * header or map descriptor that is wrong) in WHY (WHY_LEN bytes, may be NULL). */
int thoth_probe_maps_open_why(int fd, thoth_probe_maps_t **out, char *why, size_t why_len);

/* One entry of a map, for readers: key and value bytes point into a copy. */
typedef struct thoth_probe_map_info {
	const char *name;
	uint32_t type;          /* BPF_MAP_TYPE_* */
	uint32_t key_size;
	uint32_t value_size;
	uint32_t max_entries;
	uint64_t lost;          /* ringbuf: records dropped (full); percpu: threads without a slot */
} thoth_probe_map_info_t;

size_t thoth_probe_maps_count(const thoth_probe_maps_t *maps);
int thoth_probe_maps_info(const thoth_probe_maps_t *maps, size_t i, thoth_probe_map_info_t *out);
/* FN for every entry of map I (hash: present keys; array: all; percpu array:
 * value = the sum over thread slots when value_size is 8, else slot 0's).
 * Ringbuf: FN for each unread record, consumed; KEY points to its length
 * (uint32_t). */
typedef int (*thoth_probe_entry_fn)(const void *key, const void *value, void *ctx);
int thoth_probe_maps_foreach(thoth_probe_maps_t *maps, size_t i, thoth_probe_entry_fn fn,
                             void *ctx);
/* Map operations from C (tests, the differential fuzzer). */
int thoth_probe_map_lookup(thoth_probe_maps_t *maps, size_t i, const void *key, void *value);
int thoth_probe_map_update(thoth_probe_maps_t *maps, size_t i, const void *key,
                           const void *value, uint64_t flags);

/*
 * Verify program I of OBJ and prepare it to run against MAPS (which must
 * come from the same object) with ENGINE.  MSG gets the verifier's reason.
 */
int thoth_probe_prog_load(const thoth_probe_object_t *obj, size_t i, thoth_probe_maps_t *maps,
                          unsigned engine, thoth_probe_prog_t **out, char *msg, size_t msg_len);
void thoth_probe_prog_free(thoth_probe_prog_t *prog);
/* The engine that runs PROG: THOTH_PROBE_ENGINE_INTERP or _JIT. */
unsigned thoth_probe_prog_engine(const thoth_probe_prog_t *prog);
/* The trace point name the program attaches to ("*" = every point). */
const char *thoth_probe_prog_point(const thoth_probe_prog_t *prog);
/*
 * Run once on CTX; *ret gets r0.  THOTH_E_LIMIT when the run exceeded
 * the per-run budget (interpreter: 1,000,000 instructions; JIT: 1,000,000
 * passes through loop heads) - the program is not stopped mid-way by
 * anything else: the verifier bounds it.
 */
int thoth_probe_prog_run(thoth_probe_prog_t *prog, const struct thoth_probe_ctx *ctx,
                         uint64_t *ret);

/* ---- one-line scripts (docs/PROBES.md "One-line scripts") ------------- */

/*
 * Compile a script of LEN bytes, e.g.
 *   msg_send /size > 1024/ { @bytes[service_id] = sum(size); }
 * to an eBPF ELF object (*elf, *elf_len; free() it) that
 * thoth_probe_object_open reads like clang's.  THOTH_E_INVAL with ERR =
 * "column N: expected X, found Y" on a syntax error; THOTH_E_LIMIT for a
 * script over 4096 bytes.  Linear in LEN.
 */
int thoth_probe_script_compile(const char *src, size_t len, uint8_t **elf, size_t *elf_len,
                               char *err, size_t err_len);

/* ---- attaching to this process's trace points --------------------------- */

/*
 * Attach PROG to this process's trace points (its point, or every point
 * for "*").  The program runs at each hit of the point, whether or not the
 * point's category is being recorded, until detached.  Needs a trace
 * buffer (thoth_trace_init): the attach flag lives in its enabled word.
 * Attach and detach swap an immutable set (no trace point is skipped or
 * recorded twice around the swap).  *id gets a handle for detach.
 */
int thoth_probe_attach(thoth_probe_prog_t *prog, uint64_t *id);
/* Detach; returns once no thread still runs the program (PROG may then be
 * freed).  THOTH_E_NOT_FOUND for an unknown id. */
int thoth_probe_detach(uint64_t id);
/* Per-attachment counters. */
typedef struct thoth_probe_stats {
	uint64_t runs;
	uint64_t run_ns;        /* sampled: every 64th run is timed, scaled */
	uint64_t budget_exceeded;
	int detached;           /* detached by the runtime (budget), reason below */
	char reason[128];
} thoth_probe_stats_t;
int thoth_probe_stats(uint64_t id, thoth_probe_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif /* !__bpf__ */
#endif
