/*
 * test_probe_points.c - the trace points `thothctl probe run` finds in a
 * running process (tools/thothctl/probe_points.c): the "thoth" USDT notes
 * of the files it maps executable.
 *
 * - a point of the executable or of a mapped library is known; a typo is
 *   not, and the nearest point is named;
 * - a library mapped and then deleted (a rebuild) may hold the point:
 *   "cannot tell", not a refusal (it refused a point the process had);
 * - a hostile process maps a file of a mount namespace of its own whose
 *   path here names a FIFO: not opened (the open blocked thothctl for
 *   ever; the alarm ends the test instead);
 * - a hostile process maps a sparse file whose ELF header claims a million
 *   sections, or many files each with a 1 MiB note section: what is read
 *   stays within the bound (its rchar; the old reader read the whole
 *   64 MiB section table, and every file's notes), and the answer is
 *   "cannot tell".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sdt.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <elf.h>

#include "probe_points.h"
#include "../common/tmpdir.h"
#include "../common/skip.h"

static char tmp[256];

/* The executable's own point (never fired). */
__attribute__((noinline)) static void ppt_here_fire(void)
{
	STAP_PROBE(thoth, ppt_here);
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* A child that runs SETUP (which returns 0 once its maps are as wanted),
 * says so on a pipe and waits to be killed.  0: SETUP failed (skip). */
static pid_t child(int (*setup)(void))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* gone with the test, whichever assertion ends it */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() == 1)
			_exit(1);
		close(p[0]);
		char ok = setup() == 0 ? 'y' : 'n';
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char ok = 'n';
	if (read(p[0], &ok, 1) != 1)
		ok = 'n';
	close(p[0]);
	if (ok != 'y') {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return 0;
	}
	return pid;
}

static void end_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int load_plugin(bool delete)
{
	char copy[sizeof tmp + 32];
	snprintf(copy, sizeof copy, "%s/plugin.so", tmp);
	if (!dlopen(copy, RTLD_NOW))
		return -1;
	return delete ? unlink(copy) : 0;
}
static int plugin_kept(void) { return load_plugin(false); }
static int plugin_deleted(void) { return load_plugin(true); }

/* A child that loaded a fresh copy of the plugin (ENTRY: kept or deleted). */
static pid_t child_with_plugin(int (*entry)(void))
{
	char copy[sizeof tmp + 32];
	snprintf(copy, sizeof copy, "%s/plugin.so", tmp);
	copy_file(PROBE_POINTS_PLUGIN, copy);
	pid_t pid = child(entry);
	assert_true(pid > 0);
	return pid;
}

static void test_points_of_the_executable_and_a_library(void **state)
{
	(void)state;
	char near[256];
	pid_t pid = child_with_plugin(plugin_kept);
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_here", near, sizeof near), 1);
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_plugin_only", near, sizeof near), 1);
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_hree", near, sizeof near), 0);
	assert_string_equal(near, "ppt_here");
	end_child(pid);
}

static void test_a_deleted_library_is_cannot_tell(void **state)
{
	(void)state;
	char near[256];
	pid_t pid = child_with_plugin(plugin_deleted);
	/* The plugin was rebuilt (deleted, as make replaces it): its point is
	 * not known here, and is not refused either. */
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_plugin_only", near, sizeof near), -1);
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_here", near, sizeof near), 1);
	end_child(pid);
}

/* In a mount namespace of its own: a tmpfs over DIR, a file there mapped
 * executable.  Outside, DIR/lib is a FIFO. */
static int map_private_file(void)
{
	if (unshare(getuid() == 0 ? CLONE_NEWNS : CLONE_NEWUSER | CLONE_NEWNS))
		return -1;
	char dir[sizeof tmp + 32], lib[sizeof tmp + 32];
	snprintf(dir, sizeof dir, "%s/m", tmp);
	snprintf(lib, sizeof lib, "%s/m/lib", tmp);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) || mount("none", dir, "tmpfs", 0, NULL))
		return -1;
	int fd = open(lib, O_RDWR | O_CREAT | O_EXCL, 0700);
	if (fd < 0 || ftruncate(fd, 4096))
		return -1;
	return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED ? -1 : 0;
}

static void test_a_fifo_named_by_the_maps_is_not_opened(void **state)
{
	(void)state;
	char dir[sizeof tmp + 32], fifo[sizeof tmp + 32], near[256];
	snprintf(dir, sizeof dir, "%s/m", tmp);
	snprintf(fifo, sizeof fifo, "%s/m/lib", tmp);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	pid_t pid = child(map_private_file);
	if (!pid)
		skip_because("no mount namespace for this user here");
	alarm(30);              /* the old code blocked in open(FIFO) */
	assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_nowhere", near, sizeof near), -1);
	alarm(0);
	end_child(pid);
}

/* FILE: an ELF header, and either (NOTE_BYTES 0) a section table of
 * SECTIONS entries (extended numbering: section 0's sh_size) with only
 * section 0 written, the rest a hole; or a 1-entry-plus-names table with a
 * .note.stapsdt of NOTE_BYTES (zeros: a hole) that names no point.  Then
 * the file's first page mapped executable (kept: the child waits). */
