/*
 * pool.c - an instance pool (SCALE-3, include/thoth/pool.h): channels to
 * every instance a resolver knows, one chosen per call, health by hang-up,
 * registry pushes and outlier ejection, idempotent calls retried.
 *
 * Ownership: the pool owns its instances (inst_t) and every call in flight
 * (call_t, on its instance's FIFO list).  A call ends exactly once, through
 * finish(): answered, failed, timed out, or closed with the pool.  Callbacks
 * may start new calls, so an instance is never freed while its receive loop
 * runs (busy); it is marked dead and freed when that loop returns.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>

#include "thoth/channel.h"
#include "thoth/error.h"
#include "thoth/pool.h"
#include "thoth/service.h"
#include "thoth/tcp.h"
#include "thoth/wire.h"
#include "chan_handshake.h"
#include "resolver_internal.h"
#include "shard_internal.h"
#include "tcp_internal.h"
#include "why.h"

enum {
	DEFAULT_MAX_IN_FLIGHT = 64,
	DEFAULT_EJECT_CONSECUTIVE = 5,
	DEFAULT_EJECT_BASE_MS = 30000,
	DEFAULT_EJECT_MAX_MS = 300000,
	DEFAULT_EJECT_DECAY_MS = 10000,
	DEFAULT_MAX_EJECTED_PERCENT = 10,
	DEFAULT_WEIGHT_EXPIRY_MS = 10000,
	MAX_ATTEMPTS = 3,
	HANDSHAKE_TIMEOUT_MS = 500,
	/* A connection that failed (refused, or its handshake ran past
	 * HANDSHAKE_TIMEOUT_MS on a loaded machine) is tried again after
	 * this, doubling per failure in a row, at most eject_base_ms: a
	 * freshly started instance whose first handshake came late is not
	 * an outlier and must not sit out a 30 s ejection. */
	RECONNECT_BASE_MS = 100,
	RESP_INLINE = 1024,             /* response structs up to this size live on the stack */
};

#define COST_MIN (1.0 / 16)
#define COST_MAX 16.0

/* An instance's failure reason: a local one starts "the service at PATH: "
 * (a socket path: up to 107 bytes) before the channel's own reason, which
 * may name the path again; 200 bytes cut the reason itself off. */
#define POOL_WHY_MAX 512

typedef struct inst inst_t;

typedef struct call {
	struct call *next;
	const thoth_method_info_t *m;
	uint8_t *msg;                   /* the encoded request, kept for a retry */
	size_t len;
	uint32_t request_id;
	uint32_t attempts;
	uint64_t deadline_ns;           /* 0: none */
	thoth_pool_done_fn done;
	void *arg;
	bool raw;                       /* thoth_pool_call: keep the answer's bytes */
	bool keyed;                     /* routed by key (SCALE-4) */
	uint64_t key;
	uint32_t shard_member, shard_gen;       /* bounded loads: what to release */
	bool shard_held;
} call_t;

struct inst {
	char addr[108];
	uint64_t instance_id;
	uint32_t pid;
	uint16_t numa_node;
	uint8_t locality;               /* THOTH_LOCALITY_*: another host is the farthest replica */
	thoth_chan_t *ch;               /* a socket path's channel, or NULL */
	thoth_tcp_conn_t *tcp;          /* a "tcp:" address's connection (another host), or NULL;
					 * neither: not connected (failed; retried at readmission) */
	thoth_source_t *src;
	/* A connection being opened on the loop, each step when its fd is
	 * ready, never waiting: TCP (connect, hello, its answer) or a channel
	 * (the open request, its reply); the timer ends the attempt at
	 * HANDSHAKE_TIMEOUT_MS.  At most one of the two is set. */
	thoth_tcp_conn_t *opening;
	thoth__chan_opening_t *opening_ch;
	thoth_timer_t *open_timer;
	char last_error[POOL_WHY_MAX];  /* why the last connection attempt failed ("" none) */
	call_t *head, *tail;
	uint32_t outstanding;           /* our calls waiting on it (the list) */
	uint32_t load;                  /* the channel's view: requests sent - responses received,
					 * timed-out calls included (they still occupy the service) */
	int slot;                       /* index in the usable arrays, -1 when not usable */
	uint32_t consecutive;           /* failures in a row */
	uint32_t ejections;
	uint32_t connect_fails;         /* failed connections in a row */
	uint64_t eject_ms;              /* the length the pool chose for its last ejection */
	bool ejected;
	bool reconnecting;              /* out only until the next connection try, not ejected */
	uint64_t ejected_until_ns, readmitted_ns;
	thoth_timer_t *readmit;
	uint32_t util_permille, qps, reports;
	double weight;                  /* qps / utilisation of the last useful report; 0: none */
	uint64_t weight_ns;
	double cost;
	uint64_t calls, failures;
	bool seen;                      /* in the latest resolver snapshot */
	bool busy, dead;
};

/* The loop's callbacks carry the instance; the pool is found through this
 * record, allocated right after the instance. */
typedef struct inst_ref {
	struct thoth_pool *p;
	inst_t *in;
} inst_ref_t;

struct thoth_pool {
	thoth_loop_t *loop;
	thoth_pool_config_t cfg;
	char *name;
	char *token_file;               /* the cluster token for "tcp:" instances (thoth/tcp.h) */
	thoth_resolver_t *resolver;
	inst_t **inst;
	size_t n, cap;
	/* The usable instances, as the selection sees them. */
	inst_t **usable;
	thoth_pool_slot_t *slots;
	uint32_t n_usable;
	uint64_t rng;
	uint32_t rr;
	uint32_t next_request_id;
	uint16_t numa_node;             /* ours, for replica choice */
	thoth_timer_t *timeout;
	uint64_t timeout_at;
	thoth_pool_stats_t stats;
	bool closing;
	/* SCALE-4: the shard table over the usable instances' shard ids */
	thoth_shard_table_t *shard;
	uint64_t *shard_ids;            /* member index -> shard id (instance_id) */
	size_t n_shard_ids;
	uint32_t shard_gen;
	bool shard_dirty;
	char shard_why[160];
	/* thoth_pool_call's answer */
	uint8_t *reply;
	size_t reply_cap, reply_len;
	int reply_err;
	bool reply_done;
	thoth_pool_result_t reply_result;
	char reply_why[160];
};

const char *thoth_pool_policy_name(thoth_pool_policy_t policy)
{
	switch (policy) {
	case THOTH_POOL_P2C: return "p2c";
	case THOTH_POOL_ROUND_ROBIN: return "round-robin";
	case THOTH_POOL_PICK_FIRST: return "pick-first";
	default: return "unknown";
	}
}

