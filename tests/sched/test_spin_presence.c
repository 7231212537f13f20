/*
 * test_spin_presence.c - "spin only when it can pay" (issue 13 section 1):
 * each channel end publishes whether it runs and on which CPU, and a waiter
 * spins only while its peer runs on another CPU (kernel/ipc/chan_shm.c,
 * docs/IPC.md "Presence").
 *
 * The pair tests run the two ends in two real processes (fork) on one memfd
 * mapping, pinned by sched_setaffinity, and ping-pong small messages through
 * chan_shm's own wait path (futex wake-ups).  What they assert is counted by
 * the channel itself (spin hits, misses, skips), so a loaded machine changes
 * the timings but not the verdict.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "chan_shm.h"
#include "thoth/loop.h"
#include "../common/skip.h"

enum { ROUND_TRIPS = 2000, MSG = 64 };

typedef struct pair {
	int fd;
	uint8_t *base;
	chan_layout_t lay;
} pair_t;

static void pair_open(pair_t *p)
{
	thoth_chan_limits_t lim = { 64, 4096, 4 };
	assert_int_equal(thoth_chan_limits_resolve(&lim, NULL, 0), 0);
	assert_int_equal(chan_layout_compute(&lim, &p->lay), 0);
	p->fd = memfd_create("test-presence", MFD_CLOEXEC);
	assert_true(p->fd >= 0);
	assert_int_equal(ftruncate(p->fd, (off_t)p->lay.size), 0);
	p->base = chan_shm_map(p->fd, p->lay.size);
	assert_non_null(p->base);
	chan_shm_format(p->base, &p->lay);
}

static void pair_close(pair_t *p)
{
	chan_shm_unmap(p->base, p->lay.size);
	close(p->fd);
}

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static int send_small(chan_end_t *e, uint32_t id)
{
	uint8_t *buf;
	int r = chan_wait(e, CHAN_WAIT_SLOT, 0, 5000);
	if (r || (r = chan_try_alloc(e, MSG, &buf)))
		return r;
	memset(buf, 0, MSG);
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST, .request_id = id,
				 .body_len = MSG - THOTH_WIRE_HEADER_SIZE };
	thoth_wire_header_encode(buf, &h);
	return chan_try_send(e, buf, MSG);
}

static int recv_small(chan_end_t *e)
{
	int r = chan_wait(e, CHAN_WAIT_RECV, 0, 5000);
	thoth_msg_t m;
	if (r || (r = chan_try_recv(e, &m)))
		return r;
	return chan_release(e, &m);
}

/* Every NAP_EVERY-th request (at NAP_AT) the echo sleeps NAP_NS before it
 * answers: longer than the waiter's spin budget (THOTH_CHAN_DEFAULT_SPIN_NS,
 * 50 us), so the client's wait ends asleep and, after the answer, both ends
 * have been seen asleep.  The pair test goes through that state on purpose:
 * only the "we just woke it" exception gets a pair out of it. */
enum { NAP_EVERY = 250, NAP_AT = 10, NAP_NS = 2000000 };
_Static_assert(NAP_NS >= 10 * THOTH_CHAN_DEFAULT_SPIN_NS, "a nap outlasts any spin");

/* The service end, in a forked child pinned to CPU: answer N messages. */
static pid_t start_echo(pair_t *p, int cpu, thoth_chan_wait_t wait, unsigned n)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	chan_end_t e;
	if (pin(cpu) || chan_end_init(&e, p->base, &p->lay, CHAN_SERVER))
		_exit(10);
	e.wait = wait;
	for (unsigned i = 0; i < n; i++) {
		if (recv_small(&e))
			_exit(11);
		if (i % NAP_EVERY == NAP_AT) {
			struct timespec ts = { 0, NAP_NS };
			nanosleep(&ts, NULL);
		}
		if (send_small(&e, i))
			_exit(11);
	}
	_exit(0);
}

