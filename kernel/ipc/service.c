/*
 * service.c - a service's registration with thothd (include/thoth/service.h).
 *
 * State machine, all on the caller's loop:
 *
 *   CONNECTING --retry timer--> try_register() --ok--> REGISTERED
 *        ^                          | refused           |  renew timer (TTL/3, slack TTL/6)
 *        |                          v                   |  socket hang-up / transport error
 *        |                       REFUSED                v
 *        +--------- backoff 50 ms .. 2 s, jitter <------+
 *
 * Calls to thothd are blocking with a short timeout (thothd is local and
 * answers from memory); the control socket is also a loop source so that
 * thothd's death is seen the moment the socket hangs up.
 *
 * Tracing (OBS-1): every control connection of a process that has a trace
 * buffer (thoth_trace_init_process) starts with TraceControl.attach, the
 * buffer's memfd attached (SCM_RIGHTS), so thothd can switch tracing on and
 * collect without the process doing anything else.  A registering service
 * does it on each (re)connection, hence again after a thothd restart.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.thoth.h"
#include "thoth/contract.h"
#include "thoth/service.h"
#include "thoth/trace.h"
#include "trace.thoth.h"

enum {
	CALL_TIMEOUT_MS = 1000,
	BACKOFF_MIN_MS = 50,
	BACKOFF_MAX_MS = 2000,
	DEFAULT_TTL_MS = 3000,
};

#define MS_NS 1000000ull

/* ---- runtime dir and control connections ---------------------------------------- */

