/*
 * moderation_nic.c - the NIC coalescing control loop (moderation_nic.h):
 * live counters over rtnetlink, a packet socket as the wake-up on traffic,
 * the moderation policy, and the device through a backend (ethtool netlink
 * or a recording fixture).  Replies from the kernel are parsed with the
 * same care as the ethtool ones: one length-checked walk.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moderation_busy.h"
#include "moderation_ethtool.h"
#include "moderation_nic.h"
#include "thoth/error.h"
#include "backend.h"

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)
enum { NLH = sizeof(struct nlmsghdr), IFI = sizeof(struct ifinfomsg), REPLY_MAX = 32768, REPLY_TIMEOUT_MS = 2000 };

/* ---- rtnetlink: RTM_GETLINK for one interface's counters ------------------- */

struct thoth_rtnl {
	int fd;
	uint32_t seq;
	uint8_t *buf;
};

int thoth_rtnl_build_getlink(uint8_t *buf, size_t cap, uint32_t seq, const char *ifname, size_t *len)
{
	size_t nl = ifname ? strlen(ifname) : 0;
	if (nl == 0 || nl >= 16)
		return THOTH_E_INVAL;
	size_t need = NLH + IFI + ALIGN4(4 + nl + 1);
	if (cap < need)
		return THOTH_E_NO_SPACE;
	memset(buf, 0, need);
	struct nlmsghdr h = { .nlmsg_len = (uint32_t)need, .nlmsg_type = RTM_GETLINK, .nlmsg_flags = NLM_F_REQUEST,
			      .nlmsg_seq = seq };
	memcpy(buf, &h, NLH);
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	memcpy(buf + NLH, &ifi, IFI);
	struct nlattr a = { .nla_len = (uint16_t)(4 + nl + 1), .nla_type = IFLA_IFNAME };
	memcpy(buf + NLH + IFI, &a, 4);
	memcpy(buf + NLH + IFI + 4, ifname, nl);
	*len = need;
	return 0;
}

int thoth_rtnl_parse_link_stats(const uint8_t *msg, size_t len, uint32_t seq, thoth_link_stats_t *out, char *why,
				size_t why_len)
{
	memset(out, 0, sizeof *out);
	struct nlmsghdr h;
	int32_t err;
	int head = thoth_netlink_reply_head(msg, len, seq, &h, &err, why, why_len);
	if (head < 0)
		return head;
	if (head == 1) {
		if (err >= 0 || err < -4095)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink error reply with error code %d to a link request",
				    (int)err);
		return thoth__pm_fail(why, why_len, thoth_netlink_errno(-err), "the kernel answered %s", strerror(-err));
	}
	if (h.nlmsg_type != RTM_NEWLINK)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply of netlink type %u, expected RTM_NEWLINK (%u)",
			    h.nlmsg_type, RTM_NEWLINK);
	if (h.nlmsg_len < NLH + IFI)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "RTM_NEWLINK of %u bytes has no interface header", h.nlmsg_len);
	struct ifinfomsg ifi;
	memcpy(&ifi, msg + NLH, IFI);
	if (ifi.ifi_index <= 0)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "RTM_NEWLINK names interface index %d", ifi.ifi_index);
	out->ifindex = (uint32_t)ifi.ifi_index;
	const uint8_t *p = msg + NLH + IFI;
	size_t left = h.nlmsg_len - NLH - IFI;
	bool found = false;
	while (left >= 4) {
		struct nlattr a;
		memcpy(&a, p, 4);
		if (a.nla_len < 4 || a.nla_len > left)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink attribute %u claims %u bytes where %zu remain",
				    a.nla_type & NLA_TYPE_MASK, a.nla_len, left);
		if ((a.nla_type & NLA_TYPE_MASK) == IFLA_STATS64) {
			/* rx_packets, tx_packets, rx_bytes, tx_bytes lead struct
			 * rtnl_link_stats64; later kernels only append. */
			if (a.nla_len < 4 + 4 * sizeof(uint64_t))
				return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "IFLA_STATS64 of %u bytes, at least 32 expected",
					    a.nla_len - 4u);
			uint64_t v[4];
			memcpy(v, p + 4, sizeof v);
			out->rx_packets = v[0];
			out->tx_packets = v[1];
			out->rx_bytes = v[2];
			out->tx_bytes = v[3];
			found = true;
		}
		size_t step = ALIGN4(a.nla_len);
		if (step >= left)
			break;
		p += step;
		left -= step;
	}
	if (!found)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "RTM_NEWLINK for index %u carries no IFLA_STATS64", out->ifindex);
	return 0;
}

