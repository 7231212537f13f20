/*
 * script.c - the one-line probe language (docs/PROBES.md "One-line
 * scripts"): a small bpftrace-like script compiled to probe bytecode in an
 * ordinary eBPF ELF object (BTF-defined maps, relocations), which then goes
 * through the same loader and verifier as clang's objects.
 *
 *   script := point [ '/' expr '/' ] '{' stmt { ';' stmt } [ ';' ] '}'
 *   point  := trace point name | '*'
 *   stmt   := '@' name [ '[' expr ']' ] '=' agg '(' [ expr ] ')'
 *   agg    := count | sum | min | max | hist
 *   expr   := or;  or := and { '||' and }
 *   and    := bitand { '&&' bitand };  bitand := cmp { '&' cmp }   (C precedence)
 *   cmp    := add [ ('=='|'!='|'<'|'<='|'>'|'>=') add ]
 *   add    := mul { ('+'|'-') mul };  mul := unary { ('*'|'/'|'%') unary }
 *   unary  := ('!'|'-') unary | number | field | '(' expr ')'
 *   field  := ts_ns trace_id service_id size cpu tid arg0 arg1 interface_id
 *             request_id method flags category pid  (struct thoth_probe_ctx)
 *
 * Values are unsigned 64-bit; '/' and '%' are unsigned with Linux's x/0 = 0
 * and x%0 = x.  Inside the filter a '/' at parenthesis depth 0 ends it.
 * Each @map is a HASH of 1024 u64 keys (hist: key and log2 bucket) to u64.
 * One pass, no backtracking: compile time is linear in the script length.
 * Errors name the column and what was expected ("column 12: expected '}',
 * found 'x'").
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

#define SCRIPT_MAX_LEN 4096
#define SCRIPT_MAX_MAPS 16
#define SCRIPT_MAX_INSNS 4000
#define SCRIPT_MAP_ENTRIES 1024
#define DEPTH_REGS 7

enum { AGG_COUNT, AGG_SUM, AGG_MIN, AGG_MAX, AGG_HIST };
static const char *const AGG_NAMES[] = { "count", "sum", "min", "max", "hist" };

typedef struct field {
	const char *name;
	uint8_t size;     /* BPF_B/H/W/DW */
	int16_t off;
} field_t;

static const field_t FIELDS[] = {
	{ "ts_ns", BPF_DW, 0 }, { "trace_id", BPF_DW, 8 }, { "service_id", BPF_W, 16 },
	{ "size", BPF_W, 20 }, { "cpu", BPF_W, 24 }, { "tid", BPF_W, 28 }, { "arg0", BPF_DW, 32 },
	{ "arg1", BPF_DW, 40 }, { "interface_id", BPF_W, 48 }, { "request_id", BPF_W, 52 },
	{ "method", BPF_H, 56 }, { "flags", BPF_B, 58 }, { "category", BPF_B, 59 },
	{ "pid", BPF_W, 60 },
};

typedef struct script_map {
	char name[PROBE_NAME_MAX];
	int agg;
} script_map_t;

typedef struct cc {
	const char *src;
	size_t pos, len;
	char *err;
	size_t err_len;
	bool failed;
	probe_insn_t insns[SCRIPT_MAX_INSNS];
	uint32_t n;
	uint32_t map_ref[SCRIPT_MAX_INSNS];   /* insn -> map index + 1 (ld_imm64) */
	script_map_t maps[SCRIPT_MAX_MAPS];
	uint32_t n_maps;
	char point[PROBE_NAME_MAX];
	bool in_filter;
	int paren;
	int nest;                             /* recursion: '(' and unary operators */
	uint32_t exit_jumps[64];
	uint32_t n_exit_jumps;
} cc_t;

static const uint8_t DREG[DEPTH_REGS] = { 7, 8, 9, 2, 3, 4, 5 };

__attribute__((format(printf, 2, 3)))
static void error_at(cc_t *c, const char *fmt, ...)
{
	if (c->failed)
		return;
	c->failed = true;
	if (!c->err || !c->err_len)
		return;
	int k = snprintf(c->err, c->err_len, "column %zu: ", c->pos + 1);
	if (k < 0 || (size_t)k >= c->err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + k, c->err_len - (size_t)k, fmt, ap);
	va_end(ap);
}

