/*
 * timerpage.c - thothd's side of the window page (SCHED-3, docs/SCHED.md
 * "Timers across processes"; kernel/sched/timerpage.h has the page).
 *
 * thothd made the page at start (main.c: a sealed memfd); here it hands
 * the memfd to each client that asks (Daemon.timer_page), and gives back
 * the slots and doorbells that the loops of a dead process left: a
 * process that dies does not unlink its DIR/tk.* sockets, and its slots
 * would stay taken until a new loop happens to reclaim them.
 *
 * When a client's connection closes its process may be exiting (files
 * are closed before the process is a zombie), so the slots cannot be
 * judged yet.  thothd watches the process with a pidfd, which becomes
 * readable once it has exited, and reaps then: no timer, and nothing at
 * all while the process lives on (a service that reconnects, a test).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "thothd.h"
#include "timerpage.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

enum { MAX_WATCHES = 64 };      /* beyond: reap now (what is already dead) */

struct thothd_page_watch {
	thothd_t *d;
	uint32_t pid;
	int fd;
	thoth_source_t *src;
	struct thothd_page_watch *next;
};

int thothd_on_timer_page(void *self, const thoth_daemon_Daemon_timer_page_req_t *req,
			 thoth_daemon_Daemon_timer_page_resp_t *resp, thoth_arena_t *arena)
{
	thothd_call_t *call = self;
	int fd = thoth__timerpage_fd();
	if (fd < 0) {
		call->reason = "thothd has no window page (see its log): timers use the per-boot grid";
		return THOTH_E_NOT_FOUND;
	}
	resp->size = THOTH_TIMERPAGE_SIZE;
	resp->layout = 1;
	call->send_fd = fd;             /* not owned: the next client gets it too */
	return 0;
}

static void reap(void)
{
	unsigned n = thoth__timerpage_reap();
	if (n)
		thothd_debug("window page: %u slot(s) of exited threads given back, doorbells removed", n);
}

static void unwatch(thothd_t *d, struct thothd_page_watch *w)
{
	for (struct thothd_page_watch **p = &d->page_watches; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	if (w->src)
		thoth_loop_remove_fd(d->loop, w->src);
	close(w->fd);
	free(w);
}

static void exited(thoth_loop_t *loop, thoth_source_t *src, int fd, uint32_t events, void *arg)
{
	struct thothd_page_watch *w = arg;
	thothd_t *d = w->d;
	unwatch(d, w);
	reap();
}

void thothd_timerpage_client_closed(thothd_t *d, uint32_t pid)
{
	if (!d->loop || thoth__timerpage_fd() < 0 || pid == 0 || pid == (uint32_t)getpid())
		return;
	unsigned n = 0;
	for (struct thothd_page_watch *w = d->page_watches; w; w = w->next, n++)
		if (w->pid == pid)
			return;         /* already watched (it had several connections) */
	if (n >= MAX_WATCHES) {
		reap();
		return;
	}
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0) {
		/* ESRCH: reaped already.  EINVAL: its parent is reaping it right
		 * now (the pid is found, its process no longer).  Whatever else
		 * (no pidfd on an old kernel, no descriptors): give back now what
		 * is already dead; a loop's claim reclaims what dies later. */
		reap();
		return;
	}
	struct thothd_page_watch *w = calloc(1, sizeof *w);
	if (!w || thoth_loop_add_fd(d->loop, fd, THOTH_LOOP_READ, exited, w, &w->src)) {
		free(w);
		close(fd);
		return;
	}
	*w = (struct thothd_page_watch){ .d = d, .pid = pid, .fd = fd, .src = w->src, .next = d->page_watches };
	d->page_watches = w;
}

void thothd_timerpage_free(thothd_t *d)
{
	while (d->page_watches)
		unwatch(d, d->page_watches);
}
