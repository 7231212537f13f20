/*
 * load.c - loading .tidl files: read (regular files only, size
 * limit), parse, load imports (relative to the importer, cycles and depth
 * reported), check.
 */
#define _GNU_SOURCE             /* lstat */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

/* ---- loading files ---------------------------------------------------------- */

static int load(tidl_program_t *p, const char *path, const char *written, const char *text,
		size_t len, tidl_loc_t from, tidl_file_t **out);
static char *join_fold(tidl_program_t *p, const char *importer, const char *rel, bool on_disk);

/*
 * How a message names the file PATH that import "WRITTEN" of IMPORTER
 * became: as written, then the path thothc opened, and where a '..' after
 * a symlinked folder made that a place other than the import read as
 * written, the real one, saying why: "'../y.tidl' (looked for
 * link/../y.tidl, which is /srv/real/y.tidl: '..' after a symlinked folder
 * is its target's parent)".  The root file (no WRITTEN) and an import
 * whose path is what was written: just 'PATH'.
 */
static const char *describe(tidl_program_t *p, const char *importer, const char *written,
			    const char *path)
{
	size_t cap = 2 * strlen(path) + (written ? strlen(written) : 0) + PATH_MAX + 160;
	char *out = tidl_palloc(p, cap);
	if (!written || strcmp(written, path) == 0) {
		snprintf(out, cap, "'%s'", path);
		return out;
	}
	const char *lexical = join_fold(p, importer, written, false);
	const char *real = NULL;
	if (lexical && strcmp(lexical, path) != 0) {
		/* the folder's real path, then the file's name */
		const char *slash = strrchr(path, '/');
		size_t dl = slash ? (size_t)(slash - path) : 0;
		char *folder = tidl_pstrndup(p, slash ? path : ".", slash ? (dl ? dl : 1) : 1);
		char *rf = realpath(folder, NULL);
		if (rf) {
			const char *base = slash ? slash + 1 : path;
			size_t n = strlen(rf) + strlen(base) + 2;
			char *r = tidl_palloc(p, n);
			snprintf(r, n, "%s/%s", strcmp(rf, "/") ? rf : "", base);
			real = r;
			free(rf);
		}
	}
	if (real)
		snprintf(out, cap, "'%s' (looked for %s, which is %s: '..' after a symlinked folder is "
				   "its target's parent)", written, path, real);
	else
		snprintf(out, cap, "'%s' (looked for %s)", written, path);
	return out;
}

static char *read_file(tidl_program_t *p, const char *path, const char *written, size_t *len,
		       tidl_loc_t from, const tidl_file_t *importer, struct stat *id)
{
	const char *ipath = importer ? importer->path : NULL;
	/* O_NONBLOCK: opening a FIFO named by an import must not hang; only
	 * regular files are read, so a device or directory is refused. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		tidl_diag(p, importer, TIDL_ERROR, from, "cannot open %s: %s",
			  describe(p, ipath, written, path), strerror(e));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		tidl_diag(p, importer, TIDL_ERROR, from, "cannot open %s: not a regular file",
			  describe(p, ipath, written, path));
		goto out;
	}
	if (st.st_size > (off_t)MAX_FILE_SIZE) {
		tidl_diag(p, importer, TIDL_ERROR, from, "%s is larger than %u bytes",
			  describe(p, ipath, written, path), MAX_FILE_SIZE);
		goto out;
	}
	size_t want = (size_t)st.st_size, n = 0;
	buf = tidl_palloc(p, want + 1);
	while (n < want) {
		ssize_t r = read(fd, buf + n, want - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			tidl_diag(p, importer, TIDL_ERROR, from, "cannot read %s: %s",
				  describe(p, ipath, written, path), strerror(e));
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break;          /* the file shrank: parse what is there */
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
	*id = st;
out:
	close(fd);
	return buf;
}

/* Whether OUT[0..O) names a folder itself on disk, not a symlink to one
 * (lstat: the kernel follows the links before it, as it would). */
static bool real_folder(char *out, size_t o)
{
	struct stat st;
	char c = out[o];
	out[o] = 0;
	bool r = lstat(out, &st) == 0 && S_ISDIR(st.st_mode);
	out[o] = c;
	return r;
}

/* tidl_import_path, and on disk (ON_DISK) "x/.." folded only where x is a
 * real folder: after a symlinked folder the kernel's ".." leaves the link's
 * target, and after a missing one it fails; kept as written there, the
 * path names the file the kernel opens, never a different one. */
