/*
 * sema.c - the semantic checks of docs/IDL.md ("Checks") on one
 * parsed file: names, types, ordinals, reservations, values, recursion.
 * Every error is reported, not only the first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"

/* ---- semantic checks --------------------------------------------------------- */

static int cmp_field(const void *a, const void *b)
{
	const tidl_field_t *x = a, *y = b;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static int cmp_method(const void *a, const void *b)
{
	const tidl_method_t *x = a, *y = b;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static tidl_decl_t *find_local(tidl_file_t *f, const char *name)
{
	for (size_t i = 0; i < f->n_decls; i++)
		if (strcmp(f->decls[i]->name ? f->decls[i]->name : "", name) == 0)
			return f->decls[i];
	return NULL;
}

tidl_decl_t *tidl_file_find_decl(tidl_file_t *file, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot) {
		size_t plen = (size_t)(dot - name);
		if (strlen(file->package) == plen && strncmp(file->package, name, plen) == 0)
			return find_local(file, dot + 1);
		for (size_t i = 0; i < file->n_imports; i++) {
			tidl_file_t *imp = file->imports[i].file;
			if (imp && strlen(imp->package) == plen && strncmp(imp->package, name, plen) == 0) {
				tidl_decl_t *d = find_local(imp, dot + 1);
				if (d)
					return d;
			}
		}
		return NULL;
	}
	tidl_decl_t *d = find_local(file, name);
	if (d)
		return d;
	for (size_t i = 0; i < file->n_imports; i++)
		if (file->imports[i].file && (d = find_local(file->imports[i].file, name)))
			return d;
	return NULL;
}

static void check_since(tidl_program_t *p, tidl_file_t *f, bool has, tidl_version_t v,
			tidl_loc_t loc, const char *what)
{
	if (has && tidl_version_cmp(v, f->version) > 0)
		tidl_diag(p, f, TIDL_ERROR, loc, "@since(%u.%u) on %s is newer than the file's version %u.%u",
		     v.major, v.minor, what, f->version.major, f->version.minor);
}

static void resolve_type(tidl_program_t *p, tidl_file_t *f, tidl_type_t *t)
{
	if (t->kind == TIDL_LIST) {
		resolve_type(p, f, t->elem);
		return;
	}
	if (!t->ref_name)
		return;
	tidl_decl_t *d = tidl_file_find_decl(f, t->ref_name);
	if (!d) {
		/* a built-in spelt as elsewhere ("uint32", "strng"), a
		 * misspelt "optional", or a near name of this file's types;
		 * looked for only while errors are still shown (each look
		 * compares with every declaration: a file of 80000 unknown
		 * types took minutes for hints nobody saw) */
		bool look = !strchr(t->ref_name, '.') && p->n_diags < MAX_DIAGS;
		const char *near = look ? tidl_builtin_hint(t->ref_name) : NULL;
		/* the nearest of them all: one at a time, the first near one
		 * was named ("Abcdxg": "Abcdef", two edits, before "Abcdeg") */
		const char **names = !near && look ? malloc((f->n_decls + 1) * sizeof *names) : NULL;
		if (names) {
			size_t k = 0;
			for (size_t i = 0; i < f->n_decls; i++) {
				const tidl_decl_t *c = f->decls[i];
				if ((c->kind == TIDL_DECL_STRUCT || c->kind == TIDL_DECL_ENUM) && c->name)
					names[k++] = c->name;
			}
			names[k] = NULL;
			near = tidl_near_word(t->ref_name, strlen(t->ref_name), names);
			free(names);
		}
		if (near)
			tidl_diag(p, f, TIDL_ERROR, t->loc, "unknown type '%s'; did you mean '%s'?",
				  t->ref_name, near);
		else
			tidl_diag(p, f, TIDL_ERROR, t->loc, "unknown type '%s'", t->ref_name);
		return;
	}
	if (d->file != f && !strchr(t->ref_name, '.')) {
		/* an unqualified name from an import must be unique across the imports */
		for (size_t i = 0; i < f->n_imports; i++) {
			tidl_file_t *imp = f->imports[i].file;
			tidl_decl_t *other = imp && imp != d->file ? find_local(imp, t->ref_name) : NULL;
			if (other && strcmp(imp->package, d->file->package) != 0) {
				tidl_diag(p, f, TIDL_ERROR, t->loc,
				     "ambiguous type '%s': declared in '%s' and '%s'; write %s.%s",
				     t->ref_name, d->file->package, imp->package, d->file->package,
				     t->ref_name);
				return;
			}
		}
	}
	if (d->kind == TIDL_DECL_ENUM)
		t->kind = TIDL_ENUM;
	else if (d->kind == TIDL_DECL_STRUCT)
		t->kind = TIDL_STRUCT;
	else {
		tidl_diag(p, f, TIDL_ERROR, t->loc, "'%s' is not a type (it is %s)", t->ref_name,
		     d->kind == TIDL_DECL_FEATURE ? "a feature" :
		     d->kind == TIDL_DECL_ERROR ? "an error" : "an interface");
		return;
	}
	t->decl = d;
}

/* Sort keys of check_fields' duplicate search: by name or ordinal, then
 * by position (so the first of equals comes first). */
static const tidl_field_t *dup_fields;

static int cmp_field_name_at(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(dup_fields[x].name, dup_fields[y].name);
	return c ? c : (x > y) - (x < y);
}

static int cmp_field_ordinal_at(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const tidl_field_t *fx = &dup_fields[x], *fy = &dup_fields[y];
	/* bad ordinals (already reported) match nothing: they sort apart */
	if (fx->bad_ordinal != fy->bad_ordinal)
		return fx->bad_ordinal ? 1 : -1;
	if (fx->ordinal != fy->ordinal)
		return fx->ordinal < fy->ordinal ? -1 : 1;
	return (x > y) - (x < y);
}

/* FIRST[i]: the first field before I with I's name (BY_ORDINAL: ordinal),
 * or SIZE_MAX.  Sorted, not pairwise: a struct of 4,096 fields was 8 M
 * strcmp a load (thothc check read 3.6 MB of them for 26 s). */
static void first_same(const tidl_field_t *fields, size_t n, bool by_ordinal, size_t *first,
		       size_t *idx)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i, first[i] = SIZE_MAX;
	dup_fields = fields;
	qsort(idx, n, sizeof *idx, by_ordinal ? cmp_field_ordinal_at : cmp_field_name_at);
	for (size_t i = 1, head = idx[0]; i < n; i++) {
		const tidl_field_t *a = &fields[head], *b = &fields[idx[i]];
		bool same = by_ordinal ? !a->bad_ordinal && !b->bad_ordinal && a->ordinal == b->ordinal
				       : strcmp(a->name, b->name) == 0;
		if (same)
			first[idx[i]] = head;
		else
			head = idx[i];
	}
}

