/*
 * test_pm_dvfs.c - SCHED-1 on a live system, against fixture sysfs trees
 * built in a temp dir ($THOTH_SYSFS_ROOT): backend detection (userspace
 * governor -> scaling_setspeed, any other -> min/max limits, no cpufreq ->
 * simulated), what is written for a hand-computed demand, mapping onto the
 * host's frequencies, a failed write reported with its path, per-thread CPU
 * time from schedstat.  The uclamp backend (schedutil + a kernel with
 * uclamp) through the syscall seam (this kernel has no uclamp: the hook
 * stands for one that has, and records what would be written), and its
 * detection for real on this kernel.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

#include "backend.h"
#include "dvfs.h"
#include "governed.h"
#include "thoth/error.h"
#include "../common/tmpdir.h"

#define MS 1000000ull
#define US 1000ull

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX + 128];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *rel, char *buf, size_t cap)
{
	char path[PATH_MAX + 128];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)cap, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "%s/thoth-dvfs-XXXXXX", test_tmpdir());
	if (!mkdtemp(root))
		return -1;
	setenv("THOTH_SYSFS_ROOT", root, 1);
	return 0;
}

/* ---- a kernel with uclamp, behind the syscall seam ---- */
typedef struct call {
	int tid;
	thoth_pm_sched_attr_t attr;
	uint32_t size;
} call_t;
static call_t calls[64];
static int n_calls;
static uint32_t fake_attr_size = sizeof(thoth_pm_sched_attr_t);
static int refuse_tid = -1;             /* SETATTR on it fails with EPERM */
static int refuse_all = 0;              /* every SETATTR fails with this errno */

static int fake_sched_attr(int op, int tid, thoth_pm_sched_attr_t *attr, uint32_t size, uint32_t flags)
{
	if (op == THOTH_PM_SCHED_GETATTR) {
		memset(attr, 0, size);
		attr->size = fake_attr_size;
		attr->sched_util_max = 1024;
		return 0;
	}
	if (refuse_all)
		return -refuse_all;
	if (tid == refuse_tid)
		return -EPERM;
	if (n_calls < 64)
		calls[n_calls++] = (call_t){ .tid = tid, .attr = *attr, .size = size };
	return 0;
}

static int teardown(void **state)
{
	thoth_pm_uclamp_set_syscall(NULL);
	n_calls = 0;
	fake_attr_size = sizeof(thoth_pm_sched_attr_t);
	refuse_tid = -1;
	refuse_all = 0;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	unsetenv("THOTH_SYSFS_ROOT");
	return system(cmd) == 0 ? 0 : -1;
}

#define CPUFREQ "sys/devices/system/cpu/cpu0/cpufreq/"

static const thoth_pm_cpu_model_t *hikey(void)
{
	return thoth_pm_cpu_model_find("hikey-a53");
}

/* After one request of 1 ms of work (at capacity 1024), a new one due in
 * 2 ms: 432 MHz for the 1 ms decision lead then 729 gives 369 + 622 = 991
 * < 1024 us of work; 729 then 960 gives 622 + 819 >= 1024: 729 MHz. */
static uint32_t drive_to_729(thoth_pm_dvfs_t *d)
{
	uint32_t opp;
	assert_int_equal(thoth_pm_dvfs_update(d, 0, 0, &opp), 0);
	assert_int_equal(opp, 1); /* idle: the most efficient OPP, never 208 MHz */
	assert_int_equal(thoth_pm_dvfs_arrived(d, 100 * MS), 0);
	thoth_pm_dvfs_completed(d, 1000000ull * 1024 / 369); /* 1 ms of work at 432 MHz */
	assert_int_equal(thoth_pm_dvfs_arrived(d, 12 * MS), 0);
	assert_int_equal(thoth_pm_dvfs_update(d, 10 * MS, 0, &opp), 0);
	return opp;
}

static void test_no_cpufreq_means_the_simulated_backend(void **state)
{
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_SIMULATED);
	assert_string_equal(thoth_pm_dvfs_backend_name(THOTH_PM_DVFS_SIMULATED), "simulated");
	assert_int_equal(drive_to_729(d), 2);
	assert_int_equal(thoth_pm_dvfs_current_khz(d), 729000);
	thoth_pm_dvfs_free(d);
}

