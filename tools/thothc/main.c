/*
 * main.c - the thothc command line.
 *
 *   thothc gen --lang c -o OUTDIR [--c-prefix P] [--depfile FILE] FILE.tidl...
 *   thothc check OLD.tidl NEW.tidl
 *   thothc fmt [--check | --stdout] FILE.tidl...
 *   thothc lint FILE.tidl...
 *
 * Exit status: 0 success, 1 incompatible (check), not canonical (fmt
 * --check) or findings (lint), 2 usage, syntax or semantic error.
 */
#define _GNU_SOURCE             /* realpath */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ast.h"
#include "compat.h"
#include "depfile.h"
#include "fmt.h"
#include "writefile.h"
#include "thoth/version.h"
#ifndef THOTHC_NO_GEN
#include "gen_c.h"
#endif

static void usage(FILE *out)
{
	fputs("usage: thothc gen --lang c -o OUTDIR [--c-prefix PREFIX] [--depfile FILE] FILE.tidl...\n"
	      "       thothc check OLD.tidl NEW.tidl\n"
	      "       thothc fmt [--check | --stdout] FILE.tidl...\n"
	      "       thothc lint FILE.tidl...\n"
	      "       thothc --help | --version\n"
	      "\n"
	      "gen    compile schemas to C: OUTDIR/<name>.thoth.h and .thoth.c per file;\n"
	      "       --depfile FILE also writes what they depend on (every file read,\n"
	      "       imports through imports) as a make rule, for make, Ninja or CMake\n"
	      "check  exit 0 if NEW is wire-compatible with OLD, 1 if not (each breaking\n"
	      "       change listed), 2 if either file has errors\n"
	      "fmt    rewrite files in the canonical layout (docs/IDL.md); --check only\n"
	      "       lists the files that are not canonical (exit 1), --stdout prints\n"
	      "lint   naming, @since, unused imports, reuse, gaps: exit 1 if any finding\n"
	      "\n"
	      "-h, --help  this text; after a command too, when no file is named\n"
	      "            (a file named --help is ./--help)\n", out);
}

/* A usage error: one line naming it and where the usage is, exit 2, the
 * rule of thothd and thothctl (ops39, ops40): the 15-line usage followed
 * the line and buried it. */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;
	fputs("thothc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (thothc --help lists the commands and options)\n", stderr);
	return 2;
}

#ifndef THOTHC_NO_GEN
/* Two files of one run whose headers have one name ("a.tidl sub/a.tidl":
 * both OUTDIR/a.thoth.h) would overwrite each other in silence, the last
 * one kept: refused before anything is written, naming both.  One file
 * given twice (by any path: its inode) is no clash. */
static bool header_names_clash(char **files, int n, const char *outdir)
{
	bool clash = false;
	for (int i = 1; i < n; i++) {
		char bi[512], bj[512];
		thothc_header_base(files[i], bi, sizeof bi);
		for (int j = 0; j < i; j++) {
			thothc_header_base(files[j], bj, sizeof bj);
			if (strcmp(bi, bj) != 0)
				continue;
			struct stat si, sj;
			if (stat(files[i], &si) == 0 && stat(files[j], &sj) == 0 &&
			    si.st_dev == sj.st_dev && si.st_ino == sj.st_ino)
				continue;
			fprintf(stderr, "thothc: '%s' and '%s' both make %s/%s.thoth.h (and .thoth.c); "
					"generate them into different folders or rename one\n",
				files[j], files[i], outdir, bi);
			clash = true;
			break;
		}
	}
	return clash;
}
#endif

#ifndef THOTHC_NO_GEN
/* PATH absolute (the current folder before a relative one), without
 * resolving links: the files a depfile says were read, found from any
 * folder the build tool reads it in. */
static char *absolute(const char *path)
{
	if (path[0] == '/')
		return strdup(path);
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	char *out;
	return asprintf(&out, "%s/%s", cwd, path) < 0 ? NULL : out;
}

/* --depfile FILE: the generated files, then every file the run read (the
 * roots and their imports through imports, each once), for the build tool
 * (depfile.h).  Written before the code, so that a depfile that cannot be
 * written leaves no new code a build would take as up to date without
 * knowing what it depends on. */