/* ---- lexing ------------------------------------------------------------------ */

static void skip_space(cc_t *c)
{
	while (c->pos < c->len && isspace((unsigned char)c->src[c->pos]))
		c->pos++;
}

static char peek(cc_t *c)
{
	skip_space(c);
	return c->pos < c->len ? c->src[c->pos] : '\0';
}

static bool peek2(cc_t *c, const char *two)
{
	skip_space(c);
	return c->pos + 1 < c->len && c->src[c->pos] == two[0] && c->src[c->pos + 1] == two[1];
}

/* What is at the cursor, for messages: "'x'", "'name'", "end of script". */
static const char *found(cc_t *c, char *buf, size_t len)
{
	skip_space(c);
	if (c->pos >= c->len)
		return "end of script";
	size_t k = 0;
	if (isalnum((unsigned char)c->src[c->pos]) || c->src[c->pos] == '_')
		while (c->pos + k < c->len && k < 24 &&
		       (isalnum((unsigned char)c->src[c->pos + k]) || c->src[c->pos + k] == '_'))
			k++;
	else
		k = 1;
	unsigned char ch = (unsigned char)c->src[c->pos];
	if (k == 1 && !isprint(ch))
		snprintf(buf, len, "byte 0x%02x", ch);
	else
		snprintf(buf, len, "'%.*s'", (int)k, c->src + c->pos);
	return buf;
}

static void expect(cc_t *c, char ch, const char *what)
{
	if (c->failed)
		return;
	if (peek(c) != ch) {
		char b[48];
		error_at(c, "expected %s, found %s", what, found(c, b, sizeof b));
		return;
	}
	c->pos++;
}

static bool ident(cc_t *c, char *out, size_t cap)
{
	skip_space(c);
	size_t k = 0;
	if (c->pos >= c->len || !(isalpha((unsigned char)c->src[c->pos]) || c->src[c->pos] == '_'))
		return false;
	while (c->pos + k < c->len &&
	       (isalnum((unsigned char)c->src[c->pos + k]) || c->src[c->pos + k] == '_'))
		k++;
	if (k >= cap) {
		error_at(c, "name of %zu characters (at most %zu)", k, cap - 1);
		return false;
	}
	memcpy(out, c->src + c->pos, k);
	out[k] = '\0';
	c->pos += k;
	return true;
}

/* ---- emitting ------------------------------------------------------------------ */

static uint32_t emit(cc_t *c, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	if (c->n >= SCRIPT_MAX_INSNS) {
		error_at(c, "script too long: more than %u instructions", SCRIPT_MAX_INSNS);
		return c->n ? c->n - 1 : 0;
	}
	c->insns[c->n] = (probe_insn_t){ .code = code, .dst_reg = dst, .src_reg = src, .off = off,
	                                 .imm = imm };
	return c->n++;
}

static void emit_const(cc_t *c, uint8_t reg, uint64_t v)
{
	if (v <= INT32_MAX) {
		emit(c, BPF_ALU64 | BPF_MOV | BPF_K, reg, 0, 0, (int32_t)v);
	} else {
		emit(c, BPF_LD | BPF_IMM | BPF_DW, reg, 0, 0, (int32_t)(uint32_t)v);
		emit(c, 0, 0, 0, 0, (int32_t)(uint32_t)(v >> 32));
	}
}

static void emit_map(cc_t *c, uint8_t reg, uint32_t map)
{
	uint32_t at = emit(c, BPF_LD | BPF_IMM | BPF_DW, reg, 0, 0, 0);
	emit(c, 0, 0, 0, 0, 0);
	if (!c->failed)
		c->map_ref[at] = map + 1;
}

/* Jump forward to a later instruction: returns where to patch. */
static uint32_t emit_jump(cc_t *c, uint8_t code, uint8_t dst, int32_t imm)
{
	return emit(c, code, dst, 0, 0, imm);
}

static void patch_here(cc_t *c, uint32_t at)
{
	if (!c->failed)
		c->insns[at].off = (int16_t)(c->n - at - 1);
}

