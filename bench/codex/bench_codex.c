/*
 * bench_codex - codex's writeback alignment and sync throughput (PM-4).
 *
 *   bench_codex [DIR]     (the stores go in a new DIR/bench-codex-XXXXXX, removed at
 *                          the end; DIR defaults to .;
 *                          BENCH_CODEX_SECONDS per throughput run, default 1.5;
 *                          BENCH_CODEX_REPS runs per point, median printed, default 3)
 *
 * Part 1, flush epochs ("disk wake-ups"), one run of a 10-minute trace
 * REPLAYED ON A SIMULATED CLOCK: 5 services append a ~100-byte deferred
 * record every U(1, 10) s with a 60 s loss budget.  codex's epochs come
 * from the real writeback policy (codex/wb.c, the same code the service
 * runs) driving the real store: every epoch is a real fdatasync of the
 * segment, counted.  The baselines are models of the kernel's behaviour
 * on the same trace (no codex code): fsync per write; Linux default
 * writeback (flusher every 5 s writing back data dirty >= 30 s: page
 * granularity, which is the ">= 12/min while dirty" of the issue, and per
 * inode, one file per service, which is what mainline does with
 * dirtied_when); laptop mode (a flush of everything 5 s after any disk I/O,
 * the flush itself being I/O, dirty_expire 60 s for the same loss budget).
 * A second trace adds another service's disk activity (a read or sync
 * every U(20, 60) s): codex then flushes only inside those awake windows.
 *
 * Part 2, sync appends per second at 1, 8, 64 writer threads: codex's
 * journal (group commit, in-process: no IPC), SQLite in WAL mode with
 * synchronous=FULL (one connection per writer, one INSERT per transaction)
 * and LMDB (one write transaction per record, default durable commit), all
 * in DIR on the same disk in the same run.  Median of REPS runs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "store.h"
#include "wb.h"

#ifdef CX_HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef CX_HAVE_LMDB
#include <lmdb.h>
#endif

#define S 1000000000ull

static char base[512];

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * S + (uint64_t)ts.tv_nsec;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

/* Remove PATH and what it holds (only the bench's own directories: BASE is
 * one it made).  nftw, not `rm -rf` through a shell: a quote in DIR would
 * have been shell syntax. */
static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- part 1: the trace --------------------------------------------------- */

typedef struct ev {
	uint64_t t;
	int kind;               /* 0 deferred append by service `who`, 1 other activity (disk awake) */
	int who;
} ev_t;

