/*
 * bench_wake_paths - what the service's way of sleeping costs a 64 B
 * shared-memory round trip, with nothing else of thoth in the way (issue 13
 * section 5, the one-CPU cell; docs/SCHED.md "Stop 33").
 *
 * Every kind moves the same 64 B request and 64 B reply through one shared
 * mapping (MAP_SHARED | MAP_ANONYMOUS, made before fork()); only the way the
 * service sleeps and is woken differs.  The client sleeps on a futex in
 * every kind but eventfd-shm, as a thoth client does: it sets its waiting
 * flag, fences, re-checks and FUTEX_WAITs on the reply word; the service
 * stores the reply, fences and FUTEX_WAKEs only if the flag is set.  The
 * service's waiting flag works the same way, except that a doorbell that is
 * a byte or an eventfd write is *claimed* (compare-exchange 1 -> 0) so that
 * one sleep gets one doorbell, as thoth's `ring_if_waiting` does; a futex
 * sleeper's flag is left set and cleared by the sleeper.
 *
 *   eventfd-shm    both ends block in read() of an eventfd and write() the
 *                  peer's, unconditionally (bench_channel's baseline, the
 *                  reference of the ratios)
 *   futex-shm      both ends FUTEX_WAIT / FUTEX_WAKE unconditionally
 *                  (bench_channel's baseline)
 *   efd-read       (a) the service blocks in read() of its eventfd
 *   futex-wait     the service FUTEX_WAITs on the request word (a thoth nap
 *                  without its timer)
 *   sock-epoll     (b) epoll_wait on an AF_UNIX stream socket, the doorbell
 *                  a byte send()t by the client, recv()d after every wake
 *                  (thoth's level-triggered service)
 *   sock-epoll-et  (b) the same socket registered EPOLLET, the bytes read
 *                  back every 32 sleeps (thoth's edge-triggered doorbells)
 *   efd-epoll-et   (c) epoll_wait on a service-owned eventfd registered
 *                  EPOLLET and never read: each client write() is an edge
 *   efd-nested-et  (c) as a client could offer it safely: the eventfd (the
 *                  client's) inside an epoll set of its own, EPOLLET, and
 *                  that set registered EPOLLET in the service's (the service
 *                  holds only the inner set, so it cannot fill the counter
 *                  the client writes)
 *   pipe-epoll-et  a pipe registered EPOLLET, the doorbell a byte written
 *                  with pwritev2(RWF_NOWAIT) (no wait for room, whatever the
 *                  file's flags; but the pipe's mutex is still taken, and a
 *                  reader that splices into a full socket holds it: the
 *                  write then blocks, docs/IPC.md), read back every 32
 *                  sleeps
 *   uring-futex    (d) io_uring_enter(GETEVENTS) on an IORING_OP_FUTEX_WAIT
 *                  (kernel >= 6.7) of the request word, submitted in the same
 *                  call; the client's FUTEX_WAKE completes it
 *   uring-poll     (e) io_uring_enter on a one-shot POLL_ADD of the socket,
 *                  the byte recv()d after every wake (thoth's io_uring
 *                  backend)
 *
 *   bench_wake_paths [--placement one-cpu,two-cpus,unpinned,unpinned+hog]
 *                    [--runs N] [--iters N] [--only k1,k2,...] [--no-ref]
 *
 * The eventfd and pipe kinds are measurements only: a doorbell a hostile
 * service can block is not safe for a thoth client (docs/IPC.md "Wake-ups a
 * peer cannot block").  --no-ref leaves eventfd-shm out (profiling one kind
 * alone; no ratios then).
 *
 * Each run times every kind once (warm-up 500, then ITERS round trips, each
 * timed with CLOCK_MONOTONIC), the order rotated run by run; a table per
 * placement gives the medians over runs of p50, p99 and CPU ns per round
 * trip (client + service, CLOCK_PROCESS_CPUTIME_ID of each process over the
 * timed loop) and the median of the per-run ratios of p50 and CPU to
 * eventfd-shm's in the same run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef THOTH_BENCH_HAVE_URING
#include <liburing.h>
#endif

#include "baselines.h"

/* Not in Debian's headers (linux 6.1 uapi, liburing 2.3): io_uring's futex
 * wait (6.7) and the futex2 size flag it takes. */
#define OP_FUTEX_WAIT 51
#define FUTEX2_U32 0x02u
#define PAYLOAD 64u

