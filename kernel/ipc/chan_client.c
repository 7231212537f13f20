/*
 * chan_client.c - the client side of a channel: opening it (the handshake
 * over the service's Unix socket, every answer checked), the transport
 * generated stubs run on, and blocking waits with deadlines.  The rings are
 * in chan_shm.c; docs/IPC.md describes the whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chan_handshake.h"
#include "chan_shm.h"
#include "fdpass.h"
#include "numa.h"
#include "thoth/contract.h"
#include "thoth/stream.h"

#ifdef F_SEAL_FUTURE_WRITE
#define CHAN_SEAL_FUTURE_WRITE F_SEAL_FUTURE_WRITE
#else
#define CHAN_SEAL_FUTURE_WRITE 0x0010   /* Linux 5.1 */
#endif

/*
 * How many unread one-byte sends a Unix stream socket whose SO_SNDBUF is
 * CHAN_BELL_SNDBUF (the smallest bell_room accepts) takes before EAGAIN:
 * counted once per process on a socketpair, not assumed, since each byte
 * costs an skb whose size is the kernel's (766 B with 6.18 here; ~450 B
 * more with CONFIG_MAX_SKB_FRAGS=45).  0 when it cannot be counted.
 *
 * Only a count is kept.  A probe that could not count (no fd for the
 * socketpair under EMFILE or ENFILE, no memory for an skb) says nothing
 * about the kernel, so that connect makes no promise and the next one
 * probes again; once counted, never again.  A pthread_once kept the
 * failure as "no promise" for the life of the process.
 */
static pthread_mutex_t bell_probe_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned bell_probe_state;       /* 0: not counted; else the count + 1 */

/* The count into *SENDS, or false where the probe could not count. */
static bool bell_probe(unsigned *sends)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return false;
	int want = (int)CHAN_BELL_SNDBUF / 2, have = 0;    /* the kernel doubles it */
	socklen_t l = sizeof have;
	unsigned n = 0;
	bool counted = true;
	if (!setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof want) &&
	    !getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &have, &l) && have <= (int)CHAN_BELL_SNDBUF) {
		/* At most 4 x what we need: the answer is only "enough or not". */
		while (n < 4 * CHAN_BELL_ROOM && send(sv[0], "", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
			n++;
		/* a full buffer ends it with EAGAIN; anything else (ENOBUFS,
		 * ENOMEM) is a moment's shortage, not the buffer's room */
		counted = n == 4 * CHAN_BELL_ROOM || errno == EAGAIN || errno == EWOULDBLOCK;
	}
	close(sv[0]);
	close(sv[1]);
	*sends = n;
	return counted;
}

unsigned chan_bell_room_sends(void)
{
	unsigned s = atomic_load_explicit(&bell_probe_state, memory_order_acquire);
	if (s)
		return s - 1;
	pthread_mutex_lock(&bell_probe_lock);       /* one probe at a time: a count is made once */
	s = atomic_load_explicit(&bell_probe_state, memory_order_relaxed);
	unsigned n = 0;
	if (!s && bell_probe(&n))
		atomic_store_explicit(&bell_probe_state, s = n + 1, memory_order_release);
	pthread_mutex_unlock(&bell_probe_lock);
	return s ? s - 1 : 0;
}

/* Does our end of the socket take CHAN_BELL_ROOM unread one-byte sends?
 * Its buffer is made at least CHAN_BELL_SNDBUF (grown once, within
 * net.core.wmem_max), and a buffer that size was seen to take them
 * (chan_bell_room_sends); else no promise. */
static bool bell_room(int sock)
{
	if (chan_bell_room_sends() < CHAN_BELL_ROOM)
		return false;
	int have = 0;
	socklen_t l = sizeof have;
	if (getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &have, &l) == 0 && have >= (int)CHAN_BELL_SNDBUF)
		return true;
	int want = (int)CHAN_BELL_SNDBUF;       /* the kernel doubles it, within wmem_max */
	l = sizeof have;
	return setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &want, sizeof want) == 0 &&
	       getsockopt(sock, SOL_SOCKET, SO_SNDBUF, &have, &l) == 0 && have >= (int)CHAN_BELL_SNDBUF;
}

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	ssize_t r = thoth_fdpass_send(sock, buf, len, fds, (size_t)nfds);
	if (r < 0)
		return errno == EPIPE || errno == ECONNRESET ? THOTH_E_PEER_GONE : THOTH_E_IO;
	if ((size_t)r < len)
		return thoth_stream_write_all(sock, (const uint8_t *)buf + r, len - (size_t)r);
	return 0;
}

