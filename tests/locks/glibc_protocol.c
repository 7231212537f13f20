/* glibc_protocol.c - run under libthothlock.so (check_glibc_protocol.py):
 * the profiler's inline trylock of default mutexes (preload.c,
 * docs/LOCKS.md "The uncontended fast path") leaves every mutex as glibc
 * expects it, with glibc's own functions on the other side:
 *
 *   - one thread (glibc's plain-store case): a taken mutex is busy for
 *     trylock, free again after unlock;
 *   - two threads: a mutex taken inline is busy for the other thread's
 *     trylock; a blocked lock() is woken by the unlock (one contention);
 *   - a condition wait gives the mutex up and takes it back;
 *   - a thread glibc itself put to sleep on a mutex (a condition wait
 *     taking it back: no wrapper sees that wait) is woken by the holder's
 *     unlock, which is the profiler's inline one in contention mode;
 *   - destroy says EBUSY while it is held, 0 once free;
 *   - error-checking and recursive mutexes (glibc's trylock path) keep
 *     their semantics: EDEADLK, EPERM from a non-owner, recursion counts.
 *
 *   glibc_protocol REPORT.json   (writes the contended mutex's address)
 * Exit 0 when every check held; prints "FAIL ..." and exits 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;   /* contended once */
static pthread_mutex_t other = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t back = PTHREAD_MUTEX_INITIALIZER;    /* taken back by a cond wait */
static pthread_cond_t back_cond = PTHREAD_COND_INITIALIZER;
static int flag, ready, back_flag, back_ready;
static _Atomic int waiter_tid;

static int failures;
#define CHECK(cond_, what)                                                        \
	do {                                                                      \
		if (cond_) {                                                      \
			printf("ok %s\n", what);                                  \
		} else {                                                          \
			printf("FAIL %s (%s:%d)\n", what, __FILE__, __LINE__);    \
			failures++;                                               \
		}                                                                 \
	} while (0)

static void pause_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
}

/* The thread's state letter in /proc ('S': asleep, here in the futex). */
static char task_state(int tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void *try_busy(void *arg)
{
	return (void *)(intptr_t)pthread_mutex_trylock(arg);
}

static void *blocked_locker(void *arg)
{
	(void)arg;
	waiter_tid = (int)syscall(SYS_gettid);
	pthread_mutex_lock(&plain);             /* blocks: main holds it */
	pthread_mutex_unlock(&plain);
	return NULL;
}

static void *cond_waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&other);
	ready = 1;                              /* seen by main only once we wait */
	while (!flag)
		pthread_cond_wait(&cond, &other);
	flag = 2;                               /* we hold it again here */
	pthread_mutex_unlock(&other);
	return NULL;
}

static void *cond_taker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&back);
	back_ready = 1;
	while (!back_flag)
		pthread_cond_wait(&back_cond, &back);
	back_flag = 2;
	pthread_mutex_unlock(&back);
	return NULL;
}

/* A contended recursive hold: blocked behind main, then taken again by
 * itself; contention mode's one held entry (only the contended
 * acquisition has one) must last until the outermost unlock, so the
 * hold measured is both 20 ms pauses, not the second only. */
static _Atomic int rec_waiter_tid;

static void *rec_waiter(void *arg)
{
	pthread_mutex_t *m = arg;
	rec_waiter_tid = (int)syscall(SYS_gettid);
	pthread_mutex_lock(m);                  /* blocks: main holds it */
	pthread_mutex_lock(m);                  /* its own again: count 2 */
	pause_ms(20);
	pthread_mutex_unlock(m);                /* still held */
	pause_ms(20);
	pthread_mutex_unlock(m);
	return NULL;
}

/* Robust mutexes: a thread takes one and exits holding it. */
static void *lock_and_exit(void *arg)
{
	return (void *)(intptr_t)pthread_mutex_lock(arg);
}

static void alarm_fired(int sig)
{
	(void)sig;
	static const char msg[] = "FAIL robust mutex: a lock hung (alarm)\n";
	(void)!write(2, msg, sizeof msg - 1);
	_exit(3);
}

/* A robust mutex of TYPE whose owner died: the next lock (TIMED: timedlock)
 * takes it with EOWNERDEAD, as glibc says; consistent, unlock, relock 0.
 * The profiler's trylock-first must not take it a second time (it hung). */