static int ev_cmp(const void *a, const void *b)
{
	const ev_t *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

static size_t make_trace(ev_t *ev, size_t cap, unsigned seed, bool activity)
{
	size_t n = 0;
	for (int who = 0; who < 5; who++)
		for (uint64_t t = (uint64_t)(rand_r(&seed) % 10000) * 1000000ull; t < 600 * S && n < cap;
		     t += S + (uint64_t)(rand_r(&seed) % 9001) * 1000000ull)
			ev[n++] = (ev_t){ .t = t, .kind = 0, .who = who };
	if (activity)
		for (uint64_t t = 20 * S + (uint64_t)(rand_r(&seed) % 40000) * 1000000ull; t < 600 * S && n < cap;
		     t += 20 * S + (uint64_t)(rand_r(&seed) % 40001) * 1000000ull)
			ev[n++] = (ev_t){ .t = t, .kind = 1 };
	qsort(ev, n, sizeof *ev, ev_cmp);
	return n;
}

typedef struct result {
	uint64_t epochs, extra;         /* extra: epochs outside another service's awake moment */
	uint64_t max_loss_ns;           /* longest a deferred record waited */
} result_t;

static bool in_window(const ev_t *ev, size_t n, uint64_t t)
{
	for (size_t k = 0; k < n; k++)
		if (ev[k].kind == 1 && ev[k].t <= t && t - ev[k].t < S / 2)
			return true;
	return false;
}

/* codex: the real policy and the real store on the simulated clock. */
static result_t run_codex(const ev_t *ev, size_t n, const char *dir, uint64_t *fsyncs)
{
	result_t res = { 0 };
	cx_store_t *st;
	char why[300];
	rm_rf(dir);
	cx_store_config_t cfg = { .dir = dir };
	if (cx_store_open(&cfg, &st, NULL, why, sizeof why)) {
		fprintf(stderr, "bench_codex: %s\n", why);
		exit(1);
	}
	uint32_t ids[5];
	for (int k = 0; k < 5; k++) {
		char name[8];
		snprintf(name, sizeof name, "svc%d", k);
		cx_store_stream_create(st, name, strlen(name), 60000, 0, &ids[k]);
	}
	cx_dirty_t d[8];
	uint64_t dirflag;
	size_t nd = cx_store_dirty(st, d, 8, &dirflag);
	cx_store_synced(st, d, nd, dirflag);
	cx_wb_t wb;
	cx_wb_init(&wb);
	uint64_t oldest_append = 0;
	char rec[100];
	memset(rec, 'r', sizeof rec);
	size_t i = 0;
	*fsyncs = 0;
	for (;;) {
		/* the next thing to happen: the next trace event, or the budget timer */
		uint64_t due, dl;
		cx_wb_window(&wb, &due, &dl);
		uint64_t next_ev = i < n ? ev[i].t : UINT64_MAX;
		if (next_ev == UINT64_MAX && due == UINT64_MAX)
			break;
		cx_wb_reason_t why_flush = CX_WB_NONE;
		uint64_t now;
		if (due <= next_ev) {
			/* the timer fires in [due, deadline]: at the latest point, as the
			 * loop's timer grid lets it; the policy flushes from `due` on */
			now = due;
			if (cx_wb_should_flush(&wb, CX_WB_BUDGET, now))
				why_flush = CX_WB_BUDGET;
		} else {
			now = next_ev;
			const ev_t *e = &ev[i++];
			if (e->kind == 0) {
				uint64_t seq;
				cx_iov_t v = { rec, sizeof rec };
				cx_store_append(st, ids[e->who], &v, 1, 0, now, &seq);
				cx_wb_add(&wb, cx_store_last_lsn(st), now, 60 * S, sizeof rec, 1);
				if (wb.n == 1)
					oldest_append = now;
			} else if (cx_wb_should_flush(&wb, CX_WB_PM_AWAKE, now)) {
				why_flush = CX_WB_PM_AWAKE;
			}
		}
		if (why_flush == CX_WB_NONE)
			continue;
		nd = cx_store_dirty(st, d, 8, &dirflag);
		for (size_t k = 0; k < nd; k++) {
			if (fdatasync(d[k].fd))
				perror("fdatasync");
			(*fsyncs)++;
		}
		cx_store_synced(st, d, nd, dirflag);
		if (now - oldest_append > res.max_loss_ns)
			res.max_loss_ns = now - oldest_append;
		cx_wb_flushed(&wb, cx_store_last_lsn(st));
		res.epochs++;
		if (!in_window(ev, n, now))
			res.extra++;
	}
	cx_wb_free(&wb);
	cx_store_close(st);
	rm_rf(dir);
	return res;
}

static result_t run_fsync_each(const ev_t *ev, size_t n)
{
	result_t r = { 0 };
	for (size_t k = 0; k < n; k++)
		if (ev[k].kind == 0) {
			r.epochs++;
			r.extra += !in_window(ev, n, ev[k].t);
		}
	return r;
}

/* Linux default: the flusher every 5 s writes back what is dirty >= EXPIRE.
 * PER_INODE: one file per service, expiry by the file's first dirtying
 * (mainline's dirtied_when); else per page (each append its own page). */
static result_t run_linux(const ev_t *ev, size_t n, bool per_inode, uint64_t expire)
{
	result_t r = { 0 };
	uint64_t inode_dirty[5] = { 0 };
	bool inode_is_dirty[5] = { false };
	uint64_t *pages = malloc(n * sizeof *pages);
	size_t np = 0, head = 0, i = 0;
	for (uint64_t tick = 5 * S; tick <= 700 * S; tick += 5 * S) {
		for (; i < n && ev[i].t <= tick; i++) {
			if (ev[i].kind)
				continue;
			if (per_inode) {
				if (!inode_is_dirty[ev[i].who]) {
					inode_is_dirty[ev[i].who] = true;
					inode_dirty[ev[i].who] = ev[i].t;
				}
			} else {
				pages[np++] = ev[i].t;
			}
		}
		bool wrote = false;
		if (per_inode) {
			for (int k = 0; k < 5; k++)
				if (inode_is_dirty[k] && tick - inode_dirty[k] >= expire) {
					inode_is_dirty[k] = false;
					wrote = true;
				}
		} else {
			while (head < np && tick - pages[head] >= expire) {
				head++;
				wrote = true;
			}
		}
		if (wrote) {
			r.epochs++;
			r.extra += !in_window(ev, n, tick);
		}
	}
	free(pages);
	return r;
}

/* Laptop mode: any disk I/O arms a flush of everything dirty 5 s later
 * (the flush is I/O too); with no I/O, dirty data waits for dirty_expire
 * (60 s here: the same loss budget as codex's). */
static result_t run_laptop(const ev_t *ev, size_t n)
{
	result_t r = { 0 };
	uint64_t first_dirty = 0, flush_at = UINT64_MAX;
	bool dirty = false;
	size_t i = 0;
	for (uint64_t t = 0; t <= 700 * S; t += S / 10) {
		for (; i < n && ev[i].t <= t; i++) {
			if (ev[i].kind == 0 && !dirty) {
				dirty = true;
				first_dirty = ev[i].t;
			}
			if (ev[i].kind == 1 && flush_at == UINT64_MAX)
				flush_at = ev[i].t + 5 * S;    /* another service's disk I/O */
		}
		bool due = dirty && (t >= flush_at || t - first_dirty >= 60 * S);
		if (t >= flush_at && !dirty)
			flush_at = UINT64_MAX;
		if (due) {
			dirty = false;
			r.epochs++;
			r.extra += !in_window(ev, n, t);
			flush_at = t + 5 * S;           /* the writeback was I/O: laptop_io_completion */
		}
	}
	return r;
}

static void part1(void)
{
	static ev_t ev[8192];
	printf("flush epochs over a 10-minute trace (5 services, a deferred append every U(1,10) s each,\n"
	       "60 s budget), REPLAYED ON A SIMULATED CLOCK; codex = the real policy + real store\n"
	       "(each epoch a real fdatasync); the others are models of the kernel on the same trace.\n\n");
	for (int activity = 0; activity < 2; activity++) {
		size_t n = make_trace(ev, 8192, 42, activity);
		size_t appends = 0, windows = 0;
		for (size_t k = 0; k < n; k++)
			appends += ev[k].kind == 0, windows += ev[k].kind == 1;
		char dir[700];
		snprintf(dir, sizeof dir, "%s/wb", base);
		uint64_t fsyncs;
		result_t cx = run_codex(ev, n, dir, &fsyncs);
		result_t each = run_fsync_each(ev, n);
		result_t lp = run_linux(ev, n, false, 30 * S);
		result_t li = run_linux(ev, n, true, 30 * S);
		result_t lap = run_laptop(ev, n);
		printf("trace %s: %zu appends%s\n", activity ? "B (with another service's disk activity)" : "A (no other activity)",
		       appends, activity ? "" : "");
		if (activity)
			printf("  (%zu awake moments of the disk caused by another service, every U(20,60) s)\n", windows);
		printf("  %-44s %8s %8s %14s\n", "policy", "epochs", "per min", "extra wake-ups");
		struct { const char *name; result_t r; } rows[] = {
			{ "codex (aligned, 60 s budget)", cx },
			{ "fsync per write", each },
			{ "Linux default, page expiry (flusher 5 s, 30 s)", lp },
			{ "Linux default, per-inode expiry (5 files)", li },
			{ "laptop mode (flush 5 s after I/O, expire 60 s)", lap },
		};
		for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++)
			printf("  %-44s %8" PRIu64 " %8.2f %14" PRIu64 "\n", rows[k].name, rows[k].r.epochs,
			       rows[k].r.epochs / 10.0, rows[k].r.extra);
		printf("  codex: %" PRIu64 " real fdatasyncs; longest wait of a deferred record %.1f s;\n"
		       "  ratio Linux default (page) / codex: %.1fx, fsync-per-write / codex: %.1fx, laptop / codex: %.1fx\n\n",
		       fsyncs, cx.max_loss_ns / 1e9, (double)lp.epochs / (double)(cx.epochs ? cx.epochs : 1),
		       (double)each.epochs / (double)(cx.epochs ? cx.epochs : 1),
		       (double)lap.epochs / (double)(cx.epochs ? cx.epochs : 1));
	}
}

