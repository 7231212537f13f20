/*
 * test_probe_jit.c - the x86-64 JIT against the interpreter (the
 * reference), opcode class by opcode class: every ALU op in 32 and 64 bits
 * with immediate and register sources, over register pairs that include
 * the ones the JIT treats specially (r0/rax and r3/rdx for division, r4/rcx
 * for shifts, r1/r2 as byte registers), byte swaps, loads and stores of
 * every size, every atomic operation, every conditional jump in 32 and 64
 * bits, ld_imm64, helper calls, loops and the loop budget.  Each program
 * first gives r0-r9 distinct values, runs the instruction under test, then
 * folds every register into r0: a JIT that clobbers a register it should
 * not (a scratch register, rcx around a shift) shows as a different r0.
 * Then the corpus's clang-built programs run on both engines with the
 * same contexts and must leave the same maps.  On an architecture without
 * the JIT the tests check that AUTO falls back to the interpreter.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "probe_internal.h"
#include "probe_test_util.h"
#include "../common/skip.h"

#define LD64(d, v) I(BPF_LD | BPF_IMM | BPF_DW, d, 0, 0, (int32_t)(uint32_t)(uint64_t)(v)), \
	I(0, 0, 0, 0, (int32_t)(uint32_t)((uint64_t)(v) >> 32))

static const uint64_t VALUES[] = {
	0, 1, 2, 7, 31, 32, 63, 0x7f, 0x80, 0xffff, 0x12345678, 0x7fffffff, 0x80000000,
	0xffffffff, 0x100000000ull, 0x123456789abcdef0ull, 0x8000000000000000ull,
	0xfffffffffffffffeull, 0xffffffffffffffffull,
};
#define N_VALUES (sizeof VALUES / sizeof VALUES[0])
static const int32_t IMMS[] = { 0, 1, 3, 31, 63, -1, -7, 0x7fffffff, INT32_MIN, 0x1234, 200, -200 };
#define N_IMMS (sizeof IMMS / sizeof IMMS[0])

static bool have_jit;
static unsigned compared;   /* programs run on both engines */
static unsigned cases_compared;   /* cases in those programs */

typedef struct result {
	int load;        /* 0 or the load error */
	char msg[2048];  /* the verifier's reason */
	int run;
	uint64_t ret;
	uint8_t map[64]; /* the 4 x 16-byte ARRAY of raw_object, after the run */
} result_t;

/* One maps instance per engine for the whole run (a memfd per program
 * would cost more than the programs): both see the same sequence of
 * programs, so their maps stay equal while the engines agree. */
static thoth_probe_maps_t *engine_maps[2];

static void run_engine(const probe_insn_t *insns, size_t n, unsigned engine, result_t *out)
{
	thoth_probe_object_t *o = raw_object(insns, n);
	thoth_probe_maps_t *maps = engine_maps[engine == THOTH_PROBE_ENGINE_JIT];
	thoth_probe_prog_t *prog = NULL;
	memset(out, 0, sizeof *out);
	out->load = thoth_probe_prog_load(o, 0, maps, engine, &prog, out->msg, sizeof out->msg);
	if (out->load == 0) {
		assert_int_equal(thoth_probe_prog_engine(prog), engine);
		struct thoth_probe_ctx ctx = { .ts_ns = 0x1122334455667788ull, .trace_id = 9,
		                               .service_id = 3, .size = 1500, .arg0 = 42,
		                               .arg1 = 0xfedcba9876543210ull, .method = 7,
		                               .flags = 0x81, .pid = 77 };
		out->run = thoth_probe_prog_run(prog, &ctx, &out->ret);
		for (uint32_t k = 0; k < 4; k++)
			assert_int_equal(thoth_probe_map_lookup(maps, 0, &k, out->map + 16 * k), 0);
	}
	thoth_probe_prog_free(prog);
	thoth_probe_object_free(o);
}

