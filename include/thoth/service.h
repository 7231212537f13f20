/*
 * thoth/service.h - a service process's side of the registry (IPC-4).
 *
 * thoth_service_register() makes a service findable: it checks the
 * service's interface claims against the schemas it was compiled with
 * (IPC-5, thoth_contract_verify: a broken claim never reaches thothd),
 * connects to thothd's control socket, registers, and then, on the
 * caller's thoth_loop:
 *   - keeps the lease alive with a renew every TTL/3 (a timer with slack,
 *     re-armed from its own callback: no periodic tick);
 *   - notices at once when thothd goes away (the control socket hangs up)
 *     and reconnects with exponential backoff (50 ms doubling to 2 s, with
 *     jitter), registering again under a new lease when thothd is back.
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
	bool trace_attached;            /* handed thothd our trace buffer */
} thoth_control_t;

/* Connect to thothd.  THOTH_E_NOT_RUNNING when no thothd listens there. */
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
	uint32_t ttl_ms;                /* 0: 3000 */
	const thoth_interface_info_t *const *interfaces;  /* what it implements */
	size_t n_interfaces;
	thoth_service_state_fn on_state;  /* optional */
	void *arg;
} thoth_service_config_t;

typedef struct thoth_service thoth_service_t;

/*
 * Verify the claims, then register (at once if thothd is running; otherwise
 * retry in the background).  Returns 0, THOTH_E_CONTRACT (a claim fails
 * its own schema, reason in WHY), THOTH_E_REMOTE (thothd refused: reason in
 * WHY), THOTH_E_INVAL, THOTH_E_NOMEM.  Strings in CFG are copied.
 */
int thoth_service_register(thoth_loop_t *loop, const thoth_service_config_t *cfg,
			   thoth_service_t **out, char *why, size_t why_len);

/* Withdraw the registration (if thothd is reachable) and free. */
void thoth_service_withdraw(thoth_service_t *svc);

thoth_service_state_t thoth_service_state(const thoth_service_t *svc);
uint64_t thoth_service_lease(const thoth_service_t *svc);     /* 0 unless registered */
uint32_t thoth_service_registrations(const thoth_service_t *svc); /* times registered */

#ifdef __cplusplus
}
#endif
#endif
