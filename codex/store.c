/*
 * codex/store.c - segment files, the per-stream index and recovery.
 *
 * Recovery rule (docs/CODEX.md): segments are read in order; the first
 * record that is torn or fails its checksum, its lsn or its stream's
 * sequence ends the log: that segment is truncated there and any later
 * segment is renamed *.orphan.  Nothing acknowledged as durable can lie
 * past that point: a `sync` acknowledgement follows an fdatasync of every
 * segment written so far, so everything before it is on the disk intact.
 */
#define _GNU_SOURCE
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "thoth/error.h"

#define IDX_MAGIC "THCXIDX1"
#define IDX_HDR   32u
#define IDX_ENT   40u
#define CAT_MAGIC "THCXCAT1"
#define CAT_HDR   32u
#define CAT_ENT   96u
#define CAT_MAX_STREAMS 65536u

void (*cx_crash_hook)(int point);

typedef struct entry {
	uint64_t lsn, time_ns;
	uint32_t seg, off, len, pad;
} entry_t;

typedef struct stream {
	char name[64];
	uint32_t id, budget_ms;
	entry_t *ent;                   /* ent[i] is seq base + i + 1 */
	size_t n, cap;
	uint64_t base;                  /* records retired by compaction: seq 1 .. base */
	uint64_t create_lsn;            /* its stream record (0: before the log's base, in the catalog) */
	uint64_t base_time;             /* time of the last retired record */
	uint64_t bytes, last_time;
} stream_t;

/* A tail recovery set aside (keep_cut), or a segment after the end of the
 * log renamed *.orphan: evidence, never read, kept by retention within
 * their own budget and removed oldest first (cuts_trim).  An orphan of
 * segment N sorts after N's cut files (its bytes were written after
 * them). */
typedef struct cut_file {
	uint64_t segno, off;            /* seg-SEGNO.log.cut-OFF[-N]; an orphan: UINT64_MAX */
	uint32_t n;                     /* 1: no -N suffix */
	bool orphan;                    /* seg-SEGNO.log.orphan */
	int stuck;                      /* errno of the last removal that failed (0: none) */
	uint64_t size;
	char name[64];
} cut_file_t;

typedef struct seg {
	uint64_t no, first_lsn, last_lsn;
	int fd;                         /* -1: closed (sealed and synced: fds_trim), reopened to read */
	uint64_t size, synced;
	uint64_t used;                  /* s->use_clock when last located (fds_trim closes the least recent) */
	bool sealed, dir_synced, idx_done;
} seg_t;

/* Sealed, synced segments kept open (for reads), the most recently read
 * ones: every segment kept its descriptor open, so the descriptors grew
 * with the log -- without bound while retention was stopped (or with none
 * set), until a roll failed with EMFILE and stopped the journal. */
#define CX_SEALED_OPEN_MAX 16u

struct cx_store {
	char dir[4096];
	int dirfd;
	uint64_t segment_bytes, retain_bytes;
	uint64_t cut_budget;            /* bytes of cut files retention keeps */
	uint64_t base_lsn;              /* the first lsn of the first segment kept */
	seg_t *segs;
	size_t nsegs, segs_cap;
	stream_t *streams;              /* streams[id - 1] */
	size_t nstreams, streams_cap;
	uint64_t next_lsn;
	uint64_t written;               /* payload+header bytes written since open */
	uint8_t *buf;                   /* encoding buffer for appends */
	size_t buf_cap;
	bool failed;
	char fail_why[384];             /* why a directory fsync of retention's stopped the store ("": none did) */
	bool compact_warned;             /* a failed catalog commit said, none succeeded since */
	int *retired;                   /* fds of dropped segments, closed by cx_store_release_retired */
	size_t nretired, retired_cap;
	cx_compact_stats_t cstats;
	cut_file_t *cuts;               /* oldest first: by segment, offset, suffix */
	size_t ncuts, cuts_cap;
	uint64_t use_clock;             /* ticks at each locate: seg_t.used */
};

const char *cx_path_fit(const char *path, size_t room, char out[CX_PATH_BRIEF])
{
	size_t len = strlen(path);
	if (room >= CX_PATH_BRIEF)
		room = CX_PATH_BRIEF - 1;
	if (len <= room) {
		memcpy(out, path, len + 1);
		return out;
	}
	if (room < 3) {
		out[0] = '\0';
		return out;
	}
	/* 40 bytes of head, "...", the rest of the room for the tail: a
	 * segment's name ("seg-0000000000000001.log.cut-1f4-2") is ~35. */
	size_t head = 40, tail;
	if (room < head + 3 + 1)        /* no room for a tail: never wrap (the macro refuses such a prefix) */
		head = room > 3 ? (room - 3) / 2 : 0;
	tail = room > head + 3 ? room - head - 3 : 0;
	while (head > 0 && ((unsigned char)path[head] & 0xC0) == 0x80)
		head--;         /* path[head] starts a character: cut before it */
	const char *t = path + len - tail;
	while (*t && ((unsigned char)*t & 0xC0) == 0x80)
		t++;            /* the tail starts on a character */
	memcpy(out, path, head);
	memcpy(out + head, "...", 3);
	memcpy(out + head + 3, t, strlen(t) + 1);
	return out;
}

static int fail_io(const char *what, char *why, size_t why_len)
{
	int e = errno;
	if (why)
		snprintf(why, why_len, "%s: %s", what, strerror(e));
	return thoth_error_io(e, "%s", what);
}

/*
 * Recovery is about to cut segment PATH (open as FD, SIZE bytes) at END:
 * copy [END, SIZE) aside first, to PATH.cut-END (hex; -2, -3... if taken),
 * kept and never read, like an *.orphan segment.  After a crash the cut is
 * a torn tail nobody was told about; but a record damaged on the disk
 * later (a flipped bit) ends the log just as well, and every record after
 * it -- acknowledged, durable -- was destroyed by the truncation.  The copy
 * and the directory (DIRFD) are synced before the caller cuts.  0, or
 * errno (nothing kept: the caller cuts anyway, as before; a full disk
 * cannot take a copy, and after ENOSPC the tail is the unacknowledged
 * write that failed).
 */
static int keep_cut(int dirfd, int fd, const char *path, uint64_t end, uint64_t size)
{
	char dst[4400];
	int out = -1;
	for (int n = 1; n <= 100 && out < 0; n++) {
		if (n == 1)
			snprintf(dst, sizeof dst, "%s.cut-%" PRIx64, path, end);
		else
			snprintf(dst, sizeof dst, "%s.cut-%" PRIx64 "-%d", path, end, n);
		out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (out < 0 && errno != EEXIST)
			return errno;
	}
	if (out < 0)
		return EEXIST;
	uint8_t buf[65536];
	int e = 0;
	for (uint64_t off = end; off < size && !e;) {
		size_t want = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
		ssize_t got = pread(fd, buf, want, (off_t)off);
		if (got <= 0) {
			e = got < 0 ? errno : EIO;
			break;
		}
		for (ssize_t w = 0; w < got && !e;) {
			ssize_t put = write(out, buf + w, (size_t)(got - w));
			if (put < 0)
				e = errno;
			else
				w += put;
		}
		off += (uint64_t)got;
	}
	if (!e && fdatasync(out))
		e = errno;
	/* The copy's name durable before the cut: POSIX does not order the
	 * directory entry's creation before the ftruncate that follows, and a
	 * crash between them must not lose both the tail and its copy. */
	if (!e && fsync(dirfd))
		e = errno;
	close(out);
	if (e)
		unlink(dst);
	return e;
}

/*
 * Set the segment at PATH aside as PATH.orphan, or PATH.orphan-N (2..100)
 * when an earlier recovery's orphan of the same number is still there: a
 * plain rename replaced it, and the evidence of the first damage went
 * without a word.  renameat2(RENAME_NOREPLACE), or link + unlink where the
 * file system has no such flag (EINVAL): neither replaces a name.
 */
static void orphan_aside(const char *path)
{
	char dst[4400];
	for (int n = 1; n <= 100; n++) {
		if (n == 1)
			snprintf(dst, sizeof dst, "%s.orphan", path);
		else
			snprintf(dst, sizeof dst, "%s.orphan-%d", path, n);
		if (!renameat2(AT_FDCWD, path, AT_FDCWD, dst, RENAME_NOREPLACE))
			return;
		if (errno == EINVAL) {
			if (!link(path, dst)) {
				unlink(path);
				return;
			}
		}
		if (errno != EEXIST)
			break;
	}
	fprintf(stderr, "codex[%d]: warning: could not set %s aside as an orphan: %s\n", (int)getpid(), path,
		strerror(errno));
}

