/* known_answer.c - a program whose lock contention is known in advance.
 *
 *   known_answer THREADS ROUNDS HOLD_US WAITER_HOLD_US REFERENCE.json
 *
 * One hot lock (`hot_lock`, a global: the report names it), THREADS
 * threads, ROUNDS rounds.  In round r thread r % THREADS is the holder: it
 * takes the lock (free: the previous round has ended), then waits until
 * every other thread has called pthread_mutex_lock AND sleeps in the
 * kernel (/proc/self/task/TID/stat state 'S': blocked on the futex, so its
 * trylock has failed), then holds HOLD_US more and unlocks.  The waiters
 * take the lock one after another and hold it WAITER_HOLD_US each.
 *
 * So contentions are exactly ROUNDS x (THREADS - 1) and acquisitions
 * ROUNDS x THREADS, by construction, not by measurement.  Wait and hold
 * times are measured here, independently of the profiler, around the
 * same calls (the "separate instrumented counter"): the profiler's totals
 * must match them within 5 %.  The reference goes to REFERENCE.json.
 * The threads synchronise between rounds with atomics only, so the hot
 * lock is the only pthread lock the program takes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "../../kernel/sched/procstat.h"

pthread_mutex_t hot_lock = PTHREAD_MUTEX_INITIALIZER;

enum { MAX_THREADS = 16 };

static int threads, rounds;
static uint64_t hold_ns, waiter_hold_ns;
static _Atomic int round_held = -1;            /* the round whose holder has the lock */
static _Atomic int round_done;                 /* threads finished with the current round */
static _Atomic int current_round;
static _Atomic int attempting[MAX_THREADS];    /* round this thread is about to lock in */
static _Atomic int tids[MAX_THREADS];
static uint64_t wait_ref[MAX_THREADS], hold_ref[MAX_THREADS], waiter_hold_ref[MAX_THREADS];

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void spin_for(uint64_t ns)
{
	uint64_t end = now_ns() + ns;
	while (now_ns() < end)
		;
}

/* The thread sleeps in the kernel: state 'S' in /proc/self/task/TID/stat. */
/* Thread TID of this process is asleep (state S: blocked on the lock). */
static bool sleeping(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	const char *state = thoth__proc_stat_field(path, 3, buf, sizeof buf);
	return state && state[0] == 'S';
}

__attribute__((noinline)) static void holder_lock(void)
{
	pthread_mutex_lock(&hot_lock);   /* KNOWN_ANSWER_HOLDER_SITE */
}

__attribute__((noinline)) static void waiter_lock(void)
{
	pthread_mutex_lock(&hot_lock);   /* KNOWN_ANSWER_WAIT_SITE */
}

/* Where the holder lets the waiters in: contention-only mode names the
 * holder by its release site (no held entry says where it took the lock). */
__attribute__((noinline)) static void holder_unlock(void)
{
	pthread_mutex_unlock(&hot_lock);   /* KNOWN_ANSWER_HOLDER_RELEASE */
}

static void *run(void *arg)
{
	int me = (int)(intptr_t)arg;
	atomic_store(&tids[me], (int)syscall(SYS_gettid));
	for (int r = 0; r < rounds; r++) {
		while (atomic_load(&current_round) != r)
			sched_yield();
		if (r % threads == me) {
			holder_lock();
			uint64_t t_acq = now_ns();
			atomic_store(&round_held, r);
			for (int o = 0; o < threads; o++) {
				if (o == me)
					continue;
				while (atomic_load(&attempting[o]) != r || !sleeping(atomic_load(&tids[o])))
					sched_yield();
			}
			spin_for(hold_ns);
			hold_ref[me] += now_ns() - t_acq;
			holder_unlock();
		} else {
			while (atomic_load(&round_held) != r)
				sched_yield();
			uint64_t t0 = now_ns();
			atomic_store(&attempting[me], r);
			waiter_lock();
			uint64_t t1 = now_ns();
			wait_ref[me] += t1 - t0;
			spin_for(waiter_hold_ns);
			waiter_hold_ref[me] += now_ns() - t1;
			pthread_mutex_unlock(&hot_lock);
		}
		if (atomic_fetch_add(&round_done, 1) + 1 == threads) {
			atomic_store(&round_done, 0);
			atomic_store(&current_round, r + 1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: known_answer THREADS ROUNDS HOLD_US WAITER_HOLD_US REFERENCE.json\n");
		return 2;
	}
	threads = atoi(argv[1]);
	rounds = atoi(argv[2]);
	hold_ns = strtoull(argv[3], NULL, 10) * 1000;
	waiter_hold_ns = strtoull(argv[4], NULL, 10) * 1000;
	if (threads < 2 || threads > MAX_THREADS || rounds < 1) {
		fprintf(stderr, "known_answer: THREADS 2..%d, ROUNDS >= 1\n", MAX_THREADS);
		return 2;
	}
	for (int i = 0; i < MAX_THREADS; i++)
		atomic_store(&attempting[i], -1);
	pthread_t th[MAX_THREADS];
	for (int i = 0; i < threads; i++)
		if (pthread_create(&th[i], NULL, run, (void *)(intptr_t)i) != 0) {
			perror("pthread_create");
			return 1;
		}
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	uint64_t wait = 0, hold = 0, whold = 0;
	for (int i = 0; i < threads; i++) {
		wait += wait_ref[i];
		hold += hold_ref[i];
		whold += waiter_hold_ref[i];
	}
	FILE *f = fopen(argv[5], "w");
	if (!f) {
		perror(argv[5]);
		return 1;
	}
	fprintf(f, "{\"lock_address\":\"%p\",\"acquisitions\":%d,\"contentions\":%d,"
	        "\"wait_ns_total\":%llu,\"holder_hold_ns_total\":%llu,\"waiter_hold_ns_total\":%llu}\n",
	        (void *)&hot_lock, rounds * threads, rounds * (threads - 1),
	        (unsigned long long)wait, (unsigned long long)hold, (unsigned long long)whold);
	return fclose(f) == 0 ? 0 : 1;
}
