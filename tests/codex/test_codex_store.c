/*
 * test_codex_store - codex's record format, store and recovery (docs/CODEX.md):
 * what was written is read back, a torn or corrupted tail is cut and never
 * returned, segments roll and their index files are used, streams survive
 * reopening.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "record.h"
#include "store.h"
#include "thoth/error.h"
#include "../common/tmpdir.h"

static char dir[256];

/*
 * A failing disk's directory fsync, in this process (codex_core is linked
 * in statically, so its fsync calls are this one): after dir_fsync_skip
 * more fsyncs of a directory succeed, the next dir_fsync_fail ones fail
 * with EIO without syncing.  Both 0: every fsync is the real one.  The
 * service's tests use the LD_PRELOAD shim eio_fdatasync.c the same way.
 */
static int dir_fsync_skip, dir_fsync_fail;

int fsync(int fd)
{
	struct stat st;
	if (dir_fsync_fail > 0 && !fstat(fd, &st) && S_ISDIR(st.st_mode)) {
		if (dir_fsync_skip > 0) {
			dir_fsync_skip--;
		} else {
			dir_fsync_fail--;
			errno = EIO;
			return -1;
		}
	}
	return (int)syscall(SYS_fsync, fd);
}

static int setup(void **state)
{
	/* tmpfs where there is one: recovery's fdatasync is then free, and
	 * these tests reopen the store hundreds of times (the crash tests,
	 * test_codex_crash, use the real disk) */
	snprintf(dir, sizeof dir, "%s/test-codex-store-XXXXXX", access("/dev/shm", W_OK) ? test_tmpdir() : "/dev/shm");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd);
}

static cx_store_t *open_store(uint64_t seg, cx_recovery_t *rep)
{
	cx_store_t *s;
	char why[200];
	cx_store_config_t cfg = { .dir = dir, .segment_bytes = seg };
	int r = cx_store_open(&cfg, &s, rep, why, sizeof why);
	if (r)
		fail_msg("open: %s: %s", thoth_strerror(r), why);
	return s;
}

/* record i of the test's pattern: "rec-<i>-" then i % 97 bytes of 'a' + i % 26 */
static size_t pattern(uint64_t i, char *buf)
{
	int n = sprintf(buf, "rec-%llu-", (unsigned long long)i);
	size_t extra = i % 97;
	memset(buf + n, 'a' + (int)(i % 26), extra);
	return (size_t)n + extra;
}

static void append_n(cx_store_t *s, uint32_t id, uint64_t from, uint64_t n)
{
	char buf[256];
	for (uint64_t i = from; i < from + n; i++) {
		cx_iov_t v = { buf, pattern(i, buf) };
		uint64_t seq;
		assert_int_equal(cx_store_append(s, id, &v, 1, 0, 1000 + i, &seq), 0);
		assert_int_equal(seq, i);
	}
}

/* Every record 1..N of stream ID reads back intact; N + 1 is not there. */
static void check_n(cx_store_t *s, uint32_t id, uint64_t n)
{
	uint8_t rb[cx_rec_size(256)];
	char want[256];
	for (uint64_t i = 1; i <= n; i++) {
		cx_loc_t loc;
		assert_int_equal(cx_store_locate(s, id, i, &loc), 0);
		cx_rec_t rec;
		bool miss;
		assert_int_equal(cx_store_read_at(&loc, rb, &rec, &miss), 0);
		size_t wl = pattern(i, want);
		assert_int_equal(rec.len, wl);
		assert_memory_equal(rec.payload, want, wl);
	}
	cx_loc_t loc;
	assert_int_equal(cx_store_locate(s, id, n + 1, &loc), THOTH_E_NOT_FOUND);
}

static void test_record_roundtrip_and_every_single_bit_flip_is_refused(void **state)
{
	uint8_t payload[37];
	for (size_t i = 0; i < sizeof payload; i++)
		payload[i] = (uint8_t)(i * 7);
	cx_rec_t r = { .len = sizeof payload, .lsn = 9, .seq = 3, .time_ns = 77, .stream = 2,
		       .type = CX_REC_DATA, .flags = CX_REC_F_SYNC, .payload = payload };
	uint8_t buf[cx_rec_size(sizeof payload)];
	cx_rec_encode(&r, buf);
	cx_rec_t out;
	size_t size;
	assert_int_equal(cx_rec_parse(buf, sizeof buf, 9, &out, &size), CX_OK);
	assert_int_equal(size, sizeof buf);
	assert_int_equal(out.seq, 3);
	assert_memory_equal(out.payload, payload, sizeof payload);
	for (size_t n = 0; n < sizeof buf; n++)
		assert_int_equal(cx_rec_parse(buf, n, 9, &out, &size), CX_NEED_MORE);
	/* bits of the header and payload (the padding is not covered) */
	for (size_t bit = 0; bit < (CX_REC_HDR + sizeof payload) * 8; bit++) {
		buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
		cx_verdict_t v = cx_rec_parse(buf, sizeof buf, 9, &out, &size);
		assert_true(v != CX_OK);
		buf[bit / 8] ^= (uint8_t)(1u << bit % 8);
	}
	assert_int_equal(cx_rec_parse(buf, sizeof buf, 10, &out, &size), CX_BAD);  /* wrong lsn */
	/* the crc32c check value of "123456789" */
	assert_int_equal(cx_crc32c(0, "123456789", 9), 0xE3069283u);
}

static void test_appended_records_read_back_after_reopen(void **state)
{
	cx_recovery_t rep;
	cx_store_t *s = open_store(0, &rep);
	uint32_t a, b;
	assert_int_equal(cx_store_stream_create(s, "alpha", 5, 1000, 1, &a), 0);
	assert_int_equal(cx_store_stream_create(s, "beta", 4, 0, 1, &b), 0);
	assert_int_equal(cx_store_stream_create(s, "alpha", 5, 1000, 1, &a), THOTH_E_EXISTS);
	assert_int_equal(cx_store_stream_create(s, "Bad", 3, 0, 1, &a), THOTH_E_INVAL);
	append_n(s, a, 1, 300);
	append_n(s, b, 1, 10);
	char big[CX_REC_MAX + 1] = { 0 };
	cx_iov_t v = { big, sizeof big };
	uint64_t seq;
	assert_int_equal(cx_store_append(s, a, &v, 1, 0, 5, &seq), THOTH_E_TOO_LARGE);
	assert_int_equal(cx_store_append(s, 99, &v, 1, 0, 5, &seq), THOTH_E_NOT_FOUND);
	check_n(s, a, 300);
	cx_store_close(s);
	s = open_store(0, &rep);
	assert_int_equal(rep.records, 312);
	assert_int_equal(rep.truncated_bytes, 0);
	assert_int_equal(cx_store_stream_find(s, "beta", 4, &b), 0);
	assert_int_equal(cx_store_stream_find(s, "alpha", 5, &a), 0);
	check_n(s, a, 300);
	check_n(s, b, 10);
	append_n(s, a, 301, 5);         /* appending goes on where it was */
	check_n(s, a, 305);
	/* by time: record i was appended at 1000 + i */
	assert_int_equal(cx_store_seq_at_time(s, a, 1000 + 42), 42);
	assert_int_equal(cx_store_seq_at_time(s, a, 0), 1);
	assert_int_equal(cx_store_seq_at_time(s, a, 1u << 30), 306);
	cx_store_close(s);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY);
	if (in < 0)
		fail_msg("open %s: %s", from, strerror(errno));
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0)
		fail_msg("open %s: %s", to, strerror(errno));
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static off_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* Cut the file at every length from full down to the header: recovery
 * keeps exactly the whole records before the cut. */
