/*
 * probe.c - `thothctl probe ...`: eBPF probes at trace points (OBS-2,
 * docs/PROBES.md).
 *
 *   thothctl probe check FILE.o
 *       verify every program of the object; exit 0 all accepted, 1 one or
 *       more rejected (each reason on stderr), 2 unreadable / not a BPF ELF
 *       object (or a usage error).
 *   thothctl probe attach FILE.o (--pid P | --service NAME) [--wait SECONDS]
 *       hand the object to traced process P through thothd; it attaches at
 *       its next trace point (no restart); waits (default 5 s) until P took it
 *   thothctl probe list              every probe, its process, state, runs
 *   thothctl probe detach ID
 *   thothctl probe maps ID [--json]  the probe's maps, read from the live
 *       process's memfd (/proc/PID/fd/N) while it runs
 *   thothctl probe run 'SCRIPT' (--pid P | --service NAME) [--duration S] | --emit FILE.o
 *       the one-line language (docs/PROBES.md "One-line scripts"), compiled
 *       to an object, verified, attached for S seconds, maps printed
 *   thothctl probe kernel FILE.o [--duration S] [--every S] | --keep
 *       the object's kernel sections (tracepoint/, raw_tp/, kprobe/,
 *       uprobe/) loaded into Linux by thothd (libbpf), which holds them: run
 *       for S seconds, their maps printed as `probe maps` prints ours, then
 *       detached (thothd also detaches them if this connection closes);
 *       --keep leaves them held by thothd until `probe detach ID`
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe.thoth.h"
#include "registry.thoth.h"
#include "thoth/probe.h"
#include "probe_points.h"
#include "procfd.h"
#include "thothctl.h"

static int usage(FILE *out, int status)
{
	fprintf(out,
	        "usage: thothctl probe check FILE.o\n"
	        "       thothctl probe attach FILE.o (--pid PID | --service NAME) [--wait SECONDS]\n"
	        "       thothctl probe list\n"
	        "       thothctl probe detach ID\n"
	        "       thothctl probe maps ID\n"
	        "       thothctl probe kernel FILE.o [--duration SECONDS] [--every SECONDS] | --keep\n"
	        "       thothctl probe run 'SCRIPT' (--pid PID | --service NAME) [--duration S]\n"
	        "       thothctl probe run 'SCRIPT' --emit FILE.o\n"
	        "  check   verify every program in FILE.o (0 accepted, 1 rejected, 2 unreadable)\n"
	        "  attach  hand FILE.o to the traced process PID (or the registered service\n"
	        "          NAME's, resolved through thothd) through thothd; it attaches at\n"
	        "          its next trace point, without a restart\n"
	        "  list    every probe, user and kernel: id, process, program, state, runs\n"
	        "  detach  stop probe ID\n"
	        "  maps    print probe ID's maps (--json before the command: JSON)\n"
	        "  kernel  have thothd load FILE.o's tracepoint/, raw_tp/, kprobe/, uprobe/\n"
	        "          programs into Linux (libbpf; thothd needs root or CAP_BPF+CAP_PERFMON)\n"
	        "          and hold them: run for --duration (default 5 s, or until SIGINT),\n"
	        "          print their maps as `maps` does (every --every seconds too), detach\n"
	        "          (also if thothctl dies); --keep: leave them held by thothd until\n"
	        "          `probe detach ID`\n"
	        "  run     compile a one-line script, e.g.\n"
	        "            'msg_send /size > 1024/ { @bytes[service_id] = sum(size); }'\n"
	        "          (aggregations count sum min max hist), attach it for --duration\n"
	        "          seconds (default 5), print its maps, detach; --emit writes the\n"
	        "          verified object instead\n");
	return status;
}

/*
 * Numbers on the command line, checked whole: a pid or id that is not a
 * number (or does not fit: 4294967297 must not become pid 1), or seconds
 * that are negative, NaN or beyond MAX, are usage errors naming the option
 * -- never a silent 0 that picks another target or waits forever.  Each
 * returns 0, or 2 after the message.
 */
static int parse_u64_arg(const char *what, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || s[0] < '0' || s[0] > '9' || v == 0 || v > max) {
		fprintf(stderr, "thothctl: probe: %s wants a number 1..%" PRIu64 ", not '%s'\n", what,
		        max, s);
		return 2;
	}
	*out = v;
	return 0;
}

static int parse_pid_arg(const char *s, uint32_t *pid)
{
	uint64_t v;
	int r = parse_u64_arg("--pid", s, INT32_MAX, &v);
	if (!r)
		*pid = (uint32_t)v;
	return r;
}

static int parse_seconds_arg(const char *what, const char *s, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= 0 && v <= max)) {
		fprintf(stderr, "thothctl: probe: %s wants seconds 0..%g, not '%s'\n", what, max, s);
		return 2;
	}
	*out = v;
	return 0;
}

/* The start of a `probe check --json` line: section and program names come
 * from the object file, whatever bytes it holds: escaped. */
static void section_json(const char *section, const char *name)
{
	printf("{\"section\":");
	thothctl_json_str(section, strlen(section));
	printf(",\"name\":");
	thothctl_json_str(name, strlen(name));
}

/* The loader's reason for an object it could not open: the file-level ones
 * (cannot open, not a regular file, too large) already begin with the
 * path, which was printed twice ("x.o: x.o: No such file or directory"). */
static void object_error(const char *path, const char *err, int r)
{
	size_t n = strlen(path);
	/* PATH is the user's word, shown as text (peertext): a file name with a
	 * newline or an ESC forged lines and colours on the terminal (cli47) */
	if (err[0] && strncmp(err, path, n) == 0 && err[n] == ':')
		fprintf(stderr, "thothctl: %s%s\n", peertext_textz(path), peertext_textz(err + n));
	else
		fprintf(stderr, "thothctl: %s: %s\n", peertext_textz(path),
			err[0] ? peertext_textz(err) : thoth_strerror(r));
}

/* A usage error of `probe SUB`: one line (thothctl_usage_error), never
 * the 26-line usage after it, which said neither what nor where. */
