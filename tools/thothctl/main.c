/*
 * thothctl - inspect a running thothd.
 *
 *   thothctl [--runtime-dir DIR] [--json] status
 *   thothctl [--runtime-dir DIR] [--json] services [--watch] [PREFIX]
 *   thothctl [--runtime-dir DIR] [--json] resolve NAME [--min-version V]
 *   thothctl [--runtime-dir DIR] [--json] trace start|stop|dump|--duration S ...  (trace.c)
 *   thothctl [--runtime-dir DIR] [--json] sched ...  (sched.c)
 *   thothctl [--runtime-dir DIR] [--json] pm  (pm.c)
 *   thothctl [--json] pm sim TRACE [--policy P] ...  (pm_sim.c; needs no thothd)
 *   thothctl [--runtime-dir DIR] [--json] locks [--pid P] [--top N] [--verbose]  (locks.c; needs no thothd)
 *   thothctl --help | --version
 *
 * The global options (--runtime-dir, --json, --help, --version) are parsed
 * here, once, for every command: a command is one row of `commands` below
 * and gets them in a thothctl_opts_t, its own arguments in argv with the
 * global options taken out wherever they stood.  A new command family (its
 * own file) adds one row and honours opts->json.
 *
 * Exit status: 0 done, 1 failed (thothd not running, name not found, ...),
 * 2 bad arguments.  Errors are one line on stderr.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.thoth.h"
#include "registry.thoth.h"
#include "thoth/service.h"
#include "thoth/version.h"
#include "pidpin.h"
#include "procfd.h"
#include "thothctl.h"

/* Daemon.status lists at most this many other hosts (THOTHD_STATUS_HOSTS,
 * kernel/thothd/thothd.h; idl/daemon.tidl "the first 256 of them by id"). */
#define THOTHCTL_STATUS_HOSTS_MAX 256u

static bool json;                /* --json (set once in main from the options) */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: thothctl [--runtime-dir DIR] [--json] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  status [--watch [MS]]           thothd's pid, uptime, clients, wake-ups\n"
		"                                  (--watch: every MS, default 1000, from the\n"
		"                                  shared table: no round trip each; and each\n"
		"                                  lifecycle event once, as it comes)\n"
		"  services [--watch] [PREFIX]     registered instances (and, with --watch,\n"
		"                                  every change as it happens)\n"
		"  resolve NAME [--min-version V]  the instance a client would be given\n"
		"  pm [--json]                     power elements, levels, leases, who kept\n"
		"                                  them awake, modelled energy\n"
		"  trace start [--categories LIST] [--pid PID]\n"
		"  trace stop\n"
		"  trace dump [--json FILE] [--ctf DIR]\n"
		"  trace --duration SECONDS [--categories LIST] [--pid PID]\n"
		"        [--json FILE] [--ctf DIR]\n"
		"                                  collect trace events from every thoth\n"
		"                                  process (`thothctl trace --help`)\n"
		"  sched [--duration SECONDS] [--json] | --from TRACE.json\n"
		"                                  wake-ups per process and why (sched.c)\n"
		"  codex [stats] | create S | append S [--sync|--deferred] | read S [--from SEQ]\n"
		"                                  the journal service (`thothctl codex --help`)\n"
		"  topology [NAME]                 NUMA nodes, CPUs, distances, the shared\n"
		"                                  resolve table, and which instance of NAME\n"
		"                                  a caller on each node is given\n"
		"  serve [--pid PID]               counters of processes serving with\n"
		"                                  thoth_serve(_per_cpu), workers folded\n"
		"  locks [--pid P] [--top N] [--verbose]\n"
		"                                  lock contention per lock and call site of\n"
		"                                  processes run as thothlock -- PROGRAM\n"
		"  pm sim TRACE [--policy P] [--device D | --cpu M] [--json]\n"
		"                                  replay a trace on the PM simulator\n"
		"                                  (modelled energy; `thothctl pm sim --help`)\n"
		"  moderation [--dev IF] [--probe] | --policy P --rate N\n"
		"                                  NIC / NVMe interrupt coalescing, or the\n"
		"                                  profile a moderation policy picks (PM-3)\n"
		"  probe check FILE.o              verify an eBPF object (`thothctl probe --help`)\n"
		"  probe attach FILE.o (--pid PID | --service NAME) | list | detach ID | maps ID\n"
		"                                  eBPF probes in running processes\n"
		"  probe kernel FILE.o | run 'SCRIPT' (--pid PID | --service NAME)\n"
		"                                  kernel programs held by thothd; the\n"
		"                                  one-line script language\n"
		"\n"
		"options:\n"
		"  --runtime-dir DIR   thothd's runtime dir (default: $THOTH_RUNTIME_DIR,\n"
		"                      else $XDG_RUNTIME_DIR/thoth, else /tmp/thoth-$UID)\n"
		"  --json              machine-readable output (JSON objects, one a line;\n"
		"                      a report such as sched's is one object);\n"
		"                      every command honours it\n"
		"  -h, --help          this text\n"
		"  --version           print the version\n"
		"  --                  (before COMMAND) ends the global options\n");
}

/* A usage error: one line naming it and where the usage is, exit 2.  The
 * whole usage (50 lines) followed the line before, burying it, where
 * thothctl(1) says errors are one line on stderr.  Every command's usage
 * errors come here (thothctl.h): trace, pm sim, moderation and probe
 * printed their whole usage after the line too (ops40). */
int thothctl_usage_error(const char *cmd, const char *what, const char *arg)
{
	/* ARG is the user's word, shown as text: "thothctl status $'x\e[31m'"
	 * wrote its ESC to the terminal raw (hostile46 review) */
	const char *shown = arg ? peertext_textz(arg) : "";
	if (cmd)
		fprintf(stderr, "thothctl: %s: %s%s%s (thothctl %s --help lists its options)\n", cmd, what,
			arg ? " " : "", shown, cmd);
	else
		fprintf(stderr, "thothctl: %s%s%s (thothctl --help lists the commands and options)\n",
			what, arg ? " " : "", shown);
	return 2;
}

const char *thothctl_empty_option(const struct option *options, int *li)
{
	int i = *li;
	*li = -1;
	/* optarg is NULL after an option that takes no value (getopt_long
	 * clears it each call); I is -1 after a short option (only -h here). */
	if (i < 0 || options[i].has_arg == no_argument || !optarg || optarg[0])
		return NULL;
	return options[i].name;
}

int thothctl_empty_value(const char *cmd, const char *name, const char *takes)
{
	char what[96];
	snprintf(what, sizeof what, "--%s needs a value, not an empty one%s", name, takes ? ": one of" : "");
	return thothctl_usage_error(cmd, what, takes);
}

/* The word holding the option getopt_long just refused.  argv[optind - 1]
 * is it for a long option and for a short one ending its word, but getopt
 * leaves optind on a word of short options until their last letter: `trace
 * start -xj` named start, and `status --watch -500` the valid --watch, as
 * the unknown option.  optopt is the refused letter then. */
const char *thothctl_refused_word(int argc, char *const *argv)
{
	const char *before = argv[optind - 1], *at = optind < argc ? argv[optind] : NULL;
	bool short_before = before[0] == '-' && before[1] && before[1] != '-';
	if (optopt > 0 && at && at[0] == '-' && at[1] && at[1] != '-' && strchr(at + 1, optopt) &&
	    !(short_before && before[strlen(before) - 1] == optopt))
		return at;
	return before;
}

static int usage_error(const char *what, const char *arg)
{
	return thothctl_usage_error(NULL, what, arg);
}

/* ---- output helpers ---------------------------------------------------------------- */

static const char *locality_name(thoth_common_Locality_t l)
{
	switch (l) {
	case THOTH_COMMON_LOCALITY_NUMA: return "numa";
	case THOTH_COMMON_LOCALITY_HOST: return "host";
	case THOTH_COMMON_LOCALITY_REMOTE: return "remote";
	default: return "any";
	}
}

