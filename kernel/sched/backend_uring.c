/*
 * backend_uring.c - the io_uring thoth_loop backend (THOTH_LOOP_BACKEND=uring
 * or thoth_loop_options_t.backend): fd readiness as one-shot POLL_ADD
 * requests, file I/O as READ/WRITE/FSYNC requests, everything queued in the
 * submission ring and submitted together with the wait, in one
 * io_uring_enter per wake-up; all completions that are there are reaped in
 * one pass.
 *
 * Readiness is level triggered like epoll: a poll that fired is re-armed
 * only when the loop next waits (after the callbacks ran), and a one-shot
 * poll reports at once if the fd is still ready then.  (Multishot polls
 * are edge triggered: a callback that left data unread would never hear of
 * it again.)
 *
 * Lifetime: each watched fd has a `ureg` record owned here; the poll's
 * completion carries the record's address.  del only marks it dead and asks
 * the kernel to cancel the poll; the record is freed when the poll's last
 * completion arrives, so a completion can never name freed memory.
 *
 * Ring setup tries, in order, SINGLE_ISSUER + DEFER_TASKRUN (6.1: task work
 * runs only when we wait, no inter-processor interrupts), COOP_TASKRUN
 * (5.19), then no flags; the ring starts disabled and is enabled by the
 * first wait, so the thread that runs the loop is its single issuer even if
 * another thread created the loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "loop_backend.h"
#include "thoth/hot.h"

#define RING_ENTRIES 256u

/* user_data tags in the low bits (records are 8-byte aligned). */
enum { TAG_POLL = 1, TAG_IO = 2, TAG_MASK = 7 };

typedef struct ureg {
	int fd;
	uint32_t mask;                /* poll(2) events */
	void *ptr;
	bool dead;                    /* deleted: free when no request names it */
	bool armed;                   /* a POLL_ADD is in flight */
	bool queued;                  /* on the re-arm list */
	struct ureg *next_rearm;
	struct ureg *prev, *next;     /* every record not yet freed (destroy frees them) */
} ureg_t;

typedef struct ur {
	struct io_uring ring;
	bool enabled;
	bool defer_taskrun;
	ureg_t *rearm;                /* fired polls, re-armed at the next wait */
	ureg_t *all;
} ur_t;

static ureg_t *reg_new(ur_t *u)
{
	ureg_t *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->next = u->all;
	if (u->all)
		u->all->prev = g;
	u->all = g;
	return g;
}

static void reg_free(ur_t *u, ureg_t *g)
{
	if (g->prev)
		g->prev->next = g->next;
	else
		u->all = g->next;
	if (g->next)
		g->next->prev = g->prev;
	free(g);
}

static int ur_create(void **state)
{
	ur_t *u = calloc(1, sizeof *u);
	if (!u)
		return THOTH_E_NOMEM;
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof p);
		p.flags = tries[i] | IORING_SETUP_R_DISABLED;
		r = io_uring_queue_init_params(RING_ENTRIES, &u->ring, &p);
		if (r == 0) {
			u->defer_taskrun = (tries[i] & IORING_SETUP_DEFER_TASKRUN) != 0;
			break;
		}
		if (r != -EINVAL)
			break;                  /* ENOSYS, EPERM (io_uring disabled): no retry helps */
	}
	if (r) {
		free(u);
		errno = -r;             /* ENOSYS, EPERM: this kernel or sandbox has no io_uring */
		return r == -ENOMEM ? THOTH_E_NOMEM : THOTH_E_IO;
	}
	*state = u;
	return 0;
}

static void ur_destroy(void *state)
{
	ur_t *u = state;
	if (!u)
		return;
	/* In-flight polls die with the ring; then no completion can name a
	 * record any more. */
	io_uring_queue_exit(&u->ring);
	while (u->all)
		reg_free(u, u->all);
	free(u);
}

static int ur_enable(ur_t *u)
{
	if (u->enabled)
		return 0;
	/* Raw system call: Debian's liburing 2.3 declares
	 * io_uring_enable_rings() but its shared library does not export it. */
	if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0)
		return THOTH_E_IO;
	u->enabled = true;
	return 0;
}

/* A free submission entry; submits the queue first when it is full (only
 * once enabled: a disabled ring refuses submissions). */
static struct io_uring_sqe *sqe_get(ur_t *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe && u->enabled && io_uring_submit(&u->ring) >= 0)
		sqe = io_uring_get_sqe(&u->ring);
	return sqe;
}

static uint32_t to_poll(uint32_t events)
{
	return (events & THOTH_LOOP_READ ? POLLIN | POLLRDHUP : 0) | (events & THOTH_LOOP_WRITE ? POLLOUT : 0);
}

static int arm(ur_t *u, ureg_t *g)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	if (!sqe)
		return THOTH_E_NOMEM;
	io_uring_prep_poll_add(sqe, g->fd, g->mask);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)g | TAG_POLL);
	g->armed = true;
	return 0;
}

static int ur_add(void *state, int fd, uint32_t events, void *ptr, void **handle)
{
	ur_t *u = state;
	if (fd < 0)
		return THOTH_E_INVAL;
	ureg_t *g = reg_new(u);
	if (!g)
		return THOTH_E_NOMEM;
	g->fd = fd;
	g->mask = to_poll(events);
	g->ptr = ptr;
	int r = arm(u, g);
	if (r) {
		reg_free(u, g);
		return r;
	}
	*handle = g;
	return 0;
}

