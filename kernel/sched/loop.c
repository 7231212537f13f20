/*
 * loop.c - the tickless event loop (include/thoth/loop.h, docs/LOOP.md).
 *
 * One epoll instance watches: the user's fd sources, one timerfd, and (once
 * a signal is handled) one signalfd.  The timerfd is armed for the earliest
 * "latest allowed" instant of all pending timers and disarmed when none is
 * pending; an idle loop therefore sleeps in epoll_wait(-1) and costs nothing.
 *
 * Removal safety: a source removed during dispatch is only marked dead and
 * freed after the batch, so a later event of the same batch that points at
 * it is skipped, never dereferenced after free.  Timers being fired are
 * popped first and fired from a local list; cancelling one of them from a
 * callback marks it and it is freed once its turn has passed.
 *
 * Trace points (OBS-1, category LOOP / TIMER): loop_wakeup(reasons, events)
 * after each epoll_wait that returns something to do, timer_fire(lateness
 * in ns past the deadline, slack in ns) before each timer callback.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "thoth/loop.h"
#include "thoth/trace.h"
#include "timerq.h"

#define MAX_EVENTS 64
#define MAX_SIGNAL 65

struct thoth_source {
	int fd;
	uint32_t events;
	thoth_fd_fn fn;
	void *arg;
	bool dead;
	thoth_source_t *prev, *next;   /* live sources, so thoth_loop_free frees them */
	thoth_source_t *next_dead;
};

struct thoth_timer {
	timerq_entry_t q;           /* first: timerq hands back entry pointers */
	thoth_timer_fn fn;
	void *arg;
	bool firing;                /* popped, in this batch's fire list */
	bool cancelled;             /* cancelled while firing: free after its turn */
	thoth_timer_t *next_fire;
};

typedef struct deferred {
	thoth_defer_fn fn;
	void *arg;
} deferred_t;

struct thoth_loop {
	int epfd;
	int timerfd;
	int sigfd;
	sigset_t sigmask;
	struct {
		thoth_signal_fn fn;
		void *arg;
	} signals[MAX_SIGNAL];
	timerq_t timers;
	uint64_t armed_at;          /* timerfd expiry as armed, 0 = disarmed */
	uint64_t now;
	deferred_t *deferred;
	size_t n_deferred, cap_deferred;
	thoth_source_t *live;       /* all sources not removed */
	thoth_source_t *dead;       /* removed during dispatch, freed after */
	bool stopped;
	bool dispatching;
	thoth_loop_stats_t stats;
};

/* epoll user data for the loop's own fds (sources are heap pointers). */
static char timerfd_tag, sigfd_tag;

uint64_t thoth_clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t thoth_loop_now(const thoth_loop_t *loop)
{
	return loop->now;
}

int thoth_loop_new(thoth_loop_t **out)
{
	thoth_loop_t *loop = calloc(1, sizeof *loop);
	if (!loop)
		return THOTH_E_NOMEM;
	loop->sigfd = -1;
	loop->timerfd = -1;
	sigemptyset(&loop->sigmask);
	timerq_init(&loop->timers);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		goto err;
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (loop->timerfd < 0)
		goto err;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &timerfd_tag };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->timerfd, &ev) < 0)
		goto err;
	loop->now = thoth_clock_now();
	*out = loop;
	return 0;
err:
	thoth_loop_free(loop);
	return THOTH_E_IO;
}

static void free_dead(thoth_loop_t *loop)
{
	while (loop->dead) {
		thoth_source_t *s = loop->dead;
		loop->dead = s->next_dead;
		free(s);
	}
}

void thoth_loop_free(thoth_loop_t *loop)
{
	if (!loop)
		return;
	free_dead(loop);
	/* Sources and pending timers belong to the loop. */
	while (loop->live) {
		thoth_source_t *s = loop->live;
		loop->live = s->next;
		free(s);
	}
	while (loop->timers.n) {
		timerq_entry_t *e = loop->timers.deadline_heap[0];
		timerq_remove(&loop->timers, e);
		free(e);
	}
	timerq_free(&loop->timers);
	if (loop->sigfd >= 0) {
		close(loop->sigfd);
		sigprocmask(SIG_UNBLOCK, &loop->sigmask, NULL);
	}
	if (loop->timerfd >= 0)
		close(loop->timerfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop->deferred);
	free(loop);
}

