/*
 * service.c - a service's registration with thothd (include/thoth/service.h),
 * and the blocking control connection for tools.
 *
 * A registering service talks to thothd through a control link
 * (control_link.h): non-blocking connect after the runtime-dir and
 * peer-uid checks, asynchronous register, everything on the caller's loop
 * and nothing on it ever waits for thothd.
 *
 *   CONNECTING --link up: register sent--> (answer) --ok--> REGISTERED
 *        ^                                    | refused         |
 *        |                                    v                 | hang-up
 *        +-- link retries: inotify on the  REFUSED             |
 *            runtime dir + backoff timer <---------------------+
 *
 * Liveness of a local registration is its control connection: thothd
 * drops the registration when the connection closes, and the service sees
 * thothd go the moment the socket hangs up.  So with ttl_ms 0 (the
 * default) nothing is periodic: a registered idle service arms no timer
 * and never wakes up.  An explicit ttl_ms asks for a watchdog lease
 * instead: renewed every TTL/3 (for services that want to drop out when
 * they hang while their connection stays open).
 *
 * Tracing (OBS-1): the link hands the process's trace buffer to thothd
 * (TraceControl.attach) on each connection, after the checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.thoth.h"
#include "registry.thoth.h"
#include "thoth/contract.h"
#include "thoth/service.h"
#include "thoth/trace.h"
#include "trace.thoth.h"
#include "control_link.h"
#include "log_internal.h"
#include "timerpage.h"
#include "unixsock.h"
#include "why.h"

enum {
	ANSWER_TIMEOUT_MS = 2000,       /* a thothd that does not answer is dropped */
};

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
 * our buffer is gone (thothd crashed or dropped us), nobody collects: put
 * back the mask the process had before (it chose it; usually all off)
 * instead of tracing into a ring nobody reads.
 */
static unsigned trace_attachments;
static uint64_t trace_own_mask;

void thoth__trace_collector_attached(void)
{
	if (__atomic_fetch_add(&trace_attachments, 1, __ATOMIC_ACQ_REL) == 0)
		trace_own_mask = __atomic_load_n(thoth_trace_enabled_word, __ATOMIC_RELAXED);
}

void thoth__trace_collector_detached(void)
{
	if (__atomic_sub_fetch(&trace_attachments, 1, __ATOMIC_ACQ_REL) == 0)
		thoth_trace_set_enabled(trace_own_mask);
}

/* We hang up on purpose (thoth_control_close): thothd keeps the buffer it
 * was handed and goes on collecting it until its session ends, when it
 * switches our categories off itself; so the mask stays as thothd set it.
 * Only a connection that thothd drops (control_link.c) puts the mask back. */
static void trace_collector_released(thoth_control_t *ctl)
{
	if (!ctl->trace_attached)
		return;
	ctl->trace_attached = false;
	__atomic_sub_fetch(&trace_attachments, 1, __ATOMIC_ACQ_REL);
}

/* Hand our trace buffer (if we have one) to thothd on SOCK: a oneway
 * message that carries the memfd.  Nothing to wait for; thothd handles it
 * before any later request on this connection.  *SENT: whether it went
 * (and counts as an attachment until the connection ends). */
int thoth__trace_buffer_hand_over(int sock, uint32_t service_id, bool *sent)
{
	*sent = false;
	int fd;
	if (thoth_trace_export_fd(&fd) != 0)
		return 0;               /* no buffer: nothing to collect */
	thoth_trace_TraceControl_attach_req_t req = { .pid = (uint32_t)getpid() };
	uint64_t buf[16];           /* 8-aligned; an attach message is 48 bytes */
	size_t len;
	int r = thoth_method_encode(&thoth_trace_TraceControl_attach_info, false, &req, NULL, buf,
				    sizeof buf, &len);
	if (!r)
		r = thoth_stream_send_fd(sock, buf, len, fd, service_id);
	if (!r) {
		thoth__trace_collector_attached();
		*sent = true;
	}
	return r;
}

static int attach_trace_buffer(thoth_control_t *ctl)
{
	bool sent;
	int r = thoth__trace_buffer_hand_over(ctl->sock.fd, ctl->sock.reader.service_id, &sent);
	ctl->trace_attached = sent;
	return r;
}

/* Ask thothd for its window page (SCHED-3, timerpage.h) on CTL's fresh
 * connection and adopt it: one round trip, before any other request, so
 * nothing else can be in the reader.  Without it (an older thothd, no
 * answer in time, a descriptor that fails the checks) loops keep the
 * per-boot grid, so a failure is not the connection's - unless thothd's
 * answer was garbage, which later calls would trip on anyway. */
