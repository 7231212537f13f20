/*
 * backend_uclamp.c - utilisation clamps through sched_setattr (backend.h).
 *
 * Detected, never assumed: the probe reads the calling thread's attributes
 * (sched_getattr) and re-applies its own clamps with
 * SCHED_FLAG_KEEP_ALL | SCHED_FLAG_UTIL_CLAMP_MIN | _MAX, which changes
 * nothing where uclamp exists and fails where it does not: a kernel built
 * without CONFIG_UCLAMP_TASK answers EOPNOTSUPP (this VM's 6.18 does,
 * although its sched_attr has the clamp fields), an old one returns a
 * sched_attr too short to hold them.  The reason is kept for the caller.
 *
 * The two syscalls go through one replaceable function (the seam tests use
 * to check what would be written on a kernel with uclamp: this machine
 * cannot show it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "thoth/error.h"

static int real_sched_attr(int op, int tid, thoth_pm_sched_attr_t *attr, uint32_t size, uint32_t flags)
{
	long r;
	if (op == THOTH_PM_SCHED_GETATTR) {
#ifdef SYS_sched_getattr
		r = syscall(SYS_sched_getattr, tid, attr, size, flags);
#else
		errno = ENOSYS;
		r = -1;
#endif
	} else {
#ifdef SYS_sched_setattr
		r = syscall(SYS_sched_setattr, tid, attr, flags);
#else
		errno = ENOSYS;
		r = -1;
#endif
	}
	return r ? -errno : 0;
}

static thoth_pm_sched_attr_fn sched_attr_call = real_sched_attr;

void thoth_pm_uclamp_set_syscall(thoth_pm_sched_attr_fn fn)
{
	sched_attr_call = fn ? fn : real_sched_attr;
}

static int set_clamp(int tid, uint32_t min, uint32_t max)
{
	thoth_pm_sched_attr_t a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	/* Keep the policy and its parameters: only the clamps change. */
	a.sched_flags = THOTH_PM_SCHED_FLAG_KEEP_POLICY | THOTH_PM_SCHED_FLAG_KEEP_PARAMS |
			THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MIN | THOTH_PM_SCHED_FLAG_UTIL_CLAMP_MAX;
	a.sched_util_min = min;
	a.sched_util_max = max;
	return sched_attr_call(THOTH_PM_SCHED_SETATTR, tid, &a, sizeof a, 0);
}

bool thoth_pm_uclamp_probe(char *why, size_t cap)
{
	thoth_pm_sched_attr_t a;
	memset(&a, 0, sizeof a);
	int r = sched_attr_call(THOTH_PM_SCHED_GETATTR, 0, &a, sizeof a, 0);
	if (r) {
		if (why)
			snprintf(why, cap, "sched_getattr: %s", strerror(-r));
		return false;
	}
	if (a.size < sizeof a) {
		if (why)
			snprintf(why, cap, "sched_getattr: the kernel's sched_attr is %u bytes, too short for "
				 "clamps (%zu): a kernel older than 5.3", a.size, sizeof a);
		return false;
	}
	r = set_clamp(0, a.sched_util_min, a.sched_util_max);
	if (r) {
		if (why)
			snprintf(why, cap, "sched_setattr(SCHED_FLAG_UTIL_CLAMP): %s%s", strerror(-r),
				 r == -EOPNOTSUPP ? " (the kernel was built without CONFIG_UCLAMP_TASK)" : "");
		return false;
	}
	if (why && cap)
		why[0] = 0;
	return true;
}

bool thoth_pm_uclamp_supported(void)
{
	return thoth_pm_uclamp_probe(NULL, 0);
}

int thoth_pm_uclamp_set(int tid, uint32_t min, uint32_t max)
{
	if (tid < 0 || min > max || max > 1024)
		return THOTH_E_INVAL;
	int r = set_clamp(tid, min, max);
	return r ? thoth_error_io(-r, "sched_setattr(tid %d, util clamp %u..%u)", tid, min, max) : 0;
}
