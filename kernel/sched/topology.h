/*
 * topology.h - the machine's shape for placement decisions (SCALE-1,
 * docs/SCALE.md): NUMA nodes, packages, cores, SMT siblings, caches and the
 * node distance matrix, read once through hwloc and then answered from
 * plain arrays (no hwloc call after load, no allocation, no lock).
 *
 * Sources: this machine (hwloc's Linux discovery), an hwloc synthetic
 * description ("node:2 pack:1 core:2 pu:2") or an XML export of a real
 * machine (`lstopo --of xml`, with a distance matrix when it has one).
 * Tests use the last two: the same code that binds on a 4-node server
 * answers on this 1-node VM.
 *
 * Numbering.  Nodes are hwloc's logical indexes 0..nodes-1 (the order of
 * the hardware); thoth_topo_node_os() gives the kernel's node number (what
 * mbind/get_mempolicy take and what the registry records).  CPUs are the
 * kernel's numbers (sched_getcpu, cpu_set_t).
 *
 * Distances are ACPI SLIT-like: 10 for a node to itself, larger is
 * farther, and the matrix may be asymmetric (d(a,b) != d(b,a)): the row is
 * the node that accesses, the column the node whose memory it reads.
 * Without a matrix (most VMs, synthetic strings) 10 on the diagonal and 20
 * elsewhere, as Linux reports for a machine without a SLIT.
 */
#ifndef THOTH_SCHED_TOPOLOGY_H
#define THOTH_SCHED_TOPOLOGY_H

#include <sched.h>           /* cpu_set_t: users define _GNU_SOURCE first */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_topo thoth_topo_t;

#define THOTH_TOPO_MAX_NODES 64
#define THOTH_TOPO_LOCAL_DISTANCE 10u
#define THOTH_TOPO_REMOTE_DEFAULT 20u

typedef struct thoth_topo_source {
	const char *synthetic;          /* an hwloc synthetic description, or */
	const char *xml_path;           /* an hwloc XML export; both NULL: this machine */
} thoth_topo_source_t;

/*
 * Load a topology (SRC NULL: this machine; $THOTH_TOPOLOGY_XML or
 * $THOTH_TOPOLOGY_SYNTHETIC override that, for tests and demos).  0, or
 * THOTH_E_INVAL (bad description, more than THOTH_TOPO_MAX_NODES nodes or
 * CPU_SETSIZE CPUs) / THOTH_E_IO / THOTH_E_NOMEM with WHY saying which.
 */
int thoth_topo_load(const thoth_topo_source_t *src, thoth_topo_t **out, char *why, size_t why_len);
void thoth_topo_free(thoth_topo_t *t);

unsigned thoth_topo_nodes(const thoth_topo_t *t);      /* >= 1 */
unsigned thoth_topo_packages(const thoth_topo_t *t);   /* >= 1 */
unsigned thoth_topo_cores(const thoth_topo_t *t);
unsigned thoth_topo_cpus(const thoth_topo_t *t);       /* hardware threads (PUs) */
/* Bytes of the largest cache of LEVEL (1..3) of one instance; 0 when none. */
uint64_t thoth_topo_cache_size(const thoth_topo_t *t, unsigned level);
/* The kernel's number of logical node NODE, -1 if out of range. */
int thoth_topo_node_os(const thoth_topo_t *t, unsigned node);
/* Logical node of the kernel's node number OS_NODE, -1 when unknown. */
int thoth_topo_node_from_os(const thoth_topo_t *t, unsigned os_node);

/* Logical node / package / core of CPU (kernel number), -1 when unknown. */
int thoth_topo_cpu_node(const thoth_topo_t *t, int cpu);
int thoth_topo_cpu_package(const thoth_topo_t *t, int cpu);
int thoth_topo_cpu_core(const thoth_topo_t *t, int cpu);
/* The CPUs of NODE / the SMT siblings of CPU (CPU itself included).
 * 0, or THOTH_E_INVAL for an unknown node or CPU. */
int thoth_topo_node_cpus(const thoth_topo_t *t, unsigned node, cpu_set_t *out);
int thoth_topo_smt_siblings(const thoth_topo_t *t, int cpu, cpu_set_t *out);

/* Distance from node A (accessing) to node B's memory; UINT32_MAX if
 * either is out of range.  Whether it came from a real matrix: */
uint32_t thoth_topo_distance(const thoth_topo_t *t, unsigned a, unsigned b);
bool thoth_topo_has_distances(const thoth_topo_t *t);

/*
 * The placement rule of SCALE-1: among the nodes in CANDIDATES (bit n =
 * logical node n; 0 = every node), the one nearest to FROM; ties go to the
 * lowest index.  -1 when no candidate exists.  FROM itself wins when it
 * is a candidate (distance 10 is the minimum).
 */
int thoth_topo_nearest_node(const thoth_topo_t *t, unsigned from, uint64_t candidates);

/*
 * Nodes ordered by distance from FROM (FROM first, then nearer before
 * farther, ties by index): ORDER gets min(n, nodes) entries; returns how
 * many.  What a caller walks when its own node has nothing to offer.
 */
size_t thoth_topo_nodes_by_distance(const thoth_topo_t *t, unsigned from, unsigned *order, size_t n);

/* One line per node for people: "node 0 (os 0): cpus 0-3, distances 10 20". */
size_t thoth_topo_describe(const thoth_topo_t *t, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
