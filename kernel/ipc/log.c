/*
 * log.c - the program's log handler for libthoth's diagnostics
 * (include/thoth/log.h).  Default: no handler, nothing is written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log_internal.h"
#include "why.h"

static thoth_log_fn handler;
static void *handler_arg;
static thoth_log_level_t handler_level = THOTH_LOG_ERROR;

void thoth_log_set_handler(thoth_log_fn fn, void *arg, thoth_log_level_t max_level)
{
	handler = fn;
	handler_arg = arg;
	handler_level = max_level;
}

void thoth_log_stderr(void *arg, thoth_log_level_t level, const char *component,
		      const char *message)
{
	(void)arg;
	(void)level;
	/* Only ever called because the program installed it. */
	fprintf(stderr, "thoth %s: %s\n", component, message);
}

void thoth__log(thoth_log_level_t level, const char *component, const char *fmt, ...)
{
	thoth_log_fn fn = handler;
	if (!fn || level > handler_level)
		return;
	char line[THOTH__LOG_LINE_MAX];
	va_list ap;
	va_start(ap, fmt);
	int want = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* Cut: said ("..."), or a reader took the line for whole; between
	 * whole letters and whole escapes (a caller's text escaped by
	 * thoth__why_text): a line ending "\x1..." read as a byte 0x01. */
	if (want >= (int)sizeof line) {
		size_t keep = thoth__escaped_whole(line, sizeof line - sizeof "...");
		memcpy(line + keep, "...", sizeof "...");
	}
	fn(handler_arg, level, component, line);
}
