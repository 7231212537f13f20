/*
 * codex/wb.c - the writeback policy's bookkeeping (wb.h).
 */
#include "wb.h"

#include <stdlib.h>

#include "thoth/error.h"

static const char *const names[CX_WB_NREASONS] = {
	"none", "sync", "budget", "pm-awake", "read-miss", "shutdown", "create",
};

const char *cx_wb_reason_name(cx_wb_reason_t r)
{
	return r < CX_WB_NREASONS ? names[r] : "?";
}

void cx_wb_init(cx_wb_t *w)
{
	*w = (cx_wb_t){ 0 };
}

void cx_wb_free(cx_wb_t *w)
{
	free(w->q);
	free(w->times);
	*w = (cx_wb_t){ 0 };
}

int cx_wb_add(cx_wb_t *w, uint64_t lsn, uint64_t now_ns, uint64_t budget_ns, uint64_t bytes,
	      uint64_t records)
{
	if (w->head + w->n == w->cap) {
		if (w->head) {          /* compact first */
			for (size_t k = 0; k < w->n; k++) {
				w->q[k] = w->q[w->head + k];
				w->times[k] = w->times[w->head + k];
			}
			w->head = 0;
		}
		if (w->n == w->cap) {
			size_t cap = w->cap ? 2 * w->cap : 64;
			cx_wb_item_t *q = realloc(w->q, cap * sizeof *q);
			if (!q)
				return THOTH_E_NOMEM;
			w->q = q;
			uint64_t *t = realloc(w->times, cap * sizeof *t);
			if (!t)
				return THOTH_E_NOMEM;
			w->times = t;
			w->cap = cap;
		}
	}
	size_t i = w->head + w->n++;
	w->q[i] = (cx_wb_item_t){ .lsn = lsn, .due_ns = now_ns + budget_ns - cx_wb_slack(budget_ns),
				  .deadline_ns = now_ns + budget_ns, .bytes = bytes,
				  .records = records };
	w->times[i] = now_ns;
	if (w->n == 1)
		w->oldest_ns = now_ns;
	w->bytes += bytes;
	w->records += records;
	return 0;
}

void cx_wb_flushed(cx_wb_t *w, uint64_t lsn)
{
	while (w->n && w->q[w->head].lsn <= lsn) {
		w->bytes -= w->q[w->head].bytes;
		w->records -= w->q[w->head].records;
		w->head++;
		w->n--;
	}
	if (!w->n) {
		w->head = 0;
		w->bytes = 0;
		w->records = 0;
		w->oldest_ns = 0;
	} else {
		w->oldest_ns = w->times[w->head];
	}
}

bool cx_wb_pending(const cx_wb_t *w)
{
	return w->n > 0;
}

uint64_t cx_wb_deadline(const cx_wb_t *w)
{
	uint64_t d = UINT64_MAX;
	for (size_t k = 0; k < w->n; k++)
		if (w->q[w->head + k].deadline_ns < d)
			d = w->q[w->head + k].deadline_ns;
	return d;
}

void cx_wb_window(const cx_wb_t *w, uint64_t *due_ns, uint64_t *deadline_ns)
{
	uint64_t due = UINT64_MAX, dl = UINT64_MAX;
	for (size_t k = 0; k < w->n; k++) {
		const cx_wb_item_t *it = &w->q[w->head + k];
		if (it->due_ns < due)
			due = it->due_ns;
		if (it->deadline_ns < dl)
			dl = it->deadline_ns;
	}
	*due_ns = due;
	*deadline_ns = dl;
}

uint64_t cx_wb_slack(uint64_t budget_ns)
{
	/* 1/16 of the budget, at most 1 s: the epoch lands where the loop (and,
	 * through its per-boot grid, other processes) wakes anyway, never
	 * after the deadline. */
	uint64_t s = budget_ns / 16;
	return s > 1000000000ull ? 1000000000ull : s;
}

bool cx_wb_should_flush(const cx_wb_t *w, cx_wb_reason_t ev, uint64_t now_ns)
{
	switch (ev) {
	case CX_WB_SYNC:
	case CX_WB_CREATE:
		return true;
	case CX_WB_PM_AWAKE:
	case CX_WB_READ_MISS:
	case CX_WB_SHUTDOWN:
		return w->n > 0;
	case CX_WB_BUDGET: {
		uint64_t due, dl;
		cx_wb_window(w, &due, &dl);
		return due != UINT64_MAX && now_ns >= due;
	}
	default:
		return false;
	}
}
