/*
 * test_thothd_endpoints.c - what thothd does about the registrations of
 * processes (issue 11, items 6 and 12), with real processes:
 *   - a killed service's endpoint socket is removed (20 kill -9 in a row),
 *     nothing is left in the runtime dir, and no process of the test uses
 *     /dev/shm;
 *   - only a socket owned by the dead process's uid, directly in the
 *     runtime dir, is removed: a symlink, a regular file, a socket elsewhere
 *     stay;
 *   - a name with live instances is refused to another executable, given
 *     to another instance of the same executable, and free once they died;
 *   - the pid in a registration is the registering process's (SO_PEERCRED),
 *     whatever the client claims;
 *   - thothctl services lists more registrations than one reply can hold.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "devshm.h"
#include "harness.h"

typedef struct fixture {
	harness_t h;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	if (!f || harness_setup(&f->h))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	harness_teardown(&f->h);
	free(f);
	return 0;
}

static bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static bool path_gone(void *arg)
{
	return !path_exists(arg);
}

/* Sockets in DIR other than thothd's own. */
static int stray_sockets(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".sock") == 0 &&
		    strcmp(e->d_name, "thothd.sock") != 0)
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

typedef struct resolvable {
	harness_t *h;
	const char *name;
	uint32_t pid;
} resolvable_t;

/* NAME resolves to an instance of process PID (0: any). */
static bool resolves(void *arg)
{
	resolvable_t *r = arg;
	thoth_control_t ctl;
	if (harness_connect(r->h, &ctl))
		return false;
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str(r->name), .min_version = thoth_str(""),
		.prefer = THOTH_COMMON_LOCALITY_NUMA,
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[512];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int rc = thoth_registry_Registry_resolve(&ctl.client, &req, &resp, &arena);
	bool ok = rc == 0 && (!r->pid || resp.instance.registration.endpoint.pid == r->pid);
	thoth_control_close(&ctl);
	return ok;
}

static pid_t start_echo(harness_t *h, const char *name)
{
	const char *argv[] = { ECHO_PATH, "--runtime-dir", h->dir, "--name", name, NULL };
	return harness_spawn(h, name, argv);
}

static void test_killed_services_leave_no_socket(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	assert_true(harness_start_thothd(h, NULL) > 0);
	for (int i = 0; i < 20; i++) {
		pid_t pid = start_echo(h, "echo");
		assert_true(pid > 0);
		resolvable_t r = { h, "echo", (uint32_t)pid };
		assert_true(harness_wait_until(resolves, &r, 10000));
		char sock[400];
		snprintf(sock, sizeof sock, "%s/echo-%d.sock", h->dir, (int)pid);
		assert_true(path_exists(sock));
		/* memfd channels and trace buffers never touch /dev/shm (looked
		 * at in the live, registered service: its entries would be
		 * left behind by the kill). */
		assert_int_equal(devshm_uses(pid), 0);
		harness_kill(h, pid, SIGKILL);
		assert_true(harness_wait_until(path_gone, sock, 5000));
	}
	assert_int_equal(stray_sockets(h->dir), 0);
	assert_true(harness_file_contains(h->log, "died without removing it"));
	assert_int_equal(devshm_uses(h->thothd), 0);
	assert_int_equal(devshm_uses(0), 0);
}

