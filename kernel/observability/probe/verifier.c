/*
 * verifier.c - a program either passes or is rejected before it ever runs.
 *
 * Two passes.  The static pass checks every instruction alone: known
 * opcodes, registers r0-r10, no write to r10, ld_imm64 pairs, jump targets
 * inside the program and not into a ld_imm64's second half, known helpers,
 * no unreachable instruction, a size limit.  The second pass is an abstract
 * interpretation of every path (depth first): each register holds a type
 * (not initialised, scalar, ctx, stack, map, map_value, map_value_or_null)
 * and, for scalars and pointer offsets, signed and unsigned ranges; the 512
 * stack bytes are tracked per byte (initialised or not) and per 8-byte slot
 * (a spilled register keeps its type).  Branches on constants narrow the
 * ranges on each side, and a side that cannot be taken is not explored:
 * that is what bounds loops.  States at jump targets are kept; a later
 * state contained in a fully explored one there is pruned (its future was
 * proved safe).  The walk stops with a rejection after
 * THOTH_PROBE_MAX_PROCESSED instructions, as the kernel's does: an
 * unbounded loop never finishes its exploration.
 *
 * Every rejection names the program, the instruction index, its source
 * line (BTF line info), the instruction, the reason and the register state
 * at that point.  docs/PROBES.md lists the rules.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

enum rtype { T_NOT_INIT, T_SCALAR, T_CTX, T_STACK, T_MAP, T_MAP_VALUE, T_MAP_VALUE_OR_NULL };
static const char *const TYPE_NAME[] = { "uninit", "scalar", "ctx", "fp", "map_ptr",
                                         "map_value", "map_value_or_null" };

typedef struct reg {
	uint8_t type;
	uint8_t map;
	uint32_t id;          /* map_value_or_null: copies share it, the NULL check resolves all */
	int32_t off;          /* pointers: the fixed offset */
	/* scalars: the value; pointers: the variable part of the offset */
	int64_t smin, smax;
	uint64_t umin, umax;
} reg_t;

enum { S_NONE, S_MISC, S_SPILL };
typedef struct slot {
	uint8_t kind;
	uint8_t init;         /* bit b: byte b of the slot written */
	reg_t spill;
} slot_t;

typedef struct vstate {
	reg_t r[11];
	slot_t s[PROBE_STACK / 8];
} vstate_t;

typedef struct frame {
	struct frame *parent;
	uint32_t branches;
	struct frame *next_alloc;
} frame_t;

typedef struct seen {
	vstate_t st;
	frame_t *frame;
	struct seen *next;
} seen_t;

typedef struct pending {
	vstate_t st;
	uint32_t pc;
	frame_t *frame;
} pending_t;

enum { MAX_PENDING = 4096, MAX_SEEN_PER_INSN = 32, MAX_SEEN = 16384 };

typedef struct verifier {
	const thoth_probe_object_t *obj;
	const probe_prog_def_t *p;
	const probe_insn_t *in;
	uint32_t n;
	uint8_t *flags;        /* per insn: F_* */
	seen_t **seen;
	uint32_t n_seen;
	uint16_t *seen_count;
	pending_t *stack;
	uint32_t depth, cap;
	frame_t *frames;
	uint32_t next_id;
	uint64_t processed;
	uint64_t ctx_read;     /* bit b: context byte b may be read */
	bool widen;            /* first attempt: widen scalars at forward joins */
	bool has_loop;
	char *msg;
	size_t msg_len;
	const vstate_t *fail_state;
} verifier_t;

enum { F_SECOND = 1, F_PRUNE = 2, F_REACHED = 4, F_LOOP_HEAD = 8 };

#define U32MAX 0xffffffffull
#define VAR_OFF_MAX (1ll << 29)

/* ---- messages -------------------------------------------------------------------- */

static void disasm(const probe_insn_t *in, char *buf, size_t len);

static void fmt_reg(const reg_t *r, char *buf, size_t len)
{
	switch (r->type) {
	case T_SCALAR:
		if (r->umin == r->umax)
			snprintf(buf, len, "%lld", (long long)r->umin);
		else if (r->umin == 0 && r->umax == UINT64_MAX && r->smin == INT64_MIN &&
		         r->smax == INT64_MAX)
			snprintf(buf, len, "scalar");
		else if (r->smin >= 0 || r->umax <= (uint64_t)INT64_MAX)
			snprintf(buf, len, "scalar[%llu..%llu]", (unsigned long long)r->umin,
			         (unsigned long long)r->umax);
		else
			snprintf(buf, len, "scalar[s%lld..%lld]", (long long)r->smin,
			         (long long)r->smax);
		return;
	case T_NOT_INIT:
		snprintf(buf, len, "uninit");
		return;
	default: {
		char var[64] = "";
		if (r->type != T_MAP && (r->smin != 0 || r->smax != 0))
			snprintf(var, sizeof var, "+[%lld..%lld]", (long long)r->smin,
			         (long long)r->smax);
		if (r->type == T_STACK)
			snprintf(buf, len, "fp%+d%s", r->off, var);
		else if (r->type == T_CTX)
			snprintf(buf, len, "ctx%+d%s", r->off, var);
		else
			snprintf(buf, len, "%s(map#%u)%+d%s", TYPE_NAME[r->type], r->map, r->off, var);
	}
	}
}

