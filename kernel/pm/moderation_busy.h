/*
 * moderation_busy.h - the start of a busy period, shared by the device
 * loops that sleep while their device is idle (moderation_nic.c,
 * moderation_nvme.c).
 */
#ifndef THOTH_PM_MODERATION_BUSY_H
#define THOTH_PM_MODERATION_BUSY_H

#include <stdint.h>

#include "moderation.h"
#include "thoth/loop.h"

/* The policy POL starts afresh from config CFG at sample S (its first
 * window begins now, not at the end of the last busy period: that would
 * measure the pause), and the sampling timer *TIMER is armed SAMPLE_NS
 * after S (slack 1/8 of it), created with FN and ARG when there is none. */
void thoth__mod_busy_begin(thoth_mod_t *pol, const thoth_mod_config_t *cfg, const thoth_mod_sample_t *s,
			   thoth_loop_t *loop, thoth_timer_t **timer, uint64_t sample_ns, thoth_timer_fn fn,
			   void *arg);

#endif
