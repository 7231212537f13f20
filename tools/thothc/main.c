/*
 * main.c - the thothc command line.
 *
 *   thothc gen --lang c -o OUTDIR [--c-prefix P] FILE.tidl...
 *   thothc check OLD.tidl NEW.tidl
 *
 * Exit status: 0 success, 1 incompatible (check), 2 usage, syntax or
 * semantic error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ast.h"
#include "compat.h"
#include "thoth/version.h"
#ifndef THOTHC_NO_GEN
#include "gen_c.h"
#endif

static void usage(FILE *out)
{
	fputs("usage: thothc gen --lang c -o OUTDIR [--c-prefix PREFIX] FILE.tidl...\n"
	      "       thothc check OLD.tidl NEW.tidl\n"
	      "       thothc --help | --version\n"
	      "\n"
	      "gen    compile schemas to C: OUTDIR/<name>.thoth.h and .thoth.c per file\n"
	      "check  exit 0 if NEW is wire-compatible with OLD, 1 if not (each breaking\n"
	      "       change listed), 2 if either file has errors\n", out);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("thothc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

static int cmd_gen(int argc, char **argv)
{
	const char *outdir = NULL, *lang = NULL, *prefix = NULL;
	int first = argc;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--lang") == 0 ||
		    strcmp(argv[i], "--c-prefix") == 0) {
			if (i + 1 >= argc)
				return bad_usage("option %s needs a value", argv[i]);
			const char **dst = argv[i][1] == 'o' ? &outdir : argv[i][2] == 'l' ? &lang : &prefix;
			*dst = argv[++i];
		} else if (argv[i][0] == '-') {
			return bad_usage("unknown option '%s'", argv[i]);
		} else {
			first = i;
			break;
		}
	}
	if (!lang || strcmp(lang, "c") != 0)
		return bad_usage("gen needs --lang c (the only back end so far)");
	if (!outdir)
		return bad_usage("gen needs -o OUTDIR");
	if (first >= argc)
		return bad_usage("gen needs at least one .tidl file");
	struct stat st;
	if (stat(outdir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "thothc: output directory '%s' does not exist\n", outdir);
		return 2;
	}
	if (prefix && argc - first > 1)
		return bad_usage("--c-prefix applies to one file at a time");
	int status = 0;
	for (int i = first; i < argc; i++) {
		if (argv[i][0] == '-')
			return bad_usage("options must come before the files: '%s'", argv[i]);
		tidl_program_t *prog = tidl_program_new();
		tidl_file_t *file;
		if (!prog)
			return 2;
		if (tidl_program_load(prog, argv[i], &file) != 0) {
			tidl_program_print_diags(prog, stderr);
			status = 2;
		} else {
			tidl_program_print_diags(prog, stderr);  /* warnings */
#ifdef THOTHC_NO_GEN
			(void)file;
			fputs("thothc: C generator not built\n", stderr);
			status = 2;
#else
			int r = prefix ? thothc_gen_c_prefixed(file, outdir, prefix, stderr)
				       : thothc_gen_c(file, outdir, stderr);
			if (r)
				status = 2;
#endif
		}
		tidl_program_free(prog);
	}
	return status;
}

static int cmd_check(int argc, char **argv)
{
	if (argc != 4)
		return bad_usage("check needs exactly two files: OLD.tidl NEW.tidl");
	tidl_program_t *old_prog = tidl_program_new(), *new_prog = tidl_program_new();
	tidl_program_t *findings = tidl_program_new();
	tidl_file_t *old_file, *new_file;
	int status = 2;
	if (!old_prog || !new_prog || !findings)
		goto out;
	int ro = tidl_program_load(old_prog, argv[2], &old_file);
	int rn = tidl_program_load(new_prog, argv[3], &new_file);
	tidl_program_print_diags(old_prog, stderr);
	tidl_program_print_diags(new_prog, stderr);
	if (ro || rn)
		goto out;
	int breaks = thothc_compat_check(old_file, new_file, findings);
	tidl_program_print_diags(findings, stderr);
	if (breaks)
		fprintf(stderr, "thothc: %d breaking change%s from %s to %s\n", breaks,
			breaks == 1 ? "" : "s", argv[2], argv[3]);
	status = breaks ? 1 : 0;
out:
	tidl_program_free(findings);
	tidl_program_free(old_prog);
	tidl_program_free(new_prog);
	return status;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return bad_usage("missing command");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("thothc %s (wire format 1)\n", THOTH_VERSION_STRING);
		return 0;
	}
	if (strcmp(argv[1], "gen") == 0)
		return cmd_gen(argc, argv);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc, argv);
	return bad_usage("unknown command '%s'", argv[1]);
}
