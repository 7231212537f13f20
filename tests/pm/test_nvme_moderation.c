/*
 * test_nvme_moderation.c - the NVMe interrupt coalescing loop
 * (kernel/pm/moderation_nvme.c).  This VM has no NVMe controller, so:
 *
 *   - the counters come from a fixture tree ($THOTH_SYSFS_ROOT:
 *     sys/block/nvme0n1/{stat,dev}, proc/interrupts) that a generator on
 *     the test's loop rewrites at a chosen I/O rate, as the kernel's
 *     counters would advance;
 *   - admin commands go to a recording fake controller that keeps every
 *     command exactly as NVME_IOCTL_ADMIN_CMD would receive it, and can
 *     answer ENOTTY, EPERM or an NVMe status (a controller that rejects
 *     feature 0x08): each must come back as a named error;
 *   - the idle wake-up is inotify on the fixture's sysfs directories.
 *
 * What runs for real: the real ioctl backend against a file that is not a
 * controller (ENOTTY), and the real wake-up (block_rq_issue through
 * perf, filtered to one dev_t) on the disk under the test's temp dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "moderation_nvme.h"
#include "../common/blockdev.h"
#include "../common/loop_until.h"
#include "thoth/error.h"
#include "thoth/loop.h"
#include "../common/tmpdir.h"

/* ---- fixture tree ---------------------------------------------------------- */

static char root[PATH_MAX];

static void put_file(const char *rel, const char *text)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/* IOS completed, INFLIGHT started and not completed (field 9). */
static void put_counters_inflight(uint64_t ios, uint64_t irqs, uint64_t inflight)
{
	char b[512];
	/* 17 fields: reads, merges, sectors, ticks, writes, ..., in_flight, ..., flushes. */
	snprintf(b, sizeof b, "%8llu 0 %llu 0 %8llu 0 %llu 0 %llu 0 0 0 0 0 0 %llu 0\n", (unsigned long long)(ios / 2),
		 (unsigned long long)(ios / 2 * 8), (unsigned long long)(ios - ios / 2 - ios / 16),
		 (unsigned long long)((ios - ios / 2) * 8), (unsigned long long)inflight, (unsigned long long)(ios / 16));
	put_file("sys/block/nvme0n1/stat", b);
	snprintf(b, sizeof b,
		 "            CPU0       CPU1\n"
		 "  24:         10          0  PCI-MSIX-0000:00:04.0    0-edge      nvme0q0\n"
		 "  25: %10llu %10llu  PCI-MSIX-0000:00:04.0    1-edge      nvme0q1\n"
		 "  26:          0          0  PCI-MSIX-0000:00:04.0    2-edge      nvme0q2\n"
		 " NMI:          0          0   Non-maskable interrupts\n",
		 (unsigned long long)(irqs / 2), (unsigned long long)(irqs - irqs / 2));
	put_file("proc/interrupts", b);
}

static void put_counters(uint64_t ios, uint64_t irqs)
{
	put_counters_inflight(ios, irqs, 0);
}

static int setup_tree(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "%s/thoth-nvme-XXXXXX", test_tmpdir());
	assert_non_null(mkdtemp(root));
	char p[PATH_MAX + 64];
	const char *dirs[] = { "sys", "sys/block", "sys/block/nvme0n1", "proc", "sys/block/sda" };
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
		assert_int_equal(mkdir(p, 0755), 0);
	}
	put_file("sys/block/nvme0n1/dev", "259:0\n");
	put_file("sys/block/sda/dev", "8:0\n");
	put_counters(1000, 300);
	setenv("THOTH_SYSFS_ROOT", root, 1);
	return 0;
}

static int teardown_tree(void **state)
{
	(void)state;
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	unsetenv("THOTH_SYSFS_ROOT");
	return 0;
}

/* ---- an I/O generator on the test's loop ------------------------------------- */

typedef struct gen {
	thoth_loop_t *loop;
	thoth_timer_t *t;
	uint64_t rate;          /* completions/s (0: stopped) */
	uint64_t ios, irqs, last_ns;
	uint32_t per_irq;       /* completions per interrupt the "controller" raises */
	thoth_nvmemod_t *coalesced_by;  /* set: per_irq grows with its profile's time */
} gen_t;

static void gen_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	gen_t *g = arg;
	uint64_t now = thoth_clock_now(), add = g->rate * (now - g->last_ns) / 1000000000u;
	if (add) {
		g->ios += add;
		uint64_t per_irq = g->per_irq;
		if (g->coalesced_by) {
			/* A controller that holds completions for max_us raises
			 * fewer interrupts (profiles 1, 8, 64, 128, 256 us: 1x,
			 * 2x, 9x, 17x, 33x fewer): without this the counters do
			 * not answer DIM's steps, and on a quiet machine (no
			 * timer jitter) its first step reads "same", turns, and
			 * parks at the first profile for good. */
			thoth_nvmemod_stats_t st;
			thoth_nvmemod_stats(g->coalesced_by, &st);
			per_irq *= 1u + st.profile.max_us / 8u;
		}
		g->irqs += (add + per_irq - 1) / per_irq;
		put_counters(g->ios, g->irqs);
		g->last_ns = now;
	}
	thoth_timer_rearm(loop, t, now + 1000000u, 0);
}

static void gen_start(gen_t *g, uint64_t rate)
{
	g->rate = rate;
	g->last_ns = thoth_clock_now();
	if (!g->per_irq)
		g->per_irq = 1;
	if (!g->t)
		assert_int_equal(thoth_loop_add_timer_in(g->loop, 1000000u, 0, gen_tick, g, &g->t), 0);
}

static void gen_stop(gen_t *g)
{
	if (g->t)
		thoth_timer_cancel(g->loop, g->t);
	g->t = NULL;
	g->rate = 0;
}

typedef struct seen {
	size_t n;
	thoth_nvmemod_change_t c[512];
} seen_t;

static void on_change(void *arg, const thoth_nvmemod_change_t *c)
{
	seen_t *s = arg;
	if (s->n < sizeof s->c / sizeof *s->c)
		s->c[s->n++] = *c;
}

typedef struct ctx {
	thoth_nvmemod_t *m;
	thoth_nvme_fake_t *fake;
} ctx_t;

/* The moderator's counters now, for the predicates below (ARG: a ctx_t). */
static thoth_nvmemod_stats_t ctx_stats(void *arg)
{
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(((ctx_t *)arg)->m, &st);
	return st;
}

static bool moderating(void *arg)
{
	ctx_t *c = arg;
	return (c->fake->feature08 >> 8 & 0xff) != 0;
}

static bool went_idle(void *arg)
{
	thoth_nvmemod_stats_t st = ctx_stats(arg);
	return !st.busy && st.idles > 0;
}

static bool is_idle(void *arg)
{
	return !ctx_stats(arg).busy;
}

static bool is_busy(void *arg)
{
	return ctx_stats(arg).busy;
}

static bool is_disabled(void *arg)
{
	return ctx_stats(arg).disabled;
}