static const char *kind_name(thoth_registry_ChangeKind_t k)
{
	switch (k) {
	case THOTH_REGISTRY_CHANGE_KIND_ADDED: return "added";
	case THOTH_REGISTRY_CHANGE_KIND_REMOVED: return "removed";
	case THOTH_REGISTRY_CHANGE_KIND_EXPIRED: return "expired";
	case THOTH_REGISTRY_CHANGE_KIND_LOAD: return "load";
	default: return "unknown";
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Is IN's process stopped (SIGSTOP, a debugger: state T or t)?  It stays
 * registered and resolvable -- its connection is open -- and looks alive
 * to thothd; this is display only.  Local instances only, their pid pinned
 * by a pidfd while /proc/PID/stat is read (procfd.h): an exited one whose
 * number another process took is never said to be stopped. */
static bool instance_stopped(const thoth_registry_Instance_t *in)
{
	const thoth_common_Endpoint_t *ep = &in->registration.endpoint;
	if (ep->locality == THOTH_COMMON_LOCALITY_REMOTE || !ep->pid)
		return false;
	char why[128], buf[512];
	int pidfd = -1;
	if (thothctl_pid_pin(ep->pid, &pidfd, why, sizeof why))
		return false;                   /* gone */
	ssize_t n = thoth__proc_read_pinned(ep->pid, pidfd, "stat", buf, sizeof buf);
	if (pidfd >= 0)
		close(pidfd);
	char state = n > 0 ? thothctl_stat_state(buf, NULL, 0) : 0;
	return state == 'T' || state == 't';
}

static void instance_json(const thoth_registry_Instance_t *in, const char *event)
{
	const thoth_registry_Registration_t *r = &in->registration;
	printf("{");
	if (event)
		printf("\"event\":\"%s\",", event);
	printf("\"name\":");
	thothctl_json_str(r->name.ptr, r->name.len);
	printf(",\"version\":");
	thothctl_json_str(r->version.ptr, r->version.len);
	printf(",\"endpoint\":");
	thothctl_json_str(r->endpoint.addr.ptr, r->endpoint.addr.len);
	printf(",\"numa_node\":%u,\"locality\":\"%s\",\"instance_id\":%llu,\"pid\":%u,"
	       "\"features\":%llu,\"ttl_ms\":%u,\"lease\":\"%016llx\",\"registered_at_ns\":%llu,"
	       "\"expires_at_ns\":%llu,\"owner_uid\":%u,",
	       r->endpoint.numa_node, locality_name(r->endpoint.locality),
	       (unsigned long long)r->endpoint.instance_id, r->endpoint.pid,
	       (unsigned long long)r->features, r->ttl_ms, (unsigned long long)in->lease,
	       (unsigned long long)in->registered_at_ns, (unsigned long long)in->expires_at_ns,
	       in->owner_uid);
	/* its last load report (Registry.report_load, SCALE-3): 0 and 0 until one */
	printf("\"utilization_permille\":%u,\"qps\":%u,", in->utilization_permille, in->qps);
	/* only when true: a running instance's object is as before */
	if (instance_stopped(in))
		printf("\"stopped\":true,");
	printf("\"claims\":[");
	for (uint32_t i = 0; i < r->claims.count; i++) {
		const thoth_common_InterfaceClaim_t *c = &r->claims.items[i];
		/* package and interface come from the registrant: escaped */
		char qualified[512];
		int n = snprintf(qualified, sizeof qualified, "%.*s.%.*s", (int)c->package.len,
				 c->package.ptr, (int)c->interface.len, c->interface.ptr);
		printf("%s{\"interface\":", i ? "," : "");
		thothctl_json_str(qualified, n < 0 ? 0 : (size_t)n < sizeof qualified ? (size_t)n : sizeof qualified - 1);
		printf(",\"version\":\"%u.%u\",\"schema_hash\":\"%016llx\"}", c->major, c->minor,
		       (unsigned long long)c->schema_hash);
	}
	printf("]}\n");
}

/* Column widths for a table of instances. */
typedef struct widths {
	int name, version, endpoint;
} widths_t;

/* The registrant's strings as they are shown (peertext_text: a C1 control
 * or a byte that is not UTF-8 in an address is \xNN, four columns) and in
 * terminal columns, not bytes (an "é" is one, a CJK character two). */
static void widen(widths_t *w, const thoth_registry_Instance_t *in)
{
	const thoth_registry_Registration_t *r = &in->registration;
	int n = peertext_cols(peertext_text(r->name.ptr, r->name.len));
	if (n > w->name)
		w->name = n;
	n = peertext_cols(peertext_text(r->version.ptr, r->version.len));
	if (n > w->version)
		w->version = n;
	n = peertext_cols(peertext_text(r->endpoint.addr.ptr, r->endpoint.addr.len));
	if (n > w->endpoint)
		w->endpoint = n;
}

static void table_header(const widths_t *w, bool event)
{
	printf("%s%-*s  %-*s  %-*s  %4s  %-6s  %7s  %-16s  %s\n", event ? "EVENT    " : "",
	       w->name, "NAME", w->version, "VERSION", w->endpoint, "ENDPOINT", "NUMA", "WHERE",
	       "PID", "LEASE", "EXPIRES IN");
}

static void table_row(const widths_t *w, const thoth_registry_Instance_t *in, const char *event)
{
	const thoth_registry_Registration_t *r = &in->registration;
	uint64_t now = now_ns();
	double left = in->expires_at_ns > now ? (double)(in->expires_at_ns - now) / 1e9 : 0.0;
	char expires[32];
	if (in->expires_at_ns == UINT64_MAX)    /* held by its connection: no TTL */
		snprintf(expires, sizeof expires, "never");
	else
		snprintf(expires, sizeof expires, "%.1fs", left);
	if (event)
		printf("%-8s ", event);
	const char *name = peertext_text(r->name.ptr, r->name.len);
	const char *version = peertext_text(r->version.ptr, r->version.len);
	const char *addr = peertext_text(r->endpoint.addr.ptr, r->endpoint.addr.len);
	/* Its last load report and a stopped process: said after the row,
	 * whose columns stay as they are. */
	char load[64] = "";
	if (in->utilization_permille || in->qps)
		snprintf(load, sizeof load, "  (load: %u.%u%% busy, %u qps)", in->utilization_permille / 10,
			 in->utilization_permille % 10, in->qps);
	printf("%-*s  %-*s  %-*s  %4u  %-6s  %7u  %016llx  %s%s%s\n", peertext_field(name, w->name),
	       name, peertext_field(version, w->version), version,
	       peertext_field(addr, w->endpoint), addr, r->endpoint.numa_node,
	       locality_name(r->endpoint.locality), r->endpoint.pid, (unsigned long long)in->lease,
	       expires, load, instance_stopped(in) ? "  (stopped: SIGSTOP or a debugger; still registered)" : "");
}

/* ---- commands ------------------------------------------------------------------------ */

/* Does something still listen at PATH?  A connection thothd closed is told
 * apart from a thothd that exited: it closes one that does not read its
 * answers (8 MiB unsent) or is past a connection limit, and runs on. */
static bool still_listening(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (!path[0] || strlen(path) >= sizeof sa.sun_path)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* Non-blocking: a blocking connect waits while thothd's backlog is
	 * full or its loop is stopped.  EAGAIN (backlog full) is a listener
	 * too; ECONNREFUSED or ENOENT is none. */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	bool up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN ||
		  errno == EINPROGRESS;
	close(fd);
	return up;
}

/*
 * The pid of whoever holds the other end of CTL, and its command name.
 * SO_PEERCRED of the connected socket names the listener itself; the pid
 * file beside the socket only when the socket cannot say, and only while a
 * thothd holds its lock (runtime.c): a stale file names whatever process
 * later took that pid (a stopped sleep was told "kill -CONT").  WHY gets why
 * no pid is known, or, for a pid read from the file, the file's path
 * (*FROM_FILE set: that pid is what the file says, not the listener).
 * SO_PEERCRED gives pid 0 to a thothctl in another pid namespace than
 * thothd's (test_cli_pidfile hides it with a shim).
 */
static int listener_pid(const thoth_control_t *ctl, char *why, size_t why_len, bool *from_file)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	*from_file = false;
	if (ctl->sock.fd >= 0 && getsockopt(ctl->sock.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    cred.pid > 0)
		return cred.pid;
	char pidfile[sizeof ctl->path + 16];
	const char *slash = strrchr(ctl->path, '/');
	if (!slash || snprintf(pidfile, sizeof pidfile, "%.*s/thothd.pid", (int)(slash - ctl->path),
			       ctl->path) >= (int)sizeof pidfile) {
		snprintf(why, why_len, "no pid file path beside it");
		return 0;
	}
	int fd = open(pidfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, why_len, errno == ENOENT ? "no thothd pid file beside it: is it thothd?" :
			 "its pid file %s cannot be read: %s", pidfile, strerror(errno));
		return 0;
	}
	/* Held: thothd's exclusive lock refuses our shared one. */
	bool held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	if (!held)
		flock(fd, LOCK_UN);
	char buf[32] = { 0 };
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	int e = errno;
	close(fd);
	int pid = n > 0 ? atoi(buf) : 0;
	if (n < 0)
		snprintf(why, why_len, "its pid file %s cannot be read: %s", pidfile, strerror(e));
	else if (!held)
		snprintf(why, why_len, "its pid file %s is stale: no thothd holds it", pidfile);
	else if (pid <= 0)
		snprintf(why, why_len, "its pid file %s holds no pid", pidfile);
	else
		snprintf(why, why_len, "%s", pidfile);
	*from_file = held && pid > 0;
	return held && pid > 0 ? pid : 0;
}

/*
 * thothd took the connection and did not answer: it said "status: timed
 * out", naming neither thothd nor what is wrong with it.  The listener's
 * pid and /proc tell a stopped thothd (SIGSTOP, a debugger: state T or t)
 * from a busy or wedged one, and a listener that is not thothd at all.
 */
static void say_no_answer(const thoth_control_t *ctl, const char *what)
{
	char buf[512], comm[64] = "", why[sizeof ctl->path + 128] = "";
	char state = 0;
	bool from_file;
	int pid = listener_pid(ctl, why, sizeof why, &from_file);
	/* The listener (its pid from the socket) pinned while /proc/PID is
	 * read (procfd.h): one that exited meanwhile may have left its pid to
	 * another process, whose name and state would be said as the
	 * listener's.  A pid file's pid is not pinned: its lock says the
	 * holder lives, and it may be a pid of another namespace. */
	char pin_why[96];
	int pidfd = -1;
	bool gone = pid && !from_file && thothctl_pid_pin((uint32_t)pid, &pidfd, pin_why, sizeof pin_why) &&
		    errno == ESRCH;
	if (pid && !gone) {
		ssize_t n = thoth__proc_read_pinned((uint32_t)pid, pidfd, "stat", buf, sizeof buf);
		if (n > 0)
			state = thothctl_stat_state(buf, comm, sizeof comm);
		gone = n < 0 && errno == ESRCH && pidfd >= 0;
	}
	if (pidfd >= 0)
		close(pidfd);
	unsigned s = ctl->sock.timeout_ms ? (ctl->sock.timeout_ms + 999) / 1000 : 0;
	bool thothd = strcmp(comm, "thothd") == 0;
	if (gone)
		fprintf(stderr, "thothctl: %s: the process listening at %s (pid %d) exited without "
			"answering (within %u s)\n", what, ctl->path, pid, s);
	else if (thothd && (state == 'T' || state == 't'))
		fprintf(stderr, "thothctl: %s: thothd (pid %d) is stopped (SIGSTOP or a debugger) and "
			"answers nothing: kill -CONT %d\n", what, pid, pid);
	else if (thothd)
		fprintf(stderr, "thothctl: %s: thothd at %s (pid %d) did not answer within %u s: busy "
			"or stuck (its log may say which)\n", what, ctl->path, pid, s);
	else if (from_file)
		/* Held by something that is not thothd (or thothd is gone and its
		 * pid reused): the file's pid is not the listener's. */
		fprintf(stderr, "thothctl: %s: the process listening at %s did not answer within %u s "
			"(its pid file %s names pid %d (%s), which is not thothd)\n", what, ctl->path, s,
			why, pid, comm[0] ? peertext_textz(comm) : "gone");
	else if (pid && state)
		fprintf(stderr, "thothctl: %s: the process listening at %s (pid %d, %s%s) did not answer "
			"within %u s: it is not thothd\n", what, ctl->path, pid, peertext_textz(comm),
			state == 'T' || state == 't' ? ", stopped" : "", s);
	else
		fprintf(stderr, "thothctl: %s: the process listening at %s did not answer within %u s "
			"(%s)\n", what, ctl->path, s, why[0] ? why : "its pid is unknown");
}

/* An answer begun and not finished (the reader holds part of one message,
 * nothing handed out): how many bytes came, and of how many (0: its header
 * did not come whole).  A listener that stopped or hung up mid-answer was
 * said as one that did not answer at all. */
static bool partial_answer(const thoth_control_t *ctl, size_t *have, size_t *want)
{
	const thoth_stream_reader_t *rd = &ctl->sock.reader;
	if (rd->consumed || !rd->len || !rd->buf)
		return false;
	*have = rd->len;
	if (thoth_wire_msg_size(rd->buf, rd->len, UINT32_MAX, want) != 1)
		*want = 0;
	return true;
}

int thothctl_call_failed(thoth_control_t *ctl, const char *what, int r)
{
	size_t have, want;
	/* What came back was no answer to this call (cli47: a fake thothd's
	 * lies came out as "protocol violation by peer", "message too large"
	 * or a bare timeout, naming neither the listener nor the fault). */
	if ((r == THOTH_E_TIMEDOUT || r == THOTH_E_PEER_GONE) && partial_answer(ctl, &have, &want)) {
		char of[48] = "";
		if (want)
			snprintf(of, sizeof of, " of its %zu", want);
		unsigned sec = ctl->sock.timeout_ms ? (ctl->sock.timeout_ms + 999) / 1000 : 0;
		if (r == THOTH_E_PEER_GONE)
			fprintf(stderr, "thothctl: %s: the answer from %s was cut short: the connection closed "
				"after %zu bytes%s\n", what, ctl->path, have, of);
		else
			fprintf(stderr, "thothctl: %s: the answer from %s stopped after %zu bytes%s (nothing more "
				"within %u s)\n", what, ctl->path, have, of, sec);
		return 1;
	}
	/* Said of the answer only when one came: the same codes from
	 * encoding our own request (a non-UTF-8 argument: BAD_UTF8, one too
	 * large: TOO_LARGE) are the request's, said as before.  The reader
	 * holds the header the transport refused; the client holds a reply
	 * it could not take. */
	const thoth_stream_reader_t *rd = &ctl->sock.reader;
	size_t announced = 0;
	if (r == THOTH_E_TOO_LARGE && rd->buf && !rd->consumed &&
	    thoth_wire_msg_size(rd->buf, rd->len, UINT32_MAX, &announced) == 1 &&
	    announced - THOTH_WIRE_HEADER_SIZE > rd->max_body) {
		fprintf(stderr, "thothctl: %s: the answer from %s announces a body of %zu bytes, more than "
			"a message may hold (%u): refused unread\n", what, ctl->path,
			announced - THOTH_WIRE_HEADER_SIZE, rd->max_body);
		return 1;
	}
	if (r == THOTH_E_BAD_MAGIC && rd->buf && rd->len >= 4 && !rd->consumed &&
	    thoth_le32(rd->buf) != THOTH_WIRE_MAGIC) {
		fprintf(stderr, "thothctl: %s: what answered at %s sent no thoth message (bad magic): is it "
			"thothd?\n", what, ctl->path);
		return 1;
	}
	bool answered = ctl->client.holding_reply;
	if (answered && r == THOTH_E_PROTOCOL) {
		fprintf(stderr, "thothctl: %s: the answer from %s is not an answer to this call (another "
			"method or interface): refused\n", what, ctl->path);
		return 1;
	}
	if (answered && r <= THOTH_E_TRUNCATED && r >= THOTH_E_BAD_NUL) {      /* the wire decoder's verdicts */
		fprintf(stderr, "thothctl: %s: the answer from %s is malformed (%s): refused\n", what,
			ctl->path, thoth_strerror(r));
		return 1;
	}
	if (r == THOTH_E_TIMEDOUT && ctl->sock.stray_answers) {
		unsigned sec = ctl->sock.timeout_ms ? (ctl->sock.timeout_ms + 999) / 1000 : 0;
		fprintf(stderr, "thothctl: %s: what listens at %s sent %u answer%s to no call of this "
			"connection (another request id) and none to this one within %u s: is it thothd?\n",
			what, ctl->path, ctl->sock.stray_answers, ctl->sock.stray_answers == 1 ? "" : "s", sec);
		return 1;
	}
	if (r == THOTH_E_TIMEDOUT)
		say_no_answer(ctl, what);
	else if (r == THOTH_E_REMOTE)
		fprintf(stderr, "thothctl: %s: %s\n", what, peertext_textz(ctl->client.remote_message));
	else if (r == THOTH_E_PEER_GONE && still_listening(ctl->path))
		fprintf(stderr, "thothctl: %s: thothd closed this connection and still runs (an answer "
			"it would not queue, or a connection limit: its log says which)\n", what);
	else if (r == THOTH_E_PEER_GONE)        /* not the bare "peer gone" */
		fprintf(stderr, "thothctl: %s: thothd went away (exited or killed: its log says why)\n",
			what);
	else
		fprintf(stderr, "thothctl: %s: %s\n", what, thoth_strerror(r));
	return 1;
}

/* OBS-3: a wall-clock time as "2026-12-03T18:55:01.123Z" (UTC). */
static const char *utc_text(uint64_t unix_ns, char *buf, size_t cap)
{
	time_t s = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;
	if (!unix_ns || !gmtime_r(&s, &tm))
		return "an unknown time";
	size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, cap - n, ".%03uZ", (unsigned)(unix_ns / 1000000ull % 1000));
	return buf;
}

