/*
 * topology.c - hwloc read once into plain arrays (topology.h).
 *
 * Why copy instead of keeping the hwloc handle: every question a placement
 * decision asks (node of a CPU, distance, nearest node) becomes an array
 * index, callable from any thread without hwloc's locking rules, and the
 * handle (hundreds of KiB on a big machine) is destroyed right after load.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <hwloc.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thoth/error.h"
#include "../ipc/why.h"
#include "topology.h"

struct thoth_topo {
	unsigned nodes, packages, cores, cpus;
	int node_os[THOTH_TOPO_MAX_NODES];
	cpu_set_t node_cpus[THOTH_TOPO_MAX_NODES];
	uint32_t dist[THOTH_TOPO_MAX_NODES * THOTH_TOPO_MAX_NODES];
	bool has_dist;
	uint64_t cache[4];              /* bytes, by level 1..3 */
	/* Per CPU (kernel number), -1 when the CPU does not exist. */
	int16_t cpu_node[CPU_SETSIZE];
	int32_t cpu_package[CPU_SETSIZE];
	int32_t cpu_core[CPU_SETSIZE];
	cpu_set_t *core_cpus;           /* [cores]: SMT siblings of each core */
};

/* The logical node whose cpuset holds OS CPU, or -1. */
static int node_of(const thoth_topo_t *t, unsigned cpu)
{
	for (unsigned n = 0; n < t->nodes; n++)
		if (CPU_ISSET(cpu, &t->node_cpus[n]))
			return (int)n;
	return -1;
}

static void bitmap_to_set(hwloc_const_bitmap_t b, cpu_set_t *out)
{
	CPU_ZERO(out);
	int i;
	hwloc_bitmap_foreach_begin(i, b) {
		if (i < CPU_SETSIZE)
			CPU_SET(i, out);
	}
	hwloc_bitmap_foreach_end();
}

/* Copy hwloc's NUMA distances (latency-like, any origin) into t->dist. */
static void read_distances(thoth_topo_t *t, hwloc_topology_t h)
{
	for (unsigned a = 0; a < t->nodes; a++)
		for (unsigned b = 0; b < t->nodes; b++)
			t->dist[a * t->nodes + b] = a == b ? THOTH_TOPO_LOCAL_DISTANCE : THOTH_TOPO_REMOTE_DEFAULT;
	unsigned nr = 1;
	struct hwloc_distances_s *d = NULL;
	if (hwloc_distances_get_by_type(h, HWLOC_OBJ_NUMANODE, &nr, &d, HWLOC_DISTANCES_KIND_MEANS_LATENCY, 0) ||
	    nr == 0 || !d)
		return;
	/* A matrix may cover a subset of the nodes: only the pairs it names
	 * replace the defaults. */
	for (unsigned i = 0; i < d->nbobjs; i++) {
		if (!d->objs[i] || d->objs[i]->logical_index >= t->nodes)
			continue;
		for (unsigned j = 0; j < d->nbobjs; j++) {
			if (!d->objs[j] || d->objs[j]->logical_index >= t->nodes)
				continue;
			hwloc_uint64_t v = d->values[i * d->nbobjs + j];
			if (v == 0 || v > UINT32_MAX - 1)
				continue;   /* a nonsense value keeps the default */
			t->dist[d->objs[i]->logical_index * t->nodes + d->objs[j]->logical_index] = (uint32_t)v;
			t->has_dist = true;
		}
	}
	hwloc_distances_release(h, d);
}

