/*
 * lifecycle.c - thothd's recent history of service lifecycle events (OBS-3,
 * docs/THOTHD.md "Recent events"): which service registered, went away
 * cleanly, was lost with its connection, came back and after how long, and
 * thothd's own start with the predecessor it found dead.
 *
 * What must stay true:
 *  - memory is fixed at thothd_lifecycle_new: a ring of
 *    THOTHD_LIFECYCLE_EVENTS entries (the oldest overwritten, counted in
 *    `dropped`), a table of the last THOTHD_LIFECYCLE_LOSSES losses a
 *    re-registration is matched against, and THOTHD_LIFECYCLE_LABELS
 *    per-service loss counters for /metrics (names past them are counted
 *    under one "(other)" label).  A peer that registers and withdraws in
 *    a loop turns the ring over; nothing grows;
 *  - a lost process is judged by its pidfd, never by its bare number
 *    (which another process may have by now).  A pidfd that is not yet
 *    readable (the process closed its socket and has not finished
 *    exiting, or lives on) is kept with the entry and asked again when
 *    the history is read, so that a kill -9 reads "exited" once it is; at
 *    most one pidfd per ring slot and THOTHD_LIFECYCLE_PIDFDS in all (a
 *    loss past them, all their processes still running, is "unknown"),
 *    closed when the slot is overwritten or the process is seen gone;
 *  - only local instances are recorded: a federated mirror's REMOTE
 *    instances come and go with another host's (federation.c logs them).
 * Loop thread only (the registry's on_change, client close, the handlers,
 * the dashboard's requests).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jsonbuf.h"
#include "thothd.h"

typedef struct lost_name {
	char name[THOTH_LIFECYCLE_NAME_MAX + 1];        /* "": free slot */
	uint64_t at_ns;
	uint32_t pid;
} lost_name_t;

typedef struct loss_label {
	char name[THOTH_LIFECYCLE_NAME_MAX + 1];
	uint64_t lost;
} loss_label_t;

struct thothd_lifecycle {
	thothd_lifecycle_event_t ring[THOTHD_LIFECYCLE_EVENTS];
	int pidfd[THOTHD_LIFECYCLE_EVENTS];     /* a "running" lost entry's process; else -1 */
	uint32_t n_pidfds;                      /* of pidfd[] >= 0: at most THOTHD_LIFECYCLE_PIDFDS */
	uint64_t written;                       /* events ever; the next goes to written % N */
	lost_name_t lost[THOTHD_LIFECYCLE_LOSSES];
	uint32_t lost_next;                     /* the slot a new loss takes when all are used */
	loss_label_t labels[THOTHD_LIFECYCLE_LABELS];
	uint32_t n_labels;
	uint64_t lost_other;                    /* losses of names beyond the labels */
	uint64_t lost_total;
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int thothd_lifecycle_new(thothd_lifecycle_t **out)
{
	thothd_lifecycle_t *l = calloc(1, sizeof *l);
	if (!l)
		return THOTH_E_NOMEM;
	for (size_t i = 0; i < THOTHD_LIFECYCLE_EVENTS; i++)
		l->pidfd[i] = -1;
	*out = l;
	return 0;
}

void thothd_lifecycle_free(thothd_lifecycle_t *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < THOTHD_LIFECYCLE_EVENTS; i++)
		if (l->pidfd[i] >= 0)
			close(l->pidfd[i]);
	free(l);
}

/* The next slot, its previous entry (and pidfd) dropped; KIND and times set. */
static thothd_lifecycle_event_t *push(thothd_lifecycle_t *l, thothd_lifecycle_kind_t kind,
				      uint64_t now_ns)
{
	size_t i = l->written % THOTHD_LIFECYCLE_EVENTS;
	l->written++;
	if (l->pidfd[i] >= 0) {
		close(l->pidfd[i]);
		l->pidfd[i] = -1;
		l->n_pidfds--;
	}
	thothd_lifecycle_event_t *e = &l->ring[i];
	*e = (thothd_lifecycle_event_t){ .kind = kind, .at_ns = now_ns, .at_unix_ns = realtime_ns() };
	return e;
}

