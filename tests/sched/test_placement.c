/*
 * test_placement.c - the SCHED-4 placement policy on scripted scenarios
 * (kernel/sched/placement.c): the pure decision function is fed synthetic
 * observations of one client/service pair, and the one function that moves
 * a thread is run on a real thread of this process.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "placement.h"
#include "placement_topo.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

#define MS 1000000ull
#define SEC 1000000000ull

/* A synchronous low-rate pair on two CPUs: 1000 calls/s, every call a
 * doorbell each way, 10% of a CPU together, 50 us per round trip. */
static place_obs_t lazy_pair(void)
{
	return (place_obs_t){
		.client_cpu = 0, .server_cpu = 1,
		.window_ns = SEC, .calls = 1000, .peer_wakeups = 2000,
		.client_busy = 0.05, .server_busy = 0.05,
		.rtt_ns = 50000, .since_last_move_ns = UINT64_MAX,
	};
}

static place_cpumap_t map;

static place_decision_t run(const place_obs_t *o)
{
	place_decision_t d;
	memset(&d, 0x55, sizeof d);
	place_decide(NULL, o, &d);
	print_message("  -> %s: %s\n", d.action == PLACE_COLOCATE ? "colocate" : d.action == PLACE_SPREAD ? "spread"
		      : d.action == PLACE_APART ? "apart" : "stay",
		      d.why);
	assert_non_null(memchr(d.why, 0, sizeof d.why));
	return d;
}

static void test_sleeping_low_rate_pair_is_colocated_on_the_clients_cpu(void **state)
{
	place_obs_t o = lazy_pair();
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_COLOCATE);
	assert_int_equal(d.cpu, 0);          /* the service follows its client */
	assert_non_null(strstr(d.why, "synchronous"));
}

static void test_explicit_user_affinity_is_never_overridden(void **state)
{
	place_obs_t o = lazy_pair();
	o.server_pinned = true;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "user"));
	/* A client pinned by the user is a fixed CPU to follow: only the
	 * service thread moves, the client's affinity is never touched. */
	o = lazy_pair();
	o.client_pinned = true;
	d = run(&o);
	assert_int_equal(d.action, PLACE_COLOCATE);
	assert_int_equal(d.cpu, o.client_cpu);
	/* Also when co-located and slower: a pinned thread is not spread. */
	o = lazy_pair();
	o.colocated = true;
	o.server_pinned = true;
	o.rtt_before_ns = 10000;
	o.rtt_ns = 90000;
	assert_int_equal(run(&o).action, PLACE_STAY);
}

static void test_busy_or_fast_or_spinning_pairs_stay_apart(void **state)
{
	place_obs_t o = lazy_pair();
	o.calls = 100000;                    /* 100k calls/s */
	o.peer_wakeups = 200000;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.client_busy = 0.4;                 /* 80% of a CPU together */
	o.server_busy = 0.4;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.peer_wakeups = 10;                 /* both spin: no doorbells, already fast */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.server_cpu = 0;                    /* already together */
	assert_int_equal(run(&o).action, PLACE_STAY);
}

static void test_colocated_pair_is_spread_again_when_slower(void **state)
{
	place_obs_t o = lazy_pair();
	o.colocated = true;
	o.client_cpu = o.server_cpu = 0;
	o.rtt_before_ns = 50000;
	o.rtt_ns = 3000;                     /* 16x faster together: stay */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o.rtt_ns = 70000;                    /* 1.4x slower than before the move */
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_SPREAD);
	assert_non_null(strstr(d.why, "1.40x"));
	o.rtt_ns = 3000;                     /* fast, but the CPU is full */
	o.client_busy = 0.6;
	o.server_busy = 0.5;
	assert_int_equal(run(&o).action, PLACE_SPREAD);
}

static void test_no_move_within_the_dwell_time(void **state)
{
	place_obs_t o = lazy_pair();
	o.since_last_move_ns = 500 * MS;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "ago"));
	o.since_last_move_ns = 3 * SEC;
	assert_int_equal(run(&o).action, PLACE_COLOCATE);
}

/* ---- rule 6: apart ---------------------------------------------------------- */

/* A back-to-back pair the kernel keeps on CPU 0 (this VM, unpinned):
 * every round trip sleeps, ~14 us, the two threads use the whole CPU;
 * CPU 1 is 80% idle, CPU 2 95% (a fake /proc/stat window). */
static const place_cpu_idle_t three_cpus[] = { { 0, 0.0 }, { 1, 0.80 }, { 2, 0.95 } };