static void test_a_torn_tail_at_any_byte_is_cut_back_to_the_last_whole_record(void **state)
{
	cx_store_t *s = open_store(0, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "t", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 20);
	/* record end offsets */
	uint64_t ends[21];
	for (uint64_t i = 1; i <= 20; i++) {
		cx_loc_t loc;
		cx_store_locate(s, a, i, &loc);
		ends[i] = loc.off + cx_rec_size(loc.len);
		if (i == 1)
			ends[0] = loc.off;      /* where the stream's creation record ends */
	}
	cx_store_close(s);
	char path[300], copy[300];
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	snprintf(copy, sizeof copy, "%s/../codex-seg-copy-%d", dir, (int)getpid());
	copy_file(path, copy);
	off_t full = file_size(path);
	for (off_t cut = full; cut >= (off_t)ends[1] - 8; cut -= 5) {
		copy_file(copy, path);
		assert_int_equal(truncate(path, cut), 0);
		cx_recovery_t rep;
		s = open_store(0, &rep);
		uint64_t whole = 0;
		while (whole < 20 && ends[whole + 1] <= (uint64_t)cut)
			whole++;
		assert_int_equal(cx_store_stream_find(s, "t", 1, &a), 0);
		check_n(s, a, whole);
		assert_int_equal(file_size(path), (off_t)ends[whole]);
		cx_store_close(s);
	}
	unlink(copy);
}

/* Flip one bit anywhere in the last records: recovery keeps the records
 * before the damaged one, none after, and reads never return it. */
static void test_a_bit_flip_in_the_tail_ends_the_log_before_the_damaged_record(void **state)
{
	cx_store_t *s = open_store(0, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "t", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 30);
	cx_loc_t locs[31];
	for (uint64_t i = 1; i <= 30; i++)
		cx_store_locate(s, a, i, &locs[i]);
	cx_store_close(s);
	char path[300], copy[300];
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	snprintf(copy, sizeof copy, "%s/../codex-seg-copy-%d", dir, (int)getpid());
	copy_file(path, copy);
	srand(7);
	for (int trial = 0; trial < 100; trial++) {
		copy_file(copy, path);
		uint64_t victim = 20 + (uint64_t)(rand() % 11);       /* one of the last 11 */
		uint64_t off = locs[victim].off + (uint64_t)rand() % (CX_REC_HDR + locs[victim].len);
		int fd = open(path, O_RDWR);
		uint8_t byte;
		assert_int_equal(pread(fd, &byte, 1, (off_t)off), 1);
		byte ^= (uint8_t)(1u << (rand() % 8));
		assert_int_equal(pwrite(fd, &byte, 1, (off_t)off), 1);
		close(fd);
		s = open_store(0, NULL);
		assert_int_equal(cx_store_stream_find(s, "t", 1, &a), 0);
		check_n(s, a, victim - 1);
		cx_store_close(s);
	}
	unlink(copy);
}

/* A bit flipped in the middle of the log, long after the record was made
 * durable: recovery ends the log before it, as for a torn tail -- and cut
 * away with the truncation every acknowledged record after it.  The cut
 * bytes are now copied aside first (SEG.log.cut-OFFSET, never read), so the
 * records after the damage are still on the disk, byte for byte. */
static void test_a_cut_tail_is_copied_aside_before_the_segment_is_truncated(void **state)
{
	cx_store_t *s = open_store(0, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "t", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 30);
	cx_loc_t loc10;
	assert_int_equal(cx_store_locate(s, a, 10, &loc10), 0);
	cx_store_close(s);
	char path[300];
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	off_t full = file_size(path);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	size_t tail_len = (size_t)(full - (off_t)loc10.off);
	uint8_t *tail = malloc(tail_len);
	assert_non_null(tail);
	assert_int_equal(pread(fd, tail, tail_len, (off_t)loc10.off), (ssize_t)tail_len);
	uint8_t byte = tail[CX_REC_HDR + 2] ^ 0x10;     /* in record 10's payload */
	assert_int_equal(pwrite(fd, &byte, 1, (off_t)loc10.off + CX_REC_HDR + 2), 1);
	tail[CX_REC_HDR + 2] = byte;
	close(fd);
	cx_recovery_t rep;
	s = open_store(0, &rep);
	assert_int_equal(cx_store_stream_find(s, "t", 1, &a), 0);
	check_n(s, a, 9);
	cx_store_close(s);
	assert_int_equal(rep.truncated_bytes, tail_len);
	assert_int_equal(rep.cut_kept_bytes, tail_len);
	assert_int_equal(rep.cut_lost_bytes, 0);
	assert_int_equal(rep.cut_keep_errno, 0);
	char kept[400];
	snprintf(kept, sizeof kept, "%s.cut-%llx", path, (unsigned long long)loc10.off);
	assert_int_equal(file_size(kept), (off_t)tail_len);
	uint8_t *got = malloc(tail_len);
	assert_non_null(got);
	fd = open(kept, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, tail_len), (ssize_t)tail_len);
	close(fd);
	assert_memory_equal(got, tail, tail_len);       /* records 10..30, the damaged byte included */
	/* Kept, never read: a second recovery ignores it and cuts nothing. */
	s = open_store(0, &rep);
	assert_int_equal(rep.truncated_bytes, 0);
	assert_int_equal(cx_store_stream_find(s, "t", 1, &a), 0);
	check_n(s, a, 9);
	cx_store_close(s);
	free(got);
	free(tail);
}

static void test_segments_roll_and_sealed_ones_load_from_their_index(void **state)
{
	cx_store_t *s = open_store(4096, NULL);
	uint32_t a, b;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	assert_int_equal(cx_store_stream_create(s, "b", 1, 0, 1, &b), 0);
	for (uint64_t i = 1; i <= 200; i++) {
		append_n(s, a, i, 1);
		append_n(s, b, i, 1);
	}
	assert_true(cx_store_segments(s) > 5);
	/* mark everything synced: the sealed segments write their index */
	cx_dirty_t d[256];
	uint64_t dirflag;
	size_t n = cx_store_dirty(s, d, 256, &dirflag);
	assert_true(n > 0);
	cx_store_synced(s, d, n, dirflag);
	uint32_t segs = cx_store_segments(s);
	cx_store_close(s);
	cx_recovery_t rep;
	s = open_store(4096, &rep);
	assert_int_equal(rep.segments, segs);
	assert_true(rep.indexed >= segs - 2);   /* the first holds the stream creations: scanned */
	assert_int_equal(rep.records, 402);
	check_n(s, a, 200);
	check_n(s, b, 200);
	cx_store_close(s);
	/* a corrupt index costs a scan, nothing else */
	char path[300];
	snprintf(path, sizeof path, "%s/seg-0000000000000003.idx", dir);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 40), 1);
	close(fd);
	s = open_store(4096, &rep);
	assert_int_equal(rep.records, 402);
	check_n(s, a, 200);
	cx_store_close(s);
}

/* A crash right after a roll leaves a new segment with a torn header, or a
 * middle segment damaged: what follows the damage is set aside, never read. */
static void test_a_damaged_segment_sets_aside_the_segments_after_it(void **state)
{
	cx_store_t *s = open_store(4096, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 150);
	uint32_t segs = cx_store_segments(s);
	assert_true(segs >= 4);
	cx_loc_t loc;
	assert_int_equal(cx_store_locate(s, a, 60, &loc), 0);
	cx_store_close(s);
	/* which segment holds record 60: the one whose header says so */
	char path[300];
	uint64_t seg_of_60 = 0;
	for (uint64_t k = 1; k <= segs && !seg_of_60; k++) {
		snprintf(path, sizeof path, "%s/seg-%016llx.log", dir, (unsigned long long)k);
		int fd = open(path, O_RDONLY);
		uint8_t h[CX_REC_HDR];
		if (pread(fd, h, sizeof h, (off_t)loc.off) == (ssize_t)sizeof h && cx_le64(h + 16) == 60 &&
		    cx_le64(h + 8) == loc.lsn)
			seg_of_60 = k;
		close(fd);
	}
	assert_true(seg_of_60 > 0 && seg_of_60 < segs);
	snprintf(path, sizeof path, "%s/seg-%016llx.log", dir, (unsigned long long)seg_of_60);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "\xff", 1, (off_t)loc.off + CX_REC_HDR), 1);
	close(fd);
	cx_recovery_t rep;
	s = open_store(4096, &rep);
	assert_int_equal(rep.orphaned, segs - seg_of_60);
	check_n(s, a, 59);
	append_n(s, a, 60, 3);          /* the log goes on from the cut */
	check_n(s, a, 62);
	cx_store_close(s);
	s = open_store(4096, &rep);
	check_n(s, a, 62);
	cx_store_close(s);
}

