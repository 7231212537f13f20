/*
 * codex/store.h - segment files, the index and recovery (docs/CODEX.md).
 *
 * Not thread-safe: the journal (journal.h) serialises calls under its
 * mutex, except cx_store_read_at, which only preads an fd the store never
 * closes while open.  Appends go to the file at once (pwrite: the page
 * cache), durability is the caller's: cx_store_dirty lists what an
 * fdatasync must cover and cx_store_synced records that it did.
 */
#ifndef CODEX_STORE_H
#define CODEX_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct cx_store cx_store_t;

typedef struct cx_store_config {
	const char *dir;                /* created if missing */
	uint64_t segment_bytes;         /* roll after this many (0 = 64 MiB) */
	/* Retention: keep at least this many bytes of segments, dropping the
	 * oldest sealed, durable segments beyond it (0: keep everything).
	 * What a dropped segment held is retired by policy, never lost
	 * before it: docs/CODEX.md, "Retention and compaction". */
	uint64_t retain_bytes;
	/* With retain_bytes: the cut files (SEG.log.cut-OFFSET) kept, the
	 * oldest removed while theirs together pass it (0: segment_bytes).
	 * Their own budget: they never push records out of retention. */
	uint64_t cut_budget_bytes;
} cx_store_config_t;

typedef struct cx_recovery {
	uint32_t segments;              /* segment files kept */
	uint32_t indexed;               /* ... of which loaded from their index file */
	uint64_t records;               /* records recovered (all streams, meta included) */
	uint64_t truncated_bytes;       /* torn or corrupt tail cut off */
	uint64_t cut_kept_bytes;        /* ...of which copied aside first (SEG.log.cut-OFFSET) */
	uint64_t cut_lost_bytes;        /* ...of which a copy was tried and failed */
	int cut_keep_errno;             /* why a cut tail could not be kept (0: none failed) */
	uint32_t orphaned;              /* segments after a cut, renamed *.orphan */
	uint32_t removed;               /* empty or headerless last segments removed */
	uint32_t compacted;             /* segments a crash left behind a committed catalog, removed */
	uint64_t base_lsn;              /* the log starts here (1 until a compaction) */
	/* Cut files (SEG.log.cut-OFFSET) on the disk after recovery, this
	 * one's included: kept within their budget, removed oldest first. */
	uint32_t cut_files;
	uint64_t cut_file_bytes;
	/* Segments set aside as *.orphan on the disk after recovery (this
	 * one's and earlier ones'): kept with the cut files, in their budget. */
	uint32_t orphan_files;
	uint64_t orphan_file_bytes;
	/* Entries named like cut files that are not regular files (a
	 * directory, FIFO, symlink...): never opened or followed, not
	 * counted, left alone. */
	uint32_t cut_foreign;
} cx_recovery_t;

typedef struct cx_iov {
	const void *data;
	size_t len;
} cx_iov_t;

typedef struct cx_dirty {
	uint32_t seg;                   /* index in the store's segment list when listed */
	uint64_t segno;                 /* its number (indices move when a compaction drops segments) */
	int fd;
	uint64_t upto;                  /* bytes written when listed */
} cx_dirty_t;

typedef struct cx_loc {
	int fd;
	uint64_t off, lsn, seq, time_ns;
	uint32_t len, stream;
} cx_loc_t;

typedef struct cx_stream_info {
	char name[64];
	uint32_t id, budget_ms;
	uint64_t records, bytes;        /* retained */
	uint64_t first_seq;             /* the oldest retained (1 until a compaction dropped some) */
} cx_stream_info_t;

#define CX_PATH_BRIEF 160