static thoth_nvmemod_config_t fixture_config(thoth_nvme_fake_t *fake, thoth_mod_kind_t kind, seen_t *seen)
{
	return (thoth_nvmemod_config_t){ .ctrl = "nvme0", .policy = { .kind = kind, .fixed.max_us = 1000 },
					 .sample_us = 5000, .wake = THOTH_NVMEMOD_WAKE_FILES,
					 .admin = thoth_nvme_fake_admin(fake), .on_change = seen ? on_change : NULL,
					 .arg = seen };
}

/* The end of a test whose loop went idle: no timer armed (only the
 * counters moving wakes it), then the moderator stopped, the loop freed. */
static void stop_idle(thoth_loop_t *loop, thoth_nvmemod_t *m)
{
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
}

/* ---- admin commands ---------------------------------------------------------- */

static void test_feature08_commands_are_issued_exactly(void **state)
{
	(void)state;
	thoth_nvme_fake_t f;
	thoth_nvme_fake_init(&f, 0x0305);
	thoth_nvme_admin_t a = thoth_nvme_fake_admin(&f);
	char why[300];
	uint32_t dw = 0;
	assert_int_equal(thoth_nvme_feature08_get(&a, "/dev/nvme0", &dw, why, sizeof why), 0);
	assert_int_equal(dw, 0x0305);
	assert_int_equal(f.log[0].opcode, 0x0a);          /* Get Features */
	assert_int_equal(f.log[0].cdw10, 0x08);           /* FID 8, SEL 0 (current) */
	assert_int_equal(f.log[0].cdw11, 0);
	assert_int_equal(f.log[0].nsid, 0);               /* a controller feature */
	assert_string_equal(f.last_dev, "/dev/nvme0");
	assert_int_equal(thoth_nvme_feature08_set(&a, "/dev/nvme0", 0xabcd0207u, why, sizeof why), 0);
	assert_int_equal(f.log[1].opcode, 0x09);          /* Set Features */
	assert_int_equal(f.log[1].cdw10, 0x08);           /* SV (bit 31) clear: not saved */
	assert_int_equal(f.log[1].cdw11, 0x0207);         /* only TIME and THR */
	assert_int_equal(f.feature08, 0x0207);
	assert_int_equal(f.n, 2);
}

static void test_admin_failures_come_back_as_named_errors(void **state)
{
	(void)state;
	thoth_nvme_fake_t f;
	thoth_nvme_admin_t a = thoth_nvme_fake_admin(&f);
	char why[300];
	uint32_t dw;
	thoth_nvme_fake_init(&f, 0);
	f.fail_errno = ENOTTY;
	assert_int_equal(thoth_nvme_feature08_get(&a, "/dev/nvme0", &dw, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "not an NVMe controller"));
	f.fail_errno = EPERM;
	assert_int_equal(thoth_nvme_feature08_set(&a, "/dev/nvme0", 0x0101, why, sizeof why), THOTH_E_PERM);
	assert_non_null(strstr(why, "CAP_SYS_ADMIN"));
	f.fail_errno = 0;
	f.reject_status = 0x4002;                         /* DNR | Invalid Field in Command */
	assert_int_equal(thoth_nvme_feature08_get(&a, "/dev/nvme0", &dw, why, sizeof why), THOTH_E_NO_FEATURE);
	assert_non_null(strstr(why, "rejects feature 0x08"));
	assert_non_null(strstr(why, "Invalid Field in Command"));
	f.reject_status = 0;
	f.set_status = 0x410e;                            /* Feature Not Changeable */
	assert_int_equal(thoth_nvme_feature08_set(&a, "/dev/nvme0", 0x0101, why, sizeof why), THOTH_E_NO_FEATURE);
	assert_non_null(strstr(why, "Feature Not Changeable"));
	f.set_status = 0x4006;                            /* Internal Error: not a missing feature */
	assert_int_equal(thoth_nvme_feature08_set(&a, "/dev/nvme0", 0x0101, why, sizeof why), THOTH_E_IO);
	assert_non_null(strstr(why, "Internal Error"));
	assert_int_equal(thoth_nvme_admin_error(-ETIMEDOUT, "/dev/nvme0", 0x09, why, sizeof why), THOTH_E_TIMEDOUT);

	/* The real ioctl: a regular file answers ENOTTY, a missing one ENOENT. */
	char path[256];
	test_tmp_template(path, sizeof path, "thoth-not-nvme");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(thoth_nvme_coalesce_get(path, &dw, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "not an NVMe controller"));
	assert_int_equal(thoth_nvme_coalesce_set(path, 0x0101, why, sizeof why), THOTH_E_NOT_FOUND);
	unlink(path);
	assert_int_equal(thoth_nvme_coalesce_get("/nonexistent/nvme9", &dw, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "no such NVMe controller"));
}

/* ---- counter files ------------------------------------------------------------- */

static void test_counter_files_are_parsed_and_bad_ones_named(void **state)
{
	(void)state;
	uint64_t ios, sec, irqs, inflight;
	uint32_t q;
	char why[200];
	const char *s11 = "10 0 80 0 20 0 160 0 3 0 0\n";
	assert_int_equal(thoth_nvme_parse_blockstat(s11, strlen(s11), &ios, &sec, &inflight, why, sizeof why), 0);
	assert_int_equal(ios, 30);
	assert_int_equal(sec, 240);
	assert_int_equal(inflight, 3);          /* field 9: started, not completed */
	const char *s15 = "10 0 80 0 20 0 160 0 0 0 0 5 0 40 0";
	assert_int_equal(thoth_nvme_parse_blockstat(s15, strlen(s15), &ios, &sec, NULL, why, sizeof why), 0);
	assert_int_equal(ios, 35);
	assert_int_equal(sec, 280);
	const char *s17 = "   10 0 80 0 20 0 160 0 3 0 0 5 0 40 0 7 0\n";
	assert_int_equal(thoth_nvme_parse_blockstat(s17, strlen(s17), &ios, &sec, &inflight, why, sizeof why), 0);
	assert_int_equal(ios, 42);
	assert_int_equal(inflight, 3);
	const char *bad[] = { "10 0 80 0 20 0 160 0 0 0\n", "10 0 80 0 20 0 160 0 0 0 x\n",
			      "10 0 80 0 -20 0 160 0 0 0 0\n", "99999999999999999999999 0 0 0 0 0 0 0 0 0 0",
			      "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18", "" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why[0] = 0;
		assert_int_equal(thoth_nvme_parse_blockstat(bad[i], strlen(bad[i]), &ios, &sec, &inflight, why, sizeof why),
				 THOTH_E_PROTOCOL);
		assert_non_null(strstr(why, "block stat"));
	}
	const char *irq = "           CPU0       CPU1       CPU2\n"
			  "  0:         33          0          0   IO-APIC    2-edge      timer\n"
			  " 40:          7          0          0  PCI-MSI 1048576-edge      nvme0q0\n"
			  " 41:        100          0          1  PCI-MSI 1048577-edge      nvme0q1\n"
			  " 42:          0        200          2  PCI-MSI 1048578-edge      nvme0q12\n"
			  " 43:       5000          0          0  PCI-MSI 1048579-edge      nvme1q1\n"
			  " 44:       5000          0          0  PCI-MSI 1048579-edge      nvme01q1\n"
			  "NMI:          0          0          0   Non-maskable interrupts\n"
			  "ERR:          0\n";
	assert_int_equal(thoth_nvme_parse_interrupts(irq, strlen(irq), "nvme0", &irqs, &q, why, sizeof why), 0);
	assert_int_equal(irqs, 303);
	assert_int_equal(q, 2);
	assert_int_equal(thoth_nvme_parse_interrupts(irq, strlen(irq), "nvme1", &irqs, &q, why, sizeof why), 0);
	assert_int_equal(irqs, 5000);
	assert_int_equal(thoth_nvme_parse_interrupts(irq, strlen(irq), "nvme7", &irqs, &q, why, sizeof why), 0);
	assert_int_equal(q, 0);
	const char *short_line = "CPU0 CPU1\n 41: 100 PCI-MSI 1-edge nvme0q1\n";
	assert_int_equal(thoth_nvme_parse_interrupts(short_line, strlen(short_line), "nvme0", &irqs, &q, why, sizeof why),
			 THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "fewer than 2 per-CPU counts"));
	const char *no_header = " 41: 100 PCI-MSI 1-edge nvme0q1\n";
	assert_int_equal(thoth_nvme_parse_interrupts(no_header, strlen(no_header), "nvme0", &irqs, &q, why, sizeof why),
			 THOTH_E_PROTOCOL);
	assert_int_equal(thoth_nvme_parse_interrupts("", 0, "nvme0", &irqs, &q, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "no CPU header"));
	assert_int_equal(thoth_nvme_parse_interrupts(irq, strlen(irq), "nvme0/../x", &irqs, &q, why, sizeof why),
			 THOTH_E_INVAL);

	/* From the fixture tree: sda and nvme0n1p1-like names are not ours. */
	thoth_nvme_counters_t c;
	put_counters_inflight(1000, 300, 2);
	assert_int_equal(thoth_nvme_read_counters("nvme0", &c, why, sizeof why), 0);
	assert_int_equal(c.inflight, 2);
	put_counters(1000, 300);
	assert_int_equal(thoth_nvme_read_counters("nvme0", &c, why, sizeof why), 0);
	assert_int_equal(c.inflight, 0);
	assert_int_equal(c.ios, 1000);
	assert_int_equal(c.irqs, 300);
	assert_int_equal(c.queues, 2);
	assert_int_equal(c.namespaces, 1);
	char names[4][32];
	uint32_t devs[4], n;
	assert_int_equal(thoth_nvme_namespaces("nvme0", names, devs, 4, &n, why, sizeof why), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "nvme0n1");
	assert_int_equal(devs[0], 259u << 20);
	assert_int_equal(thoth_nvme_read_counters("nvme3", &c, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "no namespace of nvme3"));
}

