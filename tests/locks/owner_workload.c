/* owner_workload.c - owner changes with a known answer (all mode).
 *
 * Two threads take turns, handing over with an atomic turn counter (not
 * a pthread lock: nothing else is profiled).  In each of TURNS turns the
 * thread whose turn it is takes each lock RUN times in a row, so every
 * turn after the first starts with exactly one owner change per lock:
 * TURNS - 1 owner changes, TURNS x RUN acquisitions.
 *
 *   owner_default    a default mutex: its owner kept in the mutex
 *                    (preload.c, owner_flags), taken by lock, trylock
 *                    and timedlock alike
 *   owner_recursive  a recursive mutex: its owner in the table's key
 *   owner_rwlock     an rwlock taken for writing: likewise in the key
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TURNS 9
#define RUN   4

pthread_mutex_t owner_default = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t owner_recursive;
pthread_rwlock_t owner_rwlock = PTHREAD_RWLOCK_INITIALIZER;
static _Atomic int turn;

static void take_all(int i)
{
	struct timespec far;
	clock_gettime(CLOCK_REALTIME, &far);
	far.tv_sec += 60;
	/* The default mutex by its three entry points in turn. */
	int rc = i % 3 == 0   ? pthread_mutex_lock(&owner_default)
	         : i % 3 == 1 ? pthread_mutex_trylock(&owner_default)
	                      : pthread_mutex_timedlock(&owner_default, &far);
	if (rc != 0) {
		fprintf(stderr, "owner_default: %d\n", rc);
		exit(1);
	}
	pthread_mutex_unlock(&owner_default);
	pthread_mutex_lock(&owner_recursive);
	pthread_mutex_unlock(&owner_recursive);
	pthread_rwlock_wrlock(&owner_rwlock);
	pthread_rwlock_unlock(&owner_rwlock);
}

static void *player(void *arg)
{
	int me = (int)(long)arg;
	for (int t = me; t < TURNS; t += 2) {
		while (atomic_load(&turn) != t)
			sched_yield();
		for (int i = 0; i < RUN; i++)
			take_all(i);
		atomic_store(&turn, t + 1);
	}
	return NULL;
}

int main(void)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&owner_recursive, &a);
	pthread_t th[2];
	for (long i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, player, (void *)i);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("turns %d run %d\n", TURNS, RUN);
	return 0;
}
