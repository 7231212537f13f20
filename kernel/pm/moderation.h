/*
 * moderation.h - interrupt moderation policies (PM-3): how long a producer
 * may defer waking its consumer, chosen from what the consumer measured.
 *
 * Pure: no clock, no I/O.  The caller feeds cumulative counters at each
 * consumer wake-up ("event": the consumer was woken by a doorbell or by its
 * own moderation timer) and reads back a profile {max_msgs, max_us}: the
 * producer may leave up to max_msgs messages unannounced, the consumer
 * wakes by itself max_us after it went to sleep.  max_msgs <= 1 or
 * max_us == 0 means "no moderation: one wake-up per message".  The same
 * policies drive the channels (kernel/ipc/chan_shm.c) and the NIC backend
 * (moderation_ethtool.c: rx-usecs / rx-frames).  docs/PM.md, "Interrupt
 * moderation (PM-3)", gives the design and the proof that no message
 * waits beyond the cap.
 *
 *   none      always {1, 0}
 *   fixed     always the configured {N, T}
 *   dim       a faithful port of Linux lib/dim (net_dim.c, dim.c): every
 *             64 events it compares bytes, packets, then events per ms of
 *             this sample with the previous one (10% threshold), walks the
 *             5 RX EQE profiles {1,8,64,128,256} us x 256 packets left or
 *             right, parks on top or tired.  Starts at profile 1 as
 *             NET_DIM_DEF_PROFILE_EQE.
 *   adaptive  ours: the rate is the producer's, not something moderation
 *             changes, so measure it (window of 1 ms or 64 events,
 *             whichever ends first) and compute the profile from it:
 *             below 20k msg/s no moderation at all (a timer that expires
 *             before the next message only adds latency and wake-ups);
 *             above, spend the latency budget (fixed.max_us, default 256
 *             us = DIM's top profile) up to 256 messages a wake-up:
 *             T = min(budget, 256 messages' worth), at least 10 us,
 *             N = 256.  A change under 10% is ignored (as DIM's).
 */
#ifndef THOTH_PM_MODERATION_H
#define THOTH_PM_MODERATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Same values as thoth_chan_moderation_t (thoth/channel.h). */
typedef enum thoth_mod_kind {
	THOTH_MOD_NONE = 0,
	THOTH_MOD_FIXED = 1,
	THOTH_MOD_DIM = 2,
	THOTH_MOD_ADAPTIVE = 3,
} thoth_mod_kind_t;

/* Caps every consumer of a profile enforces (a channel producer reads the
 * profile from memory its peer writes): more is clamped to these. */
#define THOTH_MOD_MAX_MSGS 256u
#define THOTH_MOD_MAX_US   1000u

typedef struct thoth_mod_profile {
	uint32_t max_msgs;   /* messages a producer may leave unannounced (<= 1: none) */
	uint32_t max_us;     /* the consumer wakes by itself this long after sleeping (0: never) */
} thoth_mod_profile_t;

/* Cumulative counters at one event, as the consumer sees them. */
typedef struct thoth_mod_sample {
	uint64_t time_ns;    /* CLOCK_MONOTONIC */
	uint64_t events;     /* wake-ups so far */
	uint64_t msgs;       /* messages consumed so far */
	uint64_t bytes;      /* their bytes */
} thoth_mod_sample_t;

typedef struct thoth_mod_config {
	thoth_mod_kind_t kind;
	thoth_mod_profile_t fixed;   /* FIXED: the profile; ADAPTIVE: max_us = latency budget (0: 256) */
} thoth_mod_config_t;

typedef struct thoth_mod_dim_stats { uint32_t ppms, bpms, epms; } thoth_mod_dim_stats_t;

/* The state of Linux's struct dim that net_dim uses. */
typedef struct thoth_mod_dim {
	uint8_t state;               /* DIM_START_MEASURE, DIM_MEASURE_IN_PROGRESS */
	uint8_t tune_state;          /* parking on top / tired, going right / left */
	uint8_t profile_ix;
	uint8_t steps_right, steps_left, tired;
	struct { uint64_t time_ns; uint16_t event_ctr; uint32_t pkt_ctr, byte_ctr; } start;
	thoth_mod_dim_stats_t prev;
} thoth_mod_dim_t;

typedef struct thoth_mod {
	thoth_mod_config_t cfg;
	thoth_mod_profile_t cur;
	uint64_t changes;            /* profile changes so far */
	uint64_t rate;               /* adaptive: last measured msg/s */
	thoth_mod_sample_t win;      /* adaptive: where the current window began */
	bool win_started;
	thoth_mod_dim_t dim;
} thoth_mod_t;

/* THOTH_E_INVAL for an unknown kind or a fixed profile beyond the caps. */
int thoth_mod_init(thoth_mod_t *m, const thoth_mod_config_t *cfg);

/* One event with the counters as they are now.  Returns true when the
 * profile changed.  Counters that go backwards are treated as a restart
 * of the measurement, never as a huge rate. */
bool thoth_mod_update(thoth_mod_t *m, const thoth_mod_sample_t *s);

static inline thoth_mod_profile_t thoth_mod_profile(const thoth_mod_t *m) { return m->cur; }
static inline bool thoth_mod_profile_defers(thoth_mod_profile_t p) { return p.max_msgs > 1 && p.max_us > 0; }

/* The 5 RX EQE profiles of Linux net_dim, as {max_msgs, max_us}. */
thoth_mod_profile_t thoth_mod_dim_profile(unsigned ix);

/* "none", "fixed", "dim", "adaptive"; parse returns THOTH_E_INVAL for others. */
const char *thoth_mod_kind_name(thoth_mod_kind_t k);
int thoth_mod_kind_parse(const char *s, thoth_mod_kind_t *out);

/* Clamp a profile read from an untrusted place to the caps. */
thoth_mod_profile_t thoth_mod_clamp(thoth_mod_profile_t p);

#endif
