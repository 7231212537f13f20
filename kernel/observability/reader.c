/*
 * reader.c - draining a trace buffer from another process without stopping
 * its writers.  Everything in the mapping is untrusted: geometry is checked
 * once at open against the mapping's real size, and every record is checked
 * (commit word, seqlock re-read, ids, flags) before it is delivered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "serve_slots.h"
#include "trace_clock.h"
#include "trace_layout.h"
#include "../ipc/why.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL     /* Linux 6.9: a pidfd for one thread */
#endif

/* The reader's private view of one ring. */
typedef struct reader_ring {
	bool known;              /* owner fields copied (ring was claimed) */
	bool torn_counted;
	bool readopt;            /* its pid's adopted slot was evicted: re-derive it once */
	uint64_t pos;            /* next seq to read */
	uint32_t pid, tid;
	char thread_name[16];
} reader_ring_t;

struct thoth_trace_reader {
	uint8_t *base;
	size_t size;
	bool image;              /* private copy: no live writers */
	uint32_t ring_count, ring_records, full_policy, clock_kind;
	uint64_t anchor_ticks, anchor_ns;
	uint32_t pid;
	uint32_t peer_pid;       /* thoth__trace_reader_set_peer: 0, every pid probed */
	int peer_pidfd;          /* that very process (-1: none, no child adopted) */
	/* thoth__trace_reader_add_peer's, in this private memory (never in the
	 * shared mapping: the traced process would write its own verdicts):
	 * pid 0 = free.  Each holds a pidfd of the process verified, so its
	 * exit is known without trusting its pid number (reused after it). */
	struct reader_peer {
		uint32_t pid;
		int pidfd;
		bool closed;     /* remove_peer: freed once reap_peers finds it safe */
		bool adopted;    /* never connected (adopt_child_peer): re-derivable */
	} peers[THOTH__TRACE_READER_PEERS];
	uint32_t n_closed;       /* peers closed, not yet freed: a poll tries them */
	uint32_t n_adopted;      /* at most THOTH__TRACE_READER_ADOPTED */
	/* The last BUSY head's writer thread found alive: its pidfd (Linux
	 * 6.9's PIDFD_THREAD), so the next poll meeting it asks with one
	 * poll(2), not 4 calls.  One a reader: a writer can make every ring's
	 * head BUSY, and thothd maps 1,024 buffers. */
	uint32_t watch_ring;
	int watch_fd;            /* -1: none */
	char process_name[32];
	uint32_t names_known;
	char names[THOTH_TRACE_MAX_NAMES][THOTH_TRACE_NAME_MAX + 1];
	reader_ring_t *rings;
	thoth_trace_stats_t stats;
	thoth__trace_lost_fn lost_fn;   /* told each run of lost records (may be NULL) */
	void *lost_ctx;
};

/* Every pidfd the readers of this process hold, against one budget
 * (thoth__trace_reader_pidfd_budget): thothd maps up to 1,024 buffers, and
 * each reader could hold 17, far past the descriptors it keeps beside its
 * clients'.  Over budget a reader holds none: a stuck writer is asked
 * about by tgkill and /proc, an added or adopted peer is refused (its
 * rings never torn, as before peers). */
static uint32_t pidfd_budget = UINT32_MAX;
static uint32_t pidfds_held;

void thoth__trace_reader_pidfd_budget(uint32_t n)
{
	__atomic_store_n(&pidfd_budget, n, __ATOMIC_RELAXED);
}

uint32_t thoth__trace_reader_pidfds_held(void)
{
	return __atomic_load_n(&pidfds_held, __ATOMIC_RELAXED);
}

