/*
 * moderation_ethtool.c - NIC coalescing over ethtool generic netlink
 * (moderation_ethtool.h).  Every byte of a
 * reply is treated as hostile: one length-checked walk, every attribute's
 * size checked against its type before it is read.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moderation_ethtool.h"
#include "thoth/error.h"
#include "backend.h"

#define ALIGN4(n) (((n) + 3u) & ~(size_t)3u)
enum { NLH = sizeof(struct nlmsghdr), GENLH = sizeof(struct genlmsghdr), NLA = sizeof(struct nlattr),
       REPLY_MAX = 8192, REPLY_TIMEOUT_MS = 2000 };

struct thoth_ethtool {
	int fd;
	uint16_t family;
	uint32_t seq;
};

/* ---- building ------------------------------------------------------------ */

typedef struct wbuf {
	uint8_t *p;
	size_t cap, off;
	bool overflow;
} wbuf_t;

static size_t put(wbuf_t *w, const void *data, size_t len)
{
	size_t at = w->off, need = ALIGN4(len);
	if (w->overflow || need > w->cap - w->off) {
		w->overflow = true;
		return at;
	}
	memcpy(w->p + at, data, len);
	memset(w->p + at + len, 0, need - len);
	w->off += need;
	return at;
}

static void put_attr(wbuf_t *w, uint16_t type, const void *data, size_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA + len), .nla_type = type };
	if (w->overflow || ALIGN4(NLA + len) > w->cap - w->off) {
		w->overflow = true;
		return;
	}
	memcpy(w->p + w->off, &a, NLA);
	w->off += NLA;
	put(w, data, len);
}

static size_t nest_begin(wbuf_t *w, uint16_t type)
{
	struct nlattr a = { .nla_len = 0, .nla_type = (uint16_t)(type | NLA_F_NESTED) };
	return put(w, &a, NLA);
}

static void nest_end(wbuf_t *w, size_t at)
{
	if (w->overflow)
		return;
	uint16_t len = (uint16_t)(w->off - at);
	memcpy(w->p + at, &len, sizeof len);
}

static void begin(wbuf_t *w, uint8_t *buf, size_t cap, uint16_t type, uint16_t flags, uint32_t seq, uint8_t cmd,
		  uint8_t version)
{
	*w = (wbuf_t){ .p = buf, .cap = cap };
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq };
	struct genlmsghdr g = { .cmd = cmd, .version = version };
	put(w, &h, NLH);
	put(w, &g, GENLH);
}

static int finish(wbuf_t *w, size_t *len)
{
	if (w->overflow)
		return THOTH_E_NO_SPACE;
	uint32_t n = (uint32_t)w->off;
	memcpy(w->p, &n, sizeof n);         /* nlmsg_len */
	*len = w->off;
	return 0;
}

int thoth_ethtool_build_family(uint8_t *buf, size_t cap, uint32_t seq, size_t *len)
{
	wbuf_t w;
	begin(&w, buf, cap, GENL_ID_CTRL, NLM_F_REQUEST, seq, CTRL_CMD_GETFAMILY, 1);
	put_attr(&w, CTRL_ATTR_FAMILY_NAME, ETHTOOL_GENL_NAME, sizeof ETHTOOL_GENL_NAME);
	return finish(&w, len);
}

static int put_header(wbuf_t *w, const char *ifname)
{
	size_t n = ifname ? strlen(ifname) : 0;
	if (!n || n >= 16)
		return THOTH_E_INVAL;
	size_t at = nest_begin(w, ETHTOOL_A_COALESCE_HEADER);
	put_attr(w, ETHTOOL_A_HEADER_DEV_NAME, ifname, n + 1);
	nest_end(w, at);
	return 0;
}

int thoth_ethtool_build_get(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq, const char *ifname,
			    size_t *len)
{
	wbuf_t w;
	begin(&w, buf, cap, family, NLM_F_REQUEST, seq, ETHTOOL_MSG_COALESCE_GET, ETHTOOL_GENL_VERSION);
	if (put_header(&w, ifname))
		return THOTH_E_INVAL;
	return finish(&w, len);
}