static place_obs_t saturating_pair(void)
{
	return (place_obs_t){
		.client_cpu = 0, .server_cpu = 0,
		.window_ns = SEC, .calls = 70000, .peer_wakeups = 70000,
		.client_busy = 0.52, .server_busy = 0.46,
		.rtt_ns = 14000, .since_last_move_ns = UINT64_MAX,
		.cpus = three_cpus, .ncpus = 3,
	};
}

static void test_a_saturating_pair_on_one_cpu_is_moved_apart_to_an_idle_cpu(void **state)
{
	place_obs_t o = saturating_pair();
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_APART);
	assert_int_equal(d.reason, PLACE_WHY_SATURATED);
	assert_int_equal(d.cpu, 2);          /* the most idle one, never the client's */
	assert_non_null(strstr(d.why, "apart"));
	/* Within 10% of the most idle, the nearest to the client by topology
	 * (sys-2node: CPU 4's SMT sibling is 6, 5 is another core, 3 the
	 * other node): 6, although 3 is more idle and nearer by number. */
	assert_int_equal(place_cpumap_load(&map, FIXTURES "/sys-2node"), 0);
	const place_cpu_idle_t eight[] = { { 3, 0.97 }, { 4, 0.0 }, { 5, 0.92 }, { 6, 0.90 }, { 7, 0.40 } };
	o.client_cpu = o.server_cpu = 4;
	o.cpus = eight;
	o.ncpus = 5;
	o.map = &map;
	d = run(&o);
	assert_int_equal(d.action, PLACE_APART);
	assert_int_equal(d.cpu, 6);
	o.map = NULL;                        /* by number: 3 and 5 tie, the lower index */
	assert_int_equal(run(&o).cpu, 3);
	const place_cpu_idle_t far_more_idle[] = { { 3, 1.0 }, { 6, 0.55 } };
	o.map = &map;
	o.cpus = far_more_idle;
	o.ncpus = 2;
	assert_int_equal(run(&o).cpu, 3);    /* least loaded first: 6 is 45% less idle */
}

static void test_no_apart_move_without_an_idle_cpu_or_a_saturating_sleeping_pair(void **state)
{
	const place_cpu_idle_t busy_other[] = { { 0, 0.9 }, { 1, 0.30 } };
	place_obs_t o = saturating_pair();
	/* Each case is the moving pair with one thing changed. */
	assert_int_equal(run(&o).action, PLACE_APART);
	o.cpus = busy_other;                 /* only the client's own CPU is idle */
	o.ncpus = 2;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "idle"));
	o = saturating_pair();
	o.cpus = NULL;                       /* the other CPUs' load unknown */
	o.ncpus = 0;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = saturating_pair();
	o.client_busy = o.server_busy = 0.3; /* 60%: the pair has think time, it fits */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = saturating_pair();
	o.peer_wakeups = 100;                /* not sleeping: not this rule's pair */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = saturating_pair();
	o.server_pinned = true;              /* the user's affinity: never overridden */
	d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "user"));
}

static void test_apart_is_undone_when_the_round_trip_gets_slower(void **state)
{
	place_obs_t o = saturating_pair();
	o.apart = true;
	o.client_cpu = 0;
	o.server_cpu = 2;
	o.rtt_before_ns = 14000;
	o.since_last_move_ns = 3 * SEC;
	o.rtt_ns = 700;                      /* spinning across CPUs: keep it */
	assert_non_null(strstr(run(&o).why, "apart and not slower"));
	assert_int_equal(run(&o).action, PLACE_STAY);
	o.rtt_ns = 140000;                   /* the chosen CPU got busy: cross-CPU sleeps */
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_SPREAD);
	assert_int_equal(d.reason, PLACE_WHY_APART_SLOWER);
	assert_non_null(strstr(d.why, "10.00x"));
	/* The kernel put the client on the service's CPU (woken there): the
	 * pair sleeps together again, the pin buys nothing: undone. */
	o.rtt_ns = 13000;
	o.client_cpu = 2;
	d = run(&o);
	assert_int_equal(d.action, PLACE_SPREAD);
	assert_non_null(strstr(d.why, "followed"));
	o.server_pinned = true;              /* pinned by the user since: left alone */
	assert_int_equal(run(&o).action, PLACE_STAY);
}

static void test_apart_has_its_own_dwell_doubled_by_undos(void **state)
{
	place_policy_t pol;
	place_policy_default(&pol);
	place_obs_t o = saturating_pair();
	o.since_last_move_ns = 3 * SEC;      /* past the 2 s dwell, not the 4 s apart dwell */
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "dwell"));
	o.since_last_move_ns = pol.apart_dwell_ns + 1;
	assert_int_equal(run(&o).action, PLACE_APART);
	o.apart_undos = 2;                   /* undone twice: 4x the dwell */
	assert_int_equal(run(&o).action, PLACE_STAY);
	o.since_last_move_ns = 4 * pol.apart_dwell_ns + 1;
	assert_int_equal(run(&o).action, PLACE_APART);
	o.apart_undos = 1000;                /* capped at 64x, no shift overflow */
	o.since_last_move_ns = 64 * pol.apart_dwell_ns + 1;
	assert_int_equal(run(&o).action, PLACE_APART);
}

