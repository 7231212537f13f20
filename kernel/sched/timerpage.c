/*
 * timerpage.c - the window page shared by every thoth process (timerpage.h
 * says what it promises; docs/SCHED.md has the rule and the figures).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thoth/error.h"
#include "procstat.h"
#include "timerpage.h"

void timerpage_init(timerpage_t *pg)
{
	memset(pg, 0, sizeof *pg);
	pg->magic = THOTH_TIMERPAGE_MAGIC;
	pg->size = THOTH_TIMERPAGE_SIZE;
	pg->nslots = THOTH_TIMERPAGE_SLOTS;
}

/* Slots to scan: the page's high-water mark, but never past our own count
 * (a hostile "high" costs a full scan, no more). */
static unsigned scan_limit(const timerpage_t *pg)
{
	uint32_t h = atomic_load_explicit(&pg->high, memory_order_relaxed);
	return h < THOTH_TIMERPAGE_SLOTS ? h : THOTH_TIMERPAGE_SLOTS;
}

uint64_t timerpage_pick(const timerpage_t *pg, int self, uint64_t lo, uint64_t hi, bool *joined)
{
	uint64_t best = 0;
	*joined = false;
	unsigned n = scan_limit(pg);
	for (unsigned i = 0; i < n; i++) {
		if ((int)i == self)
			continue;
		/* One load: the value checked is the value used. */
		uint64_t at = atomic_load_explicit(&pg->slot[i].at, memory_order_relaxed);
		if (at >= lo && at <= hi && at > best) {
			best = at;
			*joined = true;
		}
	}
	return *joined ? best : hi;
}

void timerpage_due_sleepers(const timerpage_t *pg, int self, uint64_t now, uint64_t margin,
			    void (*fn)(int slot, void *arg), void *arg)
{
	unsigned n = scan_limit(pg);
	for (unsigned i = 0; i < n; i++) {
		uint32_t owner = atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed);
		if ((int)i == self || !owner || owner == THOTH_TIMERPAGE_REAPING)
			continue;
		uint64_t due = atomic_load_explicit(&pg->slot[i].due, memory_order_relaxed);
		uint64_t at = atomic_load_explicit(&pg->slot[i].at, memory_order_relaxed);
		if (due && due <= now && at > now + margin)
			fn((int)i, arg);
	}
}

/* Where thread states are read (a test points it at a fake tree). */
static const char *proc_root = "/proc";

void thoth__timerpage_set_proc_root(const char *root)
{
	proc_root = root ? root : "/proc";
}

/* Thread TID's state letter from PROC/TID/stat ('R', 'S', 'Z', ...), or 0
 * when it cannot be read (no such thread, or it went between the open and
 * the read: a read then fails with ESRCH). */
static char thread_state(uint32_t tid)
{
	char p[160], buf[512];
	snprintf(p, sizeof p, "%s/%u/stat", proc_root, tid);
	const char *st = thoth__proc_stat_field(p, 3, buf, sizeof buf);
	return st ? st[0] : 0;
}

/*
 * Is thread TID gone for good: no such thread, or a zombie (its process
 * exited and waits for its parent; a zombie's id still answers kill).
 * Both are final, so the answer cannot be "alive" for a dead thread
 * whatever happens meanwhile: the parent may reap the zombie at any
 * moment (thothd's pidfd and the parent's wait wake together), and a
 * state read that fails because the thread went between our open and our
 * read is settled by asking again whether it exists.  A value above any
 * thread id (a scribbled page) is nobody's.  EPERM from kill: another
 * uid's thread exists.  One answer for claim (a loop taking a dead
 * thread's slot) and reap (thothd giving it back).
 */
static bool owner_gone(uint32_t tid)
{
	if (tid == 0)
		return false;
	if (tid > 0x7fffffffu)
		return true;
	if (kill((pid_t)tid, 0) < 0 && errno == ESRCH)
		return true;
	char st = thread_state(tid);
	if (st == 'Z' || st == 'X')
		return true;
	if (st)
		return false;           /* alive when read */
	return kill((pid_t)tid, 0) < 0 && errno == ESRCH;
}

/*
 * Raising `high` after a claim: at most TIMERPAGE_HIGH_TRIES exchanges.
 * Any process of the uid may rewrite the word between our load and our
 * exchange, as often as it likes; a claimer that retried until it won
 * would spin for as long as the scribbler does.  Giving up costs nothing
 * but the hint: readers clamp it to our own slot count (scan_limit) and a
 * low one only hides slots from pick and due_sleepers until a later claim
 * raises it.  TIMERPAGE_HIGH_CAS is the seam through which
 * tests/sched/test_timerpage_claim.c (which includes this file) fails
 * every exchange and counts the tries; the library expands it to the
 * very call written here, so its object code is unchanged.
 */
