/*
 * blockdev.h - real block devices for the tests and benches that watch
 * block I/O (tests/pm/test_nvme_moderation.c, bench/moderation/
 * bench_nvme_wake.c), which had each written the first of these:
 *
 *   blk_disk_of     the whole disk holding a directory, as the kernel's
 *                   tracepoints encode its dev_t;
 *   blk_loop_new    a loop device of one's own over an unlinked file, so
 *                   its idle is really idle;
 *   blk_slow_*      a loop device whose writes can be held in flight for
 *                   as long as the caller likes: its backing file lives on
 *                   an ext4 of its own (on a second loop device), and
 *                   freezing that ext4 (FIFREEZE) blocks the loop
 *                   driver's write to the file after the request was
 *                   issued (block_rq_issue fired, in_flight 1) until it is
 *                   thawed.  No device here is slow on demand (no NVMe,
 *                   no null_blk or scsi_debug in this kernel).
 *
 * All need root; blk_slow_open also mkfs.ext4 (e2fsprogs).  Every failure
 * says why in WHY, so a caller can skip with the reason.  Header-only:
 * the users are single test and bench programs.
 */
#ifndef THOTH_TESTS_COMMON_BLOCKDEV_H
#define THOTH_TESTS_COMMON_BLOCKDEV_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

/* The whole disk (a partition is reported as its disk) holding DIR, as the
 * kernel encodes a dev_t (major << 20 | minor), and "MAJ:MIN" in NAME
 * (may be NULL). */
static inline bool blk_disk_of(const char *dir, uint32_t *kdev, char *name, size_t name_len)
{
	struct stat st;
	if (stat(dir, &st))
		return false;
	char p[160], b[64];
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/partition", major(st.st_dev), minor(st.st_dev));
	bool part = access(p, F_OK) == 0;
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/%sdev", major(st.st_dev), minor(st.st_dev), part ? "../" : "");
	FILE *f = fopen(p, "re");
	if (!f)
		return false;
	unsigned ma = 0, mi = 0;
	bool ok = fgets(b, sizeof b, f) && sscanf(b, "%u:%u", &ma, &mi) == 2;
	fclose(f);
	if (ok) {
		*kdev = ma << 20 | mi;
		if (name)
			snprintf(name, name_len, "%u:%u", ma, mi);
	}
	return ok;
}

typedef struct blk_loop {
	int fd;                    /* /dev/loopN, O_RDWR | O_DIRECT (-1: none) */
	unsigned major, minor;
	uint32_t kdev;             /* major << 20 | minor */
	char path[64];             /* /dev/loopN */
	char name[32];             /* loopN, as under /sys/block */
} blk_loop_t;

/* Attach BACKING (a descriptor, kept by the device) to a free loop device
 * with autoclear: the device goes away when its last opener closes it.
 * LD->fd is the device, opened O_DIRECT so each write is one request. */
static inline int blk_loop_attach(int backing, blk_loop_t *ld, char *why, size_t why_len)
{
	ld->fd = -1;
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		snprintf(why, why_len, "/dev/loop-control: %.100s", strerror(errno));
		return -1;
	}
	int n = ioctl(ctl, LOOP_CTL_GET_FREE);
	int e = errno;
	close(ctl);
	if (n < 0) {
		snprintf(why, why_len, "LOOP_CTL_GET_FREE: %.100s", strerror(e));
		return -1;
	}
	snprintf(ld->path, sizeof ld->path, "/dev/loop%d", n);
	snprintf(ld->name, sizeof ld->name, "loop%d", n);
	int lfd = open(ld->path, O_RDWR | O_CLOEXEC);
	if (lfd < 0) {
		snprintf(why, why_len, "%.100s: %.100s", ld->path, strerror(errno));
		return -1;
	}
	struct loop_config lc = { .fd = (unsigned)backing, .block_size = 4096 };
	lc.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	if (ioctl(lfd, LOOP_CONFIGURE, &lc)) {
		snprintf(why, why_len, "LOOP_CONFIGURE %.100s: %.100s", ld->path, strerror(errno));
		close(lfd);
		return -1;
	}
	ld->fd = open(ld->path, O_RDWR | O_DIRECT | O_CLOEXEC);
	close(lfd);
	struct stat st;
	if (ld->fd < 0 || fstat(ld->fd, &st)) {
		snprintf(why, why_len, "%.100s with O_DIRECT: %.100s", ld->path, strerror(errno));
		if (ld->fd >= 0)
			close(ld->fd);
		ld->fd = -1;
		return -1;
	}
	ld->major = major(st.st_rdev);
	ld->minor = minor(st.st_rdev);
	ld->kdev = ld->major << 20 | ld->minor;
	return 0;
}

/* A loop device over an unlinked file of BYTES under DIR. */
static inline int blk_loop_new(const char *dir, off_t bytes, blk_loop_t *ld, char *why, size_t why_len)
{
	char back[PATH_MAX];
	snprintf(back, sizeof back, "%s/thoth-blk-XXXXXX", dir);
	int bfd = mkstemp(back);
	if (bfd < 0 || ftruncate(bfd, bytes)) {
		snprintf(why, why_len, "backing file under %.100s: %.100s", dir, strerror(errno));
		if (bfd >= 0) {
			close(bfd);
			unlink(back);
		}
		return -1;
	}
	unlink(back);
	int r = blk_loop_attach(bfd, ld, why, why_len);
	close(bfd);
	return r;
}

