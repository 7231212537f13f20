/*
 * test_chan_shm.c - the rings, pool and wake-up flags of a channel, both
 * sides in one process on one memfd mapping (kernel/ipc/chan_shm.c).  The
 * "peer" is whatever this test writes into shared memory, so every check
 * the real code makes against a hostile peer is exercised here directly.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "chan_shm.h"
#include "../common/chan_pair.h"
#include "thoth/loop.h"

typedef struct pair {
	int fd;
	uint8_t *base;
	chan_layout_t lay;
	chan_end_t cli, srv;
} pair_t;

static pair_t *pair_new(uint32_t slots, uint32_t bufs, uint32_t buf_size)
{
	pair_t *p = calloc(1, sizeof *p);
	chan_pair_map("test-chan", (thoth_chan_limits_t){ slots, buf_size, bufs }, &p->fd, &p->base, &p->lay,
		      &p->srv, &p->cli);
	return p;
}

static void pair_free(pair_t *p)
{
	chan_pair_unmap(p->fd, p->base, &p->lay, &p->srv, &p->cli);
	free(p);
}

/* A minimal valid message of LEN bytes (header + zero body) in BUF. */
static void fake_msg(uint8_t *buf, size_t len, uint32_t id)
{
	memset(buf, 0, len);
	thoth_msg_header_t h = { .flags = THOTH_MSG_REQUEST, .request_id = id,
				 .body_len = (uint32_t)(len - THOTH_WIRE_HEADER_SIZE) };
	thoth_wire_header_encode(buf, &h);
}

static void test_limits_are_checked_with_reasons(void **state)
{
	char why[200];
	thoth_chan_limits_t l = { 0 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), 0);
	assert_int_equal(l.slots, THOTH_CHAN_DEFAULT_SLOTS);
	assert_int_equal(l.pool_bufs, THOTH_CHAN_DEFAULT_BUFS);
	l = (thoth_chan_limits_t){ .slots = 3 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "slots = 3"));
	l = (thoth_chan_limits_t){ .slots = 1u << 17 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), THOTH_E_INVAL);
	l = (thoth_chan_limits_t){ .pool_buf_size = 2048 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "pool_buf_size = 2048"));
	l = (thoth_chan_limits_t){ .pool_bufs = 70000 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "pool_bufs = 70000"));
	l = (thoth_chan_limits_t){ .pool_bufs = 4096, .pool_buf_size = 1u << 20 };
	assert_int_equal(thoth_chan_limits_resolve(&l, why, sizeof why), THOTH_E_INVAL);
	assert_non_null(strstr(why, "MiB"));
}

static void test_inline_roundtrip_and_no_wake_when_peer_awake(void **state)
{
	pair_t *p = pair_new(8, 4, 4096);
	for (uint32_t i = 0; i < 100; i++) {
		uint8_t *buf;
		assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
		assert_ptr_equal(buf, p->cli.tx_stage);   /* built privately, copied at send */
		fake_msg(buf, 64, i);
		assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
		thoth_msg_t m;
		assert_int_equal(chan_try_recv(&p->srv, &m), 0);
		assert_int_equal(m.len, 64);
		assert_int_equal(thoth_le32(m.data + 32), i);
		assert_int_equal(chan_release(&p->srv, &m), 0);
	}
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), THOTH_E_AGAIN);
	assert_int_equal(p->cli.st.wakes, 0);   /* nobody said it was asleep */
	assert_int_equal(p->srv.st.wakes, 0);
	pair_free(p);
}

/* Every inline length, 40..240 bytes: the receiver gets exactly the bytes
 * sent, and the sender writes nothing in the slot past the message (the
 * slot's last 8 bytes are an inline message's stamp word): the copies are
 * inline 16-byte moves whose last one overlaps, never a rounded-up run. */
static void test_inline_copies_are_exact_at_every_length(void **state)
{
	pair_t *p = pair_new(8, 4, 4096);
	uint8_t want[THOTH_CHAN_INLINE_MAX];
	unsigned seed = 12345;
	for (uint32_t len = THOTH_WIRE_HEADER_SIZE; len <= THOTH_CHAN_INLINE_MAX; len++) {
		uint8_t *slot = chan_slot_at(&p->cli, CHAN_REQ, p->cli.tx_head);
		memset(slot + THOTH_CHAN_SLOT_HEADER, 0xee, THOTH_CHAN_SLOT_SIZE - THOTH_CHAN_SLOT_HEADER);
		uint8_t *buf;
		assert_int_equal(chan_try_alloc(&p->cli, len, &buf), 0);
		memset(buf, 0xcc, THOTH_CHAN_INLINE_MAX);     /* what lies past the message in the stage */
		for (uint32_t i = 0; i < len; i++)
			want[i] = buf[i] = (uint8_t)(rand_r(&seed) >> 7);
		assert_int_equal(chan_try_send(&p->cli, buf, len), 0);
		for (uint32_t i = THOTH_CHAN_SLOT_HEADER + len; i < THOTH_CHAN_SLOT_SIZE; i++)
			if (slot[i] != 0xee)
				fail_msg("len %u: slot byte %u written past the message", len, i);
		memset(p->srv.rx_copy, 0x11, sizeof p->srv.rx_copy);
		thoth_msg_t m;
		assert_int_equal(chan_try_recv(&p->srv, &m), 0);
		assert_int_equal(m.len, len);
		assert_memory_equal(m.data, want, len);
		for (uint32_t i = len; i < sizeof p->srv.rx_copy; i++)
			if (p->srv.rx_copy[i] != 0x11)
				fail_msg("len %u: rx_copy byte %u written past the message", len, i);
		assert_int_equal(chan_release(&p->srv, &m), 0);
	}
	pair_free(p);
}

static void test_ring_full_then_space(void **state)
{
	pair_t *p = pair_new(4, 4, 4096);
	uint8_t *buf;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(chan_try_alloc(&p->cli, 48, &buf), 0);
		fake_msg(buf, 48, (uint32_t)i);
		assert_int_equal(chan_try_send(&p->cli, buf, 48), 0);
	}
	assert_int_equal(chan_try_alloc(&p->cli, 48, &buf), THOTH_E_AGAIN);
	assert_false(chan_ready(&p->cli, CHAN_WAIT_SLOT, 0));
	assert_int_equal(chan_wait(&p->cli, CHAN_WAIT_SLOT, 0, 0), THOTH_E_AGAIN);
	assert_int_equal(chan_wait(&p->cli, CHAN_WAIT_SLOT, 0, 20), THOTH_E_TIMEDOUT);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	assert_true(chan_ready(&p->cli, CHAN_WAIT_SLOT, 0));
	assert_int_equal(chan_try_alloc(&p->cli, 48, &buf), 0);
	pair_free(p);
}

/* A receive stores its tail at once but owes the fence and the check of a
 * producer asleep on a full ring (prod_waiting) until the receiver's next
 * send (publish's own fence pays it), receive, wait, arm, nap or close:
 * each of these wakes the producer that slept on the full ring. */
static void test_a_receive_owes_the_full_ring_wakeup_until_its_next_step(void **state)
{
	pair_t *p = pair_new(4, 4, 4096);
	chan_dir_t *req = &((chan_ctl_t *)p->base)->dir[CHAN_REQ];
	uint8_t *buf;
	thoth_msg_t m;
	for (int step = 0; step < 6; step++) {
		/* The client fills the ring and goes to sleep on it. */
		while (chan_try_alloc(&p->cli, 48, &buf) == 0) {
			fake_msg(buf, 48, 1);
			assert_int_equal(chan_try_send(&p->cli, buf, 48), 0);
		}
		assert_int_equal(chan_arm(&p->cli, CHAN_WAIT_SLOT, 0), 0);
		assert_int_equal(atomic_load(&req->prod_waiting), 1);
		uint64_t wakes = p->srv.st.wakes;
		assert_int_equal(chan_try_recv(&p->srv, &m), 0);
		assert_int_equal(atomic_load(&req->tail), p->srv.rx_tail);   /* the slot is free at once */
		assert_int_equal(p->srv.st.wakes, wakes);                     /* the wake-up is owed */
		assert_true(p->srv.rx_settle);
		switch (step) {
		case 0:         /* the answer's publish pays it */
			assert_int_equal(chan_try_alloc(&p->srv, 64, &buf), 0);
			fake_msg(buf, 64, 1);
			buf[6] = THOTH_MSG_RESPONSE;
			assert_int_equal(chan_try_send(&p->srv, buf, 64), 0);
			assert_int_equal(chan_try_recv(&p->cli, &m), 0);
			break;
		case 1:         /* the next receive */
			assert_int_equal(chan_try_recv(&p->srv, &m), 0);
			break;
		case 2:         /* a wait that does not wait */
			assert_int_equal(chan_wait(&p->srv, CHAN_WAIT_SLOT, 0, 0), 0);
			break;
		case 3:         /* arming for the loop */
			assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 1);
			chan_disarm(&p->srv, CHAN_WAIT_RECV);
			break;
		case 4:         /* a spin */
			chan_spin(&p->srv, CHAN_WAIT_RECV, 0);
			break;
		case 5:         /* closing */
			chan_end_close(&p->srv);
			break;
		}
		assert_int_equal(p->srv.st.wakes, wakes + 1);
		assert_int_equal(p->srv.rx_settle, step == 1);   /* that receive owes its own */
		chan_disarm(&p->cli, CHAN_WAIT_SLOT);
		/* Drain what is left, settling as it goes. */
		while (chan_try_recv(&p->srv, &m) == 0)
			;
		chan_rx_settle(&p->srv);
	}
	pair_free(p);
}