/* reg = (reg != 0) */
static void emit_bool(cc_t *c, uint8_t reg)
{
	emit(c, BPF_JMP | BPF_JEQ | BPF_K, reg, 0, 1, 0);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_K, reg, 0, 0, 1);
}

/* ---- expressions (code into DREG[depth]) -------------------------------------- */

static void expr(cc_t *c, int depth);

static uint8_t reg_at(cc_t *c, int depth)
{
	if (depth >= DEPTH_REGS) {
		error_at(c, "expression too deep (at most %d operands pending)", DEPTH_REGS);
		return DREG[0];
	}
	return DREG[depth];
}

static void primary_(cc_t *c, int depth);

/* Bounded recursion: a hostile "((((..." or "----..." cannot exhaust the stack. */
static void primary(cc_t *c, int depth)
{
	if (++c->nest > 64)
		error_at(c, "parentheses and unary operators nested deeper than 64");
	else
		primary_(c, depth);
	c->nest--;
}

static void primary_(cc_t *c, int depth)
{
	if (c->failed)
		return;
	uint8_t r = reg_at(c, depth);
	char ch = peek(c);
	if (ch == '(') {
		c->pos++;
		c->paren++;
		expr(c, depth);
		c->paren--;
		expect(c, ')', "')'");
		return;
	}
	if (ch == '!' || ch == '-') {
		c->pos++;
		primary(c, depth);
		if (ch == '-') {
			emit(c, BPF_ALU64 | BPF_NEG, r, 0, 0, 0);
		} else {
			emit(c, BPF_JMP | BPF_JEQ | BPF_K, r, 0, 2, 0);
			emit(c, BPF_ALU64 | BPF_MOV | BPF_K, r, 0, 0, 0);
			emit(c, BPF_JMP | BPF_JA, 0, 0, 1, 0);
			emit(c, BPF_ALU64 | BPF_MOV | BPF_K, r, 0, 0, 1);
		}
		return;
	}
	if (isdigit((unsigned char)ch)) {
		size_t start = c->pos;
		uint64_t v = 0;
		int base = 10;
		if (ch == '0' && c->pos + 1 < c->len && (c->src[c->pos + 1] | 0x20) == 'x') {
			base = 16;
			c->pos += 2;
		}
		size_t digits = 0;
		for (; c->pos < c->len; c->pos++, digits++) {
			char d = c->src[c->pos];
			int x = isdigit((unsigned char)d) ? d - '0'
			        : base == 16 && isxdigit((unsigned char)d) ? (d | 0x20) - 'a' + 10 : -1;
			if (x < 0)
				break;
			if (v > (UINT64_MAX - (uint64_t)x) / (uint64_t)base) {
				c->pos = start;
				error_at(c, "number does not fit in 64 bits");
				return;
			}
			v = v * (uint64_t)base + (uint64_t)x;
		}
		if (base == 16 && digits == 0) {
			error_at(c, "expected hexadecimal digits after 0x");
			return;
		}
		if (c->pos < c->len && (isalpha((unsigned char)c->src[c->pos]) || c->src[c->pos] == '_')) {
			error_at(c, "expected an operator after the number, found '%c'", c->src[c->pos]);
			return;
		}
		emit_const(c, r, v);
		return;
	}
	size_t start = c->pos;
	char name[32];
	if (ident(c, name, sizeof name)) {
		for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
			if (strcmp(FIELDS[i].name, name) == 0) {
				emit(c, BPF_LDX | BPF_MEM | FIELDS[i].size, r, 6, FIELDS[i].off, 0);
				return;
			}
		c->pos = start;
		error_at(c, "unknown field '%s' (fields: ts_ns trace_id service_id size cpu tid arg0 "
		         "arg1 interface_id request_id method flags category pid)", name);
		return;
	}
	char b[48];
	if (!c->failed)
		error_at(c, "expected a number, a field or '(', found %s", found(c, b, sizeof b));
}

static void mul(cc_t *c, int depth)
{
	primary(c, depth);
	while (!c->failed) {
		char ch = peek(c);
		uint8_t op;
		if (ch == '*')
			op = BPF_MUL;
		else if (ch == '/' && !(c->in_filter && c->paren == 0))
			op = BPF_DIV;
		else if (ch == '%')
			op = BPF_MOD;
		else
			return;
		c->pos++;
		primary(c, depth + 1);
		emit(c, BPF_ALU64 | op | BPF_X, reg_at(c, depth), reg_at(c, depth + 1), 0, 0);
	}
}