static int write_depfile(const char *depfile, const char *outdir, tidl_program_t **progs, int n,
			 tidl_file_t **roots)
{
	size_t n_targets = 0, n_deps = 0, cap_deps = 0;
	char **targets = calloc(2 * (size_t)n, sizeof *targets), **deps = NULL;
	bool ok = targets != NULL;
	for (int i = 0; ok && i < n; i++) {
		if (!roots[i])
			continue;
		/* The outputs as gen names them (OUTDIR as given: the name a
		 * make or Ninja rule gives them; made absolute, a hand-written
		 * rule's "gen/w.thoth.h" never met its dependencies), less a
		 * trailing '/' (gen's "gen//w.thoth.h" is the same file). */
		char base[512], *h = NULL, *c = NULL;
		size_t dl = strlen(outdir);
		while (dl > 1 && outdir[dl - 1] == '/')
			dl--;
		thothc_header_base(roots[i]->path, base, sizeof base);
		if (asprintf(&h, "%.*s/%s.thoth.h", (int)dl, outdir, base) < 0)
			h = NULL;
		if (asprintf(&c, "%.*s/%s.thoth.c", (int)dl, outdir, base) < 0)
			c = NULL;
		ok = h && c;
		if (ok) {
			targets[n_targets++] = h;
			targets[n_targets++] = c;
		} else {
			free(h);
			free(c);
		}
		/* the root first (the loader lists it after its imports) */
		size_t n_files = tidl_program_file_count(progs[i]);
		for (size_t f = 0; ok && f <= n_files; f++) {
			char *path = absolute(f ? tidl_program_file(progs[i], f - 1)->path : roots[i]->path);
			bool seen = !path;
			for (size_t d = 0; !seen && d < n_deps; d++)
				seen = strcmp(deps[d], path) == 0;
			if (!path || seen) {
				ok = path != NULL;
				free(path);
				continue;
			}
			if (n_deps == cap_deps) {
				cap_deps = cap_deps ? 2 * cap_deps : 16;
				char **d2 = realloc(deps, cap_deps * sizeof *deps);
				if (!d2) {
					free(path);
					ok = false;
					break;
				}
				deps = d2;
			}
			deps[n_deps++] = path;
		}
	}
	size_t len = 0;
	const char *bad = NULL, *what = "out of memory";
	char *text = ok ? thothc_depfile_text((const char *const *)targets, n_targets, (const char *const *)deps,
					      n_deps, &len, &bad) : NULL;
	int rc = 0;
	if (!text) {
		if (bad) {
			/* the path on the one line of the message: its breaks as \n, \r */
			fprintf(stderr, "thothc: cannot write depfile '%s': the path '", depfile);
			for (const char *c = bad; *c; c++)
				fputs(*c == '\n' ? "\\n" : *c == '\r' ? "\\r" : (char[2]){ *c, 0 }, stderr);
			fputs("' has a line break, which a depfile cannot hold\n", stderr);
		}
		else
			fprintf(stderr, "thothc: cannot write depfile '%s': %s\n", depfile, what);
		rc = 2;
	} else if (thothc_write_whole(depfile, text, len, NULL, &what) != 0) {
		fprintf(stderr, "thothc: cannot write depfile '%s' (%s): %s\n", depfile, what, strerror(errno));
		rc = 2;
	}
	free(text);
	for (size_t i = 0; i < n_targets; i++)
		free(targets[i]);
	for (size_t i = 0; i < n_deps; i++)
		free(deps[i]);
	free(targets);
	free(deps);
	return rc;
}
#endif

static int cmd_gen(int argc, char **argv)
{
	const char *outdir = NULL, *lang = NULL, *prefix = NULL, *depfile = NULL;
	int first = argc;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--lang") == 0 ||
		    strcmp(argv[i], "--c-prefix") == 0 || strcmp(argv[i], "--depfile") == 0) {
			if (i + 1 >= argc)
				return bad_usage("option %s needs a value", argv[i]);
			const char **dst = argv[i][1] == 'o' ? &outdir : argv[i][2] == 'l' ? &lang :
					   argv[i][2] == 'd' ? &depfile : &prefix;
			*dst = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			return bad_usage("%s goes without files (a file named so is ./%s)", argv[i], argv[i]);
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
	/* A missing output directory is made (its parent must exist), so that
	 * `thothc gen --lang c -o gen x.tidl` works in a fresh folder, as
	 * docs/TUTORIAL.md and docs/INSTALL.md write it. */
	struct stat st;
	if (stat(outdir, &st) != 0 && errno == ENOENT && mkdir(outdir, 0777) != 0 && errno != EEXIST) {
		fprintf(stderr, "thothc: cannot create output directory '%s': %s\n", outdir, strerror(errno));
		return 2;
	}
	if (stat(outdir, &st) != 0) {
		fprintf(stderr, "thothc: output directory '%s': %s\n", outdir, strerror(errno));
		return 2;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "thothc: output directory '%s' is not a directory\n", outdir);
		return 2;
	}
	if (prefix && argc - first > 1)
		return bad_usage("--c-prefix applies to one file at a time");
	/* The prefix starts every generated name (and, upper-cased, every
	 * macro): anything but a C identifier would only show up later as
	 * the C compiler's errors in the generated files. */
	if (prefix) {
		bool ident = (prefix[0] == '_' || isalpha((unsigned char)prefix[0]));
		for (const char *c = prefix; ident && *c; c++)
			ident = *c == '_' || isalnum((unsigned char)*c);
		if (!ident)
			return bad_usage("--c-prefix '%s' is not a C identifier ([A-Za-z_][A-Za-z0-9_]*)",
					 prefix);
		/* as long as a package may be: every generated name then fits
		 * the generator's buffers (a longer one aborted thothc) */
		if (strlen(prefix) > 128)
			return bad_usage("--c-prefix is %zu characters long: at most 128", strlen(prefix));
	}
	for (int i = first; i < argc; i++)
		if (argv[i][0] == '-')
			return bad_usage("options must come before the files: '%s'", argv[i]);