/* A duration for a reader: "40 ms", "12.3 s", "3 min 02 s", "2 h 05 min". */
static const char *span_text(uint64_t ns, char *buf, size_t cap)
{
	uint64_t ms = ns / 1000000ull, s = ns / 1000000000ull;
	if (ms < 1000)
		snprintf(buf, cap, "%llu ms", (unsigned long long)ms);
	else if (s < 60)
		snprintf(buf, cap, "%.1f s", (double)ns / 1e9);
	else if (s < 3600)
		snprintf(buf, cap, "%llu min %02llu s", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, cap, "%llu h %02llu min", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60));
	return buf;
}

/* One lifecycle event as a JSON object's members (no braces): what
 * thothctl status --json and status --watch --json print. */
void thothctl_lifecycle_event_json(const thoth_daemon_LifecycleEvent_t *e, uint64_t now)
{
	printf("\"kind\":");
	thothctl_json_str(e->kind.ptr, e->kind.len);
	printf(",\"at_unix_ns\":%llu,\"at_ns\":%llu,\"ago_ns\":%llu,\"service\":",
	       (unsigned long long)e->at_unix_ns, (unsigned long long)e->at_ns,
	       (unsigned long long)(now > e->at_ns ? now - e->at_ns : 0));
	thothctl_json_str(e->service.ptr, e->service.len);
	printf(",\"version\":");
	thothctl_json_str(e->version.ptr, e->version.len);
	printf(",\"lease\":\"%016llx\",\"pid\":%u,\"pid_state\":", (unsigned long long)e->lease,
	       e->pid);
	thothctl_json_str(e->pid_state.ptr, e->pid_state.len);
	printf(",\"gap_ns\":%llu,\"previous_pid\":%u,\"predecessor_pid\":%u,"
	       "\"predecessor_started_unix_ns\":%llu",
	       (unsigned long long)e->gap_ns, e->previous_pid, e->predecessor_pid,
	       (unsigned long long)e->predecessor_started_unix_ns);
}

