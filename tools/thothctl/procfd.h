/*
 * procfd.h - another process's descriptor, read through /proc/PID/fd/N
 * with the process pinned (thothctl probe maps), and the pin every
 * thothctl reader of /proc/PID takes (kernel/ipc/pidpin.h underneath).
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

#include <stddef.h>
#include <stdint.h>

/* PID pinned: *PIDFD its pidfd (close it when >= 0).  0, or 1 with WHY
 * said ("process PID has exited", "no such pid", or why the kernel
 * refused) and errno kept (ESRCH: gone).  A kernel without pidfds
 * (ENOSYS, or a seccomp filter) is 0 with *PIDFD -1: read unpinned, with a
 * one-line warning on stderr, once per run (pidpin.h). */
int thothctl_pid_pin(uint32_t pid, int *pidfd, char *why, size_t why_len);
/* The state letter of a /proc/PID/stat line STAT ('T' stopped, 'R'
 * running, ...; 0 when it does not parse), and, where COMM is not NULL,
 * its command name in COMM (COMM_CAP bytes; "" when it does not parse).
 * "PID (COMM) STATE ...": the name may hold spaces and parentheses, so
 * the last ')' ends it. */
char thothctl_stat_state(const char *stat, char *comm, size_t comm_cap);

/* What thothctl_peer_memfd_read hands the descriptor to: 0, or non-zero
 * with WHY said.  It must not keep FD (closed after). */
typedef int (*thothctl_peer_read_fn)(int fd, void *ctx, char *why, size_t why_len);

/* Descriptor FDNUM of process PID (a memfd only: thothctl_open_peer_memfd)
 * handed to READ, with PID pinned from before the open until READ has
 * returned.  PATH (PATH_CAP bytes) gets "/proc/PID/fd/FDNUM".  0: what
 * READ took was PID's; 1: WHY said (gone before, not a memfd, READ's
 * refusal); 2: PID exited meanwhile (WHY says so): what READ took may be
 * another process's, and must be dropped. */
int thothctl_peer_memfd_read(uint32_t pid, int fdnum, thothctl_peer_read_fn read, void *ctx, char *path,
			     size_t path_cap, char *why, size_t why_len);

/* Descriptor FDNUM of process PID opened read-write into *OUT, only when it
 * is a regular file on shmem (a memfd): whatever it names there (a FIFO, a
 * device, a socket, a file on disk) is looked at through an O_PATH
 * descriptor, which opens nothing.  PATH (PATH_CAP bytes) gets
 * "/proc/PID/fd/FDNUM" for the caller's messages.  0, or 1 with WHY said. */
int thothctl_open_peer_memfd(uint32_t pid, int fdnum, int *out, char *path, size_t path_cap, char *why,
			     size_t why_len);

#endif
