/*
 * export_ctf.c - a CTF 1.8 trace that babeltrace2 reads: DIR/metadata (TSDL
 * text) and one binary stream file per thread, DIR/stream_<pid>_<tid>, each
 * holding a single packet.  Event ids are assigned per collection (a name
 * seen in several processes is one event class).  Everything is
 * little-endian and byte-aligned, so the binary below is exactly the TSDL.
 *
 * Timestamps are CLOCK_MONOTONIC; the clock's offset is CLOCK_REALTIME -
 * CLOCK_MONOTONIC measured at export, so viewers show wall-clock times (a
 * trace exported in the boot it was recorded in, which is how thothd does
 * it; a clock step between recording and export shifts the dates by it).
 *
 * All or nothing: the files are written into a new directory inside DIR
 * (TMP_PREFIX<pid>-<n>), each fsynced, and only once every one is complete
 * are they renamed into DIR; a failure (a full disk, an unwritable file, a
 * kill mid-write) leaves DIR as it was and the temporary removed (a killed
 * writer's is removed by the next export into DIR).  Written in place, a
 * failed export cut the metadata or a stream and left an earlier trace's
 * streams of other threads beside the new ones, read by babeltrace2 as
 * one trace.  The renames: the old metadata goes first, then the old
 * trace's streams the new one lacks, the new streams, the new metadata
 * last; a kill between them leaves a directory without metadata (no
 * trace, refused by readers), never one trace's metadata over another's
 * streams.  Files that are not a trace's (no `metadata`, no `stream_`
 * prefix, or a `stream_*` that is no regular file) are kept; a directory
 * where a new file must go refuses the export before anything is deleted.
 * An flock on DIR keeps two exports into it apart; an export waits for it
 * at most a second (a user's `flock DIR sleep inf` must not stall thothd).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collection.h"

#define CTF_MAGIC            0xC1FC1FC1u
#define CTF_PACKET_HEAD_SIZE (8u + 40u)  /* packet.header + packet.context */
#define TMP_PREFIX           ".thoth-ctf.tmp-"

/* Where the files go: the temporary directory (TMP, its fd) and the names
 * errors give (DIR's). */
typedef struct out_dir {
	int fd;
	const char *dir;
} out_dir_t;

/* NAME created in OUT, written through a FILE, then flushed and fsynced
 * by close_file: a file is either whole on disk or the export fails. */
static FILE *open_file(const out_dir_t *out, const char *name, int *err)
{
	int fd = openat(out->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		*err = thoth_error_io(e, "open %s/%s", out->dir, name);
	}
	return f;
}

static int close_file(const out_dir_t *out, const char *name, FILE *f, int err)
{
	if (!err && ferror(f))
		err = thoth_error_io(errno ? errno : EIO, "write %s/%s", out->dir, name);
	if (!err && fflush(f) != 0)
		err = thoth_error_io(errno, "write %s/%s", out->dir, name);
	if (!err && fsync(fileno(f)) != 0)
		err = thoth_error_io(errno, "fsync %s/%s", out->dir, name);
	if (fclose(f) != 0 && !err)
		err = thoth_error_io(errno, "close %s/%s", out->dir, name);
	return err;
}

static const char metadata_prologue[] =
	"/* CTF 1.8 */\n"
	"\n"
	"typealias integer { size = 8; align = 8; signed = false; } := uint8_t;\n"
	"typealias integer { size = 16; align = 8; signed = false; } := uint16_t;\n"
	"typealias integer { size = 32; align = 8; signed = false; } := uint32_t;\n"
	"typealias integer { size = 64; align = 8; signed = false; } := uint64_t;\n"
	"typealias integer { size = 64; align = 8; signed = false; base = hex; } := uint64_hex_t;\n"
	"\n"
	"trace {\n"
	"\tmajor = 1;\n"
	"\tminor = 8;\n"
	"\tbyte_order = le;\n"
	"\tpacket.header := struct {\n"
	"\t\tuint32_t magic;\n"
	"\t\tuint32_t stream_id;\n"
	"\t};\n"
	"};\n"
	"\n"
	"env {\n"
	"\tdomain = \"thoth\";\n"
	"\ttracer_name = \"thoth\";\n"
	"};\n"
	"\n"
	;

