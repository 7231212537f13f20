/*
 * status_watch.c - `thothctl status --watch [MS]`: thothd's
 * status once per interval from the shared table's status block (SCALE-2,
 * thoth_rtable_status), until interrupted.  The table is taken once (one
 * round trip); every line after that costs thothd nothing: no message, no
 * wake-up, so a monitor polling it does not load thothd's one thread.
 * A thothd that is gone leaves its last status in the table (and the
 * uptime would go on growing): thothd's pidfd ends the watch when it exits.
 *
 * Lifecycle events (OBS-3: registered, lost, reregistered, ...) as they
 * come, each once, never the history again (hist46: the watch showed
 * none).  The table's generation moves at every registration and removal
 * (a renewal leaves it): only then is thothd asked (Daemon.status with
 * its events, on one connection kept open), so an idle watch still costs
 * it nothing; the first look, before the first line (the one round trip
 * besides the table's), only finds where the history is.  An event's number, seq, is its place in thothd's history
 * since thothd started (events_dropped + its index: "started" is 0); the
 * watch shows those past the last it showed, and says how many went by
 * unseen when more than the history holds (64) came between two looks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "thoth/error.h"
#include "thoth/rtable.h"
#include "pidpin.h"
#include "procfd.h"
#include "thothctl.h"

static volatile sig_atomic_t interrupted;

typedef struct watch_events {
	thoth_control_t ctl;
	bool connected;
	bool off;                       /* not asked again (said once on stderr) */
	bool have_base;                 /* NEXT_SEQ set by the first look */
	uint32_t generation;            /* the table's at the last look */
	uint64_t next_seq;              /* the first event not shown yet */
} watch_events_t;