/* The lifecycle history of Daemon.status (1.5), as JSON members after
 * the others: "events" (null from an older thothd, which keeps none),
 * "events_dropped", "events_capacity". */
static void status_events_json(const thoth_daemon_Daemon_status_resp_t *st, uint64_t now)
{
	printf(",\"events_capacity\":%u,\"events_dropped\":%llu,\"events\":", st->events_capacity,
	       (unsigned long long)st->events_dropped);
	if (!st->events_capacity) {
		printf("null");
		return;
	}
	printf("[");
	for (uint32_t i = 0; i < st->events.count; i++) {
		printf("%s{", i ? "," : "");
		thothctl_lifecycle_event_json(&st->events.items[i], now);
		printf("}");
	}
	printf("]");
}

static bool is_kind(const thoth_daemon_LifecycleEvent_t *e, const char *kind)
{
	return e->kind.len == strlen(kind) && memcmp(e->kind.ptr, kind, e->kind.len) == 0;
}

/* One lifecycle event as a line (newline included): when (UTC, and how
 * long ago), what, and what it says of the process.  thothctl status and
 * status --watch. */
void thothctl_lifecycle_event_text(const thoth_daemon_LifecycleEvent_t *e, uint64_t now)
{
	char when[48], ago[32], gap[32], pred[48];
	printf("%s  %s ago  %-12s ", utc_text(e->at_unix_ns, when, sizeof when),
	       span_text(now > e->at_ns ? now - e->at_ns : 0, ago, sizeof ago),
	       peertext_text(e->kind.ptr, e->kind.len));
	if (is_kind(e, "started")) {
		printf("thothd pid %u", e->pid);
		if (e->predecessor_pid)
			printf(", replacing pid %u (started %s), which did not stop cleanly "
			       "(killed or crashed)", e->predecessor_pid,
			       utc_text(e->predecessor_started_unix_ns, pred, sizeof pred));
		printf("\n");
		return;
	}
	printf("%s %s pid %u", peertext_text(e->service.ptr, e->service.len),
	       peertext_text(e->version.ptr, e->version.len), e->pid);
	if (is_kind(e, "lost"))
		printf(": its connection closed while registered; process %s",
		       peertext_text(e->pid_state.ptr, e->pid_state.len));
	else if (is_kind(e, "reregistered"))
		printf(", %s after pid %u was lost", span_text(e->gap_ns, gap, sizeof gap), e->previous_pid);
	printf("\n");
}

/* The same as text, newest last: when (absolute, UTC, and how long ago),
 * what, and what it says of the process.  Every string is thothd's (a
 * service's name and version: a peer's), shown through peertext_text. */
static void status_events_text(const thoth_daemon_Daemon_status_resp_t *st, uint64_t now)
{
	if (!st->events_capacity) {
		printf("  recent events   not kept by this thothd (older than Daemon 1.5: "
		       "its log says what came and went)\n");
		return;
	}
	printf("  recent events   %u, newest last (thothd keeps the last %u", st->events.count,
	       st->events_capacity);
	if (st->events_dropped)
		printf("; %llu older dropped", (unsigned long long)st->events_dropped);
	printf(")\n");
	for (uint32_t i = 0; i < st->events.count; i++) {
		printf("    ");
		thothctl_lifecycle_event_text(&st->events.items[i], now);
	}
}

static bool fed_on(const thoth_daemon_Federation_t *fe)
{
	return fe->state.len == 2 && memcmp(fe->state.ptr, "on", 2) == 0;
}

/* SCALE-3: Daemon.status's federation (1.6) as the JSON member
 * "federation": null from an older thothd (it did not say), {"enabled":
 * false} without --etcd, else what thothd holds of etcd and the other
 * hosts.  Host ids are other hosts' strings (a peer's). */
static void status_federation_json(const thoth_daemon_Federation_t *fe)
{
	printf(",\"federation\":");
	if (!fe->state.len) {
		printf("null");
		return;
	}
	if (!fed_on(fe)) {
		printf("{\"enabled\":false}");
		return;
	}
	printf("{\"enabled\":true,\"etcd\":");
	thothctl_json_str(fe->etcd.ptr, fe->etcd.len);
	printf(",\"etcd_up\":%s,\"etcd_down_for_ns\":%llu,\"host_id\":", fe->etcd_up ? "true" : "false",
	       (unsigned long long)fe->etcd_down_for_ns);
	thothctl_json_str(fe->host_id.ptr, fe->host_id.len);
	printf(",\"lease_ttl_s\":%u,\"lease_alive\":%s,\"watching\":%s,\"local_instances\":%u,"
	       "\"remote_instances\":%u,\"conflicts\":%u,\"left_out\":%llu,\"hosts_total\":%u,\"hosts\":[",
	       fe->lease_ttl_s, fe->lease_alive ? "true" : "false", fe->watching ? "true" : "false", fe->local,
	       fe->remote, fe->conflicts, (unsigned long long)fe->left_out, fe->hosts_total);
	for (uint32_t i = 0; i < fe->hosts.count; i++) {
		const thoth_daemon_FederationHost_t *h = &fe->hosts.items[i];
		printf("%s{\"id\":", i ? "," : "");
		thothctl_json_str(h->id.ptr, h->id.len);
		printf(",\"instances\":%u,\"last_seen_ago_ns\":%llu}", h->instances,
		       (unsigned long long)h->last_seen_ago_ns);
	}
	printf("]}");
}

static void status_federation_text(const thoth_daemon_Federation_t *fe)
{
	char span[32];
	if (!fe->state.len) {
		printf("  federation      not said by this thothd (older than Daemon 1.6: its log and "
		       "/metrics say)\n");
		return;
	}
	if (!fed_on(fe)) {
		printf("  federation      off (thothd runs without --etcd: this host's services only)\n");
		return;
	}
	printf("  federation      host %s, etcd %s ", peertext_text(fe->host_id.ptr, fe->host_id.len),
	       peertext_text(fe->etcd.ptr, fe->etcd.len));
	if (fe->etcd_up)
		printf("answers\n");
	else if (fe->etcd_down_for_ns)
		printf("DOES NOT ANSWER for %s (serving this host's services only, retrying)\n",
		       span_text(fe->etcd_down_for_ns, span, sizeof span));
	else
		printf("not answered yet\n");
	printf("    lease         TTL %u s, %s; watch %s\n", fe->lease_ttl_s,
	       fe->lease_alive ? "alive" : "NONE (not granted, or lost)", fe->watching ? "open" : "NOT OPEN");
	printf("    instances     %u local mirrored, %u remote from %u other host%s\n", fe->local, fe->remote,
	       fe->hosts_total, fe->hosts_total == 1 ? "" : "s");
	printf("    left out      %u remote conflicting with a local instance (handed out last), "
	       "%llu keys not taken (the log says which)\n", fe->conflicts, (unsigned long long)fe->left_out);
	for (uint32_t i = 0; i < fe->hosts.count; i++) {
		const thoth_daemon_FederationHost_t *h = &fe->hosts.items[i];
		const char *id = peertext_text(h->id.ptr, h->id.len);
		printf("    host %-*s %u instance%s, last seen %s ago\n", peertext_field(id, 20), id,
		       h->instances, h->instances == 1 ? "" : "s", span_text(h->last_seen_ago_ns, span, sizeof span));
	}
	if (fe->hosts.count < fe->hosts_total)
		printf("    ... and %u more other hosts, not listed (thothd lists the first %u by id)\n",
		       fe->hosts_total - fe->hosts.count, fe->hosts.count);
}

