/*
 * test_lock_scan_hostile.c - which lock tables thothd reads
 * (kernel/thothd/locks_scan.c: LockReports, the dashboard, thothctl's
 * direct read).  Any process of the user can put a file into the runtime
 * dir's locks/: a FIFO, a link or a directory under a marker's name is
 * refused by its kind and never blocks the scan; garbage in a live
 * process's "thothlock:PID" memfd, a memfd whose size is not sealed, or
 * one not as large as its header says, is refused with its reason; a
 * marker whose process holds no table is skipped silently; names that are
 * not PID.table are ignored; refusals beyond what is kept are counted.
 * Through thothd's symbol cache (thothd_lock_scan_cached): the same
 * refusals, and a table naming more call sites than an entry may hold
 * answers is reported whole while the cache stays within its bounds, and
 * lets go of the process when it exits.  thothd_lock_prune removes the
 * markers of dead processes (a gone pid, a reused one), never a live one's
 * nor through a symlink.
 * Both builds: this code runs inside thothd.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "../common/held_child.h"
#include "locks.h"
#include "pidpin.h"
#include "lockprof_layout.h"
#include "scan_report.h"
#include "../common/tmpdir.h"

static char dir[256];

static void at(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static const thothd_lock_refusal_t *refusal_of(const thothd_lock_scan_t *s, const char *file)
{
	for (size_t i = 0; i < s->n_refused; i++)
		if (strcmp(s->refused[i].file, file) == 0)
			return &s->refused[i];
	return NULL;
}

static void assert_refused(const thothd_lock_scan_t *s, const char *file, const char *reason)
{
	const thothd_lock_refusal_t *r = refusal_of(s, file);
	if (!r) {
		fail_msg("%s was not refused", file);
		return;
	}
	if (!strstr(r->why, reason))
		fail_msg("%s refused as \"%s\", not \"%s\"", file, r->why, reason);
}

typedef struct {
	void *bytes;
	size_t len;
	bool stamp_pid;
	bool unsealed;
} mapping_t;

/* In the child: BYTES (with its own pid in the header when STAMP_PID) as
 * its table, the way the preload keeps one: in a memfd named
 * "thothlock:PID", sealed against shrinking and growing (unless UNSEALED),
 * held open, with the empty marker PID.table in the directory. */
static bool write_and_map(void *arg)
{
	mapping_t *m = arg;
	if (m->stamp_pid)
		((thothlock_header_t *)m->bytes)->pid = (int32_t)getpid();     /* the child's copy */
	char path[400], name[32];
	snprintf(name, sizeof name, "thothlock:%d", (int)getpid());
	int fd = memfd_create(name, MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, m->bytes, m->len) != (ssize_t)m->len ||
	    (!m->unsealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0))
		return false;
	snprintf(name, sizeof name, "%d.table", (int)getpid());
	at(path, sizeof path, name);
	int marker = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	return marker >= 0 && close(marker) == 0;
}

/* A child holding BYTES as its table until *CLOSE_FD is closed; its pid. */
static pid_t spawn_mapping(const void *bytes, size_t len, bool stamp_pid, int *close_fd)
{
	mapping_t m = { .bytes = (void *)bytes, .len = len, .stamp_pid = stamp_pid };
	return test_held_child(write_and_map, &m, close_fd);
}

static pid_t mapping_child(const void *bytes, size_t len, int *close_fd)
{
	return spawn_mapping(bytes, len, false, close_fd);
}

/* A child holding LEN bytes of FILL as its table (no header: bad
 * magic, or too short for one); with FIFO, a FIFO of that name beside it
 * first (an open would block: the scan must never open it). */
static pid_t junk_child(char fill, size_t len, const char *fifo, int *close_fd)
{
	static char junk[8192];
	assert_true(len <= sizeof junk);
	if (fifo) {
		char p[400];
		at(p, sizeof p, fifo);
		assert_int_equal(mkfifo(p, 0600), 0);
	}
	memset(junk, fill, len);
	return mapping_child(junk, len, close_fd);
}