/* Run on both engines; false (and WHY) when they disagree. */
static bool agree(const probe_insn_t *insns, size_t n, const char *what, uint64_t *ret,
                  char *why, size_t why_len)
{
	result_t a, b;
	run_engine(insns, n, THOTH_PROBE_ENGINE_INTERP, &a);
	if (a.load)
		fail_msg("%s: the verifier refused the test program: %s", what, a.msg);
	*ret = a.ret;
	if (!have_jit)
		return true;
	run_engine(insns, n, THOTH_PROBE_ENGINE_JIT, &b);
	assert_int_equal(b.load, 0);
	compared++;
	if (a.run != b.run || a.ret != b.ret || memcmp(a.map, b.map, sizeof a.map)) {
		snprintf(why, why_len, "%s: interpreter r0=%#llx (run %d), JIT r0=%#llx (run %d)%s",
		         what, (unsigned long long)a.ret, a.run, (unsigned long long)b.ret, b.run,
		         memcmp(a.map, b.map, sizeof a.map) ? ", maps differ" : "");
		return false;
	}
	return true;
}

/* Run on both engines; they must agree.  Returns r0 (the interpreter's). */
static uint64_t both(const probe_insn_t *insns, size_t n, const char *what)
{
	uint64_t ret;
	char why[512];
	if (!agree(insns, n, what, &ret, why, sizeof why))
		fail_msg("%s", why);
	return ret;
}

/*
 * Program builder.  A program is a batch of cases (a memfd-free, but still
 * mmap'ed JIT per program would dominate the run time otherwise): each case
 * gives r0-r9 but r6 distinct values, runs the instruction under test and
 * folds every register into r6 (r6 = r6 * 31 + rk); the program returns r6.
 * A case's instruction may write r6 too: both engines must agree on that.
 */
#define PROG_MAX 4096
#define CASES_MAX 40
typedef struct prog {
	probe_insn_t in[PROG_MAX];
	size_t n;
	unsigned cases;
	char what[160];                 /* the case being built */
	size_t start[CASES_MAX + 1];    /* where each case begins */
	char whats[CASES_MAX][160];
} prog_t;

static void add(prog_t *p, probe_insn_t in)
{
	assert_true(p->n < PROG_MAX);
	p->in[p->n++] = in;
}

static void set_reg(prog_t *p, int r, uint64_t v)
{
	probe_insn_t ld[2] = { LD64(r, v) };
	add(p, ld[0]);
	add(p, ld[1]);
}

/* Start a case: registers set from SEED (r6 only at the program's start). */
static void set_regs(prog_t *p, uint64_t seed)
{
	bool first = p->n == 0;
	if (first)
		p->start[0] = 0;
	for (int r = 0; r <= 9; r++)
		if (r != 6 || first)
			set_reg(p, r, seed * 0x9e3779b97f4a7c15ull + (uint64_t)r * 0x100000001ull + 3);
}

static void fold(prog_t *p)
{
	for (int r = 0; r <= 9; r++)
		if (r != 6) {
			add(p, ALU64_IMM(BPF_MUL, 6, 31));
			add(p, ALU64_REG(BPF_ADD, 6, r));
		}
}

/* Run the batch on both engines and start an empty one.  When they
 * disagree, each case runs alone to name the one that differs. */
static void flush(prog_t *p)
{
	static probe_insn_t one[PROG_MAX];
	if (p->n) {
		add(p, MOV64_REG(0, 6));
		add(p, EXIT());
		uint64_t ret;
		char why[512];
		if (have_jit)
			cases_compared += p->cases;
		if (!agree(p->in, p->n, p->what, &ret, why, sizeof why)) {
			for (unsigned c = 0; c < p->cases; c++) {
				size_t n = 0, len = p->start[c + 1] - p->start[c];
				one[n++] = MOV64_IMM(6, 0);
				memcpy(one + n, p->in + p->start[c], len * sizeof one[0]);
				n += len;
				one[n++] = MOV64_REG(0, 6);
				one[n++] = EXIT();
				if (!agree(one, n, p->whats[c], &ret, why, sizeof why))
					break;
			}
			fail_msg("%s", why);
		}
	}
	p->n = 0;
	p->cases = 0;
}

/* End a case; the batch runs when it is full. */
static void end_case(prog_t *p)
{
	fold(p);
	snprintf(p->whats[p->cases], sizeof p->whats[0], "%s", p->what);
	p->start[++p->cases] = p->n;
	if (p->cases >= CASES_MAX || p->n > PROG_MAX - 200)
		flush(p);
}

/* A single-case program. */
static void fold_exit(prog_t *p)
{
	fold(p);
	flush(p);
}

static prog_t P;   /* 32 KiB: not on the stack */