/* NAME is a cut file's, exactly as keep_cut writes it (lower-case hex, no
 * leading zeros, a suffix 2..100): its segment, offset and suffix.  A name
 * that only looks like one is not. */
static bool cut_name_parse(const char *name, cut_file_t *c)
{
	unsigned long long no, off;
	int n = 1, used = 0;
	char canon[sizeof c->name];
	if (strlen(name) < sizeof c->name && sscanf(name, "seg-%16llx.log.orphan%n", &no, &used) == 1 &&
	    (!name[used] || name[used] == '-')) {
		if (name[used] && sscanf(name + used, "-%3d", &n) != 1)
			return false;
		if (n == 1)
			snprintf(canon, sizeof canon, "seg-%016llx.log.orphan", no);
		else
			snprintf(canon, sizeof canon, "seg-%016llx.log.orphan-%d", no, n);
		if (strcmp(canon, name) || n < 1 || n > 100)
			return false;
		*c = (cut_file_t){ .segno = no, .off = UINT64_MAX, .n = (uint32_t)n, .orphan = true };
		memcpy(c->name, canon, strlen(canon) + 1);
		return true;
	}
	if (strlen(name) >= sizeof c->name ||
	    sscanf(name, "seg-%16llx.log.cut-%16llx%n", &no, &off, &used) != 2)
		return false;
	if (name[used] == '-' && sscanf(name + used, "-%3d", &n) != 1)
		return false;
	if (n == 1)
		snprintf(canon, sizeof canon, "seg-%016llx.log.cut-%llx", no, off);
	else
		snprintf(canon, sizeof canon, "seg-%016llx.log.cut-%llx-%d", no, off, n);
	if (strcmp(canon, name) || n < 1 || n > 100)
		return false;
	*c = (cut_file_t){ .segno = no, .off = off, .n = (uint32_t)n };
	memcpy(c->name, canon, strlen(canon) + 1);
	return true;
}

static int cut_cmp(const void *a, const void *b)
{
	const cut_file_t *x = a, *y = b;
	if (x->segno != y->segno)
		return x->segno < y->segno ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return (x->n > y->n) - (x->n < y->n);
}

/*
 * The cut files in the data directory, for retention.  The directory is
 * taken as it is: an entry named like a cut file is looked at with
 * fstatat(AT_SYMLINK_NOFOLLOW), never opened, and only a regular file is
 * counted (and later removed); a directory, FIFO, socket, device or
 * symlink is left alone, counted in *FOREIGN for the log -- opening a FIFO
 * would block, following a symlink would count (and remove) a file
 * outside the journal.
 */
static int cuts_scan(cx_store_t *s, uint32_t *foreign)
{
	*foreign = 0;
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return thoth_error_io(errno, "list data dir for cut files");
	}
	int r = 0;
	for (struct dirent *de; !r && (de = readdir(d));) {
		cut_file_t c;
		struct stat st;
		if (!cut_name_parse(de->d_name, &c))
			continue;
		if (fstatat(s->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode)) {
			(*foreign)++;
			continue;
		}
		c.size = (uint64_t)st.st_size;
		if (s->ncuts == s->cuts_cap) {
			size_t cap = s->cuts_cap ? 2 * s->cuts_cap : 16;
			cut_file_t *n = realloc(s->cuts, cap * sizeof *n);
			if (!n) {
				r = THOTH_E_NOMEM;
				break;
			}
			s->cuts = n;
			s->cuts_cap = cap;
		}
		s->cuts[s->ncuts++] = c;
	}
	closedir(d);
	if (s->ncuts)
		qsort(s->cuts, s->ncuts, sizeof *s->cuts, cut_cmp);
	return r;
}

/* The bytes of the listed evidence of one kind (ORPHANS: *.orphan
 * segments, else cut files), stuck entries included: on the disk. */
static uint64_t cuts_bytes(const cx_store_t *s, bool orphans, uint32_t *files)
{
	uint64_t n = 0;
	uint32_t f = 0;
	for (size_t k = 0; k < s->ncuts; k++)
		if (s->cuts[k].orphan == orphans) {
			n += s->cuts[k].size;
			f++;
		}
	if (files)
		*files = f;
	return n;
}

static stream_t *stream_get(const cx_store_t *s, uint32_t id)
{
	return id >= 1 && id <= s->nstreams ? &s->streams[id - 1] : NULL;
}

static int stream_add(cx_store_t *s, const char *name, size_t len, uint32_t id, uint32_t budget_ms)
{
	if (id != s->nstreams + 1)
		return THOTH_E_INVAL;
	if (s->nstreams == s->streams_cap) {
		size_t cap = s->streams_cap ? 2 * s->streams_cap : 16;
		stream_t *n = realloc(s->streams, cap * sizeof *n);
		if (!n)
			return THOTH_E_NOMEM;
		s->streams = n;
		s->streams_cap = cap;
	}
	stream_t *st = &s->streams[s->nstreams++];
	memset(st, 0, sizeof *st);
	memcpy(st->name, name, len);
	st->id = id;
	st->budget_ms = budget_ms;
	return 0;
}

static int entry_add(stream_t *st, uint64_t lsn, uint64_t t, uint32_t seg, uint32_t off, uint32_t len)
{
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 64;
		entry_t *n = realloc(st->ent, cap * sizeof *n);
		if (!n)
			return THOTH_E_NOMEM;
		st->ent = n;
		st->cap = cap;
	}
	st->ent[st->n++] = (entry_t){ .lsn = lsn, .time_ns = t, .seg = seg, .off = off, .len = len };
	st->bytes += len;
	if (t > st->last_time)
		st->last_time = t;
	return 0;
}

/* Apply one parsed record to the in-memory state; CX_BAD when it does not
 * follow (unknown stream, a sequence gap): such a record ends the log. */
static cx_verdict_t apply(cx_store_t *s, const cx_rec_t *r, uint32_t seg, uint64_t off)
{
	if (r->lsn != s->next_lsn)
		return CX_BAD;
	if (r->type == CX_REC_STREAM) {
		uint32_t id = cx_le32(r->payload), budget = cx_le32(r->payload + 4);
		size_t nlen = r->len - CX_STREAM_PAYLOAD_FIXED;
		const char *name = (const char *)r->payload + CX_STREAM_PAYLOAD_FIXED;
		uint32_t dummy;
		if (r->seq != s->nstreams + 1 || id != s->nstreams + 1 || !cx_name_valid(name, nlen) ||
		    !cx_store_stream_find(s, name, nlen, &dummy))
			return CX_BAD;
		if (stream_add(s, name, nlen, id, budget))
			return CX_BAD;
		s->streams[id - 1].create_lsn = r->lsn;
	} else {
		stream_t *st = stream_get(s, r->stream);
		if (!st || r->seq != st->base + st->n + 1 || r->time_ns < st->last_time)
			return CX_BAD;
		if (entry_add(st, r->lsn, r->time_ns, seg, (uint32_t)off, r->len))
			return CX_BAD;
	}
	s->next_lsn++;
	s->segs[seg].last_lsn = r->lsn;
	return CX_OK;
}

static int seg_path(const cx_store_t *s, uint64_t no, const char *ext, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/seg-%016" PRIx64 ".%s", s->dir, no, ext);
	return n > 0 && (size_t)n < cap ? 0 : THOTH_E_INVAL;
}

static int segs_push(cx_store_t *s, const seg_t *sg)
{
	if (s->nsegs == s->segs_cap) {
		size_t cap = s->segs_cap ? 2 * s->segs_cap : 16;
		seg_t *n = realloc(s->segs, cap * sizeof *n);
		if (!n)
			return THOTH_E_NOMEM;
		s->segs = n;
		s->segs_cap = cap;
	}
	s->segs[s->nsegs++] = *sg;
	return 0;
}

/* Write the index of a sealed segment whose data is durable, so the next
 * start need not scan it.  Best effort: a missing or torn index file only
 * costs a scan (it is checked like a record: magic, segment, crc). */