/* ---- the choice ------------------------------------------------------------ */

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint32_t thoth_pool_select(thoth_pool_policy_t policy, const thoth_pool_slot_t *slots, uint32_t n,
			   uint64_t *rng, uint32_t *rr)
{
	if (n <= 1)
		return 0;
	switch (policy) {
	case THOTH_POOL_ROUND_ROBIN:
		return (*rr)++ % n;
	case THOTH_POOL_PICK_FIRST:
		return 0;
	default: {
		/* Two distinct candidates from one random draw (Lemire's range
		 * reduction on each half). */
		uint64_t x = xorshift(rng);
		uint32_t a = (uint32_t)(((x & 0xffffffffu) * n) >> 32);
		uint32_t b = (uint32_t)(((x >> 32) * (n - 1)) >> 32);
		b += b >= a;
		float sa = (float)(slots[a].outstanding + 1) * slots[a].cost;
		float sb = (float)(slots[b].outstanding + 1) * slots[b].cost;
		return sb < sa ? b : a;
	}
	}
}

/* ---- the usable set ---------------------------------------------------------- */

/* ---- the link to an instance: a channel (this host) or TCP (another) ------------------- */

/* The pool needs a handful of operations on an instance's connection; a
 * channel and a TCP connection (thoth/tcp.h) both offer them with the same
 * meaning (message level, answered in order, an fd to watch, an arm that
 * says whether to receive again), so the rest of the pool does not care
 * which an instance has. */
static bool link_up(const inst_t *in)
{
	return in->ch || in->tcp;
}

static int link_arm(inst_t *in)
{
	return in->tcp ? thoth_tcp_arm(in->tcp) : thoth_chan_arm(in->ch);
}

static int link_recv(inst_t *in, thoth_msg_t *msg)
{
	return in->tcp ? thoth_tcp_recv(in->tcp, msg, 0) : thoth_chan_recv(in->ch, msg, 0);
}

static void link_release(inst_t *in, thoth_msg_t *msg)
{
	if (in->tcp)
		thoth_tcp_release(in->tcp, msg);
	else if (in->ch)
		thoth_chan_release(in->ch, msg);
}

static int link_send(inst_t *in, const uint8_t *msg, size_t len, uint32_t request_id)
{
	uint8_t *buf;
	int r = in->tcp ? thoth_tcp_alloc(in->tcp, len, &buf) : thoth_chan_alloc(in->ch, len, &buf, 0);
	if (r)
		return r;
	memcpy(buf, msg, len);
	thoth_st32(buf + 32, request_id);       /* header: request_id */
	return in->tcp ? thoth_tcp_send(in->tcp, buf, len)
		       : thoth_chan_send_flags(in->ch, buf, len, 0, THOTH_CHAN_URGENT);
}

/* Requests sent and responses received on the link, as it counts them. */
static void link_counts(const inst_t *in, uint64_t *sent, uint64_t *received)
{
	if (in->tcp) {
		thoth_tcp_counts(in->tcp, sent, received);
		return;
	}
	thoth_chan_stats_t st;
	thoth_chan_stats(in->ch, &st);
	*sent = st.sent_inline + st.sent_pool;
	*received = st.received;
}

static void link_close(inst_t *in)
{
	thoth_chan_close(in->ch);
	thoth_tcp_close(in->tcp);
	in->ch = NULL;
	in->tcp = NULL;
}

static void rebuild_usable(thoth_pool_t *p)
{
	p->shard_dirty = true;
	p->n_usable = 0;
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		in->slot = -1;
		if (in->dead || in->ejected || !link_up(in))
			continue;
		in->slot = (int)p->n_usable;
		p->usable[p->n_usable] = in;
		p->slots[p->n_usable] = (thoth_pool_slot_t){ .outstanding = in->load,
							     .cost = (float)in->cost };
		p->n_usable++;
	}
}

static void changed(thoth_pool_t *p)
{
	rebuild_usable(p);
	if (p->cfg.on_change && !p->closing)
		p->cfg.on_change(p->cfg.arg);
}

/* Outstanding requests as the channel counts them (its own counters of
 * what went into the request ring and came out of the response ring: no
 * round trip, and a call that timed out keeps counting until the service
 * answers it). */
static void refresh_load(thoth_pool_t *p, inst_t *in)
{
	if (!link_up(in))
		return;
	uint64_t sent, received;
	link_counts(in, &sent, &received);
	in->load = sent > received ? (uint32_t)(sent - received) : 0;
	if (in->slot >= 0)
		p->slots[in->slot].outstanding = in->load;
}

static inline void set_outstanding(thoth_pool_t *p, inst_t *in, uint32_t v)
{
	in->outstanding = v;
	refresh_load(p, in);
}

/* ORCA-style weights: qps / utilisation per instance, normalised to the
 * mean of those that have one; an instance without a recent useful report
 * costs 1 (the mean). */
static void recompute_costs(thoth_pool_t *p)
{
	uint64_t now = thoth_clock_now(), expiry = (uint64_t)p->cfg.weight_expiry_ms * 1000000ull;
	double sum = 0;
	size_t k = 0;
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		if (in->weight > 0 && now - in->weight_ns > expiry)
			in->weight = 0;
		if (in->weight > 0) {
			sum += in->weight;
			k++;
		}
	}
	double mean = k ? sum / (double)k : 0;
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		double c = in->weight > 0 ? mean / in->weight : 1.0;
		in->cost = c < COST_MIN ? COST_MIN : c > COST_MAX ? COST_MAX : c;
		if (in->slot >= 0)
			p->slots[in->slot].cost = (float)in->cost;
	}
}

/* ---- ending calls -------------------------------------------------------------- */

static void finish(thoth_pool_t *p, call_t *c, int err, const void *resp, const inst_t *in,
		   uint32_t remote_code, const char *why)
{
	thoth_pool_result_t res = {
		.instance_id = in ? in->instance_id : 0,
		.pid = in ? in->pid : 0,
		.attempts = c->attempts,
		.remote_code = remote_code,
		.why = why ? why : "",
	};
	if (c->shard_held && c->shard_gen == p->shard_gen && p->shard)
		thoth_shard_release(p->shard, c->shard_member);
	c->shard_held = false;
	if (err && err != THOTH_E_REMOTE)
		p->stats.failed++;
	else
		p->stats.completed++;
	c->done(c->arg, err, resp, &res);
	free(c->msg);
	free(c);
}

static void unlink_call(thoth_pool_t *p, inst_t *in, call_t *c, call_t *prev)
{
	if (prev)
		prev->next = c->next;
	else
		in->head = c->next;
	if (in->tail == c)
		in->tail = prev;
	c->next = NULL;
	set_outstanding(p, in, in->outstanding - 1);
}

static void inst_down(thoth_pool_t *p, inst_t *in, int err, const char *why);
static int send_on(thoth_pool_t *p, inst_t *in, call_t *c);

/* ---- outlier ejection ------------------------------------------------------------ */

static void readmit_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static uint64_t eject_ms(const thoth_pool_t *p, uint32_t times)
{
	uint64_t ms = p->cfg.eject_base_ms;
	for (uint32_t i = 1; i < times && ms < p->cfg.eject_max_ms; i++)
		ms *= 2;
	return ms < p->cfg.eject_max_ms ? ms : p->cfg.eject_max_ms;
}

