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
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "canon.h"
#include "compat.h"

typedef struct checker {
	const tidl_file_t *old_file, *new_file;
	tidl_program_t *diags;
	int breaks;
	/* Where OLD_FILE and NEW_FILE stand for a package spread over several
	 * files (thothc_compat_check): the files, to find the one a finding's
	 * location is in. */
	const tidl_file_t *const *parts;
	size_t n_parts;
	/* What a rename's warning ends with: "(compatible)", or, at an
	 * unchanged version, that only a raised version makes it so (the
	 * names are in the schema hash: thothc_compat_check's error). */
	const char *rename_note;
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
	for (size_t i = 0; i < c->n_parts; i++)
		if (loc.file == c->parts[i]->path)
			in = c->parts[i];
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

/* The layout of a slot: what must not change for old readers. */
static uint32_t slot_bytes(const tidl_type_t *t)
{
	tidl_kind_t k = t->kind == TIDL_ENUM ? t->decl->u.enum_.underlying : t->kind;
	switch (k) {
	case TIDL_BOOL: case TIDL_U8: case TIDL_I8: return 1;
	case TIDL_U16: case TIDL_I16: return 2;
	case TIDL_U32: case TIDL_I32: case TIDL_F32: return 4;
	case TIDL_U64: case TIDL_I64: case TIDL_F64: return 8;
	default: return 9;              /* pointer slot: 8 bytes, 4-aligned; unlike any scalar */
	}
}

static bool same_slot(const tidl_field_t *a, const tidl_field_t *b)
{
	return a->type && b->type && a->optional == b->optional &&
	       slot_bytes(a->type) == slot_bytes(b->type);
}

/* Binary search: sema sorts a struct's fields and reservations by ordinal,
 * and a parameter list's ordinals are its positions.  (A linear search per
 * field made `check` quadratic: 26 s on a 3.6 MB schema of 4,096-field
 * structs, the largest a file may be.) */
static const tidl_field_t *by_ordinal(const tidl_field_t *f, size_t n, uint32_t ord)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f[mid].ordinal == ord)
			return &f[mid];
		if (f[mid].ordinal < ord)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const char *slot_text(const tidl_field_t *f, char *buf)
{
	char t[128];
	snprintf(buf, 300, "reserved %u: %s%s%s%s;", f->ordinal, f->optional ? "optional " : "",
		 tidl_type_name(f->type, t, sizeof t), f->name ? " " : "", f->name ? f->name : "");
	return buf;
}

/* The field named NAME in F (N of them), or NULL. */
static const tidl_field_t *by_name(const tidl_field_t *f, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (f[i].name && strcmp(f[i].name, name) == 0)
			return &f[i];
	return NULL;
}

/*
 * Member AT (a field's or method's ordinal, an enum value) of OWNER, named
 * OLD_NAME in OLD and NEW_NAME in NEW.  A plain rename is harmless on the
 * wire (a warning): code using the old name stops compiling, so nobody
 * reads the slot under a name that meant something else.  But where
 * NEW_NAME was another member's name in OLD (at WAS; -1: it was no
 * member's: NULL), code using NEW_NAME still compiles and reaches slot AT:
 * two fields that swap names keeping their ordinals passed as compatible,
 * yet every program reading 'a' then got what old peers wrote as 'b' (and
 * a client calling method 'a' ran the old server's 'b').  That is breaking,
 * said once per swap, naming both (NOW: where OLD_NAME is in NEW, or NULL).
 */
static void check_rename(checker_t *c, const char *unit, const char *owner, uint64_t at,
			 const char *old_name, const char *new_name, tidl_loc_t loc, const uint64_t *was,
			 const uint64_t *now)
{
	if (!was || *was == at) {
		report(c, false, loc, "%s %lld of %s renamed from '%s' to '%s' %s", unit, (long long)at, owner,
		       old_name, new_name, c->rename_note);
		return;
	}
	if (now && *now == *was) {      /* a swap: said at the lower of the two */
		if (at < *was)
			report(c, true, loc,
			       "%ss %lld '%s' and %lld '%s' of %s swapped names: the slots stay, so code using "
			       "'%s' now reaches what old peers know as '%s' and the other way round, and "
			       "still compiles (keep the names, or give new ones)", unit, (long long)at,
			       old_name, (long long)*was, new_name, owner, new_name, old_name);
		return;
	}
	report(c, true, loc,
	       "%s %lld of %s renamed from '%s' to '%s', the old name of %s %lld: code using '%s' now "
	       "reaches what old peers know as '%s', and still compiles (give a name no member had)",
	       unit, (long long)at, owner, old_name, new_name, unit, (long long)*was, new_name, old_name);
}