typedef struct run {
	thoth_chan_stats_t st;
	double median_ns;
} run_t;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ROUND_TRIPS round trips, client pinned to CPU_C, service to CPU_S. */
static void ping_pong(int cpu_c, int cpu_s, thoth_chan_wait_t wait, run_t *out)
{
	pair_t p;
	pair_open(&p);
	cpu_set_t saved;
	assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
	assert_int_equal(pin(cpu_c), 0);
	pid_t pid = start_echo(&p, cpu_s, wait, ROUND_TRIPS);
	chan_end_t e;
	assert_int_equal(chan_end_init(&e, p.base, &p.lay, CHAN_CLIENT), 0);
	e.wait = wait;
	uint64_t *lat = calloc(ROUND_TRIPS, sizeof *lat);
	assert_non_null(lat);
	for (unsigned i = 0; i < ROUND_TRIPS; i++) {
		uint64_t t0 = thoth_clock_now();
		assert_int_equal(send_small(&e, i), 0);
		assert_int_equal(recv_small(&e), 0);
		lat[i] = thoth_clock_now() - t0;
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qsort(lat, ROUND_TRIPS, sizeof *lat, cmp_u64);
	out->median_ns = (double)lat[ROUND_TRIPS / 2];
	out->st = e.st;
	free(lat);
	chan_end_fini(&e);
	pair_close(&p);
	sched_setaffinity(0, sizeof saved, &saved);
}

static void test_spin_rule_follows_the_peers_cpu_and_state(void **state)
{
	const uint32_t R = CHAN_PRESENCE_RUNNING;
	/* The peer last ran on our CPU (3 = CPU 2 + 1): never spin, whatever
	 * else it says, woken or not. */
	assert_false(chan_spin_pays(R | 3, 2, false));
	assert_false(chan_spin_pays(3, 2, true));
	/* Running on another CPU: spin. */
	assert_true(chan_spin_pays(R | 1, 2, false));
	/* Asleep on another CPU: only while our wake-up is on its way. */
	assert_false(chan_spin_pays(1, 2, false));
	assert_true(chan_spin_pays(1, 2, true));
	/* Unknown (an older peer writes 0; we may not know our own CPU):
	 * the adaptive budget of before decides. */
	assert_true(chan_spin_pays(0, 2, false));
	assert_true(chan_spin_pays(R, 2, false));
	assert_true(chan_spin_pays(R | 3, -1, false));
	/* Hostile values are read as "unknown": at worst a bounded spin. */
	assert_true(chan_spin_pays(0xffffffffu, 2, false));
	assert_true(chan_spin_pays(0x7fff0003u, 2, false));
	assert_true(chan_spin_pays(0x00010003u, 2, false));
	/* The largest CPU field is a CPU like any other. */
	assert_false(chan_spin_pays(R | 0xffffu, 0xfffe, false));
}

/* Both ends on one CPU: the waiter must sleep at once (the peer cannot
 * answer while it spins), so spin-then-sleep costs what always-sleep does
 * instead of a whole spin budget per wait (issue 13: 70 us vs 2.5 us). */
static void test_same_cpu_pair_sleeps_at_once(void **state)
{
	run_t spin, sleep;
	ping_pong(0, 0, THOTH_CHAN_SPIN, &spin);
	ping_pong(0, 0, THOTH_CHAN_SLEEP, &sleep);
	print_message("same CPU: spin-then-sleep p50 %.0f ns, always-sleep %.0f ns; "
		      "spin hits %llu misses %llu skips %llu\n", spin.median_ns, sleep.median_ns,
		      (unsigned long long)spin.st.spin_hits, (unsigned long long)spin.st.spin_misses,
		      (unsigned long long)spin.st.spin_skips);
	/* Before the service first publishes, its presence is unknown: only
	 * the first waits of the run may spin. */
	assert_true(spin.st.spin_hits + spin.st.spin_misses <= 4);
	/* Every other wait decided not to spin (waits whose reply was already
	 * there - the woken peer preempted us - decide nothing). */
	assert_true(spin.st.spin_skips >= 1);
	/* A generous bound against the same run's always-sleep figure: the
	 * pathology was 6x (loaded) to 28x (idle); equal costs give 1x. */
	assert_true(spin.median_ns <= 3.0 * sleep.median_ns);
}

/* On two CPUs spinning still pays: the rule must not collapse into
 * always-sleep (after one sleep, each side sees the other asleep; the
 * "we woke it" exception lets it spin for the peer's wake-up).  The echo
 * naps 2 ms once every 250 requests (start_echo), so each window goes
 * through that "both asleep" state eight times on purpose.
 *
 * What is asserted is what the waiter decided, not how many of its spins
 * the machine's moment let succeed.  A wait that spun to an end, hit or
 * miss (spin_hits + spin_misses), is a "decided" wait: its presence check
 * let it spin, because the peer runs on another CPU, was just woken by
 * us, or because presence was unknown (the peer's word 0 or a value we
 * never write, or our own CPU unknown: the adaptive budget decides).  A
 * wait the rule refused, or cut short when the peer's word turned, counts
 * in spin_skips.  A loaded machine takes the peer's CPU at times and
 * turns hits into misses (this test once asserted hits >= 1/4 of the
 * round trips and failed 3 of 10 ASan runs under load, then 0 of 30):
 * decided spins stay decided.  Collapsed into always-sleep, or with the
 * spin decision forced off, the waits become skips (or decide nothing)
 * and the test fails.  Without only the "just woken" exception
 * (chan_spin_pays returning peer & RUNNING alone), each nap leaves the
 * pair asleep for tens to hundreds of round trips: it failed 6 of 6
 * runs (skips 568-1,753 against 243-1,422 decided waits a window) where
 * the real rule passed 4 of 4 (hits 1,968-1,991, skips 0), load 21-22;
 * without the nap a reviewer's 15 runs caught it 3 times (docs/SCHED.md,
 * section 1).
 *
 * Each window is judged on its own, against one window's thresholds.  A
 * window where fewer than SPIN_DECIDED_MIN waits decided anything
 * (answers already there when the client came to wait: it was off its
 * CPU after each send) says nothing either way and is measured again,
 * three windows at most; the test fails if none is conclusive rather
 * than pass on no evidence.  A conclusive window with more skips than a
 * quarter of its decided waits fails at once; one with no hit is
 * measured again; the first with a hit passes. */
enum { SPIN_WINDOWS = 3, SPIN_DECIDED_MIN = ROUND_TRIPS / 8 };

static void test_two_cpu_pair_keeps_spinning(void **state)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		skip_because("fewer than 2 CPUs online");
	bool passed = false;
	for (unsigned w = 0; w < SPIN_WINDOWS && !passed; w++) {
		run_t spin;
		ping_pong(0, 1, THOTH_CHAN_SPIN, &spin);
		uint64_t hits = spin.st.spin_hits, decided = hits + spin.st.spin_misses;
		uint64_t skips = spin.st.spin_skips;
		print_message("two CPUs, window %u: spin-then-sleep p50 %.0f ns; spin hits %llu misses %llu "
			      "skips %llu sleeps %llu\n", w, spin.median_ns, (unsigned long long)hits,
			      (unsigned long long)spin.st.spin_misses, (unsigned long long)skips,
			      (unsigned long long)spin.st.sleeps);
		if (decided < SPIN_DECIDED_MIN)
			continue;               /* inconclusive: measure again */
		/* Conclusive: the rule chose spinning for most of the waits it
		 * decided (collapsed, nearly every decision is a skip); a
		 * failure here is a verdict, not noise, and is not retried. */
		assert_true(skips * 4 <= decided);
		/* And at least one spin paid; none may be a moment's load. */
		passed = hits > 0;
	}
	assert_true(passed);
}

