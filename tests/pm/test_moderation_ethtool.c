/*
 * test_moderation_ethtool.c - the NIC coalescing backend
 * (kernel/pm/moderation_ethtool.c) against a fake netlink responder: a
 * thread on the other end of a SOCK_SEQPACKET pair that checks each
 * request and answers with replies built here, independently of the
 * backend's own builder.  Plus malformed replies (each rejected with an
 * error naming the problem), the profile-to-NIC mapping and the NVMe
 * coalescing encoding.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/ethtool_netlink.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "moderation_ethtool.h"
#include "moderation_nvme.h"
#include "thoth/error.h"

enum { FAMILY = 0x21 };

/* ---- a tiny independent netlink writer ---------------------------------- */

typedef struct nlw {
	uint8_t b[1024];
	size_t n;
} nlw_t;

static void w_bytes(nlw_t *w, const void *p, size_t len)
{
	memcpy(w->b + w->n, p, len);
	w->n += len;
	while (w->n % 4)
		w->b[w->n++] = 0;
}

static void w_msg(nlw_t *w, uint16_t type, uint16_t flags, uint32_t seq, uint8_t cmd)
{
	memset(w, 0, sizeof *w);
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = flags, .nlmsg_seq = seq };
	w_bytes(w, &h, sizeof h);
	if (type != NLMSG_ERROR) {
		struct genlmsghdr g = { .cmd = cmd, .version = 1 };
		w_bytes(w, &g, sizeof g);
	}
}

static void w_attr(nlw_t *w, uint16_t type, const void *p, uint16_t len)
{
	struct nlattr a = { .nla_len = (uint16_t)(4 + len), .nla_type = type };
	memcpy(w->b + w->n, &a, 4);
	w->n += 4;
	w_bytes(w, p, len);
}

static void w_u32(nlw_t *w, uint16_t type, uint32_t v) { w_attr(w, type, &v, 4); }

static void w_done(nlw_t *w)
{
	uint32_t n = (uint32_t)w->n;
	memcpy(w->b, &n, 4);
}

static void w_family(nlw_t *w, uint32_t seq)
{
	w_msg(w, GENL_ID_CTRL, 0, seq, CTRL_CMD_NEWFAMILY);
	w_attr(w, CTRL_ATTR_FAMILY_NAME, "ethtool", 8);
	uint16_t id = FAMILY;
	w_attr(w, CTRL_ATTR_FAMILY_ID, &id, 2);
	w_done(w);
}

/* A COALESCE_GET reply as virtio_net sends it, with rx-usecs 8. */
static void w_coalesce(nlw_t *w, uint32_t seq)
{
	w_msg(w, FAMILY, 0, seq, ETHTOOL_MSG_COALESCE_GET_REPLY);
	nlw_t hdr = { 0 };
	w_u32(&hdr, ETHTOOL_A_HEADER_DEV_INDEX, 4);
	w_attr(&hdr, ETHTOOL_A_HEADER_DEV_NAME, "eth0", 5);
	w_attr(w, ETHTOOL_A_COALESCE_HEADER | NLA_F_NESTED, hdr.b, (uint16_t)hdr.n);
	w_u32(w, ETHTOOL_A_COALESCE_RX_USECS, 8);
	w_u32(w, ETHTOOL_A_COALESCE_RX_MAX_FRAMES, 256);
	w_u32(w, ETHTOOL_A_COALESCE_TX_USECS, 0);
	w_u32(w, ETHTOOL_A_COALESCE_TX_MAX_FRAMES, 1);
	uint8_t on = 1;
	w_attr(w, ETHTOOL_A_COALESCE_USE_ADAPTIVE_RX, &on, 1);
	w_u32(w, ETHTOOL_A_COALESCE_PKT_RATE_LOW, 1000);    /* one we do not drive: ignored */
	w_done(w);
}

static void w_error(nlw_t *w, uint32_t seq, int err, const char *text)
{
	w_msg(w, NLMSG_ERROR, text ? NLM_F_ACK_TLVS | NLM_F_CAPPED : NLM_F_CAPPED, seq, 0);
	struct nlmsgerr e = { .error = err };
	w_bytes(w, &e, sizeof e);
	if (text)
		w_attr(w, NLMSGERR_ATTR_MSG, text, (uint16_t)(strlen(text) + 1));
	w_done(w);
}

/* ---- the fake responder ------------------------------------------------- */

