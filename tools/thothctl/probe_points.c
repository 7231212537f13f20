/*
 * probe_points.c - the trace points a running process has, for `thothctl
 * probe run` (probe.c): a script's point is only a name, and the runtime
 * attaches to any name, so a typo ('msg_sned') ran for --duration and
 * printed an empty map as if the point had just not fired.
 *
 * Every THOTH_TRACE site is also a USDT probe (include/thoth/trace.h:
 * STAP_PROBE, provider "thoth"), so the ELF files a process maps executable
 * list every point it can fire: its own (THOTH_TRACE(USER, ...)) and
 * libthoth's, fired yet or not.  Read with libelf (elfutils, which the lock
 * profiler's reader already links); nothing is executed or trusted beyond
 * the note's bounds.
 *
 * The files are named by the target's maps, which a hostile process
 * chooses: a file of a mount namespace of its own shows a path that here
 * may name a FIFO (open would block: thothctl hung) or a device (whose open
 * has effects).  Only regular files are opened (open_regular).  A point is
 * refused only when every file the process maps executable was read: one
 * that could not be (deleted by a rebuild, unreadable) may hold it.
 *
 * What is read is bounded, since the target chooses the files (only those
 * it maps executable, at most MAX_FILES): per file, a section table of at
 * most SECTIONS_MAX entries (counted from the ELF header before libelf
 * sees the file: elf_begin allocates a descriptor per section up front,
 * and a sparse file claims millions), a section-name table of at most
 * STRTAB_MAX bytes and notes of at most NOTES_MAX; in all, READ_TOTAL
 * bytes of those.  Past a bound the file counts as not read ("cannot
 * tell", never a refusal).  Read with pread (ELF_C_READ), not mmap: the
 * target may truncate a file it maps, and a mapped page past the new end
 * is SIGBUS in thothctl.
 */
#define _GNU_SOURCE
#include "probe_points.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* NOTES_MAX: a .note.stapsdt larger is not a compiler's (libthoth's is a
 * few KiB, libc's and the largest USDT users' tens of KiB); libelf would
 * allocate all of it.  SECTIONS_MAX: linked programs have tens, hundreds
 * with every debug section.  READ_TOTAL: what all files together may cost
 * (section tables, name tables, notes). */
enum {
	MAX_FILES = 256, MAX_POINTS = 1024, NAME_MAX_LEN = 64, NOTES_MAX = 1 << 20,
	SECTIONS_MAX = 1 << 16, STRTAB_MAX = 1 << 20, READ_TOTAL = 16 << 20,
};

typedef struct points {
	char (*names)[NAME_MAX_LEN];    /* for "nearest" only */
	size_t n;
	size_t notes;                   /* thoth notes seen, duplicates too */
	const char *want;               /* the point asked for, found or not */
	bool found;
	size_t budget;                  /* bytes still to read (READ_TOTAL) */
	bool spent;                     /* a file was left unread for the budget */
} points_t;

/* N more bytes of P's budget, or false (and P spent). */
static bool charge(points_t *p, uint64_t n)
{
	if (n > p->budget) {
		p->spent = true;
		return false;
	}
	p->budget -= (size_t)n;
	return true;
}

static void add_point(points_t *p, const char *name, size_t len)
{
	p->notes++;
	if (len == strlen(p->want) && memcmp(name, p->want, len) == 0)
		p->found = true;        /* whatever its length, or the list's */
	if (len == 0 || len >= NAME_MAX_LEN)
		return;
	for (size_t i = 0; i < p->n; i++)
		if (strlen(p->names[i]) == len && memcmp(p->names[i], name, len) == 0)
			return;
	if (p->n < MAX_POINTS) {
		memcpy(p->names[p->n], name, len);
		p->names[p->n++][len] = '\0';
	}
}

/* PATH opened for reading if it is a regular file, else -1.  O_PATH opens
 * nothing of the file's (no FIFO wait, no driver's open); the regular file
 * it found is then reopened through /proc/self/fd, the same inode. */
static int open_regular(const char *path)
{
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -1;
	struct stat st;
	int fd = -1;
	if (fstat(pfd, &st) == 0 && S_ISREG(st.st_mode)) {
		char self[64];
		snprintf(self, sizeof self, "/proc/self/fd/%d", pfd);
		fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	}
	close(pfd);
	return fd;
}

