/*
 * codex.c - `thothctl codex`: the journal service (PM-4, docs/CODEX.md).
 *
 *   thothctl codex [stats] [--json]
 *   thothctl codex create STREAM [--budget-ms N]
 *   thothctl codex append STREAM [--sync | --deferred] [--budget-ms N]
 *       one record per input line (without its newline); prints each
 *       record's sequence number once it is acknowledged (for --sync: after
 *       its fdatasync), one a line
 *   thothctl codex read STREAM [--from SEQ] [--to SEQ] [--since NS] [--until NS] [--json]
 *       --json: one JSON array of {"seq": N, "data": "..."}; a record that
 *       is not UTF-8 shows U+FFFD in "data" and is given whole in "base64"
 *
 * codex is found through thothd's registry ("codex") and called on a
 * shared-memory channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codex.thoth.h"
#include "registry.thoth.h"
#include "pidpin.h"
#include "procfd.h"
#include "thoth/channel.h"
#include "thothctl.h"

/* How long a call waits for codex: a stopped or wedged codex held
 * `thothctl codex` for ever, without a word (ops44, the crash drill's
 * SIGSTOP step).  An append waits longer: a sync append is answered once
 * fdatasync returns, which a busy disk can take seconds to do. */
#define CODEX_CALL_TIMEOUT_MS 5000
#define CODEX_APPEND_TIMEOUT_MS 30000

static uint32_t codex_pid;      /* the instance resolved, for what a timeout says; 0: unknown */
static int codex_pidfd = -1;    /* codex_pid pinned when it was resolved: its reuse is no codex */
static bool codex_gone_early;   /* it had exited by then */
static int codex_timeout_ms;

static const char *const reasons[] = { "none", "sync", "budget", "pm-awake", "read-miss", "shutdown", "create" };

static bool said_stopped(const char *what, const char *stream, const char *after);

/* A channel to codex for `thothctl codex WHAT [STREAM]`. */
static int open_codex(const thothctl_opts_t *opts, const char *what, const char *stream, int timeout_ms,
		      thoth_chan_t **ch)
{
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		return 1;
	thoth_registry_Registry_resolve_req_t req = { .name = thoth_str("codex"), .min_version = thoth_str("1.0.0") };
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_registry_Registry_resolve(&ctl.client, &req, &resp, &arena);
	if (r == THOTH_E_REMOTE && ctl.client.remote_code == THOTH_REGISTRY_ERR_NOT_FOUND) {
		fprintf(stderr, "thothctl: codex is not running (nothing is registered as \"codex\" with thothd; "
			"start it: codex --data-dir DIR)\n");
		thoth_control_close(&ctl);
		return 1;
	}
	if (r) {
		int rc = thothctl_call_failed(&ctl, "resolve codex (is codex running?)", r);
		thoth_control_close(&ctl);
		return rc;
	}
	char addr[108];
	snprintf(addr, sizeof addr, "%.*s", (int)resp.instance.registration.endpoint.addr.len,
		 resp.instance.registration.endpoint.addr.ptr);
	codex_pid = resp.instance.registration.endpoint.pid;
	/* thothd's word (SO_PEERCRED) for a local instance; a remote one's
	 * pid is another host's, never to be looked up in our /proc. */
	if (resp.instance.registration.endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE)
		codex_pid = 0;
	if (codex_pid) {
		char pin_why[96];
		if (thothctl_pid_pin(codex_pid, &codex_pidfd, pin_why, sizeof pin_why)) {
			codex_gone_early = errno == ESRCH;
			codex_pidfd = -1;
		}
	}
	codex_timeout_ms = timeout_ms;
	thoth_control_close(&ctl);
	thoth_chan_config_t cfg = { .iface = &thoth_codex_Codex_info, .wait = THOTH_CHAN_SLEEP,
				    .timeout_ms = timeout_ms };
	char why[300];
	r = thoth_chan_connect(addr, &cfg, ch, why, sizeof why);
	if (r) {
		if (!said_stopped(what, stream, ""))
			fprintf(stderr, "thothctl: cannot open a channel to codex at %s: %s\n", peertext_textz(addr),
				peertext_textz(why));
		if (codex_pidfd >= 0)
			close(codex_pidfd);
		codex_pidfd = -1;
		return 1;
	}
	return 0;
}

