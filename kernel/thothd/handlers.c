/*
 * handlers.c - Registry and Daemon served by thothd: the glue between the
 * generated dispatchers and the registry core.
 *
 * `self` is the thothd_call_t of the message being handled: it names the
 * client (the registry owner) and the response buffer, which a handler may
 * grow when its answer is large (list of many instances): the dispatcher
 * encodes into io->out only after the handler returns.
 * Instances in responses point into the registry; nothing changes the
 * registry between a handler's return and the encoding of its response.
 *
 * Trace points (category REGISTRY, docs/OBSERVABILITY.md): registry_register
 * (lease, status), registry_resolve (lease found or 0, status),
 * registry_withdraw (lease, status), registry_expire (leases expired, 0),
 * registry_numa_pick (caller node << 16 | chosen node, their distance:
 * SCALE-1's placement decision for a NUMA-preferring resolve);
 * server.c adds registry_drop (pid, registrations) when a connection ends.
 * status is the handler's result: 0, a Registry error code, or THOTH_E_*.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "rtable_shm.h"       /* RT_LAYOUT */
#include "thothd.h"

/* Make room for RESP of M in the call's response buffer (thothd.h). */
int thothd_reserve_response(thothd_call_t *call, const thoth_method_info_t *m, const void *resp)
{
	size_t need = thoth_method_size(m, true, resp) + 64;
	thoth_server_io_t *io = call->io;
	if (need <= io->cap)
		return 0;
	void *p = NULL;
	if (posix_memalign(&p, THOTH_WIRE_ALIGN, need))
		return THOTH_E_NOMEM;
	free(io->out);
	io->out = p;
	io->cap = need;
	return 0;
}

static void log_refusal(thothd_call_t *call, const char *what, int status)
{
	call->reason = thoth_registry_refusal(call->d->registry);
	thothd_info("client %llu (pid %u): %s refused: %s", (unsigned long long)call->client->id,
		    call->client->pid, what, call->reason[0] ? call->reason : "(no reason)");
	(void)status;
}

/* ---- Registry ---------------------------------------------------------------------- */