static void copy_instance(thothd_lifecycle_event_t *e, const thoth_registry_Instance_t *inst)
{
	const thoth_registry_Registration_t *r = &inst->registration;
	size_t n = r->name.len < THOTH_LIFECYCLE_NAME_MAX ? r->name.len : THOTH_LIFECYCLE_NAME_MAX;
	memcpy(e->service, r->name.ptr, n);
	e->service[n] = 0;
	n = r->version.len < sizeof e->version - 1 ? r->version.len : sizeof e->version - 1;
	memcpy(e->version, r->version.ptr, n);
	e->version[n] = 0;
	e->lease = inst->lease;
	e->pid = r->endpoint.pid;
}

void thothd_lifecycle_started(thothd_lifecycle_t *l, uint64_t now_ns, uint32_t pid,
			      uint32_t predecessor_pid, uint64_t predecessor_started_unix_ns)
{
	thothd_lifecycle_event_t *e = push(l, THOTHD_LIFECYCLE_STARTED, now_ns);
	e->pid = pid;
	e->predecessor_pid = predecessor_pid;
	e->predecessor_started_unix_ns = predecessor_started_unix_ns;
}

static void count_loss(thothd_lifecycle_t *l, const char *name)
{
	l->lost_total++;
	for (uint32_t i = 0; i < l->n_labels; i++)
		if (strcmp(l->labels[i].name, name) == 0) {
			l->labels[i].lost++;
			return;
		}
	if (l->n_labels == THOTHD_LIFECYCLE_LABELS) {
		l->lost_other++;
		return;
	}
	loss_label_t *lab = &l->labels[l->n_labels++];
	/* memmove, not snprintf: GCC -O3 cannot tell that NAME (the event's,
	 * in L's ring) is not LAB's own bytes, and -Wrestrict fails the build. */
	size_t n = strnlen(name, sizeof lab->name - 1);
	memmove(lab->name, name, n);
	lab->name[n] = '\0';
	lab->lost = 1;
}

/* The loss of NAME, remembered for a re-registration to find: a free slot,
 * else the oldest loss's. */
static void remember_loss(thothd_lifecycle_t *l, const char *name, uint64_t now_ns, uint32_t pid)
{
	lost_name_t *slot = NULL;
	for (size_t i = 0; i < THOTHD_LIFECYCLE_LOSSES && !slot; i++)
		if (!l->lost[i].name[0])
			slot = &l->lost[i];
	if (!slot)
		slot = &l->lost[l->lost_next++ % THOTHD_LIFECYCLE_LOSSES];
	snprintf(slot->name, sizeof slot->name, "%s", name);
	slot->at_ns = now_ns;
	slot->pid = pid;
}

static void refresh(thothd_lifecycle_t *l);