/* A hostile peer that claims to run on another CPU while it sleeps: the
 * waiter spins its bounded budget, then sleeps, and the call still
 * completes; garbage values do the same. */
typedef struct liar {
	pair_t *p;
	uint32_t claim;
	_Atomic int done;
} liar_t;

static void *liar_main(void *arg)
{
	liar_t *l = arg;
	chan_end_t e;
	if (chan_end_init(&e, l->p->base, &l->p->lay, CHAN_SERVER))
		return NULL;
	e.wait = THOTH_CHAN_SLEEP;
	for (int i = 0; i < 3; i++) {
		if (recv_small(&e))
			break;
		/* Lie for 20 ms, then answer. */
		chan_ctl_t *ctl = (chan_ctl_t *)l->p->base;
		uint64_t until = thoth_clock_now() + 20000000u;
		while (thoth_clock_now() < until) {
			atomic_store_explicit(&ctl->presence[CHAN_SERVER].word, l->claim, memory_order_relaxed);
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
		if (send_small(&e, (uint32_t)i))
			break;
	}
	atomic_store(&l->done, 1);
	chan_end_fini(&e);
	return NULL;
}

static void test_hostile_presence_costs_latency_not_correctness(void **state)
{
	int cpu = sched_getcpu();
	uint32_t claims[] = {
		CHAN_PRESENCE_RUNNING | (uint32_t)((cpu + 1) % 4 + 1),  /* "running elsewhere" */
		0xffffffffu, 0x7fff1234u, CHAN_PRESENCE_RUNNING | 0xffffu,
	};
	for (unsigned k = 0; k < sizeof claims / sizeof claims[0]; k++) {
		pair_t p;
		pair_open(&p);
		liar_t l = { .p = &p, .claim = claims[k] };
		pthread_t t;
		chan_end_t e;
		assert_int_equal(chan_end_init(&e, p.base, &p.lay, CHAN_CLIENT), 0);
		e.spin_max = e.spin_budget = 200000;    /* 200 us */
		assert_int_equal(pthread_create(&t, NULL, liar_main, &l), 0);
		for (int i = 0; i < 3; i++) {
			uint64_t t0 = thoth_clock_now();
			assert_int_equal(send_small(&e, (uint32_t)i), 0);
			assert_int_equal(recv_small(&e), 0);
			/* It waited for the answer (20 ms), not for ever. */
			assert_true(thoth_clock_now() - t0 >= 19000000u);
		}
		pthread_join(t, NULL);
		assert_int_equal(atomic_load(&l.done), 1);
		/* Each wait spun at most its budget and then slept. */
		assert_true(e.st.sleeps >= 3);
		assert_int_equal(e.err, 0);
		chan_end_fini(&e);
		pair_close(&p);
	}
}

/*
 * A third writer racing both ends: either peer maps the control page
 * read-write, so a hostile one can write the other side's presence word
 * and thread id too, as fast as it likes, while the honest end reads
 * them (a value that changes under every read).  Each wait reads the word
 * only to choose between spinning its bounded budget and sleeping, so
 * every round trip completes, with no error, and no wait spins past its
 * budget: spin hits plus misses never exceed the waits that could spin.
 * (hostile41: audit of the presence words; clean, this passes on the code
 * before it.)
 */
static void *scribble_presence(void *arg)
{
	liar_t *l = arg;
	chan_ctl_t *ctl = (chan_ctl_t *)l->p->base;
	uint64_t r = 88172645463325252ull;
	while (!atomic_load(&l->done)) {
		for (int side = 0; side < 2; side++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			atomic_store_explicit(&ctl->presence[side].word, (uint32_t)r, memory_order_relaxed);
			atomic_store_explicit(&ctl->presence[side].tid, (uint32_t)(r >> 32), memory_order_relaxed);
		}
		sched_yield();
	}
	return NULL;
}

static void test_presence_scribbled_while_read_costs_latency_only(void **state)
{
	enum { N = 1000 };
	pair_t p;
	pair_open(&p);
	pid_t echo = start_echo(&p, sched_getcpu(), THOTH_CHAN_SPIN, N);
	liar_t l = { .p = &p };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, scribble_presence, &l), 0);
	chan_end_t e;
	assert_int_equal(chan_end_init(&e, p.base, &p.lay, CHAN_CLIENT), 0);
	e.wait = THOTH_CHAN_SPIN;
	int err = 0;
	for (unsigned i = 0; i < N && !err; i++)
		if ((err = send_small(&e, i)) == 0)
			err = recv_small(&e);
	atomic_store(&l.done, 1);
	pthread_join(t, NULL);
	int status;
	assert_int_equal(waitpid(echo, &status, 0), echo);
	print_message("scribbled presence: %d round trips, spin hits %llu, misses %llu, skips %llu, sleeps %llu\n",
		      N, (unsigned long long)e.st.spin_hits, (unsigned long long)e.st.spin_misses,
		      (unsigned long long)e.st.spin_skips, (unsigned long long)e.st.sleeps);
	assert_int_equal(err, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(e.err, 0);
	/* Two waits per round trip (a slot, an answer): at most one spin each. */
	assert_true(e.st.spin_hits + e.st.spin_misses <= 2 * (uint64_t)N);
	chan_end_fini(&e);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spin_rule_follows_the_peers_cpu_and_state),
		cmocka_unit_test(test_same_cpu_pair_sleeps_at_once),
		cmocka_unit_test(test_two_cpu_pair_keeps_spinning),
		cmocka_unit_test(test_hostile_presence_costs_latency_not_correctness),
		cmocka_unit_test(test_presence_scribbled_while_read_costs_latency_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
