/*
 * pm-runtime-driver - a real driver service over Linux runtime PM (PM-1).
 *
 * Every device whose power/runtime_status is "active" or "suspended" (or
 * the ones named with --device) becomes a power element "rpm.<device>"
 * with two levels, SUSPENDED and ACTIVE.  When the broker asks for ACTIVE
 * the driver writes "on" to power/control (the kernel resumes the device
 * and keeps it resumed); for SUSPENDED it writes "auto" (the kernel may
 * suspend it after its autosuspend delay).  It confirms the level once the
 * write succeeded; a failed write is reported and the level is not
 * confirmed, so the broker never believes a state the kernel refused.
 *
 * Linux runtime PM publishes no power figures and no latencies, so the
 * levels' power and latencies are MODELLED (kernel/pm/device_power.h): from
 * --power-table FILE where the administrator has real figures, else from
 * the built-in table (bus-specification latencies, order-of-magnitude
 * powers per device class); each element's source is printed when it is
 * declared and by --show.  The real, measured residency is the kernel's
 * runtime_active_time and runtime_suspended_time, which `--show` prints.
 *
 *   pm-runtime-driver [--runtime-dir DIR] [--device /sys/devices/...]... [--max N]
 *                     [--power-table FILE] [--show]
 *
 * SIGTERM or SIGINT (a signalfd polled beside thothd's connection) stops
 * it cleanly: every power/control it changed is written back to what it
 * found at start (a device it held "on" stayed on for good after it was
 * gone), the broker's connection is closed (its elements go, their leases
 * end LOST and their holders are told), one line on stderr, exit 0.  The
 * same write-back is done when thothd goes away (exit 1).
 *
 * Paths are looked up under $THOTH_SYSFS_ROOT when set (tests use fixture
 * trees; without it this writes the host's real power/control files).
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
#include <unistd.h>

#include "backend.h"
#include "device_power.h"
#include "element.h"
#include "pm.thoth.h"
#include "stops.h"
#include "thoth/service.h"

#define MAX_DEVICES 64
#define MAX_QUEUE 256

typedef struct driver {
	thoth_control_t ctl;
	char devices[MAX_DEVICES][256];
	char names[MAX_DEVICES][THOTH_PM_NAME_MAX + 1];
	char sources[MAX_DEVICES][160]; /* where each element's figures come from */
	char found[MAX_DEVICES][8];     /* power/control at start, written back at exit */
	char written[MAX_DEVICES][8];   /* what we last wrote there ("" if nothing) */
	uint32_t ids[MAX_DEVICES];
	uint32_t n;
	uint8_t *queue[MAX_QUEUE];
	size_t queue_len[MAX_QUEUE];
	uint32_t head, tail;
} driver_t;

static void on_event(void *arg, const uint8_t *msg, size_t len)
{
	driver_t *d = arg;
	uint8_t *copy = NULL;
	if (d->tail - d->head == MAX_QUEUE || posix_memalign((void **)&copy, 8, len ? len : 8)) {
		fprintf(stderr, "pm-runtime-driver: event dropped (queue full or no memory)\n");
		return;
	}
	memcpy(copy, msg, len);
	d->queue[d->tail % MAX_QUEUE] = copy;
	d->queue_len[d->tail % MAX_QUEUE] = len;
	d->tail++;
}

/* "rpm." + the device's last path component, made a valid element name. */
static void element_name(driver_t *d, uint32_t i)
{
	const char *base = strrchr(d->devices[i], '/');
	base = base ? base + 1 : d->devices[i];
	char *out = d->names[i];
	size_t n = (size_t)snprintf(out, THOTH_PM_NAME_MAX - 4, "rpm.%s", base);
	for (size_t k = 4; k < n && out[k]; k++) {
		char c = out[k];
		if (c >= 'A' && c <= 'Z')
			out[k] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			out[k] = '-';
	}
	for (uint32_t j = 0; j < i; j++)
		if (!strcmp(d->names[j], out)) {
			size_t l = strlen(out);
			snprintf(out + l, THOTH_PM_NAME_MAX + 1 - l, "-%u", i);
			break;
		}
}