/*
 * Fields of a struct (ORES/NRES: its reservations, NULL for parameter
 * lists) or a parameter/result list (POSITIONAL).  A slot is a field or a
 * typed reservation; old readers need every old slot at the same place
 * with the same layout, and new slots only after the old ones.
 */
static void check_fields(checker_t *c, const tidl_field_t *of, size_t on, const tidl_field_t *nf,
			 size_t nn, const char *owner, bool positional,
			 const tidl_field_t *ores, size_t onr, const tidl_field_t *nres, size_t nnr)
{
	char b1[128], b2[128], what[256], fix[300];
	const char *unit = positional ? "parameter" : "field";
	uint32_t old_last_slot = 0;     /* highest ordinal with a slot in OLD */
	for (size_t i = 0; i < on; i++)
		old_last_slot = of[i].ordinal > old_last_slot ? of[i].ordinal : old_last_slot;
	for (size_t i = 0; i < onr; i++)
		if (ores[i].type && ores[i].ordinal > old_last_slot)
			old_last_slot = ores[i].ordinal;

	for (size_t i = 0; i < on; i++) {
		const tidl_field_t *o = &of[i], *n = by_ordinal(nf, nn, o->ordinal);
		const tidl_field_t *r = n ? NULL : by_ordinal(nres, nnr, o->ordinal);
		if (r) {
			if (!o->optional)
				report(c, true, r->loc,
				       "required field %u '%s' of %s retired: old readers rely on it being set "
				       "and new writers leave it zero (only optional fields can be retired)",
				       o->ordinal, o->name, owner);
			else if (!r->type)
				report(c, true, r->loc,
				       "field %u '%s' of %s reserved without its type: its slot disappears and "
				       "the fields after it move for old readers (write '%s')", o->ordinal,
				       o->name, owner, slot_text(o, fix));
			else if (!same_slot(o, r))
				report(c, true, r->loc,
				       "reserved slot %u of %s is %s%s but the retired field '%s' was %s%s: "
				       "the slot's layout changes (write '%s')", r->ordinal, owner,
				       r->optional ? "optional " : "", tname(r->type, b1), o->name,
				       o->optional ? "optional " : "", tname(o->type, b2), slot_text(o, fix));
			else
				report(c, false, r->loc,
				       "field %u '%s' of %s retired, its slot kept (compatible: old readers see it absent)",
				       o->ordinal, o->name, owner);
			continue;
		}
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
			else if (o->optional)
				report(c, true, o->loc,
				       "field %u '%s' of %s removed without reserving its ordinal: the fields "
				       "after it move and the ordinal could be reused (retire it with '%s')",
				       o->ordinal, o->name, owner, slot_text(o, fix));
			else
				report(c, true, o->loc,
				       "field %u '%s' of %s removed: it is required, so old readers rely on it "
				       "(make it optional in one version, then retire it)", o->ordinal, o->name,
				       owner);
			continue;
		}
		if (!same_type(o->type, n->type))
			report(c, true, n->loc, "%s '%s' of %s changed type from %s to %s", unit, n->name,
			       owner, tname(o->type, b1), tname(n->type, b2));
		if (o->optional != n->optional)
			report(c, true, n->loc, "%s '%s' of %s changed from %s to %s", unit, n->name, owner,
			       o->optional ? "optional" : "required", n->optional ? "optional" : "required");
		if (strcmp(o->name, n->name) != 0) {
			const tidl_field_t *w = by_name(of, on, n->name), *m = by_name(nf, nn, o->name);
			uint64_t was = w ? w->ordinal : 0, now = m ? m->ordinal : 0;
			check_rename(c, unit, owner, o->ordinal, o->name, n->name, n->loc, w ? &was : NULL,
				     m ? &now : NULL);
		}
	}

	/* old reservations stay reserved, with the same slot */
	for (size_t i = 0; i < onr; i++) {
		const tidl_field_t *o = &ores[i];
		const tidl_field_t *n = by_ordinal(nf, nn, o->ordinal);
		const tidl_field_t *r = by_ordinal(nres, nnr, o->ordinal);
		if (n)
			report(c, true, n->loc,
			       "field '%s' reuses ordinal %u of %s, reserved in the old version (line %u): "
			       "old writers may still send the retired field there", n->name, o->ordinal,
			       owner, o->loc.line);
		else if (!r)
			report(c, true, o->loc,
			       "reservation of ordinal %u of %s dropped: a later version could reuse it "
			       "(a reservation is forever)", o->ordinal, owner);
		else if (o->type && !same_slot(o, r))
			report(c, true, r->loc, "reserved slot %u of %s changed its layout (write '%s')",
			       o->ordinal, owner, slot_text(o, fix));
	}

	/* new slots: appended after every old one */
	for (size_t k = 0; k < nn + nnr; k++) {
		const tidl_field_t *n = k < nn ? &nf[k] : &nres[k - nn];
		bool is_res = k >= nn;
		if (by_ordinal(of, on, n->ordinal) || by_ordinal(ores, onr, n->ordinal))
			continue;               /* matched above */
		if (is_res && !n->type)
			continue;               /* a fresh gap reserved: nothing on the wire */
		/* an old field that moved here is "renumbered" (above): calling it
		 * added too, without @since, said one change twice */
		bool moved = false;
		for (size_t i = 0; !is_res && i < on && !moved; i++)
			moved = strcmp(of[i].name, n->name) == 0 && !by_ordinal(nf, nn, of[i].ordinal) &&
				!by_ordinal(nres, nnr, of[i].ordinal);
		if (moved)
			continue;
		if (n->ordinal < old_last_slot) {
			report(c, true, n->loc,
			       "%s %u%s%s%s of %s added before the old version's last slot %u: the slots "
			       "after it move for old readers (append instead)", is_res ? "reserved slot" : unit,
			       n->ordinal, n->name ? " '" : "", n->name ? n->name : "", n->name ? "'" : "",
			       owner, old_last_slot);
			continue;
		}
		if (is_res)
			continue;               /* an appended reserved slot: always zero, old readers skip it */
		/* a new parameter or result can only be appended (ordinal = position,
		 * and the old ones all still exist): on the wire it is a new field */
		snprintf(what, sizeof what, "%s %u '%s' of %s", unit, n->ordinal, n->name, owner);
		check_added(c, n->has_since, n->since, n->loc, what);
	}
}

