/*
 * wire_frame.c - struct frames, out-of-line objects and their verifier
 * (docs/WIRE.md, "Body").
 *
 * The builder appends; it never moves what it wrote, so body offsets stay
 * valid.  The decoder trusts nothing: every offset is checked against the
 * body before it is dereferenced, and every object reached is charged to a
 * traversal budget equal to the body length.
 */
#include "thoth/wire.h"

/* ---- arena ------------------------------------------------------------- */

void *thoth_arena_alloc(thoth_arena_t *a, size_t n)
{
	/* A NULL arena is what a caller passes for results it thinks need
	 * none (the tutorial's hello does); a response with a list of strings
	 * or structs, or a misaligned scalar list (a peer decides both), then
	 * crashed the client here instead of failing the call. */
	if (!a)
		return NULL;
	size_t start = thoth_wire_pad8(a->used);
	if (!a->buf || start > a->cap || n > a->cap - start)
		return NULL;
	a->used = start + n;
	memset(a->buf + start, 0, n);
	return a->buf + start;
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* Nonzero if the 8 bytes in V hold a byte >= 0x80 or a zero byte. */
static inline uint64_t not_plain_ascii(uint64_t v)
{
	uint64_t zero = (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
	return (v & 0x8080808080808080ull) | zero;
}

int thoth_wire_check_utf8(const uint8_t *s, size_t len)
{
	/* Fast path: plain ASCII without NUL, eight bytes at a time, then the
	 * tail byte by byte (short control-plane strings are the common case). */
	size_t w = 0;
	for (; w + 8 <= len; w += 8) {
		uint64_t v;
		memcpy(&v, s + w, 8);
		if (not_plain_ascii(v))
			break;
	}
	if (w + 8 > len) {
		size_t t = w;
		while (t < len && (uint8_t)(s[t] - 1) < 0x7f)   /* 0x01..0x7f */
			t++;
		if (t == len)
			return 0;
	}
	size_t i = w;
	while (i < len) {
		/* ASCII fast path: eight bytes with no high bit and no zero byte. */
		if (len - i >= 8) {
			uint64_t v;
			memcpy(&v, s + i, 8);
			uint64_t zero = (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
			if (((v & 0x8080808080808080ull) | zero) == 0) {
				i += 8;
				continue;
			}
		}
		uint8_t c = s[i];
		if (c == 0)
			return THOTH_E_BAD_NUL;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return THOTH_E_BAD_UTF8;
		}
		if (len - i < n)
			return THOTH_E_BAD_UTF8;
		for (size_t k = 1; k < n; k++) {
			uint8_t cc = s[i + k];
			if ((cc & 0xc0) != 0x80)
				return THOTH_E_BAD_UTF8;
			cp = (cp << 6) | (cc & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return THOTH_E_BAD_UTF8;
		i += n;
	}
	return 0;
}

/* ---- builder ------------------------------------------------------------ */

int thoth_builder_bytes(thoth_builder_t *b, uint32_t slot, const thoth_bytes_t *v)
{
	return thoth_builder_bytes_inline(b, slot, v);
}

int thoth_builder_list(thoth_builder_t *b, uint32_t slot, const void *items, uint32_t count,
		       uint32_t elem_size, uint32_t *off)
{
	if (b->err)
		return b->err;
	*off = 0;
	if (count == 0) {
		thoth_builder_ptr(b, slot, 0, 0);
		return 0;
	}
	uint64_t size = (uint64_t)count * elem_size;
	if (size > THOTH_WIRE_MAX_BODY)
		return b->err = THOTH_E_TOO_LARGE;
	int r = items ? thoth_builder_alloc_raw(b, (size_t)size, off)
		      : thoth_builder_alloc(b, (size_t)size, off);
	if (r)
		return r;
	if (items)
		memcpy(thoth_builder_at(b, *off), items, (size_t)size);
	thoth_builder_ptr(b, slot, *off, count);
	return 0;
}

/* ---- decoder ------------------------------------------------------------ */

int thoth_decoder_bytes(thoth_decoder_t *d, uint32_t slot, thoth_bytes_t *out)
{
	return thoth_decoder_bytes_inline(d, slot, out);
}

int thoth_decoder_scalar_list(thoth_decoder_t *d, uint32_t slot, uint32_t elem_size,
			      const void **items, uint32_t *count)
{
	uint32_t off, n;
	int r = thoth_decoder_ptr(d, slot, elem_size, &off, &n);
	if (r)
		return r;
	*count = n;
	if (n == 0) {
		*items = NULL;
		return 0;
	}
	if (d->aligned) {
		*items = d->body + off;
		return 0;
	}
	void *copy = thoth_arena_alloc(d->arena, (size_t)n * elem_size);
	if (!copy)
		return THOTH_E_NO_SPACE;
	memcpy(copy, d->body + off, (size_t)n * elem_size);
	*items = copy;
	return 0;
}
