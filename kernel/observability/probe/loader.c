/*
 * loader.c - our own parser of the ELF objects clang writes for
 * `-target bpf`: program sections, relocations against maps, BTF-defined
 * maps in .maps, the license, and .BTF.ext line info.
 *
 * Why not libbpf's open phase (docs/PROBES.md "Loader"): the input is
 * untrusted and parsed inside thothd and the traced processes, so the parser
 * must be small, bounds-checked and fuzzed (fuzz/probe); libbpf's
 * bpf_object__open keeps the relocations and .BTF.ext line info private
 * until bpf_object__load, which talks to the kernel, so we would have to
 * parse them ourselves anyway.  libbpf is still what loads kernel sections
 * (tracepoint/, raw_tp/, uprobe/) into Linux.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe_internal.h"

#ifndef EM_BPF
#define EM_BPF 247
#endif
#define R_BPF_64_64 1
#define R_BPF_64_32 10

typedef struct loader {
	const uint8_t *b;
	size_t len;
	const Elf64_Shdr *sh;
	uint32_t n_sh;
	const char *shstr;
	size_t shstr_len;
	const Elf64_Sym *syms;
	uint32_t n_syms;
	const char *symstr;
	size_t symstr_len;
	/* BTF */
	const uint8_t *btf_types;
	uint32_t btf_types_len;
	const char *btf_str;
	uint32_t btf_str_len;
	const uint8_t **type_at;     /* type id -> its bytes */
	uint32_t n_types;
	int maps_shndx;
	char *err;
	size_t err_len;
} loader_t;

__attribute__((format(printf, 2, 3)))
static int fail(loader_t *l, const char *fmt, ...)
{
	if (l->err && l->err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(l->err, l->err_len, fmt, ap);
		va_end(ap);
	}
	return THOTH_E_INVAL;
}

/* The file is not a BPF ELF object at all (thothctl probe check: exit 2). */
__attribute__((format(printf, 2, 3)))
static int fail_format(loader_t *l, const char *fmt, ...)
{
	if (l->err && l->err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(l->err, l->err_len, fmt, ap);
		va_end(ap);
	}
	return THOTH_E_BAD_MAGIC;
}

static bool range_ok(size_t total, uint64_t off, uint64_t len)
{
	return off <= total && len <= total - off;
}

static const char *cstr(const char *tab, size_t tab_len, uint64_t off)
{
	if (!tab || off >= tab_len)
		return NULL;
	if (!memchr(tab + off, '\0', tab_len - off))
		return NULL;
	return tab + off;
}

static const char *sec_name(loader_t *l, uint32_t i)
{
	const char *n = cstr(l->shstr, l->shstr_len, l->sh[i].sh_name);
	return n ? n : "";
}

static const uint8_t *sec_data(loader_t *l, uint32_t i)
{
	return l->b + l->sh[i].sh_offset;
}

/* ---- BTF ------------------------------------------------------------------- */

#define BTF_MAGIC_ 0xeB9F
struct btf_hdr_ { uint16_t magic; uint8_t version, flags; uint32_t hdr_len, type_off, type_len, str_off, str_len; };
struct btf_type_ { uint32_t name_off, info, size_type; };
enum { K_INT = 1, K_PTR, K_ARRAY, K_STRUCT, K_UNION, K_ENUM, K_FWD, K_TYPEDEF, K_VOLATILE,
       K_CONST, K_RESTRICT, K_FUNC, K_FUNC_PROTO, K_VAR, K_DATASEC, K_FLOAT, K_DECL_TAG,
       K_TYPE_TAG, K_ENUM64 };

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static int btf_extra(uint32_t kind, uint32_t vlen, uint64_t *out)
{
	switch (kind) {
	case K_INT: case K_VAR: case K_DECL_TAG: *out = 4; return 0;
	case K_PTR: case K_FWD: case K_TYPEDEF: case K_VOLATILE: case K_CONST: case K_RESTRICT:
	case K_FUNC: case K_FLOAT: case K_TYPE_TAG: *out = 0; return 0;
	case K_ARRAY: *out = 12; return 0;
	case K_STRUCT: case K_UNION: case K_DATASEC: case K_ENUM64: *out = 12ull * vlen; return 0;
	case K_ENUM: case K_FUNC_PROTO: *out = 8ull * vlen; return 0;
	default: return -1;
	}
}

