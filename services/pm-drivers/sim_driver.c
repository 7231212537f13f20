/*
 * pm-sim-driver - a simulated device driver for the power broker (PM-1):
 * "bus", "disk", "nic" or "input".  It declares its element over
 * idl/pm.tidl, and when thothd asks it to change level it really sleeps
 * for the declared latency (exit latency of the level it leaves when
 * rising, entry latency of the level it enters when falling) before
 * confirming, so end-to-end tests exercise real processes and real waits.
 * Requests are answered with "<payload>@<level it was served at>".
 *
 *   pm-sim-driver KIND [--name NAME] [--needs ELEMENT] [--service SERVICE]
 *                 [--runtime-dir DIR]
 *
 * When thothd goes away (killed, restarted) the driver stays and declares
 * its element (and registers SERVICE) again once a thothd answers, asking
 * every 20 ms doubling to 1 s meanwhile.
 *
 * SIGTERM or SIGINT (a signalfd, polled beside thothd's connection)
 * stops it cleanly, exit 0 with a line on stderr: SERVICE withdrawn
 * (Registry.withdraw), then the broker's connection closed, which is how
 * a driver leaves the broker (pm.tidl has no undeclare): the element goes
 * (or is kept dead while a dependent needs it) and every lease on it ends
 * LOST, its holders told.  Before, the default action killed it as a
 * crash would, with no word of why (loose38).
 *
 * --service registers SERVICE in the registry from this process, over a
 * second connection as a real service's own registration would be: a
 * latency bound a client attaches when it resolves SERVICE
 * (PowerBroker.service_qos) then covers this driver's element.
 *
 * The power figures are models (typical magnitudes for each device class),
 * labelled so in docs/PM.md; nothing here touches real hardware.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "pm.thoth.h"
#include "stops.h"
#include "registry.thoth.h"
#include "thoth/service.h"

typedef struct kind {
	const char *name;
	uint32_t n;
	thoth_pm_Level_t levels[3];
	uint32_t dep_level;             /* the level that needs --needs at its top level */
} kind_t;

#define L(n, p, en, ex) { .name = { n, sizeof n - 1 }, .power_mw = p, .entry_latency_us = en, .exit_latency_us = ex }
static const kind_t kinds[] = {
	{ "bus", 2, { L("OFF", 0.0, 200, 1000), L("ON", 40.0, 0, 0) }, 1 },
	{ "disk", 3, { L("OFF", 0.0, 5000, 30000), L("IDLE", 80.0, 500, 2000), L("ACTIVE", 1500.0, 0, 0) }, 2 },
	{ "nic", 3, { L("OFF", 0.0, 1000, 5000), L("LOW", 30.0, 200, 500), L("ON", 300.0, 0, 0) }, 2 },
	{ "input", 2, { L("SUSPENDED", 0.0, 100, 2000), L("ON", 5.0, 0, 0) }, 1 },
};

/* An event received inside a call, waiting for the main loop. */
typedef struct queued {
	struct queued *next;
	size_t len;
	_Alignas(8) uint8_t msg[];
} queued_t;

typedef struct driver {
	thoth_control_t ctl;
	const kind_t *kind;
	uint32_t element, level;
	/* Events arrive inside calls too; they are queued and handled in order
	 * by the main loop, never re-entrantly.  Unbounded: one serve event
	 * per queued request, and the broker releases them all at once when
	 * the device comes up -- a fixed 256 dropped the rest, and their
	 * requesters waited for ever.  thothd bounds the requests (65,536);
	 * beyond EVENTS_MAX, or without memory, the driver exits rather than
	 * drop one: thothd fails a dead driver's queued requests, a dropped
	 * event would leave its requester waiting for ever. */
	queued_t *head, **tail;
	size_t queued;
	uint64_t reg_lease;             /* --service's registration (0: none) */
} driver_t;

enum { EVENTS_MAX = 1 << 20 };

static void on_event(void *arg, const uint8_t *msg, size_t len)
{
	driver_t *d = arg;
	queued_t *q = d->queued < EVENTS_MAX ? malloc(sizeof *q + len) : NULL;
	if (!q) {
		fprintf(stderr, "pm-sim-driver: %s with %zu events queued: exiting rather than lose one "
			"(thothd fails this driver's requests)\n",
			d->queued < EVENTS_MAX ? "out of memory" : "over the limit of queued events", d->queued);
		exit(1);
	}
	d->queued++;
	q->next = NULL;
	q->len = len;
	memcpy(q->msg, msg, len);
	*d->tail = q;
	d->tail = &q->next;
}

