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
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../common/held_child.h"
#include "../common/testutil.h"
#include "pidpin.h"
#include "thothd.h"
#include "../common/pidfd_play.h"

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
	f->c.accept_pidfd = -1;         /* none taken at accept (thothd_client_open's) */
	thothd__peer_pidfd_forget();
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

/* ---- a peer that is another process: its /proc files read pinned -------------------- */

static char listen_name[64];

/* In the child: connected to the test's listener, held until released. */
static bool connect_to_test(void *arg)
{
	(void)arg;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path + 1, listen_name, strlen(listen_name));
	return s >= 0 && connect(s, (struct sockaddr *)&a,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(listen_name))) == 0;
}

typedef struct peer {
	pid_t pid;
	int release;
	thothd_client_t c;
} peer_t;

/* A child connected to us, accepted as thothd accepts: C names it as
 * SO_PEERCRED does. */
static void peer_connect(peer_t *p)
{
	/* A name per connection: the child holds its copy of the listener
	 * (fork), so one left alive by a failed test keeps its name bound. */
	static int n;
	snprintf(listen_name, sizeof listen_name, "thothd-peer-pidfd-%d-%d", (int)getpid(), n++);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	memcpy(a.sun_path + 1, listen_name, strlen(listen_name));
	assert_int_equal(bind(l, (struct sockaddr *)&a,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(listen_name))), 0);
	assert_int_equal(listen(l, 1), 0);
	p->pid = test_held_child(connect_to_test, NULL, &p->release);
	int cfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(cfd >= 0);
	close(l);
	struct ucred cred;
	socklen_t cl = sizeof cred;
	assert_int_equal(getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &cl), 0);
	assert_int_equal(cred.pid, p->pid);
	memset(&p->c, 0, sizeof p->c);
	p->c.fd = cfd;
	p->c.pid = (uint32_t)cred.pid;
	p->c.accept_pidfd = -1;
}

static void peer_end(peer_t *p)
{
	if (p->release >= 0) {
		close(p->release);
		assert_int_equal(waitpid(p->pid, NULL, 0), p->pid);
		p->release = -1;
	}
}

static void peer_close(peer_t *p)
{
	peer_end(p);
	close(p->c.fd);
	if (p->c.accept_pidfd >= 0)
		close(p->c.accept_pidfd);
}

static peer_t *hook_peer;

/* Each test below starts from the real kernel whatever an earlier failed
 * one left set (a failed assertion skips its restoring lines). */
static void real_kernel(void)
{
	pidfd_real_kernel();
	thothd__peer_getsockopt = getsockopt;
	played_errno = 0;
	thothd__peer_pidfd_forget();
}

static void end_hook_peer(uint32_t pid)
{
	assert_int_equal((int)pid, (int)hook_peer->pid);
	peer_end(hook_peer);
}

/* What `thothctl pm` shows as a lease holder's name (pm.c) and what the
 * registry takes as a registrant's executable (handlers.c): read with the
 * peer pinned.  One that exits between the read and the check is ESRCH,
 * nothing read said as its (its number may be another program's by then);
 * no descriptor is left behind. */
static void test_a_peer_that_exits_during_its_proc_read_is_not_read_as_it(void **state)
{
	(void)state;
	real_kernel();
	int before = test_count_fds();
	peer_t p;
	peer_connect(&p);
	char comm[32];
	struct stat st;
	assert_true(thothd__client_proc_read(&p.c, "comm", comm, sizeof comm) > 0);
	assert_int_equal(thothd__client_proc_stat(&p.c, "exe", &st), 0);
	hook_peer = &p;
	thoth__pidpin_after_read = end_hook_peer;
	errno = 0;
	ssize_t n = thothd__client_proc_read(&p.c, "comm", comm, sizeof comm);
	thoth__pidpin_after_read = NULL;
	assert_int_equal(n, -1);
	assert_int_equal(errno, ESRCH);
	assert_string_equal(comm, "");
	/* Gone (reaped) before the read: ESRCH at once, the number unread. */
	errno = 0;
	assert_int_equal(thothd__client_proc_stat(&p.c, "exe", &st), -1);
	assert_int_equal(errno, ESRCH);
	peer_close(&p);
	assert_int_equal(test_count_fds(), before);
}