static void test_pool_runs_lend_and_return(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	uint8_t *a, *b, *c;
	assert_int_equal(chan_try_alloc(&p->cli, 3 * 4096, &a), 0);
	assert_int_equal(chan_try_alloc(&p->cli, 5 * 4096, &b), 0);
	assert_int_equal(chan_try_alloc(&p->cli, 1000, &c), THOTH_E_AGAIN);
	assert_int_equal(chan_try_alloc(&p->cli, 9 * 4096, &c), THOTH_E_TOO_LARGE);
	fake_msg(a, 3 * 4096, 1);
	assert_int_equal(chan_try_send(&p->cli, a, 3 * 4096), 0);
	assert_int_equal(chan_try_send(&p->cli, a, 3 * 4096), THOTH_E_INVAL);   /* already sent */
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	assert_ptr_equal(m.data, p->base + p->lay.pool_off[CHAN_REQ]);           /* in place */
	assert_int_equal(m.len, 3 * 4096);
	assert_int_equal(chan_try_alloc(&p->cli, 1000, &c), THOTH_E_AGAIN);      /* still lent */
	assert_int_equal(chan_release(&p->srv, &m), 0);
	assert_int_equal(chan_try_alloc(&p->cli, 2 * 4096, &c), 0);              /* back */
	chan_discard(&p->cli, b);
	chan_discard(&p->cli, c);
	assert_int_equal(p->cli.st.pool_in_use, 0);
	pair_free(p);
}

static void expect_client_corrupt(pair_t *p, const char *what)
{
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->cli, &m), THOTH_E_CORRUPT);
	assert_non_null(strstr(p->cli.why, what));
	/* Sticky: the channel is done. */
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), THOTH_E_CORRUPT);
}

/* The "service" publishes a hand-made descriptor in response slot IDX. */
static void put_slot(pair_t *p, uint32_t idx, uint32_t kind, uint32_t len, uint32_t buf)
{
	uint8_t *s = p->base + p->lay.ring_off[CHAN_RESP] + (size_t)idx * THOTH_CHAN_SLOT_SIZE;
	uint32_t tag = chan_slot_tag(kind, idx);   /* any kind byte, published for message IDX */
	memcpy(s, &tag, 4);
	memcpy(s + 4, &len, 4);
	memcpy(s + 8, &buf, 4);
	atomic_store(&((chan_ctl_t *)p->base)->dir[CHAN_RESP].head, idx + 1);
}

static void test_hostile_service_descriptors_are_refused(void **state)
{
	struct { uint32_t kind, len, buf; const char *what; } cases[] = {
		{ CHAN_SLOT_POOL, 4096, 8, "pool has 8" },
		{ CHAN_SLOT_POOL, 4096, 0xffffffffu, "pool has 8" },
		{ CHAN_SLOT_POOL, 2 * 4096 + 1, 7, "run past the pool" },
		{ CHAN_SLOT_POOL, 8, 0, "run past the pool" },
		{ CHAN_SLOT_INLINE, THOTH_CHAN_INLINE_MAX + 8, 0, "inline message" },
		{ CHAN_SLOT_INLINE, 3, 0, "inline message" },
		{ 0, 64, 0, "descriptor kind 0" },
		{ 9, 64, 0, "descriptor kind 9" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		pair_t *p = pair_new(8, 8, 4096);
		put_slot(p, 0, cases[i].kind, cases[i].len, cases[i].buf);
		expect_client_corrupt(p, cases[i].what);
		pair_free(p);
	}
}

/* The "service" writes a valid inline message (LEN bytes) in response slot
 * IDX and its tag TAG, without touching head. */
static void put_tagged(pair_t *p, uint32_t idx, uint32_t tag, uint32_t len)
{
	uint8_t *s = p->base + p->lay.ring_off[CHAN_RESP] +
		     (size_t)(idx & (p->lay.lim.slots - 1)) * THOTH_CHAN_SLOT_SIZE;
	fake_msg(s + THOTH_CHAN_SLOT_HEADER, len, idx);
	memcpy(s + 4, &len, 4);
	memcpy(s, &tag, 4);
}

/*
 * Layout 3: a receiver takes a message when its slot's tag publishes it,
 * and reads the peer's head only when the tag says "nothing": a head one
 * behind (a producer between its tag and its head) is "nothing yet", a
 * head further behind or one that counts a message whose tag is not there
 * is refused.
 */
static void test_hostile_tags_and_heads_are_refused(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	thoth_msg_t m;
	/* Tags without head: taken, and head one behind is no error. */
	put_tagged(p, 0, chan_slot_tag(CHAN_SLOT_INLINE, 0), 64);
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	assert_int_equal(m.len, 64);
	assert_int_equal(chan_try_recv(&p->cli, &m), THOTH_E_AGAIN);
	assert_int_equal(chan_ready(&p->cli, CHAN_WAIT_RECV, 0), 0);
	put_tagged(p, 1, chan_slot_tag(CHAN_SLOT_INLINE, 1), 64);
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	/* Now head (0) is two behind our tail (2): a lie, refused. */
	assert_int_equal(chan_ready(&p->cli, CHAN_WAIT_RECV, 0), 1);
	expect_client_corrupt(p, "behind our tail");
	pair_free(p);

	/* A stale tag (the slot's previous lap, message 0 in slot 0 where
	 * message 8 is due) is not taken; with head counting message 8 it
	 * is refused. */
	p = pair_new(8, 8, 4096);
	ctl = (chan_ctl_t *)p->base;
	for (uint32_t i = 0; i < 8; i++) {
		put_tagged(p, i, chan_slot_tag(CHAN_SLOT_INLINE, i), 64);
		atomic_store(&ctl->dir[CHAN_RESP].head, i + 1);
		assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	}
	assert_int_equal(chan_try_recv(&p->cli, &m), THOTH_E_AGAIN);
	atomic_store(&ctl->dir[CHAN_RESP].head, 9);
	assert_int_equal(chan_ready(&p->cli, CHAN_WAIT_RECV, 0), 1);   /* not slept on */
	expect_client_corrupt(p, "is not its");
	pair_free(p);

	/* A tag for another index (message 1's in message 0's slot) with
	 * head counting message 0: refused. */
	p = pair_new(8, 8, 4096);
	ctl = (chan_ctl_t *)p->base;
	put_tagged(p, 0, chan_slot_tag(CHAN_SLOT_INLINE, 1), 64);
	atomic_store(&ctl->dir[CHAN_RESP].head, 1);
	expect_client_corrupt(p, "is not its");
	pair_free(p);
}

/*
 * What any receive path must do with an inline slot (written for a receive
 * fast path that measured slower on two CPUs and was dropped, stop 30; kept
 * as the contract such a path must meet): take exactly the lengths 40..240
 * (a private copy of exactly that many bytes) and refuse every other length
 * word from 0 to 300, and read a stamped message's stamp where the end
 * wants stamps and ignore it where it does not.  It fails against a receive
 * that ignores the stamp when the end wants one.
 */
static void test_receive_takes_and_refuses_by_the_rules(void **state)
{
	for (uint32_t len = 0; len <= 300; len++) {
		pair_t *p = pair_new(8, 8, 4096);
		uint8_t *s = p->base + p->lay.ring_off[CHAN_RESP];
		uint32_t fill = len < THOTH_CHAN_INLINE_MAX ? len : THOTH_CHAN_INLINE_MAX;
		if (fill >= THOTH_WIRE_HEADER_SIZE)
			fake_msg(s + THOTH_CHAN_SLOT_HEADER, fill, 7);
		memcpy(s + 4, &len, 4);
		uint32_t tag = chan_slot_tag(CHAN_SLOT_INLINE, 0);
		memcpy(s, &tag, 4);
		if (len >= THOTH_WIRE_HEADER_SIZE && len <= THOTH_CHAN_INLINE_MAX) {
			thoth_msg_t m;
			assert_int_equal(chan_try_recv(&p->cli, &m), 0);
			assert_int_equal(m.len, len);
			assert_null(m.handle);
			assert_ptr_not_equal(m.data, s + THOTH_CHAN_SLOT_HEADER);   /* a copy */
			assert_memory_equal(m.data, s + THOTH_CHAN_SLOT_HEADER, len);
			assert_int_equal(p->cli.rx_tail, 1);
		} else {
			expect_client_corrupt(p, "inline message");
			assert_int_equal(p->cli.rx_tail, 0);
		}
		pair_free(p);
	}
	for (int want = 0; want < 2; want++) {
		pair_t *p = pair_new(8, 8, 4096);
		p->cli.stamp_rx = want;
		uint8_t *s = p->base + p->lay.ring_off[CHAN_RESP];
		uint32_t stamp = 0x12345679u, len = 64;
		fake_msg(s + THOTH_CHAN_SLOT_HEADER, len, 1);
		memcpy(s + CHAN_SLOT_STAMP, &stamp, 4);
		memcpy(s + 4, &len, 4);
		uint32_t tag = chan_slot_tag(CHAN_SLOT_INLINE | CHAN_SLOT_STAMPED, 0);
		memcpy(s, &tag, 4);
		thoth_msg_t m;
		assert_int_equal(chan_try_recv(&p->cli, &m), 0);
		assert_int_equal(m.len, len);
		assert_int_equal(p->cli.rx_stamp, want ? stamp : 0);
		pair_free(p);
	}
}

static void test_hostile_indices_are_refused(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->dir[CHAN_RESP].head, 9);      /* 9 messages in an 8-slot ring */
	expect_client_corrupt(p, "slots ahead");
	pair_free(p);

	p = pair_new(8, 8, 4096);
	ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->dir[CHAN_REQ].tail, 100);     /* consumed what was never sent */
	uint8_t *buf;
	/* The producer reads the peer's tail only when the tail it last saw
	 * says the ring is full (chan_shm.c, tx_space): the 8 slots it knows
	 * free are used, and the lie is refused when it is needed. */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
		fake_msg(buf, 64, (uint8_t)i);
		assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
	}
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), THOTH_E_CORRUPT);
	assert_non_null(strstr(p->cli.why, "tail index"));
	pair_free(p);

	p = pair_new(8, 8, 4096);
	ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->dir[CHAN_REQ].rel_head, 1000); /* released more than exists */
	assert_int_equal(chan_try_alloc(&p->cli, 8192, &buf), THOTH_E_CORRUPT);
	assert_non_null(strstr(p->cli.why, "release ring"));
	pair_free(p);
}