static int map_hostile_elf(const char *file, uint64_t sections, uint64_t note_bytes)
{
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
	if (fd < 0)
		return -1;
	Elf64_Ehdr eh = {
		.e_ident = { ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT },
		.e_type = ET_DYN, .e_machine = EM_X86_64, .e_version = EV_CURRENT,
		.e_ehsize = sizeof(Elf64_Ehdr), .e_shentsize = sizeof(Elf64_Shdr),
	};
	static const char names[] = "\0.shstrtab\0.note.stapsdt";
	Elf64_Shdr sh[3] = { { 0 } };
	uint64_t end;
	if (!note_bytes) {
		eh.e_shoff = 4096;
		eh.e_shnum = 0;         /* the count is sh[0].sh_size */
		sh[0].sh_size = sections;
		end = eh.e_shoff + sections * sizeof(Elf64_Shdr);
		if (pwrite(fd, sh, sizeof sh[0], (off_t)eh.e_shoff) != sizeof sh[0])
			return -1;
	} else {
		uint64_t names_at = 4096 + note_bytes;
		eh.e_shoff = names_at + 64;
		eh.e_shnum = 3;
		eh.e_shstrndx = 1;
		sh[1] = (Elf64_Shdr){ .sh_name = 1, .sh_type = SHT_STRTAB, .sh_offset = names_at,
				      .sh_size = sizeof names, .sh_addralign = 1 };
		sh[2] = (Elf64_Shdr){ .sh_name = 11, .sh_type = SHT_NOTE, .sh_offset = 4096,
				      .sh_size = note_bytes, .sh_addralign = 4 };
		end = eh.e_shoff + sizeof sh;
		if (pwrite(fd, names, sizeof names, (off_t)names_at) != sizeof names ||
		    pwrite(fd, sh, sizeof sh, (off_t)eh.e_shoff) != sizeof sh)
			return -1;
	}
	if (pwrite(fd, &eh, sizeof eh, 0) != sizeof eh || ftruncate(fd, (off_t)end))
		return -1;
	void *m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	close(fd);
	return m == MAP_FAILED ? -1 : 0;
}

enum { MANY_FILES = 64 };
static int map_a_million_sections(void)
{
	char f[sizeof tmp + 32];
	snprintf(f, sizeof f, "%s/sections.so", tmp);
	return map_hostile_elf(f, 1u << 20, 0);
}
static int map_many_notes(void)
{
	for (int i = 0; i < MANY_FILES; i++) {
		char f[sizeof tmp + 32];
		snprintf(f, sizeof f, "%s/notes%d.so", tmp, i);
		if (map_hostile_elf(f, 0, 1u << 20))
			return -1;
	}
	return 0;
}

/* Bytes this process has read (read, pread: /proc/self/io's rchar). */
static uint64_t rchar(void)
{
	FILE *f = fopen("/proc/self/io", "re");
	unsigned long long v = 0;
	char line[128];
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "rchar: %llu", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static void test_what_a_hostile_target_makes_read_is_bounded(void **state)
{
	(void)state;
	int (*setups[])(void) = { map_a_million_sections, map_many_notes };
	const char *what[] = { "a million sections", "64 files of 1 MiB notes" };
	for (size_t i = 0; i < 2; i++) {
		pid_t pid = child(setups[i]);
		if (!pid)
			skip_because("no executable mapping of a file in TMPDIR here");
		char near[256];
		uint64_t before = rchar();
		int known = thothctl_probe_point_known((uint32_t)pid, "ppt_nowhere", near, sizeof near);
		uint64_t read = rchar() - before;
		printf("%s: %d, %llu bytes read\n", what[i], known, (unsigned long long)read);
		/* READ_TOTAL (16 MiB) and the maps, the executable's header */
		assert_true(read < (20u << 20));
		assert_int_equal(known, -1);
		/* a point the executable has is still found */
		assert_int_equal(thothctl_probe_point_known((uint32_t)pid, "ppt_here", near, sizeof near), 1);
		end_child(pid);
	}
}

static int setup(void **state)
{
	(void)state;
	test_tmp_template(tmp, sizeof tmp, "test_probe_points");
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[sizeof tmp + 16];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

/* The note reader on ELF images in memory (the fuzz target's entry), on
 * its seeds: a 64-bit and a 32-bit object with thoth points msg_send,
 * timer_fire, msg_recv and another provider's msg_sned, and the 64-bit one
 * cut short. */
static void *slurp(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", FUZZ_POINTS_SEEDS, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[1 << 16];
	*len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	return buf;
}

static void test_points_of_an_image_in_memory(void **state)
{
	(void)state;
	static const char *const whole[] = { "thoth_notes64.elf", "thoth_notes32.elf" };
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		void *img = slurp(whole[i], &len);
		char near[64];
		assert_int_equal(thothctl_probe_points_in_image(img, len, "msg_send", near, sizeof near), 1);
		assert_int_equal(thothctl_probe_points_in_image(img, len, "timer_fire", near, sizeof near), 1);
		/* msg_sned is another provider's: not a thoth point */
		assert_int_equal(thothctl_probe_points_in_image(img, len, "msg_sned", near, sizeof near), 0);
		assert_string_equal(near, "msg_send");    /* msg_recv: 4 edits, past the limit */
		assert_int_equal(thothctl_probe_points_in_image(img, len, "zzzzzzzzzz", near, sizeof near), 0);
		assert_string_equal(near, "");
	}
	size_t len;
	void *img = slurp("thoth_notes64_cut.elf", &len);
	char near[64];
	assert_int_equal(thothctl_probe_points_in_image(img, len, "msg_send", near, sizeof near), -1);
	assert_int_equal(thothctl_probe_points_in_image("not elf", 7, "msg_send", near, sizeof near), -1);
}

int main(void)
{
	if (getenv("PPT_NEVER"))
		ppt_here_fire();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_points_of_the_executable_and_a_library),
		cmocka_unit_test(test_a_deleted_library_is_cannot_tell),
		cmocka_unit_test(test_a_fifo_named_by_the_maps_is_not_opened),
		cmocka_unit_test(test_points_of_an_image_in_memory),
		cmocka_unit_test(test_what_a_hostile_target_makes_read_is_bounded),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
