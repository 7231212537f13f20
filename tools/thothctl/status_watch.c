/*
 * status_watch.c - `thothctl status --watch [--interval MS]`: thothd's
 * status once per interval from the shared table's status block (SCALE-2,
 * thoth_rtable_status), until interrupted.  The table is taken once (one
 * round trip); every line after that costs thothd nothing: no message, no
 * wake-up, so a monitor polling it does not load thothd's one thread.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thoth/error.h"
#include "thoth/rtable.h"
#include "thothctl.h"

static volatile sig_atomic_t interrupted;

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
	bool have_prev = false;
	int status = 0;
	while (!interrupted) {
		r = thoth_rtable_status(t, &cur);
		if (r) {
			fprintf(stderr, "thothctl: status --watch: %s%s\n", thoth_strerror(r),
				r == THOTH_E_NOT_FOUND ? " (this thothd publishes no status in its table)" : "");
			status = 1;
			break;
		}
		print_status(&cur, have_prev ? &prev : NULL, opts->json);
		prev = cur;
		have_prev = true;
		struct timespec ts = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);   /* EINTR on a signal: the loop sees it */
	}
	thoth_rtable_close(t);
	return status;
}
