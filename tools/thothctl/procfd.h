/*
 * procfd.h - another process's descriptor, read through /proc/PID/fd/N
 * with the process pinned (thothctl probe maps).
 *
 * A pid is only a number: between thothd naming it and the last read of
 * /proc/PID, the process can exit and the number go to another one, whose
 * descriptor N would be read as the first one's.  A pidfd taken before
 * the reads names the process, not the number: it is readable (POLLIN)
 * once that process has exited, so a check after the reads tells whether
 * /proc/PID still meant it all along.
 */
#ifndef THOTHCTL_PROCFD_H
#define THOTHCTL_PROCFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A pidfd of PID (close it), or -1 with WHY said ("process PID has
 * exited", or why the kernel refused one) and errno kept (ESRCH: gone). */
int thothctl_pid_pin(uint32_t pid, char *why, size_t why_len);

/* Whether the process of PIDFD has exited (it may then be a zombie, or its
 * number another process's).  Never blocks. */
bool thothctl_pid_exited(int pidfd);

/* Descriptor FDNUM of process PID opened read-write into *OUT, only when it
 * is a regular file on shmem (a memfd): whatever it names there (a FIFO, a
 * device, a socket, a file on disk) is looked at through an O_PATH
 * descriptor, which opens nothing.  PATH (PATH_CAP bytes) gets
 * "/proc/PID/fd/FDNUM" for the caller's messages.  0, or 1 with WHY said. */
int thothctl_open_peer_memfd(uint32_t pid, int fdnum, int *out, char *path, size_t path_cap, char *why,
			     size_t why_len);

#endif
