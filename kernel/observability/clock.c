/* clock.c - choosing the trace clock and converting its ticks (see trace_clock.h). */
#include "trace_clock.h"

#if THOTH_TRACE_HAVE_TSC
#include <cpuid.h>
#endif

uint32_t thoth_trace_clock_kind = THOTH_TRACE_CLOCK_MONOTONIC;

static int tsc_is_invariant(void)
{
#if THOTH_TRACE_HAVE_TSC
	unsigned eax, ebx, ecx, edx;
	if (!__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) || eax < 0x80000007u)
		return 0;
	if (!__get_cpuid(0x80000007u, &eax, &ebx, &ecx, &edx))
		return 0;
	return (edx >> 8) & 1u;
#else
	return 0;
#endif
}

/* A (ticks, ns) pair: the TSC read between two clock_gettime calls, the
 * tightest of a few tries, paired with the midpoint of that window. */
static void take_pair(uint64_t *ticks, uint64_t *ns)
{
#if THOTH_TRACE_HAVE_TSC
	uint64_t best_window = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t before = thoth_trace_clock_monotonic_ns();
		uint64_t t = __rdtsc();
		uint64_t after = thoth_trace_clock_monotonic_ns();
		if (after - before < best_window) {
			best_window = after - before;
			*ticks = t;
			*ns = before + (after - before) / 2;
		}
	}
#else
	*ns = thoth_trace_clock_monotonic_ns();
	*ticks = *ns;
#endif
}

void thoth_trace_clock_init(int force_monotonic, uint32_t *kind,
                            uint64_t *anchor_ticks, uint64_t *anchor_ns)
{
	thoth_trace_clock_kind = (!force_monotonic && tsc_is_invariant())
	                                 ? THOTH_TRACE_CLOCK_TSC
	                                 : THOTH_TRACE_CLOCK_MONOTONIC;
	*kind = thoth_trace_clock_kind;
	if (*kind == THOTH_TRACE_CLOCK_TSC) {
		take_pair(anchor_ticks, anchor_ns);
	} else {
		*anchor_ns = thoth_trace_clock_monotonic_ns();
		*anchor_ticks = *anchor_ns;
	}
}

void thoth_trace_clock_map_init(thoth_trace_clock_map_t *map, uint32_t kind,
                                uint64_t anchor_ticks, uint64_t anchor_ns, int live)
{
	map->kind = kind;
	map->anchor_ticks = anchor_ticks;
	map->anchor_ns = anchor_ns;
	map->now_ticks = anchor_ticks;
	map->now_ns = anchor_ns;
	if (live && kind == THOTH_TRACE_CLOCK_TSC && THOTH_TRACE_HAVE_TSC)
		take_pair(&map->now_ticks, &map->now_ns);
}

uint64_t thoth_trace_clock_to_ns(const thoth_trace_clock_map_t *map, uint64_t ticks)
{
	if (map->kind != THOTH_TRACE_CLOCK_TSC)
		return ticks;
	/* Untrusted anchors: without a usable interval, ticks count as ns. */
	if (map->now_ticks <= map->anchor_ticks || map->now_ns <= map->anchor_ns ||
	    map->now_ticks - map->anchor_ticks > INT64_MAX ||
	    map->now_ns - map->anchor_ns > INT64_MAX)
		return map->anchor_ns + (ticks - map->anchor_ticks);
	__int128 dt = (__int128)(int64_t)(ticks - map->anchor_ticks);
	__int128 ns = dt * (__int128)(map->now_ns - map->anchor_ns) /
	              (__int128)(map->now_ticks - map->anchor_ticks);
	return map->anchor_ns + (uint64_t)(int64_t)ns;
}

uint64_t thoth_trace_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
