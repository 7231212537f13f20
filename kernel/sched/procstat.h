/*
 * procstat.h - one reader of /proc/PID/stat (and /proc/PID/task/TID/stat)
 * for the three places that need one field of it: a thread's state (the
 * timer page's reap), a process's start time (thothd's lock-table scan) and
 * the CPU it last ran on (thoth_serve_per_cpu's routing).  Private; header
 * only, so each library keeps its own copy and none links another for it.
 *
 * The file is read with one read(2) (the kernel builds it whole per read),
 * and fields are counted from the LAST ')' because the command name in
 * field 2 may hold spaces and parentheses.  A read that fails (the process
 * went between our open and our read: ESRCH) is "unknown", like a missing
 * file.
 */
#ifndef THOTH_PROCSTAT_H
#define THOTH_PROCSTAT_H

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Read PATH into BUF (CAP bytes) and return field N (1-based as in proc(5);
 * N >= 3) as a pointer into BUF, NUL-terminated at its end; NULL when the
 * file cannot be read or has fewer fields. */
static inline const char *thoth__proc_stat_field(const char *path, int n, char *buf, size_t cap)
{
	if (n < 3 || cap < 2)
		return NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	ssize_t got = read(fd, buf, cap - 1);
	close(fd);
	if (got <= 0)
		return NULL;
	buf[got] = 0;
	char *t = strrchr(buf, ')');
	if (!t || t[1] != ' ')
		return NULL;
	t += 2;                                 /* field 3 */
	for (int field = 3; field < n; field++) {
		t = strchr(t, ' ');
		if (!t)
			return NULL;
		t++;
	}
	if (!*t || *t == ' ' || *t == '\n')
		return NULL;
	char *end = t + strcspn(t, " \n");
	*end = 0;
	return t;
}

#endif
