/*
 * runtime.c - attaching programs to this process's trace points.
 *
 * The attached programs form one immutable set; attach and detach build a
 * new set and swap the pointer, so a trace point sees either the old or the
 * new set, never a half-built one, and programs present in both run at
 * every hit around the swap.  Old sets are freed once no thread can still
 * be inside them: each thread that runs probes owns a slot whose counter is
 * odd while it is inside; the detacher swaps, then (membarrier, or a fence
 * where the kernel lacks it) waits for every odd counter to move.
 *
 * The trace point side: THOTH_TRACE_IS_ON(cat) tests the category's bit and
 * its probe bit (cat + THOTH_TRACE_PROBE_SHIFT) in one test of the enabled
 * word, so an unprobed point costs exactly what it did (test_probe_zero_cost
 * counts the instructions with callgrind).  thoth_trace_emit calls
 * probe_fire when the probe bit is set.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../trace_clock.h"
#include "../trace_internal.h"
#include "../trace_layout.h"
#include "probe_internal.h"
#include "probe_runtime.h"

enum { MAX_ATTACHED = 63, MAX_THREADS = 1024, RUN_SLOTS = 64 };
/* Median run time above this: detached.  The median, not the mean: a
 * timed run that the kernel preempted (a loaded VM's vCPU, ASan's slow
 * first touches) can last milliseconds, and one such sample among the
 * first few used to detach a probe that costs nanoseconds. */
static const uint64_t BUDGET_RUN_NS = 20000;

typedef struct attachment {
	uint64_t id;
	thoth_probe_prog_t *prog;
	probe_jit_fn_t jit_fn;    /* prog->jit_fn, one load nearer (NULL: interpreter) */
	bool all_points;
	uint64_t runs;            /* threads past the first RUN_SLOTS: an atomic add each */
	uint64_t sampled_runs, sampled_ns, sampled_slow;  /* slow: timed runs over BUDGET_RUN_NS */
	uint64_t budget_exceeded;
	int disabled;             /* set by the runtime when over budget */
	char reason[128];
	/* Runs of each of the first RUN_SLOTS threads (their quiescence slot),
	 * written by that thread alone: a plain store instead of a locked add
	 * on a line every thread shares (~20 cycles a run on this VM).  A line
	 * each: no false sharing.  Summed by thoth_probe_stats. */
	struct {
		uint64_t runs;
		uint64_t pad[7];
	} thread[RUN_SLOTS] __attribute__((aligned(64)));
} attachment_t;

typedef struct probe_set {
	uint32_t n;
	attachment_t *a[MAX_ATTACHED];
	uint64_t ctx_read;        /* context bytes any program may read */
	/* per event id: bit k = attachment k matches; bit 63 = computed */
	uint64_t match[THOTH_TRACE_MAX_NAMES];
} probe_set_t;

static pthread_mutex_t set_lock = PTHREAD_MUTEX_INITIALIZER;
static probe_set_t *current_set;
static uint64_t next_id = 1;

/* Quiescence: per-thread counters, odd while inside a set. */
static uint64_t thread_ctr[MAX_THREADS];
static uint32_t threads_claimed;
static __thread uint32_t my_ctr;    /* index + 1; 0 = unclaimed */
static int membarrier_ok = -1;      /* -1 unknown, 0 no, 1 registered */

static uint64_t *thread_counter(void)
{
	if (__builtin_expect(my_ctr == 0, 0)) {
		uint32_t i = __atomic_fetch_add(&threads_claimed, 1, __ATOMIC_RELAXED);
		my_ctr = i < MAX_THREADS ? i + 1 : UINT32_MAX;
	}
	return my_ctr == UINT32_MAX ? NULL : &thread_ctr[my_ctr - 1];
}

static void membarrier_init(void)
{
	if (membarrier_ok >= 0)
		return;
	membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* After a swap: once this returns, no thread runs the old set. */
static void wait_quiescent(void)
{
	if (membarrier_ok == 1)
		syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint32_t n = __atomic_load_n(&threads_claimed, __ATOMIC_ACQUIRE);
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t c = __atomic_load_n(&thread_ctr[i], __ATOMIC_ACQUIRE);
		if (!(c & 1))
			continue;
		/* A probe run is short (budgeted); wait for this thread to leave. */
		while (__atomic_load_n(&thread_ctr[i], __ATOMIC_ACQUIRE) == c)
			sched_yield();
	}
}

/* Ticks to ns for the probe context: a map taken at attach time over at
 * least 1 ms since the buffer's anchor (the rate is that interval's). */
static thoth_trace_clock_map_t clock_map;

