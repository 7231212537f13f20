/*
 * test_thothc_depfile.c - the text of `thothc gen --depfile` (depfile.h):
 * a make rule, the outputs then every file read, each path escaped as make
 * (and Ninja, and CMake's depfile reader) takes it back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "depfile.h"

static void test_a_rule_with_one_dependency_a_line(void **state)
{
	(void)state;
	const char *t[] = { "/b/gen/w.thoth.h", "/b/gen/w.thoth.c" };
	const char *d[] = { "/s/w.tidl", "/s/e.tidl" };
	size_t len = 0;
	char *s = thothc_depfile_text(t, 2, d, 2, &len, NULL);
	assert_non_null(s);
	assert_string_equal(s, "/b/gen/w.thoth.h /b/gen/w.thoth.c: \\\n  /s/w.tidl \\\n  /s/e.tidl\n");
	assert_int_equal(len, strlen(s));
	free(s);
}

/* Blanks, '#' and '$' as make reads them (GCC's -MD rules): a path with a
 * blank was two files to make, '#' began a comment, '$' a variable. */
static void test_paths_are_escaped_as_make_needs(void **state)
{
	(void)state;
	const char *t[] = { "/b x/gen/w x.thoth.h" };
	const char *d[] = { "/my schemas/w x.tidl", "/o/a#b.tidl", "/o/$HOME.tidl", "/o/tab\there.tidl",
			    "/o/back\\ slash.tidl", "/o/keep\\this.tidl", "/o/end\\" };
	size_t len = 0;
	char *s = thothc_depfile_text(t, 1, d, 7, &len, NULL);
	assert_non_null(s);
	assert_string_equal(s, "/b\\ x/gen/w\\ x.thoth.h: \\\n"
			       "  /my\\ schemas/w\\ x.tidl \\\n"
			       "  /o/a\\#b.tidl \\\n"
			       "  /o/$$HOME.tidl \\\n"
			       "  /o/tab\\\there.tidl \\\n"
			       "  /o/back\\\\\\ slash.tidl \\\n"
			       "  /o/keep\\this.tidl \\\n"
			       "  /o/end\\\\\n");
	free(s);
}

/* A line break cannot be written in a depfile: refused, naming the path,
 * never a rule make would read as two. */
static void test_a_path_with_a_line_break_is_refused(void **state)
{
	(void)state;
	const char *t[] = { "/b/w.thoth.h" };
	const char *d[] = { "/s/w.tidl", "/s/new\nline.tidl" };
	size_t len = 0;
	const char *bad = NULL;
	errno = 0;
	assert_null(thothc_depfile_text(t, 1, d, 2, &len, &bad));
	assert_int_equal(errno, EINVAL);
	assert_ptr_equal(bad, d[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_rule_with_one_dependency_a_line),
		cmocka_unit_test(test_paths_are_escaped_as_make_needs),
		cmocka_unit_test(test_a_path_with_a_line_break_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