static int btf_parse(loader_t *l, uint32_t shndx)
{
	const uint8_t *d = sec_data(l, shndx);
	uint64_t n = l->sh[shndx].sh_size;
	struct btf_hdr_ h;
	if (n < sizeof h)
		return fail(l, ".BTF: %llu bytes, shorter than its header", (unsigned long long)n);
	memcpy(&h, d, sizeof h);
	if (h.magic != BTF_MAGIC_ || h.version != 1)
		return fail(l, ".BTF: bad magic 0x%x or version %u", h.magic, h.version);
	if (h.hdr_len < sizeof h || h.hdr_len > n ||
	    !range_ok(n - h.hdr_len, h.type_off, h.type_len) ||
	    !range_ok(n - h.hdr_len, h.str_off, h.str_len))
		return fail(l, ".BTF: header sections outside the %llu-byte section",
		            (unsigned long long)n);
	l->btf_types = d + h.hdr_len + h.type_off;
	l->btf_types_len = h.type_len;
	l->btf_str = (const char *)d + h.hdr_len + h.str_off;
	l->btf_str_len = h.str_len;
	if (h.str_len == 0 || l->btf_str[h.str_len - 1] != '\0')
		return fail(l, ".BTF: string section not NUL-terminated");
	/* Index types: id 1.. in order. */
	uint32_t cap = 64;
	l->type_at = calloc(cap, sizeof *l->type_at);
	if (!l->type_at)
		return THOTH_E_NOMEM;
	l->n_types = 1;     /* id 0 = void */
	uint64_t off = 0;
	while (off < h.type_len) {
		if (h.type_len - off < sizeof(struct btf_type_))
			return fail(l, ".BTF: type %u truncated", l->n_types);
		const uint8_t *t = l->btf_types + off;
		uint32_t info = rd32(t + 4);
		uint32_t kind = (info >> 24) & 0x1f, vlen = info & 0xffff;
		uint64_t extra;
		if (btf_extra(kind, vlen, &extra) < 0)
			return fail(l, ".BTF: type %u has unknown kind %u", l->n_types, kind);
		if (h.type_len - off - sizeof(struct btf_type_) < extra)
			return fail(l, ".BTF: type %u truncated", l->n_types);
		if (l->n_types == cap) {
			if (cap >= (1u << 20))
				return fail(l, ".BTF: more than %u types", cap);
			const uint8_t **nt = realloc(l->type_at, 2 * cap * sizeof *nt);
			if (!nt)
				return THOTH_E_NOMEM;
			l->type_at = nt;
			cap *= 2;
		}
		l->type_at[l->n_types++] = t;
		off += sizeof(struct btf_type_) + extra;
	}
	return 0;
}

static const uint8_t *btf_type(loader_t *l, uint32_t id)
{
	return (id > 0 && id < l->n_types) ? l->type_at[id] : NULL;
}

static uint32_t btf_kind(const uint8_t *t) { return (rd32(t + 4) >> 24) & 0x1f; }
static uint32_t btf_vlen(const uint8_t *t) { return rd32(t + 4) & 0xffff; }

static const char *btf_name(loader_t *l, uint32_t off)
{
	const char *s = cstr(l->btf_str, l->btf_str_len, off);
	return s ? s : "";
}

/* Skip typedef/const/volatile/restrict/type_tag (bounded: no cycles). */
static const uint8_t *btf_resolve(loader_t *l, uint32_t id, uint32_t *out_id)
{
	for (int depth = 0; depth < 32; depth++) {
		const uint8_t *t = btf_type(l, id);
		if (!t)
			return NULL;
		uint32_t k = btf_kind(t);
		if (k != K_TYPEDEF && k != K_CONST && k != K_VOLATILE && k != K_RESTRICT &&
		    k != K_TYPE_TAG) {
			if (out_id)
				*out_id = id;
			return t;
		}
		id = rd32(t + 8);
	}
	return NULL;
}