/* A dispatcher that knows requests wait behind the one it dispatches
 * (thoth_chan_server_caller) queues them as demand: the same request with
 * two waiting behind it gets a faster OPP than alone.  Each waiting one is
 * counted once: a later dispatch takes its place, announcements no longer
 * seen are dropped, and a hold time without dispatch forgets them all. */
static void test_requests_waiting_behind_a_dispatch_are_demand_counted_once(void **state)
{
	thoth_pm_dvfs_t *alone, *queued;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &alone), 0);
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &queued), 0);
	uint32_t a, q;
	thoth_pm_dvfs_t *both[2] = { alone, queued };
	for (int i = 0; i < 2; i++) {   /* the same history: 1 ms of work per request */
		assert_int_equal(thoth_pm_dvfs_dispatched(both[i], 0, 7, 100 * MS, 0), 0);
		thoth_pm_dvfs_completed(both[i], 1000000ull * 1024 / 369);
		assert_int_equal(thoth_pm_dvfs_queued(both[i]), 0);
	}
	assert_int_equal(thoth_pm_dvfs_dispatched(alone, 10 * MS, 7, 12 * MS, 0), 0);
	assert_int_equal(thoth_pm_dvfs_dispatched(queued, 10 * MS, 7, 12 * MS, 2), 0);
	assert_int_equal(thoth_pm_dvfs_queued(alone), 1);
	assert_int_equal(thoth_pm_dvfs_queued(queued), 3);
	assert_int_equal(thoth_pm_dvfs_update(alone, 10 * MS, 0, &a), 0);
	assert_int_equal(thoth_pm_dvfs_update(queued, 10 * MS, 0, &q), 0);
	assert_int_equal(a, 2);         /* 729 MHz: drive_to_729's case */
	assert_int_equal(q, 4);         /* 3 ms of work due in 2 ms: the top OPP */
	thoth_pm_dvfs_completed(queued, 1000000ull * 1024 / 1024);
	assert_int_equal(thoth_pm_dvfs_queued(queued), 2);      /* the two announced */
	/* the next one was one of them; the other is no longer seen */
	assert_int_equal(thoth_pm_dvfs_dispatched(queued, 11 * MS, 8, 13 * MS, 0), 0);
	assert_int_equal(thoth_pm_dvfs_queued(queued), 1);
	thoth_pm_dvfs_completed(queued, 1000000ull);
	assert_int_equal(thoth_pm_dvfs_dispatched(queued, 12 * MS, 8, 14 * MS, 3), 0);
	assert_int_equal(thoth_pm_dvfs_queued(queued), 4);
	thoth_pm_dvfs_completed(queued, 1000000ull);
	thoth_pm_dvfs_forget_waiting(queued);   /* a hold time passed without a dispatch */
	assert_int_equal(thoth_pm_dvfs_queued(queued), 0);
	thoth_pm_dvfs_free(alone);
	thoth_pm_dvfs_free(queued);
}

/* A HiKey dvfs, options off, taught 2 ms of work per request (*BURN: its
 * CPU time at 432 MHz) by ten lone requests; *T: the time after them. */
static thoth_pm_dvfs_t *taught_2ms(uint64_t *t, uint64_t *burn)
{
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	thoth_pm_dvfs_set_options(d, 0);
	uint32_t opp = 0;
	*t = 10 * MS;
	*burn = 2000000ull * 1024 / 369;
	for (int i = 0; i < 10; i++, *t += 200 * MS) {
		assert_int_equal(thoth_pm_dvfs_dispatched(d, *t, 7, *t + 100 * MS, 0), 0);
		assert_int_equal(thoth_pm_dvfs_update(d, *t, 0, &opp), 0);
		assert_int_equal(opp, 1);
		assert_int_equal(thoth_pm_dvfs_update(d, *t + *burn, *burn, &opp), 0);
		thoth_pm_dvfs_completed(d, *burn);
		assert_int_equal(thoth_pm_dvfs_update(d, *t + *burn, 0, &opp), 0);
	}
	return d;
}