typedef struct cx_compact_stats {
	uint64_t compactions;           /* catalogs committed */
	uint64_t segments, bytes, records;   /* dropped by them */
	uint64_t cut_files, cut_bytes;  /* cut files removed by retention */
	uint64_t orphan_files, orphan_bytes;    /* *.orphan segments removed by retention */
	uint32_t orphan_held;           /* *.orphan segments on the disk now (regular files only) */
	uint64_t orphan_held_bytes;
	uint32_t cut_held;              /* cut files on the disk now (regular files only) */
	uint64_t cut_held_bytes;
	uint64_t cut_budget_bytes;      /* what retention keeps of them */
	uint32_t cut_stuck;             /* ...of those held, ones retention could not remove */
	int cut_stuck_errno;            /* why (the last one's errno; 0: none) */
	/* "": retention removes segments; else why it stopped until codex
	 * restarts (a catalog commit's directory fsync failed): the call,
	 * the directory (cx_path_brief) and the errno. */
	char stopped[CX_PATH_BRIEF + 96];
} cx_compact_stats_t;

/* Crash-test points (tests/codex/test_codex_crash.c): when set, called at
 * each point so a test child can SIGKILL itself exactly there.  NULL in
 * the service. */
enum {
	CX_PT_APPEND_HALF = 1,          /* half of an append's bytes are in the file */
	CX_PT_ROLL_CREATED = 2,         /* the next segment file exists, header not yet written */
	CX_PT_ROLL_DONE = 3,            /* the new segment has its header, the old one is sealed */
	CX_PT_EPOCH_SUBMITTED = 4,      /* an epoch's fdatasyncs are queued */
	CX_PT_EPOCH_SYNCED = 5,         /* they completed; nothing acknowledged yet */
	CX_PT_COMPACT_CATALOG = 6,      /* a compaction's new catalog is durable as catalog.tmp */
	CX_PT_COMPACT_RENAMED = 7,      /* ... renamed into place, no segment removed yet */
	CX_PT_COMPACT_UNLINKED = 8,     /* ... the first dropped segment removed, not the others */
	CX_PT_N,
	/* Recovery's steps before it removes segments a committed catalog
	 * drops (test_codex_store's recovery crash test; not in the crash
	 * matrix's CX_PT_N: a round reaches them only when the one before
	 * was killed between a commit and its removals). */
	CX_PT_RECOVER_CATALOG = 16,     /* the catalog rewritten to catalog.tmp and fdatasync'ed */
	CX_PT_RECOVER_RENAMED = 17,     /* ... renamed over catalog, the directory fsync'ed */
	CX_PT_RECOVER_UNLINKED = 18,    /* ... the first dropped segment removed, not the others */
};
extern void (*cx_crash_hook)(int point);

int cx_store_open(const cx_store_config_t *cfg, cx_store_t **out, cx_recovery_t *rep, char *why,
		  size_t why_len);
void cx_store_close(cx_store_t *s);

/* Stream id by name, or THOTH_E_NOT_FOUND. */
int cx_store_stream_find(const cx_store_t *s, const char *name, size_t len, uint32_t *id);
/* Append the record that creates a stream (THOTH_E_EXISTS when it does). */
int cx_store_stream_create(cx_store_t *s, const char *name, size_t len, uint32_t budget_ms,
			   uint64_t now_rt, uint32_t *id);
uint32_t cx_store_stream_budget_ms(const cx_store_t *s, uint32_t id);
size_t cx_store_streams(const cx_store_t *s, cx_stream_info_t *out, size_t cap);

/* Append N records to STREAM in one write.  *FIRST_SEQ gets the first one's
 * sequence number.  THOTH_E_TOO_LARGE (a record over CX_REC_MAX),
 * THOTH_E_NOT_FOUND, THOTH_E_IO (the journal is then failed: nothing more
 * is accepted, as after a failed fdatasync). */
int cx_store_append(cx_store_t *s, uint32_t stream, const cx_iov_t *recs, size_t n, uint16_t flags,
		    uint64_t now_rt, uint64_t *first_seq);
uint64_t cx_store_last_lsn(const cx_store_t *s);
uint64_t cx_store_written_bytes(const cx_store_t *s);
uint32_t cx_store_segments(const cx_store_t *s);

/* What is written but not yet covered by an fdatasync: up to CAP segments
 * (the active one last), and in *DIR whether the directory needs an fsync
 * (a new segment file): 0 if not, else the newest segment's number, the
 * last one that fsync covers (a segment created while it runs is not). */