/* ---- fd sources ------------------------------------------------------------ */

static uint32_t to_epoll(uint32_t events)
{
	return (events & THOTH_LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0) |
	       (events & THOTH_LOOP_WRITE ? EPOLLOUT : 0);
}

int thoth_loop_add_fd(thoth_loop_t *loop, int fd, uint32_t events, thoth_fd_fn fn, void *arg,
		      thoth_source_t **out)
{
	if (fd < 0 || !fn || (events & ~(THOTH_LOOP_READ | THOTH_LOOP_WRITE)))
		return THOTH_E_INVAL;
	thoth_source_t *s = calloc(1, sizeof *s);
	if (!s)
		return THOTH_E_NOMEM;
	*s = (thoth_source_t){ .fd = fd, .events = events, .fn = fn, .arg = arg };
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = s };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(s);
		return e == EEXIST ? THOTH_E_EXISTS : e == EBADF || e == EPERM ? THOTH_E_INVAL : THOTH_E_IO;
	}
	loop->stats.fd_sources++;
	s->next = loop->live;
	if (loop->live)
		loop->live->prev = s;
	loop->live = s;
	if (out)
		*out = s;
	return 0;
}

int thoth_loop_modify_fd(thoth_loop_t *loop, thoth_source_t *s, uint32_t events)
{
	if (s->dead || (events & ~(THOTH_LOOP_READ | THOTH_LOOP_WRITE)))
		return THOTH_E_INVAL;
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = s };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return THOTH_E_IO;
	s->events = events;
	return 0;
}

void thoth_loop_remove_fd(thoth_loop_t *loop, thoth_source_t *s)
{
	if (!s || s->dead)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, s->fd, NULL);   /* the fd may be closed already */
	s->dead = true;
	loop->stats.fd_sources--;
	if (s->prev)
		s->prev->next = s->next;
	else
		loop->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next_dead = loop->dead;
	loop->dead = s;
	if (!loop->dispatching)
		free_dead(loop);
}

/* ---- timers ------------------------------------------------------------------- */

/*
 * Arm the timerfd for the earliest instant at which some pending timer's
 * window closes (min over timers of deadline + slack).  Firing then runs
 * every timer whose deadline has passed: each of those is inside its window,
 * because no window closes before that instant.  Only called when the
 * queue changed; timerfd_settime is skipped if the instant is unchanged.
 */
static void rearm(thoth_loop_t *loop)
{
	uint64_t at = loop->timers.n ? timerq_min_latest(&loop->timers) : 0;
	if (at == loop->armed_at)
		return;
	if (at == 0 && loop->timers.n)
		at = 1;                 /* deadline 0: "as soon as possible" */
	struct itimerspec its = { 0 };
	its.it_value.tv_sec = (time_t)(at / 1000000000ull);
	its.it_value.tv_nsec = (long)(at % 1000000000ull);
	timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
	loop->armed_at = at;
	loop->stats.timerfd_arms++;
}

int thoth_loop_add_timer(thoth_loop_t *loop, uint64_t deadline, uint64_t slack, thoth_timer_fn fn,
			 void *arg, thoth_timer_t **out)
{
	if (!fn)
		return THOTH_E_INVAL;
	thoth_timer_t *t = calloc(1, sizeof *t);
	if (!t)
		return THOTH_E_NOMEM;
	t->fn = fn;
	t->arg = arg;
	t->q.by_deadline = t->q.by_latest = TIMERQ_NONE;
	int r = timerq_insert(&loop->timers, &t->q, deadline, slack);
	if (r) {
		free(t);
		return r;
	}
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (!loop->dispatching)
		rearm(loop);
	if (out)
		*out = t;
	return 0;
}

int thoth_loop_add_timer_in(thoth_loop_t *loop, uint64_t delay, uint64_t slack, thoth_timer_fn fn,
			    void *arg, thoth_timer_t **out)
{
	return thoth_loop_add_timer(loop, thoth_clock_now() + delay, slack, fn, arg, out);
}

