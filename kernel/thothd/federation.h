/*
 * federation.h - thothd's registry spanning hosts through etcd (issue 19,
 * docs/FEDERATION.md).  Off unless thothd runs with --etcd.
 *
 * Out: every local registration whose endpoint is a "tcp:" address (one
 * other hosts can reach) is mirrored as one key under
 * PREFIX/inst/HOST/LEASE, all attached to ONE etcd lease per host, kept
 * alive every TTL/3 (never a lease per service).  When the host dies its
 * lease ends and etcd deletes every key of it at once.
 * In: a range read of PREFIX/inst/ at revision R, then a watch from R + 1;
 * other hosts' instances enter the registry as REMOTE through one
 * federated owner per host.  A broken watch is re-opened from the last
 * revision applied (no gap, and re-applied events are idempotent); a
 * compacted one falls back to a full read plus a new watch.
 *
 * Everything runs on thothd's loop (federation_http.c: curl's multi
 * interface), never blocking it.
 */
#ifndef THOTHD_FEDERATION_H
#define THOTHD_FEDERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fed_view.h"
#include "registry.h"
#include "thoth/loop.h"

/* ---- HTTP on the loop (federation_http.c) ---- */

typedef struct fed_http fed_http_t;
typedef struct fed_req fed_req_t;

/* A finished request: ERR 0 (then STATUS is the HTTP status) or a
 * THOTH_E_* code; BODY is the response (NUL-terminated; "" for streams). */
typedef void (*fed_done_fn)(void *arg, int err, long status, const char *body, size_t len);
/* Bytes of a streaming response as they come; non-zero ends the transfer
 * (the done callback gets that code). */
typedef int (*fed_chunk_fn)(void *arg, const char *data, size_t len);

typedef struct fed_http_stats {
	uint64_t requests;              /* POSTs started */
	uint64_t bytes_sent;            /* request lines, headers and bodies */
	uint64_t bytes_received;
	uint64_t wakeups;               /* loop callbacks for curl's sockets and timer */
} fed_http_stats_t;

int fed_http_new(thoth_loop_t *loop, fed_http_t **out);
void fed_http_free(fed_http_t *h);
/* POST BODY (JSON) to URL.  TIMEOUT_MS 0: none (a stream).  CHUNK NULL:
 * the whole response is handed to DONE.  Never from a CHUNK callback. */
int fed_http_post(fed_http_t *h, const char *url, const char *body, long timeout_ms, fed_chunk_fn chunk,
		  fed_done_fn done, void *arg, fed_req_t **out);
/* Abort R without calling its DONE (not from R's own callbacks). */
void fed_http_cancel(fed_http_t *h, fed_req_t *r);
void fed_http_stats(const fed_http_t *h, fed_http_stats_t *out);

/* ---- the federation (federation.c) ---- */

typedef struct thothd_federation thothd_federation_t;

typedef struct thothd_federation_config {
	const char *etcd_url;           /* "http://127.0.0.1:2379" */
	const char *host_id;            /* this host's name: 1..63 of [A-Za-z0-9_.-] */
	bool host_id_is_host_name;      /* host_id is gethostname's (no --host-id given) */
	const char *advertise;          /* "tcp:HOST:PORT" where this host is reached, or NULL */
	uint32_t ttl_s;                 /* the host lease: 0 = 10; 2..3600 */
	const char *prefix;             /* key prefix: NULL = "/thoth/v1/" */
	const char *state_file;         /* remembers our lease across restarts; NULL: none */
	uint32_t uid;                   /* owner uid of remote instances (ours) */
	/* Called after remote instances were added or removed (thothd reaps
	 * the clients its watch pushes may have doomed). */
	void (*after_change)(void *arg);
	void *arg;
	/* Benchmark only: the design the issue rules out, one lease per
	 * registration each renewed at TTL/3, to measure its traffic. */
	bool lease_per_registration;
} thothd_federation_config_t;

typedef struct thothd_federation_stats {
	uint64_t requests, bytes_sent, bytes_received;  /* everything we sent to etcd */
	uint64_t keepalives;            /* lease renewals sent */
	uint64_t grants, puts, deletes, ranges, watches;
	uint64_t watch_events;          /* events applied from the watch */
	uint64_t resyncs;               /* full reads after a compacted watch */
	uint64_t errors;                /* failed requests (retried) */
	uint64_t bad_values;            /* other hosts' keys we could not use */
	uint64_t wakeups;               /* loop callbacks the federation caused */
	uint64_t revision;              /* the last etcd revision applied */
	uint32_t local;                 /* local registrations mirrored */
	uint32_t pending;               /* ... not yet written to etcd */
	uint32_t remote;                /* other hosts' instances in the registry */
	uint32_t hosts;                 /* other hosts with instances here */
	uint32_t twins;                 /* other thothds seen writing under our host id */
	uint64_t lease_losses;          /* host leases found gone (expired, revoked) */
	bool etcd_answers;              /* the last lease call was answered */
	bool lease_alive;               /* we hold a live host lease */
	bool watching;                  /* the watch stream is open */
	uint32_t ttl_s;                 /* the host lease's TTL */
	uint64_t etcd_down_since_ns;    /* CLOCK_MONOTONIC since etcd stopped answering; 0: it answers */
	uint64_t host_log_suppressed;   /* host going/coming lines held back by their limit or the cap */
	uint64_t host_log_capped;       /* of those, by the cap on all hosts' lines together */
} thothd_federation_stats_t;


/* The options alone (URL form, --host-id when given, --advertise, the TTL):
 * 0, or THOTH_E_INVAL with WHY naming the option.  main() checks them with
 * the command line, so a bad one exits 2 before thothd serves anything;
 * thothd_federation_new() checks them again. */
int thothd_federation_config_check(const thothd_federation_config_t *cfg, char *why, size_t why_len);
int thothd_federation_new(thoth_loop_t *loop, thoth_registry_t *reg, const thothd_federation_config_t *cfg,
			  thothd_federation_t **out, char *why, size_t why_len);
/* Stop: the host lease is revoked (our keys vanish at once), every remote
 * instance leaves the registry. */
void thothd_federation_free(thothd_federation_t *f);
/* The registry's on_change: local changes to mirror. */
void thothd_federation_on_change(thothd_federation_t *f, int kind, const thoth_registry_Instance_t *inst);
void thothd_federation_stats(const thothd_federation_t *f, thothd_federation_stats_t *out);
/* The federation's state as Prometheus text for /metrics (thothd_t's
 * metrics_hook): the number of bytes written to OUT, or -1 if CAP is too
 * small. */
int thothd_federation_metrics(const thothd_federation_t *f, char *out, size_t cap);
/* SCALE-3 (Daemon.status, the dashboard: thothd_t's federation_view): a
 * thothd_fed_view_fn, ARG the federation. */
size_t thothd_federation_view(void *arg, thothd_fed_view_t *view, thothd_fed_host_t *hosts, size_t max);

#endif