static void test_double_release_is_detected(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	uint8_t *a;
	assert_int_equal(chan_try_alloc(&p->cli, 4096, &a), 0);
	fake_msg(a, 4096, 1);
	assert_int_equal(chan_try_send(&p->cli, a, 4096), 0);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	thoth_msg_t copy = m;
	assert_int_equal(chan_release(&p->srv, &m), 0);
	assert_int_equal(chan_release(&p->srv, &m), 0);     /* a no-op: the handle was cleared */
	assert_int_equal(chan_release(&p->srv, &copy), 0);  /* a buggy service releases twice */
	uint8_t *b;
	assert_int_equal(chan_try_alloc(&p->cli, 4096, &b), THOTH_E_CORRUPT);
	assert_non_null(strstr(p->cli.why, "released twice"));
	pair_free(p);
}

static void test_wait_flags_make_the_producer_wake(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	/* The client announces it will sleep for a response... */
	assert_int_equal(chan_arm(&p->cli, CHAN_WAIT_RECV, 0), 0);
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(&p->srv, 64, &buf), 0);
	fake_msg(buf, 64, 1);
	buf[6] = THOTH_MSG_RESPONSE;
	assert_int_equal(chan_try_send(&p->srv, buf, 64), 0);
	assert_int_equal(p->srv.st.wakes, 1);              /* ...so the service wakes it */
	chan_disarm(&p->cli, CHAN_WAIT_RECV);
	/* Armed after the message arrived: arm says "do not sleep". */
	assert_int_equal(chan_arm(&p->cli, CHAN_WAIT_RECV, 0), 1);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	/* A blocking wait that is satisfied by a concurrent peer is tested in
	 * test_channel; here: a closed peer ends a wait. */
	atomic_store(&((chan_ctl_t *)p->base)->closed[CHAN_SERVER], 1);
	assert_int_equal(chan_wait(&p->cli, CHAN_WAIT_RECV, 0, 1000), THOTH_E_PEER_GONE);
	pair_free(p);
}

/* A service turn's start (conn_serve): both flags cleared, and the one
 * presence store says running on our CPU, as two chan_disarm calls did. */
static void test_disarm_both_clears_both_flags_and_says_running(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	cpu_set_t old, one;
	assert_int_equal(sched_getaffinity(0, sizeof old, &old), 0);
	int cpu = sched_getcpu();
	assert_true(cpu >= 0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);   /* no migration in between */
	cpu = sched_getcpu();
	assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);     /* asleep: not running */
	atomic_store(&ctl->dir[p->srv.tx].prod_waiting, 1);
	assert_int_equal(atomic_load(&ctl->presence[CHAN_SERVER].word) & CHAN_PRESENCE_RUNNING, 0);
	chan_disarm_both(&p->srv);
	assert_int_equal(atomic_load(&ctl->dir[p->srv.rx].cons_waiting), 0);
	assert_int_equal(atomic_load(&ctl->dir[p->srv.tx].prod_waiting), 0);
	assert_int_equal(atomic_load(&ctl->presence[CHAN_SERVER].word),
			 CHAN_PRESENCE_RUNNING | (uint32_t)(cpu + 1));
	/* The client's flags and word are not ours to touch. */
	assert_int_equal(atomic_load(&ctl->dir[p->cli.rx].cons_waiting), 0);
	assert_int_equal(sched_setaffinity(0, sizeof old, &old), 0);
	pair_free(p);
}

/* The presence word's tid names the thread that waits now, also when it
 * is a new thread that glibc gave the handle (pthread_self) and stack of
 * one that exited: a client's per-request threads.  Compared by handle,
 * the new thread's waits kept publishing the exited one's tid, and the
 * service read the main thread's CPU time instead (docs/SCHED.md). */
typedef struct waiter {
	pair_t *p;
	pthread_t self;
	uint32_t tid, published;
} waiter_t;

static void *wait_once(void *arg)
{
	waiter_t *w = arg;
	chan_ctl_t *ctl = (chan_ctl_t *)w->p->base;
	w->self = pthread_self();
	w->tid = (uint32_t)syscall(SYS_gettid);
	chan_arm(&w->p->cli, CHAN_WAIT_RECV, 0);        /* asleep: one publish */
	w->published = atomic_load(&ctl->presence[CHAN_CLIENT].tid);
	chan_disarm(&w->p->cli, CHAN_WAIT_RECV);        /* running: another */
	return NULL;
}

static void test_presence_tid_is_the_waiting_threads_also_a_recycled_handles(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	waiter_t a = { .p = p }, b = { .p = p };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, wait_once, &a), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.published, a.tid);
	assert_int_equal(pthread_create(&t, NULL, wait_once, &b), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	print_message("  second thread %s the first's handle\n", pthread_equal(a.self, b.self) ? "reuses" : "does not reuse");
	assert_int_not_equal(a.tid, b.tid);
	assert_int_equal(b.published, b.tid);
	pair_free(p);
}

/* A child forked from a thread that had published waits on the channel
 * it inherited: the tid is the child's own.  The cached id was copied
 * with the forking thread, and the child published its parent's thread
 * (docs/IPC.md "Presence").  The child checks its own view; the parent
 * sees the same page (memfd, MAP_SHARED). */
static void test_presence_tid_after_fork_is_the_childs(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	uint32_t me = (uint32_t)syscall(SYS_gettid);
	chan_arm(&p->cli, CHAN_WAIT_RECV, 0);
	assert_int_equal(atomic_load(&ctl->presence[CHAN_CLIENT].tid), me);
	chan_disarm(&p->cli, CHAN_WAIT_RECV);           /* running: the next arm publishes */
	fflush(NULL);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		chan_arm(&p->cli, CHAN_WAIT_RECV, 0);
		uint32_t published = atomic_load(&ctl->presence[CHAN_CLIENT].tid);
		uint32_t mine = (uint32_t)syscall(SYS_gettid);
		if (published != mine)
			fprintf(stderr, "child %u published tid %u (its parent's: %u)\n", mine, published, me);
		_exit(published == mine ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(atomic_load(&ctl->presence[CHAN_CLIENT].tid), (uint32_t)child);
	pair_free(p);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A loop-served consumer that naps (cons_waiting = 2) is woken with a
 * FUTEX_WAKE, not a doorbell; armed for its loop (1) it gets the doorbell. */
static void test_a_napping_service_is_woken_without_a_doorbell(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->cli.sock = sv[0];
	p->cli.peer_bell = true;
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	char c;
	uint8_t *buf;
	atomic_store(&ctl->dir[CHAN_REQ].cons_waiting, CHAN_WAITING_FUTEX);
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
	fake_msg(buf, 64, 1);
	assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
	assert_int_equal(p->cli.st.wakes, 1);
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);     /* no doorbell */
	assert_int_equal(errno, EAGAIN);
	atomic_store(&ctl->dir[CHAN_REQ].cons_waiting, CHAN_WAITING_BELL);
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
	fake_msg(buf, 64, 2);
	assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
	assert_int_equal(p->cli.st.wakes, 2);
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 1);      /* the doorbell */
	/* Any other nonzero value reads as "ring me the usual way". */
	atomic_store(&ctl->dir[CHAN_REQ].cons_waiting, 77);
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
	fake_msg(buf, 64, 3);
	assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 1);
	close(sv[0]);
	close(sv[1]);
	pair_free(p);
}

/* Pin this thread to the CPU it runs on; its affinity before goes to SAVED. */
static int pin_here(cpu_set_t *saved)
{
	assert_int_equal(sched_getaffinity(0, sizeof *saved, saved), 0);
	int cpu = sched_getcpu();
	assert_true(cpu >= 0);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
	return cpu;
}

/*
 * A stale round never cuts spins short (review of stop 31): a spin's
 * untimed first round is credited the last timed round's length, and a
 * word saying 300 ms (a round taken off the CPU) once ended every later
 * spin after one round and moved chan_wait's deadline 300 ms early.  The
 * credit is at most half of spin_max: a full-budget spin still spins at
 * least the other half, times a round again, and a timed wait is not
 * early.  Only lower bounds on time: a loaded machine only adds.
 */
