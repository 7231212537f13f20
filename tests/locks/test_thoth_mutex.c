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
#include "thoth/trace.h"
#include "../../kernel/sched/procstat.h"

static thoth_mutex_t static_lock = THOTH_MUTEX_INITIALIZER("static lock");

/* The thread sleeps in the kernel (/proc/self/task/TID/stat 'S'). */
/* Thread TID of this process is asleep (state S: blocked on the lock). */
static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	return state && state[0] == 'S';
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

static void test_a_traced_wait_is_a_chrome_json_slice_as_long_as_the_wait(void **state)
{
	(void)state;
	thoth_trace_config_t cfg = { .ring_records = 64, .process_name = "mutex-test",
	                             .enabled = THOTH_TRACE_MASK(LOCK) };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	thoth_mutex_t m;
	assert_int_equal(thoth_mutex_init(&m, "traced"), 0);
	force_contention(&m, 3000000);          /* >= 3 ms of wait */
	thoth_mutex_lock(&m);                   /* uncontended: no event */
	thoth_mutex_unlock(&m);

	int fd;
	assert_int_equal(thoth_trace_export_fd(&fd), 0);
	thoth_trace_reader_t *r;
	assert_int_equal(thoth_trace_reader_open(fd, &r), 0);
	thoth_trace_collection_t *c;
	assert_int_equal(thoth_trace_collection_new(&c), 0);
	assert_int_equal(thoth_trace_collection_add(c, r), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(thoth_trace_export_chrome_json(c, out), 0);
	fclose(out);
	/* Exactly one lock_wait event, a complete ("X") slice. */
	const char *ev = strstr(buf, "\"name\":\"lock_wait\"");
	assert_non_null(ev);
	assert_null(strstr(ev + 1, "\"name\":\"lock_wait\""));
	const char *start = ev;
	while (start > buf && *start != '{')
		start--;
	assert_memory_equal(start, "{\"ph\":\"X\"", 8);
	const char *dur = strstr(start, "\"dur\":");
	assert_true(dur && dur < ev);
	double dur_us = strtod(dur + 6, NULL);
	thoth_lock_stats_t st;
	thoth_mutex_stats(&m, &st);
	assert_true(dur_us >= 3000.0);
	assert_true(dur_us * 1000.0 <= (double)st.wait_ns_total + 1.0);
	assert_non_null(strstr(ev, "\"cat\":\"lock\""));
	free(buf);
	thoth_trace_collection_free(c);
	thoth_trace_reader_close(r);   /* fd: the library's own */
	thoth_trace_shutdown();
	assert_int_equal(thoth_mutex_destroy(&m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uncontended_acquisitions_are_counted_without_contention),
		cmocka_unit_test(test_contended_acquisitions_count_exactly_with_their_wait),
		cmocka_unit_test(test_trylock_of_a_held_mutex_is_busy_and_not_a_contention),
		cmocka_unit_test(test_a_static_mutex_is_listed_once_it_waited_and_a_destroyed_one_is_not),
		cmocka_unit_test(test_the_json_report_has_thothlocks_keys),
		cmocka_unit_test(test_a_traced_wait_is_a_chrome_json_slice_as_long_as_the_wait),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
