/*
 * fuzz_probe_script.c - the one-line language's compiler on arbitrary
 * text: it must fail with a message (and no object), or produce an object
 * that our loader reads and our verifier accepts (anything else is a
 * compiler fault: abort), which then runs once in the interpreter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *elf = NULL;
	size_t len = 0;
	char err[512];
	int r = thoth_probe_script_compile((const char *)data, size, &elf, &len, err, sizeof err);
	if (r) {
		if (elf || len || !err[0])
			abort();   /* a failure leaves no object and says why */
		return 0;
	}
	thoth_probe_object_t *obj = NULL;
	thoth_probe_maps_t *maps = NULL;
	thoth_probe_prog_t *prog = NULL;
	char msg[4096];
	if (thoth_probe_object_open(elf, len, &obj, msg, sizeof msg) ||
	    thoth_probe_maps_new(obj, &maps) ||
	    thoth_probe_prog_load(obj, 0, maps, THOTH_PROBE_ENGINE_INTERP, &prog, msg, sizeof msg)) {
		fprintf(stderr, "fuzz_probe_script: compiled '%.*s' but it was refused: %s\n",
		        (int)size, (const char *)data, msg);
		abort();
	}
	struct thoth_probe_ctx ctx = { .size = 2000, .service_id = 3, .arg0 = 7, .pid = 1 };
	uint64_t ret;
	if (thoth_probe_prog_run(prog, &ctx, &ret))
		abort();
	thoth_probe_prog_free(prog);
	thoth_probe_maps_free(maps);
	thoth_probe_object_free(obj);
	free(elf);
	return 0;
}
