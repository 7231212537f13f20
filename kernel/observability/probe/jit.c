/*
 * jit.c - an x86-64 JIT for verified probe programs (docs/PROBES.md "JIT").
 *
 * Only programs the verifier accepted get here, so the JIT emits no bounds
 * or NULL checks and no per-instruction budget: every load and store was
 * proved in bounds, every path to bounded length.  What it still emits:
 *   - division/modulo by a register: a zero test, for Linux's x / 0 = 0 and
 *     x % 0 = x (the verifier accepts a divisor that may be zero);
 *   - at loop heads only (targets of backward jumps): a countdown of
 *     1,000,000 passes, so a verifier fault cannot hang a traced service
 *     (a loop-free program pays nothing).
 * The interpreter (interp.c) is the reference; fuzz/probe's differential
 * target runs verified programs on both and compares results and maps.
 *
 * Code memory is W^X: emitted into a private buffer, copied into an
 * anonymous mapping made read-write, then mprotect'ed read-execute; it is
 * never writable and executable at once.
 *
 * Register map (BPF -> x86-64), chosen so that a helper call needs no moves:
 * r1-r5 are the System V argument registers and r6-r9 callee-saved:
 *   r0 rax  r1 rdi  r2 rsi  r3 rdx  r4 rcx  r5 r8
 *   r6 rbx  r7 r13  r8 r14  r9 r15  r10 rbp (frame pointer, 512-byte stack)
 * Scratch: r9, r10, r11 (never BPF registers); r12 holds the loop budget.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "probe_internal.h"

#if defined(__x86_64__)

enum {
	RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7,
	R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15,
};

static const uint8_t REG[11] = { RAX, RDI, RSI, RDX, RCX, R8, RBX, R13, R14, R15, RBP };

#define TARGET_EPILOGUE UINT32_MAX
#define TARGET_LIMIT (UINT32_MAX - 1)

typedef struct fixup {
	uint32_t at;       /* offset of a rel32 field */
	uint32_t target;   /* BPF instruction index, or TARGET_* */
} fixup_t;

typedef struct jit {
	const probe_insn_t *insns;
	const bool *is_target;   /* [i]: some jump lands on instruction i */
	const bool *second_half; /* [i]: the second half of a ld_imm64 */
	uint8_t *buf;
	size_t len, cap;
	bool oom;
	uint32_t *off;     /* code offset of each BPF instruction, [n] = epilogue */
	fixup_t *fix;
	size_t nfix, capfix;
	uint32_t limit_off;
	uint32_t frame;    /* bytes below the pushed registers: stack + alignment */
} jit_t;

static void emit(jit_t *j, const void *bytes, size_t n)
{
	if (j->oom)
		return;
	if (j->len + n > j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 4096;
		while (cap < j->len + n)
			cap *= 2;
		uint8_t *b = realloc(j->buf, cap);
		if (!b) {
			j->oom = true;
			return;
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, bytes, n);
	j->len += n;
}

static void e1(jit_t *j, uint8_t b) { emit(j, &b, 1); }
static void e2(jit_t *j, uint8_t a, uint8_t b) { uint8_t x[2] = { a, b }; emit(j, x, 2); }
static void e4(jit_t *j, uint32_t v) { emit(j, &v, 4); }
static void e8(jit_t *j, uint64_t v) { emit(j, &v, 8); }

static bool fits8(int64_t v) { return v >= -128 && v <= 127; }
static bool fits32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* REX prefix: W (64-bit operand), R (ModRM.reg ext), B (ModRM.rm ext);
 * FORCE emits one even when empty (byte registers sil/dil). */
static void rex(jit_t *j, bool w, uint8_t reg, uint8_t rm, bool force)
{
	uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg >> 3) & 1) << 2 | ((rm >> 3) & 1));
	if (r != 0x40 || force)
		e1(j, r);
}

static void modrm_reg(jit_t *j, uint8_t reg, uint8_t rm)
{
	e1(j, (uint8_t)(0xc0 | (reg & 7) << 3 | (rm & 7)));
}

