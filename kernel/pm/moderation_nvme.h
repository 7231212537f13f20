/*
 * moderation_nvme.h - NVMe interrupt coalescing (Set / Get Features, FID
 * 0x08) driven from the controller's live counters by the same policy code
 * the channels and the NIC loop run (PM-3, docs/PM.md "The NVMe loop").
 *
 * Three parts, each replaceable for tests:
 *
 *   admin     how an admin command reaches the controller.  The real one
 *             is NVME_IOCTL_ADMIN_CMD on /dev/nvmeN; a recording fake keeps
 *             every command exactly as the ioctl would have received it
 *             (opcode, cdw10 = FID, cdw11 = value) and can answer with an
 *             errno (ENOTTY, EPERM) or an NVMe status (a controller that
 *             rejects FID 8).  Both go through one mapping to THOTH_E_*
 *             codes with a sentence naming the problem.
 *   counters  completed I/Os and sectors of the controller's namespaces
 *             (/sys/block/<ctrl>n<K>/stat) and the interrupts of its I/O
 *             queues (/proc/interrupts lines "<ctrl>q<N>", N >= 1), read
 *             under $THOTH_SYSFS_ROOT (backend.h) so tests use a fixture
 *             tree.  The interrupt count is DIM's "event" count; where the
 *             queues have no interrupt lines (polled queues, another
 *             naming) each sample stands for DIM's 64 events, as on NICs.
 *   wake-up   how an idle loop learns that I/O started, without a timer.
 *             Real: the block_rq_issue tracepoint through perf, one
 *             event per CPU, filtered in the kernel to the namespaces'
 *             dev_t, with wakeup_events = 1: the first request handed to
 *             the driver makes the event readable; it is disabled while
 *             the loop is busy.  (Not block_rq_complete: its samples,
 *             taken in interrupt context, are dropped by this kernel on an
 *             idle CPU; moderation_nvme.c says how that was measured.)
 *             Fixture: inotify on the namespaces' sysfs directories, so a
 *             test that rewrites a stat file is "I/O".
 *
 * The loop itself is the NIC loop's shape: idle = the wake-up armed, no
 * timer; busy = a sample timer reads the counters every sample period,
 * feeds {time, interrupts, I/Os, bytes} to thoth_mod_update, encodes the
 * profile as cdw11 and sends Set Features only when the encoding changes,
 * then reads it back with Get Features.  A sample with no new completion
 * and no request in flight (the stat file's in_flight) applies the
 * unmoderated setting (0) and goes idle.  One with requests in flight but
 * none completed keeps sampling (a slow first request, or one issued while
 * busy that would complete after the loop slept: neither rings the
 * wake-up again), for at most stall_us; then it backs off: the wake-up
 * armed and a timer that re-reads the counters after 2 sample periods,
 * doubling up to 1 s, until something completes or nothing is in flight
 * (a stuck device costs at most one wake-up a second).  Stop restores the
 * value the controller had at start.
 */
#ifndef THOTH_PM_MODERATION_NVME_H
#define THOTH_PM_MODERATION_NVME_H

#include <linux/nvme_ioctl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moderation.h"
#include "thoth/loop.h"

/* ---- feature 0x08 encoding ------------------------------------------------ */

enum {
	THOTH_NVME_FID_IRQ_COALESCE = 0x08,
	THOTH_NVME_ADMIN_SET_FEATURES = 0x09,
	THOTH_NVME_ADMIN_GET_FEATURES = 0x0a,
};

/* Dword 11 of Set Features 0x08: aggregation threshold (0's based) in bits
 * 7:0, time in 100 us units in 15:8.  From a profile: threshold =
 * max_msgs - 1 (at most 255), time = max_us / 100 rounded down (so never
 * more than the profile allows); {0, 0} = off.  A profile under 100 us is
 * therefore off: the spec's time 0 means "no delay". */
uint32_t thoth_nvme_coalesce_encode(thoth_mod_profile_t p);
thoth_mod_profile_t thoth_nvme_coalesce_decode(uint32_t dw);

/* ---- admin commands ---------------------------------------------------------- */

