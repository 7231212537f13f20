/*
 * error.c - messages and names of the THOTH_E_* codes (both generated from
 * THOTH_ERROR_MAP) and the per-thread record of the last failed system call.
 */
#define _GNU_SOURCE             /* strerrorname_np */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "thoth/error.h"
#include "why.h"

const char *thoth_strerror(int err)
{
	switch (err) {
#define THOTH_ERROR_MSG_(name, value, msg) case THOTH_##name: return msg;
	THOTH_ERROR_MAP(THOTH_ERROR_MSG_)
#undef THOTH_ERROR_MSG_
	}
	return "unknown error";
}

const char *thoth_errname(int err)
{
	switch (err) {
#define THOTH_ERROR_NAME_(name, value, msg) case THOTH_##name: return "THOTH_" #name;
	THOTH_ERROR_MAP(THOTH_ERROR_NAME_)
#undef THOTH_ERROR_NAME_
	}
	return "THOTH_E_UNKNOWN";
}

void thoth__vwhy(char *why, size_t len, const char *fmt, va_list ap)
{
	if (why && len)
		vsnprintf(why, len, fmt, ap);
}

void thoth__why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	thoth__vwhy(why, len, fmt, ap);
	va_end(ap);
}

int thoth__why_err(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	thoth__vwhy(why, len, fmt, ap);
	va_end(ap);
	return err;
}

/* The length of the valid UTF-8 sequence at P (1 for ASCII), or 0 when P
 * starts none (a stray continuation, a bad lead, an overlong form, a
 * surrogate, past U+10FFFF, or cut short by LEFT). */
/* Per thread, like errno: a failure on one thread never overwrites
 * another's explanation. */
static _Thread_local thoth_error_info_t last;

int thoth_error_io(int sys_errno, const char *what_fmt, ...)
{
	last.code = THOTH_E_IO;
	last.sys_errno = sys_errno;
	va_list ap;
	va_start(ap, what_fmt);
	int n = vsnprintf(last.what, sizeof last.what, what_fmt, ap);
	va_end(ap);
	/* A long path (a deep runtime dir, a long TMPDIR) is cut, visibly, and
	 * not inside a UTF-8 character (a name in Greek: half a letter before
	 * the "..." is no text a terminal or a JSON reader takes). */
	if (n >= (int)sizeof last.what) {
		size_t cut = sizeof last.what - 4;
		while (cut > 0 && ((unsigned char)last.what[cut] & 0xC0) == 0x80)
			cut--;
		memcpy(last.what + cut, "...", 4);
	}
	return THOTH_E_IO;
}

int thoth_last_errno(void)
{
	return last.code ? last.sys_errno : 0;
}

const thoth_error_info_t *thoth_last_error(void)
{
	return &last;
}

const char *thoth_strerror_r(int err, char *buf, size_t len)
{
	if (!buf || !len)
		return buf;
	if (err != THOTH_E_IO || last.code != THOTH_E_IO) {
		snprintf(buf, len, "%s", thoth_strerror(err));
		return buf;
	}
	const char *name = strerrorname_np(last.sys_errno);
	char msg[128], num[32];
	if (!name) {
		snprintf(num, sizeof num, "errno %d", last.sys_errno);
		name = num;
	}
	/* the GNU strerror_r returns its message (maybe not in msg) */
	const char *text = strerror_r(last.sys_errno, msg, sizeof msg);
	snprintf(buf, len, "%s: %s: %s (%s)", thoth_strerror(err), last.what, name, text);
	return buf;
}
