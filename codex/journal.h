/*
 * codex/journal.h - codex's journal: the store (store.h) plus durability
 * classes, group commit and writeback aligned to awake windows (wb.h).
 *
 * Thread-safe: any number of threads append and read at once (codex's
 * serving threads; the benchmark's writers).  One committer thread owns a
 * thoth_loop (io_uring backend when the kernel has it) on which every
 * fdatasync is submitted, a batch per epoch (one per dirty segment, plus the
 * directory after a segment roll).
 *
 *   sync      the call returns after an epoch covering the record completed;
 *             syncs that arrive while one epoch runs, or within the group
 *             window (<= 2 ms) of the first, share the next one.
 *   deferred  the record is written to its segment (the page cache) before
 *             the call returns, so it survives a crash of codex (SIGKILL);
 *             it becomes durable against power loss in the next epoch,
 *             at the latest when its loss budget runs out.
 */
#ifndef CODEX_JOURNAL_H
#define CODEX_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "wb.h"

typedef struct cx_journal cx_journal_t;

typedef enum cx_dur {
	CX_DUR_SYNC = 0,
	CX_DUR_DEFERRED = 1,
} cx_dur_t;

#define CX_BUDGET_MAX_MS (24u * 3600u * 1000u)
#define CX_BUDGET_DEFAULT_MS 60000u
#define CX_GC_WINDOW_MAX_US 2000u

typedef struct cx_journal_config {
	const char *data_dir;
	uint64_t segment_bytes;         /* 0 = 64 MiB */
	uint32_t gc_window_us;          /* group window, 0 = 1000, at most 2000 */
	const char *pm_element;         /* disk element to lease opportunistically; NULL = none */
	const char *runtime_dir;        /* thothd's, for the PM broker (NULL: the default rule) */
	bool epoll;                     /* the committer's loop on epoll (tests of both backends) */
	uint64_t retain_bytes;          /* retention (store.h); 0 = keep everything */
	uint64_t cut_budget_bytes;      /* cut files kept with retention (store.h; 0: segment_bytes) */
	/* Called once (journal lock released) when an I/O error stops the
	 * journal, with why (the call and errno); NULL: nothing said. */
	void (*on_failure)(void *arg, const char *why);
	void *on_failure_arg;
} cx_journal_config_t;

typedef struct cx_epoch {
	uint64_t at_ns;                 /* CLOCK_REALTIME when it completed */
	uint64_t duration_ns;
	uint64_t deferred_bytes;        /* deferred bytes it made durable */
	uint32_t group;                 /* sync appends it acknowledged */
	uint32_t fsyncs;                /* fdatasync/fsync calls in its batch */
	cx_wb_reason_t reason;
} cx_epoch_t;

#define CX_RECENT_EPOCHS 32
#define CX_GROUP_BUCKETS 8           /* 0, 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+ */

/* Stats.failure: room for "I/O error: " + thoth_error_info_t.what (up to
 * 159: a call and a path under the data dir) + ": EFBIG (File too large)":
 * at 160 a long data dir cut off the errno, the part that says why. */
#define CX_FAILURE_LEN 384

typedef struct cx_journal_stats {
	uint64_t pending_bytes, pending_records, oldest_pending_age_ns;
	uint64_t epochs, epochs_by_reason[CX_WB_NREASONS];
	uint64_t group_hist[CX_GROUP_BUCKETS];
	uint32_t group_max;
	uint64_t appends_sync, appends_deferred, records, bytes, reads, read_misses;
	uint64_t durable_lsn, last_lsn;
	uint32_t segments;
	uint64_t segment_bytes_now;     /* bytes in segment files */
	cx_compact_stats_t compact;     /* retention: compactions and what they dropped */
	const char *backend;            /* the committer loop's: "uring" or "epoll" */
	bool pm_leased, pm_awake;       /* opportunistic lease held / satisfied now */
	char pm_note[96];               /* why there is no lease, when there is none */
	uint32_t pm_tries;              /* connections to thothd tried for the lease (tests) */
	int failed;                     /* 0, or the error that stopped the journal */
	char failure[CX_FAILURE_LEN];   /* ... said in words ("" while it runs) */
	cx_epoch_t recent[CX_RECENT_EPOCHS];
	size_t n_recent;                /* newest last */
} cx_journal_stats_t;

int cx_journal_open(const cx_journal_config_t *cfg, cx_journal_t **out, cx_recovery_t *rep,
		    char *why, size_t why_len);
/* Stops the committer after a last epoch for anything pending (reason
 * shutdown), closes everything. */
void cx_journal_close(cx_journal_t *j);

/* Create a stream (durable on return).  THOTH_E_EXISTS, THOTH_E_INVAL (bad
 * name), THOTH_E_IO. */
int cx_journal_create(cx_journal_t *j, const char *name, size_t len, uint32_t budget_ms);

/* Append N records.  BUDGET_MS (deferred only; 0 = the stream's) is the
 * loss budget.  THOTH_E_NOT_FOUND (no such stream), THOTH_E_TOO_LARGE,
 * THOTH_E_INVAL (bad class, budget, no records), THOTH_E_IO. */
int cx_journal_append(cx_journal_t *j, const char *name, size_t len, const cx_iov_t *recs, size_t n,
		      cx_dur_t dur, uint32_t budget_ms, uint64_t *first_seq);

/* Records of a stream from FROM_SEQ on (to TO_SEQ inclusive, 0 = the end;
 * a FROM_SEQ that retention dropped starts at the oldest retained),
 * at most MAX_RECORDS and about MAX_BYTES of payload (at least one record):
 * FN(ARG, rec) for each, in order.  *NEXT_SEQ: where to continue.  A record
 * that does not read back intact ends the answer before it; when it is the
 * first, THOTH_E_CORRUPT (the thread's last error, thoth_last_error, says
 * why): the journal runs on, and FROM_SEQ + 1 reads past it.  A read that
 * failed (pread's error, not the record's) is THOTH_E_IO: try it again. */
typedef void (*cx_read_fn)(void *arg, const cx_rec_t *rec);
int cx_journal_read(cx_journal_t *j, const char *name, size_t len, uint64_t from_seq, uint64_t to_seq,
		    size_t max_records, size_t max_bytes, cx_read_fn fn, void *arg, uint64_t *next_seq);
/* The sequence range [first, end) of records with FROM_NS <= time < TO_NS. */
int cx_journal_time_range(cx_journal_t *j, const char *name, size_t len, uint64_t from_ns,
			  uint64_t to_ns, uint64_t *first_seq, uint64_t *end_seq);

/* An awake window seen from outside (tests, the benchmark's trace). */
void cx_journal_note_awake(cx_journal_t *j, cx_wb_reason_t why);

void cx_journal_stats(cx_journal_t *j, cx_journal_stats_t *out, cx_stream_info_t *streams,
		      size_t cap, size_t *n_streams);

#endif