static void check_fields(tidl_program_t *p, tidl_file_t *f, tidl_field_t *fields, size_t n,
			 const char *owner, bool positional)
{
	size_t *buf = n ? malloc(3 * n * sizeof *buf) : NULL;
	if (n && !buf)
		abort();
	size_t *name_first = buf, *ord_first = n ? buf + n : NULL, *idx = n ? buf + 2 * n : NULL;
	if (n) {
		first_same(fields, n, false, name_first, idx);
		first_same(fields, n, true, ord_first, idx);
	}
	for (size_t i = 0; i < n; i++) {
		resolve_type(p, f, fields[i].type);
		check_since(p, f, fields[i].has_since, fields[i].since, fields[i].loc, "a field");
		size_t k = name_first[i];
		if (k != SIZE_MAX)
			tidl_diag(p, f, TIDL_ERROR, fields[i].loc, "duplicate name '%s' in %s (first at line %u)",
			     fields[i].name, owner, fields[k].loc.line);
		k = ord_first[i];
		if (!positional && k != SIZE_MAX)
			tidl_diag(p, f, TIDL_ERROR, fields[i].loc,
			     "duplicate ordinal %u in %s (first used at %s:%u:%u)", fields[i].ordinal,
			     owner, fields[k].loc.file, fields[k].loc.line, fields[k].loc.col);
	}
	free(buf);
	if (positional)
		return;
	/* gaps are allowed (docs/WIRE.md: a gap has no slot); 0 is not */
	for (size_t i = 0; i < n; i++)
		if (fields[i].ordinal == 0)
			tidl_diag(p, f, TIDL_ERROR, fields[i].loc, "ordinals start at 1 in %s", owner);
	if (n)
		qsort(fields, n, sizeof *fields, cmp_field);
}

/* Reserved ordinals of a struct: >= 1, unique, not used by a field; a
 * typed reservation's type resolves like a field's. */
