/*
 * lint.c - `thothc lint`: style and evolution hazards that are legal but
 * likely mistakes.  Every finding is a warning ending in its rule name:
 *
 *   [naming]         types, errors UpperCamelCase; fields, parameters,
 *                    methods, features lower_snake_case; enum values
 *                    UPPER_SNAKE_CASE; package components lower case
 *   [since]          a member after one with @since has none, or an older
 *                    one: ordinals only grow, so a later member is newer
 *   [unused-import]  nothing of an imported file is used
 *   [reuse]          a field takes the name of a retired (reserved) one; a
 *                    declaration has the name of one in an imported file
 *   [gap]            an ordinal below the highest is neither used nor
 *                    reserved, so it could be reused by accident
 *   [zero]           a (flexible) enum has no value 0, so a zero-initialised
 *                    or absent field holds a value it does not name (a
 *                    strict enum without one is sema's error)
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fmt.h"

typedef struct linter {
	const tidl_file_t *file;
	tidl_program_t *out;
	int n;
} linter_t;

static void finding(linter_t *l, tidl_loc_t loc, const char *rule, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void finding(linter_t *l, tidl_loc_t loc, const char *rule, const char *fmt, ...)
{
	char msg[500];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	tidl_program_add_diag(l->out, l->file, TIDL_WARNING, loc, "%s [%s]", msg, rule);
	l->n++;
}

static bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static bool is_dig(char c) { return c >= '0' && c <= '9'; }

static bool upper_camel(const char *s)
{
	if (!is_upper(s[0]))
		return false;
	for (; *s; s++)
		if (!is_lower(*s) && !is_upper(*s) && !is_dig(*s))
			return false;
	return true;
}

static bool lower_snake(const char *s)
{
	if (!is_lower(s[0]))
		return false;
	for (; *s; s++)
		if (!is_lower(*s) && !is_dig(*s) && *s != '_')
			return false;
	return true;
}

static bool upper_snake(const char *s)
{
	if (!is_upper(s[0]))
		return false;
	for (; *s; s++)
		if (!is_upper(*s) && !is_dig(*s) && *s != '_')
			return false;
	return true;
}

static void name_rule(linter_t *l, const char *name, tidl_loc_t loc, const char *what, int style)
{
	static const char *const want[] = { "UpperCamelCase", "lower_snake_case", "UPPER_SNAKE_CASE" };
	bool ok = style == 0 ? upper_camel(name) : style == 1 ? lower_snake(name) : upper_snake(name);
	if (!ok)
		finding(l, loc, "naming", "%s '%s' should be %s", what, name, want[style]);
}

/* Members in ordinal (or, for enum values, source) order: once one has
 * @since, every later one needs an @since at least as new. */
typedef struct since_run {
	bool seen;
	tidl_version_t v;
	const char *name;
} since_run_t;

static void since_rule(linter_t *l, since_run_t *r, bool has, tidl_version_t v, const char *name,
		       tidl_loc_t loc, const char *what)
{
	if (r->seen && !has)
		finding(l, loc, "since",
			"%s '%s' has no @since but follows '%s' @since(%u.%u): a member added after "
			"the first version needs @since", what, name, r->name, r->v.major, r->v.minor);
	else if (r->seen && tidl_version_cmp(v, r->v) < 0)
		finding(l, loc, "since", "%s '%s' @since(%u.%u) is older than '%s' @since(%u.%u) before it",
			what, name, v.major, v.minor, r->name, r->v.major, r->v.minor);
	if (has && (!r->seen || tidl_version_cmp(v, r->v) > 0)) {
		r->seen = true;
		r->v = v;
		r->name = name;
	}
}

static void fields_rules(linter_t *l, const tidl_field_t *f, size_t n, const char *what)
{
	since_run_t run = { 0 };
	for (size_t i = 0; i < n; i++) {
		name_rule(l, f[i].name, f[i].loc, what, 1);
		since_rule(l, &run, f[i].has_since, f[i].since, f[i].name, f[i].loc, what);
	}
}

static void mark_type(const tidl_type_t *t, const tidl_file_t *root, bool *used, size_t n_imports)
{
	while (t && t->kind == TIDL_LIST)
		t = t->elem;
	if (!t || !t->decl)
		return;
	for (size_t i = 0; i < n_imports; i++)
		if (root->imports[i].file == t->decl->file)
			used[i] = true;
}

static void mark_fields(const tidl_field_t *f, size_t n, const tidl_file_t *root, bool *used)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].type)
			mark_type(f[i].type, root, used, root->n_imports);
}