static int probe_usage_error(const char *sub, const char *what, const char *arg)
{
	char cmd[32];
	snprintf(cmd, sizeof cmd, "probe%s%s", sub ? " " : "", sub ? sub : "");
	return thothctl_usage_error(cmd, what, arg);
}

/* SUB given the wrong number of arguments: one line naming what it takes
 * (the bare usage, 17 lines, did not say what was wrong). */
static int wrong_count(const char *sub, const char *takes, int argc)
{
	char what[96];
	snprintf(what, sizeof what, "takes %s, not %d argument%s", takes, argc - 1, argc == 2 ? "" : "s");
	return probe_usage_error(sub, what, NULL);
}

/* ARG, which SUB's loop could not take: one of SUB's options that take a
 * value (VALUED, each followed by a space) at the end, its value missing;
 * an option SUB does not have; or an operand too many.  Only SUB's own:
 * a list of every subcommand's made `attach x.o --duration 5` "missing
 * value for --duration", which attach does not take (the loop takes each
 * of VALUED that has a value after it). */
static int bad_arg(const char *sub, const char *valued, const char *arg)
{
	size_t n = strlen(arg);
	for (const char *v = strstr(valued, arg); n && v; v = strstr(v + 1, arg))
		if ((v == valued || v[-1] == ' ') && v[n] == ' ')
			return probe_usage_error(sub, "missing value for", arg);
	if (arg[0] == '-' && arg[1])
		return probe_usage_error(sub, "unknown option", arg);
	return probe_usage_error(sub, "unexpected argument", arg);
}

static int probe_check(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return wrong_count("check", "one FILE.o", argc);
	const char *path = argv[1];
	char err[512] = "";
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open_file(path, &obj, err, sizeof err);
	if (r < 0) {
		object_error(path, err, r);
		/* 2: unreadable or not a BPF ELF object; 1: a BPF object using
		 * something probes do not support (the reason says what) */
		return r == THOTH_E_IO || r == THOTH_E_BAD_MAGIC || r == THOTH_E_NOMEM ? 2 : 1;
	}
	int rejected = 0;
	size_t n = thoth_probe_object_prog_count(obj);
	for (size_t i = 0; i < n; i++) {
		const char *section, *name;
		size_t insns;
		thoth_probe_object_prog(obj, i, &section, &name, &insns);
		char msg[4096];
		r = thoth_probe_verify(obj, i, msg, sizeof msg);
		if (r == THOTH_E_NOT_FOUND) {
			if (opts->json) {
				section_json(section, name);
				printf(",\"result\":\"kernel\"}\n");
			} else {
				printf("%s (%s): kernel program, %zu instructions (the Linux verifier "
				       "checks it at attach)\n", section, name, insns);
			}
			continue;
		}
		if (r < 0) {
			rejected++;
			fprintf(stderr, "thothctl: rejected: %s\n", msg);
			if (opts->json) {
				section_json(section, name);
				printf(",\"result\":\"rejected\",\"reason\":");
				thothctl_json_str(msg, strlen(msg));
				printf("}\n");
			}
			continue;
		}
		if (opts->json) {
			section_json(section, name);
			printf(",\"result\":\"accepted\",\"insns\":%zu}\n", insns);
		} else {
			printf("%s (%s): accepted, %zu instructions\n", section, name, insns);
		}
	}
	thoth_probe_object_free(obj);
	return rejected ? 1 : 0;
}

/* ---- through thothd ----------------------------------------------------------- */

typedef struct session {
	thoth_control_t ctl;
	void *scratch;
	thoth_arena_t arena;
} session_t;

static int session_open(session_t *s, const thothctl_opts_t *opts)
{
	if (thothctl_connect(&s->ctl, opts->runtime_dir))
		return 1;
	size_t cap = 4u << 20;
	s->scratch = malloc(cap);
	if (!s->scratch) {
		thoth_control_close(&s->ctl);
		return 1;
	}
	thoth_arena_init(&s->arena, s->scratch, cap);
	return 0;
}

static void session_close(session_t *s)
{
	free(s->scratch);
	thoth_control_close(&s->ctl);
}

static int list_probes(session_t *s, thoth_probe_ProbeControl_list_resp_t *resp)
{
	thoth_arena_init(&s->arena, s->scratch, 4u << 20);
	thoth_probe_ProbeControl_list_req_t req = { 0 };
	int r = thoth_probe_ProbeControl_list(&s->ctl.client, &req, resp, &s->arena);
	return r ? thothctl_call_failed(&s->ctl, "probe list", r) : 0;
}

static const thoth_probe_ProbeInfo_t *find_probe(const thoth_probe_ProbeControl_list_resp_t *l,
                                                 uint64_t id)
{
	for (uint32_t i = 0; i < l->probes.count; i++)
		if (l->probes.items[i].id == id)
			return &l->probes.items[i];
	return NULL;
}

/* O_NONBLOCK: a FIFO with no writer (`mkfifo p.o`, a misnamed path) held
 * open() forever before the "not a regular file" below could refuse it;
 * on a regular file the flag changes nothing. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "thothctl: %s: %s\n", peertext_textz(path), strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	if (!S_ISREG(st.st_mode)) {     /* a directory read as "short read" */
		fprintf(stderr, "thothctl: %s: not a regular file\n", peertext_textz(path));
		close(fd);
		return 2;
	}
	/* blocking again: a FUSE or network file system is handed O_NONBLOCK
	 * and may answer EAGAIN, read below as a "short read" */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	if (st.st_size <= 0 || st.st_size > (off_t)THOTH_PROBE_MAX_OBJECT) {
		fprintf(stderr, "thothctl: %s: %lld bytes (1 to %u)\n", peertext_textz(path), (long long)st.st_size,
		        THOTH_PROBE_MAX_OBJECT);
		close(fd);
		return 2;
	}
	uint8_t *buf = malloc((size_t)st.st_size);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != (size_t)st.st_size) {
		fprintf(stderr, "thothctl: %s: short read\n", peertext_textz(path));
		free(buf);
		return 2;
	}
	*out = buf;
	*len = got;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int attach_bytes(uint8_t *bytes, size_t len, const char *path, uint32_t pid,
                        const char *service, const char *point, double wait_s,
                        const thothctl_opts_t *opts, uint64_t *ids_out, uint32_t *n_out);

