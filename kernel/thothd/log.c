/*
 * log.c - "2025-01-31T12:00:00.123Z thothd[42] warn: message" on stderr.
 * One fprintf per line, so lines from one process never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static thothd_log_level_t current_level = THOTHD_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void thothd_log_set_level(thothd_log_level_t level)
{
	current_level = level;
}

bool thothd_log_enabled(thothd_log_level_t level)
{
	return level <= current_level;
}

int thothd_log_parse_level(const char *name, thothd_log_level_t *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (thothd_log_level_t)i;
			return 0;
		}
	}
	return -1;
}

void thothd_log(thothd_log_level_t level, const char *fmt, ...)
{
	if (!thothd_log_enabled(level))
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ldZ thothd[%d] %s: %s\n", when, ts.tv_nsec / 1000000L, (int)getpid(),
		level_names[level], text);
}
