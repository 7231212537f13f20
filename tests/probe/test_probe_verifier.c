/*
 * test_probe_verifier.c - the loader and the verifier as a specification.
 *
 * 1. The corpus: every tests/probe/corpus/NAME.c starts with
 *    "// expect: accept" or "// expect: reject: REASON"; the object clang
 *    built from it must be accepted, or rejected with REASON in the
 *    message, and every rejection message must name the instruction, the
 *    source line (the corpus is built with -g: BTF line info) and the
 *    register state.
 * 2. Raw bytecode for what C cannot express: jumps out of the program or
 *    into a ld_imm64, a missing exit, r10 writes, uninitialised registers,
 *    unknown opcodes, size limits, infinite loops, ...
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe_internal.h"
#include "probe_test_util.h"

/* ---- the corpus --------------------------------------------------------------- */

static int read_expectation(const char *src, char *reason, size_t len)
{
	FILE *f = fopen(src, "r");
	assert_non_null(f);
	char line[512] = "";
	assert_non_null(fgets(line, sizeof line, f));
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, "// expect: accept") == 0)
		return 0;
	const char *p = "// expect: reject: ";
	assert_true(strncmp(line, p, strlen(p)) == 0);
	snprintf(reason, len, "%s", line + strlen(p));
	return 1;
}

static void corpus_verdicts(void **state)
{
	(void)state;
	DIR *d = opendir(PROBE_CORPUS_SRC);
	assert_non_null(d);
	struct dirent *e;
	int accepted = 0, rejected = 0;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
			continue;
		char src[512], obj_path[512], reason[600], err[512];
		snprintf(src, sizeof src, "%s/%s", PROBE_CORPUS_SRC, e->d_name);
		snprintf(obj_path, sizeof obj_path, "%s/%.*s.o", PROBE_CORPUS_OBJ, (int)(n - 2),
		         e->d_name);
		int expect_reject = read_expectation(src, reason, sizeof reason);
		thoth_probe_object_t *obj;
		int r = thoth_probe_object_open_file(obj_path, &obj, err, sizeof err);
		if (r != 0)
			fail_msg("%s: cannot open: %s", obj_path, err);
		int any_rejected = 0;
		for (size_t i = 0; i < thoth_probe_object_prog_count(obj); i++) {
			char msg[4096];
			r = thoth_probe_verify(obj, i, msg, sizeof msg);
			if (r == 0)
				continue;
			assert_int_equal(r, THOTH_E_INVAL);
			any_rejected = 1;
			if (!expect_reject)
				fail_msg("%s: expected accept, rejected: %s", e->d_name, msg);
			if (!strstr(msg, reason))
				fail_msg("%s: expected '%s' in: %s", e->d_name, reason, msg);
			/* insn index, file:line, register state: in every rejection */
			char stem[300];
			snprintf(stem, sizeof stem, " at %s:", e->d_name);
			if (!strstr(msg, ": insn ") || !strstr(msg, stem) || !strstr(msg, ".c:"))
				fail_msg("%s: no instruction / source line in: %s", e->d_name, msg);
			if (!strstr(msg, "state: ") && !strstr(msg, "helper "))
				fail_msg("%s: no register state in: %s", e->d_name, msg);
		}
		if (expect_reject && !any_rejected)
			fail_msg("%s: expected reject (%s), accepted", e->d_name, reason);
		expect_reject ? rejected++ : accepted++;
		thoth_probe_object_free(obj);
	}
	closedir(d);
	assert_true(accepted >= 8);
	assert_true(rejected >= 12);
}

static void corpus_maps_and_license(void **state)
{
	(void)state;
	thoth_probe_object_t *obj;
	char err[256];
	assert_int_equal(thoth_probe_object_open_file(PROBE_CORPUS_OBJ "/a02_hash_sum.o", &obj, err,
	                                              sizeof err), 0);
	assert_int_equal(thoth_probe_object_map_count(obj), 1);
	assert_string_equal(obj->maps[0].name, "bytes");
	assert_int_equal(obj->maps[0].type, BPF_MAP_TYPE_HASH);
	assert_int_equal(obj->maps[0].key_size, 4);
	assert_int_equal(obj->maps[0].value_size, 8);
	assert_int_equal(obj->maps[0].max_entries, 1024);
	assert_string_equal(thoth_probe_object_license(obj), "GPL");
	const char *section, *name;
	size_t insns;
	assert_int_equal(thoth_probe_object_prog(obj, 0, &section, &name, &insns), 0);
	assert_string_equal(section, "thoth/msg_send");
	assert_string_equal(name, "sum_bytes");
	assert_true(obj->progs[0].n_lines > 0);
	thoth_probe_object_free(obj);

	assert_int_equal(thoth_probe_object_open_file(PROBE_CORPUS_OBJ "/a07_delete.o", &obj, err,
	                                              sizeof err), 0);
	assert_int_equal(thoth_probe_object_prog_count(obj), 2);   /* two programs, one object */
	thoth_probe_object_free(obj);
}