static void ur_del(void *state, int fd, void *handle)
{
	ur_t *u = state;
	ureg_t *g = handle;
	if (!g)
		return;
	g->dead = true;
	if (g->armed) {
		struct io_uring_sqe *sqe = sqe_get(u);
		if (sqe) {
			io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)g | TAG_POLL);
			io_uring_sqe_set_data64(sqe, 0);      /* the removal's own completion: ignored */
		}
		/* Freed when the poll's completion (cancelled or fired) arrives. */
	} else if (!g->queued) {
		reg_free(u, g);
	}                               /* queued: freed by the re-arm pass */
}

static int ur_modify(void *state, int fd, uint32_t events, void *ptr, void **handle)
{
	ureg_t *g = *handle;
	if (g && g->mask == to_poll(events))
		return 0;
	void *fresh;
	int r = ur_add(state, fd, events, ptr, &fresh);
	if (r)
		return r;
	ur_del(state, fd, g);
	*handle = fresh;
	return 0;
}

static int ur_io(void *state, loop_io_t *req)
{
	ur_t *u = state;
	struct io_uring_sqe *sqe = sqe_get(u);
	if (!sqe)
		return THOTH_E_AGAIN;
	switch (req->op) {
	case THOTH_IO_READ:
		io_uring_prep_read(sqe, req->fd, req->buf, (unsigned)req->len, req->off);
		break;
	case THOTH_IO_WRITE:
		io_uring_prep_write(sqe, req->fd, req->buf, (unsigned)req->len, req->off);
		break;
	case THOTH_IO_FSYNC:
		io_uring_prep_fsync(sqe, req->fd, 0);
		break;
	case THOTH_IO_FDATASYNC:
		io_uring_prep_fsync(sqe, req->fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)req | TAG_IO);
	return 0;
}

static uint32_t from_poll(int res)
{
	if (res < 0)
		return THOTH_LOOP_HUP;    /* the poll itself failed (e.g. a bad fd): report once */
	uint32_t o = 0;
	if (res & POLLIN)
		o |= THOTH_LOOP_READ;
	if (res & POLLOUT)
		o |= THOTH_LOOP_WRITE;
	if (res & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
		o |= THOTH_LOOP_HUP;
	return o;
}

THOTH_HOT_SERVE static int ur_wait(void *state, loop_ev_t *out, int max, bool block, uint64_t *syscalls)
{
	ur_t *u = state;
	int r = ur_enable(u);
	if (r)
		return r;
	/* Re-arm what fired last time (its callbacks have run) or free it. */
	ureg_t *g = u->rearm;
	u->rearm = NULL;
	while (g) {
		ureg_t *next = g->next_rearm;
		g->queued = false;
		if (g->dead)
			reg_free(u, g);
		else if (arm(u, g))
			return THOTH_E_NOMEM;
		g = next;
	}
	/* One system call: submit everything queued and wait (or, with
	 * DEFER_TASKRUN, let pending completions be posted). */
again:
	if (block && io_uring_cq_ready(&u->ring) == 0)
		r = io_uring_submit_and_wait(&u->ring, 1);
	else if (io_uring_sq_ready(&u->ring) || u->defer_taskrun)
		r = io_uring_submit_and_get_events(&u->ring);
	else
		r = 0, --*syscalls;
	++*syscalls;
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY && r != -ETIME)
		return THOTH_E_IO;
	/* The completions there now: the tail read once (acquire: orders the
	 * CQE reads after it), not once per entry as io_uring_for_each_cqe
	 * does; our ring has 16-byte CQEs (no IORING_SETUP_CQE32). */
	int n = 0;
	unsigned head = *u->ring.cq.khead, mask = u->ring.cq.ring_mask, seen = 0;
	unsigned tail = io_uring_smp_load_acquire(u->ring.cq.ktail);
	for (; head != tail && n < max; head++) {
		struct io_uring_cqe *cqe = &u->ring.cq.cqes[head & mask];
		seen++;
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		void *p = (void *)(uintptr_t)(ud & ~(uint64_t)TAG_MASK);
		if ((ud & TAG_MASK) == TAG_IO) {
			loop_io_t *req = p;
			req->res = cqe->res;
			out[n++] = (loop_ev_t){ .ptr = req, .io = true };
		} else if ((ud & TAG_MASK) == TAG_POLL) {
			ureg_t *x = p;
			x->armed = false;
			if (x->dead) {
				reg_free(u, x);
				continue;
			}
			out[n++] = (loop_ev_t){ .ptr = x->ptr, .events = from_poll(cqe->res) };
			if (cqe->res >= 0) {
				x->queued = true;
				x->next_rearm = u->rearm;
				u->rearm = x;
			}
		}
	}
	io_uring_cq_advance(&u->ring, seen);
	/* Only our own bookkeeping came back (a removed poll's cancellation,
	 * the removal's answer): nothing happened for the loop, so a blocking
	 * wait waits on instead of handing it an empty wake-up.  A loop that
	 * mutes and unmutes its doorbell (loop.c, bell_mute) replaces a poll
	 * each time and used to count a wake-up for it. */
	if (block && n == 0 && seen > 0)
		goto again;
	return n;
}

static const loop_backend_t uring = {
	.name = "uring",
	.create = ur_create,
	.destroy = ur_destroy,
	.add = ur_add,
	.modify = ur_modify,
	.del = ur_del,
	.io = ur_io,
	.wait = ur_wait,
};
const loop_backend_t *const loop_backend_uring = &uring;
