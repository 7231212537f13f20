/*
 * numa.h - memory placement by the kernel's own calls (SCALE-1), for the
 * channel's shared memory: no hwloc and no libnuma in libthoth, only
 * mbind/get_mempolicy/move_pages through syscall(2) (glibc wraps none).
 *
 * Policy switch, read once per process from $THOTH_NUMA:
 *   unset/"auto"  place memory when the machine has more than one node
 *                 online (on one node every placement is a no-op, so none
 *                 is made: zero system calls);
 *   "on"/"force"  place even on one node (tests, and the benchmark's "on"
 *                 side: it measures what the calls cost);
 *   "off"         never place (the NUMA-oblivious baseline).
 */
#ifndef THOTH_IPC_NUMA_H
#define THOTH_IPC_NUMA_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log_internal.h"   /* THOTH__HIDDEN */

#ifdef __cplusplus
extern "C" {
#endif

/* Nodes online (/sys/devices/system/node/online), >= 1. */
THOTH__HIDDEN unsigned thoth__numa_nodes_online(void);
/* The node of the CPU the caller runs on (getcpu), 0 when unknown. */
THOTH__HIDDEN unsigned thoth__numa_current_node(void);
/* Whether placement is done in this process (the $THOTH_NUMA rule). */
THOTH__HIDDEN bool thoth__numa_enabled(void);
/* Re-read $THOTH_NUMA (tests and benchmarks switch it within a run). */
THOTH__HIDDEN void thoth__numa_reset(void);

/*
 * Prefer NODE for the pages of [ADDR, ADDR+LEN) not yet allocated
 * (MPOL_PREFERRED: the kernel falls back to other nodes when NODE is
 * full, never fails an allocation).  ADDR page-aligned; LEN rounded up.
 * For a MAP_SHARED memfd mapping the policy belongs to the file range, so
 * it holds whichever process touches a page first.  0 or THOTH_E_IO.
 */
THOTH__HIDDEN int thoth__numa_prefer(void *addr, size_t len, unsigned node);

/* The policy of the page at ADDR: *MODE (MPOL_*) and, for PREFERRED or
 * BIND, the lowest node in its mask (-1 none).  0 or THOTH_E_IO. */
THOTH__HIDDEN int thoth__numa_policy_of(void *addr, int *mode, int *node);
/* Node holding the page at ADDR (move_pages query; the page must be
 * resident); -1 with errno when it is not. */
THOTH__HIDDEN int thoth__numa_page_node(void *addr);

/* Node of CPU (sysfs: /sys/devices/system/cpu/cpuN/nodeM); on a machine
 * without node links and one node online, 0; -1 when unknown. */
THOTH__HIDDEN int thoth__numa_cpu_node(int cpu);

/*
 * A thread stack preferred on CPU's node (thoth_serve_per_cpu's workers,
 * docs/SCALE.md "A worker's stack").  glibc's pthread_create maps a stack
 * in the *creating* thread and writes the new thread's descriptor and TLS
 * at its top there, so under the default local policy that memory (a whole
 * 2 MiB huge page with THP) lands on the creator's node.  Instead: map
 * ATTR's stack size (glibc's default when unset) plus ATTR's guard below
 * it, mbind the usable part MPOL_PREFERRED to the node before anything
 * touches it, and give it to ATTR (pthread_attr_setstack).  With placement
 * off (thoth__numa_enabled false) or the node unknown, ATTR is left as it
 * is and *ST empty: the thread gets glibc's own stack, as before.
 * 0, or THOTH_E_NOMEM/THOTH_E_IO (ATTR untouched, *ST empty: the caller
 * may still start the thread on glibc's stack).  Free with
 * thoth__numa_stack_free after the thread was joined.
 */
typedef struct thoth_numa_stack {
	void *map;              /* guard + stack as mapped; NULL: glibc's stack */
	size_t len;
	unsigned node;
} thoth_numa_stack_t;
THOTH__HIDDEN int thoth__numa_stack_for_cpu(pthread_attr_t *attr, int cpu, thoth_numa_stack_t *st);
THOTH__HIDDEN void thoth__numa_stack_free(thoth_numa_stack_t *st);

/* Counters of this process (thothctl, tests). */
typedef struct thoth_numa_stats {
	uint64_t placed;        /* ranges given a policy */
	uint64_t failed;        /* mbind refused (logged once) */
	uint64_t skipped;       /* placements not made: one node or THOTH_NUMA=off */
} thoth_numa_stats_t;
THOTH__HIDDEN void thoth__numa_stats(thoth_numa_stats_t *out);

/*
 * The channel rule (docs/SCALE.md): each side prefers its own node for
 * the memory it reads: its receive ring, the pool its peer sends from,
 * and the release ring of buffers it gets back.  Called by each side
 * right after it maps the memfd, before it touches any of that memory.
 * Returns how many ranges were placed (0 when placement is off).
 */
struct chan_layout;
THOTH__HIDDEN int thoth__chan_place(uint8_t *base, const struct chan_layout *lay, int side);

/* The decision alone, for any node (tests check it on topologies this
 * machine is not): the ranges SIDE reads, each to be preferred on NODE.
 * Returns how many (3; a zero-length range is left out). */
typedef struct thoth_numa_range {
	size_t off, len;
	unsigned node;
} thoth_numa_range_t;
THOTH__HIDDEN int thoth__chan_place_plan(const struct chan_layout *lay, int side, unsigned node,
					 thoth_numa_range_t out[3]);

#ifdef __cplusplus
}
#endif
#endif