void thothd_lifecycle_change(thothd_lifecycle_t *l, int kind, const thoth_registry_Instance_t *inst,
			     uint64_t now_ns, int lost_pidfd, thothd_pid_state_t lost_state)
{
	if (kind == THOTH_REGISTRY_RENEWED ||
	    inst->registration.endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE)
		return;
	thothd_lifecycle_event_t *e;
	if (kind == THOTH_REGISTRY_CHANGE_KIND_ADDED) {
		e = push(l, THOTHD_LIFECYCLE_REGISTERED, now_ns);
		copy_instance(e, inst);
		/* The oldest loss of this name, if any: it came back. */
		lost_name_t *match = NULL;
		for (size_t i = 0; i < THOTHD_LIFECYCLE_LOSSES; i++)
			if (l->lost[i].name[0] && strcmp(l->lost[i].name, e->service) == 0 &&
			    (!match || l->lost[i].at_ns < match->at_ns))
				match = &l->lost[i];
		if (match) {
			e->kind = THOTHD_LIFECYCLE_REREGISTERED;
			e->gap_ns = now_ns - match->at_ns;
			e->previous_pid = match->pid;
			match->name[0] = 0;
		}
	} else if (kind == THOTH_REGISTRY_CHANGE_KIND_EXPIRED) {
		e = push(l, THOTHD_LIFECYCLE_EXPIRED, now_ns);
		copy_instance(e, inst);
	} else if (lost_state != THOTHD_PID_NOT_LOST) {
		size_t slot = l->written % THOTHD_LIFECYCLE_EVENTS;
		e = push(l, THOTHD_LIFECYCLE_LOST, now_ns);
		copy_instance(e, inst);
		e->pid_state = lost_state;
		if (lost_state == THOTHD_PID_RUNNING && lost_pidfd >= 0) {
			/* At most THOTHD_LIFECYCLE_PIDFDS kept (the descriptors
			 * counted off the clients, server.c): those whose process
			 * has exited since are let go first; past the bound (that
			 * many lost processes all still running: a peer closing
			 * its connection in a loop) the loss is "unknown". */
			if (l->n_pidfds >= THOTHD_LIFECYCLE_PIDFDS)
				refresh(l);
			if (l->n_pidfds < THOTHD_LIFECYCLE_PIDFDS)
				l->pidfd[slot] = fcntl(lost_pidfd, F_DUPFD_CLOEXEC, 0);
			if (l->pidfd[slot] < 0)         /* no descriptor: never asked again */
				e->pid_state = THOTHD_PID_UNKNOWN;
			else
				l->n_pidfds++;
		}
		count_loss(l, e->service);
		remember_loss(l, e->service, now_ns, e->pid);
	} else {
		e = push(l, THOTHD_LIFECYCLE_DEREGISTERED, now_ns);
		copy_instance(e, inst);
	}
}

thothd_pid_state_t thothd_lifecycle_pid_state(int pidfd)
{
	if (pidfd < 0)
		return THOTHD_PID_UNKNOWN;
	/* A pidfd polls readable once its process has exited (a zombie
	 * included): never a guess from a number another may hold. */
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	int n = poll(&p, 1, 0);
	if (n < 0)
		return THOTHD_PID_UNKNOWN;
	return n > 0 ? THOTHD_PID_EXITED : THOTHD_PID_RUNNING;
}

/* Ask again about each process last seen running. */
static void refresh(thothd_lifecycle_t *l)
{
	for (size_t i = 0; i < THOTHD_LIFECYCLE_EVENTS; i++) {
		if (l->pidfd[i] < 0)
			continue;
		thothd_pid_state_t s = thothd_lifecycle_pid_state(l->pidfd[i]);
		if (s == THOTHD_PID_RUNNING)
			continue;
		l->ring[i].pid_state = s;
		close(l->pidfd[i]);
		l->pidfd[i] = -1;
		l->n_pidfds--;
	}
}

size_t thothd_lifecycle_read(thothd_lifecycle_t *l, const thothd_lifecycle_event_t **first,
			     size_t *n_first, const thothd_lifecycle_event_t **second,
			     uint64_t *dropped)
{
	refresh(l);
	size_t n = l->written < THOTHD_LIFECYCLE_EVENTS ? (size_t)l->written : THOTHD_LIFECYCLE_EVENTS;
	size_t start = l->written < THOTHD_LIFECYCLE_EVENTS ? 0 : l->written % THOTHD_LIFECYCLE_EVENTS;
	*first = &l->ring[start];
	*n_first = n < THOTHD_LIFECYCLE_EVENTS - start ? n : THOTHD_LIFECYCLE_EVENTS - start;
	*second = l->ring;
	*dropped = l->written - n;
	return n;
}

const char *thothd_lifecycle_kind_name(thothd_lifecycle_kind_t k)
{
	static const char *const names[] = {
		[THOTHD_LIFECYCLE_STARTED] = "started",
		[THOTHD_LIFECYCLE_REGISTERED] = "registered",
		[THOTHD_LIFECYCLE_DEREGISTERED] = "deregistered",
		[THOTHD_LIFECYCLE_LOST] = "lost",
		[THOTHD_LIFECYCLE_REREGISTERED] = "reregistered",
		[THOTHD_LIFECYCLE_EXPIRED] = "expired",
	};
	return (unsigned)k < sizeof names / sizeof names[0] && names[k] ? names[k] : "unknown";
}