int thoth_runtime_dir(const char *explicit_dir, char *out, size_t cap)
{
	const char *env = getenv("THOTH_RUNTIME_DIR");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (explicit_dir && *explicit_dir)
		n = snprintf(out, cap, "%s", explicit_dir);
	else if (env && *env)
		n = snprintf(out, cap, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(out, cap, "%s/thoth", xdg);
	else
		n = snprintf(out, cap, "/tmp/thoth-%u", (unsigned)getuid());
	return n < 0 || (size_t)n >= cap ? THOTH_E_NO_SPACE : 0;
}

int thoth_control_socket(const char *explicit_dir, char *out, size_t cap)
{
	char dir[4096];
	int r = thoth_runtime_dir(explicit_dir, dir, sizeof dir);
	if (r)
		return r;
	int n = snprintf(out, cap, "%s/thothd.sock", dir);
	return n < 0 || (size_t)n >= cap ? THOTH_E_NO_SPACE : 0;
}

/*
 * thothd switches our categories on while a session runs and is the only
 * one who switches them off again.  When the last connection that handed it
 * our buffer is gone (thothd crashed, or we hung up), nobody collects: put
 * back the mask the process had before (it chose it; usually all off)
 * instead of tracing into a ring nobody reads.
 */
static unsigned trace_attachments;
static uint64_t trace_own_mask;

static void trace_collector_attached(thoth_control_t *ctl)
{
	if (__atomic_fetch_add(&trace_attachments, 1, __ATOMIC_ACQ_REL) == 0)
		trace_own_mask = __atomic_load_n(thoth_trace_enabled_word, __ATOMIC_RELAXED);
	ctl->trace_attached = true;
}

static void trace_collector_detached(thoth_control_t *ctl)
{
	if (!ctl->trace_attached)
		return;
	ctl->trace_attached = false;
	if (__atomic_sub_fetch(&trace_attachments, 1, __ATOMIC_ACQ_REL) == 0)
		thoth_trace_set_enabled(trace_own_mask);
}

/* Hand our trace buffer (if we have one) to thothd: a oneway message that
 * carries the memfd.  Nothing to wait for; thothd handles it before any
 * later request on this connection. */
static int attach_trace_buffer(thoth_control_t *ctl)
{
	int fd;
	if (thoth_trace_export_fd(&fd) != 0)
		return 0;               /* no buffer: nothing to collect */
	thoth_trace_TraceControl_attach_req_t req = { .pid = (uint32_t)getpid() };
	uint64_t buf[16];           /* 8-aligned; an attach message is 48 bytes */
	size_t len;
	int r = thoth_method_encode(&thoth_trace_TraceControl_attach_info, false, &req, NULL, buf,
				    sizeof buf, &len);
	if (!r)
		r = thoth_stream_send_fd(ctl->sock.fd, buf, len, fd, ctl->sock.reader.service_id);
	if (!r)
		trace_collector_attached(ctl);
	return r;
}

int thoth_control_connect(thoth_control_t *ctl, const char *runtime_dir, int timeout_ms)
{
	memset(ctl, 0, sizeof *ctl);
	ctl->sock.fd = -1;
	int r = thoth_control_socket(runtime_dir, ctl->path, sizeof ctl->path);
	if (r)
		return THOTH_E_INVAL;
	r = thoth_sock_client_connect(&ctl->sock, ctl->path, timeout_ms);
	if (r)
		return r;
	thoth_client_init(&ctl->client, &thoth_sock_transport, &ctl->sock,
			  THOTH_REGISTRY_FEATURES_ALL);
	r = attach_trace_buffer(ctl);
	if (r) {
		thoth_control_close(ctl);
		return r;
	}
	return 0;
}

void thoth_control_close(thoth_control_t *ctl)
{
	trace_collector_detached(ctl);
	if (ctl->client.ops)
		thoth_client_release(&ctl->client);
	thoth_sock_client_close(&ctl->sock);
}

/* ---- the service ----------------------------------------------------------------- */

struct thoth_service {
	thoth_loop_t *loop;
	thoth_service_config_t cfg;     /* strings below are our copies */
	char *runtime_dir, *name, *version, *endpoint;
	thoth_common_InterfaceClaim_t *claims;
	thoth_service_state_t state;
	bool connected;
	thoth_control_t ctl;
	thoth_source_t *source;
	thoth_timer_t *timer;           /* retry while CONNECTING, renew while REGISTERED */
	uint64_t lease;
	uint32_t backoff_ms;
	uint32_t registrations;
	uint64_t rng;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static uint32_t jitter(thoth_service_t *s, uint32_t ms)
{
	/* xorshift64: good enough to keep restarted services from stampeding */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return ms / 2 + (uint32_t)(s->rng % (ms / 2 + 1));
}

static void set_state(thoth_service_t *s, thoth_service_state_t state, int err, const char *why)
{
	s->state = state;
	if (s->cfg.on_state)
		s->cfg.on_state(s->cfg.arg, state, err, why ? why : "");
}

static void disconnect(thoth_service_t *s)
{
	if (s->source)
		thoth_loop_remove_fd(s->loop, s->source);
	s->source = NULL;
	if (s->connected)
		thoth_control_close(&s->ctl);
	s->connected = false;
	s->lease = 0;
}

static void timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static void arm(thoth_service_t *s, uint64_t delay_ns, uint64_t slack_ns)
{
	uint64_t at = thoth_clock_now() + delay_ns;
	if (s->timer)
		thoth_timer_rearm(s->loop, s->timer, at, slack_ns);
	else
		thoth_loop_add_timer(s->loop, at, slack_ns, timer_fired, s, &s->timer);
}

static void schedule_retry(thoth_service_t *s)
{
	uint32_t ms = jitter(s, s->backoff_ms);
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
	arm(s, (uint64_t)ms * MS_NS, (uint64_t)ms * MS_NS / 10);
}

static void schedule_renew(thoth_service_t *s)
{
	uint64_t ttl = (uint64_t)s->cfg.ttl_ms * MS_NS;
	arm(s, ttl / 3, ttl / 6);
}

static void lost(thoth_service_t *s, int err, const char *why)
{
	disconnect(s);
	s->backoff_ms = BACKOFF_MIN_MS;
	set_state(s, THOTH_SERVICE_CONNECTING, err, why);
	schedule_retry(s);
}

/* The control socket is readable: thothd hung up (or sent something we did
 * not ask for, which we drop). */
static void control_event(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			  void *arg)
{
	thoth_service_t *s = arg;
	int r = thoth_stream_fill(&s->ctl.sock.reader, fd);
	if (r) {
		lost(s, r, "thothd closed the control connection");
		return;
	}
	const uint8_t *msg;
	size_t len;
	while ((r = thoth_stream_next(&s->ctl.sock.reader, &msg, &len)) == 1)
		thoth_stream_consume(&s->ctl.sock.reader);
	if (r < 0)
		lost(s, r, "thothd sent a malformed message");
}

/* Register over the current connection.  0, or <0 transport, or >0 refused. */
static int send_register(thoth_service_t *s, char *why, size_t why_len)
{
	thoth_registry_Registry_register_req_t req = {
		.reg = {
			.name = thoth_str(s->name),
			.version = thoth_str(s->version),
			.endpoint = {
				.addr = thoth_str(s->endpoint),
				.numa_node = s->cfg.numa_node,
				.locality = THOTH_COMMON_LOCALITY_HOST,
				.instance_id = s->cfg.instance_id,
				.pid = (uint32_t)getpid(),
			},
			.features = s->cfg.features,
			.ttl_ms = s->cfg.ttl_ms,
			.claims = { s->claims, (uint32_t)s->cfg.n_interfaces },
		},
	};
	thoth_registry_Registry_register_resp_t resp;
	int r = thoth_registry_Registry_register(&s->ctl.client, &req, &resp, NULL);
	if (r == THOTH_E_REMOTE && s->ctl.client.remote_code) {
		snprintf(why, why_len, "%s", s->ctl.client.remote_message);
		return (int)s->ctl.client.remote_code;
	}
	if (r) {
		snprintf(why, why_len, "%s", thoth_strerror(r));
		return r < 0 ? r : THOTH_E_PROTOCOL;
	}
	s->lease = resp.lease;
	s->registrations++;
	return 0;
}

/* Connect (if needed) and register.  0, <0 (try again later), >0 refused. */
static int try_register(thoth_service_t *s, char *why, size_t why_len)
{
	if (!s->connected) {
		int r = thoth_control_connect(&s->ctl, s->runtime_dir, CALL_TIMEOUT_MS);
		if (r) {
			snprintf(why, why_len, "%s", thoth_strerror(r));
			return r;
		}
		s->connected = true;
		r = thoth_loop_add_fd(s->loop, s->ctl.sock.fd, THOTH_LOOP_READ, control_event, s,
				      &s->source);
		if (r) {
			disconnect(s);
			return r;
		}
	}
	int r = send_register(s, why, why_len);
	if (r < 0)
		disconnect(s);
	return r;
}

static void attempt(thoth_service_t *s)
{
	char why[160] = "";
	int r = try_register(s, why, sizeof why);
	if (r > 0) {
		disconnect(s);
		set_state(s, THOTH_SERVICE_REFUSED, THOTH_E_REMOTE, why);
		return;
	}
	if (r < 0) {
		schedule_retry(s);
		return;
	}
	s->backoff_ms = BACKOFF_MIN_MS;
	set_state(s, THOTH_SERVICE_REGISTERED, 0, NULL);
	schedule_renew(s);
}

static void renew(thoth_service_t *s)
{
	thoth_registry_Registry_renew_req_t req = { .lease = s->lease };
	thoth_registry_Registry_renew_resp_t resp;
	int r = thoth_registry_Registry_renew(&s->ctl.client, &req, &resp, NULL);
	if (!r) {
		schedule_renew(s);
		return;
	}
	if (r == THOTH_E_REMOTE && s->ctl.client.remote_code == THOTH_REGISTRY_ERR_EXPIRED) {
		/* We were too late (stopped, overloaded): same connection, new lease. */
		s->lease = 0;
		set_state(s, THOTH_SERVICE_CONNECTING, THOTH_E_TIMEDOUT, "lease expired");
		attempt(s);
		return;
	}
	lost(s, r, thoth_strerror(r));
}

static void timer_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_service_t *s = arg;
	if (s->state == THOTH_SERVICE_REGISTERED)
		renew(s);
	else if (s->state == THOTH_SERVICE_CONNECTING)
		attempt(s);
}

static uint16_t current_numa_node(void)
{
	unsigned cpu = 0, node = 0;
	if (getcpu(&cpu, &node) != 0)
		return 0;
	return (uint16_t)node;
}

static void service_free(thoth_service_t *s)
{
	if (!s)
		return;
	disconnect(s);
	if (s->timer)
		thoth_timer_cancel(s->loop, s->timer);
	free(s->runtime_dir);
	free(s->name);
	free(s->version);
	free(s->endpoint);
	free(s->claims);
	free(s);
}

int thoth_service_register(thoth_loop_t *loop, const thoth_service_config_t *cfg,
			   thoth_service_t **out, char *why, size_t why_len)
{
	char scratch[8];
	if (!why || !why_len) {
		why = scratch;
		why_len = sizeof scratch;
	}
	why[0] = 0;
	if (!loop || !cfg || !cfg->name || !cfg->version || !cfg->endpoint)
		return THOTH_E_INVAL;
	/* IPC-5: the claims must hold against our own compiled schemas first. */
	for (size_t i = 0; i < cfg->n_interfaces; i++) {
		const thoth_interface_info_t *iface = cfg->interfaces[i];
		thoth_contract_claim_t claim;
		thoth_contract_claim_init(&claim, iface, cfg->features & iface->features);
		int r = thoth_contract_verify(iface, &claim, why, why_len);
		if (!r)
			r = thoth_contract_selftest(iface, why, why_len);
		if (r)
			return r;
	}
	thoth_service_t *s = calloc(1, sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	s->loop = loop;
	s->cfg = *cfg;
	s->runtime_dir = dup_or_null(cfg->runtime_dir);
	s->name = strdup(cfg->name);
	s->version = strdup(cfg->version);
	s->endpoint = strdup(cfg->endpoint);
	s->claims = calloc(cfg->n_interfaces ? cfg->n_interfaces : 1, sizeof *s->claims);
	if ((cfg->runtime_dir && !s->runtime_dir) || !s->name || !s->version || !s->endpoint ||
	    !s->claims) {
		service_free(s);
		return THOTH_E_NOMEM;
	}
	for (size_t i = 0; i < cfg->n_interfaces; i++) {
		const thoth_interface_info_t *iface = cfg->interfaces[i];
		s->claims[i] = (thoth_common_InterfaceClaim_t){
			.package = thoth_str(iface->package),
			.interface = thoth_str(iface->name),
			.interface_id = iface->id,
			.major = iface->major,
			.minor = iface->minor,
			.schema_hash = iface->schema_hash,
			.features = cfg->features & iface->features,
		};
	}
	if (!s->cfg.ttl_ms)
		s->cfg.ttl_ms = DEFAULT_TTL_MS;
	if (s->cfg.numa_node == THOTH_SERVICE_NUMA_AUTO)
		s->cfg.numa_node = current_numa_node();
	s->rng = thoth_clock_now() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
	if (!s->cfg.instance_id)
		s->cfg.instance_id = ((uint64_t)getpid() << 32) ^ (thoth_clock_now() & 0xffffffffu);
	s->backoff_ms = BACKOFF_MIN_MS;
	s->state = THOTH_SERVICE_CONNECTING;

	int r = try_register(s, why, why_len);
	if (r > 0) {
		service_free(s);
		return THOTH_E_REMOTE;  /* refused: WHY says why */
	}
	if (r < 0) {
		schedule_retry(s);      /* thothd not (yet) there: keep trying */
	} else {
		s->state = THOTH_SERVICE_REGISTERED;
		schedule_renew(s);
	}
	*out = s;
	return 0;
}

void thoth_service_withdraw(thoth_service_t *s)
{
	if (!s)
		return;
	if (s->connected && s->lease) {
		thoth_registry_Registry_withdraw_req_t req = { .lease = s->lease };
		thoth_registry_Registry_withdraw_resp_t resp;
		(void)thoth_registry_Registry_withdraw(&s->ctl.client, &req, &resp, NULL);
	}
	service_free(s);
}

thoth_service_state_t thoth_service_state(const thoth_service_t *s)
{
	return s->state;
}

uint64_t thoth_service_lease(const thoth_service_t *s)
{
	return s->state == THOTH_SERVICE_REGISTERED ? s->lease : 0;
}

uint32_t thoth_service_registrations(const thoth_service_t *s)
{
	return s->registrations;
}
