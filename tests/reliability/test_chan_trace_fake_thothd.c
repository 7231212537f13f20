/*
 * test_chan_trace_fake_thothd.c - a process survives whoever it hands its
 * trace buffer to (issue 11, item 3).
 *
 * Every thoth process hands its trace buffer's memfd to whatever answers at
 * the thothd socket (TraceControl.attach), and thothd legitimately writes
 * into it (the enabled mask, ring tails).  A fake thothd here takes the fd
 * and then writes nonsense into every part of the buffer, continuously:
 * enabled mask all ones, names_count 0xffffffff, rings_claimed reset to 0,
 * ring heads at random values, the name table without a single NUL.  The
 * traced process (writing events from 4 threads under 300 names, more than
 * the table holds) must not crash: its writer keeps the truth of
 * everything it reads back in private memory.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "fdpass.h"
#include "thoth/service.h"
#include "thoth/trace.h"
#include "trace_layout.h"

enum { NAMES = 300, THREADS = 4 };

static chan_proc_env_t env;
static uint32_t id_cache[NAMES];
static char names[NAMES][16];

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	return chan_env_init(&env);
}

static int teardown(void **state)
{
	chan_env_fini(&env);
	return 0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The fake thothd: takes the buffer of the first process that attaches and
 * scribbles over it until killed. */
static void fake_thothd(int lfd)
{
	int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (sock < 0)
		_exit(2);
	uint8_t buf[4096];
	int fd = -1;
	size_t nfd = 0;
	if (thoth_fdpass_recv(sock, buf, sizeof buf, 0, &fd, 1, &nfd) <= 0 || nfd != 1)
		_exit(3);
	struct stat st;
	if (fstat(fd, &st) < 0)
		_exit(4);
	uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		_exit(5);
	thoth_trace_control_t *c = (thoth_trace_control_t *)base;
	uint32_t rings = c->ring_count, records = c->ring_records;
	for (;;) {
		__atomic_store_n(&c->enabled, ~0ull, __ATOMIC_RELAXED);
		__atomic_store_n(&c->names_count, 0xffffffffu, __ATOMIC_RELAXED);
		__atomic_store_n(&c->rings_claimed, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&c->ring_count, 0xffffffffu, __ATOMIC_RELAXED);
		__atomic_store_n(&c->ring_records, 0xffffffffu, __ATOMIC_RELAXED);
		memset(base + THOTH_TRACE_NAMES_OFFSET, 0xff, THOTH_TRACE_MAX_NAMES * THOTH_TRACE_NAME_SLOT);
		for (uint32_t i = 0; i < rings; i++) {
			thoth_trace_ring_header_t *r = thoth_trace_ring_at(base, records, i);
			__atomic_store_n(&r->head, next_random(), __ATOMIC_RELAXED);
			__atomic_store_n(&r->tail, next_random(), __ATOMIC_RELAXED);
			__atomic_store_n(&r->state, 0, __ATOMIC_RELAXED);
		}
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
}

static void *emitter(void *arg)
{
	uint64_t end = chan_now_ns() + 300000000ull;
	for (uint64_t n = 0; chan_now_ns() < end; n++) {
		unsigned i = (unsigned)(n % NAMES);
		thoth_trace_fields_t f = { .arg0 = n, .arg1 = (uint64_t)(uintptr_t)arg };
		if (THOTH_TRACE_IS_ON(USER))
			thoth_trace_emit(THOTH_TRACE_CAT_USER, &id_cache[i], names[i], &f);
		THOTH_TRACE(USER, scribbled_over, n, 1);
	}
	return NULL;
}

/* The traced process: hands its buffer over the real path
 * (thoth_control_connect sends TraceControl.attach with the memfd), waits
 * for the fake to switch tracing on, then traces from 4 threads. */
static void traced_process(void)
{
	setenv("THOTH_RUNTIME_DIR", env.dir, 1);
	if (thoth_trace_init_process("victim"))
		_exit(10);
	thoth_control_t ctl;
	if (thoth_control_connect(&ctl, env.dir, 2000))
		_exit(11);
	for (uint64_t end = chan_now_ns() + 5000000000ull; !THOTH_TRACE_IS_ON(USER); chan_nap_ms(1))
		if (chan_now_ns() > end)
			_exit(12);
	for (int i = 0; i < NAMES; i++)
		snprintf(names[i], sizeof names[i], "ev%d", i);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, emitter, (void *)(uintptr_t)i))
			_exit(13);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	thoth_control_close(&ctl);
	_exit(0);
}

static void test_traced_process_survives_a_fake_thothd_scribbling_its_buffer(void **state)
{
	char path[400];
	snprintf(path, sizeof path, "%s/thothd.sock", env.dir);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 4), 0);
	pid_t fake = fork();
	assert_true(fake >= 0);
	if (fake == 0)
		fake_thothd(lfd);
	close(lfd);
	pid_t victim = fork();
	assert_true(victim >= 0);
	if (victim == 0)
		traced_process();
	int st = chan_wait_exit(victim, 30000);
	kill(fake, SIGKILL);
	waitpid(fake, NULL, 0);
	unlink(path);
	if (st < 0) {
		kill(victim, SIGKILL);
		waitpid(victim, NULL, 0);
		fail_msg("the traced process hung");
	}
	if (WIFSIGNALED(st))
		fail_msg("the traced process died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	if (WEXITSTATUS(st))
		fail_msg("the traced process exited %d (10-13: set-up steps, see traced_process)", WEXITSTATUS(st));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_traced_process_survives_a_fake_thothd_scribbling_its_buffer, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