static void idx_write(cx_store_t *s, uint32_t i)
{
	seg_t *sg = &s->segs[i];
	size_t count = 0;
	for (size_t k = 0; k < s->nstreams; k++)
		for (size_t e = 0; e < s->streams[k].n; e++)
			count += s->streams[k].ent[e].seg == i;
	/* meta records of this segment: stream creations whose lsn falls in it */
	size_t cap = IDX_HDR + (count + s->nstreams) * IDX_ENT + 4;
	uint8_t *b = calloc(1, cap);
	if (!b)
		return;
	size_t n = 0;
	uint8_t *p = b + IDX_HDR;
	for (size_t k = 0; k < s->nstreams; k++) {
		const stream_t *st = &s->streams[k];
		for (size_t e = 0; e < st->n; e++) {
			const entry_t *en = &st->ent[e];
			if (en->seg != i)
				continue;
			cx_put64(p, en->lsn);
			cx_put64(p + 8, st->base + e + 1);
			cx_put64(p + 16, en->time_ns);
			cx_put64(p + 24, en->off);
			cx_put32(p + 32, st->id);
			cx_put32(p + 36, en->len);
			p += IDX_ENT;
			n++;
		}
	}
	memcpy(b, IDX_MAGIC, 8);
	cx_put64(b + 8, sg->no);
	cx_put64(b + 16, n);
	cx_put64(b + 24, sg->size);
	size_t len = IDX_HDR + n * IDX_ENT;
	cx_put32(b + len, cx_crc32c(0, b, len));
	char path[4200], tmp[4210];
	if (!seg_path(s, sg->no, "idx", path, sizeof path)) {
		snprintf(tmp, sizeof tmp, "%s.tmp", path);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0) {
			bool ok = write(fd, b, len + 4) == (ssize_t)(len + 4);
			close(fd);
			if (ok && !rename(tmp, path))
				sg->idx_done = true;
			else
				unlink(tmp);
		}
	}
	free(b);
}

/* Load a sealed segment from its index file: only data records are listed,
 * so the segment must hold no stream creation (those are scanned). */
static bool idx_load(cx_store_t *s, uint32_t i, uint64_t file_size)
{
	seg_t *sg = &s->segs[i];
	char path[4200];
	if (seg_path(s, sg->no, "idx", path, sizeof path))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	uint8_t *b = NULL;
	bool ok = false;
	if (fstat(fd, &st) || st.st_size < IDX_HDR + 4 || st.st_size > (1 << 30))
		goto out;
	b = malloc((size_t)st.st_size);
	if (!b || pread(fd, b, (size_t)st.st_size, 0) != st.st_size)
		goto out;
	size_t len = (size_t)st.st_size - 4;
	uint64_t n = cx_le64(b + 16);
	if (memcmp(b, IDX_MAGIC, 8) || cx_le64(b + 8) != sg->no || n != (len - IDX_HDR) / IDX_ENT ||
	    IDX_HDR + n * IDX_ENT != len || cx_le64(b + 24) != file_size ||
	    cx_crc32c(0, b, len) != cx_le32(b + len))
		goto out;
	/* Entries are per stream, not in lsn order: check that together they
	 * are exactly the lsns first_lsn .. first_lsn + n - 1. */
	uint64_t lo = sg->first_lsn, hi = sg->first_lsn + n;
	if (lo != s->next_lsn)
		goto out;
	uint8_t *seen = calloc(n ? n : 1, 1);
	if (!seen)
		goto out;
	ok = true;
	for (uint64_t k = 0; k < n && ok; k++) {
		const uint8_t *p = b + IDX_HDR + k * IDX_ENT;
		uint64_t lsn = cx_le64(p), seq = cx_le64(p + 8);
		stream_t *stm = stream_get(s, cx_le32(p + 32));
		uint64_t off = cx_le64(p + 24);
		uint32_t rl = cx_le32(p + 36);
		if (lsn < lo || lsn >= hi || seen[lsn - lo] || !stm || off < CX_SEG_HDR || rl > CX_REC_MAX ||
		    off + cx_rec_size(rl) > file_size) {
			ok = false;
			break;
		}
		seen[lsn - lo] = 1;
		(void)seq;
	}
	if (ok) {
		/* Apply in file order, per stream, checking sequences. */
		size_t base[4096];
		size_t ns = s->nstreams < 4096 ? s->nstreams : 0;
		for (size_t k = 0; k < ns; k++)
			base[k] = s->streams[k].n;
		for (uint64_t k = 0; k < n && ok; k++) {
			const uint8_t *p = b + IDX_HDR + k * IDX_ENT;
			stream_t *stm = stream_get(s, cx_le32(p + 32));
			if (!ns || cx_le64(p + 8) != stm->base + stm->n + 1 || cx_le64(p + 16) < stm->last_time ||
			    entry_add(stm, cx_le64(p), cx_le64(p + 16), i, (uint32_t)cx_le64(p + 24),
				      cx_le32(p + 36)))
				ok = false;
		}
		if (!ok)        /* undo: fall back to a scan */
			for (size_t k = 0; k < ns; k++)
				s->streams[k].n = base[k];
		else {
			s->next_lsn = hi;
			sg->last_lsn = hi - 1;
			sg->idx_done = true;
		}
	}
	free(seen);
out:
	free(b);
	close(fd);
	return ok;
}

/* Scan segment I from the start; returns the offset where valid records
 * end (the file size when all are valid). */
static int seg_scan(cx_store_t *s, uint32_t i, uint64_t size, uint64_t *end, cx_recovery_t *rep)
{
	seg_t *sg = &s->segs[i];
	*end = CX_SEG_HDR;
	if (size <= CX_SEG_HDR)
		return 0;
	void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, sg->fd, 0);
	if (map == MAP_FAILED)
		return thoth_error_io(errno, "mmap segment %" PRIu64, sg->no);
	const uint8_t *m = map;
	uint64_t off = CX_SEG_HDR;
	while (off < size) {
		cx_rec_t r;
		size_t rs;
		if (cx_rec_parse(m + off, size - off, s->next_lsn, &r, &rs) != CX_OK || apply(s, &r, i, off) != CX_OK)
			break;
		rep->records++;
		off += rs;
	}
	munmap(map, size);
	*end = off;
	return 0;
}

/* ---- retention and compaction ---------------------------------------------- */

/*
 * The catalog (file "catalog") says where the log starts once old segments
 * are dropped: the first lsn and segment number kept, and every stream
 * created before that lsn (its stream record went with the segments) with
 * how many of its records were retired.  Written to catalog.tmp,
 * fdatasync'ed, renamed, directory fsync'ed: the commit point.  Only then
 * are the dropped segment files removed; a crash in between leaves files
 * that recovery removes, because the committed catalog says the log starts
 * after them.  A crash before the rename leaves the old catalog (or none)
 * and every segment: nothing changed.
 */

static seg_t *seg_by_no(cx_store_t *s, uint64_t no)
{
	for (size_t k = 0; k < s->nsegs; k++)
		if (s->segs[k].no == no)
			return &s->segs[k];
	return NULL;
}

static int cat_path(const cx_store_t *s, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", s->dir, name);
	return n > 0 && (size_t)n < cap ? 0 : THOTH_E_INVAL;
}

/* Build the catalog for a log that starts at segment K (index): streams
 * created before its first lsn, each with its records in segments < K
 * counted as retired. */
static uint8_t *cat_build(const cx_store_t *s, size_t k, size_t *len)
{
	uint64_t base_lsn = s->segs[k].first_lsn;
	size_t m = 0;
	while (m < s->nstreams && s->streams[m].create_lsn < base_lsn)
		m++;
	*len = CAT_HDR + m * CAT_ENT + 4;
	uint8_t *b = calloc(1, *len);
	if (!b)
		return NULL;
	memcpy(b, CAT_MAGIC, 8);
	cx_put64(b + 8, base_lsn);
	cx_put64(b + 16, s->segs[k].no);
	cx_put32(b + 24, (uint32_t)m);
	for (size_t i = 0; i < m; i++) {
		const stream_t *st = &s->streams[i];
		size_t cnt = 0;
		while (cnt < st->n && st->ent[cnt].seg < k)
			cnt++;
		uint8_t *p = b + CAT_HDR + i * CAT_ENT;
		size_t nl = strlen(st->name);
		cx_put32(p, st->id);
		cx_put32(p + 4, st->budget_ms);
		cx_put64(p + 8, st->base + cnt);
		cx_put64(p + 16, cnt ? st->ent[cnt - 1].time_ns : st->base_time);
		cx_put32(p + 24, (uint32_t)nl);
		memcpy(p + 32, st->name, nl);
	}
	cx_put32(b + *len - 4, cx_crc32c(0, b, *len - 4));
	return b;
}

/* Read the committed catalog, if any, into the empty store.  0 with
 * *FIRST_NO = 0 when there is none; THOTH_E_CORRUPT naming the problem
 * when it is damaged (it was durable before anything relied on it, so
 * damage is not a crash's doing: refuse rather than guess). */