/* IN out of the usable set for MS from NOW, then readmit_fired tries it
 * again: an ejection, or (RECONNECTING) a connection to retry. */
static void sit_out(thoth_pool_t *p, inst_t *in, uint64_t now, uint64_t ms, bool reconnecting)
{
	in->ejected = true;
	in->reconnecting = reconnecting;
	in->ejected_until_ns = now + ms * 1000000ull;
	if (in->readmit)
		thoth_timer_cancel(p->loop, in->readmit);
	in->readmit = NULL;
	(void)thoth_loop_add_timer_in(p->loop, ms * 1000000ull, ms * 10000ull, readmit_fired, in,
				      &in->readmit);
	changed(p);
}

static void eject(thoth_pool_t *p, inst_t *in, bool forced)
{
	if (in->ejected || in->dead)
		return;
	if (!forced) {
		size_t ejected = 0;
		for (size_t i = 0; i < p->n; i++)
			ejected += p->inst[i]->ejected;
		size_t allowed = p->n * p->cfg.max_ejected_percent / 100;
		if (allowed < 1)
			allowed = 1;
		if (ejected >= allowed)
			return;         /* the bound: keep serving on a failing instance */
	}
	uint64_t now = thoth_clock_now();
	/* Envoy's decay: one level forgotten per eject_decay_ms healthy since
	 * the readmission. */
	if (in->ejections && in->readmitted_ns) {
		uint64_t levels = (now - in->readmitted_ns) / ((uint64_t)p->cfg.eject_decay_ms * 1000000ull);
		in->ejections = levels >= in->ejections ? 0 : in->ejections - (uint32_t)levels;
	}
	in->ejections++;
	uint64_t ms = eject_ms(p, in->ejections);
	in->eject_ms = ms;
	p->stats.ejections++;
	sit_out(p, in, now, ms, false);
}

/* IN could not be connected: out of the usable set until a retry after
 * the reconnect backoff (not an ejection: its count and the ejected bound
 * are for instances that answer badly, not for a late handshake). */
static void connect_later(thoth_pool_t *p, inst_t *in)
{
	uint64_t ms = RECONNECT_BASE_MS;
	for (uint32_t i = 1; i < in->connect_fails && ms < p->cfg.eject_base_ms; i++)
		ms *= 2;
	if (ms > p->cfg.eject_base_ms)
		ms = p->cfg.eject_base_ms;
	sit_out(p, in, thoth_clock_now(), ms, true);
}

static void failure(thoth_pool_t *p, inst_t *in)
{
	in->failures++;
	if (++in->consecutive >= p->cfg.eject_consecutive)
		eject(p, in, false);
}

/* ---- receiving ------------------------------------------------------------------- */

static void handle_message(thoth_pool_t *p, inst_t *in, const thoth_msg_t *msg)
{
	thoth_msg_header_t h;
	memset(&h, 0, sizeof h);
	if (thoth_wire_header_decode(msg->data, msg->len, &h) || !(h.flags & THOTH_MSG_RESPONSE))
		return;                 /* not an answer: the channel's checks keep worse out */
	call_t *c = in->head, *prev = NULL;
	while (c && c->request_id != h.request_id) {
		prev = c;
		c = c->next;
	}
	if (!c)
		return;                 /* a call that timed out already */
	unlink_call(p, in, c, prev);
	in->calls++;
	uint64_t scratch[1024];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	if (h.flags & THOTH_MSG_ERROR) {
		thoth_decoder_t d;
		thoth_decoder_init(&d, msg->data + THOTH_WIRE_HEADER_SIZE, h.body_len, &arena);
		uint32_t code = 0;
		int32_t status = 0;
		thoth_str_t text = { 0 };
		char why[160];
		int r = thoth_wire_decode_error(&d, &code, &status, &text);
		snprintf(why, sizeof why, "%.*s", r ? 0 : (int)text.len, r ? "" : (const char *)text.ptr);
		in->consecutive = 0;    /* an answer: the instance works */
		finish(p, c, r ? r : thoth_remote_result(status), NULL, in, code, why);
		return;
	}
	if (c->raw) {
		/* thoth_pool_call decodes it itself, from a copy that outlives
		 * the channel's buffer. */
		if (p->reply_cap < msg->len) {
			void *q = NULL;
			if (posix_memalign(&q, THOTH_WIRE_ALIGN, msg->len)) {
				finish(p, c, THOTH_E_NOMEM, NULL, in, 0, "no memory for the answer");
				return;
			}
			free(p->reply);
			p->reply = q;
			p->reply_cap = msg->len;
		}
		memcpy(p->reply, msg->data, msg->len);
		p->reply_len = msg->len;
		in->consecutive = 0;
		finish(p, c, 0, NULL, in, 0, NULL);
		return;
	}
	uint64_t inline_resp[RESP_INLINE / 8];
	void *resp = c->m->resp_struct_size <= sizeof inline_resp ? inline_resp
								   : calloc(1, c->m->resp_struct_size);
	int r = resp ? thoth_method_decode(c->m, true, msg->data, msg->len, resp, &arena) : THOTH_E_NOMEM;
	if (r) {
		failure(p, in);
		finish(p, c, r, NULL, in, 0, "the instance's answer does not decode");
	} else {
		in->consecutive = 0;
		finish(p, c, 0, resp, in, 0, NULL);
	}
	if (resp != inline_resp)
		free(resp);
}

static void open_abandon(thoth_pool_t *p, inst_t *in);

static void inst_free(thoth_pool_t *p, inst_t *in)
{
	if (in->src)
		thoth_loop_remove_fd(p->loop, in->src);
	in->src = NULL;                 /* an opening's source, too: removed once */
	if (in->readmit)
		thoth_timer_cancel(p->loop, in->readmit);
	open_abandon(p, in);
	link_close(in);
	free(in);
}

static void remove_inst(thoth_pool_t *p, inst_t *in)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->inst[i] == in) {
			p->inst[i] = p->inst[--p->n];
			break;
		}
}

static void drain(thoth_pool_t *p, inst_t *in)
{
	in->busy = true;
	int err = 0;
	for (;;) {
		int a = link_arm(in);
		if (a < 0) {
			err = a;
			break;
		}
		thoth_msg_t msg;
		int r;
		while (!in->dead && (r = link_recv(in, &msg)) == 0) {
			handle_message(p, in, &msg);
			link_release(in, &msg);
		}
		if (in->dead)
			break;
		if (r != THOTH_E_AGAIN) {
			err = r;
			break;
		}
		a = link_arm(in);
		if (a < 0) {
			err = a;
			break;
		}
		if (a == 0)
			break;
	}
	if (!in->dead)
		refresh_load(p, in);
	if (!in->dead && err) {
		inst_down(p, in, err, err == THOTH_E_PEER_GONE ? "the instance hung up (died or closed)"
							       : "the instance's channel failed");
		/* thothd re-lists it if it still lives (its forget re-enters
		 * sync_instances, which skips a dead instance). */
		thoth_resolver_forget(p->resolver, in->addr);
	}
	in->busy = false;
	if (in->dead) {
		remove_inst(p, in);
		inst_free(p, in);
	}
}

