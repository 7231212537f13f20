/*
 * harness.c - process management for the thothd tests (harness.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "../common/tmpdir.h"

uint64_t harness_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool harness_wait_until(bool (*cond)(void *arg), void *arg, int deadline_ms)
{
	uint64_t end = harness_now_ms() + (uint64_t)deadline_ms;
	for (;;) {
		if (cond(arg))
			return true;
		if (harness_now_ms() >= end)
			return false;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/*
 * What this process made and has not yet torn down, kept apart from the
 * harness_t (often a test function's local, gone when a failed assertion
 * jumps out of the test): the runtime dirs and the children spawned.  At
 * exit, and on SIGTERM/SIGINT/SIGHUP, the children still ours are killed
 * and the dirs removed: a setup that failed before its teardown could run,
 * or a test that failed with the harness on its stack, left
 * /tmp/thothd-test-* dirs behind.  ctest's TIMEOUT kill is SIGKILL, which
 * nothing here sees: make test's stage guard (tests/common/clean_stage.py)
 * names and removes what that leaves.
 */
#define HARNESS_MAX_LIVE 64
static char live_dirs[HARNESS_MAX_LIVE][64];
static pid_t live_pids[HARNESS_MAX_LIVE * HARNESS_MAX_CHILDREN];
/* The process that made them: a test's fork()ed child inherits the atexit
 * hook and the signal handlers, and its exit (or a SIGTERM to it) must not
 * remove its parent's runtime dirs from under the parent's thothd. */
static pid_t live_owner;

/* NAME in DIRFD and all below it, with system calls only (no malloc, no
 * stdio: this runs from the SIGTERM handler too, which may have stopped
 * the test inside malloc, and nftw there could deadlock on its lock). */
static void remove_at(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno != EISDIR || depth > 16)
		return;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Entries removed while the directory is read may hide others from
	 * that read: read it again until it held nothing to remove. */
	for (int pass = 0, removed = 1; removed && pass < 8; pass++) {
		removed = 0;
		lseek(fd, 0, SEEK_SET);
		_Alignas(8) char buf[1024];
		long n;
		while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
			for (long off = 0; off < n;) {
				const char *d_name = buf + off + 19;   /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
				unsigned short reclen;
				memcpy(&reclen, buf + off + 16, sizeof reclen);
				off += reclen;
				if (strcmp(d_name, ".") && strcmp(d_name, "..")) {
					remove_at(fd, d_name, depth + 1);
					removed = 1;
				}
			}
	}
	close(fd);
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

static void say(const char *a, const char *b)
{
	if (write(2, a, strlen(a)) < 0 || write(2, b, strlen(b)) < 0 || write(2, "\n", 1) < 0)
		return;
}

static void remove_tree(const char *dir)
{
	if (getenv("THOTH_TEST_KEEP"))
		say("kept ", dir);
	else
		remove_at(AT_FDCWD, dir, 0);
}

static void pid_live(pid_t pid, bool live)
{
	for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++)
		if (live ? live_pids[i] == 0 : live_pids[i] == pid) {
			live_pids[i] = live ? pid : 0;
			return;
		}
}