/* A point process PID does not have, said in one line (1; 0: it has it,
 * or that cannot be told: no USDT notes, maps not readable).  The runtime
 * attaches to any name, so a probe at a misspelt point sat pending and
 * an empty map looked like a point that had just not fired; probe run
 * (SUB) and probe attach of an object say it the same way. */
static bool lacks_point(uint32_t pid, const char *sub, const char *point)
{
	char near[256];
	if (!strcmp(point, "*") || thothctl_probe_point_known(pid, point, near, sizeof near) != 0)
		return false;
	fprintf(stderr, "thothctl: %s: pid %u has no trace point '%s' (%s%s); its points: "
		"`readelf -n` of each file /proc/%u/maps lists executable (provider thoth), the tree's: docs/OBSERVABILITY.md "
		"\"Trace points in the tree\"\n", sub, pid, point, near[0] ? "nearest: " : "none near it",
		peertext_textz(near), pid);
	return true;
}

/* A name no service can have ("a/b", "Echo", ESC) went to thothd and came
 * back "no process for service 'a/b' (peer returned an application
 * error)", the argument's bytes raw on the terminal: said here, exit 2. */
static bool bad_service_name(const char *sub, const char *service)
{
	if (thothctl_service_name_ok(service))
		return false;
	fprintf(stderr, "thothctl: probe %s: --service '%s' is not a service name (1..128 of "
		"[a-z0-9_.-], starting with a letter)\n", sub, peertext_textz(service));
	return true;
}

static int probe_attach(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *path = NULL, *service = NULL;
	uint32_t pid = 0;
	double wait_s = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc) {
			if (parse_pid_arg(argv[++i], &pid))
				return 2;
		} else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (parse_seconds_arg("--wait", argv[++i], 3600, &wait_s))
				return 2;
		} else if (!strcmp(argv[i], "--service") && i + 1 < argc) {
			service = argv[++i];
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			return bad_arg("attach", "--pid --wait --service ", argv[i]);
		}
	}
	if (!path)
		return probe_usage_error("attach", "no FILE.o given", NULL);
	if ((!pid) == (!service))       /* exactly one of --pid and --service */
		return probe_usage_error("attach", pid ? "--pid or --service, not both"
					 : "whose? give --pid PID or --service NAME", NULL);
	if (!pid && !service[0])
		return probe_usage_error("attach", "--service wants a name, not ''", NULL);
	if (!pid && bad_service_name("attach", service))
		return 2;
	uint8_t *bytes;
	size_t len;
	int r = read_file(path, &bytes, &len);
	if (r)
		return r;
	return attach_bytes(bytes, len, path, pid, service, NULL, wait_s, opts, NULL, NULL);
}

/*
 * Verify BYTES (an object; LABEL names it in messages), hand it to PID or
 * SERVICE's process through thothd, wait up to WAIT_S for it to be taken;
 * print each probe's state.  Frees BYTES.  IDS/N_IDS (may be NULL) get the
 * probe ids.  POINT (probe run's; NULL: none) must be one the process has.
 * 0, 1 (refused, failed, no such point) or 2 (not a BPF object).
 */
