/*
 * test_client_unixsock.c - the one Unix-socket helper (kernel/ipc/unixsock.h):
 * listening sockets get an explicit mode whatever the umask, stale sockets
 * are replaced and live ones are not, and a connecting client refuses a
 * runtime dir or a listener that is not its own before sending anything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_squatter.h"
#include "thoth/error.h"
#include "unixsock.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

typedef struct fixture {
	char dir[64];
	char path[128];
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	/* dir's 64 bytes leave its sockets' names room (tmpdir.h) */
	if (!test_sock_template(f->dir, sizeof f->dir, "thoth-client-test"))
		return -1;
	if (!mkdtemp(f->dir)) {
		fprintf(stderr, "setup: mkdtemp %s: %s\n", f->dir, strerror(errno));
		return -1;
	}
	snprintf(f->path, sizeof f->path, "%s/s.sock", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	return (unsigned)(st.st_mode & 0777);
}

static void test_listen_mode_ignores_umask(void **state)
{
	fixture_t *f = *state;
	mode_t old = umask(0);          /* the case: umask 000 */
	int fd;
	char why[200];
	assert_int_equal(thoth__unix_listen(f->path, 0, 0, &fd, why, sizeof why), 0);
	assert_int_equal(mode_of(f->path), 0600);
	close(fd);
	unlink(f->path);
	assert_int_equal(thoth__unix_listen(f->path, 0660, 0, &fd, why, sizeof why), 0);
	assert_int_equal(mode_of(f->path), 0660);
	close(fd);
	umask(old);
}

static void test_listen_replaces_stale_but_not_live_socket(void **state)
{
	fixture_t *f = *state;
	int a, b;
	char why[200];
	assert_int_equal(thoth__unix_listen(f->path, 0, 0, &a, why, sizeof why), 0);
	assert_int_equal(thoth__unix_listen(f->path, 0, 0, &b, why, sizeof why), THOTH_E_EXISTS);
	assert_int_equal(thoth__unix_listen(f->path, 0, THOTH__UNIX_REPLACE_STALE, &b, why, sizeof why),
			 THOTH_E_BUSY);
	assert_non_null(strstr(why, "already listens"));
	close(a);                       /* the file stays: a dead service's socket */
	assert_int_equal(thoth__unix_listen(f->path, 0, THOTH__UNIX_REPLACE_STALE, &b, why, sizeof why),
			 0);
	int c;
	assert_int_equal(thoth__unix_connect(f->path, 0, 1000, &c, why, sizeof why), 0);
	close(c);
	close(b);
}

static void test_listen_never_removes_a_file_that_is_not_a_socket(void **state)
{
	fixture_t *f = *state;
	FILE *fp = fopen(f->path, "w");
	assert_non_null(fp);
	fclose(fp);
	int fd;
	char why[200];
	assert_int_equal(thoth__unix_listen(f->path, 0, THOTH__UNIX_REPLACE, &fd, why, sizeof why),
			 THOTH_E_EXISTS);
	assert_non_null(strstr(why, "not a socket"));
	struct stat st;
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_connect_to_nothing_is_not_running(void **state)
{
	fixture_t *f = *state;
	int fd;
	char why[200];
	assert_int_equal(thoth__unix_connect(f->path, THOTH__UNIX_CHECK_DIR, 1000, &fd, why, sizeof why),
			 THOTH_E_NOT_RUNNING);
	char gone[200];
	snprintf(gone, sizeof gone, "%s/nodir/s.sock", f->dir);
	assert_int_equal(thoth__unix_connect(gone, THOTH__UNIX_CHECK_DIR, 1000, &fd, why, sizeof why),
			 THOTH_E_NOT_RUNNING);
}

/* A dir that fails the rule: nothing may reach the listener in it. */
static void expect_dir_refused(const char *sock_path, const char *connect_path, const char *reason)
{
	squatter_t sq;
	assert_int_equal(squatter_start(&sq, sock_path, geteuid()), 0);
	int fd;
	char why[300];
	assert_int_equal(thoth__unix_connect(connect_path, THOTH__UNIX_CHECK_DIR, 1000, &fd, why,
					     sizeof why), THOTH_E_PERM);
	assert_non_null(strstr(why, reason));
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(conns, 0);     /* refused before connect() */
	squatter_stop(&sq);
}

static void test_connect_refuses_group_or_world_accessible_dir(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(chmod(f->dir, 0755), 0);
	expect_dir_refused(f->path, f->path, "mode 755");
	assert_int_equal(chmod(f->dir, 0777), 0);
	expect_dir_refused(f->path, f->path, "mode 777");
}

static void test_connect_refuses_symlinked_dir(void **state)
{
	fixture_t *f = *state;
	char link[160], via[200];
	snprintf(link, sizeof link, "%s.link", f->dir);
	unlink(link);
	assert_int_equal(symlink(f->dir, link), 0);
	snprintf(via, sizeof via, "%s/s.sock", link);
	expect_dir_refused(f->path, via, "symlink");
	unlink(link);
}

static void test_connect_refuses_dir_of_another_owner(void **state)
{
	fixture_t *f = *state;
	if (!squatter_can_setuid())
		skip_because("needs root to act as another uid (squatter_can_setuid)");
	assert_int_equal(chown(f->dir, 65534, 65534), 0);
	expect_dir_refused(f->path, f->path, "owned by uid 65534");
}

static void test_connect_refuses_listener_of_another_uid(void **state)
{
	fixture_t *f = *state;
	if (!squatter_can_setuid())
		skip_because("needs root to act as another uid (squatter_can_setuid)");
	squatter_t sq;
	assert_int_equal(squatter_start(&sq, f->path, 65534), 0);
	int fd;
	char why[300];
	assert_int_equal(thoth__unix_connect(f->path, THOTH__UNIX_CHECK_DIR, 1000, &fd, why, sizeof why),
			 THOTH_E_PERM);
	assert_non_null(strstr(why, "uid 65534"));
	assert_int_equal(thoth__unix_connect(f->path, THOTH__UNIX_NONBLOCK, 0, &fd, why, sizeof why),
			 THOTH_E_PERM);
	int conns;
	long bytes, fds;
	assert_true(squatter_drain(&sq, 5000, &conns, &bytes, &fds));
	assert_int_equal(conns, 2);     /* connected, checked, hung up */
	assert_int_equal(bytes, 0);
	assert_int_equal(fds, 0);
	/* A caller with its own policy may accept any uid. */
	assert_int_equal(thoth__unix_connect(f->path, THOTH__UNIX_ANY_PEER, 1000, &fd, why, sizeof why),
			 0);
	uid_t uid;
	assert_int_equal(thoth__unix_peer(fd, &uid, NULL), 0);
	assert_int_equal(uid, 65534);
	close(fd);
	squatter_stop(&sq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen_mode_ignores_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listen_replaces_stale_but_not_live_socket, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_listen_never_removes_a_file_that_is_not_a_socket,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_to_nothing_is_not_running, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refuses_group_or_world_accessible_dir, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_connect_refuses_symlinked_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refuses_dir_of_another_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refuses_listener_of_another_uid, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
