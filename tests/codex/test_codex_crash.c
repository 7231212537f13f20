/*
 * test_codex_crash - codex's crash matrix (docs/CODEX.md, "Crash tests").
 *
 *   test_codex_crash [KILLS] [DIR]       (KILLS: $CODEX_CRASH_KILLS, else 240; make test runs 150)
 *
 * Each round forks a child that opens the journal in DIR (recovering what
 * the previous round left), and appends from four threads to four streams,
 * two `sync` and two `deferred`, with 4 KiB segments so that segments roll
 * every few dozen records.  After each acknowledgement the child tells the
 * parent (a pipe) the last sequence number acknowledged.  The child dies by
 * SIGKILL:
 *   - at a random moment (the parent's kill, 0.5 .. 20 ms after start), or
 *   - exactly at an injected point (cx_crash_hook): half an append written,
 *     a new segment created without its header, just after a roll, an
 *     epoch's fdatasyncs queued, an epoch synced but not yet acknowledged,
 *     and the three steps of a compaction (retention keeps 4 segments):
 *     the new catalog durable but not renamed, renamed, the first dropped
 *     segment removed but not the others.
 * The parent then opens the store itself (recovery) and checks:
 *   1. every acknowledged record of every stream is there, sync and
 *      deferred alike (a SIGKILL leaves the page cache: deferred records
 *      survive a crash of codex), with exactly the bytes written, except
 *      those retention retired (below the stream's first retained sequence
 *      number, and only while the store still holds at least the
 *      retention's bytes);
 *   2. every record the store returns is intact (the pattern of its stream
 *      and sequence number), none beyond.
 * Every third round it then simulates a power cut: it truncates the last
 * segment at a random point, or flips a random bit, after the end of the
 * last acknowledged *sync* record (what was not acknowledged as durable may
 * be torn), recovers again and checks that every acknowledged sync record
 * is still there and nothing corrupt is returned.
 * Exit status 0 when no round lost an acknowledged record or returned a
 * corrupt one.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "store.h"
#include "thoth/error.h"

#define NSTREAMS 4
#define SEG_BYTES 16384
/* Retention: the oldest segments beyond 4 are compacted away while the
 * rounds run, so compaction's steps are in the matrix too. */
#define RETAIN_BYTES (4 * SEG_BYTES)

static const char *const names[NSTREAMS] = { "sync0", "def1", "sync2", "def3" };
static char dir[512];

typedef struct ack {
	uint32_t stream;
	uint32_t pad;
	uint64_t seq;           /* last sequence number acknowledged */
} ack_t;

static size_t pattern(int stream, uint64_t seq, char *buf)
{
	int n = sprintf(buf, "%s/%" PRIu64 "/", names[stream], seq);
	size_t extra = (seq * 7 + (uint64_t)stream) % 150;
	for (size_t k = 0; k < extra; k++)
		buf[n + k] = (char)('a' + (seq + k) % 26);
	return (size_t)n + extra;
}

/* ---- the child ----------------------------------------------------------- */

static int ack_fd;
static cx_journal_t *jr;
static int target_point, countdown;

static void hook(int point)
{
	if (point == target_point && --countdown == 0)
		raise(SIGKILL);
}

static void *writer(void *arg)
{
	int k = (int)(intptr_t)arg;
	uint64_t first, end;
	if (cx_journal_time_range(jr, names[k], strlen(names[k]), 0, 0, &first, &end))
		_exit(3);
	uint64_t next = end;
	unsigned seed = (unsigned)getpid() * 31u + (unsigned)k;
	for (;;) {
		size_t n = 1 + rand_r(&seed) % 3;
		char bufs[3][256];
		cx_iov_t v[3];
		for (size_t i = 0; i < n; i++)
			v[i] = (cx_iov_t){ bufs[i], pattern(k, next + i, bufs[i]) };
		uint64_t seq;
		int r = cx_journal_append(jr, names[k], strlen(names[k]), v, n,
					  k % 2 ? CX_DUR_DEFERRED : CX_DUR_SYNC, 0, &seq);
		if (r)
			_exit(4);
		if (seq != next)
			_exit(5);
		next += n;
		ack_t a = { .stream = (uint32_t)k, .seq = next - 1 };
		if (write(ack_fd, &a, sizeof a) != sizeof a)
			_exit(6);
		if (k % 2)      /* deferred writers would fill the disk, not test more */
			nanosleep(&(struct timespec){ 0, 200000 }, NULL);
	}
	return NULL;
}

