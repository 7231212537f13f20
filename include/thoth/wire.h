/*
 * thoth/wire.h - the ThothOS wire format: message header, struct frames,
 * the builder (encoder) and the verifier primitives generated code uses.
 *
 * The normative description is docs/WIRE.md; this header is its C mirror.
 * Everything is little-endian.  A message is
 *
 *     [ header: 40 bytes ][ body: body_len bytes, starts with the root frame ]
 *
 * The header layout below is a wire layout and therefore public, field by
 * field.  Readers must call thoth_wire_header_check() before trusting any
 * header field of bytes received from a peer.
 */
#ifndef THOTH_WIRE_H
#define THOTH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "thoth/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define THOTH_WIRE_MAGIC      0x31574854u  /* bytes 'T' 'H' 'W' '1' */
#define THOTH_WIRE_HEADER_SIZE 40u
#define THOTH_WIRE_MAX_DEPTH  32u           /* nesting of frames and lists */
#define THOTH_WIRE_MAX_BODY   (256u << 20)  /* 256 MiB */
#define THOTH_WIRE_ALIGN      8u            /* every out-of-line object */

/* Header flags (u16 at offset 6). Exactly one of REQUEST/RESPONSE. */
#define THOTH_MSG_REQUEST  0x0001u
#define THOTH_MSG_RESPONSE 0x0002u
#define THOTH_MSG_ONEWAY   0x0004u  /* only with REQUEST: no response follows */
#define THOTH_MSG_ERROR    0x0008u  /* only with RESPONSE: body is an error frame */
#define THOTH_MSG_FLAGS_KNOWN 0x000fu

/*
 * The fixed message header (decoded form).  Wire offsets:
 *   0 u32 magic           THOTH_WIRE_MAGIC
 *   4 u8  schema_major    writer's schema version (major must match the reader's)
 *   5 u8  schema_minor    writer's schema version (any minor is accepted)
 *   6 u16 flags           THOTH_MSG_*
 *   8 u32 interface_id    FNV-1a 32 of "package.Interface"
 *  12 u32 method          method ordinal
 *  16 u64 features        negotiated feature bits of the channel
 *  24 u64 trace_id        follows one call across processes (0 = none)
 *  32 u32 request_id      matches a response to its request (0 for oneway)
 *  36 u32 body_len        bytes after the header
 */
typedef struct thoth_msg_header {
	uint32_t magic;
	uint8_t schema_major;
	uint8_t schema_minor;
	uint16_t flags;
	uint32_t interface_id;
	uint32_t method;
	uint64_t features;
	uint64_t trace_id;
	uint32_t request_id;
	uint32_t body_len;
} thoth_msg_header_t;

/* ---- little-endian loads and stores (unaligned-safe) ------------------ */

static inline uint16_t thoth_le16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t thoth_le32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t thoth_le64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void thoth_st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void thoth_st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void thoth_st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "thoth wire code assumes a little-endian host; add byte swaps here first"
#endif

/* Encode H into the first THOTH_WIRE_HEADER_SIZE bytes of OUT. */
void thoth_wire_header_encode(uint8_t *out, const thoth_msg_header_t *h);

/*
 * Decode and check the header of a received message of LEN bytes:
 * magic, flags consistency, body_len == len - 40, body_len limit.
 * Returns 0 or THOTH_E_TRUNCATED / BAD_MAGIC / BAD_FLAGS / BAD_LENGTH / TOO_LARGE.
 */
int thoth_wire_header_decode(const uint8_t *msg, size_t len, thoth_msg_header_t *out);

/* 32-bit FNV-1a, used for interface ids ("package.Interface"). */
uint32_t thoth_wire_fnv1a32(const char *s);
/* 64-bit FNV-1a over bytes, used for schema hashes. */
uint64_t thoth_wire_fnv1a64(const void *data, size_t len, uint64_t seed);
#define THOTH_FNV64_SEED 0xcbf29ce484222325ull

#ifdef __cplusplus
}
#endif
#endif