/* ---- the loop on the fixture ---------------------------------------------------- */

/* The adaptive policy's profile for RATE with a 1000 us budget, encoded. */
static uint32_t adaptive_dw(uint64_t rate)
{
	if (rate < 20000)
		return 0;
	uint64_t us = 256u * 1000000u / rate;
	us = us < 10 ? 10 : us > 1000 ? 1000 : us;
	return thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 256, (uint32_t)us });
}

static void test_the_loop_sets_what_the_policy_computes_from_the_counters(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0x0a03);               /* found moderated: 4 / 1 ms */
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, seen);
	thoth_nvmemod_t *m;
	char why[300];
	int r = thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why);
	if (r)
		print_message("start: %s\n", why);
	assert_int_equal(r, 0);
	/* Start: read the value (to restore it), then the unmoderated one, read back. */
	assert_true(fake.n >= 3);
	assert_int_equal(fake.log[0].opcode, 0x0a);
	assert_int_equal(fake.log[1].opcode, 0x09);
	assert_int_equal(fake.log[1].cdw11, 0);
	assert_int_equal(fake.log[2].opcode, 0x0a);
	assert_int_equal(fake.feature08, 0);
	ctx_t c = { m, &fake };
	gen_t g = { .loop = loop, .ios = 1000, .irqs = 300, .per_irq = 1 };
	gen_start(&g, 500000);                             /* 500k IOPS: 512 us for 256 completions */
	bool mod = test_loop_until(loop, moderating, &c, 5000);
	gen_stop(&g);
	assert_true(mod);
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	/* Every Set Features sent is FID 8 with the adaptive profile for the
	 * rate that sample measured, and reads back as sent. */
	size_t moderated = 0;
	for (size_t i = 0; i < seen->n; i++) {
		const thoth_nvmemod_change_t *ch = &seen->c[i];
		assert_int_equal(ch->err, 0);
		assert_int_equal(ch->asked, thoth_nvme_coalesce_encode(ch->profile));
		assert_true(ch->read_ok);
		assert_int_equal(ch->readback, ch->asked);
		if (!ch->asked)
			continue;
		moderated++;
		assert_int_equal(ch->asked, adaptive_dw(ch->rate));
		assert_int_equal(ch->asked & 0xff, 255);     /* threshold 256 completions */
		assert_true(ch->irq_rate > 0);                /* interrupts counted from the queues' lines */
	}
	assert_true(moderated >= 1);
	for (uint64_t i = 0; i < fake.n && i < THOTH_NVME_FAKE_LOG; i++) {
		assert_int_equal(fake.log[i].cdw10, 0x08);
		assert_true(fake.log[i].opcode == 0x09 || fake.log[i].opcode == 0x0a);
	}
	/* Idle again: the controller is back to unmoderated, no timer. */
	assert_int_equal(fake.feature08, 0);
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	/* Stop gives back what was found. */
	thoth_nvmemod_stop(m);
	assert_int_equal(fake.feature08, 0x0a03);
	thoth_loop_free(loop);
	free(seen);
}

static void test_dim_walks_net_dims_profiles_on_the_controller(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	seen_t *seen = calloc(1, sizeof *seen);
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_DIM, seen);
	cfg.sample_us = 2000;
	thoth_nvmemod_t *m;
	char why[300];
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), 0);
	ctx_t c = { m, &fake };
	/* Interrupts fall as coalescing rises: DIM's "fewer events per ms" is better. */
	gen_t g = { .loop = loop, .ios = 1000, .irqs = 300, .per_irq = 4, .coalesced_by = m };
	gen_start(&g, 200000);
	bool mod = test_loop_until(loop, moderating, &c, 8000);
	gen_stop(&g);
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(m, &st);
	if (!mod)
		print_message("DIM never reached a profile of >= 100 us: %llu samples\n", (unsigned long long)st.samples);
	assert_true(mod);
	/* Only net_dim's RX EQE profiles {1, 8, 64, 128, 256} us x 256, as
	 * NVMe can hold them: under 100 us is off, 128 -> 100 us, 256 -> 200 us. */
	for (size_t i = 0; i < seen->n; i++) {
		uint32_t a = seen->c[i].asked;
		assert_true(a == 0 || a == 0x01ff || a == 0x02ff);
		bool is_dim = false;
		for (unsigned ix = 0; ix < 5; ix++) {
			thoth_mod_profile_t p = thoth_mod_dim_profile(ix);
			is_dim |= p.max_msgs == seen->c[i].profile.max_msgs && p.max_us == seen->c[i].profile.max_us;
		}
		assert_true(is_dim || seen->c[i].profile.max_us == 0);
	}
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
	free(seen);
}

