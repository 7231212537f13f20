/*
 * federation.c - thothd's registry spanning hosts through etcd
 * (federation.h has the contract, docs/FEDERATION.md the design).
 *
 * Keys (PREFIX = "/thoth/v1/" by default):
 *   PREFIX host/HOST          {"advertise": ..., "pid": ...}   our lease
 *   PREFIX inst/HOST/LEASE    one local registration (JSON)    our lease
 * LEASE is thothd's local lease of the registration, in hex: unique per
 * host, so a key names one registration for its whole life.
 *
 * Three independent activities, each with at most one request in flight:
 *  - the lease: grant, then keepalive every TTL/3 (the only periodic
 *    timer: an idle federated thothd wakes for nothing else);
 *  - the writer: local changes are queued items (put or delete); it sends
 *    the head, and on failure retries it after a backoff.  A lost lease
 *    (etcd forgot it: expired while unreachable) is granted anew and every
 *    item queued again;
 *  - the reader: range PREFIX/inst/ at revision R, then watch from R + 1.
 *    A watch that ends (etcd restarted, connection lost) is re-opened from
 *    the last revision applied + 1: nothing is missed, and an event seen
 *    twice changes nothing (a PUT carries its mod_revision; a DELETE of an
 *    unknown key is ignored).  A watch refused because that revision was
 *    compacted falls back to a full range and a new watch (logged).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "federation.h"
#include "log.h"
#include "thoth/error.h"
#include "thoth/tcp.h"

#define MS_NS 1000000ull
#define BUCKETS 4096u
#define MAX_VALUE (16u << 10)           /* an instance's JSON */
#define MAX_LINE (64u << 20)            /* one watch response */
#define LOST_LEASES 4u                  /* leases lost recently, not a twin's (twin_check) */
#define HOST_LOGS 64u                   /* host going/coming log limits, by host id hash */
/* Each host id's limit (its slot's) and, over them, one for all hosts
 * together: 64 slots of 20 at once and 5/s would let many churning hosts
 * log 64 x that.  The cap is 4 hosts' worth: one churning host spends at
 * most a quarter of it, so it cannot silence the others; many together
 * are held to 100 lines at once, then 20 a second. */
#define HOST_LOG_BURST 20
#define HOST_LOG_PER_S 5
#define HOST_LOG_ALL_BURST 100
#define HOST_LOG_ALL_PER_S 20

typedef struct local_item {
	struct local_item *next;        /* hash chain by lease */
	struct local_item *q_next;      /* writer queue */
	uint64_t lease;                 /* the local registry's */
	uint64_t item_lease;            /* lease_per_registration only */
	char *key, *value;
	bool queued, deleting;
	bool delete_sent;               /* the request in flight for it is the delete */
} local_item_t;

typedef struct remote_host {
	struct remote_host *next;
	char *id;
	thoth_registry_owner_t *owner;
	size_t count;
	uint64_t last_seen_ns;          /* CLOCK_MONOTONIC: the last of its keys applied */
} remote_host_t;

typedef struct remote_item {
	struct remote_item *next;       /* hash chain by key */
	char *key;
	remote_host_t *host;
	uint64_t local_lease;           /* its lease in our registry */
	uint64_t mod_revision;
	bool seen;                      /* resync: present in the full read */
} remote_item_t;

struct thothd_federation {
	thoth_loop_t *loop;
	thoth_registry_t *reg;
	thothd_federation_config_t cfg;
	char *url_base, *prefix, *host_id, *advertise, *state_file;
	fed_http_t *http;
	/* lease */
	uint64_t lease;                 /* 0: none */
	/* The last few leases lost, while their keys may linger: two quick losses
	 * made the older one's keys look like a twin thothd's. */
	uint64_t lost_leases[LOST_LEASES];
	unsigned lost_next;             /* the slot the next loss takes */
	uint64_t twin_lease;            /* another thothd's lease on our host id (said once) */
	bool etcd_down;                 /* said so in the log: a lease call failed */
	uint64_t etcd_down_since_ns;    /* CLOCK_MONOTONIC of that failure (Daemon.status) */
	fed_req_t *lease_req;
	thoth_timer_t *lease_timer;
	/* writer */
	local_item_t *local[BUCKETS];
	local_item_t *q_head, *q_tail;
	fed_req_t *write_req;
	local_item_t *writing;
	thoth_timer_t *write_timer;
	uint64_t write_backoff_ms;
	bool host_key_written;
	/* reader */
	remote_item_t *remote[BUCKETS];
	remote_host_t *hosts;
	fed_req_t *read_req;            /* the range or the watch */
	bool watching, resync_after;
	thoth_timer_t *read_timer;
	uint64_t read_backoff_ms;
	char *line;                     /* the watch's partial response line */
	size_t line_len, line_cap;
	/* lease_per_registration (benchmark) */
	thoth_timer_t *items_timer;
	thothd_federation_stats_t stats;
	thothd_log_limit_t bad_log;     /* other hosts' unusable keys: a peer may write many */
	/* Other hosts coming and going: a limit per host id (its hash), kept
	 * while the host itself comes and goes, so that a churning peer hides
	 * its own lines, not another host's (they shared one limit). */
	thothd_log_limit_t hosts_log[HOST_LOGS];
	thothd_log_limit_t hosts_log_all;       /* every host's lines together: the cap */
	uint64_t host_log_suppressed;   /* lines held back, by a host's limit or the cap */
	uint64_t host_log_capped;       /* of those, by the cap */
};

static void write_next(thothd_federation_t *f);
static void enqueue(thothd_federation_t *f, local_item_t *it);
static void read_start(thothd_federation_t *f);
static void lease_grant(thothd_federation_t *f);

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

static char *b64(const char *in, size_t len)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)(uint8_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= (uint8_t)in[i + 2];
		*o++ = t[v >> 18 & 63];
		*o++ = t[v >> 12 & 63];
		*o++ = i + 1 < len ? t[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? t[v & 63] : '=';
	}
	*o = 0;
	return out;
}

/* Decode base64 IN into a malloc'd NUL-terminated buffer; NULL if invalid
 * or longer than MAX. */
static char *unb64(const char *in, size_t max, size_t *out_len)
{
	size_t n = strlen(in);
	if (n % 4 || n / 4 * 3 > max + 3)
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		uint32_t v = 0;
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			char c = in[i + k];
			int d;
			if (c >= 'A' && c <= 'Z')
				d = c - 'A';
			else if (c >= 'a' && c <= 'z')
				d = c - 'a' + 26;
			else if (c >= '0' && c <= '9')
				d = c - '0' + 52;
			else if (c == '+')
				d = 62;
			else if (c == '/')
				d = 63;
			else if (c == '=' && i + 4 == n && k >= 2) {
				d = 0;
				pad++;
			} else {
				free(out);
				return NULL;
			}
			v = v << 6 | (uint32_t)d;
		}
		out[o++] = (char)(v >> 16);
		if (pad < 2)
			out[o++] = (char)(v >> 8);
		if (pad < 1)
			out[o++] = (char)v;
	}
	if (o > max || memchr(out, 0, o)) {
		free(out);
		return NULL;
	}
	out[o] = 0;
	*out_len = o;
	return out;
}

