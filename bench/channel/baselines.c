/*
 * baselines.c - round trips over pipe, Unix stream, Unix seqpacket and
 * eventfd + shared-memory copy, measured the way the thoth channel side of
 * bench_channel measures its own (see baselines.h).
 *
 * Transports:
 *   pipe            two pipes (request, reply), each raised to 1 MiB with
 *                   F_SETPIPE_SZ where allowed; payloads are moved with
 *                   read/write loops until complete.
 *   unix-stream     one socketpair(AF_UNIX, SOCK_STREAM), default buffers.
 *   unix-seqpacket  one socketpair(AF_UNIX, SOCK_SEQPACKET), SO_SNDBUF and
 *                   SO_RCVBUF raised to 4 MiB (the kernel caps this at
 *                   net.core.wmem_max / rmem_max).  Chunking: an AF_UNIX
 *                   seqpacket record must fit in the sender's socket buffer
 *                   (larger ones fail with EMSGSIZE), so a payload is sent
 *                   as a sequence of records of `chunk` bytes (64 KiB, less
 *                   only if the socket buffer is too small for two such
 *                   records), the last one shorter.  Both ends compute the
 *                   same chunk before fork(), so the receiver reads each
 *                   record with a buffer of exactly the record's size and a
 *                   record of any other size (MSG_TRUNC) is an error.
 *   eventfd-shm     an anonymous MAP_SHARED mapping [payload | 64 B reply]
 *                   created before fork() and two eventfds (request, reply)
 *                   as doorbells: one memcpy into the mapping and one out of
 *                   it per direction.
 *   futex-shm       the same mapping plus two sequence words (request,
 *                   reply) on their own cache lines: the sender bumps its
 *                   word and always calls FUTEX_WAKE; the receiver calls
 *                   FUTEX_WAIT until the word moves (no spinning): the
 *                   cheapest sleeping doorbell Linux has.
 *   epoll-shm       a service on an event loop, with thoth's wake-up path
 *                   and nothing else: the futex-shm mapping and words; the
 *                   client bumps the request word, rings one byte on a
 *                   socketpair (the doorbell) and FUTEX_WAITs on the reply
 *                   word; the service re-reads the request word and only
 *                   when about to sleep waits in epoll_wait on the
 *                   doorbell and drains it with one recv, then answers and
 *                   FUTEX_WAKEs.  Bells are read only then, so they pile
 *                   up while it is awake: a full doorbell (EAGAIN) is bells
 *                   pending, not an error (counted as refused bells), with
 *                   a seq_cst fence on each side between the word and the
 *                   socket so that none is lost, and the client rings
 *                   again each 10 ms it waits for a reply.  The
 *                   least a service that waits on many channels and fds at
 *                   once (epoll) can pay per sleeping round trip: the
 *                   bound for thoth's sleeping cells (docs/SCHED.md).
 *   spin-shm        the same words, busy-polled with `pause`, no system
 *                   call; every 1024 polls it calls sched_yield() so that
 *                   a peer sharing the CPU can run at all (without it a
 *                   same-CPU round trip waits for the scheduler tick).
 *
 * Robustness: the parent closes the child's ends of pipes and sockets, so a
 * dead server is an EOF or EPIPE for the client, never a hang; SIGPIPE is
 * blocked in the calling thread for the run (and a SIGPIPE the run raised
 * is consumed before the mask is restored).  eventfds have no EOF, so a
 * server that fails rings the reply doorbell with BELL_FAIL before exiting.
 * The child dies with its parent (PR_SET_PDEATHSIG) and reports its server
 * CPU time, or why it failed, over a separate result pipe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "baselines.h"

#define REPLY_SIZE   64u
#define SEQ_CHUNK    ((size_t)64 << 10)
#define SEQ_SOCKBUF  (4 << 20)
#define PIPE_SIZE    (1 << 20)
#define BELL_OK      1u
#define BELL_FAIL    0xfa11u

enum kind { K_PIPE, K_STREAM, K_SEQPACKET, K_EVENTFD, K_FUTEX, K_SPIN, K_EPOLL };

static const char *const kind_names[] = {
	[K_PIPE] = "pipe",
	[K_STREAM] = "unix-stream",
	[K_SEQPACKET] = "unix-seqpacket",
	[K_EVENTFD] = "eventfd-shm",
	[K_FUTEX] = "futex-shm",
	[K_SPIN] = "spin-shm",
	[K_EPOLL] = "epoll-shm",
};

/* futex-shm / spin-shm: the words after [payload | reply], each on its own
 * cache line.  FAIL: the server gave up (the client stops waiting). */