/* A long apart dwell (a policy field: THOTH_PLACEMENT_POLICY's
 * apart_dwell_ms) doubled by undos must saturate, never wrap to a short
 * one: 2^62 ns << 6 wrapped to 0 and let rule 6 move a pair it had
 * undone six times one second after the undo. */
static void test_a_long_apart_dwell_doubled_saturates_instead_of_wrapping(void **state)
{
	place_policy_t pol;
	place_policy_default(&pol);
	pol.apart_dwell_ns = 1ull << 62;
	place_obs_t o = saturating_pair();
	o.apart_undos = 6;
	o.since_last_move_ns = 10 * SEC;
	place_decision_t d;
	place_decide(&pol, &o, &d);
	assert_int_equal(d.action, PLACE_STAY);
	assert_non_null(strstr(d.why, "apart dwell"));
	o.since_last_move_ns = UINT64_MAX;   /* never moved: no dwell at all */
	place_decide(&pol, &o, &d);
	assert_int_equal(d.action, PLACE_APART);
}

/* THOTH_PLACEMENT_POLICY's grammar: KEY=NUMBER items, all or nothing. */
static void test_policy_overrides_parse_all_or_nothing(void **state)
{
	place_policy_t p, def;
	place_policy_default(&def);
	p = def;
	char why[256] = "";
	assert_int_equal(place_policy_parse(&p, NULL, why, sizeof why), 0);
	assert_int_equal(place_policy_parse(&p, "", why, sizeof why), 0);
	assert_memory_equal(&p, &def, sizeof p);
	assert_int_equal(place_policy_parse(&p, "spread_busy=0,apart_idle=0.25,max_rate_hz=0,min_dwell_ms=1000,"
					    "apart_dwell_ms=1.5,spread_slowdown=0,max_busy=0.3", why, sizeof why), 0);
	assert_true(p.spread_busy == 0 && p.apart_idle == 0.25 && p.max_rate_hz == 0 && p.spread_slowdown == 0 &&
		    p.max_busy == 0.3);
	assert_int_equal(p.min_dwell_ns, 1000000000ull);
	assert_int_equal(p.apart_dwell_ns, 1500000ull);
	static const char *const bad[] = {
		"spread_busy", "=1", "spread_busy=", "spread_busy=x", "spread_busy=0.5x", "nosuch=1",
		"apart_idle=2", "apart_idle=-0.1", "spread_busy=nan", "max_rate_hz=inf", "min_dwell_ms=1e30",
		"spread_busy=0.5,,apart_idle=0.1", "spread_busy=0.5;apart_idle=0.1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		place_policy_t q = def;
		why[0] = 0;
		assert_int_equal(place_policy_parse(&q, bad[i], why, sizeof why), -1);
		assert_memory_equal(&q, &def, sizeof q);        /* untouched */
		assert_non_null(strstr(why, "placement policy"));
	}
}

/* /proc/stat's cpu lines into idle shares: fake files for two moments. */
static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Two empty temporary files (the fake /proc/stat of two moments). */
static void two_temp_files(char *a, char *b)
{
	int fa = mkstemp(a), fb = mkstemp(b);
	assert_true(fa >= 0 && fb >= 0);
	close(fa);
	close(fb);
}

