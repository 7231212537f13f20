/* gen_c.h - the C back end of thothc. */
#ifndef THOTHC_GEN_C_H
#define THOTHC_GEN_C_H

#include <stdio.h>
#include "ast.h"

/*
 * Write OUTDIR/<base>.thoth.h and OUTDIR/<base>.thoth.c for FILE, where
 * <base> is the file name without ".tidl".  Errors (cannot create files) are
 * reported on ERR; returns 0 or -1.
 */
int thothc_gen_c(const tidl_file_t *file, const char *outdir, FILE *err);

/*
 * The same, with the C identifier prefix of FILE's own declarations set to
 * C_PREFIX instead of the one derived from its package.  Lets two versions of
 * one schema be linked side by side (the version-matrix tests); the package,
 * interface ids and wire bytes are unchanged.
 */
int thothc_gen_c_prefixed(const tidl_file_t *file, const char *outdir, const char *c_prefix,
			  FILE *err);

/* What thothc_gen_c writes, in memory instead (the fuzzer; no file is
 * touched): BASE is the name the files would have, <base>.thoth.{h,c}. */
typedef struct thothc_gen_out {
	char base[512];         /* gen_c.c CNAME_MAX */
	char *h, *c;                    /* malloc'd, not NUL-terminated when empty */
	size_t h_len, c_len;
} thothc_gen_out_t;

/* -1: names of the schema make one C name (refused as thothc_gen_c does,
 * counted, not printed). */
int thothc_gen_c_mem(const tidl_file_t *file, thothc_gen_out_t *out);
void thothc_gen_out_free(thothc_gen_out_t *out);

#endif