size_t cx_store_dirty(const cx_store_t *s, cx_dirty_t *out, size_t cap, uint64_t *dir);
int cx_store_dirfd(const cx_store_t *s);
/* The data directory, and the path of segment SEGNO in it (THOTH_E_INVAL
 * when CAP is too small): safe from any thread (the directory is fixed at
 * open), so the committer names a file whose fdatasync failed. */
const char *cx_store_dir(const cx_store_t *s);
int cx_store_seg_name(const cx_store_t *s, uint64_t segno, char *out, size_t cap);
/* PATH as an error names it after PREFIX (thoth_error_info_t.what holds
 * 160 bytes, filled from the start: a data dir over ~125 bytes cut the
 * file's name out of the error): a path that fits whole stays whole; a
 * longer one's middle is cut to "..." so that its head and its tail, the
 * file's name, survive.  Never inside a UTF-8 character.  OUT holds
 * CX_PATH_BRIEF bytes; returns it. */
#define cx_path_brief(path, prefix, out)                                                              \
	cx_path_fit(path, CX_PATH_BRIEF - sizeof(prefix) + 0 * sizeof(char[sizeof(prefix) <= 100 ? 1 : -1]), out)
const char *cx_path_fit(const char *path, size_t room, char out[CX_PATH_BRIEF]);
/* The listed fdatasyncs (and the directory's, if DIR: cx_store_dirty's
 * *DIR, covering the segments numbered up to it) completed.  Then,
 * with retention set, the oldest sealed durable segments beyond it are
 * compacted away (a new catalog, then the files): the disk is awake. */
void cx_store_synced(cx_store_t *s, const cx_dirty_t *d, size_t n, uint64_t dir);
/* 0, or THOTH_E_IO with WHY when a directory fsync of retention's failed
 * while a segment's name was not yet durable (store.c, names_at_risk):
 * the store takes no more appends and the journal must acknowledge
 * nothing written after the epoch that just completed. */
int cx_store_failure(const cx_store_t *s, char *why, size_t cap);
/* File descriptors of dropped segments stay open until this is called
 * with no reader between cx_store_locate and cx_store_read_at (a reader
 * holds a copied fd). */
void cx_store_release_retired(cx_store_t *s);
void cx_store_compact_stats(const cx_store_t *s, cx_compact_stats_t *out);
/* Bytes in segment files now (cut files not included: cx_store_compact_stats). */
uint64_t cx_store_bytes(const cx_store_t *s);

/* Where record SEQ of STREAM is (THOTH_E_NOT_FOUND past the end or
 * before the first retained).  A sealed segment's descriptor may have
 * been closed (at most CX_SEALED_OPEN_MAX, 16, sealed segments are kept
 * open): it is reopened (THOTH_E_IO when that fails), and the least
 * recently read one beyond the bound retired (cx_store_release_retired). */
int cx_store_locate(cx_store_t *s, uint32_t stream, uint64_t seq, cx_loc_t *loc);
/* Segment descriptors open now, retired ones not yet closed included. */
uint32_t cx_store_open_fds(const cx_store_t *s);
/* Sequence numbers of STREAM: the first with time >= T_NS, one past the last. */
uint64_t cx_store_seq_at_time(const cx_store_t *s, uint32_t stream, uint64_t t_ns);
uint64_t cx_store_next_seq(const cx_store_t *s, uint32_t stream);
/* The oldest retained sequence number of STREAM (1 until compaction). */
uint64_t cx_store_first_seq(const cx_store_t *s, uint32_t stream);

/* Read and verify the record at LOC into BUF (cx_rec_size(loc->len) bytes):
 * a copy that fails its checksum (or is short) is THOTH_E_CORRUPT, never
 * returned; a failed read is THOTH_E_IO (the record may be good).  *MISS
 * says the data was not in the page cache (the read woke the disk). */
int cx_store_read_at(const cx_loc_t *loc, uint8_t *buf, cx_rec_t *rec, bool *miss);

#endif