/* What no thothd answers (cli47): the federation's counts and list, the
 * ages and the lifecycle list against each other (docs/THOTHD.md "status
 * refuses an answer that contradicts itself").  Whatever answers at the
 * socket chose them: a status that lies is refused, naming the lie, not
 * printed as a fact (three hosts listed under hosts_total 1 printed "6
 * remote from 1 other host" above the three, exit 0; a host last seen
 * UINT64_MAX ns ago "5124095 h 34 min ago").  true, and WHY, for one. */
static bool status_contradicts(const thoth_daemon_Daemon_status_resp_t *st, char *why, size_t cap)
{
	/* an age may exceed thothd's uptime by the time between the two
	 * clock reads of one answer, never by more than this */
	const uint64_t slack = 1000000000ull;
	if (st->events_capacity && st->events.count > st->events_capacity) {
		snprintf(why, cap, "%u lifecycle events listed, but thothd keeps %u", st->events.count,
			 st->events_capacity);
		return true;
	}
	const thoth_daemon_Federation_t *fe = &st->federation;
	if (!fed_on(fe))
		return false;
	if (fe->hosts.count > fe->hosts_total) {
		snprintf(why, cap, "%u other hosts listed, but hosts_total says %u", fe->hosts.count,
			 fe->hosts_total);
		return true;
	}
	if (fe->hosts.count > THOTHCTL_STATUS_HOSTS_MAX) {
		snprintf(why, cap, "%u other hosts listed; thothd lists at most %u", fe->hosts.count,
			 THOTHCTL_STATUS_HOSTS_MAX);
		return true;
	}
	if (fe->hosts_total > fe->remote) {
		snprintf(why, cap, "%u other hosts with instances here, but only %u remote instances",
			 fe->hosts_total, fe->remote);
		return true;
	}
	uint64_t sum = 0;
	for (uint32_t i = 0; i < fe->hosts.count; i++) {
		const thoth_daemon_FederationHost_t *h = &fe->hosts.items[i];
		sum += h->instances;
		if (!h->instances || h->last_seen_ago_ns > st->uptime_ns + slack) {
			char span[2][32];
			if (h->instances)
				snprintf(why, cap, "host %s last seen %s ago, but thothd is up %s",
					 peertext_text(h->id.ptr, h->id.len),
					 span_text(h->last_seen_ago_ns, span[0], sizeof span[0]),
					 span_text(st->uptime_ns, span[1], sizeof span[1]));
			else
				snprintf(why, cap, "host %s listed with no instance",
					 peertext_text(h->id.ptr, h->id.len));
			return true;
		}
	}
	if (sum > fe->remote || (fe->hosts.count == fe->hosts_total && sum != fe->remote)) {
		snprintf(why, cap, "the %u hosts listed hold %llu instances, but remote_instances says %u",
			 fe->hosts.count, (unsigned long long)sum, fe->remote);
		return true;
	}
	if (fe->etcd_down_for_ns > st->uptime_ns + slack) {
		char span[2][32];
		snprintf(why, cap, "etcd down for %s, but thothd is up %s",
			 span_text(fe->etcd_down_for_ns, span[0], sizeof span[0]),
			 span_text(st->uptime_ns, span[1], sizeof span[1]));
		return true;
	}
	return false;
}

