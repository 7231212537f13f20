/*
 * test_timerpage_hostile.c - a hostile co-tenant of thothd's window page
 * and doorbells cannot hurt a well-behaved loop (SCHED-3; docs/LOOP.md
 * "A hostile co-tenant", docs/SCHED.md "The page is hostile input").
 *
 * A real thothd; each victim is a forked process that connects to it like
 * any service (the page comes on its control connection) and runs a
 * periodic timer in its own thoth_loop.  This process is the attacker: it
 * is connected too, so it maps the same page and knows the doorbell names,
 * and it does what any process of the uid can: send to doorbells as fast
 * as it can, with forged names, payloads and descriptors; squat doorbell
 * names; scribble every word of every slot while the victims read them,
 * and make thothd reap meanwhile.
 *
 * What a victim may suffer, asserted from its own counters (a loaded host
 * changes timings, not these): no timer early; its periods fired (at
 * least half of those the host let it run for: a loaded host may run it
 * past whole windows, which are skipped, not owed, and its wait on a run
 * queue, schedstat's, is counted out); at most two wake-ups per fire of
 * its timer plus a constant (one of them the bogus ring that mutes its doorbell until its
 * timer fires again), whatever the attacker's rate or how many honest
 * loops the attacker makes ring it; no descriptor gained.  Lateness and
 * CPU time are printed (host-dependent), not asserted.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "thoth/loop.h"
#include "timerpage.h"

#define MS 1000000ull
/* Fires later than slack + this are counted as late (printed): the host's
 * wake-up latency, which no loop removes, on a shared 2-vCPU VM. */
#define LATE_TOL (20 * MS)
/* Wake-ups a victim may have beyond two per fire: the first rearm's
 * page claim, the measurement's edges. */
#define WAKE_SLACK 6

static harness_t h;
static thoth_control_t ctl;
static timerpage_t *page;

/* What a victim reports (shared mapping). */
typedef struct victim {
	uint64_t period, slack, run_ms;
	_Atomic int ready;              /* 1: its slot is known; 2: done */
	_Atomic int slot;               /* -1: it has none (grid) */
	pid_t pid;
	uint64_t fires, expected, early, late, max_late;
	uint64_t wakeups, rung, bells, own;
	uint64_t cpu_us, fds_before, fds_after;
	uint64_t waited_ns, waited_periods;     /* on a run queue, not running */
	bool waited_known;
} victim_t;

typedef struct periodic {
	victim_t *v;
	uint64_t deadline;
	bool counting;
} periodic_t;

static void on_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	periodic_t *p = arg;
	uint64_t now = thoth_clock_now();
	victim_t *v = p->v;
	if (p->counting) {
		v->fires++;
		if (now < p->deadline) {
			v->early++;
		} else {
			uint64_t late = now - p->deadline;
			v->max_late = late > v->max_late ? late : v->max_late;
			v->late += late > v->slack + LATE_TOL;
		}
	}
	/* Periodic on its own schedule: a late fire does not shift the rest,
	 * and periods the host made us miss entirely are not owed. */
	p->deadline += v->period;
	while (p->deadline + v->slack < now)
		p->deadline += v->period;
	if (thoth_timer_rearm(loop, t, p->deadline, v->slack))
		_exit(20);
}