static char *url(const thothd_federation_t *f, const char *path)
{
	char *u;
	return asprintf(&u, "%s%s", f->url_base, path) < 0 ? NULL : u;
}

static uint64_t json_u64(json_object *o, const char *field)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, field, &v))
		return 0;
	if (json_object_is_type(v, json_type_string))
		return strtoull(json_object_get_string(v), NULL, 0);
	return (uint64_t)json_object_get_int64(v);
}

static const char *json_str(json_object *o, const char *field)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int post(thothd_federation_t *f, const char *path, json_object *body, long timeout_ms,
		fed_chunk_fn chunk, fed_done_fn done, fed_req_t **out)
{
	char *u = url(f, path);
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	int r = u && text ? fed_http_post(f->http, u, text, timeout_ms, chunk, done, f, out) : THOTH_E_NOMEM;
	free(u);
	json_object_put(body);
	return r;
}

static void save_state(const thothd_federation_t *f)
{
	if (!f->state_file)
		return;
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp", f->state_file);
	FILE *fp = fopen(tmp, "w");
	if (!fp)
		return;
	fprintf(fp, "lease %" PRIu64 "\nrevision %" PRIu64 "\n", f->lease, f->stats.revision);
	if (fclose(fp) == 0)
		rename(tmp, f->state_file);
}

/* ---- the lease ------------------------------------------------------------------ */

static void lease_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static void lease_arm(thothd_federation_t *f, uint64_t delay_ms)
{
	if (f->lease_timer)
		thoth_timer_cancel(f->loop, f->lease_timer);
	f->lease_timer = NULL;
	/* Renewals may come up to 1/10 of their interval late: still well
	 * within the TTL, and the loop can fold them into other wake-ups. */
	thoth_loop_add_timer_in(f->loop, delay_ms * MS_NS, delay_ms * MS_NS / 10, lease_timer_fired, f,
				&f->lease_timer);
}

static void lease_lost(thothd_federation_t *f, const char *why)
{
	if (!f->lease)
		return;                 /* already granting a new one */
	thothd_warn("federation: host lease %" PRIx64 " %s: granting a new one and writing every "
		    "registration again", f->lease, why);
	f->lost_leases[f->lost_next++ % LOST_LEASES] = f->lease;
	f->stats.lease_losses++;
	f->lease = 0;
	f->stats.lease_alive = false;
	f->host_key_written = false;
	for (size_t b = 0; b < BUCKETS; b++)
		for (local_item_t *it = f->local[b]; it; it = it->next)
			if (!it->queued && !it->deleting) {
				f->stats.pending++;
				it->queued = true;
				it->q_next = NULL;
				if (f->q_tail)
					f->q_tail->q_next = it;
				else
					f->q_head = it;
				f->q_tail = it;
			}
	lease_grant(f);
}

/* A lease call failed or succeeded: the log says once that etcd does not
 * answer (a wrong --etcd, etcd down) and once that it answers again; in
 * between, the retries are silent.  Without it a thothd whose etcd never
 * answered ran on with nothing in its log but "federation: host ...". */
/* Why a request to etcd failed, in etcd's terms: THOTH_E_NOT_RUNNING's own
 * text ("nothing listens at its socket") is about Unix sockets. */
static const char *etcd_failure(int err, long status)
{
	return err == THOTH_E_NOT_RUNNING ? "connection refused"
	       : err == THOTH_E_IO        ? "the connection failed or broke"
	       : err                      ? thoth_strerror(err)
	       : status && status != 200  ? "an HTTP error status"
					  : "not an etcd answer";
}

static void etcd_answered(thothd_federation_t *f, bool ok, int err, long status)
{
	if (ok && f->etcd_down)
		thothd_info("federation: etcd at %s answers again", f->url_base);
	else if (!ok && !f->etcd_down)
		thothd_warn("federation: etcd at %s does not answer (%s): serving this host's "
			    "services only, retrying", f->url_base, etcd_failure(err, status));
	if (!ok && !f->etcd_down)
		f->etcd_down_since_ns = thoth_clock_now();
	f->etcd_down = !ok;
	f->stats.etcd_answers = ok;
}

static void keepalive_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)len;
	f->lease_req = NULL;
	f->stats.wakeups++;
	json_object *o = err || status != 200 ? NULL : json_tokener_parse(body);
	json_object *res = NULL;
	if (o)
		json_object_object_get_ex(o, "result", &res);
	etcd_answered(f, res != NULL, err, status);
	if (!res) {
		f->stats.errors++;
		json_object_put(o);
		/* etcd unreachable: try again soon, the lease may still live. */
		uint64_t retry = f->cfg.ttl_s * 1000ull / 6;
		lease_arm(f, retry < 500 ? retry : 500);
		return;
	}
	uint64_t ttl = json_u64(res, "TTL");
	json_object_put(o);
	if (!ttl) {
		lease_lost(f, "is gone from etcd (expired while we could not reach it)");
		return;
	}
	lease_arm(f, f->cfg.ttl_s * 1000ull / 3);
}

static void lease_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_federation_t *f = arg;
	(void)loop;
	(void)timer;
	f->lease_timer = NULL;
	f->stats.wakeups++;
	if (!f->lease) {
		lease_grant(f);
		return;
	}
	json_object *b = json_object_new_object();
	json_object_object_add(b, "ID", json_object_new_int64((int64_t)f->lease));
	f->stats.keepalives++;
	if (post(f, "/v3/lease/keepalive", b, 2000, NULL, keepalive_done, &f->lease_req))
		lease_arm(f, 500);
}

static void grant_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)len;
	f->lease_req = NULL;
	f->stats.wakeups++;
	json_object *o = err || status != 200 ? NULL : json_tokener_parse(body);
	uint64_t id = json_u64(o, "ID"), ttl = json_u64(o, "TTL");
	json_object_put(o);
	etcd_answered(f, id && ttl, err, status);
	if (!id || !ttl) {
		f->stats.errors++;
		lease_arm(f, 500);      /* lease_timer_fired grants again */
		return;
	}
	f->lease = id;
	f->stats.lease_alive = true;
	save_state(f);
	thothd_info("federation: host %s holds lease %" PRIx64 " (TTL %" PRIu64 " s)", f->host_id, id, ttl);
	lease_arm(f, f->cfg.ttl_s * 1000ull / 3);
	write_next(f);
}

static void lease_grant(thothd_federation_t *f)
{
	json_object *b = json_object_new_object();
	json_object_object_add(b, "TTL", json_object_new_int64(f->cfg.ttl_s));
	f->stats.grants++;
	if (post(f, "/v3/lease/grant", b, 2000, NULL, grant_done, &f->lease_req))
		lease_arm(f, 500);
}

/* ---- the writer: local registrations out ------------------------------------------ */

static void write_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_federation_t *f = arg;
	(void)loop;
	(void)timer;
	f->write_timer = NULL;
	f->stats.wakeups++;
	write_next(f);
}

static void item_free(local_item_t *it)
{
	free(it->key);
	free(it->value);
	free(it);
}