static void test_an_idle_controller_costs_no_timer_and_no_wake_up(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
	cfg.sample_us = 1000;
	thoth_nvmemod_t *m;
	char why[300];
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), 0);
	ctx_t c = { m, &fake };
	/* No completion: no timer armed, and 300 ms pass with one wake-up, the
	 * test's own timer's. */
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	thoth_nvmemod_stats_t before, after;
	thoth_nvmemod_stats(m, &before);
	uint64_t cmds = fake.n;
	thoth_loop_stats_t l0, l1;
	thoth_loop_stats(loop, &l0);
	bool fired = false;
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, 300000000u, 0, test_loop_tick, &fired, &t);
	while (!fired)
		thoth_loop_run_once(loop, true);
	thoth_loop_stats(loop, &l1);
	thoth_nvmemod_stats(m, &after);
	assert_int_equal(l1.wakeups - l0.wakeups, 1);
	assert_int_equal(after.samples, before.samples);
	assert_int_equal(after.wakes, before.wakes);
	assert_int_equal(fake.n, cmds);                   /* and not one admin command */
	/* A completion (the counters move): woken, sampling, then idle again. */
	put_counters(1010, 303);
	assert_true(test_loop_until(loop, is_busy, &c, 2000));
	assert_true(test_loop_until(loop, went_idle, &c, 2000));
	thoth_nvmemod_stats(m, &after);
	assert_int_equal(after.wakes, before.wakes + 1);
	stop_idle(loop, m);
}

/* ---- requests in flight: the loop stays awake, within a bound ----------------- */

typedef struct watch {
	thoth_nvmemod_t *m;
	uint64_t samples, idles;     /* sampled this many times, or went idle past this */
} watch_t;

static bool sampled_or_idled(void *arg)
{
	watch_t *w = arg;
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(w->m, &st);
	return st.samples >= w->samples || st.idles > w->idles || !st.busy;
}

static bool is_stalled(void *arg)
{
	return ctx_stats(arg).stalled;
}

static bool backoff_at_cap(void *arg)
{
	return ctx_stats(arg).backoff_us >= 1000000u;
}

/* Run until the loop has sampled 5 more times (or went idle); then it
 * must still be busy, in the busy period it was in at ST0. */
static void stays_busy_for_5_samples(thoth_loop_t *loop, thoth_nvmemod_t *m, const thoth_nvmemod_stats_t *st0,
				     const char *what)
{
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(m, &st);
	watch_t w = { m, st.samples + 5, st0->idles };
	test_loop_until(loop, sampled_or_idled, &w, 5000);
	thoth_nvmemod_stats(m, &st);
	if (!st.busy || st.idles != st0->idles || st.wakes != st0->wakes)
		fail_msg("%s: the loop went idle with a request in flight (%llu samples, %llu idles, %llu wakes since)", what,
			 (unsigned long long)(st.samples - st0->samples), (unsigned long long)(st.idles - st0->idles),
			 (unsigned long long)(st.wakes - st0->wakes));
}

/* The in-flight tests' loop: adaptive, a 1 ms sample period, STALL_US of
 * stall time, on a fresh fake and loop. */
static thoth_nvmemod_t *start_1ms(thoth_nvme_fake_t *fake, thoth_loop_t **loop, uint32_t stall_us)
{
	thoth_nvme_fake_init(fake, 0);
	assert_int_equal(thoth_loop_new(loop), 0);
	thoth_nvmemod_config_t cfg = fixture_config(fake, THOTH_MOD_ADAPTIVE, NULL);
	cfg.sample_us = 1000;
	cfg.stall_us = stall_us;
	thoth_nvmemod_t *m;
	char why[300];
	assert_int_equal(thoth_nvmemod_start(*loop, &cfg, &m, why, sizeof why), 0);
	return m;
}

/* start_1ms, then one request issued and none completed: the loop busy. */
static thoth_nvmemod_t *start_issued(thoth_nvme_fake_t *fake, thoth_loop_t **loop, ctx_t *c,
				     uint32_t stall_us)
{
	thoth_nvmemod_t *m = start_1ms(fake, loop, stall_us);
	*c = (ctx_t){ m, fake };
	put_counters_inflight(1000, 300, 1);
	assert_true(test_loop_until(*loop, is_busy, c, 2000));
	return m;
}

/* A first request slower than a sample period (an NVMe drive leaving a
 * deep power state takes about 10 ms): the wake-up rang at its issue
 * (here the stat file rewritten with in_flight 1, which inotify sees as
 * perf sees block_rq_issue), and the first samples see no completion.
 * Going idle then sleeps through the completion, which rings nothing on a
 * real device: the loop must stay busy and sample it in the same period. */
static void test_a_slow_first_request_keeps_the_loop_awake(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_loop_t *loop;
	ctx_t c;
	thoth_nvmemod_t *m = start_issued(&fake, &loop, &c, 10000000);  /* the bound has a test of its own */
	thoth_nvmemod_stats_t st0, st;
	thoth_nvmemod_stats(m, &st0);
	stays_busy_for_5_samples(loop, m, &st0, "a slow first request");
	thoth_nvmemod_stats(m, &st);
	assert_true(st.waits >= 5);
	assert_int_equal(st.counters.inflight, 1);
	put_counters_inflight(1001, 301, 0);              /* completed */
	assert_true(test_loop_until(loop, went_idle, &c, 2000));
	thoth_nvmemod_stats(m, &st);
	assert_int_equal(st.wakes, st0.wakes);            /* one busy period for the whole request */
	assert_int_equal(st.counters.ios, 1001);          /* and its completion sampled in it */
	assert_int_equal(st.stalls, 0);
	stop_idle(loop, m);
}

/* I/O stops with requests still in flight that were issued while the loop
 * was busy (its wake-up disarmed: their issue rang nothing).  A quiet
 * sample must not put it to sleep before they complete: nothing would
 * wake it for their completions. */
static void test_requests_in_flight_when_the_io_stops_keep_the_loop_awake(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_loop_t *loop;
	thoth_nvmemod_t *m = start_1ms(&fake, &loop, 10000000);
	ctx_t c = { m, &fake };
	gen_t g = { .loop = loop, .ios = 1000, .irqs = 300, .per_irq = 1 };
	gen_start(&g, 200000);
	assert_true(test_loop_until(loop, is_busy, &c, 2000));
	thoth_nvmemod_stats_t st0, st;
	thoth_nvmemod_stats(m, &st0);
	watch_t w = { m, st0.samples + 3, ~0ull };
	test_loop_until(loop, sampled_or_idled, &w, 2000);
	gen_stop(&g);
	put_counters_inflight(g.ios, g.irqs, 2);          /* the last two not completed yet */
	if (!test_loop_until(loop, is_busy, &c, 2000))
		fail_msg("not busy after the I/O stopped");
	thoth_nvmemod_stats(m, &st0);
	stays_busy_for_5_samples(loop, m, &st0, "two requests in flight when the I/O stopped");
	put_counters_inflight(g.ios + 2, g.irqs + 1, 0);  /* completed */
	assert_true(test_loop_until(loop, went_idle, &c, 2000));
	thoth_nvmemod_stats(m, &st);
	assert_true(st.idles > st0.idles);
	assert_int_equal(st.wakes, st0.wakes);
	assert_int_equal(st.counters.ios, g.ios + 2);
	stop_idle(loop, m);
}