/* ---- part 2: sync throughput ------------------------------------------------ */

typedef struct wctx {
	int engine, id;
	volatile int *stop;
	uint64_t done;
	void *h;                /* engine handle */
	char path[900];
} wctx_t;

static char payload[100];

static void *w_codex(void *arg)
{
	wctx_t *w = arg;
	char name[16];
	snprintf(name, sizeof name, "w%d", w->id);
	cx_iov_t v = { payload, sizeof payload };
	while (!*w->stop) {
		uint64_t seq;
		if (cx_journal_append(w->h, name, strlen(name), &v, 1, CX_DUR_SYNC, 0, &seq))
			break;
		w->done++;
	}
	return NULL;
}

#ifdef CX_HAVE_SQLITE
static void *w_sqlite(void *arg)
{
	wctx_t *w = arg;
	sqlite3 *db;
	if (sqlite3_open(w->path, &db) != SQLITE_OK)
		return NULL;
	sqlite3_busy_timeout(db, 60000);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "INSERT INTO log(stream, data) VALUES(?, ?)", -1, &st, NULL);
	while (!*w->stop) {
		sqlite3_bind_int(st, 1, w->id);
		sqlite3_bind_blob(st, 2, payload, sizeof payload, SQLITE_STATIC);
		int r = sqlite3_step(st);
		sqlite3_reset(st);
		if (r == SQLITE_DONE)
			w->done++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}