int thoth_rtnl_open(thoth_rtnl_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_rtnl_t *h = calloc(1, sizeof *h);
	uint8_t *buf = malloc(REPLY_MAX);
	if (!h || !buf) {
		free(h);
		free(buf);
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	}
	h->buf = buf;
	h->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (h->fd < 0) {
		int e = errno;
		free(buf);
		free(h);
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "rtnetlink socket: %s", strerror(e));
	}
	*out = h;
	return 0;
}

void thoth_rtnl_close(thoth_rtnl_t *h)
{
	if (!h)
		return;
	close(h->fd);
	free(h->buf);
	free(h);
}

int thoth_rtnl_link_stats(thoth_rtnl_t *h, const char *ifname, thoth_link_stats_t *out, char *why, size_t why_len)
{
	size_t len;
	uint32_t seq = ++h->seq;
	if (thoth_rtnl_build_getlink(h->buf, REPLY_MAX, seq, ifname, &len))
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "interface name \"%s\": 1 to 15 bytes", ifname ? ifname : "");
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(h->fd, h->buf, len, MSG_NOSIGNAL, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)len)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "sending to rtnetlink: %s", strerror(errno));
	for (;;) {
		struct pollfd p = { .fd = h->fd, .events = POLLIN };
		int n = poll(&p, 1, REPLY_TIMEOUT_MS);
		if (n == 0)
			return thoth__pm_fail(why, why_len, THOTH_E_TIMEDOUT, "no rtnetlink reply within %d ms", REPLY_TIMEOUT_MS);
		if (n < 0)
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "waiting for rtnetlink: %s", strerror(errno));
		ssize_t r = recv(h->fd, h->buf, REPLY_MAX, MSG_DONTWAIT | MSG_TRUNC);
		if (r < 0)
			return thoth__pm_fail(why, why_len, THOTH_E_IO, "reading rtnetlink: %s", strerror(errno));
		if ((size_t)r > REPLY_MAX)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "an rtnetlink reply of %zd bytes, more than %d", r,
				    REPLY_MAX);
		/* A late answer to an earlier request that timed out: skip it. */
		struct nlmsghdr nh;
		if ((size_t)r >= NLH) {
			memcpy(&nh, h->buf, NLH);
			if (nh.nlmsg_seq < seq)
				continue;
		}
		return thoth_rtnl_parse_link_stats(h->buf, (size_t)r, seq, out, why, why_len);
	}
}

/* ---- backends ------------------------------------------------------------------ */

static int eth_get(void *arg, const char *ifname, thoth_coalesce_t *out, char *why, size_t why_len)
{
	return thoth_ethtool_coalesce_get(arg, ifname, out, why, why_len);
}

static int eth_set(void *arg, const char *ifname, const thoth_coalesce_t *want, char *why, size_t why_len)
{
	return thoth_ethtool_coalesce_set(arg, ifname, want, why, why_len);
}

thoth_nicmod_backend_t thoth_nicmod_ethtool_backend(thoth_ethtool_t *h)
{
	return (thoth_nicmod_backend_t){ eth_get, eth_set, h };
}

void thoth_nicmod_record_init(thoth_nicmod_record_t *r, uint32_t supported)
{
	memset(r, 0, sizeof *r);
	r->now.present = supported;
	r->now.rx_frames = 1;
}

static int rec_get(void *arg, const char *ifname, thoth_coalesce_t *out, char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	thoth_nicmod_record_t *r = arg;
	*out = r->now;
	snprintf(out->ifname, sizeof out->ifname, "%s", ifname);
	return 0;
}