/*
 * The CPU time reported at a completion's update is the completed request's
 * (the tail of its handler since the last check), not the next one's.
 * governed.c decides right after thoth_pm_dvfs_completed, with the thread's
 * CPU time since its previous decision; dvfs credited that to the queue's
 * new head, a request seen waiting that had not started, so the plan took
 * it for nearly done.  HiKey, options off, 2 ms of work per request
 * (learned exactly: the plan's margin is the 1% headroom).  A is
 * dispatched at T with B seen waiting, due at T + 8.5 ms; A burns 5.55 ms
 * of CPU at 432 MHz (its 2 ms of work) with no check in between, then
 * completes.  B, untouched, has 2.02 ms of work (2.07e9 capacity-ns) due
 * in 2.95 ms; a raise runs 432 MHz for the 0.5 ms switch first, then the
 * wanted OPP for the 1 ms lead, then the next: 432 -> 729 gives 1.58e9,
 * 729 -> 960 1.99e9, 960 -> 1200 2.49e9: 960 MHz.  With A's 5.55 ms
 * credited to B (2.0e6 of its 2e6 taken as done) it stayed at 432 MHz.
 */
static void test_the_cpu_time_at_a_completion_is_the_completed_requests(void **state)
{
	uint64_t t, burn;
	thoth_pm_dvfs_t *d = taught_2ms(&t, &burn);
	uint32_t opp = 0;
	uint64_t b_due = t + 8500 * US;
	assert_int_equal(thoth_pm_dvfs_dispatched(d, t, 7, t + 100 * MS, 0), 0);
	thoth_pm_dvfs_waiting_due(d, &b_due, 1);
	assert_int_equal(thoth_pm_dvfs_update(d, t, 0, &opp), 0);
	assert_int_equal(opp, 1);
	thoth_pm_dvfs_completed(d, burn);
	assert_int_equal(thoth_pm_dvfs_queued(d), 1);           /* B, seen waiting */
	assert_int_equal(thoth_pm_dvfs_update(d, t + burn, burn, &opp), 0);
	assert_int_equal(opp, 3);
	thoth_pm_dvfs_free(d);
}

/* The same at a dispatch: the CPU time the update right after it reports
 * is the loop's before the handler began (receiving, a stats print), no
 * request's work.  The service learnt 2 ms of work at capacity 1024 (5.55
 * ms of CPU at 432 MHz); a request due 3 ms after its dispatch, with 4 ms
 * of CPU reported at the update after it: credited, 1.44 ms of its work
 * look done and the rest fits the floor (1.55 ms at 432 MHz); uncredited,
 * the whole 2 ms must be done in 3 ms: above the floor. */
static void test_the_cpu_time_at_a_dispatch_is_no_requests(void **state)
{
	uint64_t t, burn;
	thoth_pm_dvfs_t *d = taught_2ms(&t, &burn);
	uint32_t opp = 0;
	assert_int_equal(thoth_pm_dvfs_dispatched(d, t, 7, t + 3 * MS, 0), 0);
	assert_int_equal(thoth_pm_dvfs_update(d, t, 4 * MS, &opp), 0);
	assert_true(opp > 1);
	thoth_pm_dvfs_free(d);
}

/* The client a dispatcher names reaches the chain predictor: client 5's
 * chains of 3 steps 2.02 ms apart (3 ms of work each, due 10 ms after
 * dispatch; test_pm_sim's case, through dvfs as governed.c drives it).  At
 * a new chain's first step the predictor plans its two next steps: 729 MHz
 * where, without it, the one request is planned at 432 MHz. */
static void test_a_dispatchers_client_ids_let_the_chain_predictor_plan_a_chain(void **state)
{
	const thoth_pm_cpu_model_t *m = hikey();
	for (int opt = 0; opt < 2; opt++) {
		thoth_pm_dvfs_t *d;
		assert_int_equal(thoth_pm_dvfs_new(0, m, 0, &d), 0);
		thoth_pm_dvfs_set_options(d, opt ? THOTH_PM_GOV_CHAIN_PREDICT : 0);
		uint32_t opp = 1;
		uint64_t t = 10 * MS;
		for (int c = 0; c < 4; c++, t += 100 * MS)
			for (int k = 0; k < 3; k++) {
				uint64_t now = t + (uint64_t)k * 2020 * US;
				assert_int_equal(thoth_pm_dvfs_dispatched(d, now, 5, now + 10 * MS, 0), 0);
				assert_int_equal(thoth_pm_dvfs_update(d, now, 0, &opp), 0);
				/* 3 ms of work at capacity 1024, in CPU time at this OPP */
				thoth_pm_dvfs_completed(d, 3000000ull * 1024 / m->opps[opp].capacity);
			}
		/* idle: back at the floor before the next chain */
		assert_int_equal(thoth_pm_dvfs_update(d, t - 10 * MS, 0, &opp), 0);
		assert_int_equal(thoth_pm_dvfs_update(d, t - 5 * MS, 0, &opp), 0);
		assert_int_equal(opp, 1);
		assert_int_equal(thoth_pm_dvfs_dispatched(d, t, 5, t + 10 * MS, 0), 0);
		assert_int_equal(thoth_pm_dvfs_update(d, t, 0, &opp), 0);
		assert_int_equal(opp, opt ? 2 : 1);
		thoth_pm_dvfs_free(d);
	}
}

