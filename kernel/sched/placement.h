/*
 * placement.h - where the two ends of a channel should run (SCHED-4,
 * issue 13 section 2).  docs/SCHED.md has the rules and the evidence.
 *
 * The policy is a pure function: it is fed what was observed about one
 * client/service pair over a window (who woke whom, how often, on which
 * CPUs, how busy each side was, the round trip) and answers "leave it",
 * "co-locate the service thread on the client's CPU" or "spread again",
 * with the reason in words.  Applying a decision (sched_setaffinity of one
 * thread) and logging it are separate, so tests drive the policy with
 * scripted observations and the same function runs in a live process.
 * NUMA (SCALE-1) would add a distance term to the choice of CPU; the
 * function already receives CPUs, not "same/other".
 */
#ifndef THOTH_SCHED_PLACEMENT_H
#define THOTH_SCHED_PLACEMENT_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PLACE_MAX_CPUS 1024
#define PLACE_MAX_NODES 64

typedef struct place_policy {
	double max_rate_hz;         /* co-locate only pairs calling at most this often (default 5000/s) */
	double max_busy;            /* ... whose two threads together use at most this much of one CPU (0.5) */
	double spread_slowdown;     /* spread when the co-located round trip is this much slower (1.2) */
	double spread_busy;         /* ... or the two threads together need this much of the CPU (0.9) */
	uint64_t min_dwell_ns;      /* no second move of a pair within this time (2 s) */
	/* Rule 6 (apart): a pair the kernel keeps on one CPU, saturating it
	 * (more than spread_busy), is split when another CPU is this idle. */
	double apart_idle;          /* the chosen CPU was idle at least this much of the window (0.5) */
	uint64_t apart_dwell_ns;    /* no apart move within this time of any move (4 s), doubled
				     * per undo of the rule on this pair (at most 64x) */
} place_policy_t;

/* The defaults above. */
void place_policy_default(place_policy_t *p);

/* Override P's fields from SPEC, "KEY=NUMBER[,KEY=NUMBER...]" with KEY one
 * of max_rate_hz, max_busy, spread_slowdown, spread_busy, apart_idle,
 * min_dwell_ms, apart_dwell_ms (THOTH_PLACEMENT_POLICY, docs/SCHED.md).
 * All or nothing: 0, or -1 with P untouched and WHY naming the bad item. */
int place_policy_parse(place_policy_t *p, const char *spec, char *why, size_t why_len);

typedef struct place_cpumap place_cpumap_t;

/* One CPU the service thread may run on, and how idle it was over the
 * window (0..1: /proc/stat's idle + iowait over its total). */
typedef struct place_cpu_idle {
	int cpu;
	double idle;
} place_cpu_idle_t;

/* One observation window of one channel (client thread <-> service thread). */
typedef struct place_obs {
	int client_cpu, server_cpu;         /* where each last ran; -1 unknown */
	bool client_pinned, server_pinned;  /* the user set an affinity (only the service thread is
					     * ever moved: a pinned one never is) */
	bool colocated;                     /* this policy moved them together earlier */
	uint64_t window_ns;                 /* length of the window */
	uint64_t calls;                     /* round trips in the window */
	uint64_t peer_wakeups;              /* sleeps ended by the peer's doorbell (both sides) */
	double client_busy, server_busy;    /* CPU time / window_ns of each thread (0..1) */
	double rtt_ns;                      /* round-trip p50 in the window */
	double rtt_before_ns;               /* colocated: the p50 before the move (0 = unknown) */
	uint64_t since_last_move_ns;        /* UINT64_MAX = never moved */
	/* Rule 6 (apart). */
	bool apart;                         /* this policy moved the service to another CPU than its
					     * client's earlier (rtt_before_ns: the cycle before) */
	unsigned apart_undos;               /* how often rule 6's move was undone for this pair */
	const place_cpu_idle_t *cpus;       /* the CPUs the service may run on, with their idle share
					     * over the window; NULL / 0: unknown (rule 6 stays) */
	unsigned ncpus;
	const place_cpumap_t *map;          /* "nearest" by topology; NULL: by CPU number */
} place_obs_t;

