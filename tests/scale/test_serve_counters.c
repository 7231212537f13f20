/*
 * test_serve_counters.c - a thread-per-core service's counters
 * (thoth_serve_per_cpu, SCHED-4) folded on read across its workers
 * (SCALE-2), with no lost increment while a storm of sched_setaffinity
 * calls moves every worker thread between CPUs.
 *
 * The service runs in this process (its threads are the ones the storm
 * moves); the clients are processes forked before any thread exists, so
 * that under ThreadSanitizer (label tsan) only the service's side is
 * judged.  Each client makes CALLS calls and says how many were answered;
 * thoth_serve_stats must count exactly their sum, and while the clients
 * run a concurrent fold must never go backwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <pthread.h>
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../common/serve_echo.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

enum {
	CLIENTS = 4,
	CALLS = 1000,           /* at least, per client */
	MIN_MOVES = 2000,       /* forced migrations, at least, while clients call */
	DEADLINE_MS = 60000,
};

static char dir[64], sock_path[128];
static int *calls_stop;         /* shared with the clients: enough migrations happened */

/* A client process: waits for the go byte, calls (at least CALLS times, and
 * until the storm has made its moves), writes how many calls were
 * answered to OUT, exits. */
static void client(int cpu, int go, int out)
{
	char c;
	if (read(go, &c, 1) != 1)
		_exit(2);
	/* On CPU before connecting: clients on every CPU spread the calls
	 * over every worker. */
	thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpu);
	uint32_t ok = 0;
	for (int i = 0; i < CALLS || !__atomic_load_n(calls_stop, __ATOMIC_ACQUIRE); i++)
		ok += test_echo_call(ch, (uint8_t)i, NULL) >= 0;
	thoth_chan_close(ch);
	if (write(out, &ok, sizeof ok) != sizeof ok)
		_exit(4);
	_exit(0);
}

static void *serve(void *arg)
{
	*(int *)arg = test_serve_echo_per_cpu(sock_path, test_echo_same_handlers());
	return NULL;
}

typedef struct storm {
	pid_t self_tids[4];     /* this test's own threads: not moved */
	int n_self;
	int stop;               /* atomic */
	uint64_t moves;         /* atomic */
} storm_t;

/* Move every thread of this process but the test's own to the next CPU,
 * over and over: the service's workers, listener included. */
static void *storm_main(void *arg)
{
	storm_t *st = arg;
	st->self_tids[st->n_self] = (pid_t)syscall(SYS_gettid);
	__atomic_store_n(&st->n_self, st->n_self + 1, __ATOMIC_RELEASE);
	int cpus[CPU_SETSIZE], n = test_allowed_cpus(cpus, CPU_SETSIZE);
	for (unsigned k = 0; !__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE); k++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);
			bool mine = tid <= 0;
			for (int i = 0; i < st->n_self && !mine; i++)
				mine = st->self_tids[i] == tid;
			if (mine)
				continue;
			cpu_set_t one;
			CPU_ZERO(&one);
			CPU_SET(cpus[(k + (unsigned)tid) % (unsigned)n], &one);
			if (sched_setaffinity(tid, sizeof one, &one) == 0)
				__atomic_fetch_add(&st->moves, 1, __ATOMIC_RELAXED);
		}
		if (d)
			closedir(d);
	}
	return NULL;
}