uint64_t thoth__trace_ticks_to_ns(uint64_t ticks)
{
	return thoth_trace_clock_to_ns(&clock_map, ticks);
}

static void clock_map_refresh(void)
{
	thoth_trace_control_t *c = thoth_trace_buffer.control;
	uint64_t anchor_ticks = c->clock_anchor_ticks, anchor_ns = c->clock_anchor_ns;
	if (thoth_trace_clock_kind == THOTH_TRACE_CLOCK_TSC) {
		while (thoth_trace_clock_monotonic_ns() - anchor_ns < 1000000 &&
		       thoth_trace_clock_monotonic_ns() > anchor_ns)
			sched_yield();
	}
	thoth_trace_clock_map_t m;
	thoth_trace_clock_map_init(&m, thoth_trace_clock_kind, anchor_ticks, anchor_ns, 1);
	clock_map = m;
}

static bool matches(const attachment_t *a, const char *name)
{
	return a->all_points || strcmp(a->prog->point, name) == 0;
}

/* The probe bits: every category while anything is attached.  A named
 * point's category is not known until it fires once, and an unprobed point
 * of a probed category only pays the match-table lookup. */
bool thoth__probe_any(void)
{
	return __atomic_load_n(&current_set, __ATOMIC_ACQUIRE) != NULL;
}

