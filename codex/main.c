/*
 * codex - the system's journal service (PM-4, docs/CODEX.md).
 *
 *   codex --runtime-dir DIR --data-dir DIR [--workers N] [--segment-bytes N]
 *         [--retain-bytes N] [--cut-bytes N]
 *         [--pm-element NAME] [--no-pm] [--group-window-us N]
 *
 * Serves thoth.codex.Codex (idl/codex.tidl) on shared-memory channels.
 * Handlers answer when the call is done, and a `sync` append is done after
 * its fdatasync, so codex serves from N threads (default 8), each with its
 * own loop and channel socket, each registered with thothd as an instance
 * of "codex" (the registry hands them out round-robin): syncs from clients
 * on different threads wait together and share one group commit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "codex.thoth.h"
#include "journal.h"
#include "thoth/channel.h"
#include "thoth/loop.h"
#include "thoth/service.h"
#include "thoth/trace.h"
#include "thoth/version.h"

#define MAX_WORKERS 64
#define READ_MAX_BYTES (1u << 20)
#define READ_MAX_RECORDS 1024u

typedef struct worker {
	int index;
	pthread_t thr;
	thoth_loop_t *loop;
	thoth_chan_server_t *srv;
	thoth_service_t *svc;
	char sock[108];
	int stop_fd;                    /* the main thread asks the worker's loop to stop */
	bool registered;                /* thothd held this instance once (its loop thread's) */
	/* what a read or stats response points at until it is encoded */
	thoth_codex_Record_t recs[READ_MAX_RECORDS];
	uint8_t *data;
	size_t data_len;
	uint32_t nrecs;
	cx_stream_info_t streams[256];
	thoth_codex_StreamInfo_t sinfo[256];
	thoth_codex_Epoch_t epochs[CX_RECENT_EPOCHS];
	uint64_t by_reason[CX_WB_NREASONS], hist[CX_GROUP_BUCKETS];
	cx_journal_stats_t st;
	uint64_t last_unreadable;       /* the record whose damage was logged last */
} worker_t;

static cx_journal_t *journal;
/* A registration thothd refused ends codex, whether it never held it or
 * held it before (on_state): the first refusal's reason, whether that
 * worker had been registered, and the eventfd the main thread waits on
 * beside the signals. */
static pthread_mutex_t refused_mu = PTHREAD_MUTEX_INITIALIZER;
static char refused_why[512];
static bool refused_after;      /* thothd had held the refused instance before */
static int refused_fd = -1;
static const char *runtime_arg;
static uint64_t retain_bytes;

static int map_err(int r)
{
	switch (r) {
	case 0: return 0;
	case THOTH_E_NOT_FOUND: return THOTH_CODEX_ERR_UNKNOWN_STREAM;
	case THOTH_E_TOO_LARGE: return THOTH_CODEX_ERR_TOO_LARGE;
	case THOTH_E_EXISTS: return THOTH_CODEX_ERR_EXISTS;
	case THOTH_E_IO: return THOTH_CODEX_ERR_FAILED;
	default: return r < 0 ? r : (int)THOTH_CODEX_ERR_FAILED;
	}
}

static int on_create(void *self, const thoth_codex_Codex_create_req_t *req, thoth_codex_Codex_create_resp_t *resp,
		     thoth_arena_t *arena)
{
	if (!cx_name_valid(req->stream.ptr, req->stream.len))
		return THOTH_CODEX_ERR_BAD_NAME;
	if (req->budget_ms > CX_BUDGET_MAX_MS)
		return THOTH_CODEX_ERR_BAD_BUDGET;
	return map_err(cx_journal_create(journal, req->stream.ptr, req->stream.len, req->budget_ms));
}