/* Every test starts an empty batch (a failed one may have left one). */
static int reset_batch(void **state)
{
	(void)state;
	P.n = 0;
	P.cases = 0;
	return 0;
}

/* ---- ALU ------------------------------------------------------------------------ */

static const uint8_t ALU_OPS[] = { BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH,
	                               BPF_RSH, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH };
static const uint8_t DSTS[] = { 0, 1, 3, 4, 9 };
static const uint8_t SRCS[] = { 0, 2, 3, 4 };

static bool is_shift(uint8_t op) { return op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH; }

static void alu_register_sources(void **state)
{
	(void)state;
	for (int cls = 0; cls < 2; cls++)
		for (size_t o = 0; o < sizeof ALU_OPS; o++)
			for (size_t d = 0; d < sizeof DSTS; d++)
				for (size_t s = 0; s < sizeof SRCS; s++)
					for (size_t va = 0; va < N_VALUES; va += 3)
						for (size_t vb = 0; vb < N_VALUES; vb += 3) {
							uint8_t op = ALU_OPS[o], dr = DSTS[d], sr = SRCS[s];
							uint64_t b = VALUES[vb];
							if (is_shift(op))   /* in range, as the verifier wants */
								b &= cls ? 63 : 31;
														set_regs(&P, va * 31 + vb);
							set_reg(&P, dr, VALUES[va]);
							if (sr != dr)
								set_reg(&P, sr, b);
							add(&P, I((cls ? BPF_ALU64 : BPF_ALU) | op | BPF_X, dr, sr, 0, 0));
						snprintf(P.what, sizeof P.what, "alu%d op %#x r%u, r%u (%#llx, %#llx)",
							         cls ? 64 : 32, op, dr, sr,
							         (unsigned long long)VALUES[va], (unsigned long long)b);
							end_case(&P);
						}
	flush(&P);
}

static void alu_immediates_and_neg(void **state)
{
	(void)state;
	for (int cls = 0; cls < 2; cls++)
		for (size_t o = 0; o < sizeof ALU_OPS; o++)
			for (size_t d = 0; d < sizeof DSTS; d++)
				for (size_t va = 0; va < N_VALUES; va += 2)
					for (size_t k = 0; k < N_IMMS; k++) {
						uint8_t op = ALU_OPS[o], dr = DSTS[d];
						int32_t imm = IMMS[k];
						if ((op == BPF_DIV || op == BPF_MOD) && imm == 0)
							continue;
						if (is_shift(op) && (imm < 0 || imm >= (cls ? 64 : 32)))
							continue;
												set_regs(&P, va + k);
						set_reg(&P, dr, VALUES[va]);
						add(&P, I((cls ? BPF_ALU64 : BPF_ALU) | op | BPF_K, dr, 0, 0, imm));
						snprintf(P.what, sizeof P.what, "alu%d op %#x r%u, %d (%#llx)", cls ? 64 : 32,
						         op, dr, imm, (unsigned long long)VALUES[va]);
						end_case(&P);
					}
	for (int cls = 0; cls < 2; cls++)
		for (size_t d = 0; d < sizeof DSTS; d++)
			for (size_t va = 0; va < N_VALUES; va++) {
								set_regs(&P, va);
				set_reg(&P, DSTS[d], VALUES[va]);
				add(&P, I((cls ? BPF_ALU64 : BPF_ALU) | BPF_NEG, DSTS[d], 0, 0, 0));
				snprintf(P.what, sizeof P.what, "neg%d r%u (%#llx)", cls ? 64 : 32, DSTS[d], (unsigned long long)VALUES[va]);
				end_case(&P);
			}
	flush(&P);
	/* known answers, so that both engines cannot agree on a wrong value */
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 0xffffffff00000007ull),
	                                        I(BPF_ALU | BPF_DIV | BPF_K, 0, 0, 0, 2), EXIT() },
	                      4, "div32"), 3);
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 9), MOV64_IMM(3, 0),
	                                        ALU64_REG(BPF_MOD, 0, 3), EXIT() }, 5, "mod0"), 9);
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 0xffffffff00000009ull), MOV64_IMM(3, 0),
	                                        ALU32_REG(BPF_MOD, 0, 3), EXIT() }, 5, "mod32 0"), 9);
	assert_int_equal(both((probe_insn_t[]){ LD64(4, 0xffffffff00000001ull), MOV64_IMM(0, 0),
	                                        ALU32_REG(BPF_LSH, 4, 0), MOV64_REG(0, 4), EXIT() },
	                      6, "lsh32 by 0 zero-extends"), 1);
	assert_int_equal(both((probe_insn_t[]){ MOV64_IMM(0, -8), ALU64_IMM(BPF_ARSH, 0, 1), EXIT() },
	                      3, "arsh"), (uint64_t)-4);
}