static void sleep_us(int64_t us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int handle(driver_t *d, const uint8_t *msg, size_t len)
{
	uint64_t scratch[512];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	if (len < 16 || thoth_le32(msg + 8) != THOTH_PM_POWER_EVENTS_ID)
		return -1;
	uint32_t method = thoth_le32(msg + 12);
	if (method == THOTH_PM_POWER_EVENTS_SET_LEVEL) {
		thoth_pm_PowerEvents_set_level_req_t ev;
		if (thoth_pm_PowerEvents_set_level_req_decode_msg(msg, len, &ev, &arena))
			return -1;
		const thoth_pm_Level_t *lv = d->kind->levels;
		sleep_us(ev.to > ev.from ? lv[ev.from].exit_latency_us : lv[ev.to].entry_latency_us);
		d->level = ev.to;
		printf("level %u -> %u\n", ev.from, ev.to);
		fflush(stdout);
		thoth_pm_PowerBroker_level_reached_req_t req = { .element = ev.element, .level = ev.to };
		thoth_pm_PowerBroker_level_reached_resp_t resp;
		int r = thoth_pm_PowerBroker_level_reached(&d->ctl.client, &req, &resp, NULL);
		if (r)
			fprintf(stderr, "pm-sim-driver: level_reached: %s\n", thoth_strerror(r));
		return 0;
	}
	if (method == THOTH_PM_POWER_EVENTS_SERVE) {
		thoth_pm_PowerEvents_serve_req_t ev;
		if (thoth_pm_PowerEvents_serve_req_decode_msg(msg, len, &ev, &arena))
			return -1;
		char result[300];
		int n = snprintf(result, sizeof result, "%.*s@%u", (int)(ev.payload.len > 200 ? 200 : ev.payload.len),
				 (const char *)ev.payload.ptr, d->level);
		printf("served %llu at level %u\n", (unsigned long long)ev.request, d->level);
		fflush(stdout);
		thoth_pm_PowerBroker_served_req_t req = {
			.request = ev.request, .result = { .ptr = (const uint8_t *)result, .len = (uint32_t)n },
		};
		thoth_pm_PowerBroker_served_resp_t resp;
		int r = thoth_pm_PowerBroker_served(&d->ctl.client, &req, &resp, NULL);
		if (r)
			fprintf(stderr, "pm-sim-driver: served: %s\n", thoth_strerror(r));
		return 0;
	}
	return 0;
}

/* Events queued for a thothd that is gone: dropped. */
static void drop_events(driver_t *d)
{
	while (d->head) {
		queued_t *q = d->head;
		d->head = q->next;
		free(q);
	}
	d->tail = &d->head;
	d->queued = 0;
}

/* Connect to thothd, declare the element and register SERVICE (over
 * REG_CTL, held open by the caller).  0; THOTH_E_AGAIN when no thothd
 * answers (FIRST: said and refused instead, as at start-up nobody is
 * waited for); another error, said, when the declaration or registration
 * is refused. */
static int attach(driver_t *d, const char *dir, const char *name, const char *needs, const char *service,
		  thoth_control_t *reg_ctl, bool first)
{
	int r = thoth_control_connect(&d->ctl, dir, 2000);
	if (r) {
		if (!first)
			return THOTH_E_AGAIN;
		fprintf(stderr, "pm-sim-driver: cannot reach thothd: %s\n", thoth_strerror(r));
		return r;
	}
	d->ctl.sock.on_event = on_event;
	d->ctl.sock.event_arg = d;
	thoth_pm_Dependency_t dep = {
		.level = d->kind->dep_level, .required = thoth_str(needs), .required_level = 1,
		.kind = THOTH_PM_DEP_KIND_ASSERTIVE,
	};
	thoth_pm_Element_t el = {
		.name = thoth_str(name ? name : d->kind->name),
		.levels = { .items = d->kind->levels, .count = d->kind->n },
		.deps = { .items = &dep, .count = needs ? 1 : 0 },
	};
	thoth_pm_PowerBroker_declare_req_t req = { .elements = { .items = &el, .count = 1 } };
	thoth_pm_PowerBroker_declare_resp_t resp;
	uint64_t scratch[64];
	thoth_arena_t arena;
	/* Drivers start in any order: while the element this one needs is not
	 * declared yet, ask again (for up to 5 s).  The same while an element
	 * whose driver died is still held (this one's own name, restarted
	 * while its dependents come down, or the one it needs): it goes once
	 * nothing needs it, and this driver was refused for good. */
	for (int tries = 0;; tries++) {
		thoth_arena_init(&arena, scratch, sizeof scratch);
		r = thoth_pm_PowerBroker_declare(&d->ctl.client, &req, &resp, &arena);
		bool transient = r == THOTH_E_REMOTE &&
				 d->ctl.client.remote_code == THOTH_PM_ERR_BAD_DECLARATION &&
				 (strstr(d->ctl.client.remote_message, "no element") ||
				  strstr(d->ctl.client.remote_message, "driver is gone"));
		if (!transient)
			break;
		if (tries == 500) {
			if (first)
				break;
			/* After a reconnect the element needed (or this one's
			 * own, still held) may be slower to come back than 5 s
			 * (its driver backing off too): not a reason to give up
			 * the element for good, as at start-up, but to wait for
			 * it as for thothd. */
			thoth_control_close(&d->ctl);
			return THOTH_E_AGAIN;
		}
		sleep_us(10000);
	}
	if (r && r != THOTH_E_REMOTE && !first) {
		thoth_control_close(&d->ctl);   /* that thothd went too: wait for the next */
		return THOTH_E_AGAIN;
	}
	if (r) {
		fprintf(stderr, "pm-sim-driver: declare refused: %s: %s\n", thoth_strerror(r),
			d->ctl.client.remote_message);
		thoth_control_close(&d->ctl);
		return r;
	}
	d->element = resp.ids.items[0];
	/* A new broker believes the element at its initial level, 0: so does
	 * the driver (it kept the old broker's level and served at it). */
	d->level = 0;
	printf("declared %s as element %u\n", el.name.ptr, d->element);
	fflush(stdout);
	if (!service)
		return 0;
	r = thoth_control_connect(reg_ctl, dir, 2000);
	char addr[96];
	snprintf(addr, sizeof addr, "pm-sim:%s", name ? name : d->kind->name);
	thoth_registry_Registry_register_req_t rr = {
		.reg = { .name = thoth_str(service), .version = thoth_str("1.0.0"),
			 .endpoint = { .addr = thoth_str(addr),
				       .locality = THOTH_COMMON_LOCALITY_HOST } },
	};
	thoth_registry_Registry_register_resp_t rresp;
	if (!r) {
		r = thoth_registry_Registry_register(&reg_ctl->client, &rr, &rresp, NULL);
		if (r)
			thoth_control_close(reg_ctl);
		else
			d->reg_lease = rresp.lease;
	}
	if (r) {
		thoth_control_close(&d->ctl);
		if (!first && r != THOTH_E_REMOTE)
			return THOTH_E_AGAIN;
		fprintf(stderr, "pm-sim-driver: cannot register %s: %s\n", service, thoth_strerror(r));
		return r;
	}
	printf("registered %s\n", service);
	fflush(stdout);
	return 0;
}

/* SIGNO arrived: leave thothd as a driver leaves it and exit 0.  CONNECTED:
 * whether d->ctl (and REG_CTL, with SERVICE) are open now. */
static int stop(driver_t *d, int signo, const char *name, const char *service, thoth_control_t *reg_ctl,
		bool connected)
{
	const char *el = name ? name : d->kind->name;
	if (!connected) {
		fprintf(stderr, "pm-sim-driver: %s while waiting for thothd: %s not declared, exiting\n",
			strsignal(signo), el);
		return 0;
	}
	if (service) {
		thoth_registry_Registry_withdraw_req_t wr = { .lease = d->reg_lease };
		thoth_registry_Registry_withdraw_resp_t wresp;
		int r = thoth_registry_Registry_withdraw(&reg_ctl->client, &wr, &wresp, NULL);
		if (r)  /* its connection's close ends it anyway */
			fprintf(stderr, "pm-sim-driver: withdrawing %s: %s\n", service, thoth_strerror(r));
		thoth_control_close(reg_ctl);
	}
	thoth_control_close(&d->ctl);
	drop_events(d);
	fprintf(stderr, "pm-sim-driver: %s: %s%s%s withdrawn from thothd (its leases end), exiting\n",
		strsignal(signo), el, service ? " and " : "", service ? service : "");
	return 0;
}

int main(int argc, char **argv)
{
	const char *kind_name = argc > 1 ? argv[1] : "", *name = NULL, *needs = NULL, *dir = NULL,
		   *service = NULL;
	/* --help is a question, not a mistake: usage on stdout, 0; asked
	 * anywhere (`disk --help` said "--help needs a value"), so every
	 * argument is looked at before any is parsed. */
	bool help = false;
	for (int i = 1; i < argc; i++)
		help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
	if (help) {
		printf("usage: pm-sim-driver bus|disk|nic|input [--name NAME] [--needs ELEMENT] "
		       "[--service SERVICE] [--runtime-dir DIR]\n");
		return 0;
	}
	for (int i = 2; i < argc; i += 2) {
		/* an option without its value was dropped silently: "disk --name"
		 * declared "disk" */
		if (i + 1 >= argc) {
			fprintf(stderr, "pm-sim-driver: %s needs a value\n", argv[i]);
			return 2;
		}
		if (!strcmp(argv[i], "--name"))
			name = argv[i + 1];
		else if (!strcmp(argv[i], "--needs"))
			needs = argv[i + 1];
		else if (!strcmp(argv[i], "--runtime-dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--service"))
			service = argv[i + 1];
		else {
			fprintf(stderr, "pm-sim-driver: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	driver_t d = { 0 };
	d.tail = &d.head;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (!strcmp(kinds[i].name, kind_name))
			d.kind = &kinds[i];
	if (!d.kind) {
		fprintf(stderr, "usage: pm-sim-driver bus|disk|nic|input [--name NAME] [--needs ELEMENT] "
				"[--service SERVICE] [--runtime-dir DIR]\n");
		return 2;
	}
	/* SIGTERM/SIGINT from a signalfd polled with the connection (stops.h);
	 * blocked before connecting, so none is lost. */
	int sfd = driver_watch_stops("pm-sim-driver");
	if (sfd < 0) {
		return 1;
	}
	thoth_control_t reg_ctl;        /* held open: the registration lives with it */
	int r = attach(&d, dir, name, needs, service, &reg_ctl, true);
	if (r)
		return 1;
	for (;;) {
		while (d.head) {
			queued_t *q = d.head;
			d.head = q->next;
			d.queued--;
			if (!d.head)
				d.tail = &d.head;
			handle(&d, q->msg, q->len);
			free(q);
		}
		int sig = driver_signalled(sfd);
		if (sig)
			return stop(&d, sig, name, service, &reg_ctl, true);
		r = driver_wait(&d.ctl.sock, sfd, "pm-sim-driver");
		if (r > 0)
			return 1;
		if (r == 0)
			continue;
		/* thothd died (or was restarted): its broker, and with it this
		 * element, is gone.  A driver outlives it like any service
		 * (docs/RELIABILITY.md) and declares again when a thothd
		 * listens; it exited here, so after a thothd restart the
		 * element stayed gone and every lease on it was refused. */
		fprintf(stderr, "pm-sim-driver: thothd went away: %s; declaring %s again when it is back\n",
			thoth_strerror(r), name ? name : d.kind->name);
		drop_events(&d);        /* for the dead broker, which failed their requests */
		thoth_control_close(&d.ctl);
		if (service)
			thoth_control_close(&reg_ctl);
		int64_t backoff_us = 20000;
		while ((r = attach(&d, dir, name, needs, service, &reg_ctl, false)) == THOTH_E_AGAIN) {
			/* the backoff's wait, cut short by a signal */
			struct pollfd pfd = { .fd = sfd, .events = POLLIN };
			if (poll(&pfd, 1, (int)(backoff_us / 1000)) > 0 && (sig = driver_signalled(sfd)))
				return stop(&d, sig, name, service, &reg_ctl, false);
			backoff_us = backoff_us * 2 > 1000000 ? 1000000 : backoff_us * 2;
		}
		if (r)
			return 1;
	}
}