static int btf_size(loader_t *l, uint32_t id, uint64_t *size, int depth)
{
	if (depth > 32)
		return -1;
	const uint8_t *t = btf_resolve(l, id, NULL);
	if (!t)
		return -1;
	switch (btf_kind(t)) {
	case K_INT: case K_STRUCT: case K_UNION: case K_ENUM: case K_ENUM64: case K_FLOAT:
		*size = rd32(t + 8);
		return 0;
	case K_PTR:
		*size = 8;
		return 0;
	case K_ARRAY: {
		uint64_t elem;
		if (btf_size(l, rd32(t + 12), &elem, depth + 1) < 0)
			return -1;
		uint64_t nel = rd32(t + 20);
		if (elem && nel > (1ull << 32) / elem)
			return -1;
		*size = elem * nel;
		return 0;
	}
	default:
		return -1;
	}
}

/* libbpf's __uint(name, N): int (*name)[N]. */
static int btf_uint_member(loader_t *l, uint32_t type, uint32_t *out)
{
	const uint8_t *t = btf_resolve(l, type, NULL);
	if (!t || btf_kind(t) != K_PTR)
		return -1;
	const uint8_t *a = btf_resolve(l, rd32(t + 8), NULL);
	if (!a || btf_kind(a) != K_ARRAY)
		return -1;
	*out = rd32(a + 20);
	return 0;
}

/* libbpf's __type(name, T): T *name. */
static int btf_type_member(loader_t *l, uint32_t type, uint32_t *out)
{
	const uint8_t *t = btf_resolve(l, type, NULL);
	if (!t || btf_kind(t) != K_PTR)
		return -1;
	uint64_t size;
	if (btf_size(l, rd32(t + 8), &size, 0) < 0 || size == 0 || size > UINT32_MAX)
		return -1;
	*out = (uint32_t)size;
	return 0;
}

static int parse_map(loader_t *l, thoth_probe_object_t *o, uint32_t var_id, uint32_t offset)
{
	const uint8_t *v = btf_type(l, var_id);
	if (!v || btf_kind(v) != K_VAR)
		return fail(l, ".maps: BTF type %u is not a variable", var_id);
	const char *name = btf_name(l, rd32(v));
	if (o->n_maps == THOTH_PROBE_MAX_MAPS)
		return fail(l, "map '%s': more than %u maps", name, THOTH_PROBE_MAX_MAPS);
	const uint8_t *st = btf_resolve(l, rd32(v + 8), NULL);
	if (!st || btf_kind(st) != K_STRUCT)
		return fail(l, "map '%s': not a BTF-defined map (struct with __uint/__type members)",
		            name);
	probe_map_def_t *m = &o->maps[o->n_maps];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	m->offset = offset;
	uint32_t vlen = btf_vlen(st);
	for (uint32_t i = 0; i < vlen; i++) {
		const uint8_t *mem = st + 12 + 12u * i;
		const char *mn = btf_name(l, rd32(mem));
		uint32_t mt = rd32(mem + 4);
		int r = 0;
		if (strcmp(mn, "type") == 0)
			r = btf_uint_member(l, mt, &m->type);
		else if (strcmp(mn, "max_entries") == 0)
			r = btf_uint_member(l, mt, &m->max_entries);
		else if (strcmp(mn, "map_flags") == 0)
			r = btf_uint_member(l, mt, &m->flags);
		else if (strcmp(mn, "key_size") == 0)
			r = btf_uint_member(l, mt, &m->key_size);
		else if (strcmp(mn, "value_size") == 0)
			r = btf_uint_member(l, mt, &m->value_size);
		else if (strcmp(mn, "key") == 0)
			r = btf_type_member(l, mt, &m->key_size);
		else if (strcmp(mn, "value") == 0)
			r = btf_type_member(l, mt, &m->value_size);
		else
			return fail(l, "map '%s': unsupported attribute '%s'", name, mn);
		if (r < 0)
			return fail(l, "map '%s': attribute '%s' is not of the __uint/__type form",
			            name, mn);
	}
	switch (m->type) {
	case BPF_MAP_TYPE_ARRAY: case BPF_MAP_TYPE_PERCPU_ARRAY:
		if (m->key_size != 4)
			return fail(l, "map '%s': array key must be 4 bytes, not %u", name, m->key_size);
		/* fallthrough */
	case BPF_MAP_TYPE_HASH:
		if (m->key_size == 0 || m->key_size > 512 || m->value_size == 0 ||
		    m->value_size > 65536)
			return fail(l, "map '%s': key size %u / value size %u (1-512 / 1-65536)", name,
			            m->key_size, m->value_size);
		if (m->max_entries == 0 || m->max_entries > (1u << 20))
			return fail(l, "map '%s': max_entries %u (1-%u)", name, m->max_entries, 1u << 20);
		break;
	case BPF_MAP_TYPE_RINGBUF:
		if (m->key_size || m->value_size)
			return fail(l, "map '%s': a ringbuf has no key or value", name);
		if (m->max_entries < 4096 || m->max_entries > (64u << 20) ||
		    (m->max_entries & (m->max_entries - 1)))
			return fail(l, "map '%s': ringbuf size %u must be a power of two, 4 KiB-64 MiB",
			            name, m->max_entries);
		break;
	default:
		return fail(l, "map '%s': map type %u not supported (ARRAY 2, HASH 1, PERCPU_ARRAY 6, "
		            "RINGBUF 27)", name, m->type);
	}
	o->n_maps++;
	return 0;
}