static void child(int point, int count)
{
	target_point = point;
	countdown = count;
	if (point)
		cx_crash_hook = hook;
	cx_journal_config_t cfg = { .data_dir = dir, .segment_bytes = SEG_BYTES, .retain_bytes = RETAIN_BYTES };
	char why[300];
	if (cx_journal_open(&cfg, &jr, NULL, why, sizeof why)) {
		fprintf(stderr, "child: open: %s\n", why);
		_exit(2);
	}
	for (int k = 0; k < NSTREAMS; k++) {
		int r = cx_journal_create(jr, names[k], strlen(names[k]), k % 2 ? 60000 : 0);
		if (r && r != THOTH_E_EXISTS)
			_exit(2);
	}
	ack_t ready = { .stream = UINT32_MAX };
	if (write(ack_fd, &ready, sizeof ready) != sizeof ready)
		_exit(6);
	pthread_t t[NSTREAMS];
	for (int k = 0; k < NSTREAMS; k++)
		pthread_create(&t[k], NULL, writer, (void *)(intptr_t)k);
	pause();
	_exit(0);
}

/* ---- the parent's checks -------------------------------------------------- */

static uint64_t acked[NSTREAMS], first_kept[NSTREAMS];

/* Open the store (recovery) and check it; returns the number of problems.
 * SYNC_ONLY: only sync streams' acknowledgements must have survived. */
static int verify(const char *when, bool sync_only, cx_loc_t *last_sync_end)
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
	if (last_sync_end)
		memset(last_sync_end, 0, sizeof *last_sync_end);
	for (int k = 0; k < NSTREAMS; k++) {
		uint32_t id;
		if (cx_store_stream_find(s, names[k], strlen(names[k]), &id)) {
			if (acked[k]) {
				printf("FAIL %s: stream %s lost (acknowledged up to %" PRIu64 ")\n", when, names[k], acked[k]);
				bad++;
			}
			continue;
		}
		uint64_t n = cx_store_next_seq(s, id) - 1, first = cx_store_first_seq(s, id);
		/* Retired records are retention's doing, allowed only while what
		 * is kept is at least the retention (a power cut may then tear the
		 * unacknowledged tail of the last segment; a kill mid-append tears
		 * the one unacknowledged record each writer had in flight, which
		 * compaction had already counted: seen at the append-half point). */
		if (first > 1 && !sync_only &&
		    cx_store_bytes(s) + NSTREAMS * cx_rec_size(sizeof want) < RETAIN_BYTES) {
			printf("FAIL %s: %s retired up to %" PRIu64 " but only %" PRIu64 " bytes are kept (retention %d)\n",
			       when, names[k], first - 1, cx_store_bytes(s), RETAIN_BYTES);
			bad++;
		}
		if (n < acked[k] && (!sync_only || k % 2 == 0)) {
			printf("FAIL %s: stream %s has %" PRIu64 " records, %" PRIu64 " were acknowledged\n", when,
			       names[k], n, acked[k]);
			bad++;
		}
		first_kept[k] = first;
		for (uint64_t seq = first; seq <= n; seq++) {
			cx_loc_t loc;
			cx_rec_t rec;
			bool miss;
			if (cx_store_locate(s, id, seq, &loc) || cx_store_read_at(&loc, buf, &rec, &miss)) {
				printf("FAIL %s: %s record %" PRIu64 " unreadable\n", when, names[k], seq);
				bad++;
				break;
			}
			size_t wl = pattern(k, seq, want);
			if (rec.len != wl || memcmp(rec.payload, want, wl)) {
				printf("FAIL %s: %s record %" PRIu64 " returned corrupt\n", when, names[k], seq);
				bad++;
				break;
			}
			if (last_sync_end && k % 2 == 0 && seq == acked[k]) {
				/* the furthest acknowledged sync record (lsn order = file order) */
				if (loc.lsn > last_sync_end->lsn)
					*last_sync_end = loc;
			}
		}
		/* a power cut may take deferred records within their budget: the
		 * next rounds expect what is there now */
		if (sync_only && k % 2)
			acked[k] = n;
	}
	free(buf);
	cx_store_close(s);
	return bad;
}