/* FD (a pidfd) kept against the budget; false: over it, FD closed. */
static bool pidfd_keep(int fd)
{
	if (fd < 0)
		return false;
	uint32_t n = __atomic_load_n(&pidfds_held, __ATOMIC_RELAXED);
	do {
		if (n >= __atomic_load_n(&pidfd_budget, __ATOMIC_RELAXED)) {
			close(fd);
			return false;
		}
	} while (!__atomic_compare_exchange_n(&pidfds_held, &n, n + 1, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

static void pidfd_release(int fd)
{
	if (fd < 0)
		return;
	close(fd);
	__atomic_fetch_sub(&pidfds_held, 1, __ATOMIC_RELAXED);
}

/* Names from shared memory end up in JSON and file names: ASCII only. */
static void make_printable(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}

static thoth_trace_control_t *control(const thoth_trace_reader_t *r)
{
	return (thoth_trace_control_t *)r->base;
}

/* Copy the fixed geometry out of the control page; reject what the mapping
 * cannot hold.  After this, ring/record addressing stays inside the map. */
static int check_control(thoth_trace_reader_t *r, char *why, size_t why_len)
{
	if (r->size < THOTH_TRACE_RINGS_OFFSET)
		return thoth__why_err(why, why_len, THOTH_E_TRUNCATED,
			       "%zu bytes: shorter than a trace buffer's control page and name table (%u)",
			       r->size, (unsigned)THOTH_TRACE_RINGS_OFFSET);
	const thoth_trace_control_t *c = control(r);
	/* Every word read once: the writer may change them as we look. */
	uint32_t magic = c->magic, version = c->version, record_size = c->record_size;
	if (magic != THOTH_TRACE_MAGIC)
		return thoth__why_err(why, why_len, THOTH_E_BAD_MAGIC,
			       "magic 0x%08x is not a trace buffer's (0x%08x)", magic,
			       THOTH_TRACE_MAGIC);
	if (version != THOTH_TRACE_VERSION || record_size != THOTH_TRACE_RECORD_SIZE)
		return thoth__why_err(why, why_len, THOTH_E_BAD_VERSION,
			       "layout version %u with %u-byte records (this reader: version %u, %u bytes)",
			       version, record_size, THOTH_TRACE_VERSION, THOTH_TRACE_RECORD_SIZE);
	uint32_t rc = c->ring_count, rr = c->ring_records;
	uint32_t full_policy = c->full_policy, clock_kind = c->clock_kind;
	if (rc > THOTH_TRACE_MAX_RINGS || rr < 8 || rr > THOTH_TRACE_MAX_RECORDS ||
	    (rr & (rr - 1)) != 0)
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT,
			       "%u rings of %u records: at most %u rings of a power of two from 8 to %u",
			       rc, rr, THOTH_TRACE_MAX_RINGS, THOTH_TRACE_MAX_RECORDS);
	if ((full_policy != THOTH_TRACE_OVERWRITE_OLDEST && full_policy != THOTH_TRACE_DROP_NEWEST) ||
	    (clock_kind != THOTH_TRACE_CLOCK_MONOTONIC && clock_kind != THOTH_TRACE_CLOCK_TSC))
		return thoth__why_err(why, why_len, THOTH_E_CORRUPT,
			       "full policy %u or clock kind %u unknown", full_policy, clock_kind);
	if (thoth_trace_buffer_size(rc, rr) > r->size)
		return thoth__why_err(why, why_len, THOTH_E_BAD_LENGTH,
			       "%u rings of %u records need %zu bytes; the buffer has %zu", rc, rr,
			       thoth_trace_buffer_size(rc, rr), r->size);
	r->ring_count = rc;
	r->ring_records = rr;
	r->full_policy = full_policy;
	r->clock_kind = clock_kind;
	r->anchor_ticks = c->clock_anchor_ticks;
	r->anchor_ns = c->clock_anchor_ns;
	r->pid = c->pid;
	memcpy(r->process_name, c->process_name, sizeof r->process_name);
	r->process_name[sizeof r->process_name - 1] = '\0';
	make_printable(r->process_name);
	r->rings = calloc(rc ? rc : 1, sizeof *r->rings);
	return r->rings ? 0 : thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
}

static void reader_init_fds(thoth_trace_reader_t *r)
{
	r->watch_fd = -1;
	r->peer_pidfd = -1;
	for (uint32_t i = 0; i < THOTH__TRACE_READER_PEERS; i++)
		r->peers[i].pidfd = -1;
}

const char *thoth__trace_fd_kind(unsigned mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO: return "a pipe or FIFO";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFDIR: return "a directory";
	case S_IFLNK: return "a symbolic link";
	default: return "not a regular file";
	}
}

int thoth__trace_reader_open_why(int fd, thoth_trace_reader_t **out, char *why, size_t why_len)
{
	if (why && why_len)
		why[0] = '\0';
	if (fd < 0 || !out)
		return thoth__why_err(why, why_len, THOTH_E_INVAL, "no descriptor");
	*out = NULL;
	/* The descriptor is the peer's: only a memfd on shmem sealed against
	 * shrinking is mapped.  Any other (a pipe, a socket, a file on disk,
	 * /dev/zero, an unsealed memfd) could block us, be shrunk under our
	 * mapping (every later read a SIGBUS) or is not a buffer at all. */
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		return thoth__why_err(why, why_len, thoth_error_io(e, "fstat a trace buffer"),
			       "cannot fstat the descriptor: %s", strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return thoth__why_err(why, why_len, THOTH_E_PERM, "%s, not a memfd", thoth__trace_fd_kind(st.st_mode));
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return thoth__why_err(why, why_len, THOTH_E_PERM,
			       "a regular file that takes no seals (a file on disk or tmpfs, not a memfd): "
			       "it could be truncated under the mapping");
	if (!(seals & F_SEAL_SHRINK))
		return thoth__why_err(why, why_len, THOTH_E_PERM,
			       "not sealed against shrinking (a memfd without F_SEAL_SHRINK, or a tmpfs file): "
			       "it could be truncated under the mapping");
	/* A hugetlbfs memfd takes seals too, but a hole punched in it faults
	 * in a fresh huge page, a SIGBUS when the pool has none. */
	struct statfs sfs;
	if (fstatfs(fd, &sfs) != 0 || sfs.f_type != TMPFS_MAGIC)
		return thoth__why_err(why, why_len, THOTH_E_PERM,
			       "a sealed memfd that is not on shmem (hugetlbfs?): "
			       "reading a punched hole could fault");
	if ((uint64_t)st.st_size < THOTH_TRACE_RINGS_OFFSET)
		return thoth__why_err(why, why_len, THOTH_E_TRUNCATED,
			       "%lld bytes: shorter than a trace buffer's control page and name table (%u)",
			       (long long)st.st_size, (unsigned)THOTH_TRACE_RINGS_OFFSET);
	/* As the writer sizes its largest: rings, then the serve slots. */
	size_t most = thoth_trace_memfd_size(THOTH_TRACE_MAX_RINGS, THOTH_TRACE_MAX_RECORDS,
					     THOTH_TRACE_SERVE_MAX_SLOTS);
	if ((uint64_t)st.st_size > most)
		return thoth__why_err(why, why_len, THOTH_E_BAD_LENGTH,
			       "%lld bytes: larger than any trace buffer (%zu)", (long long)st.st_size, most);
	thoth_trace_reader_t *r = calloc(1, sizeof *r);
	if (!r)
		return thoth__why_err(why, why_len, THOTH_E_NOMEM, "out of memory");
	r->size = (size_t)st.st_size;
	reader_init_fds(r);
	int err;
	r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->base == MAP_FAILED) {
		int e = errno;
		err = thoth__why_err(why, why_len, thoth_error_io(e, "map a trace buffer"),
			      "cannot map it read-write: %s%s", strerror(e),
			      e == EPERM || e == EACCES
			              ? " (sealed against writing, or opened read-only)" : "");
		goto err_free;
	}
	err = check_control(r, why, why_len);
	if (err)
		goto err_unmap;
	*out = r;
	return 0;

err_unmap:
	munmap(r->base, r->size);
err_free:
	free(r);
	return err;
}

int thoth_trace_reader_open(int fd, thoth_trace_reader_t **out)
{
	return thoth__trace_reader_open_why(fd, out, NULL, 0);
}

int thoth_trace_reader_open_image(const void *bytes, size_t len, thoth_trace_reader_t **out)
{
	if (!bytes || !out)
		return THOTH_E_INVAL;
	thoth_trace_reader_t *r = calloc(1, sizeof *r);
	if (!r)
		return THOTH_E_NOMEM;
	r->image = true;
	r->size = len;
	reader_init_fds(r);
	r->base = malloc(len ? len : 1);
	int err = THOTH_E_NOMEM;
	if (!r->base)
		goto err_free;
	memcpy(r->base, bytes, len);
	err = check_control(r, NULL, 0);
	if (err)
		goto err_free_base;
	*out = r;
	return 0;

err_free_base:
	free(r->base);
err_free:
	free(r);
	return err;
}

void thoth_trace_reader_close(thoth_trace_reader_t *r)
{
	if (!r)
		return;
	if (r->image)
		free(r->base);
	else
		munmap(r->base, r->size);
	pidfd_release(r->watch_fd);
	pidfd_release(r->peer_pidfd);
	for (uint32_t i = 0; i < THOTH__TRACE_READER_PEERS; i++)
		pidfd_release(r->peers[i].pidfd);
	free(r->rings);
	free(r);
}

static bool name_chars_valid(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);
	if (n == 0 || n == cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

/* Copy newly published names; an invalid entry reads as "invalid_name". */
static void refresh_names(thoth_trace_reader_t *r)
{
	uint32_t n = __atomic_load_n(&control(r)->names_count, __ATOMIC_ACQUIRE);
	if (n > THOTH_TRACE_MAX_NAMES - 1)
		n = THOTH_TRACE_MAX_NAMES - 1;
	const thoth_trace_name_t *table =
	        (const thoth_trace_name_t *)(r->base + THOTH_TRACE_NAMES_OFFSET);
	for (uint32_t i = r->names_known; i < n; i++) {
		char tmp[THOTH_TRACE_NAME_MAX + 1];
		memcpy(tmp, table[i].name, sizeof tmp);
		if (name_chars_valid(tmp, sizeof tmp))
			memcpy(r->names[i + 1], tmp, sizeof tmp);
		else
			strcpy(r->names[i + 1], "invalid_name");
	}
	if (n > r->names_known)
		r->names_known = n;
}

/* PID/TID's thread a zombie (state Z or X) or gone: crashed but not yet
 * reaped, tgkill(2) still finds it.  Bounded read; the comm the writer
 * chose may hold ") Z", so the state is after the last ')' (the fields
 * after it are numbers, and a comm of 15 bytes ends well inside BUF). */
static bool thread_is_zombie(uint32_t pid, uint32_t tid)
{
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/%u/task/%u/stat", pid, tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)     /* /proc missing or hidden: gone only if tgkill says so */
		return syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) != 0 && errno == ESRCH;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* PIDFD's process (or thread, PIDFD_THREAD) has exited: a zombie or
 * reaped.  One poll(2), no /proc: exact whatever its number became since. */
static bool pidfd_exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP));
}

