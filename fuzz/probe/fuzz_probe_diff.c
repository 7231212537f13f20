/*
 * fuzz_probe_diff.c - the JIT against the interpreter (docs/PROBES.md "JIT").
 *
 * Each input becomes a program; when the verifier accepts it, it runs on
 * both engines, each against its own fresh maps, and the results must be
 * identical: the run's status, r0, and every map afterwards (array and
 * hash regions byte for byte, ring buffer records).  A difference aborts
 * with both results printed.
 *
 * Input, first byte:
 *   even - raw: 64 bytes of context, then instructions (as
 *          fuzz_probe_verifier); most random bytecode is rejected, which
 *          is fine: what passes must behave the same on both engines.
 *   odd  - generated: the bytes drive a generator of programs the verifier
 *          accepts by construction: scalars in r0, r2-r5, r7-r9, the
 *          context in r6, an initialised 96-byte stack, then units of
 *          ALU ops (32/64-bit, immediate/register, every op), byte swaps,
 *          stack and context loads and stores, atomics, forward
 *          conditional jumps over later units, bounded loops, array and
 *          hash lookups with NULL checks and accesses to the value, hash
 *          updates and deletes, ring buffer output and helper calls; the
 *          scalars are folded into r0 at the end.
 * Helpers whose results differ between two runs (bpf_ktime_get_ns,
 * bpf_get_smp_processor_id) are not generated; a raw program that calls
 * them runs on both engines without the comparison.
 *
 * Maps: #0 ARRAY 4 x 16 bytes, #1 HASH u64 -> u64 of 8, #2 RINGBUF 4 KiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_UNITS 160
#define MAX_INSNS 3000

typedef struct gen {
	const uint8_t *p;
	size_t left;
	probe_insn_t *in;
	uint32_t n;
	bool overflow;
} gen_t;

static uint8_t byte(gen_t *g)
{
	if (!g->left)
		return 0;
	g->left--;
	return *g->p++;
}

static uint64_t bytes(gen_t *g, unsigned k)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < k; i++)
		v |= (uint64_t)byte(g) << (8 * i);
	return v;
}

static void put(gen_t *g, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	if (g->n >= MAX_INSNS) {
		g->overflow = true;
		return;
	}
	g->in[g->n++] = (probe_insn_t){ .code = code, .dst_reg = dst, .src_reg = src, .off = off,
	                                .imm = imm };
}

static void ld64(gen_t *g, uint8_t dst, uint64_t v, uint8_t pseudo)
{
	put(g, BPF_LD | BPF_IMM | BPF_DW, dst, pseudo, 0, (int32_t)(uint32_t)v);
	put(g, 0, 0, 0, 0, (int32_t)(uint32_t)(v >> 32));
}

static const uint8_t SCALARS[] = { 0, 2, 3, 4, 5, 7, 8, 9 };
static uint8_t scalar(gen_t *g) { return SCALARS[byte(g) % sizeof SCALARS]; }

static const uint8_t ALU_OPS[] = { BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH,
	                               BPF_RSH, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH, BPF_NEG };
static const uint8_t JMP_OPS[] = { BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT,
	                               BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE };
static const uint8_t SIZES[] = { BPF_B, BPF_H, BPF_W, BPF_DW };
static const int32_t ATOMIC_OPS[] = { BPF_ADD, BPF_OR, BPF_AND, BPF_XOR, BPF_ADD | BPF_FETCH,
	                                  BPF_OR | BPF_FETCH, BPF_AND | BPF_FETCH,
	                                  BPF_XOR | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG };

static int size_bytes(uint8_t sz)
{
	return sz == BPF_B ? 1 : sz == BPF_H ? 2 : sz == BPF_W ? 4 : 8;
}

/* An immediate: small values mostly, sometimes anything. */
static int32_t imm(gen_t *g)
{
	uint8_t k = byte(g);
	if (k & 0x80)
		return (int32_t)(uint32_t)bytes(g, 4);
	return (int32_t)(int8_t)(k << 1) >> 1;
}