static int copy_topology(thoth_topo_t *t, hwloc_topology_t h, char *why, size_t why_len)
{
	int nn = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_NUMANODE);
	int np = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PACKAGE);
	int nc = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_CORE);
	int npu = hwloc_get_nbobjs_by_type(h, HWLOC_OBJ_PU);
	if (nn > THOTH_TOPO_MAX_NODES)
		return thoth__why_err(why, why_len, THOTH_E_INVAL, "%d NUMA nodes: more than the %d supported", nn,
			              THOTH_TOPO_MAX_NODES);
	if (npu <= 0)
		return thoth__why_err(why, why_len, THOTH_E_INVAL, "the topology has no CPU");
	t->nodes = nn > 0 ? (unsigned)nn : 1;
	t->packages = np > 0 ? (unsigned)np : 1;
	t->cpus = (unsigned)npu;
	for (int i = 0; i < CPU_SETSIZE; i++) {
		t->cpu_node[i] = -1;
		t->cpu_package[i] = -1;
		t->cpu_core[i] = -1;
	}
	if (nn <= 0) {
		/* No NUMA object (possible in an XML of a non-NUMA machine):
		 * one node 0 holding every CPU. */
		t->node_os[0] = 0;
		bitmap_to_set(hwloc_topology_get_topology_cpuset(h), &t->node_cpus[0]);
	}
	for (int n = 0; n < nn; n++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(h, HWLOC_OBJ_NUMANODE, (unsigned)n);
		t->node_os[n] = (int)o->os_index;
		bitmap_to_set(o->cpuset, &t->node_cpus[n]);
	}
	/* A machine without Core objects (some XML exports): each PU is its
	 * own core. */
	t->cores = nc > 0 ? (unsigned)nc : (unsigned)npu;
	t->core_cpus = calloc(t->cores, sizeof *t->core_cpus);
	if (!t->core_cpus)
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
	for (int i = 0; i < npu; i++) {
		hwloc_obj_t pu = hwloc_get_obj_by_type(h, HWLOC_OBJ_PU, (unsigned)i);
		if (pu->os_index >= CPU_SETSIZE)
			return thoth__why_err(why, why_len, THOTH_E_INVAL, "CPU %u is beyond the %d a cpu_set_t holds",
				              pu->os_index, CPU_SETSIZE);
		unsigned cpu = pu->os_index;
		hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(h, HWLOC_OBJ_CORE, pu);
		hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(h, HWLOC_OBJ_PACKAGE, pu);
		unsigned ci = core ? core->logical_index : (unsigned)i;
		t->cpu_core[cpu] = (int32_t)ci;
		CPU_SET(cpu, &t->core_cpus[ci]);
		t->cpu_package[cpu] = pkg ? (int32_t)pkg->logical_index : 0;
		t->cpu_node[cpu] = (int16_t)node_of(t, cpu);
	}
	static const hwloc_obj_type_t caches[] = { HWLOC_OBJ_TYPE_MAX, HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE,
						   HWLOC_OBJ_L3CACHE };
	for (unsigned lvl = 1; lvl <= 3; lvl++) {
		int n = hwloc_get_nbobjs_by_type(h, caches[lvl]);
		for (int i = 0; i < n; i++) {
			hwloc_obj_t o = hwloc_get_obj_by_type(h, caches[lvl], (unsigned)i);
			if (o->attr && o->attr->cache.size > t->cache[lvl])
				t->cache[lvl] = o->attr->cache.size;
		}
	}
	read_distances(t, h);
	return 0;
}

/* The CPUs a synthetic description makes: the product of its levels'
 * arities ("node:2 core:4 pu:2" makes 16; attributes in parentheses and
 * memory levels in brackets do not multiply), saturated.  hwloc builds
 * such a machine in time that grows much faster than its CPU count
 * ("node:2 pu:5000" took minutes in hwloc_topology_load), and the arrays
 * here hold CPU_SETSIZE CPUs anyway: a larger one is refused first. */
static unsigned long synthetic_cpus(const char *s)
{
	unsigned long n = 1;
	while (*s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		const char *tok = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*tok == '[')
			continue;
		const char *colon = memchr(tok, ':', (size_t)(s - tok));
		const char *digits = colon ? colon + 1 : tok;
		if (*digits < '0' || *digits > '9')
			continue;
		unsigned long a = strtoul(digits, NULL, 10);
		n = a && n > ULONG_MAX / a ? ULONG_MAX : n * a;
	}
	return n;
}