static int parse_maps(loader_t *l, thoth_probe_object_t *o)
{
	if (l->maps_shndx < 0)
		return 0;
	if (!l->btf_types)
		return fail(l, ".maps without .BTF: compile with -g (BTF-defined maps need it)");
	for (uint32_t id = 1; id < l->n_types; id++) {
		const uint8_t *t = l->type_at[id];
		if (btf_kind(t) != K_DATASEC || strcmp(btf_name(l, rd32(t)), ".maps") != 0)
			continue;
		uint32_t vlen = btf_vlen(t);
		for (uint32_t i = 0; i < vlen; i++) {
			const uint8_t *vs = t + 12 + 12u * i;
			int r = parse_map(l, o, rd32(vs), rd32(vs + 4));
			if (r < 0)
				return r;
		}
		return 0;
	}
	return fail(l, ".maps has no BTF DATASEC: legacy struct bpf_map_def maps are not supported");
}

/* ---- .BTF.ext line info ----------------------------------------------------- */

static int line_cmp(const void *a, const void *b)
{
	const probe_line_t *x = a, *y = b;
	return x->insn < y->insn ? -1 : x->insn > y->insn;
}

static int parse_lines(loader_t *l, thoth_probe_object_t *o, uint32_t shndx)
{
	const uint8_t *d = sec_data(l, shndx);
	uint64_t n = l->sh[shndx].sh_size;
	if (!l->btf_str || n < 24)
		return 0;   /* line info is a courtesy: without it messages lack file:line */
	uint16_t magic;
	memcpy(&magic, d, 2);
	uint32_t hdr_len = rd32(d + 4), li_off = rd32(d + 16), li_len = rd32(d + 20);
	if (magic != BTF_MAGIC_ || hdr_len < 24 || hdr_len > n ||
	    !range_ok(n - hdr_len, li_off, li_len) || li_len < 4)
		return 0;
	const uint8_t *p = d + hdr_len + li_off, *end = p + li_len;
	uint32_t rec = rd32(p);
	p += 4;
	if (rec < 16)
		return 0;
	while (end - p >= 8) {
		const char *sec = btf_name(l, rd32(p));
		uint32_t num = rd32(p + 4);
		p += 8;
		if ((uint64_t)num * rec > (uint64_t)(end - p))
			return 0;
		probe_prog_def_t *pg = NULL;
		for (uint32_t i = 0; i < o->n_progs; i++)
			if (strcmp(o->progs[i].section, sec) == 0)
				pg = &o->progs[i];
		if (pg && !pg->lines && num) {
			pg->lines = calloc(num, sizeof *pg->lines);
			if (!pg->lines)
				return THOTH_E_NOMEM;
			for (uint32_t k = 0; k < num; k++) {
				const uint8_t *r = p + (uint64_t)k * rec;
				uint32_t off = rd32(r), line_col = rd32(r + 12);
				const char *file = cstr(o->strings, l->btf_str_len, rd32(r + 4));
				if (off % 8 || off / 8 >= pg->n_insns)
					continue;
				probe_line_t *pl = &pg->lines[pg->n_lines++];
				pl->insn = off / 8;
				pl->line = line_col >> 10;
				pl->col = line_col & 0x3ff;
				pl->file = file ? file : "?";
			}
			qsort(pg->lines, pg->n_lines, sizeof *pg->lines, line_cmp);
		}
		p += (uint64_t)num * rec;
	}
	return 0;
}