#define TIMERPAGE_HIGH_TRIES 8
#ifndef TIMERPAGE_HIGH_CAS
#define TIMERPAGE_HIGH_CAS(obj, expected, desired) atomic_compare_exchange_weak(obj, expected, desired)
#endif

int timerpage_claim(timerpage_t *pg, uint32_t owner, bool reclaim_dead)
{
	if (!owner)
		return -1;
	for (int pass = 0; pass < (reclaim_dead ? 2 : 1); pass++) {
		for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
			uint32_t cur = atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed);
			if (cur == THOTH_TIMERPAGE_REAPING || (cur && (pass == 0 || !owner_gone(cur))))
				continue;       /* thothd is unlinking its doorbell: not yet */
			if (!atomic_compare_exchange_strong(&pg->slot[i].owner, &cur, owner))
				continue;
			timerpage_post(pg, (int)i, 0, 0);
			/* Raise the hint; a few tries at most (above). */
			uint32_t h = atomic_load_explicit(&pg->high, memory_order_relaxed);
			for (int t = 0; t < TIMERPAGE_HIGH_TRIES && h < i + 1; t++)
				if (TIMERPAGE_HIGH_CAS(&pg->high, &h, i + 1))
					break;
			return (int)i;
		}
	}
	return -1;
}

void timerpage_release(timerpage_t *pg, int slot, uint32_t owner)
{
	if (slot < 0 || (unsigned)slot >= THOTH_TIMERPAGE_SLOTS)
		return;
	timerpage_post(pg, slot, 0, 0);
	uint32_t cur = owner;
	atomic_compare_exchange_strong(&pg->slot[slot].owner, &cur, 0);
}

/* ---- the process's page --------------------------------------------------------- */

/*
 * A page is unmapped only once no loop can be reading it: loops of other
 * threads may still be reading the old one while a reconnect installs a
 * new one, and they move over at their next re-arm.  Each loop holds the
 * page it reads (thoth__timerpage_hold, a count beside the page's entry
 * below), from the re-arm that takes it to the one that leaves it or the
 * loop's end.  A new page appears only when a new thothd starts; past
 * MAX_MAPPED pages (4 KiB each) the oldest that no loop holds, and that is
 * neither the page in use nor the one this process created, is unmapped
 * and its entry reused.  When every one is held (a loop that has not
 * re-armed since each of 32 restarts), the new page is not used: the
 * process drops to the per-boot grid, says so once on stderr, and its
 * loops let go of the old pages at their next re-arm, so the next page
 * handed over finds room.  The mapping is of a memfd sealed against
 * shrinking: no other process can make it fault.
 */
/* thoth__timerpage_cur (timerpage.h: read inline by rearm) is defined
 * beside the trace switch, kernel/observability/buffer.c, for its page. */
static _Atomic uint64_t current_dev, current_ino;
static int created_fd = -1;             /* thothd: the memfd it hands out */
static timerpage_t *created;            /* thothd: its page (reap) */

/* The directory and generation of each page mapped (doorbell paths):
 * written before the page is published by the release store of `pg`,
 * changed only when the entry is reused for another page, which no loop
 * holds.  GEN is the memfd's inode number (what fstat says, never what the
 * page says): two pages never share doorbell names. */
#define MAX_MAPPED 32
static struct mapped {
	_Atomic(timerpage_t *) pg;      /* NULL: being reused */
	_Atomic unsigned users;         /* loops holding it */
	uint32_t gen;
	char dir[96];
} mapped[MAX_MAPPED];
static _Atomic unsigned n_mapped;
static pthread_mutex_t mapped_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned unmapped_total;
static atomic_flag told_full = ATOMIC_FLAG_INIT;

int thoth__timerpage_bell_path(const timerpage_t *pg, int slot, char *out, size_t cap)
{
	unsigned n = atomic_load_explicit(&n_mapped, memory_order_acquire);
	for (unsigned i = 0; i < n && i < MAX_MAPPED; i++)
		if (atomic_load_explicit(&mapped[i].pg, memory_order_acquire) == pg) {
			int w = snprintf(out, cap, "%s/tk.%x.%d", mapped[i].dir, mapped[i].gen, slot);
			return w < 0 || (size_t)w >= cap ? THOTH_E_NO_SPACE : 0;
		}
	return THOTH_E_INVAL;
}

