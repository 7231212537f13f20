/* probe_points.h - the trace points a running process has (probe_points.c). */
#ifndef THOTHCTL_PROBE_POINTS_H
#define THOTHCTL_PROBE_POINTS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Does process PID have the trace point NAME?  Its points are the "thoth"
 * USDT notes of the ELF files it maps executable (every THOTH_TRACE site
 * is one, fired yet or not).  1: it has; 0: it has not, and NEAR gets the
 * nearest names it has (up to three, comma-separated; "" when none is
 * close); -1: cannot tell (its maps unreadable, no thoth note found, or
 * a file it maps executable not read: deleted, not a regular file).
 */
int thothctl_probe_point_known(uint32_t pid, const char *name, char *near, size_t near_cap);

/* The same answer for one ELF image of LEN bytes in memory (the note
 * reader on its own: fuzz/probe/fuzz_probe_points.c): -1 also when the
 * image holds no thoth note. */
int thothctl_probe_points_in_image(const void *image, size_t len, const char *name, char *near, size_t near_cap);

#endif