static int attach_bytes(uint8_t *bytes, size_t len, const char *path, uint32_t pid,
                        const char *service, const char *point, double wait_s,
                        const thothctl_opts_t *opts, uint64_t *ids_out, uint32_t *n_out)
{
	int r;
	/* Verified here first, for the whole message (an error reply from thothd
	 * carries a shortened one); thothd and the target verify it again. */
	char err[4096];
	thoth_probe_object_t *obj;
	r = thoth_probe_object_open(bytes, len, &obj, err, sizeof err);
	if (r) {
		fprintf(stderr, "thothctl: %s: %s\n", peertext_textz(path), peertext_textz(err));
		free(bytes);
		return r == THOTH_E_BAD_MAGIC ? 2 : 1;
	}
	/* The points a plain attach's programs name (probe run's is POINT):
	 * checked against the process below, once it is known.  A name longer
	 * than any point's (the tree's are identifiers under 32 bytes) is not
	 * cut to fit, and not checked. */
	char points[THOTH_PROBE_MAX_PROGS][128];
	size_t npoints = 0;
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj) && !r; i++) {
		if (thoth_probe_verify(obj, i, err, sizeof err) == THOTH_E_INVAL)
			r = 1;
		const char *section, *name;
		size_t insns;
		if (!point && npoints < THOTH_PROBE_MAX_PROGS &&
		    thoth_probe_object_prog(obj, i, &section, &name, &insns) == 0 &&
		    strncmp(section, "thoth/", 6) == 0 && strlen(section + 6) < sizeof points[0])
			snprintf(points[npoints++], sizeof points[0], "%s", section + 6);
	}
	thoth_probe_object_free(obj);
	if (r) {
		fprintf(stderr, "thothctl: rejected: %s\n", err);
		free(bytes);
		return 1;
	}
	session_t s;
	if (session_open(&s, opts)) {
		free(bytes);
		return 1;
	}
	if (service) {
		/* The service's registered name to its process: thothd's registry
		 * (one instance, the registry's pick; --pid names another). */
		thoth_registry_Registry_resolve_req_t rq = {
			.name = thoth_str(service), .min_version = thoth_str(""),
			.prefer = THOTH_COMMON_LOCALITY_HOST,
		};
		thoth_registry_Registry_resolve_resp_t rs;
		r = thoth_registry_Registry_resolve(&s.ctl.client, &rq, &rs, &s.arena);
		if (r == 0 && rs.instance.registration.endpoint.locality == THOTH_COMMON_LOCALITY_REMOTE) {
			/* Only another host serves it (federation): its pid is that
			 * host's, and the probe went to whatever process has the
			 * same number here (thothd itself, say). */
			const thoth_str_t *a = &rs.instance.registration.endpoint.addr;
			fprintf(stderr, "thothctl: probe attach: service '%s' is served only on another "
				"host (%.*s): a probe attaches to a process of this host (attach it "
				"through that host's thothd)\n", service, (int)a->len, a->ptr);
			thoth_client_release(&s.ctl.client);
			free(bytes);
			session_close(&s);
			return 1;
		}
		if (r == 0)
			pid = rs.instance.registration.endpoint.pid;
		thoth_client_release(&s.ctl.client);
		if (r || !pid) {
			/* thothd's NotFound read "peer returned an application error" */
			bool none = r == THOTH_E_REMOTE &&
				    s.ctl.client.remote_code == THOTH_REGISTRY_ERR_NOT_FOUND;
			fprintf(stderr, "thothctl: probe attach: no process for service '%s' (%s)\n",
			        service, none ? "no live instance is registered: `thothctl services` lists them"
			        : r ? thoth_strerror(r) : "it registered no pid");
			free(bytes);
			session_close(&s);
			return 1;
		}
	}
	/* A point the process does not have: the runtime attaches to any
	 * name, so the run sat out --duration and printed an empty map as if
	 * the point had just not fired.  Unknowable (no USDT notes, maps not
	 * readable): attached as before. */
	bool lacks = point && lacks_point(pid, "probe run", point);
	for (size_t i = 0; i < npoints && !lacks; i++)
		lacks = lacks_point(pid, "probe attach", points[i]);
	if (lacks) {
		free(bytes);
		session_close(&s);
		return 1;
	}
	thoth_probe_ProbeControl_attach_req_t req = {
		.object = { .ptr = bytes, .len = (uint32_t)len }, .pid = pid,
	};
	thoth_probe_ProbeControl_attach_resp_t resp;
	r = thoth_probe_ProbeControl_attach(&s.ctl.client, &req, &resp, &s.arena);
	free(bytes);
	if (r) {
		r = thothctl_call_failed(&s.ctl, "probe attach", r);
		session_close(&s);
		return r;
	}
	uint64_t ids[THOTH_PROBE_MAX_PROGS];
	uint32_t n = resp.ids.count < THOTH_PROBE_MAX_PROGS ? resp.ids.count : THOTH_PROBE_MAX_PROGS;
	memcpy(ids, resp.ids.items, n * sizeof ids[0]);
	/* Wait until the process took it (its next trace point), with a deadline. */
	uint64_t deadline = now_ms() + (uint64_t)(wait_s * 1000);
	int status = 0;
	for (;;) {
		thoth_probe_ProbeControl_list_resp_t l;
		if (list_probes(&s, &l)) {
			status = 1;
			break;
		}
		uint32_t settled = 0;
		for (uint32_t i = 0; i < n; i++) {
			const thoth_probe_ProbeInfo_t *p = find_probe(&l, ids[i]);
			if (p && strncmp(p->state.ptr, "pending", 7) != 0)
				settled++;
		}
		if (settled == n || now_ms() >= deadline) {
			for (uint32_t i = 0; i < n; i++) {
				const thoth_probe_ProbeInfo_t *p = find_probe(&l, ids[i]);
				if (!p)
					continue;
				if (!strncmp(p->state.ptr, "failed", 6))
					status = 1;
				if (opts->json) {
					printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"program\":", p->id, p->pid);
					thothctl_json_str(p->program.ptr, p->program.len);
					printf(",\"state\":");
					thothctl_json_str(p->state.ptr, p->state.len);
					printf("}\n");
				} else {
					printf("probe %" PRIu64 ": %s in pid %u: %s\n", p->id,
					       peertext_text(p->program.ptr, p->program.len), p->pid,
					       peertext_text(p->state.ptr, p->state.len));
				}
			}
			break;
		}
		usleep(20000);
	}
	if (ids_out && n_out) {
		memcpy(ids_out, ids, n * sizeof ids[0]);
		*n_out = n;
	}
	session_close(&s);
	return status;
}

static int probe_list(int argc, char **argv, const thothctl_opts_t *opts)
{
	(void)argv;
	if (argc != 1)
		return wrong_count("list", "no argument", argc);
	session_t s;
	if (session_open(&s, opts))
		return 1;
	thoth_probe_ProbeControl_list_resp_t l;
	int r = list_probes(&s, &l);
	if (!r) {
		if (!opts->json)
			printf("%-6s %-8s %-32s %-12s %s\n", "ID", "PID", "PROGRAM", "RUNS", "STATE");
		for (uint32_t i = 0; i < l.probes.count; i++) {
			const thoth_probe_ProbeInfo_t *p = &l.probes.items[i];
			if (opts->json) {
				printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"kernel\":%s,\"program\":", p->id,
				       p->pid, p->kernel ? "true" : "false");
				thothctl_json_str(p->program.ptr, p->program.len);
				printf(",\"runs\":%" PRIu64 ",\"state\":", p->runs);
				thothctl_json_str(p->state.ptr, p->state.len);
				if (p->kernel) {
					printf(",\"object\":");
					thothctl_json_str(p->object.ptr, p->object.len);
					printf(",\"holder_pid\":%u", p->holder_pid);
				}
				printf("}\n");
			} else if (p->kernel) {
				/* PROGRAM: the object, then its programs in the state column */
				const char *object = peertext_text(p->object.ptr, p->object.len);
				printf("%-6" PRIu64 " %-8s %-*s %-12s %s: %s\n", p->id, "kernel",
				       peertext_field(object, 32), object, "-",
				       peertext_text(p->state.ptr, p->state.len),
				       peertext_text(p->program.ptr, p->program.len));
			} else {
				const char *program = peertext_text(p->program.ptr, p->program.len);
				printf("%-6" PRIu64 " %-8u %-*s %-12" PRIu64 " %s\n", p->id, p->pid,
				       peertext_field(program, 32), program, p->runs,
				       peertext_text(p->state.ptr, p->state.len));
			}
		}
	}
	session_close(&s);
	return r;
}