static void add(cc_t *c, int depth)
{
	mul(c, depth);
	while (!c->failed) {
		char ch = peek(c);
		if (ch != '+' && ch != '-')
			return;
		c->pos++;
		mul(c, depth + 1);
		emit(c, BPF_ALU64 | (ch == '+' ? BPF_ADD : BPF_SUB) | BPF_X, reg_at(c, depth),
		     reg_at(c, depth + 1), 0, 0);
	}
}

static void cmp(cc_t *c, int depth)
{
	add(c, depth);
	if (c->failed)
		return;
	static const struct { const char *tok; uint8_t op; } OPS[] = {
		{ "==", BPF_JEQ }, { "!=", BPF_JNE }, { "<=", BPF_JLE }, { ">=", BPF_JGE },
		{ "<", BPF_JLT }, { ">", BPF_JGT },
	};
	skip_space(c);
	for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
		size_t k = strlen(OPS[i].tok);
		if (c->pos + k <= c->len && memcmp(c->src + c->pos, OPS[i].tok, k) == 0) {
			c->pos += k;
			add(c, depth + 1);
			uint8_t a = reg_at(c, depth), b = reg_at(c, depth + 1);
			/* a = (a OP b): taken -> 1 */
			emit(c, BPF_JMP | OPS[i].op | BPF_X, a, b, 2, 0);
			emit(c, BPF_ALU64 | BPF_MOV | BPF_K, a, 0, 0, 0);
			emit(c, BPF_JMP | BPF_JA, 0, 0, 1, 0);
			emit(c, BPF_ALU64 | BPF_MOV | BPF_K, a, 0, 0, 1);
			return;
		}
	}
}

/* '&' binds looser than comparisons, as in C. */
static void bitand(cc_t *c, int depth)
{
	cmp(c, depth);
	while (!c->failed && peek(c) == '&' && !peek2(c, "&&")) {
		c->pos++;
		cmp(c, depth + 1);
		emit(c, BPF_ALU64 | BPF_AND | BPF_X, reg_at(c, depth), reg_at(c, depth + 1), 0, 0);
	}
}

static void and_(cc_t *c, int depth)
{
	bitand(c, depth);
	while (!c->failed && peek2(c, "&&")) {
		c->pos += 2;
		bitand(c, depth + 1);
		uint8_t a = reg_at(c, depth), b = reg_at(c, depth + 1);
		emit_bool(c, a);
		emit_bool(c, b);
		emit(c, BPF_ALU64 | BPF_AND | BPF_X, a, b, 0, 0);
	}
}

static void expr(cc_t *c, int depth)
{
	and_(c, depth);
	while (!c->failed && peek2(c, "||")) {
		c->pos += 2;
		and_(c, depth + 1);
		uint8_t a = reg_at(c, depth), b = reg_at(c, depth + 1);
		emit(c, BPF_ALU64 | BPF_OR | BPF_X, a, b, 0, 0);
		emit_bool(c, a);
	}
}

/* ---- statements ---------------------------------------------------------------- */

