/*
 * test_numa_channel.c - SCALE-1's channel rule on real channels: each side
 * gives the memory it reads (its receive ring, the pool its peer sends
 * from, the release ring it drains) its own node as the preferred policy
 * before the memory is touched, checked with get_mempolicy on the client's
 * mapping (the policy belongs to the memfd range, so the client also sees
 * what the service process set), and where pages are, with move_pages.
 *
 * On this one-node VM the placement is forced (THOTH_NUMA=on) to check that
 * the calls are made with the right ranges; that pages land on a *remote*
 * reader's node needs a machine with more than one node, and the test says
 * so instead of pretending.
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "chan_shm.h"
#include "chantest.thoth.h"
#include "numa.h"
#include "serve_echo.h"
#include "thoth/channel.h"
#include "thoth/trace.h"
#include "topology.h"
#include "trace_test_util.h"
#include "../common/tmpdir.h"

#ifndef MPOL_DEFAULT
#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#endif

static char dir[TEST_SOCK_DIR_CAP("/numa.sock")], sock_path[128];
static pid_t service_pid;

/* CPU -1: wherever the kernel runs it; otherwise pinned there before exec
 * (the service's loop, and so its placement, runs on that CPU). */
static void start_service_on(const char *numa_mode, int cpu)
{
	unlink(sock_path);
	service_pid = fork();
	assert_true(service_pid >= 0);
	if (service_pid == 0) {
		if (cpu >= 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			if (sched_setaffinity(0, sizeof set, &set))
				_exit(126);
		}
		setenv("THOTH_NUMA", numa_mode, 1);
		execl(CHAN_SERVICE, CHAN_SERVICE, sock_path, (char *)NULL);
		_exit(127);
	}
	/* Wait for the socket: a condition with a deadline, not a fixed sleep. */
	for (int i = 0; i < 1000 && access(sock_path, F_OK) != 0; i++)
		usleep(5000);
	assert_int_equal(access(sock_path, F_OK), 0);
}

static void start_service(const char *numa_mode) { start_service_on(numa_mode, -1); }

static void stop_service(void)
{
	if (service_pid > 0) {
		kill(service_pid, SIGTERM);
		waitpid(service_pid, NULL, 0);
		service_pid = 0;
	}
}

static int setup(void **state)
{
	assert_true(test_sock_template(dir, sizeof dir, "thoth-numa-test"));  /* short if TMPDIR is long */
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof sock_path, "%s/numa.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	stop_service();
	unlink(sock_path);
	rmdir(dir);
	unsetenv("THOTH_NUMA");
	thoth__numa_reset();
	return 0;
}

/* The channel's own view: a thoth_chan_t begins with its chan_end_t
 * (kernel/ipc/chan_client.c), whose base and layout say where each
 * region of the mapping is. */
static const chan_end_t *end_of(thoth_chan_t *ch) { return (const chan_end_t *)(const void *)ch; }

static void echo(thoth_chan_t *ch, size_t len)
{
	static uint8_t payload[256 << 10];
	memset(payload, 0x5a, len);
	thoth_chantest_Test_echo_req_t rq = { .data = { .ptr = payload, .len = (uint32_t)len } };
	thoth_chantest_Test_echo_resp_t rs;
	uint64_t ab[1024];
	thoth_arena_t a;
	thoth_arena_init(&a, ab, sizeof ab);
	assert_int_equal(thoth_chantest_Test_echo(thoth_chan_client(ch), &rq, &rs, &a), 0);
	assert_int_equal(rs.data.len, len);
}

static void expect_policy(uint8_t *addr, int want_mode, int want_node, const char *what)
{
	int mode = -1, node = -1;
	assert_int_equal(thoth__numa_policy_of(addr, &mode, &node), 0);
	if (mode != want_mode || (want_mode == MPOL_PREFERRED && node != want_node))
		fail_msg("%s: policy %d node %d, expected %d node %d", what, mode, node, want_mode, want_node);
}