/* Then the clock (written with its offset), then this. */
static const char metadata_streams[] =
	"typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := uint64_clock_t;\n"
	"\n"
	"stream {\n"
	"\tid = 0;\n"
	"\tpacket.context := struct {\n"
	"\t\tuint64_clock_t timestamp_begin;\n"
	"\t\tuint64_clock_t timestamp_end;\n"
	"\t\tuint64_t content_size;\n"
	"\t\tuint64_t packet_size;\n"
	"\t\tuint32_t pid;\n"
	"\t\tuint32_t tid;\n"
	"\t};\n"
	"\tevent.header := struct {\n"
	"\t\tuint32_t id;\n"
	"\t\tuint64_clock_t timestamp;\n"
	"\t};\n"
	"};\n";

/* Field list of every event class; put_event writes exactly these bytes. */
static const char event_fields[] =
	"\tfields := struct {\n"
	"\t\tuint16_t cpu;\n"
	"\t\tuint8_t category;\n"
	"\t\tuint8_t flags;\n"
	"\t\tuint32_t service_id;\n"
	"\t\tuint32_t interface_id;\n"
	"\t\tuint16_t method;\n"
	"\t\tuint32_t request_id;\n"
	"\t\tuint32_t payload_size;\n"
	"\t\tuint64_hex_t trace_id;\n"
	"\t\tuint64_t arg0;\n"
	"\t\tuint64_t arg1;\n"
	"\t};\n";
#define CTF_EVENT_SIZE (12u + 2u + 1u + 1u + 4u + 4u + 2u + 4u + 4u + 8u + 8u + 8u)

static void put_bytes(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}
#define PUT(p, v) put_bytes(p, &(v), sizeof(v))

static int write_metadata(const thoth_trace_collection_t *c, const out_dir_t *out)
{
	int err = 0;
	FILE *f = open_file(out, "metadata", &err);
	if (!f)
		return err;
	errno = 0;
	/* where CLOCK_MONOTONIC's zero lies in CLOCK_REALTIME */
	struct timespec mono, real;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	int64_t off_ns = ((int64_t)real.tv_sec - (int64_t)mono.tv_sec) * 1000000000 +
			 ((int64_t)real.tv_nsec - (int64_t)mono.tv_nsec);
	long long off_s = (long long)(off_ns / 1000000000), off_rest = (long long)(off_ns % 1000000000);
	if (off_rest < 0) {
		off_rest += 1000000000;
		off_s--;
	}
	fputs(metadata_prologue, f);
	fprintf(f, "clock {\n\tname = \"monotonic\";\n\tdescription = \"CLOCK_MONOTONIC\";\n"
		   "\tfreq = 1000000000;\n"
		   "\toffset_s = %lld;\n\toffset = %lld;\n"   /* CLOCK_REALTIME - CLOCK_MONOTONIC */
		   "\tabsolute = false;\n};\n\n", off_s, off_rest);
	fputs(metadata_streams, f);
	for (size_t i = 0; i < c->name_count; i++)
		fprintf(f, "\nevent {\n\tname = \"%s\";\n\tid = %zu;\n\tstream_id = 0;\n%s};\n",
		        c->names[i], i, event_fields);
	return close_file(out, "metadata", f, 0);
}

