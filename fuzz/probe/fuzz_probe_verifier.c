/*
 * fuzz_probe_verifier.c - random bytecode against the verifier: every
 * program is rejected, or runs safely in the interpreter (ASan/UBSan watch
 * every access) against two maps: #0 an ARRAY of 4 x 16-byte values,
 * #1 a HASH of 8-byte keys and values.
 *
 * Input: 64 bytes of context, then instructions (8 bytes each, at most
 * 512).  A ld_imm64 with source 1 refers to map (imm % 2).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 64 + 8)
		return 0;
	struct thoth_probe_ctx ctx;
	memcpy(&ctx, data, 64);
	size_t n = (size - 64) / 8;
	if (n > 512)
		n = 512;
	thoth_probe_object_t *o = calloc(1, sizeof *o);
	if (!o)
		return 0;
	o->n_progs = 1;
	probe_prog_def_t *p = &o->progs[0];
	strcpy(p->section, "thoth/fuzz");
	strcpy(p->name, "fuzz");
	strcpy(p->point, "fuzz");
	p->kind = PROBE_KIND_THOTH;
	p->n_insns = (uint32_t)n;
	p->insns = malloc(n * 8);
	if (!p->insns) {
		free(o);
		return 0;
	}
	memcpy(p->insns, data + 64, n * 8);
	for (size_t i = 0; i < n; i++)
		if (p->insns[i].code == (BPF_LD | BPF_IMM | BPF_DW) &&
		    p->insns[i].src_reg == PROBE_PSEUDO_MAP)
			p->insns[i].imm = (int32_t)((uint32_t)p->insns[i].imm % 2);
	o->n_maps = 2;
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
	thoth_probe_maps_t *maps = NULL;
	thoth_probe_prog_t *prog = NULL;
	char msg[2048];
	if (thoth_probe_maps_new(o, &maps) == 0 &&
	    thoth_probe_prog_load(o, 0, maps, THOTH_PROBE_ENGINE_INTERP, &prog, msg, sizeof msg) == 0) {
		uint64_t ret;
		thoth_probe_prog_run(prog, &ctx, &ret);
	}
	thoth_probe_prog_free(prog);
	thoth_probe_maps_free(maps);
	thoth_probe_object_free(o);
	return 0;
}