static void test_each_side_prefers_its_own_node_for_what_it_reads(void **state)
{
	setenv("THOTH_NUMA", "on", 1);
	thoth__numa_reset();
	start_service("on");
	thoth_chan_t *ch = NULL;
	char why[300];
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info };
	assert_int_equal(thoth_chan_connect(sock_path, &cfg, &ch, why, sizeof why), 0);
	const chan_end_t *e = end_of(ch);
	const chan_layout_t *l = &e->lay;
	int me = (int)thoth__numa_current_node();
	/* Ours (the client reads them): placed by this process. */
	expect_policy(e->base + l->ring_off[CHAN_RESP], MPOL_PREFERRED, me, "response ring");
	expect_policy(e->base + l->pool_off[CHAN_RESP], MPOL_PREFERRED, me, "service pool");
	expect_policy(e->base + l->rel_off[CHAN_REQ], MPOL_PREFERRED, me, "request release ring");
	/* The service's (it reads them): placed by the other process, visible
	 * here because a memfd's policy belongs to the file.  On one node the
	 * service's node is ours too. */
	int svc = thoth__numa_nodes_online() == 1 ? me : -1;
	if (svc >= 0) {
		expect_policy(e->base + l->ring_off[CHAN_REQ], MPOL_PREFERRED, svc, "request ring");
		expect_policy(e->base + l->pool_off[CHAN_REQ], MPOL_PREFERRED, svc, "client pool");
		expect_policy(e->base + l->rel_off[CHAN_RESP], MPOL_PREFERRED, svc, "response release ring");
	}
	/* The control page is shared by both: no preference. */
	expect_policy(e->base, MPOL_DEFAULT, -1, "control page");
	/* Touch the rings and both pools (an inline and a pool-sized echo),
	 * then ask where the pages are. */
	echo(ch, 64);
	echo(ch, 200 << 10);
	int resp_node = thoth__numa_page_node(e->base + l->ring_off[CHAN_RESP]);
	int pool_node = thoth__numa_page_node(e->base + l->pool_off[CHAN_RESP]);
	assert_int_equal(resp_node, me);
	assert_int_equal(pool_node, me);
	if (thoth__numa_nodes_online() == 1)
		print_message("one NUMA node online: pages of a remote reader landing on its node "
			      "cannot be shown here (needs a multi-node machine)\n");
	thoth_numa_stats_t st;
	thoth__numa_stats(&st);
	assert_true(st.placed >= 3);
	assert_int_equal(st.failed, 0);
	thoth_chan_close(ch);
}

static void test_off_leaves_the_kernel_default_and_auto_follows_the_machine(void **state)
{
	for (int pass = 0; pass < 2; pass++) {
		const char *mode = pass ? "auto" : "off";
		setenv("THOTH_NUMA", mode, 1);
		thoth__numa_reset();
		start_service(mode);
		thoth_chan_t *ch = NULL;
		char why[300];
		thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info };
		assert_int_equal(thoth_chan_connect(sock_path, &cfg, &ch, why, sizeof why), 0);
		const chan_end_t *e = end_of(ch);
		bool placed = pass == 1 && thoth__numa_nodes_online() > 1;
		assert_int_equal(thoth__numa_enabled(), placed);
		int mode_got = -1, node = -1;
		assert_int_equal(thoth__numa_policy_of(e->base + e->lay.ring_off[CHAN_RESP], &mode_got, &node), 0);
		assert_int_equal(mode_got, placed ? MPOL_PREFERRED : MPOL_DEFAULT);
		echo(ch, 64);
		thoth_chan_close(ch);
		stop_service();
	}
}

/* ---- two real nodes ---------------------------------------------------- */

/* The first CPU of the machine's node NODE (hwloc, as thothd reads it);
 * -1 when it has none. */
static int first_cpu_of_node(const thoth_topo_t *t, unsigned os_node)
{
	int n = thoth_topo_node_from_os(t, os_node);
	cpu_set_t set;
	if (n < 0 || thoth_topo_node_cpus(t, (unsigned)n, &set))
		return -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &set))
			return c;
	return -1;
}

/* Where each page of [P, P+LEN) is: how many are on NODE, how many
 * elsewhere; pages not yet allocated are not counted. */
static void count_pages(uint8_t *p, size_t len, int node, unsigned *on, unsigned *off)
{
	*on = *off = 0;
	for (size_t o = 0; o < len; o += 4096) {
		int n = thoth__numa_page_node(p + o);
		if (n == node)
			(*on)++;
		else if (n >= 0)
			(*off)++;
	}
}

