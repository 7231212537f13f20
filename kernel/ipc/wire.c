/*
 * wire.c - the message header and hashing primitives of the wire format
 * (docs/WIRE.md).  The struct-frame builder and verifier live in
 * wire_frame.c.
 */
#include "thoth/wire.h"

void thoth_wire_header_encode(uint8_t *out, const thoth_msg_header_t *h)
{
	thoth_st32(out + 0, THOTH_WIRE_MAGIC);
	out[4] = h->schema_major;
	out[5] = h->schema_minor;
	thoth_st16(out + 6, h->flags);
	thoth_st32(out + 8, h->interface_id);
	thoth_st32(out + 12, h->method);
	thoth_st64(out + 16, h->features);
	thoth_st64(out + 24, h->trace_id);
	thoth_st32(out + 32, h->request_id);
	thoth_st32(out + 36, h->body_len);
}

int thoth_wire_header_decode(const uint8_t *msg, size_t len, thoth_msg_header_t *h)
{
	if (len < THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_TRUNCATED;
	h->magic = thoth_le32(msg + 0);
	if (h->magic != THOTH_WIRE_MAGIC)
		return THOTH_E_BAD_MAGIC;
	h->schema_major = msg[4];
	h->schema_minor = msg[5];
	h->flags = thoth_le16(msg + 6);
	h->interface_id = thoth_le32(msg + 8);
	h->method = thoth_le32(msg + 12);
	h->features = thoth_le64(msg + 16);
	h->trace_id = thoth_le64(msg + 24);
	h->request_id = thoth_le32(msg + 32);
	h->body_len = thoth_le32(msg + 36);

	uint16_t f = h->flags;
	bool req = f & THOTH_MSG_REQUEST, resp = f & THOTH_MSG_RESPONSE;
	if ((f & ~THOTH_MSG_FLAGS_KNOWN) || req == resp)
		return THOTH_E_BAD_FLAGS;
	if ((f & THOTH_MSG_ONEWAY) && !req)
		return THOTH_E_BAD_FLAGS;
	if ((f & THOTH_MSG_ERROR) && !resp)
		return THOTH_E_BAD_FLAGS;
	if (h->body_len > THOTH_WIRE_MAX_BODY)
		return THOTH_E_TOO_LARGE;
	if (h->body_len % THOTH_WIRE_ALIGN)
		return THOTH_E_BAD_LENGTH;      /* canonical: bodies are padded to 8 */
	if ((size_t)h->body_len > len - THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_TRUNCATED;
	if ((size_t)h->body_len != len - THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_BAD_LENGTH;
	return 0;
}

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