/* After a call r1-r5 are unreadable: make r2-r5 scalars again. */
static void after_call(gen_t *g)
{
	for (uint8_t r = 2; r <= 5; r++)
		put(g, BPF_ALU64 | BPF_MOV | BPF_K, r, 0, 0, (int32_t)(r * 1000 + byte(g)));
}

static void alu(gen_t *g)
{
	uint8_t sel = byte(g);
	uint8_t op = ALU_OPS[sel % sizeof ALU_OPS];
	uint8_t cls = (sel & 0x80) ? BPF_ALU64 : BPF_ALU;
	uint8_t dst = scalar(g);
	if (op == BPF_NEG) {
		put(g, cls | BPF_NEG, dst, 0, 0, 0);
		return;
	}
	if (sel & 0x40) {
		put(g, cls | op | BPF_X, dst, scalar(g), 0, 0);
		return;
	}
	int32_t k = imm(g);
	if ((op == BPF_DIV || op == BPF_MOD) && k == 0)
		k = 3;
	if (op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH)
		k &= cls == BPF_ALU64 ? 63 : 31;
	put(g, cls | op | BPF_K, dst, 0, 0, k);
}

/* Map #M's value at r0 (non-NULL here): one load, store or atomic. */
static void value_access(gen_t *g, uint32_t value_size)
{
	uint8_t sel = byte(g);
	uint8_t sz = SIZES[sel & 3];
	int n = size_bytes(sz);
	int16_t off = (int16_t)((byte(g) % (value_size / (unsigned)n)) * (unsigned)n);
	switch ((sel >> 2) % 4) {
	case 0:
		put(g, BPF_LDX | BPF_MEM | sz, 7, 0, off, 0);
		break;
	case 1:   /* r1-r5 died in the call; r0 is the pointer */
		put(g, BPF_STX | BPF_MEM | sz, 0, (byte(g) & 1) ? 8 : 9, off, 0);
		break;
	case 2:
		put(g, BPF_ST | BPF_MEM | sz, 0, 0, off, imm(g));
		break;
	default: {
		uint8_t asz = (sel & 0x40) ? BPF_DW : BPF_W;
		int an = size_bytes(asz);
		int16_t aoff = (int16_t)((byte(g) % (value_size / (unsigned)an)) * (unsigned)an);
		int32_t op = ATOMIC_OPS[byte(g) % 8];   /* not (cmp)xchg: r0 is the pointer */
		put(g, BPF_STX | BPF_ATOMIC | asz, 0, 9, aoff, op);
		break;
	}
	}
}

