/*
 * test_thothd_fd_share.c - thothd sizes its client table net of the
 * descriptors it keeps for itself: the lock rings' and the tracer's.
 *
 * Under a 1,024-descriptor limit, 24 are kept for anything else, 128 for
 * the lock rings' kept memfds and pidfds (two per followed process, 64
 * processes: locks.h), and a quarter of the rest (218) for the tracer's
 * pidfds, then 8 for the pidfds of lost services the lifecycle history
 * keeps (OBS-3, lifecycle.c), so 646 clients at most.  Without the tracer's share thothd sized
 * max_clients to all 1,000 and a tracer opening pidfds then ran it out of
 * descriptors; without the rings' (750) a dashboard following 64 profiled
 * processes did.  This checks the sizing only (no trace session runs, no
 * pidfd is opened; test_lock_scan_hostile checks the rings keep to their
 * share): 800 connections of one uid (its cap raised to the total), the
 * oldest quiet ones evicted down to 646.  The limit is set on thothd
 * alone, between fork and exec; this process keeps its own.  Then the
 * shares at work: a thothd under a 200-descriptor limit, 64 profiled
 * processes and the documented maximum of clients, with a trace session
 * recording their lock waits.  Skipped (exit 77) where the hard limit is
 * under 1,024: lowering needs no privilege, raising does.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "live_harness.h"
#include "lockprof_layout.h"
#include "thoth/loop.h"

enum {
	CONNECTIONS = 800, LIMIT = 1024, HEADROOM = 24, RING_FDS = 128, LOST_PIDFDS = 8,
	/* the tracer's quarter, then the lifecycle history's 8
	 * (THOTHD_LIFECYCLE_PIDFDS; an eighth of what is left, when less) */
	WANT = (LIMIT - HEADROOM - RING_FDS) - (LIMIT - HEADROOM - RING_FDS) / 4 - LOST_PIDFDS,
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

/* A process that keeps a contention ring of WAITS waits (stamped from
 * now: a session hands out the waits that began after it started) in a
 * memfd named as the lock profiler's, with its marker in LOCKS, until
 * killed.  Its pid. */