static void test_cpu_idle_shares_from_proc_stat(void **state)
{
	char a[256], b[256];
	test_tmp_template(a, sizeof a, "thoth-pstat-a");
	test_tmp_template(b, sizeof b, "thoth-pstat-b");
	two_temp_files(a, b);
	write_file(a, "cpu  300 0 100 1000 0 0 0 0 0 0\n"
		      "cpu0 100 0 50 500 0 0 0 0 0 0\n"
		      "cpu1 200 0 50 500 0 0 0 0 0 0\n"
		      "cpu3 10 0 10 10 0 0 0 0 0 0\n"
		      "intr 12345 1 2 3\n");
	/* 100 ticks later: CPU 0 all busy, CPU 1 75 idle + 5 iowait of 100,
	 * CPU 3 gone (offline), CPU 9 new. */
	write_file(b, "cpu  500 0 100 1080 0 0 0 0 0 0\n"
		      "cpu0 180 0 70 500 0 0 0 0 0 0\n"
		      "cpu1 210 0 60 575 5 0 0 0 0 0\n"
		      "cpu9 1 0 1 1 0 0 0 0 0 0\n"
		      "intr 99999 1 2 3\n");
	place_cpu_times_t *t0 = malloc(sizeof *t0), *t1 = malloc(sizeof *t1);
	assert_non_null(t0);
	assert_non_null(t1);
	assert_int_equal(place_cpu_times_read(t0, a), 0);
	assert_int_equal(place_cpu_times_read(t1, b), 0);
	place_cpu_idle_t out[8];
	unsigned n = place_cpu_idle(t0, t1, NULL, out, 8);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].cpu, 0);
	assert_true(fabs(out[0].idle - 0.0) < 1e-9);
	assert_int_equal(out[1].cpu, 1);
	assert_true(fabs(out[1].idle - 0.8) < 1e-9);
	cpu_set_t only0_set;
	CPU_ZERO(&only0_set);
	CPU_SET(0, &only0_set);
	place_mask_t only0 = { .set = &only0_set, .size = sizeof only0_set, .bits = CPU_SETSIZE, .valid = true };
	assert_int_equal(place_cpu_idle(t0, t1, &only0, out, 8), 1);   /* the allowed CPUs only */
	assert_int_equal(place_cpu_idle(t0, t1, NULL, out, 1), 1);     /* bounded by CAP */
	/* Not /proc/stat: no cpu line. */
	write_file(b, "intr 1 2 3\n");
	assert_int_equal(place_cpu_times_read(t1, b), -1);
	assert_int_equal(place_cpu_times_read(t1, "/nonexistent/stat"), -1);
	/* This machine's own file: every online CPU of ours has a line. */
	assert_int_equal(place_cpu_times_read(t0, NULL), 0);
	assert_true(t0->ncpus >= 1);
	unlink(a);
	unlink(b);
	free(t0);
	free(t1);
}

static void test_bad_observations_leave_things_alone(void **state)
{
	place_obs_t o = lazy_pair();
	o.client_cpu = -1;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.window_ns = 0;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.server_busy = NAN;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.client_busy = -3;
	assert_int_equal(run(&o).action, PLACE_STAY);
	o = lazy_pair();
	o.rtt_ns = INFINITY;
	assert_int_equal(run(&o).action, PLACE_STAY);
}

/* place_apply on a real thread: the move happens, is logged with its
 * reason, and the thread then counts as pinned; SPREAD undoes it. */
typedef struct worker {
	pthread_t t;
	pid_t tid;
	volatile int stop, ready;
} worker_t;

static void *work(void *arg)
{
	worker_t *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	w->ready = 1;
	while (!w->stop)
		usleep(1000);
	return NULL;
}

/* W running FN (work or burn_50ms), its tid known. */
static void worker_start(worker_t *w, void *(*fn)(void *))
{
	*w = (worker_t){ 0 };
	assert_int_equal(pthread_create(&w->t, NULL, fn, w), 0);
	while (!w->ready)
		usleep(1000);
}

static void worker_stop(worker_t *w)
{
	w->stop = 1;
	pthread_join(w->t, NULL);
}

static void collect(void *ctx, const char *line)
{
	snprintf(ctx, 320, "%s", line);
}

static void test_apply_moves_a_real_thread_and_logs_why(void **state)
{
	worker_t w;
	worker_start(&w, work);
	int was_pinned = place_thread_pinned(w.tid);
	assert_true(was_pinned == 0 || was_pinned == 1);
	place_obs_t o = lazy_pair();
	int here = sched_getcpu();           /* a CPU this process may use */
	assert_true(here >= 0);
	o.client_cpu = here;
	o.server_cpu = here + 1;
	place_decision_t d;
	place_decide(NULL, &o, &d);
	assert_int_equal(d.action, PLACE_COLOCATE);
	char log[320] = "";
	place_mask_t saved = { 0 };
	assert_int_equal(place_mask_get(&saved, w.tid), 0);
	assert_int_equal(place_apply(w.tid, &d, NULL, collect, log), 0);
	print_message("  log: %s\n", log);
	char want[32];
	snprintf(want, sizeof want, "moved to CPU %d", here);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, "synchronous"));
	cpu_set_t set;
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_true(CPU_ISSET(here, &set) && CPU_COUNT(&set) == 1);
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		assert_int_equal(place_thread_pinned(w.tid), 1);
	place_decision_t away = { .action = PLACE_APART, .reason = PLACE_WHY_SATURATED, .cpu = here, .why = "test" };
	assert_int_equal(place_apply(w.tid, &away, NULL, collect, log), 0);
	snprintf(want, sizeof want, "moved apart to CPU %d", here);
	assert_non_null(strstr(log, want));
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_true(CPU_ISSET(here, &set) && CPU_COUNT(&set) == 1);
	place_decision_t back = { .action = PLACE_SPREAD, .cpu = -1, .why = "test" };
	assert_int_equal(place_apply(w.tid, &back, &saved, collect, log), 0);
	assert_non_null(strstr(log, "given back its CPUs"));
	assert_int_equal(place_thread_pinned(w.tid), was_pinned);   /* as it was (a cpuset may restrict us) */
	/* An undo with no mask saved is refused, not guessed. */
	place_mask_t none = { 0 };
	assert_int_equal(place_apply(w.tid, &back, &none, collect, log), -1);
	assert_non_null(strstr(log, "none saved"));
	place_mask_free(&saved);
	worker_stop(&w);
}