typedef struct seq_words {
	_Alignas(64) _Atomic uint32_t req;
	_Alignas(64) _Atomic uint32_t rep;
	_Alignas(64) _Atomic uint32_t fail;
} seq_words_t;
#define SEQ_OFF(payload) (((payload) + REPLY_SIZE + 63) & ~(size_t)63)

/* Keeps the compiler from dropping a copy whose destination is read only in
 * part (memcpy into a buffer of which two bytes are looked at). */
#define CLOBBER(p) __asm__ volatile("" : : "r"(p) : "memory")

/* One end of a transport as the client or the server sees it. */
typedef struct end {
	enum kind kind;
	int tx, rx;     /* pipes/sockets: send to / receive from the peer;
	                 * eventfd-shm: ring the peer / wait for the peer */
	uint8_t *shm;   /* eventfd-shm, futex-shm, spin-shm: [payload | reply] */
	seq_words_t *seq;  /* futex-shm, spin-shm */
	size_t payload;
	size_t chunk;   /* unix-seqpacket: record size; 0 = no records */
	int ep;         /* epoll-shm: the service's epoll set (the doorbell in it) */
} end_t;

/* What the server sends back over the result pipe at the end. */
typedef struct srv_result {
	uint64_t cpu_ns;  /* CPU time of the timed loop */
	int32_t stage;    /* 0 = ok, else where it failed (stage_names) */
	int32_t err;      /* errno of the failure */
} srv_result_t;

enum { ST_OK, ST_PIN, ST_ALLOC, ST_IO };
static const char *const stage_names[] = {
	[ST_OK] = "ok",
	[ST_PIN] = "sched_setaffinity",
	[ST_ALLOC] = "buffer allocation",
	[ST_IO] = "transport",
};

pid_t bench_start_hog(int cpu)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	bench_pin_cpu(cpu);
	for (volatile uint64_t n = 0;; n++)
		;
}