#ifndef THOTHC_NO_GEN
	if (header_names_clash(argv + first, argc - first, outdir))
		return 2;
#endif
	/* Every file is loaded before any is written: the files of one run
	 * are one program's, and C names two of them make are refused
	 * (thothc_gen_check_roots) with nothing written. */
	int status = 0, n = argc - first;
	tidl_program_t **progs = calloc((size_t)n, sizeof *progs);
	tidl_file_t **files = calloc((size_t)n, sizeof *files);
	const tidl_file_t **loaded = calloc((size_t)n, sizeof *loaded);
	if (!progs || !files || !loaded)
		abort();
	size_t n_loaded = 0;
	for (int i = 0; i < n; i++) {
		if (!(progs[i] = tidl_program_new()))
			abort();
		if (tidl_program_load(progs[i], argv[first + i], &files[i]) != 0) {
			files[i] = NULL;
			status = 2;
		} else {
			loaded[n_loaded++] = files[i];
		}
		tidl_program_print_diags(progs[i], stderr);     /* errors, or warnings */
	}
#ifdef THOTHC_NO_GEN
	if (n_loaded) {
		fputs("thothc: C generator not built\n", stderr);
		status = 2;
	}
#else
	if (n_loaded > 1 && thothc_gen_check_roots(loaded, n_loaded, stderr) > 0) {
		fprintf(stderr, "thothc: nothing written: the files of one run are one program, and "
				"their C names must differ\n");
		status = 2;
		n_loaded = 0;
	}
	/* only for a run that makes code: a failed one leaves the build tool
	 * to run it again anyway (its outputs are not made) */
	if (depfile && n_loaded && status == 0 && write_depfile(depfile, outdir, progs, n, files) != 0) {
		status = 2;
		n_loaded = 0;
	}
	for (int i = 0; i < n && n_loaded; i++) {
		if (!files[i])
			continue;
		int r = prefix ? thothc_gen_c_prefixed(files[i], outdir, prefix, stderr)
			       : thothc_gen_c(files[i], outdir, stderr);
		if (r)
			status = 2;
	}
#endif
	for (int i = 0; i < n; i++)
		tidl_program_free(progs[i]);
	free(progs);
	free(files);
	free(loaded);
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

/* Whole file PATH (at most 4 MiB, like the loader) into F; the caller
 * frees f->source.  False (and a message) when it cannot be read. */
static bool read_source(const char *path, tidl_file_t *f)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "thothc: cannot open '%s': %s\n", path, strerror(errno));
		return false;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *nb = realloc(buf, cap);
			if (!nb)
				abort();
			buf = nb;
		}
		size_t r = fread(buf + len, 1, cap - len - 1, fp);
		len += r;
		if (r == 0 || len > (4u << 20))
			break;
	}
	bool bad = ferror(fp) || len > (4u << 20);
	fclose(fp);
	if (bad) {
		fprintf(stderr, "thothc: cannot read '%s' (or larger than 4 MiB)\n", path);
		free(buf);
		return false;
	}
	buf[len] = 0;
	*f = (tidl_file_t){ .path = path, .source = buf, .source_len = len };
	return true;
}

/* Replace PATH's contents with TEXT so that a failure leaves the old file
 * whole: write a temporary file beside it (the link's target, for a
 * symlink), with its mode and owner, and rename it over.  fmt used to
 * truncate the file and then write: a full disk (or a file size limit) left
 * the user's schema empty.  A file with other hard links, one whose owner we
 * cannot give a new file, or one in a directory we may not write to is
 * written in place (thothc_write_in_place). */
static int write_replacing(const char *path, const char *text, bool *touched)
{
	char real[PATH_MAX];
	struct stat st;
	*touched = false;
	if (!realpath(path, real) || stat(real, &st) != 0)
		return -1;
	if (st.st_nlink <= 1) {
		const char *what;
		if (thothc_write_whole(real, text, strlen(text), &st, &what) == 0)
			return 0;
		if (errno != EACCES && errno != EPERM && errno != EROFS)
			return -1;
		if (strncmp(what, "fsync of its folder", 19) == 0)
			return -1;      /* replaced already: not again in place */
	}
	return thothc_write_in_place(real, text, strlen(text), touched);
}

