/*
 * log.c - "2025-01-31T12:00:00.123Z thothd[42] warn: message" on stderr.
 * One fprintf per line, so lines from one process never interleave.
 * Lines a peer can trigger at will go through a token bucket
 * (thothd_log_limited): a flood of refused connections costs a few lines a
 * second, not a disk.  Control bytes are written as \xHH, whoever put
 * them in the message: names, versions, addresses and reasons a peer sent
 * reach many lines, and a newline in one forged a line of its own, an
 * escape drove the reader's terminal.  thothd's own messages hold none.
 * C1 controls too (a raw 0x80-0x9f, which some terminals take as CSI and
 * the like, and U+0080-U+009F as C2 80..C2 9F), and every byte of no valid
 * UTF-8 sequence; other UTF-8 passes as it is.  A truncated line is cut at
 * a code point's boundary and ends "...".  A backslash is written \\ (loose38): a peer's
 * text holding a literal "\x1b" read the same as an escaped ESC before.
 * Nothing is escaped before it gets here (federation's keys neither).
 * A character that is invisible or reorders the line -- a bidi control
 * (U+202E turned "svc\u{202e}gol.evil" into a line that read otherwise),
 * any format character (Cf), U+2028/U+2029, a Default_Ignorable one --
 * is written \u{XXXX} (hist46): a peer's name could make the line lie.
 * The escaping is thothctl's (tools/peertext, peertext_cut): one rule for
 * what thothctl prints and what thothd logs, and no copy of its Unicode
 * tables; a static library of the tools, never exported by libthoth.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "peertext.h"

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

static void log_line(thothd_log_level_t level, const char *fmt, va_list ap, uint64_t suppressed)
	__attribute__((format(printf, 2, 0)));
static void log_line(thothd_log_level_t level, const char *fmt, va_list ap, uint64_t suppressed)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	char raw[1024], text[4 * sizeof raw];
	int want = vsnprintf(raw, sizeof raw, fmt, ap);
	/* TEXT holds 4 bytes a byte: never cut by the escaping (\xHH is 4
	 * a byte, and so is \u{XXXX} of a 2-byte letter: U+00AD, U+061C,
	 * "\u{00ad}"; 2.7 of a 3-byte one, 2.25 of a 4-byte one).  A
	 * line longer than RAW ends "..." after its last whole letter, as
	 * libthoth's do: cut silently, it looked whole. */
	peertext_cut(text, sizeof text, raw, strlen(raw), want >= (int)sizeof raw);
	char more[64] = "";
	if (suppressed)
		snprintf(more, sizeof more, " (%llu similar lines suppressed)",
			 (unsigned long long)suppressed);
	fprintf(stderr, "%s.%03ldZ thothd[%d] %s: %s%s\n", when, ts.tv_nsec / 1000000L, (int)getpid(),
		level_names[level], text, more);
}

void thothd_log(thothd_log_level_t level, const char *fmt, ...)
{
	if (!thothd_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line(level, fmt, ap, 0);
	va_end(ap);
}

/* LIMIT's tokens brought up to NOW (a bucket never used starts full). */
static void limit_refill(thothd_log_limit_t *limit, uint64_t now)
{
	if (!limit->last_ns)
		limit->tokens = limit->burst;
	else if (now > limit->last_ns)
		limit->tokens += (double)(now - limit->last_ns) * 1e-9 * limit->per_second;
	if (limit->tokens > limit->burst)
		limit->tokens = limit->burst;
	limit->last_ns = now;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One line against LIMIT and, where ALL is not NULL, against ALL too:
 * 0 logged, 1 held back by LIMIT, 2 by ALL. */
static int log_limited_v(thothd_log_limit_t *limit, thothd_log_limit_t *all, thothd_log_level_t level,
			 const char *fmt, va_list ap)
{
	if (!thothd_log_enabled(level))
		return 0;
	uint64_t now = mono_ns();
	limit_refill(limit, now);
	if (all)
		limit_refill(all, now);
	if (limit->tokens < 1.0 || (all && all->tokens < 1.0)) {
		/* Counted against the source's own limit either way, so that
		 * its next line logged says how many of its lines were not. */
		limit->suppressed++;
		limit->suppressed_total++;
		if (limit->tokens < 1.0)
			return 1;
		all->suppressed_total++;
		return 2;
	}
	limit->tokens -= 1.0;
	if (all)
		all->tokens -= 1.0;
	log_line(level, fmt, ap, limit->suppressed);
	limit->suppressed = 0;
	return 0;
}

void thothd_log_limited(thothd_log_limit_t *limit, thothd_log_level_t level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_limited_v(limit, NULL, level, fmt, ap);
	va_end(ap);
}

int thothd_log_limited_both(thothd_log_limit_t *limit, thothd_log_limit_t *all, thothd_log_level_t level,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = log_limited_v(limit, all, level, fmt, ap);
	va_end(ap);
	return r;
}

bool thothd_log_limit_flush(thothd_log_limit_t *limit, thothd_log_level_t level, const char *what)
{
	if (!limit->suppressed || !thothd_log_enabled(level))
		return false;
	thothd_log(level, "%s: %llu similar line%s suppressed since the last one logged", what,
		   (unsigned long long)limit->suppressed, limit->suppressed == 1 ? "" : "s");
	limit->suppressed = 0;
	return true;
}
