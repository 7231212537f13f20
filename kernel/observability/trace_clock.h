/*
 * trace_clock.h - the clock of trace records.
 *
 * Writers stamp records with the cheapest clock that readers can turn into
 * CLOCK_MONOTONIC nanoseconds: the raw TSC where it is invariant (x86-64 with
 * cpuid 0x80000007 EDX bit 8: constant rate, ticks through sleep states,
 * synchronised across CPUs), else clock_gettime(CLOCK_MONOTONIC) through the
 * vDSO.  Measured on the development VM (kvm-clock): rdtsc 11 ns,
 * clock_gettime 26 ns per call; see docs/OBSERVABILITY.md.
 *
 * TSC ticks are converted by the reader, not the writer: the writer stores
 * one anchor pair (ticks, ns) at init; the reader takes a second pair when it
 * polls and interpolates linearly between the two.  Interpolation keeps the
 * error at the anchors' own error (tens of ns) however old the buffer is, and
 * needs no calibration spin at process start.
 */
#ifndef THOTH_TRACE_CLOCK_H
#define THOTH_TRACE_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "trace_layout.h"

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define THOTH_TRACE_HAVE_TSC 1
#else
#define THOTH_TRACE_HAVE_TSC 0
#endif

static inline uint64_t thoth_trace_clock_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Choose the clock kind for this process (FORCE_MONOTONIC: never TSC) and
 * take its anchor pair. */
void thoth_trace_clock_init(int force_monotonic, uint32_t *kind,
                            uint64_t *anchor_ticks, uint64_t *anchor_ns);

/* Converts one buffer's timestamps to CLOCK_MONOTONIC ns. */
typedef struct thoth_trace_clock_map {
	uint32_t kind;
	uint64_t anchor_ticks, anchor_ns;  /* from the (untrusted) control page */
	uint64_t now_ticks, now_ns;        /* taken by the reader */
} thoth_trace_clock_map_t;

/* Take the reader's pair.  LIVE = 0 (an image): no pair, ticks map 1:1. */
void thoth_trace_clock_map_init(thoth_trace_clock_map_t *map, uint32_t kind,
                                uint64_t anchor_ticks, uint64_t anchor_ns, int live);
uint64_t thoth_trace_clock_to_ns(const thoth_trace_clock_map_t *map, uint64_t ticks);

#endif