struct thoth_chan {
	chan_end_t end;
	thoth_client_t client;
	int sock;                       /* liveness, and doorbells with loop_wakeup */
	bool loop_wakeup;               /* the service rings sock instead of a futex */
	int timeout_ms;                 /* < 0: forever; the whole transport call (below) */
	uint64_t features;
	bool mapped;
	/* The deadline of the transport call in progress (docs/IPC.md
	 * "Timeouts"): fixed at the call's first wait, so that its later stages
	 * wait only for what is left.  call_at is the number of messages sent
	 * before the call's request: a later stage of the same call finds it
	 * unchanged (or one more, once the request is out), a later call never
	 * does.  Only waiting paths read or write them: a call that never waits
	 * pays for none of it. */
	uint64_t call_deadline;         /* 0: none */
	uint64_t call_at;
};

static int remaining_ms(uint64_t deadline)
{
	if (deadline == UINT64_MAX)
		return -1;
	uint64_t now = thoth_clock_now();
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999999u) / 1000000u;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : thoth_clock_now() + (uint64_t)timeout_ms * 1000000u;
}

/* Milliseconds a blocking call may still wait, for TIMEOUT_MS > 0 or < 0.
 * The deadline (*DEADLINE, 0 = not yet) is fixed at the first wait, so a
 * call that never waits never reads the clock. */
static int wait_budget(uint64_t *deadline, int timeout_ms)
{
	if (!*deadline) {
		*deadline = deadline_of(timeout_ms);
		return timeout_ms;
	}
	return remaining_ms(*deadline);
}

/* Messages this end has sent (64-bit: it does not wrap). */
static uint64_t sent_count(const thoth_chan_t *ch)
{
	return ch->end.st.sent_inline + ch->end.st.sent_pool;
}

/* wait_budget for a stage of a transport call (CALL set; ch->timeout_ms)
 * whose request is sent message number AT: the first wait of the call fixes
 * the deadline, a later stage's first wait takes it over.  Without CALL:
 * wait_budget, one deadline per call of the function (the public API). */
static int stage_budget(thoth_chan_t *ch, bool call, uint64_t *deadline, int timeout_ms, uint64_t at)
{
	if (!call)
		return wait_budget(deadline, timeout_ms);
	if (!*deadline && ch->call_deadline && ch->call_at == at)
		*deadline = ch->call_deadline;
	if (!*deadline) {
		*deadline = ch->call_deadline = deadline_of(timeout_ms);
		ch->call_at = at;
		return timeout_ms;
	}
	return remaining_ms(*deadline);
}

static int alloc_wait(thoth_chan_t *ch, size_t len, uint8_t **buf, int timeout_ms, bool call)
	__attribute__((noinline));

/* The first try inline, the waiting loop apart (alloc_wait): most calls find
 * a free slot at once and then pay for none of the loop's registers. */
THOTH_HOT_CLIENT int thoth_chan_alloc(thoth_chan_t *ch, size_t len, uint8_t **buf, int timeout_ms)
{
	int r = chan_try_alloc_fast(&ch->end, len, buf);
	if (r != THOTH_E_AGAIN || timeout_ms == 0)
		return r;
	return alloc_wait(ch, len, buf, timeout_ms, false);
}

/* CALL: the first stage of a transport call, so always a new deadline. */
static int alloc_wait(thoth_chan_t *ch, size_t len, uint8_t **buf, int timeout_ms, bool call)
{
	uint64_t deadline = 0;
	if (call)
		ch->call_deadline = 0;
	for (;;) {
		int r;
		int left = stage_budget(ch, call, &deadline, timeout_ms, sent_count(ch));
		if (left == 0)
			r = THOTH_E_TIMEDOUT;
		else
			r = chan_wait(&ch->end, len <= THOTH_CHAN_INLINE_MAX ? CHAN_WAIT_SLOT : CHAN_WAIT_POOL, len,
				      left);
		if (!r)
			r = chan_try_alloc(&ch->end, len, buf);
		if (r != THOTH_E_AGAIN) {
			if (r && call)
				ch->call_deadline = 0;  /* no later stage */
			return r;
		}
	}
}

int thoth_chan_send(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms)
{
	return thoth_chan_send_flags(ch, buf, len, timeout_ms, 0);
}

void thoth_chan_flush(thoth_chan_t *ch)
{
	chan_mod_flush(&ch->end);
}

static int send_wait(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms, unsigned flags, bool call)
	__attribute__((noinline));

THOTH_HOT_CLIENT int thoth_chan_send_flags(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms, unsigned flags)
{
	int r = chan_try_send_flags(&ch->end, buf, len, flags);
	if (r != THOTH_E_AGAIN || timeout_ms == 0)
		return r;
	return send_wait(ch, buf, len, timeout_ms, flags, false);
}