/* ": why" the journal stopped, as codex's stats say (a codex older than
 * Stats.failure, or one that cannot answer: nothing), shown, never obeyed
 * (peertext_text: codex is whoever registered the name). */
static void failure_of(thoth_chan_t *ch, char *out, size_t cap)
{
	thoth_codex_Codex_stats_req_t req = { 0 };
	thoth_codex_Codex_stats_resp_t resp;
	static uint64_t scratch[1 << 14];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	if (!thoth_codex_Codex_stats(thoth_chan_client(ch), &req, &resp, &arena) && resp.stats.failure.len)
		snprintf(out, cap, ": %s", peertext_text(resp.stats.failure.ptr, resp.stats.failure.len));
}

/* codex's state as /proc says ('T' stopped, 'R' running, ...), 0 when it
 * cannot be read; *GONE when codex exited.  The pid is pinned by a pidfd
 * since it was resolved (docs/PROBES.md "Pinned pids"): a process that
 * took codex's pid after it exited is never named as codex. */
static char codex_state(bool *gone)
{
	char buf[512], state = 0;
	*gone = false;
	if (!codex_pid)
		return 0;
	if (codex_gone_early || thoth__pid_exited(codex_pidfd)) {
		*gone = true;
		return 0;
	}
	ssize_t n = thoth__proc_read_pinned(codex_pid, codex_pidfd, "stat", buf, sizeof buf - 1);
	if (n > 0) {
		buf[n] = 0;
		state = thothctl_stat_state(buf, NULL, 0);
	}
	*gone = n < 0 && errno == ESRCH && codex_pidfd >= 0;
	return state;
}

/* "thothctl: codex WHAT STREAM: codex (pid N) is stopped ...: kill -CONT N"
 * when it is; false otherwise. */
static bool said_stopped(const char *what, const char *stream, const char *after)
{
	bool gone;
	char state = codex_state(&gone);
	if (state != 'T' && state != 't')
		return false;
	fprintf(stderr, "thothctl: codex %s%s%s: codex (pid %u) is stopped (SIGSTOP or a debugger) "
		"and answers nothing: kill -CONT %u%s\n", what, stream ? " " : "", stream ? stream : "",
		codex_pid, codex_pid, after);
	return true;
}

/* codex did not answer within the call's time: stopped, gone, or busy. */
static int timed_out(const char *what, const char *stream)
{
	/* what the unanswered call may have done all the same */
	char after[160] = "";
	if (!strcmp(what, "append"))
		snprintf(after, sizeof after, "; the records whose numbers were printed are kept, the one "
			 "after them may or may not be (`thothctl codex read` shows it)");
	else if (!strcmp(what, "create"))
		snprintf(after, sizeof after, "; the stream may exist anyway (`thothctl codex stats` lists "
			 "it once codex answers)");
	if (said_stopped(what, stream, after))
		return 1;
	bool gone;
	codex_state(&gone);
	unsigned s = (unsigned)(codex_timeout_ms + 999) / 1000;
	char who[40] = "codex";        /* a remote codex's pid is not ours to name */
	if (codex_pid)
		snprintf(who, sizeof who, "codex (pid %u)", codex_pid);
	if (gone)
		fprintf(stderr, "thothctl: codex %s%s%s: %s exited without answering (within "
			"%u s)%s\n", what, stream ? " " : "", stream ? stream : "", who, s, after);
	else
		fprintf(stderr, "thothctl: codex %s%s%s: %s did not answer within %u s: busy or "
			"stuck (its log may say which)%s\n", what, stream ? " " : "", stream ? stream : "",
			who, s, after);
	return 1;
}

