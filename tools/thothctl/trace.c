/*
 * trace.c - `thothctl trace`: drive thothd's trace collector (TraceControl,
 * idl/trace.tidl; docs/OBSERVABILITY.md).
 *
 *   thothctl trace start [--categories LIST] [--pid PID]
 *   thothctl trace stop
 *   thothctl trace dump [--json FILE] [--ctf DIR]
 *   thothctl trace --duration SECONDS [--categories LIST] [--pid PID]
 *                  [--json FILE] [--ctf DIR]
 *
 * Category lock also brings the contended waits of the programs profiled
 * with libthothlock.so, run as `thothlock -- PROGRAM` or preloaded (their tables' rings, read by thothd at each drain:
 * kernel/thothd/locks.c) as `lock_wait` slices on the waiting thread.
 *
 * thothd writes the files (it holds the events); thothctl first makes the
 * paths absolute and checks that it can create them itself, so a bad path
 * is reported with thothctl's own errno before anything is collected, and a
 * failure thothd meets later (a full disk) comes back with thothd's reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "thoth/trace.h"
#include "thothctl.h"
#include "trace.thoth.h"

static void trace_usage(FILE *out)
{
	fprintf(out,
		"usage: thothctl [--runtime-dir DIR] [--json] trace start [--categories LIST] [--pid PID]\n"
		"       thothctl [--runtime-dir DIR] trace stop\n"
		"       thothctl [--runtime-dir DIR] trace dump [--json FILE] [--ctf DIR]\n"
		"       thothctl [--runtime-dir DIR] trace --duration SECONDS [--categories LIST]\n"
		"                                    [--pid PID] [--json FILE] [--ctf DIR]\n"
		"\n"
		"Switches trace points on in every thoth process attached to thothd (or one\n"
		"PID), collects their events, and writes them as Chrome Trace Event JSON\n"
		"(Perfetto UI, chrome://tracing) and/or CTF (babeltrace2).\n"
		"\n"
		"  --categories LIST  comma-separated: ipc, registry, timer, loop, pm, user,\n"
		"                     lock, or all (default); lock includes the contended\n"
		"                     waits of programs run as `thothlock -- PROGRAM` (or\n"
		"                     with libthothlock.so preloaded; docs/LOCKS.md)\n"
		"  --pid PID          only this process\n"
		"  --json FILE        Chrome Trace Event JSON output (after `trace`; the global\n"
		"                     --json, before it, prints the results as JSON lines)\n"
		"  --ctf DIR          CTF output directory (created if missing)\n"
		"  --duration SECONDS start, wait, stop and write in one go (Ctrl-C stops early)\n");
}

static int trace_usage_error(const char *what, const char *arg)
{
	return thothctl_usage_error("trace", what, arg);
}

/* PATH made absolute against the working directory (thothd has its own). */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	char *out;
	return asprintf(&out, "%s/%s", cwd, path) < 0 ? NULL : out;
}

/* Can we create/write the JSON file?  (Created empty; thothd fills it.) */
static int check_json_path(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "thothctl: cannot write the JSON trace to %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	close(fd);
	return 0;
}