static char *join_fold(tidl_program_t *p, const char *importer, const char *rel, bool on_disk)
{
	size_t dlen = 0;
	if (rel[0] != '/' && importer) {
		const char *slash = strrchr(importer, '/');
		dlen = slash ? (size_t)(slash - importer) + 1 : 0;
	}
	size_t rlen = strlen(rel);
	if (dlen + rlen > MAX_PATH_LEN)
		return NULL;
	char *in = tidl_palloc(p, dlen + rlen + 1), *out = tidl_palloc(p, dlen + rlen + 2);
	if (dlen)
		memcpy(in, importer, dlen);
	memcpy(in + dlen, rel, rlen + 1);
	bool abs = in[0] == '/';
	size_t o = 0;
	if (abs)
		out[o++] = '/';
	size_t base = o;
	for (const char *c = in; *c;) {
		while (*c == '/')
			c++;
		const char *e = c;
		while (*e && *e != '/')
			e++;
		size_t n = (size_t)(e - c);
		if (n == 0 || (n == 1 && c[0] == '.')) {
			c = e;
			continue;
		}
		if (n == 2 && c[0] == '.' && c[1] == '.') {
			size_t last = o;        /* the start of the last component */
			while (last > base && out[last - 1] != '/')
				last--;
			bool up = o - last == 2 && out[last] == '.' && out[last + 1] == '.';
			if (o > base && !up && (!on_disk || real_folder(out, o))) {
				o = last > base ? last - 1 : base;      /* drop it and its '/' */
				c = e;
				continue;
			}
			if (o == base && abs) {         /* "/.." is "/" */
				c = e;
				continue;
			}
		}
		if (o > base)
			out[o++] = '/';
		memcpy(out + o, c, n);
		o += n;
		c = e;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = 0;
	return out;
}

char *tidl_import_path(tidl_program_t *p, const char *importer, const char *rel)
{
	return join_fold(p, importer, rel, false);
}

/* The file whose import is being loaded (its line is quoted in a diagnostic). */
static const tidl_file_t *importer_of(const tidl_program_t *p)
{
	return p->n_loading ? p->loading[p->n_loading - 1] : NULL;
}

/* "import cycle: a -> b -> a", from the I-th file of the import stack. */
static void cycle(tidl_program_t *p, size_t i, const char *path, tidl_loc_t from)
{
	char chain[1024] = "";
	for (size_t k = i; k < p->n_loading; k++) {
		strncat(chain, p->loading[k]->path, sizeof chain - strlen(chain) - 1);
		strncat(chain, " -> ", sizeof chain - strlen(chain) - 1);
	}
	strncat(chain, path, sizeof chain - strlen(chain) - 1);
	tidl_diag(p, NULL, TIDL_ERROR, from, "import cycle: %s", chain);
}

void tidl_program_add_memory_file(tidl_program_t *p, const char *path, const char *text, size_t len)
{
	struct mem_file *m = realloc(p->mem, (p->n_mem + 1) * sizeof *m);
	if (!m)
		abort();
	p->mem = m;
	/* spelled as the loader spells the imports it resolves */
	const char *norm = tidl_import_path(p, NULL, path);
	m[p->n_mem++] = (struct mem_file){ norm ? norm : tidl_pstrndup(p, path, strlen(path)),
					    tidl_pstrndup(p, text, len), len };
}

static int load(tidl_program_t *p, const char *path, const char *written, const char *text,
		size_t len, tidl_loc_t from, tidl_file_t **out)
{
	*out = NULL;
	for (size_t i = 0; i < p->n_loading; i++) {
		if (strcmp(p->loading[i]->path, path) == 0) {
			cycle(p, i, path, from);
			return -1;
		}
	}
	for (size_t i = 0; i < p->n_files; i++)
		if (strcmp(p->files[i]->path, path) == 0) {
			*out = p->files[i];
			return p->files[i]->failed ? -1 : 0;    /* a second importer fails too */
		}
	if (p->n_loading >= MAX_IMPORT_DEPTH) {
		tidl_diag(p, NULL, TIDL_ERROR, from, "imports nested deeper than %d", MAX_IMPORT_DEPTH);
		return -1;
	}
	tidl_file_t *f = tidl_palloc(p, sizeof *f);
	f->path = tidl_pstrndup(p, path, strlen(path));
	if (!text && p->n_mem) {
		size_t i = 0;
		while (i < p->n_mem && strcmp(p->mem[i].path, path) != 0)
			i++;
		if (i == p->n_mem) {
			const tidl_file_t *imp = importer_of(p);
			tidl_diag(p, imp, TIDL_ERROR, from, "cannot open %s: no such file",
				  describe(p, imp ? imp->path : NULL, written, path));
			return -1;
		}
		text = p->mem[i].text;          /* a copy in the arena, NUL-terminated */
		len = p->mem[i].len;
	} else if (!text) {
		struct stat id;
		char *buf = read_file(p, path, written, &len, from, importer_of(p), &id);
		if (!buf)
			return -1;
		/* The same file by another path (a symlink, a hard link, "./"
		 * in the root's path): one file, so a cycle through it is a
		 * cycle and a second import of it the same declarations, not
		 * a twin package whose names all clash. */
		for (size_t i = 0; i < p->n_loading; i++)
			if (p->loading[i]->on_disk && p->loading[i]->dev == (unsigned long long)id.st_dev &&
			    p->loading[i]->ino == (unsigned long long)id.st_ino) {
				cycle(p, i, path, from);
				return -1;
			}
		for (size_t i = 0; i < p->n_files; i++)
			if (p->files[i]->on_disk && p->files[i]->dev == (unsigned long long)id.st_dev &&
			    p->files[i]->ino == (unsigned long long)id.st_ino) {
				*out = p->files[i];
				return p->files[i]->failed ? -1 : 0;
			}
		f->on_disk = true;
		f->dev = (unsigned long long)id.st_dev;
		f->ino = (unsigned long long)id.st_ino;
		text = buf;
	} else {
		char *copy = tidl_palloc(p, len + 1);
		memcpy(copy, text, len);
		copy[len] = 0;
		text = copy;
	}
	f->source = text;
	f->source_len = len;

	parser_t ps = { .prog = p, .file = f, .s = text, .end = text + len, .cur = text,
			.line = 1, .col = 1 };
	size_t errors_before = p->n_errors;
	tidl_parse_file(&ps);

	tidl_file_t **nl = realloc(p->loading, (p->n_loading + 1) * sizeof *nl);
	if (!nl)
		abort();
	p->loading = nl;
	p->loading[p->n_loading++] = f;
	/* An import with errors of its own fails its importer: it may lack
	 * its package or its checked types, and sema would resolve names
	 * against it (a missing package was a NULL strlen: fuzz_tidl_files).
	 * Its errors are reported where they are. */
	bool import_failed = false;
	for (size_t i = 0; i < f->n_imports && !ps.failed; i++) {
		const char *rel = f->imports[i].path;
		/* memory files: as written; the disk: as the kernel resolves */
		const char *ip = join_fold(p, f->path, rel, !p->n_mem);
		if (!ip) {
			tidl_diag(p, f, TIDL_ERROR, f->imports[i].loc,
				  "import path longer than %d characters", MAX_PATH_LEN);
			import_failed = true;
		} else if (load(p, ip, rel, NULL, 0, f->imports[i].loc, &f->imports[i].file) != 0) {
			import_failed = true;
		}
		/* A file imported twice (under any spelling) is a mistake, and
		 * each copy doubled what the schema hash reads: 30 imports of
		 * the next file in a chain of six never finished gen. */
		for (size_t j = 0; j < i && f->imports[i].file; j++)
			if (f->imports[j].file == f->imports[i].file) {
				tidl_diag(p, f, TIDL_ERROR, f->imports[i].loc,
					  "'%s' is imported already, at line %u (as '%s')", rel,
					  f->imports[j].loc.line, f->imports[j].path);
				import_failed = true;
				break;
			}
	}
	if (import_failed)
		ps.failed = true;
	p->n_loading--;
	/* Grown here, after the imports: they add their own files first, so a
	 * capacity checked before them was stale (an import chain of 10 files
	 * wrote past the array: heap corruption, "corrupted size" at 80). */
	if (p->n_files == p->cap_files) {
		size_t cap = p->cap_files ? p->cap_files * 2 : 8;
		tidl_file_t **nf = realloc(p->files, cap * sizeof *nf);
		if (!nf)
			abort();
		p->files = nf;
		p->cap_files = cap;
	}
	p->files[p->n_files++] = f;
	if (!ps.failed) {
		for (size_t i = 0; i < f->n_imports; i++)
			if (!f->imports[i].file)
				ps.failed = true;
	}
	if (!ps.failed)
		tidl_sema_file(p, f);
	*out = f;
	f->failed = ps.failed || p->n_errors > errors_before;
	return f->failed ? -1 : 0;
}

int tidl_program_load(tidl_program_t *p, const char *path, tidl_file_t **out)
{
	tidl_loc_t from = { path, 0, 0 };
	int r = load(p, path, NULL, NULL, 0, from, out);
	return r || p->n_errors ? -1 : 0;
}

int tidl_program_load_buffer(tidl_program_t *p, const char *name, const char *text, size_t len,
			     tidl_file_t **out)
{
	tidl_loc_t from = { name, 0, 0 };
	if (len > MAX_FILE_SIZE) {
		tidl_diag(p, NULL, TIDL_ERROR, from, "input larger than %u bytes", MAX_FILE_SIZE);
		return -1;
	}
	int r = load(p, name, NULL, text, len, from, out);
	return r || p->n_errors ? -1 : 0;
}
