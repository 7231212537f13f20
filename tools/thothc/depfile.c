/*
 * depfile.c - the text of `thothc gen --depfile` (depfile.h).
 */
#include "depfile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct out {
	char *s;
	size_t len, cap;
	bool failed;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
	if (o->failed)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 256;
		while (o->len + n + 1 > cap)
			cap *= 2;
		char *s2 = realloc(o->s, cap);
		if (!s2) {
			o->failed = true;
			return;
		}
		o->s = s2;
		o->cap = cap;
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

/* PATH as make reads one word.  Backslashes are doubled only before a
 * blank or at the end (elsewhere make and Ninja take a backslash as
 * itself: "a\b" stays; a last one would escape the blank that follows). */
static void put_path(out_t *o, const char *path)
{
	for (const char *c = path; *c; c++) {
		if (*c == '\\') {
			size_t run = strspn(c, "\\");
			put(o, c, run);
			if (c[run] == ' ' || c[run] == '\t' || c[run] == '\0')
				put(o, c, run);         /* doubled: then "\ " */
			c += run - 1;
		} else if (*c == ' ' || *c == '\t' || *c == '#') {
			put(o, "\\", 1);
			put(o, c, 1);
		} else if (*c == '$') {
			put(o, "$$", 2);
		} else {
			put(o, c, 1);
		}
	}
}

char *thothc_depfile_text(const char *const *targets, size_t n_targets, const char *const *deps,
			  size_t n_deps, size_t *len, const char **bad)
{
	for (size_t i = 0; i < n_targets + n_deps; i++) {
		const char *p = i < n_targets ? targets[i] : deps[i - n_targets];
		if (strpbrk(p, "\n\r")) {
			if (bad)
				*bad = p;
			errno = EINVAL;
			return NULL;
		}
	}
	out_t o = { 0 };
	for (size_t i = 0; i < n_targets; i++) {
		if (i)
			put(&o, " ", 1);
		put_path(&o, targets[i]);
	}
	put(&o, ":", 1);
	for (size_t i = 0; i < n_deps; i++) {
		put(&o, " \\\n  ", 5);
		put_path(&o, deps[i]);
	}
	put(&o, "\n", 1);
	if (o.failed) {
		free(o.s);
		errno = ENOMEM;
		return NULL;
	}
	*len = o.len;
	return o.s;
}