/*
 * The rule where it matters: client on the first node, service on the
 * last, THOTH_NUMA left at its default (auto), which places only when the
 * machine has more than one node: the path a one-node machine never
 * takes.  Each side's read ranges carry its own node, and after traffic
 * in both directions (inline and pool-sized, so both pools and both
 * release rings are written) every allocated page of those ranges is on
 * its reader's node, whichever process wrote it first.  Runs on a
 * multi-node machine: scripts/qemu-numa.sh boots a 2-node guest for it.
 */
static void test_on_two_nodes_every_page_lands_on_its_readers_node(void **state)
{
	unsetenv("THOTH_NUMA");
	thoth__numa_reset();
	if (thoth__numa_nodes_online() < 2) {
		print_message("one NUMA node online: skipped (scripts/qemu-numa.sh runs this in a 2-node guest)\n");
		skip();
	}
	thoth_topo_t *t = NULL;
	char why[600] = "";
	if (thoth_topo_load(NULL, &t, why, sizeof why))
		fail_msg("topology: %s", why);
	unsigned last = 0;
	for (unsigned i = 0; i < thoth_topo_nodes(t); i++)
		if (thoth_topo_node_os(t, i) > (int)last)
			last = (unsigned)thoth_topo_node_os(t, i);
	int ccpu = first_cpu_of_node(t, 0), scpu = first_cpu_of_node(t, last);
	thoth_topo_free(t);
	assert_true(last > 0 && ccpu >= 0 && scpu >= 0);
	cpu_set_t set, saved;
	assert_int_equal(sched_getaffinity(0, sizeof saved, &saved), 0);
	CPU_ZERO(&set);
	CPU_SET(ccpu, &set);
	assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
	assert_int_equal(thoth__numa_current_node(), 0);

	start_service_on("auto", scpu);
	thoth_chan_t *ch = NULL;
	char cwhy[300];
	thoth_chan_config_t cfg = { .iface = &thoth_chantest_Test_info };
	assert_int_equal(thoth_chan_connect(sock_path, &cfg, &ch, cwhy, sizeof cwhy), 0);
	assert_true(thoth__numa_enabled());
	const chan_end_t *e = end_of(ch);
	const chan_layout_t *l = &e->lay;
	thoth_numa_range_t mine[3], theirs[3];
	assert_int_equal(thoth__chan_place_plan(l, CHAN_CLIENT, 0, mine), 3);
	assert_int_equal(thoth__chan_place_plan(l, CHAN_SERVER, last, theirs), 3);
	static const char *mine_name[3] = { "response ring", "service pool", "request release ring" };
	static const char *theirs_name[3] = { "request ring", "client pool", "response release ring" };
	for (int i = 0; i < 3; i++) {
		expect_policy(e->base + mine[i].off, MPOL_PREFERRED, 0, mine_name[i]);
		expect_policy(e->base + theirs[i].off, MPOL_PREFERRED, (int)last, theirs_name[i]);
	}
	for (int i = 0; i < 8; i++) {
		echo(ch, 64);
		echo(ch, 200 << 10);
	}
	for (int side = 0; side < 2; side++)
		for (int i = 0; i < 3; i++) {
			const thoth_numa_range_t *r = side ? &theirs[i] : &mine[i];
			unsigned on, off;
			count_pages(e->base + r->off, r->len, (int)r->node, &on, &off);
			print_message("%-22s read on node %u: %u page(s) there, %u elsewhere\n",
				      side ? theirs_name[i] : mine_name[i], r->node, on, off);
			if (off)
				fail_msg("%s: %u page(s) off its reader's node %u", side ? theirs_name[i] : mine_name[i],
					 off, r->node);
			assert_true(on > 0);
		}
	thoth_numa_stats_t st;
	thoth__numa_stats(&st);
	assert_int_equal(st.failed, 0);
	thoth_chan_close(ch);
	assert_int_equal(sched_setaffinity(0, sizeof saved, &saved), 0);
}

/*
 * A per-CPU service's workers keep their state on their own node
 * (docs/SCALE.md, "A service's per-CPU loops"): each worker pins itself
 * before it makes its loop and server, so what it allocates is first
 * touched there under Linux's local policy, in its own malloc arena.  The
 * handler, on the worker serving the calling client, reports the node of
 * its CPU, of the call's arena memory, of a fresh heap block and of its
 * stack (a frame's page, the top page, and the frame's policy: preferred
 * on the worker's node); every one must be the worker's node, for a client
 * on every CPU.
 */
