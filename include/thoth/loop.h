/*
 * thoth/loop.h - the one event loop every thoth process runs (SCHED-2).
 *
 * epoll (or io_uring, chosen at run time) for readiness, ONE timerfd armed for the next timer deadline, a
 * signalfd for signals, and deferred callbacks that run before the loop
 * sleeps.  Nothing is periodic: with no timers the timerfd is disarmed and
 * an idle loop sleeps in epoll_wait(-1) until an fd or signal wakes it.
 *
 * Timers have a slack: a timer may fire anywhere in [deadline,
 * deadline + slack].  The loop arms the timerfd for the earliest
 * "latest allowed" instant among all timers and then fires every timer whose
 * deadline has passed, so timers whose windows overlap share one wake-up
 * (docs/LOOP.md has the argument).  Single-threaded: every function must be
 * called from the loop's thread; callbacks may add, modify, remove and
 * cancel anything, including the source or timer being dispatched.
 */
#ifndef THOTH_LOOP_H
#define THOTH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/signalfd.h>

#include "thoth/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct thoth_loop thoth_loop_t;
typedef struct thoth_source thoth_source_t;   /* an fd being watched */
typedef struct thoth_timer thoth_timer_t;     /* a one-shot timer */

#define THOTH_LOOP_READ  0x1u
#define THOTH_LOOP_WRITE 0x2u
#define THOTH_LOOP_HUP   0x4u   /* reported only: peer hung up or error */
/* With READ: edge triggered, reported once per arrival of new data (and at
 * the hang-up), not while data stays unread.  Only the epoll backend has it:
 * add/modify answer THOTH_E_NO_FEATURE on the others, which then watch
 * nothing new (docs/LOOP.md).  A caller that leaves data unread must know
 * another arrival will come (docs/IPC.md, "Edge-triggered doorbells"). */
#define THOTH_LOOP_EDGE  0x8u

typedef void (*thoth_fd_fn)(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events,
			    void *arg);
typedef void (*thoth_timer_fn)(thoth_loop_t *loop, thoth_timer_t *timer, void *arg);
typedef void (*thoth_signal_fn)(thoth_loop_t *loop, const struct signalfd_siginfo *info,
				void *arg);
typedef void (*thoth_defer_fn)(thoth_loop_t *loop, void *arg);

/* Why the loop woke up: arg0 of the loop_wakeup trace event (a mask: one
 * wake-up can have several reasons). */
#define THOTH_LOOP_WAKE_FD       1u  /* an fd source was ready */
#define THOTH_LOOP_WAKE_TIMER    2u  /* the timerfd expired */
#define THOTH_LOOP_WAKE_SIGNAL   4u  /* the signalfd was readable */
#define THOTH_LOOP_WAKE_DEFERRED 8u  /* deferred callbacks ran: no sleep */
#define THOTH_LOOP_WAKE_RUNG     16u /* with _TIMER: another process's loop rang us (SCHED-3) */

/* Why the loop woke up, counted (thoth_loop_stats). */
typedef struct thoth_loop_stats {
	uint64_t wakeups;           /* epoll_wait returns */
	uint64_t wakeups_fd;        /* ... with at least one fd source ready */
	uint64_t wakeups_timer;     /* ... with the timerfd ready */
	uint64_t wakeups_signal;    /* ... with the signalfd ready */
	uint64_t wakeups_deferred;  /* ... returning at once because callbacks were deferred */
	uint64_t timers_fired;
	uint64_t timers_coalesced;  /* fired in a wake-up that had already fired another */
	uint64_t timerfd_arms;      /* timerfd_settime calls (arm or disarm) */
	uint64_t wakeups_io;        /* wake-ups with at least one file I/O completion */
	uint64_t io_submitted;      /* thoth_loop_read/write/fsync requests */
	uint64_t io_completed;      /* ... whose callback ran */
	uint64_t backend_syscalls;  /* epoll_wait / io_uring_enter calls made to wait or submit */
	uint64_t wakeups_rung;      /* timer wake-ups rung by another process's loop (SCHED-3) */
	uint64_t timer_bells_rung;  /* ... and rung by us: loops we woke at our timer's instant */
	uint32_t fd_sources;
	uint32_t timers_pending;
} thoth_loop_stats_t;

