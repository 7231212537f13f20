/*
 * test_idle_system.c - issue 13 section 0: an idle registered service
 * costs nothing.  thothd, ten registered echo services (leases held by
 * their control connections: no renewals) and one idle connected client
 * (a control connection, and a shared-memory channel to the first service
 * that made one call) are left alone for THOTH_IDLE_SECONDS (default 10; the figure is
 * 60): no process may wake up.  Witness: the kernel's voluntary context
 * switches of every process (/proc/PID/status), read before and after.
 */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "thoth/channel.h"
#include "echo.thoth.h"
#include "timerpage.h"

enum { SERVICES = 10 };

static long voluntary_switches(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

typedef struct { thoth_control_t *ctl; } arg_t;

/* The process sleeps (state S in /proc/PID/stat): the client is in pause(). */
static bool sleeping(void *p)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", *(pid_t *)p);
	FILE *f = fopen(path, "r");
	bool s = false;
	if (f && fgets(buf, sizeof buf, f)) {
		const char *close_paren = strrchr(buf, ')');
		s = close_paren && close_paren[1] == ' ' && close_paren[2] == 'S';
	}
	if (f)
		fclose(f);
	return s;
}

static bool all_registered(void *p)
{
	arg_t *a = p;
	thoth_daemon_Daemon_status_resp_t st;
	return harness_status(a->ctl, &st) == 0 && st.registrations == SERVICES;
}

typedef struct page_arg {
	const timerpage_t *page;
	const pid_t *svc;
} page_arg_t;

static bool services_in_page(void *p)
{
	const page_arg_t *a = p;
	int in_page = 0;
	for (int i = 0; i < SERVICES; i++)
		for (unsigned k = 0; k < THOTH_TIMERPAGE_SLOTS; k++)
			in_page += a->page->slot[k].owner == (uint32_t)a->svc[i];
	return in_page == SERVICES;
}

static void test_idle_system_never_wakes(void **state)
{
	harness_t h;
	assert_int_equal(harness_setup(&h), 0);
	assert_true(harness_start_thothd(&h, NULL) > 0);
	pid_t svc[SERVICES];
	for (int i = 0; i < SERVICES; i++) {
		char name[32];
		snprintf(name, sizeof name, "idle-%d", i);
		const char *argv[] = { ECHO_PATH, "--runtime-dir", h.dir, "--name", name, NULL };
		svc[i] = harness_spawn(&h, name, argv);
		assert_true(svc[i] > 0);
	}
	thoth_control_t ctl;
	assert_int_equal(harness_connect(&h, &ctl), 0);
	arg_t arg = { &ctl };
	assert_true(harness_wait_until(all_registered, &arg, 10000));

	/* thothd handed us its window page (SCHED-3: a sealed memfd, on our
	 * control connection) and every service's loop holds a slot in it:
	 * the idle measurement below runs with it. */
	const timerpage_t *page = thoth__timerpage_current();
	/* A service claims its slot on its loop's next iteration after it
	 * got the page: registered (thothd's view) may come just before. */
	bool all_in_page = false;
	if (page) {
		page_arg_t pa = { page, svc };
		all_in_page = harness_wait_until(services_in_page, &pa, 10000);
	}
	if (!all_in_page)
		harness_teardown(&h);   /* kill the children before failing */
	assert_true(all_in_page);

	/* The idle client: a process holding its own connection to thothd. */
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	fflush(NULL);
	pid_t client = fork();
	assert_true(client >= 0);
	if (client == 0) {
		thoth_control_t c;
		char ok = harness_connect(&h, &c) == 0 ? 'y' : 'n';
		/* ... and an open shared-memory channel to the first service,
		 * used once (SCHED-2: a service on shm channels keeps the
		 * guarantee with a client connected, its spin and nap over). */
		char path[4200];
		snprintf(path, sizeof path, "%s/idle-0-%d.sock", h.dir, (int)svc[0]);
		thoth_chan_config_t cfg = { .iface = &thoth_echo_Echo_info };
		thoth_chan_t *ch = NULL;
		char why[256];
		uint8_t byte = 7;
		thoth_echo_Echo_echo_req_t req = { .data = { .ptr = &byte, .len = 1 } };
		thoth_echo_Echo_echo_resp_t resp;
		if (ok == 'y' && (thoth_chan_connect(path, &cfg, &ch, why, sizeof why) ||
				  thoth_echo_Echo_echo(thoth_chan_client(ch), &req, &resp, NULL) ||
				  resp.data.len != 1 || resp.data.ptr[0] != 7))
			ok = 'c';
		if (write(ready[1], &ok, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	h.children[h.n_children++] = client;    /* teardown kills and reaps it, whatever happens */
	char ok = 0;
	assert_int_equal(read(ready[0], &ok, 1), 1);
	if (ok == 'c')
		fail_msg("the idle client could not open a channel to service idle-0 and call it once");
	assert_int_equal(ok, 'y');
	close(ready[0]);
	close(ready[1]);
	assert_true(harness_wait_until(sleeping, &client, 5000));
	/* The service that answered the client's call may still be spinning
	 * for a next one (a loaded machine, a sanitizer build): its going to
	 * sleep is not a wake-up, so the window starts once it sleeps. */
	assert_true(harness_wait_until(sleeping, &svc[0], 5000));

	long v0[SERVICES + 2], v1[SERVICES + 2];
	pid_t who[SERVICES + 2];
	for (int i = 0; i < SERVICES; i++)
		who[i] = svc[i];
	who[SERVICES] = h.thothd;
	who[SERVICES + 1] = client;
	for (int i = 0; i < SERVICES + 2; i++)
		v0[i] = voluntary_switches(who[i]);
	int seconds = getenv("THOTH_IDLE_SECONDS") ? atoi(getenv("THOTH_IDLE_SECONDS")) : 10;
	struct timespec idle = { seconds, 0 };   /* the measurement window, not a synchronisation */
	nanosleep(&idle, NULL);
	for (int i = 0; i < SERVICES + 2; i++)
		v1[i] = voluntary_switches(who[i]);

	long total = 0;
	for (int i = 0; i < SERVICES + 2; i++) {
		assert_true(v0[i] >= 0 && v1[i] >= 0);
		total += v1[i] - v0[i];
	}
	fprintf(stderr, "# idle %d s: thothd %ld, 10 services %ld, client %ld voluntary context switches\n",
		seconds, v1[SERVICES] - v0[SERVICES], total - (v1[SERVICES] - v0[SERVICES]) - (v1[SERVICES + 1] - v0[SERVICES + 1]),
		v1[SERVICES + 1] - v0[SERVICES + 1]);
	for (int i = 0; i < SERVICES; i++)
		assert_int_equal(v1[i] - v0[i], 0);
	assert_int_equal(v1[SERVICES + 1] - v0[SERVICES + 1], 0);
	/* thothd: at most one, going back to sleep after the last status
	 * call of the wait above may land just after v0 was read. */
	assert_true(v1[SERVICES] - v0[SERVICES] <= 1);

	thoth_control_close(&ctl);
	harness_teardown(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_system_never_wakes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
