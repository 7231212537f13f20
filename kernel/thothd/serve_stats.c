/*
 * serve_stats.c - Daemon.serve_stats and the dashboard's /serve.json
 * (SCALE-2, docs/SCALE.md "A per-CPU service's counters in thothctl"): the
 * counters of every connected process that serves with thoth_serve or
 * thoth_serve_per_cpu, each worker's slot folded here on read.
 *
 * The slots are in the process's trace buffer, which thothd already maps
 * (trace.c); they are the counters the workers write, not a copy, so an
 * answer is as current as the read and costs the service nothing.  Every
 * byte is the peer's: thoth__trace_reader_serve (serve_slots.c) checks the
 * geometry against the mapping and the header against itself and sums
 * with saturation; a process whose slots lie is listed with the reason and
 * zero counters, and nothing else is affected.  Each process's oneway
 * calls dropped (thoth_rpc_oneways_dropped) come from its control page
 * too; a process that dropped some is listed even if it does not serve.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"
#include "serve_slots.h"
#include "thothd.h"

enum { MAX_SERVING = 1024 };            /* = trace.c's MAX_SOURCES */

typedef struct entry {
	uint32_t pid;
	int status;                     /* 0, or why the slots were refused */
	char process[32];
	char why[160];
	thoth_trace_serve_view_t v;
	uint64_t oneways_dropped;       /* the process's, from its control page */
} entry_t;

typedef struct gather {
	uint32_t pid;                   /* 0: all */
	entry_t *e;
	size_t n;
} gather_t;

static void gather_one(thoth_trace_reader_t *reader, uint32_t pid, void *ctx)
{
	gather_t *g = ctx;
	if ((g->pid && pid != g->pid) || g->n >= MAX_SERVING)
		return;
	entry_t *e = &g->e[g->n];
	memset(e, 0, sizeof *e);
	e->pid = pid;
	e->status = thoth__trace_reader_serve(reader, &e->v, e->why, sizeof e->why);
	e->oneways_dropped = thoth__trace_reader_oneways_dropped(reader);
	/* Serves nothing (or an older library), and dropped no oneway call:
	 * not listed.  One that dropped some is, to show the count. */
	if (e->status == THOTH_E_NOT_FOUND || (!e->status && !e->v.workers)) {
		if (!e->oneways_dropped)
			return;
		e->status = 0;
		memset(&e->v, 0, sizeof e->v);
	}
	if (e->status) {
		thothd_warn("pid %u: serve counters refused: %s", pid, e->why);
		memset(&e->v, 0, sizeof e->v);
	}
	uint32_t bpid;
	const char *name = "";
	thoth_trace_reader_process(reader, &bpid, &name);
	snprintf(e->process, sizeof e->process, "%s", name);
	g->n++;
}

/* Every serving process (or PID): N entries in *OUT (malloc'd). */
static int gather(thothd_t *d, uint32_t pid, entry_t **out, size_t *n)
{
	gather_t g = { .pid = pid, .e = malloc(MAX_SERVING * sizeof(entry_t)) };
	if (!g.e)
		return THOTH_E_NOMEM;
	thothd_tracer_foreach_reader(d->tracer, gather_one, &g);
	*out = g.e;
	*n = g.n;
	return 0;
}

static void to_wire(entry_t *e, thoth_daemon_ServeCounters_t *o)
{
	const thoth_chan_server_stats_t *t = &e->v.total;
	uint32_t nw = e->v.workers < THOTH_TRACE_SERVE_VIEW_WORKERS ? e->v.workers
								    : THOTH_TRACE_SERVE_VIEW_WORKERS;
	*o = (thoth_daemon_ServeCounters_t){
		.pid = e->pid, .process = thoth_str(e->process), .iface = thoth_str(e->v.iface),
		.path = thoth_str(e->v.path), .workers = e->v.workers, .clients = t->clients,
		.accepted = t->accepted, .refused = t->refused, .calls = t->calls, .turns = t->turns,
		.peer_gone = t->peer_gone, .corrupt = t->corrupt,
		.handshake_dropped = t->handshake_dropped, .shed = t->shed,
		.mod_wakeups = t->mod_wakeups, .mod_timer_wakeups = t->mod_timer_wakeups,
		.placement_moves = t->placement_moves, .handed_over = t->handed_over,
		.log_suppressed = t->log_suppressed,
		.worker_calls = { .items = e->v.worker_calls, .count = nw },
		.why = thoth_str(e->status ? e->why : ""),
		.oneways_dropped = e->oneways_dropped,
	};
}

