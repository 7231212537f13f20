/*
 * thoth/service.h - a service process's side of the registry (IPC-4).
 *
 * thoth_service_register() makes a service findable: it checks the
 * service's interface claims against the schemas it was compiled with
 * (IPC-5, thoth_contract_verify: a broken claim never reaches thothd),
 * connects to thothd's control socket and registers, all on the caller's
 * thoth_loop and never blocking it (non-blocking connect, asynchronous
 * register: a hung or stopped thothd cannot stall the service's clients):
 *   - before anything is sent, the runtime dir must be ours (0700, not a
 *     symlink) and the process at thothd.sock must run as our uid;
 *   - the registration is held by the control connection: with ttl_ms 0
 *     (the default) there are no lease renewals and an idle registered
 *     service never wakes up; thothd drops it when the connection closes
 *     (the process died, or withdrew);
 *   - it notices at once when thothd goes away (the socket hangs up),
 *     watches the runtime dir (inotify) for thothd.sock to reappear, with a
 *     backoff timer (50 ms doubling to 2 s, 30 s with the watch) as a safety
 *     net armed only while disconnected, and registers again under a new
 *     lease: measured within ~10-30 ms of thothd listening again;
 *   - an explicit ttl_ms asks for a watchdog lease instead, renewed every
 *     TTL/3 (a service that hangs with its connection open drops out).
 * The registration ends when the process dies (thothd sees the socket
 * close) or on thoth_service_withdraw().
 *
 * Also here: the runtime-dir rule every thoth process shares, and a small
 * blocking registry client for tools (thothctl) and services that resolve.
 */
#ifndef THOTH_SERVICE_H
#define THOTH_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"
#include "thoth/rpc.h"
#include "thoth/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- where thothd is --------------------------------------------------------- */

/* EXPLICIT if non-empty, else $THOTH_RUNTIME_DIR, else $XDG_RUNTIME_DIR/thoth,
 * else /tmp/thoth-$UID.  0 or THOTH_E_NO_SPACE. */
int thoth_runtime_dir(const char *explicit_dir, char *out, size_t cap);

/* RUNTIME_DIR/thothd.sock for the runtime dir chosen as above. */
int thoth_control_socket(const char *explicit_dir, char *out, size_t cap);

/* ---- a blocking control connection (thothctl, resolving clients) ------------- */

typedef struct thoth_control {
	thoth_sock_client_t sock;
	thoth_client_t client;          /* pass to generated Registry/Daemon stubs */
	char path[108];
	char why[256];                  /* why the last connect failed ("" if it did not) */
	bool trace_attached;            /* handed thothd our trace buffer */
} thoth_control_t;

/*
 * Connect to thothd.  Before anything is sent the runtime dir must be a
 * directory owned by us with mode 0700 (not a symlink) and the process
 * listening at its thothd.sock must run as our uid (SO_PEERCRED): a
 * squatter gets nothing.  THOTH_E_NOT_RUNNING when no thothd listens
 * there, THOTH_E_PERM when a check fails (ctl->why says which),
 * THOTH_E_TIMEDOUT when thothd does not accept within TIMEOUT_MS.
 */
int thoth_control_connect(thoth_control_t *ctl, const char *runtime_dir, int timeout_ms);
void thoth_control_close(thoth_control_t *ctl);

/* ---- registering a service ----------------------------------------------------- */

#define THOTH_SERVICE_NUMA_AUTO 0xffffu  /* the node of the CPU we run on */

typedef enum thoth_service_state {
	THOTH_SERVICE_CONNECTING = 0,   /* no thothd yet, or it went away: retrying */
	THOTH_SERVICE_REGISTERED = 1,   /* holds a live lease */
	THOTH_SERVICE_REFUSED = 2,      /* thothd refused the registration: no retry */
} thoth_service_state_t;

typedef void (*thoth_service_state_fn)(void *arg, thoth_service_state_t state, int err,
				       const char *reason);