int thoth_topo_load(const thoth_topo_source_t *src, thoth_topo_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_topo_source_t env = { 0 };
	if (!src || (!src->synthetic && !src->xml_path)) {
		env.xml_path = getenv("THOTH_TOPOLOGY_XML");
		env.synthetic = getenv("THOTH_TOPOLOGY_SYNTHETIC");
		if (env.xml_path && !*env.xml_path)
			env.xml_path = NULL;
		if (env.synthetic && !*env.synthetic)
			env.synthetic = NULL;
		src = &env;
	}
	thoth_topo_t *t = calloc(1, sizeof *t);
	if (!t)
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
	hwloc_topology_t h;
	if (hwloc_topology_init(&h)) {
		free(t);
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "hwloc_topology_init: %s", strerror(errno));
	}
	int r = 0;
	if (src->xml_path) {
		if (hwloc_topology_set_xml(h, src->xml_path))
			r = thoth__why_err(why, why_len, THOTH_E_IO, "topology XML %s: %s", src->xml_path, strerror(errno));
	} else if (src->synthetic) {
		unsigned long cpus = synthetic_cpus(src->synthetic);
		if (cpus > CPU_SETSIZE)
			r = thoth__why_err(why, why_len, THOTH_E_INVAL,
					   "synthetic topology \"%s\" has %lu CPUs: more than the %d a cpu_set_t holds",
					   src->synthetic, cpus, CPU_SETSIZE);
		else if (hwloc_topology_set_synthetic(h, src->synthetic))
			r = thoth__why_err(why, why_len, THOTH_E_INVAL, "bad synthetic topology \"%s\"", src->synthetic);
	}
	if (!r && hwloc_topology_load(h))
		r = thoth__why_err(why, why_len, src->xml_path ? THOTH_E_INVAL : THOTH_E_IO, "hwloc could not load the %s: %s",
			           src->xml_path ? "XML topology" : src->synthetic ? "synthetic topology" : "machine's topology",
			           strerror(errno));
	if (!r)
		r = copy_topology(t, h, why, why_len);
	hwloc_topology_destroy(h);
	if (r) {
		thoth_topo_free(t);
		return r;
	}
	*out = t;
	return 0;
}

void thoth_topo_free(thoth_topo_t *t)
{
	if (!t)
		return;
	free(t->core_cpus);
	free(t);
}

unsigned thoth_topo_nodes(const thoth_topo_t *t) { return t->nodes; }
unsigned thoth_topo_packages(const thoth_topo_t *t) { return t->packages; }
unsigned thoth_topo_cores(const thoth_topo_t *t) { return t->cores; }
unsigned thoth_topo_cpus(const thoth_topo_t *t) { return t->cpus; }
bool thoth_topo_has_distances(const thoth_topo_t *t) { return t->has_dist; }

uint64_t thoth_topo_cache_size(const thoth_topo_t *t, unsigned level)
{
	return level >= 1 && level <= 3 ? t->cache[level] : 0;
}

int thoth_topo_node_os(const thoth_topo_t *t, unsigned node)
{
	return node < t->nodes ? t->node_os[node] : -1;
}

int thoth_topo_node_from_os(const thoth_topo_t *t, unsigned os_node)
{
	for (unsigned n = 0; n < t->nodes; n++)
		if (t->node_os[n] == (int)os_node)
			return (int)n;
	return -1;
}

static bool cpu_ok(int cpu) { return cpu >= 0 && cpu < CPU_SETSIZE; }

int thoth_topo_cpu_node(const thoth_topo_t *t, int cpu) { return cpu_ok(cpu) ? t->cpu_node[cpu] : -1; }
int thoth_topo_cpu_package(const thoth_topo_t *t, int cpu) { return cpu_ok(cpu) ? t->cpu_package[cpu] : -1; }
int thoth_topo_cpu_core(const thoth_topo_t *t, int cpu) { return cpu_ok(cpu) ? t->cpu_core[cpu] : -1; }

int thoth_topo_node_cpus(const thoth_topo_t *t, unsigned node, cpu_set_t *out)
{
	if (node >= t->nodes)
		return THOTH_E_INVAL;
	*out = t->node_cpus[node];
	return 0;
}

int thoth_topo_smt_siblings(const thoth_topo_t *t, int cpu, cpu_set_t *out)
{
	int core = thoth_topo_cpu_core(t, cpu);
	if (core < 0)
		return THOTH_E_INVAL;
	*out = t->core_cpus[core];
	return 0;
}