/* ---- retention and compaction ------------------------------------------------ */

static cx_store_t *open_retain(uint64_t seg, uint64_t retain, cx_recovery_t *rep, int *err, char *why)
{
	cx_store_t *s = NULL;
	cx_store_config_t cfg = { .dir = dir, .segment_bytes = seg, .retain_bytes = retain };
	*err = cx_store_open(&cfg, &s, rep, why, 300);
	return s;
}

/* An epoch: fdatasync what is dirty, tell the store (which may compact). */
static void epoch(cx_store_t *s)
{
	cx_dirty_t d[256];
	uint64_t dirflag;
	size_t n = cx_store_dirty(s, d, 256, &dirflag);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(fdatasync(d[k].fd), 0);
	if (dirflag)
		assert_int_equal(fsync(cx_store_dirfd(s)), 0);
	cx_store_synced(s, d, n, dirflag);
}

/* Records FIRST..N of stream ID read back intact; FIRST - 1 and N + 1 do not. */
static void check_range(cx_store_t *s, uint32_t id, uint64_t first, uint64_t n)
{
	uint8_t rb[cx_rec_size(256)];
	char want[256];
	assert_int_equal(cx_store_first_seq(s, id), first);
	assert_int_equal(cx_store_next_seq(s, id), n + 1);
	for (uint64_t i = first; i <= n; i++) {
		cx_loc_t loc;
		assert_int_equal(cx_store_locate(s, id, i, &loc), 0);
		cx_rec_t rec;
		bool miss;
		assert_int_equal(cx_store_read_at(&loc, rb, &rec, &miss), 0);
		size_t wl = pattern(i, want);
		assert_int_equal(rec.len, wl);
		assert_memory_equal(rec.payload, want, wl);
	}
	cx_loc_t loc;
	if (first > 1)
		assert_int_equal(cx_store_locate(s, id, first - 1, &loc), THOTH_E_NOT_FOUND);
	assert_int_equal(cx_store_locate(s, id, n + 1, &loc), THOTH_E_NOT_FOUND);
}

static void test_retention_drops_old_segments_and_keeps_every_newer_record(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 3 * 4096 };
	int err;
	char why[300];
	cx_store_t *s = open_retain(SEG, RETAIN, NULL, &err, why);
	assert_int_equal(err, 0);
	uint32_t a, b, c;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	assert_int_equal(cx_store_stream_create(s, "b", 1, 0, 1, &b), 0);
	for (uint64_t i = 1; i <= 300; i++) {
		append_n(s, a, i, 1);
		append_n(s, b, i, 1);
		if (i % 10 == 0)
			epoch(s);
		if (i == 150)   /* a stream created after compactions began */
			assert_int_equal(cx_store_stream_create(s, "c", 1, 0, 1, &c), 0);
		if (i > 150)
			append_n(s, c, i - 150, 1);
	}
	epoch(s);
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_true(cs.compactions >= 1);
	assert_true(cs.segments >= 5);
	/* Bounded, and never below the retention. */
	assert_true(cx_store_bytes(s) >= RETAIN);
	assert_true(cx_store_bytes(s) < RETAIN + 3 * SEG);
	uint64_t fa = cx_store_first_seq(s, a), fb = cx_store_first_seq(s, b), fc = cx_store_first_seq(s, c);
	assert_true(fa > 100 && fb > 100);
	check_range(s, a, fa, 300);
	check_range(s, b, fb, 300);
	check_range(s, c, fc, 150);
	/* By time: the first retained is where a time before it lands. */
	assert_int_equal(cx_store_seq_at_time(s, a, 0), fa);
	assert_int_equal(cx_store_seq_at_time(s, a, 1000 + fa + 5), fa + 5);
	cx_store_close(s);

	/* Recovery from the catalog: the same records, and the log goes on. */
	cx_recovery_t rep;
	s = open_retain(SEG, RETAIN, &rep, &err, why);
	assert_int_equal(err, 0);
	assert_true(rep.base_lsn > 1);
	assert_int_equal(rep.compacted, 0);
	assert_int_equal(cx_store_stream_find(s, "c", 1, &c), 0);
	check_range(s, a, fa, 300);
	check_range(s, b, fb, 300);
	check_range(s, c, fc, 150);
	append_n(s, a, 301, 5);
	check_range(s, a, fa, 305);
	cx_store_close(s);
	/* No segment below the catalog's first is left on disk. */
	char path[300];
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	assert_int_equal(access(path, F_OK), -1);
}

/* Crashes between the steps of a compaction: before the catalog's rename
 * (a catalog.tmp is left: the old state stands), and after it (the
 * dropped files are still there: recovery removes them). */
static void test_a_crash_at_any_step_of_a_compaction_recovers_whole(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096 };
	int err;
	char why[300], path[300], tmp[300];
	cx_store_t *s = open_retain(SEG, 0, NULL, &err, why);   /* no retention yet */
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 300);
	epoch(s);
	uint32_t segs = cx_store_segments(s);
	assert_true(segs >= 6);
	cx_store_close(s);
	/* 1. an uncommitted catalog (garbage in catalog.tmp): ignored */
	snprintf(tmp, sizeof tmp, "%s/catalog.tmp", dir);
	FILE *f = fopen(tmp, "w");
	fputs("half a catalog", f);
	fclose(f);
	cx_recovery_t rep;
	s = open_retain(SEG, RETAIN, &rep, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(rep.base_lsn, 1);
	check_range(s, a, 1, 300);
	/* 2. compact with retention, keep a copy of a dropped file as if the
	 * crash came after the catalog's rename, before the unlink */
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	snprintf(tmp, sizeof tmp, "%s/keep.log", dir);
	assert_int_equal(link(path, tmp), 0);
	append_n(s, a, 301, 1);
	epoch(s);
	uint64_t first = cx_store_first_seq(s, a);
	assert_true(first > 1);
	cx_store_close(s);
	assert_int_equal(rename(tmp, path), 0);
	s = open_retain(SEG, RETAIN, &rep, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(rep.compacted, 1);
	assert_int_equal(access(path, F_OK), -1);
	check_range(s, a, first, 301);
	cx_store_close(s);
	/* 3. a damaged catalog: refused with a reason, nothing guessed */
	snprintf(path, sizeof path, "%s/catalog", dir);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\x01", 1, 9), 1);
	close(fd);
	s = open_retain(SEG, RETAIN, &rep, &err, why);
	assert_int_equal(err, THOTH_E_CORRUPT);
	assert_null(s);
	assert_non_null(strstr(why, "catalog"));
}

/* A record that fails its checksum is THOTH_E_CORRUPT (codex answers
 * Unreadable: read past it); a read that failed is THOTH_E_IO (Failed: the
 * record may be good, and reading past it would skip it). */
static void test_a_damaged_record_is_corrupt_and_a_failed_read_is_io(void **state)
{
	int err;
	char why[300], path[300];
	cx_store_t *s = open_retain(1 << 20, 0, NULL, &err, why);
	assert_non_null(s);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 3);
	cx_loc_t loc;
	assert_int_equal(cx_store_locate(s, a, 2, &loc), 0);
	uint8_t rb[cx_rec_size(256)];
	cx_rec_t rec;
	bool miss;
	cx_loc_t bad = loc;
	bad.fd = -1;                    /* pread fails: EBADF */
	assert_int_equal(cx_store_read_at(&bad, rb, &rec, &miss), THOTH_E_IO);
	snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t byte;
	off_t at = (off_t)(loc.off + CX_REC_HDR);     /* the first payload byte */
	assert_int_equal(pread(fd, &byte, 1, at), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, at), 1);
	close(fd);
	assert_int_equal(cx_store_read_at(&loc, rb, &rec, &miss), THOTH_E_CORRUPT);
	cx_store_close(s);
}

