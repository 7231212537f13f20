/*
 * test_chan_bell_probe.c - the doorbell room's probe is retried after a
 * failure (docs/IPC.md, "Edge-triggered doorbells").
 *
 * A client promises one doorbell per sleep only where a socket the size
 * of its own was counted taking CHAN_BELL_ROOM unread one-byte sends
 * (chan_bell_room_sends, a socketpair probe).  A probe that cannot open
 * its socketpair (EMFILE here, from RLIMIT_NOFILE) has counted nothing;
 * the next connect must probe again and promise, where a pthread_once
 * kept "no promise" for the life of the process.  Its own executable:
 * the probe must not have run in this process before.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "chan_proc.h"
#include "chan_shm.h"
#include "chantest.thoth.h"
#include "thoth/channel.h"
#include "chan_call.h"

static chan_proc_env_t env;

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	unsetenv("THOTH_LOOP_BACKEND");
	return chan_env_init(&env);
}

static int teardown(void **state)
{
	(void)state;
	chan_env_fini(&env);
	return 0;
}

static thoth_chan_t *open_chan(void)
{
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info, .wait = THOTH_CHAN_SLEEP,
				    .timeout_ms = 3000 };
	return chan_open(&env, &cfg);
}

/* The probe as a connect runs it, with no fd left to open. */
static unsigned probe_without_fds(void)
{
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	int lowest = dup(0);                    /* the lowest free fd: a limit there leaves none */
	assert_true(lowest >= 0);
	close(lowest);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), -1);   /* the injection holds */
	assert_int_equal(errno, EMFILE);
	unsigned n = chan_bell_room_sends();
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	return n;
}

static void test_a_failed_probe_is_retried_at_the_next_connect(void **state)
{
	(void)state;
	assert_int_equal(chan_service_start(&env, CHAN_SERVICE, "--sleep", NULL), 0);
	assert_int_equal(probe_without_fds(), 0);       /* nothing counted: no promise then */
	thoth_chan_t *ch = open_chan();
	unsigned n = chan_bell_room_sends();
	print_message("one-byte sends counted after the failed probe: %u (room needed %u)\n", n,
		      CHAN_BELL_ROOM);
	/* this kernel's sockets take the room (test_the_doorbell_room_is_counted
	 * counts it by hand): the connect after the failure promises */
	assert_int_equal(thoth_chan__end(ch)->ctl->bell[CHAN_CLIENT], CHAN_BELL_ONCE);
	assert_true(n >= CHAN_BELL_ROOM);
	thoth_chan_close(ch);
	/* counted once: a later failure cannot undo it */
	assert_int_equal(probe_without_fds(), n);
	assert_true(chan_service_stop(&env) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_failed_probe_is_retried_at_the_next_connect, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
