/* probe_test_util.h - raw bytecode for tests/probe (and fuzz/probe). */
#ifndef PROBE_TEST_UTIL_H
#define PROBE_TEST_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

#define I(c, d, s, o, i) ((probe_insn_t){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV64_IMM(d, i) I(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define MOV64_REG(d, s) I(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define ALU64_IMM(op, d, i) I(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU64_REG(op, d, s) I(BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
#define ALU32_REG(op, d, s) I(BPF_ALU | (op) | BPF_X, d, s, 0, 0)
#define LDX(sz, d, s, o) I(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define STX(sz, d, s, o) I(BPF_STX | BPF_MEM | (sz), d, s, o, 0)
#define ST_IMM(sz, d, o, i) I(BPF_ST | BPF_MEM | (sz), d, 0, o, i)
#define JMP_IMM(op, d, i, o) I(BPF_JMP | (op) | BPF_K, d, 0, o, i)
#define JA(o) I(BPF_JMP | BPF_JA, 0, 0, o, 0)
#define CALL(h) I(BPF_JMP | BPF_CALL, 0, 0, 0, h)
#define EXIT() I(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LD_MAP(d, m) I(BPF_LD | BPF_IMM | BPF_DW, d, PROBE_PSEUDO_MAP, 0, m), I(0, 0, 0, 0, 0)

/* An object of one program (and one 16-byte-value ARRAY map). */
static inline thoth_probe_object_t *raw_object(const probe_insn_t *insns, size_t n)
{
	thoth_probe_object_t *o = calloc(1, sizeof *o);
	if (!o)
		abort();
	o->n_progs = 1;
	probe_prog_def_t *p = &o->progs[0];
	strcpy(p->section, "thoth/raw");
	strcpy(p->name, "raw");
	strcpy(p->point, "raw");
	p->kind = PROBE_KIND_THOTH;
	p->insns = malloc(sizeof *insns * (n ? n : 1));
	memcpy(p->insns, insns, sizeof *insns * n);
	p->n_insns = (uint32_t)n;
	o->n_maps = 1;
	strcpy(o->maps[0].name, "vals");
	o->maps[0].type = BPF_MAP_TYPE_ARRAY;
	o->maps[0].key_size = 4;
	o->maps[0].value_size = 16;
	o->maps[0].max_entries = 4;
	return o;
}

#endif