/* ---- cut files and retention ------------------------------------------------ */

/* The last segment file in the data dir, into PATH. */
static void last_segment(char *path, size_t cap)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	unsigned long long best = 0, no;
	int used;
	for (struct dirent *de; (de = readdir(d));)
		if (sscanf(de->d_name, "seg-%16llx.log%n", &no, &used) == 1 && de->d_name[used] == 0 && no > best)
			best = no;
	closedir(d);
	assert_true(best > 0);
	snprintf(path, cap, "%s/seg-%016llx.log", dir, best);
}

/* Cut files in the data dir (regular files named as keep_cut names them),
 * sorted by name (= by segment, for one offset width); their bytes. */
static int list_cuts(char names[][64], int cap, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	*bytes = 0;
	for (struct dirent *de; (de = readdir(d));) {
		struct stat st;
		if (!strstr(de->d_name, ".log.cut-") || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISREG(st.st_mode))
			continue;
		assert_true(n < cap);
		assert_true(strlen(de->d_name) < 64);
		memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
		*bytes += (uint64_t)st.st_size;
	}
	closedir(d);
	qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
	return n;
}

/* A crash with a torn tail of LEN bytes at the end of the last segment. */
static void tear_tail(size_t len)
{
	char path[300];
	last_segment(path, sizeof path);
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	uint8_t junk[4096];
	memset(junk, 0xab, sizeof junk);
	assert_true(len <= sizeof junk);
	assert_int_equal(write(fd, junk, len), (ssize_t)len);
	close(fd);
}

static cx_store_t *open_budget(uint64_t seg, uint64_t retain, uint64_t cut_budget, cx_recovery_t *rep, int *err,
			       char *why)
{
	cx_store_t *s = NULL;
	cx_store_config_t cfg = { .dir = dir, .segment_bytes = seg, .retain_bytes = retain,
				  .cut_budget_bytes = cut_budget };
	*err = cx_store_open(&cfg, &s, rep, why, 300);
	return s;
}

/* Repeated crashes each leave a tail set aside (SEG.log.cut-OFFSET).  They
 * were never removed, so a crash loop grew the disk without bound; then
 * they were counted with the segments, and a cut file pushed acknowledged
 * records out of retention.  Now they have their own budget (one
 * segment's size by default): the oldest go while theirs together pass
 * it, the newest stay, and the segments alone still hold the retention. */
static void test_retention_keeps_cut_files_within_their_own_budget_oldest_first(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 3 * 4096, CRASHES = 24, TORN = 1500 };
	int err;
	char why[300];
	uint64_t next = 1;
	static char made[CRASHES][64];
	for (int crash = 0; crash < CRASHES; crash++) {
		cx_recovery_t rep;
		cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
		if (err)
			fail_msg("open: %s", why);
		if (crash) {
			assert_int_equal(rep.cut_kept_bytes, TORN);
			assert_true(rep.cut_files >= 1);
		}
		uint32_t a;
		if (cx_store_stream_find(s, "a", 1, &a))
			assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
		append_n(s, a, next, 15);
		next += 15;
		epoch(s);
		cx_store_close(s);
		tear_tail(TORN);
		/* the name recovery will give it: the last segment, cut at its size now - TORN */
		char path[300];
		last_segment(path, sizeof path);
		snprintf(made[crash], 64, "%s.cut-%llx", strrchr(path, '/') + 1,
			 (unsigned long long)(file_size(path) - TORN));
	}
	cx_recovery_t rep;
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(rep.cut_foreign, 0);
	uint32_t a;
	assert_int_equal(cx_store_stream_find(s, "a", 1, &a), 0);
	append_n(s, a, next, 15);
	epoch(s);
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	char left[CRASHES][64];
	uint64_t cut_bytes;
	int n = list_cuts(left, CRASHES, &cut_bytes);
	print_message("%d crashes: %d cut files left (%llu bytes), %llu removed; %llu bytes in segments\n", CRASHES,
		      n, (unsigned long long)cut_bytes, (unsigned long long)cs.cut_files,
		      (unsigned long long)cx_store_bytes(s));
	/* The segments alone hold the retention, as if no cut file existed;
	 * the cut files their budget, one segment: the newest two (3,000). */
	assert_true(cx_store_bytes(s) >= RETAIN);
	assert_true(cx_store_bytes(s) < RETAIN + SEG);
	assert_int_equal(n, SEG / TORN);
	assert_true(cut_bytes <= SEG);
	assert_int_equal(cs.cut_budget_bytes, SEG);
	assert_int_equal(cs.cut_stuck, 0);
	assert_int_equal(cs.cut_held, n);
	assert_int_equal(cs.cut_held_bytes, cut_bytes);
	assert_int_equal(cut_bytes, (uint64_t)n * TORN);
	/* Oldest first: what is left is the newest crashes' evidence. */
	for (int i = 0; i < CRASHES; i++) {
		char path[400];
		snprintf(path, sizeof path, "%s/%s", dir, made[i]);
		if ((access(path, F_OK) == 0) != (i >= CRASHES - n))
			fail_msg("crash %d's cut file %s is %s", i, made[i], i >= CRASHES - n ? "gone" : "still there");
	}
	/* Every record newer than the dropped segments is intact. */
	check_range(s, a, cx_store_first_seq(s, a), next + 14);
	cx_store_close(s);

	/* Without retention nothing is removed: the evidence stays. */
	s = open_retain(SEG, 0, &rep, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(rep.cut_files, n);
	append_n(s, a, next + 15, 200);
	epoch(s);
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.cut_files, 0);
	assert_int_equal(cs.cut_held, n);
	cx_store_close(s);

	/* A smaller budget (codex --cut-bytes) keeps fewer: the newest one. */
	s = open_budget(SEG, RETAIN, TORN, &rep, &err, why);
	assert_int_equal(err, 0);
	append_n(s, a, next + 215, 15);
	epoch(s);
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.cut_held, 1);
	assert_int_equal(cs.cut_held_bytes, TORN);
	assert_true(cx_store_bytes(s) >= RETAIN);
	cx_store_close(s);
	assert_int_equal(list_cuts(left, CRASHES, &cut_bytes), 1);
	assert_string_equal(left[0], made[CRASHES - 1]);
}

/* A regular cut file of LEN bytes named NAME in the data dir. */
static void make_cut(const char *name, size_t len)
{
	static uint8_t junk[16384];
	char p[400];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_true(len <= sizeof junk);
	assert_int_equal(write(fd, junk, len), (ssize_t)len);
	close(fd);
}

/* The catalog commit fails (its temporary file cannot be created: here a
 * directory in its place; EIO or a full disk alike): no segment goes,
 * but the cut files beyond their budget still do.  They were removed only
 * after a successful commit, so a disk that failed commits (the disk that
 * also tears tails) piled them up. */