static void item_unlink(thothd_federation_t *f, local_item_t *it)
{
	local_item_t **p = &f->local[it->lease % BUCKETS];
	while (*p && *p != it)
		p = &(*p)->next;
	if (*p)
		*p = it->next;
}

static void write_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)len;
	f->write_req = NULL;
	f->stats.wakeups++;
	local_item_t *it = f->writing;
	f->writing = NULL;
	json_object *o = err || status != 200 ? NULL : json_tokener_parse(body);
	bool ok = o && !json_object_object_get_ex(o, "error", NULL) && json_object_object_get_ex(o, "header", NULL);
	const char *msg = json_str(o, "message");
	bool no_lease = msg && strstr(msg, "lease not found");
	json_object_put(o);
	if (no_lease && !f->cfg.lease_per_registration) {
		/* The item stays at the head of the queue: written again under
		 * the new lease (grant_done restarts the writer). */
		lease_lost(f, "was refused by a put");
		return;
	}
	if (!ok) {
		f->stats.errors++;
		f->write_backoff_ms = f->write_backoff_ms ? f->write_backoff_ms * 2 : 100;
		if (f->write_backoff_ms > 2000)
			f->write_backoff_ms = 2000;
		thoth_loop_add_timer_in(f->loop, f->write_backoff_ms * MS_NS, f->write_backoff_ms * MS_NS / 10,
					write_timer_fired, f, &f->write_timer);
		return;
	}
	f->write_backoff_ms = 0;
	if (!it) {
		f->host_key_written = true;
	} else {
		/* Done with the head of the queue. */
		f->q_head = it->q_next;
		if (!f->q_head)
			f->q_tail = NULL;
		it->queued = false;
		if (f->stats.pending)
			f->stats.pending--;
		if (it->deleting && it->delete_sent) {
			item_unlink(f, it);
			item_free(it);
		} else if (it->deleting) {
			enqueue(f, it);         /* withdrawn while its put was in flight */
		}
	}
	write_next(f);
}

static void item_grant_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)len;
	f->write_req = NULL;
	f->stats.wakeups++;
	json_object *o = err || status != 200 ? NULL : json_tokener_parse(body);
	uint64_t id = json_u64(o, "ID");
	json_object_put(o);
	if (f->writing && id)
		f->writing->item_lease = id;
	else
		f->stats.errors++;
	f->writing = NULL;
	write_next(f);
}

static void write_next(thothd_federation_t *f)
{
	if (f->write_req || f->write_timer || !f->lease)
		return;
	json_object *b = json_object_new_object();
	if (!f->host_key_written) {
		char key[512];
		snprintf(key, sizeof key, "%shost/%s", f->prefix, f->host_id);
		json_object *v = json_object_new_object();
		json_object_object_add(v, "advertise", json_object_new_string(f->advertise ? f->advertise : ""));
		json_object_object_add(v, "pid", json_object_new_int64(getpid()));
		const char *vs = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		char *kb = b64(key, strlen(key)), *vb = b64(vs, strlen(vs));
		json_object_object_add(b, "key", json_object_new_string(kb ? kb : ""));
		json_object_object_add(b, "value", json_object_new_string(vb ? vb : ""));
		json_object_object_add(b, "lease", json_object_new_int64((int64_t)f->lease));
		free(kb);
		free(vb);
		json_object_put(v);
		f->writing = NULL;
		f->stats.puts++;
		if (post(f, "/v3/kv/put", b, 2000, NULL, write_done, &f->write_req))
			f->stats.errors++;
		return;
	}
	local_item_t *it = f->q_head;
	if (!it) {
		json_object_put(b);
		return;
	}
	f->writing = it;
	char *kb = b64(it->key, strlen(it->key));
	json_object_object_add(b, "key", json_object_new_string(kb ? kb : ""));
	free(kb);
	it->delete_sent = it->deleting;
	if (it->deleting) {
		f->stats.deletes++;
		post(f, "/v3/kv/deleterange", b, 2000, NULL, write_done, &f->write_req);
		return;
	}
	if (f->cfg.lease_per_registration && !it->item_lease) {
		json_object_put(b);
		b = json_object_new_object();
		json_object_object_add(b, "TTL", json_object_new_int64(f->cfg.ttl_s));
		f->stats.grants++;
		post(f, "/v3/lease/grant", b, 2000, NULL, item_grant_done, &f->write_req);
		return;
	}
	char *vb = b64(it->value, strlen(it->value));
	json_object_object_add(b, "value", json_object_new_string(vb ? vb : ""));
	free(vb);
	json_object_object_add(b, "lease",
			       json_object_new_int64((int64_t)(f->cfg.lease_per_registration ? it->item_lease : f->lease)));
	f->stats.puts++;
	post(f, "/v3/kv/put", b, 2000, NULL, write_done, &f->write_req);
}

static void enqueue(thothd_federation_t *f, local_item_t *it)
{
	if (it->queued)
		return;
	it->queued = true;
	it->q_next = NULL;
	if (f->q_tail)
		f->q_tail->q_next = it;
	else
		f->q_head = it;
	f->q_tail = it;
	f->stats.pending++;
	write_next(f);
}

/* The JSON of a registration as other hosts read it (parse_instance). */
static char *instance_json(const thoth_registry_Instance_t *inst)
{
	const thoth_registry_Registration_t *r = &inst->registration;
	const thoth_common_Endpoint_t *ep = &r->endpoint;
	json_object *o = json_object_new_object();
	char hex[32];
	json_object_object_add(o, "name", json_object_new_string_len(r->name.ptr, (int)r->name.len));
	json_object_object_add(o, "version", json_object_new_string_len(r->version.ptr, (int)r->version.len));
	json_object_object_add(o, "addr", json_object_new_string_len(ep->addr.ptr, (int)ep->addr.len));
	json_object_object_add(o, "numa", json_object_new_int(ep->numa_node));
	json_object_object_add(o, "pid", json_object_new_int64(ep->pid));
	snprintf(hex, sizeof hex, "0x%" PRIx64, ep->instance_id);
	json_object_object_add(o, "instance_id", json_object_new_string(hex));
	snprintf(hex, sizeof hex, "0x%" PRIx64, r->features);
	json_object_object_add(o, "features", json_object_new_string(hex));
	json_object *claims = json_object_new_array();
	for (uint32_t i = 0; i < r->claims.count; i++) {
		const thoth_common_InterfaceClaim_t *c = &r->claims.items[i];
		json_object *co = json_object_new_object();
		json_object_object_add(co, "package", json_object_new_string_len(c->package.ptr, (int)c->package.len));
		json_object_object_add(co, "interface", json_object_new_string_len(c->interface.ptr, (int)c->interface.len));
		json_object_object_add(co, "interface_id", json_object_new_int64(c->interface_id));
		json_object_object_add(co, "major", json_object_new_int(c->major));
		json_object_object_add(co, "minor", json_object_new_int(c->minor));
		snprintf(hex, sizeof hex, "0x%" PRIx64, c->schema_hash);
		json_object_object_add(co, "schema_hash", json_object_new_string(hex));
		snprintf(hex, sizeof hex, "0x%" PRIx64, c->features);
		json_object_object_add(co, "features", json_object_new_string(hex));
		json_object_array_add(claims, co);
	}
	json_object_object_add(o, "claims", claims);
	char *s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

void thothd_federation_on_change(thothd_federation_t *f, int kind, const thoth_registry_Instance_t *inst)
{
	if (!f)
		return;
	const thoth_common_Endpoint_t *ep = &inst->registration.endpoint;
	/* Only what other hosts can reach, and never what came from them. */
	if (ep->locality == THOTH_COMMON_LOCALITY_REMOTE || ep->addr.len < 4 ||
	    memcmp(ep->addr.ptr, THOTH_TCP_PREFIX, 4) != 0)
		return;
	local_item_t *it = f->local[inst->lease % BUCKETS];
	while (it && it->lease != inst->lease)
		it = it->next;
	if (kind == THOTH_REGISTRY_CHANGE_KIND_ADDED && !it) {
		it = calloc(1, sizeof *it);
		if (!it)
			return;
		it->lease = inst->lease;
		it->value = instance_json(inst);
		if (!it->value || asprintf(&it->key, "%sinst/%s/%016" PRIx64, f->prefix, f->host_id, inst->lease) < 0) {
			free(it->value);
			free(it);
			return;
		}
		it->next = f->local[inst->lease % BUCKETS];
		f->local[inst->lease % BUCKETS] = it;
		f->stats.local++;
		enqueue(f, it);
	} else if ((kind == THOTH_REGISTRY_CHANGE_KIND_REMOVED || kind == THOTH_REGISTRY_CHANGE_KIND_EXPIRED) && it &&
		   !it->deleting) {
		it->deleting = true;
		f->stats.local--;
		if (!it->queued)
			enqueue(f, it);
		/* queued as a put not yet sent: now it is sent as a delete */
	}
}

/* ---- lease_per_registration (benchmark): one keepalive per lease ------------------- */

static void items_keepalive_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)body;
	(void)len;
	(void)status;
	f->stats.wakeups++;
	if (err)
		f->stats.errors++;
}