typedef struct thoth_service_config {
	const char *runtime_dir;        /* NULL: the default rule */
	const char *name;               /* "echo" */
	const char *version;            /* "1.0.0" */
	const char *endpoint;           /* where clients reach it (a socket path) */
	uint16_t numa_node;             /* or THOTH_SERVICE_NUMA_AUTO */
	uint64_t instance_id;           /* 0: derived from pid and time */
	uint64_t features;
	uint32_t ttl_ms;                /* 0: held by the connection (no renewals) */
	const thoth_interface_info_t *const *interfaces;  /* what it implements */
	size_t n_interfaces;
	thoth_service_state_fn on_state;  /* optional */
	void *arg;
} thoth_service_config_t;

typedef struct thoth_service thoth_service_t;

/*
 * Verify the claims, then start registering: the request is sent at once
 * if thothd is there, the answer (REGISTERED, or REFUSED with thothd's
 * reason) arrives on the loop through on_state; without thothd it keeps
 * trying in the background.  Returns 0, THOTH_E_CONTRACT (a claim fails
 * its own schema, reason in WHY), THOTH_E_INVAL, THOTH_E_NOMEM.  Strings in
 * CFG are copied.
 */
int thoth_service_register(thoth_loop_t *loop, const thoth_service_config_t *cfg,
			   thoth_service_t **out, char *why, size_t why_len);

/* Withdraw the registration (if thothd is reachable) and free. */
void thoth_service_withdraw(thoth_service_t *svc);

/*
 * Report this instance's load to thothd (SCALE-3, the ORCA idea): UTILIZATION
 * is CPU busy time over wall time (1.0 = one CPU busy; 0..64), QPS the
 * requests it served per second.  thothd pushes it to every watcher of the
 * name, where instance pools weight their choice by it (thoth/pool.h).
 * Call it every 100 ms or so while serving; a report equal to the last one
 * costs thothd nothing.  0, THOTH_E_INVAL (NaN, negative, beyond the
 * range), THOTH_E_AGAIN (not registered now), or a send error.
 */
int thoth_service_report_load(thoth_service_t *svc, double utilization, double qps);

thoth_service_state_t thoth_service_state(const thoth_service_t *svc);
uint64_t thoth_service_lease(const thoth_service_t *svc);     /* 0 unless registered */
uint32_t thoth_service_registrations(const thoth_service_t *svc); /* times registered */

/* ---- finding a service: a cache kept true in the background ------------------ */

/*
 * A resolver keeps, on the caller's loop, the live instances of one service
 * name: thoth_resolver_pick() reads the cache and never talks to thothd,
 * so a client keeps calling (over channels it already has, or new ones to
 * cached endpoints) while thothd restarts.  Behind it one control
 * connection watches the name (Registry.watch + list) and applies thothd's
 * pushes as services come and go.
 *
 * How stale an entry can be: while thothd is connected, as old as its last
 * push (a service that dies is dropped the moment thothd sees its
 * connection close); while thothd is away, as old as thothd's departure.
 * After thothd returns, entries it does not list again are kept for
 * grace_ms (services re-register within a second) and picked only when
 * nothing confirmed is there, then dropped.  A caller whose channel to an
 * entry fails calls thoth_resolver_forget(): the entry is dropped at once
 * and the list is asked for again.  Nothing is periodic: a connected idle
 * resolver arms no timer.
 */
typedef struct thoth_resolver thoth_resolver_t;

/* Where an instance runs, seen from the resolving process (issue 19). */
#define THOTH_LOCALITY_NODE   0     /* this host, the caller's NUMA node */
#define THOTH_LOCALITY_HOST   1     /* this host, another NUMA node */
#define THOTH_LOCALITY_REMOTE 2     /* another host: addr is "tcp:HOST:PORT" (thoth/tcp.h) */

typedef struct thoth_resolved {
	char addr[108];                 /* the endpoint: a socket path, or "tcp:HOST:PORT" */
	uint32_t pid;                   /* on its own host */
	uint16_t numa_node;
	uint64_t instance_id;
	bool confirmed;                 /* announced by the thothd connected now */
	uint8_t locality;               /* THOTH_LOCALITY_* */
	char host[64];                  /* REMOTE: the HOST of addr; "" for this host */
} thoth_resolved_t;

