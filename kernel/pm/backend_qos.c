/*
 * backend_qos.c - PM QoS through /dev/cpu_dma_latency (backend.h).
 *
 * The kernel keeps a CPU latency request for as long as the file stays open
 * and drops it on close, so "held open while a latency-critical lease
 * exists" is the whole protocol: open and write the bound when the first
 * bounded lease appears, rewrite it when the tightest bound changes, close
 * when the last one goes.  The value is a binary s32 in µs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "thoth/error.h"

struct thoth_pm_qos {
	int fd;
	uint32_t us;
	char error[640];
};

const char *thoth_pm_root(void)
{
	const char *r = getenv("THOTH_SYSFS_ROOT");
	return r ? r : "";
}

int thoth_pm_path(char *out, size_t cap, const char *path)
{
	int n = snprintf(out, cap, "%s%s", thoth_pm_root(), path);
	return n < 0 || (size_t)n >= cap ? THOTH_E_INVAL : 0;
}

int thoth_pm_qos_open(thoth_pm_qos_t **out)
{
	thoth_pm_qos_t *q = calloc(1, sizeof *q);
	if (!q)
		return THOTH_E_NOMEM;
	q->fd = -1;
	*out = q;
	return 0;
}

int thoth_pm_qos_set(thoth_pm_qos_t *q, uint32_t us)
{
	if (us == q->us)
		return 0;
	if (!us) {
		close(q->fd);
		q->fd = -1;
		q->us = 0;
		return 0;
	}
	char path[512];
	if (q->fd < 0) {
		if (thoth_pm_path(path, sizeof path, "/dev/cpu_dma_latency"))
			return THOTH_E_INVAL;
		q->fd = open(path, O_RDWR | O_CLOEXEC);
		if (q->fd < 0) {
			snprintf(q->error, sizeof q->error, "open %s: %s", path, strerror(errno));
			return THOTH_E_IO;
		}
	}
	int32_t v = us > INT32_MAX ? INT32_MAX : (int32_t)us;
	struct stat st;
	ssize_t w;
	/* A fixture is a regular file: rewrite it in place.  The device ignores
	 * the offset and takes each write as the new value. */
	if (!fstat(q->fd, &st) && S_ISREG(st.st_mode))
		w = pwrite(q->fd, &v, sizeof v, 0);
	else
		w = write(q->fd, &v, sizeof v);
	if (w != (ssize_t)sizeof v) {
		snprintf(q->error, sizeof q->error, "write cpu_dma_latency: %s",
			 w < 0 ? strerror(errno) : "short write");
		return THOTH_E_IO;
	}
	q->us = us;
	return 0;
}

int thoth_pm_qos_read(thoth_pm_qos_t *q, int32_t *out)
{
	if (q->fd < 0)
		return THOTH_E_NOT_FOUND;
	/* The device answers every read with the current system-wide value
	 * (the tightest request of all holders), whatever the offset; a
	 * fixture file holds what was written at offset 0. */
	int32_t v;
	ssize_t n = pread(q->fd, &v, sizeof v, 0);
	if (n < 0 && errno == ESPIPE)
		n = read(q->fd, &v, sizeof v);
	if (n != (ssize_t)sizeof v) {
		snprintf(q->error, sizeof q->error, "read cpu_dma_latency: %s",
			 n < 0 ? strerror(errno) : "short read");
		return THOTH_E_IO;
	}
	*out = v;
	return 0;
}

const char *thoth_pm_qos_error(const thoth_pm_qos_t *q)
{
	return q->error;
}

void thoth_pm_qos_close(thoth_pm_qos_t *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}
