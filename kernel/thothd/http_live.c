/*
 * http_live.c - what the dashboard shows (docs/DASHBOARD.md): per-CPU idle
 * residency and P-state from sysfs, per-process wake-ups by reason and
 * per-channel IPC latency histograms from trace events, trace-ring fill and
 * losses, the power broker's elements and leases, thothd's own counters.
 *
 * Sources and what they cost:
 *  - sysfs (cpuidle, cpufreq under $THOTH_SYSFS_ROOT): read at each tick and
 *    each scrape; never with no client.
 *  - trace events: categories LOOP, TIMER and IPC are switched on in every
 *    process while collecting (thothd_tracer_live_start) and every event is
 *    counted here: no sampling.  A round trip is a client's SEND and its
 *    RECV with the same trace id (chan_* for shared-memory channels, msg_*
 *    for the socket transport); its latency goes into the channel's
 *    histogram keyed by (service pid, interface id, method).  The service
 *    side's chan_recv carries the request's queueing delay (arg0, ns).
 *  - modelled CPU power and energy per request of every governed service
 *    (SCHED-1): its pm_work points (each request's handler CPU time, the
 *    model and OPP it ran at) priced with the model the trace names: a
 *    published CPU model of kernel/pm/energy.c, or this machine's own
 *    energy model, read here from the same sysfs source the service read
 *    (kernel/pm/trace_model.h); nothing measured.  A model thothd cannot
 *    read is shown unpriced, with the reason.
 *  - thothd itself: loop stats, registry counts, the broker's state (called
 *    through its own handler, as `thothctl pm` does).
 * The last RETAIN_EVENTS events are kept for the "export this window as a
 * Chrome trace" click, through the OBS-1 exporter.
 *
 * Threads: on_event runs with the tracer's mutex held, on the loop thread
 * or on a worker (a busy backlog is drained off the loop thread: trace.c,
 * thothd_tracer_live_drain).  So everything on_event touches -- procs,
 * chans, pending, threads, kept, names, events, unmatched, chans_over,
 * lock_slices, and the lock rings (whose poll feeds on_event) -- is read
 * and written by the loop thread only between thothd_tracer_live_lock and
 * _unlock.  The rest (cpus, ifaces, the lock panel, tick bookkeeping) is
 * the loop thread's alone.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"            /* kernel/pm: thoth_pm_path ($THOTH_SYSFS_ROOT) */
#include "channel.thoth.h"
#include "codex.thoth.h"
#include "daemon.thoth.h"
#include "echo.thoth.h"
#include "http.h"
#include "locks.h"              /* OBS-4's tables (docs/LOCKS.md): shared with LockReports */
#include "log.h"
#include "pm.thoth.h"
#include "power_account.h"     /* kernel/pm: governed services' modelled power */
#include "probe.thoth.h"
#include "registry.thoth.h"
#include "thoth/rpc.h"
#include "timer.thoth.h"
#include "trace.thoth.h"

#define S_NS 1000000000ull

enum {
	MAX_PROCS = 1024,
	MAX_CHANNELS = 256,
	MAX_CPUS = 256,
	MAX_STATES = 10,
	PENDING_SLOTS = 4096,           /* unmatched SENDs kept for their RECV (power of 2) */
	RETAIN_EVENTS = 65536,          /* for the window export (power of 2) */
	MAX_NAMES = 256,
	FINE_BUCKETS = 512,             /* log-linear, 8 per power of two: +-6% */
	THREAD_SLOTS = 1024,
	LOCKS_EVERY = 5,                /* ticks between lock reports (symbolizing costs) */
	LOCKS_TOP = 8,            /* threads followed for wake-up causes (power of 2) */
	MAX_IFACE_NAMES = 128,
};

/* Interfaces whose schema thothd has compiled in (the system IDL): their
 * names, and their methods' names.  Other interfaces are named by the
 * claims their services registered (package + interface; the claim has
 * no method names, so those methods stay numbers). */
static const thoth_interface_info_t *const COMPILED_IFACES[] = {
	&thoth_registry_Registry_info, &thoth_registry_RegistryEvents_info,
	&thoth_timer_Timer_info, &thoth_timer_TimerEvents_info,
	&thoth_trace_TraceControl_info, &thoth_daemon_Daemon_info,
	&thoth_echo_Echo_info, &thoth_channel_Channel_info,
	&thoth_pm_PowerBroker_info, &thoth_pm_PowerEvents_info,
	&thoth_codex_Codex_info, &thoth_probe_ProbeControl_info,
};

typedef struct iface_name {
	uint32_t id;
	char name[96];                  /* "thoth.echo.Echo" */
	const thoth_interface_info_t *info;     /* compiled in: method names; else NULL */
} iface_name_t;

/* Prometheus bucket bounds (seconds) of both IPC histograms. */
static const double PROM_LE[] = { 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
				  1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5 };
#define N_LE (sizeof PROM_LE / sizeof PROM_LE[0])

/* DOORBELL and SOCKET_MSG are fd wake-ups whose first event in the woken
 * thread was a shared-memory channel receive, or a socket message: which
 * kind of fd woke it (a subset of FD, derived from the trace order). */
enum { WAKE_ALL, WAKE_FD, WAKE_TIMER, WAKE_SIGNAL, WAKE_DEFERRED, WAKE_DOORBELL, WAKE_SOCKET_MSG,
       WAKE_KINDS };
static const char *const WAKE_NAME[WAKE_KINDS] = { "all", "fd", "timer", "signal", "deferred",
						   "doorbell", "socket_message" };

typedef struct proc_stat {
	uint32_t pid;
	char name[32];
	uint64_t wake[WAKE_KINDS], timers;      /* since collection started */
	uint64_t prev_wake[WAKE_KINDS], prev_timers;
	uint64_t seen_tick;             /* its buffer was attached at that tick */
	/* Modelled P-state: the SCHED-1 governor's choice in a governed
	 * service (pm_freq_change trace points; docs/DASHBOARD.md). */
	bool governed;                  /* a pm_freq_change was seen */
	uint32_t khz, opp;              /* the last one */
	uint64_t freq_since_ns;         /* since when khz holds (for the interval's average) */
	uint64_t freq_span_from_ns;     /* the interval's average covers from here (first known) */
	double khz_ns;                  /* integral of khz over this interval so far */
	uint64_t freq_changes, prev_freq_changes;
	/* Modelled CPU power: its pm_work points priced with the published
	 * model they name (power_account.h); the last tick's interval. */
	thoth_pm_power_account_t power;
	bool priced;                    /* a pm_work was seen */
	bool have_iv;
	thoth_pm_power_interval_t last_iv;
} proc_stat_t;

typedef struct hist {
	uint64_t count, sum_ns, le[N_LE];       /* cumulative */
	uint32_t fine[FINE_BUCKETS];            /* this interval */
	uint32_t fine_n;
} hist_t;

typedef struct chan_stat {
	uint32_t service_pid, interface_id;
	uint16_t method;
	bool socket;                    /* msg_* (socket transport), else chan_* (shm) */
	hist_t rtt;                     /* client-side round trip */
	hist_t queue;                   /* service-side queueing delay of requests */
	uint64_t wakeups;               /* threads this channel's messages woke */
	uint64_t prev_count, prev_wakeups;
} chan_stat_t;

typedef struct pending {
	uint64_t trace_id;              /* 0: free */
	uint64_t ts;
	uint32_t pid, service_pid, interface_id;
	uint16_t method;
	bool socket, is_recv;
} pending_t;

/* A thread whose last wake-up had an fd ready and has not yet shown what it
 * received first (the wake-up's cause). */
typedef struct thread_wake {
	uint32_t tid, pid;
	uint64_t mask;                  /* the wake-up's reasons (loop_wakeup arg0) */
	bool pending;
} thread_wake_t;

typedef struct kept_event {
	thoth_trace_event_t ev;         /* name NULL: see name */
	uint16_t name;
} kept_event_t;

/*
 * The kept events, for the window export: a ring of RETAIN_EVENTS in
 * KEPT_SEGS segments, each counted by reference.  An export takes a
 * reference to every segment under the tracer's mutex, and copies only
 * the older lap still held by the segment being written (fewer than
 * KEPT_SEG events: the loop thread's share, bounded by the segment size,
 * not by the window); a worker reads the rest later without the mutex.
 * The routing path (on_event, mutex held) writes the current segment past
 * the head the export saw (slots the export took from its copy), and when
 * it comes back round to a segment an export still holds, leaves that
 * segment to the export and takes a fresh one (the lap it replaces stays
 * readable as OLD until the writer leaves the segment).  So an export is
 * exactly the ring as it was when asked for, however long the worker
 * takes, and the copy of up to 65,536 events is no longer on the loop
 * thread.
 */
enum { KEPT_SEG = 1024, KEPT_SEGS = RETAIN_EVENTS / KEPT_SEG };

typedef struct kept_seg {
	atomic_uint refs;
	kept_event_t ev[KEPT_SEG];
} kept_seg_t;

typedef struct kept_ring {
	kept_seg_t *seg[KEPT_SEGS];     /* allocated as the first lap reaches them */
	kept_seg_t *old;                /* the previous lap of the segment being rewritten */
	uint64_t old_base;              /* index of OLD's first event */
	uint64_t head;                  /* events ever kept; the ring holds the last RETAIN */
} kept_ring_t;

static void seg_put(kept_seg_t *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		free(s);
}

static const kept_event_t *kept_at(const kept_ring_t *k, uint64_t i)
{
	if (k->old && i >= k->old_base && i < k->old_base + KEPT_SEG)
		return &k->old->ev[i % KEPT_SEG];
	return &k->seg[(i / KEPT_SEG) % KEPT_SEGS]->ev[i % KEPT_SEG];
}

static uint64_t kept_first(const kept_ring_t *k)
{
	return k->head > RETAIN_EVENTS ? k->head - RETAIN_EVENTS : 0;
}

static void kept_clear(kept_ring_t *k)
{
	for (int i = 0; i < KEPT_SEGS; i++)
		seg_put(k->seg[i]);
	seg_put(k->old);
	*k = (kept_ring_t){ 0 };
}

/* The slot for the next event, or NULL (no memory for a segment: the
 * event is not kept; the next one tries again). */
static kept_event_t *kept_next(kept_ring_t *k)
{
	uint64_t i = k->head;
	kept_seg_t **slot = &k->seg[(i / KEPT_SEG) % KEPT_SEGS];
	if (i % KEPT_SEG == 0) {
		seg_put(k->old);        /* its lap has left the window */
		k->old = NULL;
		if (!*slot || atomic_load_explicit(&(*slot)->refs, memory_order_acquire) > 1) {
			kept_seg_t *n = malloc(sizeof *n);
			if (!n)
				return NULL;
			atomic_init(&n->refs, 1);
			if (*slot) {    /* an export holds it: its lap stays readable */
				k->old = *slot;
				k->old_base = i - RETAIN_EVENTS;
			}
			*slot = n;
		}
	}
	k->head++;
	return &(*slot)->ev[i % KEPT_SEG];
}

/* A window export's view of the kept events and the names they need. */
typedef struct proc_name_entry {
	uint32_t pid, order;
	char name[32];
} proc_name_entry_t;