static const char *last_segment(char *path, size_t cap)
{
	/* the highest numbered: after compactions the log no longer starts at 1 */
	uint64_t best = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	for (struct dirent *de; (de = readdir(d));) {
		uint64_t no;
		int used = 0;
		if (sscanf(de->d_name, "seg-%16" SCNx64 ".log%n", &no, &used) == 1 && used == (int)strlen(de->d_name) &&
		    no > best)
			best = no;
	}
	closedir(d);
	snprintf(path, cap, "%s/seg-%016" PRIx64 ".log", dir, best);
	return best ? path : NULL;
}

/* Tear the tail after the last acknowledged sync record, as a power cut may. */
static void power_cut(unsigned *seed, const cx_loc_t *sync_end)
{
	char path[700];
	if (!last_segment(path, sizeof path))
		return;
	int fd = open(path, O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st))
		return;
	/* where the durable prefix ends in this file: after the last sync
	 * record if it is in this file, else after the header */
	uint64_t from = CX_SEG_HDR;
	uint8_t h[CX_SEG_HDR];
	cx_seg_hdr_t hdr;
	bool hdr_ok = pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
		      cx_seg_hdr_parse(h, sizeof h, &hdr) == CX_OK;
	if (hdr_ok && sync_end->lsn >= hdr.first_lsn)
		from = sync_end->off + cx_rec_size(sync_end->len);
	/* stream creations (meta records, stream 0) are durable when create
	 * returns: a power cut cannot take them either */
	if (hdr_ok && (uint64_t)st.st_size > CX_SEG_HDR) {
		size_t size = (size_t)st.st_size;
		uint8_t *all = malloc(size);
		if (all && pread(fd, all, size, 0) == (ssize_t)size) {
			size_t off = CX_SEG_HDR, sz;
			cx_rec_t rec;
			while (off < size && cx_rec_parse(all + off, size - off, 0, &rec, &sz) == CX_OK) {
				if (rec.stream == 0 && off + sz > from)
					from = off + sz;
				off += sz;
			}
		}
		free(all);
	}
	if ((uint64_t)st.st_size > from) {
		uint64_t span = (uint64_t)st.st_size - from;
		uint64_t at = from + (uint64_t)rand_r(seed) % span;
		if (getenv("CODEX_CRASH_VERBOSE"))
			printf("power cut in %s (size %lld): sync end lsn %" PRIu64 " off %" PRIu64 " len %u, from %" PRIu64 " at %" PRIu64 "\n",
			       path, (long long)st.st_size, sync_end->lsn, sync_end->off, sync_end->len, from, at);
		if (rand_r(seed) % 2) {
			if (ftruncate(fd, (off_t)at)) {
			}
		} else {
			uint8_t b;
			if (pread(fd, &b, 1, (off_t)at) == 1) {
				b ^= (uint8_t)(1u << (rand_r(seed) % 8));
				if (pwrite(fd, &b, 1, (off_t)at) != 1) {
				}
			}
		}
	}
	close(fd);
}