static struct reader_peer *added_peer(thoth_trace_reader_t *r, uint32_t pid)
{
	for (uint32_t i = 0; i < THOTH__TRACE_READER_PEERS; i++)
		if (r->peers[i].pid == pid)
			return &r->peers[i];
	return NULL;
}

static void watch_drop(thoth_trace_reader_t *r)
{
	pidfd_release(r->watch_fd);
	r->watch_fd = -1;
}

/* Thread TID of process PID (a verified one) gone or a zombie.  The ring
 * watched last asks its cached thread pidfd: one poll(2).  Another opens
 * one (PIDFD_THREAD), checks that it is PID's thread (tgkill after the
 * open: a tid of another process reads as gone, as tgkill alone said),
 * and keeps it while the thread lives.  Without PIDFD_THREAD (a kernel
 * before 6.9) or a free fd: tgkill, then /proc (thread_is_zombie). */
static bool thread_is_gone(thoth_trace_reader_t *r, uint32_t index, uint32_t pid, uint32_t tid)
{
	if (r->watch_fd >= 0 && r->watch_ring == index) {
		if (!pidfd_exited(r->watch_fd))
			return false;
		watch_drop(r);
		return true;
	}
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)tid, PIDFD_THREAD);
	if (fd < 0) {
		if (errno == ESRCH)
			return true;
		if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) != 0)
			return errno == ESRCH;
		return thread_is_zombie(pid, tid);
	}
	if (syscall(SYS_tgkill, (pid_t)pid, (pid_t)tid, 0) != 0) {
		bool gone = errno == ESRCH;
		close(fd);
		return gone;
	}
	if (pidfd_exited(fd)) {
		close(fd);
		return true;
	}
	watch_drop(r);
	if (!pidfd_keep(fd))    /* over the budget: asked as before, none kept */
		return thread_is_zombie(pid, tid);
	r->watch_fd = fd;
	r->watch_ring = index;
	return false;
}

static void adopt_child_peer(thoth_trace_reader_t *r, uint32_t pid);

