/*
 * why.h - the one formatter of a caller's `why` buffer: the text that
 * names what was wrong when a libthoth call fails (STYLE.md: bad input
 * gets a clear error naming the problem).  Every module wrote its own
 * five-line copy of it (say(), put_why(), fail(), ...); they all call
 * these now.  Internal: thoth__ prefix, hidden from libthoth.so.
 */
#ifndef THOTH_IPC_WHY_H
#define THOTH_IPC_WHY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#ifndef THOTH__HIDDEN
#define THOTH__HIDDEN __attribute__((visibility("hidden")))
#endif

/* Format into WHY (LEN bytes, always terminated); nothing when WHY is NULL
 * or LEN is 0 (the caller did not ask).  Declared printf-like: a caller's
 * format is checked, and clang's -Wformat-nonliteral (make fuzz, -Werror)
 * accepts formats passed through it. */
THOTH__HIDDEN
void thoth__why(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same, returning ERR: `return thoth__why_err(why, len, THOTH_E_INVAL, ...)`. */
THOTH__HIDDEN
int thoth__why_err(char *why, size_t len, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

THOTH__HIDDEN
void thoth__vwhy(char *why, size_t len, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* TEXT (LEN bytes) a peer wrote (a refusal's reason, a remote error's
 * message), made safe to print into OUT (CAP bytes, always terminated,
 * whole units only): control characters (C0 such as ESC, CR and LF, DEL,
 * C1 raw or as UTF-8) and bytes of no valid UTF-8 sequence written \xHH,
 * a backslash \\; other text as it came.  A reason passed through
 * unfiltered put a peer's terminal escapes and forged lines into
 * thothctl's output and its callers' logs.  Returns the length written. */
THOTH__HIDDEN
size_t thoth__why_text(char *out, size_t cap, const char *text, size_t len);

/* The same for a line a reader must tell whole from cut (a log line):
 * where TEXT does not fit, or CUT says it was cut already (a vsnprintf
 * that ran out of room), OUT ends with "..." after the last whole unit:
 * never half an escape (a "\x1" that reads as a byte of its own), and
 * a cut TEXT's last, half letter dropped rather than written as \xHH
 * bytes.  Cut silently, a line ended mid-escape and looked whole.
 * CAP under 5: thoth__why_text's silent cut. */
THOTH__HIDDEN
size_t thoth__why_text_cut(char *out, size_t cap, const char *text, size_t len, bool cut);

/* LEN cut back to the end of the last whole UTF-8 sequence of S: what a
 * truncating vsnprintf left ends at a code point's boundary. */
THOTH__HIDDEN
size_t thoth__utf8_whole(const char *s, size_t len);

/* LEN cut back to the end of the last whole unit of S, a text that may
 * hold thoth__why_text's escapes: never inside a "\\xHH" or a "\\\\"
 * (a "\\x1" reads as a byte of its own), nor inside a UTF-8 letter.  For
 * a line formatted from escaped text and cut to its room (thoth__log). */
THOTH__HIDDEN
size_t thoth__escaped_whole(const char *s, size_t len);

#endif