/* A clear sentence for codex's application errors. */
static int failed(thoth_chan_t *ch, const char *what, const char *stream, int r)
{
	thoth_client_t *c = thoth_chan_client(ch);
	if (r == THOTH_E_TIMEDOUT)
		return timed_out(what, stream);
	if (r == THOTH_E_PEER_GONE) {           /* not the bare "peer gone" */
		fprintf(stderr, "thothctl: codex %s%s%s: codex went away (exited or killed: its log says "
			"why)%s\n", what, stream ? " " : "", stream ? stream : "",
			strcmp(what, "append") ? "" : "; the records whose numbers were printed are kept, "
			"the rest were not appended");
		return 1;
	}
	if (r != THOTH_E_REMOTE) {
		fprintf(stderr, "thothctl: codex %s: %s\n", what, thoth_strerror(r));
		return 1;
	}
	const char *msg;
	switch (c->remote_code) {
	case THOTH_CODEX_ERR_UNKNOWN_STREAM: msg = "no such stream (create it with `thothctl codex create`)"; break;
	case THOTH_CODEX_ERR_BAD_NAME: msg = "bad stream name (1..63 of [a-z0-9_.-], starting with a letter)"; break;
	case THOTH_CODEX_ERR_TOO_LARGE: msg = "record too large (at most 262144 bytes)"; break;
	case THOTH_CODEX_ERR_BAD_DURABILITY: msg = "unknown durability class (sync or deferred)"; break;
	case THOTH_CODEX_ERR_BAD_BUDGET: msg = "loss budget too large (at most 86400000 ms)"; break;
	case THOTH_CODEX_ERR_EXISTS: msg = "the stream exists already"; break;
	case THOTH_CODEX_ERR_FAILED: msg = "the journal stopped after an I/O error"; break;
	case THOTH_CODEX_ERR_EMPTY: msg = "no records"; break;
	case THOTH_CODEX_ERR_UNREADABLE: msg = "a record does not read back intact"; break;
	default: msg = peertext_textz(c->remote_message); break;
	}
	/* cause: codex's failure in words (up to 383 bytes: a path and
	 * the errno's name; 200 cut a long data dir's ENOSPC off), up to
	 * four times that shown (a control byte is "\xNN") */
	char remote[sizeof c->remote_message], cause[2100] = "";
	snprintf(remote, sizeof remote, "%s", c->remote_message);      /* before another call */
	if (c->remote_code == THOTH_CODEX_ERR_FAILED)
		failure_of(ch, cause, sizeof cause);
	fprintf(stderr, "thothctl: codex %s%s%s: %s%s (%s)\n", what, stream ? " " : "",
		stream ? stream : "", msg, cause, peertext_textz(remote));
	return 1;
}

