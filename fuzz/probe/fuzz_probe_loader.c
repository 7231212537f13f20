/*
 * fuzz_probe_loader.c - any bytes as an eBPF ELF object: the loader either
 * refuses them with a reason or yields an object whose programs the
 * verifier then judges (never a crash, hang or leak).
 */
#include <stddef.h>
#include <stdint.h>

#include "thoth/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	thoth_probe_object_t *obj = NULL;
	char err[256];
	if (thoth_probe_object_open(data, size, &obj, err, sizeof err) != 0) {
		if (!err[0])
			__builtin_trap();    /* every refusal says why */
		return 0;
	}
	for (size_t i = 0; i < thoth_probe_object_prog_count(obj); i++) {
		char msg[2048];
		thoth_probe_verify(obj, i, msg, sizeof msg);
	}
	thoth_probe_object_free(obj);
	return 0;
}