static int on_append(void *self, const thoth_codex_Codex_append_req_t *req, thoth_codex_Codex_append_resp_t *resp,
		     thoth_arena_t *arena)
{
	if (req->durability != THOTH_CODEX_DURABILITY_SYNC && req->durability != THOTH_CODEX_DURABILITY_DEFERRED)
		return THOTH_CODEX_ERR_BAD_DURABILITY;
	if (req->budget_ms > CX_BUDGET_MAX_MS)
		return THOTH_CODEX_ERR_BAD_BUDGET;
	if (!req->records.count)
		return THOTH_CODEX_ERR_EMPTY;
	if (!cx_name_valid(req->stream.ptr, req->stream.len))
		return THOTH_CODEX_ERR_UNKNOWN_STREAM;
	cx_iov_t *iov = malloc(req->records.count * sizeof *iov);
	if (!iov)
		return THOTH_E_NOMEM;
	for (uint32_t k = 0; k < req->records.count; k++)
		iov[k] = (cx_iov_t){ req->records.items[k].ptr, req->records.items[k].len };
	int r = cx_journal_append(journal, req->stream.ptr, req->stream.len, iov, req->records.count,
				  req->durability == THOTH_CODEX_DURABILITY_SYNC ? CX_DUR_SYNC : CX_DUR_DEFERRED,
				  req->budget_ms, &resp->first_seq);
	free(iov);
	return map_err(r);
}

static void collect(void *arg, const cx_rec_t *rec)
{
	worker_t *w = arg;
	memcpy(w->data + w->data_len, rec->payload, rec->len);
	w->recs[w->nrecs++] = (thoth_codex_Record_t){
		.seq = rec->seq, .time_ns = rec->time_ns,
		.data = { .ptr = w->data + w->data_len, .len = rec->len },
	};
	w->data_len += rec->len;
}

static int on_read(void *self, const thoth_codex_Codex_read_req_t *req, thoth_codex_Codex_read_resp_t *resp,
		   thoth_arena_t *arena)
{
	worker_t *w = self;
	if (!cx_name_valid(req->stream.ptr, req->stream.len))
		return THOTH_CODEX_ERR_UNKNOWN_STREAM;
	uint32_t max = req->max_records && req->max_records < READ_MAX_RECORDS ? req->max_records : READ_MAX_RECORDS;
	w->nrecs = 0;
	w->data_len = 0;
	/* one record may be up to CX_REC_MAX: the buffer holds the byte cap plus one */
	int r = cx_journal_read(journal, req->stream.ptr, req->stream.len, req->from_seq, req->to_seq, max,
				READ_MAX_BYTES, collect, w, &resp->next_seq);
	if (r == THOTH_E_CORRUPT) {
		/* Said once per record (a reader retrying would repeat it). */
		if (w->last_unreadable != resp->next_seq) {
			char why[300];
			fprintf(stderr, "codex[%d]: read of %.*s: record %llu does not read back intact: %s\n",
				(int)getpid(), (int)req->stream.len, req->stream.ptr,
				(unsigned long long)resp->next_seq, thoth_strerror_r(THOTH_E_IO, why, sizeof why));
			w->last_unreadable = resp->next_seq;
		}
		return THOTH_CODEX_ERR_UNREADABLE;
	}
	if (r)
		return map_err(r);
	resp->records = (thoth_codex_Record_list_t){ .items = w->recs, .count = w->nrecs };
	return 0;
}

static int on_time_range(void *self, const thoth_codex_Codex_time_range_req_t *req,
			 thoth_codex_Codex_time_range_resp_t *resp, thoth_arena_t *arena)
{
	if (!cx_name_valid(req->stream.ptr, req->stream.len))
		return THOTH_CODEX_ERR_UNKNOWN_STREAM;
	return map_err(cx_journal_time_range(journal, req->stream.ptr, req->stream.len, req->from_ns, req->to_ns,
					     &resp->first_seq, &resp->end_seq));
}