/* Register NAME at ENDPOINT from a child process that then exits. */
static void register_and_exit(harness_t *h, const char *name, const char *endpoint)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		thoth_control_t ctl;
		if (harness_connect(h, &ctl))
			_exit(1);
		thoth_registry_Registry_register_req_t req = { .reg = {
			.name = thoth_str(name), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(endpoint),
				      .locality = THOTH_COMMON_LOCALITY_HOST },
			.ttl_ms = 60000,
		} };
		thoth_registry_Registry_register_resp_t resp;
		_exit(thoth_registry_Registry_register(&ctl.client, &req, &resp, NULL) ? 2 : 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int bind_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	assert_true(n > 0 && (size_t)n < sizeof sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

typedef struct logged {
	harness_t *h;
	const char *needle;
} logged_t;

static bool log_has(void *arg)
{
	logged_t *l = arg;
	return harness_file_contains(l->h->log, l->needle);
}

static void test_only_a_dead_owners_socket_in_the_runtime_dir_is_removed(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	assert_true(harness_start_thothd(h, NULL) > 0);
	char victim[400], link[400], file[400], outside[400], sock[400];
	snprintf(victim, sizeof victim, "%s.victim", h->dir);
	snprintf(link, sizeof link, "%s/link.sock", h->dir);
	snprintf(file, sizeof file, "%s/file.sock", h->dir);
	snprintf(outside, sizeof outside, "%s.outside.sock", h->dir);
	snprintf(sock, sizeof sock, "%s/real.sock", h->dir);
	int vfd = open(victim, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(vfd >= 0);
	close(vfd);
	assert_int_equal(symlink(victim, link), 0);
	int ffd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(ffd >= 0);
	close(ffd);
	int s1 = bind_socket(outside), s2 = bind_socket(sock);

	register_and_exit(h, "link", link);
	register_and_exit(h, "file", file);
	register_and_exit(h, "outside", outside);
	register_and_exit(h, "real", sock);
	/* The real one goes: the others were looked at by then. */
	assert_true(harness_wait_until(path_gone, sock, 5000));
	logged_t l = { h, "file.sock of dead pid" };
	assert_true(harness_wait_until(log_has, &l, 5000));
	assert_true(path_exists(link));
	assert_true(path_exists(victim));
	assert_true(path_exists(file));
	assert_true(path_exists(outside));
	close(s1);
	close(s2);
	unlink(outside);
	unlink(victim);
}

static void test_a_live_name_is_refused_to_another_executable(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	assert_true(harness_start_thothd(h, NULL) > 0);
	pid_t first = start_echo(h, "echo");
	resolvable_t r = { h, "echo", (uint32_t)first };
	assert_true(harness_wait_until(resolves, &r, 10000));

	/* This test program is another executable: refused, with the reason. */
	thoth_control_t ctl;
	assert_int_equal(harness_connect(h, &ctl), 0);
	uint64_t lease;
	assert_int_not_equal(harness_register(&ctl, "echo", 60000, &lease), 0);
	assert_int_equal(harness_remote_code(&ctl), THOTH_REGISTRY_ERR_NOT_OWNER);
	assert_true(harness_file_contains(h->log, "is held by another executable"));

	/* A second instance of the same executable is welcome. */
	pid_t second = start_echo(h, "echo");
	resolvable_t r2 = { h, "echo", (uint32_t)second };
	assert_true(harness_wait_until(resolves, &r2, 10000));

	/* Once every instance is gone, the name is free. */
	harness_kill(h, first, SIGKILL);
	harness_kill(h, second, SIGKILL);
	uint64_t end = harness_now_ms() + 5000;
	int rc;
	while ((rc = harness_register(&ctl, "echo", 60000, &lease)) != 0 && harness_now_ms() < end)
		;
	assert_int_equal(rc, 0);
	thoth_control_close(&ctl);
}

static void test_registered_pid_is_the_peers_not_the_claimed_one(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	assert_true(harness_start_thothd(h, NULL) > 0);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(h, &ctl), 0);
	thoth_registry_Registry_register_req_t req = { .reg = {
		.name = thoth_str("liar"), .version = thoth_str("1.0.0"),
		.endpoint = { .addr = thoth_str("/nowhere.sock"), .pid = 1,
			      .locality = THOTH_COMMON_LOCALITY_HOST },
		.ttl_ms = 60000,
	} };
	thoth_registry_Registry_register_resp_t resp;
	assert_int_equal(thoth_registry_Registry_register(&ctl.client, &req, &resp, NULL), 0);
	resolvable_t r = { h, "liar", (uint32_t)getpid() };
	assert_true(resolves(&r));
	thoth_control_close(&ctl);
}

/* More registrations than one 8 MiB reply holds: list refuses with a
 * reason (instead of a reply that gets the caller dropped), thothctl
 * services follows list_page and shows every one, as JSON and as a table. */
static void test_services_lists_more_than_one_reply_holds(void **state)
{
	fixture_t *f = *state;
	harness_t *h = &f->h;
	const char *extra[] = { "--max-per-client", "20000", "--log-level", "warn", NULL };
	assert_true(harness_start_thothd(h, extra) > 0);
	thoth_control_t ctl;
	assert_int_equal(harness_connect(h, &ctl), 0);
	enum { N = 9000 };
	static char addr[1001];
	memset(addr, 'a', 1000);
	addr[0] = '/';
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "bulk%d", i % 97);
		snprintf(addr + 1, 12, "%010d", i);
		addr[11] = 'a';
		thoth_registry_Registry_register_req_t req = { .reg = {
			.name = thoth_str(name), .version = thoth_str("1.0.0"),
			.endpoint = { .addr = thoth_str(addr),
				      .locality = THOTH_COMMON_LOCALITY_HOST },
			.ttl_ms = 3600000,
		} };
		thoth_registry_Registry_register_resp_t resp;
		assert_int_equal(thoth_registry_Registry_register(&ctl.client, &req, &resp, NULL), 0);
	}
	/* The single reply would be ~9 MiB: refused, with the way out. */
	thoth_registry_Registry_list_req_t lreq = { .prefix = thoth_str("") };
	thoth_registry_Registry_list_resp_t lresp;
	static uint64_t scratch[4 << 20];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	assert_int_not_equal(thoth_registry_Registry_list(&ctl.client, &lreq, &lresp, &arena), 0);
	assert_non_null(strstr(ctl.client.remote_message, "use list_page"));

	size_t cap = 64u << 20;
	char *out = malloc(cap);
	assert_non_null(out);
	int status;
	const char *json_argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "--json", "services",
				    NULL };
	assert_int_equal(harness_run(h, json_argv, out, cap, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	size_t lines = 0;
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, N);
	const char *table_argv[] = { THOTHCTL_PATH, "--runtime-dir", h->dir, "services", NULL };
	assert_int_equal(harness_run(h, table_argv, out, cap, &status), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	lines = 0;
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, N + 1);          /* and the header */
	free(out);
	thoth_control_close(&ctl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_killed_services_leave_no_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_only_a_dead_owners_socket_in_the_runtime_dir_is_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_live_name_is_refused_to_another_executable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_registered_pid_is_the_peers_not_the_claimed_one,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_services_lists_more_than_one_reply_holds, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