typedef struct thoth_nvme_admin {
	/* Issue CMD to controller DEV ("/dev/nvme0") as NVME_IOCTL_ADMIN_CMD
	 * would: 0 with cmd->result set, a positive NVMe status (the
	 * ioctl's return value: SC in bits 7:0, SCT in 10:8, DNR 0x4000), or
	 * a negative errno. */
	int (*submit)(void *arg, const char *dev, struct nvme_admin_cmd *cmd);
	void *arg;
} thoth_nvme_admin_t;

/* The real one: open DEV, ioctl, close. */
thoth_nvme_admin_t thoth_nvme_admin_ioctl(void);

/* A recording fake controller.  FEATURE08 is its current value.  With
 * FAIL_ERRNO set every command fails with it (ENOTTY: not an NVMe device;
 * EPERM: no CAP_SYS_ADMIN); with REJECT_STATUS every command on FID 8
 * answers that NVMe status; with SET_STATUS only Set Features does; with
 * IGNORE_SETS a set succeeds but the value does not change. */
#define THOTH_NVME_FAKE_LOG 256
typedef struct thoth_nvme_fake {
	uint32_t feature08;
	int fail_errno;
	uint16_t reject_status, set_status;
	bool ignore_sets;
	uint64_t n;                                   /* commands received */
	struct nvme_admin_cmd log[THOTH_NVME_FAKE_LOG]; /* n % LOG: oldest overwritten */
	char last_dev[64];
} thoth_nvme_fake_t;
void thoth_nvme_fake_init(thoth_nvme_fake_t *f, uint32_t feature08);
thoth_nvme_admin_t thoth_nvme_fake_admin(thoth_nvme_fake_t *f);

/* An admin command's outcome RC (as submit returns it) for OPCODE on DEV
 * as a THOTH_E_* code with WHY: 0 stays 0; ENOTTY -> NOT_FOUND ("not an
 * NVMe controller"), ENOENT/ENODEV/ENXIO -> NOT_FOUND, EPERM/EACCES ->
 * PERM ("needs CAP_SYS_ADMIN"), ETIMEDOUT/EINTR -> TIMEDOUT, other errno
 * -> IO; NVMe status Invalid Opcode, Invalid Field in Command, Feature Not
 * Changeable / Not Saveable -> NO_FEATURE ("rejects feature 0x08"),
 * other status -> IO naming SCT and SC. */
int thoth_nvme_admin_error(int rc, const char *dev, uint8_t opcode, char *why, size_t why_len);

/* Get / set feature 0x08 through ADMIN: Get Features (cdw10 = 0x08, SEL 0:
 * current), Set Features (cdw10 = 0x08, SV 0: not saved across resets,
 * cdw11 = DW & 0xffff).  Errors as thoth_nvme_admin_error. */
int thoth_nvme_feature08_get(const thoth_nvme_admin_t *a, const char *dev, uint32_t *dw, char *why,
			     size_t why_len);
int thoth_nvme_feature08_set(const thoth_nvme_admin_t *a, const char *dev, uint32_t dw, char *why,
			     size_t why_len);

/* The same through the real ioctl on PATH. */
int thoth_nvme_coalesce_get(const char *path, uint32_t *dw, char *why, size_t why_len);
int thoth_nvme_coalesce_set(const char *path, uint32_t dw, char *why, size_t why_len);

/* The first NVMe controller (/dev/nvme0 ... /dev/nvme31): its path in
 * PATH, 0; THOTH_E_NOT_FOUND when there is none (this VM). */
int thoth_nvme_find(char *path, size_t len);

/* ---- counters ------------------------------------------------------------------ */

/* A controller name: "nvme" and 1 to 4 digits (nothing that could walk a
 * path).  0 or THOTH_E_INVAL. */
int thoth_nvme_ctrl_name_check(const char *ctrl);

/* One /sys/block/<dev>/stat: 11, 15 or 17 unsigned decimal fields
 * (Documentation/block/stat.rst).  IOS = completed reads + writes +
 * discards + flushes, SECTORS = 512-byte sectors read + written +
 * discarded, INFLIGHT (may be NULL) = field 9, the requests started and
 * not yet completed.  THOTH_E_PROTOCOL naming the bad field otherwise. */