struct thothd_live_window {
	kept_ring_t ring;               /* its references */
	uint64_t first;
	kept_event_t *tail;             /* the current segment's older lap, copied */
	uint64_t tail_base, tail_n;     /* its first index and length */
	char (*names)[THOTH_TRACE_NAME_MAX + 1];
	uint32_t n_names;
	proc_name_entry_t *procs;       /* sorted by pid on the worker */
	uint32_t n_procs;
};

typedef struct cpu_state {
	char name[32];
	uint64_t usage, time_us, above, below;
	uint64_t prev_time_us, prev_usage;
} cpu_state_t;

typedef struct cpu_stat {
	uint32_t cpu;
	uint32_t n_states;
	cpu_state_t states[MAX_STATES];
	int64_t freq_khz;               /* -1: no cpufreq */
} cpu_stat_t;

struct thothd_live {
	thothd_t *d;
	bool collecting;
	uint64_t started_ns, last_tick_ns;
	uint64_t ticks;
	proc_stat_t procs[MAX_PROCS];
	uint32_t n_procs, last_proc;
	chan_stat_t chans[MAX_CHANNELS];
	uint32_t n_chans;
	uint64_t chans_over;            /* round trips of channels beyond MAX_CHANNELS */
	pending_t *pending;
	thread_wake_t threads[THREAD_SLOTS];
	uint64_t unmatched;             /* SENDs overwritten before their RECV */
	kept_ring_t kept;               /* while collecting */
	char names[MAX_NAMES][THOTH_TRACE_NAME_MAX + 1];
	uint32_t n_names;
	uint64_t events;                /* routed since collection started */
	cpu_stat_t cpus[MAX_CPUS];
	uint32_t n_cpus;
	char idle_driver[32], idle_governor[32];
	char *locks_json;               /* the last lock report object (refreshed every LOCKS_EVERY ticks) */
	uint64_t locks_tick;            /* when locks_json was made */
	uint64_t lock_set;              /* a hash of the tables seen at the last tick */
	bool locks_stale;               /* the set of profiled processes changed */
	struct locks_job *locks_job;    /* the report being made on a worker, or NULL */
	thothd_lock_rings_t *rings;     /* preloaded processes' contention rings (locks_scan.c) */
	uint64_t lock_slices, lock_slices_lost;
	/* The ring poll (rings_poll: the tracer's mutex held, either thread). */
	uint64_t rings_polled_ns;       /* when the last poll began (0: none yet) */
	uint64_t rings_cpu_ns;          /* the last complete poll's CPU time */
	uint64_t ring_set;              /* its hash of the tables seen */
	pthread_t loop_thread;          /* thothd_live_new runs on it */
	bool report_on_task;            /* THOTHD_LOCK_PANEL_LANE=task: the old lane (bench baseline) */
	double prev_energy_mj;
	uint64_t prev_calls;
	bool have_prev_energy;
	iface_name_t ifaces[MAX_IFACE_NAMES];
	uint32_t n_ifaces;
};

/* ---- small helpers ------------------------------------------------------------------ */

static int read_line(const char *path, char *out, size_t cap)
{
	char full[768];
	if (thoth_pm_path(full, sizeof full, path))
		return THOTH_E_INVAL;
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return THOTH_E_NOT_FOUND;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0)
		return THOTH_E_IO;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

static bool read_u64(const char *path, uint64_t *v)
{
	char buf[32], *end;
	if (read_line(path, buf, sizeof buf))
		return false;
	errno = 0;
	unsigned long long x = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return false;
	*v = x;
	return true;
}

/* A string for JSON and Prometheus label values: both escape \ and ", and
 * names from shared memory are printable ASCII already (the reader checks). */
/* A label value (serve_stats.c, which the oneway line shares it with). */
static void put_escaped(FILE *f, const char *s)
{
	thothd_metrics_put_label(f, s);
}

static unsigned fine_index(uint64_t v)
{
	if (v < 16)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	unsigned idx = 16 + (e - 4) * 8 + (unsigned)((v >> (e - 3)) & 7);
	return idx < FINE_BUCKETS ? idx : FINE_BUCKETS - 1;
}

static double fine_value(unsigned idx)
{
	if (idx < 16)
		return idx;
	unsigned e = (idx - 16) / 8 + 4, sub = (idx - 16) % 8;
	double lo = (double)((8ull + sub) << (e - 3)), width = (double)(1ull << (e - 3));
	return lo + width / 2;
}

static void hist_add(hist_t *h, uint64_t ns)
{
	h->count++;
	h->sum_ns += ns;
	double s = (double)ns / 1e9;
	for (size_t i = 0; i < N_LE; i++)
		if (s <= PROM_LE[i])
			h->le[i]++;
	h->fine[fine_index(ns)]++;
	h->fine_n++;
}

/* The Q-quantile of this interval's values, in ns (0 when there are none). */
static double hist_quantile(const hist_t *h, double q)
{
	if (!h->fine_n)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->fine_n + 0.999999), seen = 0;
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < FINE_BUCKETS; i++) {
		seen += h->fine[i];
		if (seen >= rank)
			return fine_value(i);
	}
	return fine_value(FINE_BUCKETS - 1);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int thothd_live_new(thothd_t *d, thothd_live_t **out)
{
	thothd_live_t *l = calloc(1, sizeof *l);
	if (!l)
		return THOTH_E_NOMEM;
	l->d = d;
	l->loop_thread = pthread_self();
	const char *lane = getenv("THOTHD_LOCK_PANEL_LANE");
	l->report_on_task = lane && strcmp(lane, "task") == 0;
	if (thothd_lock_rings_new(&l->rings)) {
		free(l);
		return THOTH_E_NOMEM;
	}
	*out = l;
	return 0;
}

static void locks_orphan(struct locks_job *job);

void thothd_live_free(thothd_live_t *l)
{
	if (!l)
		return;
	if (l->locks_job)
		locks_orphan(l->locks_job);     /* its report is dropped when it is done */
	free(l->pending);
	kept_clear(&l->kept);
	free(l->locks_json);
	thothd_lock_rings_free(l->rings);
	free(l);
}

bool thothd_live_collecting(const thothd_live_t *l)
{
	return l && l->collecting;
}

void thothd_live_drain(thothd_live_t *l)
{
	if (l && l->collecting)
		thothd_tracer_live_drain(l->d->tracer);
}

bool thothd_live_busy(const thothd_live_t *l)
{
	return l && thothd_tracer_live_busy(l->d->tracer);
}

static void on_event(const thoth_trace_event_t *ev, const char *process, void *ctx);
static void read_cpus(thothd_live_t *l);
static void locks_refresh(thothd_live_t *l);
static void rings_poll(thothd_tracer_t *t, void *ctx);
static bool rings_heavy(void *ctx);

int thothd_live_start(thothd_live_t *l)
{
	if (l->collecting)
		return 0;
	/* Kept only while collecting: an idle thothd holds none of it. */
	l->pending = calloc(PENDING_SLOTS, sizeof *l->pending);
	if (!l->pending)
		return THOTH_E_NOMEM;
	l->n_procs = l->n_chans = l->n_names = 0;
	l->last_proc = 0;
	l->events = l->unmatched = l->chans_over = 0;  /* kept: emptied at the stop */
	l->have_prev_energy = false;
	memset(l->threads, 0, sizeof l->threads);
	free(l->locks_json);            /* refreshed below */
	l->locks_json = NULL;
	/* Under the mutex: a task of the last collection may still be polling
	 * (it stops at its next ring once it sees the observer gone). */
	thothd_tracer_live_lock(l->d->tracer);
	thothd_lock_rings_reset(l->rings);
	l->lock_slices = l->lock_slices_lost = 0;
	l->rings_polled_ns = l->rings_cpu_ns = l->ring_set = 0;
	thothd_tracer_live_unlock(l->d->tracer);
	l->lock_set = 0;
	l->locks_stale = false;
	int r = thothd_tracer_live_start(l->d->tracer,
					 THOTH_TRACE_MASK(LOOP) | THOTH_TRACE_MASK(TIMER) |
						 THOTH_TRACE_MASK(IPC) | THOTH_TRACE_MASK(PM) |
						 THOTH_TRACE_MASK(LOCK),
					 on_event, l);
	if (r) {
		free(l->pending);
		l->pending = NULL;
		return r;
	}
	l->collecting = true;
	l->started_ns = l->last_tick_ns = thothd_now(l->d);
	thothd_tracer_live_set_poll(l->d->tracer, rings_poll, rings_heavy);
	read_cpus(l);                   /* the first interval's baseline */
	l->locks_tick = l->ticks;
	locks_refresh(l);               /* made on a worker: ready for the first tick */
	return 0;
}

void thothd_live_stop(thothd_live_t *l)
{
	if (!l || !l->collecting)
		return;
	thothd_tracer_live_stop(l->d->tracer);
	l->collecting = false;
	free(l->pending);
	l->pending = NULL;
	/* Under the mutex: a task of this collection may still be routing (it
	 * stops at its next chunk once it sees the observer gone).  Exports
	 * keep the segments they hold. */
	thothd_tracer_live_lock(l->d->tracer);
	kept_clear(&l->kept);
	thothd_tracer_live_unlock(l->d->tracer);
}

/* ---- events ------------------------------------------------------------------------------ */

static proc_stat_t *proc_of(thothd_live_t *l, uint32_t pid, const char *name)
{
	if (l->last_proc < l->n_procs && l->procs[l->last_proc].pid == pid)
		return &l->procs[l->last_proc];
	for (uint32_t i = 0; i < l->n_procs; i++) {
		if (l->procs[i].pid == pid) {
			l->last_proc = i;
			return &l->procs[i];
		}
	}
	if (l->n_procs == MAX_PROCS || !name)
		return NULL;
	proc_stat_t *p = &l->procs[l->n_procs];
	memset(p, 0, sizeof *p);
	p->pid = pid;
	snprintf(p->name, sizeof p->name, "%s", name);
	l->last_proc = l->n_procs++;
	return p;
}

static chan_stat_t *chan_of(thothd_live_t *l, uint32_t service, uint32_t iface, uint16_t method,
			    bool socket)
{
	for (uint32_t i = 0; i < l->n_chans; i++) {
		chan_stat_t *c = &l->chans[i];
		if (c->service_pid == service && c->interface_id == iface && c->method == method &&
		    c->socket == socket)
			return c;
	}
	if (l->n_chans == MAX_CHANNELS)
		return NULL;
	chan_stat_t *c = &l->chans[l->n_chans++];
	memset(c, 0, sizeof *c);
	c->service_pid = service;
	c->interface_id = iface;
	c->method = method;
	c->socket = socket;
	return c;
}

static uint16_t name_of(thothd_live_t *l, const char *name)
{
	for (uint32_t i = 0; i < l->n_names; i++)
		if (strcmp(l->names[i], name) == 0)
			return (uint16_t)i;
	if (l->n_names == MAX_NAMES)
		return UINT16_MAX;
	snprintf(l->names[l->n_names], sizeof l->names[0], "%s", name);
	return (uint16_t)l->n_names++;
}

/* A message event: the client's SEND and RECV of one trace id make a round
 * trip; the service's RECV carries the request's queueing delay. */
