/*
 * wire.c - hashing primitives of the wire format (docs/WIRE.md).  The
 * header codec is inline in thoth/wire.h; the struct-frame builder and
 * verifier live in wire_frame.c.
 */
#include "thoth/wire.h"

uint32_t thoth_wire_fnv1a32(const char *s)
{
	uint32_t h = 0x811c9dc5u;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x01000193u;
	}
	return h;
}

uint64_t thoth_wire_fnv1a64(const void *data, size_t len, uint64_t h)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
