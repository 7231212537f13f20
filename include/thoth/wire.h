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

/* For the frame functions of a method's request and response, which thothc
 * emits once and inlines where the RPC layer calls them. */
#if defined(__GNUC__) || defined(__clang__)
#define THOTH_WIRE_ALWAYS_INLINE __attribute__((always_inline))
#else
#define THOTH_WIRE_ALWAYS_INLINE
#endif

/* Header flags (u16 at offset 6). Exactly one of REQUEST/RESPONSE. */
#define THOTH_MSG_REQUEST  0x0001u
#define THOTH_MSG_RESPONSE 0x0002u
#define THOTH_MSG_ONEWAY   0x0004u  /* only with REQUEST: no response follows */
#define THOTH_MSG_ERROR    0x0008u  /* only with RESPONSE: body is an error frame */
#define THOTH_MSG_FLAGS_KNOWN 0x000fu
/* Bit F set when the flags value F (<= THOTH_MSG_FLAGS_KNOWN) is valid:
 * REQUEST, REQUEST|ONEWAY, RESPONSE, RESPONSE|ERROR. */
#define THOTH_WIRE_VALID_FLAGS (1u << THOTH_MSG_REQUEST | 1u << (THOTH_MSG_REQUEST | THOTH_MSG_ONEWAY) | \
				1u << THOTH_MSG_RESPONSE | 1u << (THOTH_MSG_RESPONSE | THOTH_MSG_ERROR))

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
static inline void thoth_wire_header_encode(uint8_t *out, const thoth_msg_header_t *h)
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

/*
 * Framing on a byte stream: the total size of the message whose first HAVE
 * bytes are at BUF.  1 with *SIZE set once the header has arrived, 0 while
 * fewer bytes than a header are there, THOTH_E_BAD_MAGIC, or
 * THOTH_E_TOO_LARGE for a body announced longer than MAX_BODY (refused
 * before anything is buffered).  The header's other fields are checked by
 * thoth_wire_header_decode once the whole message is there.
 */
static inline int thoth_wire_msg_size(const uint8_t *buf, size_t have, uint32_t max_body,
				      size_t *size)
{
	if (have < THOTH_WIRE_HEADER_SIZE)
		return 0;
	if (thoth_le32(buf) != THOTH_WIRE_MAGIC)
		return THOTH_E_BAD_MAGIC;
	uint32_t body = thoth_le32(buf + 36);
	if (body > max_body)
		return THOTH_E_TOO_LARGE;
	*size = THOTH_WIRE_HEADER_SIZE + (size_t)body;
	return 1;
}

/*
 * Decode and check the header of a received message of LEN bytes:
 * magic, flags consistency, body_len == len - 40, body_len limit and
 * alignment.  Returns 0 or THOTH_E_TRUNCATED / BAD_MAGIC / BAD_FLAGS /
 * BAD_LENGTH / TOO_LARGE.
 */
static inline int thoth_wire_header_decode(const uint8_t *msg, size_t len, thoth_msg_header_t *h)
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

	/* No unknown flag, exactly one of REQUEST and RESPONSE, ONEWAY only
	 * with REQUEST, ERROR only with RESPONSE: the four valid values
	 * (1, 1|4, 2, 2|8) as bits of one word, one test instead of six. */
	uint16_t f = h->flags;
	if (f > THOTH_MSG_FLAGS_KNOWN || !((THOTH_WIRE_VALID_FLAGS >> f) & 1u))
		return THOTH_E_BAD_FLAGS;
	/* The usual case in one test: the body is the rest of the message,
	 * padded and within the limit.  Otherwise the checks below say which
	 * rule it breaks, in their order. */
	if ((size_t)h->body_len == len - THOTH_WIRE_HEADER_SIZE &&
	    !(h->body_len % 8u) && h->body_len <= THOTH_WIRE_MAX_BODY)
		return 0;
	if (h->body_len > THOTH_WIRE_MAX_BODY)
		return THOTH_E_TOO_LARGE;
	if (h->body_len % 8u)
		return THOTH_E_BAD_LENGTH;      /* canonical: bodies are padded to 8 */
	if ((size_t)h->body_len > len - THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_TRUNCATED;
	if ((size_t)h->body_len != len - THOTH_WIRE_HEADER_SIZE)
		return THOTH_E_BAD_LENGTH;
	return 0;
}

