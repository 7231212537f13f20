/*
 * moderation_busy.c - the start of a busy period (moderation_busy.h).
 */
#include "moderation_busy.h"

void thoth__mod_busy_begin(thoth_mod_t *pol, const thoth_mod_config_t *cfg, const thoth_mod_sample_t *s,
			   thoth_loop_t *loop, thoth_timer_t **timer, uint64_t sample_ns, thoth_timer_fn fn,
			   void *arg)
{
	thoth_mod_init(pol, cfg);
	thoth_mod_update(pol, s);
	if (*timer)
		thoth_timer_rearm(loop, *timer, s->time_ns + sample_ns, sample_ns / 8);
	else
		thoth_loop_add_timer(loop, s->time_ns + sample_ns, sample_ns / 8, fn, arg, timer);
}
