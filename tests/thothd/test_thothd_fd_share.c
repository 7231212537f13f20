/*
 * test_thothd_fd_share.c - thothd sizes its client table net of the
 * descriptors it keeps for itself: the lock rings' and the tracer's.
 *
 * Under a 1,024-descriptor limit, 24 are kept for anything else, 128 for
 * the lock rings' kept memfds and pidfds (two per followed process, 64
 * processes: locks.h), and a quarter of the rest (218) for the tracer's
 * pidfds, so 654 clients at most.  Without the tracer's share thothd sized
 * max_clients to all 1,000 and a tracer opening pidfds then ran it out of
 * descriptors; without the rings' (750) a dashboard following 64 profiled
 * processes did.  This checks the sizing only (no trace session runs, no
 * pidfd is opened; test_lock_scan_hostile checks the rings keep to their
 * share): 800 connections of one uid (its cap raised to the total), the
 * oldest quiet ones evicted down to 654.  The limit is set on thothd
 * alone, between fork and exec; this process keeps its own.  Skipped
 * (exit 77) where the hard limit is under 1,024: lowering needs no
 * privilege, raising does.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

enum {
	CONNECTIONS = 800, LIMIT = 1024, HEADROOM = 24, RING_FDS = 128,
	WANT = (LIMIT - HEADROOM - RING_FDS) - (LIMIT - HEADROOM - RING_FDS) / 4,
};

static int setup(void **state)
{
	harness_t *h = calloc(1, sizeof *h);
	assert_int_equal(harness_setup(h), 0);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	harness_t *h = *state;
	harness_teardown(h);
	free(h);
	return 0;
}

/* True once thothd closed FD's connection. */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

static void test_the_tracers_and_lock_rings_descriptors_are_taken_off_the_clients(void **state)
{
	harness_t *h = *state;
	h->thothd_nofile = LIMIT;
	const char *const args[] = { "--max-clients-per-uid", "100000", NULL };
	assert_true(harness_start_thothd(h, args) > 0);
	static int fd[CONNECTIONS];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s/thothd.sock", h->dir);
	for (int i = 0; i < CONNECTIONS; i++) {
		fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd[i] >= 0);
		assert_int_equal(connect(fd[i], (struct sockaddr *)&a, sizeof a), 0);
	}
	/* Answered after thothd accepted every connection before it. */
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&c, &st), 0);
	int alive = 0;
	for (int i = 0; i < CONNECTIONS; i++) {
		alive += !hung_up(fd[i]);
		close(fd[i]);
	}
	fprintf(stderr, "# %d of %d connections kept under thothd's %d-descriptor limit (and this one)\n",
		alive, CONNECTIONS, LIMIT);
	assert_int_equal(alive + 1, WANT);
	assert_true(harness_file_contains(h->log, "evict"));
	thoth_control_close(&c);
}

int main(void)
{
	struct rlimit lim;
	if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_max < LIMIT) {
		fprintf(stderr, "SKIP: the hard descriptor limit is %llu, under %d\n",
			(unsigned long long)lim.rlim_max, LIMIT);
		return 77;
	}
	/* This process holds the 800 connections itself. */
	if (lim.rlim_cur < CONNECTIONS + 64) {
		lim.rlim_cur = lim.rlim_max < LIMIT ? lim.rlim_max : LIMIT;
		if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
			return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_the_tracers_and_lock_rings_descriptors_are_taken_off_the_clients,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
