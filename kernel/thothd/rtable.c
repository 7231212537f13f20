/*
 * rtable.c - thothd's side of the shared resolve table (SCALE-2,
 * thoth/rtable.h, kernel/ipc/rtable_shm.h): the registry's every change
 * mirrored into the table in the same loop iteration, and
 * Daemon.resolve_table answered with the table's memfd attached; and
 * thothd's status published in the table's header, so that `thothctl
 * status` and monitors read it without asking thothd's one thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rtable_shm.h"
#include "thothd.h"

enum { TABLE_BUCKETS = 4096 };          /* 1 MiB: 3,072 instances, then misses go to thothd */

struct thothd_rtable {
	rt_writer_t w;
	uint32_t missing;               /* live instances that did not fit */
	uint64_t publishes;             /* status writes (thothd_rtable_publish_status) */
};

static bool parse_version(thoth_str_t v, uint32_t *ma, uint32_t *mi, uint32_t *pa)
{
	thoth_semver_t s;
	if (thoth_semver_parse(v, &s))
		return false;
	*ma = s.major;
	*mi = s.minor;
	*pa = s.patch;
	return true;
}

int thothd_rtable_new(thothd_t *d)
{
	thothd_rtable_t *t = calloc(1, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	int r = rt_writer_init(&t->w, TABLE_BUCKETS, d->cfg.node_distance, d->cfg.n_nodes);
	if (r) {
		/* thothd still serves resolve by round trip; clients that ask for
		 * the table are told it is not there. */
		thothd_warn("no shared resolve table (%s): clients resolve by round trip",
			    r == THOTH_E_IO ? strerror(errno) : thoth_strerror(r));
		free(t);
		d->rtable = NULL;
		return 0;
	}
	d->rtable = t;
	return 0;
}

void thothd_rtable_free(thothd_t *d)
{
	if (!d->rtable)
		return;
	rt_writer_free(&d->rtable->w);
	free(d->rtable);
	d->rtable = NULL;
}

void thothd_rtable_on_change(void *arg, int kind, const thoth_registry_Instance_t *inst)
{
	thothd_t *d = arg;
	thothd_rtable_t *t = d->rtable;
	if (!t)
		return;
	const thoth_registry_Registration_t *reg = &inst->registration;
	const thoth_common_Endpoint_t *ep = &reg->endpoint;
	if (kind == THOTH_REGISTRY_RENEWED) {
		rt_writer_renew(&t->w, reg->name.ptr, reg->name.len, inst->lease, inst->expires_at_ns);
		return;
	}
	if (kind == THOTH_REGISTRY_CHANGE_KIND_ADDED) {
		rt_instance_t in = {
			.name = reg->name.ptr, .name_len = reg->name.len,
			.addr = (const char *)ep->addr.ptr, .addr_len = ep->addr.len,
			.pid = ep->pid, .numa_node = ep->numa_node,
			.remote = ep->locality == THOTH_COMMON_LOCALITY_REMOTE,
			.lease = inst->lease, .instance_id = ep->instance_id,
			.expires_at_ns = inst->expires_at_ns,
		};
		/* An address with a NUL inside could not be a socket path: keep
		 * it out (its clients ask thothd). */
		bool ok = parse_version(reg->version, &in.major, &in.minor, &in.patch) &&
			  !memchr(in.addr, 0, in.addr_len);
		if (!ok || rt_writer_add(&t->w, &in)) {
			if (t->missing++ == 0)
				rt_writer_set_incomplete(&t->w, true);
		}
		return;
	}
	/* REMOVED, EXPIRED */
	if (rt_writer_remove(&t->w, reg->name.ptr, reg->name.len, inst->lease) && t->missing) {
		if (--t->missing == 0)
			rt_writer_set_incomplete(&t->w, false);
	}
}

int thothd_rtable_fd(const thothd_t *d, uint64_t *size, uint32_t *buckets)
{
	if (!d->rtable)
		return -1;
	*size = d->rtable->w.size;
	*buckets = d->rtable->w.buckets;
	return d->rtable->w.fd;
}

uint32_t thothd_rtable_entries(const thothd_t *d)
{
	return d->rtable ? rt_writer_count(&d->rtable->w) : 0;
}

void thothd_rtable_publish_status(thothd_t *d)
{
	if (!d->rtable)
		return;
	thothd_rtable_t *t = d->rtable;
	/* The same fields on_status (handlers.c) answers, from the same O(1)
	 * sources; the strings rarely change, and rt_writer_status stores
	 * only the words that did. */
	rt_status_t st = { 0 };
	thoth_loop_stats_t ls = { 0 };
	if (d->loop) {
		thoth_loop_stats(d->loop, &ls);
		st.published_ns = thoth_loop_now(d->loop);
	} else {
		st.published_ns = thoth_clock_now();
	}
	st.pid = (uint32_t)getpid();
	st.started_ns = d->started_ns;
	st.publishes = ++t->publishes;
	st.clients = d->n_clients;
	st.registrations = (uint32_t)thoth_registry_count(d->registry);
	st.watches = (uint32_t)thoth_registry_watch_count(d->registry);
	st.wakeups = ls.wakeups;
	st.wakeups_fd = ls.wakeups_fd;
	st.wakeups_timer = ls.wakeups_timer;
	st.timers_fired = ls.timers_fired;
	uint64_t next = thoth_registry_next_expiry(d->registry);
	st.next_expiry_ns = next == UINT64_MAX ? 0 : next;
	st.messages = d->messages;
	snprintf(st.version, sizeof st.version, "%s", THOTHD_VERSION);
	snprintf(st.runtime_dir, sizeof st.runtime_dir, "%s", d->cfg.runtime_dir ? d->cfg.runtime_dir : "");
	snprintf(st.dashboard_url, sizeof st.dashboard_url, "%s", d->dashboard_url);
	rt_writer_status(&t->w, &st);
}
