/*
 * test_thothd_trace_refusals.c - a running thothd refuses a hostile trace
 * buffer by name.  A client hands thothd, as TraceControl.attach does
 * (service.c, thoth__trace_buffer_hand_over), a pipe, a socket, a file on
 * disk, an unsealed memfd, an empty sealed memfd and a sealed memfd of
 * garbage; thothd must log each refusal with the reader's reason
 * (thoth__trace_reader_open_why) and keep answering.  An honest buffer
 * (thoth_trace_init's own) sent after them is attached: the checks do
 * not refuse a real producer.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "../common/sealed_memfd.h"
#include "thoth/contract.h"
#include "thoth/rpc.h"
#include "thoth/stream.h"
#include "thoth/trace.h"
#include "trace.thoth.h"

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

/* FD handed to thothd on C's connection as our trace buffer (FD closed). */
static void hand_over(thoth_control_t *c, int fd)
{
	thoth_trace_TraceControl_attach_req_t req = { .pid = (uint32_t)getpid() };
	uint64_t buf[16];
	size_t len;
	assert_int_equal(thoth_method_encode(&thoth_trace_TraceControl_attach_info, false, &req, NULL,
					     buf, sizeof buf, &len), 0);
	assert_int_equal(thoth_stream_send_fd(c->sock.fd, buf, len, fd, c->sock.reader.service_id), 0);
	close(fd);
}

typedef struct {
	const char *log, *needle;
} logged_t;

static bool logged(void *arg)
{
	const logged_t *l = arg;
	return harness_file_contains(l->log, l->needle);
}

/* thothd's log says "trace buffer refused: not a valid trace buffer: " and NEEDLE. */
static void refused(harness_t *h, thoth_control_t *c, int fd, const char *needle)
{
	char want[256];
	snprintf(want, sizeof want, "trace buffer refused: not a valid trace buffer: %s", needle);
	hand_over(c, fd);
	logged_t l = { h->log, want };
	if (!harness_wait_until(logged, &l, 10000))
		fail_msg("thothd did not log \"%s\"", want);
	/* and still answers */
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(c, &st), 0);
}

/* How many refusals thothd logged. */
static int refusals(const char *log)
{
	FILE *f = fopen(log, "r");
	assert_non_null(f);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof line, f))
		n += strstr(line, "trace buffer refused") != NULL;
	fclose(f);
	return n;
}

static int sealed_memfd(const void *bytes, size_t len, size_t size, int seals)
{
	return test_sealed_memfd("hostile-trace", bytes, len, size, seals);
}

static void test_hostile_trace_buffers_are_refused_by_name_and_an_honest_one_taken(void **state)
{
	harness_t *h = *state;
	assert_true(harness_start_thothd(h, NULL) > 0);
	thoth_control_t c;
	assert_int_equal(harness_connect(h, &c), 0);

	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[1]);
	refused(h, &c, p[0], "a pipe or FIFO, not a memfd");

	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	refused(h, &c, sv[0], "a socket, not a memfd");

	char path[128];
	snprintf(path, sizeof path, "%s/on-disk", h->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	refused(h, &c, fd, "a regular file that takes no seals");

	refused(h, &c, sealed_memfd(NULL, 0, 1 << 20, 0), "not sealed against shrinking");
	refused(h, &c, sealed_memfd(NULL, 0, 0, F_SEAL_SHRINK), "0 bytes: shorter than");
	static const char garbage[4096] = "not a trace buffer";
	refused(h, &c, sealed_memfd(garbage, sizeof garbage, 1 << 20, F_SEAL_SHRINK | F_SEAL_GROW),
		"magic 0x20746f6e is not a trace buffer's");
	assert_int_equal(refusals(h->log), 6);
	thoth_control_close(&c);

	/* A real producer's buffer, after all that, is taken. */
	thoth_trace_config_t cfg = { .ring_count = 2, .ring_records = 64 };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	assert_int_equal(thoth_trace_export_fd(&fd), 0);
	assert_int_equal(harness_connect(h, &c), 0);
	hand_over(&c, dup(fd));
	thoth_daemon_Daemon_status_resp_t st;
	/* thothd handles the attach before the next request on the connection. */
	assert_int_equal(harness_status(&c, &st), 0);
	assert_int_equal(refusals(h->log), 6);
	thoth_control_close(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_hostile_trace_buffers_are_refused_by_name_and_an_honest_one_taken, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