/*
 * The entry's count is raised before the page is checked to still be the
 * entry's, and a reuse clears the entry's page before it reads the count
 * (both sequentially consistent): either the reuse sees the loop's hold
 * and keeps the page, or the loop sees the page gone and reads none of it.
 */
int thoth__timerpage_hold(const timerpage_t *pg)
{
	unsigned n = atomic_load_explicit(&n_mapped, memory_order_acquire);
	for (unsigned i = 0; pg && i < n && i < MAX_MAPPED; i++) {
		if (atomic_load_explicit(&mapped[i].pg, memory_order_acquire) != pg)
			continue;
		atomic_fetch_add(&mapped[i].users, 1);
		if (atomic_load(&mapped[i].pg) == pg)
			return (int)i;
		atomic_fetch_sub(&mapped[i].users, 1);
		return -1;
	}
	return -1;
}

void thoth__timerpage_unhold(int held)
{
	if (held >= 0 && held < MAX_MAPPED)
		atomic_fetch_sub(&mapped[held].users, 1);
}

unsigned thoth__timerpage_unmapped(void)
{
	return atomic_load(&unmapped_total);
}

timerpage_t *thoth__timerpage_current(void)
{
	return timerpage_current_inline();
}

int thoth__timerpage_fd(void)
{
	return created_fd;
}

static void install(timerpage_t *pg, const struct stat *st);

/* An entry for a new page, mapped_lock held: a free one, else the oldest
 * page no loop holds, unmapped (never the page in use or the one created
 * here).  -1: every page is held. */
static int entry_for_new(void)
{
	unsigned n = atomic_load(&n_mapped);
	if (n < MAX_MAPPED)
		return (int)n;
	timerpage_t *cur = atomic_load(&thoth__timerpage_cur);
	/* Oldest first: entries are reused in turn from where the last one was. */
	static unsigned next;
	for (unsigned k = 0; k < MAX_MAPPED; k++) {
		unsigned i = (next + k) % MAX_MAPPED;
		timerpage_t *old = atomic_load(&mapped[i].pg);
		if (!old || old == cur || old == created || atomic_load(&mapped[i].users))
			continue;
		atomic_store(&mapped[i].pg, NULL);
		if (atomic_load(&mapped[i].users)) {
			atomic_store(&mapped[i].pg, old);       /* a loop took it meanwhile */
			continue;
		}
		munmap(old, THOTH_TIMERPAGE_SIZE);
		atomic_fetch_add(&unmapped_total, 1);
		next = (i + 1) % MAX_MAPPED;
		return (int)i;
	}
	return -1;
}

/* Remember PG's dir and generation and make it the page in use; false when
 * the dir is too long for a doorbell path, or every entry is held (then no
 * page is in use: the grid). */
static bool publish(timerpage_t *pg, const char *dir, const struct stat *st)
{
	if (strlen(dir) >= sizeof mapped[0].dir)
		return false;
	pthread_mutex_lock(&mapped_lock);
	int i = entry_for_new();
	if (i >= 0) {
		strcpy(mapped[i].dir, dir);
		mapped[i].gen = (uint32_t)st->st_ino;
		atomic_store_explicit(&mapped[i].pg, pg, memory_order_release);
		if ((unsigned)i == atomic_load(&n_mapped))
			atomic_store_explicit(&n_mapped, (unsigned)i + 1, memory_order_release);
		install(pg, st);
	} else {
		/* Off the dead thothd's page: its loops let go of it at their
		 * next re-arm, and the next page handed over finds room. */
		struct stat none = { 0 };
		install(NULL, &none);
	}
	pthread_mutex_unlock(&mapped_lock);
	if (i < 0 && !atomic_flag_test_and_set(&told_full))
		fprintf(stderr, "thoth: thothd's new timer page not used: this process's loops still "
			"hold the %d pages it mapped (a loop that has not re-armed since each "
			"restart); timers keep to the per-boot grid until the next page\n",
			MAX_MAPPED);
	return i >= 0;
}

static void install(timerpage_t *pg, const struct stat *st)
{
	atomic_store(&current_dev, (uint64_t)st->st_dev);
	atomic_store(&current_ino, (uint64_t)st->st_ino);
	atomic_store_explicit(&thoth__timerpage_cur, pg, memory_order_release);
}

enum { SEALS_NEEDED = F_SEAL_SHRINK | F_SEAL_GROW };