static void statement(cc_t *c)
{
	expect(c, '@', "'@' starting a map statement (@name = count())");
	size_t name_pos = c->pos;
	char name[PROBE_NAME_MAX];
	if (!c->failed && !ident(c, name, sizeof name)) {
		char b[48];
		error_at(c, "expected a map name after '@', found %s", found(c, b, sizeof b));
	}
	if (c->failed)
		return;
	/* key into r7 (0 without one) */
	bool keyed = peek(c) == '[';
	if (keyed) {
		c->pos++;
		c->paren++;
		expr(c, 0);
		c->paren--;
		expect(c, ']', "']'");
	} else {
		emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 7, 0, 0, 0);
	}
	expect(c, '=', "'='");
	size_t agg_pos;
	skip_space(c);
	agg_pos = c->pos;
	char fn[16];
	int agg = -1;
	if (!c->failed && ident(c, fn, sizeof fn))
		for (int i = 0; i < 5; i++)
			if (strcmp(fn, AGG_NAMES[i]) == 0)
				agg = i;
	if (!c->failed && agg < 0) {
		c->pos = agg_pos;
		char b[48];
		error_at(c, "expected an aggregation (count, sum, min, max, hist), found %s",
		         found(c, b, sizeof b));
	}
	expect(c, '(', "'('");
	if (c->failed)
		return;
	if (agg == AGG_COUNT) {
		emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 8, 0, 0, 1);
	} else {
		if (peek(c) == ')') {
			error_at(c, "%s() needs a value, e.g. %s(size)", AGG_NAMES[agg], AGG_NAMES[agg]);
			return;
		}
		c->paren++;
		expr(c, 1);   /* into r8 */
		c->paren--;
	}
	expect(c, ')', agg == AGG_COUNT ? "')' (count() takes no value)" : "')'");
	if (c->failed)
		return;
	/* the map: one per name, one aggregation per map */
	uint32_t m;
	for (m = 0; m < c->n_maps; m++)
		if (strcmp(c->maps[m].name, name) == 0)
			break;
	if (m == c->n_maps) {
		if (c->n_maps == SCRIPT_MAX_MAPS) {
			c->pos = name_pos;
			error_at(c, "more than %u maps", SCRIPT_MAX_MAPS);
			return;
		}
		snprintf(c->maps[m].name, sizeof c->maps[m].name, "%s", name);
		c->maps[m].agg = agg;
		c->n_maps++;
	} else if (c->maps[m].agg != agg) {
		c->pos = name_pos;
		error_at(c, "@%s is already a %s() map, not %s()", name, AGG_NAMES[c->maps[m].agg],
		         AGG_NAMES[agg]);
		return;
	}
	/* key at fp-16 (hist: the log2 bucket of the value at fp-8, and +1) */
	emit(c, BPF_STX | BPF_MEM | BPF_DW, 10, 7, -16, 0);
	if (agg == AGG_HIST) {
		/* r9 = bucket: 0 for 0, else floor(log2 v) + 1; r2 = v */
		emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 9, 0, 0, 0);
		emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 2, 8, 0, 0);
		uint32_t zero = emit_jump(c, BPF_JMP | BPF_JEQ | BPF_K, 2, 0);
		for (int s = 32; s >= 1; s /= 2) {
			/* if (r2 >> s) { r9 += s; r2 >>= s; } */
			emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0);
			emit(c, BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, s);
			emit(c, BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 2, 0);
			emit(c, BPF_ALU64 | BPF_ADD | BPF_K, 9, 0, 0, s);
			emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 2, 3, 0, 0);
		}
		emit(c, BPF_ALU64 | BPF_ADD | BPF_K, 9, 0, 0, 1);
		patch_here(c, zero);
		emit(c, BPF_STX | BPF_MEM | BPF_DW, 10, 9, -8, 0);
		emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 8, 0, 0, 1);
	}
	emit_map(c, 1, m);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
	emit(c, BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -16);
	emit(c, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
	uint32_t miss = emit_jump(c, BPF_JMP | BPF_JEQ | BPF_K, 0, 0);
	uint32_t done1 = 0, done2 = 0;
	bool two = false;
	if (agg == AGG_MIN || agg == AGG_MAX) {
		emit(c, BPF_LDX | BPF_MEM | BPF_DW, 1, 0, 0, 0);
		done2 = emit_jump(c, BPF_JMP | (agg == AGG_MIN ? BPF_JGE : BPF_JLE) | BPF_X, 8, 0);
		c->insns[done2].src_reg = 1;
		emit(c, BPF_STX | BPF_MEM | BPF_DW, 0, 8, 0, 0);
		two = true;
	} else {
		emit(c, BPF_STX | BPF_ATOMIC | BPF_DW, 0, 8, 0, BPF_ADD);
	}
	done1 = emit(c, BPF_JMP | BPF_JA, 0, 0, 0, 0);
	patch_here(c, miss);
	emit(c, BPF_STX | BPF_MEM | BPF_DW, 10, 8, -24, 0);
	emit_map(c, 1, m);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
	emit(c, BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -16);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0);
	emit(c, BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -24);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, BPF_NOEXIST);
	emit(c, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem);
	patch_here(c, done1);
	if (two)
		patch_here(c, done2);
}