/*
 * The undo restores exactly the mask the thread had before the move, not
 * CPUs 0..online-1: a thread under `taskset -c 1-N` (here: every online CPU
 * but CPU 0) is moved to one of its CPUs and spread again: its mask is the
 * one it started with, CPU 0 still excluded.  The old place_apply gave it
 * 0..online-1 (CPU 0 included: a mask it never had).
 */
static void test_undo_restores_the_mask_the_thread_had(void **state)
{
	cpu_set_t mine;
	assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
	if (CPU_COUNT(&mine) < 2 || !CPU_ISSET(0, &mine))
		skip_because("needs CPU 0 and another CPU in this process's affinity");
	worker_t w;
	worker_start(&w, work);
	cpu_set_t user = mine;          /* "taskset -c 1-N" */
	CPU_CLR(0, &user);
	assert_int_equal(sched_setaffinity(w.tid, sizeof user, &user), 0);
	int target = -1;
	for (int c = CPU_SETSIZE - 1; c > 0; c--)
		if (CPU_ISSET(c, &user))
			target = c;
	place_mask_t saved = { 0 };
	assert_int_equal(place_mask_get(&saved, w.tid), 0);
	char want[96], log[320] = "";
	place_mask_format(&saved, want, sizeof want);
	print_message("  the thread's own CPUs: %s\n", want);
	assert_null(strchr(want, '.'));
	place_decision_t d = { .action = PLACE_APART, .reason = PLACE_WHY_SATURATED, .cpu = target, .why = "test" };
	assert_int_equal(place_apply(w.tid, &d, NULL, collect, log), 0);
	cpu_set_t set;
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_int_equal(CPU_COUNT(&set), 1);
	place_decision_t back = { .action = PLACE_SPREAD, .reason = PLACE_WHY_APART_SLOWER, .cpu = -1, .why = "test" };
	assert_int_equal(place_apply(w.tid, &back, &saved, collect, log), 0);
	print_message("  log: %s\n", log);
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_true(CPU_EQUAL(&set, &user));
	assert_false(CPU_ISSET(0, &set));
	char line[128];
	snprintf(line, sizeof line, "given back its CPUs %s", want);
	assert_non_null(strstr(log, line));
	place_mask_free(&saved);
	worker_stop(&w);
}

/* The line names the thread moved also when it is the caller (TID 0, as
 * chan_server moves its own thread): it said "thread 0". */
static void test_the_line_names_the_calling_thread_by_its_id(void **state)
{
	place_mask_t saved = { 0 };
	assert_int_equal(place_mask_get(&saved, 0), 0);
	int here = sched_getcpu();
	assert_true(here >= 0);
	char log[480] = "", want[64];
	place_decision_t d = { .action = PLACE_COLOCATE, .reason = PLACE_WHY_SYNC_PAIR, .cpu = here, .why = "test" };
	assert_int_equal(place_apply(0, &d, NULL, collect, log), 0);
	snprintf(want, sizeof want, "placement: thread %d moved to CPU %d", (int)syscall(SYS_gettid), here);
	print_message("  log: %s\n", log);
	place_decision_t back = { .action = PLACE_SPREAD, .reason = PLACE_WHY_SLOWER, .cpu = -1, .why = "test" };
	assert_int_equal(place_apply(0, &back, &saved, NULL, NULL), 0);
	place_mask_free(&saved);
	assert_non_null(strstr(log, want));
}

/* A saved mask the kernel now refuses (its CPUs left the cpuset or went
 * offline: here a mask naming only a CPU that does not exist) is not the
 * end: the thread gets every CPU it may use, and the one line says why. */
