/*
 * test_serve_per_cpu.c - thoth_serve_per_cpu (SCHED-4, thread per core):
 * a real service process runs one loop per CPU, each thread pinned to its
 * CPU, and every client channel is served by the loop on the client's CPU.
 * Clients in separate processes, each pinned to one CPU, call echo; the
 * service answers with the CPU its handler ran on: it must be the
 * client's, for every call of every client, on every CPU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../common/serve_echo.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

enum { CALLS = 50, MAX_CPUS = 64 };

static char dir[64], sock_path[128];

/* The answer says where the handler ran. */
static int on_echo(void *self, const thoth_chantest_Test_echo_req_t *req,
		   thoth_chantest_Test_echo_resp_t *resp, thoth_arena_t *arena)
{
	uint8_t *b = thoth_arena_alloc(arena, 1);
	if (!b)
		return THOTH_E_NOMEM;
	b[0] = (uint8_t)sched_getcpu();
	resp->data.ptr = b;
	resp->data.len = 1;
	return 0;
}

static const thoth_chantest_Test_handlers_t handlers = { .echo = on_echo };

static pid_t start_service(void)
{
	unlink(sock_path);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(test_serve_echo_per_cpu(sock_path, &handlers) ? 1 : 0);
	for (int i = 0; i < 400 && access(sock_path, F_OK) != 0; i++)
		usleep(5000);
	assert_int_equal(access(sock_path, F_OK), 0);
	return pid;
}

typedef struct result {
	int calls_ok, on_own_cpu;
} result_t;

static void client(int cpu, result_t *out)
{
	/* Run on it before connecting: the service reads where we last ran. */
	thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpu);
	for (int i = 0; i < CALLS; i++) {
		uint8_t where;
		if (test_echo_call(ch, 0, &where) == 1) {
			out->calls_ok++;
			out->on_own_cpu += where == cpu;
		}
	}
	thoth_chan_close(ch);
	_exit(0);
}

static void test_each_channel_is_served_on_its_clients_cpu(void **state)
{
	int cpus[MAX_CPUS], n = test_allowed_cpus(cpus, MAX_CPUS);
	if (n < 2)
		skip_because("fewer than 2 CPUs allowed");
	pid_t svc = start_service();
	/* Two clients per CPU, connecting in turn. */
	result_t *res = mmap(NULL, sizeof(result_t) * 2 * MAX_CPUS, PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(res != MAP_FAILED);
	memset(res, 0, sizeof(result_t) * 2 * MAX_CPUS);
	pid_t kids[2 * MAX_CPUS];
	for (int i = 0; i < 2 * n; i++) {
		fflush(NULL);
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0)
			client(cpus[i % n], &res[i]);
	}
	for (int i = 0; i < 2 * n; i++) {
		int status;
		assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	kill(svc, SIGTERM);
	int status;
	assert_int_equal(waitpid(svc, &status, 0), svc);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);    /* stopped cleanly */
	for (int i = 0; i < 2 * n; i++) {
		print_message("client on CPU %d: %d calls, %d served on its CPU\n", cpus[i % n], res[i].calls_ok,
			      res[i].on_own_cpu);
		assert_int_equal(res[i].calls_ok, CALLS);
		assert_int_equal(res[i].on_own_cpu, CALLS);
	}
	munmap(res, sizeof(result_t) * 2 * MAX_CPUS);
}

static int setup(void **state)
{
	/* dir's 64 bytes leave its sockets' names room (tmpdir.h) */
	if (!test_sock_template(dir, sizeof dir, "thoth-percpu"))
		return -1;
	if (!mkdtemp(dir)) {
		fprintf(stderr, "setup: mkdtemp %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown(void **state)
{
	unlink(sock_path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_channel_is_served_on_its_clients_cpu),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