static void test_a_stale_round_never_cuts_spins_short(void **state)
{
	(void)state;
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	/* The peer runs on another CPU: a spin pays. */
	atomic_store(&ctl->presence[CHAN_CLIENT].word, CHAN_PRESENCE_RUNNING | (uint32_t)(cpu + 2));
	p->srv.wait = THOTH_CHAN_SPIN;
	/* A round is timed again only if it ran undisturbed (under half of
	 * spin_max): with a 50 us spin_max a round preempted on a loaded
	 * machine (load 18-20 here) is often longer, and under TSan every
	 * round is.  So 2 ms, and each try starts from the stale word again:
	 * one of them must replace it, and every try must spin at least half
	 * of spin_max. */
	p->srv.spin_max = p->srv.spin_budget = 2000000;
	bool retimed = false;
	for (int tries = 0; tries < 100 && !retimed; tries++) {
		p->srv.spin_round_ns = 300000000u;
		uint64_t t0 = now_ns();
		assert_false(chan_spin(&p->srv, CHAN_WAIT_RECV, 0));
		uint64_t took = now_ns() - t0;
		if (took < p->srv.spin_max / 2)
			fail_msg("a 2 ms spin ended after %llu ns", (unsigned long long)took);
		retimed = p->srv.spin_round_ns < p->srv.spin_max / 2;
	}
	if (!retimed)
		fail_msg("100 full-budget spins never timed a round again");
	/* A wait is timed from its spin's start, credit included (at most
	 * spin_max / 2 before its first clock reading): back to 50 us. */
	p->srv.spin_max = p->srv.spin_budget = 50000;
	p->srv.spin_round_ns = 300000000u;
	uint64_t t0 = now_ns();
	assert_int_equal(chan_wait(&p->srv, CHAN_WAIT_RECV, 0, 20), THOTH_E_TIMEDOUT);
	uint64_t took = now_ns() - t0;
	if (took < 20000000u)
		fail_msg("a 20 ms wait timed out after %llu ns", (unsigned long long)took);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/*
 * chan_nap: naps only for a peer on our CPU, in SPIN mode, without
 * moderation, before UNTIL; a message published during the nap ends it
 * (the producer, another process on our CPU, sends only once it sees the
 * nap's flag); a nap that finds nothing stops naps until a wait is short.
 */
static void test_nap_takes_a_message_and_learns_from_a_miss(void **state)
{
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	_Atomic uint32_t *flag = &ctl->dir[CHAN_REQ].cons_waiting;
	_Atomic uint32_t *peer = &ctl->presence[CHAN_CLIENT].word;

	/* The peer on another CPU (a spin can pay there): no nap. */
	atomic_store(peer, CHAN_PRESENCE_RUNNING | (uint32_t)(cpu + 2));
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_true(p->srv.nap_ok);
	/* On our CPU, but a timer is due: no nap. */
	atomic_store(peer, (uint32_t)(cpu + 1));
	assert_false(chan_nap(&p->srv, now_ns(), 0));
	/* Always-sleep mode, or moderated: no nap. */
	p->srv.wait = THOTH_CHAN_SLEEP;
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	p->srv.wait = THOTH_CHAN_SPIN;
	assert_int_equal(p->srv.st.sleeps, 0);

	/* Nothing comes: the nap ends by its bound, clears the flag and stops
	 * naps; a short wait turns them on again. */
	p->srv.spin_max = 200000;                   /* 200 us */
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_int_equal(p->srv.st.sleeps, 1);
	assert_int_equal(atomic_load(flag), 0);
	assert_false(p->srv.nap_ok);
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_int_equal(p->srv.st.sleeps, 1);      /* did not nap */
	chan_spin_slept(&p->srv, 1000);
	assert_true(p->srv.nap_ok);
	/* ... after the back-off: one miss, one nap skipped. */
	assert_int_equal(p->srv.nap_skip, 1);
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_int_equal(p->srv.st.sleeps, 1);      /* skipped: did not nap */
	assert_int_equal(p->srv.nap_skip, 0);

	/* A message during the nap ends it: the producer sees the nap's flag
	 * and wakes it with a FUTEX_WAKE (its exit status says it did), and
	 * the nap is over before its bound, the longest a nap can be (4 s):
	 * only a producer delayed that long on a loaded machine could make a
	 * nap that ends by its bound look like one the message ended, and a
	 * nap the wake did not reach takes the whole bound. */
	p->srv.spin_max = 4000000000u;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint64_t end = now_ns() + 10000000000ull;
		while (atomic_load(flag) != CHAN_WAITING_FUTEX && now_ns() < end)
			sched_yield();
		uint8_t *buf;
		if (chan_try_alloc(&p->cli, 64, &buf))
			_exit(1);
		fake_msg(buf, 64, 9);
		if (chan_try_send(&p->cli, buf, 64))
			_exit(1);
		_exit(p->cli.st.wakes == 1 ? 0 : 2);        /* 2: no FUTEX_WAKE */
	}
	uint64_t t0 = now_ns();
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0));
	uint64_t took = now_ns() - t0;
	print_message("nap ended by the message after %.3f ms\n", took / 1e6);
	assert_true(took < 4000000000ull);
	assert_int_equal(atomic_load(flag), 0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/* Queue one 64-byte request from the client end (so a nap ends at once). */
static void queue_request(pair_t *p, uint32_t id)
{
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(&p->cli, 64, &buf), 0);
	fake_msg(buf, 64, id);
	assert_int_equal(chan_try_send(&p->cli, buf, 64), 0);
}

static void take_request(pair_t *p)
{
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	assert_int_equal(chan_release(&p->srv, &m), 0);
}

/* Naps taken until the next one: NAPS decisions made, how many napped. */

/* The pair's doorbell sockets: the client rings them, the service owns its
 * bell. */
static void pair_bells(pair_t *p)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->cli.sock = sv[0];
	p->cli.peer_bell = true;
	p->srv.sock = sv[1];
	p->srv.own_bell = true;
}

static void pair_bells_free(pair_t *p)
{
	close(p->cli.sock);
	close(p->srv.sock);
	p->cli.sock = p->srv.sock = -1;
	pair_free(p);
}

/* Unread doorbells are bounded by the arms themselves, whatever the loop
 * does between its read-backs: 300 sleeps, each rung once by a request
 * (one bell per sleep: the claim), none read back by a loop: an arm that
 * finds CHAN_BELL_ARMS_MAX since the last read-back reads them back
 * before its store.  Without it all 300 would sit in the socket (the
 * default holds ~278: an honest client's doorbell would meet EAGAIN). */
static void test_unread_doorbells_are_bounded_by_the_arms(void **state)
{
	(void)state;
	pair_t *p = pair_new(8, 8, 4096);
	pair_bells(p);
	chan_bell_advertise(&p->srv);
	assert_true(chan_bell_attach(&p->cli));
	int most = 0;
	for (uint32_t i = 0; i < 300; i++) {
		assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);
		queue_request(p, i + 1);
		assert_int_equal(p->cli.st.wakes, i + 1);      /* one bell for this sleep */
		take_request(p);
		int unread = 0;
		assert_int_equal(ioctl(p->srv.sock, FIONREAD, &unread), 0);
		if (unread > most)
			most = unread;
	}
	if (most > (int)CHAN_BELL_ARMS_MAX)
		fail_msg("%d doorbells unread, the bound is %u", most, CHAN_BELL_ARMS_MAX);
	assert_true(most >= (int)CHAN_BELL_ARMS_MAX - 1);  /* and they were left unread up to it */
	pair_bells_free(p);
}


/*
 * A client claims the service's flags only where the service advertised
 * that it re-arms after reading doorbells back (CHAN_BELL_REARMS).  An
 * older service's late drain only re-checks: a claim made for a message it
 * already took by its tag would leave it asleep with its flag clear, and
 * the next request would ring nobody, for good (test_channel,
 * test_late_drain_rearms_a_claimed_flag against main's chan_service).
 * Without the word the client rings as before the claim: the flag stays
 * set after its publish, and each publish rings.
 */
static void test_a_client_claims_only_where_the_service_rearms(void **state)
{
	(void)state;
	pair_t *p = pair_new(8, 8, 4096);
	pair_bells(p);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	_Atomic uint32_t *flag = &ctl->dir[CHAN_REQ].cons_waiting;
	/* An older service: bell[CHAN_SERVER] stays 0. */
	assert_false(chan_bell_attach(&p->cli));
	assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);
	queue_request(p, 1);
	assert_int_equal(atomic_load(flag), CHAN_WAITING_BELL);    /* not claimed */
	queue_request(p, 2);                                        /* still rings */
	assert_int_equal(p->cli.st.wakes, 2);
	int unread = 0;
	assert_int_equal(ioctl(p->srv.sock, FIONREAD, &unread), 0);
	assert_int_equal(unread, 2);
	take_request(p);
	take_request(p);
	chan_disarm(&p->srv, CHAN_WAIT_RECV);
	assert_int_equal(chan_bell_drain(&p->srv), 0);
	/* One that advertises: claimed, one doorbell for the sleep. */
	chan_bell_advertise(&p->srv);
	assert_int_equal(ctl->bell[CHAN_SERVER], CHAN_BELL_REARMS);
	assert_false(p->srv.claim);                     /* a futex client: never claimed */
	assert_true(chan_bell_attach(&p->cli));
	assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);
	queue_request(p, 3);
	assert_int_equal(atomic_load(flag), 0);
	queue_request(p, 4);
	assert_int_equal(p->cli.st.wakes, 3);
	assert_int_equal(ioctl(p->srv.sock, FIONREAD, &unread), 0);
	assert_int_equal(unread, 1);
	pair_bells_free(p);
}

/*
 * A futex sleeper's flag is never claimed.  The late producer: the
 * service's owed wake-up of a response (chan_mod_flush), its owed settle
 * of a slot (chan_rx_settle_owed), its release of a pool buffer
 * (chan_release), each run after the client armed for its next wait.  A
 * claim would clear the flag and its FUTEX_WAKE may land before the
 * client's FUTEX_WAIT: then the client sleeps with its flag clear, and the
 * message it waits for wakes nobody (a SLEEP_SLICE_NS stall, 10 ms).
 * Unclaimed, the flag stays set and the next publish wakes it.
 */