int thoth_loop_new(thoth_loop_t **out);

/* Which readiness/completion backend a loop uses (docs/LOOP.md). */
typedef enum thoth_loop_backend_kind {
	THOTH_LOOP_BACKEND_DEFAULT = 0,  /* $THOTH_LOOP_BACKEND ("epoll" or "uring"), else epoll;
					  * uring where the kernel refuses it: epoll */
	THOTH_LOOP_BACKEND_EPOLL = 1,
	THOTH_LOOP_BACKEND_URING = 2,    /* io_uring or THOTH_E_IO (errno says why) */
} thoth_loop_backend_kind_t;

typedef struct thoth_loop_options {
	thoth_loop_backend_kind_t backend;
	/* Timers wake at the end of their window instead of at a point of the
	 * per-boot grid shared by every process (docs/SCHED.md); for
	 * measurements, not for services. */
	bool no_timer_grid;
	/* Wake on the per-boot grid even where thothd's window page is
	 * mapped (no slot, no doorbell: docs/SCHED.md); for measurements. */
	bool no_timer_page;
} thoth_loop_options_t;

/* thoth_loop_new with options (NULL = defaults). */
int thoth_loop_new_with(const thoth_loop_options_t *opts, thoth_loop_t **out);
/* "epoll" or "uring". */
const char *thoth_loop_backend(const thoth_loop_t *loop);
/* Frees the loop with its remaining sources and timers (fds are not closed). */
void thoth_loop_free(thoth_loop_t *loop);

/* CLOCK_MONOTONIC in ns: thoth_clock_now reads the clock, thoth_loop_now
 * returns the value read at the first call after the last wake-up (cheap,
 * stable in a batch; a wake-up that asks no time reads no clock). */
uint64_t thoth_clock_now(void);
uint64_t thoth_loop_now(const thoth_loop_t *loop);

/* ---- fd sources ----------------------------------------------------------- */

int thoth_loop_add_fd(thoth_loop_t *loop, int fd, uint32_t events, thoth_fd_fn fn, void *arg,
		      thoth_source_t **out);
int thoth_loop_modify_fd(thoth_loop_t *loop, thoth_source_t *src, uint32_t events);
/* Stop watching; the fd itself is not closed.  Safe from any callback.
 * Remove a source BEFORE closing its fd: epoll can only unregister through
 * the fd, so one closed first while a copy of it lives on (dup, fork,
 * SCM_RIGHTS) stays registered and its events name the freed source, or
 * the next source given its memory.  The epoll backend warns (stderr, once)
 * when it sees the fd closed.  SRC must not be used after this call. */
void thoth_loop_remove_fd(thoth_loop_t *loop, thoth_source_t *src);

/* ---- timers --------------------------------------------------------------- */

/* A one-shot timer at absolute DEADLINE_NS (CLOCK_MONOTONIC) with SLACK_NS:
 * it fires in [DEADLINE_NS, DEADLINE_NS + SLACK_NS], never outside; slack 0
 * declares it exact.  Inside the window the loop wakes where other timers,
 * of this process or (through the per-boot grid) of other processes, wake
 * anyway: docs/SCHED.md lists the default slacks and why. */
int thoth_loop_add_timer(thoth_loop_t *loop, uint64_t deadline_ns, uint64_t slack_ns,
			 thoth_timer_fn fn, void *arg, thoth_timer_t **out);
/* Same, DELAY_NS from now. */
int thoth_loop_add_timer_in(thoth_loop_t *loop, uint64_t delay_ns, uint64_t slack_ns,
			    thoth_timer_fn fn, void *arg, thoth_timer_t **out);