static int rec_set(void *arg, const char *ifname, const thoth_coalesce_t *want, char *why, size_t why_len)
{
	(void)ifname;
	thoth_nicmod_record_t *r = arg;
	if (want->present & ~r->now.present)
		return thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "the fixture device does not support parameters 0x%x",
			    want->present & ~r->now.present);
	uint32_t p = want->present;
	if (p & THOTH_COAL_RX_USECS)
		r->now.rx_usecs = want->rx_usecs;
	if (p & THOTH_COAL_RX_FRAMES)
		r->now.rx_frames = want->rx_frames;
	if (p & THOTH_COAL_ADAPTIVE_RX)
		r->now.adaptive_rx = want->adaptive_rx;
	if (p & THOTH_COAL_TX_USECS)
		r->now.tx_usecs = want->tx_usecs;
	if (p & THOTH_COAL_TX_FRAMES)
		r->now.tx_frames = want->tx_frames;
	r->log[r->sets % THOTH_NICMOD_RECORD_LOG] = *want;
	r->sets++;
	return 0;
}

thoth_nicmod_backend_t thoth_nicmod_record_backend(thoth_nicmod_record_t *r)
{
	return (thoth_nicmod_backend_t){ rec_get, rec_set, r };
}

/* ---- the loop -------------------------------------------------------------------- */

enum { DIM_EVENTS_PER_SAMPLE = 64, DRAIN_MAX = 256 };
#define DRIVEN (THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES | THOTH_COAL_ADAPTIVE_RX)

struct thoth_nicmod {
	thoth_loop_t *loop;
	thoth_nicmod_config_t cfg;
	char ifname[16];
	thoth_rtnl_t *rtnl;
	int pfd;
	uint32_t ifindex;
	thoth_source_t *src;         /* the packet socket, watched only while idle */
	thoth_timer_t *timer;        /* the sample timer, armed only while busy */
	uint64_t sample_ns;
	thoth_mod_t pol;
	thoth_link_stats_t last;
	uint64_t last_ns, ticks;
	thoth_coalesce_t applied;    /* what was last sent (present 0: nothing yet) */
	thoth_nicmod_stats_t st;
};

static int set_filter(int fd, bool accept)
{
	/* Keep one byte of each packet (all we need: it is a doorbell) or drop
	 * everything in the kernel before it is queued. */
	struct sock_filter insn = BPF_STMT(BPF_RET | BPF_K, accept ? 1u : 0u);
	struct sock_fprog prog = { .len = 1, .filter = &insn };
	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) ? -errno : 0;
}

static void drain(int fd)
{
	uint8_t b[64];
	for (int i = 0; i < DRAIN_MAX; i++)
		if (recv(fd, b, sizeof b, MSG_DONTWAIT | MSG_TRUNC) < 0)
			break;
}

static bool same_settings(const thoth_coalesce_t *a, const thoth_coalesce_t *b)
{
	if (a->present != b->present)
		return false;
	uint32_t p = a->present;
	return (!(p & THOTH_COAL_RX_USECS) || a->rx_usecs == b->rx_usecs) &&
	       (!(p & THOTH_COAL_RX_FRAMES) || a->rx_frames == b->rx_frames) &&
	       (!(p & THOTH_COAL_ADAPTIVE_RX) || a->adaptive_rx == b->adaptive_rx);
}

/* Apply the policy's profile; a device that refuses a parameter stops
 * being asked for it (tried one at a time to find out which). */
static void apply(thoth_nicmod_t *m, bool force)
{
	thoth_nicmod_change_t c = { .time_ns = thoth_clock_now(), .rate = m->st.rate };
	c.profile = thoth_mod_profile(&m->pol);
	m->st.profile = c.profile;
	thoth_ethtool_from_profile(c.profile, m->st.supported, m->cfg.use_driver_adaptive, &c.asked);
	if (!c.asked.present || (!force && same_settings(&c.asked, &m->applied)))
		return;
	m->st.applies++;
	c.err = m->cfg.backend.set(m->cfg.backend.arg, m->ifname, &c.asked, c.why, sizeof c.why);
	if (c.err) {
		m->st.refusals++;
		for (uint32_t bit = 1; bit & DRIVEN; bit <<= 1) {
			if (!(c.asked.present & bit))
				continue;
			thoth_coalesce_t one = c.asked;
			one.present = bit;
			char why[160];
			if (m->cfg.backend.set(m->cfg.backend.arg, m->ifname, &one, why, sizeof why))
				m->st.supported &= ~bit;
		}
	}
	m->applied = c.asked;
	if (!m->cfg.backend.get(m->cfg.backend.arg, m->ifname, &c.readback, NULL, 0))
		m->st.device = c.readback;
	if (m->cfg.on_change)
		m->cfg.on_change(m->cfg.arg, &c);
}