static void items_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_federation_t *f = arg;
	(void)loop;
	f->stats.wakeups++;
	for (size_t b = 0; b < BUCKETS; b++)
		for (local_item_t *it = f->local[b]; it; it = it->next) {
			if (!it->item_lease)
				continue;
			json_object *o = json_object_new_object();
			json_object_object_add(o, "ID", json_object_new_int64((int64_t)it->item_lease));
			f->stats.keepalives++;
			post(f, "/v3/lease/keepalive", o, 2000, NULL, items_keepalive_done, NULL);
		}
	thoth_timer_rearm(f->loop, timer, thoth_clock_now() + f->cfg.ttl_s * 1000ull / 3 * MS_NS, MS_NS);
}

/* ---- the reader: other hosts' registrations in ---------------------------------------- */

/* A host going or coming, said under that host id's own limit and the
 * cap on all hosts' lines together. */
static void host_log(thothd_federation_t *f, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void host_log(thothd_federation_t *f, const char *id, const char *fmt, ...)
{
	thothd_log_limit_t *l = &f->hosts_log[hash_str(id) % HOST_LOGS];
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	int held = thothd_log_limited_both(l, &f->hosts_log_all, THOTHD_LOG_INFO, "%s", line);
	if (held)
		f->host_log_suppressed++;
	if (held == 2)
		f->host_log_capped++;
}

static remote_host_t *host_get(thothd_federation_t *f, const char *id, size_t len)
{
	for (remote_host_t *h = f->hosts; h; h = h->next)
		if (strlen(h->id) == len && memcmp(h->id, id, len) == 0)
			return h;
	remote_host_t *h = calloc(1, sizeof *h);
	if (!h || !(h->id = strndup(id, len)) ||
	    thoth_registry_owner_new(f->reg, f->cfg.uid, 0, h, &h->owner)) {
		if (h)
			free(h->id);
		free(h);
		return NULL;
	}
	thoth_registry_owner_set_federated(h->owner);
	h->next = f->hosts;
	f->hosts = h;
	f->stats.hosts++;
	return h;
}

static remote_item_t **remote_slot(thothd_federation_t *f, const char *key)
{
	remote_item_t **p = &f->remote[hash_str(key) % BUCKETS];
	while (*p && strcmp((*p)->key, key) != 0)
		p = &(*p)->next;
	return p;
}

/* A host with nothing left goes: host ids come and go (a container's host
 * name is new on every start), and the old code kept every one it ever saw,
 * each with a registry owner, for thothd's life. */
static void host_release(thothd_federation_t *f, remote_host_t *h)
{
	if (h->count)
		return;
	remote_host_t **p = &f->hosts;
	while (*p != h)
		p = &(*p)->next;
	*p = h->next;
	thoth_registry_owner_drop(f->reg, h->owner);
	free(h->id);
	free(h);
	f->stats.hosts--;
}

/* Drop the remote instance at SLOT.  GONE: it left etcd (a delete, or
 * missing from a full read), and its host's last instance going is said in
 * the log; false when it is replaced or thothd stops. */
static void remote_remove(thothd_federation_t *f, remote_item_t **slot, bool gone)
{
	remote_item_t *ri = *slot;
	*slot = ri->next;
	remote_host_t *h = ri->host;
	thoth_registry_withdraw(f->reg, h->owner, ri->local_lease);
	h->count--;
	/* Said because nothing else on this host tells an operator that another
	 * host went: its instances simply stopped being offered (drill fed45). */
	if (gone && !h->count)
		host_log(f, h->id,
			 "federation: host %s has no instances left here (withdrawn, or its etcd "
			 "lease ended: its thothd stopped, was killed, or could not reach etcd for "
			 "its lease TTL)", h->id);
	f->stats.remote--;
	free(ri->key);
	free(ri);
	host_release(f, h);
}

/* Parse another host's instance JSON into R (strings point into O). */
static int parse_instance(json_object *o, thoth_registry_Registration_t *r, thoth_common_InterfaceClaim_t *claims,
			  size_t max_claims)
{
	const char *name = json_str(o, "name"), *version = json_str(o, "version"), *addr = json_str(o, "addr");
	thoth_tcp_addr_t a;
	if (!name || !version || !addr || thoth_tcp_addr_parse(addr, false, &a, NULL, 0))
		return THOTH_E_INVAL;
	memset(r, 0, sizeof *r);
	r->name = thoth_str(name);
	r->version = thoth_str(version);
	r->endpoint.addr = thoth_str(addr);
	r->endpoint.numa_node = (uint16_t)json_u64(o, "numa");
	r->endpoint.pid = (uint32_t)json_u64(o, "pid");
	r->endpoint.instance_id = json_u64(o, "instance_id");
	r->endpoint.locality = THOTH_COMMON_LOCALITY_REMOTE;
	r->features = json_u64(o, "features");
	json_object *arr;
	if (json_object_object_get_ex(o, "claims", &arr) && json_object_is_type(arr, json_type_array)) {
		size_t n = json_object_array_length(arr);
		if (n > max_claims)
			return THOTH_E_INVAL;
		for (size_t i = 0; i < n; i++) {
			json_object *c = json_object_array_get_idx(arr, i);
			const char *pkg = json_str(c, "package"), *iface = json_str(c, "interface");
			if (!pkg || !iface)
				return THOTH_E_INVAL;
			claims[i] = (thoth_common_InterfaceClaim_t){
				.package = thoth_str(pkg), .interface = thoth_str(iface),
				.interface_id = (uint32_t)json_u64(c, "interface_id"),
				.major = (uint8_t)json_u64(c, "major"), .minor = (uint8_t)json_u64(c, "minor"),
				.schema_hash = json_u64(c, "schema_hash"), .features = json_u64(c, "features"),
			};
		}
		r->claims.items = n ? claims : NULL;
		r->claims.count = (uint32_t)n;
	}
	return 0;
}

/* PREFIX inst/HOST/LEASE: HOST's span, or false if KEY is not an instance key. */
static bool key_host(const thothd_federation_t *f, const char *key, const char **host, size_t *len)
{
	size_t pl = strlen(f->prefix);
	if (strncmp(key, f->prefix, pl) != 0 || strncmp(key + pl, "inst/", 5) != 0)
		return false;
	*host = key + pl + 5;
	const char *slash = strchr(*host, '/');
	if (!slash || slash == *host)
		return false;
	*len = (size_t)(slash - *host);
	return true;
}

static bool host_id_valid_n(const char *s, size_t n);

/* KEY for the log, cut at 200 bytes: a peer writes what it likes, and a
 * newline or an escape in a key forged thothd's log lines or drove the
 * reader's terminal.  The log escapes every line (log.c: control bytes,
 * C1, invalid UTF-8 as \xHH, a backslash as \\); escaping here too wrote
 * a key's backslash twice over (loose38). */
static const char *printable(const char *key, char *out, size_t cap)
{
	size_t n = strlen(key);
	if (n > 200)
		n = 200;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, key, n);
	out[n] = 0;
	return out;
}