static void events_off(watch_events_t *w, const char *why)
{
	fprintf(stderr, "thothctl: status --watch: no lifecycle events: %s; the status lines go on\n", why);
	w->off = true;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The events thothd recorded since the last look, once the table says
 * the registry changed.  The first look, before the first line (so that
 * the lines after it cost thothd nothing), only says where the history
 * is: what came before the watch is not shown. */
static void events_poll(watch_events_t *w, const thoth_rtable_t *t, const thothctl_opts_t *opts)
{
	if (w->off)
		return;
	uint32_t gen = thoth_rtable_generation(t);
	if (w->have_base && gen == w->generation)
		return;
	thoth_daemon_Daemon_status_req_t req = { .with_events = true };
	thoth_daemon_Daemon_status_resp_t st;
	static _Alignas(16) uint8_t scratch[256 * 1024];        /* as cmd_status's */
	thoth_arena_t arena;
	int r = -1;                     /* not asked yet */
	/* Twice at most: a kept connection thothd closed meanwhile (an idle
	 * one is the first it closes at its connection limit) is made again. */
	for (int attempt = 0; attempt < 2 && r; attempt++) {
		if (w->connected && attempt) {
			thoth_control_close(&w->ctl);
			w->connected = false;
		}
		if (!w->connected) {
			if (thothctl_connect(&w->ctl, opts->runtime_dir)) {
				events_off(w, "cannot connect to thothd's control socket");
				return;
			}
			w->connected = true;
		}
		thoth_arena_init(&arena, scratch, sizeof scratch);
		r = thoth_daemon_Daemon_status(&w->ctl.client, &req, &st, &arena);
	}
	if (r) {
		events_off(w, thoth_strerror(r));
		return;
	}
	if (!st.events_capacity) {
		events_off(w, "this thothd keeps none (older than Daemon 1.5)");
		return;
	}
	uint64_t first = st.events_dropped, end = first + st.events.count;
	uint64_t now = mono_ns();
	w->generation = gen;
	if (!w->have_base) {            /* where the history is: nothing shown */
		w->have_base = true;
		w->next_seq = end;
		return;
	}
	if (first > w->next_seq) {
		uint64_t unseen = first - w->next_seq;
		if (opts->json)
			printf("{\"events_unseen\":%llu}\n", (unsigned long long)unseen);
		else
			printf("  %llu event%s came and went between two looks, past thothd's history "
			       "(the last %u): its log has their lines\n", (unsigned long long)unseen,
			       unseen == 1 ? "" : "s", st.events_capacity);
	}
	for (uint32_t i = 0; i < st.events.count; i++) {
		uint64_t seq = first + i;
		if (seq < w->next_seq)
			continue;
		if (opts->json) {
			printf("{\"seq\":%llu,", (unsigned long long)seq);
			thothctl_lifecycle_event_json(&st.events.items[i], now);
			printf("}\n");
		} else {
			printf("  event %llu  ", (unsigned long long)seq);
			thothctl_lifecycle_event_text(&st.events.items[i], now);
		}
	}
	if (end > w->next_seq)
		w->next_seq = end;
	fflush(stdout);
}

static void on_signal(int signo)
{
	(void)signo;
	interrupted = 1;
}

static void print_status(const thoth_rtable_status_t *s, const thoth_rtable_status_t *prev, bool json)
{
	if (json) {
		printf("{\"pid\":%u,\"version\":", s->pid);
		thothctl_json_str(s->version, strlen(s->version));
		printf(",\"runtime_dir\":");
		thothctl_json_str(s->runtime_dir, strlen(s->runtime_dir));
		printf(",\"uptime_ns\":%llu,\"age_ns\":%llu,\"clients\":%u,\"registrations\":%u,\"watches\":%u,"
		       "\"wakeups\":%llu,\"wakeups_fd\":%llu,\"wakeups_timer\":%llu,\"timers_fired\":%llu,"
		       "\"next_expiry_ns\":%llu,\"messages\":%llu,\"source\":\"table\"}\n",
		       (unsigned long long)s->uptime_ns, (unsigned long long)s->age_ns, s->clients,
		       s->registrations, s->watches, (unsigned long long)s->wakeups,
		       (unsigned long long)s->wakeups_fd, (unsigned long long)s->wakeups_timer,
		       (unsigned long long)s->timers_fired, (unsigned long long)s->next_expiry_ns,
		       (unsigned long long)s->messages);
	} else {
		printf("thothd pid %u up %.1f s: %u clients, %u registrations, %u watches, %llu wake-ups (+%llu), "
		       "%llu requests (+%llu)\n",
		       s->pid, (double)s->uptime_ns / 1e9, s->clients, s->registrations, s->watches,
		       (unsigned long long)s->wakeups,
		       (unsigned long long)(prev ? s->wakeups - prev->wakeups : 0),
		       (unsigned long long)s->messages,
		       (unsigned long long)(prev ? s->messages - prev->messages : 0));
	}
	fflush(stdout);
}

/* Whether the process PIDFD pins (PID) is not thothd (/proc/PID/comm,
 * read pinned: pidpin.h).  One that exited during the read is not said
 * "not thothd" (its number may be another program's by then): its pidfd,
 * kept, ends the watch as the exit it is. */
static bool not_thothd(uint32_t pid, int pidfd)
{
	char comm[32];
	ssize_t n = thoth__proc_read_pinned(pid, pidfd, "comm", comm, sizeof comm);
	if (n < 0)
		return errno != ESRCH;
	return strcmp(comm, "thothd\n") != 0;
}

int thothctl_status_watch(const thothctl_opts_t *opts, unsigned interval_ms)
{
	thoth_rtable_t *t = NULL;
	char why[300] = "";
	int r = thoth_rtable_open(opts->runtime_dir, &t, why, sizeof why);
	if (r) {
		fprintf(stderr, "thothctl: status --watch: %s\n", why[0] ? why : thoth_strerror(r));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	thoth_rtable_status_t prev, cur;
	watch_events_t ev = { 0 };
	bool have_prev = false, pid_checked = false;
	int status = 0, pidfd = -1;
	/* Where thothd's history is, before the first line: every line after
	 * it (the first included) costs thothd nothing. */
	events_poll(&ev, t, opts);
	while (!interrupted) {
		r = thoth_rtable_status(t, &cur);
		if (r) {
			fprintf(stderr, "thothctl: status --watch: %s%s\n", thoth_strerror(r),
				r == THOTH_E_NOT_FOUND ? " (this thothd publishes no status in its table)" : "");
			status = 1;
			break;
		}
		/* thothd's pidfd, once its pid is known: readable when it exits
		 * (no pidfd (old kernel, EPERM), or the pid is not a thothd here
		 * (another pid namespace): no check).  ESRCH: gone already, or
		 * a thothd in another pid namespace (the table holds its pid
		 * there): its control socket tells which. */
		if (!pid_checked && cur.pid) {
			pid_checked = true;
			if (thothctl_pid_pin(cur.pid, &pidfd, why, sizeof why) && errno == ESRCH) {
				thoth_control_t ctl;
				if (thothctl_connect(&ctl, opts->runtime_dir)) {
					fprintf(stderr, "thothctl: status --watch: thothd (pid %u) is gone\n", cur.pid);
					status = 1;
					break;
				}
				thoth_control_close(&ctl);
			}
			if (pidfd >= 0 && not_thothd(cur.pid, pidfd)) {
				close(pidfd);
				pidfd = -1;
			}
		}
		events_poll(&ev, t, opts);       /* before the line: the events it counts */
		print_status(&cur, have_prev ? &prev : NULL, opts->json);
		prev = cur;
		have_prev = true;
		/* Sleep the interval, or until thothd exits (EINTR on a signal:
		 * the loop sees it). */
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
		if (poll(&pfd, 1, (int)interval_ms) > 0 && (pfd.revents & (POLLIN | POLLHUP))) {
			fprintf(stderr, "thothctl: status --watch: thothd (pid %u) exited\n", cur.pid);
			status = 1;
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	if (ev.connected)
		thoth_control_close(&ev.ctl);
	thoth_rtable_close(t);
	return status;
}