/* 32-bit FNV-1a, used for interface ids ("package.Interface"). */
uint32_t thoth_wire_fnv1a32(const char *s);
/* 64-bit FNV-1a over bytes, used for schema hashes. */
uint64_t thoth_wire_fnv1a64(const void *data, size_t len, uint64_t seed);
#define THOTH_FNV64_SEED 0xcbf29ce484222325ull

/* ---- values as C sees them -------------------------------------------- */

/*
 * A string: UTF-8, no NUL bytes inside, and on the wire always followed by a
 * NUL terminator, so a decoded ptr can be used as a C string directly.  len
 * excludes the terminator.  Decoded strings point into the message buffer.
 * A field the sender's (older) schema does not have is not decoded: it
 * stays zeroed, ptr NULL.
 */
typedef struct thoth_str {
	const char *ptr;
	uint32_t len;
} thoth_str_t;

/*
 * Bytes: opaque.  Decoded bytes point into the message buffer (no copy).
 * For encoding, `reserve` enables building a large payload in place: when
 * non-NULL, the encoder allocates len bytes in the message without copying
 * and stores their address in *reserve for the caller to fill (data is
 * ignored).
 */
typedef struct thoth_bytes {
	const uint8_t *ptr;
	uint32_t len;
	uint8_t **reserve;
	bool uninit;    /* with reserve: skip zeroing, the caller writes every byte */
} thoth_bytes_t;

static inline thoth_str_t thoth_str(const char *s)
{
	thoth_str_t r = { s, s ? (uint32_t)strlen(s) : 0 };
	return r;
}

/* Lists of built-in element types: items/count.  Decoded scalar lists point
 * into the message when it is suitably aligned, else into the arena. */
#define THOTH_LIST_TYPE(name, ctype) \
	typedef struct name { const ctype *items; uint32_t count; } name
THOTH_LIST_TYPE(thoth_list_bool_t, bool);
THOTH_LIST_TYPE(thoth_list_u8_t, uint8_t);
THOTH_LIST_TYPE(thoth_list_u16_t, uint16_t);
THOTH_LIST_TYPE(thoth_list_u32_t, uint32_t);
THOTH_LIST_TYPE(thoth_list_u64_t, uint64_t);
THOTH_LIST_TYPE(thoth_list_i8_t, int8_t);
THOTH_LIST_TYPE(thoth_list_i16_t, int16_t);
THOTH_LIST_TYPE(thoth_list_i32_t, int32_t);
THOTH_LIST_TYPE(thoth_list_i64_t, int64_t);
THOTH_LIST_TYPE(thoth_list_f32_t, float);
THOTH_LIST_TYPE(thoth_list_f64_t, double);
THOTH_LIST_TYPE(thoth_list_string_t, thoth_str_t);
THOTH_LIST_TYPE(thoth_list_bytes_t, thoth_bytes_t);

/* ---- arena: bounded scratch memory for decoding ------------------------ */

/*
 * Decoding never calls malloc.  Strings and bytes are views into the message;
 * only lists of non-scalars (and scalar lists in a misaligned buffer) need
 * arena space, at most a small multiple of the message size.  The caller owns
 * the memory (often a stack array).
 */
typedef struct thoth_arena {
	uint8_t *buf;
	size_t cap;
	size_t used;
} thoth_arena_t;

static inline void thoth_arena_init(thoth_arena_t *a, void *buf, size_t cap)
{
	a->buf = (uint8_t *)buf;        /* the cast keeps the header valid C++ */
	a->cap = cap;
	a->used = 0;
}

/* 8-aligned, zeroed allocation; NULL when the arena is exhausted or A is
 * NULL (a stub called with no arena: a decode that needs one then fails
 * with THOTH_E_NO_SPACE). */
void *thoth_arena_alloc(thoth_arena_t *a, size_t n);

/* ---- builder: encoding into a caller-provided buffer ------------------- */

/*
 * The builder writes a whole message: it reserves the 40-byte header, then
 * appends 8-aligned objects to the body.  Offsets used below are relative to
 * the body start.  BUF must be 8-aligned and stay put while building.
 * Errors are sticky: once set, later calls do nothing and finish() returns it.
 */
