/*
 * sd.h - thothd under a service manager (systemd or a script):
 * the listening socket handed over by socket activation and readiness
 * notification.  See sd.c for why these are implemented here.
 */
#ifndef THOTHD_SD_H
#define THOTHD_SD_H

#include <stddef.h>

/* The listening socket passed by socket activation (LISTEN_PID is us,
 * LISTEN_FDS=1, fd 3): 1 with *fd set (non-blocking, close-on-exec; the
 * variables are removed so children do not inherit them), 0 when none was
 * passed, or a negative THOTH_E_* with `why` when what was passed is not one
 * listening Unix stream socket.  `path` (cap bytes) receives its address. */
int thothd_sd_listen_fd(int *fd, char *path, size_t cap, char *why, size_t why_cap);

/* Tell the service manager our state ("READY=1", "STOPPING=1") over
 * $NOTIFY_SOCKET; nothing when it is unset.  0, or a negative THOTH_E_*. */
int thothd_sd_notify(const char *state);

/* Readiness for scripts: write "READY=1\n" to fd and close it. */
int thothd_ready_fd_notify(int fd);

#endif