static void test_cut_files_are_removed_even_when_the_catalog_commit_fails(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096, CUT = 3000 };
	cx_recovery_t rep;
	int err;
	char why[300];
	/* Segments enough for retention to drop some at the first epoch
	 * (written without retention), so every compaction has a commit to
	 * fail, then the cut files and the obstacle. */
	cx_store_t *s = open_retain(SEG, 0, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	for (uint64_t i = 1; i <= 150; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	cx_store_close(s);
	make_cut("seg-0000000000000001.log.cut-10", CUT);
	make_cut("seg-0000000000000001.log.cut-20", CUT);
	make_cut("seg-0000000000000001.log.cut-30", CUT);
	char p[400];
	snprintf(p, sizeof p, "%s/catalog.tmp", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/catalog.tmp/x", dir);         /* not removable by unlink(tmp) either */
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	s = open_retain(SEG, RETAIN, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	assert_int_equal(rep.cut_files, 3);
	assert_int_equal(cx_store_stream_find(s, "a", 1, &a), 0);
	assert_true(cx_store_bytes(s) > RETAIN + SEG);
	/* codex's stderr for these epochs: the failed commit is said once
	 * (it was said never), with the step, the file and the errno. */
	char errpath[400];
	snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
	fflush(stderr);
	int saved = dup(2), efd = open(errpath, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(saved >= 0 && efd >= 0);
	assert_int_equal(dup2(efd, 2), 2);
	for (uint64_t i = 151; i <= 300; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	char said[4096] = "";
	ssize_t got = pread(efd, said, sizeof said - 1, 0);
	close(efd);
	unlink(errpath);
	assert_true(got > 0);
	said[got] = 0;
	fputs(said, stderr);
	const char *w = strstr(said, "warning: retention's catalog commit failed (write ");
	assert_non_null(w);
	assert_non_null(strstr(w, "/catalog.tmp: Is a directory); no segment is removed, tried again after each sync"));
	assert_null(strstr(w + strlen("warning: retention"), "retention's catalog commit failed"));       /* once, not every epoch */
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.compactions, 0);                    /* every commit failed */
	assert_true(cx_store_bytes(s) > RETAIN + SEG);
	assert_int_equal(cs.cut_files, 2);                      /* the two oldest, 6,000 past 4,096 */
	assert_int_equal(cs.cut_held, 1);
	assert_int_equal(cs.cut_held_bytes, CUT);
	check_range(s, a, 1, 300);
	cx_store_close(s);
	char left[4][64];
	uint64_t bytes;
	assert_int_equal(list_cuts(left, 4, &bytes), 1);
	assert_string_equal(left[0], "seg-0000000000000001.log.cut-30");
	snprintf(p, sizeof p, "%s/catalog.tmp/x", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/catalog.tmp", dir);
	rmdir(p);
}

/* A cut file whose name cannot be removed when retention's turn comes (it
 * became a directory since the scan: EISDIR; EACCES and EBUSY alike) stays
 * listed and counted -- its bytes may still be on the disk -- and is reported
 * as stuck; the next ones go while the budget is passed.  It was dropped from the list while
 * its bytes left the count, so the stats said less than the disk held.  It
 * no longer counts against the budget: it did, and held the budget's room
 * for good, so every newer cut file went (here the newest, cut-30, went
 * too). */
static void test_a_cut_file_that_cannot_be_removed_stays_counted_and_reported(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096, CUT = 3000 };
	make_cut("seg-0000000000000001.log.cut-10", CUT);
	make_cut("seg-0000000000000001.log.cut-20", CUT);
	make_cut("seg-0000000000000001.log.cut-30", CUT);
	cx_recovery_t rep;
	int err;
	char why[300];
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	assert_int_equal(rep.cut_files, 3);
	/* The oldest replaced, after the scan, by a directory with a file in it. */
	char p[400];
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10/inside", dir);
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	for (uint64_t i = 1; i <= 300; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	/* The stuck one stays, counted as held, not against the budget of
	 * 4,096: of the two after it the older goes, the newer fits. */
	assert_int_equal(cs.cut_held, 2);
	assert_int_equal(cs.cut_held_bytes, 2 * CUT);
	assert_int_equal(cs.cut_stuck, 1);
	assert_int_equal(cs.cut_stuck_errno, EISDIR);
	assert_int_equal(cs.cut_files, 1);
	cx_store_close(s);
	struct stat st;
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-20", dir);
	assert_int_equal(lstat(p, &st), -1);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-30", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10/inside", dir);
	unlink(p);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10", dir);
	rmdir(p);
}

/* A stuck name that is a regular file again (the directory in its place
 * gone, a file back) counts against the budget like any other and stays
 * while it fits: it was removed at the first retry, fitting or not. */
static void test_a_once_stuck_cut_file_that_fits_the_budget_stays(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096, CUT = 3000, BACK = 500 };
	make_cut("seg-0000000000000001.log.cut-10", CUT);
	make_cut("seg-0000000000000001.log.cut-30", CUT);
	cx_recovery_t rep;
	int err;
	char why[300];
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	char p[400];
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0700), 0);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	/* 6,000 bytes held, a budget of 4,096: cut-10's turn comes, stuck. */
	append_n(s, a, 1, 10);
	epoch(s);
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.cut_stuck, 1);
	assert_int_equal(cs.cut_files, 0);
	/* A regular file of 500 bytes back in its place: 3,500 fit. */
	assert_int_equal(rmdir(p), 0);
	make_cut("seg-0000000000000001.log.cut-10", BACK);
	for (uint64_t i = 11; i <= 300; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.cut_stuck, 0);
	assert_int_equal(cs.cut_files, 0);
	assert_int_equal(cs.cut_held, 2);
	assert_int_equal(cs.cut_held_bytes, CUT + BACK);
	cx_store_close(s);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_size, BACK);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-30", dir);
	assert_int_equal(unlink(p), 0);
}

/* A second recovery setting aside a segment number already set aside once
 * (an orphan of an earlier damage still held) renamed over it: the first
 * damage's evidence went without a word.  Now the second is NAME.orphan-2. */
static void test_a_second_orphan_of_a_segment_does_not_replace_the_first(void **state)
{
	(void)state;
	cx_store_t *s = open_store(4096, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 150);
	uint32_t segs = cx_store_segments(s);
	assert_true(segs >= 4);
	cx_loc_t loc;
	assert_int_equal(cx_store_locate(s, a, 60, &loc), 0);
	cx_store_close(s);
	char path[300];
	uint64_t seg_of_60 = 0;
	for (uint64_t k = 1; k <= segs && !seg_of_60; k++) {
		snprintf(path, sizeof path, "%s/seg-%016llx.log", dir, (unsigned long long)k);
		int fd = open(path, O_RDONLY);
		uint8_t h[CX_REC_HDR];
		if (pread(fd, h, sizeof h, (off_t)loc.off) == (ssize_t)sizeof h && cx_le64(h + 16) == 60 &&
		    cx_le64(h + 8) == loc.lsn)
			seg_of_60 = k;
		close(fd);
	}
	assert_true(seg_of_60 > 0 && seg_of_60 < segs);
	/* An earlier recovery's orphan of the next segment, 123 bytes. */
	char name[64];
	snprintf(name, sizeof name, "seg-%016llx.log.orphan", (unsigned long long)(seg_of_60 + 1));
	make_cut(name, 123);
	snprintf(path, sizeof path, "%s/seg-%016llx.log", dir, (unsigned long long)seg_of_60);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "\xff", 1, (off_t)loc.off + CX_REC_HDR), 1);
	close(fd);
	cx_recovery_t rep;
	s = open_store(4096, &rep);
	assert_int_equal(rep.orphaned, segs - seg_of_60);
	assert_int_equal(rep.orphan_files, segs - seg_of_60 + 1);
	check_n(s, a, 59);
	cx_store_close(s);
	struct stat st;
	char p[400];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_size, 123);      /* the first, as it was */
	snprintf(p, sizeof p, "%s/%s-2", dir, name);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(st.st_size > 123);          /* the second, beside it */
}