enum { WHERE_CPU, WHERE_NODE, WHERE_ARENA, WHERE_HEAP, WHERE_STACK, WHERE_STACK_TOP, WHERE_STACK_PREF, WHERE_N };

static int on_where(void *self, const thoth_chantest_Test_echo_req_t *req,
		    thoth_chantest_Test_echo_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)req;
	uint8_t *b = thoth_arena_alloc(arena, WHERE_N);
	volatile uint8_t on_stack = 1;
	uint8_t *heap = malloc(256);
	if (!b || !heap) {
		free(heap);
		return THOTH_E_NOMEM;
	}
	memset(heap, 1, 256);
	b[WHERE_CPU] = (uint8_t)sched_getcpu();
	b[WHERE_NODE] = (uint8_t)thoth__numa_current_node();
	b[WHERE_ARENA] = (uint8_t)thoth__numa_page_node(b);
	b[WHERE_HEAP] = (uint8_t)thoth__numa_page_node(heap);
	b[WHERE_STACK] = (uint8_t)thoth__numa_page_node((void *)&on_stack);
	/* The stack's top page (glibc's thread descriptor, written by the
	 * starting thread) and the policy of the handler's frame: preferred
	 * on the worker's node (255: not preferred). */
	pthread_attr_t a;
	void *lo = NULL;
	size_t size = 0;
	int mode = -1, pnode = -1;
	b[WHERE_STACK_TOP] = b[WHERE_STACK_PREF] = 255;
	if (!pthread_getattr_np(pthread_self(), &a)) {
		pthread_attr_getstack(&a, &lo, &size);
		pthread_attr_destroy(&a);
		b[WHERE_STACK_TOP] = (uint8_t)thoth__numa_page_node((void *)(((uintptr_t)lo + size - 1) & ~(uintptr_t)4095));
	}
	if (!thoth__numa_policy_of((void *)((uintptr_t)&on_stack & ~(uintptr_t)4095), &mode, &pnode) &&
	    mode == MPOL_PREFERRED)
		b[WHERE_STACK_PREF] = (uint8_t)pnode;
	free(heap);
	resp->data.ptr = b;
	resp->data.len = WHERE_N;
	return 0;
}

static void test_on_two_nodes_each_worker_keeps_its_state_on_its_node(void **state)
{
	unsetenv("THOTH_NUMA");
	thoth__numa_reset();
	if (thoth__numa_nodes_online() < 2) {
		print_message("one NUMA node online: skipped (scripts/qemu-numa.sh runs this in a 2-node guest)\n");
		skip();
	}
	int cpus[64], n = test_allowed_cpus(cpus, 64);
	assert_true(n >= 2);
	static const thoth_chantest_Test_handlers_t where = { .echo = on_where };
	unlink(sock_path);
	service_pid = fork();
	assert_true(service_pid >= 0);
	if (service_pid == 0)
		_exit(test_serve_echo_per_cpu(sock_path, &where) ? 1 : 0);
	for (int i = 0; i < 1000 && access(sock_path, F_OK) != 0; i++)
		usleep(5000);
	assert_int_equal(access(sock_path, F_OK), 0);
	/* One client process per CPU; its answer comes back in shared memory. */
	uint8_t (*got)[WHERE_N + 1] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(got != MAP_FAILED && (size_t)n * (WHERE_N + 1) <= 4096);
	unsigned nodes_seen = 0;
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		assert_true(c >= 0);
		if (c == 0) {
			thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpus[i]);
			if (test_echo_call_copy(ch, 0, got[i], WHERE_N) != WHERE_N)
				_exit(4);
			got[i][WHERE_N] = 1;
			thoth_chan_close(ch);
			_exit(0);
		}
		int st;
		assert_int_equal(waitpid(c, &st, 0), c);
		if (!WIFEXITED(st) || WEXITSTATUS(st) || !got[i][WHERE_N])
			fail_msg("client on CPU %d: exit %d", cpus[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		const uint8_t *w = got[i];
		print_message("client on CPU %d: served on CPU %u (node %u); call arena on node %u, heap block "
			      "on node %u, stack on node %u (its top on %u, preferred %u)\n", cpus[i], w[WHERE_CPU],
			      w[WHERE_NODE], w[WHERE_ARENA], w[WHERE_HEAP], w[WHERE_STACK], w[WHERE_STACK_TOP],
			      w[WHERE_STACK_PREF]);
		nodes_seen |= 1u << (w[WHERE_NODE] & 31);
	}
	/* Every client reported first, then judged: one run shows them all. */
	for (int i = 0; i < n; i++) {
		const uint8_t *w = got[i];
		assert_int_equal(w[WHERE_CPU], cpus[i]);
		assert_int_equal(w[WHERE_ARENA], w[WHERE_NODE]);
		assert_int_equal(w[WHERE_HEAP], w[WHERE_NODE]);
		assert_int_equal(w[WHERE_STACK], w[WHERE_NODE]);
		assert_int_equal(w[WHERE_STACK_TOP], w[WHERE_NODE]);
		assert_int_equal(w[WHERE_STACK_PREF], w[WHERE_NODE]);
	}
	assert_true(__builtin_popcount(nodes_seen) >= 2);  /* workers on both nodes were checked */
	munmap(got, 4096);
	stop_service();
}

