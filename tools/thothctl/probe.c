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
 *   thothctl probe kernel FILE.o [--duration S] [--every S]
 *       the object's kernel sections (tracepoint/, raw_tp/, kprobe/,
 *       uprobe/) loaded into Linux through libbpf, run for S seconds, their
 *       maps printed as `probe maps` prints ours
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
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
#include "thothctl.h"

static int usage(FILE *out, int status)
{
	fprintf(out,
	        "usage: thothctl probe check FILE.o\n"
	        "       thothctl probe attach FILE.o (--pid PID | --service NAME) [--wait SECONDS]\n"
	        "       thothctl probe list\n"
	        "       thothctl probe detach ID\n"
	        "       thothctl probe maps ID\n"
	        "       thothctl probe kernel FILE.o [--duration SECONDS] [--every SECONDS]\n"
	        "       thothctl probe run 'SCRIPT' (--pid PID | --service NAME) [--duration S]\n"
	        "       thothctl probe run 'SCRIPT' --emit FILE.o\n"
	        "  check   verify every program in FILE.o (0 accepted, 1 rejected, 2 unreadable)\n"
	        "  attach  hand FILE.o to the traced process PID (or the registered service\n"
	        "          NAME's, resolved through thothd) through thothd; it attaches at\n"
	        "          its next trace point, without a restart\n"
	        "  list    every probe: id, process, program, state, runs\n"
	        "  detach  stop probe ID\n"
	        "  maps    print probe ID's maps (--json before the command: JSON)\n"
	        "  kernel  load FILE.o's tracepoint/, raw_tp/, kprobe/, uprobe/ programs into\n"
	        "          Linux (libbpf; root or CAP_BPF+CAP_PERFMON), run for --duration\n"
	        "          (default 5 s, or until SIGINT), print their maps as `maps` does\n"
	        "          (every --every seconds too), detach on exit\n"
	        "  run     compile a one-line script, e.g.\n"
	        "            'msg_send /size > 1024/ { @bytes[service_id] = sum(size); }'\n"
	        "          (aggregations count sum min max hist), attach it for --duration\n"
	        "          seconds (default 5), print its maps, detach; --emit writes the\n"
	        "          verified object instead\n");
	return status;
}

static int probe_check(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return usage(stderr, 2);
	const char *path = argv[1];
	char err[512];
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open_file(path, &obj, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "thothctl: %s: %s\n", path, err[0] ? err : thoth_strerror(r));
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
			if (opts->json)
				printf("{\"section\":\"%s\",\"name\":\"%s\",\"result\":\"kernel\"}\n",
				       section, name);
			else
				printf("%s (%s): kernel program, %zu instructions (the Linux verifier "
				       "checks it at attach)\n", section, name, insns);
			continue;
		}
		if (r < 0) {
			rejected++;
			fprintf(stderr, "thothctl: rejected: %s\n", msg);
			if (opts->json) {
				printf("{\"section\":\"%s\",\"name\":\"%s\",\"result\":\"rejected\","
				       "\"reason\":", section, name);
				thothctl_json_str(msg, strlen(msg));
				printf("}\n");
			}
			continue;
		}
		if (opts->json)
			printf("{\"section\":\"%s\",\"name\":\"%s\",\"result\":\"accepted\","
			       "\"insns\":%zu}\n", section, name, insns);
		else
			printf("%s (%s): accepted, %zu instructions\n", section, name, insns);
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

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "thothctl: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	if (st.st_size <= 0 || st.st_size > (off_t)THOTH_PROBE_MAX_OBJECT) {
		fprintf(stderr, "thothctl: %s: %lld bytes (1 to %u)\n", path, (long long)st.st_size,
		        THOTH_PROBE_MAX_OBJECT);
		close(fd);
		return 2;
	}
	uint8_t *buf = malloc((size_t)st.st_size);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf || got != (size_t)st.st_size) {
		fprintf(stderr, "thothctl: %s: short read\n", path);
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
                        const char *service, double wait_s, const thothctl_opts_t *opts,
                        uint64_t *ids_out, uint32_t *n_out);