static void on_message(thothd_live_t *l, const thoth_trace_event_t *ev, bool socket)
{
	bool recv = ev->flags & THOTH_TRACE_RECV;
	bool client_side = ev->pid != ev->service_id;
	if (!client_side) {
		if (recv && ev->arg0 && !socket) {
			chan_stat_t *c = chan_of(l, ev->service_id, ev->interface_id, ev->method, socket);
			if (c)
				hist_add(&c->queue, ev->arg0);
		}
		return;
	}
	if (!ev->trace_id)
		return;
	pending_t *p = &l->pending[(ev->trace_id * 0x9E3779B97F4A7C15ull >> 52) & (PENDING_SLOTS - 1)];
	if (p->trace_id == ev->trace_id && p->pid == ev->pid && p->is_recv != recv) {
		const pending_t *send = recv ? p : NULL;
		uint64_t t_send = recv ? p->ts : ev->timestamp_ns, t_recv = recv ? ev->timestamp_ns : p->ts;
		uint32_t service = send ? send->service_pid : ev->service_id;
		uint32_t iface = send ? send->interface_id : ev->interface_id;
		uint16_t method = send ? send->method : ev->method;
		p->trace_id = 0;
		if (t_recv < t_send)
			return;
		chan_stat_t *c = chan_of(l, service, iface, method, socket);
		if (c)
			hist_add(&c->rtt, t_recv - t_send);
		else
			l->chans_over++;
		return;
	}
	if (p->trace_id && !p->is_recv)
		l->unmatched++;
	*p = (pending_t){ .trace_id = ev->trace_id, .ts = ev->timestamp_ns, .pid = ev->pid,
			  .service_pid = ev->service_id, .interface_id = ev->interface_id,
			  .method = ev->method, .socket = socket, .is_recv = recv };
}

static thread_wake_t *thread_of(thothd_live_t *l, uint32_t tid)
{
	return &l->threads[(tid * 2654435761u >> 8) & (THREAD_SLOTS - 1)];
}

/* Count one wake-up of PID with reasons MASK, and its CAUSE (WAKE_DOORBELL,
 * WAKE_SOCKET_MSG, or -1: none seen). */
static void count_wake(thothd_live_t *l, uint32_t pid, uint64_t mask, int cause,
		       const char *process)
{
	proc_stat_t *p = proc_of(l, pid, process);
	if (!p)
		return;
	p->wake[WAKE_ALL]++;
	if (mask & THOTH_LOOP_WAKE_FD)
		p->wake[WAKE_FD]++;
	if (mask & THOTH_LOOP_WAKE_TIMER)
		p->wake[WAKE_TIMER]++;
	if (mask & THOTH_LOOP_WAKE_SIGNAL)
		p->wake[WAKE_SIGNAL]++;
	if (mask & THOTH_LOOP_WAKE_DEFERRED)
		p->wake[WAKE_DEFERRED]++;
	if (cause >= 0)
		p->wake[cause]++;
}

/* The first message a woken thread receives names what woke it.  The
 * wake-up is counted only then (or, with no receive, at the thread's next
 * wake-up), so that a wake-up and its cause land in the same interval even
 * when a tick's drain falls between the two events: per interval,
 * doorbell + socket_message <= fd <= all. */
static void attribute_wake(thothd_live_t *l, const thoth_trace_event_t *ev, const char *process,
			   bool socket)
{
	thread_wake_t *t = thread_of(l, ev->tid);
	if (!t->pending || t->tid != ev->tid || t->pid != ev->pid || !(ev->flags & THOTH_TRACE_RECV))
		return;
	t->pending = false;
	count_wake(l, t->pid, t->mask, socket ? WAKE_SOCKET_MSG : WAKE_DOORBELL, process);
	chan_stat_t *c = chan_of(l, ev->service_id, ev->interface_id, ev->method, socket);
	if (c)
		c->wakeups++;
}

static void on_event(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	thothd_live_t *l = ctx;
	l->events++;
	kept_event_t *k = kept_next(&l->kept);
	if (k) {
		k->ev = *ev;
		k->ev.name = NULL;
		k->name = name_of(l, ev->name ? ev->name : "?");
	}
	const char *n = ev->name ? ev->name : "";
	if (ev->category == THOTH_TRACE_CAT_LOOP && strcmp(n, "loop_wakeup") == 0) {
		if (!proc_of(l, ev->pid, process))
			return;
		thread_wake_t *t = thread_of(l, ev->tid);
		if (t->pending)         /* the slot's previous wake-up showed no receive: plain fd */
			count_wake(l, t->pid, t->mask, -1, NULL);
		*t = (thread_wake_t){ .tid = ev->tid, .pid = ev->pid, .mask = ev->arg0,
				      .pending = (ev->arg0 & THOTH_LOOP_WAKE_FD) != 0 };
		if (!t->pending)
			count_wake(l, ev->pid, ev->arg0, -1, process);
	} else if (ev->category == THOTH_TRACE_CAT_PM && strcmp(n, "pm_work") == 0) {
		/* arg0 = a request's handler CPU ns, arg1 = model << 16 | OPP */
		proc_stat_t *p = proc_of(l, ev->pid, process);
		if (!p)
			return;
		p->priced = true;
		thoth_pm_power_account_work(&p->power, ev->arg0, ev->arg1);   /* or counted unpriced */
	} else if (ev->category == THOTH_TRACE_CAT_PM && strcmp(n, "pm_freq_change") == 0) {
		/* arg0 = kHz, arg1 = reason << 32 | model << 16 | OPP (docs/OBSERVABILITY.md) */
		proc_stat_t *p = proc_of(l, ev->pid, process);
		if (!p)
			return;
		thoth_pm_power_account_freq(&p->power, ev->arg0, ev->arg1);
		uint64_t ts = ev->timestamp_ns > p->freq_since_ns ? ev->timestamp_ns : p->freq_since_ns;
		if (p->governed) {
			p->khz_ns += (double)p->khz * (double)(ts - p->freq_since_ns);
		} else {
			p->khz_ns = 0;  /* unknown before its first change */
			p->freq_span_from_ns = ts;
		}
		p->governed = true;
		p->khz = (uint32_t)ev->arg0;
		p->opp = (uint32_t)ev->arg1 & 0xffff;
		p->freq_since_ns = ts;
		p->freq_changes++;
	} else if (ev->category == THOTH_TRACE_CAT_TIMER && strcmp(n, "timer_fire") == 0) {
		proc_stat_t *p = proc_of(l, ev->pid, process);
		if (p)
			p->timers++;
	} else if (ev->category == THOTH_TRACE_CAT_IPC) {
		proc_of(l, ev->pid, process);   /* so the service's name is known */
		if (strcmp(n, "chan_send") == 0 || strcmp(n, "chan_recv") == 0) {
			attribute_wake(l, ev, process, false);
			on_message(l, ev, false);
		} else if (strcmp(n, "msg_send") == 0 || strcmp(n, "msg_recv") == 0) {
			attribute_wake(l, ev, process, true);
			on_message(l, ev, true);
		}
	} else if (ev->category == THOTH_TRACE_CAT_LOCK) {
		l->lock_slices++;
	}
}

/* ---- sysfs: cpuidle and cpufreq ------------------------------------------------------- */

static void read_cpus(thothd_live_t *l)
{
	if (read_line("/sys/devices/system/cpu/cpuidle/current_driver", l->idle_driver,
		      sizeof l->idle_driver))
		snprintf(l->idle_driver, sizeof l->idle_driver, "absent");
	if (read_line("/sys/devices/system/cpu/cpuidle/current_governor", l->idle_governor,
		      sizeof l->idle_governor) &&
	    read_line("/sys/devices/system/cpu/cpuidle/current_governor_ro", l->idle_governor,
		      sizeof l->idle_governor))
		l->idle_governor[0] = 0;
	uint32_t n = 0;
	for (uint32_t cpu = 0; cpu < MAX_CPUS; cpu++) {
		char p[160], name[32];
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/uevent", cpu);
		uint64_t dummy;
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u", cpu);
		char full[768];
		if (thoth_pm_path(full, sizeof full, p) || access(full, F_OK) != 0)
			break;
		cpu_stat_t *c = &l->cpus[n];
		if (c->cpu != cpu || n >= l->n_cpus)
			memset(c, 0, sizeof *c);
		c->cpu = cpu;
		uint32_t s;
		for (s = 0; s < MAX_STATES; s++) {
			snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/name", cpu, s);
			if (read_line(p, name, sizeof name))
				break;
			cpu_state_t *st = &c->states[s];
			if (strcmp(st->name, name) != 0) {
				memset(st, 0, sizeof *st);
				snprintf(st->name, sizeof st->name, "%s", name);
			}
			st->prev_time_us = st->time_us;
			st->prev_usage = st->usage;
#define STATE_FILE(file, field)                                                                   \
	snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpuidle/state%u/" file, cpu, s);     \
	if (!read_u64(p, &st->field))                                                             \
		st->field = 0
			STATE_FILE("usage", usage);
			STATE_FILE("time", time_us);
			STATE_FILE("above", above);
			STATE_FILE("below", below);
#undef STATE_FILE
		}
		c->n_states = s;
		snprintf(p, sizeof p, "/sys/devices/system/cpu/cpu%u/cpufreq/scaling_cur_freq", cpu);
		c->freq_khz = read_u64(p, &dummy) ? (int64_t)dummy : -1;
		n++;
	}
	l->n_cpus = n;
}

/* ---- the power broker (through its own handler, as `thothctl pm` sees it) ------------- */

typedef struct pm_view {
	thothd_call_t call;
	thoth_server_io_t io;
	thoth_pm_PowerBroker_state_resp_t st;
	bool ok;
} pm_view_t;

static void pm_view_open(thothd_live_t *l, pm_view_t *v)
{
	memset(v, 0, sizeof *v);
	if (!l->d->pm || !thothd_pm_handlers.state)
		return;
	v->call.d = l->d;
	v->call.io = &v->io;
	thoth_pm_PowerBroker_state_req_t req = { 0 };
	v->ok = thothd_pm_handlers.state(&v->call, &req, &v->st, NULL) == 0;
}

static void pm_view_close(pm_view_t *v)
{
	free(v->call.scratch);
	free(v->io.out);
}

static double pm_total_energy(const pm_view_t *v)
{
	double mj = 0;
	for (uint32_t i = 0; v->ok && i < v->st.elements.count; i++)
		mj += v->st.elements.items[i].energy_mj;
	return mj;
}

static const char *lease_status_name(unsigned s)
{
	switch (s) {
	case THOTH_PM_LEASE_STATUS_PENDING: return "pending";
	case THOTH_PM_LEASE_STATUS_SATISFIED: return "satisfied";
	case THOTH_PM_LEASE_STATUS_LOST: return "lost";
	default: return "other";
	}
}

/* ---- lock contention (OBS-4): the profiler's live tables --------------------------------- */

/* Processes run with LD_PRELOAD=libthothlock.so publish RUNTIME_DIR/locks/
 * PID.table; the report (docs/LOCKS.md's JSON document, top LOCKS_TOP
 * locks by wait) is what `thothctl --json locks` prints.  Symbolizing reads
 * ELF files (a process's first report: ~100 ms), so it is refreshed every
 * LOCKS_EVERY ticks, not every tick, and made on thothd's workers
 * (thothd_defer_task_slow, defer.c: never ahead of a drain on the task
 * thread), the panel showing the last report meanwhile.  It touches
 * nothing of the dashboard's: the tables, and the symbol cache under its
 * own mutex (shared with LockReports' workers, locks.c). */