/* ModRM (+SIB) (+disp) for [base + disp]. */
static void modrm_mem(jit_t *j, uint8_t reg, uint8_t base, int32_t disp)
{
	uint8_t mod = disp == 0 && (base & 7) != RBP ? 0 : fits8(disp) ? 1 : 2;
	e1(j, (uint8_t)(mod << 6 | (reg & 7) << 3 | (base & 7)));
	if ((base & 7) == RSP)
		e1(j, 0x24);                    /* SIB: base only */
	if (mod == 1)
		e1(j, (uint8_t)(int8_t)disp);
	else if (mod == 2)
		e4(j, (uint32_t)disp);
}

/* OP r/m, reg (register form). */
static void op_rr(jit_t *j, uint8_t op, bool w, uint8_t rm, uint8_t reg)
{
	rex(j, w, reg, rm, false);
	e1(j, op);
	modrm_reg(j, reg, rm);
}

/* Group-1 ALU with an immediate: /EXT (0 add, 1 or, 4 and, 5 sub, 6 xor, 7 cmp). */
static void alu_ri(jit_t *j, uint8_t ext, bool w, uint8_t rm, int32_t imm)
{
	rex(j, w, 0, rm, false);
	if (fits8(imm)) {
		e2(j, 0x83, (uint8_t)(0xc0 | ext << 3 | (rm & 7)));
		e1(j, (uint8_t)(int8_t)imm);
	} else {
		e2(j, 0x81, (uint8_t)(0xc0 | ext << 3 | (rm & 7)));
		e4(j, (uint32_t)imm);
	}
}

static void mov_rr(jit_t *j, bool w, uint8_t dst, uint8_t src)
{
	op_rr(j, 0x89, w, dst, src);
}

/* dst = imm: 64-bit sign-extended (w) or 32-bit zero-extended. */
static void mov_ri(jit_t *j, bool w, uint8_t dst, int32_t imm)
{
	if (w) {
		rex(j, true, 0, dst, false);
		e2(j, 0xc7, (uint8_t)(0xc0 | (dst & 7)));
	} else {
		rex(j, false, 0, dst, false);
		e1(j, (uint8_t)(0xb8 + (dst & 7)));
	}
	e4(j, (uint32_t)imm);
}

static void mov_ri64(jit_t *j, uint8_t dst, uint64_t v)
{
	if (v <= UINT32_MAX) {
		mov_ri(j, false, dst, (int32_t)(uint32_t)v);
	} else if (fits32((int64_t)v)) {
		mov_ri(j, true, dst, (int32_t)(int64_t)v);
	} else {
		rex(j, true, 0, dst, false);
		e1(j, (uint8_t)(0xb8 + (dst & 7)));
		e8(j, v);
	}
}

/* A rel32 jump to a BPF instruction or a label, patched after emission. */
static void jump_to(jit_t *j, uint8_t cc, uint32_t target)
{
	if (cc)
		e2(j, 0x0f, cc);          /* jcc rel32 */
	else
		e1(j, 0xe9);              /* jmp rel32 */
	if (j->nfix == j->capfix) {
		size_t cap = j->capfix ? j->capfix * 2 : 64;
		fixup_t *f = realloc(j->fix, cap * sizeof *f);
		if (!f) {
			j->oom = true;
			return;
		}
		j->fix = f;
		j->capfix = cap;
	}
	j->fix[j->nfix++] = (fixup_t){ .at = (uint32_t)j->len, .target = target };
	e4(j, 0);
}

/* A short forward jump inside one instruction's code: returns where to patch. */
static size_t jcc8(jit_t *j, uint8_t cc)
{
	e2(j, cc, 0);
	return j->len - 1;
}

static void patch8(jit_t *j, size_t at)
{
	if (!j->oom)
		j->buf[at] = (uint8_t)(j->len - (at + 1));
}

/* ---- instruction classes --------------------------------------------------- */