static int cmd_stats(thoth_chan_t *ch, const thothctl_opts_t *opts)
{
	thoth_codex_Codex_stats_req_t req = { 0 };
	thoth_codex_Codex_stats_resp_t resp;
	static uint64_t scratch[1 << 14];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_codex_Codex_stats(thoth_chan_client(ch), &req, &resp, &arena);
	if (r)
		return failed(ch, "stats", NULL, r);
	const thoth_codex_Stats_t *s = &resp.stats;
	if (opts->json) {
		printf("{\"pending_bytes\":%llu,\"pending_records\":%llu,\"oldest_pending_age_ns\":%llu,"
		       "\"epochs\":%llu,\"epochs_by_reason\":{",
		       (unsigned long long)s->pending_bytes, (unsigned long long)s->pending_records,
		       (unsigned long long)s->oldest_pending_age_ns, (unsigned long long)s->epochs);
		for (uint32_t k = 1; k < s->epochs_by_reason.count && k < 7; k++)
			printf("%s\"%s\":%llu", k > 1 ? "," : "", reasons[k],
			       (unsigned long long)s->epochs_by_reason.items[k]);
		printf("},\"group_hist\":[");
		for (uint32_t k = 0; k < s->group_hist.count; k++)
			printf("%s%llu", k ? "," : "", (unsigned long long)s->group_hist.items[k]);
		printf("],\"group_max\":%u,\"appends_sync\":%llu,\"appends_deferred\":%llu,\"records\":%llu,"
		       "\"bytes\":%llu,\"reads\":%llu,\"read_misses\":%llu,\"durable_lsn\":%llu,\"last_lsn\":%llu,"
		       "\"segments\":%u,\"backend\":",
		       s->group_max, (unsigned long long)s->appends_sync, (unsigned long long)s->appends_deferred,
		       (unsigned long long)s->records, (unsigned long long)s->bytes, (unsigned long long)s->reads,
		       (unsigned long long)s->read_misses, (unsigned long long)s->durable_lsn,
		       (unsigned long long)s->last_lsn, s->segments);
		thothctl_json_str(s->backend.ptr, s->backend.len);
		printf(",\"pm_leased\":%s,\"pm_awake\":%s,\"pm_note\":", s->pm_leased ? "true" : "false",
		       s->pm_awake ? "true" : "false");
		thothctl_json_str(s->pm_note.ptr, s->pm_note.len);
		printf(",\"failure\":");
		thothctl_json_str(s->failure.ptr, s->failure.len);
		printf(",\"segment_bytes\":%llu,\"retain_bytes\":%llu,\"compactions\":%llu,\"compacted_segments\":%llu,"
		       "\"compacted_records\":%llu,\"compacted_bytes\":%llu",
		       (unsigned long long)s->segment_bytes, (unsigned long long)s->retain_bytes,
		       (unsigned long long)s->compactions, (unsigned long long)s->compacted_segments,
		       (unsigned long long)s->compacted_records, (unsigned long long)s->compacted_bytes);
		printf(",\"cut_files\":%u,\"cut_bytes\":%llu,\"cut_files_removed\":%llu,\"cut_bytes_removed\":%llu",
		       s->cut_files, (unsigned long long)s->cut_bytes, (unsigned long long)s->cut_files_removed,
		       (unsigned long long)s->cut_bytes_removed);
		printf(",\"cut_budget_bytes\":%llu,\"cut_files_stuck\":%u", (unsigned long long)s->cut_budget_bytes,
		       s->cut_files_stuck);
		printf(",\"orphan_files\":%u,\"orphan_bytes\":%llu,\"orphan_files_removed\":%llu,"
		       "\"orphan_bytes_removed\":%llu", s->orphan_files, (unsigned long long)s->orphan_bytes,
		       (unsigned long long)s->orphan_files_removed, (unsigned long long)s->orphan_bytes_removed);
		printf(",\"compaction_stopped\":");
		thothctl_json_str(s->compaction_stopped.ptr, s->compaction_stopped.len);
		printf(",\"recent\":[");
		for (uint32_t k = 0; k < s->recent.count; k++) {
			const thoth_codex_Epoch_t *e = &s->recent.items[k];
			printf("%s{\"at_ns\":%llu,\"duration_ns\":%llu,\"reason\":\"%s\",\"group\":%u,\"fsyncs\":%u,"
			       "\"deferred_bytes\":%llu}",
			       k ? "," : "", (unsigned long long)e->at_ns, (unsigned long long)e->duration_ns,
			       e->reason < 7 ? reasons[e->reason] : "?", e->group, e->fsyncs,
			       (unsigned long long)e->deferred_bytes);
		}
		printf("],\"streams\":[");
		for (uint32_t k = 0; k < s->streams.count; k++) {
			const thoth_codex_StreamInfo_t *st = &s->streams.items[k];
			printf("%s{\"name\":", k ? "," : "");
			thothctl_json_str(st->name.ptr, st->name.len);
			printf(",\"records\":%llu,\"bytes\":%llu,\"budget_ms\":%u,\"first_seq\":%llu}",
			       (unsigned long long)st->records, (unsigned long long)st->bytes, st->budget_ms,
			       (unsigned long long)st->first_seq);
		}
		printf("]}\n");
		return 0;
	}
	/* what codex says, shown, never obeyed (peertext_text): a process
	 * registered as codex chose these strings */
	if (s->failure.len)
		printf("STOPPED: %s (nothing more is acknowledged until codex restarts)\n",
		       peertext_text(s->failure.ptr, s->failure.len));
	printf("deferred pending: %llu bytes in %llu records, oldest %.3f s\n", (unsigned long long)s->pending_bytes,
	       (unsigned long long)s->pending_records, s->oldest_pending_age_ns / 1e9);
	printf("flush epochs: %llu (", (unsigned long long)s->epochs);
	for (uint32_t k = 1; k < s->epochs_by_reason.count && k < 7; k++)
		printf("%s%s %llu", k > 1 ? ", " : "", reasons[k], (unsigned long long)s->epochs_by_reason.items[k]);
	printf(")\ngroup commits (syncs acknowledged per epoch): ");
	static const char *const b[] = { "0", "1", "2-3", "4-7", "8-15", "16-31", "32-63", "64+" };
	for (uint32_t k = 0; k < s->group_hist.count && k < 8; k++)
		printf("%s%s:%llu", k ? " " : "", b[k], (unsigned long long)s->group_hist.items[k]);
	printf(", max %u\n", s->group_max);
	printf("appends: %llu sync, %llu deferred; %llu records, %llu bytes; reads %llu (%llu missed the page cache)\n",
	       (unsigned long long)s->appends_sync, (unsigned long long)s->appends_deferred,
	       (unsigned long long)s->records, (unsigned long long)s->bytes, (unsigned long long)s->reads,
	       (unsigned long long)s->read_misses);
	printf("log: lsn %llu written, %llu durable, %u segments; committer on %s\n",
	       (unsigned long long)s->last_lsn, (unsigned long long)s->durable_lsn, s->segments,
	       peertext_text(s->backend.ptr, s->backend.len));
	if (s->retain_bytes)
		printf("retention: keep >= %llu bytes (%llu in segments now); %llu compactions dropped %llu segments, "
		       "%llu records, %llu bytes\n",
		       (unsigned long long)s->retain_bytes, (unsigned long long)s->segment_bytes,
		       (unsigned long long)s->compactions, (unsigned long long)s->compacted_segments,
		       (unsigned long long)s->compacted_records, (unsigned long long)s->compacted_bytes);
	else
		printf("retention: keep everything (%llu bytes in segments)\n", (unsigned long long)s->segment_bytes);
	if (s->compaction_stopped.len)
		printf("retention STOPPED until codex restarts (no segment removed; %s): %s\n",
		       s->failure.len ? "the journal stopped too" : "appends go on",
		       peertext_text(s->compaction_stopped.ptr, s->compaction_stopped.len));
	/* Tails recovery set aside: evidence, kept by retention within their
	 * own budget (codex 1.3). */
	if (s->cut_files || s->cut_files_removed) {
		printf("cut files (seg-*.log.cut-*, tails set aside by recovery): %u held, %llu bytes; "
		       "%llu removed by retention (%llu bytes)",
		       s->cut_files, (unsigned long long)s->cut_bytes, (unsigned long long)s->cut_files_removed,
		       (unsigned long long)s->cut_bytes_removed);
		if (s->retain_bytes && s->cut_budget_bytes)
			printf("; %llu bytes kept (--cut-bytes)", (unsigned long long)s->cut_budget_bytes);
		if (s->cut_files_stuck)
			printf("; %u could not be removed (see codex's data dir)", s->cut_files_stuck);
		printf("\n");
	}
	/* Segments after the end of the log, set aside: in the same budget
	 * (codex 1.4). */
	if (s->orphan_files || s->orphan_files_removed)
		printf("orphan segments (seg-*.log.orphan, set aside by recovery after a damaged segment): "
		       "%u held, %llu bytes; %llu removed by retention (%llu bytes), in the cut files' budget\n",
		       s->orphan_files, (unsigned long long)s->orphan_bytes,
		       (unsigned long long)s->orphan_files_removed, (unsigned long long)s->orphan_bytes_removed);
	printf("disk power element: %s%s\n",
	       s->pm_leased ? (s->pm_awake ? "opportunistic lease satisfied (awake)" : "opportunistic lease pending (asleep)")
			    : "no lease: ",
	       s->pm_leased ? "" : peertext_text(s->pm_note.ptr, s->pm_note.len));
	for (uint32_t k = 0; k < s->recent.count; k++) {
		const thoth_codex_Epoch_t *e = &s->recent.items[k];
		time_t t = (time_t)(e->at_ns / 1000000000ull);
		struct tm tm;
		char when[32];
		strftime(when, sizeof when, "%H:%M:%S", gmtime_r(&t, &tm));
		printf("  epoch %s.%03llu  %-9s %2u syncs  %u fsyncs  %llu deferred bytes  %.3f ms\n", when,
		       (unsigned long long)(e->at_ns / 1000000ull % 1000), e->reason < 7 ? reasons[e->reason] : "?",
		       e->group, e->fsyncs, (unsigned long long)e->deferred_bytes, e->duration_ns / 1e6);
	}
	for (uint32_t k = 0; k < s->streams.count; k++) {
		const thoth_codex_StreamInfo_t *st = &s->streams.items[k];
		printf("stream %s: %llu records, %llu bytes, budget %u ms", peertext_text(st->name.ptr, st->name.len),
		       (unsigned long long)st->records, (unsigned long long)st->bytes, st->budget_ms);
		if (st->first_seq > 1)
			printf(", retained from seq %llu", (unsigned long long)st->first_seq);
		printf("\n");
	}
	return 0;
}