static void loader_rejects_non_bpf(void **state)
{
	(void)state;
	thoth_probe_object_t *obj = (void *)1;
	char err[256];
	assert_int_equal(thoth_probe_object_open("hello", 5, &obj, err, sizeof err),
	                 THOTH_E_BAD_MAGIC);
	assert_null(obj);
	assert_non_null(strstr(err, "not an ELF object"));
	assert_int_equal(thoth_probe_object_open_file("/nonexistent/x.o", &obj, err, sizeof err),
	                 THOTH_E_IO);
	assert_non_null(strstr(err, "No such file"));
	/* every truncation of a valid object is refused cleanly (no crash) */
	FILE *f = fopen(PROBE_CORPUS_OBJ "/a02_hash_sum.o", "rb");
	assert_non_null(f);
	static uint8_t buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	for (size_t cut = 0; cut < n; cut += 7) {
		int r = thoth_probe_object_open(buf, cut, &obj, err, sizeof err);
		if (r == 0)
			thoth_probe_object_free(obj);
		else
			assert_true(err[0] != '\0');
	}
}

/* ---- raw bytecode -------------------------------------------------------------- */

static void expect_raw(const probe_insn_t *insns, size_t n, const char *want, int insn)
{
	thoth_probe_object_t *o = raw_object(insns, n);
	char msg[4096];
	int r = thoth_probe_verify(o, 0, msg, sizeof msg);
	if (!want) {
		if (r != 0)
			fail_msg("expected accept, rejected: %s", msg);
	} else {
		if (r != THOTH_E_INVAL)
			fail_msg("expected reject '%s', accepted", want);
		if (!strstr(msg, want))
			fail_msg("expected '%s' in: %s", want, msg);
		char at[32];
		snprintf(at, sizeof at, ": insn %d", insn);
		if (insn >= 0 && !strstr(msg, at))
			fail_msg("expected '%s' in: %s", at, msg);
	}
	thoth_probe_object_free(o);
}
#define ACCEPT(...) do { probe_insn_t p_[] = { __VA_ARGS__ }; expect_raw(p_, sizeof p_ / sizeof p_[0], NULL, -1); } while (0)
#define REJECT(want, insn, ...) do { probe_insn_t p_[] = { __VA_ARGS__ }; expect_raw(p_, sizeof p_ / sizeof p_[0], want, insn); } while (0)

static void raw_control_flow(void **state)
{
	(void)state;
	ACCEPT(MOV64_IMM(0, 0), EXIT());
	REJECT("jump to insn 7, out of the program", 1, MOV64_IMM(0, 0), JA(5), EXIT());
	REJECT("jump to insn -1, out of the program", 0, JA(-2), EXIT());
	REJECT("the middle of a ld_imm64", 0, JMP_IMM(BPF_JEQ, 1, 0, 1), LD_MAP(2, 0),
	       MOV64_IMM(0, 0), EXIT());
	REJECT("falls off the end of the program", 0, MOV64_IMM(0, 0));
	REJECT("missing exit", 1, MOV64_IMM(0, 0), JMP_IMM(BPF_JEQ, 1, 0, -2));
	REJECT("unreachable instruction", 2, MOV64_IMM(0, 0), EXIT(), MOV64_IMM(0, 1), EXIT());
	probe_insn_t none[1] = { EXIT() };
	expect_raw(none, 0, "empty program", 0);
	/* an infinite loop: never bounded */
	REJECT("loop not bounded", -1, MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1),
	       JMP_IMM(BPF_JNE, 0, 0, -2), EXIT());
	/* a bounded loop: 100 iterations */
	ACCEPT(MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1), JMP_IMM(BPF_JLT, 0, 100, -2), EXIT());
	/* too large */
	size_t big = THOTH_PROBE_MAX_INSNS + 1;
	probe_insn_t *p = calloc(big, sizeof *p);
	for (size_t i = 0; i + 1 < big; i++)
		p[i] = MOV64_IMM(0, 0);
	p[big - 1] = EXIT();
	expect_raw(p, big, "exceeds the limit of 4096", 4096);
	free(p);
}

