/* mutex.c - thoth_mutex_t: a pthread mutex with always-on contention
 * statistics (include/thoth/mutex.h says what is counted and why it is
 * cheap).  Built into thoth_trace (libthoth), so every module may use it.
 */
#define _GNU_SOURCE
#include "thoth/mutex.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "thoth/error.h"

/* The process's list of mutexes.  Taken only to list, unlist and walk,
 * never while a thoth_mutex is being waited for by this code path: it is
 * always the innermost lock. */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static thoth_mutex_t *list_head;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void list_add(thoth_mutex_t *m)
{
	pthread_mutex_lock(&list_lock);
	if (!m->listed) {
		m->next = list_head;
		list_head = m;
		__atomic_store_n(&m->listed, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&list_lock);
}

int thoth_mutex_init(thoth_mutex_t *m, const char *name)
{
	if (!m)
		return THOTH_E_INVAL;
	*m = (thoth_mutex_t)THOTH_MUTEX_INITIALIZER(name);
	int rc = pthread_mutex_init(&m->lock, NULL);
	if (rc)
		return thoth_error_io(rc, "pthread_mutex_init");
	list_add(m);
	return 0;
}

int thoth_mutex_destroy(thoth_mutex_t *m)
{
	if (!m)
		return THOTH_E_INVAL;
	pthread_mutex_lock(&list_lock);
	if (m->listed) {
		for (thoth_mutex_t **p = &list_head; *p; p = &(*p)->next) {
			if (*p == m) {
				*p = m->next;
				break;
			}
		}
		m->listed = 0;
	}
	pthread_mutex_unlock(&list_lock);
	return pthread_mutex_destroy(&m->lock) == EBUSY ? THOTH_E_BUSY : 0;
}

static inline void add_relaxed(uint64_t *p, uint64_t v)
{
	/* Only the holder writes: a plain read-modify-write, stored relaxed so
	 * the racy readers see a whole value. */
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

void thoth_mutex_lock(thoth_mutex_t *m)
{
	if (__builtin_expect(pthread_mutex_trylock(&m->lock) == 0, 1)) {
		add_relaxed(&m->acquisitions, 1);
		return;
	}
	/* Waiting anyway: list a statically initialised mutex now, not inside
	 * the critical section. */
	if (!__atomic_load_n(&m->listed, __ATOMIC_ACQUIRE))
		list_add(m);
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&m->lock);
	uint64_t wait = now_ns() - t0;
	add_relaxed(&m->acquisitions, 1);
	add_relaxed(&m->contentions, 1);
	add_relaxed(&m->wait_ns_total, wait);
	if (wait > __atomic_load_n(&m->wait_ns_max, __ATOMIC_RELAXED))
		__atomic_store_n(&m->wait_ns_max, wait, __ATOMIC_RELAXED);
}

int thoth_mutex_trylock(thoth_mutex_t *m)
{
	if (pthread_mutex_trylock(&m->lock) != 0)
		return THOTH_E_BUSY;
	add_relaxed(&m->acquisitions, 1);
	return 0;
}

void thoth_mutex_unlock(thoth_mutex_t *m)
{
	pthread_mutex_unlock(&m->lock);
}

void thoth_mutex_stats(const thoth_mutex_t *m, thoth_lock_stats_t *out)
{
	out->name = m->name;
	out->address = m;
	out->acquisitions = __atomic_load_n(&m->acquisitions, __ATOMIC_RELAXED);
	out->contentions = __atomic_load_n(&m->contentions, __ATOMIC_RELAXED);
	out->wait_ns_total = __atomic_load_n(&m->wait_ns_total, __ATOMIC_RELAXED);
	out->wait_ns_max = __atomic_load_n(&m->wait_ns_max, __ATOMIC_RELAXED);
}

int thoth_mutex_stats_foreach(int (*fn)(const thoth_lock_stats_t *st, void *ctx), void *ctx)
{
	if (!fn)
		return THOTH_E_INVAL;
	int rc = 0;
	pthread_mutex_lock(&list_lock);
	for (thoth_mutex_t *m = list_head; m && rc == 0; m = m->next) {
		thoth_lock_stats_t st;
		thoth_mutex_stats(m, &st);
		rc = fn(&st, ctx);
	}
	pthread_mutex_unlock(&list_lock);
	return rc;
}

typedef struct {
	thoth_lock_stats_t *v;
	size_t n, cap;
} stats_vec_t;

static int collect(const thoth_lock_stats_t *st, void *ctx)
{
	stats_vec_t *vec = ctx;
	if (vec->n == vec->cap) {
		size_t cap = vec->cap ? vec->cap * 2 : 16;
		thoth_lock_stats_t *v = realloc(vec->v, cap * sizeof *v);
		if (!v)
			return THOTH_E_NOMEM;
		vec->v = v;
		vec->cap = cap;
	}
	vec->v[vec->n++] = *st;
	return 0;
}

static int by_wait(const void *a, const void *b)
{
	const thoth_lock_stats_t *x = a, *y = b;
	if (x->wait_ns_total != y->wait_ns_total)
		return x->wait_ns_total > y->wait_ns_total ? -1 : 1;
	if (x->contentions != y->contentions)
		return x->contentions > y->contentions ? -1 : 1;
	return x->acquisitions > y->acquisitions ? -1 : x->acquisitions < y->acquisitions;
}

static void json_name(FILE *out, const char *s)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

int thoth_mutex_stats_write_json(FILE *out)
{
	if (!out)
		return THOTH_E_INVAL;
	stats_vec_t vec = { 0 };
	int rc = thoth_mutex_stats_foreach(collect, &vec);
	if (rc) {
		free(vec.v);
		return rc;
	}
	qsort(vec.v, vec.n, sizeof *vec.v, by_wait);
	fprintf(out, "{\"tool\":\"thoth_mutex\",\"format\":1,\"processes\":[{\"pid\":%d,"
	        "\"mode\":\"native\",\"exited\":false}],\"locks_total\":%zu,\"locks\":[",
	        (int)getpid(), vec.n);
	for (size_t i = 0; i < vec.n; i++) {
		const thoth_lock_stats_t *s = &vec.v[i];
		fprintf(out, "%s{\"pid\":%d,\"address\":\"%p\",\"name\":", i ? "," : "", (int)getpid(),
		        s->address);
		json_name(out, s->name);
		fprintf(out, ",\"kind\":\"thoth_mutex\",\"acquisitions\":%" PRIu64
		        ",\"contentions\":%" PRIu64 ",\"owner_changes\":%" PRIu64
		        ",\"wait_ns_total\":%" PRIu64 ",\"wait_ns_avg\":%" PRIu64
		        ",\"wait_ns_max\":%" PRIu64 ",\"hold_ns_total\":0,\"hold_ns_max\":0"
		        ",\"call_sites\":[]}",
		        s->acquisitions, s->contentions, s->contentions, s->wait_ns_total,
		        s->contentions ? s->wait_ns_total / s->contentions : 0, s->wait_ns_max);
	}
	fputs("]}\n", out);
	free(vec.v);
	return ferror(out) ? THOTH_E_IO : 0;
}