static void test_userspace_governor_gets_scaling_setspeed(void **state)
{
	put(CPUFREQ "scaling_available_frequencies", "208000 432000 729000 960000 1200000\n");
	put(CPUFREQ "scaling_governor", "userspace\n");
	put(CPUFREQ "scaling_setspeed", "208000\n");
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_SETSPEED);
	char buf[64];
	uint32_t opp;
	assert_int_equal(thoth_pm_dvfs_update(d, 0, 0, &opp), 0);
	get(CPUFREQ "scaling_setspeed", buf, sizeof(buf));
	assert_string_equal(buf, "432000");
	thoth_pm_dvfs_free(d);
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(drive_to_729(d), 2);
	get(CPUFREQ "scaling_setspeed", buf, sizeof(buf));
	assert_string_equal(buf, "729000");
	thoth_pm_dvfs_free(d);
}

static void test_other_governors_get_pinned_limits_on_the_hosts_frequencies(void **state)
{
	/* host OPPs differ from the model: 729 MHz maps to the next one up */
	put(CPUFREQ "scaling_available_frequencies", "400000 800000 1300000\n");
	put(CPUFREQ "scaling_governor", "schedutil\n");
	put(CPUFREQ "scaling_min_freq", "400000\n");
	put(CPUFREQ "scaling_max_freq", "1300000\n");
	/* schedutil on a kernel without uclamp (whatever the host's is). */
	refuse_all = EOPNOTSUPP;
	thoth_pm_uclamp_set_syscall(fake_sched_attr);
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_LIMITS);
	assert_non_null(strstr(thoth_pm_dvfs_uclamp_why(d), "CONFIG_UCLAMP_TASK"));
	assert_int_equal(drive_to_729(d), 2);
	char buf[64];
	get(CPUFREQ "scaling_min_freq", buf, sizeof(buf));
	assert_string_equal(buf, "800000");
	get(CPUFREQ "scaling_max_freq", buf, sizeof(buf));
	assert_string_equal(buf, "800000");
	assert_int_equal(thoth_pm_dvfs_current_khz(d), 800000);
	thoth_pm_dvfs_free(d);
}

static void test_a_failed_write_is_reported_with_its_path(void **state)
{
	put(CPUFREQ "scaling_available_frequencies", "208000 432000\n");
	put(CPUFREQ "scaling_governor", "userspace\n");
	char dir[PATH_MAX + 128];
	snprintf(dir, sizeof(dir), "%s/" CPUFREQ "scaling_setspeed", root);
	assert_int_equal(mkdir(dir, 0755), 0); /* a directory: fopen for writing fails */
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_update(d, 0, 0, NULL), THOTH_E_IO);
	assert_non_null(strstr(thoth_pm_dvfs_error(d), "scaling_setspeed"));
	thoth_pm_dvfs_free(d);
}

static void schedutil_fixture(void)
{
	put(CPUFREQ "scaling_available_frequencies", "400000 800000 1300000\n");
	put(CPUFREQ "scaling_governor", "schedutil\n");
	put(CPUFREQ "scaling_min_freq", "400000\n");
	put(CPUFREQ "scaling_max_freq", "1300000\n");
}

