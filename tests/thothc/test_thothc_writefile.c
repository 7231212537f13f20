/*
 * test_thothc_writefile.c - thothc_write_whole (what `thothc gen` and `fmt`
 * write files with) syncs the new file before it renames it over the old
 * and the folder after: without the first, a crash after the rename could
 * leave the new name on an empty file.  fsync is wrapped (-Wl,--wrap=fsync)
 * to see what is synced when, and to fail it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "writefile.h"
#include "../common/tmpdir.h"

int __real_fsync(int fd);
int __wrap_fsync(int fd);

static char dir[PATH_MAX], target[PATH_MAX + 16];
static struct {
	char path[PATH_MAX];
	char target_then[64];           /* the target's contents when it was synced */
} synced[8];
static int n_synced, fail_on = -1, fail_errno;

int __wrap_fsync(int fd)
{
	int i = n_synced++;
	if (i < 8) {
		char link[64];
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, synced[i].path, sizeof synced[i].path - 1);
		synced[i].path[n > 0 ? n : 0] = 0;
		FILE *f = fopen(target, "r");
		size_t r = f ? fread(synced[i].target_then, 1, sizeof synced[i].target_then - 1, f) : 0;
		synced[i].target_then[r] = 0;
		if (f)
			fclose(f);
	}
	if (i == fail_on) {
		errno = fail_errno;
		return -1;
	}
	return __real_fsync(fd);
}

static int setup(void **state)
{
	(void)state;
	test_tmp_template(dir, sizeof dir, "thothc_wf");
	if (!mkdtemp(dir))
		return -1;
	snprintf(target, sizeof target, "%s/x.thoth.h", dir);
	FILE *f = fopen(target, "w");
	fputs("old", f);
	fclose(f);
	n_synced = 0;
	fail_on = -1;
	memset(synced, 0, sizeof synced);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void expect_contents(const char *want)
{
	char buf[64] = "";
	FILE *f = fopen(target, "r");
	assert_non_null(f);
	size_t r = fread(buf, 1, sizeof buf - 1, f);
	buf[r] = 0;
	fclose(f);
	assert_string_equal(buf, want);
}

static int files_in_dir(void)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (fscanf(p, "%d", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

/* gen's write (no file to keep the mode of): the temporary file is synced
 * while the old one is still in place, then the folder.  The old code
 * synced nothing here (only fmt's writes, which keep a mode). */
static void test_a_new_file_is_synced_before_the_rename_and_the_folder_after(void **state)
{
	(void)state;
	const char *what = "unset";
	assert_int_equal(thothc_write_whole(target, "new", 3, NULL, &what), 0);
	assert_null(what);
	expect_contents("new");
	assert_int_equal(n_synced, 2);
	char prefix[PATH_MAX + 32];
	snprintf(prefix, sizeof prefix, "%s.", target);
	if (strncmp(synced[0].path, prefix, strlen(prefix)) != 0)
		fail_msg("first fsync on '%s', want the temporary file %sXXXXXX", synced[0].path, prefix);
	assert_string_equal(synced[0].target_then, "old");
	assert_string_equal(synced[1].path, dir);
	assert_string_equal(synced[1].target_then, "new");
}

static void test_a_kept_file_is_synced_too(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(thothc_write_whole(target, "new", 3, &st, NULL), 0);
	assert_int_equal(n_synced, 2);
	assert_string_equal(synced[0].target_then, "old");
	assert_string_equal(synced[1].path, dir);
}

/* A failed sync of the data: the old file stays, no temporary file is
 * left, and the step is named. */
static void test_a_failed_fsync_leaves_the_old_file_and_says_so(void **state)
{
	(void)state;
	fail_on = 0;
	fail_errno = EIO;
	const char *what = NULL;
	assert_int_equal(thothc_write_whole(target, "new", 3, NULL, &what), -1);
	assert_int_equal(errno, EIO);
	assert_string_equal(what, "fsync");
	expect_contents("old");
	assert_int_equal(files_in_dir(), 1);
}

static void test_a_failed_folder_sync_is_an_error_after_the_rename(void **state)
{
	(void)state;
	fail_on = 1;
	fail_errno = EIO;
	const char *what = NULL;
	assert_int_equal(thothc_write_whole(target, "new", 3, NULL, &what), -1);
	assert_int_equal(errno, EIO);
	assert_non_null(strstr(what, "folder"));
	expect_contents("new");
	assert_int_equal(files_in_dir(), 1);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_a_new_file_is_synced_before_the_rename_and_the_folder_after),
		T(test_a_kept_file_is_synced_too),
		T(test_a_failed_fsync_leaves_the_old_file_and_says_so),
		T(test_a_failed_folder_sync_is_an_error_after_the_rename),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