static int probe_detach(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return wrong_count("detach", "one ID", argc);
	uint64_t id;
	if (parse_u64_arg("a probe ID", argv[1], UINT64_MAX, &id))
		return 2;
	session_t s;
	if (session_open(&s, opts))
		return 1;
	thoth_probe_ProbeControl_detach_req_t req = { .id = id };
	thoth_probe_ProbeControl_detach_resp_t resp;
	int r = thoth_probe_ProbeControl_detach(&s.ctl.client, &req, &resp, &s.arena);
	/* "probe detach: no probe with that id" named no id, where probe
	 * maps says "probe 99: no such probe"; both now name it and where
	 * the ids are listed. */
	char what[48];
	snprintf(what, sizeof what, "probe detach %" PRIu64, id);
	if (r == THOTH_E_REMOTE && s.ctl.client.remote_code == THOTH_PROBE_ERR_NOT_FOUND) {
		fprintf(stderr, "thothctl: %s: no probe %" PRIu64 " (`thothctl probe list` lists them)\n",
			what, id);
		r = 1;
	} else if (r) {
		r = thothctl_call_failed(&s.ctl, what, r);
	}
	else if (opts->json)
		printf("{\"id\":%s,\"state\":\"detaching\"}\n", argv[1]);
	else
		printf("probe %s: detaching (at the process's next trace point)\n", argv[1]);
	session_close(&s);
	return r;
}

typedef struct print_ctx {
	const thoth_probe_map_info_t *info;
	bool json;
	bool first;
} print_ctx_t;

static void print_bytes(const uint8_t *b, uint32_t n, bool json)
{
	if (n == 1 || n == 2 || n == 4 || n == 8) {
		uint64_t v = 0;
		memcpy(&v, b, n);
		printf("%" PRIu64, v);
		return;
	}
	if (json)
		putchar('"');
	printf("0x");
	for (uint32_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	if (json)
		putchar('"');
}

static int print_entry(const void *key, const void *value, void *arg)
{
	print_ctx_t *pc = arg;
	const thoth_probe_map_info_t *m = pc->info;
	uint32_t vs = m->value_size, ks = m->key_size;
	if (m->type == 27) {     /* ringbuf: KEY is the record's length, no key */
		memcpy(&vs, key, 4);
		key = NULL;
	}
	(void)ks;
	if (pc->json) {
		printf("%s{", pc->first ? "" : ",");
		if (key) {
			printf("\"key\":");
			print_bytes(key, m->key_size, true);
			printf(",");
		}
		printf("\"value\":");
		print_bytes(value, vs, true);
		printf("}");
	} else {
		printf("  ");
		if (key) {
			print_bytes(key, m->key_size, false);
			printf(": ");
		}
		print_bytes(value, vs, false);
		printf("\n");
	}
	pc->first = false;
	return 0;
}

static int kernel_maps_call(session_t *s, uint64_t id, const char *object, bool json);

typedef struct map_ctx {
	thoth_probe_maps_t *maps;
	const char *path;               /* "/proc/PID/fd/N", for the messages */
} map_ctx_t;

/* thothctl_peer_memfd_read's reader: the maps in FD mapped. */
static int map_maps(int fd, void *ctx, char *why, size_t why_len)
{
	map_ctx_t *m = ctx;
	char msg[200] = "";
	int e = thoth_probe_maps_open_why(fd, &m->maps, msg, sizeof msg);
	if (e)
		snprintf(why, why_len, "maps at %s: %s", m->path, msg[0] ? msg : thoth_strerror(e));
	return e;
}

static int probe_maps(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return wrong_count("maps", "one ID", argc);
	uint64_t id;
	if (parse_u64_arg("a probe ID", argv[1], UINT64_MAX, &id))
		return 2;
	session_t s;
	if (session_open(&s, opts))
		return 1;
	thoth_probe_ProbeControl_list_resp_t l;
	int r = list_probes(&s, &l);
	const thoth_probe_ProbeInfo_t *p = r ? NULL : find_probe(&l, id);
	if (!r && p && p->kernel) {     /* read by thothd, which holds the maps */
		char object[160];
		snprintf(object, sizeof object, "%.*s", (int)p->object.len, p->object.ptr);
		r = kernel_maps_call(&s, id, object, opts->json);
		session_close(&s);
		return r;
	}
	if (!r && (!p || p->maps_fd < 0)) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": %s\n", id,
		        p ? "its process has not attached it (no maps yet)" : "no such probe");
		r = 1;
	}
	uint32_t pid = p ? p->pid : 0;
	int maps_fd = p ? p->maps_fd : -1;
	/* PID pinned before /proc/PID is read and checked after (procfd.h):
	 * a process that exits meanwhile may leave its number to another one,
	 * whose descriptor MAPS_FD would be printed as this probe's maps. */
	char why[320] = "", path[64] = "";
	map_ctx_t mc = { .path = path };
	int pr = r ? 0 : thothctl_peer_memfd_read(pid, maps_fd, map_maps, &mc, path, sizeof path, why,
						  sizeof why);
	thoth_probe_maps_t *maps = mc.maps;
	bool exited = pr == 2;
	if (pr && !exited) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": %s\n", id, why);
		r = 1;
	}
	/* The process lived through the reads; thothd, asked again, says
	 * whether the probe (a process that had exited before the pidfd was
	 * taken had its probe dropped) still is PID's. */
	if (!r && !exited && list_probes(&s, &l))
		r = 1;          /* said by list_probes */
	if (!r && !exited) {
		const thoth_probe_ProbeInfo_t *q = find_probe(&l, id);
		exited = !q || q->pid != pid || q->maps_fd != maps_fd;
	}
	if (!r && exited) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": process %u exited while its maps were "
		        "read (its pid may name another process now): nothing printed\n", id, pid);
		r = 1;
	}
	session_close(&s);
	if (r) {
		if (maps)
			thoth_probe_maps_free(maps);
		return r;
	}
	if (opts->json)
		printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"maps\":[", id, pid);
	for (size_t i = 0; i < thoth_probe_maps_count(maps); i++) {
		thoth_probe_map_info_t info;
		thoth_probe_maps_info(maps, i, &info);
		static const char *const TYPES[] = { [1] = "hash", [2] = "array",
			                             [6] = "percpu_array", [27] = "ringbuf" };
		const char *tn = info.type < 28 && TYPES[info.type] ? TYPES[info.type] : "?";
		if (opts->json) {
			printf("%s{\"name\":", i ? "," : "");
			thothctl_json_str(info.name, strlen(info.name));
			printf(",\"type\":\"%s\",\"lost\":%" PRIu64 ",\"entries\":[", tn, info.lost);
		} else {
			/* the probed process's map: its name shown, never obeyed */
			printf("%s (%s, key %u B, value %u B, max %u%s):\n", peertext_textz(info.name), tn,
			       info.key_size, info.value_size, info.max_entries, info.lost ? ", some lost" : "");
		}
		print_ctx_t pc = { .info = &info, .json = opts->json, .first = true };
		thoth_probe_maps_foreach(maps, i, print_entry, &pc);
		if (opts->json)
			printf("]}");
	}
	if (opts->json)
		printf("]}\n");
	thoth_probe_maps_free(maps);
	return 0;
}