enum kind {
	K_EVENTFD, K_FUTEX, K_EFD_READ, K_FUTEX_WAIT, K_SOCK_EPOLL, K_SOCK_EPOLL_ET,
	K_EFD_EPOLL_ET, K_EFD_NESTED_ET, K_PIPE_EPOLL_ET, K_URING_FUTEX, K_URING_POLL, K_N
};
static const char *const kind_names[K_N] = {
	"eventfd-shm", "futex-shm", "efd-read", "futex-wait", "sock-epoll", "sock-epoll-et",
	"efd-epoll-et", "efd-nested-et", "pipe-epoll-et", "uring-futex", "uring-poll",
};

/* The shared mapping. */
typedef struct shm {
	_Alignas(64) _Atomic uint32_t req;     /* requests published (client) */
	_Alignas(64) _Atomic uint32_t swait;   /* the service sleeps (1), claimed by a ring */
	_Alignas(64) _Atomic uint32_t rep;     /* replies published (service) */
	_Alignas(64) _Atomic uint32_t cwait;   /* the client sleeps on `rep` */
	_Alignas(64) _Atomic uint32_t stop;    /* the client gave up: the service exits */
	_Alignas(64) uint8_t payload[PAYLOAD];
	_Alignas(64) uint8_t reply[64];
	uint64_t srv_cpu_ns;
	int32_t srv_err;                        /* 0, or where the service failed */
} shm_t;

typedef struct run_cfg {
	enum kind kind;
	shm_t *s;
	int sv[2];      /* the doorbell socketpair: [0] client, [1] service */
	int efd[2];     /* [0] the service's eventfd, [1] the client's (eventfd-shm) */
	int inner;      /* efd-nested-et: the epoll set holding efd[0] */
	int pp[2];      /* pipe-epoll-et: [0] the service's read end, [1] the client's */
	unsigned warmup, iters;
} run_cfg_t;

static void futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* The client's wait (and both ends of futex-shm): slices of 10 ms, as a
 * thoth client's chan_wait and bench_channel's futex-shm.  The service's
 * sleeps take no timeout (a thoth loop with no timer armed waits with -1):
 * a timer costs its arming and cancelling, and the client kills a service
 * that fails to answer. */
static void futex_wait(_Atomic uint32_t *w, uint32_t old)
{
	struct timespec ts = { 0, 10000000 };
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, old, &ts, NULL, 0);
}

static bool is_futex_kind(enum kind k)
{
	return k == K_FUTEX_WAIT || k == K_URING_FUTEX;
}

/* ---- the service ---------------------------------------------------------- */

typedef struct srv {
	const run_cfg_t *c;
	int ep;
	unsigned sleeps;
#ifdef THOTH_BENCH_HAVE_URING
	struct io_uring ring;
#endif
} srv_t;

static int srv_setup(srv_t *v)
{
	const run_cfg_t *c = v->c;
	v->ep = -1;
	if (c->kind == K_SOCK_EPOLL || c->kind == K_SOCK_EPOLL_ET || c->kind == K_EFD_EPOLL_ET ||
	    c->kind == K_EFD_NESTED_ET || c->kind == K_PIPE_EPOLL_ET) {
		v->ep = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		if (c->kind != K_SOCK_EPOLL)
			ev.events |= EPOLLET;
		int fd = c->kind == K_EFD_EPOLL_ET ? c->efd[0] :
			 c->kind == K_EFD_NESTED_ET ? c->inner :
			 c->kind == K_PIPE_EPOLL_ET ? c->pp[0] : c->sv[1];
		if (v->ep < 0 || epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &ev))
			return -1;
	}
#ifdef THOTH_BENCH_HAVE_URING
	if (c->kind == K_URING_FUTEX || c->kind == K_URING_POLL) {
		/* thoth's backend: SINGLE_ISSUER + DEFER_TASKRUN, made in the
		 * process that waits on it. */
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
		if (io_uring_queue_init_params(64, &v->ring, &p))
			return -1;
	}
#endif
	return 0;
}

static void drain(int fd)
{
	char b[256];
	while (recv(fd, b, sizeof b, MSG_DONTWAIT) == (ssize_t)sizeof b)
		;
}