/* Segments recovery set aside as *.orphan (after a damaged middle
 * segment) were never counted or removed: each such recovery left its
 * segments on the disk for good.  Now they are evidence like the cut
 * files: held in the same budget (--cut-bytes), oldest first (an orphan of
 * segment N after N's cut files), counted apart in the stats. */
static void test_orphan_segments_are_counted_and_kept_within_the_cut_budget(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096, LEN = 3000 };
	make_cut("seg-0000000000000001.log.cut-10", LEN);
	make_cut("seg-0000000000000002.log.orphan", LEN);
	make_cut("seg-0000000000000003.log.orphan", LEN);
	make_cut("seg-0000000000000004.log.orphan.x", LEN);     /* not one: left alone */
	cx_recovery_t rep;
	int err;
	char why[300];
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	assert_int_equal(rep.cut_files, 1);
	assert_int_equal(rep.orphan_files, 2);
	assert_int_equal(rep.orphan_file_bytes, 2 * LEN);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	for (uint64_t i = 1; i <= 300; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	/* 9,000 bytes of evidence, a budget of 4,096: the cut file of
	 * segment 1 and the orphan of segment 2 go, the newest stays. */
	assert_int_equal(cs.cut_files, 1);
	assert_int_equal(cs.orphan_files, 1);
	assert_int_equal(cs.orphan_bytes, LEN);
	assert_int_equal(cs.cut_held, 0);
	assert_int_equal(cs.orphan_held, 1);
	assert_int_equal(cs.orphan_held_bytes, LEN);
	cx_store_close(s);
	struct stat st;
	char p[400];
	snprintf(p, sizeof p, "%s/seg-0000000000000002.log.orphan", dir);
	assert_int_equal(lstat(p, &st), -1);
	snprintf(p, sizeof p, "%s/seg-0000000000000003.log.orphan", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000004.log.orphan.x", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(unlink(p), 0);
}

/* Entries named like cut files that are not regular files: a directory, a
 * FIFO (opening it would block), symlinks (to a file outside the journal,
 * and dangling), and a name that only looks like one.  Recovery and
 * retention never open, follow or count them, and leave them be; the one
 * real cut file is counted and removed. */
static void test_entries_named_like_cut_files_are_taken_by_kind(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096 };
	char p[400], outside[300];
	snprintf(outside, sizeof outside, "%s.outside", dir);
	int fd = open(outside, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static uint8_t big[256 << 10];
	assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
	close(fd);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10/inside", dir);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-20", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-30", dir);
	assert_int_equal(symlink(outside, p), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-40", dir);
	assert_int_equal(symlink("/nonexistent/codex", p), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-0050", dir);     /* not keep_cut's */
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, 3000), 3000);
	close(fd);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-60", dir);     /* a real one, past the budget */
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, 5000), 5000);
	close(fd);

	cx_recovery_t rep;
	int err;
	char why[300];
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	if (err)
		fail_msg("open: %s", why);
	assert_int_equal(rep.cut_foreign, 4);
	assert_int_equal(rep.cut_files, 1);
	assert_int_equal(rep.cut_file_bytes, 5000);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	for (uint64_t i = 1; i <= 300; i += 10) {
		append_n(s, a, i, 10);
		epoch(s);
	}
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.cut_files, 1);
	assert_int_equal(cs.cut_held, 0);
	cx_store_close(s);
	struct stat st;
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-60", dir);
	assert_int_equal(lstat(p, &st), -1);                    /* removed */
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-10/inside", dir);
	assert_int_equal(lstat(p, &st), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-20", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-30", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-40", dir);
	assert_int_equal(lstat(p, &st), 0);
	snprintf(p, sizeof p, "%s/seg-0000000000000001.log.cut-0050", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(st.st_size, (off_t)sizeof big);        /* the file outside: untouched */
	unlink(outside);
}

/* A segment rolled to while an epoch runs (appends do not wait for it) may
 * be created after that epoch's directory fsync: the epoch's end must not
 * count its name as durable, or the next epoch acknowledged its records
 * with no directory fsync at all (it marked every segment). */
static void test_a_segment_created_during_an_epoch_still_needs_the_directory_fsync(void **state)
{
	(void)state;
	cx_store_t *s = open_store(4096, NULL);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	uint64_t i = 1;
	while (cx_store_segments(s) < 2)
		append_n(s, a, i++, 1);
	cx_dirty_t d[256];
	uint64_t dirflag, again;
	size_t n = cx_store_dirty(s, d, 256, &dirflag);  /* the epoch starts */
	assert_int_not_equal(dirflag, 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(fdatasync(d[k].fd), 0);
	assert_int_equal(fsync(cx_store_dirfd(s)), 0);
	uint32_t before = cx_store_segments(s);
	while (cx_store_segments(s) == before)           /* a roll after its fsync */
		append_n(s, a, i++, 1);
	cx_store_synced(s, d, n, dirflag);               /* the epoch ends */
	(void)cx_store_dirty(s, d, 256, &again);
	assert_true(again > dirflag);                    /* the new segment's name is not durable yet */
	if (again)
		assert_int_equal(fsync(cx_store_dirfd(s)), 0);
	n = cx_store_dirty(s, d, 256, &again);
	cx_store_synced(s, d, n, again);
	(void)cx_store_dirty(s, d, 256, &again);
	assert_int_equal(again, 0);
	cx_store_close(s);
}

/* An epoch whose own syncs succeed, then the store's directory fsyncs
 * (retention's, in cx_store_synced) SKIP fine and FAIL failing; ROLL:
 * a segment is rolled to after the epoch's directory fsync, as appends
 * do while an epoch runs (its name then not yet durable). */
static void epoch_failing(cx_store_t *s, uint32_t id, uint64_t *next, bool roll, int skip, int failn)
{
	cx_dirty_t d[256];
	uint64_t dirflag;
	size_t n = cx_store_dirty(s, d, 256, &dirflag);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(fdatasync(d[k].fd), 0);
	if (dirflag)
		assert_int_equal(fsync(cx_store_dirfd(s)), 0);
	uint32_t before = cx_store_segments(s);
	while (roll && cx_store_segments(s) == before)
		append_n(s, id, (*next)++, 1);
	dir_fsync_skip = skip;
	dir_fsync_fail = failn;
	cx_store_synced(s, d, n, dirflag);
	dir_fsync_skip = dir_fsync_fail = 0;
}

/* seg-NO.log is in the data dir */
static bool seg_there(uint64_t no)
{
	char p[400];
	snprintf(p, sizeof p, "%s/seg-%016llx.log", dir, (unsigned long long)no);
	return access(p, F_OK) == 0;
}

/* The directory fsync after retention removed segment files (codex46:
 * best effort, its result ignored) fails.  Ignored, it also ate the error
 * the journal's next directory fsync (same descriptor) was to see.  Now:
 * retention stops until a restart (no segment removed after it, said in
 * stats); with no segment's name pending the store goes on; with one
 * (rolled to while the epoch ran: its name is what the journal's next
 * directory fsync was for) the store stops: cx_store_failure says why and
 * no append is taken. */
static void test_a_failed_directory_fsync_after_removals_stops_retention(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096 };
	int err;
	char why[400];
	for (int pending = 0; pending <= 1; pending++) {
		cx_store_t *s = open_retain(SEG, RETAIN, NULL, &err, why);
		assert_int_equal(err, 0);
		uint32_t a;
		if (cx_store_stream_find(s, "a", 1, &a))
			assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
		uint64_t next = cx_store_next_seq(s, a);
		for (int k = 0; k < 10; k++) {
			append_n(s, a, next, 40);
			next += 40;
			epoch(s);
		}
		cx_compact_stats_t cs;
		cx_store_compact_stats(s, &cs);
		assert_true(cs.compactions >= 1);
		assert_string_equal(cs.stopped, "");
		uint64_t c0 = cs.compactions;
		/* enough for a compaction at the next epoch: the catalog's
		 * fsync (skipped) then the one after the removals (failing) */
		append_n(s, a, next, 40);
		next += 40;
		epoch_failing(s, a, &next, pending, 1, 1);
		cx_store_compact_stats(s, &cs);
		char want[400];
		snprintf(want, sizeof want, "fsync the directory %s after removing segment files: %s", dir,
			 strerror(EIO));
		assert_string_equal(cs.stopped, want);
		assert_int_equal(cs.compactions, c0 + 1);       /* that one committed and removed */
		char fw[400] = "";
		int fr = cx_store_failure(s, fw, sizeof fw);
		cx_iov_t v = { "x", 1 };
		uint64_t seq;
		if (pending) {
			assert_int_equal(fr, THOTH_E_IO);
			assert_non_null(strstr(fw, "after removing segment files: "));
			assert_non_null(strstr(fw, "'s name was not yet durable"));
			assert_int_equal(cx_store_append(s, a, &v, 1, 0, 1000 + next, &seq), THOTH_E_IO);
		} else {
			assert_int_equal(fr, 0);
			/* appends go on; no segment is removed at later epochs */
			uint32_t segs = cx_store_segments(s);
			for (int k = 0; k < 5; k++) {
				append_n(s, a, next, 20);
				next += 20;
				epoch(s);
			}
			cx_store_compact_stats(s, &cs);
			assert_int_equal(cs.compactions, c0 + 1);
			assert_true(cx_store_segments(s) > segs);
			check_range(s, a, cx_store_first_seq(s, a), next - 1);
		}
		cx_store_close(s);
	}
}

/* The same after retention removed cut files (a failure was ignored):
 * no segment is removed after it, nor at later epochs, until a restart. */
static void test_a_failed_directory_fsync_after_removing_cut_files_stops_retention(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096, CUT = 3000 };
	int err;
	char why[400];
	cx_store_t *s = open_retain(SEG, 0, NULL, &err, why);
	assert_int_equal(err, 0);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 150);
	epoch(s);
	cx_store_close(s);
	make_cut("seg-0000000000000001.log.cut-10", CUT);
	make_cut("seg-0000000000000001.log.cut-20", CUT);
	s = open_retain(SEG, RETAIN, NULL, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(cx_store_stream_find(s, "a", 1, &a), 0);
	uint64_t next = 151;
	uint32_t segs = cx_store_segments(s);
	append_n(s, a, next, 10);
	next += 10;
	epoch_failing(s, a, &next, false, 0, 1);       /* the cut trimming's fsync fails */
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	char want[400];
	snprintf(want, sizeof want, "fsync the directory %s after removing cut files: %s", dir, strerror(EIO));
	assert_string_equal(cs.stopped, want);
	assert_int_equal(cs.cut_files, 1);
	assert_int_equal(cs.compactions, 0);
	assert_int_equal(cx_store_failure(s, why, sizeof why), 0);
	for (int k = 0; k < 5; k++) {
		append_n(s, a, next, 20);
		next += 20;
		epoch(s);
	}
	cx_store_compact_stats(s, &cs);
	assert_int_equal(cs.compactions, 0);
	assert_true(cx_store_segments(s) > segs);
	assert_true(seg_there(1));
	check_range(s, a, 1, next - 1);
	cx_store_close(s);
}