static int on_stats(void *self, const thoth_codex_Codex_stats_req_t *req, thoth_codex_Codex_stats_resp_t *resp,
		    thoth_arena_t *arena)
{
	worker_t *w = self;
	size_t ns = 0;
	cx_journal_stats(journal, &w->st, w->streams, 256, &ns);
	if (ns > 256)
		ns = 256;
	const cx_journal_stats_t *s = &w->st;
	for (size_t k = 0; k < ns; k++)
		w->sinfo[k] = (thoth_codex_StreamInfo_t){
			.name = thoth_str(w->streams[k].name), .records = w->streams[k].records,
			.bytes = w->streams[k].bytes, .budget_ms = w->streams[k].budget_ms,
			.first_seq = w->streams[k].first_seq,
		};
	for (size_t k = 0; k < s->n_recent; k++)
		w->epochs[k] = (thoth_codex_Epoch_t){
			.at_ns = s->recent[k].at_ns, .duration_ns = s->recent[k].duration_ns,
			.reason = (thoth_codex_Reason_t)s->recent[k].reason, .group = s->recent[k].group,
			.fsyncs = s->recent[k].fsyncs, .deferred_bytes = s->recent[k].deferred_bytes,
		};
	memcpy(w->by_reason, s->epochs_by_reason, sizeof w->by_reason);
	memcpy(w->hist, s->group_hist, sizeof w->hist);
	resp->stats = (thoth_codex_Stats_t){
		.pending_bytes = s->pending_bytes, .pending_records = s->pending_records,
		.oldest_pending_age_ns = s->oldest_pending_age_ns, .epochs = s->epochs,
		.epochs_by_reason = { .items = w->by_reason, .count = CX_WB_NREASONS },
		.group_hist = { .items = w->hist, .count = CX_GROUP_BUCKETS },
		.group_max = s->group_max, .appends_sync = s->appends_sync,
		.appends_deferred = s->appends_deferred, .records = s->records, .bytes = s->bytes,
		.reads = s->reads, .read_misses = s->read_misses, .durable_lsn = s->durable_lsn,
		.last_lsn = s->last_lsn, .segments = s->segments, .backend = thoth_str(s->backend),
		.pm_leased = s->pm_leased, .pm_awake = s->pm_awake, .pm_note = thoth_str(s->pm_note),
		.recent = { .items = w->epochs, .count = (uint32_t)s->n_recent },
		.streams = { .items = w->sinfo, .count = (uint32_t)ns },
		.segment_bytes = s->segment_bytes_now, .retain_bytes = retain_bytes,
		.compactions = s->compact.compactions, .compacted_segments = s->compact.segments,
		.compacted_records = s->compact.records, .compacted_bytes = s->compact.bytes,
		.failure = thoth_str(s->failure),
		.cut_files = s->compact.cut_held, .cut_bytes = s->compact.cut_held_bytes,
		.cut_files_removed = s->compact.cut_files, .cut_bytes_removed = s->compact.cut_bytes,
		.cut_budget_bytes = s->compact.cut_budget_bytes, .cut_files_stuck = s->compact.cut_stuck,
		.orphan_files = s->compact.orphan_held, .orphan_bytes = s->compact.orphan_held_bytes,
		.orphan_files_removed = s->compact.orphan_files, .orphan_bytes_removed = s->compact.orphan_bytes,
		.compaction_stopped = thoth_str(s->compact.stopped),
	};
	return 0;
}

static const thoth_codex_Codex_handlers_t handlers = {
	.create = on_create, .append = on_append, .read = on_read,
	.time_range = on_time_range, .stats = on_stats,
};

static void log_line(void *arg, const char *message)
{
	fprintf(stderr, "codex[%d]: %s\n", (int)getpid(), message);
}

/* Registration with thothd, said as it changes.  codex serves whether or
 * not thothd is there, and said nothing of it: started before thothd, or
 * refused its name, it printed "serving" while `thothctl codex` found no
 * codex.  Each worker registers an instance of its own; worker 0 speaks
 * for them, except for a refusal, which each says.
 *
 * A refusal is fatal, whenever it comes: codex kept serving sockets no
 * client can find (the name held by another program, a limit of
 * thothd's), and only its log said so.  It exits 1 through the same
 * orderly stop as SIGTERM (the journal closed, nothing acknowledged lost)
 * with thothd's reason in one line (main).  That holds for one refused
 * after it was registered too (thothd restarted and another executable
 * took the name meanwhile): the library does not retry a refusal, so that
 * instance stayed invisible for good while its log said so once; new
 * clients already go to the name's holder, and a supervisor that restarts
 * codex gets the start-up refusal, said the same way.  A thothd that only
 * goes away (its connection closed) is not a refusal: the library retries,
 * woken by the runtime dir's inotify and a backing-off timer, never a busy
 * loop, and the connected clients are served meanwhile. */