/* The reservation of value V in R, or NULL. */
static const tidl_reserved_t *find_res(const tidl_reserved_t *r, size_t n, uint64_t v)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].value == v)
			return &r[i];
	return NULL;
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
		const tidl_reserved_t *rv = nv ? NULL :
			find_res(n->u.enum_.reserved, n->u.enum_.n_reserved, ov->value);
		if (!nv && same_name)
			report(c, true, same_name->loc, "enum value '%s.%s' renumbered from %lld to %lld",
			       n->name, ov->name, (long long)ov->value, (long long)same_name->value);
		else if (rv && (o->u.enum_.strict || n->u.enum_.strict))
			report(c, true, rv->loc,
			       "enum value '%s.%s' (%lld) retired from a strict enum: old writers may still "
			       "send it and new strict readers reject it", n->name, ov->name,
			       (long long)ov->value);
		else if (rv)
			report(c, false, rv->loc,
			       "enum value '%s.%s' (%lld) retired, its value reserved (compatible: the enum "
			       "is flexible, so new readers keep it as an unknown value)", n->name, ov->name,
			       (long long)ov->value);
		else if (!nv)
			report(c, true, ov->loc,
			       "enum value '%s.%s' (%lld) removed without reserving its value (write "
			       "'reserved %lld;')", o->name, ov->name, (long long)ov->value,
			       (long long)ov->value);
		else if (strcmp(nv->name, ov->name) != 0) {
			/* the value the new name had in OLD, and the value the old name has now */
			const uint64_t *was = NULL, *now = same_name ? &same_name->value : NULL;
			for (size_t k = 0; k < o->u.enum_.n_values; k++)
				if (strcmp(o->u.enum_.values[k].name, nv->name) == 0)
					was = &o->u.enum_.values[k].value;
			char owner[300];
			snprintf(owner, sizeof owner, "'%s'", n->name);
			check_rename(c, "enum value", owner, ov->value, ov->name, nv->name, nv->loc, was, now);
		}
	}
	for (size_t i = 0; i < o->u.enum_.n_reserved; i++) {
		const tidl_reserved_t *orv = &o->u.enum_.reserved[i];
		const tidl_enum_value_t *user = NULL;
		for (size_t k = 0; k < n->u.enum_.n_values; k++)
			if (n->u.enum_.values[k].value == orv->value)
				user = &n->u.enum_.values[k];
		if (user)
			report(c, true, user->loc,
			       "enum value '%s.%s' reuses %lld, reserved in the old version (line %u): old "
			       "writers may still send it with its retired meaning", n->name, user->name,
			       (long long)orv->value, orv->loc.line);
		else if (!find_res(n->u.enum_.reserved, n->u.enum_.n_reserved, orv->value))
			report(c, true, orv->loc,
			       "reservation of value %lld of enum '%s' dropped: a later version could reuse "
			       "it (a reservation is forever)", (long long)orv->value, o->name);
	}
	for (size_t k = 0; k < n->u.enum_.n_values; k++) {
		const tidl_enum_value_t *nv = &n->u.enum_.values[k];
		if (find_res(o->u.enum_.reserved, o->u.enum_.n_reserved, nv->value))
			continue;               /* reported above */
		bool existed = false;   /* or renumbered, reported above */
		for (size_t i = 0; i < o->u.enum_.n_values; i++) {
			const tidl_enum_value_t *ov = &o->u.enum_.values[i];
			bool ov_kept = false;
			for (size_t j = 0; j < n->u.enum_.n_values; j++)
				ov_kept |= n->u.enum_.values[j].value == ov->value;
			if (ov->value == nv->value || (strcmp(ov->name, nv->name) == 0 && !ov_kept))
				existed = true;
		}
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
			const tidl_reserved_t *rm =
				find_res(n->u.iface.reserved, n->u.iface.n_reserved, om->ordinal);
			if (rm)
				report(c, false, rm->loc,
				       "method %u '%s.%s' retired, its ordinal reserved (compatible: old "
				       "clients calling it get THOTH_E_UNKNOWN_METHOD)", om->ordinal, o->name,
				       om->name);
			else
				report(c, true, om->loc,
				       "method %u '%s.%s' removed without reserving its ordinal: old clients "
				       "still call it and a later method could take the ordinal (write "
				       "'reserved %u;')", om->ordinal, o->name, om->name, om->ordinal);
			continue;
		}
		if (strcmp(om->name, nm->name) != 0) {
			/* the ordinal the new name had in OLD, the old name's now */
			uint64_t was = 0, now = same_name ? same_name->ordinal : 0;
			bool had = false;
			for (size_t k = 0; k < o->u.iface.n_methods; k++)
				if (strcmp(o->u.iface.methods[k].name, nm->name) == 0) {
					was = o->u.iface.methods[k].ordinal;
					had = true;
				}
			snprintf(owner, sizeof owner, "'%s'", n->name);
			check_rename(c, "method", owner, om->ordinal, om->name, nm->name, nm->loc,
				     had ? &was : NULL, same_name ? &now : NULL);
		}
		snprintf(owner, sizeof owner, "method '%s.%s'", n->name, nm->name);
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
		check_fields(c, om->params, om->n_params, nm->params, nm->n_params, sub, true,
			     NULL, 0, NULL, 0);
		snprintf(sub, sizeof sub, "the response of %s", owner);
		check_fields(c, om->results, om->n_results, nm->results, nm->n_results, sub, true,
			     NULL, 0, NULL, 0);
	}
	for (size_t i = 0; i < o->u.iface.n_reserved; i++) {
		const tidl_reserved_t *orm = &o->u.iface.reserved[i];
		const tidl_method_t *user = NULL;
		for (size_t k = 0; k < n->u.iface.n_methods; k++)
			if (n->u.iface.methods[k].ordinal == orm->value)
				user = &n->u.iface.methods[k];
		if (user)
			report(c, true, user->loc,
			       "method '%s.%s' reuses ordinal %u, reserved in the old version (line %u): old "
			       "clients may still call it with the retired method's arguments", n->name,
			       user->name, user->ordinal, orm->loc.line);
		else if (!find_res(n->u.iface.reserved, n->u.iface.n_reserved, orm->value))
			report(c, true, orm->loc,
			       "reservation of method ordinal %llu of interface '%s' dropped: a later "
			       "version could reuse it (a reservation is forever)",
			       (unsigned long long)orm->value, o->name);
	}
	for (size_t k = 0; k < n->u.iface.n_methods; k++) {
		const tidl_method_t *nm = &n->u.iface.methods[k];
		if (find_res(o->u.iface.reserved, o->u.iface.n_reserved, nm->ordinal))
			continue;               /* reported above */
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

static int check_parts(const tidl_file_t *of, const tidl_file_t *nf, const tidl_file_t *const *parts,
		       size_t n_parts, tidl_program_t *diags)
{
	checker_t c = { of, nf, diags, 0, parts, n_parts,
			tidl_version_cmp(of->version, nf->version) == 0 ?
				"(compatible only with the version raised)" : "(compatible)" };
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
				report(&c, false, same_bit->loc, "feature bit %u renamed from '%s' to '%s' %s",
				       o->u.feature.bit, o->name, same_bit->name, c.rename_note);
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
				     n->u.struct_.n_fields, owner, false, o->u.struct_.reserved,
				     o->u.struct_.n_reserved, n->u.struct_.reserved, n->u.struct_.n_reserved);
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

static int check_file(const tidl_file_t *of, const tidl_file_t *nf, tidl_program_t *diags)
{
	return check_parts(of, nf, NULL, 0, diags);
}

/* Every file ROOT imports, directly or not, ROOT first, each once, into
 * *OUT (malloc'ed); their number, or -1 without memory. */
static long import_closure(const tidl_file_t *root, const tidl_file_t ***out)
{
	size_t n = 0, cap = 16;
	const tidl_file_t **v = malloc(cap * sizeof *v);
	if (!v)
		return -1;
	v[n++] = root;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < v[i]->n_imports; k++) {
			const tidl_file_t *f = v[i]->imports[k].file;
			bool seen = !f;
			for (size_t j = 0; j < n && !seen; j++)
				seen = v[j] == f;
			if (seen)
				continue;
			if (n == cap) {
				const tidl_file_t **w = realloc(v, 2 * cap * sizeof *v);
				if (!w) {
					free(v);
					return -1;
				}
				v = w;
				cap *= 2;
			}
			v[n++] = f;
		}
	*out = v;
	return (long)n;
}