/* ---- a loop device whose writes can be held in flight ------------------------- */

typedef struct blk_slow {
	blk_loop_t dev;            /* the device to write to */
	char mnt[PATH_MAX];        /* the ext4 holding its backing file */
	int mnt_fd;                /* ... for FIFREEZE / FITHAW */
	bool mounted, held;
} blk_slow_t;

static inline int blk__run_mkfs(const char *image, char *why, size_t why_len)
{
	static const char *const tools[] = { "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "mkfs.ext4" };
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, why_len, "fork: %.100s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 1);
		dup2(null, 2);
		for (size_t i = 0; i < sizeof tools / sizeof *tools; i++)
			execlp(tools[i], "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", image, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, why_len, "mkfs.ext4 %.100s failed (exit %d%.100s)", image, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			 WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": not installed (e2fsprogs)" : "");
		return -1;
	}
	return 0;
}

static inline void blk_slow_close(blk_slow_t *s)
{
	if (s->held)
		ioctl(s->mnt_fd, FITHAW, 0);
	s->held = false;
	if (s->dev.fd >= 0)
		close(s->dev.fd);      /* autoclear: the device lets go of its backing file */
	s->dev.fd = -1;
	if (s->mnt_fd >= 0)
		close(s->mnt_fd);
	s->mnt_fd = -1;
	if (s->mounted) {
		/* Lazily: the loop device may still be letting go of the file;
		 * the ext4 (and its own loop device, autoclear) follow when it has. */
		umount2(s->mnt, MNT_DETACH);
		rmdir(s->mnt);
	}
	s->mounted = false;
}

/* A 16 MiB ext4 image under TMP on a loop device, mounted on a directory
 * under TMP, with an 8 MiB file on it behind S->dev.  Nothing is left
 * behind by blk_slow_close: the image is unlinked once attached. */
static inline int blk_slow_open(const char *tmp, blk_slow_t *s, char *why, size_t why_len)
{
	memset(s, 0, sizeof *s);
	s->dev.fd = s->mnt_fd = -1;
	if (why_len)
		why[0] = 0;
	if (geteuid() != 0) {
		snprintf(why, why_len, "loop devices and mounts need root");
		return -1;
	}
	char image[PATH_MAX];
	snprintf(image, sizeof image, "%s/thoth-slow-img-XXXXXX", tmp);
	int ifd = mkstemp(image);
	if (ifd < 0) {
		snprintf(why, why_len, "image under %.100s: %.100s", tmp, strerror(errno));
		return -1;
	}
	if (ftruncate(ifd, 16 << 20) || blk__run_mkfs(image, why, why_len)) {
		if (!*why)
			snprintf(why, why_len, "image under %.100s: %.100s", tmp, strerror(errno));
		close(ifd);
		unlink(image);
		return -1;
	}
	unlink(image);
	blk_loop_t base;
	int r = blk_loop_attach(ifd, &base, why, why_len);
	close(ifd);
	if (r)
		return -1;
	snprintf(s->mnt, sizeof s->mnt, "%s/thoth-slow-mnt-XXXXXX", tmp);
	if (!mkdtemp(s->mnt)) {
		snprintf(why, why_len, "mkdtemp under %.100s: %.100s", tmp, strerror(errno));
		close(base.fd);
		return -1;
	}
	r = mount(base.path, s->mnt, "ext4", 0, NULL);
	int e = errno;
	close(base.fd);            /* the mount holds it now (autoclear at umount) */
	if (r) {
		snprintf(why, why_len, "mount %.100s (ext4) on %.100s: %.100s", base.path, s->mnt, strerror(e));
		rmdir(s->mnt);
		return -1;
	}
	s->mounted = true;
	char back[PATH_MAX + 16];
	snprintf(back, sizeof back, "%s/back", s->mnt);
	int bfd = open(back, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (bfd < 0 || ftruncate(bfd, 8 << 20) || fsync(bfd)) {
		snprintf(why, why_len, "%.100s: %.100s", back, strerror(errno));
		if (bfd >= 0)
			close(bfd);
		blk_slow_close(s);
		return -1;
	}
	r = blk_loop_attach(bfd, &s->dev, why, why_len);
	close(bfd);
	s->mnt_fd = open(s->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r || s->mnt_fd < 0) {
		if (!r)
			snprintf(why, why_len, "%.100s: %.100s", s->mnt, strerror(errno));
		blk_slow_close(s);
		return -1;
	}
	return 0;
}

/* Hold (freeze the ext4 under S->dev: a write issued to S->dev from now
 * on stays in flight) or let go (thaw: the held writes complete). */
static inline int blk_slow_hold(blk_slow_t *s, bool on)
{
	if (on == s->held)
		return 0;
	if (ioctl(s->mnt_fd, on ? FIFREEZE : FITHAW, 0))
		return -1;
	s->held = on;
	return 0;
}

#endif