static void handle(driver_t *d, const uint8_t *msg, size_t len)
{
	if (len < 16 || thoth_le32(msg + 8) != THOTH_PM_POWER_EVENTS_ID ||
	    thoth_le32(msg + 12) != THOTH_PM_POWER_EVENTS_SET_LEVEL)
		return;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_pm_PowerEvents_set_level_req_t ev;
	if (thoth_pm_PowerEvents_set_level_req_decode_msg(msg, len, &ev, &arena))
		return;
	for (uint32_t i = 0; i < d->n; i++) {
		if (d->ids[i] != ev.element)
			continue;
		const char *control = ev.to ? "on" : "auto";
		int r = thoth_pm_runtime_set_control(d->devices[i], control);
		if (r) {
			fprintf(stderr, "pm-runtime-driver: %s: writing power/control=%s: %s\n", d->devices[i],
				control, thoth_strerror(r));
			return;
		}
		snprintf(d->written[i], sizeof d->written[i], "%s", control);
		printf("%s: control=%s\n", d->names[i], control);
		fflush(stdout);
		thoth_pm_PowerBroker_level_reached_req_t req = { .element = ev.element, .level = ev.to };
		thoth_pm_PowerBroker_level_reached_resp_t resp;
		r = thoth_pm_PowerBroker_level_reached(&d->ctl.client, &req, &resp, NULL);
		if (r)
			fprintf(stderr, "pm-runtime-driver: level_reached: %s\n", thoth_strerror(r));
		return;
	}
}

/* Write back every power/control we changed to what it was at start:
 * nobody governs the device once we are gone.  The number that failed
 * (each said on stderr). */
static int restore_controls(driver_t *d)
{
	int failed = 0;
	for (uint32_t i = 0; i < d->n; i++) {
		if (!d->written[i][0] || !strcmp(d->written[i], d->found[i]))
			continue;
		int r = thoth_pm_runtime_set_control(d->devices[i], d->found[i]);
		if (r) {
			fprintf(stderr, "pm-runtime-driver: %s: writing power/control=%s back: %s\n",
				d->devices[i], d->found[i], thoth_strerror(r));
			failed++;
		} else {
			snprintf(d->written[i], sizeof d->written[i], "%s", d->found[i]);
		}
	}
	return failed;
}