static void emit_shift(jit_t *j, uint8_t ext, bool w, uint8_t dst, const probe_insn_t *in)
{
	if (BPF_SRC(in->code) == BPF_K) {
		rex(j, w, 0, dst, false);
		e2(j, 0xc1, (uint8_t)(0xc0 | ext << 3 | (dst & 7)));
		e1(j, (uint8_t)in->imm);
	} else {
		uint8_t src = REG[in->src_reg];
		/* The count must be in cl; r4 lives in rcx. */
		uint8_t target = dst == RCX ? R11 : dst;
		if (src != RCX) {
			mov_rr(j, true, R10, RCX);
			if (dst == RCX)
				mov_rr(j, true, R11, RCX);
			mov_rr(j, true, RCX, src);
		} else {
			target = dst;
		}
		rex(j, w, 0, target, false);
		e2(j, 0xd3, (uint8_t)(0xc0 | ext << 3 | (target & 7)));
		if (src != RCX) {
			mov_rr(j, true, RCX, R10);
			if (dst == RCX)
				mov_rr(j, true, RCX, R11);
		}
	}
	/* A 32-bit shift by 0 leaves the register unwritten on some CPUs'
	 * reading of the manual: zero-extend explicitly (BPF ALU32 semantics). */
	if (!w)
		mov_rr(j, false, dst, dst);
}

/* Unsigned division / modulo: rdx:rax are BPF r3/r0, saved in r9/r10. */
static void emit_divmod(jit_t *j, bool mod, bool w, uint8_t dst, const probe_insn_t *in)
{
	bool reg = BPF_SRC(in->code) == BPF_X;
	if (reg)
		mov_rr(j, w, R11, REG[in->src_reg]);
	else
		mov_ri(j, w, R11, in->imm);         /* never 0: the verifier refuses it */
	mov_rr(j, true, R10, RAX);
	mov_rr(j, true, R9, RDX);
	mov_rr(j, w, RAX, dst);                 /* 32-bit: zero-extends the dividend */
	size_t zero = 0, done = 0;
	if (reg) {
		op_rr(j, 0x85, w, R11, R11);        /* test r11, r11 */
		zero = jcc8(j, 0x74);               /* jz */
	}
	op_rr(j, 0x31, false, RDX, RDX);        /* xor edx, edx */
	rex(j, w, 0, R11, false);
	e2(j, 0xf7, (uint8_t)(0xc0 | 6 << 3 | (R11 & 7)));   /* div r11 */
	mov_rr(j, w, R11, mod ? RDX : RAX);
	if (reg) {
		done = jcc8(j, 0xeb);               /* jmp short */
		patch8(j, zero);
		if (mod)
			mov_rr(j, w, R11, RAX);         /* x % 0 = x (32-bit: zero-extended) */
		else
			op_rr(j, 0x31, false, R11, R11);   /* x / 0 = 0 */
		patch8(j, done);
	}
	mov_rr(j, true, RAX, R10);
	mov_rr(j, true, RDX, R9);
	mov_rr(j, true, dst, R11);
}

static void emit_alu(jit_t *j, const probe_insn_t *in)
{
	bool w = BPF_CLASS(in->code) == BPF_ALU64;
	bool x = BPF_SRC(in->code) == BPF_X;
	uint8_t dst = REG[in->dst_reg], src = REG[in->src_reg];
	static const uint8_t RR[16] = { [BPF_ADD >> 4] = 0x01, [BPF_SUB >> 4] = 0x29,
		[BPF_OR >> 4] = 0x09, [BPF_AND >> 4] = 0x21, [BPF_XOR >> 4] = 0x31 };
	static const uint8_t EXT[16] = { [BPF_ADD >> 4] = 0, [BPF_SUB >> 4] = 5,
		[BPF_OR >> 4] = 1, [BPF_AND >> 4] = 4, [BPF_XOR >> 4] = 6 };
	uint8_t op = BPF_OP(in->code);
	switch (op) {
	case BPF_ADD: case BPF_SUB: case BPF_OR: case BPF_AND: case BPF_XOR:
		if (x)
			op_rr(j, RR[op >> 4], w, dst, src);
		else
			alu_ri(j, EXT[op >> 4], w, dst, in->imm);
		break;
	case BPF_MOV:
		if (x)
			mov_rr(j, w, dst, src);
		else
			mov_ri(j, w, dst, in->imm);
		break;
	case BPF_MUL:
		if (x) {
			rex(j, w, dst, src, false);
			e2(j, 0x0f, 0xaf);              /* imul dst, src */
			modrm_reg(j, dst, src);
		} else {
			rex(j, w, dst, dst, false);
			if (fits8(in->imm)) {
				e1(j, 0x6b);
				modrm_reg(j, dst, dst);
				e1(j, (uint8_t)(int8_t)in->imm);
			} else {
				e1(j, 0x69);
				modrm_reg(j, dst, dst);
				e4(j, (uint32_t)in->imm);
			}
		}
		break;
	case BPF_DIV: case BPF_MOD:
		emit_divmod(j, op == BPF_MOD, w, dst, in);
		break;
	case BPF_NEG:
		rex(j, w, 0, dst, false);
		e2(j, 0xf7, (uint8_t)(0xc0 | 3 << 3 | (dst & 7)));
		break;
	case BPF_LSH: emit_shift(j, 4, w, dst, in); break;
	case BPF_RSH: emit_shift(j, 5, w, dst, in); break;
	case BPF_ARSH: emit_shift(j, 7, w, dst, in); break;
	case BPF_END:
		if (BPF_SRC(in->code) == BPF_TO_LE) {   /* the host order: truncate */
			if (in->imm == 16) {
				rex(j, false, dst, dst, false);
				e2(j, 0x0f, 0xb7);              /* movzx dst32, dst16 */
				modrm_reg(j, dst, dst);
			} else if (in->imm == 32) {
				mov_rr(j, false, dst, dst);
			}
		} else if (in->imm == 16) {
			e1(j, 0x66);                        /* rol dst16, 8 */
			rex(j, false, 0, dst, false);
			e2(j, 0xc1, (uint8_t)(0xc0 | (dst & 7)));
			e1(j, 8);
			rex(j, false, dst, dst, false);
			e2(j, 0x0f, 0xb7);
			modrm_reg(j, dst, dst);
		} else {
			rex(j, in->imm == 64, 0, dst, false);
			e2(j, 0x0f, (uint8_t)(0xc8 + (dst & 7)));   /* bswap */
		}
		break;
	}
}

