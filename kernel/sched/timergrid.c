/*
 * timergrid.c - the per-boot wake-up grid (timergrid.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "timergrid.h"

#define MS 1000000ull

static const uint64_t grains[] = {
	60000 * MS, 10000 * MS, 1000 * MS, 250 * MS, 50 * MS, 10 * MS, 1 * MS,
};

uint64_t timergrid_pick(uint64_t lo, uint64_t hi, uint64_t pert)
{
	if (lo >= hi)
		return hi;
	for (size_t i = 0; i < sizeof grains / sizeof grains[0]; i++) {
		uint64_t g = grains[i], p = pert % g;
		if (hi < p)
			continue;
		uint64_t c = (hi - p) / g * g + p;   /* latest grid point <= hi */
		if (c >= lo)
			return c;
	}
	return hi;
}

uint64_t timergrid_perturbation_of(const char *boot_id)
{
	/* FNV-1a: any stable spread will do; the value only shifts the grid. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const unsigned char *s = (const unsigned char *)boot_id; *s; s++)
		h = (h ^ *s) * 0x100000001b3ull;
	return h % (60000 * MS);
}

uint64_t timergrid_perturbation(void)
{
	/* pert + 1, 0 = not read yet; loops in several threads may race to
	 * read it, and they all store the same value. */
	static _Atomic uint64_t cached;
	uint64_t c = atomic_load_explicit(&cached, memory_order_relaxed);
	if (c)
		return c - 1;
	uint64_t pert;
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	if (f) {
		if (!fgets(id, sizeof id, f))
			id[0] = 0;
		fclose(f);
	}
	id[strcspn(id, "\n")] = 0;
	pert = id[0] ? timergrid_perturbation_of(id) : 0;
	atomic_store_explicit(&cached, pert + 1, memory_order_relaxed);
	return pert;
}
