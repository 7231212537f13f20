/*
 * percpu.c - per-thread counter blocks folded on read (thoth/percpu.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "thoth/percpu.h"

__thread thoth__pblock_t *thoth__pblock_mine;

static thoth__pblock_t *all_blocks;             /* push-only list (atomic head) */
static thoth__pblock_t *free_blocks;            /* blocks of exited threads, under free_lock */
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t next_id = 1;                    /* slot 0 is never handed out */
static uint32_t n_blocks;
static pthread_key_t exit_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* A thread that exits gives its block back; the next new thread adopts it
 * and keeps adding to the same slots, so sums stay exact. */
static void on_thread_exit(void *p)
{
	thoth__pblock_t *b = p;
	/* Anything this thread still adds (a later destructor) re-attaches
	 * instead of writing into a block another thread may adopt. */
	thoth__pblock_mine = NULL;
	pthread_mutex_lock(&free_lock);
	b->free_next = free_blocks;
	free_blocks = b;
	pthread_mutex_unlock(&free_lock);
}

static void make_key(void)
{
	pthread_key_create(&exit_key, on_thread_exit);
}

static thoth__pblock_t *attach(void)
{
	pthread_once(&key_once, make_key);
	thoth__pblock_t *b = NULL;
	pthread_mutex_lock(&free_lock);
	if (free_blocks) {
		b = free_blocks;
		free_blocks = b->free_next;
	}
	pthread_mutex_unlock(&free_lock);
	if (!b) {
		if (posix_memalign((void **)&b, 64, sizeof *b))
			return NULL;
		for (unsigned i = 0; i < THOTH_PCOUNTER_MAX; i++)
			__atomic_store_n(&b->v[i], 0, __ATOMIC_RELAXED);
		b->free_next = NULL;
		/* Push: readers walk the list without a lock. */
		thoth__pblock_t *head = __atomic_load_n(&all_blocks, __ATOMIC_RELAXED);
		do
			b->next = head;
		while (!__atomic_compare_exchange_n(&all_blocks, &head, b, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
		__atomic_fetch_add(&n_blocks, 1, __ATOMIC_RELAXED);
	}
	pthread_setspecific(exit_key, b);
	thoth__pblock_mine = b;
	return b;
}

static uint32_t counter_id(thoth_pcounter_t *c)
{
	uint32_t id = __atomic_load_n(&c->id, __ATOMIC_ACQUIRE);
	if (id)
		return id;
	/* Two threads may race to allocate: the first CAS wins, the loser's
	 * id is simply never used (ids are plentiful enough for that). */
	uint32_t mine = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
	if (mine >= THOTH_PCOUNTER_MAX)
		mine = UINT32_MAX;
	uint32_t expect = 0;
	if (__atomic_compare_exchange_n(&c->id, &expect, mine, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return mine;
	return expect;
}

void thoth__pcounter_add_slow(thoth_pcounter_t *c, uint64_t n)
{
	uint32_t id = counter_id(c);
	thoth__pblock_t *b = thoth__pblock_mine;
	if (!b)
		b = attach();
	if (!b || id >= THOTH_PCOUNTER_MAX) {
		__atomic_fetch_add(&c->overflow, n, __ATOMIC_RELAXED);
		return;
	}
	uint64_t *slot = &b->v[id];
	__atomic_store_n(slot, __atomic_load_n(slot, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

uint64_t thoth_pcounter_read(thoth_pcounter_t *c)
{
	uint64_t sum = __atomic_load_n(&c->overflow, __ATOMIC_RELAXED);
	uint32_t id = __atomic_load_n(&c->id, __ATOMIC_ACQUIRE);
	if (!id || id >= THOTH_PCOUNTER_MAX)
		return sum;
	for (thoth__pblock_t *b = __atomic_load_n(&all_blocks, __ATOMIC_ACQUIRE); b; b = b->next)
		sum += __atomic_load_n(&b->v[id], __ATOMIC_RELAXED);
	return sum;
}

uint32_t thoth_pcounter_blocks(void)
{
	return __atomic_load_n(&n_blocks, __ATOMIC_RELAXED);
}