static int cmd_fmt(int argc, char **argv)
{
	bool check = false, to_stdout = false;
	int i = 2;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--check") == 0)
			check = true;
		else if (strcmp(argv[i], "--stdout") == 0)
			to_stdout = true;
		else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return bad_usage("%s goes without files (a file named so is ./%s)", argv[i], argv[i]);
		else
			return bad_usage("unknown option '%s'", argv[i]);
	}
	if (check && to_stdout)
		return bad_usage("fmt: --check and --stdout exclude each other");
	if (i >= argc)
		return bad_usage("fmt needs at least one .tidl file");
	int status = 0;
	for (; i < argc; i++) {
		tidl_program_t *prog = tidl_program_new();
		if (!prog)
			return 2;
		tidl_file_t file, *f = read_source(argv[i], &file) ? &file : NULL;
		char *out = f ? thothc_fmt(prog, f) : NULL;
		if (!out) {
			/* only a syntax error stops fmt; semantic errors are lint's and gen's */
			tidl_program_print_diags(prog, stderr);
			status = 2;
		} else if (to_stdout) {
			fputs(out, stdout);
		} else if (strcmp(out, f->source) != 0) {
			if (check) {
				/* name the first line that differs: enough to find it */
				unsigned line = 1;
				for (const char *a = f->source, *b = out; *a && *a == *b; a++, b++)
					line += *a == '\n';
				printf("%s:%u: not in canonical format (thothc fmt %s)\n", argv[i], line,
				       argv[i]);
				if (status == 0)
					status = 1;
			} else {
				bool touched;
				if (write_replacing(argv[i], out, &touched) != 0) {
					fprintf(stderr, "thothc: cannot write '%s' (%s): %s\n", argv[i],
						touched ? "it may be partly written" : "left as it was",
						strerror(errno));
					status = 2;
				}
			}
		}
		free(out);
		if (f)
			free((char *)f->source);
		tidl_program_free(prog);
	}
	return status;
}

static int cmd_lint(int argc, char **argv)
{
	if (argc < 3)
		return bad_usage("lint needs at least one .tidl file");
	int status = 0, total = 0;
	for (int i = 2; i < argc; i++) {
		tidl_program_t *prog = tidl_program_new(), *findings = tidl_program_new();
		tidl_file_t *file;
		if (!prog || !findings)
			return 2;
		if (tidl_program_load(prog, argv[i], &file) != 0) {
			tidl_program_print_diags(prog, stderr);
			status = 2;
		} else {
			int n = thothc_lint(file, findings);
			tidl_program_print_diags(findings, stderr);
			total += n;
			if (n && status == 0)
				status = 1;
		}
		tidl_program_free(findings);
		tidl_program_free(prog);
	}
	if (total)
		fprintf(stderr, "thothc: %d lint finding%s\n", total, total == 1 ? "" : "s");
	return status;
}

/* --help or -h among options only: no file after the command (gen's
 * option values are no files). */
static bool help_alone(int argc, char **argv)
{
	bool help = false;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			help = true;
		else if (strcmp(argv[1], "gen") == 0 && (strcmp(argv[i], "-o") == 0 ||
			 strcmp(argv[i], "--lang") == 0 || strcmp(argv[i], "--c-prefix") == 0 ||
			 strcmp(argv[i], "--depfile") == 0))
			i++;
		else if (argv[i][0] != '-')
			return false;
	}
	return help;
}

int main(int argc, char **argv)
{
	/* Past a file size limit a write fails with EFBIG, said by name, and
	 * the file left as it was; not a SIGXFSZ that kills thothc mid-way. */
	signal(SIGXFSZ, SIG_IGN);
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
	/* `thothc CMD --help`: the usage when no file is named (`fmt --check
	 * --help` too); with files, --help is not a question: check and lint
	 * read it as a file (`check --help x.tidl` answered "wire-compatible"
	 * before) and gen and fmt refuse it, rather than exit 0 having done
	 * nothing.  A file named --help is ./--help. */
	if (strcmp(argv[1], "gen") == 0 || strcmp(argv[1], "check") == 0 ||
	    strcmp(argv[1], "fmt") == 0 || strcmp(argv[1], "lint") == 0) {
		if (help_alone(argc, argv)) {
			usage(stdout);
			return 0;
		}
	}
	if (strcmp(argv[1], "gen") == 0)
		return cmd_gen(argc, argv);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(argc, argv);
	if (strcmp(argv[1], "fmt") == 0)
		return cmd_fmt(argc, argv);
	if (strcmp(argv[1], "lint") == 0)
		return cmd_lint(argc, argv);
	return bad_usage("unknown command '%s'", argv[1]);
}
