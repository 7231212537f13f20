/*
 * log.h - thothd's log: one line per event on stderr, with a timestamp and
 * a level.  Only the daemon's own files log; the libraries it links never
 * print (they return THOTH_E_* codes and thothd says what happened).
 */
#ifndef THOTHD_LOG_H
#define THOTHD_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum thothd_log_level {
	THOTHD_LOG_ERROR = 0,
	THOTHD_LOG_WARN = 1,
	THOTHD_LOG_INFO = 2,
	THOTHD_LOG_DEBUG = 3,
} thothd_log_level_t;

void thothd_log_set_level(thothd_log_level_t level);
bool thothd_log_enabled(thothd_log_level_t level);
/* "error", "warn", "info", "debug": 0, or -1 for anything else. */
int thothd_log_parse_level(const char *name, thothd_log_level_t *out);

void thothd_log(thothd_log_level_t level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * A token bucket for a log line that a peer can make thothd repeat (a
 * refused connection, a dropped client): BURST lines at once, then at most
 * PER_SECOND; what is suppressed is counted and said on the next line that
 * passes.  Zero-initialise, then set burst and per_second.
 */
typedef struct thothd_log_limit {
	double per_second, burst;
	double tokens;
	uint64_t last_ns;               /* 0: never used (the bucket starts full) */
	uint64_t suppressed;             /* since the last line said so */
	uint64_t suppressed_total;       /* ever (a metric) */
} thothd_log_limit_t;

void thothd_log_limited(thothd_log_limit_t *limit, thothd_log_level_t level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As thothd_log_limited, under two limits: LIMIT (one source's) and ALL
 * (every source's together, a cap on their sum).  A line is written only
 * when both have a token, and then takes one of each; a line held back by
 * ALL leaves LIMIT's token (its source has not spent it) and is counted in
 * LIMIT's suppressed (said with that source's next line) and in ALL's
 * suppressed_total.  Returns 0 written (or the level is off), 1 held back
 * by LIMIT, 2 by ALL. */
int thothd_log_limited_both(thothd_log_limit_t *limit, thothd_log_limit_t *all, thothd_log_level_t level,
			    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The end of a burst: when LIMIT has lines suppressed that no line has
 * said yet (none passed since), one line "WHAT: N similar lines
 * suppressed" now, outside the bucket; returns whether it wrote one.
 * A caller arms a timer for it when a line is suppressed, so that a
 * flood's count is said when it ends, not at the next line, hours on. */
bool thothd_log_limit_flush(thothd_log_limit_t *limit, thothd_log_level_t level, const char *what);

#define thothd_error(...) thothd_log(THOTHD_LOG_ERROR, __VA_ARGS__)
#define thothd_warn(...) thothd_log(THOTHD_LOG_WARN, __VA_ARGS__)
#define thothd_info(...) thothd_log(THOTHD_LOG_INFO, __VA_ARGS__)
#define thothd_debug(...) thothd_log(THOTHD_LOG_DEBUG, __VA_ARGS__)

#endif