static uint64_t count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	uint64_t n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Nanoseconds this thread has waited on a run queue, runnable but not run
 * (schedstat's second field); false where the kernel keeps no schedstat. */
static bool run_delay_ns(uint64_t *ns)
{
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	unsigned long long run, delay;
	bool ok = f && fscanf(f, "%llu %llu", &run, &delay) == 2;
	if (f)
		fclose(f);
	*ns = ok ? delay : 0;
	return ok;
}

static uint64_t cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* The victim process: connected to thothd like any service, one loop, one
 * periodic timer; measures RUN_MS from the moment its slot is known. */
static void victim_main(victim_t *v)
{
	thoth_control_t c;
	if (harness_connect(&h, &c))
		_exit(10);
	timerpage_t *pg = thoth__timerpage_current();
	if (!pg)
		_exit(11);
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		_exit(12);
	periodic_t p = { .v = v, .deadline = thoth_clock_now() + v->period };
	thoth_timer_t *t;
	if (thoth_loop_add_timer(loop, p.deadline, v->slack, on_tick, &p, &t))
		_exit(13);
	int slot = -1;
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++)
		if (atomic_load(&pg->slot[i].owner) == (uint32_t)gettid())
			slot = (int)i;
	thoth_loop_stats_t s0, s1;
	thoth_loop_stats(loop, &s0);
	uint64_t c0 = cpu_us(), d0, d1;
	bool d0_known = run_delay_ns(&d0);
	v->fds_before = count_fds();
	uint64_t start = thoth_clock_now(), end = start + v->run_ms * MS;
	p.counting = true;
	atomic_store(&v->slot, slot);
	atomic_store(&v->ready, 1);
	while (thoth_clock_now() < end)
		if (thoth_loop_run_once(loop, true) < 0)
			_exit(14);
	p.counting = false;
	thoth_loop_stats(loop, &s1);
	v->cpu_us = cpu_us() - c0;
	v->waited_known = d0_known && run_delay_ns(&d1) && d1 >= d0;
	v->waited_ns = v->waited_known ? d1 - d0 : 0;
	v->waited_periods = v->waited_ns / v->period;
	v->fds_after = count_fds();
	v->expected = v->run_ms * MS / v->period;
	v->wakeups = s1.wakeups - s0.wakeups;
	v->rung = s1.wakeups_rung - s0.wakeups_rung;
	v->bells = s1.timer_bells_rung - s0.timer_bells_rung;
	/* Wake-ups our own timerfd caused: every fire that a ring did not. */
	v->own = s1.wakeups_timer - s0.wakeups_timer - v->rung;
	thoth_loop_free(loop);
	thoth_control_close(&c);
	atomic_store(&v->ready, 2);
	_exit(0);
}

static victim_t *victim_new(uint64_t period_ms, uint64_t slack_ms, uint64_t run_ms)
{
	victim_t *v = mmap(NULL, sizeof *v, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(v != MAP_FAILED);
	memset(v, 0, sizeof *v);
	v->period = period_ms * MS;
	v->slack = slack_ms * MS;
	v->run_ms = run_ms;
	atomic_store(&v->slot, -1);
	return v;
}

static bool victim_ready(void *arg)
{
	return atomic_load(&((victim_t *)arg)->ready) >= 1;
}

static void victim_start(victim_t *v)
{
	pid_t pid = fork();             /* stored by the parent alone: v is shared */
	assert_true(pid >= 0);
	if (pid == 0)
		victim_main(v);
	v->pid = pid;
	assert_true(harness_wait_until(victim_ready, v, 10000));
}

/* Until the victim has exited (not reaped: victim_judge does). */
static void victim_await(victim_t *v)
{
	siginfo_t si;
	do {
		memset(&si, 0, sizeof si);
		assert_int_equal(waitid(P_PID, (id_t)v->pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
	} while (si.si_pid == 0 && usleep(10000) == 0);
}

/* Wait for the victim, print what it suffered, and assert the bounds. */
static void victim_judge(victim_t *v, const char *what)
{
	int status;
	assert_int_equal(waitpid(v->pid, &status, 0), v->pid);
	print_message("%s: %llu fires of %llu (%llu by its own timer), %llu early, %llu late by > slack + 20 ms "
		      "(max %.2f ms late); %llu wake-ups, %llu rung, %llu bells rung; CPU %.1f ms in %llu ms, "
		      "%.1f ms runnable but not run (%s)\n",
		      what, (unsigned long long)v->fires, (unsigned long long)v->expected,
		      (unsigned long long)v->own, (unsigned long long)v->early, (unsigned long long)v->late,
		      (double)v->max_late / 1e6, (unsigned long long)v->wakeups, (unsigned long long)v->rung,
		      (unsigned long long)v->bells, (double)v->cpu_us / 1e3, (unsigned long long)v->run_ms,
		      (double)v->waited_ns / 1e6, v->waited_known ? "schedstat" : "no schedstat here: not discounted");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(v->early, 0);
	/* Periods fired: a victim held in recv for good would miss most (it
	 * sleeps: no run-queue wait).  Owed: the periods of the run less those
	 * it spent runnable on a run queue while the host ran others (a 5 ms
	 * loop under ASan at load 17 fired 111 of 300, stop 43: skipped, not
	 * owed); of those, half, for what schedstat does not see (a vCPU the
	 * hypervisor did not run). */
	uint64_t owed = v->expected - (v->waited_periods < v->expected ? v->waited_periods : v->expected);
	assert_true(v->fires * 2 >= owed);
	assert_true(v->wakeups <= 2 * v->fires + WAKE_SLACK);
	/* Descriptors sent with doorbell bytes are never installed (a loop
	 * that lost its slot closed its doorbell: one fewer). */
	assert_true(v->fds_after <= v->fds_before);
	munmap(v, sizeof *v);
}

static int bell_addr(int slot, struct sockaddr_un *a)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	return thoth__timerpage_bell_path(page, slot, a->sun_path, sizeof a->sun_path);
}

/* ---- doorbells ------------------------------------------------------------ */

typedef struct flood {
	struct sockaddr_un to;
	_Atomic bool stop;
	uint64_t sent;
	bool with_fds;
} flood_t;

static void *flood_main(void *arg)
{
	flood_t *f = arg;
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int pass[2];
	if (s < 0 || pipe(pass) < 0)
		return NULL;
	/* A send blocked on a muted doorbell's full queue gives up now and
	 * then to look at the stop flag. */
	struct timeval tv = { 0, 100000 };
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	char big[4000];
	memset(big, 0xa5, sizeof big);
	uint64_t n = 0;
	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		struct iovec iov = { big, n % 3 ? 1 : sizeof big };
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(2 * sizeof(int))];
		} cm;
		struct msghdr m = { .msg_name = &f->to, .msg_namelen = sizeof f->to, .msg_iov = &iov, .msg_iovlen = 1 };
		if (f->with_fds && n % 2) {
			memset(&cm, 0, sizeof cm);
			m.msg_control = cm.b;
			m.msg_controllen = sizeof cm.b;
			struct cmsghdr *c = CMSG_FIRSTHDR(&m);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(2 * sizeof(int));
			memcpy(CMSG_DATA(c), pass, sizeof pass);
		}
		/* Blocking sends: the attacker waits for room and fills it as
		 * fast as the victim reads, the hardest flood a datagram socket
		 * allows. */
		n += sendmsg(s, &m, 0) >= 0;
	}
	f->sent = n;
	close(s);
	close(pass[0]);
	close(pass[1]);
	return NULL;
}

