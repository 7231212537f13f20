/*
 * rtable_client.c - a client's read-only view of thothd's resolve table
 * (thoth/rtable.h, rtable_shm.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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
#include "why.h"

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
	thoth_pcounter_t hits, misses, busy, refreshes;     /* per thread, folded by stats */
	pthread_mutex_t names_lock;     /* the name handles' list (open, close, stats) */
	struct thoth_rtable_name *names;
	uint64_t closed_hits;           /* kept-answer hits of handles already closed */
};

struct thoth_rtable_name {
	thoth_rtable_t *t;
	/* Kept-answer hits: the handle is one thread's, so a plain add made
	 * visible to stats with a relaxed store (folded like a pcounter). */
	uint64_t hits;
	const uint64_t *seq_word;       /* the table's seq: one load, no pointer chase */
	struct thoth_rtable_name *next, **prev_next;    /* on t->names */
	bool multi_node;                /* more than one node online: check ours each time */
	bool in_table;                  /* the name fits the table (else always a round trip) */
	char *name, *min_version;       /* for the round trip */
	rt_name_t core;                 /* kept answers (rtable_shm.h) */
	thoth_resolved_t conv[RT_NAME_ANSWERS];  /* the same, as callers take them */
	thoth_resolved_t miss;          /* a round trip's answer (not kept) */
};

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
		return thoth__why_err(why, why_len, r, "cannot ask thothd for the resolve table: %s", thoth_strerror(r));
	thoth_stream_reader_t *rd = &t->ctl.sock.reader;
	const uint8_t *msg = NULL;
	size_t mlen = 0;
	for (;;) {
		r = thoth_stream_next(rd, &msg, &mlen);
		if (r < 0)
			return thoth__why_err(why, why_len, THOTH_E_PROTOCOL, "thothd's answer is not a message: %s",
				              thoth_strerror(r));
		if (r == 1)
			break;
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int pr = poll(&p, 1, ANSWER_TIMEOUT_MS);
		if (pr == 0)
			return thoth__why_err(why, why_len, THOTH_E_TIMEDOUT, "thothd did not answer within %d ms",
				              ANSWER_TIMEOUT_MS);
		if (pr < 0 && errno != EINTR)
			return thoth__why_err(why, why_len, THOTH_E_IO, "poll: %s", strerror(errno));
		size_t n_fds = 0;
		int got = -1;
		r = thoth_stream_fill_fds(rd, sock, &got, 1, &n_fds);
		if (n_fds) {
			if (*fd >= 0)
				close(*fd);     /* only the last one can be ours */
			*fd = got;
		}
		if (r)
			return thoth__why_err(why, why_len, r, "reading thothd's answer: %s", thoth_strerror(r));
	}
	thoth_daemon_Daemon_resolve_table_resp_t resp;
	uint64_t ab[32];
	thoth_arena_t arena;
	thoth_arena_init(&arena, ab, sizeof ab);
	r = thoth_method_decode(&thoth_daemon_Daemon_resolve_table_info, true, msg, mlen, &resp, &arena);
	thoth_stream_consume(rd);
	if (r)
		return thoth__why_err(why, why_len, r, "thothd refused the resolve table: %s", thoth_strerror(r));
	if (resp.layout != RT_LAYOUT)
		return thoth__why_err(why, why_len, THOTH_E_PROTOCOL, "resolve table layout %u, we read layout %u",
			              resp.layout, RT_LAYOUT);
	*size = resp.size;
	return 0;
}

