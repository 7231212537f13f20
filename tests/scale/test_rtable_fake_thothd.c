/*
 * test_rtable_fake_thothd.c - thoth_rtable_open against a fake thothd that
 * hands over the wrong descriptor for the resolve table (docs/SCALE.md;
 * docs/RELIABILITY.md, "Channels": every descriptor a peer hands us is
 * hostile).
 *
 * The fake is a forked child listening at thothd.sock in the test's own
 * 0700 runtime dir.  It answers Daemon.timer_page with no page (the loop
 * keeps its grid; or, by case, wrong descriptors with it, an unsealed copy
 * of a real page, or the real page) and Daemon.resolve_table the way the
 * case says: an
 * honest sealed table (the control case), no descriptor, a pipe, a memfd
 * that can still be written through a new mapping, a size that does not
 * match, a layout we do not read, or silence.  Each must give a named
 * error, within the answer timeout, and leave no descriptor behind.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "control_link.h"
#include "fdpass.h"
#include "rtable_shm.h"
#include "timerpage.h"
#include "thoth/idl/daemon.thoth.h"
#include "thoth/rpc.h"
#include "thoth/rtable.h"
#include "testutil.h"

typedef enum { R_GOOD, R_NO_FD, R_PIPE, R_WRITABLE, R_SIZE_MISMATCH, R_BAD_LAYOUT, R_SILENT,
	       R_BAD_TIMER_PAGE, /* an honest table, but a pipe and an unsealed memfd with the window page's answer */
	       R_UNSEALED_TIMER_PAGE, /* an honest table; the window page's answer right (size, layout) but its one
				       * descriptor a copy of a real page in an unsealed memfd */
	       R_REAL_TIMER_PAGE /* an honest table and a real window page (the control: it is taken) */ } rmode_t;

static char dir[256], sock_path[300];
static pid_t fake;



static void answer_table(int sock, uint32_t request_id, rmode_t mode)
{
	rt_writer_t w;
	if (rt_writer_init(&w, 64, NULL, 0))
		_exit(20);
	thoth_daemon_Daemon_resolve_table_resp_t resp = { .size = w.size, .layout = RT_LAYOUT, .buckets = 64 };
	int fd = w.fd, nfds = 1;
	switch (mode) {
	case R_NO_FD:
		nfds = 0;
		break;
	case R_PIPE: {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			_exit(21);
		fd = p[0];
		break;
	}
	case R_WRITABLE: {
		/* The same bytes, sealed against resizing only: whoever holds it
		 * could map it writable and rewrite the table under readers. */
		fd = memfd_create("rtable", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd < 0 || ftruncate(fd, (off_t)w.size) || pwrite(fd, w.base, w.size, 0) != (ssize_t)w.size ||
		    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
			_exit(22);
		break;
	}
	case R_SIZE_MISMATCH:
		resp.size = w.size + 4096;
		break;
	case R_BAD_LAYOUT:
		resp.layout = RT_LAYOUT + 7;
		break;
	default:
		break;
	}
	thoth_msg_header_t meta = { .request_id = request_id };
	uint64_t buf[64];
	size_t len;
	if (thoth_method_encode(&thoth_daemon_Daemon_resolve_table_info, true, &resp, &meta, buf, sizeof buf, &len) ||
	    thoth_fdpass_send(sock, buf, len, &fd, (size_t)nfds) != (ssize_t)len)
		_exit(23);
}

/* One connection: read whole messages, answer the two this test knows. */
static void fake_serve(int sock, rmode_t mode)
{
	uint8_t in[8192];
	size_t have = 0;
	for (;;) {
		ssize_t n = recv(sock, in + have, sizeof in - have, 0);
		if (n <= 0)
			_exit(0);
		have += (size_t)n;
		size_t size = 0;
		while (thoth_wire_msg_size(in, have, sizeof in, &size) == 1 && have >= size) {
			uint32_t method = thoth_le32(in + 12), id = thoth_le32(in + 32);
			if (method == thoth_daemon_Daemon_timer_page_info.ordinal) {
				thoth_daemon_Daemon_timer_page_resp_t tp = { 0 };        /* no page: the grid */
				thoth_msg_header_t meta = { .request_id = id };
				uint64_t out[64];
				size_t len;
				int bad[2] = { -1, -1 }, nbad = 0;
				if (mode == R_BAD_TIMER_PAGE) {
					int p[2];
					if (pipe2(p, O_CLOEXEC))
						_exit(25);
					close(p[1]);
					bad[nbad++] = p[0];
					bad[nbad++] = memfd_create("thoth-timer-page", MFD_CLOEXEC);
					if (bad[1] < 0 || ftruncate(bad[1], 4096))
						_exit(25);
					tp.size = 4096;
				} else if (mode == R_UNSEALED_TIMER_PAGE || mode == R_REAL_TIMER_PAGE) {
					/* A real page (thothd's own code makes it); for
					 * the unsealed case its bytes, magic and all, in
					 * a memfd without a seal: only the seals are wrong. */
					if (thoth__timerpage_create(dir))
						_exit(25);
					bad[nbad++] = thoth__timerpage_fd();
					if (mode == R_UNSEALED_TIMER_PAGE) {
						uint8_t page[THOTH_TIMERPAGE_SIZE];
						int u = memfd_create("thoth-timer-page", MFD_CLOEXEC);
						if (u < 0 || pread(bad[0], page, sizeof page, 0) != (ssize_t)sizeof page ||
						    pwrite(u, page, sizeof page, 0) != (ssize_t)sizeof page)
							_exit(25);
						bad[0] = u;
					}
					tp.size = THOTH_TIMERPAGE_SIZE;
					tp.layout = 1;
				}
				if (thoth_method_encode(&thoth_daemon_Daemon_timer_page_info, true, &tp, &meta, out,
							sizeof out, &len) ||
				    thoth_fdpass_send(sock, out, len, bad, (size_t)nbad) != (ssize_t)len)
					_exit(24);
			} else if (method == thoth_daemon_Daemon_resolve_table_info.ordinal && mode != R_SILENT) {
				answer_table(sock, id, mode);
			}
			memmove(in, in + size, have - size);
			have -= size;
		}
	}
}

static void fake_start(rmode_t mode)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	unlink(sock_path);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 8), 0);
	fake = fork();
	assert_true(fake >= 0);
	if (fake == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			_exit(2);
		fake_serve(sock, mode);
		_exit(0);
	}
	close(lfd);
}