/* ---- relocations --------------------------------------------------------------- */

static int apply_relocs(loader_t *l, thoth_probe_object_t *o, uint32_t rel_sh)
{
	const Elf64_Shdr *rs = &l->sh[rel_sh];
	uint32_t target = rs->sh_info;
	probe_prog_def_t *pg = NULL;
	for (uint32_t i = 0; i < o->n_progs; i++)
		if (o->progs[i].shndx == target)
			pg = &o->progs[i];
	if (!pg)
		return 0;   /* relocations of debug sections: not ours */
	if (rs->sh_entsize != sizeof(Elf64_Rel) || rs->sh_size % sizeof(Elf64_Rel))
		return fail(l, "%s: malformed relocation section", sec_name(l, rel_sh));
	uint64_t n = rs->sh_size / sizeof(Elf64_Rel);
	for (uint64_t k = 0; k < n; k++) {
		Elf64_Rel r;
		memcpy(&r, sec_data(l, rel_sh) + k * sizeof r, sizeof r);
		uint32_t sym = ELF64_R_SYM(r.r_info), type = ELF64_R_TYPE(r.r_info);
		if (r.r_offset % 8 || r.r_offset / 8 >= pg->n_insns)
			return fail(l, "%s: relocation at offset %llu outside the program", pg->section,
			            (unsigned long long)r.r_offset);
		uint32_t insn = (uint32_t)(r.r_offset / 8);
		if (sym == 0 || sym >= l->n_syms)
			return fail(l, "%s: relocation names symbol %u (of %u)", pg->section, sym,
			            l->n_syms);
		const Elf64_Sym *s = &l->syms[sym];
		const char *sname = cstr(l->symstr, l->symstr_len, s->st_name);
		if (!sname)
			sname = "?";
		probe_insn_t *in = &pg->insns[insn];
		if (in->code == (BPF_JMP | BPF_CALL) || type == R_BPF_64_32)
			return fail(l, "%s: insn %u calls '%s': BPF-to-BPF calls (subprograms) are not "
			            "supported, mark the function static __always_inline", pg->section,
			            insn, sname);
		if (type != R_BPF_64_64 || in->code != (BPF_LD | BPF_IMM | BPF_DW) ||
		    insn + 1 >= pg->n_insns)
			return fail(l, "%s: insn %u: relocation type %u against '%s' is not a map "
			            "reference (ld_imm64)", pg->section, insn, type, sname);
		if ((int)s->st_shndx != l->maps_shndx || l->maps_shndx < 0)
			return fail(l, "%s: insn %u refers to '%s' in section %u: global variables "
			            "(.data/.rodata/.bss) are not supported, only maps in .maps",
			            pg->section, insn, sname, s->st_shndx);
		uint64_t moff = s->st_value + (uint64_t)(uint32_t)in->imm;
		uint32_t mi;
		for (mi = 0; mi < o->n_maps; mi++)
			if (o->maps[mi].offset == moff)
				break;
		if (mi == o->n_maps)
			return fail(l, "%s: insn %u refers to '%s' which is not a BTF-defined map",
			            pg->section, insn, sname);
		in->src_reg = PROBE_PSEUDO_MAP;
		in->imm = (int32_t)mi;
	}
	return 0;
}

/* ---- the object ------------------------------------------------------------------- */