static void flood_stop(flood_t *f, pthread_t *t, int n)
{
	for (int i = 0; i < n; i++)
		atomic_store(&f[i].stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/*
 * Two attacker threads send to a victim's doorbell as fast as it reads,
 * with payloads of 1 and 4000 bytes and two descriptors in every other
 * datagram.  The old loop drained its doorbell until empty and woke again
 * for every datagram: thousands of wake-ups a second, its CPU the
 * attacker's to spend.  Now a ring that fires nothing mutes the doorbell
 * until the victim's own timer fires: two wake-ups per period at most.
 */
static void test_a_doorbell_flood_costs_two_wakeups_per_period(void **state)
{
	(void)state;
	victim_t *v = victim_new(20, 5, 1000);
	victim_start(v);
	int slot = atomic_load(&v->slot);
	assert_true(slot >= 0);
	flood_t f[2] = { 0 };
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(bell_addr(slot, &f[i].to), 0);
		f[i].with_fds = i == 1;
		assert_int_equal(pthread_create(&t[i], NULL, flood_main, &f[i]), 0);
	}
	victim_await(v);                /* it ends on its own; judged after the senders stop */
	flood_stop(f, t, 2);
	print_message("flood: %llu + %llu datagrams sent\n", (unsigned long long)f[0].sent,
		      (unsigned long long)f[1].sent);
	/* The flood reached the victim (else the bound below says nothing). */
	uint64_t rung = v->rung;
	victim_judge(v, "doorbell flood");
	assert_true(f[0].sent + f[1].sent > 0);
	assert_true(rung > 0);
}

/* Voluntary context switches of process PID's main thread: one each time
 * it goes back to sleep, so one per wake-up.  (Involuntary ones are the
 * host preempting it while it runs: the load's, not the attacker's.) */
static uint64_t ctxt_switches(pid_t pid, uint64_t *involuntary)
{
	char p[64], line[128];
	snprintf(p, sizeof p, "/proc/%d/task/%d/status", (int)pid, (int)pid);
	FILE *f = fopen(p, "re");
	uint64_t n = 0;
	unsigned long long v;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			n = v;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			*involuntary = v;
	if (f)
		fclose(f);
	return n;
}

/*
 * thothd's own loop holds a slot and a doorbell like any process's, and
 * every process of the user depends on it.  Idle (no registration, so no
 * timer), a flood on its doorbell wakes it once: the ring fires nothing
 * and mutes the doorbell.  The old thothd woke for every datagram.
 */
static void test_a_doorbell_flood_leaves_thothd_asleep(void **state)
{
	(void)state;
	int slot = -1;
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++)
		if (atomic_load(&page->slot[i].owner) == (uint32_t)h.thothd)
			slot = (int)i;
	assert_true(slot >= 0);
	flood_t f[2] = { 0 };
	pthread_t t[2];
	uint64_t inv0 = 0, inv1 = 0;
	uint64_t before = ctxt_switches(h.thothd, &inv0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(bell_addr(slot, &f[i].to), 0);
		assert_int_equal(pthread_create(&t[i], NULL, flood_main, &f[i]), 0);
	}
	usleep(1000000);
	flood_stop(f, t, 2);
	uint64_t after = ctxt_switches(h.thothd, &inv1);
	print_message("thothd under a 1 s doorbell flood (%llu + %llu datagrams): %llu context switches "
		      "(and %llu involuntary)\n",
		      (unsigned long long)f[0].sent, (unsigned long long)f[1].sent,
		      (unsigned long long)(after - before), (unsigned long long)(inv1 - inv0));
	/* One bogus ring, and what the host's scheduler adds; and the flood
	 * was queued on thothd's doorbell (else this says nothing).  Not the
	 * involuntary switches: each datagram read wakes a blocked sender,
	 * which may preempt thothd (up to 24 in one 64-datagram drain at
	 * load ~10: they broke a bound of 10 on both together in 3 of 31 runs). */
	assert_true(f[0].sent + f[1].sent > 0);
	assert_true(after - before <= 10);
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&ctl, &st), 0);
}