static void clean_all(void)
{
	if (getpid() != live_owner)
		return;
	for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++) {
		pid_t pid = live_pids[i];
		int status;
		/* Only a child not yet reaped: a reaped one's pid may be another's now. */
		if (pid > 0 && waitpid(pid, &status, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
		live_pids[i] = 0;
	}
	for (int i = 0; i < HARNESS_MAX_LIVE; i++)
		if (live_dirs[i][0]) {
			remove_tree(live_dirs[i]);
			live_dirs[i][0] = 0;
		}
}

/* The process ends here anyway: waitpid, kill, unlinkat are what it needs
 * (all async-signal-safe, remove_at). */
static void clean_on_signal(int signo)
{
	clean_all();
	signal(signo, SIG_DFL);
	raise(signo);
}

int harness_setup(harness_t *h)
{
	static bool hooked;
	memset(h, 0, sizeof *h);
	/* h->dir's 64 bytes leave its sockets' names room in a sun_path; a
	 * longer TMPDIR gets a short folder in /tmp instead (tmpdir.h). */
	if (!test_sock_template(h->dir, sizeof h->dir, "thothd-test"))
		return -1;
	if (live_owner != getpid()) {
		/* This process's first harness: a fork()ed child's copies of its
		 * parent's dirs and children are not its own to remove or kill. */
		memset(live_dirs, 0, sizeof live_dirs);
		memset(live_pids, 0, sizeof live_pids);
		live_owner = getpid();
	}
	int slot = 0;
	while (slot < HARNESS_MAX_LIVE && live_dirs[slot][0])
		slot++;
	if (slot == HARNESS_MAX_LIVE) {
		fprintf(stderr, "harness: %d runtime dirs at once, none torn down\n", HARNESS_MAX_LIVE);
		return -1;
	}
	if (!mkdtemp(h->dir)) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", h->dir, strerror(errno));
		return -1;
	}
	memcpy(live_dirs[slot], h->dir, sizeof h->dir);
	if (!hooked) {
		hooked = true;
		atexit(clean_all);
		signal(SIGTERM, clean_on_signal);
		signal(SIGINT, clean_on_signal);
		signal(SIGHUP, clean_on_signal);
	}
	snprintf(h->log, sizeof h->log, "%s/thothd.log", h->dir);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

void harness_teardown(harness_t *h)
{
	for (int i = 0; i < h->n_children; i++)
		if (h->children[i] > 0)
			harness_kill(h, h->children[i], SIGKILL);
	if (h->thothd > 0)
		harness_kill(h, h->thothd, SIGKILL);
	remove_tree(h->dir);
	for (int i = 0; i < HARNESS_MAX_LIVE; i++)
		if (strcmp(live_dirs[i], h->dir) == 0)
			live_dirs[i][0] = 0;
}

static pid_t spawn(const char *log, const char *const *argv, int out_fd, unsigned long nofile)
{
	pid_t pid = fork();
	if (pid > 0)
		pid_live(pid, true);
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);       /* never outlive a crashed test */
	if (nofile) {
		struct rlimit lim = { nofile, nofile };
		if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
			_exit(126);
	}
	int fd = out_fd >= 0 || !log ? out_fd : open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execv(argv[0], (char *const *)argv);
	_exit(127);
}

static void remember(harness_t *h, pid_t pid)
{
	for (int i = 0; i < h->n_children; i++)
		if (h->children[i] <= 0) {
			h->children[i] = pid;
			return;
		}
	if (h->n_children < HARNESS_MAX_CHILDREN)
		h->children[h->n_children++] = pid;
}

static void forget(harness_t *h, pid_t pid)
{
	for (int i = 0; i < h->n_children; i++)
		if (h->children[i] == pid)
			h->children[i] = 0;
	if (h->thothd == pid)
		h->thothd = 0;
}

pid_t harness_spawn(harness_t *h, const char *log_name, const char *const *argv)
{
	char log[400];
	snprintf(log, sizeof log, "%s/%s.log", h->dir, log_name);
	pid_t pid = spawn(log, argv, -1, 0);
	if (pid > 0)
		remember(h, pid);
	return pid;
}

int harness_kill(harness_t *h, pid_t pid, int signo)
{
	int status = -1;
	if (pid <= 0)
		return -1;
	kill(pid, signo);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid_live(pid, false);
	forget(h, pid);
	return status;
}

typedef struct { harness_t *h; } ready_arg_t;

static bool thothd_answers(void *arg)
{
	harness_t *h = arg;
	thoth_control_t ctl;
	if (harness_connect(h, &ctl))
		return false;
	thoth_daemon_Daemon_status_resp_t st;
	int r = harness_status(&ctl, &st);
	thoth_control_close(&ctl);
	return r == 0;
}