int thoth_ethtool_build_set(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq, const char *ifname,
			    const thoth_coalesce_t *want, size_t *len)
{
	wbuf_t w;
	begin(&w, buf, cap, family, NLM_F_REQUEST | NLM_F_ACK, seq, ETHTOOL_MSG_COALESCE_SET, ETHTOOL_GENL_VERSION);
	if (put_header(&w, ifname))
		return THOTH_E_INVAL;
	uint32_t p = want->present;
	if (p & THOTH_COAL_RX_USECS)
		put_attr(&w, ETHTOOL_A_COALESCE_RX_USECS, &want->rx_usecs, 4);
	if (p & THOTH_COAL_RX_FRAMES)
		put_attr(&w, ETHTOOL_A_COALESCE_RX_MAX_FRAMES, &want->rx_frames, 4);
	if (p & THOTH_COAL_TX_USECS)
		put_attr(&w, ETHTOOL_A_COALESCE_TX_USECS, &want->tx_usecs, 4);
	if (p & THOTH_COAL_TX_FRAMES)
		put_attr(&w, ETHTOOL_A_COALESCE_TX_MAX_FRAMES, &want->tx_frames, 4);
	if (p & THOTH_COAL_SAMPLE_INTERVAL)
		put_attr(&w, ETHTOOL_A_COALESCE_RATE_SAMPLE_INTERVAL, &want->sample_interval, 4);
	uint8_t b;
	if (p & THOTH_COAL_ADAPTIVE_RX) {
		b = want->adaptive_rx;
		put_attr(&w, ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, &b, 1);
	}
	if (p & THOTH_COAL_ADAPTIVE_TX) {
		b = want->adaptive_tx;
		put_attr(&w, ETHTOOL_A_COALESCE_USE_ADAPTIVE_TX, &b, 1);
	}
	return finish(&w, len);
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct attr_it {
	const uint8_t *p;
	size_t left;
} attr_it_t;

/* Next attribute: 1 with TYPE / DATA / DLEN, 0 at the end, or
 * THOTH_E_PROTOCOL for an attribute that does not fit. */
static int attr_next(attr_it_t *it, uint16_t *type, const uint8_t **data, size_t *dlen, char *why, size_t why_len)
{
	/* set on every return: callers read them only on 1, but at -O3 GCC
	 * cannot see that the error returns are never 1 */
	*type = 0;
	*data = NULL;
	*dlen = 0;
	if (it->left == 0)
		return 0;
	if (it->left < NLA)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "%zu stray bytes after the last netlink attribute", it->left);
	struct nlattr a;
	memcpy(&a, it->p, NLA);
	if (a.nla_len < NLA || a.nla_len > it->left)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink attribute %u claims %u bytes where %zu remain",
			    a.nla_type & NLA_TYPE_MASK, a.nla_len, it->left);
	*type = a.nla_type & NLA_TYPE_MASK;
	*data = it->p + NLA;
	*dlen = a.nla_len - NLA;
	size_t step = ALIGN4(a.nla_len);
	if (step > it->left)
		step = it->left;
	it->p += step;
	it->left -= step;
	return 1;
}

static int get_u32(const char *name, const uint8_t *d, size_t n, uint32_t *v, char *why, size_t why_len)
{
	if (n != 4)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "attribute %s is %zu bytes, a u32 is 4", name, n);
	memcpy(v, d, 4);
	return 0;
}

static int get_u8(const char *name, const uint8_t *d, size_t n, uint8_t *v, char *why, size_t why_len)
{
	if (n != 1)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "attribute %s is %zu bytes, a u8 is 1", name, n);
	*v = d[0];
	return 0;
}

int thoth_netlink_errno(int e)
{
	switch (e) {
	case EOPNOTSUPP: case ENODEV: case ENOENT:
		return THOTH_E_NOT_FOUND;
	case EPERM: case EACCES:
		return THOTH_E_PERM;
	case EINVAL: case ERANGE:
		return THOTH_E_INVAL;
	default:
		return THOTH_E_IO;
	}
}