typedef struct locks_job {
	thothd_live_t *l;               /* NULL: the dashboard went away (loop thread only) */
	char dir[4200];
	struct thothd_lock_symcache *syms;
	pthread_mutex_t *syms_mu;
	char *json;                     /* the report made, or NULL: keep the last */
	uint64_t wall_ns, cpu_ns;
	bool here;                      /* made on the loop thread (THOTHD_DEFER=off) */
} locks_job_t;

/* As LockReports' scans (locks.c): a dead marker removed at info, a name
 * refused at debug (the panel's refusals name it). */
static void locks_prune_say(void *ctx, bool refused, const char *line)
{
	(void)ctx;
	if (refused)
		thothd_debug("locks: %s", line);
	else
		thothd_info("locks: removed the dead marker %s", line);
}

static char *locks_report(const char *dir, struct thothd_lock_symcache *syms, pthread_mutex_t *syms_mu)
{
	thothd_lock_scan_t *scan = malloc(sizeof *scan);
	if (!scan)
		return NULL;
	/* While a LockReports worker symbolizes, the panel keeps its last
	 * figures (NULL) rather than wait for a first report. */
	if (syms_mu && pthread_mutex_trylock(syms_mu) != 0) {
		free(scan);
		return NULL;
	}
	(void)thothd_lock_prune(dir, locks_prune_say, NULL);   /* dead markers (docs/LOCKS.md) */
	if (thothd_lock_scan_cached(dir, 0, syms, scan))   /* symbols kept (locks.h) */
		scan->n = 0;
	thothlock_table_t *const *tables = scan->tables;
	size_t n = scan->n;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f) {
		if (!n) {
			/* What feeds this panel first: thothlock, whose run is
			 * listed here while it runs and reported at its exit;
			 * where no launcher is found, the library by its full
			 * path (the bare name is not on ld.so's path), seen
			 * here only.  thothctl locks says the same. */
			char lib[THOTHLOCK_HINT_MAX], launcher[PATH_MAX];
			fprintf(f, "{\"available\":false,\"why\":\"");
			put_escaped(f, "no process publishes lock statistics: to see one in this panel, start it with ");
			if (thothd_lock_launcher(launcher, sizeof launcher)) {
				put_escaped(f, launcher);
				put_escaped(f, " -- PROGRAM (listed here while it runs and reported at its exit, kept "
					       "through a kill -9; docs/LOCKS.md)");
			} else {
				put_escaped(f, "LD_PRELOAD=");
				put_escaped(f, thothd_lock_preload_hint(lib, sizeof lib));
				put_escaped(f, " PROGRAM (no thothlock launcher found; docs/LOCKS.md)");
			}
			fprintf(f, "\"}");
		} else {
			thothlock_report_opts_t opts = { .json = true, .top = LOCKS_TOP };
			fprintf(f, "{\"available\":true,\"report\":");
			if (thothlock_report_write(f, tables, n, &opts))
				fprintf(f, "null");
			fprintf(f, "}");
		}
		if (fclose(f) != 0) {
			free(buf);
			buf = NULL;
		}
	}
	thothd_lock_scan_free(scan);
	if (syms)
		thothd_lock_symcache_trim(syms);
	if (syms_mu)
		pthread_mutex_unlock(syms_mu);
	free(scan);
	/* The report ends with a newline: strip it so it embeds in one SSE line. */
	for (char *c = buf; c && *c; c++)
		if (*c == '\n')
			*c = ' ';
	return buf;
}

static void locks_work(void *arg)
{
	locks_job_t *job = arg;
	uint64_t cpu0 = thothd_thread_cpu_ns(), wall0 = thoth_clock_now();
	job->json = locks_report(job->dir, job->syms, job->syms_mu);
	job->cpu_ns = thothd_thread_cpu_ns() - cpu0;
	job->wall_ns = thoth_clock_now() - wall0;
}

/* Loop thread: the panel takes the new report. */
static int locks_done(void *arg, bool ran, void *resp, thoth_arena_t *arena, const char **reason)
{
	(void)resp;
	(void)arena;
	(void)reason;
	locks_job_t *job = arg;
	thothd_live_t *l = job->l;
	if (ran)
		thothd_debug("dashboard: lock report in %.1f ms (%.1f ms CPU) on %s",
			     job->wall_ns / 1e6, job->cpu_ns / 1e6,
			     job->here ? "the loop thread" : "a worker thread");
	if (!l)
		return 0;
	if (l->locks_job == job)
		l->locks_job = NULL;
	if (job->json) {
		free(l->locks_json);
		l->locks_json = job->json;
		job->json = NULL;
	}
	return 0;
}

static void locks_orphan(locks_job_t *job)
{
	job->l = NULL;
}

static void locks_release(void *arg)
{
	locks_job_t *job = arg;
	free(job->json);
	free(job);
}

static const thothd_job_ops_t locks_ops = {
	.method = NULL,
	.work = locks_work,
	.done = locks_done,
	.release = locks_release,
};

/* Refresh the panel's report: on a worker (the panel has it at a later
 * tick), or here when deferring is off (THOTHD_DEFER=off). */
static void locks_refresh(thothd_live_t *l)
{
	if (l->locks_job)
		return;                 /* one at a time: it takes this refresh's place */
	locks_job_t *job = calloc(1, sizeof *job);
	if (!job)
		return;
	job->l = l;
	snprintf(job->dir, sizeof job->dir, "%s/locks",
		 l->d->cfg.runtime_dir ? l->d->cfg.runtime_dir : ".");
	job->syms = l->d->lock_syms;
	job->syms_mu = l->d->lock_syms_mu;
	l->locks_job = job;
	int r = l->report_on_task ? thothd_defer_task(l->d, &locks_ops, job)
				  : thothd_defer_task_slow(l->d, &locks_ops, job);
	if (r == 0)
		return;
	l->locks_job = NULL;
	if (r < 0) {
		thothd_warn("dashboard: cannot make the lock report on a thread (%s): making it here",
			    thoth_strerror(r));
	}
	job->here = true;
	locks_work(job);
	locks_done(job, true, NULL, NULL, NULL);
	locks_release(job);
}

/* The contended acquisitions that preloaded processes wrote to their
 * tables' rings since the last poll become `lock_wait` events (category
 * lock, arg0 = wait ns, arg1 = the lock's address, stamped at the wait's
 * start: what thoth_mutex emits), so the window export draws them as
 * slices on the waiting thread's track.  Only the header and the slots
 * written since the last poll are read (thothlock_ring_read), not the
 * table: a quiet ring costs its header page.
 *
 * Polled once a tick (RINGS_EVERY_NS apart) by the observer's drain,
 * wherever it runs: on the loop thread after a small drain while the last
 * poll was cheap (below RINGS_INLINE_NS of CPU: a handful of profiled
 * processes), else (and for a collection's first) on the task thread, ring by ring, stepping aside when
 * the loop thread wants the tracer's mutex (many profiled processes, busy
 * rings, or a directory full of tables: each is read, whatever wrote it). */
enum { RINGS_EVERY_NS = 900000000, RINGS_INLINE_NS = 250000 };

static void on_lock_wait(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	on_event(ev, process, ctx);
}

static bool rings_step(void *ctx)
{
	return thothd_tracer_live_step(ctx);
}

/* Mutex held, either thread. */
static bool rings_due(const thothd_live_t *l)
{
	return !l->rings_polled_ns || thoth_clock_now() - l->rings_polled_ns >= RINGS_EVERY_NS;
}

/* Costly, or not known yet: a collection's first poll may find every ring
 * full (32 full rings: 8-10 ms of CPU), so it is taken to be costly. */
static bool rings_heavy(void *ctx)
{
	const thothd_live_t *l = ctx;
	return rings_due(l) && (!l->rings_polled_ns || l->rings_cpu_ns > RINGS_INLINE_NS);
}

static void rings_poll(thothd_tracer_t *t, void *ctx)
{
	thothd_live_t *l = ctx;
	if (!rings_due(l))
		return;
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/locks", l->d->cfg.runtime_dir ? l->d->cfg.runtime_dir : ".");
	uint64_t cpu0 = thothd_thread_cpu_ns(), wall0 = thoth_clock_now();
	l->rings_polled_ns = wall0;
	uint64_t set;
	thothd_lock_rings_t *rings = l->rings;
	if (!thothd_lock_rings_poll_steps(rings, dir, l->started_ns, on_lock_wait, l, &l->lock_slices_lost,
					  rings_step, t, &set))
		return;         /* the observer went away: L may be gone */
	uint64_t cpu = thothd_thread_cpu_ns() - cpu0;
	l->rings_cpu_ns = cpu;
	l->ring_set = set;
	uint32_t files;
	uint64_t waits;
	thothd_lock_rings_last(rings, &files, &waits);
	if (files)
		thothd_debug("dashboard: polled %u lock rings (%llu waits) in %.3f ms (%.3f ms CPU) on "
			     "the %s thread", files, (unsigned long long)waits,
			     (thoth_clock_now() - wall0) / 1e6, cpu / 1e6,
			     pthread_equal(pthread_self(), l->loop_thread) ? "loop" : "task");
}

/* Loop thread, mutex held: a process that started or ended under the
 * profiler refreshes the lock panel at this tick, not up to LOCKS_EVERY
 * ticks later. */
static void note_ring_set(thothd_live_t *l)
{
	if (l->ring_set != l->lock_set)
		l->locks_stale = true;
	l->lock_set = l->ring_set;
}

/* ---- interface names -------------------------------------------------------------------- */

static void iface_add(thothd_live_t *l, uint32_t id, const char *package, size_t plen,
		      const char *name, size_t nlen, const thoth_interface_info_t *info)
{
	for (uint32_t i = 0; i < l->n_ifaces; i++)
		if (l->ifaces[i].id == id)
			return;
	if (l->n_ifaces == MAX_IFACE_NAMES)
		return;
	iface_name_t *e = &l->ifaces[l->n_ifaces++];
	e->id = id;
	e->info = info;
	snprintf(e->name, sizeof e->name, "%.*s.%.*s", (int)plen, package, (int)nlen, name);
}

/* The names of the interface ids seen: thothd's compiled-in schemas, then
 * the claims of every live registration (a claim's id was checked against
 * its name at registration: registry.c).  Rebuilt at each tick and scrape:
 * a registry of a few hundred instances costs microseconds. */