int main(int argc, char **argv)
{
	static driver_t d;
	const char *dir = NULL, *table = NULL;
	uint32_t max = MAX_DEVICES;
	int show = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runtime-dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
			if (d.n == MAX_DEVICES) {
				fprintf(stderr, "pm-runtime-driver: at most %d --device\n", MAX_DEVICES);
				return 2;
			}
			if (strlen(argv[i + 1]) >= sizeof d.devices[0]) {
				fprintf(stderr, "pm-runtime-driver: --device %s: longer than %zu bytes\n",
					argv[i + 1], sizeof d.devices[0] - 1);
				return 2;
			}
			snprintf(d.devices[d.n++], sizeof d.devices[0], "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--max") && i + 1 < argc) {
			/* "--max abc" was 0 devices, reported as "no device with
			 * runtime PM found" */
			char *end;
			errno = 0;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (errno || end == argv[i] || *end || argv[i][0] == '-' || v < 1 || v > MAX_DEVICES) {
				fprintf(stderr, "pm-runtime-driver: --max '%s' is not a number of devices (1..%d)\n",
					argv[i], MAX_DEVICES);
				return 2;
			}
			max = (uint32_t)v;
		}
		else if (!strcmp(argv[i], "--power-table") && i + 1 < argc)
			table = argv[++i];
		else if (!strcmp(argv[i], "--show"))
			show = 1;
		else {
			/* --help is a question, not a mistake: usage on stdout, 0 */
			bool help = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
			fprintf(help ? stdout : stderr,
				"usage: pm-runtime-driver [--runtime-dir DIR] [--device PATH]... "
				"[--max N] [--power-table FILE] [--show]\n");
			return help ? 0 : 2;
		}
	}
	if (!d.n)
		thoth_pm_runtime_scan(d.devices, max, &d.n);
	thoth_pm_Element_t *els = calloc(d.n ? d.n : 1, sizeof *els);
	thoth_pm_Level_t(*levels)[2] = calloc(d.n ? d.n : 1, sizeof *levels);
	if (!els || !levels) {
		fprintf(stderr, "pm-runtime-driver: out of memory\n");
		return 1;
	}
	uint32_t n = 0;
	for (uint32_t i = 0; i < d.n; i++) {
		thoth_pm_runtime_state_t st;
		if (thoth_pm_runtime_read(d.devices[i], &st)) {
			fprintf(stderr, "pm-runtime-driver: %s: no runtime PM files\n", d.devices[i]);
			free(els), free(levels);
			return 1;
		}
		element_name(&d, i);
		snprintf(d.found[i], sizeof d.found[i], "%s", st.control);
		thoth_pm_device_power_t pw;
		char why[300];
		if (thoth_pm_device_power_lookup(d.devices[i], table, &pw, why, sizeof why)) {
			fprintf(stderr, "pm-runtime-driver: power table: %s\n", why);
			free(els), free(levels);
			return 1;
		}
		if (show)
			/* each power named: "10.0 / 300.0 mW" read as active /
			 * suspended (docs/PM.md's order) was the other way round */
			printf("%s %s: %s, control %s, active %llu ms, suspended %llu ms; active %.1f mW, "
			       "suspended %.1f mW, suspend %u us, resume %u us (%s)\n", d.names[i],
			       d.devices[i], st.status, st.control, (unsigned long long)st.active_ms,
			       (unsigned long long)st.suspended_ms, pw.active_mw, pw.suspended_mw,
			       pw.suspend_us, pw.resume_us, pw.source);
		levels[n][0] = (thoth_pm_Level_t){ .name = thoth_str("SUSPENDED"), .power_mw = pw.suspended_mw,
						   .entry_latency_us = pw.suspend_us,
						   .exit_latency_us = pw.resume_us };
		levels[n][1] = (thoth_pm_Level_t){ .name = thoth_str("ACTIVE"), .power_mw = pw.active_mw };
		snprintf(d.sources[i], sizeof d.sources[i], "%s", pw.source);
		els[n] = (thoth_pm_Element_t){
			.name = thoth_str(d.names[i]), .levels = { levels[n], 2 },
			.initial_level = strcmp(st.status, "active") == 0 ? 1 : 0,
		};
		n++;
	}
	if (show) {
		free(els), free(levels);
		return 0;
	}
	if (!n) {
		fprintf(stderr, "pm-runtime-driver: no device with runtime PM found\n");
		free(els), free(levels);
		return 1;
	}
	/* SIGTERM/SIGINT from a signalfd polled with the connection (stops.h);
	 * blocked before connecting, so none is lost. */
	int sfd = driver_watch_stops("pm-runtime-driver");
	if (sfd < 0) {
		free(els), free(levels);
		return 1;
	}
	int r = thoth_control_connect(&d.ctl, dir, 2000);
	if (r) {
		fprintf(stderr, "pm-runtime-driver: cannot reach thothd: %s\n", thoth_strerror(r));
		free(els), free(levels);
		return 1;
	}
	d.ctl.sock.on_event = on_event;
	d.ctl.sock.event_arg = &d;
	thoth_pm_PowerBroker_declare_req_t req = { .elements = { els, n } };
	thoth_pm_PowerBroker_declare_resp_t resp;
	uint64_t scratch[256];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	r = thoth_pm_PowerBroker_declare(&d.ctl.client, &req, &resp, &arena);
	if (r || resp.ids.count != n) {
		fprintf(stderr, "pm-runtime-driver: declare refused: %s: %s\n", thoth_strerror(r),
			d.ctl.client.remote_message);
		free(els), free(levels);
		return 1;
	}
	for (uint32_t i = 0; i < n; i++) {
		d.ids[i] = resp.ids.items[i];
		printf("declared %s (%s; %s)\n", d.names[i], d.devices[i], d.sources[i]);
	}
	fflush(stdout);
	free(els);
	free(levels);
	for (;;) {
		while (d.head != d.tail) {
			uint8_t *msg = d.queue[d.head % MAX_QUEUE];
			size_t len = d.queue_len[d.head % MAX_QUEUE];
			d.head++;
			handle(&d, msg, len);
			free(msg);
		}
		int sig = driver_signalled(sfd);
		if (sig) {
			/* The devices first (the broker may not ask again once
			 * we left), then the connection: the elements go. */
			int failed = restore_controls(&d);
			thoth_control_close(&d.ctl);
			while (d.head != d.tail)
				free(d.queue[d.head++ % MAX_QUEUE]);
			fprintf(stderr, "pm-runtime-driver: %s: power/control written back on the devices it "
				"changed%s, %u element%s withdrawn from thothd (their leases end), exiting\n",
				strsignal(sig), failed ? " (not all: see above)" : "", n, n == 1 ? "" : "s");
			return failed ? 1 : 0;
		}
		r = driver_wait(&d.ctl.sock, sfd, "pm-runtime-driver");
		if (r > 0) {
			restore_controls(&d);
			return 1;
		}
		if (r == 0)
			continue;
		fprintf(stderr, "pm-runtime-driver: thothd went away: %s; power/control written back, "
			"exiting\n", thoth_strerror(r));
		restore_controls(&d);
		return 1;
	}
}