/* A device that never completes what it was given (a hung command waits
 * for the driver's timeout, 30 s on Linux's nvme): after stall_us the
 * loop stops sampling and sleeps with the wake-up armed and a timer whose
 * interval doubles from 2 sample periods to 1 s. */
static void test_a_device_that_never_completes_costs_at_most_a_wake_up_a_second(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_loop_t *loop;
	ctx_t c;
	thoth_nvmemod_t *m = start_issued(&fake, &loop, &c, 20000);
	assert_true(test_loop_until(loop, is_stalled, &c, 3000));
	thoth_nvmemod_stats_t st0, st;
	thoth_nvmemod_stats(m, &st0);
	assert_false(st0.busy);
	assert_int_equal(st0.stalls, 1);
	assert_int_equal(st0.backoff_us, 2000);
	assert_true(st0.waits >= 1);
	assert_int_equal(fake.feature08, 0);              /* unmoderated while it waits */
	/* Asleep, with a timeout: the recheck timer is the one timer in the
	 * loop's set (test_loop_until's tick is cancelled or fired).  Not
	 * thoth_loop_armed_at: the timer is due 2 ms after the sample that
	 * stalled, and a timerfd past its expiry reads as disarmed until the
	 * loop reads it, so a test thread held off the CPU for 2 ms (ASan
	 * under load) saw 0 for a timer that was there. */
	thoth_loop_stats_t ls;
	thoth_loop_stats(loop, &ls);
	assert_int_equal(ls.timers_pending, 1);
	assert_true(test_loop_until(loop, backoff_at_cap, &c, 5000));
	thoth_nvmemod_stats(m, &st);
	/* 2, 4, ... 512 ms, then 1 s: nine re-reads, no sample, no wake-up. */
	assert_int_equal(st.rechecks, 9);
	assert_int_equal(st.samples, st0.samples);
	assert_int_equal(st.wakes, st0.wakes);
	assert_true(st.stalled);
	/* It completes at last: seen, and the loop is idle with no timer. */
	put_counters_inflight(1001, 301, 0);
	assert_true(test_loop_until(loop, went_idle, &c, 3000));
	thoth_nvmemod_stats(m, &st);
	assert_false(st.stalled);
	assert_int_equal(st.backoff_us, 0);
	assert_int_equal(st.counters.ios, 1001);
	stop_idle(loop, m);
}

/* I/O in the gap before the wake-up is armed.  The loop's inotify watches
 * go through this definition (it takes the place of libc's for the code
 * linked here): with GAP set, the first watch added writes GAP's counters
 * just before it exists, so the write rings nothing, as a request issued
 * before a perf event is enabled is never recorded. */
static struct gap {
	bool set;
	uint64_t ios, inflight;
} gap;

int inotify_add_watch(int fd, const char *path, uint32_t mask)
{
	if (gap.set) {
		gap.set = false;
		put_counters_inflight(gap.ios, 300, gap.inflight);
	}
	return (int)syscall(SYS_inotify_add_watch, fd, path, mask);
}

static bool stalled_twice(void *arg)
{
	return ctx_stats(arg).stalls >= 2;
}

static bool stalled_once(void *arg)
{
	return ctx_stats(arg).stalls >= 1;
}

/* Backing off arms the wake-up and then reads the counters again, as
 * going idle does: a request issued, or one completed, between the last
 * sample and the arming is seen in the same turn of the loop, not at the
 * first recheck 2 sample periods later. */
static void test_io_in_the_gap_before_backing_off_is_seen_at_once(void **state)
{
	(void)state;
	thoth_nvme_fake_t fake;
	thoth_loop_t *loop;
	ctx_t c;
	thoth_nvmemod_t *m = start_issued(&fake, &loop, &c, 20000);
	thoth_nvmemod_stats_t st0, st;
	thoth_nvmemod_stats(m, &st0);
	/* A second request, issued as it backs off. */
	gap = (struct gap){ true, 1000, 2 };
	assert_true(test_loop_until(loop, stalled_once, &c, 3000));
	thoth_nvmemod_stats(m, &st);
	assert_false(gap.set);                            /* the write was made, in the gap */
	assert_int_equal(st.stalls, 1);
	assert_false(st.stalled);                         /* busy again in the same turn */
	assert_true(st.busy);
	assert_int_equal(st.rechecks, 0);
	assert_int_equal(st.wakes, st0.wakes + 1);
	/* Neither completes: it backs off again; the first one completes
	 * (the other stays in flight) in the gap. */
	gap = (struct gap){ true, 1001, 1 };
	assert_true(test_loop_until(loop, stalled_twice, &c, 3000));
	thoth_nvmemod_stats(m, &st);
	assert_false(gap.set);
	assert_int_equal(st.stalls, 2);
	assert_false(st.stalled);
	assert_true(st.busy);
	assert_int_equal(st.rechecks, 0);
	assert_int_equal(st.wakes, st0.wakes + 2);
	/* Nothing moves in the gap: it stays backed off. */
	assert_true(test_loop_until(loop, is_stalled, &c, 3000));
	thoth_nvmemod_stats(m, &st);
	assert_int_equal(st.stalls, 3);
	assert_false(st.busy);
	assert_int_equal(st.wakes, st0.wakes + 2);
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
}

static void test_a_controller_that_refuses_is_named_and_left_alone(void **state)
{
	(void)state;
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nvme_fake_t fake;
	thoth_nvmemod_config_t cfg;
	thoth_nvmemod_t *m;
	char why[300];
	struct { int err; uint16_t status, set_status; int want; const char *says; } cases[] = {
		{ ENOTTY, 0, 0, THOTH_E_NOT_FOUND, "not an NVMe controller" },
		{ EPERM, 0, 0, THOTH_E_PERM, "CAP_SYS_ADMIN" },
		{ 0, 0x4002, 0, THOTH_E_NO_FEATURE, "rejects feature 0x08" },
		{ 0, 0, 0x410e, THOTH_E_NO_FEATURE, "Set Features 0x08 answered Feature Not Changeable" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		thoth_nvme_fake_init(&fake, 0);
		fake.fail_errno = cases[i].err;
		fake.reject_status = cases[i].status;
		fake.set_status = cases[i].set_status;
		cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
		why[0] = 0;
		assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), cases[i].want);
		if (!strstr(why, cases[i].says))
			print_message("case %zu: %s\n", i, why);
		assert_non_null(strstr(why, cases[i].says));
		assert_null(m);
		assert_int_equal(thoth_loop_armed_at(loop), 0);
	}
	/* Refused in the middle of a busy period: stop driving, say why, and
	 * stay off the loop (no timer, no wake-up on later I/O). */
	thoth_nvme_fake_init(&fake, 0);
	cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), 0);
	fake.set_status = 0x4002;
	ctx_t c = { m, &fake };
	gen_t g = { .loop = loop, .ios = 1000, .irqs = 300, .per_irq = 1 };
	gen_start(&g, 500000);
	bool off = test_loop_until(loop, is_disabled, &c, 5000);
	gen_stop(&g);
	assert_true(off);
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(m, &st);
	assert_int_equal(st.refusals, 1);
	assert_non_null(strstr(st.why, "rejects feature 0x08"));
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	uint64_t wakes = st.wakes;
	put_counters(999999, 99999);
	bool fired = false;
	thoth_timer_t *t;
	thoth_loop_add_timer_in(loop, 50000000u, 0, test_loop_tick, &fired, &t);
	while (!fired)
		thoth_loop_run_once(loop, true);
	thoth_nvmemod_stats(m, &st);
	assert_int_equal(st.wakes, wakes);
	thoth_nvmemod_stop(m);

	/* A controller that takes the set but keeps its value: counted and said. */
	thoth_nvme_fake_init(&fake, 0);
	fake.ignore_sets = true;
	seen_t *seen = calloc(1, sizeof *seen);
	cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, seen);
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), 0);
	c.m = m;
	put_counters(1000, 300);
	g = (gen_t){ .loop = loop, .ios = 1000, .irqs = 300, .per_irq = 1 };
	gen_start(&g, 500000);
	uint64_t end = test_now_ms() + 5000;
	do {
		test_loop_until(loop, went_idle, &c, 20);
		thoth_nvmemod_stats(m, &st);
	} while (!st.mismatches && test_now_ms() < end);
	gen_stop(&g);
	assert_true(st.mismatches >= 1);
	bool said = false;
	for (size_t i = 0; i < seen->n; i++)
		said |= strstr(seen->c[i].why, "reads back 0x0000") != NULL;
	assert_true(said);
	thoth_nvmemod_stop(m);
	free(seen);
	thoth_loop_free(loop);
}