static void on_chan_fd(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)fd;
	(void)events;
	inst_ref_t *ref = arg;
	drain(ref->p, ref->in);
}

/* ---- sending ------------------------------------------------------------------------ */

static int send_on(thoth_pool_t *p, inst_t *in, call_t *c)
{
	int r = link_send(in, c->msg, c->len, c->request_id);
	if (r)
		return r;
	c->attempts++;
	c->next = NULL;
	if (in->tail)
		in->tail->next = c;
	else
		in->head = c;
	in->tail = c;
	set_outstanding(p, in, in->outstanding + 1);
	return 0;
}

static void timeout_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);

static void arm_timeout(thoth_pool_t *p, uint64_t at)
{
	if (p->timeout && p->timeout_at <= at)
		return;
	if (p->timeout)
		thoth_timer_cancel(p->loop, p->timeout);
	p->timeout = NULL;
	if (thoth_loop_add_timer(p->loop, at, 1000000, timeout_fired, p, &p->timeout) == 0)
		p->timeout_at = at;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The member index of shard id ID in the current table, or -1. */
static long shard_member_of(const thoth_pool_t *p, uint64_t id)
{
	size_t lo = 0, hi = p->n_shard_ids;
	while (lo < hi) {                       /* shard_ids is sorted */
		size_t mid = lo + (hi - lo) / 2;
		if (p->shard_ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < p->n_shard_ids && p->shard_ids[lo] == id ? (long)lo : -1;
}

/* Bounded loads count calls in flight.  A fresh table starts at zero, but
 * the calls already sent on the instances that stay are still in flight:
 * each is charged to its instance's member in the new table (and released
 * from it when it ends), or the first keys placed after an instance came or
 * went would be weighed against a table that believes every shard idle and
 * pile onto shards already at the cap (pool44: the calls retried from a
 * killed shard all went home, onto shards already holding 1.25x the
 * average).  A call on an instance that is no longer a member (ejected,
 * its shard gone) has nothing to charge: it is let go. */
static void shard_charge_in_flight(thoth_pool_t *p)
{
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		long m = in->dead ? -1 : shard_member_of(p, in->instance_id);
		for (call_t *c = in->head; c; c = c->next) {
			if (!c->shard_held)
				continue;
			if (m < 0) {
				c->shard_held = false;
				continue;
			}
			shard_charge(p->shard, (uint32_t)m);
			c->shard_member = (uint32_t)m;
			c->shard_gen = p->shard_gen;
		}
	}
}

/* The table over the distinct shard ids of the usable instances. */
static int shard_rebuild(thoth_pool_t *p)
{
	p->shard_dirty = false;
	p->shard_gen++;
	thoth_shard_table_free(p->shard);
	p->shard = NULL;
	free(p->shard_ids);
	p->shard_ids = NULL;
	p->n_shard_ids = 0;
	if (!p->n_usable) {
		snprintf(p->shard_why, sizeof p->shard_why, "no usable instance");
		return THOTH_E_NOT_FOUND;
	}
	uint64_t *ids = malloc(p->n_usable * sizeof *ids);
	if (!ids)
		return THOTH_E_NOMEM;
	size_t n = 0;
	for (uint32_t i = 0; i < p->n_usable; i++)
		ids[n++] = p->usable[i]->instance_id;
	qsort(ids, n, sizeof *ids, cmp_u64);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)          /* replicas share an id: one member */
		if (!k || ids[k - 1] != ids[i])
			ids[k++] = ids[i];
	thoth_shard_config_t sc = { .algo = (thoth_shard_algo_t)p->cfg.iface->shard_algo,
				    .balance = p->cfg.shard_bounded ? 0.0 : -1.0 };
	uint64_t *member_ids = ids;
	size_t members = k;
	uint64_t *seq = NULL;
	if (sc.algo == THOTH_SHARD_JUMP) {
		/* Shards 0..max: a gap is a shard whose keys have nowhere to go. */
		if (!ids[0] || ids[k - 1] - 1 >= THOTH_SHARD_MAX_JUMP) {
			free(ids);
			snprintf(p->shard_why, sizeof p->shard_why, "jump: shard ids must be 1..%u",
				 THOTH_SHARD_MAX_JUMP);
			return THOTH_E_INVAL;
		}
		members = (size_t)ids[k - 1];
		member_ids = NULL;
		seq = ids;
	}
	int r = thoth_shard_table_new(&sc, member_ids, members, &p->shard, p->shard_why,
				      sizeof p->shard_why);
	if (r) {
		free(ids);
		return r;
	}
	if (seq) {
		/* member m is shard m, instance_id m + 1 */
		uint64_t *all = malloc(members * sizeof *all);
		if (!all) {
			free(ids);
			thoth_shard_table_free(p->shard);
			p->shard = NULL;
			return THOTH_E_NOMEM;
		}
		for (size_t m = 0; m < members; m++)
			all[m] = THOTH_POOL_SHARD_ID(m);
		free(ids);
		ids = all;
	}
	p->shard_ids = ids;
	p->n_shard_ids = members;
	shard_charge_in_flight(p);
	return 0;
}

/* The replica of KEY's shard to send to, or NULL with *ERR. */
static inst_t *route_key(thoth_pool_t *p, call_t *c, int *err)
{
	if (p->shard_dirty || !p->shard) {
		int r = shard_rebuild(p);
		if (r) {
			*err = r;
			return NULL;
		}
	}
	uint32_t m = p->cfg.shard_bounded ? thoth_shard_acquire(p->shard, c->key)
					  : thoth_shard_lookup(p->shard, c->key);
	uint64_t id = p->shard_ids[m];
	thoth_shard_replica_t reps[64];
	inst_t *who[64];
	uint32_t n = 0;
	for (uint32_t i = 0; i < p->n_usable && n < 64; i++) {
		inst_t *in = p->usable[i];
		if (in->instance_id != id)
			continue;
		reps[n] = (thoth_shard_replica_t){
			.id = (uint64_t)(uintptr_t)in->pid,
			.distance = in->locality == THOTH_LOCALITY_REMOTE ? THOTH_SHARD_REMOTE
			            : in->numa_node == p->numa_node ? THOTH_SHARD_SAME_NODE : THOTH_SHARD_SAME_HOST,
			.usable = in->load < p->cfg.max_in_flight,
		};
		who[n++] = in;
	}
	int k = thoth_shard_pick_replica(reps, n, c->key);
	if (k < 0) {
		if (p->cfg.shard_bounded)
			thoth_shard_release(p->shard, m);
		*err = n ? THOTH_E_AGAIN : THOTH_E_NOT_FOUND;
		return NULL;
	}
	if (p->cfg.shard_bounded) {
		c->shard_held = true;
		c->shard_member = m;
		c->shard_gen = p->shard_gen;
	}
	return who[k];
}

/* Pick an instance with room and send C there.  0, NOT_FOUND, AGAIN. */
static int dispatch(thoth_pool_t *p, call_t *c)
{
	if (c->keyed) {
		for (uint32_t tries = 0; tries < 4; tries++) {
			int err = 0;
			if (c->shard_held && c->shard_gen == p->shard_gen && p->shard)
				thoth_shard_release(p->shard, c->shard_member);
			c->shard_held = false;
			inst_t *in = route_key(p, c, &err);
			if (!in)
				return err;
			int r = send_on(p, in, c);
			if (r == 0)
				goto sent;
			if (c->shard_held && p->shard)
				thoth_shard_release(p->shard, c->shard_member);
			c->shard_held = false;
			if (r == THOTH_E_AGAIN)
				return r;
			inst_down(p, in, r, "the instance's channel failed on send");
			thoth_resolver_forget(p->resolver, in->addr);
			if (!in->busy) {
				remove_inst(p, in);
				inst_free(p, in);
			}
		}
		return THOTH_E_NOT_FOUND;
	}
	for (uint32_t tries = 0; p->n_usable && tries < 4; tries++) {
		uint32_t k = thoth_pool_select(p->cfg.policy, p->slots, p->n_usable, &p->rng, &p->rr);
		inst_t *in = p->usable[k];
		int r = in->load < p->cfg.max_in_flight ? send_on(p, in, c) : THOTH_E_AGAIN;
		if (r == THOTH_E_AGAIN) {
			/* Full (or its ring is): the first other one with room. */
			for (uint32_t j = 0; j < p->n_usable && r == THOTH_E_AGAIN; j++)
				if (p->usable[j] != in && p->usable[j]->load < p->cfg.max_in_flight)
					r = send_on(p, in = p->usable[j], c);
			if (r == THOTH_E_AGAIN)
				return r;
		}
		if (r == 0)
			goto sent;
		/* The channel is broken: that instance is down, try another. */
		inst_down(p, in, r, "the instance's channel failed on send");
		thoth_resolver_forget(p->resolver, in->addr);
		if (!in->busy) {
			remove_inst(p, in);
			inst_free(p, in);
		}
	}
	return THOTH_E_NOT_FOUND;
sent:
	if (p->cfg.call_timeout_ms) {
		c->deadline_ns = thoth_clock_now() + (uint64_t)p->cfg.call_timeout_ms * 1000000ull;
		arm_timeout(p, c->deadline_ns);
	}
	return 0;
}

/* IN is gone (hang-up, registry removal, send failure): out of the usable
 * set, its calls retried (idempotent) or failed.  The caller frees IN
 * unless it is busy (drain frees it then). */
static void inst_down(thoth_pool_t *p, inst_t *in, int err, const char *why)
{
	if (in->dead)
		return;
	in->dead = true;
	p->stats.peer_gone++;
	if (in->src) {
		thoth_loop_remove_fd(p->loop, in->src);
		in->src = NULL;
	}
	changed(p);
	call_t *c = in->head;
	in->head = in->tail = NULL;
	set_outstanding(p, in, 0);
	while (c) {
		call_t *next = c->next;
		c->next = NULL;
		if (c->m->idempotent && c->attempts < MAX_ATTEMPTS && !p->closing) {
			int r = dispatch(p, c);
			if (r == 0) {
				p->stats.retried++;
				c = next;
				continue;
			}
			char text[200];
			snprintf(text, sizeof text, "%s; no other instance took the retry (%s)", why,
				 thoth_strerror(r));
			finish(p, c, err, NULL, in, 0, text);
		} else {
			char text[200];
			snprintf(text, sizeof text, "%s with the call in flight%s", why,
				 c->m->idempotent ? " (retries used up)" : " (not @idempotent: not retried)");
			finish(p, c, err, NULL, in, 0, text);
		}
		c = next;
	}
}

static void timeout_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)loop;
	(void)timer;
	thoth_pool_t *p = arg;
	p->timeout = NULL;
	uint64_t now = thoth_clock_now(), next = UINT64_MAX;
	/* Collected first, ended after: a completion may start calls and
	 * change the instance list under this walk. */
	call_t *expired = NULL;
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		call_t *c = in->head, *prev = NULL;
		while (c) {
			call_t *nx = c->next;
			if (c->deadline_ns && c->deadline_ns <= now) {
				unlink_call(p, in, c, prev);
				in->failures++;
				in->consecutive++;
				c->next = expired;
				expired = c;
			} else {
				if (c->deadline_ns && c->deadline_ns < next)
					next = c->deadline_ns;
				prev = c;
			}
			c = nx;
		}
	}
	if (next != UINT64_MAX)
		arm_timeout(p, next);
	for (size_t i = 0; i < p->n; i++)
		if (p->inst[i]->consecutive >= p->cfg.eject_consecutive)
			eject(p, p->inst[i], false);
	while (expired) {
		call_t *c = expired;
		expired = c->next;
		finish(p, c, THOTH_E_TIMEDOUT, NULL, NULL, 0, "no answer within call_timeout_ms");
	}
}