static int cat_load(cx_store_t *s, uint64_t *first_no, uint8_t **bytes, size_t *nbytes, char *why,
		    size_t why_len)
{
	*first_no = 0;
	*bytes = NULL;
	*nbytes = 0;
	char path[4200];
	if (cat_path(s, "catalog.tmp", path, sizeof path) == 0)
		unlink(path);           /* an uncommitted compaction: as if never begun */
	if (cat_path(s, "catalog", path, sizeof path))
		return THOTH_E_INVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return fail_io("open catalog", why, why_len);
	}
	struct stat st;
	uint8_t *b = NULL;
	int r = THOTH_E_CORRUPT;
	const char *what = "shorter than its header";
	if (fstat(fd, &st) || st.st_size < CAT_HDR + 4 || st.st_size > CAT_HDR + 4 + (off_t)CAT_MAX_STREAMS * CAT_ENT)
		goto out;
	size_t len = (size_t)st.st_size;
	b = malloc(len);
	what = "unreadable";
	if (!b || pread(fd, b, len, 0) != (ssize_t)len)
		goto out;
	uint32_t m = cx_le32(b + 24);
	what = "bad magic, size or checksum";
	if (memcmp(b, CAT_MAGIC, 8) || len != CAT_HDR + (size_t)m * CAT_ENT + 4 ||
	    cx_crc32c(0, b, len - 4) != cx_le32(b + len - 4) || cx_le64(b + 8) < 1 || cx_le64(b + 16) < 1)
		goto out;
	for (uint32_t i = 0; i < m; i++) {
		const uint8_t *p = b + CAT_HDR + (size_t)i * CAT_ENT;
		uint32_t nl = cx_le32(p + 24);
		what = "a stream entry out of order or with a bad name";
		if (cx_le32(p) != i + 1 || nl > 63 || !cx_name_valid((const char *)p + 32, nl))
			goto out;
		uint32_t dummy;
		if (!cx_store_stream_find(s, (const char *)p + 32, nl, &dummy) ||
		    stream_add(s, (const char *)p + 32, nl, i + 1, cx_le32(p + 4)))
			goto out;
		stream_t *sm = &s->streams[i];
		sm->base = cx_le64(p + 8);
		sm->base_time = sm->last_time = cx_le64(p + 16);
	}
	s->base_lsn = s->next_lsn = cx_le64(b + 8);
	*first_no = cx_le64(b + 16);
	*bytes = b;             /* for cat_recommit */
	*nbytes = len;
	b = NULL;
	r = 0;
out:
	if (r)
		snprintf(why, why_len, "the catalog %s is damaged (%s): codex will not guess where the log starts",
			 path, what);
	free(b);
	close(fd);
	return r;
}

/*
 * Recovery found segment files below the catalog's first segment: a
 * compaction committed that catalog and was stopped before it removed
 * them (a crash, or a failed directory fsync after the rename: retention
 * "stopped").  They may go only once that catalog is durable.  But the
 * catalog recovery just read is the kernel's view of the directory, and
 * after a directory fsync failed in the run before (EIO, consumed there),
 * the disk may not have the rename, and a second fsync of the directory
 * may report success for the change it lost ("fsyncgate").  Recovery
 * removed the segments first and fsync'ed after (codex46): on such a disk
 * the removals could become durable while the disk still held the old
 * catalog, which names them: at the next start the log began in the middle,
 * its oldest segments and the streams created in them gone.  Hence the
 * order, step by step:
 *
 *   1. write the catalog's bytes (BYTES, as read) to catalog.tmp and
 *      fdatasync it: a new file, so no dropped page of the run before can
 *      pass for it;
 *   2. rename catalog.tmp over catalog and fsync the directory: a new
 *      change to the entry "catalog" itself, so the directory's writeback
 *      that this fsync reports on carries the entry as the kernel has it
 *      now (on a journaling file system, a new transaction: after a
 *      journal's write error the file system is read-only and the rename
 *      fails).  Its success means the disk has a catalog with these bytes,
 *      whatever happened to the earlier rename;
 *   3. only then do the caller's removals follow (and its directory fsync,
 *      checked: a failure refuses to start).
 *
 * A crash (of codex or the machine) before 2's fsync returns leaves the
 * disk's catalog old or new, every segment still there: the next start
 * does it again.  After it, a crash among the removals leaves files that
 * the next start removes the same way.  A failed step refuses to start,
 * nothing removed (the caller's why names the step): the operator's disk
 * is failing, and every segment either catalog refers to is still there.
 */
static int cat_recommit(cx_store_t *s, const uint8_t *bytes, size_t len, char *why, size_t why_len)
{
	char path[4200], tmp[4200];
	if (cat_path(s, "catalog", path, sizeof path) || cat_path(s, "catalog.tmp", tmp, sizeof tmp))
		return THOTH_E_INVAL;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail_io("write catalog.tmp again before removing the segments the catalog drops", why, why_len);
	errno = 0;
	bool ok = write(fd, bytes, len) == (ssize_t)len && !fdatasync(fd);
	if (!ok && !errno)
		errno = EIO;    /* a short write sets none */
	int e = errno;
	close(fd);
	if (!ok) {
		unlink(tmp);
		errno = e;
		return fail_io("write catalog.tmp again before removing the segments the catalog drops", why, why_len);
	}
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_RECOVER_CATALOG);
	if (rename(tmp, path)) {
		e = errno;
		unlink(tmp);
		errno = e;
		return fail_io("rename catalog.tmp to catalog before removing the segments the catalog drops", why,
			       why_len);
	}
	if (fsync(s->dirfd))
		return fail_io("fsync data dir after rewriting the catalog, before removing the segments it drops", why,
			       why_len);
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_RECOVER_RENAMED);
	return 0;
}

static void retire_fd(cx_store_t *s, int fd)
{
	if (s->nretired == s->retired_cap) {
		size_t cap = s->retired_cap ? 2 * s->retired_cap : 16;
		int *n = realloc(s->retired, cap * sizeof *n);
		if (!n) {
			close(fd);      /* a reader holding it gets an error, never a wrong record */
			return;
		}
		s->retired = n;
		s->retired_cap = cap;
	}
	s->retired[s->nretired++] = fd;
}

void cx_store_release_retired(cx_store_t *s)
{
	for (size_t k = 0; k < s->nretired; k++)
		close(s->retired[k]);
	s->nretired = 0;
}

/*
 * Keep at most CX_SEALED_OPEN_MAX sealed segments open, besides KEEP (a
 * segment just reopened for a read; NULL: none): the least recently read
 * beyond it are closed -- retired (closed once no reader holds a copied
 * fd: cx_store_release_retired), or at once when RETIRE is false (recovery:
 * no reader yet).  Only a sealed segment whose bytes are all synced is
 * closed: a segment an epoch may still fdatasync (cx_store_dirty lists
 * those with unsynced bytes; epochs run one at a time) or the active one
 * keeps its descriptor.  A closed one is reopened by cx_store_locate.
 */
static void fds_trim(cx_store_t *s, const seg_t *keep, bool retire)
{
	for (;;) {
		size_t open = 0;
		seg_t *lru = NULL;
		for (size_t k = 0; k < s->nsegs; k++) {
			seg_t *sg = &s->segs[k];
			if (sg->fd < 0 || !sg->sealed || sg->synced != sg->size || sg == keep)
				continue;
			open++;
			if (!lru || sg->used < lru->used)
				lru = sg;
		}
		if (open <= CX_SEALED_OPEN_MAX || !lru)
			return;
		if (retire)
			retire_fd(s, lru->fd);
		else
			close(lru->fd);
		lru->fd = -1;
	}
}

uint32_t cx_store_open_fds(const cx_store_t *s)
{
	uint32_t n = (uint32_t)s->nretired;
	for (size_t k = 0; k < s->nsegs; k++)
		n += s->segs[k].fd >= 0;
	return n;
}

/*
 * A directory fsync of retention's failed: after removing segment files
 * (AFTER "removing segment files") or cut files ("removing cut files").
 * Such an fsync was best effort and its result ignored (to codex46), on
 * the grounds that recovery redoes a removal the disk lost.  That holds
 * for the removals, not for the error: after an EIO the kernel may drop
 * the directory changes it could not write and report the error once, to
 * this fsync -- on the descriptor the journal's own directory fsync uses,
 * which would then return 0.  So, never retried, as after the catalog's
 * rename (compact), it stops what it could have cost:
 *  - retention, until codex restarts (no segment removed after it; the
 *    log grows past --retain-bytes; appends go on): the changes it may
 *    have lost are removals, which recovery redoes, but no catalog commit
 *    is made to depend on a directory fsync after a failed one (the cut
 *    files' trimming goes on: nothing refers to them);
 *  - the store, when a segment's name was not yet durable (rolled to
 *    while the epoch ran: the journal's next directory fsync was to cover
 *    it and may now pass for it): its records are not acknowledged yet
 *    and never may be, so the journal stops, as after its own failed
 *    directory fsync (cx_store_failure).
 */
