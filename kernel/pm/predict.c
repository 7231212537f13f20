/*
 * predict.c - TEO-like idle-length prediction (predict.h explains the rule).
 */
#include <string.h>

#include "predict.h"

void thoth_pm_predictor_init(thoth_pm_predictor_t *p, const uint64_t *edges, uint32_t count)
{
	memset(p, 0, sizeof(*p));
	p->bins = count;
	memcpy(p->edge_ns, edges, count * sizeof(edges[0]));
}

uint32_t thoth_pm_predictor_bin(const thoth_pm_predictor_t *p, uint64_t idle_ns)
{
	uint32_t bin = 0;
	for (uint32_t s = 1; s < p->bins; s++)
		if (p->edge_ns[s] <= idle_ns && p->edge_ns[s] >= p->edge_ns[bin])
			bin = s;
	return bin;
}

uint64_t thoth_pm_predictor_predict(const thoth_pm_predictor_t *p, uint64_t next_event_ns)
{
	uint64_t total = 0;
	for (uint32_t s = 0; s < p->bins; s++)
		total += p->weight[s];
	if (!total)
		return next_event_ns == THOTH_PM_NONE ? 0 : next_event_ns;
	/* The bin with the largest edge such that the weight of bins whose
	 * edge is below it is at most SHORT_PERMILLE of the total... */
	uint32_t best = 0;
	for (uint32_t s = 1; s < p->bins; s++) {
		uint64_t shorter = 0;
		for (uint32_t t = 0; t < p->bins; t++)
			if (p->edge_ns[t] < p->edge_ns[s])
				shorter += p->weight[t];
		if (shorter * 1000 <= total * THOTH_PM_PREDICT_SHORT_PERMILLE &&
		    p->edge_ns[s] > p->edge_ns[best])
			best = s;
	}
	/* ...and the mean idle length seen in it (its edge if it has none:
	 * an empty bin can only be chosen when nothing shorter was seen). */
	if (!p->weight[best])
		return p->edge_ns[best];
	double mean = p->sum_ns[best] / p->weight[best];
	return mean >= 1.8e19 ? THOTH_PM_NONE - 1 : (uint64_t)mean;
}

int thoth_pm_predictor_observe(thoth_pm_predictor_t *p, uint64_t idle_ns, uint64_t next_event_ns)
{
	for (uint32_t s = 0; s < p->bins; s++) {
		uint32_t drop = p->weight[s] >> THOTH_PM_PREDICT_DECAY_SHIFT;
		/* the sum decays by the same fraction, so sum / weight stays a mean */
		if (p->weight[s])
			p->sum_ns[s] -= p->sum_ns[s] * drop / p->weight[s];
		p->weight[s] -= drop;
		if (!p->weight[s])
			p->sum_ns[s] = 0;
	}
	uint32_t bin = thoth_pm_predictor_bin(p, idle_ns);
	p->weight[bin] += THOTH_PM_PREDICT_PULSE;
	p->sum_ns[bin] += (double)idle_ns * THOTH_PM_PREDICT_PULSE;
	if (p->observed < UINT32_MAX)
		p->observed++;
	/* Without a known event TEO's sleep length is "forever": only idle
	 * periods that reach the deepest bin are hits. */
	uint32_t expected = thoth_pm_predictor_bin(p, next_event_ns);
	return bin == expected;
}
