/*
 * test_trace_collector.c - a trace session collected by thothd's collector
 * thread (SCALE-2: trace collection off thothd's loop thread), with real
 * processes: busy traced processes, short-lived ones that attach and exit
 * during the session, one that writes its own ring like an enemy, and a
 * client resolving all along.
 *
 * Each traced child waits until the session's categories reach its buffer,
 * emits in bursts, and after each burst waits until its own rings' tails
 * (which only the collector advances) reach their heads: a condition seen
 * in shared memory, never a sleep.  Every child emits more than one ring
 * holds, so a collection that only happened at stop would lose events.
 *
 * Built and run under ThreadSanitizer too (label tsan, with a TSan thothd):
 * the collector thread and the loop thread share the tracer's state.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <fcntl.h>

#include "harness.h"
#include "thoth/trace.h"
#include "trace.thoth.h"
#include "trace_layout.h"

enum {
	BUSY = 3,               /* busy traced processes */
	BURSTS = 8,
	BURST = 5000,           /* 8 x 5000 = 40,000 per process: over a ring's 16,384 */
	CHURN = 12,             /* processes that attach, emit and exit during the session */
	CHURN_EVENTS = 100,
	HOSTILE_GOOD = 1000,    /* what the hostile process emits before it turns */
	DEADLINE_MS = 30000,    /* generous: a loaded machine, or TSan */
};

static harness_t h;
static int done_fd = -1;        /* a child writes one byte here when it has seen all collected */

/* The child's last word before pause(): everything it emitted was collected. */
static void say_done(void)
{
	char c = 1;
	if (write(done_fd, &c, 1) != 1)
		_exit(16);
}

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	return 0;
}

static int teardown(void **state)
{
	harness_teardown(&h);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- in a traced child ------------------------------------------------------- */

typedef struct own_buffer {
	char *base;
	uint32_t rings, records;
} own_buffer_t;

/* This process's own trace buffer, mapped again (writable: the hostile
 * child writes it). */
static int map_own(own_buffer_t *b)
{
	int fd;
	struct stat st;
	if (thoth_trace_export_fd(&fd) || fstat(fd, &st))
		return -1;
	b->base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b->base == MAP_FAILED)
		return -1;
	const thoth_trace_control_t *c = (const thoth_trace_control_t *)b->base;
	b->rings = c->ring_count;
	b->records = c->ring_records;
	return 0;
}

static thoth_trace_ring_header_t *ring(own_buffer_t *b, uint32_t i)
{
	return thoth_trace_ring_at(b->base, b->records, i);
}

/* Has the collector consumed everything committed in every ring? */
static bool drained(own_buffer_t *b)
{
	for (uint32_t i = 0; i < b->rings; i++) {
		thoth_trace_ring_header_t *r = ring(b, i);
		if (__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) != __atomic_load_n(&r->head, __ATOMIC_ACQUIRE))
			return false;
	}
	return true;
}

static bool wait_for(bool (*cond)(own_buffer_t *), own_buffer_t *b)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	while (!cond(b)) {
		if (now_ms() > end)
			return false;
		usleep(1000);   /* polling a condition, with a deadline */
	}
	return true;
}

static bool enabled(own_buffer_t *b)
{
	(void)b;
	return THOTH_TRACE_IS_ON(USER);
}

enum { KIND_BUSY, KIND_CHURN, KIND_HOSTILE };

/* Exit status 0: emitted and (for busy ones) saw every burst collected. */
static void child(int kind, int idx)
{
	char name[32];
	snprintf(name, sizeof name, "traced-%d-%d", kind, idx);
	own_buffer_t b;
	thoth_control_t ctl;
	if (thoth_trace_init_process(name) || map_own(&b) || harness_connect(&h, &ctl))
		_exit(10);
	if (!wait_for(enabled, &b))
		_exit(11);
	if (kind == KIND_CHURN) {
		for (int i = 0; i < CHURN_EVENTS; i++)
			THOTH_TRACE(USER, test_churn, (uint64_t)idx, (uint64_t)i);
		_exit(0);       /* its connection closes: drained once more at stop */
	}
	if (kind == KIND_BUSY) {
		for (int k = 0; k < BURSTS; k++) {
			for (int i = 0; i < BURST; i++)
				THOTH_TRACE(USER, test_busy, (uint64_t)idx, (uint64_t)i);
			if (!wait_for(drained, &b))
				_exit(12);
		}
		say_done();
		pause();        /* alive until the parent has looked: killed in teardown */
		_exit(0);
	}
	/* Hostile: good events first, collected; then it lies in its own ring. */
	for (int i = 0; i < HOSTILE_GOOD; i++)
		THOTH_TRACE(USER, test_hostile, 0, (uint64_t)i);
	if (!wait_for(drained, &b))
		_exit(13);
	for (uint32_t i = 0; i < b.rings; i++) {
		thoth_trace_ring_header_t *r = ring(&b, i);
		uint64_t head = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
		if (!head)
			continue;
		/* Claims four rings' worth of records it never wrote (zeroed or
		 * stale slots: counted lost, never handed out)... */
		memset(thoth_trace_ring_records(r), 0, (size_t)b.records * THOTH_TRACE_RECORD_SIZE);
		__atomic_store_n(&r->head, head + 4ull * b.records, __ATOMIC_RELEASE);
	}
	if (!wait_for(drained, &b))
		_exit(14);
	for (uint32_t i = 0; i < b.rings; i++) {
		thoth_trace_ring_header_t *r = ring(&b, i);
		if (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE))       /* ...then goes backwards */
			__atomic_store_n(&r->head, 5, __ATOMIC_RELEASE);
	}
	if (!wait_for(drained, &b))
		_exit(15);
	say_done();
	pause();
	_exit(0);
}