/* Do OF and NF claim one version with different schemas?  Then peers built
 * from them refuse each other at the handshake: the contract check compares
 * schema hashes when the versions are equal (docs/WIRE.md).  -1: the texts
 * are too large to build (gen refuses such a schema anyway). */
static int same_version_other_schema(const tidl_file_t *of, const tidl_file_t *nf)
{
	if (of == nf || tidl_version_cmp(of->version, nf->version) != 0)
		return 0;
	if (tidl_canon_reach(of, TIDL_CANON_LIMIT) >= TIDL_CANON_LIMIT ||
	    tidl_canon_reach(nf, TIDL_CANON_LIMIT) >= TIDL_CANON_LIMIT)
		return -1;
	size_t ol, nl;
	char *ot = tidl_canon_text(of, &ol), *nt = tidl_canon_text(nf, &nl);
	int differ = ol != nl || memcmp(ot, nt, ol) != 0;
	free(ot);
	free(nt);
	return differ;
}

/* One package's files (PARTS, N of them, N > 1) as one file: their
 * declarations in order, the highest version, the first file's path and
 * locations.  Its declarations are malloc'ed: free(out->decls). */
static int merge_parts(const tidl_file_t *const *parts, size_t n, tidl_file_t *out)
{
	*out = *parts[0];
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += parts[i]->n_decls;
	out->decls = malloc((total ? total : 1) * sizeof *out->decls);
	if (!out->decls)
		return -1;
	out->n_decls = 0;
	for (size_t i = 0; i < n; i++) {
		if (parts[i]->n_decls)  /* a file of no declarations may have none allocated */
			memcpy(out->decls + out->n_decls, parts[i]->decls,
			       parts[i]->n_decls * sizeof *out->decls);
		out->n_decls += parts[i]->n_decls;
		if (tidl_version_cmp(parts[i]->version, out->version) > 0) {
			out->version = parts[i]->version;
			out->version_loc = parts[i]->version_loc;
		}
	}
	return 0;
}

