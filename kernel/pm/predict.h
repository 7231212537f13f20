/*
 * predict.h - idle-length prediction for one element, after Linux's TEO
 * cpuidle governor (drivers/cpuidle/governors/teo.c): one bin per power
 * state, the bin's lower edge at the state's break-even time; every ended
 * idle period adds a pulse to the bin it fell in after all bins decay by
 * 1/8, so the last ~8 periods dominate (TEO's recent-history idea in one
 * mechanism).  An idle period that ends in the bin of the known next event
 * is a "hit", one that ends earlier an "intercept".
 *
 * The prediction is a low quantile, not the mean: the deepest bin that at
 * most SHORT_PERMILLE of the decayed history fell short of, and within it
 * the decayed mean of the idle lengths that fell there.  The engine reports
 * it (decision.predicted_idle_ns) and counts hits and intercepts with it;
 * it no longer decides with it: without a known event the engine prices
 * plans on the whole distribution (idle_hist.h says why).
 */
#ifndef THOTH_PM_PREDICT_H
#define THOTH_PM_PREDICT_H

#include <stdint.h>

#include "engine.h"

#define THOTH_PM_PREDICT_PULSE 1024u
#define THOTH_PM_PREDICT_DECAY_SHIFT 3 /* weights *= 7/8 per observation */
#define THOTH_PM_PREDICT_SHORT_PERMILLE 450 /* the tail allowed to be shorter */

typedef struct thoth_pm_predictor {
	uint32_t bins;
	uint64_t edge_ns[THOTH_PM_MAX_STATES]; /* lower edge of each state's bin */
	uint32_t weight[THOTH_PM_MAX_STATES];  /* decayed hits + intercepts */
	double sum_ns[THOTH_PM_MAX_STATES];    /* decayed sum of idle * pulse */
	uint32_t observed;                      /* observations so far (saturating) */
} thoth_pm_predictor_t;

/* EDGES[s] = break-even of state s (EDGES[0] = 0), COUNT states. */
void thoth_pm_predictor_init(thoth_pm_predictor_t *p, const uint64_t *edges, uint32_t count);

/* The bin (state index) an idle length of IDLE_NS falls in: the state with
 * the highest edge <= IDLE_NS. */
uint32_t thoth_pm_predictor_bin(const thoth_pm_predictor_t *p, uint64_t idle_ns);

/* Predicted idle length, ns.  Without history: NEXT_EVENT_NS (which may be
 * THOTH_PM_NONE) if it is known, else 0 (the engine then starts shallow and
 * relies on its ladder: the break-even timeout policy). */
uint64_t thoth_pm_predictor_predict(const thoth_pm_predictor_t *p, uint64_t next_event_ns);

/* Record an ended idle period.  Returns 1 for a hit, 0 for an intercept. */
int thoth_pm_predictor_observe(thoth_pm_predictor_t *p, uint64_t idle_ns, uint64_t next_event_ns);

#endif
