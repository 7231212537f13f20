/*
 * serve.c - `thothctl serve [--pid PID]` (SCALE-2, docs/SCALE.md "A per-CPU
 * service's counters in thothctl"): the counters of every process that
 * serves with thoth_serve / thoth_serve_per_cpu and is connected to thothd
 * with a trace buffer, its workers folded by thothd (Daemon.serve_stats).
 *
 *   thothctl [--json] serve [--pid PID]
 *
 * Text: one block per service; --json: one object per line, the
 * Daemon.serve_stats fields by name.  A service whose counter slots thothd
 * refused (they lie) is shown with the reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.thoth.h"
#include "thothctl.h"

/* What "serves" means here.  It said "a service needs a trace buffer", of
 * services that had one (the tutorial's greeter, make run's echo) and serve
 * on their own loop with thoth_chan_server_new, which keeps no such
 * counters: the hint sent the reader after the wrong cause. */
#define SERVES_HOW "with thoth_serve or thoth_serve_per_cpu (only those keep these counters, " \
	"read through the process's trace buffer: thoth_trace_init_process)"

static void print_json(const thoth_daemon_ServeCounters_t *s)
{
	printf("{\"pid\": %u, \"process\": ", s->pid);
	thothctl_json_str(s->process.ptr ? s->process.ptr : "", s->process.len);
	printf(", \"iface\": ");
	thothctl_json_str(s->iface.ptr ? s->iface.ptr : "", s->iface.len);
	printf(", \"path\": ");
	thothctl_json_str(s->path.ptr ? s->path.ptr : "", s->path.len);
	printf(", \"workers\": %u, \"clients\": %u, \"accepted\": %llu, \"refused\": %llu, "
	       "\"calls\": %llu, \"turns\": %llu, \"peer_gone\": %llu, \"corrupt\": %llu, "
	       "\"handshake_dropped\": %llu, \"shed\": %llu, \"mod_wakeups\": %llu, "
	       "\"mod_timer_wakeups\": %llu, \"placement_moves\": %llu, \"handed_over\": %llu, "
	       "\"log_suppressed\": %llu, \"worker_calls\": [",
	       s->workers, s->clients, (unsigned long long)s->accepted, (unsigned long long)s->refused,
	       (unsigned long long)s->calls, (unsigned long long)s->turns,
	       (unsigned long long)s->peer_gone, (unsigned long long)s->corrupt,
	       (unsigned long long)s->handshake_dropped, (unsigned long long)s->shed,
	       (unsigned long long)s->mod_wakeups, (unsigned long long)s->mod_timer_wakeups,
	       (unsigned long long)s->placement_moves, (unsigned long long)s->handed_over,
	       (unsigned long long)s->log_suppressed);
	for (uint32_t i = 0; i < s->worker_calls.count; i++)
		printf("%s%llu", i ? ", " : "", (unsigned long long)s->worker_calls.items[i]);
	printf("], \"oneways_dropped\": %llu, \"why\": ", (unsigned long long)s->oneways_dropped);
	thothctl_json_str(s->why.ptr ? s->why.ptr : "", s->why.len);
	printf("}\n");
}

