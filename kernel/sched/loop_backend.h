/*
 * loop_backend.h - what thoth_loop needs from a readiness/completion
 * backend (ae.c style: create / add / modify / delete / wait behind a few
 * functions).  loop.c keeps timers, signals, deferred work and removal
 * safety; a backend only tells it which registered pointers are ready and
 * which file I/O requests completed.  Two backends: epoll (default,
 * backend_epoll.c) and io_uring (backend_uring.c); docs/LOOP.md says when
 * each is used and why.
 */
#ifndef THOTH_LOOP_BACKEND_H
#define THOTH_LOOP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "thoth/loop.h"

/* A file I/O request as loop.c keeps it (one record per request in flight,
 * recycled by loop.c after its callback ran). */
typedef struct loop_io {
	thoth_io_op_t op;
	int fd;
	void *buf;
	size_t len;
	uint64_t off;
	thoth_io_fn fn;
	void *arg;
	int64_t res;                  /* bytes, or -errno */
	struct loop_io *next;         /* loop.c: completed, waiting for dispatch; free */
	struct loop_io *all_next;     /* loop.c: every record the loop allocated (freed with it) */
} loop_io_t;

/* One thing the backend's wait found. */
typedef struct loop_ev {
	void *ptr;                    /* what was registered (add), or the loop_io_t (io) */
	uint32_t events;              /* THOTH_LOOP_READ/WRITE/HUP; 0 for an I/O completion */
	bool io;                      /* ptr is a completed loop_io_t (res filled in) */
} loop_ev_t;

typedef struct loop_backend {
	const char *name;
	bool edge;                    /* add/modify take THOTH_LOOP_EDGE */
	int (*create)(void **state);
	void (*destroy)(void *state);
	/* Watch FD for EVENTS (THOTH_LOOP_READ/WRITE), reporting PTR; *HANDLE
	 * is the backend's own record (may be replaced by modify).  Level
	 * triggered: an fd stays reported while it is ready; with
	 * THOTH_LOOP_EDGE (only where .edge) once per change. */
	int (*add)(void *state, int fd, uint32_t events, void *ptr, void **handle);
	int (*modify)(void *state, int fd, uint32_t events, void *ptr, void **handle);
	/* Stop reporting PTR; the fd may already be closed.  No event for it
	 * is returned by a later wait. */
	void (*del)(void *state, int fd, void *handle);
	/* Start file I/O; its completion comes back from wait.  NULL: the
	 * backend has no asynchronous file I/O (loop.c does it inline). */
	int (*io)(void *state, loop_io_t *req);
	/* Submit what is queued and wait (BLOCK) for at least one event, or
	 * only collect what is there.  Fills up to MAX events; returns their
	 * number or a THOTH_E_* code.  *SYSCALLS += the system calls made. */
	int (*wait)(void *state, loop_ev_t *ev, int max, bool block, uint64_t *syscalls);
} loop_backend_t;

extern const loop_backend_t loop_backend_epoll;
/* NULL when built without liburing. */
extern const loop_backend_t *const loop_backend_uring;

#endif