/* Only asked about a ring whose head slot is mid-write: is its writer gone?
 * The ring's pid and tid are the writer's word: probing any it names would
 * tell it (through the torn count) whether that thread exists anywhere on
 * the host, with thothd's privileges.  With a verified peer pid
 * (thoth__trace_reader_set_peer) only that process's threads are probed,
 * and an added peer's (add_peer) while its pidfd says it lives: once it
 * exited every thread of it is gone, and its number is not asked about
 * again (another process may hold it).  A ring naming another pid reads
 * as alive, never torn. */
static bool writer_is_dead(thoth_trace_reader_t *r, uint32_t index, reader_ring_t *rr)
{
	if (r->image)
		return true;
	if (rr->pid == 0 || rr->tid == 0 || rr->pid > INT32_MAX || rr->tid > INT32_MAX)
		return true;
	if (r->peer_pid && rr->pid != r->peer_pid) {
		const struct reader_peer *p = added_peer(r, rr->pid);
		if (!p && rr->readopt) {
			/* its adopted slot gave way to a connecting peer: once */
			rr->readopt = false;
			adopt_child_peer(r, rr->pid);
			p = added_peer(r, rr->pid);
		}
		if (!p)
			return false;
		if (pidfd_exited(p->pidfd))
			return true;
	}
	return thread_is_gone(r, index, rr->pid, rr->tid);
}

/* Records [from, to) of one ring, lost to its writer, of one kind, not yet
 * told to lost_fn: consecutive losses of a kind (the lap, then records
 * overwritten while we copied them; a run of invalid ones) go out as one
 * range. */
typedef struct lost_run {
	uint64_t from, to;
	uint32_t kind;
} lost_run_t;

static void lost_flush(thoth_trace_reader_t *r, uint32_t index, lost_run_t *run)
{
	if (run->to > run->from && r->lost_fn)
		r->lost_fn(index, run->kind, run->from, run->to, r->lost_ctx);
	run->from = run->to = 0;
}

/* Ring INDEX's records [FROM, TO), lost as KIND: told by sequence to
 * lost_fn through RUN (the caller counted them in the stats).  Cold and
 * out of line: inlined, it cost the drain loop 4 instructions a record
 * (callgrind, bench_trace_drain). */
__attribute__((cold, noinline))
static void lost_add(thoth_trace_reader_t *r, uint32_t index, lost_run_t *run, uint32_t kind,
                     uint64_t from, uint64_t to)
{
	if (run->to != from || run->to == run->from || run->kind != kind) {
		lost_flush(r, index, run);
		run->from = from;
		run->kind = kind;
	}
	run->to = to;
}

/* Ring INDEX's records [FROM, TO) are gone: counted, and told by sequence
 * to lost_fn (through RUN). */
static void count_lost(thoth_trace_reader_t *r, uint32_t index, lost_run_t *run, uint64_t from,
                       uint64_t to)
{
	/* Saturated: a lying head (a hostile writer) makes the counts absurd,
	 * never wrapped round to small. */
	if (r->full_policy != THOTH_TRACE_OVERWRITE_OLDEST) {
		/* a DROP_NEWEST writer never laps: a lie, or a slot it broke */
		r->stats.invalid = thoth__trace_sat_add(r->stats.invalid, to - from);
		lost_add(r, index, run, THOTH__TRACE_LOST_INVALID, from, to);
		return;
	}
	r->stats.overwritten = thoth__trace_sat_add(r->stats.overwritten, to - from);
	lost_add(r, index, run, THOTH__TRACE_LOST_OVERWRITTEN, from, to);
}

/* Ring INDEX's record at HEAD is mid-write (BUSY): once its writer is gone
 * it never completes.  Counted once a ring, told as the record HEAD (the
 * head never moves after its writer died). */
static void check_torn(thoth_trace_reader_t *r, uint32_t index, reader_ring_t *rr,
                       const thoth_trace_record_t *slots, uint64_t head)
{
	uint64_t w = __atomic_load_n(&slots[head & (r->ring_records - 1)].word0, __ATOMIC_ACQUIRE);
	/* A head of UINT64_MAX is a lie (no writer gets there): [head, head +
	 * 1) would wrap, told as nothing while torn grew by one. */
	if ((uint32_t)w != THOTH_TRACE_COMMIT_BUSY || head == UINT64_MAX) {
		/* the watched writer finished its record: its pidfd is not
		 * worth a descriptor until its head is stuck again */
		if (r->watch_ring == index)
			watch_drop(r);
		return;
	}
	if (!writer_is_dead(r, index, rr))
		return;
	r->stats.torn = thoth__trace_sat_add(r->stats.torn, 1);
	rr->torn_counted = true;
	if (r->watch_ring == index)
		watch_drop(r);
	if (r->lost_fn)
		r->lost_fn(index, THOTH__TRACE_LOST_TORN, head, head + 1, r->lost_ctx);
}

