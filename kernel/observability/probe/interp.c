/*
 * interp.c - the reference interpreter, helpers, and loading a verified
 * program against its maps (then JIT-compiled by jit.c where there is one:
 * docs/PROBES.md "JIT").
 *
 * Only verified programs run here, so memory accesses are not re-checked;
 * what the verifier cannot bound, the run does: a per-run instruction
 * budget (PROBE_RUN_BUDGET).  Division follows Linux: x / 0 = 0,
 * x % 0 = x (docs/PROBES.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../ipc/log_internal.h"
#include "probe_internal.h"

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* bpf_trace_printk: %d %i %u %x %ld %lu %lx %lld %llu %llx %%, up to three
 * arguments, as Linux; the line goes to the thoth log (component "probe"). */
static int64_t trace_printk(const char *fmt, uint32_t size, uint64_t a1, uint64_t a2,
                            uint64_t a3)
{
	char out[256];
	size_t o = 0;
	uint64_t args[3] = { a1, a2, a3 };
	int used = 0;
	for (uint32_t i = 0; i < size && fmt[i] && o + 24 < sizeof out; i++) {
		if (fmt[i] != '%') {
			out[o++] = fmt[i];
			continue;
		}
		if (++i >= size)
			break;
		if (fmt[i] == '%') {
			out[o++] = '%';
			continue;
		}
		int longs = 0;
		while (i < size && fmt[i] == 'l' && longs < 2) {
			longs++;
			i++;
		}
		if (i >= size || used == 3)
			return -EINVAL;
		uint64_t v = args[used++];
		if (longs == 0)
			v = fmt[i] == 'd' || fmt[i] == 'i' ? (uint64_t)(int64_t)(int32_t)v : (uint32_t)v;
		int k;
		switch (fmt[i]) {
		case 'd': case 'i': k = snprintf(out + o, sizeof out - o, "%" PRId64, (int64_t)v); break;
		case 'u': k = snprintf(out + o, sizeof out - o, "%" PRIu64, v); break;
		case 'x': k = snprintf(out + o, sizeof out - o, "%" PRIx64, v); break;
		default: return -EINVAL;
		}
		if (k > 0)
			o += (size_t)k;
	}
	while (o && out[o - 1] == '\n')
		o--;
	out[o] = '\0';
	thoth__log(THOTH_LOG_INFO, "probe", "%s", out);
	return (int64_t)o;
}

/* The helpers, one C function each with BPF r1-r5 as arguments: the
 * interpreter calls them through probe_helper_call, JIT'd code directly. */
static uint64_t h_map_lookup(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r3, (void)r4, (void)r5;
	return (uint64_t)(uintptr_t)probe_map_lookup((probe_map_t *)(uintptr_t)r1,
	                                             (const void *)(uintptr_t)r2);
}

static uint64_t h_map_update(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r5;
	return (uint64_t)probe_map_update((probe_map_t *)(uintptr_t)r1, (const void *)(uintptr_t)r2,
	                                  (const void *)(uintptr_t)r3, r4);
}

static uint64_t h_map_delete(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r3, (void)r4, (void)r5;
	return (uint64_t)probe_map_delete((probe_map_t *)(uintptr_t)r1, (const void *)(uintptr_t)r2);
}

static uint64_t h_ktime(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r1, (void)r2, (void)r3, (void)r4, (void)r5;
	return monotonic_ns();
}

static uint64_t h_printk(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	return (uint64_t)trace_printk((const char *)(uintptr_t)r1, (uint32_t)r2, r3, r4, r5);
}

static uint64_t h_cpu(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r1, (void)r2, (void)r3, (void)r4, (void)r5;
	int c = sched_getcpu();
	return c < 0 ? 0 : (uint64_t)c;
}

static uint64_t h_pid_tgid(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r1, (void)r2, (void)r3, (void)r4, (void)r5;
	return (uint64_t)getpid() << 32 | (uint32_t)gettid();
}

static uint64_t h_ringbuf_output(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5)
{
	(void)r5;
	return (uint64_t)probe_ringbuf_output((probe_map_t *)(uintptr_t)r1,
	                                      (const void *)(uintptr_t)r2, r3, r4);
}

probe_helper_fn_t probe_helper_fn(int32_t id)
{
	switch (id) {
	case BPF_FUNC_map_lookup_elem: return h_map_lookup;
	case BPF_FUNC_map_update_elem: return h_map_update;
	case BPF_FUNC_map_delete_elem: return h_map_delete;
	case BPF_FUNC_ktime_get_ns: return h_ktime;
	case BPF_FUNC_trace_printk: return h_printk;
	case BPF_FUNC_get_smp_processor_id: return h_cpu;
	case BPF_FUNC_get_current_pid_tgid: return h_pid_tgid;
	case BPF_FUNC_ringbuf_output: return h_ringbuf_output;
	default: return NULL;
	}
}