const char *thothd_lifecycle_pid_state_name(thothd_pid_state_t s)
{
	switch (s) {
	case THOTHD_PID_EXITED: return "exited";
	case THOTHD_PID_RUNNING: return "running";
	case THOTHD_PID_UNKNOWN: return "unknown";
	default: return "";
	}
}

int thothd_lifecycle_json(thothd_lifecycle_t *l, uint64_t now_ns, char **out, size_t *len)
{
	const thothd_lifecycle_event_t *a, *b;
	size_t na;
	uint64_t dropped;
	size_t n = thothd_lifecycle_read(l, &a, &na, &b, &dropped);
	thothd_jbuf_t j = { 0 };
	thothd_jput(&j, "{\"now_ns\":%llu,\"capacity\":%u,\"dropped\":%llu,\"events\":[",
		    (unsigned long long)now_ns, THOTHD_LIFECYCLE_EVENTS, (unsigned long long)dropped);
	for (size_t i = 0; i < n; i++) {
		const thothd_lifecycle_event_t *e = i < na ? &a[i] : &b[i - na];
		thothd_jput(&j, "%s{\"kind\":\"%s\",\"at_unix_ns\":%llu,\"at_ns\":%llu,\"service\":",
			    i ? "," : "", thothd_lifecycle_kind_name(e->kind),
			    (unsigned long long)e->at_unix_ns, (unsigned long long)e->at_ns);
		thothd_jstr(&j, e->service);
		thothd_jput(&j, ",\"version\":");
		thothd_jstr(&j, e->version);
		thothd_jput(&j, ",\"lease\":\"%016llx\",\"pid\":%u,\"pid_state\":\"%s\",\"gap_ns\":%llu,"
			    "\"previous_pid\":%u,\"predecessor_pid\":%u,\"predecessor_started_unix_ns\":%llu}",
			    (unsigned long long)e->lease, e->pid, thothd_lifecycle_pid_state_name(e->pid_state),
			    (unsigned long long)e->gap_ns, e->previous_pid, e->predecessor_pid,
			    (unsigned long long)e->predecessor_started_unix_ns);
	}
	thothd_jput(&j, "]}\n");
	if (j.failed) {
		free(j.p);
		return THOTH_E_NOMEM;
	}
	*out = j.p;
	*len = j.len;
	return 0;
}

void thothd_lifecycle_metrics(const thothd_lifecycle_t *l, FILE *f)
{
	uint64_t dropped = l->written > THOTHD_LIFECYCLE_EVENTS ? l->written - THOTHD_LIFECYCLE_EVENTS : 0;
	fprintf(f, "# HELP thoth_thothd_service_lost_total Service instances lost: their connection "
		   "closed while still registered (a crash, a kill). The first %u names lost have a "
		   "label each; later names count under service=\"(other)\".\n"
		   "# TYPE thoth_thothd_service_lost_total counter\n", THOTHD_LIFECYCLE_LABELS);
	for (uint32_t i = 0; i < l->n_labels; i++) {
		fputs("thoth_thothd_service_lost_total{service=\"", f);
		thothd_metrics_put_label(f, l->labels[i].name);
		fprintf(f, "\"} %llu\n", (unsigned long long)l->labels[i].lost);
	}
	if (l->lost_other)
		fprintf(f, "thoth_thothd_service_lost_total{service=\"(other)\"} %llu\n",
			(unsigned long long)l->lost_other);
	fprintf(f, "# HELP thoth_thothd_lifecycle_events_total Lifecycle events thothd recorded "
		   "(thothctl status: recent events).\n"
		   "# TYPE thoth_thothd_lifecycle_events_total counter\n"
		   "thoth_thothd_lifecycle_events_total %llu\n"
		   "# HELP thoth_thothd_lifecycle_events_dropped_total Lifecycle events pushed out of "
		   "the history (it keeps the last %u).\n"
		   "# TYPE thoth_thothd_lifecycle_events_dropped_total counter\n"
		   "thoth_thothd_lifecycle_events_dropped_total %llu\n",
		(unsigned long long)l->written, THOTHD_LIFECYCLE_EVENTS, (unsigned long long)dropped);
}