/* One sleep of the service until it may have been rung: 0, or -1. */
static int srv_sleep(srv_t *v, uint32_t seen)
{
	const run_cfg_t *c = v->c;
	shm_t *s = c->s;
	struct epoll_event ev;
	uint64_t x;
	v->sleeps++;
	switch (c->kind) {
	case K_EFD_READ:
		return read(c->efd[0], &x, sizeof x) == (ssize_t)sizeof x || errno == EINTR ? 0 : -1;
	case K_FUTEX_WAIT:      /* no timeout, like the others: a timer costs */
		syscall(SYS_futex, (uint32_t *)&s->req, FUTEX_WAIT, seen, NULL, NULL, 0);
		return 0;
	case K_SOCK_EPOLL:
		if (epoll_wait(v->ep, &ev, 1, -1) < 0 && errno != EINTR)
			return -1;
		drain(c->sv[1]);
		return 0;
	case K_SOCK_EPOLL_ET:
		if (epoll_wait(v->ep, &ev, 1, -1) < 0 && errno != EINTR)
			return -1;
		if (v->sleeps % 32 == 0)
			drain(c->sv[1]);
		return 0;
	case K_PIPE_EPOLL_ET:
		if (epoll_wait(v->ep, &ev, 1, -1) < 0 && errno != EINTR)
			return -1;
		if (v->sleeps % 32 == 0) {
			char b[256];
			while (read(c->pp[0], b, sizeof b) == (ssize_t)sizeof b)
				;
		}
		return 0;
	case K_EFD_EPOLL_ET:
	case K_EFD_NESTED_ET:
		return epoll_wait(v->ep, &ev, 1, -1) < 0 && errno != EINTR ? -1 : 0;
#ifdef THOTH_BENCH_HAVE_URING
	case K_URING_FUTEX:
	case K_URING_POLL: {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&v->ring);
		if (!sqe)
			return -1;
		memset(sqe, 0, sizeof *sqe);
		if (c->kind == K_URING_FUTEX) {
			sqe->opcode = OP_FUTEX_WAIT;
			sqe->fd = FUTEX2_U32;             /* futex2 flags: 32-bit, shared */
			sqe->addr = (uint64_t)(uintptr_t)&s->req;
			sqe->off = seen;                  /* addr2: the value slept on */
			sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
		} else {
			io_uring_prep_poll_add(sqe, c->sv[1], POLLIN);
		}
		int r = io_uring_submit_and_wait(&v->ring, 1);
		if (r < 0 && r != -EINTR)
			return -1;
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&v->ring, &cqe) == 0) {
			/* futex: 0 woken, -EAGAIN the word had moved already */
			if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR) {
				errno = -cqe->res;
				return -1;
			}
			io_uring_cqe_seen(&v->ring, cqe);
		}
		if (c->kind == K_URING_POLL)
			drain(c->sv[1]);
		return 0;
	}
#endif
	default:
		errno = ENOSYS;
		return -1;
	}
}

/* Wait for request SEEN + 1: 0, or -1 (stopped or failed). */
static int srv_wait(srv_t *v, uint32_t seen)
{
	shm_t *s = v->c->s;
	for (;;) {
		if (atomic_load_explicit(&s->req, memory_order_acquire) != seen)
			return 0;
		if (atomic_load_explicit(&s->stop, memory_order_relaxed))
			return -1;
		atomic_store_explicit(&s->swait, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&s->req, memory_order_acquire) != seen) {
			/* A ring that claimed it is pending: a spurious wake later. */
			atomic_store_explicit(&s->swait, 0, memory_order_relaxed);
			return 0;
		}
		if (srv_sleep(v, seen))
			return -1;
		if (is_futex_kind(v->c->kind))
			atomic_store_explicit(&s->swait, 0, memory_order_relaxed);
	}
}