uint64_t probe_helper_call(int32_t id, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                           uint64_t r5)
{
	probe_helper_fn_t fn = probe_helper_fn(id);
	return fn ? fn(r1, r2, r3, r4, r5) : (uint64_t)-EINVAL;   /* the verifier refused it */
}

#define LD(T, a) ({ T v_; memcpy(&v_, (const void *)(uintptr_t)(a), sizeof v_); v_; })
#define ST(T, a, x) do { T v_ = (T)(x); memcpy((void *)(uintptr_t)(a), &v_, sizeof v_); } while (0)

static uint64_t atomic_op(const probe_insn_t *in, uint64_t addr, uint64_t *src, uint64_t *r0)
{
	bool dw = BPF_SIZE(in->code) == BPF_DW;
	int op = in->imm;
	uint64_t old;
	if (dw) {
		uint64_t *p = (uint64_t *)(uintptr_t)addr;
		switch (op & ~BPF_FETCH) {
		case BPF_ADD: old = __atomic_fetch_add(p, *src, __ATOMIC_SEQ_CST); break;
		case BPF_OR: old = __atomic_fetch_or(p, *src, __ATOMIC_SEQ_CST); break;
		case BPF_AND: old = __atomic_fetch_and(p, *src, __ATOMIC_SEQ_CST); break;
		case BPF_XOR: old = __atomic_fetch_xor(p, *src, __ATOMIC_SEQ_CST); break;
		case BPF_XCHG & ~BPF_FETCH: old = __atomic_exchange_n(p, *src, __ATOMIC_SEQ_CST); break;
		default: {   /* CMPXCHG */
			uint64_t expected = *r0;
			__atomic_compare_exchange_n(p, &expected, *src, false, __ATOMIC_SEQ_CST,
			                            __ATOMIC_SEQ_CST);
			*r0 = expected;
			return 0;
		}
		}
	} else {
		uint32_t *p = (uint32_t *)(uintptr_t)addr, s = (uint32_t)*src;
		switch (op & ~BPF_FETCH) {
		case BPF_ADD: old = __atomic_fetch_add(p, s, __ATOMIC_SEQ_CST); break;
		case BPF_OR: old = __atomic_fetch_or(p, s, __ATOMIC_SEQ_CST); break;
		case BPF_AND: old = __atomic_fetch_and(p, s, __ATOMIC_SEQ_CST); break;
		case BPF_XOR: old = __atomic_fetch_xor(p, s, __ATOMIC_SEQ_CST); break;
		case BPF_XCHG & ~BPF_FETCH: old = __atomic_exchange_n(p, s, __ATOMIC_SEQ_CST); break;
		default: {
			uint32_t expected = (uint32_t)*r0;
			__atomic_compare_exchange_n(p, &expected, s, false, __ATOMIC_SEQ_CST,
			                            __ATOMIC_SEQ_CST);
			*r0 = expected;
			return 0;
		}
		}
	}
	if (op & BPF_FETCH)
		*src = old;
	return 0;
}

static uint64_t alu(uint8_t op, uint64_t a, uint64_t b, bool is64, int32_t imm, bool src_x)
{
	uint64_t m = is64 ? 63 : 31;
	if (op == BPF_END) {
		/* On the full register, as Linux (it is an ALU-class opcode, but
		 * "to_be 64" swaps all 64 bits and "to_le 64" is a no-op). */
		if (!src_x)   /* to little endian: the host's order, truncate */
			return imm == 16 ? (uint16_t)a : imm == 32 ? (uint32_t)a : a;
		return imm == 16 ? __builtin_bswap16((uint16_t)a)
		       : imm == 32 ? __builtin_bswap32((uint32_t)a) : __builtin_bswap64(a);
	}
	if (!is64) {
		a = (uint32_t)a;
		b = (uint32_t)b;
	}
	uint64_t r;
	switch (op) {
	case BPF_ADD: r = a + b; break;
	case BPF_SUB: r = a - b; break;
	case BPF_MUL: r = a * b; break;
	case BPF_DIV: r = b ? a / b : 0; break;
	case BPF_MOD: r = b ? a % b : a; break;
	case BPF_OR: r = a | b; break;
	case BPF_AND: r = a & b; break;
	case BPF_XOR: r = a ^ b; break;
	case BPF_LSH: r = a << (b & m); break;
	case BPF_RSH: r = a >> (b & m); break;
	case BPF_ARSH:
		r = is64 ? (uint64_t)((int64_t)a >> (b & m)) : (uint32_t)((int32_t)a >> (b & m));
		break;
	case BPF_NEG: r = -a; break;
	case BPF_MOV: r = b; break;
	default: r = 0;
	}
	return is64 ? r : (uint32_t)r;
}