static int check_ctf_dir(const char *dir)
{
	struct stat st;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "thothctl: cannot create the CTF directory %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "thothctl: cannot write the CTF trace into %s: not a directory\n",
			dir);
		return 1;
	}
	if (access(dir, W_OK) != 0) {
		fprintf(stderr, "thothctl: cannot write the CTF trace into %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	return 0;
}

static bool json_out;            /* the global --json: results as JSON lines */

static int do_start(thoth_control_t *ctl, uint64_t categories, uint32_t pid)
{
	thoth_trace_TraceControl_start_pid_req_t req = { .categories = categories, .pid = pid };
	thoth_trace_TraceControl_start_pid_resp_t resp;
	int r = thoth_trace_TraceControl_start_pid(&ctl->client, &req, &resp, NULL);
	if (r)
		return thothctl_call_failed(ctl, "trace start", r);
	if (json_out)
		printf("{\"event\":\"started\",\"session_id\":%llu,\"categories\":%llu,\"pid\":%u}\n",
		       (unsigned long long)resp.session_id, (unsigned long long)categories, pid);
	else
		printf("trace session %llu started\n", (unsigned long long)resp.session_id);
	/* A session for a pid no process has (a typo) is legal -- a process
	 * that connects later joins -- but would collect nothing, silently. */
	if (pid && pid <= INT32_MAX && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		fprintf(stderr, "thothctl: trace start: warning: no process has pid %u now: the session "
			"collects only if one connects to thothd with it\n", pid);
	return 0;
}

/*
 * stop (its last drain) and dump (the export) take as long as the session
 * is big: seconds for half a million events, more on a loaded machine.
 * The connection's 5 s per call made thothctl say "timed out" while thothd
 * went on and wrote the file.  A thothd that dies ends the call at once
 * (its socket closes), so the wait is long; past it, say what goes on.
 */
enum { SLOW_CALL_MS = 600000 };

static int slow_call_failed(thoth_control_t *ctl, const char *what, int r)
{
	if (r == THOTH_E_TIMEDOUT) {
		fprintf(stderr, "thothctl: %s: thothd did not answer in %d s; it may still be at it "
			"(its log says when it is done)\n", what, SLOW_CALL_MS / 1000);
		return 1;
	}
	return thothctl_call_failed(ctl, what, r);
}

static int do_stop(thoth_control_t *ctl)
{
	thoth_trace_TraceControl_stop_req_t req = { .session_id = 0 };
	thoth_trace_TraceControl_stop_resp_t resp;
	ctl->sock.timeout_ms = SLOW_CALL_MS;
	int r = thoth_trace_TraceControl_stop(&ctl->client, &req, &resp, NULL);
	if (r)
		return slow_call_failed(ctl, "trace stop", r);
	if (json_out)
		printf("{\"event\":\"stopped\",\"events\":%llu,\"lost\":%llu}\n",
		       (unsigned long long)resp.events, (unsigned long long)resp.dropped);
	else if (resp.dropped)      /* the log has them by cause (dropped, overwritten, torn, ...) */
		printf("trace stopped: %llu events collected, %llu lost (thothd's log says how)\n",
		       (unsigned long long)resp.events, (unsigned long long)resp.dropped);
	else        /* "0 lost (see thothd's log)" sent the reader looking for nothing */
		printf("trace stopped: %llu events collected, none lost\n", (unsigned long long)resp.events);
	return 0;
}

static int do_write(thoth_control_t *ctl, const char *json, const char *ctf)
{
	thoth_trace_TraceControl_write_req_t req = {
		.json_path = thoth_str(json ? json : ""),
		.ctf_dir = thoth_str(ctf ? ctf : ""),
	};
	thoth_trace_TraceControl_write_resp_t resp;
	ctl->sock.timeout_ms = SLOW_CALL_MS;
	int r = thoth_trace_TraceControl_write(&ctl->client, &req, &resp, NULL);
	if (r == THOTH_E_REMOTE) {
		const char *why = "";
		switch (ctl->client.remote_code) {
		case THOTH_TRACE_ERR_NO_SPACE: why = " (no space left on the device)"; break;
		case THOTH_TRACE_ERR_NO_PERMISSION: why = " (permission denied)"; break;
		default: break;
		}
		fprintf(stderr, "thothctl: cannot write the trace: %s%s\n",
			peertext_textz(ctl->client.remote_message), why);
		return 1;
	}
	if (r)
		return slow_call_failed(ctl, "trace dump", r);
	if (json_out) {
		printf("{\"event\":\"written\",\"events\":%llu,\"json\":", (unsigned long long)resp.events);
		if (json)
			thothctl_json_str(json, strlen(json));
		else
			printf("null");
		printf(",\"ctf\":");
		if (ctf)
			thothctl_json_str(ctf, strlen(ctf));
		else
			printf("null");
		printf("}\n");
		return 0;
	}
	printf("wrote %llu events", (unsigned long long)resp.events);
	if (json)
		printf(" as JSON to %s", json);
	if (ctf)
		printf("%s as CTF into %s", json ? " and" : "", ctf);
	printf("\n");
	return 0;
}

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = 1;
}

/* Sleep SECONDS, or less if interrupted (Ctrl-C: stop and write early) or
 * if thothd hangs up: a thothd that died at the first second of `trace
 * --duration 3600` (or `sched --duration`) was noticed only an hour later,
 * by the stop.  Only a hang-up is polled for (POLLRDHUP): nothing thothd
 * sends on the connection is read here.  Returns false if thothd went away. */
static bool wait_sleep(double seconds, int ctl_fd);

/* Ctrl-C (or SIGTERM) during the sleep stops and writes early.  After it,
 * the stop and the write wait up to SLOW_CALL_MS for a slow thothd and the
 * IPC wait retries on EINTR, so a handler that only set a flag made Ctrl-C
 * do nothing for 10 minutes when thothd was stuck.  Now the first signal
 * there says what thothctl waits for and the next one ends it (the
 * handler resets itself): one Ctrl-C still lets a slow but healthy thothd
 * finish (and `thothctl sched` remove its temporary file after), two end
 * it against a stuck one.  A signal the caller ignored (a background job's
 * SIGINT) stays ignored, and the caller's dispositions come back at the
 * end.  The sleep blocks both signals outside ppoll: one that arrives
 * between the flag's test and the wait is taken by the wait. */
static struct sigaction saved_int, saved_term;
static bool took_int, took_term;

static void on_late_signal(int sig)
{
	static const char msg[] = "\nthothctl: trace: waiting for thothd to stop and write the "
				  "collection (again to quit without it)\n";
	(void)sig;
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
}

static void take_signals(void (*fn)(int))
{
	struct sigaction sa = { .sa_handler = fn, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	if (took_int)
		sigaction(SIGINT, &sa, NULL);
	if (took_term)
		sigaction(SIGTERM, &sa, NULL);
}

static bool wait_for(double seconds, int ctl_fd)
{
	sigaction(SIGINT, NULL, &saved_int);
	sigaction(SIGTERM, NULL, &saved_term);
	took_int = saved_int.sa_handler != SIG_IGN;
	took_term = saved_term.sa_handler != SIG_IGN;
	take_signals(on_interrupt);
	bool alive = wait_sleep(seconds, ctl_fd);
	take_signals(on_late_signal);
	return alive;
}

static void give_back_signals(void)
{
	if (took_int)
		sigaction(SIGINT, &saved_int, NULL);
	if (took_term)
		sigaction(SIGTERM, &saved_term, NULL);
	took_int = took_term = false;
}

static bool wait_sleep(double seconds, int ctl_fd)
{
	struct timespec now, end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	end.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	bool alive = true;
	while (!interrupted) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
			break;
		struct timespec left = { end.tv_sec - now.tv_sec, end.tv_nsec - now.tv_nsec };
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		struct pollfd pfd = { .fd = ctl_fd, .events = POLLRDHUP };
		int n = ppoll(&pfd, 1, &left, &old);
		if (n > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
			alive = false;
			break;
		}
		if (n < 0 && errno != EINTR) {
			if (ctl_fd < 0)
				break;  /* cannot even sleep in ppoll */
			ctl_fd = -1;    /* cannot watch: sleep out the rest by the clock */
		}
		if (n > 0)      /* POLLNVAL: not a socket we can watch; plain sleep */
			ctl_fd = -1;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	return alive;
}

int thothctl_trace(int argc, char **argv, const thothctl_opts_t *opts)
{
	static const struct option options[] = {
		{ "categories", required_argument, NULL, 'c' },
		{ "pid", required_argument, NULL, 'p' },
		{ "json", required_argument, NULL, 'j' },
		{ "ctf", required_argument, NULL, 'C' },
		{ "duration", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t categories = THOTH_TRACE_ALL_CATEGORIES;
	uint32_t pid = 0;
	double duration = -1;
	const char *json_arg = NULL, *ctf_arg = NULL;
	bool have_categories = false, have_pid = false;
	int opt;
	optind = 1;
	opterr = 0;
	int li = -1;
	while ((opt = getopt_long(argc, argv, ":h", options, &li)) != -1) {
		const char *empty = thothctl_empty_option(options, &li);
		if (empty)
			return thothctl_empty_value("trace", empty, NULL);
		char *end;
		switch (opt) {
		case 'c':
			if (thoth_trace_parse_categories(optarg, &categories))
				return trace_usage_error("unknown category in", optarg);
			have_categories = true;
			break;
		case 'p': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			/* a digit first: strtoul reads "-18446744073709551615" as 1 */
			if (*end || errno || optarg[0] < '0' || optarg[0] > '9' || v == 0 || v > UINT32_MAX)
				return trace_usage_error("--pid wants a process id, not", optarg);
			pid = (uint32_t)v;
			have_pid = true;
			break;
		}
		case 'j': json_arg = optarg; break;
		case 'C': ctf_arg = optarg; break;
		case 'd':
			duration = strtod(optarg, &end);
			if (*end || !*optarg || !(duration > 0) || duration > 86400)
				return trace_usage_error("--duration wants seconds (0 < S <= 86400), not",
							 optarg);
			break;
		case 'h':
			trace_usage(stdout);
			return 0;
		case ':':
			return trace_usage_error("missing value for", thothctl_refused_word(argc, argv));
		default:
			return trace_usage_error("unknown option", thothctl_refused_word(argc, argv));
		}
	}
	/* getopt permuted the arguments: options could come before or after the
	 * sub-command; what is left is the sub-command alone (or nothing, for
	 * --duration). */
	const char *sub = optind < argc ? argv[optind++] : NULL;
	if (optind < argc)
		return trace_usage_error("unexpected argument", argv[optind]);

	enum { START, STOP, DUMP, DURATION } what;
	if (!sub && duration > 0)
		what = DURATION;
	else if (!sub)
		return trace_usage_error("start, stop, dump or --duration SECONDS?", NULL);
	else if (duration > 0)
		return trace_usage_error("--duration is a command of its own, not an option of", sub);
	else if (strcmp(sub, "start") == 0)
		what = START;
	else if (strcmp(sub, "stop") == 0)
		what = STOP;
	else if (strcmp(sub, "dump") == 0)
		what = DUMP;
	else
		return trace_usage_error("unknown trace command:", sub);
	if ((what == START || what == STOP) && (json_arg || ctf_arg))
		return trace_usage_error("--json/--ctf belong to dump or --duration, not", sub);
	if ((what == STOP || what == DUMP) && (have_categories || have_pid))
		return trace_usage_error("--categories/--pid belong to start or --duration, not", sub);
	if ((what == DUMP || what == DURATION) && !json_arg && !ctf_arg)
		return trace_usage_error("where to? give --json FILE and/or --ctf DIR", NULL);

	char *json = NULL, *ctf = NULL;
	int status = 1;
	if ((json_arg && !(json = absolute(json_arg))) || (ctf_arg && !(ctf = absolute(ctf_arg)))) {
		fprintf(stderr, "thothctl: cannot resolve the output path: %s\n", strerror(errno));
		goto out;
	}
	/* Check the outputs before collecting anything. */
	if ((json && check_json_path(json)) || (ctf && check_ctf_dir(ctf)))
		goto out;

	thoth_control_t ctl;
	json_out = opts->json;
	if (thothctl_connect(&ctl, opts->runtime_dir))
		goto out;
	switch (what) {
	case START:
		status = do_start(&ctl, categories, pid);
		break;
	case STOP:
		status = do_stop(&ctl);
		break;
	case DUMP:
		status = do_write(&ctl, json, ctf);
		break;
	case DURATION:
		status = do_start(&ctl, categories, pid);
		if (status)
			break;
		fflush(stdout);
		if (!wait_for(duration, ctl.sock.fd)) {
			give_back_signals();
			fprintf(stderr, "thothctl: trace: thothd went away during the session "
					"(exited or killed: its log says why); nothing collected\n");
			status = 1;
			break;
		}
		status = do_stop(&ctl);
		fflush(stdout);    /* said before a second Ctrl-C may end us */
		if (!status)
			status = do_write(&ctl, json, ctf);
		give_back_signals();
		break;
	}
	thoth_control_close(&ctl);
out:
	free(json);
	free(ctf);
	return status;
}