typedef struct thoth_builder {
	uint8_t *buf;
	size_t cap;
	size_t len;     /* header + body bytes written so far */
	int err;
} thoth_builder_t;

static inline void thoth_builder_init(thoth_builder_t *b, void *buf, size_t cap)
{
	b->buf = (uint8_t *)buf;
	/* Room past a maximal message is never used: with the cap clamped
	 * there, an object that fits the cap also fits THOTH_WIRE_MAX_BODY, so
	 * each allocation tests the cap alone and tells TOO_LARGE from
	 * NO_SPACE only when it fails (the same answers, in the same cases). */
	b->cap = cap < THOTH_WIRE_HEADER_SIZE + (size_t)THOTH_WIRE_MAX_BODY
		 ? cap : THOTH_WIRE_HEADER_SIZE + (size_t)THOTH_WIRE_MAX_BODY;
	b->len = THOTH_WIRE_HEADER_SIZE;
	b->err = 0;
	if (!buf || cap < THOTH_WIRE_HEADER_SIZE)
		b->err = THOTH_E_NO_SPACE;
	else if ((uintptr_t)buf & (THOTH_WIRE_ALIGN - 1))
		b->err = THOTH_E_BAD_ALIGN;
}

/* Body pointer for body offset OFF (valid while the buffer lives). */
static inline uint8_t *thoth_builder_at(thoth_builder_t *b, uint32_t off)
{
	return b->buf + THOTH_WIRE_HEADER_SIZE + off;
}

static inline size_t thoth_wire_pad8(size_t n) { return (n + 7u) & ~(size_t)7u; }

/* Append N bytes, 8-aligned, body offset in *off; 0 or NO_SPACE/TOO_LARGE.
 * The alignment gap before them is zeroed, the N bytes are not: for data
 * the caller overwrites at once (a copy).  Inline: generated code calls the
 * allocators with sizes known at compile time. */
static inline int thoth_builder_alloc_raw(thoth_builder_t *b, size_t n, uint32_t *off)
{
	if (b->err)
		return b->err;
	size_t start = thoth_wire_pad8(b->len);
	size_t body_start = start - THOTH_WIRE_HEADER_SIZE;
	if (start > b->cap || n > b->cap - start)       /* cap <= header + MAX_BODY */
		return b->err = n > THOTH_WIRE_MAX_BODY || body_start + n > THOTH_WIRE_MAX_BODY
				? THOTH_E_TOO_LARGE : THOTH_E_NO_SPACE;
	/* The gap is usually empty (frames and pads keep 8-alignment): a
	 * library call to zero nothing costs ~15 instructions per object. */
	if (start != b->len)
		memset(b->buf + b->len, 0, start - b->len);
	b->len = start + n;
	*off = (uint32_t)body_start;
	return 0;
}

/* The same, with the N bytes zeroed (struct frames, reserved space). */
static inline int thoth_builder_alloc(thoth_builder_t *b, size_t n, uint32_t *off)
{
	int r = thoth_builder_alloc_raw(b, n, off);
	if (!r)
		memset(b->buf + THOTH_WIRE_HEADER_SIZE + *off, 0, n);
	return r;
}

/* Append a struct frame with a FIXED_SIZE fixed section; writes the frame
 * header and returns the frame's body offset in *off. */
static inline int thoth_builder_frame(thoth_builder_t *b, uint32_t fixed_size,
				      uint32_t field_count, uint32_t *off)
{
	int r = thoth_builder_alloc(b, 8u + (size_t)fixed_size, off);
	if (r)
		return r;
	uint8_t *p = b->buf + THOTH_WIRE_HEADER_SIZE + *off;
	thoth_st32(p, fixed_size);
	thoth_st32(p + 4, field_count);
	return 0;
}

/* Write a pointer {offset, count} into the 8-byte slot at body offset SLOT. */
static inline void thoth_builder_ptr(thoth_builder_t *b, uint32_t slot, uint32_t off, uint32_t count)
{
	thoth_st32(thoth_builder_at(b, slot), count ? off : 0);
	thoth_st32(thoth_builder_at(b, slot) + 4, count);
}

int thoth_wire_check_utf8(const uint8_t *s, size_t len);