/* ---- one-line scripts: thothctl probe run 'SCRIPT' ------------------------------- */

static volatile sig_atomic_t run_stop;

static void run_on_signal(int sig)
{
	(void)sig;
	run_stop = 1;
}

/*
 * The end of a run whose probe its process never took: it reached no trace
 * point (an idle service), so nothing ran and there are no maps.  The
 * attach is withdrawn (else it blocked the next command to that process:
 * a second `probe run` got "has not taken the previous probe command yet",
 * and the abandoned script attached at the process's next trace point, to
 * run there with nobody to detach it) and the run says so: -1 after
 * printing, 1 after an error, 0 when the probe was taken after all (the
 * caller prints its maps).  A process taking it at this very moment makes
 * thothd answer Busy for an instant: asked again.
 */
static int run_withdraw_untaken(uint64_t id, double duration, const thothctl_opts_t *opts)
{
	session_t s;
	if (session_open(&s, opts))
		return 1;
	int status = 0;
	for (int tries = 0; tries < 100; tries++) {
		thoth_probe_ProbeControl_list_resp_t l;
		if (list_probes(&s, &l)) {
			status = 1;
			break;
		}
		const thoth_probe_ProbeInfo_t *p = find_probe(&l, id);
		if (!p || strncmp(p->state.ptr, "pending", 7) != 0)
			break;          /* taken (or gone): the maps say what it saw */
		uint32_t pid = p->pid;
		thoth_probe_ProbeControl_detach_req_t req = { .id = id };
		thoth_probe_ProbeControl_detach_resp_t resp;
		int r = thoth_probe_ProbeControl_detach(&s.ctl.client, &req, &resp, &s.arena);
		/* Its own code (probe.tidl 1.2): a message is for people, and may
		 * change.  A thothd before 1.2 answers Busy with "... right now:
		 * detach it again" for the same case; that one is still matched
		 * so that this thothctl serves an older thothd. */
		int code = s.ctl.client.remote_code;
		bool busy = r == THOTH_E_REMOTE &&
		            (code == THOTH_PROBE_ERR_TAKING ||
		             (code == THOTH_PROBE_ERR_BUSY &&
		              strstr(s.ctl.client.remote_message, "right now")));
		if (r && !busy) {
			status = thothctl_call_failed(&s.ctl, "probe run: withdraw", r);
			thoth_client_release(&s.ctl.client);
			break;
		}
		thoth_client_release(&s.ctl.client);
		if (busy) {
			usleep(10000);
			continue;
		}
		if (opts->json)
			printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"ran\":false,\"maps\":[]}\n", id, pid);
		else
			printf("probe %" PRIu64 ": pid %u reached no trace point in %g s (idle?): the "
			       "probe never ran and was withdrawn\n", id, pid, duration);
		status = -1;
		break;
	}
	session_close(&s);
	return status;
}