static void test_per_cpu_counters_fold_without_loss_under_migration_storm(void **state)
{
	cpu_set_t allowed;
	assert_int_equal(sched_getaffinity(0, sizeof allowed, &allowed), 0);
	if (CPU_COUNT(&allowed) < 2)
		skip_because("fewer than 2 CPUs allowed (thoth_serve_per_cpu is thoth_serve on one)");
	calls_stop = mmap(NULL, sizeof *calls_stop, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(calls_stop != MAP_FAILED);
	*calls_stop = 0;
	/* Clients first, while this process has one thread. */
	int go[2], res[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(res), 0);
	pid_t kids[CLIENTS];
	int cpus[CPU_SETSIZE], ncpu = test_allowed_cpus(cpus, CPU_SETSIZE);
	for (int i = 0; i < CLIENTS; i++) {
		fflush(NULL);
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			close(go[1]);
			close(res[0]);
			client(cpus[i % ncpu], go[0], res[1]);
		}
	}
	close(go[0]);
	close(res[1]);
	/* SIGTERM stops the service: blocked here, so its loop's signalfd
	 * takes it (every thread inherits the mask). */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	storm_t st = { .n_self = 1 };
	st.self_tids[0] = (pid_t)syscall(SYS_gettid);
	int served = -1;
	pthread_t server, storm;
	assert_int_equal(pthread_create(&server, NULL, serve, &served), 0);
	thoth_chan_server_stats_t s0;
	uint64_t end = test_now_ms() + DEADLINE_MS;
	while (access(sock_path, F_OK) != 0 || thoth_serve_stats(&s0) != 0) {
		assert_true(test_now_ms() < end);
		usleep(1000);   /* polling a condition, with a deadline */
	}
	assert_int_equal(s0.calls, 0);
	assert_int_equal(pthread_create(&storm, NULL, storm_main, &st), 0);
	for (int i = 0; i < CLIENTS; i++)
		assert_int_equal(write(go[1], "g", 1), 1);
	/* Fold while they call: never backwards.  They call until the storm
	 * has moved threads MIN_MOVES times (a bound on work, not time). */
	uint64_t answered = 0, last = 0;
	for (int done = 0; done < CLIENTS;) {
		thoth_chan_server_stats_t s;
		assert_int_equal(thoth_serve_stats(&s), 0);
		assert_true(s.calls >= last);
		last = s.calls;
		if (__atomic_load_n(&st.moves, __ATOMIC_RELAXED) >= MIN_MOVES)
			__atomic_store_n(calls_stop, 1, __ATOMIC_RELEASE);
		int status;
		for (int i = 0; i < CLIENTS; i++) {
			if (kids[i] > 0 && waitpid(kids[i], &status, WNOHANG) == kids[i]) {
				assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
				uint32_t ok;
				assert_int_equal(read(res[0], &ok, sizeof ok), (ssize_t)sizeof ok);
				answered += ok;
				kids[i] = -1;
				done++;
			}
		}
		assert_true(test_now_ms() < end);
	}
	__atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
	pthread_join(storm, NULL);
	thoth_chan_server_stats_t s;
	assert_int_equal(thoth_serve_stats(&s), 0);
	print_message("%llu calls answered to %d clients, %llu counted by the fold, %llu forced migrations, "
		      "%llu connections handed to another CPU's loop\n",
		      (unsigned long long)answered, CLIENTS, (unsigned long long)s.calls,
		      (unsigned long long)st.moves, (unsigned long long)s.handed_over);
	assert_true(answered >= (uint64_t)CLIENTS * CALLS);
	assert_true(st.moves >= MIN_MOVES);
	assert_int_equal(s.calls, answered);
	assert_int_equal(s.accepted, CLIENTS);
	assert_true(s.handed_over > 0);         /* more than one worker served */
	kill(getpid(), SIGTERM);
	pthread_join(server, NULL);
	assert_int_equal(served, 0);
	assert_int_equal(thoth_serve_stats(&s), THOTH_E_NOT_RUNNING);
	close(go[1]);
	close(res[0]);
	munmap(calls_stop, sizeof *calls_stop);
}

static int setup(void **state)
{
	/* dir's 64 bytes leave its sockets' names room (tmpdir.h) */
	assert_true(test_sock_template(dir, sizeof dir, "thoth-servectr"));
	if (!mkdtemp(dir))
		fail_msg("mkdtemp %s: %s", dir, strerror(errno));
	snprintf(sock_path, sizeof sock_path, "%s/svc.sock", dir);
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
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_per_cpu_counters_fold_without_loss_under_migration_storm,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
