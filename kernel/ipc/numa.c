/*
 * numa.c - memory placement by system call (numa.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log_internal.h"
#include "numa.h"
#include "thoth/error.h"
#include "thoth/trace.h"

/* <numaif.h> is libnuma-dev's; the values are the kernel ABI. */
#ifndef MPOL_PREFERRED
#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_F_NODE (1 << 0)
#define MPOL_F_ADDR (1 << 1)
#endif
#define NUMA_MASK_BITS 1024

enum { MODE_UNREAD = 0, MODE_AUTO, MODE_ON, MODE_OFF };
static int numa_mode;                   /* atomic access: MODE_* */
static unsigned nodes_online_cache;     /* 0 = not read yet */
static uint64_t st_placed, st_failed, st_skipped;

static unsigned read_nodes_online(void)
{
	/* "0", "0-3", "0,2-3": count the nodes in the list. */
	FILE *f = fopen("/sys/devices/system/node/online", "re");
	if (!f)
		return 1;
	char buf[256];
	unsigned n = 0;
	if (fgets(buf, sizeof buf, f)) {
		char *p = buf;
		while (*p && *p != '\n') {
			char *end;
			unsigned long a = strtoul(p, &end, 10), b = a;
			if (end == p)
				break;
			if (*end == '-') {
				p = end + 1;
				b = strtoul(p, &end, 10);
				if (end == p || b < a)
					break;
			}
			n += (unsigned)(b - a + 1);
			p = *end == ',' ? end + 1 : end;
		}
	}
	fclose(f);
	return n ? n : 1;
}

unsigned thoth__numa_nodes_online(void)
{
	unsigned n = __atomic_load_n(&nodes_online_cache, __ATOMIC_RELAXED);
	if (!n) {
		n = read_nodes_online();
		__atomic_store_n(&nodes_online_cache, n, __ATOMIC_RELAXED);
	}
	return n;
}

unsigned thoth__numa_current_node(void)
{
	unsigned cpu = 0, node = 0;
	if (getcpu(&cpu, &node) != 0)
		return 0;
	return node;
}

void thoth__numa_reset(void)
{
	__atomic_store_n(&numa_mode, MODE_UNREAD, __ATOMIC_RELAXED);
}

static int mode(void)
{
	int m = __atomic_load_n(&numa_mode, __ATOMIC_RELAXED);
	if (m != MODE_UNREAD)
		return m;
	const char *v = getenv("THOTH_NUMA");
	if (!v || !*v || !strcmp(v, "auto"))
		m = MODE_AUTO;
	else if (!strcmp(v, "on") || !strcmp(v, "force") || !strcmp(v, "1"))
		m = MODE_ON;
	else if (!strcmp(v, "off") || !strcmp(v, "0"))
		m = MODE_OFF;
	else {
		thoth__log(THOTH_LOG_WARN, "numa", "THOTH_NUMA=%s is not auto, on or off: using auto", v);
		m = MODE_AUTO;
	}
	__atomic_store_n(&numa_mode, m, __ATOMIC_RELAXED);
	return m;
}

bool thoth__numa_enabled(void)
{
	int m = mode();
	return m == MODE_ON || (m == MODE_AUTO && thoth__numa_nodes_online() > 1);
}

int thoth__numa_prefer(void *addr, size_t len, unsigned node)
{
	if (!thoth__numa_enabled()) {
		__atomic_fetch_add(&st_skipped, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (node >= NUMA_MASK_BITS || ((uintptr_t)addr & 4095))
		return THOTH_E_INVAL;
	unsigned long mask[NUMA_MASK_BITS / (8 * sizeof(unsigned long))] = { 0 };
	mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
	len = (len + 4095) & ~(size_t)4095;
	if (syscall(SYS_mbind, addr, len, MPOL_PREFERRED, mask, (unsigned long)NUMA_MASK_BITS + 1, 0ul)) {
		int e = errno;
		if (__atomic_fetch_add(&st_failed, 1, __ATOMIC_RELAXED) == 0)
			thoth__log(THOTH_LOG_WARN, "numa", "mbind(MPOL_PREFERRED, node %u) of %zu bytes: %s "
				   "(the memory stays where the kernel puts it)", node, len, strerror(e));
		errno = e;
		return THOTH_E_IO;
	}
	__atomic_fetch_add(&st_placed, 1, __ATOMIC_RELAXED);
	return 0;
}

int thoth__numa_policy_of(void *addr, int *mode_out, int *node_out)
{
	unsigned long mask[NUMA_MASK_BITS / (8 * sizeof(unsigned long))] = { 0 };
	int m = 0;
	if (syscall(SYS_get_mempolicy, &m, mask, (unsigned long)NUMA_MASK_BITS, addr, MPOL_F_ADDR))
		return THOTH_E_IO;
	*mode_out = m;
	*node_out = -1;
	for (unsigned i = 0; i < NUMA_MASK_BITS; i++)
		if (mask[i / (8 * sizeof(unsigned long))] >> (i % (8 * sizeof(unsigned long))) & 1) {
			*node_out = (int)i;
			break;
		}
	return 0;
}

int thoth__numa_page_node(void *addr)
{
	void *pages[1] = { addr };
	int status[1] = { -1 };
	if (syscall(SYS_move_pages, 0, 1ul, pages, NULL, status, 0))
		return -1;
	if (status[0] < 0) {
		errno = -status[0];
		return -1;
	}
	return status[0];
}

int thoth__numa_cpu_node(int cpu)
{
	char path[64];
	if (cpu < 0)
		return -1;
	snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d", cpu);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int node = -1;
	for (struct dirent *e; node < 0 && (e = readdir(d));) {
		char *end;
		if (!strncmp(e->d_name, "node", 4) && e->d_name[4] >= '0' && e->d_name[4] <= '9') {
			long v = strtol(e->d_name + 4, &end, 10);
			if (!*end && v >= 0 && v < NUMA_MASK_BITS)
				node = (int)v;
		}
	}
	closedir(d);
	if (node < 0 && thoth__numa_nodes_online() == 1)
		node = 0;               /* a kernel without NUMA links its CPUs to no node */
	return node;
}

/*
 * Does this process run with an executable stack (an object asked for one
 * by PT_GNU_STACK: GCC's nested-function trampolines)?  glibc then maps
 * its thread stacks executable, but never a stack given to it: a worker on
 * ours would fault in a trampoline.  The main thread's stack tells.
 */
static bool stack_exec(void)
{
	static int known;       /* 0 unknown, 1 no, 2 yes */
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
	if (k)
		return k == 2;
	bool yes = true;        /* unreadable: glibc's own stacks, as before */
	FILE *f = fopen("/proc/self/maps", "re");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f))
			if (strstr(line, "[stack]")) {
				char perms[5] = "";
				yes = sscanf(line, "%*s %4s", perms) != 1 || perms[2] != '-';
				break;
			}
		fclose(f);
	}
	__atomic_store_n(&known, yes ? 2 : 1, __ATOMIC_RELAXED);
	return yes;
}