/*
 * The one message of a reply: its header checked against LEN and SEQ.
 * Returns 1 with the genetlink payload (after the genl header) in *ATTRS
 * when it is a TYPE/CMD message, 0 for an ACK, or an error: a kernel error
 * reply (with its extended-ack text) or THOTH_E_PROTOCOL.
 */
int thoth_netlink_reply_head(const uint8_t *msg, size_t len, uint32_t seq, struct nlmsghdr *h, int32_t *err,
			     char *why, size_t why_len)
{
	if (len < NLH)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "a reply of %zu bytes is shorter than a netlink header", len);
	memcpy(h, msg, NLH);
	if (h->nlmsg_len < NLH || h->nlmsg_len > len)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink message length %u outside the %zu bytes received",
			    h->nlmsg_len, len);
	if (h->nlmsg_seq != seq)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply to request %u, we sent %u", h->nlmsg_seq, seq);
	if (h->nlmsg_type != NLMSG_ERROR)
		return 0;
	if (h->nlmsg_len < NLH + sizeof *err)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink error reply of %u bytes has no error code",
			    h->nlmsg_len);
	memcpy(err, msg + NLH, sizeof *err);
	return 1;
}

static int parse_msg(const uint8_t *msg, size_t len, uint32_t seq, uint16_t type, uint8_t cmd, attr_it_t *attrs,
		     char *why, size_t why_len)
{
	struct nlmsghdr h;
	int32_t err;
	int head = thoth_netlink_reply_head(msg, len, seq, &h, &err, why, why_len);
	if (head < 0)
		return head;
	if (head == 1) {
		if (err == 0)
			return 0;
		if (err > 0 || err < -4095)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "netlink error reply with error code %d", (int)err);
		/* The kernel's own words, when it sent extended-ack TLVs. */
		char text[160] = "";
		if (h.nlmsg_flags & NLM_F_ACK_TLVS) {
			size_t off = NLH + sizeof(struct nlmsgerr);
			if (!(h.nlmsg_flags & NLM_F_CAPPED) && h.nlmsg_len >= off) {
				struct nlmsghdr inner;
				memcpy(&inner, msg + NLH + sizeof err, NLH);
				off = NLH + sizeof err + ALIGN4(inner.nlmsg_len);
			}
			if (off < h.nlmsg_len) {
				attr_it_t it = { msg + off, h.nlmsg_len - off };
				uint16_t t;
				const uint8_t *d;
				size_t n;
				char ignore[8];
				while (attr_next(&it, &t, &d, &n, ignore, sizeof ignore) == 1)
					if (t == NLMSGERR_ATTR_MSG && n > 0)
						snprintf(text, sizeof text, ": %.*s", (int)strnlen((const char *)d, n), d);
			}
		}
		return thoth__pm_fail(why, why_len, thoth_netlink_errno(-err), "the kernel answered %s%s", strerror(-err), text);
	}
	if (h.nlmsg_type != type)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply of netlink type %u, expected %u", h.nlmsg_type, type);
	if (h.nlmsg_len < NLH + GENLH)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply of %u bytes has no generic netlink header", h.nlmsg_len);
	struct genlmsghdr g;
	memcpy(&g, msg + NLH, GENLH);
	if (g.cmd != cmd)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply carries command %u, expected %u", g.cmd, cmd);
	*attrs = (attr_it_t){ msg + NLH + GENLH, h.nlmsg_len - NLH - GENLH };
	return 1;
}

int thoth_ethtool_parse_family(const uint8_t *msg, size_t len, uint32_t seq, uint16_t *family, char *why,
			       size_t why_len)
{
	attr_it_t it;
	int r = parse_msg(msg, len, seq, GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, &it, why, why_len);
	if (r <= 0)
		return r == 0 ? thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "an ACK where the family was expected") : r;
	uint16_t t;
	const uint8_t *d;
	size_t n;
	bool found = false;
	while ((r = attr_next(&it, &t, &d, &n, why, why_len)) == 1) {
		if (t != CTRL_ATTR_FAMILY_ID)
			continue;
		if (n != 2)
			return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "family id attribute is %zu bytes, a u16 is 2", n);
		memcpy(family, d, 2);
		found = true;
	}
	if (r < 0)
		return r;
	if (!found || !*family)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "the family reply carries no family id");
	return 0;
}

