/*
 * canon.c - the canonical text of a schema and its imports (canon.h):
 * what the schema hash of `thothc gen` is computed over, and what `thothc
 * check` compares when two files claim the same version.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "canon.h"

void sb_addf(strbuf_t *sb, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = sb->cap - sb->len;
		va_start(ap, fmt);
		int n = vsnprintf(sb->s ? sb->s + sb->len : NULL, sb->s ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if (sb->s && (size_t)n < room) {
			sb->len += (size_t)n;
			return;
		}
		size_t cap = sb->cap ? sb->cap : 256;
		while (cap < sb->len + (size_t)n + 1)
			cap *= 2;
		char *ns = realloc(sb->s, cap);
		if (!ns)
			abort();
		sb->s = ns;
		sb->cap = cap;
	}
}

/* ---- schema hash ----------------------------------------------------------
 * FNV-1a 64 over a canonical text of everything that matters on the wire
 * (package, version, declarations with ordinals, types, values, @since,
 * @requires, error codes) of the file and, recursively, its imports.  Names
 * are included: a rename without a version bump changes the hash, which the
 * contract check then reports as "schema changed without a version bump". */

static void canon_type(strbuf_t *s, const tidl_type_t *t)
{
	if (t->kind == TIDL_LIST) {
		sb_addf(s, "list<");
		canon_type(s, t->elem);
		sb_addf(s, ">");
	} else if (t->kind == TIDL_ENUM || t->kind == TIDL_STRUCT) {
		sb_addf(s, "%s.%s", t->decl->file->package, t->decl->name);
	} else {
		sb_addf(s, "%s", tidl_kind_name(t->kind));
	}
}

static void canon_since(strbuf_t *s, bool has, tidl_version_t v)
{
	if (has)
		sb_addf(s, "@%u.%u", v.major, v.minor);
}

static void canon_fields(strbuf_t *s, const tidl_field_t *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sb_addf(s, "%u:%s", f[i].ordinal, f[i].optional ? "?" : "");
		canon_type(s, f[i].type);
		sb_addf(s, " %s", f[i].name);
		canon_since(s, f[i].has_since, f[i].since);
		sb_addf(s, ";");
	}
}

static void canon_file(strbuf_t *s, const tidl_file_t *file, int depth)
{
	if (depth > 64)
		return;
	for (size_t i = 0; i < file->n_imports; i++)
		canon_file(s, file->imports[i].file, depth + 1);
	sb_addf(s, "package %s;version %u.%u;", file->package, file->version.major,
		file->version.minor);
	for (size_t i = 0; i < file->n_decls; i++) {
		const tidl_decl_t *d = file->decls[i];
		switch (d->kind) {
		case TIDL_DECL_FEATURE:
			sb_addf(s, "feature %s=%u", d->name, d->u.feature.bit);
			break;
		case TIDL_DECL_ERROR:
			sb_addf(s, "error %s=%u", d->name, d->u.error.code);
			break;
		case TIDL_DECL_ENUM:
			sb_addf(s, "%senum %s:%s{", d->u.enum_.strict ? "strict " : "", d->name,
				tidl_kind_name(d->u.enum_.underlying));
			for (size_t k = 0; k < d->u.enum_.n_values; k++) {
				const tidl_enum_value_t *v = &d->u.enum_.values[k];
				sb_addf(s, "%s=%llu", v->name, (unsigned long long)v->value);
				canon_since(s, v->has_since, v->since);
				sb_addf(s, ";");
			}
			for (size_t k = 0; k < d->u.enum_.n_reserved; k++)
				sb_addf(s, "reserved %llu;", (unsigned long long)d->u.enum_.reserved[k].value);
			sb_addf(s, "}");
			break;
		case TIDL_DECL_STRUCT:
			sb_addf(s, "struct %s{", d->name);
			canon_fields(s, d->u.struct_.fields, d->u.struct_.n_fields);
			/* reservations only when present: hashes of older schemas stay */
			for (size_t k = 0; k < d->u.struct_.n_reserved; k++) {
				const tidl_field_t *f = &d->u.struct_.reserved[k];
				sb_addf(s, "reserved %u", f->ordinal);
				if (f->type) {
					sb_addf(s, ":%s", f->optional ? "?" : "");
					canon_type(s, f->type);
				}
				sb_addf(s, ";");
			}
			sb_addf(s, "}");
			break;
		case TIDL_DECL_INTERFACE:
			sb_addf(s, "interface %s{", d->name);
			for (size_t k = 0; k < d->u.iface.n_methods; k++) {
				const tidl_method_t *m = &d->u.iface.methods[k];
				sb_addf(s, "%u:%s%s(", m->ordinal, m->oneway ? "oneway " : "", m->name);
				canon_fields(s, m->params, m->n_params);
				sb_addf(s, ")->(");
				canon_fields(s, m->results, m->n_results);
				sb_addf(s, ")");
				for (size_t e = 0; e < m->n_errors; e++)
					sb_addf(s, "!%s", m->errors[e]->name);
				if (m->requires)
					sb_addf(s, "#%s", m->requires->name);
				canon_since(s, m->has_since, m->since);
				sb_addf(s, ";");
			}
			for (size_t k = 0; k < d->u.iface.n_reserved; k++)
				sb_addf(s, "reserved %llu;", (unsigned long long)d->u.iface.reserved[k].value);
			sb_addf(s, "}");
			break;
		}
		canon_since(s, d->has_since, d->since);
		sb_addf(s, ";");
	}
}

/* What canon_file reads for F, imports and all, in source bytes: a file is
 * read once per path that reaches it, so a lattice of imports (each file
 * importing the next two) doubles it per level.  Memoised per file;
 * saturates at LIMIT. */
typedef struct canon_memo {
	const tidl_file_t *f;
	uint64_t n;
} canon_memo_t;

static uint64_t canon_reach(const tidl_file_t *f, int depth, canon_memo_t **memo, size_t *n_memo,
			    uint64_t limit)
{
	if (depth > 64)
		return 0;
	for (size_t i = 0; i < *n_memo; i++)
		if ((*memo)[i].f == f)
			return (*memo)[i].n;
	uint64_t n = f->source_len + 1;
	for (size_t i = 0; i < f->n_imports && n < limit; i++)
		n += canon_reach(f->imports[i].file, depth + 1, memo, n_memo, limit);
	if (n > limit)
		n = limit;
	canon_memo_t *m = realloc(*memo, (*n_memo + 1) * sizeof *m);
	if (!m)
		abort();
	*memo = m;
	m[(*n_memo)++] = (canon_memo_t){ f, n };
	return n;
}

uint64_t tidl_canon_reach(const tidl_file_t *f, uint64_t limit)
{
	canon_memo_t *memo = NULL;
	size_t n_memo = 0;
	uint64_t n = canon_reach(f, 0, &memo, &n_memo, limit);
	free(memo);
	return n;
}

char *tidl_canon_text(const tidl_file_t *f, size_t *len)
{
	strbuf_t s = { 0 };
	canon_file(&s, f, 0);
	sb_addf(&s, "%s", "");  /* an empty schema still gets a buffer */
	*len = s.len;
	return s.s;
}
