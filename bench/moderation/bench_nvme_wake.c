/*
 * bench_nvme_wake - what the NVMe loop's real wake-up on I/O gives
 * (kernel/pm/moderation_nvme.c: a perf block_rq_issue event per CPU,
 * filtered in the kernel to the namespaces' dev_t), on a block device of
 * this machine.  There is no NVMe controller here, so the "namespace" is a
 * loop device of its own (a 64 MiB file under $TMPDIR): nothing else
 * issues I/O to it, so its idle is really idle, while the disk under it
 * (shared with every other process here) keeps completing other I/O that
 * the kernel's filter must drop.  The counters and the controller are a
 * fixture and a recording fake, as in bench_nvme_loop.
 *
 *   bench_nvme_wake [--runs N (3)] [--idle-s N (60)] [--requests N (40)]
 *                   [--slow N (20)] [--hold-ms N (30)]
 *
 * Needs root (a loop device; perf tracepoint events on every CPU) and
 * tracefs mounted at /sys/kernel/tracing; without them it prints a SKIP
 * line saying which and exits 0 (make bench runs every bench).  The
 * devices come from tests/common/blockdev.h, shared with the test.
 *
 * Per run:
 *   - idle: --idle-s seconds with no I/O on the loop device; the loop's
 *     wake-ups (its own count) and the voluntary context switches of the
 *     thread that runs it, and how many requests the other disks completed
 *     meanwhile (all filtered out).  Baseline in the same run: a 10 ms
 *     sampler of the same counters, over 2 s, scaled to a minute;
 *   - latency: --requests times, after a 20-50 ms pause with the loop idle,
 *     a writer thread issues one 4 KiB O_DIRECT write to the loop device;
 *     the time from just before the write to the loop's wake-up
 *     (thoth_nvmemod_stats.woke_ns), and whether it woke within 1 s.
 *     Baseline in the same run, on the same requests: what the wake-up
 *     used before, a block_rq_complete perf event per CPU with the same
 *     filter and attributes, polled by the writer after its write returns:
 *     whether it rang within 1 s, and when;
 *   - slow requests (--slow of them; 0: none): a second loop ("nvme1",
 *     the default 10 ms sample period and 100 ms stall time) on a loop
 *     device whose writes are held in flight by freezing the ext4 under
 *     its backing file (blk_slow_*).  Each 4 KiB write is held --hold-ms
 *     plus 0-10 ms (so the release falls anywhere in a sample period):
 *     whether the loop stayed awake, in the busy period the issue began,
 *     until the release; how long after the release (FITHAW returned) its
 *     sample counted the completion, or that none did within 1 s (a loop
 *     that went idle with the write in flight: the completion rings
 *     nothing); its samples per request;
 *   - the disk under $TMPDIR (this VM's virtio disk, shared): --requests
 *     rounds of a pause and one 4 KiB write + fdatasync, a block_rq_issue
 *     and a block_rq_complete event per CPU filtered to that disk: the
 *     share of the requests each counted (read()) whose sample it wrote
 *     to its ring.  A sample not written is a wake-up that never comes.
 * Medians over the runs (the latencies: median and p90 within a run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "../../tests/common/blockdev.h"
#include "moderation_nvme.h"
#include "thoth/loop.h"

enum { MAX_RUNS = 15, MAX_REQ = 1000, ROUND_MS = 1000, MAX_CPUS = 256 };

static char root[PATH_MAX];

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void put_file(const char *rel, const char *text)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(p);
	close(fd);
}

/* ---- the baseline: the old wake-up, block_rq_complete -------------------------- */

typedef struct {
	int fds[MAX_CPUS];
	struct perf_event_mmap_page *rings[MAX_CPUS];
	int n;
} oldwake_t;