static void names_at_risk(cx_store_t *s, const char *after, int err)
{
	char brief[CX_PATH_BRIEF];
	for (size_t k = 0; k < s->nsegs && !s->failed; k++)
		if (!s->segs[k].dir_synced) {
			s->failed = true;
			snprintf(s->fail_why, sizeof s->fail_why, "I/O error: fsync the directory %s after %s: %s; "
				 "segment %" PRIu64 "'s name was not yet durable and a second fsync could report "
				 "success for it: nothing written since the last good sync is acknowledged",
				 cx_path_brief(s->dir, "fsync the directory ", brief), after, strerror(err),
				 s->segs[k].no);
		}
}

static void retention_dir_failed(cx_store_t *s, const char *after, int err)
{
	names_at_risk(s, after, err);
	if (s->cstats.stopped[0])
		return;
	char brief[CX_PATH_BRIEF];
	snprintf(s->cstats.stopped, sizeof s->cstats.stopped, "fsync the directory %s after %s: %s",
		 cx_path_brief(s->dir, "fsync the directory ", brief), after, strerror(err));
	fprintf(stderr, "codex[%d]: error: retention stopped removing segments until codex restarts: fsync the "
		"directory %s after %s failed: %s; not retried (a second fsync could report success for a change "
		"the disk lost), so no segment is removed (the log grows past --retain-bytes; %s); check the disk, "
		"then restart codex\n", (int)getpid(), s->dir, after, strerror(err),
		s->failed ? "the journal stops too: a segment's name was not yet durable" : "appends go on");
}

int cx_store_failure(const cx_store_t *s, char *why, size_t cap)
{
	if (!s->fail_why[0])
		return 0;
	snprintf(why, cap, "%s", s->fail_why);
	return THOTH_E_IO;
}

/*
 * The cut files and orphan segments beyond their budget, oldest first,
 * until what stays is within it.  Their own budget, not the segments' retention: counted with
 * the segments, a cut file pushed acknowledged records out of retention
 * (a segment of records dropped to keep a tail nobody reads); and done
 * before the segments' catalog commit, whose failure (EIO, a full disk)
 * left them to pile up.  unlinkat never follows: a name no longer a
 * regular file (replaced since the scan) that cannot be removed (EISDIR,
 * EACCES, EBUSY) stays listed and counted in the stats -- its bytes may
 * still be on the disk -- marked stuck, and looked at again each time; but
 * it does not count against the budget: it did, and one stuck name held
 * the budget's room for good, so every newer cut file went at once.  Once
 * a regular file is there again its mark is cleared and it counts against
 * the budget like the rest, removed only past it (it was removed at the
 * first retry, even where it fitted); a name still not a regular file is
 * left alone (never unlinked: it is not what recovery made).
 */
static void cuts_trim(cx_store_t *s)
{
	uint64_t held = 0;
	for (size_t k = 0; k < s->ncuts; k++) {
		cut_file_t *c = &s->cuts[k];
		/* A stuck name looked at again: a regular file there once more
		 * is evidence like any other, counted against the budget and
		 * removed only past it (it was removed at once, even where it
		 * fitted); gone, it is dropped below; anything else stays stuck. */
		struct stat st;
		if (c->stuck && !fstatat(s->dirfd, c->name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode)) {
			c->stuck = 0;
			c->size = (uint64_t)st.st_size;
		}
		if (!c->stuck)
			held += c->size;
	}
	size_t w = 0;
	bool removed = false;
	for (size_t k = 0; k < s->ncuts; k++) {
		cut_file_t *c = &s->cuts[k];
		if (c->stuck || held > s->cut_budget) {
			struct stat st;
			if (c->stuck && (!fstatat(s->dirfd, c->name, &st, AT_SYMLINK_NOFOLLOW) || errno != ENOENT)) {
				s->cuts[w++] = *c;      /* still not a regular file: left alone */
				continue;
			}
			if (!unlinkat(s->dirfd, c->name, 0) || errno == ENOENT) {
				/* Evidence of damage going: said, with its name and
				 * size, so that it can be noticed (and --cut-bytes
				 * raised) before the next one goes. */
				fprintf(stderr, "codex[%d]: warning: removed %s (%" PRIu64 " bytes): %s\n", (int)getpid(),
					c->name, c->size,
					c->stuck ? "gone, once stuck" : "beyond --cut-bytes");
				*(c->orphan ? &s->cstats.orphan_files : &s->cstats.cut_files) += 1;
				*(c->orphan ? &s->cstats.orphan_bytes : &s->cstats.cut_bytes) += c->size;
				if (!c->stuck)
					held -= c->size;
				removed = true;
				continue;
			}
			if (!c->stuck)
				held -= c->size;
			c->stuck = errno;
		}
		s->cuts[w++] = *c;
	}
	s->ncuts = w;
	/* A cut file back after a crash is removed again; but a failure is
	 * acted on (retention_dir_failed says why). */
	if (removed && fsync(s->dirfd))
		retention_dir_failed(s, "removing cut files", errno);
}

static void compact(cx_store_t *s)
{
	/* Cut files need no catalog: a removal the disk lost is redone after
	 * a restart (so their trimming goes on after retention stopped). */
	cuts_trim(s);
	if (s->cstats.stopped[0])
		return;
	uint64_t left = 0;
	for (size_t k = 0; k < s->nsegs; k++)
		left += s->segs[k].size;
	/* The oldest segments, while what stays is still at least the
	 * retention (segments alone: the cut files have their own budget):
	 * sealed, synced, indexed and named durably in the directory (so
	 * their records are on the disk and nothing in flight refers to
	 * them). */
	size_t k = 0;
	while (k + 1 < s->nsegs) {
		const seg_t *sg = &s->segs[k];
		if (!sg->sealed || !sg->idx_done || sg->synced != sg->size || !sg->dir_synced ||
		    left - sg->size < s->retain_bytes)
			break;
		left -= sg->size;
		k++;
	}
	if (!k)
		return;
	size_t len;
	uint8_t *b = cat_build(s, k, &len);
	char path[4200], tmp[4200];
	if (!b || cat_path(s, "catalog", path, sizeof path) || cat_path(s, "catalog.tmp", tmp, sizeof tmp)) {
		free(b);
		return;
	}
	errno = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, b, len) == (ssize_t)len && !fdatasync(fd);
	int cerr = ok ? 0 : errno ? errno : EIO;        /* a short write sets none */
	if (fd >= 0)
		close(fd);
	free(b);
	if (ok && cx_crash_hook)
		cx_crash_hook(CX_PT_COMPACT_CATALOG);
	/* The commit: renamed and the directory synced.  Until then a crash
	 * leaves the previous state whole; a failed write or rename changes
	 * nothing and the next epoch tries again (a failed directory fsync
	 * does not: below).  Said once (until a commit succeeds): it
	 * failed in silence, and retention then held nothing back while the
	 * disk filled, with no word of why. */
	const char *step = !ok ? "write" : rename(tmp, path) ? "rename to" : NULL;
	if (!step && fsync(s->dirfd)) {
		/* The rename happened; whether the disk has it, nobody knows,
		 * and a second fsync may return 0 for a change the kernel
		 * dropped after the first failed ("fsyncgate").  Retried, the
		 * next commit's "success" let the dropped segments go while the
		 * disk may still hold the old catalog: a crash then found a log
		 * starting in the middle with no catalog for it.  So retention
		 * removes no segment until a restart, and recovery commits the
		 * catalog again as a new change, durable before it removes a
		 * segment (cat_recommit): a plain restart is safe (until codex47
		 * recovery removed them first, no safer than the retry).  A
		 * segment whose name this fsync was to make durable too stops
		 * the journal (names_at_risk). */
		cerr = errno;
		names_at_risk(s, "renaming catalog.tmp to catalog", cerr);
		char brief[CX_PATH_BRIEF];
		snprintf(s->cstats.stopped, sizeof s->cstats.stopped, "fsync the directory %s after the catalog's rename: %s",
			 cx_path_brief(s->dir, "fsync the directory ", brief), strerror(cerr));
		fprintf(stderr, "codex[%d]: error: retention stopped removing segments until codex restarts: "
			"fsync the directory %s after renaming catalog.tmp to catalog failed: %s; the disk may have "
			"the new catalog or the old one, and a second fsync could report success for a rename the disk "
			"lost, so no segment is removed (the log grows past --retain-bytes; %s); check the "
			"disk, then restart codex: recovery makes the catalog durable again, as a new change, before it "
			"removes a segment, and retention resumes\n",
			(int)getpid(), s->dir, strerror(cerr),
			s->failed ? "the journal stops too: a segment's name was not yet durable" : "appends go on");
		return;
	}
	if (step) {
		if (ok)
			cerr = errno;
		unlink(tmp);
		if (!s->compact_warned)
			fprintf(stderr, "codex[%d]: warning: retention's catalog commit failed (%s %s: %s); no segment "
				"is removed, tried again after each sync (said once until one succeeds)\n",
				(int)getpid(), step, step[0] == 'w' ? tmp : path, strerror(cerr));
		s->compact_warned = true;
		return;
	}
	s->compact_warned = false;
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_COMPACT_RENAMED);
	uint64_t bytes = 0, records = 0;
	for (size_t i = 0; i < k; i++) {
		seg_t *sg = &s->segs[i];
		if (!seg_path(s, sg->no, "log", path, sizeof path))
			unlink(path);
		if (!seg_path(s, sg->no, "idx", path, sizeof path))
			unlink(path);
		if (i == 0 && cx_crash_hook)
			cx_crash_hook(CX_PT_COMPACT_UNLINKED);
		bytes += sg->size;
		records += sg->last_lsn + 1 - sg->first_lsn;
		if (sg->fd >= 0)
			retire_fd(s, sg->fd);
	}
	/* Recovery removes what a crash leaves; a failure is acted on all the
	 * same (retention_dir_failed), after the bookkeeping below: the files
	 * are gone from the kernel's view. */
	int rm_err = fsync(s->dirfd) ? errno : 0;
	for (size_t i = 0; i < s->nstreams; i++) {
		stream_t *st = &s->streams[i];
		size_t cnt = 0;
		uint64_t gone = 0;
		while (cnt < st->n && st->ent[cnt].seg < k)
			gone += st->ent[cnt++].len;
		if (cnt) {
			st->base_time = st->ent[cnt - 1].time_ns;
			memmove(st->ent, st->ent + cnt, (st->n - cnt) * sizeof *st->ent);
			st->n -= cnt;
			st->base += cnt;
			st->bytes -= gone;
		}
		for (size_t e = 0; e < st->n; e++)
			st->ent[e].seg -= (uint32_t)k;
	}
	memmove(s->segs, s->segs + k, (s->nsegs - k) * sizeof *s->segs);
	s->nsegs -= k;
	s->base_lsn = s->segs[0].first_lsn;
	s->cstats.compactions++;
	s->cstats.segments += k;
	s->cstats.bytes += bytes;
	s->cstats.records += records;
	if (rm_err)
		retention_dir_failed(s, "removing segment files", rm_err);
}

