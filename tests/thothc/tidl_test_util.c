/* tidl_test_util.c - see tidl_test_util.h. */
#include "tidl_test_util.h"

#include <stdio.h>
#include <string.h>

static tidl_program_t *last;

void tidl_test_reset(void)
{
	tidl_program_free(last);
	last = NULL;
}

tidl_program_t *tidl_test_prog(void)
{
	return last;
}

int tidl_test_load_text(const char *text, tidl_file_t **out)
{
	tidl_test_reset();
	last = tidl_program_new();
	return tidl_program_load_buffer(last, "test.tidl", text, strlen(text), out);
}

int tidl_test_load_file(const char *relpath, tidl_file_t **out)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", SCHEMA_DIR, relpath);
	tidl_test_reset();
	last = tidl_program_new();
	return tidl_program_load(last, path, out);
}

const tidl_diag_t *tidl_test_find_diag(const tidl_program_t *prog, const char *needle)
{
	for (size_t i = 0; i < tidl_program_diag_count(prog); i++) {
		const tidl_diag_t *d = tidl_program_diag(prog, i);
		if (strstr(d->message, needle))
			return d;
	}
	return NULL;
}

void tidl_test_dump(const tidl_program_t *prog)
{
	if (prog)
		tidl_program_print_diags(prog, stderr);
}