static void print_text(const thoth_daemon_ServeCounters_t *s)
{
	if (!s->workers && !s->why.len) {       /* listed for its dropped oneway calls */
		printf("pid %u (%s) serves nothing; oneway calls dropped %llu\n", s->pid,
		       peertext_text(s->process.ptr, s->process.len), (unsigned long long)s->oneways_dropped);
		return;
	}
	/* the serving process's strings (its comm, interface, path), shown,
	 * never obeyed (peertext_text) */
	printf("pid %u (%s) serves %s at %s with %u worker%s\n", s->pid,
	       peertext_text(s->process.ptr, s->process.len), peertext_text(s->iface.ptr, s->iface.len),
	       peertext_text(s->path.ptr, s->path.len), s->workers, s->workers == 1 ? "" : "s");
	if (s->why.len) {
		printf("  counters refused: %s\n", peertext_text(s->why.ptr, s->why.len));
		return;
	}
	printf("  calls %llu  turns %llu  clients %u  accepted %llu  refused %llu  handed over %llu\n",
	       (unsigned long long)s->calls, (unsigned long long)s->turns, s->clients,
	       (unsigned long long)s->accepted, (unsigned long long)s->refused,
	       (unsigned long long)s->handed_over);
	printf("  peer gone %llu  corrupt %llu  handshakes dropped %llu  shed %llu  placement moves %llu\n",
	       (unsigned long long)s->peer_gone, (unsigned long long)s->corrupt,
	       (unsigned long long)s->handshake_dropped, (unsigned long long)s->shed,
	       (unsigned long long)s->placement_moves);
	printf("  wake-ups %llu (moderation timer %llu)  log lines suppressed %llu  oneway calls dropped %llu\n",
	       (unsigned long long)s->mod_wakeups, (unsigned long long)s->mod_timer_wakeups,
	       (unsigned long long)s->log_suppressed, (unsigned long long)s->oneways_dropped);
	printf("  calls per worker:");
	for (uint32_t i = 0; i < s->worker_calls.count; i++)
		printf(" %llu", (unsigned long long)s->worker_calls.items[i]);
	printf("%s\n", s->worker_calls.count < s->workers ? " ..." : "");
}

int thothctl_serve(int argc, char **argv, const thothctl_opts_t *opts)
{
	uint32_t pid = 0;
	for (int i = 1; i < argc; i++) {
		/* -h only right after the command, as main.c's asks_help:
		 * later it may be an option's value, and is refused as one */
		if (!strcmp(argv[i], "--help") || (i == 1 && !strcmp(argv[i], "-h"))) {
			printf("usage: thothctl [--json] serve [--pid PID]\n"
			       "  counters of the processes serving with thoth_serve / thoth_serve_per_cpu\n"
			       "  (their workers folded by thothd; the process needs a trace buffer),\n"
			       "  and the oneway calls every process dropped (one that serves nothing\n"
			       "  is listed once it dropped one)\n");
			return 0;
		}
		if (!strcmp(argv[i], "--pid") && i + 1 < argc) {
			char *end;
			errno = 0;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (errno || *end || !v || v > UINT32_MAX || argv[i][0] == '-') {
				fprintf(stderr, "thothctl: serve: --pid wants a process id, not '%s'\n", argv[i]);
				return 2;
			}
			pid = (uint32_t)v;
			continue;
		}
		/* named: the bare "usage: serve [--pid PID]" said neither what
		 * nor why */
		return thothctl_usage_error("serve", !strcmp(argv[i], "--pid") ? "missing value for"
						      : argv[i][0] == '-' ? "unknown option" : "unexpected argument",
					    argv[i]);
	}
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		return 1;
	thoth_daemon_Daemon_serve_stats_req_t req = { .pid = pid };
	thoth_daemon_Daemon_serve_stats_resp_t resp;
	size_t cap = 1u << 20;
	void *mem = malloc(cap);
	if (!mem) {
		thoth_control_close(&ctl);
		fprintf(stderr, "thothctl: serve: out of memory\n");
		return 1;
	}
	thoth_arena_t arena;
	thoth_arena_init(&arena, mem, cap);
	int r = thoth_daemon_Daemon_serve_stats(&ctl.client, &req, &resp, &arena);
	if (r) {
		int st = thothctl_call_failed(&ctl, "serve_stats", r);
		free(mem);
		thoth_control_close(&ctl);
		return st;
	}
	/* --pid names one process: none is "not found" (exit 1, as resolve's
	 * is), not an empty answer. */
	if (!resp.services.count && pid) {
		fprintf(stderr, "thothctl: serve: no connected process with pid %u serves %s\n", pid,
			SERVES_HOW);
		free(mem);
		thoth_control_close(&ctl);
		return 1;
	}
	if (!resp.services.count && !opts->json)
		printf("no connected process serves %s\n", SERVES_HOW);
	for (uint32_t i = 0; i < resp.services.count; i++) {
		if (opts->json)
			print_json(&resp.services.items[i]);
		else
			print_text(&resp.services.items[i]);
	}
	free(mem);
	thoth_control_close(&ctl);
	return 0;
}