static void on_state(void *arg, thoth_service_state_t state, int err, const char *why)
{
	worker_t *w = arg;
	static const char *const said[] = {
		[THOTH_SERVICE_CONNECTING] = "not registered with thothd, retrying",
		[THOTH_SERVICE_REGISTERED] = "registered with thothd",
	};
	if (state == THOTH_SERVICE_REGISTERED)
		w->registered = true;
	if (state == THOTH_SERVICE_REFUSED) {
		pthread_mutex_lock(&refused_mu);
		if (!refused_why[0]) {
			snprintf(refused_why, sizeof refused_why, "%s", *why ? why : thoth_strerror(err));
			refused_after = w->registered;
		}
		pthread_mutex_unlock(&refused_mu);
		uint64_t one = 1;
		if (write(refused_fd, &one, sizeof one) != sizeof one)
			fprintf(stderr, "codex[%d]: worker %d: refused by thothd: %s (cannot stop: eventfd: %s)\n",
				(int)getpid(), w->index, *why ? why : thoth_strerror(err), strerror(errno));
		return;
	}
	if (w->index || (unsigned)state >= sizeof said / sizeof *said)
		return;
	fprintf(stderr, "codex[%d]: worker %d: %s%s%s\n", (int)getpid(), w->index, said[state],
		*why ? ": " : "", why);
}

/* The journal stopped (an I/O error: a full disk, a failed fdatasync):
 * said once, with the cause, where the operator looks first.  What a
 * restart brings back, exactly (docs/CODEX.md "The fsync policy"): it said
 * "it recovers what reached the disk", but a write that reached the disk
 * and was never fdatasync'ed may be lost or torn, and recovery cuts a torn
 * tail aside. */
static void journal_failed(void *arg, const char *why)
{
	fprintf(stderr, "codex[%d]: the journal stopped: %s; nothing more is acknowledged "
		"until codex restarts; a restart keeps every sync-acknowledged record, and of the "
		"later ones (deferred or unacknowledged: never synced, so possibly lost or torn) "
		"those that read back intact up to the first that does not, where it ends the log "
		"(the rest set aside: seg-N.log.cut-OFFSET, *.orphan)\n", (int)getpid(), why);
}

static void on_stop_fd(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	thoth_loop_stop(loop);  /* a loop is stopped from its own thread only */
}

static void *serve(void *arg)
{
	worker_t *w = arg;
	thoth_loop_run(w->loop);
	return NULL;
}