static void test_a_refused_restore_falls_back_to_every_allowed_cpu_and_says_why(void **state)
{
	worker_t w;
	worker_start(&w, work);
	cpu_set_t mine;
	assert_int_equal(sched_getaffinity(w.tid, sizeof mine, &mine), 0);
	place_mask_t gone = { 0 };
	assert_int_equal(place_mask_get(&gone, w.tid), 0);
	CPU_ZERO_S(gone.size, gone.set);
	CPU_SET_S(gone.bits - 1, gone.size, gone.set);  /* the last CPU a mask can name: not this machine's */
	place_decision_t back = { .action = PLACE_SPREAD, .reason = PLACE_WHY_SLOWER, .cpu = -1, .why = "test" };
	char log[480] = "";
	assert_int_equal(place_apply(w.tid, &back, &gone, collect, log), 0);
	print_message("  log: %s\n", log);
	assert_non_null(strstr(log, "could not be given back its CPUs (Invalid argument)"));
	assert_non_null(strstr(log, "every CPU it may use"));
	cpu_set_t set;
	assert_int_equal(sched_getaffinity(w.tid, sizeof set, &set), 0);
	assert_true(CPU_EQUAL(&set, &mine));
	place_mask_free(&gone);
	worker_stop(&w);
}

/* What counts as the user's affinity: anything narrower than the online
 * CPUs (taskset of several CPUs as much as of one). */
static void test_a_multi_cpu_user_mask_counts_as_pinned(void **state)
{
	cpu_set_t mine;
	assert_int_equal(sched_getaffinity(0, sizeof mine, &mine), 0);
	if (CPU_COUNT(&mine) < sysconf(_SC_NPROCESSORS_ONLN) || CPU_COUNT(&mine) < 2)
		skip_because("affinity already restricted (a cpuset), or one CPU");
	worker_t w;
	worker_start(&w, work);
	assert_int_equal(place_thread_pinned(w.tid), 0);
	cpu_set_t user = mine;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &user)) {
			CPU_CLR(c, &user);      /* every CPU but one */
			break;
		}
	assert_int_equal(sched_setaffinity(w.tid, sizeof user, &user), 0);
	assert_int_equal(place_thread_pinned(w.tid), 1);
	worker_stop(&w);
}

/*
 * Rule 6 on a 256-CPU machine (a fixture /proc/stat window): the only
 * idle CPUs are 200 and 255.  chan_server fed place_decide at most 64
 * CPUs (a fixed idle[64]): CPUs 0-63 all busy, "no other CPU was 50%
 * idle".  place_cpu_idle_all, which it uses now, sizes its list to the
 * file, once.
 */
static void write_stat_256(const char *path, unsigned long long tick, const int *idle_cpus, int n_idle)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "cpu  1 0 1 1 0 0 0 0 0 0\n");
	for (int c = 0; c < 256; c++) {
		bool idle = false;
		for (int i = 0; i < n_idle; i++)
			idle |= idle_cpus[i] == c;
		/* user system idle: an idle CPU's ticks go to idle, a busy one's to user */
		fprintf(f, "cpu%d %llu 0 0 %llu 0 0 0 0 0 0\n", c, idle ? 100 : 100 + tick, idle ? 100 + tick : 100);
	}
	fprintf(f, "intr 1 2 3\n");
	fclose(f);
}

static void test_rule6_sees_every_cpu_of_a_256_cpu_machine(void **state)
{
	char a[256], b[256];
	test_tmp_template(a, sizeof a, "thoth-pstat256-a");
	test_tmp_template(b, sizeof b, "thoth-pstat256-b");
	two_temp_files(a, b);
	const int idle[] = { 200, 255 };
	write_stat_256(a, 0, idle, 2);
	write_stat_256(b, 100, idle, 2);
	place_cpu_times_t *t0 = malloc(sizeof *t0), *t1 = malloc(sizeof *t1);
	assert_non_null(t0);
	assert_non_null(t1);
	assert_int_equal(place_cpu_times_read(t0, a), 0);
	assert_int_equal(place_cpu_times_read(t1, b), 0);
	assert_int_equal(t1->ncpus, 256);
	place_cpu_idle_t *cpus = NULL;
	unsigned cap = 0;
	unsigned n = place_cpu_idle_all(t0, t1, NULL, &cpus, &cap);
	assert_int_equal(n, 256);
	assert_int_equal(cap, 256);
	place_cpu_idle_t *first = cpus;
	assert_int_equal(place_cpu_idle_all(t0, t1, NULL, &cpus, &cap), 256);
	assert_ptr_equal(cpus, first);          /* the next window reuses the list */
	place_obs_t o = saturating_pair();
	o.client_cpu = o.server_cpu = 3;
	o.cpus = cpus;
	o.ncpus = n;
	place_decision_t d = run(&o);
	assert_int_equal(d.action, PLACE_APART);
	assert_int_equal(d.cpu, 200);           /* as idle as 255, nearer by number */
	/* The allowed CPUs of a thread under "taskset -c 0-254": 255 never. */
	place_mask_t allowed = { 0 };
	assert_int_equal(place_mask_get(&allowed, 0), 0);
	if (allowed.bits >= 256) {
		CPU_ZERO_S(allowed.size, allowed.set);
		for (unsigned c = 0; c < 255; c++)
			CPU_SET_S(c, allowed.size, allowed.set);
		n = place_cpu_idle_all(t0, t1, &allowed, &cpus, &cap);
		assert_int_equal(n, 255);
		assert_int_equal(cpus[n - 1].cpu, 254);
	}
	place_mask_free(&allowed);
	free(cpus);
	free(t0);
	free(t1);
	unlink(a);
	unlink(b);
}