typedef struct responder {
	int fd;
	int steps;                 /* requests to answer */
	int error_at;              /* answer request N (1-based) with -EOPNOTSUPP, 0 = never */
	uint8_t last_req[1024];
	size_t last_len;
	uint32_t set_attrs;        /* SET: which attribute types it carried (bit = type) */
	uint32_t set_rx_usecs;
} responder_t;

static void *respond(void *arg)
{
	responder_t *r = arg;
	for (int i = 1; i <= r->steps; i++) {
		uint8_t req[1024];
		ssize_t n = recv(r->fd, req, sizeof req, 0);
		if (n < (ssize_t)(sizeof(struct nlmsghdr) + 4))
			return NULL;
		memcpy(r->last_req, req, (size_t)n);
		r->last_len = (size_t)n;
		struct nlmsghdr h;
		memcpy(&h, req, sizeof h);
		struct genlmsghdr g;
		memcpy(&g, req + sizeof h, sizeof g);
		nlw_t w;
		if (r->error_at == i) {
			w_error(&w, h.nlmsg_seq, -EOPNOTSUPP, "device does not support coalescing");
		} else if (h.nlmsg_type == GENL_ID_CTRL) {
			w_family(&w, h.nlmsg_seq);
		} else if (g.cmd == ETHTOOL_MSG_COALESCE_GET) {
			w_coalesce(&w, h.nlmsg_seq);
		} else {
			/* SET: note its attributes, answer with an ACK. */
			size_t off = sizeof h + sizeof g;
			while (off + 4 <= (size_t)n) {
				struct nlattr a;
				memcpy(&a, req + off, 4);
				if (a.nla_len < 4)
					break;
				uint16_t t = a.nla_type & NLA_TYPE_MASK;
				r->set_attrs |= 1u << t;
				if (t == ETHTOOL_A_COALESCE_RX_USECS)
					memcpy(&r->set_rx_usecs, req + off + 4, 4);
				off += (a.nla_len + 3u) & ~3u;
			}
			w_error(&w, h.nlmsg_seq, 0, NULL);
		}
		if (send(r->fd, w.b, w.n, 0) != (ssize_t)w.n)
			return NULL;
	}
	return NULL;
}

static thoth_ethtool_t *open_fake(responder_t *r, pthread_t *t, int steps, int error_at)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	memset(r, 0, sizeof *r);
	r->fd = sv[1];
	r->steps = steps;
	r->error_at = error_at;
	assert_int_equal(pthread_create(t, NULL, respond, r), 0);
	thoth_ethtool_t *h = NULL;
	char why[200];
	int e = thoth_ethtool_open_fd(sv[0], &h, why, sizeof why);
	if (error_at == 1) {
		assert_int_equal(e, THOTH_E_NOT_FOUND);
		assert_non_null(strstr(why, "no ethtool netlink family"));
		return NULL;
	}
	assert_int_equal(e, 0);
	return h;
}

static void close_fake(responder_t *r, pthread_t t, thoth_ethtool_t *h)
{
	pthread_join(t, NULL);
	thoth_ethtool_close(h);
	close(r->fd);
}

static void test_get_reports_what_the_driver_supports(void **state)
{
	responder_t r;
	pthread_t t;
	thoth_ethtool_t *h = open_fake(&r, &t, 2, 0);
	thoth_coalesce_t c;
	char why[200];
	assert_int_equal(thoth_ethtool_coalesce_get(h, "eth0", &c, why, sizeof why), 0);
	assert_int_equal(c.present, THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES | THOTH_COAL_TX_USECS |
				    THOTH_COAL_TX_FRAMES | THOTH_COAL_ADAPTIVE_RX);
	assert_int_equal(c.rx_usecs, 8);
	assert_int_equal(c.rx_frames, 256);
	assert_true(c.adaptive_rx);
	assert_int_equal(c.ifindex, 4);
	assert_string_equal(c.ifname, "eth0");
	/* The request the responder saw: our family, COALESCE_GET, the
	 * device named in a nested header. */
	struct nlmsghdr rh;
	memcpy(&rh, r.last_req, sizeof rh);
	assert_int_equal(rh.nlmsg_type, FAMILY);
	assert_int_equal(rh.nlmsg_len, r.last_len);
	assert_int_equal(r.last_req[sizeof rh], ETHTOOL_MSG_COALESCE_GET);
	assert_non_null(memmem(r.last_req, r.last_len, "eth0", 5));
	char line[300];
	thoth_coalesce_describe(&c, line, sizeof line);
	assert_non_null(strstr(line, "rx-usecs 8"));
	assert_non_null(strstr(line, "adaptive-tx not supported"));
	close_fake(&r, t, h);
}