int thoth__timerpage_create(const char *dir)
{
	if (!dir || !*dir)
		return THOTH_E_INVAL;
	/* publish() would refuse it below, and say nothing: name the path and
	 * the limit (it was a bare THOTH_E_NO_SPACE, "no space"). */
	if (strlen(dir) >= sizeof mapped[0].dir)
		return thoth_error_io(ENAMETOOLONG, "window page doorbells: a dir of %zu bytes (at most %zu): %s",
				      strlen(dir), sizeof mapped[0].dir - 1, dir);
	int fd = memfd_create("thoth-timer-page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return thoth_error_io(errno, "memfd_create (window page)");
	int r = 0;
	struct stat st;
	void *m = MAP_FAILED;
	if (ftruncate(fd, THOTH_TIMERPAGE_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, SEALS_NEEDED | F_SEAL_SEAL) < 0 || fstat(fd, &st) < 0) {
		r = thoth_error_io(errno, "size and seal the window page");
		goto fail;
	}
	m = mmap(NULL, THOTH_TIMERPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = thoth_error_io(errno, "map the window page");
		goto fail;
	}
	timerpage_init(m);
	if (!publish(m, dir, &st)) {
		r = THOTH_E_NO_SPACE;
		munmap(m, THOTH_TIMERPAGE_SIZE);
		goto fail;
	}
	if (created_fd >= 0)
		close(created_fd);      /* an earlier page stays mapped (remembered) */
	created_fd = fd;
	created = m;
	return 0;
fail:
	close(fd);
	return r;
}

int thoth__timerpage_adopt(int fd, const char *dir)
{
	if (fd < 0)
		return THOTH_E_INVAL;
	int r = 0;
	struct stat st;
	if (!dir || !*dir) {
		r = THOTH_E_INVAL;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = thoth_error_io(errno, "fstat the window page");
		goto out;
	}
	/* Every descriptor a peer hands us is hostile: only a memfd (seals are
	 * refused on anything else) that can neither shrink nor grow, of
	 * exactly one page, is mapped; a truncatable file could SIGBUS us. */
	int seals = fcntl(fd, F_GET_SEALS);
	if (!S_ISREG(st.st_mode) || st.st_size != THOTH_TIMERPAGE_SIZE || seals < 0 ||
	    (seals & SEALS_NEEDED) != SEALS_NEEDED) {
		r = THOTH_E_PERM;      /* not the page thothd makes: the grid stays */
		goto out;
	}
	if (thoth__timerpage_current() && atomic_load(&current_dev) == (uint64_t)st.st_dev &&
	    atomic_load(&current_ino) == (uint64_t)st.st_ino)
		goto out;               /* already in use */
	timerpage_t *pg = mmap(NULL, THOTH_TIMERPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pg == MAP_FAILED) {
		r = thoth_error_io(errno, "map the window page");   /* e.g. sealed against writing */
		goto out;
	}
	if (pg->magic != THOTH_TIMERPAGE_MAGIC) {
		munmap(pg, THOTH_TIMERPAGE_SIZE);
		r = THOTH_E_BAD_MAGIC;
		goto out;
	}
	if (!publish(pg, dir, &st)) {
		munmap(pg, THOTH_TIMERPAGE_SIZE);
		r = THOTH_E_LIMIT;      /* said once on stderr; the grid meanwhile */
		goto out;
	}
out:
	close(fd);
	return r;
}

unsigned thoth__timerpage_reap(void)
{
	timerpage_t *pg = created;
	if (!pg)
		return 0;
	unsigned reaped = 0;
	for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
		uint32_t cur = atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed);
		if (cur == THOTH_TIMERPAGE_REAPING || !owner_gone(cur))
			continue;
		/* Take the slot first, so no loop claims it (and binds the same
		 * doorbell name) while we unlink; then free it. */
		if (!atomic_compare_exchange_strong(&pg->slot[i].owner, &cur, THOTH_TIMERPAGE_REAPING))
			continue;
		timerpage_post(pg, (int)i, 0, 0);
		char path[128];
		if (thoth__timerpage_bell_path(pg, (int)i, path, sizeof path) == 0)
			unlink(path);
		atomic_store_explicit(&pg->slot[i].owner, 0, memory_order_release);
		reaped++;
	}
	return reaped;
}

unsigned thoth__timerpage_sweep(const char *dir)
{
	DIR *d = dir ? opendir(dir) : NULL;
	if (!d)
		return 0;
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		bool bell = strncmp(e->d_name, "tk.", 3) == 0;
		if (!bell && strcmp(e->d_name, THOTH_TIMERPAGE_NAME) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (bell ? !S_ISSOCK(st.st_mode) : !S_ISREG(st.st_mode)) || st.st_uid != geteuid())
			continue;
		n += unlinkat(dirfd(d), e->d_name, 0) == 0;
	}
	closedir(d);
	return n;
}