/* The ring is full: wait for room.  CALL: a stage of a transport call. */
static int send_wait(thoth_chan_t *ch, uint8_t *buf, size_t len, int timeout_ms, unsigned flags, bool call)
{
	uint64_t deadline = 0;
	for (;;) {
		int left = stage_budget(ch, call, &deadline, timeout_ms, sent_count(ch));
		if (left == 0)
			return THOTH_E_TIMEDOUT;
		int r = chan_wait(&ch->end, CHAN_WAIT_SLOT, 0, left);
		if (r)
			return r;
		r = chan_try_send_flags(&ch->end, buf, len, flags);
		if (r != THOTH_E_AGAIN)
			return r;
	}
}

void thoth_chan_discard(thoth_chan_t *ch, uint8_t *buf)
{
	chan_discard(&ch->end, buf);
}

static int recv_wait(thoth_chan_t *ch, thoth_msg_t *msg, int timeout_ms, bool call) __attribute__((noinline));

THOTH_HOT_CLIENT int thoth_chan_recv(thoth_chan_t *ch, thoth_msg_t *msg, int timeout_ms)
{
	int r = chan_try_recv(&ch->end, msg);
	if (r != THOTH_E_AGAIN)
		return r;
	if (timeout_ms == 0) {
		/* Nothing yet: still report a peer that is gone. */
		r = chan_check_peer(&ch->end);
		return r ? r : THOTH_E_AGAIN;
	}
	return recv_wait(ch, msg, timeout_ms, false);
}

/* Nothing yet: wait.  CALL: the last stage of a transport call, whose
 * request went out as the last message sent. */
static int recv_wait(thoth_chan_t *ch, thoth_msg_t *msg, int timeout_ms, bool call)
{
	uint64_t deadline = 0;
	for (;;) {
		int left = stage_budget(ch, call, &deadline, timeout_ms, sent_count(ch) - 1);
		if (left == 0)
			return THOTH_E_TIMEDOUT;
		int r = chan_wait(&ch->end, CHAN_WAIT_RECV, 0, left);
		if (r)
			return r;
		r = chan_try_recv(&ch->end, msg);
		if (r != THOTH_E_AGAIN)
			return r;
	}
}

void thoth_chan_release(thoth_chan_t *ch, thoth_msg_t *msg)
{
	chan_release(&ch->end, msg);
}

/* ---- the transport generated stubs call through ---- */

/* A call's stages -- get_buffer, then call or send -- share one deadline,
 * ch->timeout_ms from the call's first wait (docs/IPC.md "Timeouts"), not
 * one each: a ring that stays full and then a slow reply cannot make a
 * call wait three times its timeout.  The first tries are the public API's
 * fast paths; only the waiting paths (alloc_wait, send_wait, recv_wait with
 * CALL set) carry the deadline over, in ch. */
THOTH_HOT_CLIENT static int tr_get_buffer(void *ctx, size_t len, uint8_t **buf)
{
	thoth_chan_t *ch = ctx;
	int r = chan_try_alloc_fast(&ch->end, len, buf);
	if (r != THOTH_E_AGAIN || ch->timeout_ms == 0)
		return r;
	return alloc_wait(ch, len, buf, ch->timeout_ms, true);
}

static int tr_send_wait(thoth_chan_t *ch, uint8_t *msg, size_t len, unsigned flags)
{
	return send_wait(ch, msg, len, ch->timeout_ms, flags, true);
}

THOTH_HOT_CLIENT static int tr_send(void *ctx, uint8_t *msg, size_t len)
{
	thoth_chan_t *ch = ctx;
	int r = thoth_chan_send_flags(ch, msg, len, 0, 0);      /* the first try */
	if (r == THOTH_E_AGAIN && ch->timeout_ms != 0)
		r = tr_send_wait(ch, msg, len, 0);
	if (r) {
		/* Not sent, by the first try or the wait: the next call's
		 * request gets this one's number, so it must not find call_at. */
		ch->call_deadline = 0;
		chan_discard(&ch->end, msg);
	}
	return r;
}