/* Decode a copied record; false when a field is impossible. */
static bool decode(thoth_trace_reader_t *r, const thoth_trace_record_t *rec, uint64_t word0,
                   const thoth_trace_clock_map_t *clock, thoth_trace_event_t *ev)
{
	uint16_t event_id = (uint16_t)(word0 >> 32);
	uint8_t category = (uint8_t)(word0 >> 48);
	uint8_t flags = (uint8_t)(word0 >> 56);
	if (event_id > r->names_known)
		refresh_names(r);  /* registered after our last look, before the record */
	if (event_id > r->names_known || category >= 64 || (flags & ~THOTH_TRACE_FLAGS_KNOWN))
		return false;
	ev->timestamp_ns = thoth_trace_clock_to_ns(clock, rec->timestamp);
	ev->trace_id = rec->trace_id;
	ev->arg0 = rec->arg0;
	if (flags & THOTH_TRACE_ARG0_TICKS) {
		/* A duration ending at the timestamp, in the writer's ticks. */
		uint64_t from = thoth_trace_clock_to_ns(clock, rec->timestamp - rec->arg0);
		ev->arg0 = ev->timestamp_ns >= from ? ev->timestamp_ns - from : 0;
		flags &= (uint8_t)~THOTH_TRACE_ARG0_TICKS;
	}
	ev->arg1 = rec->arg1;
	ev->service_id = rec->service_id;
	ev->interface_id = rec->interface_id;
	ev->request_id = rec->request_id;
	ev->payload_size = rec->payload_size;
	ev->tid = rec->tid;
	ev->method = rec->method;
	ev->cpu = rec->cpu;
	ev->event_id = event_id;
	ev->category = category;
	ev->flags = flags;
	ev->name = event_id ? r->names[event_id] : "unnamed";
	return true;
}

/* Copy one slot with the seqlock protocol; false if not the record SEQ. */
static bool copy_record(const thoth_trace_record_t *slot, uint64_t seq,
                        thoth_trace_record_t *copy, uint64_t *word0)
{
	uint64_t w1 = __atomic_load_n(&slot->word0, __ATOMIC_ACQUIRE);
	if ((uint32_t)w1 != thoth_trace_commit_for(seq))
		return false;
	copy->timestamp = __atomic_load_n(&slot->timestamp, __ATOMIC_RELAXED);
	copy->trace_id = __atomic_load_n(&slot->trace_id, __ATOMIC_RELAXED);
	copy->arg0 = __atomic_load_n(&slot->arg0, __ATOMIC_RELAXED);
	copy->arg1 = __atomic_load_n(&slot->arg1, __ATOMIC_RELAXED);
	copy->service_id = __atomic_load_n(&slot->service_id, __ATOMIC_RELAXED);
	copy->interface_id = __atomic_load_n(&slot->interface_id, __ATOMIC_RELAXED);
	copy->request_id = __atomic_load_n(&slot->request_id, __ATOMIC_RELAXED);
	copy->payload_size = __atomic_load_n(&slot->payload_size, __ATOMIC_RELAXED);
	copy->tid = __atomic_load_n(&slot->tid, __ATOMIC_RELAXED);
	copy->method = __atomic_load_n(&slot->method, __ATOMIC_RELAXED);
	copy->cpu = __atomic_load_n(&slot->cpu, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint64_t w2 = __atomic_load_n(&slot->word0, __ATOMIC_RELAXED);
	*word0 = w1;
	return w1 == w2;
}

/* Read ring INDEX from our position up to its head, or up to CAP where
 * that comes first (a cut: thoth__trace_reader_poll_upto). */
static int drain_ring(thoth_trace_reader_t *r, uint32_t index, reader_ring_t *rr, uint64_t cap,
                      const thoth_trace_clock_map_t *clock, thoth_trace_event_fn fn, void *ctx)
{
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, index);
	thoth_trace_record_t *slots = thoth_trace_ring_records(ring);
	uint64_t mask = r->ring_records - 1;
	uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
	lost_run_t run = { 0, 0, 0 };
	int rc = 0;

	if (head < rr->pos) {  /* head went backwards: nothing sane to read */
		r->stats.invalid = thoth__trace_sat_add(r->stats.invalid, 1);
		rr->pos = head;
		/* No sequence to place it by: whoever is told counts it. */
		if (r->lost_fn)
			r->lost_fn(index, THOTH__TRACE_LOST_UNPLACED, 0, 1, r->lost_ctx);
	}
	if (head - rr->pos > r->ring_records) {
		/* lapped: what we had not read of [pos, head - capacity) */
		count_lost(r, index, &run, rr->pos, head - r->ring_records);
		rr->pos = head - r->ring_records;
	}
	uint64_t end = head < cap ? head : cap;
	while (rr->pos < end && rc == 0) {
		uint64_t seq = rr->pos++;
		thoth_trace_record_t copy;
		uint64_t word0;
		thoth_trace_event_t ev;
		if (!copy_record(&slots[seq & mask], seq, &copy, &word0)) {
			count_lost(r, index, &run, seq, seq + 1);
			continue;
		}
		if (!decode(r, &copy, word0, clock, &ev)) {
			r->stats.invalid = thoth__trace_sat_add(r->stats.invalid, 1);
			lost_add(r, index, &run, THOTH__TRACE_LOST_INVALID, seq, seq + 1);
			continue;
		}
		ev.seq = seq;
		ev.pid = rr->pid;
		ev.ring = index;
		r->stats.read++;
		rc = fn(&ev, ctx);
	}
	lost_flush(r, index, &run);
	/* Release: our copies are done before a DROP_NEWEST writer reuses them. */
	__atomic_store_n(&ring->tail, rr->pos, __ATOMIC_RELEASE);

	if (rr->pos == head && !rr->torn_counted)
		check_torn(r, index, rr, slots, head);
	return rc;
}

/* Every record PID's rings hold has been read and each torn head among
 * them counted: nothing of PID is left for its slot to decide.  A claimed
 * ring not adopted yet may be PID's: not settled until a poll adopts it.
 * Two loads a ring (its head and, at a BUSY-looking head, its word0). */