static int tpev_open(oldwake_t *o, const char *tp, uint32_t kdev, char *why, size_t why_len)
{
	char path[128];
	snprintf(path, sizeof path, "/sys/kernel/tracing/events/block/%s/id", tp);
	FILE *f = fopen(path, "re");
	unsigned long long id = 0;
	if (!f || fscanf(f, "%llu", &id) != 1) {
		if (f)
			fclose(f);
		snprintf(why, why_len, "%s not visible (tracefs not mounted at /sys/kernel/tracing)", tp);
		return -1;
	}
	fclose(f);
	char filter[32];
	snprintf(filter, sizeof filter, "dev == %u", kdev);
	struct perf_event_attr a = { .type = PERF_TYPE_TRACEPOINT, .size = sizeof a, .config = id,
				     .sample_period = 1, .wakeup_events = 1, .disabled = 1 };
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	o->n = 0;
	for (long c = 0; c < ncpu && c < MAX_CPUS; c++) {
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, (int)c, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0)
			continue;
		void *ring = MAP_FAILED;
		if (ioctl(fd, PERF_EVENT_IOC_SET_FILTER, filter) ||
		    (ring = mmap(NULL, 2 * (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
			    MAP_FAILED) {
			snprintf(why, why_len, "%s event: %s", tp, strerror(errno));
			close(fd);
			return -1;
		}
		o->rings[o->n] = ring;
		o->fds[o->n++] = fd;
	}
	if (!o->n) {
		snprintf(why, why_len, "no CPU accepted a %s event", tp);
		return -1;
	}
	return 0;
}

/* Disarm, drop any readiness left, re-arm (the ring: each arm starts at
 * the head, as the library does). */
static void oldwake_rearm(oldwake_t *o)
{
	struct pollfd p[MAX_CPUS];
	for (int i = 0; i < o->n; i++) {
		ioctl(o->fds[i], PERF_EVENT_IOC_DISABLE, 0);
		p[i] = (struct pollfd){ .fd = o->fds[i], .events = POLLIN };
	}
	while (poll(p, (nfds_t)o->n, 0) > 0)
		;
	for (int i = 0; i < o->n; i++) {
		uint64_t head = __atomic_load_n(&o->rings[i]->data_head, __ATOMIC_ACQUIRE);
		__atomic_store_n(&o->rings[i]->data_tail, head, __ATOMIC_RELEASE);
		ioctl(o->fds[i], PERF_EVENT_IOC_ENABLE, 0);
	}
}

/* Over every CPU: what the event counted (read()) and the samples it
 * wrote since the last call; the rings are emptied. */
static void tpev_take(oldwake_t *o, uint64_t *counted, uint64_t *written)
{
	*counted = *written = 0;
	size_t dsz = (size_t)sysconf(_SC_PAGESIZE);
	for (int i = 0; i < o->n; i++) {
		uint64_t v = 0;
		if (read(o->fds[i], &v, sizeof v) == (ssize_t)sizeof v)
			*counted += v;
		ioctl(o->fds[i], PERF_EVENT_IOC_RESET, 0);
		struct perf_event_mmap_page *m = o->rings[i];
		const unsigned char *d = (const unsigned char *)m + dsz;
		uint64_t head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE), t = m->data_tail;
		while (t < head) {
			struct perf_event_header h;
			size_t off = (size_t)(t % dsz);
			if (off + sizeof h > dsz)
				break;   /* records are 8 bytes: never split */
			memcpy(&h, d + off, sizeof h);
			if (!h.size)
				break;
			if (h.type == PERF_RECORD_SAMPLE)
				(*written)++;
			t += h.size;
		}
		__atomic_store_n(&m->data_tail, head, __ATOMIC_RELEASE);
	}
}

static bool oldwake_wait(oldwake_t *o, int ms)
{
	struct pollfd p[MAX_CPUS];
	for (int i = 0; i < o->n; i++)
		p[i] = (struct pollfd){ .fd = o->fds[i], .events = POLLIN };
	return poll(p, (nfds_t)o->n, ms) > 0;
}

/* ---- the writer thread ------------------------------------------------------ */

typedef struct {
	blk_loop_t *ld;
	oldwake_t *old;
	void *buf;
	atomic_int go;                 /* request number to issue (-2: none yet, -1: quit) */
	atomic_int done;               /* last request finished (-1: none) */
	uint64_t t0[MAX_REQ];          /* just before the write */
	uint64_t old_ns[MAX_REQ];      /* 0: the old wake-up did not ring within 1 s */
} writer_t;

static void *writer_main(void *arg)
{
	writer_t *w = arg;
	int last = -1;
	for (;;) {
		int g = atomic_load(&w->go);
		if (g == -1)
			return NULL;
		if (g < 0 || g == last) {
			usleep(200);
			continue;
		}
		last = g;
		/* a pause with everything idle: the CPUs go idle, as on a quiet machine */
		usleep(20000 + (unsigned)(rand() % 30000));
		oldwake_rearm(w->old);
		uint64_t t0 = thoth_clock_now();
		w->t0[g] = t0;
		if (pwrite(w->ld->fd, w->buf, 4096, (off_t)(g % 1024) * 4096) != 4096)
			die("pwrite to the loop device");
		w->old_ns[g] = oldwake_wait(w->old, ROUND_MS) ? thoth_clock_now() - t0 : 0;
		atomic_store(&w->done, g);
	}
}

/* ---- the loop side ------------------------------------------------------------ */

static void tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)loop;
	(void)t;
	*(bool *)arg = true;
}

