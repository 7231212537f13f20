/*
 * backend_uclamp.c - utilisation clamps through sched_setattr (backend.h).
 * Detected, never assumed: the probe re-applies the calling thread's own
 * policy with SCHED_FLAG_UTIL_CLAMP and KEEP_ALL, which changes nothing
 * and fails (EINVAL/EOPNOTSUPP) on kernels built without uclamp.
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backend.h"
#include "thoth/error.h"

struct sched_attr_v1 {                  /* include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1 */
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

#define FLAG_KEEP_POLICY 0x08
#define FLAG_KEEP_PARAMS 0x10
#define FLAG_UTIL_CLAMP_MIN 0x20
#define FLAG_UTIL_CLAMP_MAX 0x40

static int set_clamp(int tid, uint32_t min, uint32_t max)
{
#ifdef SYS_sched_setattr
	struct sched_attr_v1 a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.sched_flags = FLAG_KEEP_POLICY | FLAG_KEEP_PARAMS | FLAG_UTIL_CLAMP_MIN | FLAG_UTIL_CLAMP_MAX;
	a.sched_util_min = min;
	a.sched_util_max = max;
	return (int)syscall(SYS_sched_setattr, tid, &a, 0) ? -errno : 0;
#else
	return -ENOSYS;
#endif
}

static int get_clamp(int tid, uint32_t *min, uint32_t *max)
{
#ifdef SYS_sched_getattr
	struct sched_attr_v1 a;
	memset(&a, 0, sizeof a);
	if (syscall(SYS_sched_getattr, tid, &a, sizeof a, 0))
		return -errno;
	if (a.size < sizeof a)
		return -EOPNOTSUPP;     /* the kernel's attr has no clamp fields */
	*min = a.sched_util_min;
	*max = a.sched_util_max;
	return 0;
#else
	return -ENOSYS;
#endif
}

bool thoth_pm_uclamp_supported(void)
{
	uint32_t min = 0, max = 1024;
	if (get_clamp(0, &min, &max))
		return false;
	return set_clamp(0, min, max) == 0;
}

int thoth_pm_uclamp_set(int tid, uint32_t min, uint32_t max)
{
	if (min > max || max > 1024)
		return THOTH_E_INVAL;
	return set_clamp(tid, min, max) ? THOTH_E_IO : 0;
}