/*
 * Forged doorbells: datagrams to every name of the page's generation
 * (slots nobody or the attacker binds), to names of other generations, and
 * every free slot's doorbell name squatted by a directory, so a loop that
 * claims one cannot bind it.  The victim that cannot bind falls back to
 * the per-boot grid (no slot kept, no ring), and fires as before.  An
 * audit that found nothing to fix: the loop before hostile41 passes it.
 */
static void test_forged_and_squatted_doorbells_cost_nothing(void **state)
{
	(void)state;
	char names[THOTH_TIMERPAGE_SLOTS][108];
	bool made[THOTH_TIMERPAGE_SLOTS] = { false };
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
		struct sockaddr_un a;
		assert_int_equal(bell_addr((int)i, &a), 0);
		memcpy(names[i], a.sun_path, sizeof names[i]);
		if (atomic_load(&page->slot[i].owner) == 0)
			made[i] = mkdir(names[i], 0700) == 0;
	}
	victim_t *v = victim_new(20, 5, 600);
	victim_start(v);
	int slot = atomic_load(&v->slot);
	/* Forged names: other generations, slots out of range, every slot. */
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(s >= 0);
	const char *forged[] = { "tk.0.0", "tk.ffffffff.1", "tk.1.-1", "tk.1.4294967295", "tk..", "tk" };
	for (int round = 0; round < 50; round++) {
		for (unsigned k = 0; k < sizeof forged / sizeof forged[0]; k++) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", h.dir, forged[k]);
			(void)sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
		}
		for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
			struct sockaddr_un a = { .sun_family = AF_UNIX };
			memcpy(a.sun_path, names[i], sizeof names[i]);
			(void)sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a);
		}
		usleep(10000);
	}
	close(s);
	victim_await(v);
	unsigned squatted = 0, removed = 0;
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++)
		if (made[i]) {
			squatted++;
			removed += rmdir(names[i]) == 0;
		}
	assert_int_equal(removed, squatted);
	print_message("the victim's slot: %d (-1: every free name squatted, the grid); %u names squatted\n",
		      slot, squatted);
	victim_judge(v, "forged names, squatted slots");
	assert_int_equal(slot, -1);
}

/* ---- window slots ----------------------------------------------------------- */