void cx_store_compact_stats(const cx_store_t *s, cx_compact_stats_t *out)
{
	*out = s->cstats;
	out->cut_held_bytes = cuts_bytes(s, false, &out->cut_held);
	out->orphan_held_bytes = cuts_bytes(s, true, &out->orphan_held);
	out->cut_budget_bytes = s->cut_budget;
	out->cut_stuck = 0;
	out->cut_stuck_errno = 0;
	for (size_t k = 0; k < s->ncuts; k++)
		if (s->cuts[k].stuck) {
			out->cut_stuck++;
			out->cut_stuck_errno = s->cuts[k].stuck;
		}
}

uint64_t cx_store_bytes(const cx_store_t *s)
{
	uint64_t n = 0;
	for (size_t k = 0; k < s->nsegs; k++)
		n += s->segs[k].size;
	return n;
}

static int name_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int seg_create(cx_store_t *s, uint64_t no)
{
	char path[4200];
	if (seg_path(s, no, "log", path, sizeof path))
		return THOTH_E_INVAL;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return thoth_error_io(errno, "create %s", cx_path_brief(path, "create ", (char[CX_PATH_BRIEF]){ 0 }));
	if (cx_crash_hook && s->nsegs)
		cx_crash_hook(CX_PT_ROLL_CREATED);
	uint8_t h[CX_SEG_HDR];
	cx_seg_hdr_encode(&(cx_seg_hdr_t){ .seg_no = no, .first_lsn = s->next_lsn }, h);
	if (pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
		int e = errno;
		close(fd);
		unlink(path);
		return thoth_error_io(e ? e : EIO, "write header of %s",
					     cx_path_brief(path, "write header of ", (char[CX_PATH_BRIEF]){ 0 }));
	}
	seg_t sg = { .no = no, .first_lsn = s->next_lsn, .last_lsn = s->next_lsn - 1, .fd = fd,
		     .size = CX_SEG_HDR };
	int r = segs_push(s, &sg);
	if (r) {
		close(fd);
		unlink(path);
	}
	return r;
}