int main(int argc, char **argv)
{
	int kills = argc > 1 ? atoi(argv[1]) : getenv("CODEX_CRASH_KILLS") ? atoi(getenv("CODEX_CRASH_KILLS")) : 240;
	/* the real disk: the test directory's own file system, not tmpfs */
	snprintf(dir, sizeof dir, "%s/codex-crash-XXXXXX", argc > 2 ? argv[2] : ".");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	unsigned seed = getenv("CODEX_CRASH_SEED") ? (unsigned)atoi(getenv("CODEX_CRASH_SEED")) : (unsigned)time(NULL);
	printf("test_codex_crash: %d rounds in %s (seed %u)\n", kills, dir, seed);
	int bad = 0, cuts = 0;
	int at_point[CX_PT_N] = { 0 }, random_kills = 0;
	uint64_t acks_total = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int round = 0; round < kills && !bad; round++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC))
			return 1;
		/* 2 of 3 rounds: a random moment; else an injected point */
		int point = round % 3 == 2 ? 1 + (round / 3) % (CX_PT_N - 1) : 0;
		int count = 1 + rand_r(&seed) % 6;
		pid_t pid = fork();
		if (pid == 0) {
			close(p[0]);
			ack_fd = p[1];
			child(point, count);
		}
		close(p[1]);
		/* the child's recovery is not what a random kill should hit
		 * (the injected points cover it): wait until it appends */
		ack_t a;
		ssize_t n = read(p[0], &a, sizeof a);
		int status;
		if (point) {
			/* it dies at the point; 5 s is the fallback if it never gets there */
			for (int w = 0; w < 500 && waitpid(pid, &status, WNOHANG) == 0; w++)
				nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
		} else {
			nanosleep(&(struct timespec){ 0, (long)(500 + rand_r(&seed) % 19500) * 1000 }, NULL);
		}
		if (waitpid(pid, &status, WNOHANG) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			if (!point)
				random_kills++;
		} else if (point && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			at_point[point]++;
		}
		(void)n;
		if (WIFEXITED(status)) {
			printf("FAIL round %d: child exited with %d\n", round, WEXITSTATUS(status));
			bad++;
		}
		while ((n = read(p[0], &a, sizeof a)) == sizeof a)
			if (a.stream < NSTREAMS && a.seq > acked[a.stream]) {
				acked[a.stream] = a.seq;
				acks_total++;
			}
		close(p[0]);
		char when[64];
		snprintf(when, sizeof when, "round %d (point %d)", round, point);
		cx_loc_t sync_end;
		bad += verify(when, false, &sync_end);
		if (!bad && round % 3 == 1) {
			power_cut(&seed, &sync_end);
			cuts++;
			snprintf(when, sizeof when, "round %d after a power cut", round);
			bad += verify(when, true, NULL);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%s: %d random kills, injected kills: append-half %d, roll-created %d, roll-done %d, "
	       "epoch-submitted %d, epoch-synced %d, compact-catalog %d, compact-renamed %d, compact-unlinked %d; "
	       "%d power cuts; records acknowledged up to %" PRIu64 " / %" PRIu64 " / %" PRIu64 " / %" PRIu64
	       ", retained from %" PRIu64 " / %" PRIu64 " / %" PRIu64 " / %" PRIu64 "; %.1f s\n",
	       bad ? "FAILED" : "ok: 0 acknowledged records lost, 0 corrupt returned", random_kills,
	       at_point[1], at_point[2], at_point[3], at_point[4], at_point[5], at_point[6], at_point[7], at_point[8],
	       cuts, acked[0], acked[1], acked[2], acked[3], first_kept[0], first_kept[1], first_kept[2],
	       first_kept[3], (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	(void)acks_total;
	if (!bad) {
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd)) {
		}
	}
	/* every injected point must actually have been reached in a long enough run */
	if (!bad && kills >= 30)
		for (int k = 1; k < CX_PT_N; k++)
			if (!at_point[k]) {
				printf("FAIL: no kill landed at injected point %d\n", k);
				bad++;
			}
	return bad ? 1 : 0;
}