/*
 * A key under our own host id written, after we started, under LEASE, an
 * etcd lease that is not ours: another thothd runs with our --host-id (two
 * machines with one host name, a cloned VM).  Each ignores the other's
 * instances as its own, and nothing said so: say it, once per lease.
 */
static void twin_check(thothd_federation_t *f, uint64_t lease)
{
	if (!lease || !f->lease || f->cfg.lease_per_registration || lease == f->lease ||
	    lease == f->twin_lease)
		return;
	for (unsigned i = 0; i < LOST_LEASES; i++)
		if (lease == f->lost_leases[i])
			return;
	f->twin_lease = lease;
	f->stats.twins++;
	thothd_error("federation: another thothd writes under this host's id %s (etcd lease %" PRIx64
		     ", ours %" PRIx64 "): two hosts share one --host-id, and each ignores the other's "
		     "instances as its own; give each host its own --host-id", f->host_id, lease, f->lease);
}

/* Apply one key-value (a PUT) or its absence (DELETE); KV_LEASE: its etcd
 * lease, WATCHED: it comes from the watch (written after we started). */
static void apply(thothd_federation_t *f, bool put, const char *key_b64, const char *value_b64, uint64_t mod_rev,
		  uint64_t kv_lease, bool watched)
{
	size_t klen, vlen;
	char *key = key_b64 ? unb64(key_b64, 1024, &klen) : NULL;
	if (!key)
		return;
	const char *host;
	size_t hlen;
	if (!key_host(f, key, &host, &hlen)) {
		free(key);              /* not an instance */
		return;
	}
	if (!host_id_valid_n(host, hlen)) {
		/* Not a host id any thothd writes (--host-id is checked): a peer
		 * that lies.  The old code made it a remote host, whatever its
		 * bytes, and logged them raw. */
		char shown[256];
		f->stats.bad_values++;
		thothd_log_limited(&f->bad_log, THOTHD_LOG_WARN, "federation: ignoring %s from etcd: its "
				   "host id is not 1..63 characters of [A-Za-z0-9_.-]",
				   printable(key, shown, sizeof shown));
		free(key);
		return;
	}
	if (hlen == strlen(f->host_id) && memcmp(host, f->host_id, hlen) == 0) {
		if (put && watched)     /* ours, or a twin's (a key of the range may be our
					 * previous thothd's, whose lease is ending) */
			twin_check(f, kv_lease);
		free(key);
		return;
	}
	remote_item_t **slot = remote_slot(f, key);
	if (!put) {
		if (*slot) {
			(*slot)->host->last_seen_ns = thoth_clock_now();
			remote_remove(f, slot, true);
		}
		free(key);
		return;
	}
	if (*slot && (*slot)->mod_revision >= mod_rev) {
		(*slot)->seen = true;   /* seen before: a replay after a reconnect */
		free(key);
		return;
	}
	char *value = value_b64 ? unb64(value_b64, MAX_VALUE, &vlen) : NULL;
	json_object *o = value ? json_tokener_parse(value) : NULL;
	thoth_registry_Registration_t r;
	thoth_common_InterfaceClaim_t claims[32];
	remote_host_t *h = NULL;
	uint64_t lease = 0;
	if (!o || parse_instance(o, &r, claims, 32) || !(h = host_get(f, host, hlen)) ||
	    thoth_registry_register(f->reg, h->owner, &r, thoth_clock_now(), &lease)) {
		char shown[256];
		f->stats.bad_values++;
		thothd_log_limited(&f->bad_log, THOTHD_LOG_WARN, "federation: ignoring %s from etcd: %s",
				   printable(key, shown, sizeof shown),
				   !o ? "its value is not JSON" : h ? thoth_registry_refusal(f->reg)
								 : "not a valid instance");
		json_object_put(o);
		free(value);
		free(key);
		if (h)
			host_release(f, h);     /* new and empty: not kept */
		return;
	}
	/* Before O goes: R's strings point into it. */
	if (!h->count)
		host_log(f, h->id, "federation: host %s offers its first instance here: %.*s at %.*s", h->id,
			 (int)r.name.len, (const char *)r.name.ptr, (int)r.endpoint.addr.len,
			 (const char *)r.endpoint.addr.ptr);
	h->last_seen_ns = thoth_clock_now();
	json_object_put(o);
	free(value);
	remote_item_t *ri = calloc(1, sizeof *ri);
	if (!ri) {
		thoth_registry_withdraw(f->reg, h->owner, lease);
		host_release(f, h);
		free(key);
		return;
	}
	h->count++;                     /* before the old value goes: H holds the new one */
	f->stats.remote++;
	if (*slot)
		remote_remove(f, slot, false);  /* replaced by a newer value */
	ri->key = key;
	ri->host = h;
	ri->local_lease = lease;
	ri->mod_revision = mod_rev;
	ri->seen = true;
	ri->next = *slot;
	*slot = ri;
}

static void after_change(thothd_federation_t *f)
{
	if (f->cfg.after_change)
		f->cfg.after_change(f->cfg.arg);
}

static void read_timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thothd_federation_t *f = arg;
	(void)loop;
	(void)timer;
	f->read_timer = NULL;
	f->stats.wakeups++;
	read_start(f);
}