static pid_t ring_process(const char *locks, uint64_t waits)
{
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		size_t len = THOTHLOCK_HEADER_SIZE + waits * sizeof(thothlock_event_t);
		unsigned char *b = calloc(1, len);
		if (!b)
			_exit(1);
		thothlock_header_t hd = { .magic = THOTHLOCK_MAGIC, .version = THOTHLOCK_VERSION,
					  .header_size = THOTHLOCK_HEADER_SIZE, .start_ns = 1,
					  .pid = (int32_t)getpid(), .events_offset = THOTHLOCK_HEADER_SIZE,
					  .event_capacity = waits, .event_head = waits, .file_size = len };
		memcpy(b, &hd, sizeof hd);
		thothlock_event_t *e = (thothlock_event_t *)(b + THOTHLOCK_HEADER_SIZE);
		uint64_t now = thoth_clock_now();
		for (uint64_t n = 0; n < waits; n++)
			e[n] = (thothlock_event_t){ .seq = n + 1, .start_ns = now + n, .wait_ns = 5, .lock = 0x10 };
		char name[64], path[300];
		snprintf(name, sizeof name, "thothlock:%d", (int)getpid());
		int fd = memfd_create(name, MFD_ALLOW_SEALING);
		snprintf(path, sizeof path, "%s/%d.table", locks, (int)getpid());
		int m = -1;
		if (fd < 0 || write(fd, b, len) != (ssize_t)len ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0 ||
		    (m = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 || close(m) != 0 ||
		    write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static int count_in_file(const char *file, const char *needle)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return -1;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	int k = 0;
	for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
		k++;
	return k;
}

/*
 * The shares at work: thothd under a 200-descriptor limit (24 kept, the
 * lock rings 44 (a quarter of 176), the tracer's pidfds 33, the lifecycle
 * history's 8, 91 clients)
 * holds its documented 91 connections (90 quiet ones and thothctl's) while
 * a trace session recording category lock follows 64 profiled processes:
 * every one of their 64 x 4 waits reaches the trace (the rings beyond
 * the 22 whose descriptors are kept read afresh at each poll) and no
 * connection is dropped.  Before, the rings kept two descriptors per
 * process outside any budget: at this limit (132 clients documented) they
 * ran out of descriptors and the polls silently skipped processes.
 */
static void test_many_clients_and_many_profiled_processes_fit_the_budget(void **state)
{
	harness_t *h = *state;
	enum { LOW = 200, PROCS = 64, WAITS = 4 };
	enum { USABLE = LOW - HEADROOM, RINGS = USABLE / 4, TRACED = (USABLE - RINGS) - (USABLE - RINGS) / 4,
	       CLIENTS = TRACED - (TRACED / 8 < 8 ? TRACED / 8 : 8) };
	h->thothd_nofile = LOW;
	const char *const args[] = { "--max-clients-per-uid", "100000", NULL };
	assert_true(harness_start_thothd(h, args) > 0);
	char locks[200], json[200];
	snprintf(locks, sizeof locks, "%s/locks", h->dir);
	snprintf(json, sizeof json, "%s/trace.json", h->dir);
	assert_int_equal(mkdir(locks, 0700), 0);
	char out[4096];
	int st;
	const char *start[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace", "start", "--categories",
				"lock", NULL };
	assert_int_equal(harness_run(h, start, out, sizeof out, &st), 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	pid_t procs[PROCS];
	for (int i = 0; i < PROCS; i++)
		procs[i] = ring_process(locks, WAITS);
	/* The documented maximum: these and the thothctl that stops the session. */
	static int fd[CLIENTS - 1];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s/thothd.sock", h->dir);
	for (int i = 0; i < CLIENTS - 1; i++) {
		fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd[i] >= 0);
		assert_int_equal(connect(fd[i], (struct sockaddr *)&a, sizeof a), 0);
	}
	/* No wait for drains: the stop drains the session (polling every ring)
	 * while all these connections are held. */
	const char *stop[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace", "stop", NULL };
	const char *dump[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "trace", "dump", "--json", json, NULL };
	int stop_rc = harness_run(h, stop, out, sizeof out, &st) == 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	int alive = 0;
	for (int i = 0; i < CLIENTS - 1; i++) {
		alive += !hung_up(fd[i]);
		close(fd[i]);
	}
	int dump_rc = harness_run(h, dump, out, sizeof out, &st) == 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	int waits = count_in_file(json, "\"lock_wait\"");
	/* The rings read afresh are counted in /metrics (lock44: counted but
	 * not exported): every poll reads the PROCS - RINGS / 2 beyond the
	 * kept ones afresh, and the stop polled at least once. */
	thoth_control_t ctl;
	assert_int_equal(harness_connect(h, &ctl), 0);
	int port = live_dashboard_port(&ctl);
	thoth_control_close(&ctl);
	char *metrics = port > 0 ? live_metrics(port) : NULL;
	unsigned long long unkept = 0, unkept_dash = ~0ULL;
	const char *m = metrics ? strstr(metrics, "\nthothd_lock_rings_unkept_total{follower=\"trace\"} ") : NULL;
	const char *md = metrics ? strstr(metrics, "\nthothd_lock_rings_unkept_total{follower=\"dashboard\"} ") : NULL;
	if (m)
		unkept = strtoull(strchr(m, '}') + 2, NULL, 10);
	if (md)
		unkept_dash = strtoull(strchr(md, '}') + 2, NULL, 10);
	free(metrics);
	for (int i = 0; i < PROCS; i++) {
		kill(procs[i], SIGKILL);
		waitpid(procs[i], NULL, 0);
	}
	fprintf(stderr, "# under a %d-descriptor limit: %d of %d connections kept, %d of %d lock waits traced\n",
		LOW, alive + 1, CLIENTS, waits, PROCS * WAITS);
	assert_int_equal(stop_rc, 0);
	assert_int_equal(dump_rc, 0);
	assert_int_equal(alive, CLIENTS - 1);
	assert_int_equal(waits, PROCS * WAITS);
	fprintf(stderr, "# thothd_lock_rings_unkept_total: trace %llu, dashboard %llu\n", unkept, unkept_dash);
	assert_non_null(m);
	assert_true(unkept >= PROCS - RINGS / 2);
	assert_false(harness_file_contains(h->log, "Too many open files"));
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
		cmocka_unit_test_setup_teardown(test_many_clients_and_many_profiled_processes_fit_the_budget,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
