/*
 * test_thothd_peer_pidfd.c - the pidfd thothd's tracer takes of a
 * connected peer (trace.c, thothd__client_pidfd), on every kernel answer
 * to SO_PEERPIDFD.  This kernel (6.18) gives a live peer's pidfd; the
 * answers of older ones are played through the getsockopt seam:
 *   - ENOPROTOOPT (before 6.5): no such option, the pid number is opened;
 *   - EINVAL (6.5 to ~6.15, a reaped peer) and ESRCH: the peer is gone, its
 *     number may be another process's now: no pidfd.  The code once fell
 *     back to the number on any error;
 *   - EMFILE, ENFILE, ENOMEM, ENODATA: no pidfd either, but thothd short of
 *     resources is said in a warning (it was taken silently for a peer
 *     gone), and ESRCH says nothing.
 * The peer of the socket pair is this process, so a pidfd opened from the
 * number is ours and can be checked as such.
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "thothd.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static int played_errno;                /* 0: the real getsockopt */
static int asked;                       /* SO_PEERPIDFD questions seen */

static int older_kernel(int fd, int level, int name, void *value, socklen_t *len)
{
	if (level == SOL_SOCKET && name == SO_PEERPIDFD) {
		asked++;
		if (played_errno) {
			errno = played_errno;
			return -1;
		}
	}
	return getsockopt(fd, level, name, value, len);
}

typedef struct fixture {
	int pair[2];
	thothd_client_t c;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->pair), 0);
	f->c.fd = f->pair[0];
	f->c.pid = (uint32_t)getpid();  /* what SO_PEERCRED says of the pair */
	played_errno = 0;
	asked = 0;
	thothd__peer_getsockopt = older_kernel;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	close(f->pair[0]);
	close(f->pair[1]);
	free(f);
	thothd__peer_getsockopt = getsockopt;
	return 0;
}

/* FD is a pidfd of this process ("Pid:" in its fdinfo). */
static bool is_our_pidfd(int fd)
{
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	FILE *in = fopen(path, "r");
	bool ours = false;
	while (in && fgets(line, sizeof line, in))
		if (strncmp(line, "Pid:", 4) == 0)
			ours = atoi(line + 4) == (int)getpid();
	if (in)
		fclose(in);
	return ours;
}

static void test_a_live_peer_gives_its_pidfd(void **state)
{
	fixture_t *f = *state;
	int fd = thothd__client_pidfd(&f->c);
	assert_true(fd >= 0);
	assert_int_equal(asked, 1);
	assert_true(is_our_pidfd(fd));
	close(fd);
}

static void test_a_kernel_without_the_option_falls_back_to_the_number(void **state)
{
	fixture_t *f = *state;
	played_errno = ENOPROTOOPT;
	int fd = thothd__client_pidfd(&f->c);
	assert_int_equal(asked, 1);
	assert_true(fd >= 0);
	assert_true(is_our_pidfd(fd));
	close(fd);
}

static void test_einval_of_a_reaped_peer_is_a_peer_gone_not_a_number(void **state)
{
	fixture_t *f = *state;
	played_errno = EINVAL;
	assert_int_equal(thothd__client_pidfd(&f->c), -1);
	assert_int_equal(asked, 1);
}

static void test_esrch_is_a_peer_gone(void **state)
{
	fixture_t *f = *state;
	played_errno = ESRCH;
	assert_int_equal(thothd__client_pidfd(&f->c), -1);
}

/* thothd__client_pidfd's answer to ERRNO played, and what it wrote on
 * stderr into OUT. */
static int pidfd_logged(fixture_t *f, int errno_played, char *out, size_t cap)
{
	played_errno = errno_played;
	fflush(stderr);
	int saved = dup(2);
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	assert_int_equal(dup2(fileno(tmp), 2), 2);
	int fd = thothd__client_pidfd(&f->c);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, cap - 1, tmp);
	out[n] = 0;
	fclose(tmp);
	return fd;
}

static void test_resource_pressure_is_warned_not_taken_silently_for_a_peer_gone(void **state)
{
	fixture_t *f = *state;
	const int errs[] = { EMFILE, ENFILE, ENOMEM, ENODATA };
	char out[1024], want[200];
	for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
		assert_int_equal(pidfd_logged(f, errs[i], out, sizeof out), -1);
		snprintf(want, sizeof want, "warn: trace: no pidfd of pid %u (SO_PEERPIDFD: %s)", f->c.pid,
			 strerror(errs[i]));
		if (!strstr(out, want))
			fail_msg("%s: no warning: \"%s\"", strerror(errs[i]), out);
	}
	/* A peer gone says nothing. */
	assert_int_equal(pidfd_logged(f, ESRCH, out, sizeof out), -1);
	assert_string_equal(out, "");
}

static void test_an_in_process_client_opens_the_number(void **state)
{
	fixture_t *f = *state;
	f->c.fd = -1;
	int fd = thothd__client_pidfd(&f->c);
	assert_int_equal(asked, 0);
	assert_true(fd >= 0);
	assert_true(is_our_pidfd(fd));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_live_peer_gives_its_pidfd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_kernel_without_the_option_falls_back_to_the_number, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_einval_of_a_reaped_peer_is_a_peer_gone_not_a_number, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_esrch_is_a_peer_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resource_pressure_is_warned_not_taken_silently_for_a_peer_gone,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_in_process_client_opens_the_number, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