static int on_register(void *self, const thoth_registry_Registry_register_req_t *req,
		       thoth_registry_Registry_register_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	thothd_client_t *c = call->client;
	thoth_registry_Registration_t reg = req->reg;
	/* The kernel's word, not the client's: a local endpoint's pid is the
	 * registering process's (SO_PEERCRED).  Only a mirrored remote
	 * instance carries a pid thothd cannot check. */
	if (reg.endpoint.locality != THOTH_COMMON_LOCALITY_REMOTE || !reg.endpoint.pid)
		reg.endpoint.pid = c->pid;
	if (!c->exe_known && c->pid) {
		/* Who may add instances of a name (registry.h): same uid, same
		 * executable.  Looked up once, while the process is talking to us.
		 * With the peer pinned (thothd__client_proc_stat): one gone
		 * meanwhile leaves its executable unknown, never another
		 * program's taken for its own. */
		struct stat st;
		if (thothd__client_proc_stat(c, "exe", &st) == 0)
			thoth_registry_owner_set_exe(c->owner, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
		c->exe_known = true;
	}
	int r = thoth_registry_register(d->registry, c->owner, &reg, thothd_now(d), &resp->lease);
	THOTH_TRACE(REGISTRY, registry_register, r ? 0 : resp->lease, (uint64_t)(int64_t)r);
	if (r > 0) {
		log_refusal(call, "register", r);
	} else if (!r) {
		/* Limited (hist46): a client registering and withdrawing in a
		 * loop wrote a line per turn.  The lifecycle history keeps
		 * every one (thothctl status); a loss and an expiry have
		 * lines of their own that this never takes. */
		thothd_log_limited(&d->register_log, THOTHD_LOG_INFO,
				   "registered %.*s %.*s at %.*s (numa %u, lease %016llx, ttl %u ms, pid %u)",
				   (int)reg.name.len, reg.name.ptr, (int)reg.version.len, reg.version.ptr,
				   (int)reg.endpoint.addr.len, reg.endpoint.addr.ptr, reg.endpoint.numa_node,
				   (unsigned long long)resp->lease, reg.ttl_ms, call->client->pid);
		if (d->register_log.suppressed)
			thothd_arm_log_flush(d);
	}
	return r;
}

static int on_resolve(void *self, const thoth_registry_Registry_resolve_req_t *req,
		      thoth_registry_Registry_resolve_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	const thoth_registry_Instance_t *inst;
	int r = thoth_registry_resolve(call->d->registry, req->name, req->min_version, req->prefer,
				       req->numa_node, thothd_now(call->d), &inst);
	THOTH_TRACE(REGISTRY, registry_resolve, r ? 0 : inst->lease, (uint64_t)(int64_t)r);
	if (!r && req->prefer == THOTH_COMMON_LOCALITY_NUMA &&
	    inst->registration.endpoint.locality != THOTH_COMMON_LOCALITY_REMOTE) {
		/* SCALE-1 placement decision: caller's node -> chosen node, and
		 * the distance between them (10 = the caller's own node). */
		uint16_t from = req->numa_node, to = inst->registration.endpoint.numa_node;
		THOTH_TRACE(REGISTRY, registry_numa_pick, (uint64_t)from << 16 | to,
			    thoth_registry_node_distance(call->d->registry, from, to));
	}
	if (!r)
		resp->instance = *inst;
	return r;
}

static int on_batch_resolve(void *self, const thoth_registry_Registry_batch_resolve_req_t *req,
			    thoth_registry_Registry_batch_resolve_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thoth_registry_Instance_t *v = calloc(req->names.count ? req->names.count : 1, sizeof *v);
	if (!v)
		return THOTH_E_NOMEM;
	call->scratch = v;
	uint32_t n = 0;
	uint64_t now = thothd_now(call->d);
	for (uint32_t i = 0; i < req->names.count; i++) {
		const thoth_registry_Instance_t *inst;
		int r = thoth_registry_resolve(call->d->registry, req->names.items[i], req->min_version,
					       THOTH_COMMON_LOCALITY_NUMA, 0, now, &inst);
		if (r == THOTH_REGISTRY_ERR_BAD_NAME || r == THOTH_REGISTRY_ERR_BAD_VERSION)
			return THOTH_REGISTRY_ERR_BAD_NAME;
		if (!r)
			v[n++] = *inst;
	}
	resp->instances.items = v;
	resp->instances.count = n;
	return thothd_reserve_response(call, &thoth_registry_Registry_batch_resolve_info, resp);
}

/* The N instances FOUND points at (the registry's own), copied into one
 * array the call owns until its reply is sent (ITEMS); FOUND is freed. */
static int own_instances(thothd_call_t *call, const thoth_registry_Instance_t **found, size_t n,
			 const thoth_registry_Instance_t **items)
{
	thoth_registry_Instance_t *v = calloc(n ? n : 1, sizeof *v);
	if (!v) {
		free(found);
		return THOTH_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = *found[i];
	free(found);
	call->scratch = v;
	*items = v;
	return 0;
}

static int on_list(void *self, const thoth_registry_Registry_list_req_t *req,
		   thoth_registry_Registry_list_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	const thoth_registry_Instance_t **found;
	size_t n;
	int r = thoth_registry_list(call->d->registry, req->prefix, req->locality,
				    thothd_now(call->d), &found, &n);
	if (r)
		return r;
	r = own_instances(call, found, n, &resp->instances.items);
	if (r)
		return r;
	resp->instances.count = (uint32_t)n;
	size_t size = thoth_method_size(&thoth_registry_Registry_list_info, true, resp);
	if (size > call->d->cfg.max_backlog / 2) {
		/* Answered with a reason instead of a reply that would get the
		 * caller dropped (it exceeds what a client may leave unread). */
		call->reason = "too many instances for one reply: use list_page (thothctl does)";
		return THOTH_E_LIMIT;
	}
	return thothd_reserve_response(call, &thoth_registry_Registry_list_info, resp);
}

/* A list_page reply: at most this many instances, and at most this many
 * bytes (an instance may carry 32 claims); list's single reply may not
 * exceed the bytes a client is allowed to leave unread. */
enum { PAGE_MAX_COUNT = 1024, PAGE_MAX_BYTES = 1 << 20 };

static int on_list_page(void *self, const thoth_registry_Registry_list_page_req_t *req,
			thoth_registry_Registry_list_page_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	size_t max = req->max_count && req->max_count < PAGE_MAX_COUNT ? req->max_count
								     : PAGE_MAX_COUNT;
	const thoth_registry_Instance_t **found;
	size_t n;
	bool more;
	int r = thoth_registry_list_page(call->d->registry, req->prefix, req->locality,
					 thothd_now(call->d), req->after_name,
					 req->after_registered_at_ns, req->after_lease, max, &found,
					 &n, &more);
	if (r)
		return r;
	r = own_instances(call, found, n, &resp->instances.items);
	if (r)
		return r;
	resp->instances.count = (uint32_t)n;
	resp->more = more;
	/* Fewer when they are large: the client asks again from the last one. */
	while (resp->instances.count > 1 &&
	       thoth_method_size(&thoth_registry_Registry_list_page_info, true, resp) >
		       PAGE_MAX_BYTES) {
		resp->instances.count /= 2;
		resp->more = true;
	}
	return thothd_reserve_response(call, &thoth_registry_Registry_list_page_info, resp);
}

static int on_renew(void *self, const thoth_registry_Registry_renew_req_t *req,
		    thoth_registry_Registry_renew_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	int r = thoth_registry_renew(call->d->registry, call->client->owner, req->lease,
				     thothd_now(call->d), &resp->expires_at_ns);
	if (r == THOTH_REGISTRY_ERR_NOT_OWNER)
		thothd_warn("client %llu (pid %u uid %u) tried to renew lease %016llx it does not own",
			    (unsigned long long)call->client->id, call->client->pid,
			    call->client->uid, (unsigned long long)req->lease);
	return r;
}

static int on_withdraw(void *self, const thoth_registry_Registry_withdraw_req_t *req,
		       thoth_registry_Registry_withdraw_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	int r = thoth_registry_withdraw(call->d->registry, call->client->owner, req->lease);
	THOTH_TRACE(REGISTRY, registry_withdraw, req->lease, (uint64_t)(int64_t)r);
	if (r == THOTH_REGISTRY_ERR_NOT_OWNER)
		thothd_warn("client %llu (pid %u uid %u) tried to withdraw lease %016llx it does not own",
			    (unsigned long long)call->client->id, call->client->pid,
			    call->client->uid, (unsigned long long)req->lease);
	return r;
}

static void on_heartbeat(void *self, const thoth_registry_Registry_heartbeat_req_t *req)
{
	thothd_call_t *call = self;
	int r = thoth_registry_renew(call->d->registry, call->client->owner, req->lease,
				     thothd_now(call->d), NULL);
	if (r)
		thothd_debug("client %llu: heartbeat for lease %016llx: %s",
			     (unsigned long long)call->client->id, (unsigned long long)req->lease,
			     r == THOTH_REGISTRY_ERR_NOT_OWNER ? "not its lease" : "expired");
}

static void on_report_load(void *self, const thoth_registry_Registry_report_load_req_t *req)
{
	thothd_call_t *call = self;
	int r = thoth_registry_report_load(call->d->registry, call->client->owner, req->lease,
					   req->utilization_permille, req->qps);
	static uint64_t refused;        /* a hostile service must not flood the log */
	if (r == THOTH_E_INVAL && refused++ < 16)
		thothd_warn("client %llu (pid %u): load report refused: utilization %u permille (max %u), "
			    "%u qps (max %u)%s", (unsigned long long)call->client->id, call->client->pid,
			    req->utilization_permille, THOTH_REGISTRY_MAX_UTILIZATION, req->qps,
			    THOTH_REGISTRY_MAX_QPS, refused == 16 ? " (further refusals logged at debug)" : "");
	else if (r == THOTH_E_INVAL)
		thothd_debug("client %llu: load report refused", (unsigned long long)call->client->id);
	else if (r)
		thothd_debug("client %llu: load report for lease %016llx: %s",
			     (unsigned long long)call->client->id, (unsigned long long)req->lease,
			     r == THOTH_REGISTRY_ERR_NOT_OWNER ? "not its lease" : "expired");
}

static int on_watch(void *self, const thoth_registry_Registry_watch_req_t *req,
		    thoth_registry_Registry_watch_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	return thoth_registry_watch(call->d->registry, call->client->owner, req->prefix,
				    &resp->watch_id);
}

static int on_unwatch(void *self, const thoth_registry_Registry_unwatch_req_t *req,
		      thoth_registry_Registry_unwatch_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	return thoth_registry_unwatch(call->d->registry, call->client->owner, req->watch_id);
}

const thoth_registry_Registry_handlers_t thothd_registry_handlers = {
	.register_ = on_register,
	.resolve = on_resolve,
	.batch_resolve = on_batch_resolve,
	.list = on_list,
	.renew = on_renew,
	.withdraw = on_withdraw,
	.heartbeat = on_heartbeat,
	.report_load = on_report_load,
	.watch = on_watch,
	.unwatch = on_unwatch,
	.list_page = on_list_page,
};

/* ---- Daemon ------------------------------------------------------------------------- */

static int on_status(void *self, const thoth_daemon_Daemon_status_req_t *req,
		     thoth_daemon_Daemon_status_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	thothd_t *d = call->d;
	thoth_loop_stats_t st = { 0 };
	if (d->loop)
		thoth_loop_stats(d->loop, &st);
	resp->pid = (uint32_t)getpid();
	resp->uptime_ns = thoth_clock_now() - d->started_ns;
	resp->clients = d->n_clients;
	resp->registrations = (uint32_t)thoth_registry_count(d->registry);
	resp->watches = (uint32_t)thoth_registry_watch_count(d->registry);
	resp->wakeups = st.wakeups;
	resp->wakeups_fd = st.wakeups_fd;
	resp->wakeups_timer = st.wakeups_timer;
	resp->timers_fired = st.timers_fired;
	uint64_t next = thoth_registry_next_expiry(d->registry);
	resp->next_expiry_ns = next == UINT64_MAX ? 0 : next;
	resp->runtime_dir = thoth_str(d->cfg.runtime_dir);
	resp->version = thoth_str(THOTHD_VERSION);
	resp->dashboard_url = thoth_str(d->dashboard_url);
	/* OBS-3: the lifecycle history, oldest first, when asked (a list
	 * needs the caller's arena to decode); its strings point into the
	 * ring, which nothing changes before the answer is encoded. */
	const thothd_lifecycle_event_t *a, *b;
	size_t na;
	size_t n = thothd_lifecycle_read(d->lifecycle, &a, &na, &b, &resp->events_dropped);
	resp->events_capacity = THOTHD_LIFECYCLE_EVENTS;
	/* SCALE-3: the federation; its hosts (a list) when asked. */
	thoth_daemon_Federation_t *fe = &resp->federation;
	fe->state = thoth_str(d->federation_view ? "on" : "off");
	thothd_fed_host_t hosts[THOTHD_STATUS_HOSTS];
	size_t nh = 0;
	uint64_t now = thoth_clock_now();
	if (d->federation_view) {
		thothd_fed_view_t fv;
		nh = d->federation_view(d->federation_view_arg, &fv, hosts,
					req->with_federation ? THOTHD_STATUS_HOSTS : 0);
		fe->etcd = thoth_str(fv.etcd);
		fe->etcd_up = fv.etcd_up;
		fe->etcd_down_for_ns = fv.etcd_down_since_ns && now > fv.etcd_down_since_ns
					       ? now - fv.etcd_down_since_ns : 0;
		fe->host_id = thoth_str(fv.host_id);
		fe->lease_ttl_s = fv.ttl_s;
		fe->lease_alive = fv.lease_alive;
		fe->watching = fv.watching;
		fe->local = fv.local;
		fe->remote = fv.remote;
		fe->left_out = fv.left_out;
		fe->conflicts = (uint32_t)thoth_registry_remote_conflicts(d->registry, now);
		fe->hosts_total = fv.hosts_total;
	}
	if (!req->with_events)
		n = 0;
	/* Room for the answer even with no list: the etcd URL is the
	 * operator's and unbounded (70,000 bytes overflowed the 64 KiB
	 * buffer and the caller was dropped as malformed). */
	if (!n && !nh)
		return thothd_reserve_response(call, &thoth_daemon_Daemon_status_info, resp);
	/* One scratch block (the call frees one): the events, then the hosts. */
	thoth_daemon_LifecycleEvent_t *v = calloc(1, n * sizeof *v + nh * sizeof(thoth_daemon_FederationHost_t) + 1);
	if (!v)
		return THOTH_E_NOMEM;
	call->scratch = v;
	thoth_daemon_FederationHost_t *hv = (thoth_daemon_FederationHost_t *)(void *)(v + n);
	for (size_t i = 0; i < nh; i++)
		hv[i] = (thoth_daemon_FederationHost_t){
			.id = thoth_str(hosts[i].id),
			.instances = hosts[i].instances,
			.last_seen_ago_ns = hosts[i].last_seen_ns && now > hosts[i].last_seen_ns
						    ? now - hosts[i].last_seen_ns : 0,
		};
	fe->hosts.items = nh ? hv : NULL;
	fe->hosts.count = (uint32_t)nh;
	for (size_t i = 0; i < n; i++) {
		const thothd_lifecycle_event_t *e = i < na ? &a[i] : &b[i - na];
		v[i] = (thoth_daemon_LifecycleEvent_t){
			.kind = thoth_str(thothd_lifecycle_kind_name(e->kind)),
			.at_unix_ns = e->at_unix_ns,
			.at_ns = e->at_ns,
			.service = thoth_str(e->service),
			.version = thoth_str(e->version),
			.lease = e->lease,
			.pid = e->pid,
			.pid_state = thoth_str(thothd_lifecycle_pid_state_name(e->pid_state)),
			.gap_ns = e->gap_ns,
			.previous_pid = e->previous_pid,
			.predecessor_pid = e->predecessor_pid,
			.predecessor_started_unix_ns = e->predecessor_started_unix_ns,
		};
	}
	resp->events.items = n ? v : NULL;
	resp->events.count = (uint32_t)n;
	return thothd_reserve_response(call, &thoth_daemon_Daemon_status_info, resp);
}

/* SCALE-2: the shared resolve table; server.c attaches send_fd to the answer. */
static int on_resolve_table(void *self, const thoth_daemon_Daemon_resolve_table_req_t *req,
			    thoth_daemon_Daemon_resolve_table_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	int fd = thothd_rtable_fd(call->d, &resp->size, &resp->buckets);
	if (fd < 0) {
		call->reason = "thothd has no shared resolve table (see its log): resolve by round trip";
		return THOTH_E_NOT_FOUND;
	}
	resp->layout = RT_LAYOUT;
	call->send_fd = fd;
	thothd_debug("client %llu (pid %u) took the resolve table (%u entries)",
		     (unsigned long long)call->client->id, call->client->pid, thothd_rtable_entries(call->d));
	return 0;
}

const thoth_daemon_Daemon_handlers_t thothd_daemon_handlers = {
	.status = on_status,
	.resolve_table = on_resolve_table,
	.timer_page = thothd_on_timer_page,
	.serve_stats = thothd_on_serve_stats,
};

/* ---- watch pushes ------------------------------------------------------------------- */

void thothd_on_registry_event(void *arg, const thoth_registry_event_t *ev)
{
	thothd_t *d = arg;
	thothd_client_t *c = ev->watcher_user;
	if (c->doomed || c->fd < 0)
		return;
	thoth_registry_RegistryEvents_changed_req_t msg = {
		.watch_id = ev->watch_id,
		.kind = ev->kind,
		.instance = *ev->instance,
	};
	const thoth_method_info_t *m = &thoth_registry_RegistryEvents_changed_info;
	size_t need = thoth_method_size(m, false, &msg);
	if (need > d->event_cap) {
		void *p = NULL;
		if (posix_memalign(&p, THOTH_WIRE_ALIGN, need)) {
			thothd_client_doom(c, "out of memory for a watch event");
			return;
		}
		free(d->event_buf);
		d->event_buf = p;
		d->event_cap = need;
	}
	size_t len;
	int r = thoth_method_encode(m, false, &msg, NULL, d->event_buf, d->event_cap, &len);
	if (r) {
		thothd_error("cannot encode a watch event: %s", thoth_strerror(r));
		return;
	}
	thothd_client_send(c, d->event_buf, len);
}

/* ---- lease expiry: one timer, armed for the earliest lease end ------------------------ */

static void expiry_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_t *d = arg;
	d->expiry_armed = false;
	size_t n = thoth_registry_expire(d->registry, thoth_clock_now());
	THOTH_TRACE(REGISTRY, registry_expire, n, 0);
	if (n)
		thothd_info("%zu lease%s expired (no heartbeat within the TTL)", n, n == 1 ? "" : "s");
	thothd_reap(d);                 /* closes whom the events overflowed; re-arms */
}

void thothd_rearm_expiry(thothd_t *d)
{
	if (!d->loop)
		return;
	uint64_t next = thoth_registry_next_expiry(d->registry);
	if (next == UINT64_MAX) {
		if (d->expiry_timer) {
			thoth_timer_cancel(d->loop, d->expiry_timer);
			d->expiry_timer = NULL;
		}
		return;
	}
	if (d->expiry_timer) {
		if (d->expiry_armed && thoth_timer_deadline(d->expiry_timer) == next)
			return;
		if (thoth_timer_rearm(d->loop, d->expiry_timer, next, d->cfg.expiry_slack_ns)) {
			thothd_error("cannot re-arm the expiry timer");
			return;
		}
	} else if (thoth_loop_add_timer(d->loop, next, d->cfg.expiry_slack_ns, expiry_fired, d,
					&d->expiry_timer)) {
		thothd_error("cannot arm the expiry timer");
		return;
	}
	d->expiry_armed = true;
}