static int parse_header(const uint8_t *d, size_t n, thoth_coalesce_t *out, char *why, size_t why_len)
{
	attr_it_t it = { d, n };
	uint16_t t;
	const uint8_t *v;
	size_t vn;
	int r;
	while ((r = attr_next(&it, &t, &v, &vn, why, why_len)) == 1) {
		if (t == ETHTOOL_A_HEADER_DEV_INDEX) {
			if ((r = get_u32("header dev-index", v, vn, &out->ifindex, why, why_len)))
				return r;
		} else if (t == ETHTOOL_A_HEADER_DEV_NAME) {
			size_t l = strnlen((const char *)v, vn);
			if (l == vn || l >= sizeof out->ifname)
				return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL,
					    "header dev-name is not a NUL-terminated name of at most 15 bytes");
			memcpy(out->ifname, v, l + 1);
		}
	}
	return r;
}

int thoth_ethtool_parse_coalesce(const uint8_t *msg, size_t len, uint32_t seq, thoth_coalesce_t *out,
				 char *why, size_t why_len)
{
	memset(out, 0, sizeof *out);
	if (len < NLH)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "a reply of %zu bytes is shorter than a netlink header", len);
	struct nlmsghdr h;
	memcpy(&h, msg, NLH);
	attr_it_t it;
	/* The type is the ethtool family's id, which the caller knows and
	 * checks (thoth_ethtool_coalesce_get); here: not a control message. */
	if (h.nlmsg_type != NLMSG_ERROR && (h.nlmsg_type < NLMSG_MIN_TYPE || h.nlmsg_type == GENL_ID_CTRL))
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply of netlink type %u, not the ethtool family's",
			    h.nlmsg_type);
	int r = parse_msg(msg, len, seq, h.nlmsg_type, ETHTOOL_MSG_COALESCE_GET_REPLY, &it, why, why_len);
	if (r <= 0)
		return r == 0 ? thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "an ACK where coalescing parameters were expected") : r;
	uint16_t t;
	const uint8_t *d;
	size_t n;
	uint8_t b = 0;
	while ((r = attr_next(&it, &t, &d, &n, why, why_len)) == 1) {
		int e = 0;
		switch (t) {
		case ETHTOOL_A_COALESCE_HEADER:
			e = parse_header(d, n, out, why, why_len);
			break;
		case ETHTOOL_A_COALESCE_RX_USECS:
			e = get_u32("rx-usecs", d, n, &out->rx_usecs, why, why_len);
			out->present |= THOTH_COAL_RX_USECS;
			break;
		case ETHTOOL_A_COALESCE_RX_MAX_FRAMES:
			e = get_u32("rx-frames", d, n, &out->rx_frames, why, why_len);
			out->present |= THOTH_COAL_RX_FRAMES;
			break;
		case ETHTOOL_A_COALESCE_TX_USECS:
			e = get_u32("tx-usecs", d, n, &out->tx_usecs, why, why_len);
			out->present |= THOTH_COAL_TX_USECS;
			break;
		case ETHTOOL_A_COALESCE_TX_MAX_FRAMES:
			e = get_u32("tx-frames", d, n, &out->tx_frames, why, why_len);
			out->present |= THOTH_COAL_TX_FRAMES;
			break;
		case ETHTOOL_A_COALESCE_RATE_SAMPLE_INTERVAL:
			e = get_u32("sample-interval", d, n, &out->sample_interval, why, why_len);
			out->present |= THOTH_COAL_SAMPLE_INTERVAL;
			break;
		case ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX:
			e = get_u8("adaptive-rx", d, n, &b, why, why_len);
			out->adaptive_rx = b != 0;
			out->present |= THOTH_COAL_ADAPTIVE_RX;
			break;
		case ETHTOOL_A_COALESCE_USE_ADAPTIVE_TX:
			e = get_u8("adaptive-tx", d, n, &b, why, why_len);
			out->adaptive_tx = b != 0;
			out->present |= THOTH_COAL_ADAPTIVE_TX;
			break;
		default:
			break;          /* parameters we do not drive */
		}
		if (e)
			return e;
	}
	return r;
}