/* Encode a string (checked: valid UTF-8, no NUL) into SLOT. */
static inline int thoth_builder_str(thoth_builder_t *b, uint32_t slot, thoth_str_t s)
{
	if (b->err)
		return b->err;
	if (s.len == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		return 0;
	}
	if (!s.ptr)
		return b->err = THOTH_E_INVAL;
	int r = thoth_wire_check_utf8((const uint8_t *)s.ptr, s.len);
	if (r)
		return b->err = r;
	uint32_t off;
	r = thoth_builder_alloc_raw(b, (size_t)s.len + 1, &off);
	if (r)
		return r;
	memcpy(thoth_builder_at(b, off), s.ptr, s.len);
	thoth_builder_at(b, off)[s.len] = 0;
	thoth_builder_ptr(b, slot, off, s.len);
	return 0;
}

/* The largest payload a generated encoder's straight-line path copies
 * itself (thoth__wire_copy_small); a longer one takes the builder path. */
#define THOTH_WIRE_COPY_INLINE 128u

typedef uint8_t thoth_wire_v16 __attribute__((vector_size(16)));

/* 16 bytes at FROM + I to TO + I, as one unaligned vector load and store. */
static inline THOTH_WIRE_ALWAYS_INLINE void thoth_wire_move16(uint8_t *to, const uint8_t *from, size_t i)
{
	thoth_wire_v16 x;
	memcpy(&x, from + i, 16);
	memcpy(to + i, &x, 16);
}

/* N bytes, HALF < N <= 2 * HALF (HALF a constant: the loops unroll). */
static inline THOTH_WIRE_ALWAYS_INLINE void thoth_wire_halves(uint8_t *to, const uint8_t *from, size_t n,
							      size_t half)
{
	for (size_t i = 0; i < half; i += 16)
		thoth_wire_move16(to, from, i);
	for (size_t i = half; i > 0; i -= 16)
		thoth_wire_move16(to, from, n - i);
}

/* Copy N <= THOTH_WIRE_COPY_INLINE bytes with no call: 16-byte moves by
 * size class, the class's first half from the start and its second half
 * ending exactly at N (they overlap unless N is the class's top), so
 * nothing past N is read or written; below 16, two 8-byte moves or single
 * bytes.  A small payload is the usual case, and a memcpy with a variable
 * size costs a call and ~15 instructions around its few moves (and makes
 * its caller save registers).
 *
 * Unchecked, and for thothc's encoders only: they call it after testing
 * every length against THOTH_WIRE_COPY_INLINE (the `fast` test), a bound
 * the compiler cannot see through that flag, so a check here would cost
 * each field a compare and branch.  Above the bound the size classes
 * would copy the first and last 64 bytes and leave the middle unwritten;
 * a debug build stops there instead. */
static inline THOTH_WIRE_ALWAYS_INLINE void thoth__wire_copy_small(uint8_t *to, const uint8_t *from, size_t n)
{
#ifndef NDEBUG
	if (n > THOTH_WIRE_COPY_INLINE)
		__builtin_trap();
#endif
	if (n > 64) {
		thoth_wire_halves(to, from, n, 64);
	} else if (n > 32) {
		thoth_wire_halves(to, from, n, 32);
	} else if (n >= 16) {
		thoth_wire_halves(to, from, n, 16);
	} else if (n >= 8) {
		uint64_t x, z;
		memcpy(&x, from, 8);
		memcpy(&z, from + n - 8, 8);
		memcpy(to, &x, 8);
		memcpy(to + n - 8, &z, 8);
	} else {
		for (size_t i = 0; i < n; i++)
			to[i] = from[i];
	}
}

/* Copy N bytes, any N: the inline moves up to THOTH_WIRE_COPY_INLINE,
 * memcpy above it.  Where N is a constant, or bounded where the compiler
 * can see it, the test folds away. */
static inline THOTH_WIRE_ALWAYS_INLINE void thoth_wire_copy_small(uint8_t *to, const uint8_t *from, size_t n)
{
	if (n > THOTH_WIRE_COPY_INLINE)
		memcpy(to, from, n);
	else
		thoth__wire_copy_small(to, from, n);
}

/* Encode bytes into SLOT (or reserve them: see thoth_bytes_t). */
int thoth_builder_bytes(thoth_builder_t *b, uint32_t slot, const thoth_bytes_t *v);

/* The same, inline: generated encoders call this one (a bytes field is on
 * most calls' path: a call and a second test of the sticky error cost as
 * much as the encoding). */
