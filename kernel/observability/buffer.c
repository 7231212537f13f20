/*
 * buffer.c - lifecycle of this process's trace buffer: the memfd, its control
 * page, the enabled mask, and handing the fd to a collector.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "thoth/rpc.h"
#include "trace_clock.h"
#include "trace_internal.h"

/* What trace points read without a buffer, and the pointer they read it
 * through: every trace point that is off loads both, so they share a
 * section of their own (24 bytes, 16-aligned: the words at 0 and 16, in
 * either order by compiler) -- one page unless the section starts in a
 * page's last 16 bytes (1 placement in 256), one 64-byte line unless it
 * starts at 48 mod 64 (1 in 4) -- where they used to sit on two data
 * pages, each touched every round trip (docs/SCHED.md, stop 34, pages34). */
#define TRACE_OFF_SECTION __attribute__((section(".data.thoth_trace_off"), aligned(16)))
static uint64_t disabled_word TRACE_OFF_SECTION = 0;
uint64_t *thoth_trace_enabled_word TRACE_OFF_SECTION = &disabled_word;
/*
 * The loop's window page pointer (kernel/sched/timerpage.h, whose module
 * owns it) is defined here, in the same section: every loop wake-up reads
 * it (rearm's check) and every round trip reads the two words above, and
 * alone in .bss it was one more data page per wake-up (docs/SCHED.md, stop
 * 36).  Only an input section of one object is kept together by every
 * linker; the three words (48 bytes) share a page unless the section
 * starts in a page's last 32 bytes.  Not in a program linked to
 * libthoth.so that uses THOTH_TRACE itself: a copy relocation moves
 * thoth_trace_enabled_word into the executable (docs/SCHED.md, stop 36).
 */
struct timerpage;
__attribute__((visibility("hidden"))) _Atomic(struct timerpage *) thoth__timerpage_cur TRACE_OFF_SECTION = NULL;

thoth_trace_buffer_t thoth_trace_buffer = {
	.fd = -1,
	.names_lock = THOTH_MUTEX_INITIALIZER("trace name table"),
};

static bool is_power_of_two(uint32_t v)
{
	return v && (v & (v - 1)) == 0;
}

