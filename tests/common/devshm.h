/*
 * devshm.h - does a process of this test use /dev/shm?  (header only)
 *
 * Channels and trace buffers live in memfds, never in /dev/shm.  Counting
 * /dev/shm's entries before and after a test cannot show that on a shared
 * machine: other programs (and other tests run beside this one by ctest
 * -j) create and remove entries there at any time.  So the tests look at
 * their own processes instead: no mapping and no open descriptor of a
 * process they started (or of themselves) names a file under /dev/shm.
 * A shm_open'ed object is visible there for as long as it is in use,
 * also after it was unlinked ("/dev/shm/x (deleted)").
 */
#ifndef THOTH_TEST_DEVSHM_H
#define THOTH_TEST_DEVSHM_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Mappings and descriptors of PID (0: this process) under /dev/shm, or -1
 * when PID's /proc entries cannot be read (it is gone: a caller checks
 * processes it knows to be alive). */
static inline int devshm_uses(pid_t pid)
{
	char path[64], line[4096];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/maps");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = 0;
	while (fgets(line, sizeof line, f))
		if (strstr(line, " /dev/shm/"))
			n++;
	fclose(f);
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/fd");
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		char link[400], target[400];
		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "%s/%s", path, e->d_name);
		ssize_t len = readlink(link, target, sizeof target - 1);
		if (len > 0) {
			target[len] = 0;
			if (strncmp(target, "/dev/shm/", 9) == 0)
				n++;
		}
	}
	closedir(d);
	return n;
}

#endif