static void script(cc_t *c)
{
	skip_space(c);
	if (peek(c) == '*') {
		c->pos++;
		strcpy(c->point, "*");
	} else if (!ident(c, c->point, 28)) {
		char b[48];
		if (!c->failed)
			error_at(c, "expected a trace point name (msg_send, chan_recv, timer_fire, ...) "
			         "or '*', found %s", found(c, b, sizeof b));
		return;
	}
	emit(c, BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0);
	if (peek(c) == '/') {
		c->pos++;
		c->in_filter = true;
		expr(c, 0);
		c->in_filter = false;
		expect(c, '/', "'/' closing the filter");
		if (!c->failed)
			c->exit_jumps[c->n_exit_jumps++] = emit_jump(c, BPF_JMP | BPF_JEQ | BPF_K, 7, 0);
	}
	expect(c, '{', "'{'");
	if (c->failed)
		return;
	for (;;) {
		if (peek(c) == '}')
			break;
		statement(c);
		if (c->failed)
			return;
		if (peek(c) == ';') {
			c->pos++;
			continue;
		}
		if (peek(c) != '}') {
			char b[48];
			error_at(c, "expected ';' or '}', found %s", found(c, b, sizeof b));
			return;
		}
	}
	if (c->n_maps == 0) {
		error_at(c, "expected a statement (@name = count()) before '}'");
		return;
	}
	c->pos++;
	skip_space(c);
	if (c->pos < c->len) {
		char b[48];
		error_at(c, "expected the end of the script after '}', found %s", found(c, b, sizeof b));
		return;
	}
	for (uint32_t i = 0; i < c->n_exit_jumps; i++)
		patch_here(c, c->exit_jumps[i]);
	emit(c, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
	emit(c, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

/* ---- the ELF object ---------------------------------------------------------- */

typedef struct buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
} buf_t;

static size_t put(buf_t *b, const void *data, size_t n)
{
	size_t at = b->len;
	if (b->oom)
		return at;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return at;
		}
		b->p = p;
		b->cap = cap;
	}
	if (data)
		memcpy(b->p + b->len, data, n);
	else
		memset(b->p + b->len, 0, n);
	b->len += n;
	return at;
}

static void put32(buf_t *b, uint32_t v) { put(b, &v, 4); }

static void align8(buf_t *b)
{
	while (b->len % 8)
		put(b, NULL, 1);
}

static uint32_t str_add(buf_t *s, const char *str)
{
	return (uint32_t)put(s, str, strlen(str) + 1);
}

/* BTF: int, per map a struct of four __uint members, its VAR, a DATASEC. */
static void build_btf(const cc_t *c, buf_t *btf)
{
	buf_t types = { 0 }, strs = { 0 };
	put(&strs, "", 1);
	uint32_t next_id = 1;
	uint32_t n_int = str_add(&strs, "int");
	put32(&types, n_int);
	put32(&types, 1u << 24);               /* INT */
	put32(&types, 4);
	put32(&types, (1u << 24) | 32);        /* signed, 32 bits */
	uint32_t int_id = next_id++;
	uint32_t member_names[4] = { str_add(&strs, "type"), str_add(&strs, "max_entries"),
		                         str_add(&strs, "key_size"), str_add(&strs, "value_size") };
	uint32_t var_ids[SCRIPT_MAX_MAPS];
	for (uint32_t m = 0; m < c->n_maps; m++) {
		uint32_t vals[4] = { BPF_MAP_TYPE_HASH, SCRIPT_MAP_ENTRIES,
			                 c->maps[m].agg == AGG_HIST ? 16 : 8, 8 };
		uint32_t ptr_ids[4];
		for (int k = 0; k < 4; k++) {
			put32(&types, 0);
			put32(&types, 3u << 24);           /* ARRAY */
			put32(&types, 0);
			put32(&types, int_id);
			put32(&types, int_id);
			put32(&types, vals[k]);
			uint32_t arr = next_id++;
			put32(&types, 0);
			put32(&types, 2u << 24);           /* PTR */
			put32(&types, arr);
			ptr_ids[k] = next_id++;
		}
		put32(&types, 0);
		put32(&types, (4u << 24) | 4);         /* STRUCT, 4 members */
		put32(&types, 32);
		for (int k = 0; k < 4; k++) {
			put32(&types, member_names[k]);
			put32(&types, ptr_ids[k]);
			put32(&types, (uint32_t)k * 64);
		}
		uint32_t st = next_id++;
		put32(&types, str_add(&strs, c->maps[m].name));
		put32(&types, 14u << 24);              /* VAR */
		put32(&types, st);
		put32(&types, 1);                      /* global */
		var_ids[m] = next_id++;
	}
	put32(&types, str_add(&strs, ".maps"));
	put32(&types, (15u << 24) | c->n_maps);    /* DATASEC */
	put32(&types, c->n_maps * 32);
	for (uint32_t m = 0; m < c->n_maps; m++) {
		put32(&types, var_ids[m]);
		put32(&types, m * 32);
		put32(&types, 32);
	}
	uint16_t magic = 0xeb9f;
	put(btf, &magic, 2);
	uint8_t vf[2] = { 1, 0 };
	put(btf, vf, 2);
	put32(btf, 24);
	put32(btf, 0);
	put32(btf, (uint32_t)types.len);
	put32(btf, (uint32_t)types.len);
	put32(btf, (uint32_t)strs.len);
	put(btf, types.p, types.len);
	put(btf, strs.p, strs.len);
	btf->oom = btf->oom || types.oom || strs.oom;
	free(types.p);
	free(strs.p);
}