static bool peer_settled(const thoth_trace_reader_t *r, uint32_t pid)
{
	uint32_t claimed = __atomic_load_n(&control(r)->rings_claimed, __ATOMIC_ACQUIRE);
	if (claimed > r->ring_count)
		claimed = r->ring_count;
	for (uint32_t i = 0; i < claimed; i++) {
		const reader_ring_t *rr = &r->rings[i];
		thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, i);
		if (!rr->known) {
			if (__atomic_load_n(&ring->state, __ATOMIC_ACQUIRE) == THOTH_TRACE_RING_CLAIMED)
				return false;
			continue;
		}
		if (rr->pid != pid)
			continue;
		uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
		if (rr->pos != head)
			return false;
		uint64_t w = __atomic_load_n(
			&thoth_trace_ring_records(ring)[head & (r->ring_records - 1)].word0,
			__ATOMIC_ACQUIRE);
		if (!rr->torn_counted && (uint32_t)w == THOTH_TRACE_COMMIT_BUSY && head != UINT64_MAX)
			return false;
	}
	return true;
}

static void peer_free(thoth_trace_reader_t *r, struct reader_peer *p)
{
	if (p->closed)
		r->n_closed--;
	if (p->adopted)
		r->n_adopted--;
	pidfd_release(p->pidfd);
	p->pidfd = -1;
	p->pid = 0;
	p->closed = false;
	p->adopted = false;
}

/* An adopted slot given up for a connecting peer: its pid's rings may
 * adopt it again at their next BUSY head (writer_is_dead). */
static bool peer_evict_adopted(thoth_trace_reader_t *r)
{
	for (uint32_t i = 0; i < THOTH__TRACE_READER_PEERS; i++) {
		struct reader_peer *p = &r->peers[i];
		if (!p->pid || !p->adopted)
			continue;
		for (uint32_t k = 0; k < r->ring_count; k++)
			if (r->rings[k].known && r->rings[k].pid == p->pid)
				r->rings[k].readopt = true;
		peer_free(r, p);
		return true;
	}
	return false;
}

/* Free each slot (only those closed: ONLY_CLOSED) whose process has
 * exited (its pidfd: the very process verified, whatever its number
 * became) and whose records are all read, torn heads counted
 * (peer_settled).  Before that its pid stays a peer: a child's exit
 * closes its connections before its torn ring can be found. */
static void reap_peers(thoth_trace_reader_t *r, bool only_closed)
{
	for (uint32_t i = 0; i < THOTH__TRACE_READER_PEERS; i++) {
		struct reader_peer *p = &r->peers[i];
		if (p->pid && (p->closed || !only_closed) && pidfd_exited(p->pidfd) &&
		    peer_settled(r, p->pid))
			peer_free(r, p);
	}
}

/* PID (PIDFD: that very process, consumed) into a slot: ADOPTED (never
 * connected, added closed as remove_peer leaves it) or connected.  False:
 * the set is full of the living or the unsettled, or the pidfd budget is
 * spent. */
static bool peer_take(thoth_trace_reader_t *r, uint32_t pid, int pidfd, bool adopted)
{
	struct reader_peer *p = added_peer(r, pid);
	if (p) {
		/* Again (another connection), or its number now another
		 * verified process's (the first exited): the live one's pidfd. */
		if (pidfd_exited(p->pidfd)) {
			close(p->pidfd);        /* its budget passes to PIDFD */
			p->pidfd = pidfd;
		} else {
			close(pidfd);
		}
		if (p->closed && !adopted) {
			p->closed = false;
			r->n_closed--;
		}
		if (p->adopted && !adopted) {
			p->adopted = false;     /* connected now: never evicted */
			r->n_adopted--;
		}
		return true;
	}
	if (adopted && r->n_adopted >= THOTH__TRACE_READER_ADOPTED) {
		reap_peers(r, false);
		if (r->n_adopted >= THOTH__TRACE_READER_ADOPTED) {
			close(pidfd);
			return false;
		}
	}
	if (!(p = added_peer(r, 0))) {
		reap_peers(r, false);   /* full: the exited and settled make room */
		p = added_peer(r, 0);
	}
	/* Still full: a connecting peer takes an adopted one's slot (that
	 * one's parent is known, it can be adopted again; a refused
	 * connection is never asked again). */
	if (!p && !adopted && peer_evict_adopted(r))
		p = added_peer(r, 0);
	if (!p || !pidfd_keep(pidfd)) {
		if (!p)
			close(pidfd);
		return false;
	}
	p->pid = pid;
	p->pidfd = pidfd;
	p->closed = adopted;
	p->adopted = adopted;
	r->n_closed += adopted;
	r->n_adopted += adopted;
	return true;
}

/* PID's parent, from /proc/PID/stat (after the last ')': the comm is the
 * process's choice).  False: unreadable. */
static bool read_ppid(uint32_t pid, uint32_t *ppid)
{
	char path[48], buf[160];
	snprintf(path, sizeof path, "/proc/%u/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long v;
	char state;
	if (!p || sscanf(p + 1, " %c %lu", &state, &v) != 2 || v == 0 || v > INT32_MAX)
		return false;
	*ppid = (uint32_t)v;
	return true;
}

/* A ring naming PID, neither the peer nor an added one: a forked child
 * writing into the buffer it inherited that never connected to thothd
 * (nothing else proves it holds the buffer)?  Verified when PID's parent
 * is a verified process, the peer or a living added peer: it is that
 * process's own child, whose life that process knows anyway, so probing
 * it tells the writer nothing; a pid of anyone else reads as before
 * (never probed, never torn) whether it exists or not.  Its pidfd is
 * taken first and checked unreaped after the /proc read (the read was of
 * that process, not of a reuse of its number).  Added closed (no
 * connection will close it): freed once it exited and was read out.
 * Once a ring, at its adoption: a child reaped before the reader first
 * saw its ring stays unverified. */
static void adopt_child_peer(thoth_trace_reader_t *r, uint32_t pid)
{
	if (r->image || !r->peer_pid || pid == r->peer_pid || pid == 0 || pid > INT32_MAX)
		return;
	/* A slot of PID whose process exited: PID may be a new process now
	 * (its number reused), verified afresh and given the slot, not judged
	 * dead by the old one's pidfd. */
	const struct reader_peer *had = added_peer(r, pid);
	if (had && !pidfd_exited(had->pidfd))
		return;
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0)
		return;
	uint32_t ppid = 0;
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	bool ok = read_ppid(pid, &ppid) && poll(&pf, 1, 0) >= 0 && !(pf.revents & POLLHUP);
	/* The parent alive after the read: that very process, not one that
	 * took its number since (the peer's by its pidfd too). */
	bool parent_ok = false;
	if (ok && ppid == r->peer_pid) {
		parent_ok = r->peer_pidfd >= 0 && !pidfd_exited(r->peer_pidfd);
	} else if (ok) {
		const struct reader_peer *parent = added_peer(r, ppid);
		parent_ok = parent && !pidfd_exited(parent->pidfd);
	}
	if (parent_ok)
		peer_take(r, pid, fd, true);
	else
		close(fd);
}