static int timerpage_fetch(thoth_control_t *ctl, int timeout_ms)
{
	/* The runtime dir (checked by the connect): where the doorbells live. */
	char dir[sizeof ctl->path];
	const char *slash = strrchr(ctl->path, '/');
	if (!slash || slash == ctl->path)
		return 0;
	memcpy(dir, ctl->path, (size_t)(slash - ctl->path));
	dir[slash - ctl->path] = 0;
	int sock = ctl->sock.fd;
	thoth_daemon_Daemon_timer_page_req_t req = { 0 };
	thoth_msg_header_t meta = { .request_id = THOTH__TIMERPAGE_REQUEST_ID };
	uint64_t buf[16];
	size_t len;
	int r = thoth_method_encode(&thoth_daemon_Daemon_timer_page_info, false, &req, &meta, buf,
				    sizeof buf, &len);
	if (!r)
		r = thoth_stream_write_all(sock, buf, len);
	if (r)
		return r;
	thoth_stream_reader_t *rd = &ctl->sock.reader;
	int fd = -1;
	const uint8_t *msg = NULL;
	size_t mlen = 0;
	uint64_t end = thoth_clock_now() + (uint64_t)(timeout_ms < 0 ? 2000 : timeout_ms) * 1000000ull;
	while ((r = thoth_stream_next(rd, &msg, &mlen)) == 0) {
		uint64_t now = thoth_clock_now();
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int pr = now < end ? poll(&p, 1, (int)((end - now) / 1000000ull) + 1) : 0;
		if (pr == 0) {
			r = THOTH_E_TIMEDOUT;
			break;
		}
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			r = thoth_error_io(errno, "poll");
			break;
		}
		int got[2];
		size_t n_fds = 0;
		r = thoth_stream_fill_fds(rd, sock, got, 2, &n_fds);
		for (size_t i = 0; i < n_fds; i++) {
			if (fd < 0)
				fd = got[i];
			else
				close(got[i]);  /* one answer, one descriptor */
		}
		if (r)
			break;
	}
	if (r == 1) {
		r = thoth__timerpage_is_answer(msg, mlen) ? 0 : THOTH_E_PROTOCOL;
		if (!r) {
			(void)thoth__timerpage_take(msg, mlen, fd, dir);   /* refused: the grid */
			fd = -1;
		}
		thoth_stream_consume(rd);
	}
	if (fd >= 0)
		close(fd);
	return r == THOTH_E_TIMEDOUT ? 0 : r;     /* thothd slow: the grid, the connection stays */
}

/* The connection checks of item 4 (docs/THOTHD.md, "Who a client talks
 * to"): the runtime dir is ours, 0700 and not a symlink, and the process
 * listening at thothd.sock runs as our uid.  Nothing is sent before both
 * hold, so a squatter learns nothing and receives no trace buffer. */
static int control_open(thoth_control_t *ctl, const char *runtime_dir, unsigned flags,
			int timeout_ms, int *fd)
{
	memset(ctl, 0, sizeof *ctl);
	ctl->sock.fd = -1;
	int r = thoth_control_socket(runtime_dir, ctl->path, sizeof ctl->path);
	if (r) {
		/* Say why: "invalid argument" and a cut path named nothing. */
		char dir[4096];
		if (thoth_runtime_dir(runtime_dir, dir, sizeof dir))
			thoth__why(ctl->why, sizeof ctl->why, "runtime dir path too long");
		else
			thoth__why(ctl->why, sizeof ctl->why, "socket path too long: %zu bytes of "
				   "runtime dir, a Unix socket path holds %zu with \"/thothd.sock\"",
				   strlen(dir), sizeof ctl->path - sizeof "/thothd.sock");
		ctl->path[0] = 0;
		return THOTH_E_INVAL;
	}
	r = thoth__unix_connect(ctl->path, THOTH__UNIX_CHECK_DIR | flags, timeout_ms, fd, ctl->why,
				sizeof ctl->why);
	return r;
}

int thoth_control_connect(thoth_control_t *ctl, const char *runtime_dir, int timeout_ms)
{
	int fd;
	int r = control_open(ctl, runtime_dir, 0, timeout_ms, &fd);
	if (r)
		return r;
	r = thoth_sock_client_init(&ctl->sock, fd, timeout_ms);
	if (r) {
		close(fd);
		ctl->sock.fd = -1;
		return r;
	}
	thoth_client_init(&ctl->client, &thoth_sock_transport, &ctl->sock,
			  THOTH_REGISTRY_FEATURES_ALL);
	r = attach_trace_buffer(ctl);
	if (!r)
		r = timerpage_fetch(ctl, timeout_ms);
	if (r) {
		thoth_control_close(ctl);
		return r;
	}
	return 0;
}