static _Noreturn void server_main(const run_cfg_t *c, int cpu, pid_t parent)
{
	srv_t v = { .c = c };
	shm_t *s = c->s;
	uint8_t buf[PAYLOAD];
	uint64_t c0 = 0;
	uint32_t seen = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (bench_pin_cpu(cpu) || srv_setup(&v)) {
		s->srv_err = errno ? errno : -1;
		atomic_store(&s->stop, 1);
		futex_wake(&s->rep);
		_exit(2);
	}
	unsigned total = c->warmup + c->iters;
	for (unsigned i = 0; i < total; i++) {
		if (i == c->warmup)
			c0 = bench_cpu_ns();
		if (c->kind == K_EVENTFD) {
			uint64_t x = 1;
			if (read(c->efd[0], &x, sizeof x) != (ssize_t)sizeof x)
				goto fail;
		} else if (c->kind == K_FUTEX) {
			while (atomic_load_explicit(&s->req, memory_order_acquire) == seen) {
				if (atomic_load_explicit(&s->stop, memory_order_relaxed))
					goto fail;
				futex_wait(&s->req, seen);
			}
		} else if (srv_wait(&v, seen)) {
			goto fail;
		}
		seen++;
		memcpy(buf, s->payload, PAYLOAD);
		__asm__ volatile("" : : "r"(buf) : "memory");
		memcpy(s->reply, buf, 64);
		if (c->kind == K_EVENTFD) {
			uint64_t x = 1;
			if (write(c->efd[1], &x, sizeof x) != (ssize_t)sizeof x)
				goto fail;
			continue;
		}
		atomic_store_explicit(&s->rep, seen, memory_order_release);
		if (c->kind == K_FUTEX) {
			futex_wake(&s->rep);
			continue;
		}
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&s->cwait, memory_order_relaxed))
			futex_wake(&s->rep);
	}
	s->srv_cpu_ns = bench_cpu_ns() - c0;
	_exit(0);
fail:
	s->srv_err = errno ? errno : -1;
	atomic_store(&s->stop, 1);
	atomic_store(&s->rep, ~0u);
	futex_wake(&s->rep);
	if (c->kind == K_EVENTFD) {
		uint64_t x = 1;
		if (write(c->efd[1], &x, sizeof x) < 0)
			_exit(3);
	}
	_exit(2);
}

/* ---- the client ----------------------------------------------------------- */

/* Ring the service after publishing request N. */
static int client_ring(const run_cfg_t *c)
{
	shm_t *s = c->s;
	atomic_thread_fence(memory_order_seq_cst);
	if (is_futex_kind(c->kind)) {
		if (atomic_load_explicit(&s->swait, memory_order_relaxed))
			futex_wake(&s->req);
		return 0;
	}
	uint32_t one = 1;
	if (!atomic_load_explicit(&s->swait, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong(&s->swait, &one, 0))
		return 0;
	if (c->kind == K_EFD_READ || c->kind == K_EFD_EPOLL_ET || c->kind == K_EFD_NESTED_ET) {
		uint64_t x = 1;
		return write(c->efd[0], &x, sizeof x) == (ssize_t)sizeof x ? 0 : -1;
	}
	if (c->kind == K_PIPE_EPOLL_ET) {
		char b = 0;
		struct iovec iov = { &b, 1 };
		return pwritev2(c->pp[1], &iov, 1, -1, RWF_NOWAIT) == 1 ? 0 : -1;
	}
	return send(c->sv[0], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1 ? 0 : -1;
}

static int client_rt(const run_cfg_t *c, uint32_t n)
{
	shm_t *s = c->s;
	memset(s->payload, (int)(n & 0xff), PAYLOAD);
	if (c->kind == K_EVENTFD) {
		uint64_t x = 1;
		if (write(c->efd[0], &x, sizeof x) != (ssize_t)sizeof x ||
		    read(c->efd[1], &x, sizeof x) != (ssize_t)sizeof x)
			return -1;
		return atomic_load(&s->stop) ? -1 : 0;
	}
	atomic_store_explicit(&s->req, n, memory_order_release);
	if (c->kind == K_FUTEX)
		futex_wake(&s->req);
	else if (client_ring(c))
		return -1;
	uint64_t t0 = 0;
	for (unsigned spins = 0;; spins++) {
		uint32_t r = atomic_load_explicit(&s->rep, memory_order_acquire);
		if (r == n)
			return 0;
		if (atomic_load_explicit(&s->stop, memory_order_relaxed))
			return -1;
		if (spins % 64 == 63) {          /* a lost wake-up would hang: 5 s */
			uint64_t t = bench_now_ns();
			if (!t0)
				t0 = t;
			else if (t - t0 > 5000000000ull) {
				errno = ETIMEDOUT;
				return -1;
			}
		}
		if (c->kind == K_FUTEX) {
			futex_wait(&s->rep, r);
			continue;
		}
		atomic_store_explicit(&s->cwait, 1, memory_order_relaxed);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&s->rep, memory_order_acquire) == r)
			futex_wait(&s->rep, r);
		atomic_store_explicit(&s->cwait, 0, memory_order_relaxed);
	}
}

