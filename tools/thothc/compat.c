/*
 * compat.c - the wire-compatibility rules of docs/IDL.md, applied to two
 * versions of one schema.
 *
 * Identity on the wire is ordinals (fields, methods), values (enum
 * members) and bits (features); names are source-only.  So declarations
 * are matched by name at the top level (a type's name is how fields refer
 * to it), and by ordinal/value/bit inside them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"

typedef struct checker {
	const tidl_file_t *old_file, *new_file;
	tidl_program_t *diags;
	int breaks;
} checker_t;

/* One finding: a breaking change (error) or a harmless rename (warning).
 * LOC points into NEW, except for removals, which point into OLD. */
static void report(checker_t *c, bool is_break, tidl_loc_t loc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void report(checker_t *c, bool is_break, tidl_loc_t loc, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	const tidl_file_t *in = loc.file == c->old_file->path ? c->old_file : c->new_file;
	tidl_program_add_diag(c->diags, in, is_break ? TIDL_ERROR : TIDL_WARNING, loc, "%s", msg);
	if (is_break)
		c->breaks++;
}

static const tidl_decl_t *find(const tidl_file_t *f, tidl_decl_kind_t kind, const char *name)
{
	for (size_t i = 0; i < f->n_decls; i++)
		if (f->decls[i]->kind == kind && strcmp(f->decls[i]->name, name) == 0)
			return f->decls[i];
	return NULL;
}

/* Features are bits on the wire: the feature of F using BIT, or NULL. */
static const tidl_decl_t *find_bit(const tidl_file_t *f, uint32_t bit)
{
	for (size_t i = 0; i < f->n_decls; i++)
		if (f->decls[i]->kind == TIDL_DECL_FEATURE && f->decls[i]->u.feature.bit == bit)
			return f->decls[i];
	return NULL;
}

static const char *kind_word(tidl_decl_kind_t k)
{
	static const char *const w[] = { "feature", "enum", "struct", "interface", "error" };
	return w[k];
}

/* Structural type equality: kinds, list elements, declared types by
 * qualified name. */
static bool same_type(const tidl_type_t *a, const tidl_type_t *b)
{
	if (a->kind != b->kind)
		return false;
	if (a->kind == TIDL_LIST)
		return same_type(a->elem, b->elem);
	if (a->kind == TIDL_ENUM || a->kind == TIDL_STRUCT)
		return strcmp(a->decl->name, b->decl->name) == 0 &&
		       strcmp(a->decl->file->package, b->decl->file->package) == 0;
	return true;
}

static const char *tname(const tidl_type_t *t, char *buf)
{
	return tidl_type_name(t, buf, 128);
}

/* Something added to NEW must carry @since newer than OLD's version. */
static void check_added(checker_t *c, bool has_since, tidl_version_t since, tidl_loc_t loc,
			const char *what)
{
	tidl_version_t ov = c->old_file->version;
	if (!has_since)
		report(c, true, loc, "%s added without @since (must be newer than the old version %u.%u)",
		       what, ov.major, ov.minor);
	else if (tidl_version_cmp(since, ov) <= 0)
		report(c, true, loc, "%s added with @since(%u.%u), which is not newer than the old version %u.%u",
		       what, since.major, since.minor, ov.major, ov.minor);
}

static void check_fields(checker_t *c, const tidl_field_t *of, size_t on, const tidl_field_t *nf,
			 size_t nn, const char *owner, bool positional)
{
	char b1[128], b2[128], what[256];
	for (size_t i = 0; i < on; i++) {
		const tidl_field_t *o = &of[i], *n = NULL;
		for (size_t k = 0; k < nn; k++)
			if (nf[k].ordinal == o->ordinal)
				n = &nf[k];
		const char *unit = positional ? "parameter" : "field";
		if (!n) {
			const tidl_field_t *moved = NULL;
			for (size_t k = 0; k < nn; k++)
				if (strcmp(nf[k].name, o->name) == 0)
					moved = &nf[k];
			if (moved)
				report(c, true, moved->loc, "%s '%s' of %s renumbered from %u to %u", unit,
				       o->name, owner, o->ordinal, moved->ordinal);
			else if (positional)
				report(c, true, o->loc, "%s %u '%s' of %s removed", unit, o->ordinal,
				       o->name, owner);
			else
				report(c, true, o->loc, "%s %u '%s' of %s removed", unit, o->ordinal, o->name,
				       owner);
			continue;
		}
		if (!same_type(o->type, n->type))
			report(c, true, n->loc, "%s '%s' of %s changed type from %s to %s", unit, n->name,
			       owner, tname(o->type, b1), tname(n->type, b2));
		if (o->optional != n->optional)
			report(c, true, n->loc, "%s '%s' of %s changed from %s to %s", unit, n->name, owner,
			       o->optional ? "optional" : "required", n->optional ? "optional" : "required");
		if (strcmp(o->name, n->name) != 0)
			report(c, false, n->loc, "%s %u of %s renamed from '%s' to '%s' (compatible)", unit,
			       n->ordinal, owner, o->name, n->name);
	}
	for (size_t k = 0; k < nn; k++) {
		const tidl_field_t *n = &nf[k];
		bool existed = false;
		for (size_t i = 0; i < on; i++)
			if (of[i].ordinal == n->ordinal)
				existed = true;
		if (existed)
			continue;
		/* a new parameter or result can only be appended (ordinal = position,
		 * and the old ones all still exist): on the wire it is a new field */
		snprintf(what, sizeof what, "%s %u '%s' of %s", positional ? "parameter" : "field",
			 n->ordinal, n->name, owner);
		check_added(c, n->has_since, n->since, n->loc, what);
	}
}

static void check_enum(checker_t *c, const tidl_decl_t *o, const tidl_decl_t *n)
{
	if (o->u.enum_.underlying != n->u.enum_.underlying)
		report(c, true, n->loc, "enum '%s' changed its underlying type from %s to %s", n->name,
		       tidl_kind_name(o->u.enum_.underlying), tidl_kind_name(n->u.enum_.underlying));
	if (!o->u.enum_.strict && n->u.enum_.strict)
		report(c, true, n->loc, "enum '%s' became strict: old writers may send values new readers reject",
		       n->name);
	for (size_t i = 0; i < o->u.enum_.n_values; i++) {
		const tidl_enum_value_t *ov = &o->u.enum_.values[i], *nv = NULL, *same_name = NULL;
		for (size_t k = 0; k < n->u.enum_.n_values; k++) {
			if (n->u.enum_.values[k].value == ov->value)
				nv = &n->u.enum_.values[k];
			if (strcmp(n->u.enum_.values[k].name, ov->name) == 0)
				same_name = &n->u.enum_.values[k];
		}
		if (!nv && same_name)
			report(c, true, same_name->loc, "enum value '%s.%s' renumbered from %lld to %lld",
			       n->name, ov->name, (long long)ov->value, (long long)same_name->value);
		else if (!nv)
			report(c, true, ov->loc, "enum value '%s.%s' (%lld) removed", o->name, ov->name,
			       (long long)ov->value);
		else if (strcmp(nv->name, ov->name) != 0)
			report(c, false, nv->loc, "enum value %lld of '%s' renamed from '%s' to '%s' (compatible)",
			       (long long)nv->value, n->name, ov->name, nv->name);
	}
	for (size_t k = 0; k < n->u.enum_.n_values; k++) {
		const tidl_enum_value_t *nv = &n->u.enum_.values[k];
		bool existed = false;
		for (size_t i = 0; i < o->u.enum_.n_values; i++)
			if (o->u.enum_.values[i].value == nv->value)
				existed = true;
		if (existed)
			continue;
		char what[256];
		snprintf(what, sizeof what, "enum value '%s.%s'", n->name, nv->name);
		if (o->u.enum_.strict || n->u.enum_.strict)
			report(c, true, nv->loc, "%s added to a strict enum: old readers reject it", what);
		else
			check_added(c, nv->has_since, nv->since, nv->loc, what);
	}
}

static void check_interface(checker_t *c, const tidl_decl_t *o, const tidl_decl_t *n)
{
	char owner[300];
	for (size_t i = 0; i < o->u.iface.n_methods; i++) {
		const tidl_method_t *om = &o->u.iface.methods[i], *nm = NULL, *same_name = NULL;
		for (size_t k = 0; k < n->u.iface.n_methods; k++) {
			if (n->u.iface.methods[k].ordinal == om->ordinal)
				nm = &n->u.iface.methods[k];
			if (strcmp(n->u.iface.methods[k].name, om->name) == 0)
				same_name = &n->u.iface.methods[k];
		}
		if (!nm && same_name) {
			report(c, true, same_name->loc, "method '%s.%s' renumbered from %u to %u", n->name,
			       om->name, om->ordinal, same_name->ordinal);
			continue;
		}
		if (!nm) {
			report(c, true, om->loc, "method %u '%s.%s' removed", om->ordinal, o->name, om->name);
			continue;
		}
		snprintf(owner, sizeof owner, "method '%s.%s'", n->name, nm->name);
		if (strcmp(om->name, nm->name) != 0)
			report(c, false, nm->loc, "method %u of '%s' renamed from '%s' to '%s' (compatible)",
			       nm->ordinal, n->name, om->name, nm->name);
		if (om->oneway != nm->oneway)
			report(c, true, nm->loc, "%s changed from %s to %s", owner,
			       om->oneway ? "oneway" : "two-way", nm->oneway ? "oneway" : "two-way");
		/* the gate is the feature's bit (a renamed feature gates the same calls) */
		const char *or_ = om->requires ? om->requires->name : NULL;
		const char *nr = nm->requires ? nm->requires->name : NULL;
		if ((or_ == NULL) != (nr == NULL) ||
		    (or_ && om->requires->u.feature.bit != nm->requires->u.feature.bit))
			report(c, true, nm->loc, "%s changed @requires from %s to %s", owner,
			       or_ ? or_ : "(none)", nr ? nr : "(none)");
		char sub[340];
		snprintf(sub, sizeof sub, "the request of %s", owner);
		check_fields(c, om->params, om->n_params, nm->params, nm->n_params, sub, true);
		snprintf(sub, sizeof sub, "the response of %s", owner);
		check_fields(c, om->results, om->n_results, nm->results, nm->n_results, sub, true);
	}
	for (size_t k = 0; k < n->u.iface.n_methods; k++) {
		const tidl_method_t *nm = &n->u.iface.methods[k];
		bool existed = false;
		for (size_t i = 0; i < o->u.iface.n_methods; i++)
			if (o->u.iface.methods[i].ordinal == nm->ordinal ||
			    strcmp(o->u.iface.methods[i].name, nm->name) == 0)
				existed = true;
		if (existed)
			continue;
		snprintf(owner, sizeof owner, "method %u '%s.%s'", nm->ordinal, n->name, nm->name);
		check_added(c, nm->has_since, nm->since, nm->loc, owner);
	}
}

int thothc_compat_check(const tidl_file_t *of, const tidl_file_t *nf, tidl_program_t *diags)
{
	checker_t c = { of, nf, diags, 0 };
	if (strcmp(of->package, nf->package) != 0) {
		report(&c, true, nf->version_loc, "package changed from '%s' to '%s'", of->package,
		       nf->package);
		return c.breaks;
	}
	if (tidl_version_cmp(nf->version, of->version) < 0)
		report(&c, true, nf->version_loc, "version lowered from %u.%u to %u.%u",
		       of->version.major, of->version.minor, nf->version.major, nf->version.minor);
	else if (nf->version.major != of->version.major)
		report(&c, false, nf->version_loc,
		       "major version changed from %u to %u: peers of different majors refuse each other",
		       of->version.major, nf->version.major);

	for (size_t i = 0; i < of->n_decls; i++) {
		const tidl_decl_t *o = of->decls[i];
		const tidl_decl_t *n = find(nf, o->kind, o->name);
		if (!n) {
			if (o->kind == TIDL_DECL_ERROR)
				continue;       /* an error no method returns any more: harmless */
			const tidl_decl_t *same_bit = o->kind == TIDL_DECL_FEATURE ?
				find_bit(nf, o->u.feature.bit) : NULL;
			if (same_bit && !find(of, TIDL_DECL_FEATURE, same_bit->name))
				report(&c, false, same_bit->loc, "feature bit %u renamed from '%s' to '%s' (compatible)",
				       o->u.feature.bit, o->name, same_bit->name);
			else if (o->kind == TIDL_DECL_FEATURE)
				report(&c, true, o->loc, "feature '%s' (bit %u) removed", o->name,
				       o->u.feature.bit);
			else
				report(&c, true, o->loc, "%s '%s' removed", kind_word(o->kind), o->name);
			continue;
		}
		char owner[200];
		switch (o->kind) {
		case TIDL_DECL_FEATURE:
			if (o->u.feature.bit != n->u.feature.bit)
				report(&c, true, n->loc, "feature '%s' moved from bit %u to bit %u", n->name,
				       o->u.feature.bit, n->u.feature.bit);
			break;
		case TIDL_DECL_ERROR:
			if (o->u.error.code != n->u.error.code)
				report(&c, true, n->loc, "error '%s' changed its code from %u to %u", n->name,
				       o->u.error.code, n->u.error.code);
			break;
		case TIDL_DECL_ENUM:
			check_enum(&c, o, n);
			break;
		case TIDL_DECL_STRUCT:
			snprintf(owner, sizeof owner, "struct '%s'", n->name);
			check_fields(&c, o->u.struct_.fields, o->u.struct_.n_fields, n->u.struct_.fields,
				     n->u.struct_.n_fields, owner, false);
			break;
		case TIDL_DECL_INTERFACE:
			check_interface(&c, o, n);
			break;
		}
	}
	for (size_t i = 0; i < nf->n_decls; i++) {
		const tidl_decl_t *n = nf->decls[i];
		if (n->kind != TIDL_DECL_FEATURE || find(of, n->kind, n->name))
			continue;
		const tidl_decl_t *same_bit = find_bit(of, n->u.feature.bit);
		if (same_bit && !find(nf, TIDL_DECL_FEATURE, same_bit->name))
			continue;               /* a rename, reported above */
		char what[200];
		snprintf(what, sizeof what, "feature '%s'", n->name);
		check_added(&c, n->has_since, n->since, n->loc, what);
	}
	return c.breaks;
}