/* The "thoth" USDT notes of ELF E into P.  Not ELF: nothing added, true.
 * False: its notes could not be loaded, so it may hold points not in P.
 * E is hostile (a file the target chose, or fuzz input): libelf bounds
 * each note within its section, the strings are found with memchr inside
 * the note's descriptor. */
static bool notes_of(Elf *e, points_t *p)
{
	if (elf_kind(e) != ELF_K_ELF)
		return true;
	size_t shstrndx, shnum;
	GElf_Shdr strsh;
	if (elf_getshdrnum(e, &shnum) != 0 || shnum > SECTIONS_MAX ||
	    !charge(p, (uint64_t)shnum * sizeof(Elf64_Shdr)) || elf_getshdrstrndx(e, &shstrndx) != 0)
		return false;
	if (shstrndx == SHN_UNDEF)
		return true;            /* no section names: no .note.stapsdt */
	if (!gelf_getshdr(elf_getscn(e, shstrndx), &strsh) || strsh.sh_size > STRTAB_MAX ||
	    !charge(p, strsh.sh_size))
		return false;
	bool read = true;
	/* the note's three addresses: pc, base, semaphore */
	size_t addrs = 3 * (gelf_getclass(e) == ELFCLASS32 ? 4 : 8);
	for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
		GElf_Shdr sh;
		const char *sname;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE ||
		    !(sname = elf_strptr(e, shstrndx, sh.sh_name)) || strcmp(sname, ".note.stapsdt"))
			continue;
		Elf_Data *d = sh.sh_size <= NOTES_MAX && charge(p, sh.sh_size) ? elf_getdata(scn, NULL) : NULL;
		if (!d) {
			read = false;
			continue;
		}
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off, next;
		while ((next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			off = next;
			const char *desc = (const char *)d->d_buf + desc_off;
			if (nh.n_type != 3 || nh.n_namesz != 8 ||
			    memcmp((const char *)d->d_buf + name_off, "stapsdt", 8) || nh.n_descsz <= addrs)
				continue;
			const char *prov = desc + addrs, *end = desc + nh.n_descsz;
			const char *prov_end = memchr(prov, '\0', (size_t)(end - prov));
			if (!prov_end || strcmp(prov, "thoth"))
				continue;
			const char *name = prov_end + 1;
			const char *name_end = name < end ? memchr(name, '\0', (size_t)(end - name)) : NULL;
			if (name_end)
				add_point(p, name, (size_t)(name_end - name));
		}
	}
	return read;
}

/* An unsigned of N bytes at B, in the file's byte order (MSB: big-endian). */
static uint64_t field(const unsigned char *b, size_t n, bool msb)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | b[msb ? i : n - 1 - i];
	return v;
}

/* How many sections the ELF file at FD claims, read here before libelf
 * allocates for them: 0 for a file not ELF (libelf says so), UINT64_MAX
 * when the count cannot be read. */
static uint64_t sections_claimed(int fd)
{
	unsigned char h[64];
	ssize_t n = pread(fd, h, sizeof h, 0);
	if (n < (ssize_t)sizeof(Elf32_Ehdr) || memcmp(h, ELFMAG, SELFMAG))
		return 0;
	bool is64 = h[EI_CLASS] == ELFCLASS64, msb = h[EI_DATA] == ELFDATA2MSB;
	if (is64 && n < (ssize_t)sizeof(Elf64_Ehdr))
		return UINT64_MAX;
	uint64_t shoff = is64 ? field(h + 40, 8, msb) : field(h + 32, 4, msb);
	uint64_t shnum = field(h + (is64 ? 60 : 48), 2, msb);
	if (shnum || !shoff)
		return shnum;
	/* more than 0xff00: the count is section 0's sh_size */
	unsigned char sz[8];
	size_t w = is64 ? 8 : 4;
	if (shoff > (uint64_t)INT64_MAX - 64 || pread(fd, sz, w, (off_t)(shoff + (is64 ? 32 : 20))) != (ssize_t)w)
		return UINT64_MAX;
	return field(sz, w, msb);
}

/* The same for the file at PATH (opened only if it is a regular file).
 * False: the file could not be read (not a regular file, unreadable, its
 * notes not loaded, a bound passed). */
static bool read_notes(const char *path, points_t *p)
{
	int fd = open_regular(path);
	if (fd < 0)
		return false;
	if (sections_claimed(fd) > SECTIONS_MAX) {
		close(fd);
		return false;
	}
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	bool read = e && notes_of(e, p);
	if (e)
		elf_end(e);
	close(fd);
	return read;
}

