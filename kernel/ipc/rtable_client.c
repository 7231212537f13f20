/*
 * rtable_client.c - a client's read-only view of thothd's resolve table
 * (thoth/rtable.h, rtable_shm.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.thoth.h"
#include "numa.h"
#include "registry.thoth.h"
#include "rtable_shm.h"
#include "thoth/percpu.h"
#include "thoth/rtable.h"
#include "thoth/stream.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

enum { ANSWER_TIMEOUT_MS = 2000 };

struct thoth_rtable {
	thoth_control_t ctl;            /* the connection the table came on; misses use it */
	pthread_mutex_t miss_lock;      /* the blocking client is one caller at a time */
	rt_view_t view;
	void *map;
	size_t map_size;
	thoth_pcounter_t hits, misses, busy;    /* per thread, folded by stats */
};

static int say(char *why, size_t len, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int say(char *why, size_t len, int err, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Ask for the table on T's connection: one request, its answer with the
 * memfd attached.  *FD gets the descriptor (or stays -1). */
static int take_table(thoth_rtable_t *t, int *fd, uint64_t *size, char *why, size_t why_len)
{
	int sock = t->ctl.sock.fd;
	thoth_daemon_Daemon_resolve_table_req_t req = { 0 };
	thoth_msg_header_t meta = { .request_id = 1 };
	uint64_t buf[16];
	size_t len;
	int r = thoth_method_encode(&thoth_daemon_Daemon_resolve_table_info, false, &req, &meta, buf, sizeof buf,
				    &len);
	if (!r)
		r = thoth_stream_write_all(sock, buf, len);
	if (r)
		return say(why, why_len, r, "cannot ask thothd for the resolve table: %s", thoth_strerror(r));
	thoth_stream_reader_t *rd = &t->ctl.sock.reader;
	const uint8_t *msg = NULL;
	size_t mlen = 0;
	for (;;) {
		r = thoth_stream_next(rd, &msg, &mlen);
		if (r < 0)
			return say(why, why_len, THOTH_E_PROTOCOL, "thothd's answer is not a message: %s",
				   thoth_strerror(r));
		if (r == 1)
			break;
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int pr = poll(&p, 1, ANSWER_TIMEOUT_MS);
		if (pr == 0)
			return say(why, why_len, THOTH_E_TIMEDOUT, "thothd did not answer within %d ms",
				   ANSWER_TIMEOUT_MS);
		if (pr < 0 && errno != EINTR)
			return say(why, why_len, THOTH_E_IO, "poll: %s", strerror(errno));
		size_t n_fds = 0;
		int got = -1;
		r = thoth_stream_fill_fds(rd, sock, &got, 1, &n_fds);
		if (n_fds) {
			if (*fd >= 0)
				close(*fd);     /* only the last one can be ours */
			*fd = got;
		}
		if (r)
			return say(why, why_len, r, "reading thothd's answer: %s", thoth_strerror(r));
	}
	thoth_daemon_Daemon_resolve_table_resp_t resp;
	uint64_t ab[32];
	thoth_arena_t arena;
	thoth_arena_init(&arena, ab, sizeof ab);
	r = thoth_method_decode(&thoth_daemon_Daemon_resolve_table_info, true, msg, mlen, &resp, &arena);
	thoth_stream_consume(rd);
	if (r)
		return say(why, why_len, r, "thothd refused the resolve table: %s", thoth_strerror(r));
	if (resp.layout != RT_LAYOUT)
		return say(why, why_len, THOTH_E_PROTOCOL, "resolve table layout %u, we read layout %u",
			   resp.layout, RT_LAYOUT);
	*size = resp.size;
	return 0;
}

int thoth_rtable_open(const char *runtime_dir, thoth_rtable_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_rtable_t *t = calloc(1, sizeof *t);
	if (!t)
		return say(why, why_len, THOTH_E_NOMEM, "out of memory");
	pthread_mutex_init(&t->miss_lock, NULL);
	t->hits.name = "rtable_hits";
	t->misses.name = "rtable_misses";
	t->busy.name = "rtable_busy";
	int fd = -1;
	int r = thoth_control_connect(&t->ctl, runtime_dir, ANSWER_TIMEOUT_MS);
	if (r) {
		say(why, why_len, r, "%s", t->ctl.why[0] ? t->ctl.why : thoth_strerror(r));
		free(t);
		return r;
	}
	uint64_t size = 0;
	r = take_table(t, &fd, &size, why, why_len);
	if (r)
		goto fail;
	/* Hostile until proven otherwise: a sealed memfd of the size announced,
	 * that nobody (us included) can write through a new mapping. */
	struct stat st;
	int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || seals < 0 || (seals & need) != need ||
	    (uint64_t)st.st_size != size || size > (1ull << 30)) {
		r = say(why, why_len, THOTH_E_PROTOCOL,
			"the resolve table thothd sent is not a sealed read-only memfd of %llu bytes",
			(unsigned long long)size);
		goto fail;
	}
	t->map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (t->map == MAP_FAILED) {
		t->map = NULL;
		r = say(why, why_len, THOTH_E_IO, "cannot map the resolve table: %s", strerror(errno));
		goto fail;
	}
	t->map_size = (size_t)size;
	close(fd);
	fd = -1;
	r = rt_view_init(&t->view, t->map, t->map_size, why, why_len);
	if (r)
		goto fail;
	*out = t;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	thoth_rtable_close(t);
	return r;
}

void thoth_rtable_close(thoth_rtable_t *t)
{
	if (!t)
		return;
	if (t->map)
		munmap(t->map, t->map_size);
	thoth_control_close(&t->ctl);
	pthread_mutex_destroy(&t->miss_lock);
	free(t);
}

static void to_resolved(const rt_result_t *r, thoth_resolved_t *out)
{
	memset(out, 0, sizeof *out);
	memcpy(out->addr, r->addr, sizeof out->addr);
	out->addr[sizeof out->addr - 1] = 0;
	out->pid = r->pid;
	out->numa_node = r->numa_node;
	out->instance_id = r->instance_id;
	out->confirmed = true;
}

int thoth_rtable_lookup(thoth_rtable_t *t, const char *name, const char *min_version, uint16_t numa_node,
			thoth_resolved_t *out)
{
	rt_key_t k;
	if (rt_key_init(&k, name, min_version))
		return THOTH_E_NOT_FOUND;       /* not a name the table can hold */
	rt_result_t res;
	int r = rt_lookup(&t->view, &k, numa_node, &res, NULL);
	if (!r)
		to_resolved(&res, out);
	return r;
}

/* A miss: Registry.resolve on our connection, preferring our node. */
static int ask_thothd(thoth_rtable_t *t, const char *name, const char *min_version, uint16_t node,
		      thoth_resolved_t *out)
{
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str(name),
		.min_version = thoth_str(min_version ? min_version : ""),
		.prefer = THOTH_COMMON_LOCALITY_NUMA,
		.numa_node = node,
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t ab[256];
	thoth_arena_t arena;
	thoth_arena_init(&arena, ab, sizeof ab);
	pthread_mutex_lock(&t->miss_lock);
	int r = thoth_registry_Registry_resolve(&t->ctl.client, &req, &resp, &arena);
	if (r == THOTH_E_REMOTE || r > 0)
		r = THOTH_E_NOT_FOUND;
	if (!r) {
		const thoth_common_Endpoint_t *ep = &resp.instance.registration.endpoint;
		memset(out, 0, sizeof *out);
		if (ep->addr.len == 0 || ep->addr.len >= sizeof out->addr) {
			r = THOTH_E_NOT_FOUND;  /* an address a channel cannot take */
		} else {
			memcpy(out->addr, ep->addr.ptr, ep->addr.len);
			out->pid = ep->pid;
			out->numa_node = ep->numa_node;
			out->instance_id = ep->instance_id;
			out->confirmed = true;
		}
	}
	pthread_mutex_unlock(&t->miss_lock);
	return r;
}

int thoth_rtable_resolve(thoth_rtable_t *t, const char *name, const char *min_version, thoth_resolved_t *out)
{
	if (!t || !name || !out)
		return THOTH_E_INVAL;
	uint16_t node = (uint16_t)thoth__numa_current_node();
	rt_key_t k;
	int kr = rt_key_init(&k, name, min_version);
	if (kr && (!name[0] || strlen(name) <= RT_NAME_MAX))
		return THOTH_E_INVAL;           /* bad version (or empty name) */
	if (!kr) {
		rt_result_t res;
		bool incomplete = false;
		int r = rt_lookup(&t->view, &k, node, &res, &incomplete);
		if (!r) {
			thoth_pcounter_inc(&t->hits);
			to_resolved(&res, out);
			return 0;
		}
		if (r == THOTH_E_BUSY)
			thoth_pcounter_inc(&t->busy);
		/* A miss in a complete table is an answer too: nothing of that
		 * name is registered.  Asking thothd anyway costs one round trip
		 * and closes the window of a registration racing with us. */
		(void)incomplete;
	}
	thoth_pcounter_inc(&t->misses);
	return ask_thothd(t, name, min_version, node, out);
}

uint32_t thoth_rtable_generation(const thoth_rtable_t *t)
{
	return rt_generation(&t->view);
}

int thoth_rtable_wait(const thoth_rtable_t *t, uint32_t seen, int timeout_ms)
{
	return rt_wait(&t->view, seen, timeout_ms);
}

void thoth_rtable_stats(const thoth_rtable_t *t, thoth_rtable_stats_t *out)
{
	thoth_rtable_t *m = (thoth_rtable_t *)t;        /* folding reads only */
	const rt_header_t *h = (const rt_header_t *)(const void *)t->view.base;
	out->hits = thoth_pcounter_read(&m->hits);
	out->misses = thoth_pcounter_read(&m->misses);
	out->busy = thoth_pcounter_read(&m->busy);
	out->entries = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
	out->incomplete = __atomic_load_n(&h->incomplete, __ATOMIC_RELAXED) != 0;
}