static void check_struct_reserved(tidl_program_t *p, tidl_file_t *f, tidl_decl_t *d)
{
	tidl_field_t *res = d->u.struct_.reserved;
	size_t n = d->u.struct_.n_reserved;
	for (size_t i = 0; i < n; i++) {
		if (res[i].type)
			resolve_type(p, f, res[i].type);
		if (res[i].ordinal == 0)
			tidl_diag(p, f, TIDL_ERROR, res[i].loc, "ordinals start at 1 in struct '%s'", d->name);
		bool twice = res[i].bad_ordinal;       /* and no field check either */
		for (size_t k = 0; k < i && !twice; k++)
			if (res[k].ordinal == res[i].ordinal && !res[k].bad_ordinal) {
				tidl_diag(p, f, TIDL_ERROR, res[i].loc,
				     "ordinal %u of struct '%s' is reserved twice (first at line %u)",
				     res[i].ordinal, d->name, res[k].loc.line);
				twice = true;
			}
		for (size_t k = 0; k < d->u.struct_.n_fields && !twice; k++) {
			const tidl_field_t *fl = &d->u.struct_.fields[k];
			if (fl->ordinal == res[i].ordinal && !fl->bad_ordinal)
				tidl_diag(p, f, TIDL_ERROR, fl->loc,
				     "field '%s' uses ordinal %u, which struct '%s' reserves at line %u",
				     fl->name, fl->ordinal, d->name, res[i].loc.line);
		}
	}
	if (n)
		qsort(res, n, sizeof *res, cmp_field);
}

static int cmp_reserved(const void *a, const void *b)
{
	const tidl_reserved_t *x = a, *y = b;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* Reserved method ordinals or enum values: unique among themselves (what
 * they are checked against is the caller's). */
static void check_reserved_unique(tidl_program_t *p, tidl_file_t *f, tidl_reserved_t *res,
				  size_t n, const char *what, const char *owner, bool is_signed)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < i && !res[i].bad_ordinal; k++)
			if (res[k].value == res[i].value && !res[k].bad_ordinal) {
				if (is_signed)
					tidl_diag(p, f, TIDL_ERROR, res[i].loc,
					     "%s %lld of %s is reserved twice (first at line %u)", what,
					     (long long)res[i].value, owner, res[k].loc.line);
				else
					tidl_diag(p, f, TIDL_ERROR, res[i].loc,
					     "%s %llu of %s is reserved twice (first at line %u)", what,
					     (unsigned long long)res[i].value, owner, res[k].loc.line);
				break;
			}
}

/*
 * By-value containment cycles.  A struct that holds itself through struct
 * fields (required or optional; both are stored inline) has no finite
 * encoding; through list<> it is fine.  Imports are acyclic, so such a
 * cycle lies within one file: Tarjan's strongly connected components over
 * the file's structs, edges = by-value struct fields.  One error per cycle,
 * at its first struct in source order.
 */
typedef struct scc_state {
	tidl_decl_t **nodes;            /* the file's structs, in source order */
	size_t n;
	struct scc_key { const tidl_decl_t *decl; size_t node; } *by_addr;  /* sorted by decl */
	size_t *index, *low, *comp;     /* per node; index 0 = unvisited */
	size_t *stack, depth, next_index, n_comps;
	bool *on_stack;
} scc_state_t;

static int cmp_scc_key(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct scc_key *)a)->decl;
	uintptr_t y = (uintptr_t)((const struct scc_key *)b)->decl;
	return x < y ? -1 : x > y;
}

static size_t scc_node(const scc_state_t *s, const tidl_decl_t *d)
{
	struct scc_key key = { d, 0 };
	const struct scc_key *k = s->n ? bsearch(&key, s->by_addr, s->n, sizeof key, cmp_scc_key) : NULL;
	return k ? k->node : SIZE_MAX;  /* not found: an imported struct cannot close a cycle */
}

static size_t by_value_target(const scc_state_t *s, const tidl_field_t *f)
{
	if (f->type->kind != TIDL_STRUCT || !f->type->decl)
		return SIZE_MAX;
	return scc_node(s, f->type->decl);
}