/* Run LOOP until PRED(ARG) or MS pass. */
static bool run_until(thoth_loop_t *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
	uint64_t end = thoth_clock_now() + (uint64_t)ms * 1000000u;
	while (!pred(arg) && thoth_clock_now() < end) {
		bool fired = false;
		thoth_timer_t *t;
		thoth_loop_add_timer_in(loop, 5000000u, 0, tick, &fired, &t);
		thoth_loop_run_once(loop, true);
		if (!fired)
			thoth_timer_cancel(loop, t);
	}
	return pred(arg);
}

typedef struct {
	thoth_nvmemod_t *m;
	uint64_t wakes;
	writer_t *w;
	int req;
} cond_t;

static bool woke(void *arg)
{
	cond_t *c = arg;
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(c->m, &st);
	return st.wakes >= c->wakes;
}

static bool idle_and_written(void *arg)
{
	cond_t *c = arg;
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(c->m, &st);
	return !st.busy && atomic_load(&c->w->done) >= c->req;
}

static void sampler_tick(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	thoth_nvme_counters_t c;
	thoth_nvme_read_counters("nvme0", &c, NULL, 0);
	(*(uint64_t *)arg)++;
	thoth_timer_rearm(loop, t, thoth_clock_now() + 10000000u, 0);
}

static long thread_nvcsw(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

/* Requests completed by this machine's block devices other than loop and
 * zram devices (/proc/diskstats: reads + writes + discards + flushes). */
static uint64_t machine_ios(void)
{
	FILE *f = fopen("/proc/diskstats", "re");
	uint64_t sum = 0;
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		unsigned long long v[20] = { 0 };
		char name[64];
		int k = sscanf(line, "%*u %*u %63s %llu %*u %*u %*u %llu %*u %*u %*u %*u %*u %*u %llu %*u %*u %*u %llu", name,
			       &v[0], &v[1], &v[2], &v[3]);
		if (k >= 3 && strncmp(name, "loop", 4) && strncmp(name, "zram", 4))
			sum += v[0] + v[1] + (k >= 4 ? v[2] : 0) + (k >= 5 ? v[3] : 0);
	}
	if (f)
		fclose(f);
	return sum;
}

/* ---- slow requests: held in flight on a loop device over a frozen ext4 --------- */

typedef struct {
	int fd;
	void *buf;
	uint64_t done_ns;             /* 0 until the write returned */
	ssize_t wrote;
} slow_write_t;

/* A bench stopped (SIGINT, SIGTERM) while it holds a write must not leave
 * the ext4 frozen: thaw it, let go of the mount, leave. */
static blk_slow_t *volatile slow_held;

