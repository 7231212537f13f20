/*
 * test_codex_crash_points - codex's journal killed by SIGKILL at counted
 * points, then recovered (docs/CODEX.md, "Crash tests").
 *
 * A process crash, not a power cut: the child dies, the kernel (and its
 * page cache) does not, so every acknowledged record -- `sync` and
 * `deferred` alike -- must be there after recovery.  (test_codex_crash
 * adds random kill times and simulated power cuts; this one is
 * deterministic in what it counts, and has no timing in it at all: each
 * kill happens at a point the child reaches, never after a delay.)
 *
 * Each round forks a child that opens the journal in one data dir
 * (recovering what the round before left: 4 KiB segments, retention of 4
 * segments, so rolls and compactions happen within a few rounds) and
 * appends to two streams in turn, one `sync` and one `deferred`, one
 * record per append, telling the parent each acknowledgement (a pipe)
 * before the next append.  The child kills itself (SIGKILL):
 *   - right after its N-th acknowledgement, for N = 1, 2, 3, 5, 8 ... 144
 *     (the committer thread may be anywhere in an epoch), or
 *   - at the C-th time it reaches an injected point (cx_crash_hook), C = 1
 *     and 2: half an append written, a new segment without its header, a
 *     roll done, an epoch's fdatasyncs queued, an epoch synced and not yet
 *     acknowledged, a compaction's catalog durable, renamed, the first
 *     dropped segment removed; and at each step of recovery's removal of
 *     segments a committed catalog drops (reached in the round after a
 *     kill between a compaction's rename and its removals): the catalog
 *     rewritten, renamed and fsync'ed, the first dropped segment removed.
 * After each round the parent recovers the store itself and checks, for
 * each stream: every acknowledged record is there (the next sequence
 * number is past the last acknowledged one), except those retention
 * retired (below the first retained, only while the segments hold at
 * least the retention); every record from the first retained to the last
 * reads back exactly as written -- its payload names its stream and
 * sequence number, so a record there twice, or out of place, or torn,
 * fails -- acknowledged or not (a record written but not acknowledged may
 * be there or not, never damaged).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "journal.h"
#include "store.h"
#include "thoth/error.h"
#include "../common/tmpdir.h"

#define SEG_BYTES 4096
#define RETAIN_BYTES (4 * SEG_BYTES)
#define NSTREAMS 2
#define MAX_APPENDS 3000        /* a child that never reaches its point stops here (exit 3) */

static const char *const names[NSTREAMS] = { "sync0", "def1" };
static char dir[512];

static size_t pattern(int stream, uint64_t seq, char *buf)
{
	int n = sprintf(buf, "%s/%" PRIu64 "/", names[stream], seq);
	size_t extra = (seq * 13 + (uint64_t)stream) % 120;
	for (size_t k = 0; k < extra; k++)
		buf[n + k] = (char)('a' + (seq + k) % 26);
	return (size_t)n + extra;
}

/* ---- the child ----------------------------------------------------------- */

static int target_point, countdown;

static void hook(int point)
{
	if (point == target_point && --countdown == 0)
		raise(SIGKILL);
}

typedef struct ack {
	uint32_t stream, pad;
	uint64_t seq;
} ack_t;

static void child(int ack_fd, int point, int count, int kill_after)
{
	target_point = point;
	countdown = count;
	if (point)
		cx_crash_hook = hook;
	cx_journal_config_t cfg = { .data_dir = dir, .segment_bytes = SEG_BYTES, .retain_bytes = RETAIN_BYTES,
				    .epoll = true };
	cx_journal_t *j;
	char why[300];
	if (cx_journal_open(&cfg, &j, NULL, why, sizeof why)) {
		fprintf(stderr, "child: open: %s\n", why);
		_exit(2);
	}
	uint64_t next[NSTREAMS];
	for (int k = 0; k < NSTREAMS; k++) {
		int r = cx_journal_create(j, names[k], strlen(names[k]), k ? 60000 : 0);
		uint64_t first, end;
		if ((r && r != THOTH_E_EXISTS) || cx_journal_time_range(j, names[k], strlen(names[k]), 0, 0, &first, &end))
			_exit(2);
		next[k] = end;
	}
	for (int n = 1; n <= MAX_APPENDS; n++) {
		int k = n % NSTREAMS;
		char buf[256];
		cx_iov_t v = { buf, pattern(k, next[k], buf) };
		uint64_t seq;
		if (cx_journal_append(j, names[k], strlen(names[k]), &v, 1, k ? CX_DUR_DEFERRED : CX_DUR_SYNC, 0, &seq))
			_exit(4);
		if (seq != next[k])
			_exit(5);
		ack_t a = { .stream = (uint32_t)k, .seq = next[k]++ };
		if (write(ack_fd, &a, sizeof a) != sizeof a)
			_exit(6);
		if (n == kill_after)
			raise(SIGKILL);
	}
	_exit(3);
}

/* ---- the parent ------------------------------------------------------------ */

static uint64_t acked[NSTREAMS];