static void go_idle(thoth_nicmod_t *m);

static void on_sample(thoth_loop_t *loop, thoth_timer_t *t, void *arg)
{
	(void)t;
	thoth_nicmod_t *m = arg;
	thoth_link_stats_t now;
	if (thoth_rtnl_link_stats(m->rtnl, m->ifname, &now, NULL, 0)) {
		go_idle(m);              /* the interface went away or rtnetlink failed: wait for traffic */
		return;
	}
	uint64_t t_ns = thoth_clock_now();
	m->st.samples++;
	bool quiet = now.rx_packets <= m->last.rx_packets;   /* no packet (or the counters restarted) */
	uint64_t dp = quiet ? 0 : now.rx_packets - m->last.rx_packets, dt = t_ns - m->last_ns;
	m->last = now;
	m->last_ns = t_ns;
	if (quiet) {
		go_idle(m);
		return;
	}
	m->st.rate = dt ? dp * 1000000000u / dt : 0;
	m->ticks++;
	/* One sample is one DIM measurement: the counters carry no interrupt
	 * count, so each sample stands for DIM's 64 events. */
	thoth_mod_sample_t s = { t_ns, m->ticks * DIM_EVENTS_PER_SAMPLE, now.rx_packets, now.rx_bytes };
	thoth_mod_update(&m->pol, &s);
	apply(m, false);
	thoth_timer_rearm(loop, m->timer, t_ns + m->sample_ns, m->sample_ns / 8);
}

static void on_traffic(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg);

static void go_busy(thoth_nicmod_t *m)
{
	if (m->src) {
		thoth_loop_remove_fd(m->loop, m->src);
		m->src = NULL;
	}
	set_filter(m->pfd, false);
	drain(m->pfd);
	m->st.busy = true;
	m->st.wakes++;
	uint64_t t_ns = thoth_clock_now();
	thoth_link_stats_t now;
	if (!thoth_rtnl_link_stats(m->rtnl, m->ifname, &now, NULL, 0))
		m->last = now;
	m->last_ns = t_ns;
	m->ticks = 0;
	thoth_mod_sample_t s = { t_ns, 0, m->last.rx_packets, m->last.rx_bytes };
	thoth__mod_busy_begin(&m->pol, &m->cfg.policy, &s, m->loop, &m->timer, m->sample_ns, on_sample, m);
}

static void on_traffic(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)fd;
	(void)events;
	go_busy(arg);
}

static void go_idle(thoth_nicmod_t *m)
{
	if (m->timer) {
		thoth_timer_cancel(m->loop, m->timer);
		m->timer = NULL;
	}
	m->st.busy = false;
	m->st.idles++;
	m->st.rate = 0;
	/* The traffic stopped: back to the policy's start (unmoderated for
	 * ours), so the first packet after the pause does not wait. */
	thoth_mod_init(&m->pol, &m->cfg.policy);
	apply(m, false);
	drain(m->pfd);
	set_filter(m->pfd, true);
	if (!m->src)
		thoth_loop_add_fd(m->loop, m->pfd, THOTH_LOOP_READ, on_traffic, m, &m->src);
	/* Packets that arrived after the last sample but before the filter
	 * let them through rang no bell: the counters tell. */
	thoth_link_stats_t now;
	if (!thoth_rtnl_link_stats(m->rtnl, m->ifname, &now, NULL, 0) && now.rx_packets != m->last.rx_packets)
		go_busy(m);
}