static void emit_ldx(jit_t *j, const probe_insn_t *in)
{
	uint8_t dst = REG[in->dst_reg], base = REG[in->src_reg];
	switch (BPF_SIZE(in->code)) {
	case BPF_B:
		rex(j, false, dst, base, false);
		e2(j, 0x0f, 0xb6);
		break;
	case BPF_H:
		rex(j, false, dst, base, false);
		e2(j, 0x0f, 0xb7);
		break;
	case BPF_W:
		rex(j, false, dst, base, false);
		e1(j, 0x8b);
		break;
	default:
		rex(j, true, dst, base, false);
		e1(j, 0x8b);
		break;
	}
	modrm_mem(j, dst, base, in->off);
}

static void emit_st(jit_t *j, const probe_insn_t *in)
{
	uint8_t base = REG[in->dst_reg];
	switch (BPF_SIZE(in->code)) {
	case BPF_B:
		rex(j, false, 0, base, false);
		e1(j, 0xc6);
		modrm_mem(j, 0, base, in->off);
		e1(j, (uint8_t)in->imm);
		break;
	case BPF_H:
		e1(j, 0x66);
		rex(j, false, 0, base, false);
		e1(j, 0xc7);
		modrm_mem(j, 0, base, in->off);
		e2(j, (uint8_t)in->imm, (uint8_t)((uint32_t)in->imm >> 8));
		break;
	default:
		rex(j, BPF_SIZE(in->code) == BPF_DW, 0, base, false);
		e1(j, 0xc7);
		modrm_mem(j, 0, base, in->off);
		e4(j, (uint32_t)in->imm);
		break;
	}
}

static void emit_stx(jit_t *j, const probe_insn_t *in)
{
	uint8_t base = REG[in->dst_reg], src = REG[in->src_reg];
	switch (BPF_SIZE(in->code)) {
	case BPF_B:
		rex(j, false, src, base, true);      /* REX: sil/dil, not dh/bh */
		e1(j, 0x88);
		break;
	case BPF_H:
		e1(j, 0x66);
		rex(j, false, src, base, false);
		e1(j, 0x89);
		break;
	default:
		rex(j, BPF_SIZE(in->code) == BPF_DW, src, base, false);
		e1(j, 0x89);
		break;
	}
	modrm_mem(j, src, base, in->off);
}