static void robust_case(int type, bool timed, const char *name)
{
	pthread_mutexattr_t a;
	pthread_mutex_t m;
	pthread_t t;
	void *ret;
	char what[128];
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, type);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&m, &a);
	pthread_create(&t, NULL, lock_and_exit, &m);
	pthread_join(t, &ret);
	snprintf(what, sizeof what, "robust %s: the owner's lock", name);
	CHECK((intptr_t)ret == 0, what);
	alarm(10);
	int rc;
	if (timed) {
		struct timespec limit;
		clock_gettime(CLOCK_REALTIME, &limit);
		limit.tv_sec += 5;
		rc = pthread_mutex_timedlock(&m, &limit);
	} else {
		rc = pthread_mutex_lock(&m);
	}
	alarm(0);
	snprintf(what, sizeof what, "robust %s%s: lock after the owner died is EOWNERDEAD (got %d)",
	         name, timed ? " timedlock" : "", rc);
	CHECK(rc == EOWNERDEAD, what);
	/* held once, not twice (recursive): one unlock frees it, a second is
	 * EPERM (a robust mutex checks its owner, every type) */
	snprintf(what, sizeof what, "robust %s: consistent, unlock, unlock EPERM, relock 0, unlock",
	         name);
	CHECK(rc == EOWNERDEAD && pthread_mutex_consistent(&m) == 0 &&
	      pthread_mutex_unlock(&m) == 0 && pthread_mutex_unlock(&m) == EPERM &&
	      pthread_mutex_lock(&m) == 0 && pthread_mutex_unlock(&m) == 0, what);
	/* trylock of a dead owner's robust mutex: EOWNERDEAD too */
	pthread_create(&t, NULL, lock_and_exit, &m);
	pthread_join(t, NULL);
	rc = pthread_mutex_trylock(&m);
	snprintf(what, sizeof what, "robust %s: trylock after the owner died is EOWNERDEAD (got %d)",
	         name, rc);
	CHECK(rc == EOWNERDEAD, what);
	CHECK(rc == EOWNERDEAD && pthread_mutex_consistent(&m) == 0 &&
	      pthread_mutex_unlock(&m) == 0 && pthread_mutex_unlock(&m) == EPERM,
	      "robust: consistent and unlock after trylock");
	pthread_mutex_destroy(&m);
	pthread_mutexattr_destroy(&a);
}

