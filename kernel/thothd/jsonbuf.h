/*
 * jsonbuf.h - a growing text buffer for thothd's JSON views (the dashboard's
 * /probes.json and /serve.json).
 *
 * Appends never fail one by one: an allocation or format failure sets
 * FAILED and later appends do nothing, so a view is written straight
 * through and checked once at the end.
 */
#ifndef THOTHD_JSONBUF_H
#define THOTHD_JSONBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct thothd_jbuf {
	char *p;
	size_t len, cap;
	bool failed;
} thothd_jbuf_t;

/* Append printf-style. */
void thothd_jput(thothd_jbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append S as a JSON string: quotes and backslashes escaped, control bytes
 * as \u00XX, bytes above 0x7e as '?' (the views show ASCII). */
void thothd_jstr(thothd_jbuf_t *b, const char *s);

#endif