int thothc_lint(const tidl_file_t *root, tidl_program_t *findings)
{
	linter_t l = { root, findings, 0 };
	bool used[4096] = { false };
	size_t n_imp = root->n_imports < 4096 ? root->n_imports : 4096;

	for (const char *p = root->package; *p;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		bool ok = len && is_lower(p[0]);
		for (size_t i = 0; i < len; i++)
			ok = ok && (is_lower(p[i]) || is_dig(p[i]) || p[i] == '_');
		if (!ok)
			finding(&l, (tidl_loc_t){ root->path, 1, 1 }, "naming",
				"package '%s' should be lower case components (a.b.c)", root->package);
		if (!ok || !dot)
			break;
		p = dot + 1;
	}

	for (size_t i = 0; i < root->n_decls; i++) {
		const tidl_decl_t *d = root->decls[i];
		static const char *const kind[] = { "feature", "enum", "struct", "interface", "error" };
		name_rule(&l, d->name, d->loc, kind[d->kind], d->kind == TIDL_DECL_FEATURE ? 1 : 0);
		for (size_t k = 0; k < n_imp; k++) {
			const tidl_file_t *imp = root->imports[k].file;
			for (size_t j = 0; imp && j < imp->n_decls; j++)
				if (strcmp(imp->decls[j]->name, d->name) == 0 &&
				    imp->decls[j]->kind != TIDL_DECL_FEATURE && d->kind != TIDL_DECL_FEATURE)
					finding(&l, d->loc, "reuse",
						"%s '%s' has the name of a declaration of imported package '%s' "
						"(unqualified, the name means this file's)", kind[d->kind], d->name,
						imp->package);
		}
		switch (d->kind) {
		case TIDL_DECL_FEATURE:
		case TIDL_DECL_ERROR:
			break;
		case TIDL_DECL_ENUM: {
			since_run_t run = { 0 };
			for (size_t k = 0; k < d->u.enum_.n_values; k++) {
				const tidl_enum_value_t *v = &d->u.enum_.values[k];
				name_rule(&l, v->name, v->loc, "enum value", 2);
				since_rule(&l, &run, v->has_since, v->since, v->name, v->loc, "enum value");
			}
			/* A field of the enum that an older writer leaves out, or a
			 * C struct initialised with { 0 }, holds 0: a value the
			 * schema does not name (protobuf requires one; a strict
			 * enum here must have one). A reserved 0 is a choice made. */
			bool zero = false;
			for (size_t k = 0; k < d->u.enum_.n_values && !zero; k++)
				zero = d->u.enum_.values[k].value == 0;
			for (size_t k = 0; k < d->u.enum_.n_reserved && !zero; k++)
				zero = d->u.enum_.reserved[k].value == 0;
			if (!zero && !d->u.enum_.strict)
				finding(&l, d->loc, "zero",
					"enum '%s' has no value 0: an absent field, or one initialised to 0, "
					"holds a value it does not name; add one (UNSPECIFIED = 0;, say)",
					d->name);
			break;
		}
		case TIDL_DECL_STRUCT: {
			const tidl_field_t *f = d->u.struct_.fields, *r = d->u.struct_.reserved;
			size_t nf = d->u.struct_.n_fields, nr = d->u.struct_.n_reserved;
			fields_rules(&l, f, nf, "field");
			mark_fields(f, nf, root, used);
			mark_fields(r, nr, root, used);
			uint32_t max = 0;
			for (size_t k = 0; k < nf; k++)
				max = f[k].ordinal > max ? f[k].ordinal : max;
			for (uint32_t o = 1; o < max && o <= 4096; o++) {
				bool taken = false;
				for (size_t k = 0; k < nf && !taken; k++)
					taken = f[k].ordinal == o;
				for (size_t k = 0; k < nr && !taken; k++)
					taken = r[k].ordinal == o;
				if (!taken)
					finding(&l, d->loc, "gap",
						"ordinal %u of struct '%s' is neither a field nor reserved: "
						"write 'reserved %u;' so it is never reused by accident", o,
						d->name, o);
			}
			for (size_t k = 0; k < nf; k++)
				for (size_t j = 0; j < nr; j++)
					if (r[j].name && strcmp(r[j].name, f[k].name) == 0)
						finding(&l, f[k].loc, "reuse",
							"field '%s' has the name of the field retired at ordinal %u "
							"of struct '%s'", f[k].name, r[j].ordinal, d->name);
			break;
		}
		case TIDL_DECL_INTERFACE: {
			since_run_t run = { 0 };
			const tidl_method_t *ms = d->u.iface.methods;
			uint32_t max = 0;
			for (size_t k = 0; k < d->u.iface.n_methods; k++) {
				const tidl_method_t *m = &ms[k];
				char what[200];
				name_rule(&l, m->name, m->loc, "method", 1);
				since_rule(&l, &run, m->has_since, m->since, m->name, m->loc, "method");
				snprintf(what, sizeof what, "parameter of '%s'", m->name);
				fields_rules(&l, m->params, m->n_params, what);
				snprintf(what, sizeof what, "result of '%s'", m->name);
				fields_rules(&l, m->results, m->n_results, what);
				mark_fields(m->params, m->n_params, root, used);
				mark_fields(m->results, m->n_results, root, used);
				for (size_t e = 0; e < m->n_errors; e++)
					for (size_t k2 = 0; k2 < n_imp; k2++)
						if (m->errors[e] && root->imports[k2].file == m->errors[e]->file)
							used[k2] = true;
				max = m->ordinal > max ? m->ordinal : max;
			}
			for (uint32_t o = 1; o < max && o <= 4096; o++) {
				bool taken = false;
				for (size_t k = 0; k < d->u.iface.n_methods && !taken; k++)
					taken = ms[k].ordinal == o;
				for (size_t k = 0; k < d->u.iface.n_reserved && !taken; k++)
					taken = d->u.iface.reserved[k].value == o;
				if (!taken)
					finding(&l, d->loc, "gap",
						"method ordinal %u of interface '%s' is neither a method nor "
						"reserved: write 'reserved %u;' so it is never reused by accident",
						o, d->name, o);
			}
			break;
		}
		}
	}
	for (size_t k = 0; k < n_imp; k++)
		if (!used[k])
			finding(&l, root->imports[k].loc, "unused-import",
				"nothing of '%s' (package %s) is used", root->imports[k].path,
				root->imports[k].file ? root->imports[k].file->package : "?");
	return l.n;
}