static void byte_swaps(void **state)
{
	(void)state;
	static const int32_t widths[] = { 16, 32, 64 };
	for (int be = 0; be < 2; be++)
		for (int w = 0; w < 3; w++)
			for (size_t d = 0; d < sizeof DSTS; d++)
				for (size_t va = 0; va < N_VALUES; va++) {
										set_regs(&P, va);
					set_reg(&P, DSTS[d], VALUES[va]);
					add(&P, I(BPF_ALU | BPF_END | (be ? BPF_TO_BE : BPF_TO_LE), DSTS[d], 0, 0,
					          widths[w]));
					snprintf(P.what, sizeof P.what, "%s %d r%u (%#llx)", be ? "to_be" : "to_le", widths[w], DSTS[d], (unsigned long long)VALUES[va]);
					end_case(&P);
				}
	flush(&P);
	/* Linux: to_be 64 swaps all 64 bits, to_le 64 keeps them */
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 0x0102030405060708ull),
	                                        I(BPF_ALU | BPF_END | BPF_TO_BE, 0, 0, 0, 64), EXIT() },
	                      4, "be64"), 0x0807060504030201ull);
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 0x0102030405060708ull),
	                                        I(BPF_ALU | BPF_END | BPF_TO_LE, 0, 0, 0, 64), EXIT() },
	                      4, "le64"), 0x0102030405060708ull);
	assert_int_equal(both((probe_insn_t[]){ LD64(0, 0x0102030405060708ull),
	                                        I(BPF_ALU | BPF_END | BPF_TO_BE, 0, 0, 0, 16), EXIT() },
	                      4, "be16"), 0x0807);
}

/* ---- memory ------------------------------------------------------------------------ */

static const uint8_t SIZES[] = { BPF_B, BPF_H, BPF_W, BPF_DW };

static void loads_and_stores(void **state)
{
	(void)state;
	/* stores of every size from every register (r1/r2 = sil/dil bytes) and
	 * immediates, at offsets that need disp8 and disp32, read back in every size */
	static const int16_t offs[] = { -8, -16, -136, -512 };
	for (size_t z = 0; z < 4; z++)
		for (size_t o = 0; o < 4; o++)
			for (uint8_t sr = 0; sr <= 9; sr++)
				for (size_t lz = 0; lz < 4; lz++) {
										set_regs(&P, sr + z);
					add(&P, ST_IMM(BPF_DW, 10, offs[o], -1));
					add(&P, STX(SIZES[z], 10, sr, offs[o]));
					add(&P, LDX(SIZES[lz], 6, 10, offs[o]));
					snprintf(P.what, sizeof P.what, "stx size %#x r%u at fp%d, ldx size %#x", SIZES[z], sr, offs[o], SIZES[lz]);
					end_case(&P);
				}
	for (size_t z = 0; z < 4; z++)
		for (size_t k = 0; k < N_IMMS; k++) {
						set_regs(&P, k);
			add(&P, ST_IMM(BPF_DW, 10, -8, 0));
			add(&P, ST_IMM(SIZES[z], 10, -8, IMMS[k]));
			add(&P, LDX(BPF_DW, 7, 10, -8));
			snprintf(P.what, sizeof P.what, "st size %#x imm %d", SIZES[z], IMMS[k]);
			end_case(&P);
		}
	flush(&P);
	/* the context, every field size, through r1 and through a copy in r6 */
	for (size_t z = 0; z < 4; z++)
		for (int16_t off = 0; off < 64; off = (int16_t)(off + (1 << (SIZES[z] == BPF_B ? 0 : SIZES[z] == BPF_H ? 1 : SIZES[z] == BPF_W ? 2 : 3)) * 3)) {
			probe_insn_t p[] = { MOV64_REG(6, 1), LDX(SIZES[z], 0, 6, off),
			                     LDX(SIZES[z], 2, 1, off), ALU64_REG(BPF_XOR, 0, 2),
			                     LDX(SIZES[z], 2, 1, off), ALU64_REG(BPF_ADD, 0, 2), EXIT() };
			both(p, 7, "ctx load");
		}
	assert_int_equal(both((probe_insn_t[]){ LDX(BPF_H, 0, 1, 56), EXIT() }, 2, "ctx method"), 7);
	assert_int_equal(both((probe_insn_t[]){ LDX(BPF_B, 0, 1, 58), EXIT() }, 2, "ctx flags"),
	                 0x81);
}