/* A kernel without SO_PEERPIDFD (played): the peer's pid is pinned as it
 * connects (server.c's accept), and that pin, not the number opened
 * later, is what its reads are checked by: the peer exited and reaped
 * (its number free for another) still answers with its own pidfd, which
 * says it exited.  The old fallback opened the number at read time. */
static void test_without_so_peerpidfd_the_peer_is_pinned_at_accept(void **state)
{
	(void)state;
	real_kernel();
	int before = test_count_fds();
	peer_t p;
	peer_connect(&p);
	thothd__peer_pidfd_forget();
	played_errno = ENOPROTOOPT;
	thothd__peer_getsockopt = older_kernel;
	thothd__client_pin_accepted(&p.c);
	assert_true(p.c.accept_pidfd >= 0);
	peer_end(&p);
	int fd = thothd__client_pidfd(&p.c);
	assert_true(fd >= 0);
	assert_true(thoth__pid_exited(fd));
	close(fd);
	char comm[32];
	errno = 0;
	assert_int_equal(thothd__client_proc_read(&p.c, "comm", comm, sizeof comm), -1);
	assert_int_equal(errno, ESRCH);
	thothd__peer_getsockopt = getsockopt;
	played_errno = 0;
	thothd__peer_pidfd_forget();
	peer_close(&p);
	assert_int_equal(test_count_fds(), before);
}

/* A kernel without SO_PEERPIDFD (played) and a peer whose number named no
 * process when accept tried to pin it (played: pidfd_open says ESRCH).
 * The number, opened at a later read, could only name another process
 * (here the live child plays the one the number went to): the peer is
 * gone for good, nothing read.  The code once opened the number again. */
static void test_a_peer_gone_at_accept_is_never_opened_by_number(void **state)
{
	(void)state;
	real_kernel();
	int before = test_count_fds();
	peer_t p;
	peer_connect(&p);
	played_errno = ENOPROTOOPT;
	thothd__peer_getsockopt = older_kernel;
	pidfd_open_fails(ESRCH);
	thothd__client_pin_accepted(&p.c);
	pidfd_open_real();
	assert_int_equal(p.c.accept_pidfd, -1);
	errno = 0;
	assert_int_equal(thothd__client_pidfd(&p.c), -1);
	assert_int_equal(errno, ESRCH);
	char comm[32];
	errno = 0;
	assert_int_equal(thothd__client_proc_read(&p.c, "comm", comm, sizeof comm), -1);
	assert_int_equal(errno, ESRCH);
	assert_string_equal(comm, "");
	real_kernel();
	peer_close(&p);
	assert_int_equal(test_count_fds(), before);
}

/* A kernel with SO_PEERPIDFD (this one): nothing is pinned at accept (no
 * descriptor per client); the option names the peer when it is read. */
static void test_with_so_peerpidfd_nothing_is_pinned_at_accept(void **state)
{
	(void)state;
	real_kernel();
	peer_t p;
	peer_connect(&p);
	thothd__peer_pidfd_forget();
	thothd__client_pin_accepted(&p.c);
	assert_int_equal(p.c.accept_pidfd, -1);
	peer_close(&p);
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
		cmocka_unit_test(test_a_peer_that_exits_during_its_proc_read_is_not_read_as_it),
		cmocka_unit_test(test_without_so_peerpidfd_the_peer_is_pinned_at_accept),
		cmocka_unit_test(test_a_peer_gone_at_accept_is_never_opened_by_number),
		cmocka_unit_test(test_with_so_peerpidfd_nothing_is_pinned_at_accept),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