static int cmd_status(thoth_control_t *ctl)
{
	thoth_daemon_Daemon_status_req_t req = { .with_events = true, .with_federation = true };
	thoth_daemon_Daemon_status_resp_t st;
	/* The lifecycle history's list (64 events from thothd, ~12 KiB
	 * decoded) is decoded here; a status beyond it fails as such. */
	static _Alignas(16) uint8_t scratch[256 * 1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_daemon_Daemon_status(&ctl->client, &req, &st, &arena);
	if ((r == THOTH_E_NOMEM || r == THOTH_E_NO_SPACE) && ctl->client.holding_reply) {
		/* the arena: an answer no thothd sends (64 events, 256 hosts) */
		fprintf(stderr, "thothctl: status: the answer from %s decodes to more than the %zu KiB "
			"thothctl takes for it (thothd lists at most 64 events and %u hosts): refused\n",
			ctl->path, sizeof scratch / 1024, THOTHCTL_STATUS_HOSTS_MAX);
		return 1;
	}
	if (r)
		return thothctl_call_failed(ctl, "status", r);
	char why[512];
	if (status_contradicts(&st, why, sizeof why)) {
		fprintf(stderr, "thothctl: status: the answer from %s contradicts itself: %s; refused "
			"(is what listens there thothd?)\n", ctl->path, why);
		return 1;
	}
	if (json) {
		printf("{\"pid\":%u,\"version\":", st.pid);
		thothctl_json_str(st.version.ptr, st.version.len);
		printf(",\"runtime_dir\":");
		thothctl_json_str(st.runtime_dir.ptr, st.runtime_dir.len);
		printf(",\"uptime_ns\":%llu,\"clients\":%u,\"registrations\":%u,\"watches\":%u,"
		       "\"wakeups\":%llu,\"wakeups_fd\":%llu,\"wakeups_timer\":%llu,"
		       "\"timers_fired\":%llu,\"next_expiry_ns\":%llu,\"dashboard_url\":",
		       (unsigned long long)st.uptime_ns, st.clients, st.registrations, st.watches,
		       (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_fd,
		       (unsigned long long)st.wakeups_timer, (unsigned long long)st.timers_fired,
		       (unsigned long long)st.next_expiry_ns);
		/* null: no dashboard serves (--http-port off, port taken, older thothd). */
		if (st.dashboard_url.len)
			thothctl_json_str(st.dashboard_url.ptr, st.dashboard_url.len);
		else
			printf("null");
		status_events_json(&st, now_ns());
		status_federation_json(&st.federation);
		printf("}\n");
		return 0;
	}
	uint64_t now = now_ns();
	/* thothd's strings, shown, never obeyed (peertext_text): whatever
	 * answers on the socket chose them */
	printf("thothd %s, pid %u, up %.1f s\n", peertext_text(st.version.ptr, st.version.len), st.pid,
	       (double)st.uptime_ns / 1e9);
	printf("  runtime dir     %s\n", peertext_text(st.runtime_dir.ptr, st.runtime_dir.len));
	printf("  control socket  %s\n", ctl->path);
	/* "none" alone left a new user wondering: say the two reasons */
	printf("  dashboard       %s\n",
	       st.dashboard_url.len ? peertext_text(st.dashboard_url.ptr, st.dashboard_url.len)
				: "none (--http-port off, or its port was taken: thothd's log says which)");
	printf("  clients         %u\n", st.clients);
	printf("  registrations   %u\n", st.registrations);
	printf("  watches         %u\n", st.watches);
	printf("  wake-ups        %llu (%llu I/O, %llu timer), %llu timers fired\n",
	       (unsigned long long)st.wakeups, (unsigned long long)st.wakeups_fd,
	       (unsigned long long)st.wakeups_timer, (unsigned long long)st.timers_fired);
	if (st.next_expiry_ns)
		printf("  next expiry     in %.1f s\n",
		       st.next_expiry_ns > now ? (double)(st.next_expiry_ns - now) / 1e9 : 0.0);
	else
		printf("  next expiry     none (no timer armed)\n");
	status_federation_text(&st.federation);
	status_events_text(&st, now);
	return 0;
}

/* Every instance under PREFIX, one Registry.list_page reply at a time (a
 * single list reply cannot hold tens of thousands), each handed to FN. */
static int for_each_instance(thoth_control_t *ctl, const char *prefix,
			     void (*fn)(void *arg, const thoth_registry_Instance_t *in), void *arg,
			     size_t *count)
{
	size_t scratch_cap = 4u << 20;  /* one page is at most 1 MiB on the wire */
	void *scratch = malloc(scratch_cap);
	if (!scratch)
		return thothctl_call_failed(ctl, "list", THOTH_E_NOMEM);
	char after_name[160] = "";
	uint64_t after_at = 0, after_lease = 0;
	*count = 0;
	for (;;) {
		thoth_registry_Registry_list_page_req_t req = {
			.prefix = thoth_str(prefix), .after_name = thoth_str(after_name),
			.after_registered_at_ns = after_at, .after_lease = after_lease,
		};
		thoth_registry_Registry_list_page_resp_t resp;
		thoth_arena_t arena;
		thoth_arena_init(&arena, scratch, scratch_cap);
		int r = thoth_registry_Registry_list_page(&ctl->client, &req, &resp, &arena);
		if (r) {
			free(scratch);
			return thothctl_call_failed(ctl, "list", r);
		}
		for (uint32_t i = 0; i < resp.instances.count; i++)
			fn(arg, &resp.instances.items[i]);
		*count += resp.instances.count;
		bool more = resp.more && resp.instances.count;
		if (more) {
			const thoth_registry_Instance_t *last =
				&resp.instances.items[resp.instances.count - 1];
			/* The next page starts after the last one's (name,
			 * registered_at_ns, lease), thothd's order: a page that
			 * does not end past the one before, or a name too long
			 * for the cursor, would be asked for again and again (a
			 * lying thothd's "more" listed the same page forever). */
			const thoth_str_t *ln = &last->registration.name;
			size_t an = strlen(after_name);
			int c = memcmp(ln->ptr, after_name, ln->len < an ? ln->len : an);
			if (!c)
				c = ln->len < an ? -1 : ln->len > an;
			if (!c)
				c = last->registered_at_ns < after_at ? -1 : last->registered_at_ns > after_at;
			if (!c)
				c = last->lease < after_lease ? -1 : last->lease > after_lease;
			if (ln->len >= sizeof after_name || (*after_name && c <= 0)) {
				fprintf(stderr, "thothctl: list: the answer from %s says there is more, but its "
					"page does not end past the one before (its last instance: '%s'): "
					"refused, not asked again\n", ctl->path, peertext_text(ln->ptr, ln->len));
				thoth_client_release(&ctl->client);
				free(scratch);
				return 1;
			}
			snprintf(after_name, sizeof after_name, "%.*s",
				 (int)last->registration.name.len, last->registration.name.ptr);
			after_at = last->registered_at_ns;
			after_lease = last->lease;
		}
		thoth_client_release(&ctl->client);
		if (!more)
			break;
	}
	free(scratch);
	return 0;
}

static void widen_one(void *arg, const thoth_registry_Instance_t *in)
{
	widen(arg, in);
}

static void print_json(void *arg, const thoth_registry_Instance_t *in)
{
	instance_json(in, NULL);
}

static void print_row(void *arg, const thoth_registry_Instance_t *in)
{
	table_row(arg, in, NULL);
}

static int list(thoth_control_t *ctl, const char *prefix, widths_t *w, bool print)
{
	size_t n;
	if (json && print)
		return for_each_instance(ctl, prefix, print_json, NULL, &n);
	/* A table: the widths first (one pass), then the rows (another). */
	int r = for_each_instance(ctl, prefix, widen_one, w, &n);
	if (r || !print)
		return r;
	if (!n) {
		printf("no services registered%s%s\n", *prefix ? " under " : "", prefix);
		return 0;
	}
	table_header(w, false);
	return for_each_instance(ctl, prefix, print_row, w, &n);
}

typedef struct watch_state {
	widths_t *w;
} watch_state_t;

static void on_change(void *arg, const uint8_t *msg, size_t len)
{
	watch_state_t *ws = arg;
	uint64_t scratch[8192];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_registry_RegistryEvents_changed_req_t ev;
	if (thoth_registry_RegistryEvents_changed_req_decode_msg(msg, len, &ev, &arena))
		return;
	if (json) {
		instance_json(&ev.instance, kind_name(ev.kind));
	} else {
		widen(ws->w, &ev.instance);
		table_row(ws->w, &ev.instance, kind_name(ev.kind));
	}
	fflush(stdout);
}

static int cmd_services(thoth_control_t *ctl, const char *prefix, bool watch)
{
	widths_t w = { 4, 7, 8 };
	if (!watch)
		return list(ctl, prefix, &w, true);
	/* Subscribe first, then list: nothing falls between the two. */
	watch_state_t ws = { &w };
	ctl->sock.on_event = on_change;
	ctl->sock.event_arg = &ws;
	thoth_registry_Registry_watch_req_t req = { .prefix = thoth_str(prefix) };
	thoth_registry_Registry_watch_resp_t resp;
	int r = thoth_registry_Registry_watch(&ctl->client, &req, &resp, NULL);
	if (r)
		return thothctl_call_failed(ctl, "watch", r);
	w.name = w.name < 16 ? 16 : w.name;
	w.endpoint = w.endpoint < 32 ? 32 : w.endpoint;
	r = list(ctl, prefix, &w, true);
	if (r)
		return r;
	if (!json) {
		printf("-- watching%s%s for changes (Ctrl-C to stop) --\n", *prefix ? " " : "", prefix);
		table_header(&w, true);
	}
	fflush(stdout);
	for (;;) {
		r = thoth_sock_client_poll_event(&ctl->sock, -1);
		if (r < 0) {
			fprintf(stderr, "thothctl: thothd went away (%s)\n", thoth_strerror(r));
			return 1;
		}
	}
}

/*
 * thothd's registry takes names of at most 128 bytes and versions of at
 * most 64 (kernel/thothd/registry.c); a request above its small-body limit
 * (4 KiB) is not answered at all: thothd drops the connection as a hostile
 * client's, and thothctl said "thothd went away (exited or killed)" of a
 * thothd that runs on.  Longer arguments are answered here, as thothd
 * would answer the shorter ones.
 */
enum { NAME_MAX_LEN = 128, VERSION_MAX_LEN = 64 };

static bool bad_name_said(const char *name)
{
	if (strlen(name) > NAME_MAX_LEN) {
		fprintf(stderr, "thothctl: resolve: '%s...' (%zu bytes) is not a service name (1..128 of "
			"[a-z0-9_.-], starting with a letter)\n", peertext_text(name, 40), strlen(name));
		return true;
	}
	/* Checked here too, as topology and probe --service do: thothd's
	 * BadName came back exit 1 (a failure) for what is a bad argument
	 * (exit 2, thothctl(1)), the name's bytes raw on the terminal. */
	if (thothctl_service_name_ok(name))
		return false;
	fprintf(stderr, "thothctl: resolve: '%s' is not a service name (1..128 of [a-z0-9_.-], "
		"starting with a letter)\n", peertext_textz(name));
	return true;
}

/* --min-version's grammar, thothd's (thoth_semver_parse,
 * kernel/thothd/registry.c): MAJOR.MINOR.PATCH, each a decimal of at most
 * UINT32_MAX without a leading zero, 64 bytes at most. */
static bool version_number(const char **p)
{
	const char *s = *p;
	if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9'))
		return false;
	uint64_t v = 0;
	for (; *s >= '0' && *s <= '9'; s++)
		if ((v = v * 10 + (uint64_t)(*s - '0')) > UINT32_MAX)
			return false;
	*p = s;
	return true;
}

static bool version_ok(const char *v)
{
	const char *p = v;
	return strlen(v) <= VERSION_MAX_LEN && version_number(&p) && *p++ == '.' && version_number(&p) &&
	       *p++ == '.' && version_number(&p) && !*p;
}

static int cmd_resolve(thoth_control_t *ctl, const char *name, const char *min_version)
{
	thoth_registry_Registry_resolve_req_t req = {
		.name = thoth_str(name), .min_version = thoth_str(min_version),
		.prefer = THOTH_COMMON_LOCALITY_NUMA,
	};
	thoth_registry_Registry_resolve_resp_t resp;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	int r = thoth_registry_Registry_resolve(&ctl->client, &req, &resp, &arena);
	if (r == THOTH_E_REMOTE && ctl->client.remote_code == THOTH_REGISTRY_ERR_NOT_FOUND) {
		fprintf(stderr, "thothctl: no live instance of '%s'%s%s\n", name,
			*min_version ? " compatible with " : "", min_version);
		return 1;
	}
	/* thothd answers these with the error's name alone ("BadName"): say
	 * what a good one is (idl/registry.tidl). */
	if (r == THOTH_E_REMOTE && ctl->client.remote_code == THOTH_REGISTRY_ERR_BAD_NAME) {
		fprintf(stderr, "thothctl: resolve: '%s' is not a service name (1..128 of [a-z0-9_.-], "
			"starting with a letter)\n", peertext_textz(name));
		return 2;
	}
	if (r == THOTH_E_REMOTE && ctl->client.remote_code == THOTH_REGISTRY_ERR_BAD_VERSION) {
		/* checked before the call (version_ok): a thothd stricter than us */
		fprintf(stderr, "thothctl: resolve: --min-version '%s' is not a version (MAJOR.MINOR.PATCH)\n",
			peertext_textz(min_version));
		return 2;
	}
	if (r)
		return thothctl_call_failed(ctl, "resolve", r);
	if (json) {
		instance_json(&resp.instance, NULL);
	} else {
		widths_t w = { 4, 7, 8 };
		widen(&w, &resp.instance);
		table_header(&w, false);
		table_row(&w, &resp.instance, NULL);
	}
	return 0;
}

int thothctl_connect(thoth_control_t *ctl, const char *runtime_dir)
{
	int r = thoth_control_connect(ctl, runtime_dir, 5000);
	if (r == THOTH_E_NOT_RUNNING) {
		struct stat st;
		if (stat(ctl->path, &st) == 0)
			fprintf(stderr, "thothctl: thothd is not running (nothing listens on %s)\n",
				ctl->path);
		else
			/* A second terminal without the THOTH_RUNTIME_DIR the
			 * first one started thothd with looks in another dir
			 * (the tutorial's way): say how to point it there. */
			fprintf(stderr, "thothctl: thothd is not running (no socket at %s): start it, or "
				"give the runtime dir it runs in (--runtime-dir DIR or THOTH_RUNTIME_DIR)\n",
				ctl->path);
		return 1;
	}
	if (r && !ctl->path[0]) {       /* no socket path: the runtime dir's is too long */
		fprintf(stderr, "thothctl: cannot reach thothd: %s\n",
			ctl->why[0] ? ctl->why : "runtime dir path too long");
		return 1;
	}
	if (r == THOTH_E_PEER_GONE && !ctl->why[0]) {
		/* Accepted, then closed at once: thothd refuses a connection past
		 * its limits (it said "peer gone", which names nothing). */
		fprintf(stderr, "thothctl: thothd at %s closed the connection at once: it takes no more "
			"connections (--max-clients, --max-clients-per-uid: its log says which)\n", ctl->path);
		return 1;
	}
	if (r) {
		fprintf(stderr, "thothctl: cannot reach thothd at %s: %s\n", ctl->path,
			ctl->why[0] ? ctl->why : thoth_strerror(r));
		return 1;
	}
	return 0;
}

static int cmd_status_main(int argc, char **argv, const thothctl_opts_t *opts);
static int cmd_services_main(int argc, char **argv, const thothctl_opts_t *opts);
static int cmd_resolve_main(int argc, char **argv, const thothctl_opts_t *opts);


/* Every command.  own_json: after the command's name, --json is the
 * command's own option (trace: --json FILE names an output); before the
 * name it is still the global flag. */
static const struct thothctl_command {
	const char *name;
	thothctl_cmd_fn *fn;
	bool own_json;
} commands[] = {
	{ "status", cmd_status_main, false },
	{ "services", cmd_services_main, false },
	{ "resolve", cmd_resolve_main, false },
	{ "trace", thothctl_trace, true },
	{ "sched", thothctl_sched, false },
	{ "pm", thothctl_pm, false },      /* pm.c: `pm`, and `pm sim` (pm_sim.c) */
	{ "codex", thothctl_codex, false },  /* codex.c: the journal service */
	{ "topology", thothctl_topology, false },      /* topology.c (SCALE-1/2) */
	{ "moderation", thothctl_moderation, false },   /* moderation.c: NIC/NVMe coalescing, policies (PM-3) */
	{ "probe", thothctl_probe, false }, /* probe.c: eBPF probes (docs/PROBES.md) */
	{ "locks", thothctl_locks, false }, /* locks.c: lock profiler tables (OBS-4) */
	{ "serve", thothctl_serve, false }, /* serve.c: serving processes' counters (SCALE-2) */
};

/* The usage of status, services or resolve alone: `thothctl CMD --help`
 * gives the command's own (docs/THOTHD.md), as the other commands do. */
static void cmd_usage(const char *cmd)
{
	static const char *const lines[][2] = {
		{ "status", "status [--watch [MS]]\n"
			    "thothd's state; with --watch, the shared table every MS ms (1000)" },
		{ "services", "services [--watch] [PREFIX]\n"
			      "the registered instances whose name starts with PREFIX;\n"
			      "with --watch, then every change as it happens" },
		{ "resolve", "resolve NAME [--min-version V]\n"
			     "the instance of NAME a caller here is given" },
	};
	for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++)
		if (strcmp(cmd, lines[k][0]) == 0)
			printf("usage: thothctl [--runtime-dir DIR] [--json] %s\n", lines[k][1]);
}

/* The options of status/services/resolve, after the global ones are gone:
 * -1 to go on, else the exit status (help printed, or a usage error).
 * Their usage errors name the command, as every other command's do
 * (thothctl(1)): "unknown option --bogus" alone, or "usage: resolve NAME
 * ..." for a missing NAME, said neither which command nor what was wrong. */
static int parse_cmd_options(const char *cmd, int argc, char **argv, bool *watch,
			     const char **min_version)
{
	static const struct option options[] = {
		{ "watch", no_argument, NULL, 'w' },
		{ "min-version", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		int at = li; /* thothctl_empty_option resets li */
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value(cmd, empty, NULL);
		switch (opt) {
		case 'w':
		case 'v':
			/* one table for three commands: --min-version is
			 * resolve's alone, --watch the other two's */
			if ((opt == 'v') != !strcmp(cmd, "resolve")) {
				char name[32];
				snprintf(name, sizeof name, "--%s", options[at].name);
				return thothctl_usage_error(cmd, "unknown option", name);
			}
			if (opt == 'w')
				*watch = true;
			else
				*min_version = optarg;
			break;
		case 'h': cmd_usage(argv[0]); return 0;
		case ':': return thothctl_usage_error(cmd, "missing value for", thothctl_refused_word(argc, argv));
		default: {
			/* "--watch -5": a number meant as the interval, said so */
			const char *w = thothctl_refused_word(argc, argv);
			if (w[0] == '-' && isdigit((unsigned char)w[1]))
				return thothctl_usage_error(cmd, "an interval is 10..3600000 ms, not", w);
			return thothctl_usage_error(cmd, "unknown option", w);
		}
		}
	}
	return -1;
}

static int cmd_status_main(int argc, char **argv, const thothctl_opts_t *opts)
{
	bool watch = false;
	const char *min_version = NULL;
	int r = parse_cmd_options("status", argc, argv, &watch, &min_version);
	if (r >= 0)
		return r;
	if (watch) {
		/* SCALE-2: status --watch [MS] reads the shared table, no round
		 * trip per line (status_watch.c); MS defaults to 1000. */
		long ms = 1000;
		if (optind < argc) {
			/* the interval first: `--watch extra 100` named the good
			 * 100 as the unexpected word */
			char *end;
			ms = strtol(argv[optind], &end, 10);
			if (end == argv[optind] || *end || ms < 10 || ms > 3600000)
				return thothctl_usage_error("status", "--watch takes an interval of 10..3600000 ms, not",
							    argv[optind]);
			if (optind + 1 < argc)
				return thothctl_usage_error("status", "unexpected argument", argv[optind + 1]);
		}
		return thothctl_status_watch(opts, (unsigned)ms);
	}
	if (optind < argc)
		return thothctl_usage_error("status", "unexpected argument", argv[optind]);
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		return 1;
	r = cmd_status(&ctl);
	thoth_control_close(&ctl);
	return r;
}

static int cmd_services_main(int argc, char **argv, const thothctl_opts_t *opts)
{
	bool watch = false;
	const char *min_version = NULL;
	int r = parse_cmd_options("services", argc, argv, &watch, &min_version);
	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return thothctl_usage_error("services", "one PREFIX at most; unexpected argument",
					    argv[optind + 1]);
	/* a prefix the wire cannot carry: a bad argument (exit 2), named; it
	 * was "list: string is not valid UTF-8", exit 1, after connecting */
	if (optind < argc && !thothctl_utf8_valid(argv[optind], strlen(argv[optind])))
		return thothctl_usage_error("services", "PREFIX is not UTF-8:", argv[optind]);
	if (optind < argc && strlen(argv[optind]) > NAME_MAX_LEN) {
		/* no name starts with it: the empty list thothd gives a long one */
		if (!json)
			printf("no services registered under '%.40s...' (%zu bytes: names are at most 128)\n",
			       argv[optind], strlen(argv[optind]));
		return 0;
	}
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		return 1;
	r = cmd_services(&ctl, optind < argc ? argv[optind] : "", watch);
	thoth_control_close(&ctl);
	return r;
}

static int cmd_resolve_main(int argc, char **argv, const thothctl_opts_t *opts)
{
	bool watch = false;
	const char *min_version = NULL;
	int r = parse_cmd_options("resolve", argc, argv, &watch, &min_version);
	if (r >= 0)
		return r;
	if (optind == argc)
		return thothctl_usage_error("resolve", "which service? give its NAME", NULL);
	if (argc - optind > 1)
		return thothctl_usage_error("resolve", "one NAME; unexpected argument", argv[optind + 1]);
	if (bad_name_said(argv[optind]))
		return 2;
	if (min_version && !version_ok(min_version)) {
		/* A bad argument: exit 2 (thothctl(1)), as a bad NAME is; it was
		 * exit 1 (a failure) after a round trip to thothd, the version's
		 * bytes raw on the terminal. */
		size_t n = strlen(min_version);
		if (n > VERSION_MAX_LEN)
			fprintf(stderr, "thothctl: resolve: --min-version '%s...' (%zu bytes) is not a version "
				"(MAJOR.MINOR.PATCH, each a number without leading zeros)\n",
				peertext_text(min_version, 20), n);
		else
			fprintf(stderr, "thothctl: resolve: --min-version '%s' is not a version (MAJOR.MINOR.PATCH, "
				"each a number without leading zeros)\n", peertext_textz(min_version));
		return 2;
	}
	thoth_control_t ctl;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		return 1;
	r = cmd_resolve(&ctl, argv[optind], min_version ? min_version : "");
	thoth_control_close(&ctl);
	return r;
}

/* A global option at argv[*i]: 1 when it is one (consumed, *i advanced past
 * its value), 0 when not, -1 (after the message) when its value is missing.
 * json_is_global: whether --json here is the global flag. */
static int global_option(int argc, char **argv, int *i, thothctl_opts_t *opts, bool json_is_global)
{
	const char *a = argv[*i];
	if (strcmp(a, "--runtime-dir") == 0) {
		if (*i + 1 >= argc) {
			usage_error("missing value for", a);
			return -1;
		}
		opts->runtime_dir = argv[++*i];
	} else if (strncmp(a, "--runtime-dir=", 14) == 0) {
		opts->runtime_dir = a + 14;
	} else if (json_is_global && strcmp(a, "--json") == 0) {
		opts->json = true;
		return 1;
	} else {
		return 0;
	}
	/* An empty value (an unset variable: --runtime-dir "$DIR") would
	 * silently mean the default runtime dir, another thothd's. */
	if (!opts->runtime_dir[0]) {
		usage_error("--runtime-dir needs a directory, not an empty string", NULL);
		return -1;
	}
	return 1;
}

/* --help and --version answer in the output asked for: under --json one
 * object (the usage as one string), as every command's output is; text
 * on stdout broke a script reading `thothctl --json --version` as JSON. */
static int help_or_version(bool help, bool as_json)
{
	if (!as_json) {
		if (help)
			usage(stdout);
		else
			printf("thothctl %s\n", THOTH_VERSION_STRING);
		return 0;
	}
	printf("{\"tool\":\"thothctl\",\"version\":");
	thothctl_json_str(THOTH_VERSION_STRING, strlen(THOTH_VERSION_STRING));
	if (help) {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (!f) {
			fprintf(stderr, "thothctl: out of memory\n");
			return 1;
		}
		usage(f);
		fclose(f);
		printf(",\"usage\":");
		thothctl_json_str(text, len);
		free(text);
	}
	printf("}\n");
	return 0;
}

/* --help among a command's arguments (before "--"), or -h right after its
 * name: a later -h may be an option's value (`--service -h`), which the
 * command itself refuses or takes, and must not be answered with usage. */
static bool asks_help(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-h") == 0)
		return true;
	for (int k = 1; k < argc && strcmp(argv[k], "--") != 0; k++)
		if (strcmp(argv[k], "--help") == 0)
			return true;
	return false;
}

/*
 * `thothctl --json COMMAND --help`: the command's usage as one JSON object,
 * {"tool","version","command","usage"}, as for `--json --help`.  Each
 * command prints its own text; it is caught here (stdout on a memfd while
 * it runs) rather than taught JSON in a dozen places.  A command that
 * fails (exit status not 0) passes through unwrapped: its error is on
 * stderr, and whatever it printed is given as it was.
 */
static int help_as_json(const struct thothctl_command *cmd, int argc, char **argv,
			const thothctl_opts_t *opts)
{
	thothctl_opts_t text = *opts;
	text.json = false;
	fflush(stdout);
	int mem = memfd_create("thothctl-help", MFD_CLOEXEC), saved = dup(STDOUT_FILENO);
	if (mem < 0 || saved < 0 || dup2(mem, STDOUT_FILENO) < 0) {
		fprintf(stderr, "thothctl: %s --help under --json: %s\n", cmd->name, strerror(errno));
		if (mem >= 0)
			close(mem);
		if (saved >= 0)
			close(saved);
		return 1;
	}
	json = false;
	int r = cmd->fn(argc, argv, &text);
	json = opts->json;
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	off_t len = lseek(mem, 0, SEEK_END);
	char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
	if (!buf || pread(mem, buf, (size_t)len, 0) != len) {
		fprintf(stderr, "thothctl: %s --help under --json: cannot read its usage back\n",
			cmd->name);
		free(buf);
		close(mem);
		return 1;
	}
	close(mem);
	if (r == 0) {
		printf("{\"tool\":\"thothctl\",\"version\":");
		thothctl_json_str(THOTH_VERSION_STRING, strlen(THOTH_VERSION_STRING));
		printf(",\"command\":");
		thothctl_json_str(cmd->name, strlen(cmd->name));
		printf(",\"usage\":");
		thothctl_json_str(buf, (size_t)len);
		printf("}\n");
	} else {
		fwrite(buf, 1, (size_t)len, stdout);
	}
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	thothctl_opts_t opts = { NULL, false };
	int i = 1;
	bool help = false, version = false;
	/* Global options before the command; --help and --version answer once
	 * all are read (`--version --json` is as `--json --version`). */
	for (; i < argc && argv[i][0] == '-'; i++) {
		/* "--" ends the options: the command follows (`thothctl -- status`
		 * was "unknown option --"). */
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		int g = global_option(argc, argv, &i, &opts, true);
		if (g < 0)
			return 2;
		if (g)
			continue;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			help = true;
			continue;
		}
		if (strcmp(argv[i], "--version") == 0) {
			version = true;
			continue;
		}
		return usage_error("unknown option", argv[i]);
	}
	if (help || version)
		return help_or_version(help, opts.json);
	if (i >= argc)
		return usage_error("no command given", NULL);
	const struct thothctl_command *cmd = NULL;
	for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return usage_error("unknown command:", argv[i]);
	/* The command's argv: its name, then its arguments without the global
	 * options (accepted after the name too: `resolve echo --json`); after
	 * "--" everything is the command's. */
	char **cargv = calloc((size_t)(argc - i + 1), sizeof *cargv);
	if (!cargv) {
		fprintf(stderr, "thothctl: out of memory\n");
		return 1;
	}
	int cargc = 0;
	cargv[cargc++] = argv[i];
	for (int k = i + 1; k < argc; k++) {
		if (strcmp(argv[k], "--") == 0) {
			while (k < argc)
				cargv[cargc++] = argv[k++];
			break;
		}
		int g = global_option(argc, argv, &k, &opts, !cmd->own_json);
		if (g < 0) {
			free(cargv);
			return 2;
		}
		/* --version is global after the command's name too, as --json
		 * and --runtime-dir are: `status --json --version` was "unknown
		 * option --version" (exit 2) from some commands' parsers and
		 * something else from others'.  As in coreutils, it answers
		 * and nothing else runs (git's `git --version status` too);
		 * the command's --help, asked as well, is answered instead. */
		if (!g && strcmp(argv[k], "--version") == 0) {
			version = true;
			g = 1;
		}
		if (!g)
			cargv[cargc++] = argv[k];
	}
	cargv[cargc] = NULL;
	json = opts.json;
	if (version && !asks_help(cargc, cargv)) {
		free(cargv);
		return help_or_version(false, opts.json);
	}
	int r = opts.json && asks_help(cargc, cargv) ? help_as_json(cmd, cargc, cargv, &opts)
						    : cmd->fn(cargc, cargv, &opts);
	free(cargv);
	return r;
}
