/* test_thoth_mutex: the native mutex's always-on statistics
 * (include/thoth/mutex.h) count what happened, exactly. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "thoth/error.h"
#include "thoth/mutex.h"

static thoth_mutex_t static_lock = THOTH_MUTEX_INITIALIZER("static lock");

/* The thread sleeps in the kernel (/proc/self/task/TID/stat 'S'). */
static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] == 'S';
}

typedef struct {
	thoth_mutex_t *m;
	_Atomic int tid;
	_Atomic int attempting;
} waiter_arg_t;

static void *waiter(void *p)
{
	waiter_arg_t *a = p;
	atomic_store(&a->tid, (int)syscall(SYS_gettid));
	atomic_store(&a->attempting, 1);
	thoth_mutex_lock(a->m);
	thoth_mutex_unlock(a->m);
	return NULL;
}

/* One contended acquisition for sure: hold m until a thread is asleep
 * waiting for it, for at least hold_ns more. */
static void force_contention(thoth_mutex_t *m, uint64_t hold_ns)
{
	waiter_arg_t a = { .m = m };
	pthread_t th;
	thoth_mutex_lock(m);
	assert_int_equal(pthread_create(&th, NULL, waiter, &a), 0);
	while (!atomic_load(&a.attempting) || !sleeping(atomic_load(&a.tid)))
		sched_yield();
	struct timespec ts = { 0, (long)hold_ns };
	nanosleep(&ts, NULL);
	thoth_mutex_unlock(m);
	pthread_join(th, NULL);
}

static void test_uncontended_acquisitions_are_counted_without_contention(void **state)
{
	(void)state;
	thoth_mutex_t m;
	assert_int_equal(thoth_mutex_init(&m, "plain"), 0);
	for (int i = 0; i < 1000; i++) {
		thoth_mutex_lock(&m);
		thoth_mutex_unlock(&m);
	}
	thoth_lock_stats_t st;
	thoth_mutex_stats(&m, &st);
	assert_int_equal(st.acquisitions, 1000);
	assert_int_equal(st.contentions, 0);
	assert_int_equal(st.wait_ns_total, 0);
	assert_string_equal(st.name, "plain");
	assert_int_equal(thoth_mutex_destroy(&m), 0);
}

static void test_contended_acquisitions_count_exactly_with_their_wait(void **state)
{
	(void)state;
	thoth_mutex_t m;
	assert_int_equal(thoth_mutex_init(&m, "hot"), 0);
	for (int i = 0; i < 5; i++)
		force_contention(&m, 2000000);   /* 2 ms each, after the waiter sleeps */
	thoth_lock_stats_t st;
	thoth_mutex_stats(&m, &st);
	assert_int_equal(st.contentions, 5);
	assert_int_equal(st.acquisitions, 10);
	/* Each wait covers at least the 2 ms hold after the waiter slept. */
	assert_true(st.wait_ns_total >= 5 * 2000000ull);
	assert_true(st.wait_ns_max >= 2000000ull && st.wait_ns_max <= st.wait_ns_total);
	assert_int_equal(thoth_mutex_destroy(&m), 0);
}

static void test_trylock_of_a_held_mutex_is_busy_and_not_a_contention(void **state)
{
	(void)state;
	thoth_mutex_t m;
	assert_int_equal(thoth_mutex_init(&m, NULL), 0);
	assert_int_equal(thoth_mutex_trylock(&m), 0);
	assert_int_equal(thoth_mutex_destroy(&m), THOTH_E_BUSY);
	thoth_mutex_unlock(&m);
	thoth_lock_stats_t st;
	thoth_mutex_stats(&m, &st);
	assert_int_equal(st.acquisitions, 1);
	assert_int_equal(st.contentions, 0);
	assert_int_equal(thoth_mutex_init(&m, NULL), 0);
	assert_int_equal(thoth_mutex_destroy(&m), 0);
}

typedef struct {
	const void *want;
	int seen;
} find_ctx_t;

static int find(const thoth_lock_stats_t *st, void *p)
{
	find_ctx_t *f = p;
	if (st->address == f->want)
		f->seen++;
	return 0;
}

static void test_a_static_mutex_is_listed_once_it_waited_and_a_destroyed_one_is_not(void **state)
{
	(void)state;
	find_ctx_t f = { &static_lock, 0 };
	assert_int_equal(thoth_mutex_stats_foreach(find, &f), 0);
	assert_int_equal(f.seen, 0);
	force_contention(&static_lock, 100000);
	assert_int_equal(thoth_mutex_stats_foreach(find, &f), 0);
	assert_int_equal(f.seen, 1);

	thoth_mutex_t m;
	assert_int_equal(thoth_mutex_init(&m, "gone"), 0);
	f = (find_ctx_t){ &m, 0 };
	thoth_mutex_stats_foreach(find, &f);
	assert_int_equal(f.seen, 1);
	assert_int_equal(thoth_mutex_destroy(&m), 0);
	f.seen = 0;
	thoth_mutex_stats_foreach(find, &f);
	assert_int_equal(f.seen, 0);
}

static void test_the_json_report_has_thothlocks_keys(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(thoth_mutex_stats_write_json(out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "\"locks\":["));
	assert_non_null(strstr(buf, "\"name\":\"static lock\",\"kind\":\"thoth_mutex\""));
	const char *keys[] = { "acquisitions", "contentions", "wait_ns_total", "wait_ns_max",
	                       "hold_ns_total", "hold_ns_max", "call_sites" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char k[64];
		snprintf(k, sizeof k, "\"%s\":", keys[i]);
		assert_non_null(strstr(buf, k));
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uncontended_acquisitions_are_counted_without_contention),
		cmocka_unit_test(test_contended_acquisitions_count_exactly_with_their_wait),
		cmocka_unit_test(test_trylock_of_a_held_mutex_is_busy_and_not_a_contention),
		cmocka_unit_test(test_a_static_mutex_is_listed_once_it_waited_and_a_destroyed_one_is_not),
		cmocka_unit_test(test_the_json_report_has_thothlocks_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