static void lookup(gen_t *g, uint32_t map, uint32_t value_size, int16_t key_off)
{
	ld64(g, 1, map, PROBE_PSEUDO_MAP);
	put(g, BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
	put(g, BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, key_off);
	put(g, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem);
	uint32_t jeq = g->n;
	put(g, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 0, 0);
	unsigned k = 1 + byte(g) % 3;
	for (unsigned i = 0; i < k; i++)
		value_access(g, value_size);
	if (!g->overflow)
		g->in[jeq].off = (int16_t)(g->n - jeq - 1);
	put(g, BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, imm(g));   /* r0 a scalar again */
	after_call(g);
}

/* One unit of the program. */
static void unit(gen_t *g, uint32_t *jumps, uint32_t *jump_unit, uint32_t *n_jumps,
                 uint32_t u)
{
	uint8_t kind = byte(g) % 16;
	switch (kind) {
	case 0: case 1: case 2: case 3:
		alu(g);
		break;
	case 4: {
		static const int32_t w[] = { 16, 32, 64 };
		uint8_t s = byte(g);
		put(g, BPF_ALU | BPF_END | ((s & 1) ? BPF_TO_BE : BPF_TO_LE), scalar(g), 0, 0,
		    w[(s >> 1) % 3]);
		break;
	}
	case 5: {   /* stack store: fp-96 .. fp-1, aligned */
		uint8_t s = byte(g);
		uint8_t sz = SIZES[s & 3];
		int n = size_bytes(sz);
		int16_t off = (int16_t)(-(int)((1 + byte(g) % (96 / n)) * n));
		if (s & 4)
			put(g, BPF_ST | BPF_MEM | sz, 10, 0, off, imm(g));
		else
			put(g, BPF_STX | BPF_MEM | sz, 10, scalar(g), off, 0);
		break;
	}
	case 6: case 7: {   /* stack or context load */
		uint8_t s = byte(g);
		uint8_t sz = SIZES[s & 3];
		int n = size_bytes(sz);
		if (kind == 6)
			put(g, BPF_LDX | BPF_MEM | sz, scalar(g), 10,
			    (int16_t)(-(int)((1 + byte(g) % (96 / n)) * n)), 0);
		else
			put(g, BPF_LDX | BPF_MEM | sz, scalar(g), 6,
			    (int16_t)((byte(g) % (64 / n)) * n), 0);
		break;
	}
	case 8: {   /* atomic on the stack */
		uint8_t s = byte(g);
		uint8_t sz = (s & 1) ? BPF_DW : BPF_W;
		int n = size_bytes(sz);
		put(g, BPF_STX | BPF_ATOMIC | sz, 10, scalar(g),
		    (int16_t)(-(int)((1 + byte(g) % (96 / n)) * n)),
		    ATOMIC_OPS[(s >> 1) % (sizeof ATOMIC_OPS / sizeof ATOMIC_OPS[0])]);
		break;
	}
	case 9: {   /* forward conditional jump over the next 1-4 units */
		uint8_t s = byte(g);
		uint8_t cls = (s & 0x80) ? BPF_JMP : BPF_JMP32;
		uint8_t op = JMP_OPS[s % sizeof JMP_OPS];
		jumps[*n_jumps] = g->n;
		jump_unit[*n_jumps] = u + 2 + (byte(g) % 4);
		(*n_jumps)++;
		if (s & 0x40)
			put(g, cls | op | BPF_X, scalar(g), scalar(g), 0, 0);
		else
			put(g, cls | op | BPF_K, scalar(g), 0, 0, imm(g));
		break;
	}
	case 10: {  /* array lookup: key 0-4 (4 is out of range: NULL) */
		put(g, BPF_ST | BPF_MEM | BPF_W, 10, 0, -100, byte(g) % 5);
		lookup(g, 0, 16, -100);
		break;
	}
	case 11: {  /* hash lookup of a key in 0-11 */
		put(g, BPF_ST | BPF_MEM | BPF_DW, 10, 0, -112, byte(g) % 12);
		lookup(g, 1, 8, -112);
		break;
	}
	case 12: {  /* hash update or delete */
		uint8_t s = byte(g);
		put(g, BPF_ST | BPF_MEM | BPF_DW, 10, 0, -112, s % 12);
		put(g, BPF_STX | BPF_MEM | BPF_DW, 10, scalar(g), -120, 0);
		ld64(g, 1, 1, PROBE_PSEUDO_MAP);
		put(g, BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
		put(g, BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -112);
		if (s & 0x80) {
			put(g, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_delete_elem);
		} else {
			put(g, BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0);
			put(g, BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -120);
			put(g, BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, (s >> 4) % 3);
			put(g, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_update_elem);
		}
		after_call(g);
		break;
	}
	case 13: {  /* ring buffer output of 8-64 stack bytes */
		uint8_t len = (uint8_t)(8 + byte(g) % 57);
		ld64(g, 1, 2, PROBE_PSEUDO_MAP);
		put(g, BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
		put(g, BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -96);
		put(g, BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, len);
		put(g, BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0);
		put(g, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_output);
		after_call(g);
		break;
	}
	case 14: {  /* a bounded loop: r5 counts 0..N-1, the body is one ALU op */
		uint8_t iters = (uint8_t)(1 + byte(g) % 12);
		put(g, BPF_ALU64 | BPF_MOV | BPF_K, 5, 0, 0, 0);
		uint32_t head = g->n;
		alu(g);
		if (!g->overflow && g->in[g->n - 1].dst_reg == 5)
			g->in[g->n - 1].dst_reg = 7;     /* the body leaves the counter alone */
		put(g, BPF_ALU64 | BPF_ADD | BPF_K, 5, 0, 0, 1);
		put(g, BPF_JMP | BPF_JLT | BPF_K, 5, 0, (int16_t)(head - (g->n + 1)), iters);
		break;
	}
	default:    /* bpf_get_current_pid_tgid: the same thread runs both */
		put(g, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_current_pid_tgid);
		after_call(g);
		break;
	}
}

static uint32_t generate(gen_t *g)
{
	put(g, BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0);
	for (size_t i = 0; i < sizeof SCALARS; i++)
		ld64(g, SCALARS[i], bytes(g, (byte(g) & 7) + 1), 0);
	for (int16_t off = -120; off < 0; off = (int16_t)(off + 8))
		put(g, BPF_ST | BPF_MEM | BPF_DW, 10, 0, off, off * 7919);
	uint32_t unit_start[MAX_UNITS + 1];
	uint32_t jumps[MAX_UNITS], jump_unit[MAX_UNITS], n_jumps = 0, u = 0;
	while (g->left && u < MAX_UNITS && !g->overflow) {
		unit_start[u] = g->n;
		unit(g, jumps, jump_unit, &n_jumps, u);
		u++;
	}
	unit_start[u] = g->n;    /* the fold: every jump past the end lands here */
	for (size_t i = 0; i < sizeof SCALARS; i++)
		if (SCALARS[i]) {
			put(g, BPF_ALU64 | BPF_MUL | BPF_K, 0, 0, 0, 31);
			put(g, BPF_ALU64 | BPF_ADD | BPF_X, 0, SCALARS[i], 0, 0);
		}
	put(g, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	if (g->overflow)
		return 0;
	for (uint32_t k = 0; k < n_jumps; k++) {
		uint32_t t = jump_unit[k] > u ? u : jump_unit[k];
		g->in[jumps[k]].off = (int16_t)(unit_start[t] - jumps[k] - 1);
	}
	return g->n;
}

/* ---- running and comparing ------------------------------------------------------ */

typedef struct outcome {
	int load, run;
	uint64_t ret;
	uint8_t *dump;
	size_t len, cap;
} outcome_t;

static void append(outcome_t *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = (o->len + n) * 2;
		uint8_t *d = realloc(o->dump, cap);
		if (!d)
			abort();
		o->dump = d;
		o->cap = cap;
	}
	memcpy(o->dump + o->len, p, n);
	o->len += n;
}

static int ring_record(const void *key, const void *value, void *ctx)
{
	uint32_t len;
	memcpy(&len, key, 4);
	append(ctx, &len, 4);
	append(ctx, value, len);
	return 0;
}

static void run(const thoth_probe_object_t *o, unsigned engine, const struct thoth_probe_ctx *ctx,
                outcome_t *out)
{
	memset(out, 0, sizeof *out);
	thoth_probe_maps_t *maps = NULL;
	thoth_probe_prog_t *prog = NULL;
	char msg[2048];
	out->load = thoth_probe_maps_new(o, &maps);
	if (!out->load)
		out->load = thoth_probe_prog_load(o, 0, maps, engine, &prog, msg, sizeof msg);
	if (out->load && getenv("FUZZ_PROBE_DIFF_VERBOSE"))
		fprintf(stderr, "rejected: %s\n", msg);
	if (!out->load) {
		out->run = thoth_probe_prog_run(prog, ctx, &out->ret);
		for (uint32_t i = 0; i < maps->n_maps; i++) {
			probe_map_t *m = &maps->maps[i];
			if (m->type == BPF_MAP_TYPE_RINGBUF)
				thoth_probe_maps_foreach(maps, i, ring_record, out);
			else
				append(out, m->base, 64 + m->bytes);
		}
	}
	thoth_probe_prog_free(prog);
	thoth_probe_maps_free(maps);
}

static thoth_probe_object_t *object(probe_insn_t *insns, uint32_t n)
{
	thoth_probe_object_t *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->n_progs = 1;
	probe_prog_def_t *p = &o->progs[0];
	strcpy(p->section, "thoth/fuzz");
	strcpy(p->name, "fuzz");
	strcpy(p->point, "fuzz");
	p->kind = PROBE_KIND_THOTH;
	p->n_insns = n;
	p->insns = insns;
	o->n_maps = 3;
	strcpy(o->maps[0].name, "arr");
	o->maps[0].type = BPF_MAP_TYPE_ARRAY;
	o->maps[0].key_size = 4;
	o->maps[0].value_size = 16;
	o->maps[0].max_entries = 4;
	strcpy(o->maps[1].name, "hash");
	o->maps[1].type = BPF_MAP_TYPE_HASH;
	o->maps[1].key_size = 8;
	o->maps[1].value_size = 8;
	o->maps[1].max_entries = 8;
	strcpy(o->maps[2].name, "ring");
	o->maps[2].type = BPF_MAP_TYPE_RINGBUF;
	o->maps[2].max_entries = 4096;
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || !probe_jit_available())
		return 0;
	struct thoth_probe_ctx ctx = { .ts_ns = 123456789, .trace_id = 0xabcdef, .service_id = 5,
	                               .size = 4096, .cpu = 1, .tid = 100, .arg0 = 42,
	                               .arg1 = (uint64_t)-3, .interface_id = 9, .request_id = 11,
	                               .method = 2, .flags = 0x41, .category = 1, .pid = 1000 };
	probe_insn_t *insns = calloc(MAX_INSNS + 8, sizeof *insns);
	if (!insns)
		return 0;
	uint32_t n;
	bool compare = true;
	if (data[0] & 1) {
		gen_t g = { .p = data + 1, .left = size - 1, .in = insns };
		n = generate(&g);
	} else {
		if (size < 1 + 64 + 8) {
			free(insns);
			return 0;
		}
		memcpy(&ctx, data + 1, 64);
		n = (uint32_t)((size - 65) / 8);
		if (n > 512)
			n = 512;
		memcpy(insns, data + 65, (size_t)n * 8);
		for (uint32_t i = 0; i < n; i++) {
			if (insns[i].code == (BPF_LD | BPF_IMM | BPF_DW) &&
			    insns[i].src_reg == PROBE_PSEUDO_MAP)
				insns[i].imm = (int32_t)((uint32_t)insns[i].imm % 3);
			if (insns[i].code == (BPF_JMP | BPF_CALL) &&
			    (insns[i].imm == BPF_FUNC_ktime_get_ns ||
			     insns[i].imm == BPF_FUNC_get_smp_processor_id))
				compare = false;
		}
	}
	if (n == 0) {
		free(insns);
		return 0;
	}
	thoth_probe_object_t *o = object(insns, n);
	if (!o) {
		free(insns);
		return 0;
	}
	outcome_t a, b;
	run(o, THOTH_PROBE_ENGINE_INTERP, &ctx, &a);
	if (a.load == 0) {
		run(o, THOTH_PROBE_ENGINE_JIT, &ctx, &b);
		if (b.load != 0) {
			fprintf(stderr, "fuzz_probe_diff: the JIT refused a verified program (%d)\n",
			        b.load);
			abort();
		}
		if (compare && (a.run != b.run || a.ret != b.ret || a.len != b.len ||
		                memcmp(a.dump, b.dump, a.len))) {
			fprintf(stderr, "fuzz_probe_diff: interpreter r0=%#llx run=%d, JIT r0=%#llx "
			        "run=%d, maps %s\n", (unsigned long long)a.ret, a.run,
			        (unsigned long long)b.ret, b.run,
			        a.len == b.len && !memcmp(a.dump, b.dump, a.len) ? "equal" : "differ");
			abort();
		}
		free(b.dump);
	}
	free(a.dump);
	thoth_probe_object_free(o);   /* frees insns (the program's) */
	return 0;
}