/* Every imported file of OLD's closure (OV, ON) and NEW's (NV, NN), index 0
 * the roots, compared package by package: a package in one file each file
 * against file; one spread over several, the union of its files'
 * declarations against the union (matching them file by file, by name or
 * else the first, made a file renamed or a struct moved between two files
 * of one package "removed").  -1 without memory. */
static int check_imports(const tidl_file_t **ov, long on, const tidl_file_t **nv, long nn,
			 tidl_program_t *diags)
{
	int breaks = 0;
	const tidl_file_t **parts = malloc((size_t)(on + nn) * sizeof *parts);
	if (!parts)
		return -1;
	for (long i = 1; i < nn; i++) {
		bool first = true;
		for (long k = 1; k < i && first; k++)
			first = strcmp(nv[k]->package, nv[i]->package) != 0;
		if (!first)
			continue;               /* its package was compared already */
		size_t no = 0, nn_ = 0;
		for (long j = 1; j < on; j++)
			if (strcmp(ov[j]->package, nv[i]->package) == 0)
				parts[no++] = ov[j];
		if (!no)
			continue;               /* a package NEW added has nothing to break */
		for (long k = i; k < nn; k++)
			if (strcmp(nv[k]->package, nv[i]->package) == 0)
				parts[no + nn_++] = nv[k];
		if (no == 1 && nn_ == 1) {
			breaks += check_file(parts[0], parts[1], diags);
			continue;
		}
		tidl_file_t mo, mn;
		if (merge_parts(parts, no, &mo))
			goto oom;
		if (merge_parts(parts + no, nn_, &mn)) {
			free(mo.decls);
			goto oom;
		}
		breaks += check_parts(&mo, &mn, parts, no + nn_, diags);
		free(mo.decls);
		free(mn.decls);
	}
	free(parts);
	return breaks;
oom:
	free(parts);
	return -1;
}