int cx_store_open(const cx_store_config_t *cfg, cx_store_t **out, cx_recovery_t *rep, char *why,
		  size_t why_len)
{
	cx_recovery_t dummy;
	if (!rep)
		rep = &dummy;
	memset(rep, 0, sizeof *rep);
	if (!cfg || !cfg->dir || !*cfg->dir || strlen(cfg->dir) >= 4000) {
		snprintf(why, why_len, "data dir missing or too long");
		return THOTH_E_INVAL;
	}
	cx_store_t *s = calloc(1, sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	snprintf(s->dir, sizeof s->dir, "%s", cfg->dir);
	s->segment_bytes = cfg->segment_bytes ? cfg->segment_bytes : (64ull << 20);
	if (s->segment_bytes < 4096)
		s->segment_bytes = 4096;
	s->retain_bytes = cfg->retain_bytes;
	s->cut_budget = cfg->cut_budget_bytes ? cfg->cut_budget_bytes : s->segment_bytes;
	s->next_lsn = s->base_lsn = 1;
	s->dirfd = -1;
	uint64_t *nos = NULL;
	size_t nn = 0, ncap = 0;
	uint8_t *cat = NULL;            /* the catalog's bytes, for cat_recommit */
	size_t cat_len = 0;
	int r;
	if (mkdir(s->dir, 0700) && errno != EEXIST) {
		r = fail_io("mkdir data dir", why, why_len);
		goto fail;
	}
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = fail_io("open data dir", why, why_len);
		goto fail;
	}
	uint64_t first_no;
	if ((r = cat_load(s, &first_no, &cat, &cat_len, why, why_len)))
		goto fail;
	rep->base_lsn = s->base_lsn;
	DIR *d = opendir(s->dir);
	if (!d) {
		r = fail_io("list data dir", why, why_len);
		goto fail;
	}
	for (struct dirent *de; (de = readdir(d));) {
		uint64_t no;
		int used = 0;
		if (sscanf(de->d_name, "seg-%16" SCNx64 ".log%n", &no, &used) == 1 &&
		    used == (int)strlen(de->d_name) && strlen(de->d_name) == 24) {
			if (nn == ncap) {
				ncap = ncap ? 2 * ncap : 16;
				uint64_t *n2 = realloc(nos, ncap * sizeof *n2);
				if (!n2) {
					closedir(d);
					r = THOTH_E_NOMEM;
					goto fail;
				}
				nos = n2;
			}
			nos[nn++] = no;
		}
	}
	closedir(d);
	if (nn)         /* qsort(NULL, 0, ...) is undefined */
		qsort(nos, nn, sizeof *nos, name_cmp);
	/* Segments the catalog drops go only after it is durable again
	 * (cat_recommit says why and how). */
	if (nn && nos[0] < first_no) {
		r = cat_recommit(s, cat, cat_len, why, why_len);
		if (r)
			goto fail;
	}
	free(cat);
	cat = NULL;

	bool cut = false;
	for (size_t k = 0; k < nn; k++) {
		char path[4200];
		seg_path(s, nos[k], "log", path, sizeof path);
		if (nos[k] < first_no) {
			/* dropped by a committed compaction that a crash (or a
			 * failed directory fsync) interrupted */
			unlink(path);
			seg_path(s, nos[k], "idx", path, sizeof path);
			unlink(path);
			if (!rep->compacted++ && cx_crash_hook)
				cx_crash_hook(CX_PT_RECOVER_UNLINKED);
			continue;
		}
		if (cut) {      /* after the end of the log: kept aside, never read */
			orphan_aside(path);
			seg_path(s, nos[k], "idx", path, sizeof path);
			unlink(path);
			rep->orphaned++;
			continue;
		}
		int fd = open(path, O_RDWR | O_CLOEXEC);
		struct stat stt;
		if (fd < 0 || fstat(fd, &stt)) {
			r = fail_io("open segment", why, why_len);
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		uint8_t h[CX_SEG_HDR];
		cx_seg_hdr_t hdr;
		ssize_t got = pread(fd, h, sizeof h, 0);
		if (got < 0 || cx_seg_hdr_parse(h, (size_t)got, &hdr) != CX_OK || hdr.seg_no != nos[k] ||
		    hdr.first_lsn != s->next_lsn) {
			/* A segment created just before a crash has no valid
			 * header: nothing in it was ever acknowledged. */
			close(fd);
			if (k + 1 == nn && (uint64_t)stt.st_size <= CX_SEG_HDR + CX_REC_HDR) {
				unlink(path);
				rep->removed++;
				rep->truncated_bytes += (uint64_t)stt.st_size;
			} else {
				orphan_aside(path);
				rep->orphaned++;
			}
			cut = true;
			continue;
		}
		seg_t sg = { .no = nos[k], .first_lsn = hdr.first_lsn, .last_lsn = hdr.first_lsn - 1,
			     .fd = fd, .sealed = k + 1 < nn, .dir_synced = true };
		if ((r = segs_push(s, &sg))) {
			close(fd);
			goto fail;
		}
		uint32_t i = (uint32_t)(s->nsegs - 1);
		uint64_t size = (uint64_t)stt.st_size, end;
		if (k + 1 < nn && idx_load(s, i, size)) {
			rep->indexed++;
			rep->records += s->segs[i].last_lsn + 1 - s->segs[i].first_lsn;
			end = size;
			/* Needs no fdatasync (its index follows a sync): closed now,
			 * so that recovery holds no descriptor per segment (reopened
			 * below if it turns out to be the last). */
			close(fd);
			s->segs[i].fd = -1;
		} else if ((r = seg_scan(s, i, size, &end, rep))) {
			goto fail;
		}
		if (end < size) {
			int kept = keep_cut(s->dirfd, fd, path, end, size);
			if (!kept) {
				rep->cut_kept_bytes += size - end;
			} else {
				rep->cut_keep_errno = kept;
				rep->cut_lost_bytes += size - end;
			}
			if (ftruncate(fd, (off_t)end)) {
				r = fail_io("truncate torn segment", why, why_len);
				goto fail;
			}
			rep->truncated_bytes += size - end;
			cut = true;
			seg_path(s, nos[k], "idx", path, sizeof path);
			unlink(path);
		}
		s->segs[i].size = s->segs[i].synced = end;
		s->segs[i].sealed = false;
	}
	for (size_t k = 0; k + 1 < s->nsegs; k++)
		s->segs[k].sealed = true;
	if (s->nsegs && s->segs[s->nsegs - 1].fd < 0) {        /* the active one: a later segment was set aside */
		char path[4200];
		seg_path(s, s->segs[s->nsegs - 1].no, "log", path, sizeof path);
		if ((s->segs[s->nsegs - 1].fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
			r = fail_io("open segment", why, why_len);
			goto fail;
		}
	}
	/* The cut files, this recovery's included, for retention to count. */
	if ((r = cuts_scan(s, &rep->cut_foreign))) {
		snprintf(why, why_len, "cannot list the cut files in the data dir");
		goto fail;
	}
	rep->cut_file_bytes = cuts_bytes(s, false, &rep->cut_files);
	rep->orphan_file_bytes = cuts_bytes(s, true, &rep->orphan_files);
	if (!s->nsegs && (r = seg_create(s, first_no ? first_no : 1))) {
		char e[200];    /* the call and errno: "system call failed" alone says nothing */
		snprintf(why, why_len, "cannot create the first segment: %s", thoth_strerror_r(r, e, sizeof e));
		goto fail;
	}
	/* Whatever a crash left in the page cache is made durable now, once:
	 * from here on, durable = synced, segment by segment.  A segment
	 * loaded from its index file needs none: its index is written only
	 * after its data was synced. */
	for (size_t k = 0; k < s->nsegs; k++) {
		if (!s->segs[k].idx_done && fdatasync(s->segs[k].fd)) {
			r = fail_io("fdatasync segment at recovery", why, why_len);
			goto fail;
		}
		s->segs[k].synced = s->segs[k].size;
		s->segs[k].dir_synced = true;
	}
	if (fsync(s->dirfd)) {
		r = fail_io("fsync data dir", why, why_len);
		goto fail;
	}
	for (size_t k = 0; k + 1 < s->nsegs; k++)
		if (!s->segs[k].idx_done)
			idx_write(s, (uint32_t)k);
	fds_trim(s, NULL, false);
	rep->segments = (uint32_t)s->nsegs;
	free(nos);
	*out = s;
	return 0;
fail:
	free(nos);
	free(cat);
	cx_store_close(s);
	return r;
}

void cx_store_close(cx_store_t *s)
{
	if (!s)
		return;
	for (size_t k = 0; k < s->nsegs; k++)
		if (s->segs[k].fd >= 0)
			close(s->segs[k].fd);
	for (size_t k = 0; k < s->nstreams; k++)
		free(s->streams[k].ent);
	if (s->dirfd >= 0)
		close(s->dirfd);
	cx_store_release_retired(s);
	free(s->retired);
	free(s->cuts);
	free(s->segs);
	free(s->streams);
	free(s->buf);
	free(s);
}

int cx_store_stream_find(const cx_store_t *s, const char *name, size_t len, uint32_t *id)
{
	for (size_t k = 0; k < s->nstreams; k++)
		if (strlen(s->streams[k].name) == len && !memcmp(s->streams[k].name, name, len)) {
			*id = s->streams[k].id;
			return 0;
		}
	return THOTH_E_NOT_FOUND;
}

uint32_t cx_store_stream_budget_ms(const cx_store_t *s, uint32_t id)
{
	const stream_t *st = stream_get(s, id);
	return st ? st->budget_ms : 0;
}

size_t cx_store_streams(const cx_store_t *s, cx_stream_info_t *out, size_t cap)
{
	size_t n = 0;
	for (; n < s->nstreams && n < cap; n++) {
		const stream_t *st = &s->streams[n];
		memcpy(out[n].name, st->name, sizeof out[n].name);
		out[n].id = st->id;
		out[n].budget_ms = st->budget_ms;
		out[n].records = st->n;
		out[n].bytes = st->bytes;
		out[n].first_seq = st->base + 1;
	}
	return s->nstreams;
}

/* Seal the active segment and start the next one when the next write of
 * NEED bytes would pass the segment size. */
static int maybe_roll(cx_store_t *s, size_t need)
{
	seg_t *a = &s->segs[s->nsegs - 1];
	if (a->size + need <= s->segment_bytes || a->size == CX_SEG_HDR)
		return 0;
	int r = seg_create(s, a->no + 1);
	if (r)
		return r;
	s->segs[s->nsegs - 2].sealed = true;
	if (cx_crash_hook)
		cx_crash_hook(CX_PT_ROLL_DONE);
	return 0;
}

static int write_records(cx_store_t *s, const cx_rec_t *recs, size_t n)
{
	size_t total = 0;
	for (size_t k = 0; k < n; k++)
		total += cx_rec_size(recs[k].len);
	if (total > s->buf_cap) {
		uint8_t *b = realloc(s->buf, total);
		if (!b)
			return THOTH_E_NOMEM;
		s->buf = b;
		s->buf_cap = total;
	}
	int r = maybe_roll(s, total);
	if (r)
		return r;
	seg_t *a = &s->segs[s->nsegs - 1];
	size_t off = 0;
	for (size_t k = 0; k < n; k++) {
		cx_rec_encode(&recs[k], s->buf + off);
		off += cx_rec_size(recs[k].len);
	}
	for (size_t done = 0; done < total;) {
		size_t len = total - done;
		if (cx_crash_hook && !done && total > 8)
			len = total / 2;        /* a torn record for the crash tests */
		ssize_t w = pwrite(a->fd, s->buf + done, len, (off_t)(a->size + done));
		if (cx_crash_hook && !done && w > 0)
			cx_crash_hook(CX_PT_APPEND_HALF);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* What reached the file is a torn tail for recovery to
			 * cut; the store takes nothing more. */
			int e = w < 0 ? errno : ENOSPC;
			s->failed = true;
			/* The file's path, as a roll's failure names it: "segment
			 * 7" alone sent the operator looking for the disk. */
			char path[4200];
			if (seg_path(s, a->no, "log", path, sizeof path))
				return thoth_error_io(e, "append to segment %" PRIu64 " in %s", a->no,
						      cx_path_brief(s->dir, "append to segment 18446744073709551615 in ",
								    (char[CX_PATH_BRIEF]){ 0 }));
			return thoth_error_io(e, "append to %s", cx_path_brief(path, "append to ", (char[CX_PATH_BRIEF]){ 0 }));
		}
		done += (size_t)w;
	}
	return 0;
}

int cx_store_stream_create(cx_store_t *s, const char *name, size_t len, uint32_t budget_ms,
			   uint64_t now_rt, uint32_t *id)
{
	if (s->failed)
		return THOTH_E_IO;
	if (!cx_name_valid(name, len))
		return THOTH_E_INVAL;
	if (!cx_store_stream_find(s, name, len, id))
		return THOTH_E_EXISTS;
	uint8_t payload[CX_STREAM_PAYLOAD_FIXED + 64];
	uint32_t nid = (uint32_t)s->nstreams + 1;
	cx_put32(payload, nid);
	cx_put32(payload + 4, budget_ms);
	memcpy(payload + CX_STREAM_PAYLOAD_FIXED, name, len);
	cx_rec_t rec = { .len = (uint32_t)(CX_STREAM_PAYLOAD_FIXED + len), .lsn = s->next_lsn, .seq = nid,
			 .time_ns = now_rt, .stream = 0, .type = CX_REC_STREAM, .flags = CX_REC_F_SYNC,
			 .payload = payload };
	int r = write_records(s, &rec, 1);
	if (r)
		return r;
	if ((r = stream_add(s, name, len, nid, budget_ms)))
		return r;
	s->streams[nid - 1].create_lsn = rec.lsn;
	seg_t *a = &s->segs[s->nsegs - 1];
	a->size += cx_rec_size(rec.len);
	a->last_lsn = s->next_lsn++;
	s->written += cx_rec_size(rec.len);
	*id = nid;
	return 0;
}

int cx_store_append(cx_store_t *s, uint32_t stream, const cx_iov_t *recs, size_t n, uint16_t flags,
		    uint64_t now_rt, uint64_t *first_seq)
{
	if (s->failed)
		return THOTH_E_IO;
	stream_t *st = stream_get(s, stream);
	if (!st)
		return THOTH_E_NOT_FOUND;
	if (!n)
		return THOTH_E_INVAL;
	cx_rec_t small[16], *rr = n <= 16 ? small : malloc(n * sizeof *rr);
	if (!rr)
		return THOTH_E_NOMEM;
	uint64_t t = now_rt > st->last_time ? now_rt : st->last_time;
	size_t total = 0;
	int r = 0;
	for (size_t k = 0; k < n; k++) {
		if (recs[k].len > CX_REC_MAX) {
			r = THOTH_E_TOO_LARGE;
			goto out;
		}
		rr[k] = (cx_rec_t){ .len = (uint32_t)recs[k].len, .lsn = s->next_lsn + k,
				    .seq = st->base + st->n + 1 + k, .time_ns = t, .stream = stream,
				    .type = CX_REC_DATA, .flags = flags, .payload = recs[k].data };
		total += cx_rec_size(recs[k].len);
	}
	if (total > s->segment_bytes - CX_SEG_HDR) {
		r = THOTH_E_TOO_LARGE;
		goto out;
	}
	if ((r = write_records(s, rr, n)))
		goto out;
	uint32_t seg = (uint32_t)(s->nsegs - 1);
	seg_t *a = &s->segs[seg];
	*first_seq = st->base + st->n + 1;
	for (size_t k = 0; k < n; k++) {
		if ((r = entry_add(st, rr[k].lsn, t, seg, (uint32_t)a->size, rr[k].len))) {
			s->failed = true;       /* the file has it, the index not: stop */
			goto out;
		}
		a->size += cx_rec_size(rr[k].len);
	}
	s->next_lsn += n;
	a->last_lsn = s->next_lsn - 1;
	s->written += total;
out:
	if (rr != small)
		free(rr);
	return r;
}

uint64_t cx_store_last_lsn(const cx_store_t *s)
{
	return s->next_lsn - 1;
}

uint64_t cx_store_written_bytes(const cx_store_t *s)
{
	return s->written;
}

uint32_t cx_store_segments(const cx_store_t *s)
{
	return (uint32_t)s->nsegs;
}

size_t cx_store_dirty(const cx_store_t *s, cx_dirty_t *out, size_t cap, uint64_t *dir)
{
	size_t n = 0;
	*dir = 0;
	for (size_t k = 0; k < s->nsegs; k++) {
		const seg_t *sg = &s->segs[k];
		if (!sg->dir_synced)
			*dir = s->segs[s->nsegs - 1].no;
		if (sg->size > sg->synced && n < cap)
			out[n++] = (cx_dirty_t){ .seg = (uint32_t)k, .segno = sg->no, .fd = sg->fd, .upto = sg->size };
	}
	return n;
}

int cx_store_dirfd(const cx_store_t *s)
{
	return s->dirfd;
}

const char *cx_store_dir(const cx_store_t *s)
{
	return s->dir;
}

int cx_store_seg_name(const cx_store_t *s, uint64_t segno, char *out, size_t cap)
{
	return seg_path(s, segno, "log", out, cap);
}

void cx_store_synced(cx_store_t *s, const cx_dirty_t *d, size_t n, uint64_t dir)
{
	for (size_t k = 0; k < n; k++) {
		seg_t *sg = seg_by_no(s, d[k].segno);
		if (sg && d[k].upto > sg->synced)
			sg->synced = d[k].upto;
	}
	/* Only the segments the directory's fsync was asked for: one rolled
	 * to while the epoch ran (an append does not wait for it) may have
	 * been created after that fsync, its name not durable yet; marking it
	 * too let the next epoch acknowledge its records with no directory
	 * fsync at all. */
	for (size_t k = 0; k < s->nsegs; k++)
		if (s->segs[k].no <= dir)
			s->segs[k].dir_synced = true;
	for (size_t k = 0; k + 1 < s->nsegs; k++) {
		seg_t *sg = &s->segs[k];
		if (sg->sealed && !sg->idx_done && sg->synced == sg->size)
			idx_write(s, (uint32_t)k);
	}
	if (s->retain_bytes && !s->failed)
		compact(s);
	fds_trim(s, NULL, true);
}

int cx_store_locate(cx_store_t *s, uint32_t stream, uint64_t seq, cx_loc_t *loc)
{
	const stream_t *st = stream_get(s, stream);
	if (!st)
		return THOTH_E_NOT_FOUND;
	if (seq <= st->base || seq > st->base + st->n)
		return THOTH_E_NOT_FOUND;
	const entry_t *e = &st->ent[seq - st->base - 1];
	seg_t *sg = &s->segs[e->seg];
	sg->used = ++s->use_clock;
	if (sg->fd < 0) {       /* closed by fds_trim: reopened, another closed */
		char path[4200];
		if (seg_path(s, sg->no, "log", path, sizeof path))
			return THOTH_E_INVAL;
		sg->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (sg->fd < 0)
			return thoth_error_io(errno, "reopen %s to read",
					      cx_path_brief(path, "reopen  to read", (char[CX_PATH_BRIEF]){ 0 }));
		fds_trim(s, sg, true);
	}
	*loc = (cx_loc_t){ .fd = sg->fd, .off = e->off, .lsn = e->lsn, .seq = seq,
			   .time_ns = e->time_ns, .len = e->len, .stream = stream };
	return 0;
}

uint64_t cx_store_seq_at_time(const cx_store_t *s, uint32_t stream, uint64_t t_ns)
{
	const stream_t *st = stream_get(s, stream);
	if (!st)
		return 1;
	size_t lo = 0, hi = st->n;      /* first index with time >= t */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (st->ent[mid].time_ns < t_ns)
			lo = mid + 1;
		else
			hi = mid;
	}
	return st->base + lo + 1;
}

