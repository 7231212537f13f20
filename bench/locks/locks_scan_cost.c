/* locks_scan_cost.c - what thothd's contention-ring poll costs per poll,
 * as it was (every process's /proc/PID/fd read at every poll) and as it is
 * (each process's table descriptor kept, lock43) (docs/LOCKS.md, "The ring
 * poll's cost").
 *
 *   locks_scan_cost LIBTHOTHLOCK LIVE_WORKLOAD [ROUNDS [POLLS]]
 *
 * For 1, 16 and 64 profiled processes (LIVE_WORKLOAD 1 under LD_PRELOAD in
 * a private runtime dir, each with one wait in its ring), ROUNDS rounds
 * (default 7) of POLLS polls (default 200) of each variant, order
 * alternating, CPU time of this process (user + system: the /proc reads
 * are system time) per poll:
 *   before  the scan before lock43, replayed here (poll_before): per marker
 *           per poll, thothlock_open_live (/proc/PID/fd listed, every link
 *           read, the memfd opened), then the ring opened on it (seals,
 *           header) and read;
 *   kept    thothd_lock_rings_poll as it is: each pid's memfd found once
 *           and kept with the pid's pidfd; per poll a poll() of the pidfd
 *           (is it gone?) and the marker's inode compared, then the ring
 *           opened on the kept descriptor and read, as before.
 * Prints each round and the medians; the load before and after.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "locks.h"
#include "lockprof_report.h"

#define MAX_PROCS 64

typedef struct {
	pid_t pid;
	FILE *in, *out;
} proc_t;

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load(const char *when)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "r");
	if (f && fgets(buf, sizeof buf, f))
		printf("load %s: %s", when, buf);
	if (f)
		fclose(f);
}

static int start(proc_t *p, const char *lib, const char *workload, const char *rt)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -1;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		setenv("LD_PRELOAD", lib, 1);
		setenv("THOTH_RUNTIME_DIR", rt, 1);
		unsetenv("THOTHLOCK_DIR");
		unsetenv("THOTHLOCK_FD");
		execl(workload, workload, "1", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = fdopen(in[1], "w");
	p->out = fdopen(out[0], "r");
	char line[64];
	return p->out && fgets(line, sizeof line, p->out) && strncmp(line, "ready", 5) == 0 ? 0 : -1;
}

static void on_event(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	(void)ev, (void)process;
	(*(uint64_t *)ctx)++;
}

static void on_wait(const thothlock_wait_t *w, void *ctx)
{
	(void)w;
	(*(uint64_t *)ctx)++;
}

/* The scan as it was before lock43 (locks_scan.c at 15a2c9d0), its
 * steps only: per marker per poll the memfd found through /proc/PID/fd,
 * the ring opened on it and read from where this process's last read
 * ended (KEPT_NEXT, by pid: the real scan keeps that per slot too). */
typedef struct {
	int pid;
	uint64_t next;
} next_t;

static void poll_before(const char *dir, next_t *nexts, int *n, uint64_t *waits)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (pid <= 0 || strcmp(end, ".table") != 0)
			continue;
		int fd = thothlock_open_live((int)pid, NULL, 0);
		if (fd < 0)
			continue;
		thothlock_ring_t *ring;
		int rc = thothlock_ring_open_fd(fd, e->d_name, &ring, NULL, 0);
		close(fd);
		if (rc)
			continue;
		next_t *k = NULL;
		for (int i = 0; i < *n && !k; i++)
			if (nexts[i].pid == pid)
				k = &nexts[i];
		if (!k && *n < MAX_PROCS)
			k = &nexts[(*n)++], *k = (next_t){ .pid = (int)pid };
		if (k)
			(void)thothlock_ring_read(ring, &k->next, on_wait, waits);
		thothlock_ring_free(ring);
	}
	if (d)
		closedir(d);
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 5) {
		fprintf(stderr, "usage: locks_scan_cost LIBTHOTHLOCK LIVE_WORKLOAD [ROUNDS [POLLS]]\n");
		return 2;
	}
	int rounds = argc > 3 ? atoi(argv[3]) : 7, polls = argc > 4 ? atoi(argv[4]) : 200;
	if (rounds < 1 || rounds > 100 || polls < 1 || polls > 100000) {
		fprintf(stderr, "locks_scan_cost: ROUNDS 1..100, POLLS 1..100000\n");
		return 2;
	}
	char rt[] = "/tmp/locks_scan_cost.XXXXXX", dir[64];
	if (!mkdtemp(rt))
		return 1;
	snprintf(dir, sizeof dir, "%s/locks", rt);
	static const int counts[] = { 1, 16, 64 };
	static proc_t procs[MAX_PROCS];
	int started = 0, status = 0;
	load("before");
	for (size_t c = 0; c < sizeof counts / sizeof counts[0] && !status; c++) {
		while (started < counts[c])
			if (start(&procs[started++], argv[1], argv[2], rt) != 0) {
				fprintf(stderr, "locks_scan_cost: %s did not start\n", argv[2]);
				status = 1;
				break;
			}
		double before[100], kept[100];
		next_t nexts[MAX_PROCS];
		int nnexts = 0;
		thothd_lock_rings_t *r;
		if (status || thothd_lock_rings_new(&r) != 0)
			break;
		uint64_t ev_before = 0, ev_kept = 0;
		for (int round = 0; round < rounds; round++) {
			for (int v = 0; v < 2; v++) {
				bool first_before = (round & 1) == 0;
				bool do_before = (v == 0) == first_before;
				double t0 = cpu_now();
				for (int i = 0; i < polls; i++) {
					if (do_before)
						poll_before(dir, nexts, &nnexts, &ev_before);
					else
						(void)thothd_lock_rings_poll(r, dir, 0, on_event, &ev_kept, NULL);
				}
				double per = (cpu_now() - t0) / polls;
				(do_before ? before : kept)[round] = per;
			}
			printf("%2d processes round %d: before %.1f us/poll, kept %.1f us/poll\n", counts[c],
			       round + 1, before[round] * 1e6, kept[round] * 1e6);
		}
		qsort(before, (size_t)rounds, sizeof before[0], cmp);
		qsort(kept, (size_t)rounds, sizeof kept[0], cmp);
		printf("%2d processes: median CPU per poll: before %.1f us, kept %.1f us (%.0f%% less); "
		       "waits read: before %llu, kept %llu\n",
		       counts[c], before[rounds / 2] * 1e6, kept[rounds / 2] * 1e6,
		       100.0 * (1 - kept[rounds / 2] / before[rounds / 2]), (unsigned long long)ev_before,
		       (unsigned long long)ev_kept);
		fflush(stdout);
		thothd_lock_rings_free(r);
	}
	load("after");
	for (int i = 0; i < started; i++) {
		if (procs[i].in)
			fclose(procs[i].in);
		if (procs[i].out)
			fclose(procs[i].out);
		waitpid(procs[i].pid, NULL, 0);
	}
	/* The workloads removed their markers at exit. */
	if (rmdir(dir) != 0 || rmdir(rt) != 0)
		fprintf(stderr, "locks_scan_cost: %s left behind: %s\n", rt, strerror(errno));
	return status;
}
