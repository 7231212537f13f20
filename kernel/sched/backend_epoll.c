/*
 * backend_epoll.c - the default thoth_loop backend: one epoll instance,
 * level triggered (EPOLLET for a source added with THOTH_LOOP_EDGE); one
 * epoll_wait per wake-up.  No asynchronous file I/O:
 * loop.c runs those requests inline and reports them on the next
 * iteration (loop_backend.h).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop_backend.h"
#include "thoth/hot.h"

/*
 * The state is the epoll fd itself, stored as fd + 1 in the state pointer
 * (never NULL): a wake-up's epoll_wait then reads no memory of ours for it,
 * where a malloc'd record was one more heap page per wake-up of a one-CPU
 * channel service (docs/SCHED.md, stop 36).
 */
static inline int ep_fd(void *state)
{
	return (int)((intptr_t)state - 1);
}

static int ep_create(void **state)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return THOTH_E_IO;
	*state = (void *)((intptr_t)fd + 1);
	return 0;
}

static void ep_destroy(void *state)
{
	if (!state)
		return;
	close(ep_fd(state));
}

static uint32_t to_epoll(uint32_t events)
{
	return (events & THOTH_LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0) |
	       (events & THOTH_LOOP_WRITE ? EPOLLOUT : 0) |
	       (events & THOTH_LOOP_EDGE ? EPOLLET : 0);
}

static int ep_ctl(void *state, int op, int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = ptr };
	if (epoll_ctl(ep_fd(state), op, fd, &ev) == 0)
		return 0;
	int e = errno;
	return e == EEXIST ? THOTH_E_EXISTS : e == EBADF || e == EPERM ? THOTH_E_INVAL : THOTH_E_IO;
}

static int ep_add(void *state, int fd, uint32_t events, void *ptr, void **handle)
{
	*handle = NULL;
	return ep_ctl(state, EPOLL_CTL_ADD, fd, events, ptr);
}

static int ep_modify(void *state, int fd, uint32_t events, void *ptr, void **handle)
{
	return ep_ctl(state, EPOLL_CTL_MOD, fd, events, ptr) ? THOTH_E_IO : 0;
}

/*
 * A source must be removed before its fd is closed (thoth/loop.h).  Closed
 * first, the DEL fails with EBADF; harmless if that was the file's last
 * descriptor (the kernel dropped the registration with the file), but if a
 * copy lives on (dup, fork, SCM_RIGHTS) epoll keeps reporting the source's
 * pointer after loop.c frees it: events for a freed source, or for the
 * next source given its slot.  epoll cannot name the registration without
 * the fd, so all we can do is say so, once per process.
 */
static void ep_del(void *state, int fd, void *handle)
{
	static atomic_bool warned;
	if (epoll_ctl(ep_fd(state), EPOLL_CTL_DEL, fd, NULL) < 0 && errno == EBADF &&
	    !atomic_exchange_explicit(&warned, true, memory_order_relaxed))
		fprintf(stderr,
			"thoth loop: fd %d closed before thoth_loop_remove_fd; if a copy of it is "
			"still open, epoll keeps reporting the removed source (remove first)\n", fd);
}

THOTH_HOT_SERVE static int ep_wait(void *state, loop_ev_t *out, int max, bool block, uint64_t *syscalls)
{
	struct epoll_event ev[64];
	if (max > 64)
		max = 64;
	int n = epoll_wait(ep_fd(state), ev, max, block ? -1 : 0);
	++*syscalls;
	if (n < 0)
		return errno == EINTR ? 0 : THOTH_E_IO;
	for (int i = 0; i < n; i++) {
		uint32_t e = ev[i].events, o = 0;
		if (e & EPOLLIN)
			o |= THOTH_LOOP_READ;
		if (e & EPOLLOUT)
			o |= THOTH_LOOP_WRITE;
		if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
			o |= THOTH_LOOP_HUP;
		out[i] = (loop_ev_t){ .ptr = ev[i].data.ptr, .events = o };
	}
	return n;
}

const loop_backend_t loop_backend_epoll = {
	.name = "epoll",
	.edge = true,
	.create = ep_create,
	.destroy = ep_destroy,
	.add = ep_add,
	.modify = ep_modify,
	.del = ep_del,
	.io = NULL,
	.wait = ep_wait,
};