static int probe_attach(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *path = NULL, *service = NULL;
	uint32_t pid = 0;
	double wait_s = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			pid = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			wait_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--service") && i + 1 < argc)
			service = argv[++i];
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			return usage(stderr, 2);
	}
	if (!path || (!pid) == (!service) || (service && !service[0]))
		return usage(stderr, 2);   /* exactly one of --pid and --service */
	uint8_t *bytes;
	size_t len;
	int r = read_file(path, &bytes, &len);
	if (r)
		return r;
	return attach_bytes(bytes, len, path, pid, service, wait_s, opts, NULL, NULL);
}

/*
 * Verify BYTES (an object; LABEL names it in messages), hand it to PID or
 * SERVICE's process through thothd, wait up to WAIT_S for it to be taken;
 * print each probe's state.  Frees BYTES.  IDS/N_IDS (may be NULL) get the
 * probe ids.  0, 1 (refused, failed) or 2 (not a BPF object).
 */
static int attach_bytes(uint8_t *bytes, size_t len, const char *path, uint32_t pid,
                        const char *service, double wait_s, const thothctl_opts_t *opts,
                        uint64_t *ids_out, uint32_t *n_out)
{
	int r;
	/* Verified here first, for the whole message (an error reply from thothd
	 * carries a shortened one); thothd and the target verify it again. */
	char err[4096];
	thoth_probe_object_t *obj;
	r = thoth_probe_object_open(bytes, len, &obj, err, sizeof err);
	if (r) {
		fprintf(stderr, "thothctl: %s: %s\n", path, err);
		free(bytes);
		return r == THOTH_E_BAD_MAGIC ? 2 : 1;
	}
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj) && !r; i++)
		if (thoth_probe_verify(obj, i, err, sizeof err) == THOTH_E_INVAL)
			r = 1;
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
		if (r == 0)
			pid = rs.instance.registration.endpoint.pid;
		thoth_client_release(&s.ctl.client);
		if (r || !pid) {
			fprintf(stderr, "thothctl: probe attach: no process for service '%s' (%s)\n",
			        service, r ? thoth_strerror(r) : "it registered no pid");
			free(bytes);
			session_close(&s);
			return 1;
		}
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
				if (opts->json)
					printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"program\":\"%.*s\","
					       "\"state\":", p->id, p->pid, (int)p->program.len,
					       p->program.ptr);
				if (opts->json) {
					thothctl_json_str(p->state.ptr, p->state.len);
					printf("}\n");
				} else {
					printf("probe %" PRIu64 ": %.*s in pid %u: %.*s\n", p->id,
					       (int)p->program.len, p->program.ptr, p->pid,
					       (int)p->state.len, p->state.ptr);
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
		return usage(stderr, 2);
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
				printf("{\"id\":%" PRIu64 ",\"pid\":%u,\"program\":", p->id, p->pid);
				thothctl_json_str(p->program.ptr, p->program.len);
				printf(",\"runs\":%" PRIu64 ",\"state\":", p->runs);
				thothctl_json_str(p->state.ptr, p->state.len);
				printf("}\n");
			} else {
				printf("%-6" PRIu64 " %-8u %-32.*s %-12" PRIu64 " %.*s\n", p->id, p->pid,
				       (int)p->program.len, p->program.ptr, p->runs, (int)p->state.len,
				       p->state.ptr);
			}
		}
	}
	session_close(&s);
	return r;
}