static int verify(const char *when)
{
	cx_store_t *s;
	cx_recovery_t rep;
	char why[300];
	cx_store_config_t cfg = { .dir = dir, .segment_bytes = SEG_BYTES, .retain_bytes = RETAIN_BYTES };
	int r = cx_store_open(&cfg, &s, &rep, why, sizeof why);
	if (r) {
		printf("FAIL %s: recovery failed: %s: %s\n", when, thoth_strerror(r), why);
		return 1;
	}
	int bad = 0;
	uint8_t *buf = malloc(cx_rec_size(CX_REC_MAX));
	char want[256];
	for (int k = 0; k < NSTREAMS && buf; k++) {
		uint32_t id;
		if (cx_store_stream_find(s, names[k], strlen(names[k]), &id)) {
			if (acked[k]) {
				printf("FAIL %s: stream %s lost (acknowledged up to %" PRIu64 ")\n", when, names[k], acked[k]);
				bad++;
			}
			continue;
		}
		uint64_t last = cx_store_next_seq(s, id) - 1, first = cx_store_first_seq(s, id);
		if (last < acked[k]) {
			printf("FAIL %s: %s ends at %" PRIu64 ", %" PRIu64 " was acknowledged\n", when, names[k], last,
			       acked[k]);
			bad++;
		}
		if (first > 1 && cx_store_bytes(s) < RETAIN_BYTES - SEG_BYTES) {
			printf("FAIL %s: %s retired up to %" PRIu64 " with only %" PRIu64 " bytes kept\n", when, names[k],
			       first - 1, cx_store_bytes(s));
			bad++;
		}
		for (uint64_t seq = first; seq <= last; seq++) {
			cx_loc_t loc;
			cx_rec_t rec;
			bool miss;
			size_t wl = pattern(k, seq, want);
			if (cx_store_locate(s, id, seq, &loc) || cx_store_read_at(&loc, buf, &rec, &miss) || rec.len != wl ||
			    memcmp(rec.payload, want, wl)) {
				printf("FAIL %s: %s record %" PRIu64 " is not as written\n", when, names[k], seq);
				bad++;
				break;
			}
		}
	}
	free(buf);
	cx_store_close(s);
	return bad;
}

/* One round: a child killed after KILL_AFTER acknowledgements, or at the
 * COUNT-th time it reaches POINT, then the parent's recovery and checks
 * (unless CHECK is false: the next child's recovery is the one under
 * test).  Returns the problems; *REACHED: it died by SIGKILL where it was
 * told to. */
static int round_(const char *when, int point, int count, int kill_after, bool check, bool *reached)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return 1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(p[0]);
		child(p[1], point, count, kill_after);
	}
	close(p[1]);
	ack_t a;
	while (read(p[0], &a, sizeof a) == (ssize_t)sizeof a)
		if (a.stream < NSTREAMS && a.seq > acked[a.stream])
			acked[a.stream] = a.seq;
	close(p[0]);
	int status, bad = 0;
	if (waitpid(pid, &status, 0) != pid)
		return 1;
	*reached = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (WIFEXITED(status) && WEXITSTATUS(status) != 3) {
		printf("FAIL %s: the child exited with %d\n", when, WEXITSTATUS(status));
		bad++;
	}
	return bad + (check ? verify(when) : 0);
}

int main(void)
{
	char tmpl[sizeof dir];
	if (!test_tmp_template(tmpl, sizeof tmpl, "codex-crash-points") || !mkdtemp(tmpl)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dir, sizeof dir, "%s", tmpl);
	signal(SIGPIPE, SIG_IGN);
	int bad = 0, rounds = 0, kills = 0;
	char when[96];
	bool reached;
	/* 1. after the N-th acknowledgement */
	static const int after[] = { 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144 };
	for (size_t i = 0; i < sizeof after / sizeof after[0] && !bad; i++) {
		snprintf(when, sizeof when, "a kill after %d acknowledgements", after[i]);
		bad += round_(when, 0, 0, after[i], true, &reached);
		rounds++;
		kills += reached;
		if (!reached) {
			printf("FAIL %s: the child was not killed there\n", when);
			bad++;
		}
	}
	/* 2. at the 1st and 2nd time at each injected point; a compaction's
	 * rename then recovery's steps (the rename leaves segments the
	 * catalog drops for the next recovery to remove) */
	int missed = 0;
	for (int pt = 1; pt < CX_PT_N && !bad; pt++)
		for (int c = 1; c <= 2 && !bad; c++) {
			snprintf(when, sizeof when, "a kill at point %d (time %d)", pt, c);
			bad += round_(when, pt, c, 0, true, &reached);
			rounds++;
			kills += reached;
			if (!reached) {
				printf("FAIL %s: never reached in %d appends\n", when, MAX_APPENDS);
				missed++;
			}
		}
	static const int rec_points[] = { CX_PT_RECOVER_CATALOG, CX_PT_RECOVER_RENAMED, CX_PT_RECOVER_UNLINKED };
	for (size_t i = 0; i < 3 && !bad; i++) {
		snprintf(when, sizeof when, "a kill between a compaction's rename and its removals");
		bad += round_(when, CX_PT_COMPACT_RENAMED, 1, 0, false, &reached);
		rounds++;
		kills += reached;
		if (!reached)
			missed++;
		snprintf(when, sizeof when, "a kill at recovery's point %d", rec_points[i]);
		bad += round_(when, rec_points[i], 1, 0, true, &reached);
		rounds++;
		kills += reached;
		if (!reached) {
			printf("FAIL %s: recovery never reached it\n", when);
			missed++;
		}
	}
	printf("%s: %d rounds, %d killed where told; acknowledged up to %" PRIu64 " (sync) / %" PRIu64
	       " (deferred)\n", bad || missed ? "FAILED" : "ok: 0 acknowledged records lost, 0 not as written", rounds,
	       kills, acked[0], acked[1]);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
	return bad || missed ? 1 : 0;
}