enum { RECORD_MAX = 262144 };   /* codex's largest record (idl/codex.tidl TooLarge) */
#define READ_EOF ((size_t)-1)
#define READ_LONG ((size_t)-2)

/* The next line of IN into BUF (without its newline), its length; READ_EOF
 * at the end (or an error: ferror), READ_LONG when it does not fit in CAP
 * - 1 bytes (the rest of it is not read). */
static size_t read_line(char *buf, size_t cap, FILE *in)
{
	size_t n = 0;
	int ch;
	while ((ch = getc(in)) != EOF) {
		if (ch == '\n')
			return n;
		if (n == cap - 1)
			return READ_LONG;
		buf[n++] = (char)ch;
	}
	return ferror(in) || !n ? READ_EOF : n;   /* a last line without its newline is one */
}

/* A record on one line of a terminal: what any client appended is shown,
 * never obeyed -- control bytes (an escape sequence, a newline, a NUL that
 * cut the record short under %.*s), C1 controls and bytes that are not
 * UTF-8 as \xNN, a tab kept (peertext_fput); `read --json` gives the
 * exact bytes. */
static void text_record(const uint8_t *data, size_t len)
{
	peertext_fput(stdout, (const char *)data, len, PEERTEXT_TAB);
	putchar('\n');
}