static void test_set_sends_only_the_fields_asked_and_reads_the_ack(void **state)
{
	responder_t r;
	pthread_t t;
	thoth_ethtool_t *h = open_fake(&r, &t, 2, 0);
	thoth_coalesce_t want = { .present = THOTH_COAL_RX_USECS, .rx_usecs = 64 };
	char why[200];
	assert_int_equal(thoth_ethtool_coalesce_set(h, "eth0", &want, why, sizeof why), 0);
	close_fake(&r, t, h);
	assert_int_equal(r.set_attrs, 1u << ETHTOOL_A_COALESCE_HEADER | 1u << ETHTOOL_A_COALESCE_RX_USECS);
	assert_int_equal(r.set_rx_usecs, 64);
}

static void test_kernel_errors_come_back_with_the_kernels_words(void **state)
{
	responder_t r;
	pthread_t t;
	thoth_ethtool_t *h = open_fake(&r, &t, 2, 2);
	thoth_coalesce_t c;
	char why[200];
	assert_int_equal(thoth_ethtool_coalesce_get(h, "eth0", &c, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "not supported"));
	assert_non_null(strstr(why, "device does not support coalescing"));
	close_fake(&r, t, h);
	/* A kernel without the family. */
	open_fake(&r, &t, 1, 1);
	pthread_join(t, NULL);
	close(r.fd);
	/* A bad interface name never reaches the kernel. */
	h = open_fake(&r, &t, 1, 0);
	assert_int_equal(thoth_ethtool_coalesce_get(h, "a-name-longer-than-15", &c, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "1 to 15 bytes"));
	close_fake(&r, t, h);
}

static void expect_bad(const nlw_t *w, uint32_t seq, const char *words)
{
	thoth_coalesce_t c;
	char why[200] = "";
	assert_int_equal(thoth_ethtool_parse_coalesce(w->b, w->n, seq, &c, why, sizeof why), THOTH_E_PROTOCOL);
	if (!strstr(why, words))
		fail_msg("expected \"%s\" in \"%s\"", words, why);
}

static void test_malformed_replies_are_rejected_with_a_clear_error(void **state)
{
	nlw_t w;
	w_coalesce(&w, 7);
	thoth_coalesce_t c;
	char why[200];
	assert_int_equal(thoth_ethtool_parse_coalesce(w.b, w.n, 7, &c, why, sizeof why), 0);

	nlw_t bad = w;
	bad.n = 10;
	expect_bad(&bad, 7, "shorter than a netlink header");
	bad = w;
	bad.n -= 8;                              /* nlmsg_len now claims more than arrived */
	expect_bad(&bad, 7, "outside the");
	expect_bad(&w, 8, "we sent 8");
	/* An attribute whose length runs past the message. */
	bad = w;
	uint16_t huge = 2000;
	memcpy(bad.b + 20, &huge, 2);
	expect_bad(&bad, 7, "claims 2000 bytes");
	/* rx-usecs as two bytes. */
	w_msg(&bad, FAMILY, 0, 7, ETHTOOL_MSG_COALESCE_GET_REPLY);
	uint16_t two = 8;
	w_attr(&bad, ETHTOOL_A_COALESCE_RX_USECS, &two, 2);
	w_done(&bad);
	expect_bad(&bad, 7, "rx-usecs is 2 bytes");
	/* A device name without its NUL. */
	w_msg(&bad, FAMILY, 0, 7, ETHTOOL_MSG_COALESCE_GET_REPLY);
	nlw_t hdr = { 0 };
	w_attr(&hdr, ETHTOOL_A_HEADER_DEV_NAME, "eth0", 4);
	w_attr(&bad, ETHTOOL_A_COALESCE_HEADER | NLA_F_NESTED, hdr.b, (uint16_t)hdr.n);
	w_done(&bad);
	expect_bad(&bad, 7, "NUL-terminated");
	/* The wrong command, a control message, an ACK. */
	w_msg(&bad, FAMILY, 0, 7, ETHTOOL_MSG_COALESCE_NTF);
	w_done(&bad);
	expect_bad(&bad, 7, "command");
	w_family(&bad, 7);
	expect_bad(&bad, 7, "not the ethtool family");
	w_error(&bad, 7, 0, NULL);
	expect_bad(&bad, 7, "an ACK where");
	/* Stray bytes after the last attribute. */
	w_msg(&bad, FAMILY, 0, 7, ETHTOOL_MSG_COALESCE_GET_REPLY);
	w_u32(&bad, ETHTOOL_A_COALESCE_RX_USECS, 1);
	bad.n += 2;
	w_done(&bad);
	expect_bad(&bad, 7, "stray bytes");
	/* An error code no kernel sends. */
	w_error(&bad, 7, 5, NULL);
	expect_bad(&bad, 7, "error code 5");
	/* Family replies. */
	uint16_t fam;
	w_msg(&bad, GENL_ID_CTRL, 0, 3, CTRL_CMD_NEWFAMILY);
	w_done(&bad);
	assert_int_equal(thoth_ethtool_parse_family(bad.b, bad.n, 3, &fam, why, sizeof why), THOTH_E_PROTOCOL);
	assert_non_null(strstr(why, "no family id"));
	w_family(&bad, 3);
	assert_int_equal(thoth_ethtool_parse_family(bad.b, bad.n, 3, &fam, why, sizeof why), 0);
	assert_int_equal(fam, FAMILY);
}