/*
 * Each worker's stack is the one thoth_serve_per_cpu mapped for it
 * (thoth__numa_stack_for_cpu, docs/SCALE.md "A worker's stack"), preferred
 * on its CPU's node before glibc's pthread_create first touched its top on
 * the starting thread.  Forced on (THOTH_NUMA=on) so that it runs on one
 * node too: there every node is 0, so the page nodes only prove the path
 * runs; what fails without the change is the policy, which only our mbind
 * sets (glibc's own stack has the default one; its size and guard pass
 * either way).
 * The handler, on the worker serving the calling client, reports where
 * its stack is (pthread_getattr_np), whether its frame lies in it,
 * the policy and node of that frame's page and of the stack's top page
 * (glibc's thread descriptor), its size and whether the page below it is
 * an inaccessible guard.
 */
enum { SW_CPU, SW_NODE, SW_CPU_NODE, SW_LOCAL_IN, SW_LOCAL_MODE, SW_LOCAL_PNODE, SW_LOCAL_NODE, SW_TOP_MODE,
       SW_TOP_PNODE, SW_TOP_NODE, SW_SIZE_OK, SW_GUARD, SW_N };

/* Whether the page below ADDR is mapped with no access (/proc/self/maps). */
static int guard_below(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	char line[512];
	int r = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perm[5];
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perm) == 3 && lo < addr && addr - 1 < hi)
			r = !strncmp(perm, "---", 3);
	}
	fclose(f);
	return r;
}

/* Each worker's stack as its handler saw it, by CPU: shared with the
 * service process, which checks after thoth_serve_per_cpu returned that
 * every one was unmapped (every worker joined, no stack leaked). */
static uintptr_t (*stacks_seen)[2];
enum { STACKS_MAX = 4096 / (2 * sizeof(uintptr_t)) };

static int on_stack_where(void *self, const thoth_chantest_Test_echo_req_t *req,
			  thoth_chantest_Test_echo_resp_t *resp, thoth_arena_t *arena)
{
	(void)self;
	(void)req;
	int32_t *b = thoth_arena_alloc(arena, SW_N * sizeof *b);
	if (!b)
		return THOTH_E_NOMEM;
	/* The frame, not a local's address: ASan's use-after-return mode
	 * moves address-taken locals to a heap "fake stack". */
	uint8_t *local = __builtin_frame_address(0);
	pthread_attr_t a, def;
	void *lo = NULL;
	size_t size = 0, want = 0;
	if (pthread_getattr_np(pthread_self(), &a))
		return THOTH_E_IO;
	pthread_attr_getstack(&a, &lo, &size);
	pthread_attr_destroy(&a);
	pthread_attr_init(&def);
	pthread_attr_getstacksize(&def, &want);       /* glibc's default size */
	pthread_attr_destroy(&def);
	uint8_t *top = (uint8_t *)(((uintptr_t)lo + size - 1) & ~(uintptr_t)4095);
	b[SW_CPU] = sched_getcpu();
	b[SW_NODE] = (int32_t)thoth__numa_current_node();
	b[SW_CPU_NODE] = thoth__numa_cpu_node(b[SW_CPU]);
	b[SW_LOCAL_IN] = (uintptr_t)local >= (uintptr_t)lo && (uintptr_t)local < (uintptr_t)lo + size;
	b[SW_LOCAL_MODE] = b[SW_LOCAL_PNODE] = b[SW_TOP_MODE] = b[SW_TOP_PNODE] = -1;
	thoth__numa_policy_of((void *)((uintptr_t)local & ~(uintptr_t)4095), &b[SW_LOCAL_MODE], &b[SW_LOCAL_PNODE]);
	thoth__numa_policy_of(top, &b[SW_TOP_MODE], &b[SW_TOP_PNODE]);
	b[SW_LOCAL_NODE] = thoth__numa_page_node((void *)local);
	b[SW_TOP_NODE] = thoth__numa_page_node(top);
	b[SW_SIZE_OK] = size >= want;
	b[SW_GUARD] = guard_below((uintptr_t)lo);
	if (b[SW_CPU] >= 0 && b[SW_CPU] < STACKS_MAX) {
		stacks_seen[b[SW_CPU]][0] = (uintptr_t)lo;
		stacks_seen[b[SW_CPU]][1] = (uintptr_t)top;
	}
	resp->data.ptr = (uint8_t *)b;
	resp->data.len = SW_N * sizeof *b;
	return 0;
}

