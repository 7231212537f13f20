/*
 * log_internal.h - how libthoth's modules hand a message to the program's
 * log handler (include/thoth/log.h).  Internal: thoth__ prefix.
 */
#ifndef THOTH_IPC_LOG_INTERNAL_H
#define THOTH_IPC_LOG_INTERNAL_H

#include "thoth/log.h"

/* Internal to libthoth: never exported from libthoth.so (the version
 * script exports thoth_*, which these names would match). */
#ifndef THOTH__HIDDEN
#define THOTH__HIDDEN __attribute__((visibility("hidden")))
#endif

/* The longest message the handler gets, NUL included: a longer one is
 * cut and ends with "..." (thoth__log).  A caller whose text holds
 * escapes (a peer's words, why.h) fits its line to this itself, cutting
 * between escapes (thoth__why_text_cut). */
#define THOTH__LOG_LINE_MAX 512

/* Format and pass to the handler, if one is set and LEVEL passes its
 * filter (cheap when not: nothing is formatted). */
THOTH__HIDDEN
void thoth__log(thoth_log_level_t level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