static void emit_atomic(jit_t *j, const probe_insn_t *in)
{
	bool w = BPF_SIZE(in->code) == BPF_DW;
	uint8_t base = REG[in->dst_reg], src = REG[in->src_reg];
	int32_t op = in->imm;
	static const uint8_t RR[16] = { [BPF_ADD >> 4] = 0x01, [BPF_OR >> 4] = 0x09,
		[BPF_AND >> 4] = 0x21, [BPF_XOR >> 4] = 0x31 };
	switch (op) {
	case BPF_ADD: case BPF_OR: case BPF_AND: case BPF_XOR:
		e1(j, 0xf0);                         /* lock op [base+off], src */
		rex(j, w, src, base, false);
		e1(j, RR[op >> 4]);
		modrm_mem(j, src, base, in->off);
		return;
	case BPF_ADD | BPF_FETCH:
		e1(j, 0xf0);                         /* lock xadd: src gets the old value */
		rex(j, w, src, base, false);
		e2(j, 0x0f, 0xc1);
		modrm_mem(j, src, base, in->off);
		return;
	case BPF_XCHG:
		rex(j, w, src, base, false);         /* xchg with memory is locked */
		e1(j, 0x87);
		modrm_mem(j, src, base, in->off);
		return;
	case BPF_CMPXCHG:
		e1(j, 0xf0);
		rex(j, w, src, base, false);
		e2(j, 0x0f, 0xb1);
		modrm_mem(j, src, base, in->off);
		if (!w)
			mov_rr(j, false, RAX, RAX);      /* r0 = old, zero-extended */
		return;
	default: {
		/* OR/AND/XOR with FETCH: a compare-exchange loop on rax (BPF r0,
		 * saved on the machine stack: no call happens in between). */
		uint8_t o = RR[(op & ~BPF_FETCH) >> 4];
		rex(j, true, R9, base, false);
		e1(j, 0x8d);                         /* lea r9, [base+off] */
		modrm_mem(j, R9, base, in->off);
		mov_rr(j, true, R10, src);
		e1(j, 0x50);                         /* push rax */
		rex(j, w, RAX, R9, false);
		e1(j, 0x8b);                         /* mov rax, [r9] */
		modrm_mem(j, RAX, R9, 0);
		size_t loop = j->len;
		mov_rr(j, w, R11, RAX);
		op_rr(j, o, w, R11, R10);
		e1(j, 0xf0);
		rex(j, w, R11, R9, false);
		e2(j, 0x0f, 0xb1);                   /* lock cmpxchg [r9], r11 */
		modrm_mem(j, R11, R9, 0);
		e2(j, 0x75, (uint8_t)(int8_t)(loop - (j->len + 2)));   /* jnz loop */
		mov_rr(j, w, R11, RAX);              /* old (32-bit: zero-extended) */
		e1(j, 0x58);                         /* pop rax */
		mov_rr(j, true, src, R11);
		return;
	}
	}
}

static uint8_t jcc_of(uint8_t op)
{
	switch (op) {
	case BPF_JEQ: return 0x84;
	case BPF_JNE: return 0x85;
	case BPF_JGT: return 0x87;
	case BPF_JGE: return 0x83;
	case BPF_JLT: return 0x82;
	case BPF_JLE: return 0x86;
	case BPF_JSET: return 0x85;
	case BPF_JSGT: return 0x8f;
	case BPF_JSGE: return 0x8d;
	case BPF_JSLT: return 0x8c;
	default: return 0x8e;                    /* JSLE */
	}
}

/*
 * The map r1 holds at the call at PC, when the code says it plainly: r1
 * was loaded with a map reference by a ld_imm64 earlier in the same
 * straight-line stretch (no instruction in between is a jump target, a
 * jump, a call, or writes r1).  That is how clang emits every
 * bpf_map_lookup_elem(&map, ...).  NULL otherwise (the generic helper is
 * called then).  The verifier has already proved r1 is a map there; this
 * only finds which one.
 */