int thoth_nvme_parse_blockstat(const char *text, size_t len, uint64_t *ios, uint64_t *sectors, uint64_t *inflight,
			       char *why, size_t why_len);

/* /proc/interrupts: the sum over every CPU column of the lines whose name
 * (the last word) is CTRL "q" N with N >= 1 (I/O queues; q0 is the admin
 * queue).  *QUEUES = how many such lines.  THOTH_E_PROTOCOL for a missing
 * CPU header or a matching line without a count per CPU. */
int thoth_nvme_parse_interrupts(const char *text, size_t len, const char *ctrl, uint64_t *irqs, uint32_t *queues,
				char *why, size_t why_len);

#define THOTH_NVME_MAX_NS 16
typedef struct thoth_nvme_counters {
	uint64_t ios, sectors;       /* summed over the namespaces */
	uint64_t irqs;               /* summed over the I/O queues' interrupt lines */
	uint64_t inflight;           /* requests in flight now, summed over the namespaces */
	uint32_t namespaces, queues; /* queues 0: no interrupt lines found */
} thoth_nvme_counters_t;

/* CTRL's namespaces: /sys/block/<ctrl>n<K> under the root, in NAMES (up to
 * MAX, each 32 bytes) and their dev_t (major:minor from the "dev" file,
 * as the kernel encodes it: major << 20 | minor) in DEVS (may be NULL).
 * THOTH_E_NOT_FOUND when there is none. */
int thoth_nvme_namespaces(const char *ctrl, char (*names)[32], uint32_t *devs, uint32_t max, uint32_t *n, char *why,
			  size_t why_len);
/* Read every counter now. */
int thoth_nvme_read_counters(const char *ctrl, thoth_nvme_counters_t *out, char *why, size_t why_len);

/* ---- the loop ------------------------------------------------------------------- */

typedef enum thoth_nvmemod_wake {
	THOTH_NVMEMOD_WAKE_PERF = 0,     /* block_rq_issue through perf (real) */
	THOTH_NVMEMOD_WAKE_FILES = 1,    /* inotify on the namespaces' sysfs dirs (fixture trees) */
} thoth_nvmemod_wake_t;

typedef struct thoth_nvmemod_change {
	uint64_t time_ns;                /* CLOCK_MONOTONIC */
	uint64_t rate;                   /* completions/s over the last sample */
	uint64_t irq_rate;               /* interrupts/s over the last sample (0: not counted) */
	thoth_mod_profile_t profile;     /* what the policy chose */
	uint32_t asked;                  /* cdw11 sent */
	uint32_t readback;               /* Get Features' answer afterwards */
	bool read_ok;                    /* readback is valid */
	int err;                         /* 0, or the controller's refusal (THOTH_E_*) */
	char why[200];
} thoth_nvmemod_change_t;

typedef void (*thoth_nvmemod_fn)(void *arg, const thoth_nvmemod_change_t *c);

typedef struct thoth_nvmemod_config {
	const char *ctrl;                /* "nvme0": counters under /sys/block/nvme0n*, commands to /dev/nvme0 */
	const char *dev_path;            /* where admin commands go (NULL: "/dev/<ctrl>") */
	thoth_mod_config_t policy;       /* ADAPTIVE or DIM (NONE / FIXED: applied once) */
	uint32_t sample_us;              /* sample period while busy (0 = 10 ms; 1 ms .. 1 s) */
	uint32_t stall_us;               /* requests in flight, none completing: sample this long, then back
					  * off (0 = 100 ms; one sample period .. 10 s) */
	thoth_nvmemod_wake_t wake;
	thoth_nvme_admin_t admin;        /* submit NULL: the real ioctl */
	thoth_nvmemod_fn on_change;      /* each Set Features sent (may be NULL) */
	void *arg;
} thoth_nvmemod_config_t;