#endif

#ifdef CX_HAVE_LMDB
static void *w_lmdb(void *arg)
{
	wctx_t *w = arg;
	MDB_env *env = w->h;
	uint64_t seq = 0;
	while (!*w->stop) {
		MDB_txn *txn;
		MDB_dbi dbi;
		if (mdb_txn_begin(env, NULL, 0, &txn))
			break;
		mdb_dbi_open(txn, NULL, 0, &dbi);
		uint64_t key[2] = { (uint64_t)w->id, seq++ };
		MDB_val k = { sizeof key, key }, v = { sizeof payload, payload };
		if (mdb_put(txn, dbi, &k, &v, 0) || mdb_txn_commit(txn))
			break;
		w->done++;
	}
	return NULL;
}
#endif

static const char *const engines[] = { "codex (group commit)", "SQLite WAL synchronous=FULL", "LMDB (durable commit)" };

/* One run: records/s of ENGINE with N writers for SECS. */
static double run_tp(int engine, int nw, double secs, uint32_t *group_max, double *epochs_per_s)
{
	char dir[700];
	snprintf(dir, sizeof dir, "%s/tp", base);
	rm_rf(dir);
	mkdir(dir, 0700);
	void *h = NULL;
	cx_journal_t *j = NULL;
	char why[300];
	if (engine == 0) {
		/* BENCH_CODEX_WINDOW_US: the group window (default: codex's, 1000 us) */
		cx_journal_config_t cfg = { .data_dir = dir,
					    .gc_window_us = getenv("BENCH_CODEX_WINDOW_US") ?
						(uint32_t)atoi(getenv("BENCH_CODEX_WINDOW_US")) : 0 };
		if (cx_journal_open(&cfg, &j, NULL, why, sizeof why)) {
			fprintf(stderr, "bench_codex: %s\n", why);
			exit(1);
		}
		for (int k = 0; k < nw; k++) {
			char name[16];
			snprintf(name, sizeof name, "w%d", k);
			cx_journal_create(j, name, strlen(name), 0);
		}
		h = j;
	}
#ifdef CX_HAVE_SQLITE
	char dbpath[800];
	snprintf(dbpath, sizeof dbpath, "%s/log.db", dir);
	if (engine == 1) {
		sqlite3 *db;
		sqlite3_open(dbpath, &db);
		sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE log(id INTEGER PRIMARY KEY, stream INT, data BLOB);",
			     NULL, NULL, NULL);
		sqlite3_close(db);
	}
#else
	if (engine == 1)
		return -1;
#endif
#ifdef CX_HAVE_LMDB
	MDB_env *env = NULL;
	if (engine == 2) {
		mdb_env_create(&env);
		mdb_env_set_mapsize(env, 1ull << 30);
		mdb_env_set_maxreaders(env, 256);
		if (mdb_env_open(env, dir, 0, 0600)) {
			fprintf(stderr, "bench_codex: mdb_env_open failed\n");
			exit(1);
		}
		h = env;
	}
#else
	if (engine == 2)
		return -1;