static const probe_map_t *known_map(const jit_t *j, uint32_t pc)
{
	for (uint32_t k = pc, steps = 0; k > 0 && steps < 64; steps++) {
		if (j->is_target[k])
			return NULL;        /* control can arrive here from elsewhere */
		k--;
		const probe_insn_t *in = &j->insns[k];
		if (j->second_half[k])
			continue;           /* its first half is looked at next */
		uint8_t cls = BPF_CLASS(in->code);
		if (in->code == (BPF_LD | BPF_IMM | BPF_DW)) {
			if (in->dst_reg != 1)
				continue;
			if (in->src_reg != PROBE_PSEUDO_MAP)
				return NULL;
			uint64_t v = (uint64_t)(uint32_t)in->imm | (uint64_t)(uint32_t)in[1].imm << 32;
			return (const probe_map_t *)(uintptr_t)v;
		}
		if (cls == BPF_ALU || cls == BPF_ALU64 || cls == BPF_LDX) {
			if (in->dst_reg == 1)
				return NULL;
			continue;
		}
		if (cls == BPF_ST || (cls == BPF_STX && BPF_MODE(in->code) == BPF_MEM))
			continue;           /* memory only */
		return NULL;                /* jumps, calls, atomics (may write a register) */
	}
	return NULL;
}

/* r0 = map_lookup(r1 = M, r2 = key) for a known map M. */
static void emit_lookup(jit_t *j, const probe_map_t *m)
{
	if (m->type == BPF_MAP_TYPE_ARRAY && m->value_stride <= INT32_MAX &&
	    m->max_entries <= INT32_MAX) {
		/* Inline, as Linux's JIT does for arrays: the key < max_entries
		 * test and base + key * stride; r1-r5 are dead after a call. */
		e2(j, 0x8b, 0x06);                   /* mov eax, [rsi] */
		e1(j, 0x3d);                         /* cmp eax, max_entries */
		e4(j, m->max_entries);
		size_t out_of_range = jcc8(j, 0x73); /* jae null */
		rex(j, true, RAX, RAX, false);
		e2(j, 0x69, 0xc0);                   /* imul rax, rax, stride */
		e4(j, m->value_stride);
		mov_ri64(j, R11, (uint64_t)(uintptr_t)probe_map_values(m));
		op_rr(j, 0x01, true, RAX, R11);      /* add rax, r11 */
		size_t done = jcc8(j, 0xeb);         /* jmp done */
		patch8(j, out_of_range);
		op_rr(j, 0x31, false, RAX, RAX);     /* null: xor eax, eax */
		patch8(j, done);
		return;
	}
	void *(*fn)(probe_map_t *, const void *) =
		m->type == BPF_MAP_TYPE_PERCPU_ARRAY ? probe_map_lookup_percpu
		: m->type == BPF_MAP_TYPE_HASH ? probe_map_lookup_hash : probe_map_lookup;
	mov_ri64(j, RAX, (uint64_t)(uintptr_t)fn);
	e2(j, 0xff, 0xd0);                           /* call rax */
}

static void emit_jmp(jit_t *j, const probe_insn_t *in, uint32_t pc, uint32_t n)
{
	uint8_t op = BPF_OP(in->code);
	bool w = BPF_CLASS(in->code) == BPF_JMP;
	uint32_t target = (uint32_t)((int64_t)pc + 1 + in->off);
	if (op == BPF_EXIT) {
		if (pc + 1 != n)                     /* the epilogue follows the last one */
			jump_to(j, 0, TARGET_EPILOGUE);
		return;
	}
	if (op == BPF_CALL) {
		const probe_map_t *m;
		if (in->imm == BPF_FUNC_map_lookup_elem && (m = known_map(j, pc))) {
			emit_lookup(j, m);
			return;
		}
		/* BPF r1-r5 already are the argument registers. */
		mov_ri64(j, RAX, (uint64_t)(uintptr_t)probe_helper_fn(in->imm));
		e2(j, 0xff, 0xd0);                   /* call rax */
		return;
	}
	if (op == BPF_JA) {
		jump_to(j, 0, target);
		return;
	}
	uint8_t dst = REG[in->dst_reg];
	if (BPF_SRC(in->code) == BPF_X) {
		op_rr(j, op == BPF_JSET ? 0x85 : 0x39, w, dst, REG[in->src_reg]);
	} else if (op == BPF_JSET) {
		rex(j, w, 0, dst, false);
		e2(j, 0xf7, (uint8_t)(0xc0 | (dst & 7)));   /* test dst, imm32 */
		e4(j, (uint32_t)in->imm);
	} else {
		alu_ri(j, 7, w, dst, in->imm);       /* cmp dst, imm */
	}
	jump_to(j, jcc_of(op), target);
}

/* ---- the program --------------------------------------------------------- */

struct probe_jit {
	void *code;
	size_t size;
};