static void iface_refresh(thothd_live_t *l)
{
	l->n_ifaces = 0;
	for (size_t i = 0; i < sizeof COMPILED_IFACES / sizeof COMPILED_IFACES[0]; i++) {
		const thoth_interface_info_t *f = COMPILED_IFACES[i];
		iface_add(l, f->id, f->package, strlen(f->package), f->name, strlen(f->name), f);
	}
	const thoth_registry_Instance_t **inst = NULL;
	size_t n = 0;
	if (!l->d->registry ||
	    thoth_registry_list(l->d->registry, thoth_str(""), THOTH_COMMON_LOCALITY_ANY,
				thothd_now(l->d), &inst, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		const thoth_registry_Registration_t *r = &inst[i]->registration;
		for (uint32_t k = 0; k < r->claims.count; k++) {
			const thoth_common_InterfaceClaim_t *c = &r->claims.items[k];
			iface_add(l, c->interface_id, c->package.ptr, c->package.len, c->interface.ptr,
				  c->interface.len, NULL);
		}
	}
	free(inst);
}

static const iface_name_t *iface_lookup(const thothd_live_t *l, uint32_t id)
{
	for (uint32_t i = 0; i < l->n_ifaces; i++)
		if (l->ifaces[i].id == id)
			return &l->ifaces[i];
	return NULL;
}

/* "name" (the method's own, after "Interface.") or NULL when unknown. */
static const char *method_name(const iface_name_t *f, uint16_t method)
{
	const thoth_method_info_t *m = f && f->info ? thoth_interface_method(f->info, method) : NULL;
	if (!m || !m->name)
		return NULL;
	const char *dot = strrchr(m->name, '.');
	return dot ? dot + 1 : m->name;
}

static void put_json_name(FILE *f, const char *key, const char *value)
{
	fprintf(f, ",\"%s\":", key);
	if (!value) {
		fprintf(f, "null");
		return;
	}
	fputc('"', f);
	put_escaped(f, value);
	fputc('"', f);
}

/* ---- the 1 Hz object ------------------------------------------------------------------- */

static const char *proc_name(thothd_live_t *l, uint32_t pid)
{
	for (uint32_t i = 0; i < l->n_procs; i++)
		if (l->procs[i].pid == pid)
			return l->procs[i].name;
	const char *ring = thothd_lock_rings_name(l->rings, pid);   /* a preloaded program's */
	return ring ? ring : "?";
}

/* Modelled CPU power of every governed service over the interval that ends
 * now (INTERVAL_NS): its requests' handler CPU time x the busy power of the
 * OPP each ran at, from the published model its trace points name. */
static void pm_power_to_json(thothd_live_t *l, FILE *f, uint64_t interval_ns)
{
	bool any = false, priced = false;
	const char *unpriced_why = NULL;
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		any = any || p->governed || p->priced;
		priced = priced || thoth_pm_power_account_model(&p->power);
		if (!unpriced_why && (p->governed || p->priced))
			unpriced_why = thoth_pm_power_account_unpriced_why(&p->power);
	}
	fprintf(f, ",\"pm_power\":{\"available\":%s,\"why\":\"",
		priced ? "true" : "false");
	if (priced)
		fputs("modelled, not measured: each request's handler CPU time in a governed "
		      "service (SCHED-1, its pm_work trace points) priced at the busy power "
		      "(core + cluster) of the OPP it ran at, from the energy model named: a "
		      "published table (kernel/pm/energy.c) or this machine's own (sysfs), read by "
		      "thothd from the same source; idle power and work outside the handlers not "
		      "included", f);
	else if (any) {
		fputs("the governed services' energy models are not known to thothd: ", f);
		put_escaped(f, unpriced_why ? unpriced_why : "no model named yet");
		fputs(": no modelled power", f);
	} else
		fputs("no governed service (SCHED-1) running: no modelled CPU power", f);
	fputs("\",\"services\":[", f);
	bool first = true;
	for (uint32_t i = 0; i < l->n_procs; i++) {
		proc_stat_t *p = &l->procs[i];
		if (!p->governed && !p->priced)
			continue;
		thoth_pm_power_interval_t iv;
		thoth_pm_power_account_interval(&p->power, interval_ns, &iv);
		p->last_iv = iv;
		p->have_iv = true;
		const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&p->power);
		fprintf(f, "%s{\"pid\":%u,\"name\":\"", first ? "" : ",", p->pid);
		first = false;
		put_escaped(f, p->name);
		fprintf(f, "\"");
		put_json_name(f, "model", m ? m->name : NULL);
		put_json_name(f, "model_source", m ? m->source : NULL);
		/* why it is not priced (its model unknown here), or why some of
		 * its requests were not: null when every one was */
		put_json_name(f, "unpriced_why", thoth_pm_power_account_unpriced_why(&p->power));
		fprintf(f, ",\"opp\":%u,\"opp_busy_mw\":%u,\"power_mw\":%.6f,\"requests_per_s\":%.2f,"
			   "\"cpu_share\":%.6f,\"mj_per_request\":",
			p->power.opp, thoth_pm_power_account_opp_mw(&p->power), iv.power_mw,
			(double)iv.requests / ((double)interval_ns / 1e9), iv.cpu_share);
		if (iv.requests)
			fprintf(f, "%.9f", iv.j_per_request * 1e3);
		else
			fprintf(f, "null");
		fprintf(f, ",\"energy_mj_total\":%.6f,\"requests_total\":%llu,\"unpriced_total\":%llu}",
			p->power.energy_pj * 1e-9, (unsigned long long)p->power.requests,
			(unsigned long long)p->power.unpriced);
	}
	fprintf(f, "]}");
}

/* Every traced process gets a row, even one that never woke (an idle
 * service shows 0, not nothing). */
static void note_source(const thothd_trace_source_info_t *s, void *ctx)
{
	thothd_live_t *l = ctx;
	proc_stat_t *p = s->connected ? proc_of(l, s->pid, s->name ? s->name : "?") : NULL;
	if (p)
		p->seen_tick = l->ticks;
}

typedef struct ring_json {
	FILE *f;
	bool first;
} ring_json_t;

static void ring_to_json(const thothd_trace_source_info_t *s, void *ctx)
{
	ring_json_t *rj = ctx;
	const thoth_trace_stats_t *st = &s->stats;
	fprintf(rj->f, "%s{\"pid\":%u,\"name\":\"", rj->first ? "" : ",", s->pid);
	put_escaped(rj->f, s->name ? s->name : "");
	fprintf(rj->f, "\",\"fill\":%.4f,\"read\":%llu,\"lost\":%llu}",
		s->ring_records ? (double)s->last_drain_max / s->ring_records : 0.0,
		(unsigned long long)st->read,
		(unsigned long long)(st->dropped + st->overwritten + st->torn + st->invalid +
				     st->no_ring));
	rj->first = false;
}

