/* locks_uncontended.c - the uncontended lock/unlock pair: what the
 * profiler adds, against glibc's own functions in the same process run.
 *
 *   locks_uncontended [--batches N] [--pairs P] [--threaded]
 *                                                    timing (default 201 x 20000)
 *   locks_uncontended --only plt|glibc PAIRS         PAIRS pairs of one kind, for
 *                                                    callgrind (bench_locks takes
 *                                                    the difference of two counts)
 *
 * One thread, one mutex.  Two loops, both calling through a pointer:
 *   glibc   glibc's pthread_mutex_lock/unlock, looked up in libc.so.6 itself
 *           (dlsym on its handle), so LD_PRELOAD cannot interpose them: the
 *           baseline;
 *   plt     the program's pthread_mutex_lock/unlock (the PLT's resolution):
 *           libthothlock.so's wrappers when it is preloaded, else glibc's
 *           again (then the two figures differ only by noise: a control).
 * Batches of P pairs alternate between the two; each batch is timed with
 * CLOCK_MONOTONIC and the medians per pair are printed, so a batch that was
 * preempted on a loaded machine does not move the figure.
 *
 * --threaded keeps a second thread alive (blocked) while timing: glibc
 * then takes its multi-threaded path (an atomic instruction for the lock
 * word), as in any program a lock profiler is for; without it, glibc sees
 * a single-threaded process and locks with plain stores.
 *
 * Prints:  interposed yes|no
 *          glibc_ns_per_pair X
 *          plt_ns_per_pair Y
 *          added_ns_per_pair Y-X
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*mutex_fn)(pthread_mutex_t *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* noinline + volatile pointers: both loops are the same machine code, only
 * the functions called differ. */
static __attribute__((noinline)) void pairs(long n, mutex_fn lk, mutex_fn un)
{
	mutex_fn volatile l = lk, u = un;
	for (long i = 0; i < n; i++) {
		l(&lock);
		__asm__ volatile("" ::: "memory");
		u(&lock);
	}
}

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int park_done;

static void *park(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&park_lock);
	while (!park_done)
		pthread_cond_wait(&park_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	long batches = 201, per = 20000, only_pairs = 0;
	const char *only = NULL;
	int threaded = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
			batches = atol(argv[++i]);
		else if (strcmp(argv[i], "--pairs") == 0 && i + 1 < argc)
			per = atol(argv[++i]);
		else if (strcmp(argv[i], "--threaded") == 0)
			threaded = 1;
		else if (strcmp(argv[i], "--only") == 0 && i + 2 < argc) {
			only = argv[++i];
			only_pairs = atol(argv[++i]);
		} else {
			fprintf(stderr, "usage: %s [--batches N] [--pairs P] [--threaded] [--only plt|glibc PAIRS]\n",
			        argv[0]);
			return 2;
		}
	}
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	mutex_fn glibc_lock = libc ? (mutex_fn)dlsym(libc, "pthread_mutex_lock") : NULL;
	mutex_fn glibc_unlock = libc ? (mutex_fn)dlsym(libc, "pthread_mutex_unlock") : NULL;
	if (!glibc_lock || !glibc_unlock) {
		fprintf(stderr, "locks_uncontended: glibc's pthread_mutex_lock not found\n");
		return 1;
	}
	mutex_fn plt_lock = pthread_mutex_lock, plt_unlock = pthread_mutex_unlock;
	pthread_t parked;
	if (threaded && pthread_create(&parked, NULL, park, NULL) != 0) {
		fprintf(stderr, "locks_uncontended: pthread_create failed\n");
		return 1;
	}
	int rc = 0;
	if (only) {
		if (only_pairs < 1 || (strcmp(only, "plt") && strcmp(only, "glibc"))) {
			rc = 2;
			goto out;
		}
		int plt = strcmp(only, "plt") == 0;
		pairs(only_pairs, plt ? plt_lock : glibc_lock, plt ? plt_unlock : glibc_unlock);
		goto out;
	}
	double *g = batches > 0 ? calloc((size_t)batches, sizeof *g) : NULL;
	double *p = batches > 0 ? calloc((size_t)batches, sizeof *p) : NULL;
	if (!g || !p || per < 1) {
		free(g);
		free(p);
		rc = 2;
		goto out;
	}
	pairs(per, glibc_lock, glibc_unlock);   /* warm-up: first touch, lazy binding */
	pairs(per, plt_lock, plt_unlock);
	for (long b = 0; b < batches; b++) {
		/* Alternate which goes first: no order effect in the medians. */
		for (int k = 0; k < 2; k++) {
			int plt = (k + (int)b) % 2;
			double t0 = now_ns();
			pairs(per, plt ? plt_lock : glibc_lock, plt ? plt_unlock : glibc_unlock);
			double ns = (now_ns() - t0) / (double)per;
			(plt ? p : g)[b] = ns;
		}
	}
	double mg = median(g, (int)batches), mp = median(p, (int)batches);
	printf("interposed %s\n", plt_lock != glibc_lock ? "yes" : "no");
	printf("threads %d\n", threaded ? 2 : 1);
	printf("glibc_ns_per_pair %.3f\n", mg);
	printf("plt_ns_per_pair %.3f\n", mp);
	printf("added_ns_per_pair %.3f\n", mp - mg);
	free(g);
	free(p);
out:
	if (threaded) {
		pthread_mutex_lock(&park_lock);
		park_done = 1;
		pthread_cond_signal(&park_cond);
		pthread_mutex_unlock(&park_lock);
		pthread_join(parked, NULL);
	}
	return rc;
}