static void end_child(pid_t pid, int close_fd)
{
	close(close_fd);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void clear_dir(void)
{
	char cmd[sizeof dir + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s/*", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_special_files_are_refused_by_kind_without_blocking(void **state)
{
	(void)state;
	char p[400], target[400];
	at(p, sizeof p, "999999901.table");
	assert_int_equal(mkfifo(p, 0600), 0);         /* an open would block: never opened */
	at(target, sizeof target, "elsewhere");
	assert_int_equal(mkdir(target, 0700), 0);
	at(p, sizeof p, "999999902.table");
	assert_int_equal(symlink(target, p), 0);
	at(p, sizeof p, "999999903.table");
	assert_int_equal(mkdir(p, 0700), 0);

	thothd_lock_scan_t s;
	assert_int_equal(thothd_lock_scan(dir, 0, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.refused_total, 3);
	assert_refused(&s, "999999901.table", "a FIFO");
	assert_refused(&s, "999999902.table", "a symbolic link");
	assert_refused(&s, "999999903.table", "a directory");
	assert_int_equal(refusal_of(&s, "999999901.table")->pid, 999999901);

	/* --pid: only that process's file is looked at. */
	assert_int_equal(thothd_lock_scan(dir, 999999902, &s), 0);
	assert_int_equal(s.refused_total, 1);
	assert_refused(&s, "999999902.table", "a symbolic link");
	clear_dir();
}

static unsigned char *ring_table(uint64_t waits, size_t *len);
static unsigned char *many_sites_table(size_t *len);

static void test_garbage_mapped_by_a_live_process_is_refused_by_the_reader(void **state)
{
	(void)state;
	int hold;
	pid_t pid = junk_child('x', 8192, NULL, &hold);
	char name[32];
	snprintf(name, sizeof name, "%d.table", (int)pid);

	thothd_lock_scan_t s;
	assert_int_equal(thothd_lock_scan(dir, 0, &s), 0);
	assert_int_equal(s.n, 0);
	assert_refused(&s, name, "bad magic");
	assert_int_equal(refusal_of(&s, name)->pid, pid);

	/* Too short for a header: refused too, not read past its end. */
	end_child(pid, hold);
	clear_dir();
	pid = junk_child('x', 100, NULL, &hold);
	snprintf(name, sizeof name, "%d.table", (int)pid);
	assert_int_equal(thothd_lock_scan(dir, (int)pid, &s), 0);
	assert_refused(&s, name, "size");
	end_child(pid, hold);
	clear_dir();

	/* A table in a memfd whose size anyone may change (its writer could
	 * be made to fault): refused by its kind before anything is read. */
	size_t len;
	unsigned char *table = ring_table(1, &len);
	mapping_t m = { .bytes = table, .len = len, .stamp_pid = true, .unsealed = true };
	pid = test_held_child(write_and_map, &m, &hold);
	snprintf(name, sizeof name, "%d.table", (int)pid);
	assert_int_equal(thothd_lock_scan(dir, (int)pid, &s), 0);
	assert_int_equal(s.n, 0);
	assert_refused(&s, name, "a memfd whose size is not sealed");
	end_child(pid, hold);
	clear_dir();

	free(table);

	/* Sealed, but not as large as its header says (a whole table, else
	 * it is refused for its regions first). */
	table = many_sites_table(&len);
	((thothlock_header_t *)table)->file_size = len + 4096;
	pid = spawn_mapping(table, len, true, &hold);
	snprintf(name, sizeof name, "%d.table", (int)pid);
	assert_int_equal(thothd_lock_scan(dir, (int)pid, &s), 0);
	assert_refused(&s, name, "its size is not the one its header says");
	end_child(pid, hold);
	free(table);
	clear_dir();
}

static void test_leftovers_and_foreign_names_are_skipped_silently(void **state)
{
	(void)state;
	/* A regular file under a table's name that no process maps: what a
	 * crash leaves.  Names that are not PID.table: not tables at all. */
	const char *names[] = { "999999904.table", "abc.table", "0.table", "12.tablex",
				"-5.table", "007.table", "99999999999999999999.table" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[400];
		at(p, sizeof p, names[i]);
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		fputs("not a table", f);
		fclose(f);
	}
	thothd_lock_scan_t s;
	assert_int_equal(thothd_lock_scan(dir, 0, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(s.refused_total, 0);
	clear_dir();

	/* No locks/ at all: nobody profiled yet, not an error. */
	char missing[400];
	at(missing, sizeof missing, "no-such-dir");
	assert_int_equal(thothd_lock_scan(missing, 0, &s), 0);
	assert_int_equal(s.n + s.refused_total, 0);
}

static bool nothing_to_prepare(void *arg)
{
	(void)arg;
	return true;
}

static void put_marker(const char *name, time_t mtime)
{
	char p[400];
	at(p, sizeof p, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	if (mtime) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
}

static bool there(const char *name)
{
	char p[400];
	struct stat st;
	at(p, sizeof p, name);
	return lstat(p, &st) == 0;
}

static void say_count(void *ctx, bool refused, const char *line)
{
	int *n = ctx;
	n[refused ? 1 : 0]++;
	assert_non_null(strstr(line, dir));
}

/* thothd_lock_prune (docs/LOCKS.md "Dead markers"): a gone pid's marker
 * and PID.table.new go; a live child's marker (made after it started)
 * stays; a marker an hour older than the process now under its pid (this
 * test, which holds no thothlock memfd: a reused pid) goes; a symlink
 * under a gone pid's marker name is named, and neither followed nor
 * removed; names that are not markers are left alone. */
static void test_dead_markers_are_pruned_live_ones_kept(void **state)
{
	(void)state;
	pid_t gone = fork();
	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, NULL, 0), gone);
	int release;
	pid_t live = test_held_child(nothing_to_prepare, NULL, &release);
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	nanosleep(&pause, NULL);
	char name[64], victim[400], link[400];
	snprintf(name, sizeof name, "%d.table", (int)gone);
	put_marker(name, 0);
	snprintf(name, sizeof name, "%d.table.new", (int)gone);
	put_marker(name, 0);
	snprintf(name, sizeof name, "%d.table", (int)live);
	put_marker(name, 0);
	snprintf(name, sizeof name, "%d.table", (int)getpid());
	put_marker(name, time(NULL) - 3600);
	put_marker("abc.table", 0);
	at(victim, sizeof victim, "victim");
	put_marker("victim", 0);
	snprintf(name, sizeof name, "%d.table", (int)gone + 1000000);     /* beyond any pid_max: gone */
	at(link, sizeof link, name);
	assert_int_equal(symlink(victim, link), 0);

	uint64_t before = thothd_lock_markers_pruned();
	int said[2] = { 0, 0 };
	assert_int_equal(thothd_lock_prune(dir, say_count, said), 3);
	assert_int_equal(thothd_lock_markers_pruned() - before, 3);
	assert_int_equal(said[0], 3);
	assert_int_equal(said[1], 1);
	snprintf(name, sizeof name, "%d.table", (int)gone);
	assert_false(there(name));
	snprintf(name, sizeof name, "%d.table.new", (int)gone);
	assert_false(there(name));
	snprintf(name, sizeof name, "%d.table", (int)getpid());
	assert_false(there(name));
	snprintf(name, sizeof name, "%d.table", (int)live);
	assert_true(there(name));
	assert_true(there("abc.table"));
	assert_true(there("victim"));
	struct stat st;
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	/* a second pass finds nothing more; the live one's process ended: it goes */
	assert_int_equal(thothd_lock_prune(dir, NULL, NULL), 0);
	close(release);
	assert_int_equal(waitpid(live, NULL, 0), live);
	assert_int_equal(thothd_lock_prune(dir, NULL, NULL), 1);
	snprintf(name, sizeof name, "%d.table", (int)live);
	assert_false(there(name));
	/* no locks/ at all: nothing to do, no error */
	char missing[400];
	at(missing, sizeof missing, "no-such-dir");
	assert_int_equal(thothd_lock_prune(missing, NULL, NULL), 0);
	clear_dir();
}

static void test_refusals_beyond_the_kept_ones_are_counted(void **state)
{
	(void)state;
	for (int i = 0; i < THOTHD_LOCKS_MAX_REFUSED + 5; i++) {
		char p[400], name[32];
		snprintf(name, sizeof name, "%d.table", 999999000 + i);
		at(p, sizeof p, name);
		assert_int_equal(mkfifo(p, 0600), 0);
	}
	thothd_lock_scan_t s;
	assert_int_equal(thothd_lock_scan(dir, 0, &s), 0);
	assert_int_equal(s.n_refused, THOTHD_LOCKS_MAX_REFUSED);
	assert_int_equal(s.refused_total, THOTHD_LOCKS_MAX_REFUSED + 5);
	clear_dir();
}

static void test_rings_of_hostile_files_give_no_events(void **state)
{
	(void)state;
	int hold;
	pid_t pid = junk_child('y', 8192, "999999905.table", &hold);
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	uint64_t lost = 0;
	int calls = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, NULL, &calls, &lost);   /* fn never called */
	assert_int_equal(lost, 0);
	assert_null(thothd_lock_rings_name(r, (uint32_t)pid));
	thothd_lock_rings_free(r);
	end_child(pid, hold);
	clear_dir();
}

/* More ring files than thothd follows (THOTHD_LOCKS_MAX_RINGS): anyone
 * can put them there.  The first followed keep their places; the rest are
 * counted as not followed, not taken in turns: a second poll hands out no
 * wait again (before, every poll re-read every ring from its start and
 * handed its waits out once more). */
static void count_wait(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	(void)ev;
	(void)process;
	(*(uint64_t *)ctx)++;
}

/* A well-formed ring table holding WAITS waits, all in the ring (its pid
 * set by the child that holds it); its length in *LEN. */
static unsigned char *ring_table(uint64_t waits, size_t *len)
{
	*len = THOTHLOCK_HEADER_SIZE + waits * sizeof(thothlock_event_t);
	unsigned char *b = calloc(1, *len);
	assert_non_null(b);
	thothlock_header_t h = { .magic = THOTHLOCK_MAGIC, .version = THOTHLOCK_VERSION,
				 .header_size = THOTHLOCK_HEADER_SIZE, .start_ns = 1,
				 .events_offset = THOTHLOCK_HEADER_SIZE, .event_capacity = waits,
				 .event_head = waits, .file_size = *len };
	memcpy(b, &h, sizeof h);
	thothlock_event_t *e = (thothlock_event_t *)(b + THOTHLOCK_HEADER_SIZE);
	for (uint64_t n = 0; n < waits; n++)
		e[n] = (thothlock_event_t){ .seq = n + 1, .start_ns = 100 + n, .wait_ns = 5, .lock = 0x10 };
	return b;
}

/* A child holding a ring table of WAITS waits until *HOLD is closed. */
static pid_t ring_child(uint64_t waits, int *hold)
{
	size_t len;
	unsigned char *b = ring_table(waits, &len);
	pid_t pid = spawn_mapping(b, len, true, hold);
	free(b);
	return pid;
}

static void test_rings_beyond_the_followed_ones_are_not_read_twice(void **state)
{
	(void)state;
	enum { FILES = THOTHD_LOCKS_MAX_RINGS + 6, WAITS = 8 };
	pid_t pids[FILES];
	int holds[FILES];
	for (int i = 0; i < FILES; i++)
		pids[i] = ring_child(WAITS, &holds[i]);
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	uint64_t waits = 0, lost = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, THOTHD_LOCKS_MAX_RINGS * WAITS);
	assert_int_equal(thothd_lock_rings_unfollowed(r), FILES - THOTHD_LOCKS_MAX_RINGS);
	waits = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 0);
	assert_int_equal(lost, 0);
	thothd_lock_rings_free(r);
	for (int i = FILES - 1; i >= 0; i--)     /* the later ones hold the earlier ones' pipes */
		end_child(pids[i], holds[i]);
	clear_dir();
}

/* This process's descriptors: how many are open, and the highest. */
static int open_fds(int *highest)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	*highest = -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		n++;
		if (fd > *highest)
			*highest = fd;
	}
	closedir(d);
	return n;
}