/* A store whose catalog (the kernel's view) drops segments still on the
 * disk: the catalog commit's directory fsync failed (retention stopped),
 * then codex stopped.  Records 1..301 of stream "a" were written. */
static void make_stopped_compaction(void)
{
	enum { SEG = 4096, RETAIN = 2 * 4096 };
	int err;
	char why[400];
	cx_store_t *s = open_retain(SEG, 0, NULL, &err, why);
	assert_int_equal(err, 0);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	append_n(s, a, 1, 300);
	epoch(s);
	cx_store_close(s);
	s = open_retain(SEG, RETAIN, NULL, &err, why);
	assert_int_equal(err, 0);
	assert_int_equal(cx_store_stream_find(s, "a", 1, &a), 0);
	uint64_t next = 301;
	append_n(s, a, next++, 1);
	epoch_failing(s, a, &next, false, 0, 1);       /* the catalog's fsync fails */
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_non_null(strstr(cs.stopped, "after the catalog's rename: "));
	assert_int_equal(cs.compactions, 0);
	cx_store_close(s);
	assert_true(seg_there(1) && seg_there(2));
}

static int crash_at;

static void crash_hook(int point)
{
	if (point == crash_at)
		kill(getpid(), SIGKILL);
}

/* Recovery after retention stopped (above) removes the segments the
 * catalog drops only once that catalog is durable again: the catalog the
 * kernel shows may be a rename the disk lost, and a directory fsync after
 * the failed one may report success for it.  codex46 removed them and then
 * fsync'ed: with that fsync failing, it refused to start with the
 * segments already gone (on a disk holding the old catalog, which names
 * them, a log starting in the middle).
 *   1. recovery's first directory fsync fails: it refuses to start
 *      (THOTH_E_IO, naming the step) and every segment is still there;
 *   2. a crash of codex (SIGKILL, a process crash, not a power cut: the
 *      page cache survives) at each step of recovery -- the catalog
 *      rewritten to catalog.tmp, renamed and the directory fsync'ed, the
 *      first dropped segment removed -- then a recovery: every record
 *      from the catalog's first retained one to 301 is there, read back
 *      as written, exactly once (first and next sequence numbers exact),
 *      and no segment below the catalog's first is left. */
static void test_recovery_removes_dropped_segments_only_after_the_catalog_is_durable(void **state)
{
	(void)state;
	enum { SEG = 4096, RETAIN = 2 * 4096 };
	int err;
	char why[400];
	cx_recovery_t rep;
	make_stopped_compaction();
	dir_fsync_fail = 1;
	cx_store_t *s = open_retain(SEG, RETAIN, &rep, &err, why);
	dir_fsync_fail = 0;
	assert_int_equal(err, THOTH_E_IO);
	assert_null(s);
	assert_true(seg_there(1));                      /* codex46: gone */
	assert_true(seg_there(2));
	assert_non_null(strstr(why, "fsync data dir after rewriting the catalog, before removing the segments it drops: "));
	const int points[] = { CX_PT_RECOVER_CATALOG, CX_PT_RECOVER_RENAMED, CX_PT_RECOVER_UNLINKED };
	for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
		if (p) {        /* a fresh store in the same state */
			teardown(NULL);
			setup(NULL);
			make_stopped_compaction();
		}
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			crash_at = points[p];
			cx_crash_hook = crash_hook;
			cx_store_t *c = open_retain(SEG, RETAIN, NULL, &err, why);
			(void)c;
			_exit(3);       /* the point was never reached */
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			fail_msg("recovery point %d: the child was not killed there (status %#x)", points[p], status);
		s = open_retain(SEG, RETAIN, &rep, &err, why);
		if (err)
			fail_msg("recovery after a crash at point %d: %s", points[p], why);
		uint32_t a;
		assert_int_equal(cx_store_stream_find(s, "a", 1, &a), 0);
		uint64_t first = cx_store_first_seq(s, a);
		assert_true(first > 1);
		check_range(s, a, first, 301);
		assert_true(rep.base_lsn > 1);
		assert_true(rep.compacted >= (points[p] == CX_PT_RECOVER_UNLINKED ? 1u : 2u));
		assert_false(seg_there(1));
		cx_store_close(s);
		/* and once more: nothing left to remove, the same records */
		s = open_retain(SEG, RETAIN, &rep, &err, why);
		assert_int_equal(err, 0);
		assert_int_equal(rep.compacted, 0);
		assert_int_equal(cx_store_first_seq(s, a), first);
		check_range(s, a, first, 301);
		cx_store_close(s);
	}
}