static void fake_stop(void)
{
	if (fake > 0) {
		kill(fake, SIGKILL);
		waitpid(fake, NULL, 0);
	}
	fake = 0;
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	/* $TMPDIR, else /tmp; /tmp too where the socket's path would not
	 * fit a sockaddr_un (108 bytes). */
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp || strlen(tmp) + sizeof "/thoth-rtfake-XXXXXX/thothd.sock" > sizeof(((struct sockaddr_un *)0)->sun_path))
		tmp = "/tmp";
	snprintf(dir, sizeof dir, "%s/thoth-rtfake-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock_path, sizeof sock_path, "%s/thothd.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_stop();
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

static void expect(rmode_t mode, int want, const char *needle, unsigned max_ms)
{
	fake_start(mode);
	int fds0 = test_count_fds();
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	uint64_t t0 = test_now_ns();
	int r = thoth_rtable_open(dir, &t, why, sizeof why);
	unsigned ms = (unsigned)((test_now_ns() - t0) / 1000000u);
	print_message("  %s (%u ms): %s\n", thoth_errname(r), ms, why);
	if (r != want)
		fail_msg("expected %s, got %s: %s", thoth_errname(want), thoth_errname(r), why);
	if (needle && !strstr(why, needle))
		fail_msg("the reason \"%s\" does not say \"%s\"", why, needle);
	if (ms > max_ms)
		fail_msg("took %u ms, more than %u", ms, max_ms);
	if (!r) {
		assert_non_null(t);
		thoth_rtable_close(t);
	} else {
		assert_null(t);
	}
	fake_stop();
	assert_int_equal(test_count_fds(), fds0);
}

static void test_honest_table_opens(void **s) { (void)s; expect(R_GOOD, 0, NULL, 1000); }
static void test_no_descriptor(void **s) { (void)s; expect(R_NO_FD, THOTH_E_PROTOCOL, "not a sealed read-only memfd", 1000); }
static void test_pipe(void **s) { (void)s; expect(R_PIPE, THOTH_E_PROTOCOL, "not a sealed read-only memfd", 1000); }
static void test_writable_memfd(void **s) { (void)s; expect(R_WRITABLE, THOTH_E_PROTOCOL, "not a sealed read-only memfd", 1000); }
static void test_size_mismatch(void **s) { (void)s; expect(R_SIZE_MISMATCH, THOTH_E_PROTOCOL, "not a sealed read-only memfd", 1000); }
static void test_unknown_layout(void **s) { (void)s; expect(R_BAD_LAYOUT, THOTH_E_PROTOCOL, "layout", 1000); }
/* The window page's answer is read on the same connection first: its
 * wrong descriptors are closed (the loop keeps its grid), the table opens. */
static void test_bad_window_page_descriptors_are_closed(void **s) { (void)s; expect(R_BAD_TIMER_PAGE, 0, NULL, 1000); }
/* The unsealed memfd alone (with R_BAD_TIMER_PAGE it is the second
 * descriptor and closed as an extra, unchecked): the answer is right,
 * the page's bytes are right, only its seals are missing.  Not taken:
 * the loop keeps what it had (the grid), the table opens. */
static void test_unsealed_window_page_is_not_taken(void **s)
{
	(void)s;
	timerpage_t *before = thoth__timerpage_current();
	expect(R_UNSEALED_TIMER_PAGE, 0, NULL, 1000);
	assert_ptr_equal(thoth__timerpage_current(), before);
}
/* The control: the same answer with the real, sealed page is taken (so
 * the case above can fail).  Last: a page taken stays for the process. */
static void test_real_window_page_is_taken(void **s)
{
	(void)s;
	assert_null(thoth__timerpage_current());
	expect(R_REAL_TIMER_PAGE, 0, NULL, 1000);
	assert_non_null(thoth__timerpage_current());
}
static void test_silence(void **s) { (void)s; expect(R_SILENT, THOTH_E_TIMEDOUT, "did not answer", 4000); }

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_honest_table_opens),
		T(test_no_descriptor),
		T(test_pipe),
		T(test_writable_memfd),
		T(test_size_mismatch),
		T(test_unknown_layout),
		T(test_bad_window_page_descriptors_are_closed),
		T(test_silence),
		T(test_unsealed_window_page_is_not_taken),
		T(test_real_window_page_is_taken),     /* last: the page stays taken */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