/* One thread's stream: the SORTED events whose (pid, tid) match. */
static int write_stream(const thoth_trace_collection_t *c, const collected_thread_t *t,
                        const collected_event_t **sorted, const out_dir_t *out)
{
	size_t n = 0;
	for (size_t i = 0; i < c->count; i++)
		if (sorted[i]->ev.pid == t->pid && sorted[i]->ev.tid == t->tid)
			n++;
	if (!n)
		return 0;
	size_t size = CTF_PACKET_HEAD_SIZE + n * CTF_EVENT_SIZE;
	uint8_t *buf = malloc(size), *p = buf;
	if (!buf)
		return THOTH_E_NOMEM;
	uint64_t first = 0, last = 0;
	bool seen = false;
	for (size_t i = 0; i < c->count; i++) {
		const thoth_trace_event_t *ev = &sorted[i]->ev;
		if (ev->pid != t->pid || ev->tid != t->tid)
			continue;
		if (!seen)
			first = ev->timestamp_ns;
		seen = true;
		last = ev->timestamp_ns;
	}
	uint32_t magic = CTF_MAGIC, stream_id = 0;
	uint64_t bits = (uint64_t)size * 8;
	PUT(&p, magic);
	PUT(&p, stream_id);
	PUT(&p, first);
	PUT(&p, last);
	PUT(&p, bits);  /* content_size */
	PUT(&p, bits);  /* packet_size */
	PUT(&p, t->pid);
	PUT(&p, t->tid);
	for (size_t i = 0; i < c->count; i++) {
		const thoth_trace_event_t *ev = &sorted[i]->ev;
		if (ev->pid != t->pid || ev->tid != t->tid)
			continue;
		uint32_t id = sorted[i]->name_index;
		PUT(&p, id);
		PUT(&p, ev->timestamp_ns);
		PUT(&p, ev->cpu);
		PUT(&p, ev->category);
		PUT(&p, ev->flags);
		PUT(&p, ev->service_id);
		PUT(&p, ev->interface_id);
		PUT(&p, ev->method);
		PUT(&p, ev->request_id);
		PUT(&p, ev->payload_size);
		PUT(&p, ev->trace_id);
		PUT(&p, ev->arg0);
		PUT(&p, ev->arg1);
	}
	char name[64];
	snprintf(name, sizeof name, "stream_%" PRIu32 "_%" PRIu32, t->pid, t->tid);
	int err = 0;
	FILE *f = open_file(out, name, &err);
	if (f) {
		errno = 0;
		if (fwrite(buf, 1, size, f) != size)
			err = thoth_error_io(errno ? errno : EIO, "write %s/%s", out->dir, name);
		err = close_file(out, name, f, err);
	}
	free(buf);
	return err;
}

/* Directory NAME in DFD and everything in it (one level: what we wrote). */
static void remove_tmp(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
	} else {
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* Temporaries of exports killed mid-write: under the lock, nobody's now.
 * (Each listing opens "." anew: a dup would share the offset, and the
 * next listing would start where this one ended.) */
static void remove_stale(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	char names[16][64];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 16)
		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 &&
		    strlen(e->d_name) < sizeof names[0])
			strcpy(names[n++], e->d_name);
	closedir(d);
	for (size_t i = 0; i < n; i++)
		remove_tmp(dfd, names[i]);
}

/* NAME in DFD is a regular file (not followed): an old trace's. Anything
 * else named stream_* (a directory, a link) is the user's and stays. */
static bool is_regular(int dfd, const struct dirent *e)
{
	if (e->d_type != DT_UNKNOWN)
		return e->d_type == DT_REG;
	struct stat st;
	return fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir_at(int dfd, const char *name)
{
	struct stat st;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* A listing of DFD's "." anew (see remove_stale), or NULL with the error. */
static DIR *list_dir(int dfd, const char *dir, const char *tmp, int *err)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		*err = tmp ? thoth_error_io(errno, "read %s/%s", dir, tmp)
			   : thoth_error_io(errno, "read %s", dir);
		if (fd >= 0)
			close(fd);
	}
	return d;
}

/*
 * The complete trace in TMP (in DFD) moves into DFD: see the top. Whatever
 * can refuse is checked before the old trace loses a file: a directory
 * where the new metadata or a new stream must go (rename fails EISDIR),
 * a directory we may not write. Deleted then are only regular files.
 */
