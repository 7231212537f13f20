/*
 * probe.c - `thothctl probe ...`: eBPF probes at trace points (OBS-2,
 * docs/PROBES.md).
 *
 *   thothctl probe check FILE.o
 *       verify every program of the object; exit 0 all accepted, 1 one or
 *       more rejected (each reason on stderr), 2 unreadable / not a BPF ELF
 *       object (or a usage error).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "thoth/probe.h"
#include "thothctl.h"

static int usage(FILE *out, int status)
{
	fprintf(out,
	        "usage: thothctl probe check FILE.o\n"
	        "  check   verify every program in FILE.o (0 accepted, 1 rejected, 2 unreadable)\n");
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

int thothctl_probe(int argc, char **argv, const thothctl_opts_t *opts)
{
	if (argc < 2)
		return usage(stderr, 2);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		return usage(stdout, 0);
	if (strcmp(argv[1], "check") == 0)
		return probe_check(argc - 1, argv + 1, opts);
	fprintf(stderr, "thothctl: probe: unknown subcommand '%s'\n", argv[1]);
	return usage(stderr, 2);
}