/* Edit distance, for "nearest" (names are at most NAME_MAX_LEN). */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[NAME_MAX_LEN + 1];
	if (la > NAME_MAX_LEN || lb > NAME_MAX_LEN)
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* NEAR: the (up to) three names of P closest to NAME, within a third of
 * its length, ties by order seen; "" when none is that close. */
static void nearest(const points_t *p, const char *name, char *near, size_t near_cap)
{
	if (!near_cap)
		return;
	size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2, shown = 0, used = 0;
	for (size_t dist = 1; dist <= limit && shown < 3; dist++)
		for (size_t i = 0; i < p->n && shown < 3; i++) {
			if (distance(name, p->names[i]) != dist)
				continue;
			int w = snprintf(near + used, near_cap - used, "%s%s", shown ? ", " : "", p->names[i]);
			if (w < 0 || (size_t)w >= near_cap - used)
				break;
			used += (size_t)w;
			shown++;
		}
}

/* P's answer for the point it was asked, its names freed: 1 found; 0 not,
 * NEAR its nearest names; -1 cannot tell (no thoth note seen anywhere, or
 * a file that may hold points not read: ALL_READ false). */
static int answer(points_t *p, bool all_read, char *near, size_t near_cap)
{
	int known = p->found ? 1 : p->notes && all_read ? 0 : -1;
	if (known == 0)
		nearest(p, p->want, near, near_cap);
	free(p->names);
	return known;
}

int thothctl_probe_point_known(uint32_t pid, const char *name, char *near, size_t near_cap)
{
	if (near_cap)
		near[0] = '\0';
	char path[64];
	snprintf(path, sizeof path, "/proc/%u/maps", pid);
	FILE *maps = fopen(path, "re");
	if (!maps)
		return -1;
	elf_version(EV_CURRENT);
	points_t p = { .names = calloc(MAX_POINTS, NAME_MAX_LEN), .want = name, .budget = READ_TOTAL };
	char (*files)[4096] = calloc(MAX_FILES, 4096);
	if (!p.names || !files) {
		free(p.names);
		free(files);
		fclose(maps);
		return -1;
	}
	/* The executable by /proc/PID/exe (a rebuilt binary's path says
	 * "(deleted)"), then every other file mapped executable, once. */
	snprintf(path, sizeof path, "/proc/%u/exe", pid);
	bool all_read = read_notes(path, &p);
	char exe[4096];
	ssize_t el = readlink(path, exe, sizeof exe - 1);
	exe[el > 0 ? el : 0] = '\0';
	size_t nfiles = 0;
	char line[4608];
	while (fgets(line, sizeof line, maps)) {
		char perms[8];
		int at = 0;
		if (sscanf(line, "%*s %7s %*s %*s %*s %n", perms, &at) != 1 || perms[2] != 'x' || !at)
			continue;
		char *f = line + at;
		f[strcspn(f, "\n")] = '\0';
		if (f[0] != '/' || strcmp(f, exe) == 0)
			continue;
		if (strstr(f, " (deleted)")) {
			all_read = false;       /* its path names another file, or none */
			continue;
		}
		bool seen = false;
		for (size_t i = 0; i < nfiles && !seen; i++)
			seen = strcmp(files[i], f) == 0;
		if (seen)
			continue;
		if (nfiles == MAX_FILES || p.spent) {
			all_read = false;       /* nothing more is read */
			break;
		}
		snprintf(files[nfiles++], 4096, "%s", f);
		if (!read_notes(f, &p))
			all_read = false;
	}
	fclose(maps);
	free(files);
	return answer(&p, all_read, near, near_cap);
}

int thothctl_probe_points_in_image(const void *image, size_t len, const char *name, char *near, size_t near_cap)
{
	if (near_cap)
		near[0] = '\0';
	elf_version(EV_CURRENT);
	/* elf_memory wants a writable image; the caller's stays untouched */
	char *copy = malloc(len ? len : 1);
	points_t p = { .names = calloc(MAX_POINTS, NAME_MAX_LEN), .want = name, .budget = READ_TOTAL };
	if (!copy || !p.names) {
		free(copy);
		free(p.names);
		return -1;
	}
	memcpy(copy, image, len);
	Elf *e = elf_memory(copy, len);
	bool read = e && notes_of(e, &p);
	if (e)
		elf_end(e);
	free(copy);
	return answer(&p, read, near, near_cap);
}