static void scc_visit(scc_state_t *s, size_t v)
{
	s->index[v] = s->low[v] = ++s->next_index;
	s->stack[s->depth++] = v;
	s->on_stack[v] = true;
	const tidl_decl_t *d = s->nodes[v];
	for (size_t i = 0; i < d->u.struct_.n_fields; i++) {
		size_t w = by_value_target(s, &d->u.struct_.fields[i]);
		if (w == SIZE_MAX)
			continue;
		if (!s->index[w]) {
			scc_visit(s, w);
			if (s->low[w] < s->low[v])
				s->low[v] = s->low[w];
		} else if (s->on_stack[w] && s->index[w] < s->low[v]) {
			s->low[v] = s->index[w];
		}
	}
	if (s->low[v] != s->index[v])
		return;
	size_t w, comp = s->n_comps++;
	do {
		w = s->stack[--s->depth];
		s->on_stack[w] = false;
		s->comp[w] = comp;
	} while (w != v);
}

static void check_recursion(tidl_program_t *p, tidl_file_t *f)
{
	scc_state_t s = { 0 };
	size_t cap = f->n_decls ? f->n_decls : 1;
	s.nodes = calloc(cap, sizeof *s.nodes);
	s.index = calloc(cap, sizeof *s.index);
	s.low = calloc(cap, sizeof *s.low);
	s.comp = calloc(cap, sizeof *s.comp);
	s.stack = calloc(cap, sizeof *s.stack);
	s.on_stack = calloc(cap, sizeof *s.on_stack);
	s.by_addr = calloc(cap, sizeof *s.by_addr);
	bool *reported = calloc(cap, sizeof *reported);
	if (!s.nodes || !s.index || !s.low || !s.comp || !s.stack || !s.on_stack || !s.by_addr ||
	    !reported)
		abort();
	for (size_t i = 0; i < f->n_decls; i++)
		if (f->decls[i]->kind == TIDL_DECL_STRUCT) {
			s.by_addr[s.n] = (struct scc_key){ f->decls[i], s.n };
			s.nodes[s.n++] = f->decls[i];
		}
	if (s.n)
		qsort(s.by_addr, s.n, sizeof *s.by_addr, cmp_scc_key);
	for (size_t v = 0; v < s.n; v++)
		if (!s.index[v])
			scc_visit(&s, v);       /* depth <= MAX_MEMBERS structs */
	for (size_t v = 0; v < s.n; v++) {
		const tidl_decl_t *d = s.nodes[v];
		for (size_t i = 0; i < d->u.struct_.n_fields && !reported[s.comp[v]]; i++) {
			size_t w = by_value_target(&s, &d->u.struct_.fields[i]);
			if (w == SIZE_MAX || s.comp[w] != s.comp[v])
				continue;
			reported[s.comp[v]] = true;
			tidl_diag(p, f, TIDL_ERROR, d->loc,
			     "recursive struct '%s' (through field '%s'); use a list", d->name,
			     d->u.struct_.fields[i].name);
		}
	}
	free(s.nodes);
	free(s.index);
	free(s.low);
	free(s.comp);
	free(s.stack);
	free(s.on_stack);
	free(s.by_addr);
	free(reported);
}

static bool fits(tidl_kind_t k, uint64_t v)
{
	int64_t s = (int64_t)v;
	switch (k) {
	case TIDL_U8: return v <= UINT8_MAX;
	case TIDL_U16: return v <= UINT16_MAX;
	case TIDL_U32: return v <= UINT32_MAX;
	case TIDL_U64: return true;
	case TIDL_I8: return s >= INT8_MIN && s <= INT8_MAX;
	case TIDL_I16: return s >= INT16_MIN && s <= INT16_MAX;
	case TIDL_I32: return s >= INT32_MIN && s <= INT32_MAX;
	case TIDL_I64: return true;
	default: return false;
	}
}