typedef struct thoth_resolver_config {
	const char *runtime_dir;        /* NULL: the default rule */
	const char *name;               /* "echo" (exact name) */
	const char *min_version;        /* "1.0.0": same major, at least this; NULL/"": any */
	uint32_t grace_ms;              /* 0: 2000 */
	void (*on_change)(void *arg);   /* optional: the cache changed */
	void *arg;
} thoth_resolver_config_t;

/* 0, THOTH_E_INVAL (no name, bad min_version, runtime dir too long),
 * THOTH_E_NOMEM.  Connects in the background. */
int thoth_resolver_new(thoth_loop_t *loop, const thoth_resolver_config_t *cfg,
		       thoth_resolver_t **out);
void thoth_resolver_free(thoth_resolver_t *r);

/* The next instance to call: confirmed before unconfirmed, this host
 * before other hosts (federation: docs/FEDERATION.md), same NUMA node
 * first, round robin among equals; another host's instance whose interface
 * claims conflict with one of this host's instances of the name (another
 * major in a rolling upgrade) last of all, as thothd's resolve ranks it.
 * THOTH_E_NOT_FOUND when none is known. */
int thoth_resolver_pick(thoth_resolver_t *r, thoth_resolved_t *out);

/* ADDR failed for us (its channel died or refused): drop it now. */
void thoth_resolver_forget(thoth_resolver_t *r, const char *addr);

/* SCALE-3: what an instance last reported with thoth_service_report_load. */
typedef struct thoth_resolved_load {
	uint32_t utilization_permille;  /* 0: none reported */
	uint32_t qps;
	uint32_t reports;               /* LOAD pushes received (changes when it reports) */
} thoth_resolved_load_t;

/* Every cached instance a pool may use (thoth/pool.h): fills OUT[i] and,
 * if LOAD is not NULL, LOAD[i] for the first CAP of them, and returns how
 * many there are (call again with more room if that is > CAP).  Another
 * host's instance whose claims conflict with one of this host's instances
 * of the name is left out (pick ranks it last: a pool has no "last", and
 * its TCP hello would be refused).  Reads the cache only. */
size_t thoth_resolver_snapshot(const thoth_resolver_t *r, thoth_resolved_t *out,
			       thoth_resolved_load_t *load, size_t cap);

/*
 * PM-2: attach a latency bound to this resolve ("answer within LATENCY_US";
 * docs/PM.md "QoS attached to a resolve").  thothd holds it for as long as
 * this resolver's connection lives (it is sent again after a reconnect):
 * the CPU latency request stays at or below it, and the power elements of
 * the processes serving the name stay at levels that wake within it.  It
 * ends with thoth_resolver_free or the process (kill -9 included), or
 * with a new call (0: none).  0, or THOTH_E_INVAL (more than 10 s).
 * Whether thothd holds it: thoth_resolver_qos.
 */
int thoth_resolver_set_qos(thoth_resolver_t *r, uint32_t latency_us);

#define THOTH_RESOLVER_QOS_NONE    0    /* no bound asked */
#define THOTH_RESOLVER_QOS_PENDING 1    /* asked; thothd has not answered on this connection */
#define THOTH_RESOLVER_QOS_HELD    2    /* thothd holds it */
#define THOTH_RESOLVER_QOS_REFUSED 3    /* thothd refused it: why */
typedef struct thoth_resolver_qos {
	int state;                      /* THOTH_RESOLVER_QOS_* */
	uint32_t qos_us;                /* the bound asked */
	uint32_t elements;              /* power elements it covered when granted */
	uint32_t grants;                /* times granted (once per connection) */
	char why[160];                  /* REFUSED: thothd's reason, naming the field */
} thoth_resolver_qos_t;
void thoth_resolver_qos(const thoth_resolver_t *r, thoth_resolver_qos_t *out);

/* Every instance cached, those thoth_resolver_snapshot leaves out (claims
 * that conflict) included: thothd's view, not what a snapshot returns. */
size_t thoth_resolver_count(const thoth_resolver_t *r);
/* Connected to thothd and its list has arrived. */
bool thoth_resolver_connected(const thoth_resolver_t *r);

#ifdef __cplusplus
}
#endif
#endif