/* The client's CPU time is its calling thread's when it published one
 * that is a thread of its process; anything else reads its main thread. */
static void *burn_50ms(void *arg)
{
	worker_t *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	struct timespec t0, t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	do
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000ll + (t.tv_nsec - t0.tv_nsec) < 50000000ll);
	w->ready = 1;
	while (!w->stop)
		usleep(1000);
	return NULL;
}

static void test_client_cpu_time_is_the_calling_threads_if_it_is_one_of_the_clients(void **state)
{
	worker_t w;
	worker_start(&w, burn_50ms);
	pid_t me = getpid(), read = 0;
	uint64_t worker = place_thread_cpu_ns(me, (uint32_t)w.tid, &read);
	assert_int_equal(read, w.tid);
	assert_true(worker >= 50000000ull);
	/* An older client (0), our own pid, a number no thread has, and a
	 * thread of another process: the main thread (its CPU time read
	 * between two readings of it), never another process. */
	/* Another process's main thread: our parent's (the test runner). */
	const uint32_t bogus[] = { 0, (uint32_t)me, 0xffffffffu, 1u << 23, (uint32_t)getppid(), 1 };
	for (size_t i = 0; i < sizeof bogus / sizeof bogus[0]; i++) {
		read = 0;
		uint64_t before = place_thread_cpu_ns(me, 0, NULL);     /* the main thread, this one */
		uint64_t v = place_thread_cpu_ns(me, bogus[i], &read);
		uint64_t after = place_thread_cpu_ns(me, 0, NULL);
		assert_int_equal(read, me);
		assert_true(v >= before && v <= after);
	}
	assert_int_equal(place_thread_cpu_ns(0, (uint32_t)w.tid, NULL), 0);
	worker_stop(&w);
}

/* ---- "nearest" by topology distance ------------------------------------------- */

/*
 * A 2-node machine from a sysfs fixture (tests/sched/fixtures/sys-2node:
 * node 0 = CPUs 0-3, node 1 = 4-7, SLIT 10/21; SMT siblings 0+2, 1+3, 4+6,
 * 5+7).  The client runs on CPU 4: a worker on CPU 6 (same node, its SMT
 * sibling) beats CPU 5 (same node, another core), which beats CPU 3 (the
 * nearest number, but the other node) - the CPU-number rule picked 3 and 5.
 */
static void test_nearest_cpu_is_by_topology_not_by_number(void **state)
{
	assert_int_equal(place_cpumap_load(&map, FIXTURES "/sys-2node"), 0);
	assert_int_equal(map.ncpus, 8);
	assert_int_equal(map.nnodes, 2);
	assert_int_equal(map.node[5], 1);
	assert_int_equal(map.dist[0][1], 21);
	int other_node_near_number[] = { 3, 6 };
	assert_int_equal(place_nearest_cpu(&map, 4, other_node_near_number, 2), 1);
	assert_int_equal(place_nearest_cpu(NULL, 4, other_node_near_number, 2), 0);   /* by number */
	int sibling_or_core[] = { 5, 6 };
	assert_int_equal(place_nearest_cpu(&map, 4, sibling_or_core, 2), 1);
	assert_int_equal(place_nearest_cpu(NULL, 4, sibling_or_core, 2), 0);
	int three[] = { 0, 5, 4 };
	assert_int_equal(place_nearest_cpu(&map, 4, three, 3), 2);                   /* itself */
	assert_int_equal(place_nearest_cpu(&map, -1, three, 3), 0);                  /* unknown: first */
	assert_int_equal(place_nearest_cpu(&map, 4, three, 0), -1);
	/* Distances: itself < sibling < same node < other node; unknown CPUs last. */
	assert_true(place_cpu_distance(&map, 4, 4) < place_cpu_distance(&map, 6, 4));
	assert_true(place_cpu_distance(&map, 6, 4) < place_cpu_distance(&map, 5, 4));
	assert_true(place_cpu_distance(&map, 5, 4) < place_cpu_distance(&map, 3, 4));
	assert_true(place_cpu_distance(&map, 3, 4) < place_cpu_distance(&map, 900, 4));
	/* A sysroot without node files: one node; without anything: nothing known. */
	assert_int_equal(place_cpumap_load(&map, "/nonexistent-sysroot"), -1);
	assert_int_equal(map.ncpus, 0);
}