static inline THOTH_WIRE_ALWAYS_INLINE int thoth_builder_bytes_inline(thoth_builder_t *b, uint32_t slot, const thoth_bytes_t *v)
{
	if (b->err)
		return b->err;
	if (v->len == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		if (v->reserve)
			*v->reserve = NULL;
		return 0;
	}
	if (!v->ptr && !v->reserve)
		return b->err = THOTH_E_INVAL;
	uint32_t off;
	/* Reserved space is zeroed (a caller that writes less must not send
	 * stale memory to a peer) unless the caller promises to fill it all
	 * (uninit: a 16 MiB zero-copy payload must not cost a 16 MiB memset);
	 * copied bytes are written once, not twice. */
	int r = v->reserve && !v->uninit ? thoth_builder_alloc(b, v->len, &off)
			   : thoth_builder_alloc_raw(b, v->len, &off);
	if (r)
		return r;
	if (v->reserve)
		*v->reserve = thoth_builder_at(b, off);
	else
		memcpy(thoth_builder_at(b, off), v->ptr, v->len);
	thoth_builder_ptr(b, slot, off, v->len);
	return 0;
}

/* A list of COUNT elements of ELEM_SIZE bytes; copies ITEMS when non-NULL.
 * The list's body offset is returned in *off (for lists of pointers the
 * caller then fills each 8-byte element slot). */
int thoth_builder_list(thoth_builder_t *b, uint32_t slot, const void *items, uint32_t count,
		       uint32_t elem_size, uint32_t *off);

/* Fill the header (body_len computed) and return the message length. */
static inline int thoth_builder_finish(thoth_builder_t *b, const thoth_msg_header_t *h, size_t *len)
{
	if (b->err)
		return b->err;
	/* The body is padded to 8 so that concatenated messages stay aligned. */
	size_t end = thoth_wire_pad8(b->len);
	if (end > b->cap)
		return b->err = THOTH_E_NO_SPACE;
	if (end != b->len)
		memset(b->buf + b->len, 0, end - b->len);
	b->len = end;
	thoth_msg_header_t hh = *h;
	hh.body_len = (uint32_t)(end - THOTH_WIRE_HEADER_SIZE);
	thoth_wire_header_encode(b->buf, &hh);
	*len = end;
	return 0;
}

/* Exact encoded size helpers (generated *_size() functions add these up). */
static inline size_t thoth_wire_str_size(thoth_str_t s) { return s.len ? thoth_wire_pad8((size_t)s.len + 1) : 0; }
static inline size_t thoth_wire_bytes_size(const thoth_bytes_t *v) { return thoth_wire_pad8(v->len); }

/* ---- decoder: the verifier ------------------------------------------- */

/*
 * Validation happens once, at the boundary, while decoding: every pointer is
 * bounds- and alignment-checked, every string UTF-8-checked, every bool,
 * presence byte and strict enum range-checked, nesting limited to
 * THOTH_WIRE_MAX_DEPTH, and the total size of all objects reached may not
 * exceed the body (so overlapping pointers cannot amplify work: each body
 * byte is visited at most once in a well-formed message).
 */
typedef struct thoth_decoder {
	const uint8_t *body;
	uint32_t len;
	uint64_t budget;        /* bytes of objects that may still be visited */
	thoth_arena_t *arena;
	bool aligned;           /* body is 8-aligned in memory: scalar lists can be views */
} thoth_decoder_t;

static inline void thoth_decoder_init(thoth_decoder_t *d, const uint8_t *body, uint32_t len,
				      thoth_arena_t *arena)
{
	d->body = body;
	d->len = len;
	d->budget = len;
	d->arena = arena;
	d->aligned = ((uintptr_t)body & (THOTH_WIRE_ALIGN - 1)) == 0;
}

/* Charge N visited bytes to the traversal budget. */
static inline int thoth_decoder_charge(thoth_decoder_t *d, uint64_t n)
{
	if (n > d->budget)
		return THOTH_E_ALIASED;
	d->budget -= n;
	return 0;
}

/*
 * Check the struct frame at OFF.  EXPECT_LEN is the frame length claimed by
 * the pointer that led here (0 for the root frame).  Returns the fixed
 * section's size and the writer's field count.
 */
