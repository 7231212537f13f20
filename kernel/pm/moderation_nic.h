/*
 * moderation_nic.h - the control loop that drives a NIC's interrupt
 * coalescing from its live counters (PM-3, docs/PM.md "The NIC loop").
 *
 * On a thoth_loop, NAPI's shape one level up:
 *
 *   idle  nothing is sampled and no timer is armed.  An AF_PACKET socket
 *         bound to the interface (received packets only, a one-instruction
 *         classic BPF filter keeping 1 byte) is the "interrupt": the first
 *         packet makes it readable.
 *   busy  the socket's filter is switched to drop everything and it is no
 *         longer watched; a loop timer samples the interface's counters
 *         (rtnetlink RTM_GETLINK, IFLA_STATS64: rx packets and bytes) every
 *         sample period and feeds them to the same policy code the
 *         channels run (moderation.h: adaptive or the DIM port, whose
 *         profiles are net_dim's table).  A changed profile is mapped to
 *         the parameters the driver supports (thoth_ethtool_from_profile)
 *         and applied through ETHTOOL_MSG_COALESCE_SET, then read back.
 *         A sample with no new packet applies the unmoderated profile (so
 *         the next packet after a pause never waits) and goes idle.
 *
 * The device side is a backend (get/set), so the same loop runs against
 * the real ethtool netlink interface or against a fixture that records
 * what it was asked to apply (where the device refuses coalescing, as
 * this VM's virtio NIC does).  Counters and the wake-up on traffic are
 * always the real interface's.
 */
#ifndef THOTH_PM_MODERATION_NIC_H
#define THOTH_PM_MODERATION_NIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moderation.h"
#include "moderation_ethtool.h"
#include "thoth/loop.h"

/* ---- interface counters over rtnetlink ------------------------------------ */

typedef struct thoth_link_stats {
	uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes;
	uint32_t ifindex;
} thoth_link_stats_t;

typedef struct thoth_rtnl thoth_rtnl_t;

/* A NETLINK_ROUTE socket (in the caller's network namespace). */
int thoth_rtnl_open(thoth_rtnl_t **out, char *why, size_t why_len);
void thoth_rtnl_close(thoth_rtnl_t *h);
/* The counters of IFNAME.  THOTH_E_NOT_FOUND (no such interface),
 * THOTH_E_PROTOCOL (a malformed reply), THOTH_E_IO, THOTH_E_TIMEDOUT. */
int thoth_rtnl_link_stats(thoth_rtnl_t *h, const char *ifname, thoth_link_stats_t *out, char *why,
			  size_t why_len);

/* Pure parts (tests, fuzzer). */
int thoth_rtnl_build_getlink(uint8_t *buf, size_t cap, uint32_t seq, const char *ifname, size_t *len);
/* One RTM_NEWLINK (or error) datagram answering SEQ; needs IFLA_STATS64. */
int thoth_rtnl_parse_link_stats(const uint8_t *msg, size_t len, uint32_t seq, thoth_link_stats_t *out,
				char *why, size_t why_len);

/* ---- the device side ------------------------------------------------------- */

typedef struct thoth_nicmod_backend {
	/* What the device reports (its present mask = what it supports). */
	int (*get)(void *arg, const char *ifname, thoth_coalesce_t *out, char *why, size_t why_len);
	/* Apply the fields in want->present; THOTH_E_INVAL or THOTH_E_NOT_FOUND
	 * (EOPNOTSUPP) with WHY when the device refuses. */
	int (*set)(void *arg, const char *ifname, const thoth_coalesce_t *want, char *why, size_t why_len);
	void *arg;
} thoth_nicmod_backend_t;

/* The real one: ethtool netlink (moderation_ethtool.h) on handle H. */
thoth_nicmod_backend_t thoth_nicmod_ethtool_backend(thoth_ethtool_t *h);

/* A fixture device: supports SUPPORTED (THOTH_COAL_*), accepts every
 * value, keeps the current settings and the last NLOG settings applied.
 * For tests and for running the loop where the device refuses. */
#define THOTH_NICMOD_RECORD_LOG 64
typedef struct thoth_nicmod_record {
	thoth_coalesce_t now;
	uint64_t sets;                     /* set calls */
	thoth_coalesce_t log[THOTH_NICMOD_RECORD_LOG];   /* sets % LOG: oldest overwritten */
} thoth_nicmod_record_t;
void thoth_nicmod_record_init(thoth_nicmod_record_t *r, uint32_t supported);
thoth_nicmod_backend_t thoth_nicmod_record_backend(thoth_nicmod_record_t *r);

/* ---- the loop ---------------------------------------------------------------- */

typedef struct thoth_nicmod thoth_nicmod_t;

/* One decision the loop applied (or tried to). */
typedef struct thoth_nicmod_change {
	uint64_t time_ns;                  /* CLOCK_MONOTONIC */
	uint64_t rate;                     /* rx packets/s over the last sample */
	thoth_mod_profile_t profile;       /* what the policy chose */
	thoth_coalesce_t asked;            /* what was sent to the device */
	thoth_coalesce_t readback;         /* what the device reports afterwards (present 0: no read) */
	int err;                           /* 0, or the device's refusal */
	char why[160];
} thoth_nicmod_change_t;

typedef void (*thoth_nicmod_fn)(void *arg, const thoth_nicmod_change_t *c);

typedef struct thoth_nicmod_config {
	const char *ifname;
	thoth_mod_config_t policy;         /* ADAPTIVE or DIM (NONE / FIXED: applied once) */
	uint32_t sample_us;                /* sample period while busy (0 = 10 ms; 1 ms .. 1 s) */
	bool use_driver_adaptive;          /* hand over to the driver's adaptive-rx where offered */
	thoth_nicmod_backend_t backend;
	thoth_nicmod_fn on_change;         /* each applied change (may be NULL) */
	void *arg;
} thoth_nicmod_config_t;

typedef struct thoth_nicmod_stats {
	bool busy;
	uint64_t wakes;                    /* idle -> busy: traffic seen on the packet socket */
	uint64_t samples;                  /* counter reads while busy */
	uint64_t idles;                    /* busy -> idle */
	uint64_t applies, refusals;        /* sets sent / refused */
	uint64_t rate;                     /* rx packets/s at the last sample */
	thoth_mod_profile_t profile;       /* the policy's current profile */
	thoth_coalesce_t device;           /* the device's settings as last read back */
	uint32_t supported;                /* THOTH_COAL_* still driven (refused ones dropped) */
} thoth_nicmod_stats_t;

/* Start on LOOP (its thread runs everything).  Reads the device's
 * settings and starts idle.  THOTH_E_NOT_FOUND (no such interface, or a
 * driver without coalescing), THOTH_E_PERM (the packet socket needs
 * CAP_NET_RAW), THOTH_E_INVAL (bad config), THOTH_E_IO.  WHY says which. */
int thoth_nicmod_start(thoth_loop_t *loop, const thoth_nicmod_config_t *cfg, thoth_nicmod_t **out, char *why,
		       size_t why_len);
/* Stop; leaves the device at the unmoderated profile. */
void thoth_nicmod_stop(thoth_nicmod_t *m);
void thoth_nicmod_stats(const thoth_nicmod_t *m, thoth_nicmod_stats_t *out);

#endif
