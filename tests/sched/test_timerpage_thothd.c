/*
 * test_timerpage_thothd.c - the window page with a real thothd (SCHED-3,
 * kernel/thothd/timerpage.c): thothd hands out a sealed memfd that nobody
 * can truncate, removes doorbells an earlier thothd's processes left in
 * the runtime dir when it starts, and gives back the slot and doorbell of
 * a service killed with SIGKILL (which never unlinks anything itself);
 * and a client that lives through 40 thothd restarts posts on the live
 * thothd's page after each.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "thoth/loop.h"
#include "timerpage.h"

static bool sock_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

typedef struct slot_arg {
	const timerpage_t *page;
	pid_t pid;
	int slot;
} slot_arg_t;

/* The service claims its slot (a CAS on the page) before it binds the
 * slot's doorbell: wait for both, or a fast look sees the claim alone. */
static bool has_slot(void *p)
{
	slot_arg_t *a = p;
	char bell[108];
	for (unsigned k = 0; k < THOTH_TIMERPAGE_SLOTS; k++)
		if (a->page->slot[k].owner == (uint32_t)a->pid) {
			a->slot = (int)k;
			return thoth__timerpage_bell_path(a->page, (int)k, bell, sizeof bell) == 0 &&
			       sock_exists(bell);
		}
	return false;
}

static bool bell_gone(void *p)
{
	return !sock_exists(p);
}

/* Open thothd's page memfd as any process of our uid can (/proc/PID/fd). */
static int open_thothds_page(pid_t thothd)
{
	char d[64], link[400], target[300];
	snprintf(d, sizeof d, "/proc/%d/fd", (int)thothd);
	DIR *dir = opendir(d);
	int fd = -1;
	struct dirent *e;
	while (dir && fd < 0 && (e = readdir(dir))) {
		snprintf(link, sizeof link, "%s/%s", d, e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		if (n > 0) {
			target[n] = 0;
			if (strstr(target, "memfd:thoth-timer-page"))
				fd = open(link, O_RDWR | O_CLOEXEC);
		}
	}
	if (dir)
		closedir(dir);
	return fd;
}

static void test_thothd_page_is_sealed_and_dead_doorbells_are_reaped(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	/* A doorbell left by a process of an earlier thothd. */
	char stale[128];
	snprintf(stale, sizeof stale, "%s/tk.1234.7", h.dir);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	assert_true(strlen(stale) < sizeof a.sun_path);
	memcpy(a.sun_path, stale, strlen(stale) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
	close(s);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	assert_false(sock_exists(stale));

	const char *argv[] = { ECHO_PATH, "--runtime-dir", h.dir, "--name", "doomed", NULL };
	pid_t svc = harness_spawn(&h, "doomed", argv);
	assert_true(svc > 0);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	const timerpage_t *page = thoth__timerpage_current();   /* handed to us on connect */
	assert_non_null(page);
	slot_arg_t sa = { page, svc, -1 };
	bool ok = harness_wait_until(has_slot, &sa, 10000);
	char bell[108] = "";
	if (ok)
		ok = thoth__timerpage_bell_path(page, sa.slot, bell, sizeof bell) == 0 && sock_exists(bell);
	/* Truncation, by anyone who gets hold of the descriptor: refused. */
	int pfd = open_thothds_page(h.thothd);
	bool sealed = pfd >= 0 && ftruncate(pfd, 0) < 0 && errno == EPERM &&
		      ftruncate(pfd, 1 << 20) < 0 && errno == EPERM;
	if (pfd >= 0)
		close(pfd);
	if (!ok || !sealed)
		harness_teardown(&h);
	assert_true(ok);
	assert_true(sealed);

	/* SIGKILL: the service unlinks nothing; thothd sees its connection
	 * close and reaps the slot and the doorbell. */
	harness_kill(&h, svc, SIGKILL);
	ok = harness_wait_until(bell_gone, bell, 5000);
	if (!ok)
		harness_teardown(&h);
	assert_true(ok);
	assert_true(page->slot[sa.slot].owner != (uint32_t)svc);
	thoth_control_close(&ctl);
	harness_teardown(&h);
}

/*
 * A long-lived client (this process: one loop with a timer) sees thothd
 * restart 40 times and connects to each: after every restart its loop's
 * instant is on the live thothd's page, read through that thothd's own
 * memfd, and the pages it let go of are unmapped past 32.  Before, the
 * 33rd page this process was handed was refused (pages were never
 * unmapped) and the loop stayed on a dead thothd's page, where the new
 * thothd neither coalesces with it nor sees its posts for its CPU hint.
 */
static void test_a_client_posts_on_the_live_page_through_40_thothd_restarts(void **state)
{
	(void)state;
	enum { RESTARTS = 40 };
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	thoth_loop_t *loop;
	assert_int_equal(thoth_loop_new(&loop), 0);
	uint64_t deadline = thoth_clock_now() + 1000ull * 1000000000ull, slack = 1000000000ull;
	assert_int_equal(thoth_loop_add_timer(loop, deadline, slack, (thoth_timer_fn)abort, NULL, NULL), 0);
	uint32_t me = (uint32_t)gettid();
	unsigned unmapped0 = thoth__timerpage_unmapped();
	int k, live = 0;
	for (k = 0; k < RESTARTS; k++) {
		if (harness_start_thothd(&h, NULL) <= 0)
			break;
		thoth_control_t ctl;
		if (harness_connect(&h, &ctl) != 0)
			break;
		bool ok = thoth_loop_run_once(loop, false) == 0;
		int pfd = open_thothds_page(h.thothd);
		timerpage_t *view = pfd >= 0 ? mmap(NULL, THOTH_TIMERPAGE_SIZE, PROT_READ, MAP_SHARED, pfd, 0)
					     : MAP_FAILED;
		bool on_it = false;
		for (unsigned i = 0; ok && view != MAP_FAILED && i < THOTH_TIMERPAGE_SLOTS; i++)
			on_it |= view->slot[i].owner == me && view->slot[i].at == deadline + slack;
		live += on_it;
		if (view != MAP_FAILED)
			munmap(view, THOTH_TIMERPAGE_SIZE);
		if (pfd >= 0)
			close(pfd);
		thoth_control_close(&ctl);
		harness_stop_thothd(&h);
		if (!on_it)
			break;
	}
	unsigned unmapped = thoth__timerpage_unmapped() - unmapped0;
	fprintf(stderr, "# on the live page after %d of %d thothd restarts; %u old pages unmapped\n", live,
		RESTARTS, unmapped);
	thoth_loop_free(loop);
	harness_teardown(&h);
	assert_int_equal(live, RESTARTS);
	assert_true(unmapped >= RESTARTS - 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thothd_page_is_sealed_and_dead_doorbells_are_reaped),
		cmocka_unit_test(test_a_client_posts_on_the_live_page_through_40_thothd_restarts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
