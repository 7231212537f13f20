/*
 * client_proc.c - /proc readings for the client reliability tests.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_proc.h"

long client_proc_wakeups(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

int client_proc_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		/* A file under /proc is a read in progress (a channel server's
		 * placement window reads its thread's schedstat: open, read,
		 * close), not a descriptor the process keeps: counted, it made
		 * a baseline one too high and the test waited for it in vain. */
		char link[400], target[64];
		snprintf(link, sizeof link, "%s/%s", path, e->d_name);
		ssize_t len = readlink(link, target, sizeof target - 1);
		target[len > 0 ? len : 0] = 0;
		n += strncmp(target, "/proc/", 6) != 0;
	}
	closedir(d);
	return n;
}

void client_proc_fd_list(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	size_t used = 0;
	buf[0] = 0;
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) && used + 1 < len) {
		if (e->d_name[0] == '.')
			continue;
		char link[400], target[256];
		snprintf(link, sizeof link, "%s/%s", path, e->d_name);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n > 0 ? n : 0] = 0;
		int w = snprintf(buf + used, len - used, "%s->%s ", e->d_name, target);
		if (w < 0)
			break;
		used += (size_t)w < len - used ? (size_t)w : len - used - 1;
	}
	closedir(d);
}