int probe_interp_run(const thoth_probe_prog_t *prog, const void *ctx, uint64_t *ret)
{
	uint64_t stack[PROBE_STACK / 8];
	uint64_t reg[11] = { 0 };
	reg[1] = (uint64_t)(uintptr_t)ctx;
	reg[10] = (uint64_t)(uintptr_t)(stack + PROBE_STACK / 8);
	const probe_insn_t *insns = prog->insns;
	uint32_t pc = 0;
	for (uint32_t budget = PROBE_RUN_BUDGET; budget; budget--) {
		const probe_insn_t *in = &insns[pc++];
		uint8_t code = in->code, cls = BPF_CLASS(code);
		uint64_t *d = &reg[in->dst_reg];
		switch (cls) {
		case BPF_ALU: case BPF_ALU64: {
			uint64_t b = BPF_SRC(code) == BPF_X ? reg[in->src_reg]
			             : cls == BPF_ALU64 ? (uint64_t)(int64_t)in->imm
			                                : (uint64_t)(uint32_t)in->imm;
			*d = alu(BPF_OP(code), *d, b, cls == BPF_ALU64, in->imm, BPF_SRC(code) == BPF_X);
			break;
		}
		case BPF_LD:
			*d = (uint64_t)(uint32_t)in->imm | (uint64_t)(uint32_t)in[1].imm << 32;
			pc++;
			break;
		case BPF_LDX: {
			uint64_t a = reg[in->src_reg] + (uint64_t)(int64_t)in->off;
			switch (BPF_SIZE(code)) {
			case BPF_B: *d = LD(uint8_t, a); break;
			case BPF_H: *d = LD(uint16_t, a); break;
			case BPF_W: *d = LD(uint32_t, a); break;
			default: *d = LD(uint64_t, a); break;
			}
			break;
		}
		case BPF_ST: case BPF_STX: {
			uint64_t a = *d + (uint64_t)(int64_t)in->off;
			if (BPF_MODE(code) == BPF_ATOMIC) {
				atomic_op(in, a, &reg[in->src_reg], &reg[0]);
				break;
			}
			uint64_t v = cls == BPF_STX ? reg[in->src_reg] : (uint64_t)(int64_t)in->imm;
			switch (BPF_SIZE(code)) {
			case BPF_B: ST(uint8_t, a, v); break;
			case BPF_H: ST(uint16_t, a, v); break;
			case BPF_W: ST(uint32_t, a, v); break;
			default: ST(uint64_t, a, v); break;
			}
			break;
		}
		case BPF_JMP: case BPF_JMP32: {
			uint8_t op = BPF_OP(code);
			if (op == BPF_EXIT) {
				*ret = reg[0];
				return 0;
			}
			if (op == BPF_CALL) {
				reg[0] = probe_helper_call(in->imm, reg[1], reg[2], reg[3], reg[4], reg[5]);
				break;
			}
			if (op == BPF_JA) {
				pc += (uint32_t)(int32_t)in->off;
				break;
			}
			uint64_t a = *d, b = BPF_SRC(code) == BPF_X ? reg[in->src_reg]
			                                            : (uint64_t)(int64_t)in->imm;
			if (cls == BPF_JMP32) {
				a = (uint32_t)a;
				b = (uint32_t)b;
			}
			int64_t sa = cls == BPF_JMP32 ? (int32_t)a : (int64_t)a;
			int64_t sb = cls == BPF_JMP32 ? (int32_t)b : (int64_t)b;
			bool t;
			switch (op) {
			case BPF_JEQ: t = a == b; break;
			case BPF_JNE: t = a != b; break;
			case BPF_JGT: t = a > b; break;
			case BPF_JGE: t = a >= b; break;
			case BPF_JLT: t = a < b; break;
			case BPF_JLE: t = a <= b; break;
			case BPF_JSET: t = (a & b) != 0; break;
			case BPF_JSGT: t = sa > sb; break;
			case BPF_JSGE: t = sa >= sb; break;
			case BPF_JSLT: t = sa < sb; break;
			default: t = sa <= sb; break;
			}
			if (t)
				pc += (uint32_t)(int32_t)in->off;
			break;
		}
		}
	}
	return THOTH_E_LIMIT;
}

