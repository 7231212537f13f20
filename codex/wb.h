/*
 * codex/wb.h - the writeback policy for deferred records (PM-4), pure:
 * every call takes the time, nothing here does I/O, so the service and the
 * simulated-clock benchmark run the same decisions.
 *
 * Deferred records are in the file (page cache) when acknowledged; they
 * are made durable (an "epoch": fdatasync of every dirty segment) only
 *   - when the disk is awake anyway: another client's `sync` append (its
 *     epoch covers them: same files), a read that missed the page cache,
 *     the disk's power element at its active level (the PM broker's
 *     opportunistic lease is satisfied), or
 *   - when the oldest pending record's loss budget runs out (a timer that
 *     fires inside [deadline - slack, deadline]);
 * never otherwise.
 */
#ifndef CODEX_WB_H
#define CODEX_WB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cx_wb_reason {
	CX_WB_NONE = 0,
	CX_WB_SYNC = 1,         /* a sync append needed an epoch; deferred data rode along */
	CX_WB_BUDGET = 2,       /* the oldest deferred record reached its loss budget */
	CX_WB_PM_AWAKE = 3,     /* the disk element is at its active level (PM broker) */
	CX_WB_READ_MISS = 4,    /* a read went to the disk */
	CX_WB_SHUTDOWN = 5,     /* orderly stop */
	CX_WB_CREATE = 6,       /* a stream was created (its record is synced) */
	CX_WB_NREASONS
} cx_wb_reason_t;

const char *cx_wb_reason_name(cx_wb_reason_t r);

typedef struct cx_wb_item {
	uint64_t lsn, due_ns, deadline_ns, bytes, records;   /* due = deadline - slack */
} cx_wb_item_t;

typedef struct cx_wb {
	cx_wb_item_t *q;                /* pending deferred writes, in lsn order */
	size_t head, n, cap;
	uint64_t bytes, records;
	uint64_t oldest_ns;             /* append time of the oldest pending write */
	uint64_t *times;                /* append times, parallel to q */
} cx_wb_t;

void cx_wb_init(cx_wb_t *w);
void cx_wb_free(cx_wb_t *w);
/* A deferred write of BYTES ending at LSN, appended at NOW with BUDGET_NS. */
int cx_wb_add(cx_wb_t *w, uint64_t lsn, uint64_t now_ns, uint64_t budget_ns, uint64_t bytes,
	      uint64_t records);
/* Everything up to LSN is durable. */
void cx_wb_flushed(cx_wb_t *w, uint64_t lsn);
bool cx_wb_pending(const cx_wb_t *w);
/* The earliest deadline of the pending writes (UINT64_MAX: none). */
uint64_t cx_wb_deadline(const cx_wb_t *w);
/* The budget timer's window: the earliest `due` and the smallest deadline
 * (UINT64_MAX: nothing pending).  An epoch anywhere in it keeps every
 * pending write within its budget. */
void cx_wb_window(const cx_wb_t *w, uint64_t *due_ns, uint64_t *deadline_ns);
/* The budget timer's slack: it fires in [deadline - slack, deadline]. */
uint64_t cx_wb_slack(uint64_t budget_ns);
/* Should an event at NOW start an epoch?  SYNC always; PM_AWAKE, READ_MISS,
 * SHUTDOWN when something is pending; BUDGET when the earliest deadline is
 * within its slack. */
bool cx_wb_should_flush(const cx_wb_t *w, cx_wb_reason_t ev, uint64_t now_ns);

#endif