int thoth_nicmod_start(thoth_loop_t *loop, const thoth_nicmod_config_t *cfg, thoth_nicmod_t **out, char *why,
		       size_t why_len)
{
	*out = NULL;
	if (!loop || !cfg || !cfg->ifname || !cfg->backend.get || !cfg->backend.set)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "a loop, an interface and a backend are needed");
	size_t nl = strlen(cfg->ifname);
	if (nl == 0 || nl >= 16)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "interface name \"%s\": 1 to 15 bytes", cfg->ifname);
	uint32_t sample_us = cfg->sample_us ? cfg->sample_us : 10000;
	if (sample_us < 1000 || sample_us > 1000000)
		return thoth__pm_fail(why, why_len, THOTH_E_INVAL, "sample period %u us: 1000 to 1000000", sample_us);
	thoth_nicmod_t *m = calloc(1, sizeof *m);
	if (!m)
		return thoth__pm_fail(why, why_len, THOTH_E_NOMEM, "out of memory");
	m->loop = loop;
	m->cfg = *cfg;
	memcpy(m->ifname, cfg->ifname, nl + 1);
	m->cfg.ifname = m->ifname;
	m->sample_ns = (uint64_t)sample_us * 1000u;
	m->pfd = -1;
	int r = thoth_mod_init(&m->pol, &cfg->policy);
	if (r) {
		thoth__pm_fail(why, why_len, r, "bad moderation policy (kind %d)", (int)cfg->policy.kind);
		goto out;
	}
	r = thoth_rtnl_open(&m->rtnl, why, why_len);
	if (r)
		goto out;
	thoth_link_stats_t st;
	char swhy[200];
	r = thoth_rtnl_link_stats(m->rtnl, m->ifname, &st, swhy, sizeof swhy);
	if (r) {
		thoth__pm_fail(why, why_len, r, "%s: reading its counters: %s", m->ifname, swhy);
		goto out;
	}
	m->ifindex = st.ifindex;
	m->last = st;
	thoth_coalesce_t dev;
	char dwhy[200];
	r = cfg->backend.get(cfg->backend.arg, m->ifname, &dev, dwhy, sizeof dwhy);
	if (r) {
		thoth__pm_fail(why, why_len, r, "%s: reading its coalescing: %s", m->ifname, dwhy);
		goto out;
	}
	m->st.device = dev;
	m->st.supported = dev.present & DRIVEN;
	if (!m->st.supported) {
		r = thoth__pm_fail(why, why_len, THOTH_E_NOT_FOUND, "%s: the driver offers no rx coalescing parameter", m->ifname);
		goto out;
	}
	m->pfd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->pfd < 0) {
		int e = errno;
		r = thoth__pm_fail(why, why_len, e == EPERM || e == EACCES ? THOTH_E_PERM : THOTH_E_IO,
			 "packet socket (the wake-up on traffic, needs CAP_NET_RAW): %s", strerror(e));
		goto out;
	}
	int one = 1, small = 1024;
	/* Filter first, bind second: nothing is queued before the filter. */
	if (set_filter(m->pfd, false) || setsockopt(m->pfd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) ||
	    setsockopt(m->pfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small)) {
		r = thoth__pm_fail(why, why_len, THOTH_E_IO, "packet socket options: %s", strerror(errno));
		goto out;
	}
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = (int)m->ifindex };
	if (bind(m->pfd, (struct sockaddr *)&sll, sizeof sll)) {
		r = thoth__pm_fail(why, why_len, THOTH_E_IO, "binding the packet socket to %s: %s", m->ifname, strerror(errno));
		goto out;
	}
	/* A known state: the policy's start profile, whatever was set before. */
	apply(m, true);
	m->st.idles = 0;
	go_idle(m);
	m->st.idles = 0;
	*out = m;
	return 0;
out:
	if (m->pfd >= 0)
		close(m->pfd);
	thoth_rtnl_close(m->rtnl);
	free(m);
	return r;
}

void thoth_nicmod_stop(thoth_nicmod_t *m)
{
	if (!m)
		return;
	if (m->timer)
		thoth_timer_cancel(m->loop, m->timer);
	if (m->src)
		thoth_loop_remove_fd(m->loop, m->src);
	thoth_mod_init(&m->pol, &m->cfg.policy);
	m->st.rate = 0;
	apply(m, false);
	close(m->pfd);
	thoth_rtnl_close(m->rtnl);
	free(m);
}

void thoth_nicmod_stats(const thoth_nicmod_t *m, thoth_nicmod_stats_t *out)
{
	*out = m->st;
}
