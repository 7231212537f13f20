/*
 * emit.c - the writer: the enabled path of every trace point.  Claims a ring
 * for the calling thread on its first event, registers event names on their
 * first use, and appends one record wait-free (no locks, no syscalls once
 * the thread has its ring and the call site its id).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "trace_clock.h"
#include "trace_internal.h"
#include "probe/probe_runtime.h"

/* This thread's ring in the buffer of generation `generation`.  ring is NULL
 * when every ring was taken (the thread's events count in no_ring). */
static __thread struct {
	thoth_trace_ring_header_t *ring;
	uint64_t head;          /* private truth of ring->head (the reader can write the copy) */
	uint32_t generation;
	uint32_t tid;
} thread_ring;

/* A forked child is another process: its first event claims its own ring
 * (the parent's thread keeps writing the parent's). */
static void forget_ring_in_child(void)
{
	thread_ring.generation = 0;
	thread_ring.ring = NULL;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, forget_ring_in_child);
}

/* Ring INDEX taken by this thread, or by none yet: its state moved from
 * free to CLAIMING (the owner fields are written before CLAIMED publishes
 * them).  One compare-exchange in the shared page decides between every
 * process sharing the buffer, whatever the counters said. */
static bool take_ring(thoth_trace_buffer_t *b, uint32_t index)
{
	uint32_t free_state = 0;
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(b->base, b->ring_records, index);
	return __atomic_compare_exchange_n(&ring->state, &free_state, THOTH_TRACE_RING_CLAIMING,
					   false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void claim_ring(thoth_trace_buffer_t *b, uint32_t gen)
{
	pthread_once(&atfork_once, register_atfork);
	thread_ring.generation = gen;
	thread_ring.ring = NULL;
	thread_ring.head = 0;
	thread_ring.tid = (uint32_t)gettid();
	/* The counters propose, the ring's state decides (take_ring).  The
	 * private counter moves strictly upwards, so this process's threads
	 * never propose one ring twice; a forked child's is its parent's at
	 * the fork, so the shared counter, which every process sharing the
	 * buffer bumps, proposes a ring past theirs.  Past the end while the
	 * private one is not (rings taken by siblings, or a hostile write of
	 * rings_claimed denying our later threads any), or a proposed ring
	 * already taken: the next free one from the private counter on. */
	uint32_t shared = __atomic_fetch_add(&b->control->rings_claimed, 1, __ATOMIC_RELAXED);
	uint32_t index = __atomic_load_n(&b->rings_claimed, __ATOMIC_RELAXED);
	uint32_t claim;
	for (;;) {
		claim = index > shared ? index : shared;
		if (claim >= b->ring_count)
			claim = index;
		if (claim >= b->ring_count)
			break;          /* none left: counted in no_ring, the counter kept */
		if (!__atomic_compare_exchange_n(&b->rings_claimed, &index, claim + 1, false,
						 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		if (take_ring(b, claim))
			break;
		index = claim + 1;      /* taken (by a sibling): propose the next */
		shared = 0;
	}
	index = claim;
	if (index >= b->ring_count)
		return;
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(b->base, b->ring_records, index);
	ring->owner_pid = (uint32_t)getpid();
	ring->owner_tid = thread_ring.tid;
	char name[16] = "";
	prctl(PR_GET_NAME, name);
	memcpy(ring->thread_name, name, sizeof name);
	ring->thread_name[15] = '\0';
	/* Publishes the owner fields above to readers (load-acquire of state). */
	__atomic_store_n(&ring->state, THOTH_TRACE_RING_CLAIMED, __ATOMIC_RELEASE);
	thread_ring.ring = ring;
}

static int name_is_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > THOTH_TRACE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return 0;
	}
	return 1;
}

/* Slow path, once per call site and buffer: find or append NAME in the name
 * table.  0 (unnamed) when the name is invalid or the table is full.  The
 * search and the count use the private copy: the shared table and its
 * names_count are written for readers, never read back. */
static uint16_t register_name(thoth_trace_buffer_t *b, unsigned category, const char *name)
{
	if (!name_is_valid(name))
		return 0;
	thoth_trace_name_t *table =
	        (thoth_trace_name_t *)((char *)b->base + THOTH_TRACE_NAMES_OFFSET);
	uint16_t id = 0;
	thoth_mutex_lock(&b->names_lock);
	uint32_t count = b->names_count;
	for (uint32_t i = 0; i < count && !id; i++)
		if (b->names[i].category == category && strcmp(b->names[i].name, name) == 0)
			id = (uint16_t)(i + 1);
	if (!id && count < THOTH_TRACE_MAX_NAMES - 1) {
		memset(&b->names[count], 0, sizeof b->names[count]);
		strcpy(b->names[count].name, name);
		b->names[count].category = (uint8_t)category;
		memcpy(&table[count], &b->names[count], sizeof table[count]);
		b->names_count = count + 1;
		/* Publishes the entry; ordered before any record using the id. */
		__atomic_store_n(&b->control->names_count, count + 1, __ATOMIC_RELEASE);
		id = (uint16_t)(count + 1);
	}
	thoth_mutex_unlock(&b->names_lock);
	return id;
}

thoth_trace_ring_header_t *thoth_trace_thread_ring(void)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	uint32_t gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
	if (!b->base)
		return NULL;
	if (thread_ring.generation != gen)
		claim_ring(b, gen);
	return thread_ring.ring;
}

void thoth_trace_emit(unsigned category, uint32_t *id_cache, const char *name,
                      const thoth_trace_fields_t *f)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	uint32_t gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
	if (__builtin_expect(!b->base, 0))
		return;  /* enabled word and buffer raced with shutdown */

	uint32_t cached = __atomic_load_n(id_cache, __ATOMIC_RELAXED);
	uint16_t event_id;
	if (__builtin_expect((cached >> 16) == (gen & 0xffffu), 1)) {
		event_id = (uint16_t)cached;
	} else {
		event_id = register_name(b, category, name);
		__atomic_store_n(id_cache, (gen & 0xffffu) << 16 | event_id, __ATOMIC_RELAXED);
	}

	/* The trace point was entered for the category's bit, its probe bit,
	 * or both (THOTH_TRACE_IS_ON): probes first, then the record. */
	uint64_t en = __atomic_load_n(&b->control->enabled, __ATOMIC_RELAXED);
	if (__builtin_expect((en >> (category + THOTH_TRACE_PROBE_SHIFT)) & 1, 0)) {
		if (__builtin_expect(thread_ring.generation != gen, 0))
			claim_ring(b, gen);
		/* It also takes thothd's commands (live attach): a compare of the
		 * mailbox's sequence number per probed event. */
		thoth__probe_fire(category, event_id, name, f, thread_ring.tid);
	}
	if (!((en >> category) & 1))
		return;

	if (__builtin_expect(thread_ring.generation != gen, 0))
		claim_ring(b, gen);
	thoth_trace_ring_header_t *ring = thread_ring.ring;
	if (__builtin_expect(!ring, 0)) {
		__atomic_fetch_add(&b->control->no_ring, 1, __ATOMIC_RELAXED);
		return;
	}

	/* Our own count, not the shared head: a reader could rewrite that. */
	uint64_t seq = thread_ring.head;
	if (b->full_policy == THOTH_TRACE_DROP_NEWEST) {
		/* Acquire: the reader finished copying every slot below tail. */
		uint64_t tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
		if (seq - tail >= b->ring_records) {
			__atomic_store_n(&ring->dropped, ring->dropped + 1, __ATOMIC_RELAXED);
			return;
		}
	}
	thoth_trace_record_t *rec = &thoth_trace_ring_records(ring)[seq & b->ring_mask];
	uint64_t now = f->timestamp ? f->timestamp : thoth_trace_now();
	int cpu = sched_getcpu();

	/* Seqlock write (see trace_layout.h): BUSY, fence, body, commit, head. */
	__atomic_store_n(&rec->word0, thoth_trace_word0(THOTH_TRACE_COMMIT_BUSY, 0, 0, 0),
	                 __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&rec->timestamp, now, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->trace_id, f->trace_id, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->arg0, f->arg0, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->arg1, f->arg1, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->service_id, f->service_id, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->interface_id, f->interface_id, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->request_id, f->request_id, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->payload_size, f->payload_size, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->tid, thread_ring.tid, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->method, f->method, __ATOMIC_RELAXED);
	__atomic_store_n(&rec->cpu, (uint16_t)(cpu < 0 ? 0xffff : cpu), __ATOMIC_RELAXED);
	__atomic_store_n(&rec->word0,
	                 thoth_trace_word0(thoth_trace_commit_for(seq), event_id,
	                                   (uint8_t)category,
	                                   (uint8_t)(f->flags & THOTH_TRACE_FLAGS_KNOWN)),
	                 __ATOMIC_RELEASE);
	thread_ring.head = seq + 1;
	__atomic_store_n(&ring->head, seq + 1, __ATOMIC_RELEASE);
}
