/*
 * idle_hist.h - the distribution of an element's idle lengths, for the
 * engine's expected-energy choice (engine.h step 3).
 *
 * Why a distribution and not one predicted length: what an idle period
 * costs under a plan ("wait TAU, then enter state S, then the ladder") is
 * not linear in its length, so the cheapest plan for the mean (or any
 * quantile) is not the cheapest plan on average.  The traces that showed it
 * (docs/PM.md "Why the engine plans over a distribution"): an echo
 * service's bursts of ~50 requests 0.1 ms apart, then ~100 ms of quiet.
 * Every quantile says "short" and the device waits for the break-even
 * timeout in each long gap; the distribution says "once 0.4 ms have passed,
 * the rest is long", so the engine sleeps at 0.4 ms.
 *
 * Log-spaced bins (two per octave from 1 us, so a length is known to within
 * a factor 1.41), each with a decayed weight and a decayed sum (so
 * sum / weight is the mean length that fell in it).  Every observation
 * first decays all weights by 1/64: the rare long gaps of a bursty load stay
 * remembered across a burst of 50 short ones (TEO's 1/8 forgets them), and
 * a change of load is followed within ~100 periods (the ladder bounds what
 * a stale history costs meanwhile: never more than the break-even timeout
 * policy per state entered late).
 */
#ifndef THOTH_PM_IDLE_HIST_H
#define THOTH_PM_IDLE_HIST_H

#include <stdint.h>

#define THOTH_PM_HIST_BINS 64
#define THOTH_PM_HIST_DECAY (1.0 / 64.0)

typedef struct thoth_pm_idle_hist {
	double weight[THOTH_PM_HIST_BINS];
	double sum_ns[THOTH_PM_HIST_BINS];
	double total;
	uint32_t observed; /* saturating */
} thoth_pm_idle_hist_t;

void thoth_pm_idle_hist_init(thoth_pm_idle_hist_t *h);

/* Record an ended idle period of IDLE_NS. */
void thoth_pm_idle_hist_observe(thoth_pm_idle_hist_t *h, uint64_t idle_ns);

/* The bin of IDLE_NS and the upper edge of bin B (ns; UINT64_MAX for the
 * last): every length in bin B is below its upper edge. */
uint32_t thoth_pm_idle_hist_bin(uint64_t idle_ns);
uint64_t thoth_pm_idle_hist_upper_ns(uint32_t b);

/* The mean length that fell in bin B (its lower edge if none). */
double thoth_pm_idle_hist_mean_ns(const thoth_pm_idle_hist_t *h, uint32_t b);

#endif