static void test_schedutil_with_uclamp_clamps_the_governed_threads_to_the_chosen_opps_capacity(void **state)
{
	schedutil_fixture();
	thoth_pm_uclamp_set_syscall(fake_sched_attr);
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_UCLAMP);
	assert_string_equal(thoth_pm_dvfs_backend_name(THOTH_PM_DVFS_UCLAMP), "uclamp");
	assert_string_equal(thoth_pm_dvfs_uclamp_why(d), "");
	n_calls = 0;                    /* the probe's own no-change write */
	int me = (int)syscall(SYS_gettid);
	assert_int_equal(thoth_pm_dvfs_add_thread(d, 4242), 0);
	assert_int_equal(thoth_pm_dvfs_add_thread(d, 0), 0);
	assert_int_equal(thoth_pm_dvfs_add_thread(d, 4242), 0);     /* once */
	assert_int_equal(n_calls, 0);   /* nothing chosen yet: nothing written */
	/* Idle: 432 MHz (capacity 369), then the demand of drive_to_729:
	 * 729 MHz (capacity 622), each thread once per change. */
	assert_int_equal(drive_to_729(d), 2);
	assert_int_equal(n_calls, 4);
	static const uint32_t cap[4] = { 369, 369, 622, 622 };
	for (int i = 0; i < 4; i++) {
		const thoth_pm_sched_attr_t *a = &calls[i].attr;
		assert_int_equal(calls[i].tid, i % 2 ? me : 4242);
		assert_int_equal(calls[i].size, sizeof(thoth_pm_sched_attr_t));
		assert_int_equal(a->size, 56);
		/* only the clamps: the policy and its parameters are kept */
		assert_int_equal(a->sched_flags, THOTH_PM_SCHED_FLAG_KEEP_POLICY | THOTH_PM_SCHED_FLAG_KEEP_PARAMS |
							 THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MIN |
							 THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MAX);
		assert_int_equal(a->sched_util_min, cap[i]);
		assert_int_equal(a->sched_util_max, cap[i]);
	}
	assert_int_equal(thoth_pm_dvfs_current_khz(d), 729000);
	/* The domain's limits are left to schedutil and the other tasks. */
	char buf[64];
	get(CPUFREQ "scaling_min_freq", buf, sizeof(buf));
	assert_string_equal(buf, "400000");
	/* A thread joining later starts at the OPP already chosen. */
	assert_int_equal(thoth_pm_dvfs_add_thread(d, 5151), 0);
	assert_int_equal(n_calls, 5);
	assert_int_equal(calls[4].tid, 5151);
	assert_int_equal(calls[4].attr.sched_util_min, 622);
	thoth_pm_dvfs_free(d);
}

static void test_a_refused_clamp_is_reported_with_the_kernels_answer(void **state)
{
	schedutil_fixture();
	thoth_pm_uclamp_set_syscall(fake_sched_attr);
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_UCLAMP);
	refuse_tid = 777;
	assert_int_equal(thoth_pm_dvfs_add_thread(d, 777), 0);
	assert_int_equal(thoth_pm_dvfs_update(d, 0, 0, NULL), THOTH_E_IO);
	assert_non_null(strstr(thoth_pm_dvfs_error(d), "sched_setattr(tid 777"));
	assert_non_null(strstr(thoth_pm_dvfs_error(d), strerror(EPERM)));
	assert_int_equal(thoth_pm_uclamp_set(777, 0, 1024), THOTH_E_IO);
	assert_int_equal(thoth_last_errno(), EPERM);
	assert_int_equal(thoth_pm_uclamp_set(1, 900, 100), THOTH_E_INVAL);
	assert_int_equal(thoth_pm_uclamp_set(1, 0, 1025), THOTH_E_INVAL);
	thoth_pm_dvfs_free(d);
}

static void test_a_kernel_whose_sched_attr_has_no_clamps_is_told_apart(void **state)
{
	schedutil_fixture();
	fake_attr_size = 48;            /* SCHED_ATTR_SIZE_VER0: before 5.3 */
	thoth_pm_uclamp_set_syscall(fake_sched_attr);
	char why[200];
	assert_false(thoth_pm_uclamp_probe(why, sizeof why));
	assert_non_null(strstr(why, "too short"));
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_LIMITS);
	assert_non_null(strstr(thoth_pm_dvfs_uclamp_why(d), "too short"));
	assert_int_equal(n_calls, 0);
	thoth_pm_dvfs_free(d);
}

/* The real system calls on this kernel: uclamp is whatever the kernel says,
 * and the backend follows the probe (this VM's kernel has no
 * CONFIG_UCLAMP_TASK: unsupported, with that reason). */