pid_t harness_start_thothd(harness_t *h, const char *const *extra)
{
	const char *argv[24] = { THOTHD_PATH, "--runtime-dir", h->dir, "--log-level", "debug" };
	/* A benchmark may compare another thothd build (bench/locks/
	 * bench_thothd_reads: before/after a change); tests never set it. */
	const char *other = getenv("THOTH_BENCH_THOTHD");
	if (other && *other)
		argv[0] = other;
	int n = 5;
	bool port_given = false;
	for (int i = 0; extra && extra[i] && n < 21; i++) {
		port_given |= strcmp(extra[i], "--http-port") == 0;
		argv[n++] = extra[i];
	}
	/* The dashboard on a port of its own unless the test chose one.  At
	 * thothd's default (9180) it ran only when no other test's thothd
	 * held 9180 at that moment: the same test then had a listener, its
	 * epoll registration and a timer more or fewer, run to run. */
	if (!port_given && !h->thothd_default_port) {
		argv[n++] = "--http-port";
		argv[n++] = "0";
	}
	argv[n] = NULL;
	h->thothd = spawn(h->log, argv, -1, h->thothd_nofile);
	if (h->thothd <= 0)
		return -1;
	if (!harness_wait_until(thothd_answers, h, 5000))
		return -1;
	return h->thothd;
}

int harness_stop_thothd(harness_t *h)
{
	int status = harness_kill(h, h->thothd, SIGTERM);
	h->thothd = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int harness_run(harness_t *h, const char *const *argv, char *out, size_t cap, int *status)
{
	char path[400];
	snprintf(path, sizeof path, "%s/run-output-XXXXXX", h->dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	pid_t pid = spawn(NULL, argv, fd, 0);
	close(fd);
	if (pid < 0)
		return -1;
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
	pid_live(pid, false);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(out, 1, cap - 1, f) : 0;
	out[n] = 0;
	if (f)
		fclose(f);
	unlink(path);
	return 0;
}

int harness_connect(harness_t *h, thoth_control_t *ctl)
{
	return thoth_control_connect(ctl, h->dir, 2000);
}

int harness_resolve(thoth_control_t *ctl, const char *name, uint64_t *lease)
{
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str(name), .min_version = thoth_str(""),
		.prefer = THOTH_COMMON_LOCALITY_NUMA,
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[512];          /* the instance's claims list decodes here */
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_registry_Registry_resolve(&ctl->client, &req, &resp, &arena);
	if (!r && lease)
		*lease = resp.instance.lease;
	return r;
}

int harness_register(thoth_control_t *ctl, const char *name, uint32_t ttl_ms, uint64_t *lease)
{
	return harness_register_at(ctl, name, ttl_ms, "/nowhere.sock", lease);
}

int harness_register_at(thoth_control_t *ctl, const char *name, uint32_t ttl_ms, const char *endpoint,
			uint64_t *lease)
{
	thoth_registry_Registry_register_req_t req = {
		.reg = {
			.name = thoth_str(name), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(endpoint),
				      .locality = THOTH_COMMON_LOCALITY_HOST },
			.ttl_ms = ttl_ms,
		},
	};
	thoth_registry_Registry_register_resp_t resp;
	int r = thoth_registry_Registry_register(&ctl->client, &req, &resp, NULL);
	if (!r && lease)
		*lease = resp.lease;
	return r;
}

int harness_status(thoth_control_t *ctl, thoth_daemon_Daemon_status_resp_t *st)
{
	thoth_daemon_Daemon_status_req_t req = { 0 };
	return thoth_daemon_Daemon_status(&ctl->client, &req, st, NULL);
}

uint32_t harness_remote_code(thoth_control_t *ctl)
{
	return ctl->client.remote_code;
}

bool harness_file_contains(const char *file, const char *needle)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return false;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return strstr(buf, needle) != NULL;
}
