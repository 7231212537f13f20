/*
 * test_chan_socket_policy.c - who may open a channel (issue 11, item 5).
 *
 * The socket file gets an explicit mode whatever the umask (0600 by
 * default), and the service checks the connecting process's credentials
 * (SO_PEERCRED, SO_PEERGROUPS) against the policy it declares, so a mode
 * opened too wide still admits nobody else.  The cases with another user
 * need root to become that user; they are skipped otherwise.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"
#include "../common/skip.h"

#define OTHER_UID 65534u        /* nobody */
#define OTHER_GID 65534u
#define SHARED_GID 23456u       /* a group the service admits */

static chan_proc_env_t env;

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	if (chan_env_init(&env))
		return -1;
	return chmod(env.dir, 0711);    /* others may reach the socket; its own mode decides */
}

static int teardown(void **state)
{
	chan_env_fini(&env);
	return 0;
}

/* In a child running as UID/GID (root only): open a channel and make a call.
 * Returns the thoth error code (0 = served); the reason goes to stderr. */
static int connect_as(uid_t uid, gid_t gid, char *why_out, size_t why_len)
{
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
			_exit(120);
		thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .timeout_ms = 2000 };
		thoth_chan_t *ch = NULL;
		char why[300] = "";
		int r = thoth_chan_connect(env.sock, &cfg, &ch, why, sizeof why);
		if (!r) {
			thoth_chantest_Test_notes_req_t rq = { 0 };
			thoth_chantest_Test_notes_resp_t rs;
			uint64_t ab[64];
			thoth_arena_t a;
			thoth_arena_init(&a, ab, sizeof ab);
			r = thoth_chantest_Test_notes(thoth_chan_client(ch), &rq, &rs, &a);
			thoth_chan_close(ch);
		}
		ssize_t w = write(pipefd[1], why, strlen(why) + 1);
		(void)w;
		_exit(r < 0 ? -r : 0);
	}
	close(pipefd[1]);
	ssize_t n = read(pipefd[0], why_out, why_len - 1);
	why_out[n > 0 ? n : 0] = 0;
	close(pipefd[0]);
	int st = chan_wait_exit(pid, 10000);
	assert_true(st >= 0 && WIFEXITED(st));
	assert_int_not_equal(WEXITSTATUS(st), 120);
	return -WEXITSTATUS(st);
}

static void need_root(void)
{
	if (geteuid() != 0)
		skip_because("needs root (another uid reaches the socket)");
}

static void test_socket_is_0600_whatever_the_umask(void **state)
{
	mode_t old = umask(0);
	int r = chan_service_start(&env, CHAN_SERVICE, NULL);
	umask(old);
	assert_int_equal(r, 0);
	struct stat st;
	assert_int_equal(stat(env.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(chan_service_stop(&env) >= 0);
}

static void test_other_user_cannot_reach_the_default_socket(void **state)
{
	need_root();
	mode_t old = umask(0);
	int r = chan_service_start(&env, CHAN_SERVICE, NULL);
	umask(old);
	assert_int_equal(r, 0);
	char why[300];
	assert_int_equal(connect_as(OTHER_UID, OTHER_GID, why, sizeof why), THOTH_E_PERM);
	assert_true(chan_service_stop(&env) >= 0);
}

/* The mode opened to everyone by mistake: the credentials check still
 * refuses, with a reason. */
static void test_service_refuses_another_uid_even_through_an_open_mode(void **state)
{
	need_root();
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--socket-mode", "0666", NULL), 0);
	char why[300];
	assert_int_equal(connect_as(OTHER_UID, OTHER_GID, why, sizeof why), THOTH_E_PERM);
	if (!strstr(why, "its own uid only"))
		fail_msg("refusal reason: %s", why);
	assert_true(chan_service_stop(&env) >= 0);
}

static void test_group_policy_admits_members_only(void **state)
{
	need_root();
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--peers", "group", "--group", "23456", NULL), 0);
	struct stat st;
	assert_int_equal(stat(env.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, SHARED_GID);
	char why[300];
	assert_int_equal(connect_as(OTHER_UID, SHARED_GID, why, sizeof why), 0);
	assert_int_equal(connect_as(OTHER_UID, OTHER_GID, why, sizeof why), THOTH_E_PERM);
	assert_true(chan_service_stop(&env) >= 0);
}

static void test_any_policy_admits_every_user(void **state)
{
	need_root();
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--peers", "any", NULL), 0);
	struct stat st;
	assert_int_equal(stat(env.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	char why[300];
	assert_int_equal(connect_as(OTHER_UID, OTHER_GID, why, sizeof why), 0);
	assert_true(chan_service_stop(&env) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_is_0600_whatever_the_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_user_cannot_reach_the_default_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_refuses_another_uid_even_through_an_open_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_policy_admits_members_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_any_policy_admits_every_user, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