THOTH_HOT_CLIENT static int tr_call(void *ctx, uint8_t *req, size_t len, thoth_msg_t *resp)
{
	thoth_chan_t *ch = ctx;
	/* Urgent: we wait for the answer, so a deferred wake-up is pure delay. */
	int r = thoth_chan_send_flags(ch, req, len, 0, THOTH_CHAN_URGENT);     /* the first try */
	if (r == THOTH_E_AGAIN && ch->timeout_ms != 0)
		r = tr_send_wait(ch, req, len, THOTH_CHAN_URGENT);
	if (r) {
		ch->call_deadline = 0;  /* not sent: as in tr_send */
		chan_discard(&ch->end, req);
		return r;
	}
	r = chan_try_recv(&ch->end, resp);
	if (r != THOTH_E_AGAIN)
		return r;
	if (ch->timeout_ms == 0) {
		r = chan_check_peer(&ch->end);
		return r ? r : THOTH_E_AGAIN;
	}
	return recv_wait(ch, resp, ch->timeout_ms, true);
}

THOTH_HOT_CLIENT static void tr_release(void *ctx, thoth_msg_t *resp)
{
	thoth_chan_t *ch = ctx;
	if (resp->handle)               /* an inline reply has nothing to give back */
		chan_release(&ch->end, resp);
}

static void tr_discard(void *ctx, uint8_t *buf)
{
	thoth_chan_t *ch = ctx;
	ch->call_deadline = 0;          /* the call ends unsent: its deadline must not reach the next */
	thoth_chan_discard(ch, buf);
}

static const thoth_transport_ops_t chan_transport = {
	.get_buffer = tr_get_buffer,
	.call = tr_call,
	.send = tr_send,
	.release = tr_release,
	.discard = tr_discard,
};

thoth_client_t *thoth_chan_client(thoth_chan_t *ch) { return &ch->client; }
uint64_t thoth_chan_features(const thoth_chan_t *ch) { return ch->features; }
void thoth_chan_limits(const thoth_chan_t *ch, thoth_chan_limits_t *out) { *out = ch->end.lay.lim; }
void thoth_chan_stats(const thoth_chan_t *ch, thoth_chan_stats_t *out) { *out = ch->end.st; }
int thoth_chan_error(const thoth_chan_t *ch) { return ch->end.err; }
int thoth_chan_fd(const thoth_chan_t *ch) { return ch->loop_wakeup ? ch->sock : -1; }

int thoth_chan_arm(thoth_chan_t *ch)
{
	if (!ch->loop_wakeup)
		return THOTH_E_INVAL;
	chan_bell_drain(&ch->end);                   /* never blocks: clears pending doorbells */
	chan_mod_flush(&ch->end);                    /* going back to the loop owes no wake-up */
	if (chan_arm(&ch->end, CHAN_WAIT_RECV, 0))
		return ch->end.err ? ch->end.err : 1;
	int r = chan_check_peer(&ch->end);
	if (r) {
		chan_disarm(&ch->end, CHAN_WAIT_RECV);
		return r;
	}
	return 0;
}
chan_end_t *thoth_chan__end(thoth_chan_t *ch) { return &ch->end; }

void thoth_chan_close(thoth_chan_t *ch)
{
	if (!ch)
		return;
	thoth_client_release(&ch->client);
	if (ch->mapped) {
		chan_end_close(&ch->end);
		chan_shm_unmap(ch->end.base, ch->end.lay.size);
	}
	chan_end_fini(&ch->end);
	if (ch->sock >= 0)
		close(ch->sock);
	free(ch);
}

/* A channel being opened (chan_handshake.h): the request is sent at the
 * start; the reply is read as it arrives, descriptors with it. */
struct thoth__chan_opening {
	thoth_chan_t *ch;
	thoth_chan_config_t cfg;
	char path[108];
	uint8_t *msg;                   /* HANDSHAKE_MAX, 8-aligned: the reply so far */
	size_t have;
	thoth__chan_fds_t fds;          /* those the reply brought (counted all) */
	int sent;                       /* the request's send failed (PEER_GONE): the reply may say why */
	int hs_ms;
	uint64_t deadline_ns;           /* the whole opening's, taken before the connect */
};

/* The service's whole reply MSG (LEN bytes, FDS attached) to OP's open
 * request: checked, the channel memory mapped, OP's channel ready.  On an
 * error OP still owns what it holds (thoth__chan_open_free). */
