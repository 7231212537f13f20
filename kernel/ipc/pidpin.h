/*
 * pidpin.h - a process named by a pid number that came from elsewhere
 * (SO_PEERCRED, a file name, a table, a command line), pinned while
 * /proc/PID is read.  Private to the tree (thoth_wire builds pidpin.c).
 *
 * A pid is a name the kernel hands out again: a process that exits
 * between "read /proc/PID/x" and "act on what it said" may leave PID to an
 * unrelated process, which is then named, read or signalled as the first.
 * A pidfd taken before the read names the process, not the number: it is
 * readable (POLLIN) once that process has exited, so a check after the read
 * says whether /proc/PID still meant it all along.  The residual window is
 * before the pidfd: a number already reused when it is taken pins the new
 * process (the caller's own identity checks, or SO_PEERPIDFD, close that).
 *
 * No pidfds here (pidfd_open: ENOSYS before Linux 5.3, or a seccomp filter
 * answering ENOSYS or EPERM): thoth__pid_pin says ENOSYS, and the callers
 * read unpinned, saying so once (docs/PROBES.md "Pinned pids").
 */
#ifndef THOTH_PIDPIN_H
#define THOTH_PIDPIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A pidfd of PID (close it), or -1 with errno: ESRCH (no such process:
 * gone), EINVAL (0, or not a pid), ENOSYS (no pidfds on this kernel or
 * under this seccomp filter: its EPERM is told as ENOSYS), or the
 * kernel's (EMFILE...). */
int thoth__pid_pin(uint32_t pid);

/* Whether the process of PIDFD has exited (it may be a zombie, or its
 * number another process's now).  Never blocks.  PIDFD -1 (unpinned):
 * false, nothing known. */
bool thoth__pid_exited(int pidfd);

/* After the caller's own reads of /proc/PID (a descriptor opened, a
 * library attached): whether the process PIDFD pins lived through them,
 * so that what they took is PID's.  PIDFD -1 (unpinned): true. */
bool thoth__pid_lived_through(uint32_t pid, int pidfd);

/* /proc/PID/FILE ("comm", "stat"...) read with one read(2) into BUF (CAP
 * bytes, NUL-terminated), PID pinned by PIDFD (-1: unpinned, no check).
 * Its length, or -1 with errno: ESRCH when the pinned process exited
 * before the read ended (BUF then says nothing of it), else why the file
 * could not be read. */
ssize_t thoth__proc_read_pinned(uint32_t pid, int pidfd, const char *file, char *buf, size_t cap);

/* stat(2) of /proc/PID/FILE ("exe": the executable it runs) with PID
 * pinned as above.  0, or -1 with errno (ESRCH: the pinned process exited). */
int thoth__proc_stat_pinned(uint32_t pid, int pidfd, const char *file, struct stat *st);

/* Seams for tests: the pidfd_open system call (a test plays a kernel
 * without it), and a hook run after each pinned read and before its check
 * (a test kills and reaps the process there: the race made deterministic).
 * NULL in production. */
extern long (*thoth__pidfd_open_call)(pid_t pid, unsigned flags);
extern void (*thoth__pidpin_after_read)(uint32_t pid);

#endif
