/*
 * load.c - loading .tidl files: read (regular files only, size
 * limit), parse, load imports (relative to the importer, cycles and depth
 * reported), check.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "front.h"

/* ---- loading files ---------------------------------------------------------- */

static int load(tidl_program_t *p, const char *path, const char *text, size_t len,
		tidl_loc_t from, tidl_file_t **out);

static char *read_file(tidl_program_t *p, const char *path, size_t *len, tidl_loc_t from,
		       const tidl_file_t *importer)
{
	/* O_NONBLOCK: opening a FIFO named by an import must not hang; only
	 * regular files are read, so a device or directory is refused. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		tidl_diag(p, importer, TIDL_ERROR, from, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		tidl_diag(p, importer, TIDL_ERROR, from, "cannot open '%s': not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)MAX_FILE_SIZE) {
		tidl_diag(p, importer, TIDL_ERROR, from, "'%s' is larger than %u bytes", path, MAX_FILE_SIZE);
		goto out;
	}
	size_t want = (size_t)st.st_size, n = 0;
	buf = tidl_palloc(p, want + 1);
	while (n < want) {
		ssize_t r = read(fd, buf + n, want - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			tidl_diag(p, importer, TIDL_ERROR, from, "cannot read '%s': %s", path, strerror(errno));
			buf = NULL;
			goto out;
		}
		if (r == 0)
			break;          /* the file shrank: parse what is there */
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
out:
	close(fd);
	return buf;
}

static const char *import_path(tidl_program_t *p, const char *importer, const char *rel)
{
	if (rel[0] == '/')
		return rel;
	const char *slash = strrchr(importer, '/');
	if (!slash)
		return rel;
	size_t dlen = (size_t)(slash - importer) + 1;
	char *r = tidl_palloc(p, dlen + strlen(rel) + 1);
	memcpy(r, importer, dlen);
	strcpy(r + dlen, rel);
	return r;
}

/* The file whose import is being loaded (its line is quoted in a diagnostic). */
static const tidl_file_t *importer_of(const tidl_program_t *p)
{
	if (p->n_loading)
		for (size_t i = 0; i < p->n_files; i++)
			if (strcmp(p->files[i]->path, p->loading[p->n_loading - 1]) == 0)
				return p->files[i];
	return NULL;
}

void tidl_program_add_memory_file(tidl_program_t *p, const char *path, const char *text, size_t len)
{
	struct mem_file *m = realloc(p->mem, (p->n_mem + 1) * sizeof *m);
	if (!m)
		abort();
	p->mem = m;
	m[p->n_mem++] = (struct mem_file){ tidl_pstrndup(p, path, strlen(path)), tidl_pstrndup(p, text, len), len };
}

static int load(tidl_program_t *p, const char *path, const char *text, size_t len,
		tidl_loc_t from, tidl_file_t **out)
{
	*out = NULL;
	for (size_t i = 0; i < p->n_loading; i++) {
		if (strcmp(p->loading[i], path) == 0) {
			char chain[1024] = "";
			for (size_t k = i; k < p->n_loading; k++) {
				strncat(chain, p->loading[k], sizeof chain - strlen(chain) - 1);
				strncat(chain, " -> ", sizeof chain - strlen(chain) - 1);
			}
			strncat(chain, path, sizeof chain - strlen(chain) - 1);
			tidl_diag(p, NULL, TIDL_ERROR, from, "import cycle: %s", chain);
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
			tidl_diag(p, importer_of(p), TIDL_ERROR, from, "cannot open '%s': no such file", path);
			return -1;
		}
		text = p->mem[i].text;          /* a copy in the arena, NUL-terminated */
		len = p->mem[i].len;
	} else if (!text) {
		char *buf = read_file(p, path, &len, from, importer_of(p));
		if (!buf)
			return -1;
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

	const char **nl = realloc(p->loading, (p->n_loading + 1) * sizeof *nl);
	if (!nl)
		abort();
	p->loading = nl;
	p->loading[p->n_loading++] = f->path;
	/* An import with errors of its own fails its importer: it may lack
	 * its package or its checked types, and sema would resolve names
	 * against it (a missing package was a NULL strlen: fuzz_tidl_files).
	 * Its errors are reported where they are. */
	bool import_failed = false;
	for (size_t i = 0; i < f->n_imports && !ps.failed; i++) {
		const char *ip = import_path(p, f->path, f->imports[i].path);
		if (load(p, ip, NULL, 0, f->imports[i].loc, &f->imports[i].file) != 0)
			import_failed = true;
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
	int r = load(p, path, NULL, 0, from, out);
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
	int r = load(p, name, text, len, from, out);
	return r || p->n_errors ? -1 : 0;
}