static pid_t spawn(int kind, int idx)
{
	pid_t p = fork();
	assert_true(p >= 0);
	if (p == 0)
		child(kind, idx);
	if (h.n_children < HARNESS_MAX_CHILDREN)
		h.children[h.n_children++] = p;         /* killed in teardown */
	return p;
}

static uint64_t timer_wakeups(thoth_control_t *ctl)
{
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(ctl, &st), 0);
	return st.wakeups_timer;
}

/* The status of child P once it has exited (or -1 past the deadline),
 * resolving all the while (the loop thread must keep answering). */
static int reap_resolving(pid_t p, thoth_control_t *ctl, uint64_t *resolves)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	for (;;) {
		int st;
		if (waitpid(p, &st, WNOHANG) == p)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
		if (now_ms() > end)
			return -1;
		for (int i = 0; i < 20; i++) {
			assert_int_equal(harness_resolve(ctl, "svc", NULL), 0);
			(*resolves)++;
		}
	}
}

static void test_session_collected_by_the_collector_thread_loses_nothing(void **state)
{
	thoth_control_t ctl, svc;
	assert_int_equal(harness_connect(&h, &svc), 0);
	assert_int_equal(harness_register(&svc, "svc", 0, NULL), 0);
	assert_int_equal(harness_connect(&h, &ctl), 0);
	uint64_t wake0 = timer_wakeups(&ctl);

	thoth_trace_TraceControl_start_pid_req_t sreq = {
		.categories = THOTH_TRACE_MASK(USER), .pid = 0 };
	thoth_trace_TraceControl_start_pid_resp_t sresp;
	assert_int_equal(thoth_trace_TraceControl_start_pid(&ctl.client, &sreq, &sresp, NULL), 0);

	int pipefd[2];
	assert_int_equal(pipe2(pipefd, O_NONBLOCK), 0);
	done_fd = pipefd[1];
	pid_t kids[BUSY + 1];
	for (int i = 0; i < BUSY; i++)
		kids[i] = spawn(KIND_BUSY, i);
	kids[BUSY] = spawn(KIND_HOSTILE, 0);
	uint64_t resolves = 0;
	for (int i = 0; i < CHURN; i++) {
		pid_t p = fork();
		assert_true(p >= 0);
		if (p == 0)
			child(KIND_CHURN, i);
		assert_int_equal(reap_resolving(p, &ctl, &resolves), 0);
	}
	/* Busy and hostile children say so once every burst was collected; an
	 * error exits them with a code instead.  Resolving all the while. */
	int done = 0;
	uint64_t end = now_ms() + DEADLINE_MS;
	while (done < BUSY + 1) {
		char c;
		if (read(pipefd[0], &c, 1) == 1) {
			done++;
			continue;
		}
		for (int i = 0; i < BUSY + 1; i++) {
			int st;
			if (waitpid(kids[i], &st, WNOHANG) == kids[i])
				fail_msg("traced child %d failed: status %#x", (int)kids[i], st);
		}
		if (now_ms() > end)
			fail_msg("%d of %d traced children saw their events collected", done, BUSY + 1);
		for (int i = 0; i < 20; i++) {
			assert_int_equal(harness_resolve(&ctl, "svc", NULL), 0);
			resolves++;
		}
	}
	close(pipefd[0]);
	close(pipefd[1]);
	/* The loop thread never woke for a drain timer: the collector thread
	 * did all of it.  And it answered every resolve meanwhile. */
	assert_int_equal(timer_wakeups(&ctl), wake0);
	assert_true(resolves > 0);

	thoth_trace_TraceControl_stop_req_t preq = { .session_id = 0 };
	thoth_trace_TraceControl_stop_resp_t presp;
	assert_int_equal(thoth_trace_TraceControl_stop(&ctl.client, &preq, &presp, NULL), 0);
	uint64_t want = (uint64_t)BUSY * BURSTS * BURST + (uint64_t)CHURN * CHURN_EVENTS + HOSTILE_GOOD;
	if (presp.events != want)
		fail_msg("collected %llu events, emitted %llu", (unsigned long long)presp.events,
			 (unsigned long long)want);
	/* The hostile ring's lies are counted as losses, nothing else is. */
	assert_true(presp.dropped >= 4ull * 16384);
	assert_true(harness_file_contains(h.log, "collection passes on the collector thread"));
	thoth_control_close(&ctl);
	thoth_control_close(&svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_session_collected_by_the_collector_thread_loses_nothing,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