/* ---- instances come and go ---------------------------------------------------------- */

/* ---- opening a connection ----------------------------------------------------------- */

static void connect_later(thoth_pool_t *p, inst_t *in);

/* The link is up: watch its fd for answers, and say so. */
static int link_watch(thoth_pool_t *p, inst_t *in)
{
	inst_ref_t *ref = (inst_ref_t *)(in + 1);
	ref->p = p;
	ref->in = in;
	int fd = in->tcp ? thoth_tcp_fd(in->tcp) : thoth_chan_fd(in->ch);
	int r = thoth_loop_add_fd(p->loop, fd, THOTH_LOOP_READ, on_chan_fd, ref, &in->src);
	/* Armed from the start: the service rings our socket only once we
	 * said we may sleep. */
	if (!r)
		r = link_arm(in) < 0 ? THOTH_E_PEER_GONE : 0;
	if (r) {
		if (in->src)
			thoth_loop_remove_fd(p->loop, in->src);
		in->src = NULL;
		link_close(in);
		snprintf(in->last_error, sizeof in->last_error, "%s: cannot watch the connection: %s", in->addr,
			 thoth_strerror(r));
		return r;
	}
	in->connect_fails = 0;
	in->last_error[0] = 0;
	return 0;
}

static void connect_failed(thoth_pool_t *p, inst_t *in, const char *why)
{
	if (why != in->last_error)
		snprintf(in->last_error, sizeof in->last_error, "%s", why);
	p->stats.connect_failures++;
	in->connect_fails++;
}

