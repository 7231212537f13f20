/*
 * thoth/error.h - the one error enum of ThothOS.
 *
 * Every public function returns int: 0 on success or a negative THOTH_E_*
 * code.  thoth_strerror() says what a code means, thoth_errname() names it
 * ("THOTH_E_IO").  Libraries never print; callers decide what to tell the
 * user.
 *
 * THOTH_ERROR_MAP is the single table (code, value, message) from which the
 * enum, the names and the messages are all generated, in the style of
 * libuv's UV_ERRNO_MAP.  Codes are grouped: argument/resource errors, wire
 * decode errors (the verifier's verdicts: each says exactly what is wrong
 * with the bytes), protocol/contract errors, transport errors.  New codes
 * are appended at the end of their group's range; values never change once
 * released, because they travel on the wire (the status of an error
 * response, docs/WIRE.md) and tests/error pins every one.
 *
 * THOTH_E_IO means a system call failed.  Where the library returns it, it
 * also records which call and errno for the calling thread:
 * thoth_last_errno() gives the errno and thoth_last_error() the whole
 * record, e.g. "listen /run/thoth/x.sock: EADDRINUSE (Address already in
 * use)".
 */
#ifndef THOTH_ERROR_H
#define THOTH_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message): THOTH_##NAME = value. */
#define THOTH_ERROR_MAP(X)                                                                    \
	X(OK,                0,   "success")                                                   \
	/* arguments and resources: -1 .. -19 */                                               \
	X(E_INVAL,          -1,   "invalid argument")                                          \
	X(E_NOMEM,          -2,   "out of memory")                                             \
	X(E_NO_SPACE,       -3,   "buffer too small")                                          \
	X(E_LIMIT,          -4,   "limit exceeded")                                            \
	X(E_NOT_FOUND,      -5,   "not found")                                                 \
	X(E_EXISTS,         -6,   "already exists")                                            \
	X(E_PERM,           -7,   "permission denied")                                         \
	X(E_IO,             -8,   "system call failed")                                        \
	X(E_AGAIN,          -9,   "would block (ring full or pool exhausted)")                 \
	X(E_TIMEDOUT,       -10,  "timed out")                                                 \
	X(E_BUSY,           -11,  "resource busy")                                             \
	/* wire decode (verifier verdicts): -20 .. -39 */                                      \
	X(E_TRUNCATED,      -20,  "message truncated")                                         \
	X(E_BAD_MAGIC,      -21,  "bad magic: not a thoth message")                            \
	X(E_BAD_LENGTH,     -22,  "offset or length outside the message")                      \
	X(E_BAD_ALIGN,      -23,  "misaligned out-of-line object")                             \
	X(E_BAD_UTF8,       -24,  "string is not valid UTF-8")                                 \
	X(E_BAD_ENUM,       -25,  "unknown value for a strict enum")                           \
	X(E_BAD_BOOL,       -26,  "bool is neither 0 nor 1")                                   \
	X(E_TOO_DEEP,       -27,  "nesting too deep")                                          \
	X(E_BAD_FLAGS,      -28,  "inconsistent header flags")                                 \
	X(E_BAD_PRESENCE,   -29,  "optional presence byte is neither 0 nor 1")                 \
	X(E_TOO_LARGE,      -30,  "message too large")                                         \
	X(E_ALIASED,        -31,  "out-of-line objects overlap")                               \
	X(E_BAD_NUL,        -32,  "string holds a NUL byte or lacks its terminator")           \
	/* protocol and contract: -40 .. -59 */                                                \
	X(E_BAD_VERSION,    -40,  "incompatible schema major version")                         \
	X(E_NO_FEATURE,     -41,  "required feature not negotiated")                           \
	X(E_UNKNOWN_METHOD, -42,  "unknown method ordinal")                                    \
	X(E_UNKNOWN_IFACE,  -43,  "unknown interface")                                         \
	X(E_CONTRACT,       -44,  "contract check failed")                                     \
	X(E_PROTOCOL,       -45,  "protocol violation by peer")                                \
	X(E_REMOTE,         -46,  "peer returned an application error")                        \
	/* transport: -60 .. -79 */                                                            \
	X(E_PEER_GONE,      -60,  "peer gone")                                                 \
	X(E_CLOSED,         -61,  "closed")                                                    \
	X(E_CORRUPT,        -62,  "shared memory corrupt")                                     \
	X(E_NOT_RUNNING,    -63,  "not running (nothing listens at its socket)")

enum thoth_error {
#define THOTH_ERROR_ENUM_(name, value, msg) THOTH_##name = value,
	THOTH_ERROR_MAP(THOTH_ERROR_ENUM_)
#undef THOTH_ERROR_ENUM_
};

/* A short, stable, human-readable message for a THOTH_E_* code (never NULL). */
const char *thoth_strerror(int err);

/* The code's name, "THOTH_E_IO" ("THOTH_OK" for 0), or "THOTH_E_UNKNOWN"
 * for a value that is not a code (never NULL). */
const char *thoth_errname(int err);

/* The last failed system call behind a THOTH_E_IO on this thread. */
typedef struct thoth_error_info {
	int code;               /* the THOTH_E_* it was returned as; 0: none recorded */
	int sys_errno;          /* errno of the call */
	char what[160];         /* the call and its object: "listen /run/thoth/x.sock";
	                         * a longer one is cut to at most 156 bytes (never
	                         * inside a UTF-8 character) and "..." */
} thoth_error_info_t;

/*
 * Record that a system call failed with SYS_ERRNO (WHAT: printf format
 * naming the call and its object) for this thread; returns THOTH_E_IO, so
 * a failure site reads `return thoth_error_io(errno, "listen %s", path);`.
 */
int thoth_error_io(int sys_errno, const char *what_fmt, ...) __attribute__((format(printf, 2, 3)));

/* errno of this thread's last recorded failure (0 if none). */
int thoth_last_errno(void);

/* This thread's last recorded failure (code 0 if none); valid until the
 * thread's next failure. */
const thoth_error_info_t *thoth_last_error(void);

/*
 * ERR explained into BUF: thoth_strerror(ERR), and for THOTH_E_IO with a
 * record on this thread, the record: "system call failed: listen
 * /run/x.sock: EADDRINUSE (Address already in use)".  Returns BUF.
 */
const char *thoth_strerror_r(int err, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