static void read_retry(thothd_federation_t *f)
{
	f->read_backoff_ms = f->read_backoff_ms ? f->read_backoff_ms * 2 : 100;
	if (f->read_backoff_ms > 2000)
		f->read_backoff_ms = 2000;
	thoth_loop_add_timer_in(f->loop, f->read_backoff_ms * MS_NS, f->read_backoff_ms * MS_NS / 10,
				read_timer_fired, f, &f->read_timer);
}

static void range_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)len;
	f->read_req = NULL;
	f->stats.wakeups++;
	json_object *o = err || status != 200 ? NULL : json_tokener_parse(body);
	json_object *hdr = NULL, *kvs = NULL;
	if (!o || !json_object_object_get_ex(o, "header", &hdr)) {
		f->stats.errors++;
		json_object_put(o);
		read_retry(f);
		return;
	}
	uint64_t rev = json_u64(hdr, "revision");
	for (size_t b = 0; b < BUCKETS; b++)
		for (remote_item_t *ri = f->remote[b]; ri; ri = ri->next)
			ri->seen = false;
	if (json_object_object_get_ex(o, "kvs", &kvs) && json_object_is_type(kvs, json_type_array)) {
		size_t n = json_object_array_length(kvs);
		for (size_t i = 0; i < n; i++) {
			json_object *kv = json_object_array_get_idx(kvs, i);
			apply(f, true, json_str(kv, "key"), json_str(kv, "value"), json_u64(kv, "mod_revision"),
			      json_u64(kv, "lease"), false);
		}
	}
	/* What the full read no longer holds left while we were not watching. */
	for (size_t b = 0; b < BUCKETS; b++) {
		remote_item_t **p = &f->remote[b];
		while (*p) {
			if (!(*p)->seen)
				remote_remove(f, p, true);
			else
				p = &(*p)->next;
		}
	}
	json_object_put(o);
	f->stats.revision = rev;
	f->read_backoff_ms = 0;
	after_change(f);
	read_start(f);                  /* the watch, from rev + 1 */
}

/* One whole watch response (a line of the stream).  Non-zero: end the stream. */
static int watch_line(thothd_federation_t *f, const char *text)
{
	json_object *o = json_tokener_parse(text);
	json_object *res = NULL, *hdr = NULL, *events = NULL;
	if (!o || !json_object_object_get_ex(o, "result", &res)) {
		json_object_put(o);
		f->stats.errors++;
		return THOTH_E_PROTOCOL;
	}
	uint64_t compact = json_u64(res, "compact_revision");
	json_object *canceled = NULL;
	if (compact || (json_object_object_get_ex(res, "canceled", &canceled) && json_object_get_boolean(canceled))) {
		thothd_warn("federation: etcd compacted the history before revision %" PRIu64 " (we had %" PRIu64
			    "): reading the full list again and watching from there", compact, f->stats.revision);
		f->resync_after = true;
		f->stats.resyncs++;
		json_object_put(o);
		return THOTH_E_CLOSED;
	}
	if (json_object_object_get_ex(res, "events", &events) && json_object_is_type(events, json_type_array)) {
		size_t n = json_object_array_length(events);
		for (size_t i = 0; i < n; i++) {
			json_object *ev = json_object_array_get_idx(events, i), *kv = NULL;
			json_object_object_get_ex(ev, "kv", &kv);
			const char *type = json_str(ev, "type");
			bool put = !type || strcmp(type, "PUT") == 0;
			apply(f, put, json_str(kv, "key"), json_str(kv, "value"), json_u64(kv, "mod_revision"),
			      json_u64(kv, "lease"), true);
			f->stats.watch_events++;
			uint64_t mr = json_u64(kv, "mod_revision");
			if (mr > f->stats.revision)
				f->stats.revision = mr;
		}
		if (n)
			after_change(f);
	}
	if (json_object_object_get_ex(res, "header", &hdr) && !json_object_object_get_ex(res, "created", NULL)) {
		/* A response's header revision covers every event it carried. */
		uint64_t rev = json_u64(hdr, "revision");
		if (events && rev > f->stats.revision)
			f->stats.revision = rev;
	}
	f->read_backoff_ms = 0;
	json_object_put(o);
	return 0;
}

static int watch_chunk(void *arg, const char *data, size_t len)
{
	thothd_federation_t *f = arg;
	f->stats.wakeups++;
	if (f->line_len + len + 1 > f->line_cap) {
		size_t cap = f->line_cap ? f->line_cap : 4096;
		while (cap < f->line_len + len + 1)
			cap *= 2;
		if (cap > MAX_LINE)
			return THOTH_E_TOO_LARGE;
		char *p = realloc(f->line, cap);
		if (!p)
			return THOTH_E_NOMEM;
		f->line = p;
		f->line_cap = cap;
	}
	memcpy(f->line + f->line_len, data, len);
	f->line_len += len;
	f->line[f->line_len] = 0;
	/* The gateway ends every response with a newline. */
	char *start = f->line, *nl;
	int r = 0;
	while (!r && (nl = memchr(start, '\n', f->line_len - (size_t)(start - f->line)))) {
		*nl = 0;
		if (nl > start)
			r = watch_line(f, start);
		start = nl + 1;
	}
	size_t rest = f->line_len - (size_t)(start - f->line);
	memmove(f->line, start, rest);
	f->line_len = rest;
	return r;
}

static void watch_done(void *arg, int err, long status, const char *body, size_t len)
{
	thothd_federation_t *f = arg;
	(void)status;
	(void)body;
	(void)len;
	f->read_req = NULL;
	f->watching = false;
	f->stats.watching = false;
	f->stats.wakeups++;
	f->line_len = 0;
	save_state(f);
	if (f->resync_after) {
		f->resync_after = false;
		f->stats.revision = 0;  /* a full read, then a new watch */
		read_start(f);
		return;
	}
	if (err)
		f->stats.errors++;
	/* Said once per watch that etcd had answered (read_backoff_ms is reset
	 * by every watch response): the re-openings that fail while etcd is
	 * down are silent ("does not answer" said it).  The old thothd logged
	 * every one, a line every 2 s per host for as long as etcd was away,
	 * with THOTH_E_NOT_RUNNING's Unix-socket text (fed45). */
	if (!f->read_backoff_ms)
		thothd_info("federation: watch ended (%s): resuming from revision %" PRIu64,
			    err ? etcd_failure(err, status) : "etcd closed it", f->stats.revision + 1);
	read_retry(f);
}

static void read_start(thothd_federation_t *f)
{
	char key[512], end[512];
	snprintf(key, sizeof key, "%sinst/", f->prefix);
	snprintf(end, sizeof end, "%sinst0", f->prefix);      /* '/' + 1: every key under inst/ */
	char *kb = b64(key, strlen(key)), *eb = b64(end, strlen(end));
	json_object *b = json_object_new_object();
	int r;
	if (!f->stats.revision) {
		json_object_object_add(b, "key", json_object_new_string(kb ? kb : ""));
		json_object_object_add(b, "range_end", json_object_new_string(eb ? eb : ""));
		f->stats.ranges++;
		r = post(f, "/v3/kv/range", b, 10000, NULL, range_done, &f->read_req);
	} else {
		json_object *c = json_object_new_object();
		json_object_object_add(c, "key", json_object_new_string(kb ? kb : ""));
		json_object_object_add(c, "range_end", json_object_new_string(eb ? eb : ""));
		json_object_object_add(c, "start_revision", json_object_new_int64((int64_t)f->stats.revision + 1));
		json_object_object_add(b, "create_request", c);
		f->stats.watches++;
		r = post(f, "/v3/watch", b, 0, watch_chunk, watch_done, &f->read_req);
		if (!r) {
			f->watching = true;
			f->stats.watching = true;
		}
	}
	free(kb);
	free(eb);
	if (r)
		read_retry(f);
}