static bool opening(const inst_t *in)
{
	return in->opening || in->opening_ch;
}

/* The opening detached from the loop (its source, its deadline) and
 * closed; a TCP connection that opened is kept (in->tcp set by the caller). */
static void open_abandon(thoth_pool_t *p, inst_t *in)
{
	if (opening(in) && in->src) {
		thoth_loop_remove_fd(p->loop, in->src);         /* before the fd closes */
		in->src = NULL;
	}
	if (in->open_timer)
		thoth_timer_cancel(p->loop, in->open_timer);
	in->open_timer = NULL;
	thoth_tcp_close(in->opening);
	in->opening = NULL;
	thoth__chan_open_free(in->opening_ch);
	in->opening_ch = NULL;
}

/* The attempt ended with R (WHY) or, R == 0, an open link (in->tcp or
 * in->ch set by the caller). */
static void open_ended(thoth_pool_t *p, inst_t *in, int r, const char *why)
{
	if (r == 0 && in->opening) {
		in->tcp = in->opening;
		in->opening = NULL;
	}
	open_abandon(p, in);
	if (r == 0) {
		r = link_watch(p, in);
		why = in->last_error;
	}
	if (r) {
		connect_failed(p, in, why);
		connect_later(p, in);   /* unreachable: retried with backoff */
		return;
	}
	changed(p);
}

static void on_open_fd(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg);

/* Wait, on the loop, until the opening's fd is ready for WANT.  The source
 * is made afresh for each wait: a failed address closes its fd and the
 * next one has its own. */
static int open_wait(thoth_pool_t *p, inst_t *in, short want)
{
	if (in->src)
		thoth_loop_remove_fd(p->loop, in->src);
	in->src = NULL;
	inst_ref_t *ref = (inst_ref_t *)(in + 1);
	int fd = in->opening ? thoth_tcp_fd(in->opening) : thoth__chan_open_fd(in->opening_ch);
	return thoth_loop_add_fd(p->loop, fd, want == POLLOUT ? THOTH_LOOP_WRITE : THOTH_LOOP_READ, on_open_fd,
				 ref, &in->src);
}

static void on_open_fd(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	(void)loop;
	(void)src;
	(void)fd;
	(void)events;
	inst_ref_t *ref = arg;
	thoth_pool_t *p = ref->p;
	inst_t *in = ref->in;
	if (in->src) {
		thoth_loop_remove_fd(p->loop, in->src);         /* the step may close this fd */
		in->src = NULL;
	}
	char why[POOL_WHY_MAX];
	short want = POLLIN;
	int r = in->opening ? thoth__tcp_open_step(in->opening, &want, why, sizeof why)
			    : thoth__chan_open_step(in->opening_ch, &in->ch, why, sizeof why);
	if (r == THOTH_E_AGAIN) {
		r = open_wait(p, in, want);
		if (!r)
			return;
		snprintf(why, sizeof why, "%s: cannot watch the connection: %s", in->addr, thoth_strerror(r));
	}
	open_ended(p, in, r, why);
}

static void open_expired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)loop;
	(void)timer;
	inst_t *in = arg;
	inst_ref_t *ref = (inst_ref_t *)(in + 1);
	in->open_timer = NULL;
	char why[POOL_WHY_MAX];
	int r = in->opening ? thoth__tcp_open_expired(in->opening, HANDSHAKE_TIMEOUT_MS, why, sizeof why)
			    : thoth__chan_open_expired(in->opening_ch, HANDSHAKE_TIMEOUT_MS, why, sizeof why);
	open_ended(ref->p, in, r, why);
}

/*
 * The one place the pool opens a connection to an instance: a channel
 * for a socket path (this host), TCP for a "tcp:HOST:PORT" address
 * (another host, learnt through thothd's federation: docs/FEDERATION.md),
 * authenticated with the cluster token of our runtime dir.  Either is
 * opened on the loop without waiting: 0 means it is open or on its way
 * (open_ended finishes it, and fails it by name at HANDSHAKE_TIMEOUT_MS);
 * an error, that it failed now (last_error says why).  An instance that
 * accepts and never answers costs the pool's other calls nothing.
 */
static int inst_connect(thoth_pool_t *p, inst_t *in)
{
	char why[POOL_WHY_MAX];
	int r;
	short want = POLLIN;
	inst_ref_t *ref = (inst_ref_t *)(in + 1);
	ref->p = p;
	ref->in = in;
	if (thoth_tcp_is_addr(in->addr)) {
		thoth_tcp_config_t tc = { .iface = p->cfg.iface, .token_file = p->token_file };
		if (p->cfg.call_timeout_ms)
			tc.call_timeout_ms = (int)p->cfg.call_timeout_ms;
		r = thoth__tcp_open_start(in->addr, &tc, false, &in->opening, &want, why, sizeof why);
		if (r == 0) {
			in->tcp = in->opening;
			in->opening = NULL;
		}
	} else {
		thoth_chan_config_t cc = {
			.iface = p->cfg.iface,
			.wait = THOTH_CHAN_SLEEP,
			.handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS,
			.loop_wakeup = true,
		};
		r = thoth__chan_open_start(in->addr, &cc, &in->opening_ch, why, sizeof why);
	}
	if (r == THOTH_E_AGAIN) {
		r = thoth_loop_add_timer_in(p->loop, HANDSHAKE_TIMEOUT_MS * 1000000ull, 1000000, open_expired, in,
					    &in->open_timer);
		if (!r)
			r = open_wait(p, in, want);
		if (!r)
			return 0;
		snprintf(why, sizeof why, "%s: cannot wait for the connection: %s", in->addr, thoth_strerror(r));
		open_abandon(p, in);
	}
	if (r) {
		in->ch = NULL;
		in->tcp = NULL;
		connect_failed(p, in, why);
		return r;
	}
	r = link_watch(p, in);
	if (r)
		connect_failed(p, in, in->last_error);
	return r;
}

static void readmit_fired(thoth_loop_t *loop, thoth_timer_t *timer, void *arg)
{
	(void)loop;
	(void)timer;
	inst_t *in = arg;
	inst_ref_t *ref = (inst_ref_t *)(in + 1);
	thoth_pool_t *p = ref->p;
	in->readmit = NULL;
	in->ejected = false;
	in->consecutive = 0;
	if (!in->reconnecting) {
		in->readmitted_ns = thoth_clock_now();
		p->stats.readmissions++;
	}
	in->reconnecting = false;
	if (!link_up(in) && !opening(in) && inst_connect(p, in)) {
		connect_later(p, in);   /* still unreachable: try again later */
		return;
	}
	changed(p);
}