int thoth_ethtool_parse_ack(const uint8_t *msg, size_t len, uint32_t seq, char *why, size_t why_len)
{
	attr_it_t it;
	int r = parse_msg(msg, len, seq, NLMSG_ERROR, 0, &it, why, why_len);
	return r == 1 ? thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "expected an ACK") : r;
}

/* ---- the transport ------------------------------------------------------- */

static int exchange(thoth_ethtool_t *h, const uint8_t *req, size_t len, uint8_t *reply, size_t *rlen, char *why,
		    size_t why_len)
{
	if (send(h->fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "sending to netlink: %s", strerror(errno));
	struct pollfd p = { .fd = h->fd, .events = POLLIN };
	int n = poll(&p, 1, REPLY_TIMEOUT_MS);
	if (n == 0)
		return thoth__pm_fail(why, why_len, THOTH_E_TIMEDOUT, "no netlink reply within %d ms", REPLY_TIMEOUT_MS);
	if (n < 0)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "waiting for netlink: %s", strerror(errno));
	ssize_t r = recv(h->fd, reply, REPLY_MAX, MSG_DONTWAIT | MSG_TRUNC);
	if (r < 0)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "reading netlink: %s", strerror(errno));
	if (r == 0)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "the netlink peer closed");
	if ((size_t)r > REPLY_MAX)
		return thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "a netlink reply of %zd bytes, more than %d", r, REPLY_MAX);
	*rlen = (size_t)r;
	return 0;
}

int thoth_ethtool_open_fd(int fd, thoth_ethtool_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_ethtool_t *h = calloc(1, sizeof *h);
	uint8_t *buf = malloc(REPLY_MAX);
	if (!h || !buf) {
		free(h);
		free(buf);
		close(fd);
		return THOTH_E_NOMEM;
	}
	h->fd = fd;
	h->seq = 1;
	size_t len, rlen;
	int r = thoth_ethtool_build_family(buf, REPLY_MAX, h->seq, &len);
	if (!r)
		r = exchange(h, buf, len, buf, &rlen, why, why_len);
	if (!r)
		r = thoth_ethtool_parse_family(buf, rlen, h->seq, &h->family, why, why_len);
	free(buf);
	if (r) {
		if (r == THOTH_E_NOT_FOUND)
			thoth__pm_fail(why, why_len, r, "this kernel has no ethtool netlink family");
		thoth_ethtool_close(h);
		return r;
	}
	*out = h;
	return 0;
}

int thoth_ethtool_open(thoth_ethtool_t **out, char *why, size_t why_len)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0)
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "netlink socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (connect(fd, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
		int e = errno;
		close(fd);
		return thoth__pm_fail(why, why_len, THOTH_E_IO, "netlink connect: %s", strerror(e));
	}
	return thoth_ethtool_open_fd(fd, out, why, why_len);
}

void thoth_ethtool_close(thoth_ethtool_t *h)
{
	if (!h)
		return;
	close(h->fd);
	free(h);
}