static void test_a_futex_sleepers_flag_is_never_claimed(void **state)
{
	(void)state;
	pair_t *p = pair_new(4, 8, 4096);
	pair_bells(p);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	chan_bell_advertise(&p->srv);                   /* peer_bell false: a futex client */
	assert_true(chan_bell_attach(&p->cli));
	uint8_t *buf;

	/* RECV: the client arms for the answer; the service's owed wake-up of
	 * an earlier answer comes late. */
	assert_int_equal(chan_arm(&p->cli, CHAN_WAIT_RECV, 0), 0);
	p->srv.mod.owed = true;
	chan_mod_flush(&p->srv);
	assert_int_equal(p->srv.st.wakes, 1);                           /* a FUTEX_WAKE */
	assert_int_equal(atomic_load(&ctl->dir[CHAN_RESP].cons_waiting), CHAN_WAITING_BELL);
	assert_int_equal(chan_try_alloc(&p->srv, 64, &buf), 0);
	fake_msg(buf, 64, 1);
	buf[6] = THOTH_MSG_RESPONSE;
	assert_int_equal(chan_try_send(&p->srv, buf, 64), 0);
	assert_int_equal(p->srv.st.wakes, 2);                           /* the answer wakes it */
	assert_int_equal(chan_wait(&p->cli, CHAN_WAIT_RECV, 0, 10000), 0);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	assert_int_equal(chan_release(&p->cli, &m), 0);

	/* SLOT: the client armed for a free request slot; the service's
	 * owed settle of a request it took comes after. */
	atomic_store(&ctl->dir[CHAN_REQ].prod_waiting, CHAN_WAITING_BELL);
	p->srv.rx_settle = true;
	uint64_t wakes = p->srv.st.wakes;
	chan_rx_settle_owed(&p->srv);
	assert_int_equal(p->srv.st.wakes, wakes + 1);
	assert_int_equal(atomic_load(&ctl->dir[CHAN_REQ].prod_waiting), CHAN_WAITING_BELL);
	atomic_store(&ctl->dir[CHAN_REQ].prod_waiting, 0);

	/* POOL: the client armed for a released buffer; the service's
	 * release of one comes. */
	assert_int_equal(chan_try_alloc(&p->cli, 2 * 4096, &buf), 0);
	fake_msg(buf, 2 * 4096, 20);
	assert_int_equal(chan_try_send(&p->cli, buf, 2 * 4096), 0);
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	atomic_store(&ctl->dir[CHAN_REQ].owner_waiting, CHAN_WAITING_BELL);
	wakes = p->srv.st.wakes;
	assert_int_equal(chan_release(&p->srv, &m), 0);
	assert_int_equal(p->srv.st.wakes, wakes + 1);
	assert_int_equal(atomic_load(&ctl->dir[CHAN_REQ].owner_waiting), CHAN_WAITING_BELL);
	atomic_store(&ctl->dir[CHAN_REQ].owner_waiting, 0);

	/* A service napping on the futex (2) is not claimed either: its
	 * flag stays 2, and the next request wakes the nap again. */
	atomic_store(&ctl->dir[CHAN_REQ].cons_waiting, CHAN_WAITING_FUTEX);
	wakes = p->cli.st.wakes;
	queue_request(p, 30);
	assert_int_equal(atomic_load(&ctl->dir[CHAN_REQ].cons_waiting), CHAN_WAITING_FUTEX);
	queue_request(p, 31);
	assert_int_equal(p->cli.st.wakes, wakes + 2);
	int unread = -1;
	assert_int_equal(ioctl(p->srv.sock, FIONREAD, &unread), 0);
	assert_int_equal(unread, 0);                    /* FUTEX_WAKEs, no doorbell */
	pair_bells_free(p);
}

/* Only an end that is rung on its socket counts its arms (and reads
 * doorbells back at CHAN_BELL_ARMS_MAX): a futex sleeper has none, and a
 * recv per CHAN_BELL_ARMS_MAX arms would be wasted. */
static void test_a_futex_sleeper_counts_no_arms(void **state)
{
	(void)state;
	pair_t *p = pair_new(8, 8, 4096);
	for (unsigned i = 0; i < 3 * CHAN_BELL_ARMS_MAX; i++) {
		assert_int_equal(chan_arm(&p->cli, CHAN_WAIT_RECV, 0), 0);
		chan_disarm(&p->cli, CHAN_WAIT_RECV);
	}
	assert_int_equal(p->cli.bell_arms, 0);
	p->srv.own_bell = true;                         /* a loop-served end counts */
	assert_int_equal(chan_arm(&p->srv, CHAN_WAIT_RECV, 0), 0);
	assert_int_equal(p->srv.bell_arms, 1);
	pair_free(p);
}

/* The room a client promises from is counted, not assumed: the library's
 * count of one-byte sends at SO_SNDBUF = CHAN_BELL_SNDBUF is what such a
 * socket takes here (a kernel with fatter skbs takes fewer, and then
 * nobody promises). */
static void test_the_doorbell_room_is_counted(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	int want = (int)CHAN_BELL_SNDBUF / 2, have = 0;
	socklen_t l = sizeof have;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof want), 0);
	assert_int_equal(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &have, &l), 0);
	assert_int_equal(have, (int)CHAN_BELL_SNDBUF);
	unsigned n = 0;
	while (n < 4 * CHAN_BELL_ROOM && send(sv[0], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
		n++;
	close(sv[0]);
	close(sv[1]);
	unsigned lib = chan_bell_room_sends();
	print_message("one-byte sends at SO_SNDBUF %u: %u (library: %u; room needed %u)\n",
		      CHAN_BELL_SNDBUF, n, lib, CHAN_BELL_ROOM);
	assert_int_equal(lib, n);
	assert_int_equal(chan_bell_room_sends(), lib);  /* counted once */
}

static unsigned naps_in(pair_t *p, unsigned decisions)
{
	unsigned napped = 0;
	for (unsigned i = 0; i < decisions; i++)
		napped += chan_nap(&p->srv, UINT64_MAX, 0);
	return napped;
}

static void test_naps_back_off_after_misses_and_yield_to_a_faster_loop(void **state)
{
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->presence[CHAN_CLIENT].word, (uint32_t)(cpu + 1));
	p->srv.spin_max = 5000;                     /* 5 us naps: misses are cheap */

	/* Each miss doubles the naps skipped after it: 1, 2, 4, 8. */
	for (unsigned k = 1; k <= 8; k *= 2) {
		uint64_t sleeps = p->srv.st.sleeps;
		assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
		assert_int_equal(p->srv.st.sleeps, sleeps + 1);
		assert_int_equal(p->srv.nap_backoff, k);
		assert_int_equal(p->srv.nap_skip, k);
		chan_spin_slept(&p->srv, 1000);     /* a short wait: naps allowed */
		for (unsigned i = 0; i < k; i++)
			assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
		assert_int_equal(p->srv.st.sleeps, sleeps + 1);   /* skipped */
		assert_int_equal(p->srv.nap_skip, 0);
	}
	/* An answered nap halves it and skips nothing. */
	queue_request(p, 1);
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0));
	take_request(p);
	assert_int_equal(p->srv.nap_backoff, 4);
	assert_int_equal(p->srv.nap_skip, 0);
	p->srv.nap_backoff = 0;

	/* Epochs: CHAN_NAP_RUN decisions nap, the next CHAN_NAP_RUN wait in
	 * the loop, and the faster run's way (median cycle) is used for the
	 * rest of the epoch.  No message is taken between these decisions,
	 * so no cycle is timed; the runs' samples are set here. */
	/* The waits below are "short" however late this loaded, sanitized
	 * process runs: an answered nap that took longer than spin_max would
	 * turn naps off (chan_spin_slept), as the one above may have done
	 * with its 5 us (seen under ASan at load 5: no nap taken). */
	p->srv.spin_max = 1000000000;
	chan_spin_slept(&p->srv, 1000);
	p->srv.nap_turns = 0;
	queue_request(p, 2);                        /* a nap taken ends at once */
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), CHAN_NAP_RUN);
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), 0);
	assert_int_equal(p->srv.nap_n[0], 0);
	assert_int_equal(p->srv.nap_n[1], 0);
	for (unsigned i = 0; i < CHAN_NAP_SAMPLES; i++) {
		p->srv.nap_s[0][i] = 30000 + i;     /* napping: 30 us round trips */
		p->srv.nap_s[1][i] = 12000 + i;     /* in the loop: 12 us */
	}
	p->srv.nap_n[0] = p->srv.nap_n[1] = CHAN_NAP_SAMPLES;
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN), 0);
	assert_true(p->srv.nap_loop_wins);
	assert_int_equal(p->srv.nap_avg_ns, 30006);
	assert_int_equal(p->srv.loop_avg_ns, 12006);
	/* The loop won: the next epoch is quiet, no runs (stop 32; the
	 * back-off itself: test_a_loop_that_keeps_winning_quiets_nap_runs). */
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH), 0);
	/* The next epoch times both again; naps faster: they are kept. */
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), CHAN_NAP_RUN);
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), 0);
	for (unsigned i = 0; i < CHAN_NAP_SAMPLES; i++) {
		p->srv.nap_s[0][i] = 10000;
		p->srv.nap_s[1][i] = 14000;
	}
	p->srv.nap_n[0] = p->srv.nap_n[1] = CHAN_NAP_SAMPLES;
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN), CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN);
	assert_false(p->srv.nap_loop_wins);

	/* A cycle is timed when a message came between two idle moments, in
	 * a run's last CHAN_NAP_SAMPLES decisions. */
	p->srv.nap_turns = CHAN_NAP_RUN - 5;
	p->srv.nap_n[0] = 0;
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0));
	take_request(p);
	queue_request(p, 3);
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0)); /* times the nap's cycle */
	assert_int_equal(p->srv.nap_n[0], 1);
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0)); /* no message between: not timed */
	assert_int_equal(p->srv.nap_n[0], 1);
	/* Two messages between (the client, woken on our CPU, ran before we
	 * waited again and its next request was there): timed as well, as
	 * the time per message.  Timing only one-message cycles left a
	 * napping run with too few samples on one CPU (most of its cycles
	 * hold 2-4 messages), so epochs never decided and the service napped
	 * although the loop measured ~1.4x faster (docs/SCHED.md, "Naps"). */
	take_request(p);
	queue_request(p, 4);
	take_request(p);
	queue_request(p, 5);
	p->srv.nap_cycle_at = thoth_clock_now() - 1000000000u;     /* 1 s ago */
	assert_true(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_int_equal(p->srv.nap_n[0], 2);
	assert_true(p->srv.nap_s[0][1] >= 500000000u);  /* (1 s + this test's time) / 2 */
	assert_true(p->srv.nap_s[0][1] < 1000000000u);
	/* A timed nap that finds nothing counts as a cycle of 2 spin_max and
	 * turns naps off until a short wait. */
	take_request(p);
	p->srv.spin_max = 5000;
	p->srv.nap_skip = 0;
	assert_false(chan_nap(&p->srv, UINT64_MAX, 0));
	assert_false(p->srv.nap_ok);
	assert_int_equal(p->srv.nap_n[0], 4);       /* the cycle before it, and the miss */
	assert_int_equal(p->srv.nap_s[0][3], 10000);
	queue_request(p, 5);
	take_request(p);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/*
 * Stop 32: chan_nap is timed from the idle moment its caller read (the
 * server reads it anyway, for how long the channel sleeps), not from a
 * clock reading of its own an instant later: the cycle ends exactly
 * there and the next one starts there.  Fails against a chan_nap that
 * reads the clock itself (its cycle starts now, not 10 ms ago).
 */
static void test_a_nap_is_timed_from_the_callers_idle_moment(void **state)
{
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->presence[CHAN_CLIENT].word, (uint32_t)(cpu + 1));
	p->srv.spin_max = 1000000000;           /* every wait below is "short" */
	chan_spin_slept(&p->srv, 1000);
	p->srv.nap_turns = CHAN_NAP_RUN - 5;    /* the nap run's timed decisions */
	uint64_t at = thoth_clock_now() - 10000000u;     /* 10 ms ago */
	queue_request(p, 1);
	assert_true(chan_nap(&p->srv, UINT64_MAX, at));
	assert_int_equal(p->srv.nap_cycle_at, at);
	assert_int_equal(p->srv.nap_n[0], 0);   /* no cycle before the first moment */
	take_request(p);
	queue_request(p, 2);
	assert_true(chan_nap(&p->srv, UINT64_MAX, at + 4000000u));
	assert_int_equal(p->srv.nap_n[0], 1);
	assert_int_equal(p->srv.nap_s[0][0], 4000000);  /* one message in 4 ms */
	assert_int_equal(p->srv.nap_cycle_at, at + 4000000u);
	take_request(p);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/* One epoch that runs both ways; the loop's run is made the faster
 * (LOOP_WINS) or the slower by the samples set before it decides. */
static void run_epoch(pair_t *p, bool loop_wins)
{
	assert_int_equal(p->srv.nap_turns % CHAN_NAP_EPOCH, 0);
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), CHAN_NAP_RUN);
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), 0);
	for (unsigned i = 0; i < CHAN_NAP_SAMPLES; i++) {
		p->srv.nap_s[0][i] = loop_wins ? 30000 : 10000;
		p->srv.nap_s[1][i] = loop_wins ? 12000 : 14000;
	}
	p->srv.nap_n[0] = p->srv.nap_n[1] = CHAN_NAP_SAMPLES;
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN),
			 loop_wins ? 0 : CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN);
	assert_int_equal(p->srv.nap_loop_wins, loop_wins);
}