void tidl_sema_file(tidl_program_t *p, tidl_file_t *f)
{
	for (size_t i = 0; i < f->n_decls; i++) {
		tidl_decl_t *d = f->decls[i];
		for (size_t k = 0; k < i; k++)
			if (strcmp(f->decls[k]->name, d->name) == 0) {
				tidl_diag(p, f, TIDL_ERROR, d->loc, "'%s' is already declared at line %u", d->name,
				     f->decls[k]->loc.line);
				break;
			}
		check_since(p, f, d->has_since, d->since, d->loc, d->name);
		/* "struct string { ... }": every 'string' in a type means the
		 * built-in, so this type could only be reached qualified, and a
		 * field written 'string s;' silently was not of it */
		static const char *const builtin_types[] = {
			"bool", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64",
			"string", "bytes", "list",
		};
		for (size_t k = 0; (d->kind == TIDL_DECL_STRUCT || d->kind == TIDL_DECL_ENUM) &&
				   k < sizeof builtin_types / sizeof builtin_types[0]; k++)
			if (strcmp(d->name, builtin_types[k]) == 0)
				tidl_diag(p, f, TIDL_ERROR, d->loc,
					  "%s '%s' is named like the built-in type: a field of type '%s' "
					  "means the built-in, never this %s; rename it",
					  d->kind == TIDL_DECL_STRUCT ? "struct" : "enum", d->name, d->name,
					  d->kind == TIDL_DECL_STRUCT ? "struct" : "enum");
		switch (d->kind) {
		case TIDL_DECL_FEATURE:
			if (d->u.feature.bit > 63)
				tidl_diag(p, f, TIDL_ERROR, d->loc, "feature bit of '%s' must be 0..63", d->name);
			for (size_t k = 0; k < i; k++)
				if (f->decls[k]->kind == TIDL_DECL_FEATURE &&
				    f->decls[k]->u.feature.bit == d->u.feature.bit && d->u.feature.bit <= 63)
					tidl_diag(p, f, TIDL_ERROR, d->loc, "feature bit %u already used by '%s'",
					     d->u.feature.bit, f->decls[k]->name);
			break;
		case TIDL_DECL_ERROR:
			if (d->u.error.code == 0)
				tidl_diag(p, f, TIDL_ERROR, d->loc, "error code of '%s' must be 1..4294967295", d->name);
			for (size_t k = 0; k < i; k++)
				if (f->decls[k]->kind == TIDL_DECL_ERROR &&
				    f->decls[k]->u.error.code == d->u.error.code)
					tidl_diag(p, f, TIDL_ERROR, d->loc, "error code %u already used by '%s'",
					     d->u.error.code, f->decls[k]->name);
			break;
		case TIDL_DECL_ENUM: {
			tidl_enum_value_t *v = d->u.enum_.values;
			bool has_zero = false;
			for (size_t k = 0; k < d->u.enum_.n_values; k++)
				has_zero = has_zero || v[k].value == 0;
			if (d->u.enum_.strict && !has_zero)
				tidl_diag(p, f, TIDL_ERROR, d->loc,
				     "strict enum '%s' needs a value 0: absent fields read as 0, "
				     "and a strict reader rejects unknown values", d->name);
			char owner[200];
			bool sgn = d->u.enum_.underlying >= TIDL_I8;
			snprintf(owner, sizeof owner, "enum '%s'", d->name);
			tidl_reserved_t *rv = d->u.enum_.reserved;
			check_reserved_unique(p, f, rv, d->u.enum_.n_reserved, "value", owner, sgn);
			for (size_t k = 0; k < d->u.enum_.n_reserved; k++) {
				if (!fits(d->u.enum_.underlying, rv[k].value))
					tidl_diag(p, f, TIDL_ERROR, rv[k].loc, "reserved value of %s does not fit %s",
					     owner, tidl_kind_name(d->u.enum_.underlying));
				for (size_t j = 0; j < d->u.enum_.n_values; j++)
					if (v[j].value == rv[k].value)
						tidl_diag(p, f, TIDL_ERROR, v[j].loc,
						     "'%s' uses a value that %s reserves at line %u", v[j].name,
						     owner, rv[k].loc.line);
			}
			if (d->u.enum_.n_reserved)
				qsort(rv, d->u.enum_.n_reserved, sizeof *rv, cmp_reserved);
			for (size_t k = 0; k < d->u.enum_.n_values; k++) {
				if (!fits(d->u.enum_.underlying, v[k].value))
					tidl_diag(p, f, TIDL_ERROR, v[k].loc, "value of '%s' does not fit %s",
					     v[k].name, tidl_kind_name(d->u.enum_.underlying));
				check_since(p, f, v[k].has_since, v[k].since, v[k].loc, v[k].name);
				for (size_t j = 0; j < k; j++) {
					if (strcmp(v[j].name, v[k].name) == 0)
						tidl_diag(p, f, TIDL_ERROR, v[k].loc, "duplicate enum value name '%s'",
						     v[k].name);
					else if (v[j].value == v[k].value)
						tidl_diag(p, f, TIDL_ERROR, v[k].loc,
						     "'%s' has the same value as '%s'", v[k].name, v[j].name);
				}
			}
			break;
		}
		case TIDL_DECL_STRUCT: {
			char owner[200];
			snprintf(owner, sizeof owner, "struct '%s'", d->name);
			check_fields(p, f, d->u.struct_.fields, d->u.struct_.n_fields, owner, false);
			check_struct_reserved(p, f, d);
			break;
		}
		case TIDL_DECL_INTERFACE: {
			tidl_method_t *ms = d->u.iface.methods;
			for (size_t k = 0; k < d->u.iface.n_methods; k++) {
				tidl_method_t *m = &ms[k];
				char owner[200];
				snprintf(owner, sizeof owner, "method '%s'", m->name);
				check_fields(p, f, m->params, m->n_params, owner, true);
				check_fields(p, f, m->results, m->n_results, owner, true);
				check_since(p, f, m->has_since, m->since, m->loc, m->name);
				if (m->ordinal == 0)
					tidl_diag(p, f, TIDL_ERROR, m->loc, "method ordinals start at 1");
				/* Each clash once, against the first holder: a name or
				 * ordinal used three times was reported twice at the
				 * third (once per earlier use), and a name's message
				 * said neither where the first was nor which interface. */
				bool ord_seen = false, name_seen = false;
				for (size_t j = 0; j < k && !(ord_seen && name_seen); j++) {
					if (!ord_seen && ms[j].ordinal == m->ordinal && !ms[j].bad_ordinal &&
					    !m->bad_ordinal) {
						ord_seen = true;
						tidl_diag(p, f, TIDL_ERROR, m->loc,
						     "duplicate method ordinal %u (first used at %s:%u:%u)",
						     m->ordinal, ms[j].loc.file, ms[j].loc.line, ms[j].loc.col);
					}
					if (!name_seen && strcmp(ms[j].name, m->name) == 0) {
						name_seen = true;
						tidl_diag(p, f, TIDL_ERROR, m->loc,
						     "duplicate method name '%s' in interface '%s' (first at line %u)",
						     m->name, d->name, ms[j].loc.line);
					}
				}
				if (m->requires_name) {
					tidl_decl_t *fd = find_local(f, m->requires_name);
					if (!fd || fd->kind != TIDL_DECL_FEATURE)
						tidl_diag(p, f, TIDL_ERROR, m->loc,
						     "@requires(%s): no feature '%s' in this file",
						     m->requires_name, m->requires_name);
					else
						m->requires = fd;
				}
				if (m->n_errors) {
					m->errors = tidl_palloc(p, m->n_errors * sizeof *m->errors);
					for (size_t e = 0; e < m->n_errors; e++) {
						tidl_decl_t *ed = tidl_file_find_decl(f, m->error_names[e]);
						if (!ed || ed->kind != TIDL_DECL_ERROR)
							tidl_diag(p, f, TIDL_ERROR, m->loc,
							     "unknown error '%s' in method '%s' (declare it: error %s = N;)",
							     m->error_names[e], m->name, m->error_names[e]);
						m->errors[e] = ed;
					}
				}
			}
			char iowner[200];
			snprintf(iowner, sizeof iowner, "interface '%s'", d->name);
			tidl_reserved_t *rm = d->u.iface.reserved;
			check_reserved_unique(p, f, rm, d->u.iface.n_reserved, "method ordinal", iowner, false);
			for (size_t k = 0; k < d->u.iface.n_reserved; k++) {
				if (rm[k].value == 0 || rm[k].value > UINT32_MAX)
					tidl_diag(p, f, TIDL_ERROR, rm[k].loc,
					     "reserved method ordinals of %s must be 1..4294967295", iowner);
				for (size_t j = 0; j < d->u.iface.n_methods && !rm[k].bad_ordinal; j++)
					if (ms[j].ordinal == rm[k].value && !ms[j].bad_ordinal)
						tidl_diag(p, f, TIDL_ERROR, ms[j].loc,
						     "method '%s' uses ordinal %u, which %s reserves at line %u",
						     ms[j].name, ms[j].ordinal, iowner, rm[k].loc.line);
			}
			if (d->u.iface.n_reserved)
				qsort(rm, d->u.iface.n_reserved, sizeof *rm, cmp_reserved);
			if (d->u.iface.n_methods)
				qsort(ms, d->u.iface.n_methods, sizeof *ms, cmp_method);
			break;
		}
		}
	}
	check_recursion(p, f);
}