static int probe_detach(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return usage(stderr, 2);
	session_t s;
	if (session_open(&s, opts))
		return 1;
	thoth_probe_ProbeControl_detach_req_t req = { .id = strtoull(argv[1], NULL, 10) };
	thoth_probe_ProbeControl_detach_resp_t resp;
	int r = thoth_probe_ProbeControl_detach(&s.ctl.client, &req, &resp, &s.arena);
	if (r)
		r = thothctl_call_failed(&s.ctl, "probe detach", r);
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

static int probe_maps(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc != 2)
		return usage(stderr, 2);
	uint64_t id = strtoull(argv[1], NULL, 10);
	session_t s;
	if (session_open(&s, opts))
		return 1;
	thoth_probe_ProbeControl_list_resp_t l;
	int r = list_probes(&s, &l);
	const thoth_probe_ProbeInfo_t *p = r ? NULL : find_probe(&l, id);
	if (!r && (!p || p->maps_fd < 0)) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": %s\n", id,
		        p ? "its process has not attached it (no maps yet)" : "no such probe");
		r = 1;
	}
	char path[64] = "";
	uint32_t pid = p ? p->pid : 0;
	if (!r)
		snprintf(path, sizeof path, "/proc/%u/fd/%d", p->pid, p->maps_fd);
	session_close(&s);
	if (r)
		return r;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": cannot open its maps at %s: %s\n", id,
		        path, strerror(errno));
		return 1;
	}
	thoth_probe_maps_t *maps;
	r = thoth_probe_maps_open(fd, &maps);
	close(fd);
	if (r) {
		fprintf(stderr, "thothctl: probe %" PRIu64 ": maps at %s: %s\n", id, path,
		        thoth_strerror(r));
		return 1;
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
			printf("%s (%s, key %u B, value %u B, max %u%s):\n", info.name, tn, info.key_size,
			       info.value_size, info.max_entries, info.lost ? ", some lost" : "");
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

static int probe_run(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *script = NULL, *service = NULL, *emit = NULL;
	uint32_t pid = 0;
	double duration = 5, wait_s = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			pid = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--service") && i + 1 < argc)
			service = argv[++i];
		else if (!strcmp(argv[i], "--duration") && i + 1 < argc)
			duration = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			wait_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--emit") && i + 1 < argc)
			emit = argv[++i];
		else if (!script && (argv[i][0] != '-' || argv[i][1] == '\0'))
			script = argv[i];
		else
			return usage(stderr, 2);
	}
	if (!script || !(duration >= 0 && duration <= 86400) || !(wait_s >= 0 && wait_s <= 3600))
		return usage(stderr, 2);
	if (!emit && (!pid) == (!service))
		return usage(stderr, 2);   /* exactly one target, or --emit */
	char err[512];
	uint8_t *elf;
	size_t len;
	int r = thoth_probe_script_compile(script, strlen(script), &elf, &len, err, sizeof err);
	if (r) {
		fprintf(stderr, "thothctl: probe run: %s\n", err[0] ? err : thoth_strerror(r));
		/* the script and a caret under the column */
		unsigned long col = 0;
		if (sscanf(err, "column %lu", &col) == 1 && col >= 1 && strlen(script) < 200) {
			fprintf(stderr, "  %s\n  %*s^\n", script, (int)(col - 1), "");
		}
		return 2;
	}
	/* The same verifier as clang's objects; a refusal here is a compiler bug. */
	thoth_probe_object_t *obj;
	char msg[4096];
	r = thoth_probe_object_open(elf, len, &obj, msg, sizeof msg);
	if (!r) {
		r = thoth_probe_verify(obj, 0, msg, sizeof msg);
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
			fprintf(stderr, "thothctl: probe run: cannot write %s: %s\n", emit, strerror(errno));
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
	r = attach_bytes(elf, len, "script", pid, service, wait_s, &quiet, ids, &n);
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
	char idstr[32];
	snprintf(idstr, sizeof idstr, "%" PRIu64, ids[0]);
	char *margv[] = { "maps", idstr, NULL };
	int status = probe_maps(2, margv, opts);
	/* detach quietly: the maps were the output */
	session_t s;
	if (session_open(&s, opts) == 0) {
		for (uint32_t i = 0; i < n; i++) {
			thoth_probe_ProbeControl_detach_req_t req = { .id = ids[i] };
			thoth_probe_ProbeControl_detach_resp_t resp;
			if (thoth_probe_ProbeControl_detach(&s.ctl.client, &req, &resp, &s.arena))
				status = 1;
			thoth_client_release(&s.ctl.client);
		}
		session_close(&s);
	}
	return status;
}

/* ---- kernel hooks: the same objects' tracepoint/raw_tp/uprobe sections,
 * loaded into Linux through libbpf --------------------------------------- */

#ifdef THOTH_HAVE_LIBBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <signal.h>

/* libbpf's messages (the kernel verifier's log among them) are kept and
 * printed only when something fails. */
static char kernel_log[16384];
static size_t kernel_log_len;

static int kernel_log_fn(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || kernel_log_len >= sizeof kernel_log - 1)
		return 0;
	int n = vsnprintf(kernel_log + kernel_log_len, sizeof kernel_log - kernel_log_len, fmt, ap);
	if (n > 0)
		kernel_log_len += (size_t)n < sizeof kernel_log - kernel_log_len
		                      ? (size_t)n : sizeof kernel_log - 1 - kernel_log_len;
	return 0;
}

