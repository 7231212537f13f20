/*
 * log_internal.h - how libthoth's modules hand a message to the program's
 * log handler (include/thoth/log.h).  Internal: thoth__ prefix.
 */
#ifndef THOTH_IPC_LOG_INTERNAL_H
#define THOTH_IPC_LOG_INTERNAL_H

#include "thoth/log.h"

/* Format and pass to the handler, if one is set and LEVEL passes its
 * filter (cheap when not: nothing is formatted). */
void thoth__log(thoth_log_level_t level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