static void test_profiles_map_to_what_the_nic_supports(void **state)
{
	uint32_t all = THOTH_COAL_RX_USECS | THOTH_COAL_RX_FRAMES | THOTH_COAL_ADAPTIVE_RX;
	thoth_coalesce_t c;
	assert_int_equal(thoth_ethtool_from_profile((thoth_mod_profile_t){ 32, 24 }, all, false, &c), all);
	assert_int_equal(c.rx_usecs, 24);
	assert_int_equal(c.rx_frames, 32);
	assert_false(c.adaptive_rx);             /* our policy drives: the driver's own is off */
	thoth_ethtool_from_profile((thoth_mod_profile_t){ 1, 0 }, all, false, &c);
	assert_int_equal(c.rx_usecs, 0);
	assert_int_equal(c.rx_frames, 1);
	/* Only what the driver supports is set; hostile profiles are clamped. */
	assert_int_equal(thoth_ethtool_from_profile((thoth_mod_profile_t){ 100000, 100000 }, THOTH_COAL_RX_USECS,
						    false, &c), THOTH_COAL_RX_USECS);
	assert_int_equal(c.rx_usecs, THOTH_MOD_MAX_US);
	/* The driver's own adaptive moderation where offered. */
	assert_int_equal(thoth_ethtool_from_profile((thoth_mod_profile_t){ 32, 24 }, all, true, &c),
			 THOTH_COAL_ADAPTIVE_RX);
	assert_true(c.adaptive_rx);
	assert_int_equal(thoth_ethtool_from_profile((thoth_mod_profile_t){ 32, 24 }, THOTH_COAL_RX_USECS, true, &c),
			 THOTH_COAL_RX_USECS);
}

static void test_nvme_coalescing_is_encoded_as_the_spec_says(void **state)
{
	/* Feature 0x08: THR (0's based) in bits 7:0, TIME (100 us) in 15:8. */
	assert_int_equal(thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 8, 200 }), 0x0207);
	assert_int_equal(thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 256, 1000 }), 0x0aff);
	assert_int_equal(thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 32, 250 }), 0x021f);   /* rounds down */
	assert_int_equal(thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 32, 50 }), 0);         /* below the unit */
	assert_int_equal(thoth_nvme_coalesce_encode((thoth_mod_profile_t){ 1, 0 }), 0);
	thoth_mod_profile_t p = thoth_nvme_coalesce_decode(0x0207);
	assert_int_equal(p.max_msgs, 8);
	assert_int_equal(p.max_us, 200);
	p = thoth_nvme_coalesce_decode(0);
	assert_false(thoth_mod_profile_defers(p));
	char why[200];
	uint32_t dw;
	assert_int_equal(thoth_nvme_coalesce_get("/nonexistent/nvme9", &dw, why, sizeof why), THOTH_E_NOT_FOUND);
	assert_non_null(strstr(why, "/nonexistent/nvme9"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_reports_what_the_driver_supports),
		cmocka_unit_test(test_set_sends_only_the_fields_asked_and_reads_the_ack),
		cmocka_unit_test(test_kernel_errors_come_back_with_the_kernels_words),
		cmocka_unit_test(test_malformed_replies_are_rejected_with_a_clear_error),
		cmocka_unit_test(test_profiles_map_to_what_the_nic_supports),
		cmocka_unit_test(test_nvme_coalescing_is_encoded_as_the_spec_says),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
