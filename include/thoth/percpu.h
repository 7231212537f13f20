/*
 * thoth/percpu.h - statistics counters without a shared cache line
 * (SCALE-2, docs/SCALE.md "Counters").
 *
 * Each thread adds to its own slot; a reader folds every thread's slots.
 * An increment is a TLS load, a load and a store to a line no other
 * thread writes: no atomic read-modify-write, no lock, no bouncing line.
 *
 * Why per-thread and not per-CPU (rseq): a per-CPU slot shared by every
 * thread that runs on that CPU needs either an atomic RMW (the bouncing we
 * want to avoid, if cheaper) or a restartable sequence so that a migration
 * between the load and the store cannot lose an increment.  A per-thread
 * slot has a single writer by construction, so a migration anywhere
 * inside the increment loses nothing, with no assembly and no dependence
 * on the rseq ABI glibc registered.  What it costs: memory per thread
 * instead of per CPU (one 512-byte block per thread that ever counted,
 * recycled when a thread exits), and a fold that walks the threads.  Our
 * services run one thread per core (SCHED-4), so both are the same size.
 *
 * Values are monotonic: a slot is never reset, a block of an exited thread
 * keeps its counts (a new thread continues from them), so a fold never
 * goes backwards and nothing is lost when threads come and go.
 */
#ifndef THOTH_PERCPU_H
#define THOTH_PERCPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Counters per process (a slot index in each thread's block). */
#define THOTH_PCOUNTER_MAX 64

typedef struct thoth_pcounter {
	uint32_t id;            /* 0: not yet allocated (on first add); UINT32_MAX: none left */
	const char *name;
	uint64_t overflow;      /* adds that could not use a thread slot (atomic) */
} thoth_pcounter_t;

#define THOTH_PCOUNTER_INIT(NAME) { 0, NAME, 0 }

typedef struct thoth__pblock {
	uint64_t v[THOTH_PCOUNTER_MAX] __attribute__((aligned(64)));
	struct thoth__pblock *next;     /* every block ever made (never freed) */
	struct thoth__pblock *free_next;
} thoth__pblock_t;

extern __thread thoth__pblock_t *thoth__pblock_mine;
/* Slow paths: the counter's first use, the thread's first add. */
void thoth__pcounter_add_slow(thoth_pcounter_t *c, uint64_t n);

/* Add N to C for this thread.  Never fails: past THOTH_PCOUNTER_MAX - 1
 * counters, or when no block can be allocated, the add goes to the
 * counter's atomic overflow word (correct, only slower). */
static inline void thoth_pcounter_add(thoth_pcounter_t *c, uint64_t n)
{
	uint32_t id = __atomic_load_n(&c->id, __ATOMIC_ACQUIRE);
	thoth__pblock_t *b = thoth__pblock_mine;
	if (__builtin_expect(!b || id - 1u >= THOTH_PCOUNTER_MAX - 1u, 0)) {
		thoth__pcounter_add_slow(c, n);
		return;
	}
	/* Single writer (this thread): a plain add made visible to folding
	 * readers with a relaxed store. */
	uint64_t *slot = &b->v[id];
	__atomic_store_n(slot, __atomic_load_n(slot, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void thoth_pcounter_inc(thoth_pcounter_t *c) { thoth_pcounter_add(c, 1); }

/* The sum over every thread that ever added (relaxed: a fold racing with
 * adds sees each slot at some recent value; it is never lower than a fold
 * that finished before it began). */
uint64_t thoth_pcounter_read(thoth_pcounter_t *c);

/* How many thread blocks exist (tests: recycling works). */
uint32_t thoth_pcounter_blocks(void);

#ifdef __cplusplus
}
#endif
#endif