static const uint8_t CALLEE_SAVED[] = { RBP, RBX, R13, R14, R15 };   /* r10, r6-r9 */

int probe_jit_compile(thoth_probe_prog_t *prog, char *msg, size_t msg_len)
{
	const probe_insn_t *insns = prog->insns;
	uint32_t n = prog->n_insns;
	jit_t j = { 0 };
	int r = THOTH_E_NOMEM;
	bool *loop_head = calloc(n + 1, sizeof *loop_head);
	bool *is_target = calloc(n + 1, sizeof *is_target);
	bool *second_half = calloc(n + 1, sizeof *second_half);
	j.off = calloc(n + 1, sizeof *j.off);
	j.insns = insns;
	j.is_target = is_target;
	j.second_half = second_half;
	if (!loop_head || !is_target || !second_half || !j.off)
		goto out;

	/* Which callee-saved registers the program touches; loop heads. */
	bool used[11] = { false };
	bool loops = false;
	for (uint32_t i = 0; i < n; i++) {
		const probe_insn_t *in = &insns[i];
		used[in->dst_reg] = used[in->src_reg] = true;
		uint8_t cls = BPF_CLASS(in->code), op = BPF_OP(in->code);
		if ((cls == BPF_JMP || cls == BPF_JMP32) && op != BPF_CALL && op != BPF_EXIT) {
			/* the verifier keeps every target inside the program */
			int64_t t = (int64_t)i + 1 + in->off;
			if (t >= 0 && t <= (int64_t)n)
				is_target[t] = true;
			if (in->off < 0) {
				loop_head[i + 1 + in->off] = true;
				loops = true;
			}
		}
		if (in->code == (BPF_LD | BPF_IMM | BPF_DW) && i + 1 < n) {
			second_half[i + 1] = true;
			i++;   /* its second half's fields are an immediate */
		}
	}
	bool save[5] = { used[10], used[6], used[7], used[8], used[9] };
	unsigned pushes = 0;
	for (int k = 0; k < 5; k++)
		pushes += save[k];
	pushes += loops ? 2 : 0;                 /* r12 and the status pointer */
	/* At a call rsp must be 16-aligned: entry is 8 off, each push 8. */
	j.frame = (used[10] ? PROBE_STACK : 0) + ((pushes & 1) ? 0 : 8);

	/* Prologue. */
	for (int k = 0; k < 5; k++)
		if (save[k]) {
			rex(&j, false, 0, CALLEE_SAVED[k], false);
			e1(&j, (uint8_t)(0x50 + (CALLEE_SAVED[k] & 7)));
		}
	if (loops) {
		e2(&j, 0x41, 0x54);                  /* push r12 */
		e1(&j, 0x56);                        /* push rsi (status pointer) */
	}
	if (j.frame) {
		rex(&j, true, 0, RSP, false);
		e2(&j, 0x81, 0xec);                  /* sub rsp, frame */
		e4(&j, j.frame);
	}
	if (used[10]) {
		rex(&j, true, RBP, RSP, false);
		e1(&j, 0x8d);                        /* lea rbp, [rsp + 512] */
		modrm_mem(&j, RBP, RSP, PROBE_STACK);
	}
	if (loops)
		mov_ri(&j, false, R12, (int32_t)PROBE_RUN_BUDGET);

	for (uint32_t i = 0; i < n; i++) {
		const probe_insn_t *in = &insns[i];
		j.off[i] = (uint32_t)j.len;
		if (loop_head[i]) {
			rex(&j, false, 0, R12, false);
			e2(&j, 0xff, (uint8_t)(0xc0 | 1 << 3 | (R12 & 7)));   /* dec r12d */
			jump_to(&j, 0x84, TARGET_LIMIT);                       /* jz limit */
		}
		switch (BPF_CLASS(in->code)) {
		case BPF_ALU: case BPF_ALU64:
			emit_alu(&j, in);
			break;
		case BPF_LD: {
			uint64_t v = (uint64_t)(uint32_t)in->imm | (uint64_t)(uint32_t)in[1].imm << 32;
			mov_ri64(&j, REG[in->dst_reg], v);
			i++;
			j.off[i] = (uint32_t)j.len;      /* never a target (verifier) */
			break;
		}
		case BPF_LDX:
			emit_ldx(&j, in);
			break;
		case BPF_ST:
			emit_st(&j, in);
			break;
		case BPF_STX:
			if (BPF_MODE(in->code) == BPF_ATOMIC)
				emit_atomic(&j, in);
			else
				emit_stx(&j, in);
			break;
		default:
			emit_jmp(&j, in, i, n);
			break;
		}
	}

	/* Epilogue. */
	j.off[n] = (uint32_t)j.len;
	if (j.frame) {
		rex(&j, true, 0, RSP, false);
		e2(&j, 0x81, 0xc4);                  /* add rsp, frame */
		e4(&j, j.frame);
	}
	if (loops) {
		e1(&j, 0x5e);                        /* pop rsi */
		e2(&j, 0x41, 0x5c);                  /* pop r12 */
	}
	for (int k = 4; k >= 0; k--)
		if (save[k]) {
			rex(&j, false, 0, CALLEE_SAVED[k], false);
			e1(&j, (uint8_t)(0x58 + (CALLEE_SAVED[k] & 7)));
		}
	e1(&j, 0xc3);                            /* ret */
	if (loops) {
		/* Budget exhausted: *status = 1, r0 = 0. */
		j.limit_off = (uint32_t)j.len;
		rex(&j, true, R11, RSP, false);
		e1(&j, 0x8b);                        /* mov r11, [rsp + frame] */
		modrm_mem(&j, R11, RSP, (int32_t)j.frame);
		rex(&j, false, 0, R11, false);
		e1(&j, 0xc7);                        /* mov dword [r11], 1 */
		modrm_mem(&j, 0, R11, 0);
		e4(&j, 1);
		op_rr(&j, 0x31, false, RAX, RAX);
		jump_to(&j, 0, TARGET_EPILOGUE);
	}
	if (j.oom)
		goto out;
	for (size_t k = 0; k < j.nfix; k++) {
		uint32_t t = j.fix[k].target;
		uint32_t dest = t == TARGET_EPILOGUE ? j.off[n] : t == TARGET_LIMIT ? j.limit_off
		                                                                  : j.off[t];
		int32_t rel = (int32_t)((int64_t)dest - (int64_t)(j.fix[k].at + 4));
		memcpy(j.buf + j.fix[k].at, &rel, 4);
	}

	/* W^X: write into a read-write mapping, then make it read-execute. */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t size = (j.len + page - 1) / page * page;
	void *code = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (code == MAP_FAILED) {
		r = thoth_error_io(errno, "mmap JIT code");
		goto out;
	}
	memcpy(code, j.buf, j.len);
	if (mprotect(code, size, PROT_READ | PROT_EXEC) < 0) {
		r = thoth_error_io(errno, "mprotect JIT code read-execute");
		if (msg && msg_len)
			snprintf(msg, msg_len, "JIT: code memory cannot be made executable: %s",
			         strerror(errno));
		munmap(code, size);
		goto out;
	}
	struct probe_jit *pj = malloc(sizeof *pj);
	if (!pj) {
		munmap(code, size);
		goto out;
	}
	pj->code = code;
	pj->size = size;
	prog->jit = pj;
	prog->jit_fn = (probe_jit_fn_t)code;
	prog->jit_size = j.len;
	r = 0;
out:
	if (r == THOTH_E_NOMEM && msg && msg_len)
		snprintf(msg, msg_len, "JIT: out of memory");
	free(loop_head);
	free(is_target);
	free(second_half);
	free(j.off);
	free(j.fix);
	free(j.buf);
	return r;
}

void probe_jit_free(thoth_probe_prog_t *prog)
{
	if (!prog->jit)
		return;
	munmap(prog->jit->code, prog->jit->size);
	free(prog->jit);
	prog->jit = NULL;
	prog->jit_fn = NULL;
}

bool probe_jit_available(void)
{
	return true;
}

#else /* !__x86_64__ */

int probe_jit_compile(thoth_probe_prog_t *prog, char *msg, size_t msg_len)
{
	(void)prog;
	if (msg && msg_len)
		snprintf(msg, msg_len, "no probe JIT for this architecture (x86-64 only): "
		         "use the interpreter");
	return THOTH_E_INVAL;
}

void probe_jit_free(thoth_probe_prog_t *prog)
{
	(void)prog;
}

bool probe_jit_available(void)
{
	return false;
}

#endif