/*
 * Stop 32: while the loop keeps winning, epochs without runs follow each
 * win, 1, 2, 4, 8, then 15 (no nap at all in them: the nap run is the
 * slower way then, and on this VM a nap's timer alone costs ~1.5 us); a
 * nap win brings back a run in every epoch.  Fails against the chooser
 * that runs both ways in every epoch (16 naps in the first quiet one).
 */
static void test_a_loop_that_keeps_winning_quiets_nap_runs(void **state)
{
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	atomic_store(&ctl->presence[CHAN_CLIENT].word, (uint32_t)(cpu + 1));
	p->srv.spin_max = 1000000000;           /* every wait below is "short" */
	chan_spin_slept(&p->srv, 1000);
	p->srv.nap_turns = 0;
	queue_request(p, 1);                    /* a nap taken ends at once */
	const unsigned quiet[] = { 1, 2, 4, 8, 15, 15 };
	for (unsigned k = 0; k < sizeof quiet / sizeof quiet[0]; k++) {
		run_epoch(p, true);
		assert_int_equal(p->srv.nap_quiet, quiet[k]);
		assert_int_equal(naps_in(p, quiet[k] * CHAN_NAP_EPOCH), 0);
		assert_int_equal(p->srv.nap_quiet, 0);
	}
	/* Naps win once: no quiet epoch after it, and the next loop win
	 * starts the back-off from 1 again. */
	run_epoch(p, false);
	assert_int_equal(p->srv.nap_quiet, 0);
	run_epoch(p, true);
	assert_int_equal(p->srv.nap_quiet, 1);
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH), 0);
	/* An epoch whose runs gather too few cycles to decide keeps the
	 * last verdict but quiets nothing after it. */
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), CHAN_NAP_RUN);
	assert_int_equal(naps_in(p, CHAN_NAP_RUN), 0);
	p->srv.nap_n[0] = p->srv.nap_n[1] = 0;
	assert_int_equal(naps_in(p, CHAN_NAP_EPOCH - 2 * CHAN_NAP_RUN), 0);
	assert_true(p->srv.nap_loop_wins);
	assert_int_equal(p->srv.nap_quiet, 0);
	assert_int_equal(p->srv.nap_quiet_next, 0);
	run_epoch(p, true);
	assert_int_equal(p->srv.nap_quiet, 1);
	take_request(p);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/* The service end answers 20 ms after the client starts to wait.  Its
 * status goes back through pthread_join: cmocka's checks belong to the
 * test's own thread. */
static void *answer_later(void *arg)
{
	pair_t *p = arg;
	usleep(20000);
	uint8_t *buf;
	if (chan_try_alloc(&p->srv, 64, &buf))
		return (void *)"alloc";
	fake_msg(buf, 64, 9);
	if (chan_try_send(&p->srv, buf, 64))
		return (void *)"send";
	return NULL;
}

static unsigned wait_answered_later(pair_t *p, int timeout_ms)
{
	pthread_t th;
	void *fail = NULL;
	assert_int_equal(pthread_create(&th, NULL, answer_later, p), 0);
	/* The wait under test has no deadline (that is the point): a bug
	 * that never wakes it ends the process here (SIGALRM), a failure,
	 * rather than hanging the suite until ctest's timeout. */
	alarm(10);
	int r = chan_wait(&p->cli, CHAN_WAIT_RECV, 0, timeout_ms);
	alarm(0);
	assert_int_equal(pthread_join(th, &fail), 0);
	if (fail)
		fail_msg("answer_later: %s failed", (const char *)fail);
	assert_int_equal(r, 0);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	assert_int_equal(chan_release(&p->cli, &m), 0);
	return p->cli.spin_budget;
}

/*
 * Stop 34: a wait that may not spin (its peer needs our CPU to answer) and
 * has no deadline reads no clock, so its sleep is not timed: the spin
 * budget, which a timed sleep sets (chan_spin_slept: halved after a sleep
 * longer than spin_max), stays as it was.  With a deadline the sleep is
 * timed as before.  Fails against stop 33's chan_wait, which halved the
 * budget after the untimed-deadline wait too.
 */
static void test_a_wait_for_a_peer_on_our_cpu_reads_no_clock(void **state)
{
	(void)state;
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *p = pair_new(8, 8, 4096);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	/* The service runs, on our CPU: a spin cannot pay. */
	atomic_store(&ctl->presence[CHAN_SERVER].word, CHAN_PRESENCE_RUNNING | (uint32_t)(cpu + 1));
	p->cli.wait = THOTH_CHAN_SPIN;
	p->cli.spin_max = 50000;
	p->cli.spin_budget = 12346;
	uint64_t skips = p->cli.st.spin_skips;
	assert_int_equal(wait_answered_later(p, -1), 12346);
	assert_true(p->cli.st.spin_skips > skips);      /* the spin was refused, not made */
	assert_true(p->cli.st.sleeps >= 1);
	/* A deadline needs the clock: the 20 ms sleep is timed and the
	 * budget halves (longer than spin_max). */
	assert_int_equal(wait_answered_later(p, 5000), 12346 / 2);
	pair_free(p);
	sched_setaffinity(0, sizeof saved, &saved);
}

/* The chooser's state that decides naps (all of it but nap_cycle_at). */
static void assert_same_chooser(const chan_end_t *a, const chan_end_t *b)
{
	assert_int_equal(a->nap_turns, b->nap_turns);
	assert_int_equal(a->nap_n[0], b->nap_n[0]);
	assert_int_equal(a->nap_n[1], b->nap_n[1]);
	assert_int_equal(a->nap_quiet, b->nap_quiet);
	assert_int_equal(a->nap_quiet_next, b->nap_quiet_next);
	assert_int_equal(a->nap_epoch_quiet, b->nap_epoch_quiet);
	assert_int_equal(a->nap_loop_wins, b->nap_loop_wins);
	assert_int_equal(a->nap_cycle_way, b->nap_cycle_way);
	assert_int_equal(a->nap_cycle_rx, b->nap_cycle_rx);
	assert_int_equal(a->nap_skip, b->nap_skip);
	assert_int_equal(a->nap_ok, b->nap_ok);
}

/* Stop 34 (pages34): a channel side's state (thoth_chan_t, conn_t) is read on every
 * round trip right after a switch; an object that fits in a page must
 * never cost two.  Every size up to a page, kept allocated so malloc's
 * placement moves along: with calloc some of them straddle. */
