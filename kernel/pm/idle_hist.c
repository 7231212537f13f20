/*
 * idle_hist.c - decayed log-spaced histogram of idle lengths (idle_hist.h).
 */
#include <math.h>
#include <string.h>

#include "idle_hist.h"

void thoth_pm_idle_hist_init(thoth_pm_idle_hist_t *h)
{
	memset(h, 0, sizeof(*h));
}

uint32_t thoth_pm_idle_hist_bin(uint64_t idle_ns)
{
	if (idle_ns < 1000)
		return 0;
	/* two bins per octave: bin = floor(2 log2(idle / 1 us)) */
	double b = floor(2.0 * log2((double)idle_ns / 1000.0));
	return b >= THOTH_PM_HIST_BINS - 1 ? THOTH_PM_HIST_BINS - 1 : (uint32_t)b;
}

static double lower_ns(uint32_t b)
{
	return b ? 1000.0 * exp2((double)b / 2.0) : 0;
}

uint64_t thoth_pm_idle_hist_upper_ns(uint32_t b)
{
	if (b >= THOTH_PM_HIST_BINS - 1)
		return UINT64_MAX;
	return (uint64_t)ceil(1000.0 * exp2((double)(b + 1) / 2.0));
}

double thoth_pm_idle_hist_mean_ns(const thoth_pm_idle_hist_t *h, uint32_t b)
{
	return h->weight[b] > 0 ? h->sum_ns[b] / h->weight[b] : lower_ns(b);
}

void thoth_pm_idle_hist_observe(thoth_pm_idle_hist_t *h, uint64_t idle_ns)
{
	double keep = 1.0 - THOTH_PM_HIST_DECAY;
	h->total = 0;
	for (uint32_t b = 0; b < THOTH_PM_HIST_BINS; b++) {
		h->weight[b] *= keep;
		h->sum_ns[b] *= keep;
		/* forget what has decayed to nothing (keeps the scan short) */
		if (h->weight[b] < 1e-6)
			h->weight[b] = h->sum_ns[b] = 0;
		h->total += h->weight[b];
	}
	uint32_t b = thoth_pm_idle_hist_bin(idle_ns);
	h->weight[b] += 1.0;
	h->sum_ns[b] += (double)idle_ns;
	h->total += 1.0;
	if (h->observed < UINT32_MAX)
		h->observed++;
}
