/*
 * canon.h - the canonical text of a schema: package, version and every
 * declaration (ordinals, types, values, names, @since, @requires, error
 * codes) of the file and, recursively, its imports, imports first.  The
 * schema hash is FNV-1a 64 over it (docs/WIRE.md); two files whose texts
 * differ while they claim one version refuse each other at the handshake
 * ("schema changed without a version bump"), which `thothc check` reports.
 */
#ifndef THOTHC_CANON_H
#define THOTHC_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "ast.h"

/* A growing text (thothc's own buffers: the canonical text, generated C);
 * sb_addf appends printf-style and aborts without memory. */
typedef struct strbuf {
	char *s;
	size_t len, cap;
} strbuf_t;

void sb_addf(strbuf_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The text a lattice of imports may make, at most (64 MiB). */
#define TIDL_CANON_LIMIT (64u << 20)

/* Bytes of schema source the text reads for F (a file once per path that
 * reaches it), saturating at LIMIT: at LIMIT, do not build the text. */
uint64_t tidl_canon_reach(const tidl_file_t *f, uint64_t limit);

/* F's canonical text, malloc'ed, NUL-terminated; its length in *LEN.
 * Aborts without memory (thothc's rule for its own buffers). */
char *tidl_canon_text(const tidl_file_t *f, size_t *len);

#endif
