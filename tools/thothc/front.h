/*
 * front.h - what the parts of the .tidl front end share (thothc internal;
 * users of the front end include ast.h).
 *
 *   program.c  the program: arena, diagnostics, type names
 *   lexer.c    bytes -> tokens (comments skipped)
 *   parser.c   tokens -> the syntax tree of one file (docs/IDL.md grammar)
 *   sema.c     the checks of docs/IDL.md on one parsed file
 *   load.c     files and imports: read, parse, load imports, check
 *
 * Robustness rules, because the fuzzer feeds this arbitrary bytes: every
 * read of the source is bounds-checked, recursion is limited (type nesting
 * <= 16, imports <= 64 deep), files are <= 4 MiB, and after the first syntax
 * error in a file parsing of that file stops (semantic errors are all
 * collected).  All memory comes from the program's arena.
 */
#ifndef THOTHC_FRONT_H
#define THOTHC_FRONT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ast.h"

#define MAX_FILE_SIZE  (4u << 20)
#define MAX_TYPE_DEPTH 16
#define MAX_IMPORT_DEPTH 64
#define MAX_NAME_LEN   64      /* identifiers; keeps generated C names bounded */
#define MAX_PACKAGE_LEN 128
#define MAX_MEMBERS    4096    /* declarations per file, members per declaration: keeps
				* the quadratic duplicate checks fast on any input */
#define MAX_DIAGS      200     /* diagnostics kept; later ones are counted, not stored */
#define MAX_PATH_LEN   4096    /* an import's path once joined to its importer's folder */

typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char data[];
} chunk_t;

struct tidl_program {
	chunk_t *chunks;
	tidl_diag_t *diags;
	size_t n_diags, cap_diags, n_errors;
	tidl_file_t **files;
	size_t n_files, cap_files;
	tidl_file_t **loading;          /* import stack, for cycle reports */
	size_t n_loading;
	struct mem_file *mem;           /* tidl_program_add_memory_file: read instead of the disk */
	size_t n_mem;
};

struct mem_file {
	const char *path, *text;        /* copies in the arena */
	size_t len;
};

/* Zeroed memory from the program's arena (never NULL: aborts when out of memory). */
void *tidl_palloc(tidl_program_t *p, size_t n);
char *tidl_pstrndup(tidl_program_t *p, const char *s, size_t n);

/* Growable arrays in the arena: push copies the element. */
typedef struct vec {
	void *items;
	size_t n, cap, size;
} vec_t;

void *tidl_vec_push(tidl_program_t *p, vec_t *v);

/* A diagnostic at LOC; F (or NULL) is the file LOC points into. */
void tidl_diag(tidl_program_t *p, const tidl_file_t *f, tidl_severity_t sev, tidl_loc_t loc,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- hint.c ---- */

/* The word of WORDS (NULL-ended) that S (LEN bytes) is probably a typo of
 * (one edit, two in a word of 6 letters or more, case aside), or NULL. */
const char *tidl_near_word(const char *s, size_t len, const char *const *words);

/* For an unknown type NAME: the built-in type it means ("uint32": "u32",
 * "strng": "string") or the keyword it misspells ("optinal"), or NULL. */
const char *tidl_builtin_hint(const char *name);

/* ---- load.c ---- */

/* REL (an import as written) relative to the folder of IMPORTER, with "."
 * and empty components dropped and "x/.." folded as written (lexically):
 * one spelling per file, for the memory files.  A leading ".." of a
 * relative path stays; "/.." is "/".  NULL if longer than MAX_PATH_LEN.
 * On disk the loader folds "x/.." only where x is a real folder (not a
 * symlink, not missing), so the path still names what the kernel opens. */
char *tidl_import_path(tidl_program_t *p, const char *importer, const char *rel);

/* ---- lexer.c ---- */

typedef enum tok_kind {
	T_EOF, T_IDENT, T_INT, T_VERSION, T_STRING, T_PUNCT, T_ARROW, T_BAD,
	T_COMMENT,                      /* only with keep_comments (the formatter) */
} tok_kind_t;

typedef struct tok {
	tok_kind_t kind;
	const char *text;
	size_t len;
	char punct;
	uint64_t value;                 /* T_INT */
	bool overflow;
	tidl_version_t version;         /* T_VERSION */
	tidl_loc_t loc;
} tok_t;

typedef struct parser {
	tidl_program_t *prog;
	tidl_file_t *file;
	const char *s, *end, *cur;
	uint32_t line, col;
	tok_t tok;
	tidl_loc_t prev_end;            /* just after the token before tok */
	bool failed;
	bool keep_comments;             /* lex comments as T_COMMENT tokens */
	/* The declaration whose body is open ('{' read, '}' not yet): an end
	 * of file inside it says where it opened, not only "found end of file" */
	const char *open_kind, *open_name;
	uint32_t open_line;
} parser_t;

/* The next token of PS into PS->tok (T_EOF at the end, T_BAD with a reason). */
void tidl_lex(parser_t *ps);

/* ---- parser.c, sema.c ---- */

/* Parse PS's whole file into PS->file (syntax errors: ps->failed). */
void tidl_parse_file(parser_t *ps);
/* Check F (parsed, imports loaded), resolving its type references. */
void tidl_sema_file(tidl_program_t *p, tidl_file_t *f);

#endif