static inline int thoth_decoder_frame(thoth_decoder_t *d, uint32_t off, uint32_t expect_len,
				      uint32_t *fixed_size, uint32_t *field_count)
{
	if (off & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (off > d->len || d->len - off < 8)
		return expect_len ? THOTH_E_BAD_LENGTH : THOTH_E_TRUNCATED;
	uint32_t fixed = thoth_le32(d->body + off);
	uint32_t count = thoth_le32(d->body + off + 4);
	if (fixed & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (fixed > d->len - off - 8)
		return expect_len ? THOTH_E_BAD_LENGTH : THOTH_E_TRUNCATED;
	if (expect_len && (uint64_t)expect_len != 8ull + fixed)
		return THOTH_E_BAD_LENGTH;
	int r = thoth_decoder_charge(d, 8ull + fixed);
	if (r)
		return r;
	*fixed_size = fixed;
	*field_count = count;
	return 0;
}

/* Read the pointer in SLOT (a body offset) to COUNT elements of ELEM_SIZE. */
static inline int thoth_decoder_ptr(thoth_decoder_t *d, uint32_t slot, uint32_t elem_size,
				    uint32_t *off, uint32_t *count)
{
	uint32_t o = thoth_le32(d->body + slot);
	uint32_t n = thoth_le32(d->body + slot + 4);
	if (n == 0) {
		*off = 0;
		*count = 0;
		return o ? THOTH_E_BAD_LENGTH : 0;   /* canonical: empty is {0,0} */
	}
	uint64_t size = (uint64_t)n * elem_size;
	if (o & (THOTH_WIRE_ALIGN - 1))
		return THOTH_E_BAD_ALIGN;
	if (o > d->len || size > d->len - o)
		return THOTH_E_BAD_LENGTH;
	int r = thoth_decoder_charge(d, size);
	if (r)
		return r;
	*off = o;
	*count = n;
	return 0;
}

static inline int thoth_decoder_str(thoth_decoder_t *d, uint32_t slot, thoth_str_t *out)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, 1, &off, &n);
	if (r)
		return r;
	if (n == 0) {
		out->ptr = "";
		out->len = 0;
		return 0;
	}
	if ((uint64_t)off + n >= d->len)       /* no room for the terminator */
		return THOTH_E_BAD_NUL;
	if (d->body[off + n] != 0)
		return THOTH_E_BAD_NUL;
	r = thoth_wire_check_utf8(d->body + off, n);
	if (r)
		return r;
	out->ptr = (const char *)d->body + off;
	out->len = n;
	return 0;
}

/* The frame length a struct pointer in SLOT claims, for thoth_decoder_frame's
 * EXPECT_LEN.  A count of 0 is never valid for a struct: it is mapped to 1,
 * which no frame can match, so the frame check reports THOTH_E_BAD_LENGTH. */
static inline uint32_t thoth_wire_struct_ptr_len(const thoth_decoder_t *d, uint32_t slot)
{
	uint32_t n = thoth_le32(d->body + slot + 4);
	return n ? n : 1;
}

int thoth_decoder_bytes(thoth_decoder_t *d, uint32_t slot, thoth_bytes_t *out);

/* The same, inline, for generated decoders: every check of the peer's
 * pointer is thoth_decoder_ptr's. */
static inline THOTH_WIRE_ALWAYS_INLINE int thoth_decoder_bytes_inline(thoth_decoder_t *d, uint32_t slot, thoth_bytes_t *out)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, 1, &off, &n);
	if (r)
		return r;
	out->ptr = n ? d->body + off : NULL;
	out->len = n;
	out->reserve = NULL;
	return 0;
}

/* A scalar list: view into the body when aligned, else a copy in the arena. */
int thoth_decoder_scalar_list(thoth_decoder_t *d, uint32_t slot, uint32_t elem_size,
			      const void **items, uint32_t *count);

/* Check a bool byte / presence byte. */
static inline int thoth_decoder_bool(const thoth_decoder_t *d, uint32_t at, bool *out)
{
	uint8_t v = d->body[at];
	if (v > 1)
		return THOTH_E_BAD_BOOL;
	*out = v;
	return 0;
}

/* thoth_wire_check_utf8 (declared above): validate UTF-8 (RFC 3629: no
 * overlongs, no surrogates, <= U+10FFFF) and no NUL byte. */

#ifdef __cplusplus
}
#endif
#endif