static void test_uclamp_detection_on_this_kernel_follows_the_kernels_answer(void **state)
{
	char why[200];
	bool yes = thoth_pm_uclamp_probe(why, sizeof why);
	print_message("uclamp on this kernel: %s%s%s\n", yes ? "supported" : "unsupported: ", yes ? "" : why, "");
	if (!yes) {
		assert_true(strncmp(why, "sched_", 6) == 0);    /* names the call that failed */
		assert_int_equal(thoth_pm_uclamp_set(0, 0, 1024), THOTH_E_IO);
	} else {
		assert_string_equal(why, "");
	}
	schedutil_fixture();
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), yes ? THOTH_PM_DVFS_UCLAMP : THOTH_PM_DVFS_LIMITS);
	assert_string_equal(thoth_pm_dvfs_uclamp_why(d), why);
	thoth_pm_dvfs_free(d);
}

/* A real thread for the uclamp test: it waits until told to end. */
typedef struct parked {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int tid;
	bool end;
} parked_t;

static void *park(void *arg)
{
	parked_t *p = arg;
	pthread_mutex_lock(&p->lock);
	p->tid = (int)syscall(SYS_gettid);
	pthread_cond_broadcast(&p->cond);
	while (!p->end)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/*
 * uclamp on this kernel, with the real system calls, judged against the
 * kernel's own word: CONFIG_UCLAMP_TASK is what adds
 * /proc/sys/kernel/sched_util_clamp_min, so the probe must say yes exactly
 * where that file exists.  Where it does, a real thread governed through
 * the PM code path (dvfs add_thread, a choice of 729 MHz) carries the OPP's
 * capacity as both clamps, read back with sched_getattr.  Where it does
 * not (this VM: 6.18 without CONFIG_UCLAMP_TASK), the refusal is the
 * kernel's EOPNOTSUPP, kept as the errno of a clamp written anyway, and
 * the clamp path is checked only through the seam above: say so.
 */
static void test_a_real_threads_clamps_are_set_and_read_back_where_the_kernel_has_uclamp(void **state)
{
	bool sysctl = access("/proc/sys/kernel/sched_util_clamp_min", F_OK) == 0;
	char why[200];
	bool yes = thoth_pm_uclamp_probe(why, sizeof why);
	assert_int_equal(yes, sysctl);
	if (!yes) {
		thoth_pm_sched_attr_t a;
		memset(&a, 0, sizeof a);
		bool has_fields = syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) == 0 && a.size >= sizeof a;
		if (has_fields) {
			/* a 5.3+ sched_attr: the clamp itself is refused */
			assert_non_null(strstr(why, strerror(EOPNOTSUPP)));
			assert_non_null(strstr(why, "CONFIG_UCLAMP_TASK"));
			assert_int_equal(thoth_pm_uclamp_set(0, 0, 1024), THOTH_E_IO);
			assert_int_equal(thoth_last_errno(), EOPNOTSUPP);
		} else {
			assert_non_null(strstr(why, "too short"));
		}
		print_message("uclamp: this kernel has none (no /proc/sys/kernel/sched_util_clamp_min): "
			      "the clamp on a real thread is NOT tested here (%s)\n", why);
		return;
	}
	parked_t p = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, park, &p), 0);
	pthread_mutex_lock(&p.lock);
	while (!p.tid)
		pthread_cond_wait(&p.cond, &p.lock);
	pthread_mutex_unlock(&p.lock);
	schedutil_fixture();
	thoth_pm_dvfs_t *d;
	assert_int_equal(thoth_pm_dvfs_new(0, hikey(), 0, &d), 0);
	assert_int_equal(thoth_pm_dvfs_backend(d), THOTH_PM_DVFS_UCLAMP);
	assert_int_equal(thoth_pm_dvfs_add_thread(d, p.tid), 0);
	/* The first choice (432 MHz) is the first write. */
	uint32_t opp;
	int rc = thoth_pm_dvfs_update(d, 0, 0, &opp);
	if (rc && strstr(thoth_pm_dvfs_error(d), strerror(EPERM)) && geteuid() != 0) {
		print_message("uclamp: refused to a non-root user here (%s): not tested\n", thoth_pm_dvfs_error(d));
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(drive_to_729(d), 2);
		thoth_pm_sched_attr_t a;
		memset(&a, 0, sizeof a);
		assert_int_equal(syscall(SYS_sched_getattr, p.tid, &a, sizeof a, 0), 0);
		assert_int_equal(a.sched_util_min, 622);
		assert_int_equal(a.sched_util_max, 622);
		print_message("uclamp: tid %d clamped to %u..%u, read back\n", p.tid, a.sched_util_min,
			      a.sched_util_max);
	}
	thoth_pm_dvfs_free(d);
	pthread_mutex_lock(&p.lock);
	p.end = true;
	pthread_cond_broadcast(&p.cond);
	pthread_mutex_unlock(&p.lock);
	assert_int_equal(pthread_join(th, NULL), 0);
}