/*
 * The root files, then the imported files of NEW against OLD's, package
 * by package (check_imports): a struct or enum of an import travels inside
 * the root's messages, so changing it breaks the root's peers as surely as
 * changing the root.  An import NEW added has nothing to break; one NEW
 * dropped shows as the root's changed field types.
 */
int thothc_compat_check(const tidl_file_t *of, const tidl_file_t *nf, tidl_program_t *diags)
{
	int breaks = check_file(of, nf, diags);
	if (strcmp(of->package, nf->package) != 0)
		return breaks;
	/* Where the root's own change broke it already, the version staying
	 * is not a second breaking change (it counted one change twice). */
	if (!breaks && same_version_other_schema(of, nf) > 0) {
		tidl_program_add_diag(diags, nf, TIDL_ERROR, nf->version_loc,
				      "the schema changed (a name, a declaration, or an imported file) but "
				      "the version stays %u.%u: peers built from the two refuse each other "
				      "(\"schema changed without a version bump\"); raise the version",
				      nf->version.major, nf->version.minor);
		breaks++;
	}
	const tidl_file_t **ov = NULL, **nv = NULL;
	long on = import_closure(of, &ov), nn = on < 0 ? -1 : import_closure(nf, &nv);
	if (on < 0 || nn < 0) {
		free(ov);
		tidl_program_add_diag(diags, nf, TIDL_ERROR, nf->version_loc,
				      "out of memory comparing the imported files");
		return breaks + 1;
	}
	int ib = check_imports(ov, on, nv, nn, diags);
	free(ov);
	free(nv);
	if (ib < 0) {
		tidl_program_add_diag(diags, nf, TIDL_ERROR, nf->version_loc,
				      "out of memory comparing the imported files");
		return breaks + 1;
	}
	return breaks + ib;
}