/*
 * The same rule on SCALE-1's topology (hwloc, topology.c): a synthetic
 * 2-node machine gives the same order (SMT sibling, same node, other
 * node), and on this machine hwloc and sysfs give the same distance for
 * every pair of CPUs - libthoth (sysfs) and thothd (hwloc) agree.
 */
static void test_nearest_cpu_agrees_with_scale1_topology(void **state)
{
	thoth_topo_source_t src = { .synthetic = "node:2 pack:1 core:2 pu:2" };
	thoth_topo_t *t;
	char why[200];
	assert_int_equal(thoth_topo_load(&src, &t, why, sizeof why), 0);
	place_cpumap_from_topo(&map, t);
	assert_int_equal(map.ncpus, 8);
	/* hwloc numbers PUs core by core: 0+1 siblings, node 0 = 0-3. */
	int from = 0, cands[] = { 4, 2, 1 };
	assert_int_equal(place_nearest_cpu(&map, from, cands, 3), 2);
	int cands2[] = { 4, 3 };
	assert_int_equal(place_nearest_cpu(&map, from, cands2, 2), 1);
	assert_int_equal(thoth_topo_nearest_node(t, (unsigned)map.node[0], (1u << map.node[3]) | (1u << map.node[4])),
			 map.node[3]);
	thoth_topo_free(t);

	assert_int_equal(thoth_topo_load(NULL, &t, why, sizeof why), 0);
	place_cpumap_t *sys = malloc(sizeof *sys);
	assert_non_null(sys);
	assert_int_equal(place_cpumap_load(sys, NULL), 0);
	place_cpumap_from_topo(&map, t);
	unsigned n = map.ncpus < sys->ncpus ? map.ncpus : sys->ncpus;
	assert_true(n >= 1);
	unsigned compared = 0;
	for (unsigned a = 0; a < n; a++)
		for (unsigned b = 0; b < n; b++) {
			if (map.node[a] < 0 || map.node[b] < 0 || sys->package[a] < 0 || sys->package[b] < 0)
				continue;       /* offline, or outside our cpuset: one side does not know it */
			assert_int_equal(place_cpu_distance(&map, (int)a, (int)b),
					 place_cpu_distance(sys, (int)a, (int)b));
			compared++;
		}
	print_message("%u CPU pairs: hwloc and sysfs give the same distances\n", compared);
	assert_true(compared >= 1);
	free(sys);
	thoth_topo_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleeping_low_rate_pair_is_colocated_on_the_clients_cpu),
		cmocka_unit_test(test_explicit_user_affinity_is_never_overridden),
		cmocka_unit_test(test_busy_or_fast_or_spinning_pairs_stay_apart),
		cmocka_unit_test(test_colocated_pair_is_spread_again_when_slower),
		cmocka_unit_test(test_no_move_within_the_dwell_time),
		cmocka_unit_test(test_bad_observations_leave_things_alone),
		cmocka_unit_test(test_a_saturating_pair_on_one_cpu_is_moved_apart_to_an_idle_cpu),
		cmocka_unit_test(test_no_apart_move_without_an_idle_cpu_or_a_saturating_sleeping_pair),
		cmocka_unit_test(test_apart_is_undone_when_the_round_trip_gets_slower),
		cmocka_unit_test(test_apart_has_its_own_dwell_doubled_by_undos),
		cmocka_unit_test(test_a_long_apart_dwell_doubled_saturates_instead_of_wrapping),
		cmocka_unit_test(test_policy_overrides_parse_all_or_nothing),
		cmocka_unit_test(test_cpu_idle_shares_from_proc_stat),
		cmocka_unit_test(test_apply_moves_a_real_thread_and_logs_why),
		cmocka_unit_test(test_undo_restores_the_mask_the_thread_had),
		cmocka_unit_test(test_the_line_names_the_calling_thread_by_its_id),
		cmocka_unit_test(test_a_refused_restore_falls_back_to_every_allowed_cpu_and_says_why),
		cmocka_unit_test(test_a_multi_cpu_user_mask_counts_as_pinned),
		cmocka_unit_test(test_rule6_sees_every_cpu_of_a_256_cpu_machine),
		cmocka_unit_test(test_client_cpu_time_is_the_calling_threads_if_it_is_one_of_the_clients),
		cmocka_unit_test(test_nearest_cpu_is_by_topology_not_by_number),
		cmocka_unit_test(test_nearest_cpu_agrees_with_scale1_topology),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