static void raw_registers(void **state)
{
	(void)state;
	REJECT("R0 is not initialised at exit", 0, EXIT());
	REJECT("R2 is not initialised (read as source)", 0, MOV64_REG(0, 2), EXIT());
	REJECT("R3 is not initialised (read as destination)", 0, ALU64_IMM(BPF_ADD, 3, 1),
	       MOV64_IMM(0, 0), EXIT());
	REJECT("the frame pointer r10 is read-only", 0, MOV64_IMM(10, 0), MOV64_IMM(0, 0), EXIT());
	REJECT("the frame pointer r10 is read-only", 0, LDX(BPF_DW, 10, 1, 0), MOV64_IMM(0, 0),
	       EXIT());
	REJECT("invalid register r11", 0, MOV64_IMM(11, 0), EXIT());
	REJECT("unknown or malformed ALU opcode 0xff", 0, I(0xff, 0, 0, 0, 0), EXIT());
	REJECT("division by zero (immediate 0)", 1, MOV64_IMM(0, 1),
	       ALU64_IMM(BPF_DIV, 0, 0), EXIT());
	REJECT("shift by 64 is out of range", 1, MOV64_IMM(0, 1), ALU64_IMM(BPF_LSH, 0, 64), EXIT());
	/* division by a register that may be zero: Linux semantics (x/0 = 0) */
	ACCEPT(LDX(BPF_DW, 2, 1, 32), MOV64_IMM(0, 7), ALU64_REG(BPF_DIV, 0, 2),
	       ALU64_REG(BPF_MOD, 0, 2), EXIT());
	REJECT("32-bit move of pointer", 0, I(BPF_ALU | BPF_MOV | BPF_X, 0, 1, 0, 0), EXIT());
	REJECT("pointer arithmetic with *=", 0, ALU64_IMM(BPF_MUL, 1, 2), MOV64_IMM(0, 0), EXIT());
	REJECT("BPF-to-BPF calls", 0, I(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, 1),
	       MOV64_IMM(0, 0), EXIT());
	REJECT("helper 4 (bpf_probe_read) is not available", 0, CALL(4), EXIT());
	REJECT("helper 100000 (unknown to Linux too)", 0, CALL(100000), EXIT());
	REJECT("LD_ABS/LD_IND reads a packet", 0, I(BPF_LD | BPF_ABS | BPF_W, 0, 0, 0, 0), EXIT());
	REJECT("comparison between pointers", 0, I(BPF_JMP | BPF_JGT | BPF_X, 1, 10, 0, 0),
	       MOV64_IMM(0, 0), EXIT());
}