int thoth_ethtool_coalesce_get(thoth_ethtool_t *h, const char *ifname, thoth_coalesce_t *out, char *why,
			       size_t why_len)
{
	uint8_t *buf = malloc(REPLY_MAX);
	if (!buf)
		return THOTH_E_NOMEM;
	size_t len, rlen;
	uint32_t seq = ++h->seq;
	int r = thoth_ethtool_build_get(buf, REPLY_MAX, h->family, seq, ifname, &len);
	if (r)
		r = thoth__pm_fail(why, why_len, r, "interface name \"%s\": 1 to 15 bytes", ifname ? ifname : "");
	if (!r)
		r = exchange(h, buf, len, buf, &rlen, why, why_len);
	if (!r) {
		struct nlmsghdr nh = { 0 };
		if (rlen >= NLH)
			memcpy(&nh, buf, NLH);
		if (rlen >= NLH && nh.nlmsg_type != h->family && nh.nlmsg_type != NLMSG_ERROR)
			r = thoth__pm_fail(why, why_len, THOTH_E_PROTOCOL, "reply of netlink type %u, the ethtool family is %u",
				 nh.nlmsg_type, h->family);
		else
			r = thoth_ethtool_parse_coalesce(buf, rlen, seq, out, why, why_len);
	}
	free(buf);
	return r;
}

int thoth_ethtool_coalesce_set(thoth_ethtool_t *h, const char *ifname, const thoth_coalesce_t *want, char *why,
			       size_t why_len)
{
	uint8_t *buf = malloc(REPLY_MAX);
	if (!buf)
		return THOTH_E_NOMEM;
	size_t len, rlen;
	uint32_t seq = ++h->seq;
	int r = thoth_ethtool_build_set(buf, REPLY_MAX, h->family, seq, ifname, want, &len);
	if (r)
		r = thoth__pm_fail(why, why_len, r, "interface name \"%s\": 1 to 15 bytes", ifname ? ifname : "");
	if (!r)
		r = exchange(h, buf, len, buf, &rlen, why, why_len);
	if (!r)
		r = thoth_ethtool_parse_ack(buf, rlen, seq, why, why_len);
	free(buf);
	return r;
}

/* ---- policy to device ----------------------------------------------------- */

uint32_t thoth_ethtool_from_profile(thoth_mod_profile_t p, uint32_t supported, bool use_driver_adaptive,
				    thoth_coalesce_t *out)
{
	memset(out, 0, sizeof *out);
	if (use_driver_adaptive && (supported & THOTH_COAL_ADAPTIVE_RX)) {
		out->adaptive_rx = true;
		out->present = THOTH_COAL_ADAPTIVE_RX;
		return out->present;
	}
	p = thoth_mod_clamp(p);
	bool defers = thoth_mod_profile_defers(p);
	if (supported & THOTH_COAL_ADAPTIVE_RX)
		out->present |= THOTH_COAL_ADAPTIVE_RX;     /* off: our policy drives */
	if (supported & THOTH_COAL_RX_USECS) {
		out->rx_usecs = defers ? p.max_us : 0;
		out->present |= THOTH_COAL_RX_USECS;
	}
	if (supported & THOTH_COAL_RX_FRAMES) {
		out->rx_frames = defers ? p.max_msgs : 1;
		out->present |= THOTH_COAL_RX_FRAMES;
	}
	return out->present;
}

void thoth_coalesce_describe(const thoth_coalesce_t *c, char *buf, size_t len)
{
	char rxu[24] = "not supported", rxf[24] = "not supported", txu[24] = "not supported",
	     txf[24] = "not supported";
	if (c->present & THOTH_COAL_RX_USECS)
		snprintf(rxu, sizeof rxu, "%u", c->rx_usecs);
	if (c->present & THOTH_COAL_RX_FRAMES)
		snprintf(rxf, sizeof rxf, "%u", c->rx_frames);
	if (c->present & THOTH_COAL_TX_USECS)
		snprintf(txu, sizeof txu, "%u", c->tx_usecs);
	if (c->present & THOTH_COAL_TX_FRAMES)
		snprintf(txf, sizeof txf, "%u", c->tx_frames);
	snprintf(buf, len, "rx-usecs %s, rx-frames %s, adaptive-rx %s; tx-usecs %s, tx-frames %s, adaptive-tx %s",
		 rxu, rxf, c->present & THOTH_COAL_ADAPTIVE_RX ? (c->adaptive_rx ? "on" : "off") : "not supported",
		 txu, txf, c->present & THOTH_COAL_ADAPTIVE_TX ? (c->adaptive_tx ? "on" : "off") : "not supported");
}
