/*
 * probe.c - `thothctl probe ...`: eBPF probes at trace points (OBS-2,
 * docs/PROBES.md).
 *
 *   thothctl probe check FILE.o
 *       verify every program of the object; exit 0 all accepted, 1 one or
 *       more rejected (each reason on stderr), 2 unreadable / not a BPF ELF
 *       object (or a usage error).
 *   thothctl probe attach FILE.o --pid P [--wait SECONDS]
 *       hand the object to traced process P through thothd; it attaches at
 *       its next trace point (no restart); waits (default 5 s) until P took it
 *   thothctl probe list              every probe, its process, state, runs
 *   thothctl probe detach ID
 *   thothctl probe maps ID [--json]  the probe's maps, read from the live
 *       process's memfd (/proc/PID/fd/N) while it runs
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "probe.thoth.h"
#include "thoth/probe.h"
#include "thothctl.h"

static int usage(FILE *out, int status)
{
	fprintf(out,
	        "usage: thothctl probe check FILE.o\n"
	        "       thothctl probe attach FILE.o --pid PID [--wait SECONDS]\n"
	        "       thothctl probe list\n"
	        "       thothctl probe detach ID\n"
	        "       thothctl probe maps ID\n"
	        "  check   verify every program in FILE.o (0 accepted, 1 rejected, 2 unreadable)\n"
	        "  attach  hand FILE.o to the traced process PID through thothd; it attaches\n"
	        "          at its next trace point, without a restart\n"
	        "  list    every probe: id, process, program, state, runs\n"
	        "  detach  stop probe ID\n"
	        "  maps    print probe ID's maps (--json before the command: JSON)\n");
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

static int probe_attach(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *path = NULL;
	uint32_t pid = 0;
	double wait_s = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pid") && i + 1 < argc)
			pid = (uint32_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
			wait_s = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "--service") && i + 1 < argc) {
			fprintf(stderr, "thothctl: probe attach --service is not supported yet; "
			        "give the process with --pid\n");
			return 2;
		} else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else
			return usage(stderr, 2);
	}
	if (!path || !pid)
		return usage(stderr, 2);
	uint8_t *bytes;
	size_t len;
	int r = read_file(path, &bytes, &len);
	if (r)
		return r;
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
	fprintf(stderr, "thothctl: probe: unknown subcommand '%s'\n", argv[1]);
	return usage(stderr, 2);
}
