/*
 * serve_slots.c - a serving process's counters in its trace buffer, and
 * thothd's validated read of them (SCALE-2: a per-CPU service's folded
 * counters shown by thothctl and the dashboard; layout in trace_layout.h,
 * thoth_trace_serve_t).
 *
 * Why the counters live in shared memory rather than being published: each
 * worker of thoth_serve_per_cpu already writes its own counters with a
 * plain store (one writer, kernel/ipc/chan_server.c); putting those words
 * in the trace buffer thothd maps anyway costs nothing per call and makes
 * every read exact and current, with no timer in an idle service and no
 * message to a busy one.  A publishing scheme would need either a periodic
 * wake-up or a fold per loop iteration.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "serve_slots.h"
#include "thoth/channel.h"
#include "trace_internal.h"

static int claimed;             /* atomic: one service's workers at a time */

static thoth_trace_serve_t *serve_header(void *base)
{
	return (thoth_trace_serve_t *)((char *)base + THOTH_TRACE_SERVE_OFFSET);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;
	memcpy(dst, src ? src : "", n);
	memset(dst + n, 0, cap - n);
}

uint32_t thoth__trace_serve_slot_size(void)
{
	return THOTH_TRACE_SERVE_SLOT;
}

void *thoth__trace_serve_claim(uint32_t n, uint32_t stats_size, const char *iface, const char *path)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	if (!b->base || !n || stats_size > THOTH_TRACE_SERVE_SLOT)
		return NULL;
	thoth_trace_serve_t *sv = serve_header(b->base);
	/* Our own geometry, written by thoth_trace_init: only a buffer made
	 * before the serve counters existed lacks it. */
	if (sv->magic != THOTH_TRACE_SERVE_MAGIC || n > sv->slot_count)
		return NULL;
	int expect = 0;
	if (!__atomic_compare_exchange_n(&claimed, &expect, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return NULL;
	char *slots = (char *)b->base + sv->region_offset;
	uint64_t seq = __atomic_load_n(&sv->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&sv->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memset(slots, 0, (size_t)n * THOTH_TRACE_SERVE_SLOT);
	__atomic_store_n(&sv->workers, n, __ATOMIC_RELAXED);
	__atomic_store_n(&sv->stats_size, stats_size, __ATOMIC_RELAXED);
	__atomic_store_n(&sv->runs, sv->runs + 1, __ATOMIC_RELAXED);
	copy_str(sv->iface, sizeof sv->iface, iface);
	copy_str(sv->path, sizeof sv->path, path);
	__atomic_store_n(&sv->seq, seq + 2, __ATOMIC_RELEASE);
	return slots;
}

void thoth__trace_serve_release(void)
{
	thoth_trace_buffer_t *b = &thoth_trace_buffer;
	if (!__atomic_load_n(&claimed, __ATOMIC_RELAXED) || !b->base)
		return;
	thoth_trace_serve_t *sv = serve_header(b->base);
	uint64_t seq = __atomic_load_n(&sv->seq, __ATOMIC_RELAXED);
	__atomic_store_n(&sv->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&sv->workers, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&sv->seq, seq + 2, __ATOMIC_RELEASE);
	__atomic_store_n(&claimed, 0, __ATOMIC_RELEASE);
}

/* ---- the reader's side (thothd): every byte is the peer's ---------------------- */

enum { READ_TRIES = 64 };

static bool str_ok(const char *src, size_t cap, char *dst)
{
	size_t n = strnlen(src, cap);
	if (n == cap)
		return false;
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] < 0x20 || src[i] > 0x7e ? '?' : src[i];
	dst[n] = 0;
	return true;
}

/* a + b, saturating: a hostile page may claim anything. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

int thoth__trace_reader_serve(thoth_trace_reader_t *r, thoth_trace_serve_view_t *out, char *why,
			      size_t why_len)
{
	memset(out, 0, sizeof *out);
	const uint8_t *base;
	size_t size;
	if (!r || thoth__trace_reader_mapping(r, &base, &size) || size < THOTH_TRACE_CONTROL_SIZE) {
		snprintf(why, why_len, "no mapped buffer");
		return THOTH_E_INVAL;
	}
	const thoth_trace_serve_t *sv = (const thoth_trace_serve_t *)(base + THOTH_TRACE_SERVE_OFFSET);
	uint32_t magic = __atomic_load_n(&sv->magic, __ATOMIC_RELAXED);
	if (magic != THOTH_TRACE_SERVE_MAGIC) {
		snprintf(why, why_len, "no serve counters in its trace buffer (magic %#x)", magic);
		return THOTH_E_NOT_FOUND;
	}
	/* Geometry: fixed after creation, but the peer may have rewritten it. */
	uint32_t slot_size = __atomic_load_n(&sv->slot_size, __ATOMIC_RELAXED);
	uint32_t slot_count = __atomic_load_n(&sv->slot_count, __ATOMIC_RELAXED);
	uint64_t off = __atomic_load_n(&sv->region_offset, __ATOMIC_RELAXED);
	if (slot_size != THOTH_TRACE_SERVE_SLOT) {
		snprintf(why, why_len, "slot size %u (expected %u)", slot_size, THOTH_TRACE_SERVE_SLOT);
		return THOTH_E_PROTOCOL;
	}
	if (!slot_count || slot_count > THOTH_TRACE_SERVE_MAX_SLOTS) {
		snprintf(why, why_len, "%u slots (1 to %u expected)", slot_count, THOTH_TRACE_SERVE_MAX_SLOTS);
		return THOTH_E_PROTOCOL;
	}
	if (off % 4096 || off < THOTH_TRACE_CONTROL_SIZE || off > size ||
	    (uint64_t)slot_count * slot_size > size - off) {
		snprintf(why, why_len, "slot region at %llu (%u x %u bytes) outside the %zu-byte buffer",
			 (unsigned long long)off, slot_count, slot_size, size);
		return THOTH_E_PROTOCOL;
	}
	const char *slots = (const char *)base + off;
	for (int tries = 0; tries < READ_TRIES; tries++) {
		uint64_t s0 = __atomic_load_n(&sv->seq, __ATOMIC_ACQUIRE);
		if (s0 & 1) {
			sched_yield();
			continue;
		}
		thoth_trace_serve_view_t v = { .slot_count = slot_count };
		v.workers = __atomic_load_n(&sv->workers, __ATOMIC_RELAXED);
		v.runs = __atomic_load_n(&sv->runs, __ATOMIC_RELAXED);
		uint32_t stats_size = __atomic_load_n(&sv->stats_size, __ATOMIC_RELAXED);
		char iface[sizeof sv->iface], path[sizeof sv->path];
		for (size_t i = 0; i < sizeof iface; i++)
			iface[i] = __atomic_load_n(&sv->iface[i], __ATOMIC_RELAXED);
		for (size_t i = 0; i < sizeof path; i++)
			path[i] = __atomic_load_n(&sv->path[i], __ATOMIC_RELAXED);
		bool strings = str_ok(iface, sizeof iface, v.iface) && str_ok(path, sizeof path, v.path);
		uint32_t n = v.workers <= slot_count ? v.workers : 0;
		for (uint32_t w = 0; w < n; w++) {
			const thoth_chan_server_stats_t *st =
				(const thoth_chan_server_stats_t *)(slots + (size_t)w * slot_size);
			thoth_chan_server_stats_t one;
#define L(f) one.f = __atomic_load_n(&st->f, __ATOMIC_RELAXED)
			L(clients); L(accepted); L(refused); L(calls); L(peer_gone); L(corrupt);
			L(handshake_dropped); L(shed); L(turns); L(log_suppressed); L(mod_wakeups);
			L(mod_timer_wakeups); L(placement_moves); L(handed_over);
#undef L
			thoth_chan_server_stats_t *t = &v.total;
			t->clients = t->clients + one.clients < t->clients ? UINT32_MAX
									   : t->clients + one.clients;
#define S(f) t->f = sat_add(t->f, one.f)
			S(accepted); S(refused); S(calls); S(peer_gone); S(corrupt); S(handshake_dropped);
			S(shed); S(turns); S(log_suppressed); S(mod_wakeups); S(mod_timer_wakeups);
			S(placement_moves); S(handed_over);
#undef S
			if (w < THOTH_TRACE_SERVE_VIEW_WORKERS)
				v.worker_calls[w] = one.calls;
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&sv->seq, __ATOMIC_RELAXED) != s0)
			continue;
		/* A settled header that still lies is refused, not trimmed. */
		if (v.workers > slot_count) {
			snprintf(why, why_len, "%u workers in %u slots", v.workers, slot_count);
			return THOTH_E_PROTOCOL;
		}
		if (v.workers && stats_size != sizeof(thoth_chan_server_stats_t)) {
			snprintf(why, why_len, "counters of %u bytes (this thothd reads %zu)", stats_size,
				 sizeof(thoth_chan_server_stats_t));
			return THOTH_E_PROTOCOL;
		}
		if (!strings) {
			snprintf(why, why_len, "interface or path not NUL-terminated");
			return THOTH_E_PROTOCOL;
		}
		*out = v;
		return 0;
	}
	snprintf(why, why_len, "its serve counters kept changing (%d tries)", READ_TRIES);
	return THOTH_E_BUSY;
}