static int move_in(int dfd, const char *tmp, const char *dir)
{
	int tfd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return thoth_error_io(errno, "open %s/%s", dir, tmp);
	int err = 0;
	if (faccessat(dfd, ".", W_OK | X_OK, AT_EACCESS) != 0)
		err = thoth_error_io(errno, "write %s", dir);
	if (!err && is_dir_at(dfd, "metadata"))
		err = thoth_error_io(EISDIR, "replace %s/metadata", dir);
	DIR *d = err ? NULL : list_dir(tfd, dir, tmp, &err);
	struct dirent *e;
	while (d && !err && (e = readdir(d)))
		if (strncmp(e->d_name, "stream_", 7) == 0 && is_dir_at(dfd, e->d_name))
			err = thoth_error_io(EISDIR, "replace %s/%s", dir, e->d_name);
	if (d)
		closedir(d);
	/* nothing left to refuse: the old trace goes, metadata first */
	if (!err && unlinkat(dfd, "metadata", 0) != 0 && errno != ENOENT)
		err = thoth_error_io(errno, "unlink %s/metadata", dir);
	/* the old trace's streams the new one does not replace */
	d = err ? NULL : list_dir(dfd, dir, NULL, &err);
	while (d && !err && (e = readdir(d)))
		if (strncmp(e->d_name, "stream_", 7) == 0 && is_regular(dfd, e) &&
		    faccessat(tfd, e->d_name, F_OK, AT_SYMLINK_NOFOLLOW) != 0 &&
		    unlinkat(dfd, e->d_name, 0) != 0 && errno != ENOENT)
			err = thoth_error_io(errno, "unlink %s/%s", dir, e->d_name);
	if (d)
		closedir(d);
	d = err ? NULL : list_dir(tfd, dir, tmp, &err);
	while (d && !err && (e = readdir(d)))
		if (strncmp(e->d_name, "stream_", 7) == 0 && renameat(tfd, e->d_name, dfd, e->d_name) != 0)
			err = thoth_error_io(errno, "rename %s/%s/%s", dir, tmp, e->d_name);
	if (d)
		closedir(d);
	if (!err && renameat(tfd, "metadata", dfd, "metadata") != 0)
		err = thoth_error_io(errno, "rename %s/%s/metadata", dir, tmp);
	if (!err && fsync(dfd) != 0)
		err = thoth_error_io(errno, "fsync %s", dir);
	close(tfd);
	return err;
}

/*
 * The directory's lock, never waited on for long: a holder that never
 * lets go (`flock DIR sleep inf`) would otherwise stall thothd's worker
 * and its shutdown. Up to a second of 10 ms naps, then refused. Returns
 * 0 locked, 1 unlockable file system (ENOLCK, EOPNOTSUPP: go on
 * unlocked), or the error.
 */
static int lock_dir(int dfd, const char *dir)
{
	for (int i = 0;; i++) {
		if (flock(dfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK)
			return 1;
		if (i >= 100)
			return thoth_error_io(EWOULDBLOCK, "%s is locked by another export", dir);
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

int thoth_trace_export_ctf(const thoth_trace_collection_t *c, const char *dir)
{
	static atomic_uint seq;
	if (!c || !dir)
		return THOTH_E_INVAL;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return thoth_error_io(errno, "open the CTF directory %s", dir);
	int err = 0;
	/* A file system without flock (ENOLCK, EOPNOTSUPP): unlocked, and no
	 * temporary is taken for stale (it may be a concurrent export's). */
	int locked = lock_dir(dfd, dir);
	if (locked < 0) {
		close(dfd);
		return locked;
	}
	if (locked == 0)
		remove_stale(dfd);
	char tmp[64];
	snprintf(tmp, sizeof tmp, TMP_PREFIX "%d-%u", (int)getpid(), atomic_fetch_add(&seq, 1));
	out_dir_t out = { .fd = -1, .dir = dir };
	if (mkdirat(dfd, tmp, 0755) != 0) {
		err = thoth_error_io(errno, "create a directory in %s", dir);
		goto unlock;
	}
	out.fd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (out.fd < 0)
		err = thoth_error_io(errno, "open %s/%s", dir, tmp);
	if (!err)
		err = write_metadata(c, &out);
	const collected_event_t **sorted = NULL;
	if (!err)
		err = thoth_trace_collection_sorted(c, &sorted);
	for (size_t i = 0; i < c->thread_count && !err; i++)
		err = write_stream(c, &c->threads[i], sorted, &out);
	free(sorted);
	if (!err && fsync(out.fd) != 0)
		err = thoth_error_io(errno, "fsync %s/%s", dir, tmp);
	if (out.fd >= 0)
		close(out.fd);
	if (!err)
		err = move_in(dfd, tmp, dir);
	remove_tmp(dfd, tmp);   /* records no error: the first failure's stays */
unlock:
	close(dfd);     /* and the lock with it */
	return err;
}