void thoth__probe_bits(bool any)
{
	uint64_t bits = (uint64_t)THOTH_TRACE_ALL_CATEGORIES << THOTH_TRACE_PROBE_SHIFT;
	uint64_t *w = __atomic_load_n(&thoth_trace_enabled_word, __ATOMIC_RELAXED);
	if (!thoth_trace_buffer.base)
		return;
	if (any)
		__atomic_fetch_or(w, bits, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(w, ~bits, __ATOMIC_RELAXED);
}

/* This thread's quiescence counter, once claimed (thread_counter()). */
static __thread uint64_t *my_ctr_p;

static __attribute__((noinline)) uint64_t *thread_counter_slow(void)
{
	return my_ctr_p = thread_counter();
}

/* Which attachments of SET run at EVENT_ID: computed at its first hit. */
static __attribute__((noinline, cold)) uint64_t match_compute(probe_set_t *set, uint16_t event_id,
                                                              const char *name)
{
	uint64_t m = 1ull << 63;
	for (uint32_t k = 0; k < set->n; k++)
		if (matches(set->a[k], name))
			m |= 1ull << k;
	__atomic_store_n(&set->match[event_id], m, __ATOMIC_RELAXED);
	return m;
}

static __attribute__((noinline, cold)) void over_limit(attachment_t *a)
{
	__atomic_fetch_add(&a->budget_exceeded, 1, __ATOMIC_RELAXED);
	if (!__atomic_exchange_n(&a->disabled, 1, __ATOMIC_RELAXED))
		snprintf(a->reason, sizeof a->reason,
		         a->prog->engine == THOTH_PROBE_ENGINE_JIT
		             ? "over budget: one run passed loop heads %u times"
		             : "over budget: one run executed %u instructions",
		         PROBE_RUN_BUDGET);
}

static inline int run_once(attachment_t *a, const struct thoth_probe_ctx *ctx)
{
	if (a->jit_fn) {
		uint32_t status = 0;
		a->jit_fn(ctx, &status);
		return status ? THOTH_E_LIMIT : 0;
	}
	uint64_t ret;
	return probe_interp_run(a->prog, ctx, &ret);
}

/* A timed run (each thread's first 16, then 1 in 64): the budget rule. */
static __attribute__((noinline)) int run_timed(attachment_t *a, const struct thoth_probe_ctx *ctx)
{
	/* The trace clock (the TSC where there is one): a VM's clock_gettime
	 * can cost more than the probe. */
	uint64_t t0 = thoth_trace_now();
	int r = run_once(a, ctx);
	uint64_t t1 = thoth_trace_now();
	uint64_t ns = thoth__trace_ticks_to_ns(t1) - thoth__trace_ticks_to_ns(t0);
	uint64_t n = __atomic_add_fetch(&a->sampled_runs, 1, __ATOMIC_RELAXED);
	uint64_t tot = __atomic_add_fetch(&a->sampled_ns, ns, __ATOMIC_RELAXED);
	uint64_t slow = ns > BUDGET_RUN_NS ? __atomic_add_fetch(&a->sampled_slow, 1, __ATOMIC_RELAXED)
	                                   : __atomic_load_n(&a->sampled_slow, __ATOMIC_RELAXED);
	if (n >= 16 && 2 * slow > n && !__atomic_exchange_n(&a->disabled, 1, __ATOMIC_RELAXED))
		snprintf(a->reason, sizeof a->reason,
		         "over budget: median run > %llu ns (%llu of %llu timed runs; mean %llu ns)",
		         (unsigned long long)BUDGET_RUN_NS, (unsigned long long)slow,
		         (unsigned long long)n, (unsigned long long)(tot / n));
	return r;
}

/*
 * The fire path: everything here but the program's own run is overhead
 * (bench/probe/instr.sh counts it).  Rare work (the match table's fill,
 * timed runs, budget detach, the mailbox) is out of line so that the
 * common path keeps few registers live.
 */
void thoth__probe_fire(unsigned category, uint16_t event_id, const char *name,
                       const thoth_trace_fields_t *f, uint32_t tid)
{
	/* thothd's commands first, outside the set (taking one may attach and
	 * wait for quiescence): one compare of the mailbox's sequence number. */
	const thoth_trace_probe_mailbox_t *mb =
		(const void *)((const char *)thoth_trace_buffer.control + THOTH_TRACE_PROBE_MAILBOX_OFFSET);
	if (__builtin_expect(__atomic_load_n(&mb->cmd_seq, __ATOMIC_ACQUIRE) !=
	                             __atomic_load_n(&thoth__probe_taken_seq, __ATOMIC_RELAXED), 0))
		thoth__probe_poll();
	uint64_t *ctr = my_ctr_p;
	if (__builtin_expect(!ctr, 0) && !(ctr = thread_counter_slow()))
		return;
	uint32_t slot = (uint32_t)(ctr - thread_ctr);
	uint64_t c = *ctr;
	__atomic_store_n(ctr, c + 1, __ATOMIC_RELAXED);
	if (membarrier_ok != 1)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	else
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	bool refresh = false;
	probe_set_t *set = __atomic_load_n(&current_set, __ATOMIC_ACQUIRE);
	if (set && event_id < THOTH_TRACE_MAX_NAMES) {
		uint64_t m = __atomic_load_n(&set->match[event_id], __ATOMIC_RELAXED);
		if (__builtin_expect(!(m >> 63), 0))
			m = match_compute(set, event_id, name);
		m &= ~(1ull << 63);
		if (m) {
			/* The clock and the CPU cost a few ns each (more in some VMs):
			 * only when a program reads them (the verifier says). */
			uint64_t ts_ns = 0;
			int cpu = 0;
			if (set->ctx_read & 0xffull)
				ts_ns = thoth__trace_ticks_to_ns(f->timestamp ? f->timestamp
				                                              : thoth_trace_now());
			if (set->ctx_read & (0xfull << 24)) {
				cpu = sched_getcpu();
				if (cpu < 0)
					cpu = 0;
			}
			/* The fixed first 32 bytes always; the point's fields (32-63)
			 * only when a program reads one of them (the verifier's
			 * ctx_read covers every byte any attached program may read,
			 * so the rest is never looked at). */
			struct thoth_probe_ctx ctx;
			ctx.ts_ns = ts_ns;
			ctx.trace_id = f->trace_id;
			ctx.service_id = f->service_id;
			ctx.size = f->payload_size;
			ctx.cpu = (uint32_t)cpu;
			ctx.tid = tid;
			if (set->ctx_read >> 32) {
				ctx.arg0 = f->arg0;
				ctx.arg1 = f->arg1;
				ctx.interface_id = f->interface_id;
				ctx.request_id = f->request_id;
				ctx.method = f->method;
				ctx.flags = f->flags;
				ctx.category = (uint8_t)category;
				ctx.pid = thoth_trace_buffer.pid;
			}
			while (m) {
				attachment_t *a = set->a[__builtin_ctzll(m)];
				m &= m - 1;
				if (__atomic_load_n(&a->disabled, __ATOMIC_RELAXED))
					continue;
				uint64_t runs;
				if (__builtin_expect(slot < RUN_SLOTS, 1)) {
					runs = a->thread[slot].runs;
					__atomic_store_n(&a->thread[slot].runs, runs + 1, __ATOMIC_RELAXED);
				} else {
					runs = __atomic_fetch_add(&a->runs, 1, __ATOMIC_RELAXED);
				}
				int r;
				if (__builtin_expect(runs < 16 || (runs & 63) == 0, 0)) {
					r = run_timed(a, &ctx);
					/* every 1024th run: the counts thothd reports */
					refresh |= (runs & 1023) == 0;
				} else {
					r = run_once(a, &ctx);
				}
				if (__builtin_expect(r == THOTH_E_LIMIT, 0))
					over_limit(a);
			}
		}
	}
	__atomic_store_n(ctr, c + 2, __ATOMIC_RELEASE);
	if (__builtin_expect(refresh, 0))
		thoth__probe_poll();     /* outside the set: it may take a command */
}

static probe_set_t *set_copy(const probe_set_t *old)
{
	probe_set_t *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (old) {
		s->n = old->n;
		memcpy(s->a, old->a, sizeof s->a);
	}
	return s;   /* match table recomputed lazily */
}

int thoth_probe_attach(thoth_probe_prog_t *prog, uint64_t *id)
{
	if (!prog || !id)
		return THOTH_E_INVAL;
	if (!thoth_trace_buffer.base)
		return THOTH_E_NOT_RUNNING;   /* the probe bits live in the trace buffer */
	attachment_t *a = aligned_alloc(64, sizeof *a);
	if (!a)
		return THOTH_E_NOMEM;
	memset(a, 0, sizeof *a);
	a->prog = prog;
	a->jit_fn = prog->jit_fn;
	a->all_points = strcmp(prog->point, "*") == 0;
	pthread_mutex_lock(&set_lock);
	membarrier_init();
	if (!current_set)   /* no thread reads the map while no set is installed */
		clock_map_refresh();
	int r = 0;
	if (current_set && current_set->n == MAX_ATTACHED) {
		r = THOTH_E_LIMIT;
		goto out;
	}
	probe_set_t *s = set_copy(current_set);
	if (!s) {
		r = THOTH_E_NOMEM;
		goto out;
	}
	a->id = next_id++;
	s->a[s->n++] = a;
	for (uint32_t k = 0; k < s->n; k++)
		s->ctx_read |= s->a[k]->prog->ctx_read;
	probe_set_t *old = current_set;
	__atomic_store_n(&current_set, s, __ATOMIC_RELEASE);
	thoth__probe_bits(true);
	if (old) {
		wait_quiescent();
		free(old);
	}
	*id = a->id;
	a = NULL;
out:
	pthread_mutex_unlock(&set_lock);
	free(a);
	return r;
}

int thoth_probe_detach(uint64_t id)
{
	pthread_mutex_lock(&set_lock);
	probe_set_t *old = current_set;
	int idx = -1;
	for (uint32_t k = 0; old && k < old->n; k++)
		if (old->a[k]->id == id)
			idx = (int)k;
	if (idx < 0) {
		pthread_mutex_unlock(&set_lock);
		return THOTH_E_NOT_FOUND;
	}
	attachment_t *a = old->a[idx];
	probe_set_t *s = NULL;
	if (old->n > 1) {
		s = set_copy(NULL);
		if (!s) {
			pthread_mutex_unlock(&set_lock);
			return THOTH_E_NOMEM;
		}
		for (uint32_t k = 0; k < old->n; k++)
			if ((int)k != idx) {
				s->a[s->n++] = old->a[k];
				s->ctx_read |= old->a[k]->prog->ctx_read;
			}
	}
	__atomic_store_n(&current_set, s, __ATOMIC_RELEASE);
	if (!s)
		thoth__probe_bits(false);
	wait_quiescent();
	free(old);
	free(a);
	pthread_mutex_unlock(&set_lock);
	return 0;
}

int thoth_probe_stats(uint64_t id, thoth_probe_stats_t *out)
{
	if (!out)
		return THOTH_E_INVAL;
	pthread_mutex_lock(&set_lock);
	int r = THOTH_E_NOT_FOUND;
	for (uint32_t k = 0; current_set && k < current_set->n; k++) {
		attachment_t *a = current_set->a[k];
		if (a->id != id)
			continue;
		memset(out, 0, sizeof *out);
		out->runs = __atomic_load_n(&a->runs, __ATOMIC_RELAXED);
		for (uint32_t t = 0; t < RUN_SLOTS; t++)
			out->runs += __atomic_load_n(&a->thread[t].runs, __ATOMIC_RELAXED);
		uint64_t n = __atomic_load_n(&a->sampled_runs, __ATOMIC_RELAXED);
		uint64_t ns = __atomic_load_n(&a->sampled_ns, __ATOMIC_RELAXED);
		out->run_ns = n ? ns / n * out->runs : 0;
		out->budget_exceeded = __atomic_load_n(&a->budget_exceeded, __ATOMIC_RELAXED);
		out->detached = __atomic_load_n(&a->disabled, __ATOMIC_ACQUIRE);
		if (out->detached)
			snprintf(out->reason, sizeof out->reason, "%s", a->reason);
		r = 0;
	}
	pthread_mutex_unlock(&set_lock);
	return r;
}