typedef enum place_action {
	PLACE_STAY = 0,
	PLACE_COLOCATE = 1,                 /* run the service thread on `cpu` (the client's) */
	PLACE_SPREAD = 2,                   /* give the service thread back its former CPUs */
	PLACE_APART = 3,                    /* run the service thread on `cpu`, not its client's */
} place_action_t;

/* Which rule moved a thread (the place_move trace point's reason). */
typedef enum place_reason {
	PLACE_WHY_NONE = 0,                 /* STAY */
	PLACE_WHY_SYNC_PAIR = 1,            /* COLOCATE: sleeping synchronous low-rate pair */
	PLACE_WHY_SLOWER = 2,               /* SPREAD: the co-located round trip got slower */
	PLACE_WHY_BUSY = 3,                 /* SPREAD: the pair needs more than the shared CPU */
	PLACE_WHY_SATURATED = 4,            /* APART: a sleeping pair saturates the CPU the kernel keeps
					     * it on, and another CPU is idle */
	PLACE_WHY_APART_SLOWER = 5,         /* SPREAD: undo: the round trip apart got slower, or
					     * the client followed the service to its CPU */
} place_reason_t;

typedef struct place_decision {
	place_action_t action;
	place_reason_t reason;
	int cpu;                            /* COLOCATE, APART: the CPU; else -1 */
	char why[160];                      /* always filled: the rule that decided */
} place_decision_t;

/* Decide for one pair.  Never fails: bad or missing observations give
 * PLACE_STAY with the reason. */
void place_decide(const place_policy_t *pol, const place_obs_t *obs, place_decision_t *out);

/* ---- a thread's affinity, sized for the machine ---------------------------------- */

/*
 * One thread's CPU mask, CPU_ALLOC'd for the machine's possible CPUs
 * (cpu_set_t names 1024; the kernel refuses a smaller mask than its own
 * nr_cpu_ids).  Zero-initialise; place_mask_get allocates on first use
 * (grows once if the kernel wants more), place_mask_free releases.
 */
typedef struct place_mask {
	cpu_set_t *set;                     /* NULL until the first place_mask_get */
	size_t size;                        /* bytes, CPU_ALLOC_SIZE of `bits` */
	unsigned bits;                      /* CPUs the mask can name */
	bool valid;                         /* holds a mask read by place_mask_get */
} place_mask_t;

/* Read thread TID's (0 = the caller) affinity into M.  0, or -1 (errno). */
int place_mask_get(place_mask_t *m, pid_t tid);
void place_mask_free(place_mask_t *m);
/* M as a kernel cpulist ("2-5,8") into BUF (truncated with "..." when long). */
void place_mask_format(const place_mask_t *m, char *buf, size_t cap);

/* Did the user restrict thread TID (0 = the caller) to fewer CPUs than
 * are online?  Then it counts as pinned: taskset, numactl, a cgroup cpuset
 * narrower than the online CPUs, a sched_setaffinity of its own - anything
 * but the whole machine is the user's choice, and never overridden.  -1
 * when it cannot be read. */
int place_thread_pinned(pid_t tid);
/* The same rule for a mask already read (place_mask_get): true when it
 * names fewer CPUs than are online; false when M holds no mask. */
bool place_mask_pinned(const place_mask_t *m);

/* Every move goes through here: LOG (if set) gets one line saying what
 * moved where and why, and the place_move trace point records it (arg0 =
 * tid, arg1 = action | reason << 8 | (cpu + 1) << 16 | failed << 32);
 * the thread's affinity is changed (COLOCATE, APART: to the one CPU;
 * SPREAD: back to RESTORE, the mask the caller saved with place_mask_get
 * before its first move, exactly - not "every online CPU", which a thread
 * under taskset, a cpuset or with CPUs offline never had).  When RESTORE
 * is refused (its CPUs went offline or left the cpuset since) the thread
 * gets every CPU the kernel allows it instead, and the line says both.
 * A SPREAD without RESTORE fails (EINVAL).  0 or -1 (errno). */
typedef void (*place_log_fn)(void *ctx, const char *line);
int place_apply(pid_t tid, const place_decision_t *d, const place_mask_t *restore, place_log_fn log, void *ctx);

/* ---- the client's CPU time -------------------------------------------------------- */

