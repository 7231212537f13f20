/*
 * main.c - thothd: the registry and control socket of a ThothOS system.
 *
 * thothd always runs in the foreground (a supervisor - systemd, a shell's
 * `&`, scripts/run.sh - decides where it lives); --foreground is accepted
 * for compatibility and changes nothing.  It logs to stderr and exits 0 on
 * SIGTERM/SIGINT/SIGHUP after removing its socket and lock file.
 *
 * Under a service manager (sd.c): the listening socket may be handed over
 * by socket activation (LISTEN_FDS), and readiness is announced over
 * NOTIFY_SOCKET (systemd, Type=notify) or --ready-fd (scripts).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "federation.h"
#include "http.h"
#include "log.h"
#include "placement.h"
#include "runtime.h"
#include "timerpage.h"
#include "sd.h"
#include "thoth/trace.h"
#include "thoth/version.h"
#include "thothd.h"
#include "topology.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: thothd [options]\n"
		"\n"
		"The ThothOS daemon: service registry (leases, peer death, locality) on a\n"
		"Unix control socket, RUNTIME_DIR/" THOTHD_SOCKET_NAME ".\n"
		"\n"
		"  --runtime-dir DIR     runtime directory (default: $THOTH_RUNTIME_DIR,\n"
		"                        else $XDG_RUNTIME_DIR/thoth, else /tmp/thoth-$UID);\n"
		"                        created 0700, refused if others can access it\n"
		"  --foreground          accepted for compatibility: thothd never forks\n"
		"  --log-level LEVEL     error, warn, info (default) or debug\n"
		"  --max-per-client N    registrations one connection may hold (default 64)\n"
		"  --max-clients N       connections at once (default 1024, fewer when\n"
		"                        RLIMIT_NOFILE is lower)\n"
		"  --max-clients-per-uid N  connections one uid may hold (default 3/4 of\n"
		"                        --max-clients); idle ones are evicted first\n"
		"  --max-leases-per-uid N  PM leases one uid's connections may hold together\n"
		"                        (default 12288, 3/4 of the 16384 thothd holds;\n"
		"                        at most 16384)\n"
		"  --frame-timeout-ms MS a connection's first message, and any message\n"
		"                        once begun, must arrive within MS (default 5000)\n"
		"  --trace-detach-ms MS  a trace session ends MS after the connection that\n"
		"                        started it closed (default 60000)\n"
		"  --trace-collector thread|loop  who drains the trace buffers during a\n"
		"                        session: a collector thread (default) or the\n"
		"                        loop thread that answers requests (the old path)\n"
		"  --ready-fd FD         write READY=1 to FD once serving, then close it\n"
		"  --http-port PORT|off  the dashboard and /metrics (default 9180; 0: any\n"
		"                        free port, see thothctl status; off: none)\n"
		"  --http-addr ADDR      address to serve it on (default 127.0.0.1)\n"
		"  --http-token-file F   require the token in F (first line) on every request\n"
		"  --http-timeout-s S    close HTTP connections idle for S seconds (default 10)\n"
		"  --http-max-connections N  HTTP connections at once (default 1024)\n"
		"  --http-events-memory-kib N  event streams' unsent data in all (default\n"
		"                        16384); beyond, the largest backlog's stream is closed\n"
		"  --etcd URL            federate: mirror this host's tcp: registrations into\n"
		"                        etcd at URL (http://HOST:PORT) and take the other\n"
		"                        hosts' in as remote instances (docs/FEDERATION.md)\n"
		"  --host-id NAME        this host's name in etcd (default: the host name)\n"
		"  --advertise ADDR      tcp:HOST:PORT where this host is reached (stored in etcd)\n"
		"  --etcd-ttl S          the host lease: S seconds, renewed every S/3 (default 10)\n"
		"  -h, --help            this text\n"
		"  --version             print the version\n"
		"\n"
		"Socket activation (LISTEN_FDS) and readiness (NOTIFY_SOCKET) work as under\n"
		"systemd: see thothd(8).  Inspect it with thothctl: thothctl status.\n");
}

static void federation_on_change(void *arg, int kind, const thoth_registry_Instance_t *inst)
{
	thothd_federation_on_change(arg, kind, inst);
}

/* Remote instances came or went: close the clients their watch pushes doomed. */
static int federation_metrics(void *arg, char *out, size_t cap)
{
	return thothd_federation_metrics(arg, out, cap);
}