/* Descriptors open in this process (the listing's own not counted). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

/* Every segment kept its descriptor open for reads: while retention was
 * stopped (a failed directory fsync) the log and the descriptors grew
 * together, one per 4 KiB segment here, until a roll failed with EMFILE.
 * Now at most 16 sealed segments stay open besides the active one and
 * the one read last: 200
 * segments written while stopped add none past that, each record reads
 * back (its segment reopened, the least recently read one closed), and a
 * recovery of the 200 holds no more either. */
static void test_descriptors_stay_bounded_while_retention_is_stopped(void **state)
{
	(void)state;
	/* 16 sealed, the one read last, the active one, the data dir */
	enum { SEG = 4096, RETAIN = 2 * 4096, BOUND = 16 + 1 + 1 + 1 };
	int err;
	char why[400];
	int base = count_fds();
	cx_store_t *s = open_retain(SEG, RETAIN, NULL, &err, why);
	assert_int_equal(err, 0);
	uint32_t a;
	assert_int_equal(cx_store_stream_create(s, "a", 1, 0, 1, &a), 0);
	uint64_t next = 1;
	append_n(s, a, next, 300);
	next += 300;
	epoch_failing(s, a, &next, false, 0, 1);       /* the catalog's fsync fails: retention stops */
	cx_compact_stats_t cs;
	cx_store_compact_stats(s, &cs);
	assert_non_null(strstr(cs.stopped, "after the catalog's rename"));
	while (cx_store_segments(s) < 200) {
		append_n(s, a, next, 30);
		next += 30;
		epoch(s);
		cx_store_release_retired(s);    /* as the journal does after an epoch with no reader */
	}
	int grown = count_fds() - base;
	print_message("200 segments while retention is stopped: %d descriptors (the data dir's included)\n", grown);
	assert_true(grown <= BOUND);
	check_range(s, a, 1, next - 1);         /* every segment reopened in turn */
	cx_store_release_retired(s);
	grown = count_fds() - base;
	print_message("after reading every record back: %d\n", grown);
	assert_true(grown <= BOUND);
	cx_store_close(s);
	assert_int_equal(count_fds(), base);
	s = open_retain(SEG, RETAIN, NULL, &err, why);
	assert_int_equal(err, 0);
	grown = count_fds() - base;
	print_message("after a recovery: %d\n", grown);
	assert_true(grown <= BOUND);
	uint64_t first = cx_store_first_seq(s, a);
	check_range(s, a, first, next - 1);
	cx_store_close(s);
}

/* A path in an error (cx_path_brief): whole while it fits after its call;
 * longer, its head, "...", and its tail with the file's name, never cut
 * inside a UTF-8 character ("é" is 2 bytes, "€" 3). */
static void test_an_error_path_keeps_its_file_name(void **state)
{
	(void)state;
	char out[CX_PATH_BRIEF], path[400];
	const char *fits = "/d/seg-0000000000000001.log";
	assert_string_equal(cx_path_brief(fits, "append to ", out), fits);
	/* At the limit: a path that just fits after "fdatasync " (149 bytes)
	 * stays whole, one byte more is cut; either way the error's what[]
	 * holds it whole, its own cut at 156 bytes never reached. */
	for (size_t len = CX_PATH_BRIEF - sizeof "fdatasync " - 1; len <= CX_PATH_BRIEF - sizeof "fdatasync " + 1; len++) {
		const char *name = "/seg-0000000000000007.log";
		memset(path, 'd', len - strlen(name));
		memcpy(path + len - strlen(name), name, strlen(name) + 1);
		cx_path_brief(path, "fdatasync ", out);
		if (len <= CX_PATH_BRIEF - sizeof "fdatasync ")
			assert_string_equal(out, path);
		else
			assert_true(strstr(out, "...") && strlen(out) <= CX_PATH_BRIEF - sizeof "fdatasync ");
		(void)thoth_error_io(EIO, "fdatasync %s", out);
		const char *what = thoth_last_error()->what;
		assert_true(strlen(what) == strlen("fdatasync ") + strlen(out));
		assert_string_equal(what + strlen(what) - strlen(name), name);
	}
	/* A room too small for 40 bytes of head, "..." and a tail (no caller
	 * has one: the macro refuses a prefix over 100 bytes): still within it
	 * (room - head - 3 wrapped: a copy from before the path). */
	memset(path, 'p', 300);
	path[300] = '\0';
	for (size_t room = 0; room < 50; room++)
		assert_true(strlen(cx_path_fit(path, room, out)) <= room);
	for (int shift = 0; shift < 3; shift++) {
		/* a multi-byte character over each cut point in turn */
		int n = snprintf(path, sizeof path, "%.*s", 38 + shift, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
		for (int k = 0; k < 60; k++)
			n += snprintf(path + n, sizeof path - (size_t)n, "%s", k % 2 ? "\xc3\xa9" : "\xe2\x82\xac");
		n += snprintf(path + n, sizeof path - (size_t)n, "%.*s/seg-0000000000000007.log", shift,
			      "bb");
		cx_path_brief(path, "fdatasync ", out);
		size_t len = strlen(out);
		assert_true(len <= CX_PATH_BRIEF - sizeof "fdatasync ");
		assert_non_null(strstr(out, "..."));
		assert_int_equal(memcmp(out, "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 38), 0);
		assert_non_null(strstr(out, "/seg-0000000000000007.log"));
		assert_string_equal(out + len - strlen("/seg-0000000000000007.log"), "/seg-0000000000000007.log");
		/* whole characters only: every continuation byte follows a lead or
		 * a continuation byte, and "..." never follows a lead byte */
		for (size_t b = 0; b < len; b++) {
			unsigned char c = (unsigned char)out[b];
			if ((c & 0xC0) == 0x80)
				assert_true(b > 0 && ((unsigned char)out[b - 1] & 0x80));
			if (c >= 0xC0)
				assert_true(b + 1 < len && ((unsigned char)out[b + 1] & 0xC0) == 0x80);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_error_path_keeps_its_file_name),
		cmocka_unit_test_setup_teardown(test_a_failed_directory_fsync_after_removals_stops_retention, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_directory_fsync_after_removing_cut_files_stops_retention,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_removes_dropped_segments_only_after_the_catalog_is_durable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_descriptors_stay_bounded_while_retention_is_stopped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_segment_created_during_an_epoch_still_needs_the_directory_fsync, setup,
						teardown),
		cmocka_unit_test(test_record_roundtrip_and_every_single_bit_flip_is_refused),
		cmocka_unit_test_setup_teardown(test_appended_records_read_back_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_torn_tail_at_any_byte_is_cut_back_to_the_last_whole_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_bit_flip_in_the_tail_ends_the_log_before_the_damaged_record,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_cut_tail_is_copied_aside_before_the_segment_is_truncated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_damaged_record_is_corrupt_and_a_failed_read_is_io, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_segments_roll_and_sealed_ones_load_from_their_index, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_damaged_segment_sets_aside_the_segments_after_it, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retention_drops_old_segments_and_keeps_every_newer_record, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_crash_at_any_step_of_a_compaction_recovers_whole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retention_keeps_cut_files_within_their_own_budget_oldest_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_entries_named_like_cut_files_are_taken_by_kind, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cut_files_are_removed_even_when_the_catalog_commit_fails, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_cut_file_that_cannot_be_removed_stays_counted_and_reported,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_once_stuck_cut_file_that_fits_the_budget_stays, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_a_second_orphan_of_a_segment_does_not_replace_the_first, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_orphan_segments_are_counted_and_kept_within_the_cut_budget, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