static int kind_of_section(const char *name, const char **point)
{
	if (strncmp(name, "thoth/", 6) == 0) {
		*point = name + 6;
		return PROBE_KIND_THOTH;
	}
	if (strncmp(name, "tracepoint/", 11) == 0 || strncmp(name, "tp/", 3) == 0 ||
	    strncmp(name, "raw_tp/", 7) == 0 || strncmp(name, "raw_tracepoint/", 15) == 0 ||
	    strncmp(name, "uprobe", 6) == 0 || strncmp(name, "uretprobe", 9) == 0) {
		*point = name;
		return PROBE_KIND_KERNEL;
	}
	return -1;
}

static bool point_name_ok(const char *p)
{
	if (strcmp(p, "*") == 0)
		return true;
	size_t n = strlen(p);
	if (n == 0 || n > 27)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	return true;
}

static int parse(loader_t *l, thoth_probe_object_t *o)
{
	if (l->len < sizeof(Elf64_Ehdr))
		return fail_format(l, "not an ELF object (%zu bytes)", l->len);
	Elf64_Ehdr eh;
	memcpy(&eh, l->b, sizeof eh);
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return fail_format(l, "not an ELF object (bad magic)");
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail_format(l, "not a 64-bit little-endian ELF object");
	if (eh.e_machine != EM_BPF)
		return fail_format(l, "ELF machine %u is not BPF (247): compile with clang -target bpf",
		            eh.e_machine);
	if (eh.e_type != ET_REL)
		return fail_format(l, "ELF type %u is not a relocatable object (clang -c)", eh.e_type);
	if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 ||
	    !range_ok(l->len, eh.e_shoff, (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr)) ||
	    eh.e_shoff % 8)
		return fail_format(l, "section headers outside the file");
	l->sh = (const Elf64_Shdr *)(l->b + eh.e_shoff);
	l->n_sh = eh.e_shnum;
	for (uint32_t i = 0; i < l->n_sh; i++)
		if (l->sh[i].sh_type != SHT_NOBITS &&
		    !range_ok(l->len, l->sh[i].sh_offset, l->sh[i].sh_size))
			return fail_format(l, "section %u outside the file", i);
	if (eh.e_shstrndx >= l->n_sh)
		return fail_format(l, "no section name table");
	l->shstr = (const char *)sec_data(l, eh.e_shstrndx);
	l->shstr_len = l->sh[eh.e_shstrndx].sh_size;
	l->maps_shndx = -1;
	int btf_sh = -1, ext_sh = -1;
	for (uint32_t i = 1; i < l->n_sh; i++) {
		const Elf64_Shdr *s = &l->sh[i];
		const char *name = sec_name(l, i);
		if (s->sh_type == SHT_SYMTAB) {
			if (s->sh_entsize != sizeof(Elf64_Sym) || s->sh_size % sizeof(Elf64_Sym) ||
			    s->sh_link >= l->n_sh || s->sh_offset % 8)
				return fail(l, "malformed symbol table");
			l->syms = (const Elf64_Sym *)sec_data(l, i);
			l->n_syms = (uint32_t)(s->sh_size / sizeof(Elf64_Sym));
			l->symstr = (const char *)sec_data(l, s->sh_link);
			l->symstr_len = l->sh[s->sh_link].sh_size;
		} else if (strcmp(name, ".maps") == 0) {
			l->maps_shndx = (int)i;
		} else if (strcmp(name, ".BTF") == 0) {
			btf_sh = (int)i;
		} else if (strcmp(name, ".BTF.ext") == 0) {
			ext_sh = (int)i;
		} else if (strcmp(name, "license") == 0) {
			size_t n = s->sh_size < sizeof o->license - 1 ? s->sh_size : sizeof o->license - 1;
			memcpy(o->license, sec_data(l, i), n);
			o->license[n] = '\0';
		}
	}
	if (!l->syms)
		return fail(l, "no symbol table");
	if (btf_sh >= 0) {
		int r = btf_parse(l, (uint32_t)btf_sh);
		if (r < 0)
			return r;
		o->strings = malloc(l->btf_str_len);
		if (!o->strings)
			return THOTH_E_NOMEM;
		memcpy(o->strings, l->btf_str, l->btf_str_len);
	}
	int r = parse_maps(l, o);
	if (r < 0)
		return r;
	/* Programs: executable sections, one function each (the symbol at 0). */
	for (uint32_t i = 1; i < l->n_sh; i++) {
		const Elf64_Shdr *s = &l->sh[i];
		if (s->sh_type != SHT_PROGBITS || !(s->sh_flags & SHF_EXECINSTR) || s->sh_size == 0)
			continue;
		const char *name = sec_name(l, i);
		const char *point = NULL;
		int kind = kind_of_section(name, &point);
		if (kind < 0) {
			if (strcmp(name, ".text") == 0)
				return fail(l, ".text holds code: BPF-to-BPF calls (subprograms) are not "
				            "supported, mark helpers static __always_inline");
			return fail(l, "section '%s': not a probe section (thoth/<trace point>, thoth/*, "
			            "tracepoint/..., raw_tp/..., uprobe/...)", name);
		}
		if (kind == PROBE_KIND_THOTH && !point_name_ok(point))
			return fail(l, "section '%s': '%s' is not a trace point name ([A-Za-z0-9_], "
			            "at most 27) or '*'", name, point);
		if (s->sh_size % 8)
			return fail(l, "section '%s': %llu bytes, not whole instructions", name,
			            (unsigned long long)s->sh_size);
		if (o->n_progs == THOTH_PROBE_MAX_PROGS)
			return fail(l, "more than %u programs", THOTH_PROBE_MAX_PROGS);
		probe_prog_def_t *p = &o->progs[o->n_progs];
		memset(p, 0, sizeof *p);
		if (strlen(name) >= sizeof p->section)
			return fail(l, "section name longer than %zu", sizeof p->section - 1);
		strcpy(p->section, name);
		snprintf(p->point, sizeof p->point, "%s", point);
		p->kind = kind;
		p->shndx = i;
		uint64_t n = s->sh_size / 8;
		p->n_insns = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		p->insns = malloc(s->sh_size);
		if (!p->insns)
			return THOTH_E_NOMEM;
		memcpy(p->insns, sec_data(l, i), s->sh_size);
		o->n_progs++;
		int functions = 0;
		for (uint32_t k = 0; k < l->n_syms; k++) {
			const Elf64_Sym *sym = &l->syms[k];
			if (sym->st_shndx == i && ELF64_ST_TYPE(sym->st_info) == STT_FUNC) {
				functions++;
				if (sym->st_value == 0) {
					const char *sn = cstr(l->symstr, l->symstr_len, sym->st_name);
					snprintf(p->name, sizeof p->name, "%s", sn ? sn : "?");
				}
			}
		}
		if (functions > 1)
			return fail(l, "section '%s' holds %d functions: one program per section",
			            name, functions);
		if (!p->name[0])
			snprintf(p->name, sizeof p->name, "%s", point);
	}
	if (o->n_progs == 0)
		return fail(l, "no program sections (SEC(\"thoth/<trace point>\"))");
	for (uint32_t i = 1; i < l->n_sh; i++)
		if (l->sh[i].sh_type == SHT_REL && l->sh[i].sh_info < l->n_sh) {
			r = apply_relocs(l, o, i);
			if (r < 0)
				return r;
		}
	if (ext_sh >= 0) {
		r = parse_lines(l, o, (uint32_t)ext_sh);
		if (r < 0)
			return r;
	}
	return 0;
}

