/*
 * moderation_ethtool.h - NIC interrupt coalescing through the ethtool
 * generic netlink family (ETHTOOL_MSG_COALESCE_GET / _SET): the NICs
 * behind PM-3 (docs/PM.md, "Interrupt moderation (PM-3)"); NVMe is in
 * moderation_nvme.h.
 *
 * Raw netlink, not libmnl: the messages are three fixed headers and a few
 * TLVs; what matters is that every reply from the kernel (or from a fake
 * responder in the tests, or from the fuzzer) is bounds-checked by one
 * parser of our own, which libmnl would not do for us (its attribute
 * walkers still leave the type and length checks to the caller), and
 * libthoth gains no link dependency.
 *
 * The handle talks over any datagram-like descriptor: a real
 * NETLINK_GENERIC socket (thoth_ethtool_open) or, for tests, one end of a
 * SOCK_SEQPACKET pair whose other end answers with canned replies
 * (thoth_ethtool_open_fd).
 */
#ifndef THOTH_PM_MODERATION_ETHTOOL_H
#define THOTH_PM_MODERATION_ETHTOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moderation.h"

/* Which coalescing parameters a reply carried: the kernel puts only those
 * the driver supports into a COALESCE_GET reply. */
enum {
	THOTH_COAL_RX_USECS = 1u << 0,
	THOTH_COAL_RX_FRAMES = 1u << 1,
	THOTH_COAL_TX_USECS = 1u << 2,
	THOTH_COAL_TX_FRAMES = 1u << 3,
	THOTH_COAL_ADAPTIVE_RX = 1u << 4,
	THOTH_COAL_ADAPTIVE_TX = 1u << 5,
	THOTH_COAL_SAMPLE_INTERVAL = 1u << 6,
};

typedef struct thoth_coalesce {
	uint32_t present;                 /* THOTH_COAL_* */
	uint32_t ifindex;                 /* from the reply's header (0 if absent) */
	char ifname[16];
	uint32_t rx_usecs, rx_frames, tx_usecs, tx_frames, sample_interval;
	bool adaptive_rx, adaptive_tx;
} thoth_coalesce_t;

typedef struct thoth_ethtool thoth_ethtool_t;

/* A NETLINK_GENERIC socket with the "ethtool" family resolved.  0,
 * THOTH_E_NOT_FOUND (no ethtool netlink in this kernel), THOTH_E_IO. */
int thoth_ethtool_open(thoth_ethtool_t **out, char *why, size_t why_len);
/* The same over FD (taken over: closed by thoth_ethtool_close). */
int thoth_ethtool_open_fd(int fd, thoth_ethtool_t **out, char *why, size_t why_len);
void thoth_ethtool_close(thoth_ethtool_t *h);

/* What IFNAME's driver reports.  THOTH_E_NOT_FOUND (no such device, or
 * the driver has no coalescing), THOTH_E_PROTOCOL (a malformed reply:
 * WHY says what was wrong), THOTH_E_PERM, THOTH_E_IO, THOTH_E_TIMEDOUT. */
int thoth_ethtool_coalesce_get(thoth_ethtool_t *h, const char *ifname, thoth_coalesce_t *out,
			       char *why, size_t why_len);
/* Set the parameters in want->present (only those).  Same errors;
 * THOTH_E_INVAL when the kernel refuses a value (WHY has its message). */
int thoth_ethtool_coalesce_set(thoth_ethtool_t *h, const char *ifname, const thoth_coalesce_t *want,
			       char *why, size_t why_len);

/* ---- pure parts (tests, fuzzer) ---------------------------------------- */

/* Requests: the family lookup and COALESCE_GET / _SET.  Bytes written to
 * *LEN, or THOTH_E_NO_SPACE / THOTH_E_INVAL (name too long). */
int thoth_ethtool_build_family(uint8_t *buf, size_t cap, uint32_t seq, size_t *len);
int thoth_ethtool_build_get(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq, const char *ifname,
			    size_t *len);
int thoth_ethtool_build_set(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq, const char *ifname,
			    const thoth_coalesce_t *want, size_t *len);

/* The checks every netlink reply gets first (length, sequence number, and
 * an error message's code), shared by the ethtool and rtnetlink readers:
 * 0 with *H filled for a message of another type, 1 with *ERR set (0 for
 * an ACK, else a negative errno, unchecked) for NLMSG_ERROR, or
 * THOTH_E_PROTOCOL with WHY. */
struct nlmsghdr;
int thoth_netlink_reply_head(const uint8_t *msg, size_t len, uint32_t seq, struct nlmsghdr *h, int32_t *err,
			     char *why, size_t why_len);
/* A kernel error (positive errno) as a THOTH_E_* code: unsupported or no
 * such device -> NOT_FOUND, permission -> PERM, bad value -> INVAL, else IO. */
int thoth_netlink_errno(int e);

/* Replies.  One datagram of LEN bytes answering request SEQ.
 * parse_family: the family id.  parse_coalesce: the parameters.
 * parse_ack: 0 for an ACK.  Every one: a kernel error reply becomes
 * THOTH_E_NOT_FOUND / _PERM / _INVAL / _IO with its extended-ack message
 * in WHY; anything malformed is THOTH_E_PROTOCOL naming the problem. */
int thoth_ethtool_parse_family(const uint8_t *msg, size_t len, uint32_t seq, uint16_t *family,
			       char *why, size_t why_len);
int thoth_ethtool_parse_coalesce(const uint8_t *msg, size_t len, uint32_t seq, thoth_coalesce_t *out,
				 char *why, size_t why_len);
int thoth_ethtool_parse_ack(const uint8_t *msg, size_t len, uint32_t seq, char *why, size_t why_len);

/* The policy's profile as NIC parameters, limited to what the driver
 * supports (SUPPORTED = a get reply's present): rx-usecs = max_us,
 * rx-frames = max_msgs; an unmoderated profile is {0 us, 1 frame}.  With
 * USE_DRIVER_ADAPTIVE and adaptive-rx offered, the driver's own DIM is
 * switched on instead.  Returns the fields set in out->present. */
uint32_t thoth_ethtool_from_profile(thoth_mod_profile_t p, uint32_t supported, bool use_driver_adaptive,
				    thoth_coalesce_t *out);

/* One line: "rx-usecs 8, rx-frames 256, adaptive-rx off (tx: not supported)". */
void thoth_coalesce_describe(const thoth_coalesce_t *c, char *buf, size_t len);

/* NVMe interrupt coalescing (feature 0x08) is in moderation_nvme.h. */

#endif