/* ---- life ----------------------------------------------------------------------- */

static bool host_id_valid_n(const char *s, size_t n)
{
	if (!n || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static bool host_id_valid(const char *s)
{
	return host_id_valid_n(s, strlen(s));
}

/* Revoke the lease a previous thothd of this host left in STATE_FILE, so its
 * keys go now rather than at its TTL (no stale duplicates of our instances).
 * Blocking, bounded, at start-up only: the loop has not started yet. */
static void revoke_previous(thothd_federation_t *f)
{
	FILE *fp = f->state_file ? fopen(f->state_file, "r") : NULL;
	uint64_t old = 0, rev = 0;
	if (!fp)
		return;
	if (fscanf(fp, "lease %" SCNu64 "\nrevision %" SCNu64, &old, &rev) < 1)
		old = 0;
	fclose(fp);
	if (!old)
		return;
	CURL *e = curl_easy_init();
	char *u = url(f, "/v3/lease/revoke"), body[64];
	snprintf(body, sizeof body, "{\"ID\":%" PRIu64 "}", old);
	if (e && u) {
		curl_easy_setopt(e, CURLOPT_URL, u);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, NULL);
		FILE *null = fopen("/dev/null", "w");
		curl_easy_setopt(e, CURLOPT_WRITEDATA, null);
		if (curl_easy_perform(e) == CURLE_OK)
			thothd_info("federation: revoked lease %" PRIx64 " of this host's previous thothd", old);
		if (null)
			fclose(null);
	}
	f->stats.requests++;
	free(u);
	if (e)
		curl_easy_cleanup(e);
}

int thothd_federation_config_check(const thothd_federation_config_t *cfg, char *why, size_t why_len)
{
	if (!cfg->etcd_url || (strncmp(cfg->etcd_url, "http://", 7) && strncmp(cfg->etcd_url, "https://", 8))) {
		snprintf(why, why_len, "--etcd %s: expected http://HOST:PORT", cfg->etcd_url ? cfg->etcd_url : "(none)");
		return THOTH_E_INVAL;
	}
	/* The default host id, the host name, is filled in by thothd only
	 * before thothd_federation_new, which checks again: named as what it
	 * is ("--host-id NAME" blamed an option nobody gave). */
	if (cfg->host_id && !host_id_valid(cfg->host_id)) {
		if (cfg->host_id_is_host_name)
			snprintf(why, why_len, "the host name %s (no --host-id given) is not a host id: "
				 "1..63 characters of [A-Za-z0-9_.-]; give one with --host-id", cfg->host_id);
		else
			snprintf(why, why_len, "--host-id %s: 1..63 characters of [A-Za-z0-9_.-]", cfg->host_id);
		return THOTH_E_INVAL;
	}
	if (cfg->advertise && *cfg->advertise) {
		thoth_tcp_addr_t a;
		char awhy[200];
		if (thoth_tcp_addr_parse(cfg->advertise, false, &a, awhy, sizeof awhy)) {
			snprintf(why, why_len, "--advertise: %s", awhy);
			return THOTH_E_INVAL;
		}
	}
	uint32_t ttl = cfg->ttl_s ? cfg->ttl_s : 10;
	if (ttl < 2 || ttl > 3600) {
		snprintf(why, why_len, "--etcd-ttl %u: must be 2..3600 seconds (etcd's minimum lease is 2 s)", ttl);
		return THOTH_E_INVAL;
	}
	return 0;
}

int thothd_federation_new(thoth_loop_t *loop, thoth_registry_t *reg, const thothd_federation_config_t *cfg,
			  thothd_federation_t **out, char *why, size_t why_len)
{
	*out = NULL;
	int c = thothd_federation_config_check(cfg, why, why_len);
	if (c)
		return c;
	/* config_check checked a host id given (a --host-id, or the host
	 * name thothd fills in when none was given); none at all is a
	 * caller's mistake. */
	if (!cfg->host_id) {
		snprintf(why, why_len, "no host id (--host-id, or the host name)");
		return THOTH_E_INVAL;
	}
	uint32_t ttl = cfg->ttl_s ? cfg->ttl_s : 10;
	thothd_federation_t *f = calloc(1, sizeof *f);
	if (!f)
		return THOTH_E_NOMEM;
	f->loop = loop;
	f->reg = reg;
	f->cfg = *cfg;
	f->cfg.ttl_s = ttl;
	f->bad_log = (thothd_log_limit_t){ .burst = 20, .per_second = 5 };
	for (size_t i = 0; i < HOST_LOGS; i++)
		f->hosts_log[i] = (thothd_log_limit_t){ .burst = HOST_LOG_BURST, .per_second = HOST_LOG_PER_S };
	f->hosts_log_all = (thothd_log_limit_t){ .burst = HOST_LOG_ALL_BURST, .per_second = HOST_LOG_ALL_PER_S };
	size_t ul = strlen(cfg->etcd_url);
	f->url_base = strndup(cfg->etcd_url, cfg->etcd_url[ul - 1] == '/' ? ul - 1 : ul);
	f->prefix = strdup(cfg->prefix ? cfg->prefix : "/thoth/v1/");
	f->host_id = strdup(cfg->host_id);
	f->advertise = cfg->advertise ? strdup(cfg->advertise) : NULL;
	f->state_file = cfg->state_file ? strdup(cfg->state_file) : NULL;
	int r = THOTH_E_NOMEM;
	if (!f->url_base || !f->prefix || !f->host_id || (cfg->advertise && !f->advertise) ||
	    (cfg->state_file && !f->state_file) || (r = fed_http_new(loop, &f->http))) {
		snprintf(why, why_len, "cannot start the etcd client: %s", thoth_strerror(r));
		thothd_federation_free(f);
		return r;
	}
	revoke_previous(f);
	lease_grant(f);
	read_start(f);
	if (cfg->lease_per_registration)
		thoth_loop_add_timer_in(loop, ttl * 1000ull / 3 * MS_NS, MS_NS, items_timer_fired, f, &f->items_timer);
	*out = f;
	return 0;
}

/* What an operator asks after etcd went away or another host died (drill
 * fed45: only the log said it; thothctl and the dashboard nothing). */
int thothd_federation_metrics(const thothd_federation_t *f, char *out, size_t cap)
{
	thothd_federation_stats_t s;
	thothd_federation_stats(f, &s);
	int n = snprintf(out, cap,
		"# HELP thoth_federation_etcd_up 1 while etcd answers this thothd's lease calls, 0 while it "
		"does not.\n"
		"# TYPE thoth_federation_etcd_up gauge\n"
		"thoth_federation_etcd_up %d\n"
		"# HELP thoth_federation_lease_alive 1 while this host holds a live etcd lease.\n"
		"# TYPE thoth_federation_lease_alive gauge\n"
		"thoth_federation_lease_alive %d\n"
		"# HELP thoth_federation_lease_losses_total Host leases found gone (expired while etcd "
		"could not be reached, or revoked).\n"
		"# TYPE thoth_federation_lease_losses_total counter\n"
		"thoth_federation_lease_losses_total %llu\n"
		"# HELP thoth_federation_watching 1 while the watch of other hosts' instances is open.\n"
		"# TYPE thoth_federation_watching gauge\n"
		"thoth_federation_watching %d\n"
		"# HELP thoth_federation_remote_hosts Other hosts with instances in this registry.\n"
		"# TYPE thoth_federation_remote_hosts gauge\n"
		"thoth_federation_remote_hosts %u\n"
		"# HELP thoth_federation_remote_instances Other hosts' instances in this registry.\n"
		"# TYPE thoth_federation_remote_instances gauge\n"
		"thoth_federation_remote_instances %u\n"
		"# HELP thoth_federation_local_instances This host's instances mirrored into etcd.\n"
		"# TYPE thoth_federation_local_instances gauge\n"
		"thoth_federation_local_instances %u\n"
		"# HELP thoth_federation_pending_writes This host's changes not yet written to etcd.\n"
		"# TYPE thoth_federation_pending_writes gauge\n"
		"thoth_federation_pending_writes %u\n"
		"# HELP thoth_federation_request_errors_total Requests to etcd that failed (retried).\n"
		"# TYPE thoth_federation_request_errors_total counter\n"
		"thoth_federation_request_errors_total %llu\n"
		"# HELP thoth_federation_host_log_suppressed_total Log lines of other hosts going or coming "
		"held back, by their host's rate limit or by the cap on all hosts' lines together.\n"
		"# TYPE thoth_federation_host_log_suppressed_total counter\n"
		"thoth_federation_host_log_suppressed_total %llu\n"
		"# HELP thoth_federation_host_log_capped_total Of those, the lines held back by the cap on "
		"all hosts' lines together (100 at once, then 20/s) while their own host's limit had room.\n"
		"# TYPE thoth_federation_host_log_capped_total counter\n"
		"thoth_federation_host_log_capped_total %llu\n",
		s.etcd_answers ? 1 : 0, s.lease_alive ? 1 : 0, (unsigned long long)s.lease_losses,
		s.watching ? 1 : 0, s.hosts, s.remote, s.local, s.pending, (unsigned long long)s.errors,
		(unsigned long long)s.host_log_suppressed, (unsigned long long)s.host_log_capped);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

void thothd_federation_stats(const thothd_federation_t *f, thothd_federation_stats_t *out)
{
	*out = f->stats;
	out->host_log_suppressed = f->host_log_suppressed;
	out->host_log_capped = f->host_log_capped;
	out->ttl_s = f->cfg.ttl_s;
	out->etcd_down_since_ns = f->etcd_down ? f->etcd_down_since_ns : 0;
	fed_http_stats_t hs;
	fed_http_stats(f->http, &hs);
	out->requests += hs.requests;
	out->bytes_sent = hs.bytes_sent;
	out->bytes_received = hs.bytes_received;
	out->wakeups += hs.wakeups;
}

void thothd_federation_free(thothd_federation_t *f)
{
	if (!f)
		return;
	fed_http_free(f->http);
	if (f->lease && !f->cfg.lease_per_registration) {
		/* Leaving on purpose: revoke, so the others drop us now. */
		FILE *fp = NULL;
		if (f->state_file && (fp = fopen(f->state_file, "w")))
			fclose(fp);
		CURL *e = curl_easy_init();
		char *u = url(f, "/v3/lease/revoke"), body[64];
		snprintf(body, sizeof body, "{\"ID\":%" PRIu64 "}", f->lease);
		FILE *null = fopen("/dev/null", "w");
		if (e && u && null) {
			curl_easy_setopt(e, CURLOPT_URL, u);
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 1000L);
			curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(e, CURLOPT_WRITEDATA, null);
			curl_easy_perform(e);
		}
		if (null)
			fclose(null);
		free(u);
		if (e)
			curl_easy_cleanup(e);
	}
	if (f->lease_timer)
		thoth_timer_cancel(f->loop, f->lease_timer);
	if (f->write_timer)
		thoth_timer_cancel(f->loop, f->write_timer);
	if (f->read_timer)
		thoth_timer_cancel(f->loop, f->read_timer);
	if (f->items_timer)
		thoth_timer_cancel(f->loop, f->items_timer);
	for (size_t b = 0; b < BUCKETS; b++) {
		while (f->local[b]) {
			local_item_t *it = f->local[b];
			f->local[b] = it->next;
			item_free(it);
		}
		while (f->remote[b])
			remote_remove(f, &f->remote[b], false);
	}
	while (f->hosts) {
		remote_host_t *h = f->hosts;
		f->hosts = h->next;
		thoth_registry_owner_drop(f->reg, h->owner);
		free(h->id);
		free(h);
	}
	free(f->line);
	free(f->url_base);
	free(f->prefix);
	free(f->host_id);
	free(f->advertise);
	free(f->state_file);
	free(f);
}

static int host_info_cmp(const void *a, const void *b)
{
	return strcmp(((const thothd_fed_host_t *)a)->id, ((const thothd_fed_host_t *)b)->id);
}

size_t thothd_federation_view(void *arg, thothd_fed_view_t *view, thothd_fed_host_t *hosts, size_t max)
{
	const thothd_federation_t *f = arg;
	thothd_federation_stats_t s;
	thothd_federation_stats(f, &s);
	*view = (thothd_fed_view_t){
		.etcd = f->url_base, .host_id = f->host_id, .etcd_up = s.etcd_answers,
		.lease_alive = s.lease_alive, .watching = s.watching,
		.etcd_down_since_ns = s.etcd_down_since_ns, .left_out = s.bad_values, .ttl_s = s.ttl_s,
		.local = s.local, .remote = s.remote, .hosts_total = s.hosts,
	};
	/* The first MAX by id, not the first MAX of the list (newest host
	 * first): with more hosts than MAX, status and the panel showed an
	 * arbitrary subset that changed as hosts came and went.  Kept sorted
	 * while filling: a binary search and a move of at most MAX entries a
	 * host. */
	size_t n = 0;
	for (const remote_host_t *h = f->hosts; h && max; h = h->next) {
		thothd_fed_host_t e = { .id = h->id, .instances = (uint32_t)h->count,
					.last_seen_ns = h->last_seen_ns };
		if (n == max && host_info_cmp(&e, &hosts[n - 1]) >= 0)
			continue;
		size_t lo = 0, hi = n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (host_info_cmp(&hosts[mid], &e) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (n < max)
			n++;
		memmove(&hosts[lo + 1], &hosts[lo], (n - 1 - lo) * sizeof *hosts);
		hosts[lo] = e;
	}
	return n;
}