static void sync_instances(void *arg)
{
	thoth_pool_t *p = arg;
	if (p->closing)
		return;
	size_t n = thoth_resolver_snapshot(p->resolver, NULL, NULL, 0);
	thoth_resolved_t *rs = calloc(n ? n : 1, sizeof *rs);
	thoth_resolved_load_t *ld = calloc(n ? n : 1, sizeof *ld);
	if (!rs || !ld) {
		free(rs);
		free(ld);
		return;                 /* keep what we have; the next push tries again */
	}
	n = thoth_resolver_snapshot(p->resolver, rs, ld, n);
	for (size_t i = 0; i < p->n; i++)
		p->inst[i]->seen = false;
	bool membership = false;
	uint64_t now = thoth_clock_now();
	for (size_t j = 0; j < n; j++) {
		inst_t *in = NULL;
		for (size_t i = 0; i < p->n && !in; i++)
			if (!strcmp(p->inst[i]->addr, rs[j].addr) &&
			    p->inst[i]->instance_id == rs[j].instance_id && !p->inst[i]->dead)
				in = p->inst[i];
		if (!in) {
			if (p->n == p->cap) {
				size_t cap = p->cap ? p->cap * 2 : 8;
				inst_t **a = realloc(p->inst, cap * sizeof *a);
				inst_t **u = a ? realloc(p->usable, cap * sizeof *u) : NULL;
				if (a)
					p->inst = a;
				if (u)
					p->usable = u;
				thoth_pool_slot_t *s = u ? realloc(p->slots, cap * sizeof *s) : NULL;
				if (s)
					p->slots = s;
				if (!a || !u || !s)
					break;
				p->cap = cap;
			}
			in = calloc(1, sizeof *in + sizeof(inst_ref_t));
			if (!in)
				break;
			memcpy(in->addr, rs[j].addr, sizeof in->addr);
			in->instance_id = rs[j].instance_id;
			in->pid = rs[j].pid;
			in->numa_node = rs[j].numa_node;
			in->locality = rs[j].locality;
			in->cost = 1.0;
			in->slot = -1;
			inst_ref_t *ref = (inst_ref_t *)(in + 1);
			ref->p = p;
			ref->in = in;
			p->inst[p->n++] = in;
			if (inst_connect(p, in))
				connect_later(p, in);   /* unreachable: retried with backoff */
			membership = true;
		}
		in->seen = true;
		if (ld[j].reports != in->reports || ld[j].utilization_permille != in->util_permille ||
		    ld[j].qps != in->qps) {
			in->reports = ld[j].reports;
			in->util_permille = ld[j].utilization_permille;
			in->qps = ld[j].qps;
			/* Only a report from a busy instance says what a call costs
			 * it; an idle one keeps its last weight until it expires. */
			if (in->qps > 0 && in->util_permille > 0) {
				in->weight = (double)in->qps / ((double)in->util_permille / 1000.0);
				in->weight_ns = now;
			}
		}
	}
	free(rs);
	free(ld);
	for (size_t i = p->n; i-- > 0;) {
		inst_t *in = p->inst[i];
		if (in->seen || in->dead)
			continue;
		inst_down(p, in, THOTH_E_PEER_GONE, "the instance left the registry");
		if (!in->busy) {
			remove_inst(p, in);
			inst_free(p, in);
		}
		membership = true;
	}
	recompute_costs(p);
	if (membership)
		changed(p);
	else
		rebuild_usable(p);
}

/* ---- public ------------------------------------------------------------------------- */