typedef struct thoth_nvmemod_stats {
	bool busy, disabled;             /* disabled: the controller refused a set; nothing is driven */
	uint64_t wakes;                  /* idle -> busy */
	uint64_t woke_ns;                /* ... the last one (CLOCK_MONOTONIC) */
	uint64_t samples;                /* counter reads while busy */
	uint64_t idles;                  /* busy -> idle */
	uint64_t waits;                  /* samples kept busy: requests in flight, none completed */
	uint64_t stalls;                 /* busy -> backed off: stall_us passed without a completion */
	uint64_t rechecks;               /* back-off timers fired */
	bool stalled;                    /* backed off now (not busy; wake-up armed, a timer too) */
	uint32_t backoff_us;             /* ... the interval of that timer (0: not backed off) */
	uint64_t applies, refusals, mismatches;  /* sets sent / refused / read back different */
	uint64_t rate, irq_rate;         /* at the last sample */
	thoth_mod_profile_t profile;     /* the policy's current profile */
	uint32_t device;                 /* feature 0x08 as last read back */
	uint32_t original;               /* ... as found at start (restored at stop) */
	thoth_nvme_counters_t counters;  /* at the last read */
	char why[200];                   /* the refusal, when disabled */
} thoth_nvmemod_stats_t;

typedef struct thoth_nvmemod thoth_nvmemod_t;

/* Start on LOOP: check the name, find the namespaces, read the counters,
 * read feature 0x08 (a controller that refuses it fails here), apply the
 * policy's start profile, arm the wake-up, no timer.  THOTH_E_INVAL (bad
 * config), THOTH_E_NOT_FOUND (no namespace, no tracefs / tracepoint, not
 * an NVMe controller), THOTH_E_PERM (tracefs, perf or the admin ioctl refused),
 * THOTH_E_NO_FEATURE (FID 8 rejected), THOTH_E_PROTOCOL (a malformed
 * counter file), THOTH_E_IO.  WHY says which. */
int thoth_nvmemod_start(thoth_loop_t *loop, const thoth_nvmemod_config_t *cfg, thoth_nvmemod_t **out, char *why,
			size_t why_len);
/* Stop; the controller gets back the value it had at start. */
void thoth_nvmemod_stop(thoth_nvmemod_t *m);
void thoth_nvmemod_stats(const thoth_nvmemod_t *m, thoth_nvmemod_stats_t *out);

/* The real wake-up alone (tests, thothctl): perf block_rq_issue events
 * for the given dev_ts, enabled; its per-CPU fds in FDS (up to MAX). */
typedef struct thoth_nvme_perf_wake thoth_nvme_perf_wake_t;
int thoth_nvme_perf_wake_open(const uint32_t *devs, uint32_t ndevs, thoth_nvme_perf_wake_t **out, char *why,
			      size_t why_len);
/* Arm (empty the rings, zero the counts, enable) or disarm (disable). */
int thoth_nvme_perf_wake_arm(thoth_nvme_perf_wake_t *w, bool on);
/* Since the last arm, over every CPU: the requests the events COUNTED, the
 * doorbells (samples) they WROTE, and those a full ring LOST (a page of
 * unread doorbells, 511 on 4 KiB pages: it rang already; always 0 on a
 * kernel before 6.0, which cannot say).  LOST is since the last arm once
 * a first tally was asked for, since the open before it (arms read its
 * baseline only for the tally's sake): tally every round, or from the
 * first.  WRITTEN + LOST < COUNTED means the kernel counted a request
 * without ringing, a wake-up that never came (what block_rq_complete does
 * on this kernel, docs/PM.md "Why block_rq_issue").  THOTH_E_IO (a count unreadable), THOTH_E_PROTOCOL (a
 * ring that does not parse). */
int thoth_nvme_perf_wake_tally(thoth_nvme_perf_wake_t *w, uint64_t *counted, uint64_t *written,
			       uint64_t *lost);
/* Its descriptors (one per online CPU). */
uint32_t thoth_nvme_perf_wake_fds(const thoth_nvme_perf_wake_t *w, const int **fds);
void thoth_nvme_perf_wake_close(thoth_nvme_perf_wake_t *w);

#endif