static void test_channel_state_never_straddles_a_page(void **state)
{
	(void)state;
	enum { N = 4096 / 16 };
	void *p[N];
	int straddled = 0;
	for (int i = 0; i < N; i++) {
		size_t size = (size_t)(i + 1) * 16;
		p[i] = chan_zalloc_unsplit(size);
		assert_non_null(p[i]);
		uintptr_t a = (uintptr_t)p[i];
		straddled += (a >> 12) != ((a + size - 1) >> 12);
		for (size_t k = 0; k < size; k++)
			assert_int_equal(((unsigned char *)p[i])[k], 0);
		memset(p[i], 0xa5, size);       /* dirty, for the next one's zero check */
	}
	for (int i = 0; i < N; i++)
		free(p[i]);
	assert_int_equal(straddled, 0);
	assert_null(chan_zalloc_unsplit(SIZE_MAX - 100));   /* no wrap to a small block */
}

/*
 * Stop 34: chan_nap_at makes chan_nap's every decision, and reads no clock
 * only where the decision needs none: the loop's way settled (a quiet
 * epoch, or the rest of an epoch the loop won), nothing to time.  Two
 * services side by side over eight epochs (loop wins, a quiet epoch, naps
 * win, loop wins again...): one given a reading at every decision, one
 * lazily; same returns, same chooser state after every decision.  Fails
 * against a lazy path that also takes an epoch's first decision (the run
 * that follows a quiet epoch starts with a nap) or the runs, or one that
 * leaves the sleep before an epoch's first decision untimed (nap_ok then
 * never learns that a peer on our CPU got slow).
 */
static void test_a_lazy_nap_decides_as_a_timed_one(void **state)
{
	(void)state;
	cpu_set_t saved;
	int cpu = pin_here(&saved);
	pair_t *a = pair_new(8, 8, 4096), *b = pair_new(8, 8, 4096);
	pair_t *both[2] = { a, b };
	for (int k = 0; k < 2; k++) {
		chan_ctl_t *ctl = (chan_ctl_t *)both[k]->base;
		atomic_store(&ctl->presence[CHAN_CLIENT].word, (uint32_t)(cpu + 1));
		both[k]->srv.spin_max = 1000000000;     /* every wait below is "short" */
		chan_spin_slept(&both[k]->srv, 1000);
		both[k]->srv.nap_turns = 0;
		queue_request(both[k], 1);              /* a nap taken ends at once */
	}
	const bool loop_wins[] = { true, true, false, true, true, true, false, true };
	unsigned epoch = 0, quiet_n = 0, lazy_read = 0;
	for (unsigned i = 0; i < 8 * CHAN_NAP_EPOCH + 17; i++) {
		if (a->srv.nap_turns % CHAN_NAP_EPOCH == 2 * CHAN_NAP_RUN && !a->srv.nap_epoch_quiet) {
			bool lw = loop_wins[epoch++ % 8];
			for (int k = 0; k < 2; k++) {
				for (unsigned j = 0; j < CHAN_NAP_SAMPLES; j++) {
					both[k]->srv.nap_s[0][j] = lw ? 30000 : 10000;
					both[k]->srv.nap_s[1][j] = lw ? 12000 : 14000;
				}
				both[k]->srv.nap_n[0] = both[k]->srv.nap_n[1] = CHAN_NAP_SAMPLES;
			}
		}
		bool ra = chan_nap(&a->srv, UINT64_MAX, thoth_clock_now());
		uint64_t now = 0;
		bool quiet = true;
		bool rb = chan_nap_at(&b->srv, UINT64_MAX, &now, &quiet);
		assert_int_equal(ra, rb);
		assert_same_chooser(&a->srv, &b->srv);
		if (quiet) {
			assert_false(rb);
			assert_int_equal(now, 0);
			/* Never an epoch's last: the sleep after that one is
			 * timed, and sets nap_ok for the next epoch's first
			 * decision, which may nap. */
			assert_int_not_equal(b->srv.nap_turns % CHAN_NAP_EPOCH, 0);
			assert_int_equal(b->srv.nap_cycle_way, 2);   /* NAP_WAY_LOOP, untimed */
			quiet_n++;
		} else {
			lazy_read += now != 0;
		}
	}
	/* Most decisions need no clock; the runs and each epoch's first do. */
	print_message("lazy: %u of %u decisions without a clock read, %u with\n", quiet_n,
		      8 * CHAN_NAP_EPOCH + 17, lazy_read);
	assert_true(epoch >= 3);
	assert_true(quiet_n > 4 * CHAN_NAP_EPOCH);
	assert_true(lazy_read >= 2 * CHAN_NAP_RUN);
	take_request(a);
	take_request(b);
	pair_free(a);
	pair_free(b);
	sched_setaffinity(0, sizeof saved, &saved);
}

static void test_control_page_mismatch_is_refused(void **state)
{
	pair_t *p = pair_new(8, 8, 4096);
	chan_end_t e;
	thoth_chan_limits_t other = { 16, 4096, 8 };
	chan_layout_t lay;
	assert_int_equal(chan_layout_compute(&other, &lay), 0);
	lay.size = p->lay.size;
	assert_int_equal(chan_end_init(&e, p->base, &lay, CHAN_CLIENT), THOTH_E_CORRUPT);
	assert_non_null(strstr(e.why, "handshake agreed"));
	chan_end_fini(&e);
	((chan_ctl_t *)p->base)->magic = 0;
	assert_int_equal(chan_end_init(&e, p->base, &p->lay, CHAN_CLIENT), THOTH_E_CORRUPT);
	assert_non_null(strstr(e.why, "magic"));
	chan_end_fini(&e);
	pair_free(p);
}

static uint32_t ld32_test(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Send stamps (docs/IPC.md "Send stamps"): a producer stamps its messages
 * with CLOCK_MONOTONIC exactly when the consumer of that direction asked,
 * before the page was shared; the consumer reads the stamp back. */
static void send_one(pair_t *p, size_t len, uint64_t *t0, uint64_t *t1)
{
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(&p->cli, len, &buf), 0);
	fake_msg(buf, len, 1);
	*t0 = thoth_clock_now();
	assert_int_equal(chan_try_send(&p->cli, buf, len), 0);
	*t1 = thoth_clock_now();
}

static void test_send_stamps_are_written_only_when_the_consumer_asked(void **state)
{
	uint64_t t0, t1, sent;
	thoth_msg_t m;
	/* not asked: no stamp (tracing is off), nothing to read back */
	pair_t *p = pair_new(8, 8, 4096);
	assert_false(p->cli.stamp_tx);
	send_one(p, 64, &t0, &t1);
	assert_int_equal(ld32_test(chan_slot_at(&p->cli, CHAN_REQ, 0)) & CHAN_SLOT_STAMPED, 0);   /* the tag: unstamped */
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	assert_int_equal(chan_stamp_sent_ns(p->srv.rx_stamp, thoth_clock_now(), &sent), THOTH_E_NOT_FOUND);
	chan_release(&p->srv, &m);
	pair_free(p);

	/* asked for the requests (the service's wish, set before attach):
	 * inline and pool messages carry their send time, 4 ns resolution */
	p = pair_new(8, 8, 4096);
	chan_end_fini(&p->cli);
	chan_end_fini(&p->srv);
	chan_shm_want_stamps(p->base, CHAN_REQ);
	assert_int_equal(chan_end_init(&p->srv, p->base, &p->lay, CHAN_SERVER), 0);
	assert_int_equal(chan_end_init(&p->cli, p->base, &p->lay, CHAN_CLIENT), 0);
	assert_true(p->cli.stamp_tx);
	assert_false(p->srv.stamp_tx);          /* the responses: nobody asked */
	size_t lens[2] = { 64, 3000 };          /* inline, then the pool */
	for (int i = 0; i < 2; i++) {
		send_one(p, lens[i], &t0, &t1);
		assert_int_equal(chan_try_recv(&p->srv, &m), 0);
		assert_int_equal(p->srv.rx_stamp & 3u, CHAN_STAMP_SET);   /* of the MONOTONIC kind */
		assert_int_equal(chan_stamp_sent_ns(p->srv.rx_stamp, thoth_clock_now(), &sent), 0);
		assert_true(sent + 4 >= t0);
		assert_true(sent <= t1);
		assert_int_equal(chan_release(&p->srv, &m), 0);
	}
	/* the answers go unstamped */
	uint8_t *buf;
	assert_int_equal(chan_try_alloc(&p->srv, 64, &buf), 0);
	fake_msg(buf, 64, 2);
	assert_int_equal(chan_try_send(&p->srv, buf, 64), 0);
	assert_int_equal(chan_try_recv(&p->cli, &m), 0);
	assert_int_equal(p->cli.rx_stamp, 0);
	pair_free(p);

	/* any other value of the wish (a hostile or newer service) is "no" */
	p = pair_new(8, 8, 4096);
	chan_end_fini(&p->cli);
	((chan_ctl_t *)p->base)->stamps[CHAN_REQ] = 7;
	assert_int_equal(chan_end_init(&p->cli, p->base, &p->lay, CHAN_CLIENT), 0);
	assert_false(p->cli.stamp_tx);
	pair_free(p);
}

/* The 32 bits read around now, by hand; every value a hostile client can
 * write gives a time within 2^31 ns of now or "no stamp", never more. */