int thothd_on_serve_stats(void *self, const thoth_daemon_Daemon_serve_stats_req_t *req,
			  thoth_daemon_Daemon_serve_stats_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	entry_t *e;
	size_t n;
	int r = gather(call->d, req->pid, &e, &n);
	if (r)
		return r;
	/* One block for the call's scratch: the entries, then the items. */
	entry_t *block = realloc(e, MAX_SERVING * sizeof(entry_t) +
				    (n ? n : 1) * sizeof(thoth_daemon_ServeCounters_t));
	if (!block) {
		free(e);
		return THOTH_E_NOMEM;
	}
	thoth_daemon_ServeCounters_t *items = (thoth_daemon_ServeCounters_t *)(block + MAX_SERVING);
	/* A client of daemon.tidl 1.3 or older (its request's schema minor)
	 * knows no oneways_dropped: a process listed only for its dropped
	 * oneway calls would show there as serving an empty interface at an
	 * empty path with 0 workers.  It gets the 1.3 list: servers only. */
	bool old_client = call->msg && call->len >= THOTH_WIRE_HEADER_SIZE && call->msg[5] < 4;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!old_client || block[i].v.workers || block[i].status)
			to_wire(&block[i], &items[k++]);
	call->scratch = block;
	resp->services.items = items;
	resp->services.count = (uint32_t)k;
	return thothd_reserve_response(call, &thoth_daemon_Daemon_serve_stats_info, resp);
}

/* ---- /metrics: every mapped process's dropped oneway calls ---------------------------- */

/* Here, in thothd_core, not in http_live.c (the thothd program only),
 * which writes every other label with it: tests link the core alone. */
void thothd_metrics_put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fputc('?', f);
		else
			fputc(*s, f);
	}
}

static void oneways_line(thoth_trace_reader_t *reader, uint32_t pid, void *ctx)
{
	FILE *f = ctx;
	uint32_t bpid;
	const char *name = "";
	thoth_trace_reader_process(reader, &bpid, &name);      /* made printable by the reader */
	fprintf(f, "thoth_oneways_dropped_total{pid=\"%u\",process=\"", pid);
	thothd_metrics_put_label(f, name);
	fprintf(f, "\"} %llu\n", (unsigned long long)thoth__trace_reader_oneways_dropped(reader));
}

void thothd_oneways_metrics(thothd_t *d, FILE *f)
{
	thothd_tracer_foreach_reader(d->tracer, oneways_line, f);
}

/* ---- JSON for the dashboard --------------------------------------------------------- */

int thothd_serve_stats_json(thothd_t *d, char **json, size_t *len)
{
	entry_t *e;
	size_t n;
	int r = gather(d, 0, &e, &n);
	if (r)
		return r;
	thothd_jbuf_t b = { .cap = 4096 };
	b.p = malloc(b.cap);
	if (!b.p) {
		free(e);
		return THOTH_E_NOMEM;
	}
	b.p[0] = 0;
	thothd_jput(&b, "{\"services\": [");
	for (size_t i = 0; i < n; i++) {
		const thoth_chan_server_stats_t *t = &e[i].v.total;
		thothd_jput(&b, "%s{\"pid\": %u, \"process\": ", i ? ", " : "", e[i].pid);
		thothd_jstr(&b, e[i].process);
		thothd_jput(&b, ", \"iface\": ");
		thothd_jstr(&b, e[i].v.iface);
		thothd_jput(&b, ", \"path\": ");
		thothd_jstr(&b, e[i].v.path);
		thothd_jput(&b, ", \"workers\": %u, \"clients\": %u, \"accepted\": %llu, \"refused\": %llu, "
			"\"calls\": %llu, \"turns\": %llu, \"peer_gone\": %llu, \"corrupt\": %llu, "
			"\"handshake_dropped\": %llu, \"shed\": %llu, \"mod_wakeups\": %llu, "
			"\"mod_timer_wakeups\": %llu, \"placement_moves\": %llu, \"handed_over\": %llu, "
			"\"log_suppressed\": %llu, \"worker_calls\": [",
		    e[i].v.workers, t->clients, (unsigned long long)t->accepted,
		    (unsigned long long)t->refused, (unsigned long long)t->calls,
		    (unsigned long long)t->turns, (unsigned long long)t->peer_gone,
		    (unsigned long long)t->corrupt, (unsigned long long)t->handshake_dropped,
		    (unsigned long long)t->shed, (unsigned long long)t->mod_wakeups,
		    (unsigned long long)t->mod_timer_wakeups, (unsigned long long)t->placement_moves,
		    (unsigned long long)t->handed_over, (unsigned long long)t->log_suppressed);
		uint32_t nw = e[i].v.workers < THOTH_TRACE_SERVE_VIEW_WORKERS
				      ? e[i].v.workers : THOTH_TRACE_SERVE_VIEW_WORKERS;
		for (uint32_t w = 0; w < nw; w++)
			thothd_jput(&b, "%s%llu", w ? ", " : "", (unsigned long long)e[i].v.worker_calls[w]);
		thothd_jput(&b, "], \"oneways_dropped\": %llu, \"why\": ",
			    (unsigned long long)e[i].oneways_dropped);
		thothd_jstr(&b, e[i].status ? e[i].why : "");
		thothd_jput(&b, "}");
	}
	thothd_jput(&b, "]}\n");
	free(e);
	if (b.failed) {
		free(b.p);
		return THOTH_E_NOMEM;
	}
	*json = b.p;
	*len = b.len;
	return 0;
}