static void test_bad_configurations_are_refused_with_a_reason(void **state)
{
	(void)state;
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_nvmemod_t *m;
	char why[300];
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
	const char *bad_names[] = { "sda", "nvme", "nvme0/../x", "nvme12345", "" };
	for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
		cfg.ctrl = bad_names[i];
		assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
		assert_non_null(strstr(why, "nvme followed by"));
	}
	cfg.ctrl = "nvme0";
	cfg.sample_us = 10;
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "sample period"));
	cfg.sample_us = 5000;
	cfg.stall_us = 4000;                  /* shorter than one sample period */
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "stall time"));
	cfg.stall_us = 20000000;
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	cfg.stall_us = 0;
	cfg.wake = (thoth_nvmemod_wake_t)7;
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	cfg.wake = THOTH_NVMEMOD_WAKE_FILES;
	cfg.policy.kind = (thoth_mod_kind_t)9;
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_INVAL);
	cfg.policy.kind = THOTH_MOD_ADAPTIVE;
	cfg.ctrl = "nvme4";
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "no namespace of nvme4"));
	/* a sample period over the 100 ms stall default, the stall time unset:
	 * the default follows the period (it was refused as too short) */
	cfg.sample_us = 200000;
	cfg.stall_us = 0;
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "no namespace of nvme4"));
	cfg.sample_us = 5000;
	/* Malformed fixture files: named, nothing started. */
	cfg.ctrl = "nvme0";
	put_file("sys/block/nvme0n1/stat", "1 2 3 banana\n");
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "nvme0n1/stat"));
	assert_non_null(strstr(why, "banana"));
	put_counters(1000, 300);
	put_file("proc/interrupts", "no header here\n");
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "/proc/interrupts"));
	put_counters(1000, 300);
	put_file("sys/block/nvme0n1/dev", "259-0\n");
	assert_int_equal(thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "MAJOR:MINOR"));
	put_file("sys/block/nvme0n1/dev", "259:0\n");
	assert_int_equal(fake.n, 0);      /* refused before a single admin command */
	thoth_loop_free(loop);
}

/* ---- the real wake-up: block_rq_issue on this machine's disk ------------------------ */

static bool any_readable(thoth_nvme_perf_wake_t *w, int timeout_ms)
{
	const int *fds;
	uint32_t n = thoth_nvme_perf_wake_fds(w, &fds);
	struct pollfd p[64];
	for (uint32_t i = 0; i < n && i < 64; i++)
		p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
	return poll(p, n < 64 ? n : 64, timeout_ms) > 0;
}

/* Rounds of one write + fdatasync each, every one of which must ring, and
 * ring for every request the events counted.  Readiness alone proves
 * little: another process's I/O on the same disk may ring the event, and
 * the old wake-up (block_rq_complete, sampled in interrupt context) still
 * rang whenever one of a round's completions found the interrupt CPU busy
 * (docs/PM.md "Why block_rq_issue"). */
enum { PERF_ROUNDS = 20, PERF_ROUND_MS = 1000 };

static void test_the_perf_wakeup_rings_on_every_real_block_request(void **state)
{
	(void)state;
	const char *tmp = test_tmpdir();
	uint32_t disk = 0;
	if (!blk_disk_of(tmp, &disk, NULL, 0)) {
		print_message("%s is not on a block device (skipped)\n", tmp);
		skip();
	}
	char why[300];
	thoth_nvme_perf_wake_t *w, *none;
	int r = thoth_nvme_perf_wake_open(&disk, 1, &w, why, sizeof why);
	if (r == THOTH_E_PERM || r == THOTH_E_NOT_FOUND) {
		print_message("%s (skipped)\n", why);
		skip();
	}
	assert_int_equal(r, 0);
	/* A dev_t no disk has: the kernel's filter must keep it silent. */
	uint32_t nowhere = 4000u << 20 | 12345u;
	assert_int_equal(thoth_nvme_perf_wake_open(&nowhere, 1, &none, why, sizeof why), 0);
	assert_int_equal(thoth_nvme_perf_wake_arm(none, true), 0);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/thoth-perf-wake-XXXXXX", tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	/* Unlinked at once: a failed round (which leaves by longjmp) leaves
	 * no file behind; writes to the open inode still reach the disk. */
	unlink(path);
	char block[4096];
	memset(block, 0x5a, sizeof block);
	for (int i = 0; i < PERF_ROUNDS; i++) {
		/* Armed afresh, with any readiness left from the last round
		 * consumed (perf_poll reports it once), so only this round's
		 * requests can ring. */
		while (any_readable(w, 0))
			;
		assert_int_equal(thoth_nvme_perf_wake_arm(w, true), 0);
		assert_int_equal(pwrite(fd, block, sizeof block, (off_t)i * 4096), (ssize_t)sizeof block);
		assert_int_equal(fdatasync(fd), 0);
		if (!any_readable(w, PERF_ROUND_MS))
			fail_msg("round %d of %d: a write + fdatasync on %u:%u woke nothing within %d ms", i + 1,
				 PERF_ROUNDS, disk >> 20, disk & 0xfffff, PERF_ROUND_MS);
		/* Disarmed: the kernel stops counting and writing, so the
		 * counts hold still while the rings are read. */
		assert_int_equal(thoth_nvme_perf_wake_arm(w, false), 0);
		/* Every request the events counted rang: a count without its
		 * doorbell is a wake-up that would never come on an idle
		 * machine, even if another one rang this round.  A doorbell a
		 * full ring dropped is no such thing (the ring rang 511 times
		 * before it, on 4 KiB pages): another process's I/O on the same disk filled a
		 * ring in a full ctest -j2 at load 13-22, "counted 590 ... but
		 * rang for 515".  A sample counted by an event on another CPU
		 * just as the round ended is written microseconds later: read
		 * again for up to 1 s before calling it missing (a missing one
		 * never comes; the pass reads once). */
		uint64_t counted, written, lost;
		for (int tries = 0;; tries++) {
			assert_int_equal(thoth_nvme_perf_wake_tally(w, &counted, &written, &lost), 0);
			if (written + lost >= counted || tries == 100)
				break;
			usleep(10000);
		}
		assert_true(counted >= 1);
		if (written + lost < counted)
			fail_msg("round %d of %d: the events counted %llu requests on %u:%u but rang for %llu "
				 "(and a full ring lost %llu)",
				 i + 1, PERF_ROUNDS, (unsigned long long)counted, disk >> 20, disk & 0xfffff,
				 (unsigned long long)written, (unsigned long long)lost);
	}
	assert_false(any_readable(none, 0));
	close(fd);
	thoth_nvme_perf_wake_close(w);
	thoth_nvme_perf_wake_close(none);
}