static void map_values(void **state)
{
	(void)state;
	/* lookup, null check, store/atomic into the value: map contents compared */
	for (uint32_t key = 0; key < 4; key++)
		for (size_t z = 0; z < 4; z++) {
			probe_insn_t p[] = {
				MOV64_REG(6, 1),
				ST_IMM(BPF_W, 10, -4, (int32_t)key),
				LD_MAP(1, 0),
				MOV64_REG(2, 10),
				ALU64_IMM(BPF_ADD, 2, -4),
				CALL(BPF_FUNC_map_lookup_elem),
				JMP_IMM(BPF_JEQ, 0, 0, 5),
				LDX(BPF_DW, 3, 6, 40),
				STX(SIZES[z], 0, 3, 8),
				MOV64_IMM(4, 5),
				I(BPF_STX | BPF_ATOMIC | BPF_DW, 0, 4, 0, BPF_ADD),
				MOV64_IMM(0, 1),
				EXIT(),
			};
			assert_int_equal(both(p, sizeof p / sizeof p[0], "map value"), 1);
		}
}

static void atomics(void **state)
{
	(void)state;
	static const int32_t ops[] = { BPF_ADD, BPF_OR, BPF_AND, BPF_XOR, BPF_ADD | BPF_FETCH,
		                           BPF_OR | BPF_FETCH, BPF_AND | BPF_FETCH,
		                           BPF_XOR | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG };
	for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
		for (int dw = 0; dw < 2; dw++)
			for (uint8_t sr = 0; sr <= 9; sr++)
				for (size_t va = 0; va < N_VALUES; va += 4)
					for (int eq = 0; eq < 2; eq++) {
												set_regs(&P, o * 7 + sr + va);
						/* memory at fp-16 = VALUES[va]; for cmpxchg r0 == it or not */
						set_reg(&P, 6, VALUES[va]);
						add(&P, STX(BPF_DW, 10, 6, -16));
						if (eq && sr != 0)
							add(&P, MOV64_REG(0, 6));
						if (sr == 6)
							set_reg(&P, 6, 0x5555aaaa5555aaaaull);
						add(&P, I(BPF_STX | BPF_ATOMIC | (dw ? BPF_DW : BPF_W), 10, sr, -16,
						          ops[o]));
						add(&P, LDX(BPF_DW, 8, 10, -16));
						snprintf(P.what, sizeof P.what, "atomic %#x %s r%u (%#llx)%s", ops[o], dw ? "u64" : "u32", sr, (unsigned long long)VALUES[va], eq ? " equal" : "");
						end_case(&P);
					}
	flush(&P);
	/* the atomic's base register may be r0 itself (cmpxchg compares r0) */
	assert_int_equal(both((probe_insn_t[]){ ST_IMM(BPF_DW, 10, -8, 10), MOV64_REG(0, 10),
	                                        ALU64_IMM(BPF_ADD, 0, -8), MOV64_IMM(2, 3),
	                                        I(BPF_STX | BPF_ATOMIC | BPF_DW, 0, 2, 0,
	                                          BPF_OR | BPF_FETCH),
	                                        LDX(BPF_DW, 0, 10, -8), ALU64_REG(BPF_ADD, 0, 2),
	                                        EXIT() }, 8, "fetch-or via r0"), 11 + 10);
}

/* ---- jumps, calls, loops ------------------------------------------------------- */