static void fmt_state(const verifier_t *v, const vstate_t *st, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i <= 10 && used + 1 < len; i++) {
		if (st->r[i].type == T_NOT_INIT)
			continue;
		char r[200];
		fmt_reg(&st->r[i], r, sizeof r);
		if (st->r[i].type >= T_MAP && st->r[i].map < v->obj->n_maps) {
			/* name the map instead of its index */
			char named[180];
			const char *hash = strstr(r, "(map#");
			const char *close = hash ? strchr(hash, ')') : NULL;
			if (hash && close) {
				snprintf(named, sizeof named, "%.*s(%s)%s", (int)(hash - r), r,
				         v->obj->maps[st->r[i].map].name, close + 1);
				snprintf(r, sizeof r, "%s", named);
			}
		}
		int k = snprintf(buf + used, len - used, "%sR%d=%s", used ? " " : "", i, r);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	for (int s = 0; s < PROBE_STACK / 8 && used + 1 < len; s++) {
		const slot_t *sl = &st->s[s];
		if (sl->kind == S_NONE)
			continue;
		char r[96];
		if (sl->kind == S_SPILL)
			fmt_reg(&sl->spill, r, sizeof r);
		else
			snprintf(r, sizeof r, "misc(bytes 0x%02x)", sl->init);
		int k = snprintf(buf + used, len - used, " fp%d=%s", -(PROBE_STACK - s * 8), r);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	if (used >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

__attribute__((format(printf, 4, 5)))
static int reject(verifier_t *v, uint32_t pc, const vstate_t *st, const char *fmt, ...)
{
	if (!v->msg || !v->msg_len)
		return -1;   /* the widened attempt: its reasons are not reported */
	char why[512], line[160] = "", ins[96] = "", state[1024] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (pc < v->n) {
		probe_line_of(v->p, pc, line, sizeof line);
		disasm(&v->in[pc], ins, sizeof ins);
	}
	if (st)
		fmt_state(v, st, state, sizeof state);
	snprintf(v->msg, v->msg_len, "%s (%s): insn %u%s%s%s%s%s: %s%s%s", v->p->section,
	         v->p->name, pc, line[0] ? " at " : "", line, ins[0] ? " '" : "", ins[0] ? ins : "",
	         ins[0] ? "'" : "", why, state[0] ? "\n  state: " : "", state);
	return -1;
}

/* ---- a small disassembler for the messages --------------------------------------- */

static const char *const ALU_OP[16] = { "+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=",
                                        "neg", "%=", "^=", "=", "s>>=", "end", "?", "?" };
static const char *const JMP_OP[16] = { "goto", "==", ">", ">=", "&", "!=", "s>", "s>=",
                                        "call", "exit", "<", "<=", "s<", "s<=", "?", "?" };
static const char *const SZ[4] = { "u32", "u16", "u8", "u64" };

static void disasm(const probe_insn_t *in, char *buf, size_t len)
{
	uint8_t cls = BPF_CLASS(in->code), op = BPF_OP(in->code) >> 4;
	const char *w = cls == BPF_ALU || cls == BPF_JMP32 ? "w" : "r";
	char src[24];
	if (BPF_SRC(in->code) == BPF_X)
		snprintf(src, sizeof src, "%s%u", w, in->src_reg);
	else
		snprintf(src, sizeof src, "%d", in->imm);
	switch (cls) {
	case BPF_ALU: case BPF_ALU64:
		if (op == 8)
			snprintf(buf, len, "%s%u = -%s%u", w, in->dst_reg, w, in->dst_reg);
		else
			snprintf(buf, len, "%s%u %s %s", w, in->dst_reg, ALU_OP[op], src);
		return;
	case BPF_JMP: case BPF_JMP32:
		if (op == 0)
			snprintf(buf, len, "goto %+d", in->off);
		else if (op == 8)
			snprintf(buf, len, "call %d", in->imm);
		else if (op == 9)
			snprintf(buf, len, "exit");
		else
			snprintf(buf, len, "if %s%u %s %s goto %+d", w, in->dst_reg, JMP_OP[op], src,
			         in->off);
		return;
	case BPF_LDX:
		snprintf(buf, len, "r%u = *(%s *)(r%u %+d)", in->dst_reg, SZ[BPF_SIZE(in->code) >> 3],
		         in->src_reg, in->off);
		return;
	case BPF_STX:
		if (BPF_MODE(in->code) == BPF_ATOMIC)
			snprintf(buf, len, "atomic(0x%x) *(%s *)(r%u %+d), r%u", in->imm,
			         SZ[BPF_SIZE(in->code) >> 3], in->dst_reg, in->off, in->src_reg);
		else
			snprintf(buf, len, "*(%s *)(r%u %+d) = r%u", SZ[BPF_SIZE(in->code) >> 3],
			         in->dst_reg, in->off, in->src_reg);
		return;
	case BPF_ST:
		snprintf(buf, len, "*(%s *)(r%u %+d) = %d", SZ[BPF_SIZE(in->code) >> 3], in->dst_reg,
		         in->off, in->imm);
		return;
	case BPF_LD:
		if (in->code == (BPF_LD | BPF_IMM | BPF_DW))
			snprintf(buf, len, "r%u = %s%d ll", in->dst_reg,
			         in->src_reg == PROBE_PSEUDO_MAP ? "map#" : "", in->imm);
		else
			snprintf(buf, len, "ld 0x%02x", in->code);
		return;
	default:
		snprintf(buf, len, "0x%02x", in->code);
	}
}

/* ---- scalar ranges ------------------------------------------------------------------ */

static void mark_unknown(reg_t *r)
{
	memset(r, 0, sizeof *r);
	r->type = T_SCALAR;
	r->smin = INT64_MIN;
	r->smax = INT64_MAX;
	r->umin = 0;
	r->umax = UINT64_MAX;
}

static void mark_const(reg_t *r, uint64_t v)
{
	memset(r, 0, sizeof *r);
	r->type = T_SCALAR;
	r->smin = r->smax = (int64_t)v;
	r->umin = r->umax = v;
}

static void mark_range_u(reg_t *r, uint64_t lo, uint64_t hi)
{
	mark_unknown(r);
	r->umin = lo;
	r->umax = hi;
	if (hi <= (uint64_t)INT64_MAX) {
		r->smin = (int64_t)lo;
		r->smax = (int64_t)hi;
	}
}

/* Derive each range from the other where possible; false if empty. */
static bool sync_bounds(reg_t *r)
{
	if (r->smin >= 0) {
		if ((uint64_t)r->smin > r->umin)
			r->umin = (uint64_t)r->smin;
		if ((uint64_t)r->smax < r->umax)
			r->umax = (uint64_t)r->smax;
	} else if (r->smax < 0) {
		if ((uint64_t)r->smin > r->umin)
			r->umin = (uint64_t)r->smin;
		if ((uint64_t)r->smax < r->umax)
			r->umax = (uint64_t)r->smax;
	}
	if (r->umax <= (uint64_t)INT64_MAX || r->umin > (uint64_t)INT64_MAX) {
		if ((int64_t)r->umin > r->smin)
			r->smin = (int64_t)r->umin;
		if ((int64_t)r->umax < r->smax)
			r->smax = (int64_t)r->umax;
	}
	return r->umin <= r->umax && r->smin <= r->smax;
}

static bool is_const(const reg_t *r)
{
	return r->type == T_SCALAR && r->umin == r->umax;
}

/* dst = dst OP src on scalars (64-bit). */
static void scalar_alu(reg_t *d, const reg_t *s, uint8_t op, bool *div_zero_const)
{
	reg_t out;
	mark_unknown(&out);
	if (is_const(d) && is_const(s)) {
		uint64_t a = d->umin, b = s->umin, v = 0;
		switch (op) {
		case BPF_ADD: v = a + b; break;
		case BPF_SUB: v = a - b; break;
		case BPF_MUL: v = a * b; break;
		case BPF_DIV: v = b ? a / b : 0; break;
		case BPF_MOD: v = b ? a % b : a; break;
		case BPF_OR: v = a | b; break;
		case BPF_AND: v = a & b; break;
		case BPF_XOR: v = a ^ b; break;
		case BPF_LSH: v = a << (b & 63); break;
		case BPF_RSH: v = a >> (b & 63); break;
		case BPF_ARSH: v = (uint64_t)((int64_t)a >> (b & 63)); break;
		}
		if (op == BPF_DIV && b == 0 && div_zero_const)
			*div_zero_const = true;
		mark_const(d, v);
		return;
	}
	switch (op) {
	case BPF_ADD:
		if (!__builtin_add_overflow(d->smin, s->smin, &out.smin) &&
		    !__builtin_add_overflow(d->smax, s->smax, &out.smax)) {
			/* signed fine */
		} else {
			out.smin = INT64_MIN;
			out.smax = INT64_MAX;
		}
		if (__builtin_add_overflow(d->umin, s->umin, &out.umin) ||
		    __builtin_add_overflow(d->umax, s->umax, &out.umax)) {
			out.umin = 0;
			out.umax = UINT64_MAX;
		}
		break;
	case BPF_SUB:
		if (__builtin_sub_overflow(d->smin, s->smax, &out.smin) ||
		    __builtin_sub_overflow(d->smax, s->smin, &out.smax)) {
			out.smin = INT64_MIN;
			out.smax = INT64_MAX;
		}
		if (d->umin >= s->umax) {
			out.umin = d->umin - s->umax;
			out.umax = d->umax - s->umin;
		}
		break;
	case BPF_MUL:
		if (!__builtin_mul_overflow(d->umax, s->umax, &out.umax))
			out.umin = d->umin * s->umin;
		else
			out.umax = UINT64_MAX;
		break;
	case BPF_AND:
		out.umax = d->umax < s->umax ? d->umax : s->umax;
		break;
	case BPF_OR: case BPF_XOR: {
		uint64_t m = d->umax | s->umax;
		int bits = m ? 64 - __builtin_clzll(m) : 0;
		out.umax = bits >= 64 ? UINT64_MAX : ((1ull << bits) - 1);
		if (op == BPF_OR)
			out.umin = d->umin > s->umin ? d->umin : s->umin;
		break;
	}
	case BPF_DIV:
		out.umax = d->umax;     /* x/0 = 0, x/y <= x */
		break;
	case BPF_MOD:
		out.umax = d->umax;     /* x%0 = x, x%y < y <= ... <= x */
		if (s->umin > 0 && s->umax - 1 < out.umax)
			out.umax = s->umax - 1;
		break;
	case BPF_LSH:
		if (is_const(s) && s->umin < 64 && d->umax <= (UINT64_MAX >> s->umin)) {
			out.umin = d->umin << s->umin;
			out.umax = d->umax << s->umin;
		}
		break;
	case BPF_RSH:
		if (is_const(s) && s->umin < 64) {
			out.umin = d->umin >> s->umin;
			out.umax = d->umax >> s->umin;
		} else {
			out.umax = d->umax;
		}
		break;
	case BPF_ARSH:
		if (is_const(s) && s->umin < 64) {
			out.smin = d->smin >> s->umin;
			out.smax = d->smax >> s->umin;
		}
		break;
	}
	if (!sync_bounds(&out))
		mark_unknown(&out);
	*d = out;
}

static void truncate32(reg_t *r)
{
	if (r->umax <= U32MAX && r->umin <= r->umax) {
		r->smin = (int64_t)r->umin;
		r->smax = (int64_t)r->umax;
		return;
	}
	if (is_const(r)) {
		mark_const(r, r->umin & U32MAX);
		return;
	}
	mark_range_u(r, 0, U32MAX);
}

/* ---- state helpers ------------------------------------------------------------------- */

static bool reg_within(const reg_t *old, const reg_t *cur)
{
	return cur->smin >= old->smin && cur->smax <= old->smax && cur->umin >= old->umin &&
	       cur->umax <= old->umax;
}

typedef struct idmap { uint32_t a[16], b[16]; int n; } idmap_t;

static bool ids_match(idmap_t *m, uint32_t a, uint32_t b)
{
	for (int i = 0; i < m->n; i++)
		if (m->a[i] == a || m->b[i] == b)
			return m->a[i] == a && m->b[i] == b;
	if (m->n == 16)
		return false;
	m->a[m->n] = a;
	m->b[m->n++] = b;
	return true;
}

static bool reg_subsumes(const reg_t *old, const reg_t *cur, idmap_t *m)
{
	if (old->type == T_NOT_INIT)
		return true;
	if (old->type != cur->type)
		return false;
	if (old->type == T_SCALAR)
		return reg_within(old, cur);
	if (old->map != cur->map || old->off != cur->off || !reg_within(old, cur))
		return false;
	if (old->type == T_MAP_VALUE_OR_NULL)
		return ids_match(m, old->id, cur->id);
	return true;
}

static bool state_subsumes(const vstate_t *old, const vstate_t *cur)
{
	idmap_t m = { .n = 0 };
	for (int i = 0; i < 11; i++)
		if (!reg_subsumes(&old->r[i], &cur->r[i], &m))
			return false;
	for (int s = 0; s < PROBE_STACK / 8; s++) {
		const slot_t *o = &old->s[s], *c = &cur->s[s];
		if (o->kind == S_NONE)
			continue;
		if ((o->init & c->init) != o->init)
			return false;
		if (o->kind == S_SPILL) {
			if (c->kind != S_SPILL || !reg_subsumes(&o->spill, &c->spill, &m))
				return false;
		} else if (c->kind == S_SPILL && c->spill.type != T_SCALAR) {
			return false;
		}
	}
	return true;
}

static frame_t *frame_new(verifier_t *v, frame_t *parent)
{
	frame_t *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->parent = parent;
	f->branches = 1;
	f->next_alloc = v->frames;
	v->frames = f;
	if (parent)
		parent->branches++;
	return f;
}

static void frame_done(frame_t *f)
{
	while (f && --f->branches == 0)
		f = f->parent;
}

/* ---- the static pass ------------------------------------------------------------------ */

static bool helper_allowed(int32_t id)
{
	switch (id) {
	case BPF_FUNC_map_lookup_elem: case BPF_FUNC_map_update_elem:
	case BPF_FUNC_map_delete_elem: case BPF_FUNC_ktime_get_ns: case BPF_FUNC_trace_printk:
	case BPF_FUNC_get_smp_processor_id: case BPF_FUNC_get_current_pid_tgid:
	case BPF_FUNC_ringbuf_output:
		return true;
	default:
		return false;
	}
}

static const char *const HELPER_NAMES[] = {
#define PROBE_HELPER_NAME_(x) "bpf_" #x
	__BPF_FUNC_MAPPER(PROBE_HELPER_NAME_)
#undef PROBE_HELPER_NAME_
};

const char *thoth_probe_helper_name(int32_t id)
{
	if (id <= 0 || (size_t)id >= sizeof HELPER_NAMES / sizeof HELPER_NAMES[0])
		return NULL;
	return HELPER_NAMES[id];
}

static bool valid_alu(uint8_t code, const probe_insn_t *in)
{
	uint8_t op = BPF_OP(code);
	switch (op) {
	case BPF_ADD: case BPF_SUB: case BPF_MUL: case BPF_DIV: case BPF_OR: case BPF_AND:
	case BPF_LSH: case BPF_RSH: case BPF_MOD: case BPF_XOR: case BPF_MOV: case BPF_ARSH:
		return in->off == 0;
	case BPF_NEG:
		return BPF_SRC(code) == BPF_K && in->src_reg == 0 && in->imm == 0 && in->off == 0;
	case BPF_END:
		return BPF_CLASS(code) == BPF_ALU && in->src_reg == 0 && in->off == 0 &&
		       (in->imm == 16 || in->imm == 32 || in->imm == 64);
	default:
		return false;
	}
}

static int static_pass(verifier_t *v)
{
	const probe_insn_t *in = v->in;
	uint32_t n = v->n;
	if (n == 0)
		return reject(v, 0, NULL, "empty program");
	if (n > THOTH_PROBE_MAX_INSNS)
		return reject(v, THOTH_PROBE_MAX_INSNS, NULL,
		              "program of %u instructions exceeds the limit of %u", n,
		              THOTH_PROBE_MAX_INSNS);
	for (uint32_t i = 0; i < n; i++) {
		if (v->flags[i] & F_SECOND)
			continue;
		uint8_t code = in[i].code, cls = BPF_CLASS(code);
		if (in[i].dst_reg > 10 || in[i].src_reg > 10)
			return reject(v, i, NULL, "invalid register r%u (r0-r10 exist)",
			              in[i].dst_reg > 10 ? in[i].dst_reg : in[i].src_reg);
		switch (cls) {
		case BPF_LD:
			if (code != (BPF_LD | BPF_IMM | BPF_DW)) {
				if (BPF_MODE(code) == BPF_ABS || BPF_MODE(code) == BPF_IND)
					return reject(v, i, NULL, "LD_ABS/LD_IND reads a packet: a probe "
					              "has none");
				return reject(v, i, NULL, "unknown opcode 0x%02x", code);
			}
			if (i + 1 >= n)
				return reject(v, i, NULL, "ld_imm64 is the last instruction: its second "
				              "half is missing");
			if (in[i + 1].code || in[i + 1].dst_reg || in[i + 1].src_reg || in[i + 1].off ||
			    in[i].off)
				return reject(v, i, NULL, "malformed ld_imm64: second half must be zero "
				              "but for its imm");
			if (in[i].src_reg == PROBE_PSEUDO_MAP) {
				if (in[i].imm < 0 || (uint32_t)in[i].imm >= v->obj->n_maps)
					return reject(v, i, NULL, "ld_imm64 names map #%d; the object has %u "
					              "maps", in[i].imm, v->obj->n_maps);
			} else if (in[i].src_reg != 0) {
				return reject(v, i, NULL, "ld_imm64 with pseudo source %u (only map "
				              "references, src 1)", in[i].src_reg);
			}
			if (in[i].dst_reg == BPF_REG_10)
				return reject(v, i, NULL, "the frame pointer r10 is read-only");
			v->flags[i + 1] |= F_SECOND;
			break;
		case BPF_ALU: case BPF_ALU64:
			if (!valid_alu(code, &in[i]) || (BPF_SRC(code) == BPF_K && in[i].src_reg))
				return reject(v, i, NULL, "unknown or malformed ALU opcode 0x%02x", code);
			if (in[i].dst_reg == BPF_REG_10)
				return reject(v, i, NULL, "the frame pointer r10 is read-only");
			if ((BPF_OP(code) == BPF_DIV || BPF_OP(code) == BPF_MOD) &&
			    BPF_SRC(code) == BPF_K && in[i].imm == 0)
				return reject(v, i, NULL, "division by zero (immediate 0)");
			if ((BPF_OP(code) == BPF_LSH || BPF_OP(code) == BPF_RSH ||
			     BPF_OP(code) == BPF_ARSH) && BPF_SRC(code) == BPF_K &&
			    (in[i].imm < 0 || in[i].imm >= (cls == BPF_ALU64 ? 64 : 32)))
				return reject(v, i, NULL, "shift by %d is out of range", in[i].imm);
			break;
		case BPF_LDX:
			if (BPF_MODE(code) != BPF_MEM || in[i].imm)
				return reject(v, i, NULL, "unknown load opcode 0x%02x", code);
			if (in[i].dst_reg == BPF_REG_10)
				return reject(v, i, NULL, "the frame pointer r10 is read-only");
			break;
		case BPF_ST:
			if (BPF_MODE(code) != BPF_MEM || in[i].src_reg)
				return reject(v, i, NULL, "unknown store opcode 0x%02x", code);
			break;
		case BPF_STX:
			if (BPF_MODE(code) == BPF_ATOMIC) {
				if (BPF_SIZE(code) != BPF_W && BPF_SIZE(code) != BPF_DW)
					return reject(v, i, NULL, "atomic operation on %s: only u32/u64",
					              SZ[BPF_SIZE(code) >> 3]);
				int32_t op = in[i].imm;
				if (op != BPF_ADD && op != (BPF_ADD | BPF_FETCH) && op != BPF_OR &&
				    op != (BPF_OR | BPF_FETCH) && op != BPF_AND &&
				    op != (BPF_AND | BPF_FETCH) && op != BPF_XOR &&
				    op != (BPF_XOR | BPF_FETCH) && op != BPF_XCHG && op != BPF_CMPXCHG)
					return reject(v, i, NULL, "unknown atomic operation 0x%x", op);
			} else if (BPF_MODE(code) != BPF_MEM || in[i].imm) {
				return reject(v, i, NULL, "unknown store opcode 0x%02x", code);
			}
			break;
		case BPF_JMP: case BPF_JMP32: {
			uint8_t op = BPF_OP(code);
			if (op == BPF_CALL) {
				if (cls != BPF_JMP || BPF_SRC(code) != BPF_K || in[i].dst_reg || in[i].off)
					return reject(v, i, NULL, "malformed call");
				if (in[i].src_reg == BPF_PSEUDO_CALL)
					return reject(v, i, NULL, "BPF-to-BPF calls (subprograms) are not "
					              "supported: mark the function static __always_inline");
				if (in[i].src_reg != 0)
					return reject(v, i, NULL, "kfunc calls (src %u) are not supported",
					              in[i].src_reg);
				if (!helper_allowed(in[i].imm)) {
					const char *name = thoth_probe_helper_name(in[i].imm);
					return reject(v, i, NULL, "helper %d (%s) is not available to thoth "
					              "probes (available: 1 bpf_map_lookup_elem, 2 "
					              "bpf_map_update_elem, 3 bpf_map_delete_elem, 5 "
					              "bpf_ktime_get_ns, 6 bpf_trace_printk, 8 "
					              "bpf_get_smp_processor_id, 14 bpf_get_current_pid_tgid, "
					              "130 bpf_ringbuf_output)", in[i].imm,
					              name ? name : "unknown to Linux too");
				}
				break;
			}
			if (op == BPF_EXIT) {
				if (cls != BPF_JMP || in[i].dst_reg || in[i].src_reg || in[i].off ||
				    in[i].imm || BPF_SRC(code) != BPF_K)
					return reject(v, i, NULL, "malformed exit");
				break;
			}
			if (op == BPF_JA) {
				if (cls != BPF_JMP || in[i].dst_reg || in[i].src_reg || in[i].imm ||
				    BPF_SRC(code) != BPF_K)
					return reject(v, i, NULL, "malformed goto");
			} else if (op > BPF_JSLE || op == 0xe0 || op == 0xf0) {
				return reject(v, i, NULL, "unknown jump opcode 0x%02x", code);
			} else if (BPF_SRC(code) == BPF_K && in[i].src_reg) {
				return reject(v, i, NULL, "malformed conditional jump");
			}
			int64_t t = (int64_t)i + 1 + in[i].off;
			if (t < 0 || t >= (int64_t)n)
				return reject(v, i, NULL, "jump to insn %lld, out of the program (0..%u)",
				              (long long)t, n - 1);
			break;
		}
		default:
			return reject(v, i, NULL, "unknown opcode 0x%02x", code);
		}
	}
	/* Second pass: jump targets (now that every second half is known). */
	for (uint32_t i = 0; i < n; i++) {
		uint8_t cls = BPF_CLASS(v->in[i].code), op = BPF_OP(v->in[i].code);
		if (v->flags[i] & F_SECOND)
			continue;
		if ((cls == BPF_JMP || cls == BPF_JMP32) && op != BPF_CALL && op != BPF_EXIT) {
			uint32_t t = (uint32_t)((int64_t)i + 1 + in[i].off);
			if (v->flags[t] & F_SECOND)
				return reject(v, i, NULL, "jump to insn %u, the middle of a ld_imm64", t);
			v->flags[t] |= F_PRUNE;
			if (t <= i)
				v->flags[t] |= F_LOOP_HEAD;
			if (t <= i)
				v->has_loop = true;
			if (op != BPF_JA && i + 1 < n)
				v->flags[i + 1] |= F_PRUNE;
		}
	}
	/* Reachability: the kernel's rule, dead code is a sign of a confused
	 * compiler or a hand-made program. */
	uint32_t *todo = malloc(sizeof *todo * n);
	if (!todo)
		return reject(v, 0, NULL, "out of memory");
	uint32_t nt = 0;
	todo[nt++] = 0;
	v->flags[0] |= F_REACHED;
	while (nt) {
		uint32_t i = todo[--nt];
		uint8_t cls = BPF_CLASS(in[i].code), op = BPF_OP(in[i].code);
		uint32_t next[2];
		int k = 0;
		bool jmp = cls == BPF_JMP || cls == BPF_JMP32;
		if (jmp && op == BPF_EXIT)
			continue;
		if (jmp && op != BPF_CALL)
			next[k++] = (uint32_t)((int64_t)i + 1 + in[i].off);
		if (!(jmp && op == BPF_JA)) {
			uint32_t f = i + (in[i].code == (BPF_LD | BPF_IMM | BPF_DW) ? 2 : 1);
			if (f >= n) {
				free(todo);
				return reject(v, i, NULL, "falls off the end of the program: the last "
				              "instruction must be exit or goto (missing exit)");
			}
			next[k++] = f;
		}
		for (int j = 0; j < k; j++)
			if (!(v->flags[next[j]] & F_REACHED)) {
				v->flags[next[j]] |= F_REACHED;
				todo[nt++] = next[j];
			}
	}
	free(todo);
	for (uint32_t i = 0; i < n; i++)
		if (!(v->flags[i] & (F_REACHED | F_SECOND)))
			return reject(v, i, NULL, "unreachable instruction");
	return 0;
}

/* ---- memory access ---------------------------------------------------------------- */

static const char *map_name(verifier_t *v, const reg_t *r)
{
	return r->map < v->obj->n_maps ? v->obj->maps[r->map].name : "?";
}

/* Bounds of a pointer + access: [lo, hi) relative to the region start. */
static int ptr_range(verifier_t *v, uint32_t pc, const vstate_t *st, int regno, int32_t off,
                     uint32_t size, int64_t *lo, int64_t *hi)
{
	const reg_t *r = &st->r[regno];
	*lo = *hi = 0;   /* set on the error return too (GCC -O3 cannot see reject() < 0) */
	if (r->smin < -VAR_OFF_MAX || r->smax > VAR_OFF_MAX)
		return reject(v, pc, st, "R%d: unbounded variable offset on %s (bound it with a "
		              "comparison first)", regno, TYPE_NAME[r->type]);
	*lo = (int64_t)r->off + off + r->smin;
	*hi = (int64_t)r->off + off + r->smax + size;
	return 0;
}

static int check_stack(verifier_t *v, uint32_t pc, vstate_t *st, int regno, int32_t off,
                       uint32_t size, bool write, const reg_t *val, reg_t *out)
{
	const reg_t *r = &st->r[regno];
	if (r->smin != r->smax)
		return reject(v, pc, st, "R%d: variable offset into the stack", regno);
	int64_t lo, hi;
	if (ptr_range(v, pc, st, regno, off, size, &lo, &hi) < 0)
		return -1;
	if (lo < -PROBE_STACK || hi > 0)
		return reject(v, pc, st, "stack access fp%+lld size %u is out of bounds "
		              "(fp-512..fp-1)", (long long)lo, size);
	int64_t pos = lo + PROBE_STACK;        /* 0..511 */
	int slot = (int)(pos / 8), b = (int)(pos % 8);
	slot_t *sl = &st->s[slot];
	bool aligned8 = size == 8 && b == 0;
	if (write) {
		if (val && val->type != T_SCALAR && val->type != T_NOT_INIT && !aligned8)
			return reject(v, pc, st, "partial spill of pointer R%d to fp%+lld (a pointer "
			              "needs an aligned 8-byte slot)", (int)(val - st->r),
			              (long long)lo);
		if (b + (int)size > 8 && !aligned8) {
			/* straddles two slots: write them as misc bytes */
			for (int64_t p = pos; p < pos + size; p++) {
				slot_t *x = &st->s[p / 8];
				if (x->kind == S_SPILL) {
					x->kind = S_MISC;
				}
				if (x->kind == S_NONE)
					x->kind = S_MISC;
				x->init |= (uint8_t)(1u << (p % 8));
			}
			return 0;
		}
		if (aligned8) {
			sl->kind = S_SPILL;
			sl->init = 0xff;
			if (val)
				sl->spill = *val;
			else
				mark_unknown(&sl->spill);
			return 0;
		}
		/* partial write over a spilled register: it is now bytes */
		if (sl->kind == S_SPILL)
			sl->kind = S_MISC;
		if (sl->kind == S_NONE)
			sl->kind = S_MISC;
		sl->init |= (uint8_t)(((1u << size) - 1) << b);
		return 0;
	}
	/* read: every byte initialised */
	for (int64_t p = pos; p < pos + size; p++) {
		const slot_t *x = &st->s[p / 8];
		if (!(x->init & (1u << (p % 8))))
			return reject(v, pc, st, "read of uninitialised stack fp%+lld (%u bytes at "
			              "fp%+lld)", (long long)(p - PROBE_STACK), size, (long long)lo);
	}
	if (out) {
		if (aligned8 && sl->kind == S_SPILL) {
			*out = sl->spill;
		} else {
			for (int64_t p = pos; p < pos + size; p++) {
				const slot_t *x = &st->s[p / 8];
				if (x->kind == S_SPILL && x->spill.type != T_SCALAR)
					return reject(v, pc, st, "partial read of spilled pointer at fp%+lld",
					              (long long)(p - PROBE_STACK));
			}
			if (size < 8)
				mark_range_u(out, 0, (1ull << (size * 8)) - 1);
			else
				mark_unknown(out);
		}
	}
	return 0;
}

/* Helper memory argument: SIZE bytes at R (stack/map value/ctx), read (or
 * written by the helper when WRITE). */
static int check_mem_arg(verifier_t *v, uint32_t pc, vstate_t *st, int regno, uint64_t size,
                         const char *what)
{
	const reg_t *r = &st->r[regno];
	int64_t lo, hi;
	if (size == 0)
		return reject(v, pc, st, "R%d (%s): zero-size memory", regno, what);
	switch (r->type) {
	case T_STACK:
		if (r->smin != r->smax)
			return reject(v, pc, st, "R%d (%s): variable stack offset", regno, what);
		if (size > PROBE_STACK)
			return reject(v, pc, st, "R%d (%s): %llu bytes exceed the stack", regno, what,
			              (unsigned long long)size);
		for (uint64_t k = 0; k < size; k++) {
			int64_t a = r->off + r->smin + (int64_t)k;
			if (a < -PROBE_STACK || a >= 0)
				return reject(v, pc, st, "R%d (%s): %llu bytes at fp%+lld leave the stack",
				              regno, what, (unsigned long long)size,
				              (long long)(r->off + r->smin));
			int64_t p = a + PROBE_STACK;
			if (!(st->s[p / 8].init & (1u << (p % 8))))
				return reject(v, pc, st, "R%d (%s): %llu bytes at fp%+lld: byte fp%+lld "
				              "is not initialised", regno, what, (unsigned long long)size,
				              (long long)(r->off + r->smin), (long long)a);
			if (st->s[p / 8].kind == S_SPILL && st->s[p / 8].spill.type != T_SCALAR)
				return reject(v, pc, st, "R%d (%s): would read a spilled pointer at "
				              "fp%+lld", regno, what, (long long)a);
		}
		return 0;
	case T_MAP_VALUE:
		if (ptr_range(v, pc, st, regno, 0, 0, &lo, &hi) < 0)
			return -1;
		if (lo < 0 || (uint64_t)hi + size > v->obj->maps[r->map].value_size)
			return reject(v, pc, st, "R%d (%s): %llu bytes at offset %lld..%lld of map "
			              "'%s' value (%u bytes) are out of bounds", regno, what,
			              (unsigned long long)size, (long long)lo, (long long)hi,
			              map_name(v, r), v->obj->maps[r->map].value_size);
		return 0;
	case T_CTX:
		if (r->smin != r->smax)
			return reject(v, pc, st, "R%d (%s): variable ctx offset", regno, what);
		if (r->off + r->smin < 0 || r->off + r->smin + (int64_t)size > PROBE_CTX_SIZE)
			return reject(v, pc, st, "R%d (%s): %llu bytes at ctx%+lld leave the %lld-byte "
			              "context", regno, what, (unsigned long long)size,
			              (long long)(r->off + r->smin), (long long)PROBE_CTX_SIZE);
		for (int64_t b = r->off + r->smin; b < r->off + r->smin + (int64_t)size; b++)
			v->ctx_read |= 1ull << b;
		return 0;
	case T_MAP_VALUE_OR_NULL:
		return reject(v, pc, st, "R%d (%s) is map_value_or_null: check it against NULL "
		              "first", regno, what);
	default:
		return reject(v, pc, st, "R%d (%s) must point to the stack or a map value, not %s",
		              regno, what, TYPE_NAME[r->type]);
	}
}

static int check_mem(verifier_t *v, uint32_t pc, vstate_t *st, int regno, int32_t off,
                     uint32_t size, bool write, const reg_t *val, reg_t *out)
{
	const reg_t *r = &st->r[regno];
	int64_t lo, hi;
	switch (r->type) {
	case T_STACK:
		return check_stack(v, pc, st, regno, off, size, write, val, out);
	case T_CTX:
		if (write)
			return reject(v, pc, st, "the context is read-only (write to ctx%+d)",
			              r->off + off);
		if (r->smin != r->smax)
			return reject(v, pc, st, "R%d: variable offset into the context", regno);
		if (ptr_range(v, pc, st, regno, off, size, &lo, &hi) < 0)
			return -1;
		if (lo < 0 || hi > PROBE_CTX_SIZE)
			return reject(v, pc, st, "context access ctx%+lld size %u is out of bounds "
			              "(struct thoth_probe_ctx is %lld bytes)", (long long)lo, size,
			              (long long)PROBE_CTX_SIZE);
		for (int64_t b = lo; b < hi; b++)
			v->ctx_read |= 1ull << b;
		if (out) {
			if (size < 8)
				mark_range_u(out, 0, (1ull << (size * 8)) - 1);
			else
				mark_unknown(out);
		}
		return 0;
	case T_MAP_VALUE: {
		if (ptr_range(v, pc, st, regno, off, size, &lo, &hi) < 0)
			return -1;
		uint32_t vs = v->obj->maps[r->map].value_size;
		if (lo < 0 || hi > (int64_t)vs)
			return reject(v, pc, st, "map '%s' value access at offset %lld..%lld (size %u) "
			              "is out of bounds (value is %u bytes)", map_name(v, r),
			              (long long)lo, (long long)hi - size, size, vs);
		if (write && val && val->type != T_SCALAR)
			return reject(v, pc, st, "pointer leak: R%d (%s) stored into map '%s'",
			              (int)(val - st->r), TYPE_NAME[val->type], map_name(v, r));
		if (out) {
			if (size < 8)
				mark_range_u(out, 0, (1ull << (size * 8)) - 1);
			else
				mark_unknown(out);
		}
		return 0;
	}
	case T_MAP_VALUE_OR_NULL:
		return reject(v, pc, st, "R%d is map_value_or_null (map '%s'): dereference without "
		              "a NULL check", regno, map_name(v, r));
	case T_NOT_INIT:
		return reject(v, pc, st, "R%d is not initialised (used as a pointer)", regno);
	case T_MAP:
		return reject(v, pc, st, "R%d is a map pointer: it cannot be dereferenced, use "
		              "bpf_map_lookup_elem", regno);
	default:
		return reject(v, pc, st, "R%d is a scalar, not a pointer: invalid memory access",
		              regno);
	}
}

/* ---- helpers ------------------------------------------------------------------------ */

static int check_call(verifier_t *v, uint32_t pc, vstate_t *st, int32_t id)
{
	reg_t *r = st->r;
	const char *name = thoth_probe_helper_name(id);
	int nargs = 0;
	switch (id) {
	case BPF_FUNC_map_lookup_elem: case BPF_FUNC_map_delete_elem: nargs = 2; break;
	case BPF_FUNC_map_update_elem: case BPF_FUNC_ringbuf_output: nargs = 4; break;
	case BPF_FUNC_trace_printk: nargs = 2; break;
	default: nargs = 0;
	}
	for (int a = 1; a <= nargs; a++)
		if (r[a].type == T_NOT_INIT)
			return reject(v, pc, st, "%s: argument R%d is not initialised", name, a);
	if (id == BPF_FUNC_map_lookup_elem || id == BPF_FUNC_map_update_elem ||
	    id == BPF_FUNC_map_delete_elem || id == BPF_FUNC_ringbuf_output) {
		if (r[1].type != T_MAP || r[1].off != 0)
			return reject(v, pc, st, "%s: R1 must be a map (ld_imm64 of a map), not %s",
			              name, TYPE_NAME[r[1].type]);
		const probe_map_def_t *m = &v->obj->maps[r[1].map];
		bool ring = m->type == BPF_MAP_TYPE_RINGBUF;
		if (ring != (id == BPF_FUNC_ringbuf_output))
			return reject(v, pc, st, "%s on map '%s': %s", name, m->name,
			              ring ? "a ringbuf only takes bpf_ringbuf_output"
			                   : "bpf_ringbuf_output needs a RINGBUF map");
		if (ring) {
			if (r[3].type != T_SCALAR)
				return reject(v, pc, st, "%s: R3 (size) must be a scalar", name);
			if (r[3].umax > m->max_entries / 2 || r[3].umax > (1u << 20))
				return reject(v, pc, st, "%s: R3 (size) up to %llu: bound it below %u "
				              "with a comparison", name, (unsigned long long)r[3].umax,
				              m->max_entries / 2);
			if (check_mem_arg(v, pc, st, 2, r[3].umax ? r[3].umax : 1, "data") < 0)
				return -1;
			if (r[4].type != T_SCALAR)
				return reject(v, pc, st, "%s: R4 (flags) must be a scalar", name);
		} else {
			if (check_mem_arg(v, pc, st, 2, m->key_size, "key") < 0)
				return -1;
			if (id == BPF_FUNC_map_update_elem) {
				if (check_mem_arg(v, pc, st, 3, m->value_size, "value") < 0)
					return -1;
				if (r[4].type != T_SCALAR)
					return reject(v, pc, st, "%s: R4 (flags) must be a scalar, not %s",
					              name, TYPE_NAME[r[4].type]);
			}
		}
	} else if (id == BPF_FUNC_trace_printk) {
		if (r[2].type != T_SCALAR || r[2].umax == 0 || r[2].umax > 256)
			return reject(v, pc, st, "%s: R2 (format size) must be a scalar in 1..256", name);
		if (check_mem_arg(v, pc, st, 1, r[2].umax, "format") < 0)
			return -1;
		for (int a = 3; a <= 5; a++)
			if (r[a].type != T_SCALAR && r[a].type != T_NOT_INIT)
				return reject(v, pc, st, "%s: R%d is a pointer (%s): printing it would "
				              "leak an address", name, a, TYPE_NAME[r[a].type]);
	}
	uint8_t map = r[1].map;
	for (int a = 1; a <= 5; a++)
		memset(&r[a], 0, sizeof r[a]);
	if (id == BPF_FUNC_map_lookup_elem) {
		memset(&r[0], 0, sizeof r[0]);
		r[0].type = T_MAP_VALUE_OR_NULL;
		r[0].map = map;
		r[0].id = ++v->next_id;
	} else if (id == BPF_FUNC_get_smp_processor_id) {
		mark_range_u(&r[0], 0, 65535);
	} else {
		mark_unknown(&r[0]);
	}
	return 0;
}

/* ---- ALU -------------------------------------------------------------------------- */

static bool is_ptr(const reg_t *r)
{
	return r->type >= T_CTX;
}

static int check_alu(verifier_t *v, uint32_t pc, vstate_t *st)
{
	const probe_insn_t *in = &v->in[pc];
	uint8_t cls = BPF_CLASS(in->code), op = BPF_OP(in->code);
	bool is64 = cls == BPF_ALU64;
	reg_t *d = &st->r[in->dst_reg];
	reg_t src;
	if (BPF_SRC(in->code) == BPF_X) {
		src = st->r[in->src_reg];
		if (src.type == T_NOT_INIT)
			return reject(v, pc, st, "R%u is not initialised (read as source)", in->src_reg);
	} else {
		mark_const(&src, is64 ? (uint64_t)(int64_t)in->imm : (uint64_t)(uint32_t)in->imm);
	}
	if (op == BPF_MOV) {
		if (!is64 && is_ptr(&src))
			return reject(v, pc, st, "32-bit move of pointer R%u (%s) would leak part of an "
			              "address", in->src_reg, TYPE_NAME[src.type]);
		*d = src;
		if (!is64)
			truncate32(d);
		return 0;
	}
	if (d->type == T_NOT_INIT)
		return reject(v, pc, st, "R%u is not initialised (read as destination)", in->dst_reg);
	if (op == BPF_NEG || op == BPF_END) {
		if (is_ptr(d))
			return reject(v, pc, st, "%s of pointer R%u prohibited",
			              op == BPF_NEG ? "negation" : "byte swap", in->dst_reg);
		if (op == BPF_NEG) {
			if (is_const(d))
				mark_const(d, -d->umin);
			else
				mark_unknown(d);
		} else {
			/* The whole register (ALU class notwithstanding): to_be/to_le
			 * 64 keep all 64 bits, 16 and 32 zero-extend. */
			mark_unknown(d);
			if (in->imm < 64)
				mark_range_u(d, 0, (1ull << in->imm) - 1);
			return 0;
		}
		if (!is64)
			truncate32(d);
		return 0;
	}
	if (is_ptr(d) || is_ptr(&src)) {
		if (!is64)
			return reject(v, pc, st, "32-bit arithmetic on pointer prohibited");
		if (is_ptr(d) && is_ptr(&src)) {
			if (op == BPF_SUB && d->type == src.type && d->map == src.map &&
			    (d->type == T_STACK || d->type == T_MAP_VALUE || d->type == T_CTX)) {
				mark_unknown(d);
				return 0;
			}
			return reject(v, pc, st, "arithmetic between pointers R%u (%s) and R%u (%s) "
			              "prohibited", in->dst_reg, TYPE_NAME[d->type], in->src_reg,
			              TYPE_NAME[src.type]);
		}
		reg_t *ptr = is_ptr(d) ? d : &src;
		reg_t *sc = is_ptr(d) ? &src : d;
		if (op != BPF_ADD && !(op == BPF_SUB && is_ptr(d)))
			return reject(v, pc, st, "pointer arithmetic with %s on R%u (%s) prohibited "
			              "(only += and -= of a scalar)", ALU_OP[op >> 4],
			              is_ptr(d) ? in->dst_reg : in->src_reg, TYPE_NAME[ptr->type]);
		if (ptr->type == T_MAP_VALUE_OR_NULL)
			return reject(v, pc, st, "arithmetic on map_value_or_null prohibited: check "
			              "it against NULL first");
		if (ptr->type == T_MAP)
			return reject(v, pc, st, "arithmetic on a map pointer prohibited");
		if (sc->smin < -VAR_OFF_MAX || sc->smax > VAR_OFF_MAX)
			return reject(v, pc, st, "adding a scalar of unbounded range to pointer %s "
			              "(bound it with a comparison first)", TYPE_NAME[ptr->type]);
		reg_t res = *ptr;
		int64_t lo = op == BPF_SUB ? -sc->smax : sc->smin;
		int64_t hi = op == BPF_SUB ? -sc->smin : sc->smax;
		if (lo == hi) {
			int64_t noff = (int64_t)res.off + lo;
			if (noff < -VAR_OFF_MAX || noff > VAR_OFF_MAX)
				return reject(v, pc, st, "pointer offset %lld out of range",
				              (long long)noff);
			res.off = (int32_t)noff;
		} else {
			res.smin += lo;
			res.smax += hi;
			if (res.smin < -VAR_OFF_MAX || res.smax > VAR_OFF_MAX)
				return reject(v, pc, st, "pointer offset range [%lld, %lld] too wide",
				              (long long)res.smin, (long long)res.smax);
			res.umin = 0;
			res.umax = UINT64_MAX;
		}
		*d = res;
		return 0;
	}
	bool dz = false;
	if (!is64) {
		/* 32-bit ops on values that fit: exact as 64-bit, then truncate. */
		reg_t a = *d, b = src;
		truncate32(&a);
		truncate32(&b);
		if ((op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) && is_const(&b))
			b.umin = b.umax = b.umin & 31, b.smin = b.smax = (int64_t)b.umin;
		if (op == BPF_ARSH) {
			mark_range_u(d, 0, U32MAX);
			return 0;
		}
		scalar_alu(&a, &b, op, &dz);
		*d = a;
		truncate32(d);
		return 0;
	}
	if ((op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) && is_const(&src))
		src.umin = src.umax = src.umin & 63, src.smin = src.smax = (int64_t)src.umin;
	scalar_alu(d, &src, op, &dz);
	return 0;
}

/* ---- branches ------------------------------------------------------------------------ */

/* Narrow R by "R op K" being TAKEN; false when impossible. */
static bool refine(reg_t *r, uint8_t op, uint64_t k, bool taken)
{
	if (!taken) {
		switch (op) {
		case BPF_JEQ: op = BPF_JNE; break;
		case BPF_JNE: op = BPF_JEQ; break;
		case BPF_JGT: op = BPF_JLE; break;
		case BPF_JLE: op = BPF_JGT; break;
		case BPF_JGE: op = BPF_JLT; break;
		case BPF_JLT: op = BPF_JGE; break;
		case BPF_JSGT: op = BPF_JSLE; break;
		case BPF_JSLE: op = BPF_JSGT; break;
		case BPF_JSGE: op = BPF_JSLT; break;
		case BPF_JSLT: op = BPF_JSGE; break;
		case BPF_JSET:
			if (is_const(r))
				return (r->umin & k) == 0;
			return true;
		}
	}
	int64_t sk = (int64_t)k;
	switch (op) {
	case BPF_JEQ:
		if (k < r->umin || k > r->umax || sk < r->smin || sk > r->smax)
			return false;
		mark_const(r, k);
		return true;
	case BPF_JNE:
		if (is_const(r) && r->umin == k)
			return false;
		if (r->umin == k && r->umin < UINT64_MAX)
			r->umin++;
		else if (r->umax == k && r->umax > 0)
			r->umax--;
		break;
	case BPF_JSET:
		if (is_const(r))
			return (r->umin & k) != 0;
		return true;
	case BPF_JGT:
		if (k == UINT64_MAX)
			return false;
		if (r->umin < k + 1)
			r->umin = k + 1;
		break;
	case BPF_JGE:
		if (r->umin < k)
			r->umin = k;
		break;
	case BPF_JLT:
		if (k == 0)
			return false;
		if (r->umax > k - 1)
			r->umax = k - 1;
		break;
	case BPF_JLE:
		if (r->umax > k)
			r->umax = k;
		break;
	case BPF_JSGT:
		if (sk == INT64_MAX)
			return false;
		if (r->smin < sk + 1)
			r->smin = sk + 1;
		break;
	case BPF_JSGE:
		if (r->smin < sk)
			r->smin = sk;
		break;
	case BPF_JSLT:
		if (sk == INT64_MIN)
			return false;
		if (r->smax > sk - 1)
			r->smax = sk - 1;
		break;
	case BPF_JSLE:
		if (r->smax > sk)
			r->smax = sk;
		break;
	}
	return sync_bounds(r);
}

static uint8_t mirror(uint8_t op)
{
	switch (op) {
	case BPF_JGT: return BPF_JLT;
	case BPF_JLT: return BPF_JGT;
	case BPF_JGE: return BPF_JLE;
	case BPF_JLE: return BPF_JGE;
	case BPF_JSGT: return BPF_JSLT;
	case BPF_JSLT: return BPF_JSGT;
	case BPF_JSGE: return BPF_JSLE;
	case BPF_JSLE: return BPF_JSGE;
	default: return op;
	}
}

static void resolve_null(vstate_t *st, uint32_t id, bool is_null)
{
	for (int i = 0; i < 11; i++) {
		reg_t *r = &st->r[i];
		if (r->type == T_MAP_VALUE_OR_NULL && r->id == id) {
			if (is_null)
				mark_const(r, 0);
			else
				r->type = T_MAP_VALUE, r->id = 0;
		}
	}
	for (int s = 0; s < PROBE_STACK / 8; s++) {
		reg_t *r = &st->s[s].spill;
		if (st->s[s].kind == S_SPILL && r->type == T_MAP_VALUE_OR_NULL && r->id == id) {
			if (is_null)
				mark_const(r, 0);
			else
				r->type = T_MAP_VALUE, r->id = 0;
		}
	}
}

/* Compute the feasible successors of a conditional jump: *taken_st and
 * *fall_st are narrowed copies; each flag says whether that side is possible. */
static int check_cond(verifier_t *v, uint32_t pc, vstate_t *st, vstate_t *taken_st,
                      bool *can_take, bool *can_fall)
{
	const probe_insn_t *in = &v->in[pc];
	uint8_t op = BPF_OP(in->code);
	bool is32 = BPF_CLASS(in->code) == BPF_JMP32;
	reg_t *d = &st->r[in->dst_reg];
	if (d->type == T_NOT_INIT)
		return reject(v, pc, st, "R%u is not initialised (compared)", in->dst_reg);
	bool src_is_reg = BPF_SRC(in->code) == BPF_X;
	reg_t *s = src_is_reg ? &st->r[in->src_reg] : NULL;
	if (s && s->type == T_NOT_INIT)
		return reject(v, pc, st, "R%u is not initialised (compared)", in->src_reg);
	reg_t kreg;
	if (!s) {
		mark_const(&kreg, is32 ? (uint64_t)(uint32_t)in->imm : (uint64_t)(int64_t)in->imm);
		s = &kreg;
	}
	*can_take = *can_fall = true;
	*taken_st = *st;
	/* Pointers: only a NULL check (== 0 / != 0) against a constant 0. */
	if (is_ptr(d) || is_ptr(s)) {
		reg_t *p = is_ptr(d) ? d : s, *o = is_ptr(d) ? s : d;
		if (is_ptr(d) && is_ptr(s))
			return reject(v, pc, st, "comparison between pointers R%u (%s) and R%u (%s) "
			              "prohibited", in->dst_reg, TYPE_NAME[d->type], in->src_reg,
			              TYPE_NAME[s->type]);
		if ((op != BPF_JEQ && op != BPF_JNE) || !is_const(o) || o->umin != 0 || is32)
			return reject(v, pc, st, "pointer %s may only be compared with == 0 or != 0",
			              TYPE_NAME[p->type]);
		bool eq_taken = op == BPF_JEQ;   /* the taken side means "p == 0" */
		if (p->type == T_MAP_VALUE_OR_NULL) {
			uint32_t id = p->id;
			resolve_null(taken_st, id, eq_taken);
			resolve_null(st, id, !eq_taken);
		} else if (eq_taken) {
			*can_take = false;      /* a valid pointer is never NULL */
		} else {
			*can_fall = false;
		}
		return 0;
	}
	if (op == BPF_JSET && is_const(s) && is_const(d)) {
		bool t = (d->umin & s->umin) != 0;
		*can_take = t;
		*can_fall = !t;
		return 0;
	}
	if (is32) {
		/* Narrow only when both sides fit in 31 bits (then the 32-bit and 64-bit
		 * comparisons agree); otherwise both sides stay possible. */
		if (!(d->umax <= 0x7fffffff && s->umax <= 0x7fffffff))
			return 0;
	}
	reg_t *td = &taken_st->r[in->dst_reg], *fd = &st->r[in->dst_reg];
	if (is_const(s)) {
		*can_take = refine(td, op, s->umin, true);
		*can_fall = refine(fd, op, s->umin, false);
	} else if (is_const(d) && src_is_reg) {
		reg_t *ts = &taken_st->r[in->src_reg], *fs = &st->r[in->src_reg];
		*can_take = refine(ts, mirror(op), d->umin, true);
		*can_fall = refine(fs, mirror(op), d->umin, false);
	}
	return 0;
}

/* ---- the walk ------------------------------------------------------------------------ */

static int push(verifier_t *v, const vstate_t *st, uint32_t pc, frame_t *parent)
{
	if (v->depth == MAX_PENDING)
		return reject(v, pc, st, "program too complex: more than %d branches pending",
		              MAX_PENDING);
	if (v->depth == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 16;
		pending_t *ns = realloc(v->stack, sizeof *ns * cap);
		if (!ns)
			return reject(v, pc, st, "out of memory");
		v->stack = ns;
		v->cap = cap;
	}
	pending_t *p = &v->stack[v->depth];
	frame_t *f = frame_new(v, parent);
	if (!f)
		return reject(v, pc, st, "out of memory");
	p->st = *st;
	p->pc = pc;
	p->frame = f;
	v->depth++;
	return 0;
}

static bool same_shape(const reg_t *a, const reg_t *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == T_SCALAR || a->type == T_NOT_INIT)
		return true;
	return a->map == b->map && a->off == b->off && a->smin == b->smin && a->smax == b->smax;
}

/* Widening (first attempt only): if a state with the same types was seen
 * here, every scalar that differs from it becomes unknown.  Sound (the walk
 * continues from a superset), and 2^n paths through n independent branches
 * collapse into one; a program that needed the lost precision is verified
 * again without widening (probe_verify_prog). */
static void widen(verifier_t *v, uint32_t pc, vstate_t *st)
{
	for (seen_t *s = v->seen[pc]; s; s = s->next) {
		const vstate_t *o = &s->st;
		bool same = true;
		for (int i = 0; i < 11 && same; i++)
			same = same_shape(&o->r[i], &st->r[i]) &&
			       (o->r[i].type != T_MAP_VALUE_OR_NULL || o->r[i].id == st->r[i].id);
		for (int k = 0; k < PROBE_STACK / 8 && same; k++)
			same = o->s[k].kind == st->s[k].kind && o->s[k].init == st->s[k].init &&
			       (o->s[k].kind != S_SPILL || same_shape(&o->s[k].spill, &st->s[k].spill));
		if (!same)
			continue;
		for (int i = 0; i < 11; i++)
			if (st->r[i].type == T_SCALAR && memcmp(&st->r[i], &o->r[i], sizeof st->r[i]))
				mark_unknown(&st->r[i]);
		for (int k = 0; k < PROBE_STACK / 8; k++)
			if (st->s[k].kind == S_SPILL && st->s[k].spill.type == T_SCALAR &&
			    memcmp(&st->s[k].spill, &o->s[k].spill, sizeof st->s[k].spill))
				mark_unknown(&st->s[k].spill);
		return;
	}
}

/* true: prune (a finished state there contains this one) */
static bool prune_or_record(verifier_t *v, uint32_t pc, vstate_t *st, frame_t *f)
{
	for (seen_t *s = v->seen[pc]; s; s = s->next)
		if (s->frame->branches == 0 && state_subsumes(&s->st, st))
			return true;
	if (v->widen && !(v->flags[pc] & F_LOOP_HEAD) && v->seen[pc]) {
		widen(v, pc, st);
		for (seen_t *s = v->seen[pc]; s; s = s->next)
			if (s->frame->branches == 0 && state_subsumes(&s->st, st))
				return true;
	}
	if (v->n_seen >= MAX_SEEN || v->seen_count[pc] >= MAX_SEEN_PER_INSN)
		return false;
	seen_t *s = malloc(sizeof *s);
	if (!s)
		return false;
	s->st = *st;
	s->frame = f;
	s->next = v->seen[pc];
	v->seen[pc] = s;
	v->seen_count[pc]++;
	v->n_seen++;
	return false;
}

static int walk(verifier_t *v, vstate_t *st, uint32_t pc, frame_t *f)
{
	for (;;) {
		/* The widened attempt gets a fifth of the bound: it is a shortcut, and
		 * a program it cannot finish is walked exactly anyway. */
		if (v->widen && v->processed >= THOTH_PROBE_MAX_PROCESSED / 5)
			return reject(v, pc, st, "widened walk gave up");
		if (++v->processed > THOTH_PROBE_MAX_PROCESSED) {
			if (v->has_loop)
				return reject(v, pc, st, "program too complex or loop not bounded: %u "
				              "instructions processed (each path, each iteration) "
				              "without reaching every exit; bound loops with a "
				              "constant", THOTH_PROBE_MAX_PROCESSED);
			return reject(v, pc, st, "program too complex: %u instructions processed "
			              "over its paths without reaching every exit (too many "
			              "distinct paths)", THOTH_PROBE_MAX_PROCESSED);
		}
		if ((v->flags[pc] & F_PRUNE) && prune_or_record(v, pc, st, f)) {
			frame_done(f);
			return 0;
		}
		const probe_insn_t *in = &v->in[pc];
		uint8_t cls = BPF_CLASS(in->code);
		switch (cls) {
		case BPF_ALU: case BPF_ALU64:
			if (check_alu(v, pc, st) < 0)
				return -1;
			pc++;
			break;
		case BPF_LD: {
			reg_t *d = &st->r[in->dst_reg];
			if (in->src_reg == PROBE_PSEUDO_MAP) {
				memset(d, 0, sizeof *d);
				d->type = T_MAP;
				d->map = (uint8_t)in->imm;
			} else {
				mark_const(d, (uint64_t)(uint32_t)in->imm |
				                  ((uint64_t)(uint32_t)in[1].imm << 32));
			}
			pc += 2;
			break;
		}
		case BPF_LDX: {
			uint32_t size = 1u << (3 - (BPF_SIZE(in->code) >> 3));
			size = (uint32_t[]){ 4, 2, 1, 8 }[BPF_SIZE(in->code) >> 3];
			reg_t out;
			mark_unknown(&out);
			if (check_mem(v, pc, st, in->src_reg, in->off, size, false, NULL, &out) < 0)
				return -1;
			st->r[in->dst_reg] = out;
			pc++;
			break;
		}
		case BPF_ST: case BPF_STX: {
			uint32_t size = (uint32_t[]){ 4, 2, 1, 8 }[BPF_SIZE(in->code) >> 3];
			reg_t val;
			const reg_t *vp = NULL;
			if (cls == BPF_STX) {
				if (st->r[in->src_reg].type == T_NOT_INIT)
					return reject(v, pc, st, "R%u is not initialised (stored)",
					              in->src_reg);
				vp = &st->r[in->src_reg];
			} else {
				mark_const(&val, (uint64_t)(int64_t)in->imm);
				vp = &val;
			}
			if (cls == BPF_STX && BPF_MODE(in->code) == BPF_ATOMIC) {
				reg_t *dr = &st->r[in->dst_reg];
				if (dr->type != T_STACK && dr->type != T_MAP_VALUE)
					return check_mem(v, pc, st, in->dst_reg, in->off, size, true, vp,
					                 NULL) < 0 ? -1
					       : reject(v, pc, st, "atomic operation on %s: only the stack "
					                "or a map value", TYPE_NAME[dr->type]);
				if (vp->type != T_SCALAR)
					return reject(v, pc, st, "pointer leak: atomic operation with pointer "
					              "R%u", in->src_reg);
				if (in->imm == BPF_CMPXCHG && st->r[0].type != T_SCALAR)
					return reject(v, pc, st, "cmpxchg: R0 must be an initialised scalar");
				if (check_mem(v, pc, st, in->dst_reg, in->off, size, false, NULL, NULL) < 0)
					return -1;
				reg_t unk;
				mark_unknown(&unk);
				if (check_mem(v, pc, st, in->dst_reg, in->off, size, true, &unk, NULL) < 0)
					return -1;
				if (in->imm == BPF_CMPXCHG)
					mark_unknown(&st->r[0]);
				else if (in->imm & BPF_FETCH)
					mark_unknown(&st->r[in->src_reg]);
				if (size == 4 && in->imm == BPF_CMPXCHG)
					mark_range_u(&st->r[0], 0, U32MAX);
				else if (size == 4 && (in->imm & BPF_FETCH))
					mark_range_u(&st->r[in->src_reg], 0, U32MAX);
				pc++;
				break;
			}
			reg_t copy = *vp;
			if (check_mem(v, pc, st, in->dst_reg, in->off, size, true, vp == &val ? &val : vp,
			              NULL) < 0)
				return -1;
			(void)copy;
			pc++;
			break;
		}
		case BPF_JMP: case BPF_JMP32: {
			uint8_t op = BPF_OP(in->code);
			if (op == BPF_EXIT) {
				if (st->r[0].type == T_NOT_INIT)
					return reject(v, pc, st, "R0 is not initialised at exit (the program "
					              "must return a value)");
				if (st->r[0].type != T_SCALAR)
					return reject(v, pc, st, "R0 is a pointer (%s) at exit: returning it "
					              "would leak an address", TYPE_NAME[st->r[0].type]);
				frame_done(f);
				return 0;
			}
			if (op == BPF_CALL) {
				if (check_call(v, pc, st, in->imm) < 0)
					return -1;
				pc++;
				break;
			}
			uint32_t target = (uint32_t)((int64_t)pc + 1 + in->off);
			if (op == BPF_JA) {
				pc = target;
				break;
			}
			vstate_t *taken = malloc(sizeof *taken);
			if (!taken)
				return reject(v, pc, st, "out of memory");
			bool can_take = true, can_fall = true;
			if (check_cond(v, pc, st, taken, &can_take, &can_fall) < 0) {
				free(taken);
				return -1;
			}
			if (can_take && can_fall) {
				int r = push(v, taken, target, f);
				free(taken);
				if (r < 0)
					return -1;
				pc++;
			} else if (can_take) {
				*st = *taken;
				free(taken);
				pc = target;
			} else {
				free(taken);
				pc++;
			}
			break;
		}
		default:
			return reject(v, pc, st, "unknown opcode");
		}
	}
}

static int verify_once(const thoth_probe_object_t *obj, const probe_prog_def_t *p, char *msg,
                       size_t msg_len, bool widen_first, uint64_t *ctx_read)
{
	if (msg && msg_len)
		msg[0] = '\0';
	verifier_t v = { .obj = obj, .p = p, .in = p->insns, .n = p->n_insns, .msg = msg,
	                 .msg_len = msg_len, .widen = widen_first };
	int r = -1;
	uint32_t n = p->n_insns ? p->n_insns : 1;
	v.flags = calloc(n, 1);
	v.seen = calloc(n, sizeof *v.seen);
	v.seen_count = calloc(n, sizeof *v.seen_count);
	vstate_t *st = calloc(1, sizeof *st);
	if (!v.flags || !v.seen || !v.seen_count || !st) {
		reject(&v, 0, NULL, "out of memory");
		goto out;
	}
	if (static_pass(&v) < 0)
		goto out;
	st->r[BPF_REG_1].type = T_CTX;
	st->r[BPF_REG_10].type = T_STACK;
	frame_t *root = frame_new(&v, NULL);
	if (!root) {
		reject(&v, 0, NULL, "out of memory");
		goto out;
	}
	if (walk(&v, st, 0, root) < 0)
		goto out;
	while (v.depth) {
		pending_t *pd = &v.stack[--v.depth];
		*st = pd->st;
		if (walk(&v, st, pd->pc, pd->frame) < 0)
			goto out;
	}
	r = 0;
	if (ctx_read)
		*ctx_read = v.ctx_read;
out:
	if (v.seen)
		for (uint32_t i = 0; i < n; i++)
			for (seen_t *s = v.seen[i], *nx; s; s = nx) {
				nx = s->next;
				free(s);
			}
	while (v.frames) {
		frame_t *f = v.frames;
		v.frames = f->next_alloc;
		free(f);
	}
	free(v.flags);
	free(v.seen);
	free(v.seen_count);
	free(v.stack);
	free(st);
	return r < 0 ? THOTH_E_INVAL : 0;
}

/* Widened first (fast on branchy code); if that fails, exactly: the
 * verdict and the message are the exact walk's. */
int probe_verify_prog(const thoth_probe_object_t *obj, const probe_prog_def_t *p, char *msg,
                      size_t msg_len, uint64_t *ctx_read)
{
	if (verify_once(obj, p, NULL, 0, true, ctx_read) == 0) {
		if (msg && msg_len)
			msg[0] = '\0';
		return 0;
	}
	return verify_once(obj, p, msg, msg_len, false, ctx_read);
}

int thoth_probe_verify(const thoth_probe_object_t *obj, size_t i, char *msg, size_t msg_len)
{
	if (!obj || i >= obj->n_progs)
		return THOTH_E_INVAL;
	if (obj->progs[i].kind != PROBE_KIND_THOTH)
		return THOTH_E_NOT_FOUND;
	return probe_verify_prog(obj, &obj->progs[i], msg, msg_len, NULL);
}