typedef struct {
	thoth_nvmemod_t *m;
	uint64_t wakes;      /* woken at least this many times */
} wakes_ctx_t;

static bool woke_again(void *arg)
{
	wakes_ctx_t *c = arg;
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(c->m, &st);
	return st.wakes >= c->wakes;
}

/* The loop with the perf wake-up: the fixture's namespace names this
 * machine's disk, so a real request there wakes it; the fixture's
 * counters do not move, so its first sample is quiet and it goes idle,
 * armed again, and the next request must wake it again. */
static void test_the_loop_wakes_through_perf_on_every_real_request(void **state)
{
	(void)state;
	const char *tmp = test_tmpdir();
	uint32_t disk = 0;
	if (!blk_disk_of(tmp, &disk, NULL, 0)) {
		print_message("%s is not on a block device (skipped)\n", tmp);
		skip();
	}
	char dev[32];
	snprintf(dev, sizeof dev, "%u:%u\n", disk >> 20, disk & 0xfffff);
	put_file("sys/block/nvme0n1/dev", dev);
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
	cfg.wake = THOTH_NVMEMOD_WAKE_PERF;
	cfg.sample_us = 1000;
	thoth_nvmemod_t *m;
	char why[300];
	int r = thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why);
	if (r == THOTH_E_PERM || r == THOTH_E_NOT_FOUND) {
		print_message("%s (skipped)\n", why);
		thoth_loop_free(loop);
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(thoth_loop_armed_at(loop), 0);
	ctx_t c = { m, &fake };
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/thoth-perf-loop-XXXXXX", tmp);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);     /* as above: nothing left behind by a failure */
	char block[4096];
	memset(block, 0xa5, sizeof block);
	thoth_nvmemod_stats_t st;
	for (int i = 0; i < PERF_ROUNDS; i++) {
		/* Idle and armed (other processes' I/O on the disk may have
		 * woken it meanwhile: wait until it is idle again). */
		assert_true(test_loop_until(loop, is_idle, &c, 2000));
		thoth_nvmemod_stats(m, &st);
		assert_int_equal(thoth_loop_armed_at(loop), 0);
		wakes_ctx_t w = { m, st.wakes + 1 };
		assert_int_equal(pwrite(fd, block, sizeof block, (off_t)i * 4096), (ssize_t)sizeof block);
		assert_int_equal(fdatasync(fd), 0);
		if (!test_loop_until(loop, woke_again, &w, PERF_ROUND_MS))
			fail_msg("round %d of %d: a write + fdatasync on %u:%u did not wake the loop within %d ms", i + 1,
				 PERF_ROUNDS, disk >> 20, disk & 0xfffff, PERF_ROUND_MS);
	}
	close(fd);
	assert_true(test_loop_until(loop, went_idle, &c, 2000));
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
}

/* A real request held in flight: a loop device whose backing file sits on
 * an ext4 of its own, frozen while the request is issued (tests/common/
 * blockdev.h).  The fixture's namespace is that device (a symlink to its
 * sysfs directory), so its dev_t and its counters, in_flight included, are
 * the kernel's. */
typedef struct writer {
	int fd;
	void *buf;
	atomic_bool done;
	ssize_t wrote;
} writer_t;

static void *write_one(void *arg)
{
	writer_t *w = arg;
	w->wrote = pwrite(w->fd, w->buf, 4096, 0);
	atomic_store(&w->done, true);
	return NULL;
}

/* The held device, let go of by the teardown when the test fails. */
static blk_slow_t slow = { .dev.fd = -1, .mnt_fd = -1 };

static int teardown_slow(void **state)
{
	blk_slow_close(&slow);
	return teardown_tree(state);
}

static void test_the_loop_stays_awake_for_a_slow_real_request(void **state)
{
	(void)state;
	const char *tmp = test_tmpdir();
	char why[300];
	if (blk_slow_open(tmp, &slow, why, sizeof why)) {
		print_message("%s (skipped)\n", why);
		skip();
	}
	char p[PATH_MAX + 64], target[96];
	snprintf(p, sizeof p, "%s/sys/block/nvme0n1/dev", root);
	unlink(p);
	snprintf(p, sizeof p, "%s/sys/block/nvme0n1/stat", root);
	unlink(p);
	snprintf(p, sizeof p, "%s/sys/block/nvme0n1", root);
	assert_int_equal(rmdir(p), 0);
	snprintf(target, sizeof target, "/sys/block/%s", slow.dev.name);
	assert_int_equal(symlink(target, p), 0);
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	thoth_nvmemod_config_t cfg = fixture_config(&fake, THOTH_MOD_ADAPTIVE, NULL);
	cfg.wake = THOTH_NVMEMOD_WAKE_PERF;
	cfg.sample_us = 1000;
	cfg.stall_us = 10000000;
	thoth_nvmemod_t *m;
	int r = thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why);
	if (r == THOTH_E_PERM || r == THOTH_E_NOT_FOUND) {
		print_message("%s (skipped)\n", why);
		thoth_loop_free(loop);
		blk_slow_close(&slow);
		skip();
	}
	assert_int_equal(r, 0);
	ctx_t c = { m, &fake };
	assert_true(test_loop_until(loop, is_idle, &c, 2000));
	thoth_nvmemod_stats_t st0, st;
	thoth_nvmemod_stats(m, &st0);
	writer_t w = { .fd = slow.dev.fd };
	assert_int_equal(posix_memalign(&w.buf, 4096, 4096), 0);
	memset(w.buf, 0x3c, 4096);
	assert_int_equal(blk_slow_hold(&slow, true), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_one, &w), 0);
	/* Nothing that can fail between the hold and the release: a failure
	 * would leave the ext4 frozen and the writer blocked. */
	wakes_ctx_t wc = { m, st0.wakes + 1 };
	bool woke = test_loop_until(loop, woke_again, &wc, PERF_ROUND_MS);
	thoth_nvmemod_stats(m, &st);
	watch_t wt = { m, st.samples + 5, st.idles };
	test_loop_until(loop, sampled_or_idled, &wt, 5000);
	thoth_nvmemod_stats_t held;
	thoth_nvmemod_stats(m, &held);
	bool was_held = !atomic_load(&w.done);
	blk_slow_hold(&slow, false);
	pthread_join(t, NULL);
	assert_int_equal(w.wrote, 4096);
	assert_true(was_held);                            /* the set-up did hold it */
	if (!woke)
		fail_msg("the held write to %s did not wake the loop within %d ms", slow.dev.path, PERF_ROUND_MS);
	if (!held.busy || held.idles != st.idles)
		fail_msg("the loop went idle with the write to %s in flight (in_flight %llu at its last read)", slow.dev.path,
			 (unsigned long long)held.counters.inflight);
	assert_true(held.counters.inflight >= 1);         /* the kernel's in_flight saw it */
	assert_true(test_loop_until(loop, went_idle, &c, 2000));
	thoth_nvme_counters_t now;
	assert_int_equal(thoth_nvme_read_counters("nvme0", &now, why, sizeof why), 0);
	thoth_nvmemod_stats(m, &st);
	assert_int_equal(st.wakes, st0.wakes + 1);        /* one busy period, issue to completion */
	assert_int_equal(st.counters.ios, now.ios);       /* the completion sampled in it */
	assert_int_equal(st.stalls, 0);
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
	free(w.buf);
	blk_slow_close(&slow);
}

