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
#include <unistd.h>

enum { MAX_FILES = 256, MAX_POINTS = 1024, NAME_MAX_LEN = 64 };

typedef struct points {
	char (*names)[NAME_MAX_LEN];
	size_t n;
	size_t notes;                   /* thoth notes seen, duplicates too */
} points_t;

static void add_point(points_t *p, const char *name, size_t len)
{
	p->notes++;
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

/* The "thoth" USDT notes of one ELF file into P.  A file that is not ELF,
 * or unreadable, adds nothing. */
static void read_notes(const char *path, points_t *p)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	size_t shstrndx;
	if (e && elf_kind(e) == ELF_K_ELF && elf_getshdrstrndx(e, &shstrndx) == 0) {
		/* the note's three addresses: pc, base, semaphore */
		size_t addrs = 3 * (gelf_getclass(e) == ELFCLASS32 ? 4 : 8);
		for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
			GElf_Shdr sh;
			const char *sname;
			if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE ||
			    !(sname = elf_strptr(e, shstrndx, sh.sh_name)) || strcmp(sname, ".note.stapsdt"))
				continue;
			Elf_Data *d = elf_getdata(scn, NULL);
			GElf_Nhdr nh;
			size_t off = 0, name_off, desc_off, next;
			while (d && (next = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
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
	}
	if (e)
		elf_end(e);
	close(fd);
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
	points_t p = { .names = calloc(MAX_POINTS, NAME_MAX_LEN) };
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
	read_notes(path, &p);
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
		if (f[0] != '/' || strstr(f, " (deleted)") || strcmp(f, exe) == 0)
			continue;
		bool seen = false;
		for (size_t i = 0; i < nfiles && !seen; i++)
			seen = strcmp(files[i], f) == 0;
		if (seen || nfiles == MAX_FILES)
			continue;
		snprintf(files[nfiles++], 4096, "%s", f);
		read_notes(f, &p);
	}
	fclose(maps);
	free(files);
	int known = -1;                 /* no thoth note anywhere: cannot tell */
	if (p.notes) {
		known = 0;
		for (size_t i = 0; i < p.n && !known; i++)
			known = strcmp(p.names[i], name) == 0;
	}
	if (known == 0 && near_cap) {
		/* the (up to) three closest within a third of the name, ties by order seen */
		size_t limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2, shown = 0, used = 0;
		for (size_t dist = 1; dist <= limit && shown < 3; dist++)
			for (size_t i = 0; i < p.n && shown < 3; i++) {
				if (distance(name, p.names[i]) != dist)
					continue;
				int w = snprintf(near + used, near_cap - used, "%s%s", shown ? ", " : "", p.names[i]);
				if (w < 0 || (size_t)w >= near_cap - used)
					break;
				used += (size_t)w;
				shown++;
			}
	}
	free(p.names);
	return known;
}
