/*
 * rt_baseline.c - round trips over pipe, Unix stream, Unix seqpacket and
 * eventfd + shared-memory copy (see rt_baseline.h for what is measured).
 *
 * Every transport moves the payload by copying it: through the kernel for
 * the sockets and pipes, through a shared buffer (one memcpy in, one out)
 * for eventfd-shm.  The seqpacket transport sends payloads larger than one
 * datagram as 64 KiB records (AF_UNIX seqpacket records are limited by the
 * socket buffer size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rt_baseline.h"

#define REPLY 64u
#define CHUNK (64u << 10)

enum kind { K_PIPE, K_STREAM, K_SEQPACKET, K_EVENTFD };

int bench_pin_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set) ? -1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double bench_percentile(double *s, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(s, n, sizeof *s, cmp_double);
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return s[i < n ? i : n - 1];
}

/* The two ends of a transport as the client or the server sees it. */
typedef struct ends {
	enum kind kind;
	int tx, rx;             /* fds: send to the peer, receive from it */
	int efd_tx, efd_rx;     /* eventfd-shm: doorbells */
	uint8_t *shm;           /* eventfd-shm: payload area + reply area */
	size_t payload;
} ends_t;

static int write_full(int fd, const uint8_t *p, size_t n, bool records)
{
	while (n) {
		size_t want = records && n > CHUNK ? CHUNK : n;
		ssize_t r = write(fd, p, want);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int read_full(int fd, uint8_t *p, size_t n, bool records)
{
	while (n) {
		size_t want = records && n > CHUNK ? CHUNK : n;
		ssize_t r = read(fd, p, want);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int ring(int efd)
{
	uint64_t one = 1;
	return write(efd, &one, sizeof one) == sizeof one ? 0 : -1;
}

static int await(int efd)
{
	uint64_t v;
	for (;;) {
		ssize_t r = read(efd, &v, sizeof v);
		if (r == sizeof v)
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		return -1;
	}
}

/* Client side: send the payload, receive the reply. */
static int client_rt(ends_t *e, const uint8_t *payload, uint8_t *reply)
{
	bool rec = e->kind == K_SEQPACKET;
	if (e->kind == K_EVENTFD) {
		memcpy(e->shm, payload, e->payload);
		if (ring(e->efd_tx) || await(e->efd_rx))
			return -1;
		memcpy(reply, e->shm + e->payload, REPLY);
		return 0;
	}
	if (write_full(e->tx, payload, e->payload, rec))
		return -1;
	return read_full(e->rx, reply, REPLY, rec);
}

/* Server side: one round trip. */
static int server_rt(ends_t *e, uint8_t *buf, uint8_t *reply)
{
	bool rec = e->kind == K_SEQPACKET;
	if (e->kind == K_EVENTFD) {
		if (await(e->efd_rx))
			return -1;
		memcpy(buf, e->shm, e->payload);
	} else if (read_full(e->rx, buf, e->payload, rec)) {
		return -1;
	}
	reply[0] = buf[0];
	reply[1] = buf[e->payload - 1];
	if (e->kind == K_EVENTFD) {
		memcpy(e->shm + e->payload, reply, REPLY);
		return ring(e->efd_tx);
	}
	return write_full(e->tx, reply, REPLY, rec);
}

static int make_pair(enum kind kind, int fds[2])
{
	switch (kind) {
	case K_PIPE:
		return pipe2(fds, O_CLOEXEC);
	case K_STREAM:
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
	case K_SEQPACKET: {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds))
			return -1;
		int sz = 4 << 20;
		for (int i = 0; i < 2; i++) {
			setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
			setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
		}
		return 0;
	}
	case K_EVENTFD:
		fds[0] = eventfd(0, EFD_CLOEXEC);
		fds[1] = -1;
		return fds[0] < 0 ? -1 : 0;
	}
	return -1;
}

int bench_baseline_rt(const char *kind_name, size_t payload, unsigned warmup, unsigned iters,
		      int cpu_client, int cpu_server, bench_rt_result_t *out)
{
	enum kind kind;
	if (!strcmp(kind_name, "pipe"))
		kind = K_PIPE;
	else if (!strcmp(kind_name, "unix-stream"))
		kind = K_STREAM;
	else if (!strcmp(kind_name, "unix-seqpacket"))
		kind = K_SEQPACKET;
	else if (!strcmp(kind_name, "eventfd-shm"))
		kind = K_EVENTFD;
	else {
		fprintf(stderr, "bench: unknown baseline %s\n", kind_name);
		return -1;
	}
	if (payload < 2 || !iters)
		return -1;
	/* a = client -> server, b = server -> client; cpu = server's CPU time back. */
	int a[2] = { -1, -1 }, b[2] = { -1, -1 }, cpu_pipe[2] = { -1, -1 };
	uint8_t *shm = NULL;
	size_t shm_size = payload + REPLY;
	int rc = -1;
	if (make_pair(kind, a) || make_pair(kind, b) || pipe2(cpu_pipe, O_CLOEXEC)) {
		perror("bench: transport");
		goto out;
	}
	if (kind == K_PIPE) {
		fcntl(a[1], F_SETPIPE_SZ, 1 << 20);
		fcntl(b[1], F_SETPIPE_SZ, 1 << 20);
	}
	if (kind == K_EVENTFD) {
		shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (shm == MAP_FAILED) {
			shm = NULL;
			goto out;
		}
	}
	uint8_t *buf = malloc(payload), *reply = calloc(1, REPLY);
	double *lat = calloc(iters, sizeof *lat);
	if (!buf || !reply || !lat) {
		free(buf);
		free(reply);
		free(lat);
		goto out;
	}
	memset(buf, 0x42, payload);
	unsigned total = warmup + iters;

	pid_t pid = fork();
	if (pid < 0) {
		perror("bench: fork");
		free(buf);
		free(reply);
		free(lat);
		goto out;
	}
	if (pid == 0) {
		bench_pin_cpu(cpu_server);
		ends_t e = { .kind = kind, .payload = payload, .shm = shm };
		if (kind == K_EVENTFD) {
			e.efd_rx = a[0];
			e.efd_tx = b[0];
		} else if (kind == K_PIPE) {
			e.rx = a[0];
			e.tx = b[1];
		} else {
			e.rx = a[1];    /* socketpairs are bidirectional: the server uses the far ends */
			e.tx = b[1];
		}
		uint64_t c0 = 0;
		for (unsigned i = 0; i < total; i++) {
			if (i == warmup)
				c0 = bench_cpu_ns();
			if (server_rt(&e, buf, reply))
				_exit(1);
		}
		uint64_t used = bench_cpu_ns() - c0;
		_exit(write(cpu_pipe[1], &used, sizeof used) == sizeof used ? 0 : 1);
	}

	cpu_set_t saved;
	sched_getaffinity(0, sizeof saved, &saved);
	bench_pin_cpu(cpu_client);
	ends_t e = { .kind = kind, .payload = payload, .shm = shm };
	if (kind == K_EVENTFD) {
		e.efd_tx = a[0];
		e.efd_rx = b[0];
	} else if (kind == K_PIPE) {
		e.tx = a[1];
		e.rx = b[0];
	} else {
		e.tx = a[0];
		e.rx = b[0];
	}
	uint64_t t_start = 0, c_start = 0;
	int err = 0;
	for (unsigned i = 0; i < total && !err; i++) {
		if (i == warmup) {
			t_start = bench_now_ns();
			c_start = bench_cpu_ns();
		}
		uint64_t t0 = bench_now_ns();
		err = client_rt(&e, buf, reply);
		if (i >= warmup)
			lat[i - warmup] = (double)(bench_now_ns() - t0);
	}
	uint64_t elapsed = bench_now_ns() - t_start, ccpu = bench_cpu_ns() - c_start;
	uint64_t scpu = 0;
	int status = 0;
	if (!err && read(cpu_pipe[0], &scpu, sizeof scpu) != sizeof scpu)
		err = -1;
	if (err)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	sched_setaffinity(0, sizeof saved, &saved);
	if (!err && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		out->p50_ns = bench_percentile(lat, iters, 50);
		out->p99_ns = bench_percentile(lat, iters, 99);
		out->msgs_per_s = iters / (elapsed / 1e9);
		out->client_cpu_ns = (double)ccpu / iters;
		out->server_cpu_ns = (double)scpu / iters;
		rc = 0;
	} else {
		fprintf(stderr, "bench: %s with %zu bytes failed\n", kind_name, payload);
	}
	free(buf);
	free(reply);
	free(lat);
out:
	for (int i = 0; i < 2; i++) {
		if (a[i] >= 0)
			close(a[i]);
		if (b[i] >= 0)
			close(b[i]);
		if (cpu_pipe[i] >= 0)
			close(cpu_pipe[i]);
	}
	if (shm)
		munmap(shm, shm_size);
	return rc;
}