int thothd_live_tick(thothd_live_t *l, char **json, size_t *len)
{
	if (!l->collecting)
		return THOTH_E_INVAL;
	thothd_tracer_t *tr = l->d->tracer;
	uint64_t now = thothd_now(l->d);
	uint64_t interval_ns = now > l->last_tick_ns ? now - l->last_tick_ns : 1;
	double dt = (double)(now - l->last_tick_ns) / 1e9;
	if (dt <= 0)
		dt = 1e-9;
	l->last_tick_ns = now;
	l->ticks++;
	read_cpus(l);
	thothd_tracer_foreach_source(tr, note_source, l);       /* takes the tracer's mutex */
	iface_refresh(l);
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return THOTH_E_NOMEM;
	/* What on_event updates, under the tracer's mutex (a worker may be
	 * draining: it steps aside at its next chunk). */
	thothd_tracer_live_lock(tr);
	note_ring_set(l);
	fprintf(f, "{\"t_ns\":%llu,\"interval_s\":%.3f,\"kept_from_ns\":%llu,\"events\":%llu",
		(unsigned long long)now, dt,
		(unsigned long long)(l->kept.head ? kept_at(&l->kept, kept_first(&l->kept))->ev.timestamp_ns
						  : now),
		(unsigned long long)l->events);

	/* CPUs: residency of each idle state over the interval. */
	fprintf(f, ",\"cpuidle\":{\"driver\":\"");
	put_escaped(f, l->idle_driver);
	fprintf(f, "\",\"governor\":\"");
	put_escaped(f, l->idle_governor);
	fprintf(f, "\",\"cpus\":[");
	bool any_states = false, any_freq = false, first;
	for (uint32_t i = 0; i < l->n_cpus; i++) {
		const cpu_stat_t *c = &l->cpus[i];
		fprintf(f, "%s{\"cpu\":%u,\"freq_khz\":", i ? "," : "", c->cpu);
		if (c->freq_khz >= 0) {
			fprintf(f, "%lld", (long long)c->freq_khz);
			any_freq = true;
		} else {
			fprintf(f, "null");
		}
		fprintf(f, ",\"states\":[");
		for (uint32_t s = 0; s < c->n_states; s++) {
			const cpu_state_t *st = &c->states[s];
			double res = (double)(st->time_us - st->prev_time_us) / 1e6 / dt;
			fprintf(f, "%s{\"name\":\"", s ? "," : "");
			put_escaped(f, st->name);
			fprintf(f, "\",\"residency\":%.4f,\"entries_per_s\":%.1f}", res > 1 ? 1.0 : res,
				(double)(st->usage - st->prev_usage) / dt);
			any_states = true;
		}
		fprintf(f, "]}");
	}
	fprintf(f, "],\"available\":%s,\"why\":\"%s\"}", any_states ? "true" : "false",
		any_states ? "" : "no cpuidle states in sysfs on this host");
	/* P-state: cpufreq's where it exists; the modelled one of every
	 * governed service (SCHED-1) in any case, labelled so. */
	bool any_governed = false;
	for (uint32_t i = 0; i < l->n_procs && !any_governed; i++)
		any_governed = l->procs[i].governed;
	fprintf(f, ",\"pstate\":{\"available\":%s,\"source\":\"%s\",\"why\":\"%s\",\"modelled\":[",
		any_freq || any_governed ? "true" : "false",
		any_freq ? "cpufreq" : any_governed ? "modelled" : "none",
		any_freq ? "cpufreq scaling_cur_freq"
		: any_governed
			? "modelled: no cpufreq on this host; the SCHED-1 governor of each governed "
			  "service chooses its domain's OPP and nothing is written (simulated backend)"
			: "no cpufreq driver on this host and no governed service (SCHED-1) running: "
			  "no modelled P-state to show");
	first = true;
	for (uint32_t i = 0; i < l->n_procs; i++) {
		proc_stat_t *p = &l->procs[i];
		if (!p->governed)
			continue;
		uint64_t since = p->freq_since_ns < now ? p->freq_since_ns : now;
		p->khz_ns += (double)p->khz * (double)(now - since);
		uint64_t span = now > p->freq_span_from_ns ? now - p->freq_span_from_ns : 0;
		fprintf(f, "%s{\"pid\":%u,\"name\":\"", first ? "" : ",", p->pid);
		first = false;
		put_escaped(f, p->name);
		fprintf(f, "\",\"khz\":%u,\"opp\":%u,\"avg_khz\":%.0f,\"changes_per_s\":%.2f}", p->khz,
			p->opp, span ? p->khz_ns / (double)span : (double)p->khz,
			(double)(p->freq_changes - p->prev_freq_changes) / dt);
		p->prev_freq_changes = p->freq_changes;
		p->khz_ns = 0;
		p->freq_since_ns = p->freq_span_from_ns = now;
	}
	fprintf(f, "]}");
	pm_power_to_json(l, f, interval_ns);

	/* Processes: wake-ups per second by reason. */
	fprintf(f, ",\"procs\":[");
	first = true;
	for (uint32_t i = 0; i < l->n_procs; i++) {
		proc_stat_t *p = &l->procs[i];
		/* A process whose buffer is gone and that did not wake in this
		 * interval has left: no row (its counters stay in /metrics). */
		if (p->seen_tick != l->ticks && p->wake[WAKE_ALL] == p->prev_wake[WAKE_ALL])
			continue;
		fprintf(f, "%s{\"pid\":%u,\"name\":\"", first ? "" : ",", p->pid);
		first = false;
		put_escaped(f, p->name);
		fprintf(f, "\",\"wakeups_per_s\":{");
		for (int k = 0; k < WAKE_KINDS; k++) {
			fprintf(f, "%s\"%s\":%.2f", k ? "," : "", WAKE_NAME[k],
				(double)(p->wake[k] - p->prev_wake[k]) / dt);
			p->prev_wake[k] = p->wake[k];
		}
		fprintf(f, "},\"timers_per_s\":%.2f}", (double)(p->timers - p->prev_timers) / dt);
		p->prev_timers = p->timers;
	}
	fprintf(f, "]");

	/* Channels: round-trip p50/p99 and rate over the interval. */
	uint64_t calls = 0;
	fprintf(f, ",\"channels\":[");
	for (uint32_t i = 0; i < l->n_chans; i++) {
		chan_stat_t *c = &l->chans[i];
		fprintf(f, "%s{\"service\":\"", i ? "," : "");
		put_escaped(f, proc_name(l, c->service_pid));
		fprintf(f, "\"");
		const iface_name_t *in = iface_lookup(l, c->interface_id);
		put_json_name(f, "interface_name", in ? in->name : NULL);
		put_json_name(f, "method_name", method_name(in, c->method));
		fprintf(f, ",\"pid\":%u,\"interface\":\"%08x\",\"method\":%u,\"transport\":\"%s\","
			   "\"rate\":%.2f,\"p50_us\":%.3f,\"p99_us\":%.3f,\"queue_p50_us\":%.3f,"
			   "\"wakeups_per_s\":%.2f,\"calls\":%llu}",
			c->service_pid, c->interface_id, c->method, c->socket ? "socket" : "shm",
			(double)(c->rtt.count - c->prev_count) / dt, hist_quantile(&c->rtt, 0.5) / 1e3,
			hist_quantile(&c->rtt, 0.99) / 1e3, hist_quantile(&c->queue, 0.5) / 1e3,
			(double)(c->wakeups - c->prev_wakeups) / dt, (unsigned long long)c->rtt.count);
		c->prev_wakeups = c->wakeups;
		calls += c->rtt.count - c->prev_count;
		c->prev_count = c->rtt.count;
		memset(c->rtt.fine, 0, sizeof c->rtt.fine);
		memset(c->queue.fine, 0, sizeof c->queue.fine);
		c->rtt.fine_n = c->queue.fine_n = 0;
	}
	fprintf(f, "],\"unmatched\":%llu", (unsigned long long)l->unmatched);
	uint64_t lock_slices = l->lock_slices, lock_slices_lost = l->lock_slices_lost;
	thothd_tracer_live_unlock(tr);

	/* Trace rings. */
	ring_json_t rj = { .f = f, .first = true };
	fprintf(f, ",\"rings\":[");
	thothd_tracer_foreach_source(l->d->tracer, ring_to_json, &rj);
	fprintf(f, "]");

	/* Power broker: levels, leases, modelled energy per request. */
	pm_view_t v;
	pm_view_open(l, &v);
	fprintf(f, ",\"pm\":{\"available\":%s,\"elements\":[", v.ok ? "true" : "false");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		const thoth_pm_ElementState_t *e = &v.st.elements.items[i];
		uint32_t leases = 0;
		for (uint32_t j = 0; j < v.st.leases.count; j++)
			leases += strcmp(v.st.leases.items[j].element.ptr, e->name.ptr) == 0;
		fprintf(f, "%s{\"name\":\"", i ? "," : "");
		put_escaped(f, e->name.ptr);
		fprintf(f, "\",\"level\":%u,\"levels\":%u,\"level_name\":\"", e->current_level,
			(unsigned)e->levels.count);
		if (e->current_level < e->levels.count)
			put_escaped(f, e->levels.items[e->current_level].name.ptr);
		fprintf(f, "\",\"target\":%u,\"leases\":%u,\"energy_mj\":%.3f,\"dead\":%s}",
			e->target_level, leases, e->energy_mj, e->dead ? "true" : "false");
	}
	fprintf(f, "],\"leases\":[");
	for (uint32_t j = 0; v.ok && j < v.st.leases.count; j++) {
		const thoth_pm_LeaseState_t *ls = &v.st.leases.items[j];
		fprintf(f, "%s{\"element\":\"", j ? "," : "");
		put_escaped(f, ls->element.ptr);
		fprintf(f, "\",\"level\":%u,\"holder_pid\":%u,\"status\":\"%s\"}", ls->level,
			ls->holder_pid, lease_status_name(ls->status));
	}
	fprintf(f, "],\"qos_us\":%u}", v.ok ? v.st.qos_us : 0);
	double mj = pm_total_energy(&v);
	bool have_elements = v.ok && v.st.elements.count > 0;
	if (have_elements && l->have_prev_energy && calls > 0)
		fprintf(f, ",\"energy\":{\"available\":true,\"mj_per_request\":%.6f,\"why\":\"modelled: "
			   "the PM elements' declared power x residency over the interval, divided by "
			   "the round trips completed in it\"}",
			(mj - l->prev_energy_mj) / (double)calls);
	else
		fprintf(f, ",\"energy\":{\"available\":false,\"why\":\"%s\"}",
			!have_elements ? "no PM element declared: the energy model has nothing to add up"
				       : "no round trip completed in this interval");
	l->prev_energy_mj = mj;
	l->have_prev_energy = have_elements;
	pm_view_close(&v);

	if (!l->locks_json || l->locks_stale || l->ticks - l->locks_tick >= LOCKS_EVERY) {
		locks_refresh(l);
		l->locks_tick = l->ticks;
		l->locks_stale = false;
	}
	fprintf(f, ",\"locks\":%s", l->locks_json ? l->locks_json
		: l->locks_job ? "{\"available\":false,\"why\":\"the lock report is being made\"}"
		: "{\"available\":false,\"why\":\"cannot read the lock tables\"}");
	/* Contended acquisitions kept as lock_wait slices for the window
	 * export (preloaded programs' rings and thoth_mutex trace events). */
	fprintf(f, ",\"lock_slices\":{\"kept\":%llu,\"lost\":%llu}",
		(unsigned long long)lock_slices, (unsigned long long)lock_slices_lost);
	fprintf(f, "}");
	if (fclose(f) != 0) {
		free(buf);
		return THOTH_E_NOMEM;
	}
	*json = buf;
	*len = n;
	return 0;
}

/* ---- Prometheus ------------------------------------------------------------------------------ */

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct ring_prom {
	FILE *f;
	int pass;
} ring_prom_t;

static void ring_to_prom(const thothd_trace_source_info_t *s, void *ctx)
{
	ring_prom_t *rp = ctx;
	FILE *f = rp->f;
	const thoth_trace_stats_t *st = &s->stats;
	const char *name = s->name ? s->name : "";
	if (rp->pass == 0) {
		fprintf(f, "thoth_trace_events_read_total{pid=\"%u\",process=\"", s->pid);
		put_escaped(f, name);
		fprintf(f, "\"} %llu\n", (unsigned long long)st->read);
	} else if (rp->pass == 1) {
		const char *why[] = { "dropped", "overwritten", "torn", "invalid", "no_ring" };
		uint64_t v[] = { st->dropped, st->overwritten, st->torn, st->invalid, st->no_ring };
		for (int i = 0; i < 5; i++) {
			fprintf(f, "thoth_trace_events_lost_total{pid=\"%u\",process=\"", s->pid);
			put_escaped(f, name);
			fprintf(f, "\",reason=\"%s\"} %llu\n", why[i], (unsigned long long)v[i]);
		}
	} else {
		fprintf(f, "thoth_trace_ring_fill_ratio{pid=\"%u\",process=\"", s->pid);
		put_escaped(f, name);
		fprintf(f, "\"} %.6f\n",
			s->ring_records ? (double)s->last_drain_max / s->ring_records : 0.0);
	}
}

static void hist_to_prom(FILE *f, thothd_live_t *l, const char *metric, const chan_stat_t *c,
			 const hist_t *h)
{
	char labels[192];
	char svc[64];
	size_t k = 0;
	for (const char *s = proc_name(l, c->service_pid); *s && k + 2 < sizeof svc; s++) {
		if (*s == '\\' || *s == '"')
			svc[k++] = '\\';
		svc[k++] = *s;
	}
	svc[k] = 0;
	snprintf(labels, sizeof labels,
		 "service=\"%s\",service_pid=\"%u\",interface=\"%08x\",method=\"%u\",transport=\"%s\"",
		 svc, c->service_pid, c->interface_id, c->method, c->socket ? "socket" : "shm");
	for (size_t i = 0; i < N_LE; i++)
		fprintf(f, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels, PROM_LE[i],
			(unsigned long long)h->le[i]);
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels, (unsigned long long)h->count);
	fprintf(f, "%s_sum{%s} %.9f\n", metric, labels, (double)h->sum_ns / 1e9);
	fprintf(f, "%s_count{%s} %llu\n", metric, labels, (unsigned long long)h->count);
}

/* "pid=\"P\",process=\"NAME\",model=\"M\"" of a governed service's series. */
static void power_labels(FILE *f, const char *metric, const proc_stat_t *p,
			 const thoth_pm_cpu_model_t *m)
{
	fprintf(f, "%s{pid=\"%u\",process=\"", metric, p->pid);
	put_escaped(f, p->name);
	fprintf(f, "\",model=\"%s\"}", m->name);
}

/* Governed services' modelled CPU power (power_account.h): the last tick's
 * interval as gauges, and counters since collection started.  Only
 * services whose trace names a published model have these series. */
static void pm_power_to_prom(thothd_live_t *l, FILE *f)
{
	metric_head(f, "thoth_pm_power_modelled_milliwatts", "gauge",
		    "Modelled, not measured: CPU power of each governed service over the last 1 s "
		    "tick, its requests' handler CPU time x the busy power (core + cluster) of the "
		    "OPP each ran at in the published energy model `model` (kernel/pm/energy.c).");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&p->power);
		if (!m || !p->have_iv)
			continue;
		power_labels(f, "thoth_pm_power_modelled_milliwatts", p, m);
		fprintf(f, " %.6f\n", p->last_iv.power_mw);
	}
	metric_head(f, "thoth_pm_energy_per_request_modelled_joules", "gauge",
		    "Modelled, not measured: energy per request of each governed service over the "
		    "last 1 s tick (its modelled energy / the requests it served); absent for a "
		    "tick with no request.");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&p->power);
		if (!m || !p->have_iv || !p->last_iv.requests)
			continue;
		power_labels(f, "thoth_pm_energy_per_request_modelled_joules", p, m);
		fprintf(f, " %.12g\n", p->last_iv.j_per_request);
	}
	metric_head(f, "thoth_pm_energy_modelled_joules_total", "counter",
		    "Modelled, not measured: energy of each governed service's requests since "
		    "collection started (handler CPU time x its OPP's busy power).");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&p->power);
		if (!m)
			continue;
		power_labels(f, "thoth_pm_energy_modelled_joules_total", p, m);
		fprintf(f, " %.12g\n", p->power.energy_pj * 1e-12);
	}
	metric_head(f, "thoth_pm_energy_modelled_requests_total", "counter",
		    "Requests of each governed service whose energy was modelled (pm_work trace "
		    "points priced) since collection started: rate(joules)/rate(requests) is the "
		    "modelled energy per request over any window.");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		const thoth_pm_cpu_model_t *m = thoth_pm_power_account_model(&p->power);
		if (!m)
			continue;
		power_labels(f, "thoth_pm_energy_modelled_requests_total", p, m);
		fprintf(f, " %llu\n", (unsigned long long)p->power.requests);
	}
	/* What is not priced, and why: a governed service whose model thothd
	 * cannot know (a machine model it cannot read: debugfs is root's), or
	 * single requests naming a bad OPP. */
	metric_head(f, "thoth_pm_energy_unpriced_requests_total", "counter",
		    "Requests of each governed service whose energy could not be modelled "
		    "(pm_work trace points naming a model thothd cannot read, an OPP the model "
		    "has not, or an absurd CPU time), with the last reason.");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		const proc_stat_t *p = &l->procs[i];
		const char *why = thoth_pm_power_account_unpriced_why(&p->power);
		if (!(p->governed || p->priced) || (!why && !p->power.unpriced))
			continue;
		fprintf(f, "thoth_pm_energy_unpriced_requests_total{pid=\"%u\",process=\"", p->pid);
		put_escaped(f, p->name);
		fprintf(f, "\",reason=\"");
		put_escaped(f, why ? why : "");
		fprintf(f, "\"} %llu\n", (unsigned long long)p->power.unpriced);
	}
}