int thoth_pool_new(thoth_loop_t *loop, const thoth_pool_config_t *cfg, thoth_pool_t **out,
		   char *why, size_t why_len)
{
	thoth__why(why, why_len, "%s", "");
	if (!out) {
		thoth__why(why, why_len, "no result pointer");
		return THOTH_E_INVAL;
	}
	*out = NULL;
	if (!loop || !cfg || !cfg->name || !*cfg->name || !cfg->iface) {
		thoth__why(why, why_len, "a pool needs a loop, a service name and an interface");
		return THOTH_E_INVAL;
	}
	if (cfg->policy > THOTH_POOL_PICK_FIRST || cfg->max_ejected_percent > 100) {
		thoth__why(why, why_len, "policy %d or max_ejected_percent %u out of range", (int)cfg->policy,
		           cfg->max_ejected_percent);
		return THOTH_E_INVAL;
	}
	/* thothc writes 0..3; a hand-built or edited info may hold anything,
	 * which every keyed call would otherwise fail on with a bare INVAL. */
	if (cfg->iface->shard_algo > THOTH_SHARD_RENDEZVOUS) {
		thoth__why(why, why_len,
		           "interface %s: shard_algo %u is not an algorithm (0 none, 1 maglev, 2 jump, 3 rendezvous)",
		           cfg->iface->name ? cfg->iface->name : "?", (unsigned)cfg->iface->shard_algo);
		return THOTH_E_INVAL;
	}
	thoth_pool_t *p = calloc(1, sizeof *p);
	if (!p)
		return THOTH_E_NOMEM;
	p->loop = loop;
	p->cfg = *cfg;
	p->name = strdup(cfg->name);
	p->cfg.name = p->name;
	p->cfg.runtime_dir = NULL;      /* only used now, and for the token file: */
	char token_file[4200];
	if (thoth_tcp_token_path(cfg->runtime_dir, token_file, sizeof token_file) == 0)
		p->token_file = strdup(token_file);     /* NULL: TCP connects read the default */
	p->cfg.min_version = NULL;
#define DEF(f, v) if (!p->cfg.f) p->cfg.f = (v)
	DEF(max_in_flight, DEFAULT_MAX_IN_FLIGHT);
	DEF(eject_consecutive, DEFAULT_EJECT_CONSECUTIVE);
	DEF(eject_base_ms, DEFAULT_EJECT_BASE_MS);
	DEF(eject_max_ms, DEFAULT_EJECT_MAX_MS);
	DEF(eject_decay_ms, DEFAULT_EJECT_DECAY_MS);
	DEF(max_ejected_percent, DEFAULT_MAX_EJECTED_PERCENT);
	DEF(weight_expiry_ms, DEFAULT_WEIGHT_EXPIRY_MS);
#undef DEF
	if (p->cfg.eject_max_ms < p->cfg.eject_base_ms)
		p->cfg.eject_max_ms = p->cfg.eject_base_ms;
	p->rng = cfg->seed ? cfg->seed : (thoth_clock_now() | 1) * 0x9e3779b97f4a7c15ull;
	if (!p->rng)
		p->rng = 1;
	p->next_request_id = 1;
	unsigned cpu = 0, node = 0;
	if (getcpu(&cpu, &node) == 0)
		p->numa_node = (uint16_t)node;
	thoth_resolver_config_t rc = {
		.runtime_dir = cfg->runtime_dir, .name = cfg->name, .min_version = cfg->min_version,
		.on_change = sync_instances, .arg = p,
	};
	int r = p->name ? thoth_resolver_new(loop, &rc, &p->resolver) : THOTH_E_NOMEM;
	if (!r)
		thoth__resolver_speaks(p->resolver, cfg->iface);       /* its instances agree with ours */
	if (r) {
		thoth__why(why, why_len, r == THOTH_E_INVAL ? "bad min_version '%s' or runtime dir" : "%s",
		           r == THOTH_E_INVAL ? (cfg->min_version ? cfg->min_version : "") : thoth_strerror(r));
		free(p->name);
		free(p->token_file);
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* The bound rides the pool's resolver: its control connection is the one
 * whose life thothd ties the record to. */
int thoth_pool_set_qos(thoth_pool_t *p, uint32_t latency_us)
{
	return p ? thoth_resolver_set_qos(p->resolver, latency_us) : THOTH_E_INVAL;
}

void thoth_pool_qos(const thoth_pool_t *p, thoth_resolver_qos_t *out)
{
	thoth_resolver_qos(p->resolver, out);
}

void thoth_pool_free(thoth_pool_t *p)
{
	if (!p)
		return;
	p->closing = true;
	thoth_resolver_free(p->resolver);
	if (p->timeout)
		thoth_timer_cancel(p->loop, p->timeout);
	for (size_t i = 0; i < p->n; i++) {
		inst_t *in = p->inst[i];
		call_t *c = in->head;
		in->head = in->tail = NULL;
		while (c) {
			call_t *next = c->next;
			finish(p, c, THOTH_E_CLOSED, NULL, in, 0, "the pool was closed");
			c = next;
		}
		inst_free(p, in);
	}
	thoth_shard_table_free(p->shard);
	free(p->shard_ids);
	free(p->inst);
	free(p->usable);
	free(p->slots);
	free(p->reply);
	free(p->name);
	free(p->token_file);
	free(p);
}

static int start_call(thoth_pool_t *p, const thoth_method_info_t *m, const void *req,
		      thoth_pool_done_fn done, void *arg, bool raw, const uint64_t *key);

int thoth_pool_start(thoth_pool_t *p, const thoth_method_info_t *m, const void *req,
		     thoth_pool_done_fn done, void *arg)
{
	return start_call(p, m, req, done, arg, false, NULL);
}

int thoth_pool_start_key(thoth_pool_t *p, const thoth_method_info_t *m, const void *req, uint64_t key,
			 thoth_pool_done_fn done, void *arg)
{
	if (!p || !p->cfg.iface->shard_algo)
		return THOTH_E_INVAL;
	return start_call(p, m, req, done, arg, false, &key);
}

static int start_call(thoth_pool_t *p, const thoth_method_info_t *m, const void *req,
		      thoth_pool_done_fn done, void *arg, bool raw, const uint64_t *key)
{
	if (!p || !m || !done || m->oneway || m->interface_id != p->cfg.iface->id)
		return THOTH_E_INVAL;
	if (p->closing)
		return THOTH_E_CLOSED;
	if (!p->n_usable)
		return THOTH_E_NOT_FOUND;
	call_t *c = calloc(1, sizeof *c);
	if (!c)
		return THOTH_E_NOMEM;
	size_t len = thoth_method_size(m, false, req);
	void *buf = NULL;
	if (posix_memalign(&buf, THOTH_WIRE_ALIGN, len ? len : 8)) {
		free(c);
		return THOTH_E_NOMEM;
	}
	c->msg = buf;
	c->m = m;
	c->done = done;
	c->arg = arg;
	c->raw = raw;
	if (key) {
		c->keyed = true;
		c->key = *key;
	}
	c->request_id = p->next_request_id++;
	if (!p->next_request_id)
		p->next_request_id = 1;
	thoth_msg_header_t meta = { .request_id = c->request_id };
	int r = thoth_method_encode(m, false, req, &meta, c->msg, len, &c->len);
	if (!r)
		r = dispatch(p, c);
	if (r) {
		free(c->msg);
		free(c);
		return r;
	}
	p->stats.started++;
	return 0;
}

static void call_done(void *arg, int err, const void *resp, const thoth_pool_result_t *result)
{
	(void)resp;
	thoth_pool_t *p = arg;
	p->reply_done = true;
	p->reply_err = err;
	p->reply_result = *result;
	snprintf(p->reply_why, sizeof p->reply_why, "%s", result->why);
	p->reply_result.why = p->reply_why;
}

int thoth_pool_call(thoth_pool_t *p, const thoth_method_info_t *m, const void *req, void *resp,
		    thoth_arena_t *arena, int timeout_ms, thoth_pool_result_t *result)
{
	if (!p || !m || !resp || !arena)
		return THOTH_E_INVAL;
	uint64_t end = thoth_clock_now() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	while (!p->n_usable && timeout_ms > 0 && thoth_clock_now() < end)
		thoth_loop_run_once(p->loop, true);
	p->reply_done = false;
	int r = start_call(p, m, req, call_done, p, true, NULL);
	if (r)
		return r;
	while (!p->reply_done)
		thoth_loop_run_once(p->loop, true);
	if (result)
		*result = p->reply_result;
	if (p->reply_err)
		return p->reply_err;
	memset(resp, 0, m->resp_struct_size);
	return thoth_method_decode(m, true, p->reply, p->reply_len, resp, arena);
}

size_t thoth_pool_usable(const thoth_pool_t *p)
{
	return p ? p->n_usable : 0;
}

size_t thoth_pool_in_flight(const thoth_pool_t *p)
{
	size_t n = 0;
	for (size_t i = 0; p && i < p->n; i++)
		n += p->inst[i]->outstanding;
	return n;
}

size_t thoth_pool_instances(const thoth_pool_t *p, thoth_pool_instance_t *out, size_t cap)
{
	if (!p)
		return 0;
	uint64_t now = thoth_clock_now();
	for (size_t i = 0; i < p->n && i < cap && out; i++) {
		const inst_t *in = p->inst[i];
		out[i] = (thoth_pool_instance_t){
			.instance_id = in->instance_id, .pid = in->pid, .outstanding = in->load,
			.cost = in->cost, .utilization_permille = in->util_permille, .qps = in->qps,
			.ejected = in->ejected || !link_up(in), .ejections = in->ejections,
			.ejected_for_ms = in->ejected && in->ejected_until_ns > now
						  ? (in->ejected_until_ns - now) / 1000000ull : 0,
			.eject_ms = in->eject_ms,
			.calls = in->calls, .failures = in->failures,
		};
		memcpy(out[i].addr, in->addr, sizeof out[i].addr);
	}
	return p->n;
}

int thoth_pool_instance_state(const thoth_pool_t *p, size_t i, bool *connecting, char *last_error,
			      size_t len)
{
	if (!p || i >= p->n)
		return THOTH_E_INVAL;
	const inst_t *in = p->inst[i];
	if (connecting)
		*connecting = opening(in);
	if (last_error && len)
		snprintf(last_error, len, "%s", in->last_error);
	return 0;
}

void thoth_pool_stats(const thoth_pool_t *p, thoth_pool_stats_t *out)
{
	if (p && out)
		*out = p->stats;
}