/* thothd sets descriptors aside for the rings' kept memfds and pidfds
 * (THOTHD_LOCKS_KEPT_FDS_MAX, or a quarter of what it has when fewer:
 * server.c) and hands the figure to thothd_lock_rings_fd_budget.  Under a
 * descriptor limit that leaves the rings their budget of 20 and a few for
 * a poll's own (the directory, a memfd and pidfd found afresh, /proc
 * files), 64 profiled processes are all followed at every poll, 20
 * descriptors kept and the other 54 rings counted as read afresh.  Before,
 * the poll kept two per process whatever was left: it ran into EMFILE
 * after a dozen and silently skipped the rest, at every poll. */
static void test_the_rings_keep_their_descriptor_budget_and_follow_every_process(void **state)
{
	(void)state;
	enum { FILES = THOTHD_LOCKS_MAX_RINGS, WAITS = 4, BUDGET = 20, SPARE = 8 };
	pid_t pids[FILES];
	int holds[FILES];
	for (int i = 0; i < FILES; i++)
		pids[i] = ring_child(WAITS, &holds[i]);
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	thothd_lock_rings_fd_budget(BUDGET);
	/* The gaps below the highest descriptor filled: exactly BUDGET +
	 * SPARE free under the limit. */
	int highest, fill[FILES * 4], n_fill = 0;
	(void)open_fds(&highest);
	for (int f; (f = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) {
		if (f > highest || n_fill == (int)(sizeof fill / sizeof fill[0])) {
			close(f);
			break;
		}
		fill[n_fill++] = f;
	}
	int n = open_fds(&highest);
	struct rlimit was, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
	low = was;
	low.rlim_cur = (rlim_t)(n + BUDGET + SPARE);
	assert_int_equal(highest + 1, n);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	uint64_t waits = 0, lost = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	uint64_t first = waits;
	uint32_t kept = thothd_lock_rings_kept_fds(r);
	waits = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
	fprintf(stderr, "# %llu of %d waits read, %u descriptors kept, %llu rings read afresh in two polls\n",
		(unsigned long long)first, FILES * WAITS, kept,
		(unsigned long long)thothd_lock_rings_unkept(r));
	assert_int_equal(first, FILES * WAITS);
	assert_int_equal(kept, BUDGET);
	assert_int_equal(thothd_lock_rings_unkept(r), 2 * (FILES - BUDGET / 2));
	assert_int_equal(waits, 0);                     /* nothing handed out twice */
	assert_int_equal(lost, 0);
	assert_int_equal(thothd_lock_rings_unfollowed(r), 0);
	assert_int_equal(open_fds(&highest), n + BUDGET);
	thothd_lock_rings_free(r);
	assert_int_equal(open_fds(&highest), n);
	thothd_lock_rings_fd_budget(THOTHD_LOCKS_KEPT_FDS_MAX);
	while (n_fill)
		close(fill[--n_fill]);
	for (int i = FILES - 1; i >= 0; i--)
		end_child(pids[i], holds[i]);
	clear_dir();
}

/* A ring's process is named by /proc/PID/comm, PID the table header's
 * word, read with PID pinned (pidpin.h).  Two live children's tables: the
 * one ended and reaped by the hook between its comm read and the pidfd
 * check (its number perhaps another program's by then) is not named; the
 * other is, by its own comm.  Before, comm was read unpinned: the ended
 * one was named too (and the hook never ran). */
typedef struct ring_names {
	uint32_t pid[2];
	char name[2][32];
	int waits[2];
} ring_names_t;

static void name_wait(const thoth_trace_event_t *ev, const char *process, void *ctx)
{
	ring_names_t *n = ctx;
	for (int i = 0; i < 2; i++)
		if (ev->pid == n->pid[i]) {
			snprintf(n->name[i], sizeof n->name[i], "%s", process);
			n->waits[i]++;
		}
}

static pid_t ring_ended = -1;
static int ring_release = -1;

static void end_ring_process(uint32_t pid)
{
	if ((pid_t)pid != ring_ended)
		return;
	close(ring_release);
	assert_int_equal(waitpid(ring_ended, NULL, 0), ring_ended);
	ring_ended = -1;
}

static void test_a_ring_process_that_exits_while_named_is_not_named(void **state)
{
	(void)state;
	/* The kept one first: the ended one, forked after, holds a copy of
	 * the kept one's release pipe, not the other way round. */
	int kept_release;
	pid_t kept = ring_child(1, &kept_release);
	pid_t ended = ring_child(1, &ring_release);
	ring_ended = ended;
	char comm[32] = "";
	FILE *cf = fopen("/proc/self/comm", "r");
	assert_non_null(cf);
	assert_non_null(fgets(comm, sizeof comm, cf));
	fclose(cf);
	comm[strcspn(comm, "\n")] = 0;
	ring_names_t n = { .pid = { (uint32_t)ended, (uint32_t)kept } };
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	uint64_t lost = 0;
	thoth__pidpin_after_read = end_ring_process;
	(void)thothd_lock_rings_poll(r, dir, 0, name_wait, &n, &lost);
	thoth__pidpin_after_read = NULL;
	bool hook_ran = ring_ended < 0;
	if (!hook_ran)
		end_ring_process((uint32_t)ring_ended);
	close(kept_release);
	assert_int_equal(waitpid(kept, NULL, 0), kept);
	thothd_lock_rings_free(r);
	clear_dir();
	assert_true(hook_ran);
	assert_int_equal(n.waits[0], 1);
	assert_int_equal(n.waits[1], 1);
	assert_string_equal(n.name[0], "");
	assert_string_equal(n.name[1], comm);
}

/* A header claiming a ring far larger than the preload writes (64 Ki
 * slots, all new): one poll reads its newest THOTHD_LOCKS_RING_READ_MAX
 * and counts the rest lost, so a ring stays one short step of a poll
 * (before, all 65,536 were read in one go). */
static void test_a_huge_ring_is_read_a_bounded_step_at_a_time(void **state)
{
	(void)state;
	enum { CAP = 1 << 16 };
	int hold;
	pid_t pid = ring_child(CAP, &hold);
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	uint64_t waits = 0, lost = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, THOTHD_LOCKS_RING_READ_MAX);
	assert_int_equal(lost, CAP - THOTHD_LOCKS_RING_READ_MAX);
	waits = lost = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 0);
	assert_int_equal(lost, 0);
	thothd_lock_rings_free(r);
	end_child(pid, hold);
	clear_dir();
}