static int probe_run(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *script = NULL, *service = NULL, *emit = NULL;
	uint32_t pid = 0;
	double duration = 5, wait_s = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc) {
			if (parse_pid_arg(argv[++i], &pid))
				return 2;
		} else if (!strcmp(argv[i], "--service") && i + 1 < argc) {
			service = argv[++i];
		} else if (!strcmp(argv[i], "--duration") && i + 1 < argc) {
			if (parse_seconds_arg("--duration", argv[++i], 86400, &duration))
				return 2;
		} else if (!strcmp(argv[i], "--wait") && i + 1 < argc) {
			if (parse_seconds_arg("--wait", argv[++i], 3600, &wait_s))
				return 2;
		} else if (!strcmp(argv[i], "--emit") && i + 1 < argc) {
			emit = argv[++i];
		} else if (!script && (argv[i][0] != '-' || argv[i][1] == '\0')) {
			script = argv[i];
		} else {
			return bad_arg("run", "--pid --service --duration --wait --emit ", argv[i]);
		}
	}
	if (!script)
		return probe_usage_error("run", "no 'SCRIPT' given", NULL);
	if (!emit && (!pid) == (!service))      /* exactly one target, or --emit */
		return probe_usage_error("run", pid ? "--pid or --service, not both"
					 : "whose? give --pid PID, --service NAME or --emit FILE.o", NULL);
	/* Empty values ("$SVC" unset) said as attach says them: --service ''
	 * went on to ask thothd for a service named nothing, --emit '' ended
	 * in "cannot write : No such file or directory", exit 1. */
	if (service && !service[0])
		return probe_usage_error("run", "--service wants a name, not ''", NULL);
	if (service && bad_service_name("run", service))
		return 2;
	if (emit && !emit[0])
		return probe_usage_error("run", "--emit wants a file name, not ''", NULL);
	char err[512];
	uint8_t *elf;
	size_t len;
	int r = thoth_probe_script_compile(script, strlen(script), &elf, &len, err, sizeof err);
	if (r) {
		fprintf(stderr, "thothctl: probe run: %s\n", err[0] ? err : thoth_strerror(r));
		/* the script and a caret under the column */
		unsigned long col = 0;
		size_t n = strlen(script);
		if (sscanf(err, "column %lu", &col) == 1 && col >= 1 && n < 200) {
			/* Shown as a peer's text: a script from a file ("$(cat
			 * f)") wrote its ESC and bidi bytes to the terminal raw,
			 * and a newline in it broke the line the caret is under.
			 * The caret goes under the column as shown (an escape
			 * is 4 columns, a wide character 2). */
			const char *before = peertext_text(script, col - 1 < n ? col - 1 : n);
			fprintf(stderr, "  %s\n  %*s^\n", peertext_text(script, n), peertext_cols(before), "");
		}
		return 2;
	}
	/* The same verifier as clang's objects; a refusal here is a compiler bug. */
	thoth_probe_object_t *obj;
	char msg[4096], point[128] = "";
	r = thoth_probe_object_open(elf, len, &obj, msg, sizeof msg);
	if (!r) {
		r = thoth_probe_verify(obj, 0, msg, sizeof msg);
		const char *section = NULL;     /* "thoth/POINT": the script's point */
		thoth_probe_object_prog(obj, 0, &section, NULL, NULL);
		if (section && !strncmp(section, "thoth/", 6))
			snprintf(point, sizeof point, "%s", section + 6);
		thoth_probe_object_free(obj);
	}
	if (r) {
		fprintf(stderr, "thothctl: probe run: the compiled script was refused (a compiler "
		        "fault, please report it): %s\n", msg);
		free(elf);
		return 1;
	}
	if (emit) {
		FILE *f = fopen(emit, "wb");
		if (!f || fwrite(elf, 1, len, f) != len || fclose(f) != 0) {
			fprintf(stderr, "thothctl: probe run: cannot write %s: %s\n", peertext_textz(emit), strerror(errno));
			free(elf);
			return 1;
		}
		free(elf);
		if (!opts->json)
			printf("%s: %zu bytes, verified\n", emit, len);
		return 0;
	}
	uint64_t ids[THOTH_PROBE_MAX_PROGS];
	uint32_t n = 0;
	thothctl_opts_t quiet = *opts;
	r = attach_bytes(elf, len, "script", pid, service, point[0] ? point : NULL, wait_s, &quiet, ids, &n);
	if (r || n == 0)
		return r ? r : 1;
	run_stop = 0;
	struct sigaction sa = { .sa_handler = run_on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	uint64_t end = now_ms() + (uint64_t)(duration * 1000);
	while (!run_stop && now_ms() < end) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	int never = run_withdraw_untaken(ids[0], duration, opts);
	if (never != 0)
		return never < 0 ? 0 : never;
	char idstr[32];
	snprintf(idstr, sizeof idstr, "%" PRIu64, ids[0]);
	char *margv[] = { "maps", idstr, NULL };
	int status = probe_maps(2, margv, opts);
	/* detach quietly: the maps were the output; a failure is said */
	session_t s;
	if (session_open(&s, opts) == 0) {
		for (uint32_t i = 0; i < n; i++) {
			thoth_probe_ProbeControl_detach_req_t req = { .id = ids[i] };
			thoth_probe_ProbeControl_detach_resp_t resp;
			int dr = thoth_probe_ProbeControl_detach(&s.ctl.client, &req, &resp, &s.arena);
			if (dr) {
				char what[64];
				snprintf(what, sizeof what, "probe run: detach %" PRIu64, ids[i]);
				status = thothctl_call_failed(&s.ctl, what, dr);
			}
			thoth_client_release(&s.ctl.client);
		}
		session_close(&s);
	} else {
		status = 1;
	}
	return status;
}

/* ---- kernel hooks: the same objects' tracepoint/raw_tp/kprobe/uprobe
 * sections, loaded into Linux by thothd (libbpf) and held by it ----------- */