/*
 * A slot's owner word rewritten under its loop: here the attacker takes a
 * running victim's slot for itself and binds the slot's doorbell name, as
 * a loop claiming it would after the owner was zeroed (or after thothd
 * reaped it for a forged dead owner).  The victim must leave the slot to
 * its new owner: the old loop kept posting its instants over the taker's
 * and, when it ended, posted zeros and unlinked the taker's doorbell.  Now
 * it notices at its next re-arm, moves to the per-boot grid (no churn of
 * slots whatever the owner words say) and still fires every period.
 */
static void test_a_slot_taken_from_its_loop_is_left_to_the_taker(void **state)
{
	(void)state;
	victim_t *v = victim_new(20, 5, 600);
	victim_start(v);
	int slot = atomic_load(&v->slot);
	assert_true(slot >= 0);
	uint32_t me = (uint32_t)gettid(), was = (uint32_t)v->pid;
	assert_true(atomic_compare_exchange_strong(&page->slot[slot].owner, &was, me));
	struct sockaddr_un a;
	assert_int_equal(bell_addr(slot, &a), 0);
	unlink(a.sun_path);
	int bell = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(bell >= 0);
	assert_int_equal(bind(bell, (struct sockaddr *)&a, sizeof a), 0);
	uint64_t at = thoth_clock_now() + 3600000 * MS, due = at - MS;
	timerpage_post(page, slot, at, due);
	victim_await(v);
	/* The taker's slot, words and doorbell are as it left them. */
	uint32_t owner = atomic_load(&page->slot[slot].owner);
	uint64_t at_now = atomic_load(&page->slot[slot].at), due_now = atomic_load(&page->slot[slot].due);
	struct stat st;
	bool bell_there = lstat(a.sun_path, &st) == 0 && S_ISSOCK(st.st_mode);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	char c = 0;
	bool reaches_us = s >= 0 && sendto(s, "k", 1, 0, (struct sockaddr *)&a, sizeof a) == 1 &&
			  recv(bell, &c, 1, 0) == 1 && c == 'k';
	if (s >= 0)
		close(s);
	close(bell);
	unlink(a.sun_path);
	atomic_store(&page->slot[slot].owner, 0);
	timerpage_post(page, slot, 0, 0);
	print_message("slot %d after its loop ended: owner %s, at/due %s, doorbell %s\n", slot,
		      owner == me ? "the taker" : "changed", at_now == at && due_now == due ? "the taker's" : "overwritten",
		      reaches_us ? "the taker's" : "gone");
	victim_judge(v, "a loop whose slot was taken");
	assert_true(owner == me);
	assert_true(at_now == at && due_now == due);
	assert_true(bell_there && reaches_us);
}

static const uint64_t hostile_instants[] = {
	0, 1, 2, 1000, (uint64_t)INT64_MAX, (uint64_t)INT64_MIN, UINT64_MAX, UINT64_MAX - 1,
	(uint64_t)INT64_MAX + 1000,
};

typedef struct scribbler {
	_Atomic bool stop;
	uint64_t writes;
	pid_t keep[2];                  /* victims: their slots get due-in-the-past, wake-far lies */
} scribbler_t;

static uint64_t xorshift(uint64_t *r)
{
	*r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
	return *r;
}

/* Every word of every slot, racing the readers: owners that are live
 * (ours, pid 1), dead (a reaped child), reaping, absurd; instants in the
 * past, now, far future, INT64_MIN/MAX, deadlines after the wake-up, and
 * a high-water mark that changes on every write.  The victims' own slots
 * keep their owner (the doorbell stays theirs) but say "deadline passed,
 * waking far away": every honest loop's timer wake-up rings them. */
static void *scribble_main(void *arg)
{
	scribbler_t *sc = arg;
	uint64_t r = 0x9e3779b97f4a7c15ull;
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	uint32_t owners[] = { (uint32_t)getpid(), 1, (uint32_t)dead, THOTH_TIMERPAGE_REAPING, 0x7fffffffu,
			      0x80000000u, 0 };
	while (!atomic_load_explicit(&sc->stop, memory_order_relaxed)) {
		uint64_t now = thoth_clock_now();
		for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
			timerpage_slot_t *s = &page->slot[i];
			uint32_t o = atomic_load(&s->owner);
			bool victim = o && (o == (uint32_t)sc->keep[0] || o == (uint32_t)sc->keep[1]);
			uint64_t x = xorshift(&r);
			if (victim) {
				atomic_store(&s->due, x % 2 ? 1 : now - 1000);
				atomic_store(&s->at, x % 3 ? UINT64_MAX : now + 1000 * MS);
				continue;
			}
			if (x % 4 == 0)
				atomic_store(&s->owner, owners[(x >> 8) % (sizeof owners / sizeof owners[0])]);
			uint64_t pick = hostile_instants[(x >> 16) % (sizeof hostile_instants / sizeof hostile_instants[0])];
			uint64_t rel = now + ((x >> 24) % 2000) * MS - 1000 * MS;
			atomic_store(&s->at, (x >> 32) % 2 ? pick : rel);
			atomic_store(&s->due, (x >> 40) % 2 ? rel : pick);
			sc->writes++;
		}
		atomic_store(&page->high, (uint32_t)xorshift(&r));
		sched_yield();          /* racing, not hogging a shared CPU */
	}
	return NULL;
}