void thoth_control_close(thoth_control_t *ctl)
{
	trace_collector_released(ctl);
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
	thoth__link_t *link;
	thoth_timer_t *renew;           /* only with an explicit ttl_ms, while registered */
	uint64_t lease;
	uint32_t registrations;
	uint32_t next_request_id;
	uint32_t pending;               /* request id awaiting its answer, 0 none */
	bool pending_is_renew;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void set_state(thoth_service_t *s, thoth_service_state_t state, int err, const char *why)
{
	if (state == THOTH_SERVICE_REGISTERED)
		thoth__log(THOTH_LOG_INFO, "service", "%s registered (lease %016llx)", s->name,
			   (unsigned long long)s->lease);
	else if (state == THOTH_SERVICE_REFUSED)
		thoth__log(THOTH_LOG_ERROR, "service", "%s refused by thothd: %s", s->name, why);
	else    /* WHY, when given, already says what ERR would ("nothing listens at
		 * X (not running (nothing listens at its socket))" said it twice) */
		thoth__log(THOTH_LOG_WARN, "service", "%s not registered: %s; retrying", s->name,
			   why && *why ? why : thoth_strerror(err));
	s->state = state;
	if (s->cfg.on_state)
		s->cfg.on_state(s->cfg.arg, state, err, why ? why : "");
}

static uint32_t next_id(thoth_service_t *s)
{
	if (++s->next_request_id == 0)
		s->next_request_id = 1;
	return s->next_request_id;
}

/* Send REQ as M's request and wait (on the loop) for its answer. */
static void send_request(thoth_service_t *s, const thoth_method_info_t *m, const void *req,
			 bool renew)
{
	uint32_t id = next_id(s);
	int r = thoth__link_send(s->link, m, req, id);
	if (!r)
		r = thoth__link_deadline(s->link, ANSWER_TIMEOUT_MS);
	if (r) {
		thoth__link_drop(s->link, r, "cannot send to thothd");
		return;
	}
	s->pending = id;
	s->pending_is_renew = renew;
}

static void send_register(thoth_service_t *s)
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
	send_request(s, &thoth_registry_Registry_register_info, &req, false);
}

static void renew_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	thoth_service_t *s = arg;
	s->renew = NULL;        /* fired and not re-armed here: the loop frees it */
	if (s->state != THOTH_SERVICE_REGISTERED || s->pending)
		return;
	thoth_registry_Registry_renew_req_t req = { .lease = s->lease };
	send_request(s, &thoth_registry_Registry_renew_info, &req, true);
}

/* Only for an explicit watchdog TTL: the next renewal at TTL/3 (slack TTL/6). */
static int schedule_renew(thoth_service_t *s)
{
	if (!s->cfg.ttl_ms)
		return 0;
	uint64_t ttl = (uint64_t)s->cfg.ttl_ms * 1000000ull;
	uint64_t at = thoth_clock_now() + ttl / 3;
	if (s->renew)
		return thoth_timer_rearm(s->loop, s->renew, at, ttl / 6);
	return thoth_loop_add_timer(s->loop, at, ttl / 6, renew_fired, s, &s->renew);
}

static void link_up(void *arg)
{
	thoth_service_t *s = arg;
	s->pending = 0;
	send_register(s);
}

static void link_down(void *arg, int err, const char *why)
{
	thoth_service_t *s = arg;
	s->lease = 0;
	s->pending = 0;
	if (s->renew)
		thoth_timer_cancel(s->loop, s->renew);
	s->renew = NULL;
	if (s->state != THOTH_SERVICE_REFUSED)
		set_state(s, THOTH_SERVICE_CONNECTING, err, why);
}

