/* error.c - names for the THOTH_E_* codes. */
#include "thoth/error.h"

const char *thoth_strerror(int err)
{
	switch (err) {
	case THOTH_OK:               return "success";
	case THOTH_E_INVAL:          return "invalid argument";
	case THOTH_E_NOMEM:          return "out of memory";
	case THOTH_E_NO_SPACE:       return "buffer too small";
	case THOTH_E_LIMIT:          return "limit exceeded";
	case THOTH_E_NOT_FOUND:      return "not found";
	case THOTH_E_EXISTS:         return "already exists";
	case THOTH_E_PERM:           return "permission denied";
	case THOTH_E_IO:             return "system call failed";
	case THOTH_E_AGAIN:          return "would block (ring full or pool exhausted)";
	case THOTH_E_TIMEDOUT:       return "timed out";
	case THOTH_E_BUSY:           return "resource busy";
	case THOTH_E_TRUNCATED:      return "message truncated";
	case THOTH_E_BAD_MAGIC:      return "bad magic: not a thoth message";
	case THOTH_E_BAD_LENGTH:     return "offset or length outside the message";
	case THOTH_E_BAD_ALIGN:      return "misaligned out-of-line object";
	case THOTH_E_BAD_UTF8:       return "string is not valid UTF-8";
	case THOTH_E_BAD_ENUM:       return "unknown value for a strict enum";
	case THOTH_E_BAD_BOOL:       return "bool is neither 0 nor 1";
	case THOTH_E_TOO_DEEP:       return "nesting too deep";
	case THOTH_E_BAD_FLAGS:      return "inconsistent header flags";
	case THOTH_E_BAD_PRESENCE:   return "optional presence byte is neither 0 nor 1";
	case THOTH_E_TOO_LARGE:      return "message too large";
	case THOTH_E_ALIASED:        return "out-of-line objects overlap";
	case THOTH_E_BAD_NUL:        return "string holds a NUL byte or lacks its terminator";
	case THOTH_E_BAD_VERSION:    return "incompatible schema major version";
	case THOTH_E_NO_FEATURE:     return "required feature not negotiated";
	case THOTH_E_UNKNOWN_METHOD: return "unknown method ordinal";
	case THOTH_E_UNKNOWN_IFACE:  return "unknown interface";
	case THOTH_E_CONTRACT:       return "contract check failed";
	case THOTH_E_PROTOCOL:       return "protocol violation by peer";
	case THOTH_E_REMOTE:         return "peer returned an application error";
	case THOTH_E_PEER_GONE:      return "peer gone";
	case THOTH_E_CLOSED:         return "closed";
	case THOTH_E_CORRUPT:        return "shared memory corrupt";
	case THOTH_E_NOT_RUNNING:    return "not running (nothing listens at its socket)";
	}
	return "unknown error";
}