int thoth_timer_rearm(thoth_loop_t *loop, thoth_timer_t *t, uint64_t deadline, uint64_t slack)
{
	if (t->cancelled)
		return THOTH_E_INVAL;
	timerq_remove(&loop->timers, &t->q);
	int r = timerq_insert(&loop->timers, &t->q, deadline, slack);
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (!loop->dispatching)
		rearm(loop);
	return r;
}

void thoth_timer_cancel(thoth_loop_t *loop, thoth_timer_t *t)
{
	if (!t || t->cancelled)
		return;
	timerq_remove(&loop->timers, &t->q);
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	if (t->firing) {
		t->cancelled = true;    /* freed by fire_timers after its turn */
	} else {
		free(t);
		if (!loop->dispatching)
			rearm(loop);
	}
}

uint64_t thoth_timer_deadline(const thoth_timer_t *t)
{
	return t->q.deadline;
}

static int fire_timers(thoth_loop_t *loop)
{
	uint64_t expirations;
	if (read(loop->timerfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return THOTH_E_IO;
	loop->armed_at = 0;             /* a fired timerfd is disarmed */
	/* Pop everything due into a local list first: callbacks may add, re-arm
	 * or cancel timers while we walk it. */
	thoth_timer_t *head = NULL, **tail = &head;
	timerq_entry_t *e;
	while ((e = timerq_pop_due(&loop->timers, loop->now))) {
		thoth_timer_t *t = (thoth_timer_t *)e;
		t->firing = true;
		t->next_fire = NULL;
		*tail = t;
		tail = &t->next_fire;
	}
	int ran = 0;
	while (head) {
		thoth_timer_t *t = head;
		head = t->next_fire;
		/* skip one cancelled, or re-armed by an earlier callback of this batch */
		if (!t->cancelled && !timerq_queued(&t->q)) {
			THOTH_TRACE(TIMER, timer_fire, loop->now - t->q.deadline,
				    t->q.latest - t->q.deadline);
			loop->stats.timers_fired++;
			if (ran++)
				loop->stats.timers_coalesced++;
			t->fn(loop, t, t->arg);
		}
		t->firing = false;
		/* Fired timers are done unless the callback re-armed them; a
		 * one-shot that was neither re-armed nor cancelled is freed. */
		if (t->cancelled || !timerq_queued(&t->q))
			free(t);
	}
	loop->stats.timers_pending = (uint32_t)loop->timers.n;
	return ran;
}

/* ---- signals ----------------------------------------------------------------- */

int thoth_loop_add_signal(thoth_loop_t *loop, int signo, thoth_signal_fn fn, void *arg)
{
	if (signo <= 0 || signo >= MAX_SIGNAL || !fn || signo == SIGKILL || signo == SIGSTOP)
		return THOTH_E_INVAL;
	sigset_t mask = loop->sigmask;
	sigaddset(&mask, signo);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return THOTH_E_IO;
	int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return THOTH_E_IO;
	if (loop->sigfd < 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &sigfd_tag };
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			return THOTH_E_IO;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->signals[signo].fn = fn;
	loop->signals[signo].arg = arg;
	return 0;
}

static int dispatch_signals(thoth_loop_t *loop)
{
	struct signalfd_siginfo info;
	int ran = 0;
	while (read(loop->sigfd, &info, sizeof info) == (ssize_t)sizeof info) {
		if (info.ssi_signo < MAX_SIGNAL && loop->signals[info.ssi_signo].fn) {
			loop->signals[info.ssi_signo].fn(loop, &info, loop->signals[info.ssi_signo].arg);
			ran++;
		}
	}
	return ran;
}

/* ---- deferred ----------------------------------------------------------------- */

int thoth_loop_defer(thoth_loop_t *loop, thoth_defer_fn fn, void *arg)
{
	if (!fn)
		return THOTH_E_INVAL;
	if (loop->n_deferred == loop->cap_deferred) {
		size_t cap = loop->cap_deferred ? loop->cap_deferred * 2 : 16;
		deferred_t *d = realloc(loop->deferred, cap * sizeof *d);
		if (!d)
			return THOTH_E_NOMEM;
		loop->deferred = d;
		loop->cap_deferred = cap;
	}
	loop->deferred[loop->n_deferred++] = (deferred_t){ fn, arg };
	return 0;
}

/* Run what was deferred before this call; what they defer runs next time. */
static int run_deferred(thoth_loop_t *loop)
{
	size_t n = loop->n_deferred;
	if (!n)
		return 0;
	deferred_t batch[16], *b = n <= 16 ? batch : malloc(n * sizeof *b);
	if (!b)
		return THOTH_E_NOMEM;
	memcpy(b, loop->deferred, n * sizeof *b);
	loop->n_deferred = 0;
	for (size_t i = 0; i < n; i++)
		b[i].fn(loop, b[i].arg);
	if (b != batch)
		free(b);
	return (int)n;
}

/* ---- running ------------------------------------------------------------------ */

int thoth_loop_run_once(thoth_loop_t *loop, bool block)
{
	int ran = run_deferred(loop);
	if (ran < 0)
		return ran;
	rearm(loop);
	struct epoll_event ev[MAX_EVENTS];
	/* Sleep only if this iteration has nothing done or queued: deferred
	 * work that ran may have changed what the caller is waiting for. */
	int timeout = (block && ran == 0 && loop->n_deferred == 0 && !loop->stopped) ? -1 : 0;
	int n = epoll_wait(loop->epfd, ev, MAX_EVENTS, timeout);
	if (n < 0)
		return errno == EINTR ? ran : THOTH_E_IO;
	loop->now = thoth_clock_now();
	loop->stats.wakeups++;
	/* Why we are awake, for the trace (a scan of at most MAX_EVENTS tags). */
	unsigned reasons = (timeout == 0 && ran > 0) ? THOTH_LOOP_WAKE_DEFERRED : 0;
	for (int i = 0; i < n; i++)
		reasons |= ev[i].data.ptr == &timerfd_tag ? THOTH_LOOP_WAKE_TIMER
			 : ev[i].data.ptr == &sigfd_tag   ? THOTH_LOOP_WAKE_SIGNAL
							  : THOTH_LOOP_WAKE_FD;
	if (reasons)
		THOTH_TRACE(LOOP, loop_wakeup, reasons, n);
	bool saw_fd = false, saw_timer = false, saw_signal = false;
	loop->dispatching = true;
	for (int i = 0; i < n; i++) {
		void *p = ev[i].data.ptr;
		if (p == &timerfd_tag) {
			saw_timer = true;
			int r = fire_timers(loop);
			if (r > 0)
				ran += r;
		} else if (p == &sigfd_tag) {
			saw_signal = true;
			ran += dispatch_signals(loop);
		} else {
			thoth_source_t *s = p;
			if (s->dead)
				continue;
			saw_fd = true;
			uint32_t e = ev[i].events, out = 0;
			if (e & EPOLLIN)
				out |= THOTH_LOOP_READ;
			if (e & EPOLLOUT)
				out |= THOTH_LOOP_WRITE;
			if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
				out |= THOTH_LOOP_HUP;
			s->fn(loop, s, s->fd, out, s->arg);
			ran++;
		}
	}
	loop->dispatching = false;
	free_dead(loop);
	rearm(loop);
	loop->stats.wakeups_fd += saw_fd;
	loop->stats.wakeups_timer += saw_timer;
	loop->stats.wakeups_signal += saw_signal;
	if (n == 0 && timeout == 0 && ran > 0)
		loop->stats.wakeups_deferred++;
	return ran;
}

int thoth_loop_run(thoth_loop_t *loop)
{
	loop->stopped = false;
	while (!loop->stopped) {
		int r = thoth_loop_run_once(loop, true);
		if (r < 0)
			return r;
	}
	return 0;
}

void thoth_loop_stop(thoth_loop_t *loop)
{
	loop->stopped = true;
}

void thoth_loop_stats(const thoth_loop_t *loop, thoth_loop_stats_t *out)
{
	*out = loop->stats;
}

uint64_t thoth_loop_armed_at(const thoth_loop_t *loop)
{
	struct itimerspec its;
	if (timerfd_gettime(loop->timerfd, &its) < 0)
		return 0;
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		return 0;
	return loop->armed_at;
}