#endif
	volatile int stop = 0;
	wctx_t *w = calloc((size_t)nw, sizeof *w);
	pthread_t *t = calloc((size_t)nw, sizeof *t);
	cx_journal_stats_t s0, s1;
	if (j)
		cx_journal_stats(j, &s0, NULL, 0, NULL);
	uint64_t t0 = mono();
	for (int k = 0; k < nw; k++) {
		w[k] = (wctx_t){ .engine = engine, .id = k, .stop = &stop, .h = h };
#ifdef CX_HAVE_SQLITE
		snprintf(w[k].path, sizeof w[k].path, "%s", dbpath);
#endif
		void *(*fn)(void *) = w_codex;
#ifdef CX_HAVE_SQLITE
		if (engine == 1)
			fn = w_sqlite;
#endif
#ifdef CX_HAVE_LMDB
		if (engine == 2)
			fn = w_lmdb;
#endif
		pthread_create(&t[k], NULL, fn, &w[k]);
	}
	nanosleep(&(struct timespec){ (time_t)secs, (long)((secs - (time_t)secs) * 1e9) }, NULL);
	stop = 1;
	uint64_t total = 0;
	for (int k = 0; k < nw; k++) {
		pthread_join(t[k], NULL);
		total += w[k].done;
	}
	double el = (double)(mono() - t0) / 1e9;
	if (j) {
		cx_journal_stats(j, &s1, NULL, 0, NULL);
		*group_max = s1.group_max;
		*epochs_per_s = (double)(s1.epochs - s0.epochs) / el;
		cx_journal_close(j);
	}
#ifdef CX_HAVE_LMDB
	if (env)
		mdb_env_close(env);
#endif
	free(w);
	free(t);
	rm_rf(dir);
	return (double)total / el;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void part2(void)
{
	double secs = getenv("BENCH_CODEX_SECONDS") ? atof(getenv("BENCH_CODEX_SECONDS")) : 1.5;
	int reps = getenv("BENCH_CODEX_REPS") ? atoi(getenv("BENCH_CODEX_REPS")) : 3;
	if (reps < 1 || reps > 15)
		reps = 3;
	memset(payload, 'p', sizeof payload);
	printf("sync appends of 100 bytes per second (median of %d runs of %.1f s), same disk (%s):\n", reps, secs, base);
	printf("  %-30s %12s %12s %12s\n", "engine", "1 writer", "8 writers", "64 writers");
	int engines_run = getenv("BENCH_CODEX_ONLY") ? 1 : 3;   /* codex alone (A/B of its settings) */
	double med[3][3] = { { 0 } };
	uint32_t gmax[3] = { 0 };
	double eps[3] = { 0 };
	static const int nws[3] = { 1, 8, 64 };
	for (int e = 0; e < engines_run; e++) {
		printf("  %-30s", engines[e]);
		for (int c = 0; c < 3; c++) {
			double v[15];
			for (int r = 0; r < reps; r++) {
				uint32_t g = 0;
				double ep = 0;
				v[r] = run_tp(e, nws[c], secs, &g, &ep);
				if (g > gmax[c])
					gmax[c] = g;
				if (e == 0)
					eps[c] = ep;
			}
			qsort(v, (size_t)reps, sizeof v[0], dcmp);
			med[e][c] = v[reps / 2];
			if (med[e][c] < 0)
				printf(" %12s", "not built");
			else
				printf(" %12.0f", med[e][c]);
			fflush(stdout);
		}
		printf("\n");
	}
	printf("  codex largest group commit: %u / %u / %u syncs; epochs/s %.0f / %.0f / %.0f\n", gmax[0], gmax[1],
	       gmax[2], eps[0], eps[1], eps[2]);
	for (int e = 1; e < engines_run; e++)
		if (med[e][0] > 0)
			printf("  codex / %s: %.2fx / %.2fx / %.2fx\n", engines[e], med[0][0] / med[e][0],
			       med[0][1] / med[e][1], med[0][2] / med[e][2]);
}

int main(int argc, char **argv)
{
	/* DIR is where the bench makes its own directory (and removes it at
	 * the end): removing DIR itself, as it did, would take whatever the
	 * user kept there; an option (--help, a typo) is not a DIR. */
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
		fprintf(help ? stdout : stderr,
			"usage: bench_codex [DIR]   (the stores go in a new DIR/bench-codex-XXXXXX,\n"
			"                           removed at the end; DIR defaults to .)\n");
		return help ? 0 : 2;
	}
	const char *dir = argc > 1 ? argv[1] : ".";
	if (snprintf(base, sizeof base, "%s/bench-codex-XXXXXX", dir) >= (int)sizeof base || !mkdtemp(base)) {
		fprintf(stderr, "bench_codex: cannot make a directory in %s: %s\n", dir,
			strlen(dir) + 20 > sizeof base ? "path too long" : strerror(errno));
		return 1;
	}
	if (!getenv("BENCH_CODEX_ONLY"))
		part1();
	part2();
	rm_rf(base);
	return 0;
}
