/*
 * eio_fdatasync.c - an LD_PRELOAD shim for test_codex_fsync_eio.sh: a
 * failing disk's fdatasync, for a real codex, with nothing compiled into
 * codex.
 *
 * Once the file named by $THOTH_TEST_EIO_FDATASYNC exists, the next
 * fdatasync of a journal segment (a descriptor whose path has "/seg-" and
 * ends ".log") fails with EIO without syncing, as a disk's write error
 * reports it; that one only: every later fdatasync is the real one and
 * succeeds, so a journal that retried after the failure would then get a
 * success and could acknowledge (the "fsyncgate" mistake the test looks
 * for).  The shim says on stderr which file it failed.
 *
 * The same for the directory's fsync (after a segment is created: the
 * new name made durable), selected by $THOTH_TEST_EIO_DIRFSYNC instead:
 * once the file it names exists, the next fsync(2) of a directory fails
 * with EIO, that one only; every later fsync of a directory is the real
 * one, and the shim says so on stderr ("... again after its failure"), so
 * a test counts a journal's retries.
 *
 * Retention's catalog commit (docs/CODEX.md "Retention and compaction"),
 * selected by $THOTH_TEST_EIO_CATALOG: once the file it names exists, the
 * first rename(2) to a name ending "/catalog" arms the shim and the next
 * fsync(2) of a directory (the commit's) fails with EIO, that one only;
 * every later fsync of a directory is the real one, said on stderr as
 * above, and so is every unlink(2) of a segment file (seg-*.log or .idx)
 * after the failure ("eio_fdatasync: unlink of PATH after the failed
 * directory fsync"), so a test counts the segments removed after it.
 *
 * Retention's removal of dropped segments (the directory fsync after the
 * unlinks), selected by $THOTH_TEST_EIO_UNLINKDIR: once the file it names
 * exists, the first unlink(2) of a segment file (seg-*.log) arms the shim
 * and the next fsync(2) of a directory fails with EIO, that one only;
 * every later one is the real one, said on stderr as above, and so is
 * every unlink of a segment file after the failure.
 *
 * codex's fdatasyncs go through io_uring where it can have it, which no
 * preload can see: io_uring_queue_init_params (liburing's) answers
 * -ENOSYS here, as in a sandbox without io_uring, and codex runs its loop
 * on epoll, calling fdatasync(2) through libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct io_uring;
struct io_uring_params;
int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p);

int io_uring_queue_init_params(unsigned entries, struct io_uring *ring, struct io_uring_params *p)
{
	(void)entries;
	(void)ring;
	(void)p;
	return -ENOSYS;
}

static atomic_bool failed_one;

static int is_segment(int fd, char *path, size_t cap)
{
	char link[64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, cap - 1);
	if (n <= 0)
		return 0;
	path[n] = 0;
	return strstr(path, "/seg-") && n > 4 && !strcmp(path + n - 4, ".log");
}

int fdatasync(int fd)
{
	const char *flag = getenv("THOTH_TEST_EIO_FDATASYNC");
	char path[4200];
	/* A slow disk: while FLAG.hang exists every fdatasync waits */
	if (flag && snprintf(path, sizeof path, "%s.hang", flag) < (int)sizeof path)
		while (access(path, F_OK) == 0)
			usleep(10000);
	if (flag && !atomic_load(&failed_one) && access(flag, F_OK) == 0 && is_segment(fd, path, sizeof path) &&
	    !atomic_exchange(&failed_one, true)) {
		fprintf(stderr, "eio_fdatasync: fdatasync of %s fails with EIO (once)\n", path);
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static atomic_bool failed_dir;
static atomic_bool cat_armed;

int rename(const char *from, const char *to)
{
	const char *flag = getenv("THOTH_TEST_EIO_CATALOG");
	size_t n = strlen(to);
	int r = renameat(AT_FDCWD, from, AT_FDCWD, to);  /* libc's, not the one preloaded here */
	if (!r && flag && n >= 8 && !strcmp(to + n - 8, "/catalog") && access(flag, F_OK) == 0 &&
	    !atomic_exchange(&cat_armed, true))
		fprintf(stderr, "eio_fdatasync: renamed %s to %s: the next directory fsync fails\n", from, to);
	return r;
}

static atomic_bool unlink_armed;

int unlink(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	const char *uflag = getenv("THOTH_TEST_EIO_UNLINKDIR");
	bool seg = !strncmp(base, "seg-", 4) && n > 4 && (!strcmp(base + n - 4, ".log") || !strcmp(base + n - 4, ".idx"));
	if ((getenv("THOTH_TEST_EIO_CATALOG") || uflag) && atomic_load(&failed_dir) && seg)
		fprintf(stderr, "eio_fdatasync: unlink of %s after the failed directory fsync\n", path);
	int r = unlinkat(AT_FDCWD, path, 0);
	if (!r && uflag && seg && !strcmp(base + n - 4, ".log") && access(uflag, F_OK) == 0 &&
	    !atomic_exchange(&unlink_armed, true))
		fprintf(stderr, "eio_fdatasync: unlinked %s: the next directory fsync fails\n", path);
	return r;
}

int fsync(int fd)
{
	const char *flag = getenv("THOTH_TEST_EIO_DIRFSYNC");
	if (!flag && getenv("THOTH_TEST_EIO_CATALOG"))
		flag = atomic_load(&cat_armed) ? "/" : NULL;     /* "/" exists: the armed one fails */
	if (!flag && getenv("THOTH_TEST_EIO_UNLINKDIR"))
		flag = atomic_load(&unlink_armed) ? "/" : NULL;
	struct stat st;
	if (!flag || fstat(fd, &st) || !S_ISDIR(st.st_mode))
		return (int)syscall(SYS_fsync, fd);
	char link[64], path[4200];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	path[n > 0 ? n : 0] = 0;
	if (atomic_load(&failed_dir)) {
		fprintf(stderr, "eio_fdatasync: fsync of the directory %s again after its failure\n", path);
	} else if (access(flag, F_OK) == 0 && !atomic_exchange(&failed_dir, true)) {
		fprintf(stderr, "eio_fdatasync: fsync of the directory %s fails with EIO (once)\n", path);
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}