static void federation_after_change(void *arg)
{
	thothd_reap(arg);
}

static bool stopping;

static void on_stop_signal(thoth_loop_t *loop, const struct signalfd_siginfo *info, void *arg)
{
	thothd_info("signal %u: shutting down", info->ssi_signo);
	stopping = true;
	thoth_loop_stop(loop);
}

/* thoth_loop_run, plus thothd's status published in the shared table
 * after every iteration (wake-ups, closed clients, expiries: what changed
 * without an answer being sent), so that readers of the table see what
 * Daemon.status would answer without asking this thread (SCALE-2). */
static int run_loop(thoth_loop_t *loop, thothd_t *d)
{
	thothd_rtable_publish_status(d);
	while (!stopping) {
		int r = thoth_loop_run_once(loop, true);
		if (r < 0)
			return r;
		thothd_rtable_publish_status(d);
	}
	return 0;
}

/*
 * The environment switches libthoth reads in every process, said once here
 * when their value means nothing: the library never prints, so a typo
 * (THOTH_LOOP_BACKEND=io-uring, THOTH_TRACE=ipc,lop) silently gave epoll or
 * no tracing at all in every program started from this shell.
 */
static void warn_unknown_env(void)
{
	const char *v = getenv("THOTH_LOOP_BACKEND");
	if (v && *v && strcmp(v, "uring") && strcmp(v, "io_uring") && strcmp(v, "epoll"))
		thothd_warn("THOTH_LOOP_BACKEND=%s is not uring, io_uring or epoll: every loop uses epoll", v);
	v = getenv("THOTH_TRACE");
	uint64_t mask;
	if (v && *v && strcasecmp(v, "off") && strcmp(v, "0") && thoth_trace_parse_categories(v, &mask))
		thothd_warn("THOTH_TRACE=%s names no category list (off, or e.g. ipc,loop): "
			    "processes start with tracing off", v);
	v = getenv("THOTH_PLACEMENT");
	if (v && *v && strcmp(v, "off") && strcmp(v, "0") && strcmp(v, "on") && strcmp(v, "1"))
		thothd_warn("THOTH_PLACEMENT=%s is not off or 0: placement stays on", v);
	v = getenv("THOTH_PLACEMENT_POLICY");
	place_policy_t pol;
	char why[300];
	place_policy_default(&pol);
	if (v && place_policy_parse(&pol, v, why, sizeof why))
		thothd_warn("THOTH_PLACEMENT_POLICY: %s: every process keeps the default thresholds", why);
}

/*
 * SCALE-1: the NUMA distance matrix by the kernel's node numbers (what
 * services register with), for resolve's "nearest node first".  hwloc
 * reads it ($THOTH_TOPOLOGY_XML / _SYNTHETIC override the machine, for
 * demos); without it every other node is equally far.
 */
static uint32_t *load_distances(uint16_t *n_nodes)
{
	*n_nodes = 0;
	thoth_topo_t *t = NULL;
	char why[300];
	if (thoth_topo_load(NULL, &t, why, sizeof why)) {
		thothd_warn("topology: %s: resolve treats every other NUMA node as equally far", why);
		return NULL;
	}
	unsigned nodes = thoth_topo_nodes(t), max_os = 0;
	for (unsigned i = 0; i < nodes; i++)
		if ((unsigned)thoth_topo_node_os(t, i) > max_os)
			max_os = (unsigned)thoth_topo_node_os(t, i);
	unsigned n = max_os + 1;
	uint32_t *m = n <= 1024 ? malloc((size_t)n * n * sizeof *m) : NULL;
	if (m) {
		for (unsigned a = 0; a < n; a++)
			for (unsigned b = 0; b < n; b++)
				m[a * n + b] = a == b ? THOTH_TOPO_LOCAL_DISTANCE : THOTH_TOPO_REMOTE_DEFAULT;
		for (unsigned a = 0; a < nodes; a++)
			for (unsigned b = 0; b < nodes; b++)
				m[(unsigned)thoth_topo_node_os(t, a) * n + (unsigned)thoth_topo_node_os(t, b)] =
					thoth_topo_distance(t, a, b);
		*n_nodes = (uint16_t)n;
	}
	thothd_info("topology: %u NUMA node%s, %u cpus, distances %s", nodes, nodes == 1 ? "" : "s",
		    thoth_topo_cpus(t), thoth_topo_has_distances(t) ? "from the firmware table" : "defaults");
	thoth_topo_free(t);
	return m;
}

