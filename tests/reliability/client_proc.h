/*
 * client_proc.h - what the client reliability tests read about a process
 * from /proc: voluntary context switches (each one is a sleep that ended,
 * i.e. a wake-up) and open descriptors.
 */
#ifndef THOTH_TEST_CLIENT_PROC_H
#define THOTH_TEST_CLIENT_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* voluntary_ctxt_switches of the main thread (the processes under test are
 * single-threaded), or -1. */
long client_proc_wakeups(pid_t pid);
/* Entries in /proc/PID/fd, or -1; files under /proc (reads in progress,
 * such as a channel server's schedstat) are not counted. */
int client_proc_fds(pid_t pid);
/* What they are: "FD->TARGET " for each, into BUF (truncated to LEN), for
 * a message that names a descriptor that came or went. */
void client_proc_fd_list(pid_t pid, char *buf, size_t len);

#endif
