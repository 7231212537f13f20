/*
 * thoth/error.h - the one error enum of ThothOS.
 *
 * Every public function returns int: 0 on success or a negative THOTH_E_*
 * code.  thoth_strerror() names each one.  Libraries never print; callers
 * decide what to tell the user.
 *
 * Codes are grouped: argument/resource errors, wire decode errors (the
 * verifier's verdicts: each says exactly what is wrong with the bytes),
 * protocol/contract errors, transport errors.  New codes are appended at the
 * end of their group's range; values never change once released because they
 * travel in error responses.
 */
#ifndef THOTH_ERROR_H
#define THOTH_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum thoth_error {
	THOTH_OK = 0,

	/* arguments and resources: -1 .. -19 */
	THOTH_E_INVAL          = -1,  /* invalid argument */
	THOTH_E_NOMEM          = -2,  /* out of memory */
	THOTH_E_NO_SPACE       = -3,  /* output buffer or arena too small */
	THOTH_E_LIMIT          = -4,  /* a configured limit was exceeded */
	THOTH_E_NOT_FOUND      = -5,  /* no such entry */
	THOTH_E_EXISTS         = -6,  /* entry already exists */
	THOTH_E_PERM           = -7,  /* caller is not allowed to do this */
	THOTH_E_IO             = -8,  /* a system call failed (errno kept by caller) */
	THOTH_E_AGAIN          = -9,  /* would block: ring full, pool empty */
	THOTH_E_TIMEDOUT       = -10, /* deadline passed */
	THOTH_E_BUSY           = -11, /* resource in use */

	/* wire decode (verifier verdicts): -20 .. -39 */
	THOTH_E_TRUNCATED      = -20, /* fewer bytes than the header/lengths claim */
	THOTH_E_BAD_MAGIC      = -21, /* not a thoth message */
	THOTH_E_BAD_LENGTH     = -22, /* an offset/length points outside the message */
	THOTH_E_BAD_ALIGN      = -23, /* an out-of-line object is misaligned */
	THOTH_E_BAD_UTF8       = -24, /* a string is not valid UTF-8 */
	THOTH_E_BAD_ENUM       = -25, /* value not in a strict enum */
	THOTH_E_BAD_BOOL       = -26, /* bool byte other than 0 or 1 */
	THOTH_E_TOO_DEEP       = -27, /* nesting deeper than THOTH_WIRE_MAX_DEPTH */
	THOTH_E_BAD_FLAGS      = -28, /* header flags inconsistent */
	THOTH_E_BAD_PRESENCE   = -29, /* optional presence byte other than 0 or 1 */
	THOTH_E_TOO_LARGE      = -30, /* message larger than THOTH_WIRE_MAX_BODY */
	THOTH_E_ALIASED        = -31, /* out-of-line objects overlap (traversal limit hit) */
	THOTH_E_BAD_NUL        = -32, /* a string holds a NUL byte or misses its terminator */

	/* protocol and contract: -40 .. -59 */
	THOTH_E_BAD_VERSION    = -40, /* schema major version differs */
	THOTH_E_NO_FEATURE     = -41, /* method requires a feature not negotiated */
	THOTH_E_UNKNOWN_METHOD = -42, /* no such method ordinal */
	THOTH_E_UNKNOWN_IFACE  = -43, /* no such interface id */
	THOTH_E_CONTRACT       = -44, /* contract check failed */
	THOTH_E_PROTOCOL       = -45, /* peer broke the protocol */
	THOTH_E_REMOTE         = -46, /* the peer answered with an application error */

	/* transport: -60 .. -79 */
	THOTH_E_PEER_GONE      = -60, /* the peer died or closed the channel */
	THOTH_E_CLOSED         = -61, /* the channel/loop was closed locally */
	THOTH_E_CORRUPT        = -62, /* shared memory holds impossible values */
	THOTH_E_NOT_RUNNING    = -63, /* thothd is not running */
};

/* A short, stable, human-readable name for a THOTH_E_* code (never NULL). */
const char *thoth_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