/* Connections closing, so thothd reaps the page (dead and absurd owners
 * among the scribbles) while the loops read it. */
static void *churn_main(void *arg)
{
	_Atomic bool *stop = arg;
	while (!atomic_load(stop)) {
		thoth_control_t c;
		if (harness_connect(&h, &c) == 0)
			thoth_control_close(&c);
		usleep(20000);
	}
	return NULL;
}

/*
 * A slow victim (50 ms period) and a fast honest loop (5 ms period, 2 ms
 * slack) in two processes; the attacker writes the victim's slot to say
 * its deadline has passed and it wakes far away, so the fast loop rings
 * it at each of its own 200 timer wake-ups a second, and scribbles every
 * other word of the page meanwhile while thothd reaps.  The old victim woke
 * once per ring (the fast loop's rate, ~10x its own); now it is bounded by
 * its own rate.  Both fire every period, none early, and thothd answers.
 */
static void test_lies_in_a_slot_cost_the_victim_its_own_rate_at_most(void **state)
{
	(void)state;
	victim_t *slow = victim_new(50, 5, 1500), *fast = victim_new(5, 2, 1500);
	victim_start(slow);
	victim_start(fast);
	assert_true(atomic_load(&slow->slot) >= 0 && atomic_load(&fast->slot) >= 0);
	scribbler_t sc = { .keep = { slow->pid, fast->pid } };
	_Atomic bool stop_churn = false;
	pthread_t ts, tc;
	assert_int_equal(pthread_create(&ts, NULL, scribble_main, &sc), 0);
	assert_int_equal(pthread_create(&tc, NULL, churn_main, &stop_churn), 0);
	victim_await(slow);
	victim_await(fast);
	atomic_store(&sc.stop, true);
	atomic_store(&stop_churn, true);
	pthread_join(ts, NULL);
	pthread_join(tc, NULL);
	print_message("scribbler: %llu slot writes\n", (unsigned long long)sc.writes);
	/* The fast loop rang: the lie was believed, and it cost the victim no
	 * more than its own rate. */
	uint64_t fast_bells = fast->bells, slow_rung = slow->rung;
	victim_judge(slow, "slow victim, lied about");
	victim_judge(fast, "fast honest loop");
	assert_true(fast_bells > 0);
	/* ... and reached the victim (the fast loop also rings the page's
	 * other lying slots: its bells alone do not show it). */
	assert_true(slow_rung > 0);
	/* thothd lived through the scribbles and its reaps. */
	thoth_daemon_Daemon_status_resp_t st;
	assert_int_equal(harness_status(&ctl, &st), 0);
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
		atomic_store(&page->slot[i].owner, 0);
		timerpage_post(page, (int)i, 0, 0);
	}
	atomic_store(&page->high, 0);
}

static int setup(void **state)
{
	(void)state;
	if (harness_setup(&h) || harness_start_thothd(&h, NULL) <= 0 || harness_connect(&h, &ctl))
		return -1;
	page = thoth__timerpage_current();
	return page ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	thoth_control_close(&ctl);
	harness_teardown(&h);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_doorbell_flood_costs_two_wakeups_per_period),
		cmocka_unit_test(test_a_doorbell_flood_leaves_thothd_asleep),
		cmocka_unit_test(test_forged_and_squatted_doorbells_cost_nothing),
		cmocka_unit_test(test_a_slot_taken_from_its_loop_is_left_to_the_taker),
		cmocka_unit_test(test_lies_in_a_slot_cost_the_victim_its_own_rate_at_most),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