static void test_thread_cpu_time_comes_from_schedstat(void **state)
{
	char rel[64];
	snprintf(rel, sizeof(rel), "proc/self/task/%d/schedstat", 4242);
	put(rel, "123456789 1000 5\n");
	uint64_t ns = 0;
	assert_int_equal(thoth_pm_thread_cpu_ns(4242, &ns), 0);
	assert_int_equal(ns, 123456789);
	assert_int_equal(thoth_pm_thread_cpu_ns(4343, &ns), THOTH_E_IO);
	assert_int_equal(thoth_pm_thread_cpu_ns(-1, &ns), THOTH_E_INVAL);
	/* without a root override: the caller's real CPU time grows while it
	 * spins (bounded: it must grow within 10 s of spinning) */
	unsetenv("THOTH_SYSFS_ROOT");
	uint64_t a, b;
	assert_int_equal(thoth_pm_thread_cpu_ns(0, &a), 0);
	int spins = 0;
	do {
		for (volatile int i = 0; i < 100000; i++)
			;
		assert_int_equal(thoth_pm_thread_cpu_ns(0, &b), 0);
	} while (b == a && ++spins < 100000);
	assert_true(b > a);
	/* and the real /proc schedstat of this thread agrees it ran */
	assert_int_equal(thoth_pm_thread_cpu_ns((int)syscall(SYS_gettid), &b), 0);
	assert_true(b > 0);
	setenv("THOTH_SYSFS_ROOT", root, 1);
}

/* A governed request's deadline (governed.h): QOS after its dispatch
 * unstamped; QOS after its send stamp, the stamp clamped to [now - QOS,
 * now] (a client's word: from the future = sent now, older than the bound
 * = due now). */
static void test_a_send_stamp_dates_the_deadline_within_the_bound(void **state)
{
	(void)state;
	const uint64_t now = 1000000000ull, qos = 10000000ull;
	bool clamped = true;
	assert_int_equal(thoth_pm_governed_deadline(now, qos, false, 12345, &clamped), now + qos);
	assert_false(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, now - 4000000, &clamped), now + qos - 4000000);
	assert_false(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, now, &clamped), now + qos);
	assert_false(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, now - qos, &clamped), now);
	assert_false(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, now + 1, &clamped), now + qos);
	assert_true(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, UINT64_MAX, &clamped), now + qos);
	assert_true(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, 0, &clamped), now);
	assert_true(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, now - qos - 1, &clamped), now);
	assert_true(clamped);
	/* early in the clock (now < qos): no wrap below 0 */
	assert_int_equal(thoth_pm_governed_deadline(5, qos, true, 0, &clamped), qos);
	assert_false(clamped);
	assert_int_equal(thoth_pm_governed_deadline(now, qos, true, 0, NULL), now);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_cpufreq_means_the_simulated_backend, setup, teardown),
		cmocka_unit_test(test_a_send_stamp_dates_the_deadline_within_the_bound),
		cmocka_unit_test_setup_teardown(test_requests_waiting_behind_a_dispatch_are_demand_counted_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_dispatchers_client_ids_let_the_chain_predictor_plan_a_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_cpu_time_at_a_completion_is_the_completed_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_cpu_time_at_a_dispatch_is_no_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_userspace_governor_gets_scaling_setspeed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_governors_get_pinned_limits_on_the_hosts_frequencies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_write_is_reported_with_its_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread_cpu_time_comes_from_schedstat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schedutil_with_uclamp_clamps_the_governed_threads_to_the_chosen_opps_capacity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_refused_clamp_is_reported_with_the_kernels_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_kernel_whose_sched_attr_has_no_clamps_is_told_apart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uclamp_detection_on_this_kernel_follows_the_kernels_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_real_threads_clamps_are_set_and_read_back_where_the_kernel_has_uclamp, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