static void on_stop(int sig)
{
	blk_slow_t *s = slow_held;
	if (s) {
		ioctl(s->mnt_fd, FITHAW, 0);
		close(s->dev.fd);
		close(s->mnt_fd);
		umount2(s->mnt, MNT_DETACH);
		rmdir(s->mnt);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void *slow_write_main(void *arg)
{
	slow_write_t *w = arg;
	w->wrote = pwrite(w->fd, w->buf, 4096, 0);
	__atomic_store_n(&w->done_ns, thoth_clock_now(), __ATOMIC_RELEASE);
	return NULL;
}

typedef struct {
	thoth_nvmemod_t *m;
	uint64_t ios;                 /* the loop's last read counted more than this */
} seen_t;

static bool loop_saw(void *arg)
{
	seen_t *c = arg;
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(c->m, &st);
	return st.counters.ios > c->ios;
}

static bool loop_idle(void *arg)
{
	thoth_nvmemod_stats_t st;
	thoth_nvmemod_stats(((seen_t *)arg)->m, &st);
	return !st.busy && !st.stalled;
}

typedef struct {
	int n, awake, idled, never_seen;      /* requests; stayed awake to the completion; ... */
	int unwoken;                          /* the issue did not wake the loop within 1 s */
	int early;                            /* woken before the write was issued: not measured */
	int stalled;                          /* backed off, stall_us (100 ms) passed since the issue */
	double seen_ms[MAX_REQ];              /* completion -> the loop's sample counted it */
	double samples;                       /* loop samples per held request */
} slow_result_t;

/* N requests, each held HOLD_MS in flight, on the loop "nvme1" (sample
 * period 10 ms, the default; stall 100 ms, the default) whose namespace
 * is S's device. */
static void slow_phase(blk_slow_t *s, void *buf, int n, int hold_ms, slow_result_t *out)
{
	memset(out, 0, sizeof *out);
	thoth_nvme_fake_t fake;
	thoth_nvme_fake_init(&fake, 0);
	thoth_loop_t *loop;
	if (thoth_loop_new(&loop))
		die("thoth_loop_new");
	thoth_nvmemod_config_t cfg = { .ctrl = "nvme1", .policy = { .kind = THOTH_MOD_ADAPTIVE },
				       .wake = THOTH_NVMEMOD_WAKE_PERF, .admin = thoth_nvme_fake_admin(&fake) };
	thoth_nvmemod_t *m;
	char why[300];
	if (thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why)) {
		printf("# slow requests: the loop would not start: %s\n", why);
		thoth_loop_free(loop);
		return;
	}
	uint64_t samples = 0;
	for (int i = 0; i < n; i++) {
		seen_t c = { .m = m };
		run_until(loop, loop_idle, &c, 3000);
		usleep(20000 + (unsigned)(rand() % 30000));
		thoth_nvmemod_stats_t st0, st1;
		thoth_nvmemod_stats(m, &st0);
		slow_write_t w = { .fd = s->dev.fd, .buf = buf };
		if (blk_slow_hold(s, true))
			die("FIFREEZE");
		pthread_t t;
		if (pthread_create(&t, NULL, slow_write_main, &w))
			die("pthread_create");
		/* Held from the issue (the loop's wake-up), not from the
		 * thread's start, which a loaded machine delays. */
		cond_t wc = { .m = m, .wakes = st0.wakes + 1 };
		bool woke_up = run_until(loop, woke, &wc, 1000);
		thoth_nvmemod_stats(m, &st0);
		/* Woken by this write, or by something else before the writer
		 * (late on a loaded machine) issued it?  The kernel's count
		 * says; the latter is counted apart, not measured. */
		thoth_nvme_counters_t kc;
		bool issued = !thoth_nvme_read_counters("nvme1", &kc, NULL, 0) && kc.inflight;
		/* Plus 0-10 ms, so the release falls anywhere in a sample
		 * period: a timer of its own, not run_until's 5 ms turns, whose
		 * phase follows the loop's samples. */
		bool fired = false;
		thoth_timer_t *rt;
		thoth_loop_add_timer(loop, thoth_clock_now() + (uint64_t)hold_ms * 1000000u + (uint64_t)(rand() % 10000) * 1000u,
				     0, tick, &fired, &rt);
		while (!fired)
			thoth_loop_run_once(loop, true);
		thoth_nvmemod_stats(m, &st1);
		bool held = !__atomic_load_n(&w.done_ns, __ATOMIC_ACQUIRE);
		blk_slow_hold(s, false);
		uint64_t released_ns = thoth_clock_now();
		c.ios = st1.counters.ios;
		bool seen = run_until(loop, loop_saw, &c, 1000);
		uint64_t seen_ns = thoth_clock_now();
		pthread_join(t, NULL);
		if (w.wrote != 4096 || !held)
			die("the held write");
		if (!woke_up) {
			out->unwoken++;
			continue;
		}
		if (!issued) {
			out->early++;
			continue;
		}
		out->n++;
		if (st1.wakes == st0.wakes && st1.busy && st1.idles == st0.idles)
			out->awake++;
		else if (st1.wakes == st0.wakes && st1.stalls > st0.stalls)
			out->stalled++;      /* stall_us passed: the loop was starved of CPU that long */
		else
			out->idled++;
		samples += st1.samples - st0.samples;
		/* From the thaw's return: the write completes right after it. */
		if (seen)
			out->seen_ms[out->n - 1 - out->never_seen] = (double)(seen_ns - released_ns) / 1e6;
		else
			out->never_seen++;
	}
	out->samples = out->n ? (double)samples / out->n : 0;
	thoth_nvmemod_stop(m);
	thoth_loop_free(loop);
}

static double median(double *v, int n)
{
	if (n <= 0)
		return -1;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
			double t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double pct(double *v, int n, int p)
{
	if (n <= 0)
		return -1;
	median(v, n); /* sorts */
	int i = (n * p + 99) / 100 - 1;
	return v[i < 0 ? 0 : i];
}

int main(int argc, char **argv)
{
	int runs = 3, idle_s = 60, requests = 40, slow = 20, hold_ms = 30;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--idle-s") && i + 1 < argc)
			idle_s = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--slow") && i + 1 < argc)
			slow = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--hold-ms") && i + 1 < argc)
			hold_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--requests") && i + 1 < argc)
			requests = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: bench_nvme_wake [--runs N] [--idle-s N] [--requests N] [--slow N] [--hold-ms N]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || idle_s < 1 || idle_s > 600 || requests < 1 || requests > MAX_REQ || slow < 0 ||
	    slow > MAX_REQ || hold_ms < 1 || hold_ms > 5000) {
		fprintf(stderr, "bench_nvme_wake: --runs 1..%d, --idle-s 1..600, --requests 1..%d, --slow 0..%d, "
			"--hold-ms 1..5000\n", MAX_RUNS, MAX_REQ, MAX_REQ);
		return 2;
	}
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char why[300];
	blk_loop_t ld;
	if (blk_loop_new(tmp, 64 << 20, &ld, why, sizeof why)) {
		printf("SKIP: a loop device of its own is needed (root): %s\n", why);
		return 0;
	}
	uint32_t kdev = ld.major << 20 | ld.minor;
	snprintf(root, sizeof root, "%s/bench-nvme-wake-root-XXXXXX", tmp);
	if (!mkdtemp(root))
		die("mkdtemp");
	const char *dirs[] = { "sys", "sys/block", "sys/block/nvme0n1", "proc" };
	blk_slow_t sl;
	bool have_slow = slow > 0;
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	char dev[32];
	snprintf(dev, sizeof dev, "%u:%u\n", ld.major, ld.minor);
	put_file("sys/block/nvme0n1/dev", dev);
	put_file("sys/block/nvme0n1/stat", "100 0 800 0 100 0 800 0 0 0 0\n");
	put_file("proc/interrupts", "            CPU0       CPU1\n"
				    "  25:         10          0  PCI-MSIX-0000:00:04.0    1-edge      nvme0q1\n");
	if (have_slow) {
		/* The second controller's namespace is the slow device itself
		 * (its sysfs directory): dev_t and counters are the kernel's. */
		if (blk_slow_open(tmp, &sl, why, sizeof why)) {
			printf("# no slow-request phase: %s\n", why);
			have_slow = false;
		} else {
			char link[PATH_MAX + 64], target[96];
			snprintf(link, sizeof link, "%s/sys/block/nvme1n1", root);
			snprintf(target, sizeof target, "/sys/block/%s", sl.dev.name);
			if (symlink(target, link))
				die("symlink");
			slow_held = &sl;
			signal(SIGINT, on_stop);
			signal(SIGTERM, on_stop);
		}
	}
	setenv("THOTH_SYSFS_ROOT", root, 1);

	oldwake_t old;
	if (tpev_open(&old, "block_rq_complete", kdev, why, sizeof why)) {
		printf("SKIP: %s\n", why);
		return 0;
	}
	writer_t *w = calloc(1, sizeof *w);
	if (!w || posix_memalign(&w->buf, 4096, 4096))
		die("memory");
	memset(w->buf, 0x5a, 4096);
	w->ld = &ld;
	w->old = &old;
	atomic_store(&w->go, -2);
	atomic_store(&w->done, -1);
	pthread_t wt;
	if (pthread_create(&wt, NULL, writer_main, w))
		die("pthread_create");

	double r_wakes[MAX_RUNS], r_nvcsw[MAX_RUNS], r_others[MAX_RUNS], r_sampler[MAX_RUNS];
	double r_new_med[MAX_RUNS], r_new_p90[MAX_RUNS], r_new_miss[MAX_RUNS];
	double r_old_med[MAX_RUNS], r_old_p90[MAX_RUNS], r_old_miss[MAX_RUNS];
	double r_disk_issue[MAX_RUNS], r_disk_complete[MAX_RUNS];
	double r_slow_awake[MAX_RUNS], r_slow_idled[MAX_RUNS], r_slow_never[MAX_RUNS], r_slow_seen[MAX_RUNS],
		r_slow_seen90[MAX_RUNS], r_slow_samples[MAX_RUNS];
	double load[3] = { 0 };
	/* the disk under TMPDIR: both tracepoints, same filter, same attributes */
	uint32_t disk = 0;
	char diskname[32] = "";
	oldwake_t dis, dco;
	bool have_disk = blk_disk_of(tmp, &disk, diskname, sizeof diskname) &&
			 !tpev_open(&dis, "block_rq_issue", disk, why, sizeof why) &&
			 !tpev_open(&dco, "block_rq_complete", disk, why, sizeof why);
	if (!have_disk)
		printf("# %s is not on a block device, or: %s: no disk phase\n", tmp, why);
	int req_base = 0;
	printf("# bench_nvme_wake: %s (%u:%u, kernel dev_t %u), %d runs, idle %d s, %d requests a run\n", ld.path, ld.major,
	       ld.minor, kdev, runs, idle_s, requests);
	for (int r = 0; r < runs; r++) {
		thoth_nvme_fake_t fake;
		thoth_nvme_fake_init(&fake, 0);
		thoth_loop_t *loop;
		if (thoth_loop_new(&loop))
			die("thoth_loop_new");
		thoth_nvmemod_config_t cfg = { .ctrl = "nvme0", .policy = { .kind = THOTH_MOD_ADAPTIVE }, .sample_us = 1000,
					       .wake = THOTH_NVMEMOD_WAKE_PERF, .admin = thoth_nvme_fake_admin(&fake) };
		thoth_nvmemod_t *m;
		int rc = thoth_nvmemod_start(loop, &cfg, &m, why, sizeof why);
		if (rc) {
			printf("%s: the loop would not start: %s\n",
			       rc == THOTH_E_PERM || rc == THOTH_E_NOT_FOUND ? "SKIP" : "FAIL", why);
			return rc == THOTH_E_PERM || rc == THOTH_E_NOT_FOUND ? 0 : 1;
		}
		/* idle */
		thoth_nvmemod_stats_t st0, st1;
		thoth_nvmemod_stats(m, &st0);
		long cs0 = thread_nvcsw();
		uint64_t io0 = machine_ios();
		bool fired = false;
		thoth_timer_t *t;
		thoth_loop_add_timer_in(loop, (uint64_t)idle_s * 1000000000u, 0, tick, &fired, &t);
		while (!fired)
			thoth_loop_run_once(loop, true);
		thoth_nvmemod_stats(m, &st1);
		long cs1 = thread_nvcsw();
		r_wakes[r] = (double)(st1.wakes - st0.wakes) * 60.0 / idle_s;
		/* the end-of-idle timer is one switch of its own */
		r_nvcsw[r] = (double)(cs1 - cs0 > 0 ? cs1 - cs0 - 1 : 0) * 60.0 / idle_s;
		r_others[r] = (double)(machine_ios() - io0) * 60.0 / idle_s;
		/* the baseline: a 10 ms sampler, 2 s */
		uint64_t ticks = 0;
		thoth_timer_t *s;
		thoth_loop_add_timer_in(loop, 10000000u, 0, sampler_tick, &ticks, &s);
		fired = false;
		thoth_loop_add_timer_in(loop, 2000000000u, 0, tick, &fired, &t);
		while (!fired)
			thoth_loop_run_once(loop, true);
		thoth_timer_cancel(loop, s);
		r_sampler[r] = (double)ticks * 30.0;
		/* latency */
		double nv[MAX_REQ], ov[MAX_REQ];
		int nn = 0, on = 0, nmiss = 0, omiss = 0;
		for (int i = 0; i < requests; i++) {
			int g = req_base + i;
			cond_t c = { .m = m, .w = w, .req = g - 1 };
			run_until(loop, idle_and_written, &c, 3000);
			thoth_nvmemod_stats(m, &st0);
			c.wakes = st0.wakes + 1;
			atomic_store(&w->go, g);
			bool ok = run_until(loop, woke, &c, 100 + ROUND_MS);
			thoth_nvmemod_stats(m, &st1);
			c.req = g;
			run_until(loop, idle_and_written, &c, 3000);
			if (ok && st1.woke_ns >= w->t0[g])
				nv[nn++] = (double)(st1.woke_ns - w->t0[g]) / 1000.0;
			else
				nmiss++;
			if (w->old_ns[g])
				ov[on++] = (double)w->old_ns[g] / 1000.0;
			else
				omiss++;
		}
		req_base += requests;
		/* the disk: samples written / counted, both tracepoints */
		r_disk_issue[r] = r_disk_complete[r] = -1;
		if (have_disk) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/bench-nvme-wake-disk-XXXXXX", tmp);
			int fd = mkstemp(path);
			if (fd < 0)
				die("mkstemp");
			uint64_t ci = 0, wi = 0, cc = 0, wc = 0, a, b;
			oldwake_rearm(&dis);
			oldwake_rearm(&dco);
			tpev_take(&dis, &a, &b);
			tpev_take(&dco, &a, &b);
			for (int i = 0; i < requests; i++) {
				usleep(20000 + (unsigned)(rand() % 30000));
				if (pwrite(fd, w->buf, 4096, (off_t)i * 4096) != 4096 || fdatasync(fd))
					die("write + fdatasync");
				usleep(10000);
				tpev_take(&dis, &a, &b);
				ci += a;
				wi += b;
				tpev_take(&dco, &a, &b);
				cc += a;
				wc += b;
			}
			close(fd);
			unlink(path);
			r_disk_issue[r] = ci ? 100.0 * (double)wi / (double)ci : -1;
			r_disk_complete[r] = cc ? 100.0 * (double)wc / (double)cc : -1;
			printf("run %d: disk %s, %d write + fdatasync rounds: block_rq_issue wrote %llu of %llu samples it "
			       "counted, block_rq_complete %llu of %llu\n",
			       r + 1, diskname, requests, (unsigned long long)wi, (unsigned long long)ci,
			       (unsigned long long)wc, (unsigned long long)cc);
		}
		r_slow_awake[r] = r_slow_idled[r] = r_slow_never[r] = r_slow_seen[r] = r_slow_seen90[r] = r_slow_samples[r] = -1;
		if (have_slow) {
			static slow_result_t sr;
			slow_phase(&sl, w->buf, slow, hold_ms, &sr);
			int ns = sr.n - sr.never_seen;
			r_slow_awake[r] = sr.awake;
			r_slow_idled[r] = sr.idled;
			r_slow_never[r] = sr.never_seen;
			r_slow_seen[r] = median(sr.seen_ms, ns);
			r_slow_seen90[r] = pct(sr.seen_ms, ns, 90);
			r_slow_samples[r] = sr.samples;
			printf("run %d: %d requests held %d-%d ms in flight on %s from their issue: the loop stayed awake to "
			       "the completion for %d, backed off for %d, went idle with it in flight for %d (not measured: %d did not wake it within "
			       "1 s, %d found it woken by something else first); its completion sampled %.1f ms (median; p90 %.1f) "
			       "after the release, never within 1 s for %d; %.1f samples a request\n",
			       r + 1, sr.n, hold_ms, hold_ms + 10, sl.dev.path, sr.awake, sr.stalled, sr.idled, sr.unwoken, sr.early,
			       r_slow_seen[r], r_slow_seen90[r], sr.never_seen, sr.samples);
		}
		r_new_med[r] = median(nv, nn);
		r_new_p90[r] = pct(nv, nn, 90);
		r_new_miss[r] = nmiss;
		r_old_med[r] = median(ov, on);
		r_old_p90[r] = pct(ov, on, 90);
		r_old_miss[r] = omiss;
		printf("run %d: idle: %.0f loop wake-ups/min, %.0f switches/min of its thread, %.0f requests/min on the "
		       "machine's other disks (filtered out); 10 ms sampler %.0f wake-ups/min | issue -> loop awake: median "
		       "%.0f us, p90 %.0f us, %d of %d never within 1 s | old block_rq_complete: median %.0f us, p90 %.0f us, "
		       "%d of %d never rang within 1 s\n",
		       r + 1, r_wakes[r], r_nvcsw[r], r_others[r], r_sampler[r], r_new_med[r], r_new_p90[r], nmiss, requests,
		       r_old_med[r], r_old_p90[r], omiss, requests);
		fflush(stdout);
		thoth_nvmemod_stop(m);
		thoth_loop_free(loop);
	}
	atomic_store(&w->go, -1);
	pthread_join(wt, NULL);
	getloadavg(load, 3);
	printf("medians over %d runs (load average %.2f %.2f %.2f at the end):\n", runs, load[0], load[1], load[2]);
	printf("  idle: loop wake-ups %.1f /min, its thread's voluntary switches %.1f /min; baseline 10 ms sampler %.0f "
	       "/min; other disks' requests meanwhile %.0f /min\n",
	       median(r_wakes, runs), median(r_nvcsw, runs), median(r_sampler, runs), median(r_others, runs));
	printf("  request issued -> loop awake (block_rq_issue): median %.0f us, p90 %.0f us, missed %.0f of %d\n",
	       median(r_new_med, runs), median(r_new_p90, runs), median(r_new_miss, runs), requests);
	printf("  baseline, the old block_rq_complete event on the same requests: median %.0f us, p90 %.0f us, "
	       "never rang %.0f of %d\n",
	       median(r_old_med, runs), median(r_old_p90, runs), median(r_old_miss, runs), requests);
	if (have_disk)
		printf("  the disk under %s (%s), same rounds: samples written / counted: block_rq_issue %.1f%%, "
		       "block_rq_complete %.1f%%\n",
		       tmp, diskname, median(r_disk_issue, runs), median(r_disk_complete, runs));
	if (have_slow)
		printf("  slow requests (held %d ms + 0-10 ms in flight from their issue, sample period 10 ms, %d a run): stayed awake to the completion "
		       "%.0f, went idle with it in flight %.0f; completion sampled %.1f ms (p90 %.1f) after the release, never "
		       "%.0f; %.1f samples a request\n",
		       hold_ms, slow, median(r_slow_awake, runs), median(r_slow_idled, runs), median(r_slow_seen, runs),
		       median(r_slow_seen90, runs), median(r_slow_never, runs), median(r_slow_samples, runs));
	close(ld.fd);
	if (have_slow) {
		char link[PATH_MAX + 64];
		snprintf(link, sizeof link, "%s/sys/block/nvme1n1", root);
		unlink(link);
		slow_held = NULL;
		blk_slow_close(&sl);
	}
	const char *files[] = { "sys/block/nvme0n1/dev", "sys/block/nvme0n1/stat", "proc/interrupts" };
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char p[PATH_MAX + 64];
		snprintf(p, sizeof p, "%s/%s", root, files[i]);
		unlink(p);
	}
	for (int i = (int)(sizeof dirs / sizeof *dirs) - 1; i >= 0; i--) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
		rmdir(p);
	}
	rmdir(root);
	free(w->buf);
	free(w);
	return 0;
}