void thoth_probe_object_free(thoth_probe_object_t *obj)
{
	if (!obj)
		return;
	for (uint32_t i = 0; i < obj->n_progs; i++) {
		free(obj->progs[i].insns);
		free(obj->progs[i].lines);
	}
	free(obj->strings);
	free(obj->image);
	free(obj);
}

int thoth_probe_object_open(const void *bytes, size_t len, thoth_probe_object_t **out,
                            char *err, size_t err_len)
{
	if (!out)
		return THOTH_E_INVAL;
	*out = NULL;
	if (err && err_len)
		err[0] = '\0';
	loader_t l = { .len = len, .err = err, .err_len = err_len };
	if (!bytes && len)
		return THOTH_E_INVAL;
	if (len > THOTH_PROBE_MAX_OBJECT)
		return fail(&l, "object of %zu bytes exceeds the %u-byte limit", len,
		            THOTH_PROBE_MAX_OBJECT);
	thoth_probe_object_t *o = calloc(1, sizeof *o);
	/* An 8-aligned private copy: the section headers and symbols are read
	 * in place, and the caller's buffer may change under us. */
	uint8_t *copy = malloc(len ? len : 1);
	if (!o || !copy) {
		free(o);
		free(copy);
		return THOTH_E_NOMEM;
	}
	if (len)
		memcpy(copy, bytes, len);
	l.b = copy;
	o->image = copy;
	o->image_len = len;
	int r = parse(&l, o);
	free(l.type_at);
	if (r < 0) {
		thoth_probe_object_free(o);
		return r;
	}
	*out = o;
	return 0;
}