/* One cpuidle counter (NAME, HELP) of every CPU's every state: FIELD of
 * its cpu_state_t, a count, or the residency in seconds. */
enum idle_field { IDLE_USAGE, IDLE_TIME, IDLE_ABOVE, IDLE_BELOW };
static void cpuidle_metric(FILE *f, const thothd_live_t *l, const char *name, const char *help,
			   enum idle_field field)
{
	metric_head(f, name, "counter", help);
	for (uint32_t i = 0; i < l->n_cpus; i++)
		for (uint32_t s = 0; s < l->cpus[i].n_states; s++) {
			const cpu_state_t *st = &l->cpus[i].states[s];
			fprintf(f, "%s{cpu=\"%u\",state=\"", name, l->cpus[i].cpu);
			put_escaped(f, st->name);
			if (field == IDLE_TIME)
				fprintf(f, "\"} %.6f\n", (double)st->time_us / 1e6);
			else
				fprintf(f, "\"} %llu\n",
					(unsigned long long)(field == IDLE_USAGE   ? st->usage
							     : field == IDLE_ABOVE ? st->above
										   : st->below));
		}
}

int thothd_live_metrics(thothd_live_t *l, char **text, size_t *len)
{
	thothd_t *d = l->d;
	read_cpus(l);
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return THOTH_E_NOMEM;

	/* thothd */
	thoth_loop_stats_t st = { 0 };
	if (d->loop)
		thoth_loop_stats(d->loop, &st);
	metric_head(f, "thothd_uptime_seconds", "gauge", "Seconds since thothd started.");
	fprintf(f, "thothd_uptime_seconds %.3f\n", (double)(thoth_clock_now() - d->started_ns) / 1e9);
	metric_head(f, "thothd_clients", "gauge", "Connections on thothd's control socket.");
	fprintf(f, "thothd_clients %u\n", d->n_clients);
	metric_head(f, "thothd_messages_total", "counter", "Requests thothd has handled.");
	fprintf(f, "thothd_messages_total %llu\n", (unsigned long long)d->messages);
	metric_head(f, "thothd_loop_wakeups_total", "counter",
		    "thothd's own event-loop wake-ups by reason (its loop counters, always exact).");
	fprintf(f, "thothd_loop_wakeups_total{reason=\"all\"} %llu\n", (unsigned long long)st.wakeups);
	fprintf(f, "thothd_loop_wakeups_total{reason=\"fd\"} %llu\n", (unsigned long long)st.wakeups_fd);
	fprintf(f, "thothd_loop_wakeups_total{reason=\"timer\"} %llu\n",
		(unsigned long long)st.wakeups_timer);
	fprintf(f, "thothd_loop_wakeups_total{reason=\"signal\"} %llu\n",
		(unsigned long long)st.wakeups_signal);
	fprintf(f, "thothd_loop_wakeups_total{reason=\"deferred\"} %llu\n",
		(unsigned long long)st.wakeups_deferred);

	/* The lock rings' polls (locks_scan.c): rings read afresh, their
	 * descriptors not kept, because the rings' budget was all taken. */
	metric_head(f, "thothd_lock_rings_unkept_total", "counter",
		    "Profiled processes' contention rings read afresh at a poll, their memfd and pidfd "
		    "not kept from poll to poll: the rings' descriptor budget was taken (follower "
		    "dashboard: the dashboard's poll; trace: trace sessions recording category lock).");
	fprintf(f, "thothd_lock_rings_unkept_total{follower=\"dashboard\"} %llu\n",
		(unsigned long long)(l->rings ? thothd_lock_rings_unkept(l->rings) : 0));
	fprintf(f, "thothd_lock_rings_unkept_total{follower=\"trace\"} %llu\n",
		(unsigned long long)(d->lock_session_rings ? thothd_lock_rings_unkept(d->lock_session_rings) : 0));

	metric_head(f, "thothd_lock_markers_pruned_total", "counter",
		    "Dead processes' lock markers (RUNTIME_DIR/locks/PID.table of a process gone, or "
		    "of a pid now another process's) removed at start and at scans (docs/LOCKS.md).");
	fprintf(f, "thothd_lock_markers_pruned_total %llu\n",
		(unsigned long long)thothd_lock_markers_pruned());

	/* every traced process's oneway calls dropped (its control page) */
	metric_head(f, "thoth_oneways_dropped_total", "counter",
		    "Oneway calls each process connected with a trace buffer could not serve and "
		    "dropped (unknown method or interface, a missing handler or feature, a body that "
		    "does not decode: no answer can carry the error; thoth_rpc_oneways_dropped).");
	thothd_oneways_metrics(d, f);

	/* registry */
	metric_head(f, "thoth_registry_registrations", "gauge", "Live registrations (service instances).");
	fprintf(f, "thoth_registry_registrations %zu\n", thoth_registry_count(d->registry));
	metric_head(f, "thoth_registry_watches", "gauge", "Active registry watches.");
	fprintf(f, "thoth_registry_watches %zu\n", thoth_registry_watch_count(d->registry));
	/* lifecycle (OBS-3): losses per service, bounded labels */
	thothd_lifecycle_metrics(d->lifecycle, f);
	/* the log's rate limits: what a flood cost in lines not written */
	metric_head(f, "thoth_thothd_log_suppressed_total", "counter",
		    "Log lines thothd did not write under a rate limit (a peer repeating what logs a "
		    "line: registering in a loop, refused or dropped connections, losses); the log says "
		    "each count when lines pass again or the burst ends.");
	const struct {
		const char *line;
		const thothd_log_limit_t *limit;
	} limits[] = {
		{ "registered", &d->register_log },
		{ "lost", &d->lost_log },
		{ "refused", &d->refuse_log },
		{ "dropped", &d->drop_log },
	};
	for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
		fprintf(f, "thoth_thothd_log_suppressed_total{line=\"%s\"} %llu\n", limits[i].line,
			(unsigned long long)limits[i].limit->suppressed_total);

	/* cpuidle: what node_exporter lacks (per state usage/time/above/below) */
	cpuidle_metric(f, l, "thoth_cpuidle_state_usage_total",
		       "Entries into each cpuidle state (sysfs stateN/usage).", IDLE_USAGE);
	cpuidle_metric(f, l, "thoth_cpuidle_state_time_seconds_total",
		       "Time spent in each cpuidle state (sysfs stateN/time).", IDLE_TIME);
	cpuidle_metric(f, l, "thoth_cpuidle_state_above_total",
		       "Times the state was too deep: the CPU woke before its target residency (sysfs above).",
		       IDLE_ABOVE);
	cpuidle_metric(f, l, "thoth_cpuidle_state_below_total",
		       "Times the state was too shallow: a deeper one would have fit (sysfs below).",
		       IDLE_BELOW);
	metric_head(f, "thoth_cpufreq_current_hertz", "gauge",
		    "Current CPU frequency (cpufreq scaling_cur_freq); absent without cpufreq.");
	for (uint32_t i = 0; i < l->n_cpus; i++)
		if (l->cpus[i].freq_khz >= 0)
			fprintf(f, "thoth_cpufreq_current_hertz{cpu=\"%u\"} %lld\n", l->cpus[i].cpu,
				(long long)l->cpus[i].freq_khz * 1000);
	thothd_tracer_live_lock(d->tracer);    /* procs: on_event's (see the top) */
	metric_head(f, "thoth_pm_modelled_frequency_hertz", "gauge",
		    "Modelled: the frequency the SCHED-1 governor of each governed service chose "
		    "for its performance domain (its last pm_freq_change; simulated where there is "
		    "no cpufreq); absent until the first change seen while collecting.");
	for (uint32_t i = 0; i < l->n_procs; i++)
		if (l->procs[i].governed) {
			fprintf(f, "thoth_pm_modelled_frequency_hertz{pid=\"%u\",process=\"",
				l->procs[i].pid);
			put_escaped(f, l->procs[i].name);
			fprintf(f, "\",opp=\"%u\"} %llu\n", l->procs[i].opp,
				(unsigned long long)l->procs[i].khz * 1000);
		}
	metric_head(f, "thoth_pm_modelled_frequency_changes_total", "counter",
		    "OPP changes of each governed service's domain (pm_freq_change trace points).");
	for (uint32_t i = 0; i < l->n_procs; i++)
		if (l->procs[i].governed) {
			fprintf(f, "thoth_pm_modelled_frequency_changes_total{pid=\"%u\",process=\"",
				l->procs[i].pid);
			put_escaped(f, l->procs[i].name);
			fprintf(f, "\"} %llu\n", (unsigned long long)l->procs[i].freq_changes);
		}
	pm_power_to_prom(l, f);
	thothd_tracer_live_unlock(d->tracer);

	/* trace rings */
	metric_head(f, "thoth_trace_events_read_total", "counter",
		    "Trace events thothd read from each process's buffer.");
	ring_prom_t rp = { .f = f, .pass = 0 };
	thothd_tracer_foreach_source(d->tracer, ring_to_prom, &rp);
	metric_head(f, "thoth_trace_events_lost_total", "counter",
		    "Trace events lost, by reason (every event is read or counted in one).");
	rp.pass = 1;
	thothd_tracer_foreach_source(d->tracer, ring_to_prom, &rp);
	metric_head(f, "thoth_trace_ring_fill_ratio", "gauge",
		    "Fullest ring of each buffer at the last drain (unread records / ring size).");
	rp.pass = 2;
	thothd_tracer_foreach_source(d->tracer, ring_to_prom, &rp);

	/* live: from trace events, counted while collecting */
	metric_head(f, "thoth_dashboard_collecting", "gauge",
		    "1 while thothd counts trace events for the dashboard (a page connected or a "
		    "scrape in the last 120 s); the per-process and IPC series count from then.");
	fprintf(f, "thoth_dashboard_collecting %d\n", l->collecting ? 1 : 0);
	iface_refresh(l);
	thothd_tracer_live_lock(d->tracer);    /* procs, chans: on_event's */
	metric_head(f, "thoth_process_wakeups_total", "counter",
		    "Event-loop wake-ups of each thoth process by reason (loop_wakeup trace events; "
		    "a wake-up with several reasons counts in each; reason all counts it once; "
		    "doorbell and socket_message are fd wake-ups whose first event was a channel "
		    "receive or a socket message).");
	for (uint32_t i = 0; i < l->n_procs; i++)
		for (int k = 0; k < WAKE_KINDS; k++) {
			fprintf(f, "thoth_process_wakeups_total{pid=\"%u\",process=\"", l->procs[i].pid);
			put_escaped(f, l->procs[i].name);
			fprintf(f, "\",reason=\"%s\"} %llu\n", WAKE_NAME[k],
				(unsigned long long)l->procs[i].wake[k]);
		}
	metric_head(f, "thoth_process_timers_fired_total", "counter",
		    "Timer callbacks run in each thoth process (timer_fire trace events).");
	for (uint32_t i = 0; i < l->n_procs; i++) {
		fprintf(f, "thoth_process_timers_fired_total{pid=\"%u\",process=\"", l->procs[i].pid);
		put_escaped(f, l->procs[i].name);
		fprintf(f, "\"} %llu\n", (unsigned long long)l->procs[i].timers);
	}
	/* The names of the interface ids below: an info metric (join on
	 * `interface`), so a series keeps its identity when a name is learnt. */
	metric_head(f, "thoth_ipc_interface_info", "gauge",
		    "1 for each interface id seen on a channel whose name is known (thothd's "
		    "compiled-in schemas, or a live registration's claim).");
	for (uint32_t i = 0; i < l->n_chans; i++) {
		bool dup = false;
		for (uint32_t j = 0; j < i && !dup; j++)
			dup = l->chans[j].interface_id == l->chans[i].interface_id;
		const iface_name_t *in = dup ? NULL : iface_lookup(l, l->chans[i].interface_id);
		if (!in)
			continue;
		fprintf(f, "thoth_ipc_interface_info{interface=\"%08x\",name=\"", in->id);
		put_escaped(f, in->name);
		fprintf(f, "\"} 1\n");
	}
	metric_head(f, "thoth_ipc_round_trip_seconds", "histogram",
		    "Client-side round trip of each call (its SEND to its RECV of one trace id).");
	for (uint32_t i = 0; i < l->n_chans; i++)
		hist_to_prom(f, l, "thoth_ipc_round_trip_seconds", &l->chans[i], &l->chans[i].rtt);
	metric_head(f, "thoth_ipc_wakeups_total", "counter",
		    "Thread wake-ups caused by a message of this channel (the first event the woken "
		    "thread recorded was its receive).");
	for (uint32_t i = 0; i < l->n_chans; i++) {
		const chan_stat_t *c = &l->chans[i];
		fprintf(f, "thoth_ipc_wakeups_total{service=\"");
		put_escaped(f, proc_name(l, c->service_pid));
		fprintf(f, "\",service_pid=\"%u\",interface=\"%08x\",method=\"%u\",transport=\"%s\"} %llu\n",
			c->service_pid, c->interface_id, c->method, c->socket ? "socket" : "shm",
			(unsigned long long)c->wakeups);
	}
	metric_head(f, "thoth_ipc_queue_delay_seconds", "histogram",
		    "Queueing delay of requests on shared-memory channels (sender stamp to receive).");
	for (uint32_t i = 0; i < l->n_chans; i++)
		if (!l->chans[i].socket)
			hist_to_prom(f, l, "thoth_ipc_queue_delay_seconds", &l->chans[i],
				     &l->chans[i].queue);
	thothd_tracer_live_unlock(d->tracer);

	/* power broker */
	pm_view_t v;
	pm_view_open(l, &v);
	metric_head(f, "thoth_pm_element_level", "gauge", "Current level of each PM element (0 deepest).");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		fprintf(f, "thoth_pm_element_level{element=\"");
		put_escaped(f, v.st.elements.items[i].name.ptr);
		fprintf(f, "\"} %u\n", v.st.elements.items[i].current_level);
	}
	metric_head(f, "thoth_pm_element_residency_seconds_total", "counter",
		    "Time each PM element spent at each level.");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		const thoth_pm_ElementState_t *e = &v.st.elements.items[i];
		for (uint32_t k = 0; k < e->residency_ns.count && k < e->levels.count; k++) {
			fprintf(f, "thoth_pm_element_residency_seconds_total{element=\"");
			put_escaped(f, e->name.ptr);
			fprintf(f, "\",level=\"%u\",level_name=\"", k);
			put_escaped(f, e->levels.items[k].name.ptr);
			fprintf(f, "\"} %.6f\n", (double)e->residency_ns.items[k] / 1e9);
		}
	}
	/* In joules, Prometheus's base unit: promtool's lint refused the
	 * millijoules this was exported in, whenever an element existed. */
	metric_head(f, "thoth_pm_element_energy_modelled_joules_total", "counter",
		    "Modelled, not measured: energy of each PM element, its declared power x "
		    "residency.");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		fprintf(f, "thoth_pm_element_energy_modelled_joules_total{element=\"");
		put_escaped(f, v.st.elements.items[i].name.ptr);
		fprintf(f, "\"} %.9f\n", v.st.elements.items[i].energy_mj / 1e3);
	}
	metric_head(f, "thoth_pm_element_transitions_total", "counter", "Level changes of each PM element.");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		fprintf(f, "thoth_pm_element_transitions_total{element=\"");
		put_escaped(f, v.st.elements.items[i].name.ptr);
		fprintf(f, "\"} %llu\n", (unsigned long long)v.st.elements.items[i].transitions);
	}
	metric_head(f, "thoth_pm_element_leases", "gauge", "Leases held on each PM element.");
	for (uint32_t i = 0; v.ok && i < v.st.elements.count; i++) {
		uint32_t leases = 0;
		for (uint32_t j = 0; j < v.st.leases.count; j++)
			leases += strcmp(v.st.leases.items[j].element.ptr,
					 v.st.elements.items[i].name.ptr) == 0;
		fprintf(f, "thoth_pm_element_leases{element=\"");
		put_escaped(f, v.st.elements.items[i].name.ptr);
		fprintf(f, "\"} %u\n", leases);
	}
	pm_view_close(&v);
	if (fclose(f) != 0) {
		free(buf);
		return THOTH_E_NOMEM;
	}
	*text = buf;
	*len = n;
	return 0;
}

