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
 * With no --mode (or --mode all) the three run in one process, alternated
 * three times, and the poll time a record (wall clock) is printed with
 * lost's and cut's ratios to plain, the baseline.
 *
 * plain: no on_lost hook, a callback that counts; lost: on_lost hooked to
 * trace.c's split (a start and a stop cut); cut: that, and each record
 * checked against both cuts as trace.c's route_event does.  --lap writes
 * 2 * RING a round (one lap: RING records lost, RING read, one on_lost
 * call), else RING / 2 (none lost).  Instructions per drained record =
 * Ir / records read (printed), a mode's cost = its Ir less plain's.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thoth/trace.h"
#include "trace_layout.h"

enum { RING = 4096 };

/* trace.c's per-source state, as much of it as the accounting reads. */
typedef struct session {
	uint64_t session_cut, stop_cut;         /* one ring */
	uint32_t n_cut;
	bool in_session, check_cuts;
	uint64_t counted, session_overwritten, session_torn, session_invalid;
} session_t;

/* trace.c source_lost */
static void source_lost(uint32_t ring, uint32_t kind, uint64_t from, uint64_t to, void *ctx)
{
	session_t *s = ctx;
	if (!s->in_session)
		return;
	const uint64_t *start = ring < s->n_cut ? &s->session_cut : NULL;
	const uint64_t *stop = ring < s->n_cut ? &s->stop_cut : NULL;
	uint64_t n = kind == THOTH__TRACE_LOST_UNPLACED ? to - from
							: thoth__trace_cut_share(from, to, start, stop);
	uint64_t *sum = kind == THOTH__TRACE_LOST_OVERWRITTEN ? &s->session_overwritten
		      : kind == THOTH__TRACE_LOST_TORN ? &s->session_torn : &s->session_invalid;
	*sum = thoth__trace_sat_add(*sum, n);
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

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ROUNDS rounds of MODE on R: writes, then polls (only the polls timed).
 * Prints the mode's line; *NS_PER_READ its poll time per record read.
 * False when a count is wrong. */
static bool run(thoth_trace_reader_t *r, const char *mode, bool lap, uint64_t rounds, double *ns_per_read)
{
	bool hook = strcmp(mode, "plain") != 0, cuts = !strcmp(mode, "cut");
	/* The session's cuts: from the first record on, never stopped (every
	 * record and every lapped one is the session's: the checks all run
	 * to the end, none short-circuits). */
	session_t s = { .session_cut = 0, .stop_cut = UINT64_MAX, .n_cut = 1, .in_session = true,
			.check_cuts = cuts };
	thoth__trace_reader_on_lost(r, hook ? source_lost : NULL, &s);
	thoth_trace_stats_t st0, st;
	thoth_trace_reader_stats(r, &st0);
	uint64_t per_round = lap ? 2 * RING : RING / 2, ns = 0;
	for (uint64_t i = 0; i < rounds; i++) {
		for (uint64_t j = 0; j < per_round; j++)
			THOTH_TRACE(USER, drain_bench, j, i);
		uint64_t t = now_ns();
		thoth_trace_reader_poll(r, count_event, &s);
		ns += now_ns() - t;
	}
	thoth_trace_reader_stats(r, &st);
	uint64_t read = st.read - st0.read, lost = st.overwritten - st0.overwritten;
	*ns_per_read = read ? (double)ns / (double)read : 0;
	printf("mode %s%s: %llu rounds, %llu records read, %llu overwritten (session's share %llu), "
	       "%.2f ns a record in the polls\n", mode, lap ? " --lap" : "", (unsigned long long)rounds,
	       (unsigned long long)read, (unsigned long long)lost, (unsigned long long)s.session_overwritten,
	       *ns_per_read);
	return s.counted == read && (!hook || s.session_overwritten == lost);
}

int main(int argc, char **argv)
{
	const char *mode = "all";
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
			fprintf(stderr, "usage: bench_trace_drain [--mode all|plain|lost|cut] [--lap] [--rounds N]\n");
			return 2;
		}
	}
	bool all = !strcmp(mode, "all");
	if (!rounds || (!all && strcmp(mode, "plain") && strcmp(mode, "lost") && strcmp(mode, "cut"))) {
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
	bool ok = true;
	if (!all) {
		double ns;
		ok = run(r, mode, lap, rounds, &ns);
	} else {
		/* The baseline (plain) and both hooked modes in this run, alternated
		 * three times; medians of the poll time per record, and ratios. */
		static const char *const modes[] = { "plain", "lost", "cut" };
		double ns[3][3];
		for (int k = 0; k < 3; k++)
			for (int m = 0; m < 3; m++)
				ok &= run(r, modes[m], lap, rounds, &ns[m][k]);
		double med[3];
		for (int m = 0; m < 3; m++) {
			double lo = fmin(ns[m][0], ns[m][1]), hi = fmax(ns[m][0], ns[m][1]);
			med[m] = fmax(lo, fmin(hi, ns[m][2]));
		}
		printf("poll time a record read (wall clock, medians of 3; instructions: one --mode under callgrind):\n"
		       "  plain %.2f ns, lost %.2f ns (%.3fx plain), cut %.2f ns (%.3fx plain)\n",
		       med[0], med[1], med[0] ? med[1] / med[0] : 0, med[2], med[0] ? med[2] / med[0] : 0);
	}
	thoth_trace_reader_close(r);
	thoth_trace_shutdown();
	return ok ? 0 : 1;
}