int bench_pin_cpu(int cpu)
{
	if (cpu == BENCH_CPU_ANY) {          /* unpinned: every online CPU, the kernel decides */
		cpu_set_t all;
		CPU_ZERO(&all);
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		for (long i = 0; i < n && i < CPU_SETSIZE; i++)
			CPU_SET((int)i, &all);
		return sched_setaffinity(0, sizeof all, &all) ? -1 : 0;
	}
	if (cpu < 0 || cpu >= CPU_SETSIZE) {
		errno = EINVAL;
		return -1;
	}
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double bench_percentile(double *samples, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(samples, n, sizeof *samples, cmp_double);
	if (!(p > 0))           /* also NaN */
		return samples[0];
	if (p >= 100)
		return samples[n - 1];
	/* nearest rank: the smallest sample with at least p% of samples <= it */
	double rank = ceil(p / 100.0 * (double)n);
	size_t i = rank < 1 ? 0 : (size_t)rank - 1;
	return samples[i < n ? i : n - 1];
}

/* ---- moving bytes ------------------------------------------------------ */

static int send_all(const end_t *e, const uint8_t *p, size_t n)
{
	while (n) {
		size_t want = e->chunk && n > e->chunk ? e->chunk : n;
		ssize_t r = e->kind == K_PIPE ? write(e->tx, p, want)
		                              : send(e->tx, p, want, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (e->chunk && (size_t)r != want) {  /* records go whole or not at all */
			errno = EMSGSIZE;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int recv_all(const end_t *e, uint8_t *p, size_t n)
{
	while (n) {
		size_t want = e->chunk && n > e->chunk ? e->chunk : n;
		ssize_t r = e->kind == K_PIPE ? read(e->rx, p, want)
		                              : recv(e->rx, p, want, e->chunk ? MSG_TRUNC : 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {           /* the peer is gone */
			errno = ECONNRESET;
			return -1;
		}
		if (e->chunk && (size_t)r != want) {  /* record boundaries out of step */
			errno = EMSGSIZE;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int ring(int efd, uint64_t v)
{
	for (;;) {
		ssize_t r = write(efd, &v, sizeof v);
		if (r == (ssize_t)sizeof v)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

static int wait_bell(int efd, uint64_t *v)
{
	for (;;) {
		ssize_t r = read(efd, v, sizeof *v);
		if (r == (ssize_t)sizeof *v)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

/* epoll-shm bells the full socket refused, counted by the client (the
 * calling process) for bench_rt_result_t.refused_bells. */
static uint64_t refused_bells;

/* epoll-shm: ring the service's doorbell, one byte.  A full socket (EAGAIN)
 * is bells pending, not an error: see client_rt.  The caller has bumped
 * the request word and fenced (seq_cst) before this send reads the
 * socket's space, so that a service whose recv emptied the socket and
 * which then re-reads the word (after its own fence) sees the bump
 * whenever this send still saw the socket full. */
static int epoll_ring(const end_t *e)
{
	ssize_t s = send(e->tx, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (s == 1)
		return 0;
	if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		refused_bells++;
		return 0;
	}
	return -1;
}

static void seq_bump(const end_t *e, _Atomic uint32_t *w)
{
	atomic_fetch_add_explicit(w, 1, memory_order_release);
	if (e->kind == K_FUTEX || e->kind == K_EPOLL)
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wait until *W != OLD (0), or the peer failed (-1, ECONNRESET). */
static int seq_wait(const end_t *e, _Atomic uint32_t *w, uint32_t old)
{
	for (unsigned n = 1;; n++) {
		if (atomic_load_explicit(w, memory_order_acquire) != old)
			return 0;
		if (atomic_load_explicit(&e->seq->fail, memory_order_relaxed)) {
			errno = ECONNRESET;
			return -1;
		}
		if (e->kind == K_FUTEX || e->kind == K_EPOLL) {
			struct timespec ts = { 0, 10000000 };   /* re-check FAIL every 10 ms */
			long r = syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, old, &ts, NULL, 0);
			/* epoll-shm: only the client waits here, for the reply to
			 * an outstanding request; 10 ms without it, ring again
			 * (a bell lost by any path costs 10 ms, not the run). */
			if (r < 0 && errno == ETIMEDOUT && e->kind == K_EPOLL && w == &e->seq->rep &&
			    epoll_ring(e))
				return -1;
		} else if (n % 1024 == 0) {
			sched_yield();
		} else {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
	}
}

/* Client: send the payload, receive the whole reply. */
static int client_rt(const end_t *e, const uint8_t *payload, uint8_t *reply)
{
	if (e->kind == K_FUTEX || e->kind == K_SPIN) {
		uint32_t old = atomic_load_explicit(&e->seq->rep, memory_order_relaxed);
		memcpy(e->shm, payload, e->payload);
		seq_bump(e, &e->seq->req);
		if (seq_wait(e, &e->seq->rep, old))
			return -1;
		memcpy(reply, e->shm + e->payload, REPLY_SIZE);
		CLOBBER(reply);
		return 0;
	}
	if (e->kind == K_EPOLL) {
		uint32_t old = atomic_load_explicit(&e->seq->rep, memory_order_relaxed);
		memcpy(e->shm, payload, e->payload);
		atomic_fetch_add_explicit(&e->seq->req, 1, memory_order_release);
		/* A full socket (EAGAIN) is bells pending: the service's next
		 * epoll_wait returns at once, so no wake-up is lost (thoth's
		 * rule too).  The service reads bells only when it is about
		 * to sleep, so where it is often awake at its check (both
		 * ends on one CPU, the woken service preempted after its
		 * answer) unread bells filled the socket and the client failed
		 * ("Resource temporarily unavailable" at round trip 278-874,
		 * unpinned + hog, 2026-12-02).  "Pending" needs an order the
		 * socket's locks do not give on arm64 (a store, then a load):
		 * this fence puts the bump before the send's look at the
		 * socket's space, the service's after its recv puts the drain
		 * before its re-read of the word, so one of the two sees the
		 * other. */
		atomic_thread_fence(memory_order_seq_cst);
		if (epoll_ring(e) || seq_wait(e, &e->seq->rep, old))
			return -1;
		memcpy(reply, e->shm + e->payload, REPLY_SIZE);
		CLOBBER(reply);
		return 0;
	}
	if (e->kind == K_EVENTFD) {
		uint64_t v;
		memcpy(e->shm, payload, e->payload);
		if (ring(e->tx, BELL_OK) || wait_bell(e->rx, &v))
			return -1;
		if (v != BELL_OK) {     /* the server failed */
			errno = ECONNRESET;
			return -1;
		}
		memcpy(reply, e->shm + e->payload, REPLY_SIZE);
		CLOBBER(reply);
		return 0;
	}
	if (send_all(e, payload, e->payload))
		return -1;
	return recv_all(e, reply, REPLY_SIZE);
}

/* Server: receive the whole payload into BUF, answer with REPLY. */
static int server_rt(const end_t *e, uint8_t *buf, uint8_t *reply)
{
	if (e->kind == K_FUTEX || e->kind == K_SPIN) {
		static uint32_t seen;   /* requests taken (the child's private copy) */
		if (seq_wait(e, &e->seq->req, seen))
			return -1;
		seen++;
		memcpy(buf, e->shm, e->payload);
		CLOBBER(buf);
		reply[0] = buf[0];
		reply[1] = buf[e->payload - 1];
		memcpy(e->shm + e->payload, reply, REPLY_SIZE);
		seq_bump(e, &e->seq->rep);
		return 0;
	}
	if (e->kind == K_EPOLL) {
		static uint32_t seen;   /* requests taken (the child's private copy) */
		while (atomic_load_explicit(&e->seq->req, memory_order_acquire) == seen) {
			struct epoll_event ev;
			char bells[256];
			int n = epoll_wait(e->ep, &ev, 1, -1);
			if (n < 0 && errno == EINTR)
				continue;
			ssize_t r = n == 1 ? recv(e->rx, bells, sizeof bells, MSG_DONTWAIT) : -1;
			if (r == 0)
				errno = ECONNRESET;     /* the client is gone */
			if (r <= 0 && !(r < 0 && errno == EAGAIN))
				return -1;
			/* The drain before the re-read of REQ (client_rt). */
			atomic_thread_fence(memory_order_seq_cst);
		}
		seen++;
		memcpy(buf, e->shm, e->payload);
		CLOBBER(buf);
		reply[0] = buf[0];
		reply[1] = buf[e->payload - 1];
		memcpy(e->shm + e->payload, reply, REPLY_SIZE);
		seq_bump(e, &e->seq->rep);
		return 0;
	}
	if (e->kind == K_EVENTFD) {
		uint64_t v;
		if (wait_bell(e->rx, &v))
			return -1;
		memcpy(buf, e->shm, e->payload);
		CLOBBER(buf);
	} else if (recv_all(e, buf, e->payload)) {
		return -1;
	}
	reply[0] = buf[0];
	reply[1] = buf[e->payload - 1];
	if (e->kind == K_EVENTFD) {
		memcpy(e->shm + e->payload, reply, REPLY_SIZE);
		return ring(e->tx, BELL_OK);
	}
	return send_all(e, reply, REPLY_SIZE);
}

/* ---- the server process ------------------------------------------------ */

static _Noreturn void server_main(const end_t *e, unsigned total, unsigned warmup, int cpu,
				  int res_fd, pid_t parent)
{
	srv_result_t res = { 0, ST_OK, 0 };
	uint8_t reply[REPLY_SIZE];
	uint8_t *buf = MAP_FAILED;
	uint64_t c0 = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	if (bench_pin_cpu(cpu)) {
		res.stage = ST_PIN;
		goto fail;
	}
	/* mmap, not malloc: the parent may have threads, the child must stay
	 * async-signal-safe; the warm-up round trips fault the pages in. */
	buf = mmap(NULL, e->payload, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		res.stage = ST_ALLOC;
		goto fail;
	}
	memset(reply, 0x5e, sizeof reply);
	for (unsigned i = 0; i < total; i++) {
		if (i == warmup)
			c0 = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		if (server_rt(e, buf, reply)) {
			res.stage = ST_IO;
			goto fail;
		}
	}
	res.cpu_ns = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
	_exit(write(res_fd, &res, sizeof res) == (ssize_t)sizeof res ? 0 : 1);
fail:
	res.err = errno;
	if (e->kind == K_EVENTFD)
		ring(e->tx, BELL_FAIL);  /* eventfds have no EOF: wake the client */
	if (e->seq) {
		atomic_store(&e->seq->fail, 1);
		seq_bump(e, &e->seq->rep);
	}
	if (write(res_fd, &res, sizeof res) != (ssize_t)sizeof res)
		_exit(3);
	_exit(2);
}

/* ---- the client side --------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* The largest record size <= SEQ_CHUNK that leaves room for two records in
 * the smaller of the two send buffers (a record must fit in sk_sndbuf). */
static size_t seq_chunk(const int sv[2])
{
	int lim = SEQ_SOCKBUF * 2;
	for (int i = 0; i < 2; i++) {
		int v = SEQ_SOCKBUF, got = 0;
		socklen_t len = sizeof got;
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
		if (getsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &got, &len) == 0 && got < lim)
			lim = got;
	}
	size_t chunk = SEQ_CHUNK;
	while (chunk > 1024 && 2 * (chunk + 1024) > (size_t)lim)
		chunk /= 2;
	return chunk;
}

static int parse_kind(const char *name, enum kind *k)
{
	for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
		if (name && !strcmp(name, kind_names[i])) {
			*k = (enum kind)i;
			return 0;
		}
	return -1;
}

int bench_baseline_rt(const char *kind_name, size_t payload, unsigned warmup, unsigned iters,
		      int cpu_client, int cpu_server, bench_rt_result_t *out)
{
	enum kind kind;
	if (parse_kind(kind_name, &kind)) {
		fprintf(stderr, "bench_baseline_rt: unknown kind '%s' (pipe, unix-stream, "
			"unix-seqpacket, eventfd-shm, futex-shm, spin-shm, epoll-shm)\n", kind_name ? kind_name : "(null)");
		return -1;
	}
	refused_bells = 0;
	if (!payload || !iters || !out || (unsigned)-1 - warmup < iters) {
		fprintf(stderr, "bench_baseline_rt: %s: need payload >= 1, iters >= 1 and a "
			"result\n", kind_name);
		return -1;
	}

	int rc = -1;
	/* pipes: req = client->server, rep = server->client; sockets: req is
	 * the socketpair ([0] client, [1] server); eventfd-shm: req[0], rep[0]. */
	int req[2] = { -1, -1 }, rep[2] = { -1, -1 }, res[2] = { -1, -1 };
	uint8_t *shm = MAP_FAILED;
	size_t shm_size = SEQ_OFF(payload) + sizeof(seq_words_t);
	uint8_t *buf = NULL;
	double *lat = NULL;
	size_t chunk = 0;
	end_t ce = { .kind = kind, .tx = -1, .rx = -1, .payload = payload, .ep = -1 };
	end_t se = ce;

	switch (kind) {
	case K_PIPE:
		if (pipe2(req, O_CLOEXEC) || pipe2(rep, O_CLOEXEC))
			goto sys_fail;
		fcntl(req[1], F_SETPIPE_SZ, PIPE_SIZE);  /* best effort */
		fcntl(rep[1], F_SETPIPE_SZ, PIPE_SIZE);
		ce.tx = req[1], ce.rx = rep[0];
		se.rx = req[0], se.tx = rep[1];
		break;
	case K_STREAM:
	case K_SEQPACKET:
		if (socketpair(AF_UNIX, (kind == K_STREAM ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC,
			       0, req))
			goto sys_fail;
		if (kind == K_SEQPACKET)
			chunk = seq_chunk(req);
		ce.tx = ce.rx = req[0];
		se.tx = se.rx = req[1];
		break;
	case K_EVENTFD:
		req[0] = eventfd(0, EFD_CLOEXEC);
		rep[0] = eventfd(0, EFD_CLOEXEC);
		if (req[0] < 0 || rep[0] < 0)
			goto sys_fail;
		shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			goto sys_fail;
		ce.tx = req[0], ce.rx = rep[0];
		se.rx = req[0], se.tx = rep[0];
		ce.shm = se.shm = shm;
		break;
	case K_FUTEX:
	case K_SPIN:
		shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED)
			goto sys_fail;
		ce.shm = se.shm = shm;
		ce.seq = se.seq = (seq_words_t *)(shm + SEQ_OFF(payload));
		break;
	case K_EPOLL: {
		/* req[0] the client's doorbell end, req[1] the service's; rep[0]
		 * holds the epoll fd (closed with the others). */
		shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, req))
			goto sys_fail;
		rep[0] = epoll_create1(EPOLL_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		if (rep[0] < 0 || epoll_ctl(rep[0], EPOLL_CTL_ADD, req[1], &ev))
			goto sys_fail;
		ce.shm = se.shm = shm;
		ce.seq = se.seq = (seq_words_t *)(shm + SEQ_OFF(payload));
		ce.tx = req[0];
		se.rx = req[1];
		se.ep = rep[0];
		break;
	}
	}
	ce.chunk = se.chunk = chunk;
	if (pipe2(res, O_CLOEXEC))
		goto sys_fail;

	uint8_t reply[REPLY_SIZE];
	buf = malloc(payload);
	lat = malloc((size_t)iters * sizeof *lat);
	if (!buf || !lat) {
		fprintf(stderr, "bench_baseline_rt: %s: out of memory for %zu bytes\n", kind_name,
			payload);
		goto out;
	}
	memset(buf, 0x5a, payload);     /* filled once, never regenerated */
	buf[0] = 0xa1;
	buf[payload - 1] = 0xb2;        /* == buf[0] when payload is 1 */
	const uint8_t first = buf[0], last = buf[payload - 1];

	cpu_set_t saved_cpus;
	if (sched_getaffinity(0, sizeof saved_cpus, &saved_cpus))
		goto sys_fail;
	if (bench_pin_cpu(cpu_client)) {
		fprintf(stderr, "bench_baseline_rt: pinning the client to CPU %d: %s\n", cpu_client,
			strerror(errno));
		goto out;
	}

	/* SIGPIPE off for this thread while it talks to the child. */
	sigset_t pipe_set, old_mask, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	int pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
	sigprocmask(SIG_BLOCK, &pipe_set, &old_mask);

	fflush(NULL);                   /* nothing buffered twice */
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		close_fd(&res[0]);
		if (kind == K_PIPE) {
			close_fd(&req[1]);
			close_fd(&rep[0]);
		} else if (kind == K_STREAM || kind == K_SEQPACKET || kind == K_EPOLL) {
			close_fd(&req[0]);
		}
		server_main(&se, warmup + iters, warmup, cpu_server, res[1], parent);
	}
	int fork_errno = errno;

	/* The child's ends: closed here so that its death reads as EOF/EPIPE. */
	close_fd(&res[1]);
	if (kind == K_PIPE) {
		close_fd(&req[0]);
		close_fd(&rep[1]);
	} else if (kind == K_STREAM || kind == K_SEQPACKET || kind == K_EPOLL) {
		close_fd(&req[1]);
	}

	int client_err = 0, bad_reply = 0;
	unsigned failed_at = 0;
	uint64_t t_start = 0, t_end = 0, c_start = 0, c_end = 0;
	if (pid > 0) {
		for (unsigned i = 0; i < warmup && !client_err; i++) {
			if (client_rt(&ce, buf, reply))
				client_err = errno, failed_at = i;
		}
		if (!client_err) {
			c_start = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
			uint64_t t_prev = t_start = bench_clock_ns(CLOCK_MONOTONIC);
			for (unsigned i = 0; i < iters; i++) {
				if (client_rt(&ce, buf, reply)) {
					client_err = errno, failed_at = warmup + i;
					break;
				}
				uint64_t t = bench_clock_ns(CLOCK_MONOTONIC);
				lat[i] = (double)(t - t_prev);
				t_prev = t;
				if (reply[0] != first || reply[1] != last) {
					bad_reply = 1, failed_at = warmup + i;
					break;
				}
			}
			t_end = bench_clock_ns(CLOCK_MONOTONIC);
			c_end = bench_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		}
	}

	srv_result_t sres = { 0, -1, 0 };
	int status = 0, reaped = 0;
	if (pid > 0) {
		if (client_err || bad_reply)
			kill(pid, SIGKILL);     /* a blocked server would never exit */
		ssize_t r;
		do
			r = read(res[0], &sres, sizeof sres);
		while (r < 0 && errno == EINTR);
		if (r != (ssize_t)sizeof sres)
			sres.stage = -1;        /* no report: killed or crashed */
		pid_t w;
		do
			w = waitpid(pid, &status, 0);
		while (w < 0 && errno == EINTR);
		reaped = w == pid;
		if (w < 0 && errno == ECHILD)   /* SIGCHLD ignored: reaped already */
			reaped = 1, status = 0;
	}

	/* Consume a SIGPIPE this run raised, then restore the signal mask. */
	if (!pipe_was_pending) {
		struct timespec zero = { 0, 0 };
		sigemptyset(&pending);
		sigpending(&pending);
		if (sigismember(&pending, SIGPIPE) == 1)
			sigtimedwait(&pipe_set, NULL, &zero);
	}
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sched_setaffinity(0, sizeof saved_cpus, &saved_cpus);

	if (pid < 0) {
		fprintf(stderr, "bench_baseline_rt: %s: fork: %s\n", kind_name, strerror(fork_errno));
		goto out;
	}
	if (sres.stage > 0 && sres.stage <= ST_IO) {
		fprintf(stderr, "bench_baseline_rt: %s, %zu bytes: server failed in %s: %s\n",
			kind_name, payload, stage_names[sres.stage], strerror(sres.err));
		goto out;
	}
	if (bad_reply) {
		fprintf(stderr, "bench_baseline_rt: %s, %zu bytes: wrong reply in round trip %u "
			"(got %02x %02x, want %02x %02x)\n", kind_name, payload, failed_at,
			reply[0], reply[1], first, last);
		goto out;
	}
	if (client_err) {
		fprintf(stderr, "bench_baseline_rt: %s, %zu bytes: client failed in round trip %u: "
			"%s\n", kind_name, payload, failed_at, strerror(client_err));
		goto out;
	}
	if (sres.stage != ST_OK || !reaped || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_baseline_rt: %s, %zu bytes: server ended badly (status %#x)\n",
			kind_name, payload, (unsigned)status);
		goto out;
	}

	double secs = (double)(t_end - t_start) / 1e9;
	out->p50_ns = bench_percentile(lat, iters, 50);
	out->p99_ns = bench_percentile(lat, iters, 99);
	out->msgs_per_s = secs > 0 ? (double)iters / secs : 0;
	out->client_cpu_ns = (double)(c_end - c_start) / iters;
	out->server_cpu_ns = (double)sres.cpu_ns / iters;
	out->refused_bells = refused_bells;
	rc = 0;
	goto out;

sys_fail:
	fprintf(stderr, "bench_baseline_rt: %s: setting up: %s\n", kind_name, strerror(errno));
out:
	for (int i = 0; i < 2; i++) {
		close_fd(&req[i]);
		close_fd(&rep[i]);
		close_fd(&res[i]);
	}
	if (shm != MAP_FAILED)
		munmap(shm, shm_size);
	free(buf);
	free(lat);
	return rc;
}