int thoth_rtable_open(const char *runtime_dir, thoth_rtable_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_rtable_t *t = calloc(1, sizeof *t);
	if (!t)
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
	pthread_mutex_init(&t->miss_lock, NULL);
	pthread_mutex_init(&t->names_lock, NULL);
	t->hits.name = "rtable_hits";
	t->misses.name = "rtable_misses";
	t->busy.name = "rtable_busy";
	t->refreshes.name = "rtable_refreshes";
	int fd = -1;
	int r = thoth_control_connect(&t->ctl, runtime_dir, ANSWER_TIMEOUT_MS);
	if (r) {
		thoth__why_err(why, why_len, r, "%s", t->ctl.why[0] ? t->ctl.why : thoth_strerror(r));
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
		r = thoth__why_err(why, why_len, THOTH_E_PROTOCOL,
			           "the resolve table thothd sent is not a sealed read-only memfd of %llu bytes",
			           (unsigned long long)size);
		goto fail;
	}
	t->map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (t->map == MAP_FAILED) {
		t->map = NULL;
		r = thoth__why_err(why, why_len, THOTH_E_IO, "cannot map the resolve table: %s", strerror(errno));
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
	pthread_mutex_destroy(&t->names_lock);
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

/* ---- a name resolved once ---------------------------------------------- */

int thoth_rtable_name_open(thoth_rtable_t *t, const char *name, const char *min_version,
			   thoth_rtable_name_t **out)
{
	*out = NULL;
	if (!t || !name || !name[0])
		return THOTH_E_INVAL;
	thoth_rtable_name_t *n = calloc(1, sizeof *n);
	if (!n)
		return THOTH_E_NOMEM;
	rt_key_t k;
	int kr = rt_key_init(&k, name, min_version);
	if (kr && strlen(name) <= RT_NAME_MAX) {
		free(n);
		return THOTH_E_INVAL;           /* a bad version */
	}
	rt_name_init(&n->core, &k);
	n->in_table = kr == 0;
	n->name = strdup(name);
	n->min_version = strdup(min_version ? min_version : "");
	if (!n->name || !n->min_version) {
		thoth_rtable_name_close(n);
		return THOTH_E_NOMEM;
	}
	n->t = t;
	n->seq_word = &((const rt_header_t *)(const void *)t->view.base)->seq;
	n->multi_node = thoth__numa_nodes_online() > 1;
	pthread_mutex_lock(&t->names_lock);
	n->next = t->names;
	if (t->names)
		t->names->prev_next = &n->next;
	n->prev_next = &t->names;
	t->names = n;
	pthread_mutex_unlock(&t->names_lock);
	*out = n;
	return 0;
}

void thoth_rtable_name_close(thoth_rtable_name_t *n)
{
	if (!n)
		return;
	if (n->prev_next) {
		thoth_rtable_t *t = n->t;
		pthread_mutex_lock(&t->names_lock);
		*n->prev_next = n->next;
		if (n->next)
			n->next->prev_next = n->prev_next;
		t->closed_hits += n->hits;
		pthread_mutex_unlock(&t->names_lock);
	}
	free(n->name);
	free(n->min_version);
	free(n);
}

/* The table changed, the node changed, a deadline passed, or first use:
 * read every best instance again; a miss asks thothd.  Out of line: the
 * hot path stays a leaf with nothing to save. */
static __attribute__((noinline)) int name_refresh(thoth_rtable_name_t *n, uint16_t node, const thoth_resolved_t **out)
{
	thoth_rtable_t *t = n->t;
	if (n->in_table) {
		int i = rt_name_refresh(&n->core, &t->view, node);
		if (i >= 0) {
			for (uint32_t a = 0; a < n->core.n; a++)
				to_resolved(&n->core.ans[a], &n->conv[a]);
			thoth_pcounter_inc(&t->refreshes);
			thoth_pcounter_inc(&t->hits);
			*out = &n->conv[i];
			return 0;
		}
		if (i == THOTH_E_BUSY)
			thoth_pcounter_inc(&t->busy);
	}
	thoth_pcounter_inc(&t->misses);
	int r = ask_thothd(t, n->name, n->min_version, node, &n->miss);
	if (!r)
		*out = &n->miss;
	return r;
}

/* Everything but the common case: more than one node (ours may have
 * changed), TTL deadlines to check, or the table changed. */
static __attribute__((noinline)) int name_slow(thoth_rtable_name_t *n, const thoth_resolved_t **out)
{
	uint16_t node = n->core.node;
	if (n->multi_node)
		node = (uint16_t)thoth__numa_current_node();
	int i = rt_name_pick(&n->core, &n->t->view, node);
	if (i < 0)
		return name_refresh(n, node, out);
	__atomic_store_n(&n->hits, n->hits + 1, __ATOMIC_RELAXED);
	*out = &n->conv[i];
	return 0;
}

int thoth_rtable_name_resolve(thoth_rtable_name_t *n, const thoth_resolved_t **out)
{
	/* The whole hot path: one load of the table's sequence.  Equal to the
	 * one the kept answers were read at: no writer began since (it makes
	 * seq odd first), so they are what a full lookup would return now.
	 * No call on this path (a leaf: nothing to save or restore). */
	rt_name_t *c = &n->core;
	if (__builtin_expect(!n->multi_node && c->min_deadline == UINT64_MAX &&
			     __atomic_load_n(n->seq_word, __ATOMIC_ACQUIRE) == c->seq, 1)) {
		uint32_t i = c->rr;
		c->rr = i + 1 < c->n ? i + 1 : 0;
		__atomic_store_n(&n->hits, n->hits + 1, __ATOMIC_RELAXED);
		*out = &n->conv[i];
		return 0;
	}
	return name_slow(n, out);
}

int thoth_rtable_list(thoth_rtable_t *t, const char *prefix, thoth_rtable_instance_t *out, size_t max,
		      size_t *total)
{
	*total = 0;
	if (!t || (max && !out))
		return THOTH_E_INVAL;
	size_t plen = prefix ? strlen(prefix) : 0;
	/* A bounded scratch: the table holds at most 3/4 of its buckets. */
	size_t room = max < t->view.buckets ? max : t->view.buckets;
	rt_listed_t *tmp = room ? malloc(room * sizeof *tmp) : NULL;
	if (room && !tmp)
		return THOTH_E_NOMEM;
	bool incomplete = false;
	int r = rt_list(&t->view, prefix ? prefix : "", plen, tmp, room, total, &incomplete);
	if (r >= 0) {
		size_t n = (size_t)r;
		r = 0;
		for (size_t i = 0; i < n; i++) {
			thoth_rtable_instance_t *o = &out[i];
			memset(o, 0, sizeof *o);
			memcpy(o->name, tmp[i].name, sizeof o->name);
			memcpy(o->addr, tmp[i].addr, sizeof o->addr);
			o->major = tmp[i].major;
			o->minor = tmp[i].minor;
			o->patch = tmp[i].patch;
			o->pid = tmp[i].pid;
			o->numa_node = tmp[i].numa_node;
			o->remote = tmp[i].remote;
			o->lease = tmp[i].lease;
			o->instance_id = tmp[i].instance_id;
			o->expires_at_ns = tmp[i].expires_at_ns;
		}
		if (incomplete)
			r = THOTH_E_LIMIT;
	}
	free(tmp);
	return r;
}

int thoth_rtable_status(const thoth_rtable_t *t, thoth_rtable_status_t *out)
{
	if (!t || !out)
		return THOTH_E_INVAL;
	rt_status_t st;
	int r = rt_status_read(&t->view, &st);
	if (r)
		return r;
	uint64_t now = rt_now_ns();
	memset(out, 0, sizeof *out);
	out->pid = st.pid;
	out->clients = st.clients;
	out->registrations = st.registrations;
	out->watches = st.watches;
	out->uptime_ns = now > st.started_ns ? now - st.started_ns : 0;
	out->age_ns = now > st.published_ns ? now - st.published_ns : 0;
	out->wakeups = st.wakeups;
	out->wakeups_fd = st.wakeups_fd;
	out->wakeups_timer = st.wakeups_timer;
	out->timers_fired = st.timers_fired;
	out->next_expiry_ns = st.next_expiry_ns;
	out->messages = st.messages;
	out->publishes = st.publishes;
	_Static_assert(sizeof out->version == sizeof st.version, "same field");
	_Static_assert(sizeof out->runtime_dir == sizeof st.runtime_dir, "same field");
	_Static_assert(sizeof out->dashboard_url == sizeof st.dashboard_url, "same field");
	memcpy(out->version, st.version, sizeof out->version);
	memcpy(out->runtime_dir, st.runtime_dir, sizeof out->runtime_dir);
	memcpy(out->dashboard_url, st.dashboard_url, sizeof out->dashboard_url);
	return 0;
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
	out->refreshes = thoth_pcounter_read(&m->refreshes);
	pthread_mutex_lock(&m->names_lock);
	out->hits += m->closed_hits;
	for (const thoth_rtable_name_t *n = m->names; n; n = n->next)
		out->hits += __atomic_load_n(&n->hits, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&m->names_lock);
	out->entries = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
	out->incomplete = __atomic_load_n(&h->incomplete, __ATOMIC_RELAXED) != 0;
}