/* First sight of a claimed ring: copy its owner, start at its tail. */
static bool adopt_ring(thoth_trace_reader_t *r, uint32_t index, reader_ring_t *rr)
{
	thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, index);
	if (__atomic_load_n(&ring->state, __ATOMIC_ACQUIRE) != THOTH_TRACE_RING_CLAIMED)
		return false;
	rr->pid = ring->owner_pid;
	rr->tid = ring->owner_tid;
	memcpy(rr->thread_name, ring->thread_name, sizeof rr->thread_name);
	rr->thread_name[sizeof rr->thread_name - 1] = '\0';
	make_printable(rr->thread_name);
	uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
	uint64_t tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
	rr->pos = tail <= head ? tail : head;
	rr->known = true;
	adopt_child_peer(r, rr->pid);
	return true;
}

/* UPTO: NULL, or a cut of N rings (rings from N on: nothing before it). */
static int reader_poll(thoth_trace_reader_t *r, const uint64_t *upto, uint32_t n,
                       thoth_trace_event_fn fn, void *ctx)
{
	if (!r || !fn)
		return THOTH_E_INVAL;
	thoth_trace_clock_map_t clock;
	thoth_trace_clock_map_init(&clock, r->clock_kind, r->anchor_ticks, r->anchor_ns, !r->image);
	refresh_names(r);
	uint32_t claimed = __atomic_load_n(&control(r)->rings_claimed, __ATOMIC_ACQUIRE);
	if (claimed > r->ring_count)
		claimed = r->ring_count;
	int rc = 0;
	for (uint32_t i = 0; i < claimed && rc == 0; i++) {
		reader_ring_t *rr = &r->rings[i];
		uint64_t cap = !upto ? UINT64_MAX : i < n ? upto[i] : 0;
		if (cap == 0 || (!rr->known && !adopt_ring(r, i, rr)))
			continue;
		rc = drain_ring(r, i, rr, cap, &clock, fn, ctx);
	}
	/* Every claimed ring's, however far the poll went (one stopped by FN,
	 * one to a cut): the writers' counters now, never an older sum. */
	thoth__trace_reader_refused(r, &r->stats.dropped, &r->stats.no_ring);
	/* Peers whose connections closed: freed once exited and read out
	 * (a poll(2) each, only while one is waiting). */
	if (r->n_closed)
		reap_peers(r, true);
	return rc;
}

int thoth_trace_reader_poll(thoth_trace_reader_t *r, thoth_trace_event_fn fn, void *ctx)
{
	return reader_poll(r, NULL, 0, fn, ctx);
}

int thoth__trace_reader_poll_upto(thoth_trace_reader_t *r, const uint64_t *upto, uint32_t n,
                                  thoth_trace_event_fn fn, void *ctx)
{
	if (!r || !fn || (!upto && n))
		return THOTH_E_INVAL;
	if (!upto)
		return 0;               /* an empty cut: nothing came before it */
	return reader_poll(r, upto, n, fn, ctx);
}

int thoth_trace_reader_stats(const thoth_trace_reader_t *r, thoth_trace_stats_t *out)
{
	if (!r || !out)
		return THOTH_E_INVAL;
	*out = r->stats;
	return 0;
}

int thoth_trace_reader_set_enabled(thoth_trace_reader_t *r, uint64_t mask)
{
	if (!r)
		return THOTH_E_INVAL;
	/* Category bits only: the writer's probe bits stay as they are. */
	uint64_t *w = &control(r)->enabled;
	uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(w, &old, (old & ~THOTH_TRACE_CATEGORY_BITS) |
	                                                 (mask & THOTH_TRACE_CATEGORY_BITS),
	                                    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return 0;
}

int thoth_trace_reader_process(const thoth_trace_reader_t *r, uint32_t *pid, const char **name)
{
	if (!r)
		return THOTH_E_INVAL;
	if (pid)
		*pid = r->pid;
	if (name)
		*name = r->process_name;
	return 0;
}

int thoth_trace_reader_thread_name(const thoth_trace_reader_t *r, uint32_t ring,
                                   const char **name)
{
	if (!r || !name || ring >= r->ring_count)
		return THOTH_E_INVAL;
	*name = r->rings[ring].thread_name;
	return 0;
}

/* The control page of the buffer READER maps (read-write): thothd's probe
 * commands go through its mailbox (trace_layout.h). */
void *thoth__trace_reader_control_page(thoth_trace_reader_t *r)
{
	return r ? control(r) : NULL;
}

uint64_t thoth__trace_reader_unread(const thoth_trace_reader_t *r)
{
	if (!r || !r->base)
		return 0;
	uint32_t claimed = __atomic_load_n(&control(r)->rings_claimed, __ATOMIC_ACQUIRE);
	if (claimed > r->ring_count)
		claimed = r->ring_count;
	uint64_t n = 0;
	for (uint32_t i = 0; i < claimed; i++) {
		thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, i);
		const reader_ring_t *rr = &r->rings[i];
		uint64_t pos;
		if (rr->known) {
			pos = rr->pos;
		} else {
			/* Not adopted yet: the first poll starts at its tail. */
			if (__atomic_load_n(&ring->state, __ATOMIC_ACQUIRE) != THOTH_TRACE_RING_CLAIMED)
				continue;
			pos = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
		}
		uint64_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
		if (head > pos)
			n += head - pos < r->ring_records ? head - pos : r->ring_records;
	}
	return n;
}

