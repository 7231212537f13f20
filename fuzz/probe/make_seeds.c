/*
 * make_seeds.c - seeds for fuzz_probe_verifier from compiled probe objects:
 * a zero context followed by each program's instructions (map references
 * keep source 1 and their map index, which the fuzzer reduces mod 2).
 *   fuzz_probe_make_seeds OUTDIR OBJECT.o...
 */
#include <stdio.h>
#include <string.h>

#include "probe_internal.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s OUTDIR OBJECT.o...\n", argv[0]);
		return 2;
	}
	for (int a = 2; a < argc; a++) {
		thoth_probe_object_t *obj;
		char err[256];
		if (thoth_probe_object_open_file(argv[a], &obj, err, sizeof err)) {
			fprintf(stderr, "%s: %s\n", argv[a], err);
			return 1;
		}
		for (uint32_t i = 0; i < obj->n_progs; i++) {
			const char *base = strrchr(argv[a], '/');
			base = base ? base + 1 : argv[a];
			size_t stem = strlen(base);
			if (stem > 2 && strcmp(base + stem - 2, ".o") == 0)
				stem -= 2;   /* "*.o" is ignored by git */
			char path[1024];
			snprintf(path, sizeof path, "%s/%.*s-%u", argv[1], (int)stem, base, i);
			FILE *f = fopen(path, "wb");
			if (!f)
				return 1;
			static const uint8_t zero[64];
			fwrite(zero, 1, sizeof zero, f);
			fwrite(obj->progs[i].insns, 8, obj->progs[i].n_insns, f);
			fclose(f);
		}
		thoth_probe_object_free(obj);
	}
	return 0;
}