int thoth_probe_object_open_file(const char *path, thoth_probe_object_t **out, char *err,
                                 size_t err_len)
{
	if (!path || !out)
		return THOTH_E_INVAL;
	*out = NULL;
	/* O_NONBLOCK: a FIFO with no writer held open() forever before the
	 * S_ISREG check below could refuse it (hostile46); a regular file
	 * reads the same with it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (err && err_len)
			snprintf(err, err_len, "%s: %s", path, strerror(e));
		return thoth_error_io(e, "open %s", path);
	}
	struct stat st;
	int r = 0;
	uint8_t *buf = NULL;
	bool stat_failed = fstat(fd, &st) < 0;
	if (stat_failed || !S_ISREG(st.st_mode)) {
		/* errno only when fstat failed: otherwise it is stale */
		int e = stat_failed ? errno : EINVAL;
		if (err && err_len)
			snprintf(err, err_len, "%s: %s", path, stat_failed ? strerror(e) : "not a regular file");
		r = thoth_error_io(e, "fstat %s", path);
		goto out;
	}
	/* A regular file: blocking reads again.  Linux ignores O_NONBLOCK on
	 * a local file, but a FUSE or network file system is handed the flag
	 * and may answer EAGAIN, which the loop below takes for an error. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	if ((uint64_t)st.st_size > THOTH_PROBE_MAX_OBJECT) {
		if (err && err_len)
			snprintf(err, err_len, "%s: %lld bytes exceeds the %u-byte limit", path,
			         (long long)st.st_size, THOTH_PROBE_MAX_OBJECT);
		r = THOTH_E_INVAL;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = THOTH_E_NOMEM;
		goto out;
	}
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			if (err && err_len)
				snprintf(err, err_len, "%s: %s", path, strerror(e));
			r = thoth_error_io(e, "read %s", path);
			goto out;
		}
		got += (size_t)n;
	}
	r = thoth_probe_object_open(buf, got, out, err, err_len);
out:
	free(buf);
	close(fd);
	return r;
}

size_t thoth_probe_object_prog_count(const thoth_probe_object_t *obj)
{
	return obj ? obj->n_progs : 0;
}

int thoth_probe_object_prog(const thoth_probe_object_t *obj, size_t i, const char **section,
                            const char **name, size_t *insns)
{
	if (!obj || i >= obj->n_progs)
		return THOTH_E_INVAL;
	if (section)
		*section = obj->progs[i].section;
	if (name)
		*name = obj->progs[i].name;
	if (insns)
		*insns = obj->progs[i].n_insns;
	return 0;
}

size_t thoth_probe_object_map_count(const thoth_probe_object_t *obj)
{
	return obj ? obj->n_maps : 0;
}

const char *thoth_probe_object_license(const thoth_probe_object_t *obj)
{
	return obj ? obj->license : "";
}

void probe_line_of(const probe_prog_def_t *p, uint32_t insn, char *buf, size_t len)
{
	buf[0] = '\0';
	const probe_line_t *best = NULL;
	for (uint32_t i = 0; i < p->n_lines && p->lines[i].insn <= insn; i++)
		best = &p->lines[i];
	if (!best)
		return;
	const char *f = strrchr(best->file, '/');
	snprintf(buf, len, "%s:%u", f ? f + 1 : best->file, best->line);
}