uint64_t cx_store_next_seq(const cx_store_t *s, uint32_t stream)
{
	const stream_t *st = stream_get(s, stream);
	return st ? st->base + st->n + 1 : 1;
}

uint64_t cx_store_first_seq(const cx_store_t *s, uint32_t stream)
{
	const stream_t *st = stream_get(s, stream);
	return st ? st->base + 1 : 1;
}

int cx_store_read_at(const cx_loc_t *loc, uint8_t *buf, cx_rec_t *rec, bool *miss)
{
	size_t size = cx_rec_size(loc->len);
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	*miss = false;
	/* RWF_NOWAIT: served only from the page cache.  EAGAIN means the read
	 * must go to the device, which is then awake: a writeback window. */
	ssize_t got = preadv2(loc->fd, &iov, 1, (off_t)loc->off, RWF_NOWAIT);
	if (got < 0 && (errno == EAGAIN || errno == EOPNOTSUPP || errno == EINVAL)) {
		*miss = errno == EAGAIN;
		got = pread(loc->fd, buf, size, (off_t)loc->off);
	} else if (got >= 0 && (size_t)got < size) {
		*miss = true;
		got = pread(loc->fd, buf, size, (off_t)loc->off);
	}
	if (got < 0)
		return thoth_error_io(errno, "read record");   /* the read, not the record */
	size_t rs;
	if ((size_t)got < size || cx_rec_parse(buf, size, loc->lsn, rec, &rs) != CX_OK ||
	    rec->seq != loc->seq || rec->stream != loc->stream) {
		(void)thoth_error_io(EIO, "record %" PRIu64 " fails its checksum", loc->seq);
		return THOTH_E_CORRUPT;
	}
	return 0;
}
