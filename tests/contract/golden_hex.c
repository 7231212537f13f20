/* golden_hex.c - see golden_hex.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "golden_hex.h"

int golden_write_hex(const char *path, const uint8_t *b, size_t n, const char *title)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "# %s, %zu bytes\n", title, n);
	fprintf(f, "# docs/WIRE.md; regenerate: THOTH_GOLDEN_REGEN=1 test_golden (or test_matrix)\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x%s", b[i], (i % 16 == 15 || i + 1 == n) ? "\n" : " ");
	return fclose(f) ? -errno : 0;
}

size_t golden_read_hex(const char *path, uint8_t *b, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("missing golden file %s (run with THOTH_GOLDEN_REGEN=1 to create)", path);
	size_t n = 0;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#')
			continue;
		for (char *p = line; *p;) {
			unsigned v;
			int used;
			if (sscanf(p, "%2x%n", &v, &used) != 1)
				break;
			if (n == cap) {
				fclose(f);
				fail_msg("%s: larger than %zu bytes", path, cap);
			}
			b[n++] = (uint8_t)v;
			p += used;
			while (*p == ' ' || *p == '\n')
				p++;
		}
	}
	fclose(f);
	return n;
}
