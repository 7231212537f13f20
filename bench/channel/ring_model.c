/*
 * ring_model.c - what a ring's cache lines cost a spinning round trip
 * between two CPUs, apart from any protocol work: two processes pinned to
 * CPUs 0 and 1 pass a message back and forth through shared memory laid
 * out one of five ways, and the client times each round trip.  No hardware
 * counters needed (this VM has none).  docs/BENCHMARKS.md (SCHED-3/4, stop
 * 28), docs/IPC.md "Cache lines".
 *
 *   bench_ring_model SHAPE [MSG_BYTES [ROUND_TRIPS]]
 *
 * SHAPE:
 *   spin     spin-shm's: the message in its own lines, a sequence word on
 *            another line, bumped with lock xadd; the reply likewise
 *   head16   channel layout 2: the consumer polls `head`, then copies the
 *            message from a slot with a 16-byte descriptor; tail stored
 *            and fenced, the peer's waiting flag read, as the channel does
 *   head8    the same with an 8-byte descriptor
 *   tag16    the consumer polls the slot's first word (a tag stored last),
 *            16-byte descriptor; head still stored
 *   tag8     the same with an 8-byte descriptor (channel layout 3)
 * Add "-narrow" (e.g. tag8-narrow) to write the message with 8-byte stores,
 * the way an encoder writes in place, instead of one copy.
 *
 * Prints the p50 of the round trips (ns) after 1,000 warm-up ones.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 256u
#define SLOT 256u
#define WARMUP 1000u

enum shape { SPIN, HEAD16, HEAD8, TAG16, TAG8 };

typedef struct dir {
	_Alignas(64) _Atomic uint32_t head;
	_Alignas(64) _Atomic uint32_t tail;
	_Atomic uint32_t prod_waiting;
	_Alignas(64) _Atomic uint32_t cons_waiting;
} dir_t;

typedef struct shm {
	dir_t d[2];
	_Alignas(64) _Atomic uint32_t seq[2][16];     /* spin: one word per line */
	_Alignas(64) uint8_t spin_buf[2][256];        /* spin: request, reply */
	_Alignas(64) uint8_t ring[2][SLOTS * SLOT];
} shm_t;

typedef struct end {
	shm_t *s;
	enum shape shape;
	bool narrow;
	size_t msg;
	uint32_t head, tail, seen;
} end_t;

static uint8_t copy_out[256];

static size_t desc(const end_t *e)
{
	return e->shape == HEAD8 || e->shape == TAG8 ? 8 : 16;
}

static void put(const end_t *e, uint8_t *to, const uint8_t *from)
{
	if (!e->narrow) {
		memcpy(to, from, e->msg);
		return;
	}
	for (size_t o = 0; o + 8 <= e->msg; o += 8)
		__atomic_store_n((uint64_t *)(void *)(to + o), (uint64_t)o * 3 + e->head, __ATOMIC_RELAXED);
}