/* ---- the service ------------------------------------------------------------------ */

#ifdef NVME_MODERATOR
static void test_the_nvme_moderator_service_drives_a_fixture_controller(void **state)
{
	(void)state;
	put_counters(1000, 300);
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl(NVME_MODERATOR, "nvme-moderator", "--ctrl", "nvme0", "--wake", "files", "--fake-controller",
		      "--sample-ms", "5", "--budget-us", "1000", "--json", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	FILE *f = fdopen(out[0], "r");
	/* Unbuffered: the helper polls the descriptor, so no line may wait in
	 * stdio's buffer where poll cannot see it. */
	setvbuf(f, NULL, _IONBF, 0);
	char line[1024];
	/* Start: Get Features 0x08, then Set Features 0x08 = 0 (unmoderated). */
	assert_true(test_read_line_until(f, "{\"command\":{\"opcode\":10,\"cdw10\":8,\"cdw11\":0}}", line, sizeof line, 5000));
	assert_true(test_read_line_until(f, "{\"command\":{\"opcode\":9,\"cdw10\":8,\"cdw11\":0}}", line, sizeof line, 5000));
	assert_true(test_read_line_until(f, "\"asked\":0,\"readback\":0", line, sizeof line, 5000));
	/* "I/O" at ~500k completions/s, written by this process. */
	uint64_t ios = 1000, t0 = test_now_ms(), end = t0 + 5000;
	bool mod = false;
	while (!mod && test_now_ms() < end) {
		for (int i = 0; i < 5; i++) {
			usleep(1000);
			ios += 500;
			put_counters(ios, ios / 4);
		}
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		while (!mod && poll(&p, 1, 0) > 0 && fgets(line, sizeof line, f))
			mod = strstr(line, "\"asked\":") && !strstr(line, "\"asked\":0,") && strstr(line, "\"readback\"");
	}
	assert_true(mod);
	/* Quiet: back to 0, then SIGTERM restores and sums up. */
	assert_true(test_read_line_until(f, "\"asked\":0,", line, sizeof line, 5000));
	kill(pid, SIGTERM);
	assert_true(test_read_line_until(f, "\"summary\"", line, sizeof line, 5000));
	assert_non_null(strstr(line, "\"refusals\":0"));
	assert_non_null(strstr(line, "\"disabled\":false"));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fclose(f);

	/* A controller that rejects feature 0x08: exit 1 with the reason. */
	int err[2];
	assert_int_equal(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		dup2(err[1], 2);
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		execl(NVME_MODERATOR, "nvme-moderator", "--ctrl", "nvme0", "--wake", "files", "--fake-controller=reject",
		      (char *)NULL);
		_exit(127);
	}
	close(err[1]);
	char msg[600] = "";
	ssize_t n = read(err[0], msg, sizeof msg - 1);
	msg[n > 0 ? n : 0] = 0;
	close(err[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	assert_non_null(strstr(msg, "rejects feature 0x08"));
	assert_non_null(strstr(msg, "THOTH_E_NO_FEATURE"));
}
#endif

/*
 * The perf wake-up tests need tracefs (a tracepoint's id).  Nothing mounts
 * it on these VMs (no systemd), so they had been skipped in every run: as
 * root the test mounts it for its own run, in a mount namespace of its own
 * (its children's too), as test_probe_kernel does.  Mounted on the host's
 * /sys/kernel/tracing and unmounted at the end, it was unmounted under any
 * test that had found it mounted meanwhile: RESOURCE_LOCK tracefs keeps
 * the two apart within one ctest, not across two ctest runs at once (the
 * other build stage, another checkout's).  Elsewhere the tests skip and
 * say why.
 */
static bool mounted_tracefs;

static int mount_tracefs(void **state)
{
	(void)state;
	struct stat st;
	if (stat("/sys/kernel/tracing/events", &st) == 0 || stat("/sys/kernel/debug/tracing/events", &st) == 0)
		return 0;                       /* mounted already: left as found */
	if (geteuid() != 0 || stat("/sys/kernel/tracing", &st) != 0)
		return 0;
	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		print_message("no mount namespace of its own to mount tracefs in (%s): the host's "
			      "mounts are left alone\n", strerror(errno));
		return 0;
	}
	if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) == 0)
		mounted_tracefs = true;
	else
		print_message("could not mount tracefs on /sys/kernel/tracing: %s\n", strerror(errno));
	return 0;
}

static int unmount_tracefs(void **state)
{
	(void)state;
	if (mounted_tracefs && umount("/sys/kernel/tracing") != 0)
		print_message("could not unmount the tracefs this test mounted: %s\n", strerror(errno));
	mounted_tracefs = false;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_feature08_commands_are_issued_exactly),
		cmocka_unit_test(test_admin_failures_come_back_as_named_errors),
		cmocka_unit_test_setup_teardown(test_counter_files_are_parsed_and_bad_ones_named, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_the_loop_sets_what_the_policy_computes_from_the_counters, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_dim_walks_net_dims_profiles_on_the_controller, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_an_idle_controller_costs_no_timer_and_no_wake_up, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_a_slow_first_request_keeps_the_loop_awake, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_requests_in_flight_when_the_io_stops_keep_the_loop_awake, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_a_device_that_never_completes_costs_at_most_a_wake_up_a_second,
						setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_io_in_the_gap_before_backing_off_is_seen_at_once, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_a_controller_that_refuses_is_named_and_left_alone, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_bad_configurations_are_refused_with_a_reason, setup_tree,
						teardown_tree),
		cmocka_unit_test(test_the_perf_wakeup_rings_on_every_real_block_request),
		cmocka_unit_test_setup_teardown(test_the_loop_wakes_through_perf_on_every_real_request, setup_tree,
						teardown_tree),
		cmocka_unit_test_setup_teardown(test_the_loop_stays_awake_for_a_slow_real_request, setup_tree,
						teardown_slow),
#ifdef NVME_MODERATOR
		cmocka_unit_test_setup_teardown(test_the_nvme_moderator_service_drives_a_fixture_controller, setup_tree,
						teardown_tree),
#endif
	};
	return cmocka_run_group_tests(tests, mount_tracefs, unmount_tracefs);
}
