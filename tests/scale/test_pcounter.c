/*
 * test_pcounter.c - per-thread counters folded on read (thoth/percpu.h):
 * no increment is lost while a storm of sched_setaffinity calls moves the
 * incrementing threads between CPUs, a fold racing the adds never goes
 * backwards, and threads that come and go recycle their blocks without
 * losing counts.  Runs under ThreadSanitizer too (label tsan).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "thoth/percpu.h"

#define THREADS 4
#define PER_THREAD 200000

static thoth_pcounter_t hits = THOTH_PCOUNTER_INIT("hits");
static thoth_pcounter_t misses = THOTH_PCOUNTER_INIT("misses");
static int stop_storm;                  /* atomic */
static int tids[THREADS];               /* atomic: kernel thread ids of the adders */
static uint64_t migrations;             /* atomic: affinity changes made */
static int fold_went_back;              /* atomic */

static uint64_t added[THREADS];          /* each adder's own count (written by it, read after join) */

/* Adds until the storm has moved the adders MIN_MIGRATIONS times (a bound
 * on work, never on time), at least PER_THREAD times. */
#define MIN_MIGRATIONS 2000
static void *adder(void *arg)
{
	int me = (int)(intptr_t)arg;
	__atomic_store_n(&tids[me], (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	uint64_t n = 0;
	while (n < PER_THREAD || (__atomic_load_n(&migrations, __ATOMIC_RELAXED) < MIN_MIGRATIONS &&
				  n < 400u * PER_THREAD)) {
		for (int i = 0; i < 1000; i++) {
			thoth_pcounter_inc(&hits);
			if (i % 4 == 0)
				thoth_pcounter_add(&misses, 2);
		}
		n += 1000;
	}
	added[me] = n;
	return NULL;
}

/* Moves every adder to a different CPU, as fast as it can. */
static void *storm(void *arg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned k = 0;
	while (!__atomic_load_n(&stop_storm, __ATOMIC_ACQUIRE)) {
		for (int t = 0; t < THREADS; t++) {
			int tid = __atomic_load_n(&tids[t], __ATOMIC_ACQUIRE);
			if (!tid)
				continue;
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET((int)(k++ % (unsigned)ncpu), &set);
			if (sched_setaffinity(tid, sizeof set, &set) == 0)
				__atomic_fetch_add(&migrations, 1, __ATOMIC_RELAXED);
		}
	}
	return NULL;
}

/* Folds while the adders run: each fold must be >= the previous one. */
static void *folder(void *arg)
{
	uint64_t last = 0;
	while (!__atomic_load_n(&stop_storm, __ATOMIC_ACQUIRE)) {
		uint64_t v = thoth_pcounter_read(&hits);
		if (v < last)
			__atomic_store_n(&fold_went_back, 1, __ATOMIC_RELAXED);
		last = v;
	}
	return NULL;
}

static void test_no_increment_is_lost_under_forced_migrations(void **state)
{
	uint64_t before_hits = thoth_pcounter_read(&hits), before_misses = thoth_pcounter_read(&misses);
	pthread_t a[THREADS], s, f;
	assert_int_equal(pthread_create(&s, NULL, storm, NULL), 0);
	assert_int_equal(pthread_create(&f, NULL, folder, NULL), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&a[i], NULL, adder, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(a[i], NULL);
	__atomic_store_n(&stop_storm, 1, __ATOMIC_RELEASE);
	pthread_join(s, NULL);
	pthread_join(f, NULL);
	uint64_t total = 0;
	for (int i = 0; i < THREADS; i++)
		total += added[i];
	print_message("%llu forced migrations while %d threads added %llu in all\n",
		      (unsigned long long)migrations, THREADS, (unsigned long long)total);
	assert_true(migrations >= 100 || sysconf(_SC_NPROCESSORS_ONLN) == 1);
	assert_int_equal(thoth_pcounter_read(&hits) - before_hits, total);
	assert_int_equal(thoth_pcounter_read(&misses) - before_misses, total / 4 * 2);
	assert_int_equal(fold_went_back, 0);
}

static void *short_lived(void *arg)
{
	for (int i = 0; i < 1000; i++)
		thoth_pcounter_inc(&hits);
	return NULL;
}

static void test_threads_that_exit_recycle_blocks_and_keep_counts(void **state)
{
	uint64_t before = thoth_pcounter_read(&hits);
	uint32_t blocks_before = thoth_pcounter_blocks();
	for (int round = 0; round < 50; round++) {
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, short_lived, NULL), 0);
		pthread_join(t, NULL);
	}
	assert_int_equal(thoth_pcounter_read(&hits) - before, 50 * 1000);
	/* One thread at a time: its block is reused, not 50 new ones. */
	assert_true(thoth_pcounter_blocks() <= blocks_before + 2);
}

static void test_counters_beyond_the_slots_still_count(void **state)
{
	static thoth_pcounter_t many[THOTH_PCOUNTER_MAX + 4];
	for (int i = 0; i < THOTH_PCOUNTER_MAX + 4; i++)
		for (int j = 0; j <= i; j++)
			thoth_pcounter_inc(&many[i]);
	for (int i = 0; i < THOTH_PCOUNTER_MAX + 4; i++)
		assert_int_equal(thoth_pcounter_read(&many[i]), (uint64_t)i + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_increment_is_lost_under_forced_migrations),
		cmocka_unit_test(test_threads_that_exit_recycle_blocks_and_keep_counts),
		cmocka_unit_test(test_counters_beyond_the_slots_still_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