/* Move a pending timer, or a fired one from inside its own callback, to a
 * new deadline (a repeating timer re-arms itself from its callback: there
 * is no fixed period anywhere).  A one-shot timer that fired and was not
 * re-armed by its callback is freed when the callback returns: drop every
 * pointer to it there (kernel/thothd/pm.c once kept one: a use-after-free). */
int thoth_timer_rearm(thoth_loop_t *loop, thoth_timer_t *timer, uint64_t deadline_ns,
		      uint64_t slack_ns);
/* Cancel and free.  Safe from any callback, including the timer's own. */
void thoth_timer_cancel(thoth_loop_t *loop, thoth_timer_t *timer);
uint64_t thoth_timer_deadline(const thoth_timer_t *timer);

/* ---- signals and deferred work ------------------------------------------- */

/* Handle SIGNO through the loop's signalfd (the signal is blocked for the
 * calling thread: call before starting other threads). */
int thoth_loop_add_signal(thoth_loop_t *loop, int signo, thoth_signal_fn fn, void *arg);

/* Run FN(ARG) on the next iteration, before the loop sleeps. */
int thoth_loop_defer(thoth_loop_t *loop, thoth_defer_fn fn, void *arg);

/* ---- file I/O -------------------------------------------------------------- */

/*
 * Asynchronous file I/O on the loop (for journals and stores: codex).
 * FN(loop, result, err, arg) runs on the loop's thread, on a later
 * iteration, never from inside the submitting call: RESULT is the bytes
 * transferred (read/write; 0 for fsync) or THOTH_E_IO with ERR the errno.
 * On the uring backend the request is queued and submitted with the next
 * wait, and completions are reaped in batches; on epoll it runs at once
 * (pread/pwrite/fsync) and only the callback waits for the next iteration.
 * BUF must stay valid until the callback.  Returns 0 or THOTH_E_INVAL /
 * THOTH_E_NOMEM (no callback then).
 */
typedef enum thoth_io_op {
	THOTH_IO_READ, THOTH_IO_WRITE, THOTH_IO_FSYNC, THOTH_IO_FDATASYNC,
} thoth_io_op_t;
typedef void (*thoth_io_fn)(thoth_loop_t *loop, int64_t result, int err, void *arg);

int thoth_loop_read(thoth_loop_t *loop, int fd, void *buf, size_t len, uint64_t off, thoth_io_fn fn,
		    void *arg);
int thoth_loop_write(thoth_loop_t *loop, int fd, const void *buf, size_t len, uint64_t off,
		     thoth_io_fn fn, void *arg);
int thoth_loop_fsync(thoth_loop_t *loop, int fd, bool datasync, thoth_io_fn fn, void *arg);

/* ---- running ------------------------------------------------------------- */

/* Run until thoth_loop_stop().  Returns 0 or THOTH_E_IO. */
int thoth_loop_run(thoth_loop_t *loop);
/* One iteration: run deferred callbacks, wait (if BLOCK and nothing is
 * deferred) and dispatch what is ready.  Returns the number of callbacks run
 * or a negative error. */
int thoth_loop_run_once(thoth_loop_t *loop, bool block);
void thoth_loop_stop(thoth_loop_t *loop);

void thoth_loop_stats(const thoth_loop_t *loop, thoth_loop_stats_t *out);
/* Until when (CLOCK_MONOTONIC ns) a callback may block the loop's thread
 * without delaying work the loop already holds: 0 while deferred callbacks
 * or I/O completions wait or the loop is stopping, else the earliest timer
 * deadline, UINT64_MAX with none.  Readiness of fds is not known without a
 * system call: such a wait must still be short (chan_server's nap on a hot
 * channel is bounded by the spin budget, docs/SCHED.md). */
uint64_t thoth_loop_quiet_until(const thoth_loop_t *loop);
/* The timerfd's armed expiry (0 = disarmed): tests prove the idle guarantee. */
uint64_t thoth_loop_armed_at(const thoth_loop_t *loop);

#ifdef __cplusplus
}
#endif
#endif