static int build_elf(const cc_t *c, uint8_t **out, size_t *out_len)
{
	enum { S_NULL, S_PROG, S_REL, S_MAPS, S_LICENSE, S_BTF, S_SYMTAB, S_STRTAB, S_SHSTR, S_N };
	buf_t f = { 0 }, shstr = { 0 }, strtab = { 0 }, btf = { 0 }, syms = { 0 }, rel = { 0 };
	char section[PROBE_NAME_MAX + 8];
	snprintf(section, sizeof section, "thoth/%s", c->point);
	char relname[PROBE_NAME_MAX + 16];
	snprintf(relname, sizeof relname, ".rel%s", section);
	put(&shstr, "", 1);
	uint32_t names[S_N] = { 0, str_add(&shstr, section), str_add(&shstr, relname),
		                    str_add(&shstr, ".maps"), str_add(&shstr, "license"),
		                    str_add(&shstr, ".BTF"), str_add(&shstr, ".symtab"),
		                    str_add(&shstr, ".strtab"), str_add(&shstr, ".shstrtab") };
	build_btf(c, &btf);
	put(&strtab, "", 1);
	Elf64_Sym sym = { 0 };
	put(&syms, &sym, sizeof sym);
	/* locals first (none), then globals: the program, the maps */
	sym = (Elf64_Sym){ .st_name = str_add(&strtab, "script"),
		               .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC), .st_shndx = S_PROG,
		               .st_value = 0, .st_size = (uint64_t)c->n * 8 };
	put(&syms, &sym, sizeof sym);
	for (uint32_t m = 0; m < c->n_maps; m++) {
		sym = (Elf64_Sym){ .st_name = str_add(&strtab, c->maps[m].name),
			               .st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT),
			               .st_shndx = S_MAPS, .st_value = (uint64_t)m * 32, .st_size = 32 };
		put(&syms, &sym, sizeof sym);
	}
	for (uint32_t i = 0; i < c->n; i++)
		if (c->map_ref[i]) {
			Elf64_Rel r = { .r_offset = (uint64_t)i * 8,
				            .r_info = ELF64_R_INFO(2 + (c->map_ref[i] - 1), R_BPF_64_64) };
			put(&rel, &r, sizeof r);
		}
	static const char license[] = "GPL";
	Elf64_Ehdr eh = { 0 };
	put(&f, &eh, sizeof eh);
	Elf64_Shdr sh[S_N];
	memset(sh, 0, sizeof sh);
	struct { const void *p; size_t len; } data[S_N] = {
		[S_PROG] = { c->insns, (size_t)c->n * 8 }, [S_REL] = { rel.p, rel.len },
		[S_MAPS] = { NULL, (size_t)c->n_maps * 32 }, [S_LICENSE] = { license, sizeof license },
		[S_BTF] = { btf.p, btf.len }, [S_SYMTAB] = { syms.p, syms.len },
		[S_STRTAB] = { strtab.p, strtab.len }, [S_SHSTR] = { shstr.p, shstr.len },
	};
	for (int i = 1; i < S_N; i++) {
		align8(&f);
		sh[i].sh_name = names[i];
		sh[i].sh_offset = f.len;
		sh[i].sh_size = data[i].len;
		put(&f, data[i].p, data[i].len);
		sh[i].sh_addralign = 8;
	}
	sh[S_PROG].sh_type = SHT_PROGBITS;
	sh[S_PROG].sh_flags = SHF_ALLOC | SHF_EXECINSTR;
	sh[S_REL].sh_type = SHT_REL;
	sh[S_REL].sh_link = S_SYMTAB;
	sh[S_REL].sh_info = S_PROG;
	sh[S_REL].sh_entsize = sizeof(Elf64_Rel);
	sh[S_MAPS].sh_type = SHT_PROGBITS;
	sh[S_MAPS].sh_flags = SHF_ALLOC | SHF_WRITE;
	sh[S_LICENSE].sh_type = SHT_PROGBITS;
	sh[S_LICENSE].sh_flags = SHF_ALLOC | SHF_WRITE;
	sh[S_BTF].sh_type = SHT_PROGBITS;
	sh[S_SYMTAB].sh_type = SHT_SYMTAB;
	sh[S_SYMTAB].sh_link = S_STRTAB;
	sh[S_SYMTAB].sh_info = 1;                 /* first global */
	sh[S_SYMTAB].sh_entsize = sizeof(Elf64_Sym);
	sh[S_STRTAB].sh_type = SHT_STRTAB;
	sh[S_SHSTR].sh_type = SHT_STRTAB;
	align8(&f);
	size_t shoff = put(&f, sh, sizeof sh);
	int r = 0;
	if (f.oom || shstr.oom || strtab.oom || btf.oom || syms.oom || rel.oom) {
		r = THOTH_E_NOMEM;
		free(f.p);
	} else {
		Elf64_Ehdr *h = (Elf64_Ehdr *)f.p;
		memcpy(h->e_ident, ELFMAG, SELFMAG);
		h->e_ident[EI_CLASS] = ELFCLASS64;
		h->e_ident[EI_DATA] = ELFDATA2LSB;
		h->e_ident[EI_VERSION] = EV_CURRENT;
		h->e_type = ET_REL;
		h->e_machine = EM_BPF;
		h->e_version = EV_CURRENT;
		h->e_shoff = shoff;
		h->e_ehsize = sizeof *h;
		h->e_shentsize = sizeof(Elf64_Shdr);
		h->e_shnum = S_N;
		h->e_shstrndx = S_SHSTR;
		*out = f.p;
		*out_len = f.len;
	}
	free(shstr.p);
	free(strtab.p);
	free(btf.p);
	free(syms.p);
	free(rel.p);
	return r;
}

int thoth_probe_script_compile(const char *src, size_t len, uint8_t **elf, size_t *elf_len,
                               char *err, size_t err_len)
{
	if (err && err_len)
		err[0] = '\0';
	if (!src || !elf || !elf_len)
		return THOTH_E_INVAL;
	*elf = NULL;
	*elf_len = 0;
	if (len > SCRIPT_MAX_LEN) {
		if (err && err_len)
			snprintf(err, err_len, "script of %zu bytes (at most %u)", len, SCRIPT_MAX_LEN);
		return THOTH_E_LIMIT;
	}
	cc_t *c = calloc(1, sizeof *c);
	if (!c)
		return THOTH_E_NOMEM;
	c->src = src;
	c->len = len;
	c->err = err;
	c->err_len = err_len;
	for (size_t i = 0; i < len; i++)
		if (src[i] == '\0') {
			c->pos = i;
			error_at(c, "NUL byte in the script");
			break;
		}
	if (!c->failed)
		script(c);
	int r = c->failed ? THOTH_E_INVAL : build_elf(c, elf, elf_len);
	free(c);
	return r;
}