static void kernel_log_dump(void)
{
	if (kernel_log_len)
		fprintf(stderr, "%s%s", kernel_log,
		        kernel_log[kernel_log_len - 1] == '\n' ? "" : "\n");
}

static bool kernel_section(const char *sec)
{
	static const char *const prefixes[] = { "tracepoint/", "tp/", "raw_tp/", "raw_tracepoint/",
		                                    "uprobe", "uretprobe", "kprobe/", "kretprobe/" };
	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
		if (strncmp(sec, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

typedef struct kernel_entry_ctx {
	print_ctx_t pc;
	uint32_t value_size;
} kernel_entry_ctx_t;

static int kernel_ring_record(void *arg, void *data, size_t size)
{
	kernel_entry_ctx_t *kc = arg;
	uint32_t len = (uint32_t)size;
	return print_entry(&len, data, &kc->pc);
}

/* Every entry of one kernel map, printed as probe maps prints ours:
 * per-CPU values summed over the CPUs (8-byte values), ring buffer
 * records consumed. */
static int kernel_map_print(struct bpf_map *m, bool json, bool first_map)
{
	int fd = bpf_map__fd(m);
	thoth_probe_map_info_t info = {
		.name = bpf_map__name(m), .type = bpf_map__type(m), .key_size = bpf_map__key_size(m),
		.value_size = bpf_map__value_size(m), .max_entries = bpf_map__max_entries(m),
	};
	static const char *const TYPES[] = { [1] = "hash", [2] = "array", [5] = "percpu_hash",
		                             [6] = "percpu_array", [27] = "ringbuf" };
	const char *tn = info.type < 28 && TYPES[info.type] ? TYPES[info.type] : "other";
	if (json) {
		printf("%s{\"name\":", first_map ? "" : ",");
		thothctl_json_str(info.name, strlen(info.name));
		printf(",\"type\":\"%s\",\"kernel\":true,\"entries\":[", tn);
	} else {
		printf("%s (kernel %s, key %u B, value %u B, max %u):\n", info.name, tn, info.key_size,
		       info.value_size, info.max_entries);
	}
	kernel_entry_ctx_t kc = { .pc = { .info = &info, .json = json, .first = true } };
	int r = 0;
	if (info.type == BPF_MAP_TYPE_RINGBUF) {
		struct ring_buffer *rb = ring_buffer__new(fd, kernel_ring_record, &kc, NULL);
		if (!rb) {
			r = -errno;
		} else {
			ring_buffer__consume(rb);
			ring_buffer__free(rb);
		}
	} else if (info.key_size && info.value_size && info.key_size <= 512 &&
	           info.value_size <= 65536) {
		bool percpu = info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
		              info.type == BPF_MAP_TYPE_PERCPU_HASH;
		int ncpu = percpu ? libbpf_num_possible_cpus() : 1;
		if (ncpu < 1)
			ncpu = 1;
		size_t stride = percpu ? (info.value_size + 7u) & ~7u : info.value_size;
		uint8_t *key = calloc(1, info.key_size), *next = calloc(1, info.key_size);
		uint8_t *val = calloc((size_t)ncpu, stride), *sum = calloc(1, stride);
		if (!key || !next || !val || !sum) {
			r = -ENOMEM;
		} else {
			bool first = true;
			/* bounded: a map changing under us cannot keep us here */
			for (uint32_t n = 0; n <= info.max_entries; n++) {
				if (bpf_map_get_next_key(fd, first ? NULL : key, next))
					break;
				first = false;
				memcpy(key, next, info.key_size);
				if (bpf_map_lookup_elem(fd, key, val))
					continue;
				const uint8_t *shown = val;
				if (percpu && info.value_size == 8) {
					uint64_t total = 0;
					for (int c = 0; c < ncpu; c++) {
						uint64_t x;
						memcpy(&x, val + (size_t)c * stride, 8);
						total += x;
					}
					memcpy(sum, &total, 8);
					shown = sum;
				}
				print_entry(key, shown, &kc.pc);
			}
		}
		free(key);
		free(next);
		free(val);
		free(sum);
	}
	if (json)
		printf("]}");
	return r;
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
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc)
			duration = strtod(argv[++i], NULL);
		else if (strcmp(argv[i], "--every") == 0 && i + 1 < argc)
			every = strtod(argv[++i], NULL);
		else if (!path && argv[i][0] != '-')
			path = argv[i];
		else
			return usage(stderr, 2);
	}
	if (!path || !(duration >= 0 && duration <= 86400) || !(every >= 0 && every <= 86400))
		return usage(stderr, 2);
	/* Our own loader first: a clear error for a file that is not a BPF
	 * object, and the list of kernel sections. */
	char err[512];
	thoth_probe_object_t *obj = NULL;
	int r = thoth_probe_object_open_file(path, &obj, err, sizeof err);
	if (r < 0) {
		fprintf(stderr, "thothctl: %s: %s\n", path, err[0] ? err : thoth_strerror(r));
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
		        path);
		return 1;
	}
	libbpf_set_print(kernel_log_fn);
	struct bpf_object *bo = bpf_object__open_file(path, NULL);
	if (!bo) {
		fprintf(stderr, "thothctl: %s: libbpf cannot open it: %s\n", path, strerror(errno));
		kernel_log_dump();
		return 1;
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, bo)
		if (!kernel_section(bpf_program__section_name(prog)))
			bpf_program__set_autoload(prog, false);   /* thoth/: ours, not Linux's */
	struct bpf_link *links[64];
	size_t n_links = 0;
	int status = 0;
	if (bpf_object__load(bo)) {
		int e = errno;
		/* The kernel verifier's refusals are EACCES too: its log tells them apart. */
		bool verifier = strstr(kernel_log, "PROG LOAD LOG") != NULL;
		if (!verifier && (e == EPERM || e == EACCES))
			fprintf(stderr, "thothctl: %s: loading into the kernel was not permitted (%s): "
			        "it needs root, or CAP_BPF and CAP_PERFMON\n", path, strerror(e));
		else
			fprintf(stderr, "thothctl: %s: the kernel refused it (%s); libbpf and the kernel "
			        "verifier said:\n", path, strerror(e));
		kernel_log_dump();
		bpf_object__close(bo);
		return 1;
	}
	bpf_object__for_each_program(prog, bo) {
		if (!bpf_program__autoload(prog))
			continue;
		struct bpf_link *l = bpf_program__attach(prog);
		if (!l || n_links == sizeof links / sizeof links[0]) {
			fprintf(stderr, "thothctl: %s (%s): cannot attach: %s\n",
			        bpf_program__section_name(prog), bpf_program__name(prog),
			        l ? "too many programs" : strerror(errno));
			kernel_log_dump();
			bpf_link__destroy(l);
			status = 1;
			goto out;
		}
		links[n_links++] = l;
		if (!opts->json)
			printf("kernel: %s (%s): attached\n", bpf_program__section_name(prog),
			       bpf_program__name(prog));
	}
	fflush(stdout);
	/* Run until the duration ends or a signal; print the maps every
	 * EVERY seconds and at the end. */
	kernel_stop = 0;
	struct sigaction sa = { .sa_handler = kernel_on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	uint64_t start = now_ms(), last = start;
	for (;;) {
		uint64_t now = now_ms();
		bool end = kernel_stop || now - start >= (uint64_t)(duration * 1000);
		if (end || (every > 0 && now - last >= (uint64_t)(every * 1000))) {
			last = now;
			if (opts->json)
				printf("{\"kernel\":true,\"object\":");
			if (opts->json) {
				thothctl_json_str(path, strlen(path));
				printf(",\"maps\":[");
			}
			bool first = true;
			struct bpf_map *m;
			bpf_object__for_each_map(m, bo) {
				if (bpf_map__is_internal(m))
					continue;
				kernel_map_print(m, opts->json, first);
				first = false;
			}
			if (opts->json)
				printf("]}\n");
			fflush(stdout);
		}
		if (end)
			break;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
out:
	for (size_t i = 0; i < n_links; i++)
		bpf_link__destroy(links[i]);
	bpf_object__close(bo);
	return status;
}
#else
static int probe_kernel(int argc, char **argv, const thothctl_opts_t *opts)
{
	(void)argc;
	(void)argv;
	(void)opts;
	fprintf(stderr, "thothctl: this thothctl was built without libbpf (libbpf-dev): kernel "
	        "hooks are not available\n");
	return 1;
}
#endif

int thothctl_probe(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc < 2)
		return usage(stderr, 2);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
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
	fprintf(stderr, "thothctl: probe: unknown subcommand '%s'\n", argv[1]);
	return usage(stderr, 2);
}