static int worker_start(worker_t *w, const char *dir, char *why, size_t why_len)
{
	if (snprintf(w->sock, sizeof w->sock, "%s/codex-%d-%d.sock", dir, (int)getpid(), w->index) >=
	    (int)sizeof w->sock) {
		snprintf(why, why_len, "runtime dir path too long");
		return THOTH_E_INVAL;
	}
	w->data = malloc(READ_MAX_BYTES + CX_REC_MAX);
	if (!w->data)
		return THOTH_E_NOMEM;
	int r = thoth_loop_new(&w->loop);
	if (r)
		return r;
	w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->stop_fd < 0 || thoth_loop_add_fd(w->loop, w->stop_fd, THOTH_LOOP_READ, on_stop_fd, w, NULL)) {
		snprintf(why, why_len, "eventfd: %s", strerror(errno));
		return THOTH_E_IO;
	}
	thoth_chan_server_config_t scfg = {
		.path = w->sock, .iface = &thoth_codex_Codex_info, .invoke = thoth_codex_Codex_invoke,
		.handlers = &handlers, .self = w, .log = log_line,
		.wait = THOTH_CHAN_SLEEP,       /* a serving thread blocked in fdatasync must not spin */
	};
	if ((r = thoth_chan_server_new(w->loop, &scfg, &w->srv, why, why_len)))
		return r;
	const thoth_interface_info_t *ifaces[] = { &thoth_codex_Codex_info };
	thoth_service_config_t cfg = {
		.runtime_dir = runtime_arg, .name = "codex", .version = "1.0.0", .endpoint = w->sock,
		.numa_node = THOTH_SERVICE_NUMA_AUTO, .interfaces = ifaces, .n_interfaces = 1,
		.on_state = on_state, .arg = w,
	};
	if ((r = thoth_service_register(w->loop, &cfg, &w->svc, why, why_len)))
		return r;
	if ((r = pthread_create(&w->thr, NULL, serve, w))) {
		snprintf(why, why_len, "pthread_create: %s", strerror(r));
		return THOTH_E_IO;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: codex --data-dir DIR [--runtime-dir DIR] [--workers N (1..64, 8)]\n"
		   "             [--segment-bytes N] [--retain-bytes N (0: keep all)]\n"
		   "             [--cut-bytes N (cut files kept with --retain-bytes; --segment-bytes)]\n"
		   "             [--pm-element NAME (disk)] [--no-pm]\n"
		   "             [--group-window-us N (1..2000, 1000)]\n");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "workers", required_argument, NULL, 'w' },
		{ "segment-bytes", required_argument, NULL, 's' },
		{ "retain-bytes", required_argument, NULL, 'R' },
		{ "cut-bytes", required_argument, NULL, 'c' },
		{ "pm-element", required_argument, NULL, 'p' },
		{ "no-pm", no_argument, NULL, 'n' },
		{ "group-window-us", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *data_dir = NULL, *element = "disk";
	long workers = 8, window = 1000;
	unsigned long long seg = 0, retain = 0, cut = 0;
	char *end;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'r': runtime_arg = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'p': element = optarg; break;
		case 'n': element = NULL; break;
		case 'w':
			errno = 0;
			workers = strtol(optarg, &end, 10);
			if (*end || !*optarg || errno || workers < 1 || workers > MAX_WORKERS) {
				fprintf(stderr, "codex: --workers %s: must be 1..64\n", optarg);
				return 2;
			}
			break;
		case 's':
			errno = 0;
			seg = strtoull(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno || seg < 4096) {
				fprintf(stderr, "codex: --segment-bytes %s: must be a number >= 4096\n", optarg);
				return 2;
			}
			break;
		case 'R':
			errno = 0;
			retain = strtoull(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno) {
				fprintf(stderr, "codex: --retain-bytes %s: must be a number of bytes (0: keep everything)\n",
					optarg);
				return 2;
			}
			break;
		case 'c':
			errno = 0;
			cut = strtoull(optarg, &end, 10);
			if (*optarg < '0' || *optarg > '9' || *end || errno || !cut) {
				fprintf(stderr, "codex: --cut-bytes %s: must be a number of bytes >= 1\n", optarg);
				return 2;
			}
			break;
		case 'g':
			errno = 0;
			window = strtol(optarg, &end, 10);
			if (*end || errno || window < 1 || window > (long)CX_GC_WINDOW_MAX_US) {
				fprintf(stderr, "codex: --group-window-us %s: must be 1..2000\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("codex %s\n", THOTH_VERSION_STRING); return 0;
		/* getopt named the option; one line more, as thothd's: the
		 * whole usage after it buried the line that says what is wrong */
		default: fprintf(stderr, "Try 'codex --help' for more information.\n"); return 2;
		}
	}
	/* a stray word was dropped without a word: `codex --data-dir D 4`
	 * meant as four workers ran eight */
	if (optind < argc) {
		fprintf(stderr, "codex: unexpected argument '%s' (codex takes options only)\n"
			"Try 'codex --help' for more information.\n", argv[optind]);
		return 2;
	}
	if (!data_dir) {
		fprintf(stderr, "codex: --data-dir DIR is required: where the journal keeps its records\n"
			"Try 'codex --help' for more information.\n");
		return 2;
	}
	char dir[4096], why[512];
	if (thoth_runtime_dir(runtime_arg, dir, sizeof dir)) {
		fprintf(stderr, "codex: no runtime dir (--runtime-dir or THOTH_RUNTIME_DIR)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	thoth_trace_init_process("codex");
	/* SIGINT/SIGTERM go to a signalfd read by the main thread: block them
	 * before any thread starts, so every thread inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	refused_fd = eventfd(0, EFD_CLOEXEC);
	if (sfd < 0 || refused_fd < 0) {
		fprintf(stderr, "codex: %s: %s\n", sfd < 0 ? "signalfd" : "eventfd", strerror(errno));
		return 1;
	}

	cx_recovery_t rep;
	cx_journal_config_t jcfg = {
		.data_dir = data_dir, .segment_bytes = seg, .gc_window_us = (uint32_t)window,
		.pm_element = element, .runtime_dir = runtime_arg, .retain_bytes = retain,
		.cut_budget_bytes = cut, .on_failure = journal_failed,
	};
	int r = cx_journal_open(&jcfg, &journal, &rep, why, sizeof why);
	if (r) {
		fprintf(stderr, "codex: cannot open the journal in %s: %s: %s\n", data_dir, thoth_strerror(r), why);
		return 1;
	}
	fprintf(stderr, "codex[%d]: recovered %llu records in %u segments (%u from their index); "
			"cut %llu torn bytes, %u segments set aside, %u removed; log from lsn %llu (%u compacted removed)\n",
		(int)getpid(), (unsigned long long)rep.records, rep.segments, rep.indexed,
		(unsigned long long)rep.truncated_bytes, rep.orphaned, rep.removed, (unsigned long long)rep.base_lsn,
		rep.compacted);
	/* A cut is a crash's torn tail, or a record damaged on the disk after
	 * it was written, with whatever followed it: said, with where it is. */
	if (rep.cut_kept_bytes)
		fprintf(stderr, "codex[%d]: the %llu bytes cut were copied aside first, to %s/seg-*.log.cut-OFFSET "
			"(kept, never read: if records were damaged on the disk, the ones after them are there)\n",
			(int)getpid(), (unsigned long long)rep.cut_kept_bytes, data_dir);
	if (rep.cut_keep_errno)
		fprintf(stderr, "codex[%d]: %llu bytes cut could not be kept aside: %s\n", (int)getpid(),
			(unsigned long long)rep.cut_lost_bytes, strerror(rep.cut_keep_errno));
	/* The evidence on the disk, and how long it stays (docs/CODEX.md). */
	if (rep.cut_files)
		fprintf(stderr, "codex[%d]: %u cut file%s (%llu bytes) held in %s (seg-*.log.cut-*): %s\n",
			(int)getpid(), rep.cut_files, rep.cut_files == 1 ? "" : "s",
			(unsigned long long)rep.cut_file_bytes, data_dir,
			retain ? "the oldest removed beyond --cut-bytes (default --segment-bytes)"
			       : "kept (no --retain-bytes: nothing is removed)");
	if (rep.orphan_files)
		fprintf(stderr, "codex[%d]: %u orphan segment%s (%llu bytes) held in %s (seg-*.log.orphan): %s\n",
			(int)getpid(), rep.orphan_files, rep.orphan_files == 1 ? "" : "s",
			(unsigned long long)rep.orphan_file_bytes, data_dir,
			retain ? "the oldest removed beyond --cut-bytes with the cut files"
			       : "kept (no --retain-bytes: nothing is removed)");
	if (rep.cut_foreign)
		fprintf(stderr, "codex[%d]: %u entr%s in %s named like cut files but not regular files "
			"(directory, FIFO, symlink...): left alone, not counted\n",
			(int)getpid(), rep.cut_foreign, rep.cut_foreign == 1 ? "y" : "ies", data_dir);
	retain_bytes = retain;
	static worker_t ws[MAX_WORKERS];
	int started = 0;
	for (int k = 0; k < workers; k++) {
		ws[k].index = k;
		if ((r = worker_start(&ws[k], dir, why, sizeof why))) {
			fprintf(stderr, "codex: cannot start serving thread %d: %s: %s\n", k, thoth_strerror(r), why);
			break;
		}
		started++;
	}
	if (started == workers) {
		fprintf(stderr, "codex[%d]: serving on %d threads (%s/codex-%d-*.sock), data in %s\n", (int)getpid(),
			started, dir, (int)getpid(), data_dir);
		/* Until SIGINT/SIGTERM, or a refused registration (on_state). */
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = refused_fd, .events = POLLIN } };
		while (poll(pfd, 2, -1) < 0 && errno == EINTR)
			;
	}
	for (int k = 0; k < started; k++) {
		uint64_t one = 1;
		if (write(ws[k].stop_fd, &one, sizeof one) != sizeof one)
			fprintf(stderr, "codex: cannot stop serving thread %d\n", k);
	}
	for (int k = 0; k < started; k++)
		pthread_join(ws[k].thr, NULL);
	for (int k = 0; k < workers; k++) {
		if (ws[k].svc)
			thoth_service_withdraw(ws[k].svc);
		if (ws[k].srv)
			thoth_chan_server_free(ws[k].srv);
		if (ws[k].loop)
			thoth_loop_free(ws[k].loop);
		free(ws[k].data);
		if (ws[k].stop_fd > 0)
			close(ws[k].stop_fd);
	}
	cx_journal_close(journal);
	pthread_mutex_lock(&refused_mu);       /* the workers are gone; for the analyzers */
	bool refused = refused_why[0] != 0;
	if (refused)
		fprintf(stderr, "codex[%d]: thothd refused to register codex%s, exiting: %s\n", (int)getpid(),
			refused_after ? " again (thothd had held it)" : "", refused_why);
	pthread_mutex_unlock(&refused_mu);
	if (refused)
		return 1;
	fprintf(stderr, "codex[%d]: stopped\n", (int)getpid());
	return started == workers ? 0 : 1;
}