static void conditional_jumps(void **state)
{
	(void)state;
	static const uint8_t ops[] = { BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT,
		                           BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE };
	for (int cls = 0; cls < 2; cls++)
		for (size_t o = 0; o < sizeof ops; o++)
			for (size_t va = 0; va < N_VALUES; va += 2) {
				for (size_t vb = 0; vb < N_VALUES; vb++) {
										set_regs(&P, va + vb);
					set_reg(&P, 3, VALUES[va]);
					set_reg(&P, 4, VALUES[vb]);
					add(&P, I((cls ? BPF_JMP : BPF_JMP32) | ops[o] | BPF_X, 3, 4, 1, 0));
					add(&P, MOV64_IMM(5, 1000));
					snprintf(P.what, sizeof P.what, "jmp%s op %#x r3, r4 (%#llx, %#llx)", cls ? "" : "32", ops[o], (unsigned long long)VALUES[va], (unsigned long long)VALUES[vb]);
					end_case(&P);
				}
				for (size_t k = 0; k < N_IMMS; k++) {
										set_regs(&P, va + k);
					set_reg(&P, 4, VALUES[va]);
					add(&P, I((cls ? BPF_JMP : BPF_JMP32) | ops[o] | BPF_K, 4, 0, 1, IMMS[k]));
					add(&P, MOV64_IMM(5, 1000));
					snprintf(P.what, sizeof P.what, "jmp%s op %#x r4, %d (%#llx)", cls ? "" : "32", ops[o], IMMS[k], (unsigned long long)VALUES[va]);
					end_case(&P);
				}
			}
	flush(&P);
	/* goto, and a backward conditional jump: a loop summing 1..100 */
	assert_int_equal(both((probe_insn_t[]){ MOV64_IMM(0, 1), LDX(BPF_W, 2, 1, 20),
	                                        JMP_IMM(BPF_JGT, 2, 2000, 2), MOV64_IMM(0, 5), JA(1),
	                                        MOV64_IMM(0, 7), EXIT() }, 7, "goto"), 5);
	assert_int_equal(both((probe_insn_t[]){ MOV64_IMM(0, 0), MOV64_IMM(2, 0),
	                                        ALU64_IMM(BPF_ADD, 2, 1), ALU64_REG(BPF_ADD, 0, 2),
	                                        JMP_IMM(BPF_JLT, 2, 100, -3), EXIT() },
	                      6, "loop"), 5050);
}

static void helper_calls(void **state)
{
	(void)state;
	/* pid_tgid: same process, same thread */
	uint64_t v = both((probe_insn_t[]){ CALL(BPF_FUNC_get_current_pid_tgid), EXIT() }, 2, "pid");
	assert_int_equal(v >> 32, (uint64_t)getpid());
	/* r6-r9 survive a call; r0 is the result */
	snprintf(P.what, sizeof P.what, "call keeps r6-r9");
	set_regs(&P, 5);
	add(&P, CALL(BPF_FUNC_get_current_pid_tgid));
	add(&P, MOV64_IMM(1, 1));
	add(&P, MOV64_IMM(2, 2));
	add(&P, MOV64_IMM(3, 3));
	add(&P, MOV64_IMM(4, 4));
	add(&P, MOV64_IMM(5, 5));
	add(&P, ALU64_IMM(BPF_RSH, 0, 32));
	fold_exit(&P);
	/* update then lookup through a map: both engines leave the same map */
	probe_insn_t q[] = {
		ST_IMM(BPF_W, 10, -4, 2),
		ST_IMM(BPF_DW, 10, -24, 0x1234),
		ST_IMM(BPF_DW, 10, -16, -5),
		LD_MAP(1, 0),
		MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4),
		MOV64_REG(3, 10), ALU64_IMM(BPF_ADD, 3, -24),
		MOV64_IMM(4, BPF_ANY),
		CALL(BPF_FUNC_map_update_elem),
		EXIT(),
	};
	assert_int_equal(both(q, sizeof q / sizeof q[0], "update"), 0);
}

/* The loop budget: a JIT'd program whose loop runs out is stopped with
 * THOTH_E_LIMIT as the interpreter stops it.  The verifier rejects such a
 * loop, so the program is handed to the JIT directly. */
static void loop_budget(void **state)
{
	(void)state;
	if (!have_jit)
		skip_because("no probe JIT on this machine (probe_jit_available)");
	probe_insn_t loop[] = { MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1), JA(-2), EXIT() };
	thoth_probe_prog_t prog = { .insns = loop, .n_insns = 4 };
	char msg[256];
	assert_int_equal(probe_jit_compile(&prog, msg, sizeof msg), 0);
	struct thoth_probe_ctx ctx = { 0 };
	uint64_t ret = 1;
	assert_int_equal(thoth_probe_prog_run(&prog, &ctx, &ret), THOTH_E_LIMIT);
	assert_int_equal(ret, 0);
	probe_jit_free(&prog);
	assert_int_equal(probe_interp_run(&prog, &ctx, &ret), THOTH_E_LIMIT);
}