static void raw_memory(void **state)
{
	(void)state;
	/* stack */
	ACCEPT(ST_IMM(BPF_DW, 10, -8, 1), LDX(BPF_DW, 0, 10, -8), EXIT());
	REJECT("read of uninitialised stack fp-8", 0, LDX(BPF_DW, 0, 10, -8), EXIT());
	REJECT("read of uninitialised stack fp-4", 1, ST_IMM(BPF_W, 10, -8, 1),
	       LDX(BPF_DW, 0, 10, -8), EXIT());
	REJECT("stack access fp-520 size 8 is out of bounds", 0, ST_IMM(BPF_DW, 10, -520, 1),
	       MOV64_IMM(0, 0), EXIT());
	REJECT("stack access fp+0 size 4 is out of bounds", 0, ST_IMM(BPF_W, 10, 0, 1),
	       MOV64_IMM(0, 0), EXIT());
	/* a spilled pointer comes back a pointer; a partial read of it is refused */
	ACCEPT(STX(BPF_DW, 10, 1, -8), LDX(BPF_DW, 2, 10, -8), LDX(BPF_W, 0, 2, 20), EXIT());
	REJECT("partial read of spilled pointer", 1, STX(BPF_DW, 10, 1, -8),
	       LDX(BPF_W, 0, 10, -8), EXIT());
	REJECT("partial spill of pointer", 0, STX(BPF_W, 10, 1, -8), MOV64_IMM(0, 0), EXIT());
	/* context */
	ACCEPT(LDX(BPF_W, 0, 1, 60), EXIT());
	REJECT("context access ctx+62 size 4 is out of bounds", 0, LDX(BPF_W, 0, 1, 62), EXIT());
	REJECT("the context is read-only", 0, ST_IMM(BPF_DW, 1, 0, 0), MOV64_IMM(0, 0), EXIT());
	REJECT("variable offset into the context", 2, LDX(BPF_B, 2, 1, 0), ALU64_REG(BPF_ADD, 1, 2),
	       LDX(BPF_B, 0, 1, 0), EXIT());
	/* scalars are not pointers */
	REJECT("R2 is a scalar, not a pointer", 1, MOV64_IMM(2, 4096), LDX(BPF_DW, 0, 2, 0), EXIT());
	/* map values: in bounds after a NULL check, out of bounds refused */
#define LOOKUP0 ST_IMM(BPF_W, 10, -4, 0), LD_MAP(1, 0), MOV64_REG(2, 10), \
	ALU64_IMM(BPF_ADD, 2, -4), CALL(BPF_FUNC_map_lookup_elem)
	ACCEPT(LOOKUP0, JMP_IMM(BPF_JEQ, 0, 0, 1), LDX(BPF_DW, 0, 0, 8), EXIT());
	REJECT("dereference without a NULL check", 6, LOOKUP0, LDX(BPF_DW, 0, 0, 8), EXIT());
	REJECT("value access at offset 9..9 (size 8) is out of bounds", 7, LOOKUP0,
	       JMP_IMM(BPF_JEQ, 0, 0, 1), LDX(BPF_DW, 0, 0, 9), EXIT());
	REJECT("arithmetic on map_value_or_null prohibited", 6, LOOKUP0, ALU64_IMM(BPF_ADD, 0, 8),
	       EXIT());
	REJECT("R0 is a pointer (map_value) at exit", 7, LOOKUP0, JMP_IMM(BPF_JEQ, 0, 0, 1), EXIT(),
	       EXIT());
	/* a bounded variable index into a map value */
	ACCEPT(MOV64_REG(6, 1), LOOKUP0, JMP_IMM(BPF_JEQ, 0, 0, 5), LDX(BPF_B, 3, 6, 0),
	       ALU64_IMM(BPF_AND, 3, 7), ALU64_REG(BPF_ADD, 0, 3), LDX(BPF_B, 0, 0, 8), EXIT(),
	       MOV64_IMM(0, 0), EXIT());
	REJECT("value access at offset 8..16 (size 1) is out of bounds", 11, MOV64_REG(6, 1),
	       LOOKUP0, JMP_IMM(BPF_JEQ, 0, 0, 5), LDX(BPF_B, 3, 6, 0), ALU64_IMM(BPF_AND, 3, 8),
	       ALU64_REG(BPF_ADD, 0, 3), LDX(BPF_B, 0, 0, 8), EXIT(), MOV64_IMM(0, 0), EXIT());
}

static void raw_helpers(void **state)
{
	(void)state;
	REJECT("bpf_map_lookup_elem: R1 must be a map", 1, MOV64_REG(2, 10),
	       CALL(BPF_FUNC_map_lookup_elem), EXIT());
	REJECT("bpf_map_update_elem: argument R3 is not initialised", 5, ST_IMM(BPF_W, 10, -4, 0),
	       LD_MAP(1, 0), MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4),
	       CALL(BPF_FUNC_map_update_elem), EXIT());
	/* value too short on the stack: 16-byte value, 8 bytes initialised */
	REJECT("R3 (value): 16 bytes at fp-8 leave the stack", 8, ST_IMM(BPF_DW, 10, -8, 0),
	       LD_MAP(1, 0), MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4), MOV64_REG(3, 10),
	       ALU64_IMM(BPF_ADD, 3, -8), MOV64_IMM(4, 0), CALL(BPF_FUNC_map_update_elem), EXIT());
	/* caller-saved registers are gone after a call */
	REJECT("R1 is not initialised", 1, CALL(BPF_FUNC_ktime_get_ns), LDX(BPF_DW, 0, 1, 0), EXIT());
	ACCEPT(CALL(BPF_FUNC_get_current_pid_tgid), EXIT());
	ACCEPT(CALL(BPF_FUNC_get_smp_processor_id), EXIT());
	/* pointer leak through a helper's scalar argument */
	REJECT("R4 (flags) must be a scalar, not ctx", 11, MOV64_REG(6, 1),
	       ST_IMM(BPF_W, 10, -4, 0), ST_IMM(BPF_DW, 10, -24, 0), ST_IMM(BPF_DW, 10, -16, 0),
	       LD_MAP(1, 0), MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4), MOV64_REG(3, 10),
	       ALU64_IMM(BPF_ADD, 3, -24), MOV64_REG(4, 6), CALL(BPF_FUNC_map_update_elem), EXIT());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_verdicts),
		cmocka_unit_test(corpus_maps_and_license),
		cmocka_unit_test(loader_rejects_non_bpf),
		cmocka_unit_test(raw_control_flow),
		cmocka_unit_test(raw_registers),
		cmocka_unit_test(raw_memory),
		cmocka_unit_test(raw_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
