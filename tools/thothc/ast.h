/*
 * ast.h - the checked syntax tree of a .tidl program (thothc internal).
 *
 * Produced by tidl_program_load() (load.c: lexer.c, parser.c, sema.c; see
 * front.h), consumed by the code generator (gen_c.c), the compatibility
 * checker (compat.c), the formatter and the linter.  Every node carries its source location so that diagnostics
 * can point at file:line:col.  All memory belongs to the program's arena
 * and is released by tidl_program_free().
 *
 * What sema guarantees once tidl_program_load() returns 0 (the generator
 * and checker rely on it and do not re-check):
 *   - every type reference is resolved (tidl_type_t.decl != NULL for
 *     TIDL_ENUM/TIDL_STRUCT), imports are acyclic;
 *   - struct field ordinals are >= 1 and unique among the struct's fields
 *     and reservations (gaps allowed); the fields and reserved arrays are
 *     each sorted by ordinal; method parameters and results are numbered
 *     by position (1..n, no gaps, no reservations);
 *   - method ordinals are unique within an interface and distinct from its
 *     reserved ordinals (gaps allowed); the methods array is sorted by ordinal;
 *   - enum values unique by name and by value, each fits the underlying type,
 *     none equal to a reserved value;
 *   - a reserved struct slot with a type has that type resolved;
 *   - feature bits unique and in 0..63; error codes unique and >= 1;
 *   - every @since is <= the file's version; every @requires names a
 *     feature of the same file;
 *   - names unique per scope; `optional` is only used on fields/params/results.
 */
#ifndef THOTHC_AST_H
#define THOTHC_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tidl_loc {
	const char *file;       /* path as given on the command line / import */
	uint32_t line, col;     /* 1-based */
} tidl_loc_t;

typedef struct tidl_version {
	uint16_t major, minor;
} tidl_version_t;

/* Compare versions: <0, 0, >0. */
static inline int tidl_version_cmp(tidl_version_t a, tidl_version_t b)
{
	if (a.major != b.major)
		return a.major < b.major ? -1 : 1;
	if (a.minor != b.minor)
		return a.minor < b.minor ? -1 : 1;
	return 0;
}

typedef enum tidl_kind {
	TIDL_BOOL, TIDL_U8, TIDL_U16, TIDL_U32, TIDL_U64,
	TIDL_I8, TIDL_I16, TIDL_I32, TIDL_I64, TIDL_F32, TIDL_F64,
	TIDL_STRING, TIDL_BYTES, TIDL_LIST, TIDL_ENUM, TIDL_STRUCT,
} tidl_kind_t;

struct tidl_decl;

typedef struct tidl_type {
	tidl_kind_t kind;
	struct tidl_type *elem;     /* TIDL_LIST: element type */
	const char *ref_name;       /* TIDL_ENUM/STRUCT: the name as written ("Locality", "pkg.X") */
	struct tidl_decl *decl;     /* TIDL_ENUM/STRUCT: resolved declaration */
	tidl_loc_t loc;
} tidl_type_t;

/* A struct field, a method parameter or a method result; also a struct's
 * reserved ordinal (then type is the retired field's type, which keeps its
 * slot on the wire, or NULL for a slot-less gap; name may be NULL). */
typedef struct tidl_field {
	uint32_t ordinal;           /* >= 1; parameters: their position */
	const char *name;
	tidl_type_t *type;
	bool optional;
	bool has_since;
	tidl_version_t since;       /* valid when has_since */
	tidl_loc_t loc;             /* location of the ordinal (or of the name for params) */
	bool bad_ordinal;           /* over 32 bits: reported, in no other check */
} tidl_field_t;

/* A reserved method ordinal or enum value: "reserved 4, 7;". */
typedef struct tidl_reserved {
	uint64_t value;             /* method ordinal, or enum value (as the enum stores it) */
	tidl_loc_t loc;
	bool bad_ordinal;           /* over 32 bits: reported, in no other check */
} tidl_reserved_t;

typedef struct tidl_enum_value {
	const char *name;
	uint64_t value;             /* fits the enum's underlying type */
	bool has_since;
	tidl_version_t since;
	tidl_loc_t loc;
} tidl_enum_value_t;

typedef struct tidl_method {
	uint32_t ordinal;           /* >= 1, unique in the interface */
	bool bad_ordinal;           /* over 32 bits: reported, in no other check */
	const char *name;
	bool oneway;                /* oneway methods have no results and no errors */
	tidl_field_t *params;   size_t n_params;
	tidl_field_t *results;  size_t n_results;
	struct tidl_decl **errors; size_t n_errors;   /* TIDL_DECL_ERROR decls */
	const char **error_names;   /* as written, parallel to errors */
	bool has_since;
	tidl_version_t since;
	struct tidl_decl *requires; /* TIDL_DECL_FEATURE or NULL */
	const char *requires_name;
	bool idempotent;            /* @idempotent: a pool may retry it elsewhere */
	tidl_loc_t loc;
} tidl_method_t;

typedef enum tidl_decl_kind {
	TIDL_DECL_FEATURE, TIDL_DECL_ENUM, TIDL_DECL_STRUCT,
	TIDL_DECL_INTERFACE, TIDL_DECL_ERROR,
} tidl_decl_kind_t;