/* CPU time in ns of a thread (schedstat's first field) of process PID:
 * TID, the calling thread the client published (hostile: any number),
 * when /proc/PID/task/TID is one of PID's threads - procfs lists only
 * those there, so no other process is ever read - else (TID 0: an older
 * client; or not a thread of PID) PID's main thread.  *READ (if set)
 * gets the thread read (PID for the main thread).  0 unknown. */
uint64_t place_thread_cpu_ns(pid_t pid, uint32_t tid, pid_t *read);

/* ---- how idle each CPU is (/proc/stat), for rule 6 -------------------------- */

/* Cumulative idle and total time of each CPU (USER_HZ ticks). */
typedef struct place_cpu_times {
	unsigned ncpus;                         /* CPUs 0..ncpus-1 may have a line */
	bool have[PLACE_MAX_CPUS];
	uint64_t idle[PLACE_MAX_CPUS], total[PLACE_MAX_CPUS];
} place_cpu_times_t;

/* Read PATH (NULL: /proc/stat) into T: the "cpuN" lines only, which come
 * first (the file's long interrupt lines are never read).  0, or -1 when
 * the file cannot be read or has no cpuN line. */
int place_cpu_times_read(place_cpu_times_t *t, const char *path);

/* The idle share of each CPU of ALLOWED (NULL: all) between A and B (the
 * later) into OUT (at most CAP entries): CPUs without a line in both, or
 * with no time passed, are left out.  Returns the count. */
unsigned place_cpu_idle(const place_cpu_times_t *a, const place_cpu_times_t *b, const place_mask_t *allowed,
			place_cpu_idle_t *out, unsigned cap);

/* Rule 6's input for one window, sized to the machine: place_cpu_idle
 * into *OUT, grown (realloc) to every CPU A and B describe when it holds
 * fewer (*OUT NULL and *CAP 0 at first: once per machine size, never per
 * call).  0 when the buffer cannot grow (rule 6 then stays). */
unsigned place_cpu_idle_all(const place_cpu_times_t *a, const place_cpu_times_t *b, const place_mask_t *allowed,
			    place_cpu_idle_t **out, unsigned *cap);

/* ---- "nearest": CPUs by topology distance -------------------------------------- */

/*
 * The machine's CPUs as placement ranks them: each CPU's NUMA node,
 * package and core, and the node distance matrix (ACPI SLIT: 10 to
 * itself).  libthoth fills it from sysfs (place_cpumap_load: a service
 * never links hwloc); code that has SCALE-1's thoth_topo (thothd, tests)
 * fills it from that (placement_topo.h): the same facts, the same order.
 */

struct place_cpumap {
	unsigned ncpus;                         /* CPUs 0..ncpus-1 described (0 = nothing known) */
	unsigned nnodes;
	int16_t node[PLACE_MAX_CPUS];           /* -1 unknown */
	int16_t package[PLACE_MAX_CPUS];
	int16_t core[PLACE_MAX_CPUS];           /* core id within its package */
	uint8_t dist[PLACE_MAX_NODES][PLACE_MAX_NODES];
};

/* Read SYSROOT/sys/devices/system/{cpu,node} (SYSROOT "" or NULL: this
 * machine; a fixture dir in tests).  Without node files every CPU is on
 * node 0; unreadable topology files leave that CPU's fields -1.  0, or -1
 * when not even the CPU list could be read (M then knows nothing). */
int place_cpumap_load(place_cpumap_t *m, const char *sysroot);

/*
 * Distance from CPU A to CPU B, smaller is nearer: 0 the same CPU; then,
 * in this order, SMT siblings (same core), the same package (shared last
 * level cache), the same node, then other nodes by their SLIT distance.
 * A CPU the map does not know is farther than every known one.  With an
 * empty map (M NULL or ncpus 0): |A - B|, the CPU-number rule.
 */
uint32_t place_cpu_distance(const place_cpumap_t *m, int a, int b);

/* Index into CPUS[0..N) of the CPU nearest to FROM (ties: the nearer CPU
 * number, then the lower index); -1 when N is 0.  FROM < 0 (unknown): 0. */
int place_nearest_cpu(const place_cpumap_t *m, int from, const int *cpus, unsigned n);

#endif