static void *unlock_foreign(void *arg)
{
	return (void *)(intptr_t)pthread_mutex_unlock(arg);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	/* One thread: glibc locks private mutexes with plain stores here. */
	CHECK(pthread_mutex_lock(&other) == 0, "single-threaded lock");
	CHECK(pthread_mutex_trylock(&other) == EBUSY, "single-threaded: held mutex busy for trylock");
	CHECK(pthread_mutex_unlock(&other) == 0, "single-threaded unlock");
	CHECK(pthread_mutex_trylock(&other) == 0 && pthread_mutex_unlock(&other) == 0,
	      "single-threaded: free again");

	/* Two threads. */
	pthread_t t;
	void *ret;
	CHECK(pthread_mutex_lock(&other) == 0, "lock");
	pthread_create(&t, NULL, try_busy, &other);
	pthread_join(t, &ret);
	CHECK((intptr_t)ret == EBUSY, "another thread's trylock sees it busy");
	CHECK(pthread_mutex_destroy(&other) == EBUSY, "destroy of a held mutex: EBUSY");
	CHECK(pthread_mutex_unlock(&other) == 0, "unlock");
	pthread_create(&t, NULL, try_busy, &other);
	pthread_join(t, &ret);
	CHECK((intptr_t)ret == 0, "another thread's trylock takes it after the unlock");
	CHECK(pthread_mutex_destroy(&other) == EBUSY, "...and holds it (destroy: EBUSY)");
	/* The owner left without unlocking: glibc's default mutex lets anyone
	 * unlock it (no owner check), which frees it for what follows. */
	CHECK(pthread_mutex_unlock(&other) == 0, "unlock of the thread's hold");

	/* Exactly one contention: the waiter is seen asleep before we let go. */
	CHECK(pthread_mutex_lock(&plain) == 0, "lock the contended mutex");
	pthread_create(&t, NULL, blocked_locker, NULL);
	int waited = 0;
	while ((!waiter_tid || task_state(waiter_tid) != 'S') && waited < 10000) {
		pause_ms(1);
		waited++;
	}
	CHECK(waited < 10000, "the waiter sleeps in lock()");
	pause_ms(2);
	CHECK(pthread_mutex_unlock(&plain) == 0, "unlock wakes the waiter");
	pthread_join(t, NULL);
	CHECK(pthread_mutex_trylock(&plain) == 0 && pthread_mutex_unlock(&plain) == 0,
	      "free after the waiter's unlock");

	/* Condition variable. */
	pthread_create(&t, NULL, cond_waiter, NULL);
	for (int seen = 0, tries = 0; !seen && tries < 10000; tries++) {
		/* The waiter sets `ready` holding the mutex and gives it up only
		 * by waiting: when we get it with ready set, it is waiting. */
		pthread_mutex_lock(&other);
		seen = ready;
		pthread_mutex_unlock(&other);
		if (!seen)
			pause_ms(1);
	}
	pthread_mutex_lock(&other);
	CHECK(ready == 1, "the waiter waits on the condition");
	flag = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&other);
	pthread_join(t, NULL);
	CHECK(flag == 2, "a condition wait gave the mutex up and took it back");
	CHECK(pthread_mutex_destroy(&other) == 0, "destroy of a free mutex: 0");

	/* A waiter no wrapper sees: signalled while we hold the mutex, the
	 * condition wait takes it back inside glibc, finds it held and sleeps
	 * on it (glibc marks the lock word 2: a sleeper).  Nothing asked our
	 * held entry for a stack, so our unlock is the plain one: it must
	 * wake the sleeper. */
	pthread_create(&t, NULL, cond_taker, NULL);
	for (int seen = 0, tries = 0; !seen && tries < 10000; tries++) {
		pthread_mutex_lock(&back);
		seen = back_ready;
		pthread_mutex_unlock(&back);
		if (!seen)
			pause_ms(1);
	}
	pthread_mutex_lock(&back);
	back_flag = 1;
	pthread_cond_signal(&back_cond);
	int slept = 0;
	while (__atomic_load_n(&back.__data.__lock, __ATOMIC_RELAXED) != 2 && slept < 10000) {
		pause_ms(1);
		slept++;
	}
	CHECK(slept < 10000, "the condition waiter sleeps on the mutex we hold");
	pause_ms(2);
	CHECK(pthread_mutex_unlock(&back) == 0, "unlock with a sleeper glibc put there");
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 10;
	CHECK(pthread_timedjoin_np(t, NULL, &limit) == 0 && back_flag == 2,
	      "the unlock woke it: it took the mutex back and let it go");

	/* Error-checking and recursive mutexes: glibc's trylock path. */
	pthread_mutexattr_t a;
	pthread_mutex_t ec, rec;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&ec, &a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&rec, &a);
	CHECK(pthread_mutex_lock(&ec) == 0 && pthread_mutex_lock(&ec) == EDEADLK,
	      "errorcheck: relock is EDEADLK");
	pthread_create(&t, NULL, unlock_foreign, &ec);
	pthread_join(t, &ret);
	CHECK((intptr_t)ret == EPERM, "errorcheck: another thread's unlock is EPERM");
	CHECK(pthread_mutex_unlock(&ec) == 0 && pthread_mutex_unlock(&ec) == EPERM,
	      "errorcheck: unlock, then unlock of a free one is EPERM");
	CHECK(pthread_mutex_lock(&rec) == 0 && pthread_mutex_lock(&rec) == 0 &&
	      pthread_mutex_trylock(&rec) == 0, "recursive: taken three times");
	pthread_create(&t, NULL, try_busy, &rec);
	pthread_join(t, &ret);
	CHECK((intptr_t)ret == EBUSY, "recursive: busy for another thread");
	CHECK(pthread_mutex_unlock(&rec) == 0 && pthread_mutex_unlock(&rec) == 0 &&
	      pthread_mutex_unlock(&rec) == 0 && pthread_mutex_unlock(&rec) == EPERM,
	      "recursive: three unlocks free it");
	CHECK(pthread_mutex_lock(&rec) == 0, "recursive: lock for the contended hold");
	pthread_create(&t, NULL, rec_waiter, &rec);
	waited = 0;
	while ((!rec_waiter_tid || task_state(rec_waiter_tid) != 'S') && waited < 10000) {
		pause_ms(1);
		waited++;
	}
	CHECK(waited < 10000, "recursive: the waiter sleeps in lock()");
	pause_ms(2);
	CHECK(pthread_mutex_unlock(&rec) == 0, "recursive: unlock wakes the waiter");
	pthread_join(t, NULL);

	signal(SIGALRM, alarm_fired);
	robust_case(PTHREAD_MUTEX_NORMAL, false, "normal");
	robust_case(PTHREAD_MUTEX_ERRORCHECK, false, "errorcheck");
	robust_case(PTHREAD_MUTEX_RECURSIVE, false, "recursive");
	robust_case(PTHREAD_MUTEX_NORMAL, true, "normal");
	robust_case(PTHREAD_MUTEX_ERRORCHECK, true, "errorcheck");

	FILE *f = fopen(argv[1], "w");
	if (f) {
		fprintf(f, "{\"contended\":\"%p\",\"recursive\":\"%p\"}\n", (void *)&plain,
		        (void *)&rec);
		fclose(f);
	}
	printf("%s\n", failures ? "FAILED" : "PASS");
	return failures ? 1 : 0;
}