typedef struct result {
	double p50, p99, cpu;   /* ns; cpu = client + service per round trip */
} result_t;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_one(enum kind kind, unsigned warmup, unsigned iters, int cc, int cs, result_t *out)
{
	int rc = -1;
	run_cfg_t c = { .kind = kind, .sv = { -1, -1 }, .efd = { -1, -1 }, .inner = -1, .pp = { -1, -1 },
			.warmup = warmup,
			.iters = iters };
	double *lat = malloc(iters * sizeof *lat);
	c.s = mmap(NULL, sizeof(shm_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (!lat || c.s == MAP_FAILED)
		goto out;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.sv))
		goto out;
	c.efd[0] = eventfd(0, EFD_CLOEXEC);
	c.efd[1] = eventfd(0, EFD_CLOEXEC);
	if (c.efd[0] < 0 || c.efd[1] < 0)
		goto out;
	if (kind == K_PIPE_EPOLL_ET && pipe2(c.pp, O_CLOEXEC))
		goto out;
	if (c.pp[0] >= 0)
		fcntl(c.pp[0], F_SETFL, O_NONBLOCK);   /* the reader's own end */
	if (kind == K_EFD_NESTED_ET) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
		c.inner = epoll_create1(EPOLL_CLOEXEC);
		if (c.inner < 0 || epoll_ctl(c.inner, EPOLL_CTL_ADD, c.efd[0], &ev))
			goto out;
	}
	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	if (bench_pin_cpu(cc))
		goto out;
	fflush(NULL);
	pid_t parent = getpid(), pid = fork();
	if (pid == 0)
		server_main(&c, cs, parent);
	if (pid < 0)
		goto restore;
	int err = 0;
	uint32_t n = 0;
	uint64_t c0 = 0, t_prev = 0;
	for (unsigned i = 0; i < warmup + iters && !err; i++) {
		if (i == warmup) {
			c0 = bench_cpu_ns();
			t_prev = bench_now_ns();
		}
		if (client_rt(&c, ++n)) {
			err = errno ? errno : -1;
			break;
		}
		if (i >= warmup) {
			uint64_t t = bench_now_ns();
			lat[i - warmup] = (double)(t - t_prev);
			t_prev = t;
		}
	}
	uint64_t ccpu = bench_cpu_ns() - c0;
	if (err) {
		atomic_store(&c.s->stop, 1);
		kill(pid, SIGKILL);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_wake_paths: %s: client %s, service %s (status %#x)\n",
			kind_names[kind], err ? strerror(err) : "ok",
			c.s->srv_err ? strerror(c.s->srv_err) : "ok", (unsigned)status);
		goto restore;
	}
	qsort(lat, iters, sizeof *lat, cmp_double);
	out->p50 = lat[iters / 2];
	out->p99 = lat[(size_t)((double)iters * 0.99)];
	out->cpu = (double)(ccpu + c.s->srv_cpu_ns) / iters;
	rc = 0;
restore:
	sched_setaffinity(0, sizeof saved, &saved);
out:
	for (int i = 0; i < 2; i++) {
		if (c.sv[i] >= 0)
			close(c.sv[i]);
		if (c.efd[i] >= 0)
			close(c.efd[i]);
		if (c.pp[i] >= 0)
			close(c.pp[i]);
	}
	if (c.inner >= 0)
		close(c.inner);
	if (c.s != MAP_FAILED)
		munmap(c.s, sizeof(shm_t));
	free(lat);
	return rc;
}

/* ---- main ----------------------------------------------------------------- */

static bool uring_futex_supported(void)
{
#ifdef THOTH_BENCH_HAVE_URING
	struct io_uring ring;
	if (io_uring_queue_init(4, &ring, 0))
		return false;
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	bool ok = p && io_uring_opcode_supported(p, OP_FUTEX_WAIT);
	if (p)
		io_uring_free_probe(p);
	io_uring_queue_exit(&ring);
	return ok;
#else
	return false;
#endif
}

typedef struct placement {
	const char *name;
	int cc, cs;
	bool hog;
} placement_t;

