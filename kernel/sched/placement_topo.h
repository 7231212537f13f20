/*
 * placement_topo.h - fill placement's CPU map (placement.h) from SCALE-1's
 * topology (topology.h, read-only use), for code that links
 * thoth_topology (thothd, tests): the hwloc view of the machine, or a
 * synthetic / XML one, ranked by the same place_cpu_distance rule that
 * libthoth applies to what sysfs says.
 */
#ifndef THOTH_SCHED_PLACEMENT_TOPO_H
#define THOTH_SCHED_PLACEMENT_TOPO_H

#include <string.h>

#include "placement.h"
#include "topology.h"

static inline void place_cpumap_from_topo(place_cpumap_t *m, const thoth_topo_t *t)
{
	memset(m, 0, sizeof *m);
	for (int c = 0; c < PLACE_MAX_CPUS; c++)
		m->node[c] = m->package[c] = m->core[c] = -1;   /* not in the topology */
	unsigned nodes = thoth_topo_nodes(t);
	m->nnodes = nodes < PLACE_MAX_NODES ? nodes : PLACE_MAX_NODES;
	for (unsigned a = 0; a < m->nnodes; a++)
		for (unsigned b = 0; b < m->nnodes; b++) {
			uint32_t d = thoth_topo_distance(t, a, b);
			m->dist[a][b] = (uint8_t)(d >= 10 && d <= 254 ? d : 254);
		}
	for (unsigned node = 0; node < m->nnodes; node++) {
		cpu_set_t set;
		if (thoth_topo_node_cpus(t, node, &set))
			continue;
		for (int c = 0; c < PLACE_MAX_CPUS && c < CPU_SETSIZE; c++) {
			if (!CPU_ISSET(c, &set))
				continue;
			if ((unsigned)c + 1 > m->ncpus)
				m->ncpus = (unsigned)c + 1;
			m->node[c] = (int16_t)node;
			m->package[c] = (int16_t)thoth_topo_cpu_package(t, c);
			m->core[c] = (int16_t)thoth_topo_cpu_core(t, c);
		}
	}
}

#endif