/* The thothd before us on DIR was killed or crashed (its pid file was
 * left): say so once, with when it started, so that an operator reading
 * the log after a restart sees what happened and what was recovered
 * (ops44: the new thothd said nothing, as after a clean stop). */
static void say_predecessor(const thothd_predecessor_t *prev, const char *dir, const char *sock)
{
	char when[40] = "an unknown time";
	struct tm tm;
	if (prev->started.tv_sec > 0 && gmtime_r(&prev->started.tv_sec, &tm))
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	struct stat st;
	bool socket_left = lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
	thothd_warn("the previous thothd on %s (pid %d, started %s) did not stop cleanly "
		    "(killed or crashed) and left its pid file%s, replaced now; "
		    "the registry starts empty and services register again",
		    dir, prev->pid, when, socket_left ? " and socket" : "");
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "runtime-dir", required_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "max-per-client", required_argument, NULL, 'm' },
		{ "max-clients", required_argument, NULL, 'C' },
		{ "max-clients-per-uid", required_argument, NULL, 'U' },
		{ "max-leases-per-uid", required_argument, NULL, 'Q' },
		{ "frame-timeout-ms", required_argument, NULL, 'F' },
		{ "trace-detach-ms", required_argument, NULL, 'T' },
		{ "trace-collector", required_argument, NULL, 'c' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "http-port", required_argument, NULL, 'P' },
		{ "http-addr", required_argument, NULL, 'A' },
		{ "http-token-file", required_argument, NULL, 'K' },
		{ "http-timeout-s", required_argument, NULL, 'O' },
		{ "http-max-connections", required_argument, NULL, 'M' },
		{ "http-events-memory-kib", required_argument, NULL, 'B' },
		{ "etcd", required_argument, NULL, 'E' },
		{ "host-id", required_argument, NULL, 'H' },
		{ "advertise", required_argument, NULL, 'a' },
		{ "etcd-ttl", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *runtime_arg = NULL;
	int ready_fd = -1;
	thothd_config_t cfg = { 0 };
	thothd_http_config_t http_cfg = { .port = THOTHD_HTTP_DEFAULT_PORT };
	bool http_off = false, http_port_given = false;
	/* The --http-* options given beside --http-port (for --http-port off:
	 * each one would be ignored, and is refused). */
	const char *http_given[5];
	int n_http_given = 0;
	const char *token_file = NULL;
	char token[256] = "";
	thothd_federation_config_t fed_cfg = { .uid = (uint32_t)getuid() };
	thothd_federation_t *federation = NULL;
	int opt;
	/* getopt says what is wrong in one line ("unrecognized option
	 * '--x'", "option '--x' requires an argument") under our own name,
	 * not the path thothd was started by; the usage is one more line's
	 * reach away, not 40 lines of it after each mistake. */
	argv[0] = (char *)"thothd";
	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt && strchr("AKOMB", opt)) {
			const char *flag = opt == 'A' ? "--http-addr" : opt == 'K' ? "--http-token-file"
					 : opt == 'O' ? "--http-timeout-s" : opt == 'M' ? "--http-max-connections"
					 : "--http-events-memory-kib";
			bool seen = false;
			for (int k = 0; k < n_http_given; k++)
				seen |= http_given[k] == flag;
			if (!seen)
				http_given[n_http_given++] = flag;
		}
		switch (opt) {
		case 'r':
			/* Empty (an unset variable) would mean the default dir:
			 * perhaps another thothd's, certainly not the one meant. */
			if (!*optarg) {
				fprintf(stderr, "thothd: --runtime-dir needs a directory, not an empty string\n");
				return 2;
			}
			runtime_arg = optarg;
			break;
		case 'f':
			break;
		case 'l': {
			thothd_log_level_t level;
			if (thothd_log_parse_level(optarg, &level)) {
				fprintf(stderr, "thothd: unknown log level '%s' (error|warn|info|debug)\n",
					optarg);
				return 2;
			}
			thothd_log_set_level(level);
			break;
		}
		case 'm': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || n == 0 || n > 1000000) {
				fprintf(stderr, "thothd: --max-per-client wants 1..1000000\n");
				return 2;
			}
			cfg.max_per_client = (uint32_t)n;
			break;
		}
		case 'Q': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || !*optarg || n == 0 || n > THOTHD_PM_MAX_LEASES) {
				fprintf(stderr, "thothd: --max-leases-per-uid wants a number 1..%u\n",
					THOTHD_PM_MAX_LEASES);
				return 2;
			}
			cfg.max_leases_per_uid = (uint32_t)n;
			break;
		}
		case 'C':
		case 'U':
		case 'F':
		case 'T': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || !*optarg || n == 0 || n > 100000000) {
				fprintf(stderr, "thothd: --%s wants a number 1..100000000\n",
					opt == 'C' ? "max-clients" : opt == 'U' ? "max-clients-per-uid"
					: opt == 'F' ? "frame-timeout-ms" : "trace-detach-ms");
				return 2;
			}
			if (opt == 'C')
				cfg.max_clients = (uint32_t)n;
			else if (opt == 'U')
				cfg.max_clients_per_uid = (uint32_t)n;
			else if (opt == 'F')
				cfg.frame_timeout_ns = (uint64_t)n * 1000000ull;
			else
				cfg.trace_detach_ns = (uint64_t)n * 1000000ull;
			break;
		}
		case 'c':
			if (strcmp(optarg, "thread") && strcmp(optarg, "loop")) {
				fprintf(stderr, "thothd: --trace-collector wants thread or loop, not '%s'\n",
					optarg);
				return 2;
			}
			cfg.trace_collect_on_loop = strcmp(optarg, "loop") == 0;
			break;
		case 'R': {
			char *end;
			long fd = strtol(optarg, &end, 10);
			if (*end || !*optarg || fd < 0 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0) {
				fprintf(stderr, "thothd: --ready-fd wants an open file descriptor, not '%s'\n",
					optarg);
				return 2;
			}
			ready_fd = (int)fd;
			break;
		}
		case 'P':
		case 'O':
		case 'B':
		case 'M': {
			if (opt == 'P' && strcmp(optarg, "off") == 0) {
				http_off = true;
				break;
			}
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			/* KiB to bytes must not wrap a 32-bit size_t: 4 GiB less 1 KiB there. */
			unsigned long kib_max = 4194304UL < SIZE_MAX >> 10 ? 4194304UL
						: (unsigned long)(SIZE_MAX >> 10);
			unsigned long max = opt == 'P' ? 65535 : opt == 'O' ? 3600 : opt == 'B' ? kib_max
					    : 100000;
			unsigned long min = opt == 'P' ? 0 : opt == 'B' ? 64 : 1;
			if (*end || !*optarg || n > max || n < min) {
				char range[32];
				snprintf(range, sizeof range, "%lu..%lu", min, max);
				fprintf(stderr, "thothd: --%s wants %s, not '%s'\n",
					opt == 'P' ? "http-port" : opt == 'O' ? "http-timeout-s"
					: opt == 'B' ? "http-events-memory-kib" : "http-max-connections",
					opt == 'P' ? "a port 0..65535 or off" : range, optarg);
				return 2;
			}
			if (opt == 'P') {
				http_cfg.port = (int)n;
				http_port_given = true;
				http_off = false;       /* the last --http-port counts */
			} else if (opt == 'O') {
				http_cfg.timeout_s = (uint32_t)n;
			} else if (opt == 'B') {
				http_cfg.events_memory = (size_t)n << 10;
			} else {
				http_cfg.max_connections = (uint32_t)n;
			}
			break;
		}
		case 'A':
			http_cfg.addr = optarg;
			http_port_given = true;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'E':
			fed_cfg.etcd_url = optarg;
			break;
		case 'H':
			fed_cfg.host_id = optarg;
			break;
		case 'a':
			fed_cfg.advertise = optarg;
			break;
		case 'L': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);
			if (*end || !*optarg || n < 2 || n > 3600) {
				fprintf(stderr, "thothd: --etcd-ttl wants 2..3600 seconds (etcd's shortest lease is 2 s)\n");
				return 2;
			}
			fed_cfg.ttl_s = (uint32_t)n;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("thothd %s\n", THOTH_VERSION_STRING);
			return 0;
		default:
			fprintf(stderr, "Try 'thothd --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "thothd: unexpected argument '%s' (thothd takes options only)\n"
			"Try 'thothd --help' for more information.\n", argv[optind]);
		return 2;
	}
	/* --http-port off with another --http-* option: that one would be
	 * ignored without a word (a --http-token-file believed to guard a
	 * dashboard that is not there, or one meant to come up on
	 * --http-addr).  Refused, naming them, whichever came first. */
	if (http_off && n_http_given) {
		char list[160] = "";
		size_t used = 0;
		for (int k = 0; k < n_http_given; k++)
			used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
						 k ? (k + 1 == n_http_given ? " and " : ", ") : "", http_given[k]);
		fprintf(stderr, "thothd: --http-port off turns the dashboard off, but %s %s given: "
			"drop %s or give a port\n", list, n_http_given > 1 ? "were" : "was",
			n_http_given > 1 ? "them" : "it");
		return 2;
	}
	/* Every option's value is checked here, with the command line: a bad
	 * --http-addr, --etcd, --host-id or --advertise (or one of the last
	 * three without --etcd) was found only after thothd had taken the
	 * runtime dir and served its socket, and exited 1, not 2. */
	{
		char arg_why[300];
		if (http_cfg.addr && thothd_http_addr_check(http_cfg.addr, arg_why, sizeof arg_why)) {
			fprintf(stderr, "thothd: --http-addr %s\n", arg_why);
			return 2;
		}
		if (fed_cfg.etcd_url && thothd_federation_config_check(&fed_cfg, arg_why, sizeof arg_why)) {
			fprintf(stderr, "thothd: %s\n", arg_why);
			return 2;
		}
		if (!fed_cfg.etcd_url && (fed_cfg.host_id || fed_cfg.advertise || fed_cfg.ttl_s)) {
			fprintf(stderr, "thothd: --host-id, --advertise and --etcd-ttl need --etcd\n");
			return 2;
		}
	}

	/* A token file that cannot be used (missing, unreadable, not ours,
	 * readable by others, empty) is exit 2, checked here before anything
	 * starts as every option's value is: the rule of every thoth tool for
	 * a file its command line names (thothd(8), EXIT STATUS).  It was 1,
	 * where thothctl's probe and thothc said 2. */
	if (token_file) {
		/* The token keeps the other users of the host out of the
		 * dashboard: a file they can read (a umask's 0644) kept nobody
		 * out, and nothing said so.  Refused as the cluster token is
		 * (docs/FEDERATION.md): a regular file of ours, chmod 600.
		 * Opened without blocking and without following a symlink, and
		 * checked on the fd (not the path, which can change between):
		 * fopen of a FIFO waited forever for a writer.  So a pipe,
		 * <(...) or /dev/fd/N, is refused too. */
		int tfd = open(token_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
		if (tfd < 0) {
			if (errno == ELOOP)
				fprintf(stderr, "thothd: the token file %s is a symbolic link (name the "
					"file itself)\n", token_file);
			else
				fprintf(stderr, "thothd: cannot read a token from %s: %s\n", token_file,
					strerror(errno));
			return 2;
		}
		struct stat tst;
		bool bad = false;
		if (fstat(tfd, &tst) != 0) {
			fprintf(stderr, "thothd: cannot read a token from %s: %s\n", token_file,
				strerror(errno));
			bad = true;
		} else if (!S_ISREG(tst.st_mode)) {
			fprintf(stderr, "thothd: the token file %s is not a regular file\n", token_file);
			bad = true;
		} else if (tst.st_uid != geteuid()) {
			fprintf(stderr, "thothd: the token file %s is owned by uid %u, not by us "
				"(uid %u)\n", token_file, (unsigned)tst.st_uid, (unsigned)geteuid());
			bad = true;
		} else if (tst.st_mode & 077) {
			fprintf(stderr, "thothd: the token file %s has mode %03o: group/other must have "
				"no access (chmod 600)\n", token_file, (unsigned)(tst.st_mode & 0777));
			bad = true;
		}
		/* The first line, up to sizeof token - 1 bytes: one byte more
		 * read says a longer line (cut silently before, every request
		 * then 401). */
		char tbuf[sizeof token + 1];
		size_t tn = 0;
		while (!bad && tn < sizeof tbuf - 1) {
			ssize_t got = read(tfd, tbuf + tn, sizeof tbuf - 1 - tn);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				fprintf(stderr, "thothd: cannot read a token from %s: %s\n", token_file,
					strerror(errno));
				bad = true;
			}
			if (got <= 0)
				break;
			tn += (size_t)got;
		}
		close(tfd);
		if (bad)
			return 2;
		if (!tn) {
			fprintf(stderr, "thothd: cannot read a token from %s: empty file\n", token_file);
			return 2;
		}
		tbuf[tn] = 0;
		size_t tlen = strcspn(tbuf, "\r\n");
		if (tlen > sizeof token - 1) {
			fprintf(stderr, "thothd: the token in %s is longer than %zu bytes\n", token_file,
				sizeof token - 1);
			return 2;
		}
		memcpy(token, tbuf, tlen);
		token[tlen] = 0;
		if (!token[0]) {
			fprintf(stderr, "thothd: the token in %s is empty\n", token_file);
			return 2;
		}
		http_cfg.token = token;
	}

	char dir[4096], why[512], sock[4200];
	if (thothd_runtime_dir(runtime_arg, dir, sizeof dir)) {
		fprintf(stderr, "thothd: runtime dir path too long\n");
		return 1;
	}
	if (thothd_runtime_dir_prepare(dir, why, sizeof why)) {
		fprintf(stderr, "thothd: %s\n", why);
		return 1;
	}
	int other = 0;
	thothd_predecessor_t prev;
	int lock_fd = thothd_pidfile_lock(dir, &other, &prev);
	if (lock_fd == THOTH_E_BUSY) {
		fprintf(stderr, "thothd: another thothd (pid %d) is already running on %s\n", other,
			dir);
		return 1;
	}
	if (lock_fd < 0) {
		/* errno, not the code: "system call failed" named neither the
		 * file nor the reason (a runtime dir thothd may not write to). */
		fprintf(stderr, "thothd: cannot take the lock file %s/%s: %s\n", dir,
			THOTHD_PIDFILE_NAME, strerror(errno));
		return 1;
	}
	snprintf(sock, sizeof sock, "%s/%s", dir, THOTHD_SOCKET_NAME);
	if (prev.pid > 0)
		say_predecessor(&prev, dir, sock);
	cfg.runtime_dir = dir;
	/* The window page every connected loop posts its next wake-up on
	 * (SCHED-3, docs/SCHED.md): a sealed memfd handed out on request;
	 * without it they use the per-boot grid.  Doorbells that loops of an
	 * earlier thothd's processes left behind go first. */
	unsigned swept = thoth__timerpage_sweep(dir);
	if (swept)
		thothd_debug("removed %u doorbell(s) left by an earlier thothd's processes", swept);
	int tp = thoth__timerpage_create(dir);
	if (tp) {
		char tpwhy[256];        /* the record: a dir too long names itself and the limit */
		thothd_warn("no window page in %s (%s): timers use the per-boot grid", dir,
			    thoth_strerror_r(tp, tpwhy, sizeof tpwhy));
	}

	signal(SIGPIPE, SIG_IGN);
	/* One descriptor per client: take what the administrator allows (the
	 * soft limit up to the hard one); thothd_new sizes max_clients to it. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	/* Our own trace buffer (all categories off): thothd is traced like any
	 * service, and collects itself (trace.c). */
	int tr = thoth_trace_init_process("thothd");
	if (tr)
		thothd_warn("no trace buffer (%s): thothd itself will not be traced",
			    thoth_strerror(tr));
	int status = 1;
	thoth_loop_t *loop = NULL;
	thothd_t *d = NULL;
	warn_unknown_env();
	uint32_t *distances = load_distances(&cfg.n_nodes);
	cfg.node_distance = distances;
	thothd_http_t *http = NULL;
	thothd_locks_t *locks = NULL;
	int r = thoth_loop_new(&loop);
	if (r) {
		thothd_error("cannot create the event loop: %s", thoth_strerror(r));
		goto out;
	}
	/* SIGHUP too (the terminal thothd ran in went away, or a `kill -HUP`
	 * meant as "reload"): its default action killed thothd on the spot and
	 * left the socket, the pid file and its doorbell behind.  There is no
	 * configuration to reload; it stops like SIGTERM.  Under nohup it must
	 * stay ignored: thoth_loop_add_signal blocks the signal, and a blocked
	 * signal is queued to the signalfd even when its disposition is
	 * SIG_IGN, so SIGHUP is handled only when it was not inherited as
	 * ignored. */
	struct sigaction hup_old;
	bool hup_ignored = sigaction(SIGHUP, NULL, &hup_old) == 0 &&
			   hup_old.sa_handler == SIG_IGN;
	if ((r = thoth_loop_add_signal(loop, SIGTERM, on_stop_signal, NULL)) ||
	    (r = thoth_loop_add_signal(loop, SIGINT, on_stop_signal, NULL)) ||
	    (!hup_ignored && (r = thoth_loop_add_signal(loop, SIGHUP, on_stop_signal, NULL)))) {
		thothd_error("cannot handle signals: %s", thoth_strerror(r));
		goto out;
	}
	r = thothd_new(&cfg, loop, &d);
	if (r) {
		thothd_error("cannot start: %s", thoth_strerror(r));
		goto out;
	}
	/* The history's first event (OBS-3): this start, and the predecessor
	 * found dead, for `thothctl status` long after the log line above. */
	thothd_lifecycle_started(d->lifecycle, thothd_now(d), d->pid, prev.pid > 0 ? (uint32_t)prev.pid : 0,
				 prev.pid > 0 && prev.started.tv_sec > 0
					 ? (uint64_t)prev.started.tv_sec * 1000000000ull + (uint64_t)prev.started.tv_nsec
					 : 0);
	/* LockReports and the trace sessions' lock source (OBS-4, locks.c). */
	if ((r = thothd_locks_new(d, &locks))) {
		thothd_error("cannot serve lock reports: %s", thoth_strerror(r));
		goto out;
	}
	int passed_fd;
	char passed_path[108];
	r = thothd_sd_listen_fd(&passed_fd, passed_path, sizeof passed_path, why, sizeof why);
	if (r < 0) {
		thothd_error("%s", why);
		goto out;
	}
	if (r == 1) {
		r = thothd_listen_fd(d, passed_fd);
		if (r) {
			thothd_error("cannot serve the passed socket: %s", thoth_strerror(r));
			goto out;
		}
		if (strcmp(passed_path, sock) != 0)
			thothd_warn("the passed socket is %s, not %s: clients looking in the "
				    "runtime dir will not find it", passed_path, sock);
		thothd_info("thothd %s serving %s (socket activation)", THOTHD_VERSION, passed_path);
	} else {
		char listen_why[256] = "";
		r = thothd_listen(d, sock, listen_why, sizeof listen_why);
		if (r) {
			thothd_error("cannot listen on %s: %s: %s", sock, thoth_strerror(r), listen_why);
			goto out;
		}
		thothd_info("thothd %s listening on %s", THOTHD_VERSION, sock);
	}
	/* The dashboard: optional at its default port (another thothd may hold
	 * it), required when asked for explicitly. */
	if (!http_off) {
		char http_why[256] = "";
		r = thothd_http_start(d, &http_cfg, &http, http_why, sizeof http_why);
		if (r && http_port_given) {
			thothd_error("dashboard: %s", http_why);
			goto out;
		}
		if (r)
			thothd_warn("dashboard: %s; running without it (--http-port to choose another)",
				    http_why);
		else
			thothd_info("dashboard at %s%s", d->dashboard_url,
				    http_cfg.token ? " (token required)" : "");
	}
	/* Federation (issue 19): optional, off unless --etcd. */
	char host_name[256], state_file[4200];
	if (fed_cfg.etcd_url) {
		if (!fed_cfg.host_id) {
			if (gethostname(host_name, sizeof host_name))
				snprintf(host_name, sizeof host_name, "host");
			host_name[sizeof host_name - 1] = 0;
			fed_cfg.host_id = host_name;
			fed_cfg.host_id_is_host_name = true;
		}
		snprintf(state_file, sizeof state_file, "%s/federation.state", dir);
		fed_cfg.state_file = state_file;
		fed_cfg.after_change = federation_after_change;
		fed_cfg.arg = d;
		char fed_why[300] = "";
		r = thothd_federation_new(loop, d->registry, &fed_cfg, &federation, fed_why, sizeof fed_why);
		if (r) {
			thothd_error("federation: %s", fed_why);
			goto out;
		}
		d->change_hook = federation_on_change;
		d->change_hook_arg = federation;
		d->metrics_hook = federation_metrics;
		d->metrics_hook_arg = federation;
		d->federation_view = thothd_federation_view;
		d->federation_view_arg = federation;
		thothd_info("federation: host %s, etcd %s, lease TTL %u s%s%s", fed_cfg.host_id, fed_cfg.etcd_url,
			    fed_cfg.ttl_s ? fed_cfg.ttl_s : 10, fed_cfg.advertise ? ", advertising " : "",
			    fed_cfg.advertise ? fed_cfg.advertise : "");
	}
	/* Serving from here on: the socket accepts, the loop will answer. */
	if ((r = thothd_sd_notify("READY=1\nSTATUS=serving")))
		thothd_warn("cannot notify the service manager: %s", thoth_strerror(r));
	if (ready_fd >= 0 && (r = thothd_ready_fd_notify(ready_fd)))
		thothd_warn("cannot write to --ready-fd: %s", thoth_strerror(r));
	ready_fd = -1;
	r = run_loop(loop, d);
	if (r) {
		thothd_error("event loop failed: %s", thoth_strerror(r));
		goto out;
	}
	status = 0;
out:
	thothd_sd_notify("STOPPING=1");
	if (ready_fd >= 0)
		close(ready_fd);        /* never ready: the reader sees EOF */
	thothd_http_stop(http);         /* before thothd_free: it uses the tracer */
	if (federation) {
		thothd_federation_t *fed = federation;
		thothd_federation_stats_t fs;
		thothd_federation_stats(fed, &fs);
		thothd_info("federation: %llu requests (%llu bytes) to etcd, %llu lease renewals, %u remote "
			    "instances of %u other hosts", (unsigned long long)fs.requests,
			    (unsigned long long)fs.bytes_sent, (unsigned long long)fs.keepalives, fs.remote,
			    fs.hosts);
		d->change_hook = NULL;  /* no more mirroring while the clients close */
		d->metrics_hook = NULL;
		d->federation_view = NULL;
		thothd_federation_free(fed);
	}
	thothd_locks_free(locks);       /* before thothd_free: it is the tracer's source */
	thothd_free(d);                 /* unlinks the socket */
	thoth_loop_free(loop);
	thoth_trace_shutdown();
	thothd_pidfile_release(dir, lock_fd);
	free(distances);
	if (!status)
		thothd_info("stopped");
	return status;
}