static bool kernel_section(const char *sec)
{
	static const char *const prefixes[] = { "tracepoint/", "tp/", "raw_tp/", "raw_tracepoint/",
		                                    "uprobe", "uretprobe", "kprobe/", "kretprobe/" };
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncmp(sec, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

/* One kernel_maps answer, printed as probe maps prints ours (same text,
 * same JSON shape plus "kernel":true). */
static void kernel_maps_print(const thoth_probe_ProbeControl_kernel_maps_resp_t *km, uint64_t id,
                              const char *object, bool json)
{
	if (json) {
		printf("{\"id\":%" PRIu64 ",\"kernel\":true,\"object\":", id);
		thothctl_json_str(object, strlen(object));
		printf(",\"maps\":[");
	}
	for (uint32_t i = 0; i < km->maps.count; i++) {
		const thoth_probe_KernelMap_t *m = &km->maps.items[i];
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			thothctl_json_str(m->name.ptr, m->name.len);
			printf(",\"type\":");
			thothctl_json_str(m->type.ptr, m->type.len);
			printf(",\"kernel\":true,\"truncated\":%s,\"entries\":[",
			       m->truncated ? "true" : "false");
		} else {
			printf("%s (kernel %s, key %u B, value %u B, max %u%s):\n",
			       peertext_text(m->name.ptr, m->name.len), peertext_text(m->type.ptr, m->type.len),
			       m->key_size, m->value_size,
			       m->max_entries, m->truncated ? ", more not shown" : "");
		}
		for (uint32_t k = 0; k < m->entries.count; k++) {
			const thoth_probe_KernelEntry_t *e = &m->entries.items[k];
			if (json) {
				printf("%s{", k ? "," : "");
				if (e->key.len) {
					printf("\"key\":");
					print_bytes(e->key.ptr, e->key.len, true);
					printf(",");
				}
				printf("\"value\":");
				print_bytes(e->value.ptr, e->value.len, true);
				printf("}");
			} else {
				printf("  ");
				if (e->key.len) {
					print_bytes(e->key.ptr, e->key.len, false);
					printf(": ");
				}
				print_bytes(e->value.ptr, e->value.len, false);
				printf("\n");
			}
		}
		if (json)
			printf("]}");
	}
	if (json)
		printf("]}\n");
	fflush(stdout);
}

static int kernel_maps_call(session_t *s, uint64_t id, const char *object, bool json)
{
	thoth_arena_init(&s->arena, s->scratch, 4u << 20);
	thoth_probe_ProbeControl_kernel_maps_req_t req = { .id = id };
	thoth_probe_ProbeControl_kernel_maps_resp_t resp;
	int r = thoth_probe_ProbeControl_kernel_maps(&s->ctl.client, &req, &resp, &s->arena);
	if (r)
		return thothctl_call_failed(&s->ctl, "probe maps", r);
	kernel_maps_print(&resp, id, object, json);
	return 0;
}

static volatile sig_atomic_t kernel_stop;

static void kernel_on_signal(int sig)
{
	(void)sig;
	kernel_stop = 1;
}

static int probe_kernel(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *path = NULL;
	double duration = 5, every = 0;
	bool keep = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			if (parse_seconds_arg("--duration", argv[++i], 86400, &duration))
				return 2;
		} else if (strcmp(argv[i], "--every") == 0 && i + 1 < argc) {
			if (parse_seconds_arg("--every", argv[++i], 86400, &every))
				return 2;
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = true;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			return bad_arg("kernel", "--duration --every ", argv[i]);
		}
	}
	if (!path)
		return probe_usage_error("kernel", "no FILE.o given", NULL);
	/* Our own loader first: a clear error for a file that is not a BPF
	 * object, and the list of kernel sections. */
	char err[512] = "";
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open_file(path, &obj, err, sizeof err);
	if (r < 0) {
		object_error(path, err, r);
		return r == THOTH_E_IO || r == THOTH_E_BAD_MAGIC ? 2 : 1;
	}
	size_t n_kernel = 0;
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj); i++) {
		const char *sec, *name;
		size_t insns;
		thoth_probe_object_prog(obj, i, &sec, &name, &insns);
		n_kernel += kernel_section(sec);
	}
	thoth_probe_object_free(obj);
	if (!n_kernel) {
		fprintf(stderr, "thothctl: %s has no kernel program (sections tracepoint/, raw_tp/, "
		        "kprobe/, uprobe/); its thoth/ programs attach with `thothctl probe attach`\n",
		        peertext_textz(path));
		return 1;
	}
	uint8_t *bytes;
	size_t len;
	if ((r = read_file(path, &bytes, &len)))
		return r;
	session_t s;
	if (session_open(&s, opts)) {
		free(bytes);
		return 1;
	}
	/* thothd loads and holds it; unless --keep, it is held by this
	 * connection too, so that a thothctl killed mid-run leaves nothing
	 * attached (thothd detaches it when the connection closes). */
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	thoth_probe_ProbeControl_kernel_attach_req_t req = {
		.object = { .ptr = bytes, .len = (uint32_t)len }, .name = thoth_str(base), .held = !keep,
	};
	thoth_probe_ProbeControl_kernel_attach_resp_t resp;
	r = thoth_probe_ProbeControl_kernel_attach(&s.ctl.client, &req, &resp, &s.arena);
	free(bytes);
	if (r) {
		if (r == THOTH_E_REMOTE)
			fprintf(stderr, "thothctl: %s: %s\n", peertext_textz(path), peertext_textz(s.ctl.client.remote_message));
		else
			thothctl_call_failed(&s.ctl, "probe kernel", r);
		session_close(&s);
		return 1;
	}
	if (resp.id == 0) {
		/* the verifier's log, lines and all, through thothd: shown, never obeyed */
		fprintf(stderr, "thothctl: %s: ", peertext_textz(path));
		peertext_fput(stderr, resp.refused.ptr, resp.refused.len, PEERTEXT_TAB | PEERTEXT_LINES);
		fputs(resp.refused.len && resp.refused.ptr[resp.refused.len - 1] == '\n' ? "" : "\n", stderr);
		session_close(&s);
		return 1;
	}
	uint64_t id = resp.id;
	if (!opts->json)
		for (uint32_t i = 0; i < resp.programs.count; i++)
			printf("kernel probe %" PRIu64 ": %s: attached\n", id,
			       peertext_text(resp.programs.items[i].ptr, resp.programs.items[i].len));
	if (keep) {
		if (opts->json)
			printf("{\"id\":%" PRIu64 ",\"kernel\":true,\"held_by\":\"thothd\"}\n", id);
		else
			printf("kernel probe %" PRIu64 ": held by thothd until `thothctl probe detach %"
			       PRIu64 "` (maps: `thothctl probe maps %" PRIu64 "`)\n", id, id, id);
		session_close(&s);
		return 0;
	}
	fflush(stdout);
	/* Run until the duration ends or a signal; print the maps every
	 * EVERY seconds and at the end, then detach. */
	kernel_stop = 0;
	struct sigaction sa = { .sa_handler = kernel_on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	uint64_t start = now_ms(), last = start;
	int status = 0;
	for (;;) {
		uint64_t now = now_ms();
		bool end = kernel_stop || now - start >= (uint64_t)(duration * 1000);
		if (end || (every > 0 && now - last >= (uint64_t)(every * 1000))) {
			last = now;
			if (kernel_maps_call(&s, id, path, opts->json)) {
				status = 1;
				break;
			}
		}
		if (end)
			break;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	thoth_probe_ProbeControl_detach_req_t dreq = { .id = id };
	thoth_probe_ProbeControl_detach_resp_t dresp;
	thoth_arena_init(&s.arena, s.scratch, 4u << 20);
	if ((r = thoth_probe_ProbeControl_detach(&s.ctl.client, &dreq, &dresp, &s.arena)))
		status = thothctl_call_failed(&s.ctl, "probe detach", r);
	session_close(&s);
	return status;
}

int thothctl_probe(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc < 2)
		return probe_usage_error(NULL, "which? check, attach, list, detach, maps, kernel or run", NULL);
	if (strcmp(argv[1], "-h") == 0)
		return usage(stdout, 0);
	/* --help anywhere before "--", as getopt finds it for the other
	 * commands: `probe check --help` read a file named --help and `probe
	 * detach --help` wanted a number (./--help is still a file). */
	for (int k = 1; k < argc && strcmp(argv[k], "--") != 0; k++)
		if (strcmp(argv[k], "--help") == 0)
			return usage(stdout, 0);
	if (strcmp(argv[1], "check") == 0)
		return probe_check(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "attach") == 0)
		return probe_attach(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "list") == 0)
		return probe_list(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "detach") == 0)
		return probe_detach(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "maps") == 0)
		return probe_maps(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "kernel") == 0)
		return probe_kernel(argc - 1, argv + 1, opts);
	if (strcmp(argv[1], "run") == 0)
		return probe_run(argc - 1, argv + 1, opts);
	return probe_usage_error(NULL, argv[1][0] == '-' ? "unknown option" : "unknown subcommand", argv[1]);
}