/* DATA as a quoted base64 string (RFC 4648, padded). */
static void base64_json(const uint8_t *data, size_t len)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	putchar('"');
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		putchar(abc[v >> 18 & 63]);
		putchar(abc[v >> 12 & 63]);
		putchar(i + 1 < len ? abc[v >> 6 & 63] : '=');
		putchar(i + 2 < len ? abc[v & 63] : '=');
	}
	putchar('"');
}

static int parse_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno) {    /* a digit first: no sign, no space; errno: ERANGE */
		fprintf(stderr, "thothctl: codex: %s %s: not a number (0..18446744073709551615)\n", opt, s);
		return 2;
	}
	*out = v;
	return 0;
}


int thothctl_codex(int argc, char **argv, const thothctl_opts_t *opts)
{
	static const struct option options[] = {
		{ "sync", no_argument, NULL, 'S' },
		{ "deferred", no_argument, NULL, 'D' },
		{ "budget-ms", required_argument, NULL, 'b' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : "stats";
	bool has_sub = argc > 1 && argv[1][0] != '-';
	int dur = THOTH_CODEX_DURABILITY_SYNC;
	uint64_t budget = 0, from = 1, to = 0, since = 0, until = 0;
	bool by_time = false;
	unsigned given = 0;             /* which options came: G_* below */
	enum { G_SYNC = 1, G_DEFERRED = 2, G_BUDGET = 4, G_RANGE = 8 };
	int opt, rc;
	optind = has_sub ? 2 : 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value("codex", empty, NULL);
		switch (opt) {
		case 'S': dur = THOTH_CODEX_DURABILITY_SYNC; given |= G_SYNC; break;
		case 'D': dur = THOTH_CODEX_DURABILITY_DEFERRED; given |= G_DEFERRED; break;
		case 'b': if ((rc = parse_u64("--budget-ms", optarg, &budget))) return rc; given |= G_BUDGET; break;
		case 'f': if ((rc = parse_u64("--from", optarg, &from))) return rc; given |= G_RANGE; break;
		/* 0 stands for "no bound" inside, so an explicit --to 0 or
		 * --until 0 escaped the backwards-range check below and read
		 * the whole stream: refused (no record has sequence 0 or a
		 * time of 0). */
		case 't':
			if ((rc = parse_u64("--to", optarg, &to)))
				return rc;
			if (!to) {
				fprintf(stderr, "thothctl: codex read: --to 0: sequence numbers start at 1\n");
				return 2;
			}
			given |= G_RANGE;
			break;
		case 's': if ((rc = parse_u64("--since", optarg, &since))) return rc; by_time = true; given |= G_RANGE; break;
		case 'u':
			if ((rc = parse_u64("--until", optarg, &until)))
				return rc;
			if (!until) {
				fprintf(stderr, "thothctl: codex read: --until 0: no record is that old "
					"(times are ns since the epoch)\n");
				return 2;
			}
			by_time = true;
			given |= G_RANGE;
			break;
		case 'h':
			printf("usage: thothctl codex [stats] [--json]\n"
			       "       thothctl codex create STREAM [--budget-ms N]\n"
			       "       thothctl codex append STREAM [--sync | --deferred] [--budget-ms N]  (a record per stdin line)\n"
			       "       thothctl codex read STREAM [--from SEQ] [--to SEQ] [--since NS] [--until NS] [--json]\n");
			return 0;
		case ':':
			return thothctl_usage_error("codex", "missing value for", thothctl_refused_word(argc, argv));
		default:
			return thothctl_usage_error("codex", "unknown option", thothctl_refused_word(argc, argv));
		}
	}
	const char *stream = optind < argc ? argv[optind] : NULL;
	bool needs_stream = strcmp(sub, "stats") != 0;
	if (strcmp(sub, "stats") && strcmp(sub, "create") && strcmp(sub, "append") && strcmp(sub, "read")) {
		return thothctl_usage_error("codex", "stats, create, append or read, not", sub);
	}
	if (needs_stream && (!stream || optind + 1 != argc)) {
		char cmd[16];   /* "codex append": the usage error's command */
		snprintf(cmd, sizeof cmd, "codex %s", sub);
		return thothctl_usage_error(cmd, "needs one STREAM", NULL);
	}
	if (!needs_stream && stream) {          /* `codex stats logs` printed the stats */
		fprintf(stderr, "thothctl: codex stats: unexpected argument %s (stats covers every stream)\n",
			stream);
		return 2;
	}
	/* An option of another subcommand was silently ignored (`create S
	 * --sync`, `read S --deferred`), and --sync --deferred kept the last. */
	unsigned allowed = !strcmp(sub, "append") ? G_SYNC | G_DEFERRED | G_BUDGET
			 : !strcmp(sub, "create") ? G_BUDGET : !strcmp(sub, "read") ? G_RANGE : 0;
	if (given & ~allowed) {
		unsigned extra = given & ~allowed;
		fprintf(stderr, "thothctl: codex %s: %s is not an option of %s\n", sub,
			extra & (G_SYNC | G_DEFERRED) ? "--sync/--deferred" : extra & G_BUDGET ? "--budget-ms"
			: "--from/--to/--since/--until", sub);
		return 2;
	}
	/* A range given backwards read nothing and exited 0, as an empty
	 * stream does: the operator could not tell a typo from no records. */
	if (to && from > to) {
		fprintf(stderr, "thothctl: codex read: --from %llu is past --to %llu\n",
			(unsigned long long)from, (unsigned long long)to);
		return 2;
	}
	if (until && since > until) {
		fprintf(stderr, "thothctl: codex read: --since %llu is past --until %llu\n",
			(unsigned long long)since, (unsigned long long)until);
		return 2;
	}
	if ((given & G_SYNC) && (given & G_DEFERRED)) {
		fprintf(stderr, "thothctl: codex append: --sync or --deferred, not both\n");
		return 2;
	}
	if (budget > 86400000ull) {
		fprintf(stderr, "thothctl: codex: --budget-ms %llu: at most 86400000\n", (unsigned long long)budget);
		return 2;
	}
	thoth_chan_t *ch;
	if ((rc = open_codex(opts, sub, stream, strcmp(sub, "append") ? CODEX_CALL_TIMEOUT_MS
										: CODEX_APPEND_TIMEOUT_MS, &ch)))
		return rc;
	thoth_client_t *c = thoth_chan_client(ch);
	rc = 0;
	if (!strcmp(sub, "stats")) {
		rc = cmd_stats(ch, opts);
	} else if (!strcmp(sub, "create")) {
		thoth_codex_Codex_create_req_t req = { .stream = thoth_str(stream), .budget_ms = (uint32_t)budget };
		thoth_codex_Codex_create_resp_t resp;
		int r = thoth_codex_Codex_create(c, &req, &resp, NULL);
		rc = r ? failed(ch, "create", stream, r) : 0;
	} else if (!strcmp(sub, "append")) {
		/* A line is read into a buffer one byte longer than a record
		 * may be: getline grew it without bound, so `< /dev/zero` ate
		 * memory until malloc failed -- and then ended the input as if
		 * it were done, exit 0, the rest not appended. */
		static char line[RECORD_MAX + 1];
		size_t n;
		while ((n = read_line(line, sizeof line, stdin)) != READ_EOF) {
			if (n == READ_LONG) {
				fprintf(stderr, "thothctl: codex append %s: record too large (at most %u bytes): "
					"a longer line; nothing after it was appended\n", stream, RECORD_MAX);
				rc = 1;
				break;
			}
			thoth_bytes_t rec = { .ptr = (const uint8_t *)line, .len = (uint32_t)n };
			thoth_codex_Codex_append_req_t req = {
				.stream = thoth_str(stream), .records = { .items = &rec, .count = 1 },
				.durability = (thoth_codex_Durability_t)dur, .budget_ms = (uint32_t)budget,
			};
			thoth_codex_Codex_append_resp_t resp;
			int r = thoth_codex_Codex_append(c, &req, &resp, NULL);
			if (r) {
				rc = failed(ch, "append", stream, r);
				break;
			}
			printf("%llu\n", (unsigned long long)resp.first_seq);
			fflush(stdout);
		}
		if (rc == 0 && ferror(stdin)) {
			fprintf(stderr, "thothctl: codex append %s: reading the input: %s\n", stream, strerror(errno));
			rc = 1;
		}
	} else {
		if (by_time) {
			thoth_codex_Codex_time_range_req_t req = { .stream = thoth_str(stream), .from_ns = since, .to_ns = until };
			thoth_codex_Codex_time_range_resp_t resp;
			int r = thoth_codex_Codex_time_range(c, &req, &resp, NULL);
			if (r) {
				rc = failed(ch, "read", stream, r);
				goto out;
			}
			if (resp.first_seq > from)
				from = resp.first_seq;
			if (resp.end_seq <= from) {
				printf(opts->json ? "[]\n" : "");
				goto out;
			}
			if (!to || resp.end_seq - 1 < to)
				to = resp.end_seq - 1;
		}
		if (opts->json)
			printf("[");
		bool first = true;
		for (;;) {
			thoth_codex_Codex_read_req_t req = { .stream = thoth_str(stream), .from_seq = from, .to_seq = to,
							     .max_records = 1024 };
			thoth_codex_Codex_read_resp_t resp;
			static uint64_t scratch[1 << 13];
			thoth_arena_t arena;
			thoth_arena_init(&arena, scratch, sizeof scratch);
			int r = thoth_codex_Codex_read(c, &req, &resp, &arena);
			if (r) {
				if (opts->json)
					printf("]\n");
				if (r == THOTH_E_REMOTE && c->remote_code == THOTH_CODEX_ERR_UNREADABLE) {
					/* The answers before ended just before it: FROM is
					 * the damaged record (or the first one asked for). */
					fflush(stdout);
					fprintf(stderr, "thothctl: codex read %s: record %llu does not read back "
						"intact (damaged on the disk: codex's log says how); the journal "
						"runs on: --from %llu reads past it\n", stream,
						(unsigned long long)from, (unsigned long long)from + 1);
					rc = 1;
				} else {
					rc = failed(ch, "read", stream, r);
				}
				goto out;
			}
			for (uint32_t k = 0; k < resp.records.count; k++) {
				const thoth_codex_Record_t *rec = &resp.records.items[k];
				if (opts->json) {
					printf("%s{\"seq\": %llu, \"data\": ", first ? "" : ", ", (unsigned long long)rec->seq);
					thothctl_json_str((const char *)rec->data.ptr, rec->data.len);
					/* "data" showed U+FFFD for bytes that are not
					 * UTF-8: the record itself, exactly */
					if (!thothctl_utf8_valid((const char *)rec->data.ptr, rec->data.len)) {
						printf(", \"base64\": ");
						base64_json(rec->data.ptr, rec->data.len);
					}
					printf("}");
				} else {
					printf("%llu\t", (unsigned long long)rec->seq);
					text_record(rec->data.ptr, rec->data.len);
				}
				first = false;
			}
			if (!resp.records.count || resp.next_seq <= from)
				break;
			from = resp.next_seq;
			if (to && from > to)
				break;
		}
		if (opts->json)
			printf("]\n");
	}
out:
	thoth_chan_close(ch);
	if (codex_pidfd >= 0)
		close(codex_pidfd);
	codex_pidfd = -1;
	return rc;
}