int thoth_trace_init(const thoth_trace_config_t *config)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	thoth_trace_config_t cfg = { 0 };
	if (config)
		cfg = *config;
	if (!cfg.ring_count)
		cfg.ring_count = 64;
	if (!cfg.ring_records)
		cfg.ring_records = 4096;
	if (cfg.ring_count > THOTH_TRACE_MAX_RINGS || cfg.ring_records < 8 ||
	    cfg.ring_records > THOTH_TRACE_MAX_RECORDS || !is_power_of_two(cfg.ring_records) ||
	    (cfg.full_policy != THOTH_TRACE_OVERWRITE_OLDEST &&
	     cfg.full_policy != THOTH_TRACE_DROP_NEWEST))
		return THOTH_E_INVAL;
	if (b->base)
		return THOTH_E_EXISTS;

	size_t size = thoth_trace_buffer_size(cfg.ring_count, cfg.ring_records);
	/* The serve counters' slots after the rings (trace_layout.h): one per
	 * CPU the machine may bring online, since thoth_serve_per_cpu runs a
	 * worker per allowed CPU.  Pages of slots nobody uses are never touched. */
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	uint32_t serve_slots = ncpu < 1 ? 1u : ncpu > (long)THOTH_TRACE_SERVE_MAX_SLOTS
			       ? THOTH_TRACE_SERVE_MAX_SLOTS : (uint32_t)ncpu;
	size_t serve_off = (size + 4095) & ~(size_t)4095;
	size = thoth_trace_memfd_size(cfg.ring_count, cfg.ring_records, serve_slots);
	int fd = memfd_create("thoth-trace", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return THOTH_E_IO;
	/* Sealed size: a reader's mapping can never be cut short (SIGBUS). */
	if (ftruncate(fd, (off_t)size) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
		goto err_close;
	void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		goto err_close;

	thoth_trace_control_t *c = base;
	c->magic = THOTH_TRACE_MAGIC;
	c->version = THOTH_TRACE_VERSION;
	c->record_size = THOTH_TRACE_RECORD_SIZE;
	c->ring_count = cfg.ring_count;
	c->ring_records = cfg.ring_records;
	c->full_policy = cfg.full_policy;
	c->enabled = cfg.enabled;
	c->pid = (uint32_t)getpid();
	c->total_size = size;
	thoth_trace_serve_t *sv = (thoth_trace_serve_t *)((char *)base + THOTH_TRACE_SERVE_OFFSET);
	sv->magic = THOTH_TRACE_SERVE_MAGIC;
	sv->slot_size = THOTH_TRACE_SERVE_SLOT;
	sv->slot_count = serve_slots;
	sv->region_offset = serve_off;
	/* We claim probe commands before acting on them (mailbox.c), so thothd
	 * may withdraw one we have not taken (trace_layout.h). */
	((thoth_trace_probe_mailbox_t *)((char *)base + THOTH_TRACE_PROBE_MAILBOX_OFFSET))->features =
		THOTH_TRACE_PROBE_FEAT_WITHDRAW;
	thoth_trace_clock_init(0, &c->clock_kind, &c->clock_anchor_ticks, &c->clock_anchor_ns);
	if (cfg.process_name)
		strncpy(c->process_name, cfg.process_name, sizeof c->process_name - 1);
	else
		prctl(PR_GET_NAME, c->process_name);  /* 16 bytes, NUL-terminated */

	b->base = base;
	b->size = size;
	b->fd = fd;
	b->control = c;
	b->ring_count = cfg.ring_count;
	b->ring_records = cfg.ring_records;
	b->ring_mask = cfg.ring_records - 1;
	b->full_policy = cfg.full_policy;
	b->pid = c->pid;
	b->rings_claimed = 0;
	b->names_count = 0;
	uint32_t gen = b->generation + 1;
	if ((gen & 0xffffu) == 0)
		gen++;
	__atomic_store_n(&b->generation, gen, __ATOMIC_RELEASE);
	__atomic_store_n(&thoth_trace_enabled_word, &c->enabled, __ATOMIC_RELEASE);
	thoth__rpc_oneway_mirror(&c->oneways_dropped);  /* thothd shows it (serve_stats.c) */
	return 0;

err_close:
	close(fd);
	return THOTH_E_IO;
}

int thoth_trace_shutdown(void)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	if (!b->base)
		return THOTH_E_NOT_FOUND;
	__atomic_store_n(&thoth_trace_enabled_word, &disabled_word, __ATOMIC_RELEASE);
	thoth__rpc_oneway_mirror(NULL);
	/* A thread that loaded either pointer just before the swaps (a trace
	 * point reading c->enabled, a dispatcher storing a oneway drop into
	 * c->oneways_dropped) may still use it after them: there is no grace
	 * period to wait for.  So the control page is not unmapped but
	 * replaced, at the same address, by an anonymous private page, where
	 * such a late access lands harmlessly (the value goes nowhere; a read
	 * sees 0: disabled).  That page of address space stays reserved for
	 * the process's life, once per shutdown; the rest goes.  Should the
	 * replacement fail, everything is unmapped as before. */
	long pg = sysconf(_SC_PAGESIZE);
	size_t ctl = pg > 0 ? ((sizeof(thoth_trace_control_t) + (size_t)pg - 1) & ~((size_t)pg - 1)) : 0;
	if (ctl > b->size || !ctl ||
	    mmap(b->base, ctl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		ctl = 0;
	munmap((char *)b->base + ctl, b->size - ctl);
	close(b->fd);
	b->base = NULL;
	b->control = NULL;
	b->fd = -1;
	return 0;
}

int thoth_trace_export_fd(int *fd_out)
{
	if (!fd_out)
		return THOTH_E_INVAL;
	if (!thoth_trace_buffer.base)
		return THOTH_E_NOT_FOUND;
	*fd_out = thoth_trace_buffer.fd;
	return 0;
}

int thoth_trace_set_enabled(uint64_t mask)
{
	if (!thoth_trace_buffer.control)
		return THOTH_E_NOT_FOUND;
	/* Category bits only: the probe bits belong to the probe runtime. */
	uint64_t *w = &thoth_trace_buffer.control->enabled;
	uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(w, &old, (old & ~THOTH_TRACE_CATEGORY_BITS) |
	                                                 (mask & THOTH_TRACE_CATEGORY_BITS),
	                                    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return 0;
}

int thoth_trace_enable(uint64_t mask)
{
	if (!thoth_trace_buffer.control)
		return THOTH_E_NOT_FOUND;
	__atomic_fetch_or(&thoth_trace_buffer.control->enabled, mask & THOTH_TRACE_CATEGORY_BITS,
	                  __ATOMIC_RELAXED);
	return 0;
}

int thoth_trace_disable(uint64_t mask)
{
	if (!thoth_trace_buffer.control)
		return THOTH_E_NOT_FOUND;
	__atomic_fetch_and(&thoth_trace_buffer.control->enabled,
	                   ~(mask & THOTH_TRACE_CATEGORY_BITS), __ATOMIC_RELAXED);
	return 0;
}
