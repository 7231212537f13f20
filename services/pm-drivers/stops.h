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
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

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

#endif