/* The ring poll keeps each process's memfd from poll to poll (finding it
 * in /proc/PID/fd at every poll was ~75 % of its CPU): a kept descriptor
 * must never stand for another table.  A child holds a ring of 1 wait,
 * then (as an exec'd program, or a new process under the same pid,
 * would) a new table of 4 waits with a new marker, its first memfd
 * closed: the poll follows the new table (a reused descriptor read the
 * old one: 0 waits).  Then the child exits leaving its marker: the poll
 * lets go of its memfd (its pidfd says it ended). */
static int held_table(const unsigned char *bytes, size_t len, uint64_t start)
{
	unsigned char *b = malloc(len);
	if (!b)
		return -1;
	memcpy(b, bytes, len);
	((thothlock_header_t *)b)->pid = (int32_t)getpid();
	((thothlock_header_t *)b)->start_ns = start;
	char name[32], path[400], fresh[420];
	snprintf(name, sizeof name, "thothlock:%d", (int)getpid());
	int fd = memfd_create(name, MFD_ALLOW_SEALING);
	bool ok = fd >= 0 && write(fd, b, len) == (ssize_t)len &&
		  fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0;
	free(b);
	/* the marker made anew and renamed over the old one, as the preload does */
	snprintf(name, sizeof name, "%d.table", (int)getpid());
	at(path, sizeof path, name);
	snprintf(fresh, sizeof fresh, "%s.new", path);
	int m = open(fresh, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ok = ok && m >= 0 && close(m) == 0 && rename(fresh, path) == 0;
	return ok ? fd : -1;
}

/* How many descriptors of this process are PID's table memfd. */
static int memfds_of(pid_t pid)
{
	char want[64], link[128], p[64];
	int wl = snprintf(want, sizeof want, "/memfd:thothlock:%d (deleted)", (int)pid), n = 0;
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
		ssize_t l = readlink(p, link, sizeof link);
		n += l == wl && memcmp(link, want, (size_t)wl) == 0;
	}
	return n;
}

