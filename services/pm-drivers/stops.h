/*
 * stops.h - how a PM driver (sim_driver.c, runtime_driver.c) hears
 * SIGTERM and SIGINT: blocked and read from a signalfd polled with the
 * connection.  A handler could not interrupt the library's waits (they
 * retry on EINTR); blocked before connecting, so none is lost.  Both
 * drivers wrote these lines again; one copy now.
 */
#ifndef THOTH_PM_DRIVERS_STOPS_H
#define THOTH_PM_DRIVERS_STOPS_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "thoth/stream.h"

/* A nonblocking signalfd of SIGTERM and SIGINT, both blocked; -1 (said on
 * stderr, naming PROG) when either step fails. */
static inline int driver_watch_stops(const char *prog)
{
	sigset_t stops;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	int sfd = sigprocmask(SIG_BLOCK, &stops, NULL) ? -1 : signalfd(-1, &stops, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fprintf(stderr, "%s: cannot watch SIGTERM: %s\n", prog, strerror(errno));
	return sfd;
}

/* A signal on SFD (read: SIGTERM or SIGINT), or 0. */
static inline int driver_signalled(int sfd)
{
	struct signalfd_siginfo si;
	return read(sfd, &si, sizeof si) == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}

/* One turn of a driver's loop on SOCK (thothd) and SFD (driver_watch_stops):
 * an event read already or readable now is handled, else the driver
 * sleeps until thothd or a signal wakes it.  0: go round again; < 0:
 * thothd went away (its error); > 0: poll failed (said on stderr, naming
 * PROG). */
static inline int driver_wait(thoth_sock_client_t *sock, int sfd, const char *prog)
{
	int r = thoth_sock_client_poll_event(sock, 0);
	if (r > 0)
		return 0;
	if (r < 0)
		return r;
	struct pollfd pfd[2] = { { .fd = sock->fd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
	if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
		fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
		return 1;
	}
	return 0;
}

#endif