void thoth__trace_reader_refused(const thoth_trace_reader_t *r, uint64_t *dropped, uint64_t *no_ring)
{
	*dropped = *no_ring = 0;
	if (!r || !r->base)
		return;
	uint32_t claimed = __atomic_load_n(&control(r)->rings_claimed, __ATOMIC_ACQUIRE);
	if (claimed > r->ring_count)
		claimed = r->ring_count;
	for (uint32_t i = 0; i < claimed; i++)
		*dropped = thoth__trace_sat_add(*dropped, __atomic_load_n(
			&thoth_trace_ring_at(r->base, r->ring_records, i)->dropped, __ATOMIC_RELAXED));
	*no_ring = __atomic_load_n(&control(r)->no_ring, __ATOMIC_RELAXED);
}

uint64_t thoth__trace_reader_oneways_dropped(const thoth_trace_reader_t *r)
{
	if (!r || !r->base)
		return 0;
	return __atomic_load_n(&control(r)->oneways_dropped, __ATOMIC_RELAXED);
}

void thoth__trace_reader_on_lost(thoth_trace_reader_t *r, thoth__trace_lost_fn fn, void *ctx)
{
	if (!r)
		return;
	r->lost_fn = fn;
	r->lost_ctx = fn ? ctx : NULL;
}

void thoth__trace_reader_set_peer_pidfd(thoth_trace_reader_t *r, uint32_t pid, int pidfd)
{
	if (!r) {
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	pidfd_release(r->peer_pidfd);
	r->peer_pidfd = -1;
	r->peer_pid = pid;
	if (pid && !r->image && pidfd_keep(pidfd))
		r->peer_pidfd = pidfd;
	else if (pidfd >= 0 && (!pid || r->image))
		close(pidfd);
}

void thoth__trace_reader_set_peer(thoth_trace_reader_t *r, uint32_t pid)
{
	/* By number: for the caller's own pid or its child's, which cannot
	 * be reused under it (thothd's clients: set_peer_pidfd). */
	thoth__trace_reader_set_peer_pidfd(r, pid,
					   pid && pid <= INT32_MAX ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0)
								   : -1);
}

bool thoth__trace_reader_add_peer(thoth_trace_reader_t *r, uint32_t pid, int pidfd)
{
	if (!r || !pid || pid > INT32_MAX || pidfd < 0 || r->image) {
		if (pidfd >= 0)
			close(pidfd);
		return false;
	}
	if (pid == r->peer_pid) {
		close(pidfd);
		return true;
	}
	return peer_take(r, pid, pidfd, false);
}

void thoth__trace_reader_remove_peer(thoth_trace_reader_t *r, uint32_t pid)
{
	if (!r || !pid)
		return;
	struct reader_peer *p = added_peer(r, pid);
	if (!p)
		return;
	if (!p->closed) {
		p->closed = true;
		r->n_closed++;
	}
	reap_peers(r, true);
}

uint32_t thoth__trace_reader_peer_count(const thoth_trace_reader_t *r)
{
	uint32_t n = 0;
	for (uint32_t i = 0; r && i < THOTH__TRACE_READER_PEERS; i++)
		n += r->peers[i].pid != 0;
	return n;
}

void thoth__trace_reader_find_torn(thoth_trace_reader_t *r)
{
	if (!r || !r->base)
		return;
	uint32_t claimed = __atomic_load_n(&control(r)->rings_claimed, __ATOMIC_ACQUIRE);
	if (claimed > r->ring_count)
		claimed = r->ring_count;
	for (uint32_t i = 0; i < claimed; i++) {
		reader_ring_t *rr = &r->rings[i];
		if (rr->torn_counted || (!rr->known && !adopt_ring(r, i, rr)))
			continue;
		thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, i);
		check_torn(r, i, rr, thoth_trace_ring_records(ring),
			   __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE));
	}
}

void thoth__trace_reader_heads(const thoth_trace_reader_t *r, uint64_t *heads, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		heads[i] = 0;
		if (r && r->base && i < r->ring_count) {
			thoth_trace_ring_header_t *ring = thoth_trace_ring_at(r->base, r->ring_records, i);
			heads[i] = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
		}
	}
}

int thoth__trace_reader_mapping(const thoth_trace_reader_t *r, const uint8_t **base, size_t *size)
{
	if (!r || !r->base)
		return THOTH_E_INVAL;
	*base = r->base;
	*size = r->size;
	return 0;
}

int thoth_trace_reader_geometry(const thoth_trace_reader_t *r, uint32_t *ring_count,
                                uint32_t *ring_records)
{
	if (!r)
		return THOTH_E_INVAL;
	if (ring_count)
		*ring_count = r->ring_count;
	if (ring_records)
		*ring_records = r->ring_records;
	return 0;
}
