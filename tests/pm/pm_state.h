/*
 * pm_state.h - what the tests of thothd's power broker share (PM-1/PM-2):
 * reading PowerBroker.state, and starting thothd under a fixture root
 * whose dev/cpu_dma_latency stands in for the host's, and the baseline of
 * their kill -9 tests (a state() round trip).  test_pm_thothd and
 * test_pm_resolve_qos each had a copy of these (duplicates found them).
 */
#ifndef THOTH_TESTS_PM_STATE_H
#define THOTH_TESTS_PM_STATE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pm.thoth.h"
#include "../common/testutil.h"

/* thothd's broker state into *RESP; what it points to lives in one
 * scratch arena per test program, valid until the next call. */
static inline int pm_state_read(thoth_control_t *ctl, thoth_pm_PowerBroker_state_resp_t *resp)
{
	static uint64_t scratch[1 << 14];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	return thoth_pm_PowerBroker_state(&ctl->client, &req, resp, &arena);
}

/* The median of 21 state() round trips now: the kill -9 tests' bounds
 * scale with it, a baseline from the same run on the same machine. */
static inline uint64_t pm_state_rtt_median_ns(thoth_control_t *ctl)
{
	uint64_t rtt[21];
	thoth_pm_PowerBroker_state_resp_t resp;
	for (int i = 0; i < 21; i++) {
		uint64_t t = test_now_ns();
		assert_int_equal(pm_state_read(ctl, &resp), 0);
		rtt[i] = test_now_ns() - t;
	}
	qsort(rtt, 21, sizeof rtt[0], test_cmp_u64);
	return rtt[10];
}

/* thothd (options EXTRA, may be NULL) under THOTH_SYSFS_ROOT=H->dir/root,
 * which holds an empty dev/cpu_dma_latency: thothd must never write the
 * host's.  The file's descriptor in *QOS_FD (NULL: closed). */
static inline pid_t pm_start_thothd_fixture_root(harness_t *h, const char *const *extra, int *qos_fd)
{
	char path[300];
	snprintf(path, sizeof path, "%s/root", h->dir);
	mkdir(path, 0700);
	setenv("THOTH_SYSFS_ROOT", path, 1);
	snprintf(path, sizeof path, "%s/root/dev", h->dir);
	mkdir(path, 0700);
	snprintf(path, sizeof path, "%s/root/dev/cpu_dma_latency", h->dir);
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	pid_t d = harness_start_thothd(h, extra);
	unsetenv("THOTH_SYSFS_ROOT");
	assert_true(d > 0);
	if (qos_fd)
		*qos_fd = fd;
	else
		close(fd);
	return d;
}

#endif