static void test_a_stamp_is_read_around_now_whatever_its_bits(void **state)
{
	uint64_t sent = 12345;
	const uint64_t now = 10000000000ull;           /* 10 s; low 32 bits 1410065408 */
	uint32_t lo = (uint32_t)now;
	assert_int_equal(chan_stamp_sent_ns((lo - 1000) | 1u, now, &sent), 0);
	assert_int_equal(sent, now - 1000);
	assert_int_equal(chan_stamp_sent_ns(lo | 1u, now, &sent), 0);
	assert_int_equal(sent, now);
	/* from the future: 1 ms ahead */
	assert_int_equal(chan_stamp_sent_ns((lo + 1000000) | 1u, now, &sent), 0);
	assert_int_equal(sent, now + 1000000);
	/* across the 2^32 wrap of the low bits: now = 2^32 + 100, sent 200 ns before */
	const uint64_t w = (1ull << 32) + 100;
	assert_int_equal(chan_stamp_sent_ns(((uint32_t)(w - 200) & ~3u) | 1u, w, &sent), 0);
	assert_int_equal(sent, w - 200);
	assert_int_equal(chan_stamp_sent_ns(4u | 1u, w, &sent), 0);   /* just after the wrap: 96 ns ago */
	assert_int_equal(sent, w - 96);
	/* 2^31 ns behind is the oldest; one step further reads as the future */
	assert_int_equal(chan_stamp_sent_ns((lo - 0x80000000u + 4u) | 1u, now, &sent), 0);
	assert_int_equal(sent, now - 0x80000000ull + 4);
	assert_int_equal(chan_stamp_sent_ns((lo - 0x80000000u - 4u) | 1u, now, &sent), 0);
	assert_true(sent > now && sent - now <= 0x80000000ull);
	/* early in a clock's life: never below 0 */
	assert_int_equal(chan_stamp_sent_ns(0xfffffff0u | 1u, 8, &sent), 0);   /* 24 ns before 8 */
	assert_int_equal(sent, 0);
	/* no stamp, or another clock's: not a send time (sent untouched) */
	sent = 12345;
	assert_int_equal(chan_stamp_sent_ns(0, now, &sent), THOTH_E_NOT_FOUND);
	assert_int_equal(chan_stamp_sent_ns(lo & ~3u, now, &sent), THOTH_E_NOT_FOUND);
	assert_int_equal(chan_stamp_sent_ns(lo | 3u, now, &sent), THOTH_E_NOT_FOUND);
	assert_int_equal(chan_stamp_sent_ns(0xffffffffu, now, &sent), THOTH_E_NOT_FOUND);
	assert_int_equal(sent, 12345);
	/* every pattern: some time within 2^31 ns of now, or none */
	uint32_t x = 0x9e3779b9u;
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		int r = chan_stamp_sent_ns(x, now, &sent);
		if (r) {
			assert_int_equal(r, THOTH_E_NOT_FOUND);
			assert_true((x & 3u) != 1u);
			continue;
		}
		uint64_t d = sent > now ? sent - now : now - sent;
		assert_true(d <= 0x80000000ull);
	}
}

/* chan_rx_peek (a governed service's look at its waiting requests,
 * thoth_chan_server_waiting): the messages published and not yet taken,
 * by their tags alone, with their stamp words; nothing of the end
 * changes; whatever the peer writes (a head anywhere, tags in every slot,
 * stale or misplaced tags) it counts at most the ring's slots and stops
 * at the first slot whose tag is not the next message's. */
static void test_a_peek_counts_the_published_requests_and_trusts_no_head(void **state)
{
	uint64_t t0, t1, sent;
	uint32_t stamps[32];
	pair_t *p = pair_new(8, 8, 4096);
	chan_end_fini(&p->cli);
	chan_end_fini(&p->srv);
	chan_shm_want_stamps(p->base, CHAN_REQ);
	assert_int_equal(chan_end_init(&p->srv, p->base, &p->lay, CHAN_SERVER), 0);
	assert_int_equal(chan_end_init(&p->cli, p->base, &p->lay, CHAN_CLIENT), 0);
	chan_ctl_t *ctl = (chan_ctl_t *)p->base;
	assert_int_equal(chan_rx_peek(&p->srv, 32, stamps), 0);
	/* three sent (inline, pool, inline): three seen, with their stamps */
	size_t lens[3] = { 64, 3000, 100 };
	uint64_t first = 0;
	for (int i = 0; i < 3; i++) {
		send_one(p, lens[i], &t0, &t1);
		if (!i)
			first = t0;
	}
	memset(stamps, 0, sizeof stamps);
	assert_int_equal(chan_rx_peek(&p->srv, 32, stamps), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(chan_stamp_sent_ns(stamps[i], thoth_clock_now(), &sent), 0);
		assert_true(sent + 4 >= first && sent <= t1);
	}
	assert_int_equal(chan_rx_peek(&p->srv, 2, NULL), 2);         /* MAX holds */
	/* read only: the consumer still takes all three, in order */
	uint32_t tail = p->srv.rx_tail;
	assert_int_equal(atomic_load(&ctl->dir[CHAN_REQ].tail), 0);
	assert_int_equal(tail, 0);
	thoth_msg_t m;
	assert_int_equal(chan_try_recv(&p->srv, &m), 0);
	assert_int_equal(chan_release(&p->srv, &m), 0);
	assert_int_equal(chan_rx_peek(&p->srv, 32, NULL), 2);
	/* a hostile head (anywhere) is never read: still 2, no error */
	atomic_store(&ctl->dir[CHAN_REQ].head, 0x7fffffffu);
	assert_int_equal(chan_rx_peek(&p->srv, 32, NULL), 2);
	assert_int_equal(p->srv.err, 0);
	atomic_store(&ctl->dir[CHAN_REQ].head, 3);
	pair_free(p);

	/* Tags forged in every slot, each the right one for its index and
	 * on and on: at most the ring's 8 slots, whatever MAX says. */
	p = pair_new(8, 8, 4096);
	ctl = (chan_ctl_t *)p->base;
	uint8_t *ring = p->base + p->lay.ring_off[CHAN_REQ];
	for (uint32_t i = 0; i < 8; i++) {
		uint32_t tag = chan_slot_tag(CHAN_SLOT_INLINE | CHAN_SLOT_STAMPED, i);
		memcpy(ring + (size_t)i * THOTH_CHAN_SLOT_SIZE, &tag, 4);
	}
	atomic_store(&ctl->dir[CHAN_REQ].head, 1000000u);
	assert_int_equal(chan_rx_peek(&p->srv, 1000, stamps), 8);
	/* a gap (slot 3 holds a stale tag, message 3 - 8's): stops there */
	uint32_t stale = chan_slot_tag(CHAN_SLOT_INLINE, 3u - 8u);
	memcpy(ring + 3u * THOTH_CHAN_SLOT_SIZE, &stale, 4);
	assert_int_equal(chan_rx_peek(&p->srv, 1000, stamps), 3);
	/* a tag for another index in the first slot: nothing */
	uint32_t other = chan_slot_tag(CHAN_SLOT_INLINE, 5);
	memcpy(ring, &other, 4);
	assert_int_equal(chan_rx_peek(&p->srv, 1000, stamps), 0);
	/* a peek after a sticky error: nothing */
	p->srv.err = THOTH_E_CORRUPT;
	assert_int_equal(chan_rx_peek(&p->srv, 1000, stamps), 0);
	p->srv.err = 0;
	pair_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits_are_checked_with_reasons),
		cmocka_unit_test(test_inline_roundtrip_and_no_wake_when_peer_awake),
		cmocka_unit_test(test_inline_copies_are_exact_at_every_length),
		cmocka_unit_test(test_ring_full_then_space),
		cmocka_unit_test(test_a_receive_owes_the_full_ring_wakeup_until_its_next_step),
		cmocka_unit_test(test_pool_runs_lend_and_return),
		cmocka_unit_test(test_hostile_service_descriptors_are_refused),
		cmocka_unit_test(test_hostile_indices_are_refused),
		cmocka_unit_test(test_hostile_tags_and_heads_are_refused),
		cmocka_unit_test(test_receive_takes_and_refuses_by_the_rules),
		cmocka_unit_test(test_double_release_is_detected),
		cmocka_unit_test(test_wait_flags_make_the_producer_wake),
		cmocka_unit_test(test_disarm_both_clears_both_flags_and_says_running),
		cmocka_unit_test(test_presence_tid_is_the_waiting_threads_also_a_recycled_handles),
		cmocka_unit_test(test_presence_tid_after_fork_is_the_childs),
		cmocka_unit_test(test_control_page_mismatch_is_refused),
		cmocka_unit_test(test_a_napping_service_is_woken_without_a_doorbell),
		cmocka_unit_test(test_unread_doorbells_are_bounded_by_the_arms),
		cmocka_unit_test(test_a_client_claims_only_where_the_service_rearms),
		cmocka_unit_test(test_a_futex_sleepers_flag_is_never_claimed),
		cmocka_unit_test(test_a_futex_sleeper_counts_no_arms),
		cmocka_unit_test(test_the_doorbell_room_is_counted),
		cmocka_unit_test(test_a_stale_round_never_cuts_spins_short),
		cmocka_unit_test(test_nap_takes_a_message_and_learns_from_a_miss),
		cmocka_unit_test(test_a_nap_is_timed_from_the_callers_idle_moment),
		cmocka_unit_test(test_a_loop_that_keeps_winning_quiets_nap_runs),
		cmocka_unit_test(test_a_wait_for_a_peer_on_our_cpu_reads_no_clock),
		cmocka_unit_test(test_a_lazy_nap_decides_as_a_timed_one),
		cmocka_unit_test(test_channel_state_never_straddles_a_page),
		cmocka_unit_test(test_naps_back_off_after_misses_and_yield_to_a_faster_loop),
		cmocka_unit_test(test_send_stamps_are_written_only_when_the_consumer_asked),
		cmocka_unit_test(test_a_stamp_is_read_around_now_whatever_its_bits),
		cmocka_unit_test(test_a_peek_counts_the_published_requests_and_trusts_no_head),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