static const placement_t placements[] = {
	{ "one-cpu", 0, 0, false },
	{ "two-cpus", 0, 1, false },
	{ "unpinned", BENCH_CPU_ANY, BENCH_CPU_ANY, false },
	{ "unpinned+hog", BENCH_CPU_ANY, BENCH_CPU_ANY, true },
};
#define NPL (sizeof placements / sizeof placements[0])

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool in_list(const char *list, const char *name)
{
	if (!list)
		return true;
	size_t len = strlen(name);
	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == len && !strncmp(p, name, len))
			return true;
		p += l + (e != NULL);
	}
	return false;
}

int main(int argc, char **argv)
{
	const char *only = NULL, *pl_list = "one-cpu,two-cpus,unpinned";
	bool ref = true;
	unsigned runs = 5, iters = 5000, warmup = 500;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--no-ref"))     /* profiling one kind alone */
			ref = false;
		else if (!strcmp(argv[i], "--placement") && i + 1 < argc)
			pl_list = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--placement one-cpu,two-cpus,unpinned,unpinned+hog] "
				"[--runs N] [--iters N] [--only k1,k2,...] [--no-ref]\n", argv[0]);
			return 2;
		}
	}
	if (!runs || iters < 100)
		return 2;
	bool have_uf = uring_futex_supported();
	enum kind ks[K_N];
	unsigned nk = 0;
	if (ref)
		ks[nk++] = K_EVENTFD;   /* the reference */
	for (int k = ref; k < K_N; k++) {
		if (!in_list(only, kind_names[k]))
			continue;
#ifndef THOTH_BENCH_HAVE_URING
		if (k == K_URING_FUTEX || k == K_URING_POLL)
			continue;
#endif
		if (k == K_URING_FUTEX && !have_uf) {
			printf("# uring-futex: IORING_OP_FUTEX_WAIT not supported here, skipped\n");
			continue;
		}
		ks[nk++] = (enum kind)k;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("# bench_wake_paths: 64 B round trips, %u runs x %u iterations (warm-up %u), "
	       "%ld CPUs\n# p50/p99 ns, cpu = client + service CPU ns per round trip; "
	       "x = median of per-run ratios to eventfd-shm's\n", runs, iters, warmup, ncpu);
	double (*v)[K_N][5] = calloc(runs, sizeof *v);   /* p50 p99 cpu rp50 rcpu */
	if (!v)
		return 1;
	int bad = 0;
	for (size_t p = 0; p < NPL; p++) {
		const placement_t *pl = &placements[p];
		if (!in_list(pl_list, pl->name))
			continue;
		if (ncpu < 2 && (pl->cs == 1 || pl->hog))
			continue;
		pid_t hog = pl->hog ? bench_start_hog((int)ncpu - 1) : -1;
		for (unsigned r = 0; r < runs; r++) {
			result_t res[K_N];
			for (unsigned j = 0; j < nk; j++) {
				unsigned k = (j + r) % nk;       /* rotate the order run by run */
				if (run_one(ks[k], warmup, iters, pl->cc, pl->cs, &res[k])) {
					bad = 1;
					res[k] = (result_t){ 0, 0, 0 };
				}
			}
			for (unsigned k = 0; k < nk; k++) {
				v[r][k][0] = res[k].p50;
				v[r][k][1] = res[k].p99;
				v[r][k][2] = res[k].cpu;
				v[r][k][3] = ref && res[0].p50 > 0 ? res[k].p50 / res[0].p50 : 0;
				v[r][k][4] = ref && res[0].cpu > 0 ? res[k].cpu / res[0].cpu : 0;
			}
		}
		if (hog > 0) {
			kill(hog, SIGKILL);
			waitpid(hog, NULL, 0);
		}
		printf("\n%-14s %-14s %8s %8s %8s %7s %7s\n", pl->name, "kind", "p50", "p99", "cpu",
		       "p50x", "cpux");
		for (unsigned k = 0; k < nk; k++) {
			double m[5], col[runs];
			for (int f = 0; f < 5; f++) {
				for (unsigned r = 0; r < runs; r++)
					col[r] = v[r][k][f];
				m[f] = median(col, runs);
			}
			printf("%-14s %-14s %8.0f %8.0f %8.0f %6.2fx %6.2fx\n", pl->name, kind_names[ks[k]],
			       m[0], m[1], m[2], m[3], m[4]);
		}
		fflush(stdout);
	}
	free(v);
	return bad;
}