/* ---- the corpus --------------------------------------------------------------- */

typedef struct dump {
	uint8_t bytes[1 << 16];
	size_t len;
} dump_t;

/* Ring buffer records, appended: length then bytes. */
static int dump_entry(const void *key, const void *value, void *ctx)
{
	dump_t *d = ctx;
	uint32_t len;
	memcpy(&len, key, 4);
	assert_true(d->len + 4 + len <= sizeof d->bytes);
	memcpy(d->bytes + d->len, &len, 4);
	memcpy(d->bytes + d->len + 4, value, len);
	d->len += 4 + len;
	return 0;
}

static void dump_maps(thoth_probe_maps_t *maps, dump_t *d)
{
	/* The region's bytes past the header are the maps' whole state. */
	d->len = 0;
	for (size_t i = 0; i < thoth_probe_maps_count(maps); i++) {
		probe_map_t *m = &maps->maps[i];
		if (m->type == BPF_MAP_TYPE_RINGBUF) {
			assert_int_equal(thoth_probe_maps_foreach(maps, i, dump_entry, d), 0);
			continue;
		}
		size_t n = 64 + m->bytes;
		if (m->type == BPF_MAP_TYPE_PERCPU_ARRAY)   /* this thread's slot only */
			n = 64 + (size_t)m->max_entries * m->value_stride;
		assert_true(d->len + n <= sizeof d->bytes);
		memcpy(d->bytes + d->len, m->base, n);
		if (m->type == BPF_MAP_TYPE_PERCPU_ARRAY)
			memcpy(d->bytes + d->len + 64,
			       m->base + 64 + (size_t)probe_thread_slot() * m->max_entries * m->value_stride,
			       n - 64);
		d->len += n;
	}
}

static void corpus_programs_both_engines(void **state)
{
	(void)state;
	static const char *const corpus[] = { "a01_count", "a02_hash_sum", "a03_bounded_loop",
		                                  "a04_percpu", "a05_ringbuf", "a07_delete",
		                                  "a08_branchy" };
	static dump_t da, db;
	for (size_t c = 0; c < sizeof corpus / sizeof corpus[0]; c++) {
		char path[512], err[2048];
		snprintf(path, sizeof path, "%s/%s.o", PROBE_CORPUS_OBJ, corpus[c]);
		thoth_probe_object_t *obj;
		if (thoth_probe_object_open_file(path, &obj, err, sizeof err))
			fail_msg("%s: %s", path, err);
		dump_t *dumps[2] = { &da, &db };
		uint64_t rets[2] = { 0, 0 };
		for (int e = 0; e < (have_jit ? 2 : 1); e++) {
			thoth_probe_maps_t *maps;
			assert_int_equal(thoth_probe_maps_new(obj, &maps), 0);
			thoth_probe_prog_t *progs[4] = { NULL };
			size_t np = thoth_probe_object_prog_count(obj);
			for (size_t i = 0; i < np; i++)
				if (thoth_probe_prog_load(obj, i, maps, e ? THOTH_PROBE_ENGINE_JIT
				                                          : THOTH_PROBE_ENGINE_INTERP,
				                          &progs[i], err, sizeof err))
					fail_msg("%s: %s", corpus[c], err);
			for (uint32_t k = 0; k < 3000; k++) {
				struct thoth_probe_ctx ctx = { .size = (k * 37) % 3000, .service_id = k % 11,
				                               .arg0 = k, .arg1 = k * k, .trace_id = k ^ 0x55,
				                               .method = (uint16_t)(k % 5), .pid = 1 };
				uint64_t ret;
				assert_int_equal(thoth_probe_prog_run(progs[k % np], &ctx, &ret), 0);
				rets[e] = rets[e] * 31 + ret;
			}
			dump_maps(maps, dumps[e]);
			for (size_t i = 0; i < np; i++)
				thoth_probe_prog_free(progs[i]);
			thoth_probe_maps_free(maps);
		}
		if (have_jit) {
			assert_int_equal(rets[0], rets[1]);
			assert_int_equal(da.len, db.len);
			if (memcmp(da.bytes, db.bytes, da.len))
				fail_msg("%s: maps differ between the interpreter and the JIT", corpus[c]);
			compared++;
		}
		thoth_probe_object_free(obj);
	}
}