uint32_t thoth_topo_distance(const thoth_topo_t *t, unsigned a, unsigned b)
{
	if (a >= t->nodes || b >= t->nodes)
		return UINT32_MAX;
	return t->dist[a * t->nodes + b];
}

int thoth_topo_nearest_node(const thoth_topo_t *t, unsigned from, uint64_t candidates)
{
	if (from >= t->nodes)
		return -1;
	int best = -1;
	uint32_t best_d = UINT32_MAX;
	for (unsigned n = 0; n < t->nodes; n++) {
		if (candidates && !(candidates >> n & 1))
			continue;
		uint32_t d = thoth_topo_distance(t, from, n);
		if (d < best_d) {
			best_d = d;
			best = (int)n;
		}
	}
	return best;
}

size_t thoth_topo_nodes_by_distance(const thoth_topo_t *t, unsigned from, unsigned *order, size_t n)
{
	if (from >= t->nodes)
		return 0;
	unsigned all[THOTH_TOPO_MAX_NODES];
	for (unsigned i = 0; i < t->nodes; i++)
		all[i] = i;
	/* Insertion sort, stable: equal distances keep index order; FROM's own
	 * 10 sorts it first unless a broken matrix says otherwise, so it is
	 * placed first explicitly. */
	for (unsigned i = 1; i < t->nodes; i++) {
		unsigned v = all[i], j = i;
		uint32_t dv = v == from ? 0 : thoth_topo_distance(t, from, v);
		while (j > 0) {
			unsigned u = all[j - 1];
			uint32_t du = u == from ? 0 : thoth_topo_distance(t, from, u);
			if (du <= dv)
				break;
			all[j] = u;
			j--;
		}
		all[j] = v;
	}
	size_t k = n < t->nodes ? n : t->nodes;
	memcpy(order, all, k * sizeof *order);
	return k;
}

/* "0-3,8" for a CPU set. */
static size_t set_text(const cpu_set_t *s, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (!CPU_ISSET(i, s))
			continue;
		int j = i;
		while (j + 1 < CPU_SETSIZE && CPU_ISSET(j + 1, s))
			j++;
		int w = j > i ? snprintf(buf + off, len - off, "%s%d-%d", off ? "," : "", i, j)
			      : snprintf(buf + off, len - off, "%s%d", off ? "," : "", i);
		if (w < 0 || (size_t)w >= len - off)
			return off;
		off += (size_t)w;
		i = j;
	}
	return off;
}

size_t thoth_topo_describe(const thoth_topo_t *t, char *buf, size_t len)
{
	size_t off = 0;
	if (!len)
		return 0;
	buf[0] = 0;
#define PUT(...)                                                                   \
	do {                                                                       \
		int w_ = snprintf(buf + off, len - off, __VA_ARGS__);              \
		if (w_ < 0 || (size_t)w_ >= len - off)                             \
			return off;                                                \
		off += (size_t)w_;                                                 \
	} while (0)
	PUT("%u node%s, %u package%s, %u cores, %u cpus; L1 %llu KiB, L2 %llu KiB, L3 %llu KiB; distances %s\n",
	    t->nodes, t->nodes == 1 ? "" : "s", t->packages, t->packages == 1 ? "" : "s", t->cores, t->cpus,
	    (unsigned long long)(t->cache[1] >> 10), (unsigned long long)(t->cache[2] >> 10),
	    (unsigned long long)(t->cache[3] >> 10), t->has_dist ? "from the firmware table" : "defaults (none reported)");
	for (unsigned n = 0; n < t->nodes; n++) {
		char cpus[256];
		set_text(&t->node_cpus[n], cpus, sizeof cpus);
		PUT("node %u (os %d): cpus %s, distances", n, t->node_os[n], cpus[0] ? cpus : "none");
		for (unsigned m = 0; m < t->nodes; m++)
			PUT(" %u", thoth_topo_distance(t, n, m));
		PUT("\n");
	}
#undef PUT
	return off;
}