/* ---- window export ------------------------------------------------------------------------ */

int thothd_live_window(thothd_live_t *l, thothd_live_window_t **out)
{
	thothd_live_window_t *w = calloc(1, sizeof *w);
	if (!w)
		return THOTH_E_NOMEM;
	/* Room for every name before the mutex: nothing allocated under it. */
	w->names = malloc(MAX_NAMES * sizeof *w->names);
	w->procs = malloc((MAX_PROCS + THOTHD_LOCKS_MAX_RINGS) * sizeof *w->procs);
	w->tail = malloc(KEPT_SEG * sizeof *w->tail);
	if (!w->names || !w->procs || !w->tail) {
		thothd_live_window_free(w);
		return THOTH_E_NOMEM;
	}
	thothd_tracer_live_lock(l->d->tracer);     /* kept, names, procs: on_event's */
	if (l->collecting) {
		/* References, not a copy: the loop thread's share is bounded by
		 * KEPT_SEGS, one segment's copy, the names and the processes,
		 * not by the events. */
		w->ring = l->kept;
		for (int i = 0; i < KEPT_SEGS; i++)
			if (w->ring.seg[i])
				atomic_fetch_add_explicit(&w->ring.seg[i]->refs, 1, memory_order_relaxed);
		if (w->ring.old)
			atomic_fetch_add_explicit(&w->ring.old->refs, 1, memory_order_relaxed);
		w->first = kept_first(&w->ring);
		/* The segment being written holds the older lap past the head:
		 * the writer overwrites it next, in place, so that part is
		 * copied (fewer than KEPT_SEG events). */
		uint64_t head = w->ring.head;
		if (head >= RETAIN_EVENTS && head % KEPT_SEG) {
			w->tail_base = w->first;
			w->tail_n = KEPT_SEG - head % KEPT_SEG;
			for (uint64_t i = 0; i < w->tail_n; i++)
				w->tail[i] = *kept_at(&w->ring, w->tail_base + i);
		}
		w->n_names = l->n_names;
		memcpy(w->names, l->names, l->n_names * sizeof *w->names);
		for (uint32_t i = 0; i < l->n_procs; i++) {
			proc_name_entry_t *e = &w->procs[w->n_procs];
			e->pid = l->procs[i].pid;
			e->order = w->n_procs++;
			memcpy(e->name, l->procs[i].name, sizeof e->name);
		}
		for (uint32_t i = 0; i < THOTHD_LOCKS_MAX_RINGS; i++) {
			const char *name;
			uint32_t pid = thothd_lock_rings_at(l->rings, i, &name);
			if (!pid)
				continue;
			proc_name_entry_t *e = &w->procs[w->n_procs];
			e->pid = pid;
			e->order = w->n_procs++;
			snprintf(e->name, sizeof e->name, "%s", name);
		}
	}
	thothd_tracer_live_unlock(l->d->tracer);
	*out = w;
	return 0;
}

void thothd_live_window_free(thothd_live_window_t *w)
{
	if (!w)
		return;
	kept_clear(&w->ring);
	free(w->tail);
	free(w->names);
	free(w->procs);
	free(w);
}

static int cmp_proc_entry(const void *a, const void *b)
{
	const proc_name_entry_t *x = a, *y = b;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* proc_name's answer as it was when the window was taken: the first
 * process of that pid, else a preloaded program's ring, else "?". */
static const char *window_proc_name(const thothd_live_window_t *w, uint32_t pid)
{
	size_t lo = 0, hi = w->n_procs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (w->procs[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->n_procs && w->procs[lo].pid == pid ? w->procs[lo].name : "?";
}

int thothd_live_window_collect(thothd_live_window_t *w, uint64_t from_ns, uint64_t to_ns,
			       thoth_trace_collection_t **out)
{
	thoth_trace_collection_t *c;
	int r = thoth_trace_collection_new(&c);
	if (r)
		return r;
	qsort(w->procs, w->n_procs, sizeof *w->procs, cmp_proc_entry);
	for (uint64_t i = w->first; i < w->ring.head && !r; i++) {
		const kept_event_t *k = i >= w->tail_base && i < w->tail_base + w->tail_n
						? &w->tail[i - w->tail_base] : kept_at(&w->ring, i);
		if (k->ev.timestamp_ns < from_ns || k->ev.timestamp_ns > to_ns || k->name >= w->n_names)
			continue;
		thoth_trace_event_t ev = k->ev;
		ev.name = w->names[k->name];
		r = thoth_trace_collection_add_event(c, &ev, window_proc_name(w, ev.pid), "");
	}
	if (r) {
		thoth_trace_collection_free(c);
		return r;
	}
	*out = c;
	return 0;
}

int thothd_live_window_json(const thoth_trace_collection_t *c, char **json, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return THOTH_E_NOMEM;
	int r = thoth_trace_export_chrome_json(c, f);
	if (fclose(f) != 0 && !r)
		r = THOTH_E_NOMEM;
	if (r) {
		free(buf);
		return r;
	}
	*json = buf;
	*len = n;
	return 0;
}
