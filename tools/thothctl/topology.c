/*
 * topology.c - `thothctl topology [NAME]` (SCALE-1/2, docs/SCALE.md): the
 * machine as hwloc sees it (nodes, CPUs, distances), the shared resolve
 * table thothd hands out (entries, generation), and with NAME the
 * placement decision for a caller on each node: which instance of NAME the
 * table gives it and how far that instance's node is.
 *
 *   thothctl [--json] topology [NAME]
 *
 * $THOTH_TOPOLOGY_XML / $THOTH_TOPOLOGY_SYNTHETIC show another machine
 * (for a 4-node picture on a 1-node VM).  --json: one object per line:
 * {"machine": ...}, then {"node": N, ...} per node.  NAME that no node is
 * given an instance of (not registered, or no resolve table: thothd not
 * running) is said on stderr after the picture, exit 1.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/rtable.h"
#include "thothctl.h"
#include "topology.h"

bool thothctl_service_name_ok(const char *s)
{
	size_t n = strnlen(s, 129);
	if (n == 0 || n > 128 || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

int thothctl_topology(int argc, char **argv, const thothctl_opts_t *opts)
{
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		/* -h only right after the command, as main.c's asks_help:
		 * later it may be an option's value, and is refused as one */
		if (!strcmp(argv[i], "--help") || (i == 1 && !strcmp(argv[i], "-h"))) {
			printf("usage: thothctl [--json] topology [NAME]\n");
			return 0;
		}
		/* the argument named: "-x" and a second NAME were both the
		 * bare usage line */
		if (argv[i][0] == '-') {
			fprintf(stderr, "thothctl: topology: unknown option %s (usage: topology [NAME])\n", argv[i]);
			return 2;
		}
		if (name) {
			fprintf(stderr, "thothctl: topology: one NAME at most, not '%s' and '%s' (usage: topology "
				"[NAME])\n", name, argv[i]);
			return 2;
		}
		name = argv[i];
	}
	/* A NAME no service can have ("Echo", "a/b", "..", a newline, 2 KiB)
	 * was looked up and reported "no live instance of ... in the resolve
	 * table", exit 1, as if a service by that name had just gone; resolve
	 * says what a name is (hostile46).  Shown through peertext_textz: the
	 * argument may hold ESC or bidi controls. */
	if (name && !thothctl_service_name_ok(name)) {
		fprintf(stderr, "thothctl: topology: '%s' is not a service name (1..128 of [a-z0-9_.-], "
			"starting with a letter)\n", peertext_textz(name));
		return 2;
	}
	thoth_topo_t *t = NULL;
	char why[400];
	int r = thoth_topo_load(NULL, &t, why, sizeof why);
	if (r) {
		fprintf(stderr, "thothctl: topology: %s\n", why);
		return 1;
	}
	/* The table is optional here: without thothd the machine is still shown. */
	thoth_rtable_t *tab = NULL;
	char twhy[300] = "";
	int tr = thoth_rtable_open(opts->runtime_dir, &tab, twhy, sizeof twhy);
	thoth_rtable_stats_t st = { 0 };
	if (!tr)
		thoth_rtable_stats(tab, &st);
	unsigned nodes = thoth_topo_nodes(t);
	unsigned picked = 0;
	int miss = THOTH_E_NOT_FOUND;   /* the last lookup's error, for NAME's message */
	if (opts->json) {
		printf("{\"machine\": {\"nodes\": %u, \"packages\": %u, \"cores\": %u, \"cpus\": %u, "
		       "\"distances_from_firmware\": %s}, \"resolve_table\": ", nodes, thoth_topo_packages(t),
		       thoth_topo_cores(t), thoth_topo_cpus(t), thoth_topo_has_distances(t) ? "true" : "false");
		if (tr)
			printf("null");
		else
			printf("{\"entries\": %u, \"generation\": %u, \"incomplete\": %s}", st.entries,
			       thoth_rtable_generation(tab), st.incomplete ? "true" : "false");
		printf("}\n");
	} else {
		char text[8192];
		thoth_topo_describe(t, text, sizeof text);
		fputs(text, stdout);
		if (tr)
			printf("resolve table: not available (%s)\n", twhy);
		else
			printf("resolve table: %u entries, generation %u%s\n", st.entries, thoth_rtable_generation(tab),
			       st.incomplete ? ", incomplete (some instances only by round trip)" : "");
		if (name && !tr)
			printf("%-6s %-8s %-48s %-6s %s\n", "NODE", "PICKS", "ENDPOINT", "ON", "DISTANCE");
	}
	for (unsigned n = 0; n < nodes; n++) {
		int os = thoth_topo_node_os(t, n);
		cpu_set_t cpus;
		thoth_topo_node_cpus(t, n, &cpus);
		thoth_resolved_t where;
		int lr = name && !tr ? thoth_rtable_lookup(tab, name, NULL, (uint16_t)os, &where) : THOTH_E_NOT_FOUND;
		if (lr)
			miss = lr;
		else
			picked++;
		int to = lr ? -1 : thoth_topo_node_from_os(t, where.numa_node);
		uint32_t dist = to >= 0 ? thoth_topo_distance(t, n, (unsigned)to) : 0;
		if (opts->json) {
			printf("{\"node\": %u, \"os_node\": %d, \"cpus\": %d", n, os, CPU_COUNT(&cpus));
			if (name) {
				printf(", \"name\": ");
				thothctl_json_str(name, strlen(name));
				if (lr) {
					printf(", \"picks\": null");
				} else {
					printf(", \"picks\": {\"addr\": ");
					thothctl_json_str(where.addr, strlen(where.addr));
					printf(", \"pid\": %u, \"numa_node\": %u, \"distance\": %u}", where.pid,
					       where.numa_node, dist);
				}
			}
			printf("}\n");
		} else if (name && !tr) {
			if (lr)
				printf("%-6u %-8s\n", os, "none");
			else {
				const char *addr = peertext_textz(where.addr);
				printf("%-6u %-8u %-*s %-6u %u\n", os, where.pid, peertext_field(addr, 48),
				       addr, where.numa_node, dist);
			}
		}
	}
	/* NAME asked and nothing picked for any node: a name nobody
	 * registered (a typo) printed a "none" per node, or under --json
	 * "picks": null, and exited 0, as if the answer were a placement.
	 * Said on stderr, exit 1 as for resolve's "no live instance" (the
	 * machine is still shown above). */
	int rc = 0;
	if (name && tr) {
		fprintf(stderr, "thothctl: topology: cannot place '%s': the resolve table is not available "
			"(%s)\n", name, twhy);
		rc = 1;
	} else if (name && !picked) {
		if (miss == THOTH_E_BUSY)
			fprintf(stderr, "thothctl: topology: cannot place '%s': the resolve table never settled "
				"(thothd is rewriting it); try again\n", name);
		else
			fprintf(stderr, "thothctl: topology: no live instance of '%s' in the resolve table%s\n",
				name, st.incomplete ? " (the table is incomplete: `thothctl resolve` asks thothd)" : "");
		rc = 1;
	}
	thoth_rtable_close(tab);
	thoth_topo_free(t);
	return rc;
}
