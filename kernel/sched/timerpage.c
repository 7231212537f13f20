/*
 * timerpage.c - the window page shared by every thoth process (timerpage.h
 * says what it promises; docs/SCHED.md has the rule and the figures).
 */
#define _GNU_SOURCE
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
		if ((int)i == self || !atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed))
			continue;
		uint64_t due = atomic_load_explicit(&pg->slot[i].due, memory_order_relaxed);
		uint64_t at = atomic_load_explicit(&pg->slot[i].at, memory_order_relaxed);
		if (due && due <= now && at > now + margin)
			fn((int)i, arg);
	}
}

static bool owner_alive(uint32_t owner)
{
	/* kill(tid, 0) finds any thread by id; EPERM means it exists (another
	 * uid wrote a slot: leave it).  A reused id keeps a slot busy, no more. */
	return owner <= 0x7fffffffu && (kill((pid_t)owner, 0) == 0 || errno != ESRCH);
}

int timerpage_claim(timerpage_t *pg, uint32_t owner, bool reclaim_dead)
{
	if (!owner)
		return -1;
	for (int pass = 0; pass < (reclaim_dead ? 2 : 1); pass++) {
		for (unsigned i = 0; i < THOTH_TIMERPAGE_SLOTS; i++) {
			uint32_t cur = atomic_load_explicit(&pg->slot[i].owner, memory_order_relaxed);
			if (cur && (pass == 0 || owner_alive(cur)))
				continue;
			if (!atomic_compare_exchange_strong(&pg->slot[i].owner, &cur, owner))
				continue;
			timerpage_post(pg, (int)i, 0, 0);
			uint32_t h = atomic_load_explicit(&pg->high, memory_order_relaxed);
			while (h < i + 1 && !atomic_compare_exchange_weak(&pg->high, &h, i + 1))
				;
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
 * Pages once mapped stay mapped: loops of other threads may be reading the
 * old one while a reconnect installs a new one, and they move over at their
 * next re-arm.  A new page appears only when a new thothd starts, so this
 * costs 4 KiB per thothd restart seen by the process.
 */
static _Atomic(timerpage_t *) current;
static _Atomic uint64_t current_dev, current_ino;

/* The directory of each page mapped (doorbell paths): written before the
 * page is published by the release store of `current`, never changed. */
#define MAX_MAPPED 32
static struct mapped {
	_Atomic(timerpage_t *) pg;
	char dir[96];
} mapped[MAX_MAPPED];
static _Atomic unsigned n_mapped;

int thoth__timerpage_bell_path(const timerpage_t *pg, int slot, char *out, size_t cap)
{
	unsigned n = atomic_load_explicit(&n_mapped, memory_order_acquire);
	for (unsigned i = 0; i < n && i < MAX_MAPPED; i++)
		if (atomic_load_explicit(&mapped[i].pg, memory_order_acquire) == pg) {
			int w = snprintf(out, cap, "%s/tk.%d", mapped[i].dir, slot);
			return w < 0 || (size_t)w >= cap ? THOTH_E_NO_SPACE : 0;
		}
	return THOTH_E_INVAL;
}

timerpage_t *thoth__timerpage_current(void)
{
	return atomic_load_explicit(&current, memory_order_acquire);
}

/* Remember PG's dir; false when the table is full or the dir too long
 * for a socket path (the page is then not used: no doorbells). */
static bool remember(timerpage_t *pg, const char *dir)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	if (strlen(dir) >= sizeof mapped[0].dir)
		return false;
	pthread_mutex_lock(&lock);
	unsigned n = atomic_load(&n_mapped);
	bool ok = n < MAX_MAPPED;
	if (ok) {
		strcpy(mapped[n].dir, dir);
		atomic_store_explicit(&mapped[n].pg, pg, memory_order_release);
		atomic_store_explicit(&n_mapped, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

static void install(timerpage_t *pg, const struct stat *st)
{
	atomic_store(&current_dev, (uint64_t)st->st_dev);
	atomic_store(&current_ino, (uint64_t)st->st_ino);
	atomic_store_explicit(&current, pg, memory_order_release);
}

int thoth__timerpage_create(const char *dir)
{
	char path[4200], tmp[4300];
	if (!dir || snprintf(path, sizeof path, "%s/%s", dir, THOTH_TIMERPAGE_NAME) >= (int)sizeof path)
		return THOTH_E_INVAL;
	snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
	unlink(tmp);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return thoth_error_io(errno, "create %s", tmp);
	int r = 0;
	struct stat st;
	void *m = MAP_FAILED;
	if (ftruncate(fd, THOTH_TIMERPAGE_SIZE) < 0 || fstat(fd, &st) < 0) {
		r = thoth_error_io(errno, "size %s", tmp);
		goto out;
	}
	m = mmap(NULL, THOTH_TIMERPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = thoth_error_io(errno, "map %s", tmp);
		goto out;
	}
	timerpage_init(m);
	if (!remember(m, dir)) {
		r = THOTH_E_NO_SPACE;
		munmap(m, THOTH_TIMERPAGE_SIZE);
		goto out;
	}
	/* Published by rename: a process never maps a half-written page. */
	if (rename(tmp, path) < 0) {
		r = thoth_error_io(errno, "rename %s", tmp);
		goto out;               /* stays mapped: remembered above */
	}
	install(m, &st);
out:
	if (r)
		unlink(tmp);
	close(fd);
	return r;
}

int thoth__timerpage_open(const char *dir)
{
	char path[4200];
	if (!dir || snprintf(path, sizeof path, "%s/%s", dir, THOTH_TIMERPAGE_NAME) >= (int)sizeof path)
		return THOTH_E_INVAL;
	int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return thoth_error_io(errno, "open %s", path);
	int r = 0;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = thoth_error_io(errno, "stat %s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_size != THOTH_TIMERPAGE_SIZE ||
	    (st.st_mode & 077)) {
		r = THOTH_E_PERM;      /* not the page thothd writes: the grid stays */
		goto out;
	}
	if (thoth__timerpage_current() && atomic_load(&current_dev) == (uint64_t)st.st_dev &&
	    atomic_load(&current_ino) == (uint64_t)st.st_ino)
		goto out;               /* already in use */
	timerpage_t *pg = mmap(NULL, THOTH_TIMERPAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pg == MAP_FAILED) {
		r = thoth_error_io(errno, "map %s", path);
		goto out;
	}
	if (pg->magic != THOTH_TIMERPAGE_MAGIC) {
		munmap(pg, THOTH_TIMERPAGE_SIZE);
		r = THOTH_E_BAD_MAGIC;
		goto out;
	}
	if (!remember(pg, dir)) {
		munmap(pg, THOTH_TIMERPAGE_SIZE);
		r = THOTH_E_LIMIT;
		goto out;
	}
	install(pg, &st);
out:
	close(fd);
	return r;
}