static int open_finish(thoth__chan_opening_t *op, const uint8_t *msg, size_t len, char *why, size_t why_len)
{
	thoth_chan_t *ch = op->ch;
	const thoth_chan_config_t *cfg = &op->cfg;
	const thoth_interface_info_t *ifc = cfg->iface;
	int *fds = op->fds.fd, nfds = op->fds.kept;
	char lwhy[160];
	int r;
	uint64_t scratch[64];
	thoth_arena_t arena;
	thoth_arena_init(&arena, scratch, sizeof scratch);
	thoth_channel_Channel_open_resp_t resp;
	r = thoth_channel_Channel_open_resp_decode_msg(msg, len, &resp, &arena);
	if (r) {
		thoth__chan_why(why, why_len, "the service's handshake reply does not decode: %s", thoth_strerror(r));
		r = THOTH_E_PROTOCOL;
		return r;
	}
	if (resp.status) {
		/* The service's code where it is one a refusal can carry: never
		 * THOTH_E_AGAIN, which the opening's steps return while they wait
		 * for the reply (the caller would wait out its deadline for a
		 * reply that came, then say none did). */
		/* The reason as text safe to print: a service's ESC sequences
		 * and newlines reached thothctl's terminal and our callers'
		 * logs as they were (the decoder checks UTF-8 only). */
		char reason[512];
		thoth__why_text(reason, sizeof reason, resp.reason.ptr, resp.reason.len);
		if (resp.status < 0 && resp.status > -100 && resp.status != THOTH_E_AGAIN) {
			thoth__chan_why(why, why_len, "%s", reason);
			return resp.status;
		}
		thoth__chan_why(why, why_len, "refused with status %d, which is no refusal code: %s",
				resp.status, reason);
		return THOTH_E_PROTOCOL;
	}
	if (resp.major != ifc->major || (resp.features & ~cfg->features)) {
		thoth__chan_why(why, why_len, "service answered version %u.%u with features %#llx to a %u.x client offering %#llx",
			resp.major, resp.minor, (unsigned long long)resp.features, ifc->major,
			(unsigned long long)cfg->features);
		r = THOTH_E_PROTOCOL;
		return r;
	}
	thoth_chan_limits_t lim;
	thoth__chan_limits_from_wire(&resp.limits, &lim);
	chan_layout_t lay;
	if ((cfg->limits.slots && lim.slots != cfg->limits.slots) ||
	    (cfg->limits.pool_buf_size && lim.pool_buf_size != cfg->limits.pool_buf_size) ||
	    (cfg->limits.pool_bufs && lim.pool_bufs != cfg->limits.pool_bufs) ||
	    thoth_chan_limits_resolve(&lim, lwhy, sizeof lwhy) || chan_layout_compute(&lim, &lay) ||
	    resp.shm_size != lay.size) {
		thoth__chan_why(why, why_len, "service answered with limits we did not ask for or cannot use");
		r = THOTH_E_PROTOCOL;
		return r;
	}
	if (nfds != 1 || op->fds.arrived != 1 || op->fds.cut) {
		/* the count that arrived, not the 2 kept: 5 were "sent 2" */
		char count[32];
		thoth__chan_why(why, why_len, "service sent %s file descriptors with its reply, expected 1 (the "
				"channel memory)", thoth__chan_fds_count(&op->fds, count, sizeof count));
		r = THOTH_E_PROTOCOL;
		return r;
	}
	/* The kind of the fd, checked by the kernel rather than by its name: a
	 * regular file that answers F_GET_SEALS is shmem (a memfd), and the
	 * shrink seal means the service cannot cut our mapping short (SIGBUS). */
	struct stat st;
	int seals = fcntl(fds[0], F_GET_SEALS);
	if (fstat(fds[0], &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size != lay.size || seals < 0 ||
	    !(seals & F_SEAL_SHRINK)) {
		thoth__chan_why(why, why_len, "the channel memory the service sent is not a sealed memfd of %zu bytes", lay.size);
		r = THOTH_E_PROTOCOL;
		return r;
	}
	/* Both sides write it: a memfd the service sealed against writing,
	 * or opened read-only, is its mistake, not our memory running out
	 * (mmap would fail with EPERM or EACCES). */
	int acc = fcntl(fds[0], F_GETFL);
	int acc_errno = errno;          /* before anything else can change it */
	if (seals & (F_SEAL_WRITE | CHAN_SEAL_FUTURE_WRITE)) {
		thoth__chan_why(why, why_len, "the channel memory the service sent carries a write seal (seals %#x): "
				"it cannot be shared writable", (unsigned)seals);
		return THOTH_E_PROTOCOL;
	}
	if (acc < 0) {
		thoth__chan_why(why, why_len, "cannot read the open mode of the channel memory the service sent "
				"(F_GETFL): %s", strerror(acc_errno));
		return THOTH_E_IO;      /* ours, not the service's: the descriptor is in our table */
	}
	if ((acc & O_ACCMODE) != O_RDWR) {
		thoth__chan_why(why, why_len, "the channel memory the service sent is open %s: it cannot be "
				"shared writable", (acc & O_ACCMODE) == O_RDONLY ? "read-only" : "write-only");
		return THOTH_E_PROTOCOL;
	}
	uint8_t *base = chan_shm_map(fds[0], lay.size);
	if (!base) {
		thoth__chan_why(why, why_len, "cannot map %zu bytes of channel memory: %s", lay.size, strerror(errno));
		r = THOTH_E_NOMEM;
		return r;
	}
	close(fds[0]);
	fds[0] = -1;
	/* SCALE-1: what we read (responses, the service's pool) on our node,
	 * before anyone touches it (docs/SCALE.md). */
	thoth__chan_place(base, &lay, CHAN_CLIENT);
	r = chan_end_init(&ch->end, base, &lay, CHAN_CLIENT);
	ch->mapped = true;          /* unmapped by close from here on */
	if (r) {
		thoth__chan_why(why, why_len, "%s", ch->end.why);
		return r;
	}
	/* The service always waits on its loop: it is rung on the socket.  We
	 * are rung there too when we wait on a loop, else through the futex. */
	ch->end.peer_bell = true;
	ch->end.own_bell = cfg->loop_wakeup;
	struct ucred cred = { 0 };
	socklen_t cl = sizeof cred;
	if (getsockopt(ch->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		ch->end.service_pid = (uint32_t)cred.pid;
	ch->end.sock = ch->sock;
	/* We ring at most once per sleep of the service (ring_if_waiting), so
	 * it may leave our doorbells unread for up to CHAN_BELL_DRAIN_EVERY of
	 * its sleeps, edge-triggered (docs/IPC.md, "Edge-triggered
	 * doorbells"); promised only where we claim its flags, which a
	 * service allows by advertising that it re-arms after a read-back
	 * (chan_bell_attach: an older one only re-checks, and a claim could
	 * leave it asleep for good), and where our send buffer holds twice
	 * that with room to spare: a doorbell that does not fit is a lost
	 * wake-up then.  The default buffer does; a smaller one is grown
	 * within net.core.wmem_max, else we stay level triggered. */
	if (chan_bell_attach(&ch->end) && bell_room(ch->sock))
		chan_bell_promise(&ch->end);
	ch->end.wait = cfg->wait;
	ch->end.spin_max = ch->end.spin_budget =
		cfg->wait == THOTH_CHAN_SLEEP ? 0 : (cfg->spin_ns ? cfg->spin_ns : THOTH_CHAN_DEFAULT_SPIN_NS);
	chan_mod_config(&ch->end, &cfg->moderation);   /* checked before connecting */
	ch->features = resp.features;
	thoth_client_init(&ch->client, &chan_transport, ch, resp.features);
	return 0;
}

void thoth__chan_open_free(thoth__chan_opening_t *op)
{
	if (!op)
		return;
	for (int i = 0; i < 2; i++)
		if (op->fds.fd[i] >= 0)
			close(op->fds.fd[i]);
	thoth_chan_close(op->ch);
	free(op->msg);
	free(op);
}

int thoth__chan_open_fd(const thoth__chan_opening_t *op)
{
	return op->ch->sock;
}

int thoth__chan_open_expired(const thoth__chan_opening_t *op, int timeout_ms, char *why, size_t why_len)
{
	thoth__chan_why(why, why_len, "the service at %s did not answer the channel handshake within %d ms "
			"(%zu bytes of a reply came; stopped or wedged?)", op->path, timeout_ms, op->have);
	return THOTH_E_TIMEDOUT;
}

/* WAIT_FOR_ROOM: connect as thoth_chan_connect always has, waiting up to
 * the handshake timeout for room in a full backlog (a service shedding
 * silent connections makes some); else a full backlog is THOTH_E_BUSY at
 * once (a pool's loop never waits; it tries again later). */
static int open_start(const char *path, const thoth_chan_config_t *cfg, bool wait_for_room,
		      thoth__chan_opening_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth__chan_why(why, why_len, "%s", "");
	if (!path || !cfg || !cfg->iface) {
		thoth__chan_why(why, why_len, "no socket path or no interface given");
		return THOTH_E_INVAL;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		thoth__chan_why(why, why_len, "socket path is %zu bytes, longer than the %zu a Unix socket allows",
			strlen(path), sizeof sa.sun_path - 1);
		return THOTH_E_INVAL;
	}
	strcpy(sa.sun_path, path);
	/* Nonsense limits are the caller's mistake: say so before connecting. */
	thoth_chan_limits_t want = cfg->limits;
	char lwhy[160];
	if (thoth_chan_limits_resolve(&want, lwhy, sizeof lwhy)) {
		thoth__chan_why(why, why_len, "bad channel limits: %s", lwhy);
		return THOTH_E_INVAL;
	}

	chan_end_t probe = { 0 };
	if (chan_mod_config(&probe, &cfg->moderation)) {
		thoth__chan_why(why, why_len, "moderation policy %d with %u messages / %u us: must be none, fixed (at most %u messages, %u us), dim or adaptive",
			(int)cfg->moderation.policy, cfg->moderation.fixed_msgs, cfg->moderation.fixed_us,
			THOTH_CHAN_MOD_MAX_MSGS, THOTH_CHAN_MOD_MAX_US);
		return THOTH_E_INVAL;
	}

	thoth__chan_opening_t *op = calloc(1, sizeof *op);
	thoth_chan_t *ch = op ? chan_zalloc_unsplit(sizeof *ch) : NULL;
	if (!ch) {
		free(op);
		return THOTH_E_NOMEM;
	}
	op->ch = ch;
	op->cfg = *cfg;
	op->fds.fd[0] = op->fds.fd[1] = -1;
	snprintf(op->path, sizeof op->path, "%s", path);
	ch->sock = -1;
	ch->loop_wakeup = cfg->loop_wakeup;
	ch->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : -1;
	int r;

	/* Non-blocking until the reply is in: nothing here waits (but the
	 * connect, with WAIT_FOR_ROOM). */
	ch->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (wait_for_room ? 0 : SOCK_NONBLOCK), 0);
	if (ch->sock < 0) {
		thoth__chan_why(why, why_len, "socket: %s", strerror(errno));
		r = THOTH_E_IO;
		goto fail;
	}
	op->hs_ms = cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 2000;
	/* One deadline for the whole opening, the connect included: a
	 * connect waiting for room in a full backlog spends the reply's time
	 * too (it had a whole timeout of its own before: up to twice it). */
	op->deadline_ns = thoth_clock_now() + (uint64_t)op->hs_ms * 1000000ull;
	if (wait_for_room) {
		struct timeval tv = { op->hs_ms / 1000, (op->hs_ms % 1000) * 1000 };
		setsockopt(ch->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	}
	int cr = connect(ch->sock, (struct sockaddr *)&sa, sizeof sa);
	if (cr == 0 && wait_for_room) {
		int fl = fcntl(ch->sock, F_GETFL);
		if (fl < 0 || fcntl(ch->sock, F_SETFL, fl | O_NONBLOCK) < 0) {
			thoth__chan_why(why, why_len, "fcntl on the socket to %s: %s", path, strerror(errno));
			r = THOTH_E_IO;
			goto fail;
		}
	}
	if (cr < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED) {
			thoth__chan_why(why, why_len, "no service listens at %s", path);
			r = THOTH_E_NOT_RUNNING;
		} else if (e == EACCES || e == EPERM) {
			thoth__chan_why(why, why_len, "no permission to connect to %s", path);
			r = THOTH_E_PERM;
		} else if (e == EAGAIN && !wait_for_room) {
			thoth__chan_why(why, why_len, "the service at %s has a full backlog of connections it "
					"has not accepted (stopped or wedged?)", path);
			r = THOTH_E_BUSY;
		} else if (e == EAGAIN) {
			/* The wait for room ran out (SO_SNDTIMEO): a timeout, named. */
			thoth__chan_why(why, why_len, "the service at %s did not accept the connection within %d ms: "
					"a full backlog of connections it has not accepted (stopped or wedged?)",
					path, op->hs_ms);
			r = THOTH_E_TIMEDOUT;
		} else {
			thoth__chan_why(why, why_len, "connect %s: %s", path, strerror(e));
			r = THOTH_E_IO;
		}
		goto fail;
	}

	op->msg = aligned_alloc(8, HANDSHAKE_MAX);
	if (!op->msg) {
		r = THOTH_E_NOMEM;
		goto fail;
	}
	const thoth_interface_info_t *ifc = cfg->iface;
	thoth_channel_Channel_open_req_t req = {
		.package = thoth_str(ifc->package),
		.interface = thoth_str(ifc->name),
		.interface_id = ifc->id,
		.major = ifc->major,
		.minor = ifc->minor,
		.schema_hash = ifc->schema_hash,
		.features = cfg->features,
		.client_wakeup = cfg->loop_wakeup,
	};
	thoth__chan_limits_to_wire(&cfg->limits, &req.limits);
	thoth_msg_header_t meta = { .request_id = 1 };
	size_t len;
	r = thoth_channel_Channel_open_req_encode_msg(op->msg, HANDSHAKE_MAX, &meta, &req, &len);
	/* A fresh socket's buffer takes the small request whole. */
	if (!r)
		r = send_with_fds(ch->sock, op->msg, len, NULL, 0);
	/* A service that refused us may have answered and closed already:
	 * its reason is worth more than EPIPE. */
	op->sent = r;
	if (r && r != THOTH_E_PEER_GONE) {
		thoth__chan_why(why, why_len, "sending the channel handshake to %s: %s", path, thoth_strerror(r));
		goto fail;
	}
	*out = op;
	return THOTH_E_AGAIN;

fail:
	thoth__chan_open_free(op);
	return r;
}

int thoth__chan_open_start(const char *path, const thoth_chan_config_t *cfg, thoth__chan_opening_t **out,
			   char *why, size_t why_len)
{
	return open_start(path, cfg, false, out, why, why_len);
}

int thoth__chan_open_step(thoth__chan_opening_t *op, thoth_chan_t **out, char *why, size_t why_len)
{
	*out = NULL;
	thoth_chan_t *ch = op->ch;
	const char *path = op->path;
	size_t need = 0;
	int r;
	for (;;) {
		ssize_t n = thoth__chan_recv_fds(ch->sock, op->msg + op->have, HANDSHAKE_MAX - op->have, &op->fds,
						 MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return THOTH_E_AGAIN;
		/* A service killed with our handshake unread resets the
		 * connection: it is gone, as on a plain close. */
		r = n == 0 ? THOTH_E_PEER_GONE : n < 0 ? errno == ECONNRESET ? THOTH_E_PEER_GONE : THOTH_E_IO : 0;
		if (r) {
			int e = errno;
			if (op->sent)
				thoth__chan_why(why, why_len, "the service at %s closed the connection during the "
						"handshake", path);
			else if (r == THOTH_E_PEER_GONE)
				/* a live service at max_clients, max_pending or its fd
				 * limit closes too: its log tells which */
				thoth__chan_why(why, why_len, "the service at %s closed the connection before "
						"answering the handshake (it exited, was killed, or is at a connection "
						"limit: its log says which)", path);
			else
				thoth__chan_why(why, why_len, "reading the service's handshake reply from %s: %s",
						path, strerror(e));
			return op->sent ? op->sent : r;
		}
		op->have += (size_t)n;
		r = thoth__chan_msg_length(op->msg, op->have, &need);
		if (!r && need && op->have > need)
			r = THOTH_E_PROTOCOL;   /* nothing may follow the handshake */
		if (r) {
			thoth__chan_why(why, why_len, "reading the service's handshake reply from %s: %s", path,
					thoth_strerror(r));
			return r;
		}
		if (need && op->have == need)
			break;
	}
	/* The channel's socket blocks from here on, as it always has: its
	 * sends and reads carry the handshake's timeouts. */
	int fl = fcntl(ch->sock, F_GETFL);
	if (fl < 0 || fcntl(ch->sock, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		thoth__chan_why(why, why_len, "fcntl on the socket to %s: %s", path, strerror(errno));
		return THOTH_E_IO;
	}
	struct timeval tv = { op->hs_ms / 1000, (op->hs_ms % 1000) * 1000 };
	setsockopt(ch->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(ch->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	r = open_finish(op, op->msg, op->have, why, why_len);
	if (r) {
		/* Named by its socket, as every other reason here: a pool
		 * opens many, and this is its instance's last error. */
		if (why && why_len) {
			char inner[512];
			snprintf(inner, sizeof inner, "%s", why);
			thoth__chan_why(why, why_len, "the service at %s: %s", path, inner);
		}
		return r;
	}
	*out = ch;
	op->ch = NULL;                  /* the caller's now */
	return 0;
}

int thoth_chan_connect(const char *path, const thoth_chan_config_t *cfg, thoth_chan_t **out,
		       char *why, size_t why_len)
{
	*out = NULL;
	thoth__chan_opening_t *op;
	int r = open_start(path, cfg, true, &op, why, why_len);
	if (r != THOTH_E_AGAIN)
		return r;
	uint64_t deadline = op->deadline_ns;       /* taken before the connect */
	for (;;) {
		r = thoth__chan_open_step(op, out, why, why_len);
		if (r != THOTH_E_AGAIN)
			break;
		uint64_t now = thoth_clock_now();
		if (now >= deadline) {
			r = thoth__chan_open_expired(op, op->hs_ms, why, why_len);
			break;
		}
		struct pollfd pfd = { .fd = op->ch->sock, .events = POLLIN };
		int left = (int)((deadline - now + 999999) / 1000000);
		if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
			thoth__chan_why(why, why_len, "waiting for the service at %s: %s", path, strerror(errno));
			r = THOTH_E_IO;
			break;
		}
	}
	thoth__chan_open_free(op);
	return r;
}