static void answered(thoth_service_t *s, const uint8_t *msg, size_t len)
{
	bool renew = s->pending_is_renew;
	s->pending = 0;
	thoth__link_deadline(s->link, 0);
	uint32_t code = 0;
	char why[160] = "";
	int e = thoth__link_error_of(msg, len, &code, why, sizeof why);
	if (e < 0) {
		thoth__link_drop(s->link, e, "thothd sent an undecodable answer");
		return;
	}
	if (e == 1 && renew && code == THOTH_REGISTRY_ERR_EXPIRED) {
		/* We were too late (stopped, overloaded): same connection, new lease. */
		s->lease = 0;
		set_state(s, THOTH_SERVICE_CONNECTING, THOTH_E_TIMEDOUT, "lease expired");
		send_register(s);
		return;
	}
	if (e == 1 && !renew && code) {
		/* thothd refused the registration itself: retrying cannot help. */
		thoth__link_stop(s->link);
		s->lease = 0;
		set_state(s, THOTH_SERVICE_REFUSED, THOTH_E_REMOTE, why);
		return;
	}
	if (e == 1) {
		thoth__link_drop(s->link, THOTH_E_REMOTE, why);
		return;
	}
	int r;
	if (renew) {
		thoth_registry_Registry_renew_resp_t resp;
		r = thoth_method_decode(&thoth_registry_Registry_renew_info, true, msg, len, &resp, NULL);
	} else {
		thoth_registry_Registry_register_resp_t resp;
		r = thoth_method_decode(&thoth_registry_Registry_register_info, true, msg, len, &resp,
					NULL);
		if (!r) {
			s->lease = resp.lease;
			s->registrations++;
		}
	}
	if (r) {
		thoth__link_drop(s->link, r, "thothd sent an undecodable answer");
		return;
	}
	if (!renew)
		set_state(s, THOTH_SERVICE_REGISTERED, 0, NULL);
	r = schedule_renew(s);
	if (r)  /* surfaced, not ignored: the watchdog lease will end */
		set_state(s, s->state, r, "cannot arm the lease renewal timer");
}

/* A message from thothd: the answer we wait for, or a push we ignore. */
static void link_message(void *arg, const uint8_t *msg, size_t len)
{
	thoth_service_t *s = arg;
	uint16_t flags = thoth__link_flags(msg, len);
	if (s->pending && (flags & THOTH_MSG_RESPONSE) &&
	    thoth__link_request_id(msg, len) == s->pending)
		answered(s, msg, len);
}

static const thoth__link_ops_t service_link_ops = {
	.up = link_up,
	.message = link_message,
	.down = link_down,
};

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
	thoth__link_free(s->link);
	if (s->renew)
		thoth_timer_cancel(s->loop, s->renew);
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
	if (!loop || !cfg || !cfg->name || !cfg->version || !cfg->endpoint || !out)
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
	if (s->cfg.numa_node == THOTH_SERVICE_NUMA_AUTO)
		s->cfg.numa_node = current_numa_node();
	if (!s->cfg.instance_id)
		s->cfg.instance_id = ((uint64_t)getpid() << 32) ^ (thoth_clock_now() & 0xffffffffu);
	s->state = THOTH_SERVICE_CONNECTING;
	int r = thoth__link_new(loop, s->runtime_dir, &service_link_ops, s, &s->link);
	if (r) {
		snprintf(why, why_len, "runtime dir path too long");
		service_free(s);
		return r;
	}
	*out = s;
	/* Connect and send the registration now if thothd is there (never
	 * waiting for it); the answer arrives on the loop. */
	thoth__link_start(s->link);
	return 0;
}

void thoth_service_withdraw(thoth_service_t *s)
{
	if (!s)
		return;
	if (thoth__link_is_up(s->link) && s->lease) {
		/* Best effort and never waiting: closing the connection ends the
		 * registration anyway; the withdraw says it was on purpose. */
		thoth_registry_Registry_withdraw_req_t req = { .lease = s->lease };
		(void)thoth__link_send(s->link, &thoth_registry_Registry_withdraw_info, &req,
				       next_id(s));
	}
	service_free(s);
}

int thoth_service_report_load(thoth_service_t *s, double utilization, double qps)
{
	if (!s)
		return THOTH_E_INVAL;
	/* Validated here (NaN, negative, absurd) and again by thothd: the
	 * registry stores integers only. */
	if (!(utilization >= 0.0 && utilization <= 64.0) || !(qps >= 0.0 && qps <= 1e8))
		return THOTH_E_INVAL;
	if (s->state != THOTH_SERVICE_REGISTERED || !s->lease || !thoth__link_is_up(s->link))
		return THOTH_E_AGAIN;
	thoth_registry_Registry_report_load_req_t req = {
		.lease = s->lease,
		.utilization_permille = (uint32_t)(utilization * 1000.0 + 0.5),
		.qps = (uint32_t)(qps + 0.5),
	};
	int r = thoth__link_send(s->link, &thoth_registry_Registry_report_load_info, &req, 0);
	if (r)
		thoth__link_drop(s->link, r, "cannot send to thothd");
	return r;
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
