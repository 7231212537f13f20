/*
 * bench_trace_drain.c - what a collector's loss accounting adds to a drain
 * (SCALE-2, issue 18): thothd hooks its readers' lost ranges
 * (thoth__trace_reader_on_lost, split by the session's cuts with
 * thoth__trace_cut_share: trace.c source_lost) and checks each drained
 * record against the session's cuts (trace.c before_cut / in_session).
 * One process, one OVERWRITE_OLDEST ring of RING records, one thread: each
 * round writes W records and polls them, so nothing but the reader runs in
 * thoth_trace_reader_poll.  Meant for callgrind, one mode a run:
 *
 *   valgrind --tool=callgrind --toggle-collect=thoth_trace_reader_poll \
 *       bench_trace_drain --mode plain|lost|cut [--lap] [--rounds N]
 *
 * plain: no on_lost hook, a callback that counts; lost: on_lost hooked to
 * trace.c's split (a start and a stop cut); cut: that, and each record
 * checked against both cuts as trace.c's route_event does.  --lap writes
 * 2 * RING a round (one lap: RING records lost, RING read, one on_lost
 * call), else RING / 2 (none lost).  Instructions per drained record =
 * Ir / records read (printed), a mode's cost = its Ir less plain's.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/trace.h"
#include "trace_layout.h"

enum { RING = 4096 };

/* trace.c's per-source state, as much of it as the accounting reads. */
typedef struct session {
	uint64_t session_cut, stop_cut;         /* one ring */
	uint32_t n_cut;
	bool in_session, check_cuts;
	uint64_t counted, session_overwritten;
} session_t;

/* trace.c source_lost */
static void source_lost(uint32_t ring, uint64_t from, uint64_t to, void *ctx)
{
	session_t *s = ctx;
	if (!s->in_session)
		return;
	const uint64_t *start = ring < s->n_cut ? &s->session_cut : NULL;
	const uint64_t *stop = ring < s->n_cut ? &s->stop_cut : NULL;
	s->session_overwritten = thoth__trace_sat_add(s->session_overwritten,
						      thoth__trace_cut_share(from, to, start, stop));
}

/* trace.c before_cut / in_session, for each drained record */
static int count_event(const thoth_trace_event_t *ev, void *ctx)
{
	session_t *s = ctx;
	if (s->check_cuts) {
		if (ev->ring < s->n_cut && ev->seq < s->session_cut)
			return 0;
		if (ev->ring < s->n_cut && ev->seq >= s->stop_cut)
			return 0;
	}
	s->counted++;
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = "plain";
	bool lap = false;
	uint64_t rounds = 200;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			mode = argv[++i];
		else if (!strcmp(argv[i], "--lap"))
			lap = true;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoull(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "usage: bench_trace_drain [--mode plain|lost|cut] [--lap] [--rounds N]\n");
			return 2;
		}
	}
	bool hook = strcmp(mode, "plain") != 0, cuts = !strcmp(mode, "cut");
	if (!rounds || (!cuts && hook && strcmp(mode, "lost"))) {
		fprintf(stderr, "bench_trace_drain: bad --mode or --rounds\n");
		return 2;
	}
	thoth_trace_config_t cfg = {
		.ring_count = 1,
		.ring_records = RING,
		.full_policy = THOTH_TRACE_OVERWRITE_OLDEST,
		.enabled = THOTH_TRACE_ALL_CATEGORIES,
		.process_name = "bench-drain",
	};
	int fd;
	thoth_trace_reader_t *r = NULL;
	if (thoth_trace_init(&cfg) || thoth_trace_export_fd(&fd) || thoth_trace_reader_open(fd, &r)) {
		fprintf(stderr, "bench_trace_drain: no trace buffer\n");
		return 1;
	}
	/* The session's cuts: from the first record on, never stopped (every
	 * record and every lapped one is the session's: the checks all run
	 * to the end, none short-circuits). */
	session_t s = { .session_cut = 0, .stop_cut = UINT64_MAX, .n_cut = 1, .in_session = true,
			.check_cuts = cuts };
	if (hook)
		thoth__trace_reader_on_lost(r, source_lost, &s);
	uint64_t per_round = lap ? 2 * RING : RING / 2;
	for (uint64_t i = 0; i < rounds; i++) {
		for (uint64_t j = 0; j < per_round; j++)
			THOTH_TRACE(USER, drain_bench, j, i);
		thoth_trace_reader_poll(r, count_event, &s);
	}
	thoth_trace_stats_t st;
	thoth_trace_reader_stats(r, &st);
	printf("mode %s%s: %llu rounds, %llu records read, %llu overwritten (session's share %llu)\n", mode,
	       lap ? " --lap" : "", (unsigned long long)rounds, (unsigned long long)st.read,
	       (unsigned long long)st.overwritten, (unsigned long long)s.session_overwritten);
	thoth_trace_reader_close(r);
	thoth_trace_shutdown();
	return s.counted == st.read && (!hook || s.session_overwritten == st.overwritten) ? 0 : 1;
}