static void send_msg(end_t *e, int d, const uint8_t *msg)
{
	if (e->shape == SPIN) {
		put(e, e->s->spin_buf[d], msg);
		atomic_fetch_add_explicit(&e->s->seq[d][0], 1, memory_order_release);
		return;
	}
	uint8_t *slot = e->s->ring[d] + (size_t)(e->head % SLOTS) * SLOT;
	put(e, slot + desc(e), msg);
	__atomic_store_n((uint32_t *)(void *)(slot + 4), (uint32_t)e->msg, __ATOMIC_RELAXED);
	e->head++;
	__atomic_store_n((uint32_t *)(void *)slot, e->head, __ATOMIC_RELEASE);
	atomic_store_explicit(&e->s->d[d].head, e->head, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	(void)atomic_load_explicit(&e->s->d[d].cons_waiting, memory_order_relaxed);
}

static void recv_msg(end_t *e, int d)
{
	if (e->shape == SPIN) {
		while (atomic_load_explicit(&e->s->seq[d][0], memory_order_acquire) == e->seen)
			__builtin_ia32_pause();
		e->seen++;
		memcpy(copy_out, e->s->spin_buf[d], e->msg);
		__asm__ volatile("" : : "r"(copy_out) : "memory");
		return;
	}
	uint8_t *slot = e->s->ring[d] + (size_t)(e->tail % SLOTS) * SLOT;
	if (e->shape == TAG16 || e->shape == TAG8) {
		while (__atomic_load_n((uint32_t *)(void *)slot, __ATOMIC_ACQUIRE) != e->tail + 1)
			__builtin_ia32_pause();
	} else {
		while (atomic_load_explicit(&e->s->d[d].head, memory_order_acquire) == e->tail)
			__builtin_ia32_pause();
	}
	uint32_t len = __atomic_load_n((uint32_t *)(void *)(slot + 4), __ATOMIC_RELAXED);
	if (len > sizeof copy_out)
		abort();
	memcpy(copy_out, slot + desc(e), len);
	__asm__ volatile("" : : "r"(copy_out) : "memory");
	e->tail++;
	atomic_store_explicit(&e->s->d[d].tail, e->tail, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	(void)atomic_load_explicit(&e->s->d[d].prod_waiting, memory_order_relaxed);
}

static int pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "spin", "head16", "head8", "tag16", "tag8" };
	end_t e = { .msg = 120 };
	unsigned long n = 20000;
	const char *arg = argc > 1 ? argv[1] : "";
	size_t k = strcspn(arg, "-");
	e.narrow = strcmp(arg + k, "-narrow") == 0;
	int shape = -1;
	for (int i = 0; i < 5; i++)
		if (strlen(names[i]) == k && strncmp(arg, names[i], k) == 0)
			shape = i;
	if (shape < 0 || (arg[k] && !e.narrow)) {
		fprintf(stderr, "bench_ring_model: shape '%s': use spin, head16, head8, tag16 or tag8, optionally with -narrow\n", arg);
		return 2;
	}
	e.shape = (enum shape)shape;
	if (argc > 2)
		e.msg = strtoul(argv[2], NULL, 10);
	if (argc > 3)
		n = strtoul(argv[3], NULL, 10);
	if (e.msg < 8 || e.msg > 240 || n < 1 || n > 10000000) {
		fprintf(stderr, "bench_ring_model: message bytes must be 8..240 and round trips 1..10000000\n");
		return 2;
	}
	shm_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint64_t *rt = malloc(sizeof *rt * n);
	if (s == MAP_FAILED || !rt) {
		perror("bench_ring_model: memory");
		return 1;
	}
	e.s = s;
	uint8_t msg[256];
	memset(msg, 1, sizeof msg);
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_ring_model: fork");
		return 1;
	}
	if (pid == 0) {                 /* the service: echo each message back */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pin(1))
			_exit(1);
		for (unsigned long i = 0; i < n + WARMUP; i++) {
			recv_msg(&e, 0);
			send_msg(&e, 1, msg);
		}
		_exit(0);
	}
	if (pin(0)) {
		perror("bench_ring_model: cannot pin to CPU 0");
		kill(pid, SIGKILL);
		return 1;
	}
	for (unsigned long i = 0; i < n + WARMUP; i++) {
		uint64_t t0 = now_ns();
		send_msg(&e, 0, msg);
		recv_msg(&e, 1);
		if (i >= WARMUP)
			rt[i - WARMUP] = now_ns() - t0;
	}
	int status = 0;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bench_ring_model: the service process failed (pinned to CPU 1?)\n");
		return 1;
	}
	qsort(rt, n, sizeof *rt, cmp_u64);
	printf("%s%s %zu B: p50 %llu ns over %lu round trips\n", names[e.shape], e.narrow ? "-narrow" : "",
	       e.msg, (unsigned long long)rt[n / 2], n);
	free(rt);
	return 0;
}