int thoth__numa_stack_for_cpu(pthread_attr_t *attr, int cpu, thoth_numa_stack_t *st)
{
	*st = (thoth_numa_stack_t){ 0 };
	if (!thoth__numa_enabled() || stack_exec())
		return 0;
	int node = thoth__numa_cpu_node(cpu);
	if (node < 0)
		return 0;
	/* pthread_attr_getstacksize of an attr whose size was never set
	 * answers glibc's default (RLIMIT_STACK, or its built-in size), and
	 * pthread_attr_init's guard is one page: the sizes glibc would map. */
	size_t size = 0, guard = 0, page = (size_t)sysconf(_SC_PAGESIZE);
	if (pthread_attr_getstacksize(attr, &size) || pthread_attr_getguardsize(attr, &guard))
		return THOTH_E_INVAL;
	if (size < (size_t)PTHREAD_STACK_MIN)
		size = (size_t)PTHREAD_STACK_MIN;
	size = (size + page - 1) & ~(page - 1);
	guard = (guard + page - 1) & ~(page - 1);
	uint8_t *m = mmap(NULL, guard + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
			  -1, 0);
	if (m == MAP_FAILED)
		return THOTH_E_NOMEM;
	/* Stacks grow down: the guard is the low end.  The policy before the
	 * first touch (pthread_create's, on the creator's CPU): a fault on
	 * any CPU, huge page or not, then allocates on NODE. */
	if ((guard && mprotect(m, guard, PROT_NONE)) || thoth__numa_prefer(m + guard, size, (unsigned)node) ||
	    pthread_attr_setstack(attr, m + guard, size)) {
		int e = errno;
		munmap(m, guard + size);
		errno = e;
		return THOTH_E_IO;
	}
	*st = (thoth_numa_stack_t){ .map = m, .len = guard + size, .node = (unsigned)node };
	return 0;
}

void thoth__numa_stack_free(thoth_numa_stack_t *st)
{
	if (st->map)
		munmap(st->map, st->len);
	*st = (thoth_numa_stack_t){ 0 };
}

void thoth__numa_stats(thoth_numa_stats_t *out)
{
	out->placed = __atomic_load_n(&st_placed, __ATOMIC_RELAXED);
	out->failed = __atomic_load_n(&st_failed, __ATOMIC_RELAXED);
	out->skipped = __atomic_load_n(&st_skipped, __ATOMIC_RELAXED);
}

/* ---- the channel rule -------------------------------------------------- */

#include "chan_shm.h"

int thoth__chan_place_plan(const chan_layout_t *lay, int side, unsigned node, thoth_numa_range_t out[3])
{
	int rx = side == CHAN_CLIENT ? CHAN_RESP : CHAN_REQ;
	int tx = 1 - rx;
	/* What this side reads: its receive ring, the pool its peer sends
	 * from (the pool of the direction it receives), and the release ring
	 * of the direction it sends (its own buffers coming back). */
	thoth_numa_range_t r[3] = {
		{ lay->ring_off[rx], (size_t)lay->lim.slots * THOTH_CHAN_SLOT_SIZE, node },
		{ lay->pool_off[rx], (size_t)lay->lim.pool_bufs * lay->lim.pool_buf_size, node },
		{ lay->rel_off[tx], (size_t)lay->rel_slots * sizeof(uint32_t), node },
	};
	int n = 0;
	for (int i = 0; i < 3; i++)
		if (r[i].len)
			out[n++] = r[i];
	return n;
}

int thoth__chan_place(uint8_t *base, const chan_layout_t *lay, int side)
{
	if (!thoth__numa_enabled()) {
		__atomic_fetch_add(&st_skipped, 1, __ATOMIC_RELAXED);
		return 0;
	}
	unsigned node = thoth__numa_current_node();
	thoth_numa_range_t r[3];
	int n = thoth__chan_place_plan(lay, side, node, r);
	int placed = 0;
	for (int i = 0; i < n; i++)
		if (thoth__numa_prefer(base + r[i].off, r[i].len, r[i].node) == 0)
			placed++;
	/* A placement decision is a trace event (SCALE-1), like thothd's
	 * registry_numa_pick: which side, which node, how many ranges took. */
	THOTH_TRACE(IPC, chan_numa_place, (uint64_t)side << 16 | (node & 0xffffu),
		    (uint64_t)placed << 8 | (unsigned)n);
	return placed;
}