static void engine_selection(void **state)
{
	(void)state;
	probe_insn_t p[] = { MOV64_IMM(0, 3), EXIT() };
	thoth_probe_object_t *o = raw_object(p, 2);
	thoth_probe_maps_t *maps;
	assert_int_equal(thoth_probe_maps_new(o, &maps), 0);
	thoth_probe_prog_t *prog;
	char msg[256];
	assert_int_equal(thoth_probe_prog_load(o, 0, maps, THOTH_PROBE_ENGINE_AUTO, &prog, msg,
	                                       sizeof msg), 0);
	assert_int_equal(thoth_probe_prog_engine(prog),
	                 have_jit ? THOTH_PROBE_ENGINE_JIT : THOTH_PROBE_ENGINE_INTERP);
	if (have_jit) {
		/* W^X: the code's mapping is read-execute, never writable */
		FILE *f = fopen("/proc/self/maps", "r");
		assert_non_null(f);
		char line[512], perms[8] = "";
		uintptr_t code = (uintptr_t)prog->jit_fn;
		while (fgets(line, sizeof line, f)) {
			unsigned long lo, hi;
			char pm[8];
			if (sscanf(line, "%lx-%lx %7s", &lo, &hi, pm) == 3 && code >= lo && code < hi)
				snprintf(perms, sizeof perms, "%s", pm);
		}
		fclose(f);
		assert_string_equal(perms, "r-xp");
	}
	thoth_probe_prog_free(prog);
	/* THOTH_PROBE_JIT=0 turns AUTO into the interpreter */
	setenv("THOTH_PROBE_JIT", "0", 1);
	assert_int_equal(thoth_probe_prog_load(o, 0, maps, THOTH_PROBE_ENGINE_AUTO, &prog, msg,
	                                       sizeof msg), 0);
	assert_int_equal(thoth_probe_prog_engine(prog), THOTH_PROBE_ENGINE_INTERP);
	thoth_probe_prog_free(prog);
	unsetenv("THOTH_PROBE_JIT");
	/* an unknown engine is refused */
	assert_int_equal(thoth_probe_prog_load(o, 0, maps, 7, &prog, msg, sizeof msg), THOTH_E_INVAL);
	thoth_probe_maps_free(maps);
	thoth_probe_object_free(o);
}

static void enough_compared(void **state)
{
	(void)state;
	if (!have_jit)
		skip_because("no probe JIT on this machine (probe_jit_available)");
	/* the generators above really ran both engines, many times */
	assert_true(cases_compared > 20000);
	printf("[ info ] %u programs (%u cases) compared between the interpreter and the JIT\n",
	       compared, cases_compared);
}

int main(void)
{
	have_jit = probe_jit_available();
	probe_insn_t nop[] = { MOV64_IMM(0, 0), EXIT() };
	thoth_probe_object_t *o = raw_object(nop, 2);
	if (thoth_probe_maps_new(o, &engine_maps[0]) || thoth_probe_maps_new(o, &engine_maps[1]))
		return 1;
	thoth_probe_object_free(o);
	if (!have_jit)
		printf("[ info ] no JIT on this architecture: interpreter only, AUTO must fall back\n");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(engine_selection, reset_batch),
		cmocka_unit_test_setup(alu_register_sources, reset_batch),
		cmocka_unit_test_setup(alu_immediates_and_neg, reset_batch),
		cmocka_unit_test_setup(byte_swaps, reset_batch),
		cmocka_unit_test_setup(loads_and_stores, reset_batch),
		cmocka_unit_test_setup(map_values, reset_batch),
		cmocka_unit_test_setup(atomics, reset_batch),
		cmocka_unit_test_setup(conditional_jumps, reset_batch),
		cmocka_unit_test_setup(helper_calls, reset_batch),
		cmocka_unit_test_setup(loop_budget, reset_batch),
		cmocka_unit_test_setup(corpus_programs_both_engines, reset_batch),
		cmocka_unit_test_setup(enough_compared, reset_batch),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	thoth_probe_maps_free(engine_maps[0]);
	thoth_probe_maps_free(engine_maps[1]);
	return r;
}