static void test_a_kept_ring_descriptor_never_stands_for_another_table(void **state)
{
	(void)state;
	size_t len1, len4;
	unsigned char *t1 = ring_table(1, &len1), *t4 = ring_table(4, &len4);
	int to_child[2], from_child[2];
	assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
	assert_int_equal(pipe2(from_child, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(to_child[1]);
		close(from_child[0]);
		char c = 'r';
		int fd = held_table(t1, len1, 1);
		if (fd < 0 || write(from_child[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(1);
		close(fd);
		if (held_table(t4, len4, 2) < 0 || write(from_child[1], &c, 1) != 1)
			_exit(1);
		while (read(to_child[0], &c, 1) > 0)
			;
		_exit(0);       /* the marker left behind, as after a crash */
	}
	close(to_child[0]);
	close(from_child[1]);
	char c;
	assert_int_equal(read(from_child[0], &c, 1), 1);
	thothd_lock_rings_t *r;
	assert_int_equal(thothd_lock_rings_new(&r), 0);
	uint64_t waits = 0, lost = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 1);
	assert_int_equal(memfds_of(pid), 1);            /* kept for the next poll */

	assert_int_equal(write(to_child[1], "n", 1), 1);        /* the new table */
	assert_int_equal(read(from_child[0], &c, 1), 1);
	waits = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 4);
	assert_int_equal(memfds_of(pid), 1);            /* the new one only */
	waits = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 0);                     /* nothing handed out twice */

	close(to_child[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(from_child[0]);
	waits = 0;
	(void)thothd_lock_rings_poll(r, dir, 0, count_wait, &waits, &lost);
	assert_int_equal(waits, 0);
	assert_int_equal(memfds_of(pid), 0);            /* let go: the process ended */
	thothd_lock_rings_free(r);
	free(t1);
	free(t4);
	clear_dir();
}

/* A well-formed table of process PID (set by the child) with one lock and
 * SITES call sites at distinct return addresses inside libc's code (the
 * child is a fork: the same addresses), each one contention: as many
 * addresses to symbolize as a hostile process may name. */
enum {
	MANY_SITES = 1024, FEW_LOCKS = 64,      /* multiples of 64: the tstats region's alignment */
	FEW_ENTRIES = 256,                      /* answers the cache may keep per process here */
};

static unsigned char *many_sites_table(size_t *len)
{
	size_t keys = THOTHLOCK_HEADER_SIZE, locks = keys + FEW_LOCKS * sizeof(thothlock_key_t);
	size_t sites = locks + FEW_LOCKS * sizeof(thothlock_lock_t);
	size_t caches = sites + MANY_SITES * sizeof(thothlock_site_t);
	size_t events = caches + sizeof(thothlock_cache_t);
	size_t tstats = events + 64 * sizeof(thothlock_event_t);
	size_t slots = tstats;
	*len = slots + 2 * MANY_SITES * sizeof(thothlock_site_slot_t);
	assert_int_equal(tstats % 64, 0);
	unsigned char *b = calloc(1, *len);
	assert_non_null(b);
	thothlock_header_t *h = (thothlock_header_t *)b;
	*h = (thothlock_header_t){
		.magic = THOTHLOCK_MAGIC, .version = THOTHLOCK_VERSION,
		.header_size = THOTHLOCK_HEADER_SIZE, .lock_capacity = FEW_LOCKS,
		.site_capacity = MANY_SITES, .thread_capacity = 1,
		.stack_depth = THOTHLOCK_STACK_DEPTH, .locks_offset = locks, .sites_offset = sites,
		.caches_offset = caches, .file_size = *len, .start_ns = 1, .keys_offset = keys,
		.events_offset = events, .event_capacity = 64, .tstats_offset = tstats,
		.tstat_capacity = 0, .site_slots_offset = slots, .sites_used = MANY_SITES,
	};
	thothlock_key_t *k = (thothlock_key_t *)(b + keys);
	k[0] = (thothlock_key_t){ .addr = 0x1000, .kind = THOTHLOCK_KIND_MUTEX, .acquisitions = 1 };
	thothlock_lock_t *l = (thothlock_lock_t *)(b + locks);
	l[0].contentions = MANY_SITES;
	thothlock_site_t *st = (thothlock_site_t *)(b + sites);
	uint64_t base = (uint64_t)(uintptr_t)&snprintf;
	for (uint32_t i = 0; i < MANY_SITES; i++)
		st[i] = (thothlock_site_t){ .key = THOTHLOCK_SITE_KEY(0, base + i + 1), .contentions = 1,
					    .wait_ns_total = 1000 + i, .wait_ns_max = 1000 + i };
	return b;
}

/* mapping_child, the table's pid set to the child's own. */
static pid_t table_child(unsigned char *bytes, size_t len, int *close_fd)
{
	return spawn_mapping(bytes, len, true, close_fd);
}

static void test_the_symbol_cache_refuses_alike_and_stays_bounded(void **state)
{
	(void)state;
	thothd_lock_symcache_t *c;
	thothd_lock_symcache_limits_t lim = { .processes = 1, .entries = FEW_ENTRIES };
	assert_int_equal(thothd_lock_symcache_new(&lim, NULL, NULL, NULL, &c), 0);

	/* The same refusals as without it, and nothing cached for them. */
	int hold;
	pid_t pid = junk_child('z', 8192, "999999906.table", &hold);
	char name[32];
	snprintf(name, sizeof name, "%d.table", (int)pid);
	thothd_lock_scan_t *s = malloc(sizeof *s);
	assert_non_null(s);
	assert_int_equal(thothd_lock_scan_cached(dir, 0, c, s), 0);
	assert_int_equal(s->n, 0);
	assert_refused(s, "999999906.table", "a FIFO");
	assert_refused(s, name, "bad magic");
	thothd_lock_symcache_stats_t st;
	thothd_lock_symcache_stats(c, &st);
	assert_int_equal(st.processes, 0);
	assert_int_equal(st.built, 0);
	end_child(pid, hold);
	clear_dir();

	/* More call sites than an entry keeps answers for: all reported, the
	 * entry at its bounds, twice (the second time through the reused copy). */
	size_t len;
	unsigned char *table = many_sites_table(&len);
	pid = table_child(table, len, &hold);
	for (int round = 0; round < 2; round++) {
		char *buf = scan_report_json(dir, (int)pid, c);
		size_t sites = 0;
		for (const char *q = buf; (q = strstr(q, "\"owner_sites\"")); q++)
			sites++;
		assert_int_equal(sites, MANY_SITES);
		free(buf);
		thothd_lock_symcache_stats(c, &st);
		assert_int_equal(st.processes, 1);
		assert_int_equal(st.built, 1);
		assert_true(st.misses >= (uint64_t)MANY_SITES * (round + 1));  /* evicted: again */
		/* The answers held: at most FEW_ENTRIES, so the bytes are the fixed
		 * arrays (~60 B per entry), their strings (< 600 B each) and the
		 * table's copy (its data: the file's length here). */
		assert_true(st.bytes <= FEW_ENTRIES * (64 + 600) + len + 4096 * 4);
	}

	/* One process at most here: another one's report pushes it out. */
	int hold2;
	pid_t pid2 = table_child(table, len, &hold2);
	assert_int_equal(thothd_lock_scan_cached(dir, (int)pid2, c, s), 0);
	assert_int_equal(s->n, 1);
	thothd_lock_scan_free(s);
	thothd_lock_symcache_stats(c, &st);
	assert_int_equal(st.processes, 1);
	assert_int_equal(st.built, 2);
	assert_int_equal(st.dropped, 1);
	end_child(pid2, hold2);
	free(table);

	/* The process exits: the next scan lets go of it. */
	end_child(pid, hold);
	assert_int_equal(thothd_lock_scan_cached(dir, 0, c, s), 0);
	thothd_lock_symcache_stats(c, &st);
	assert_int_equal(st.processes, 0);
	assert_int_equal(st.bytes, 0);
	thothd_lock_symcache_free(c);

	/* Over the byte bound in all: trimmed after the report. */
	lim = (thothd_lock_symcache_limits_t){ .total_bytes = 1 };
	assert_int_equal(thothd_lock_symcache_new(&lim, NULL, NULL, NULL, &c), 0);
	table = many_sites_table(&len);
	pid = table_child(table, len, &hold);
	assert_int_equal(thothd_lock_scan_cached(dir, (int)pid, c, s), 0);
	assert_int_equal(s->n, 1);
	thothd_lock_symcache_stats(c, &st);
	assert_int_equal(st.processes, 1);      /* lent to the table: kept until it is freed */
	thothd_lock_scan_free(s);
	thothd_lock_symcache_trim(c);
	thothd_lock_symcache_stats(c, &st);
	assert_int_equal(st.processes, 0);
	end_child(pid, hold);
	free(table);
	free(s);
	thothd_lock_symcache_free(c);
	clear_dir();
}

int main(void)
{
	test_tmp_template(dir, sizeof dir, "thoth-lockscan");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_special_files_are_refused_by_kind_without_blocking),
		cmocka_unit_test(test_garbage_mapped_by_a_live_process_is_refused_by_the_reader),
		cmocka_unit_test(test_leftovers_and_foreign_names_are_skipped_silently),
		cmocka_unit_test(test_dead_markers_are_pruned_live_ones_kept),
		cmocka_unit_test(test_a_ring_process_that_exits_while_named_is_not_named),
		cmocka_unit_test(test_refusals_beyond_the_kept_ones_are_counted),
		cmocka_unit_test(test_rings_of_hostile_files_give_no_events),
		cmocka_unit_test(test_rings_beyond_the_followed_ones_are_not_read_twice),
		cmocka_unit_test(test_the_rings_keep_their_descriptor_budget_and_follow_every_process),
		cmocka_unit_test(test_a_huge_ring_is_read_a_bounded_step_at_a_time),
		cmocka_unit_test(test_a_kept_ring_descriptor_never_stands_for_another_table),
		cmocka_unit_test(test_the_symbol_cache_refuses_alike_and_stays_bounded),
	};
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return failed;
}