static bool jit_wanted(void);

/* ---- loading -------------------------------------------------------------------- */

int thoth_probe_prog_load(const thoth_probe_object_t *obj, size_t i, thoth_probe_maps_t *maps,
                          unsigned engine, thoth_probe_prog_t **out, char *msg, size_t msg_len)
{
	if (!obj || !out || i >= obj->n_progs || (obj->n_maps && !maps) ||
	    (maps && maps->n_maps != obj->n_maps) || engine > THOTH_PROBE_ENGINE_AUTO)
		return THOTH_E_INVAL;
	*out = NULL;
	const probe_prog_def_t *p = &obj->progs[i];
	if (p->kind != PROBE_KIND_THOTH) {
		if (msg && msg_len)
			snprintf(msg, msg_len, "%s: a kernel section, loaded into Linux by "
			         "thothctl probe attach (libbpf)", p->section);
		return THOTH_E_INVAL;
	}
	uint64_t ctx_read = 0;
	int r = probe_verify_prog(obj, p, msg, msg_len, &ctx_read);
	if (r < 0)
		return r;
	thoth_probe_prog_t *prog = calloc(1, sizeof *prog);
	if (!prog)
		return THOTH_E_NOMEM;
	prog->insns = malloc(sizeof *prog->insns * p->n_insns);
	if (!prog->insns) {
		free(prog);
		return THOTH_E_NOMEM;
	}
	memcpy(prog->insns, p->insns, sizeof *prog->insns * p->n_insns);
	prog->n_insns = p->n_insns;
	prog->maps = maps;
	prog->engine = THOTH_PROBE_ENGINE_INTERP;
	prog->ctx_read = ctx_read;
	snprintf(prog->point, sizeof prog->point, "%s", p->point);
	snprintf(prog->name, sizeof prog->name, "%s", p->name);
	/* Map references become the address of our private map struct. */
	for (uint32_t k = 0; k + 1 < prog->n_insns; k++) {
		probe_insn_t *in = &prog->insns[k];
		if (in->code == (BPF_LD | BPF_IMM | BPF_DW)) {
			if (in->src_reg == PROBE_PSEUDO_MAP) {
				uint64_t a = (uint64_t)(uintptr_t)&maps->maps[in->imm];
				in->imm = (int32_t)(uint32_t)a;
				in[1].imm = (int32_t)(uint32_t)(a >> 32);
			}
			k++;
		}
	}
	if (engine == THOTH_PROBE_ENGINE_AUTO && !jit_wanted())
		engine = THOTH_PROBE_ENGINE_INTERP;
	if (engine != THOTH_PROBE_ENGINE_INTERP) {
		char jmsg[256] = "";
		r = probe_jit_compile(prog, jmsg, sizeof jmsg);
		if (r == 0) {
			prog->engine = THOTH_PROBE_ENGINE_JIT;
		} else if (engine == THOTH_PROBE_ENGINE_JIT) {
			/* asked for the JIT by name: say why not */
			if (msg && msg_len)
				snprintf(msg, msg_len, "%s", jmsg);
			thoth_probe_prog_free(prog);
			return r;
		}
		/* AUTO: the interpreter runs it */
	}
	*out = prog;
	return 0;
}

/* AUTO means the JIT where there is one, unless THOTH_PROBE_JIT=0. */
static bool jit_wanted(void)
{
	if (!probe_jit_available())
		return false;
	const char *e = getenv("THOTH_PROBE_JIT");
	return !(e && strcmp(e, "0") == 0);
}

void thoth_probe_prog_free(thoth_probe_prog_t *prog)
{
	if (!prog)
		return;
	probe_jit_free(prog);
	free(prog->insns);
	free(prog);
}

const char *thoth_probe_prog_point(const thoth_probe_prog_t *prog)
{
	return prog ? prog->point : "";
}

int thoth_probe_prog_run(thoth_probe_prog_t *prog, const struct thoth_probe_ctx *ctx,
                         uint64_t *ret)
{
	if (!prog || !ctx || !ret)
		return THOTH_E_INVAL;
	if (prog->jit_fn) {
		uint32_t status = 0;
		*ret = prog->jit_fn(ctx, &status);
		return status ? THOTH_E_LIMIT : 0;
	}
	return probe_interp_run(prog, ctx, ret);
}

unsigned thoth_probe_prog_engine(const thoth_probe_prog_t *prog)
{
	return prog ? prog->engine : THOTH_PROBE_ENGINE_INTERP;
}