typedef struct tidl_decl {
	tidl_decl_kind_t kind;
	const char *name;
	struct tidl_file *file;     /* the file that declares it */
	bool has_since;
	tidl_version_t since;
	tidl_loc_t loc;
	union {
		struct {                        /* feature NAME = BIT [@since]; */
			uint32_t bit;           /* 0..63 */
		} feature;
		struct {                        /* [strict] enum NAME : UTYPE { ... } */
			tidl_kind_t underlying; /* TIDL_U8..TIDL_I64 */
			bool strict;            /* unknown values rejected by decoders */
			tidl_enum_value_t *values; size_t n_values;
			tidl_reserved_t *reserved; size_t n_reserved;
		} enum_;
		struct {                        /* struct NAME { N: type name; ... } */
			tidl_field_t *fields; size_t n_fields;   /* sorted by ordinal, gaps allowed */
			tidl_field_t *reserved; size_t n_reserved; /* "reserved N[: type];", sorted */
		} struct_;
		struct {                        /* interface NAME { N: method ...; } */
			tidl_method_t *methods; size_t n_methods; /* sorted by ordinal */
			tidl_reserved_t *reserved; size_t n_reserved;
			const char *shard_algo; /* @sharded(NAME) or NULL */
		} iface;
		struct {                        /* error NAME = CODE; */
			uint32_t code;          /* >= 1 */
		} error;
	} u;
} tidl_decl_t;

typedef struct tidl_import {
	const char *path;           /* as written */
	struct tidl_file *file;     /* resolved */
	tidl_loc_t loc;
} tidl_import_t;

typedef struct tidl_file {
	const char *path;           /* as opened */
	const char *package;        /* "thoth.registry" */
	tidl_loc_t package_loc;     /* the word "package" */
	tidl_version_t version;
	tidl_loc_t version_loc;
	tidl_import_t *imports; size_t n_imports;
	tidl_decl_t **decls;    size_t n_decls;   /* in source order */
	const char *source;         /* whole file text, NUL-terminated (for diagnostics, fmt) */
	size_t source_len;
	bool failed;                /* it or an import of it had errors: never checked against */
	bool on_disk;               /* dev, ino: the file's identity (a symlink or another
				     * spelling of its path is the same file) */
	unsigned long long dev, ino;
} tidl_file_t;

/* ---- diagnostics ---------------------------------------------------- */

typedef enum tidl_severity { TIDL_ERROR, TIDL_WARNING, TIDL_NOTE } tidl_severity_t;

typedef struct tidl_diag {
	tidl_severity_t severity;
	tidl_loc_t loc;
	char *message;              /* "expected ';' after field" */
	const char *line_text;      /* the source line (no newline) or NULL */
	size_t line_len;
} tidl_diag_t;

/* ---- the program: a set of loaded files ------------------------------ */

typedef struct tidl_program tidl_program_t;

tidl_program_t *tidl_program_new(void);
void tidl_program_free(tidl_program_t *prog);

/*
 * Load, parse and check PATH and (recursively) its imports.  Import paths
 * are relative to the importing file's directory.  On success *out is the
 * root file and 0 is returned; on failure a negative value is returned and
 * the diagnostics say why (never a crash, whatever the input).
 */
int tidl_program_load(tidl_program_t *prog, const char *path, tidl_file_t **out);

/* Same, but from a memory buffer (fuzzing, tests); imports resolve relative
 * to the current directory. */
int tidl_program_load_buffer(tidl_program_t *prog, const char *name,
			     const char *text, size_t len, tidl_file_t **out);

/* Make PATH, with TEXT, a file the loader reads from memory (the fuzzer:
 * a set of files that import each other).  Once one is added, imports are
 * looked up among these only, by the path the loader computes (relative to
 * the importer's folder, as on disk), and never read from the disk. */
void tidl_program_add_memory_file(tidl_program_t *prog, const char *path, const char *text, size_t len);

/* The files PROG has read (each once: roots and their imports, through
 * imports), in the order they were opened: `thothc gen --depfile`. */
size_t tidl_program_file_count(const tidl_program_t *prog);
const tidl_file_t *tidl_program_file(const tidl_program_t *prog, size_t i);

size_t tidl_program_diag_count(const tidl_program_t *prog);
const tidl_diag_t *tidl_program_diag(const tidl_program_t *prog, size_t i);
size_t tidl_program_error_count(const tidl_program_t *prog);

/*
 * Add a diagnostic (the compatibility checker reports through this).  FILE,
 * when not NULL, is the file LOC points into; its source line is kept for
 * printing, so FILE must outlive PROG's printing.
 */
void tidl_program_add_diag(tidl_program_t *prog, const tidl_file_t *file, tidl_severity_t sev,
			   tidl_loc_t loc, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Print all diagnostics like a compiler: "file:line:col: error: msg\n  line\n  ^" */
#include <stdio.h>
void tidl_program_print_diags(const tidl_program_t *prog, FILE *out);

/* Look up a type declaration by name as seen from FILE (tests, tools). */
tidl_decl_t *tidl_file_find_decl(tidl_file_t *file, const char *name);

/* Human names ("u32", "list<string>") into buf; returns buf. */
const char *tidl_type_name(const tidl_type_t *type, char *buf, size_t len);
const char *tidl_kind_name(tidl_kind_t kind);

#endif