static void test_each_workers_stack_is_its_own_on_its_node(void **state)
{
	setenv("THOTH_NUMA", "on", 1);
	thoth__numa_reset();
	int cpus[64], n = test_allowed_cpus(cpus, 64);
	if (n < 2) {
		print_message("one CPU allowed: thoth_serve_per_cpu serves on the caller's thread; skipped\n");
		skip();
	}
	if (thoth__numa_nodes_online() < 2)
		print_message("one NUMA node: every node is 0, the policy and the guard are what is checked\n");
	static const thoth_chantest_Test_handlers_t where = { .echo = on_stack_where };
	stacks_seen = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(stacks_seen != MAP_FAILED);
	unlink(sock_path);
	service_pid = fork();
	assert_true(service_pid >= 0);
	if (service_pid == 0) {
		int r = test_serve_echo_per_cpu(sock_path, &where);
		/* Stopped: every stack a handler ran on is unmapped (mincore
		 * fails with ENOMEM on an address with no mapping). */
		unsigned char v;
		for (int c = 0; c < STACKS_MAX; c++)
			for (int k = 0; k < 2; k++)
				if (stacks_seen[c][k] && (mincore((void *)stacks_seen[c][k], 1, &v) == 0 || errno != ENOMEM))
					_exit(5);
		_exit(r ? 1 : 0);
	}
	for (int i = 0; i < 1000 && access(sock_path, F_OK) != 0; i++)
		usleep(5000);
	assert_int_equal(access(sock_path, F_OK), 0);
	int32_t (*got)[SW_N + 1] = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(got != MAP_FAILED && (size_t)n * sizeof *got <= 4096);
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		assert_true(c >= 0);
		if (c == 0) {
			thoth_chan_t *ch = test_echo_client_on_cpu(sock_path, cpus[i]);
			if (test_echo_call_copy(ch, 0, (uint8_t *)got[i], SW_N * sizeof(int32_t)) !=
			    (int)(SW_N * sizeof(int32_t)))
				_exit(4);
			got[i][SW_N] = 1;
			thoth_chan_close(ch);
			_exit(0);
		}
		int st;
		assert_int_equal(waitpid(c, &st, 0), c);
		if (!WIFEXITED(st) || WEXITSTATUS(st) || !got[i][SW_N])
			fail_msg("client on CPU %d: exit %d", cpus[i], WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		const int32_t *w = got[i];
		print_message("client on CPU %d: served on CPU %d (node %d, sysfs %d); local in stack %d, its page "
			      "policy %d node %d, on node %d; stack top policy %d node %d, on node %d; size ok %d, "
			      "guard %d\n", cpus[i], w[SW_CPU], w[SW_NODE], w[SW_CPU_NODE], w[SW_LOCAL_IN],
			      w[SW_LOCAL_MODE], w[SW_LOCAL_PNODE], w[SW_LOCAL_NODE], w[SW_TOP_MODE], w[SW_TOP_PNODE],
			      w[SW_TOP_NODE], w[SW_SIZE_OK], w[SW_GUARD]);
	}
	for (int i = 0; i < n; i++) {
		const int32_t *w = got[i];
		assert_int_equal(w[SW_CPU], cpus[i]);
		assert_int_equal(w[SW_CPU_NODE], w[SW_NODE]);
		assert_int_equal(w[SW_LOCAL_IN], 1);
		assert_int_equal(w[SW_LOCAL_MODE], MPOL_PREFERRED);
		assert_int_equal(w[SW_LOCAL_PNODE], w[SW_NODE]);
		assert_int_equal(w[SW_LOCAL_NODE], w[SW_NODE]);
		assert_int_equal(w[SW_TOP_MODE], MPOL_PREFERRED);
		assert_int_equal(w[SW_TOP_PNODE], w[SW_NODE]);
		assert_int_equal(w[SW_TOP_NODE], w[SW_NODE]);
		assert_int_equal(w[SW_SIZE_OK], 1);
		assert_int_equal(w[SW_GUARD], 1);
	}
	munmap(got, 4096);
	/* Stop it: thoth_serve_per_cpu returns 0 and no worker's stack is
	 * left mapped (exit 5 otherwise). */
	int st;
	kill(service_pid, SIGTERM);
	assert_int_equal(waitpid(service_pid, &st, 0), service_pid);
	service_pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("service: %s %d (5: a worker's stack still mapped after it stopped)",
			 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	munmap(stacks_seen, 4096);
}

/* ---- the decision on machines this one is not ------------------------- */

static thoth_topo_t *load(const char *synthetic, const char *xml)
{
	char path[512];
	thoth_topo_source_t src = { .synthetic = synthetic };
	if (xml) {
		snprintf(path, sizeof path, "%s/%s", TOPOLOGY_FIXTURES, xml);
		src.xml_path = path;
	}
	thoth_topo_t *t = NULL;
	char why[600] = "";
	if (thoth_topo_load(&src, &t, why, sizeof why))
		fail_msg("%s: %s", xml ? xml : synthetic, why);
	return t;
}

/* Which of the six read-side regions a range is (-1: none). */
static int region_of(const chan_layout_t *l, size_t off)
{
	const size_t at[6] = { l->ring_off[CHAN_RESP], l->pool_off[CHAN_RESP], l->rel_off[CHAN_REQ],
			       l->ring_off[CHAN_REQ], l->pool_off[CHAN_REQ], l->rel_off[CHAN_RESP] };
	for (int i = 0; i < 6; i++)
		if (at[i] == off)
			return i;
	return -1;
}

static void test_on_multi_node_topologies_each_side_reads_from_its_cpus_node(void **state)
{
	/* 2 nodes, 2 nodes with SMT, 4 nodes with asymmetric distances (XML). */
	static const struct { const char *synthetic, *xml; } machines[] = {
		{ "node:2 pack:1 core:2 pu:1", NULL },
		{ "node:2 pack:1 l3:1 core:2 pu:2", NULL },
		{ NULL, "4node-asym.xml" },
	};
	thoth_chan_limits_t lim = { 0 };
	thoth_chan_limits_resolve(&lim, NULL, 0);
	chan_layout_t l;
	chan_layout_compute(&lim, &l);
	for (size_t m = 0; m < sizeof machines / sizeof machines[0]; m++) {
		thoth_topo_t *t = load(machines[m].synthetic, machines[m].xml);
		unsigned cpus = thoth_topo_cpus(t), pairs = 0, cross = 0;
		for (unsigned cc = 0; cc < cpus; cc++)
			for (unsigned sc = 0; sc < cpus; sc++) {
				unsigned cn = (unsigned)thoth_topo_cpu_node(t, (int)cc);
				unsigned sn = (unsigned)thoth_topo_cpu_node(t, (int)sc);
				thoth_numa_range_t c[3], s[3];
				assert_int_equal(thoth__chan_place_plan(&l, CHAN_CLIENT, cn, c), 3);
				assert_int_equal(thoth__chan_place_plan(&l, CHAN_SERVER, sn, s), 3);
				/* The client takes regions 0-2 (it reads them), the
				 * service 3-5, each on its own CPU's node: six
				 * distinct regions, nothing placed twice. */
				bool seen[6] = { false };
				for (int i = 0; i < 3; i++) {
					int rc = region_of(&l, c[i].off), rs = region_of(&l, s[i].off);
					assert_true(rc >= 0 && rc < 3);
					assert_true(rs >= 3 && rs < 6);
					assert_false(seen[rc] || seen[rs]);
					seen[rc] = seen[rs] = true;
					assert_int_equal(c[i].node, cn);
					assert_int_equal(s[i].node, sn);
					assert_true(c[i].len > 0 && s[i].len > 0);
				}
				pairs++;
				cross += cn != sn;
			}
		print_message("%s: %u CPU pairs, %u across nodes: each side's reads on its own node\n",
			      machines[m].xml ? machines[m].xml : machines[m].synthetic, pairs, cross);
		assert_true(cross > 0);
		thoth_topo_free(t);
	}
}

/* A topology can name a node this kernel does not have (an XML export of
 * another machine, a node taken offline): the binding fails, is counted
 * and logged once, and the channel memory stays usable where the kernel
 * puts it. */
static void test_a_node_the_kernel_lacks_is_refused_and_the_memory_still_works(void **state)
{
	if (thoth__numa_nodes_online() >= 4) {
		print_message("this machine has node 3: nothing to refuse\n");
		return;
	}
	setenv("THOTH_NUMA", "on", 1);
	thoth__numa_reset();
	thoth_numa_stats_t before, after;
	thoth__numa_stats(&before);
	size_t len = 1 << 16;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(thoth__numa_prefer(p, len, 3), THOTH_E_IO);
	thoth__numa_stats(&after);
	assert_int_equal(after.failed, before.failed + 1);
	assert_int_equal(after.placed, before.placed);
	expect_policy(p, MPOL_DEFAULT, -1, "refused range");
	memset(p, 0x5a, len);
	assert_int_equal(thoth__numa_page_node(p), (int)thoth__numa_current_node());
	/* An existing node is accepted for the same range. */
	assert_int_equal(thoth__numa_prefer(p + 4096 * 8, 4096, thoth__numa_current_node()), 0);
	munmap(p, len);
}

/* Each placement is a trace event: side, node, ranges placed of ranges
 * planned. */
static void test_a_placement_is_a_trace_event(void **state)
{
	setenv("THOTH_NUMA", "on", 1);
	thoth__numa_reset();
	thoth_trace_config_t cfg = { .ring_count = 4, .ring_records = 64, .full_policy = THOTH_TRACE_DROP_NEWEST,
				     .enabled = THOTH_TRACE_MASK(IPC), .process_name = "numa-test" };
	assert_int_equal(thoth_trace_init(&cfg), 0);
	int fd;
	assert_int_equal(thoth_trace_export_fd(&fd), 0);
	thoth_trace_reader_t *r = NULL;
	assert_int_equal(thoth_trace_reader_open(fd, &r), 0);

	thoth_chan_limits_t lim = { 0 };
	thoth_chan_limits_resolve(&lim, NULL, 0);
	chan_layout_t l;
	chan_layout_compute(&lim, &l);
	int mfd = memfd_create("numa-trace", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, (off_t)l.size), 0);
	uint8_t *base = chan_shm_map(mfd, l.size);
	close(mfd);
	assert_non_null(base);
	assert_int_equal(thoth__chan_place(base, &l, CHAN_SERVER), 3);

	event_list_t ev = { 0 };
	assert_int_equal(thoth_trace_reader_poll(r, event_list_add, &ev), 0);
	int found = 0;
	for (size_t i = 0; i < ev.count; i++)
		if (!strcmp(ev.events[i].name, "chan_numa_place")) {
			found++;
			assert_int_equal(ev.events[i].category, THOTH_TRACE_CAT_IPC);
			assert_int_equal(ev.events[i].arg0, (uint64_t)CHAN_SERVER << 16 | thoth__numa_current_node());
			assert_int_equal(ev.events[i].arg1, 3u << 8 | 3u);
		}
	assert_int_equal(found, 1);
	event_list_free(&ev);
	thoth_trace_reader_close(r);
	thoth_trace_shutdown();
	chan_shm_unmap(base, l.size);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_each_side_prefers_its_own_node_for_what_it_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_off_leaves_the_kernel_default_and_auto_follows_the_machine,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_two_nodes_every_page_lands_on_its_readers_node, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_each_workers_stack_is_its_own_on_its_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_two_nodes_each_worker_keeps_its_state_on_its_node, setup,
						teardown),
		cmocka_unit_test(test_on_multi_node_topologies_each_side_reads_from_its_cpus_node),
		cmocka_unit_test_setup_teardown(test_a_placement_is_a_trace_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_node_the_kernel_lacks_is_refused_and_the_memory_still_works,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
